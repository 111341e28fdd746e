"""Execution lab benchmark: the shipped scenarios, every policy against the sequential baseline.

For each scenario in ``configs/lab/`` (``copper``: synthetic intraday SHFE vs LME, LME about
150 ms away; ``copper_london``: the same from London, SHFE, the leg sent first by the baseline,
150 ms away; ``gold``: the real SGE/COMEX daily closes with FRED USD/CNY), every policy plays
the same market with the same seed (:func:`xmc_actors.lab.compare.backtest`). Written:

* ``{scenario}_{policy}_{figure}``: every figure of :mod:`xmc_actors.lab.figures` (rates are
  fractions, ``*_bps_*`` basis points, ``*_ms_*`` milliseconds, ``*_base*`` the base currency);
* ``{scenario}_{policy}_{figure}_vs_sequential_ratio``: the policy's figure over the baseline's;
* ``lab_quotes_per_s``: quotes per second of one run (copper, ``speed``) through the strategies,
  pair book, risk rules and simulated venues, the market already loaded (best of 3), beside
  ``floor_lab_loop_quotes_per_s``: the same quotes through the lab's event loop, the venues'
  books and the risk guard's periodic work with no strategy (the clock, the heap and the
  guard's ticks, which cost the same with or without strategies: a cheaper tick raises both),
  and ``lab_vs_floor_ratio``; ``market_load_quotes_per_s``: loading (generating) the market.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "lab"


def _flat(scenario: str, result: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for policy, res in result["policies"].items():
        for k, v in res["figures"].items():
            if isinstance(v, (int, float)):
                out[f"{scenario}_{policy}_{k}"] = float(v)
    for k, v in result["ratios"].items():
        out[f"{scenario}_{k}"] = float(v)
    return out


def _throughput(cfg: Any, quick: bool) -> dict[str, float]:
    from ..lab.engine import LabRun, load_market

    t0 = time.perf_counter()
    market, _ = load_market(cfg, max_duration_s=600 if quick else None)
    load_s = time.perf_counter() - t0
    best = floor = float("inf")
    for _ in range(1 if quick else 3):
        run = LabRun(cfg, policy="speed", seed=1, quotes=market)
        t = time.perf_counter()
        run.run()
        best = min(best, time.perf_counter() - t)
        bare = LabRun(cfg, policy="speed", seed=1, quotes=market)
        bare.by_instrument = {}  # no strategy hears a quote: the loop, the clock, the books and the guard's ticks
        t = time.perf_counter()
        bare.run()
        floor = min(floor, time.perf_counter() - t)
    n = len(market)
    return {"lab_quotes": float(n), "lab_quotes_per_s": n / best, "floor_lab_loop_quotes_per_s": n / floor,
            "lab_vs_floor_ratio": (n / floor) / (n / best), "market_load_quotes_per_s": n / load_s}


def run(quick: bool = False) -> dict[str, float]:
    from ..lab.compare import backtest
    from ..ledger.audit import parse_time
    from ..runtime.config import load_config

    os.environ.setdefault("XMC_DATA_DIR", str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    out: dict[str, float] = {}
    for scenario in ("copper", "copper_london", "gold"):
        cfg = load_config(CONFIGS / f"{scenario.replace('_', '-')}.yaml")
        start = end = None
        if quick:
            if scenario == "gold":
                start, end = parse_time("2024-01-01"), parse_time("2025-01-01")
            else:  # the copper scenarios: ten minutes of the session
                cfg = cfg.model_copy(update={"lab": cfg.lab.model_copy(update={"max_duration_s": 600.0})})
        t = time.perf_counter()
        result = backtest(cfg, list(cfg.lab.policies), seed=1, start_ns=start, end_ns=end)
        out[f"{scenario}_backtest_all_policies_s"] = time.perf_counter() - t
        out.update(_flat(scenario, result))
        if scenario == "copper":
            out.update(_throughput(cfg, quick))
    return out
