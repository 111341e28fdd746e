"""``xmc connect-test``: one gateway built in this process (no Ray), every step reported.

Run through ``xmc_actors.ops.cli.main`` as a user runs it, against the simulated exchange (the
demo's SHFE gateway, and small deployments written here that include the catalogue) and against
a FIX session to a loopback FIX exchange on 127.0.0.1 (started and stopped by the test, or by the
command itself for a ``serve_loopback`` gateway). What the venue itself recorded is read from the
venue: the simulated exchange's drop copy, the loopback exchange's received orders and fills.
"""
from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit import CATALOGUE, ROOT, instrument
from xmc_actors.actors import gateway as gateway_mod
from xmc_actors.ops import connect_check
from xmc_actors.ops.cli import main
from xmc_actors.runtime.config import load_config

# live deployments: "today" pinned to a day the catalogue's calendars cover (conftest)
pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("covered_today")]
STEP_NAMES = ["connect", "quote", "place", "query", "cancel", "query-canceled", "close"]


def deployment(tmp_path: Path, shfe_params: dict[str, Any] | None = None, *, lme: dict[str, Any] | None = None,
               shfe_feed: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """A small deployment: SHFE (simulated, synthetic copper feed) and LME (simulated, no feed,
    unless ``lme`` replaces its gateway), one copper strategy; the catalogue included by its
    absolute path."""
    shfe = {"venue": "SHFE", "adapter": "sim",
            "params": {"seed": 3, "enforce_sessions": False, **(shfe_params or {})},
            "feed": shfe_feed or {"kind": "synthetic", "params": {"seed": 7, "instruments": ["SHFE.cu"],
                                                                  "start_prices": [72000], "ticks_per_s": 50}}}
    doc = {
        "name": "ct", "include": [str(CATALOGUE)], "base_currency": "USD",
        "fx": [{"base": "USD", "quote": "CNY", "source": "static", "rate": 7.1}],
        "accounts": [
            {"id": "cn-a", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 10_000_000,
             "credentials": {"api_key": {"env": "XMC_CT_SECRET"}}},
            {"id": "cn-b", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 10_000_000},
            {"id": "us-a", "broker": "sim", "venues": ["LME"], "currency": "USD", "capital": 10_000_000},
        ],
        "gateways": [shfe, lme or {"venue": "LME", "adapter": "sim", "params": {"enforce_sessions": False}}],
        "strategies": [{"name": "cu", "class": "band",
                        "legs": [{"instrument": "SHFE.cu", "account": "cn-a"},
                                 {"instrument": "LME.CA3M", "account": "us-a"}],
                        "params": {"signal": "ratio", "center": 1.0, "entry": 0.01, "exit": 0.004, "clip": 5,
                                   "max_position": 10}}],
        "ledger": {"path": str(tmp_path / "ledger")},
        **(extra or {}),
    }
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def cores(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every gateway core the command builds (to read its venue's own record afterwards)."""
    built: list[Any] = []
    real = gateway_mod.build_core

    def spy(*a: Any, **kw: Any) -> Any:
        out = real(*a, **kw)
        built.append(out[0])
        return out
    monkeypatch.setattr(gateway_mod, "build_core", spy)
    return built


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["connect-test", *argv, "--format", "json"])
    cap = capsys.readouterr()
    return code, json.loads(cap.out), cap.err


def outcomes(doc: dict[str, Any]) -> list[str]:
    assert [s["name"] for s in doc["steps"]] == STEP_NAMES
    return [s["outcome"] for s in doc["steps"]]


# ----------------------------------------------------------------------------- the simulated venue
def test_every_step_passes_and_the_venue_saw_one_order_placed_then_canceled(tmp_path, capsys, cores):
    code, doc, err = run_json(capsys, str(deployment(tmp_path)), "--gateway", "SHFE")

    assert code == 0, err
    assert outcomes(doc) == ["ok"] * 7
    assert all(s["elapsed_ms"] >= 0 for s in doc["steps"])
    assert (doc["gateway"], doc["instrument"], doc["account"]) == ("gateway-SHFE", "SHFE.cu", "cn-a")
    coid = doc["client_order_id"]
    assert coid.startswith("connect-test-") and doc["decision_id"].startswith("connect-test-")
    place, query, cancel, again = (doc["steps"][i] for i in (2, 3, 4, 5))
    assert place["status"] == "ACCEPTED" and place["venue_order_id"]
    assert query["status"] == "ACCEPTED" and cancel["status"] == again["status"] == "CANCELED"
    assert {place["venue_order_id"], query["venue_order_id"], again["venue_order_id"]} == {place["venue_order_id"]}
    # the venue's own record: exactly one order, acknowledged then canceled, never filled
    (core,) = cores
    venue = core.adapter
    assert list(venue.orders) == [coid]
    assert [(d["client_order_id"], d["kind"], d["status"]) for d in venue.drop_copy()] == [
        (coid, "ACK", "ACCEPTED"), (coid, "CANCELED", "CANCELED")]
    assert all(not d["trade_id"] for d in venue.drop_copy())
    # a buy far below the market: minimum quantity, on the tick grid, inside the price limits
    cu = instrument("SHFE.cu")
    px = Decimal(doc["order"]["price"])
    bid = Decimal(doc["steps"][1]["bid"])
    lo, hi = venue.limit_band(venue.books["SHFE.cu"])
    assert doc["order"]["qty"] == 1 and cu.on_grid(px) and lo <= px <= hi
    assert px < bid - 100 * cu.tick_size


def test_the_demo_shfe_gateway_passes_in_the_table_format(capsys):
    code = main(["connect-test", "--gateway", "gateway-SHFE", str(ROOT / "configs" / "demo.yaml")])
    out = capsys.readouterr().out
    assert code == 0
    assert "all steps passed" in out
    for n, name in enumerate(STEP_NAMES, 1):
        assert any(line.split()[:3] == [str(n), name, "ok"] for line in out.splitlines()), (name, out)


def test_a_venue_that_rejects_everything_fails_the_place_step_with_its_reason(tmp_path, capsys, cores):
    path = deployment(tmp_path, {"faults": {"reject_prob": {"INSUFFICIENT_MARGIN": 1.0}}})

    code, doc, err = run_json(capsys, str(path), "--gateway", "SHFE")

    assert code == 13 == doc["exit_code"]
    assert outcomes(doc) == ["ok", "ok", "failed", "skipped", "skipped", "skipped", "ok"]
    place = doc["steps"][2]
    assert place["status"] == "REJECTED" and place["reason"] == "INSUFFICIENT_MARGIN"
    assert "refused: REJECTED, venue order id SHFE-O1, reason INSUFFICIENT_MARGIN" in place["detail"]
    assert doc["first_failed"] == "place" and not doc["order_left_live"]
    assert "step 3 (place) failed" in err and "INSUFFICIENT_MARGIN" in err
    assert [d["kind"] for d in cores[0].adapter.drop_copy()] == ["REJECTED"]


def test_an_order_whose_answer_was_lost_is_still_found_and_canceled(tmp_path, capsys, cores):
    code, doc, err = run_json(capsys, str(deployment(tmp_path, {"faults": {"no_ack_prob": 1.0}})), "--gateway", "SHFE")

    assert code == 13
    assert outcomes(doc) == ["ok", "ok", "failed", "ok", "ok", "ok", "ok"]
    assert doc["steps"][2]["status"] == "UNKNOWN" and "no answer" in doc["steps"][2]["detail"]
    assert doc["steps"][3]["status"] == "ACCEPTED" and doc["steps"][5]["status"] == "CANCELED"
    assert not doc["order_left_live"] and "may still rest" not in err
    assert [d["kind"] for d in cores[0].adapter.drop_copy()] == ["ACK", "CANCELED"]


def test_a_disconnected_venue_fails_the_connect_step_and_nothing_is_sent(tmp_path, capsys, cores):
    path = deployment(tmp_path, {"faults": {"disconnects": [{"at_s": 0, "duration_s": 3600}]}})

    code, doc, err = run_json(capsys, str(path), "--gateway", "gateway-SHFE", "--timeout-s", "0.3")

    assert code == 11
    assert outcomes(doc) == ["failed"] + ["skipped"] * 5 + ["ok"]
    assert doc["steps"][0]["detail"] == "not connected after 0.3 s (the simulated venue reports itself disconnected)"
    assert "step 1 (connect) failed" in err
    assert cores[0].adapter.drop_copy() == [] and not cores[0].adapter.orders


def test_a_gateway_without_a_feed_says_so_and_a_price_lets_the_order_steps_run(tmp_path, capsys, cores):
    path = deployment(tmp_path, shfe_feed={"kind": "none"})

    code, doc, _ = run_json(capsys, str(path), "--gateway", "SHFE", "--timeout-s", "0.2")
    assert code == 12
    assert outcomes(doc) == ["ok", "failed", "skipped", "skipped", "skipped", "skipped", "ok"]
    assert "gateway-SHFE has no feed (feed.kind: none)" in doc["steps"][1]["detail"]

    code, doc, _ = run_json(capsys, str(path), "--gateway", "SHFE", "--timeout-s", "0.2", "--price", "60000")
    assert code == 12  # the quote step still failed
    assert outcomes(doc) == ["ok", "failed", "ok", "ok", "ok", "ok", "ok"]
    assert doc["order"]["price"] == "60000"
    assert [d["kind"] for d in cores[-1].adapter.drop_copy()] == ["ACK", "CANCELED"]


def test_keep_order_leaves_it_resting_and_says_so(tmp_path, capsys, cores):
    code, doc, err = run_json(capsys, str(deployment(tmp_path)), "--gateway", "SHFE", "--keep-order")

    assert code == 0
    assert outcomes(doc) == ["ok"] * 4 + ["skipped", "skipped", "ok"]
    assert doc["order_left_live"] is True
    assert f"the test order {doc['client_order_id']} may still rest at SHFE" in err
    assert [d["kind"] for d in cores[0].adapter.drop_copy()] == ["ACK"]


def test_an_instrument_and_an_account_are_chosen_and_checked(tmp_path, capsys, cores):
    path = str(deployment(tmp_path))
    code, doc, _ = run_json(capsys, path, "--gateway", "SHFE", "--account", "cn-b", "--instrument", "cu")
    assert code == 0 and (doc["account"], doc["instrument"]) == ("cn-b", "SHFE.cu")
    assert cores[0].adapter.drop_copy()[0]["account"] == "cn-b"

    assert main(["connect-test", path, "--gateway", "SHFE", "--instrument", "LME.CA3M"]) == 2
    err = capsys.readouterr().err
    assert "--instrument 'LME.CA3M': it is listed on LME, not on SHFE" in err and "SHFE.cu" in err
    assert main(["connect-test", path, "--gateway", "SHFE", "--instrument", "XX.nope"]) == 2
    assert "the deployment lists no such instrument" in capsys.readouterr().err
    assert main(["connect-test", path, "--gateway", "SHFE", "--account", "us-a"]) == 2
    assert "--account 'us-a': the account does not trade on SHFE (its venues: LME)" in capsys.readouterr().err
    assert main(["connect-test", path, "--gateway", "SHFE", "--account", "nobody"]) == 2
    assert "--account 'nobody': no such account" in capsys.readouterr().err
    assert main(["connect-test", path, "--gateway", "SHFE", "--price", "72005"]) == 2
    assert "--price 72005: not on SHFE.cu's tick grid (tick 10)" in capsys.readouterr().err
    assert len(cores) == 1  # nothing was built for a refused argument


def test_an_unknown_gateway_exits_2_listing_the_known_ones(tmp_path, capsys, cores):
    code = main(["connect-test", str(deployment(tmp_path)), "--gateway", "CME"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--gateway 'CME': no such gateway in deployment 'ct'" in err
    assert "gateway-SHFE (venue SHFE, adapter sim)" in err and "gateway-LME (venue LME, adapter sim)" in err
    assert cores == []


def test_an_account_another_gateway_carries_is_refused(tmp_path, capsys):
    path = deployment(tmp_path, extra={})
    doc = yaml.safe_load(path.read_text())
    doc["gateways"].append({"venue": "SHFE", "name": "gateway-SHFE-b", "adapter": "sim", "accounts": ["cn-b"],
                            "params": {"enforce_sessions": False}})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    assert main(["connect-test", str(path), "--gateway", "SHFE", "--account", "cn-b"]) == 2
    assert "gateway gateway-SHFE does not carry it (it goes through gateway-SHFE-b)" in capsys.readouterr().err
    code, out, _ = run_json(capsys, str(path), "--gateway", "gateway-SHFE-b", "--price", "70000", "--timeout-s", "0.1")
    assert out["account"] == "cn-b" and out["steps"][2]["outcome"] == "ok"


def test_json_is_one_document_and_csv_one_row_per_step(tmp_path, capsys):
    path = str(deployment(tmp_path))
    assert main(["connect-test", path, "--gateway", "SHFE", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and len(doc["steps"]) == 7 and "events" not in doc

    assert main(["connect-test", path, "--gateway", "SHFE", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["name"], r["outcome"]) for r in rows] == [(n, "ok") for n in STEP_NAMES]
    assert all(float(r["elapsed_ms"]) >= 0 for r in rows)


def test_credentials_are_never_printed(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XMC_CT_SECRET", "s3cret-value-123")
    path = str(deployment(tmp_path, {"faults": {"reject_prob": {"VENUE_ERROR": 1.0}}}))
    for fmt in ("table", "json", "csv"):
        main(["connect-test", path, "--gateway", "SHFE", "--format", fmt])
        cap = capsys.readouterr()
        assert "s3cret-value-123" not in cap.out + cap.err


def test_whatever_an_adapter_says_has_the_credential_values_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("XMC_CT_SECRET", "s3cret-value-123")
    monkeypatch.setenv("XMC_CT_FIX_PW", "fix-pass-456")
    lme = {"venue": "LME", "adapter": "fix", "params": {"port": 1, "sender_comp_id": "A", "target_comp_id": "B",
                                                         "password": {"env": "XMC_CT_FIX_PW"}}}
    p = connect_check.plan(load_config(deployment(tmp_path, lme=lme)), "SHFE")
    r = connect_check._Runner(p, None)
    said = {"text": "logon refused for s3cret-value-123", "session": {"last_logout_text": "bad password fix-pass-456"}}
    assert r.clean(said) == {"text": "logon refused for ***", "session": {"last_logout_text": "bad password ***"}}


def test_the_venue_journal_of_the_deployment_is_left_alone(tmp_path, capsys, cores):
    state = tmp_path / "venues"
    state.mkdir()
    journal = state / "gateway-SHFE.venue"
    journal.write_bytes(b"the deployment's own venue memory")

    code, _, _ = run_json(capsys, str(deployment(tmp_path, {"state_dir": str(state)})), "--gateway", "SHFE")

    assert code == 0
    assert journal.read_bytes() == b"the deployment's own venue memory"
    assert sorted(p.name for p in state.iterdir()) == ["gateway-SHFE.venue"]


def test_the_ledger_is_untouched_unless_asked_then_holds_the_test(tmp_path, capsys):
    path = str(deployment(tmp_path))
    ledger = tmp_path / "ledger"
    assert main(["connect-test", path, "--gateway", "SHFE", "--format", "json"]) == 0
    capsys.readouterr()
    assert not ledger.exists()

    code, doc, _ = run_json(capsys, path, "--gateway", "SHFE", "--record")
    assert code == 0 and doc["recorded"]["ledger"] == str(ledger.resolve()) and doc["recorded"]["events"] >= 3
    assert main(["audit", "trace", doc["decision_id"], "--ledger", str(ledger), "--format", "json"]) == 0
    trace = json.loads(capsys.readouterr().out)
    kinds = [e["kind"] for e in trace["events"]]
    assert kinds.count("VENUE_DROP_COPY") == 2 and "LIFECYCLE" in kinds

    assert main(["connect-test", path, "--gateway", "SHFE", "--ledger", str(ledger)]) == 2
    assert "--ledger: only with --record" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the price chosen
def test_far_price_stays_inside_the_band_on_the_grid_and_below_the_bid():
    cu = instrument("SHFE.cu")
    px, how = connect_check.far_price(cu, Decimal("72010"), Decimal("72020"), None, Decimal("72005"))
    assert px == Decimal("69850") and "lower price limit" in how  # 72005 * 0.97 = 69844.85, up to the grid
    px, how = connect_check.far_price(cu, Decimal("72010"), Decimal("72020"), None, None)
    assert px == Decimal("70930") and "half" in how  # 72010 * 0.985 = 70929.85, up to the grid
    gc = instrument("COMEX.GC")
    px, how = connect_check.far_price(gc, Decimal("2000.0"), Decimal("2000.1"), None, None)
    assert px == Decimal("1600.0") and "no price limits" in how
    with pytest.raises(ValueError, match="lower price limit"):
        connect_check.far_price(cu, Decimal("69850"), Decimal("69860"), None, Decimal("72005"))
    assert connect_check.min_qty(instrument("SHFE.cu", min_qty=3, lot_size=2)) == 4


def test_decision_ids_cannot_be_a_strategys():
    from xmc_actors.strategies.base import decision_seq_of

    did = connect_check.new_decision_id()
    assert did.startswith("connect-test-") and decision_seq_of("connect-test", did) is None


# ----------------------------------------------------------------------------- FIX, on loopback
def _fix_lme(port: int, control_port: int, tmp_path: Path) -> dict[str, Any]:
    return {"venue": "LME", "adapter": "fix",
            "params": {"port": port, "sender_comp_id": "CTGW", "target_comp_id": "CTEX", "heartbeat_s": 1,
                       "reset_on_logon": True, "store_path": str(tmp_path / "fix"),
                       "exchange_control": f"127.0.0.1:{control_port}"},
            "feed": {"kind": "synthetic", "params": {"seed": 8, "instruments": ["LME.CA3M"],
                                                     "start_prices": [10094.5], "ticks_per_s": 50}}}


def test_a_fix_session_to_a_loopback_exchange_passes_every_step(tmp_path, capsys):
    from xmc_actors.venues.fix.exchange import FixExchange

    cfg = load_config(deployment(tmp_path))
    ex = FixExchange(cfg.venue("LME"), [i for i in cfg.instruments if i.venue == "LME"], {"seed": 5},
                     port=0, comp_id="CTEX", control_port=0)
    ex.start()
    try:
        path = deployment(tmp_path, lme=_fix_lme(ex.port, ex.control_port, tmp_path))
        code, doc, err = run_json(capsys, str(path), "--gateway", "LME", "--timeout-s", "15")
        received, fills = ex.received(), ex.fills()
        log = [(d["kind"], d["status"]) for d in ex.sim.drop_copy()]
    finally:
        ex.stop()
    assert code == 0, (err, doc["steps"])
    assert outcomes(doc) == ["ok"] * 7
    assert doc["steps"][0]["session"]["state"] == "LOGGED_ON"
    assert "CLOSED" in doc["steps"][6]["detail"]
    # the exchange's own record: one NewOrderSingle, acknowledged then canceled, no execution
    assert received == [doc["client_order_id"]] and fills == []
    assert log == [("ACK", "ACCEPTED"), ("CANCELED", "CANCELED")]


def test_a_serve_loopback_gateway_gets_its_exchange_started_and_stopped(tmp_path, capsys):
    lme = {"venue": "LME", "adapter": "fix",
           "params": {"sender_comp_id": "CTGW2", "target_comp_id": "CTEX2", "heartbeat_s": 1, "reset_on_logon": True,
                      "store_path": str(tmp_path / "fix"), "serve_loopback": True},
           "feed": {"kind": "synthetic", "params": {"seed": 8, "instruments": ["LME.CA3M"],
                                                    "start_prices": [10094.5], "ticks_per_s": 50}}}
    code, doc, err = run_json(capsys, str(deployment(tmp_path, lme=lme)), "--gateway", "gateway-LME",
                              "--timeout-s", "15")
    assert code == 0, (err, doc["steps"])
    assert outcomes(doc) == ["ok"] * 7
    assert "loopback FIX exchange started on 127.0.0.1:" in doc["steps"][0]["detail"]
    assert "loopback FIX exchange stopped" in doc["steps"][6]["detail"]
