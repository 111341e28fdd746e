"""``xmc run CONFIG`` and ``xmc status``."""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..runtime.config import ConfigError, load_config
from .cli import CliError, port_number, positive_float, positive_int
from .output import Table, add_format_argument, emit, key_value_table, output_format


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="start a deployment (embedded Ray by default) and run it")
    p.add_argument("config", help="deployment YAML file")
    p.add_argument("--address", help="join this Ray cluster instead of starting an embedded one ('auto': this machine's)")
    p.add_argument("--duration", type=positive_float, default=None,
                   help="seconds to run live feeds (default: until replays end; with no replay, until Ctrl-C)")
    p.add_argument("--ledger", help="ledger directory (overrides ledger.path)")
    p.add_argument("--report", help="write the HTML audit report here at the end")
    p.add_argument("--per-host", type=positive_int, default=25, help="strategy instances per strategy-host actor")
    p.add_argument("--no-progress", action="store_true", help="no progress line while running")
    look_options(p)
    add_format_argument(p, json_alias=True)  # json/csv: the summary only on stdout, the rest on stderr
    p.set_defaults(func=cmd_run)

    s = sub.add_parser("status", help="actors, strategies, positions, occupancy and open alerts of a running deployment")
    s.add_argument("--address", help="Ray address HOST:PORT of a deployment on a cluster (default: the "
                                      "deployment's own address file, written by `xmc run` on this machine)")
    s.add_argument("--namespace", default=None, help="the deployment's namespace (ray.namespace; default: the one "
                                                     "deployment running on this machine, else xmc)")
    add_format_argument(s, json_alias=True)
    s.set_defaults(func=cmd_status)


def look_options(p: argparse.ArgumentParser) -> None:
    """``--dashboard`` and ``--metrics-port``: what ``ray.dashboard`` and ``ray.metrics_port`` say,
    for this run (``xmc run``, ``xmc demo``)."""
    p.add_argument("--dashboard", action="store_true",
                   help="start the Ray dashboard with the embedded Ray (as ray.dashboard: true); its URL is printed")
    p.add_argument("--metrics-port", type=port_number, default=None, metavar="PORT",
                   help="serve /metrics on 127.0.0.1:PORT (as ray.metrics_port; 0: off)")


def with_look_options(cfg: Any, args: argparse.Namespace) -> Any:
    """``cfg`` with ``--dashboard`` / ``--metrics-port`` applied."""
    update: dict[str, Any] = {}
    if getattr(args, "dashboard", False):
        update["dashboard"] = True
    if getattr(args, "metrics_port", None) is not None:
        update["metrics_port"] = args.metrics_port
    return cfg.model_copy(update={"ray": cfg.ray.model_copy(update=update)}) if update else cfg


def access_lines(a: dict[str, Any]) -> list[str]:
    """Where to look at a running deployment, printed by ``xmc run`` at start (from
    ``Deployment.access_info()``): the Ray dashboard and how to sign in to it, the ``/metrics``
    endpoint, Ray's own metrics export."""
    out = []
    url = a.get("dashboard_url") or ""
    if url:
        out.append(f"Ray dashboard  {url if '://' in url else 'http://' + url}  (Actors tab: the Repr column names "
                   "each actor's venues or strategies; Logs; Metrics)")
        auth = a.get("auth") or {}
        if auth.get("auth_mode") == "token":
            if auth.get("token_source") == "env":
                out.append("  it asks for an authentication token: paste the value of RAY_AUTH_TOKEN of the shell "
                           "that started this run")
            else:
                path = auth.get("token_path") or "~/.ray/auth_token"
                out.append(f"  it asks for an authentication token: paste the contents of {path} (`cat {path}` "
                           "prints it); the browser keeps it for 30 days")
    elif a.get("embedded"):
        out.append("Ray dashboard  off (xmc run --dashboard, or `ray: {dashboard: true}` in the deployment file)")
    else:
        out.append("Ray dashboard  the cluster's, on its head node (port 8265 unless the head set another)")
    if a.get("metrics_url"):
        out.append(f"metrics        {a['metrics_url']}  (xmc_* series; Prometheus and Grafana: docs/operations.md, Metrics)")
    else:
        out.append("metrics        no /metrics endpoint (xmc run --metrics-port PORT, or ray.metrics_port)")
    api = a.get("api") or {}
    if api.get("url"):
        out.append(f"console        {api['console']}  (operator API {api['url']}/v1/..., schema {api['url']}/v1/docs; "
                   "tokens: xmc api-token new; docs/operations.md, The operator API)")
    elif api.get("error"):
        out.append(f"console        off: {api['error']}")
    else:
        out.append("console        off (api: {enabled: true} in the deployment file, or XMC_API=on)")
    nodes = list(a.get("ray_metrics") or [])
    if nodes:
        more = f" and {len(nodes) - 3} more nodes" if len(nodes) > 3 else ""
        out.append(f"Ray metrics    {', '.join(f'http://{n}/metrics' for n in nodes[:3])}{more}  (ray_xmc_* series)")
    return out


