"""A deployment started by a driver that runs in another Ray namespace (a notebook, a service,
the benchmark harness did `ray.init(namespace=...)` first): its actors live in the deployment's
namespace, but Ray gives an actor its job's namespace as "its own". The strategy hosts looked
the coordinator up there by name and every intent failed ("Failed to look up actor with name
'coordinator'"); found because `scripts/bench runtime` measured no tick-to-order at all. Each
actor now finds its peers in the deployment's namespace."""
from __future__ import annotations

from decimal import Decimal

import pytest
import ray

from testkit import wait_until
from xmc_actors.bench.runtime import NORMAL_A, WIDE_A, _config, _start, _stop, stamped_quote

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="a-driver-namespace",
             log_to_driver=False)
    yield
    ray.shutdown()


def test_a_strategys_intents_reach_the_coordinator_of_a_deployment_in_another_namespace(tmp_path):
    cfg = _config(tmp_path, "foreign-ns", 1, trigger=True)
    assert cfg.ray.namespace != ray.get_runtime_context().namespace
    dep = _start(cfg)
    try:
        gw = dep.gateways["SHFE"]
        for i in range(6):  # the band strategy opens on a wide book and closes on a normal one
            ray.get(gw.push_market.remote([stamped_quote("SHFE.cu", WIDE_A if i % 2 == 0 else NORMAL_A)]))
            dep.settle()
        coord = dep.handles["coordinator"]
        outcomes = wait_until(lambda: dict(ray.get(coord.status.remote())["outcomes"]) or None, timeout=30,
                              what="pairs at the coordinator")
        assert outcomes.get("HEDGED", 0) >= 1, outcomes
        [host] = dep.hosts.values()
        st = ray.get(host.status.remote())
        assert st["submit_failures"] == 0 and st["strategies"]["band-00"]["errors"] == [], st
        assert Decimal(str(st["strategies"]["band-00"]["counters"]["pairs_done"])) >= 1
    finally:
        _stop(dep)
