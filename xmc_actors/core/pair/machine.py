"""One pair transaction (:class:`PairMachine`): its inputs, timers and the drive of its entry
orders. Unwinding and the endings are in :mod:`.unwind`; the states and triggers in :mod:`.table`.

Why one module of about 620 lines: every input (an answer, a pushed report, a query's or a
cancel's result, a timer) changes the same legs and orders and ends in the same ``_settle``
step; split by input, each part would reach into the others' order bookkeeping."""
from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any, Iterable


from ...model.errors import IllegalTransition
from ...model.events import EventKind
from ...model.market import Side
from ...model.orders import (
    ExecReportKind, ExecutionReport, OrderRequest, OrderState, OrderStatus, OrderType, RejectReason, TimeInForce,
    client_order_id,
)
from ...model.pairs import ExecutionMode, PairIntent, PairState
from ...model.risk import TradingState
from ..pretrade import Denial
from ..sizing import round_to_lot
from .commands import Cancel, Command, Place, Query, StartTimer, TimerKey, TimerKind
from .legs import Leg, LegOrder
from .table import Trigger, transition
from .unwind import BPS, UNWIND_RETRY_SLACK_NS, Endings

if TYPE_CHECKING:
    from .book import PairBook

# ------------------------------------------------------------------------------------ machine
class PairMachine(Endings):
    """One pair transaction. Created by :class:`PairBook`; every input returns commands."""

    def __init__(self, book: "PairBook", intent: PairIntent, legs: tuple[Leg, Leg], now_ns: int) -> None:
        self.book = book
        self.intent = intent
        self.legs = legs
        self.by_name = {leg.name: leg for leg in legs}
        self.state = PairState.NEW
        book._open.add(intent.decision_id)
        self.started_ns = now_ns
        self.ended_ns = 0
        self.deadline_ns = intent.deadline_ns or (now_ns + book.config.default_deadline_ms * 1_000_000)
        self.wind_reason = ""           # why the pair stopped trying to complete (WINDING_DOWN)
        self.last_denial: Denial | None = None  # the gate's answer to the last order tried
        self.rollback_started_ns = 0
        self.unwind_retry_at_ns = 0   # no unwind is sent before this (an unwind retry's wait)
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
        self.book._write_spec(spec)

    def _to(self, target: PairState, trigger: Trigger, reason: str) -> None:
        """Move along a row of :data:`~.table.TABLE` and write the PAIR_STATE event."""
        before = self._move(trigger, target, reason)
        if target.is_terminal and not before.is_terminal:
            self.book._finished(self.did)
        # "state" is the ledger's convention (lifted into its outcome column); from/to for readers.
        # A terminal state carries the pair's unhedged time as this machine measured it (legs off
        # their ratio), so the run summary and the report read one figure from the ledger
        extra = {"unhedged_ms": self.unhedged_ns() / 1e6} if target.is_terminal else {}
        self._emit(EventKind.PAIR_STATE, reason=reason, **{"from": before.value, "to": target.value,
                                                          "state": target.value,
                                                          "nets": {lg.name: lg.net for lg in self.legs}}, **extra)

    def _move(self, trigger: Trigger, target: PairState, reason: str) -> PairState:
        """The one step along a row of :data:`~.table.TABLE` that ``_to``, ``_restore`` and
        ``_mark`` share; an open state (one a late fill reopened, too) is counted by the book's
        ``in_flight_count``. Returns the state before."""
        before = self.state
        self.state = transition(before, trigger, target, f"pair {self.did}", reason)
        if not target.is_terminal:
            self.book._open.add(self.did)
        return before

    def _restore(self, state: PairState) -> None:
        """A pair rebuilt from its trail takes the state its last PAIR_STATE recorded (no event:
        nothing changed); the table's ``recovered`` rows say which states it may take."""
        self._move(Trigger.RECOVERED, state, "restored from the trail")

    def _mark(self, trigger: Trigger, target: PairState, reason: str) -> None:
        """Change the state without writing the event: for a pair whose event its book writes
        (a recovered finished pair escalated by a late fill, :mod:`.late_fills`)."""
        self._move(trigger, target, reason)
        self.reason = reason

    def _timer(self, key: TimerKey, delay_ns: int) -> None:
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
        self._to(PairState.WORKING, Trigger.ACCEPTED, "risk ok")
        self._timer(TimerKey(TimerKind.DEADLINE), self.deadline_ns - self.book.clock.now_ns())
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
        self._timer(TimerKey(TimerKind.ACK, req.client_order_id), self.book.config.ack_timeout_ms * 1_000_000)
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
        self._timer(TimerKey(TimerKind.CANCEL, order.coid), self.book.config.cancel_timeout_ms * 1_000_000)

    def _query(self, leg: Leg, order: LegOrder, why: str) -> None:
        if order.querying:
            return
        order.querying = True
        self._emit(EventKind.RECONCILE, leg=leg, reason=why, client_order_id=order.coid, action="query")
        self.out.append(Query(self.did, leg.inst.venue, order.coid, leg.spec.account))

    # -- inputs ----------------------------------------------------------------------------
    def on_reports(self, reports: Iterable[ExecutionReport], source: str, held_ns: int = 0) -> None:
        for rep in reports:
            self._apply(rep, source, held_ns)
        self._settle()

    def _apply(self, rep: ExecutionReport, source: str, held_ns: int = 0) -> None:
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
            # the ack's time less what the answer waited at the gateway for another venue's answer
            # (a gateway group answers all of a call's orders at once): each venue's own latency
            sent = order.state.request.sent_ns
            acked = max(self.book.clock.now_ns() - held_ns, sent)
            self.acked_ns[order.coid] = acked
            latency = (acked - sent) / 1_000
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
        order.query_failed_since_ns = None
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
        if target is OrderStatus.UNKNOWN and not st.status.is_live:
            # knows less than the venue's word already taken (the late answer of a call whose
            # query has since settled the order, seen in the chaos suite): nothing changes
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

    def on_place_result(self, coid: str, reports: list[ExecutionReport], held_ns: int = 0) -> None:
        """The answer of the place call; ``held_ns``: how long the gateway held it after the venue
        answered, waiting for the other orders of the same call (not the venue's latency)."""
        found = self._find(coid)
        if found is None:
            return
        if not reports:
            self._emit(EventKind.ORDER_REPORT, leg=found[0], client_order_id=coid, report_kind="NONE",
                       status=found[1].state.status.value, source="place", reason="no ack in the place answer")
        self.on_reports(reports, "place", held_ns)

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
            cfg = self.book.config
            now = self.book.clock.now_ns()
            if order.query_failed_since_ns is None:
                order.query_failed_since_ns = now
            waited_ms = (now - order.query_failed_since_ns) // 1_000_000
            # both bounds: `query_retries` answers, and `query_window_ms` of trying (a gateway
            # that is restarting answers nothing for seconds; its venue still holds the order)
            if order.query_failures >= cfg.query_retries and waited_ms >= cfg.query_window_ms:
                self._escalate(f"order {coid}: outcome unknown after {order.query_failures} failed queries "
                               f"over {waited_ms} ms")
            else:
                backoff = min(cfg.query_backoff_ms * (2 ** min(order.query_failures - 1, 30)), cfg.query_backoff_max_ms)
                self._timer(TimerKey(TimerKind.QUERY, coid, order.query_failures), backoff * 1_000_000)
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
            failures, since = order.query_failures, order.query_failed_since_ns
            self.on_reports([report], "query")
            st = order.state.status
            if st is OrderStatus.UNKNOWN and not order.querying:
                # an answer that could not be applied (recorded as BAD_INPUT): the outcome is
                # still unknown, so it counts as a failed query (retried, then escalated); an
                # order is never left UNKNOWN with nothing watching it
                order.query_failures, order.query_failed_since_ns = failures, since
                self.on_call_failed(coid, "query", f"the venue's answer ({report.status.value}) left the outcome unknown")
                return
            working = (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
            if st in working and self.state in (PairState.WINDING_DOWN, PairState.ROLLING_BACK):
                self._cancel(leg, order, "query: order still working")
            elif order.cancel_wanted and st in working:
                self._cancel(leg, order, "query: cancel did not take")
            elif st is OrderStatus.SUBMITTED:
                # at the venue, never acknowledged: ask again if no ack comes
                self._timer(TimerKey(TimerKind.ACK, coid), self.book.config.ack_timeout_ms * 1_000_000)
            self._settle()
            return
        order.querying = False
        order.query_failures = 0
        order.query_failed_since_ns = None
        if order.state.status.is_terminal:
            # an answer overtaken by the order's own reports (the query left on an ack timeout,
            # then the place answer came in): what the venue said since stands, nothing is re-sent
            self._emit(EventKind.RECONCILE, leg=leg, client_order_id=coid, action="stale_not_found",
                       status=order.state.status.value,
                       reason="a query's answer 'never saw the order' came after the order had ended: stale, ignored")
            self._settle()
            return
        self._emit(EventKind.RECONCILE, leg=leg, reason="venue never saw the order", client_order_id=coid,
                   action="not_found")
        if order.state.status is OrderStatus.PENDING_CANCEL and order.state.prev_status in (
                OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            self.book._bad_input("query", f"venue lost acknowledged order {coid}", self.did)
        if order.replaces < self.book.config.replace_retries and not order.cancel_wanted and \
                self.state in (PairState.WORKING, PairState.REPLENISHING) and not order.unwind:
            order.replaces += 1
            if order.state.status is not OrderStatus.UNKNOWN:
                order.state.transition(OrderStatus.UNKNOWN)
            self._emit(EventKind.ORDER_SENT, leg=leg, client_order_id=coid, reason="re-send under the same id",
                       attempt=order.state.request.attempt, replace=order.replaces)
            self.out.append(Place(self.did, leg.inst.venue, order.state.request))
            self._timer(TimerKey(TimerKind.ACK, coid), self.book.config.ack_timeout_ms * 1_000_000)
        else:
            # definitively not at the venue: a curable loss (the remainder may be re-sent)
            if order.state.status is not OrderStatus.UNKNOWN and order.state.status.is_live:
                order.state.transition(OrderStatus.UNKNOWN)
            order.state.reject_reason = RejectReason.VENUE_ERROR
            order.state.transition(OrderStatus.REJECTED)
            # an unwind "never seen" spends its attempt: a gateway that lost its order map
            # answers so for an IOC it did send, which may have executed
            order.retry_counted = order.unwind
            self._order_done_check(leg, order)
        self._settle()

    def on_timer(self, key: TimerKey) -> None:
        kind, K = key.kind, TimerKind
        acted = ""
        if kind is K.DEADLINE:
            if self.state in (PairState.WORKING, PairState.REPLENISHING):
                acted = "wind down"
                self._wind_down("DEADLINE")
        elif kind is K.WIND_DOWN:
            if self.state is PairState.WINDING_DOWN:
                acted = "escalate"
                self._escalate(self._wind_down_overdue())
        elif kind is K.UNWIND_RETRY:
            # an older retry timer (timers of one key are not replaced) is ignored while a later
            # retry's wait runs; the slack keeps a timer firing a hair early from being lost
            if self.state is PairState.ROLLING_BACK and \
                    self.book.clock.now_ns() + UNWIND_RETRY_SLACK_NS >= self.unwind_retry_at_ns:
                acted = "unwind again"
                self.unwind_retry_at_ns = 0
                self._drive_rollback()
        elif kind is K.ROLLBACK:
            if self.state is PairState.ROLLING_BACK:
                if not self._needs_unwind() and not any(lg.live_order() for lg in self.legs):
                    acted = "finish"  # done meanwhile (a late fill during an unwind's wait)
                    self._finish(self.reason or "rolled back")
                elif self._sub_lot_residual():
                    acted = "book the sub-lot residual"
                    self._book_residual("rollback time budget spent")
                else:
                    acted = "escalate"
                    self._escalate("rollback time budget spent")
        else:  # a timer of one order
            found = self._find(key.coid)
            if found is not None:
                leg, order = found
                st = order.state.status
                if kind is K.ACK and st in (OrderStatus.SUBMITTED, OrderStatus.UNKNOWN) and not order.querying:
                    acted = "query (no ack)"
                    if st is OrderStatus.SUBMITTED:
                        order.state.transition(OrderStatus.UNKNOWN)
                    self._query(leg, order, "no ack")
                elif kind is K.CANCEL and st is OrderStatus.PENDING_CANCEL:
                    acted = "query (cancel not confirmed)"
                    self._query(leg, order, "cancel not confirmed")
                elif kind is K.QUERY and order.live and not order.querying:
                    acted = "query retry"
                    self._query(leg, order, "retry")
                elif kind is K.STALE and order.live and st in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED) \
                        and self.state in (PairState.WORKING, PairState.REPLENISHING):
                    order.stale_armed = False
                    denial = self.book.cancel_denied(self.intent.strategy, leg) if self._lagging(leg) else None
                    if denial is not None:
                        acted = f"chase cancel denied: {denial}"
                    elif self._lagging(leg):
                        acted = "cancel stale remainder to replenish"
                        self._cancel(leg, order, "stale: replenish")
                    else:
                        acted = "not lagging"
                elif kind is K.STALE:
                    order.stale_armed = False
        if acted or not self.state.is_terminal:
            # a timer outliving its finished pair (an ack or deadline timer armed earlier) did
            # nothing: not worth a ledger row, and it would stretch the pair's trace by seconds
            self._emit(EventKind.TIMER, reason=acted or "ignored", key=str(key), state=self.state.value)
        self._settle()

    def on_trading_state(self, state: TradingState, scope: str) -> None:
        if state is TradingState.ACTIVE:
            return
        if self.state in (PairState.WORKING, PairState.REPLENISHING):
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
        """Stop trying to complete (WORKING/REPLENISHING -> WINDING_DOWN) and cancel the live
        entry orders; :meth:`_settle` ends or unwinds the pair once every order is dead."""
        self.wind_reason = reason
        self.reason = self.reason or reason
        self._to(PairState.WINDING_DOWN, Trigger.STOP, reason)
        self._arm_wind_down()
        for leg in self.legs:
            o = leg.live_order()
            if o is not None and not o.unwind:
                self._cancel(leg, o, reason)

    def _arm_wind_down(self) -> None:
        """WINDING_DOWN is bounded: past ``wind_down_timeout_ms`` the pair is escalated."""
        self._timer(TimerKey(TimerKind.WIND_DOWN), self.book.config.wind_down_timeout_ms * 1_000_000)

    def _wind_down_overdue(self) -> str:
        stuck = [f"{o.coid} {o.state.status.value}" for lg in self.legs for o in lg.orders if o.live]
        return (f"wind-down not finished after {self.book.config.wind_down_timeout_ms} ms: "
                f"{', '.join(stuck) if stuck else 'no order live'}")

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
                self._to(PairState.ROLLING_BACK, Trigger.LATE_FILL, "LATE_FILL")
                self.residual_booked = None  # booked again (or taken out) when it ends again
                self._begin_rollback()
            else:
                if self.residual_booked is not None and not as_booked:
                    # a late fill brought it to its balanced target: nothing of it stays in the book
                    self.residual_booked = None
                    self.book._residual_set(self, None)
                self._restate_finished()
                return
        if self.state in (PairState.WORKING, PairState.REPLENISHING):
            self._drive_entries()
        if self.state is PairState.WINDING_DOWN:
            live = [(lg, o) for lg in self.legs if (o := lg.live_order()) is not None]
            for lg, o in live:
                # working now but not when the wind-down began (its outcome was unknown, or its
                # ack had not come back): nothing else would cancel it, and it could rest forever
                if not o.unwind and o.state.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
                    self._cancel(lg, o, self.wind_reason)
            if live:
                return
            if self._needs_unwind():
                self._to(PairState.ROLLING_BACK, Trigger.STOPPED, self.wind_reason)
                self._begin_rollback()
            else:
                self._finish(self.wind_reason)
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
                self._timer(TimerKey(TimerKind.STALE, live.coid), self._stale_wait_ns())
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
                    self._to(PairState.REPLENISHING, Trigger.SHORT, f"leg {leg.name} short by {short}")
                self._send_entry(leg, short, chase=leg.replenishes)
        if any(leg.blocked for leg in self.legs):
            self._wind_down(next(f"{lg.name}:{lg.blocked}" for lg in self.legs if lg.blocked))
            return
        done = all(lg.live_order() is None and lg.entry_filled >= lg.target for lg in self.legs)
        if done:
            if self._needs_unwind():  # over-filled: unwind the excess (the reason stays the first one)
                self.wind_reason = "OVERFILL"
                self._to(PairState.WINDING_DOWN, Trigger.STOP, "OVERFILL")
                self._arm_wind_down()
            else:
                self._finish("both legs filled")
