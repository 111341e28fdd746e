"""Batch orders across accounts (issue 20 item 4): the allocation rule and the per-account pairs
(core/batch.py), and ``POST /v1/batches`` / ``GET /v1/batches/{id}`` with a fake backend on a
real deployment file (the catalogue's SHFE and LME copper): per account and in total,
idempotent on the instruction id, bad input named."""
from __future__ import annotations

from decimal import Decimal

import pytest

from api_fakes import BatchBackend, api_config, batch_deployment, make_tokens
from xmc_actors.core.batch import AccountPair, allocate, batch_report, lots_of, plan_batch
from xmc_actors.core.operator_api import ApiError
from xmc_actors.model.market import Side

ENTRIES, TOKENS = make_tokens()
D = Decimal


def test_allocate_largest_remainder_adds_up():
    assert allocate(60, [("A", D(1)), ("B", D(1)), ("C", D(1))]) == {"A": 20, "B": 20, "C": 20}
    assert allocate(10, [("A", D(1)), ("B", D(1)), ("C", D(1))]) == {"A": 4, "B": 3, "C": 3}  # tie: first listed
    assert allocate(10, [("A", D(5)), ("B", D(3)), ("C", D(2))]) == {"A": 5, "B": 3, "C": 2}
    assert allocate(7, [("A", D("200e6")), ("B", D("100e6")), ("C", D("1e6"))]) == {"A": 5, "B": 2, "C": 0}
    assert allocate(12, [("A", D(1)), ("B", D(2))], step=3) == {"A": 3, "B": 9}
    for total in range(1, 40):
        parts = allocate(total, [("A", D("0.3")), ("B", D("0.45")), ("C", D("0.25"))])
        assert sum(parts.values()) == total and all(v >= 0 for v in parts.values())
    for bad, field in (((0, [("A", D(1))]), "quantity"), ((5, []), "accounts"), ((5, [("A", D(-1))]), "weights"),
                       ((5, [("A", D(0))]), "weights")):
        with pytest.raises(ApiError) as e:
            allocate(*bad)
        assert e.value.field == field and e.value.status == 422
    with pytest.raises(ApiError, match="lot size 3"):
        allocate(10, [("A", D(1))], step=3)


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    return batch_deployment(tmp_path_factory.mktemp("batch"))


def test_lots_and_plan(dep):
    a, b = dep.instrument("SHFE.cu"), dep.instrument("LME.CA3M")
    assert lots_of(D(300), "t", a) == 60 and lots_of(D(7), "lots", a) == 7
    with pytest.raises(ApiError, match="whole"):
        lots_of(D(301), "t", a)
    with pytest.raises(ApiError) as e:
        lots_of(D(300), "kg", a)
    assert e.value.field == "unit"
    occ = {"cn-main": {"equity": "200000000", "currency": "CNY"}, "cn-b": {"equity": "100000000", "currency": "CNY"},
           "cn-c": {"equity": "50000000", "currency": "CNY"}}
    quotes = {"SHFE.cu": {"bid": "72000", "ask": "72010", "status": "OK"},
              "LME.CA3M": {"bid": "10140", "ask": "10140.5", "status": "OK"}}
    plan = plan_batch(instruction_id="i1", strategy=dep.strategies[0], inst_a=a, inst_b=b, side_a=Side.BUY,
                      quantity=D(300), unit="t", pairs=[AccountPair("cn-main", "us-main"), AccountPair("cn-b", "us-b"),
                                                        AccountPair("cn-c", "us-main")],
                      rule="capital_share", weights=None, occupancy=occ, hedge_ratio=D("0.2"), quotes=quotes, now_ns=1)
    assert [p["lots_a"] for p in plan.parts] == [34, 17, 9]  # 60 lots by 4:2:1
    assert [p["lots_b"] for p in plan.parts] == [7, 3, 2]  # 0.2 of each, whole lots nearest
    i = plan.intents[0]
    assert i.decision_id == "batch-i1-1" and i.strategy == "batch"
    assert i.legs[0].side is Side.BUY and i.legs[0].limit_price == D("72010") and i.legs[0].account == "cn-main"
    assert i.legs[1].side is Side.SELL and i.legs[1].limit_price == D("10140") and i.legs[1].account == "us-main"
    with pytest.raises(ApiError) as e:  # capital share across currencies is refused
        plan_batch(instruction_id="i2", strategy=dep.strategies[0], inst_a=a, inst_b=b, side_a=Side.BUY, quantity=D(5),
                   unit="lots", pairs=[AccountPair("cn-main", "us-main"), AccountPair("us-b", "cn-b")],
                   rule="capital_share", weights=None, occupancy={**occ, "us-b": {"equity": "1", "currency": "USD"}},
                   hedge_ratio=D("0.2"), quotes=quotes, now_ns=1)
    assert e.value.field == "allocation"
    with pytest.raises(ApiError) as e:  # no executable price: nothing planned
        plan_batch(instruction_id="i3", strategy=dep.strategies[0], inst_a=a, inst_b=b, side_a=Side.SELL,
                   quantity=D(5), unit="lots", pairs=[AccountPair("cn-main", "us-main")], rule="equal", weights=None,
                   occupancy=occ, hedge_ratio=D("0.2"), quotes={**quotes, "SHFE.cu": {"bid": None, "ask": "1"}}, now_ns=1)
    assert e.value.status == 409 and e.value.field == "quotes"
    rep = batch_report(plan.public(), {"batch-i1-1": {"state": "HEDGED", "legs": [
        {"leg": "A", "net_qty": 34}, {"leg": "B", "net_qty": -7}]}, "batch-i1-2": None})
    assert rep["accounts"][0]["state"] == "HEDGED" and rep["accounts"][1]["state"] == "WORKING"
    assert rep["total"]["filled_a"] == 34 and rep["total"]["filled_b"] == 7 and not rep["complete"]


