"""Read-only audit access to a ledger directory: trace a decision, query, export.

:class:`AuditReader` attaches every ``shard-*.duckdb`` of a ledger directory read-only to an
in-memory DuckDB and exposes them as one view ``events``. A shard held by a running writer
cannot be attached by another process; the reader then takes a consistent snapshot copy
(:func:`~xmc_actors.ledger.store.snapshot_copy`: shared checkpoint lock, WAL then file) and
reads that, so the commands work while a deployment runs and show it as of a recent commit.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import duckdb
import pyarrow as pa

from .schema import COLUMN_NAMES, TERMINAL_OUTCOMES, payload_json, unpack_payload
from .store import (
    LedgerError, LedgerFileError, check_header, check_ledger_tables, check_size, check_wal, is_lock_error, open_error,
    snapshot_copy,
)

_F = TypeVar("_F", bound=Callable[..., Any])


def _translating(fn: _F) -> _F:
    """A query method whose DuckDB failure caused by a damaged shard becomes a
    :class:`LedgerFileError` naming that shard (see :meth:`AuditReader.explain`)."""
    @functools.wraps(fn)
    def run(self: "AuditReader", *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except duckdb.Error as e:
            raise self.explain(e) from None
    return run  # type: ignore[return-value]


def _translating_call(reader: "AuditReader", fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, a DuckDB failure caused by a damaged shard of ``reader`` raised as the
    :class:`LedgerFileError` naming it (what :func:`_translating` does for methods)."""
    try:
        return fn(*args)
    except duckdb.Error as e:
        raise reader.explain(e) from None

# A pair's outcome is the state its coordinator's last PAIR_STATE gave it (ties on the clock
# broken by the time-ordered event id); only terminal ones here. Not RISK_DECISION: the risk
# guard's BOOKED record repeats the pair's state (lifted into the same column) milliseconds
# later, in another process, and taking its time as the pair's end added that delay to every
# "first fill to terminal state" the report measured.
PAIR_OUTCOME_SQL = f"""
SELECT decision_id, outcome, done_ns FROM (
  SELECT decision_id, arg_max(outcome, (ts_ns, event_id)) AS outcome, max(ts_ns) AS done_ns
  FROM events
  WHERE kind = 'PAIR_STATE' AND decision_id != ''
  GROUP BY decision_id)
WHERE outcome IN {TERMINAL_OUTCOMES!r}
"""

#: ``ts_ns`` as ``fmt_ns`` writes it, in SQL (UTC, microseconds)
TIME_UTC_SQL = "strftime(make_timestamp(ts_ns // 1000), '%Y-%m-%d %H:%M:%S.%f')"
#: rows per Arrow batch an export streams from DuckDB to its writer
EXPORT_BATCH_ROWS = 65_536
#: an export sorts the ledger in time slices, one after the other, of about one event per this
#: many bytes of the reader's memory limit (131k events for 256 MB): DuckDB's own sort of
#: everything at once needs memory that grows with the number of rows (10M events did not fit
#: in 128 MB), a slice's does not
EXPORT_SLICE_BYTES_PER_ROW = 2048
#: DuckDB's working memory for a reader; a sort or aggregate beyond it spills to a temporary
#: directory of the reader's own (an export of any size stays within a bounded footprint)
READER_MEMORY_LIMIT = "256MB"


def parse_time(text: str | int | None) -> int | None:
    """Nanoseconds since the epoch from an int (ns), or an ISO date/time (UTC unless it says)."""
    if text is None or text == "":
        return None
    if isinstance(text, int):
        return text
    s = str(text).strip()
    if s.lstrip("-").isdigit():
        return int(s)
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {s!r}: expected nanoseconds or an ISO date/time like 2025-03-01T09:30:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1_000_000) * 1000


