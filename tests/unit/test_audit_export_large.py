"""``xmc audit export`` of large ledgers: streamed, in bounded memory, every event written once,
in time order, with the content the ledger holds.

The ledgers are real shard files (``LedgerStore.append``, the store's own write path) built by
:func:`xmc_actors.bench.ledger_data.build_ledger` from the synthetic session's encoded events,
replicated column-wise (a million events in about four seconds).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from xmc_actors.bench.ledger_data import build_ledger
from xmc_actors.ledger.audit import AuditReader, Filters, fmt_ns
from xmc_actors.ledger.schema import payload_json
from xmc_actors.ops.cli import main

N = 250_000


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("large-ledgers")
    out = {}
    for n in (N, 4 * N):
        build_ledger(root / f"l{n}" / "shard-0.duckdb", n)
        out[n] = root / f"l{n}"
    return out


def _peak_rss_mb(args: list[str], cwd: Path) -> tuple[float, str]:
    """Peak RSS (MB) of ``xmc ARGS`` run as a child of a fresh process, measured there with
    ``getrusage(RUSAGE_CHILDREN)`` (the largest child it waited for: only this one)."""
    code = textwrap.dedent(f"""
        import resource, subprocess, sys
        r = subprocess.run([sys.executable, "-m", "xmc_actors.ops.cli", *{args!r}], capture_output=True, text=True)
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        print(r.returncode)
        print(r.stdout + r.stderr)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert out.returncode == 0, out.stderr
    rss_kb, rc, text = out.stdout.split("\n", 2)
    assert rc.strip() == "0", text
    return int(rss_kb) / 1024, text


def _export_args(ledger: Path, out: Path, *extra: str) -> list[str]:
    return ["audit", "export", "--ledger", str(ledger), "--format", "csv", "-o", str(out), "--no-progress",
            "--memory-limit", "64MB", *extra]


def test_export_memory_does_not_grow_with_the_ledger(ledgers, tmp_path):
    # Arrange: the same export of N and 4N events, and of none (what the process costs anyway)
    base, _ = _peak_rss_mb(_export_args(ledgers[N], tmp_path / "none.csv", "--kind", "BAD_INPUT"), tmp_path)
    # Act
    small, said_small = _peak_rss_mb(_export_args(ledgers[N], tmp_path / "small.csv"), tmp_path)
    large, said_large = _peak_rss_mb(_export_args(ledgers[4 * N], tmp_path / "large.csv"), tmp_path)
    # Assert: 4x the events, nowhere near 4x the memory (building the file in memory, as the
    # export did, took 1.2 GB for 1M events here)
    assert f"{N:,} events" in said_small and f"{4 * N:,} events" in said_large
    growth_small, growth_large = small - base, large - base
    assert large < 1.5 * small, (base, small, large)
    assert growth_large < 2 * growth_small, (base, small, large)
    assert large < 1024


def test_a_large_csv_export_holds_every_event_once_in_time_order_with_its_content(ledgers, tmp_path):
    # Arrange
    ledger, out = ledgers[4 * N], tmp_path / "all.csv"
    # Act
    rc = main(_export_args(ledger, out))
    # Assert: read back with DuckDB, beside the ledger itself
    assert rc == 0
    con = duckdb.connect()
    con.execute(f"ATTACH '{ledger / 'shard-0.duckdb'}' AS l (READ_ONLY)")
    con.execute(f"CREATE VIEW x AS SELECT * FROM read_csv('{out}', header = true, all_varchar = true)")
    (n, distinct), = con.execute("SELECT count(*), count(DISTINCT event_id) FROM x").fetchall()
    assert n == distinct == 4 * N
    by_kind = dict(con.execute("SELECT kind, count(*) FROM x GROUP BY 1").fetchall())
    assert by_kind == dict(con.execute("SELECT kind, count(*) FROM l.events GROUP BY 1").fetchall())
    # every column as the ledger holds it (payload: msgpack decoded to JSON text)
    mismatched = con.execute(
        "SELECT count(*) FROM x JOIN l.events e USING (event_id) WHERE x.ts_ns::BIGINT != e.ts_ns "
        "OR x.kind != e.kind OR coalesce(x.decision_id, '') != coalesce(e.decision_id, '') "
        "OR coalesce(x.order_id, '') != coalesce(e.order_id, '') "
        "OR coalesce(x.latency_us::DOUBLE, -1) != coalesce(e.latency_us, -1)").fetchall()[0][0]
    assert mismatched == 0
    sample = con.execute("SELECT x.event_id, x.time_utc, x.payload, e.ts_ns, e.payload FROM x JOIN l.events e "
                         "USING (event_id) USING SAMPLE 2000 ROWS").fetchall()
    assert sample and all(t == fmt_ns(ts) and p == payload_json(blob) for _, t, p, ts, blob in sample)
    # time order (ts_ns, then event_id), as written
    rows = con.execute("SELECT ts_ns::BIGINT, event_id FROM x").fetchall()
    assert all(a <= b for a, b in zip(rows, rows[1:]))


