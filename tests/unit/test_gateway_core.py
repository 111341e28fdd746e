"""The gateway core without Ray: order entry outcomes, drop copy, pushes by owner, status."""
from __future__ import annotations

from testkit import instrument, order, quote, venue
from xmc_actors.core.clock import SimClock
from xmc_actors.core.gateway_core import GatewayCore
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import EventKind, ExecReportKind, OrderStatus, RejectReason
from xmc_actors.venues.sim import SimExchange
from xmc_actors.venues.sim_config import SimVenueParams

T0 = 1_735_808_400_000_000_000


def _core(**params: object) -> tuple[GatewayCore, SimClock, MemorySink]:
    clock, sink = SimClock(T0), MemorySink()
    p = SimVenueParams.model_validate({"seed": 5, "enforce_sessions": False, **params})
    sim = SimExchange(venue("SHFE"), [instrument("SHFE.cu")], p, clock)
    core = GatewayCore(venue("SHFE"), [instrument("SHFE.cu")], sim, clock, sink, ack_timeout_ns=500_000_000)
    clock.advance(1_000)
    core.on_market(quote("SHFE.cu", 72000, 72010, bid_size=5, ask_size=5, ts_ns=clock.now_ns()))
    return core, clock, sink


def test_repeated_client_order_id_never_creates_a_second_order():
    core, clock, sink = _core()
    req = order("SHFE.cu", "BUY", 2, "72010")

    first, _ = core.place(req)
    second, _ = core.place(req)

    assert [r.kind for r in first] == [ExecReportKind.ACK, ExecReportKind.FILL]
    assert [r.kind for r in second] == [ExecReportKind.STATUS] and second[0].filled_qty == 2
    assert len(core.adapter.orders) == 1 and core.counters["duplicate_places"] == 1


def test_lost_answer_reports_unknown_after_the_ack_timeout_and_query_resolves_it():
    core, clock, sink = _core()
    core.adapter.inject({"kind": "no_ack_next"})

    reps, waited = core.place(order("SHFE.cu", "BUY", 1, "72010"))
    resolved = core.query("d1:A:0")

    assert reps[0].status is OrderStatus.UNKNOWN and "query" in reps[0].text
    assert waited == 500_000_000
    assert resolved.kind is ExecReportKind.STATUS and resolved.status is OrderStatus.FILLED


def test_order_lost_before_the_venue_is_unknown_and_the_venue_never_saw_it():
    core, clock, sink = _core()
    core.adapter.inject({"kind": "drop_next"})

    reps, _ = core.place(order("SHFE.cu", "BUY", 1, "72010"))

    assert reps[0].status is OrderStatus.UNKNOWN
    assert core.query("d1:A:0") is None


def test_disconnected_venue_gets_a_definitive_venue_error_reject_not_sent():
    core, clock, sink = _core()
    core.adapter.inject({"kind": "disconnect", "ms": 50})

    reps, _ = core.place(order("SHFE.cu", "BUY", 1, "72010"))
    cancel, _ = core.cancel("d1:A:0")

    assert reps[0].kind is ExecReportKind.REJECTED and reps[0].reason is RejectReason.VENUE_ERROR
    assert "not sent" in reps[0].text
    assert cancel.kind is ExecReportKind.CANCEL_REJECTED and cancel.reason is RejectReason.VENUE_ERROR


def test_every_venue_report_is_written_as_a_drop_copy_event_under_its_decision_id():
    core, clock, sink = _core()

    core.place(order("SHFE.cu", "BUY", 2, "72010", decision_id="dX"))
    core.place(order("SHFE.cu", "SELL", 1, "80000", decision_id="dY"))  # outside the band? no band: rests
    core.cancel("dY:A:0")

    drop = [e for e in sink.events if e.kind is EventKind.VENUE_DROP_COPY]
    assert [(e.decision_id, e.payload["report"]["kind"]) for e in drop] == [
        ("dX", "ACK"), ("dX", "FILL"), ("dY", "ACK"), ("dY", "CANCELED")]


