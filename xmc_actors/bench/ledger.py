"""Ledger benchmark: ingest rate, trace on a large ledger, Parquet export.

Metrics (all measured in the same run):
- ``ledger_ingest_events_per_s``: one shard's store path — pre-encoded Arrow batches of
  ``batch_size`` events validated, de-duplicated against the table (``event_id`` anti-join) and
  committed (WAL synced) one transaction per batch. This is what a shard sustains; encoding is
  done by the writers in their own processes.
- ``ledger_encode_events_per_s``: the writer-side codec (Event → msgpack payload + Arrow).
- ``ledger_encode_append_events_per_s``: codec and store in one thread, one after the other.
- ``floor_duckdb_append_events_per_s``: plain ``INSERT`` of the same Arrow batches into a table
  with no validation and no de-duplication (what DuckDB alone does here).
- ``ledger_actor_ingest_events_per_s``: end to end from a remote writer (a Ray actor holding a
  ``LedgerClient``) through the shard actor, until every event is acknowledged.
- ``ledger_trace_ms_10m`` (``_1m`` in quick mode): median of 20 traces of random decisions on a
  ledger of that size built from the synthetic session (about 11 events per decision);
  full mode caches the 10M file under ``bench-results/cache/``.
- ``ledger_export_parquet_s_1m`` (``_200k`` in quick mode): ``xmc audit export --format
  parquet`` of that many events (payload kept as msgpack bytes).
"""
from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from ..ledger.audit import AuditReader
from ..ledger.schema import DDL, encode_events
from ..ledger.store import LedgerStore
from ..ledger.synthetic import synthetic_session
from ..runtime.config import PROJECT_ROOT


def _events(n: int, seed: int = 1) -> list:
    out = []
    for e in synthetic_session(n // 11 + 1, seed=seed, gap_ms=0.02):
        out.append(e)
        if len(out) >= n:
            break
    return out


def _build(path: Path, n: int, batch: int = 50_000) -> None:
    """A ledger file of ``n`` synthetic events (ids unique across chunks)."""
    store = LedgerStore(path)
    made, seed = 0, 0
    while made < n:
        seed += 1
        chunk = []
        for e in synthetic_session(batch // 11 + 1, seed=seed, start_ns=1_767_000_000_000_000_000 + seed * 10**13,
                                   gap_ms=0.02):
            chunk.append(e.model_copy(update={"decision_id": f"{e.decision_id}-{seed}"}))
            if len(chunk) >= min(batch, n - made):
                break
        store.append(encode_events(chunk).table, stored_ns=0)
        made += len(chunk)
    store.close()


def _ingest(tmp: Path, events: list, batch_size: int) -> dict[str, float]:
    batches = [events[i:i + batch_size] for i in range(0, len(events), batch_size)]
    t0 = time.perf_counter()
    encoded = [encode_events(b).table for b in batches]
    enc_s = time.perf_counter() - t0
    store = LedgerStore(tmp / "ingest.duckdb")
    t0 = time.perf_counter()
    for t in encoded:
        store.append(t, stored_ns=1)
    app_s = time.perf_counter() - t0
    assert store.count() == len(events)
    store.close()
    store2 = LedgerStore(tmp / "ingest2.duckdb")
    t0 = time.perf_counter()
    for b in batches:
        store2.append(encode_events(b).table, stored_ns=1)
    both_s = time.perf_counter() - t0
    store2.close()
    con = duckdb.connect(str(tmp / "floor.duckdb"))
    con.execute(DDL)
    t0 = time.perf_counter()
    for t in encoded:
        con.execute("BEGIN")
        con.register("_b", t)
        con.execute("INSERT INTO events SELECT *, 1 FROM _b")
        con.execute("COMMIT")
    floor_s = time.perf_counter() - t0
    con.close()
    n = len(events)
    return {"ledger_ingest_events_per_s": n / app_s, "ledger_encode_events_per_s": n / enc_s,
            "ledger_encode_append_events_per_s": n / both_s, "floor_duckdb_append_events_per_s": n / floor_s}


def _actor_ingest(tmp: Path, n: int) -> float:
    import ray

    from ..core.clock import SystemClock
    from ..core.sink import EventMaker
    from ..ledger.actor import start_ledger
    from ..ledger.client import LedgerClient
    from ..model.config import LedgerConfig
    from ..model.events import EventKind

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, namespace="bench-ledger", log_to_driver=False)
    try:
        cfg = LedgerConfig(path=str(tmp / "actor"), shards=1, flush_ms=5, batch_size=5_000)
        handles = start_ledger(cfg, "bench-ledger")

        @ray.remote(num_cpus=0)
        class Writer:
            def __init__(self) -> None:
                self.client = LedgerClient(handles, cfg, actor="bench-writer")
                mk = EventMaker(SystemClock(), "bench")
                self.events = [mk.make(EventKind.ORDER_REPORT, decision_id=f"d{i // 10}", strategy="s",
                                       venue="SHFE", client_order_id=f"d{i // 10}:A:0", status="FILLED", qty=1)
                               for i in range(n)]

            def run(self) -> float:
                t0 = time.perf_counter()
                for i in range(0, len(self.events), 1000):
                    self.client.emit_many(self.events[i:i + 1000])
                self.client.flush(timeout=300)
                return time.perf_counter() - t0

        w = Writer.remote()
        secs = ray.get(w.run.remote())
        stored = ray.get(handles[0].stats.remote())["stored"]
        assert stored == n, f"actor ingest stored {stored} of {n}"
        for h in handles:
            ray.kill(h)
        ray.kill(w)
        return n / secs
    finally:
        if started:
            ray.shutdown()


