"""A strategy's execution figures from its trail, as the promotion gates and the acceptance
report (验收) judge them.

The figures every view shares (pairs by outcome, slippage per leg, unhedged exposure, alerts by
level) are :func:`xmc_actors.ledger.figures.ledger_figures`'s own, computed by the same code on
the strategy's events alone. Added here, with the execution lab's definitions (docs/lab.md),
measured from the trail instead of the lab's records:

* **pairs**: pairs attempted, i.e. ending HEDGED, ROLLED_BACK or ESCALATED (REFUSED and still
  open ones are not);
* **success rate**: share of them that ended HEDGED without unwinding anything (no ``ROLLBACK``);
* **synchronous fill rate**: share whose two legs' entry orders (unwinds excluded) filled the
  lots of the leg's first order within ``sync_window_ms`` of the pair's first ``ORDER_SENT``;
* **slippage p95**: the 95th percentile of the per-leg slippage against trigger (bps);
* **reject ratio**: orders rejected by a venue (an ``ORDER_REPORT`` with status REJECTED) over
  orders sent;
* **escalations**: pairs that ended ESCALATED; **red alerts**: ALERTs at level red about it.

A strategy in **shadow** sends nothing: its figures come from its ``SHADOW`` records: pairs are
the intents it recorded, the synchronous fill rate the share the book could have filled in full
on both legs, slippage that of the book's prices against the triggers; success rate, reject
ratio and unhedged exposure are not measured (None).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

import duckdb

from ..model.events import Event, EventKind
from .figures import Dist, RunFigures, _figures, alert_level
from .schema import encode_events

_MS = 1_000_000


@dataclass
class StageFigures:
    """What a strategy's trail in one stage came to over a window."""

    strategy: str
    stage: str
    since_ns: int | None
    until_ns: int | None
    pairs: int = 0
    success_rate: float | None = None
    sync_fill_rate: float | None = None
    slippage_bps: Dist = field(default_factory=Dist)
    reject_ratio: float | None = None
    orders: int = 0
    rejects: int = 0
    escalations: int = 0
    red_alerts: int = 0
    unhedged_ms: Dist = field(default_factory=Dist)
    pairs_by_outcome: dict[str, int] = field(default_factory=dict)
    alerts_by_level: dict[str, int] = field(default_factory=dict)
    shadow_intents: int = 0
    shadow_fillable: int = 0

    def gate_values(self) -> dict[str, float | None]:
        """Figure name -> number, what :func:`xmc_actors.core.stages.evaluate_gate` reads."""
        return {
            "pairs": self.pairs, "success_rate": self.success_rate, "sync_fill_rate": self.sync_fill_rate,
            "slippage_p95_bps": self.slippage_bps.p95 if self.slippage_bps.n else None,
            "reject_ratio": self.reject_ratio, "escalations": self.escalations,
            "unhedged_p95_ms": self.unhedged_ms.p95 if self.unhedged_ms.n else None,
        }

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["gate_values"] = self.gate_values()
        return d


def _in(e: Event, since_ns: int | None, until_ns: int | None) -> bool:
    return (since_ns is None or e.ts_ns >= since_ns) and (until_ns is None or e.ts_ns < until_ns)


def stage_figures(events: Iterable[Event], strategy: str, *, stage: str = "live", since_ns: int | None = None,
                  until_ns: int | None = None, sync_window_ms: float = 500.0) -> StageFigures:
    """The figures of ``strategy``'s trail in ``[since_ns, until_ns)`` (events of any strategy
    may be given: the others are left out). ``stage`` "shadow" reads its SHADOW records."""
    mine = [e for e in events if e.strategy == strategy]
    fig = StageFigures(strategy, stage, since_ns, until_ns)
    fig.red_alerts = sum(1 for e in mine if e.kind is EventKind.ALERT and _in(e, since_ns, until_ns)
                         and alert_level(e.payload) == "red")
    if stage == "shadow":
        return _shadow(fig, [e for e in mine if e.kind is EventKind.SHADOW and _in(e, since_ns, until_ns)])
    run = _shared(mine, since_ns, until_ns)
    fig.pairs_by_outcome = dict(run.pairs_by_outcome)
    fig.alerts_by_level = dict(run.alerts_by_level)
    fig.slippage_bps, fig.unhedged_ms = run.slippage_bps, run.unhedged_ms
    fig.escalations = run.escalated
    done = {k: v for k, v in run.pairs_by_outcome.items() if k in ("HEDGED", "ROLLED_BACK", "ESCALATED")}
    fig.pairs = sum(done.values())
    _orders(fig, mine, since_ns, until_ns, sync_window_ms * _MS)
    return fig


