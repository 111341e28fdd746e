"""The pre-trade checks: pure functions of one pair's :class:`CheckContext` (both legs as
:class:`LegView`), in the order :data:`DEFAULT_CHECKS` runs them; each returns every denial it
finds. :class:`~xmc_actors.core.risk_checker.PreTradeChecker` builds the context and runs them.

Split out of ``core/risk_rules.py`` (which re-exports every name here) by concern.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Iterable


from ..model.market import Instrument
from ..model.pairs import LegIntent, PairIntent
from ..model.risk import InstrumentLimits, TradingState
from .pretrade import Denial
from .risk_types import GLOBAL, NS_PER_MS, ZERO, DenialCode, RiskGrant, account_pool, deny, strategy_pool


# -- per-check context -----------------------------------------------------------------------
@dataclass(slots=True)
class LegView:
    """One leg with everything the checks need, computed once per pair."""

    leg: LegIntent
    inst: Instrument | None
    limits: InstrumentLimits
    price: Decimal | None
    reference: Decimal | None
    reference_ts: int
    sign: int
    notional: Decimal = ZERO          # instrument currency
    notional_base: Decimal | None = ZERO
    margin_per_lot_acct: Decimal | None = ZERO   # account currency
    margin_per_lot_base: Decimal | None = ZERO
    acct_currency: str | None = None
    acct_pos: int = 0                 # account x instrument, incl. unbooked fills
    strat_pos: int = 0                # strategy x instrument
    inst_pos: int = 0                 # all accounts
    pending_buy: int = 0              # lots reserved in flight (worst case for the limit)
    pending_sell: int = 0
    reducing: bool = False


@dataclass(slots=True)
class CheckContext:
    intent: PairIntent
    now_ns: int
    grant: RiskGrant
    legs: tuple[LegView, LegView]
    states: dict[str, TradingState]
    session: Callable[[Instrument], tuple[bool, str]]
    usage: dict[str, Decimal]
    acct_gross: dict[str, int]
    reducing: bool


Check = Callable[[CheckContext], "Iterable[Denial] | None"]


def _fmt(x: Decimal | None) -> str:
    if x is None:
        return "?"
    return f"{x.quantize(Decimal('0.01')):f}" if x.as_tuple().exponent < -2 else f"{x:f}"


# -- the checks: pure functions of the context, in the order they run ----------------------
def check_trading_state(c: CheckContext) -> list[Denial] | None:
    g = c.grant
    if not c.states and not c.intent.reduce_only and c.now_ns < g.expires_ns:
        return None
    out = []
    if c.now_ns >= g.expires_ns and not c.reducing:
        out.append(deny(DenialCode.GRANT_EXPIRED, f"grant seq={g.seq} expired_at_ns={g.expires_ns} now_ns={c.now_ns}"))
    venues = [lv.leg.instrument.split(".", 1)[0] for lv in c.legs]
    scopes = [GLOBAL, f"strategy:{c.intent.strategy}"] + [f"venue:{v}" for v in venues]
    for sk in scopes:
        st = c.states.get(sk)
        if st is TradingState.HALTED:
            out.append(deny(DenialCode.TRADING_HALTED, f"scope={sk} state=HALTED"))
        elif st is TradingState.REDUCING and not c.reducing:
            out.append(deny(DenialCode.TRADING_REDUCING, f"scope={sk} state=REDUCING reduce_only={c.intent.reduce_only}"))
    if c.intent.reduce_only and not c.reducing:
        for lv in c.legs:
            if not lv.reducing:
                out.append(deny(DenialCode.NOT_REDUCING, f"leg={lv.leg.leg} {lv.leg.side.value} qty={lv.leg.qty} "
                                f"strategy_position={lv.strat_pos}"))
    return out


def check_sessions(c: CheckContext) -> list[Denial] | None:
    cfg = c.grant.config
    if not cfg.check_sessions:
        return None
    out = []
    for lv in c.legs:
        if lv.inst is None:
            continue
        ok, why = c.session(lv.inst)
        if not ok:
            out.append(deny(DenialCode.MARKET_CLOSED, f"leg={lv.leg.leg} instrument={lv.inst.id} {why}"))
    return out


def check_order_size(c: CheckContext) -> list[Denial] | None:
    out = []
    for lv in c.legs:
        if lv.inst is None:
            continue
        q = lv.leg.qty
        cap = lv.limits.max_order_qty
        if cap is not None and q > cap:
            out.append(deny(DenialCode.QTY_EXCEEDS_MAX, f"leg={lv.leg.leg} instrument={lv.inst.id} qty={q} max={cap}"))
        elif q > lv.inst.max_qty:
            out.append(deny(DenialCode.QTY_EXCEEDS_MAX, f"leg={lv.leg.leg} instrument={lv.inst.id} qty={q} "
                            f"max={lv.inst.max_qty} (venue)"))
        mx = lv.limits.max_order_notional
        if mx is not None and lv.price is not None and lv.notional > mx:
            out.append(deny(DenialCode.NOTIONAL_EXCEEDS_MAX, f"leg={lv.leg.leg} instrument={lv.inst.id} "
                            f"notional={_fmt(lv.notional)} max={_fmt(mx)} {lv.inst.currency}"))
    return out


def check_price_collar(c: CheckContext) -> list[Denial] | None:
    out = []
    max_age = c.grant.config.max_reference_age_ms * NS_PER_MS
    for lv in c.legs:
        if lv.inst is None:
            continue
        if lv.price is None:
            out.append(deny(DenialCode.NO_PRICE, f"leg={lv.leg.leg} instrument={lv.inst.id}: no limit price and no reference price"))
            continue
        pct = lv.limits.collar_pct
        if pct is None or lv.reference is None:
            continue
        if max_age and lv.reference_ts and c.now_ns - lv.reference_ts > max_age:
            out.append(deny(DenialCode.REFERENCE_STALE, f"leg={lv.leg.leg} instrument={lv.inst.id} "
                            f"reference_age_ms={(c.now_ns - lv.reference_ts) // NS_PER_MS} max={c.grant.config.max_reference_age_ms}"))
            continue
        dev = abs(lv.price - lv.reference) / lv.reference
        if dev > pct:
            out.append(deny(DenialCode.PRICE_OUTSIDE_COLLAR, f"leg={lv.leg.leg} instrument={lv.inst.id} price={lv.price} "
                            f"reference={lv.reference} deviation={dev * 100:.2f}% max={pct * 100:.2f}%"))
    return out


def check_positions(c: CheckContext) -> list[Denial] | None:
    out = []
    cfg = c.grant.config
    budget = cfg.strategies.get(c.intent.strategy)
    gross_delta: dict[str, int] = {}
    for lv in c.legs:
        if lv.inst is None or lv.reducing:
            continue
        q = lv.leg.qty
        if lv.sign > 0:
            inst_after = lv.inst_pos + lv.pending_buy + q
            strat_after = lv.strat_pos + lv.pending_buy + q
        else:
            inst_after = lv.inst_pos - lv.pending_sell - q
            strat_after = lv.strat_pos - lv.pending_sell - q
        mp = lv.limits.max_position
        if mp is not None and abs(inst_after) > mp:
            name = f"leg={lv.leg.leg} instrument={lv.inst.id}"
            out.append(deny(DenialCode.POSITION_EXCEEDS_INSTRUMENT_MAX, f"{name} position={lv.inst_pos} "
                            f"in_flight={lv.pending_buy if lv.sign > 0 else -lv.pending_sell} order={lv.sign * q} "
                            f"after={inst_after} max={mp}"))
        if budget is not None and budget.max_position is not None and abs(strat_after) > budget.max_position:
            name = f"leg={lv.leg.leg} instrument={lv.inst.id}"
            out.append(deny(DenialCode.POSITION_EXCEEDS_STRATEGY_MAX, f"{name} strategy={c.intent.strategy} "
                            f"position={lv.strat_pos} after={strat_after} max={budget.max_position}"))
        acc = lv.leg.account
        if abs(lv.acct_pos + lv.sign * q) > abs(lv.acct_pos):
            gross_delta[acc] = gross_delta.get(acc, 0) + q
    for acc, add in gross_delta.items():
        mx = cfg.max_account_position.get(acc)
        if mx is not None:
            after = c.acct_gross.get(acc, 0) + add
            if after > mx:
                out.append(deny(DenialCode.POSITION_EXCEEDS_ACCOUNT_MAX, f"account={acc} gross_lots={c.acct_gross.get(acc, 0)} "
                                f"order={add} after={after} max={mx}"))
    if budget is not None and budget.max_pair_net_exposure is not None and not c.reducing:
        net = ZERO
        ok = True
        for lv in c.legs:
            if lv.inst is None or lv.price is None or lv.notional_base is None:
                ok = False
                break
            per_lot = lv.notional_base / lv.leg.qty
            net += per_lot * (lv.strat_pos + lv.sign * lv.leg.qty)
        if ok and abs(net) > budget.max_pair_net_exposure:
            out.append(deny(DenialCode.PAIR_NET_EXPOSURE_EXCEEDS_MAX, f"strategy={c.intent.strategy} net_exposure={_fmt(abs(net))} "
                            f"max={_fmt(budget.max_pair_net_exposure)} {c.grant.base_currency}"))
    return out


def check_margin(c: CheckContext) -> list[Denial] | None:
    out = []
    g = c.grant
    need: dict[str, Decimal] = {}
    sp = strategy_pool(c.intent.strategy)
    with_sp = sp in g.leases
    for lv in c.legs:
        if lv.inst is None or lv.reducing:
            continue
        acc = lv.leg.account
        if acc in g.blocked_accounts:
            out.append(deny(DenialCode.OCCUPANCY_RED, f"account={acc} {g.blocked_accounts[acc]}"))
        if lv.acct_currency is None:
            out.append(deny(DenialCode.UNKNOWN_ACCOUNT, f"leg={lv.leg.leg} account={acc} is not in the grant"))
            continue
        if lv.margin_per_lot_acct is None or lv.margin_per_lot_base is None:
            out.append(deny(DenialCode.FX_UNAVAILABLE, f"leg={lv.leg.leg} {lv.inst.currency}->{lv.acct_currency}/"
                            f"{g.base_currency}: no rate"))
            continue
        pool = account_pool(acc)
        need[pool] = need.get(pool, ZERO) + lv.margin_per_lot_acct * lv.leg.qty
        if with_sp:
            need[sp] = need.get(sp, ZERO) + lv.margin_per_lot_base * lv.leg.qty
    for pool, amount in need.items():
        lease = g.leases.get(pool, ZERO)
        used = c.usage.get(pool, ZERO)
        if used + amount > lease:
            kind, name = pool.split(":", 1)
            if kind == "account":
                out.append(deny(DenialCode.MARGIN_EXCEEDS_AVAILABLE, f"account={name} required={_fmt(amount)} "
                                f"available={_fmt(max(lease - used, ZERO))} {g.accounts.get(name, '')} (lease={_fmt(lease)} in_use={_fmt(used)})"))
            else:
                out.append(deny(DenialCode.STRATEGY_MARGIN_EXCEEDS_BUDGET, f"strategy={name} required={_fmt(amount)} "
                                f"available={_fmt(max(lease - used, ZERO))} {g.base_currency}"))
    return out


#: The checks ``check_pair`` runs, in order. Every failing check is reported, not just the first.
DEFAULT_CHECKS: tuple[Check, ...] = (
    check_trading_state, check_sessions, check_order_size, check_price_collar, check_positions, check_margin,
)
