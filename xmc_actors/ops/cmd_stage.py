"""Rollout stages at run time: ``xmc promote``, ``xmc demote``, ``xmc stages``.

``xmc promote STRATEGY --operator NAME`` moves a strategy one stage up (shadow -> canary -> live)
if its figures in the stage it leaves meet the gate of the stage it enters (``gates:`` in its
deployment entry); refused, it prints every figure against its bound and exits 2. ``xmc demote
STRATEGY --operator NAME [--to shadow]`` moves it down, no gate. Both are written to the ledger
as STAGE events by the strategy's host (found through the deployment's registry), with the
operator, the reason and the gate's figures. ``xmc stages`` lists each strategy's stage.

Exit codes: 0 done; 2 refused (by the gate, or a wrong name: nothing changed); 3 no deployment
to talk to; 4 the strategy's host did not answer in time; 5 refused by the operator API's
authorisation (while one runs: a token from XMC_API_TOKEN or --token-env whose role may move a
stage; ops/operator_auth.py).
"""
from __future__ import annotations

import argparse
from typing import Any

from .cli import CliError, positive_float
from .output import Table, add_format_argument, emit, output_format


def _connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None, help="Ray address HOST:PORT of a deployment on a cluster "
                                                   "(default: the deployment's own address file)")
    p.add_argument("--namespace", default=None, help="the deployment's Ray namespace")
    p.add_argument("--timeout", type=positive_float, default=60.0,
                   help="seconds to wait for the strategy's host (a gate reads the ledger)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, help_ in (("promote", "move a strategy one stage up (shadow -> canary -> live) through its gate"),
                        ("demote", "move a strategy down a stage (or --to shadow); no gate")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("strategy", metavar="STRATEGY")
        p.add_argument("--operator", help="who does this (required; recorded in the ledger)")
        p.add_argument("--reason", default="", help="why (recorded)")
        p.add_argument("--to", choices=["shadow", "canary", "live"], default=None,
                       help="the stage to go to (default: the next one up, or down)")
        from .operator_auth import add_token_argument

        add_token_argument(p)
        add_format_argument(p, json_alias=True)
        _connection(p)
        p.set_defaults(func=cmd_move, action=name)
    s = sub.add_parser("stages", help="each strategy's rollout stage (shadow, canary, live) and its canary limits")
    s.add_argument("--figures", metavar="STRATEGY", default=None,
                   help="also the figures a gate would read now for this strategy")
    add_format_argument(s, json_alias=True)
    _connection(s)
    s.set_defaults(func=cmd_stages)


def _hosts(args: argparse.Namespace) -> tuple[Any, dict[str, str]]:
    """(ray, strategy -> host actor name) of the running deployment."""
    import ray

    from .cmd_ops import registry_info

    _, info = registry_info(args)
    where = {s: h for h, names in (info.get("hosts") or {}).items() for s in names}
    return ray, where


def _host_call(args: argparse.Namespace, ray: Any, host: str, method: str, *a: Any) -> Any:
    try:
        handle = ray.get_actor(host, namespace=args.namespace)
        return ray.get(getattr(handle, method).remote(*a), timeout=args.timeout)
    except ValueError:
        raise CliError(f"the strategy host {host!r} is not running", code=4) from None
    except ray.exceptions.GetTimeoutError:
        raise CliError(f"the strategy host {host!r} did not answer {method} within {args.timeout:.0f} s", code=4) from None
    except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
        raise CliError(f"the strategy host {host!r} is not available ({type(e).__name__}); retry in a few seconds",
                       code=4) from None


def gate_table(gate: dict[str, Any]) -> Table:
    """A gate's checks: bound, limit, figure, met."""
    rows = [(c["bound"], c["limit"], c["value"] if c["value"] is not None else "not measured",
             "met" if c["met"] else "NOT MET") for c in gate.get("checks") or []]
    return Table("gate", ("bound", "limit", "figure", "result"), rows, title=f"gate {gate.get('gate', '')}: "
                 + ("passed" if gate.get("passed") else "refused") + (f" ({gate['note']})" if gate.get("note") else ""))


def cmd_move(args: argparse.Namespace) -> int:
    from .operator_auth import authorise_cli

    op = authorise_cli(args, args.action).operator
    ray, where = _hosts(args)
    host = where.get(args.strategy)
    if host is None:
        near = [k for k in where if k.lower() == args.strategy.lower()]
        raise CliError(f"unknown strategy {args.strategy!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                       + f": nothing changed; the deployment's strategies: {', '.join(sorted(where)) or 'none'}")
    res = _host_call(args, ray, host, args.action, args.strategy, op, args.reason, args.to)
    fmt = output_format(args)
    if res.get("error"):
        raise CliError(res["error"])
    tables = [gate_table(res["gate"])] if res.get("gate") else []
    if fmt == "table":
        verdict = (f"{args.strategy}: {res['from']} -> {res['to']} by {op} (event {res['event_id']})" if res.get("ok")
                   else f"{args.strategy}: promotion {res['from']} -> {res['to']} REFUSED by its gate; stays "
                        f"{res['stage']} (event {res['event_id']})")
        print(verdict)
        if res.get("gate"):
            print(res["gate"].get("reason", ""))
    emit(fmt, res, tables)
    return 0 if res.get("ok") else 2


def cmd_stages(args: argparse.Namespace) -> int:
    ray, where = _hosts(args)
    fmt = output_format(args)
    rows = []
    doc: dict[str, Any] = {}
    for host in sorted(set(where.values())):
        for name, st in sorted(_host_call(args, ray, host, "stages").items()):
            doc[name] = {"host": host, **st}
            c = st.get("canary") or {}
            rows.append((name, host, st["stage"], c.get("size_fraction", ""), c.get("max_open_lots", ""),
                         f"{c.get('pairs_today', '')}/{c.get('max_pairs_per_day', '')}" if c else "",
                         st.get("stage_counters", {}).get("shadow_intents", 0)))
    tables = [Table("stages", ("strategy", "host", "stage", "size_fraction", "max_open_lots", "pairs_today",
                               "shadow_intents"), rows, title="rollout stages")]
    if args.figures:
        host = where.get(args.figures)
        if host is None:
            raise CliError(f"unknown strategy {args.figures!r}: the deployment's strategies: {', '.join(sorted(where))}")
        fig = _host_call(args, ray, host, "stage_figures", args.figures)
        doc["figures"] = fig
        tables.append(Table("figures", ("figure", "value"), sorted((k, v) for k, v in fig["gate_values"].items()),
                            title=f"figures of {args.figures} in {fig['stage']} (what a gate reads)"))
    emit(fmt, doc, tables)
    return 0
