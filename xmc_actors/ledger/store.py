"""One ledger shard's DuckDB file: open, append batches idempotently, checkpoint, snapshot.

This is the functional core of the ledger shard (no Ray). :class:`LedgerStore` is the only
writer of its file. An append is one transaction; when :meth:`LedgerStore.append` returns, the
transaction is committed and DuckDB has synced its write-ahead log, so the rows survive the
process being killed (SIGKILL, ``os._exit``) at any later moment.

Readers in other processes (the ``xmc audit`` CLI while a deployment runs) cannot open a file
a writer holds. :func:`snapshot_copy` makes a consistent copy for them: the writer only
checkpoints (the one operation that rewrites blocks already referenced) while holding an
exclusive ``flock`` on ``<file>.ckpt-lock``; the reader holds a shared lock while it copies the
write-ahead log and then the database file, so the copy is the database as of some commit.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..model.errors import XmcError
from .schema import (
    ARROW_SCHEMA, COLUMN_NAMES, DDL, KINDS, META_DDL, SCHEMA_VERSION, TABLE, Refusal, bad_input_event,
    batch_from_wire, encode_events,
)

log = logging.getLogger("xmc.ledger")

T = TypeVar("T")

DUCKDB_MAGIC = b"DUCK"
# Built once, and typed: pyarrow infers the type of an untyped list or Python scalar by trying
# to import pandas and dateutil, which (not installed) means a search of sys.path on every
# call, on the shard's commit path (a ledger shard of a small deployment spent 7% of its time so)
_KIND_VALUES = pa.array(sorted(KINDS), pa.string())
_I0, _I64 = pa.scalar(0, pa.int64()), pa.scalar(64, pa.int64())
CHECKPOINT_WAL_BYTES = 64 * 1024 * 1024


class LedgerError(XmcError):
    """A ledger operation that cannot be done (the message says which and why)."""


class LedgerFileError(LedgerError, ValueError):
    """A ledger file that is missing, truncated, corrupt, locked, of another schema version or
    not an xmc ledger. The message names the file and the reason. (Also a ``ValueError``: a
    bad input to whatever opens it, so ``xmc run`` reports it as the reason it did not start.)"""


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".ckpt-lock")


def wal_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".wal")


def check_header(path: Path) -> None:
    """Raise :class:`LedgerFileError` unless ``path`` looks like a DuckDB database file."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise LedgerFileError(f"{path}: cannot read ledger file: {e.strerror or e}") from None
    if len(head) < 12 or head[8:12] != DUCKDB_MAGIC:
        what = "an empty file" if not head else f"{len(head)} bytes" if len(head) < 12 else "bad header"
        raise LedgerFileError(f"{path}: not a DuckDB database ({what}); is this really a ledger shard?")


# A DuckDB write-ahead log begins with its WAL_VERSION entry: field 100 (wal_type) = 98.
WAL_MAGIC = b"\x64\x00\x62"
_LOCK_RE = re.compile(r"could not set lock|conflicting lock", re.IGNORECASE)


def is_lock_error(message: str) -> bool:
    """True when DuckDB refused a file because another process holds it (not, say, a corrupt
    "block at location ..."): the one failure a reader works around with a snapshot copy."""
    return bool(_LOCK_RE.search(message))


