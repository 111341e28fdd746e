"""The operator API on Ray Serve in front of a real deployment (embedded Ray): started with the
deployment (``api.enabled: true``), what it costs at start, reads from the real actors, a halt
through HTTP that reaches the coordinator and is recorded with its operator in the ledger, a
second operator's confirmation, a refused call that changes nothing; and the live console in a
real headless Chromium (Debian's /usr/bin/chromium), a halt pressed on the page reaching the
coordinator. One Ray for the whole module."""
from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from runtime_kit import band, copper_config, events

pytestmark = pytest.mark.ray
NS = "test-api-serve"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(url: str, token: str | None, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _receiver(received: list):
    """An ERP's webhook receiver on loopback: keeps each post's headers and raw body."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):  # noqa: ANN002
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import yaml

    from xmc_actors.core.operator_api import hash_token, new_token
    from xmc_actors.runtime.config import load_config
    from xmc_actors.runtime.deploy import Deployment

    tmp = tmp_path_factory.mktemp("api")
    tokens, entries = {}, []
    for op, role in (("vera", "viewer"), ("tom", "trader"), ("rita", "risk_officer"), ("adam", "admin")):
        tok, kid = new_token()
        tokens[op] = tok
        entries.append({"operator": op, "role": role, "id": kid, "hash": hash_token(tok)})
    env_tok, _ = new_token()
    os.environ["XMC_TEST_API_TOKEN"] = env_tok
    tokens["erp"] = env_tok
    entries.append({"operator": "erp", "role": "trader", "token": {"env": "XMC_TEST_API_TOKEN"}})
    (tmp / "tokens.yaml").write_text(yaml.safe_dump({"tokens": entries}))
    port = _free_port()
    received: list[tuple[dict, bytes]] = []
    hook = _receiver(received)
    os.environ["XMC_TEST_HOOK_SECRET"] = "hook-secret-1"
    path = copper_config(tmp, "api-it", NS, strategies=[band("cu", entry=0.5), band("cu2", entry=0.5)])
    doc = yaml.safe_load(path.read_text())
    doc["accounts"] += [{"id": "cn-b", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 100_000_000}]
    doc["api"] = {"enabled": True, "port": port, "tokens_file": str(tmp / "tokens.yaml"),
                  "confirm": {"limit_raise_pct": 20, "window_s": 120},
                  "webhooks": [{"name": "erp", "url": f"http://127.0.0.1:{hook.server_port}/hook",
                                "secret": {"env": "XMC_TEST_HOOK_SECRET"}},
                               {"name": "down", "url": f"http://127.0.0.1:{_free_port()}/hook",
                                "secret": {"env": "XMC_TEST_HOOK_SECRET"}, "max_attempts": 2, "backoff_s": 0.2,
                                "timeout_s": 1}]}
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    dep = Deployment(cfg)
    t0 = time.monotonic()
    dep.start()
    start_s = time.monotonic() - t0
    stop = threading.Event()
    th = threading.Thread(target=lambda: dep.run(duration_s=None, stop_event=stop), daemon=True)
    th.start()
    yield {"dep": dep, "url": dep.api_info["url"], "tokens": tokens, "start_s": start_s, "tmp": tmp,
           "ledger": str(tmp / "ledger"), "received": received}
    hook.shutdown()
    stop.set()
    th.join(90)
    dep.shutdown_ray()


def test_started_with_the_deployment_and_what_it_costs(run):
    info = run["dep"].api_info
    assert info["url"].startswith("http://127.0.0.1:") and info["console"].endswith("/console/")
    assert run["dep"].access_info()["api"]["url"] == info["url"]
    print(f"\nAPI start-up {info['startup_s']:.2f} s of a deployment start of {run['start_s']:.2f} s")
    assert info["startup_s"] < 60
    code, spec = call(info["openapi"], None)
    assert code == 200 and "/v1/halt" in spec["paths"]


def test_reads_from_the_real_actors(run):
    url, tok = run["url"], run["tokens"]["vera"]
    code, st = call(f"{url}/v1/status", tok)
    assert code == 200, st
    assert st["deployment"]["namespace"] == NS and set(st["deployment"]["strategies"]) == {"cu", "cu2"}
    code, ss = call(f"{url}/v1/strategies", tok)
    assert code == 200 and set(ss) == {"cu", "cu2"}
    code, pos = call(f"{url}/v1/positions/cn-main", tok)
    assert code == 200 and pos["account"] == "cn-main" and pos["occupancy"]["currency"] == "CNY"
    code, vs = call(f"{url}/v1/venues", tok)
    assert code == 200 and {v["state"] for v in vs["gateways"].values()} == {"UP"}
    for p in ("/v1/occupancy", "/v1/pairs/open", "/v1/outcomes", "/v1/alerts", "/v1/limits", "/v1/confirmations"):
        code, res = call(f"{url}{p}", tok)
        assert code == 200, (p, res)
    assert call(f"{url}/v1/status", None)[0] == 401


def test_halt_reaches_the_coordinator_and_names_its_operator_in_the_ledger(run):
    import ray

    url = run["url"]
    code, res = call(f"{url}/v1/halt", run["tokens"]["erp"], "POST",
                     {"strategy": "cu2", "reason": "erp test", "request_id": "erp-42"})
    assert code == 200, res
    assert res["ok"] and res["state"] == "HALTED" and res["operator"] == "erp" and res["acks"] == {"coordinator": "ok"}
    coord = ray.get_actor("coordinator", namespace=NS)
    assert ray.get(coord.status.remote())["trading_states"]["strategy:cu2"] == "HALTED"
    code, again = call(f"{url}/v1/halt", run["tokens"]["erp"], "POST",
                       {"strategy": "cu2", "reason": "erp test", "request_id": "erp-42"})
    assert code == 200 and again["replayed"] and again["event_id"] == res["event_id"]
    code, res = call(f"{url}/v1/resume", run["tokens"]["tom"], "POST", {"strategy": "cu2"})
    assert code == 200 and ray.get(coord.status.remote())["trading_states"].get("strategy:cu2", "ACTIVE") == "ACTIVE"
    # a viewer's halt is refused and changes nothing
    code, res = call(f"{url}/v1/halt", run["tokens"]["vera"], "POST", {})
    assert code == 403 and res["field"] == "role"
    assert ray.get(coord.status.remote())["trading_states"].get("global", "ACTIVE") == "ACTIVE"
    ray.get(ray.get_actor("risk-guard", namespace=NS).flush_sink.remote())
    ops = [e for e in events(run["ledger"], "OPERATOR") if e["payload"].get("state") == "HALTED"]
    assert any(e["payload"].get("operator") == "erp" or "erp" in json.dumps(e) for e in ops), ops
    # the risk guard's record names the token's role and the channel (core/attribution.py)
    guard_ops = [e["payload"] for e in ops if e["payload"].get("action") == "trading_state"
                 and e["payload"].get("operator") == "erp"]
    assert guard_ops and all((p["role"], p["via"]) == ("trader", "api") for p in guard_ops), guard_ops


def test_limit_raise_needs_a_second_operator(run):
    import ray

    url, t = run["url"], run["tokens"]
    guard = ray.get_actor("risk-guard", namespace=NS)
    assert ray.get(guard.status.remote())["limits"]["default_limits"]["max_order_qty"] == 50
    code, res = call(f"{url}/v1/limits", t["rita"], "POST", {"section": "default_limits", "field": "max_order_qty",
                                                              "value": 60})
    assert code == 200 and res["operator"] == "rita", res  # +20%: not more than the threshold
    code, res = call(f"{url}/v1/limits", t["rita"], "POST", {"section": "default_limits", "field": "max_order_qty",
                                                              "value": 1000})
    assert code == 202 and "1566.7%" in res["why"], res
    assert ray.get(guard.status.remote())["limits"]["default_limits"]["max_order_qty"] == 60
    assert call(f"{url}/v1/confirmations/{res['confirmation_id']}", t["rita"], "POST", {})[0] == 403
    code, done = call(f"{url}/v1/confirmations/{res['confirmation_id']}", t["adam"], "POST", {})
    assert code == 200 and done["confirmed_by"] == "adam" and done["operator"] == "rita"
    assert ray.get(guard.status.remote())["limits"]["default_limits"]["max_order_qty"] == 1000


def test_cli_acting_commands_need_a_token_while_the_api_runs(run, monkeypatch, capsys):
    """`xmc halt|resume|limits set` against the real desk: no token or a viewer's token exit 5
    and change nothing; a trader's token acts as its operator; a big raise waits for a second
    operator, who confirms with `xmc confirm`."""
    import ray

    from xmc_actors.ops.cli import main

    coord = ray.get_actor("coordinator", namespace=NS)
    guard = ray.get_actor("risk-guard", namespace=NS)
    monkeypatch.delenv("XMC_API_TOKEN", raising=False)
    assert main(["halt", "--strategy", "cu2", "--operator", "tom", "--namespace", NS]) == 5
    monkeypatch.setenv("XMC_API_TOKEN", run["tokens"]["vera"])
    assert main(["halt", "--strategy", "cu2", "--namespace", NS]) == 5
    assert "role viewer" in capsys.readouterr().err
    assert ray.get(coord.status.remote())["trading_states"].get("strategy:cu2", "ACTIVE") == "ACTIVE"
    monkeypatch.setenv("XMC_API_TOKEN", run["tokens"]["tom"])
    assert main(["halt", "--strategy", "cu2", "--namespace", NS]) == 0
    assert "HALTED by tom" in capsys.readouterr().out
    assert ray.get(coord.status.remote())["trading_states"]["strategy:cu2"] == "HALTED"
    ray.get(guard.flush_sink.remote())
    mine = [e["payload"] for e in events(run["ledger"], "OPERATOR") if e["payload"].get("action") == "trading_state"
            and e["payload"].get("operator") == "tom" and e["payload"].get("state") == "HALTED"]
    assert mine and (mine[-1]["role"], mine[-1]["via"]) == ("trader", "cli"), mine
    assert main(["resume", "--strategy", "cu2", "--namespace", NS]) == 0
    before = ray.get(guard.status.remote())["limits"]["default_limits"]["max_order_qty"]
    monkeypatch.setenv("XMC_API_TOKEN", run["tokens"]["rita"])
    code = main(["limits", "set", "--section", "default_limits", f"max_order_qty={int(before) * 3}", "--namespace", NS])
    err = capsys.readouterr().err
    assert code == 6 and "xmc confirm cf-" in err, err  # +200%: waits for a second operator
    assert ray.get(guard.status.remote())["limits"]["default_limits"]["max_order_qty"] == before
    cid = err.split("xmc confirm ")[1].split("`")[0]
    monkeypatch.setenv("XMC_API_TOKEN", run["tokens"]["adam"])
    assert main(["confirm", cid, "--namespace", NS]) == 0
    assert "confirmed by adam" in capsys.readouterr().out
    assert ray.get(guard.status.remote())["limits"]["default_limits"]["max_order_qty"] == int(before) * 3
    out_err = "".join(capsys.readouterr())
    assert not any(t in out_err for t in run["tokens"].values())


def test_no_token_in_the_ledger_or_logs(run):
    import ray

    ray.get(ray.get_actor("api-desk", namespace=NS).flush_sink.remote())
    blob = json.dumps(events(run["ledger"], "OPERATOR") + events(run["ledger"], "BAD_INPUT"), default=str)
    logs = Path("/tmp/ray/session_latest/logs")
    for f in logs.glob("*serve*") if logs.is_dir() else []:
        try:
            blob += f.read_text(errors="ignore")
        except OSError:
            pass
    for tok in run["tokens"].values():
        assert tok.split(".")[2] not in blob


def test_console_in_chromium_a_halt_pressed_on_the_page_reaches_the_coordinator(run):
    import ray

    from api_browser import launch, need_browser, sign_in

    path = need_browser()
    from playwright.sync_api import sync_playwright

    coord = ray.get_actor("coordinator", namespace=NS)
    with sync_playwright() as p:
        browser = launch(p, path)
        page = browser.new_page()
        page.goto(run["dep"].api_info["console"])
        sign_in(page, run["tokens"]["tom"])
        page.wait_for_function("document.getElementById('who').textContent.includes('tom (trader)')")
        page.wait_for_selector("#strategies tr[data-strategy='cu'] button[data-action='halt']:not([disabled])",
                               timeout=30_000)
        assert "cn-main" in page.inner_text("#occupancy")
        page.click("#strategies tr[data-strategy='cu'] button[data-action='halt']")
        page.wait_for_function("document.getElementById('msg').textContent.includes('HALTED by tom')", timeout=30_000)
        assert ray.get(coord.status.remote())["trading_states"]["strategy:cu"] == "HALTED"
        page.wait_for_selector("#states .state-HALTED", timeout=10_000)
        browser.close()
    ray.get(ray.get_actor("risk-guard", namespace=NS).flush_sink.remote())
    pressed = [e["payload"] for e in events(run["ledger"], "OPERATOR") if e["payload"].get("action") == "trading_state"
               and e["payload"].get("key") == "cu" and e["payload"].get("state") == "HALTED"]
    assert pressed and (pressed[-1]["operator"], pressed[-1]["role"], pressed[-1]["via"]) == ("tom", "trader", "console")


def test_an_acceptance_proposed_by_the_cli_is_run_by_the_deployment_when_confirmed_through_the_api(run):
    """The API's confirmation runs the deployment's own acceptance (runtime.start_of_day.accept,
    handed to the Serve replicas when the API starts): this deployment's start found no
    difference, so the acceptance is refused naming why (409), not left unrunnable (503)."""
    import ray

    from xmc_actors.api.desk import raise_if_error

    desk = ray.get_actor("api-desk", namespace=NS)
    pend = raise_if_error(ray.get(desk.call.remote("propose", "accept_positions", {"note": "broker agrees"},
                                                   ("rita", "risk_officer", "k"), "red alert open", "cli")))
    cid = pend["confirmation_id"]
    assert call(f"{run['url']}/v1/confirmations/{cid}", run["tokens"]["rita"], "POST", {})[0] == 403  # her own
    code, res = call(f"{run['url']}/v1/confirmations/{cid}", run["tokens"]["adam"], "POST", {})
    assert code == 409 and "nothing to accept" in res["error"], res


def test_websocket_stream_through_serve(run):
    import asyncio

    import websockets

    url = run["url"].replace("http://", "ws://") + "/v1/stream"

    async def main():
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(json.dumps({"token": run["tokens"]["vera"], "topics": ["quotes", "spreads", "states"], "hz": 4}))
            hello = json.loads(await asyncio.wait_for(ws.recv(), 30))["hello"]
            got, t0 = {}, time.monotonic()
            n = 0
            while time.monotonic() - t0 < 6:
                m = json.loads(await asyncio.wait_for(ws.recv(), 30))
                got.update(m)
                n += 1
            return hello, got, n / (time.monotonic() - t0)

    hello, got, rate = asyncio.run(main())
    assert hello["hz"] == 4
    assert {"SHFE.cu", "LME.CA3M"} <= set(got["quotes"]) and got["quotes"]["SHFE.cu"]["bid"]
    assert set(got["spreads"]) == {"cu", "cu2"} and "global" in got["states"]["trading_states"] or got["states"]
    assert rate <= 4.5, rate


def test_batch_across_accounts_through_the_coordinator(run):
    url, tok = run["url"], run["tokens"]["tom"]
    body = {"instruction_id": "IT-BATCH-1", "strategy": "cu", "side": "buy", "quantity": 75, "unit": "t",
            "accounts": [{"a": "cn-main", "b": "us-main"}, {"a": "cn-b", "b": "us-main"}]}
    code, res = call(f"{url}/v1/batches", tok, "POST", body)
    assert code == 200, res
    assert [(p["lots_a"], p["lots_b"]) for p in res["parts"]] == [(10, 2), (5, 1)]  # 15 lots by capital 2:1
    assert all(s["accepted"] for s in res["submitted"]), res["submitted"]
    code, again = call(f"{url}/v1/batches", tok, "POST", body)
    assert code == 200 and again["replayed"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        code, rep = call(f"{url}/v1/batches/IT-BATCH-1", tok)
        assert code == 200, rep
        if rep["complete"]:
            break
        time.sleep(0.5)
    assert rep["complete"], rep
    assert rep["total"]["pairs"] == 2 and sum(rep["total"]["by_outcome"].values()) == 2
    for a in rep["accounts"]:
        assert a["state"] in ("HEDGED", "ROLLED_BACK", "ESCALATED", "REFUSED")
        if a["state"] == "HEDGED":
            assert a["filled_a"] == a["lots_a"]


def test_erp_hedge_with_a_signed_webhook_and_a_dead_letter(run):
    from xmc_actors.core.webhook import verify

    url, tok = run["url"], run["tokens"]["erp"]
    hedge = {"hedge_id": "PO-1", "commodity": "SHFE.cu", "quantity": 25, "unit": "t", "direction": "buy",
             "account": "cn-main", "strategy": "cu", "period": {"start": "2026-12-01", "end": "2027-02-28"}, "webhook": "erp"}
    code, res = call(f"{url}/v1/hedges", tok, "POST", hedge)
    assert code == 200, res
    assert res["parts"][0]["lots_a"] == 5 and res["parts"][0]["lots_b"] == 1
    code, down = call(f"{url}/v1/hedges", tok, "POST", {**hedge, "hedge_id": "PO-2", "webhook": "down"})
    assert code == 200, down
    deadline = time.monotonic() + 60
    done = None
    while time.monotonic() < deadline and done is None:
        for headers, body in list(run["received"]):
            ev = json.loads(body)
            if ev["type"] == "completed" and ev["ref"] == "hedge-PO-1":
                done = (headers, body, ev)
        time.sleep(0.3)
    assert done is not None, run["received"]
    headers, body, ev = done
    assert verify(b"hook-secret-1", headers["x-xmc-signature"], body, int(time.time()))
    assert headers["x-xmc-event-id"] == ev["event_id"] and ev["pairs"] == 1
    assert any(json.loads(b)["type"] == "fill" for _, b in run["received"])
    while time.monotonic() < deadline:
        code, st = call(f"{url}/v1/webhooks", tok)
        if st["down"]["dead"] >= 1:
            break
        time.sleep(0.3)
    assert st["down"]["dead"] >= 1 and st["down"]["dead_letters"][0]["attempts"] == 2, st
    assert st["erp"]["delivered"] >= 2
    assert "hook-secret-1" not in json.dumps(st)
