"""The RiskGuard's core: positions, capital, leases, trading states, monitors, alerts, rebuild.

The actor (``xmc_actors.actors.risk_guard``) is a thin shell around :class:`RiskGuardCore`:
it feeds it pair summaries, gateway statuses and operator commands, pushes the grants and
trading-state changes it returns to every coordinator, and sends alerts to remote sinks.

The core is one class in three modules, split by concern: this one (grants, pair summaries,
monitors and alerts, operator actions, status), ``core/risk_guard_books.py`` (P&L, two-sided
positions, equity: the :class:`MoneyBooks` mixin) and ``core/risk_guard_rebuild.py`` (restart from
the ledger and the venues' positions: the :class:`Rebuild` mixin); the values it returns and the
limit-change helper are in ``core/risk_guard_types.py``, re-exported here.

Ledger records written here (all through the EventSink):

* ``OPERATOR`` – every trading-state change and limit change, with the operator's name
  (automatic actions carry ``operator="auto:<monitor>"`` and ``auto=True``);
* ``ALERT`` – every alert sent (new, escalated, resolved);
* ``RISK_DECISION`` with reason ``BOOKED`` – a finished pair booked into positions: ``legs[].lots``
  is what this booking added (the whole pair the first time; the difference when a revised
  summary of the same decision arrives, e.g. after a fill that came after a confirmed cancel),
  ``legs[].total`` what is booked for the decision in that account and instrument since;
* ``RECONCILE`` – a difference between the ledger and a venue found by :meth:`RiskGuardCore.rebuild`;
* ``RISK_DECISION`` with reason ``REBUILT`` / ``REBUILD_FAILED`` – what a restart rebuilt (events
  read, pairs booked, reservations in flight, each mismatch with the venues), or why it could not;
* ``BAD_INPUT`` – a summary or status that could not be read, or a ledger event a rebuild
  skipped because it could not be read (counted, never raised);
* ``PNL`` with reason ``TRADE`` – one per execution booked (a leg's fills, its rollback, a late
  fill): the offset the guard takes it to have, the lots it closed and opened, what it realised
  and paid in the instrument's currency and the FX rate used; with reason ``MARK`` – every
  ``pnl_interval_ms``: per account capital, P&L, equity (and whether the broker's reading or our
  figures), margin and available funds; P&L per strategy and per pair in the base currency
  (realised, unrealised, fees, FX), per leg also in the instrument's currency; the marks and
  the rates they were counted at;
* ``RECONCILE`` with reason ``ACCOUNT_MISMATCH`` – a broker's account reading (equity or
  margin) differs from ours beyond the tolerance (an ``account_mismatch`` alert is raised too).
"""
from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from pydantic import ValidationError

from ..model.events import Event, EventKind
from ..model.market import Account, Instrument, Venue
from ..model.quotes import Quote
from ..model.risk import AlertAction, AlertLevel, RiskConfig, TradingState
from .alerts import AlertDispatcher, AlertManager, AlertSinkProtocol, LedgerAlertSink, LogAlertSink
from .capital import CapitalPool, LeaseBook, PositionBook
from .clock import Clock
from .monitors import Condition, MonitorSet, PairSummary
from .pnl import PnlBook
from .positions import TwoSidedBook
from .attribution import attribution
from .risk_types import GLOBAL, GrantAck, RiskGrant, scope_key, worst_state
from .risk_guard_rolls import RollWatching
from .roll_watch import RollWatch
from .sink import EventMaker, EventSink
from .risk_guard_books import MoneyBooks
from .risk_guard_rebuild import Rebuild
from .risk_guard_types import (LIMIT_SECTIONS, UNATTRIBUTED, GuardOutput, RebuildReport, _apply_limit, _jsonable,
                               check_operator)

log = logging.getLogger("xmc.risk")

#: monitors whose automatic REDUCE/HALT is lifted when their alert resolves, provided nobody
#: changed the scope's state since: a venue whose gateway or connection was down and answers
#: again (``venue_state``). Other automatic actions (unhedged exposure, reject ratio, occupancy,
#: slippage) hold until an operator resumes: their cause is a judgement, not a link.
SELF_CLEARING_MONITORS = frozenset({"venue_state"})


