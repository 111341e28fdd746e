"""The ledger store, codec, reconciliation and audit reader, without Ray."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.ledger.audit import AuditReader, Filters
from xmc_actors.ledger.reconcile import drop_copy_rows, reconcile
from xmc_actors.ledger.report import build_report
from xmc_actors.ledger.schema import batch_from_wire, batch_to_wire, encode_events, rows_to_events
from xmc_actors.ledger.store import LedgerFileError, LedgerStore
from xmc_actors.ledger.synthetic import synthetic_session
from xmc_actors.model.events import EventKind


@pytest.fixture
def mk() -> EventMaker:
    return EventMaker(SimClock(), "test", node=1)


def _write(path: Path, events) -> LedgerStore:
    s = LedgerStore(path)
    s.append(encode_events(events).table, stored_ns=1)
    return s


def test_a_resent_batch_is_not_stored_twice(tmp_path, mk):
    # Arrange
    events = [mk.make(EventKind.ORDER_SENT, decision_id="d1", client_order_id=f"d1:A:{i}") for i in range(100)]
    store = _write(tmp_path / "s.duckdb", events)
    # Act
    again = store.append(encode_events(events[50:] + events[50:]).table, stored_ns=2)
    # Assert
    assert (again.stored, again.duplicates) == (0, 100)
    assert store.count() == 100
    store.close()


def test_payload_with_decimals_round_trips_and_lifts_order_id_and_outcome(tmp_path, mk):
    # Arrange
    e = mk.make(EventKind.ORDER_REPORT, decision_id="d1", venue="SHFE", client_order_id="d1:A:0",
                status="FILLED", price=Decimal("72150.5"), qty=3)
    store = _write(tmp_path / "s.duckdb", [e])
    # Act
    t = store.con.sql("SELECT * EXCLUDE (stored_ns) FROM events").to_arrow_table()
    back = rows_to_events(t)[0]
    oid, outcome = store.con.execute("SELECT order_id, outcome FROM events").fetchone()
    store.close()
    # Assert
    assert (oid, outcome) == ("d1:A:0", "FILLED")
    assert back.payload == {"client_order_id": "d1:A:0", "status": "FILLED", "price": "72150.5", "qty": 3}
    assert back.model_copy(update={"payload": {}}) == e.model_copy(update={"payload": {}})


def test_rows_with_bad_fields_in_an_arrow_batch_are_refused_counted_and_recorded(tmp_path, mk):
    # Arrange: a batch from a foreign writer with an empty id, a negative time and an unknown kind
    good = encode_events([mk.make(EventKind.ALERT, decision_id="d1")]).table
    rows = good.to_pylist() * 4
    rows[1] = {**rows[1], "event_id": ""}
    rows[2] = {**rows[2], "event_id": "x2", "ts_ns": -5}
    rows[3] = {**rows[3], "event_id": "x3", "kind": "TELEPORT"}
    store = LedgerStore(tmp_path / "s.duckdb")
    # Act
    res = store.append(pa.Table.from_pylist(rows, schema=good.schema), stored_ns=7)
    bad = store.con.execute("SELECT reason FROM events WHERE kind = 'BAD_INPUT' ORDER BY reason").fetchall()
    store.close()
    # Assert
    assert [r.field for r in res.refused] == ["event_id", "ts_ns", "kind"]
    assert store.stats.refused == 3 and store.stats.refused_by_field == {"event_id": 1, "ts_ns": 1, "kind": 1}
    assert [b[0].split(":")[0] for b in bad] == ["event_id", "kind", "ts_ns"]
    assert res.stored == 1 + 3  # the good row and three BAD_INPUT records


def test_a_batch_with_a_foreign_schema_is_refused_as_a_whole_with_the_reason(tmp_path):
    store = LedgerStore(tmp_path / "s.duckdb")
    res = store.append(pa.table({"foo": [1, 2, 3]}), stored_ns=1)
    store.close()
    assert len(res.refused) == 1 and res.refused[0].field == "batch"
    assert "3 rows refused" in res.refused[0].reason


def test_a_batch_sent_as_arrow_ipc_bytes_is_stored_and_bytes_that_are_no_batch_are_refused(tmp_path, mk):
    # Arrange: what the ledger client sends, and bytes that are no batch
    events = [mk.make(EventKind.ORDER_SENT, decision_id="d1", client_order_id=f"d1:A:{i}") for i in range(3)]
    wire = batch_to_wire(encode_events(events).table)
    store = LedgerStore(tmp_path / "s.duckdb")
    # Act
    good = store.append(wire, stored_ns=1)
    bad = store.append(b"\x00garbage" + wire[:20], stored_ns=2)
    # Assert: the batch is stored as sent; the garbage is refused naming the field, counted and recorded
    assert good.stored == 3 and not good.refused
    assert [r.field for r in bad.refused] == ["batch"] and "not an Arrow IPC stream" in bad.refused[0].reason
    assert store.stats.refused_by_field == {"batch": 1}
    kinds = sorted(k for (k,) in store.con.execute("SELECT kind FROM events").fetchall())
    store.close()
    assert kinds == ["BAD_INPUT"] + ["ORDER_SENT"] * 3
    assert batch_from_wire(wire).num_rows == 3
    with pytest.raises(ValueError, match="expected the bytes of an Arrow IPC stream, got str"):
        batch_from_wire("not bytes")  # type: ignore[arg-type]


def test_one_commit_of_several_batches_keeps_each_good_row_and_refuses_each_bad_one(tmp_path, mk):
    # Arrange: what a shard commits at once: two writers' batches (wire bytes and a table),
    # bytes that are no batch, a foreign schema, and a batch with one bad row among good ones
    a = [mk.make(EventKind.ORDER_SENT, decision_id="d1", client_order_id=f"d1:A:{i}") for i in range(3)]
    b = [mk.make(EventKind.ALERT, decision_id="d2") for _ in range(2)]
    rows = encode_events(b).table.to_pylist()
    rows[1] = {**rows[1], "event_id": "x1", "kind": "TELEPORT"}
    mixed = pa.Table.from_pylist(rows, schema=encode_events(b).table.schema)
    store = LedgerStore(tmp_path / "s.duckdb")
    # Act
    res = store.append([batch_to_wire(encode_events(a).table), b"\x00garbage", pa.table({"foo": [1]}), mixed,
                        encode_events(a[:1]).table], stored_ns=3)
    kinds = sorted(k for (k,) in store.con.execute("SELECT kind FROM events").fetchall())
    store.close()
    # Assert: every good row once (a re-sent row within the commit is a duplicate), each refusal
    # with its field, recorded in the same commit
    assert sorted(r.field for r in res.refused) == ["batch", "batch", "kind"]
    assert kinds == ["ALERT"] + ["BAD_INPUT"] * 3 + ["ORDER_SENT"] * 3
    assert res.stored == 4 + 3 and res.duplicates == 1


def test_a_file_that_is_not_duckdb_gets_a_clear_error(tmp_path):
    p = tmp_path / "shard-0.duckdb"
    p.write_bytes(b"this is a spreadsheet, honest" * 10)
    with pytest.raises(LedgerFileError, match="not a DuckDB database"):
        LedgerStore(p)
    with pytest.raises(LedgerFileError, match="not a DuckDB database"):
        AuditReader(tmp_path)


def test_a_foreign_duckdb_file_gets_a_clear_error(tmp_path):
    import duckdb
    p = tmp_path / "shard-0.duckdb"
    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE prices (x INT)")
    con.close()
    with pytest.raises(LedgerFileError, match="not an xmc ledger"):
        LedgerStore(p)
    with pytest.raises(LedgerFileError, match="not an xmc ledger"):
        AuditReader(tmp_path)


def test_trace_returns_the_chain_in_time_order_with_hops_and_outcome(tmp_path):
    # Arrange: a synthetic session written to two shards
    events = list(synthetic_session(60, seed=11))
    _write(tmp_path / "shard-0.duckdb", [e for e in events if e.strategy != "au_sge_comex"]).close()
    _write(tmp_path / "shard-1.duckdb", [e for e in events if e.strategy == "au_sge_comex"]).close()
    escalated = next(e.decision_id for e in events if e.kind is EventKind.PAIR_STATE and e.payload["state"] == "ESCALATED")
    # Act
    with AuditReader(tmp_path) as r:
        tr = r.trace(escalated)
        outcomes = r.pair_outcomes()
        alerts = r.query(Filters(kind=("ALERT",), outcome="ESCALATED"), limit=None)
    # Assert
    expected = [e for e in events if e.decision_id == escalated]
    assert [h.event_id for h in tr.hops] == [e.event_id for e in sorted(expected, key=lambda e: (e.ts_ns, e.event_id))]
    assert tr.outcome == "ESCALATED"
    assert tr.hops[0].kind == "SIGNAL" and tr.hops[0].hop_us is None
    assert all(h.hop_us is not None and h.hop_us >= 0 for h in tr.hops[1:])
    n_pairs = len({e.decision_id for e in events})
    assert sum(outcomes.values()) == n_pairs
    assert set(alerts.column("decision_id").to_pylist()) <= {
        e.decision_id for e in events if e.kind is EventKind.PAIR_STATE and e.payload["state"] == "ESCALATED"}
    assert alerts.num_rows == outcomes["ESCALATED"]


def _trace_cli(tmp_path: Path, evs, stored_ns: int, capsys):  # noqa: ANN001, ANN202
    """Store ``evs`` (committed at ``stored_ns``), then trace ``g1`` with the reader and the CLI."""
    from xmc_actors.ops.cli import main
    store = LedgerStore(tmp_path / "shard-0.duckdb")
    store.append(encode_events(evs).table, stored_ns=stored_ns)
    store.close()
    with AuditReader(tmp_path) as r:
        tr = r.trace("g1")
    rc = main(["audit", "trace", "g1", "--ledger", str(tmp_path)])
    return tr, rc, capsys.readouterr().out


def test_trace_of_a_replayed_pair_measures_hops_within_each_clock(tmp_path, capsys):
    # Arrange: a replayed pair; the gateway and the strategy stamp market time (2020), the
    # coordinator wall time; all stored now
    market, wall = SimClock(1_578_036_540_000_000_000), SimClock(1_795_000_000_000_000_000)
    m_mk, w_mk = EventMaker(market, "gateway-SGE", node=2), EventMaker(wall, "coordinator", node=3)
    evs = [m_mk.make(EventKind.SIGNAL, decision_id="g1"), m_mk.make(EventKind.VENUE_DROP_COPY, decision_id="g1",
                                                                   ts_ns=market.now_ns() + 150_000)]
    for step_us in (0, 40, 1_000):
        wall.advance(step_us * 1_000)
        evs.append(w_mk.make(EventKind.PAIR_STATE, decision_id="g1", state="WORKING"))
    # Act
    tr, rc, out = _trace_cli(tmp_path, evs, wall.now_ns() + 5_000_000, capsys)
    # Assert: two clocks; no hop across them; the span is the wall-clock part (1.04 ms), not years
    assert tr.mixed_clocks and [h.clock for h in tr.hops] == ["market", "market", "wall", "wall", "wall"]
    assert [h.hop_us for h in tr.hops] == [None, 150.0, None, 40.0, 1000.0]
    assert tr.total_us == 1040.0
    assert rc == 0 and "1.040 ms first to last on the wall clock" in out and "2 events (clock 'market')" in out


def test_trace_of_a_pair_replayed_on_one_time_axis_names_its_market_time(tmp_path, capsys):
    # Arrange: today's trail of a replayed pair: everything in wall time, the gateway and the
    # strategy with the market time they decided at in market_ts_ns
    market, wall = SimClock(1_578_036_540_000_000_000), SimClock(1_795_000_000_000_000_000)
    m_mk, w_mk = EventMaker(market, "gateway-SGE", node=2, wall=wall), EventMaker(wall, "coordinator", node=3)
    evs = [m_mk.make(EventKind.SIGNAL, decision_id="g1")]
    wall.advance(40_000)
    evs.append(w_mk.make(EventKind.PAIR_STATE, decision_id="g1", state="WORKING"))
    market.advance(60_000_000_000)
    evs.append(m_mk.make(EventKind.VENUE_DROP_COPY, decision_id="g1"))
    # Act
    tr, rc, out = _trace_cli(tmp_path, evs, wall.now_ns() + 5_000_000, capsys)
    # Assert: one clock, hops measured across actors, and the replayed dates said once
    assert not tr.mixed_clocks and [h.hop_us for h in tr.hops] == [None, 40.0, 0.0]
    assert rc == 0 and "0.040 ms first to last" in out
    assert "market time (replayed): 2020-01-03 07:29:00.000000 to 2020-01-03 07:30:00.000000 UTC, on 2 of the events" in out


def test_report_is_self_contained_html_with_its_charts(tmp_path):
    _write(tmp_path / "shard-0.duckdb", list(synthetic_session(300, seed=5))).close()
    with AuditReader(tmp_path) as r:
        page = build_report(r)
    assert page.startswith("<!DOCTYPE html>")
    for title in ("Pairs by outcome", "Slippage vs trigger per leg", "latency per venue", "Unhedged exposure per traded pair",
                  "Pairs over time", "Alerts over time", "Order round-trip latency (a sample of"):
        assert title in page
    assert page.count("<svg") >= 7 and "no data in this range" not in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_export_parquet_and_json_carry_every_matching_event(tmp_path):
    import pyarrow.parquet as pq
    events = list(synthetic_session(100, seed=2))
    _write(tmp_path / "l" / "shard-0.duckdb", events).close()
    with AuditReader(tmp_path / "l") as r:
        n_all = r.export(tmp_path / "all.parquet", "parquet")
        n_lme = r.export(tmp_path / "lme.json", "json", Filters(venue="LME"))
    assert n_all == len(events) == pq.read_table(tmp_path / "all.parquet").num_rows
    assert n_lme == sum(1 for e in events if e.venue == "LME") == len((tmp_path / "lme.json").read_text().splitlines())


def test_reader_in_another_process_reads_a_snapshot_while_a_writer_holds_the_file(tmp_path, mk):
    # Arrange: this process is the writer and keeps the file open (and the lock)
    store = _write(tmp_path / "shard-0.duckdb", [mk.make(EventKind.ORDER_SENT, decision_id="live") for _ in range(500)])
    store.checkpoint()
    store.append(encode_events([mk.make(EventKind.ALERT, decision_id="live") for _ in range(7)]).table, stored_ns=2)
    code = textwrap.dedent(f"""
        from xmc_actors.ledger.audit import AuditReader
        with AuditReader({str(tmp_path)!r}) as r:
            print(r.count(), len(r.snapshots))
    """)
    # Act
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    store.close()
    # Assert: both the checkpointed rows and the ones only in the WAL are seen
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["507", "1"]


def test_reconcile_backfills_missing_orders_and_fills_once_with_deterministic_ids(mk):
    # Arrange: the trail lost leg B's ORDER_SENT and its fill; the drop copy has both legs
    sent_a = mk.make(EventKind.ORDER_SENT, decision_id="d9", client_order_id="d9:A:0")
    fill_a = mk.make(EventKind.ORDER_REPORT, decision_id="d9", client_order_id="d9:A:0", status="FILLED", trade_id="T1")
    drop = [
        mk.make(EventKind.VENUE_DROP_COPY, venue="SHFE", client_order_id="d9:A:0", trade_id="T1", status="FILLED", qty=1),
        mk.make(EventKind.VENUE_DROP_COPY, venue="LME", client_order_id="d9:B:0", trade_id="T2", status="FILLED", qty=1),
    ]
    trail = [sent_a, fill_a, *drop]
    # Act
    first = reconcile(drop_copy_rows(trail), trail, now_ns=5)
    second = reconcile(drop_copy_rows(trail + first), trail + first, now_ns=6)
    again = reconcile(drop_copy_rows(trail), trail, now_ns=7)
    # Assert
    kinds = sorted(e.kind.value for e in first)
    assert kinds == ["ORDER_REPORT", "ORDER_REPORT", "ORDER_SENT", "RECONCILE"]  # sent B, fill T2, status B, summary
    assert all(e.decision_id in ("d9", "") for e in first)
    assert all(e.reason.startswith("RECONCILED") for e in first)
    assert all(e.payload.get("reconciled") for e in first)
    assert second == []
    assert [e.event_id for e in again] == [e.event_id for e in first]


def test_a_deployment_started_on_a_ledger_goes_on_from_each_strategys_last_decision(tmp_path, mk):
    # Arrange: an earlier run's ledger in two shards; other kinds carry other ids
    from xmc_actors.runtime.deploy import last_decision_seqs
    intents = [mk.make(EventKind.INTENT, decision_id=d, strategy=s) for d, s in (
        ("gold-00000007", "gold"), ("gold-00000012", "gold"), ("gold-x-00000003", "gold-x"))]
    others = [mk.make(EventKind.SIGNAL, decision_id="gold-00000099", strategy="gold"),
              mk.make(EventKind.INTENT, decision_id="manual-x7", strategy="manual")]
    _write(tmp_path / "l" / "shard-0.duckdb", intents[:2] + others).close()
    _write(tmp_path / "l" / "shard-1.duckdb", intents[2:]).close()
    # Act / Assert: the last INTENT per strategy; an id not in the strategy's format is not guessed
    assert last_decision_seqs(tmp_path / "l") == {"gold": 12, "gold-x": 3}
    assert last_decision_seqs(tmp_path / "none") == {} and last_decision_seqs(tmp_path) == {}


def test_a_store_that_commits_on_one_thread_reads_with_more_and_goes_back(tmp_path, mk):
    store = LedgerStore(tmp_path / "s.duckdb", threads=1, read_threads=2)
    store.append(encode_events([mk.make(EventKind.ALERT, decision_id="d1")]).table, stored_ns=1)
    threads = lambda con: con.execute("SELECT current_setting('threads')").fetchone()[0]  # noqa: E731
    assert threads(store.con) == 1
    assert store.read(lambda con: (threads(con), con.execute("SELECT count(*) FROM events").fetchone()[0])) == (2, 1)
    assert threads(store.con) == 1
    with pytest.raises(duckdb.Error):
        store.read(lambda con: con.execute("SELECT * FROM no_such_table"))
    assert threads(store.con) == 1  # also after a failed read
    store.close()