def _load(path: str) -> Any:
    try:
        return load_config(path)
    except ConfigError as e:
        raise CliError(f"{path} is not valid:\n" + "\n".join("  " + i.located() for i in e.issues), code=1) from None


def run_deployment(cfg: Any, *, address: str | None, duration: float | None, ledger: str | None, report: str | None,
                   per_host: int, show_progress: bool, out: IO[str] | None = None) -> Any:
    """Start, run and stop ``cfg``; returns the :class:`RunSummary` (used by ``xmc demo`` too).
    What it says while running (and the progress line) goes to ``out`` (default stdout)."""
    out = out or sys.stdout
    from ..ledger.store import LedgerError
    from ..runtime.deploy import Deployment, install_sigint
    from ..runtime.placement import ActorsNotReady
    from ..runtime.session import ConnectError

    preflight(cfg, ledger)
    stop = threading.Event()
    install_sigint(stop)
    dep = Deployment(cfg, address=address, ledger_path=ledger, strategies_per_host=per_host,
                     api_default=True)  # the operator API and console, unless api.enabled says otherwise
    try:
        print(f"starting {cfg.name!r}: {len(cfg.gateways)} gateways, {len(cfg.strategies)} strategies, "
              f"{'embedded Ray' if (address or cfg.ray.address) is None else 'cluster ' + str(address or cfg.ray.address)}",
              file=out, flush=True)
        try:
            dep.start()
        except ActorsNotReady as e:
            raise CliError(f"deployment {cfg.name!r} did not start:\n{e}", code=3) from None
        except ConnectError as e:  # --address: nobody listens, or the cluster refused our token
            raise CliError(f"deployment {cfg.name!r} did not start: {e}", code=3) from None
        except LedgerError as e:  # a damaged shard: one line naming the file and why
            raise CliError(f"deployment {cfg.name!r} did not start: {e}", code=3) from None
        except (KeyError, ValueError) as e:  # a strategy that cannot be built: say which, no traceback
            raise CliError(f"deployment {cfg.name!r} did not start: {e.args[0] if e.args else e}", code=3) from None
        print(f"all actors ready in {time.monotonic() - dep.started_at:.1f} s; namespace {dep.namespace!r} "
              f"(`xmc status --namespace {dep.namespace}` from another shell); Ctrl-C stops cleanly", file=out, flush=True)
        for line in access_lines(dep.access_info()):
            print(line, file=out, flush=True)
        if dep.decision_seqs:
            went_on = ", ".join(f"{k} after {v}" for k, v in sorted(dep.decision_seqs.items()))
            print(f"the ledger holds earlier decisions: decision ids go on ({went_on})", file=out, flush=True)
            for line in resume_lines(dep.resumed or {}):
                print(line, file=out, flush=True)
        progress = (lambda p: _progress(p, out)) if show_progress else None
        summary = dep.run(duration_s=duration, progress=progress, stop_event=stop)
        if show_progress:
            out.write("\n")
        if report:
            summary.report_path = write_report(summary.ledger_path, report, since_ns=summary.since_ns)
        return summary
    finally:
        dep.shutdown_ray()


