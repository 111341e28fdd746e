"""The CLI's acting commands under the operator API's authorisation (ops/operator_auth.py), no Ray.

The deployment's ``api-desk`` is a real :class:`DeskService` with a real token book and
confirmation book (what the actor holds), reached in-process; the risk guard is a fake that
records what would change. Every acting command is tried with every role's token: the ones the
API's permission matrix allows reach the deployment with the token's operator, the others exit 5
and change nothing. No token, an unknown token or an ``--operator`` that is not the token's exit
5 too; a change above the thresholds waits for a second operator (exit 6) who confirms it with
``xmc confirm``. The token never appears in anything printed.
"""
from __future__ import annotations

import argparse
from typing import Any

import pytest

from xmc_actors.api.desk import DeskService, raise_if_error
from xmc_actors.core.operator_api import (CLI_COMMANDS, PERMISSIONS, Action, ApiError, Principal, Role, TokenBook,
                                          authorise_command, hash_token, new_token, token_key_id)
from xmc_actors.model.api import ConfirmConfig, TokenEntry
from xmc_actors.ops import cmd_ops, cmd_roll, cmd_stage, operator_auth
from xmc_actors.ops.cli import CliError, main
from xmc_actors.ops.operator_auth import EXIT_PENDING, EXIT_UNAUTHORISED, decide

ROLES = [r.value for r in Role]
_REAL_CALL = operator_auth.Authorised.call  # before any fixture replaces it
TOKENS: dict[str, str] = {}
ENTRIES = []
for _role in ROLES:
    _tok, _kid = new_token()
    TOKENS[_role] = _tok
    ENTRIES.append(TokenEntry(operator=f"op-{_role}", role=_role, id=_kid, hash=hash_token(_tok, n=2 ** 10)))
RISK2_TOKEN, _kid = new_token()
ENTRIES.append(TokenEntry(operator="rita", role="risk_officer", id=_kid, hash=hash_token(RISK2_TOKEN, n=2 ** 10)))
BOOK = TokenBook(ENTRIES)

KNOWN = {"strategies": ["copper"], "venues": ["LME", "SHFE"], "instruments": ["SHFE.cu"], "accounts": ["cn-main"]}


class Deployment:
    """The risk guard, the stage host, start of day and stop, as far as the commands reach them."""

    def __init__(self) -> None:
        self.changes: list[tuple[Any, ...]] = []
        self.red = False
        self.escalations: dict[str, Any] = {}  # the guard's unresolved escalations (decision id -> detail)

    def guard(self, args: argparse.Namespace, method: str, *a: Any) -> Any:
        if method == "status":
            alerts = [{"alert_id": "r1", "level": "red", "monitor": "pnl", "scope": "global", "key": None}] if self.red else []
            return {"known": KNOWN, "limits": {"instruments": {"SHFE.cu": {"max_position": 10}}}, "open_alerts": alerts,
                    "unresolved_escalations": dict(self.escalations)}
        self.changes.append((method, *a))
        if method == "set_trading_state":
            return {"ok": True, "event_id": "e1", "elapsed_ms": 1.0, "acks": {"coordinator": "ok"}}
        if method == "set_limit":
            return {"ok": True, "acks": {"coordinator": 1}}
        if method == "resolve":
            return {"ok": True, "decision_id": a[0], "strategy": "copper", "event_id": "e2", "residual": {},
                    "residual_source": "x", "resumed": False}
        raise AssertionError(method)


