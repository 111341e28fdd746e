"""ERP hedge instructions and signed webhooks (issue 20 item 5): the HMAC signature, the outbox
(order, retries with back-off, dead letters), the watch that turns pair states into events, the
desk's webhook flow, and ``POST /v1/hedges`` over HTTP (a batch of one, idempotent, named errors)."""
from __future__ import annotations

import json

import pytest

from api_fakes import BatchBackend, api_config, batch_deployment, make_tokens
from xmc_actors.api.desk import DeskService
from xmc_actors.core.clock import SimClock
from xmc_actors.core.webhook import Outbox, Watch, sign, verify
from xmc_actors.model.api import ConfirmConfig, WebhookConfig

S = 1_000_000_000
ENTRIES, TOKENS = make_tokens()


def test_signature_round_trip_and_refusals():
    body = b'{"a":1}'
    h = sign(b"k", 1_700_000_000, body)
    assert h.startswith("t=1700000000,v1=")
    assert verify(b"k", h, body, 1_700_000_100)
    assert not verify(b"other", h, body, 1_700_000_100)
    assert not verify(b"k", h, b'{"a":2}', 1_700_000_100)
    assert not verify(b"k", h, body, 1_700_001_000)  # too old: a replay
    assert not verify(b"k", "garbage", body, 1_700_000_000)


def test_outbox_order_retries_and_dead_letters():
    clock = SimClock()
    box = Outbox(clock, max_attempts=3, backoff_s=1, max_backoff_s=10)
    assert box.add("e1", "erp", {"type": "fill"}) and box.add("e2", "erp", {"type": "completed"})
    assert not box.add("e1", "erp", {"type": "fill"})  # idempotent on the event id
    d = box.due()
    assert [x.event_id for x in d] == ["e1"]  # one at a time per webhook, in order
    assert box.due() == []
    box.result("e1", False, "HTTP 500")
    assert box.due() == []  # backing off
    clock.advance(S)
    assert [x.event_id for x in box.due()] == ["e1"]
    box.result("e1", False, "ConnectionRefusedError")
    clock.advance(S)
    assert box.due() == []  # 2 s now
    clock.advance(S)
    box.due()
    assert box.result("e1", False, "timeout").state == "DEAD"
    assert [x.event_id for x in box.due()] == ["e2"]  # the next goes on
    assert box.result("e2", True).state == "DELIVERED"
    assert box.stats() == {"by_state": {"DEAD": 1, "DELIVERED": 1}, "delivered": 1, "dead": 1}
    assert box.dead[0].public()["attempts"] == 3 and box.dead[0].public()["event"]["type"] == "fill"


def test_watch_reports_fills_then_completion_once():
    w = Watch("hedge", "h1", "erp", ["d1", "d2"])
    assert w.observe({}) == []
    ev = w.observe({"d1": {"state": "WORKING", "legs": [{"leg": "A", "net_qty": 2}, {"leg": "B", "net_qty": 0}]}})
    assert [e[1]["type"] for e in ev] == ["fill"] and ev[0][1]["filled_a"] == 2
    assert w.observe({"d1": {"state": "WORKING", "legs": [{"leg": "A", "net_qty": 2}]}}) == []  # nothing new
    done = {"d1": {"state": "HEDGED", "legs": [{"leg": "A", "net_qty": 3}, {"leg": "B", "net_qty": -1}]},
            "d2": {"state": "REFUSED", "legs": []}}
    ev = w.observe(done)
    assert [e[1]["type"] for e in ev] == ["fill", "fill", "completed"]
    assert ev[-1][1]["by_outcome"] == {"HEDGED": 1, "REFUSED": 1} and ev[-1][1]["filled_a"] == 3
    assert w.observe(done) == []


