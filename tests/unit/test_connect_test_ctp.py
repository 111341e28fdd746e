"""``xmc connect-test`` through the CTP adapter, the front played by the binding's own field
structures (``ctp_fake``: no CTP front is reachable from here). The command only uses the
adapter interface, so what is checked is that a CTP gateway goes through the same seven steps:
logon and settlement confirmation, a quote from its feed, an OPEN far below the market inserted,
its status, its cancel (an order action), and the session closed; and that a refused logon fails
the first step with CTP's reason and never shows the password.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from xmc_actors.venues.ctp.binding import ensure_locale

_ok, _why = ensure_locale(Path(tempfile.gettempdir()) / "xmc-ctp-locale")
if not _ok:
    pytest.skip(f"the CTP binding cannot load here: {_why}", allow_module_level=True)

from ctp_fake import FakeTraderApi, rtn_order  # noqa: E402 - after the locale check (the binding's import needs it)
from openctp_ctp import tdapi  # noqa: E402

from testkit import CATALOGUE  # noqa: E402
from xmc_actors.ops.cli import main  # noqa: E402
from xmc_actors.venues.ctp import adapter as ctp_adapter  # noqa: E402

# live deployments: "today" pinned to a day the catalogue's calendars cover (conftest)
pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("covered_today")]
PASSWORD = "ctp-pass-789"


def deployment(tmp_path: Path) -> Path:
    doc = {
        "name": "ct-ctp", "include": [str(CATALOGUE)], "base_currency": "USD",
        "fx": [{"base": "USD", "quote": "CNY", "source": "static", "rate": 7.1}],
        "accounts": [{"id": "cn-ctp", "broker": "simnow", "venues": ["SHFE"], "currency": "CNY", "capital": 1_000_000},
                     {"id": "us-a", "broker": "sim", "venues": ["LME"], "currency": "USD", "capital": 1_000_000}],
        "gateways": [
            {"venue": "SHFE", "adapter": "ctp",
             "params": {"fronts": ["tcp://182.254.243.31:30001"], "broker_id": "9999", "user_id": "000123",
                        "password": {"env": "XMC_CT_CTP_PW"}, "symbols": {"SHFE.cu": "cu2502"},
                        "ack_timeout_ms": 500, "query_timeout_ms": 500, "login_timeout_s": 1},
             "feed": {"kind": "synthetic", "params": {"seed": 7, "instruments": ["SHFE.cu"], "start_prices": [72000],
                                                      "ticks_per_s": 50}}},
            {"venue": "LME", "adapter": "sim", "params": {"enforce_sessions": False}},
        ],
        "strategies": [{"name": "cu", "class": "band",
                        "legs": [{"instrument": "SHFE.cu", "account": "cn-ctp"},
                                 {"instrument": "LME.CA3M", "account": "us-a"}],
                        "params": {"signal": "ratio", "center": 1.0, "entry": 0.01, "exit": 0.004, "clip": 5,
                                   "max_position": 10}}],
        "ledger": {"path": str(tmp_path / "ledger")},
    }
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def front(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The fake front every CTP adapter the command builds talks to: an inserted order rests
    (OnRtnOrder: accepted, queueing), an order action cancels it."""
    monkeypatch.setenv("XMC_CT_CTP_PW", PASSWORD)
    box: dict[str, Any] = {"api": FakeTraderApi(), "adapters": []}
    api: FakeTraderApi = box["api"]
    sent: list[Any] = []

    def on_insert(f: Any) -> None:
        sent.append(f)
        api.spi.OnRtnOrder(rtn_order(f, api, sys_id="880010", submit="3", status="3"))

    def on_action(f: Any) -> None:
        api.spi.OnRtnOrder(rtn_order(sent[-1], api, sys_id="880010", submit="3", status=tdapi.THOST_FTDC_OST_Canceled,
                                     msg="canceled"))

    api.on_insert, api.on_action = on_insert, on_action
    box["sent"] = sent
    real = ctp_adapter.CtpAdapter

    def build(params: Any, venue: Any, instruments: Any, clock: Any, *, gateway: str = "", restart: bool = False) -> Any:
        a = real(params, venue, instruments, clock, gateway=gateway, restart=restart, api_factory=api.factory)
        box["adapters"].append(a)
        return a
    monkeypatch.setattr(ctp_adapter, "build_ctp", build)
    return box


def test_a_ctp_gateway_goes_through_every_step(tmp_path, capsys, front):
    code = main(["connect-test", str(deployment(tmp_path)), "--gateway", "SHFE", "--format", "json"])
    cap = capsys.readouterr()
    doc = json.loads(cap.out)

    assert code == 0, (cap.err, doc["steps"])
    assert [(s["name"], s["outcome"]) for s in doc["steps"]] == [
        (n, "ok") for n in ("connect", "quote", "place", "query", "cancel", "query-canceled", "close")]
    assert doc["steps"][0]["session"]["state"] == "READY" and "trading day 20261207" in doc["steps"][0]["detail"]
    assert doc["order"]["offset"] == "OPEN" and doc["account"] == "cn-ctp"
    api = front["api"]
    (f,) = api.requests("ReqOrderInsert")
    assert (f.InstrumentID, f.Direction, f.CombOffsetFlag[:1]) == ("cu2502", tdapi.THOST_FTDC_D_Buy,
                                                                   tdapi.THOST_FTDC_OF_Open)
    assert f.LimitPrice == float(doc["order"]["price"]) and f.VolumeTotalOriginal == 1
    assert len(api.requests("ReqOrderAction")) == 1 and api.released
    assert PASSWORD not in cap.out + cap.err
    # the CTP order journal went to a directory of the test's own, not the deployment's
    (a,) = front["adapters"]
    assert "xmc-connect-test-" in str(a.journal.path)


def test_a_refused_logon_fails_the_connect_step_with_ctps_reason(tmp_path, capsys, front):
    front["api"].login_error = (3, "CTP:invalid login")
    code = main(["connect-test", str(deployment(tmp_path)), "--gateway", "SHFE", "--format", "json",
                 "--timeout-s", "0.5"])
    cap = capsys.readouterr()
    doc = json.loads(cap.out)

    assert code == 11
    assert [s["outcome"] for s in doc["steps"]] == ["failed"] + ["skipped"] * 5 + ["ok"]
    assert "LOGIN_FAILED" in doc["steps"][0]["detail"] and "CTP error 3: CTP:invalid login" in doc["steps"][0]["detail"]
    assert front["api"].requests("ReqOrderInsert") == []
    assert PASSWORD not in cap.out + cap.err
