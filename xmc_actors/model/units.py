"""Units, currencies and price normalisation.

A price is "currency C per unit U" (USD per troy ounce, CNY per gram, HKD per index point).
:func:`convert_price` turns it into "C' per U'" with an FX rate, and refuses anything that
mixes dimensions (a price per barrel cannot become a price per tonne).

Conversion factors are exact definitions: 1 troy ounce = 31.1034768 g, 1 lb = 453.59237 g
(international avoirdupois pound, 1959), 1 t = 1,000,000 g.
"""
from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Annotated, Final

from pydantic import AfterValidator, Field

from .errors import CurrencyError, UnitError


class Dimension(str, Enum):
    MASS = "mass"
    VOLUME = "volume"
    INDEX = "index"
    SHARES = "shares"


# unit code -> (dimension, size in the dimension's base unit: gram, barrel, point, share)
_UNITS: Final[dict[str, tuple[Dimension, Decimal]]] = {
    "g": (Dimension.MASS, Decimal("1")),
    "kg": (Dimension.MASS, Decimal("1000")),
    "t": (Dimension.MASS, Decimal("1000000")),
    "troy_oz": (Dimension.MASS, Decimal("31.1034768")),
    "lb": (Dimension.MASS, Decimal("453.59237")),
    "bbl": (Dimension.VOLUME, Decimal("1")),
    "pt": (Dimension.INDEX, Decimal("1")),
    "share": (Dimension.SHARES, Decimal("1")),
}

#: Aliases accepted on input; normalised to the codes above.
UNIT_ALIASES: Final[dict[str, str]] = {
    "gram": "g", "grams": "g", "kilogram": "kg", "tonne": "t", "ton": "t", "mt": "t",
    "oz": "troy_oz", "ozt": "troy_oz", "troy ounce": "troy_oz", "troy_ounce": "troy_oz",
    "pound": "lb", "lbs": "lb", "barrel": "bbl", "point": "pt", "points": "pt",
    "index_point": "pt", "shares": "share",
}

#: ISO 4217 codes the product knows (CNH is offshore renminbi, quoted separately from CNY).
CURRENCIES: Final[frozenset[str]] = frozenset(
    {"CNY", "CNH", "USD", "HKD", "GBP", "EUR", "JPY", "SGD"}
)

TROY_OUNCE_G: Final[Decimal] = _UNITS["troy_oz"][1]


def normalise_unit(unit: str) -> str:
    """Return the canonical code of ``unit`` or raise :class:`UnitError`."""
    key = unit.strip()
    key = UNIT_ALIASES.get(key.lower(), key)
    if key not in _UNITS:
        known = ", ".join(sorted(_UNITS))
        raise UnitError(f"unknown unit {unit!r} (known: {known})")
    return key


def normalise_currency(ccy: str) -> str:
    """Return the upper-case ISO code of ``ccy`` or raise :class:`CurrencyError`."""
    code = ccy.strip().upper()
    if code not in CURRENCIES:
        raise CurrencyError(f"unknown currency {ccy!r} (known: {', '.join(sorted(CURRENCIES))})")
    return code


def dimension(unit: str) -> Dimension:
    return _UNITS[normalise_unit(unit)][0]


def unit_factor(from_unit: str, to_unit: str) -> Decimal:
    """How many ``from_unit`` make one ``to_unit`` (e.g. g -> troy_oz: 31.1034768).

    A price per ``from_unit`` times this factor is the price per ``to_unit``.
    """
    fu, tu = normalise_unit(from_unit), normalise_unit(to_unit)
    fd, fs = _UNITS[fu]
    td, ts = _UNITS[tu]
    if fd is not td:
        raise UnitError(f"cannot convert {fu} ({fd.value}) to {tu} ({td.value}): incompatible dimensions")
    return ts / fs


def convert_quantity(qty: Decimal | float, from_unit: str, to_unit: str) -> Decimal:
    """Convert an amount of goods (not a price) between units of one dimension."""
    return Decimal(str(qty)) / unit_factor(from_unit, to_unit)


