"""Calendars that do not expire silently: 2026 (and 2027 where published) holidays for every
catalogued venue, a declared covered range, history by declaration only, and a deployment that
refuses to start on a day its calendar does not cover, naming the venue and the range."""
import datetime as dt
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from testkit import CATALOGUE, ROOT, venue
from xmc_actors.core.calendar import coverage_gap, covered, is_business_day, session_state
from xmc_actors.model import TradingSession, Venue
from xmc_actors.model.market import CalendarCoverage
from xmc_actors.runtime.calendars import CalendarNotCovered, calendar_notes, calendar_problems, calendar_spans, require_covered
from xmc_actors.runtime.config import ConfigError, load_config

SH, NY, LDN, HK = (ZoneInfo(z) for z in ("Asia/Shanghai", "America/New_York", "Europe/London", "Asia/Hong_Kong"))
UTC = dt.timezone.utc
D = dt.date


@pytest.fixture(autouse=True)
def _today_is_7_december_2026(covered_today):
    """The checks judge "today" by the wall clock: pinned (conftest), so these tests do not expire."""


def ns(y, mo, d, h, mi, tz):
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp() * 1_000_000_000)


def at(y, mo, d, h=12):
    return dt.datetime(y, mo, d, h, tzinfo=UTC)


# ----------------------------------------------------------------------------- the catalogue
def _catalogue_venues():
    return [Venue.model_validate(v) for v in yaml.safe_load(CATALOGUE.read_text())["venues"]]


@pytest.mark.parametrize("v", _catalogue_venues(), ids=lambda v: v.code)
def test_every_catalogued_venue_declares_a_sourced_calendar_through_2026(v):
    assert v.calendar is not None, f"{v.code} declares no calendar"
    assert v.calendar.end >= D(2026, 12, 31) and v.calendar.source
    assert all(d.weekday() < 5 for d in v.holidays), "a listed holiday on a weekend says nothing"
    assert any(d.year == 2026 for d in v.holidays), f"{v.code}: no 2026 holiday listed"
    assert v.calendar.before == "weekends_only"  # the real data (2016 on) replays


def test_the_2026_spring_festival_closes_shfe_and_holds_no_night_session_before_it():
    shfe = venue("SHFE")
    for d in (16, 17, 18, 19, 20, 23):
        assert not is_business_day(shfe, D(2026, 2, d))
    assert not session_state(shfe, ns(2026, 2, 18, 10, 0, SH)).open
    assert session_state(shfe, ns(2026, 2, 13, 14, 0, SH)).open          # the last day before it
    assert not session_state(shfe, ns(2026, 2, 13, 21, 30, SH)).open     # no night: a holiday lies between
    assert not session_state(shfe, ns(2026, 2, 14, 10, 0, SH)).open      # a make-up Saturday: the exchanges stay shut
    st = session_state(shfe, ns(2026, 2, 24, 9, 30, SH))
    assert st.open and st.trading_day == D(2026, 2, 24)
    night = session_state(shfe, ns(2026, 2, 24, 21, 30, SH))             # the first night after it
    assert night.open and night.trading_day == D(2026, 2, 25)


def test_the_2026_national_day_week_and_the_night_before_it():
    sge = venue("SGE")
    assert session_state(sge, ns(2026, 9, 30, 14, 0, SH)).open
    assert not session_state(sge, ns(2026, 9, 30, 21, 0, SH)).open
    assert [d for d in range(1, 9) if is_business_day(sge, D(2026, 10, d))] == [8]


def test_2026_and_2027_foreign_holidays():
    assert not session_state(venue("LME"), ns(2027, 3, 26, 10, 0, LDN)).open     # Good Friday 2027
    assert not session_state(venue("LME"), ns(2026, 12, 28, 10, 0, LDN)).open    # Boxing Day substitute
    assert session_state(venue("LME"), ns(2026, 12, 29, 10, 0, LDN)).open
    assert not session_state(venue("COMEX"), ns(2026, 4, 3, 10, 0, NY)).open     # Good Friday 2026
    assert not session_state(venue("COMEX"), ns(2027, 7, 5, 10, 0, NY)).open     # 4 July 2027 observed
    hk = venue("HKFE")
    assert [d for d in (3, 6, 7, 8) if is_business_day(hk, D(2026, 4, d))] == [8]  # Easter and Ching Ming


def test_a_day_after_the_calendar_ends_is_closed_with_the_range_not_guessed():
    shfe = venue("SHFE")
    st = session_state(shfe, ns(2027, 1, 4, 10, 0, SH))  # a Monday, after 2026-12-31
    assert not st.open
    assert "SHFE closed: 2027-01-04 is outside its calendar (2025-01-01 to 2026-12-31" in st.reason
    assert not is_business_day(shfe, D(2027, 1, 4))
    # the last night of the range would trade for a day the calendar does not know: not held
    assert not session_state(shfe, ns(2026, 12, 31, 21, 30, SH)).open
    assert session_state(shfe, ns(2026, 12, 31, 10, 0, SH)).open


