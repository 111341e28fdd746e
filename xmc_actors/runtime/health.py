"""Moved to :mod:`xmc_actors.actors.health` (the coordinator, an actor, probes its gateways
with it); re-exported here for existing imports."""
from ..actors.health import probe_gateways, probe_gateways_async

__all__ = ["probe_gateways", "probe_gateways_async"]