@pytest.fixture
def dep(monkeypatch: pytest.MonkeyPatch) -> Deployment:
    d = Deployment()
    desk = DeskService(ConfirmConfig(limit_raise_pct=20.0), 3600.0, tokens=BOOK)
    monkeypatch.setattr(cmd_ops, "_call", d.guard)
    monkeypatch.setattr(cmd_ops, "join", lambda args: "ns")
    monkeypatch.setattr(operator_auth, "locate_desk", lambda args: desk)
    monkeypatch.setattr(operator_auth.Authorised, "call", lambda self, m, *a: raise_if_error(desk.call(m, *a)))

    def accept(ns: str, op: str, note: str, timeout: float, by: Any = None) -> dict[str, Any]:
        d.changes.append(("accept", op, note, by))
        return {"ok": True, "accepted": {"differences": [], "unverified_venues": []}, "resumed": [], "skipped": {}}

    monkeypatch.setattr("xmc_actors.runtime.start_of_day.accept", accept)

    def attach(ns: str) -> Any:
        d.changes.append(("stop",))
        raise LookupError("(test) the deployment is not attached")

    monkeypatch.setattr("xmc_actors.runtime.deploy.Deployment.attach", staticmethod(attach))

    def hosts(args: argparse.Namespace) -> Any:
        return None, {"copper": "host-0"}

    def host_call(args: argparse.Namespace, ray: Any, host: str, method: str, *a: Any) -> Any:
        d.changes.append((method, *a))
        return {"ok": True, "from": "shadow", "to": "canary", "event_id": "e3", "stage": "canary"}

    monkeypatch.setattr(cmd_stage, "_hosts", hosts)
    monkeypatch.setattr(cmd_stage, "_host_call", host_call)

    # xmc roll: the deployment's configuration as its registry hands it, a coordinator that records
    from test_cli_roll import NOW, config as roll_config

    monkeypatch.setattr(cmd_roll, "_deployment", lambda args: {
        "config": roll_config().model_dump(mode="json", by_alias=True), "strategies": ["copper"]})
    monkeypatch.setattr(cmd_roll, "_now_ns", lambda: NOW)

    def coordinator(method: str, *a: Any) -> Any:
        if method == "submit_roll":
            d.changes.append((method, a[0].operator, a[0].role, a[0].via))
            return {"decision_id": a[0].decision_id, "accepted": True, "children": []}
        return None

    monkeypatch.setattr(cmd_roll, "_coordinator", lambda args, info: coordinator)
    d.desk = desk  # type: ignore[attr-defined]
    return d


COMMANDS = {  # each acting command, as an operator would type it (without --operator)
    "halt": ["halt", "--strategy", "copper"],
    "reduce": ["reduce", "--venue", "LME"],
    "resume": ["resume", "--strategy", "copper"],
    "limits set": ["limits", "set", "--instrument", "SHFE.cu", "max_position=11"],
    "resolve": ["resolve", "d1", "--note", "flattened by hand"],
    "accept-positions": ["accept-positions", "--note", "confirmed with the broker"],
    "promote": ["promote", "copper"],
    "demote": ["demote", "copper"],
    "stop": ["stop"],
    "roll": ["roll", "--strategy", "copper", "--long", "SHFE.cu2701=2", "--short", "COMEX.HGH7=2",
             "--price", "SHFE.cu2701=71990", "--price", "SHFE.cu2702=72110", "--price", "COMEX.HGH7=4.5",
             "--price", "COMEX.HGK7=4.55"],
}


def test_every_acting_command_has_an_action_of_the_matrix():
    assert set(COMMANDS) | {"confirm"} == set(CLI_COMMANDS)
    assert all(isinstance(a, Action) for a in CLI_COMMANDS.values())


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_role_against_every_acting_command(dep, monkeypatch, capsys, role, command):
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS[role])
    code = main(COMMANDS[command])
    out, err = capsys.readouterr()
    assert TOKENS[role] not in out + err and TOKENS[role].split(".")[2] not in out + err
    if CLI_COMMANDS[command] in PERMISSIONS[Role(role)]:
        assert code != EXIT_UNAUTHORISED, err
        assert dep.changes, err
        if command != "stop":  # stop records its operator on the deployment's sink, past attach
            assert f"op-{role}" in dep.changes[0], dep.changes
    else:
        assert code == EXIT_UNAUTHORISED, err
        assert dep.changes == []
        assert f"role {role}" in err and "nothing changed" in err
        ev = [e for e in dep.desk.core.counters]  # type: ignore[attr-defined]
        assert "refused_403" in ev  # recorded as the API records its refusals


