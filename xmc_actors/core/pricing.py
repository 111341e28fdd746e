"""The parity engine (对价): two legs' quotes expressed in common terms, with FX and costs.

Given the two legs' :class:`~xmc_actors.model.market.Instrument`, an FX rate source and the
latest quotes, :class:`ParityEngine` computes leg B's price in leg A's terms (currency and
price unit; or both legs in a common base), then the **spread** (A - B) and the **ratio**
(A / B), three ways:

- ``mid``: both mids, no fees (the reference value, e.g. for a z-score window);
- ``buy_a``: what "buy A / sell B" trades at: A at its ask, B at its bid (对价), with costs
  folded against us (the bought leg dearer by fees + financing, the sold leg cheaper by fees);
- ``sell_a``: "sell A / buy B": A at its bid, B at its ask, costs folded the same way.

In ``price="mid"`` mode the two directional values use mids instead of bid/ask (still with
costs). A VAT or import-tax factor is a parity adjustment, not a cost: the leg *without* the
tax is grossed up by the factor (``vat_leg="A"`` means leg A's price includes the tax, so leg B
is multiplied by the factor), in all three values.

FX comes from an :class:`FxBook`: per currency pair a static rate, a daily series (the FRED
``DEXCHUS`` file) or live FX quotes, with inversion and crossing through a pivot currency.
A date where the series has no row gives *no* rate, hence no parity: never a signal computed
from yesterday's FX without saying so (``max_lag_days`` allows it explicitly).

Signals are floats (they are compared with bands); prices that go into orders are Decimals on
the tick grid (see :mod:`xmc_actors.strategies.base`).

Sizing: :func:`size_pair` turns leg-A lots into whole leg-B lots as close as possible to the
hedge ratio and reports the residual mismatch; :func:`resolve_hedge_ratio` computes ``auto``
with :func:`xmc_actors.model.units.auto_hedge_ratio` (COMEX GC 100 oz vs SHFE au 1000 g:
3.11 au lots per GC lot).
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum
from typing import Any, Literal, Mapping, NamedTuple, Protocol, Sequence
from zoneinfo import ZoneInfo

from ..model.errors import CurrencyError, XmcError
from ..model.market import Instrument
from ..model.quotes import Quote, QuoteStatus
from ..model.units import auto_hedge_ratio, normalise_currency, normalise_unit, unit_factor

_NS_PER_DAY = 86_400 * 1_000_000_000


# =========================================================================== FX
class FxObservation(NamedTuple):
    """An FX rate: ``rate`` units of the quote currency per one base-currency unit."""

    rate: float
    ts_ns: int
    source: str


class RateProvider(Protocol):
    """One currency pair's rate over time (``quote`` per ``base``)."""

    def at(self, ts_ns: int) -> FxObservation | None:  # pragma: no cover - protocol
        ...


@dataclass(frozen=True, slots=True)
class StaticRate:
    """A fixed rate (configuration, or a test)."""

    rate: float
    source: str = "static"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise CurrencyError(f"static FX rate must be positive and finite, got {self.rate!r}")

    def at(self, ts_ns: int) -> FxObservation:
        return FxObservation(self.rate, ts_ns, self.source)


class DailySeries:
    """A daily fixing series, looked up by the date of ``ts_ns`` in ``tz``.

    With ``max_lag_days=0`` (the default) a date without a row (a US holiday in the FRED
    series) has no rate, so no parity and no signal that day. ``max_lag_days=n`` accepts the
    latest row at most ``n`` calendar days before.
    """

    __slots__ = ("rows", "tz", "max_lag_days", "source", "first", "last")

    def __init__(self, rows: Mapping[dt.date, float], *, tz: str = "UTC", max_lag_days: int = 0,
                 source: str = "daily") -> None:
        if max_lag_days < 0:
            raise ValueError(f"max_lag_days must be >= 0, got {max_lag_days}")
        bad = [(d, r) for d, r in rows.items() if not (math.isfinite(r) and r > 0)]
        if bad:
            raise CurrencyError(f"{source}: FX rates must be positive and finite; first bad row {bad[0][0]}: {bad[0][1]!r}")
        self.rows = dict(rows)
        self.tz = ZoneInfo(tz)
        self.max_lag_days = max_lag_days
        self.source = source
        self.first = min(self.rows) if self.rows else None
        self.last = max(self.rows) if self.rows else None

    def at(self, ts_ns: int) -> FxObservation | None:
        day = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=self.tz).date()
        for lag in range(self.max_lag_days + 1):
            d = day - dt.timedelta(days=lag)
            r = self.rows.get(d)
            if r is not None:
                stamp = int(dt.datetime.combine(d, dt.time(), self.tz).timestamp()) * 1_000_000_000
                return FxObservation(r, stamp, f"{self.source}:{d.isoformat()}")
        return None


