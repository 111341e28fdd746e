"""Metrics recorded inside Ray actors reach the embedded /metrics endpoint with the right values."""
from __future__ import annotations

import time
import urllib.request

import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families

from xmc_actors.ops.metrics import Metrics, MetricsHub, hub_fetcher, start_metrics_endpoint

pytestmark = pytest.mark.ray


@ray.remote(num_cpus=0)
class Recorder:
    """Stand-in for a strategy/gateway actor recording on its hot path."""

    def __init__(self, kind: str, tags: dict, hub) -> None:
        self.m = Metrics(kind, tags, hub=hub, flush_interval_s=60.0)  # only explicit flushes here

    def ready(self) -> dict:
        return {"source": self.m.source}

    def run(self, quotes: int, latencies: list[float], outcome: str) -> int:
        for i in range(quotes):
            self.m.count("quotes", 1, instrument="SHFE.cu" if i % 2 else "LME.CA")
        for v in latencies:
            self.m.observe("leg_latency_ms", v, venue="LME", leg="B")
        self.m.count("pairs", 1, outcome=outcome)
        self.m.set("occupancy", 0.25, account="A1")
        self.m.flush()
        return self.m.flush_errors


@pytest.fixture(scope="module")
def ray_up():
    ray.init(num_cpus=2, include_dashboard=False, namespace="test-metrics", log_to_driver=False)
    yield
    ray.shutdown()


def wait_for_sources(hub, n: int, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while ray.get(hub.ready.remote())["sources"] < n:
        assert time.monotonic() < end, "metrics pushes never reached the hub"
        time.sleep(0.05)


def scrape(url: str) -> dict:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def sample(samples: dict, name: str, **labels) -> float:
    hits = [v for (n, lab), v in samples.items() if n == name and all(dict(lab).get(k) == x for k, x in labels.items())]
    assert len(hits) == 1, f"{name} {labels}: {len(hits)} matching series"
    return hits[0]


def test_actor_metrics_reach_the_embedded_endpoint_with_the_right_values(ray_up):
    hub = MetricsHub.options(name="metrics-hub").remote()
    a = Recorder.remote("strategy", {"strategy": "cu_spread"}, hub)
    b = Recorder.remote("strategy", {"strategy": "au_spread"}, hub)
    errors = ray.get([a.run.remote(10, [0.4, 1.5, 30.0], "HEDGED"), b.run.remote(4, [2.5], "ROLLED_BACK")])
    wait_for_sources(hub, 2)  # pushes are fire-and-forget from other callers: not ordered with ours
    endpoint = start_metrics_endpoint(0, hub_fetcher(hub))
    try:
        samples = scrape(endpoint.url)
    finally:
        endpoint.close()

    assert errors == [0, 0]  # flushing to ray.util.metrics and to the hub raised nothing
    assert sample(samples, "xmc_metrics_hub_up") == 1.0
    assert sample(samples, "xmc_quotes_total", strategy="cu_spread", instrument="SHFE.cu") == 5.0
    assert sample(samples, "xmc_quotes_total", strategy="au_spread", instrument="LME.CA") == 2.0
    assert sample(samples, "xmc_pairs_total", strategy="cu_spread", outcome="HEDGED") == 1.0
    assert sample(samples, "xmc_pairs_total", strategy="au_spread", outcome="ROLLED_BACK") == 1.0
    assert sample(samples, "xmc_leg_latency_ms_count", strategy="cu_spread", venue="LME", leg="B") == 3.0
    assert sample(samples, "xmc_leg_latency_ms_sum", strategy="cu_spread") == pytest.approx(31.9)
    assert sample(samples, "xmc_leg_latency_ms_bucket", strategy="cu_spread", le="2.0") == 2.0
    assert sample(samples, "xmc_leg_latency_ms_bucket", strategy="cu_spread", le="+Inf") == 3.0
    assert sample(samples, "xmc_occupancy", strategy="au_spread", account="A1") == 0.25
    assert endpoint.host == "127.0.0.1" and endpoint.port > 0
