"""CTP connectivity: the ``ctp`` venue adapter on the CTP trader API (``openctp-ctp``), for
SHFE, INE, DCE, CZCE, CFFEX and GFEX through a broker's CTP front (or SimNow / openctp's
simulation fronts). See docs/operations.md, "Connecting to a CTP front".

Only the parameters are imported here: the binding (whose import needs the zh_CN.GB18030
locale, :mod:`.binding`) loads when an adapter is built.
"""
from __future__ import annotations

from typing import Any

from .params import CtpVenueParams


def build_ctp(*args: Any, **kwargs: Any) -> Any:
    """Build the ``ctp`` adapter (see :func:`xmc_actors.venues.ctp.adapter.build_ctp`)."""
    from .adapter import build_ctp as _build

    return _build(*args, **kwargs)


__all__ = ["CtpVenueParams", "build_ctp"]
