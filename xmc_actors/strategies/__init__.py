"""Built-in strategies. Each registers its parameter model and class in the registry.

Importing this package registers ``band``, ``zscore``, ``basis_monitor`` and ``calendar_roll``
(see :mod:`xmc_actors.strategies.base` for writing a new one).
"""
from ..model.registry import STRATEGIES
from .params import BUILTIN_PARAMS

for _name, _params in BUILTIN_PARAMS.items():
    if _name not in STRATEGIES.entries:
        STRATEGIES.register(_name, _params)

from .base import (  # noqa: E402
    Decision, Emit, Snapshot, Strategy, StrategyContext, StrategyState, Submit, band_target, build_strategy,
    register_strategy,
)
from .band import BandStrategy  # noqa: E402
from .basis_monitor import BasisMonitor  # noqa: E402
from .calendar_roll import CalendarRoll  # noqa: E402
from .zscore import ZScoreStrategy  # noqa: E402

__all__ = ["Strategy", "StrategyContext", "StrategyState", "Snapshot", "Decision", "Submit", "Emit", "band_target",
           "build_strategy", "register_strategy", "BandStrategy", "ZScoreStrategy", "BasisMonitor", "CalendarRoll"]
