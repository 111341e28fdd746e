"""Adapters a venue gateway can drive. ``sim``: the simulated exchange.

:func:`build_adapter` makes the adapter a gateway is configured with; the ``factory`` slot of
each registry entry points at its builder.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..core.clock import Clock
from ..model.market import Instrument, Venue
from ..model.registry import ADAPTERS
from .journal import VenueJournal, journal_path
from .sim import SimExchange, VenueDisconnected
from .sim_config import SimVenueParams


def build_sim(params: SimVenueParams, venue: Venue, instruments: Sequence[Instrument], clock: Clock, *,
              gateway: str = "", restart: bool = False) -> SimExchange:
    """The simulated venue of gateway ``gateway``. With ``params.state_dir`` its memory is kept
    in a journal there: a fresh start (``restart=False``) begins a new one, a restarted gateway
    reopens it and gets the venue's orders and fills back."""
    journal = None
    if params.state_dir:
        journal = VenueJournal(journal_path(params.state_dir, gateway or venue.code),
                               fresh=not (restart or params.keep_state))
    return SimExchange(venue, instruments, params, clock, journal=journal)


def build_adapter(name: str, params: dict[str, Any], venue: Venue, instruments: Sequence[Instrument],
                  clock: Clock, *, gateway: str = "", restart: bool = False) -> tuple[Any, Any]:
    """The adapter ``name`` with validated ``params``; returns (adapter, params model).

    ``gateway`` names the gateway it serves; ``restart`` says the gateway is a restarted
    instance (Ray reconstructed it), so an adapter that can should reconnect to the venue's
    existing state rather than start afresh."""
    entry = ADAPTERS.get(name)
    p = entry.params.model_validate(params)
    if entry.factory is None:
        raise KeyError(f"venue adapter {name!r} has no implementation")
    return entry.factory(p, venue, instruments, clock, gateway=gateway, restart=restart), p


ADAPTERS.register("sim", SimVenueParams, build_sim, doc="simulated exchange with seeded fault injection")
from .fix import FixVenueParams, build_fix  # noqa: E402
ADAPTERS.register("fix", FixVenueParams, build_fix, doc="FIX 4.4 session (QuickFIX initiator); docs/fix.md")
from .ctp import CtpVenueParams, build_ctp  # noqa: E402
ADAPTERS.register("ctp", CtpVenueParams, build_ctp,
                  doc="CTP trader session (openctp-ctp) to a broker's front; docs/operations.md")

__all__ = ["SimExchange", "SimVenueParams", "VenueDisconnected", "build_adapter"]
