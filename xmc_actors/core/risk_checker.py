"""The coordinator's in-process pre-trade checker (:class:`PreTradeChecker`): takes the risk
guard's grants, runs the checks (``core/risk_checks.py``; first the accept path,
``core/risk_fast_path.py``) on every pair, throttles and counts orders and cancels, reserves and
commits margin, and records one ``RISK_DECISION`` per pair. Also the market-time FX provider.

Split out of ``core/risk_rules.py`` (which re-exports every name here) by concern.

Why one module of about 670 lines: :class:`PreTradeChecker` is one state, the reservations and
the unbooked deltas a grant leaves it to keep, and every section (grant, pairs, orders, fills and
releases) reads and writes that state; splitting it further would scatter one invariant (what is
reserved plus what is committed equals what the grant's lease is charged) over several files.
The parts that stand alone already live apart: the checks, the accept path and the contract types.
"""
from __future__ import annotations

import datetime as dt
from collections import deque
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping


from ..model.events import EventKind
from ..model.market import Instrument, Side, Venue
from ..model.pairs import LegIntent, PairIntent
from ..model.risk import InstrumentLimits, RiskConfig, TradingState
from .calendar import instrument_session_state, session_window
from .clock import Clock, SystemClock
from .pretrade import Denial, PreTradeResult
from .sink import EventMaker, EventSink
from .risk_checks import DEFAULT_CHECKS, Check, CheckContext, LegView
from .risk_fast_path import FastPath, _AcctPlan, _InstPlan, _Reservation, _StratPlan
from .risk_types import (GLOBAL, NO_GRANT_REDUCE_ONLY_RATE_PER_S, NS_PER_MS, NS_PER_S, ONE, ZERO, _ACCOUNT_POOLS, _FACT_KEYS,
                         DenialCode, FxProvider, GrantAck, ReferenceProvider, RiskGrant, _fact_keys, account_pool, deny,
                         scope_key, strategy_pool, worst_state)


# -- the checker ------------------------------------------------------------------------------
class _Window:
    """Events in the last second (a sliding window): deny rather than queue."""

    __slots__ = ("ts",)

    def __init__(self) -> None:
        self.ts: deque[int] = deque()

    def count(self, now_ns: int) -> int:
        ts = self.ts
        edge = now_ns - NS_PER_S
        while ts and ts[0] <= edge:
            ts.popleft()
        return len(ts)


