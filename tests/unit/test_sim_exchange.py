"""The simulated exchange core: matching, exchange rules, faults, drop copy (no Ray)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from testkit import instrument, order, quote, venue
from xmc_actors.core.clock import SimClock
from xmc_actors.model import ExecReportKind, OrderStatus, OrderType, RejectReason, TimeInForce
from xmc_actors.venues.sim import SimExchange, VenueDisconnected
from xmc_actors.venues.sim_config import FaultConfig, SimVenueParams

# 2025-01-02 10:00 Shanghai: SHFE copper is in its morning session
OPEN_NS = int(dt.datetime(2025, 1, 2, 2, 0, tzinfo=dt.timezone.utc).timestamp()) * 10**9
CLOSED_NS = int(dt.datetime(2025, 1, 2, 4, 0, tzinfo=dt.timezone.utc).timestamp()) * 10**9  # 12:00 lunch


def _sim(start: int = OPEN_NS, **params: object) -> tuple[SimExchange, SimClock]:
    clock = SimClock(start)
    p = SimVenueParams.model_validate({"seed": 3, **params})
    return SimExchange(venue("SHFE"), [instrument("SHFE.cu")], p, clock), clock


def _market(sim: SimExchange, clock: SimClock, bid: int, ask: int, *, size: int = 10, **kw: object):
    clock.advance(1_000_000)
    return sim.on_market(quote("SHFE.cu", bid, ask, bid_size=size, ask_size=size, ts_ns=clock.now_ns(), **kw))


def test_buy_limit_sweeps_visible_asks_up_to_its_limit_then_rests():
    sim, clock = _sim()
    _market(sim, clock, 72000, 72010, size=4)
    sim.books["SHFE.cu"].asks.append([Decimal("72020"), 3])  # a second visible level

    reply = sim.place(order("SHFE.cu", "BUY", 10, "72020"))

    kinds = [r.kind for r in reply.reports]
    assert kinds == [ExecReportKind.ACK, ExecReportKind.FILL, ExecReportKind.FILL]
    assert [(r.fill.qty, r.fill.price) for r in reply.reports[1:]] == [(4, Decimal("72010")), (3, Decimal("72020"))]
    assert reply.reports[-1].status is OrderStatus.PARTIALLY_FILLED and reply.reports[-1].leaves_qty == 3
    assert sim.books["SHFE.cu"].resting[0].req.client_order_id == "d1:A:0"


def test_ioc_fills_what_is_there_and_cancels_the_remainder():
    sim, clock = _sim()
    _market(sim, clock, 72000, 72010, size=2)

    reply = sim.place(order("SHFE.cu", "BUY", 5, "72010", order_type=OrderType.IOC, tif=TimeInForce.IOC))

    assert [r.kind for r in reply.reports] == [ExecReportKind.ACK, ExecReportKind.FILL, ExecReportKind.CANCELED]
    assert reply.reports[-1].filled_qty == 2 and reply.reports[-1].status is OrderStatus.CANCELED


def test_fok_short_of_liquidity_is_rejected_whole_and_takes_nothing():
    sim, clock = _sim()
    _market(sim, clock, 72000, 72010, size=2)

    reply = sim.place(order("SHFE.cu", "BUY", 5, "72010", order_type=OrderType.FOK, tif=TimeInForce.FOK))

    assert [r.kind for r in reply.reports] == [ExecReportKind.REJECTED]
    assert reply.reports[0].reason is RejectReason.FOK_UNFILLABLE
    assert sim.books["SHFE.cu"].asks[0][1] == 2


def test_taken_liquidity_stays_taken_until_the_next_market_quote():
    sim, clock = _sim()
    _market(sim, clock, 72000, 72010, size=3)
    sim.place(order("SHFE.cu", "BUY", 3, "72010", leg="A"))

    second = sim.place(order("SHFE.cu", "BUY", 3, "72010", leg="B"))

    assert [r.kind for r in second.reports] == [ExecReportKind.ACK]


def test_resting_orders_fill_in_price_time_priority_when_the_market_trades_through():
    sim, clock = _sim()
    _market(sim, clock, 72000, 72010)
    sim.place(order("SHFE.cu", "BUY", 2, "71990", leg="old"))
    sim.place(order("SHFE.cu", "BUY", 2, "71990", leg="young"))
    sim.place(order("SHFE.cu", "BUY", 2, "72000", leg="top"))

    reports, _ = _market(sim, clock, 71970, 71980, size=5)

    filled = [(r.client_order_id, r.fill.qty) for r in reports if r.kind is ExecReportKind.FILL]
    assert filled == [("d1:top:0", 2), ("d1:old:0", 2), ("d1:young:0", 1)]
    assert all(r.fill.price in (Decimal("72000"), Decimal("71990")) for r in reports)


@pytest.mark.parametrize(("req_kw", "reason"), [
    ({"inst_id": "SHFE.zz"}, RejectReason.UNKNOWN_INSTRUMENT),
    ({"qty": 600}, RejectReason.QTY_ABOVE_MAX),
    ({"price": "72005"}, RejectReason.OFF_TICK),
    ({"price": "75000"}, RejectReason.PRICE_OUT_OF_LIMIT),
])
def test_exchange_rules_reject_with_the_reason(req_kw: dict, reason: RejectReason):
    sim, clock = _sim()
    _market(sim, clock, 72000, 72010, settlement=Decimal("72000"))
    args = {"inst_id": "SHFE.cu", "side": "BUY", "qty": 1, "price": "72010", **req_kw}

    reply = sim.place(order(args.pop("inst_id"), args.pop("side"), args.pop("qty"), args.pop("price")))

    assert reply.reports[0].kind is ExecReportKind.REJECTED and reply.reports[0].reason is reason
    assert reply.reports[0].text  # says why


def test_order_outside_trading_sessions_is_rejected_market_closed():
    sim, clock = _sim(start=CLOSED_NS)
    _market(sim, clock, 72000, 72010)

    reply = sim.place(order("SHFE.cu", "BUY", 1, "72010"))

    assert reply.reports[0].reason is RejectReason.MARKET_CLOSED and "closed" in reply.reports[0].text


def test_limit_up_with_no_sellers_is_limit_locked_for_buyers():
    sim, clock = _sim()
    clock.advance(1)
    sim.on_market(quote("SHFE.cu", 74160, 74170, ts_ns=clock.now_ns(), settlement=Decimal("72000"))
                  .model_copy(update={"ask": None, "ask_size": 0}))

    buy = sim.place(order("SHFE.cu", "BUY", 1, "74160", leg="A"))
    sell = sim.place(order("SHFE.cu", "SELL", 1, "74160", leg="B"))

    assert buy.reports[0].reason is RejectReason.LIMIT_LOCKED
    assert sell.reports[-1].status is OrderStatus.FILLED


def test_day_order_expires_when_the_trading_day_changes():
    sim, clock = _sim()
    _market(sim, clock, 72000, 72010)
    sim.place(order("SHFE.cu", "BUY", 1, "71000"))

    clock.set(OPEN_NS + 86_400 * 10**9)  # the next day, 10:00
    reports, _ = _market(sim, clock, 72000, 72010)

    assert [r.kind for r in reports] == [ExecReportKind.EXPIRED]
    assert sim.query("d1:A:0").status is OrderStatus.EXPIRED


def test_same_seed_same_random_rejects_and_partial_fills():
    def run() -> list[tuple]:
        sim, clock = _sim(faults={"reject_prob": {"PRICE_OUT_OF_LIMIT": 0.3}, "partial_fill_prob": 0.5})
        out = []
        for k in range(40):
            _market(sim, clock, 72000, 72010, size=50)
            r = sim.place(order("SHFE.cu", "BUY", 5, "72010", decision_id=f"d{k}"))
            out.append(tuple((x.kind, x.filled_qty, x.reason) for x in r.reports))
        return out

    first, second = run(), run()

    assert first == second
    kinds = {x[0][0] for x in first}
    assert ExecReportKind.REJECTED in kinds and ExecReportKind.ACK in kinds
    assert any(x[-1][1] not in (0, 5) for x in first)  # some partial fills


def test_delay_fills_holds_the_fill_until_its_time():
    sim, clock = _sim()
    _market(sim, clock, 72000, 72010)
    sim.inject({"kind": "delay_fills", "ms": 50})

    reply = sim.place(order("SHFE.cu", "BUY", 1, "72010"))
    early = sim.poll(clock.now_ns() + 10_000_000)
    late = sim.poll(clock.now_ns() + 60_000_000)

    assert [r.kind for r in reply.reports] == [ExecReportKind.ACK]
    assert early == [] and [r.kind for r in late] == [ExecReportKind.FILL]


def test_fill_after_cancel_confirmed_is_delivered_later():
    sim, clock = _sim()
    _market(sim, clock, 72000, 72010)
    sim.place(order("SHFE.cu", "BUY", 3, "71900"))
    sim.inject({"kind": "late_fill_after_cancel", "qty": 2, "delay_ms": 5})

    canceled, _ = sim.cancel("d1:A:0")
    late = sim.poll(clock.now_ns() + 10_000_000)

    assert canceled.kind is ExecReportKind.CANCELED
    assert [(r.kind, r.fill.qty) for r in late] == [(ExecReportKind.FILL, 2)]
    assert sim.query("d1:A:0").filled_qty == 2


def test_disconnect_refuses_orders_until_it_ends():
    sim, clock = _sim()
    _market(sim, clock, 72000, 72010)
    sim.inject({"kind": "disconnect", "ms": 100})

    with pytest.raises(VenueDisconnected):
        sim.place(order("SHFE.cu", "BUY", 1, "72010"))
    clock.advance(101_000_000)
    reply = sim.place(order("SHFE.cu", "BUY", 1, "72010"))

    assert reply.reports[-1].status is OrderStatus.FILLED


def test_drop_copy_records_orders_whose_answers_were_lost():
    sim, clock = _sim()
    _market(sim, clock, 72000, 72010)
    sim.inject({"kind": "no_ack_next"})

    reply = sim.place(order("SHFE.cu", "BUY", 1, "72010"))

    assert reply.lost and not reply.unseen
    assert [d["kind"] for d in sim.drop_copy()] == ["ACK", "FILL"]
    assert sim.drop_copy()[1]["fill_qty"] == 1


def test_venue_clock_applies_skew_and_drift():
    clock = SimClock(OPEN_NS)
    p = SimVenueParams(faults=FaultConfig(clock_skew_ms=-250, clock_drift_ppm=100))
    sim = SimExchange(venue("SHFE"), [instrument("SHFE.cu")], p, clock)

    clock.advance(10 * 10**9)

    assert sim.venue_clock.now_ns() - clock.now_ns() == -250_000_000 + 1_000_000  # 100 ppm of 10 s


def test_unknown_fault_kind_is_refused_with_its_name():
    sim, _ = _sim()
    with pytest.raises(ValueError, match="explode"):
        sim.inject({"kind": "explode"})
