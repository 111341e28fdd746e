"""Quantity alignment: lots, hedge ratio, visible liquidity."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xmc_actors.core.sizing import balanced_size, is_balanced, round_to_lot


def test_round_to_lot_rounds_down_to_whole_lots() -> None:
    assert round_to_lot(Decimal("7.9"), 2) == 6
    assert round_to_lot(5, 5) == 5
    assert round_to_lot(-3, 1) == 0


def test_round_to_lot_nearest_rounds_half_up() -> None:
    assert round_to_lot(Decimal("3.11"), 1, "nearest") == 3
    assert round_to_lot(Decimal("3.5"), 1, "nearest") == 4


def test_round_to_lot_with_zero_lot_names_the_field() -> None:
    with pytest.raises(ValueError, match="lot"):
        round_to_lot(3, 0)


def test_gold_pair_sizes_shfe_lots_to_one_comex_lot() -> None:
    # one COMEX GC lot (100 oz) hedges about 3.11 SHFE au lots (1 kg): leg A = GC, leg B = au
    a, b = balanced_size(cap_a=5, cap_b=7, hedge_ratio=Decimal("3.1103"), lot_a=1, lot_b=1)
    assert (a, b) == (2, 6)
    assert is_balanced(a, b, Decimal("3.1103"), 1)


def test_size_follows_the_smaller_visible_liquidity() -> None:
    assert balanced_size(cap_a=min(10, 3), cap_b=min(10, 8), hedge_ratio=Decimal(1), lot_a=1, lot_b=1) == (3, 3)


def test_no_balanced_pair_fits_returns_zero() -> None:
    assert balanced_size(cap_a=1, cap_b=1, hedge_ratio=Decimal(4), lot_a=1, lot_b=1) == (0, 0)


def test_leg_b_lot_size_is_respected() -> None:
    a, b = balanced_size(cap_a=3, cap_b=5, hedge_ratio=Decimal(2), lot_a=1, lot_b=2)
    assert (a, b) == (2, 4)


@given(cap_a=st.integers(0, 60), cap_b=st.integers(0, 60), ratio=st.sampled_from(
    [Decimal(1), Decimal(2), Decimal("0.5"), Decimal("3.1103"), Decimal("2.5")]),
    lot_a=st.sampled_from([1, 2, 5]), lot_b=st.sampled_from([1, 2, 5]))
def test_balanced_size_is_within_caps_on_lots_and_balanced(cap_a: int, cap_b: int, ratio: Decimal, lot_a: int,
                                                          lot_b: int) -> None:
    a, b = balanced_size(cap_a, cap_b, ratio, lot_a, lot_b)
    assert 0 <= a <= max(cap_a, 0) and 0 <= b <= max(cap_b, 0)
    assert a % lot_a == 0 and b % lot_b == 0
    assert is_balanced(a, b, ratio, lot_b)
    # maximal: one more A lot (with any B on the grid within cap) would not balance
    nxt = a + lot_a
    if nxt <= cap_a:
        assert not any(is_balanced(nxt, bb, ratio, lot_b) for bb in range(lot_b, cap_b + 1, lot_b))
