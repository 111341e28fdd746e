"""``xmc backtest CONFIG``: the execution lab (``docs/lab.md``).

Runs the deployment's strategies, pair coordinator core, risk rules and simulated venues on a
discrete-event clock in this process (no Ray), once per execution policy, on the same market and
seed; prints the execution figures side by side with their ratios to the sequential baseline,
writes each policy's ledger (``xmc audit`` reads it) and, when asked, the figures as JSON
(byte-identical for the same configuration and seed) and an HTML report.

Exit codes: 0 done; 1 the configuration is not valid; 2 a bad argument.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import CliError

HEADLINE = ("opportunities", "pairs_attempted", "pairs_refused", "sync_fill_rate", "success_rate", "failure_rate",
            "slippage_pair_bps_mean", "slippage_pair_bps_p95", "legging_exposure_base_s", "opportunity_capture",
            "replenishments", "replenish_cost_base", "rollbacks", "rollback_cost_base", "exception_detection_ms_p50",
            "rollback_time_ms_p50", "time_to_hedge_ms_p50", "time_to_hedge_ms_p95", "fees_base",
            "pnl_after_fees_base")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .cli import non_negative_int
    from .output import add_format_argument

    p = sub.add_parser("backtest", help="compare execution policies on a deployment's strategies in simulated time")
    p.add_argument("config", help="deployment file (its lab: section sets the venues' latencies)")
    p.add_argument("--policy", action="append", default=None,
                   help="price, speed, quantity, lead_lag, sequential, or all (repeatable; default: all, i.e. "
                        "lab.policies)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the venues and latencies (default 0)")
    p.add_argument("--from", dest="from_", metavar="TIME", help="first market time played (ISO date/time, UTC)")
    p.add_argument("--to", metavar="TIME", help="market time to stop at (ISO date/time, UTC; exclusive)")
    p.add_argument("--json", dest="json_file", metavar="FILE", help="write the figures as JSON to FILE")
    p.add_argument("--html", metavar="FILE", help="write the comparison as a self-contained HTML page")
    p.add_argument("--ledger", metavar="DIR",
                   help="where each policy's ledger goes, DIR/<policy> (default: the deployment's ledger.path)")
    p.add_argument("--no-ledger", action="store_true", help="write no ledger (figures only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_format_argument(p)
    p.set_defaults(func=cmd_backtest)


def _policies(asked: list[str] | None, default: tuple[str, ...]) -> list[str]:
    from ..model.lab import POLICIES

    if not asked:
        return list(default)
    out: list[str] = []
    for a in asked:
        for name in a.split(","):
            name = name.strip()
            if name == "all":
                out.extend(default)
            elif name in POLICIES:
                out.append(name)
            else:
                raise CliError(f"--policy: {name!r} is not one of {', '.join(POLICIES)} or all")
    return list(dict.fromkeys(out))


def cmd_backtest(args: argparse.Namespace) -> int:
    from ..lab.compare import backtest, to_json
    from ..ledger.audit import parse_time
    from .cmd_run import _load
    from .output import Table, emit, output_format

    fmt = output_format(args)
    try:
        start_ns, end_ns = parse_time(args.from_), parse_time(args.to)
    except ValueError as e:
        raise CliError(f"--from/--to: {e}") from None
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise CliError("--to: must be after --from")
    cfg = _load(args.config)
    policies = _policies(args.policy, cfg.lab.policies)
    if not any(s.enabled for s in cfg.strategies):
        raise CliError(f"{args.config}: no enabled strategy to backtest", code=1)
    ledger_root = None if args.no_ledger else Path(args.ledger or cfg.ledger.path)
    show = not args.quiet and fmt == "table"
    try:
        with _bar(len(policies), show) as update:
            result = backtest(cfg, policies, seed=args.seed, start_ns=start_ns, end_ns=end_ns,
                              ledger_root=ledger_root, progress=update)
    except FileExistsError as e:
        raise CliError(f"--ledger: {e}") from None
    except (KeyError, ValueError) as e:  # a feed or strategy that cannot be built: say which
        raise CliError(f"{args.config}: {e.args[0] if e.args else e}", code=1) from None
    if args.json_file:
        Path(args.json_file).write_text(to_json(result))
    if args.html:
        from ..lab.report import build_html

        Path(args.html).write_text(build_html(result))
    figs = {p: result["policies"][p]["figures"] for p in policies}
    show_num = _short if fmt == "table" else (lambda v: v)
    tables = [Table("figures", ["figure", *policies],
                    [[n, *(show_num(figs[p].get(n)) for p in policies)] for n in HEADLINE],
                    title=f"{result['scenario']}: {result['quotes']:,} quotes, seed {result['seed']}"
                          + (" (synthetic data)" if result["synthetic_data"] else ""))]
    others = [p for p in policies if p != "sequential"]
    if result["ratios"] and others:
        from ..lab.figures import RATIO_FIGURES

        rows = [[n, *(show_num(result["ratios"].get(f"{p}_{n}_vs_sequential_ratio")) for p in others)]
                for n in RATIO_FIGURES]
        tables.append(Table("vs_sequential", ["figure", *others], rows, title="ratio to the sequential baseline"))
    emit(fmt, result, tables)
    if fmt == "table":
        if result["skipped_rows"]:
            print(f"rows skipped while loading: {result['skipped_rows']}")
        for p, path in result.get("ledgers", {}).items():
            print(f"ledger {p:<11} xmc audit report --ledger {path}")
        for what, path in (("json", args.json_file), ("html", args.html)):
            if path:
                print(f"{what:<18} {path}")
    return 0


def _short(v: object) -> object:
    """A figure as people read it in a table (the JSON keeps every digit)."""
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100_000 else f"{v:.4g}"
    return v


class _bar:
    """A rich progress bar on stderr: one task per policy (quotes played)."""

    def __init__(self, n: int, enabled: bool) -> None:
        self.n, self.enabled = n, enabled
        self.bar = None
        self.tasks: dict[str, int] = {}

    def __enter__(self):  # noqa: ANN204
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=not sys.stderr.isatty())
        self.bar.__enter__()

        def update(policy: str, done: int, total: int) -> None:
            assert self.bar is not None
            if policy not in self.tasks:
                self.tasks[policy] = self.bar.add_task(policy, total=total)
            self.bar.update(self.tasks[policy], completed=done, total=total)
        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
