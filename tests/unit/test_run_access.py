"""What ``xmc run`` prints at start so that a newcomer finds the Ray dashboard (and signs in to
it), the ``/metrics`` endpoint and Ray's own metrics export; ``--dashboard`` and
``--metrics-port`` turn them on for one run."""
from __future__ import annotations

import argparse

import pytest

from testkit import ROOT
from xmc_actors.ops.cli import build_parser, main
from xmc_actors.ops.cmd_run import access_lines, with_look_options
from xmc_actors.runtime.config import load_config

TOKEN_FILE = {"auth_mode": "token", "token_source": "file", "token_path": "/home/alice/.ray/auth_token"}


def test_the_dashboard_url_and_where_its_token_is():
    lines = access_lines({"dashboard_url": "127.0.0.1:8265", "embedded": True, "auth": TOKEN_FILE,
                          "metrics_url": "http://127.0.0.1:9100/metrics", "ray_metrics": ["10.0.0.5:40621"]})
    assert lines[0].startswith("Ray dashboard  http://127.0.0.1:8265  (Actors tab: the Repr column")
    assert "paste the contents of /home/alice/.ray/auth_token (`cat /home/alice/.ray/auth_token` prints it)" in lines[1]
    assert lines[2].startswith("metrics        http://127.0.0.1:9100/metrics  (xmc_* series")
    assert lines[3].startswith("console        off (api: {enabled: true}")  # not started in this run
    assert lines[4] == "Ray metrics    http://10.0.0.5:40621/metrics  (ray_xmc_* series)"


def test_the_console_url_or_why_it_is_off():
    url = "http://127.0.0.1:8765"
    on = access_lines({"api": {"url": url, "console": f"{url}/console/"}})
    assert any(line.startswith(f"console        {url}/console/  (operator API {url}/v1/") for line in on)
    failed = access_lines({"api": {"error": "api: 127.0.0.1:8765 is taken (Address already in use)"}})
    assert "console        off: api: 127.0.0.1:8765 is taken (Address already in use)" in failed


def test_a_token_from_the_environment_is_named_never_shown():
    lines = access_lines({"dashboard_url": "http://127.0.0.1:8265", "embedded": True,
                          "auth": {"auth_mode": "token", "token_source": "env"}})
    assert lines[0].startswith("Ray dashboard  http://127.0.0.1:8265  ")
    assert "paste the value of RAY_AUTH_TOKEN of the shell that started this run" in lines[1]


def test_without_token_authentication_no_sign_in_line():
    lines = access_lines({"dashboard_url": "127.0.0.1:8265", "embedded": True, "auth": {"auth_mode": "disabled"}})
    assert not any("token" in line for line in lines)


def test_what_is_off_says_how_to_turn_it_on():
    lines = access_lines({"dashboard_url": "", "embedded": True, "auth": TOKEN_FILE, "metrics_url": "", "ray_metrics": []})
    assert lines == ["Ray dashboard  off (xmc run --dashboard, or `ray: {dashboard: true}` in the deployment file)",
                     "metrics        no /metrics endpoint (xmc run --metrics-port PORT, or ray.metrics_port)",
                     "console        off (api: {enabled: true} in the deployment file, or XMC_API=on)"]
    on_cluster = access_lines({"dashboard_url": "", "embedded": False})
    assert on_cluster[0].startswith("Ray dashboard  the cluster's, on its head node")


def test_many_nodes_are_shortened():
    line = access_lines({"ray_metrics": [f"10.0.0.{i}:1" for i in range(5)]})[-1]
    assert line.startswith("Ray metrics    http://10.0.0.0:1/metrics, http://10.0.0.1:1/metrics, http://10.0.0.2:1/metrics "
                           "and 2 more nodes")


def test_dashboard_and_metrics_port_options_override_the_file_for_this_run():
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    assert not cfg.ray.dashboard and cfg.ray.metrics_port == 0
    args = build_parser().parse_args(["run", "configs/demo.yaml", "--dashboard", "--metrics-port", "9100"])
    run_cfg = with_look_options(cfg, args)
    assert run_cfg.ray.dashboard and run_cfg.ray.metrics_port == 9100 and run_cfg.ray.namespace == cfg.ray.namespace
    assert with_look_options(cfg, argparse.Namespace()) is cfg
    demo_args = build_parser().parse_args(["demo", "--dashboard"])
    assert with_look_options(cfg, demo_args).ray.dashboard


def test_a_metrics_port_out_of_range_is_refused_naming_the_option(capsys):
    with pytest.raises(SystemExit):
        main(["run", "configs/demo.yaml", "--metrics-port", "70000"])
    assert "--metrics-port" in capsys.readouterr().err
