"""Does every venue calendar a deployment uses cover the days it will run on?

A deployment runs on three kinds of days: a live gateway (any adapter on the wall clock, or a
synthetic feed without a start time) on *today* in the venue's time zone; a replay on the days of
its data (the feed's ``start``/``end``, else the files' first and last day); a synthetic feed
with ``start_ns`` on that day. :func:`calendar_problems` checks each against the venue's declared
calendar (:class:`~xmc_actors.model.market.CalendarCoverage`) and returns one message per venue
that is not covered, naming the venue, the days and the range its calendar covers. The
deployment then refuses to start (``load_config`` reports it, so ``xmc validate``, ``xmc run``,
``xmc demo`` and ``xmc backtest`` all stop; :class:`~xmc_actors.runtime.deploy.Deployment` checks
again when it starts, because a validated file may be started days later).

A venue whose calendar the deployment does not use is not checked: a gateway on the simulated
adapter with ``enforce_sessions: false``, under ``risk.check_sessions: false``, whose strategies
do not require open sessions (``guards.require_sessions_open: false``), trades at any hour by
its own configuration, and its feed is not replayed (replays stamp daily bars at the venue's
close, by its calendar). Every other adapter (FIX, CTP: real venues) is always checked.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.calendar import coverage_gap
from ..model.market import Venue

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class CalendarSpan:
    """The days ``first``..``last`` a gateway runs ``venue`` on, and why (for the message)."""

    venue: str
    first: dt.date
    last: dt.date
    what: str
    path: tuple[Any, ...]


def now_utc() -> dt.datetime:
    """The wall clock the checks judge "today" by (one place, so a test can pin it)."""
    return dt.datetime.now(dt.timezone.utc)


def _today(venue: Venue, now: dt.datetime) -> dt.date:
    return now.astimezone(venue.tz).date()


def _uses_calendar(cfg: Any, g: Any) -> bool:
    if g.feed.kind == "replay" or g.adapter != "sim":
        return True
    if (g.params or {}).get("enforce_sessions", True) is not False:
        return True
    if getattr(cfg.risk, "check_sessions", True):
        return True
    for s in cfg.strategies:
        if not s.enabled:
            continue
        if any(str(leg.instrument).split(".", 1)[0] == g.venue for leg in s.legs):
            guards = (s.params or {}).get("guards") or {}
            if guards.get("require_sessions_open", True) is not False:
                return True
    return False


def _file_days(path: str, fmt: str, spec: Any, inst: Any, venue: Venue) -> tuple[dt.date, dt.date] | None:
    """First and last day of a replay file (None: unreadable or empty; reported by the data checks)."""
    from ..feeds.replay import load_bars, load_fred_fx, load_replay_file

    try:
        if fmt in ("sge_daily", "comex_daily", "ohlc_csv"):
            days = [b.date for b in load_bars(path, fmt)[0]]
        elif fmt == "fred_fx":
            days = [d for d, _ in load_fred_fx(path)[0]]
        else:
            quotes = load_replay_file(path, fmt, inst, venue, spec=spec)[0]
            days = [dt.datetime.fromtimestamp(q.ts_ns / _NS, venue.tz).date() for q in quotes]
    except Exception:  # noqa: BLE001 - a file that cannot be read is reported at its path elsewhere
        return None
    return (min(days), max(days)) if days else None


_FILE_DAYS: dict[tuple[str, str, float, int], tuple[dt.date, dt.date] | None] = {}


def _cached_file_days(path: str, fmt: str, spec: Any, inst: Any, venue: Venue) -> tuple[dt.date, dt.date] | None:
    try:
        st = Path(path).stat()
    except OSError:
        return None
    key = (str(Path(path).resolve()), fmt, st.st_mtime, st.st_size)
    if key not in _FILE_DAYS:
        _FILE_DAYS[key] = _file_days(path, fmt, spec, inst, venue)
    return _FILE_DAYS[key]


def calendar_spans(cfg: Any, now: dt.datetime | None = None) -> list[CalendarSpan]:
    """The days each gateway of ``cfg`` runs its venue on (only gateways that use its calendar)."""
    from ..feeds.config import ReplayParams, SyntheticParams

    now = now or now_utc()
    venues = {v.code: v for v in cfg.venues}
    out: list[CalendarSpan] = []
    for n, g in enumerate(cfg.gateways):
        venue = venues.get(g.venue)
        if venue is None or not _uses_calendar(cfg, g):
            continue
        path: tuple[Any, ...] = ("gateways", n)
        if g.feed.kind == "replay":
            try:
                params = ReplayParams.model_validate(g.feed.params)
                start = dt.date.fromisoformat(params.start) if params.start else None
                end = dt.date.fromisoformat(params.end) if params.end else None
            except Exception:  # noqa: BLE001 - reported by the feed's parameter check
                continue
            for k, f in enumerate(params.files):
                try:
                    inst = cfg.instrument(f.instrument)
                except Exception:  # noqa: BLE001 - an unknown instrument is reported by the references check
                    continue
                days = _cached_file_days(f.path, f.format, f, inst, venue)
                if days is None:
                    continue
                first, last = max(days[0], start) if start else days[0], min(days[1], end) if end else days[1]
                if first <= last:
                    out.append(CalendarSpan(g.venue, first, last, f"replayed data of {f.path}",
                                            (*path, "feed", "params", "files", k)))
            continue
        if g.feed.kind == "synthetic":
            try:
                sp = SyntheticParams.model_validate(g.feed.params)
            except Exception:  # noqa: BLE001 - reported by the feed's parameter check
                sp = None
            if sp is not None and sp.start_ns is not None:
                day = dt.datetime.fromtimestamp(sp.start_ns / _NS, venue.tz).date()
                # a bounded feed (count quotes in all, ticks_per_s per instrument, in market time)
                # runs about this long (longer with respect_sessions: a day past the calendar
                # then still counts as closed, core/calendar.py)
                rate = sp.ticks_per_s * max(len(sp.instruments), 1)
                end_ns = sp.start_ns + int(sp.count / rate * _NS) if sp.count else sp.start_ns
                last = dt.datetime.fromtimestamp(end_ns / _NS, venue.tz).date()
                out.append(CalendarSpan(g.venue, day, last, "the synthetic feed's start_ns",
                                        (*path, "feed", "params", "start_ns")))
                continue
        out.append(CalendarSpan(g.venue, _today(venue, now), _today(venue, now), "today, a live run", path))
    return out


def calendar_problems(cfg: Any, now: dt.datetime | None = None) -> list[tuple[tuple[Any, ...], str]]:
    """``(path, message)`` for each gateway whose venue calendar does not cover the days it runs on."""
    venues = {v.code: v for v in cfg.venues}
    out = []
    for sp in calendar_spans(cfg, now):
        why = coverage_gap(venues[sp.venue], sp.first, sp.last, what=sp.what)
        if why is not None:
            out.append((sp.path, why))
    return out


def calendar_notes(cfg: Any, now: dt.datetime | None = None, warn_days: int = 30) -> list[str]:
    """A note for each venue a live gateway uses whose calendar ends within ``warn_days`` days."""
    now = now or now_utc()
    venues = {v.code: v for v in cfg.venues}
    notes = []
    for code in sorted({sp.venue for sp in calendar_spans(cfg, now) if sp.what.startswith("today")}):
        cal = venues[code].calendar
        if cal is None:
            continue
        left = (cal.end - _today(venues[code], now)).days
        if 0 <= left <= warn_days:
            notes.append(f"venue {code}: its calendar ends on {cal.end.isoformat()} ({left} days from today): "
                         "a run after that day will refuse to start until the next year's holidays are added")
    return notes


class CalendarNotCovered(ValueError):
    """A deployment would run on days a venue's calendar does not cover: it does not start."""


def require_covered(cfg: Any, now: dt.datetime | None = None) -> None:
    """Raise :class:`CalendarNotCovered` naming each venue (and its covered range) that does not
    cover the days ``cfg`` runs on; a deployment calls it before creating any actor."""
    problems = calendar_problems(cfg, now)
    if problems:
        raise CalendarNotCovered("refusing to start: " + "; ".join(why for _, why in problems))
