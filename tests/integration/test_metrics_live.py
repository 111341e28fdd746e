"""The actors of a running deployment record the metrics the Grafana dashboard queries.

A small copper deployment (embedded Ray) with ``ray.metrics_port`` set trades a few pairs; its
``/metrics`` endpoint must then carry every series the dashboard draws, with data: quotes,
triggers, pairs by outcome, orders, leg latency buckets, slippage, occupancy, alerts (the
occupancy alert level is set so low that holding any position raises a yellow one) and bad
input (one garbage message pushed at the SHFE gateway).
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from runtime_kit import ROOT, band, copper_config

pytestmark = pytest.mark.ray
NS = "test-metrics-live"
DASHBOARD = ROOT / "cluster" / "grafana" / "xmc-dashboard.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> list:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def total(samples: list, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from xmc_actors.runtime.config import load_config
    from xmc_actors.runtime.deploy import Deployment

    tmp: Path = tmp_path_factory.mktemp("metrics-live")
    port = free_port()
    path = copper_config(tmp, "metrics-live", NS, strategies=[band("cu")], ray_extra={"metrics_port": port})
    doc = yaml.safe_load(path.read_text())
    doc["risk"]["occupancy"] = {"yellow": 0.000001, "orange": 0.5, "red": 0.9}  # any position: a yellow alert
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    dep = Deployment(load_config(path))
    dep.start()
    stop = threading.Event()
    th = threading.Thread(target=lambda: dep.run(duration_s=None, stop_event=stop), daemon=True)
    th.start()
    dep.gateways["SHFE"].push_wire.remote(["this is not a quote"])  # one BAD_INPUT
    samples: list = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # a few pairs hedged, an alert raised, both flushed (1 s timers)
        samples = scrape(port)
        if total(samples, "xmc_pairs_total", outcome="HEDGED") >= 3 and total(samples, "xmc_alerts_total") > 0:
            break
        time.sleep(1.0)
    yield {"samples": samples, "port": port}
    stop.set()
    th.join(60)
    dep.shutdown_ray()


def test_the_series_the_dashboard_queries_have_data(live):
    s = live["samples"]

    assert total(s, "xmc_metrics_hub_up") == 1.0
    assert total(s, "xmc_quotes_total", actor_kind="gateway", venue="SHFE") > 0
    assert total(s, "xmc_quotes_total", actor_kind="gateway", venue="LME") > 0
    assert total(s, "xmc_evaluations_total", strategy="cu") > 0
    assert total(s, "xmc_triggers_total", strategy="cu") > 0
    assert total(s, "xmc_pairs_total", outcome="HEDGED", strategy="cu") >= 3
    assert total(s, "xmc_orders_total", leg="A", venue="SHFE") > 0
    assert total(s, "xmc_orders_total", leg="B", venue="LME") > 0
    assert total(s, "xmc_leg_latency_ms_count", venue="LME", strategy="cu") > 0
    assert total(s, "xmc_leg_latency_ms_bucket", venue="LME", le="+Inf") > 0
    # negative buckets: prometheus_client leaves out _sum and _count; the +Inf bucket is the count
    assert total(s, "xmc_slippage_bps_bucket", strategy="cu", le="+Inf") > 0
    assert total(s, "xmc_alerts_total", level="yellow", monitor="occupancy") > 0
    assert total(s, "xmc_bad_input_total", actor_kind="gateway", venue="SHFE") >= 1
    assert {x.labels["account"] for x in s if x.name == "xmc_occupancy"} >= {"cn-main", "us-main"}
    assert total(s, "xmc_occupancy", account="cn-main") > 0


def test_every_metric_the_dashboard_queries_is_on_the_endpoint_with_its_labels(live):
    s = live["samples"]
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    names = {m for e in exprs for m in re.findall(r"xmc_[a-z_]+", e)}
    for name in names:
        # reject_ratio appears once a venue has a full window of orders (reject_min_orders): present
        # as a family is not required for it here; every other series must have samples
        if name == "xmc_reject_ratio":
            continue
        got = [x for x in s if x.name == name]
        assert got, f"{name}: no sample on /metrics"
    for e in exprs:
        for grouping in re.findall(r"by \(([^)]*)\)", e):
            for label in (g.strip() for g in grouping.split(",")):
                if label == "le":
                    continue
                assert any(label in x.labels for x in s if x.name.startswith("xmc_")), f"label {label} in {e!r}"
