"""The pair transaction as a pure core: inputs in, commands out (配对交易状态机).

:class:`PairMachine` is one pair; :class:`PairBook` holds many pairs in flight, the trading
states, the pre-trade checker and the client-order-id index. Neither knows Ray or asyncio: the
:class:`~xmc_actors.actors.coordinator.PairCoordinator` actor feeds them inputs (an intent, the
result or failure of a gateway call, a pushed report, a timer that fired, a trading-state change)
and executes the commands they return (:class:`Place`, :class:`Cancel`, :class:`Query`,
:class:`StartTimer`, :class:`CancelTimers`, :class:`Emit`, :class:`NotifyDone`, :class:`HaltStrategy`).

Lifecycle (``PairState``)::

    NEW ─risk ok─▶ WORKING ─both legs at target─▶ HEDGED
     │               │ a leg short with no live order
     │               ▼
     │          REPLENISHING (cancel confirmed, re-send remainder at a chased price, within budget)
     │               │ final reject / budget spent / deadline / halt: cancel what works, then
     │               ▼
     │          ROLLING_BACK (unwind the excess on the over-filled leg, IOC within the rollback policy)
     │               ├─▶ ROLLED_BACK (flat) or HEDGED (balanced at a smaller size)
     │               ├─▶ HEDGED, residual booked (unwind impossible, what is left is smaller than one
     │               │   leg-B lot: carried in the strategy's residual book, yellow; red past its limit)
     │               └─▶ ESCALATED (red alert, strategy halted, exact residual recorded)
     └─refused─▶ REFUSED

A late fill (reported after a confirmed cancel) on a finished pair re-opens it to
ROLLING_BACK; on an ESCALATED pair it re-states the residual.

Three kinds of outcome are never mixed: a local denial (pre-trade check or trading state)
blocks a leg; a definitive venue reject is replenished (curable reasons) or blocks the leg
(:attr:`RejectReason.is_final`); an unknown outcome (call failed, no ack) moves the order to
UNKNOWN and is resolved by :class:`Query` before anything else is sent for that leg.
"""
from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Callable, Final, Iterable, Mapping, Union

from pydantic import ValidationError

from ..model.config import route_key
from ..model.coordinator import CoordinatorConfig
from ..model.errors import IllegalTransition
from ..model.events import Event, EventKind
from ..model.market import Instrument, Side, Venue
from ..model.orders import (
    ExecReportKind, ExecutionReport, Offset, OrderRequest, OrderState, OrderStatus, OrderType, RejectReason,
    TimeInForce, client_order_id, split_client_order_id,
)
from ..model.pairs import ExecutionMode, LegIntent, LegSummary, PairIntent, PairState, PairSummary
from ..model.risk import TradingState
from .alerts import PAIR_ESCALATION, RESIDUAL_BOOK, coordinator_alert
from .calendar import instrument_session_state
from .clock import Clock
from .positions import OffsetError, TwoSidedBook, choose_offset, lock_is_cheaper
from .pretrade import AllowAll, Denial, PreTradeCheck
from .sink import EventMaker
from .sizing import balanced_size, is_balanced, round_to_lot

P = PairState
PAIR_TRANSITIONS: Final[dict[PairState, frozenset[PairState]]] = {
    P.NEW: frozenset({P.WORKING, P.REFUSED}),
    P.WORKING: frozenset({P.REPLENISHING, P.ROLLING_BACK, P.HEDGED, P.ROLLED_BACK, P.ESCALATED}),
    P.REPLENISHING: frozenset({P.ROLLING_BACK, P.HEDGED, P.ROLLED_BACK, P.ESCALATED}),
    P.ROLLING_BACK: frozenset({P.HEDGED, P.ROLLED_BACK, P.ESCALATED}),
    # a fill reported after a confirmed cancel re-opens a finished pair
    P.HEDGED: frozenset({P.ROLLING_BACK, P.ESCALATED}),
    P.ROLLED_BACK: frozenset({P.ROLLING_BACK, P.ESCALATED}),
    P.ESCALATED: frozenset(),
    P.REFUSED: frozenset(),
}
BPS = Decimal(10_000)



