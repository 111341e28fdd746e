"""The pair state machine's table: the code moves only along it, the docs show it verbatim, and
timers are typed keys."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pair_harness import Behaviour, Harness
from test_pair_fsm import FILLS, INSTRUMENTS, intent
from xmc_actors.core.pair import PAIR_TRANSITIONS, TABLE, TimerKey, TimerKind, Trigger, markdown_table, transition
from xmc_actors.model.errors import IllegalTransition
from xmc_actors.model.events import EventKind
from xmc_actors.model.orders import RejectReason
from xmc_actors.model.pairs import ExecutionMode, PairState

ROOT = Path(__file__).resolve().parents[2]
PAIR_PKG = ROOT / "xmc_actors" / "core" / "pair"


def test_the_architecture_doc_carries_the_table_the_code_runs_on():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    m = re.search(r"<!-- pair-table:begin -->\n(.*?)\n<!-- pair-table:end -->", doc, re.S)
    assert m, "docs/architecture.md has no pair-table markers"
    assert m.group(1) == markdown_table(), "regenerate the table: xmc_actors.core.pair.table.markdown_table()"


def test_a_move_the_table_does_not_have_is_refused_with_the_trigger_named():
    assert transition(PairState.WORKING, Trigger.STOP, PairState.WINDING_DOWN) is PairState.WINDING_DOWN
    with pytest.raises(IllegalTransition, match=r"WORKING -> ROLLING_BACK \(stop"):
        transition(PairState.WORKING, Trigger.STOP, PairState.ROLLING_BACK)
    with pytest.raises(IllegalTransition, match="ESCALATED -> WORKING"):
        transition(PairState.ESCALATED, Trigger.RECOVERED, PairState.WORKING)
    # terminal states leave only by a late fill (or its escalation); REFUSED and ESCALATED never
    assert PAIR_TRANSITIONS[PairState.REFUSED] == frozenset() and PAIR_TRANSITIONS[PairState.ESCALATED] == frozenset()
    assert {t.trigger for t in TABLE if t.source is PairState.HEDGED} == {
        Trigger.LATE_FILL, Trigger.LATE_FILL_FORGOTTEN, Trigger.ESCALATE}


def test_every_row_is_reachable_from_new_and_every_live_state_can_end():
    reach, todo = {PairState.NEW}, [PairState.NEW]
    while todo:
        s = todo.pop()
        for t in PAIR_TRANSITIONS[s] - reach:
            reach.add(t)
            todo.append(t)
    assert reach == set(PairState)
    for s in PairState:
        if not s.is_terminal and s is not PairState.NEW:
            assert PAIR_TRANSITIONS[s] & {PairState.HEDGED, PairState.ROLLED_BACK, PairState.ESCALATED}, s


def test_no_code_in_the_pair_package_assigns_a_state_but_through_the_table():
    """``x.state = …`` only where the value is ``transition(...)`` (the table's gate)."""
    offenders = []
    for path in PAIR_PKG.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Assign):
                continue
            for tgt in node.targets:
                elts = tgt.elts if isinstance(tgt, ast.Tuple) else [tgt]
                for e in elts:
                    if isinstance(e, ast.Attribute) and e.attr == "state":
                        ok = (isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                              and node.value.func.id == "transition")
                        initial = (isinstance(node.value, ast.Attribute) and node.value.attr == "NEW")
                        if not (ok or initial):
                            offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"state assigned outside the table: {offenders}"


def test_timer_keys_round_trip_and_a_malformed_one_is_refused_by_name():
    for k in (TimerKey(TimerKind.DEADLINE), TimerKey(TimerKind.ACK, "d1:A:0"), TimerKey(TimerKind.QUERY, "d1:B:2", 3),
              TimerKey(TimerKind.STALE, "d1:B:0"), TimerKey(TimerKind.UNWIND_RETRY)):
        assert TimerKey.parse(str(k)) == k
    assert str(TimerKey(TimerKind.QUERY, "d1:B:2", 3)) == "query:d1:B:2:3"
    with pytest.raises(ValueError, match="unknown kind 'nap'"):
        TimerKey.parse("nap:d1")
    with pytest.raises(ValueError, match="client order id is required"):
        TimerKey(TimerKind.ACK)
    with pytest.raises(ValueError, match="query:<client order id>:<failures>"):
        TimerKey.parse("query:d1:A:first")


def test_a_timer_with_an_unreadable_key_is_bad_input_and_the_pair_goes_on():
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    h.submit(intent(mode=ExecutionMode.SPEED))
    cmds = h.book.on_timer("d1", "nap:d1")
    h.run(cmds)
    assert h.book.bad_inputs.get("timer") == 1
    bad = [e for e in h.sink.events if e.kind is EventKind.BAD_INPUT]
    assert bad and "unknown kind 'nap'" in str(bad[-1].payload) + bad[-1].reason
    h.drain()
    assert h.book.pairs["d1"].state is PairState.HEDGED


def test_a_leg_rejected_for_good_winds_down_before_it_unwinds():
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(reject=1.0, reject_reasons=(RejectReason.MARKET_CLOSED,))})
    h.submit(intent(mode=ExecutionMode.SPEED))
    h.drain()
    moves = [(e.payload["from"], e.payload["to"]) for e in h.sink.events if e.kind is EventKind.PAIR_STATE
             and e.payload.get("from")]
    assert moves == [("NEW", "WORKING"), ("WORKING", "WINDING_DOWN"), ("WINDING_DOWN", "ROLLING_BACK"),
                     ("ROLLING_BACK", "ROLLED_BACK")]
