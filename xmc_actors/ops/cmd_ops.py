"""Kill switch and limits: ``xmc halt|reduce|resume``, ``xmc limits set|show``, ``xmc resolve``,
``xmc risk-status``.

Every action needs ``--operator NAME`` and is recorded in the ledger (kind OPERATOR) by the
running RiskGuard, found by name (``risk-guard``) in the deployment's namespace. Every command
joins the deployment through :func:`join` (``runtime.session.connect``: ``--address``, else the
deployment's own address file, its token, a fast failure on a dead address). Strategy, venue,
instrument and account names are checked against the running deployment before anything is
changed: a typo on a kill switch is an error that lists the valid names.

While the deployment runs its operator API, the acting commands (halt, reduce, resume, limits
set, resolve, confirm) go through its authorisation (ops/operator_auth.py): a token from the
environment (``XMC_API_TOKEN`` or ``--token-env NAME``), a role that may, the token's operator
recorded; a change the API would hold for a second operator is held here too.

Exit codes: 0 done; 1 done, but not every coordinator acknowledged; 2 refused (a wrong name, a
bad value, an escalation to resolve first: nothing changed); 3 no deployment to talk to (not
running, unreachable, authentication refused); 4 the risk guard did not answer in time; 5 refused
by the operator API's authorisation (no token, unknown token, a role that may not, --operator
not the token's: nothing changed); 6 proposed: a second operator must confirm (nothing changed yet).
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from .cli import CliError, positive_float
from .operator_auth import Authorised, add_token_argument, authorise_cli
from .output import Table, add_format_argument, emit, key_value_table, output_format

GUARD_NAME = "risk-guard"


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None,
                   help="Ray address HOST:PORT of a deployment on a cluster (default: the deployment's own "
                        "address file, written by `xmc run` on this machine)")
    p.add_argument("--namespace", default=None,
                   help="the deployment's Ray namespace (ray.namespace; default: the one deployment running "
                        "on this machine, else xmc)")
    p.add_argument("--timeout", type=positive_float, default=10.0, help="seconds to wait for the RiskGuard's answer")


def join(args: argparse.Namespace) -> str:
    """Join the deployment (the one way every command does: ``runtime.session.connect``); sets
    and returns ``args.namespace``. CliError with exit code 3 naming the cause otherwise."""
    from ..runtime.session import ConnectError, connect

    try:
        args.namespace = connect(getattr(args, "address", None), getattr(args, "namespace", None))
    except ConnectError as e:
        raise CliError(str(e), code=e.code) from None
    return args.namespace


def registry_info(args: argparse.Namespace, timeout: float = 10.0) -> tuple[str, dict[str, Any]]:
    """Join the deployment (:func:`join`) and read its registry's description: ``(namespace,
    info)``. CliError 3 when no deployment runs there, 4 when its registry does not answer."""
    import ray

    from ..runtime.session import REGISTRY_NAME

    ns = join(args)
    try:
        registry = ray.get_actor(REGISTRY_NAME, namespace=ns)
    except ValueError:
        raise CliError(f"no deployment is running in namespace {ns!r} (start one with `xmc run CONFIG`)", code=3) from None
    try:
        return ns, ray.get(registry.describe.remote(), timeout=timeout)
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError) as e:
        raise CliError(f"the deployment registry of namespace {ns!r} did not answer ({type(e).__name__})", code=4) from None


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, help_ in (("halt", "stop new orders (cancels still go out) for a strategy, a venue or everything"),
                        ("reduce", "allow only risk-reducing orders for a strategy, a venue or everything"),
                        ("resume", "return a strategy, a venue or everything to ACTIVE")):
        p = sub.add_parser(name, help=help_)
        g = p.add_mutually_exclusive_group()
        g.add_argument("--strategy", help="only this strategy")
        g.add_argument("--venue", help="only this venue")
        p.add_argument("--operator", help="who does this (required; recorded in the ledger; with an operator API "
                                          "running: the token's operator, which it may only repeat)")
        p.add_argument("--reason", default="", help="why (recorded)")
        add_token_argument(p)
        _connection_args(p)
        p.set_defaults(func=cmd_state, state={"halt": "HALTED", "reduce": "REDUCING", "resume": "ACTIVE"}[name])

    r = sub.add_parser("resolve", help="an escalated pair's residual was dealt with: record it and resume its strategy")
    r.add_argument("decision_id", metavar="DECISION_ID", help="the escalated pair (xmc status lists them)")
    r.add_argument("--operator", help="who dealt with it (required; recorded in the ledger; with an operator API "
                                      "running: the token's operator)")
    r.add_argument("--note", help="how the residual was dealt with (required; recorded)")
    add_token_argument(r)
    _connection_args(r)
    r.set_defaults(func=cmd_resolve)

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
    s.add_argument("--operator", help="who does this (required; recorded in the ledger; with an operator API "
                                      "running: the token's operator)")
    add_token_argument(s)
    _connection_args(s)
    s.set_defaults(func=cmd_limits_set)
    sh = lsub.add_parser("show", help="print the limits in force")
    add_format_argument(sh, default="json")
    _connection_args(sh)
    sh.set_defaults(func=cmd_limits_show)

    c = sub.add_parser("confirm", help="confirm another operator's change that waits for a second operator "
                                       "(二次确认; needs the operator API and your token); it runs now")
    c.add_argument("confirmation_id", metavar="CONFIRMATION_ID", nargs="?",
                   help="what `xmc halt|resume|limits set|resolve|accept-positions` or the API printed "
                        "(omitted: list what waits)")
    add_token_argument(c)
    _connection_args(c)
    c.set_defaults(func=cmd_confirm)

    st = sub.add_parser("risk-status", help="trading states, capital occupancy and open alerts of the running deployment")
    add_format_argument(st, json_alias=True)  # json: everything the risk guard reports
    _connection_args(st)
    st.set_defaults(func=cmd_status)


def find_guard(address: str | None, namespace: str | None) -> Any:
    """The running RiskGuard's handle, or a CliError that says what is missing."""
    import ray

    args = argparse.Namespace(address=address, namespace=namespace)
    ns = join(args)
    try:
        return ray.get_actor(GUARD_NAME, namespace=ns)
    except ValueError:
        raise CliError(f"no running deployment: no actor {GUARD_NAME!r} in namespace {ns!r}"
                       f"{' at ' + address if address else ''} (is the deployment started? right --namespace?)",
                       code=3) from None


