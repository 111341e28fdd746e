"""Error types shared across the model.

Every error that reaches a user names the field (or the thing) and the reason.
"""
from __future__ import annotations


class XmcError(Exception):
    """Base class of every error raised deliberately by xmc-actors."""


class UnitError(XmcError, ValueError):
    """An unknown unit, or a conversion between incompatible dimensions."""


class CurrencyError(XmcError, ValueError):
    """An unknown currency, or an FX rate that is missing or not usable."""


class IllegalTransition(XmcError):
    """A state machine was asked to move along an edge it does not have."""

    def __init__(self, machine: str, current: str, target: str, detail: str = "") -> None:
        self.machine, self.current, self.target = machine, current, target
        msg = f"{machine}: illegal transition {current} -> {target}"
        super().__init__(msg + (f" ({detail})" if detail else ""))


class VenueDisconnected(Exception):
    """The venue cannot be reached: nothing was sent (a definitive, local outcome).

    Raised by a venue adapter (:mod:`xmc_actors.venues`), caught by the gateway core
    (:mod:`xmc_actors.core.gateway_core`): it lives here, below both.
    """


class PriceError(XmcError, ValueError):
    """A price that is not finite, not positive where it must be, or off the tick grid."""
