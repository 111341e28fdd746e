"""The stress test (压测): a deployment driven with generated load and extreme markets for a set
time, and what held.

:func:`run_stress` takes a deployment file with a ``stress:`` section (``model/stages.py``
:class:`~xmc_actors.model.stages.StressConfig`), runs it on simulated venues (each keeps its
journal under the run's work directory, so the venues' own record can be compared with the
trail, as the chaos suite does) and applies its scenarios at their times:

==================== =====================================================================
scenario             what is done
==================== =====================================================================
``gap_through_band`` the market of an instrument gaps beyond its daily price limit (its
                     settlement x (1 + pct) and more): orders at it are rejected
                     PRICE_OUT_OF_LIMIT, pairs replenish, unwind or escalate
``limit_locked``     the instrument's venue refuses every order on it LIMIT_LOCKED for the time
                     (as at a locked limit), while every strategy is made to fire
``venue_silent``     a venue stops answering orders (processed, answers lost: UNKNOWN, resolved
                     by query) for the time, while every strategy is made to fire
``quote_burst``      quotes pushed at ``factor`` x the usual rate on every instrument
``all_fire``         leg A of every strategy moves 1% at once, beyond every band: all fire together
==================== =====================================================================

What is reported: pairs per second (pairs ending HEDGED, ROLLED_BACK or ESCALATED over the run's
duration), latency percentiles (the strategy's decision to the coordinator's first order;
an order sent to its venue's first answer) against the floor of one plain Ray actor call
measured on the same machine at the same time, escalations, and **lost events**: durable
probe events the ledger acknowledged and does not hold, venue fills missing from the trail,
orders at a venue with no ``ORDER_SENT`` (the chaos suite's checks,
:func:`xmc_actors.ops.chaos.check_run`); then pass or fail against ``stress.thresholds``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

#: what counts as a lost event (each must be 0)
LOST_COLUMNS = ("acked_events_lost", "missing_fills", "orders_without_sent")
#: what else must be 0 after a stress run (the chaos suite's columns)
INTEGRITY_COLUMNS = ("non_terminal", "one_legged_not_escalated", "duplicate_order_ids", "unknown_fills",
                     "duplicate_fills")
SHORT_S = 12.0


@dataclasses.dataclass
class ScenarioResult:
    kind: str
    at_s: float
    target: str
    applied: bool
    note: str = ""


@dataclasses.dataclass
class StressReport:
    """What a stress run did and what held."""

    config: str
    duration_s: float
    wall_s: float
    pairs: int
    pairs_per_s: float
    by_outcome: dict[str, int]
    escalations: int
    latency: dict[str, dict[str, float]]
    floor: dict[str, float]
    lost: dict[str, int]
    integrity: dict[str, int]
    scenarios: list[ScenarioResult]
    quotes_pushed: int
    checks: list[dict[str, Any]]
    passed: bool
    ledger: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def lost_events(self) -> int:
        return sum(self.lost.values())

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lost_events"] = self.lost_events
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------- config
def stress_deployment(cfg: Any, workdir: Path, namespace: str) -> Any:
    """``cfg`` made fit for a stress run: every gateway simulated (anything else is refused, naming
    it), each venue's journal under ``workdir/venues``, the ledger at ``workdir/ledger``, its own
    namespace."""
    bad = [f"{g.actor_name} ({g.adapter})" for g in cfg.gateways if g.adapter != "sim"]
    if bad:
        raise ValueError(f"gateways: xmc stress drives simulated venues only (adapter: sim); not {', '.join(bad)}")
    if not cfg.strategies:
        raise ValueError("strategies: a stress run needs at least one strategy")
    state = workdir / "venues"
    state.mkdir(parents=True, exist_ok=True)
    gws = tuple(g.model_copy(update={"params": {**g.params, "state_dir": str(state), "keep_state": False}})
                for g in cfg.gateways)
    return cfg.model_copy(update={
        "gateways": gws,
        "ledger": cfg.ledger.model_copy(update={"path": str(workdir / "ledger")}),
        "ray": cfg.ray.model_copy(update={"namespace": namespace}),
    })


def scaled_scenarios(stress: Any, duration_s: float) -> list[Any]:
    """The scenarios of ``stress`` with their times and lengths scaled to ``duration_s`` (the
    short form runs the same story in less time)."""
    k = duration_s / stress.duration_s if stress.duration_s else 1.0
    if k >= 1.0:
        return list(stress.scenarios)
    return [s.model_copy(update={"at_s": s.at_s * k, "duration_s": max(s.duration_s * k, 0.5)})
            for s in stress.scenarios]


# ---------------------------------------------------------------------------------------------- market moves
def _moved(q: Any, inst: Any, factor: Decimal, *, bid_only: bool = False, settlement: Decimal | None = None) -> Any:
    """A copy of quote ``q`` stamped now, its prices times ``factor`` on the tick grid."""
    now = time.time_ns()
    bid = inst.round_price(q.bid * factor, "down") if q.bid is not None else None
    ask = None if bid_only else (inst.round_price(q.ask * factor, "up") if q.ask is not None else None)
    if bid is not None and ask is not None and ask <= bid:
        ask = bid + inst.tick_size
    upd: dict[str, Any] = {"bid": bid, "ask": ask, "bids": (), "asks": (), "ts_ns": now, "venue_ts_ns": now,
                           "recv_ts_ns": now, "seq": 0}
    if bid_only:
        upd["ask_size"] = 0
    if settlement is not None:
        upd["settlement"] = settlement
    return q.model_copy(update=upd)


class _Driver:
    """Applies the scenarios to a started deployment (from the driver process)."""

    def __init__(self, dep: Any, cfg: Any, seed: int, quote_interval_ms: float) -> None:
        self.dep, self.cfg = dep, cfg
        self.rng = random.Random(seed)
        self.instruments = {i.id: i for i in cfg.instruments}
        self.quote_interval_ms = quote_interval_ms
        self.pushed = 0
        self.batches = 0
        self._in_flight: list[Any] = []
        self.bursts: list[dict[str, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def gateway(self, venue: str) -> Any:
        return self.dep.gateways[venue]

    def snapshot(self, inst_id: str) -> Any:
        import ray

        return ray.get(self.gateway(inst_id.split(".", 1)[0]).snapshot.remote(inst_id), timeout=10)

    def push(self, quotes: list[Any], *, wait: bool = True) -> None:
        """Push ``quotes`` to their venues' gateways; without ``wait``, at most 16 pushes stay in
        flight (a burst is not held to one driver round trip per batch)."""
        import ray

        by: dict[str, list[Any]] = {}
        for q in quotes:
            by.setdefault(q.instrument.split(".", 1)[0], []).append(q)
        refs = [self.gateway(v).push_market.remote(qs) for v, qs in by.items()]
        with self._lock:
            self.pushed += len(quotes)
            self.batches += 1
            self._in_flight += refs
            if wait:
                pending, self._in_flight = self._in_flight, []
            else:
                pending = []
                if len(self._in_flight) > 16:
                    done, self._in_flight = ray.wait(self._in_flight, num_returns=len(self._in_flight) - 16,
                                                     timeout=20)
                    pending = done
        ray.get(pending, timeout=20)

    def inject(self, venue: str, fault: dict[str, Any]) -> None:
        import ray

        ray.get(self.gateway(venue).inject.remote(fault), timeout=20)

    def later(self, seconds: float, fn: Callable[[], None]) -> None:
        def run() -> None:
            if not self._stop.wait(seconds):
                try:
                    fn()
                except Exception:  # noqa: BLE001 - the deployment may be stopping
                    pass
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self._threads.append(t)

    def repeat(self, seconds: float, every_s: float, fn: Callable[[], None]) -> None:
        def run() -> None:  # paced on a schedule, not a pause after each call: the rate asked for
            start = time.monotonic()
            end, k = start + seconds, 0
            while time.monotonic() < end and not self._stop.is_set():
                try:
                    fn()
                except Exception:  # noqa: BLE001 - the deployment may be stopping
                    return
                k += 1
                self._stop.wait(max(0.0, start + k * every_s - time.monotonic()))
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)

    # -- the scenarios
    def leg_a_instruments(self) -> list[str]:
        return sorted({s.legs[0].instrument for s in self.cfg.strategies})

    def apply(self, sc: Any) -> ScenarioResult:
        inst_id = sc.instrument or self.leg_a_instruments()[0]
        venue = sc.venue or inst_id.split(".", 1)[0]
        try:
            if sc.kind == "gap_through_band":
                q, inst = self.snapshot(inst_id), self.instruments[inst_id]
                if q is None or q.bid is None:
                    return ScenarioResult(sc.kind, sc.at_s, inst_id, False, "no quote to gap from")
                ref = q.settlement or q.mid
                pct = Decimal(str(inst.price_limit.pct or 0.05))
                factor = (ref * (1 + pct + Decimal("0.01"))) / q.bid
                self.repeat(sc.duration_s, 0.1, lambda: self.push([_moved(q, inst, factor, settlement=ref)]))
                return ScenarioResult(sc.kind, sc.at_s, inst_id, True, f"market moved x{float(factor):.4f}, "
                                      f"beyond the {float(pct):.1%} band around {ref}")
            if sc.kind == "limit_locked":
                # the venue refuses every order on the instrument as a market locked at its limit
                # does (a one-sided book would also stop every strategy deciding: no parity), and
                # the strategies are made to fire into it
                self.inject(venue, {"kind": "reject_next", "reason": "LIMIT_LOCKED", "instrument": inst_id,
                                    "count": 100_000})
                self.later(sc.duration_s, lambda: self.inject(venue, {"kind": "clear"}))
                n = self.fire()
                return ScenarioResult(sc.kind, sc.at_s, inst_id, True, f"orders on {inst_id} refused LIMIT_LOCKED for "
                                      f"{sc.duration_s:.1f} s; leg A of {n} instrument(s) moved to fire the strategies")
            if sc.kind == "venue_silent":
                self.inject(venue, {"kind": "no_ack_next", "count": 100_000})
                self.later(sc.duration_s, lambda: self.inject(venue, {"kind": "clear"}))
                n = self.fire()
                return ScenarioResult(sc.kind, sc.at_s, venue, True, f"no answers for {sc.duration_s:.1f} s (orders "
                                      f"processed, answers lost); leg A of {n} instrument(s) moved to fire the strategies")
            if sc.kind == "quote_burst":
                insts = sorted(self.instruments_traded())
                base = {i: self.snapshot(i) for i in insts}
                every = self.quote_interval_ms / 1000.0 / sc.factor

                stats = {"target_batches_per_s": 1 / every, "batches": 0, "seconds": sc.duration_s}
                self.bursts.append(stats)

                def burst() -> None:
                    qs = []
                    for i, q in base.items():
                        if q is not None and q.bid is not None:
                            inst = self.instruments[i]
                            step = Decimal(1) + Decimal(self.rng.choice((-1, 0, 1))) * inst.tick_size / q.bid
                            qs.append(_moved(q, inst, step))
                    if qs:
                        self.push(qs, wait=False)
                        stats["batches"] += 1
                self.repeat(sc.duration_s, every, burst)
                return ScenarioResult(sc.kind, sc.at_s, ",".join(insts), True,
                                      f"{sc.factor:g}x the usual rate ({1 / every:.0f} batches/s) for {sc.duration_s:.1f} s")
            if sc.kind == "all_fire":
                self.fire()
                n = len(self.cfg.strategies)
                return ScenarioResult(sc.kind, sc.at_s, ",".join(self.leg_a_instruments()), True,
                                      f"leg A of {n} strateg{'y' if n == 1 else 'ies'} moved 1% at once")
        except Exception as e:  # noqa: BLE001 - reported, the run goes on
            return ScenarioResult(sc.kind, sc.at_s, inst_id, False, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        return ScenarioResult(sc.kind, sc.at_s, inst_id, False, "unknown scenario")

    def fire(self) -> int:
        """Move leg A of every strategy 1% at once (up, then down the next time): every band
        strategy triggers together. Returns how many instruments moved."""
        self._fires = getattr(self, "_fires", 0) + 1
        factor = Decimal("1.01") if self._fires % 2 else Decimal("0.99")
        qs = []
        for i in self.leg_a_instruments():
            q = self.snapshot(i)
            if q is not None and q.bid is not None:
                qs.append(_moved(q, self.instruments[i], factor))
        self.push(qs)
        return len(qs)

    def instruments_traded(self) -> set[str]:
        return {leg.instrument for s in self.cfg.strategies for leg in s.legs}


# ---------------------------------------------------------------------------------------------- floor
def measure_floor(samples: int = 200) -> dict[str, float]:
    """One plain Ray actor call's round trip on this machine now (ms): the floor the hops of the
    critical path are compared with."""
    import ray

    from ..core.stats import percentile

    @ray.remote(num_cpus=0)
    class _Floor:
        def ping(self) -> None:
            return None

    a = _Floor.remote()
    try:
        ray.get(a.ping.remote(), timeout=60)
        out = []
        for _ in range(samples):
            t = time.perf_counter_ns()
            ray.get(a.ping.remote(), timeout=10)
            out.append((time.perf_counter_ns() - t) / 1e6)
    finally:
        ray.kill(a)
    out.sort()
    return {"actor_call_ms_p50": percentile(out, 0.5), "actor_call_ms_p99": percentile(out, 0.99), "n": len(out)}


# ---------------------------------------------------------------------------------------------- figures
def trail_latencies(ledger_dir: str | Path, since_ns: int | None = None) -> dict[str, dict[str, float]]:
    """Per-hop latencies of a run from its trail (ms): ``decision_to_sent`` (a decision's SIGNAL
    to its pair's first ORDER_SENT) and ``order_ack`` (an ORDER_SENT to its order's first
    ORDER_REPORT), as ``{p50, p95, p99, max, n}``."""
    from ..core.stats import percentile
    from ..ledger.audit import AuditReader

    since = f"AND ts_ns >= {int(since_ns)}" if since_ns is not None else ""
    with AuditReader(ledger_dir) as r:
        d2s = [x for (x,) in r.con.execute(
            "SELECT (o.t - s.t) / 1e6 FROM (SELECT decision_id, min(ts_ns) AS t FROM events WHERE kind = 'SIGNAL' "
            f"AND decision_id != '' {since} GROUP BY 1) s JOIN (SELECT decision_id, min(ts_ns) AS t FROM events "
            f"WHERE kind = 'ORDER_SENT' {since} GROUP BY 1) o USING (decision_id)").fetchall()]
        ack = [x for (x,) in r.con.execute(
            "SELECT (a.t - s.t) / 1e6 FROM (SELECT order_id, min(ts_ns) AS t FROM events WHERE kind = 'ORDER_SENT' "
            f"AND order_id != '' {since} GROUP BY 1) s JOIN (SELECT order_id, min(ts_ns) AS t FROM events "
            f"WHERE kind = 'ORDER_REPORT' AND order_id != '' {since} GROUP BY 1) a USING (order_id)").fetchall()]

    def dist(v: list[float]) -> dict[str, float]:
        v = sorted(x for x in v if x is not None and x >= 0)
        if not v:
            return {"n": 0}
        return {"p50": percentile(v, 0.5), "p95": percentile(v, 0.95), "p99": percentile(v, 0.99), "max": v[-1],
                "n": len(v)}
    return {"decision_to_sent_ms": dist(d2s), "order_ack_ms": dist(ack)}


def judge(thresholds: Any, *, pairs_per_s: float, latency: dict[str, dict[str, float]], escalations: int,
          lost_events: int) -> list[dict[str, Any]]:
    """Each threshold the file sets against its figure (lost events always)."""
    rows: list[tuple[str, float | None, float | None, str]] = [
        ("min_pairs_per_s", thresholds.min_pairs_per_s, pairs_per_s, "min"),
        ("max_decision_to_sent_p99_ms", thresholds.max_decision_to_sent_p99_ms,
         latency.get("decision_to_sent_ms", {}).get("p99"), "max"),
        ("max_ack_p99_ms", thresholds.max_ack_p99_ms, latency.get("order_ack_ms", {}).get("p99"), "max"),
        ("max_escalations", thresholds.max_escalations, escalations, "max"),
        ("max_lost_events", thresholds.max_lost_events, lost_events, "max"),
    ]
    out = []
    for name, limit, value, kind in rows:
        if limit is None:
            continue
        met = value is not None and (value >= limit if kind == "min" else value <= limit)
        out.append({"bound": name, "limit": limit, "value": value, "met": met})
    return out


# ---------------------------------------------------------------------------------------------- the run
def run_stress(cfg: Any, workdir: str | Path, *, duration_s: float | None = None, short: bool = False,
               seed: int | None = None, config_name: str = "", echo: Callable[[str], None] | None = None) -> StressReport:
    """One stress run of deployment ``cfg`` (a :class:`DeploymentConfig`); see the module docstring.
    ``short``: at most :data:`SHORT_S` seconds, the scenarios' times scaled to fit (CI)."""
    import ray

    from ..ledger.figures import ledger_figures
    from ..ledger.audit import AuditReader
    from ..runtime.deploy import Deployment
    from .chaos import _Probe, check_run

    say = echo or (lambda s: None)
    stress = cfg.stress
    dur = float(duration_s or stress.duration_s)
    if short:
        dur = min(dur, SHORT_S)
    scenarios = sorted(scaled_scenarios(stress, dur), key=lambda s: s.at_s)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    ns = f"xmc-stress-{os.getpid()}-{int(time.time())}"
    run_cfg = stress_deployment(cfg, work, ns)
    dep = Deployment(run_cfg)
    t0 = time.monotonic()
    dep.start()
    phases = {"start_s": time.monotonic() - t0}
    start_ns = time.time_ns()
    results: list[ScenarioResult] = []
    driver = _Driver(dep, run_cfg, stress.seed if seed is None else seed, stress.quote_interval_ms)
    box: dict[str, Any] = {}
    try:
        floor = measure_floor()
        say(f"stress {config_name or cfg.name}: {dur:.0f} s, {len(scenarios)} scenario(s), "
            f"{len(cfg.strategies)} strategies; floor of one actor call p50 {floor['actor_call_ms_p50']:.2f} ms")
        probe = _Probe(ns, dep.ledger_cfg)
        probe.start()
        stop = threading.Event()

        def runner() -> None:
            try:
                box["summary"] = dep.run(duration_s=None, stop_event=stop)
            except BaseException as e:  # noqa: BLE001 - reported
                box["error"] = e

        th = threading.Thread(target=runner, daemon=True, name="stress-run")
        th.start()
        run_t0 = time.monotonic()
        for sc in scenarios:
            while time.monotonic() - run_t0 < sc.at_s and th.is_alive():
                time.sleep(0.05)
            r = driver.apply(sc)
            results.append(r)
            say(f"  {sc.at_s:6.1f}s {sc.kind:<17} {r.target:<20} {r.note if r.applied else 'NOT APPLIED: ' + r.note}")
        while th.is_alive() and time.monotonic() - run_t0 < dur:
            time.sleep(0.1)
        run_s = time.monotonic() - run_t0
        driver.stop()
        t_stop = time.monotonic()
        stop.set()
        th.join(300)
        probe.stop()
        phases["stop_s"] = time.monotonic() - t_stop
    finally:
        driver.stop()
        if ray.is_initialized():
            dep.shutdown_ray()
    t_check = time.monotonic()
    counts, details = check_run(work / "ledger", work / "venues", probe.acked)
    counts["acked_events_lost"] += probe.unacked  # a probe never acknowledged is one the ledger lost
    with AuditReader(work / "ledger") as r:
        fig = ledger_figures(r, start_ns, None)
    done = {k: v for k, v in fig.pairs_by_outcome.items() if k in ("HEDGED", "ROLLED_BACK", "ESCALATED")}
    pairs = sum(done.values())
    latency = trail_latencies(work / "ledger", start_ns)
    lost = {k: int(counts.get(k, 0)) for k in LOST_COLUMNS}
    integrity = {k: int(counts.get(k, 0)) for k in INTEGRITY_COLUMNS}
    pps = pairs / run_s if run_s > 0 else 0.0
    phases["check_s"] = time.monotonic() - t_check
    checks = judge(stress.thresholds, pairs_per_s=pps, latency=latency, escalations=fig.escalated,
                   lost_events=sum(lost.values()))
    vs_floor = {}
    for hop in ("decision_to_sent_ms", "order_ack_ms"):
        p50 = latency[hop].get("p50")
        if p50 is not None and floor["actor_call_ms_p50"]:
            vs_floor[f"{hop}_p50_vs_floor_ratio"] = p50 / floor["actor_call_ms_p50"]
    run_faults = list(getattr(box.get("summary"), "faults", []) or [])
    if "error" in box:
        run_faults.append(f"run raised {type(box['error']).__name__}: {box['error']}")
    passed = (all(c["met"] for c in checks) and not any(integrity.values()) and not run_faults
              and all(r.applied for r in results))
    return StressReport(
        config=config_name or cfg.name, duration_s=dur, wall_s=time.monotonic() - t0, pairs=pairs,
        pairs_per_s=pps, by_outcome=dict(fig.pairs_by_outcome), escalations=fig.escalated, latency=latency,
        floor={**floor, **vs_floor}, lost=lost, integrity=integrity, scenarios=results,
        quotes_pushed=driver.pushed, checks=checks, passed=passed, ledger=str(work / "ledger"),
        details={"phases_s": phases, "run_faults": run_faults, "bursts": [{**b, "achieved_batches_per_s": b["batches"] / b["seconds"]}
                                                      for b in driver.bursts], "acked_probes": len(probe.acked), "venue_fills": details.get("venue_fills"),
                 "reconcile": details.get("reconcile"), "one_legged": details.get("one_legged"),
                 "non_terminal": details.get("non_terminal")})