def test_resting_fills_are_queued_for_the_orders_owner_in_venue_order():
    core, clock, sink = _core()
    core.place(order("SHFE.cu", "BUY", 1, "71990", owner="coord-1", leg="A"))
    core.place(order("SHFE.cu", "BUY", 1, "71980", owner="coord-2", leg="B"))

    clock.advance(1_000)
    core.on_market(quote("SHFE.cu", 71960, 71970, ts_ns=clock.now_ns()))
    pushes = core.drain_pushes()

    assert set(pushes) == {"coord-1", "coord-2"}
    assert [r.client_order_id for r in pushes["coord-1"]] == ["d1:A:0"]
    assert core.drain_pushes() == {}


def test_reports_carry_calibrated_timestamps_not_the_venue_clock():
    core, clock, sink = _core(faults={"clock_skew_ms": 250})
    for _ in range(20):
        clock.advance(100_000_000)
        core.tick()

    reps, _ = core.place(order("SHFE.cu", "BUY", 1, "72010"))

    assert abs(reps[0].venue_ts_ns - clock.now_ns() - 250_000_000) < 5_000_000
    assert abs(reps[0].ts_ns - clock.now_ns()) < 5_000_000
    assert core.status()["clock_source"] == "round_trip"


def test_orders_placed_in_steps_reach_the_venue_only_when_sent_and_answer_as_one_place_would():
    core, clock, sink = _core()
    a, b = order("SHFE.cu", "BUY", 2, "72010", leg="A"), order("SHFE.cu", "BUY", 1, "72010", leg="B")
    # Act: both prepared, then both sent, then both answers read (a gateway group's way)
    pa, pb = core.place_prepare(a), core.place_prepare(b)
    seen_after_prepare = dict(core.adapter.orders)
    sa, sb = core.place_send(pa), core.place_send(pb)
    (ra, _), (rb, _) = core.place_done(sa), core.place_done(sb)
    again, _ = core.place_done(core.place_send(core.place_prepare(a)))
    # Assert: nothing reached the venue before it was sent; each answer is what place() gives
    assert seen_after_prepare == {}
    assert [r.kind for r in ra] == [ExecReportKind.ACK, ExecReportKind.FILL] and ra[-1].filled_qty == 2
    assert [r.kind for r in rb] == [ExecReportKind.ACK, ExecReportKind.FILL] and rb[-1].filled_qty == 1
    assert [r.kind for r in again] == [ExecReportKind.STATUS] and core.counters["duplicate_places"] == 1


def test_a_venue_that_drops_between_send_and_answer_never_got_the_order():
    core, clock, sink = _core()
    sent = core.place_send(core.place_prepare(order("SHFE.cu", "BUY", 1, "72010")))
    core.adapter.inject({"kind": "disconnect", "ms": 50})

    reps, _ = core.place_done(sent)

    assert reps[0].kind is ExecReportKind.REJECTED and reps[0].reason is RejectReason.VENUE_ERROR
    assert "order not sent" in reps[0].text and core.adapter.orders == {}


def test_an_order_for_an_account_the_gateway_does_not_carry_is_refused_and_never_sent():
    clock, sink = SimClock(T0), MemorySink()
    sim = SimExchange(venue("SHFE"), [instrument("SHFE.cu")], SimVenueParams(seed=5, enforce_sessions=False), clock)
    core = GatewayCore(venue("SHFE"), [instrument("SHFE.cu")], sim, clock, sink, name="gateway-SHFE-b2",
                       accounts=["cn-b2"])
    clock.advance(1_000)
    core.on_market(quote("SHFE.cu", 72000, 72010, bid_size=5, ask_size=5, ts_ns=clock.now_ns()))

    wrong, _ = core.place(order("SHFE.cu", "BUY", 1, "72010", decision_id="d1", account="cn"))
    right, _ = core.place(order("SHFE.cu", "BUY", 1, "72010", decision_id="d2", account="cn-b2"))

    assert wrong[0].kind is ExecReportKind.REJECTED and "'cn' is not carried by gateway-SHFE-b2" in wrong[0].text
    assert [r.kind for r in right][0] is ExecReportKind.ACK
    assert len(sim.orders) == 1 and core.counters["wrong_account"] == 1
    # the refusal is in the drop copy like any reject
    assert any(e.kind is EventKind.VENUE_DROP_COPY and e.payload["report"]["client_order_id"] == "d1:A:0"
               and e.payload["report"]["kind"] == "REJECTED" for e in sink.events)
