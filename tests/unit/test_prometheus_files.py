"""The Prometheus scrape config, its alert rules and the Grafana provisioning shipped in
``cluster/`` fit the metrics the actors record and the files beside them.

Each alert expression may only name series the metrics module exports (``SPECS`` with each
kind's suffixes, and what the ``/metrics`` endpoint adds), group and filter by labels those
series carry, with label values the code produces; the scrape config must load the rules file
and read the file Ray writes its nodes to; the Grafana provisioning must point at the dashboard
file that exists, through the mounts of ``cluster/monitoring-compose.yml``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from xmc_actors.actors.metrics import _ORDER_OUTCOME, ENDPOINT_SERIES, SPECS
from xmc_actors.core.monitors import MonitorSet
from xmc_actors.model.orders import OrderStatus
from xmc_actors.model.pairs import PairState, PairSummary
from xmc_actors.model.risk import AlertLevel, Monitors

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
PROM = CLUSTER / "prometheus" / "prometheus.yml"
ALERTS = CLUSTER / "prometheus" / "alerts.yml"
PROVISIONING = CLUSTER / "grafana" / "provisioning"
COMPOSE = CLUSTER / "monitoring-compose.yml"
SUFFIX = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
EXPORTED = {f"xmc_{n}{sfx}": n for n, spec in SPECS.items() for sfx in SUFFIX[spec.kind]} | {n: n for n in ENDPOINT_SERIES}


def rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric, {label: value}) of every xmc_ selector in ``expr``: ``xmc_x{a="b"}`` and
    ``{__name__=~"(ray_)?xmc_x", a="b"}``."""
    out = []
    for name, body in re.findall(r'\b(xmc_[a-z_]+)\s*\{([^}]*)\}', expr):
        out.append((name, dict(re.findall(r'([a-z_]+)\s*=~?\s*"([^"]*)"', body))))
    for body in re.findall(r'\{([^}]*__name__[^}]*)\}', expr):
        labels = dict(re.findall(r'([a-z_]+)\s*=~?\s*"([^"]*)"', body))
        name = re.search(r"xmc_[a-z_]+", labels.pop("__name__")).group(0)
        out.append((name, labels))
    for name in re.findall(r'\b(xmc_[a-z_]+)\b(?!\s*\{)', expr):  # a bare name, no braces
        if not re.search(rf'"\(ray_\)\?{name}"', expr):
            out.append((name, {}))
    return out


# -- alerts.yml ----------------------------------------------------------------------------------
def test_every_rule_is_complete_and_named_once():
    rs = rules()
    names = [r["alert"] for r in rs]
    assert len(names) == len(set(names)), names
    for r in rs:
        assert r["expr"].strip() and r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        assert r["annotations"]["summary"], r["alert"]
        assert r["expr"].count("(") == r["expr"].count(")") and r["expr"].count("{") == r["expr"].count("}"), r["alert"]
        assert r["expr"].count('"') % 2 == 0, r["alert"]


def test_the_rules_cover_red_alerts_rejects_escalations_unhedged_and_the_metrics_hub():
    named = {name for r in rules() for name, _ in selectors(r["expr"])}
    assert {"xmc_alerts_total", "xmc_reject_ratio", "xmc_pairs_total", "xmc_orders_total", "xmc_metrics_hub_up"} <= named
    by_alert = {r["alert"]: r["expr"] for r in rules()}
    assert 'level="red"' in by_alert["XmcRedAlert"] and 'outcome="ESCALATED"' in by_alert["XmcPairEscalated"]
    assert by_alert["XmcMetricsHubDown"].startswith("xmc_metrics_hub_up == 0")


def test_every_metric_an_alert_names_is_a_series_the_metrics_module_exports():
    for r in rules():
        found = selectors(r["expr"])
        assert found or "xmc_" not in r["expr"], r["alert"]
        for name, _ in found:
            assert name in EXPORTED, f"{r['alert']}: {name} is not exported (known: {sorted(EXPORTED)})"
        # either source: every selector of a counter, gauge or histogram also matches Ray's ray_xmc_ name
        for name in re.findall(r"xmc_[a-z_]+", r["expr"]):
            assert name in ENDPOINT_SERIES or f'"(ray_)?{name}"' in r["expr"], f"{r['alert']}: {name} without (ray_)?"