class LiveRate:
    """The latest FX quote (mid), usable while younger than ``max_age_ms``."""

    __slots__ = ("rate", "ts_ns", "max_age_ns", "source")

    def __init__(self, *, max_age_ms: int = 60_000, source: str = "live") -> None:
        self.rate: float | None = None
        self.ts_ns = 0
        self.max_age_ns = int(max_age_ms) * 1_000_000
        self.source = source

    def update(self, rate: float, ts_ns: int) -> None:
        """Record a new rate; a non-positive or non-finite rate is refused with a clear error."""
        if not (math.isfinite(rate) and rate > 0):
            raise CurrencyError(f"{self.source}: FX rate must be positive and finite, got {rate!r}")
        if ts_ns >= self.ts_ns:
            self.rate, self.ts_ns = float(rate), int(ts_ns)

    def at(self, ts_ns: int) -> FxObservation | None:
        if self.rate is None or ts_ns - self.ts_ns > self.max_age_ns:
            return None
        return FxObservation(self.rate, self.ts_ns, self.source)


class FxBook:
    """Rates by currency pair, with inversion and one cross through ``pivot``.

    Parameters
    ----------
    providers
        ``{("USD", "CNY"): provider}``: the provider gives CNY per USD.
    pivot
        Currency used to cross two pairs when no direct or inverse pair exists (``USD``).
    """

    def __init__(self, providers: Mapping[tuple[str, str], RateProvider] | None = None, *, pivot: str = "USD") -> None:
        self.providers: dict[tuple[str, str], RateProvider] = {}
        for (b, q), p in (providers or {}).items():
            self.add(b, q, p)
        self.pivot = normalise_currency(pivot)

    def add(self, base: str, quote: str, provider: RateProvider) -> None:
        b, q = normalise_currency(base), normalise_currency(quote)
        if b == q:
            raise CurrencyError(f"FX pair {b}{q}: base and quote are the same currency")
        self.providers[(b, q)] = provider

    def update(self, base: str, quote: str, rate: float, ts_ns: int) -> None:
        """Feed a live rate (``quote`` per ``base``) to the pair's :class:`LiveRate`."""
        p = self.providers.get((base, quote))
        if p is None:
            p = LiveRate(source=f"live:{base}{quote}")
            self.add(base, quote, p)
        if not isinstance(p, LiveRate):
            raise CurrencyError(f"FX pair {base}{quote} is not a live source ({type(p).__name__})")
        p.update(rate, ts_ns)

    def _one(self, base: str, quote: str, ts_ns: int) -> FxObservation | None:
        p = self.providers.get((base, quote))
        if p is not None:
            return p.at(ts_ns)
        p = self.providers.get((quote, base))
        if p is not None:
            o = p.at(ts_ns)
            return None if o is None else FxObservation(1.0 / o.rate, o.ts_ns, o.source + " (inverted)")
        return None

    def rate(self, base: str, quote: str, ts_ns: int) -> FxObservation | None:
        """Units of ``quote`` per one ``base`` at ``ts_ns``, or None when no usable rate exists."""
        if base == quote:
            return FxObservation(1.0, ts_ns, "identity")
        o = self._one(base, quote, ts_ns)
        if o is not None or self.pivot in (base, quote):
            return o
        o1, o2 = self._one(base, self.pivot, ts_ns), self._one(self.pivot, quote, ts_ns)
        if o1 is None or o2 is None:
            return None
        return FxObservation(o1.rate * o2.rate, min(o1.ts_ns, o2.ts_ns), f"{o1.source} x {o2.source}")

    def rate_value(self, base: str, quote: str, ts_ns: int) -> float | None:
        """``rate(base, quote, ts_ns).rate``, or None when there is no usable rate: without the
        observation objects (and the inverted one's source text) for a fixed rate, direct or
        inverted, which the risk guard asks for several times a tick."""
        if base != quote:
            p = self.providers.get((base, quote))
            if type(p) is StaticRate:
                return p.rate
            if p is None:
                p = self.providers.get((quote, base))
                if type(p) is StaticRate:
                    return 1.0 / p.rate
        o = self.rate(base, quote, ts_ns)
        return None if o is None else o.rate

    def has_path(self, base: str, quote: str) -> bool:
        pairs = set(self.providers) | {(q, b) for b, q in self.providers}
        return base == quote or (base, quote) in pairs or ((base, self.pivot) in pairs and (self.pivot, quote) in pairs)


