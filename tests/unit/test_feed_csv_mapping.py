"""Bring your own data: copper dailies as exchanges and data sites publish them (dd/mm/yy dates,
headers with leading spaces, thousands separators, % change columns, a close-only LME file,
blank cells, a High = Low day) load after a column mapping alone; ``xmc validate`` reads the
whole file and names the file's own line of each bad cell; the bridge between daily closes is
seeded and marked synthetic."""
from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from testkit import ROOT, data_dir, instrument, venue
from xmc_actors.feeds import build_feed
from xmc_actors.feeds.config import ReplayFile
from xmc_actors.feeds.csv_source import CsvLayoutError, load_mapped_csv
from xmc_actors.feeds.replay import load_bars
from xmc_actors.model.config import FeedConfig
from xmc_actors.ops.cli import main
from xmc_actors.runtime.config import ConfigError, load_config

# as a data site exports SHFE copper: title-cased headers with a leading space, dd/mm/yy dates,
# quoted numbers with thousands separators, a % change column; a day with blank open/high/low
# (line 5) and a limit-locked day with High = Low and volume (line 6)
SHFE = """SHFE Copper Exchange Date, SHFE Copper Open, SHFE Copper High, SHFE Copper Low, SHFE Copper Close, SHFE Copper Volume, SHFE Copper %Chg
02/01/19,"48,010","48,200","47,520","47,670","120,345",-0.71%
03/01/19,"47,600","47,900","47,200","47,380","98,100",-0.61%
04/01/19,,,,"47,900",,1.10%
07/01/19,"48,000","48,000","48,000","48,000","5,000",0.21%
08/01/19,"48,100","48,500","47,900","48,420","7,000",0.88%
09/01/19,"48,300","48,700","48,100","48,650","8,000",0.48%
"""

# CME copper in US cents per pound, newest first, as CME's site lists it
CME = """CME Copper Exchange Date,CME Copper Open,CME Copper High,CME Copper Low,CME Copper Close,CME Copper %Chg
09/01/19,265.10,268.00,264.50,267.45,0.9%
08/01/19,263.00,266.10,262.40,265.05,0.6%
07/01/19,262.00,264.30,260.50,263.50,1.4%
04/01/19,257.35,260.90,256.10,259.85,1.1%
03/01/19,262.25,262.95,256.30,257.05,-2.4%
02/01/19,263.75,264.95,261.10,263.45,-0.1%
"""

# LME: close only, with a blank day
LME = """Date,LME Copper Close
02/01/2019,"5,890.50"
03/01/2019,"5,745.00"
04/01/2019,
07/01/2019,"5,930.00"
08/01/2019,"5,950.00"
09/01/2019,"5,990.25"
"""

SHFE_COLUMNS = {"date": "SHFE Copper Exchange Date", "open": "SHFE Copper Open", "high": "SHFE Copper High",
                "low": "SHFE Copper Low", "close": "SHFE Copper Close", "volume": "SHFE Copper Volume"}


def spec(path: Path, instrument_id: str, **kw) -> ReplayFile:
    return ReplayFile.model_validate({"instrument": instrument_id, "path": str(path), "format": "csv", **kw})


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in (("shfe", SHFE), ("cme", CME), ("lme", LME)):
        out[name] = tmp_path / f"{name}_copper.csv"
        out[name].write_text(text)
    return out