def _shared(events: list[Event], since_ns: int | None, until_ns: int | None) -> RunFigures:
    """The ledger's own figures of these events (one definition: :mod:`.figures`)."""
    table = encode_events(events).table
    con = duckdb.connect(":memory:")
    try:
        con.register("_xmc_events_arrow", table)
        con.execute("CREATE TABLE events AS SELECT * FROM _xmc_events_arrow").fetchall()
        con.unregister("_xmc_events_arrow")
        return _figures(con, since_ns, until_ns)
    finally:
        con.close()


def _orders(fig: StageFigures, events: list[Event], since_ns: int | None, until_ns: int | None,
            window_ns: float) -> None:
    """Success, synchronous fills and rejects of the pairs that ended in the window."""
    last_state: dict[str, tuple[int, str, str]] = {}
    for e in events:
        if e.kind is EventKind.PAIR_STATE and e.decision_id:
            key = (e.ts_ns, e.event_id)
            cur = last_state.get(e.decision_id)
            if cur is None or key >= cur[:2]:
                last_state[e.decision_id] = (e.ts_ns, e.event_id, str(e.payload.get("state") or ""))
    pairs = {d for d, (ts, _, st) in last_state.items()
             if st in ("HEDGED", "ROLLED_BACK", "ESCALATED") and (since_ns is None or ts >= since_ns)
             and (until_ns is None or ts < until_ns)}
    rolled = {e.decision_id for e in events if e.kind is EventKind.ROLLBACK}
    first_sent: dict[str, int] = {}
    entry: dict[str, tuple[str, int]] = {}     # order id -> (leg, qty) of entry orders
    leg_qty: dict[tuple[str, str], int] = {}   # (decision, leg) -> lots of the leg's first order
    filled: dict[tuple[str, str], int] = {}
    done_at: dict[tuple[str, str], int] = {}
    sent = rejected = 0
    seen_reject: set[str] = set()
    for e in events:
        if e.decision_id not in pairs:
            continue
        p = e.payload
        if e.kind is EventKind.ORDER_SENT:
            sent += 1
            oid = str(p.get("client_order_id") or "")
            first_sent[e.decision_id] = min(first_sent.get(e.decision_id, e.ts_ns), e.ts_ns)
            if not p.get("unwind"):
                leg = str(p.get("leg_name") or (oid.split(":")[1] if oid.count(":") >= 2 else ""))
                entry[oid] = (leg, int(p.get("qty") or 0))
                leg_qty.setdefault((e.decision_id, leg), int(p.get("qty") or 0))
        elif e.kind is EventKind.ORDER_REPORT:
            oid = str(p.get("client_order_id") or "")
            if str(p.get("status") or "").upper() == "REJECTED" and oid not in seen_reject:
                seen_reject.add(oid)
                rejected += 1
            q = p.get("fill_qty")
            if oid in entry and isinstance(q, int) and q > 0 and not p.get("repeat"):
                k = (e.decision_id, entry[oid][0])
                filled[k] = filled.get(k, 0) + q
                if k not in done_at and filled[k] >= leg_qty.get(k, 0) > 0:
                    done_at[k] = e.ts_ns
    success = sum(1 for d in pairs if last_state[d][2] == "HEDGED" and d not in rolled)
    sync = 0
    for d in pairs:
        legs = [k for k in leg_qty if k[0] == d]
        if len(legs) >= 2 and d in first_sent and all(k in done_at and done_at[k] - first_sent[d] <= window_ns
                                                      for k in legs):
            sync += 1
    n = len(pairs)
    fig.success_rate = success / n if n else None
    fig.sync_fill_rate = sync / n if n else None
    fig.orders, fig.rejects = sent, rejected
    fig.reject_ratio = rejected / sent if sent else None


def _shadow(fig: StageFigures, shadows: list[Event]) -> StageFigures:
    slips: list[float] = []
    fillable = 0
    for e in shadows:
        full = True
        for lg in e.payload.get("legs") or []:
            if isinstance(lg.get("slippage_bps"), (int, float)):
                slips.append(float(lg["slippage_bps"]))
            full = full and int(lg.get("short") or 0) == 0
        fillable += full
    n = len(shadows)
    fig.pairs = fig.shadow_intents = n
    fig.shadow_fillable = fillable
    fig.sync_fill_rate = fillable / n if n else None
    fig.slippage_bps = Dist.of(slips)
    return fig


