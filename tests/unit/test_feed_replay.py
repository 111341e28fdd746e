"""Market-data sources: real-file loaders with their quirks, the bar -> quote rule, the synthetic market."""
from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import pytest

from testkit import data_dir, instrument, venue
from xmc_actors.core.calendar import instrument_session_state
from xmc_actors.feeds import build_feed
from xmc_actors.feeds.config import SyntheticParams
from xmc_actors.feeds.replay import Bar, bars_to_quotes, load_bars, load_fred_fx
from xmc_actors.feeds.synthetic import synthetic_quotes
from xmc_actors.model.config import FeedConfig

REAL = data_dir() / "real"
SGE_FILE, COMEX_FILE, FRED_FILE = REAL / "sge_au9999_daily.csv", REAL / "comex_gc_daily.csv", REAL / "fred_dexchus_usdcny_daily.csv"


def _day(ts_ns: int, tz: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, venue("SGE").tz if tz == "SGE" else venue("COMEX").tz)


def test_sge_loader_reads_close_before_low_and_high_and_clips_the_300_print():
    bars, report = load_bars(SGE_FILE, "sge_daily")

    apr13 = next(b for b in bars if b.date == dt.date(2017, 4, 13))
    assert (apr13.open, apr13.close, apr13.low) == (Decimal("285.58"), Decimal("286.69"), Decimal("284.0"))
    assert apr13.high == Decimal("286.69")  # the 300.0 print is clipped to the body
    assert any("2017-04-13" in why and "300.0" in why for _, why in report.adjusted)
    assert report.rows == 2225 and report.kept + len(report.skipped) == report.rows


def test_sge_loader_refuses_a_file_whose_columns_are_in_the_usual_order(tmp_path: Path):
    f = tmp_path / "x.csv"
    f.write_text("date,open,high,low,close\n2020-01-02,1,2,0.5,1.5\n")

    with pytest.raises(ValueError, match="date,open,close,low,high"):
        load_bars(f, "sge_daily")


def test_comex_loader_skips_flat_holiday_placeholders_and_says_why():
    bars, report = load_bars(COMEX_FILE, "comex_daily")

    skipped_days = [why for _, why in report.skipped]
    assert any("2018-12-25" in why and "placeholder" in why for why in skipped_days)
    assert dt.date(2018, 12, 25) not in {b.date for b in bars}
    assert all(b.settlement is None for b in bars)  # the file's settlement column is all 0


def test_fred_loader_skips_blank_us_holidays_and_returns_sorted_rates():
    rates, report = load_fred_fx(FRED_FILE)

    assert rates[0] == (dt.date(2000, 1, 3), Decimal("8.2798"))
    assert all(a[0] < b[0] for a, b in zip(rates, rates[1:]))
    assert dt.date(2000, 1, 17) not in dict(rates)  # MLK day: blank in the file
    assert any("2000-01-17" in why and "holiday" in why for _, why in report.skipped)
    assert report.kept == len(rates) and report.kept + len(report.skipped) == report.rows


def test_bar_becomes_one_quote_at_the_close_inside_the_last_session_with_previous_settlement():
    au = instrument("SGE.AU9999")
    bars = [Bar(dt.date(2025, 1, 2), Decimal("600"), Decimal("602"), Decimal("598"), Decimal("601.234")),
            Bar(dt.date(2025, 1, 3), Decimal("601"), Decimal("605"), Decimal("600"), Decimal("604.5"))]

    q1, q2 = bars_to_quotes(bars, au, venue("SGE"), spread_ticks=2, size=7)

    local = dt.datetime.fromtimestamp(q1.ts_ns / 1e9, venue("SGE").tz)
    assert (local.hour, local.minute) == (15, 29)
    assert instrument_session_state(venue("SGE"), au, q1.ts_ns).open
    assert (q1.bid, q1.ask, q1.last, q1.bid_size) == (Decimal("601.22"), Decimal("601.24"), Decimal("601.23"), 7)
    assert q1.settlement is None and q2.settlement == Decimal("601.23")


