"""``xmc run CONFIG`` and ``xmc status``."""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..runtime.config import ConfigError, load_config
from .cli import CliError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="start a deployment (embedded Ray by default) and run it")
    p.add_argument("config", help="deployment YAML file")
    p.add_argument("--address", help="join this Ray cluster instead of starting an embedded one ('auto': this machine's)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds to run live feeds (default: until replays end; with no replay, until Ctrl-C)")
    p.add_argument("--ledger", help="ledger directory (overrides ledger.path)")
    p.add_argument("--report", help="write the HTML audit report here at the end")
    p.add_argument("--per-host", type=int, default=25, help="strategy instances per strategy-host actor")
    p.add_argument("--no-progress", action="store_true", help="no progress line while running")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_run)

    s = sub.add_parser("status", help="actors, strategies, positions, occupancy and open alerts of a running deployment")
    s.add_argument("--address", help="Ray address (default: the cluster on this machine)")
    s.add_argument("--namespace", default="xmc", help="the deployment's namespace (ray.namespace; default xmc)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)


def _load(path: str) -> Any:
    try:
        return load_config(path)
    except ConfigError as e:
        raise CliError(f"{path} is not valid:\n" + "\n".join("  " + i.located() for i in e.issues), code=1) from None


def run_deployment(cfg: Any, *, address: str | None, duration: float | None, ledger: str | None, report: str | None,
                   per_host: int, show_progress: bool) -> Any:
    """Start, run and stop ``cfg``; returns the :class:`RunSummary` (used by ``xmc demo`` too)."""
    from ..runtime.deploy import Deployment, install_sigint
    from ..runtime.placement import ActorsNotReady

    stop = threading.Event()
    install_sigint(stop)
    dep = Deployment(cfg, address=address, ledger_path=ledger, strategies_per_host=per_host)
    try:
        print(f"starting {cfg.name!r}: {len(cfg.gateways)} gateways, {len(cfg.strategies)} strategies, "
              f"{'embedded Ray' if (address or cfg.ray.address) is None else 'cluster ' + str(address or cfg.ray.address)}",
              flush=True)
        try:
            dep.start()
        except ActorsNotReady as e:
            raise CliError(f"deployment {cfg.name!r} did not start:\n{e}", code=3) from None
        except (KeyError, ValueError) as e:  # a strategy that cannot be built: say which, no traceback
            raise CliError(f"deployment {cfg.name!r} did not start: {e.args[0] if e.args else e}", code=3) from None
        print(f"all actors ready in {time.monotonic() - dep.started_at:.1f} s; namespace {dep.namespace!r} "
              f"(`xmc status --namespace {dep.namespace}` from another shell); Ctrl-C stops cleanly", flush=True)
        if dep.decision_seqs:
            went_on = ", ".join(f"{k} after {v}" for k, v in sorted(dep.decision_seqs.items()))
            print(f"the ledger holds earlier decisions: decision ids go on ({went_on}); positions start flat",
                  flush=True)
        summary = dep.run(duration_s=duration, progress=_progress if show_progress else None, stop_event=stop)
        if show_progress:
            sys.stdout.write("\n")
        if report:
            summary.report_path = write_report(summary.ledger_path, report)
        return summary
    finally:
        dep.shutdown_ray()


def _progress(p: dict[str, Any]) -> None:
    import datetime as dt

    outcomes = " ".join(f"{k}={v}" for k, v in sorted(p["by_outcome"].items())) or "no pairs yet"
    replay = ""
    if p.get("replay_ns"):
        replay = " replay " + dt.datetime.fromtimestamp(p["replay_ns"] / 1e9, dt.timezone.utc).strftime("%Y-%m-%d")
    sys.stdout.write(f"\r  {p['elapsed_s']:6.1f}s{replay}  in flight {p['in_flight']:3d}  {outcomes}   ")
    sys.stdout.flush()


def write_report(ledger_dir: str, out: str) -> str:
    from ..ledger.audit import AuditReader
    from ..ledger.report import build_report

    reader = AuditReader(ledger_dir)
    try:
        html = build_report(reader, title="xmc-actors run report")
    finally:
        reader.close()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(html, encoding="utf-8")
    return str(Path(out))


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    summary = run_deployment(cfg, address=args.address, duration=args.duration, ledger=args.ledger,
                             report=args.report, per_host=args.per_host, show_progress=not args.no_progress)
    if args.json:
        import dataclasses

        print(json.dumps(dataclasses.asdict(summary), indent=2, default=str))
    else:
        for line in summary.lines():
            print(line)
    return run_exit_code(summary)


def run_exit_code(summary: Any) -> int:
    """0: the run ended as configured; 130: interrupted (Ctrl-C); 4: an actor fault ended it early."""
    if any(str(f).startswith("run ended") for f in summary.faults):
        return 4
    return 130 if summary.interrupted else 0


def _check_reachable(address: str | None, timeout_s: float = 3.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on (``ray.init`` would retry for minutes)."""
    import socket

    if not address or address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as e:
        raise CliError(f"no Ray cluster answers at {address}: {e}", code=3) from None


def cmd_status(args: argparse.Namespace) -> int:
    import ray

    from ..runtime.deploy import collect_status
    from ..runtime.session import find_registry, get_actor

    _check_reachable(args.address)
    try:
        registry = find_registry(args.address, args.namespace)
        info = ray.get(registry.describe.remote(), timeout=10)
        handles = {n: get_actor(n, args.namespace) for n in info.get("actors", []) if n != "deployment"}
    except LookupError as e:
        raise CliError(str(e), code=3) from None
    status = collect_status(handles)
    if args.json:
        print(json.dumps({"deployment": info, "actors": status}, indent=2, default=str))
        return 0
    print(f"deployment {info['name']!r} in namespace {info['namespace']!r}: {info['state']}")
    print(f"  ledger {info.get('ledger', '?')}")
    print("  actors")
    for name, st in sorted(status.items()):
        state = "DEAD/UNREACHABLE: " + st["error"] if "error" in st else st.get("state", "UP")
        if "sessions" in st:  # a gateway group: each venue session's own state
            state += " (" + ", ".join(f"{s.get('venue', n)} {s.get('state', '?')}" for n, s in st["sessions"].items()) + ")"
        print(f"    {name:<28} {state}")
    for name, st in sorted(status.items()):
        if name.startswith("strategy-host-") and "strategies" in st:
            for sname, s in sorted(st["strategies"].items()):
                counters = s.get("counters", {})
                print(f"  strategy {sname:<24} {s.get('state', '?'):<8} position {s.get('position', 0):>4}  "
                      f"evaluations {counters.get('evaluations', 0)}  intents {counters.get('intents', 0)}  "
                      f"errors {len(s.get('errors', []))}")
    risk = status.get("risk-guard", {})
    occ = risk.get("occupancy", {})
    if occ:
        print("  capital occupancy (资金占用)")
        for acc, v in sorted(occ.items()):
            print(f"    {acc:<28} {v['ratio'] * 100:6.2f}%  used {v['used']} of {v['equity']} {v['currency']}"
                  f"{'  [' + v['level'] + ']' if v.get('level') else ''}")
    states = risk.get("trading_states", {})
    if states:
        print("  trading states " + ", ".join(f"{k}={v}" for k, v in sorted(states.items())))
    alerts = risk.get("open_alerts", [])
    print(f"  open alerts {len(alerts)}")
    for a in alerts[:20]:
        print(f"    [{a.get('level', '?')}] {a.get('key', '')} {a.get('message', '')}")
    coord = status.get("coordinator", {})
    if coord and "error" not in coord:
        in_flight = coord.get("in_flight", {})
        print(f"  pairs in flight {sum(in_flight.values())}; by outcome "
              + (", ".join(f"{k} {v}" for k, v in sorted(coord.get("outcomes", {}).items())) or "none yet"))
    return 0
