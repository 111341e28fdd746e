"""The chaos suite: kill every kind of actor at seeded moments while pairs are in flight, then
check the whole trail against the venues' own records.

One run (:func:`run_chaos`) starts a copper deployment (SHFE vs LME, synthetic feeds, venues
that reject and partially fill orders on purpose, each simulated venue keeping its journal in a
``state_dir`` so that its record outlives its gateway, as a real venue's does) on an embedded
Ray, trades, and meanwhile applies a seeded plan of faults:

==================== =====================================================================
fault                what is done
==================== =====================================================================
``kill_gateway``     SIGKILL of a gateway process (one per venue, or the group's one)
``kill_coordinator`` SIGKILL of the pair coordinator's process
``kill_risk_guard``  SIGKILL of the risk guard's process
``kill_ledger``      SIGKILL of a ledger shard's process
``kill_host``        SIGKILL of a strategy host's process
``venue_disconnect`` the venue drops its connection for a while (orders in flight: unknown)
``venue_stall``      the venue stops answering orders and delays fills for a while
==================== =====================================================================

A probe writer in the driver writes durable events throughout and keeps the ids the ledger
acknowledged. After the run has stopped (every pair finished, the ledger flushed), the checks
read the ledger and the venues' journals, never the trail's copy of what the venues said:

- pairs left non-terminal (must be 0);
- one-legged exposure not escalated: a pair whose legs, as the venue filled them, are not
  balanced within one lot and whose last state is not ESCALATED (0);
- duplicate client order ids at any venue (0);
- venue fills missing from the trail, fills in the trail the venue never made, fills stored
  twice (0 each: :func:`~xmc_actors.ledger.reconcile.reconcile_against_venues`);
- acknowledged events lost (0);
- the time each recovery took.

``scripts/chaos [--pairs N] [--seed S] [--layout group|per-venue|both]`` runs the long form;
``tests/chaos/`` runs a short one in ``scripts/test``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import signal
import sys
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

FAULT_KINDS = ("kill_gateway", "kill_coordinator", "kill_risk_guard", "kill_ledger", "kill_host",
               "venue_disconnect", "venue_stall")
LAYOUTS = ("group", "per-venue")
# orders_without_sent: an order a venue holds that the trail never recorded as sent (its
# decision's coordinator died before writing it, and nothing adopted it since): its pair is
# not known, so not wound down, and its lots are in no strategy's position
LOSS_COLUMNS = ("non_terminal", "one_legged_not_escalated", "duplicate_order_ids", "missing_fills",
                "unknown_fills", "duplicate_fills", "acked_events_lost", "durable_unacked", "orders_without_sent")


@dataclasses.dataclass(frozen=True)
class Fault:
    """One planned fault: ``kind`` at ``at_s`` seconds into the run, on ``target`` (an actor
    name, or a venue code for venue faults)."""

    kind: str
    at_s: float
    target: str


@dataclasses.dataclass
class FaultResult:
    fault: Fault
    applied: bool
    recovery_s: float | None  # until the actor answered again and had restored itself
    note: str = ""
    wall_ns: int = 0  # when it was applied


@dataclasses.dataclass
class ChaosReport:
    """What one chaos run did and what the checks found."""

    layout: str
    seed: int
    pairs: int
    by_outcome: dict[str, int]
    faults: list[FaultResult]
    counts: dict[str, int]
    details: dict[str, Any]
    wall_s: float
    ledger: str
    run_faults: list[str]

    @property
    def ok(self) -> bool:
        return not any(self.counts.get(k, 0) for k in LOSS_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ok"] = self.ok
        return d


# ---------------------------------------------------------------------------------------------- config
def chaos_config(workdir: Path, *, layout: str, seed: int, namespace: str, flush_ms: float | None = None) -> Path:
    """Write the chaos deployment (SHFE.cu vs LME.CA3M, synthetic feeds) and return its path.
    ``flush_ms``: the ledger writers' flush interval (the default's when None); a long one
    widens the window in which a killed actor takes unwritten events with it."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    state = workdir / "venues"
    state.mkdir(parents=True, exist_ok=True)

    def gw(venue: str, inst: str, start: float, s: int) -> dict[str, Any]:
        g: dict[str, Any] = {
            "venue": venue, "adapter": "sim",
            "params": {"seed": seed * 10 + s, "enforce_sessions": False, "state_dir": str(state),
                       "ack_latency": {"kind": "uniform", "mean_ms": 3, "jitter_ms": 2},
                       "faults": {"reject_prob": {"PRICE_OUT_OF_LIMIT": 0.05}, "partial_fill_prob": 0.2}},
            "feed": {"kind": "synthetic", "params": {"seed": seed * 10 + s + 100, "factor_seed": 42 + seed,
                                                     "instruments": [inst], "start_prices": [start],
                                                     "vol_bps": 5, "ticks_per_s": 40}},
        }
        if layout == "group":
            g["group"] = "copper"
        return g

    def band(name: str, entry: float) -> dict[str, Any]:
        return {"name": name, "class": "band",
                "legs": [{"instrument": "SHFE.cu", "account": "cn-main"}, {"instrument": "LME.CA3M", "account": "us-main"}],
                "params": {"signal": "ratio", "price": "executable", "center": 1.0, "entry": entry, "exit": entry / 4,
                           "clip": 5, "max_position": 20, "cooldown_ms": 50,
                           "guards": {"require_sessions_open": False, "stale_ms": 10_000}},
                # unwinds may go 60 ticks through the trigger (30 bps on LME; SHFE stays at the 50 bps
                # cap): the synthetic LME moves about 7 ticks (1 sd) in 100 ms, and with the default
                # 20 ticks (10 bps there) rollbacks escalated on market moves alone, halting
                # strategies until too few were left trading after the last fault. What the suite
                # measures is loss under kills, not the unwind policy (tested in tests/unit)
                "execution": {"mode": "speed", "replenish": {"max_attempts": 2, "max_chase_ticks": 3, "max_time_ms": 1500},
                              "rollback": {"max_slippage_ticks": 60}}}

    doc = {
        "name": f"chaos-{layout}",
        "include": [str(root / "configs" / "catalogue.yaml")],
        "base_currency": "USD",
        "fx": [{"base": "USD", "quote": "CNY", "source": "static", "rate": 7.1}],
        "accounts": [
            {"id": "cn-main", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 500_000_000},
            {"id": "us-main", "broker": "sim", "venues": ["LME"], "currency": "USD", "capital": 80_000_000},
        ],
        "gateways": [gw("SHFE", "SHFE.cu", 72000, 1), gw("LME", "LME.CA3M", 10140, 2)],
        # four strategies on one pair, two to a host (run_chaos): a host kill, or a strategy
        # halted by an escalation, leaves others trading
        "strategies": [band("cu-a", 0.0004), band("cu-b", 0.0005), band("cu-c", 0.0006), band("cu-d", 0.0007)],
        # the kills make acks slow and pairs unhedged for seconds on purpose: the latency and
        # exposure monitors would halt venues and strategies (right in production, and tested
        # elsewhere); the chaos suite measures what is lost, so they are set past what it causes
        "risk": {"default_limits": {"max_order_qty": 50, "collar_pct": 0.05}, "check_sessions": False,
                 "monitors": {"reject_ratio": 0.9, "reject_min_orders": 1000, "ack_latency_p99_ms": 5000,
                              "unhedged_exposure_ms": 30000}},
        "ledger": {"path": str(workdir / "ledger"), "shards": 2, "shard_by": "strategy",
                   **({"flush_ms": flush_ms} if flush_ms is not None else {})},
        "ray": {"namespace": namespace, "num_cpus": 2, "ready_timeout_s": 90},
    }
    path = workdir / f"chaos-{layout}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def plan_faults(seed: int, kinds: Iterable[str], *, duration_s: float, rounds: int, actors: dict[str, list[str]],
                venues: list[str], start_s: float = 4.0) -> list[Fault]:
    """A seeded plan: each kind ``rounds`` times, at random moments spread over the run (never two
    within 3 s, so each recovery is timed on its own), on a random target of that kind."""
    rng = random.Random(seed)
    chosen = [k for k in kinds for _ in range(rounds)]
    rng.shuffle(chosen)
    span = max(duration_s - start_s - 6.0, 3.0 * len(chosen))
    step = span / max(len(chosen), 1)
    out = []
    for i, kind in enumerate(chosen):
        at = start_s + i * step + rng.uniform(0, max(step - 3.0, 0.0))
        targets = venues if kind.startswith("venue_") else actors.get(kind, [])
        if targets:
            out.append(Fault(kind, round(at, 3), rng.choice(sorted(targets))))
    return out


