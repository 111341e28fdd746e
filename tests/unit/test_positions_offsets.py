"""Two-sided positions and offsets (开/平, 平今/平昨) as Chinese futures venues hold them (no Ray)."""
from __future__ import annotations

import datetime as dt

import pytest

from testkit import venue
from xmc_actors.core.positions import OffsetError, TwoSidedBook, check_offset, choose_offset
from xmc_actors.model.market import Side
from xmc_actors.model.orders import Offset

D1, D2 = dt.date(2025, 1, 6), dt.date(2025, 1, 7)


def _v(code: str, rule: str, order: str = "yesterday_first"):
    return venue(code).model_copy(update={"offsets": rule, "close_order": order})


SHFE, DCE, LME = _v("SHFE", "today_yesterday"), _v("CFFEX", "close"), _v("LME", "none")


def test_each_venue_rule_refuses_what_it_cannot_take_with_the_reason():
    assert check_offset(SHFE, Offset.CLOSE_TODAY) is None and check_offset(SHFE, Offset.OPEN) is None
    assert "CLOSE_TODAY or CLOSE_YESTERDAY" in check_offset(SHFE, Offset.CLOSE)
    assert "must say OPEN or CLOSE" in check_offset(SHFE, None)
    assert check_offset(DCE, Offset.CLOSE) is None
    assert "send a plain CLOSE" in check_offset(DCE, Offset.CLOSE_TODAY)
    assert check_offset(LME, None) is None
    assert "nets positions" in check_offset(LME, Offset.OPEN)


def test_open_close_today_and_the_trading_day_roll():
    book = TwoSidedBook()
    book.fill(SHFE, "o1", "cn", "SHFE.cu", Side.BUY, Offset.OPEN, 5, D1)
    book.fill(SHFE, "o2", "cn", "SHFE.cu", Side.SELL, Offset.OPEN, 2, D1)  # short beside long: not netted
    p = book.get("cn", "SHFE.cu", D1)
    assert (p.long.today, p.short.today, p.net) == (5, 2, 3)
    # a close-today of 3 long lots freezes them until it fills
    book.freeze(SHFE, "c1", "cn", "SHFE.cu", Side.SELL, Offset.CLOSE_TODAY, 3, D1)
    assert (p.long.available_today, p.long.frozen_today) == (2, 3)
    assert "only 2 of today's lots" in book.check(SHFE, "cn", "SHFE.cu", Side.SELL, Offset.CLOSE_TODAY, 3, D1)
    book.fill(SHFE, "c1", "cn", "SHFE.cu", Side.SELL, Offset.CLOSE_TODAY, 1, D1)
    book.release("c1")  # cancelled after 1 lot: the other 2 free again
    assert (p.long.today, p.long.frozen_today, p.long.available_today) == (4, 0, 4)
    # the next trading day: today's lots are yesterday's; a close-today finds none
    p = book.get("cn", "SHFE.cu", D2)
    assert (p.long.today, p.long.yesterday, p.short.yesterday) == (0, 4, 2)
    assert "only 0 of today's lots" in book.check(SHFE, "cn", "SHFE.cu", Side.SELL, Offset.CLOSE_TODAY, 1, D2)
    assert book.check(SHFE, "cn", "SHFE.cu", Side.SELL, Offset.CLOSE_YESTERDAY, 4, D2) is None
    with pytest.raises(OffsetError):
        book.freeze(SHFE, "c2", "cn", "SHFE.cu", Side.BUY, Offset.CLOSE_YESTERDAY, 3, D2)  # short yesterday is 2


def test_a_plain_close_takes_the_exchanges_order():
    for order, expect in (("yesterday_first", (2, 0)), ("today_first", (0, 2))):
        v = _v("CFFEX", "close", order)
        book = TwoSidedBook()
        book.set("cn", "CFFEX.IF", long_today=2, long_yesterday=3, trading_day=D1)
        book.fill(v, None, "cn", "CFFEX.IF", Side.SELL, Offset.CLOSE, 3, D1)
        p = book.get("cn", "CFFEX.IF", D1)
        assert (p.long.today, p.long.yesterday) == expect, order


def test_the_coordinator_chooses_the_offset_from_what_is_available_and_says_why():
    book = TwoSidedBook()
    p = book.set("cn", "SHFE.cu", long_today=5, long_yesterday=3, trading_day=D1)
    off, why = choose_offset(SHFE, p, Side.SELL, 3)  # yesterday first (close-today dearer)
    assert off is Offset.CLOSE_YESTERDAY and "close-today costs more" in why
    assert choose_offset(SHFE, p, Side.SELL, 5, "close_yesterday_first")[0] is Offset.CLOSE_TODAY  # yd has only 3
    assert choose_offset(SHFE, p, Side.SELL, 3, "close_today_first")[0] is Offset.CLOSE_TODAY
    off, why = choose_offset(SHFE, p, Side.SELL, 7)  # 5 + 3 could, one bucket cannot: never split
    assert off is Offset.OPEN and "never split" in why
    assert choose_offset(SHFE, p, Side.BUY, 1)[0] is Offset.OPEN  # no short to close
    assert choose_offset(SHFE, p, Side.SELL, 1, "lock")[0] is Offset.OPEN
    assert choose_offset(DCE, p, Side.SELL, 7)[0] is Offset.CLOSE
    assert choose_offset(LME, p, Side.SELL, 1) == (None, "netting venue: no offset")
    # what is frozen by a working close is not available to the next
    book.freeze(SHFE, "c1", "cn", "SHFE.cu", Side.SELL, Offset.CLOSE_YESTERDAY, 3, D1)
    assert choose_offset(SHFE, p, Side.SELL, 3)[0] is Offset.CLOSE_TODAY


def test_auto_locks_instead_of_closing_today_where_the_fee_schedule_makes_a_lock_cheaper():
    from xmc_actors.core.positions import lock_is_cheaper
    from testkit import instrument

    cu, index = instrument("SHFE.cu"), instrument("CFFEX.IF")
    # SHFE cu: close-today 1 per 10,000 < open 0.5 + 2 closes of 0.5: close today
    assert not lock_is_cheaper(cu.fees, 72000, cu.multiplier)
    # CSI 300 futures: close-today ten times the open fee: the lock is cheaper
    assert lock_is_cheaper(index.fees, 3900, index.multiplier)
    book = TwoSidedBook()
    p = book.set("cn", "CFFEX.IF", long_today=2, trading_day=D1)
    off, why = choose_offset(DCE, p, Side.SELL, 2, "auto", lock_cheaper=True)
    assert off is Offset.OPEN and "lock costs less" in why
    assert choose_offset(DCE, p, Side.SELL, 2, "close_today_first", lock_cheaper=True)[0] is Offset.CLOSE
    q = book.set("cn", "SHFE.cu", long_today=2, trading_day=D1)
    assert choose_offset(SHFE, q, Side.SELL, 2, "auto", lock_cheaper=True)[0] is Offset.OPEN
    assert choose_offset(SHFE, q, Side.SELL, 2, "auto", lock_cheaper=False)[0] is Offset.CLOSE_TODAY
    # yesterday's lots are closed whatever: no close-today fee to save
    r = book.set("cn", "SHFE.cu", long_yesterday=2, trading_day=D1)
    assert choose_offset(SHFE, r, Side.SELL, 2, "auto", lock_cheaper=True)[0] is Offset.CLOSE_YESTERDAY
