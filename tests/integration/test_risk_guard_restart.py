"""Reading the trail through the shard actors, and a RiskGuard that Ray restarts rebuilding from it.

One Ray instance for the module; each test starts its own ledger shards in a namespace of
its own (so ``ledger-<n>`` and ``risk-guard`` are fresh per test).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import ray

from xmc_actors.core.clock import SystemClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.ledger.actor import start_ledger
from xmc_actors.ledger.client import LedgerClient
from xmc_actors.ledger.reader import read_trail
from xmc_actors.ledger.store import LedgerError
from xmc_actors.model.config import LedgerConfig
from xmc_actors.model.events import EventKind

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_ns():
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="test-rg-restart", log_to_driver=False)
    yield "test-rg-restart"
    ray.shutdown()


def _ns(tmp_path) -> str:
    return f"test-rg-restart-{tmp_path.name}"


def _stop(handles) -> None:
    for h in handles:
        ray.kill(h, no_restart=True)


def test_read_trail_returns_every_acknowledged_event_of_all_shards_in_time_order(ray_ns, tmp_path):
    # Arrange: two shards, events of three strategies (spread over both), one durable write
    cfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=2, shard_by="strategy", flush_ms=50, batch_size=500)
    shards = start_ledger(cfg, _ns(tmp_path))
    client = LedgerClient(shards, cfg)
    mk = EventMaker(SystemClock(), "test")
    written = []
    for i in range(30):
        e = mk.make(EventKind.RISK_DECISION, decision_id=f"d{i}", strategy=f"s{i % 3}", reason="BOOKED", legs=[])
        written.append(e)
        client.emit(e)
    last = mk.make(EventKind.OPERATOR, strategy="s1", reason="HALTED strategy:s1", operator="alice")
    client.emit_durable(last).result(10)
    client.emit(mk.make(EventKind.ORDER_SENT, decision_id="d0", strategy="s0"))
    client.flush(10)
    # Act
    got = asyncio.run(read_trail(shards, kinds=["RISK_DECISION", "OPERATOR"]))
    only_d3 = asyncio.run(read_trail(shards, decision_ids=["d3"]))
    first5 = asyncio.run(read_trail(shards, kinds=["RISK_DECISION"], limit=5))
    # Assert
    assert [e.event_id for e in got] == [e.event_id for e in sorted(written + [last], key=lambda e: (e.ts_ns, e.event_id))]
    assert got[-1].payload["operator"] == "alice"
    assert [e.decision_id for e in only_d3] == ["d3"]
    assert [e.decision_id for e in first5] == ["d0", "d1", "d2", "d3", "d4"]
    client.close(5)
    _stop(shards)


def test_read_events_commits_what_the_shard_holds_queued_before_reading(ray_ns, tmp_path):
    # Arrange: a long flush interval, so an append sits queued in the shard when the read arrives
    from xmc_actors.ledger.actor import LedgerShardActor
    from xmc_actors.ledger.schema import encode_events

    shard = LedgerShardActor.options(num_cpus=0, max_concurrency=100).remote(
        str(tmp_path / "shard-0.duckdb"), 0, 30_000.0, 10_000)
    ray.get(shard.ready.remote())

    mk = EventMaker(SystemClock(), "test")
    e = mk.make(EventKind.ALERT, reason="queued", level="red")
    pending = shard.append.remote(encode_events([e]).table)
    time.sleep(0.2)
    # Act
    got = ray.get(shard.read_events.remote(["ALERT"]), timeout=3)
    # Assert: returned well before the 30 s flush, and the append is acknowledged too
    assert [x.event_id for x in got] == [e.event_id]
    assert ray.get(pending, timeout=1) == 1
    _stop([shard])


def test_read_trail_with_a_shard_down_raises_naming_it_instead_of_returning_part(ray_ns, tmp_path):
    # Arrange
    cfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=2, shard_by="strategy", flush_ms=2)
    shards = start_ledger(cfg, _ns(tmp_path), max_restarts=0)
    ray.kill(shards[1], no_restart=True)
    # Act / Assert
    with pytest.raises(LedgerError, match="ledger-1"):
        asyncio.run(read_trail(shards, kinds=["RISK_DECISION"], timeout_s=10))
    with pytest.raises(ValueError, match="^kinds:"):
        asyncio.run(read_trail(shards, kinds=["NOPE"]))
    _stop(shards[:1])
