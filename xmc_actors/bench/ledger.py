"""Ledger benchmark: ingest rate, trace on a large ledger, Parquet export.

Metrics (all measured in the same run):
- ``ledger_ingest_events_per_s``: one shard's store path — pre-encoded Arrow batches of
  ``batch_size`` events validated, de-duplicated against the table (``event_id`` anti-join) and
  committed (WAL synced) one transaction per batch. This is what a shard sustains; encoding is
  done by the writers in their own processes.
- ``ledger_small_commit_cpu_us_threads_{1,2}``: CPU of one commit of a 15-event batch (what a
  shard commits when the desk is quiet), all of the process's threads counted, on a store of
  100k events with one and with two DuckDB threads; ``ledger_small_commit_threads_1_vs_2_ratio``.
  A commit costs milliseconds whatever its size: why a shard gathers ``commit_ms``.
- ``ledger_encode_events_per_s``: the writer-side codec (Event → msgpack payload + Arrow).
- ``ledger_encode_append_events_per_s``: codec and store in one thread, one after the other.
- ``floor_duckdb_append_events_per_s``: plain ``INSERT`` of the same Arrow batches into a table
  with no validation and no de-duplication (what DuckDB alone does here).
- ``ledger_actor_ingest_events_per_s``: end to end from a remote writer (a Ray actor holding a
  ``LedgerClient``) through the shard actor, until every event is acknowledged.
- ``ledger_trace_ms_10m`` (``_1m`` in quick mode): median of 20 ``AuditReader.trace`` calls (the
  code path of ``xmc audit trace``) of random decisions on an open reader of a ledger of that
  size; ``ledger_trace_cold_ms_*``: open the reader on the directory and trace one decision (the
  CLI's whole cost when no writer holds the file); ``ledger_trace_snapshot_ms_*``: the same while
  a writer process holds the shard, so the reader takes its snapshot copy first (WAL then file:
  ``ledger_snapshot_copy_ms_*`` of that alone); ``ledger_trace_ms_*_art_index``: the open-reader
  trace on a copy of the same file with a DuckDB ART index on ``decision_id`` (the proposed
  fix; ``ledger_art_index_build_s_*`` to add it to an existing file), and
  ``ledger_ingest_events_per_s_art_index`` / ``ledger_ingest_art_index_ratio``: what the index
  costs the store's write path (same batches as ``ledger_ingest_events_per_s``).
- ``ledger_export_parquet_s_1m`` (``_200k`` in quick mode): ``AuditReader.export(..., "parquet")``,
  the path of ``xmc audit export --format parquet`` (payload kept as msgpack bytes).
- ``ledger_export_{csv,parquet}_events_per_s_10m`` and ``ledger_export_{csv,parquet}_peak_rss_mb_10m``
  (``_1m`` in quick mode): the ``xmc audit export`` command itself, in its own process, on the
  large ledger: events written per second and the process's peak resident memory (the export
  streams; the target is under 1 GB for 10M events, ``ledger_export_rss_target_mb``; it built
  the whole file in memory before, 7.4 GB for a 10M CSV). CSV decodes every payload to JSON.
- ``ledger_report_s_10m``, ``ledger_report_kib_10m``, ``ledger_report_peak_rss_mb_10m``: ``xmc audit
  report`` of the same ledger: time, size of the HTML (aggregated: under 2 MB for any ledger) and
  peak memory.

The large ledgers are built by :mod:`xmc_actors.bench.ledger_data`: the seeded synthetic
session's decisions encoded once by the real codec, replicated column-wise in Arrow with fresh
event ids (time-ordered, unique), decision ids (``{strategy}-{seq:08d}``, about 11 events each),
parent and order ids, the templates' pre-encoded msgpack payloads, and loaded through
``LedgerStore.append`` (the shard store's own validation, de-duplication and commit) in chunks
of 1M rows. Full mode caches the 10M file under
``bench-results/cache/ledger-10m-schema<version>-gen<version>/`` (``ledger_build_s_10m`` is
reported on the run that builds it, about a minute); quick mode builds its 1M file in seconds.
"""
from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from ..ledger.audit import AuditReader
from ..ledger.schema import DDL, encode_events
from ..ledger.store import LedgerStore, snapshot_copy
from ..ledger.synthetic import synthetic_session
from ..runtime.config import PROJECT_ROOT
from .ledger_data import build_ledger, cached_ledger

ART_INDEX_DDL = "CREATE INDEX IF NOT EXISTS events_decision ON events(decision_id)"


