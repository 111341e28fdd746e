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
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from xmc_actors.actors.metrics import Metrics, MetricsHubCore, start_metrics_endpoint

ROOT = Path(__file__).resolve().parents[2]
PROM_CFG = ROOT / "cluster" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "cluster" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "cluster" / "grafana" / "xmc-dashboard.json"

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                 reason="Prometheus is not installed (apt-get install prometheus; .ci/run does)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read().decode())


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
    port = _free_port()
    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "rule_files": [str(ALERTS)],
           "scrape_configs": [{"job_name": "xmc", "static_configs": [{"targets": [f"127.0.0.1:{endpoint.port}"]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))
    try:
        yield {"coord": coord, "risk": risk, "port": port, "log": tmp_path / "prometheus.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        endpoint.close()


def _wait(what: str, cond, timeout_s: float = 40.0):  # noqa: ANN001, ANN202
    end = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < end:
        try:
            last = cond()
            if last:
                return last
        except OSError as e:  # not listening yet
            last = e
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout_s} s: {what} (last: {last})")


def test_a_real_prometheus_scrapes_the_endpoint_and_fires_the_shipped_alerts(live):
    port = live["port"]
    # Arrange: Prometheus up and scraping the endpoint
    _wait("the scrape target up", lambda: any(r["value"][1] == "1" for r in
                                              _api(port, "query", query='up{job="xmc"}')["data"]["result"]))
    _wait("a first sample of the pairs counter", lambda: _api(port, "query", query="xmc_pairs_total")["data"]["result"])
    # Act: a pair escalates and the risk guard raises a red alert (counters move after scraping began)
    live["coord"].count("pairs", 1, strategy="cu", outcome="ESCALATED")
    live["coord"].flush()
    live["risk"].count("alerts", 1, level="red", monitor="unhedged", strategy="cu")
    live["risk"].flush()
    # Assert: the shipped rules fire in Prometheus itself, with the labels a desk reads
    def firing() -> dict:
        alerts = _api(port, "alerts")["data"]["alerts"]
        return {a["labels"]["alertname"]: a for a in alerts if a["state"] == "firing"}

    got = _wait("XmcPairEscalated, XmcRedAlert and XmcUnhedgedExposure firing",
                lambda: (lambda f: f if {"XmcPairEscalated", "XmcRedAlert", "XmcUnhedgedExposure"} <= set(f) else None)(firing()))
    assert got["XmcPairEscalated"]["labels"]["strategy"] == "cu"
    assert got["XmcRedAlert"]["labels"]["monitor"] == "unhedged" and got["XmcRedAlert"]["labels"]["severity"] == "critical"
    # nothing else fires: a hedged pair and no rejects are not alerts
    assert set(got) == {"XmcPairEscalated", "XmcRedAlert", "XmcUnhedgedExposure"}, sorted(got)
    assert _api(port, "rules")["data"]["groups"][0]["name"] == "xmc-actors"

    # every Grafana panel's query runs in this Prometheus (template variables as Grafana fills
    # them for "All" and the embedded endpoint); the pairs and alerts panels show what happened
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    results = {}
    for e in exprs:
        q = e.replace("${prefix}", "").replace('"$strategy"', '".*"').replace('"$venue"', '".*"')
        r = _api(port, "query", query=q)
        assert r["status"] == "success", (q, r)
        results[e] = r["data"]["result"]
    pairs = next(v for k, v in results.items() if "xmc_pairs_total" in k)
    assert {s["metric"]["outcome"] for s in pairs} >= {"ESCALATED"}
    alerts = next(v for k, v in results.items() if "xmc_alerts_total" in k)
    assert [s["metric"]["level"] for s in alerts] == ["red"]