class PreTradeChecker(FastPath):
    """The real :class:`~xmc_actors.core.pretrade.PreTradeCheck`: checks against a RiskGrant.

    Parameters
    ----------
    instruments
        Instrument id -> :class:`Instrument` (multipliers, currencies, sessions, margin rates).
    venues
        Venue code -> :class:`Venue` (calendars).
    fx
        ``fx(from_ccy, to_ccy)``: units of ``to_ccy`` per one ``from_ccy``, or None if unknown.
    name
        The coordinator this checker belongs to (events and acks carry it).
    sink, clock
        Where RISK_DECISION events go (one per pair, accepted or refused), and the clock of
        their ids. Without a sink nothing is recorded (benchmarks of the bare checks).
    reference
        An independent reference price per instrument for the fat-finger collar (latest mid).
        Without it, the grant's ``reference_prices``, then the leg's trigger price, are used.
    checks
        The ordered check list (default :data:`DEFAULT_CHECKS`).
    fast_path
        With the default checks, first try the accept path (:meth:`_fast_accept`): the same
        checks fused over limits resolved once per grant, that answers only when every check
        passes and otherwise leaves the pair to the check list, which reports every failed
        check. ``False`` runs the check list on every pair (the reference the accept path is
        tested against).
    """

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        venues: Mapping[str, Venue],
        fx: FxProvider,
        *,
        name: str = "coordinator",
        sink: EventSink | None = None,
        clock: Clock | None = None,
        reference: ReferenceProvider | None = None,
        checks: tuple[Check, ...] = DEFAULT_CHECKS,
        fast_path: bool = True,
        market_time_strategies: Iterable[str] = (),
    ) -> None:
        self.instruments = dict(instruments)
        self.venues = dict(venues)
        self.fx = fx
        # FX at the market time of each pair (its created_ns: the stamp of the quotes it was
        # decided on), when the provider can be told the time (MarketTimeFx)
        self._fx_at: Callable[[int | None], None] | None = getattr(fx, "at", None)
        # strategies on replayed quotes: sessions are judged at the pair's market time too
        self.market_time_strategies = frozenset(market_time_strategies)
        self._market_sessions: dict[str, tuple[int, bool, str, dt.date | None]] = {}
        self.name = name
        self.sink = sink
        self._events = EventMaker(clock or SystemClock(), f"risk-check:{name}") if sink is not None else None
        self.reference = reference
        self.checks = checks
        self._fast = fast_path and checks is DEFAULT_CHECKS
        self.grant: RiskGrant | None = None
        self._limits: dict[str, InstrumentLimits] = {}
        self._plans_cfg: RiskConfig | None = None  # the config _limits and _plans were made from
        self._res: dict[str, _Reservation] = {}
        self._usage: dict[str, Decimal] = {}
        self._acct_delta: dict[tuple[str, str], int] = {}
        self._inst_grant: dict[str, int] = {}     # net lots per instrument over all accounts, from the grant
        self._inst_delta: dict[str, int] = {}     # ... and from local unbooked fills
        self._strat_delta: dict[tuple[str, str], int] = {}
        self._pending: dict[tuple[str, str], list[int]] = {}   # (strategy|account key) -> [buy, sell]
        self._orders: dict[str, _Window] = {}
        self._cancels: dict[str, _Window] = {}
        self._daily: dict[tuple[str, str], list[int]] = {}      # (instrument, trading day) -> [orders, cancels]
        self._sessions: dict[str, tuple[int, bool, str, dt.date | None]] = {}
        self._last_day: dict[str, dt.date] = {}
        self._pushed: dict[str, TradingState] = {}   # states pushed between grants, sticky until a grant agrees
        self._states: dict[str, TradingState] = {}   # effective trading states
        self.counters: dict[str, int] = {}
        self._gross: dict[str, int] | None = None    # gross lots per limited account; None: recompute
        self._inst_keys: dict[int, str] = {id(i): k for k, i in self.instruments.items()}  # session cache keys
        self._plans: dict[str, _InstPlan] = {}       # instrument -> limits under the current grant
        self._max_age_ns = 0                         # the grant's max reference age
        self._check_sessions = True
        self._strat_plans: dict[str, _StratPlan] = {}  # strategy -> its keys and budget under the grant
        self._acct_plans: dict[str, _AcctPlan] = {}    # account -> its currency, pool, caps under the grant

    # -- grant -------------------------------------------------------------------------------
    def update_grant(self, grant: RiskGrant) -> GrantAck:
        """Take a newer grant (an older or equal ``seq`` is ignored) and say what is in use."""
        if not isinstance(grant, RiskGrant):
            raise TypeError(f"grant: expected RiskGrant, got {type(grant).__name__}")
        if self.grant is None or grant.seq > self.grant.seq:
            self.grant = grant
            cfg = grant.config
            if cfg is not self._plans_cfg:  # a guard renews its grant every refresh with the same (frozen) config
                self._limits = {i: _merge_limits(cfg.default_limits, cfg.instruments.get(i)) for i in self.instruments}
                self._plans = {i: self._plan(i, lim) for i, lim in self._limits.items()}
                self._plans_cfg = cfg
            self._max_age_ns = cfg.max_reference_age_ms * NS_PER_MS
            self._check_sessions = cfg.check_sessions
            self._strat_plans = {}
            self._acct_plans = {}
            inst_pos: dict[str, int] = {}
            for pos in grant.account_positions.values():
                for i, q in pos.items():
                    inst_pos[i] = inst_pos.get(i, 0) + q
            self._inst_grant = inst_pos
            self._gross = None
            for d in grant.booked:
                self._forget(d)
            for sk in [k for k, v in self._pushed.items() if grant.trading_states.get(k, TradingState.ACTIVE) is v]:
                del self._pushed[sk]  # the guard's grants have caught up with the push
            self._merge_states()
        return self.ack()

    def _merge_states(self) -> None:
        g = self.grant
        states = dict(g.trading_states) if g is not None else {}
        for sk, st in self._pushed.items():
            # a grant planned before a push may arrive after it: the more severe of the two holds
            merged = worst_state(st, states.get(sk))
            if merged is TradingState.ACTIVE:
                states.pop(sk, None)
            else:
                states[sk] = merged
        self._states = states

    @property
    def trading_states(self) -> dict[str, TradingState]:
        return dict(self._states)

    def ack(self) -> GrantAck:
        return GrantAck(self.name, self.grant.seq if self.grant else -1,
                        {k: v for k, v in self._usage.items() if v}, sum(1 for r in self._res.values() if not r.closed))

    def usage(self) -> dict[str, Decimal]:
        return {k: v for k, v in self._usage.items() if v}

    # -- trading state pushed between grants (kill switch) ----------------------------------------
    def set_trading_state(self, scope: str, key: str | None, state: TradingState) -> None:
        """Apply a state change the RiskGuard pushed, at once (a HALT is honoured before the next order).

        It holds over any grant until a grant carries the same state for the key.
        """
        self._pushed[scope_key(scope, key)] = TradingState(state)
        self._merge_states()

    # -- pairs ---------------------------------------------------------------------------------
    def check_pair(self, intent: PairIntent, now_ns: int) -> PreTradeResult:
        """Check both legs together; on success reserve margin under ``decision_id``.

        Idempotent: checking the same ``decision_id`` again returns the first answer.
        """
        prior = self._res.get(intent.decision_id)
        if prior is not None and prior.result is not None:
            return prior.result
        if self._fx_at is not None:
            self._fx_at(intent.created_ns if intent.created_ns > 0 else now_ns)
        g = self.grant
        if g is None:
            d = deny(DenialCode.NO_GRANT, f"coordinator={self.name} holds no grant from the RiskGuard")
            return self._decide(intent, now_ns, (d,), None)
        if self._fast:
            accepted = self._fast_accept(intent, now_ns, g)
            if accepted is not None:
                return accepted
        a, b = intent.legs
        la, lb = self._leg_view(intent, a, g), self._leg_view(intent, b, g)
        legs = (la, lb)
        denials: list[Denial] = []
        if la.inst is None or lb.inst is None:
            denials = [deny(DenialCode.UNKNOWN_INSTRUMENT, f"leg={lv.leg.leg} instrument={lv.leg.instrument}")
                       for lv in legs if lv.inst is None]
        reducing = intent.reduce_only and la.reducing and lb.reducing
        gross = self._gross
        if gross is None:
            gross = self._gross = self._acct_gross(g)
        at, cache = self._session_time(intent, now_ns)
        ctx = CheckContext(intent, now_ns, g, legs, self._states, lambda i: self._session(i, at, cache),
                           self._usage, gross, reducing)
        for chk in self.checks:
            r = chk(ctx)
            if r:
                denials.extend(r)
        return self._decide(intent, now_ns, tuple(denials), legs)

    def _leg_view(self, intent: PairIntent, leg: LegIntent, g: RiskGrant) -> LegView:
        instrument = leg.instrument
        account = leg.account
        strat = intent.strategy
        inst = self.instruments.get(instrument)
        limits = self._limits.get(instrument) or g.config.default_limits
        ref, ref_ts = self._reference(leg)
        price = leg.limit_price if leg.limit_price is not None else ref
        sign = 1 if leg.side is Side.BUY else -1
        pos = g.account_positions.get(account)
        acct_pos = (pos.get(instrument, 0) if pos else 0) + self._acct_delta.get((account, instrument), 0)
        pos = g.strategy_positions.get(strat)
        strat_pos = (pos.get(instrument, 0) if pos else 0) + self._strat_delta.get((strat, instrument), 0)
        inst_pos = self._inst_grant.get(instrument, 0) + self._inst_delta.get(instrument, 0)
        pend = self._pending.get(("inst", instrument)) or (0, 0)
        acct_ccy = g.accounts.get(account)
        lv = LegView(leg, inst, limits, price, ref, ref_ts, sign, ZERO, ZERO, ZERO, ZERO, acct_ccy, acct_pos, strat_pos,
                     inst_pos, pend[0], pend[1], strat_pos * sign < 0 and leg.qty <= abs(strat_pos))
        if inst is None or price is None:
            return lv
        contract = price * inst.multiplier        # == inst.notional(price, 1)
        lv.notional = contract * leg.qty          # == inst.notional(price, qty)
        per_lot = contract * inst.margin_rate
        ccy = inst.currency
        to_base = self._rate(ccy, g.base_currency)
        if to_base is None:
            lv.notional_base = lv.margin_per_lot_base = None
        else:
            lv.notional_base = lv.notional * to_base
            lv.margin_per_lot_base = per_lot * to_base
        if acct_ccy is not None:
            to_acct = to_base if acct_ccy == g.base_currency else self._rate(ccy, acct_ccy)
            lv.margin_per_lot_acct = None if to_acct is None else per_lot * to_acct
        return lv

    def _rate(self, a: str, b: str) -> Decimal | None:
        if a == b:
            return ONE
        try:
            r = self.fx(a, b)
        except Exception:  # a provider failure is an unavailable rate, never a crash
            return None
        return r if r is not None and r > 0 else None

    def _reference(self, leg: LegIntent) -> tuple[Decimal | None, int]:
        if self.reference is not None:
            r = self.reference(leg.instrument)
            if r is not None:
                return r
        g = self.grant
        if g is not None:
            r = g.reference_prices.get(leg.instrument)
            if r is not None:
                return r
        return leg.trigger_price, 0

    def _acct_gross(self, g: RiskGrant) -> dict[str, int]:
        if not g.config.max_account_position:
            return {}
        out: dict[str, int] = {}
        for acc in g.config.max_account_position:
            pos = dict(g.account_positions.get(acc, {}))
            for (a, i), v in self._acct_delta.items():
                if a == acc:
                    pos[i] = pos.get(i, 0) + v
            out[acc] = sum(abs(v) for v in pos.values())
        return out

    def _session_time(self, intent: PairIntent, now_ns: int) -> tuple[int, dict[str, tuple[int, bool, str, dt.date | None]]]:
        """When a pair's sessions are judged, and the cache for that time line: a strategy on
        replayed quotes at its pair's market time (``created_ns``), any other at ``now_ns``."""
        if intent.created_ns > 0 and intent.strategy in self.market_time_strategies:
            return intent.created_ns, self._market_sessions
        return now_ns, self._sessions

    def _session(self, inst: Instrument, now_ns: int,
                 cache: dict[str, tuple[int, bool, str, dt.date | None]] | None = None) -> tuple[bool, str]:
        st = self._session_state(inst, now_ns, cache)
        return st[1], st[2]

    def _session_state(self, inst: Instrument, now_ns: int,
                       cache: dict[str, tuple[int, bool, str, dt.date | None]] | None = None
                       ) -> tuple[int, bool, str, dt.date | None]:
        """(valid_until_ns, open, why, trading_day), cached until the session ends (or 1 s if closed)."""
        if cache is None:
            cache = self._sessions
        key = self._inst_keys.get(id(inst))
        if key is None or self.instruments.get(key) is not inst:
            key = inst.id
        c = cache.get(key)
        if c is not None and now_ns < c[0]:
            return c
        venue = self.venues.get(inst.venue)
        if venue is None:
            out = (now_ns + NS_PER_S, False, f"venue {inst.venue} has no calendar", None)
        else:
            st = instrument_session_state(venue, inst, now_ns)
            until = (now_ns // NS_PER_S + 1) * NS_PER_S
            if st.open and st.trading_day is not None:
                for s in inst.sessions or venue.sessions:
                    if s.name == st.session:
                        win = session_window(venue, st.trading_day, s)
                        if win is not None:
                            until = int(win[1].timestamp()) * NS_PER_S
                        break
            out = (until, st.open, st.reason, st.trading_day)
        cache[key] = out
        return out

    def _decide(self, intent: PairIntent, now_ns: int, denials: tuple[Denial, ...], legs: tuple[LegView, LegView] | None) -> PreTradeResult:
        facts: dict[str, str] = {}
        if legs is not None:
            for lv in legs:
                keys = _FACT_KEYS.get(lv.leg.leg) or _fact_keys(lv.leg.leg)
                per = lv.margin_per_lot_acct
                facts[keys[0]] = str(lv.price)
                facts[keys[1]] = str(lv.notional)
                facts[keys[2]] = str(per * lv.leg.qty) if per is not None and not lv.reducing else "0"
                facts[keys[3]] = str(lv.strat_pos)
        if not denials:
            assert legs is not None
            return self._accept(intent, now_ns, facts, [(lv.leg, lv.sign, lv.reducing, lv.margin_per_lot_acct,
                                                         lv.margin_per_lot_base) for lv in legs])
        counters = self.counters
        result = PreTradeResult(False, denials, "", facts)
        counters["refused"] = counters.get("refused", 0) + 1
        for d in denials:
            counters[d.code] = counters.get(d.code, 0) + 1
        self._record(intent, now_ns, "REFUSED", [str(d) for d in denials], [d.code for d in denials], facts, {})
        return result

    def _accept(self, intent: PairIntent, now_ns: int, facts: dict[str, str],
                rows: list[tuple[LegIntent, int, bool, Decimal | None, Decimal | None]]) -> PreTradeResult:
        """Reserve the pair's margin, count and record the acceptance of the check list
        (:meth:`_fast_accept` does the same inline, with the margin it has already summed)."""
        res = self._reserve(intent, rows)
        result = PreTradeResult(True, (), intent.decision_id, facts)
        res.result = result
        counters = self.counters
        counters["accepted"] = counters.get("accepted", 0) + 1
        if self._events is not None:
            self._record(intent, now_ns, "ACCEPTED", [], [], facts, {k: str(v) for k, v in res.margin.items()})
        return result

    def _record(self, intent: PairIntent, now_ns: int, reason: str, denials: list[str], codes: list[str],
                facts: dict[str, str], reservation: dict[str, str]) -> None:
        """The pair's RISK_DECISION event, to the sink (one per pair, accepted or refused)."""
        if self.sink is not None and self._events is not None:
            self.sink.emit(self._events.make(
                EventKind.RISK_DECISION, ts_ns=now_ns, decision_id=intent.decision_id, strategy=intent.strategy,
                reason=reason, coordinator=self.name, denials=denials, codes=codes, facts=facts,
                reservation=reservation))

    def _reserve(self, intent: PairIntent, rows: list[tuple[LegIntent, int, bool, Decimal | None, Decimal | None]]) -> _Reservation:
        """Reserve margin per pool and the legs' lots in flight; rows are (leg, sign, reducing, per lot in the
        account's currency, per lot in the base currency)."""
        res = _Reservation(intent, {}, {}, {})
        sp = strategy_pool(intent.strategy)
        has_sp = self.grant is not None and sp in self.grant.leases
        margin = res.margin
        pending = self._pending
        for leg, sign, reducing, per_acct, per_base in rows:
            name = leg.leg
            qty = leg.qty
            res.reducing[name] = reducing
            res.pending[name] = qty
            key = ("inst", leg.instrument)
            p = pending.get(key)
            if p is None:
                p = pending[key] = [0, 0]
            p[0 if sign > 0 else 1] += qty
            if reducing or per_acct is None:
                continue
            ap = _ACCOUNT_POOLS.get(leg.account) or account_pool(leg.account)
            base = per_base or ZERO
            res.per_lot[name] = (ap, per_acct, sp if has_sp else "", base)
            margin[ap] = margin.get(ap, ZERO) + per_acct * qty
            if has_sp:
                margin[sp] = margin.get(sp, ZERO) + base * qty
        usage = self._usage
        for k, v in margin.items():
            usage[k] = usage.get(k, ZERO) + v
        self._res[intent.decision_id] = res
        return res

    @staticmethod
    def _add(d: dict[str, Decimal], k: str, v: Decimal) -> None:
        d[k] = d.get(k, ZERO) + v

    # -- orders ----------------------------------------------------------------------------------
    def allows_order(self, strategy: str, venue: str, instrument: str, reduce_only: bool, now_ns: int) -> Denial | None:
        """Before every order: grant expiry, trading states, order-rate throttle, daily counts.

        An allowed order is counted (rate window and the contract's daily count).
        """
        g = self.grant
        if g is None:
            if not reduce_only:
                return self._count_denial(deny(DenialCode.NO_GRANT, f"coordinator={self.name} holds no grant"))
            return self._count_order(None, strategy, venue, instrument, reduce_only, now_ns)
        if now_ns >= g.expires_ns and not reduce_only:
            return self._count_denial(deny(DenialCode.GRANT_EXPIRED, f"grant seq={g.seq} expired_at_ns={g.expires_ns} now_ns={now_ns}"))
        st = self._states
        for sk in (GLOBAL, f"strategy:{strategy}", f"venue:{venue}"):
            s = st.get(sk)
            if s is TradingState.HALTED:
                return self._count_denial(deny(DenialCode.TRADING_HALTED, f"scope={sk} state=HALTED"))
            if s is TradingState.REDUCING and not reduce_only:
                return self._count_denial(deny(DenialCode.TRADING_REDUCING, f"scope={sk} state=REDUCING"))
        return self._count_order(g, strategy, venue, instrument, reduce_only, now_ns)

    def _count_denial(self, d: Denial) -> Denial:
        self.counters[d.code] = self.counters.get(d.code, 0) + 1
        return d

    def _count_order(self, g: RiskGrant | None, strategy: str, venue: str, instrument: str, reduce_only: bool, now_ns: int) -> Denial | None:
        # without a grant (a restarted coordinator before the risk guard's first), only
        # risk-reducing orders get here; a rate of one a second escalated unwinds that a
        # recovery sends together
        rate = g.order_rate_per_s if g is not None else NO_GRANT_REDUCE_ONLY_RATE_PER_S
        windows = [(GLOBAL, rate)]
        if g is not None and g.throttled and not reduce_only:
            frac = g.config.throttle.throttled_fraction
            for sk in (GLOBAL, f"strategy:{strategy}", f"venue:{venue}"):
                if sk in g.throttled:
                    windows.append((f"throttle:{sk}", max(1, int(rate * frac))))
        for key, limit in windows:
            w = self._orders.get(key)
            if w is None:
                w = self._orders[key] = _Window()
            n = w.count(now_ns)
            if n >= limit:
                what = "throttled " + key.split(":", 1)[1] if key != GLOBAL else "coordinator"
                return self._count_denial(deny(DenialCode.ORDER_RATE_EXCEEDED, f"{what} orders_last_1s={n} max={limit}"))
        daily = self._daily_slot(instrument, now_ns)
        dc = g.config.daily_counts.get(venue) if g is not None else None
        if dc is not None and dc.max_orders_per_contract is not None and daily[0] >= dc.max_orders_per_contract:
            return self._count_denial(deny(DenialCode.DAILY_ORDER_COUNT_EXCEEDED, f"instrument={instrument} orders_today={daily[0]} "
                                           f"max={dc.max_orders_per_contract}"))
        for key, _ in windows:
            self._orders[key].ts.append(now_ns)
        daily[0] += 1
        return None

    def allows_cancel(self, strategy: str, venue: str, instrument: str, now_ns: int) -> Denial | None:
        """Before a cancel: never blocked by a trading state; the cancel rate and daily count apply.

        A cancel that makes the book safer (rollback, halt) may be sent despite a denial; it is
        still counted through :meth:`count_cancel`.
        """
        g = self.grant
        limit = g.cancel_rate_per_s if g is not None else 1
        w = self._cancels.get(GLOBAL)
        if w is None:
            w = self._cancels[GLOBAL] = _Window()
        n = w.count(now_ns)
        if n >= limit:
            return self._count_denial(deny(DenialCode.CANCEL_RATE_EXCEEDED, f"cancels_last_1s={n} max={limit}"))
        daily = self._daily_slot(instrument, now_ns)
        dc = g.config.daily_counts.get(venue) if g is not None else None
        if dc is not None and dc.max_cancels_per_contract is not None and daily[1] >= dc.max_cancels_per_contract:
            return self._count_denial(deny(DenialCode.DAILY_CANCEL_COUNT_EXCEEDED, f"instrument={instrument} cancels_today={daily[1]} "
                                           f"max={dc.max_cancels_per_contract}"))
        self.count_cancel(instrument, now_ns)
        return None

    def count_cancel(self, instrument: str, now_ns: int) -> None:
        w = self._cancels.get(GLOBAL)
        if w is None:
            w = self._cancels[GLOBAL] = _Window()
        w.ts.append(now_ns)
        self._daily_slot(instrument, now_ns)[1] += 1

    def daily_counts(self, instrument: str, now_ns: int) -> tuple[int, int]:
        d = self._daily_slot(instrument, now_ns)
        return d[0], d[1]

    def _daily_slot(self, instrument: str, now_ns: int) -> list[int]:
        inst = self.instruments.get(instrument)
        day: dt.date | None = None
        if inst is not None and inst.venue in self.venues:
            day = self._session_state(inst, now_ns)[3]
        if day is None:  # closed: count against the last trading day seen, else the UTC date
            day = self._last_day.get(instrument)
            if day is None:
                day = dt.datetime.fromtimestamp(now_ns / NS_PER_S, tz=dt.timezone.utc).date()
        else:
            self._last_day[instrument] = day
        key = (instrument, day.isoformat())
        slot = self._daily.get(key)
        if slot is None:
            # a new trading day: drop the counts of the old ones
            for k in [k for k in self._daily if k[0] == instrument]:
                del self._daily[k]
            slot = self._daily[key] = [0, 0]
        return slot

    # -- fills and releases ------------------------------------------------------------------
    def on_order_done(self, intent: PairIntent, leg: str, filled_qty: int, price: object | None) -> None:
        """An order of ``leg`` reached a terminal state having filled ``filled_qty`` lots.

        ``filled_qty`` is signed relative to the leg's side: positive for the leg's own orders
        (first send, replenish), negative for rollback orders that unwind it. Filled lots move
        from reserved to committed margin and into the local positions; unfilled lots stay
        reserved until :meth:`close_pair` (a replenish order may still need them).
        """
        if filled_qty == 0:
            return
        li = next((l for l in intent.legs if l.leg == leg), None)
        if li is None:
            raise ValueError(f"leg: {leg!r} is not a leg of pair {intent.decision_id}")
        res = self._res.get(intent.decision_id)
        if res is None:  # no reservation (checked elsewhere or before a restart): track the position
            res = _Reservation(intent, {}, {}, {l.leg: 0 for l in intent.legs})
            self._res[intent.decision_id] = res
        signed = filled_qty * li.side.sign
        for k, d in (((li.account, intent.strategy, li.instrument), signed),):
            res.fills[k] = res.fills.get(k, 0) + d
        self._acct_delta[(li.account, li.instrument)] = self._acct_delta.get((li.account, li.instrument), 0) + signed
        self._gross = None
        self._inst_delta[li.instrument] = self._inst_delta.get(li.instrument, 0) + signed
        self._strat_delta[(intent.strategy, li.instrument)] = self._strat_delta.get((intent.strategy, li.instrument), 0) + signed
        if filled_qty > 0:
            take = min(filled_qty, res.pending.get(leg, 0))
            if take:
                res.pending[leg] -= take
                p = self._pending.get(("inst", li.instrument))
                if p is not None:
                    p[0 if li.side.sign > 0 else 1] -= take
        per = res.per_lot.get(leg)
        if per is None or res.reducing.get(leg):
            return
        ap, per_acct, sp, per_base = per
        px = _dec(price)
        inst = self.instruments.get(li.instrument)
        scale = Decimal(1)
        if px is not None and inst is not None and li.limit_price:
            scale = px / li.limit_price  # commit at the fill price, not the reserved one
        if filled_qty > 0:
            take_pools = [(ap, per_acct)] + ([(sp, per_base)] if sp else [])
            for pool, per_lot in take_pools:
                reserved_part = min(per_lot * filled_qty, res.margin.get(pool, ZERO))
                res.margin[pool] = res.margin.get(pool, ZERO) - reserved_part
                commit = per_lot * filled_qty * scale
                res.committed[pool] = res.committed.get(pool, ZERO) + commit
                self._usage[pool] = self._usage.get(pool, ZERO) - reserved_part + commit
        else:
            for pool, per_lot in [(ap, per_acct)] + ([(sp, per_base)] if sp else []):
                back = min(per_lot * -filled_qty, res.committed.get(pool, ZERO))
                res.committed[pool] = res.committed.get(pool, ZERO) - back
                self._usage[pool] = self._usage.get(pool, ZERO) - back

    def close_pair(self, decision_id: str) -> None:
        """The pair reached a terminal state: release what is still reserved (committed stays until booked)."""
        res = self._res.get(decision_id)
        if res is None or res.closed:
            return
        res.closed = True
        for pool, amt in res.margin.items():
            self._usage[pool] = self._usage.get(pool, ZERO) - amt
        res.margin = {}
        for li in res.intent.legs:
            left = res.pending.get(li.leg, 0)
            if left:
                p = self._pending.get(("inst", li.instrument))
                if p is not None:
                    p[0 if li.side.sign > 0 else 1] -= left
                res.pending[li.leg] = 0

    def _forget(self, decision_id: str) -> None:
        """The guard booked this pair: its fills are in the grant's positions now."""
        self.close_pair(decision_id)
        res = self._res.pop(decision_id, None)
        if res is None:
            return
        for pool, amt in res.committed.items():
            self._usage[pool] = self._usage.get(pool, ZERO) - amt
        if res.fills:
            self._gross = None
        for (acc, strat, inst), lots in res.fills.items():
            self._acct_delta[(acc, inst)] = self._acct_delta.get((acc, inst), 0) - lots
            self._inst_delta[inst] = self._inst_delta.get(inst, 0) - lots
            self._strat_delta[(strat, inst)] = self._strat_delta.get((strat, inst), 0) - lots

    def reservation(self, decision_id: str) -> dict[str, Decimal]:
        res = self._res.get(decision_id)
        return dict(res.margin) if res is not None else {}

    def position(self, strategy: str, instrument: str) -> int:
        g = self.grant
        base = g.strategy_positions.get(strategy, {}).get(instrument, 0) if g is not None else 0
        return base + self._strat_delta.get((strategy, instrument), 0)


def _merge_limits(default: InstrumentLimits, specific: InstrumentLimits | None) -> InstrumentLimits:
    """Instrument limits over the defaults: a field the instrument leaves unset takes the default."""
    if specific is None:
        return default
    given = specific.model_fields_set
    return InstrumentLimits(**{f: getattr(specific if f in given else default, f) for f in InstrumentLimits.model_fields})


def _dec(x: Any) -> Decimal | None:
    if x is None:
        return None
    if isinstance(x, Decimal):
        return x
    try:
        return Decimal(str(x))
    except Exception:
        return None


class MarketTimeFx:
    """An :data:`FxProvider` over ``core.pricing.FxBook`` at the **market time** of what is being
    checked: the time :meth:`at` set (the stamp of the quotes a pair was decided on, a mark's
    stamp), else the clock's time. A replay of 2019 thus converts at 2019's rates, under the
    series' own ``max_lag_days``, whatever the wall-clock date. None if no usable rate."""

    __slots__ = ("book", "clock", "at_ns", "_value")

    def __init__(self, book: Any, clock: Clock) -> None:
        self.book, self.clock = book, clock
        self.at_ns: int | None = None
        # FxBook.rate_value: the rate alone (any other book: its rate(...).rate)
        self._value = getattr(book, "rate_value", None)

    def at(self, ts_ns: int | None) -> None:
        """Look rates up at ``ts_ns`` from now on (None or 0: at the clock's time again)."""
        self.at_ns = ts_ns or None

    def __call__(self, a: str, b: str) -> Decimal | None:
        ts = self.at_ns if self.at_ns is not None else self.clock.now_ns()
        if self._value is not None:
            r = self._value(a, b, ts)
        else:
            o = self.book.rate(a, b, ts)
            r = None if o is None else o.rate
        return None if r is None else _decimal_of(r)


_DECIMALS: dict[float, Decimal] = {}


def _decimal_of(x: float) -> Decimal:
    """``Decimal(repr(x))``: the decimal a float rate prints as, remembered for positive floats
    (a fixed or daily rate is converted again and again; the conversion does not depend on the
    decimal context)."""
    if type(x) is not float or not x > 0:
        return Decimal(repr(x))
    d = _DECIMALS.get(x)
    if d is None:
        if len(_DECIMALS) >= 4096:
            _DECIMALS.clear()
        d = _DECIMALS[x] = Decimal(repr(x))
    return d


def fx_from_book(book: Any, clock: Clock) -> MarketTimeFx:
    """An :data:`FxProvider` over ``core.pricing.FxBook``: at the market time set with
    :meth:`MarketTimeFx.at` (the checker sets it from each pair's ``created_ns``), else the clock's."""
    return MarketTimeFx(book, clock)
