"""Two gateways on one venue: another broker or account reaches LME through a session of its own.

The deployment has the usual SHFE and LME gateways and a second LME gateway that carries only
account ``us-b2``. Strategy ``cu`` trades through ``us-main`` and ``cu-b2`` through ``us-b2``.
Each order must reach the venue through the gateway that carries its account (the venue's drop
copies, stamped by the gateway that saw them, say which), both strategies must hedge, the
strategies must take their LME quotes from the venue's first gateway only, and neither gateway
may ever be handed an order for an account it does not carry.
"""
from __future__ import annotations

import threading
import time

import pytest
import ray
import yaml

from runtime_kit import band, copper_config, events, gateway
from xmc_actors.runtime.config import load_config

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]
NS = "test-runtime-two-gateways"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from xmc_actors.runtime.deploy import Deployment

    tmp = tmp_path_factory.mktemp("two-gw")
    b2 = band("cu-b2")
    b2["legs"][1]["account"] = "us-b2"
    second = {**gateway("LME", seed=22, start=10140, inst="LME.CA3M"), "name": "gateway-LME-b2", "accounts": ["us-b2"]}
    path = copper_config(tmp, "two-gw", NS, strategies=[band("cu"), b2], gateways_extra=[second])
    doc = yaml.safe_load(path.read_text())
    doc["accounts"].append({"id": "us-b2", "broker": "second-broker", "venues": ["LME"], "currency": "USD",
                            "capital": 30_000_000})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    dep = Deployment(load_config(path))
    stop = threading.Event()
    box: dict = {}
    th = None
    try:
        dep.start()
        th = threading.Thread(target=lambda: box.setdefault("summary", dep.run(duration_s=None, stop_event=stop)),
                              daemon=True)
        th.start()
        end = time.monotonic() + 60
        while time.monotonic() < end and dep.progress()["by_outcome"].get("HEDGED", 0) < 10:
            time.sleep(0.5)
        statuses = {n: ray.get(ray.get_actor(n, namespace=NS).status.remote(), timeout=20)
                    for n in ("gateway-LME", "gateway-LME-b2")}
        stop.set()
        th.join(90)
        yield {"dep": dep, "ledger": tmp / "ledger", "summary": box.get("summary"), "statuses": statuses}
    finally:
        stop.set()
        if th is not None:
            th.join(90)
        dep.shutdown_ray()


def test_each_order_reaches_the_venue_through_the_gateway_that_carries_its_account(run):
    copies = [r for r in events(run["ledger"], "VENUE_DROP_COPY") if r["venue"] == "LME"]
    by_account: dict[str, set[str]] = {}
    for r in copies:
        by_account.setdefault(r["account"], set()).add(r["actor"])
    assert by_account == {"us-main": {"gateway-LME"}, "us-b2": {"gateway-LME-b2"}}, by_account
    for name, st in run["statuses"].items():
        assert st["counters"].get("wrong_account", 0) == 0, (name, st["counters"])


def test_both_strategies_hedge_pairs_on_their_own_accounts(run):
    sent = events(run["ledger"], "ORDER_SENT")
    hedged = {r["strategy"] for r in events(run["ledger"], "PAIR_STATE") if r["payload"].get("to") == "HEDGED"}
    assert hedged == {"cu", "cu-b2"}, hedged
    assert {r["account"] for r in sent if r["strategy"] == "cu-b2" and r["venue"] == "LME"} == {"us-b2"}
    assert {r["account"] for r in sent if r["strategy"] == "cu" and r["venue"] == "LME"} == {"us-main"}


def test_the_strategies_take_the_venues_quotes_from_its_first_gateway_only(run):
    lme, b2 = run["statuses"]["gateway-LME"], run["statuses"]["gateway-LME-b2"]
    assert lme["quote_source"] and not b2["quote_source"] and b2["accounts"] == ["us-b2"]
    assert lme["subscribers"] >= 2 and b2["subscribers"] == 0, (lme["subscribers"], b2["subscribers"])