def test_no_token_is_refused_naming_the_variable(dep, monkeypatch, capsys):
    monkeypatch.delenv("XMC_API_TOKEN", raising=False)
    assert main(["halt", "--operator", "alice"]) == EXIT_UNAUTHORISED
    err = capsys.readouterr().err
    assert "XMC_API_TOKEN" in err and "--token-env" in err and dep.changes == []


def test_token_env_names_another_variable(dep, monkeypatch, capsys):
    monkeypatch.delenv("XMC_API_TOKEN", raising=False)
    monkeypatch.setenv("MY_DESK_TOKEN", TOKENS["trader"])
    assert main(["halt", "--token-env", "MY_DESK_TOKEN"]) == 0
    assert dep.changes[0][:5] == ("set_trading_state", "global", None, "HALTED", "op-trader")
    assert TOKENS["trader"] not in "".join(capsys.readouterr())


def test_a_token_given_as_the_variable_name_is_refused_and_never_repeated_or_recorded(dep, monkeypatch, capsys):
    recorded: list = []
    monkeypatch.setattr(operator_auth, "_record_refusal", lambda *a: recorded.append(a))
    assert main(["halt", "--token-env", TOKENS["trader"]]) == 2
    out = "".join(capsys.readouterr())
    assert "--token-env: not the name of an environment variable" in out
    assert TOKENS["trader"] not in out and recorded == [] and dep.changes == []


def test_a_desk_that_does_not_answer_is_exit_4_and_changes_nothing(dep, monkeypatch, capsys):
    """Authorised.call itself (the fixture replaces it): ray.get timing out on the desk's answer."""
    import ray

    class Remote:
        def remote(self, *a):
            return "ref"

    def times_out(ref, timeout=None):
        raise ray.exceptions.GetTimeoutError(f"{ref} not ready")

    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["trader"])
    monkeypatch.setattr(operator_auth.Authorised, "call", _REAL_CALL)
    monkeypatch.setattr(operator_auth, "locate_desk", lambda args: type("Desk", (), {"call": Remote()})())
    monkeypatch.setattr(ray, "get", times_out)
    assert main(["halt"]) == 4  # 1 would read as "done" to a script
    err = capsys.readouterr().err
    assert "desk did not answer (GetTimeoutError)" in err and "nothing changed" in err and dep.changes == []


def test_an_unknown_token_is_refused_without_repeating_it(dep, monkeypatch, capsys):
    bogus, _ = new_token()
    monkeypatch.setenv("XMC_API_TOKEN", bogus)
    assert main(["halt"]) == EXIT_UNAUTHORISED
    err = capsys.readouterr().err
    assert "unknown or revoked token" in err and bogus not in err and dep.changes == []


def test_an_operator_other_than_the_tokens_is_refused(dep, monkeypatch, capsys):
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["admin"])
    assert main(["halt", "--operator", "mallory"]) == EXIT_UNAUTHORISED
    err = capsys.readouterr().err
    assert "'mallory' does not match the token's operator 'op-admin'" in err and dep.changes == []
    assert main(["halt", "--operator", "op-admin"]) == 0  # repeating the token's own operator is fine
    assert dep.changes[0][4] == "op-admin"


def test_a_limit_raised_past_the_threshold_waits_for_a_second_operator(dep, monkeypatch, capsys):
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["risk_officer"])
    assert main(["limits", "set", "--instrument", "SHFE.cu", "max_position=20"]) == EXIT_PENDING
    err = capsys.readouterr().err
    assert "raised by 100.0%" in err and "xmc confirm cf-" in err and dep.changes == []
    cid = err.split("xmc confirm ")[1].split("`")[0]
    # the proposer cannot confirm their own change; a trader may not confirm at all
    assert main(["confirm", cid]) == EXIT_UNAUTHORISED
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["trader"])
    assert main(["confirm", cid]) == EXIT_UNAUTHORISED
    assert dep.changes == []
    capsys.readouterr()
    monkeypatch.setenv("XMC_API_TOKEN", RISK2_TOKEN)
    assert main(["confirm"]) == 0 and cid in capsys.readouterr().out  # lists what waits
    assert main(["confirm", cid]) == 0
    # run under the proposer's name, role and channel
    assert dep.changes == [("set_limit", "instruments", "SHFE.cu", "max_position", "20", "op-risk_officer",
                            {"role": "risk_officer", "via": "cli"})]
    assert "confirmed by rita" in capsys.readouterr().out
    assert main(["confirm", cid]) == 2  # once
    # a raise within the threshold runs at once
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["risk_officer"])
    assert main(["limits", "set", "--instrument", "SHFE.cu", "max_position=11"]) == 0


