"""The acceptance report (验收): for a period and a set of strategies, the execution figures of
their live (or canary) trail against the targets in the deployment file, each marked met or
not, with the stage history and a stress result attached; as JSON and one self-contained HTML
page (``xmc audit acceptance``).

The figures are :func:`xmc_actors.ledger.stage_figures.stage_figures` of each strategy's real
pairs (a shadow sends none, so its time adds nothing to them); the targets are
``acceptance.targets`` (or ``acceptance.strategies.<name>``), checked by the same function that
checks a promotion gate (:func:`xmc_actors.core.stages.evaluate_gate`). A strategy is accepted
when every target is met; the report is accepted when every strategy is and the attached stress
run (if any) passed.
"""
from __future__ import annotations

import html
import json
import time
from typing import Any, Iterable

from ..core.stages import evaluate_gate
from ..model.stages import AcceptanceConfig, AcceptanceTargets, twin_name
from .audit import fmt_ns
from .stage_figures import stage_figures, stage_history, twin_comparison

#: what the figures are read from
KINDS = ["PAIR_STATE", "ORDER_SENT", "ORDER_REPORT", "ROLLBACK", "ALERT", "SHADOW", "STAGE"]


def _stage_at(history: list[dict[str, Any]], strategy: str, ts_ns: int, initial: str) -> str:
    st = initial
    for h in history:
        if h["strategy"] == strategy and h["outcome"] == "CHANGED" and h["ts_ns"] <= ts_ns:
            st = h["to"] or st
    return st


def _initial(history: list[dict[str, Any]], strategy: str, configured: str | None) -> str:
    for h in history:
        if h["strategy"] == strategy and h["outcome"] == "CHANGED" and h.get("from"):
            return str(h["from"])
    return configured or "live"


def acceptance(events: Iterable[Any], *, strategies: Iterable[str] | None = None, since_ns: int | None = None,
               until_ns: int | None = None, config: AcceptanceConfig | None = None,
               stages: dict[str, str] | None = None, stress: dict[str, Any] | None = None,
               title: str = "acceptance") -> dict[str, Any]:
    """The acceptance document (a dict, JSON-ready) of ``events`` (a ledger's events of
    :data:`KINDS`). ``stages``: each strategy's configured stage (its stage before its first
    recorded change). ``stress``: a stress report (``xmc stress --json``)."""
    events = list(events)
    cfg = config or AcceptanceConfig()
    history_all = stage_history(events)
    names = sorted(set(strategies) if strategies is not None else
                   {e.strategy for e in events if e.strategy and e.kind.value in ("PAIR_STATE", "SHADOW", "STAGE")})
    twins = {twin_name(n) for n in names}
    names = [n for n in names if n not in twins]  # a twin is reported beside its strategy
    out_strategies: dict[str, Any] = {}
    for name in names:
        targets: AcceptanceTargets = cfg.targets_for(name)
        fig = stage_figures(events, name, stage="live", since_ns=since_ns, until_ns=until_ns,
                            sync_window_ms=targets.sync_window_ms)
        decision = evaluate_gate(targets, fig.gate_values(), name="acceptance")
        history = [h for h in history_all if h["strategy"] == name
                   and (since_ns is None or h["ts_ns"] >= since_ns) and (until_ns is None or h["ts_ns"] < until_ns)]
        initial = _initial(history_all, name, (stages or {}).get(name))
        # the stage each pair ran in (its first PAIR_STATE), so "from the live (or canary) trail" is shown
        firsts: dict[str, int] = {}
        for e in events:
            if e.strategy == name and e.kind.value == "PAIR_STATE" and e.decision_id:
                firsts[e.decision_id] = min(firsts.get(e.decision_id, e.ts_ns), e.ts_ns)
        by_stage: dict[str, int] = {}
        for did, ts in firsts.items():
            if (since_ns is None or ts >= since_ns) and (until_ns is None or ts < until_ns):
                st = _stage_at(history_all, name, ts, initial)
                by_stage[st] = by_stage.get(st, 0) + 1
        shadow = stage_figures(events, name, stage="shadow", since_ns=since_ns, until_ns=until_ns)
        why = decision.reason() if decision.checks else "no targets set"
        twin = twin_name(name)
        twin_part = (twin_comparison(events, name, twin, since_ns=since_ns, until_ns=until_ns,
                                     sync_window_ms=targets.sync_window_ms)
                     if any(e.strategy == twin and e.kind.value == "SHADOW" for e in events) else None)
        out_strategies[name] = {
            "accepted": decision.passed, "why": why,
            "targets": [c.as_dict() for c in decision.checks],
            "figures": fig.gate_values(),
            "counts": {"orders": fig.orders, "rejects": fig.rejects, "red_alerts": fig.red_alerts,
                       "pairs_by_outcome": fig.pairs_by_outcome, "pairs_by_stage": by_stage,
                       "shadow_intents": shadow.shadow_intents, "shadow_fillable": shadow.shadow_fillable},
            "stage_at_start": _stage_at(history_all, name, since_ns, initial) if since_ns is not None else initial,
            "stage_at_end": _stage_at(history_all, name, until_ns if until_ns is not None else 2**63 - 1, initial),
            "stage_history": history,
            "twin": twin_part,
        }
    stress_part = None
    if stress is not None:
        stress_part = {"passed": bool(stress.get("passed")), "config": stress.get("config"),
                       "duration_s": stress.get("duration_s"), "pairs_per_s": stress.get("pairs_per_s"),
                       "lost_events": stress.get("lost_events"), "escalations": stress.get("escalations"),
                       "latency": stress.get("latency"), "floor": stress.get("floor"),
                       "checks": stress.get("checks"), "scenarios": stress.get("scenarios")}
    accepted = bool(out_strategies) and all(s["accepted"] for s in out_strategies.values()) \
        and (stress_part is None or stress_part["passed"])
    reasons = [f"{n}: {s['why']}" for n, s in out_strategies.items() if not s["accepted"]]
    if stress_part is not None and not stress_part["passed"]:
        reasons.append("the stress run failed")
    if not out_strategies:
        reasons.append("no strategy traded in the period")
    return {"title": title, "generated_ns": time.time_ns(), "since_ns": since_ns, "until_ns": until_ns,
            "accepted": accepted, "reasons": reasons, "strategies": out_strategies, "stress": stress_part}


