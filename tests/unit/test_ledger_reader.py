"""Reading the trail back from a shard file (the query behind ``LedgerShard.read_events``), without Ray."""
from __future__ import annotations

from decimal import Decimal

import pytest

from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.ledger.reader import merge_in_time_order, query_events
from xmc_actors.ledger.schema import encode_events
from xmc_actors.ledger.store import LedgerStore
from xmc_actors.model.events import Event, EventKind


@pytest.fixture
def store(tmp_path):
    s = LedgerStore(tmp_path / "shard-0.duckdb")
    yield s
    s.close()


def _ev(eid: str, ts: int, kind: EventKind = EventKind.RISK_DECISION, did: str = "", **payload) -> Event:
    return Event(event_id=eid, ts_ns=ts, kind=kind, decision_id=did, reason="BOOKED", payload=payload)


def test_events_come_back_in_time_then_id_order_with_payload_decoded(store):
    # Arrange: written out of order, two events at the same stamp
    evs = [_ev("e3", 30), _ev("e2b", 20, legs=[{"lots": 2, "price": Decimal("7.5")}]), _ev("e2a", 20), _ev("e1", 10)]
    store.append(encode_events(evs).table, stored_ns=1)
    # Act
    got = query_events(store.con)
    # Assert
    assert [e.event_id for e in got] == ["e1", "e2a", "e2b", "e3"]
    assert got[2].payload == {"legs": [{"lots": 2, "price": "7.5"}]}
    assert got[2].kind is EventKind.RISK_DECISION and got[2].reason == "BOOKED"


def test_filters_on_kind_since_and_decision_ids_combine(store):
    # Arrange
    mk = EventMaker(SimClock(1_000), "t", node=1)
    evs = [mk.make(EventKind.RISK_DECISION, decision_id="d1", reason="BOOKED"),
           mk.make(EventKind.ORDER_SENT, decision_id="d1"),
           mk.make(EventKind.ALERT, reason="slippage")]
    late = Event(event_id="zz", ts_ns=5_000, kind=EventKind.RISK_DECISION, decision_id="d2", reason="BOOKED")
    store.append(encode_events(evs + [late]).table, stored_ns=1)
    # Act
    by_kind = query_events(store.con, kinds=["RISK_DECISION", "ALERT"])
    since = query_events(store.con, kinds=["RISK_DECISION"], since_ns=2_000)
    by_did = query_events(store.con, decision_ids=["d1"])
    none = query_events(store.con, kinds=[])
    # Assert
    assert sorted(e.kind.value for e in by_kind) == ["ALERT", "RISK_DECISION", "RISK_DECISION"]
    assert [e.decision_id for e in since] == ["d2"]
    assert {e.kind for e in by_did} == {EventKind.RISK_DECISION, EventKind.ORDER_SENT}
    assert none == []


def test_limit_returns_the_oldest_events(store):
    # Arrange
    store.append(encode_events([_ev(f"e{i:02d}", 100 - i) for i in range(10)]).table, stored_ns=1)
    # Act
    got = query_events(store.con, limit=3)
    # Assert
    assert [e.ts_ns for e in got] == [91, 92, 93]


@pytest.mark.parametrize("kw, field", [
    ({"kinds": ["NOT_A_KIND"]}, "kinds"),
    ({"since_ns": -1}, "since_ns"),
    ({"decision_ids": "d1"}, "decision_ids"),
    ({"limit": -5}, "limit"),
])
def test_a_bad_filter_is_refused_naming_the_field(store, kw, field):
    # Act / Assert
    with pytest.raises(ValueError, match=rf"^{field}:"):
        query_events(store.con, **kw)


def test_merging_shards_keeps_time_order_and_applies_the_limit_overall():
    # Arrange: two shards' answers, each already ordered
    a = [_ev("a1", 10), _ev("a2", 30), _ev("a3", 50)]
    b = [_ev("b1", 10), _ev("b2", 20), _ev("b3", 60)]
    # Act
    merged = merge_in_time_order([a, b])
    first4 = merge_in_time_order([a, b], limit=4)
    # Assert
    assert [e.event_id for e in merged] == ["a1", "b1", "b2", "a2", "a3", "b3"]
    assert [e.event_id for e in first4] == ["a1", "b1", "b2", "a2"]
