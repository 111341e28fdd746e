"""The 50-strategy configuration (configs/fifty.yaml: 50 z-score instances over 10 pairs on 8
simulated venues) runs on this machine: every strategy evaluates quotes, nothing crashes,
every pair ends, and the run stops cleanly. Runs in the default test run (issue #7)."""
from __future__ import annotations

import os
import time

import pytest

from runtime_kit import ROOT, TERMINAL, last_pair_states
from xmc_actors.runtime.config import load_config

pytestmark = pytest.mark.ray
RUN_S = float(os.environ.get("XMC_FIFTY_RUN_S", "10"))


def test_fifty_strategies_on_two_cores_all_evaluate_and_nothing_crashes(tmp_path):
    from xmc_actors.runtime.deploy import Deployment

    # Arrange
    cfg = load_config(ROOT / "configs" / "fifty.yaml")
    cfg = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"namespace": "test-runtime-fifty", "num_cpus": 2})})
    names = {s.name for s in cfg.strategies}
    assert len(names) == 50
    dep = Deployment(cfg, ledger_path=str(tmp_path / "ledger"))
    try:
        t0 = time.monotonic()
        dep.start()
        start_s = time.monotonic() - t0
        # Act
        summary = dep.run(duration_s=RUN_S)
        status = dep.status()  # the actors are still up after stop: every one must answer
    finally:
        dep.shutdown_ray()
    # Assert
    per = summary.per_strategy
    assert set(per) == names
    idle = sorted(n for n, s in per.items() if s["counters"]["evaluations"] == 0)
    assert idle == [], f"strategies that never evaluated a quote: {idle}"
    assert summary.strategy_errors == 0, {n: s["errors"] for n, s in per.items() if s.get("errors")}
    assert {s["state"] for s in per.values()} <= {"ACTIVE", "HALTED"}
    assert not any("error" in st for st in status.values()), {n: st for n, st in status.items() if "error" in st}
    states = last_pair_states(tmp_path / "ledger")
    assert set(states.values()) <= TERMINAL
    print(f"\nfifty: start {start_s:.1f} s, run {RUN_S:g} s, evaluations {summary.quotes}, "
          f"intents {summary.intents}, pairs {summary.pairs_by_outcome}, wall {summary.wall_s:.1f} s")
