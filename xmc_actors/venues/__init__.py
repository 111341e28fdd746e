"""Adapters a venue gateway can drive. ``sim``: the simulated exchange.

:func:`build_adapter` makes the adapter a gateway is configured with; the ``factory`` slot of
each registry entry points at its builder.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..core.clock import Clock
from ..model.market import Instrument, Venue
from ..runtime.registry import ADAPTERS
from .sim import SimExchange, VenueDisconnected
from .sim_config import SimVenueParams


def build_sim(params: SimVenueParams, venue: Venue, instruments: Sequence[Instrument], clock: Clock) -> SimExchange:
    return SimExchange(venue, instruments, params, clock)


def build_adapter(name: str, params: dict[str, Any], venue: Venue, instruments: Sequence[Instrument],
                  clock: Clock) -> tuple[Any, Any]:
    """The adapter ``name`` with validated ``params``; returns (adapter, params model)."""
    entry = ADAPTERS.get(name)
    p = entry.params.model_validate(params)
    if entry.factory is None:
        raise KeyError(f"venue adapter {name!r} has no implementation")
    return entry.factory(p, venue, instruments, clock), p


ADAPTERS.register("sim", SimVenueParams, build_sim, doc="simulated exchange with seeded fault injection")

__all__ = ["SimExchange", "SimVenueParams", "VenueDisconnected", "build_adapter"]
