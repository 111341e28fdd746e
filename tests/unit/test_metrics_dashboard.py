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
