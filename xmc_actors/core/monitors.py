"""Live monitors: slippage, ack latency, reject ratio, unhedged exposure time, venue state.

The RiskGuard feeds them the pair summaries coordinators push
(:class:`~xmc_actors.model.pairs.PairSummary`, the contract in docs/architecture.md "Risk
guard"; re-exported here) and gateway statuses. Each observation yields
a :class:`Condition`: a level (yellow / orange / red, or None when within threshold) for one
monitor and one scope key. :class:`~xmc_actors.core.alerts.AlertManager` turns conditions
into de-duplicated, escalating alerts.

Levels: a value at or above ``threshold x level_multipliers[i]`` is yellow (i=0), orange (1),
red (2). An ESCALATED pair is red at once.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

from ..model.pairs import LegSummary, PairSummary  # PairSummary re-exported: core.risk_guard takes it from here
from ..model.risk import AlertLevel, Monitors

LEVELS = (AlertLevel.YELLOW, AlertLevel.ORANGE, AlertLevel.RED)


@dataclass(frozen=True, slots=True)
class Condition:
    """One monitor's verdict for one scope key. ``level`` None means within threshold."""

    monitor: str
    scope: str          # strategy | venue | account | global
    key: str
    level: AlertLevel | None
    value: float
    threshold: float
    message: str


def level_for(value: float, threshold: float, multipliers: Iterable[Decimal]) -> AlertLevel | None:
    out = None
    for lvl, m in zip(LEVELS, multipliers):
        if value >= threshold * float(m):
            out = lvl
    return out


def p99(values: Iterable[float]) -> float:
    xs = sorted(values)
    if not xs:
        return 0.0
    idx = min(len(xs) - 1, max(0, int(round(0.99 * (len(xs) - 1)))))
    return xs[idx]


class MonitorSet:
    """All live monitors of one RiskGuard, with their rolling windows."""

    def __init__(self, cfg: Monitors) -> None:
        self.cfg = cfg
        self.latency: dict[str, deque[float]] = {}
        self.rejects: dict[str, deque[bool]] = {}

    def reconfigure(self, cfg: Monitors) -> None:
        self.cfg = cfg

    # -- individual monitors --------------------------------------------------------------
    def slippage(self, strategy: str, leg: LegSummary) -> Condition | None:
        s = leg.adverse_slippage()
        if s is None:
            return None
        thr = float(self.cfg.slippage_pct)
        lvl = level_for(s, thr, self.cfg.level_multipliers)
        return Condition("slippage", "strategy", strategy, lvl, s, thr,
                         f"{leg.instrument} leg {leg.leg} slippage {s * 100:.3f}% vs trigger {leg.trigger_price} "
                         f"(avg {leg.avg_price}); threshold {thr * 100:.3f}%")

    def ack_latency(self, venue: str, samples_ms: Iterable[float]) -> Condition | None:
        w = self.latency.get(venue)
        if w is None:
            w = self.latency[venue] = deque(maxlen=self.cfg.latency_window)
        added = False
        for x in samples_ms:
            w.append(float(x))
            added = True
        if not added or len(w) < self.cfg.latency_min_samples:
            return None
        v = p99(w)
        thr = float(self.cfg.ack_latency_p99_ms)
        return Condition("ack_latency", "venue", venue, level_for(v, thr, self.cfg.level_multipliers), v, thr,
                         f"{venue} ack latency p99 {v:.1f} ms over {len(w)} acks; threshold {thr:.1f} ms")

    def reject_ratio(self, scope: str, key: str, orders: int, rejects: int) -> Condition | None:
        k = f"{scope}:{key}"
        w = self.rejects.get(k)
        if w is None:
            w = self.rejects[k] = deque(maxlen=self.cfg.reject_window)
        if orders <= 0:
            return None
        rejects = min(rejects, orders)
        w.extend([True] * rejects + [False] * (orders - rejects))
        if len(w) < self.cfg.reject_min_orders:
            return None
        v = sum(w) / len(w)
        thr = float(self.cfg.reject_ratio)
        return Condition("reject_ratio", scope, key, level_for(v, thr, self.cfg.level_multipliers), v, thr,
                         f"{scope} {key} reject ratio {v * 100:.2f}% over the last {len(w)} orders; threshold {thr * 100:.2f}%")

    def unhedged(self, s: PairSummary) -> Condition:
        thr = float(self.cfg.unhedged_exposure_ms)
        if s.state == "ESCALATED":
            return Condition("unhedged", "strategy", s.strategy, AlertLevel.RED, s.unhedged_ms, thr,
                             f"pair {s.decision_id} ESCALATED with an unhedged residual after {s.unhedged_ms:.0f} ms")
        lvl = level_for(s.unhedged_ms, thr, self.cfg.level_multipliers)
        return Condition("unhedged", "strategy", s.strategy, lvl, s.unhedged_ms, thr,
                         f"pair {s.decision_id} ({s.state}) was unhedged for {s.unhedged_ms:.0f} ms; threshold {thr:.0f} ms")

    # -- a whole summary ------------------------------------------------------------------
    def on_pair_done(self, s: PairSummary) -> list[Condition]:
        out: list[Condition] = []
        worst_slip: Condition | None = None
        strat_orders = strat_rejects = 0
        by_venue: dict[str, list[int]] = {}
        for leg in s.legs:
            c = self.slippage(s.strategy, leg)
            if c is not None and (worst_slip is None or c.value > worst_slip.value):
                worst_slip = c
            if leg.ack_latencies_ms:
                lc = self.ack_latency(leg.venue, leg.ack_latencies_ms)
                if lc is not None:
                    out.append(lc)
            v = by_venue.setdefault(leg.venue, [0, 0])
            v[0] += leg.orders
            v[1] += leg.rejects
            strat_orders += leg.orders
            strat_rejects += leg.rejects
        if worst_slip is not None:
            out.append(worst_slip)
        for venue, (n, r) in by_venue.items():
            c = self.reject_ratio("venue", venue, n, r)
            if c is not None:
                out.append(c)
        c = self.reject_ratio("strategy", s.strategy, strat_orders, strat_rejects)
        if c is not None:
            out.append(c)
        if s.state != "REFUSED":
            out.append(self.unhedged(s))
        return out

    def on_gateway_status(self, venue: str, status: dict[str, Any]) -> list[Condition]:
        out: list[Condition] = []
        state = str(status.get("state", "UP")).upper()
        out.append(Condition("venue_state", "venue", venue, AlertLevel.ORANGE if state != "UP" else None,
                             0.0 if state == "UP" else 1.0, 1.0, f"gateway {venue} is {state}"))
        lat = status.get("ack_latencies_ms")
        if isinstance(lat, (list, tuple)) and lat:
            c = self.ack_latency(venue, [float(x) for x in lat])
            if c is not None:
                out.append(c)
        return out
