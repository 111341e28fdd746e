"""Kill switch and limits: ``xmc halt|reduce|resume``, ``xmc limits set|show``, ``xmc risk-status``.

Every action needs ``--operator NAME`` and is recorded in the ledger (kind OPERATOR) by the
running RiskGuard, found by name (``risk-guard``) in the deployment's namespace.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from .cli import CliError

GUARD_NAME = "risk-guard"


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None, help="Ray cluster address (default: auto, the local cluster)")
    p.add_argument("--namespace", default="xmc", help="the deployment's Ray namespace (default: xmc)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the RiskGuard's answer")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, help_ in (("halt", "stop new orders (cancels still go out) for a strategy, a venue or everything"),
                        ("reduce", "allow only risk-reducing orders for a strategy, a venue or everything"),
                        ("resume", "return a strategy, a venue or everything to ACTIVE")):
        p = sub.add_parser(name, help=help_)
        g = p.add_mutually_exclusive_group()
        g.add_argument("--strategy", help="only this strategy")
        g.add_argument("--venue", help="only this venue")
        p.add_argument("--operator", help="who does this (required; recorded in the ledger)")
        p.add_argument("--reason", default="", help="why (recorded)")
        _connection_args(p)
        p.set_defaults(func=cmd_state, state={"halt": "HALTED", "reduce": "REDUCING", "resume": "ACTIVE"}[name])

    lim = sub.add_parser("limits", help="show or change risk limits of the running deployment")
    lsub = lim.add_subparsers(dest="limits_command", metavar="ACTION")
    s = lsub.add_parser("set", help="change one limit, e.g. xmc limits set --instrument SHFE.cu max_position=10 --operator alice")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--instrument", help="per-instrument limits (max_order_qty, max_order_notional, collar_pct, max_position)")
    where.add_argument("--strategy", help="strategy budget (max_margin, max_position, max_pair_net_exposure)")
    where.add_argument("--account", help="max gross lots of an account: max_position=N")
    where.add_argument("--venue", help="daily counts per contract (max_orders_per_contract, max_cancels_per_contract)")
    where.add_argument("--section", choices=["default_limits", "throttle", "occupancy", "monitors", "risk"],
                       help="a global section")
    s.add_argument("assignment", help="FIELD=VALUE (VALUE 'none' clears a limit)")
    s.add_argument("--operator", help="who does this (required; recorded in the ledger)")
    _connection_args(s)
    s.set_defaults(func=cmd_limits_set)
    sh = lsub.add_parser("show", help="print the limits in force")
    _connection_args(sh)
    sh.set_defaults(func=cmd_limits_show)

    st = sub.add_parser("risk-status", help="trading states, capital occupancy and open alerts of the running deployment")
    st.add_argument("--json", action="store_true", help="print the raw status as JSON")
    _connection_args(st)
    st.set_defaults(func=cmd_status)


def find_guard(address: str | None, namespace: str) -> Any:
    """The running RiskGuard's handle, or a CliError that says what is missing."""
    import ray

    if not ray.is_initialized():
        try:
            ray.init(address=address or "auto", namespace=namespace, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise CliError(f"no running deployment: cannot reach a Ray cluster at {address or 'auto'} ({e}); "
                           "start one (xmc demo / scripts/demo) or pass --address", code=3) from None
    try:
        return ray.get_actor(GUARD_NAME, namespace=namespace)
    except ValueError:
        raise CliError(f"no running deployment: no actor {GUARD_NAME!r} in namespace {namespace!r}"
                       f"{' at ' + address if address else ''} (is the deployment started? right --namespace?)",
                       code=3) from None


def _call(args: argparse.Namespace, method: str, *a: Any) -> Any:
    import ray

    guard = find_guard(args.address, args.namespace)
    try:
        return ray.get(getattr(guard, method).remote(*a), timeout=args.timeout)
    except ray.exceptions.GetTimeoutError:
        raise CliError(f"the RiskGuard did not answer {method} within {args.timeout:.0f} s", code=4) from None


def _operator(args: argparse.Namespace) -> str:
    op = (args.operator or "").strip()
    if not op:
        raise CliError("--operator NAME is required: every operator action is recorded with who did it")
    return op


def cmd_state(args: argparse.Namespace) -> int:
    op = _operator(args)
    scope, key = ("strategy", args.strategy) if args.strategy else ("venue", args.venue) if args.venue else ("global", None)
    res = _call(args, "set_trading_state", scope, key, args.state, op, args.reason)
    if "error" in res:
        raise CliError(res["error"])
    where = f"{scope} {key}" if key else "everything"
    print(f"{where}: {args.state} by {op} (event {res['event_id']}, {res['elapsed_ms']:.1f} ms)")
    for name, ack in sorted(res["acks"].items()):
        print(f"  {name}: {ack}")
    if not res["ok"]:
        print("warning: not every coordinator acknowledged; their grants expire and only reducing orders pass")
        return 1
    return 0


def cmd_limits_set(args: argparse.Namespace) -> int:
    op = _operator(args)
    field, sep, value = args.assignment.partition("=")
    if not sep or not field.strip():
        raise CliError(f"assignment: expected FIELD=VALUE, got {args.assignment!r}")
    field, value = field.strip(), value.strip()
    if args.instrument:
        section, key = "instruments", args.instrument
    elif args.strategy:
        section, key = "strategies", args.strategy
    elif args.account:
        if field != "max_position":
            raise CliError(f"--account takes max_position=N (max gross lots), not {field!r}")
        section, key, field = "max_account_position", args.account, None  # type: ignore[assignment]
    elif args.venue:
        section, key = "daily_counts", args.venue
    else:
        section, key = args.section or "default_limits", None
    res = _call(args, "set_limit", section, key, field, value, op)
    if not res.get("ok"):
        raise CliError(res.get("error", "refused"))
    print(f"{section}{'.' + key if key else ''}{'.' + field if field else ''} = {value} by {op}; "
          f"coordinators re-granted: {res['acks']}")
    return 0


def cmd_limits_show(args: argparse.Namespace) -> int:
    st = _call(args, "status")
    print(json.dumps(st["limits"], indent=2, default=str))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    st = _call(args, "status")
    if args.json:
        print(json.dumps(st, indent=2, default=str))
        return 0
    states = st["trading_states"] or {"global": "ACTIVE"}
    print("trading states: " + ", ".join(f"{k}={v}" for k, v in sorted(states.items())))
    if st["throttled"]:
        print("throttled: " + ", ".join(st["throttled"]))
    print("occupancy:")
    for acc, o in sorted(st["occupancy"].items()):
        print(f"  {acc:<12} {o['ratio'] * 100:6.1f}%  used {o['used']} / {o['equity']} {o['currency']}  {o['level'] or ''}")
    o = st["overall"]
    print(f"  {'overall':<12} {o['ratio'] * 100:6.1f}%  used {o['used']} / {o['equity']} {o['currency']}  {o['level'] or ''}")
    print(f"open alerts: {len(st['open_alerts'])}")
    for a in st["open_alerts"]:
        print(f"  [{a['level'].upper()}] {a['monitor']} {a['scope']}={a['key']}: {a['message']} -> {a['action']}")
    print(f"coordinators: {', '.join(st['registered']) or 'none'}")
    return 0
