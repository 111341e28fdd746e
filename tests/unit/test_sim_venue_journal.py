"""The simulated venue keeps its memory in a journal, so a restarted gateway can reconcile."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from testkit import instrument, order, quote, venue
from xmc_actors.core.clock import SimClock
from xmc_actors.core.gateway_core import GatewayCore
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import EventKind, ExecReportKind, OrderStatus, OrderType, TimeInForce
from xmc_actors.venues import build_sim
from xmc_actors.venues.journal import VenueJournal, journal_path
from xmc_actors.venues.sim_config import SimVenueParams

T0 = int(dt.datetime(2025, 1, 2, 2, 0, tzinfo=dt.timezone.utc).timestamp()) * 10**9


def _sim(tmp_path, *, restart: bool, clock: SimClock | None = None):
    clock = clock or SimClock(T0)
    p = SimVenueParams.model_validate({"seed": 3, "enforce_sessions": False, "state_dir": str(tmp_path)})
    return build_sim(p, venue("SHFE"), [instrument("SHFE.cu")], clock, gateway="gateway-SHFE", restart=restart), clock


def _market(sim, clock, bid, ask, size=10):
    clock.advance(1_000_000)
    return sim.on_market(quote("SHFE.cu", bid, ask, bid_size=size, ask_size=size, ts_ns=clock.now_ns()))


def _trade(sim, clock):
    """Three orders: one filled IOC, one resting partly filled, one rejected (off tick)."""
    _market(sim, clock, 72000, 72010, size=4)
    sim.place(order("SHFE.cu", "BUY", 2, "72010", decision_id="d1", order_type=OrderType.IOC,
                    tif=TimeInForce.IOC, owner="coordinator"))
    sim.place(order("SHFE.cu", "BUY", 5, "72010", decision_id="d2", owner="coordinator"))  # 2 left, 3 rest
    sim.place(order("SHFE.cu", "SELL", 1, "72000.5", decision_id="d3", owner="coordinator"))


def test_a_restarted_venue_has_the_orders_fills_and_drop_copy_of_its_previous_life(tmp_path):
    # Arrange: trade, then "lose the process" (a new SimExchange over the same journal)
    first, clock = _sim(tmp_path, restart=False)
    _trade(first, clock)
    before = {c: (o.state.status, o.state.filled_qty, o.state.avg_price) for c, o in first.orders.items()}

    # Act
    again, _ = _sim(tmp_path, restart=True, clock=clock)

    # Assert
    assert {c: (o.state.status, o.state.filled_qty, o.state.avg_price) for c, o in again.orders.items()} == before
    assert again.drop_copy() == first.drop_copy()
    assert again.restored == {"orders": 3, "fills": 2, "live": 1, "unreadable": 0}
    assert [o.req.client_order_id for o in again.books["SHFE.cu"].resting] == ["d2:A:0"]
    # the restored resting order still trades, and sequence numbers continue (no reused trade id)
    reps, _ = _market(again, clock, 71990, 72000, size=10)
    fill = next(r for r in reps if r.kind is ExecReportKind.FILL)
    assert fill.client_order_id == "d2:A:0" and fill.status is OrderStatus.FILLED
    assert fill.fill.trade_id not in {d["trade_id"] for d in first.drop_copy()}
    # and the venue still de-duplicates a client order id of its previous life
    dup = again.place(order("SHFE.cu", "BUY", 2, "72010", decision_id="d1", order_type=OrderType.IOC,
                            tif=TimeInForce.IOC))
    assert [r.kind for r in dup.reports] == [ExecReportKind.STATUS]


def test_a_fresh_start_begins_a_new_journal(tmp_path):
    first, clock = _sim(tmp_path, restart=False)
    _trade(first, clock)

    fresh, _ = _sim(tmp_path, restart=False, clock=clock)

    assert fresh.orders == {} and fresh.drop_copy() == [] and fresh.restored == {}


def test_a_record_torn_by_a_crash_is_dropped_and_the_journal_goes_on_after_the_last_whole_one(tmp_path):
    first, clock = _sim(tmp_path, restart=False)
    _trade(first, clock)
    path = journal_path(tmp_path, "gateway-SHFE")
    whole = len(VenueJournal.read(path)[0])
    with open(path, "ab") as f:
        f.write(b"\x92\xa1R")  # a two-element array cut after its first element

    again, _ = _sim(tmp_path, restart=True, clock=clock)
    again.place(order("SHFE.cu", "SELL", 1, "72000", decision_id="d4"))

    records, torn = VenueJournal.read(path)
    assert again.journal.truncated_bytes == 3
    assert torn == 0 and len(records) > whole  # the new records follow the last whole one


def test_restarted_gateway_reconciles_recovered_orders_to_their_owner_and_the_ledger(tmp_path):
    # Arrange: an order whose answer never came back (the gateway died while it waited)
    clock = SimClock(T0)
    sim, _ = _sim(tmp_path, restart=False, clock=clock)
    _market(sim, clock, 72000, 72010, size=4)
    sim.place(order("SHFE.cu", "BUY", 3, "72010", decision_id="d9", leg="B", order_type=OrderType.IOC,
                    tif=TimeInForce.IOC, owner="coordinator", account="us"))

    # Act: a restarted gateway over the same venue memory
    again, _ = _sim(tmp_path, restart=True, clock=clock)
    sink = MemorySink()
    core = GatewayCore(venue("SHFE"), [instrument("SHFE.cu")], again, clock, sink, name="gateway-SHFE")
    counts = core.reconcile()

    # Assert: the owner gets the venue's word, the ledger a RECONCILE event, and the gateway knows
    # the order again (a later query or cancel finds it)
    assert counts == {"orders": 1, "live": 0, "with_fills": 1}
    pushes = core.drain_pushes()
    (rep,) = pushes["coordinator"]
    assert rep.kind is ExecReportKind.STATUS and rep.status is OrderStatus.FILLED and rep.filled_qty == 3
    # and the trail gets each execution the venue made, with its trade id, as the venue's drop
    # copy: the previous life may have died holding them (the owner is not pushed them again)
    venue_trades = {r["trade_id"] for r in again.drop_copy() if r["trade_id"]}
    drop = [e for e in sink.events if e.kind is EventKind.VENUE_DROP_COPY]
    assert venue_trades and {e.payload["report"]["fill"]["trade_id"] for e in drop} == venue_trades
    assert rep.avg_price == Decimal("72010") and rep.decision_id == "d9" and rep.leg == "B"
    rec = [e for e in sink.events if e.kind is EventKind.RECONCILE]
    assert rec[0].decision_id == "d9" and rec[0].payload["status"] == "FILLED" and rec[0].account == "us"
    assert rec[-1].payload == {"orders": 1, "live": 0, "with_fills": 1}
    assert core.orders["d9:B:0"].filled_qty == 3
    assert core.cancel("d9:B:0")[0].kind is ExecReportKind.CANCEL_REJECTED


def test_a_gateway_without_venue_memory_reconciles_nothing(tmp_path):
    clock = SimClock(T0)
    p = SimVenueParams.model_validate({"seed": 3, "enforce_sessions": False})
    sim = build_sim(p, venue("SHFE"), [instrument("SHFE.cu")], clock, restart=True)
    core = GatewayCore(venue("SHFE"), [instrument("SHFE.cu")], sim, clock, MemorySink())

    assert core.reconcile() == {"orders": 0, "live": 0, "with_fills": 0}
    assert sim.journal is None


def _lost_fill_answer(tmp_path, did: str, **kw):
    """A gateway core over a journalled venue that filled 3 lots of ``did``'s leg A while the
    answer was lost (no_ack_next): the gateway knows nothing of the fill."""
    clock = SimClock(T0)
    sim, _ = _sim(tmp_path, restart=False, clock=clock)
    sink = MemorySink()
    core = GatewayCore(venue("SHFE"), [instrument("SHFE.cu")], sim, clock, sink, name="gateway-SHFE")
    _market(sim, clock, 72000, 72010, size=4)
    sim.inject({"kind": "no_ack_next"})
    first, _ = core.place(order("SHFE.cu", "BUY", 3, "72010", decision_id=did, leg="A", owner="coordinator", **kw))
    core.drain_pushes()
    return sim, sink, core, first


def test_a_status_answer_that_reveals_unheard_fills_brings_each_execution_with_its_trade_id(tmp_path):
    # Arrange: the order is UNKNOWN to the gateway
    sim, sink, core, first = _lost_fill_answer(tmp_path, "d7", order_type=OrderType.IOC, tif=TimeInForce.IOC)
    assert first[0].kind is ExecReportKind.STATUS and first[0].status is OrderStatus.UNKNOWN
    # Act: the owner asks the venue
    status = core.query("d7:A:0")
    # Assert: the answer says FILLED, and the owner is pushed each execution with its trade id,
    # which the trail records as the venue's drop copy
    assert status.status is OrderStatus.FILLED and status.filled_qty == 3
    fills = core.drain_pushes()["coordinator"]
    venue_trades = {r["trade_id"] for r in sim.drop_copy() if r["trade_id"]}
    assert {f.fill.trade_id for f in fills} == venue_trades and sum(f.fill.qty for f in fills) == 3
    core.flush_drop_copy()
    assert {e.payload["report"]["fill"]["trade_id"] for e in sink.events
            if e.kind is EventKind.VENUE_DROP_COPY and e.payload["report"]["kind"] == "FILL"} == venue_trades
    # asking again brings nothing twice
    core.query("d7:A:0")
    assert core.drain_pushes().get("coordinator", []) == []


def test_a_cancel_reject_that_says_filled_brings_the_executions_whose_answer_was_lost(tmp_path):
    # Arrange: the venue filled the order but the answer is lost; the gateway then tries to
    # cancel it and the venue answers TOO_LATE_TO_CANCEL, FILLED (no execution in that answer)
    sim, _, core, _ = _lost_fill_answer(tmp_path, "d8")
    # Act
    rep, _ = core.cancel("d8:A:0")
    # Assert: the reject, and the lost execution pushed to the owner with its trade id
    assert rep.kind is ExecReportKind.CANCEL_REJECTED and rep.filled_qty == 3
    fills = core.drain_pushes()["coordinator"]
    venue_trades = {r["trade_id"] for r in sim.drop_copy() if r["trade_id"]}
    assert venue_trades and {f.fill.trade_id for f in fills} == venue_trades
