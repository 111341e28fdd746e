"""One DuckDB connection per ledger shard, used by one thread: found by the chaos suite (group,
seed 11), where a restarted shard probed by ``ready()`` while its clients re-sent wrote nothing
for the rest of the run. Without Ray: the shard class is used directly, on an event loop."""
from __future__ import annotations

import asyncio
import threading

import duckdb

from xmc_actors.ledger.actor import LedgerShard
from xmc_actors.ledger.schema import batch_to_wire, encode_events
from xmc_actors.ledger.store import LedgerStore
from xmc_actors.ledger.synthetic import synthetic_session


def test_ready_while_a_commit_holds_the_connection_waits_for_it_and_later_commits_still_land(tmp_path) -> None:
    async def scenario() -> tuple[dict, int, int]:
        shard = LedgerShard(str(tmp_path / "shard-0.duckdb"), 0, commit_ms=1)
        events = list(synthetic_session(20, seed=9))
        half = len(events) // 2
        await shard.append(batch_to_wire(encode_events(events[:half]).table), urgent=True)
        con = shard.store.con
        inside, release = threading.Event(), threading.Event()
        con.create_function("hold", lambda x: (inside.set(), release.wait(5), x)[-1],
                            [duckdb.sqltypes.BIGINT], duckdb.sqltypes.BIGINT)
        loop = asyncio.get_running_loop()

        def commit_in_progress() -> None:   # a group commit, held between its BEGIN and COMMIT
            con.execute("BEGIN TRANSACTION")
            con.execute("SELECT hold(1)").fetchall()
            con.execute("COMMIT")

        busy = loop.run_in_executor(shard._exec, commit_in_progress)
        await loop.run_in_executor(None, inside.wait, 5)
        # Act: the readiness probe arrives in the middle of the commit
        probe = asyncio.ensure_future(shard.ready())
        await asyncio.sleep(0.1)
        release.set()
        answer = await asyncio.wait_for(probe, 5)
        await busy
        # later batches are still committed
        await asyncio.wait_for(shard.append(batch_to_wire(encode_events(events[half:]).table), urgent=True), 5)
        return answer, shard.store.count(), shard.commit_errors, half, len(events)

    # Assert: the probe waited for the commit (it did not take the busy connection), and the
    # shard went on writing
    answer, rows, errors, half, total = asyncio.run(scenario())
    assert answer["rows"] == half
    assert rows == total and errors == 0


def test_a_transaction_left_open_by_an_earlier_failure_does_not_stop_every_later_commit(tmp_path) -> None:
    # Arrange: a commit's ROLLBACK was refused, its transaction left open on the connection
    store = LedgerStore(tmp_path / "s.duckdb")
    events = list(synthetic_session(10, seed=3))
    store.con.execute("BEGIN TRANSACTION")
    store.con.execute("CREATE TEMP TABLE half_done AS SELECT 1 AS x")
    # Act
    res = store.append(encode_events(events).table, stored_ns=1)
    # Assert: the stale transaction was rolled back, the batch stored, and it stays stored
    assert res.stored == len(events) and store.count() == len(events)
    store.close()
    assert LedgerStore(tmp_path / "s.duckdb").count() == len(events)
