"""What the pair core asks its shell to do: the commands :class:`~.book.PairBook` returns.

Its events are not commands: the book writes them to its injected sink while it decides
(docs/architecture.md, "How a core acts")."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Union


from ...model.orders import (
    OrderRequest,
)
from ...model.pairs import PairSummary

# ------------------------------------------------------------------------------------ commands
@dataclass(frozen=True, slots=True)
class Place:
    """Send ``req`` to the gateway of ``venue`` (``place``)."""

    decision_id: str
    venue: str
    req: OrderRequest


@dataclass(frozen=True, slots=True)
class Cancel:
    decision_id: str
    venue: str
    client_order_id: str
    account: str = ""  # with the venue, picks the gateway (PairBook.route_of)


@dataclass(frozen=True, slots=True)
class Query:
    decision_id: str
    venue: str
    client_order_id: str
    account: str = ""  # with the venue, picks the gateway (PairBook.route_of)


class TimerKind(str, Enum):
    DEADLINE = "deadline"          # the pair's deadline: wind down if still working
    ACK = "ack"                    # an order's ack timeout: query it
    CANCEL = "cancel"              # a cancel's confirmation timeout: query the order
    QUERY = "query"                # a failed query, retried after a backoff
    STALE = "stale"                # a resting order behind the other leg: cancel it to replenish
    ROLLBACK = "rollback"          # the rollback time budget: book the residual or escalate
    UNWIND_RETRY = "unwind_retry"  # the next unwind: after one refused for a passing reason, or one that left lots
    WIND_DOWN = "wind_down"        # the wind-down's bound: escalate a pair still WINDING_DOWN


_PER_ORDER: Final = frozenset({TimerKind.ACK, TimerKind.CANCEL, TimerKind.QUERY, TimerKind.STALE})


@dataclass(frozen=True, slots=True)
class TimerKey:
    """Which timer of a pair fired: its kind, the order it watches (per-order kinds) and, for a
    query retry, which failure armed it. ``str()`` is the form the ledger's TIMER events carry
    (``ack:d1:A:0``, ``query:d1:A:0:2``, ``deadline``); :meth:`parse` reads it back."""

    kind: TimerKind
    coid: str = ""
    n: int = 0

    def __post_init__(self) -> None:
        if (self.kind in _PER_ORDER) != bool(self.coid):
            raise ValueError(f"timer {self.kind.value}: a client order id is {'required' if self.kind in _PER_ORDER else 'not taken'}")

    def __str__(self) -> str:
        if self.kind is TimerKind.QUERY:
            return f"query:{self.coid}:{self.n}"
        return f"{self.kind.value}:{self.coid}" if self.coid else self.kind.value

    @classmethod
    def parse(cls, key: "TimerKey | str") -> "TimerKey":
        """A key as :meth:`__str__` writes it (ValueError names what is wrong)."""
        if isinstance(key, TimerKey):
            return key
        kind_s, _, arg = str(key).partition(":")
        try:
            kind = TimerKind(kind_s)
        except ValueError:
            raise ValueError(f"timer key {key!r}: unknown kind {kind_s!r}") from None
        if kind is TimerKind.QUERY:
            coid, _, n = arg.rpartition(":")
            if not coid or not n.isdigit():
                raise ValueError(f"timer key {key!r}: a query timer is query:<client order id>:<failures>")
            return cls(kind, coid, int(n))
        return cls(kind, arg)


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Call :meth:`PairBook.on_timer` with ``(decision_id, key)`` at ``at_ns`` (clock time)."""

    decision_id: str
    key: TimerKey
    at_ns: int


@dataclass(frozen=True, slots=True)
class CancelTimers:
    """Drop every timer still armed for ``decision_id``: the pair finished HEDGED or ROLLED_BACK
    with no order live, so none of them could act. Saves a wake-up per timer on a busy
    coordinator, and a timer of a pair's first life cannot fire into a life re-opened by a late
    fill (which arms its own). An ESCALATED pair keeps its timers."""

    decision_id: str


@dataclass(frozen=True, slots=True)
class NotifyDone:
    """Push ``summary`` to the strategy (and the risk guard): ``on_pair_done(summary)``."""

    strategy: str
    summary: PairSummary


@dataclass(frozen=True, slots=True)
class HaltStrategy:
    strategy: str
    decision_id: str
    reason: str


Command = Union[Place, Cancel, Query, StartTimer, CancelTimers, NotifyDone, HaltStrategy]
