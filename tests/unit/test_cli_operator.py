"""Operator commands never say yes to a mistake, and every one joins a deployment the same way.

No Ray here: the connection layer is replaced where a command would join (``cmd_ops.join`` /
``_call``), except in the one test that runs ``.venv/bin/xmc`` against an address nobody
listens on, which must fail in seconds.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from xmc_actors.ops import cmd_ops, cmd_run, operator_auth
from xmc_actors.ops.cli import main
from xmc_actors.runtime import session
from xmc_actors.runtime.session import ConnectError, auth_record, record_embedded, resolve_target

ROOT = Path(__file__).resolve().parents[2]
XMC = str(ROOT / ".venv" / "bin" / "xmc")

KNOWN = {"strategies": ["copper-shfe-lme", "gold-sge-comex"], "venues": ["LME", "SHFE"],
         "instruments": ["LME.CA3M", "SHFE.cu"], "accounts": ["cn-main", "us-main"]}


class FakeGuard:
    """What ``_call`` would reach: records the calls that change something."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, tuple[Any, ...]]] = []
        self.unresolved: dict[str, dict[str, Any]] = {}

    def call(self, args: argparse.Namespace, method: str, *a: Any) -> Any:
        if method == "status":
            return {"known": KNOWN, "trading_states": {}, "throttled": [], "occupancy": {},
                    "overall": {"ratio": 0.0, "used": "0", "equity": "1", "currency": "USD", "level": None},
                    "open_alerts": [], "registered": ["coordinator"], "unresolved_escalations": self.unresolved}
        self.changes.append((method, a))
        if method == "set_trading_state":
            return {"ok": True, "event_id": "e1", "elapsed_ms": 1.0, "acks": {"coordinator": "ok"}}
        if method == "set_limit":
            return {"ok": True, "acks": {"coordinator": 1}}
        if method == "resolve":
            did = a[0]
            if did not in self.unresolved:
                return {"ok": False, "error": f"decision {did} is not an escalated pair"}
            return {"ok": True, "decision_id": did, "strategy": "copper-shfe-lme", "event_id": "e2",
                    "residual": {"A": 1}, "residual_source": "ESCALATION e0", "unresolved": [], "resumed": True,
                    "resume": {"ok": True, "acks": {"coordinator": "ok"}}}
        raise AssertionError(method)


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> FakeGuard:
    g = FakeGuard()
    monkeypatch.setattr(cmd_ops, "_call", g.call)
    monkeypatch.setattr(operator_auth, "locate_desk", lambda args: None)  # no operator API runs
    return g


# -- names are checked against the running deployment ---------------------------------------------
@pytest.mark.parametrize("argv, kind, known", [
    (["halt", "--strategy", "nosuch", "--operator", "x"], "strategy 'nosuch'", "copper-shfe-lme, gold-sge-comex"),
    (["reduce", "--venue", "XYZ", "--operator", "x"], "venue 'XYZ'", "LME, SHFE"),
    (["resume", "--strategy", "copper", "--operator", "x"], "strategy 'copper'", "copper-shfe-lme"),
    (["limits", "set", "--instrument", "SHFE.CU", "max_position=10", "--operator", "x"], "instrument 'SHFE.CU'",
     "LME.CA3M, SHFE.cu"),
    (["limits", "set", "--strategy", "nosuch", "max_position=10", "--operator", "x"], "strategy 'nosuch'", "gold-sge-comex"),
    (["limits", "set", "--account", "cn", "max_position=10", "--operator", "x"], "account 'cn'", "cn-main, us-main"),
    (["limits", "set", "--venue", "LMEX", "max_orders_per_contract=10", "--operator", "x"], "venue 'LMEX'", "LME, SHFE"),
])
def test_an_unknown_name_is_an_error_listing_the_known_ones_and_changes_nothing(guard, capsys, argv, kind, known):
    # Act
    code = main(argv)
    # Assert
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"unknown {kind}" in err and "nothing changed" in err and known in err
    assert guard.changes == []


