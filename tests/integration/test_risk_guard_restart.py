"""Reading the trail through the shard actors, and a RiskGuard that Ray restarts rebuilding from it.

One Ray instance for the module; each test starts its own ledger shards in a namespace of
its own (so ``ledger-<n>`` and ``risk-guard`` are fresh per test).
"""
from __future__ import annotations

import asyncio
import time

import pytest
import ray

from testkit import wait_until
from xmc_actors.core.clock import SystemClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.ledger.actor import start_ledger
from xmc_actors.ledger.client import LedgerClient
from xmc_actors.ledger.reader import read_trail
from xmc_actors.ledger.store import LedgerError
from xmc_actors.model.config import LedgerConfig
from xmc_actors.model.events import EventKind

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_ns():
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="test-rg-restart", log_to_driver=False)
    yield "test-rg-restart"
    ray.shutdown()


def _ns(tmp_path) -> str:
    return f"test-rg-restart-{tmp_path.name}"


def _stop(handles) -> None:
    for h in handles:
        ray.kill(h, no_restart=True)


def test_read_trail_returns_every_acknowledged_event_of_all_shards_in_time_order(ray_ns, tmp_path):
    # Arrange: two shards, events of three strategies (spread over both), one durable write
    cfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=2, shard_by="strategy", flush_ms=50, batch_size=500)
    shards = start_ledger(cfg, _ns(tmp_path))
    client = LedgerClient(shards, cfg)
    mk = EventMaker(SystemClock(), "test")
    written = []
    for i in range(30):
        e = mk.make(EventKind.RISK_DECISION, decision_id=f"d{i}", strategy=f"s{i % 3}", reason="BOOKED", legs=[])
        written.append(e)
        client.emit(e)
    last = mk.make(EventKind.OPERATOR, strategy="s1", reason="HALTED strategy:s1", operator="alice")
    client.emit_durable(last).result(10)
    client.emit(mk.make(EventKind.ORDER_SENT, decision_id="d0", strategy="s0"))
    client.flush(10)
    # Act
    got = asyncio.run(read_trail(shards, kinds=["RISK_DECISION", "OPERATOR"]))
    only_d3 = asyncio.run(read_trail(shards, decision_ids=["d3"]))
    first5 = asyncio.run(read_trail(shards, kinds=["RISK_DECISION"], limit=5))
    # Assert
    assert [e.event_id for e in got] == [e.event_id for e in sorted(written + [last], key=lambda e: (e.ts_ns, e.event_id))]
    assert got[-1].payload["operator"] == "alice"
    assert [e.decision_id for e in only_d3] == ["d3"]
    assert [e.decision_id for e in first5] == ["d0", "d1", "d2", "d3", "d4"]
    client.close(5)
    _stop(shards)


def test_read_events_commits_what_the_shard_holds_queued_before_reading(ray_ns, tmp_path):
    # Arrange: a long flush interval, so an append sits queued in the shard when the read arrives
    from xmc_actors.ledger.actor import LedgerShardActor
    from xmc_actors.ledger.schema import encode_events

    shard = LedgerShardActor.options(num_cpus=0, max_concurrency=100).remote(
        str(tmp_path / "shard-0.duckdb"), 0, 30_000.0, 10_000)
    ray.get(shard.ready.remote())

    mk = EventMaker(SystemClock(), "test")
    e = mk.make(EventKind.ALERT, reason="queued", level="red")
    pending = shard.append.remote(encode_events([e]).table)
    time.sleep(0.2)
    # Act
    got = ray.get(shard.read_events.remote(["ALERT"]), timeout=3)
    # Assert: returned well before the 30 s flush, and the append is acknowledged too
    assert [x.event_id for x in got] == [e.event_id]
    assert ray.get(pending, timeout=1) == 1
    _stop([shard])


def test_read_trail_with_a_shard_down_raises_naming_it_instead_of_returning_part(ray_ns, tmp_path):
    # Arrange
    cfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=2, shard_by="strategy", flush_ms=2)
    shards = start_ledger(cfg, _ns(tmp_path), max_restarts=0)
    ray.kill(shards[1], no_restart=True)
    # Act / Assert
    with pytest.raises(LedgerError, match="ledger-1"):
        asyncio.run(read_trail(shards, kinds=["RISK_DECISION"], timeout_s=10))
    with pytest.raises(ValueError, match="^kinds:"):
        asyncio.run(read_trail(shards, kinds=["NOPE"]))
    _stop(shards[:1])


