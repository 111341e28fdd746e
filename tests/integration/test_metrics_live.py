"""The actors of a running deployment record the metrics the Grafana dashboard queries.

A small copper deployment (embedded Ray) with ``ray.metrics_port`` set trades a few pairs; its
``/metrics`` endpoint must then carry every series the dashboard draws, with data: quotes,
triggers, pairs by outcome, orders, leg latency buckets, slippage, occupancy, alerts (the
occupancy alert level is set so low that holding any position raises a yellow one) and bad
input (one garbage message pushed at the SHFE gateway).

The same series, recorded through ``ray.util.metrics``, must reach Ray's own Prometheus export
(the node's metrics export port, as ``ray_xmc_*``): what a Prometheus scraping the Ray nodes
(``cluster/prometheus/prometheus.yml``, job ``ray``) and Ray's dashboard read. They get there
after the actors' 1 s flush and Ray's own report interval, so that endpoint is polled for up to
a minute. The deployment runs with the Ray dashboard on, so the service discovery file Ray
writes for Prometheus and the actors' Repr column are checked too.
"""
from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
import ray
from prometheus_client.parser import text_string_to_metric_families

from prom_kit import HAVE_PROMETHEUS, WHY_NOT, free_port, prometheus
from runtime_kit import ROOT, band, copper_config

pytestmark = pytest.mark.ray
RAY_EXPORT_WAIT_S = 60
NS = "test-metrics-live"
DASHBOARD = ROOT / "cluster" / "grafana" / "xmc-dashboard.json"


def scrape(port: int | str) -> list:
    """Samples of ``http://127.0.0.1:<port>/metrics``, or of ``http://<host:port>/metrics``."""
    address = port if isinstance(port, str) else f"127.0.0.1:{port}"
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def dashboard_metric_names() -> set[str]:
    dash = json.loads(DASHBOARD.read_text())
    return {m for p in dash["panels"] for t in p["targets"] for m in re.findall(r"xmc_[a-z_]+", t["expr"])}


def ray_export_ready(samples: list) -> bool:
    """Ray's export carries what the dashboard draws (reject ratio aside, see below) and a hedged pair."""
    have = {s.name for s in samples}
    return (total(samples, "ray_xmc_pairs_total", outcome="HEDGED") >= 1
            and all(f"ray_{n}" in have for n in dashboard_metric_names() - {"xmc_reject_ratio"}))


