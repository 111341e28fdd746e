"""Every OPERATOR event names who acted, their role and the channel (core/attribution.py): the
risk guard's trading states, limits, resolutions and acceptances, a coordinator's copy of a
trading state, a roll, the desk's own events; ``xmc audit query`` shows them. And the rule that
``resolve`` / ``accept_positions`` resume trading after red, so need a second operator."""
from __future__ import annotations

import json

import pytest
from test_monitor_alerts import core
from test_pair_fsm import INSTRUMENTS
from test_risk_guard_resolve import _escalated
from test_roll import _req

from xmc_actors.api.desk import DeskService
from xmc_actors.core.attribution import (ROLES, SYSTEM, UNAUTHENTICATED, UNKNOWN, VIAS, api_by, attribution,
                                         cli_by)
from xmc_actors.core.clock import SimClock
from xmc_actors.core.operator_api import ApiError, Principal, Role, needs_confirmation
from xmc_actors.core.pair_fsm import PairBook
from xmc_actors.core.roll import RollInputError
from xmc_actors.core.sink import EventMaker, MemorySink
from xmc_actors.model.api import ConfirmConfig
from xmc_actors.model.events import EventKind
from xmc_actors.model.risk import TradingState

ALICE = Principal("alice", Role.TRADER, "k1")
RITA = Principal("rita", Role.RISK_OFFICER, "k2")


# -- attribution ---------------------------------------------------------------------------------
def test_the_roles_are_the_api_roles_and_the_honest_others():
    assert ROLES == ("viewer", "trader", "risk_officer", "admin", UNAUTHENTICATED, SYSTEM, UNKNOWN)
    assert VIAS == ("cli", "api", "console", "auto", "system", "unknown")


def test_attribution_of_a_caller_who_says_and_of_the_deployment_itself():
    assert attribution(" alice ", cli_by(ALICE)) == {"operator": "alice", "role": "trader", "via": "cli"}
    assert attribution("bob", cli_by(None)) == {"operator": "bob", "role": "unauthenticated", "via": "cli"}
    assert attribution("rita", api_by(RITA, "console")) == {"operator": "rita", "role": "risk_officer", "via": "console"}
    assert attribution("auto:slippage") == {"operator": "auto:slippage", "role": "system", "via": "auto"}
    assert attribution("start-of-day") == {"operator": "start-of-day", "role": "system", "via": "system"}
    assert attribution("carol") == {"operator": "carol", "role": "unknown", "via": "unknown"}