def _client(dep):
    from fastapi.testclient import TestClient

    from xmc_actors.api.app import build_app
    from xmc_actors.core.operator_api import TokenBook

    be = BatchBackend(dep)
    return TestClient(build_app(api_config(), TokenBook(ENTRIES), be)), be


BODY = {"instruction_id": "ERP-0001", "strategy": "cu", "side": "buy", "quantity": 300, "unit": "t",
        "accounts": [{"a": "cn-main", "b": "us-main"}, {"a": "cn-b", "b": "us-b"}, {"a": "cn-c", "b": "us-main"}]}


def test_batch_over_http_per_account_and_total_once(dep):
    c, be = _client(dep)
    h = {"Authorization": f"Bearer {TOKENS['trader']}"}
    r = c.post("/v1/batches", headers=h, json=BODY)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [p["lots_a"] for p in out["parts"]] == [34, 17, 9] and out["operator"] == "trader"
    assert [s["accepted"] for s in out["submitted"]] == [True, True, True]
    again = c.post("/v1/batches", headers=h, json=BODY).json()
    assert again["replayed"] is True and len([x for x in be.calls if x[0] == "submit"]) == 3
    assert c.post("/v1/batches", headers=h, json={**BODY, "quantity": 400}).status_code == 409
    rep = c.get("/v1/batches/ERP-0001", headers={"Authorization": f"Bearer {TOKENS['viewer']}"}).json()
    assert rep["complete"] and rep["total"] == {"filled_a": 60, "filled_b": 12, "pairs": 3, "done": 3,
                                                "by_outcome": {"HEDGED": 3}}
    assert [a["filled_a"] for a in rep["accounts"]] == [34, 17, 9]
    ev = [e for e in be.sink.events if e.kind.value == "OPERATOR" and e.payload.get("action") == "batch"]
    assert len(ev) == 1 and ev[0].payload["operator"] == "trader" and ev[0].payload["instruction_id"] == "ERP-0001"
    assert c.post("/v1/batches", headers={"Authorization": f"Bearer {TOKENS['viewer']}"},
                  json={**BODY, "instruction_id": "x"}).status_code == 403


@pytest.mark.parametrize("change,status,field", [
    ({"strategy": "nope"}, 404, "strategy"),
    ({"accounts": [{"a": "cn-zz", "b": "us-main"}]}, 404, "accounts.0.a"),
    ({"accounts": [{"a": "us-main", "b": "us-b"}]}, 422, "accounts.0.a"),
    ({"accounts": []}, 422, "accounts"),
    ({"quantity": -5}, 422, "quantity"),
    ({"quantity": "many"}, 422, "quantity"),
    ({"quantity": 301}, 422, "quantity"),
    ({"unit": "kg"}, 422, "unit"),
    ({"side": "long"}, 422, "side"),
    ({"instruction_id": "has space"}, 422, "instruction_id"),
    ({"allocation": "weights"}, 422, "weights"),
    ({"accounts": [{"a": "cn-main", "b": "us-main"}, {"a": "cn-main", "b": "us-b"}]}, 422, "accounts"),
])
def test_batch_bad_input_is_named_and_sends_nothing(dep, change, status, field):
    c, be = _client(dep)
    r = c.post("/v1/batches", headers={"Authorization": f"Bearer {TOKENS['trader']}"},
               json={**BODY, "instruction_id": "bad-1", **change})
    assert r.status_code == status and r.json()["field"] == field, r.text
    assert not [x for x in be.calls if x[0] == "submit"]
    # the refused instruction id stays free
    if status != 422 or field not in ("instruction_id",):
        assert c.post("/v1/batches", headers={"Authorization": f"Bearer {TOKENS['trader']}"},
                      json={**BODY, "instruction_id": "bad-1"}).status_code == 200


@pytest.mark.parametrize("role", ["viewer", "trader", "risk_officer", "admin"])
def test_batch_permission_by_role(dep, role):
    c, be = _client(dep)
    r = c.post("/v1/batches", headers={"Authorization": f"Bearer {TOKENS[role]}"}, json={**BODY, "instruction_id": role})
    assert r.status_code == (403 if role == "viewer" else 200), r.text
    assert len([x for x in be.calls if x[0] == "submit"]) == (0 if role == "viewer" else 3)
