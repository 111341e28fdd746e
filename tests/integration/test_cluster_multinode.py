"""Multi-node placement on a real Ray cluster (head + a SHFE node + an LME node, one process
tree via ``ray.cluster_utils.Cluster``): gateways land on their venue's node, a selector no
node matches fails fast with the reason, and losing a venue's node marks that venue DOWN."""
from __future__ import annotations

import os
import time

import pytest
import ray
from ray.cluster_utils import Cluster

from testkit import wait_until
from xmc_actors.core.clock import SystemClock
from xmc_actors.core.venue_health import VenueHealth, VenueState
from xmc_actors.model.config import GatewayConfig
from xmc_actors.runtime.config import load_config
from xmc_actors.runtime.health import probe_gateways
from xmc_actors.runtime.placement import ActorsNotReady, gateway_placement, wait_ready

pytestmark = pytest.mark.ray
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@ray.remote(num_cpus=0)
class Probe:
    """Stand-in actor for placement checks that need no venue."""

    def ready(self) -> dict:
        return {"node_id": ray.get_runtime_context().get_node_id()}


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    ray._common.utils.reset_ray_address()  # Cluster advertises itself to every plain ray.init() on the machine
    nodes = {
        "SHFE": c.add_node(num_cpus=1, labels={"venue": "SHFE"}, resources={"venue:SHFE": 1}),
        "LME": c.add_node(num_cpus=1, labels={"venue": "LME"}, resources={"venue:LME": 1}),
    }
    ray.init(address=c.address, namespace="test-cluster-multinode", log_to_driver=False)
    yield c, nodes
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def deployment():
    """The demo's venues with simulated gateways (the demo's LME leg is on a loopback FIX
    exchange the runtime serves, which placing a bare gateway on a node does not start)."""
    cfg = load_config(os.path.join(ROOT, "configs", "demo.yaml"))
    sim = tuple(g if g.adapter == "sim" else g.model_copy(update={"adapter": "sim", "params": {"seed": 22}})
                for g in cfg.gateways)
    return cfg.model_copy(update={"gateways": sim})


def node_of(handle) -> str:
    import ray._private.state as gcs

    return gcs.actors(handle._actor_id.hex())["Address"]["NodeID"]


def start_gateway(deployment, venue: str, mode: str = "label"):
    from xmc_actors.actors.gateway import VenueGateway

    gw = GatewayConfig(venue=venue)
    placement = gateway_placement(gw, mode=mode)
    handle = VenueGateway.options(name=gw.actor_name, max_restarts=-1, **placement.options).remote(
        deployment, gw.actor_name)
    return handle, placement


@pytest.fixture(scope="module")
def gateways(cluster, deployment):
    """Real VenueGateway actors for SHFE and LME, pinned by label, restartable."""
    started = {v: start_gateway(deployment, v) for v in ("SHFE", "LME")}
    yield started
    for handle, _ in started.values():
        ray.kill(handle)


def test_gateways_land_on_the_nodes_labelled_with_their_venue(cluster, gateways):
    _, nodes = cluster
    (shfe, p_shfe), (lme, p_lme) = gateways["SHFE"], gateways["LME"]

    answers = wait_ready({"gateway-SHFE": shfe, "gateway-LME": lme}, 30,
                         placements={"gateway-SHFE": p_shfe, "gateway-LME": p_lme})

    assert set(answers) == {"gateway-SHFE", "gateway-LME"}
    assert node_of(shfe) == nodes["SHFE"].node_id
    assert node_of(lme) == nodes["LME"].node_id


def test_resource_fallback_places_the_actor_on_the_node_advertising_the_venue_resource(cluster):
    _, nodes = cluster
    p = gateway_placement(GatewayConfig(venue="LME"), mode="resource")
    a = Probe.options(**p.options).remote()

    answer = wait_ready({"probe-LME": a}, 20, placements={"probe-LME": p})

    assert answer["probe-LME"]["node_id"] == nodes["LME"].node_id
    ray.kill(a)


