"""Quantity alignment for a pair: lots, hedge ratio and visible liquidity (数量对齐).

Pure functions. ``hedge_ratio`` is leg B lots per leg A lot (see :class:`~xmc_actors.model.pairs.PairSpec`).
"""
from __future__ import annotations

from decimal import Decimal


def round_to_lot(qty: Decimal | int, lot: int, mode: str = "down") -> int:
    """Round a (possibly fractional) lot count to a whole multiple of ``lot``.

    Parameters
    ----------
    qty
        Quantity in lots (may be a Decimal from a hedge-ratio product).
    lot
        The instrument's lot size (>= 1).
    mode
        ``"down"`` (toward zero) or ``"nearest"`` (half up).
    """
    if lot < 1:
        raise ValueError(f"lot: must be >= 1, got {lot}")
    q = Decimal(qty)
    if q <= 0:
        return 0
    units = q / lot
    n = int(units) if mode == "down" else int((units + Decimal("0.5")).__floor__())
    return max(n, 0) * lot


def is_balanced(net_a: int, net_b: int, hedge_ratio: Decimal, lot_b: int) -> bool:
    """True if leg B's net matches leg A's net times the hedge ratio within (strictly) one B lot."""
    return abs(Decimal(net_b) - Decimal(net_a) * hedge_ratio) < lot_b


def balanced_size(cap_a: int, cap_b: int, hedge_ratio: Decimal, lot_a: int, lot_b: int) -> tuple[int, int]:
    """The largest balanced pair ``(qty_a, qty_b)`` with ``qty_a <= cap_a`` and ``qty_b <= cap_b``.

    Both are whole multiples of their lot sizes and ``qty_b`` is within one B lot of
    ``qty_a * hedge_ratio``. Used for quantity priority (caps = min(intended, visible)) and for
    the rollback target (caps = what each leg holds now).

    Returns ``(0, 0)`` if no non-zero balanced pair fits.
    """
    if cap_a <= 0 or cap_b <= 0:
        return 0, 0
    if hedge_ratio <= 0:
        raise ValueError(f"hedge_ratio: must be > 0, got {hedge_ratio}")
    # Largest A such that its hedge does not exceed cap_b (to within a lot), then walk down.
    a = round_to_lot(min(Decimal(cap_a), (Decimal(cap_b) + lot_b) / hedge_ratio), lot_a)
    while a > 0:
        ideal_b = Decimal(a) * hedge_ratio
        for b in (round_to_lot(ideal_b, lot_b, "nearest"), round_to_lot(ideal_b, lot_b, "down")):
            if 0 < b <= cap_b and is_balanced(a, b, hedge_ratio, lot_b):
                return a, b
        a -= lot_a
    return 0, 0