def _trace_ms(path: Path, n_decisions_hint: int) -> float:
    with AuditReader(path) as r:
        decs = [d for (d,) in r.con.execute(
            "SELECT decision_id FROM (SELECT decision_id FROM events WHERE decision_id != '') USING SAMPLE 200 ROWS").fetchall()]
        random.Random(3).shuffle(decs)
        r.trace(decs[0])  # warm
        times = []
        for d in decs[:20]:
            t0 = time.perf_counter()
            tr = r.trace(d)
            times.append((time.perf_counter() - t0) * 1000)
            assert tr.hops
    return statistics.median(times)


def run(quick: bool) -> dict[str, float]:
    """Run the ledger benchmark; ``quick`` uses a 1M-event ledger and a 200k export (names say so)."""
    out: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="xmc-bench-ledger-"))
    try:
        n_ingest = 200_000 if quick else 1_000_000
        out.update(_ingest(tmp, _events(n_ingest), 5_000))
        out["ledger_ingest_ratio"] = out["ledger_ingest_events_per_s"] / out["floor_duckdb_append_events_per_s"]
        out["ledger_actor_ingest_events_per_s"] = _actor_ingest(tmp, 100_000 if quick else 500_000)

        size, tag = (1_000_000, "1m") if quick else (10_000_000, "10m")
        if quick:
            big = tmp / "big" / "shard-0.duckdb"
        else:
            big = PROJECT_ROOT / "bench-results" / "cache" / "ledger-10m" / "shard-0.duckdb"
        if not big.exists():
            big.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            _build(big, size)
            out[f"ledger_build_s_{tag}"] = time.perf_counter() - t0
        out[f"ledger_trace_ms_{tag}"] = _trace_ms(big, size // 11)

        n_exp, etag = (200_000, "200k") if quick else (1_000_000, "1m")
        exp_src = tmp / "exp" / "shard-0.duckdb"
        _build(exp_src, n_exp)
        with AuditReader(exp_src.parent) as r:
            t0 = time.perf_counter()
            n = r.export(tmp / "out.parquet", "parquet")
            out[f"ledger_export_parquet_s_{etag}"] = time.perf_counter() - t0
            assert n == n_exp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