def test_history_before_the_range_is_weekdays_only_where_declared_and_refused_otherwise():
    shfe = venue("SHFE")
    assert covered(shfe, D(2016, 3, 1)) and session_state(shfe, ns(2016, 3, 1, 10, 0, SH)).open
    strict = shfe.model_copy(update={"calendar": shfe.calendar.model_copy(update={"before": "refuse"})})
    assert not covered(strict, D(2016, 3, 1))
    assert not session_state(strict, ns(2016, 3, 1, 10, 0, SH)).open
    # the first day of the range still opens (its night session lies before the range: not held)
    assert session_state(strict, ns(2025, 1, 2, 10, 0, SH)).open
    assert not session_state(strict, ns(2025, 1, 1, 21, 30, SH)).open


def test_the_gap_message_names_the_venue_the_days_and_the_covered_range():
    why = coverage_gap(venue("HKFE"), D(2026, 12, 30), D(2027, 1, 5), what="replayed data")
    assert why.startswith("venue HKFE: its calendar covers 2025-01-01 to 2026-12-31")
    assert "2026-12-30 to 2027-01-05 (replayed data) is after its end" in why
    assert coverage_gap(venue("HKFE"), D(2026, 1, 5), D(2026, 12, 31)) is None
    bare = Venue(code="XX", timezone="UTC", sessions=[TradingSession(start="09:00", end="10:00")])
    assert "venue XX: no calendar declared" in coverage_gap(bare, D(2026, 1, 5))


def test_a_holiday_outside_the_declared_range_is_refused():
    with pytest.raises(ValidationError, match="holidays 2027-01-01 lie outside calendar 2025-01-01..2026-12-31"):
        Venue(code="XX", timezone="UTC", sessions=[TradingSession(start="09:00", end="10:00")],
              holidays=[D(2027, 1, 1)], calendar=CalendarCoverage(start=D(2025, 1, 1), end=D(2026, 12, 31)))
    with pytest.raises(ValidationError, match="end .* is before start"):
        CalendarCoverage(start=D(2026, 1, 1), end=D(2025, 1, 1))


# ----------------------------------------------------------------------------- deployments
def _deployment(tmp: Path, *, shfe_end: str | None = None, enforce: bool = True, replay: dict | None = None) -> Path:
    """A copper deployment over a copy of the catalogue (SHFE's calendar ending at ``shfe_end``)."""
    cat = yaml.safe_load(CATALOGUE.read_text())
    if shfe_end:
        for v in cat["venues"]:
            if v["code"] == "SHFE":
                v["calendar"] = {**v["calendar"], "end": shfe_end}
                v["holidays"] = [d for d in v["holidays"] if d <= D.fromisoformat(shfe_end)]
    (tmp / "cat.yaml").write_text(yaml.safe_dump(cat, sort_keys=False))
    gw = lambda v, inst, seed: {"venue": v, "adapter": "sim", "params": {"seed": seed, "enforce_sessions": enforce},  # noqa: E731
                                "feed": {"kind": "synthetic", "params": {"seed": seed, "instruments": [inst],
                                                                         "start_prices": [72000]}}}
    gws = [gw("SHFE", "SHFE.cu", 1), gw("LME", "LME.CA3M", 2)]
    if replay is not None:
        gws[0]["feed"] = {"kind": "replay", "params": replay}
    doc = {"name": "cal", "include": ["cat.yaml"], "base_currency": "USD",
           "fx": [{"base": "USD", "quote": "CNY", "source": "static", "rate": 7.1}],
           "accounts": [{"id": "cn", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 1e8},
                        {"id": "us", "broker": "sim", "venues": ["LME"], "currency": "USD", "capital": 1e7}],
           "gateways": gws,
           "strategies": [{"name": "cu", "class": "band", "legs": [{"instrument": "SHFE.cu", "account": "cn"},
                                                                   {"instrument": "LME.CA3M", "account": "us"}],
                           "params": {"signal": "ratio", "center": 1.0, "entry": 0.001, "exit": 0.0003, "clip": 5,
                                      "guards": {"require_sessions_open": enforce}}}],
           "risk": {"check_sessions": enforce},
           "ledger": {"path": str(tmp / "ledger")}}
    p = tmp / "dep.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def test_a_live_run_on_a_day_past_the_calendar_is_refused_naming_the_venue_and_range(tmp_path):
    cfg = load_config(_deployment(tmp_path))
    assert calendar_problems(cfg, at(2026, 12, 30)) == []
    probs = calendar_problems(cfg, at(2027, 1, 4))
    assert [p for p, _ in probs] == [("gateways", 0)]  # SHFE; LME's calendar runs to 2027-12-31
    assert "venue SHFE: its calendar covers 2025-01-01 to 2026-12-31" in probs[0][1]
    assert "2027-01-04 (today, a live run) is after its end" in probs[0][1]
    with pytest.raises(CalendarNotCovered, match="refusing to start: venue SHFE"):
        require_covered(cfg, at(2027, 1, 4))


