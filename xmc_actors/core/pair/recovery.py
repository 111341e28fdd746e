"""A restarted coordinator rebuilds its pairs from its own trail (mixed into :class:`~.book.PairBook`)."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Iterable, Mapping

from pydantic import ValidationError

from ...model.events import Event, EventKind
from ...model.market import Side
from ...model.orders import (
    OrderRequest, OrderState, OrderStatus, OrderType, TimeInForce,
)
from ...model.pairs import ExecutionMode, LegIntent, PairIntent, PairState
from .commands import Command, NotifyDone, TimerKey, TimerKind
from .legs import Forgotten, Leg, LegOrder
from .machine import PairMachine
from .summary import _placeholder, _trail_summary
from .table import Trigger

_ROLL_CHILD = re.compile(r"\.roll[A-Z]$")  # core.roll.child_id: a calendar roll's child pair

if TYPE_CHECKING:
    pass


def _sent_fields(req: OrderRequest) -> dict[str, object]:
    """The order's fields an ``ORDER_SENT`` a restart writes from its gateway carries (the
    pair's own send writes the same names, on the hot path, inline)."""
    return {"client_order_id": req.client_order_id, "leg_name": req.leg, "attempt": req.attempt,
            "side": req.side.value, "qty": req.qty, "price": str(req.price), "order_type": req.order_type.value,
            "tif": req.tif.value, "reduce_only": req.reduce_only,
            **({"offset": req.offset.value} if req.offset else {})}

