"""Moved to :mod:`xmc_actors.actors.metrics` (every actor owns a ``Metrics``; actors may not import
the runtime); re-exported here for existing imports."""
from ..actors.metrics import *  # noqa: F401,F403
from ..actors.metrics import __all__  # noqa: F401
