"""The acceptance report (验收): each strategy's figures from its real trail against the targets,
each marked met or not with the numbers, the stage history and a stress result attached; one
self-contained HTML page and JSON, from a ledger by `xmc audit acceptance`."""
from __future__ import annotations

import json

import pytest

from testkit import ROOT
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.lab.compare import backtest
from xmc_actors.lab.engine import LabRun
from xmc_actors.ledger.acceptance import acceptance, build_html
from xmc_actors.model.events import EventKind
from xmc_actors.model.stages import AcceptanceConfig, AcceptanceTargets
from xmc_actors.ops.cli import main
from xmc_actors.runtime.config import load_config

COPPER = ROOT / "configs" / "lab" / "copper.yaml"
NAME = "copper-shfe-lme"
TARGETS = AcceptanceTargets(min_pairs=10, min_success_rate=0.9, min_sync_fill_rate=0.9, max_escalations=0)


def _cfg():
    cfg = load_config(COPPER)
    return cfg.model_copy(update={"lab": cfg.lab.model_copy(update={"max_duration_s": 600})})


@pytest.fixture(scope="module")
def trails():
    cfg = _cfg()
    return {p: LabRun(cfg, policy=p, seed=5).run().sink.events for p in ("speed", "price")}


def _stage_events(t0: int):
    mk = EventMaker(SimClock(t0), "strategy-host-0")
    return [mk.make(EventKind.STAGE, ts_ns=t0, strategy=NAME, reason="promote: shadow -> canary (gate passed)",
                    operator="alice", action="promote", outcome="CHANGED", stage="canary",
                    **{"from": "shadow", "to": "canary"}, gate={"passed": True}),
            mk.make(EventKind.STAGE, ts_ns=t0 + 5, strategy=NAME, reason="promote: canary -> live refused: pairs 3",
                    operator="alice", action="promote", outcome="REFUSED", stage="canary",
                    **{"from": "canary", "to": "live"}, gate={"passed": False})]


def test_figures_meeting_every_target_are_accepted_and_missing_ones_say_which_with_the_numbers(trails):
    cfg = AcceptanceConfig(targets=TARGETS)
    t0 = min(e.ts_ns for e in trails["speed"]) - 1
    good = acceptance(trails["speed"] + _stage_events(t0), config=cfg, stages={NAME: "shadow"})
    s = good["strategies"][NAME]
    assert good["accepted"] and s["accepted"] and all(t["met"] for t in s["targets"])
    assert s["counts"]["pairs_by_stage"] == {"canary": s["figures"]["pairs"]}  # every pair ran in canary
    assert [(h["action"], h["outcome"]) for h in s["stage_history"]] == [("promote", "CHANGED"), ("promote", "REFUSED")]
    assert s["stage_at_end"] == "canary"
    bad = acceptance(trails["price"], config=cfg)
    b = bad["strategies"][NAME]
    assert not bad["accepted"] and not b["accepted"]
    assert {t["bound"] for t in b["targets"] if not t["met"]} == {"min_success_rate", "min_sync_fill_rate"}
    assert "success rate 0.6522 misses >= 0.9" in b["why"] and bad["reasons"] == [f"{NAME}: {b['why']}"]


def test_a_failed_stress_run_attached_keeps_the_report_from_acceptance_and_the_page_is_self_contained(trails):
    stress = {"passed": False, "config": "stress.yaml", "duration_s": 12, "pairs_per_s": 1.5, "lost_events": 0,
              "escalations": 2, "checks": [{"bound": "max_escalations", "limit": 0, "value": 2, "met": False}],
              "scenarios": [{"kind": "venue_silent", "at_s": 3.0, "target": "LME", "applied": True, "note": "5 s"}]}
    doc = acceptance(trails["speed"], config=AcceptanceConfig(targets=TARGETS), stress=stress)
    assert not doc["accepted"] and doc["strategies"][NAME]["accepted"]
    assert "the stress run failed" in doc["reasons"]
    page = build_html(doc)
    assert "NOT ACCEPTED" in page and "max_escalations" in page and "venue_silent" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    json.dumps(doc, default=str)


def test_no_pairs_in_the_period_is_not_accepted_and_says_so(trails):
    doc = acceptance(trails["speed"], config=AcceptanceConfig(targets=TARGETS), since_ns=2**62)
    s = doc["strategies"][NAME]
    assert not doc["accepted"] and s["figures"]["pairs"] == 0 and "pairs 0 misses >= 10" in s["why"]
    assert acceptance([], config=AcceptanceConfig())["reasons"] == ["no strategy traded in the period"]


def test_xmc_audit_acceptance_reads_a_ledger_and_writes_html_and_json(tmp_path, capsys):
    cfg = _cfg()
    backtest(cfg, ["speed"], seed=5, ledger_root=tmp_path / "ledger")
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"include: [{COPPER}]\nacceptance:\n  targets: {{min_pairs: 10, min_success_rate: 0.99}}\n")
    out = tmp_path / "acc.html"
    code = main(["audit", "acceptance", "--ledger", str(tmp_path / "ledger" / "speed"), "--targets", str(targets),
                 "--out", str(out)])
    cap = capsys.readouterr()
    text = cap.out
    assert code == 1, cap.err
    assert "NOT ACCEPTED" in text and "success rate" in text and "misses >= 0.99" in text
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["strategies"][NAME]["figures"]["pairs"] > 10 and out.read_text().startswith("<!doctype html>")
    assert main(["audit", "acceptance", "--ledger", str(tmp_path / "ledger" / "speed"), "--targets", str(targets),
                 "--strategy", "nope", "--out", str(out)]) == 2
    assert "--strategy 'nope': not in" in capsys.readouterr().err
