"""A detached deployment outlives its driver; ``xmc status`` and ``xmc stop`` attach to it.

A Ray head is started with ``ray start --head --block`` on a free loopback port (its own process
group, killed at the end). ``xmc run`` submits a detached copper deployment to it and is then
SIGKILLed, as a closed terminal or a crashed launcher would: the deployment keeps trading, and
``xmc stop`` from another process winds it down cleanly (every pair terminal, the ledger
flushed) and removes its actors. The pytest process itself joins no Ray.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from runtime_kit import TERMINAL, XMC, copper_config, last_pair_states, subprocess_env
from test_runtime_sigint import Lines

pytestmark = pytest.mark.ray
NS = "test-runtime-detached"
RAY = str(Path(XMC).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def head(tmp_path):
    import shutil
    import tempfile

    port = _free_port()
    env = subprocess_env()
    # the head's sessions stay out of the shared /tmp/ray; a short path, since Ray's unix
    # sockets live under it and their paths are limited to about 100 characters
    tmp_ray = tempfile.mkdtemp(prefix="xr", dir="/tmp")
    proc = subprocess.Popen([RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={tmp_ray}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("ray head did not start")
        time.sleep(2)
        yield address
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except Exception:  # noqa: BLE001 - already gone, or stuck: force it
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(tmp_ray, ignore_errors=True)


def _xmc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([XMC, *args], capture_output=True, text=True, timeout=timeout, env=subprocess_env())


def test_a_detached_deployment_outlives_its_killed_driver_and_xmc_stop_ends_it_cleanly(tmp_path, head):
    # Arrange: a detached deployment started by `xmc run` on the head
    cfg = copper_config(tmp_path, "detached", NS, ray_extra={"detached": True})
    proc = subprocess.Popen([XMC, "run", str(cfg), "--address", head, "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env(), start_new_session=True)
    lines = Lines(proc)
    try:
        lines.until("all actors ready", 150)
        time.sleep(3)  # trading
    finally:
        # Act: the driver is killed (no clean stop, nothing flushed by it)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    ledger = tmp_path / "ledger"
    before = len(last_pair_states(ledger))
    time.sleep(4)

    # Assert: still there and still trading, seen from another process
    status = _xmc("status", "--address", head, "--namespace", NS)
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"coordinator +UP", status.stdout), status.stdout
    assert len(last_pair_states(ledger)) > before, "no pair after the driver died"

    # xmc stop winds it down, flushes, and removes it
    stop = _xmc("stop", "--address", head, "--namespace", NS, "--operator", "alice")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "pairs by outcome" in stop.stdout and "actors removed" in stop.stdout
    states = last_pair_states(ledger)
    assert states and {d: s for d, s in states.items() if s not in TERMINAL} == {}
    gone = _xmc("status", "--address", head, "--namespace", NS)
    assert gone.returncode == 3, gone.stdout + gone.stderr
