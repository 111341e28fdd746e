"""The ledger shard actors and the client on Ray: group commit, idempotence, durability under kill."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import ray

from xmc_actors.core.clock import SystemClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.ledger.actor import shard_path, start_ledger
from xmc_actors.ledger.client import LedgerClient
from xmc_actors.ledger.store import LedgerStore
from xmc_actors.model.config import LedgerConfig
from xmc_actors.model.events import EventKind

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_ns():
    ray.init(num_cpus=2, include_dashboard=False, namespace="test-ledger", log_to_driver=False)
    yield "test-ledger"
    ray.shutdown()


def _ns(tmp_path) -> str:
    """A namespace per test, so that each test gets fresh ``ledger-<n>`` actors."""
    return f"test-ledger-{tmp_path.name}"


def _kill_actor_process(handle) -> int:
    pid = ray.get(handle.ready.remote())["pid"]
    os.kill(pid, signal.SIGKILL)
    return pid


def _stored_ids(cfg: LedgerConfig) -> list[str]:
    ids: list[str] = []
    for i in range(cfg.shards):
        s = LedgerStore(shard_path(cfg, i))
        ids += [r[0] for r in s.con.execute("SELECT event_id FROM events WHERE kind != 'BAD_INPUT'").fetchall()]
        s.close()
    return ids


def _stop(handles) -> None:
    for h in handles:
        ray.kill(h, no_restart=True)
    time.sleep(0.3)


def test_events_from_two_strategies_are_sharded_and_each_stored_once(ray_ns, tmp_path):
    # Arrange
    cfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=2, shard_by="strategy", flush_ms=2, batch_size=500)
    handles = start_ledger(cfg, _ns(tmp_path))
    client = LedgerClient(handles, cfg)
    mk = EventMaker(SystemClock(), "test")
    events = [mk.make(EventKind.ORDER_SENT, decision_id=f"d{i // 4}", strategy=f"strat-{i % 5}",
                      client_order_id=f"d{i // 4}:A:0") for i in range(3_000)]
    # Act: emit everything, then emit the first 1000 again (a writer re-sending)
    client.emit_many(events)
    client.emit_many(events[:1000])
    client.flush(timeout=30)
    stats = [ray.get(h.stats.remote()) for h in handles]
    _stop(handles)
    # Assert
    ids = _stored_ids(cfg)
    assert sorted(ids) == sorted(e.event_id for e in events)
    assert all(s["stored"] > 0 for s in stats), "both shards received events"
    assert sum(s["duplicates"] for s in stats) == 1000
    client.close()


def test_killing_the_shard_mid_stream_loses_no_acknowledged_event(ray_ns, tmp_path):
    # Arrange: one shard, a writer streaming events, durable markers acknowledged along the way
    cfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=1, flush_ms=2, batch_size=200)
    handles = start_ledger(cfg, _ns(tmp_path), max_restarts=-1)
    client = LedgerClient(handles, cfg, max_in_flight=2)
    mk = EventMaker(SystemClock(), "test")
    sent, acked_markers = [], []
    # Act: stream, SIGKILL the shard process twice mid-stream, keep streaming
    for round_ in range(6):
        batch = [mk.make(EventKind.ORDER_REPORT, decision_id=f"r{round_}-{i // 3}", strategy="s1", seq=i)
                 for i in range(2_000)]
        client.emit_many(batch)
        sent += batch
        marker = mk.make(EventKind.PAIR_STATE, decision_id=f"r{round_}", strategy="s1", state="HEDGED")
        sent.append(marker)
        ack = client.emit_durable(marker)
        if round_ in (1, 3):
            pid = _kill_actor_process(handles[0])
        ack.result(timeout=60)  # acknowledged: committed before or after the restart
        acked_markers.append(marker.event_id)
    client.flush(timeout=60)
    info = ray.get(handles[0].ready.remote())
    _stop(handles)
    # Assert: every event is there exactly once, the shard came back as a reconstructed actor
    ids = _stored_ids(cfg)
    assert info["reconstructed"] is True and info["pid"] != pid
    assert len(ids) == len(set(ids))
    assert set(ids) == {e.event_id for e in sent}
    assert set(acked_markers) <= set(ids)
    assert client.stats()["resent_batches"] >= 1
    client.close()


def test_os_exit_right_after_an_acknowledged_write_keeps_it(ray_ns, tmp_path):
    # Arrange
    cfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=1, flush_ms=50, batch_size=10_000)
    handles = start_ledger(cfg, _ns(tmp_path), max_restarts=0)
    client = LedgerClient(handles, cfg)
    mk = EventMaker(SystemClock(), "test")
    ev = mk.make(EventKind.ALERT, decision_id="d-exit", level="red")
    # Act: the ack returns, then the process exits without any shutdown (no checkpoint, no close)
    client.emit_durable(ev).result(timeout=30)
    pid = ray.get(handles[0].ready.remote())["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    # Assert: the WAL had it
    assert _stored_ids(cfg) == [ev.event_id]
    client._closed = True  # the shard is gone for good; nothing is left unacknowledged
    assert client.stats()["unacked"] == 0


def test_durable_write_can_be_awaited_from_an_async_actor(ray_ns, tmp_path):
    # Arrange: an async actor holding a client, as the coordinator would
    cfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=1, flush_ms=5)
    handles = start_ledger(cfg, _ns(tmp_path))

    @ray.remote(num_cpus=0)
    class Writer:
        def __init__(self, handles, cfg):
            self.client = LedgerClient(handles, cfg, actor="writer")
            self.mk = EventMaker(SystemClock(), "writer")

        async def write(self, n: int) -> list[str]:
            evs = [self.mk.make(EventKind.ORDER_SENT, decision_id="dw", strategy="s") for _ in range(n)]
            self.client.emit_many(evs[:-1])
            await self.client.emit_durable(evs[-1])
            await asyncio.sleep(0)
            await self.client.aflush()
            return [e.event_id for e in evs]

    w = Writer.remote(handles, cfg)
    # Act
    ids = ray.get(w.write.remote(50), timeout=60)
    _stop(handles)
    # Assert
    assert sorted(_stored_ids(cfg)) == sorted(ids)


def test_client_refuses_a_malformed_event_and_records_bad_input(ray_ns, tmp_path):
    # Arrange
    cfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=1, flush_ms=2)
    handles = start_ledger(cfg, _ns(tmp_path))
    client = LedgerClient(handles, cfg)
    mk = EventMaker(SystemClock(), "t")
    good = mk.make(EventKind.ORDER_SENT, decision_id="d1")
    bad = mk.make(EventKind.ORDER_SENT, decision_id="d1", blob=object())  # payload cannot be encoded
    # Act
    client.emit_many([good, bad, {"event_id": "", "ts_ns": 1, "kind": "ALERT"}])
    client.flush(timeout=30)
    _stop(handles)
    s = LedgerStore(shard_path(cfg, 0))
    rows = s.con.execute("SELECT kind, reason FROM events ORDER BY kind").fetchall()
    s.close()
    # Assert
    assert client.stats()["refused"] == 2
    assert ("ORDER_SENT", "") in rows
    reasons = sorted(r for k, r in rows if k == "BAD_INPUT")
    assert len(reasons) == 2
    assert reasons[0].startswith("event_id:") and reasons[1].startswith("payload: cannot encode")


def test_a_shard_given_bytes_that_are_no_batch_records_them_and_goes_on(ray_ns, tmp_path):
    # Arrange
    cfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=1, flush_ms=2)
    (shard,) = start_ledger(cfg, _ns(tmp_path))
    client = LedgerClient([shard], cfg)
    mk = EventMaker(SystemClock(), "t")
    client.emit(mk.make(EventKind.ORDER_SENT, decision_id="before"))
    client.flush(timeout=30)
    # Act: garbage where a batch belongs, then more events through the client
    assert ray.get(shard.append.remote(b"not an arrow stream", False), timeout=30) == 0
    client.emit(mk.make(EventKind.ORDER_SENT, decision_id="after"))
    client.flush(timeout=30)
    stats = ray.get(shard.stats.remote())
    _stop([shard])
    s = LedgerStore(shard_path(cfg, 0))
    rows = s.con.execute("SELECT kind, decision_id, reason FROM events ORDER BY ts_ns").fetchall()
    s.close()
    # Assert: refused with the field and the reason, counted, and nothing accepted lost
    assert stats["refused_by_field"] == {"batch": 1}
    assert [(k, d) for k, d, _ in rows if k == "ORDER_SENT"] == [("ORDER_SENT", "before"), ("ORDER_SENT", "after")]
    (reason,) = [r for k, _, r in rows if k == "BAD_INPUT"]
    assert reason.startswith("batch: not an Arrow IPC stream")
