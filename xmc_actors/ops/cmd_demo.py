"""``xmc demo``: the demonstration deployment (what ``scripts/demo`` runs)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..runtime.config import PROJECT_ROOT, ConfigError, describe, load_config
from .cli import CliError

DEMO_CONFIG = PROJECT_ROOT / "configs" / "demo.yaml"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="run the demo deployment on the embedded Ray")
    p.add_argument("--config", default=str(DEMO_CONFIG), help="deployment file (default: configs/demo.yaml)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    path = Path(args.config)
    try:
        cfg = load_config(path)
    except ConfigError as e:
        raise CliError(f"the demo configuration is not valid:\n{e}", code=1) from None
    for line in describe(cfg):
        print(line)
    print(f"{path}: valid")
    return 0