#: denials that pass by themselves: an unwind refused for one of these is tried again after
#: UNWIND_RETRY_NS instead of being escalated (HALTED and the like are final)
TRANSIENT_DENIALS = frozenset({"ORDER_RATE_EXCEEDED", "NO_GRANT", "GRANT_EXPIRED"})
UNWIND_RETRY_NS = 200_000_000

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


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Call :meth:`PairBook.on_timer` with ``(decision_id, key)`` at ``at_ns`` (clock time)."""

    decision_id: str
    key: str
    at_ns: int


@dataclass(frozen=True, slots=True)
class CancelTimers:
    """Drop every timer still armed for ``decision_id``: the pair finished HEDGED or ROLLED_BACK
    with no order live, so none of them could act. Saves a wake-up per timer on a busy
    coordinator, and a timer of a pair's first life cannot fire into a life re-opened by a late
    fill (which arms its own). An ESCALATED pair keeps its timers."""

    decision_id: str


class Deferred:
    """A payload value computed only when its event is built (after the orders have left)."""

    __slots__ = ("fn", "args", "kwargs")

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


@dataclass(frozen=True, slots=True)
class Emit:
    """Write an event. ``spec`` defers building it (ids, pydantic) until the orders are on their way;
    a :class:`Deferred` value in it is computed then too."""

    event: Event | None = None
    spec: dict[str, Any] | None = None

    def resolve(self, maker: EventMaker) -> Event:
        if self.event is not None:
            return self.event
        spec = dict(self.spec or {})
        for k, v in spec.items():
            if type(v) is Deferred:
                spec[k] = v()
        return maker.make(spec.pop("kind"), **spec)


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


Command = Union[Place, Cancel, Query, StartTimer, CancelTimers, Emit, NotifyDone, HaltStrategy]


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
    replaces: int = 0
    querying: bool = False
    done_reported: bool = False
    cancel_wanted: bool = False
    cancels: int = 0
    stale_armed: bool = False
    pos_applied: int = 0            # lots of it applied to the two-sided positions

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


# ------------------------------------------------------------------------------------ machine
class PairMachine:
    """One pair transaction. Created by :class:`PairBook`; every input returns commands."""

    def __init__(self, book: "PairBook", intent: PairIntent, legs: tuple[Leg, Leg], now_ns: int) -> None:
        self.book = book
        self.intent = intent
        self.legs = legs
        self.by_name = {leg.name: leg for leg in legs}
        self.state = PairState.NEW
        self.started_ns = now_ns
        self.ended_ns = 0
        self.deadline_ns = intent.deadline_ns or (now_ns + book.config.default_deadline_ms * 1_000_000)
        self.winding_down = ""          # reason the pair stopped trying to complete
        self.last_denial: Denial | None = None  # the gate's answer to the last order tried
        self.rollback_started_ns = 0
        self.reason = ""
        self.residual: dict[str, Any] | None = None
        self.residual_booked: dict[str, Any] | None = None  # a sub-lot residual carried in the strategy's book
        self.pushed_nets: tuple[int, ...] | None = None  # the legs' nets in the last summary pushed
        self.lead: Leg | None = None
        self.offset_reason = ""  # why the last order made got its offset (ORDER_SENT)
        self.out: list[Command] = []
        self.timer_seq = 0
        self.acked_ns: dict[str, int] = {}
        self.unhedged_since = 0
        self.unhedged_total = 0

    # -- helpers ---------------------------------------------------------------------------
    @property
    def did(self) -> str:
        return self.intent.decision_id

    def _emit(self, kind: EventKind, *, leg: Leg | None = None, reason: str = "", latency_us: float | None = None,
              **payload: Any) -> None:
        spec = dict(payload)
        spec.update(kind=kind, decision_id=self.did, strategy=self.intent.strategy,
                    account=leg.spec.account if leg else "", venue=leg.inst.venue if leg else "",
                    instrument=leg.spec.instrument if leg else "", reason=reason, latency_us=latency_us,
                    ts_ns=self.book.clock.now_ns())
        self.out.append(Emit(spec=spec))

    def _to(self, target: PairState, reason: str) -> None:
        if target not in PAIR_TRANSITIONS[self.state]:
            raise IllegalTransition(f"pair {self.did}", self.state.value, target.value, reason)
        before = self.state
        self.state = target
        if target.is_terminal and not before.is_terminal:
            self.book._finished(self.did)
        # "state" is the ledger's convention (lifted into its outcome column); from/to for readers.
        # A terminal state carries the pair's unhedged time as this machine measured it (legs off
        # their ratio), so the run summary and the report read one figure from the ledger
        extra = {"unhedged_ms": self.unhedged_ns() / 1e6} if target.is_terminal else {}
        self._emit(EventKind.PAIR_STATE, reason=reason, **{"from": before.value, "to": target.value,
                                                          "state": target.value,
                                                          "nets": {lg.name: lg.net for lg in self.legs}}, **extra)

    def _timer(self, key: str, delay_ns: int) -> None:
        self.out.append(StartTimer(self.did, key, self.book.clock.now_ns() + max(delay_ns, 0)))

    def _find(self, coid: str) -> tuple[Leg, LegOrder] | None:
        for leg in self.legs:
            for o in leg.orders:
                if o.coid == coid:
                    return leg, o
        return None

    def flush(self) -> list[Command]:
        out, self.out = self.out, []
        return out

    # -- start -----------------------------------------------------------------------------
    def start(self) -> None:
        self._to(PairState.WORKING, "risk ok")
        self._timer("deadline", self.deadline_ns - self.book.clock.now_ns())
        if self.intent.mode in (ExecutionMode.LEAD_LAG, ExecutionMode.SEQUENTIAL):
            self.lead = self._choose_lead()
            self._send_entry(self.lead, self.lead.target, chase=0)
        else:
            for leg in self.legs:  # both legs in one batch: the actor sends them concurrently
                self._send_entry(leg, leg.target, chase=0)
        self._settle()

    def _choose_lead(self) -> Leg:
        """The leg sent first: leg A in SEQUENTIAL mode (what a desk legging by hand does); in
        LEAD_LAG the one with less visible liquidity (the harder fill), A when unknown or equal."""
        a, b = self.legs
        if self.intent.mode is ExecutionMode.SEQUENTIAL:
            return a
        va = a.spec.visible_qty if a.spec.visible_qty is not None else 0
        vb = b.spec.visible_qty if b.spec.visible_qty is not None else 0
        return b if vb < va else a

    # -- pricing ---------------------------------------------------------------------------
    def _aggressive(self, leg: Leg) -> Decimal:
        """The trigger price moved against us by the intent's max slippage, on the tick grid."""
        ref = leg.ref_price
        d = leg.spec.side.sign
        raw = ref * (1 + d * self.intent.max_slippage_bps / BPS)
        px = leg.inst.round_price(raw, "down" if d > 0 else "up")
        if leg.spec.limit_price is not None and (px - leg.spec.limit_price) * d < 0:
            px = leg.spec.limit_price
        return px

    def _bps_ticks(self, leg: Leg, bps: Decimal) -> int:
        return int((leg.ref_price * bps / BPS / leg.inst.tick_size).to_integral_value(rounding=ROUND_FLOOR))

    def _entry_price(self, leg: Leg, chase: int) -> tuple[Decimal, int]:
        lag = self.lead is not None and leg is not self.lead
        speed = self.intent.mode is ExecutionMode.SPEED or lag
        base = self._aggressive(leg) if speed else (leg.spec.limit_price or leg.ref_price)
        budget = self.intent.replenish
        ticks = 0
        if chase and budget.max_attempts:
            ticks = math.ceil(chase * budget.max_chase_ticks / budget.max_attempts)
            ticks = min(ticks, budget.max_chase_ticks, self._bps_ticks(leg, budget.max_chase_bps))
        px = base + leg.spec.side.sign * ticks * leg.inst.tick_size
        return max(px, leg.inst.tick_size), ticks

    def _order_kind(self, leg: Leg) -> tuple[OrderType, TimeInForce]:
        lag = self.lead is not None and leg is not self.lead
        if self.intent.mode in (ExecutionMode.SPEED, ExecutionMode.QUANTITY) or lag:
            return OrderType.IOC, TimeInForce.IOC
        return OrderType.LIMIT, TimeInForce.DAY

    # -- sending ---------------------------------------------------------------------------
    def _new_request(self, leg: Leg, side: Side, qty: int, price: Decimal, otype: OrderType, tif: TimeInForce,
                     reduce_only: bool) -> OrderRequest:
        attempt = leg.next_attempt
        leg.next_attempt += 1
        offset, self.offset_reason = self.book.choose_offset(leg.spec.account, leg.inst, side, qty,
                                                             self.intent.created_ns, price)
        return OrderRequest(
            client_order_id=client_order_id(self.did, leg.name, attempt), decision_id=self.did, leg=leg.name,
            attempt=attempt, account=leg.spec.account, instrument=leg.spec.instrument, side=side, qty=qty,
            order_type=otype, price=price, tif=tif, reduce_only=reduce_only, owner=self.book.owner,
            sent_ns=self.book.clock.now_ns(), offset=offset,
        )

    def _send(self, leg: Leg, req: OrderRequest, unwind: bool) -> bool:
        denial = self.last_denial = self.book.gate(self.intent.strategy, leg, req.reduce_only)
        if denial is not None:
            self._emit(EventKind.RISK_DECISION, leg=leg, reason=str(denial), allowed=False,
                       client_order_id=req.client_order_id, unwind=unwind)
            return False
        order = LegOrder(OrderState(request=req), unwind=unwind)
        order.state.transition(OrderStatus.SUBMITTED)
        leg.orders.append(order)
        self.book.index[req.client_order_id] = self.did
        self.book.reserve(req, self.intent.created_ns)
        self._emit(EventKind.ORDER_SENT, leg=leg, client_order_id=req.client_order_id, leg_name=leg.name,
                   attempt=req.attempt, side=req.side.value, qty=req.qty, price=str(req.price),
                   order_type=req.order_type.value, tif=req.tif.value, reduce_only=req.reduce_only, unwind=unwind,
                   **({"offset": req.offset.value, "offset_reason": self.offset_reason} if req.offset else {}))
        self.out.append(Place(self.did, leg.inst.venue, req))
        self._timer(f"ack:{req.client_order_id}", self.book.config.ack_timeout_ms * 1_000_000)
        return True

    def _stale_wait_ns(self) -> int:
        b = self.intent.replenish
        return max(b.max_time_ms * 1_000_000 // (b.max_attempts + 1), 1_000_000)

    def _send_entry(self, leg: Leg, qty: int, chase: int) -> bool:
        price, ticks = self._entry_price(leg, chase)
        otype, tif = self._order_kind(leg)
        req = self._new_request(leg, leg.spec.side, qty, price, otype, tif, self.intent.reduce_only)
        if chase:
            self._emit(EventKind.REPLENISH, leg=leg, client_order_id=req.client_order_id, attempt=chase,
                       qty=qty, price=str(price), chase_ticks=ticks)
        ok = self._send(leg, req, unwind=False)
        if not ok:
            leg.blocked = "DENIED"
        return ok

    def _cancel(self, leg: Leg, order: LegOrder, why: str) -> None:
        st = order.state.status
        if st in (OrderStatus.PENDING_CANCEL, OrderStatus.UNKNOWN) or not order.live:
            return
        if order.cancels >= self.book.config.query_retries:
            if self.state is PairState.ESCALATED:
                return
            self._escalate(f"order {order.coid}: {order.cancels} cancels not confirmed")
            return
        order.cancels += 1
        order.cancel_wanted = True
        order.state.transition(OrderStatus.PENDING_CANCEL)
        self._emit(EventKind.CANCEL_SENT, leg=leg, reason=why, client_order_id=order.coid)
        self.out.append(Cancel(self.did, leg.inst.venue, order.coid, leg.spec.account))
        self._timer(f"cancel:{order.coid}", self.book.config.cancel_timeout_ms * 1_000_000)

    def _query(self, leg: Leg, order: LegOrder, why: str) -> None:
        if order.querying:
            return
        order.querying = True
        self._emit(EventKind.RECONCILE, leg=leg, reason=why, client_order_id=order.coid, action="query")
        self.out.append(Query(self.did, leg.inst.venue, order.coid, leg.spec.account))

    # -- inputs ----------------------------------------------------------------------------
    def on_reports(self, reports: Iterable[ExecutionReport], source: str) -> None:
        for rep in reports:
            self._apply(rep, source)
        self._settle()

    def _apply(self, rep: ExecutionReport, source: str) -> None:
        found = self._find(rep.client_order_id)
        if found is None:
            self.book._bad_input("report", f"report for unknown order {rep.client_order_id}", self.did)
            return
        leg, order = found
        before_status, before_filled = order.state.status, order.filled
        # a fill whose trade id this order already booked (the venue or a recovery said it
        # twice): recorded as what it is, a repeat that books nothing
        repeat = rep.fill is not None and rep.fill.trade_id in order.state.trade_ids
        latency = None
        if rep.kind in (ExecReportKind.ACK, ExecReportKind.REJECTED) and order.coid not in self.acked_ns:
            self.acked_ns[order.coid] = self.book.clock.now_ns()
            latency = (self.book.clock.now_ns() - order.state.request.sent_ns) / 1_000
        if rep.kind is not ExecReportKind.STATUS and rep.filled_qty > order.reported_filled:
            # every report carries the venue's cumulative filled quantity: a lower bound of the truth
            # that reveals fills whose own report was lost (a place answer that never came back)
            order.reported_filled = rep.filled_qty
            order.reported_avg = rep.avg_price if rep.avg_price is not None else order.reported_avg
        try:
            if rep.kind is ExecReportKind.STATUS:
                self._apply_status(order, rep)
            elif rep.kind is ExecReportKind.FILL and rep.fill is not None:
                late = order.state.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED)
                if order.state.apply(rep) and late:
                    order.late_filled += rep.fill.qty
            else:
                order.state.apply(rep)
            if order.live and order.filled >= order.state.request.qty:
                order.state.transition(OrderStatus.FILLED)  # the cumulative quantity says it is done
        except IllegalTransition as e:
            self.book._bad_input("report", f"{rep.kind.value} for {rep.client_order_id}: {e}", self.did)
        self._emit(EventKind.ORDER_REPORT, leg=leg, latency_us=latency, reason=rep.reason.value if rep.reason else "",
                   source=source, client_order_id=rep.client_order_id, report_kind=rep.kind.value,
                   status=order.state.status.value, prior=before_status.value, filled=order.filled,
                   late_fill=order.late_filled > 0 and order.filled > before_filled and
                   before_status in (OrderStatus.CANCELED, OrderStatus.EXPIRED),
                   trade_id=rep.fill.trade_id if rep.fill else "",
                   fill_qty=rep.fill.qty if rep.fill and not repeat else 0, repeat=repeat,
                   fill_price=str(rep.fill.price) if rep.fill else "", text=rep.text,
                   # the ledger's slippage convention: price (average fill) against ref_price
                   # (the trigger), by side; an unwind has no trigger to be measured against
                   side=order.state.request.side.value,
                   price=str(order.avg_price) if order.filled and order.avg_price is not None else None,
                   ref_price=str(leg.spec.trigger_price) if leg.spec.trigger_price and not order.unwind else None)
        if order.state.status is OrderStatus.REJECTED and rep.kind in (ExecReportKind.REJECTED, ExecReportKind.STATUS):
            reason = rep.reason or RejectReason.OTHER
            if not order.unwind and reason.is_final:
                leg.blocked = f"FINAL_REJECT:{reason.value}"
        if order.state.status is OrderStatus.UNKNOWN and source != "query":
            self._query(leg, order, "the gateway reports the outcome as unknown")
        if rep.kind is ExecReportKind.CANCEL_REJECTED and order.live:
            # too late (filled or done) or unknown to the venue: learn the order's real state first
            self._query(leg, order, f"cancel rejected: {rep.reason.value if rep.reason else 'no reason'}")
        self.book.position_fill(self, order)
        self._order_done_check(leg, order)

    def _apply_status(self, order: LegOrder, rep: ExecutionReport) -> None:
        order.querying = False
        order.query_failures = 0
        if rep.filled_qty > order.reported_filled:
            order.reported_filled = rep.filled_qty
            order.reported_avg = rep.avg_price
        st = order.state
        target = rep.status
        if target is OrderStatus.PARTIALLY_FILLED and st.filled_qty == 0:
            target = OrderStatus.ACCEPTED if st.status in (OrderStatus.SUBMITTED, OrderStatus.UNKNOWN) else st.status
        if rep.filled_qty >= st.request.qty and rep.filled_qty > 0:
            target = OrderStatus.FILLED
        if target is st.status or st.status is OrderStatus.FILLED:
            return
        if st.status is OrderStatus.PENDING_CANCEL and target in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            # the cancel's outcome was unknown and the order still works: cancel again
            st.transition(target)
            return
        if target in (OrderStatus.CANCELED, OrderStatus.EXPIRED) and st.status not in (
                OrderStatus.PENDING_CANCEL, OrderStatus.UNKNOWN, OrderStatus.SUBMITTED,
                OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            return
        st.transition(target)

    def _order_done_check(self, leg: Leg, order: LegOrder) -> None:
        if not order.live and not order.done_reported:
            order.done_reported = True
            self.book.position_fill(self, order)
            self.book.positions.release(order.coid)
            if order.state.reject_reason is RejectReason.POSITION_INSUFFICIENT:
                req = order.state.request
                gone = self.book.positions.exhaust(req.account, req.instrument, req.side, req.offset)
                self._emit(EventKind.RECONCILE, leg=leg, client_order_id=order.coid, action="position",
                           reason=f"{leg.inst.venue} holds fewer lots to {req.offset.value if req.offset else 'close'} "
                                  f"than this coordinator's book: {gone} taken out; the next order chooses again",
                           lots=gone)
            signed = order.filled if order.state.request.side is leg.spec.side else -order.filled
            self.book.checker.on_order_done(self.intent, leg.name, signed, order.avg_price)
            if not order.unwind and order.filled < order.state.request.qty:
                leg.last_entry_short = True

    def on_place_result(self, coid: str, reports: list[ExecutionReport]) -> None:
        found = self._find(coid)
        if found is None:
            return
        if not reports:
            self._emit(EventKind.ORDER_REPORT, leg=found[0], client_order_id=coid, report_kind="NONE",
                       status=found[1].state.status.value, source="place", reason="no ack in the place answer")
        self.on_reports(reports, "place")

    def on_call_failed(self, coid: str, call: str, error: str) -> None:
        """A gateway call failed (actor died or unavailable, timeout): the outcome is unknown."""
        found = self._find(coid)
        if found is None:
            return
        leg, order = found
        self._emit(EventKind.RECONCILE, leg=leg, reason=f"{call} outcome unknown: {error}", client_order_id=coid,
                   action="unknown")
        if call == "query":
            order.querying = False
            order.query_failures += 1
            if order.query_failures >= self.book.config.query_retries:
                self._escalate(f"order {coid}: outcome unknown after {order.query_failures} failed queries")
            else:
                backoff = self.book.config.query_backoff_ms * (2 ** (order.query_failures - 1))
                self._timer(f"query:{coid}:{order.query_failures}", backoff * 1_000_000)
            self._settle()
            return
        if order.live and order.state.status is not OrderStatus.UNKNOWN:
            order.state.transition(OrderStatus.UNKNOWN)
        if order.live:
            self._query(leg, order, f"{call} failed")
        self._settle()

    def on_query_result(self, coid: str, report: ExecutionReport | None) -> None:
        found = self._find(coid)
        if found is None:
            return
        leg, order = found
        if report is not None and report.status is OrderStatus.UNKNOWN:
            self.on_call_failed(coid, "query", "the venue's answer is still UNKNOWN")
            return
        if report is not None:
            self.on_reports([report], "query")
            if order.state.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED) and (
                    self.winding_down or self.state is PairState.ROLLING_BACK):
                self._cancel(leg, order, "query: order still working")
            elif order.cancel_wanted and order.state.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
                self._cancel(leg, order, "query: cancel did not take")
            self._settle()
            return
        order.querying = False
        order.query_failures = 0
        self._emit(EventKind.RECONCILE, leg=leg, reason="venue never saw the order", client_order_id=coid,
                   action="not_found")
        if order.state.status is OrderStatus.PENDING_CANCEL and order.state.prev_status in (
                OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            self.book._bad_input("query", f"venue lost acknowledged order {coid}", self.did)
        if order.replaces < self.book.config.replace_retries and not self.winding_down and not order.cancel_wanted and \
                self.state in (PairState.WORKING, PairState.REPLENISHING) and not order.unwind:
            order.replaces += 1
            if order.state.status is not OrderStatus.UNKNOWN:
                order.state.transition(OrderStatus.UNKNOWN)
            self._emit(EventKind.ORDER_SENT, leg=leg, client_order_id=coid, reason="re-send under the same id",
                       attempt=order.state.request.attempt, replace=order.replaces)
            self.out.append(Place(self.did, leg.inst.venue, order.state.request))
            self._timer(f"ack:{coid}", self.book.config.ack_timeout_ms * 1_000_000)
        else:
            # definitively not at the venue: a curable loss (the remainder may be re-sent)
            if order.state.status is not OrderStatus.UNKNOWN and order.state.status.is_live:
                order.state.transition(OrderStatus.UNKNOWN)
            order.state.reject_reason = RejectReason.VENUE_ERROR
            order.state.transition(OrderStatus.REJECTED)
            self._order_done_check(leg, order)
        self._settle()

    def on_timer(self, key: str) -> None:
        kind, _, arg = key.partition(":")
        acted = ""
        if kind == "deadline":
            if self.state in (PairState.WORKING, PairState.REPLENISHING) and not self.winding_down:
                acted = "wind down"
                self._wind_down("DEADLINE")
        elif kind == "unwind_retry":
            if self.state is PairState.ROLLING_BACK:
                acted = "unwind again"
                self._drive_rollback()
        elif kind == "rollback":
            if self.state is PairState.ROLLING_BACK:
                if self._sub_lot_residual():
                    acted = "book the sub-lot residual"
                    self._book_residual("rollback time budget spent")
                else:
                    acted = "escalate"
                    self._escalate("rollback time budget spent")
        elif kind in ("ack", "cancel", "query", "stale"):
            coid = arg.rsplit(":", 1)[0] if kind == "query" else arg
            found = self._find(coid)
            if found is not None:
                leg, order = found
                st = order.state.status
                if kind == "ack" and st in (OrderStatus.SUBMITTED, OrderStatus.UNKNOWN) and not order.querying:
                    acted = "query (no ack)"
                    if st is OrderStatus.SUBMITTED:
                        order.state.transition(OrderStatus.UNKNOWN)
                    self._query(leg, order, "no ack")
                elif kind == "cancel" and st is OrderStatus.PENDING_CANCEL:
                    acted = "query (cancel not confirmed)"
                    self._query(leg, order, "cancel not confirmed")
                elif kind == "query" and order.live and not order.querying:
                    acted = "query retry"
                    self._query(leg, order, "retry")
                elif kind == "stale" and order.live and st in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED) \
                        and self.state in (PairState.WORKING, PairState.REPLENISHING) and not self.winding_down:
                    order.stale_armed = False
                    denial = self.book.cancel_denied(self.intent.strategy, leg) if self._lagging(leg) else None
                    if denial is not None:
                        acted = f"chase cancel denied: {denial}"
                    elif self._lagging(leg):
                        acted = "cancel stale remainder to replenish"
                        self._cancel(leg, order, "stale: replenish")
                    else:
                        acted = "not lagging"
                elif kind == "stale":
                    order.stale_armed = False
        if acted or not self.state.is_terminal:
            # a timer outliving its finished pair (an ack or deadline timer armed earlier) did
            # nothing: not worth a ledger row, and it would stretch the pair's trace by seconds
            self._emit(EventKind.TIMER, reason=acted or "ignored", key=key, state=self.state.value)
        self._settle()

    def on_trading_state(self, state: TradingState, scope: str) -> None:
        if state is TradingState.ACTIVE:
            return
        if self.state in (PairState.WORKING, PairState.REPLENISHING) and not self.winding_down:
            self._wind_down(f"{state.value}:{scope}")
        elif self.state is PairState.ROLLING_BACK and state is TradingState.HALTED:
            for leg in self.legs:
                o = leg.live_order()
                if o is not None:
                    self._cancel(leg, o, "halted")
        self._settle()

    # -- the decision procedure ------------------------------------------------------------
    def _lagging(self, leg: Leg) -> bool:
        a, b = self.legs
        ratio = self.intent.hedge_ratio
        if leg is a:
            return Decimal(b.entry_filled) - Decimal(a.entry_filled) * ratio >= b.inst.lot_size
        return Decimal(a.entry_filled) * ratio - Decimal(b.entry_filled) >= b.inst.lot_size

    def _lag_goal(self, leg: Leg) -> int:
        assert self.lead is not None
        lead, ratio = self.lead, self.intent.hedge_ratio
        if self.intent.mode is ExecutionMode.SEQUENTIAL and (lead.live_order() is not None
                                                             or lead.entry_filled < lead.target):
            return 0  # the other leg waits until the first is filled in full
        if leg is self.legs[1]:
            goal = round_to_lot(Decimal(lead.entry_filled) * ratio, leg.inst.lot_size, "nearest")
        else:
            goal = round_to_lot(Decimal(lead.entry_filled) / ratio, leg.inst.lot_size, "nearest")
        return min(goal, leg.target)

    def _wind_down(self, reason: str) -> None:
        self.winding_down = reason
        self.reason = self.reason or reason
        for leg in self.legs:
            o = leg.live_order()
            if o is not None and not o.unwind:
                self._cancel(leg, o, reason)

    def _settle(self) -> None:
        if self.state is PairState.REFUSED:
            return
        self._track_unhedged()
        if self.state is PairState.ESCALATED:
            self._restate_residual()
            return
        if self.state in (PairState.HEDGED, PairState.ROLLED_BACK):
            # a pair that ended with a sub-lot residual booked is off its balanced target on
            # purpose: only a change of what it holds (a late fill) re-opens it
            as_booked = self.residual_booked is not None and all(
                self.residual_booked["legs"][lg.name]["net"] == lg.net for lg in self.legs)
            if any(lg.live_order() for lg in self.legs) or (self._needs_unwind() and not as_booked):
                self._to(PairState.ROLLING_BACK, "LATE_FILL")
                self.residual_booked = None  # booked again (or taken out) when it ends again
                self._begin_rollback()
            else:
                if self.residual_booked is not None and not as_booked:
                    # a late fill brought it to its balanced target: nothing of it stays in the book
                    self.residual_booked = None
                    self.book._residual_set(self, None)
                self._restate_finished()
                return
        if self.state in (PairState.WORKING, PairState.REPLENISHING) and not self.winding_down:
            self._drive_entries()
        if self.state in (PairState.WORKING, PairState.REPLENISHING) and self.winding_down:
            live = [(lg, o) for lg in self.legs if (o := lg.live_order()) is not None]
            for lg, o in live:
                # working now but not when the wind-down began (its outcome was unknown, or its
                # ack had not come back): nothing else would cancel it, and it could rest forever
                if not o.unwind and o.state.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
                    self._cancel(lg, o, self.winding_down)
            if live:
                return
            if self._needs_unwind():
                self._to(PairState.ROLLING_BACK, self.winding_down)
                self._begin_rollback()
            else:
                self._finish(self.winding_down)
                return
        if self.state is PairState.ROLLING_BACK:
            self._drive_rollback()

    def _drive_entries(self) -> None:
        now = self.book.clock.now_ns()
        budget = self.intent.replenish
        for leg in self.legs:
            live = leg.live_order()
            if live is not None and not live.stale_armed and live.state.request.tif is TimeInForce.DAY \
                    and self._lagging(leg):
                # a resting order behind the other leg: give it a while, then chase (replenish)
                live.stale_armed = True
                self._timer(f"stale:{live.coid}", self._stale_wait_ns())
            if live is not None or leg.blocked:
                continue
            goal = leg.target if (self.lead is None or leg is self.lead) else self._lag_goal(leg)
            short = goal - leg.entry_filled
            if short <= 0:
                continue
            first_lag = self.lead is not None and leg is not self.lead and not leg.orders
            if first_lag:
                self._send_entry(leg, short, chase=0)
                continue
            if self.lead is not None and leg is not self.lead and not leg.last_entry_short:
                self._send_entry(leg, short, chase=leg.replenishes)  # hedge the next lead fill
                continue
            if leg.replenishes >= budget.max_attempts:
                leg.blocked = "REPLENISH_ATTEMPTS_SPENT"
            elif now >= self.started_ns + budget.max_time_ms * 1_000_000 or now >= self.deadline_ns:
                leg.blocked = "REPLENISH_TIME_SPENT"
            else:
                leg.replenishes += 1
                leg.last_entry_short = False
                if self.state is PairState.WORKING:
                    self._to(PairState.REPLENISHING, f"leg {leg.name} short by {short}")
                self._send_entry(leg, short, chase=leg.replenishes)
        if any(leg.blocked for leg in self.legs):
            self._wind_down(next(f"{lg.name}:{lg.blocked}" for lg in self.legs if lg.blocked))
            return
        done = all(lg.live_order() is None and lg.entry_filled >= lg.target for lg in self.legs)
        if done:
            if self._needs_unwind():
                self.winding_down = "OVERFILL"
            else:
                self._finish("both legs filled")

    def _rollback_targets(self) -> tuple[int, int]:
        a, b = self.legs
        return balanced_size(min(a.net, a.target), min(b.net, b.target), self.intent.hedge_ratio,
                             a.inst.lot_size, b.inst.lot_size)

    def _needs_unwind(self) -> bool:
        ta, tb = self._rollback_targets()
        return self.legs[0].net != ta or self.legs[1].net != tb

    def _begin_rollback(self) -> None:
        # The time budget starts again with each rollback, but the unwind orders per leg
        # (rollback.max_attempts) are counted over the pair's whole life: a late fill that
        # re-opens a finished pair unwinds with what is left, then escalates. Resetting them
        # let a venue that late-fills every cancelled unwind re-open the pair forever.
        self.rollback_started_ns = self.book.clock.now_ns()
        self._timer("rollback", self.intent.rollback.max_time_ms * 1_000_000)

    def _drive_rollback(self) -> None:
        if any(lg.live_order() for lg in self.legs):
            return
        targets = self._rollback_targets()
        if not self._needs_unwind():
            self._finish(self.reason or "rolled back")
            return
        policy = self.intent.rollback
        spent = [(leg, leg.net - t) for leg, t in zip(self.legs, targets)
                 if leg.net != t and leg.unwinds >= policy.max_attempts]
        if spent and self._sub_lot_residual():
            leg, delta = spent[0]
            self._book_residual(f"leg {leg.name}: rollback attempts spent, {delta} lots left to unwind")
            return
        for leg, target in zip(self.legs, targets):
            delta = leg.net - target
            if delta == 0:
                continue
            if leg.unwinds >= policy.max_attempts:
                self._escalate(f"leg {leg.name}: rollback attempts spent, {delta} lots left to unwind")
                return
            leg.unwinds += 1
            side = leg.spec.side.opposite if delta > 0 else leg.spec.side
            ticks = math.ceil(leg.unwinds * policy.max_slippage_ticks / policy.max_attempts)
            ticks = min(ticks, self._bps_ticks(leg, policy.max_slippage_bps))
            px = leg.ref_price + side.sign * ticks * leg.inst.tick_size
            px = max(leg.inst.round_price(px, "down" if side is Side.BUY else "up"), leg.inst.tick_size)
            req = self._new_request(leg, side, abs(delta), px, OrderType.IOC, TimeInForce.IOC, True)
            self._emit(EventKind.ROLLBACK, leg=leg, client_order_id=req.client_order_id, qty=abs(delta),
                       side=side.value, price=str(px), attempt=leg.unwinds, slippage_ticks=ticks,
                       latency_us=None)
            if not self._send(leg, req, unwind=True):
                if self.last_denial is not None and self.last_denial.code in TRANSIENT_DENIALS:
                    # a passing refusal (no grant yet after a restart, the order rate): the unwind
                    # is tried again shortly, without spending an attempt; the rollback time
                    # budget still bounds it (its timer escalates or books the residual)
                    leg.unwinds -= 1
                    self._timer("unwind_retry", UNWIND_RETRY_NS)
                    return
                if self._sub_lot_residual():
                    self._book_residual(f"leg {leg.name}: unwind order denied")
                else:
                    self._escalate(f"leg {leg.name}: unwind order denied")
                return

    # -- endings ---------------------------------------------------------------------------
    def _finish(self, reason: str) -> None:
        flat = all(lg.net == 0 for lg in self.legs)
        target = PairState.ROLLED_BACK if flat else PairState.HEDGED
        self._to(target, reason)
        self.ended_ns = self.book.clock.now_ns()
        self._track_unhedged()
        self.book.close_pair(self.did)
        self.out.append(CancelTimers(self.did))
        if self.residual_booked is None:
            # finished at its balanced target: nothing of it stays in the book (a pair re-opened
            # by a late fill and unwound to its target takes back what it had booked)
            self.book._residual_set(self, None)
        if target is PairState.HEDGED and all(lg.net == lg.spec.qty for lg in self.legs):
            # both legs filled in full: the strategy sized leg B against its holding, so this move
            # took back what the book held for it (whole lots: within half a B lot of its ratio)
            self.book._residual_clear(self)
        self._notify_done()

    def _sub_lot_residual(self) -> bool:
        """The pair can stop here with what it holds carried in its strategy's residual book: no
        order is live or unknown, each leg holds between 0 and its target, and the legs are
        balanced within one leg-B lot (the residual, in leg-B terms, is smaller than a B lot:
        no B order can hedge it)."""
        if not self.book.config.book_sub_lot_residuals:
            return False
        if any(o.live for lg in self.legs for o in lg.orders):
            return False
        a, b = self.legs
        if any(lg.net < 0 or lg.net > lg.target for lg in self.legs):
            return False
        return is_balanced(a.net, b.net, self.intent.hedge_ratio, b.inst.lot_size)

    def _book_residual(self, why: str) -> None:
        """End the pair HEDGED within tolerance, its sub-lot residual carried in the strategy's book."""
        a, b = self.legs
        ta, tb = self._rollback_targets()
        imbalance = Decimal(b.net) - Decimal(a.net) * self.intent.hedge_ratio
        total = self.book._residual_set(self, imbalance)
        self.residual_booked = {
            "imbalance_b_lots": str(imbalance), "book_b_lots": str(total), "lot_b": b.inst.lot_size,
            "legs": {lg.name: {"instrument": lg.spec.instrument, "net": lg.net, "balanced_target": t,
                               "residual": lg.net - t} for lg, t in ((a, ta), (b, tb))},
        }
        reason = (f"SUB_LOT_RESIDUAL: {why}; {self.residual_booked['legs']['A']['net']} A / "
                  f"{self.residual_booked['legs']['B']['net']} B lots held, {imbalance} B lots off the hedge "
                  f"(less than one B lot of {b.inst.lot_size}): carried in {self.intent.strategy}'s residual book "
                  f"({total} B lots)")
        self.reason = reason
        self._emit(EventKind.RECONCILE, reason=reason, action="residual_booked", residual=self.residual_booked)
        self.book._residual_alert(self, reason, total, b.inst.lot_size)
        self._finish(reason)

    def _residual(self) -> dict[str, Any]:
        ta, tb = self._rollback_targets()
        legs = {}
        for leg, t in zip(self.legs, (ta, tb)):
            legs[leg.name] = {
                "instrument": leg.spec.instrument, "account": leg.spec.account, "side": leg.spec.side.value,
                "net": leg.net, "balanced_target": t, "residual": leg.net - t,
                "unknown_orders": [o.coid for o in leg.orders if o.state.status is OrderStatus.UNKNOWN],
                "live_orders": [o.coid for o in leg.orders if o.live],
            }
        a, b = self.legs
        return {"legs": legs, "imbalance_b_lots": str(Decimal(b.net) - Decimal(a.net) * self.intent.hedge_ratio)}

    def _escalate(self, reason: str) -> None:
        if self.state is PairState.ESCALATED:
            return
        self._to(PairState.ESCALATED, reason)
        for leg in self.legs:  # best effort: stop what still works
            o = leg.live_order()
            if o is not None and o.state.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
                                                    OrderStatus.SUBMITTED):
                self._cancel(leg, o, "escalation")
        self.reason = reason
        self.ended_ns = self.book.clock.now_ns()
        self.residual = self._residual()
        if self.residual_booked is not None:  # re-opened, then escalated: the escalation holds it now
            self.residual_booked = None
            self.book._residual_set(self, None)
        self._emit(EventKind.ALERT, reason=reason, **escalation_alert(
            self.did, self.intent.strategy, reason, self.ended_ns,
            max((abs(v["residual"]) for v in self.residual["legs"].values()), default=0), residual=self.residual))
        self._emit(EventKind.ESCALATION, reason=reason, residual=self.residual)
        self.book.halt_scope("strategy", self.intent.strategy)
        self.book.close_pair(self.did)
        self.out.append(HaltStrategy(self.intent.strategy, self.did, reason))
        self._notify_done()

    def _notify_done(self) -> None:
        self.pushed_nets = tuple(lg.net for lg in self.legs)
        self.out.append(NotifyDone(self.intent.strategy, self.summary()))

    def _restate_finished(self) -> None:
        """A late fill that leaves a finished pair balanced (nothing to unwind) still changes what
        it holds: the summary is pushed again, so the risk guard books the difference and the
        strategy's position follows the venues."""
        nets = tuple(lg.net for lg in self.legs)
        if self.pushed_nets is None or nets == self.pushed_nets:
            return
        self._emit(EventKind.RECONCILE, reason=f"late fill: {self.state.value} pair still balanced, summary revised",
                   action="restate", nets={lg.name: lg.net for lg in self.legs},
                   before=dict(zip((lg.name for lg in self.legs), self.pushed_nets)))
        self._notify_done()

    def _restate_residual(self) -> None:
        now = self._residual()
        if now != self.residual:
            self.residual = now
            self._emit(EventKind.ESCALATION, reason="residual changed", residual=now)
            # what became known (an unknown order's outcome, a late fill) changes the exposure the
            # risk guard books and the strategy's position follows; the strategy stays halted
            self._notify_done()

    # -- views -----------------------------------------------------------------------------
    def summary(self) -> PairSummary:
        """The pair's outcome (:class:`~xmc_actors.model.pairs.PairSummary`)."""
        legs = []
        for leg in self.legs:
            avg = leg.avg_entry_price()
            slip = None
            trig = leg.spec.trigger_price
            if avg is not None and trig:
                slip = float((avg - trig) * leg.spec.side.sign / trig)
            unwinds = [o for o in leg.orders if o.unwind]
            rb_q = sum(o.filled for o in unwinds)
            rb_n = sum((o.avg_price or 0) * o.filled for o in unwinds if o.filled)
            lat = [(self.acked_ns[o.coid] - o.state.request.sent_ns) / 1e6 for o in leg.orders if o.coid in self.acked_ns]
            legs.append(leg_summary(
                leg.name, leg.spec.instrument, leg.spec.account, leg.spec.side, filled=leg.entry_filled, net=leg.net,
                intended_qty=leg.spec.qty, target_qty=leg.target, avg_price=avg,
                rollback_avg_price=rb_n / rb_q if rb_q else None, trigger_price=trig or None,
                slippage_pct=slip, orders=len(leg.orders), replenishes=leg.replenishes,
                rejects=sum(1 for o in leg.orders if o.state.status is OrderStatus.REJECTED
                            and o.state.reject_reason is not RejectReason.VENUE_ERROR),
                ack_latencies_ms=lat))
        return pair_summary(
            self.did, self.intent.strategy, self.book.owner, self.state, legs=legs, ts_ns=self.book.clock.now_ns(),
            mode=self.intent.mode, reason=self.reason,
            complete=all(lg.net == lg.target for lg in self.legs) and self.state is PairState.HEDGED,
            unhedged_ms=self.unhedged_ns() / 1e6, residual=self.residual, residual_booked=self.residual_booked,
            started_ns=self.started_ns, ended_ns=self.ended_ns)

    def unhedged_ns(self) -> int:
        extra = (self.book.clock.now_ns() - self.unhedged_since) if self.unhedged_since else 0
        return self.unhedged_total + extra

    def _track_unhedged(self) -> None:
        a, b = self.legs
        now = self.book.clock.now_ns()
        if not is_balanced(a.net, b.net, self.intent.hedge_ratio, b.inst.lot_size):
            if not self.unhedged_since:
                self.unhedged_since = now
        elif self.unhedged_since:
            self.unhedged_total += now - self.unhedged_since
            self.unhedged_since = 0