# -- a RiskGuard killed and reconstructed by Ray, in a hand-built deployment ---------------------
T0 = 1_735_808_400_000_000_000
CFG = {"ack_timeout_ms": 300, "cancel_timeout_ms": 300, "call_timeout_ms": 800, "query_backoff_ms": 20,
       "query_window_ms": 1000}


@ray.remote(num_cpus=0)
class StrategyStub:
    def __init__(self) -> None:
        self.done: list = []

    def on_pair_done(self, summary: dict) -> None:
        self.done.append(summary)

    def halt(self, name: str, reason: str = "") -> None:
        pass

    def finished(self) -> list[str]:
        return [s["decision_id"] for s in self.done]


def _held_grant(coord) -> tuple[int, int, int] | None:
    """(seq, issued_ns, expires_ns) of the grant the coordinator's checker holds."""
    return ray.get(coord.__ray_call__.remote(
        lambda self: None if self.book.checker.grant is None else
        (self.book.checker.grant.seq, self.book.checker.grant.issued_ns, self.book.checker.grant.expires_ns)))


def test_a_killed_risk_guard_is_rebuilt_from_the_ledger_and_the_venues_and_grants_nothing_meanwhile(ray_ns, tmp_path):
    import functools
    from decimal import Decimal

    import testkit

    from xmc_actors.actors.coordinator import PairCoordinator
    from xmc_actors.actors.gateway import VenueGateway
    from xmc_actors.actors.risk_guard import ACTOR_NAME, RiskGuard
    from xmc_actors.model import Account, FxPair, OrderType, TimeInForce
    from xmc_actors.model.config import DeploymentConfig, FeedConfig, GatewayConfig
    from xmc_actors.runtime.deploy import COORDINATOR_NAME, build_checker

    # Arrange: ledger shard, two sim gateways, risk guard (restartable), coordinator, all named
    ns = _ns(tmp_path)
    lcfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=1, flush_ms=2)
    params = {"seed": 1, "enforce_sessions": False, "enforce_price_limits": False, "ack_timeout_ms": 200,
              "network_latency": {"kind": "const", "mean_ms": 0.0}}
    insts = [testkit.instrument("SHFE.cu"), testkit.instrument("LME.CA3M")]
    dep = DeploymentConfig(
        name="restart", venues=(testkit.venue("SHFE"), testkit.venue("LME")), instruments=tuple(insts),
        fx=(FxPair(base="USD", quote="CNY", rate=Decimal("7.1")),), ledger=lcfg,
        accounts=(Account(id="cn", broker="sim", venues=("SHFE",), currency="CNY", capital=Decimal(10_000_000)),
                  Account(id="cn2", broker="sim", venues=("SHFE",), currency="CNY", capital=Decimal(5_000_000)),
                  Account(id="us", broker="sim", venues=("LME",), currency="USD", capital=Decimal(2_000_000))),
        gateways=(GatewayConfig(venue="SHFE", params=params, feed=FeedConfig()),
                  GatewayConfig(venue="LME", params=params, feed=FeedConfig())),
        risk={"check_sessions": False, "grant_refresh_ms": 100, "grant_ttl_ms": 1_000}, ray={"namespace": ns},
    ).model_dump(mode="json", by_alias=True)
    shards = start_ledger(lcfg, ns)
    sink = LedgerClient(shards, lcfg)
    gws = {v: VenueGateway.options(name=f"gateway-{v}", namespace=ns, num_cpus=0).remote(dep, f"gateway-{v}", sink,
                                                                                           clock_mode="system")
           for v in ("SHFE", "LME")}
    ray.get([g.ready.remote() for g in gws.values()], timeout=30)
    ray.get(gws["SHFE"].push_market.remote([testkit.quote("SHFE.cu", 72000, 72010, bid_size=50, ask_size=50)]))
    ray.get(gws["LME"].push_market.remote([testkit.quote("LME.CA3M", 9800, 9800.5, bid_size=50, ask_size=50)]))
    guard = RiskGuard.options(name=ACTOR_NAME, namespace=ns, max_restarts=-1, num_cpus=0).remote(dep, sink)
    coord = PairCoordinator.options(name=COORDINATOR_NAME, namespace=ns, num_cpus=0).remote(
        insts, gws, checker=functools.partial(build_checker, dep), sink=sink, config=CFG, name=COORDINATOR_NAME)
    strat = StrategyStub.remote()
    ray.get([coord.register_strategy.remote("s1", strat), coord.register_risk_guard.remote(guard)])
    ray.get(coord.ready.remote(), timeout=30)
    ray.get(guard.register_coordinator.remote(COORDINATOR_NAME, coord))
    ray.get([g.subscribe.remote(guard, None) for g in gws.values()])
    # three filled pairs (1, 2 and 1 lots)
    for did, qty in (("p1", 1), ("p2", 2), ("p3", 1)):
        intent = testkit.pair_intent(did, a=("SHFE.cu", "BUY", qty, "72010"), b=("LME.CA3M", "SELL", qty, "9800"),
                                     accounts=("cn", "us"))
        assert ray.get(coord.submit.remote(intent))["accepted"]
    wait_until(lambda: len(ray.get(strat.finished.remote())) == 3, 15, "three pairs finished")
    wait_until(lambda: ray.get(guard.status.remote())["positions"]["accounts"] == {"cn": {"SHFE.cu": 4}, "us": {"LME.CA3M": -4}},
          10, "the guard booked the three pairs")
    # a lot the guard never heard of: bought at the venue outside any pair (account cn2)
    manual = testkit.order("SHFE.cu", "BUY", 1, "72010", decision_id="manual", account="cn2",
                           order_type=OrderType.IOC, tif=TimeInForce.IOC)
    ray.get(gws["SHFE"].place.remote(manual))
    # the guard last heard that LME was DOWN (automatic REDUCING); the UP that followed went to
    # nobody, as when a gateway comes back while the guard is dead (chaos, group seed 11)
    ray.get(guard.on_gateway_status.remote("LME", {"state": "DOWN", "reason": "connection lost"}))
    assert ray.get(guard.status.remote())["trading_states"] == {"venue:LME": "REDUCING"}
    ray.get(guard.regrant_all.remote())
    before = ray.get(guard.status.remote())
    seq_before = _held_grant(coord)
    # a coordinator's escalation ALERT as written before it carried an alert_id (it made every
    # rebuild fail on KeyError: the guard came back with no positions and everything REDUCING)
    sink.emit(EventMaker(SystemClock(), COORDINATOR_NAME).make(
        EventKind.ALERT, decision_id="old", strategy="s0", reason="rollback attempts spent", level="red",
        residual={"legs": {"A": {"net": 1, "residual": 1}}}))
    sink.flush(10)

    # Act: kill the guard's process; Ray reconstructs it, and it rebuilds on its own
    ray.kill(guard, no_restart=False)
    seen: list[tuple[int, int, int]] = []

    def rebuilt():
        g = _held_grant(coord)
        if g is not None and (not seen or seen[-1] != g):
            seen.append(g)
        try:
            st = ray.get(guard.status.remote(), timeout=2)
        except Exception:  # noqa: BLE001 - still restarting
            return None
        return st if st["reconstructed"] and st["last_rebuild"] and not st["rebuilding"] else None

    wait_until(rebuilt, 30, "the reconstructed guard rebuilt")
    # the ledger, the summaries and the venues are read one after the other while the deployment
    # may trade: a difference is checked again against the venues before it is a mismatch
    wait_until(lambda: (ray.get(guard.status.remote())["last_rebuild"] or {}).get("verified"), 30,
               "the difference from the venue checked again")
    after = ray.get(guard.status.remote())
    wait_until(lambda: (_held_grant(coord) or (0, 0))[1] >= after["started_ns"], 5,
          "a grant of the new life reached the coordinator")
    seen.append(_held_grant(coord))
    trail = asyncio.run(read_trail(shards, kinds=["RISK_DECISION", "RECONCILE", "ALERT"]))

    # Assert: same positions and occupancy for the accounts the pairs used; the venue-only lot found
    rep = after["last_rebuild"]
    assert rep["ok"] and rep["booked_pairs"] == 3 and rep["unverified_venues"] == []
    assert rep["coordinator_alerts"] == 1 and rep["skipped"] == 0
    assert rep["mismatches"] == [] and rep["deferred"] == [{"account": "cn2", "instrument": "SHFE.cu", "ledger": 0, "venue": 1}]
    assert rep["verified"]["mismatches"] == [
        {"account": "cn2", "instrument": "SHFE.cu", "ledger": 0, "venue": 1, "difference": 1}]
    assert after["positions"]["strategies"]["s1"] == before["positions"]["strategies"]["s1"]
    # the rebuilt guard asked the coordinator for the venues' state: LME is UP, its REDUCING
    # lifted; SHFE is REDUCING by the real mismatch of cn2 (below) until an operator looks
    assert after["trading_states"] == {"venue:SHFE": "REDUCING"}
    assert after["state_set_by"] == {"venue:SHFE": "auto:position_mismatch"}
    assert after["positions"]["accounts"] == {**before["positions"]["accounts"], "cn2": {"SHFE.cu": 1}}
    # margin is valued at the marks: the fills' prices until the re-subscribed quotes arrive again
    same = wait_until(lambda: (lambda st: st if all(st["occupancy"][a] == before["occupancy"][a] for a in ("cn", "us"))
                          else None)(ray.get(guard.status.remote())), 5, "occupancy as before the kill")
    assert same["overall"]["used"] > before["overall"]["used"]  # plus the venue-only lot of cn2
    rebuilt_ev = [e for e in trail if e.reason == "REBUILT"]
    assert len(rebuilt_ev) == 1 and rebuilt_ev[0].payload["deferred"] == rep["deferred"]
    assert [e.payload["difference"] for e in trail if e.reason == "POSITION_MISMATCH"] == [1]
    assert any(e.payload.get("monitor") == "position_mismatch" and e.payload.get("level") == "orange" for e in trail)
    # no grant was extended while the guard was down or rebuilding: every grant the coordinator
    # held was issued by the previous life (its refresh may still run between our snapshot and
    # the kill) or after the rebuild, and the first new one has a seq past the old ones
    rebuilt_ns, reborn_ns = rebuilt_ev[0].ts_ns, after["started_ns"]
    assert reborn_ns < rebuilt_ns
    assert all(g[1] < reborn_ns or g[1] >= rebuilt_ns for g in seen), (seq_before, seen, reborn_ns, rebuilt_ns)
    old_life = [g for g in [seq_before, *seen] if g[1] < reborn_ns]
    assert seen[-1][1] >= rebuilt_ns and seen[-1][0] > max(g[0] for g in old_life), (old_life, seen)
    client_stats = sink.stats()
    sink.close(5)
    _stop([coord, strat, *gws.values(), *shards])
    ray.kill(guard, no_restart=True)
    assert client_stats["refused"] == 0


