"""Large benchmark ledgers built fast: real synthetic trails replicated column-wise in Arrow.

Building a 10-million-event shard event by event (``synthetic_session`` → ``Event`` →
``encode_events``) costs about 25 minutes of Python. This module builds the same kind of file in
about a minute, and says exactly how:

1. **Templates**: ``TEMPLATE_DECISIONS`` decisions of the seeded synthetic session
   (:func:`xmc_actors.ledger.synthetic.synthetic_session`, about 11 events per decision: kinds,
   outcome mix, parent chains, actors, latencies and msgpack payloads exactly as written by the
   real codec :func:`xmc_actors.ledger.schema.encode_events`), sorted by time.
2. **Replication, vectorised (pyarrow.compute, no per-row Python)**: replica ``r`` is the
   template shifted by ``r`` template spans in time. Every replica gets fresh identities:
   ``event_id`` regenerated in the UUIDv7 layout of :class:`~xmc_actors.core.clock.EventIdGenerator`
   from its shifted time with a global sequence number (unique, strictly increasing with time),
   ``decision_id`` in the runtime's ``{strategy}-{seq:08d}`` form (per-strategy sequence
   continuing across replicas), ``parent_id`` re-pointed to the replica's own parent event,
   ``order_id`` rebuilt from the new decision id (``{decision_id}:{leg}:{attempt}``).
   The payload bytes are the template's pre-encoded msgpack (so ids *inside* payloads, such
   as ``client_order_id``, still name the template decision: the typed columns are what the
   queries filter on).
3. **Load**: chunks of ``CHUNK_ROWS`` rows go through :meth:`LedgerStore.append` — the shard
   store's own bulk path (schema check, validation, in-batch de-duplication, ``event_id``
   anti-join, one committed transaction per chunk) — into a file created by ``LedgerStore``,
   then ``LedgerStore.close()`` checkpoints it.

Files are cached under ``bench-results/cache/`` keyed by size, ledger schema version and this
generator's version (:func:`cached_ledger`); a build writes to a temporary directory and is
renamed into place only when complete.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..ledger.schema import ARROW_SCHEMA, SCHEMA_VERSION, encode_events
from ..ledger.store import LedgerStore
from ..ledger.synthetic import synthetic_session

GENERATOR_VERSION = 2  # 2: terminal PAIR_STATEs carry unhedged_ms
TEMPLATE_DECISIONS = 3_000
CHUNK_ROWS = 1_000_000
START_NS = 1_767_000_000_000_000_000
_HEX2 = pa.array([f"{i:02x}" for i in range(256)], pa.string())
_HEX1 = pa.array([f"{i:x}" for i in range(16)], pa.string())


def _hex_bytes(values: pa.Array, nbytes: int) -> list[pa.Array]:
    """Big-endian two-digit hex strings of the low ``nbytes`` bytes of an int64 array."""
    out = []
    for k in range(nbytes - 1, -1, -1):
        byte = pc.bit_wise_and(pc.shift_right(values, 8 * k), 0xFF)
        out.append(pc.take(_HEX2, byte))
    return out


def event_ids(ts_ns: pa.Array, seq: pa.Array, node: pa.Array) -> pa.Array:
    """UUIDv7-layout ids (32 hex digits) as :class:`EventIdGenerator` makes them, vectorised.

    ``ms`` (48 bits) · version ``7`` · ``seq`` (32 bits) · ``node`` (44 bits).
    """
    ms = pc.divide(ts_ns, 1_000_000)
    parts = _hex_bytes(ms, 6) + [pa.array(["7"] * len(ts_ns), pa.string())] + _hex_bytes(seq, 4)
    parts.append(pc.take(_HEX1, pc.bit_wise_and(pc.shift_right(node, 40), 0xF)))
    parts += _hex_bytes(node, 5)
    return pc.binary_join_element_wise(*parts, "")


class Template:
    """The synthetic session's decisions as Arrow columns plus what replication needs."""

    def __init__(self, n_decisions: int = TEMPLATE_DECISIONS, seed: int = 11) -> None:
        events = sorted(synthetic_session(n_decisions, seed=seed, start_ns=START_NS, gap_ms=0.02),
                        key=lambda e: (e.ts_ns, e.event_id))
        t = encode_events(events).table
        self.table = t
        self.rows = t.num_rows
        ts = t.column("ts_ns").to_pylist()
        self.span_ns = ts[-1] - ts[0] + 1_000_000  # replicas never overlap in time
        self.ts = pa.array([x - ts[0] for x in ts], pa.int64())
        ids = t.column("event_id").to_pylist()
        pos = {e: i for i, e in enumerate(ids)}
        self.node = pa.array([int(e, 16) & 0xFFF_FFFF_FFFF for e in ids], pa.int64())
        self.parent_idx = pa.array([pos.get(p) if p else None for p in t.column("parent_id").to_pylist()], pa.int64())
        # decisions renamed {strategy}-{seq:08d}: per strategy, the k-th decision of the template
        dec_rows = list(zip(t.column("decision_id").to_pylist(), t.column("strategy").to_pylist()))
        order: dict[str, tuple[str, int]] = {}
        per_strategy: dict[str, int] = {}
        for d, s in dec_rows:
            if d and d not in order:
                order[d] = (s, per_strategy.get(s, 0))
                per_strategy[s] = per_strategy.get(s, 0) + 1
        self.per_strategy = per_strategy
        self.dec_strategy = pa.array([order[d][0] if d else None for d, _ in dec_rows], pa.string())
        self.dec_k = pa.array([order[d][1] if d else None for d, _ in dec_rows], pa.int64())
        self.dec_n = pa.array([per_strategy[order[d][0]] if d else None for d, _ in dec_rows], pa.int64())
        oids = t.column("order_id").to_pylist()
        self.oid_suffix = pa.array([o[len(d):] if o and d and o.startswith(d) else None
                                    for o, (d, _) in zip(oids, dec_rows)], pa.string())
        self.oid_other = pa.array([o if o and not (d and o.startswith(d)) else ("" if o == "" else None)
                                   for o, (d, _) in zip(oids, dec_rows)], pa.string())

    def replicas(self, first: int, count: int, seq0: int) -> pa.Table:
        """Replicas ``first .. first+count-1`` as one Arrow table with :data:`ARROW_SCHEMA`."""
        n = self.rows
        t = pa.concat_tables([self.table] * count)
        reps = pa.array([first + r for r in range(count) for _ in range(n)], pa.int64())
        tile = lambda a: pa.concat_arrays([a] * count)  # noqa: E731
        ts = pc.add(pc.add(tile(self.ts), pc.multiply(reps, self.span_ns)), START_NS)
        seq = pa.array(range(seq0, seq0 + n * count), pa.int64())
        ids = event_ids(ts, seq, tile(self.node))
        # decision ids: strategy-{(rep * per_strategy + k):08d}
        dseq = pc.add(pc.multiply(reps, tile(self.dec_n)), tile(self.dec_k))
        dec = pc.binary_join_element_wise(tile(self.dec_strategy), pc.utf8_lpad(pc.cast(dseq, pa.string()), 8, "0"),
                                          "-")
        pidx = tile(self.parent_idx)
        base = pc.multiply(pc.subtract(reps, first), n)
        parent = pc.take(ids, pc.add(pidx, base))
        oid = pc.coalesce(pc.binary_join_element_wise(dec, tile(self.oid_suffix), ""), tile(self.oid_other))
        cols = {"event_id": ids, "ts_ns": ts, "decision_id": pc.coalesce(dec, ""), "parent_id": pc.coalesce(parent, ""),
                "order_id": oid}
        arrays = [cols[f.name] if f.name in cols else t.column(f.name) for f in ARROW_SCHEMA]
        return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)


