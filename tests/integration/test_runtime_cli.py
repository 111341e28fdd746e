"""``xmc run`` and ``xmc status`` as an operator uses them: separate processes, exit codes, output.

(Ctrl-C on ``xmc run``: test_runtime_sigint.py.)

Every ``xmc run`` here starts its own embedded Ray in the child process; the pytest process
starts none.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from runtime_kit import TERMINAL, XMC, copper_config, last_pair_states, subprocess_env

pytestmark = pytest.mark.ray


def _xmc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([XMC, *args], capture_output=True, text=True, timeout=timeout, env=subprocess_env())


def test_xmc_run_with_a_duration_exits_0_and_prints_the_summary(tmp_path):
    # Arrange
    cfg = copper_config(tmp_path, "cli-duration", "test-runtime-cli-duration")
    # Act
    out = _xmc("run", str(cfg), "--duration", "3", "--no-progress", timeout=180)
    # Assert
    assert out.returncode == 0, out.stdout + out.stderr
    assert "run 'cli-duration' finished in" in out.stdout
    assert "pairs by outcome" in out.stdout
    assert [ln.split() for ln in out.stdout.splitlines() if ln.startswith("  ledger ")] == [["ledger", str(tmp_path / "ledger")]]
    assert "Traceback" not in out.stderr
    states = last_pair_states(tmp_path / "ledger")
    assert states and set(states.values()) <= TERMINAL


def test_xmc_status_without_a_running_deployment_exits_3_with_a_clear_message():
    # Act: a namespace nobody uses (on whatever Ray this machine runs, if any), and an address
    # nobody listens on
    by_namespace = _xmc("status", "--namespace", "test-runtime-cli-nobody-here", timeout=60)
    by_address = _xmc("status", "--address", "127.0.0.1:1", timeout=60)
    # Assert
    assert by_namespace.returncode == 3
    assert ("no deployment is running in namespace 'test-runtime-cli-nobody-here'" in by_namespace.stderr
            or "no running Ray cluster found" in by_namespace.stderr), by_namespace.stderr
    assert by_address.returncode == 3
    assert "no Ray cluster answers at 127.0.0.1:1" in by_address.stderr
    for out in (by_namespace, by_address):
        assert "Traceback" not in out.stderr and out.stdout == ""


@pytest.mark.parametrize("change, path_text", [
    (lambda s: s.update({"class": "no_such_strategy"}), "strategies[0].class"),
    (lambda s: s["params"].update({"entyr": 0.001}), "strategies[0].params.entyr"),
], ids=["unknown-class", "unknown-parameter"])
def test_xmc_run_on_a_bad_strategy_exits_1_naming_the_path_and_starts_nothing(tmp_path, change, path_text):
    # Arrange
    cfg = copper_config(tmp_path, "cli-bad", "test-runtime-cli-bad")
    doc = yaml.safe_load(cfg.read_text())
    change(doc["strategies"][0])
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    # Act
    t0 = time.monotonic()
    out = _xmc("run", str(cfg), "--duration", "1", timeout=60)
    # Assert
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"{cfg} is not valid" in out.stderr
    assert path_text in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert "starting" not in out.stdout  # nothing started: no Ray, no ledger
    assert not Path(tmp_path / "ledger").exists()
    assert time.monotonic() - t0 < 30
