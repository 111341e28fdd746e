"""An escalated pair holds its strategy until a person has dealt with its residual and says so
(``xmc resolve``): the risk guard core keeps the unresolved escalations per strategy, live and
through a rebuild from the ledger, and refuses a resume of such a strategy."""
from __future__ import annotations

import pytest
from test_monitor_alerts import core, summary

from xmc_actors.model.events import EventKind

RESIDUAL = {"legs": {"A": {"residual": 1}}}


def _escalated(did: str, strategy: str = "s1", ts_ns: int = 1) -> dict:
    s = summary(did, strategy=strategy, state="ESCALATED", ts_ns=ts_ns, reason="rollback budget spent",
                residual=RESIDUAL)
    s["legs"][1] = {**s["legs"][1], "filled_qty": 0}  # leg B never filled: one lot of A unhedged
    return s


def test_an_escalated_pair_is_unresolved_until_an_operator_resolves_it_with_a_note() -> None:
    # Arrange
    g, sink, _ = core()
    g.on_pair_done(summary("d0"))
    g.on_pair_done(_escalated("d1"))
    # Act
    before = g.unresolved_escalations("s1")
    ev, last = g.resolve("d1", "alice", "sold 1 SHFE.cu by hand at 72010", residual={"A": 1}, residual_source="ESCALATION e9")
    # Assert
    assert before == ["d1"] and g.unresolved_escalations("s1") == [] and last is True
    assert ev.kind is EventKind.OPERATOR and ev.decision_id == "d1" and ev.strategy == "s1"
    assert {"action": "resolve", "operator": "alice", "note": "sold 1 SHFE.cu by hand at 72010",
            "residual": {"A": 1}, "residual_source": "ESCALATION e9"}.items() <= ev.payload.items()
    assert ev in sink.events
    assert g.status()["unresolved_escalations"] == {}


def test_resolve_refuses_a_pair_that_is_not_escalated_or_already_resolved_and_records_nothing() -> None:
    g, sink, _ = core()
    g.on_pair_done(summary("d0"))
    g.on_pair_done(_escalated("d1"))
    g.resolve("d1", "alice", "flattened")
    n = len(sink.events)
    with pytest.raises(ValueError, match="decision d0 is not an escalated pair .it ended HEDGED."):
        g.resolve("d0", "alice", "x")
    with pytest.raises(ValueError, match="decision nosuch is not an escalated pair"):
        g.resolve("nosuch", "alice", "x")
    with pytest.raises(ValueError, match="decision d1 is already resolved .by alice: flattened."):
        g.resolve("d1", "bob", "again")
    len_ops = len(sink.events)
    assert len_ops == n


@pytest.mark.parametrize("operator, note, msg", [("", "done", "operator"), ("alice", "  ", "note")])
def test_resolve_needs_an_operator_and_a_note(operator: str, note: str, msg: str) -> None:
    g, _, _ = core()
    g.on_pair_done(_escalated("d1"))
    with pytest.raises(ValueError, match=msg):
        g.resolve("d1", operator, note)
    assert g.unresolved_escalations() == ["d1"]


def test_a_resume_of_a_strategy_with_unresolved_escalations_is_refused_naming_them() -> None:
    # Arrange: two escalations on s1, one on s2
    g, sink, _ = core()
    g.on_pair_done(_escalated("d1", ts_ns=1))
    g.on_pair_done(_escalated("d2", ts_ns=2))
    g.on_pair_done(_escalated("d3", strategy="s2", ts_ns=3))
    # Act / Assert: refused, nothing recorded
    n = len(sink.events)
    with pytest.raises(ValueError, match=r"strategy s1 is halted by 2 escalated pair\(s\).*: d1, d2; .*xmc resolve"):
        g.set_trading_state("strategy", "s1", "ACTIVE", "alice")
    assert len(sink.events) == n
    # the first resolve leaves s1 with one; the second frees it
    assert g.resolve("d1", "alice", "hedged on LME")[1] is False
    with pytest.raises(ValueError, match="d2"):
        g.set_trading_state("strategy", "s1", "ACTIVE", "alice")
    assert g.resolve("d2", "alice", "hedged on LME")[1] is True
    g.set_trading_state("strategy", "s1", "ACTIVE", "alice")   # now allowed
    # other scopes are not held by a strategy's escalation
    g.set_trading_state("global", None, "ACTIVE", "alice")
    assert g.unresolved_escalations() == ["d3"]


def test_a_rebuild_keeps_what_is_unresolved_escalated_booked_minus_resolved() -> None:
    # Arrange: a guard books three escalations (reason and residual from the coordinator's alert
    # in the trail) and one is resolved; then it "crashes"
    g1, sink, _ = core()
    for did in ("d1", "d2"):
        sink.emit(g1.maker.make(EventKind.ALERT, decision_id=did, strategy="s1", source="coordinator",
                                alert_id=f"{did}:escalated", monitor="pair_escalation", scope="strategy", key="s1",
                                level="red", action="halt", message="leg B rejected, rollback failed",
                                residual=RESIDUAL))
        g1.on_pair_done(_escalated(did))
    g1.on_pair_done(_escalated("d3", strategy="s2"))
    g1.resolve("d2", "alice", "flattened")
    # Act
    g2, _, _ = core()
    g2.rebuild(sink.events, {"cn": {"SHFE.cu": 3}})
    # Assert
    assert g2.unresolved_escalations() == ["d1", "d3"] and g2.unresolved_escalations("s1") == ["d1"]
    assert g2.escalations["d1"]["reason"] == "leg B rejected, rollback failed"
    assert g2.escalations["d1"]["residual"] == RESIDUAL
    with pytest.raises(ValueError, match="already resolved"):
        g2.resolve("d2", "bob", "again")
    with pytest.raises(ValueError, match="d1"):
        g2.set_trading_state("strategy", "s1", "ACTIVE", "bob")
    # a coordinator's stored summary of a resolved pair, fed again, does not open it again
    g2b, _, _ = core()
    g2b.rebuild(sink.events, {"cn": {"SHFE.cu": 3}}, summaries=[_escalated("d2")])
    assert "d2" not in g2b.unresolved_escalations()


def test_a_new_late_fill_on_a_resolved_pair_opens_it_again() -> None:
    g, _, _ = core()
    g.on_pair_done(_escalated("d1"))
    g.resolve("d1", "alice", "flattened")
    late = {"decision_id": "d1", "strategy": "s1", "coordinator": "c1", "outcome": "ESCALATED", "ts_ns": 9,
            "incremental": True, "trade_id": "T7",
            "legs": [{"leg": "A", "instrument": "SHFE.cu", "account": "cn", "side": "BUY", "filled_qty": 1,
                      "avg_price": "72000"}]}
    g.on_pair_done(late)
    assert g.unresolved_escalations("s1") == ["d1"]
    # the same trade pushed again after a second resolve does not
    g.resolve("d1", "alice", "flattened the late lot")
    g.on_pair_done(late)
    assert g.unresolved_escalations() == []


def test_status_lists_unresolved_escalations_and_known_names() -> None:
    g, _, _ = core()
    g.on_pair_done(_escalated("d1"))
    st = g.status()
    assert st["unresolved_escalations"]["d1"]["strategy"] == "s1"
    assert st["unresolved_escalations"]["d1"]["reason"] == "rollback budget spent"
    assert st["known"]["venues"] == ["LME", "SHFE"] and st["known"]["accounts"] == ["cn", "us"]
    assert "SHFE.cu" in st["known"]["instruments"]
