"""Run benchmark suites, print a table, write ``bench-results/<suite>.json``.

Each suite is a module ``xmc_actors.bench.<suite>`` with ``run(quick: bool) -> dict[str, float]``:
a flat mapping of metric name (unit in the name) to number, with the floors it measured
(``floor_*``) and the ratios (``*_ratio``).
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

SUITES = ("gateway", "coordinator", "risk", "ledger", "runtime", "cluster", "fix", "execution")


def _available() -> list[str]:
    out = []
    for s in SUITES:
        try:
            importlib.import_module(f"xmc_actors.bench.{s}")
            out.append(s)
        except ModuleNotFoundError as e:
            if e.name != f"xmc_actors.bench.{s}":
                raise
    return out


def _fmt(v: float) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return f"{int(v):,}"
    return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    ap.add_argument("suites", nargs="*", help=f"suites to run (default: all of {', '.join(SUITES)})")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (for CI smoke runs)")
    ap.add_argument("--out", default="bench-results", help="directory for the JSON files")
    args = ap.parse_args(argv)
    available = _available()
    wanted = args.suites or available
    unknown = [s for s in wanted if s not in SUITES]
    if unknown:
        print(f"bench: unknown suite(s) {', '.join(unknown)} (known: {', '.join(SUITES)})", file=sys.stderr)
        return 2
    missing = [s for s in wanted if s not in available]
    if missing:
        print(f"bench: suite(s) not implemented yet: {', '.join(missing)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rc = 0
    for suite in wanted:
        mod = importlib.import_module(f"xmc_actors.bench.{suite}")
        t0 = time.perf_counter()
        print(f"== {suite} ({'quick' if args.quick else 'full'}) on {platform.node()} / {platform.processor() or platform.machine()}")
        try:
            results = mod.run(quick=args.quick)
        except Exception as e:  # a failing suite must not hide the others' results
            print(f"   FAILED: {type(e).__name__}: {e}", file=sys.stderr)
            rc = 1
            continue
        width = max(len(k) for k in results) if results else 10
        for k, v in results.items():
            print(f"   {k:<{width}}  {_fmt(v)}")
        (out / f"{suite}.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"   -> {out / (suite + '.json')} ({time.perf_counter() - t0:.1f} s)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