# =========================================================================== parity
class Direction(str, Enum):
    """The two ways to put a pair on. Position sign: BUY_A is +, SELL_A is -."""

    BUY_A = "BUY_A"    # buy leg A, sell leg B
    SELL_A = "SELL_A"  # sell leg A, buy leg B


class ParityUnavailable(XmcError):
    """No parity can be computed now (missing side, no FX row, bad price): no signal."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class CostModel:
    """Costs folded into the directional values (fractions, not bps)."""

    fee: float = 0.0         # per leg, on each side
    financing: float = 0.0   # on the bought leg, for the expected holding period
    vat_factor: float = 1.0
    vat_leg: Literal["A", "B"] = "A"
    venue_fees: bool = True  # add each leg's exchange fee to open (Instrument.fees) on top of ``fee``

    @classmethod
    def from_params(cls, costs: Any | None) -> "CostModel":
        """From :class:`xmc_actors.strategies.params.Costs` (or anything with its fields)."""
        if costs is None:
            return cls()
        return cls(fee=costs.fee_bps / 1e4, financing=costs.financing_bps_per_day * costs.holding_days / 1e4,
                   vat_factor=costs.vat_factor, vat_leg=costs.vat_leg,
                   venue_fees=bool(getattr(costs, "venue_fees", True)))


def _open_fee(inst: Instrument) -> tuple[float, float]:
    """(rate, per lot / multiplier) of the instrument's fee to open a position (its schedule's
    ``open``, else ``fee_rate``/``fee_per_lot``): the fraction at price P is ``rate + k / P``."""
    if inst.fees is not None:
        f = inst.fees.open
        return float(f.rate), float(f.per_lot / inst.multiplier)
    return float(inst.fee_rate), float(inst.fee_per_lot / inst.multiplier)


@dataclass(frozen=True, slots=True)
class Parity:
    """Both legs in common terms at one instant. Prices are per ``unit`` in ``currency``.

    ``a_*`` / ``b_*`` are the prices used (after conversion, VAT and costs) for each value;
    ``spread = a - b``, ``ratio = a / b``.
    """

    ts_ns: int
    currency: str
    unit: str
    fx: float
    fx_source: str
    a_mid: float
    b_mid: float
    a_buy: float    # BUY_A: A's ask (+costs)
    b_buy: float    # BUY_A: B's bid (-fees)
    a_sell: float   # SELL_A: A's bid (-fees)
    b_sell: float   # SELL_A: B's ask (+costs)

    @property
    def mid_spread(self) -> float:
        return self.a_mid - self.b_mid

    @property
    def mid_ratio(self) -> float:
        return self.a_mid / self.b_mid

    def value(self, signal: Literal["spread", "ratio"], side: Literal["mid", "buy_a", "sell_a"]) -> float:
        """The spread or ratio for ``side`` (``mid``, or the direction's executable prices)."""
        if side == "mid":  # plain branches: strategies ask three times per quote
            a, b = self.a_mid, self.b_mid
        elif side == "buy_a":
            a, b = self.a_buy, self.b_buy
        elif side == "sell_a":
            a, b = self.a_sell, self.b_sell
        else:
            raise KeyError(side)
        return a - b if signal == "spread" else a / b

    def values(self, signal: Literal["spread", "ratio"]) -> tuple[float, float, float]:
        """``(value(signal, "sell_a"), value(signal, "buy_a"), value(signal, "mid"))`` in one
        call (a band strategy reads the three on every quote)."""
        if signal == "spread":
            return self.a_sell - self.b_sell, self.a_buy - self.b_buy, self.a_mid - self.b_mid
        return self.a_sell / self.b_sell, self.a_buy / self.b_buy, self.a_mid / self.b_mid

    def payload(self) -> dict[str, Any]:
        """The numbers for a SIGNAL event (plain floats and strings)."""
        return {"terms": f"{self.currency}/{self.unit}", "fx": self.fx, "fx_source": self.fx_source,
                "a_mid": self.a_mid, "b_mid": self.b_mid, "a_buy": self.a_buy, "b_buy": self.b_buy,
                "a_sell": self.a_sell, "b_sell": self.b_sell}


class ParityEngine:
    """Computes :class:`Parity` for one pair of instruments.

    Parameters
    ----------
    a, b
        The legs. Their price units must share a dimension.
    fx
        Where FX rates come from.
    costs
        Fees, VAT factor, financing (:class:`CostModel`).
    price
        ``executable`` (对价: bid/ask) or ``mid`` for the directional values.
    terms
        ``(currency, unit)`` to express both legs in; default leg A's own terms.
    """

    def __init__(self, a: Instrument, b: Instrument, fx: FxBook, costs: CostModel | None = None,
                 price: Literal["mid", "executable"] = "executable", terms: tuple[str, str] | None = None) -> None:
        self.a, self.b, self.fx = a, b, fx
        self.costs = costs or CostModel()
        self.price = price
        ccy, unit = terms if terms is not None else (a.currency, a.price_unit)
        self.currency, self.unit = normalise_currency(ccy), normalise_unit(unit)
        # price per from_unit x unit_factor(from, to) = price per to_unit (raises on mixed dimensions)
        self._ua = float(unit_factor(a.price_unit, self.unit))
        self._ub = float(unit_factor(b.price_unit, self.unit))
        # each leg's last quote and its float sides: one leg changes per quote, so the other's
        # Decimal-to-float conversion and checks are not done again
        self._last_a: tuple[Quote, float, float] | None = None
        self._last_b: tuple[Quote, float, float] | None = None
        # the venues' own fees by leg (the trigger pays them too): (rate, per-lot part per price unit)
        self._fee_a = _open_fee(a) if self.costs.venue_fees else (0.0, 0.0)
        self._fee_b = _open_fee(b) if self.costs.venue_fees else (0.0, 0.0)
        # a leg already in the terms' currency: FxBook.rate answers 1.0 ("identity") at any time
        self._same_a = type(fx) is FxBook and a.currency == self.currency
        self._same_b = type(fx) is FxBook and b.currency == self.currency
        # what compute reads on every quote, taken once (the same values, the same arithmetic)
        self._ccy_a, self._ccy_b = a.currency, b.currency
        self._show_a_source = b.currency == self.currency  # the FX source shown is A's when B is in terms
        self._mid = price == "mid"
        self._up_a, self._down_a = self._fee_factors(self._fee_a)
        self._up_b, self._down_b = self._fee_factors(self._fee_b)

    def _fee_factors(self, fee: tuple[float, float]) -> tuple[float | None, float | None]:
        """``(1 + fee + exchange fee + financing, 1 - fee - exchange fee)`` of a leg whose
        exchange fee is a rate only (the same whatever the price); ``(None, None)`` for one with
        a per-lot part (its fraction depends on the price: :meth:`compute` works it out)."""
        if fee[1]:
            return None, None
        c, f = self.costs, fee[0] + 0.0
        return 1.0 + c.fee + f + c.financing, 1.0 - c.fee - f

    def _fx(self, ccy: str, ts_ns: int) -> FxObservation | StaticRate:
        """The rate of ``ccy`` in the terms' currency at ``ts_ns`` (only ``rate`` and ``source``
        are read)."""
        fx = self.fx
        if type(fx) is FxBook and ccy != self.currency:
            p = fx.providers.get((ccy, self.currency))
            if type(p) is StaticRate:  # what FxBook.rate would answer, without an observation per quote
                return p
        o = fx.rate(ccy, self.currency, ts_ns)
        if o is None:
            raise ParityUnavailable(f"no FX rate {ccy}->{self.currency} at {_iso(ts_ns)}")
        return o

    def compute(self, qa: Quote, qb: Quote, ts_ns: int | None = None) -> Parity:
        """Parity from the two legs' quotes; FX looked up at ``ts_ns`` (default: the later quote).

        Raises
        ------
        ParityUnavailable
            A one-sided or non-positive book, or no FX rate at that time.
        """
        if ts_ns is None:
            t, tb = qa.ts_ns, qb.ts_ns
            if tb > t:
                t = tb
        else:
            t = ts_ns
        la = self._last_a
        if la is not None and la[0] is qa:
            a_bid, a_ask = la[1], la[2]
        else:
            a_bid, a_ask = _sides(qa)
            self._last_a = (qa, a_bid, a_ask)
        lb = self._last_b
        if lb is not None and lb[0] is qb:
            b_bid, b_ask = lb[1], lb[2]
        else:
            b_bid, b_ask = _sides(qb)
            self._last_b = (qb, b_bid, b_ask)
        fa = _IDENTITY if self._same_a else self._fx(self._ccy_a, t)
        fb = _IDENTITY if self._same_b else self._fx(self._ccy_b, t)
        native_a, native_b = (a_bid + a_ask) / 2, (b_bid + b_ask) / 2  # in each leg's own price terms
        ka, kb = self._ua * fa.rate, self._ub * fb.rate
        a_bid, a_ask, b_bid, b_ask = a_bid * ka, a_ask * ka, b_bid * kb, b_ask * kb
        c = self.costs
        if c.vat_factor != 1.0:
            if c.vat_leg == "A":
                b_bid, b_ask = b_bid * c.vat_factor, b_ask * c.vat_factor
            else:
                a_bid, a_ask = a_bid * c.vat_factor, a_ask * c.vat_factor
        a_mid, b_mid = (a_bid + a_ask) / 2, (b_bid + b_ask) / 2
        if self._mid:
            a_bid = a_ask = a_mid
            b_bid = b_ask = b_mid
        # each leg's exchange fee to open, as a fraction of its price (a per-lot fee at this price)
        up_a, down_a = self._up_a, self._down_a
        if up_a is None:
            fa_ = self._fee_a[0] + self._fee_a[1] / native_a
            up_a, down_a = 1.0 + c.fee + fa_ + c.financing, 1.0 - c.fee - fa_
        up_b, down_b = self._up_b, self._down_b
        if up_b is None:
            fb_ = self._fee_b[0] + self._fee_b[1] / native_b
            up_b, down_b = 1.0 + c.fee + fb_ + c.financing, 1.0 - c.fee - fb_
        # the FX that matters to a reader: B's currency in A's (e.g. CNY per USD)
        fx_show = fb.rate / fa.rate
        src = fa.source if self._show_a_source else fb.source
        return _new_parity(t, self.currency, self.unit, fx_show, src, a_mid, b_mid, a_ask * up_a, b_bid * down_b,
                           a_bid * down_a, b_ask * up_b)


_PARITY_FIELDS = ("ts_ns", "currency", "unit", "fx", "fx_source", "a_mid", "b_mid", "a_buy", "b_buy", "a_sell", "b_sell")
# a field added to Parity must be added here too (and to _new_parity): fail at import, not with a half-made parity
if tuple(f.name for f in fields(Parity)) != _PARITY_FIELDS:  # pragma: no cover - a developer's slip
    raise ImportError("Parity's fields changed: update _PARITY_FIELDS and _new_parity")


class _ParityDraft:
    """A :class:`Parity` being made: the same slots (so the same memory layout), writable. Its
    fields are written as plain attributes, then the object becomes a ``Parity`` (``__class__``
    assignment between two classes of identical slots): about 0.3 us where a frozen dataclass's
    ``__init__`` (``object.__setattr__`` per field) takes about 1.2 us and writing its slots
    through their descriptors about 0.8 us, once per quote of every strategy."""

    __slots__ = Parity.__slots__


def _new_parity(ts_ns: int, currency: str, unit: str, fx: float, fx_source: str, a_mid: float, b_mid: float,
                a_buy: float, b_buy: float, a_sell: float, b_sell: float) -> Parity:
    """``Parity(...)`` with the same fields (see :class:`_ParityDraft`). Same type, same
    equality, frozen as any other."""
    p = _ParityDraft()
    p.ts_ns = ts_ns; p.currency = currency; p.unit = unit; p.fx = fx; p.fx_source = fx_source  # noqa: E702
    p.a_mid = a_mid; p.b_mid = b_mid; p.a_buy = a_buy; p.b_buy = b_buy; p.a_sell = a_sell  # noqa: E702
    p.b_sell = b_sell
    p.__class__ = Parity  # type: ignore[assignment]
    return p  # type: ignore[return-value]


_probe = tuple(range(len(_PARITY_FIELDS)))
if _new_parity(*_probe) != Parity(*_probe) or type(_new_parity(*_probe)) is not Parity:  # pragma: no cover
    raise ImportError("_new_parity does not make the Parity(...) of the same fields: update it")
del _probe


_INF = float("inf")
#: what FxBook.rate answers for a currency in itself (only its rate and source are read here)
_IDENTITY = FxObservation(1.0, 0, "identity")


def _sides(q: Quote) -> tuple[float, float]:
    b, a = q.bid, q.ask
    if b is None or a is None:
        raise ParityUnavailable(f"{q.instrument}: one-sided book (bid={q.bid}, ask={q.ask})")
    bid, ask = float(b), float(a)
    if 0.0 < bid <= ask < _INF:  # every quote a strategy can use: positive, finite, not crossed (NaN fails)
        return bid, ask
    if not (bid > 0 and ask > 0 and math.isfinite(bid) and math.isfinite(ask)):
        raise ParityUnavailable(f"{q.instrument}: non-positive price (bid={q.bid}, ask={q.ask})")
    if bid > ask:
        raise ParityUnavailable(f"{q.instrument}: crossed book (bid {q.bid} > ask {q.ask})")
    return bid, ask


def _iso(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.timezone.utc).isoformat(timespec="seconds")


def quote_is_stale(q: Quote, now_ns: int, stale_ms: int) -> bool:
    """A quote flagged STALE by its gateway, or older (calibrated time) than ``stale_ms``."""
    return q.status is QuoteStatus.STALE or now_ns - q.ts_ns > stale_ms * 1_000_000


# =========================================================================== sizing
@dataclass(frozen=True, slots=True)
class PairSizing:
    """Whole-lot quantities of a pair and how far they are from the hedge ratio.

    ``residual_b_lots = qty_b - qty_a * hedge_ratio`` (positive: leg B over-hedges);
    ``residual_pct`` is that over the ideal leg-B quantity, in percent.
    """

    qty_a: int
    qty_b: int
    ideal_b: float
    residual_b_lots: float
    residual_pct: float


def resolve_hedge_ratio(spec: Decimal | str, a: Instrument, b: Instrument) -> Decimal:
    """``auto`` -> leg-B lots per leg-A lot carrying the same goods; a number is returned as is."""
    if isinstance(spec, str):
        if spec != "auto":
            raise ValueError(f"hedge_ratio: expected a positive number or 'auto', got {spec!r}")
        return auto_hedge_ratio(a.multiplier, a.price_unit, b.multiplier, b.price_unit)
    return spec


def hedge_lots(qty_a: int, hedge_ratio: Decimal, b: Instrument) -> int:
    """The whole leg-B lots (a multiple of B's lot size) nearest to ``|qty_a| * hedge_ratio``
    (half to even); 0 when that rounds to nothing."""
    lots = (Decimal(abs(qty_a)) * hedge_ratio / b.lot_size).to_integral_value(rounding=ROUND_HALF_EVEN)
    return int(lots) * b.lot_size


def size_pair(qty_a: int, hedge_ratio: Decimal | float, a: Instrument, b: Instrument) -> PairSizing:
    """Leg-A lots -> whole leg-B lots nearest to ``qty_a * hedge_ratio`` (multiples of lot sizes).

    Raises
    ------
    ValueError
        ``qty_a`` is not a positive multiple of A's lot size, or leg B rounds to zero lots
        (the message gives the smallest leg-A quantity that hedges at least one B lot).
    """
    if qty_a <= 0 or qty_a % a.lot_size:
        raise ValueError(f"qty_a: {qty_a} is not a positive multiple of {a.id}'s lot size {a.lot_size}")
    hr = Decimal(str(hedge_ratio)) if not isinstance(hedge_ratio, Decimal) else hedge_ratio
    ideal = Decimal(qty_a) * hr
    qty_b = hedge_lots(qty_a, hr, b)
    if qty_b <= 0:
        need = math.ceil(float(Decimal(b.lot_size) / 2 / hr) + 1e-12)
        need = ((need + a.lot_size - 1) // a.lot_size) * a.lot_size
        raise ValueError(
            f"{qty_a} lot(s) of {a.id} hedge {float(ideal):.4f} lot(s) of {b.id}, which rounds to 0; "
            f"trade at least {need} lot(s) of {a.id} (hedge ratio {float(hr):.4f})")
    res = float(Decimal(qty_b) - ideal)
    return PairSizing(qty_a, qty_b, float(ideal), res, 100.0 * res / float(ideal))


__all__ = [
    "FxObservation", "RateProvider", "StaticRate", "DailySeries", "LiveRate", "FxBook",
    "Direction", "ParityUnavailable", "CostModel", "Parity", "ParityEngine",
    "quote_is_stale", "PairSizing", "resolve_hedge_ratio", "hedge_lots", "size_pair",
]
