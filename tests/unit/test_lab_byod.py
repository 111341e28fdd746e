"""A user's own copper dailies, as published, backtested after a column mapping alone.

The same prices written two ways (dd/mm/yy dates under "SHFE Copper ..." headers with
thousands separators and a % column; ISO dates under short headers) give the same figures once
each file has its mapping; the bridged intraday quotes are marked synthetic in the output; the
blank LME day is counted with its reason.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from testkit import ROOT
from test_feed_csv_mapping import LME, SHFE, SHFE_COLUMNS
from xmc_actors.ops.cli import main

CATALOGUE = ROOT / "configs" / "catalogue.yaml"


def _deployment(shfe: dict, lme: dict) -> str:
    def files(spec: dict) -> str:
        return json.dumps([spec])

    return f"""
name: byod-copper
include: [{CATALOGUE}]
base_currency: USD
fx: [{{base: USD, quote: CNY, source: static, rate: 6.85}}]
accounts:
  - {{id: cn, broker: sim, venues: [SHFE], currency: CNY, capital: 100000000}}
  - {{id: us, broker: sim, venues: [LME], currency: USD, capital: 20000000}}
gateways:
  - {{venue: SHFE, adapter: sim, feed: {{kind: replay, params: {{files: {files(shfe)}}}}}}}
  - {{venue: LME, adapter: sim, feed: {{kind: replay, params: {{files: {files(lme)}}}}}}}
strategies:
  - name: cu
    class: band
    legs: [{{instrument: SHFE.cu, account: cn}}, {{instrument: LME.CA3M, account: us}}]
    params: {{signal: ratio, center: 1.185, entry: 0.002, exit: 0.0005, clip: 5, max_position: 10,
              guards: {{require_sessions_open: false}}}}
risk: {{monitors: {{ack_latency_p99_ms: 900}}}}
lab: {{max_duration_s: 864000}}
"""


BRIDGE = {"steps_per_day": 24, "seed": 3, "vol_bps": 60}


def _run(tmp_path: Path, name: str, shfe: dict, lme: dict) -> dict:
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(_deployment(shfe, lme))
    out = tmp_path / f"{name}.json"
    assert main(["validate", str(cfg)]) == 0
    assert main(["backtest", str(cfg), "--policy", "speed,sequential", "--quiet", "--no-ledger", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_published_files_and_the_same_data_reformatted_give_the_same_figures(tmp_path):
    (tmp_path / "shfe.csv").write_text(SHFE)
    (tmp_path / "lme.csv").write_text(LME)
    published = _run(tmp_path, "published",
                     {"instrument": "SHFE.cu", "path": str(tmp_path / "shfe.csv"), "format": "csv",
                      "date_format": "%d/%m/%y", "columns": SHFE_COLUMNS, "bridge": BRIDGE},
                     {"instrument": "LME.CA3M", "path": str(tmp_path / "lme.csv"), "format": "csv",
                      "date_format": "%d/%m/%Y", "columns": {"date": 0, "close": 1}, "bridge": BRIDGE})

    # the same prices as another site would give them: ISO dates, plain numbers, other headers
    shfe2 = "day;o;h;l;c;v\n"
    for cells in list(csv.reader(SHFE.splitlines()))[1:]:
        d, m, y = cells[0].split("/")
        shfe2 += f"20{y}-{m}-{d};" + ";".join(c.replace(",", "") for c in cells[1:6]) + "\n"
    lme2 = "close,when\n"
    for d, c in list(csv.reader(LME.splitlines()))[1:]:
        dd, mm, yyyy = d.split("/")
        lme2 += f"{c.replace(',', '')},{yyyy}-{mm}-{dd}\n"
    (tmp_path / "shfe2.csv").write_text(shfe2)
    (tmp_path / "lme2.csv").write_text(lme2)
    mine = _run(tmp_path, "mine",
                {"instrument": "SHFE.cu", "path": str(tmp_path / "shfe2.csv"), "format": "csv", "delimiter": ";",
                 "thousands": "", "columns": {"date": "day", "open": "o", "high": "h", "low": "l", "close": "c",
                                              "volume": "v"}, "bridge": BRIDGE},
                {"instrument": "LME.CA3M", "path": str(tmp_path / "lme2.csv"), "format": "csv",
                 "columns": {"date": "when", "close": "close"}, "bridge": BRIDGE})

    assert published["quotes"] > 100 and published["synthetic_data"] and published["synthetic_quotes_bridged"] > 100
    assert published["skipped_rows"] and sum(published["skipped_rows"].values()) == 1  # LME's blank day
    assert published["policies"]["speed"]["figures"]["pairs_attempted"] > 0  # it traded
    assert published["policies"] == mine["policies"]
    assert published["quotes"] == mine["quotes"] and published["ratios"] == mine["ratios"]