def _events(n: int, seed: int = 1) -> list:
    out = []
    for e in synthetic_session(n // 11 + 1, seed=seed, gap_ms=0.02):
        out.append(e)
        if len(out) >= n:
            break
    return out


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


def _sample_decisions(r: AuditReader, n: int) -> list[str]:
    decs = [d for (d,) in r.con.execute(
        "SELECT decision_id FROM (SELECT decision_id FROM events WHERE decision_id != '') "
        "USING SAMPLE reservoir(200 ROWS) REPEATABLE (7)").fetchall()]
    random.Random(3).shuffle(decs)
    return decs[:n]


def _trace_ms(ledger_dir: Path, n: int = 20) -> tuple[float, list[str]]:
    """Median trace time on an open reader, and the decisions traced."""
    with AuditReader(ledger_dir) as r:
        decs = _sample_decisions(r, n + 1)
        r.trace(decs[-1])  # warm
        times = []
        for d in decs[:n]:
            t0 = time.perf_counter()
            tr = r.trace(d)
            times.append((time.perf_counter() - t0) * 1000)
            assert len(tr.hops) >= 3, f"trace of {d}: {len(tr.hops)} events"
    return statistics.median(times), decs[:n]


def _cold_trace_ms(ledger_dir: Path, decision: str) -> float:
    """Open a reader on the directory and trace one decision (what one ``xmc audit trace`` does)."""
    t0 = time.perf_counter()
    with AuditReader(ledger_dir) as r:
        tr = r.trace(decision)
        ms = (time.perf_counter() - t0) * 1000
        assert tr.hops
    return ms


def _snapshot_trace_ms(ledger_dir: Path, decisions: list[str]) -> tuple[float, float]:
    """Cold trace while another process holds the shard as its writer: (trace incl. snapshot, copy alone)."""
    shard = ledger_dir / "shard-0.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from xmc_actors.ledger.store import LedgerStore; "
         f"s = LedgerStore({str(shard)!r}); print('held', flush=True); sys.stdin.read(); s.con.close()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(PROJECT_ROOT))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        totals, copies = [], []
        for d in decisions[:3]:
            t0 = time.perf_counter()
            with AuditReader(ledger_dir) as r:
                assert r.snapshots, "the writer holds the file: the reader must have copied it"
                assert r.trace(d).hops
                totals.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            snap = snapshot_copy(shard)
            copies.append((time.perf_counter() - t0) * 1000)
            shutil.rmtree(snap.parent, ignore_errors=True)
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(timeout=60)
    return statistics.median(totals), statistics.median(copies)


def _cli_peak(args: list[str], timeout_s: float = 1800) -> tuple[float, float, str]:
    """``xmc ARGS`` in its own process: (seconds, peak RSS in MB, its output). The child's peak
    is read with ``getrusage(RUSAGE_CHILDREN)`` in a fresh parent that runs only it."""
    code = ("import resource, subprocess, sys, time\n"
            "t0 = time.perf_counter()\n"
            f"r = subprocess.run([sys.executable, '-m', 'xmc_actors.ops.cli', *{args!r}], capture_output=True, text=True)\n"
            "print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)\n"
            "print(r.stdout + r.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s,
                         cwd=str(PROJECT_ROOT))
    head, _, text = out.stdout.partition("\n")
    secs, rss_kb, rc = head.split()
    if out.returncode != 0 or rc != "0":
        raise RuntimeError(f"xmc {' '.join(args)} failed: {text}{out.stderr}")
    return float(secs), int(rss_kb) / 1024, text


def _export_and_report(ledger_dir: Path, tmp: Path, n: int, tag: str) -> dict[str, float]:
    """``xmc audit export`` (csv, parquet) and ``xmc audit report`` of a large ledger, each in its
    own process: rate or time, and peak memory."""
    out: dict[str, float] = {}
    for fmt in ("csv", "parquet"):
        target = tmp / f"export.{fmt}"
        secs, rss, text = _cli_peak(["audit", "export", "--ledger", str(ledger_dir), "--format", fmt, "-o", str(target),
                                     "--no-progress"])
        assert f"{n:,} events" in text, text
        out[f"ledger_export_{fmt}_events_per_s_{tag}"] = n / secs
        out[f"ledger_export_{fmt}_peak_rss_mb_{tag}"] = rss
        target.unlink(missing_ok=True)
    page = tmp / "report.html"
    secs, rss, _ = _cli_peak(["audit", "report", "--ledger", str(ledger_dir), "-o", str(page)])
    out[f"ledger_report_s_{tag}"] = secs
    out[f"ledger_report_kib_{tag}"] = page.stat().st_size / 1024
    out[f"ledger_report_peak_rss_mb_{tag}"] = rss
    out["ledger_export_rss_target_mb"] = 1024.0
    out["ledger_report_kib_target"] = 2048.0
    return out


def _indexed_copy(src_dir: Path, dst_dir: Path) -> float:
    """A copy of a ledger with an ART index on ``decision_id``; returns the index build time (s)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src_dir / "shard-0.duckdb", dst_dir / "shard-0.duckdb")
    con = duckdb.connect(str(dst_dir / "shard-0.duckdb"), config={"threads": 2})
    try:
        con.execute("SET enable_progress_bar = false")
        t0 = time.perf_counter()
        con.execute(ART_INDEX_DDL)
        secs = time.perf_counter() - t0
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return secs


def _ingest_with_index(tmp: Path, events: list, batch_size: int) -> float:
    """The store path of ``ledger_ingest_events_per_s`` into a table that has the ART index."""
    encoded = [encode_events(events[i:i + batch_size]).table for i in range(0, len(events), batch_size)]
    store = LedgerStore(tmp / "ingest-idx.duckdb")
    store.con.execute(ART_INDEX_DDL)
    t0 = time.perf_counter()
    for t in encoded:
        store.append(t, stored_ns=1)
    secs = time.perf_counter() - t0
    store.close()
    return len(events) / secs


def _small_commits(tmp: Path, events: list, n: int = 300, rows: int = 15) -> dict[str, float]:
    """CPU (all the process's threads: DuckDB's own included) per commit of a small batch, what a
    shard commits when the desk is quiet, on a store of 100k events, with one DuckDB thread and
    with two: both measured here, commits alternating between the two stores."""
    stores = {t: LedgerStore(tmp / f"small-{t}.duckdb", threads=t) for t in (1, 2)}
    for st in stores.values():
        for i in range(0, 100_000, 5_000):
            st.append(encode_events(events[i:i + 5_000]).table, stored_ns=1)
    batches = [encode_events(events[100_000 + i * rows:100_000 + (i + 1) * rows]).table for i in range(n)]
    cpu = {1: 0.0, 2: 0.0}
    for b in batches:
        for t, st in stores.items():
            c = time.process_time()
            st.append(b, stored_ns=2)
            cpu[t] += time.process_time() - c
    for st in stores.values():
        st.close()
    return {"ledger_small_commit_cpu_us_threads_1": cpu[1] / n * 1e6,
            "ledger_small_commit_cpu_us_threads_2": cpu[2] / n * 1e6,
            "ledger_small_commit_threads_1_vs_2_ratio": cpu[1] / cpu[2]}


def run(quick: bool) -> dict[str, float]:
    """Run the ledger benchmark; ``quick`` uses a 1M-event ledger and a 200k export (names say so)."""
    out: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="xmc-bench-ledger-"))
    try:
        n_ingest = 200_000 if quick else 1_000_000
        events = _events(n_ingest)
        out.update(_ingest(tmp, events, 5_000))
        out.update(_small_commits(tmp, events))
        out["ledger_ingest_ratio"] = out["ledger_ingest_events_per_s"] / out["floor_duckdb_append_events_per_s"]
        out["ledger_ingest_events_per_s_art_index"] = _ingest_with_index(tmp, events, 5_000)
        out["ledger_ingest_art_index_ratio"] = out["ledger_ingest_events_per_s_art_index"] / out["ledger_ingest_events_per_s"]
        out["ledger_actor_ingest_events_per_s"] = _actor_ingest(tmp, 100_000 if quick else 500_000)

        size, tag = (1_000_000, "1m") if quick else (10_000_000, "10m")
        if quick:
            big = tmp / "big"
            build = build_ledger(big / "shard-0.duckdb", size)
        else:
            big, build = cached_ledger(PROJECT_ROOT / "bench-results" / "cache", size)
        if build:
            out[f"ledger_build_s_{tag}"] = build["total_s"]
        out[f"ledger_trace_ms_{tag}"], decs = _trace_ms(big)
        out[f"ledger_trace_cold_ms_{tag}"] = _cold_trace_ms(big, decs[0])
        out[f"ledger_trace_snapshot_ms_{tag}"], out[f"ledger_snapshot_copy_ms_{tag}"] = _snapshot_trace_ms(big, decs)
        idx_dir = tmp / "big-indexed"
        out[f"ledger_art_index_build_s_{tag}"] = _indexed_copy(big, idx_dir)
        out[f"ledger_trace_ms_{tag}_art_index"], _ = _trace_ms(idx_dir)
        out[f"ledger_trace_cold_ms_{tag}_art_index"] = _cold_trace_ms(idx_dir, decs[1])
        shutil.rmtree(idx_dir, ignore_errors=True)
        out["ledger_trace_target_ms"] = 50.0
        out.update(_export_and_report(big, tmp, size, tag))

        n_exp, etag = (200_000, "200k") if quick else (1_000_000, "1m")
        exp_src = tmp / "exp"
        build_ledger(exp_src / "shard-0.duckdb", n_exp)
        with AuditReader(exp_src) as r:
            t0 = time.perf_counter()
            n = r.export(tmp / "out.parquet", "parquet")
            out[f"ledger_export_parquet_s_{etag}"] = time.perf_counter() - t0
            assert n == n_exp
        out["ledger_export_parquet_target_s_1m"] = 3.0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
