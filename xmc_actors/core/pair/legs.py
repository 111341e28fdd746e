"""A pair's legs and their orders as the coordinator knows them, and the tombstone of a pair
no longer held in memory."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


from ...model.market import Instrument, Side
from ...model.orders import (
    OrderState,
)
from ...model.pairs import LegIntent, PairState

# ------------------------------------------------------------------------------------ state
@dataclass(slots=True)
class LegOrder:
    """One order of a leg, as the coordinator knows it (wraps the shared :class:`OrderState`)."""

    state: OrderState
    unwind: bool = False
    reported_filled: int = 0        # cumulative filled from a STATUS answer (query), lower bound
    reported_avg: Decimal | None = None
    late_filled: int = 0            # quantity filled after the venue confirmed the cancel
    query_failures: int = 0
    query_failed_since_ns: int | None = None   # when the first of the failed queries in a row failed
    replaces: int = 0
    querying: bool = False
    done_reported: bool = False
    cancel_wanted: bool = False
    cancels: int = 0
    stale_armed: bool = False
    pos_applied: int = 0            # lots of it applied to the two-sided positions
    # rebuilt by a restart (from the trail or the gateways): what it filled before the venue's
    # positions were read is in them already. Unless the venue's reading said how much that was
    # (``pos_based``), its fills are not applied to them again
    recovered: bool = False
    pos_based: bool = False         # pos_applied set from the fills a venue's position reading holds
    retry_counted: bool = False     # an unwind rejected for a passing reason: its attempt was given back
    paced: bool = False             # an unwind that left lots: the leg's next one waited rollback.retry_after_ms

    @property
    def coid(self) -> str:
        return self.state.request.client_order_id

    @property
    def filled(self) -> int:
        return max(self.state.filled_qty, self.reported_filled)

    @property
    def live(self) -> bool:
        return self.state.status.is_live

    @property
    def avg_price(self) -> Decimal | None:
        if self.state.filled_qty >= self.reported_filled:
            return self.state.avg_price
        return self.reported_avg


@dataclass(slots=True)
class Leg:
    spec: LegIntent
    inst: Instrument
    target: int
    orders: list[LegOrder] = field(default_factory=list)
    next_attempt: int = 0
    replenishes: int = 0
    unwinds: int = 0
    blocked: str = ""
    last_entry_short: bool = False

    @property
    def name(self) -> str:
        return self.spec.leg

    @property
    def entry_filled(self) -> int:
        return sum(o.filled for o in self.orders if not o.unwind)

    @property
    def net(self) -> int:
        """Lots held on this leg in the leg's own direction (entry fills minus unwind fills)."""
        n = 0
        for o in self.orders:
            if o.unwind:
                n -= o.filled * (1 if o.state.request.side is not self.spec.side else -1)
            else:
                n += o.filled
        return n

    def live_order(self) -> LegOrder | None:
        for o in self.orders:
            if o.live:
                return o
        return None

    @property
    def ref_price(self) -> Decimal:
        return self.spec.trigger_price or self.spec.limit_price  # type: ignore[return-value]

    def avg_entry_price(self) -> Decimal | None:
        q, notional = 0, Decimal(0)
        for o in self.orders:
            if not o.unwind and o.filled and o.avg_price is not None:
                q += o.filled
                notional += o.avg_price * o.filled
        return (notional / q) if q else None


@dataclass(slots=True)
class Forgotten:
    """What is left of a finished pair evicted from memory (``keep_finished_pairs``): enough to
    refuse its intent again and to escalate a fill that still arrives for one of its orders."""

    strategy: str
    state: PairState
    legs: tuple[tuple[str, str, str, Side], ...]  # (leg, instrument, account, side) per leg
    residual: dict[str, int] | None = None        # signed lots of late fills since, per leg
    trades: set[str] | None = None                # trade ids already applied (a repeated push is a no-op)