def read_acceptance(reader: Any, **kw: Any) -> dict[str, Any]:
    """:func:`acceptance` of the ledger ``reader`` reads (an :class:`~xmc_actors.ledger.audit.AuditReader`)."""
    since = kw.get("since_ns")
    # every stage change (the stage a strategy was in when the period began), the rest from its start
    events = reader.events(kinds=["STAGE"]) + reader.events(kinds=[k for k in KINDS if k != "STAGE"], since_ns=since)
    return acceptance(events, **kw)


# ------------------------------------------------------------------------------------------ HTML
def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _num(v: Any) -> str:
    if v is None:
        return "not measured"
    if isinstance(v, float):
        return f"{v:,.0f}" if v.is_integer() else f"{v:.4g}"
    return _e(v)


def _t(ns: Any) -> str:
    return fmt_ns(int(ns)) if isinstance(ns, int) else "—"


def build_html(doc: dict[str, Any]) -> str:
    """One self-contained page (no external CSS, JS or images)."""
    ok = doc["accepted"]
    css = ("body{font-family:sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse;margin:8px 0 18px}"
           "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}th{background:#f3f3f3}"
           ".met{color:#2e7d32;font-weight:bold}.miss{color:#c62828;font-weight:bold}"
           ".verdict{font-size:20px;padding:8px 12px;display:inline-block;border-radius:4px;color:#fff}")
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(doc['title'])}</title><style>{css}</style>"
           f"</head><body><h1>{_e(doc['title'])} (验收)</h1>",
           f"<p>period {_t(doc['since_ns'])} to {_t(doc['until_ns'])}; generated {_t(doc['generated_ns'])}</p>",
           f"<p><span class='verdict' style='background:{'#2e7d32' if ok else '#c62828'}'>"
           f"{'ACCEPTED' if ok else 'NOT ACCEPTED'}</span></p>"]
    if doc["reasons"]:
        out.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in doc["reasons"]) + "</ul>")
    for name, s in doc["strategies"].items():
        c = s["counts"]
        out.append(f"<h2>{_e(name)}: <span class='{'met' if s['accepted'] else 'miss'}'>"
                   f"{'accepted' if s['accepted'] else 'not accepted'}</span></h2>"
                   f"<p>{_e(s['why'])}</p><p>stage at the start {_e(s['stage_at_start'])}, at the end "
                   f"{_e(s['stage_at_end'])}; pairs by stage: {_e(', '.join(f'{k} {v}' for k, v in sorted(c['pairs_by_stage'].items())) or 'none')}; "
                   f"outcomes: {_e(', '.join(f'{k} {v}' for k, v in sorted(c['pairs_by_outcome'].items())) or 'none')}; "
                   f"orders {c['orders']}, rejected {c['rejects']}, red alerts {c['red_alerts']}; "
                   f"shadow intents {c['shadow_intents']} ({c['shadow_fillable']} fillable)</p>")
        out.append("<table><tr><th>target</th><th>bound</th><th>figure</th><th>result</th></tr>")
        for t in s["targets"]:
            out.append(f"<tr><td>{_e(t['figure'])}</td><td>{_e(t['bound'])} {_num(t['limit'])}</td>"
                       f"<td>{_num(t['value'])}</td><td class='{'met' if t['met'] else 'miss'}'>"
                       f"{'met' if t['met'] else 'NOT MET'}</td></tr>")
        tw = s.get("twin")
        if tw:
            r, t, cn = tw["real"], tw["twin_full_size"], tw["twin_could_not"]
            out.append(f"</table><h3>beside its shadow twin ({_e(tw['twin'])}: full size, same quotes)</h3>"
                       "<table><tr><th></th><th>pairs / intents</th><th>mean leg-A lots</th><th>filled in full</th>"
                       "<th>slippage p50 (bps)</th><th>slippage p95 (bps)</th></tr>"
                       f"<tr><td>{_e(name)} (real)</td><td>{_num(r['pairs'])}</td><td>{_num(r['mean_lots_a'])}</td>"
                       f"<td>{_num(r['sync_fill_rate'])} (venues, within the sync window)</td>"
                       f"<td>{_num(r['slippage_p50_bps'])}</td><td>{_num(r['slippage_p95_bps'])}</td></tr>"
                       f"<tr><td>{_e(tw['twin'])} (shadow)</td><td>{_num(t['pairs'])}</td><td>{_num(t['mean_lots_a'])}</td>"
                       f"<td>{_num(t['book_fill_rate'])} (the visible book)</td>"
                       f"<td>{_num(t['slippage_p50_bps'])}</td><td>{_num(t['slippage_p95_bps'])}</td></tr></table>"
                       f"<p>what full size could not have done: {cn['intents']} intent(s) the book could not fill "
                       f"in full, {cn['lots_short']} lot(s) short</p><table>")
        out.append("</table><h3>stage history</h3><table><tr><th>time (UTC)</th><th>action</th><th>outcome</th>"
                   "<th>from</th><th>to</th><th>operator</th><th>why</th></tr>")
        for h in s["stage_history"] or []:
            out.append(f"<tr><td>{_t(h['ts_ns'])}</td><td>{_e(h['action'])}</td><td>{_e(h['outcome'])}</td>"
                       f"<td>{_e(h['from'] or '')}</td><td>{_e(h['to'] or '')}</td><td>{_e(h['operator'] or '')}</td>"
                       f"<td>{_e(h['reason'])}</td></tr>")
        if not s["stage_history"]:
            out.append("<tr><td colspan='7'>no stage change in the period</td></tr>")
        out.append("</table>")
    st = doc.get("stress")
    out.append("<h2>stress test (压测)</h2>")
    if st is None:
        out.append("<p>no stress result attached (xmc stress CONFIG --json FILE; then --stress FILE)</p>")
    else:
        out.append(f"<p class='{'met' if st['passed'] else 'miss'}'>{'PASSED' if st['passed'] else 'FAILED'}: "
                   f"{_e(st.get('config'))}, {_num(st.get('duration_s'))} s, {_num(st.get('pairs_per_s'))} pairs/s, "
                   f"lost events {_num(st.get('lost_events'))}, escalations {_num(st.get('escalations'))}</p>"
                   "<table><tr><th>threshold</th><th>limit</th><th>figure</th><th>result</th></tr>")
        for c in st.get("checks") or []:
            out.append(f"<tr><td>{_e(c['bound'])}</td><td>{_num(c['limit'])}</td><td>{_num(c['value'])}</td>"
                       f"<td class='{'met' if c['met'] else 'miss'}'>{'met' if c['met'] else 'NOT MET'}</td></tr>")
        out.append("</table><table><tr><th>scenario</th><th>at (s)</th><th>on</th><th>what</th></tr>")
        for sc in st.get("scenarios") or []:
            out.append(f"<tr><td>{_e(sc['kind'])}</td><td>{_num(sc['at_s'])}</td><td>{_e(sc['target'])}</td>"
                       f"<td>{_e(sc['note'] if sc['applied'] else 'NOT APPLIED: ' + sc['note'])}</td></tr>")
        out.append("</table>")
    out.append(f"<details><summary>the report as JSON</summary><pre>{_e(json.dumps(doc, indent=1, default=str))}"
               "</pre></details></body></html>")
    return "".join(out)


__all__ = ["KINDS", "acceptance", "build_html", "read_acceptance"]
