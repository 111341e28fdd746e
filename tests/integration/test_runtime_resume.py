"""A deployment started again on its ledger goes on from it, with the positions the venues report.

The simulated venues keep their memory across deployments (``state_dir`` with ``keep_state``),
as real venues do. The first run trades copper and stops; the second starts on the same ledger
and venues: the risk guard rebuilds positions from the ledger and checks them against the
venues, each strategy takes its position back and trades on under new decision ids. A third
run whose venues forgot everything shows the mismatch and blocks new entries on those venues.
"""
from __future__ import annotations

import shutil
import threading
import time
from collections import defaultdict

import pytest
import ray

from runtime_kit import band, copper_config, events
from testkit import wait_until
from xmc_actors.ledger.venue_records import journal_sources
from xmc_actors.runtime.config import load_config

pytestmark = pytest.mark.ray
NS = "test-runtime-resume"


def _venue_positions(state_dir) -> dict[str, dict[str, int]]:
    """Net lots per account and instrument, from the venues' own journals."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for src in journal_sources(state_dir):
        rec = src.load()
        sides = {o.client_order_id: (o.side, o.account, o.instrument) for o in rec.orders}
        for f in rec.fills:
            side, acc, inst = sides[f.client_order_id]
            out[acc][inst] += f.qty if side == "BUY" else -f.qty
    return {a: {i: q for i, q in p.items() if q} for a, p in out.items() if any(p.values())}


def _run(cfg_path, seconds: float, until=None):
    from xmc_actors.runtime.deploy import Deployment

    dep = Deployment(load_config(cfg_path))
    dep.start()
    stop = threading.Event()
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("summary", dep.run(duration_s=None, stop_event=stop)), daemon=True)
    th.start()
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until is not None and until(dep)):
            time.sleep(0.2)
    finally:
        stop.set()
        th.join(90)
        dep.shutdown_ray()
    return dep, box.get("summary")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    state = tmp / "venues"
    keep = {"state_dir": str(state), "keep_state": True}
    cfg = copper_config(tmp, "resume", NS, strategies=[band("cu")], shfe=keep, lme=keep)
    return {"tmp": tmp, "cfg": cfg, "state": state, "ledger": tmp / "ledger"}


def _traded(dep) -> bool:
    """cu finished a few pairs and holds a position with nothing in flight (so a stop now
    leaves the position at the venues)."""
    try:
        st = ray.get(dep.hosts["strategy-host-0"].status.remote(), timeout=5)["strategies"]["cu"]
    except Exception:  # noqa: BLE001
        return False
    return st["counters"]["pairs_done"] >= 3 and st["position"] != 0 and not st["pending"]


def test_a_deployment_started_again_on_its_ledger_goes_on_with_the_positions_the_venues_report(setup):
    # Arrange: a first run trades until cu holds a position, then stops cleanly
    first, summary = _run(setup["cfg"], 60, until=_traded)
    assert first.resumed is None and sum(summary.pairs_by_outcome.values()) >= 3
    held = _venue_positions(setup["state"])
    assert held, "the first run left no position at the venues"
    last = max(int(e["decision_id"].rsplit("-", 1)[1]) for e in events(setup["ledger"], "INTENT"))

    # Act: the same deployment again, on the same ledger and venues
    second, _ = _run(setup["cfg"], 60, until=lambda d: any(
        int(e["decision_id"].rsplit("-", 1)[1]) > last for e in events(setup["ledger"], "INTENT")))

    # Assert: positions from the ledger agree with the venues', nothing blocked, the strategy
    # took its position back and traded on under new decision ids
    r = second.resumed
    assert r is not None and r["mismatches"] == [] and r["unverified_venues"] == []
    assert {a: {i: q for i, q in p.items() if q} for a, p in r["positions"].items() if any(p.values())} == held
    assert r["strategies"] == {"cu": "resumed"}
    assert not {k: v for k, v in r["trading_states"].items() if v != "ACTIVE"}
    ids = sorted(int(e["decision_id"].rsplit("-", 1)[1]) for e in events(setup["ledger"], "INTENT"))
    assert ids[-1] > last and len(ids) == len(set(ids))
    restored = [e for e in events(setup["ledger"], "LIFECYCLE") if e["reason"].startswith("restored after a restart")]
    assert restored and "resumes" in restored[-1]["reason"]


def test_a_new_ledger_on_venues_that_hold_positions_is_held_until_an_operator_accepts_them(setup):
    """The first morning: a new ledger (flat) on venues that hold yesterday's positions. The
    deployment starts holding new entries (global REDUCING, the differences on record) until
    `xmc accept-positions` accepts the venues' word; the acceptance names the operator."""
    from xmc_actors.runtime.deploy import Deployment
    from xmc_actors.runtime.start_of_day import accept

    for _ in range(3):  # the venues must hold something
        if setup["state"].is_dir() and _venue_positions(setup["state"]):
            break
        _run(setup["cfg"], 60, until=_traded)
    held = _venue_positions(setup["state"])
    assert held, "no run ended holding a position"
    doc = setup["cfg"].read_text().replace(str(setup["ledger"]), str(setup["tmp"] / "ledger-new"))
    cfg = setup["tmp"] / "new-ledger.yaml"
    cfg.write_text(doc)

    dep = Deployment(load_config(cfg))
    dep.start()
    try:
        # Assert: held, with every difference named (the ledger has nothing, the venues the lots)
        gate = dep.start_of_day
        assert gate.engaged, gate.as_dict()
        assert {(d["account"], d["instrument"], d["venue"]) for d in gate.differences} == {
            (a, i, q) for a, p in held.items() for i, q in p.items()}
        st = ray.get(dep.handles["risk-guard"].status.remote(), timeout=10)
        assert st["trading_states"].get("global") == "REDUCING"
        info = ray.get(dep.handles["deployment"].describe.remote(), timeout=10)
        assert info["start_of_day"]["engaged"] and info["start_of_day"]["differences"]
        # a wrong acceptance changes nothing
        with pytest.raises(ValueError, match="note: required"):
            accept(dep.namespace, "alice", "  ")
        assert ray.get(dep.handles["risk-guard"].status.remote(), timeout=10)["trading_states"].get("global") == "REDUCING"
        # Act
        res = accept(dep.namespace, "alice", "yesterday's lots, confirmed with the broker")
        # Assert: ACTIVE again, recorded with who and why; a second acceptance has nothing to accept
        assert res["ok"] and "global" in res["resumed"]
        st = ray.get(dep.handles["risk-guard"].status.remote(), timeout=10)
        assert st["trading_states"].get("global", "ACTIVE") == "ACTIVE"
        with pytest.raises(ValueError, match="nothing to accept"):
            accept(dep.namespace, "bob", "again")
        # a venue's next trading day checks again, through the same gate: the accepted lots agree now
        import datetime as dt

        seen = dict(dep.day_gate.watch.seen)
        assert set(seen) == {"SHFE", "LME"}  # both venues' days recorded at start
        dep.day_gate.watch.trading_day = lambda venue, now_ns: dt.date(2099, 1, 3) if venue == "SHFE" else seen[venue]
        dep.day_gate._next = 0.0
        again = dep.day_gate.poll()
        assert again is not None and again.trigger == "trading day SHFE 2099-01-03" and not again.engaged, again
        info = ray.get(dep.handles["deployment"].describe.remote(), timeout=10)
        assert info["start_of_day"]["trigger"] == "trading day SHFE 2099-01-03"
        assert ray.get(dep.handles["risk-guard"].status.remote(), timeout=10)["trading_states"].get("global", "ACTIVE") == "ACTIVE"
        ray.get(dep.handles["risk-guard"].flush_sink.remote(), timeout=10)
    finally:
        dep.shutdown_ray()
    ops = [e["payload"] for e in events(setup["tmp"] / "ledger-new", "OPERATOR")]
    held_by = [p for p in ops if p.get("operator") == "start-of-day" and p.get("state") == "REDUCING"]
    assert held_by and "position(s) differ from the venues" in held_by[0]["note"], ops
    accepted = [p for p in ops if "start-of-day differences accepted" in str(p.get("note"))]
    assert accepted and accepted[-1]["operator"] == "alice" and accepted[-1]["state"] == "ACTIVE", ops
    assert "confirmed with the broker" in accepted[-1]["note"]


def test_a_start_on_a_ledger_the_venues_disagree_with_shows_it_and_blocks_new_entries(setup):
    # Arrange: a run that ends holding a position, then the venues forget everything (a new
    # account, a wiped simulator): they hold nothing while the ledger says the strategy holds it
    for _ in range(3):  # on a loaded machine a run may end before cu holds anything
        _run(setup["cfg"], 60, until=_traded)
        if _venue_positions(setup["state"]):
            break
    assert _venue_positions(setup["state"]), "no run ended holding a position"
    shutil.rmtree(setup["state"])
    # Act
    third, _ = _run(setup["cfg"], 8)
    # Assert: the mismatch is shown, set to the venues' word, and the account's venues are REDUCING
    r = third.resumed
    assert r is not None and r["mismatches"], r
    assert {m["venue"] for m in r["mismatches"]} == {0}
    reducing = {k for k, v in r["trading_states"].items() if v == "REDUCING"}
    assert reducing & {"venue:SHFE", "venue:LME"}, r["trading_states"]
    alerts = [e for e in events(setup["ledger"], "ALERT") if e["payload"].get("monitor") == "position_mismatch"]
    assert alerts and alerts[-1]["payload"]["level"] == "orange"