def test_selector_that_matches_no_node_fails_within_the_timeout_naming_actor_and_reason(cluster):
    p_label = gateway_placement(GatewayConfig(venue="XYZ"), mode="label")
    p_res = gateway_placement(GatewayConfig(venue="CBOT"), mode="resource")
    ok = Probe.remote()
    stuck = Probe.options(**p_label.options).remote()
    stuck_res = Probe.options(**p_res.options).remote()
    t0 = time.monotonic()

    with pytest.raises(ActorsNotReady) as err:
        wait_ready({"probe-ok": ok, "gateway-XYZ": stuck, "gateway-CBOT": stuck_res}, 3.0,
                   placements={"gateway-XYZ": p_label, "gateway-CBOT": p_res})

    assert time.monotonic() - t0 < 10  # returned near the deadline instead of hanging
    reasons = err.value.reasons
    assert set(reasons) == {"gateway-XYZ", "gateway-CBOT"}
    assert reasons["gateway-XYZ"].startswith("pending: no alive node matches label selector venue=XYZ")
    assert "venue=SHFE" in reasons["gateway-XYZ"]  # tells the operator which labels exist
    assert reasons["gateway-CBOT"] == "pending: no alive node has resource venue:CBOT"
    assert "probe-ok" in err.value.ready
    for h in (ok, stuck, stuck_res):
        ray.kill(h)


def _probe_until(health, gws, venue, state, deadline_s):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        probe_gateways(health, gws, timeout_s=1.0)
        if health.state(venue) is state:
            return True
        time.sleep(0.2)
    return False


def test_losing_a_venues_node_marks_that_venue_down_and_its_return_brings_the_gateway_back(cluster, gateways):
    c, nodes = cluster
    gws = {v: h for v, (h, _) in gateways.items()}
    health = VenueHealth(["SHFE", "LME"], SystemClock())
    changes = []
    health.subscribe(changes.append)
    probe_gateways(health, gws, timeout_s=5.0)
    assert health.state("LME") is VenueState.UP

    c.remove_node(nodes["LME"])

    assert _probe_until(health, gws, "LME", VenueState.DOWN, 30), health.snapshot()
    assert health.state("SHFE") is VenueState.UP
    down = [ch for ch in changes if ch.venue == "LME" and ch.new is VenueState.DOWN]
    assert down and "gateway" in down[0].reason

    nodes["LME"] = c.add_node(num_cpus=1, labels={"venue": "LME"}, resources={"venue:LME": 1})

    assert _probe_until(health, gws, "LME", VenueState.UP, 40), health.snapshot()
    status = ray.get(gws["LME"].status.remote(), timeout=10)
    assert status["reconstructed"] is True  # a fresh instance that must reconcile before trading
    assert node_of(gws["LME"]) == nodes["LME"].node_id


# -- the runtime on the cluster ----------------------------------------------------------------
def test_deployment_with_a_gateway_pinned_to_a_label_no_node_has_fails_naming_the_actor(cluster, tmp_path):
    from runtime_kit import copper_config

    from xmc_actors.runtime.deploy import Deployment

    # Arrange: SHFE's gateway asks for nodes labelled venue=NOWHERE; the cluster has SHFE and LME
    c, _ = cluster
    path = copper_config(tmp_path, "nowhere", "test-cluster-nowhere", shfe={}, ray_extra={"ready_timeout_s": 20})
    cfg = load_config(path)
    gws = tuple(g.model_copy(update={"node_label": "venue=NOWHERE"}) if g.venue == "SHFE" else g for g in cfg.gateways)
    cfg = cfg.model_copy(update={"gateways": gws})
    dep = Deployment(cfg, address=c.address)
    t0 = time.monotonic()
    # Act
    try:
        with pytest.raises(ActorsNotReady) as err:
            dep.start()
        elapsed = time.monotonic() - t0
    finally:
        for h in dep.handles.values():
            ray.kill(h)
    # Assert: only that gateway, with the reason, near the deadline (never a hang)
    assert set(err.value.reasons) == {"gateway-SHFE"}, err.value.reasons
    assert err.value.reasons["gateway-SHFE"].startswith("pending: no alive node matches label selector venue=NOWHERE")
    assert "gateway-LME" in err.value.ready and "coordinator" in err.value.ready
    assert "gateway-SHFE: pending: no alive node matches" in str(err.value)
    assert elapsed < 45
    # and nothing of the half-started deployment is left running on the cluster
    assert dep.handles == {}
    for name in ("coordinator", "gateway-LME", "gateway-SHFE", "risk-guard", "ledger-0", "deployment"):
        wait_until(lambda n=name: _gone(n, "test-cluster-nowhere"), 20, f"{name} killed")


def _gone(name: str, namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        return True
    return False


def _on_node(node_id: str) -> dict:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)}


