"""The shipped Prometheus files against a real Prometheus (Debian's ``prometheus`` package).

``promtool`` checks the scrape config and the alert rules; then a Prometheus server on a free
loopback port scrapes the embedded ``/metrics`` endpoint (the metrics module's own recorders
and hub, no Ray), with ``cluster/prometheus/alerts.yml`` loaded: after an escalated pair and a
red alert are recorded, the alerts a desk relies on must fire in Prometheus itself, and the
series must be queryable under the names the Grafana dashboard uses.

``.ci/run`` installs the package (CI runs as root on Debian); where it is missing locally the
tests are skipped and say why.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from prom_kit import HAVE_PROMETHEUS, WHY_NOT, prometheus
from xmc_actors.actors.metrics import Metrics, MetricsHubCore, start_metrics_endpoint

ROOT = Path(__file__).resolve().parents[2]
PROM_CFG = ROOT / "cluster" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "cluster" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "cluster" / "grafana" / "xmc-dashboard.json"

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(not HAVE_PROMETHEUS, reason=WHY_NOT)]


def test_promtool_accepts_the_scrape_config_and_the_alert_rules():
    for args in (["check", "config", str(PROM_CFG)], ["check", "rules", str(ALERTS)]):
        r = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "SUCCESS" in r.stdout + r.stderr


@pytest.fixture
def live(tmp_path):
    """The embedded endpoint serving a hub fed by real recorders, and a Prometheus scraping it
    every second with the shipped rules; both stopped at the end."""
    hub = MetricsHubCore()
    coord = Metrics("coordinator", hub=hub, to_ray=False, auto_flush=False)
    risk = Metrics("risk_guard", hub=hub, to_ray=False, auto_flush=False)
    coord.count("pairs", 1, strategy="cu", outcome="HEDGED")
    coord.flush()
    risk.flush()
    endpoint = start_metrics_endpoint(0, hub.collect)
    try:
        with prometheus(tmp_path, {"xmc": [f"127.0.0.1:{endpoint.port}"]}, [ALERTS]) as prom:
            yield {"coord": coord, "risk": risk, "prom": prom}
    finally:
        endpoint.close()


def test_a_real_prometheus_scrapes_the_endpoint_and_fires_the_shipped_alerts(live):
    prom = live["prom"]
    # Arrange: Prometheus up and scraping the endpoint
    prom.wait("the scrape target up", lambda: any(r["value"][1] == "1" for r in prom.query('up{job="xmc"}')))
    prom.wait("a first sample of the pairs counter", lambda: prom.query("xmc_pairs_total"))
    # Act: a pair escalates and the risk guard raises a red alert (counters move after scraping began)
    live["coord"].count("pairs", 1, strategy="cu", outcome="ESCALATED")
    live["coord"].flush()
    live["risk"].count("alerts", 1, level="red", monitor="unhedged", strategy="cu")
    live["risk"].flush()
    # Assert: the shipped rules fire in Prometheus itself, with the labels a desk reads
    def firing() -> dict:
        alerts = prom.api("alerts")["data"]["alerts"]
        return {a["labels"]["alertname"]: a for a in alerts if a["state"] == "firing"}

    got = prom.wait("XmcPairEscalated, XmcRedAlert and XmcUnhedgedExposure firing",
                lambda: (lambda f: f if {"XmcPairEscalated", "XmcRedAlert", "XmcUnhedgedExposure"} <= set(f) else None)(firing()))
    assert got["XmcPairEscalated"]["labels"]["strategy"] == "cu"
    assert got["XmcRedAlert"]["labels"]["monitor"] == "unhedged" and got["XmcRedAlert"]["labels"]["severity"] == "critical"
    # nothing else fires: a hedged pair and no rejects are not alerts
    assert set(got) == {"XmcPairEscalated", "XmcRedAlert", "XmcUnhedgedExposure"}, sorted(got)
    assert prom.api("rules")["data"]["groups"][0]["name"] == "xmc-actors"

    # every Grafana panel's query runs in this Prometheus (template variables as Grafana fills
    # them for "All" and the embedded endpoint); the pairs and alerts panels show what happened
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    results = {}
    for e in exprs:
        q = e.replace("${prefix}", "").replace('"$strategy"', '".*"').replace('"$venue"', '".*"')
        results[e] = prom.query(q)
    pairs = next(v for k, v in results.items() if "xmc_pairs_total" in k)
    assert {s["metric"]["outcome"] for s in pairs} >= {"ESCALATED"}
    alerts = next(v for k, v in results.items() if "xmc_alerts_total" in k)
    assert [s["metric"]["level"] for s in alerts] == ["red"]