def venue_tz(tz: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(tz)


def _days(quotes, tz: str) -> list[dt.date]:
    return [dt.datetime.fromtimestamp(q.ts_ns / 1e9, venue_tz(tz)).date() for q in quotes]


# ----------------------------------------------------------------------------- loading
def test_shfe_file_as_published_loads_by_its_own_headers_keeping_every_trading_day(files):
    s = spec(files["shfe"], "SHFE.cu", date_format="%d/%m/%y",
             columns={k: v.lower() for k, v in SHFE_COLUMNS.items()})  # names match whatever their case and spaces
    quotes, rep = load_mapped_csv(s.path, s, instrument("SHFE.cu"), venue("SHFE"))

    assert rep.rows == 6 and rep.kept == 6 and rep.skipped == []
    assert _days(quotes, "Asia/Shanghai") == [dt.date(2019, 1, d) for d in (2, 3, 4, 7, 8, 9)]
    closes = [q.last for q in quotes]
    assert closes == [Decimal(x) for x in ("47670", "47380", "47900", "48000", "48420", "48650")]
    # the blank open/high/low took the close; the limit-locked day (High = Low, 5,000 lots) is kept
    assert any(line == 4 and "blank open,high,low" in why for line, why in rep.adjusted)
    # one quote per day at the close (14:59 Shanghai), marked as a close
    first = dt.datetime.fromtimestamp(quotes[0].ts_ns / 1e9, venue_tz("Asia/Shanghai"))
    assert (first.hour, first.minute) == (14, 59)
    assert all(q.origin == "close" and not q.synthetic for q in quotes)
    # the file has no settlement column: no price-limit reference is invented from the close
    assert all(q.settlement is None for q in quotes)
    quotes, _ = load_mapped_csv(s.path, s, instrument("SHFE.cu"), venue("SHFE"), limit_reference="previous_close")
    assert quotes[1].settlement == Decimal("47670")


def test_cme_file_in_cents_newest_first_is_scaled_and_read_oldest_first(files):
    s = spec(files["cme"], "COMEX.HG", date_format="%d/%m/%y", scale="0.01",
             columns={"date": "CME Copper Exchange Date", "open": "CME Copper Open", "high": "CME Copper High",
                      "low": "CME Copper Low", "close": "CME Copper Close"})
    quotes, rep = load_mapped_csv(s.path, s, instrument("COMEX.HG"), venue("COMEX"))

    assert rep.kept == 6 and not rep.skipped
    assert [q.last for q in quotes] == [Decimal(x) for x in ("2.6345", "2.5705", "2.5985", "2.6350", "2.6505", "2.6745")]
    assert any("newest first" in why for _, why in rep.adjusted)


def test_close_only_lme_file_skips_its_blank_day_and_says_why(files):
    s = spec(files["lme"], "LME.CA3M", date_format="%d/%m/%Y", columns={"date": 0, "close": 1})  # by index
    quotes, rep = load_mapped_csv(s.path, s, instrument("LME.CA3M"), venue("LME"))

    assert rep.rows == 6 and rep.kept == 5
    assert rep.skipped == [(4, "blank price: column 'LME Copper Close'")]
    assert rep.by_reason() == {"blank price": 1}
    assert quotes[0].last == Decimal("5890.5")

    carried = s.model_copy(update={"blanks": "carry_forward"})
    quotes, rep = load_mapped_csv(s.path, carried, instrument("LME.CA3M"), venue("LME"))
    assert rep.kept == 6 and [q.last for q in quotes][2] == Decimal("5745.0")


def test_a_missing_column_names_the_mapping_and_what_the_header_holds(files):
    s = spec(files["shfe"], "SHFE.cu", date_format="%d/%m/%y", columns={**SHFE_COLUMNS, "close": "Close"})
    with pytest.raises(CsvLayoutError) as e:
        load_mapped_csv(s.path, s, instrument("SHFE.cu"), venue("SHFE"))
    assert "close: column 'Close'" in str(e.value) and "'SHFE Copper Close'" in str(e.value)


def test_a_replay_feed_of_mapped_files_is_built_from_the_gateway_configuration(files):
    params = {"files": [{"instrument": "SHFE.cu", "path": str(files["shfe"]), "format": "csv",
                         "date_format": "%d/%m/%y", "columns": SHFE_COLUMNS}]}
    src = build_feed(FeedConfig(kind="replay", params=params), venue("SHFE"), [instrument("SHFE.cu")])
    assert src.remaining() == 6
    assert src.reports[0].kept == 6  # type: ignore[attr-defined]


def test_numbers_with_quotes_spaces_percent_and_decimal_commas(tmp_path):
    p = tmp_path / "eu.csv"
    p.write_text('Datum;Schluss\n2019-01-02;" 5.890,50 "\n2019-01-03;5.745,00\n')
    s = spec(p, "LME.CA3M", delimiter=";", thousands=".", decimal=",", columns={"date": "datum", "close": "schluss"})
    quotes, rep = load_mapped_csv(p, s, instrument("LME.CA3M"), venue("LME"))
    assert [q.last for q in quotes] == [Decimal("5890.5"), Decimal("5745.0")]

    # the same file read with the default (thousands ",", decimal "."): every price is an error, not a wrong number
    wrong = spec(p, "LME.CA3M", delimiter=";", columns={"date": "datum", "close": "schluss"})
    quotes, rep = load_mapped_csv(p, wrong, instrument("LME.CA3M"), venue("LME"))
    assert quotes == [] and rep.by_reason() == {"not a number": 2}


def test_minute_and_tick_files_are_stamped_in_their_time_zone(tmp_path):
    minute = tmp_path / "minute.csv"
    minute.write_text("Date,Time,Close\n2019-01-02,09:01,47670\n2019-01-02,09:02,47680\n")
    s = spec(minute, "SHFE.cu", timezone="Asia/Shanghai", columns={"date": "Date", "time": "Time", "close": "Close"})
    quotes, _ = load_mapped_csv(minute, s, instrument("SHFE.cu"), venue("SHFE"))
    assert [q.ts_ns for q in quotes] == [int(dt.datetime(2019, 1, 2, 1, m, tzinfo=dt.timezone.utc).timestamp()) * 10**9
                                         for m in (1, 2)]
    assert all(q.origin is None for q in quotes)

    tick = tmp_path / "tick.csv"
    tick.write_text("ts,bid,ask\n1546390860000,5890.5,5891.0\n1546390860500,5890.5,5891.5\n")
    s = spec(tick, "LME.CA3M", date_format="epoch_ms", columns={"date": "ts", "bid": "bid", "ask": "ask"})
    quotes, rep = load_mapped_csv(tick, s, instrument("LME.CA3M"), venue("LME"))
    assert [q.ts_ns for q in quotes] == [1546390860000 * 10**6, 1546390860500 * 10**6]
    assert (quotes[1].bid, quotes[1].ask) == (Decimal("5890.5"), Decimal("5891.5"))


def test_options_of_a_mapped_csv_are_refused_on_other_formats_and_a_bad_zone_is_named():
    with pytest.raises(ValueError, match="only for format csv"):
        ReplayFile.model_validate({"instrument": "SHFE.cu", "path": "x.csv", "format": "ohlc_csv", "date_format": "%d/%m/%y"})
    with pytest.raises(ValueError, match="not an IANA time zone"):
        ReplayFile.model_validate({"instrument": "SHFE.cu", "path": "x.csv", "format": "csv", "timezone": "Shanghai",
                                   "columns": {"date": 0, "close": 1}})
    with pytest.raises(ValueError, match="needs columns"):
        ReplayFile.model_validate({"instrument": "SHFE.cu", "path": "x.csv", "format": "csv"})


# ----------------------------------------------------------------------------- the fixed formats
def test_fixed_format_loader_keeps_a_flat_bar_with_volume_and_a_close_with_blank_open_high_low(tmp_path):
    p = tmp_path / "bars.csv"
    p.write_text("date,open,high,low,close,volume\n"
                 "2019-01-02,100,101,99,100.5,10\n"
                 "2019-01-03,,,,101.0,\n"          # a valid close, blank open/high/low
                 "2019-01-04,102,102,102,102,500\n"  # limit-locked: High = Low, with volume
                 "2019-01-07,102,102,102,102,0\n"    # no range, no volume, the close repeated: a placeholder
                 "2019-01-08,103,104,102,103.5,20\n")
    bars, rep = load_bars(p, "ohlc_csv")
    assert [b.date.day for b in bars] == [2, 3, 4, 8]
    assert bars[1].open == bars[1].high == bars[1].low == Decimal("101.0")
    assert [line for line, _ in rep.skipped] == [5] and "placeholder" in rep.skipped[0][1]


def test_the_real_comex_file_still_drops_its_christmas_placeholder_and_keeps_the_rest():
    bars, rep = load_bars(data_dir() / "real" / "comex_gc_daily.csv", "comex_daily")
    days = {b.date for b in bars}
    assert dt.date(2018, 12, 25) not in days and dt.date(2018, 12, 24) in days
    assert all("placeholder" in why for _, why in rep.skipped)


# ----------------------------------------------------------------------------- the bridge
def test_bridge_between_daily_closes_is_seeded_inside_the_sessions_and_marked_synthetic(files):
    s = spec(files["lme"], "LME.CA3M", date_format="%d/%m/%Y", columns={"date": 0, "close": 1},
             bridge={"steps_per_day": 8, "seed": 5, "vol_bps": 150})
    inst, lme = instrument("LME.CA3M"), venue("LME")
    a, _ = load_mapped_csv(s.path, s, inst, lme)
    b, _ = load_mapped_csv(s.path, s, inst, lme)
    other, _ = load_mapped_csv(s.path, s.model_copy(update={"bridge": s.bridge.model_copy(update={"seed": 6})}), inst, lme)

    assert a == b                                    # same seed, same path
    assert [q.last for q in a] != [q.last for q in other]
    closes = [q for q in a if q.origin == "close"]
    bridged = [q for q in a if q.synthetic]
    assert len(closes) == 5 and len(bridged) == 4 * 7  # 7 synthetic quotes before each of the 4 later closes
    assert all(q.origin == "bridge" for q in bridged)
    assert [q.ts_ns for q in a] == sorted(q.ts_ns for q in a)
    from xmc_actors.core.calendar import session_state
    assert all(session_state(lme, q.ts_ns).open for q in bridged)
    # the path is pinned at the recorded closes, which stay as recorded
    assert [q.last for q in closes] == [inst.round_price(Decimal(x)) for x in ("5890.5", "5745.0", "5930.0", "5950.0", "5990.25")]


# ----------------------------------------------------------------------------- xmc validate
def deployment(tmp_path: Path, shfe: dict, lme: dict) -> Path:
    shutil.copy(ROOT / "configs" / "catalogue.yaml", tmp_path / "catalogue.yaml")
    doc = {
        "name": "byod-copper",
        "include": ["catalogue.yaml"],
        "fx": [{"base": "USD", "quote": "CNY", "source": "file",
                "file": str(data_dir() / "real" / "fred_dexchus_usdcny_daily.csv")}],
        "accounts": [{"id": "cn", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 50_000_000},
                     {"id": "us", "broker": "sim", "venues": ["LME"], "currency": "USD", "capital": 10_000_000}],
        "gateways": [{"venue": "SHFE", "feed": {"kind": "replay", "params": {"files": [shfe]}}},
                     {"venue": "LME", "feed": {"kind": "replay", "params": {"files": [lme]}}}],
        "strategies": [{"name": "cu", "class": "band",
                        "legs": [{"instrument": "SHFE.cu", "account": "cn"}, {"instrument": "LME.CA3M", "account": "us"}],
                        "params": {"signal": "ratio", "entry": 0.02, "exit": 0.005, "center": 1.0, "clip": 5,
                                   "max_position": 10}}],
    }
    p = tmp_path / "byod.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def shfe_entry(path: Path, **kw) -> dict:
    return {"instrument": "SHFE.cu", "path": str(path), "format": "csv", "date_format": "%d/%m/%y",
            "columns": dict(SHFE_COLUMNS), **kw}


def lme_entry(path: Path, **kw) -> dict:
    return {"instrument": "LME.CA3M", "path": str(path), "format": "csv", "date_format": "%d/%m/%Y",
            "columns": {"date": "Date", "close": "LME Copper Close"}, **kw}


def test_validate_passes_the_published_files_once_mapped(tmp_path, files, capsys):
    cfg = load_config(deployment(tmp_path, shfe_entry(files["shfe"]), lme_entry(files["lme"])))
    assert cfg.gateways[0].feed.params["files"][0]["columns"]["close"] == "SHFE Copper Close"
    assert main(["validate", str(tmp_path / "byod.yaml")]) == 0
    assert "valid" in capsys.readouterr().out


def test_validate_names_a_data_file_that_does_not_exist(tmp_path, files, capsys):
    path = deployment(tmp_path, shfe_entry(tmp_path / "nope.csv"), lme_entry(files["lme"]))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "gateways[0].feed.params.files[0].path: replay file: file" in err and "nope.csv does not exist" in err


def test_validate_names_a_column_the_file_does_not_have_and_what_it_has(tmp_path, files, capsys):
    path = deployment(tmp_path, shfe_entry(files["shfe"], columns={**SHFE_COLUMNS, "close": "Close"}),
                      lme_entry(files["lme"]))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "gateways[0].feed.params.files[0].columns: replay file: shfe_copper.csv: no such column" in err
    assert "close: column 'Close'" in err and "'SHFE Copper Close'" in err


def test_validate_reads_the_whole_file_and_gives_the_line_of_a_bad_cell(tmp_path, capsys):
    rows = [f"{(dt.date(2019, 1, 1) + dt.timedelta(days=k)).strftime('%d/%m/%y')},48000,48100,47900,\"48,050\",100,0.1%"
            for k in range(200)]
    rows[15] = rows[15].replace('"48,050"', '"12,3x4"')        # line 17 of the file (header on line 1)
    rows[150] = rows[150].replace("48000", "48OOO", 1)         # line 152: the open
    p = tmp_path / "prices.csv"
    p.write_text(SHFE.splitlines()[0] + "\n" + "\n".join(rows) + "\n")
    lme = tmp_path / "lme.csv"
    lme.write_text(LME)
    path = deployment(tmp_path, shfe_entry(p), lme_entry(lme))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "prices.csv line 17: column 'SHFE Copper Close': '12,3x4' is not a number" in err
    assert "prices.csv line 152: column 'SHFE Copper Open': '48OOO' is not a number" in err
    assert "2 problems found" in err


def test_validate_of_a_date_in_the_wrong_format_says_which_line_and_format(tmp_path, files):
    path = deployment(tmp_path, shfe_entry(files["shfe"], date_format="%Y-%m-%d"), lme_entry(files["lme"]))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msgs = "\n".join(e.value.messages)
    assert "shfe_copper.csv line 2: column 'SHFE Copper Exchange Date': '02/01/19' is not a date in the format %Y-%m-%d" in msgs


def test_validate_of_a_10k_row_file_is_quick(tmp_path, files):
    import time

    start = dt.date(1990, 1, 1)
    rows = [f"{(start + dt.timedelta(days=k)).strftime('%d/%m/%y')},\"48,000\",\"48,100\",\"47,900\",\"48,050\",\"1,000\",0.1%"
            for k in range(10_000)]
    p = tmp_path / "big.csv"
    p.write_text(SHFE.splitlines()[0] + "\n" + "\n".join(rows) + "\n")
    entry = shfe_entry(p, date_format="%d/%m/%y")
    path = deployment(tmp_path, entry, lme_entry(files["lme"]))
    t0 = time.perf_counter()
    load_config(path)                  # every one of the 10,000 rows read and checked
    took = time.perf_counter() - t0
    assert took < 5.0, took


def test_closes_and_bridge_quotes_stay_marked_through_the_gateway(tmp_path, files):
    from xmc_actors.actors.gateway import build_core
    from xmc_actors.core.sink import MemorySink

    cfg = load_config(deployment(tmp_path, shfe_entry(files["shfe"]),
                                 lme_entry(files["lme"], bridge={"steps_per_day": 4, "seed": 1})))
    core, feed, clock = build_core(cfg, "LME", MemorySink())
    published = []
    while (q := feed.next()) is not None:
        clock.set(q.ts_ns)  # type: ignore[attr-defined]
        published += core.on_market(q)
    assert {q.origin for q in published} == {"close", "bridge"}
    assert sum(q.synthetic for q in published) == 4 * 3