def total(samples: list, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from xmc_actors.runtime.config import load_config
    from xmc_actors.runtime.deploy import Deployment

    tmp: Path = tmp_path_factory.mktemp("metrics-live")
    port = free_port()
    path = copper_config(tmp, "metrics-live", NS, strategies=[band("cu")],
                         ray_extra={"metrics_port": port, "dashboard": True})
    doc = yaml.safe_load(path.read_text())
    doc["risk"]["occupancy"] = {"yellow": 0.000001, "orange": 0.5, "red": 0.9}  # any position: a yellow alert
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    dep = Deployment(load_config(path))
    dep.start()
    stop = threading.Event()
    th = threading.Thread(target=lambda: dep.run(duration_s=None, stop_event=stop), daemon=True)
    th.start()
    # a real Prometheus scraping both sources from the start (the dashboard's rate() windows)
    stack = contextlib.ExitStack()
    prom = stack.enter_context(prometheus(tmp / "prometheus", {"xmc": [f"127.0.0.1:{port}"],
                                                               "ray": list(dep.access_info()["ray_metrics"])})) \
        if HAVE_PROMETHEUS else None
    dep.gateways["SHFE"].push_wire.remote(["this is not a quote"])  # one BAD_INPUT
    samples: list = []
    occupancy_seen = 0.0  # a gauge: the band strategy's position comes and goes between scrapes
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # a few pairs hedged, an alert raised, both flushed (1 s timers)
        samples = scrape(port)
        occupancy_seen = max(occupancy_seen, total(samples, "xmc_occupancy", account="cn-main"))
        if (total(samples, "xmc_pairs_total", outcome="HEDGED") >= 3 and total(samples, "xmc_alerts_total") > 0
                and occupancy_seen > 0):
            break
        time.sleep(1.0)
    # Ray's own export: the node's metrics export port, as the deployment reports it
    access = dep.access_info()
    node_port = ray._private.worker.global_worker.node.metrics_export_port
    ray_samples: list = []
    ray_error = ""
    deadline = time.monotonic() + RAY_EXPORT_WAIT_S
    while time.monotonic() < deadline and access["ray_metrics"]:
        try:
            ray_samples = scrape(access["ray_metrics"][0])
        except OSError as e:
            ray_error = f"{type(e).__name__}: {e}"
        if ray_export_ready(ray_samples):
            break
        time.sleep(2.0)
    session_dir = Path(ray._private.worker.global_worker.node.get_session_dir_path())
    discovery = session_dir / "prom_metrics_service_discovery.json"
    deadline = time.monotonic() + 30  # the dashboard's writer rewrites it every 5 s
    while time.monotonic() < deadline and not discovery.exists():
        time.sleep(1.0)
    from ray.util.state import list_actors

    url = access["dashboard_url"]  # this Ray's own (another Ray on the machine must not be asked)
    reprs = {a.name: a.repr_name for a in list_actors(address=url if "://" in url else f"http://{url}", detail=True,
                                                      filters=[("ray_namespace", "=", NS), ("state", "=", "ALIVE")],
                                                      limit=100)}
    yield {"samples": samples, "port": port, "access": access, "node_port": node_port, "ray_samples": ray_samples,
           "ray_error": ray_error, "discovery": json.loads(discovery.read_text()) if discovery.exists() else None,
           "reprs": reprs, "prom": prom, "occupancy_seen": occupancy_seen}
    stack.close()
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
    assert live["occupancy_seen"] > 0, "cn-main's occupancy gauge moved off 0 while the strategy held a position"


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


def test_xmc_run_reports_where_the_metrics_are(live):
    a = live["access"]
    assert a["metrics_url"] == f"http://127.0.0.1:{live['port']}/metrics"
    assert a["dashboard"] is True and a["dashboard_url"]
    assert any(addr.endswith(f":{live['node_port']}") for addr in a["ray_metrics"]), a["ray_metrics"]


def test_rays_own_export_carries_the_xmc_series_recorded_through_ray_util_metrics(live):
    s = live["ray_samples"]
    assert s, f"Ray's metrics export at {live['access']['ray_metrics']} gave nothing ({live['ray_error']})"
    assert total(s, "ray_xmc_quotes_total", actor_kind="gateway", venue="SHFE") > 0
    assert total(s, "ray_xmc_evaluations_total", strategy="cu") > 0
    assert total(s, "ray_xmc_pairs_total", outcome="HEDGED", strategy="cu") >= 1
    assert total(s, "ray_xmc_orders_total", leg="A", venue="SHFE") > 0
    assert total(s, "ray_xmc_leg_latency_ms_bucket", venue="LME", le="+Inf") > 0
    assert total(s, "ray_xmc_leg_latency_ms_bucket", venue="SHFE", le="+Inf") > 0
    # Ray takes positive histogram bounds only: slippage there starts at 1 bps (improvements in it)
    assert total(s, "ray_xmc_slippage_bps_bucket", strategy="cu", le="+Inf") > 0
    assert total(s, "ray_xmc_alerts_total", level="yellow", monitor="occupancy") > 0
    assert total(s, "ray_xmc_bad_input_total", actor_kind="gateway", venue="SHFE") >= 1
    assert {x.labels.get("account") for x in s if x.name == "ray_xmc_occupancy"} >= {"cn-main", "us-main"}
    # every series the dashboard draws, under the ray_ prefix its `prefix` variable offers
    have = {x.name for x in s}
    missing = sorted(n for n in dashboard_metric_names() - {"xmc_reject_ratio"} if f"ray_{n}" not in have)
    assert not missing, f"not on Ray's export: {missing}"


def test_rays_service_discovery_file_lists_the_node_export_prometheus_scrapes(live):
    doc = live["discovery"]
    assert doc is not None, "Ray wrote no prom_metrics_service_discovery.json in its session directory"
    targets = {t for group in doc for t in group["targets"]}
    assert set(live["access"]["ray_metrics"]) <= targets


def test_the_dashboard_repr_column_names_each_actor(live):
    r = live["reprs"]
    assert r["coordinator"].startswith("PairCoordinator(coordinator: ")
    assert r["risk-guard"].startswith("RiskGuard(risk-guard: ")
    assert r["gateway-SHFE"] == "VenueGateway(gateway-SHFE: SHFE sim UP)"
    assert r["strategy-host-0"] == "StrategyHost(strategy-host-0: cu)"
    assert r["ledger-0"].startswith("LedgerShard(ledger-0: ") and r["ledger-0"].endswith("shard-0.duckdb)")
    assert r["metrics-hub"].startswith("MetricsHub(metrics-hub")
    assert r["deployment"].startswith("DeploymentRegistry(deployment: metrics-live in " + NS)


@pytest.mark.skipif(not HAVE_PROMETHEUS, reason=WHY_NOT)
def test_every_dashboard_query_returns_data_in_a_real_prometheus_from_both_sources(live):
    """Each Grafana panel's query, as Grafana sends it with "All" selected, for the embedded
    endpoint (prefix empty) and for Ray's export (prefix ray_), returns at least one series."""
    prom = live["prom"]
    prom.wait("both scrape targets up", lambda: {r["metric"]["job"] for r in prom.query("up == 1")} >= {"xmc", "ray"})
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    for prefix in ("", "ray_"):
        for e in exprs:
            if "xmc_reject_ratio" in e:  # only once a venue has a full window of orders (see above)
                continue
            q = e.replace("${prefix}", prefix).replace('"$strategy"', '".*"').replace('"$venue"', '".*"')
            prom.wait(f"data for {q}", lambda q=q: prom.query(q), timeout_s=30)