def report_text(rep: StressReport) -> str:
    """The report as an operator reads it."""
    ph = rep.details.get("phases_s") or {}
    lines = [f"stress {rep.config}: {'PASS' if rep.passed else 'FAIL'}  ({rep.duration_s:.0f} s, wall {rep.wall_s:.0f} s: "
             + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in ph.items()) + ")",
             f"  pairs                {rep.pairs:,}  ({rep.pairs_per_s:.2f}/s)  "
             + ", ".join(f"{k} {v}" for k, v in sorted(rep.by_outcome.items())),
             f"  escalations          {rep.escalations}",
             f"  lost events          {rep.lost_events}  (" + ", ".join(f"{k} {v}" for k, v in rep.lost.items()) + ")",
             "  integrity            " + ", ".join(f"{k} {v}" for k, v in rep.integrity.items()),
             f"  floor (actor call)   p50 {rep.floor.get('actor_call_ms_p50', 0):.2f} ms  "
             f"p99 {rep.floor.get('actor_call_ms_p99', 0):.2f} ms"]
    for hop, d in rep.latency.items():
        if d.get("n"):
            ratio = rep.floor.get(f"{hop}_p50_vs_floor_ratio")
            lines.append(f"  {hop:<20} p50 {d['p50']:.2f}  p95 {d['p95']:.2f}  p99 {d['p99']:.2f}  max {d['max']:.2f}"
                         f"  (n {d['n']:,}" + (f"; p50 {ratio:.1f}x the floor)" if ratio else ")"))
        else:
            lines.append(f"  {hop:<20} none")
    lines.append(f"  quotes pushed        {rep.quotes_pushed:,}")
    for b in rep.details.get("bursts") or []:
        lines.append(f"  quote burst          {b['achieved_batches_per_s']:.0f} batches/s pushed "
                     f"(asked {b['target_batches_per_s']:.0f}/s: each batch one quote per instrument)")
    for s in rep.scenarios:
        lines.append(f"  scenario {s.kind:<17} at {s.at_s:5.1f} s on {s.target}: "
                     + (s.note if s.applied else f"NOT APPLIED ({s.note})"))
    for c in rep.checks:
        v = c["value"]
        lines.append(f"  {'ok  ' if c['met'] else 'FAIL'} {c['bound']:<28} {('none' if v is None else f'{v:.4g}'):>10}"
                     f"  (limit {c['limit']:g})")
    for f in rep.details.get("run_faults") or []:
        lines.append(f"  FAIL run fault: {f}")
    return "\n".join(lines)


__all__ = ["LOST_COLUMNS", "INTEGRITY_COLUMNS", "ScenarioResult", "StressReport", "judge", "measure_floor",
           "report_text", "run_stress", "scaled_scenarios", "stress_deployment", "trail_latencies"]
