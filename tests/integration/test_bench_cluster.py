"""The scale-out benchmark's building blocks on Ray at N=2 (bench/cluster.py): a real deployment
(gateways, coordinator, risk guard, ledger, StrategyHost actors) started on the running Ray,
quote rounds pushed through the SHFE gateway until both instances evaluated each quote, and the
per-process CPU and memory read for the host actors."""
from __future__ import annotations

import pytest
import ray

from xmc_actors.bench import cluster as bench

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_address():
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="test-bench-cluster",
             log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_two_instances_on_two_hosts_each_evaluate_every_quote_round_and_report_cpu_and_memory(tmp_path, ray_address):
    # Arrange
    rounds = 6
    # Act: one instance per host actor, so the deployment has two hosts
    m = bench.measure_deployment(tmp_path, 2, rounds, address=ray_address, warmup=3, strategies_per_host=1,
                                 idle_s=0.2)
    metrics = bench.summarise(2, m, rounds)
    # Assert
    assert m["evaluations"] == 2 * rounds  # checked by the bench too: every quote, every instance, once
    assert m["hosts"] == 2 and len(m["host_nodes"]) == 1
    assert len(m["round_us"]) == rounds and min(m["round_us"]) > 0
    assert m["host_cpu_ns"] > 0 and m["gateway_cpu_ns"] > 0
    assert all(30 < rss < 2000 for rss in m["host_rss_mb"])  # a Python Ray worker, in MB
    assert metrics["cost_per_strategy_quote_us_n2"] == pytest.approx(metrics["round_us_p50_n2"] / 2)
    assert metrics["host_rss_mb_per_strategy_n2"] == pytest.approx(sum(m["host_rss_mb"]) / 2)
    assert not any(k.startswith("standin") for k in metrics)
    # the deployment was stopped and its actors removed
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True)
                if a["namespace"] == "bench-cluster-n2"]


def test_floors_on_the_same_ray_measure_a_call_a_push_quiesce_its_cpu_and_a_bare_actor_rss(tmp_path, ray_address):
    # Act
    floors = bench.measure_floors(5)
    # Assert
    assert floors["floor_actor_call_us"] > 0
    assert floors["floor_push_quiesce_us"] > floors["floor_actor_call_us"] * 0.5
    assert floors["floor_async_actor_cpu_us_per_call"] > 0
    assert 30 < floors["floor_actor_rss_mb"] < 2000