# ---------------------------------------------------------------------------------------------- the run
class _Probe:
    """Durable events from the driver throughout the run; keeps the ids the ledger acknowledged."""

    def __init__(self, namespace: str, ledger_cfg: Any) -> None:
        from ..core.clock import SystemClock
        from ..core.sink import EventMaker
        from ..ledger.client import LedgerClient

        self.client = LedgerClient.named(ledger_cfg, namespace, actor="chaos-probe")
        self.maker = EventMaker(SystemClock(), "chaos-probe")
        self.acked: list[str] = []
        self.unacked = 0
        self._stop = threading.Event()
        self._pending: list[tuple[str, Any]] = []
        self._t = threading.Thread(target=self._run, daemon=True, name="chaos-probe")

    def start(self) -> None:
        self._t.start()

    def _run(self) -> None:
        from ..model.events import EventKind

        n = 0
        while not self._stop.is_set():
            # alternate the strategy key so that both shards get probes
            ev = self.maker.make(EventKind.LIFECYCLE, strategy=("cu-a", "cu-b", "cu-c", "cu-d")[n % 4],
                                 reason="chaos probe", seq=n)
            self._pending.append((ev.event_id, self.client.emit_durable(ev)))
            n += 1
            self._collect(block=False)
            self._stop.wait(0.05)

    def _collect(self, block: bool, wait_s: float = 60.0) -> None:
        """Move acknowledged probes to ``acked``; ``block``: wait for the rest, at most ``wait_s``
        in all, and count what is still unacknowledged then."""
        left = []
        end = time.monotonic() + wait_s
        for eid, ack in self._pending:
            if ack.done() or block:
                try:
                    ack.result(timeout=max(end - time.monotonic(), 0.0) if block else 0)
                    self.acked.append(eid)
                except Exception:  # noqa: BLE001 - not acknowledged: not promised
                    self.unacked += 1
            else:
                left.append((eid, ack))
        self._pending = left

    def stop(self) -> None:
        self._stop.set()
        self._t.join(10)
        self._collect(block=True)
        self.client.close(timeout=30)


