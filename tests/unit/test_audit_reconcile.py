"""``xmc audit reconcile``: the trail checked against the drop copies the gateways really write."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.ledger.audit import AuditReader, Filters
from xmc_actors.ledger.reconcile import drop_copy_rows, reconcile
from xmc_actors.ledger.schema import encode_events
from xmc_actors.ledger.store import LedgerStore
from xmc_actors.model import ExecReportKind, ExecutionReport, Fill, OrderStatus, Side
from xmc_actors.model.events import EventKind
from xmc_actors.ops.cli import main


def _drop_copies(mk: EventMaker, coid: str, venue: str, inst: str, trade: str, px: str) -> list:
    """What a gateway records for an order filled at once: ACK then FILL, each the whole report."""
    did, leg, _ = coid.split(":")
    ack = ExecutionReport(kind=ExecReportKind.ACK, client_order_id=coid, venue=venue, instrument=inst,
                          status=OrderStatus.ACCEPTED, leaves_qty=2, decision_id=did, leg=leg)
    fill = ExecutionReport(kind=ExecReportKind.FILL, client_order_id=coid, venue=venue, instrument=inst,
                           status=OrderStatus.FILLED, filled_qty=2, decision_id=did, leg=leg,
                           fill=Fill(trade_id=trade, client_order_id=coid, venue_order_id=f"{venue}-O1", instrument=inst, side=Side.BUY, qty=2,
                                     price=Decimal(px), ts_ns=1))
    return [mk.make(EventKind.VENUE_DROP_COPY, decision_id=did, venue=venue, instrument=inst, account="acct",
                    reason=r.kind.value, report=r.model_dump(mode="json")) for r in (ack, fill)]


@pytest.fixture
def mk() -> EventMaker:
    return EventMaker(SimClock(), "test", node=1)


@pytest.fixture
def lost_fill(tmp_path: Path, mk: EventMaker) -> Path:
    """A one-shard ledger where both legs of d1 were sent and filled, but the coordinator's report
    of leg B's fill never reached the ledger (the crash case reconciliation is for)."""
    trail = [
        mk.make(EventKind.ORDER_SENT, decision_id="d1", strategy="s1", venue="SHFE", client_order_id="d1:A:0"),
        mk.make(EventKind.ORDER_SENT, decision_id="d1", strategy="s1", venue="LME", client_order_id="d1:B:0"),
        mk.make(EventKind.ORDER_REPORT, decision_id="d1", strategy="s1", venue="SHFE", client_order_id="d1:A:0",
                status="FILLED", trade_id="SHFE-T1"),
        *_drop_copies(mk, "d1:A:0", "SHFE", "SHFE.cu", "SHFE-T1", "72000"),
        *_drop_copies(mk, "d1:B:0", "LME", "LME.CA3M", "LME-T7", "9800"),
    ]
    led = tmp_path / "ledger"
    store = LedgerStore(led / "shard-0.duckdb")
    store.append(encode_events(trail).table, stored_ns=1)
    store.close()
    return led


def test_drop_copies_as_gateways_write_them_are_read_and_the_lost_fill_is_found(mk: EventMaker) -> None:
    # Arrange: the gateway's drop copy is the whole venue report under "report"
    rows = drop_copy_rows(_drop_copies(mk, "d1:B:0", "LME", "LME.CA3M", "LME-T7", "9800"))
    sent = mk.make(EventKind.ORDER_SENT, decision_id="d1", client_order_id="d1:B:0")
    # Act
    missing = reconcile(rows, [sent], now_ns=5)
    # Assert: the rows carry the order, its status and the fill's trade; the fill and the final status are missing
    assert [(r["client_order_id"], r["status"], r.get("trade_id")) for r in rows] == [
        ("d1:B:0", "ACCEPTED", None), ("d1:B:0", "FILLED", "LME-T7")]
    assert rows[1]["qty"] == 2 and rows[1]["price"] == "9800" and rows[1]["account"] == "acct"
    fills = [e for e in missing if "fill in venue drop copy" in e.reason]
    assert [e.payload["trade_id"] for e in fills] == ["LME-T7"]
    assert [e.kind for e in missing].count(EventKind.RECONCILE) == 1


def test_reconcile_lists_what_the_trail_lacks_then_write_backfills_it_once(lost_fill: Path, capsys) -> None:
    # Act 1: a dry run
    rc = main(["audit", "reconcile", "--ledger", str(lost_fill)])
    out = capsys.readouterr().out
    # Assert: exit 1, leg B's fill and final status listed, nothing written
    assert rc == 1, out
    assert "4 drop-copy rows checked" in out and "3 missing" in out
    assert "d1:B:0" in out and "fill in venue drop copy" in out and "--write" in out
    with AuditReader(lost_fill) as r:
        assert r.count() == 7
    # Act 2: write, then check again
    rc_write = main(["audit", "reconcile", "--ledger", str(lost_fill), "--write"])
    out_write = capsys.readouterr().out
    rc_again = main(["audit", "reconcile", "--ledger", str(lost_fill), "--write", "--json"])
    again = json.loads(capsys.readouterr().out)
    # Assert: stored once, marked as reconciled, and a second run finds and stores nothing
    assert rc_write == 0 and "3 missing, 3 stored" in out_write
    assert rc_again == 0 and again["missing"] == 0 and again["stored"] == 0
    with AuditReader(lost_fill) as r:
        backfilled = r.query(Filters(decision="d1", kind=("ORDER_REPORT",))).to_pylist()
        assert r.count() == 10
    assert sorted(json.loads(b["payload"]).get("trade_id") or "" for b in backfilled) == ["", "LME-T7", "SHFE-T1"]
    assert all(b["reason"].startswith("RECONCILED") for b in backfilled if b["actor"] == "xmc audit reconcile")


def test_write_on_a_ledger_a_running_deployment_holds_says_so_and_changes_nothing(lost_fill: Path, capsys) -> None:
    # Arrange: another process holds the shard open for writing, as a running ledger shard does
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from xmc_actors.ledger.store import LedgerStore
        s = LedgerStore({str(lost_fill / "shard-0.duckdb")!r})
        print("holding", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        # Act
        rc = main(["audit", "reconcile", "--ledger", str(lost_fill), "--write"])
        err = capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait(10)
    # Assert: a clear error naming the file and what to do; the ledger unchanged
    assert rc == 1
    assert "shard-0.duckdb" in err and "deployment still running" in err and "Traceback" not in err
    with AuditReader(lost_fill) as r:
        assert r.count() == 7
