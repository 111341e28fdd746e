"""Moved to :mod:`xmc_actors.model.registry` (strategies, venues and feeds register themselves
there, below the runtime); re-exported here for existing imports."""
from ..model.registry import ADAPTERS, FEEDS, STRATEGIES, Entry, Registry

__all__ = ["ADAPTERS", "FEEDS", "STRATEGIES", "Entry", "Registry"]
