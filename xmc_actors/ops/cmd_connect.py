"""``xmc connect-test --gateway NAME CONFIG``: the connection check a user runs first (联调).

It builds that one gateway's adapter and core from the deployment file in this process (no
Ray, no other actor), then logs on, reads one quote, places a LIMIT DAY buy of the minimum
quantity far below the market (inside the venue's price limits, so it rests and cannot fill),
queries it, cancels it, queries it again and logs off, reporting each step with its time and
outcome (``xmc_actors.ops.connect_check``). Run it before the deployment starts: it opens the
gateway's own session.

Exit codes: 0 every step passed; 2 a bad argument (an unknown gateway, instrument or account:
nothing connected); 10 + N the first step that failed (11 connect, 12 quote, 13 place, 14 query,
15 cancel, 16 query-canceled, 17 close). An order that may still rest at the venue after a
failure is named on stderr.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .cli import CliError, positive_float
from .output import Table, add_format_argument, emit, output_format


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("connect-test",
                       help="check one gateway's connection: log on, read a quote, place, query and cancel a "
                            "far-from-market order, log off (no Ray; run before the deployment)")
    p.add_argument("config", help="deployment YAML file")
    p.add_argument("--gateway", required=True,
                   help="the gateway: its actor name (gateway-SHFE), its name or its venue code")
    p.add_argument("--instrument", default=None,
                   help="instrument of the gateway's venue (id or symbol; default: the first its feed quotes, "
                        "else the venue's first in the deployment)")
    p.add_argument("--account", default=None,
                   help="account the test order is for (default: the first account the gateway carries)")
    p.add_argument("--price", default=None,
                   help="the test order's price (on the tick grid; default: far below the bid, inside the "
                        "price limits); lets the order step run without a quote")
    p.add_argument("--timeout-s", type=positive_float, default=10.0,
                   help="seconds to wait for the logon and for the quote (order answers: the adapter's ack_timeout_ms)")
    p.add_argument("--keep-order", action="store_true",
                   help="leave the test order resting (no cancel), to find it in the broker's terminal")
    p.add_argument("--record", action="store_true",
                   help="write the test's events (drop copies, the steps) to the deployment's ledger "
                        "(default: the ledger is not touched)")
    p.add_argument("--ledger", default=None, metavar="DIR",
                   help="with --record: the ledger directory (default: the deployment's ledger.path)")
    add_format_argument(p)
    p.set_defaults(func=cmd_connect_test)


def tables(doc: dict[str, Any]) -> list[Table]:
    order = doc.get("order") or {}
    head = [("deployment", doc["deployment"]), ("gateway", f"{doc['gateway']} (venue {doc['venue']}, "
                                                            f"adapter {doc['adapter']}, feed {doc['feed']})"),
            ("instrument", doc["instrument"]), ("account", doc["account"]),
            ("client order id", doc["client_order_id"])]
    if order:
        side = f"{order['side']} {order['offset']}" if order.get("offset") else order["side"]
        head.append(("order", f"{side} {order['qty']} @ {order['price']} {order['type']} {order['tif']} "
                              f"({order['price_chosen']})"))
    head.append(("result", "all steps passed" if doc["ok"] else f"FAILED at {doc['first_failed']} "
                                                                 f"(exit {doc['exit_code']})"))
    steps = Table("steps", ("step", "name", "outcome", "elapsed_ms", "detail"),
                  [(s["step"], s["name"], s["outcome"], f"{s['elapsed_ms']:.1f}", s["detail"]) for s in doc["steps"]])
    return [Table("connect-test", ("field", "value"), head, title=f"connect-test {doc['gateway']}"), steps]


def cmd_connect_test(args: argparse.Namespace) -> int:
    from ..runtime.config import ConfigError, load_config
    from . import connect_check as cc

    fmt = output_format(args)
    if args.ledger and not args.record:
        raise CliError("--ledger: only with --record (the test writes no ledger otherwise)")
    try:
        dep = load_config(args.config)
    except ConfigError as e:
        raise CliError(f"{args.config}: {e}") from None
    try:
        plan = cc.plan(dep, args.gateway, instrument=args.instrument, account=args.account, price=args.price,
                       timeout_s=args.timeout_s, keep_order=args.keep_order)
    except cc.PlanError as e:
        raise CliError(str(e), code=2) from None

    def progress(st: cc.Step) -> None:  # a person watching sees each step as it ends
        if fmt == "table" and sys.stderr.isatty():
            print(f"  {st.n}. {st.name:<15} {st.outcome:<8} {st.elapsed_ms:8.1f} ms", file=sys.stderr)

    doc = cc.run(plan, progress)
    events = doc.pop("events")
    if args.record:
        from ..ledger.store import LedgerError

        try:
            where, n = cc.record(dep, {**doc, "events": events}, args.ledger)
            doc["recorded"] = {"ledger": where, "events": n}
        except (LedgerError, OSError) as e:
            doc["recorded"] = {"error": str(e)}
            print(f"xmc: --record: nothing written: {e} (is the deployment running? it holds the ledger)",
                  file=sys.stderr)
    emit(fmt, doc, tables(doc) if fmt == "table" else tables(doc)[1:])
    if doc["order_left_live"]:
        why = "as asked (--keep-order)" if args.keep_order and doc["ok"] else "NOT CONFIRMED CANCELED: check it"
        print(f"xmc: the test order {doc['client_order_id']} may still rest at {doc['venue']} ({why}); "
              f"cancel it at the broker if it does", file=sys.stderr)
    if not doc["ok"]:
        st = next(s for s in doc["steps"] if s["outcome"] == "failed")
        print(f"xmc: connect-test: step {st['step']} ({st['name']}) failed: {st['detail']}", file=sys.stderr)
    return int(doc["exit_code"])
