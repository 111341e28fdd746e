"""Session calendars: night sessions, breaks, holidays, and New York's DST against Shanghai's none."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from testkit import instrument, venue
from xmc_actors.core.calendar import instrument_session_state, session_state
from xmc_actors.model import TradingSession, Venue

SH, NY, UTC = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York"), dt.timezone.utc


def ns(y, mo, d, h, mi, tz):
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp() * 1_000_000_000)


def test_a_wednesday_night_session_trades_for_thursday():
    st = session_state(venue("SHFE"), ns(2025, 3, 12, 21, 30, SH))
    assert st.open and st.session == "night" and st.trading_day == dt.date(2025, 3, 13)


def test_a_friday_night_session_trades_for_monday_and_runs_past_midnight():
    shfe = venue("SHFE")
    fri = session_state(shfe, ns(2025, 3, 14, 21, 30, SH))
    sat = session_state(shfe, ns(2025, 3, 15, 0, 30, SH))
    assert fri.trading_day == sat.trading_day == dt.date(2025, 3, 17)
    assert not session_state(shfe, ns(2025, 3, 15, 10, 0, SH)).open  # Saturday day: closed


def test_copper_night_ends_at_one_while_gold_runs_to_half_past_two():
    shfe, t = venue("SHFE"), ns(2025, 3, 13, 1, 30, SH)
    assert not instrument_session_state(shfe, instrument("SHFE.cu"), t).open
    assert instrument_session_state(shfe, instrument("SHFE.au"), t).open


@pytest.mark.parametrize("hh, mm, is_open", [(10, 14, True), (10, 20, False), (10, 30, True), (11, 30, False),
                                               (12, 0, False), (13, 29, False), (13, 30, True), (15, 0, False)])
def test_the_morning_break_and_the_lunch_break_are_closed(hh, mm, is_open):
    st = session_state(venue("SHFE"), ns(2025, 3, 12, hh, mm, SH))
    assert st.open is is_open
    if not is_open:
        assert "outside sessions or in a break" in st.reason


def test_a_holiday_is_closed_with_the_reason():
    st = session_state(venue("SHFE"), ns(2025, 10, 1, 10, 0, SH))
    assert not st.open and st.reason == "SHFE closed: holiday (2025-10-01)"


def test_no_night_session_before_a_holiday():
    # 2025-09-30 is a trading day, but the next one is 2025-10-09: the night session is not held
    shfe = venue("SHFE")
    assert session_state(shfe, ns(2025, 9, 30, 14, 0, SH)).open
    assert not session_state(shfe, ns(2025, 9, 30, 21, 30, SH)).open
    # and the first night after the holiday trades normally (2025-10-09 evening for 10-10)
    assert session_state(shfe, ns(2025, 10, 9, 21, 30, SH)).trading_day == dt.date(2025, 10, 10)


def test_globex_opens_sunday_evening_for_monday():
    comex = venue("COMEX")
    st = session_state(comex, ns(2025, 3, 2, 18, 30, NY))  # Sunday
    assert st.open and st.trading_day == dt.date(2025, 3, 3)
    assert not session_state(comex, ns(2025, 3, 1, 12, 0, NY)).open  # Saturday


def test_new_york_daylight_saving_moves_the_globex_break_in_utc_but_not_shanghai():
    comex, shfe = venue("COMEX"), venue("SHFE")
    winter = ns(2025, 3, 4, 22, 30, UTC)  # 17:30 EST: inside the 17:00-18:00 daily break
    summer = ns(2025, 3, 11, 22, 30, UTC)  # 18:30 EDT (DST began 2025-03-09): trading
    assert not session_state(comex, winter).open
    assert session_state(comex, summer).open
    # Shanghai has no DST: 01:00 UTC is 09:00 local on both dates, the SHFE open
    assert session_state(shfe, ns(2025, 3, 4, 1, 0, UTC)).open
    assert session_state(shfe, ns(2025, 3, 11, 1, 0, UTC)).open
    assert not session_state(shfe, ns(2025, 3, 11, 0, 59, UTC)).open


def test_us_holiday_closes_globex():
    assert not session_state(venue("COMEX"), ns(2025, 7, 4, 10, 0, NY)).open


def test_a_session_crossing_midnight_must_be_marked_night():
    with pytest.raises(ValidationError, match="a session that crosses midnight must be marked night: true"):
        TradingSession(name="x", start="21:00", end="01:00")


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(ValidationError, match="unknown time zone 'Asia/Shangai'"):
        Venue(code="X1", timezone="Asia/Shangai", sessions=[TradingSession(start="09:00", end="10:00")])


def test_a_closed_answer_read_back_within_its_minute_never_hides_the_open():
    # A venue asked on every quote in its break gets the closed answer read back (the calendar
    # keeps it for the rest of that minute); the open comes exactly at the session's first ns.
    shfe = venue("SHFE")
    open_at = ns(2025, 3, 12, 10, 30, SH)  # the morning break ends at 10:30
    first = session_state(shfe, open_at - 30 * 10**9)
    assert not first.open and "10:29" in first.reason
    assert session_state(shfe, open_at - 1) is first  # same minute: read back
    st = session_state(shfe, open_at)
    assert st.open and st.trading_day == dt.date(2025, 3, 12)
    # and back: the break starts at 10:15; the last ns before it is open, 10:15 itself closed
    brk = ns(2025, 3, 12, 10, 15, SH)
    assert session_state(shfe, brk - 1).open
    assert not session_state(shfe, brk).open
    assert not session_state(shfe, brk + 59 * 10**9).open
    # a holiday read after a closed minute of the day before names its own reason
    assert session_state(shfe, ns(2025, 9, 30, 15, 30, SH)).reason.endswith("15:30 local")
    assert "holiday" in session_state(shfe, ns(2025, 10, 1, 15, 30, SH)).reason