def resume_lines(r: dict[str, Any]) -> list[str]:
    """What a start on an existing ledger restored, for the console."""
    out = []
    for acc, pos in sorted((r.get("positions") or {}).items()):
        held = ", ".join(f"{i} {q:+d}" for i, q in sorted(pos.items()) if q) or "flat"
        out.append(f"  positions from the ledger, checked against the venues: {acc} {held}")
    for m in r.get("mismatches", []):
        out.append(f"  MISMATCH {m['account']} {m['instrument']}: ledger {m['ledger']}, venue {m['venue']} "
                   f"(set to the venue's; the account's venues are REDUCING until an operator resumes them: "
                   f"xmc resume --venue VENUE --operator NAME)")
    if r.get("unverified_venues"):
        out.append(f"  not checked (the venue did not answer): {', '.join(r['unverified_venues'])}")
    for name, how in sorted((r.get("strategies") or {}).items()):
        out.append(f"  strategy {name}: {how}")
    rp = r.get("recovered_pairs") or {}
    if any(rp.values()):
        out.append("  pairs recovered: " + ", ".join(f"{k} {v}" for k, v in sorted(rp.items()) if v))
    return out


def preflight(cfg: Any, ledger: str | None) -> None:
    """What refuses a run before anything starts (no Ray, nothing written): a catalogue rather
    than a deployment, a credential a live adapter will read that is not set, a damaged ledger
    shard. CliError naming the cause."""
    from ..ledger.store import LedgerError, inspect_shard
    from ..runtime.config import is_catalogue, missing_credentials

    if is_catalogue(cfg):
        raise CliError(f"{cfg.name!r} is a catalogue (venues and instruments for deployments to include), not a "
                       "deployment: it has no strategies, accounts or gateways to run; include it from a deployment "
                       "file (see configs/demo.yaml)", code=1)
    missing = [(path, env) for path, env, needed in missing_credentials(cfg) if needed]
    if missing:
        raise CliError("credentials a live venue adapter reads are not set in this shell: "
                       + "; ".join(f"environment variable {env} ({path})" for path, env in missing)
                       + "; set them (or check with `xmc validate --require-credentials CONFIG`)", code=1)
    root = Path(ledger or cfg.ledger.path)
    if root.is_dir():
        for shard in sorted(root.glob("*.duckdb")):
            try:
                inspect_shard(shard)
            except LedgerError as e:
                raise CliError(f"ledger: {e} (nothing started; see docs/operations.md, \"A damaged ledger file\")",
                               code=3) from None


def _progress(p: dict[str, Any], out: IO[str] | None = None) -> None:
    import datetime as dt

    outcomes = " ".join(f"{k}={v}" for k, v in sorted(p["by_outcome"].items())) or "no pairs yet"
    replay = ""
    if p.get("replay_ns"):
        replay = " replay " + dt.datetime.fromtimestamp(p["replay_ns"] / 1e9, dt.timezone.utc).strftime("%Y-%m-%d")
    halted = p.get("halted") or []
    extra = f"  NOT ACTIVE: {', '.join(halted)}" if halted else ""
    if p.get("faults"):
        extra += f"  actor faults {p['faults']}"
    out = out or sys.stdout
    out.write(f"\r  {p['elapsed_s']:6.1f}s{replay}  in flight {p['in_flight']:3d}  {outcomes}{extra}   ")
    out.flush()


def write_report(ledger_dir: str, out: str, since_ns: int | None = None) -> str:
    """The run's HTML report: the run's range of the ledger (from ``since_ns``), so its figures
    are the summary's."""
    from ..ledger.audit import AuditReader
    from ..ledger.report import build_report

    reader = AuditReader(ledger_dir)
    try:
        html = build_report(reader, since_ns, title="xmc-actors run report")
    finally:
        reader.close()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(html, encoding="utf-8")
    return str(Path(out))