def test_load_config_and_xmc_validate_refuse_a_deployment_whose_calendar_ended(tmp_path):
    path = _deployment(tmp_path, shfe_end="2025-12-31")  # today (pinned here; the CLI: the wall clock) is after 2025
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = "\n".join(e.value.messages)
    assert "gateways[0]" in msg and "venue SHFE: its calendar covers 2025-01-01 to 2025-12-31" in msg
    r = subprocess.run([sys.executable, "-m", "xmc_actors.ops.cli", "validate", str(path)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "venue SHFE: its calendar covers 2025-01-01 to 2025-12-31" in r.stderr


def test_the_deployment_refuses_before_any_actor_exists(tmp_path):
    import ray

    from xmc_actors.runtime.deploy import Deployment

    good = load_config(_deployment(tmp_path))
    shfe = next(v for v in good.venues if v.code == "SHFE")
    ended = shfe.model_copy(update={"holidays": tuple(d for d in shfe.holidays if d.year < 2026),
                                    "calendar": shfe.calendar.model_copy(update={"end": D(2025, 12, 31)})})
    cfg = good.model_copy(update={"venues": tuple(ended if v.code == "SHFE" else v for v in good.venues)})
    was = ray.is_initialized()
    with pytest.raises(CalendarNotCovered, match="venue SHFE: its calendar covers 2025-01-01 to 2025-12-31"):
        Deployment(cfg).start()
    assert ray.is_initialized() is was  # refused before Ray was started


def test_a_venue_whose_calendar_the_deployment_does_not_use_is_not_checked(tmp_path):
    cfg = load_config(_deployment(tmp_path, enforce=False))  # trades at any hour by its own choice
    assert calendar_spans(cfg, at(2028, 1, 4)) == []
    # a real venue's adapter (anything but sim) is always checked: LME is FIX in the demo
    demo = load_config(ROOT / "configs" / "demo.yaml")
    assert {s.venue for s in calendar_spans(demo, at(2026, 12, 7))} == {"SGE", "COMEX", "LME"}


def test_a_replay_is_checked_over_the_days_of_its_data(tmp_path):
    data = tmp_path / "cu.csv"
    data.write_text("date,open,high,low,close\n2026-12-30,72000,72100,71900,72050\n"
                    "2026-12-31,72050,72150,71950,72100\n2027-01-04,72100,72200,72000,72150\n")
    replay = {"files": [{"instrument": "SHFE.cu", "path": str(data), "format": "ohlc_csv"}]}
    cfg_dir = tmp_path / "a"
    cfg_dir.mkdir()
    with pytest.raises(ConfigError) as e:
        load_config(_deployment(cfg_dir, replay=replay))
    msg = "\n".join(e.value.messages)
    assert "gateways[0].feed.params.files[0]" in msg
    assert f"2026-12-30 to 2027-01-04 (replayed data of {data}) is after its end" in msg
    # the same file replayed up to the end of the range is fine, whatever day it is today
    ok_dir = tmp_path / "b"
    ok_dir.mkdir()
    cfg = load_config(_deployment(ok_dir, replay={**replay, "end": "2026-12-31"}))
    assert calendar_problems(cfg, at(2026, 12, 7)) == []
    # years later only the live LME gateway is past its calendar, not the replayed SHFE data
    assert [p for p, _ in calendar_problems(cfg, at(2030, 1, 2))] == [("gateways", 1)]


def test_the_real_history_from_2016_replays_under_the_declared_weekdays_only_history():
    demo = load_config(ROOT / "configs" / "demo.yaml")
    spans = {s.venue: s for s in calendar_spans(demo, at(2026, 12, 7))}
    assert spans["SGE"].first == D(2020, 1, 1) and spans["SGE"].last == D(2026, 2, 24)
    assert calendar_problems(demo, at(2026, 12, 7)) == []


def test_validate_notes_a_live_calendar_about_to_end(tmp_path):
    cfg = load_config(_deployment(tmp_path))
    notes = calendar_notes(cfg, at(2026, 12, 10))
    assert notes == ["venue SHFE: its calendar ends on 2026-12-31 (21 days from today): a run after that day "
                     "will refuse to start until the next year's holidays are added"]
    assert calendar_notes(cfg, at(2026, 6, 1)) == []


def test_a_bounded_synthetic_feed_is_checked_over_the_days_it_runs(tmp_path):
    path = _deployment(tmp_path)
    doc = yaml.safe_load(path.read_text())
    start = int(dt.datetime(2026, 12, 30, 2, tzinfo=UTC).timestamp()) * 1_000_000_000
    # one instrument at 1 quote a second: 3 x 86,400 quotes are three days of market time
    doc["gateways"][0]["feed"]["params"].update({"start_ns": start, "count": 3 * 86_400, "ticks_per_s": 1})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError, match=r"2026-12-30 to 2027-01-02 \(the synthetic feed's start_ns\) is after its end"):
        load_config(path)
