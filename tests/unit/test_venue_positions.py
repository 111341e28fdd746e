"""What the simulated venue reports as its positions (the truth a restarted RiskGuard reconciles to)."""
from __future__ import annotations

import datetime as dt

from testkit import instrument, order, quote, venue
from xmc_actors.core.clock import SimClock
from xmc_actors.model import OrderType, TimeInForce
from xmc_actors.venues.sim import SimExchange
from xmc_actors.venues.sim_config import SimVenueParams

OPEN_NS = int(dt.datetime(2025, 1, 2, 2, 0, tzinfo=dt.timezone.utc).timestamp()) * 10**9


def _sim() -> tuple[SimExchange, SimClock]:
    clock = SimClock(OPEN_NS)
    sim = SimExchange(venue("SHFE"), [instrument("SHFE.cu")], SimVenueParams.model_validate({"seed": 3}), clock)
    clock.advance(1_000_000)
    sim.on_market(quote("SHFE.cu", 72000, 72010, bid_size=5, ask_size=5, ts_ns=clock.now_ns()))
    return sim, clock


def test_positions_net_buys_and_sells_per_account_and_instrument():
    # Arrange
    sim, _ = _sim()
    ioc = dict(order_type=OrderType.IOC, tif=TimeInForce.IOC)
    sim.place(order("SHFE.cu", "BUY", 3, "72010", decision_id="d1", account="cn1", **ioc))
    sim.place(order("SHFE.cu", "SELL", 1, "72000", decision_id="d2", account="cn1", **ioc))
    sim.place(order("SHFE.cu", "SELL", 2, "72000", decision_id="d3", account="cn2", **ioc))
    sim.place(order("SHFE.cu", "BUY", 2, "71000", decision_id="d4", account="cn3"))  # rests, nothing filled
    # Act
    pos = sim.positions()
    # Assert
    assert pos == {"cn1": {"SHFE.cu": 2}, "cn2": {"SHFE.cu": -2}}


def test_a_fill_after_a_confirmed_cancel_is_in_the_positions_before_its_report_arrives():
    # Arrange: a resting buy, cancelled; the venue fills 1 lot after confirming the cancel
    sim, _ = _sim()
    sim.place(order("SHFE.cu", "BUY", 2, "71000", decision_id="d1", account="cn1"))
    sim.inject({"kind": "late_fill_after_cancel", "instrument": "SHFE.cu", "qty": 1, "delay_ms": 50})
    # Act
    sim.cancel("d1:A:0")
    # Assert: the report is still scheduled, the venue's book already holds the lot
    assert sim.poll() == []
    assert sim.positions() == {"cn1": {"SHFE.cu": 1}}
