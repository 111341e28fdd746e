"""Loopback FIX exchanges the runtime starts for gateways with ``serve_loopback`` (the demo,
rehearsals): one ``python -m xmc_actors.venues.fix.exchange`` process per such gateway on a free
port of 127.0.0.1, the gateway pointed at it, stopped with the deployment.

No engine import here: the runtime imports this module to start a deployment.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any


def needs_loopback(cfg: Any) -> list[str]:
    """Actor names of the gateways of ``cfg`` with ``adapter: fix`` and ``serve_loopback``."""
    return [g.actor_name for g in cfg.gateways if g.adapter == "fix" and (g.params or {}).get("serve_loopback")]


class LoopbackExchanges:
    """The exchange processes of one deployment: :meth:`start` returns the configuration with
    each such gateway's ``port`` and ``exchange_control`` set; :meth:`stop` ends them (also
    called more than once, and on a start that failed)."""

    def __init__(self) -> None:
        self.procs: dict[str, tuple[subprocess.Popen[str], dict[str, Any]]] = {}
        self._dir: Path | None = None

    def start(self, cfg: Any, timeout_s: float = 60.0) -> Any:
        names = needs_loopback(cfg)
        if not names:
            return cfg
        self._dir = Path(tempfile.mkdtemp(prefix="xmc-loopback-"))
        path = self._dir / "deployment.json"
        path.write_text(json.dumps(cfg.model_dump(mode="json", by_alias=True)))
        gateways = []
        try:
            for g in cfg.gateways:
                if g.actor_name not in names:
                    gateways.append(g)
                    continue
                ports = self._spawn(path, g, timeout_s)
                params = {**g.params, "port": ports["port"], "exchange_control": f"127.0.0.1:{ports['control_port']}"}
                gateways.append(g.model_copy(update={"params": params}))
        except BaseException:
            self.stop()
            raise
        return cfg.model_copy(update={"gateways": tuple(gateways)})

    def _spawn(self, path: Path, g: Any, timeout_s: float) -> dict[str, Any]:
        sim = json.dumps(g.params.get("loopback_sim") or {})
        proc = subprocess.Popen(
            [sys.executable, "-m", "xmc_actors.venues.fix.exchange", "--config", str(path), "--gateway", g.actor_name,
             "--port", "0", "--control-port", "0", "--sim-params", sim, "--checked"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        box: dict[str, str] = {}
        reader = threading.Thread(target=lambda: box.update(line=proc.stdout.readline() if proc.stdout else ""),
                                  daemon=True)
        reader.start()
        reader.join(timeout_s)
        line = box.get("line") or ""
        if not line:
            proc.kill()
            err = proc.stderr.read()[-2000:] if proc.stderr else ""
            raise RuntimeError(f"gateway {g.actor_name}: the loopback FIX exchange did not start within "
                               f"{timeout_s:.0f} s: {err.strip() or 'no output'}")
        ports = json.loads(line)
        self.procs[g.actor_name] = (proc, ports)
        return ports

    def stop(self, timeout_s: float = 10.0) -> None:
        from .exchange import control

        for name, (proc, ports) in list(self.procs.items()):
            try:
                control(f"127.0.0.1:{ports['control_port']}", {"cmd": "stop"}, timeout_s=3)
            except Exception:  # noqa: BLE001 - gone already: terminated below
                pass
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
            del self.procs[name]