def test_a_name_differing_only_in_case_is_pointed_out(guard, capsys):
    assert main(["limits", "set", "--instrument", "shfe.cu", "max_position=10", "--operator", "x"]) == 2
    assert "did you mean 'SHFE.cu'?" in capsys.readouterr().err


def test_known_names_pass_and_change_what_was_asked(guard, capsys):
    assert main(["halt", "--strategy", "copper-shfe-lme", "--operator", "alice"]) == 0
    assert main(["limits", "set", "--instrument", "SHFE.cu", "max_position=10", "--operator", "alice"]) == 0
    assert main(["halt", "--operator", "alice"]) == 0  # everything: no name to check
    assert [m for m, _ in guard.changes] == ["set_trading_state", "set_limit", "set_trading_state"]
    assert guard.changes[0][1][:4] == ("strategy", "copper-shfe-lme", "HALTED", "alice")


@pytest.mark.parametrize("argv", [
    ["halt", "--strategy", "copper-shfe-lme"],
    ["halt", "--strategy", "copper-shfe-lme", "--operator", "  "],
    ["limits", "set", "--instrument", "SHFE.cu", "max_position=10"],
    ["resolve", "d1", "--note", "flattened"],
])
def test_an_operator_name_is_required(guard, capsys, argv):
    assert main(argv) == 2
    assert "--operator NAME is required" in capsys.readouterr().err
    assert guard.changes == []


# -- xmc resolve ------------------------------------------------------------------------------------
def test_resolve_needs_a_note(guard, capsys):
    assert main(["resolve", "d1", "--operator", "alice"]) == 2
    assert "--note TEXT is required" in capsys.readouterr().err and guard.changes == []


def test_resolve_prints_the_record_and_the_resume(guard, capsys):
    guard.unresolved = {"copper-shfe-lme-00000007": {"strategy": "copper-shfe-lme", "reason": "x", "ts_ns": 1}}
    code = main(["resolve", "copper-shfe-lme-00000007", "--operator", "alice", "--note", "sold 1 lot by phone"])
    out = capsys.readouterr().out
    assert code == 0
    assert "copper-shfe-lme-00000007: resolved by alice" in out and '{"A": 1}' in out and "ESCALATION e0" in out
    assert "strategy copper-shfe-lme: ACTIVE by alice" in out
    assert guard.changes[0][1][:3] == ("copper-shfe-lme-00000007", "alice", "sold 1 lot by phone")


def test_resolve_of_a_pair_that_is_not_escalated_is_refused(guard, capsys):
    assert main(["resolve", "nosuch", "--operator", "alice", "--note", "n"]) == 2
    assert "decision nosuch is not an escalated pair" in capsys.readouterr().err


