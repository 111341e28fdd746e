"""What a deployment hands its actors: the size limit of their constructor arguments and the
coordinator's pre-trade checker, built in the coordinator's own process from the plain-data
deployment.

Split out of :mod:`xmc_actors.runtime.deploy` (which re-exports every name here).
"""
from __future__ import annotations

from typing import Any

from ..model.config import DeploymentConfig
from .replay_driver import replayed_strategies


# Ray keeps an actor's constructor arguments inline in its creation task up to 100 kB (its
# max_direct_call_object_size); larger ones go to the object store, owned by the driver, and a
# restart after the driver released them fails. Every actor of a deployment gets the
# deployment as plain data, so it must stay under that with room to spare.
INLINE_ARGS_LIMIT = 80_000


def check_inline_size(deployment: dict[str, Any], limit: int = INLINE_ARGS_LIMIT) -> None:
    """Refuse a deployment too large to travel inline in its actors' creation tasks."""
    import pickle

    n = len(pickle.dumps(deployment, protocol=5))
    if n > limit:
        raise ValueError(f"deployment: the resolved configuration is {n:,} bytes, more than the {limit:,} that an "
                         f"actor's constructor arguments may take for Ray to restart it without its driver; "
                         f"split it into several deployments")


def build_checker(deployment: dict[str, Any], *, instruments: Any, sink: Any, clock: Any, name: str) -> Any:
    """The coordinator's in-process pre-trade checker (built inside the coordinator's process).

    Market time: FX is looked up at each pair's ``created_ns`` (the stamp of the quotes it was
    decided on), and the sessions of a replayed strategy's pairs are judged then too, so a
    replay of 2019 trades at 2019's rates and hours, whatever the wall clock says."""
    from ..core.risk_checker import PreTradeChecker, fx_from_book
    from ..feeds.fx import fx_book_from_config

    dep = DeploymentConfig.model_validate(deployment)
    fx = fx_from_book(fx_book_from_config(dep.fx), clock)
    return PreTradeChecker(instruments, {v.code: v for v in dep.venues}, fx, name=name, sink=sink, clock=clock,
                           market_time_strategies=replayed_strategies(dep))


__all__ = ["INLINE_ARGS_LIMIT", "build_checker", "check_inline_size"]
