"""The ledger shard actor (a thin shell over :class:`~xmc_actors.ledger.store.LedgerStore`).

Group commit: ``append`` calls queue their batch and wait; a writer task commits everything
queued as one transaction when the queue reaches ``batch_size`` rows, when a caller asked for
an urgent (durable) write, or ``commit_ms`` after the oldest queued batch arrived. Each call
returns (its *acknowledgement*) only after the transaction holding its rows has committed, i.e.
after DuckDB synced its write-ahead log. A call that fails (the actor died, the commit failed)
is not acknowledged; the client keeps the batch and sends it again, and ``event_id`` makes that
harmless.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray

from ..model.config import LedgerConfig
from ..model.events import Event
from ..model.names import actor_repr
from .reader import check_filters, query_events
from .schema import ARROW_SCHEMA, batch_from_wire
from .store import LedgerStore

log = logging.getLogger("xmc.ledger")


def shard_path(cfg: LedgerConfig, shard: int) -> Path:
    """The file of shard ``shard``: ``<cfg.path>/shard-<n>.duckdb`` (absolute)."""
    return Path(cfg.path).expanduser().resolve() / f"shard-{shard}.duckdb"


class LedgerShard:
    """One shard: owns one DuckDB file and commits batches in groups.

    Parameters
    ----------
    path
        The shard's DuckDB file.
    shard
        Shard number (used in names and stats).
    commit_ms
        Longest wait before queued batches are committed (``LedgerConfig.commit_ms``).
    batch_size
        Queued rows that trigger a commit at once.
    """

    def __init__(self, path: str, shard: int, commit_ms: float = 25.0, batch_size: int = 5_000) -> None:
        self.shard = shard
        self.commit_s = commit_ms / 1000.0
        self.batch_size = batch_size
        try:
            self.reconstructed = bool(ray.get_runtime_context().was_current_actor_reconstructed)
        except Exception:  # noqa: BLE001 - not inside Ray (plain construction in a test)
            self.reconstructed = False
        # A restarted shard reopens its file: DuckDB replays the WAL, so every acknowledged row is there.
        # one DuckDB thread for the commits (a second one costs a small commit more CPU than it
        # saves: docs/benchmarks.md "Where a deployment's CPU goes"); reads take two
        self.store = LedgerStore(path, actor=f"ledger-{shard}", threads=1)
        self._exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ledger-{shard}")
        # (batch, its caller's acknowledgement); a batch is a table, or bytes that were no batch
        # (kept as sent: the store refuses them, with the reason, as a BAD_INPUT event)
        self._queue: list[tuple[pa.Table | bytes, asyncio.Future]] = []
        self._rows = 0
        self._urgent = False
        self._oldest = 0.0
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task | None = None
        self.commits = 0
        self.commit_errors = 0

    def __repr__(self) -> str:
        """The dashboard's Repr column: ``LedgerShard(ledger-0: /…/var/demo/ledger/shard-0.duckdb)``."""
        store = getattr(self, "store", None)
        path = str(store.path) if store is not None else ""
        path = path if len(path) <= 60 else "..." + path[-57:]
        return actor_repr("LedgerShard", f"ledger-{getattr(self, 'shard', '?')}", path,
                          "restarted" if getattr(self, "reconstructed", False) else "",
                          f"{self.commit_errors} commit errors" if getattr(self, "commit_errors", 0) else "")

    # ------------------------------------------------------------------------------- remote
    async def ready(self) -> dict[str, Any]:
        """Readiness probe: the file is open. Returns pid, path and whether this is a restart.

        The row count is read on the writer thread, like every other use of the connection: a
        DuckDB connection refuses a second caller while it is busy, and a probe that took it in
        the middle of a group commit left that commit's transaction open, so that every later
        commit of the shard failed while the probe said "ready" (chaos, group seed 11: a
        restarted shard, probed while its clients re-sent, wrote nothing for the rest of the run)."""
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._exec, self.store.count)
        return {"shard": self.shard, "pid": os.getpid(), "path": str(self.store.path),
                "reconstructed": self.reconstructed, "rows": rows}

    async def append(self, table: pa.Table | bytes, urgent: bool = False) -> int:
        """Queue a batch for the next group commit; returns its row count once committed.

        ``table``: the batch as a table, or as the bytes of one Arrow IPC stream (what the
        ledger client sends: :func:`~xmc_actors.ledger.schema.batch_to_wire`). Bytes that are
        no batch are refused (field ``batch``, with the reason), recorded as a BAD_INPUT event
        and counted; the call returns 0 and the shard goes on."""
        loop = asyncio.get_running_loop()
        self._start(loop)
        rows = 0
        if isinstance(table, pa.Table):
            rows = table.num_rows
        else:
            try:
                table = batch_from_wire(table)
                rows = table.num_rows
            except ValueError:
                urgent = True  # the store refuses it at the next commit: record that now
        fut: asyncio.Future = loop.create_future()
        if not self._queue:
            self._oldest = time.monotonic()
        self._queue.append((table, fut))
        self._rows += rows
        if urgent:
            self._urgent = True
        if urgent or self._rows >= self.batch_size:
            self._wake.set()  # type: ignore[union-attr]
        elif len(self._queue) == 1:
            self._wake.set()  # type: ignore[union-attr]  # start the commit_ms timer
        await fut
        return rows

    async def append_events(self, events: list, urgent: bool = False) -> dict[str, Any]:
        """Encode and store events sent as objects or mappings (slow path; bad input refused)."""
        loop = asyncio.get_running_loop()
        await self.flush()
        res = await loop.run_in_executor(self._exec, lambda: self.store.append_events(events, stored_ns=time.time_ns()))
        return {"stored": res.stored, "duplicates": res.duplicates, "refused": [str(r) for r in res.refused]}

    async def flush(self) -> None:
        """Commit whatever is queued now and return when it is committed."""
        if self._queue:
            await self.append(ARROW_SCHEMA.empty_table(), urgent=True)

    async def read_events(self, kinds: list[str] | None = None, since_ns: int | None = None,
                          decision_ids: list[str] | None = None, limit: int | None = None) -> list[Event]:
        """This shard's events matching the filters, in time order (``ts_ns``, then ``event_id``).

        Whatever is queued is committed first, so an event acknowledged before this call (and
        any batch whose ``append`` arrived before it) is returned. The query runs on the
        shard's writer thread, between commits. Readers on other actors merge all shards with
        :func:`xmc_actors.ledger.reader.read_trail`.

        Parameters
        ----------
        kinds
            ``EventKind`` values to return; ``None``: all.
        since_ns
            Only events with ``ts_ns >= since_ns``.
        decision_ids
            Only events of these decision ids; ``None``: all.
        limit
            At most this many, the oldest.

        Raises
        ------
        ValueError
            A bad filter, naming the field and the reason.
        """
        check_filters(kinds, since_ns, decision_ids, limit)
        await self.flush()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._exec, lambda: self.store.read(lambda con: query_events(con, kinds, since_ns, decision_ids, limit)))

    async def stats(self) -> dict[str, Any]:
        s = asdict(self.store.stats)
        s.update(shard=self.shard, pid=os.getpid(), queued_rows=self._rows, commits=self.commits,
                 commit_errors=self.commit_errors, reconstructed=self.reconstructed,
                 wal_bytes=self.store.wal_bytes(), path=str(self.store.path))
        return s

    async def checkpoint(self) -> bool:
        """Checkpoint now (waits up to 5 s for readers holding the snapshot lock)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._exec, lambda: self.store.checkpoint(wait_s=5.0))

    # ------------------------------------------------------------------------------- writer
    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._writer is None:
            self._wake = asyncio.Event()
            self._writer = loop.create_task(self._write_loop())

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                continue
            if not self._urgent and self._rows < self.batch_size:
                remaining = self.commit_s - (time.monotonic() - self._oldest)
                if remaining > 0:
                    try:
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    except asyncio.TimeoutError:
                        pass
                    self._wake.clear()
            batch, self._queue, self._rows, self._urgent = self._queue, [], 0, False
            tables = [t for t, _ in batch if not isinstance(t, pa.Table) or t.num_rows]
            try:
                if tables:
                    await loop.run_in_executor(self._exec, self._commit, tables)
            except Exception as e:  # noqa: BLE001 - the callers get the error and re-send
                self.commit_errors += 1
                if self.commit_errors == 1 or self.commit_errors % 100 == 0:
                    log.error("ledger-%s: commit failed (%d so far; the clients re-send): %s: %s",
                              self.shard, self.commit_errors, type(e).__name__, e)
                for _, f in batch:
                    if not f.done():
                        f.set_exception(e)
                continue
            self.commits += 1
            for _, f in batch:
                if not f.done():
                    f.set_result(None)

    def _commit(self, tables: list[pa.Table | bytes]) -> None:
        self.store.append(tables, stored_ns=time.time_ns())
        self.store.maybe_checkpoint()


LedgerShardActor = ray.remote(LedgerShard)


def start_ledger(cfg: LedgerConfig, namespace: str | None = None, *, max_restarts: int = -1,
                 detached: bool = False, ready_timeout_s: float = 60.0) -> list[ray.actor.ActorHandle]:
    """Create (or find) the shard actors ``ledger-0 .. ledger-<n-1>`` and wait until they are ready.

    Parameters
    ----------
    cfg
        Ledger configuration: directory, shard count, flush interval and batch size.
    namespace
        Ray namespace for the named actors (default: the job's).
    max_restarts
        Restarts Ray makes after a shard process dies (-1: unlimited).
    detached
        Outlive the driver (deployments launched onto a cluster).
    """
    handles = []
    for i in range(cfg.shards):
        opts: dict[str, Any] = dict(name=f"ledger-{i}", get_if_exists=True, max_restarts=max_restarts,
                                    max_task_retries=0, num_cpus=0, max_concurrency=1000)
        if namespace:
            opts["namespace"] = namespace
        if detached:
            opts["lifetime"] = "detached"
        handles.append(LedgerShardActor.options(**opts).remote(str(shard_path(cfg, i)), i, cfg.commit_ms, cfg.batch_size))
    refs = [h.ready.remote() for h in handles]
    ready, pending = ray.wait(refs, num_returns=len(refs), timeout=ready_timeout_s)
    if pending:
        raise TimeoutError(f"ledger: {len(pending)} of {len(refs)} shards not ready after {ready_timeout_s:.0f} s")
    ray.get(ready)  # raise a shard's start-up error (e.g. a corrupt file) here, by name
    return handles
