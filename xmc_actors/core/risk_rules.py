"""Pre-trade risk checks the pair coordinator runs in-process (事前风控).

The RiskGuard is the authority; it pushes each coordinator a :class:`RiskGrant`: the limits,
the trading states, a snapshot of positions, and a *lease* of margin per account and per
strategy budget that no other coordinator holds (so two coordinators never spend the same
margin twice). :class:`PreTradeChecker` checks every pair and every order against the grant
without any remote call:

* :meth:`PreTradeChecker.check_pair` runs an ordered list of pure check functions over both
  legs together and collects **every** failed check as a :class:`~xmc_actors.core.pretrade.Denial`
  with a code from :class:`DenialCode` and its numbers; on success it reserves margin under
  the pair's ``decision_id``.
* :meth:`PreTradeChecker.allows_order` is called before every order (first sends, replenish
  and rollback orders): trading state, grant expiry, order-rate throttle, per-contract daily
  counts. :meth:`PreTradeChecker.allows_cancel` does the same for cancels (never blocked by a
  trading state, only by the cancel-rate throttle and the daily cancel count).
* :meth:`PreTradeChecker.on_order_done` commits what an order filled (保证金占用);
  :meth:`PreTradeChecker.close_pair` releases what the pair no longer needs.

A grant expires (``expires_ns``); an expired grant (RiskGuard down or unreachable) lets only
risk-reducing orders through, and nothing extends it but a newer grant.
"""
from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Callable, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from ..model.events import EventKind, trusted_event
from ..model.market import Instrument, Side, Venue
from ..model.pairs import LegIntent, PairIntent
from ..model.risk import InstrumentLimits, RiskConfig, TradingState
from .calendar import instrument_session_state, session_window
from .clock import Clock, SystemClock
from .pretrade import Denial, PreTradeResult
from .sink import EventMaker, EventSink

_BUY = Side.BUY
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
ZERO = Decimal(0)
ONE = Decimal(1)

#: ``fx(from_ccy, to_ccy)`` -> units of ``to_ccy`` for one ``from_ccy`` (None if unknown).
FxProvider = Callable[[str, str], "Decimal | None"]
#: ``reference(instrument_id)`` -> (price, ts_ns) of an independent reference price, or None.
ReferenceProvider = Callable[[str], "tuple[Decimal, int] | None"]



#: orders a second a coordinator without a grant may still send (risk-reducing ones only)
NO_GRANT_REDUCE_ONLY_RATE_PER_S = 10

class DenialCode(str, Enum):
    """Every reason a pair or an order is refused locally. One enum for the whole product."""

    NO_GRANT = "NO_GRANT"
    GRANT_EXPIRED = "GRANT_EXPIRED"
    TRADING_HALTED = "TRADING_HALTED"
    TRADING_REDUCING = "TRADING_REDUCING"
    NOT_REDUCING = "NOT_REDUCING"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    QTY_EXCEEDS_MAX = "QTY_EXCEEDS_MAX"
    NOTIONAL_EXCEEDS_MAX = "NOTIONAL_EXCEEDS_MAX"
    PRICE_OUTSIDE_COLLAR = "PRICE_OUTSIDE_COLLAR"
    NO_PRICE = "NO_PRICE"
    REFERENCE_STALE = "REFERENCE_STALE"
    POSITION_EXCEEDS_INSTRUMENT_MAX = "POSITION_EXCEEDS_INSTRUMENT_MAX"
    POSITION_EXCEEDS_STRATEGY_MAX = "POSITION_EXCEEDS_STRATEGY_MAX"
    POSITION_EXCEEDS_ACCOUNT_MAX = "POSITION_EXCEEDS_ACCOUNT_MAX"
    PAIR_NET_EXPOSURE_EXCEEDS_MAX = "PAIR_NET_EXPOSURE_EXCEEDS_MAX"
    MARGIN_EXCEEDS_AVAILABLE = "MARGIN_EXCEEDS_AVAILABLE"
    STRATEGY_MARGIN_EXCEEDS_BUDGET = "STRATEGY_MARGIN_EXCEEDS_BUDGET"
    OCCUPANCY_RED = "OCCUPANCY_RED"
    FX_UNAVAILABLE = "FX_UNAVAILABLE"
    MARKET_CLOSED = "MARKET_CLOSED"
    ORDER_RATE_EXCEEDED = "ORDER_RATE_EXCEEDED"
    CANCEL_RATE_EXCEEDED = "CANCEL_RATE_EXCEEDED"
    DAILY_ORDER_COUNT_EXCEEDED = "DAILY_ORDER_COUNT_EXCEEDED"
    DAILY_CANCEL_COUNT_EXCEEDED = "DAILY_CANCEL_COUNT_EXCEEDED"


def deny(code: DenialCode, detail: str) -> Denial:
    return Denial(code.value, detail)


# -- scope keys ------------------------------------------------------------------------------
GLOBAL = "global"


