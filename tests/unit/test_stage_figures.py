"""A strategy's gate figures read from its trail agree with the execution lab's own figures of
the same run (one definition, two sources), and a shadow's figures come from its SHADOW records."""
from __future__ import annotations

import pytest

from strategy_kit import T0, pair_quotes, ctx
from testkit import ROOT
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.core.stages import evaluate_gate
from xmc_actors.lab.engine import LabRun
from xmc_actors.lab.figures import run_figures
from xmc_actors.model.stages import GateConfig
from xmc_actors.runtime.config import load_config
from xmc_actors.ledger.stage_figures import stage_figures, stage_history, stage_since
from xmc_actors.strategies import BandStrategy
from xmc_actors.strategies.host import StrategyHostCore
from xmc_actors.strategies.stages import StageSettings

COPPER = ROOT / "configs" / "lab" / "copper.yaml"
NAME = "copper-shfe-lme"


@pytest.fixture(scope="module")
def runs():
    cfg = load_config(COPPER)
    cfg = cfg.model_copy(update={"lab": cfg.lab.model_copy(update={"max_duration_s": 600})})
    return cfg, {p: LabRun(cfg, policy=p, seed=5).run() for p in ("speed", "price")}


@pytest.mark.parametrize("policy", ["speed", "price"])
def test_trail_figures_agree_with_the_labs_figures_of_the_same_run(runs, policy):
    cfg, by = runs
    run = by[policy]
    lab = run_figures(run)["figures"]
    fig = stage_figures(run.sink.events, NAME, sync_window_ms=cfg.lab.sync_window_ms)
    assert fig.pairs == lab["pairs_attempted"] - lab["pairs_in_flight_at_end"] > 5
    assert fig.success_rate == pytest.approx(lab["success_rate"])
    assert fig.sync_fill_rate == pytest.approx(lab["sync_fill_rate"])
    assert fig.escalations == lab["pairs_escalated"]
    assert fig.orders == lab["orders"] and 0 <= fig.reject_ratio < 0.1
    assert fig.slippage_bps.n > 0 and fig.gate_values()["slippage_p95_bps"] == fig.slippage_bps.p95


def test_a_window_and_another_strategys_name_leave_pairs_out(runs):
    _, by = runs
    ev = by["speed"].sink.events
    assert stage_figures(ev, "someone-else").pairs == 0
    assert stage_figures(ev, "someone-else").success_rate is None
    mid = sorted(e.ts_ns for e in ev)[len(ev) // 2]
    early, late = stage_figures(ev, NAME, until_ns=mid), stage_figures(ev, NAME, since_ns=mid)
    whole = stage_figures(ev, NAME)
    assert 0 < early.pairs < whole.pairs and early.pairs + late.pairs == whole.pairs


def test_the_speed_run_passes_a_gate_the_price_run_fails_and_the_refusal_names_the_figure(runs):
    _, by = runs
    gate = GateConfig(min_pairs=10, min_success_rate=0.9, min_sync_fill_rate=0.9, max_escalations=0)
    ok = evaluate_gate(gate, stage_figures(by["speed"].sink.events, NAME).gate_values())
    bad = evaluate_gate(gate, stage_figures(by["price"].sink.events, NAME).gate_values())
    assert ok.passed and not bad.passed
    assert {c.bound for c in bad.failed} == {"min_success_rate", "min_sync_fill_rate"}


def test_shadow_figures_come_from_the_shadow_records_and_stage_changes_are_history():
    s = BandStrategy(ctx(), dict(signal="ratio", price="mid", center=1.0, entry=0.01, exit=0.003, clip=1,
                                 max_position=3, cooldown_ms=0))
    core = StrategyHostCore([s], EventMaker(SimClock(T0), "host"), {"cu": StageSettings(stage="shadow")})
    for i, r in enumerate((1.02, 1.0, 1.02, 1.0)):
        core.on_quotes(pair_quotes(r, t=T0 + i), T0 + i)
    events = core.sink.events  # what the host wrote (its core writes to its sink)
    fig = stage_figures(events, "cu", stage="shadow")
    assert fig.pairs == 4 and fig.sync_fill_rate == 1.0 and fig.success_rate is None
    assert fig.slippage_bps.n == 8 and fig.slippage_bps.p95 == 0.0
    core.set_stage("cu", "canary", T0 + 10, operator="alice", action="promote")
    assert stage_since(events, "cu") == T0 + 10
    [h] = stage_history(events)
    assert (h["from"], h["to"], h["operator"], h["outcome"]) == ("shadow", "canary", "alice", "CHANGED")
