"""The RiskGuard's core: positions, capital, leases, trading states, monitors, alerts, rebuild.

The actor (``xmc_actors.actors.risk_guard``) is a thin shell around :class:`RiskGuardCore`:
it feeds it pair summaries, gateway statuses and operator commands, pushes the grants and
trading-state changes it returns to every coordinator, and sends alerts to remote sinks.

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
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from pydantic import ValidationError

from ..model.events import Event, EventKind
from ..model.market import Account, Instrument, Side, Venue
from ..model.quotes import Quote
from ..model.risk import AlertAction, AlertLevel, RiskConfig, TradingState
from .alerts import Alert, AlertDispatcher, alert_origin, AlertManager, AlertSinkProtocol, LedgerAlertSink, LogAlertSink, _Open
from .calendar import instrument_session_state
from .capital import CapitalPool, LeaseBook, PositionBook
from .clock import Clock
from .monitors import Condition, MonitorSet, PairSummary
from .pnl import PnlBook, pair_name
from .positions import OffsetError, TwoSidedBook, choose_offset, lock_is_cheaper
from .risk_rules import GLOBAL, ZERO, GrantAck, RiskGrant, scope_key, worst_state
from .sink import EventMaker, EventSink

log = logging.getLogger("xmc.risk")
#: what reading one ledger event can raise; the rebuild skips such an event and goes on
_UNREADABLE = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, ValidationError)
_SKIPPED_KEPT = 50   # skipped events recorded one by one (BAD_INPUT, in the report); the rest counted
UNATTRIBUTED = "__unattributed__"
LIMIT_SECTIONS = ("default_limits", "instruments", "strategies", "max_account_position", "throttle",
                  "daily_counts", "occupancy", "monitors", "risk")



#: monitors whose automatic REDUCE/HALT is lifted when their alert resolves, provided nobody
#: changed the scope's state since: a venue whose gateway or connection was down and answers
#: again (``venue_state``). Other automatic actions (unhedged exposure, reject ratio, occupancy,
#: slippage) hold until an operator resumes: their cause is a judgement, not a link.
SELF_CLEARING_MONITORS = frozenset({"venue_state"})


@dataclass(slots=True)
class GuardOutput:
    """What the actor must do after feeding the core: send alerts, push states, re-grant."""

    alerts: list[Alert] = field(default_factory=list)
    state_changes: list[tuple[str, str | None, TradingState]] = field(default_factory=list)
    regrant: bool = False

    def extend(self, other: "GuardOutput") -> None:
        self.alerts += other.alerts
        self.state_changes += other.state_changes
        self.regrant = self.regrant or other.regrant


@dataclass(slots=True)
class RebuildReport:
    """What :meth:`RiskGuardCore.rebuild` restored, and what the venues disagreed with."""

    events_read: int = 0
    booked_pairs: int = 0                       # decision ids with at least one BOOKED record
    bookings: int = 0                           # BOOKED records applied (revisions included)
    open_reservations: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # coordinator -> pool -> amount
    mismatches: list[dict[str, Any]] = field(default_factory=list)   # account, instrument, ledger, venue, difference
    unverified_venues: list[str] = field(default_factory=list)       # venues holding positions that did not report
    states: dict[str, TradingState] = field(default_factory=dict)
    limit_changes: int = 0
    coordinators: dict[str, Decimal] = field(default_factory=dict)   # registered before the restart -> weight
    caught_up: int = 0                                               # summaries booked from the coordinators
    skipped: int = 0                                                 # events that could not be read (BAD_INPUT each)
    skipped_events: list[dict[str, str]] = field(default_factory=list)  # the first of them: event_id, kind, error
    coordinator_alerts: int = 0                                      # coordinators' alerts (escalations): not the guard's
    other_alerts: int = 0                                            # strategies' / gateways' free-form alerts
    in_flight: list[str] = field(default_factory=list)               # accepted, not booked: pairs still open
    deferred: list[dict[str, Any]] = field(default_factory=list)     # differences their fills may explain
    corrections: int = 0                                             # earlier POSITION_MISMATCH settings replayed
    output: GuardOutput = field(default_factory=GuardOutput)        # alerts / state changes to send on

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (the payload of the ``REBUILT`` record and the actor's answer)."""
        return {"events_read": self.events_read, "booked_pairs": self.booked_pairs, "bookings": self.bookings,
                "mismatches": list(self.mismatches), "unverified_venues": list(self.unverified_venues),
                "states": {k: v.value for k, v in self.states.items()}, "limit_changes": self.limit_changes,
                "open_reservations": {c: {p: str(v) for p, v in r.items()} for c, r in self.open_reservations.items()},
                "coordinators": {c: str(w) for c, w in self.coordinators.items()}, "caught_up": self.caught_up,
                "skipped": self.skipped, "skipped_events": list(self.skipped_events),
                "coordinator_alerts": self.coordinator_alerts, "other_alerts": self.other_alerts,
                "in_flight": list(self.in_flight), "deferred": list(self.deferred), "corrections": self.corrections}


