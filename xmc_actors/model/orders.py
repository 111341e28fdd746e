"""Orders, their status machine, execution reports and fills.

The order status machine is data: :data:`ORDER_TRANSITIONS` maps each status to the set of
statuses it may move to, and :func:`check_transition` is the one place that applies it. It
includes the real-world edges: a fill after CANCELED or during PENDING_CANCEL; a rejected
cancel that returns PENDING_CANCEL to ACCEPTED / PARTIALLY_FILLED; and UNKNOWN, for a call
whose outcome is not known (actor died, timeout) until a status query resolves it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

from .errors import IllegalTransition
from .market import Side

FROZEN = ConfigDict(frozen=True, extra="forbid")


class OrderType(str, Enum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    IOC = "IOC"  # fill-and-kill (FAK): fill what is there now, cancel the rest
    FOK = "FOK"  # fill-or-kill: all now, or nothing


class TimeInForce(str, Enum):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(str, Enum):
    NEW = "NEW"                        # built locally, not yet sent
    SUBMITTED = "SUBMITTED"            # sent, no answer yet
    ACCEPTED = "ACCEPTED"              # venue acknowledged, resting
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"  # cancel sent, not yet confirmed
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"                # outcome unknown after a failure; query the venue

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_live(self) -> bool:
        """May still fill at the venue (includes UNKNOWN: it might be live)."""
        return self in LIVE_STATUSES


S = OrderStatus
TERMINAL_STATUSES: Final = frozenset({S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED})
LIVE_STATUSES: Final = frozenset({S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.UNKNOWN})

ORDER_TRANSITIONS: Final[dict[OrderStatus, frozenset[OrderStatus]]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED, S.UNKNOWN}),
    S.SUBMITTED: frozenset({S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED,
                            S.EXPIRED, S.PENDING_CANCEL, S.UNKNOWN}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.UNKNOWN}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED,
                                   S.EXPIRED, S.UNKNOWN}),
    # cancel rejected -> back to SUBMITTED (never acked) / ACCEPTED / PARTIALLY_FILLED; fills may
    # race the cancel; a cancel sent before the ack may cross the venue's reject of the order
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.EXPIRED,
                                 S.REJECTED, S.UNKNOWN}),
    # late fills reported after the venue confirmed a cancel (it happens)
    S.CANCELED: frozenset({S.PARTIALLY_FILLED, S.FILLED}),
    S.EXPIRED: frozenset({S.PARTIALLY_FILLED, S.FILLED}),
    S.REJECTED: frozenset(),
    S.FILLED: frozenset(),
    # SUBMITTED: the venue holds the order but never acknowledged it (a venue or gateway that
    # restarted between the order's arrival and its ack answers a query so): live, cancellable
    S.UNKNOWN: frozenset({S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED,
                          S.REJECTED, S.EXPIRED}),
}


def check_transition(current: OrderStatus, target: OrderStatus, *, order_id: str = "") -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is an edge of the machine."""
    if target not in ORDER_TRANSITIONS[current]:
        raise IllegalTransition("order" + (f" {order_id}" if order_id else ""), current.value, target.value)


def client_order_id(decision_id: str, leg: str, attempt: int) -> str:
    """Deterministic client order id ``{decision_id}:{leg}:{attempt}``; venues de-duplicate on it."""
    return f"{decision_id}:{leg}:{attempt}"


