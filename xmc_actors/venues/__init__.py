"""Adapters a venue gateway can drive. ``sim``: the simulated exchange."""
from ..runtime.registry import ADAPTERS
from .sim_config import SimVenueParams

if "sim" not in ADAPTERS.entries:
    ADAPTERS.register("sim", SimVenueParams, doc="simulated exchange with seeded fault injection")