def test_every_label_an_alert_groups_or_filters_by_is_a_tag_of_its_metric_with_a_value_it_takes():
    pair_outcomes = {s.value for s in PairState if s.is_terminal}
    order_outcomes = {_ORDER_OUTCOME.get(s.value, s.value) for s in OrderStatus} - {"NEW", "PENDING_CANCEL"}
    levels = {lv.value for lv in AlertLevel}
    for r in rules():
        for name, labels in selectors(r["expr"]):
            if name in ENDPOINT_SERIES:
                assert not labels, r["alert"]
                continue
            spec = SPECS[EXPORTED[name]]
            keys = set(spec.tag_keys)
            assert set(labels) <= keys, f"{r['alert']}: {sorted(set(labels) - keys)} not tags of {name}"
            if name == "xmc_pairs_total" and "outcome" in labels:
                assert labels["outcome"] in pair_outcomes, r["alert"]
            if name == "xmc_orders_total" and "outcome" in labels:
                assert labels["outcome"] in order_outcomes, r["alert"]
            if "level" in labels:
                assert labels["level"] in levels, r["alert"]
            grouped = {g.strip() for by in re.findall(r"by \(([^)]*)\)", r["expr"]) for g in by.split(",")}
            assert grouped <= keys, f"{r['alert']}: groups by {sorted(grouped - keys)}, not tags of {name}"


def test_the_unhedged_rule_names_the_monitor_the_risk_guard_uses():
    cond = MonitorSet(Monitors()).unhedged(PairSummary(decision_id="cu-1", strategy="cu", state="ESCALATED"))
    (expr,) = [r["expr"] for r in rules() if r["alert"] == "XmcUnhedgedExposure"]
    assert f'monitor="{cond.monitor}"' in expr


@pytest.mark.parametrize("expr, want", [
    ('sum(rate({__name__=~"(ray_)?xmc_quotes_total", venue="LME"}[1m]))', [("xmc_quotes_total", {"venue": "LME"})]),
    ('xmc_metrics_hub_up == 0', [("xmc_metrics_hub_up", {})]),
    ('max(xmc_occupancy{account="a"})', [("xmc_occupancy", {"account": "a"})]),
])
def test_the_selector_reader_of_this_test(expr, want):
    assert selectors(expr) == want


# -- prometheus.yml ------------------------------------------------------------------------------------
def test_the_scrape_config_loads_the_rules_and_scrapes_both_sources():
    from ray._private.ray_constants import PROMETHEUS_SERVICE_DISCOVERY_FILE

    doc = yaml.safe_load(PROM.read_text())
    assert [(PROM.parent / f).resolve() for f in doc["rule_files"]] == [ALERTS.resolve()]
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    xmc = jobs["xmc"]
    assert xmc.get("metrics_path", "/metrics") == "/metrics"
    (target,) = [t for sc in xmc["static_configs"] for t in sc["targets"]]
    host, port = target.rsplit(":", 1)
    assert host == "127.0.0.1" and 0 < int(port) < 65536  # the endpoint listens on loopback only
    (sd,) = [f for c in jobs["ray"]["file_sd_configs"] for f in c["files"]]
    assert PurePosixPath(sd) == PurePosixPath("/tmp/ray") / PROMETHEUS_SERVICE_DISCOVERY_FILE


# -- grafana provisioning ----------------------------------------------------------------------------------
def test_the_datasource_is_a_default_prometheus_one():
    (ds,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert ds["type"] == "prometheus" and ds["isDefault"] is True and ds["url"].endswith(":9090")
    dash = json.loads((CLUSTER / "grafana" / "xmc-dashboard.json").read_text())
    (var,) = [v for v in dash["templating"]["list"] if v["name"] == "datasource"]
    assert var["type"] == "datasource" and var["query"] == ds["type"]


def test_the_dashboard_provider_points_at_the_dashboard_file_that_exists():
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "xmc.yaml").read_text())["providers"]
    assert provider["type"] == "file"
    where = PurePosixPath(provider["options"]["path"])
    compose = yaml.safe_load(COMPOSE.read_text())
    grafana = compose["services"]["grafana"]
    mounts = {}
    for v in grafana["volumes"]:
        src, dst = v.split(":")[:2]
        mounts[PurePosixPath(dst)] = (COMPOSE.parent / src).resolve()
    dashboards = {dst: src for dst, src in mounts.items() if dst.parent == where and dst.suffix == ".json"}
    assert dashboards, f"nothing mounted in {where}"
    for dst, src in dashboards.items():
        assert src.is_file(), f"{src} (mounted at {dst}) does not exist"
        assert json.loads(src.read_text())["uid"] == "xmc-actors"
    # the provisioning directory itself is mounted where Grafana reads it
    assert mounts[PurePosixPath("/etc/grafana/provisioning")] == PROVISIONING.resolve()


def test_compose_mounts_the_prometheus_files_and_rays_discovery_directory():
    compose = yaml.safe_load(COMPOSE.read_text())
    prom = compose["services"]["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"]}
    assert (COMPOSE.parent / mounts["/etc/prometheus"]).resolve() == PROM.parent.resolve()
    assert mounts["/tmp/ray"] == "/tmp/ray"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
