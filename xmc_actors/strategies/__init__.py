"""Built-in strategies. Each registers its parameter model (and class) in the registry."""
from ..runtime.registry import STRATEGIES
from .params import BUILTIN_PARAMS

for _name, _params in BUILTIN_PARAMS.items():
    if _name not in STRATEGIES.entries:
        STRATEGIES.register(_name, _params)
