"""``xmc stress CONFIG`` (压测): drive a deployment with generated load and extreme markets for
a set time and report what held (:mod:`xmc_actors.ops.stress`).

The deployment's ``stress:`` section sets the duration, the scenarios (a gap through the price
band, a limit-locked venue, a venue that stops answering, a burst of quotes, every strategy
firing at once) and the thresholds; ``--short`` runs the same story in at most 12 seconds (what
CI runs); ``--json FILE`` keeps the report, which ``xmc audit acceptance --stress FILE`` attaches.

Exit codes: 0 passed; 1 failed a threshold, lost an event or could not apply a scenario; 2 a bad
argument or a deployment stress cannot drive (not simulated venues).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .cli import CliError, non_negative_int, positive_float


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .output import add_format_argument

    p = sub.add_parser("stress", help="stress-test a deployment (压测): load, extreme markets, what held")
    p.add_argument("config", help="deployment file with a stress: section (simulated venues only)")
    p.add_argument("--duration", type=positive_float, default=None, help="seconds (default: stress.duration_s)")
    p.add_argument("--short", action="store_true", help="the short form: at most 12 s, the scenarios scaled to fit (CI)")
    p.add_argument("--seed", type=non_negative_int, default=None, help="seed of the generated quotes (default: stress.seed)")
    p.add_argument("--workdir", default=None,
                   help="where the run's ledger and venue journals go (default: a new temporary directory)")
    p.add_argument("--json", dest="json_file", metavar="FILE", help="write the report as JSON to FILE")
    add_format_argument(p)
    p.set_defaults(func=cmd_stress)


def cmd_stress(args: argparse.Namespace) -> int:
    from .cmd_run import _load
    from .output import emit, key_value_table, output_format
    from .stress import report_text, run_stress

    fmt = output_format(args)
    cfg = _load(args.config)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="xmc-stress-"))
    if work.exists() and any(work.glob("ledger/*.duckdb")):
        raise CliError(f"--workdir: {work} already holds a ledger; give an empty directory")
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if fmt == "table" else None
    try:
        rep = run_stress(cfg, work, duration_s=args.duration, short=args.short, seed=args.seed,
                         config_name=Path(args.config).name, echo=say)
    except ValueError as e:
        raise CliError(f"{args.config}: {e}") from None
    if args.json_file:
        Path(args.json_file).write_text(rep.to_json())
    if fmt == "table":
        print(report_text(rep))
        print(f"  ledger               {rep.ledger}  (xmc audit report --ledger {rep.ledger})")
    else:
        doc = json.loads(rep.to_json())
        emit(fmt, doc, [key_value_table("stress", doc, columns=("figure", "value"), title="stress")])
    return 0 if rep.passed else 1
