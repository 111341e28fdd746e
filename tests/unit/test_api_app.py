"""The operator API's HTTP shell (api/app.py) against a fake backend, without Ray: the
permission matrix over HTTP (every role against every action), second-operator confirmation,
request ids, bad input (item 7), the OpenAPI schema, and no token anywhere it is not sent."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from api_fakes import ROLES, FakeBackend, api_config, make_tokens  # noqa: E402

from xmc_actors.api.app import build_app  # noqa: E402
from xmc_actors.core.clock import SimClock  # noqa: E402
from xmc_actors.core.operator_api import TokenBook  # noqa: E402
from xmc_actors.model.api import ConfirmConfig  # noqa: E402

ENTRIES, TOKENS = make_tokens()


def client(**cfg) -> tuple[TestClient, FakeBackend]:
    clock = SimClock()
    be = FakeBackend(clock, cfg.pop("confirm", None))
    app = build_app(api_config(**cfg), TokenBook(ENTRIES), be, clock=clock)
    return TestClient(app), be


def auth(op: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[op]}"}


# every action: (method, path, body) that the role may or may not do; bodies need no confirmation
ACTIONS = {
    "read": ("GET", "/v1/status", None),
    "halt": ("POST", "/v1/halt", {"strategy": "copper", "reason": "test"}),
    "reduce": ("POST", "/v1/reduce", {"venue": "LME"}),
    "resume": ("POST", "/v1/resume", {"strategy": "copper"}),
    "limits": ("POST", "/v1/limits", {"instrument": "SHFE.cu", "field": "max_position", "value": 8}),
    "acknowledge": ("POST", "/v1/alerts/al-yel/acknowledge", {"note": "seen"}),
}
MAY = {
    "viewer": {"read"},
    "trader": {"read", "halt", "reduce", "resume", "acknowledge"},
    "risk_officer": {"read", "halt", "reduce", "resume", "limits", "acknowledge"},
    "admin": set(ACTIONS),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_permission_matrix_over_http(role: str, action: str):
    c, be = client()
    method, path, body = ACTIONS[action]
    r = c.request(method, path, headers=auth(role), json=body)
    if action in MAY[role]:
        assert r.status_code == 200, r.text
        if action in ("halt", "reduce", "resume"):
            assert r.json()["operator"] == role
            assert be.calls and be.calls[-1][0] == "set_trading_state" and be.calls[-1][4] == role
        if action == "limits":
            assert be.calls == [("set_limit", "instruments", "SHFE.cu", "max_position", "8", role)]
        if action == "acknowledge":
            ops = [e for e in be.sink.events if e.kind.value == "OPERATOR"]
            assert ops[-1].payload["operator"] == role and ops[-1].payload["alert_id"] == "al-yel"
    else:
        assert r.status_code == 403, r.text
        assert r.json()["field"] == "role" and role in r.json()["error"]
        assert be.calls == []


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ["confirm", "order"])
def test_permission_matrix_over_http_confirm_and_order(role: str, action: str):
    """The two actions the matrix above leaves out: the role is checked before anything else
    (a role that may gets past it to the next check: no such confirmation, an empty batch body)."""
    from xmc_actors.core.operator_api import PERMISSIONS, Action, Role

    c, be = client()
    path = "/v1/confirmations/cf-none" if action == "confirm" else "/v1/batches"
    r = c.post(path, headers=auth(role), json={})
    if Action(action) in PERMISSIONS[Role(role)]:
        assert r.status_code == (404 if action == "confirm" else 422), r.text
    else:
        assert r.status_code == 403 and r.json()["field"] == "role" and role in r.json()["error"], r.text
    assert be.calls == []


@pytest.mark.parametrize("path", ["/v1/status", "/v1/halt"])
def test_no_or_bad_token_is_401(path: str):
    c, be = client()
    method = "GET" if path == "/v1/status" else "POST"
    for headers in ({}, {"Authorization": "Bearer xmc.abcd.nope"}, {"Authorization": "Token x"}):
        r = c.request(method, path, headers=headers, json={})
        assert r.status_code == 401 and r.json()["field"] == "authorization"
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert be.calls == []


def test_reads():
    c, _ = client()
    h = auth("viewer")
    assert c.get("/v1/whoami", headers=h).json() == {"operator": "viewer", "role": "viewer", "may": ["read"]}
    st = c.get("/v1/status", headers=h).json()
    assert st["pairs"]["in_flight"] == {"WORKING": 1} and st["open_alerts"] == 2
    assert set(c.get("/v1/strategies", headers=h).json()) == {"copper", "gold"}
    pos = c.get("/v1/positions", headers=h).json()
    assert pos["accounts"]["A"]["SHFE.cu"] == 2 and "A/SHFE.cu" in pos["two_sided"]
    one = c.get("/v1/positions/A", headers=h).json()
    assert one["net"] == {"SHFE.cu": 2, "LME.CA": -2} and one["occupancy"]["currency"] == "USD"
    r = c.get("/v1/positions/Z", headers=h)
    assert r.status_code == 404 and r.json()["field"] == "account" and r.json()["known"] == ["A", "B"]
    assert c.get("/v1/occupancy", headers=h).json()["overall"]["ratio"] == 0.0001
    assert c.get("/v1/pairs/open", headers=h).json()["in_flight"] == {"WORKING": 1}
    out = c.get("/v1/outcomes?limit=2", headers=h).json()
    assert [p["decision_id"] for p in out["pairs"]] == ["d4", "d3"]
    assert c.get("/v1/outcomes?limit=0", headers=h).status_code == 422
    al = c.get("/v1/alerts", headers=h).json()["open"]
    assert [a["level"] for a in al] == ["red", "yellow"]
    assert set(c.get("/v1/venues", headers=h).json()["gateways"]) == {"gateway-LME", "gateway-SHFE"}
    assert c.get("/v1/limits", headers=h).json()["default_limits"] == {"max_order_qty": 5}


def test_openapi_schema_from_the_models():
    c, _ = client()
    spec = c.get("/v1/openapi.json").json()
    assert {"/v1/halt", "/v1/limits", "/v1/status", "/v1/alerts/{alert_id}/acknowledge",
            "/v1/confirmations/{confirmation_id}"} <= set(spec["paths"])
    assert {"StateChange", "LimitChange", "StateResult", "PendingResult", "ErrorBody"} <= set(spec["components"]["schemas"])
    assert spec["components"]["schemas"]["StateChange"]["additionalProperties"] is False


def test_limit_raised_over_threshold_needs_a_second_operator():
    c, be = client(confirm=ConfirmConfig(limit_raise_pct=20, window_s=60))
    r = c.post("/v1/limits", headers=auth("risk_officer"), json={"instrument": "SHFE.cu", "field": "max_position",
                                                                  "value": 50})
    assert r.status_code == 202, r.text
    pend = r.json()
    assert pend["pending"] and "400.0%" in pend["why"] and be.calls == []
    cid = pend["confirmation_id"]
    assert [p["confirmation_id"] for p in c.get("/v1/confirmations", headers=auth("viewer")).json()] == [cid]
    r = c.post(f"/v1/confirmations/{cid}", headers=auth("risk_officer"))
    assert r.status_code == 403 and "second" in r.json()["error"]
    assert c.post(f"/v1/confirmations/{cid}", headers=auth("trader")).status_code == 403
    r = c.post(f"/v1/confirmations/{cid}", headers=auth("risk_officer2"))
    assert r.status_code == 200, r.text
    assert r.json()["confirmed_by"] == "risk_officer2" and r.json()["operator"] == "risk_officer"
    assert be.calls == [("set_limit", "instruments", "SHFE.cu", "max_position", "50", "risk_officer")]
    assert c.post(f"/v1/confirmations/{cid}", headers=auth("admin")).status_code == 409
    ops = [e.payload["action"] for e in be.sink.events if e.kind.value == "OPERATOR"]
    assert ops == ["propose", "confirm"]


def test_resume_with_a_red_alert_needs_confirmation_and_expires():
    clock_client, be = client(confirm=ConfirmConfig(window_s=30))
    c = clock_client
    r = c.post("/v1/resume", headers=auth("trader"), json={"strategy": "gold"})
    assert r.status_code == 202 and "red alert" in r.json()["why"]
    assert c.post("/v1/resume", headers=auth("trader"), json={"strategy": "copper"}).status_code == 200
    be.svc.core.clock.advance(31 * 1_000_000_000)
    r2 = c.post(f"/v1/confirmations/{r.json()['confirmation_id']}", headers=auth("admin"))
    assert r2.status_code == 410
    assert [x for x in be.calls if x[2] == "gold"] == []


def test_request_id_runs_once():
    c, be = client()
    body = {"strategy": "copper", "request_id": "erp-1"}
    r1 = c.post("/v1/halt", headers=auth("trader"), json=body)
    r2 = c.post("/v1/halt", headers=auth("trader"), json=body)
    assert r1.status_code == r2.status_code == 200
    assert r2.json()["replayed"] is True and r2.json()["event_id"] == r1.json()["event_id"]
    assert len(be.calls) == 1
    r3 = c.post("/v1/halt", headers=auth("trader"), json={"strategy": "gold", "request_id": "erp-1"})
    assert r3.status_code == 409 and r3.json()["field"] == "request_id"
    assert len(be.calls) == 1
    # another operator's id space is their own
    assert c.post("/v1/halt", headers=auth("admin"), json=body).json()["replayed"] is False
    # a refused request leaves its id usable
    assert c.post("/v1/halt", headers=auth("trader"), json={"strategy": "nope", "request_id": "erp-2"}).status_code == 404
    assert c.post("/v1/halt", headers=auth("trader"), json={"strategy": "gold", "request_id": "erp-2"}).status_code == 200


# ------------------------------------------------------------------------------ bad input (item 7)
def test_malformed_json_is_400_naming_the_body():
    c, be = client()
    r = c.post("/v1/halt", headers={**auth("trader"), "Content-Type": "application/json"}, content=b"{strategy: copper")
    assert r.status_code == 400 and r.json()["field"] == "body" and "malformed JSON" in r.json()["error"]
    assert be.calls == []


@pytest.mark.parametrize("body,field", [
    ({"strategy": 12}, "strategy"),
    ({"strategy": "copper", "venue": "LME"}, "body"),
    ({"strategy": "copper", "colour": "red"}, "colour"),
    ({"reason": "x" * 600}, "reason"),
    ({"request_id": "has space"}, "request_id"),
    ([1, 2], "body"),
])
def test_wrong_types_and_fields_are_422_naming_the_field(body, field):
    c, be = client()
    r = c.post("/v1/halt", headers=auth("trader"), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and field in r.json()["error"] or field == "body"
    assert be.calls == []


@pytest.mark.parametrize("body,field", [
    ({"instrument": "SHFE.cu", "field": "max_position"}, "value"),
    ({"instrument": "SHFE.cu", "field": "Max-Pos", "value": 1}, "field"),
    ({"account": "A", "field": "max_order_qty", "value": 1}, "body"),
    ({"instrument": "SHFE.cu", "strategy": "copper", "field": "max_position", "value": 1}, "body"),
    ({"section": "nonsense", "field": "x", "value": 1}, "section"),
])
def test_limits_bad_input(body, field):
    c, be = client()
    r = c.post("/v1/limits", headers=auth("admin"), json=body)
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert be.calls == []


@pytest.mark.parametrize("path,body,field", [
    ("/v1/halt", {"strategy": "Copper"}, "strategy"),
    ("/v1/reduce", {"venue": "CME"}, "venue"),
    ("/v1/limits", {"account": "Z", "field": "max_position", "value": 1}, "account"),
    ("/v1/limits", {"instrument": "SHFE.xx", "field": "max_position", "value": 1}, "instrument"),
    ("/v1/alerts/al-none/acknowledge", {}, "alert_id"),
])
def test_unknown_names_are_404_naming_the_field(path, body, field):
    c, be = client()
    r = c.post(path, headers=auth("admin"), json=body)
    assert r.status_code == 404 and r.json()["field"] == field, r.text
    assert be.calls == []
    if field == "strategy":
        assert "did you mean 'copper'" in r.json()["error"]


def test_oversize_body_is_413():
    c, be = client(max_body_bytes=1024)
    r = c.post("/v1/halt", headers=auth("trader"), json={"reason": "x" * 5000})
    assert r.status_code == 413 and r.json()["field"] == "body"

    def chunks():
        for _ in range(10):
            yield b" " * 200
    r = c.post("/v1/halt", headers={**auth("trader"), "Content-Type": "application/json"}, content=chunks())
    assert r.status_code == 413
    assert be.calls == []


def test_rate_limit_per_token():
    c, be = client(rate_per_s=1.0, burst=3)
    codes = [c.get("/v1/whoami", headers=auth("viewer")).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    r = c.get("/v1/whoami", headers=auth("viewer"))
    assert r.headers["Retry-After"] == "1" and r.json()["field"] == "authorization"
    assert c.get("/v1/whoami", headers=auth("trader")).status_code == 200  # another token


def test_refusals_are_counted_and_recorded():
    c, be = client()
    c.post("/v1/halt", headers=auth("viewer"), json={})
    c.post("/v1/halt", headers=auth("trader"), json={"strategy": 1})
    c.get("/v1/status")
    bad = [e for e in be.sink.events if e.kind.value == "BAD_INPUT"]
    assert sorted(e.payload["status"] for e in bad) == [401, 403, 422]
    assert next(e for e in bad if e.payload["status"] == 403).payload["operator"] == "viewer"
    st = c.get("/v1/status", headers=auth("viewer")).json()["api"]["counters"]
    assert st["refused_401"] == 1 and st["refused_403"] == 1 and st["refused_422"] == 1


def test_no_token_in_events_answers_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    c, be = client()
    for op in TOKENS:
        c.get("/v1/status", headers=auth(op))
        c.post("/v1/halt", headers=auth(op), json={"strategy": "copper"})
        c.post("/v1/alerts/al-yel/acknowledge", headers=auth(op), json={})
    c.post("/v1/halt", headers={"Authorization": f"Bearer {TOKENS['admin']}x"}, json={})
    blob = json.dumps([e.model_dump(mode="json") for e in be.sink.events]) + caplog.text
    blob += json.dumps(c.get("/v1/status", headers=auth("admin")).json())
    for tok in TOKENS.values():
        assert tok not in blob and tok.split(".")[2] not in blob


def test_open_reads_without_tokens_on_loopback_only():
    be = FakeBackend()
    c = TestClient(build_app(api_config(), TokenBook([]), be))
    assert c.get("/v1/whoami").json()["operator"] == "local"
    assert c.post("/v1/halt", json={}).status_code == 403
    c2 = TestClient(build_app(api_config(host="0.0.0.0"), TokenBook([]), be))
    assert c2.get("/v1/status").status_code == 401


def test_console_is_served_from_the_package():
    c, _ = client()
    r = c.get("/console/")
    assert r.status_code == 200 and "<html" in r.text.lower()
    assert "http://" not in r.text and "https://" not in r.text  # nothing fetched from the internet
    assert c.get("/", follow_redirects=False).status_code in (302, 307)


# -- who, in what role, through what: recorded with every change (core/attribution.py) ------------------
def test_every_change_is_sent_with_the_tokens_role_and_the_channel():
    c, be = client()
    assert c.post("/v1/halt", headers=auth("trader"), json={"strategy": "copper"}).status_code == 200
    assert c.post("/v1/reduce", headers={**auth("admin"), "X-XMC-Via": "console"}, json={"venue": "LME"}).status_code == 200
    assert c.post("/v1/limits", headers=auth("risk_officer"),
                  json={"instrument": "SHFE.cu", "field": "max_position", "value": 8}).status_code == 200
    assert be.bys == [{"role": "trader", "via": "api"}, {"role": "admin", "via": "console"},
                      {"role": "risk_officer", "via": "api"}]
    r = c.post("/v1/alerts/al-yel/acknowledge", headers={**auth("trader"), "X-XMC-Via": "console"}, json={"note": "seen"})
    assert r.status_code == 200, r.text
    [ack] = [e for e in be.sink.events if e.kind.value == "OPERATOR"]
    assert (ack.payload["operator"], ack.payload["role"], ack.payload["via"]) == ("trader", "trader", "console")


def _cli_proposal(be: FakeBackend, action: str, params: dict, who: str = "risk_officer") -> str:
    """A change ``xmc resolve`` / ``xmc accept-positions`` proposed to the desk (as ops/operator_auth does)."""
    role = "risk_officer" if who.startswith("risk_officer") else who
    return be.svc.propose(action, params, (who, role, "k"), "red", "cli")["confirmation_id"]


def test_a_resolve_proposed_by_the_cli_runs_once_when_another_operator_confirms_it_through_the_api():
    c, be = client(confirm=ConfirmConfig(window_s=60))
    be.status["unresolved_escalations"] = {"d1": {"strategy": "copper", "reason": "x"}}
    cid = _cli_proposal(be, "resolve", {"decision_id": "d1", "note": "flat"})
    assert [p["action"] for p in c.get("/v1/confirmations", headers=auth("viewer")).json()] == ["resolve"]
    r = c.post(f"/v1/confirmations/{cid}", headers=auth("risk_officer"))  # the proposer
    assert r.status_code == 403 and "second" in r.json()["error"] and be.calls == []
    r = c.post(f"/v1/confirmations/{cid}", headers={**auth("risk_officer2"), "X-XMC-Via": "console"})
    assert r.status_code == 200, r.text
    assert r.json()["operator"] == "risk_officer" and r.json()["confirmed_by"] == "risk_officer2"
    assert be.calls == [("resolve", "d1", "risk_officer", f"flat (confirmed by risk_officer2, {cid})")]
    assert be.bys == [{"role": "risk_officer", "via": "cli"}]  # the proposer's change, as they made it
    assert c.post(f"/v1/confirmations/{cid}", headers=auth("admin")).status_code == 409 and len(be.calls) == 1
    confirm = [e for e in be.sink.events if e.kind.value == "OPERATOR" and e.payload["action"] == "confirm"]
    assert [(e.payload["operator"], e.payload["via"]) for e in confirm] == [("risk_officer2", "console")]


def test_an_acceptance_proposed_by_the_cli_is_confirmed_through_the_api_or_expires():
    c, be = client(confirm=ConfirmConfig(window_s=30))
    cid = _cli_proposal(be, "accept_positions", {"note": "broker agrees"}, who="admin")
    r = c.post(f"/v1/confirmations/{cid}", headers=auth("admin"))
    assert r.status_code == 403 and be.calls == []
    r = c.post(f"/v1/confirmations/{cid}", headers=auth("risk_officer"))
    assert r.status_code == 200, r.text
    assert be.calls == [("accept_positions", "admin", f"broker agrees (confirmed by risk_officer, {cid})")]
    assert be.bys == [{"role": "admin", "via": "cli"}]
    late = _cli_proposal(be, "accept_positions", {"note": "again"}, who="admin")
    be.svc.core.clock.advance(31 * 1_000_000_000)
    r = c.post(f"/v1/confirmations/{late}", headers=auth("risk_officer"))
    assert r.status_code == 410 and r.json()["field"] == "confirmation_id" and len(be.calls) == 1


def test_a_refusal_on_the_console_is_recorded_as_via_console():
    c, be = client()
    r = c.post("/v1/limits", headers={**auth("trader"), "X-XMC-Via": "console"},
               json={"instrument": "SHFE.cu", "field": "max_position", "value": 8})
    assert r.status_code == 403 and be.calls == []
    [ev] = [e for e in be.sink.events if e.kind.value == "BAD_INPUT"]
    assert (ev.payload["operator"], ev.payload["via"]) == ("trader", "console")