# ------------------------------------------------------------------------------------ book
SCOPES: Final = ("global", "strategy", "venue", "instrument", "account")
_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class PairBook:
    """Every pair in flight, the trading states and the pre-trade checker (pure; no Ray).

    Parameters
    ----------
    instruments
        Instruments by id (``VENUE.SYMBOL``); legs on other instruments are refused.
    clock
        The injected clock.
    checker
        The :class:`~xmc_actors.core.pretrade.PreTradeCheck`; :class:`AllowAll` if None (tests).
    config
        Timers and retry bounds.
    owner
        Name the coordinator registers with the gateways (``OrderRequest.owner``).
    """

    def __init__(self, instruments: Mapping[str, Instrument], clock: Clock, *, checker: PreTradeCheck | None = None,
                 config: CoordinatorConfig | None = None, owner: str = "coordinator",
                 event_node: int | None = None, venues: Mapping[str, Venue] | Iterable[Venue] | None = None) -> None:
        self.instruments = dict(instruments)
        vs = venues.values() if isinstance(venues, Mapping) else (venues or ())
        self.venues: dict[str, Venue] = {v.code: v for v in vs}
        # the accounts' two-sided positions at venues that hold long and short apart, as this
        # coordinator's own fills made them: where an order's offset is chosen from
        self.positions = TwoSidedBook()
        self.clock = clock
        self.checker: PreTradeCheck = checker if checker is not None else AllowAll()
        self.config = config or CoordinatorConfig()
        self.owner = owner
        self.events = EventMaker(clock, owner, event_node)
        self.pairs: dict[str, PairMachine] = {}
        self.index: dict[str, str] = {}  # client order id -> decision id
        self.trading: dict[tuple[str, str], TradingState] = {}
        self.venues_down: dict[str, str] = {}  # route key -> why (from the venue health probes)
        # "VENUE/ACCOUNT" keys of gateways that carry named accounts (model.config.route_key)
        self.account_routes: set[str] = set()
        self._finish_order: deque[str] = deque()  # decision ids in the order their pairs finished
        # tombstones: finished pairs evicted from memory, and those a restart recovered as finished
        # (their orders are not rebuilt); a fill for one of their orders escalates
        self.forgotten: dict[str, Forgotten] = {}
        self.bad_inputs: dict[str, int] = {}
        # per strategy: decision id -> the sub-lot residual (leg-B lots off the hedge) its pair
        # ended with and carried in the book (see CoordinatorConfig.book_sub_lot_residuals)
        self.residual_book: dict[str, dict[str, Decimal]] = {}
        self.residual_level: dict[str, str] = {}  # per strategy: level of the book's last alert
        self.out: list[Command] = []

    # -- the residual book -----------------------------------------------------------------
    def residual_total(self, strategy: str) -> Decimal:
        """Leg-B lots the strategy holds off its hedge through booked residuals (signed: + is B over-hedged)."""
        return sum(self.residual_book.get(strategy, {}).values(), Decimal(0))

    def _residual_set(self, m: PairMachine, imbalance: Decimal | None) -> Decimal:
        s = m.intent.strategy
        entries = self.residual_book.get(s)
        if imbalance is None:
            if entries is None or m.did not in entries:
                return self.residual_total(s)
            del entries[m.did]
            if not entries:
                del self.residual_book[s]
        else:
            self.residual_book.setdefault(s, {})[m.did] = imbalance
        return self.residual_total(s)

    def _residual_clear(self, m: PairMachine) -> None:
        """A pair of the strategy filled both legs in full: its holding is back on the hedge (the
        strategy sized leg B against it), the book is emptied (an info alert closes it)."""
        s = m.intent.strategy
        entries = self.residual_book.pop(s, None)
        if not entries:
            return
        was = self.residual_level.pop(s, "")
        if was:
            m._emit(EventKind.ALERT, reason=f"{s}: residual book emptied by pair {m.did}", **coordinator_alert(
                alert_id=f"{s}:residual_book", monitor=RESIDUAL_BOOK, strategy=s, level="info", action="none",
                message=f"pair {m.did} filled both legs in full, sized against the strategy's holding: the "
                        f"residual book ({', '.join(sorted(entries))}) is taken back", value=0.0,
                threshold=float(self.config.max_residual_lots_b), opened_ns=self.clock.now_ns(), resolved=True,
                book_b_lots="0", pairs=sorted(entries)))

    def _residual_alert(self, m: PairMachine, reason: str, total: Decimal, lot_b: int) -> None:
        """Yellow for every residual booked (and for a book of one whole B lot or more: the
        strategy's next move hedges it); red past ``max_residual_lots_b``: the strategy is
        halted as for an escalated pair."""
        s = m.intent.strategy
        cap = self.config.max_residual_lots_b
        red = abs(total) > cap
        level = "red" if red else "yellow"
        whole = abs(total) >= lot_b
        msg = (f"{reason}; book {total} B lots"
               + (f" is past its limit of {cap}: strategy halted" if red else
                  (" (a whole B lot or more: the strategy's next move hedges it)" if whole else "")))
        m._emit(EventKind.ALERT, reason=msg, **coordinator_alert(
            alert_id=f"{s}:residual_book", monitor=RESIDUAL_BOOK, strategy=s, level=level,
            action="halt" if red else "none", message=msg, value=float(abs(total)), threshold=float(cap),
            opened_ns=self.clock.now_ns(), escalated=red and self.residual_level.get(s) != "red",
            book_b_lots=str(total), pairs=sorted(self.residual_book.get(s, {})),
            residual=m.residual_booked))
        self.residual_level[s] = level
        if red:
            self.halt_scope("strategy", s)
            m.out.append(HaltStrategy(s, m.did, msg))

    # -- helpers ---------------------------------------------------------------------------
    def _bad_input(self, where: str, detail: str, decision_id: str = "") -> None:
        self.bad_inputs[where] = self.bad_inputs.get(where, 0) + 1
        self.out.append(Emit(self.events.make(EventKind.BAD_INPUT, decision_id=decision_id, reason=f"{where}: {detail}")))

    def _finished(self, decision_id: str) -> None:
        """A pair reached a terminal state: keep the newest ``keep_finished_pairs`` whole."""
        self._finish_order.append(decision_id)
        while len(self._finish_order) > self.config.keep_finished_pairs:
            old = self._finish_order.popleft()
            m = self.pairs.get(old)
            if m is None or not m.state.is_terminal:
                continue  # reopened by a late fill: it is counted again when it finishes again
            if m.state is PairState.ESCALATED:
                continue  # stays until an operator closes it
            del self.pairs[old]
            for leg in m.legs:
                for o in leg.orders:
                    self.index.pop(o.coid, None)
            self.forgotten[old] = Forgotten(m.intent.strategy, m.state, tuple(
                (lg.name, lg.spec.instrument, lg.spec.account, lg.spec.side) for lg in m.legs))

    def _flush(self, m: PairMachine | None = None) -> list[Command]:
        out, self.out = self.out, []
        if m is not None:
            out.extend(m.flush())
        return out

    def state_for(self, strategy: str, leg: Leg) -> TradingState:
        keys = (("global", ""), ("global", "*"), ("strategy", strategy), ("venue", leg.inst.venue),
                ("instrument", leg.spec.instrument), ("account", leg.spec.account))
        worst = TradingState.ACTIVE
        for k in keys:
            s = self.trading.get(k)
            if s is not None and _RANK[s] > _RANK[worst]:
                worst = s
        return worst

    def gate(self, strategy: str, leg: Leg, reduce_only: bool) -> Denial | None:
        """Checked before every order: the coordinator's trading state, then the checker."""
        st = self.state_for(strategy, leg)
        if st is TradingState.HALTED:
            return Denial("TRADING_HALTED", f"{leg.spec.instrument} for {strategy}: trading state HALTED")
        if st is TradingState.REDUCING and not reduce_only:
            return Denial("TRADING_REDUCING", f"{leg.spec.instrument} for {strategy}: only risk-reducing orders")
        return self.checker.allows_order(strategy, leg.inst.venue, leg.spec.instrument, reduce_only,
                                         self.clock.now_ns())

    def halt_scope(self, scope: str, key: str) -> None:
        self.trading[(scope, key)] = TradingState.HALTED
        setter = getattr(self.checker, "set_trading_state", None)
        if setter is not None:
            setter(scope, key, TradingState.HALTED)

    def close_pair(self, decision_id: str) -> None:
        closer = getattr(self.checker, "close_pair", None)
        if closer is not None:
            closer(decision_id)

    def cancel_denied(self, strategy: str, leg: Leg) -> Denial | None:
        """A discretionary cancel (chasing a price) asks the checker; safety cancels never do."""
        ask = getattr(self.checker, "allows_cancel", None)
        if ask is None:
            return None
        return ask(strategy, leg.inst.venue, leg.spec.instrument, self.clock.now_ns())

    # -- inputs ----------------------------------------------------------------------------
    def submit(self, intent: PairIntent | Mapping[str, Any], liquidity: Mapping[str, int] | None = None
               ) -> tuple[dict[str, Any], list[Command]]:
        """Accept or refuse a pair; idempotent on ``decision_id``.

        Returns ``({"decision_id", "accepted", "state", "reason", "duplicate"}, commands)``.
        """
        if not isinstance(intent, PairIntent):
            try:
                intent = PairIntent.model_validate(intent)
            except ValidationError as e:
                first = e.errors()[0]
                loc = ".".join(str(x) for x in first["loc"])
                self._bad_input("intent", f"{loc}: {first['msg']}")
                return {"decision_id": "", "accepted": False, "state": None, "reason": f"BAD_INPUT {loc}: {first['msg']}",
                        "duplicate": False}, self._flush()
        if intent.decision_id in self.forgotten and intent.decision_id not in self.pairs:
            return {"decision_id": intent.decision_id, "accepted": True, "state": None,
                    "reason": "finished long ago (no longer held in memory; see the ledger)", "duplicate": True}, \
                self._flush()
        existing = self.pairs.get(intent.decision_id)
        if existing is not None:
            if existing.intent != intent:
                self._bad_input("intent", f"decision_id {intent.decision_id} re-used with a different intent",
                                intent.decision_id)
            return {"decision_id": intent.decision_id, "accepted": existing.state is not PairState.REFUSED,
                    "state": existing.state.value, "reason": existing.reason, "duplicate": True}, self._flush()
        problem = self._validate(intent, liquidity)
        legs: tuple[Leg, Leg] | None = None
        if not problem:
            legs, problem = self._size(intent, liquidity)
        if legs is None:
            legs = tuple(Leg(spec=lg, inst=self.instruments.get(lg.instrument) or _placeholder(lg), target=lg.qty)
                         for lg in intent.legs)  # type: ignore[assignment]
        m = PairMachine(self, intent, legs, self.clock.now_ns())  # type: ignore[arg-type]
        self.pairs[intent.decision_id] = m
        m._emit(EventKind.INTENT, mode=intent.mode.value, intent=Deferred(intent.model_dump, mode="json"))
        m._emit(EventKind.PAIR_STATE, reason="received", **{"from": "", "to": PairState.NEW.value, "state": PairState.NEW.value})
        now = self.clock.now_ns()
        if not problem and intent.deadline_ns is not None and intent.deadline_ns <= now:
            # stale: the opportunity it was decided on is gone (or its deadline is on another clock)
            problem = (f"DEADLINE_PASSED: the intent's deadline was {(now - intent.deadline_ns) / 1e6:.1f} ms "
                       "before it reached the coordinator")
        if not problem:
            down = []
            for lg in legs:  # the gateway the leg goes through: its account's, else the venue's default
                key = self.route_of(lg.inst.venue, lg.spec.account)
                if key in self.venues_down:
                    down.append(f"{key} ({self.venues_down[key]})")
            if down:
                problem = f"VENUE_DOWN: {', '.join(down)}"
        if not problem:
            for leg in legs:
                st = self.state_for(intent.strategy, leg)
                if st is TradingState.HALTED or (st is TradingState.REDUCING and not intent.reduce_only):
                    problem = f"TRADING_{st.value}: {leg.spec.instrument} for {intent.strategy}"
                    break
        if not problem:
            res = self.checker.check_pair(intent, self.clock.now_ns())
            if isinstance(self.checker, AllowAll):  # the real checker records its own decision
                m._emit(EventKind.RISK_DECISION, reason="; ".join(str(d) for d in res.denials), allowed=res.allowed,
                        reservation_id=res.reservation_id, facts=dict(res.facts))
            if not res.allowed:
                problem = "; ".join(str(d) for d in res.denials) or "RISK: refused"
        if problem:
            m.reason = problem
            m._to(PairState.REFUSED, problem)
            m.ended_ns = self.clock.now_ns()
            m.out.append(NotifyDone(intent.strategy, m.summary()))
        else:
            m.start()
        return {"decision_id": intent.decision_id, "accepted": m.state is not PairState.REFUSED,
                "state": m.state.value, "reason": m.reason, "duplicate": False}, self._flush(m)

    def _validate(self, intent: PairIntent, liquidity: Mapping[str, int] | None) -> str:
        problems = []
        for i, lg in enumerate(intent.legs):
            inst = self.instruments.get(lg.instrument)
            where = f"legs[{i}]"
            if inst is None:
                problems.append(f"{where}.instrument: unknown instrument {lg.instrument!r}")
                continue
            if lg.qty % inst.lot_size:
                problems.append(f"{where}.qty: {lg.qty} is not a multiple of the lot size {inst.lot_size}")
            for name in ("limit_price", "trigger_price"):
                px = getattr(lg, name)
                if px is not None and not inst.on_grid(px):
                    problems.append(f"{where}.{name}: {px} is off the tick grid {inst.tick_size}")
            if lg.limit_price is None and lg.trigger_price is None:
                problems.append(f"{where}: needs a limit_price or a trigger_price (no unpriced orders)")
        if not problems and intent.legs[0].instrument == intent.legs[1].instrument \
                and intent.legs[0].account == intent.legs[1].account:
            problems.append("legs: both legs trade the same instrument in the same account")
        if not problems:
            a, b = intent.legs
            lot_b = self.instruments[b.instrument].lot_size
            if not is_balanced(a.qty, b.qty, intent.hedge_ratio, lot_b):
                problems.append(f"legs.qty: {a.qty} x {intent.hedge_ratio} does not match leg B's {b.qty} within a lot")
        if problems:
            self._bad_input("intent", "; ".join(problems), intent.decision_id)
            return "BAD_INPUT " + "; ".join(problems)
        return ""

    def _size(self, intent: PairIntent, liquidity: Mapping[str, int] | None) -> tuple[tuple[Leg, Leg] | None, str]:
        a, b = intent.legs
        ia, ib = self.instruments[a.instrument], self.instruments[b.instrument]
        ta, tb = a.qty, b.qty
        if intent.mode is ExecutionMode.QUANTITY:
            liq = dict(liquidity or {})
            va = a.visible_qty if a.visible_qty is not None else liq.get(a.leg)
            vb = b.visible_qty if b.visible_qty is not None else liq.get(b.leg)
            if va is None or vb is None:
                return None, "NO_LIQUIDITY: quantity priority needs the visible quantity of both legs"
            ta, tb = balanced_size(min(a.qty, va), min(b.qty, vb), intent.hedge_ratio, ia.lot_size, ib.lot_size)
            if ta == 0:
                return None, f"NO_LIQUIDITY: visible {va}/{vb} lots cannot carry one balanced pair"
        return (Leg(spec=a, inst=ia, target=ta), Leg(spec=b, inst=ib, target=tb)), ""

    def _machine_for(self, coid: str, where: str) -> PairMachine | None:
        did = self.index.get(coid)
        m = self.pairs.get(did) if did else None
        if m is None:
            self._bad_input(where, f"unknown client order id {coid!r}")
        return m

    def on_reports(self, reports: Iterable[ExecutionReport]) -> list[Command]:
        """Reports pushed by a gateway (resting fills, expiries, late fills)."""
        touched: dict[str, PairMachine] = {}
        for rep in reports:
            if not isinstance(rep, ExecutionReport):
                self._bad_input("report", f"expected ExecutionReport, got {type(rep).__name__}")
                continue
            if rep.client_order_id not in self.index:
                did, leg_name, _ = split_client_order_id(rep.client_order_id)
                if did in self.forgotten:
                    self._forgotten_report(did, leg_name or rep.leg, rep)
                    continue
            m = self._machine_for(rep.client_order_id, "report")
            if m is None:
                continue
            m.on_reports([rep], "push")
            touched[m.did] = m
        out = self._flush()
        for m in touched.values():
            out.extend(m.flush())
        return out

    def _forgotten_report(self, did: str, leg_name: str, rep: ExecutionReport) -> None:
        """A report for an order of a pair evicted from memory. Recorded under its decision id; a
        fill (the venue filled after the pair had finished, long enough ago to be forgotten) is
        exposure no pair hedges any more: the pair is escalated as a live one would be (red
        alert, ESCALATION with the residual, strategy halted) and the fill is pushed to the
        strategy and the risk guard as an *incremental* summary (``incremental: True``: its
        legs are what to add to what is booked for the pair, not the pair's totals)."""
        t = self.forgotten[did]
        coid = rep.client_order_id
        fill = rep.fill if rep.kind is ExecReportKind.FILL else None
        leg = next((lg for lg in t.legs if lg[0] == leg_name and lg[1] == rep.instrument), None)
        fresh = fill is not None and leg is not None and fill.trade_id not in (t.trades or ())
        self.out.append(Emit(spec=dict(
            kind=EventKind.ORDER_REPORT, decision_id=did, strategy=t.strategy, account=leg[2] if leg else "",
            venue=rep.venue, instrument=rep.instrument, ts_ns=self.clock.now_ns(),
            reason="report for a pair no longer held in memory", source="push", client_order_id=coid,
            report_kind=rep.kind.value, status=rep.status.value, forgotten=True, late_fill=fresh,
            trade_id=fill.trade_id if fill else "", fill_qty=fill.qty if fill else 0,
            fill_price=str(fill.price) if fill else "")))
        if fill is None:
            return
        if leg is None:
            self._bad_input("report", f"fill on {coid}: leg {leg_name!r} on {rep.instrument!r} is not a leg "
                                      f"of forgotten pair {did}", did)
            return
        if not fresh:
            return  # the same trade pushed again: applied once
        if t.trades is None:
            t.trades, t.residual = set(), {}
        t.trades.add(fill.trade_id)
        name, inst, account, side = leg
        signed = fill.qty * fill.side.sign
        assert t.residual is not None
        t.residual[name] = t.residual.get(name, 0) + signed
        reason = (f"late fill: {fill.side.value} {fill.qty} {inst} @ {fill.price} on {coid} after pair {did} "
                  f"finished {t.state.value} and is no longer held whole (keep_finished_pairs, or a coordinator "
                  "restart); nothing hedges it")
        residual = dict(t.residual)
        now = self.clock.now_ns()
        common = dict(decision_id=did, strategy=t.strategy, account=account, venue=rep.venue, instrument=inst,
                      ts_ns=now, reason=reason)
        if t.state is not PairState.ESCALATED:
            self.out.append(Emit(spec=dict(common, kind=EventKind.PAIR_STATE, state=PairState.ESCALATED.value,
                                           to=PairState.ESCALATED.value, **{"from": t.state.value})))
            t.state = PairState.ESCALATED
        shell = self.pairs.get(did)  # a pair recovered as finished keeps an order-less machine: it says so too
        if shell is not None:
            shell.state, shell.reason = PairState.ESCALATED, reason
        self.out.append(Emit(spec=dict(common, kind=EventKind.ALERT, **escalation_alert(
            did, t.strategy, reason, now, sum(abs(v) for v in residual.values()), residual=residual))))
        self.out.append(Emit(spec=dict(common, kind=EventKind.ESCALATION, residual=residual)))
        self.halt_scope("strategy", t.strategy)
        self.out.append(HaltStrategy(t.strategy, did, reason))
        entry = fill.side is side
        self.out.append(NotifyDone(t.strategy, pair_summary(
            did, t.strategy, self.owner, PairState.ESCALATED, ts_ns=now, reason=reason, residual=residual,
            incremental=True, trade_id=fill.trade_id,
            legs=[leg_summary(name, inst, account, side, filled=fill.qty if entry else 0,
                              net=fill.qty if entry else -fill.qty,
                              avg_price=fill.price if entry else None,
                              rollback_avg_price=None if entry else fill.price)])))

    def on_place_result(self, coid: str, reports: list[ExecutionReport]) -> list[Command]:
        m = self._machine_for(coid, "place")
        if m is not None:
            m.on_place_result(coid, [r for r in reports if isinstance(r, ExecutionReport)])
        return self._flush(m)

    def on_cancel_result(self, coid: str, report: ExecutionReport | None) -> list[Command]:
        m = self._machine_for(coid, "cancel")
        if m is not None and report is not None:
            m.on_reports([report], "cancel")
        return self._flush(m)

    def on_query_result(self, coid: str, report: ExecutionReport | None) -> list[Command]:
        m = self._machine_for(coid, "query")
        if m is not None:
            m.on_query_result(coid, report)
        return self._flush(m)

    def on_call_failed(self, coid: str, call: str, error: str) -> list[Command]:
        m = self._machine_for(coid, call)
        if m is not None:
            m.on_call_failed(coid, call, error)
        return self._flush(m)

    def on_timer(self, decision_id: str, key: str) -> list[Command]:
        m = self.pairs.get(decision_id)
        if m is not None:
            m.on_timer(key)
        return self._flush(m)

    def set_trading_state(self, scope: str, key: str, state: TradingState | str, operator: str = ""
                          ) -> list[Command]:
        """Set the trading state of a scope (global / strategy / venue / instrument / account)."""
        if scope not in SCOPES:
            self._bad_input("trading_state", f"scope: {scope!r} is not one of {', '.join(SCOPES)}")
            return self._flush()
        try:
            st = TradingState(state)
        except ValueError:
            self._bad_input("trading_state", f"state: {state!r} is not one of ACTIVE, REDUCING, HALTED")
            return self._flush()
        self.trading[(scope, key)] = st
        setter = getattr(self.checker, "set_trading_state", None)
        if setter is not None and scope in ("global", "strategy", "venue"):
            setter(scope, key or None, st)
        self.out.append(Emit(self.events.make(EventKind.OPERATOR, reason=f"trading state {scope}:{key} -> {st.value}",
                                              scope=scope, key=key, state=st.value, operator=operator)))
        out = self._flush()
        if st is TradingState.ACTIVE:
            return out
        for m in list(self.pairs.values()):
            if m.state.is_terminal:
                continue
            if any(self.state_for(m.intent.strategy, lg) is not TradingState.ACTIVE for lg in m.legs):
                m.on_trading_state(st, f"{scope}:{key}")
                out.extend(m.flush())
        return out

    def open_decisions(self, events: Iterable[Event]) -> set[str]:
        """The decisions of this coordinator's trail that were still open when it stopped (an
        INTENT, no terminal PAIR_STATE): whose orders a restarted coordinator asks its gateways
        about before :meth:`recover`."""
        seen: set[str] = set()
        done: set[str] = set()
        for e in events:
            if not e.decision_id or e.actor not in ("", self.owner):
                continue
            if e.kind is EventKind.INTENT:
                seen.add(e.decision_id)
            elif e.kind is EventKind.PAIR_STATE:
                try:
                    if PairState(str(e.payload.get("to") or e.payload.get("state"))).is_terminal:
                        done.add(e.decision_id)
                except ValueError:
                    pass
        return seen - done

    def recover(self, events: Iterable[Event], venue_orders: Iterable[OrderRequest] = ()) -> tuple[dict[str, int], list[Command]]:
        """After a restart: rebuild this coordinator's pairs from its own trail (the ledger).

        ``events`` are this coordinator's events (``actor == owner``; others are skipped), in
        time order; only ``INTENT``, ``PAIR_STATE`` and ``ORDER_SENT`` are read. Every decision
        id becomes known again (a re-sent intent is a duplicate). A pair that had finished
        stays finished. A pair that was still open is **wound down, not resumed**: its orders
        are rebuilt as UNKNOWN and queried at their venues (the venue's word, not our memory,
        says what filled), live ones are cancelled, and the pair ends HEDGED if its legs are
        balanced, ROLLED_BACK after unwinding the excess, or ESCALATED with the exact residual
        if that fails: the same unknown-outcome path as a failed gateway call. Returns counts
        and the commands (queries) to execute.

        ``venue_orders``: the orders the gateways hold for the open decisions
        (:meth:`open_decisions`). An order sent just before the crash may have no ORDER_SENT in
        the trail (events are written after the orders leave); the gateway's word adds it to its
        pair, so that its fills count (``counts["adopted"]``).

        The summary of each strategy's latest finished pair is pushed again (``recovered:
        True``), built from the legs' net lots its last ``PAIR_STATE`` recorded: the push the
        crash may have cut off is the one a strategy could still be waiting for. A strategy
        that had it ignores a repeated decision id; the risk guard ignores a summary older
        than the one it booked, and books it if it never had it.
        """
        by_did: dict[str, list[Event]] = {}
        for e in events:
            if e.decision_id and e.kind in (EventKind.INTENT, EventKind.PAIR_STATE, EventKind.ORDER_SENT) \
                    and e.actor in ("", self.owner):
                by_did.setdefault(e.decision_id, []).append(e)
        counts = {"decisions": 0, "finished": 0, "reopened": 0, "orders": 0, "unreadable": 0, "summaries": 0,
                  "adopted": 0}
        from_venues: dict[str, list[OrderRequest]] = {}
        for req in venue_orders:
            if isinstance(req, OrderRequest):
                from_venues.setdefault(req.decision_id, []).append(req)
        out: list[Command] = []
        latest: dict[str, tuple[int, PairMachine, Event]] = {}  # strategy -> its latest finished pair
        for did, evs in by_did.items():
            if did in self.pairs or did in self.forgotten:
                continue
            intent_ev = next((e for e in evs if e.kind is EventKind.INTENT), None)
            try:
                if intent_ev is None:
                    raise ValueError("no INTENT event")
                intent = PairIntent.model_validate(intent_ev.payload["intent"])
                last = [str(e.payload.get("to") or e.payload.get("state")) for e in evs if e.kind is EventKind.PAIR_STATE]
                state = PairState(last[-1]) if last else PairState.NEW
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                counts["unreadable"] += 1
                self._bad_input("recover", f"decision {did}: trail unreadable ({exc})", did)
                continue
            counts["decisions"] += 1
            legs = tuple(Leg(spec=lg, inst=self.instruments.get(lg.instrument) or _placeholder(lg), target=lg.qty)
                         for lg in intent.legs)
            m = PairMachine(self, intent, legs, intent_ev.ts_ns)  # type: ignore[arg-type]
            m.state = state
            self.pairs[did] = m
            if state.is_terminal:
                m.reason = "finished before the coordinator restarted"
                counts["finished"] += 1
                # its orders are not rebuilt: a fill still arriving for one goes the forgotten way
                self.forgotten[did] = Forgotten(intent.strategy, state, tuple(
                    (lg.leg, lg.instrument, lg.account, lg.side) for lg in intent.legs))
                end = [e for e in evs if e.kind is EventKind.PAIR_STATE][-1]
                if isinstance(end.payload.get("nets"), Mapping) and end.ts_ns >= latest.get(intent.strategy, (-1,))[0]:
                    latest[intent.strategy] = (end.ts_ns, m, end)
                self._finished(did)
                continue
            for e in evs:
                p = e.payload
                if e.kind is not EventKind.ORDER_SENT or "qty" not in p:
                    continue  # a re-send under the same id adds no order
                leg = m.by_name.get(str(p.get("leg_name")))
                if leg is None or any(o.coid == p.get("client_order_id") for o in leg.orders):
                    continue
                try:
                    req = OrderRequest(
                        client_order_id=p["client_order_id"], decision_id=did, leg=leg.name, attempt=int(p["attempt"]),
                        account=leg.spec.account, instrument=leg.spec.instrument, side=Side(p["side"]),
                        qty=int(p["qty"]), order_type=OrderType(p["order_type"]),
                        price=None if p.get("price") in (None, "None") else Decimal(str(p["price"])),
                        tif=TimeInForce(p["tif"]), reduce_only=bool(p.get("reduce_only")), owner=self.owner,
                        sent_ns=e.ts_ns)
                except (KeyError, TypeError, ValueError, ArithmeticError, ValidationError) as exc:
                    counts["unreadable"] += 1
                    self._bad_input("recover", f"order in {did}: trail unreadable ({exc})", did)
                    continue
                self._recovered_order(m, leg, req, bool(p.get("unwind")))
                counts["orders"] += 1
            for req in sorted(from_venues.get(did, ()), key=lambda r: (r.leg, r.attempt)):
                leg = m.by_name.get(req.leg)
                if leg is None or any(o.coid == req.client_order_id for o in leg.orders):
                    continue
                # sent, but the crash came before its ORDER_SENT was written: the gateway has it
                self._recovered_order(m, leg, req.model_copy(update={"owner": self.owner}), req.side is not leg.spec.side)
                counts["adopted"] += 1
                # written now, so that the trail names it (a later restart, the reconciliation)
                m._emit(EventKind.ORDER_SENT, leg=leg, client_order_id=req.client_order_id, leg_name=leg.name,
                        attempt=req.attempt, side=req.side.value, qty=req.qty, price=str(req.price),
                        order_type=req.order_type.value, tif=req.tif.value, reduce_only=req.reduce_only,
                        unwind=req.side is not leg.spec.side, adopted=True,
                        reason="sent before the coordinator restarted, not in its trail: recorded from its gateway")
            if intent.mode is ExecutionMode.QUANTITY:  # sized at submit: the first entry order carries it
                for leg in legs:
                    first = next((o for o in leg.orders if not o.unwind), None)
                    if first is not None:
                        leg.target = first.state.request.qty
            counts["reopened"] += 1
            why = "RECOVERED: the coordinator restarted mid-pair; winding down from the venues' state"
            if m.state is PairState.NEW:
                m._to(PairState.WORKING, "recovered")
            m.winding_down = why
            m.reason = m.reason or why
            m._emit(EventKind.RECONCILE, reason=why, action="recover", state=m.state.value,
                    orders=[o.coid for lg in legs for o in lg.orders])
            if m.state is PairState.ROLLING_BACK:
                m.rollback_started_ns = self.clock.now_ns()
                m._timer("rollback", intent.rollback.max_time_ms * 1_000_000)
            for leg in legs:
                for o in leg.orders:
                    m._query(leg, o, "coordinator restarted: the venue says what happened")
            m._settle()
            out.extend(m.flush())
        for _, m, end in latest.values():
            summary = _trail_summary(m, end)
            if summary is not None:
                counts["summaries"] += 1
                out.append(NotifyDone(m.intent.strategy, summary))
        self.out.append(Emit(self.events.make(EventKind.RECONCILE, reason="coordinator restarted: pairs recovered "
                                              "from the ledger", **counts)))
        return counts, self._flush() + out

    def _recovered_order(self, m: "PairMachine", leg: Leg, req: OrderRequest, unwind: bool) -> None:
        order = LegOrder(OrderState(request=req, status=OrderStatus.UNKNOWN), unwind=unwind)
        leg.orders.append(order)
        leg.next_attempt = max(leg.next_attempt, req.attempt + 1)
        leg.unwinds += order.unwind
        self.index[req.client_order_id] = m.did

    # -- two-sided positions and offsets ---------------------------------------------------
    def _two_sided(self, inst: Instrument) -> Venue | None:
        v = self.venues.get(inst.venue)
        return v if v is not None and v.offsets != "none" else None

    def _trading_day(self, venue: Venue, inst: Instrument, at_ns: int | None = None) -> Any:
        """The venue's trading day at the market time of the pair (``PairIntent.created_ns``, the
        stamp of the quotes it was decided on: a replay's, not the wall clock's), or now."""
        return instrument_session_state(venue, inst, at_ns or self.clock.now_ns()).trading_day

    def choose_offset(self, account: str, inst: Instrument, side: Side, qty: int,
                      at_ns: int | None = None, price: Decimal | None = None) -> tuple[Offset | None, str]:
        """The offset of a new order and why (``core/positions.choose_offset`` on the lots this
        coordinator's fills left available, with ``CoordinatorConfig.offset_preference``)."""
        venue = self._two_sided(inst)
        if venue is None:
            return None, ""
        pos = self.positions.get(account, inst.id, self._trading_day(venue, inst, at_ns))
        dearer = inst.fees.close_today_dearer if inst.fees is not None else True
        lock = price is not None and lock_is_cheaper(inst.fees, price, inst.multiplier)
        return choose_offset(venue, pos, side, qty, self.config.offset_preference, dearer, lock)

    def load_positions(self, venue_code: str, snapshot: Mapping[str, Any]) -> int:
        """The venue's word on its two-sided positions (``{"ACCOUNT/INSTRUMENT": {long: {today,
        yesterday}, short: {...}, trading_day}}``, what a gateway's ``two_sided_positions``
        answers) replaces this book's for that venue's instruments: a coordinator that starts
        (or restarts) chooses offsets from what the accounts hold, not from an empty book.
        Returns how many positions were loaded; recorded as a RECONCILE event."""
        import datetime as _dt

        mine = {i for i, inst in self.instruments.items() if inst.venue == venue_code}
        for key in [k for k in self.positions.positions if k[1] in mine]:
            del self.positions.positions[key]
        n = 0
        for key, p in snapshot.items():
            acc, _, inst = str(key).partition("/")
            if inst not in mine or not isinstance(p, Mapping):
                continue
            lg, sh = p.get("long") or {}, p.get("short") or {}
            day = p.get("trading_day")
            try:
                self.positions.set(acc, inst, long_today=int(lg.get("today", 0)), long_yesterday=int(lg.get("yesterday", 0)),
                                   short_today=int(sh.get("today", 0)), short_yesterday=int(sh.get("yesterday", 0)),
                                   trading_day=_dt.date.fromisoformat(day) if day else None)
            except (TypeError, ValueError) as e:
                self._bad_input("positions", f"{venue_code} position {key!r}: {e}")
                continue
            n += 1
        self.out.append(Emit(self.events.make(EventKind.RECONCILE, reason=f"two-sided positions loaded from {venue_code}",
                                              venue=venue_code, action="positions_loaded", positions=n,
                                              snapshot={k: v for k, v in self.positions.snapshot().items()
                                                        if k.split("/", 1)[1] in mine})))
        return n

    def reserve(self, req: OrderRequest, at_ns: int | None = None) -> None:
        """A close order sent: the lots it may take are frozen until it is done."""
        inst = self.instruments.get(req.instrument)
        venue = self._two_sided(inst) if inst is not None else None
        if venue is None or req.offset in (None, Offset.OPEN):
            return
        try:
            self.positions.freeze(venue, req.client_order_id, req.account, req.instrument, req.side, req.offset,
                                  req.qty, self._trading_day(venue, inst, at_ns))
        except OffsetError as e:  # the choice was made on these positions: only a bug gets here
            self._bad_input("positions", f"{req.client_order_id}: {e}", req.decision_id)

    def position_fill(self, m: "PairMachine", order: "LegOrder") -> None:
        """What an order filled since last time, applied to the two-sided positions."""
        delta = order.filled - order.pos_applied
        if delta <= 0:
            return
        order.pos_applied = order.filled
        req = order.state.request
        inst = self.instruments.get(req.instrument)
        venue = self._two_sided(inst) if inst is not None else None
        if venue is None:
            return
        try:
            self.positions.fill(venue, req.client_order_id, req.account, req.instrument, req.side, req.offset, delta,
                                self._trading_day(venue, inst, m.intent.created_ns))
        except OffsetError as e:  # the venue filled a close we do not hold: our view is behind the venue's
            self._bad_input("positions", f"fill of {req.client_order_id}: {e}", m.did)

    def route_of(self, venue: str, account: str) -> str:
        """The routing key of an order on ``venue`` through ``account``: the gateway that lists
        the account (``VENUE/ACCOUNT``), else the venue's default gateway (``VENUE``)."""
        key = route_key(venue, account)
        return key if key in self.account_routes else venue

    def set_venue_state(self, venue: str, up: bool, reason: str = "") -> None:
        """A venue went DOWN (new pairs with a leg on it are refused ``VENUE_DOWN``, nothing new is
        sent to it) or came back UP. Pairs in flight are not touched here: a call to a lost gateway
        fails and its outcome is resolved (query, then escalation) by the pair itself."""
        if up:
            self.venues_down.pop(venue, None)
        else:
            self.venues_down[venue] = reason or "down"

    def on_risk_grant(self, grant: object) -> Any:
        """Hand the RiskGuard's grant to the checker; returns what the checker returns (its ack)."""
        return self.checker.update_grant(grant)

    # -- views -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        in_flight: dict[str, int] = {}
        outcomes: dict[str, int] = {}
        for m in self.pairs.values():
            if m.state.is_terminal:
                outcomes[m.state.value] = outcomes.get(m.state.value, 0) + 1
            else:
                in_flight[m.state.value] = in_flight.get(m.state.value, 0) + 1
        return {"in_flight": in_flight, "outcomes": outcomes, "pairs": len(self.pairs),
                "bad_input": dict(self.bad_inputs), "venues_down": dict(self.venues_down),
                "trading_states": {f"{s}:{k}": v.value for (s, k), v in self.trading.items()},
                "two_sided_positions": self.positions.snapshot()}

    def pair(self, decision_id: str) -> dict[str, Any] | None:
        m = self.pairs.get(decision_id)
        if m is None:
            return None
        out = m.summary().to_wire()
        out["orders"] = [
            {"client_order_id": o.coid, "leg": lg.name, "unwind": o.unwind, "side": o.state.request.side.value,
             "qty": o.state.request.qty, "price": str(o.state.request.price), "status": o.state.status.value,
             "filled": o.filled, "late_filled": o.late_filled,
             "trade_ids": sorted(o.state.trade_ids)}
            for lg in m.legs for o in lg.orders
        ]
        return out


