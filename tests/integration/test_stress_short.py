"""`xmc stress` in its short form (CI; the full form: `xmc stress configs/stress.yaml` by hand):
six strategies on SHFE vs LME copper under a quote burst, a silent venue, all firing at once, a
limit-locked venue and a gap through the price band, in 12 s. Nothing may be lost, duplicated
or left open; every scenario must be applied and bite (the venues refuse orders for the reasons
the extreme markets give); the report has pairs per second and latencies against the floor."""
from __future__ import annotations

import json

import pytest

from testkit import ROOT
from xmc_actors.ledger.audit import AuditReader
from xmc_actors.ops.stress import LOST_COLUMNS, report_text, run_stress
from xmc_actors.runtime.config import load_config

pytestmark = pytest.mark.ray


def test_the_short_stress_run_loses_nothing_and_reports_what_held(tmp_path):
    cfg = load_config(ROOT / "configs" / "stress.yaml")
    rep = run_stress(cfg, tmp_path, short=True, echo=print)
    print(report_text(rep))
    assert rep.lost == dict.fromkeys(LOST_COLUMNS, 0) and rep.lost_events == 0, rep.details
    assert not any(rep.integrity.values()), rep.details
    assert [s.kind for s in rep.scenarios if s.applied] == [s.kind for s in cfg.stress.scenarios], rep.scenarios
    assert rep.pairs > 10 and rep.pairs_per_s > 0
    for hop in ("decision_to_sent_ms", "order_ack_ms"):
        d = rep.latency[hop]
        assert d["n"] > 0 and 0 < d["p50"] <= d["p95"] <= d["p99"] <= d["max"]
    assert 0 < rep.floor["actor_call_ms_p50"] < 50 and rep.floor["decision_to_sent_ms_p50_vs_floor_ratio"] > 1
    assert rep.passed, report_text(rep)
    with AuditReader(rep.ledger) as r:
        rejects = dict(r.con.execute("SELECT reason, count(*) FROM events WHERE kind = 'ORDER_REPORT' "
                                     "AND outcome = 'REJECTED' GROUP BY 1").fetchall())
    assert rejects.get("LIMIT_LOCKED", 0) + rejects.get("PRICE_OUT_OF_LIMIT", 0) > 0, rejects
    doc = json.loads(rep.to_json())
    assert doc["lost_events"] == 0 and {c["bound"] for c in doc["checks"]} >= {"max_lost_events", "min_pairs_per_s"}
