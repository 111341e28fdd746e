"""The stress test's parts that need no Ray: its settings refuse what makes no sense, the short
form scales the story to fit, only simulated venues are driven, thresholds judge the figures."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from testkit import ROOT
from xmc_actors.model.stages import StressConfig, StressThresholds
from xmc_actors.ops.cli import main
from xmc_actors.ops.stress import ScenarioResult, StressReport, judge, report_text, scaled_scenarios, stress_deployment
from xmc_actors.runtime.config import load_config

STRESS = ROOT / "configs" / "stress.yaml"


def test_the_example_stress_file_is_valid_and_names_every_extreme_market():
    cfg = load_config(STRESS)
    assert {s.kind for s in cfg.stress.scenarios} == {"gap_through_band", "limit_locked", "venue_silent",
                                                       "quote_burst", "all_fire"}
    assert len(cfg.strategies) >= 5 and cfg.stress.thresholds.max_lost_events == 0


def test_a_scenario_that_is_none_and_a_negative_time_are_refused_with_the_field():
    with pytest.raises(ValidationError, match="scenarios.0.kind"):
        StressConfig.model_validate({"scenarios": [{"kind": "meteor"}]})
    with pytest.raises(ValidationError, match="scenarios.0.at_s"):
        StressConfig.model_validate({"scenarios": [{"kind": "all_fire", "at_s": -1}]})


def test_the_short_form_plays_the_same_story_in_less_time():
    st = load_config(STRESS).stress
    short = scaled_scenarios(st, 12.0)
    assert [s.kind for s in short] == [s.kind for s in st.scenarios]
    k = 12.0 / st.duration_s
    assert [s.at_s for s in short] == pytest.approx([s.at_s * k for s in st.scenarios])
    assert all(s.at_s < 12.0 for s in short) and min(s.duration_s for s in short) >= 0.5
    assert scaled_scenarios(st, st.duration_s * 2) == list(st.scenarios)  # never stretched


def test_only_simulated_venues_are_driven_and_the_run_gets_its_own_ledger_and_journals(tmp_path):
    cfg = load_config(STRESS)
    run = stress_deployment(cfg, tmp_path, "ns-x")
    assert run.ledger.path == str(tmp_path / "ledger") and run.ray.namespace == "ns-x"
    assert all(g.params["state_dir"] == str(tmp_path / "venues") for g in run.gateways)
    fix = cfg.model_copy(update={"gateways": (cfg.gateways[0].model_copy(update={"adapter": "fix"}), cfg.gateways[1])})
    with pytest.raises(ValueError, match=r"simulated venues only .*gateway-SHFE \(fix\)"):
        stress_deployment(fix, tmp_path, "ns-x")


def test_thresholds_judge_each_figure_and_lost_events_always_count():
    lat = {"decision_to_sent_ms": {"p99": 40.0}, "order_ack_ms": {"p99": 900.0}}
    th = StressThresholds(min_pairs_per_s=1.0, max_decision_to_sent_p99_ms=50, max_ack_p99_ms=500, max_escalations=0)
    rows = {c["bound"]: c for c in judge(th, pairs_per_s=2.0, latency=lat, escalations=1, lost_events=0)}
    assert rows["min_pairs_per_s"]["met"] and rows["max_decision_to_sent_p99_ms"]["met"]
    assert not rows["max_ack_p99_ms"]["met"] and not rows["max_escalations"]["met"] and rows["max_lost_events"]["met"]
    [lost] = judge(StressThresholds(), pairs_per_s=0, latency={}, escalations=0, lost_events=1)
    assert lost["bound"] == "max_lost_events" and not lost["met"]
    no_latency = judge(StressThresholds(max_ack_p99_ms=5), pairs_per_s=0, latency={}, escalations=0, lost_events=0)
    assert not no_latency[0]["met"]  # nothing measured cannot pass a bound


def test_the_report_says_pass_or_fail_and_why():
    rep = StressReport(config="s.yaml", duration_s=12, wall_s=30, pairs=10, pairs_per_s=0.8, by_outcome={"HEDGED": 10},
                       escalations=0, latency={"decision_to_sent_ms": {"n": 0}, "order_ack_ms": {"n": 0}},
                       floor={"actor_call_ms_p50": 0.6, "actor_call_ms_p99": 1.2}, lost={"missing_fills": 1},
                       integrity={}, scenarios=[ScenarioResult("venue_silent", 3.0, "LME", False, "no gateway")],
                       quotes_pushed=0, checks=[{"bound": "max_lost_events", "limit": 0, "value": 1, "met": False}],
                       passed=False, ledger="/l")
    text = report_text(rep)
    assert "FAIL" in text and "lost events          1" in text and "NOT APPLIED (no gateway)" in text
    assert rep.to_dict()["lost_events"] == 1


def test_xmc_stress_refuses_a_bad_file_and_a_work_directory_that_holds_a_ledger(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(STRESS.read_text().replace("include: [catalogue.yaml]",
                                              f"include: [{ROOT / 'configs' / 'catalogue.yaml'}]")
                   .replace("kind: all_fire", "kind: meteor"))
    assert main(["stress", str(bad), "--short"]) == 1
    assert "stress.scenarios[2].kind" in capsys.readouterr().err
    (tmp_path / "w" / "ledger").mkdir(parents=True)
    (tmp_path / "w" / "ledger" / "shard-0.duckdb").write_bytes(b"")
    assert main(["stress", str(STRESS), "--short", "--workdir", str(tmp_path / "w")]) == 2
    assert "already holds a ledger" in capsys.readouterr().err


def test_names_the_stage_acceptance_and_stress_settings_do_not_have_are_refused_with_the_path(tmp_path):
    from xmc_actors.runtime.config import ConfigError

    text = STRESS.read_text().replace("include: [catalogue.yaml]", f"include: [{ROOT / 'configs' / 'catalogue.yaml'}]")
    text = text.replace("venue: LME, duration_s: 10}", "venue: CME, duration_s: 10}")
    text = text.replace("instrument: SHFE.cu, duration_s: 5}", "instrument: SHFE.zz, duration_s: 5}")
    text += "acceptance:\n  strategies:\n    nope: {min_pairs: 1}\n"
    text = text.replace("  - {<<: *band, name: cu-2}", "  - {<<: *band, name: cu-2, canary: {shadow_twin: true}}\n"
                                                       "  - {<<: *band, name: cu-2.twin}")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    got = {i.path: i.message for i in e.value.issues}
    assert "unknown venue 'CME'" in got["stress.scenarios[1].venue"]
    assert "unknown instrument 'SHFE.zz'" in got["stress.scenarios[4].instrument"]
    assert "unknown strategy 'nope'" in got["acceptance.strategies.nope"]
    assert "is another strategy's" in got["strategies[1].canary.shadow_twin"]
