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

PAIR_OUTCOME_SQL = f"""
SELECT decision_id, arg_max(outcome, ts_ns) AS outcome, max(ts_ns) AS done_ns
FROM events
WHERE kind IN ('PAIR_STATE', 'RISK_DECISION') AND outcome IN {TERMINAL_OUTCOMES!r}
GROUP BY decision_id
"""


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

    def __init__(self, ledger_dir: str | Path) -> None:
        root = Path(ledger_dir)
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
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="xmc-audit-"))
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
        rows = self.con.execute(
            "SELECT ts_ns, kind, actor, venue, instrument, order_id, outcome, reason, latency_us, event_id, "
            "parent_id, payload, stored_ns FROM events WHERE decision_id = ? ORDER BY ts_ns, event_id",
            [decision_id]).fetchall()
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
    def export(self, out: Path, fmt: str, filters: Filters = Filters(), payload: str = "auto") -> int:
        """Write matching events to ``out`` as csv, parquet or json (lines); returns the row count.

        Parquet keeps the payload as msgpack bytes unless ``payload="json"`` (JSON text, slower);
        CSV and JSON always carry it as JSON text.
        """
        if fmt not in ("csv", "parquet", "json"):
            raise ValueError(f"format {fmt!r}: expected csv, parquet or json")
        where, params = filters.where()
        out.parent.mkdir(parents=True, exist_ok=True)
        # written beside, then renamed: a failed export (a damaged shard) leaves no partial file
        part = out.with_name(f".{out.name}.partial-{os.getpid()}")
        try:
            if fmt == "parquet" and payload != "json":
                sql = f"SELECT * FROM events{where} ORDER BY ts_ns, event_id"
                self.con.execute(f"COPY ({sql}) TO '{_q(part)}' (FORMAT parquet, COMPRESSION zstd)", params).fetchall()
                n = int(self.con.execute(f"SELECT count(*) FROM events{where}", params).fetchall()[0][0])
            else:
                t = self.query(filters, limit=None, decode=True)
                n = t.num_rows
                if fmt == "parquet":
                    import pyarrow.parquet as pq
                    pq.write_table(t, part)
                elif fmt == "csv":
                    import pyarrow.csv as pcsv
                    pcsv.write_csv(t, part)
                else:
                    with open(part, "w", encoding="utf-8") as fh:
                        for row in t.to_pylist():
                            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            os.replace(part, out)
        finally:
            part.unlink(missing_ok=True)
        return n

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


def _decode_payload(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("payload")
    blobs = t.column("payload").to_pylist()
    t = t.set_column(i, "payload", pa.array([payload_json(b) for b in blobs], pa.string()))
    times = pa.array([fmt_ns(x) for x in t.column("ts_ns").to_pylist()], pa.string())
    return t.add_column(1, "time_utc", times)


def _q(p: Path) -> str:
    return str(p).replace("'", "''")