def escalation_alert(decision_id: str, strategy: str, reason: str, now_ns: int, residual_lots: int,
                     **extra: Any) -> dict[str, Any]:
    """The payload of the red ALERT of an escalated pair: the shape of the risk guard's alerts
    (``alert_id`` ``<decision id>:escalated``, monitor ``pair_escalation``, scope ``strategy``,
    action ``halt``), marked ``source: "coordinator"``, with the residual; ``value`` is the
    largest residual of a leg, in its lots."""
    return coordinator_alert(alert_id=f"{decision_id}:escalated", monitor=PAIR_ESCALATION, strategy=strategy,
                             level="red", action="halt", message=reason, value=residual_lots, threshold=0.0,
                             opened_ns=now_ns, **extra)


def _trail_summary(m: PairMachine, end: Event) -> PairSummary | None:
    """The summary of a pair that finished before a restart, from its last ``PAIR_STATE``: each
    leg's net lots (in the leg's own direction) at the end, stamped with that event's time."""
    nets = end.payload.get("nets") or {}
    legs = []
    for leg in m.legs:
        try:
            net = int(nets[leg.name])
        except (KeyError, TypeError, ValueError):
            return None
        legs.append(leg_summary(leg.name, leg.spec.instrument, leg.spec.account, leg.spec.side,
                                filled=max(net, 0), net=net, intended_qty=leg.spec.qty, target_qty=leg.target))
    return pair_summary(m.did, m.intent.strategy, m.book.owner, m.state, legs=legs, ts_ns=end.ts_ns,
                        mode=m.intent.mode, reason=str(end.reason or ""), recovered=True,
                        complete=m.state is PairState.HEDGED, started_ns=m.started_ns, ended_ns=end.ts_ns)