def cmd_run(args: argparse.Namespace) -> int:
    fmt = output_format(args)
    cfg = with_look_options(_load(args.config), args)
    summary = run_deployment(cfg, address=args.address, duration=args.duration, ledger=args.ledger,
                             report=args.report, per_host=args.per_host, show_progress=not args.no_progress,
                             out=sys.stdout if fmt == "table" else sys.stderr)
    print_summary(summary, fmt)
    return run_exit_code(summary)


def print_summary(summary: Any, fmt: str) -> None:
    """A run's summary (``xmc run``, ``xmc stop``): its lines for people; json: the whole
    :class:`RunSummary`; csv: its fields flattened, one ``field,value`` row each."""
    import dataclasses

    data = dataclasses.asdict(summary)
    if fmt == "table":
        for line in summary.lines():
            print(line)
    else:
        emit(fmt, data, [key_value_table("summary", data)])


def run_exit_code(summary: Any) -> int:
    """0: the run ended as configured; 130: interrupted (Ctrl-C); 4: an actor fault ended it
    early; 5: it replayed files but no strategy evaluated a single quote (every row skipped, or
    none reached a strategy: the summary says what the loaders skipped and why)."""
    if any(str(f).startswith("run ended") for f in summary.faults):
        return 4
    if summary.interrupted:
        return 130
    if getattr(summary, "feed_reports", None) and getattr(summary, "nothing_evaluated", ""):
        return 5
    return 0