def test_in_flight_pairs_resolve_and_strategies_stop_when_a_venue_node_is_lost(cluster, tmp_path):
    from decimal import Decimal

    from runtime_kit import band, copper_config

    from xmc_actors.actors.coordinator import PairCoordinator
    from xmc_actors.actors.gateway import VenueGateway
    from xmc_actors.actors.strategy import StrategyHost
    from xmc_actors.feeds.fx import fx_book_from_config
    from xmc_actors.model import Quote
    from xmc_actors.strategies.base import build_strategy

    # Arrange: SHFE and LME gateways on their nodes (LME answers orders after 4 s), the
    # coordinator and a strategy host on the head. Two strategies: `cu` trades at once,
    # `cu-watch` only on a 1 % deviation.
    c, nodes = cluster
    ns = "test-cluster-node-loss"
    # the simulated LME keeps its memory on disk, as a real venue would keep ours
    path = copper_config(tmp_path, "loss", ns, lme={"ack_ms": 4000, "state_dir": str(tmp_path / "venues")},
                         strategies=[band("cu", stale_ms=1000), band("cu-watch", entry=0.01, stale_ms=1000)])
    cfg = load_config(path)
    dep = cfg.model_dump(mode="json", by_alias=True)
    head = ray.get_runtime_context().get_node_id()
    gws = {}
    for g in cfg.gateways:
        pl = gateway_placement(g, mode="label")
        gws[g.venue] = VenueGateway.options(name=g.actor_name, namespace=ns, max_restarts=-1, **pl.options).remote(
            dep, g.actor_name)
    coord = PairCoordinator.options(name="coordinator", namespace=ns, max_restarts=0, **_on_node(head)).remote(
        list(cfg.instruments), gws, config={"ack_timeout_ms": 8000, "call_timeout_ms": 1500, "query_retries": 2,
                                                     "query_window_ms": 3000},
        name="coordinator", venues=list(cfg.venues))
    fx = fx_book_from_config(cfg.fx)
    host = StrategyHost.options(name="strategy-host-0", namespace=ns, **_on_node(head)).remote(
        [build_strategy(s, cfg, fx, actor=s.name) for s in cfg.strategies], coord, name="strategy-host-0")
    wait_ready({"coordinator": coord, "strategy-host-0": host, **{f"gateway-{v}": h for v, h in gws.items()}}, 60)
    ray.get([coord.register_strategy.remote(s.name, host) for s in cfg.strategies])
    ray.get([gws["SHFE"].subscribe.remote(host, ["SHFE.cu"]), gws["LME"].subscribe.remote(host, ["LME.CA3M"])])
    health = VenueHealth(["SHFE", "LME"], SystemClock())
    changes = []
    health.subscribe(changes.append)
    assert node_of(gws["LME"]) == nodes["LME"].node_id

    def q(inst, bid, ask):
        t = time.time_ns()
        return Quote(instrument=inst, bid=Decimal(bid), ask=Decimal(ask), bid_size=50, ask_size=50,
                     venue_ts_ns=t, recv_ts_ns=t, ts_ns=t)

    def strategies():
        return ray.get(host.status.remote())["strategies"]

    # SHFE 0.12 % rich against LME: `cu` sells SHFE / buys LME; the LME leg waits for its ack
    ray.get(gws["LME"].push_market.remote([q("LME.CA3M", "10140", "10141")]))
    ray.get(gws["SHFE"].push_market.remote([q("SHFE.cu", "72100", "72110")]))
    did = wait_until(lambda: strategies()["cu"]["pending"], 20, "cu submits a pair")
    wait_until(lambda: ray.get(coord.status.remote())["in_flight"], 10, "the pair in flight")
    # the LME venue has taken the order (it is in the venue's journal) before its node goes:
    # only the answer is lost. On a loaded host the place call could still be on its way when
    # the node was removed, and the venue then rightly had nothing to reconcile.
    from xmc_actors.venues.journal import VenueJournal

    def lme_took_it() -> bool:
        return any(f"{did}:B:0" in str(VenueJournal.read(p)[0]) for p in (tmp_path / "venues").glob("*.venue"))
    wait_until(lme_took_it, 10, "the LME venue took the order")

    # Act 1: the LME node goes away with the LME leg unanswered
    c.remove_node(nodes["LME"])

    # Assert 1: LME is DOWN, SHFE is not
    assert _probe_until(health, gws, "LME", VenueState.DOWN, 30), health.snapshot()
    assert health.state("SHFE") is VenueState.UP
    # the pair ends: the LME leg's outcome cannot be known (its gateway is gone), so it is
    # escalated with the exact residual (SHFE sold 5, LME unknown), not left open
    summary = ray.get(coord.await_pair.remote(did, 40))
    assert summary is not None, ray.get(coord.pairs.remote(did))
    assert summary["state"] in ("ESCALATED", "ROLLED_BACK"), summary
    if summary["state"] == "ESCALATED":
        res = summary["residual"]["legs"]
        assert res["A"]["instrument"] == "SHFE.cu" and res["A"]["side"] == "SELL"
        assert res["A"]["net"] == 5 and res["A"]["residual"] == 5 - res["A"]["balanced_target"]
        assert res["B"]["unknown_orders"] == [f"{did}:B:0"]
        # the strategy is halted and books what is known to have filled (SHFE sold 5)
        st = wait_until(lambda: (s := strategies())["cu"]["pending"] is None and s, 10, "cu hears the outcome")
        assert st["cu"]["state"] == "HALTED" and st["cu"]["position"] == -5
    # the coordinator's own probes saw LME go DOWN and pushed it to the strategies: a 1.4 %
    # deviation on SHFE does not trigger `cu-watch`, and a new pair on LME is refused
    wait_until(lambda: ray.get(coord.venue_health.remote())["LME"]["state"] == "DOWN", 20, "coordinator sees LME DOWN")
    watch_before = strategies()["cu-watch"]["counters"]
    ray.get(gws["SHFE"].push_market.remote([q("SHFE.cu", "73100", "73110")]))
    st = wait_until(lambda: (s := strategies())["cu-watch"]["blocked"] and s, 10, "cu-watch blocked")
    assert st["cu-watch"]["blocked"].startswith("VENUE_DOWN: LME"), st["cu-watch"]
    assert st["cu-watch"]["counters"]["intents"] == watch_before["intents"] == 0
    assert ray.get(coord.status.remote())["in_flight"] == {}
    from xmc_actors.model import LegIntent, PairIntent, Side
    probe = PairIntent(decision_id="probe-1", strategy="ops", legs=(
        LegIntent(leg="A", instrument="SHFE.cu", account="cn-main", side=Side.SELL, qty=5, limit_price=Decimal(73100)),
        LegIntent(leg="B", instrument="LME.CA3M", account="us-main", side=Side.BUY, qty=1, limit_price=Decimal(10141))),
        hedge_ratio=Decimal("0.2"))
    res = ray.get(coord.submit.remote(probe))
    assert res["accepted"] is False and res["reason"].startswith("VENUE_DOWN: LME"), res

    # Act 2: the node comes back
    nodes["LME"] = c.add_node(num_cpus=1, labels={"venue": "LME"}, resources={"venue:LME": 1})

    # Assert 2: the gateway is restarted on it (max_restarts), LME is UP
    try:
        assert _probe_until(health, gws, "LME", VenueState.UP, 40), health.snapshot()
        status = ray.get(gws["LME"].status.remote(), timeout=10)
        assert status["reconstructed"] is True
        assert node_of(gws["LME"]) == nodes["LME"].node_id
        assert [ch.new for ch in changes if ch.venue == "LME"][-2:] == [VenueState.DOWN, VenueState.UP]
        # ... and it reconciled: the venue still had the order that was in flight (it was
        # processed before the node died; only its answer was lost), with its fill
        assert status["reconciled"] == {"orders": 1, "live": 0, "with_fills": 1}, status["reconciled"]
        rows = ray.get(gws["LME"].drop_copy.remote(0), timeout=10)
        mine = [r for r in rows if r["client_order_id"] == f"{did}:B:0"]
        assert [r["kind"] for r in mine] == ["ACK", "FILL"] and mine[-1]["filled_qty"] == 1
        # the coordinator learnt the outcome it could not know: nothing unknown is left
        if summary["state"] == "ESCALATED":
            pair = wait_until(lambda: (p := ray.get(coord.pairs.remote(did)))["residual"]["legs"]["B"]["unknown_orders"] == []
                          and p, 20, "the escalated pair restated with the reconciled LME order")
            res = pair["residual"]["legs"]
            assert res["B"]["net"] == 1 and res["A"]["net"] == 5 and res["A"]["residual"] == 0
        # the coordinator saw LME come back and lifted the block: a new pair is accepted again
        wait_until(lambda: ray.get(coord.venue_health.remote())["LME"]["state"] == "UP", 20, "coordinator sees LME UP")
        assert ray.get(coord.status.remote())["venues_down"] == {}
    finally:
        for h in (coord, host, *gws.values()):
            ray.kill(h)
