"""The execution figures of a backtest run, and their ratios to the sequential baseline.

Definitions (``docs/lab.md`` has them with examples):

* **opportunities**: moments the trigger held after costs: runs of consecutive evaluations in
  which a strategy wanted the same move (the same direction and target position; a run ends
  when the target is reached, changes, or the trigger no longer holds); each with the **edge**
  the trigger saw (its signal at the executable prices beyond its centre, bps) and the leg-A
  lots the move wanted;
* **pairs attempted**: intents the pair book accepted (``refused`` are counted apart);
* **synchronous fill rate**: share of attempted pairs whose legs were both filled in full
  (their entry targets) within ``lab.sync_window_ms`` of the pair's first order leaving;
* **success rate**: share that ended HEDGED at their targets with nothing rolled back;
  **failure rate**: share that ended ROLLED_BACK, ESCALATED, or HEDGED only after unwinding
  part of a leg (pairs still in flight at the end of the run are neither);
* **slippage**: per leg, the adverse difference between its entry fills' average price and its
  trigger price, bps of the trigger price; per pair, the sum of its two legs' (what the traded
  spread or ratio lost against the one that triggered);
* **legging exposure**: unhedged notional x time, base currency x seconds: leg B lots not
  matched by leg A's fills at the pair's hedge ratio, valued at leg B's trigger price, from the
  venues' own fill times (market risk starts when a venue fills, not when we hear of it) to the
  pair's end;
* **opportunity capture**: edge realised / edge available, both in bps x leg-A lots: the sum
  over pairs that ended HEDGED of (edge at their trigger - pair slippage) x leg-A lots they
  kept, over the sum of the opportunities' edges x lots wanted (an opportunity no pair was sent
  for, or one refused, adds to the denominator only; a fill better than its trigger can take a
  pair above its edge);
* **replenishments** and their **cost** (what the replenish orders' fills paid against their
  legs' trigger prices), **rollbacks** (pairs with any unwind) and their **cost** (what the
  unwinds lost against the entries they undid), base currency, + a loss;
* **exception detection**: from the venue's time of a pair's first exception (reject, expiry,
  IOC remainder) to the pair book acting on it (leaving WORKING); **rollback time**: from
  entering ROLLING_BACK to the pair ending;
* **time to hedge**: from the first order leaving to the later leg's entry filled in full;
* **P&L after fees**: every fill of the run at its price, marked at the last mid seen, in the
  base currency at the FX of the end of the run, less fees.
"""
from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Iterable

from ..core.stats import percentile
from ..ledger.figures import Dist
from ..model.pairs import PairState
from .engine import LabRun

#: figures compared with the sequential baseline (``*_vs_sequential_ratio``)
RATIO_FIGURES = ("opportunities", "pairs_attempted", "sync_fill_rate", "success_rate", "failure_rate",
                 "slippage_pair_bps_mean", "slippage_pair_bps_p95", "legging_exposure_base_s",
                 "opportunity_capture", "replenishments", "replenish_cost_base", "rollbacks", "rollback_cost_base",
                 "time_to_hedge_ms_p50", "time_to_hedge_ms_p95", "pnl_after_fees_base")


def _pct(values: list[float], q: float) -> float:
    v = sorted(x for x in values if not math.isnan(x))
    return percentile(v, q) if v else 0.0


