"""The contract between the risk guard and the coordinators' pre-trade checkers: the grant
(:class:`RiskGrant`) and its acknowledgement (:class:`GrantAck`), denial codes, scope and pool
keys, the order of trading states, and the FX and reference-price provider types.

Split out of ``core/risk_rules.py`` (which re-exports every name here) by concern.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from ..model.market import Side
from ..model.risk import RiskConfig, TradingState
from .pretrade import Denial



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