class RiskGuardCore(MoneyBooks, Rebuild, RollWatching):
    """Authoritative risk state of one deployment. Deterministic; the clock is injected."""

    def __init__(
        self,
        config: RiskConfig,
        instruments: Mapping[str, Instrument],
        venues: Mapping[str, Venue],
        accounts: Iterable[Account],
        fx: Callable[[str, str], Decimal | None],
        *,
        clock: Clock,
        sink: EventSink,
        base_currency: str = "USD",
        name: str = "risk-guard",
        sinks: Iterable[AlertSinkProtocol] = (),
        pnl_interval_ms: int = 5_000,
        offset_preference: str = "auto",
        account_tolerance: Decimal = Decimal("0.005"),
        account_reading_max_age_ms: int = 60_000,
    ) -> None:
        """
        Parameters (beyond the obvious)
        -------------------------------
        pnl_interval_ms
            How often :meth:`tick` records a ``PNL`` ``MARK`` event (0: every tick).
        offset_preference
            The coordinators' ``offset_preference``: how the guard takes a booked fill at a
            two-sided venue to have opened or closed (it chooses as the coordinator does, on
            its own two-sided book; the venue's own positions replace it when a gateway can
            say, :meth:`load_two_sided`).
        account_tolerance
            A broker's equity or margin reading that differs from ours by more than this
            fraction of our equity raises an ``account_mismatch`` alert.
        account_reading_max_age_ms
            A broker reading older than this no longer wins over our own figures.
        """
        self.cfg = config
        self.instruments = dict(instruments)
        self.venues = dict(venues)
        self.clock = clock
        self.sink = sink
        self.maker = EventMaker(clock, name)
        self.base = base_currency
        self.book = PositionBook()
        self.capital = CapitalPool(accounts, self.instruments, fx, base_currency, self.venues)
        # P&L (core/pnl.py) and two-sided positions (long/short, today/yesterday) at the venues
        # that hold them apart, both fed by the pairs booked
        self.pnl = PnlBook(self.instruments, fx, base_currency)
        self.sides = TwoSidedBook()
        self.pnl_interval_ns = int(pnl_interval_ms) * 1_000_000
        self._last_pnl_ns: int | None = None
        self.offset_preference = offset_preference
        self.account_tolerance = Decimal(account_tolerance)
        self.account_reading_max_age_ns = int(account_reading_max_age_ms) * 1_000_000
        self.account_readings: dict[str, dict[str, Any]] = {}     # account -> the broker's last reading
        self.readings_recorded_ns: dict[str, int] = {}             # account -> when a reading was last recorded
        self.computed_equity: dict[str, Decimal] = {a.id: a.capital for a in self.capital.accounts.values()}
        # decision id -> leg name -> (filled lots, their notional, rollback lots, their notional) booked
        self.booked_fills: dict[str, dict[str, tuple[int, Decimal, int, Decimal]]] = {}
        self.leases = LeaseBook()
        self._occupancy_messages: dict[str, tuple[Any, str]] = {}   # tick(): who -> (figures, message)
        self.states: dict[str, TradingState] = {}
        # who set each state that is not ACTIVE ("auto:<monitor>" for an automatic action)
        self.state_setter: dict[str, str] = {}
        self.throttled: dict[str, str] = {}        # scope key -> monitor that throttled it
        self.monitors = MonitorSet(config.monitors)
        self.alerts = AlertManager(config, self.maker.new_id)
        self.dispatcher = AlertDispatcher([LedgerAlertSink(sink, self.maker), LogAlertSink(), *sinks])
        self.seq = 0
        self.acked: dict[str, int] = {}
        self.booked_pending: dict[str, list[str]] = {}
        self.booked: set[str] = set()
        # decision id -> (account, instrument) -> signed lots booked so far, and the stamp of the
        # summary they came from: a revised summary books only its difference
        self.booked_lots: dict[str, dict[tuple[str, str], int]] = {}
        self.booked_ts: dict[str, int] = {}
        self.booked_state: dict[str, str] = {}
        self.booked_trades: set[tuple[str, str]] = set()  # (decision id, trade id) of incremental bookings
        self.counters: dict[str, int] = {}
        # escalated pairs whose residual no person has dealt with yet (``xmc resolve``): decision
        # id -> strategy, reason, residual, ts_ns; the strategy resumes only once none is left
        self.escalations: dict[str, dict[str, Any]] = {}
        self.resolved: dict[str, dict[str, Any]] = {}   # decision id -> operator, note, ts_ns
        self._escalation_detail: dict[str, tuple[str, Any]] = {}  # rebuild: reason, residual from the coordinator's alert
        self.roll_watch: RollWatch | None = None   # set_roll_watch: the strategies' dated contracts
        self._dated: set[str] = set()

    # -- coordinators and grants -----------------------------------------------------------
    def register_coordinator(self, name: str, weight: Decimal = Decimal(1)) -> None:
        """Register a coordinator (recorded as ``LIFECYCLE`` ``COORDINATOR_REGISTERED``, so that a
        restarted guard finds it again: :meth:`rebuild`)."""
        new = name not in self.leases.weights or self.leases.weights[name] != Decimal(weight)
        self.leases.register(name, Decimal(weight))
        self.booked_pending.setdefault(name, [])
        if new:
            self.sink.emit(self.maker.make(EventKind.LIFECYCLE, reason="COORDINATOR_REGISTERED", coordinator=name,
                                           weight=str(Decimal(weight))))

    def coordinators(self) -> list[str]:
        return list(self.leases.weights)

    def make_grant(self, coordinator: str) -> RiskGrant:
        """A fresh grant for ``coordinator``: its lease is counted against the pools at once."""
        now = self.clock.now_ns()
        pools = self.capital.capacities(self.book, self.cfg, self._margins()[1])
        leases = self.leases.plan(coordinator, pools)
        acct_pos, strat_pos = self.book.snapshot()
        total_w = sum(self.leases.weights.values())
        share = self.leases.weights[coordinator] / total_w
        per, _ = self._occupancy()   # the tick's, when it came just before (core/risk_guard_books.py)
        blocked = {a: f"occupancy={o.ratio * 100:.1f}% at or above red {self.cfg.occupancy.red * 100:.0f}%"
                   for a, o in per.items() if o.level is AlertLevel.RED}
        self.seq += 1
        return RiskGrant(
            coordinator=coordinator, seq=self.seq, issued_ns=now, expires_ns=now + self.cfg.grant_ttl_ms * 1_000_000,
            config=self.cfg, base_currency=self.base, accounts={a.id: a.currency for a in self.capital.accounts.values()},
            leases=leases, account_positions=acct_pos, strategy_positions=strat_pos, trading_states=dict(self.states),
            throttled=tuple(sorted(self.throttled)), blocked_accounts=blocked,
            order_rate_per_s=max(1, int(self.cfg.throttle.max_orders_per_s * share)),
            cancel_rate_per_s=max(1, int(self.cfg.throttle.max_cancels_per_s * share)),
            reference_prices=dict(self.book.marks), booked=tuple(self.booked_pending.get(coordinator, ())),
        )

    def on_grant_ack(self, grant: RiskGrant, ack: GrantAck | None) -> bool:
        """The coordinator answered ``grant``; ``None`` means it did not (its slice stays counted at the max).

        Returns True when the coordinator holds a grant with a *higher* seq than this one: a
        grant of this guard's previous life (a restarted guard starts counting again). The
        guard's seq then jumps past it, and the caller must grant again (the checker ignores
        grants older than the one it holds).
        """
        if ack is None:
            return False
        c = grant.coordinator
        if ack.seq > grant.seq:
            self.seq = max(self.seq, ack.seq)
            self._count("grant_seq_recovered")
            return True
        if ack.seq != grant.seq:
            return False  # it holds another grant (a newer one whose ack will come, or an older one): keep the max counted
        self.leases.on_ack(c, grant.leases, ack.usage)
        self.acked[c] = max(self.acked.get(c, -1), ack.seq)
        if grant.booked:
            done = set(grant.booked)
            self.booked_pending[c] = [d for d in self.booked_pending.get(c, []) if d not in done]
        return False

    # -- pair summaries ----------------------------------------------------------------------
    def on_pair_done(self, summary: dict[str, Any] | PairSummary) -> GuardOutput:
        """Book a finished pair and feed the monitors. Bad input is recorded, never raised."""
        out = GuardOutput()
        try:
            s = summary if isinstance(summary, PairSummary) else PairSummary.model_validate(summary)
        except (ValidationError, TypeError) as e:
            self._bad_input("on_pair_done", e, summary)
            return out
        now = self.clock.now_ns()
        did = s.decision_id
        if s.state == "ESCALATED":
            raw = summary if isinstance(summary, dict) else {}
            # a late fill on a pair already resolved is new exposure nobody has dealt with: open again
            fresh = s.incremental and bool(s.trade_id) and (did, s.trade_id) not in self.booked_trades
            self._note_escalation(did, s.strategy, str(raw.get("reason", "")), raw.get("residual"),
                                  s.ts_ns or now, reopen=fresh)
        # what this summary says the pair left in the book, per account and instrument
        total: dict[tuple[str, str], int] = {}
        price: dict[tuple[str, str], Decimal | None] = {}
        for leg in s.legs:
            k = (leg.account, leg.instrument)
            total[k] = total.get(k, 0) + leg.net_lots
            if price.get(k) is None:
                price[k] = leg.avg_price or leg.rollback_avg_price
        prev = self.booked_lots.get(did)
        if s.incremental:
            # a late fill on a pair its coordinator no longer holds: add it to what is booked,
            # once per trade (a rebuild feeds the coordinators' stored summaries again)
            delta = dict(total)
            if not any(delta.values()) or (did, s.trade_id) in self.booked_trades:
                self._count("duplicate_summary")
                return out
            if s.trade_id:
                self.booked_trades.add((did, s.trade_id))
            self._count("incremental_summary")
        elif prev is not None:
            # a pair re-opened by a late fill (a fill after a confirmed cancel) is summarised again:
            # book the difference from what is booked for it; the same summary twice changes nothing
            if s.ts_ns and s.ts_ns < self.booked_ts.get(did, 0):
                self._count("stale_summary")
                return out
            delta = {k: total.get(k, 0) - prev.get(k, 0) for k in set(total) | set(prev)}
            if not any(delta.values()):
                self._count("duplicate_summary")
                if s.state != self.booked_state.get(did) and s.state != "REFUSED":
                    self.booked_state[did] = s.state
                    out.extend(self._observe(self.monitors.unhedged(s), now))
                return out
            self._count("revised_summary")
        else:
            delta = dict(total)
        self.booked.add(did)
        self.booked_ts[did] = max(self.booked_ts.get(did, 0), s.ts_ns)
        self.booked_state[did] = s.state
        booked = self.booked_lots.setdefault(did, {})
        legs = []
        for k in sorted(delta):
            acc, inst = k
            lots = delta[k]
            if not lots and prev is not None:
                continue  # a revision records only what changed
            px = price.get(k)
            self.book.apply_fill(acc, s.strategy, inst, lots, px, s.ts_ns or now)
            booked[k] = booked.get(k, 0) + lots
            legs.append({"account": acc, "instrument": inst, "lots": lots, "total": booked[k],
                         "price": None if px is None else str(px)})
        trades = self._book_trades(s, now)
        self.sink.emit(self.maker.make(EventKind.RISK_DECISION, decision_id=did, strategy=s.strategy,
                                       reason="BOOKED", coordinator=s.coordinator, state=s.state, legs=legs,
                                       revision=prev is not None, incremental=s.incremental, trade_id=s.trade_id,
                                       summary_ts_ns=s.ts_ns, trades=trades))
        self._refresh_equity()
        targets = [s.coordinator] if s.coordinator in self.booked_pending else list(self.booked_pending)
        for c in targets:
            if did not in self.booked_pending[c]:
                self.booked_pending[c].append(did)
        out.regrant = True
        if prev is None and not s.incremental:
            for cond in self.monitors.on_pair_done(s):
                out.extend(self._observe(cond, now))
        elif s.state != "REFUSED":
            # its orders, rejects and latencies were counted with the first summary: only the
            # exposure (and an escalation) is new
            out.extend(self._observe(self.monitors.unhedged(s), now))
        return out

    def on_gateway_status(self, venue: str, status: dict[str, Any]) -> GuardOutput:
        out = GuardOutput()
        if not isinstance(status, dict):
            self._bad_input("on_gateway_status", TypeError(f"status of {venue}: expected a dict, got {type(status).__name__}"), status)
            return out
        now = self.clock.now_ns()
        for cond in self.monitors.on_gateway_status(venue, status):
            out.extend(self._observe(cond, now))
        return out

    def on_quotes(self, quotes: Iterable[Quote]) -> None:
        """Latest mids become the marks (margin) and the reference prices (collar) grants carry;
        the roll watch keeps the touch of the dated contracts."""
        watched = self.roll_watch.quotes if self.roll_watch is not None else None
        for q in quotes:
            m = q.mid
            if m is not None and m > 0:
                self.book.mark(q.instrument, m, q.ts_ns)
                self.pnl.mark(q.instrument, m, q.ts_ns)
            if watched is not None and q.instrument in self._dated:
                watched[q.instrument] = (q.bid, q.ask, q.ts_ns)

    def tick(self) -> GuardOutput:
        """Periodic: equity from P&L, occupancy per account and overall, the ``PNL`` ``MARK``
        record every ``pnl_interval_ms``."""
        out = GuardOutput()
        now = self.clock.now_ns()
        self._refresh_equity()
        if self._last_pnl_ns is None or now - self._last_pnl_ns >= self.pnl_interval_ns:
            self._last_pnl_ns = now
            self._pnl_mark_event(now)
        per, overall = self._occupancy()
        yellow = float(self.cfg.occupancy.yellow)
        open_ = self.alerts.open
        for acc, o in per.items():
            if o.level is None and ("occupancy", "account", acc) not in open_:
                continue   # below yellow with no alert open: the alert manager would answer nothing
            out.extend(self._observe(Condition("occupancy", "account", acc, o.level, float(o.ratio), yellow,
                                               self._occupancy_message(f"account {acc}", o)), now))
        if overall.level is not None or ("occupancy", "global", GLOBAL) in open_:
            out.extend(self._observe(Condition("occupancy", "global", GLOBAL, overall.level, float(overall.ratio), yellow,
                                               self._occupancy_message("overall", overall)), now))
        return out

    def _occupancy_message(self, who: str, o: Any) -> str:
        """``account X occupancy 12.3% (used U / equity E CCY)``; the same figures as the last
        tick's give the same text without formatting the decimals again (most ticks)."""
        key = (o.ratio, o.used, o.equity, o.currency,   # equal decimals format alike, but for a zero's sign
               o.ratio.is_signed(), o.used.is_signed(), o.equity.is_signed())
        last = self._occupancy_messages.get(who)
        if last is not None and last[0] == key:
            return last[1]
        msg = f"{who} occupancy {o.ratio * 100:.1f}% (used {o.used:.0f} / equity {o.equity:.0f} {o.currency})"
        self._occupancy_messages[who] = (key, msg)
        return msg
    # -- alerts and automatic actions -------------------------------------------------------
    def _observe(self, c: Condition, now: int) -> GuardOutput:
        out = GuardOutput()
        a = self.alerts.observe(c, now)
        if a is None:
            return out
        self.dispatcher.dispatch(a)
        out.alerts.append(a)
        self._count(f"alert_{a.level.value}")
        for sk in self._targets(a.scope, a.key):
            if a.resolved:
                if self.throttled.get(sk) == f"{a.monitor}:{a.scope}:{a.key}":
                    del self.throttled[sk]
                    out.regrant = True
                if a.monitor in SELF_CLEARING_MONITORS and sk in self.states \
                        and self.state_setter.get(sk) == f"auto:{a.monitor}":
                    # the condition that set it is gone (the venue answers again) and nobody has
                    # changed the state since: lifted by the same monitor; an operator's own
                    # change of the scope is never undone automatically
                    scope, _, key = sk.partition(":")
                    self._set_state(scope, key or None, TradingState.ACTIVE, f"auto:{a.monitor}",
                                    f"alert {a.alert_id} resolved: {a.message}", auto=True)
                    out.state_changes.append((scope, key or None, TradingState.ACTIVE))
                    out.regrant = True
                continue
            if a.action is AlertAction.THROTTLE and sk not in self.throttled:
                self.throttled[sk] = f"{a.monitor}:{a.scope}:{a.key}"
                out.regrant = True
            elif a.action in (AlertAction.REDUCE, AlertAction.HALT):
                want = TradingState.REDUCING if a.action is AlertAction.REDUCE else TradingState.HALTED
                cur = self.states.get(sk, TradingState.ACTIVE)
                if worst_state(cur, want) is not cur:
                    scope, _, key = sk.partition(":")
                    self._set_state(scope, key or None, want, f"auto:{a.monitor}", f"alert {a.alert_id}: {a.message}", auto=True)
                    out.state_changes.append((scope, key or None, want))
                    out.regrant = True
        return out

    def _targets(self, scope: str, key: str) -> list[str]:
        if scope == "account":
            acc = self.capital.accounts.get(key)
            return [scope_key("venue", v) for v in acc.venues] if acc else []
        if scope == GLOBAL:
            return [GLOBAL]
        return [scope_key(scope, key)]

    # -- operator actions ----------------------------------------------------------------------
    def set_trading_state(self, scope: str, key: str | None, state: TradingState | str, operator: str, reason: str = "",
                          by: Mapping[str, Any] | None = None) -> Event:
        """Halt / reduce / resume a strategy, a venue or everything; recorded as an OPERATOR event
        naming the operator, their role and the channel (``by``: core/attribution.py)."""
        who = attribution(operator, by)
        st = TradingState(state)
        if st is TradingState.ACTIVE and scope == "strategy" and key:
            open_ = self.unresolved_escalations(key)
            if open_:
                raise ValueError(
                    f"strategy {key} is halted by {len(open_)} escalated pair(s) whose residual nobody has dealt "
                    f"with: {', '.join(open_)}; deal with each residual, then `xmc resolve DECISION_ID --operator "
                    f"NAME --note TEXT` (the strategy resumes when the last one is resolved)")
        return self._set_state(scope, key, st, who["operator"], reason, by=who)

    # -- escalations -------------------------------------------------------------------------------
    def _note_escalation(self, did: str, strategy: str, reason: str, residual: Any, ts_ns: int,
                         reopen: bool = False) -> None:
        if did in self.resolved:
            if not reopen:
                return  # a summary of a pair already dealt with, booked again
            del self.resolved[did]
        cur = self.escalations.get(did)
        if not reason and residual is None and did in self._escalation_detail:
            reason, residual = self._escalation_detail[did]
        self.escalations[did] = {"strategy": strategy, "reason": reason or (cur or {}).get("reason", ""),
                                 "residual": residual if residual is not None else (cur or {}).get("residual"),
                                 "ts_ns": (cur or {}).get("ts_ns", ts_ns)}

    def unresolved_escalations(self, strategy: str | None = None) -> list[str]:
        """Decision ids of escalated pairs not yet resolved (of ``strategy``, or all), oldest first."""
        return [d for d, e in sorted(self.escalations.items(), key=lambda kv: (kv[1]["ts_ns"], kv[0]))
                if strategy is None or e["strategy"] == strategy]

    def check_resolvable(self, decision_id: str) -> dict[str, Any]:
        """The open escalation of ``decision_id``; ValueError if it is not escalated or already resolved."""
        if not isinstance(decision_id, str) or not decision_id.strip():
            raise ValueError("decision_id: which escalated pair? (xmc resolve DECISION_ID)")
        did = decision_id.strip()
        if did in self.resolved:
            r = self.resolved[did]
            raise ValueError(f"decision {did} is already resolved (by {r['operator'] or '?'}: {r['note'] or 'no note'})")
        if did not in self.escalations:
            state = self.booked_state.get(did)
            open_ = self.unresolved_escalations()
            known = f"; unresolved escalations: {', '.join(open_)}" if open_ else "; no escalation is unresolved"
            raise ValueError(f"decision {did} is not an escalated pair"
                             f"{' (it ended ' + state + ')' if state else ' this risk guard knows of'}{known}")
        return dict(self.escalations[did])

    def resolve(self, decision_id: str, operator: str, note: str, residual: Any = None,
                residual_source: str = "", by: Mapping[str, Any] | None = None) -> tuple[Event, bool]:
        """A person dealt with an escalated pair's residual: record who, how (``note``) and the
        residual as the ledger recorded it (an ``OPERATOR`` event under the decision id, action
        ``resolve``). Returns the event and whether its strategy has no unresolved escalation
        left (then the caller resumes it). ValueError: not escalated, already resolved, no
        operator or no note, a wrong ``by`` (core/attribution.py)."""
        who = attribution(operator, by)
        op = who["operator"]
        if not isinstance(note, str) or not note.strip():
            raise ValueError("note: say how the residual was dealt with (--note TEXT); it is recorded")
        esc = self.check_resolvable(decision_id)
        did = decision_id.strip()
        if residual is None:
            residual, residual_source = esc.get("residual"), residual_source or "pair summary"
        ev = self.maker.make(EventKind.OPERATOR, decision_id=did, strategy=esc["strategy"], reason=f"resolve {did}",
                             action="resolve", **who, note=note.strip(),
                             residual=_jsonable(residual), residual_source=residual_source,
                             escalation_reason=esc.get("reason", ""))
        self.sink.emit(ev)
        del self.escalations[did]
        self.resolved[did] = {"operator": op, "note": note.strip(), "ts_ns": ev.ts_ns, "strategy": esc["strategy"]}
        log.warning("escalation %s of strategy %s resolved by %s: %s", did, esc["strategy"], op, note.strip())
        return ev, not self.unresolved_escalations(esc["strategy"])

    def record_acceptance(self, operator: str, reason: str, accepted: Mapping[str, Any],
                          by: Mapping[str, Any] | None = None) -> Event:
        """An operator accepted the start-of-day differences (``xmc accept-positions``): an
        ``OPERATOR`` event (action ``accept_positions``) naming the operator, the differences,
        the unverified venues, the funds and the note, whatever the trading states were (an
        operator may have resumed by hand before accepting)."""
        who = attribution(operator, by)
        ev = self.maker.make(EventKind.OPERATOR, reason=str(reason)[:1000], action="accept_positions", **who,
                             differences=_jsonable(list(accepted.get("differences") or [])),
                             unverified_venues=list(accepted.get("unverified_venues") or []),
                             funds=_jsonable(list(accepted.get("funds") or [])),
                             note=str(accepted.get("accepted_note") or ""), trigger=str(accepted.get("trigger") or ""))
        self.sink.emit(ev)
        return ev

    def _put_state(self, sk: str, st: TradingState, op: str) -> None:
        """The one place a scope's trading state (and who set it) changes; ACTIVE also lifts
        automatic throttles on the scope."""
        if st is TradingState.ACTIVE:
            self.states.pop(sk, None)
            self.state_setter.pop(sk, None)
            self.throttled.pop(sk, None)
        else:
            self.states[sk] = st
            self.state_setter[sk] = op

    def _set_state(self, scope: str, key: str | None, st: TradingState, op: str, reason: str, auto: bool = False,
                   by: Mapping[str, Any] | None = None) -> Event:
        who = attribution(op, by if by is None else {"role": by["role"], "via": by["via"]})
        sk = scope_key(scope, key)
        prev = self.states.get(sk, TradingState.ACTIVE)
        self._put_state(sk, st, op)
        ev = self.maker.make(EventKind.OPERATOR, reason=f"{st.value} {sk}", strategy=(key or "") if scope == "strategy" else "",
                             venue=(key or "") if scope == "venue" else "", action="trading_state", scope=scope,
                             key=key, state=st.value, previous=prev.value, **who, note=reason, auto=auto)
        self.sink.emit(ev)
        log.warning("trading state %s: %s -> %s by %s %s", sk, prev.value, st.value, op, reason)
        return ev

    def set_limit(self, section: str, key: str | None, field_name: str | None, value: Any, operator: str,
                  by: Mapping[str, Any] | None = None) -> RiskConfig:
        """Change one limit (``section`` / ``key`` / ``field``); validated, recorded as OPERATOR
        (with the operator's role and channel, ``by``)."""
        who = attribution(operator, by)
        new, old_value = _apply_limit(self.cfg, section, key, field_name, value)
        self._install(new)
        self.sink.emit(self.maker.make(EventKind.OPERATOR, reason=f"set_limit {section}{'.' + key if key else ''}"
                                       f"{'.' + field_name if field_name else ''}", action="set_limit", section=section,
                                       key=key, field=field_name, value=_jsonable(value), previous=_jsonable(old_value),
                                       **who))
        return new

    def _install(self, cfg: RiskConfig) -> None:
        self.cfg = cfg
        self.monitors.reconfigure(cfg.monitors)
        self.alerts.reconfigure(cfg)

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        self._refresh_equity()
        per, overall = self._occupancy()

        def occ(o: Any) -> dict[str, Any]:
            return {"used": str(o.used.quantize(Decimal("0.01"))), "equity": str(o.equity.quantize(Decimal("0.01"))),
                    "ratio": float(o.ratio),
                    "level": o.level.value if o.level else None, "currency": o.currency}

        acct_pos, strat_pos = self.book.snapshot()
        return {
            "trading_states": {k: v.value for k, v in self.states.items()},
            # who set each state: an operator, or ``auto:MONITOR`` (the alert that acted)
            "state_set_by": dict(self.state_setter),
            "throttled": sorted(self.throttled),
            "occupancy": {a: occ(o) for a, o in per.items()},
            "overall": occ(overall),
            "open_alerts": [a.model_dump(mode="json") for a in self.alerts.open_alerts()],
            "coordinators": {c: {"acked_seq": self.acked.get(c, -1),
                                 "leases": {p: str(v) for p, v in self.leases.granted.get(c, {}).items()},
                                 "usage": {p: str(v) for p, v in self.leases.reported.get(c, {}).items()}}
                             for c in self.leases.weights},
            "positions": {"accounts": acct_pos, "strategies": strat_pos},
            "two_sided": self.sides.snapshot(),
            "accounts": self.accounts_status(),
            "pnl": self.pnl_status(),
            "limits": self.cfg.model_dump(mode="json"),
            "counters": dict(self.counters),
            "unresolved_escalations": {d: {**e, "residual": _jsonable(e.get("residual"))}
                                       for d, e in self.escalations.items()},
            "known": {"venues": sorted(self.venues), "instruments": sorted(self.instruments),
                      "accounts": sorted(self.capital.accounts)},
            # the calendar roll watch: per strategy or held hedge, its mode, the automatic roll
            # working, why automatic rolls stopped, each automatic roll's state
            "rolls": self.roll_watch.status() if self.roll_watch is not None else {},
        }
    # -- helpers ------------------------------------------------------------------------------------
    def _bad_input(self, where: str, e: Exception, raw: object) -> None:
        self._count("bad_input")
        msg = str(e).replace("\n", "; ")
        log.error("%s: bad input: %s", where, msg)
        self.sink.emit(self.maker.make(EventKind.BAD_INPUT, reason=f"{where}: {msg}"[:500], raw=repr(raw)[:2000]))

    def _count(self, k: str) -> None:
        self.counters[k] = self.counters.get(k, 0) + 1


__all__ = ["LIMIT_SECTIONS", "SELF_CLEARING_MONITORS", "UNATTRIBUTED", "GuardOutput", "RebuildReport", "RiskGuardCore",
           "check_operator"]