def build_ledger(path: Path, n_events: int, *, chunk_rows: int = CHUNK_ROWS) -> dict[str, float]:
    """Write a shard file of exactly ``n_events`` events through ``LedgerStore.append``; returns timings."""
    t0 = time.perf_counter()
    tpl = Template()
    t_tpl = time.perf_counter() - t0
    store = LedgerStore(path)
    per_chunk = max(1, chunk_rows // tpl.rows)
    made, rep, gen_s, app_s = 0, 0, 0.0, 0.0
    while made < n_events:
        t1 = time.perf_counter()
        batch = tpl.replicas(rep, per_chunk, made)
        if made + batch.num_rows > n_events:
            batch = batch.slice(0, n_events - made)
        t2 = time.perf_counter()
        res = store.append(batch, stored_ns=0)
        app_s += time.perf_counter() - t2
        gen_s += t2 - t1
        if res.refused or res.stored != batch.num_rows:
            store.close()
            raise RuntimeError(f"bench ledger build: store refused {len(res.refused)} / stored {res.stored} "
                               f"of {batch.num_rows} rows ({res.refused[:1]})")
        made += batch.num_rows
        rep += per_chunk
    t3 = time.perf_counter()
    store.close()  # checkpoint: the file holds everything, no WAL left
    return {"template_s": t_tpl, "generate_s": gen_s, "append_s": app_s, "checkpoint_s": time.perf_counter() - t3,
            "total_s": time.perf_counter() - t0}


def cache_dir(root: Path, n_events: int) -> Path:
    tag = f"{n_events // 1_000_000}m" if n_events % 1_000_000 == 0 else str(n_events)
    return root / f"ledger-{tag}-schema{SCHEMA_VERSION}-gen{GENERATOR_VERSION}"


def cached_ledger(root: Path, n_events: int) -> tuple[Path, dict[str, float]]:
    """The directory of a cached ``n_events`` ledger (built now if missing) and the build timings ({} if cached)."""
    d = cache_dir(root, n_events)
    if (d / "shard-0.duckdb").exists():
        return d, {}
    tmp = d.with_name(d.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    timings = build_ledger(tmp / "shard-0.duckdb", n_events)
    tmp.rename(d)
    return d, timings
