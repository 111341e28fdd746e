"""The runtime on Ray, end to end: one deployment (embedded Ray) started once for this module.

SHFE vs LME copper on synthetic feeds; LME acks take 250 ms so that pairs are in flight most
of the time. Two strategies share a host: ``cu`` (the built-in band) and ``boom`` (a user
strategy whose ``decide`` raises). The tests run in file order on the same deployment:
started → looked at from another process → a raising strategy isolated → stopped with pairs
in flight, every pair terminal and the summary equal to the ledger.
"""
from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import threading
import time

import pytest
import ray

from runtime_kit import (TERMINAL, XMC, band, copper_config, events, last_pair_states, ledger_pair_outcomes,
                         outcome_counts, subprocess_env)
from testkit import wait_until
from xmc_actors.runtime.config import load_config
from xmc_actors.strategies import Strategy
from xmc_actors.strategies.params import BandParams

pytestmark = pytest.mark.ray
NS = "test-runtime-deployment"


class RaisesOnQuotes(Strategy, name="test_runtime_raises", params=BandParams):
    """A user strategy with a bug: every evaluation raises."""

    def decide(self, snap):  # noqa: ANN001, ANN201
        raise ZeroDivisionError("user code divided by zero")


# classes defined here travel to the workers by value (the workers cannot import this test module)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A started deployment running its live feeds in a background thread (``Deployment.run``)."""
    from xmc_actors.runtime.deploy import Deployment

    tmp = tmp_path_factory.mktemp("deploy")
    path = copper_config(tmp, "runtime-it", NS, lme={"ack_ms": 250},
                         strategies=[band("cu"), band("boom", cls="test_runtime_raises")])
    cfg = load_config(path)
    dep = Deployment(cfg)
    t0 = time.monotonic()
    ready = dep.start()
    start_s = time.monotonic() - t0
    stop = threading.Event()
    box: dict = {}

    def go():
        try:
            box["summary"] = dep.run(duration_s=None, stop_event=stop)
        except BaseException as e:  # noqa: BLE001 - surfaced by the test that stops the run
            box["error"] = e

    th = threading.Thread(target=go, daemon=True)
    th.start()
    yield {"dep": dep, "ready": ready, "start_s": start_s, "stop": stop, "thread": th, "box": box,
           "ledger": str(tmp / "ledger")}
    stop.set()
    th.join(60)
    dep.shutdown_ray()


def test_start_creates_every_named_actor_in_the_namespace_and_each_answers_ready(run):
    # Arrange
    expected = {"deployment", "ledger-0", "risk-guard", "gateway-SHFE", "gateway-LME", "coordinator",
                "strategy-host-0"}
    # Act
    named = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NS}
    # Assert
    assert named == expected
    assert set(run["ready"]) == expected  # wait_ready heard every one of them
    assert run["ready"]["strategy-host-0"]["strategies"] == ["boom", "cu"]


def test_xmc_status_from_another_process_lists_actors_strategies_and_occupancy(run):
    # Arrange: the deployment is trading
    dep = run["dep"]
    wait_until(lambda: ray.get(dep.handles["coordinator"].status.remote())["outcomes"].get("HEDGED"), 30, "a hedged pair")
    host = dep.hosts["strategy-host-0"]
    wait_until(lambda: ray.get(host.status.remote())["strategies"]["boom"]["state"] == "ERROR", 30, "boom in ERROR")
    address = ray.get_runtime_context().gcs_address
    # Act
    out = subprocess.run([XMC, "status", "--namespace", NS, "--address", address, "--format", "csv"],
                         capture_output=True, text=True, timeout=60, env=subprocess_env())
    # Assert
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    table = lambda name: [r for r in rows if r["table"] == name]  # noqa: E731
    assert [(r["deployment"], r["namespace"], r["state"]) for r in table("deployment")] == [("runtime-it", NS, "RUNNING")]
    actors = {r["actor"]: r for r in table("actors")}
    assert {"coordinator", "gateway-LME", "gateway-SHFE", "ledger-0", "risk-guard", "strategy-host-0"} <= set(actors)
    assert not [a for a, r in actors.items() if r["state"] == "DEAD/UNREACHABLE"]
    strategies = {r["strategy"]: r for r in table("strategies")}
    assert set(strategies) == {"cu", "boom"}
    assert strategies["cu"]["state"] == "ACTIVE" and int(strategies["cu"]["intents"]) > 0  # it has traded
    assert strategies["boom"]["state"] == "ERROR" and strategies["boom"]["errors"] == "1"
    pairs = {r["pairs"]: int(r["count"]) for r in table("pairs")}
    assert "in flight" in pairs and pairs.get("HEDGED", 0) > 0
    assert {r["account"] for r in table("occupancy")} >= {"cn-main", "us-main"}
    # the same, as people read it
    text = subprocess.run([XMC, "status", "--namespace", NS, "--address", address], capture_output=True,
                          text=True, timeout=60, env=subprocess_env()).stdout
    assert re.search(r"^runtime-it +" + re.escape(NS) + r" +RUNNING", text, re.M), text
    assert re.search(r"^boom +strategy-host-0 +ERROR", text, re.M) and "capital occupancy" in text
    assert "Traceback" not in out.stderr


