"""A real Prometheus for tests (Debian's ``prometheus`` package; ``.ci/run`` installs it)."""
from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

HAVE_PROMETHEUS = shutil.which("prometheus") is not None and shutil.which("promtool") is not None
WHY_NOT = "Prometheus is not installed (apt-get install prometheus; .ci/run does)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, port: int) -> None:
        self.port = port

    def api(self, path: str, **params: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read().decode())

    def query(self, q: str) -> list[dict[str, Any]]:
        r = self.api("query", query=q)
        assert r["status"] == "success", (q, r)
        return r["data"]["result"]

    def wait(self, what: str, cond: Callable[[], Any], timeout_s: float = 40.0) -> Any:
        end, last = time.monotonic() + timeout_s, None
        while time.monotonic() < end:
            try:
                last = cond()
                if last:
                    return last
            except OSError as e:  # not listening yet
                last = e
            time.sleep(0.5)
        raise AssertionError(f"not within {timeout_s} s: {what} (last: {last})")


@contextlib.contextmanager
def prometheus(tmp: Path, jobs: dict[str, list[str]], rule_files: list[Path] = ()) -> Iterator[Prometheus]:
    """A Prometheus on a free loopback port scraping ``jobs`` (job name -> host:port targets)
    every second, evaluating ``rule_files`` every second; stopped at the end."""
    port = free_port()
    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "rule_files": [str(p) for p in rule_files],
           "scrape_configs": [{"job_name": j, "static_configs": [{"targets": t}]} for j, t in jobs.items()]}
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    with open(tmp / "prometheus.log", "w") as log:
        proc = subprocess.Popen(["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            yield Prometheus(port)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
