"""The RiskGuard actor's money on Ray: P&L of a booked pair, the venues' two-sided positions and a
broker's account reading read from the gateways (``poll_venues``), a difference alerted."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import ray
import testkit as tk

from xmc_actors.actors.risk_guard import RiskGuard
from xmc_actors.model import Account, FxPair
from xmc_actors.model.config import DeploymentConfig

NS = "xmc-test-risk-money"


@ray.remote(num_cpus=0)
class StandInGateway:
    """What a gateway answers about its venue: two-sided positions and the broker's account."""

    def __init__(self) -> None:
        self.reading: dict[str, Any] = {}

    async def two_sided_positions(self, gateway: str | None = None) -> dict[str, Any]:
        return {"cn/SHFE.cu": {"long": {"today": 1, "yesterday": 2}, "short": {"today": 1, "yesterday": 0},
                               "trading_day": "2025-01-07"}}

    async def account_reading(self, gateway: str | None = None) -> dict[str, Any]:
        return self.reading

    async def set_reading(self, reading: dict[str, Any]) -> None:
        self.reading = reading

    async def subscribe(self, *a: Any, **k: Any) -> None:
        return None


@pytest.fixture(scope="module")
def guard() -> Any:
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace=NS, log_to_driver=False)
    dep = DeploymentConfig(
        name="risk-money", fx=(FxPair(base="USD", quote="CNY", rate=Decimal("7")),),
        instruments=tuple(tk.instruments().values()), venues=(tk.venue("SHFE", offsets=True), tk.venue("LME")),
        accounts=(Account(id="cn", broker="sim", venues=("SHFE",), currency="CNY", capital=Decimal(10_000_000)),),
        risk={"check_sessions": False, "grant_refresh_ms": 200})
    gw = StandInGateway.remote()
    g = RiskGuard.options(namespace=NS).remote(dep, gateways={"SHFE": gw}, account_poll_s=0)
    yield g, gw
    ray.shutdown()


def test_a_booked_pair_shows_pnl_and_the_gateways_readings_replace_the_guards_view(guard: Any) -> None:
    g, gw = guard
    ray.get(g.on_pair_done.remote({
        "decision_id": "d1", "strategy": "s1", "coordinator": "c1", "outcome": "HEDGED", "unhedged_ms": 0.0,
        "legs": [{"leg": "A", "instrument": "SHFE.cu", "account": "cn", "side": "BUY", "intended_qty": 2,
                  "filled_qty": 2, "avg_price": "72000", "trigger_price": "72000", "orders": 1}]}))
    st = ray.get(g.status.remote())
    assert st["pnl"]["strategies"]["s1"]["long"] == 2 and st["two_sided"]["cn/SHFE.cu"]["long"]["today"] == 2
    assert st["accounts"]["cn"]["equity_source"] == "computed"
    ours = Decimal(st["accounts"]["cn"]["computed_equity"])
    ray.get(gw.set_reading.remote({"cn": {"equity": str(ours - 300_000), "margin": "0", "currency": "CNY"}}))
    polled = ray.get(g.poll_venues.remote())
    assert polled == {"two_sided": {"SHFE": 1}, "accounts": {"cn": "SHFE"}}
    st = ray.get(g.status.remote())
    assert (st["two_sided"]["cn/SHFE.cu"]["long"]["yesterday"], st["two_sided"]["cn/SHFE.cu"]["short"]["today"]) == (2, 1)
    # (the venue's net, long 3 - short 1, agrees with the 2 lots booked: its split is taken)
    assert st["accounts"]["cn"]["equity_source"] == "broker"
    assert Decimal(st["accounts"]["cn"]["equity"]) == ours - 300_000
    assert [(a["monitor"], a["key"]) for a in st["open_alerts"]] == [("account_mismatch", "cn")]
