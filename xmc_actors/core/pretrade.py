"""The pre-trade hook the pair coordinator calls before it sends anything.

The coordinator runs these checks in-process against a :class:`RiskGrant` the RiskGuard pushed
to it (no remote call per order). ``xmc_actors.core.risk_rules`` provides the real checker;
:class:`AllowAll` exists for tests of the coordinator in isolation and is never the default of
a deployment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..model.pairs import PairIntent


@dataclass(frozen=True, slots=True)
class Denial:
    """One failed check: a reason code from one enum and the numbers behind it."""

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass(frozen=True, slots=True, init=False)
class PreTradeResult:
    """A pair's pre-trade answer: allowed or not, every failed check, the reservation and the facts."""

    allowed: bool
    denials: tuple[Denial, ...] = ()
    reservation_id: str = ""
    facts: dict[str, str] = field(default_factory=dict)

    def __init__(self, allowed: bool, denials: tuple[Denial, ...] = (), reservation_id: str = "",
                 facts: dict[str, str] | None = None) -> None:
        # the generated __init__ of a frozen dataclass goes through object.__setattr__ by name;
        # the slots' own setters do the same at half the cost (one result per pair: hot path)
        _set_allowed(self, allowed)
        _set_denials(self, denials)
        _set_reservation_id(self, reservation_id)
        _set_facts(self, {} if facts is None else facts)


_set_allowed = PreTradeResult.allowed.__set__  # type: ignore[attr-defined]
_set_denials = PreTradeResult.denials.__set__  # type: ignore[attr-defined]
_set_reservation_id = PreTradeResult.reservation_id.__set__  # type: ignore[attr-defined]
_set_facts = PreTradeResult.facts.__set__  # type: ignore[attr-defined]


class PreTradeCheck(Protocol):
    def check_pair(self, intent: PairIntent, now_ns: int) -> PreTradeResult:  # pragma: no cover
        """Check both legs together; on success reserve margin under ``reservation_id``."""

    def allows_order(self, strategy: str, venue: str, instrument: str, reduce_only: bool, now_ns: int) -> Denial | None:  # pragma: no cover
        """Checked before *every* order (replenish and rollback too): trading state, throttles."""

    def on_order_done(self, intent: PairIntent, leg: str, filled_qty: int, price: object | None) -> None:  # pragma: no cover
        """Release what an order no longer needs; commit what it filled."""

    def update_grant(self, grant: object) -> None:  # pragma: no cover
        """Replace the grant (limits, capital, positions, trading states) the RiskGuard pushed."""


class AllowAll:
    """Accepts every pair. For isolated coordinator tests only."""

    def check_pair(self, intent: PairIntent, now_ns: int) -> PreTradeResult:
        return PreTradeResult(True)

    def allows_order(self, strategy: str, venue: str, instrument: str, reduce_only: bool, now_ns: int) -> Denial | None:
        return None

    def on_order_done(self, intent: PairIntent, leg: str, filled_qty: int, price: object | None) -> None:
        pass

    def update_grant(self, grant: object) -> None:
        pass
