"""``xmc demo``: the demonstration deployment (what ``scripts/demo`` runs).

Replays the real SGE Au99.99 vs COMEX gold history with USD/CNY from FRED through the whole
stack, while a synthetic intraday SHFE vs LME copper pair with injected rejects runs beside
it so that replenishment (补单) and rollback (回滚) visibly happen; then prints the summary,
where the ledger and the HTML report are, and a trace of a rolled-back pair.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..runtime.config import PROJECT_ROOT, ConfigError, describe, load_config
from .cli import CliError, positive_float

DEMO_CONFIG = PROJECT_ROOT / "configs" / "demo.yaml"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="run the demo deployment on the embedded Ray")
    p.add_argument("--config", default=str(DEMO_CONFIG), help="deployment file (default: configs/demo.yaml)")
    p.add_argument("--duration", type=positive_float, default=25.0, help="seconds of synthetic copper trading (default 25)")
    p.add_argument("--out", default=str(PROJECT_ROOT / "var" / "demo"), help="where the ledger and report go")
    p.add_argument("--validate-only", action="store_true", help="only check and describe the configuration")
    from .cmd_run import look_options

    look_options(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from .cmd_run import run_deployment, with_look_options

    path = Path(args.config)
    try:
        cfg = with_look_options(load_config(path), args)
    except ConfigError as e:
        raise CliError(f"the demo configuration is not valid:\n{e}", code=1) from None
    out = Path(args.out)
    ledger = out / "ledger"
    # the demo writes its ledger under --out whatever the file says: the description names
    # the path the run actually writes (it named the file's ledger.path before)
    cfg = cfg.model_copy(update={"ledger": cfg.ledger.model_copy(update={"path": str(ledger)})})
    if not cfg.api.tokens and not cfg.api.tokens_file:
        # the console's buttons need a token: the demo makes its own (hashed in the file it names)
        from .cmd_api import demo_token

        tokens_file, token_path = demo_token(out)
        cfg = cfg.model_copy(update={"api": cfg.api.model_copy(update={"tokens_file": str(tokens_file)})})
        print(f"console sign-in: the demo's admin token is in {token_path} (paste it into the console; for xmc halt, "
              f"limits, stop ... from another shell: export XMC_API_TOKEN=$(cat {token_path}))")
    for line in describe(cfg):
        print(line)
    if args.validate_only:
        print(f"{path}: valid")
        return 0
    if ledger.exists():
        shutil.rmtree(ledger)  # each demo run starts a fresh trail
    summary = run_deployment(cfg, address=None, duration=args.duration, ledger=str(ledger),
                             report=str(out / "report.html"), per_host=25, show_progress=True)
    print()
    for line in summary.lines():
        print(line)
    example = summary.examples.get("a rolled-back pair") or summary.examples.get("a replenished pair")
    if example:
        print()
        print(f"trace of {example}:")
        from .cli import main as xmc

        xmc(["audit", "trace", example, "--ledger", str(ledger)])
    from .cmd_run import run_exit_code

    return run_exit_code(summary)