def auto_hedge_ratio(a_mult: Decimal, a_unit: str, b_mult: Decimal, b_unit: str) -> Decimal:
    """Leg-B lots per leg-A lot that carry the same quantity of goods (or index exposure).

    One A lot is ``a_mult`` ``a_unit``; in ``b_unit`` that is ``a_mult / unit_factor(a_unit, b_unit)``;
    divided by B's multiplier it is B lots (COMEX GC 100 troy_oz vs SHFE au 1000 g: 3.11).
    """
    return a_mult / unit_factor(a_unit, b_unit) / b_mult


def convert_price(
    price: Decimal | float,
    *,
    from_ccy: str,
    from_unit: str,
    to_ccy: str,
    to_unit: str,
    fx: Decimal | float | None = None,
) -> Decimal:
    """Normalise ``price`` (from_ccy per from_unit) to to_ccy per to_unit.

    ``fx`` is the number of ``to_ccy`` for one ``from_ccy`` (for CNY -> USD with USDCNY = 7.1,
    pass ``1/7.1``; :class:`FxRate.rate_for` does that). It is required when the currencies
    differ and must be positive and finite.

    Examples
    --------
    SGE Au99.99 at 560 CNY/g with USDCNY 7.1 is 560 * 31.1034768 / 7.1 USD/oz.
    """
    fc, tc = normalise_currency(from_ccy), normalise_currency(to_ccy)
    p = price if isinstance(price, Decimal) else Decimal(repr(float(price)))
    if not p.is_finite():
        raise UnitError(f"price {price!r} is not finite")
    out = p * unit_factor(from_unit, to_unit)
    if fc != tc:
        if fx is None:
            raise CurrencyError(f"an FX rate {fc}->{tc} is needed to convert the price")
        rate = fx if isinstance(fx, Decimal) else Decimal(repr(float(fx)))
        if not rate.is_finite() or rate <= 0:
            raise CurrencyError(f"FX rate {fc}->{tc} must be positive and finite, got {fx!r}")
        out = out * rate
    return out


# --------------------------------------------------------------------------- configured numbers
# Bounds of the numbers a configuration gives: finite, and far beyond anything real at the top
# (no account, notional or margin reaches 10^15 in any currency; no contract multiplier, tick,
# FX rate or hedge ratio reaches 10^9), so that a typo of exponent (capital 1e400) is refused
# with its path instead of overflowing arithmetic later.
MAX_AMOUNT: Final = Decimal("1e15")
"""Largest money amount configured: capital, notionals, margins, exposures, fees per lot."""
MAX_FACTOR: Final = Decimal("1e9")
"""Largest multiplier, tick size, FX rate, hedge or leg ratio, latency (ms) configured."""
MIN_FACTOR: Final = Decimal("1e-12")
"""Smallest positive factor: a tick or multiplier below this cannot be a real contract's."""
MAX_COUNT: Final = 10**12
"""Largest count configured: lots, orders, milliseconds, window sizes."""


def _not_tiny(v: Decimal) -> Decimal:
    if v < MIN_FACTOR:
        raise ValueError(f"{v} is below {MIN_FACTOR}: too small for any real contract or rate")
    return v


Amount = Annotated[Decimal, Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False)]
"""A positive money amount, at most :data:`MAX_AMOUNT`."""
NonNegAmount = Annotated[Decimal, Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]
"""A money amount that may be zero (a fee), at most :data:`MAX_AMOUNT`."""
Factor = Annotated[Decimal, Field(gt=0, le=MAX_FACTOR, allow_inf_nan=False), AfterValidator(_not_tiny)]
"""A positive multiplier, tick size, rate or ratio in [:data:`MIN_FACTOR`, :data:`MAX_FACTOR`]."""
Count = Annotated[int, Field(gt=0, le=MAX_COUNT)]
"""A positive whole count (lots, orders, milliseconds), at most :data:`MAX_COUNT`."""
NonNegCount = Annotated[int, Field(ge=0, le=MAX_COUNT)]
"""A whole count that may be zero, at most :data:`MAX_COUNT`."""