def test_replay_feed_of_the_demo_comex_file_is_time_ordered_and_inside_globex_hours():
    feed = build_feed(FeedConfig(kind="replay", params={"files": [
        {"instrument": "COMEX.GC", "path": str(COMEX_FILE), "format": "comex_daily"}], "start": "2025-01-01"}),
        venue("COMEX"), [instrument("COMEX.GC")])

    quotes = []
    while (q := feed.next()) is not None:
        quotes.append(q)

    assert quotes and all(a.ts_ns < b.ts_ns for a, b in zip(quotes, quotes[1:]))
    assert _day(quotes[0].ts_ns, "COMEX").date() >= dt.date(2025, 1, 1)
    on_holidays = [q for q in quotes if _day(q.ts_ns, "COMEX").date() in venue("COMEX").holidays]
    assert all(instrument_session_state(venue("COMEX"), instrument("COMEX.GC"), q.ts_ns).open
               for q in quotes if q not in on_holidays)
    # the file prints bars on US holidays (CME's abbreviated sessions): kept and reported
    assert dt.date(2025, 7, 4) in {_day(q.ts_ns, "COMEX").date() for q in on_holidays}
    assert any("holiday: 2025-07-04" in why for _, why in feed.reports[0].adjusted)


def _synthetic(**kw: object) -> list:
    insts = {i: instrument(i) for i in ("SHFE.cu", "LME.CA3M")}
    p = SyntheticParams.model_validate({"seed": 1, "instruments": ["SHFE.cu"], "start_prices": [72000],
                                        "count": 2000, **kw})
    return list(synthetic_quotes(p, insts, venue("SHFE")))


def test_synthetic_market_is_reproducible_from_its_seed_and_on_the_tick_grid():
    a, b = _synthetic(), _synthetic()
    c = _synthetic(seed=2)

    assert a == b and a != c
    cu = instrument("SHFE.cu")
    assert all(cu.on_grid(q.bid) and cu.on_grid(q.ask) and q.bid < q.ask and q.bid_size > 0 for q in a)
    assert all(x.ts_ns < y.ts_ns for x, y in zip(a, a[1:]))


def test_two_feeds_with_the_same_factor_seed_are_cointegrated():
    cu = _synthetic(seed=1, vol_bps=20, ticks_per_s=2, count=3000)
    lme = list(synthetic_quotes(SyntheticParams(seed=2, instruments=("LME.CA3M",), start_prices=(9800,),
                                                vol_bps=20, ticks_per_s=2, count=3000),
                                {"LME.CA3M": instrument("LME.CA3M")}))
    other = list(synthetic_quotes(SyntheticParams(seed=2, factor_seed=99, instruments=("LME.CA3M",),
                                                  start_prices=(9800,), vol_bps=20, ticks_per_s=2, count=3000),
                                  {"LME.CA3M": instrument("LME.CA3M")}))

    def log_ratio_range(xs, ys):
        r, j = [], 0
        for x in xs:  # pair each quote with the other instrument's latest quote at that time
            while j + 1 < len(ys) and ys[j + 1].ts_ns <= x.ts_ns:
                j += 1
            r.append(math.log(float(x.mid) / 72000) - math.log(float(ys[j].mid) / 9800))
        return max(r) - min(r)

    def log_range(xs):
        r = [math.log(float(x.mid)) for x in xs]
        return max(r) - min(r)

    assert log_ratio_range(cu, lme) < log_range(cu) / 3       # the common factor cancels
    assert log_ratio_range(cu, other) > log_ratio_range(cu, lme) * 2


def test_synthetic_feed_can_respect_venue_sessions():
    quotes = _synthetic(respect_sessions=True, count=300, ticks_per_s=0.05)

    assert all(instrument_session_state(venue("SHFE"), instrument("SHFE.cu"), q.ts_ns).open for q in quotes)
