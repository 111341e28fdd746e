"""The accept path of :class:`~xmc_actors.core.risk_checker.PreTradeChecker`: the default checks
fused over limits resolved once per grant (:class:`_InstPlan`, :class:`_StratPlan`,
:class:`_AcctPlan`). It answers only when every check passes and otherwise leaves the pair to
the check list, which reports every failed check; ``tests/unit/test_risk_fast_path.py`` holds it
to the check list's decisions (a differential test). The reservation record of an accepted pair
(:class:`_Reservation`) is here too: both paths make one.

A mixin of the checker (split out of ``core/risk_rules.py`` by concern): its methods run on the
checker's own state, set up in the checker's ``__init__``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


from ..model.events import EventKind, trusted_event
from ..model.market import Instrument
from ..model.pairs import PairIntent
from ..model.risk import InstrumentLimits, TradingState
from .pretrade import PreTradeResult
from .risk_types import _BUY, _FACT_KEYS, GLOBAL, ONE, ZERO, RiskGrant, _fact_keys, account_pool, strategy_pool


# what the checker holds for one accepted pair (both paths reserve through it)
@dataclass(slots=True)
class _Reservation:
    intent: PairIntent
    margin: dict[str, Decimal]                  # pool -> still reserved
    per_lot: dict[str, tuple[str, Decimal, str, Decimal]]  # leg -> (acct pool, per lot, strat pool, per lot base)
    pending: dict[str, int]                     # leg -> lots still reserved (not filled)
    committed: dict[str, Decimal] = field(default_factory=dict)  # pool -> committed by fills, unbooked
    fills: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (account, strategy, inst) -> net lots
    reducing: dict[str, bool] = field(default_factory=dict)
    closed: bool = False
    result: PreTradeResult | None = None


@dataclass(frozen=True, slots=True)
class _InstPlan:
    """What the accept path needs of one instrument under one grant, resolved once per grant."""

    inst: Instrument
    venue_scope: str                 # ``venue:<code>`` as check_trading_state derives it from the id
    session_key: str                 # the key of the checker's session cache
    pending_key: tuple[str, str]     # the key of its lots in flight
    max_qty: int                     # the smaller of the grant's max_order_qty and the venue's max lots
    max_notional: Decimal | None
    collar_pct: Decimal | None
    max_position: int | None
    multiplier: Decimal
    margin_rate: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class _StratPlan:
    """One strategy under one grant: its scope and pool keys, booked positions and budget."""

    scope: str                        # ``strategy:<name>`` (trading state)
    pool: str                         # ``strategy:<name>`` (margin lease)
    with_pool: bool                   # the grant leases this strategy a margin budget
    positions: dict[str, int] | None  # booked net lots per instrument
    max_position: int | None
    max_net: Decimal | None           # max pair net exposure, base currency


@dataclass(frozen=True, slots=True)
class _AcctPlan:
    """One account under one grant: currency (None: not in the grant), pool, red flag, positions, gross cap."""

    currency: str | None
    pool: str
    blocked: bool
    positions: dict[str, int] | None
    max_gross: int | None


class FastPath:
    """The accept path of :class:`PreTradeChecker` (a mixin; no state of its own)."""

    def _plan(self, instrument: str, limits: InstrumentLimits) -> _InstPlan:
        inst = self.instruments[instrument]
        key = self._inst_keys.get(id(inst))
        if key is None or self.instruments.get(key) is not inst:
            key = inst.id
        cap = limits.max_order_qty
        return _InstPlan(inst, "venue:" + instrument.split(".", 1)[0], key, ("inst", instrument),
                         inst.max_qty if cap is None else min(cap, inst.max_qty), limits.max_order_notional,
                         limits.collar_pct, limits.max_position, inst.multiplier, inst.margin_rate, inst.currency)

    def _fast_accept(self, intent: PairIntent, now_ns: int, g: RiskGrant) -> PreTradeResult | None:
        """The accept path: the :data:`DEFAULT_CHECKS` fused over both legs, against per-grant plans.

        Returns the accepted result (margin reserved, RISK_DECISION recorded exactly as the
        check list records it) when every check passes, and None, having changed nothing, as
        soon as one might not: the check list then decides and records every failed check with
        its numbers. The arithmetic is the checks' own (Decimal, the same operations on the same
        operands; ``x * 1`` is skipped where the rate is 1, which is exact), so exactly the same
        pairs pass; unusual pairs (reduce-only, expired grant, unknown instrument or account, no
        price) go to the check list directly.
        """
        if intent.reduce_only or now_ns >= g.expires_ns:
            return None
        strat = intent.strategy
        sp = self._strat_plans.get(strat) or self._strat_plan(strat, g)
        states = self._states
        if states:
            for sk in (GLOBAL, sp.scope):
                st = states.get(sk)
                if st is TradingState.HALTED or st is TradingState.REDUCING:
                    return None
        session_ns, session_cache = self._session_time(intent, now_ns)
        sessions = session_cache if self._check_sessions else None
        base_ccy = g.base_currency
        pool_sp = sp.pool if sp.with_pool else None
        net = ZERO if sp.max_net is not None else None     # the pair's net exposure, when a budget caps it
        gross: dict[str, int] | None = None
        gross_acct = ""          # the previous leg's account and the lots it added to its gross (two legs)
        gross_add = 0
        margin: dict[str, Decimal] = {}                   # pool -> needed, which is what is reserved
        facts: dict[str, str] = {}
        per_lot_map: dict[str, tuple[str, Decimal, str, Decimal]] = {}
        pending_map: dict[str, int] = {}
        reducing_map: dict[str, bool] = {}
        in_flight = []                                     # (pending key, buy 0 / sell 1, lots)
        for leg in intent.legs:
            iid = leg.instrument
            acct = leg.account
            p = self._plans.get(iid)
            ap = self._acct_plans.get(acct) or self._acct_plan(acct, g)
            if p is None or ap.currency is None:
                return None
            if states:
                st = states.get(p.venue_scope)
                if st is TradingState.HALTED or st is TradingState.REDUCING:
                    return None
            if sessions is not None:
                sc = sessions.get(p.session_key)
                if sc is None or session_ns >= sc[0]:
                    sc = self._session_state(p.inst, session_ns, sessions)
                if not sc[1]:
                    return None
            r = None if self.reference is None else self.reference(iid)
            if r is None:
                r = g.reference_prices.get(iid)
            ref, ref_ts = (leg.trigger_price, 0) if r is None else r
            price = leg.limit_price
            if price is None:
                price = ref
                if price is None:
                    return None
            qty = leg.qty
            contract = price * p.multiplier
            notional = contract * qty
            if qty > p.max_qty or (p.max_notional is not None and notional > p.max_notional):
                return None
            if p.collar_pct is not None and ref is not None and (
                    (self._max_age_ns and ref_ts and now_ns - ref_ts > self._max_age_ns)
                    or abs(price - ref) / ref > p.collar_pct):
                return None
            sign = 1 if leg.side is _BUY else -1
            strat_pos = (sp.positions.get(iid, 0) if sp.positions else 0) + self._strat_delta.get((strat, iid), 0)
            reducing = strat_pos * sign < 0 and qty <= abs(strat_pos)
            per_lot = contract * p.margin_rate
            ccy = p.currency
            if ccy == base_ccy:
                to_base: Decimal | None = ONE
                per_base: Decimal | None = per_lot
            else:  # _rate, inline: a provider failure or a rate not above 0 is an unavailable rate
                try:
                    to_base = self.fx(ccy, base_ccy)
                except Exception:
                    to_base = None
                if to_base is None or not to_base > 0:
                    to_base = per_base = None
                else:
                    per_base = per_lot * to_base
            acct_ccy = ap.currency
            if acct_ccy == base_ccy:
                per_acct = per_base
            elif acct_ccy == ccy:
                per_acct = per_lot
            else:
                to_acct = self._rate(ccy, acct_ccy)
                per_acct = None if to_acct is None else per_lot * to_acct
            name = leg.leg
            keys = _FACT_KEYS.get(name) or _fact_keys(name)
            facts[keys[0]] = str(price)
            facts[keys[1]] = str(notional)
            if reducing:
                facts[keys[2]] = "0"
            else:
                if ap.blocked or per_acct is None or per_base is None:
                    return None
                pend = self._pending.get(p.pending_key)
                step = sign * ((pend[0] if sign > 0 else pend[1]) + qty if pend else qty)  # in flight + this leg
                mp = p.max_position
                if mp is not None and abs(self._inst_grant.get(iid, 0) + self._inst_delta.get(iid, 0) + step) > mp:
                    return None
                if sp.max_position is not None and abs(strat_pos + step) > sp.max_position:
                    return None
                if ap.max_gross is not None:
                    acct_pos = (ap.positions.get(iid, 0) if ap.positions else 0) + self._acct_delta.get((acct, iid), 0)
                    if abs(acct_pos + sign * qty) > abs(acct_pos):  # the leg adds to the account's gross lots
                        if gross is None:
                            gross = self._gross
                            if gross is None:
                                gross = self._gross = self._acct_gross(g)
                        add = qty + gross_add if acct == gross_acct else qty
                        if gross.get(acct, 0) + add > ap.max_gross:
                            return None
                        gross_acct, gross_add = acct, add
                need = per_acct * qty
                facts[keys[2]] = str(need)
                pool = ap.pool
                margin[pool] = margin.get(pool, ZERO) + need
                base = per_base or ZERO
                if pool_sp is not None:
                    margin[pool_sp] = margin.get(pool_sp, ZERO) + base * qty
                per_lot_map[name] = (pool, per_acct, pool_sp or "", base)
            facts[keys[3]] = str(strat_pos)
            if net is not None:
                if to_base is None:
                    net = None  # no rate: the check list cannot weigh the pair either, and does not
                else:
                    net += notional * to_base / qty * (strat_pos + sign * qty)
            reducing_map[name] = reducing
            pending_map[name] = qty
            in_flight.append((p.pending_key, 0 if sign > 0 else 1, qty))
        if net is not None and abs(net) > sp.max_net:  # type: ignore[operator]
            return None
        usage = self._usage
        leases = g.leases
        for pool, amount in margin.items():
            if usage.get(pool, ZERO) + amount > leases.get(pool, ZERO):
                return None
        # every check passed: reserve, count, record (as _decide and _reserve do for the check list)
        pending = self._pending
        for key, side, qty in in_flight:
            pend = pending.get(key)
            if pend is None:
                pend = pending[key] = [0, 0]
            pend[side] += qty
        reservation: dict[str, str] = {}
        for pool, amount in margin.items():
            usage[pool] = usage.get(pool, ZERO) + amount
            reservation[pool] = str(amount)
        did = intent.decision_id
        result = PreTradeResult(True, (), did, facts)
        self._res[did] = _Reservation(intent, margin, per_lot_map, pending_map, {}, {}, reducing_map, False, result)
        counters = self.counters
        counters["accepted"] = counters.get("accepted", 0) + 1
        ev = self._events
        if ev is not None and self.sink is not None:
            if type(now_ns) is int and now_ns >= 0 and type(did) is str and type(strat) is str:
                # what EventMaker.make builds for these exact types, without re-checking them
                self.sink.emit(trusted_event(ev.new_id(), now_ns, did, "", EventKind.RISK_DECISION, strat, "", "", "",
                                             ev.actor, "ACCEPTED", None, {
                                                 "coordinator": self.name, "denials": [], "codes": [], "facts": facts,
                                                 "reservation": reservation}))
            else:
                self._record(intent, now_ns, "ACCEPTED", [], [], facts, reservation)
        return result

    def _strat_plan(self, strategy: str, g: RiskGrant) -> _StratPlan:
        budget = g.config.strategies.get(strategy)
        pool = strategy_pool(strategy)
        plan = _StratPlan("strategy:" + strategy, pool, pool in g.leases, g.strategy_positions.get(strategy),
                          budget.max_position if budget is not None else None,
                          budget.max_pair_net_exposure if budget is not None else None)
        if len(self._strat_plans) < 10_000:
            self._strat_plans[strategy] = plan
        return plan

    def _acct_plan(self, account: str, g: RiskGrant) -> _AcctPlan:
        plan = _AcctPlan(g.accounts.get(account), account_pool(account), account in g.blocked_accounts,
                         g.account_positions.get(account), g.config.max_account_position.get(account))
        if len(self._acct_plans) < 10_000:
            self._acct_plans[account] = plan
        return plan
