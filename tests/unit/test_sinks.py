"""The sinks a shell gives its core (core/sink.py): a HeldSink keeps the pair core's events
until the orders have left, a GuardedSink keeps a failing ledger client out of the core."""
from __future__ import annotations

import logging

import pytest

from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import Deferred, EventMaker, GuardedSink, HeldSink, MemorySink, write_spec
from xmc_actors.model.events import EventKind


def _maker() -> EventMaker:
    return EventMaker(SimClock(1_700_000_000_000_000_000), "coord", 1)


def test_a_held_sink_writes_nothing_until_released_then_everything_in_the_order_written() -> None:
    into, maker = MemorySink(), _maker()
    held = HeldSink(into)
    calls = []
    first = maker.make(EventKind.BAD_INPUT, reason="first")
    held.emit(first)
    write_spec(held, maker, {"kind": EventKind.INTENT, "decision_id": "d1",
                             "intent": Deferred(lambda: calls.append("dumped") or {"legs": 2})})
    held.emit_many([maker.make(EventKind.OPERATOR, reason="third")])
    # held: nothing written, the spec not built, its deferred payload not computed
    assert len(held) == 3 and into.events == [] and calls == []
    assert held.release() == 3
    assert [e.reason or e.kind.value for e in into.events] == ["first", "INTENT", "third"]
    assert into.events[1].payload["intent"] == {"legs": 2} and calls == ["dumped"]
    assert into.events[0] is first  # a built event goes through as it is
    assert held.release() == 0 and len(into.events) == 3  # released once


def test_a_spec_written_to_any_other_sink_is_built_at_once() -> None:
    into, maker = MemorySink(), _maker()
    write_spec(into, maker, {"kind": EventKind.PAIR_STATE, "decision_id": "d1", "reason": "risk ok",
                             "to": Deferred(str, "WORKING")})
    [ev] = into.events
    assert ev.kind is EventKind.PAIR_STATE and ev.decision_id == "d1" and ev.payload["to"] == "WORKING"


class _Broken:
    def emit(self, event) -> None:
        raise ConnectionError("ledger gone")

    def emit_many(self, events) -> None:
        raise ConnectionError("ledger gone")


def test_a_guarded_sink_counts_and_logs_a_failing_ledger_client_and_never_raises(caplog) -> None:
    g = GuardedSink(_Broken(), "host-0")
    ev = _maker().make(EventKind.LIFECYCLE, reason="x")
    with caplog.at_level(logging.ERROR, logger="xmc_actors.core.sink"):
        g.emit(ev)
        g.emit_many([ev, ev])
        g.emit_many([])  # nothing to write: not a failure
    assert g.failures == 2
    assert [r.getMessage() for r in caplog.records] == ["host-0: could not write an event (LIFECYCLE)",
                                                        "host-0: could not write 2 event(s)"]


def test_a_guarded_sink_passes_events_through() -> None:
    into = MemorySink()
    g = GuardedSink(into, "host-0")
    ev = _maker().make(EventKind.LIFECYCLE, reason="x")
    g.emit(ev)
    assert into.events == [ev] and g.failures == 0


def test_a_spec_without_a_kind_fails_when_built() -> None:
    with pytest.raises(KeyError):
        write_spec(MemorySink(), _maker(), {"decision_id": "d1"})