def scope_key(scope: str, key: str | None = None) -> str:
    """``global``, ``strategy:<name>`` or ``venue:<code>``: the key of a trading state or throttle."""
    if scope == GLOBAL:
        return GLOBAL
    if scope not in ("strategy", "venue"):
        raise ValueError(f"scope: {scope!r} is not one of global, strategy, venue")
    if not key:
        raise ValueError(f"scope {scope!r} needs a key (the {scope} name)")
    return f"{scope}:{key}"


def account_pool(account: str) -> str:
    pool = _ACCOUNT_POOLS.get(account)
    if pool is None:
        pool = f"account:{account}"
        if len(_ACCOUNT_POOLS) < 10_000:
            _ACCOUNT_POOLS[account] = pool
    return pool


_ACCOUNT_POOLS: dict[str, str] = {}
_FACT_KEYS: dict[str, tuple[str, str, str, str]] = {}


def _fact_keys(leg: str) -> tuple[str, str, str, str]:
    """The ``facts`` keys of one leg of a RISK_DECISION (``A.price`` ...), made once per leg name."""
    keys = (leg + ".price", leg + ".notional", leg + ".margin", leg + ".position")
    if len(_FACT_KEYS) < 1_000:
        _FACT_KEYS[leg] = keys
    return keys


def strategy_pool(strategy: str) -> str:
    return f"strategy:{strategy}"


_STATE_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


def worst_state(*states: TradingState | None) -> TradingState:
    out = TradingState.ACTIVE
    for s in states:
        if s is not None and _STATE_RANK[s] > _STATE_RANK[out]:
            out = s
    return out


class RiskGrant(BaseModel):
    """What the RiskGuard grants one coordinator. Replaced whole; a higher ``seq`` wins.

    Attributes
    ----------
    leases
        Margin this coordinator may hold at once (reserved for pairs in flight plus committed
        by fills the guard has not booked yet), per pool: ``account:<id>`` in the account's
        currency, ``strategy:<name>`` in the base currency. Leases of different coordinators
        are disjoint slices of the free margin.
    positions
        Net lots per ``account`` -> ``instrument`` and per ``strategy`` -> ``instrument`` as
        the guard has booked them; the checker adds its own unbooked fills.
    booked
        Decision ids of this coordinator that the guard has booked into ``positions``; the
        checker drops its local copy of them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    coordinator: str
    seq: int = Field(ge=0)
    issued_ns: int = Field(ge=0)
    expires_ns: int = Field(ge=0)
    config: RiskConfig = RiskConfig()
    base_currency: str = "USD"
    accounts: dict[str, str] = Field(default_factory=dict)  # account -> currency
    leases: dict[str, Decimal] = Field(default_factory=dict)
    account_positions: dict[str, dict[str, int]] = Field(default_factory=dict)
    strategy_positions: dict[str, dict[str, int]] = Field(default_factory=dict)
    trading_states: dict[str, TradingState] = Field(default_factory=dict)
    throttled: tuple[str, ...] = ()
    blocked_accounts: dict[str, str] = Field(default_factory=dict)  # account -> why (occupancy red)
    order_rate_per_s: int = Field(default=50, ge=1)
    cancel_rate_per_s: int = Field(default=50, ge=1)
    reference_prices: dict[str, tuple[Decimal, int]] = Field(default_factory=dict)
    booked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GrantAck:
    """A coordinator's answer to a grant: which grant it now holds and what it uses of it."""

    coordinator: str
    seq: int
    usage: dict[str, Decimal]  # pool -> margin held (reserved + committed, not yet booked)
    open_reservations: int


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


# -- the checker ------------------------------------------------------------------------------
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


class PreTradeChecker:
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

    def _plan(self, instrument: str, limits: InstrumentLimits) -> _InstPlan:
        inst = self.instruments[instrument]
        key = self._inst_keys.get(id(inst))
        if key is None or self.instruments.get(key) is not inst:
            key = inst.id
        cap = limits.max_order_qty
        return _InstPlan(inst, "venue:" + instrument.split(".", 1)[0], key, ("inst", instrument),
                         inst.max_qty if cap is None else min(cap, inst.max_qty), limits.max_order_notional,
                         limits.collar_pct, limits.max_position, inst.multiplier, inst.margin_rate, inst.currency)

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

    __slots__ = ("book", "clock", "at_ns")

    def __init__(self, book: Any, clock: Clock) -> None:
        self.book, self.clock = book, clock
        self.at_ns: int | None = None

    def at(self, ts_ns: int | None) -> None:
        """Look rates up at ``ts_ns`` from now on (None or 0: at the clock's time again)."""
        self.at_ns = ts_ns or None

    def __call__(self, a: str, b: str) -> Decimal | None:
        o = self.book.rate(a, b, self.at_ns if self.at_ns is not None else self.clock.now_ns())
        return None if o is None else Decimal(repr(o.rate))


def fx_from_book(book: Any, clock: Clock) -> MarketTimeFx:
    """An :data:`FxProvider` over ``core.pricing.FxBook``: at the market time set with
    :meth:`MarketTimeFx.at` (the checker sets it from each pair's ``created_ns``), else the clock's."""
    return MarketTimeFx(book, clock)
