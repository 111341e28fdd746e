"""``xmc validate CONFIG`` and ``xmc describe CONFIG``."""
from __future__ import annotations

import argparse
import sys

from ..runtime.config import ConfigError, describe, is_catalogue, load_config, missing_credentials


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("validate", help="check a deployment configuration and report every problem")
    p.add_argument("config", help="deployment YAML file")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when the file is valid")
    p.add_argument("--require-credentials", action="store_true",
                   help="an unset credential is a problem even where only simulated adapters would use it "
                        "(check the shell a live deployment will start from)")
    p.set_defaults(func=cmd_validate)


def _report(config: str, problems: list[str]) -> int:
    for line in problems:
        print(line, file=sys.stderr)
    n = len(problems)
    print(f"{config}: {n} problem{'s' if n != 1 else ''} found", file=sys.stderr)
    return 1


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        lines = []
        for issue in e.issues:
            where = issue.file or args.config
            loc = f"{where}:{issue.line}" if issue.line else where
            lines.append(f"{loc}: {issue}")
        return _report(args.config, lines)
    # a credential is read when a gateway connects: one that is unset makes a live venue fail
    # then, so it is a problem now; the simulated adapter reads none (a note, unless required)
    problems, notes = [], []
    for path, env, needed in missing_credentials(cfg):
        if needed or args.require_credentials:
            why = "a live adapter reads it when its gateway connects" if needed else "--require-credentials"
            problems.append(f"{args.config}: {path}: environment variable {env} (a credential) is not set ({why})")
        else:
            notes.append(f"note: {path} refers to ${env}, which is not set in this shell "
                         "(only simulated adapters use this account: not needed now)")
    if problems:
        return _report(args.config, problems)
    if not args.quiet:
        for line in describe(cfg):
            print(line)
        for line in notes:
            print(line)
        if is_catalogue(cfg):
            print(f"{args.config}: valid catalogue (venues and instruments for deployments to include; "
                  "not a deployment: it has no strategies)")
        else:
            print(f"{args.config}: valid")
    return 0