@pytest.mark.parametrize("operator, by, field", [
    ("", {"role": "trader", "via": "cli"}, "operator"),
    ("alice", {"role": "boss", "via": "cli"}, "by.role"),
    ("alice", {"role": "trader", "via": "telex"}, "by.via"),
    ("alice", {"role": "trader", "via": "cli", "token": "x"}, "by.token"),
    ("alice", ("trader", "cli"), "by"),
])
def test_a_wrong_attribution_is_refused_naming_the_field(operator, by, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        attribution(operator, by)


# -- the risk guard's OPERATOR events -------------------------------------------------------------------
def _ops(sink: MemorySink) -> list:
    return [e for e in sink.events if e.kind is EventKind.OPERATOR]


def test_a_trading_state_and_a_limit_are_recorded_with_role_and_via():
    g, sink, _ = core()
    g.set_trading_state("strategy", "s1", TradingState.HALTED, "alice", "news", by=cli_by(ALICE))
    g.set_limit("default_limits", None, "max_order_qty", "3", "rita", by=api_by(RITA))
    g.set_trading_state("global", None, TradingState.REDUCING, "bob", by=cli_by(None))
    got = [(e.payload["action"], e.payload["operator"], e.payload["role"], e.payload["via"]) for e in _ops(sink)]
    assert got == [("trading_state", "alice", "trader", "cli"), ("set_limit", "rita", "risk_officer", "api"),
                   ("trading_state", "bob", "unauthenticated", "cli")]


def test_an_automatic_state_change_is_the_systems():
    g, sink, _ = core()
    g._set_state("global", None, TradingState.REDUCING, "auto:rebuild", "rebuild failed", auto=True)
    assert {"operator": "auto:rebuild", "role": "system", "via": "auto"}.items() <= _ops(sink)[-1].payload.items()


def test_a_wrong_attribution_changes_nothing_and_records_nothing():
    g, sink, _ = core()
    with pytest.raises(ValueError, match="^by.via:"):
        g.set_trading_state("global", None, TradingState.HALTED, "alice", by={"role": "trader", "via": "fax"})
    with pytest.raises(ValueError, match="^by.role:"):
        g.set_limit("default_limits", None, "max_order_qty", "3", "rita", by={"role": "", "via": "api"})
    assert _ops(sink) == [] and g.status()["trading_states"] == {}
    assert g.status()["limits"]["default_limits"]["max_order_qty"] != 3


def test_a_resolution_and_an_acceptance_are_recorded_with_role_and_via():
    g, sink, _ = core()
    g.on_pair_done(_escalated("d1"))
    with pytest.raises(ValueError, match="^by.role:"):
        g.resolve("d1", "rita", "flat", by={"role": "root", "via": "cli"})
    assert g.unresolved_escalations() == ["d1"]  # refused: still to resolve
    ev, _ = g.resolve("d1", "rita", "flat", by=cli_by(RITA))
    assert (ev.payload["operator"], ev.payload["role"], ev.payload["via"]) == ("rita", "risk_officer", "cli")
    acc = g.record_acceptance("rita", "accepted", {"differences": []}, by=api_by(RITA))
    assert (acc.payload["action"], acc.payload["role"], acc.payload["via"]) == ("accept_positions", "risk_officer", "api")


# -- a coordinator's copy of a trading state ----------------------------------------------------------
def test_a_coordinator_records_the_state_with_the_role_and_via_the_guard_sent():
    book = PairBook(INSTRUMENTS, SimClock())
    book.set_trading_state("strategy", "s1", "HALTED", "alice", {"role": "trader", "via": "console"})
    [ev] = book.sink.events
    assert ev.kind is EventKind.OPERATOR
    assert {"operator": "alice", "role": "trader", "via": "console", "state": "HALTED"}.items() <= ev.payload.items()


def test_a_coordinator_applies_a_state_with_a_wrong_attribution_and_records_both():
    book = PairBook(INSTRUMENTS, SimClock())
    book.set_trading_state("global", "", "HALTED", "alice", {"role": "trader", "via": "pigeon"})
    evs = book.sink.events
    assert [e.kind for e in evs] == [EventKind.BAD_INPUT, EventKind.OPERATOR]
    assert "by.via" in evs[0].reason
    assert (evs[1].payload["role"], evs[1].payload["via"]) == ("unknown", "unknown")
    assert book.trading[("global", "")] is TradingState.HALTED  # a halt is never lost to its label


# -- a roll -----------------------------------------------------------------------------------------------
def test_a_roll_carries_the_role_and_via_into_its_operator_event():
    req = _req(operator="alice", by=cli_by(ALICE))
    assert {"operator": "alice", "role": "trader", "via": "cli"}.items() <= req.payload().items()
    assert {"role": "unknown", "via": "unknown"}.items() <= _req().payload().items()  # a strategy's own roll
    with pytest.raises(RollInputError) as e:
        _req(operator="alice", by={"role": "trader", "via": "smoke"})
    assert e.value.field == "by.via"


# -- the desk: proposals keep the proposer's role and channel ----------------------------------------------
def test_a_proposal_keeps_the_proposers_role_and_channel_and_records_them():
    sink = MemorySink()
    desk = DeskService(ConfirmConfig(), 60.0, sink, SimClock())
    pend = desk.propose("resolve", {"decision_id": "d1", "note": "flat"}, ("rita", "risk_officer", "k2"), "red", "cli")
    assert (pend["proposer_role"], pend["proposer_via"]) == ("risk_officer", "cli")
    desk.confirm(pend["confirmation_id"], ("admin1", "admin", "k3"), "console")
    assert [(e.payload["action"], e.payload["role"], e.payload["via"]) for e in sink.events] == [
        ("propose", "risk_officer", "cli"), ("confirm", "admin", "console")]


@pytest.mark.parametrize("call, field", [
    (lambda d: d.propose("resume", {}, ("a", "trader", "k"), "why", "fax"), "via"),
    (lambda d: d.propose("stop", {}, ("a", "admin", "k"), "why", "cli"), "action"),
    (lambda d: d.acknowledge("al", ("a", "trader", "k"), "", [{"alert_id": "al"}], "telex"), "via"),
])
def test_the_desk_refuses_a_wrong_channel_or_an_unconfirmable_action_naming_the_field(call, field):
    sink = MemorySink()
    desk = DeskService(ConfirmConfig(), 60.0, sink, SimClock())
    with pytest.raises(ApiError) as e:
        call(desk)
    assert e.value.status == 422 and e.value.field == field
    assert sink.events == [] and desk.pending() == [] and desk.acks() == {}


# -- resolve and accept_positions need a second operator after red ---------------------------------------------
RED = {"alert_id": "r", "level": "red", "monitor": "pnl", "scope": "strategy", "key": "gold"}
ESC = {"d1": {"strategy": "copper", "reason": "leg B rejected"}}


@pytest.mark.parametrize("action, params, status, needed", [
    ("resolve", {"decision_id": "d1", "note": "x"}, {"unresolved_escalations": ESC}, "red escalation"),
    ("resolve", {"decision_id": "d2", "note": "x"}, {"unresolved_escalations": ESC}, None),  # the guard refuses it
    ("resolve", {"decision_id": "d1", "note": "x"}, {}, None),
    ("accept_positions", {"note": "x"}, {"open_alerts": [RED]}, "1 red alert(s) are open: pnl strategy=gold"),
    ("accept_positions", {"note": "x"}, {"open_alerts": [{**RED, "level": "orange"}]}, None),
])
def test_resolve_and_accept_positions_resume_after_red_so_need_a_second_operator(action, params, status, needed):
    why = needs_confirmation(ConfirmConfig(), action, params, status)
    assert (why is None) if needed is None else (needed in (why or ""))
    assert needs_confirmation(ConfirmConfig(resume_after_red=False), action, params, status) is None


# -- xmc audit shows who, their role and the channel --------------------------------------------------------------
def test_xmc_audit_query_shows_the_role_and_via_of_operator_events(tmp_path, capsys):
    from xmc_actors.ledger.schema import encode_events
    from xmc_actors.ledger.store import LedgerStore
    from xmc_actors.ops.cli import main

    g, sink, _ = core()
    g.set_trading_state("global", None, TradingState.HALTED, "alice", "news", by=cli_by(ALICE))
    mk = EventMaker(SimClock(), "api")
    evs = [e for e in sink.events if e.kind is EventKind.OPERATOR]
    evs.append(mk.make(EventKind.OPERATOR, reason="acknowledge_alert", action="acknowledge_alert",
                       **attribution("rita", api_by(RITA, "console"))))
    store = LedgerStore(tmp_path / "shard-0.duckdb")
    store.append(encode_events(evs).table, stored_ns=2_000_000_000_000_000_000)
    store.close()
    assert main(["audit", "query", "--ledger", str(tmp_path), "--kind", "OPERATOR", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((r["payload"]["operator"], r["payload"]["role"], r["payload"]["via"]) for r in rows) == [
        ("alice", "trader", "cli"), ("rita", "risk_officer", "console")]