def test_a_resume_while_a_red_alert_is_open_waits_for_a_second_operator(dep, monkeypatch, capsys):
    dep.red = True
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["trader"])
    assert main(["resume", "--strategy", "copper"]) == EXIT_PENDING
    assert "red alert" in capsys.readouterr().err and dep.changes == []
    assert main(["halt", "--strategy", "copper"]) == 0  # stopping needs nobody's confirmation
    monkeypatch.setenv("XMC_API_TOKEN", RISK2_TOKEN)
    cid = dep.desk.pending()[0]["confirmation_id"]  # type: ignore[attr-defined]
    assert main(["confirm", cid]) == 0
    assert dep.changes[-1][:5] == ("set_trading_state", "strategy", "copper", "ACTIVE", "op-trader")


def test_without_an_operator_api_the_commands_behave_as_before(monkeypatch, capsys):
    d = Deployment()
    monkeypatch.setattr(cmd_ops, "_call", d.guard)
    monkeypatch.setattr(operator_auth, "locate_desk", lambda args: None)
    monkeypatch.delenv("XMC_API_TOKEN", raising=False)
    assert main(["halt", "--operator", "alice"]) == 0
    assert d.changes[0][4] == "alice"
    assert main(["limits", "set", "--instrument", "SHFE.cu", "max_position=100", "--operator", "alice"]) == 0
    assert main(["halt"]) == 2 and "--operator NAME is required" in capsys.readouterr().err


# -- the decision alone ----------------------------------------------------------------------------
def _auth(tok: str) -> Principal:
    return BOOK.authenticate(tok)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("command", sorted(CLI_COMMANDS))
def test_decide_follows_the_api_matrix(role, command):
    if CLI_COMMANDS[command] in PERMISSIONS[Role(role)]:
        assert decide(command, None, TOKENS[role], "XMC_API_TOKEN", _auth).operator == f"op-{role}"
    else:
        with pytest.raises(CliError) as e:
            decide(command, None, TOKENS[role], "XMC_API_TOKEN", _auth)
        assert e.value.code == EXIT_UNAUTHORISED and CLI_COMMANDS[command].value in str(e.value)


def test_decide_refuses_no_token_and_a_mismatching_operator():
    with pytest.raises(CliError) as e:
        decide("halt", "alice", None, "DESK_TOKEN", _auth)
    assert e.value.code == EXIT_UNAUTHORISED and "DESK_TOKEN" in str(e.value)
    with pytest.raises(ApiError) as e2:
        authorise_command(Principal("bob", Role.ADMIN, token_key_id(TOKENS["admin"]) or ""), "halt", "alice")
    assert e2.value.status == 403 and e2.value.field == "operator"
    with pytest.raises(ValueError):
        authorise_command(Principal("bob", Role.ADMIN, "k"), "status", None)