def check_wal(path: Path) -> None:
    """Raise :class:`LedgerFileError` if a write-ahead log beside ``path`` is not one.

    DuckDB silently ignores a WAL that does not start with a WAL header (and a writer then
    replaces it), which would drop whatever commits it held without a word; a WAL of another
    database or with a corrupt entry makes DuckDB fail on open (reported by the caller)."""
    wal = wal_path(path)
    try:
        with open(wal, "rb") as f:
            head = f.read(len(WAL_MAGIC))
    except FileNotFoundError:
        return
    except OSError as e:
        raise LedgerFileError(f"{wal}: cannot read the shard's write-ahead log: {e.strerror or e}") from None
    if head and head != WAL_MAGIC[:len(head)]:
        raise LedgerFileError(
            f"{wal}: not a DuckDB write-ahead log (no WAL header); DuckDB would ignore it and lose whatever it "
            f"held. If it does not belong to {path.name}, move it aside (docs/operations.md, section 6)")
    brk = wal_break(path)
    if brk is not None:
        raise LedgerFileError(
            f"{wal}: corrupt write-ahead log: the entry at byte {brk[0]} has a damaged size; DuckDB would stop "
            f"replaying there and drop the {brk[1]} bytes of commits after it")


# A WAL entry longer than this is no entry: its size field was damaged (a torn last write has
# a real size; random bytes in a size field read as a huge number)
_WAL_ENTRY_MAX = 1 << 30


def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def wal_entries(path: Path) -> tuple[list[tuple[int, int]], tuple[int, int] | None] | None:
    """The entries of a shard's write-ahead log as ``(offset, payload size)``, and where it
    stops being one: ``(offset, bytes after it)`` when an entry's size field is damaged, else
    ``None``. ``None`` altogether: no WAL, or not DuckDB's WAL format 2 (header object, then
    entries ``[u64 size][u64 checksum][payload]``), which is not judged."""
    try:
        data = wal_path(path).read_bytes()
    except OSError:
        return None
    entries: list[tuple[int, int]] = []
    try:
        i, version = 0, None
        while True:  # the WAL_VERSION header object: (u16 field id, value)* then 0xffff
            fid = int.from_bytes(data[i:i + 2], "little")
            i += 2
            if fid == 0xFFFF:
                break
            if fid in (100, 101, 103):
                v, i = _varint(data, i)
                version = v if fid == 101 else version
            elif fid == 102:
                n, i = _varint(data, i)
                for _ in range(n):
                    _, i = _varint(data, i)
            else:
                return None
        if version != 2:
            return None
        while i + 16 <= len(data):
            size = int.from_bytes(data[i:i + 8], "little")
            if i + 16 + size > len(data):
                return entries, ((i, len(data) - i) if size > _WAL_ENTRY_MAX else None)
            entries.append((i, size))
            i += 16 + size
    except IndexError:
        return None
    return entries, None


def wal_break(path: Path) -> tuple[int, int] | None:
    """Where a write-ahead log stops being one (see :func:`wal_entries`), or ``None``.

    DuckDB stops replaying at an entry that runs past the end of the file and drops the rest
    without a word, as it must for a write torn by a crash; but a *damaged* size field in the
    middle drops every later commit. Checksums DuckDB verifies itself (it fails on open)."""
    walked = wal_entries(path)
    return None if walked is None else walked[1]


def check_size(con: duckdb.DuckDBPyConnection, path: Path, catalog: str, actual: Path | None = None) -> None:
    """Raise :class:`LedgerFileError` if the attached database ``catalog`` is shorter than the
    blocks its header counts (a truncated file: DuckDB would fail only when a query reaches
    the missing blocks). ``actual``: the file attached, when it is a copy of ``path``."""
    rows = con.execute("SELECT block_size, used_blocks FROM pragma_database_size() WHERE database_name = ?",
                       [catalog]).fetchall()
    if not rows:
        return
    # used blocks, not total: DuckDB counts free blocks in total_blocks and truncates free blocks
    # at the end of the file when it checkpoints, so a sound file can be shorter than the total
    # (seen after a chaos run: 7 blocks counted, 5 used, the file 5 blocks long)
    block, blocks = int(rows[0][0] or 0), int(rows[0][1] or 0)
    size = (actual or path).stat().st_size
    if block * blocks > size:
        raise LedgerFileError(f"{path}: truncated: {size} bytes, but its header counts {blocks} used blocks of "
                              f"{block} bytes ({block * blocks} bytes); the file was cut short")


