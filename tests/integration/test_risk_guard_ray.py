"""RiskGuard on Ray: a halt stops new orders on two coordinators; the CLI finds the guard by name.

The coordinators here are a minimal stand-in that obeys the contract in docs/architecture.md
("Risk guard"): ``on_risk_grant`` hands the grant to its PreTradeChecker and returns the ack,
``set_trading_state`` applies the pushed state at once, and every order asks ``allows_order``.
"""
from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
import ray
import testkit as tk

from xmc_actors.actors.risk_guard import ACTOR_NAME, RiskGuard
from xmc_actors.core.risk_rules import RiskGrant
from xmc_actors.model import Account, FxPair
from xmc_actors.model.config import DeploymentConfig
from xmc_actors.model.events import EventKind
from xmc_actors.ops.cli import main

NS = "xmc-test-risk"
FX = (FxPair(base="USD", quote="CNY", rate=Decimal("7.1")),)


@ray.remote(num_cpus=0)
class StandInCoordinator:
    def __init__(self, name: str, instruments: dict[str, Any], fx_pairs: tuple[FxPair, ...]) -> None:
        from xmc_actors.core.clock import SystemClock
        from xmc_actors.feeds.fx import fx_book_from_config
        from xmc_actors.core.risk_rules import PreTradeChecker, fx_from_book

        self.clock = SystemClock()
        self.chk = PreTradeChecker(instruments, {}, fx_from_book(fx_book_from_config(fx_pairs), self.clock), name=name)
        self.sent = 0
        self.denied: list[str] = []
        self.running = False

    async def on_risk_grant(self, grant: RiskGrant) -> Any:
        return self.chk.update_grant(grant)

    async def set_trading_state(self, scope: str, key: str | None, state: str, operator: str,
                                by: dict[str, Any] | None = None) -> None:
        self.by = by  # the operator's role and channel, as the risk guard recorded them
        self.chk.set_trading_state(scope, key, state)

    async def order_loop(self) -> None:
        """Sends an order every millisecond while allowed (what a coordinator does between pairs)."""
        self.running = True
        while self.running:
            d = self.chk.allows_order("s1", "SHFE", "SHFE.cu", False, self.clock.now_ns())
            if d is None:
                self.sent += 1
            else:
                self.denied.append(d.code)
            await asyncio.sleep(0.001)

    async def try_order(self) -> str | None:
        d = self.chk.allows_order("s1", "SHFE", "SHFE.cu", False, self.clock.now_ns())
        return None if d is None else str(d)

    async def stop(self) -> dict[str, Any]:
        self.running = False
        return {"sent": self.sent, "denied": self.denied}

    async def sent_count(self) -> int:
        return self.sent


@pytest.fixture(scope="module")
def deployment() -> Any:
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace=NS, log_to_driver=False)
    dep = DeploymentConfig(
        name="risk-test", fx=FX, instruments=tuple(tk.instruments().values()), venues=(tk.venue("SHFE"), tk.venue("LME")),
        accounts=(Account(id="cn", broker="sim", venues=("SHFE",), currency="CNY", capital=Decimal(10_000_000)),),
        risk={"check_sessions": False, "throttle": {"max_orders_per_s": 10_000}, "grant_refresh_ms": 200},
        # the strategies the operator commands name (they refuse a name the deployment does not have)
        strategies=[{"name": n, "class": "band", "legs": [{"instrument": "SHFE.cu", "account": "cn"},
                                                          {"instrument": "LME.CA3M", "account": "cn"}]}
                    for n in ("s1", "s7")],
    )
    guard = RiskGuard.options(name=ACTOR_NAME, namespace=NS).remote(dep)
    coords = {n: StandInCoordinator.remote(n, tk.instruments(), FX) for n in ("c1", "c2")}
    for n, h in coords.items():
        ray.get(guard.register_coordinator.remote(n, h))
    yield guard, coords
    ray.shutdown()


def test_each_coordinator_gets_a_disjoint_margin_lease(deployment: Any) -> None:
    guard, _ = deployment
    # the first coordinator to register may hold the whole free margin until it acks a smaller
    # grant: leases never overlap at any moment, and both are non-zero once a re-grant round
    # (the guard's refresh loop does the same) has been acknowledged
    st = ray.get(guard.status.remote())
    leases = [Decimal(st["coordinators"][c]["leases"].get("account:cn", "0")) for c in ("c1", "c2")]
    assert sum(leases) <= Decimal(9_000_000)
    for _ in range(2):
        ray.get(guard.regrant_all.remote())
    st = ray.get(guard.status.remote())
    leases = [Decimal(st["coordinators"][c]["leases"]["account:cn"]) for c in ("c1", "c2")]
    assert sum(leases) <= Decimal(9_000_000) and all(x > 0 for x in leases)


