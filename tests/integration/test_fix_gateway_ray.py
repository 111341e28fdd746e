"""A deployment on Ray whose LME leg crosses a real FIX session to the loopback FIX exchange.

The exchange runs as its own process (``xmc venue serve``) on a free port of 127.0.0.1; the
LME gateway has ``adapter: fix`` pointed at it, its synthetic feed forwarded to the exchange's
book over the control channel, and its quotes come back over the FIX session (MarketDataRequest,
snapshot and incremental refreshes). The band strategy trades SHFE (simulated, in process)
against LME (over FIX). Mid-run two answers are lost on the way (recovered by resend), then the
exchange stalls and drops the TCP connection: the adapter logs on again and nothing is left
UNKNOWN; a pair escalated meanwhile is resolved as a desk would (``resolve``) and pairs go on;
no ClOrdID reaches the exchange twice and every execution is in the trail once. Everything is
stopped at the end, whatever happens.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter

import pytest
import ray
import yaml

from runtime_kit import TERMINAL, XMC, band, copper_config, events, last_pair_states, subprocess_env
from testkit import wait_until
from xmc_actors.runtime.config import load_config
from xmc_actors.venues.fix.exchange import control

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]
NS = "test-fix-gateway-ray"
FIX_PARAMS = {"sender_comp_id": "XMCGW", "target_comp_id": "LMEX", "heartbeat_s": 2, "reconnect_interval_s": 1,
              "ack_timeout_ms": 1000, "logon_timeout_s": 10}


def _fix_config(path, port: int, control_port: int | None, store: str) -> None:
    doc = yaml.safe_load(path.read_text())
    for g in doc["gateways"]:
        if g["venue"] == "LME":
            params = {**FIX_PARAMS, "port": port, "store_path": store}
            if control_port is not None:
                params["exchange_control"] = f"127.0.0.1:{control_port}"
            g.update(adapter="fix", params=params)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    """``xmc venue serve`` for the LME gateway on a free loopback port; stopped at the end."""
    tmp = tmp_path_factory.mktemp("fixray")
    cfg = copper_config(tmp, "fix-ray", NS, strategies=[band("cu")])
    _fix_config(cfg, 1, None, str(tmp / "fix"))  # the exchange reads venue, instruments and CompIDs
    proc = subprocess.Popen([XMC, "venue", "serve", str(cfg), "--gateway", "LME", "--port", "0",
                             "--sim-params", json.dumps({"seed": 7})],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    ports: dict = {}
    try:
        box: dict = {}
        reader = threading.Thread(target=lambda: box.update(line=proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        if not box.get("line"):
            proc.kill()
            pytest.fail(f"xmc venue serve did not start: {proc.stderr.read()[-3000:]}")
        ports = json.loads(box["line"])
        assert ports["host"] == "127.0.0.1"
        _fix_config(cfg, ports["port"], ports["control_port"], str(tmp / "fix"))
        yield {"cfg": cfg, "tmp": tmp, "control": f"127.0.0.1:{ports['control_port']}", "proc": proc}
    finally:
        try:
            if ports:
                control(f"127.0.0.1:{ports['control_port']}", {"cmd": "stop"}, timeout_s=3)
        except Exception:  # noqa: BLE001 - it may be gone already; it is killed below
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def run(exchange):
    """The deployment, started, its live feeds running in a background thread; stopped and Ray
    shut down at the end whatever happens."""
    from xmc_actors.runtime.deploy import Deployment

    dep = Deployment(load_config(exchange["cfg"]))
    stop = threading.Event()
    box: dict = {}
    th = None
    try:
        dep.start()

        def go():
            try:
                box["summary"] = dep.run(duration_s=None, stop_event=stop)
            except BaseException as e:  # noqa: BLE001 - surfaced by the test
                box["error"] = e

        th = threading.Thread(target=go, daemon=True)
        th.start()
        yield {"dep": dep, "stop": stop, "thread": th, "box": box, "ledger": str(exchange["tmp"] / "ledger"),
               **exchange}
    finally:
        stop.set()
        if th is not None:
            th.join(90)
        try:
            gw = ray.get_actor("gateway-LME", namespace=NS)
            ray.get(gw.close.remote(), timeout=20)
        except Exception:  # noqa: BLE001 - already gone
            pass
        dep.shutdown_ray()


def _lme_status() -> dict:
    gw = ray.get_actor("gateway-LME", namespace=NS)
    return ray.get(gw.status.remote(), timeout=20)


def _outcomes(run) -> dict[str, int]:
    return run["dep"].progress()["by_outcome"]


def _completed(run) -> int:
    """Pairs that completed: HEDGED, or ROLLED_BACK after one leg failed."""
    o = _outcomes(run)
    return o.get("HEDGED", 0) + o.get("ROLLED_BACK", 0)


def test_pairs_complete_over_a_real_fix_session_then_survive_a_dropped_connection(run):
    ctl = run["control"]
    st = _lme_status()
    assert st["session"]["kind"] == "fix" and st["session"]["logged_on"], st.get("session")
    wait_until(lambda: _completed(run) >= 3, 90,
               "three pairs HEDGED or ROLLED_BACK over FIX")
    st = _lme_status()
    assert st["counters"].get("quotes", 0) > 0, "the gateway publishes the exchange's quotes"
    assert st["session"]["next_sender_seq"] > 1 and st["session"]["last_heartbeat_ns"] > 0
    # the gateway's positions are the broker's (RequestForPositions answered by the exchange from
    # its own books), not the session's fills: what a restarted risk guard verifies its ledger
    # against. Pairs go on trading meanwhile, so the two are compared until a quiet moment
    assert st["session"]["positions"]["source"] == "venue", st["session"]["positions"]
    lme = run["dep"].gateways["LME"]
    def agree_on_a_position() -> bool:
        # not vacuous: a moment when the exchange holds a position (the strategy trades in and
        # out, so the book is flat now and then) and the gateway reports the same
        theirs = control(run["control"], {"cmd": "positions"})
        return bool(theirs) and ray.get(lme.positions.remote(), timeout=20) == theirs

    try:
        wait_until(agree_on_a_position, 60, "the gateway's positions match the exchange's, which holds one")
    except AssertionError:
        raise AssertionError(f"positions differ: gateway {ray.get(lme.positions.remote(), timeout=20)} exchange "
                             f"{control(run['control'], {'cmd': 'positions'})} {_lme_status()['session']['positions']}"
                             ) from None

    # answers lost: the exchange processes the next two orders and their reports are lost on the
    # way (numbered and kept, never written); the session sees the gap and recovers them by
    # resend (or, if an answer is not back within ack_timeout_ms, the order is UNKNOWN and a
    # status request resolves it). Then the venue goes silent while pairs trade and the TCP
    # connection drops: the adapter logs on again and nothing is left UNKNOWN
    done_before = _completed(run)
    logons_before = st["session"]["counters"].get("logons", 0)
    control(ctl, {"cmd": "inject", "fault": {"kind": "no_ack_next", "count": 2}})
    try:
        wait_until(lambda: control(ctl, {"cmd": "status"})["counters"].get("reports_lost", 0) >= 1
                   and _lme_status()["session"]["counters"].get("recovered_reports", 0) >= 1, 60,
                   "an answer lost on the way, recovered by resend")
    except AssertionError:
        s_ = _lme_status()
        raise AssertionError(f"no answer lost and recovered: {run['dep'].progress()} counters={s_['counters']} "
                             f"session={s_['session']} exchange={control(ctl, {'cmd': 'status'})}") from None
    control(ctl, {"cmd": "stall", "ms": 1500})
    time.sleep(1.0)
    control(ctl, {"cmd": "drop"})
    wait_until(lambda: _lme_status()["session"]["counters"].get("logons", 0) > logons_before
               and _lme_status()["session"]["logged_on"], 30, "logged on again")
    try:
        wait_until(lambda: _lme_status()["session"]["unknown_orders"] == 0, 60, "no order left UNKNOWN")
    except AssertionError:
        s_ = _lme_status()
        raise AssertionError(f"an order left UNKNOWN: counters={s_['counters']} session={s_['session']}") from None
    # the stall may stop the strategy, as it should: a pair whose LME answer was still unknown
    # when its queries ran out is ESCALATED (its late fill revises the residual), or a pair
    # that waited out the stall ends unhedged for longer than the monitor allows (red
    # `unhedged`: automatic halt). A desk deals with each as `xmc resolve` and `xmc resume`
    # do, and the strategy trades again
    guard = ray.get_actor("risk-guard", namespace=NS)
    desk: list[str] = []

    def desk_steps() -> None:
        g = ray.get(guard.status.remote(), timeout=20)
        for did in sorted(g.get("unresolved_escalations") or {}):
            res = ray.get(guard.resolve.remote(did, "test-desk", "late LME fill checked at the venue", 10.0), timeout=30)
            assert res.get("ok"), res
            desk.append(f"resolved {did}")
        by = g.get("state_set_by") or {}
        for sk, state in (g.get("trading_states") or {}).items():
            if sk.startswith("strategy:") and state == "HALTED" and str(by.get(sk, "")).startswith("auto:unhedged"):
                ray.get(guard.resume.remote("strategy", sk.split(":", 1)[1], "test-desk",
                                            "unhedged time after the stall checked"), timeout=30)
                desk.append(f"resumed {sk}")

    def more_pairs() -> bool:
        desk_steps()
        return _completed(run) >= done_before + 3

    try:
        wait_until(more_pairs, 90, "three more pairs complete after the reconnect", every=0.5)
    except AssertionError:
        s_ = _lme_status()
        g = ray.get(guard.status.remote(), timeout=20)
        raise AssertionError(f"pairs stopped after the reconnect: {run['dep'].progress()} stale={s_['stale']} "
                             f"counters={s_['counters']} session={s_['session']} "
                             f"states={g.get('trading_states')} alerts={g.get('open_alerts')} desk={desk}") from None
    st = _lme_status()
    assert "CALLBACK_ERROR" not in st["bad_input"], st["session"]["bad_input"]

    # stop: every pair ends
    run["stop"].set()
    run["thread"].join(120)
    assert "error" not in run["box"], run["box"].get("error")
    summary = run["box"]["summary"]
    states = last_pair_states(run["ledger"])
    assert states and set(states.values()) <= TERMINAL, Counter(states.values())
    assert sum(1 for v in states.values() if v in ("HEDGED", "ROLLED_BACK")) >= 6
    assert summary.pairs_by_outcome

    # no order reached the exchange twice
    received = control(ctl, {"cmd": "received_orders"})
    dups = [c for c, n in Counter(received).items() if n > 1]
    assert received and not dups, dups
    # every execution the exchange made is in the trail once (the gateway's drop copy), and the
    # coordinator booked each once
    venue_fills = control(ctl, {"cmd": "fills"})
    drop = [e for e in events(run["ledger"], "VENUE_DROP_COPY") if e["venue"] == "LME"]
    trail_ids = [e["payload"]["report"]["fill"]["trade_id"] for e in drop if e["payload"]["report"].get("fill")]
    assert Counter(trail_ids).most_common(1)[0][1] == 1 if trail_ids else True
    assert sorted(trail_ids) == sorted(f["trade_id"] for f in venue_fills)
    booked = [e["payload"]["trade_id"] for e in events(run["ledger"], "ORDER_REPORT")
              if e["instrument"] == "LME.CA3M" and e["payload"].get("fill_qty")]
    assert not [t for t, n in Counter(booked).items() if n > 1]
    assert set(booked) <= set(trail_ids)