def open_error(path: Path, e: BaseException, actual: Path | None = None) -> LedgerFileError:
    """A DuckDB failure on a ledger file, as a :class:`LedgerFileError` naming the file (the
    original, when DuckDB read a snapshot ``actual`` of it) and the reason."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if actual is not None and actual != path:
        msg = msg.replace(str(wal_path(actual)), str(wal_path(path))).replace(str(actual), str(path))
    if "WAL" in msg:
        return LedgerFileError(f"{path}: its write-ahead log {wal_path(path).name} cannot be replayed: {msg}")
    if is_lock_error(msg):
        return LedgerFileError(f"{path}: held by another process ({msg})")
    if "corrupt" in msg.lower() or "checksum" in msg.lower():
        return LedgerFileError(f"{path}: corrupt ledger file: {msg}")
    if "could not read" in msg.lower():
        return LedgerFileError(f"{path}: unreadable ledger file (truncated?): {msg}")
    return LedgerFileError(f"{path}: cannot open ledger file: {msg}")


def inspect_shard(path: Path) -> None:
    """Check a shard file without writing to it: header, write-ahead log, size, and (if it has
    tables) that it is an xmc ledger of this schema version. Raises :class:`LedgerFileError`.

    The writer calls this before opening the file for writing: DuckDB replays and checkpoints a
    WAL when it opens a file read-write, which would write into a damaged file."""
    check_header(path)
    check_wal(path)
    con = duckdb.connect(":memory:", config={"threads": 1})
    try:
        try:
            con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS shard (READ_ONLY)")
            tables = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'shard'"
                                 ).fetchall()[0][0]
            if tables:
                check_ledger_tables(con, path, catalog="shard")
            check_size(con, path, "shard")
        except duckdb.Error as e:
            raise open_error(path, e) from None
    finally:
        con.close()


def check_ledger_tables(con: duckdb.DuckDBPyConnection, path: Path, catalog: str | None = None) -> None:
    """Raise :class:`LedgerFileError` if an opened DuckDB database is not an xmc ledger."""
    where = f"table_catalog = '{catalog}'" if catalog else "table_catalog = current_database()"
    tables = {r[0] for r in con.execute(
        f"SELECT table_name FROM information_schema.tables WHERE {where} AND table_schema = 'main'").fetchall()}
    if TABLE not in tables or "xmc_meta" not in tables:
        shown = ", ".join(sorted(tables)[:8]) or "no tables"
        raise LedgerFileError(f"{path}: a DuckDB database but not an xmc ledger ({shown})")
    prefix = f"{catalog}." if catalog else ""
    rows = con.execute(f"SELECT value FROM {prefix}xmc_meta WHERE key = 'schema_version'").fetchall()
    row = rows[0] if rows else None
    if row is None or row[0] != str(SCHEMA_VERSION):
        raise LedgerFileError(
            f"{path}: ledger schema version {row[0] if row else 'missing'}, this program reads {SCHEMA_VERSION}")


def connect_error(path: Path, e: Exception) -> LedgerFileError:
    return open_error(path, e)


@dataclass
class AppendResult:
    """What one append did: rows stored, rows already present, inputs refused."""

    stored: int = 0
    duplicates: int = 0
    refused: list[Refusal] = field(default_factory=list)


@dataclass
class StoreStats:
    batches: int = 0
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    refused_by_field: dict[str, int] = field(default_factory=dict)
    checkpoints: int = 0
    checkpoints_skipped: int = 0


class LedgerStore:
    """The writer of one shard file.

    Parameters
    ----------
    path
        The shard's DuckDB file (created with its directory if missing).
    actor
        Name recorded on ``BAD_INPUT`` events this store writes.
    threads
        DuckDB worker threads for commits (the shard actor uses 1).
    read_threads
        DuckDB worker threads while :meth:`read` runs a query (2 suits a 2-core machine shared
        with the runtime).
    """

    def __init__(self, path: str | Path, *, actor: str = "ledger", threads: int = 2, read_threads: int = 2) -> None:
        self.path = Path(path)
        self.threads, self.read_threads = threads, read_threads
        self.actor = actor
        self.stats = StoreStats()
        self._last_ckpt = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            inspect_shard(self.path)  # before DuckDB may write to it (WAL replay, checkpoint)
        elif wal_path(self.path).exists():
            raise LedgerFileError(f"{wal_path(self.path)}: a write-ahead log without its database file "
                                  f"{self.path.name}; move it aside (docs/operations.md, section 6)")
        try:
            self.con = duckdb.connect(str(self.path), config={"threads": threads})
        except duckdb.Error as e:
            raise connect_error(self.path, e) from None
        try:
            # Checkpoints happen only in checkpoint() (under the snapshot lock), never implicitly.
            self.con.execute("SET checkpoint_threshold = '1TB'")
            tables = {r[0] for r in self.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                "AND table_catalog = current_database()").fetchall()}
            if not tables:
                self.con.execute(META_DDL)
                self.con.execute(DDL)
                self.con.execute("INSERT INTO xmc_meta VALUES ('schema_version', ?), ('created_ns', ?)",
                                 [str(SCHEMA_VERSION), str(time.time_ns())])
            else:
                check_ledger_tables(self.con, self.path)
        except LedgerFileError:
            self.con.close()
            raise
        except duckdb.Error as e:
            self.con.close()
            raise LedgerFileError(f"{self.path}: cannot use ledger file: {str(e).splitlines()[0]}") from None

    def read(self, query: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``query`` on this store's connection with ``read_threads`` DuckDB threads (a store
        that commits with one thread scans with more), and return what it returns."""
        if self.read_threads == self.threads:
            return query(self.con)
        self.con.execute(f"SET threads = {int(self.read_threads)}")
        try:
            return query(self.con)
        finally:
            self.con.execute(f"SET threads = {int(self.threads)}")

    # ------------------------------------------------------------------------------ writing
    def append(self, table: pa.Table | bytes | list[pa.Table | bytes], *, stored_ns: int) -> AppendResult:
        """Store a batch (or several, as one transaction): a table, or its wire bytes
        (:func:`~xmc_actors.ledger.schema.batch_to_wire`). Idempotent on ``event_id``.

        Rows that fail validation are refused, counted and stored as ``BAD_INPUT`` events in
        the same transaction; so are bytes that are no batch (field ``batch``). Returns once
        the transaction is committed.
        """
        tables = table if isinstance(table, list) else [table]
        res = AppendResult()
        # each batch read and checked against the schema, then the rows of all checked at once
        # (the row checks cost the same for one row as for thousands: one pass per commit)
        shaped: list[pa.Table] = []
        for t in tables:
            ok, refused = self._shape(t)
            res.refused.extend(refused)
            if ok.num_rows:
                shaped.append(ok)
        good: list[pa.Table] = []
        if shaped:
            ok, refused = self._check_rows(shaped[0] if len(shaped) == 1 else pa.concat_tables(shaped))
            res.refused.extend(refused)
            if ok.num_rows:
                good.append(ok)
        if res.refused:
            bad = encode_events(bad_input_event(r, ts_ns=stored_ns, actor=self.actor) for r in res.refused)
            good.append(bad.table)
        if not good:
            self._count(res)
            return res
        batch = good[0] if len(good) == 1 else pa.concat_tables(good)
        batch = _dedupe_in_batch(batch)
        dup_in_batch = sum(t.num_rows for t in good) - batch.num_rows
        ids = batch.column("event_id")
        lo, hi = pc.min(ids).as_py(), pc.max(ids).as_py()
        stamp = pa.array([stored_ns] * batch.num_rows, pa.int64())
        batch = batch.append_column("stored_ns", stamp)
        con = self.con
        try:
            self._begin(con)
            con.register("_batch", batch)
            n = con.execute(
                f"INSERT INTO {TABLE} SELECT * FROM _batch b WHERE NOT EXISTS ("
                f"SELECT 1 FROM {TABLE} e WHERE e.event_id BETWEEN ? AND ? AND e.event_id = b.event_id)",
                [lo, hi]).fetchall()[0][0]
            con.unregister("_batch")
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise
        res.stored = int(n)
        res.duplicates = batch.num_rows - res.stored + dup_in_batch
        self._count(res)
        return res

    @staticmethod
    def _begin(con: duckdb.DuckDBPyConnection) -> None:
        """Begin a transaction. One left open by an earlier failure (its ROLLBACK refused, say)
        is rolled back first: left as it is, it would make every later commit of the shard
        fail, and its rows were never acknowledged to anyone."""
        try:
            con.execute("BEGIN TRANSACTION")
        except duckdb.TransactionException:
            log.error("ledger store: a transaction left open by an earlier failure is rolled back")
            con.execute("ROLLBACK")
            con.execute("BEGIN TRANSACTION")

    def append_events(self, events: list, *, stored_ns: int) -> AppendResult:
        """Encode and store events (``Event`` objects or mappings); see :meth:`append`."""
        enc = encode_events(events)
        bad = encode_events(bad_input_event(r, ts_ns=stored_ns, actor=self.actor) for r in enc.refused)
        res = self.append([enc.table, bad.table], stored_ns=stored_ns)
        res.refused = enc.refused + res.refused
        self.stats.refused += len(enc.refused)
        for r in enc.refused:
            self.stats.refused_by_field[r.field] = self.stats.refused_by_field.get(r.field, 0) + 1
        return res

    def _count(self, res: AppendResult) -> None:
        s = self.stats
        s.batches += 1
        s.stored += res.stored
        s.duplicates += res.duplicates
        s.refused += len(res.refused)
        for r in res.refused:
            s.refused_by_field[r.field] = s.refused_by_field.get(r.field, 0) + 1

    def _shape(self, t: pa.Table | bytes) -> tuple[pa.Table, list[Refusal]]:
        """A batch as a table in the ledger's schema (decoded from wire bytes, its columns cast),
        or empty with the refusal of the whole batch (field ``batch``)."""
        if not isinstance(t, pa.Table):
            try:
                t = batch_from_wire(t)
            except ValueError as e:
                raw = bytes(t[:64]).hex() if isinstance(t, (bytes, bytearray, memoryview)) else repr(t)[:200]
                return ARROW_SCHEMA.empty_table(), [Refusal("", "batch", f"{e}; refused", raw)]
        if t.schema != ARROW_SCHEMA:
            try:
                t = t.select(list(COLUMN_NAMES)).cast(ARROW_SCHEMA)
            except (KeyError, ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raw = str(t.schema)[:2000]
                return ARROW_SCHEMA.empty_table(), [
                    Refusal("", "batch", f"schema does not match the ledger's ({str(e).splitlines()[0]}); "
                                         f"{t.num_rows} rows refused", raw)]
        return t, []

    def _check_rows(self, t: pa.Table) -> tuple[pa.Table, list[Refusal]]:
        """Rows of a batch in the ledger's schema with an unusable ``event_id``, ``ts_ns`` or
        ``kind`` are refused, each with its field and reason; the rest are returned."""
        if t.num_rows == 0:
            return t, []
        ids, ts, kind = t.column("event_id"), t.column("ts_ns"), t.column("kind")
        n = pc.utf8_length(ids)
        bad_id = pc.or_(pc.is_null(ids), pc.or_(pc.equal(n, _I0), pc.greater(n, _I64)))
        bad_ts = pc.or_(pc.is_null(ts), pc.less(ts, _I0))
        bad_kind = pc.invert(pc.is_in(kind, value_set=_KIND_VALUES))
        bad = pc.or_(pc.fill_null(bad_id, True), pc.or_(pc.fill_null(bad_ts, True), pc.fill_null(bad_kind, True)))
        if not pc.any(bad).as_py():
            return t, []
        refused = []
        rows = t.filter(bad).to_pylist()
        for row in rows:
            eid = row["event_id"] or ""
            if not eid or len(eid) > 64:
                field_, reason = "event_id", "missing or empty" if not eid else f"longer than 64 characters ({len(eid)})"
            elif row["ts_ns"] is None or row["ts_ns"] < 0:
                field_, reason = "ts_ns", f"must be >= 0, got {row['ts_ns']}"
            else:
                field_, reason = "kind", f"unknown event kind {row['kind']!r}"
            row["payload"] = (row["payload"] or b"").hex()[:400]
            refused.append(Refusal(eid[:64], field_, reason, repr(row)[:2000]))
        return t.filter(pc.invert(bad)), refused

    # --------------------------------------------------------------------------- checkpoints
    def wal_bytes(self) -> int:
        try:
            return wal_path(self.path).stat().st_size
        except FileNotFoundError:
            return 0

    def checkpoint(self, *, wait_s: float = 0.0) -> bool:
        """Checkpoint under the exclusive snapshot lock; ``False`` if readers held it for ``wait_s``."""
        fd = os.open(lock_path(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        self.stats.checkpoints_skipped += 1
                        return False
                    time.sleep(0.01)
            try:
                self.con.execute("CHECKPOINT")
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        self.stats.checkpoints += 1
        self._last_ckpt = time.monotonic()
        return True

    def maybe_checkpoint(self, *, wal_limit: int = CHECKPOINT_WAL_BYTES, every_s: float = 30.0) -> bool:
        """Checkpoint if the WAL is large or the last checkpoint is old (never waits for readers)."""
        wal = self.wal_bytes()
        if wal and (wal >= wal_limit or time.monotonic() - self._last_ckpt >= every_s):
            return self.checkpoint()
        return False

    def count(self) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0])

    def close(self) -> None:
        """Checkpoint (waiting up to 5 s for readers) and close the file."""
        if getattr(self, "con", None) is None:
            return
        try:
            self.checkpoint(wait_s=5.0)
        except duckdb.Error:
            pass
        self.con.close()
        self.con = None  # type: ignore[assignment]


def _dedupe_in_batch(t: pa.Table) -> pa.Table:
    ids = t.column("event_id").to_pylist()
    if len(set(ids)) == len(ids):
        return t
    seen: set[str] = set()
    keep = []
    for i in ids:
        keep.append(i not in seen)
        seen.add(i)
    return t.filter(pa.array(keep, pa.bool_()))


# ------------------------------------------------------------------------------------ readers
@contextmanager
def snapshot_lock(db_path: Path, timeout_s: float = 10.0) -> Iterator[None]:
    """Hold the shared snapshot lock of a shard (the writer does not checkpoint meanwhile)."""
    fd = os.open(lock_path(db_path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LedgerFileError(f"{db_path}: the writer kept the checkpoint lock for {timeout_s:.0f} s") from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def snapshot_copy(db_path: Path, into: Path | None = None) -> Path:
    """A consistent copy of a shard that a live writer holds; returns the copy's path.

    Copies the write-ahead log first, then the database file, under the shared snapshot lock.
    The WAL may end in a partly written record; DuckDB ignores it on open, so the copy is the
    database as of the last commit whose record was complete.
    """
    into = Path(into or tempfile.mkdtemp(prefix="xmc-ledger-snap-"))
    into.mkdir(parents=True, exist_ok=True)
    dst = into / db_path.name
    with snapshot_lock(db_path):
        wal = wal_path(db_path)
        if wal.exists():
            shutil.copyfile(wal, wal_path(dst))
        shutil.copyfile(db_path, dst)
    return dst