def test_risk_status_lists_unresolved_escalations(guard, capsys):
    guard.unresolved = {"d7": {"strategy": "copper-shfe-lme", "reason": "rollback budget spent",
                               "residual": {"A": 1}, "ts_ns": 1}}
    assert main(["risk-status", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    esc = [r for r in rows if r["table"] == "unresolved_escalations"]
    assert [(r["decision_id"], r["strategy"], r["reason"]) for r in esc] == [("d7", "copper-shfe-lme", "rollback budget spent")]
    assert main(["risk-status"]) == 0
    out = capsys.readouterr().out
    assert "unresolved escalations" in out and "d7" in out and "rollback budget spent" in out


# -- finding the deployment ------------------------------------------------------------------------------
def test_the_target_is_the_address_given_else_the_namespaces_own_record_never_auto(tmp_path, monkeypatch):
    monkeypatch.setenv("XMC_RUN_DIR", str(tmp_path))
    assert resolve_target("10.0.0.5:6379", None, )[:2] == ("10.0.0.5:6379", "xmc")
    with pytest.raises(ConnectError, match="none runs on this machine") as e:
        resolve_target(None, None)
    assert e.value.code == 3 and "--address HOST:PORT" in str(e.value)
    record_embedded("xmc-demo", "127.0.0.1:61234")
    # only one deployment runs here: found without --namespace
    assert resolve_target(None, None)[:2] == ("127.0.0.1:61234", "xmc-demo")
    record_embedded("desk-b", "127.0.0.1:61999")
    # two: the default namespace is xmc's, and the error lists the ones running
    with pytest.raises(ConnectError, match="running here: desk-b, xmc-demo .pass --namespace."):
        resolve_target(None, None)
    assert resolve_target(None, "desk-b")[:2] == ("127.0.0.1:61999", "desk-b")


def test_the_address_file_records_how_to_authenticate_but_never_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv("XMC_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    record_embedded("desk", "127.0.0.1:61234")
    rec = json.loads((tmp_path / "desk.address").read_text())
    assert rec["auth_mode"] == "token" and rec["token_source"] == "file" and rec["token_path"] == str(tmp_path / "tok")
    # a token given in the environment is not written anywhere
    assert auth_record({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "s3cret"}) == {"auth_mode": "token",
                                                                                    "token_source": "env"}
    assert auth_record({}) == {"auth_mode": "disabled"}
    assert "s3cret" not in json.dumps(auth_record({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "s3cret"}))


def test_the_recorded_token_mode_is_used_unless_this_shell_says_otherwise(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(session, "_set_token_mode", lambda: calls.append(os.environ.get("RAY_AUTH_TOKEN_PATH")))
    # _apply_record_auth writes os.environ itself: set each name through monkeypatch first, so
    # that teardown restores it (a delenv of an unset name records nothing, and the token path
    # set here leaked into every later Ray test of the same session)
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    session._apply_record_auth({"auth_mode": "token", "token_source": "file", "token_path": str(tmp_path / "t")})
    assert calls == [str(tmp_path / "t")]
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # set by hand: respected
    session._apply_record_auth({"auth_mode": "token", "token_source": "file", "token_path": str(tmp_path / "t")})
    assert len(calls) == 1


def test_a_refused_token_is_one_clear_error(monkeypatch, tmp_path):
    # the cluster answers, refuses the token; no token in this shell to try
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    monkeypatch.setattr(session, "check_reachable", lambda *a, **k: None)

    def refuse(address: str, timeout_s: float) -> None:
        raise session._AuthFailed("RPC error: InvalidAuthToken: Authentication token is missing or incorrect")

    monkeypatch.setattr(session, "_probe", refuse)
    with pytest.raises(ConnectError, match="refused this client's authentication token .no token here") as e:
        session.prepare_join("127.0.0.1:6379", {})
    assert e.value.code == 3 and "InvalidAuthToken" in str(e.value)


def test_status_skips_an_actor_without_status_and_shows_halted_strategies_and_sessions():
    # Arrange: what collect_status gives for a deployment with ray.metrics_port set
    info = {"name": "demo", "namespace": "xmc-demo", "state": "RUNNING", "ledger": "/l"}
    now = time.time_ns()
    status = {
        "metrics-hub": {"no_status": "serves /metrics"},
        "gateway-LME": {"state": "UP", "session": {"kind": "fix", "session_id": "FIX.4.4:XMC->LME", "state": "LOGGED_ON",
                                                    "next_sender_seq": 12, "next_target_seq": 9,
                                                    "last_heartbeat_ns": now - 2_000_000_000, "endpoint": "127.0.0.1:9876",
                                                    "unknown_orders": 2, "market_data": "fix",
                                                    "md_awaiting_snapshot": ["LME.CA3M"],
                                                    "reconnect": {"state": "WAITING", "failures": 3,
                                                                  "recent_pauses_s": [1.1, 1.9, 4.2]}}},
        "strategy-host-0": {"strategies": {"copper-shfe-lme": {"state": "HALTED", "position": 1, "counters": {},
                                                               "reason": "pair copper-shfe-lme-00000003 escalated: rollback budget spent"}}},
        "risk-guard": {"unresolved_escalations": {"copper-shfe-lme-00000003": {"strategy": "copper-shfe-lme",
                                                                                "reason": "rollback budget spent", "ts_ns": 1}},
                       "open_alerts": []},
    }
    # Act
    tables = {t.name: t for t in cmd_run.status_tables(info, status)}
    # Assert
    actors = {r[0]: r for r in tables["actors"].rows}
    assert actors["metrics-hub"] == ("metrics-hub", "", "no status: serves /metrics")
    session = actors["  session"]
    assert session[1] == "LOGGED_ON"
    assert "FIX FIX.4.4:XMC->LME LOGGED_ON seq out 12 in 9 last heartbeat" in session[2] and "(127.0.0.1:9876)" in session[2]
    assert "reconnecting (waiting, 3 failed, last pause 4.2 s)" in session[2]
    assert "orders of unknown outcome 2" in session[2] and "market data fix (awaiting snapshot: LME.CA3M)" in session[2]
    (strategy,) = tables["strategies"].rows
    assert strategy[:3] == ("copper-shfe-lme", "strategy-host-0", "HALTED")
    assert strategy[-1] == "pair copper-shfe-lme-00000003 escalated: rollback budget spent"
    assert tables["unresolved_escalations"].rows == [("copper-shfe-lme-00000003", "copper-shfe-lme", "rollback budget spent")]


def test_collect_status_does_not_ask_an_actor_that_has_no_status():
    from xmc_actors.runtime.deploy import collect_status

    class Handle:  # an ActorHandle of a class without status(): attribute access fails
        def __getattr__(self, name: str) -> Any:
            raise AttributeError(f"'ActorHandle' object has no attribute {name!r}")

    assert collect_status({"metrics-hub": Handle()}) == {"metrics-hub": {"no_status": "serves /metrics"}}


# -- xmc run refuses before anything starts ------------------------------------------------------------------
def test_run_refuses_a_catalogue(capsys):
    code = main(["run", str(ROOT / "configs" / "catalogue.yaml"), "--duration", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "is a catalogue" in err and "Traceback" not in err


def test_run_refuses_a_damaged_ledger_shard_with_one_line_and_exit_3(tmp_path, capsys):
    from runtime_kit import copper_config

    cfg = copper_config(tmp_path, "damaged", "test-cli-operator-damaged")
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "shard-0.duckdb").write_bytes(b"this is not a database" * 100)
    code = main(["run", str(cfg), "--duration", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert "shard-0.duckdb" in captured.err and "not a DuckDB database" in captured.err
    assert "starting" not in captured.out and len(captured.err.strip().splitlines()) == 1


def test_run_refuses_a_missing_credential_a_live_adapter_needs(tmp_path, monkeypatch):
    from runtime_kit import copper_config

    from xmc_actors.runtime.config import load_config

    cfg = load_config(copper_config(tmp_path, "creds", "test-cli-operator-creds"))
    monkeypatch.setattr("xmc_actors.runtime.config.missing_credentials",
                        lambda c: [("accounts[0].credentials.password", "XMC_LME_PASSWORD", True)])
    with pytest.raises(Exception) as e:
        cmd_run.preflight(cfg, None)
    assert "XMC_LME_PASSWORD" in str(e.value) and getattr(e.value, "code", None) == 1


# -- the one real test: an address nobody listens on fails in seconds -----------------------------------------
def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("argv", [["halt", "--operator", "x"], ["status"], ["resolve", "d1", "--operator", "x",
                                                                             "--note", "n"]])
def test_an_operator_command_against_a_dead_address_fails_fast_and_clearly(argv):
    port = _free_port()
    t0 = time.monotonic()
    out = subprocess.run([XMC, *argv, "--address", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    elapsed = time.monotonic() - t0
    assert out.returncode == 3, out.stderr
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert elapsed < 15, elapsed


def test_the_progress_line_says_which_scopes_are_not_active_and_counts_actor_faults(capsys) -> None:
    # a strategy halted automatically 4 s into the demo used to show only as "alerts red 2"
    from xmc_actors.ops.cmd_run import _progress

    _progress({"elapsed_s": 4.0, "replay_ns": None, "by_outcome": {"HEDGED": 3}, "in_flight": 1,
               "halted": ["strategy:copper-shfe-lme"], "faults": 1})
    out = capsys.readouterr().out
    assert "NOT ACTIVE: strategy:copper-shfe-lme" in out and "actor faults 1" in out and "HEDGED=3" in out