def _pid(handle: Any) -> int:
    import ray

    return int(ray.get(handle.__ray_call__.remote(lambda self: os.getpid()), timeout=20))


def _recovered(kind: str, handle: Any, timeout_s: float) -> float | None:
    """Seconds until a killed actor answered again and had restored itself; None if it did not."""
    import ray

    t0 = time.monotonic()
    end = t0 + timeout_s
    while time.monotonic() < end:
        try:
            if kind == "kill_gateway":
                if ray.get(handle.rewire_done.remote(5.0), timeout=10) is not None:
                    return time.monotonic() - t0
            elif kind == "kill_host":
                st = ray.get(handle.status.remote(), timeout=10)
                if st.get("restarted") and set(st.get("restored", {})) >= set(st.get("strategies", {})):
                    return time.monotonic() - t0
            elif kind == "kill_coordinator":
                st = ray.get(handle.status.remote(), timeout=10)
                if st.get("recovered") is not None:
                    return time.monotonic() - t0
            elif kind == "kill_risk_guard":
                st = ray.get(handle.status.remote(), timeout=10)
                if not st.get("rebuilding") and st.get("last_rebuild") is not None:
                    return time.monotonic() - t0
            else:
                ray.get(handle.ready.remote(), timeout=10)
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001 - still restarting
            pass
        time.sleep(0.2)
    return None