def check_operator(operator: object) -> str:
    if not isinstance(operator, str) or not operator.strip():
        raise ValueError("operator: an operator name is required for every operator action (--operator NAME)")
    return operator.strip()


class RiskGuardCore:
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
        self.computed_equity: dict[str, Decimal] = {a.id: a.capital for a in self.capital.accounts.values()}
        # decision id -> leg name -> (filled lots, their notional, rollback lots, their notional) booked
        self.booked_fills: dict[str, dict[str, tuple[int, Decimal, int, Decimal]]] = {}
        self.leases = LeaseBook()
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
        pools = self.capital.capacities(self.book, self.cfg)
        leases = self.leases.plan(coordinator, pools)
        acct_pos, strat_pos = self.book.snapshot()
        total_w = sum(self.leases.weights.values())
        share = self.leases.weights[coordinator] / total_w
        per, _ = self.capital.occupancy(self.book, self.cfg.occupancy, self.leases.in_flight())
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
        """Latest mids become the marks (margin) and the reference prices (collar) grants carry."""
        for q in quotes:
            m = q.mid
            if m is not None and m > 0:
                self.book.mark(q.instrument, m, q.ts_ns)
                self.pnl.mark(q.instrument, m, q.ts_ns)

    def tick(self) -> GuardOutput:
        """Periodic: equity from P&L, occupancy per account and overall, the ``PNL`` ``MARK``
        record every ``pnl_interval_ms``."""
        out = GuardOutput()
        now = self.clock.now_ns()
        self._refresh_equity()
        if self._last_pnl_ns is None or now - self._last_pnl_ns >= self.pnl_interval_ns:
            self._last_pnl_ns = now
            self._pnl_mark_event(now)
        per, overall = self.capital.occupancy(self.book, self.cfg.occupancy, self.leases.in_flight())
        lv = self.cfg.occupancy
        for acc, o in per.items():
            out.extend(self._observe(Condition("occupancy", "account", acc, o.level, float(o.ratio), float(lv.yellow),
                                               f"account {acc} occupancy {o.ratio * 100:.1f}% (used {o.used:.0f} / "
                                               f"equity {o.equity:.0f} {o.currency})"), now))
        out.extend(self._observe(Condition("occupancy", "global", GLOBAL, overall.level, float(overall.ratio), float(lv.yellow),
                                           f"overall occupancy {overall.ratio * 100:.1f}% (used {overall.used:.0f} / "
                                           f"equity {overall.equity:.0f} {overall.currency})"), now))
        return out

    # -- P&L, two-sided positions, equity ------------------------------------------------------
    def _book_trades(self, s: PairSummary, now: int) -> list[dict[str, Any]]:
        """The executions a summary adds to what is booked for its decision (per leg: its own
        fills, then its rollback), applied to the two-sided book and the P&L; each recorded as a
        ``PNL`` ``TRADE`` event. Returns them for the ``BOOKED`` record (a rebuild replays them)."""
        pair = pair_name(leg.instrument for leg in s.legs)
        seen = self.booked_fills.setdefault(s.decision_id, {})
        out: list[dict[str, Any]] = []
        for leg in s.legs:
            f_qty, f_not = leg.filled_qty, (leg.avg_price or ZERO) * leg.filled_qty
            r_qty, r_not = leg.rollback_qty, (leg.rollback_avg_price or ZERO) * leg.rollback_qty
            if s.incremental:
                add = [(leg.side, f_qty, f_not), (leg.side.opposite, r_qty, r_not)]
            else:
                p_f, p_fn, p_r, p_rn = seen.get(leg.leg, (0, ZERO, 0, ZERO))
                add = [(leg.side, f_qty - p_f, f_not - p_fn), (leg.side.opposite, r_qty - p_r, r_not - p_rn)]
                if f_qty < p_f or r_qty < p_r:
                    self._count("pnl_fills_shrank")   # a summary with fewer fills than booked: keep the booked
                    add = [a for a in add if a[1] > 0]
                seen[leg.leg] = (max(f_qty, p_f), max(f_not, p_fn) if f_qty >= p_f else p_fn,
                                 max(r_qty, p_r), max(r_not, p_rn) if r_qty >= p_r else p_rn)
            for side, qty, notional in add:
                if qty <= 0:
                    continue
                price_source = "fills"
                if notional <= 0:
                    # a summary without prices (a restarted coordinator's, nets only): at the mark,
                    # so that P&L holds the lots the book holds; its realised figure is the mark's
                    m = self.book.marks.get(leg.instrument)
                    if m is None:
                        self._count("pnl_fill_without_price")
                        continue
                    self._count("pnl_fill_at_mark")
                    notional, price_source = m[0] * qty, "mark"
                t = self._apply_trade(leg.account, s.strategy, pair, leg.instrument, side, qty, notional / qty,
                                      None, s, now)
                if t is not None:
                    t.update(leg=leg.leg, unwind=side is not leg.side, price_source=price_source)
                    out.append(t)
        return out

    def _apply_trade(self, account: str, strategy: str, pair: str, instrument: str, side: Side, qty: int,
                     price: Decimal, offset: str | None, s: PairSummary | None, now: int,
                     decision_id: str = "", emit: bool = True) -> dict[str, Any] | None:
        """One execution into the two-sided book (its offset chosen as the coordinator does,
        unless given) and the P&L book; a ``PNL`` ``TRADE`` event unless ``emit`` is False."""
        inst = self.instruments.get(instrument)
        venue = self.venues.get(inst.venue) if inst is not None else None
        if inst is None:
            self._count("pnl_unknown_instrument")
            return None
        why = ""
        if venue is not None and venue.offsets != "none":
            day = self._trading_day(venue, inst, s)
            if offset is None:
                pos = self.sides.get(account, instrument, day)
                dearer = inst.fees.close_today_dearer if inst.fees is not None else True
                off, why = choose_offset(venue, pos, side, qty, self.offset_preference,  # type: ignore[arg-type]
                                         dearer, lock_is_cheaper(inst.fees, price, inst.multiplier))
                offset = off.value if off is not None else None
            try:
                from ..model.orders import Offset
                self.sides.fill(venue, None, account, instrument, side, Offset(offset) if offset else None, qty, day)
            except (OffsetError, ValueError) as e:   # the guard's view is behind the venue's: open instead
                self._count("two_sided_behind")
                why = f"{why}; {e}: taken as OPEN"
                offset = "OPEN"
                self.sides.fill(venue, None, account, instrument, side, None, qty, day)
        else:
            offset = None
        try:
            m = self.book.marks.get(instrument)
            t = self.pnl.trade(account=account, strategy=strategy, pair=pair, instrument=instrument, side=side,
                               qty=qty, price=price, offset=offset, at_ns=m[1] if m else None)
        except ValueError as e:
            self._bad_input("pnl trade", e, {"instrument": instrument, "qty": qty, "price": str(price)})
            return None
        rec = {"account": account, "instrument": instrument, "pair": pair, "side": side.value, "qty": qty,
               "price": str(price), "offset": offset, **t.as_dict()}
        if emit:
            self.sink.emit(self.maker.make(EventKind.PNL, reason="TRADE", decision_id=decision_id or (s.decision_id if s else ""),
                                           strategy=strategy, account=account, venue=inst.venue, instrument=instrument,
                                           offset_reason=why, currency=inst.currency, base_currency=self.base,
                                           **{k: v for k, v in rec.items() if k not in ("account", "instrument")}))
        return rec

    def _trading_day(self, venue: Venue, inst: Instrument, s: PairSummary | None) -> Any:
        """The venue's trading day of a booked fill, at the market time of the instrument's
        latest mark (a replay's, not the wall clock's), else of the summary."""
        m = self.book.marks.get(inst.id)
        at = m[1] if m else ((s.started_ns or s.ts_ns) if s is not None else 0) or self.clock.now_ns()
        try:
            return instrument_session_state(venue, inst, at).trading_day
        except Exception:  # noqa: BLE001 - a calendar that cannot say: no roll
            return None

    def load_two_sided(self, venue_code: str, snapshot: Mapping[str, Any]) -> int:
        """The venue's word on its two-sided positions (``{"ACCOUNT/INSTRUMENT": {long: {today,
        yesterday}, short: {...}, trading_day}}``, a gateway's ``two_sided_positions()``) replaces
        the guard's for that venue's instruments (margin and status then follow the venue),
        position by position where the venue's net agrees with the guard's booked net: where it
        does not, a pair is in flight (filled at the venue, not booked yet) and the guard's view
        is kept until a later reading agrees (counted as ``two_sided_in_flight``). Returns how
        many positions were taken; a position that cannot be read is a BAD_INPUT."""
        import datetime as _dt

        mine = {i for i, inst in self.instruments.items() if inst.venue == venue_code}
        new = TwoSidedBook()
        n = 0
        for key, p in snapshot.items():
            acc, _, inst = str(key).partition("/")
            if inst not in mine or not isinstance(p, Mapping):
                continue
            lg, sh = p.get("long") or {}, p.get("short") or {}
            day = p.get("trading_day")
            try:
                new.set(acc, inst, long_today=int(lg.get("today", 0)), long_yesterday=int(lg.get("yesterday", 0)),
                        short_today=int(sh.get("today", 0)), short_yesterday=int(sh.get("yesterday", 0)),
                        trading_day=_dt.date.fromisoformat(day) if day else None)
            except (TypeError, ValueError, AttributeError) as e:
                self._bad_input("two_sided_positions", ValueError(f"{venue_code} position {key!r}: {e}"), p)
                continue
        ours = {k for k, p in self.sides.positions.items() if k[1] in mine and (p.long.total or p.short.total)}
        for k in set(new.positions) | ours:
            if k[0] not in self.capital.accounts:
                continue   # another deployment's account at the venue: not ours to count
            venue_net = new.positions[k].net if k in new.positions else 0
            if venue_net != self.book.account.get(k[0], {}).get(k[1], 0):
                self._count("two_sided_in_flight")
                continue
            if k in new.positions:
                self.sides.positions[k] = new.positions[k]
                n += 1
            else:
                del self.sides.positions[k]
        self._sync_sides()
        return n

    def _sync_sides(self) -> None:
        self.capital.two_sided = {k: (p.long.total, p.short.total) for k, p in self.sides.positions.items()
                                  if p.long.total or p.short.total}

    def _refresh_equity(self) -> None:
        """Equity follows P&L: capital + P&L of the account (its currency, at today's rates), or
        the broker's reading while it is fresh. Margin too: the broker's, else ours."""
        self._sync_sides()
        now = self.clock.now_ns()
        at = self.capital.market_ns(self.book)   # the market time of the marks: a replay's rates
        for acc_id, acc in self.capital.accounts.items():
            pnl, _ = self.pnl.account_pnl(acc_id, acc.currency, at)
            self.computed_equity[acc_id] = acc.capital + pnl
            r = self.account_readings.get(acc_id)
            fresh = r is not None and now - r["received_ns"] <= self.account_reading_max_age_ns
            self.capital.set_equity(acc_id, r["equity"] if fresh else acc.capital + pnl, allow_loss=True)  # type: ignore[index]
            if fresh and r.get("margin") is not None:  # type: ignore[union-attr]
                self.capital.broker_margin[acc_id] = r["margin"]  # type: ignore[index]
            else:
                self.capital.broker_margin.pop(acc_id, None)

    def on_account_reading(self, account: str, reading: Mapping[str, Any]) -> GuardOutput:
        """A broker's account reading (``equity``, and optionally ``margin``, ``available``,
        ``currency``, ``ts_ns``) from an adapter that can read it: it wins over our figures
        (equity, margin) while fresh; a difference from ours beyond ``account_tolerance`` of our
        equity is a yellow ``account_mismatch`` alert (resolved when they agree again) and a
        ``RECONCILE`` ``ACCOUNT_MISMATCH`` record. Bad input is recorded, never raised."""
        out = GuardOutput()
        now = self.clock.now_ns()
        try:
            acc = self.capital.accounts.get(account)
            if acc is None:
                raise ValueError(f"account: {account!r} is not an account of this deployment")
            if not isinstance(reading, Mapping):
                raise TypeError(f"reading: expected a mapping, got {type(reading).__name__}")
            vals: dict[str, Any] = {}
            for f in ("equity", "margin", "available"):
                v = reading.get(f)
                if v is None:
                    if f == "equity":
                        raise ValueError("equity: the reading has none")
                    vals[f] = None
                    continue
                d = Decimal(str(v))
                if not d.is_finite():
                    raise ValueError(f"{f}: {v!r} is not an amount")
                vals[f] = d
            ccy = reading.get("currency")
            if ccy and str(ccy).upper() != acc.currency:
                raise ValueError(f"currency: the reading is in {ccy}, account {account} in {acc.currency}")
        except (ValueError, TypeError, ArithmeticError) as e:
            self._bad_input("on_account_reading", e, reading)
            return out
        self._refresh_equity()   # ours, before the reading wins
        ours_eq = self.computed_equity[account]
        ours_margin = self.capital.computed_margin(self.book).get(account, ZERO)
        self.account_readings[account] = {**vals, "received_ns": now, "ts_ns": int(reading.get("ts_ns") or now)}
        base = max(abs(ours_eq), Decimal(1))
        d_eq = abs(vals["equity"] - ours_eq)
        d_m = abs(vals["margin"] - ours_margin) if vals["margin"] is not None else ZERO
        worst = max(d_eq, d_m) / base
        off = worst > self.account_tolerance
        if off:
            self.sink.emit(self.maker.make(EventKind.RECONCILE, reason="ACCOUNT_MISMATCH", account=account,
                                           broker={k: None if v is None else str(v) for k, v in vals.items()},
                                           ours={"equity": str(ours_eq), "margin": str(ours_margin)},
                                           difference={"equity": str(d_eq), "margin": str(d_m)},
                                           tolerance=str(self.account_tolerance)))
        msg = (f"account {account}: broker equity {vals['equity']:.2f} vs ours {ours_eq:.2f}"
               + (f", margin {vals['margin']:.2f} vs ours {ours_margin:.2f}" if vals["margin"] is not None else "")
               + f" {acc.currency} (tolerance {self.account_tolerance * 100:.2f}% of equity; the broker's figures are used)")
        out.extend(self._observe(Condition("account_mismatch", "account", account, AlertLevel.YELLOW if off else None,
                                           float(worst), float(self.account_tolerance), msg), now))
        self._refresh_equity()
        out.regrant = True
        return out

    def accounts_status(self) -> dict[str, dict[str, Any]]:
        """Per account: capital, P&L, equity (and where it comes from), margin (ours and the
        broker's), available funds, in the account's currency."""
        ours = self.capital.computed_margin(self.book)
        used = self.capital.used_by_account(self.book)
        now = self.clock.now_ns()
        out: dict[str, dict[str, Any]] = {}
        q = Decimal("0.01")
        for acc_id, acc in self.capital.accounts.items():
            r = self.account_readings.get(acc_id)
            fresh = r is not None and now - r["received_ns"] <= self.account_reading_max_age_ns
            eq = self.capital.equity[acc_id]
            out[acc_id] = {
                "currency": acc.currency, "capital": str(acc.capital),
                "pnl": str((self.computed_equity[acc_id] - acc.capital).quantize(q)),
                "equity": str(eq.quantize(q)), "computed_equity": str(self.computed_equity[acc_id].quantize(q)),
                "equity_source": "broker" if fresh else "computed",
                "margin": str(used[acc_id].quantize(q)), "computed_margin": str(ours[acc_id].quantize(q)),
                "available": str((r["available"] if fresh and r.get("available") is not None  # type: ignore[union-attr]
                                  else eq - used[acc_id]).quantize(q)),
                "broker": None if r is None else {k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()},
            }
        return out

    def pnl_status(self) -> dict[str, Any]:
        """P&L in the base currency per account, strategy and pair (legs too), with the marks
        and rates used (``PnlBook.snapshot``)."""
        return self.pnl.snapshot()

    def _pnl_mark_event(self, now: int) -> None:
        snap = self.pnl.snapshot()
        per, overall = self.capital.occupancy(self.book, self.cfg.occupancy, self.leases.in_flight())
        accts = self.accounts_status()
        for a, o in per.items():
            accts[a]["occupancy"] = float(o.ratio)
        eq_base = ZERO
        at = self.capital.market_ns(self.book)
        for a, acc in self.capital.accounts.items():
            r = self.capital.rate(acc.currency, self.base, at)
            if r is not None:
                eq_base += self.capital.equity[a] * r
        self.sink.emit(self.maker.make(
            EventKind.PNL, reason="MARK", base_currency=self.base, accounts=accts, total=snap["total"],
            equity_base=str(eq_base.quantize(Decimal("0.01"))), occupancy=float(overall.ratio),
            strategies=snap["strategies"], pairs=snap["pairs"], legs=snap["legs"], marks=snap["marks"], fx=snap["fx"],
            market_ns=self.capital.market_ns(self.book)))

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
    def set_trading_state(self, scope: str, key: str | None, state: TradingState | str, operator: str, reason: str = "") -> Event:
        """Halt / reduce / resume a strategy, a venue or everything; recorded as an OPERATOR event."""
        op = check_operator(operator)
        st = TradingState(state)
        if st is TradingState.ACTIVE and scope == "strategy" and key:
            open_ = self.unresolved_escalations(key)
            if open_:
                raise ValueError(
                    f"strategy {key} is halted by {len(open_)} escalated pair(s) whose residual nobody has dealt "
                    f"with: {', '.join(open_)}; deal with each residual, then `xmc resolve DECISION_ID --operator "
                    f"NAME --note TEXT` (the strategy resumes when the last one is resolved)")
        return self._set_state(scope, key, st, op, reason)

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
                residual_source: str = "") -> tuple[Event, bool]:
        """A person dealt with an escalated pair's residual: record who, how (``note``) and the
        residual as the ledger recorded it (an ``OPERATOR`` event under the decision id, action
        ``resolve``). Returns the event and whether its strategy has no unresolved escalation
        left (then the caller resumes it). ValueError: not escalated, already resolved, no
        operator or no note."""
        op = check_operator(operator)
        if not isinstance(note, str) or not note.strip():
            raise ValueError("note: say how the residual was dealt with (--note TEXT); it is recorded")
        esc = self.check_resolvable(decision_id)
        did = decision_id.strip()
        if residual is None:
            residual, residual_source = esc.get("residual"), residual_source or "pair summary"
        ev = self.maker.make(EventKind.OPERATOR, decision_id=did, strategy=esc["strategy"], reason=f"resolve {did}",
                             action="resolve", operator=op, note=note.strip(),
                             residual=_jsonable(residual), residual_source=residual_source,
                             escalation_reason=esc.get("reason", ""))
        self.sink.emit(ev)
        del self.escalations[did]
        self.resolved[did] = {"operator": op, "note": note.strip(), "ts_ns": ev.ts_ns, "strategy": esc["strategy"]}
        log.warning("escalation %s of strategy %s resolved by %s: %s", did, esc["strategy"], op, note.strip())
        return ev, not self.unresolved_escalations(esc["strategy"])

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

    def _set_state(self, scope: str, key: str | None, st: TradingState, op: str, reason: str, auto: bool = False) -> Event:
        sk = scope_key(scope, key)
        prev = self.states.get(sk, TradingState.ACTIVE)
        self._put_state(sk, st, op)
        ev = self.maker.make(EventKind.OPERATOR, reason=f"{st.value} {sk}", strategy=(key or "") if scope == "strategy" else "",
                             venue=(key or "") if scope == "venue" else "", action="trading_state", scope=scope,
                             key=key, state=st.value, previous=prev.value, operator=op, note=reason, auto=auto)
        self.sink.emit(ev)
        log.warning("trading state %s: %s -> %s by %s %s", sk, prev.value, st.value, op, reason)
        return ev

    def set_limit(self, section: str, key: str | None, field_name: str | None, value: Any, operator: str) -> RiskConfig:
        """Change one limit (``section`` / ``key`` / ``field``); validated, recorded as OPERATOR."""
        op = check_operator(operator)
        new, old_value = _apply_limit(self.cfg, section, key, field_name, value)
        self._install(new)
        self.sink.emit(self.maker.make(EventKind.OPERATOR, reason=f"set_limit {section}{'.' + key if key else ''}"
                                       f"{'.' + field_name if field_name else ''}", action="set_limit", section=section,
                                       key=key, field=field_name, value=_jsonable(value), previous=_jsonable(old_value),
                                       operator=op))
        return new

    def _install(self, cfg: RiskConfig) -> None:
        self.cfg = cfg
        self.monitors.reconfigure(cfg.monitors)
        self.alerts.reconfigure(cfg)

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        self._refresh_equity()
        per, overall = self.capital.occupancy(self.book, self.cfg.occupancy, self.leases.in_flight())

        def occ(o: Any) -> dict[str, Any]:
            return {"used": str(o.used.quantize(Decimal("0.01"))), "equity": str(o.equity.quantize(Decimal("0.01"))),
                    "ratio": float(o.ratio),
                    "level": o.level.value if o.level else None, "currency": o.currency}

        acct_pos, strat_pos = self.book.snapshot()
        return {
            "trading_states": {k: v.value for k, v in self.states.items()},
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
        }

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

    # -- helpers ------------------------------------------------------------------------------------
    def _bad_input(self, where: str, e: Exception, raw: object) -> None:
        self._count("bad_input")
        msg = str(e).replace("\n", "; ")
        log.error("%s: bad input: %s", where, msg)
        self.sink.emit(self.maker.make(EventKind.BAD_INPUT, reason=f"{where}: {msg}"[:500], raw=repr(raw)[:2000]))

    def _count(self, k: str) -> None:
        self.counters[k] = self.counters.get(k, 0) + 1