def test_desk_posts_signed_events_and_records_dead_letters():
    from xmc_actors.core.sink import MemorySink

    clock, sink = SimClock(), MemorySink()
    hooks = (WebhookConfig(name="erp", url="http://127.0.0.1:1/hook", secret={"env": "ERP_SECRET"}, max_attempts=2,
                           backoff_s=1),)
    svc = DeskService(ConfirmConfig(), 60, sink, clock, hooks, env={"ERP_SECRET": "s3cret"})
    assert svc.call("check_webhook", "nope")["__api_error__"]["field"] == "webhook"
    svc.watch("batch", "b1", "erp", ["d1"])
    svc.observe({"d1": {"state": "HEDGED", "legs": [{"leg": "A", "net_qty": 1}, {"leg": "B", "net_qty": -1}]}})
    posts = svc.due()
    assert len(posts) == 1
    name, eid, url, body, headers, timeout = posts[0]
    assert verify(b"s3cret", headers["X-XMC-Signature"], body, clock.now_ns() // S)
    assert headers["X-XMC-Event-Id"] == eid and json.loads(body)["type"] == "fill"
    assert svc.result("erp", eid, True) == "DELIVERED"
    (_, eid2, *_), = svc.due()
    assert svc.result("erp", eid2, False, "HTTP 503") == "PENDING"
    clock.advance(S)
    svc.due()
    assert svc.result("erp", eid2, False, "HTTP 503") == "DEAD"
    dead = [e for e in sink.events if e.reason == "webhook dead letter"]
    assert len(dead) == 1 and dead[0].payload["event"]["type"] == "completed"
    st = svc.webhooks_status()["erp"]
    assert st["dead"] == 1 and st["dead_letters"][0]["last_error"] == "HTTP 503"
    assert "s3cret" not in json.dumps(st) and all("s3cret" not in json.dumps(e.model_dump(mode="json")) for e in sink.events)
    noenv = DeskService(ConfirmConfig(), 60, None, clock, hooks, env={})
    assert noenv.call("check_webhook", "erp")["__api_error__"]["status"] == 503


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    return batch_deployment(tmp_path_factory.mktemp("hedge"))


def _client(dep):
    from fastapi.testclient import TestClient

    from xmc_actors.api.app import build_app
    from xmc_actors.core.operator_api import TokenBook

    be = BatchBackend(dep)
    hooks = (WebhookConfig(name="erp", url="http://127.0.0.1:1/hook", secret={"env": "ERP_SECRET"}),)
    be.svc = DeskService(ConfirmConfig(), 60, be.sink, None, hooks, env={"ERP_SECRET": "k"})
    return TestClient(build_app(api_config(), TokenBook(ENTRIES), be)), be


HEDGE = {"hedge_id": "PO-77", "commodity": "SHFE.cu", "quantity": 50, "unit": "t", "direction": "sell",
         "account": "cn-b", "period": {"start": "2026-12-01", "end": "2027-03-31"}, "roll": "auto", "webhook": "erp"}


def test_hedge_over_http(dep):
    c, be = _client(dep)
    h = {"Authorization": f"Bearer {TOKENS['trader']}"}
    r = c.post("/v1/hedges", headers=h, json=HEDGE)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["instruction_id"] == "hedge-PO-77" and out["kind"] == "hedge" and out["webhook"] == "erp"
    assert out["parts"] == [{"a": "cn-b", "b": "us-main", "lots_a": 10, "lots_b": 2, "decision_id": "batch-hedge-PO-77-1"}]
    i = be.submitted["batch-hedge-PO-77-1"]
    assert i.legs[0].side.value == "SELL" and i.legs[1].side.value == "BUY"
    assert "hedge-PO-77" in be.svc.watches
    # roll "auto": the risk guard watches the hedge's own pairs for their roll, booked as batch pairs,
    # and the desk reports its rolls to the same webhook
    [w] = [c for c in be.calls if c[0] == "watch_position"]
    assert w[1:] == ("hedge-PO-77", {"mode": "auto"}, {"SHFE": "cn-b", "LME": "us-main"},
                     ["batch-hedge-PO-77-1"], "batch", out["operator"]), w
    assert out["roll_watch"]["mode"] == "auto" and be.svc.followed_rolls() == ["hedge-PO-77"]
    # the same hedge sent again (after a risk guard restart, say): a replay that watches it again
    again = c.post("/v1/hedges", headers=h, json=HEDGE).json()
    assert again["replayed"] is True and again["roll_watch"]["mode"] == "auto"
    assert len([c for c in be.calls if c[0] == "watch_position"]) == 2 and len(be.submitted) == 1
    rep = c.get("/v1/batches/hedge-PO-77", headers=h).json()
    assert rep["complete"] and rep["total"]["filled_a"] == 10
    assert c.get("/v1/webhooks", headers=h).json()["erp"]["url"] == "http://127.0.0.1:1/hook"


@pytest.mark.parametrize("change,status,field", [
    ({"commodity": "COMEX.GC"}, 404, "commodity"),
    ({"webhook": "nope"}, 404, "webhook"),
    ({"account": "us-main"}, 422, "accounts.0.a"),
    ({"quantity": 7, "unit": "t"}, 422, "quantity"),
    ({"direction": "up"}, 422, "direction"),
    ({"period": {"start": "soon", "end": "2027-01-01"}}, 422, "period.start"),
    ({"hedge_id": ""}, 422, "hedge_id"),
    ({"roll": "calendar"}, 422, "roll"),
])
def test_hedge_bad_input(dep, change, status, field):
    c, be = _client(dep)
    r = c.post("/v1/hedges", headers={"Authorization": f"Bearer {TOKENS['trader']}"}, json={**HEDGE, **change})
    assert r.status_code == status and r.json()["field"] == field, r.text
    assert be.submitted == {}


def test_a_hedges_rolls_reach_its_webhook_once_per_state_and_a_stop_is_reported():
    from xmc_actors.core.webhook import RollFollow

    f = RollFollow("hedge-PO-77", "hedge-PO-77", "erp")
    st = {"hedge-PO-77": {"mode": "auto", "pending": "autoroll-x", "suspended": None, "rolls": {"autoroll-x": "SENT"}}}
    [(eid, ev)] = f.observe(st)
    assert eid == "hedge-PO-77:roll:autoroll-x:SENT" and ev == {"type": "roll", "kind": "hedge", "ref": "hedge-PO-77",
                                                                 "decision_id": "autoroll-x", "state": "SENT"}
    assert f.observe(st) == [] and f.observe({"other": {}}) == []
    st["hedge-PO-77"].update(rolls={"autoroll-x": "ESCALATED"}, suspended="auto roll autoroll-x ESCALATED: ...")
    out = f.observe(st)
    assert [e["type"] for _, e in out] == ["roll", "roll_stopped"] and out[0][1]["state"] == "ESCALATED"
    assert f.observe(st) == []
