"""``xmc stop``: stop a running deployment from another shell, as its driver's Ctrl-C would.

What a detached deployment (``ray.detached: true``) needs once the driver that started it is
gone: the deployment is found through its registry (``Deployment.attach``), stopped the way
``xmc run`` stops it (feeds stopped, open pairs finished or wound down, every actor's ledger
client flushed, the shards checkpointed), its summary printed, and every actor removed.

Exit codes: 0 stopped; 3 no deployment to talk to; 4 stopped, but an actor fault got in the way
(the summary lists it); 5 refused by the operator API's authorisation (while one runs: a token
from XMC_API_TOKEN or --token-env whose role may stop the deployment, admin; ops/operator_auth.py).
"""
from __future__ import annotations

import argparse

from .cli import CliError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .cmd_ops import _connection_args
    from .output import add_format_argument

    p = sub.add_parser("stop", help="stop a running deployment (also a detached one whose driver is gone) and remove its actors")
    p.add_argument("--operator", help="who stops it (required; recorded in the ledger)")
    p.add_argument("--keep-actors", action="store_true", help="stop trading and flush, but leave the actors running")
    from .operator_auth import add_token_argument

    add_token_argument(p)
    add_format_argument(p, json_alias=True)
    _connection_args(p)
    p.set_defaults(func=cmd_stop)


def cmd_stop(args: argparse.Namespace) -> int:
    from ..model.events import EventKind
    from ..runtime.deploy import Deployment
    from .cmd_ops import join
    from .cmd_run import print_summary
    from .output import output_format

    from .operator_auth import authorise_cli

    fmt = output_format(args)
    auth = authorise_cli(args, "stop")
    operator = auth.operator
    ns = join(args)
    try:
        dep = Deployment.attach(ns)
    except LookupError as e:
        raise CliError(str(e), code=3) from None
    from ..core.attribution import attribution
    from ..core.clock import SystemClock
    from ..core.sink import EventMaker

    dep.sink.emit(EventMaker(SystemClock(), "xmc-stop").make(
        EventKind.OPERATOR, reason=f"stop deployment {dep.cfg.name}", action="stop", **attribution(operator, auth.by())))
    summary = dep.stop()
    if not args.keep_actors:
        dep.remove()
    print_summary(summary, fmt)
    if fmt == "table":
        print(f"  actors {'left running' if args.keep_actors else 'removed'}")
    return 4 if summary.faults else 0