def split_client_order_id(coid: str) -> tuple[str, str, str]:
    """``(decision_id, leg, attempt)`` of an id made by :func:`client_order_id`; ``(coid, "", "")``
    for one not in that form."""
    parts = coid.rsplit(":", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else (coid, "", "")


class RejectReason(str, Enum):
    """Why an order was refused: by the venue (definitive) or by us (a local denial)."""

    MARKET_CLOSED = "MARKET_CLOSED"
    PRICE_OUT_OF_LIMIT = "PRICE_OUT_OF_LIMIT"
    LIMIT_LOCKED = "LIMIT_LOCKED"
    HALTED = "HALTED"
    OFF_TICK = "OFF_TICK"
    BAD_QUANTITY = "BAD_QUANTITY"
    QTY_ABOVE_MAX = "QTY_ABOVE_MAX"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    FOK_UNFILLABLE = "FOK_UNFILLABLE"
    DUPLICATE_ORDER = "DUPLICATE_ORDER"
    THROTTLED = "THROTTLED"
    RISK = "RISK"
    VENUE_ERROR = "VENUE_ERROR"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    TOO_LATE_TO_CANCEL = "TOO_LATE_TO_CANCEL"
    OFFSET_NOT_ALLOWED = "OFFSET_NOT_ALLOWED"          # an offset the venue's rule cannot take
    POSITION_INSUFFICIENT = "POSITION_INSUFFICIENT"    # a close of more than the available position
    OTHER = "OTHER"

    @property
    def is_final(self) -> bool:
        """A reason that replenishing at another price will not cure."""
        return self in FINAL_REJECTS


FINAL_REJECTS: Final = frozenset({RejectReason.MARKET_CLOSED, RejectReason.LIMIT_LOCKED, RejectReason.HALTED,
                                  RejectReason.UNKNOWN_INSTRUMENT, RejectReason.INSUFFICIENT_MARGIN,
                                  RejectReason.OFFSET_NOT_ALLOWED})
# POSITION_INSUFFICIENT is curable: the replenish chooses its offset again (OPEN once the lots
# to close have gone)


class Offset(str, Enum):
    """Whether an order opens or closes (开/平), and at SHFE and INE which lots it closes
    (平今 today's, 平昨 yesterday's). ``None`` on an order to a netting (foreign) venue. The rule
    of each venue is ``Venue.offsets``; :mod:`xmc_actors.core.positions` applies it."""

    OPEN = "OPEN"
    CLOSE = "CLOSE"
    CLOSE_TODAY = "CLOSE_TODAY"
    CLOSE_YESTERDAY = "CLOSE_YESTERDAY"

Price = Annotated[Decimal, Field(allow_inf_nan=False, gt=0)]


class OrderRequest(BaseModel):
    """What the coordinator asks a gateway to place."""

    model_config = FROZEN
    client_order_id: Annotated[str, Field(min_length=1, max_length=128)]
    decision_id: str
    leg: str
    attempt: NonNegativeInt = 0
    account: str
    instrument: str
    side: Side
    qty: PositiveInt
    order_type: OrderType = OrderType.LIMIT
    price: Price | None = None
    tif: TimeInForce = TimeInForce.DAY
    reduce_only: bool = False
    owner: str = ""
    sent_ns: int = 0
    offset: Offset | None = None  # OPEN / CLOSE...: two-sided (Chinese) venues; None: netting venues

    @model_validator(mode="after")
    def _check(self) -> "OrderRequest":
        if self.order_type is not OrderType.MARKET and self.price is None:
            raise ValueError(f"{self.order_type.value} order {self.client_order_id}: price is required")
        return self

    @property
    def immediate(self) -> bool:
        """Fills what it can at once and never rests (IOC, FOK, MARKET)."""
        return self.order_type in (OrderType.IOC, OrderType.FOK, OrderType.MARKET) or self.tif in (
            TimeInForce.IOC, TimeInForce.FOK)


class Fill(BaseModel):
    """One execution. ``trade_id`` is unique per venue; applying a fill twice is a no-op."""

    model_config = FROZEN
    trade_id: str
    client_order_id: str
    venue_order_id: str
    instrument: str
    side: Side
    qty: PositiveInt
    price: Price
    ts_ns: int
    fee: Decimal = Decimal("0")


class ExecReportKind(str, Enum):
    ACK = "ACK"
    FILL = "FILL"
    CANCELED = "CANCELED"
    CANCEL_REJECTED = "CANCEL_REJECTED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    STATUS = "STATUS"  # answer to a status query (reconciliation)


class ExecutionReport(BaseModel):
    """What a venue (through its gateway) says about an order."""

    model_config = FROZEN
    kind: ExecReportKind
    client_order_id: str
    venue_order_id: str = ""
    venue: str
    instrument: str
    status: OrderStatus
    filled_qty: NonNegativeInt = 0
    leaves_qty: NonNegativeInt = 0
    avg_price: Decimal | None = None
    fill: Fill | None = None
    reason: RejectReason | None = None
    text: str = ""
    venue_ts_ns: int = 0
    ts_ns: int = 0
    decision_id: str = ""
    leg: str = ""


@dataclass(slots=True, eq=False)
class OrderState:
    """The order as one side (gateway, coordinator or simulated venue) knows it. Updated only
    through :meth:`transition`, :meth:`apply_fill` and :meth:`apply`.

    Plain mutable state, never sent anywhere: a slotted dataclass, not a pydantic model, since
    each order's three copies are updated several times on the order path. What goes into it
    is already validated (the :class:`OrderRequest`, the reports and fills)."""

    request: OrderRequest
    status: OrderStatus = OrderStatus.NEW
    venue_order_id: str = ""
    filled_qty: int = 0
    notional_filled: Decimal = Decimal("0")
    trade_ids: set[str] = field(default_factory=set)
    reject_reason: RejectReason | None = None
    prev_status: OrderStatus | None = None  # the state a PENDING_CANCEL came from

    @property
    def leaves_qty(self) -> int:
        if self.status.is_terminal and self.status is not OrderStatus.FILLED:
            return 0
        return max(self.request.qty - self.filled_qty, 0)

    @property
    def avg_price(self) -> Decimal | None:
        return (self.notional_filled / self.filled_qty) if self.filled_qty else None

    def transition(self, target: OrderStatus) -> None:
        if target is self.status and target is not OrderStatus.PARTIALLY_FILLED:
            return  # idempotent re-statement
        check_transition(self.status, target, order_id=self.request.client_order_id)
        if target is OrderStatus.PENDING_CANCEL:
            self.prev_status = self.status
        self.status = target

    def apply_fill(self, fill: Fill) -> bool:
        """Apply one fill; returns False if this trade id was already applied (no-op)."""
        if fill.trade_id in self.trade_ids:
            return False
        self.trade_ids.add(fill.trade_id)
        self.filled_qty += fill.qty
        self.notional_filled += fill.price * fill.qty
        late = self.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED)
        if self.filled_qty >= self.request.qty:
            self.transition(OrderStatus.FILLED)
        elif late:
            pass  # a late partial fill does not re-open a canceled order; quantity is counted
        elif self.status is not OrderStatus.PENDING_CANCEL:
            self.transition(OrderStatus.PARTIALLY_FILLED)
        return True

    def apply(self, report: ExecutionReport) -> bool:
        """Apply a report; returns True if it changed anything."""
        if report.venue_order_id:
            self.venue_order_id = report.venue_order_id
        if report.kind is ExecReportKind.FILL and report.fill is not None:
            return self.apply_fill(report.fill)
        if report.kind is ExecReportKind.CANCEL_REJECTED:
            if self.status is OrderStatus.PENDING_CANCEL:
                # back to what we knew before the cancel: an order never acknowledged stays
                # SUBMITTED (it may still be rejected or filled), never a guessed ACCEPTED
                back = self.prev_status or OrderStatus.SUBMITTED
                if back is OrderStatus.UNKNOWN:
                    back = OrderStatus.SUBMITTED
                if self.filled_qty and back in (OrderStatus.ACCEPTED, OrderStatus.SUBMITTED):
                    back = OrderStatus.PARTIALLY_FILLED
                self.transition(back)
                return True
            return False
        before = self.status
        target = report.status
        if report.kind is ExecReportKind.ACK and self.status not in (OrderStatus.NEW, OrderStatus.SUBMITTED, OrderStatus.UNKNOWN):
            return False  # a pushed fill or cancel overtook the ack: the ack is stale, not news
        if target is OrderStatus.PARTIALLY_FILLED and self.filled_qty == 0:
            target = OrderStatus.ACCEPTED
        if target is self.status:
            return False
        if self.status is OrderStatus.FILLED:
            return False  # nothing moves a filled order
        if report.kind is ExecReportKind.REJECTED:
            self.reject_reason = report.reason
        self.transition(target)
        return self.status is not before


# Compact pickling across Ray calls (order path): see model/fastpickle.py.
from .fastpickle import fast_pickle as _fast_pickle  # noqa: E402

_fast_pickle(OrderRequest, Fill, ExecutionReport)
