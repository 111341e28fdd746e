"""The venue gateway's core: order entry, drop copy, market-data normalisation, calibration,
gap repair and conflation, without Ray.

The actor (:mod:`xmc_actors.actors.gateway`) owns one :class:`GatewayCore`, feeds it calls and
market data, and sends what it returns: the replies, the reports to push to order owners
(:meth:`GatewayCore.drain_pushes`) and the quote batches to push to subscribers
(:attr:`GatewayCore.conflator`).

Why one module of about 660 lines: order entry and market data of one venue share the clock
offset (every report and quote is stamped with it), the event sink and the status, and the
order path is split into prepare, send, wait and done steps the actor interleaves; the parts
that stand alone already live in their own modules (``calibration``, ``conflation``, ``gaps``,
``normalise``, ``positions``). It is also the hot path that issue 22 item 1 profiles: a split is
better done with that work than beside it.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from ..model.events import EventKind
from ..model.fastpickle import replace
from ..model.market import Instrument, Venue
from ..model.orders import (
    ExecReportKind, ExecutionReport, OrderRequest, OrderState, OrderStatus, RejectReason,
)
from ..model.quotes import Quote, QuoteStatus
from .calibration import ClockCalibrator, OffsetEstimate
from .clock import Clock
from .positions import check_offset
from .conflation import Conflator
from .gaps import GapTracker, SeqVerdict
from .normalise import BadInput, BadInputReason, Normaliser
from .sink import EventMaker, EventSink

_MS = 1_000_000


class GatewayCore:
    """One venue's gateway logic.

    Parameters
    ----------
    venue, instruments
        What the venue is and lists.
    accounts
        The accounts whose orders this gateway carries (``gateways[].accounts``); empty: any.
    adapter
        The venue connection (:class:`~xmc_actors.venues.sim.SimExchange` or another adapter
        with the same methods). An adapter whose calls wait on a network (``blocking = True``,
        the FIX adapter) has each such call split into a waiting half that touches only the
        adapter (:meth:`place_wait`, :meth:`cancel_call`, :meth:`query_call`: the actor runs
        them off its event loop) and a half that applies the answer here.
    clock
        Our clock (``now_ns``).
    sink
        Where drop-copy, BAD_INPUT and GAP events go.
    ack_timeout_ns
        How long a place waits for an answer before reporting UNKNOWN.
    stale_after_ns
        An instrument with no message for this long is marked STALE (0: never).
    probe_interval_ns
        Clock round trips are taken this often (from :meth:`tick`).
    wall_clock
        When ``clock`` is market time (a replay's SimClock): the trail is stamped with this
        clock instead, market time kept as ``market_ts_ns`` (see :class:`EventMaker`).
    """

    def __init__(self, venue: Venue, instruments: Iterable[Instrument], adapter: Any, clock: Clock,
                 sink: EventSink, *, name: str = "", ack_timeout_ns: int = 1_000 * _MS,
                 stale_after_ns: int = 0, probe_interval_ns: int = 100 * _MS,
                 max_future_ns: int = 2_000 * _MS, max_past_ns: int = 600_000 * _MS,
                 wall_clock: Clock | None = None, accounts: Iterable[str] = ()) -> None:
        self.venue = venue
        #: the accounts this gateway carries (empty: any); another account's order is refused here
        self.accounts = frozenset(accounts)
        self.instruments = {i.id: i for i in instruments}
        self.adapter = adapter
        #: the adapter's calls wait on a network: the actor runs their waiting halves in threads
        self.blocking = bool(getattr(adapter, "blocking", False))
        self.clock = clock
        self.sink = sink
        self.name = name or f"gateway-{venue.code}"
        self.events = EventMaker(clock, self.name, wall=wall_clock)
        self.ack_timeout_ns = ack_timeout_ns
        self.stale_after_ns = stale_after_ns
        self.probe_interval_ns = probe_interval_ns
        self.normaliser = Normaliser(self.instruments, max_future_ns=max_future_ns, max_past_ns=max_past_ns)
        self.calibrator = ClockCalibrator()
        self.gaps = GapTracker()
        self.conflator = Conflator()
        self.orders: dict[str, OrderState] = {}
        self._pushes: dict[str, list[ExecutionReport]] = defaultdict(list)
        self.latest: dict[str, Quote] = {}
        self._last_msg_ns: dict[str, int] = {}
        self._last_probe_ns: int | None = None
        self.up = True
        self.counters: dict[str, int] = defaultdict(int)
        self.bad_input: dict[str, int] = defaultdict(int)
        #: when True, drop copies are queued and written by :meth:`flush_drop_copy` (the actor
        #: does it after replying, so the JSON dump and the event are off the order's path)
        self.defer_drop_copy = False
        self._drop_pending: list[tuple[ExecutionReport, str, int]] = []
        # lots of each order's executions this gateway recorded (each trade id once): a venue
        # answer whose cumulative quantity is larger reveals executions whose answer was lost
        self._fill_lots: dict[str, int] = {}
        self._drain_bad = getattr(adapter, "drain_bad_input", None)
        self._poll_market = getattr(adapter, "poll_market", None)
        self._session_status = getattr(adapter, "status", None)

    # ------------------------------------------------------------------ helpers
    def offset(self) -> OffsetEstimate:
        return self.calibrator.estimate(self.clock.now_ns())

    def _stamp(self, rep: ExecutionReport, offset_ns: int | None = None) -> ExecutionReport:
        """Calibrated timestamp, decision id and leg filled in from our order (``offset_ns``:
        the clock offset, when the caller already has it)."""
        st = self.orders.get(rep.client_order_id)
        upd: dict[str, Any] = {}
        if rep.venue_ts_ns:
            upd["ts_ns"] = rep.venue_ts_ns - (round(self.offset().offset_ns) if offset_ns is None else offset_ns)
        else:
            upd["ts_ns"] = self.clock.now_ns()
        if st is not None:
            upd["decision_id"] = st.request.decision_id
            upd["leg"] = st.request.leg
        return replace(rep, **upd)

    def _record(self, rep: ExecutionReport) -> None:
        """Apply to our view of the order and write the drop copy (VENUE_DROP_COPY)."""
        st = self.orders.get(rep.client_order_id)
        if rep.fill is not None and (st is None or rep.fill.trade_id not in st.trade_ids):
            self._fill_lots[rep.client_order_id] = self._fill_lots.get(rep.client_order_id, 0) + rep.fill.qty
        if st is not None and rep.kind is ExecReportKind.STATUS:
            self._resolve_unknown(st, rep)
        elif st is not None and rep.kind is ExecReportKind.FILL and st.status is OrderStatus.FILLED \
                and rep.fill is not None:
            # a fill recovered (resent after a reconnect) for an order a venue status already
            # showed FILLED: counted once by trade id, the order stays FILLED
            if rep.fill.trade_id not in st.trade_ids:
                st.trade_ids.add(rep.fill.trade_id)
                st.filled_qty += rep.fill.qty
                st.notional_filled += rep.fill.price * rep.fill.qty
        elif st is not None:
            try:
                st.apply(rep)
            except Exception as e:  # noqa: BLE001 - the venue's word is recorded even if it surprises us
                self.counters["unexpected_reports"] += 1
                self.sink.emit(self.events.make(
                    EventKind.BAD_INPUT, venue=self.venue.code, instrument=rep.instrument,
                    decision_id=rep.decision_id, reason="UNEXPECTED_REPORT", detail=str(e)))
        self.counters[f"reports_{rep.kind.value.lower()}"] += 1
        if rep.kind is ExecReportKind.STATUS:
            return
        acct = st.request.account if st is not None else ""
        if self.defer_drop_copy:
            self._drop_pending.append((rep, acct, rep.ts_ns or self.clock.now_ns()))
        else:
            self._drop_copy(rep, acct, rep.ts_ns or None)

    def _resolve_unknown(self, st: OrderState, rep: ExecutionReport) -> bool:
        """A venue STATUS of an order whose outcome we did not know (a pushed one: the answer
        to a status request a FIX adapter sends on logon again, or a query's): the order takes
        the venue's status. Its fills are recorded by their own reports (each trade id once)."""
        if st.status is not OrderStatus.UNKNOWN or rep.status is OrderStatus.UNKNOWN:
            return False
        try:
            st.transition(rep.status)
        except Exception:  # noqa: BLE001 - the venue's word is recorded even if it surprises us
            return False
        if rep.venue_order_id:
            st.venue_order_id = rep.venue_order_id
        self.counters["unknown_resolved"] += 1
        return True

    def _drop_copy(self, rep: ExecutionReport, acct: str, ts_ns: int | None) -> None:
        self.sink.emit(self.events.make(
            EventKind.VENUE_DROP_COPY, ts_ns=ts_ns, decision_id=rep.decision_id,
            venue=self.venue.code, instrument=rep.instrument, account=acct,
            reason=rep.reason.value if rep.reason else rep.kind.value,
            report=rep.model_dump(mode="json")))

    def flush_drop_copy(self) -> int:
        """Write the drop copies queued while ``defer_drop_copy`` is set, in venue order."""
        if not self._drop_pending:
            return 0
        pending, self._drop_pending = self._drop_pending, []
        for rep, acct, ts in pending:
            self._drop_copy(rep, acct, ts)
        return len(pending)

    def _from_venue(self, reps: Iterable[ExecutionReport]) -> list[ExecutionReport]:
        out = []
        gaps: list[tuple[str, int]] = []
        offset_ns = None  # one estimate for the reports of one answer
        for r in reps:
            if r.fill is not None:
                st = self.orders.get(r.client_order_id)
                if st is not None and r.fill.trade_id in st.trade_ids:
                    # the venue's repeat of an execution this gateway already recorded (a
                    # delayed report of a trade recovered from the venue): nothing to pass on
                    self.counters["repeated_executions"] += 1
                    continue
            if offset_ns is None and r.venue_ts_ns:
                offset_ns = round(self.offset().offset_ns)
            r = self._stamp(r, offset_ns)
            self._record(r)
            out.append(r)
            if r.fill is None and r.filled_qty > self._fill_lots.get(r.client_order_id, 0):
                # the venue's cumulative quantity (a cancel reject, a status) says more filled
                # than the executions this gateway heard of: their answer was lost
                gaps.append((r.client_order_id, r.filled_qty))
        for coid, filled in gaps:
            self.recover_executions(coid, filled)
        return out

    def _local(self, st: OrderState, kind: ExecReportKind, status: OrderStatus, *,
               reason: RejectReason | None = None, text: str = "") -> ExecutionReport:
        req = st.request
        return ExecutionReport(kind=kind, client_order_id=req.client_order_id, venue_order_id=st.venue_order_id,
                               venue=self.venue.code, instrument=req.instrument, status=status,
                               filled_qty=st.filled_qty, leaves_qty=st.leaves_qty if status.is_live else 0,
                               avg_price=st.avg_price, reason=reason, text=text, ts_ns=self.clock.now_ns(),
                               decision_id=req.decision_id, leg=req.leg)

    def _queue_push(self, reps: Iterable[ExecutionReport]) -> None:
        for r in reps:
            st = self.orders.get(r.client_order_id)
            owner = st.request.owner if st is not None else ""
            self._pushes[owner].append(r)

    def drain_pushes(self) -> dict[str, list[ExecutionReport]]:
        """Reports to push, by owner (``""``: orders without an owner), in venue order."""
        out = {k: v for k, v in self._pushes.items() if v}
        self._pushes = defaultdict(list)
        return out

    # ------------------------------------------------------------------ order entry
    def place(self, req: OrderRequest) -> tuple[list[ExecutionReport], int]:
        """Send a new order. Returns the reports for the sender and how long the answer took (ns).

        A repeated client order id returns one STATUS report of the existing order.
        """
        return self.place_done(self.place_send(self.place_prepare(req)))

    # A gateway process placing several orders at once (a gateway group) runs each step for
    # all of them before the next: prepared, then handed to their venues back to back, then
    # the answers read. One order runs the three in a row (place).
    def place_prepare(self, req: OrderRequest) -> tuple[Any, ...]:
        """Our side of a new order, before the venue sees it: a repeated client order id is
        answered here (one STATUS report of the existing order), a new one is recorded."""
        existing = self.orders.get(req.client_order_id)
        if existing is not None:
            self.counters["duplicate_places"] += 1
            if self.blocking:  # the venue is asked in place_wait, off the event loop
                return ("duplicate", existing)
            return ("answered", [self._status_of(existing, "duplicate client order id: existing order")], 0)
        st = OrderState(request=req)
        st.transition(OrderStatus.SUBMITTED)
        self.orders[req.client_order_id] = st
        self.counters["orders"] += 1
        if self.accounts and req.account not in self.accounts:
            # routed to the wrong session (a configuration or routing fault): never sent
            self.counters["wrong_account"] += 1
            rep = self._local(st, ExecReportKind.REJECTED, OrderStatus.REJECTED, reason=RejectReason.OTHER,
                              text=f"account {req.account!r} is not carried by {self.name} "
                                   f"(it carries {', '.join(sorted(self.accounts))}): order not sent")
            self._record(rep)
            return ("answered", [rep], 0)
        why = check_offset(self.venue, req.offset)
        if why is not None:
            # an offset this venue cannot take (or none where it needs one): refused before it leaves
            self.counters["offset_refused"] += 1
            rep = self._local(st, ExecReportKind.REJECTED, OrderStatus.REJECTED, reason=RejectReason.OFFSET_NOT_ALLOWED,
                              text=f"{why}: order not sent")
            self._record(rep)
            return ("answered", [rep], 0)
        return ("ready", st)

    def place_send(self, prepared: tuple[Any, ...]) -> tuple[Any, ...]:
        """The order is handed to its venue (the adapter's ``send``; an adapter without one
        answers at once with ``place``), and nothing else is done."""
        from ..model.errors import VenueDisconnected

        if prepared[0] != "ready":
            return prepared
        st = prepared[1]
        send = getattr(self.adapter, "send", None)
        try:
            return ("sent", st, send(st.request)) if send is not None else ("replied", st, self.adapter.place(st.request))
        except VenueDisconnected as e:
            return ("answered", [self._not_sent(st, e)], 0)

    def _not_sent(self, st: OrderState, why: Exception) -> ExecutionReport:
        """A definitive local reject: the venue could not be reached, nothing was sent."""
        rep = self._local(st, ExecReportKind.REJECTED, OrderStatus.REJECTED, reason=RejectReason.VENUE_ERROR,
                          text=f"{why}: order not sent")
        self._record(rep)
        return rep

    def place_wait(self, sent: tuple[Any, ...]) -> tuple[Any, ...]:
        """The waiting half of reading an answer: the adapter's ``answer`` (or, for a repeated
        client order id, the venue's status of the existing order). Touches only the adapter,
        so the actor runs it in a thread for a ``blocking`` adapter; :meth:`place_done` applies
        what it returns."""
        from ..model.errors import VenueDisconnected

        kind = sent[0]
        if kind == "sent":
            try:
                return ("replied", sent[1], self.adapter.answer(sent[2]))
            except VenueDisconnected as e:  # gone between the two halves: it never got the order
                return ("gone", sent[1], e)
        if kind == "duplicate":
            return ("duplicate_status", sent[1], self.adapter.query(sent[1].request.client_order_id)
                    if self.adapter.connected() else None)
        return sent

    def place_done(self, sent: tuple[Any, ...]) -> tuple[list[ExecutionReport], int]:
        """The venue's answer to :meth:`place_send`, read (:meth:`place_wait`, unless the actor
        already ran it): the reports for the sender and how long the answer took (ns)."""
        if sent[0] == "answered":
            return sent[1], sent[2]
        if sent[0] in ("sent", "duplicate"):
            sent = self.place_wait(sent)
        kind, st, reply = sent
        if kind == "gone":
            return [self._not_sent(st, reply)], 0
        if kind == "duplicate_status":
            return [self._status_from(st, reply, "duplicate client order id: existing order")], 0
        if reply.lost:
            st.transition(OrderStatus.UNKNOWN)
            self.counters["no_ack"] += 1
            rep = self._local(st, ExecReportKind.STATUS, OrderStatus.UNKNOWN,
                              text=f"no answer from {self.venue.code} within {self.ack_timeout_ns / _MS:.0f} ms: "
                                   "outcome unknown, query to resolve")
            return [rep], self.ack_timeout_ns
        return self._from_venue(reply.reports), reply.latency_ns

    def cancel(self, client_order_id: str) -> tuple[ExecutionReport, int]:
        """Cancel an order: CANCELED, or CANCEL_REJECTED (UNKNOWN_ORDER / TOO_LATE_TO_CANCEL / VENUE_ERROR)."""
        return self.cancel_done(client_order_id, self.cancel_call(client_order_id))

    def cancel_call(self, client_order_id: str) -> Any:
        """The waiting half of a cancel: the adapter's ``cancel`` (its answer, or the
        :class:`VenueDisconnected` it raised). Touches only the adapter (see :meth:`place_wait`)."""
        from ..model.errors import VenueDisconnected

        try:
            return self.adapter.cancel(client_order_id)
        except VenueDisconnected as e:
            return e

    def cancel_done(self, client_order_id: str, answer: Any) -> tuple[ExecutionReport, int]:
        """Apply :meth:`cancel_call`'s answer."""
        st = self.orders.get(client_order_id)
        if isinstance(answer, Exception):
            e = answer
            rep = ExecutionReport(kind=ExecReportKind.CANCEL_REJECTED, client_order_id=client_order_id,
                                  venue=self.venue.code, instrument=st.request.instrument if st else "",
                                  status=st.status if st else OrderStatus.UNKNOWN, reason=RejectReason.VENUE_ERROR,
                                  text=f"{e}: cancel not sent", ts_ns=self.clock.now_ns(),
                                  decision_id=st.request.decision_id if st else "", leg=st.request.leg if st else "")
            return rep, 0
        rep, latency = answer
        if rep is None:
            rep = ExecutionReport(kind=ExecReportKind.CANCEL_REJECTED, client_order_id=client_order_id,
                                  venue=self.venue.code, instrument=st.request.instrument if st else "",
                                  status=OrderStatus.REJECTED if st else OrderStatus.UNKNOWN,
                                  reason=RejectReason.UNKNOWN_ORDER, text="the venue has no such order",
                                  ts_ns=self.clock.now_ns())
            return rep, latency
        return self._from_venue([rep])[0], latency

    def _status_of(self, st: OrderState, text: str = "") -> ExecutionReport:
        venue_rep = None
        if self.adapter.connected():
            venue_rep = self.adapter.query(st.request.client_order_id)
        return self._status_from(st, venue_rep, text)

    def _status_from(self, st: OrderState, venue_rep: ExecutionReport | None, text: str = "") -> ExecutionReport:
        if venue_rep is not None:
            return self._stamp(venue_rep.model_copy(update={"text": text or venue_rep.text}))
        return self._local(st, ExecReportKind.STATUS, st.status, text=text or "gateway's last known state")

    def reconcile(self) -> dict[str, Any]:
        """After a restart: take back what the venue still holds from the previous life.

        Every order the adapter recovers (``recovered_orders()``: the venue's own memory, e.g.
        the simulated venue's journal) becomes known again, so that later cancels, queries and
        pushed fills find their owner; its STATUS is queued for its owner (the coordinator
        then learns the outcome of an order it could not know) and recorded as a RECONCILE
        event. Returns counts for :meth:`status`.
        """
        recover = getattr(self.adapter, "recovered_orders", None)
        recovered = recover() if recover is not None else []
        live = filled = 0
        for req, rep in recovered:
            st = OrderState(request=req, status=rep.status, venue_order_id=rep.venue_order_id,
                            filled_qty=rep.filled_qty,
                            notional_filled=(rep.avg_price or 0) * rep.filled_qty)
            self.orders[req.client_order_id] = st
            rep = self._stamp(rep)
            self._pushes[req.owner].append(rep)
            if rep.filled_qty:
                # the drop copies of its fills may have died with the previous life: the trail
                # gets each execution again as the venue's word. Not pushed: the owner has the
                # STATUS, and a pair it has already finished (or forgotten) must not take a fill
                # it booked once as a new one
                self.recover_executions(req.client_order_id, rep.filled_qty, push=False)
            live += rep.status.is_live
            filled += rep.filled_qty > 0
            self.sink.emit(self.events.make(
                EventKind.RECONCILE, decision_id=req.decision_id, venue=self.venue.code, instrument=req.instrument,
                account=req.account, reason="order recovered from the venue after a gateway restart",
                client_order_id=req.client_order_id, leg=req.leg, owner=req.owner, status=rep.status.value,
                filled_qty=rep.filled_qty, leaves_qty=rep.leaves_qty,
                avg_price=str(rep.avg_price) if rep.avg_price is not None else None))
        out = {"orders": len(recovered), "live": live, "with_fills": filled}
        self.counters["reconciled_orders"] += len(recovered)
        self.sink.emit(self.events.make(EventKind.RECONCILE, venue=self.venue.code,
                                        reason="gateway restarted: venue state reconciled", **out))
        return out

    def orders_of(self, decision_ids: Iterable[str] | None, owner: str | None = None,
                  since_ns: int = 0) -> list[OrderRequest]:
        """Every order this gateway was handed (or took back from its venue after a restart)
        for ``decision_ids`` (every decision when None) of ``owner`` (when given) sent at or
        after ``since_ns``: what a restarted coordinator asks so that an order it sent just
        before it died, whose ORDER_SENT never reached the ledger, is not forgotten."""
        want = None if decision_ids is None else set(decision_ids)
        return [st.request for st in self.orders.values()
                if (want is None or st.request.decision_id in want) and (owner is None or st.request.owner == owner)
                and st.request.sent_ns >= since_ns]

    def recover_executions(self, client_order_id: str, venue_filled: int, push: bool = True) -> int:
        """The venue says the order has ``venue_filled`` lots filled; if this gateway recorded
        fewer (the answer that carried them was lost, or this process restarted), fetch the
        venue's executions of the order (adapter ``executions``, when it has one) and record
        each one not seen yet (its drop copy, trade id and price) and push it to the order's
        owner (``push``), so that the trail holds every execution, not only a cumulative
        quantity. The owner de-duplicates by trade id. Returns how many executions were recovered."""
        fetch = getattr(self.adapter, "executions", None)
        st = self.orders.get(client_order_id)
        if fetch is None or venue_filled <= 0:
            return 0
        seen = set(st.trade_ids) if st is not None else set()
        if self._fill_lots.get(client_order_id, 0) >= venue_filled:
            return 0
        got = [r for r in fetch(client_order_id) if r.fill is not None and r.fill.trade_id not in seen]
        if not got:
            return 0
        self.counters["executions_recovered"] += len(got)
        out = []
        for r in got:
            # recorded as the venue's word (drop copy) without replaying them through our order
            # state, which the status answer already moved to where the venue has it
            r = self._stamp(r)
            if st is not None:
                st.trade_ids.add(r.fill.trade_id)  # type: ignore[union-attr]
            self._fill_lots[client_order_id] = self._fill_lots.get(client_order_id, 0) + r.fill.qty  # type: ignore[union-attr]
            acct = st.request.account if st is not None else ""
            if self.defer_drop_copy:
                self._drop_pending.append((r, acct, r.ts_ns or self.clock.now_ns()))
            else:
                self._drop_copy(r, acct, r.ts_ns or None)
            out.append(r)
        if st is not None:
            st.filled_qty = max(st.filled_qty, venue_filled)
        if push:
            self._queue_push(out)
        return len(out)

    def query(self, client_order_id: str) -> ExecutionReport | None:
        """STATUS of an order as the venue knows it; None if the venue never saw it."""
        return self.query_done(client_order_id, self.query_call(client_order_id))

    def query_call(self, client_order_id: str) -> tuple[bool, ExecutionReport | None]:
        """The waiting half of a query: (connected, the adapter's answer). Touches only the
        adapter (see :meth:`place_wait`)."""
        if self.adapter.connected():
            return True, self.adapter.query(client_order_id)
        return False, None

    def query_done(self, client_order_id: str, answer: tuple[bool, ExecutionReport | None]) -> ExecutionReport | None:
        """Apply :meth:`query_call`'s answer."""
        connected, rep = answer
        if connected:
            if rep is None:
                return None
            rep = self._stamp(rep)
            st = self.orders.get(client_order_id)
            if st is not None:
                self._resolve_unknown(st, rep)
            self.recover_executions(client_order_id, rep.filled_qty)
            return rep
        st = self.orders.get(client_order_id)
        if st is None:
            return None
        return self._local(st, ExecReportKind.STATUS, st.status,
                           text=f"{self.venue.code} disconnected: gateway's last known state")

    # ------------------------------------------------------------------ market data
    def on_market(self, quote: Quote) -> list[Quote]:
        """Feed one true market quote to the venue; handle what it publishes. Returns published quotes."""
        reps, msgs = self.adapter.on_market(quote)
        if reps:
            self._queue_push(self._from_venue(reps))
        out = []
        if quote.origin is not None:  # a replayed close or a synthetic bridge quote stays marked as such
            for m in msgs:
                if isinstance(m, dict):
                    m["origin"] = quote.origin
        for m in msgs:
            q = self.on_wire(m)
            if q is not None:
                out.append(q)
        return out

    def on_wire(self, msg: Any, recv_ns: int | None = None) -> Quote | None:
        """Normalise one venue message; publish it (conflated) or refuse it (BAD_INPUT)."""
        now = self.clock.now_ns() if recv_ns is None else recv_ns
        self.counters["messages"] += 1
        est = self.calibrator.estimate(now)
        parsed = self.normaliser.parse(msg, now, est.offset_ns if est.source != "none" else 0.0)
        if isinstance(parsed, BadInput):
            self._bad(parsed, msg)
            return None
        q = parsed
        is_snapshot = isinstance(msg, dict) and msg.get("type") == "snapshot"
        if is_snapshot:
            gap = self.gaps.on_snapshot(q.instrument, q.seq, now)
            if gap is not None:
                self._gap_closed(gap)
        else:
            verdict = self.gaps.on_message(q.instrument, q.seq, now)
            if verdict in (SeqVerdict.DUPLICATE, SeqVerdict.OUT_OF_ORDER):
                reason = BadInputReason.DUPLICATE_SEQ if verdict is SeqVerdict.DUPLICATE else BadInputReason.OUT_OF_ORDER_SEQ
                self._bad(BadInput(reason, "seq", f"{q.seq} not after the last accepted", q.instrument), msg)
                return None
            if verdict is SeqVerdict.GAP:
                self.counters["gaps"] += 1
        self.calibrator.add_feed(q.venue_ts_ns, now)
        self._last_msg_ns[q.instrument] = now
        if self.gaps.is_stale(q.instrument):
            q = q.model_copy(update={"status": QuoteStatus.STALE})
            self._publish(q)
            if self._try_snapshot(q.instrument) and not self.gaps.is_stale(q.instrument):
                return self.latest[q.instrument]
            return q
        self._publish(q)
        return q

    def _publish(self, q: Quote) -> None:
        self.latest[q.instrument] = q
        self.counters["quotes"] += 1
        self.conflator.offer(q)

    def _bad(self, bad: BadInput, msg: Any) -> None:
        self._bad_event(bad.reason.value, bad.field, bad.detail, bad.instrument, msg)

    def refuse(self, bad: BadInput, msg: Any) -> None:
        """Bad input the shell met on the core's behalf (bytes that are not an order): counted
        and recorded as BAD_INPUT, as the core's own is."""
        self._bad(bad, msg)

    @property
    def drop_copy_pending(self) -> bool:
        """Drop copies are queued (``defer_drop_copy``) for :meth:`flush_drop_copy`."""
        return bool(self._drop_pending)

    def _bad_event(self, reason: str, field: str, detail: str, instrument: str, msg: Any) -> None:
        """Count ``reason`` (``status()["bad_input"]``) and write a BAD_INPUT event."""
        self.bad_input[reason] += 1
        self.counters["bad_input"] += 1
        self.sink.emit(self.events.make(
            EventKind.BAD_INPUT, venue=self.venue.code, instrument=instrument, reason=reason,
            field=field, detail=detail, message=repr(msg)[:200]))

    def drain_adapter_bad_input(self) -> int:
        """Malformed input the adapter met on its own (a FIX session's rejected or garbled
        messages: ``drain_bad_input()``, dicts with ``reason``, ``detail``, ``tag``), each
        recorded as BAD_INPUT and counted by its reason. Returns how many."""
        drain = getattr(self.adapter, "drain_bad_input", None)
        if drain is None:
            return 0
        got = drain()
        for b in got:
            tag = b.get("tag") or 0
            self._bad_event(str(b.get("reason") or "VENUE_BAD_INPUT"), f"tag {tag}" if tag else "session",
                            str(b.get("detail") or ""), str(b.get("instrument") or ""), b)
        return len(got)

    def _gap_closed(self, gap: Any) -> None:
        self.sink.emit(self.events.make(
            EventKind.GAP, venue=self.venue.code, instrument=gap.instrument, reason="sequence gap repaired",
            latency_us=gap.duration_ns / 1_000, from_seq=gap.from_seq, to_seq=gap.to_seq, missing=gap.missing,
            duration_ns=gap.duration_ns, resumed_at_seq=gap.resumed_at_seq))

    def _try_snapshot(self, instrument: str) -> bool:
        snap = self.adapter.snapshot(instrument)
        if snap is None:
            return False
        self.counters["snapshots"] += 1
        self.on_wire(snap)
        return True

    def mark_stale(self, instrument: str, reason: str) -> None:
        if self.gaps.mark_stale(instrument, reason, self.clock.now_ns()):
            last = self.latest.get(instrument)
            if last is not None:
                self._publish(last.model_copy(update={"status": QuoteStatus.STALE}))

    # ------------------------------------------------------------------ timers
    def tick(self) -> None:
        """Housekeeping, called often: delayed reports, clock probes, link state, stale feeds."""
        now = self.clock.now_ns()
        connected = self.adapter.connected()
        if self._drain_bad is not None:
            self.drain_adapter_bad_input()
        if connected != self.up:
            self.up = connected
            self.counters["disconnects" if not connected else "reconnects"] += 1
            self.sink.emit(self.events.make(EventKind.LIFECYCLE, venue=self.venue.code,
                                            reason="venue disconnected" if not connected else "venue reconnected"))
            if not connected:
                for inst in self.instruments:
                    self.mark_stale(inst, "venue disconnected")
        if not connected:
            return
        due = self.adapter.poll(now)
        if due:
            self._queue_push(self._from_venue(due))
        if self._poll_market is not None:
            # market data the adapter received on its own (a FIX session's W/X), stamped with
            # when each arrived
            for msg, recv_ns in self._poll_market():
                self.on_wire(msg, recv_ns)
        if self._last_probe_ns is None or now - self._last_probe_ns >= self.probe_interval_ns:
            self.probe()
        if self.stale_after_ns:
            for inst, t in self._last_msg_ns.items():
                if now - t > self.stale_after_ns:
                    self.mark_stale(inst, f"no message for {(now - t) / _MS:.0f} ms")
        for inst in self.gaps.needs_snapshot():
            if inst in self.latest and self.adapter.snapshot(inst) is not None:
                self._try_snapshot(inst)

    def probe(self) -> None:
        """One NTP-style round trip to the venue."""
        self._last_probe_ns = self.clock.now_ns()
        if self.adapter.connected():
            self.calibrator.add_round_trip(*self.adapter.clock_probe())

    # ------------------------------------------------------------------ views
    def snapshot(self, instrument: str) -> Quote | None:
        return self.latest.get(instrument)

    def status(self) -> dict[str, Any]:
        est = self.offset()
        return {
            "venue": self.venue.code, "name": self.name, "state": "UP" if self.up else "DOWN",
            "clock_offset_ns": est.offset_ns, "clock_uncertainty_ns": est.uncertainty_ns,
            "clock_drift_ppm": est.drift_ppm, "clock_source": est.source,
            "counters": dict(self.counters), "bad_input": dict(self.bad_input),
            "gaps": len(self.gaps.gaps), "stale": sorted(self.gaps.needs_snapshot()),
            "open_orders": sum(1 for s in self.orders.values() if s.status.is_live),
            "subscribers": self.conflator.stats(),
            **({"session": self._session_status()} if self._session_status is not None else {}),
        }

    def close(self) -> None:
        """The gateway stops: close the venue session (``adapter.close()``, when it has one:
        a FIX adapter logs out and keeps its sequence numbers in its store)."""
        close = getattr(self.adapter, "close", None)
        if close is not None:
            close()
