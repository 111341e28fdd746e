"""FIX 4.4 connectivity: the ``fix`` venue adapter (a QuickFIX initiator session) and a FIX
exchange on loopback around the simulated venue, for tests and the demo. See docs/fix.md.

Only the parameters are imported here; the engine loads when an adapter or exchange is built.
"""
from __future__ import annotations

from typing import Any

from .params import FixVenueParams


def build_fix(*args: Any, **kwargs: Any) -> Any:
    """Build the ``fix`` adapter (see :func:`xmc_actors.venues.fix.adapter.build_fix`)."""
    from .adapter import build_fix as _build

    return _build(*args, **kwargs)


__all__ = ["FixVenueParams", "build_fix"]
