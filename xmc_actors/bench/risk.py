"""Pre-trade check cost, in-process: what the coordinator pays per pair and per order.

``risk_check_p50_us`` / ``risk_check_p99_us``: :meth:`PreTradeChecker.check_pair` on an
accepted SHFE cu / LME copper pair (all checks, sessions, FX, margin reservation, and the
RISK_DECISION event built and handed to a NullSink), then the reservation released.
``risk_order_check_p50_us``: :meth:`PreTradeChecker.allows_order`. Floors measured in the same
run: an empty function call and ``AllowAll.check_pair``.
"""
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import yaml

from ..core.clock import SimClock
from ..core.pretrade import AllowAll
from ..core.risk_checker import PreTradeChecker
from ..core.risk_types import RiskGrant
from ..core.sink import NullSink
from ..core.stats import percentile
from ..model import Instrument, LegIntent, PairIntent, Side, Venue
from ..model.risk import RiskConfig

_CATALOGUE = Path(__file__).resolve().parents[2] / "configs" / "catalogue.yaml"
OPEN_NS = 1_736_215_200_000_000_000  # Tue 2025-01-07 10:00 Shanghai, 02:00 London


def _catalogue() -> tuple[dict[str, Venue], dict[str, Instrument]]:
    raw = yaml.safe_load(_CATALOGUE.read_text())
    venues = {v["code"]: Venue.model_validate(v) for v in raw["venues"]}
    insts = {f"{i['venue']}.{i['symbol']}": Instrument.model_validate(i) for i in raw["instruments"]}
    return venues, insts


def _intent(i: int) -> PairIntent:
    return PairIntent(decision_id=f"d{i}", strategy="s1", legs=(
        LegIntent(leg="A", instrument="SHFE.cu", account="cn", side=Side.BUY, qty=1,
                  limit_price=Decimal(72000), trigger_price=Decimal(72000)),
        LegIntent(leg="B", instrument="LME.CA3M", account="us", side=Side.SELL, qty=1,
                  limit_price=Decimal(9800), trigger_price=Decimal(9800))))


def _pcts(xs: list[float]) -> tuple[float, float]:
    return percentile(xs, 0.5), percentile(xs, 0.99)


def _time_each(fn: Callable[[int], Any], n: int, after: Callable[[int], Any] | None = None) -> list[float]:
    out = []
    pc = time.perf_counter_ns
    for i in range(n):
        t0 = pc()
        fn(i)
        out.append((pc() - t0) / 1000)
        if after is not None:
            after(i)  # untimed: keeps the checker's state steady (a few pairs in flight)
    return out


def run(quick: bool) -> dict[str, float]:
    n = 2_000 if quick else 20_000
    venues, insts = _catalogue()
    rate = Decimal("7.1")
    fx = {("CNY", "USD"): 1 / rate, ("USD", "CNY"): rate}.get
    clock = SimClock(OPEN_NS)
    chk = PreTradeChecker(insts, venues, lambda a, b: fx((a, b)), name="bench", sink=NullSink(), clock=clock)
    cfg = RiskConfig(default_limits={"max_order_qty": 50, "max_order_notional": Decimal(10**9), "max_position": 10_000},
                     max_account_position={"cn": 100_000, "us": 100_000}, throttle={"max_orders_per_s": 1_000_000})
    chk.update_grant(RiskGrant(coordinator="bench", seq=1, issued_ns=OPEN_NS, expires_ns=OPEN_NS + 10**15, config=cfg,
                               accounts={"cn": "CNY", "us": "USD"},
                               leases={"account:cn": Decimal(10**12), "account:us": Decimal(10**12)},
                               order_rate_per_s=1_000_000,
                               reference_prices={"SHFE.cu": (Decimal(72000), OPEN_NS), "LME.CA3M": (Decimal(9800), OPEN_NS)}))
    intents = [_intent(i) for i in range(n)]

    def one_pair(i: int) -> None:
        r = chk.check_pair(intents[i], OPEN_NS + i)
        if not r.allowed:
            raise RuntimeError(f"bench pair refused: {r.denials}")

    def done(i: int) -> None:  # the pair ends unfilled and the guard books it
        chk.close_pair(intents[i].decision_id)
        chk._forget(intents[i].decision_id)

    for i in range(200):  # warm-up (session cache, code paths)
        one_pair(i)
        done(i)
    pair_us = _time_each(one_pair, n, done)
    order_us = _time_each(lambda i: chk.allows_order("s1", "SHFE", "SHFE.cu", False, OPEN_NS + i * 1000), n)

    def empty(i: int) -> None:
        pass

    allow = AllowAll()
    floor_empty = _time_each(empty, n)
    floor_allow = _time_each(lambda i: allow.check_pair(intents[i], OPEN_NS), n)
    p50, p99 = _pcts(pair_us)
    o50, o99 = _pcts(order_us)
    f50, _ = _pcts(floor_empty)
    a50, _ = _pcts(floor_allow)
    return {
        "risk_check_p50_us": round(p50, 2),
        "risk_check_p99_us": round(p99, 2),
        "risk_order_check_p50_us": round(o50, 2),
        "risk_order_check_p99_us": round(o99, 2),
        "floor_empty_call_p50_us": round(f50, 3),
        "floor_allowall_check_pair_p50_us": round(a50, 3),
        "risk_check_vs_allowall_ratio": round(p50 / a50, 1) if a50 else 0.0,
        "risk_check_target_us": 20.0,
        "risk_check_within_target_ratio": round(p50 / 20.0, 2),
    }


if __name__ == "__main__":  # pragma: no cover
    print(run(quick=True))