def _check_reachable(address: str | None, timeout_s: float = 3.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on (``runtime.session.check_reachable``, which
    every operator command's :func:`~xmc_actors.runtime.session.connect` runs)."""
    from ..runtime.session import ConnectError, check_reachable

    if not address:
        return
    try:
        check_reachable(address, timeout_s)
    except ConnectError as e:
        raise CliError(str(e), code=e.code) from None


def cmd_status(args: argparse.Namespace) -> int:
    import ray

    fmt = output_format(args)

    from ..runtime.deploy import collect_status
    from ..runtime.session import REGISTRY_NAME, get_actor
    from .cmd_ops import join

    ns = join(args)  # the one way every command joins: address file, token, fast failure
    try:
        try:
            registry = ray.get_actor(REGISTRY_NAME, namespace=ns)
        except ValueError:
            raise LookupError(f"no deployment is running in namespace {ns!r}"
                              f"{' at ' + args.address if args.address else ''} (start one with `xmc run CONFIG`, "
                              "or pass --namespace)") from None
        info = ray.get(registry.describe.remote(), timeout=10)
        handles = {}
        for n in info.get("actors", []):
            if n == REGISTRY_NAME:
                continue
            try:
                handles[n] = get_actor(n, ns)
            except LookupError:
                handles[n] = None  # registered, not found: dead, or its restart has not come back
    except LookupError as e:
        raise CliError(str(e), code=3) from None
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError) as e:
        raise CliError(f"the deployment registry of namespace {ns!r} did not answer ({type(e).__name__})", code=4) from None
    status = collect_status({n: h for n, h in handles.items() if h is not None})
    for n, h in handles.items():
        if h is None:
            status[n] = {"error": f"actor {n!r} is not running in namespace {ns!r}"}
    emit(fmt, {"deployment": info, "actors": status}, status_tables(info, status))
    return 0


def _session_line(sess: dict[str, Any]) -> str:
    """A gateway's venue session (``status()["session"]``, e.g. FIX) in one line."""
    import time as _time

    parts = [str(sess.get("kind", "session")).upper()]
    if sess.get("session_id"):
        parts.append(str(sess["session_id"]))
    parts.append(str(sess.get("state", "?")))
    if "next_sender_seq" in sess or "next_target_seq" in sess:
        parts.append(f"seq out {sess.get('next_sender_seq', '?')} in {sess.get('next_target_seq', '?')}")
    hb = sess.get("last_heartbeat_ns")
    if hb:
        parts.append(f"last heartbeat {max(0.0, (_time.time_ns() - int(hb)) / 1e9):.1f} s ago")
    elif "last_heartbeat_ns" in sess:
        parts.append("no heartbeat yet")
    rc = sess.get("reconnect") or {}
    if rc.get("state") and rc["state"] != "CONNECTED":
        pauses = rc.get("recent_pauses_s") or []
        parts.append(f"reconnecting ({str(rc['state']).lower()}, {rc.get('failures', 0)} failed"
                     + (f", last pause {pauses[-1]:.1f} s" if pauses else "") + ")")
    if sess.get("unknown_orders"):
        parts.append(f"orders of unknown outcome {sess['unknown_orders']}")
    if sess.get("market_data"):
        waiting = sess.get("md_awaiting_snapshot") or []
        parts.append(f"market data {sess['market_data']}" + (f" (awaiting snapshot: {', '.join(waiting)})" if waiting else ""))
    bf = sess.get("broker_figures")
    if isinstance(bf, dict):
        # the broker's own positions / funds (CTP): whether the positions are verified, how old
        age = bf.get("positions_age_ms")
        parts.append(f"positions {bf.get('positions_source', '?')}"
                     + (f" (read {age / 1000:.1f} s ago)" if isinstance(age, (int, float)) else " (not read yet)"))
    if sess.get("endpoint"):
        parts.append(f"({sess['endpoint']})")
    if sess.get("last_logout_text"):
        parts.append(f"last logout: {sess['last_logout_text']}")
    return " ".join(parts)


def status_tables(info: dict[str, Any], status: dict[str, Any]) -> list[Table]:
    """``xmc status`` as tables: the deployment; its actors (an actor without a status says so,
    a venue session in a line of its own); strategies (a halted one with its reason); capital
    occupancy; trading states; unresolved escalations; open alerts; pairs; two-sided positions."""
    from ..ledger.figures import LABELS, OUTCOMES, alert_name
    from .cmd_ops import money_tables

    dep = Table("deployment", ("deployment", "namespace", "state", "ledger"),
                [(info.get("name", "?"), info.get("namespace", "?"), info.get("state", "?"), info.get("ledger", "?"))])
    actors = []
    for name, st in sorted(status.items()):
        if not isinstance(st, dict):
            st = {"state": str(st)}
        if "error" in st:
            state, detail = "DEAD/UNREACHABLE", str(st["error"])
        elif st.get("no_status"):
            state, detail = "", f"no status: {st['no_status']}"
        else:
            state, detail = str(st.get("state", "UP")), ""
        sessions = [("", st)] if isinstance(st.get("session"), dict) else []
        if isinstance(st.get("sessions"), dict):  # a gateway group: each venue session's own state
            detail = ", ".join(f"{s.get('venue', n)} {s.get('state', '?')}" for n, s in st["sessions"].items()
                               if isinstance(s, dict))
            sessions += [(n, s) for n, s in st["sessions"].items()
                         if isinstance(s, dict) and isinstance(s.get("session"), dict)]
        actors.append((name, state, detail))
        for who, s in sessions:
            actors.append((f"  {who + ' ' if who else ''}session", s["session"].get("state", "?"),
                           _session_line(s["session"])))
    strategies = []
    for name, st in sorted(status.items()):
        if name.startswith("strategy-host-") and isinstance(st, dict) and isinstance(st.get("strategies"), dict):
            for sname, s in sorted(st["strategies"].items()):
                c = s.get("counters", {})
                reason = s.get("reason") if s.get("state") not in (None, "ACTIVE", "RUNNING") else ""
                stage = s.get("stage", "live")  # rollout stage (xmc promote / demote)
                strategies.append((sname, name, s.get("state", "?"), stage, s.get("position", 0), c.get("evaluations", 0),
                                   c.get("intents", 0), len(s.get("errors", [])), reason or ""))
    risk = status.get("risk-guard", {}) if isinstance(status.get("risk-guard"), dict) else {}
    occ = [(acc, round(v["ratio"] * 100, 2), v["used"], v["equity"], v["currency"], v.get("level"))
           for acc, v in sorted((risk.get("occupancy") or {}).items())]
    states = [(k, v) for k, v in sorted((risk.get("trading_states") or {}).items())]
    esc = [(did, e.get("strategy"), e.get("reason") or "escalated")
           for did, e in sorted((risk.get("unresolved_escalations") or {}).items(), key=lambda kv: kv[1].get("ts_ns", 0))]
    alerts = [(a.get("level", "?"), alert_name(a), a.get("message", "")) for a in risk.get("open_alerts", [])]
    pairs = []
    two_sided = []
    coord = status.get("coordinator", {})
    if isinstance(coord, dict) and coord and "error" not in coord:
        for key, p in sorted((coord.get("two_sided_positions") or {}).items()):
            acc, _, inst = key.partition("/")
            lg, sh = p.get("long", {}), p.get("short", {})
            frozen = sum(int(x.get("frozen_today", 0)) + int(x.get("frozen_yesterday", 0)) for x in (lg, sh))
            two_sided.append((acc, inst, lg.get("today", 0), lg.get("yesterday", 0), sh.get("today", 0),
                              sh.get("yesterday", 0), frozen, p.get("net", 0), p.get("trading_day") or ""))
        pairs.append(("in flight", sum((coord.get("in_flight") or {}).values())))
        done = coord.get("outcomes") or {}  # the outcomes' order and names of the summary and the report
        pairs += [(k, done[k]) for k in [*OUTCOMES, *sorted(set(done) - set(OUTCOMES))] if k in done]
    sod = info.get("start_of_day") or {}
    sod_rows = [(d.get("account"), d.get("instrument"), d.get("ledger"), d.get("venue"), d.get("difference"))
                for d in sod.get("differences", [])] + [("", f"venue {v}: positions not reported", "", "", "")
                                                         for v in sod.get("unverified_venues", [])] + [
        (f.get("account"), "funds", "", "", f.get("message")) for f in sod.get("funds", [])]
    when = f" ({sod['trigger']})" if sod.get("trigger") not in (None, "start") else ""
    sod_title = (f"start of day{when}: positions agree with the venues" if not sod_rows and not sod.get("engaged") else
                 f"start of day{when}: HELD, no new entry until `xmc accept-positions --operator NAME --note TEXT`"
                 if sod.get("engaged") else f"start of day: differences accepted by {sod.get('accepted_by')}"
                                            f" ({sod.get('accepted_note', '')})")
    return [
        dep,
        Table("start_of_day", ("account", "instrument", "ledger", "venue", "difference"), sod_rows, title=sod_title),
        Table("actors", ("actor", "state", "detail"), actors),
        Table("strategies", ("strategy", "host", "state", "stage", "position", "evaluations", "intents", "errors", "reason"),
              strategies),
        Table("occupancy", ("account", "occupancy_pct", "used", "equity", "currency", "level"), occ,
              title="capital occupancy (资金占用)"),
        Table("trading_states", ("scope", "state"), states, title="trading states (none: all ACTIVE)"),
        Table("unresolved_escalations", ("decision_id", "strategy", "reason"), esc,
              title="unresolved escalations (xmc resolve DECISION_ID --operator NAME --note TEXT)"),
        Table("open_alerts", ("level", "alert", "message"), alerts, title="open alerts"),
        Table("pairs", ("pairs", "count"), pairs, title=f"pairs (in flight, then {LABELS['pairs_by_outcome']})"),
        Table("two_sided_positions", ("account", "instrument", "long_today", "long_yesterday", "short_today",
                                      "short_yesterday", "frozen", "net", "trading_day"), two_sided,
              title="two-sided positions at SHFE/INE-style venues (双向持仓: the coordinator's fills; frozen by working closes)"),
        *[t for t in money_tables(risk) if t.name != "risk_two_sided"],
    ]
