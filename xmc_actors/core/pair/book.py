"""Every pair in flight (:class:`PairBook`): submission, routing of reports and timers to
their pair, the trading states and the gate every order passes. A restart's recovery, fills of
forgotten pairs and the two-sided positions are its mixins (:mod:`.recovery`,
:mod:`.late_fills`, :mod:`.offsets`)."""
from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any, Final, Iterable, Mapping

from pydantic import ValidationError

from ...model.config import route_key
from ...model.coordinator import CoordinatorConfig
from ...model.events import EventKind
from ...model.market import Instrument, Venue
from ...model.orders import (
    ExecutionReport, split_client_order_id,
)
from ...model.pairs import ExecutionMode, PairIntent, PairState
from ...model.risk import TradingState
from ..alerts import RESIDUAL_BOOK, coordinator_alert
from ..attribution import UNKNOWN, attribution
from ..clock import Clock
from ..positions import TwoSidedBook
from ..pretrade import AllowAll, Denial, PreTradeCheck
from ..sink import Deferred, EventMaker, EventSink, MemorySink, write_spec
from ..sizing import balanced_size, is_balanced
from .commands import Command, HaltStrategy, NotifyDone, TimerKey
from .legs import Forgotten, Leg
from .late_fills import LateFills
from .machine import PairMachine
from .offsets import Offsets
from .recovery import Recovery
from .summary import _placeholder
from .table import Trigger

