"""One ``--format table|json|csv`` on every command that prints data, and ``xmc --version``.

json must be one document ``json.loads`` reads; csv must be read back by :mod:`csv` with the
same content; the table format is drawn by rich (plain, content-wide text when piped). No Ray
here: the risk guard is replaced where the commands would call it, the ledger is a small file.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import platform
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from testkit import ROOT
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.ledger.schema import encode_events
from xmc_actors.ledger.store import LedgerStore
from xmc_actors.model.events import EventKind
from xmc_actors.ops import cmd_ops, cmd_run
from xmc_actors.ops.cli import main
from xmc_actors.ops.output import Table, csv_rows, emit, render_tables
from xmc_actors.runtime.deploy import RunSummary

STATUS = {
    "known": {"strategies": ["cu"], "venues": ["LME", "SHFE"], "instruments": [], "accounts": ["cn-main"]},
    "trading_states": {"strategy:cu": "HALTED"}, "throttled": [],
    "occupancy": {"cn-main": {"ratio": 0.1234, "used": "12", "equity": "100", "currency": "CNY", "level": None}},
    "overall": {"ratio": 0.0, "used": "0", "equity": "1", "currency": "USD", "level": None},
    "open_alerts": [{"level": "red", "monitor": "occupancy", "scope": "account", "key": "cn-main",
                     "message": "occupancy 12 %, above 10 %", "action": "halt"}],
    "registered": ["coordinator"],
    "unresolved_escalations": {"cu-00000007": {"strategy": "cu", "reason": "rollback budget spent",
                                               "residual": {"A": 1}, "ts_ns": 1}},
    "limits": {"default_limits": {"max_order_qty": 50, "collar_pct": 0.05},
               "instruments": {"SHFE.cu": {"max_position": 10}}},
}


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> None:
    def call(args: argparse.Namespace, method: str, *a: Any) -> Any:
        assert method == "status"
        return STATUS
    monkeypatch.setattr(cmd_ops, "_call", call)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- xmc --version -----------------------------------------------------------------------------
def test_version_names_the_package_ray_and_python(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    out = capsys.readouterr().out.strip()
    assert e.value.code == 0
    assert out == f"xmc {version('xmc-actors')} (ray {version('ray')}, python {platform.python_version()})"


# -- the renderer --------------------------------------------------------------------------------
def test_csv_of_several_tables_has_one_header_and_names_each_rows_table():
    tables = [Table("a", ("x", "y"), [(1, "p")]), Table("b", ("y", "z"), [("q", None), ("r", {"k": 1})])]
    rows = read_csv("\n".join(",".join(r) for r in csv_rows(tables)))
    assert rows == [{"table": "a", "x": "1", "y": "p", "z": ""}, {"table": "b", "x": "", "y": "q", "z": ""},
                    {"table": "b", "x": "", "y": "r", "z": '{"k":1}'}]


def test_a_row_of_the_wrong_width_is_refused_naming_the_table():
    with pytest.raises(ValueError, match="table 'alerts': row 1 has 2 cells for 3 columns"):
        Table("alerts", ("a", "b", "c"), [(1, 2, 3), (1, 2)])


def test_piped_tables_are_as_wide_as_their_content_without_trailing_blanks():
    long = "x" * 55 + " end"
    buf = io.StringIO()
    render_tables([Table("t", ("name", "message"), [("a", long), ("bb", "short")], title="things")], buf)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "things"
    assert any(line.startswith("a ") and line.endswith(long) for line in lines)  # not wrapped at 80 columns
    assert all(line == line.rstrip() for line in lines)


def test_a_long_table_keeps_one_header_and_every_row():
    buf = io.StringIO()
    render_tables([Table("t", ("n",), [(i,) for i in range(1203)])], buf)
    lines = buf.getvalue().splitlines()
    assert sum(line.strip() == "n" for line in lines) == 1
    assert [line.strip() for line in lines if line.strip().isdigit()] == [str(i) for i in range(1203)]


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="'xml' is not one of table, json, csv"):
        emit("xml", {}, [])


# -- risk-status, limits show --------------------------------------------------------------------
def test_risk_status_json_is_the_whole_status_as_one_document(guard, capsys):
    assert main(["risk-status", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == STATUS
    assert main(["risk-status", "--json"]) == 0  # the older spelling
    assert json.loads(capsys.readouterr().out) == STATUS


def test_risk_status_csv_holds_every_table(guard, capsys):
    assert main(["risk-status", "--format", "csv"]) == 0
    rows = read_csv(capsys.readouterr().out)
    by = {}
    for r in rows:
        by.setdefault(r["table"], []).append(r)
    assert [(r["scope"], r["state"]) for r in by["trading_states"]] == [("strategy:cu", "HALTED")]
    assert [(r["account"], r["occupancy_pct"]) for r in by["occupancy"]] == [("cn-main", "12.34"), ("overall", "0.0")]
    assert by["open_alerts"][0]["message"] == "occupancy 12 %, above 10 %" and by["open_alerts"][0]["level"] == "red"
    assert json.loads(by["unresolved_escalations"][0]["residual"]) == {"A": 1}
    assert [r["coordinator"] for r in by["coordinators"]] == ["coordinator"]


def test_risk_status_table_shows_each_section(guard, capsys):
    assert main(["risk-status"]) == 0
    out = capsys.readouterr().out
    for word in ("trading states", "HALTED", "capital occupancy", "12.34", "open alerts", "occupancy 12 %, above 10 %",
                 "unresolved escalations", "cu-00000007", "rollback budget spent", "coordinators"):
        assert word in out


def test_json_and_another_format_together_are_refused(guard, capsys):
    assert main(["risk-status", "--json", "--format", "csv"]) == 2
    assert "--json and --format csv: give one" in capsys.readouterr().err


def test_limits_show_in_each_format(guard, capsys):
    assert main(["limits", "show"]) == 0  # json by default, as before
    assert json.loads(capsys.readouterr().out) == STATUS["limits"]
    assert main(["limits", "show", "--format", "csv"]) == 0
    assert read_csv(capsys.readouterr().out) == [
        {"limit": "default_limits.max_order_qty", "value": "50"}, {"limit": "default_limits.collar_pct", "value": "0.05"},
        {"limit": "instruments.SHFE.cu.max_position", "value": "10"}]
    assert main(["limits", "show", "--format", "table"]) == 0
    assert "instruments.SHFE.cu.max_position   10" in capsys.readouterr().out


# -- status ------------------------------------------------------------------------------------------
def test_status_tables_as_csv_and_json():
    info = {"name": "demo", "namespace": "xmc-demo", "state": "RUNNING", "ledger": "/l"}
    status = {"gateways-copper": {"state": "UP", "sessions": {"gateway-SHFE": {"venue": "SHFE", "state": "UP"},
                                                              "gateway-LME": {"venue": "LME", "state": "DOWN"}}},
              "coordinator": {"in_flight": {"WORKING": 2}, "outcomes": {"HEDGED": 5, "ROLLED_BACK": 1}},
              "risk-guard": {"trading_states": {"venue:LME": "REDUCING"}, "open_alerts": []}}
    tables = cmd_run.status_tables(info, status)
    buf = io.StringIO()
    emit("csv", {}, tables, buf)
    rows = read_csv(buf.getvalue())
    assert {"table": "deployment", "deployment": "demo", "state": "RUNNING"}.items() <= rows[0].items()
    gw = next(r for r in rows if r["table"] == "actors" and r["actor"] == "gateways-copper")
    assert gw["state"] == "UP" and gw["detail"] == "SHFE UP, LME DOWN"
    assert [(r["pairs"], r["count"]) for r in rows if r["table"] == "pairs"] == [
        ("in flight", "2"), ("HEDGED", "5"), ("ROLLED_BACK", "1")]
    assert [(r["scope"], r["state"]) for r in rows if r["table"] == "trading_states"] == [("venue:LME", "REDUCING")]
    buf = io.StringIO()
    emit("json", {"deployment": info, "actors": status}, tables, buf)
    assert json.loads(buf.getvalue())["actors"]["coordinator"]["outcomes"]["HEDGED"] == 5


# -- validate ---------------------------------------------------------------------------------------------
def test_validate_json_of_a_valid_deployment(capsys):
    assert main(["validate", str(ROOT / "configs" / "demo.yaml"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is True and doc["kind"] == "deployment" and doc["problems"] == []
    assert [s["name"] for s in doc["deployment"]["strategies"]] == ["gold-sge-comex", "copper-shfe-lme"]
    assert {"name": "gateway-LME", "venue": "LME", "adapter": "fix"}.items() <= doc["deployment"]["gateways"][3].items()


def test_validate_json_and_csv_of_an_invalid_file_name_file_line_and_key(tmp_path, capsys):
    shutil.copy(ROOT / "configs" / "catalogue.yaml", tmp_path / "catalogue.yaml")
    text = (ROOT / "configs" / "demo.yaml").read_text().replace("      entry: 0.012\n", "      entry: 0.012\n      entry: 0.5\n", 1)
    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    line = text.splitlines().index("      entry: 0.5") + 1

    assert main(["validate", str(path), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and doc["deployment"] is None
    assert doc["problems"] == [{"file": str(path), "line": line, "path": "strategies[0].params.entry",
                                "message": f"duplicate key 'entry' (first at line {line - 1}, again at line {line}): "
                                           "a key may appear only once in a mapping"}]
    assert main(["validate", str(path), "--format", "csv"]) == 1
    (row,) = read_csv(capsys.readouterr().out)
    assert (row["file"], row["line"], row["path"]) == (str(path), str(line), "strategies[0].params.entry")


def test_validate_table_is_the_summary_then_valid(capsys):
    assert main(["validate", "configs/demo.yaml"]) == 0
    out = capsys.readouterr().out
    assert "copper-shfe-lme" in out and "gateways-copper" in out and out.rstrip().endswith("configs/demo.yaml: valid")


# -- audit query and trace -------------------------------------------------------------------------------------
@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    mk = EventMaker(SimClock(1_700_000_000_000_000_000), "coordinator", node=1)
    evs = [mk.make(EventKind.INTENT, decision_id="cu-00000001", strategy="cu", reason="spread 3.1 bps"),
           mk.make(EventKind.ORDER_SENT, decision_id="cu-00000001", strategy="cu", venue="SHFE", instrument="SHFE.cu",
                   client_order_id="cu-00000001:A:0", reason="leg A, a, b"),
           mk.make(EventKind.PAIR_STATE, decision_id="cu-00000001", strategy="cu", state="HEDGED")]
    store = LedgerStore(tmp_path / "shard-0.duckdb")
    store.append(encode_events(evs).table, stored_ns=1_700_000_001_000_000_000)
    store.close()
    return tmp_path


def test_audit_query_json_is_one_array_and_csv_reads_back(ledger, capsys):
    assert main(["audit", "query", "--ledger", str(ledger), "--format", "json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in events] == ["INTENT", "ORDER_SENT", "PAIR_STATE"]
    assert main(["audit", "query", "--ledger", str(ledger), "--format", "csv"]) == 0
    rows = read_csv(capsys.readouterr().out)
    assert [(r["kind"], r["reason"]) for r in rows] == [("INTENT", "spread 3.1 bps"), ("ORDER_SENT", "leg A, a, b"),
                                                       ("PAIR_STATE", "")]


def test_audit_query_of_nothing_is_an_empty_array(ledger, capsys):
    assert main(["audit", "query", "--ledger", str(ledger), "--format", "json", "--strategy", "nosuch"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_audit_trace_in_each_format(ledger, capsys):
    assert main(["audit", "trace", "cu-00000001", "--ledger", str(ledger), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["decision_id"] == "cu-00000001" and [e["kind"] for e in doc["events"]] == ["INTENT", "ORDER_SENT", "PAIR_STATE"]
    assert main(["audit", "trace", "cu-00000001", "--ledger", str(ledger), "--format", "csv"]) == 0
    rows = read_csv(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == ["INTENT", "ORDER_SENT", "PAIR_STATE"]
    assert rows[1]["order_id"] == "cu-00000001:A:0" and rows[1]["time_utc"].startswith("2023-11-14")
    assert main(["audit", "trace", "cu-00000001", "--ledger", str(ledger)]) == 0
    out = capsys.readouterr().out
    assert "cu-00000001, hop by hop" in out and "ORDER_SENT" in out and "leg A, a, b" in out


# -- run / stop summary --------------------------------------------------------------------------------------------
def test_a_run_summary_as_json_and_csv(capsys):
    s = RunSummary(name="demo", wall_s=1.5, pairs_by_outcome={"HEDGED": 3}, quotes=10, intents=3,
                   alerts_by_level={"red": 1}, slippage_bps={}, exposure_ms={}, replenished=0, rolled_back=0,
                   escalated=0, strategy_errors=0, ledger_path="/l", halted={"cu": "HALTED by the risk guard"})
    cmd_run.print_summary(s, "json")
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(dataclasses.asdict(s)))
    cmd_run.print_summary(s, "csv")
    rows = {r["field"]: r["value"] for r in read_csv(capsys.readouterr().out)}
    assert rows["pairs_by_outcome.HEDGED"] == "3" and rows["halted.cu"] == "HALTED by the risk guard"
    cmd_run.print_summary(s, "table")
    assert "run 'demo' finished in 1.5 s" in capsys.readouterr().out


def test_run_and_status_accept_the_format_option():
    from xmc_actors.ops.cli import build_parser

    parser = build_parser()
    for argv in (["run", "c.yaml", "--format", "csv"], ["status", "--format", "json"], ["stop", "--format", "table"],
                 ["validate", "c.yaml", "--format", "json"], ["audit", "trace", "d", "--format", "csv"],
                 ["audit", "query", "--format", "json"], ["risk-status", "--format", "csv"],
                 ["limits", "show", "--format", "table"]):
        assert parser.parse_args(argv).format == argv[-1]


def test_yaml_is_not_a_format(capsys):
    with pytest.raises(SystemExit):
        main(["risk-status", "--format", "yaml"])
    assert "invalid choice: 'yaml'" in capsys.readouterr().err