@pytest.mark.parametrize("api, desk_there, expect", [(True, False, "refused"), (False, False, None), (True, True, "desk")])
def test_a_deployment_running_its_api_without_its_desk_refuses_to_act(monkeypatch, api, desk_there, expect):
    """locate_desk: no desk is 'no API' only when the registry says the deployment runs none."""
    import ray

    from xmc_actors.api.desk import DESK_NAME

    class Registry:
        class describe:  # noqa: N801 - stands for an actor method
            @staticmethod
            def remote():
                return {"api": api}

    def get_actor(name, namespace=None):
        if name == DESK_NAME:
            if desk_there:
                return "desk"
            raise ValueError(f"Failed to look up actor {name}")
        return Registry()

    monkeypatch.setattr(cmd_ops, "join", lambda args: "ns")
    monkeypatch.setattr(ray, "get_actor", get_actor)
    monkeypatch.setattr(ray, "get", lambda ref, timeout=None: ref)
    if expect == "refused":
        with pytest.raises(CliError) as e:
            operator_auth.locate_desk(argparse.Namespace())
        assert e.value.code == EXIT_UNAUTHORISED and "desk (api-desk) is not there" in str(e.value)
    else:
        assert operator_auth.locate_desk(argparse.Namespace()) == expect


# -- who acted, in what role, through what (core/attribution.py) ------------------------------------
def test_the_cli_sends_the_tokens_role_and_via_cli_with_every_change(dep, monkeypatch):
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["trader"])
    assert main(["halt", "--strategy", "copper"]) == 0
    assert dep.changes[-1] == ("set_trading_state", "strategy", "copper", "HALTED", "op-trader", "",
                               {"role": "trader", "via": "cli"})
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["admin"])
    assert main(["resolve", "d9", "--note", "flat"]) == 0  # not escalated here: nothing to confirm
    assert dep.changes[-1][1:3] == ("d9", "op-admin") and dep.changes[-1][-1] == {"role": "admin", "via": "cli"}
    assert main(["accept-positions", "--note", "broker says so"]) == 0
    assert dep.changes[-1] == ("accept", "op-admin", "broker says so", {"role": "admin", "via": "cli"})
    assert main(["roll"] + COMMANDS["roll"][1:]) == 0
    assert dep.changes[-1] == ("submit_roll", "op-admin", "admin", "cli")  # the roll's OPERATOR event carries them


def test_without_an_operator_api_the_role_is_recorded_as_unauthenticated(monkeypatch):
    d = Deployment()
    monkeypatch.setattr(cmd_ops, "_call", d.guard)
    monkeypatch.setattr(operator_auth, "locate_desk", lambda args: None)
    monkeypatch.delenv("XMC_API_TOKEN", raising=False)
    assert main(["halt", "--operator", "alice"]) == 0
    assert main(["limits", "set", "--instrument", "SHFE.cu", "max_position=100", "--operator", "alice"]) == 0
    assert [c[-1] for c in d.changes] == [{"role": "unauthenticated", "via": "cli"}] * 2


# -- resolve and accept-positions resume trading: a second operator after red -----------------------
def _pending_id(err: str) -> str:
    return err.split("xmc confirm ")[1].split("`")[0]


def test_resolving_an_escalation_waits_for_a_second_operator(dep, monkeypatch, capsys):
    from xmc_actors.core.sink import MemorySink

    sink = dep.desk.sink = MemorySink()  # type: ignore[attr-defined]
    dep.escalations = {"d1": {"strategy": "copper", "reason": "leg B rejected", "ts_ns": 1}}
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["risk_officer"])
    assert main(["resolve", "d1", "--note", "flattened by hand"]) == EXIT_PENDING
    err = capsys.readouterr().err
    assert "red escalation" in err and "strategy copper" in err and "nothing changed yet" in err
    assert dep.changes == []  # nothing resolved, nothing resumed
    cid = _pending_id(err)
    pend = dep.desk.pending()  # type: ignore[attr-defined]
    assert [(p["action"], p["params"], p["proposer_role"], p["proposer_via"]) for p in pend] == [
        ("resolve", {"decision_id": "d1", "note": "flattened by hand"}, "risk_officer", "cli")]
    # the proposer may not confirm their own; another operator with the right does, once
    assert main(["confirm", cid]) == EXIT_UNAUTHORISED
    assert "a second, different operator must confirm" in capsys.readouterr().err and dep.changes == []
    monkeypatch.setenv("XMC_API_TOKEN", RISK2_TOKEN)
    assert main(["confirm", cid]) == 0
    assert dep.changes == [("resolve", "d1", "op-risk_officer", f"flattened by hand (confirmed by rita, {cid})", 5.0,
                            {"role": "risk_officer", "via": "cli"})]
    assert "resolved by op-risk_officer, confirmed by rita" in capsys.readouterr().out
    assert main(["confirm", cid]) == 2 and len(dep.changes) == 1  # not twice
    # the desk's own record: the proposal and the confirmation, each with its operator, role and via
    assert [(e.payload["action"], e.payload["operator"], e.payload["role"], e.payload["via"]) for e in sink.events] == [
        ("propose", "op-risk_officer", "risk_officer", "cli"), ("confirm", "rita", "risk_officer", "cli")]