def twin_comparison(events: Iterable[Event], strategy: str, twin: str, *, since_ns: int | None = None,
                    until_ns: int | None = None, sync_window_ms: float = 500.0) -> dict[str, Any]:
    """A strategy's real pairs (canary or live) beside its shadow twin's records at full size, on
    the same quotes: how many each made, at what size, how they filled (the real pairs' venue
    fills; the twin's book), the slippage of each, and what the twin could not have done (its
    intents the visible book could not fill in full, with the lots short)."""
    events = list(events)
    real = stage_figures(events, strategy, stage="live", since_ns=since_ns, until_ns=until_ns,
                         sync_window_ms=sync_window_ms)
    shadow = stage_figures(events, twin, stage="shadow", since_ns=since_ns, until_ns=until_ns)
    sent_a: list[int] = []
    for e in events:
        if (e.strategy == strategy and e.kind is EventKind.ORDER_SENT and _in(e, since_ns, until_ns)
                and str(e.payload.get("client_order_id", "")).endswith(":A:0")):
            sent_a.append(int(e.payload.get("qty") or 0))
    twin_a: list[int] = []
    short: list[dict[str, Any]] = []
    for e in events:
        if e.strategy == twin and e.kind is EventKind.SHADOW and _in(e, since_ns, until_ns):
            legs = e.payload.get("legs") or []
            for lg in legs:
                if lg.get("leg") == "A":
                    twin_a.append(int(lg.get("qty") or 0))
            gaps = {str(lg.get("leg")): int(lg.get("short") or 0) for lg in legs if int(lg.get("short") or 0)}
            if gaps:
                short.append({"decision_id": e.decision_id, "ts_ns": e.ts_ns, "short_lots": gaps})

    def mean(v: list[int]) -> float | None:
        return sum(v) / len(v) if v else None

    def side(f: StageFigures, lots: list[int], fill_label: str) -> dict[str, Any]:
        return {"pairs": f.pairs, "mean_lots_a": mean(lots), fill_label: f.sync_fill_rate,
                "slippage_p50_bps": f.slippage_bps.p50 if f.slippage_bps.n else None,
                "slippage_p95_bps": f.slippage_bps.p95 if f.slippage_bps.n else None}

    return {"strategy": strategy, "twin": twin,
            "real": {**side(real, sent_a, "sync_fill_rate"), "success_rate": real.success_rate,
                     "reject_ratio": real.reject_ratio, "escalations": real.escalations},
            "twin_full_size": side(shadow, twin_a, "book_fill_rate"),
            "twin_could_not": {"intents": len(short),
                               "lots_short": sum(sum(x["short_lots"].values()) for x in short),
                               "examples": short[:20]}}


def stage_since(events: Iterable[Event], strategy: str) -> int | None:
    """When ``strategy`` last changed stage in the trail (its last STAGE event that changed it);
    None if it never did (it has been in its configured stage since the trail began)."""
    last = None
    for e in events:
        if (e.kind is EventKind.STAGE and e.strategy == strategy and e.payload.get("outcome") == "CHANGED"
                and (last is None or e.ts_ns > last)):
            last = e.ts_ns
    return last


def stage_history(events: Iterable[Event], strategies: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every stage change and gate decision in the trail, oldest first."""
    want = set(strategies) if strategies is not None else None
    out = []
    for e in sorted((e for e in events if e.kind is EventKind.STAGE), key=lambda e: (e.ts_ns, e.event_id)):
        if want is not None and e.strategy not in want:
            continue
        if e.payload.get("action") in ("resize", "limit"):
            continue  # a canary's sizing of one intent, not a stage decision
        gate = e.payload.get("gate") or {}
        out.append({"ts_ns": e.ts_ns, "strategy": e.strategy, "action": e.payload.get("action"),
                    "outcome": e.payload.get("outcome"), "from": e.payload.get("from"), "to": e.payload.get("to"),
                    "operator": e.payload.get("operator"), "reason": e.reason,
                    "gate_passed": gate.get("passed") if gate else None, "event_id": e.event_id})
    return out


__all__ = ["StageFigures", "stage_figures", "stage_history", "stage_since", "twin_comparison"]