def _mean(values: list[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return sum(v) / len(v) if v else 0.0


def run_figures(run: LabRun) -> dict[str, Any]:
    """``{"figures": {name: number}, "distributions": {name: [values]}}`` of one run."""
    window_ns = int(run.lab.sync_window_ms * 1_000_000)
    attempted = sync = success = failure = rolled = escalated = in_flight = replen = rollbacks = 0
    slip_a: list[float] = []
    slip_b: list[float] = []
    slip_pair: list[float] = []
    exposure: list[float] = []
    detect: list[float] = []
    rb_time: list[float] = []
    to_hedge: list[float] = []
    realised = 0.0
    rb_cost = 0.0
    fees = 0.0
    refused = 0
    by_pair_exposure = legging_exposure(run)
    for rec in run.records.values():
        s = rec.summary
        if s is None:
            in_flight += 1
            attempted += 1
            continue
        state = s.pair_state
        if state is PairState.REFUSED:
            refused += 1
            continue
        attempted += 1
        fees += rec.fees_base
        exposure.append(by_pair_exposure.get(rec.decision_id, 0.0))
        la, lb = s.leg("A"), s.leg("B")
        unwound = any(lg.rollback_qty for lg in s.legs)
        replen += sum(lg.replenishes for lg in s.legs)
        if unwound:
            rollbacks += 1
            rb_cost += _rollback_cost(run, s)
        complete = state is PairState.HEDGED and s.complete and not unwound
        if complete:
            success += 1
        elif state in (PairState.ROLLED_BACK, PairState.ESCALATED) or (state is PairState.HEDGED and unwound):
            failure += 1
        rolled += state is PairState.ROLLED_BACK
        escalated += state is PairState.ESCALATED
        if {"A", "B"} <= set(rec.leg_done_ns) and rec.first_sent_ns is not None:
            t = max(rec.leg_done_ns.values()) - rec.first_sent_ns
            to_hedge.append(t / 1e6)
            if t <= window_ns:
                sync += 1
        bps = []
        for lg, sink in ((la, slip_a), (lb, slip_b)):
            x = lg.adverse_slippage() if lg is not None else None
            if x is not None:
                sink.append(x * 1e4)
                bps.append(x * 1e4)
        if len(bps) == 2:
            slip_pair.append(bps[0] + bps[1])
        if state is PairState.HEDGED and rec.edge_bps is not None and la is not None and la.target_qty:
            realised += (rec.edge_bps - (bps[0] + bps[1] if len(bps) == 2 else 0.0)) * abs(la.net_lots)
        if rec.exception_venue_ns is not None and rec.exception_seen_ns is not None:
            detect.append(max(rec.exception_seen_ns - rec.exception_venue_ns, 0) / 1e6)
        if rec.rollback_start_ns is not None and rec.ended_ns is not None:
            rb_time.append((rec.ended_ns - rec.rollback_start_ns) / 1e6)
    available = sum(o.edge_bps * o.lots for o in run.opportunities if o.edge_bps is not None)
    replen_cost = _replenish_cost(run)
    pnl, pnl_by_strategy = _pnl(run)

    def rate(n: int) -> float:
        return n / attempted if attempted else 0.0

    fig: dict[str, Any] = {
        "quotes": run.counters["quotes"],
        "simulated_s": ((run.last_ns or 0) - (run.first_ns or 0)) / 1e9,
        "opportunities": len(run.opportunities),
        "edge_available_bps_lots": available,
        "pairs_attempted": attempted,
        "pairs_refused": refused,
        "pairs_in_flight_at_end": in_flight,
        "pairs_hedged": success,
        "pairs_rolled_back": rolled,
        "pairs_escalated": escalated,
        "sync_fill_rate": rate(sync),
        "success_rate": rate(success),
        "failure_rate": rate(failure),
        "slippage_leg_a_bps_mean": _mean(slip_a),
        "slippage_leg_b_bps_mean": _mean(slip_b),
        "slippage_pair_bps_mean": _mean(slip_pair),
        "slippage_pair_bps_p50": _pct(slip_pair, 0.5),
        "slippage_pair_bps_p95": _pct(slip_pair, 0.95),
        "legging_exposure_base_s": sum(exposure),
        "legging_exposure_per_pair_base_s": _mean(exposure),
        "opportunity_capture": realised / available if available > 0 else 0.0,
        "edge_realised_bps_lots": realised,
        "replenishments": replen,
        "replenish_cost_base": replen_cost,
        "rollbacks": rollbacks,
        "rollback_cost_base": rb_cost,
        "exception_detection_ms_p50": _pct(detect, 0.5),
        "exception_detection_ms_p95": _pct(detect, 0.95),
        "rollback_time_ms_p50": _pct(rb_time, 0.5),
        "rollback_time_ms_p95": _pct(rb_time, 0.95),
        "time_to_hedge_ms_p50": _pct(to_hedge, 0.5),
        "time_to_hedge_ms_p95": _pct(to_hedge, 0.95),
        "orders": run.counters["orders"],
        "fees_base": fees,
        "pnl_after_fees_base": pnl,
    }
    dists = {"slippage_pair_bps": slip_pair, "slippage_leg_a_bps": slip_a, "slippage_leg_b_bps": slip_b,
             "time_to_hedge_ms": to_hedge, "legging_exposure_base_s": exposure,
             "exception_detection_ms": detect, "rollback_time_ms": rb_time}
    return {"figures": fig, "distributions": dists, "pnl_by_strategy": pnl_by_strategy}


def legging_exposure(run: LabRun) -> dict[str, float]:
    """Per decision, unhedged notional x time (base currency x seconds), from the venues' own
    fill times: leg-B lots not matched by leg A's fills at the pair's hedge ratio, valued at leg
    B's trigger price, from the pair's first fill to its end. A fill is market risk from the
    moment the venue made it, whenever the coordinator hears of it."""
    fills: dict[str, list[Any]] = {}
    for f in run.fills:
        fills.setdefault(f.decision_id, []).append(f)
    out: dict[str, float] = {}
    for did, fs in fills.items():
        rec = run.records.get(did)
        if rec is None or rec.summary is None:
            continue
        legs = {lg.leg: lg for lg in rec.intent.legs}
        b = legs.get("B")
        if b is None or "A" not in legs:
            continue
        inst_b = run.instruments[b.instrument]
        per_lot = float(inst_b.notional(b.trigger_price or b.limit_price, 1)) * run._fx(inst_b.currency)
        ratio = rec.intent.hedge_ratio
        net = {"A": Decimal(0), "B": Decimal(0)}
        total, last_t, u = 0.0, None, Decimal(0)
        for f in sorted(fs, key=lambda x: (x.venue_ts_ns, x.leg)):
            if last_t is not None:
                total += float(u) * per_lot * (f.venue_ts_ns - last_t) / 1e9
            own = legs[f.leg].side if f.leg in legs else f.side
            net[f.leg] = net.get(f.leg, Decimal(0)) + (f.qty if f.side is own else -f.qty)
            u = abs(net["A"] * ratio - net["B"])
            last_t = f.venue_ts_ns
        end = rec.ended_ns
        if last_t is not None and end is not None and end > last_t:
            total += float(u) * per_lot * (end - last_t) / 1e9
        out[did] = total
    return out


def _replenish_cost(run: LabRun) -> float:
    """What the replenish orders' fills (补单, chased prices) cost against their legs' trigger
    prices (base currency; + a loss)."""
    cost = 0.0
    for f in run.fills:
        if f.kind != "replenish":
            continue
        rec = run.records.get(f.decision_id)
        leg = next((lg for lg in rec.intent.legs if lg.leg == f.leg), None) if rec is not None else None
        ref = leg.trigger_price or leg.limit_price if leg is not None else None
        if ref is None:
            continue
        inst = run.instruments[f.instrument]
        cost += float(inst.notional((f.price - ref) * f.side.sign, f.qty)) * run._fx(inst.currency)
    return cost


def _rollback_cost(run: LabRun, s: Any) -> float:
    """What the unwinds lost against the entries they undid (base currency; + is a loss)."""
    cost = 0.0
    for lg in s.legs:
        if not lg.rollback_qty or lg.avg_price is None or lg.rollback_avg_price is None:
            continue
        inst = run.instruments[lg.instrument]
        per = (lg.avg_price - lg.rollback_avg_price) * lg.side.sign  # bought at avg, sold back lower: +
        cost += float(inst.notional(per, lg.rollback_qty)) * run._fx(inst.currency)
    return cost


def _pnl(run: LabRun) -> tuple[float, dict[str, float]]:
    """Every fill at its price, marked at the last mid, base currency, less fees."""
    pos: dict[tuple[str, str], int] = {}
    cash: dict[tuple[str, str], Decimal] = {}
    fees: dict[str, float] = {}
    for f in run.fills:
        k = (f.strategy, f.instrument)
        inst = run.instruments[f.instrument]
        pos[k] = pos.get(k, 0) + f.side.sign * f.qty
        cash[k] = cash.get(k, Decimal(0)) - f.side.sign * inst.notional(f.price, f.qty)
        fees[f.strategy] = fees.get(f.strategy, 0.0) + float(f.fee) * run._fx(inst.currency)
    by: dict[str, float] = {}
    for (strategy, iid), lots in pos.items():
        inst = run.instruments[iid]
        last = run.latest.get(iid)
        mark = last.mid if last is not None else None
        value = cash[(strategy, iid)] + (inst.notional(mark, lots) if (lots and mark is not None) else Decimal(0))
        by[strategy] = by.get(strategy, 0.0) + float(value) * run._fx(inst.currency)
    for strategy, fee in fees.items():
        by[strategy] = by.get(strategy, 0.0) - fee
    return sum(by.values()), dict(sorted(by.items()))


def compare(results: dict[str, dict[str, Any]], baseline: str = "sequential") -> dict[str, float]:
    """``{policy}_{figure}_vs_{baseline}_ratio`` for every policy but the baseline (NaN-free:
    a figure whose baseline is 0 gets no ratio)."""
    base = results.get(baseline)
    out: dict[str, float] = {}
    if base is None:
        return out
    for policy, res in results.items():
        if policy == baseline:
            continue
        for name in RATIO_FIGURES:
            b, v = base["figures"].get(name), res["figures"].get(name)
            if isinstance(b, (int, float)) and isinstance(v, (int, float)) and b:
                out[f"{policy}_{name}_vs_{baseline}_ratio"] = v / b
    return out


def dist_of(values: Iterable[float]) -> Dist:
    return Dist.of(values)