# ------------------------------------------------------------------------------------ book
SCOPES: Final = ("global", "strategy", "venue", "instrument", "account")
_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class PairBook(Recovery, LateFills, Offsets):
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
    sink
        Where the book writes its events, as it makes them (its own :class:`MemorySink` if
        None: tests read ``book.sink.events``). The coordinator passes a
        :class:`~xmc_actors.core.sink.HeldSink`, released once the batch's orders have left.
    """

    def __init__(self, instruments: Mapping[str, Instrument], clock: Clock, *, checker: PreTradeCheck | None = None,
                 config: CoordinatorConfig | None = None, owner: str = "coordinator",
                 event_node: int | None = None, venues: Mapping[str, Venue] | Iterable[Venue] | None = None,
                 sink: EventSink | None = None) -> None:
        self.instruments = dict(instruments)
        vs = venues.values() if isinstance(venues, Mapping) else (venues or ())
        self.venues: dict[str, Venue] = {v.code: v for v in vs}
        # the accounts' two-sided positions at venues that hold long and short apart, as this
        # coordinator's own fills made them: where an order's offset is chosen from
        self.positions = TwoSidedBook()
        # venue -> client order id -> lots filled, as the venue's position reading held them
        self.order_fills: dict[str, dict[str, int]] = {}
        self.clock = clock
        self.checker: PreTradeCheck = checker if checker is not None else AllowAll()
        self.config = config or CoordinatorConfig()
        self.owner = owner
        self.events = EventMaker(clock, owner, event_node)
        self.sink: EventSink = sink if sink is not None else MemorySink()
        self.pairs: dict[str, PairMachine] = {}
        self.index: dict[str, str] = {}  # client order id -> decision id
        self.trading: dict[tuple[str, str], TradingState] = {}
        self.venues_down: dict[str, str] = {}  # route key -> why (from the venue health probes)
        # "VENUE/ACCOUNT" keys of gateways that carry named accounts (model.config.route_key)
        self.account_routes: set[str] = set()
        self._finish_order: deque[str] = deque()  # decision ids in the order their pairs finished
        # decision ids of pairs that may be open: every pair that took a non-terminal state; the
        # finished (or forgotten) ones are dropped when in_flight_count() next looks
        self._open: set[str] = set()
        # tombstones: finished pairs evicted from memory, and those a restart recovered as finished
        # (their orders are not rebuilt); a fill for one of their orders escalates
        self.forgotten: dict[str, Forgotten] = {}
        self._orphan_sent: set[str] = set()  # orders a restart recorded without their decision (record_orphans)
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
    def _write_spec(self, spec: dict[str, Any]) -> None:
        """Write the event ``spec`` describes (built when the sink releases it, if it holds)."""
        write_spec(self.sink, self.events, spec)

    def refuse_input(self, where: str, detail: str, decision_id: str = "") -> list[Command]:
        """Bad input the shell met on the book's behalf (an answer it could not read, a request
        of the wrong type): counted in ``status()["bad_input"]`` and recorded as BAD_INPUT, as
        the book's own is. Returns the commands pending."""
        self._bad_input(where, detail, decision_id)
        return self._flush()

    def _bad_input(self, where: str, detail: str, decision_id: str = "") -> None:
        self.bad_inputs[where] = self.bad_inputs.get(where, 0) + 1
        self.sink.emit(self.events.make(EventKind.BAD_INPUT, decision_id=decision_id, reason=f"{where}: {detail}"))

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
    def knows(self, decision_id: str) -> bool:
        """Whether a pair with this decision id was submitted here (held, or finished and
        forgotten; also one recovered from the trail after a restart)."""
        return decision_id in self.pairs or decision_id in self.forgotten

    def submit(self, intent: PairIntent | Mapping[str, Any], liquidity: Mapping[str, int] | None = None,
               refuse: str = "") -> tuple[dict[str, Any], list[Command]]:
        """Accept or refuse a pair; idempotent on ``decision_id``.

        ``refuse``: a reason the shell already has to refuse it (its strategy's roll of these
        contracts is undecided: ``ROLLING``), refused and recorded as any refusal.
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
            if existing.intent != intent and _trade_of(existing.intent) != _trade_of(intent):
                # the same trade with other budgets is the strategy re-sending a decision that a
                # restart rebuilt from its SIGNAL (default budgets): a duplicate, not bad input
                self._bad_input("intent", f"decision_id {intent.decision_id} re-used with a different intent",
                                intent.decision_id)
            return {"decision_id": intent.decision_id, "accepted": existing.state is not PairState.REFUSED,
                    "state": existing.state.value, "reason": existing.reason, "duplicate": True}, self._flush()
        problem = refuse or self._validate(intent, liquidity)
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
        if not problem and intent.start_by_ns is not None and intent.start_by_ns <= now:
            # held up (a call in flight across a restart, a re-send): its prices are of quotes
            # long gone; the strategy decides again on fresh ones if the opportunity holds
            problem = (f"STALE_DECISION: its orders were to leave by {(now - intent.start_by_ns) / 1e6:.1f} ms ago "
                       "(start_within_ms of the quotes it was decided on); not sent on those prices")
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
            m._to(PairState.REFUSED, Trigger.REFUSED, problem)
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

    def on_place_result(self, coid: str, reports: list[ExecutionReport], held_ns: int = 0) -> list[Command]:
        """A place call's answer. ``held_ns``: how long the gateway held it after the venue had
        answered (a gateway group answers its orders together); the ack's latency leaves it out."""
        m = self._machine_for(coid, "place")
        if m is not None:
            m.on_place_result(coid, [r for r in reports if isinstance(r, ExecutionReport)], max(int(held_ns), 0))
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

    def on_timer(self, decision_id: str, key: TimerKey | str) -> list[Command]:
        """A timer of ``decision_id`` fired (``key`` as :class:`StartTimer` armed it; its string
        form is read too). An unreadable key is bad input, counted and recorded."""
        m = self.pairs.get(decision_id)
        if m is not None:
            try:
                k = TimerKey.parse(key)
            except ValueError as e:
                self._bad_input("timer", str(e), decision_id)
                return self._flush(m)
            m.on_timer(k)
        return self._flush(m)

    def set_trading_state(self, scope: str, key: str, state: TradingState | str, operator: str = "",
                          by: Mapping[str, Any] | None = None) -> list[Command]:
        """Set the trading state of a scope (global / strategy / venue / instrument / account);
        the OPERATOR event names the operator, their role and channel (``by``, as the risk guard
        recorded them: core/attribution.py). A wrong ``by`` is recorded (BAD_INPUT) and the state
        applied all the same, its role and channel ``unknown``: a halt is never lost to its label."""
        if scope not in SCOPES:
            self._bad_input("trading_state", f"scope: {scope!r} is not one of {', '.join(SCOPES)}")
            return self._flush()
        try:
            st = TradingState(state)
        except ValueError:
            self._bad_input("trading_state", f"state: {state!r} is not one of ACTIVE, REDUCING, HALTED")
            return self._flush()
        try:
            who = {**attribution(operator or UNKNOWN, by), "operator": operator}
        except ValueError as e:
            self._bad_input("trading_state", f"{e} (the state is applied; who set it is recorded as unknown)")
            who = {"operator": operator, "role": UNKNOWN, "via": UNKNOWN}
        self.trading[(scope, key)] = st
        setter = getattr(self.checker, "set_trading_state", None)
        if setter is not None and scope in ("global", "strategy", "venue"):
            setter(scope, key or None, st)
        self.sink.emit(self.events.make(EventKind.OPERATOR, reason=f"trading state {scope}:{key} -> {st.value}",
                                        scope=scope, key=key, state=st.value, **who))
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
    def in_flight_count(self) -> int:
        """How many pairs are open (not in a terminal state): what ``status()["in_flight"]``
        adds up to, in time proportional to the open pairs, not to every pair held (a replay's
        settle asks after every step)."""
        pairs, done = self.pairs, []
        for did in self._open:
            m = pairs.get(did)
            if m is None or m.state.is_terminal:
                done.append(did)
        self._open.difference_update(done)
        return len(self._open)

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


def _trade_of(intent: PairIntent) -> tuple:
    """What a decision trades: its strategy, hedge ratio, mode, ``reduce_only`` and each leg's
    instrument, account, side and lots (not its budgets, deadline or prices; a SIGNAL records
    all of these, so a decision rebuilt from it compares equal to its strategy's own intent)."""
    return (intent.strategy, intent.hedge_ratio, intent.mode, intent.reduce_only,
            tuple((lg.leg, lg.instrument, lg.account, lg.side, lg.qty) for lg in intent.legs))
