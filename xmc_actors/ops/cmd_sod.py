"""Start of day: ``xmc accept-positions`` lifts the start-of-day gate of a running deployment;
``xmc settlement FILE`` reconciles a broker's daily statement with the ledger.

At every start the deployment compares the positions it starts from (the ledger's; flat on a
new ledger) with what the venues hold. On any difference, or a venue that did not report, no
new entry is made (global REDUCING, operator ``start-of-day``; ``xmc status`` shows the
differences) until an operator accepts the venues' word:

    xmc accept-positions --operator alice --note "yesterday's lots, confirmed with the broker"

Exit codes: 0 accepted (or the statement agrees); 1 accepted, but a coordinator did not
acknowledge the resume (or the statement differs); 2 refused: nothing to accept, no operator or
note, a statement that cannot be read (nothing changed); 3 no deployment to talk to; 4 the
deployment did not answer in time; 5 refused by the operator API's authorisation (while one runs:
a token from XMC_API_TOKEN or --token-env whose role may accept positions; ops/operator_auth.py);
6 proposed, not done: accepting resumes trading, and while a red alert is open that needs a second
operator (``api.confirm.resume_after_red``, as ``xmc resume``): ``xmc confirm ID`` (nothing changed yet).
"""
from __future__ import annotations

import argparse
import json

from .cli import CliError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .cmd_ops import _connection_args
    from .output import add_format_argument

    p = sub.add_parser("accept-positions",
                       help="accept the differences the start-of-day check found between the ledger's positions and "
                            "the venues' (the venues' word stands), and let the deployment enter new positions")
    p.add_argument("--operator", help="who accepts (required; recorded in the ledger)")
    p.add_argument("--note", help="why the venues' positions are right (required; recorded)")
    from .operator_auth import add_token_argument

    add_token_argument(p)
    add_format_argument(p, json_alias=True)
    _connection_args(p)
    p.set_defaults(func=cmd_accept_positions)

    s = sub.add_parser("settlement", help="reconcile a broker's daily settlement statement (positions and funds, "
                                          "a CSV file) with the ledger's positions at that trading day")
    s.add_argument("statement", help="the statement file (CSV; docs/operations.md 'Start of day')")
    s.add_argument("--ledger", required=True, help="the deployment's ledger directory")
    s.add_argument("--config", default=None, help="the deployment file (for the instruments' venues and lot sizes)")
    s.add_argument("--tolerance", type=float, default=0.01,
                   help="funds differences up to this (in the statement's currency) are agreement (default 0.01)")
    add_format_argument(s, json_alias=True)
    s.set_defaults(func=cmd_settlement)


def cmd_accept_positions(args: argparse.Namespace) -> int:
    from .cmd_ops import _call
    from .output import output_format

    from .operator_auth import authorise_cli

    fmt = output_format(args)
    note = (args.note or "").strip()
    if not note:
        raise CliError("--note TEXT is required: say why the venues' positions are right (it is recorded)", code=2)
    auth = authorise_cli(args, "accept-positions")
    if auth.desk is not None:  # accepting resumes trading: after red, a second operator (as `xmc resume`)
        auth.confirmation("accept_positions", {"note": note}, _call(args, "status"))
    return accept_and_print(args, auth.operator, note, auth.by(), fmt)


def accept_and_print(args: argparse.Namespace, op: str, note: str, by: dict[str, str], fmt: str,
                     confirmed_by: str = "") -> int:
    """Accept the start-of-day positions (``runtime.start_of_day.accept``) as ``op`` and print it:
    ``xmc accept-positions``, and ``xmc confirm`` of one a second operator confirms."""
    import ray

    from ..runtime.start_of_day import accept
    from .cmd_ops import join

    ns = join(args)
    try:
        res = accept(ns, op, note, args.timeout, by)
    except LookupError as e:
        raise CliError(str(e), code=3) from None
    except ValueError as e:
        raise CliError(f"{e}: nothing changed", code=2) from None
    except ray.exceptions.GetTimeoutError:
        raise CliError(f"the deployment did not answer within {args.timeout:.0f} s", code=4) from None
    if fmt == "json":
        print(json.dumps(res, default=str, indent=2))
    else:
        acc = res["accepted"]
        who = f"{op}, confirmed by {confirmed_by}" if confirmed_by else op
        print(f"start-of-day differences accepted by {who}: {len(acc['differences'])} position(s)"
              + (f", unverified venues {', '.join(acc['unverified_venues'])}" if acc["unverified_venues"] else ""))
        for d in acc["differences"]:
            print(f"  {d['account']} {d['instrument']}: ledger {d['ledger']} -> venue {d['venue']}")
        print(f"ACTIVE again: {', '.join(res['resumed']) or 'nothing was held'}")
        for k, why in res["skipped"].items():
            print(f"  {k}: {why}")
    return 0 if res["ok"] else 1


def cmd_settlement(args: argparse.Namespace) -> int:
    from ..ledger.settlement import SettlementError, reconcile_statement
    from .output import Table, emit, output_format

    fmt = output_format(args)
    venues = instruments = accounts = None
    if args.config:
        from ..runtime.config import ConfigError, load_config

        try:
            cfg = load_config(args.config)
        except (ConfigError, OSError) as e:
            raise CliError(f"--config: {e}", code=2) from None
        venues, instruments, accounts = cfg.venues, cfg.instruments, cfg.accounts
    try:
        rep = reconcile_statement(args.statement, args.ledger, venues=venues, instruments=instruments,
                                  accounts=accounts, tolerance=args.tolerance)
    except (SettlementError, FileNotFoundError) as e:
        raise CliError(str(e), code=2) from None
    rows = [(d["trading_day"], d["account"], d["instrument"], d["side"], d["statement"], d["ledger"], d["difference"])
            for d in rep["positions"]]
    funds = [(f["trading_day"], f["account"], f["field"], f["statement"], f["ledger"], f["difference"])
             for f in rep["funds"]]
    emit(fmt, rep, [
        Table("positions", ("trading_day", "account", "instrument", "side", "statement", "ledger", "difference"), rows,
              title=f"positions: statement vs ledger ({'agree' if rep['positions_agree'] else 'DIFFER'})"),
        Table("funds", ("trading_day", "account", "field", "statement", "ledger", "difference"), funds,
              title="funds: statement vs the ledger's last account reading"),
    ])
    return 0 if rep["agree"] else 1
