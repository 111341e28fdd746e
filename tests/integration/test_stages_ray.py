"""A deployment started with one strategy in shadow and one in canary, from other processes as
an operator types it: the shadow sends nothing and records what it would have sent, the canary
trades a fraction of its size beside its shadow twin at full size; ``xmc promote`` takes the shadow to canary through a gate its
figures meet and refuses the canary's promotion to live on a gate they miss, printing the
figures; every stage change and gate decision is in the trail; ``xmc audit acceptance`` of the
run says which targets were met and why.

Every process here is a subprocess (the pytest process starts no Ray).
"""
from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from runtime_kit import XMC, band, copper_config, subprocess_env

pytestmark = pytest.mark.ray
NS = "test-stages"


def _strategies():
    shadow = band("cu-shadow", clip=5, max_position=10)
    shadow.update(stage="shadow", gates={"canary": {"min_pairs": 3, "min_sync_fill_rate": 0.5,
                                                    "max_slippage_p95_bps": 50, "window_s": 600}})
    canary = band("cu-canary", clip=10, max_position=20)
    canary.update(stage="canary", canary={"size_fraction": 0.3, "max_open_lots": 6, "max_pairs_per_day": 1000,
                          "shadow_twin": True},
                  gates={"live": {"min_pairs": 100_000, "max_reject_ratio": 0.5, "window_s": 600}})
    return [shadow, canary]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stages")
    env = subprocess_env()
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(k, None)
    env["XMC_RUN_DIR"] = str(tmp / "run")
    # promote/demote as they are without an operator API (with one they need a token whose role
    # may: tests/unit/test_cli_authorisation.py)
    env["XMC_API"] = "off"
    env.pop("XMC_API_TOKEN", None)
    cfg = copper_config(tmp, "stages", NS, strategies=_strategies())
    # acceptance targets (xmc audit acceptance): one pair and no escalation; the canary's own asks
    # for far more pairs than a minute of trading makes, so its report says it is not accepted
    cfg.write_text(cfg.read_text() + "acceptance:\n  targets: {min_pairs: 1, max_escalations: 10}\n"
                   "  strategies:\n    cu-canary: {min_pairs: 100000}\n")
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
    box = {"env": env, "tmp": tmp, "cfg": cfg, "proc": proc}
    yield box
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def _xmc(env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([XMC, *args], capture_output=True, text=True, timeout=timeout, env=env)


def _stages(env) -> dict:
    out = _xmc(env, "stages", "--namespace", NS, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_status_shows_each_strategys_stage(run):
    out = _xmc(run["env"], "status", "--namespace", NS, "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    strategies = {n: s for st in doc["actors"].values() if isinstance(st, dict)
                  for n, s in (st.get("strategies") or {}).items()}
    assert strategies["cu-shadow"]["stage"] == "shadow" and strategies["cu-canary"]["stage"] == "canary"
    assert strategies["cu-canary.twin"]["stage"] == "shadow"  # the canary's twin, full size


def test_shadow_records_what_it_would_send_and_canary_trades_within_its_limits_then_the_gates_decide(run):
    env = run["env"]
    # the shadow decides on the same market as the canary; wait for enough of both
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st = _stages(env)
        if (st["cu-shadow"]["stage_counters"]["shadow_intents"] >= 4
                and st["cu-canary"]["stage_counters"]["canary_resized"] >= 2):
            break
        time.sleep(2)
    else:
        pytest.fail(f"not enough decisions: {st}")
    # what a gate would read now: the shadow's figures come from its SHADOW records
    fig = _xmc(env, "stages", "--figures", "cu-shadow", "--namespace", NS, "--format", "json")
    assert fig.returncode == 0, fig.stderr
    gv = json.loads(fig.stdout)["figures"]["gate_values"]
    assert gv["pairs"] >= 4 and gv["success_rate"] is None and 0 <= gv["sync_fill_rate"] <= 1
    # a promotion without an operator changes nothing
    no_op = _xmc(env, "promote", "cu-shadow", "--namespace", NS)
    assert no_op.returncode == 2 and "--operator" in no_op.stderr
    # the canary's gate into live asks for more pairs than it made: refused with the figures
    refused = _xmc(env, "promote", "cu-canary", "--operator", "alice", "--namespace", NS, "--format", "json")
    assert refused.returncode == 2, refused.stderr
    doc = json.loads(refused.stdout)
    assert doc["refused"] and doc["stage"] == "canary"
    [miss] = [c for c in doc["gate"]["checks"] if not c["met"]]
    assert miss["bound"] == "min_pairs" and 0 < miss["value"] < 100_000
    # the shadow's figures meet its gate into canary: promoted
    ok = _xmc(env, "promote", "cu-shadow", "--operator", "alice", "--reason", "shadow looked fine",
              "--namespace", NS)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "cu-shadow: shadow -> canary by alice" in ok.stdout and "gate passed" in ok.stdout
    assert _stages(env)["cu-shadow"]["stage"] == "canary"
    # and the canary is taken down to shadow by hand
    down = _xmc(env, "demote", "cu-canary", "--to", "shadow", "--operator", "bob", "--namespace", NS)
    assert down.returncode == 0 and "canary -> shadow by bob" in down.stdout
    run["promoted_at"] = time.time_ns()


def test_every_stage_change_and_gate_decision_is_in_the_trail(run):
    env, tmp = run["env"], run["tmp"]
    time.sleep(1)
    out = _xmc(env, "audit", "query", "--ledger", str(tmp / "ledger"), "--kind", "STAGE", "--format", "json", "--limit", "0")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    rows = rows.get("events", rows) if isinstance(rows, dict) else rows
    decisions = [(r["strategy"], r["outcome"]) for r in rows if "resize" not in str(r.get("reason", ""))
                 and "CANARY_LIMIT" not in str(r.get("reason", ""))]
    assert ("cu-canary", "REFUSED") in decisions and ("cu-shadow", "CHANGED") in decisions
    assert decisions.count(("cu-canary", "CHANGED")) == 1


def test_the_acceptance_report_of_the_run_says_which_strategy_is_accepted_and_why(run):
    env, tmp, proc = run["env"], run["tmp"], run["proc"]
    proc.send_signal(signal.SIGINT)  # stop the deployment: the ledger is read whole
    proc.wait(120)
    out = tmp / "acceptance.html"
    res = _xmc(env, "audit", "acceptance", "--config", str(run["cfg"]), "--out", str(out))
    assert res.returncode == 1, res.stdout + res.stderr  # not accepted: the canary missed its target
    assert "NOT ACCEPTED" in res.stdout and "cu-canary: not accepted: gate refused: pairs" in res.stdout
    doc = json.loads(out.with_suffix(".json").read_text())
    canary, shadow = doc["strategies"]["cu-canary"], doc["strategies"]["cu-shadow"]
    [miss] = [t for t in canary["targets"] if not t["met"]]
    assert miss["bound"] == "min_pairs" and miss["limit"] == 100_000 and miss["value"] > 0
    assert canary["counts"]["pairs_by_stage"].get("canary", 0) > 0 and "shadow" not in canary["counts"]["pairs_by_stage"]
    assert [(h["action"], h["outcome"]) for h in canary["stage_history"]] == [("promote", "REFUSED"), ("demote", "CHANGED")]
    assert [(h["action"], h["outcome"], h["to"]) for h in shadow["stage_history"]] == [("promote", "CHANGED", "canary")]
    assert shadow["counts"]["shadow_intents"] >= 4 and shadow["stage_at_end"] == "canary"
    # the canary's shadow twin decided at full size on the same quotes, beside its real pairs
    assert "cu-canary.twin" not in doc["strategies"] and canary["twin"]["twin"] == "cu-canary.twin"
    assert canary["twin"]["twin_full_size"]["pairs"] > 0 and canary["twin"]["real"]["pairs"] > 0
    assert canary["twin"]["twin_full_size"]["mean_lots_a"] > canary["twin"]["real"]["mean_lots_a"]
    page = out.read_text()
    assert "NOT ACCEPTED" in page and "min_pairs" in page and "shadow" in page
