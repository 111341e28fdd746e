"""Venues, trading sessions, instruments, FX pairs and accounts.

All of these are configuration-grade data: frozen, strict, and validated on construction.
"""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import Enum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .contracts import ContractRules
from .errors import PriceError
from .units import Amount, Count, Dimension, Factor, NonNegAmount, dimension, normalise_currency, normalise_unit

FROZEN = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

PositiveDecimal = Factor      # multipliers, ticks, FX rates: finite, within units.MAX_FACTOR
NonNegDecimal = NonNegAmount  # fees per lot: finite, within units.MAX_AMOUNT
Rate = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]


def _hhmm(value: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day (HH:MM)") from None


class TradingSession(BaseModel):
    """One continuous trading window, in the venue's local time.

    ``night=True`` marks a session that belongs to the *next* trading day (Chinese night
    sessions, CME Globex from 18:00 ET): it opens on the evening before its trading day
    (see :attr:`Venue.night_anchor`) and may run past midnight. A gap between two sessions
    is a break (the 10:15-10:30 break, the lunch break).
    """

    model_config = FROZEN
    name: str = "day"
    start: str
    end: str
    night: bool = False

    @field_validator("start", "end")
    @classmethod
    def _check_time(cls, v: str) -> str:
        _hhmm(v)
        return v

    @property
    def start_time(self) -> dt.time:
        return _hhmm(self.start)

    @property
    def end_time(self) -> dt.time:
        return _hhmm(self.end)

    @model_validator(mode="after")
    def _check_order(self) -> "TradingSession":
        if self.start == self.end:
            raise ValueError(f"session {self.name!r}: start and end are both {self.start}")
        if not self.night and self.end_time < self.start_time:
            raise ValueError(
                f"session {self.name!r}: ends ({self.end}) before it starts ({self.start}); "
                "a session that crosses midnight must be marked night: true"
            )
        return self


class CalendarCoverage(BaseModel):
    """The range of days for which a venue's holiday list is complete, and what a day outside it is.

    ``start``..``end`` (inclusive): every holiday in it is listed (from the exchange's yearly
    notice, cited in ``source``). A day after ``end`` is never guessed: the venue counts as
    closed then (``core/calendar.py``) and a deployment that would run, replay or backtest on
    it refuses to start, naming the venue and this range. A day before ``start`` is what
    ``before`` says: ``refuse`` (the same as after ``end``) or ``weekends_only`` (history:
    every weekday is a trading day, holidays unknown; declared for replaying exchange data,
    which has no rows on the exchange's holidays).
    """

    model_config = FROZEN
    start: dt.date
    end: dt.date
    before: Literal["refuse", "weekends_only"] = "refuse"
    source: str = ""

    @model_validator(mode="after")
    def _check(self) -> "CalendarCoverage":
        if self.end < self.start:
            raise ValueError(f"calendar: end ({self.end}) is before start ({self.start})")
        return self

    def covers(self, day: dt.date) -> bool:
        """Whether ``day`` is in the listed range (holidays known)."""
        return self.start <= day <= self.end

    def describe(self) -> str:
        hist = "; before it weekdays only (holidays unknown)" if self.before == "weekends_only" else ""
        return f"{self.start.isoformat()} to {self.end.isoformat()}{hist}"


class Venue(BaseModel):
    """An exchange (or an OTC venue) with its calendar.

    Attributes
    ----------
    night_anchor
        Which evening a night session of trading day T opens on: ``previous_business_day``
        (Chinese exchanges: Friday night trades for Monday) or ``previous_calendar_day``
        (CME Globex: Sunday evening opens Monday).
    night_before_holiday
        Whether a night session runs when a holiday lies between it and its trading day.
        Chinese exchanges hold none then (no Friday night session before a Monday holiday).
    """

    model_config = FROZEN
    code: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{1,15}$")]
    name: str = ""
    timezone: str
    sessions: tuple[TradingSession, ...] = Field(min_length=1)
    weekdays: tuple[Annotated[int, Field(ge=0, le=6)], ...] = (0, 1, 2, 3, 4)
    holidays: tuple[dt.date, ...] = ()
    night_anchor: Literal["previous_business_day", "previous_calendar_day"] = "previous_business_day"
    night_before_holiday: bool = False
    offsets: Literal["none", "close", "today_yesterday"] = "none"
    """How orders say open or close (``core/positions.py``): ``none`` (a netting venue: no
    offset), ``close`` (OPEN or a plain CLOSE applied in ``close_order``: DCE, CZCE, CFFEX),
    ``today_yesterday`` (OPEN, CLOSE_TODAY, CLOSE_YESTERDAY: SHFE, INE)."""
    close_order: Literal["yesterday_first", "today_first"] = "yesterday_first"
    """Which lots a plain CLOSE takes first (``offsets: close``)."""
    margin_rule: Literal["gross", "larger_side", "net"] = "gross"
    """Margin of a position held long and short at once (a lock, 锁仓) at a two-sided venue
    (``core/capital.py``): ``gross`` charges both sides, ``larger_side`` only the larger side
    (单向大边), ``net`` the net. A netting venue holds only a net position: the rule changes
    nothing there. ``margin_source``: where the rule is documented."""
    margin_source: str = ""
    calendar: CalendarCoverage | None = None
    """The days ``holidays`` is complete for (None: not declared; a deployment that uses this
    venue's calendar refuses to start, see ``runtime/config.py``)."""
    source: str = ""

    @model_validator(mode="after")
    def _check_calendar(self) -> "Venue":
        if self.calendar is not None:
            out = sorted(d for d in self.holidays if not self.calendar.covers(d))
            if out:
                raise ValueError(f"holidays {', '.join(d.isoformat() for d in out[:3])}"
                                 f"{' ...' if len(out) > 3 else ''} lie outside calendar "
                                 f"{self.calendar.start}..{self.calendar.end}: widen the range or drop them")
        return self

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as 'Asia/Shanghai')") from None
        return v

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Fee(BaseModel):
    """A fee: ``per_lot`` (currency per lot) plus ``rate`` (a fraction of the turnover)."""

    model_config = FROZEN
    per_lot: Annotated[Decimal, Field(ge=0, le=Decimal("1e6"), allow_inf_nan=False)] = Decimal("0")
    rate: Annotated[Decimal, Field(ge=0, le=Decimal("0.1"), allow_inf_nan=False)] = Decimal("0")


