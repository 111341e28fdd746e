"""The Grafana dashboard only queries series that ops.metrics produces."""
from __future__ import annotations

import json
import re
from pathlib import Path

from xmc_actors.ops.metrics import SPECS

DASHBOARD = Path(__file__).resolve().parents[2] / "cluster" / "grafana" / "xmc-dashboard.json"
SUFFIX = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def test_every_dashboard_query_names_a_series_the_metrics_module_exports():
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exported = {f"xmc_{name}{sfx}" for name, spec in SPECS.items() for sfx in SUFFIX[spec.kind]}

    used = {m for e in exprs for m in re.findall(r"xmc_[a-z_]+", e)}

    assert used, "dashboard has no xmc_ queries"
    assert used <= exported, f"unknown series in dashboard: {sorted(used - exported)}"
    assert all("${prefix}xmc_" in e for e in exprs)  # works for both the embedded and the Ray-agent names


def _queries() -> list[tuple[str, str]]:
    """(metric base name in SPECS, expression) for every metric every dashboard query names."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for e in (t["expr"] for p in dash["panels"] for t in p["targets"]):
        for m in re.findall(r"xmc_([a-z_]+)", e):
            base = next((m[: -len(s)] for s in ("_total", "_bucket", "_sum", "_count") if m.endswith(s) and m[: -len(s)] in SPECS), m)
            out.append((base, e))
    return out


def test_every_label_a_dashboard_query_groups_or_filters_by_is_a_tag_of_its_metric():
    for name, expr in _queries():
        keys = set(SPECS[name].tag_keys) | ({"le"} if SPECS[name].kind == "histogram" else set())
        grouped = {g.strip() for by in re.findall(r"by \(([^)]*)\)", expr) for g in by.split(",")}
        filtered = set(re.findall(r"([a-z_]+)=~", expr))
        assert grouped | filtered <= keys, f"{name}: {sorted((grouped | filtered) - keys)} not tags of it ({expr})"


def test_every_metric_says_who_records_it_and_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    section = doc[doc.index("## 7. Metrics"):doc.index("## 8.")]
    for name, spec in SPECS.items():
        assert spec.recorded_by, f"{name}: no recorded_by"
        series = f"xmc_{name}_total" if spec.kind == "counter" else f"xmc_{name}"
        assert f"`{series}`" in section, f"{series} is not in docs/operations.md, Metrics"