def _apply(dep: Any, f: Fault, recovery_timeout_s: float) -> FaultResult:
    import ray

    now = time.time_ns()
    try:
        if f.kind.startswith("kill_"):
            h = dep.handles[f.target]
            os.kill(_pid(h), signal.SIGKILL)
            rec = _recovered(f.kind, h, recovery_timeout_s)
            return FaultResult(f, True, rec, "" if rec is not None else "not recovered in time", now)
        gw = dep.gateways[f.target]
        if f.kind == "venue_disconnect":
            ray.get(gw.inject.remote({"kind": "disconnect", "ms": 1500}), timeout=20)
        elif f.kind == "venue_stall":
            ray.get(gw.inject.remote({"kind": "no_ack_next", "count": 3}), timeout=20)
            ray.get(gw.inject.remote({"kind": "delay_fills", "ms": 800}), timeout=20)
        return FaultResult(f, True, None, "", now)
    except Exception as e:  # noqa: BLE001 - a fault that could not be applied is reported, not fatal
        return FaultResult(f, False, None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200])


def run_chaos(workdir: str | Path, *, layout: str = "group", seed: int = 1, pairs: int = 100,
              kinds: Iterable[str] = FAULT_KINDS, rounds: int = 1, max_s: float = 240.0, min_s: float = 30.0,
              recovery_timeout_s: float = 90.0, echo: Any = None, flush_ms: float | None = None) -> ChaosReport:
    """One chaos run; see the module docstring. Stops once ``pairs`` pairs have finished and
    every planned fault was applied (at least ``min_s``, at most ``max_s`` seconds)."""
    import ray

    from ..runtime.config import load_config
    from ..runtime.deploy import Deployment

    say = echo or (lambda s: None)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    ns = f"xmc-chaos-{layout}-{seed}-{os.getpid()}"
    cfg = load_config(chaos_config(work, layout=layout, seed=seed, namespace=ns, flush_ms=flush_ms))
    dep = Deployment(cfg, strategies_per_host=2)
    t0 = time.monotonic()
    dep.start()
    held: dict[str, str] = {}
    try:
        actors = {
            "kill_gateway": sorted({g.process_name for g in cfg.gateways}),
            "kill_coordinator": ["coordinator"], "kill_risk_guard": ["risk-guard"],
            "kill_ledger": [n for n in dep.handles if n.startswith("ledger-")],
            "kill_host": sorted(dep.hosts),
        }
        duration = max(min_s, min(max_s, 6.0 * len(list(kinds)) * rounds + 10.0))
        plan = plan_faults(seed, kinds, duration_s=duration, rounds=rounds, actors=actors,
                           venues=sorted(dep.gateways))
        say(f"chaos {layout} seed {seed}: {len(plan)} faults over about {duration:.0f} s, target {pairs} pairs")
        probe = _Probe(ns, dep.ledger_cfg)
        probe.start()
        stop = threading.Event()
        box: dict[str, Any] = {}

        def runner() -> None:
            try:
                box["summary"] = dep.run(duration_s=None, stop_event=stop)
            except BaseException as e:  # noqa: BLE001 - reported by the checks
                box["error"] = e

        th = threading.Thread(target=runner, daemon=True, name="chaos-run")
        th.start()
        results: list[FaultResult] = []
        run_t0 = time.monotonic()
        for f in plan:
            while time.monotonic() - run_t0 < f.at_s and th.is_alive():
                time.sleep(0.05)
            r = _apply(dep, f, recovery_timeout_s)
            results.append(r)
            say(f"  {f.at_s:6.1f}s {f.kind:<17} {f.target:<16} "
                + ("recovered in %.1f s" % r.recovery_s if r.recovery_s is not None else (r.note or "applied")))
        # then trade on: until the target is met, and at least a few pairs finished after the
        # last fault (a deployment that only stopped safely would finish none)
        base, t_last = _finished_pairs(dep), time.monotonic()
        while th.is_alive() and time.monotonic() - run_t0 < max_s:
            done = _finished_pairs(dep)
            if done >= pairs and time.monotonic() - run_t0 >= min_s and done >= base + 3 \
                    and time.monotonic() - t_last >= 5.0:
                break
            time.sleep(1.0)
        held = _held_states(dep)  # what the risk guard still holds, before the stop changes anything
        stop.set()
        th.join(300)
        probe.stop()
        summary = box.get("summary")
        run_faults = list(getattr(summary, "faults", []) or [])
        if "error" in box:
            run_faults.append(f"run raised {type(box['error']).__name__}: {box['error']}")
    finally:
        dep.shutdown_ray() if ray.is_initialized() else None
    last_fault_ns = max((r.wall_ns for r in results if r.applied), default=0)
    counts, details = check_run(work / "ledger", work / "venues", probe.acked, after_ns=last_fault_ns)
    details["held_at_end"] = held
    # durable writes the ledger never acknowledged, even after the run settled: a shard that
    # took batches and never committed them (every event of its strategies lost) shows here
    counts["durable_unacked"] = probe.unacked
    return ChaosReport(layout=layout, seed=seed, pairs=details["pairs"], by_outcome=details["by_outcome"],
                       faults=results, counts=counts, details=details, wall_s=time.monotonic() - t0,
                       ledger=str(work / "ledger"), run_faults=run_faults)