class FeeSchedule(BaseModel):
    """A domestic contract's fees by offset: open, close (yesterday's lots), close-today
    (平今, often dearer; free on some contracts). ``source``: where the numbers come from."""

    model_config = FROZEN
    open: Fee = Fee()
    close: Fee = Fee()
    close_today: Fee = Fee()
    source: str = ""

    @property
    def close_today_dearer(self) -> bool:
        """Whether closing today's lots costs more than yesterday's (per lot, or per turnover)."""
        return (self.close_today.per_lot, self.close_today.rate) > (self.close.per_lot, self.close.rate)


class PriceLimitRule(BaseModel):
    """Daily price limit: a band of ``pct`` around the previous settlement, or none."""

    model_config = FROZEN
    kind: Literal["none", "percent"] = "none"
    pct: Rate | None = None

    @model_validator(mode="after")
    def _check(self) -> "PriceLimitRule":
        if self.kind == "percent" and (self.pct is None or self.pct <= 0):
            raise ValueError("a percent price-limit rule needs pct > 0")
        return self

    def band(self, reference: Decimal) -> tuple[Decimal, Decimal] | None:
        if self.kind == "none" or self.pct is None:
            return None
        return reference * (1 - self.pct), reference * (1 + self.pct)


class Instrument(BaseModel):
    """A tradeable contract.

    Prices are quoted in ``currency`` per ``price_unit``; one lot (``multiplier``) is
    ``multiplier`` price units (COMEX GC: 100 troy_oz; SHFE au: 1000 g; CFFEX IF: 300 pt at
    CNY per pt). Quantities in orders are in lots, a whole multiple of ``lot_size``.
    """

    model_config = FROZEN
    venue: str
    symbol: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,32}$")]
    name: str = ""
    currency: str
    price_unit: str
    multiplier: PositiveDecimal
    tick_size: PositiveDecimal
    lot_size: Count = 1
    min_qty: Count = 1
    max_qty: Count = 1000
    price_limit: PriceLimitRule = PriceLimitRule()
    margin_rate: Rate = Decimal("0.10")
    fee_per_lot: NonNegDecimal = Decimal("0")
    fee_rate: Rate = Decimal("0")
    fees: "FeeSchedule | None" = None  # by offset (open / close / close-today); replaces the two above
    sessions: tuple[TradingSession, ...] | None = None  # overrides the venue's (night hours differ by product)
    contract: "ContractRules | None" = None
    """On a futures *product* (``SHFE.cu``, ``COMEX.GC``: "the main contract of"): its contract
    months, expiry and deadline rules (``model/contracts.py``); ``core/contracts.py`` resolves the
    product to a concrete contract for a date. None: not a dated product (spot, or a contract)."""
    product: str | None = None
    """On a concrete contract (``SHFE.cu2602``): the symbol of its product (``cu``)."""
    source: str = ""

    @field_validator("currency")
    @classmethod
    def _ccy(cls, v: str) -> str:
        return normalise_currency(v)

    @field_validator("price_unit")
    @classmethod
    def _unit(cls, v: str) -> str:
        return normalise_unit(v)

    @model_validator(mode="after")
    def _check_qty(self) -> "Instrument":
        if self.min_qty > self.max_qty:
            raise ValueError(f"min_qty ({self.min_qty}) is above max_qty ({self.max_qty})")
        return self

    @property
    def id(self) -> str:
        return f"{self.venue}.{self.symbol}"

    @property
    def dimension(self) -> Dimension:
        return dimension(self.price_unit)

    # -- tick grid ------------------------------------------------------------------------
    def round_price(self, price: Decimal | float | str, mode: Literal["nearest", "down", "up"] = "nearest") -> Decimal:
        """Snap ``price`` to the tick grid. ``down``/``up`` are toward -inf/+inf."""
        p = price if isinstance(price, Decimal) else Decimal(str(price))
        if not p.is_finite():
            raise PriceError(f"{self.id}: price {price!r} is not finite")
        rounding = {"nearest": ROUND_HALF_EVEN, "down": ROUND_FLOOR, "up": ROUND_CEILING}[mode]
        ticks = (p / self.tick_size).to_integral_value(rounding=rounding)
        return (ticks * self.tick_size).quantize(self.tick_size)

    def on_grid(self, price: Decimal) -> bool:
        return price.is_finite() and (price / self.tick_size) == (price / self.tick_size).to_integral_value()

    def to_ticks(self, price: Decimal) -> int:
        if not self.on_grid(price):
            raise PriceError(f"{self.id}: price {price} is not a multiple of the tick {self.tick_size}")
        return int(price / self.tick_size)

    def from_ticks(self, ticks: int) -> Decimal:
        return (self.tick_size * ticks).quantize(self.tick_size)

    def notional(self, price: Decimal, qty: int) -> Decimal:
        """Contract value in ``currency``: price x multiplier x lots."""
        return price * self.multiplier * qty

    def fee(self, price: Decimal, qty: int, offset: str | None = None) -> Decimal:
        """The venue's fee for ``qty`` lots at ``price`` (``currency``): by the order's offset
        (``OPEN``, ``CLOSE``, ``CLOSE_TODAY``, ``CLOSE_YESTERDAY``: a close of yesterday's lots
        pays the close fee) when the instrument has a schedule, else ``fee_per_lot`` and
        ``fee_rate``."""
        if self.fees is not None:
            f = self.fees.close_today if offset == "CLOSE_TODAY" else (
                self.fees.close if offset in ("CLOSE", "CLOSE_YESTERDAY") else self.fees.open)
            return f.per_lot * qty + f.rate * self.notional(price, qty)
        return self.fee_per_lot * qty + self.fee_rate * self.notional(price, qty)

    def round_qty_down(self, qty: float | int) -> int:
        """Largest whole multiple of ``lot_size`` not above ``qty`` (never negative)."""
        q = int(qty // self.lot_size) * self.lot_size
        return max(q, 0)


class FxPair(BaseModel):
    """An FX rate source: ``quote`` currency units per one ``base`` (USDCNY: CNY per USD)."""

    model_config = FROZEN
    base: str
    quote: str
    source: str = "static"
    rate: PositiveDecimal | None = None
    file: str | None = None
    max_lag_days: Annotated[int, Field(ge=0, le=3660)] | None = None
    """A file source: how many calendar days back a date without a row may take the latest row
    (None: the deployment default, ``feeds.fx.DEFAULT_FX_MAX_LAG_DAYS``, 0: a date without a row
    gives no rate). Looked up at the market time of the data, not the wall clock."""

    @field_validator("base", "quote")
    @classmethod
    def _ccy(cls, v: str) -> str:
        return normalise_currency(v)

    @model_validator(mode="after")
    def _check(self) -> "FxPair":
        if self.base == self.quote:
            raise ValueError(f"FX pair {self.base}{self.quote}: base and quote are the same currency")
        if self.source == "static" and self.rate is None:
            raise ValueError(f"FX pair {self.id}: a static source needs a rate")
        if self.source == "file" and not self.file:
            raise ValueError(f"FX pair {self.id}: a file source needs file")
        return self

    @property
    def id(self) -> str:
        return f"{self.base}{self.quote}"


class SecretRef(BaseModel):
    """A credential held in an environment variable. Its value is never printed or stored."""

    model_config = FROZEN
    env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]

    def resolve(self) -> str:
        import os

        try:
            return os.environ[self.env]
        except KeyError:
            raise KeyError(f"environment variable {self.env} (a credential) is not set") from None

    def __repr__(self) -> str:
        return f"SecretRef(env={self.env!r})"

    __str__ = __repr__


class Account(BaseModel):
    """A trading account at a broker or venue, in one currency."""

    model_config = FROZEN
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,40}$")]
    broker: str
    venues: tuple[str, ...] = Field(min_length=1)
    currency: str
    capital: Amount
    credentials: dict[str, SecretRef] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _ccy(cls, v: str) -> str:
        return normalise_currency(v)

    @field_validator("credentials", mode="before")
    @classmethod
    def _only_env(cls, v: object) -> object:
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(item, (dict, SecretRef)):
                    raise ValueError(
                        f"credential {k!r} must reference an environment variable ({{env: NAME}}), "
                        "never a literal value"
                    )
        return v


class Side(str, Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> "Side":
        return Side.SELL if self is Side.BUY else Side.BUY