def _call(args: argparse.Namespace, method: str, *a: Any) -> Any:
    import ray

    guard = find_guard(args.address, args.namespace)
    try:
        return ray.get(getattr(guard, method).remote(*a), timeout=args.timeout)
    except ray.exceptions.GetTimeoutError:
        raise CliError(f"the RiskGuard did not answer {method} within {args.timeout:.0f} s", code=4) from None
    except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
        raise CliError(f"the RiskGuard is not available ({type(e).__name__}); it restarts by itself: retry in a "
                       "few seconds", code=4) from None


def check_name(status: dict[str, Any], kind: str, name: str) -> None:
    """``name`` must be one of the running deployment's ``kind`` (strategies, venues, instruments,
    accounts), as the risk guard knows them; CliError listing them otherwise (nothing changed)."""
    known = (status.get("known") or {}).get(kind)
    if known is None:
        raise CliError(f"this risk guard does not list its {kind}: cannot check {name!r}; nothing changed")
    if name not in known:
        singular = kind[:-1] if not kind.endswith("ies") else kind[:-3] + "y"
        near = [k for k in known if k.lower() == name.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise CliError(f"unknown {singular} {name!r}{hint}: nothing changed; the deployment's {kind}: "
                       f"{', '.join(known) or 'none'}")


def _operator(args: argparse.Namespace, command: str) -> Authorised:
    """Who acts: the token's operator while an operator API runs (authorised), else --operator."""
    return authorise_cli(args, command)


def cmd_state(args: argparse.Namespace) -> int:
    command = {"HALTED": "halt", "REDUCING": "reduce", "ACTIVE": "resume"}[args.state]
    auth = _operator(args, command)
    op = auth.operator
    scope, key = ("strategy", args.strategy) if args.strategy else ("venue", args.venue) if args.venue else ("global", None)
    st = _call(args, "status") if key is not None or auth.desk is not None else {}
    if key is not None:
        check_name(st, "strategies" if scope == "strategy" else "venues", key)
    auth.confirmation(command, {"scope": scope, "key": key, "reason": args.reason}, st)
    res = _call(args, "set_trading_state", scope, key, args.state, op, args.reason, auth.by())
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
    auth = _operator(args, "limits set")
    op = auth.operator
    st = _call(args, "status") if key is not None or auth.desk is not None else {}
    if key is not None:
        kind = {"instruments": "instruments", "strategies": "strategies", "max_account_position": "accounts",
                "daily_counts": "venues"}[section]
        check_name(st, kind, key)
    auth.confirmation("limits", {"section": section, "key": key, "field": field, "value": value}, st)
    res = _call(args, "set_limit", section, key, field, value, op, auth.by())
    if not res.get("ok"):
        raise CliError(res.get("error", "refused"))
    print(f"{section}{'.' + key if key else ''}{'.' + field if field else ''} = {value} by {op}; "
          f"coordinators re-granted: {res['acks']}")
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    note = (args.note or "").strip()
    if not note:
        raise CliError("--note TEXT is required: say how the residual was dealt with (it is recorded)")
    auth = _operator(args, "resolve")
    op = auth.operator
    if auth.desk is not None:  # resolving lifts a red escalation's halt: a second operator, as a resume after red
        auth.confirmation("resolve", {"decision_id": args.decision_id.strip(), "note": note}, _call(args, "status"))
    res = _call(args, "resolve", args.decision_id, op, note, max(1.0, args.timeout / 2), auth.by())
    if not res.get("ok"):
        raise CliError(res.get("error", "refused"))
    print_resolved(res, op)
    return 1 if res.get("resumed") and not (res.get("resume") or {}).get("ok", True) else 0


def print_resolved(res: dict[str, Any], op: str, confirmed_by: str = "") -> None:
    """What ``xmc resolve`` (and ``xmc confirm`` of one) prints: the resolution and the resume."""
    by = f"{op}, confirmed by {confirmed_by}" if confirmed_by else op
    print(f"{res['decision_id']}: resolved by {by} (event {res['event_id']}); residual {json.dumps(res['residual'], default=str)} "
          f"(from {res['residual_source']})")
    if res.get("resumed"):
        acks = (res.get("resume") or {}).get("acks", {})
        print(f"strategy {res['strategy']}: ACTIVE by {by}" + (f"; coordinators: {', '.join(f'{k} {v}' for k, v in sorted(acks.items()))}" if acks else ""))
        if not (res.get("resume") or {}).get("ok", True):
            print("warning: not every coordinator acknowledged the resume; retry `xmc resume --strategy "
                  f"{res['strategy']} --operator {op}`")
    elif res.get("note"):
        print(res["note"])


def cmd_confirm(args: argparse.Namespace) -> int:
    """Be the second operator of a change proposed through the CLI or the API: the desk checks
    the window, that it is another operator and that the role may confirm; the change then runs
    on the risk guard with the proposer recorded as its operator (as the API's confirm does)."""
    from ..api.desk import principal_wire

    auth = authorise_cli(args, "confirm", required_operator=False)
    if auth.desk is None:
        raise CliError("no operator API runs in this deployment: nothing waits for a second operator "
                       "(changes run at once)", code=2)
    if not args.confirmation_id:
        for p in auth.call("pending"):
            print(f"{p['confirmation_id']}\t{p['action']}\t{json.dumps(p['params'], default=str)}\tby {p['proposer']}"
                  f"\t{p['why']}")
        return 0
    from ..core.operator_api import ApiError

    try:
        pend = auth.call("confirm", args.confirmation_id, principal_wire(auth.principal), "cli")
    except ApiError as e:
        from .operator_auth import EXIT_UNAUTHORISED

        raise CliError(f"xmc confirm: {e.reason}; nothing changed", code=EXIT_UNAUTHORISED if e.status in (401, 403)
                       else 2) from None
    prm, who, note = pend["params"], pend["proposer"], f" (confirmed by {auth.operator}, {args.confirmation_id})"
    # the change is the proposer's: recorded under their name, role and channel (core/attribution.py)
    by = {"role": pend.get("proposer_role") or "unknown", "via": pend.get("proposer_via") or "unknown"}
    if pend["action"] == "resolve":
        res = _call(args, "resolve", prm["decision_id"], who, prm["note"] + note, max(1.0, args.timeout / 2), by)
        if not res.get("ok"):
            raise CliError(res.get("error", "refused"))
        print_resolved(res, who, auth.operator)
        return 1 if res.get("resumed") and not (res.get("resume") or {}).get("ok", True) else 0
    if pend["action"] == "accept_positions":
        from .cmd_sod import accept_and_print

        return accept_and_print(args, who, prm["note"] + note, by, "table", confirmed_by=auth.operator)
    if pend["action"] in ("halt", "reduce", "resume"):
        state = {"halt": "HALTED", "reduce": "REDUCING", "resume": "ACTIVE"}[pend["action"]]
        res = _call(args, "set_trading_state", prm["scope"], prm["key"], state, who, (prm.get("reason") or "") + note,
                    by)
        if "error" in res:
            raise CliError(res["error"])
        print(f"{prm['scope']} {prm['key'] or ''}: {state} by {who}, confirmed by {auth.operator} (event {res['event_id']})")
        return 0 if res.get("ok") else 1
    res = _call(args, "set_limit", prm["section"], prm["key"], prm["field"], prm["value"], who, by)
    if not res.get("ok"):
        raise CliError(res.get("error", "refused"))
    print(f"{prm['section']}{'.' + prm['key'] if prm['key'] else ''}{'.' + prm['field'] if prm['field'] else ''} = "
          f"{prm['value']} by {who}, confirmed by {auth.operator}; coordinators re-granted: {res['acks']}")
    return 0


def cmd_limits_show(args: argparse.Namespace) -> int:
    fmt = output_format(args)
    st = _call(args, "status")
    emit(fmt, st["limits"], [key_value_table("limits", st["limits"], columns=("limit", "value"),
                                             title="limits in force")])
    return 0


def money_tables(st: dict[str, Any]) -> list[Table]:
    """The risk guard's money as tables (``xmc risk-status`` and ``xmc status``): accounts
    (capital, P&L, equity and where it comes from, margin, available), P&L per strategy and per
    pair in the base currency, and the two-sided positions the guard charges margin on."""
    accts = [(a, v.get("currency"), v.get("capital"), v.get("pnl"), v.get("equity"), v.get("equity_source"),
              v.get("margin"), v.get("available"))
             for a, v in sorted((st.get("accounts") or {}).items())]
    pnl = st.get("pnl") or {}
    ccy = pnl.get("base_currency", "")

    def rows(d: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(k, f.get("total_base"), f.get("realised_base"), f.get("unrealised_base"), f.get("fx_base"),
                 f.get("fees_base")) for k, f in sorted(d.items())]

    cols = ("total", "realised_less_fees", "unrealised", "fx", "fees")
    sides = []
    for key, p in sorted((st.get("two_sided") or {}).items()):
        acc, _, inst = key.partition("/")
        lg, sh = p.get("long", {}), p.get("short", {})
        sides.append((acc, inst, lg.get("today", 0), lg.get("yesterday", 0), sh.get("today", 0), sh.get("yesterday", 0),
                      p.get("net", 0)))
    return [
        Table("accounts", ("account", "currency", "capital", "pnl", "equity", "equity_source", "margin", "available"),
              accts, title="accounts (equity follows P&L; a broker's reading wins while fresh)"),
        Table("pnl_by_strategy", ("strategy", *cols), rows(pnl.get("strategies") or {}),
              title=f"P&L by strategy ({ccy}; FX apart from price P&L)"),
        Table("pnl_by_pair", ("strategy|pair", *cols), rows(pnl.get("pairs") or {}), title=f"P&L by pair ({ccy})"),
        Table("risk_two_sided", ("account", "instrument", "long_today", "long_yesterday", "short_today",
                                 "short_yesterday", "net"), sides,
              title="two-sided positions the risk guard charges margin on (双向持仓)"),
    ]


def risk_status_tables(st: dict[str, Any]) -> list[Table]:
    """``xmc risk-status`` as tables: trading states (and throttled scopes), capital occupancy,
    open alerts, unresolved escalations, registered coordinators."""
    states = dict(st.get("trading_states") or {}) or {"global": "ACTIVE"}
    rows = [(k, v) for k, v in sorted(states.items())] + [(k, "THROTTLED") for k in st.get("throttled") or []]
    occ = [(acc, round(o["ratio"] * 100, 2), o["used"], o["equity"], o["currency"], o.get("level"))
           for acc, o in sorted((st.get("occupancy") or {}).items())]
    if st.get("overall"):
        o = st["overall"]
        occ.append(("overall", round(o["ratio"] * 100, 2), o["used"], o["equity"], o["currency"], o.get("level")))
    alerts = [(a.get("level"), a.get("monitor"), a.get("scope"), a.get("key"), a.get("message"), a.get("action"))
              for a in st.get("open_alerts") or []]
    esc = [(did, e.get("strategy"), e.get("reason") or "escalated", e.get("residual"))
           for did, e in sorted((st.get("unresolved_escalations") or {}).items(), key=lambda kv: kv[1].get("ts_ns", 0))]
    return [
        Table("trading_states", ("scope", "state"), rows, title="trading states"),
        Table("occupancy", ("account", "occupancy_pct", "used", "equity", "currency", "level"), occ,
              title="capital occupancy"),
        Table("open_alerts", ("level", "monitor", "scope", "key", "message", "action"), alerts, title="open alerts"),
        Table("unresolved_escalations", ("decision_id", "strategy", "reason", "residual"), esc,
              title="unresolved escalations (xmc resolve DECISION_ID --operator NAME --note TEXT)"),
        Table("coordinators", ("coordinator",), [(c,) for c in st.get("registered") or []], title="coordinators"),
        Table("rolls", ("position", "mode", "working", "stopped", "automatic_rolls"), [
            (n, r.get("mode"), r.get("pending") or "", r.get("suspended") or "",
             ", ".join(f"{d} {v}" for d, v in sorted((r.get("rolls") or {}).items())))
            for n, r in sorted((st.get("rolls") or {}).items())],
            title="calendar rolls (strategies[].roll; docs/contracts.md \"Watching for the roll\")"),
        *money_tables(st),
    ]


def cmd_status(args: argparse.Namespace) -> int:
    fmt = output_format(args)
    st = _call(args, "status")
    emit(fmt, st, risk_status_tables(st))
    return 0