def test_parquet_and_json_exports_match_the_ledger_and_the_filters(ledgers, tmp_path):
    # Arrange
    ledger = ledgers[N]
    con = duckdb.connect()
    con.execute(f"ATTACH '{ledger / 'shard-0.duckdb'}' AS l (READ_ONLY)")
    fills = con.execute("SELECT count(*) FROM l.events WHERE kind = 'ORDER_REPORT' AND venue = 'LME'").fetchall()[0][0]
    seen: list[tuple[int, int]] = []
    # Act: small slices and batches, so the export takes many of each
    with AuditReader(ledger) as r:
        n_pq = r.export(tmp_path / "all.parquet", "parquet", progress=lambda d, t: seen.append((d, t)),
                        batch_rows=10_000, slice_rows=40_000)
        n_js = r.export(tmp_path / "lme.json", "json", Filters(kind=("ORDER_REPORT",), venue="LME"),
                        slice_rows=5_000)
        n_pj = r.export(tmp_path / "all-json.parquet", "parquet", payload="json")
    # Assert
    assert n_pq == n_pj == N and n_js == fills > 0
    t = pq.read_table(tmp_path / "all.parquet")
    assert t.num_rows == N and len(set(t.column("event_id").to_pylist())) == N
    keys = list(zip(t.column("ts_ns").to_pylist(), t.column("event_id").to_pylist()))
    assert keys == sorted(keys)
    same = con.execute(f"SELECT count(*) FROM read_parquet('{tmp_path / 'all.parquet'}') p JOIN l.events e "
                       "USING (event_id) WHERE p.payload = e.payload AND p.ts_ns = e.ts_ns").fetchall()[0][0]
    assert same == N
    assert seen[0] == (0, N) and seen[-1] == (N, N) and len(seen) > N // 10_000
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    lines = (tmp_path / "lme.json").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == fills and {(r["kind"], r["venue"]) for r in rows} == {("ORDER_REPORT", "LME")}
    blob = dict(con.execute("SELECT event_id, payload FROM l.events WHERE event_id IN (SELECT unnest(?))",
                            [[r["event_id"] for r in rows[:50]]]).fetchall())
    assert all(r["payload"] == payload_json(blob[r["event_id"]]) and r["time_utc"] == fmt_ns(r["ts_ns"])
               for r in rows[:50])
    pj = pq.read_table(tmp_path / "all-json.parquet", columns=["payload"]).column("payload")
    assert str(pj.type) == "string" and all(json.loads(p) is not None for p in pj.slice(0, 100).to_pylist())


def test_an_export_of_nothing_writes_an_empty_file_with_the_columns(ledgers, tmp_path):
    with AuditReader(ledgers[N]) as r:
        n = r.export(tmp_path / "none.csv", "csv", Filters(kind=("BAD_INPUT",)))
    assert n == 0
    assert (tmp_path / "none.csv").read_text().splitlines()[0].split(",")[:3] == ['"event_id"', '"time_utc"', '"ts_ns"']


def test_a_memory_limit_that_is_not_a_size_is_refused(ledgers, tmp_path, capsys):
    rc = main(["audit", "export", "--ledger", str(ledgers[N]), "--format", "csv", "-o", str(tmp_path / "x.csv"),
               "--memory-limit", "lots"])
    assert rc == 2 and "--memory-limit" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