def _held_states(dep: Any) -> dict[str, str]:
    """Scopes not ACTIVE at the end of the run (strategies halted by an escalation, venues held
    REDUCING by an alert): why a run that stopped trading did, in its report."""
    import ray

    try:
        st = ray.get(dep.handles["risk-guard"].status.remote(), timeout=10)
        by = st.get("state_set_by") or {}
        return {k: f"{v} (set by {by.get(k, '?')})" for k, v in (st.get("trading_states") or {}).items()
                if str(v) != "ACTIVE"}
    except Exception as e:  # noqa: BLE001 - the report says it could not tell
        return {"?": f"risk guard did not answer: {type(e).__name__}"}


def _finished_pairs(dep: Any) -> int:
    import ray

    try:
        st = ray.get(dep.handles["coordinator"].status.remote(), timeout=5)
    except Exception:  # noqa: BLE001 - restarting
        return 0
    return sum(int(v) for k, v in st.get("outcomes", {}).items() if k != "REFUSED")


# ---------------------------------------------------------------------------------------------- checks
def check_run(ledger_dir: str | Path, state_dir: str | Path, acked: Iterable[str],
              after_ns: int = 0) -> tuple[dict[str, int], dict[str, Any]]:
    """Check a stopped run's ledger against its venues' journals; returns (counts, details).
    ``details["pairs_after_faults"]``: pairs that finished after ``after_ns`` (trading went on)."""
    from ..core.sizing import is_balanced
    from ..ledger.audit import AuditReader
    from ..ledger.reconcile import reconcile_against_venues
    from ..ledger.venue_records import journal_sources
    from ..runtime.run_summary import ledger_pair_counts

    pc = ledger_pair_counts(ledger_dir)
    rec = reconcile_against_venues(ledger_dir, journal_sources(state_dir))
    rc = rec.counts()
    venue_records = [s.load() for s in journal_sources(state_dir)]
    with AuditReader(ledger_dir) as r:
        intents = r.con.execute("SELECT decision_id, any_value(payload) FROM events WHERE kind = 'INTENT' "
                                "AND actor = 'coordinator' GROUP BY decision_id").fetchall()
        last = dict(r.con.execute("SELECT decision_id, arg_max(outcome, event_id) FROM events "
                                  "WHERE kind = 'PAIR_STATE' AND decision_id != '' GROUP BY decision_id").fetchall())
        after = r.con.execute("SELECT count(DISTINCT decision_id) FROM events WHERE kind = 'PAIR_STATE' "
                              "AND outcome IN ('HEDGED', 'ROLLED_BACK') AND ts_ns > ?", [after_ns]).fetchone()[0]
        ids = [str(i) for i in acked]
        have: set[str] = set()
        for n in range(0, len(ids), 5000):
            chunk = ids[n:n + 5000]
            have.update(x for (x,) in r.con.execute("SELECT event_id FROM events WHERE event_id IN (SELECT unnest(?))",
                                                      [chunk]).fetchall())
    import msgpack

    lots = _lot_sizes()
    # the venues' own fills, per decision id and leg, signed by side
    net: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for vr in venue_records:
        sides = {o.client_order_id: o.side for o in vr.orders}
        for f in vr.fills:
            did, _, rest = f.client_order_id.partition(":")
            if not rest:
                continue
            leg = rest.split(":", 1)[0]
            side = f.side or sides.get(f.client_order_id, "")
            net[did][leg] += int(f.qty) * (1 if side.upper() == "BUY" else -1)
    one_legged: list[dict[str, Any]] = []
    for did, payload in intents:
        try:
            p = msgpack.unpackb(payload, raw=False) if isinstance(payload, (bytes, bytearray)) else json.loads(payload)
            intent = p.get("intent", p)
            ratio = Decimal(str(intent["hedge_ratio"]))
            legs = {lg["leg"]: lg for lg in intent["legs"]}
        except (ValueError, KeyError, TypeError):
            continue
        n = net.get(str(did), {})
        a, b = n.get("A", 0), n.get("B", 0)
        sign_a = 1 if legs["A"]["side"] == "BUY" else -1
        sign_b = 1 if legs["B"]["side"] == "BUY" else -1
        lot_b = lots.get(legs["B"]["instrument"], 1)
        if not is_balanced(a * sign_a, b * sign_b, ratio, lot_b) and last.get(did) != "ESCALATED":
            one_legged.append({"decision_id": did, "state": last.get(did), "venue_net_a": a, "venue_net_b": b,
                               "hedge_ratio": str(ratio)})
    counts = {
        "non_terminal": len(pc["non_terminal"]),
        "one_legged_not_escalated": len(one_legged),
        "duplicate_order_ids": rc["duplicate_order_ids"],
        "missing_fills": rc["missing_fills"],
        "unknown_fills": rc["unknown_fills"],
        "duplicate_fills": rc["duplicate_fills"],
        "acked_events_lost": len(set(ids) - have),
        "orders_without_sent": rc["orders_without_sent"],
        "status_differs": rc["status_differs"],
        "escalated": pc["escalated"],
    }
    details = {"pairs": sum(pc["pairs_by_outcome"].values()), "by_outcome": pc["pairs_by_outcome"],
               "pairs_after_faults": int(after),
               "non_terminal": pc["non_terminal"][:20], "one_legged": one_legged[:20],
               "acked": len(ids), "reconcile": rec.to_dict()["counts"],
               "venue_fills": sum(len(v.fills) for v in venue_records),
               "venue_orders": sum(len(v.orders) for v in venue_records)}
    return counts, details


