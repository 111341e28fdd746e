"""``xmc venue serve CONFIG --gateway NAME``: the loopback FIX exchange for one gateway's venue.

It listens on 127.0.0.1 only, prints one JSON line ``{"host", "port", "control_port"}`` and
runs until Ctrl-C (or a ``stop`` on its control channel). Point the gateway at it with
``adapter: fix``, ``params.port`` (the port printed, or fix it with ``--port``) and, for tests
and demos, ``params.exchange_control: 127.0.0.1:<control_port>``. See docs/fix.md.
"""
from __future__ import annotations

import argparse
import json

from .cli import port_number


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("venue", help="venue tools: run a loopback FIX exchange for a gateway (xmc venue serve)")
    vs = p.add_subparsers(dest="venue_command", metavar="SUBCOMMAND")
    s = vs.add_parser("serve", help="run the FIX exchange of a gateway's venue on 127.0.0.1 until Ctrl-C")
    s.add_argument("config", help="deployment YAML file")
    s.add_argument("--gateway", required=True,
                   help="the gateway (name, actor name or venue) it serves; it must have adapter: fix")
    s.add_argument("--port", type=port_number, default=None,
                   help="FIX port (0: a free one; default: the gateway's params.port)")
    s.add_argument("--control-port", type=port_number, default=0, help="control channel port (0: a free one)")
    s.add_argument("--sim-params", default="{}",
                   help="the simulated venue's parameters as JSON (matching rules, faults, seed)")
    s.set_defaults(func=cmd_venue_serve)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cmd_venue_serve(args: argparse.Namespace) -> int:
    from ..runtime.config import ConfigError, load_config
    from .cli import CliError

    try:
        dep = load_config(args.config)
    except ConfigError as e:
        raise CliError(f"{args.config}: {e}") from None
    try:
        sim_params = json.loads(args.sim_params)
    except ValueError as e:
        raise CliError(f"--sim-params is not JSON: {e}") from None
    if not isinstance(sim_params, dict):
        raise CliError("--sim-params must be a JSON object")
    try:
        from ..venues.fix.exchange import exchange_for, serve

        ex = exchange_for(dep, args.gateway, port=args.port, control_port=args.control_port, sim_params=sim_params)
    except (KeyError, ValueError) as e:
        raise CliError(str(e).strip('"')) from None
    try:
        serve(ex)  # Ctrl-C stops it (the exchange is stopped before we return)
    except OSError as e:
        raise CliError(f"cannot listen on 127.0.0.1:{ex.port}: {e}") from None
    return 0
