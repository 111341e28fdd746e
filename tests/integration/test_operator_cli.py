"""Operator commands against a running ``xmc run``, from other processes, as an operator types
them: found by the deployment's own address file with its token (no RAY_AUTH_MODE set by hand),
``xmc status`` with ``ray.metrics_port`` set, a typo on a kill switch refused, an escalation
that holds its strategy until ``xmc resolve``.

Every process here is a subprocess (the pytest process starts no Ray).
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime_kit import XMC, band, copper_config, subprocess_env

pytestmark = pytest.mark.ray
NS = "test-operator-cli"


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("operator-cli")
    env = subprocess_env()
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(k, None)
    env["XMC_RUN_DIR"] = str(tmp / "run")
    # the commands as they are without an operator API (with one, they need a token: that path is
    # tests/integration/test_api_serve.py and tests/unit/test_cli_authorisation.py)
    env["XMC_API"] = "off"
    env.pop("XMC_API_TOKEN", None)
    cfg = copper_config(tmp, "operator-cli", NS, strategies=[band("cu", entry=0.5)],  # few or no pairs
                        ray_extra={"metrics_port": _free_port()})
    proc = subprocess.Popen([XMC, "run", str(cfg), "--duration", "900", "--no-progress"], env=env,
                            stdout=open(tmp / "run.out", "w"), stderr=open(tmp / "run.err", "w"))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"xmc run ended: {(tmp / 'run.out').read_text()} {(tmp / 'run.err').read_text()}")
        if "all actors ready" in (tmp / "run.out").read_text():
            break
        time.sleep(1)
    else:
        proc.kill()
        pytest.fail("deployment not ready: " + (tmp / "run.err").read_text()[-2000:])
    yield env, tmp
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def _xmc(env, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([XMC, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_status_finds_the_deployment_by_its_address_file_and_token_and_skips_the_metrics_hub(run):
    env, _ = run
    # Act: exactly as the README says, and with no --namespace (the one deployment running here)
    t0 = time.monotonic()
    by_ns = _xmc(env, "status", "--namespace", NS)
    elapsed = time.monotonic() - t0
    only_one = _xmc(env, "status")
    # Assert
    for out in (by_ns, only_one):
        assert out.returncode == 0, out.stderr
        assert re.search(rf"^operator-cli +{NS} +RUNNING", out.stdout, re.M), out.stdout
        assert re.search(r"^metrics-hub +no status: serves /metrics", out.stdout, re.M), out.stdout
        assert re.search(r"^cu +strategy-host-\d+ +[A-Z]+", out.stdout, re.M), out.stdout
        assert "InvalidAuthToken" not in out.stderr and "Traceback" not in out.stderr
    assert elapsed < 30


def test_a_wrong_token_is_one_clear_error_within_seconds(run):
    env, _ = run
    t0 = time.monotonic()
    out = _xmc({**env, "RAY_AUTH_TOKEN": "0" * 32}, "status", "--namespace", NS)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "refused this client's authentication token" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert time.monotonic() - t0 < 20


def test_a_kill_switch_on_an_unknown_strategy_is_refused_and_changes_nothing(run):
    env, _ = run
    out = _xmc(env, "halt", "--strategy", "nosuch", "--operator", "x", "--namespace", NS)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "unknown strategy 'nosuch'" in out.stderr and "cu" in out.stderr and "HALTED" not in out.stdout
    st = json.loads(_xmc(env, "risk-status", "--json", "--namespace", NS).stdout)
    assert "strategy:nosuch" not in st["trading_states"]


def test_an_escalated_strategy_resumes_only_through_xmc_resolve(run):
    env, _ = run
    did = "cu-99999999"
    # Arrange: the coordinator's summary of an escalated pair reaches the risk guard (pushed here
    # by a client that joins the way the CLI does)
    push = (
        "import ray\n"
        "from xmc_actors.runtime.session import connect\n"
        f"ns = connect(None, {NS!r})\n"
        "g = ray.get_actor('risk-guard', namespace=ns)\n"
        f"s = {{'decision_id': {did!r}, 'strategy': 'cu', 'coordinator': 'coordinator', 'outcome': 'ESCALATED',\n"
        "     'unhedged_ms': 9000, 'reason': 'rollback budget spent', 'residual': {'A': 1},\n"
        "     'legs': [{'leg': 'A', 'instrument': 'SHFE.cu', 'account': 'cn-main', 'side': 'BUY', 'filled_qty': 1,\n"
        "               'avg_price': '72000', 'trigger_price': '72000', 'orders': 1}]}\n"
        "ray.get(g.on_pair_done.remote(s))\n")
    pushed = subprocess.run([sys.executable, "-c", push], capture_output=True, text=True, timeout=90, env=env)
    assert pushed.returncode == 0, pushed.stderr
    st = json.loads(_xmc(env, "risk-status", "--json", "--namespace", NS).stdout)
    assert did in st["unresolved_escalations"]
    # Act / Assert: a plain resume is refused, naming the decision to resolve
    resume = _xmc(env, "resume", "--strategy", "cu", "--operator", "alice", "--namespace", NS)
    assert resume.returncode == 2 and did in resume.stderr and "xmc resolve" in resume.stderr, resume.stderr
    # a decision that is not escalated is refused
    wrong = _xmc(env, "resolve", "cu-00000001", "--operator", "alice", "--note", "n", "--namespace", NS)
    assert wrong.returncode == 2 and "not an escalated pair" in wrong.stderr
    # resolve records it and resumes the strategy
    res = _xmc(env, "resolve", did, "--operator", "alice", "--note", "sold 1 SHFE.cu by phone", "--namespace", NS)
    assert res.returncode in (0, 1), res.stdout + res.stderr
    assert f"{did}: resolved by alice" in res.stdout and "strategy cu: ACTIVE by alice" in res.stdout
    st = json.loads(_xmc(env, "risk-status", "--json", "--namespace", NS).stdout)
    assert did not in st["unresolved_escalations"] and "strategy:cu" not in st["trading_states"]
    again = _xmc(env, "resolve", did, "--operator", "bob", "--note", "n", "--namespace", NS)
    assert again.returncode == 2 and "already resolved" in again.stderr