def test_halt_stops_new_orders_on_every_coordinator_before_their_next_order(deployment: Any) -> None:
    guard, coords = deployment
    loops = [h.order_loop.remote() for h in coords.values()]
    ray.get([h.sent_count.remote() for h in coords.values()])
    import time
    time.sleep(0.2)
    # Act
    res = ray.get(guard.halt.remote("global", None, "alice", "test"))
    after = ray.get([h.try_order.remote() for h in coords.values()])
    counts_at_halt = ray.get([h.sent_count.remote() for h in coords.values()])
    time.sleep(0.1)
    counts_later = ray.get([h.sent_count.remote() for h in coords.values()])
    stopped = ray.get([h.stop.remote() for h in coords.values()])
    ray.get(loops)
    # Assert
    assert res["ok"] and res["acks"] == {"c1": "ok", "c2": "ok"}
    assert after == ["TRADING_HALTED: scope=global state=HALTED"] * 2
    assert counts_later == counts_at_halt and all(c > 0 for c in counts_at_halt)
    assert all("TRADING_HALTED" in s["denied"] for s in stopped)
    print(f"halt acknowledged by both coordinators in {res['elapsed_ms']:.1f} ms")
    ops = ray.get(guard.events.remote("OPERATOR"))
    assert ops[-1].payload["operator"] == "alice" and ops[-1].payload["state"] == "HALTED"
    # resume: orders flow again once the grant agrees
    ray.get(guard.resume.remote("global", None, "alice"))
    assert ray.get([h.try_order.remote() for h in coords.values()]) == [None, None]


def test_cli_halt_and_resume_a_strategy_through_the_running_guard(deployment: Any, capsys: Any) -> None:
    guard, coords = deployment
    assert main(["halt", "--strategy", "s1", "--operator", "bob", "--namespace", NS]) == 0
    assert "strategy s1: HALTED by bob" in capsys.readouterr().out
    assert ray.get(coords["c1"].try_order.remote()) == "TRADING_HALTED: scope=strategy:s1 state=HALTED"
    assert main(["resume", "--strategy", "s1", "--operator", "bob", "--namespace", NS]) == 0
    assert ray.get(coords["c1"].try_order.remote()) is None


def test_cli_refuses_an_action_without_operator_and_names_a_missing_deployment(deployment: Any, capsys: Any) -> None:
    assert main(["halt", "--namespace", NS]) == 2
    assert "--operator NAME is required" in capsys.readouterr().err
    assert main(["halt", "--operator", "bob", "--namespace", "nowhere"]) == 3
    assert "no actor 'risk-guard' in namespace 'nowhere'" in capsys.readouterr().err


def test_cli_limits_set_reaches_the_coordinators(deployment: Any, capsys: Any) -> None:
    guard, _ = deployment
    assert main(["limits", "set", "--instrument", "SHFE.cu", "max_order_qty=3", "--operator", "carol", "--namespace", NS]) == 0
    st = ray.get(guard.status.remote())
    assert st["limits"]["instruments"]["SHFE.cu"]["max_order_qty"] == 3
    assert main(["limits", "set", "--section", "occupancy", "red=0.1", "--operator", "carol", "--namespace", NS]) == 2
    assert "levels must rise" in capsys.readouterr().err


def test_pair_summary_with_an_escalation_halts_the_strategy_everywhere(deployment: Any) -> None:
    guard, coords = deployment
    summary = {"decision_id": "dX", "strategy": "s7", "coordinator": "c1", "outcome": "ESCALATED", "unhedged_ms": 8000,
               "legs": [{"leg": "A", "instrument": "SHFE.cu", "account": "cn", "side": "BUY", "filled_qty": 1,
                         "avg_price": "72000", "trigger_price": "72000", "orders": 1}]}
    assert ray.get(guard.on_pair_done.remote(summary)) >= 1
    st = ray.get(guard.status.remote())
    assert st["trading_states"]["strategy:s7"] == "HALTED"
    assert any(a["level"] == "red" and a["key"] == "s7" for a in st["open_alerts"])
    alerts = ray.get(guard.events.remote(EventKind.ALERT.value))
    assert alerts and alerts[-1].payload["level"] == "red"