class Recovery:
    """:meth:`open_decisions` and :meth:`recover`; see their docstrings."""

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

    def recover(self, events: Iterable[Event], venue_orders: Iterable[OrderRequest] = (),
                unanswered_venues: Iterable[str] = ()) -> tuple[dict[str, int], list[Command]]:
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
                  "adopted": 0, "deferred": 0, "orphans_known": 0}
        silent = set(unanswered_venues)
        #: pairs the trail knows by their INTENT alone whose venue could not say what it holds: not
        #: rebuilt (nothing known would end them flat while orders may be working there); the shell
        #: asks their gateways again (``PairCoordinator._adopt_from_venues``)
        self.recovery_deferred: dict[str, PairIntent] = {}
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
            if intent_ev is None and evs and all(e.kind is EventKind.ORDER_SENT and e.payload.get("orphan")
                                                 for e in evs):
                # orders an earlier restart recorded without their decision (record_orphans):
                # still not a pair here; the decision is taken up when its strategy sends it again
                self._orphan_sent.update(str(e.payload.get("client_order_id")) for e in evs)
                counts["orphans_known"] += 1
                continue
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
            if state is PairState.NEW and silent and not from_venues.get(did) \
                    and not any(e.kind is EventKind.ORDER_SENT for e in evs) \
                    and any((self.instruments.get(lg.instrument) or _placeholder(lg)).venue in silent for lg in intent.legs):
                counts["deferred"] += 1
                self.recovery_deferred[did] = intent
                continue
            counts["decisions"] += 1
            legs = tuple(Leg(spec=lg, inst=self.instruments.get(lg.instrument) or _placeholder(lg), target=lg.qty)
                         for lg in intent.legs)
            m = PairMachine(self, intent, legs, intent_ev.ts_ns)  # type: ignore[arg-type]
            if state is not PairState.NEW:  # an INTENT alone (the crash came before its first PAIR_STATE) stays NEW
                m._restore(state)
            self.pairs[did] = m
            if state.is_terminal:
                m.reason = "finished before the coordinator restarted"
                counts["finished"] += 1
                # its orders are not rebuilt: a fill still arriving for one goes the forgotten way
                self.forgotten[did] = Forgotten(intent.strategy, state, tuple(
                    (lg.leg, lg.instrument, lg.account, lg.side) for lg in intent.legs))
                end = [e for e in evs if e.kind is EventKind.PAIR_STATE][-1]
                # a calendar roll's child (``<roll id>.rollA``, core/roll.py) is not a decision of its
                # strategy: the strategy's own latest pair is the one it may be waiting for
                if isinstance(end.payload.get("nets"), Mapping) and not _ROLL_CHILD.search(did) \
                        and end.ts_ns >= latest.get(intent.strategy, (-1,))[0]:
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
                # an orphan's ORDER_SENT (record_orphans) was written before its pair was known: its
                # side says whether it unwinds
                unwind = bool(p["unwind"]) if "unwind" in p else req.side is not leg.spec.side
                self._recovered_order(m, leg, req, unwind)
                counts["orders"] += 1
            for req in sorted(from_venues.get(did, ()), key=lambda r: (r.leg, r.attempt)):
                leg = m.by_name.get(req.leg)
                if leg is None or any(o.coid == req.client_order_id for o in leg.orders):
                    continue
                # sent, but the crash came before its ORDER_SENT was written: the gateway has it
                self._recovered_order(m, leg, req.model_copy(update={"owner": self.owner}), req.side is not leg.spec.side)
                counts["adopted"] += 1
                if req.client_order_id in self._orphan_sent:
                    continue  # its ORDER_SENT was written when the restart recorded it (record_orphans)
                # written now, so that the trail names it (a later restart, the reconciliation)
                m._emit(EventKind.ORDER_SENT, leg=leg, **_sent_fields(req), unwind=req.side is not leg.spec.side,
                        adopted=True,
                        reason="sent before the coordinator restarted, not in its trail: recorded from its gateway")
            if intent.mode is ExecutionMode.QUANTITY:  # sized at submit: the first entry order carries it
                for leg in legs:
                    first = next((o for o in leg.orders if not o.unwind), None)
                    if first is not None:
                        leg.target = first.state.request.qty
            counts["reopened"] += 1
            why = "RECOVERED: the coordinator restarted mid-pair; winding down from the venues' state"
            if m.state is PairState.NEW:
                m._to(PairState.WORKING, Trigger.RECOVERED, "recovered")
            if m.state in (PairState.WORKING, PairState.REPLENISHING):
                m._wind_down(why)  # its orders are UNKNOWN: the queries below settle them first
            elif m.state is PairState.WINDING_DOWN:
                m._arm_wind_down()  # its bound counts again from the restart
            m.wind_reason = m.wind_reason or why
            m.reason = m.reason or why
            m._emit(EventKind.RECONCILE, reason=why, action="recover", state=m.state.value,
                    orders=[o.coid for lg in legs for o in lg.orders])
            if m.state is PairState.ROLLING_BACK:
                m.rollback_started_ns = self.clock.now_ns()
                m._timer(TimerKey(TimerKind.ROLLBACK), intent.rollback.max_time_ms * 1_000_000)
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
        self.sink.emit(self.events.make(EventKind.RECONCILE, reason="coordinator restarted: pairs recovered "
                                        "from the ledger", **counts))
        return counts, self._flush() + out

    def record_orphans(self, venue_orders: Iterable[OrderRequest], named: Iterable[str]) -> list[str]:
        """After :meth:`recover`: the orders the gateways hold for this coordinator whose
        decision it does not know at all (the previous life sent them and died before a word of
        the pair reached the ledger; ``named``: the client order ids the trail already names).
        Each gets its ``ORDER_SENT`` now (``adopted``, ``orphan``), so the trail names every
        order a venue holds, and each decision a ``RECONCILE`` (``orphan``). Nothing is sent or
        cancelled here: the shell then rebuilds each pair from its strategy's ``SIGNAL``
        (:meth:`orphan_intent`) and adopts it; one it cannot rebuild is adopted when its
        strategy sends the decision again (it does while it has no outcome). Returns the
        decision ids."""
        named = set(named)
        by_did: dict[str, list[OrderRequest]] = {}
        for req in venue_orders:
            if req.owner not in ("", self.owner) or self.knows(req.decision_id) or \
                    req.client_order_id in named or req.client_order_id in self._orphan_sent:
                continue
            by_did.setdefault(req.decision_id, []).append(req)
        mk = self.events.make
        for did, reqs in sorted(by_did.items()):
            reqs.sort(key=lambda r: (r.leg, r.attempt))
            for req in reqs:
                inst = self.instruments.get(req.instrument)
                self._orphan_sent.add(req.client_order_id)
                self.sink.emit(mk(
                    EventKind.ORDER_SENT, decision_id=did, account=req.account, instrument=req.instrument,
                    venue=inst.venue if inst is not None else req.instrument.split(".", 1)[0],
                    **_sent_fields(req), adopted=True, orphan=True,
                    reason="sent before the coordinator restarted; no event of its decision reached the trail: "
                           "recorded from its gateway"))
            self.sink.emit(mk(EventKind.RECONCILE, decision_id=did, action="orphan",
                              orders=[r.client_order_id for r in reqs],
                              reason="orders at the venues of a decision this coordinator's trail does not know "
                                     "(it died before writing it): recorded; taken up when its strategy sends it again"))
        return sorted(by_did)

    @staticmethod
    def orphan_intent(signal: Event, venue_orders: Iterable[OrderRequest] = ()) -> PairIntent:
        """The intent of an orphan decision (:meth:`record_orphans`) as its strategy's ``SIGNAL``
        recorded it: both legs (instrument, account, side, lots, limit), the pair's hedge ratio,
        mode and ``reduce_only``. Budgets and the deadline are the defaults: the pair is only
        wound down from the venues' word, never worked. A leg's account the signal lacks (a
        trail written before it carried one) is taken from that leg's order at its venue.
        ``ValueError`` names what is missing or wrong."""
        p = signal.payload
        by_leg = {r.leg: r for r in venue_orders if r.decision_id == signal.decision_id}
        legs = []
        for lg in p.get("legs") or ():
            name = str(lg.get("leg", ""))
            account = lg.get("account") or (by_leg[name].account if name in by_leg else None)
            if not account:
                raise ValueError(f"signal of {signal.decision_id}: leg {name!r} has no account and no order")
            limit = lg.get("limit")
            px = Decimal(limit) if limit not in (None, "", "None") else None
            legs.append(LegIntent(leg=name, instrument=str(lg["instrument"]), account=str(account),
                                  side=Side(lg["side"]), qty=int(lg["qty"]), limit_price=px, trigger_price=px))
        if len(legs) != 2:
            raise ValueError(f"signal of {signal.decision_id}: {len(legs)} legs, a pair has 2")
        try:
            return PairIntent(decision_id=signal.decision_id, strategy=signal.strategy, legs=(legs[0], legs[1]),
                              hedge_ratio=Decimal(str(p.get("pair_hedge_ratio") or "1")),
                              mode=ExecutionMode(p.get("mode") or ExecutionMode.PRICE.value),
                              reduce_only=bool(p.get("reduce_only")), created_ns=signal.ts_ns)
        except ValidationError as exc:
            raise ValueError(f"signal of {signal.decision_id}: {exc.errors()[0].get('msg')}") from None

    def _recovered_order(self, m: "PairMachine", leg: Leg, req: OrderRequest, unwind: bool) -> None:
        order = LegOrder(OrderState(request=req, status=OrderStatus.UNKNOWN), unwind=unwind, recovered=True)
        leg.orders.append(order)
        leg.next_attempt = max(leg.next_attempt, req.attempt + 1)
        leg.unwinds += order.unwind
        self.index[req.client_order_id] = m.did
        # the venue's positions were read before this rebuild: count its fills from that reading
        self.base_order(m, order, self.order_fills.get(leg.inst.venue))