def test_accepting_positions_while_a_red_alert_is_open_waits_for_a_second_operator(dep, monkeypatch, capsys):
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["admin"])
    dep.red = True
    assert main(["accept-positions", "--note", "confirmed with the broker"]) == EXIT_PENDING
    err = capsys.readouterr().err
    assert "accept the start-of-day positions" in err and "red alert" in err and dep.changes == []
    cid = _pending_id(err)
    assert main(["confirm", cid]) == EXIT_UNAUTHORISED and dep.changes == []  # the admin proposed it
    monkeypatch.setenv("XMC_API_TOKEN", RISK2_TOKEN)
    assert main(["confirm", cid]) == 0
    assert dep.changes == [("accept", "op-admin", f"confirmed with the broker (confirmed by rita, {cid})",
                            {"role": "admin", "via": "cli"})]
    assert "accepted by op-admin, confirmed by rita" in capsys.readouterr().out
    # no red alert: accepted at once, as before
    dep.red = False
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["admin"])
    assert main(["accept-positions", "--note", "again"]) == 0 and dep.changes[-1][:3] == ("accept", "op-admin", "again")


def test_a_confirmation_after_its_window_is_refused_and_nothing_runs(dep, monkeypatch, capsys):
    from xmc_actors.core.clock import SimClock

    clock = SimClock()
    dep.desk.core.confirmations.clock = clock  # type: ignore[attr-defined]
    dep.escalations = {"d1": {"strategy": "copper", "reason": "x", "ts_ns": 1}}
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["risk_officer"])
    assert main(["resolve", "d1", "--note", "flat"]) == EXIT_PENDING
    cid = _pending_id(capsys.readouterr().err)
    clock.advance(301 * 1_000_000_000)  # the desk's window: 300 s
    monkeypatch.setenv("XMC_API_TOKEN", RISK2_TOKEN)
    assert main(["confirm", cid]) == 2
    assert "expired" in capsys.readouterr().err and dep.changes == []


def test_a_resolve_or_acceptance_with_confirmation_off_runs_at_once(dep, monkeypatch):
    dep.desk.core.confirm_cfg = ConfirmConfig(resume_after_red=False)  # type: ignore[attr-defined]
    dep.escalations = {"d1": {"strategy": "copper", "reason": "x", "ts_ns": 1}}
    dep.red = True
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["risk_officer"])
    assert main(["resolve", "d1", "--note", "flat"]) == 0
    assert main(["accept-positions", "--note", "ok"]) == 0
    assert [c[0] for c in dep.changes] == ["resolve", "accept"]


def test_a_refusal_of_the_cli_is_recorded_as_via_cli(dep, monkeypatch, capsys):
    from xmc_actors.core.sink import MemorySink

    sink = dep.desk.sink = MemorySink()  # type: ignore[attr-defined]
    monkeypatch.setenv("XMC_API_TOKEN", TOKENS["trader"])
    assert main(["limits", "set", "--instrument", "SHFE.cu", "max_position=11"]) == EXIT_UNAUTHORISED
    [ev] = sink.events
    assert (ev.kind.value, ev.payload["path"], ev.payload["via"]) == ("BAD_INPUT", "cli:xmc limits set", "cli")