def _whole_lots(v: Any, where: str) -> int:
    """``v`` as a whole number of lots (an int, or a string or number holding one); ValueError otherwise."""
    if isinstance(v, bool):
        raise ValueError(f"{where}: {v!r} is not a number of lots")
    d = Decimal(str(v).strip()) if isinstance(v, (int, str, float, Decimal)) else None
    if d is None or not d.is_finite() or d != d.to_integral_value():
        raise ValueError(f"{where}: {v!r} is not a whole number of lots")
    return int(d)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def _apply_limit(cfg: RiskConfig, section: str, key: str | None, field_name: str | None, value: Any) -> tuple[RiskConfig, Any]:
    """A new RiskConfig with one value changed, validated; raises ValueError naming the field."""
    if section not in LIMIT_SECTIONS:
        raise ValueError(f"section: {section!r} is not one of {', '.join(LIMIT_SECTIONS)}")
    if isinstance(value, str) and value.strip().lower() in ("none", "null", ""):
        value = None
    d = cfg.model_dump()
    path: list[str] = []
    if section == "risk":
        if not field_name or field_name not in RiskConfig.model_fields:
            raise ValueError(f"field: {field_name!r} is not a top-level risk setting")
        old = d.get(field_name)
        d[field_name] = value
        path = [field_name]
    elif section in ("instruments", "strategies", "daily_counts"):
        if not key:
            raise ValueError(f"key: section {section} needs a key (the instrument, strategy or venue)")
        if not field_name:
            raise ValueError(f"field: section {section} needs a field")
        entry = d[section].setdefault(key, {})
        old = entry.get(field_name)
        entry[field_name] = value
        path = [section, key, field_name]
    elif section == "max_account_position":
        if not key:
            raise ValueError("key: max_account_position needs the account")
        old = d[section].get(key)
        if value is None:
            d[section].pop(key, None)
        else:
            d[section][key] = value
        path = [section, key]
    else:
        if not field_name:
            raise ValueError(f"field: section {section} needs a field")
        old = d[section].get(field_name)
        d[section][field_name] = value
        path = [section, field_name]
    # entries given as dicts for instruments keep only the fields set explicitly
    if section == "instruments" and key:
        d["instruments"][key] = {k: v for k, v in d["instruments"][key].items()
                                 if k in (cfg.instruments[key].model_fields_set if key in cfg.instruments else set()) or k == field_name}
    try:
        return RiskConfig.model_validate(d), old
    except ValidationError as e:
        errs = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ValueError(f"limit {'.'.join(path)}={value!r} refused: {errs}") from None