def _lot_sizes() -> dict[str, int]:
    from ..runtime.config import load_config

    root = Path(__file__).resolve().parents[2]
    cat = load_config(root / "configs" / "catalogue.yaml")
    return {i.id: int(i.lot_size) for i in cat.instruments}


# ---------------------------------------------------------------------------------------------- output
def table(reports: list[ChaosReport]) -> str:
    """One table: a row per run, the loss and duplicate columns, then recoveries."""
    cols = ["layout", "seed", "pairs", "faults", *LOSS_COLUMNS, "escalated", "pairs_after_faults", "recovery_max_s"]
    rows = []
    for r in reports:
        rec = [f.recovery_s for f in r.faults if f.recovery_s is not None]
        rows.append([r.layout, str(r.seed), str(r.pairs), str(sum(1 for f in r.faults if f.applied)),
                     *(str(r.counts.get(k, 0)) for k in LOSS_COLUMNS), str(r.counts.get("escalated", 0)),
                     str(r.details.get("pairs_after_faults", 0)),
                     f"{max(rec):.1f}" if rec else "-"])
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    out = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    out += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    out.append("")
    out.append("recoveries (seconds until the actor answered again and had restored itself):")
    for r in reports:
        by: dict[str, list[str]] = defaultdict(list)
        for f in r.faults:
            by[f.fault.kind].append(f"{f.recovery_s:.1f}" if f.recovery_s is not None else (f.note or "applied"))
        for kind, vals in sorted(by.items()):
            out.append(f"  {r.layout:<10} {kind:<17} {', '.join(vals)}")
    held = [(r.layout, r.details.get("held_at_end") or {}) for r in reports]
    if any(h for _, h in held):
        out.append("")
        out.append("not ACTIVE at the end (halted by an escalation, held by an alert):")
        for layout, h in held:
            for scope, state in sorted(h.items()):
                out.append(f"  {layout:<10} {scope:<24} {state}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=1000, help="finished pairs per layout before stopping (default 1000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layout", choices=(*LAYOUTS, "both"), default="both")
    ap.add_argument("--rounds", type=int, default=3, help="times each fault is applied per layout (default 3)")
    ap.add_argument("--faults", default=",".join(FAULT_KINDS), help="comma-separated subset of: " + ", ".join(FAULT_KINDS))
    ap.add_argument("--max-s", type=float, default=1800.0, help="longest a layout runs (default 1800)")
    ap.add_argument("--flush-ms", type=float, default=None,
                    help="the ledger writers' flush interval (default: the deployment's); a long one "
                         "widens the window in which a kill takes unwritten events with it")
    ap.add_argument("--out", default="var/chaos", help="work directory (ledgers, venue journals, chaos.json)")
    a = ap.parse_args(argv)
    kinds = [k.strip() for k in a.faults.split(",") if k.strip()]
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad:
        ap.error(f"--faults: unknown {', '.join(bad)} (known: {', '.join(FAULT_KINDS)})")
    if a.pairs <= 0 or a.rounds <= 0:
        ap.error("--pairs and --rounds must be positive")
    if a.flush_ms is not None and not 0 < a.flush_ms <= 1000:
        ap.error(f"--flush-ms: {a.flush_ms} is not in (0, 1000] (ledger.flush_ms)")
    reports, failed = [], []
    for layout in (LAYOUTS if a.layout == "both" else (a.layout,)):
        work = Path(a.out) / f"{layout}-{a.seed}-{int(time.time())}"
        try:
            reports.append(run_chaos(work, layout=layout, seed=a.seed, pairs=a.pairs, kinds=kinds, rounds=a.rounds,
                                     max_s=a.max_s, min_s=30.0, echo=lambda s: print(s, flush=True),
                                     flush_ms=a.flush_ms))
        except Exception as e:  # noqa: BLE001 - a run that could not be checked is a failure, said plainly
            failed.append(f"[{layout}] the run could not be completed or checked: {type(e).__name__}: {e}")
            print(failed[-1], flush=True)
    print()
    print(table(reports))
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "chaos.json").write_text(json.dumps([r.to_dict() for r in reports], indent=2, default=str))
    for r in reports:
        for f in r.run_faults:
            print(f"  [{r.layout}] {f}")
    for f in failed:
        print(f"  {f}")
    ok = bool(reports) and all(r.ok for r in reports) and not failed
    print("\nall loss and duplicate columns are zero" if ok else "\nLOSS OR DUPLICATES FOUND: see chaos.json")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
