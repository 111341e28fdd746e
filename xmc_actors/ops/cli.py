"""The ``xmc`` command.

Subcommands live in modules ``xmc_actors/ops/cmd_*.py``; each defines
``register(subparsers) -> None`` and sets ``func`` on its parser. A subcommand returns an exit
code. Errors meant for the user are :class:`CliError` (printed without a traceback).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import Any, Sequence


class CliError(Exception):
    """An error for the user: printed as ``xmc: <message>``, exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _number(kind: type, name: str, lo: float | None, hi: float | None, what: str) -> Any:
    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if v != v or v in (float("inf"), float("-inf")) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return v
    parse.__name__ = name
    return parse


#: argument types that refuse what makes no sense (a negative duration, zero strategies per host,
#: a port past 65535, nan) with the argument's name and the reason, before anything starts
positive_float = _number(float, "seconds", 1e-9, 1e9, "a positive number")
positive_int = _number(int, "count", 1, 1_000_000, "a positive whole number")
non_negative_int = _number(int, "count", 0, 10**12, "a whole number >= 0")
port_number = _number(int, "port", 0, 65535, "a port number (0 to 65535)")


def version_text() -> str:
    """``xmc --version``: this package's installed version, Ray's and Python's (read from the
    installed distributions' metadata: nothing is imported, so it answers at once)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def of(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    return f"xmc {of('xmc-actors')} (ray {of('ray')}, python {platform.python_version()})"


class _VersionAction(argparse.Action):
    """Like argparse's ``version`` action, but the text is worked out only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kw: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help="print the versions of xmc-actors, Ray and Python, and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xmc",
        description="xmc-actors: cross-market pair execution on Ray.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import __path__ as ops_path

    for mod in sorted(pkgutil.iter_modules(ops_path), key=lambda m: m.name):
        if mod.name.startswith("cmd_"):
            importlib.import_module(f"{__package__}.{mod.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"xmc: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("xmc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (xmc audit query | head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that flushing stdout at exit does not fail again
        return 141  # 128 + SIGPIPE, as a tool killed by the signal reports


if __name__ == "__main__":  # python -m xmc_actors.ops.cli
    # Run through the package module, not this __main__ copy, so that CliError raised by the
    # subcommands (imported from xmc_actors.ops.cli) is the class caught here.
    from xmc_actors.ops.cli import main as _main

    sys.exit(_main())
