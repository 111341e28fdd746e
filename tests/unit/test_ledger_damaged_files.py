"""A damaged ledger shard — truncated, corrupt, another schema version, a write-ahead log that
is not its own — gives every ``xmc audit`` command, the writer and ``xmc run``'s look at the
ledger a clear error naming the file and the reason, and changes nothing."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import duckdb
import pytest

from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.ledger.audit import AuditReader
from xmc_actors.ledger.schema import encode_events
from xmc_actors.ledger.store import LedgerFileError, LedgerStore, snapshot_copy, wal_entries, wal_path
from xmc_actors.model.events import EventKind
from xmc_actors.ops.cli import main
from xmc_actors.venues.journal import VenueJournal, journal_path

SHARD = "shard-0.duckdb"


def _events(mk: EventMaker, n: int, tag: str) -> list:
    # enough rows and payload for several 256 KiB blocks, so that damage lands in data blocks
    return [mk.make(EventKind.ORDER_SENT, decision_id=f"{tag}{i // 4}", strategy="s1", venue="LME",
                    client_order_id=f"{tag}{i // 4}:A:{i % 4}", note="x" * 200) for i in range(n)]


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    """Undamaged shards: one checkpointed; two with committed events still only in their WAL
    (copies of a live writer's files, as a crash leaves them)."""
    root = tmp_path_factory.mktemp("originals")
    mk = EventMaker(SimClock(), "test", node=1)
    plain = root / "plain" / SHARD
    s = LedgerStore(plain)
    s.append(encode_events(_events(mk, 3000, "d")).table, stored_ns=1)
    s.close()
    out = {"plain": plain}
    for name in ("wal", "other"):
        s = LedgerStore(root / f"live-{name}" / SHARD)
        s.append(encode_events(_events(mk, 500, f"{name}-a")).table, stored_ns=1)
        s.checkpoint()
        for j in range(4):
            s.append(encode_events(_events(mk, 100, f"{name}-b{j}")).table, stored_ns=1)
        out[name] = snapshot_copy(s.path, root / name)
        s.con.close()  # no checkpoint: the copy keeps its WAL
    assert wal_path(out["wal"]).stat().st_size > 10_000
    return out


def _corrupt_data_blocks(p: Path) -> None:
    with open(p, "r+b") as f:
        for off in range(12288 + 100_000, p.stat().st_size, 262144):
            f.seek(off)
            f.write(os.urandom(4096))


def _other_version(p: Path) -> None:
    con = duckdb.connect(str(p))
    con.execute("UPDATE xmc_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()


def _corrupt_wal(p: Path, *, size_field: bool) -> None:
    """Damage the second entry of the WAL: its size field, or bytes of its payload."""
    walked = wal_entries(p)
    assert walked is not None and len(walked[0]) >= 3 and walked[1] is None
    off, size = walked[0][1]
    with open(wal_path(p), "r+b") as f:
        f.seek(off if size_field else off + 16 + size // 2)
        f.write(os.urandom(8) if size_field else os.urandom(64))


#: damage -> (which original, what to do to it, words the error must contain)
DAMAGE: dict[str, tuple[str, Callable[[Path, dict[str, Path]], None], str]] = {
    "truncated to half": ("plain", lambda p, o: os.truncate(p, p.stat().st_size // 2), "truncated"),
    "truncated to a few bytes": ("plain", lambda p, o: os.truncate(p, 5), "not a DuckDB database"),
    "empty": ("plain", lambda p, o: os.truncate(p, 0), "not a DuckDB database"),
    "header overwritten": ("plain", lambda p, o: p.write_bytes(b"\0" * 64 + p.read_bytes()[64:]), "not a DuckDB"),
    "database header corrupt": ("plain", lambda p, o: _overwrite(p, 4096, 64), "corrupt"),
    "data blocks corrupt": ("plain", lambda p, o: _corrupt_data_blocks(p), "corrupt"),
    "another schema version": ("plain", lambda p, o: _other_version(p), "schema version 99"),
    "WAL entry corrupt": ("wal", lambda p, o: _corrupt_wal(p, size_field=False), "write-ahead log"),
    "WAL entry size corrupt": ("wal", lambda p, o: _corrupt_wal(p, size_field=True), "corrupt write-ahead log"),
    "WAL of another shard": ("wal", lambda p, o: shutil.copyfile(wal_path(o["other"]), wal_path(p)), "write-ahead log"),
    "stray WAL that is no WAL": ("plain", lambda p, o: wal_path(p).write_bytes(os.urandom(3000)),
                                 "not a DuckDB write-ahead log"),
}


def _overwrite(p: Path, at: int, n: int) -> None:
    with open(p, "r+b") as f:
        f.seek(at)
        f.write(os.urandom(n))


@pytest.fixture(params=sorted(DAMAGE))
def damaged(request, originals, tmp_path) -> tuple[Path, str]:
    name = request.param
    which, damage, words = DAMAGE[name]
    led = tmp_path / "ledger"
    led.mkdir()
    shutil.copyfile(originals[which], led / SHARD)
    if wal_path(originals[which]).exists():
        shutil.copyfile(wal_path(originals[which]), wal_path(led / SHARD))
    damage(led / SHARD, originals)
    return led, words


def _state(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


COMMANDS = {
    "trace": lambda led, out: ["audit", "trace", "d7", "--ledger", str(led)],
    "query": lambda led, out: ["audit", "query", "--ledger", str(led), "--limit", "0"],
    "export": lambda led, out: ["audit", "export", "--ledger", str(led), "--format", "parquet", "-o", str(out)],
    "export json": lambda led, out: ["audit", "export", "--ledger", str(led), "--format", "json", "-o", str(out)],
    "report": lambda led, out: ["audit", "report", "--ledger", str(led), "-o", str(out)],
    "reconcile": lambda led, out: ["audit", "reconcile", "--ledger", str(led)],
    "reconcile --write": lambda led, out: ["audit", "reconcile", "--ledger", str(led), "--write"],
    "reconcile --venue-state": lambda led, out: ["audit", "reconcile", "--ledger", str(led), "--venue-state",
                                                 str(_venue_state(out.parent.parent / "state")), "--write"],
}


def _venue_state(d: Path) -> Path:
    """A simulated LME venue's journal holding one filled order."""
    j = VenueJournal(journal_path(d, "gateway-LME"), fresh=True)
    j.append(["R", {"ts_ns": 1, "kind": "FILL", "client_order_id": "d7:B:0", "venue_order_id": "LME-O1",
                    "instrument": "LME.CA3M", "side": "SELL", "order_qty": 3, "status": "FILLED", "filled_qty": 3,
                    "trade_id": "LME-T1", "fill_qty": 3, "fill_price": "9800", "decision_id": "d7", "leg": "B"}])
    j.close()
    return d


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_audit_command_on_a_damaged_shard_names_the_file_and_the_reason_and_writes_nothing(
        damaged, command, tmp_path, capsys):
    # Arrange
    led, words = damaged
    out = tmp_path / "out" / "result.file"
    before = _state(led)
    # Act: main() raises on anything but a CliError, so returning at all means no traceback
    rc = main(COMMANDS[command](led, out))
    err = capsys.readouterr().err
    # Assert
    assert rc == 1, err
    assert err.startswith("xmc: ") and SHARD in err and words in err, err
    assert "Traceback" not in err
    assert _state(led) == before
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_the_writer_refuses_a_damaged_shard_before_touching_it(damaged):
    # Arrange: the ledger shard actor opens its file with LedgerStore (a restarted one too)
    led, words = damaged
    before = _state(led)
    # Act
    with pytest.raises(LedgerFileError) as err:
        LedgerStore(led / SHARD)
    # Assert: named, explained, and DuckDB got no chance to replay or checkpoint into it
    assert SHARD in str(err.value) and words in str(err.value)
    assert _state(led) == before


def test_xmc_run_looking_for_earlier_decisions_stops_on_a_damaged_shard_with_the_reason(damaged):
    # Arrange: what Deployment.start() reads before it starts anything on the ledger
    from xmc_actors.runtime.deploy import last_decision_seqs
    led, words = damaged
    before = _state(led)
    # Act
    with pytest.raises(LedgerFileError) as err:
        last_decision_seqs(led)
    # Assert: a ValueError too, which `xmc run` reports as why the deployment did not start
    assert isinstance(err.value, ValueError)
    assert SHARD in str(err.value) and words in str(err.value)
    assert _state(led) == before


def test_a_wal_torn_at_its_end_by_a_crash_is_no_damage(originals, tmp_path, capsys):
    # Arrange: the last write of the log cut short, as a crash during a commit leaves it
    led = tmp_path / "ledger"
    led.mkdir()
    shutil.copyfile(originals["wal"], led / SHARD)
    shutil.copyfile(wal_path(originals["wal"]), wal_path(led / SHARD))
    os.truncate(wal_path(led / SHARD), wal_path(led / SHARD).stat().st_size - 1000)
    # Act
    rc = main(["audit", "query", "--ledger", str(led), "--format", "json", "--limit", "0"])
    out = capsys.readouterr().out
    # Assert: every complete commit is read (the torn one was never acknowledged)
    assert rc == 0
    assert len(json.loads(out)) == 800


def test_one_damaged_shard_among_good_ones_is_the_one_named(originals, tmp_path):
    # Arrange: two good shards and one whose data blocks are corrupt (found only by a query)
    led = tmp_path / "ledger"
    led.mkdir()
    for i in (0, 2):
        shutil.copyfile(originals["plain"], led / f"shard-{i}.duckdb")
    shutil.copyfile(originals["plain"], led / "shard-1.duckdb")
    _corrupt_data_blocks(led / "shard-1.duckdb")
    # Act
    with pytest.raises(LedgerFileError) as err:
        with AuditReader(led) as r:
            r.con.execute("SELECT * FROM events").fetchall()
    # Assert
    assert "shard-1.duckdb" in str(err.value) and "corrupt" in str(err.value)
    assert "shard-0" not in str(err.value) and "shard-2" not in str(err.value)
