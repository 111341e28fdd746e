"""Restart of the risk guard's core: rebuild from the ledger, comparison with the venues'
positions, and what a failed or successful rebuild sets and alerts.

A mixin of :class:`~xmc_actors.core.risk_guard.RiskGuardCore` (split out of ``core/risk_guard.py``
by concern): its methods replay events into the core's own state, set up in the core's ``__init__``.
"""
from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from ..model.events import Event, EventKind
from ..model.market import Side
from ..model.risk import AlertAction, AlertLevel, TradingState
from .alerts import Alert, alert_origin, _Open
from .monitors import Condition
from .risk_types import GLOBAL, ZERO, scope_key, worst_state
from .risk_guard_types import UNATTRIBUTED, _SKIPPED_KEPT, _UNREADABLE, GuardOutput, RebuildReport, _apply_limit, _whole_lots

log = logging.getLogger("xmc.risk")


class Rebuild:
    """Rebuild and position verification of :class:`RiskGuardCore` (a mixin; no state of its own)."""

    # -- restart ----------------------------------------------------------------------------------
    def rebuild(self, events: Iterable[Event], venue_positions: Mapping[str, Mapping[str, int]],
                venues: Iterable[str] | None = None, summaries: Iterable[dict[str, Any]] = (),
                defer_all: bool = False) -> RebuildReport:
        """Rebuild positions, reservations, trading states, limits and open alerts after a restart.

        Call it on a fresh core (nothing booked yet): it adds what the ledger says to what the
        core holds.

        Parameters
        ----------
        events
            The ledger's events (any order; sorted here by time and id). Works with
            ``MemorySink.events`` and with the ledger's query results alike
            (:func:`xmc_actors.ledger.reader.read_trail`). Kinds used: ``OPERATOR``,
            ``RISK_DECISION``, ``ALERT``, ``LIFECYCLE``; others are ignored.
        venue_positions
            account -> instrument -> net lots, as the venues report them now. They are the
            truth: a difference from the ledger is recorded (RECONCILE, with the numbers), the
            position set to the venue's and the difference booked to strategy
            ``__unattributed__``; an orange ``position_mismatch`` alert is raised per account
            (its configured action applies to the account's venues).
        venues
            The venues whose positions are in ``venue_positions`` (their gateways answered).
            Instruments of other venues keep the ledger's positions and their venues are
            listed in ``unverified_venues``. ``None``: every venue reported.
        summaries
            The coordinators' latest pair summaries (``coordinator.summaries()``), booked after
            the ledger is replayed and before the venues are compared: a summary pushed while
            the guard was down is booked now; one already booked changes nothing (only a
            difference is booked). Counted in ``caught_up``.
        defer_all
            Note every difference from the venues in ``deferred`` instead of acting on it: the
            ledger, the summaries and the venues' positions are read one after the other while
            the deployment may still trade (a pair accepted and filled in between is in the
            venues' positions and nowhere else). The actor then checks again once quiet
            (:meth:`verify_positions`).

        Returns
        -------
        RebuildReport
            Also recorded as a ``RISK_DECISION`` with reason ``REBUILT`` (payload: the report).
        """
        rep = RebuildReport()
        accepted: dict[str, tuple[str, dict[str, Decimal]]] = {}
        readable: list[Event] = []
        for ev in events:
            if isinstance(ev, Event):
                readable.append(ev)
                continue
            try:
                readable.append(Event.model_validate(ev))
            except (ValidationError, TypeError, ValueError) as e:
                rep.events_read += 1
                self._skip(rep, None, e, ev)
        for ev in sorted(readable, key=lambda e: (e.ts_ns, e.event_id)):
            rep.events_read += 1
            try:
                self._replay(ev, rep, accepted)
            except _UNREADABLE as e:
                # one event the rebuild cannot read must not cost every other one: it is skipped,
                # counted and recorded (BAD_INPUT), and the rest of the trail is replayed
                self._skip(rep, ev, e, ev.payload)
        # the coordinators of the previous life, all registered before any grant is planned, so
        # that no slice is planned as if the others did not exist
        for coord, w in rep.coordinators.items():
            self.register_coordinator(coord, w)
        # reservations of pairs in flight at the crash: counted against their coordinator's slice
        for did, (coord, res) in accepted.items():
            slot = rep.open_reservations.setdefault(coord, {})
            for pool, amt in res.items():
                slot[pool] = slot.get(pool, ZERO) + amt
        for coord, res in rep.open_reservations.items():
            if coord:
                if coord not in self.leases.weights:
                    self.register_coordinator(coord)
                self.leases.counted[coord] = dict(res)
        # summaries the coordinators pushed while the guard was down (or not yet in the ledger)
        for sm in summaries:
            n = len(self.booked_lots)
            revised = self.counters.get("revised_summary", 0)
            rep.output.extend(self.on_pair_done(sm))
            if len(self.booked_lots) > n or self.counters.get("revised_summary", 0) > revised:
                rep.caught_up += 1
        # pairs still open (accepted, not booked): the venues may already hold some of their
        # fills, which no summary has booked yet. A difference on an account they trade is not a
        # mismatch yet: it is checked again once they are booked (verify_positions)
        in_flight = {did: res for did, (_, res) in accepted.items() if did not in self.booked}
        rep.in_flight = sorted(in_flight)
        busy = {pool.split(":", 1)[1] for res in in_flight.values() for pool in res if pool.startswith("account:")}
        self._compare_positions(venue_positions, venues, rep, defer_accounts={"*"} if defer_all else busy)
        rep.states = dict(self.states)
        self.sink.emit(self.maker.make(EventKind.RISK_DECISION, reason="REBUILT", **rep.as_dict()))
        return rep

    def _compare_positions(self, venue_positions: Mapping[str, Mapping[str, int]], venues: Iterable[str] | None,
                           rep: RebuildReport, defer_accounts: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """The venues are the truth for account positions (of the venues that answered): each
        difference is recorded, set to the venue's and alerted; on ``defer_accounts`` (pairs in
        flight) it is only noted in ``rep.deferred``."""
        verified = None if venues is None else set(venues)

        def venue_of(inst: str) -> str:
            i = self.instruments.get(inst)
            return i.venue if i is not None else inst.split(".", 1)[0]

        unverified: set[str] = set()
        by_account: dict[str, list[dict[str, Any]]] = {}
        for acc in sorted(set(venue_positions) | set(self.book.account)):
            ours = self.book.account.get(acc, {})
            theirs = venue_positions.get(acc, {})
            if not isinstance(theirs, Mapping):
                self._bad_input("rebuild: venue positions", TypeError(
                    f"account {acc}: expected instrument -> lots, got {type(theirs).__name__}"), theirs)
                theirs = {}
                unread = {venue_of(i) for i in ours}
            else:
                unread = set()
            for inst in sorted(set(ours) | set(theirs)):
                a = ours.get(inst, 0)
                try:
                    b = _whole_lots(theirs.get(inst, 0), f"{acc}.{inst}")
                except (ValueError, ArithmeticError) as e:
                    self._bad_input("rebuild: venue positions", e, theirs.get(inst))
                    unread.add(venue_of(inst))
                    b = a
                if (verified is not None and venue_of(inst) not in verified) or venue_of(inst) in unread:
                    if a:
                        unverified.add(venue_of(inst))
                    continue
                if a != b and (acc in defer_accounts or "*" in defer_accounts):
                    rep.deferred.append({"account": acc, "instrument": inst, "ledger": a, "venue": b})
                    continue
                if a != b:
                    diff = b - a
                    m = {"account": acc, "instrument": inst, "ledger": a, "venue": b, "difference": diff}
                    rep.mismatches.append(m)
                    by_account.setdefault(acc, []).append(m)
                    self.book.apply_fill(acc, UNATTRIBUTED, inst, diff, None)
                    self.sink.emit(self.maker.make(EventKind.RECONCILE, account=acc, instrument=inst,
                                                   reason="POSITION_MISMATCH", ledger_lots=a, venue_lots=b, difference=diff))
        rep.unverified_venues = sorted(unverified)
        now = self.clock.now_ns()
        for acc, ms in by_account.items():
            text = "; ".join(f"{m['instrument']} ledger {m['ledger']} venue {m['venue']}" for m in ms)
            rep.output.extend(self._observe(Condition("position_mismatch", "account", acc, AlertLevel.ORANGE, float(len(ms)), 1.0,
                                    f"after a restart, account {acc} positions differ from the venue: {text} "
                                    f"(set to the venue's, difference booked to {UNATTRIBUTED})"), now))

    def verify_positions(self, venue_positions: Mapping[str, Mapping[str, int]],
                         venues: Iterable[str] | None = None, *, act: bool = True) -> RebuildReport:
        """Compare positions with the venues again (after a rebuild deferred it for pairs that
        were in flight): what still differs is recorded and alerted as in :meth:`rebuild`.
        ``act=False``: only list the differences (``rep.deferred``), change and record nothing."""
        rep = RebuildReport()
        if not act:
            self._compare_positions(venue_positions, venues, rep, defer_accounts={"*"})
            return rep
        self._compare_positions(venue_positions, venues, rep)
        self.sink.emit(self.maker.make(EventKind.RECONCILE, reason="POSITIONS_VERIFIED",
                                       mismatches=list(rep.mismatches), unverified_venues=list(rep.unverified_venues)))
        return rep

    def _replay(self, ev: Event, rep: RebuildReport, accepted: dict[str, tuple[str, dict[str, Decimal]]]) -> None:
        """Apply one ledger event to the rebuilding core. Everything is read and checked before
        anything is changed, so an event that raises (:data:`_UNREADABLE`) leaves no trace."""
        p = ev.payload
        if not isinstance(p, Mapping):
            raise TypeError(f"payload: expected a mapping, got {type(p).__name__}")
        if ev.kind is EventKind.OPERATOR:
            if p.get("action") == "trading_state":
                self._put_state(scope_key(str(p["scope"]), p.get("key")), TradingState(p["state"]),
                                str(p.get("operator", "")))
            elif p.get("action") == "set_limit":
                new, _ = _apply_limit(self.cfg, p["section"], p.get("key"), p.get("field"), p.get("value"))
                self._install(new)
                rep.limit_changes += 1
            elif p.get("action") == "resolve":
                did = ev.decision_id
                if not did:
                    raise ValueError("decision_id: a resolve record needs one")
                self.escalations.pop(did, None)
                self.resolved[did] = {"operator": str(p.get("operator", "")), "note": str(p.get("note", "")),
                                      "ts_ns": ev.ts_ns, "strategy": ev.strategy}
        elif ev.kind is EventKind.RISK_DECISION and ev.reason == "BOOKED":
            # each BOOKED record carries the lots it added (the whole pair, or a revision's difference)
            did = ev.decision_id
            if not did:
                raise ValueError("decision_id: a BOOKED record needs one")
            raw_legs = p.get("legs", [])
            if not isinstance(raw_legs, (list, tuple)):
                raise TypeError(f"legs: expected a list, got {type(raw_legs).__name__}")
            legs: list[tuple[str, str, int, Decimal | None]] = []
            for i, leg in enumerate(raw_legs):
                if not isinstance(leg, Mapping):
                    raise TypeError(f"legs[{i}]: expected a mapping, got {type(leg).__name__}")
                price = Decimal(str(leg["price"])) if leg.get("price") not in (None, "", "None") else None
                if price is not None and not price.is_finite():
                    raise ValueError(f"legs[{i}].price: {leg['price']!r} is not a price")
                acc, inst = leg["account"], leg["instrument"]
                if not isinstance(acc, str) or not isinstance(inst, str) or not acc or not inst:
                    raise ValueError(f"legs[{i}]: account {acc!r} / instrument {inst!r}")
                legs.append((acc, inst, _whole_lots(leg["lots"], f"legs[{i}].lots"), price))
            summary_ts = int(p.get("summary_ts_ns") or 0)
            trade_id = str(p["trade_id"]) if p.get("incremental") and p.get("trade_id") else ""
            raw_trades = p.get("trades") or []
            if not isinstance(raw_trades, (list, tuple)):
                raise TypeError(f"trades: expected a list, got {type(raw_trades).__name__}")
            trades: list[tuple[str, str, str, Side, int, Decimal, str | None]] = []
            for i, t in enumerate(raw_trades):
                if not isinstance(t, Mapping):
                    raise TypeError(f"trades[{i}]: expected a mapping, got {type(t).__name__}")
                tp = Decimal(str(t["price"]))
                if not tp.is_finite() or tp <= 0:
                    raise ValueError(f"trades[{i}].price: {t['price']!r} is not a price")
                off = t.get("offset")
                if off not in (None, "OPEN", "CLOSE", "CLOSE_TODAY", "CLOSE_YESTERDAY"):
                    raise ValueError(f"trades[{i}].offset: {off!r}")
                trades.append((str(t["account"]), str(t["instrument"]), str(t.get("pair", "")), Side(t["side"]),
                               _whole_lots(t["qty"], f"trades[{i}].qty"), tp, off))
            # read: now apply
            if did not in self.booked:
                rep.booked_pairs += 1
            self.booked.add(did)
            rep.bookings += 1
            booked = self.booked_lots.setdefault(did, {})
            for acc, inst, lots, price in legs:
                self.book.apply_fill(acc, ev.strategy, inst, lots, price, ev.ts_ns)
                booked[(acc, inst)] = booked.get((acc, inst), 0) + lots
            fills = self.booked_fills.setdefault(did, {})
            for (acc, inst, pair, side, qty, tp, off), t in zip(trades, raw_trades):   # P&L and two-sided positions
                self._apply_trade(acc, ev.strategy, pair, inst, side, qty, tp, off, None, ev.ts_ns,
                                  decision_id=did, emit=False)
                if t.get("leg") and not (p.get("incremental") and trade_id):
                    f_q, f_n, r_q, r_n = fills.get(str(t["leg"]), (0, ZERO, 0, ZERO))
                    fills[str(t["leg"])] = (f_q, f_n, r_q + qty, r_n + tp * qty) if t.get("unwind") \
                        else (f_q + qty, f_n + tp * qty, r_q, r_n)
            self.booked_ts[did] = max(self.booked_ts.get(did, 0), summary_ts)
            self.booked_state[did] = str(p.get("state", ""))
            if p.get("state") == "ESCALATED":
                fresh = bool(trade_id) and (did, trade_id) not in self.booked_trades
                self._note_escalation(did, ev.strategy, "", None, summary_ts or ev.ts_ns, reopen=fresh)
            if trade_id:
                self.booked_trades.add((did, trade_id))
            accepted.pop(did, None)
        elif ev.kind is EventKind.RISK_DECISION and ev.reason == "ACCEPTED":
            if ev.decision_id not in self.booked:
                res = p.get("reservation") or {}
                if not isinstance(res, Mapping):
                    raise TypeError(f"reservation: expected a mapping, got {type(res).__name__}")
                amounts = {str(k): Decimal(str(v)) for k, v in res.items()}
                if not all(a.is_finite() for a in amounts.values()):
                    raise ValueError(f"reservation: {dict(res)!r} holds a non-finite amount")
                accepted[ev.decision_id] = (str(p.get("coordinator", "")), amounts)
        elif ev.kind is EventKind.RECONCILE and ev.reason == "POSITION_MISMATCH":
            # an earlier life set a position to the venue's (booked to __unattributed__): the
            # same lots again, or every later rebuild would find the difference afresh
            if not ev.account or not ev.instrument:
                raise ValueError("account, instrument: a POSITION_MISMATCH record needs both")
            diff = int(p["difference"])
            self.book.apply_fill(ev.account, UNATTRIBUTED, ev.instrument, diff, None)
            rep.corrections += 1
        elif ev.kind is EventKind.LIFECYCLE and ev.reason == "COORDINATOR_REGISTERED" and p.get("coordinator"):
            w = Decimal(str(p.get("weight", "1")))
            if not w.is_finite() or w <= 0:
                raise ValueError(f"weight: {p.get('weight')!r} is not a positive weight")
            rep.coordinators[str(p["coordinator"])] = w
        elif ev.kind is EventKind.LIFECYCLE and p.get("action") == "watch_position" and self.roll_watch is not None:
            # an ERP hedge's position watched for its roll (watch_position): watched again
            self.roll_watch.restore_held(str(p["name"]), p.get("policy") or {}, p.get("accounts") or {},
                                         list(p.get("decision_ids") or ()), ev.strategy or None)
        elif ev.kind is EventKind.LIFECYCLE and p.get("action") == "roll_watch" and p.get("name") \
                and ev.decision_id and self.roll_watch is not None:
            name = str(p["name"])
            if p.get("resumed"):  # the position changed after that roll stopped the automatic ones
                self.roll_watch.restore_resumed(name, ev.decision_id)
            elif p.get("children"):  # an automatic roll sent: its outcome is asked for again
                self.roll_watch.restore_sent(name, ev.decision_id)
                if name in self.roll_watch.held:
                    self.roll_watch.held[name].update(str(c) for c in p["children"])  # its lots moved with them
        elif ev.kind is EventKind.ALERT:
            origin = alert_origin(p)
            if origin == "coordinator":
                # a coordinator's own alert about a pair (an escalation): what the guard did about
                # that pair is in its own records (the summary's BOOKED, its ``unhedged`` alert and
                # the state that alert set), replayed for themselves; this one is not the guard's.
                # Its reason and residual describe the escalation the BOOKED record opens
                rep.coordinator_alerts += 1
                if ev.decision_id and str(p.get("alert_id", "")).endswith(":escalated"):
                    detail = (str(p.get("message") or ev.reason or ""), p.get("residual"))
                    self._escalation_detail[ev.decision_id] = detail
                    if ev.decision_id in self.escalations:
                        self.escalations[ev.decision_id].update(reason=detail[0], residual=detail[1])
                return
            if origin == "other":
                rep.other_alerts += 1   # a strategy's or a gateway's free-form alert
                return
            k = (str(p["monitor"]), str(p.get("scope", "")), str(p.get("key", "")))
            if p.get("resolved"):
                self.alerts.open.pop(k, None)
                for sk, who in list(self.throttled.items()):
                    if who == ":".join(k):
                        del self.throttled[sk]
                return
            lvl = AlertLevel(p["level"])
            alert = Alert.model_validate({**{f: v for f, v in p.items() if f in Alert.model_fields}, "ts_ns": ev.ts_ns})
            targets = self._targets(k[1], k[2]) if p.get("action") == AlertAction.THROTTLE.value else []
            self.alerts.open[k] = _Open(str(p["alert_id"]), lvl, int(p.get("opened_ns", ev.ts_ns)), ev.ts_ns,
                                        int(p.get("repeats", 0)), alert)
            for sk in targets:
                self.throttled.setdefault(sk, ":".join(k))

    def _skip(self, rep: RebuildReport, ev: Event | None, e: Exception, raw: object) -> None:
        rep.skipped += 1
        what = f"{ev.kind.value} {ev.event_id}" if ev is not None else "event"
        if len(rep.skipped_events) < _SKIPPED_KEPT:
            rep.skipped_events.append({"event_id": ev.event_id if ev is not None else "",
                                       "kind": ev.kind.value if ev is not None else "",
                                       "error": f"{type(e).__name__}: {e}"[:300]})
        if rep.skipped <= _SKIPPED_KEPT:
            self._bad_input(f"rebuild: {what} skipped", e, raw)
        else:
            self._count("bad_input")
            log.error("rebuild: %s skipped: %s", what, e)

    def take_over_from(self, old: Any, *, live: bool, coordinators: Iterable[str],
                       held_states: Iterable[tuple[str, str | None, TradingState]] = ()) -> None:
        """This core was just rebuilt from the ledger to replace ``old`` (the running guard's
        core, or the empty one a restarted guard started with): keep what ``old`` knows better
        than the ledger.

        ``live``: ``old`` ran until now (an operator's live rebuild), so its leases and acks are
        exact (the ledger has none) and its booked-but-not-yet-granted decisions are still owed
        to their coordinators. The grant counter never goes back (a coordinator ignores a grant
        older than the one it holds). Every coordinator in ``coordinators`` is registered (with
        its old weight). ``held_states``: trading-state changes pushed to the guard while it was
        rebuilding, newer than what the ledger held, applied last."""
        if live:
            self.leases, self.acked = old.leases, dict(old.acked)
            for c, pending in old.booked_pending.items():
                mine = self.booked_pending.setdefault(c, [])
                mine += [d for d in pending if d not in mine]
        self.seq = max(self.seq, old.seq)
        if getattr(old, "roll_watch", None) is not None:  # its quotes and the rolls it sent go on
            self.set_roll_watch(old.roll_watch)
        for name in coordinators:
            if name not in self.leases.weights:
                self.register_coordinator(name, old.leases.weights.get(name, Decimal(1)))
        for scope, key, st in held_states:
            sk = scope_key(scope, key)
            if st is TradingState.ACTIVE:
                self.states.pop(sk, None)
            else:
                self.states[sk] = st

    def rebuild_failed(self, reason: str) -> GuardOutput:
        """The restart could not read the ledger or the venues: enter global REDUCING, raise a red alert.

        REDUCING, not HALTED: the guard does not know the positions, so no new entry may be
        made against them; but coordinators with a pair in flight must still be able to roll a
        filled leg back (reduce-only orders pass REDUCING, not HALTED), or a one-legged position
        would be left open. The state holds until an operator resumes (after a rebuild that
        succeeds: ``rebuild_from_ledger``). Recorded as ``RISK_DECISION`` ``REBUILD_FAILED``.
        """
        out = GuardOutput()
        now = self.clock.now_ns()
        self.sink.emit(self.maker.make(EventKind.RISK_DECISION, reason="REBUILD_FAILED", error=reason[:2000]))
        cur = self.states.get(GLOBAL, TradingState.ACTIVE)
        if worst_state(cur, TradingState.REDUCING) is not cur:
            self._set_state(GLOBAL, None, TradingState.REDUCING, "auto:rebuild", f"rebuild failed: {reason}"[:500], auto=True)
            out.state_changes.append((GLOBAL, None, TradingState.REDUCING))
        a = self.alerts.observe(Condition("rebuild", GLOBAL, GLOBAL, AlertLevel.RED, 1.0, 1.0,
                                          f"risk guard restart could not rebuild its positions: {reason}; "
                                          f"global REDUCING (new entries refused) until an operator resumes"), now)
        if a is not None:
            a = a.model_copy(update={"action": AlertAction.REDUCE})
            self.alerts.open[("rebuild", GLOBAL, GLOBAL)].last = a
            self.dispatcher.dispatch(a)
            out.alerts.append(a)
            self._count(f"alert_{a.level.value}")
        out.regrant = True
        return out

    def rebuild_succeeded(self) -> GuardOutput:
        """Close an open ``rebuild`` alert (the state it set stays until an operator resumes)."""
        out = GuardOutput()
        now = self.clock.now_ns()
        a = self.alerts.observe(Condition("rebuild", GLOBAL, GLOBAL, None, 0.0, 1.0, "risk guard rebuilt"), now)
        if a is not None:
            self.dispatcher.dispatch(a)
            out.alerts.append(a)
        return out


def unconfirmed_event(maker: Any, differences: list[dict[str, Any]], checks: int) -> Event:
    """The ``RECONCILE`` ``POSITIONS_UNCONFIRMED`` a restarted guard records when its deferred
    check gives up (pairs in flight at every look): the differences it saw, left for an operator
    (``xmc audit reconcile``) or the next restart, never silently dropped."""
    return maker.make(EventKind.RECONCILE, reason="POSITIONS_UNCONFIRMED", differences=list(differences),
                      checks=checks, note="pairs were in flight at every comparison: neither confirmed nor cleared")


class DifferenceConfirmation:
    """When a difference between the guard's book and the venues, found at a restart while pairs
    traded, becomes a mismatch: the rule the restarted guard's deferred check applies, one
    comparison at a time (``observe``), pure so that it is tested without Ray.

    A difference is confirmed when two comparisons in a row, each made while every coordinator
    was idle (no pair in flight), see the same difference. A comparison made while a pair was in
    flight neither confirms nor clears: a stalled venue holds a pair, and its unbooked fills, for
    seconds, and two such comparisons alike would turn a pair in flight into an orange mismatch
    that holds its venue REDUCING until an operator resumes it (before this rule, a comparison
    counted even when the wait for idle coordinators had timed out). No difference at
    all ends the check ("clear"). After ``checks`` comparisons without either, the check gives
    up ("moving"): nothing is alerted, and the next restart checks again.
    """

    def __init__(self, checks: int = 6) -> None:
        self.checks = checks
        self.made = 0
        self.prev: list[dict[str, Any]] | None = None
        self.last: list[dict[str, Any]] = []   # what the last comparison saw

    def observe(self, idle: bool, seen: list[dict[str, Any]]) -> str:
        """One comparison; returns "clear", "confirmed", "moving" (given up) or "again"."""
        self.made += 1
        self.last = list(seen)
        if not seen:
            return "clear"
        if not idle:
            self.prev = None
        elif seen == self.prev:
            return "confirmed"
        else:
            self.prev = list(seen)
        return "moving" if self.made >= self.checks else "again"
