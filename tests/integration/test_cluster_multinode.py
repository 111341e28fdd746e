"""Multi-node placement on a real Ray cluster (head + a SHFE node + an LME node, one process
tree via ``ray.cluster_utils.Cluster``): gateways land on their venue's node, a selector no
node matches fails fast with the reason, and losing a venue's node marks that venue DOWN."""
from __future__ import annotations

import os
import time

import pytest
import ray
from ray.cluster_utils import Cluster

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
    return load_config(os.path.join(ROOT, "configs", "demo.yaml"))


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


@pytest.mark.xfail(reason="needs actors/coordinator.py and actors/strategy.py committed with the pair "
                          "flow wired to VenueHealth: in-flight pairs resolve, strategies stop "
                          "triggering, and the returning gateway reconciles", strict=False, run=False)
def test_in_flight_pairs_resolve_and_strategies_stop_when_a_venue_node_is_lost(cluster):
    raise NotImplementedError