def fmt_ns(ns: int | None) -> str:
    if ns is None:
        return ""
    t = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{(ns // 1000) % 1_000_000:06d}"


@dataclass(frozen=True)
class Filters:
    """Row filters of ``xmc audit query`` / ``export`` (empty = no filter)."""

    account: str = ""
    strategy: str = ""
    venue: str = ""
    instrument: str = ""
    kind: tuple[str, ...] = ()
    decision: str = ""
    since_ns: int | None = None
    until_ns: int | None = None
    outcome: str = ""  # the pair's terminal outcome (HEDGED, ROLLED_BACK, ESCALATED, REFUSED, OPEN)

    def where(self) -> tuple[str, list[Any]]:
        conds, params = [], []
        for col in ("account", "strategy", "venue", "instrument"):
            v = getattr(self, col)
            if v:
                conds.append(f"{col} = ?")
                params.append(v)
        if self.decision:
            conds.append("decision_id = ?")
            params.append(self.decision)
        if self.kind:
            conds.append(f"kind IN ({', '.join('?' for _ in self.kind)})")
            params += list(self.kind)
        if self.since_ns is not None:
            conds.append("ts_ns >= ?")
            params.append(self.since_ns)
        if self.until_ns is not None:
            conds.append("ts_ns < ?")
            params.append(self.until_ns)
        if self.outcome:
            if self.outcome.upper() == "OPEN":
                conds.append(f"decision_id != '' AND decision_id NOT IN (SELECT decision_id FROM ({PAIR_OUTCOME_SQL}))")
            else:
                conds.append(f"decision_id IN (SELECT decision_id FROM ({PAIR_OUTCOME_SQL}) WHERE outcome = ?)")
                params.append(self.outcome.upper())
        return (" WHERE " + " AND ".join(conds)) if conds else "", params


# An event stored within this of its own timestamp was stamped on the deployment's wall clock;
# one further off carries a venue's or a replay's market time (a replayed gateway's drop
# copies, a strategy following quote time, a backfilled reconciliation).
WALL_CLOCK_SLACK_NS = 3_600 * 1_000_000_000


@dataclass
class Hop:
    ts_ns: int
    kind: str
    actor: str
    venue: str
    instrument: str
    order_id: str
    outcome: str
    reason: str
    hop_us: float | None
    latency_us: float | None
    event_id: str
    parent_id: str
    payload: dict[str, Any]
    clock: str = "wall"  # "wall", or "market": stamped with a venue's / a replay's time


@dataclass
class Trace:
    """The chain of one decision in time order, with the latency of each hop and the outcome.

    When some events carry market time (a replay) and others wall time, hops are measured only
    between events of the same clock, and ``total_us`` spans the wall-clock events: a gap
    between the two clocks is years of replay, not a latency."""

    decision_id: str
    hops: list[Hop] = field(default_factory=list)
    outcome: str = "OPEN"

    @property
    def mixed_clocks(self) -> bool:
        return len({h.clock for h in self.hops}) > 1

    @property
    def total_us(self) -> float:
        hops = [h for h in self.hops if h.clock == "wall"] if self.mixed_clocks else self.hops
        return (hops[-1].ts_ns - hops[0].ts_ns) / 1000 if hops else 0.0


class AuditReader:
    """All shards of a ledger directory as one read-only ``events`` view.

    Nothing in the ledger directory is written (a shard a writer holds is copied elsewhere).
    A shard that cannot be read — not DuckDB, truncated, a corrupt block, a write-ahead log
    that is not its own or cannot be replayed, not an xmc ledger, another schema version —
    raises :class:`~xmc_actors.ledger.store.LedgerFileError` naming the file and the reason:
    on opening when it shows there, else from the query that meets it (the query methods,
    and any DuckDB error raised inside ``with AuditReader(...) as r:``, e.g. from ``r.con``).

    Parameters
    ----------
    ledger_dir
        Directory of ``shard-<n>.duckdb`` files (or one ``.duckdb`` file).
    """

    def __init__(self, ledger_dir: str | Path, *, memory_limit: str = READER_MEMORY_LIMIT) -> None:
        root = Path(ledger_dir)
        self.root = root
        if root.is_file():
            files = [root]
        elif root.is_dir():
            files = sorted(p for p in root.glob("*.duckdb"))
        else:
            raise LedgerFileError(f"{root}: no ledger here (directory does not exist)")
        if not files:
            raise LedgerFileError(f"{root}: no ledger shard files (*.duckdb) in this directory")
        self.files = files
        self.snapshots: list[Path] = []
        self.attached: dict[int, tuple[Path, Path]] = {}  # shard -> (its file, the file attached: it or a copy)
        self._tmp: Path | None = None
        self.con = duckdb.connect(":memory:", config={"threads": 2})
        self.con.execute("SET enable_progress_bar = false")
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix="xmc-audit-"))
            self.memory_limit_bytes = parse_size(memory_limit)
            self.con.execute(f"SET memory_limit = '{self.memory_limit_bytes}B'")
            self.con.execute(f"SET temp_directory = '{_q(self._tmp / 'spill')}'")
            for i, f in enumerate(files):
                self._attach(i, f)
        except BaseException:
            self.close()
            raise
        union = " UNION ALL ".join(f"SELECT * FROM s{i}.events" for i in range(len(files)))
        self.con.execute(f"CREATE TEMP VIEW events AS {union}").fetchall()

    def _attach(self, i: int, f: Path) -> None:
        check_header(f)
        check_wal(f)
        actual = f
        try:
            self.con.execute(f"ATTACH '{_q(f)}' AS s{i} (READ_ONLY)")
        except duckdb.Error as e:
            if not is_lock_error(str(e)):
                raise open_error(f, e) from None
            # A live writer holds it: read a consistent snapshot copy instead.
            assert self._tmp is not None
            actual = snapshot_copy(f, self._tmp / f"s{i}")
            self.snapshots.append(f)
            try:
                self.con.execute(f"ATTACH '{_q(actual)}' AS s{i} (READ_ONLY)")
            except duckdb.Error as e2:
                raise open_error(f, e2, actual) from None
        self.attached[i] = (f, actual)
        try:
            check_ledger_tables(self.con, f, catalog=f"s{i}")
            check_size(self.con, f, f"s{i}", actual)
        except duckdb.Error as e:
            raise open_error(f, e, actual) from None

    # ------------------------------------------------------------------------- damaged shards
    def verify(self) -> list[LedgerFileError]:
        """Read every block of every shard (all columns of ``events`` and ``xmc_meta``), each
        shard on its own read-only connection; returns one error per shard that fails.
        Slow on a large ledger (a full read): for diagnosis, not for every query."""
        cols = ", ".join([*COLUMN_NAMES, "stored_ns"])
        bad = []
        for i, (f, actual) in sorted(self.attached.items()):
            con = duckdb.connect(":memory:", config={"threads": 2})
            try:
                con.execute(f"ATTACH '{_q(actual)}' AS s (READ_ONLY)")
                con.execute(f"SELECT count(*), sum(hash({cols})) FROM s.events").fetchall()
                con.execute("SELECT count(*), sum(hash(key, value)) FROM s.xmc_meta").fetchall()
            except duckdb.Error as e:
                bad.append(open_error(f, e, actual))
            finally:
                con.close()
        return bad

    def explain(self, e: BaseException) -> BaseException:
        """The :class:`LedgerFileError` behind a DuckDB error met while reading: the shard the
        message names, else the shards :meth:`verify` finds damaged; ``e`` itself if none is
        (a failure that has nothing to do with the files)."""
        if isinstance(e, LedgerError) or not isinstance(e, duckdb.Error):
            return e
        msg = str(e)
        for f, actual in self.attached.values():
            if str(actual) in msg or str(f) in msg:
                return open_error(f, e, actual)
        bad = self.verify()
        if len(bad) == 1:
            return bad[0]
        if bad:
            return LedgerFileError(f"{len(bad)} ledger files cannot be read:\n" + "\n".join(f"  {b}" for b in bad))
        return e

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "AuditReader":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            if isinstance(exc, duckdb.Error):
                err = self.explain(exc)
                if err is not exc:
                    raise err from None
        finally:
            self.close()

    # --------------------------------------------------------------------------- queries
    @_translating
    def events(self, kinds: Iterable[str] | None = None, since_ns: int | None = None,
               decision_ids: Iterable[str] | None = None, limit: int | None = None) -> list:
        """Events of every shard as :class:`~xmc_actors.model.events.Event` objects, oldest first
        (:func:`~xmc_actors.ledger.reader.query_events` on the ``events`` view)."""
        from .reader import query_events
        return query_events(self.con, kinds=kinds, since_ns=since_ns, decision_ids=decision_ids, limit=limit)

    @_translating
    def count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM events").fetchall()[0][0])

    @_translating
    def trace(self, decision_id: str) -> Trace:
        """Every event of ``decision_id`` in time order; hop latency from the parent (or previous) event."""
        sql = ("SELECT ts_ns, kind, actor, venue, instrument, order_id, outcome, reason, latency_us, event_id, "
               "parent_id, payload, stored_ns FROM events WHERE decision_id IN ({}) ORDER BY ts_ns, event_id")
        rows = self.con.execute(sql.format("?"), [decision_id]).fetchall()
        # a calendar roll (core/roll.py): its OPERATOR event names its child pairs, traced with it
        children = [c for r in rows if r[1] == "OPERATOR" for c in (unpack_payload(r[11]) or {}).get("roll_children") or ()
                    if isinstance(c, str)]
        if children:
            ids = [decision_id, *children]
            rows = self.con.execute(sql.format(", ".join("?" * len(ids))), ids).fetchall()
        tr = Trace(decision_id)
        by_id: dict[str, tuple[int, str]] = {}
        prev: dict[str, int] = {}  # the previous event's time, per clock
        for r in rows:
            ts, kind, actor, venue, inst, oid, outcome, reason, lat, eid, parent, blob, stored = r
            clock = "wall" if abs(stored - ts) <= WALL_CLOCK_SLACK_NS else "market"
            pa = by_id.get(parent) if parent else None
            base = pa[0] if pa is not None and pa[1] == clock else prev.get(clock)
            hop = None if base is None else (ts - base) / 1000
            tr.hops.append(Hop(ts, kind, actor or "", venue or "", inst or "", oid or "", outcome or "",
                               reason or "", hop, lat, eid, parent or "", unpack_payload(blob), clock))
            by_id[eid] = (ts, clock)
            prev[clock] = ts
            if kind in ("PAIR_STATE", "RISK_DECISION") and outcome in TERMINAL_OUTCOMES:
                tr.outcome = outcome
            elif kind == "LIFECYCLE" and reason == "ROLL_DONE":
                tr.outcome = str(tr.hops[-1].payload.get("roll_state") or tr.outcome)
        if children:  # a roll ends when its outcome is decided, whatever its children's states
            ends = [h for h in tr.hops if h.kind == "LIFECYCLE" and h.reason == "ROLL_DONE"]
            tr.outcome = str(ends[-1].payload.get("roll_state")) if ends else "OPEN"
        return tr

    @_translating
    def query(self, filters: Filters = Filters(), limit: int | None = 1000, decode: bool = True) -> pa.Table:
        """Matching events, oldest first, with ``time`` (UTC) and ``payload`` as JSON text when ``decode``."""
        where, params = filters.where()
        lim = f" LIMIT {int(limit)}" if limit else ""
        t = self.con.sql(f"SELECT * FROM events{where} ORDER BY ts_ns, event_id{lim}", params=params).to_arrow_table()
        if decode:
            t = _decode_payload(t)
        return t

    @_translating
    def export(self, out: Path, fmt: str, filters: Filters = Filters(), payload: str = "auto",
               progress: Callable[[int, int], None] | None = None, batch_rows: int = EXPORT_BATCH_ROWS,
               slice_rows: int | None = None) -> int:
        """Write matching events to ``out`` as csv, parquet or json (lines), oldest first; returns
        the row count.

        Streams, so memory does not grow with the ledger: the events are cut into time slices of
        about ``slice_rows`` (approximate quantiles of ``ts_ns``; an event is in exactly one
        half-open slice), each sorted by DuckDB (within the reader's memory limit, spilling
        beyond it) and handed over as Arrow batches of ``batch_rows``, each decoded and written
        before the next is read. ``progress(done, total)`` is called before the first batch
        (``done`` 0) and after each one.

        Parquet keeps the payload as msgpack bytes unless ``payload="json"`` (JSON text, slower);
        CSV and JSON always carry it as JSON text, with a ``time_utc`` column after ``event_id``.
        """
        if fmt not in ("csv", "parquet", "json"):
            raise ValueError(f"format {fmt!r}: expected csv, parquet or json")
        if slice_rows is None:
            slice_rows = max(10_000, self.memory_limit_bytes // EXPORT_SLICE_BYTES_PER_ROW)
        where, params = filters.where()
        total = int(self.con.execute(f"SELECT count(*) FROM events{where}", params).fetchall()[0][0])
        if progress is not None:
            progress(0, total)
        decode = not (fmt == "parquet" and payload != "json")
        cols = f"event_id, {TIME_UTC_SQL} AS time_utc, * EXCLUDE (event_id)" if decode else "*"
        and_ = " AND " if where else " WHERE "
        out.parent.mkdir(parents=True, exist_ok=True)
        # written beside, then renamed: a failed export (a damaged shard) leaves no partial file
        part = out.with_name(f".{out.name}.partial-{os.getpid()}")
        writer: _BatchWriter | None = None
        n = 0
        try:
            for lo, hi in self._time_slices(where, params, total, slice_rows):
                cut = "" if lo is None else f"{and_}ts_ns >= {lo}"
                cut += "" if hi is None else f"{' AND ' if (where or cut) else ' WHERE '}ts_ns < {hi}"
                sql = f"SELECT {cols} FROM events{where}{cut} ORDER BY ts_ns, event_id"
                batches = self.con.sql(sql, params=params).to_arrow_reader(batch_rows)
                if writer is None:
                    schema = _json_payload_schema(batches.schema) if decode else batches.schema
                    writer = _BatchWriter(part, fmt, schema)
                for batch in batches:
                    writer.write(_json_payload(batch, schema) if decode else batch)
                    n += batch.num_rows
                    if progress is not None:
                        progress(n, total)
            assert writer is not None
            writer.close()
            writer = None
            os.replace(part, out)
        finally:
            if writer is not None:
                writer.close(failed=True)
            part.unlink(missing_ok=True)
        return n

    def _time_slices(self, where: str, params: list[Any], total: int,
                     slice_rows: int) -> list[tuple[int | None, int | None]]:
        """Half-open ``[lo, hi)`` ranges of ``ts_ns`` (``None``: open) covering every event, of
        about ``slice_rows`` matching events each (one pass: approximate quantiles)."""
        k = -(-total // max(slice_rows, 1))
        if k <= 1:
            return [(None, None)]
        qs = [i / k for i in range(1, k)]
        row = self.con.execute(f"SELECT approx_quantile(ts_ns, {qs!r}) FROM events{where}", params).fetchall()[0][0]
        edges: list[int | None] = sorted({int(b) for b in (row or [])})
        bounds = [None, *edges, None]
        return list(zip(bounds[:-1], bounds[1:]))

    @_translating
    def pair_outcomes(self, since_ns: int | None = None, until_ns: int | None = None) -> dict[str, int]:
        """Count of pairs per terminal outcome (pairs with a decision but no terminal state: OPEN)."""
        where, params = Filters(since_ns=since_ns, until_ns=until_ns).where()
        sql = (f"WITH d AS (SELECT DISTINCT decision_id FROM events{where}{' AND' if where else ' WHERE'} "
               f"kind IN ('INTENT', 'PAIR_STATE', 'RISK_DECISION') AND decision_id != ''), "
               f"o AS ({PAIR_OUTCOME_SQL}) "
               "SELECT coalesce(o.outcome, 'OPEN') AS outcome, count(*) FROM d LEFT JOIN o USING (decision_id) "
               "GROUP BY 1 ORDER BY 2 DESC")
        return {k: int(v) for k, v in self.con.execute(sql, params).fetchall()}


def parse_size(size: str) -> int:
    """Bytes of a DuckDB size setting such as ``256MB``, ``1.5GB`` or ``512MiB``."""
    import re
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B\s*", size, re.IGNORECASE)
    if m is None:
        raise ValueError(f"memory limit {size!r}: expected a size like 256MB or 1GB")
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** "BKMGT".index(m.group(2).upper() or "B"))


def _json_payload_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the payload as JSON text instead of msgpack bytes."""
    i = schema.get_field_index("payload")
    return schema.set(i, pa.field("payload", pa.string()))


def _json_payload(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """One exported batch with its msgpack payloads as JSON text."""
    i = batch.schema.get_field_index("payload")
    text = pa.array([payload_json(b) for b in batch.column(i).to_pylist()], pa.string())
    cols = batch.columns
    cols[i] = text
    return pa.RecordBatch.from_arrays(cols, schema=schema)


class _BatchWriter:
    """Appends Arrow batches to one file as csv, parquet or JSON lines (one object per event)."""

    def __init__(self, path: Path, fmt: str, schema: pa.Schema) -> None:
        self.fmt = fmt
        self._json: Any = None
        if fmt == "csv":
            import pyarrow.csv as pcsv
            self._w: Any = pcsv.CSVWriter(str(path), schema)
        elif fmt == "parquet":
            import pyarrow.parquet as pq
            self._w = pq.ParquetWriter(str(path), schema, compression="zstd")
        else:
            self._w = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
            # DuckDB renders each row as a JSON object (to_json of the row): C++ speed, the
            # same values json.dumps gives
            self._json = duckdb.connect(":memory:", config={"threads": 1})

    def write(self, batch: pa.RecordBatch) -> None:
        if self._json is None:
            self._w.write_batch(batch)
            return
        self._json.register("_xmc_batch", batch)
        lines = self._json.sql("SELECT to_json(_xmc_row)::VARCHAR FROM _xmc_batch _xmc_row").fetchall()
        self._json.unregister("_xmc_batch")
        if lines:
            self._w.write("\n".join(line for (line,) in lines))
            self._w.write("\n")

    def close(self, failed: bool = False) -> None:
        try:
            self._w.close()
        except Exception:  # noqa: BLE001 - closing a file an error already abandoned
            if not failed:
                raise
        finally:
            if self._json is not None:
                self._json.close()


def _decode_payload(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("payload")
    blobs = t.column("payload").to_pylist()
    t = t.set_column(i, "payload", pa.array([payload_json(b) for b in blobs], pa.string()))
    times = pa.array([fmt_ns(x) for x in t.column("ts_ns").to_pylist()], pa.string())
    return t.add_column(1, "time_utc", times)


def _q(p: Path) -> str:
    return str(p).replace("'", "''")
