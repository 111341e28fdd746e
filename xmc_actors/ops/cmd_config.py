"""``xmc validate CONFIG`` and ``xmc describe CONFIG``."""
from __future__ import annotations

import argparse
import os
import sys

from ..runtime.config import ConfigError, describe, iter_secret_refs, load_config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("validate", help="check a deployment configuration and report every problem")
    p.add_argument("config", help="deployment YAML file")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when the file is valid")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        for issue in e.issues:
            where = issue.file or args.config
            loc = f"{where}:{issue.line}" if issue.line else where
            print(f"{loc}: {issue}", file=sys.stderr)
        n = len(e.issues)
        print(f"{args.config}: {n} problem{'s' if n != 1 else ''} found", file=sys.stderr)
        return 1
    if not args.quiet:
        for line in describe(cfg):
            print(line)
        missing = [(path, env) for path, env in iter_secret_refs(cfg) if env not in os.environ]
        for path, env in missing:
            print(f"note: {path} refers to ${env}, which is not set in this shell")
        print(f"{args.config}: valid")
    return 0