def test_a_strategy_that_raises_is_halted_alone_and_the_other_keeps_trading(run):
    # Arrange
    dep = run["dep"]
    host = dep.hosts["strategy-host-0"]

    def strategies():
        return ray.get(host.status.remote())["strategies"]

    # Act: the buggy strategy meets its first quotes
    st = wait_until(lambda: (s := strategies())["boom"]["state"] == "ERROR" and s, 30, "boom halted in ERROR")
    intents_then = st["cu"]["counters"]["intents"]
    # Assert: the other one keeps deciding and trading afterwards
    later = wait_until(lambda: (s := strategies())["cu"]["counters"]["intents"] > intents_then + 1 and s, 30,
                  "cu trading after boom failed")
    assert later["cu"]["state"] == "ACTIVE"
    assert later["boom"]["state"] == "ERROR"
    assert "ZeroDivisionError: user code divided by zero" in later["boom"]["errors"][0]
    assert later["boom"]["counters"]["intents"] == 0


def test_a_coordinator_killed_mid_run_recovers_its_pairs_from_the_ledger_and_trading_resumes(run):
    # Arrange: a pair in flight, held open: LME's next fills come 5 s after its ack. Wait until a
    # pair has stayed in flight for a whole second with no pair finishing meanwhile: that is
    # the held one (not a pair that was already finishing), and its events are in the ledger
    coord = run["dep"].handles["coordinator"]
    ray.get(run["dep"].handles["gateway-LME"].inject.remote({"kind": "delay_fills", "ms": 5000}))

    def held_open() -> bool:
        s1 = ray.get(coord.status.remote())
        if not sum(s1["in_flight"].values()):
            return False
        time.sleep(1.0)
        s2 = ray.get(coord.status.remote())
        return bool(sum(s2["in_flight"].values())) and s2["outcomes"] == s1["outcomes"]

    wait_until(held_open, 60, "a pair held open for a second", every=0.05)
    # Act: the process dies; Ray restarts the actor (max_restarts=-1), which recovers on its first call
    ray.kill(coord, no_restart=False)
    st = wait_until(lambda: _restarted(coord), 60, "the coordinator restarted and recovered")
    # Assert: it knew it was restarted, found its deployment and read its trail
    assert st["reconstructed"] is True
    rec = st["recovered"]
    assert rec["decisions"] >= 1 and rec["reopened"] >= 1 and rec["unreadable"] == 0, rec
    assert rec["gateways"] == ["LME", "SHFE"] and rec["strategies"] == 2
    # what was open is wound down from the venues' state; nothing stays in flight
    wait_until(lambda: not ray.get(coord.status.remote())["in_flight"] or None, 30, "recovered pairs resolved")
    # and trading goes on: new pairs are executed after the restart
    hedged0 = ray.get(coord.status.remote())["outcomes"].get("HEDGED", 0)
    wait_until(lambda: ray.get(coord.status.remote())["outcomes"].get("HEDGED", 0) > hedged0, 60,
          "a new pair hedged after the restart")


def _restarted(h) -> dict | None:
    """The restarted instance's status once it has recovered (``ready()`` triggers recovery);
    None while the old instance is still dying or the new one is starting (ray.kill is async)."""
    try:
        ray.get(h.ready.remote(), timeout=5)
        st = ray.get(h.status.remote(), timeout=5)
    except Exception:  # noqa: BLE001 - restarting
        return None
    return st if st["reconstructed"] and st["recovered"] is not None else None


def test_stop_with_pairs_in_flight_resolves_every_pair_and_the_summary_matches_the_ledger(run):
    # Arrange: wait for a moment with pairs in flight (LME acks take 250 ms)
    dep = run["dep"]
    coord = dep.handles["coordinator"]
    in_flight = wait_until(lambda: sum(ray.get(coord.status.remote())["in_flight"].values()), 30, "a pair in flight",
                      every=0.02)
    # Act: what Ctrl-C does in `xmc run`
    run["stop"].set()
    run["thread"].join(90)
    # Assert
    assert not run["thread"].is_alive(), "stop did not return"
    assert "error" not in run["box"], run["box"].get("error")
    summary = run["box"]["summary"]
    assert in_flight >= 1
    states = last_pair_states(run["ledger"])
    assert states, "no pair reached the ledger"
    open_pairs = {d: s for d, s in states.items() if s not in TERMINAL}
    assert open_pairs == {}
    assert outcome_counts(states) == summary.pairs_by_outcome
    assert "OPEN" not in ledger_pair_outcomes(run["ledger"])  # no decision without an end either
    assert sum(ray.get(coord.status.remote())["in_flight"].values()) == 0
    # the buggy strategy is in the ledger and counted, isolated
    errors = events(run["ledger"], "STRATEGY_ERROR")
    assert {e["strategy"] for e in errors} == {"boom"}
    assert summary.strategy_errors >= 1
    assert summary.per_strategy["cu"]["counters"]["intents"] > 0


def test_the_runs_domestic_orders_carry_offsets_and_its_foreign_ones_none_in_the_ledger(run):
    """Issue 18 done-when: the deployment's domestic legs carry offsets (read back by DuckDB
    from what the run wrote); SHFE requires today/yesterday, so no plain CLOSE reaches it."""
    assert not run["thread"].is_alive(), "runs after the stop test: the ledger is complete"
    sent = events(run["ledger"], "ORDER_SENT")
    shfe = [e for e in sent if e["venue"] == "SHFE"]
    lme = [e for e in sent if e["venue"] == "LME"]
    assert shfe and lme
    offsets = {e["payload"].get("offset") for e in shfe}
    assert offsets <= {"OPEN", "CLOSE_TODAY", "CLOSE_YESTERDAY"} and "OPEN" in offsets, offsets
    assert all(e["payload"].get("offset_reason") for e in shfe)
    assert not [e for e in lme if "offset" in e["payload"]]