def test_a_guard_that_cannot_read_the_ledger_on_start_reduces_globally_with_a_red_alert_instead_of_trading_blind(ray_ns, tmp_path):
    import testkit

    from xmc_actors.actors.risk_guard import RiskGuard
    from xmc_actors.model.config import DeploymentConfig

    # Arrange: the only ledger shard is dead (no restart)
    lcfg = LedgerConfig(path=str(tmp_path / "ledger"), shards=1, flush_ms=2)
    (shard,) = start_ledger(lcfg, _ns(tmp_path), max_restarts=0)
    ray.kill(shard, no_restart=True)
    dep = DeploymentConfig(name="blind", venues=(testkit.venue("SHFE"),), instruments=(testkit.instrument("SHFE.cu"),),
                           ledger=lcfg, ray={"namespace": _ns(tmp_path)})
    # Act: a guard told to rebuild on start (as a reconstructed one does)
    guard = RiskGuard.options(num_cpus=0).remote(dep, ledger_shards=[shard], gateways={}, rebuild_on_start=True,
                                                 rebuild_timeout_s=1.0)
    st = wait_until(lambda: (lambda s: s if s["last_rebuild"] else None)(ray.get(guard.status.remote())), 15, "rebuild gave up")
    # Assert
    assert st["last_rebuild"]["ok"] is False and "ledger-0" in st["last_rebuild"]["error"]
    assert st["trading_states"] == {"global": "REDUCING"} and not st["rebuilding"]
    assert [(a["monitor"], a["level"], a["action"]) for a in st["open_alerts"]] == [("rebuild", "red", "reduce")]
    failed = ray.get(guard.events.remote("RISK_DECISION"))
    assert [e.reason for e in failed] == ["REBUILD_FAILED"]
    ray.kill(guard, no_restart=True)
