"""Session calendars: is a venue open at an instant, and for which trading day.

Pure functions over :class:`~xmc_actors.model.market.Venue`; time zones through ``zoneinfo``
so daylight-saving switches (New York, London) are exact while Shanghai has none.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

from ..model.market import Instrument, TradingSession, Venue

_NS = 1_000_000_000
_MINUTE_NS = 60 * _NS
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True, slots=True)
class SessionState:
    open: bool
    trading_day: dt.date | None
    session: str | None
    reason: str


def is_business_day(venue: Venue, day: dt.date) -> bool:
    """A weekday of the venue that is not one of its holidays, and that its calendar covers: a
    day its calendar does not cover (after its end; before its start unless history is
    ``weekends_only``) is never taken as a trading day (fail closed, see :func:`coverage_gap`)."""
    return day.weekday() in venue.weekdays and day not in _holidays(venue) and _known(venue, day)


def _known(venue: Venue, day: dt.date) -> bool:
    cal = venue.calendar
    if cal is None or cal.start <= day <= cal.end:
        return True
    return day < cal.start and cal.before == "weekends_only"


def covered(venue: Venue, day: dt.date) -> bool:
    """Whether ``venue``'s calendar answers for ``day`` (listed holidays, or declared history).
    A venue that declares no calendar covers nothing (:func:`coverage_gap` says so)."""
    return venue.calendar is not None and _known(venue, day)


def coverage_gap(venue: Venue, first: dt.date, last: dt.date | None = None, *, what: str = "") -> str | None:
    """Why ``venue``'s calendar does not cover the days ``first``..``last``, or None if it does.

    The message names the venue, the days asked for (``what``: for what, e.g. "today" or
    "replayed data") and the range the calendar covers, so an operator knows which notice to
    add. A venue without a declared ``calendar`` covers no day.
    """
    last = first if last is None else last
    days = f"{first.isoformat()}" if first == last else f"{first.isoformat()} to {last.isoformat()}"
    for_ = f" ({what})" if what else ""
    cal = venue.calendar
    if cal is None:
        return (f"venue {venue.code}: no calendar declared (calendar: {{start, end, source}} with its holidays), "
                f"so its trading days are unknown for {days}{for_}")
    bad = [d for d in (first, last) if not _known(venue, d)]
    if not bad:
        return None
    after = last > cal.end
    fix = (f"add the exchange's holidays after {cal.end.isoformat()} to the catalogue and extend calendar.end"
           if after else "list the earlier holidays and move calendar.start, or declare before: weekends_only")
    return (f"venue {venue.code}: its calendar covers {cal.describe()}; {days}{for_} is "
            f"{'after its end' if after else 'before its start'}: refusing rather than trading on unknown "
            f"holidays ({fix})")


@lru_cache(maxsize=256)
def _holidays(venue: Venue) -> frozenset[dt.date]:
    return frozenset(venue.holidays)


def previous_business_day(venue: Venue, day: dt.date) -> dt.date:
    d = day - dt.timedelta(days=1)
    for _ in range(30):
        if is_business_day(venue, d):
            return d
        d -= dt.timedelta(days=1)
    raise ValueError(f"{venue.code}: no business day in the 30 days before {day}")


def next_business_day(venue: Venue, day: dt.date) -> dt.date:
    d = day + dt.timedelta(days=1)
    for _ in range(30):
        if is_business_day(venue, d):
            return d
        d += dt.timedelta(days=1)
    raise ValueError(f"{venue.code}: no business day in the 30 days after {day}")


def _previous_weekday(venue: Venue, day: dt.date) -> dt.date:
    d = day - dt.timedelta(days=1)
    while d.weekday() not in venue.weekdays:
        d -= dt.timedelta(days=1)
    return d


def session_window(venue: Venue, trading_day: dt.date, s: TradingSession) -> tuple[dt.datetime, dt.datetime] | None:
    """The absolute [start, end) of session ``s`` of ``trading_day``, or None if it does not run."""
    tz = venue.tz
    if s.night:
        if venue.night_anchor == "previous_business_day":
            try:
                anchor = previous_business_day(venue, trading_day)
            except ValueError:
                return None  # the evening before lies outside the calendar: no session known
            if not venue.night_before_holiday and anchor != _previous_weekday(venue, trading_day):
                return None  # a holiday lies between: no night session (Chinese rule)
        else:
            anchor = trading_day - dt.timedelta(days=1)
        start = dt.datetime.combine(anchor, s.start_time, tz)
        end_day = anchor if s.end_time > s.start_time else anchor + dt.timedelta(days=1)
        end = dt.datetime.combine(end_day, s.end_time, tz)
    else:
        start = dt.datetime.combine(trading_day, s.start_time, tz)
        end = dt.datetime.combine(trading_day, s.end_time, tz)
    return start, end


#: the open session each (venue, sessions) was last found in, or the minute it was last found
#: closed in: ``(venue, sessions, start_ns, end_ns, state)``. Strategies (guards), the simulated
#: venues and the risk checks ask on every quote; within one session (or one closed minute) the
#: answer does not change, so it is read back without building a zoned datetime. Keyed by identity (a pydantic model's hash walks all its fields); the entry
#: holds the objects it was made for, so a reused id never answers for another venue.
_OPEN_CACHE: dict[tuple[int, int], tuple[Venue, object, int, int, SessionState]] = {}


def session_state(venue: Venue, ts_ns: int, sessions: tuple[TradingSession, ...] | None = None) -> SessionState:
    """Whether ``venue`` trades at ``ts_ns`` (UTC), in which session and for which trading day.

    ``sessions`` overrides the venue's (an instrument's own hours, e.g. SHFE cu's night ends at
    01:00 while au's runs to 02:30).
    """
    key = (id(venue), id(sessions))
    c = _OPEN_CACHE.get(key)
    if c is not None and c[0] is venue and c[1] is sessions and c[2] <= ts_ns < c[3]:
        return c[4]
    st, win = _session_state(venue, ts_ns, sessions)
    if len(_OPEN_CACHE) > 4096:
        _OPEN_CACHE.clear()
    if win is not None:
        _OPEN_CACHE[key] = (venue, sessions, int(win[0].timestamp()) * _NS, int(win[1].timestamp()) * _NS, st)
    else:
        # closed: the answer holds for the rest of this minute (sessions start and end on a
        # local minute, zone offsets are whole minutes, and the reason names the minute); a
        # venue in its break or at night is asked as often as an open one
        start = ts_ns - ts_ns % _MINUTE_NS
        _OPEN_CACHE[key] = (venue, sessions, start, start + _MINUTE_NS, st)
    return st


def _session_state(venue: Venue, ts_ns: int, sessions: tuple[TradingSession, ...] | None
                   ) -> tuple[SessionState, tuple[dt.datetime, dt.datetime] | None]:
    # floored to the µs, exactly (a float of the seconds rounds the last ns of a minute into the next)
    when = (_EPOCH + dt.timedelta(microseconds=ts_ns // 1000)).astimezone(venue.tz)
    local = when.date()
    candidates = {local, local + dt.timedelta(days=1), local + dt.timedelta(days=2),
                  local + dt.timedelta(days=3), local + dt.timedelta(days=4)}
    for td in sorted(candidates):
        if not is_business_day(venue, td):
            continue
        for s in (sessions or venue.sessions):
            win = session_window(venue, td, s)
            if win and win[0] <= when < win[1]:
                return SessionState(True, td, s.name, "open"), win
    if not is_business_day(venue, local):
        if not _known(venue, local):
            return SessionState(False, None, None, f"{venue.code} closed: {local.isoformat()} is outside its calendar "
                                                   f"({venue.calendar.describe() if venue.calendar else ''})"), None
        why = "holiday" if local in _holidays(venue) else "weekend"
        return SessionState(False, None, None, f"{venue.code} closed: {why} ({local.isoformat()})"), None
    return SessionState(False, None, None,
                        f"{venue.code} closed: outside sessions or in a break at {when.strftime('%H:%M')} local"), None


def open_window_ns(venue: Venue, ts_ns: int, sessions: tuple[TradingSession, ...] | None = None
                   ) -> tuple[int, int] | None:
    """The [start, end) in ns of the open session ``ts_ns`` lies in, or None when the venue is
    closed then: a caller that asks on every quote can keep it and skip the calendar until
    ``end``."""
    st = session_state(venue, ts_ns, sessions)
    if not st.open:
        return None
    c = _OPEN_CACHE.get((id(venue), id(sessions)))
    if c is not None and c[0] is venue and c[1] is sessions and c[2] <= ts_ns < c[3]:
        return c[2], c[3]
    return None


def is_open(venue: Venue, ts_ns: int, sessions: tuple[TradingSession, ...] | None = None) -> bool:
    return session_state(venue, ts_ns, sessions).open


def instrument_session_state(venue: Venue, instrument: Instrument, ts_ns: int) -> SessionState:
    return session_state(venue, ts_ns, instrument.sessions)