def leg_summary(leg: str, instrument: str, account: str, side: Side, *, filled: int, net: int,
                **extra: Any) -> LegSummary:
    """One leg of a pair summary: ``filled`` lots by the leg's own orders, ``net`` lots held in
    the leg's own direction once its unwinds are counted. ``rollback_qty`` and the signed
    ``net_qty`` are derived from them here, so the two can never disagree (lots bought back on
    the leg's own side count as filled)."""
    filled = max(filled, net)
    return LegSummary(leg=leg, instrument=instrument, account=account, side=side, filled_qty=filled,
                      rollback_qty=filled - net, net_qty=side.sign * net, **extra)


def pair_summary(decision_id: str, strategy: str, coordinator: str, state: PairState, *,
                 legs: list[LegSummary], ts_ns: int, **extra: Any) -> PairSummary:
    """Every pair summary the coordinator pushes is made here: a finished or revised pair
    (:meth:`PairMachine.summary`), one recovered from the ledger after a restart
    (``recovered=True``) and a late fill on a pair no longer held (``incremental=True``,
    ``trade_id``). See :class:`~xmc_actors.model.pairs.PairSummary` for the fields."""
    return PairSummary(decision_id=decision_id, strategy=strategy, coordinator=coordinator, state=state.value,
                       legs=legs, ts_ns=ts_ns, **extra)


def _placeholder(lg: LegIntent) -> Instrument:
    sym = re.sub(r"[^A-Za-z0-9_.\-]", "_", lg.instrument)[:32] or "x"
    return Instrument(venue="UNKNOWN", symbol=sym, currency="USD",
                      price_unit="t", multiplier=Decimal(1), tick_size=Decimal(1))
