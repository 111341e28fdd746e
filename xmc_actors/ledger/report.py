"""``xmc audit report``: one self-contained HTML file (inline SVG, no external JS/CSS).

Charts: pair outcomes, slippage distribution of fills, order round-trip latency per venue,
unhedged exposure time per pair (first fill of the pair to its terminal state), alert timeline.
"""
from __future__ import annotations

import html
import math
from collections import Counter
from typing import Sequence

from ..core.stats import percentile
from .audit import PAIR_OUTCOME_SQL, AuditReader, Filters, fmt_ns
from .schema import unpack_payload

OUTCOME_COLOURS = {"HEDGED": "#2e7d32", "ROLLED_BACK": "#f9a825", "ESCALATED": "#c62828", "REFUSED": "#607d8b",
                   "OPEN": "#1565c0"}
LEVEL_COLOURS = {"info": "#1565c0", "yellow": "#f9a825", "orange": "#ef6c00", "red": "#c62828"}
LEVEL_ROWS = ("info", "yellow", "orange", "red")


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, unit: str = "", colours: dict[str, str] | None = None,
              width: int = 560, bar_h: int = 22) -> str:
    """Horizontal bars, one per (label, value)."""
    if not items:
        return _empty(title, width)
    top = max(v for _, v in items) or 1.0
    h = 30 + bar_h * len(items) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" aria-label="{_e(title)}">',
           f'<text x="0" y="16" font-weight="bold">{_e(title)}</text>']
    for i, (label, v) in enumerate(items):
        y = 30 + i * bar_h
        w = (width - 260) * v / top
        c = (colours or {}).get(label, "#455a64")
        out.append(f'<text x="0" y="{y + 15}" font-size="12">{_e(label)}</text>'
                   f'<rect x="150" y="{y + 3}" width="{w:.1f}" height="{bar_h - 6}" fill="{c}"/>'
                   f'<text x="{155 + w:.1f}" y="{y + 15}" font-size="12">{v:,.6g}{_e(unit)}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(values: Sequence[float], *, title: str, xlabel: str, bins: int = 30, width: int = 560,
              height: int = 220) -> str:
    """Vertical histogram with axis labels at the extremes."""
    if not values:
        return _empty(title, width)
    lo, hi = min(values), max(values)
    if hi == lo:
        hi = lo + 1.0
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / (hi - lo) * bins), bins - 1)] += 1
    top = max(counts)
    pw, ph, x0, y0 = width - 60, height - 70, 50, 30
    bw = pw / bins
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
           f'<text x="0" y="16" font-weight="bold" font-size="13">{_e(title)}</text>',
           f'<line x1="{x0}" y1="{y0 + ph}" x2="{x0 + pw}" y2="{y0 + ph}" stroke="#333"/>']
    for i, c in enumerate(counts):
        bh = ph * c / top
        out.append(f'<rect x="{x0 + i * bw:.1f}" y="{y0 + ph - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
                   f'height="{bh:.1f}" fill="#1565c0"><title>{lo + i * (hi - lo) / bins:.4g}: {c}</title></rect>')
    out.append(f'<text x="{x0}" y="{y0 + ph + 16}" font-size="11">{lo:.4g}</text>'
               f'<text x="{x0 + pw}" y="{y0 + ph + 16}" font-size="11" text-anchor="end">{hi:.4g}</text>'
               f'<text x="{x0 + pw / 2}" y="{y0 + ph + 32}" font-size="12" text-anchor="middle">{_e(xlabel)}</text>'
               f'<text x="{x0 - 4}" y="{y0 + 10}" font-size="11" text-anchor="end">{top}</text></svg>')
    return "".join(out)


def latency_chart(rows: Sequence[tuple[str, int, float, float, float, float]], *, title: str, width: int = 560) -> str:
    """Per venue: a bar to p90 with ticks at p50 and p99 (log-free, microseconds)."""
    if not rows:
        return _empty(title, width)
    top = max(r[4] for r in rows) or 1.0
    h = 50 + 26 * len(rows)
    pw = width - 330
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" aria-label="{_e(title)}">',
           f'<text x="0" y="16" font-weight="bold">{_e(title)}</text>',
           '<text x="150" y="34" font-size="11">bar: p90, marks: p50 | p99 (µs)</text>']
    for i, (venue, n, p50, p90, p99, _mx) in enumerate(rows):
        y = 44 + i * 26
        sx = lambda v: 150 + pw * v / top  # noqa: E731
        out.append(f'<text x="0" y="{y + 14}" font-size="12">{_e(venue)} (n={n})</text>'
                   f'<rect x="150" y="{y + 3}" width="{sx(p90) - 150:.1f}" height="14" fill="#90a4ae"/>'
                   f'<line x1="{sx(p50):.1f}" y1="{y}" x2="{sx(p50):.1f}" y2="{y + 20}" stroke="#000" stroke-width="2"/>'
                   f'<line x1="{sx(p99):.1f}" y1="{y}" x2="{sx(p99):.1f}" y2="{y + 20}" stroke="#c62828" stroke-width="2"/>'
                   f'<text x="{sx(p99) + 4:.1f}" y="{y + 14}" font-size="11">{p50:,.0f} | {p90:,.0f} | {p99:,.0f}</text>')
    out.append("</svg>")
    return "".join(out)


def alert_timeline(alerts: Sequence[tuple[int, str, str, str]], t0: int, t1: int, *, title: str,
                   width: int = 900) -> str:
    """One row per level, a dot per alert at its time; hover shows decision and reason."""
    if not alerts:
        return _empty(title, width)
    span = max(t1 - t0, 1)
    pw, x0 = width - 90, 70
    h = 40 + 24 * len(LEVEL_ROWS) + 24
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" aria-label="{_e(title)}">',
           f'<text x="0" y="16" font-weight="bold">{_e(title)}</text>']
    for j, lvl in enumerate(LEVEL_ROWS):
        y = 40 + j * 24
        out.append(f'<text x="0" y="{y + 4}" font-size="12">{lvl}</text>'
                   f'<line x1="{x0}" y1="{y}" x2="{x0 + pw}" y2="{y}" stroke="#ddd"/>')
    for ts, level, dec, reason in alerts:
        j = LEVEL_ROWS.index(level) if level in LEVEL_ROWS else 0
        x = x0 + pw * (ts - t0) / span
        out.append(f'<circle cx="{x:.1f}" cy="{40 + j * 24}" r="5" fill="{LEVEL_COLOURS.get(level, "#000")}">'
                   f'<title>{_e(fmt_ns(ts))} {_e(dec)}: {_e(reason)}</title></circle>')
    yb = 40 + 24 * len(LEVEL_ROWS)
    out.append(f'<text x="{x0}" y="{yb}" font-size="11">{_e(fmt_ns(t0))}</text>'
               f'<text x="{x0 + pw}" y="{yb}" font-size="11" text-anchor="end">{_e(fmt_ns(t1))}</text></svg>')
    return "".join(out)


def _empty(title: str, width: int) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40"><text x="0" y="16" '
            f'font-weight="bold">{_e(title)}</text><text x="0" y="34" font-size="12">no data in this range</text></svg>')


def build_report(reader: AuditReader, since_ns: int | None = None, until_ns: int | None = None,
                 title: str = "xmc-actors audit report") -> str:
    """The HTML report of the events in ``[since_ns, until_ns)``."""
    f = Filters(since_ns=since_ns, until_ns=until_ns)
    where, params = f.where()
    con = reader.con
    and_ = " AND " if where else " WHERE "
    n_events, t0, t1 = con.execute(f"SELECT count(*), min(ts_ns), max(ts_ns) FROM events{where}", params).fetchall()[0]
    kinds = con.execute(f"SELECT kind, count(*) FROM events{where} GROUP BY 1 ORDER BY 2 DESC", params).fetchall()
    outcomes = reader.pair_outcomes(since_ns, until_ns)
    fills = con.execute(f"SELECT payload FROM events{where}{and_}kind = 'ORDER_REPORT' AND outcome = 'FILLED'",
                        params).fetchall()
    slippage = []
    for (blob,) in fills:
        p = unpack_payload(blob)
        s = p.get("slippage_bps")
        if s is None and p.get("price") is not None and p.get("ref_price") not in (None, "0", 0):
            px, ref = float(p["price"]), float(p["ref_price"])
            s = (px - ref) / ref * 1e4 * (1 if str(p.get("side", "BUY")).upper() == "BUY" else -1)
        if s is not None:
            slippage.append(float(s))
    lat = con.execute(
        f"SELECT venue, count(*), quantile_cont(latency_us, 0.5), quantile_cont(latency_us, 0.9), "
        f"quantile_cont(latency_us, 0.99), max(latency_us) FROM events{where}{and_}kind = 'ORDER_REPORT' "
        "AND venue != '' AND latency_us IS NOT NULL GROUP BY venue ORDER BY venue", params).fetchall()
    exposure = [r[0] / 1e6 for r in con.execute(
        f"WITH ff AS (SELECT decision_id, min(ts_ns) AS first_fill FROM events{where}{and_}kind = 'ORDER_REPORT' "
        f"AND outcome IN ('FILLED', 'PARTIALLY_FILLED') GROUP BY 1), o AS ({PAIR_OUTCOME_SQL}) "
        "SELECT o.done_ns - ff.first_fill FROM ff JOIN o USING (decision_id) WHERE o.done_ns >= ff.first_fill",
        params).fetchall()]
    alerts = []
    for ts, dec, reason, blob in con.execute(
            f"SELECT ts_ns, decision_id, reason, payload FROM events{where}{and_}kind = 'ALERT' ORDER BY ts_ns",
            params).fetchall():
        alerts.append((ts, str(unpack_payload(blob).get("level", "info")).lower(), dec or "", reason or ""))
    escalated = con.execute(
        f"SELECT decision_id, done_ns FROM ({PAIR_OUTCOME_SQL}) WHERE outcome = 'ESCALATED'"
        f"{' AND done_ns >= ?' if since_ns is not None else ''}{' AND done_ns < ?' if until_ns is not None else ''} "
        "ORDER BY done_ns LIMIT 200", [p for p in (since_ns, until_ns) if p is not None]).fetchall()

    order = ["HEDGED", "ROLLED_BACK", "ESCALATED", "REFUSED", "OPEN"]
    oc_items = [(k, float(outcomes.get(k, 0))) for k in order if outcomes.get(k)]
    n_pairs = sum(outcomes.values())
    alert_counts = Counter(a[1] for a in alerts)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>body{{font-family:system-ui,Arial,sans-serif;margin:24px;color:#222}}"
        "section{margin:18px 0}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:left}.grid{display:flex;flex-wrap:wrap;gap:24px}.num{text-align:right}"
        "svg{font-family:system-ui,Arial,sans-serif}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>Range: <b>{_e(fmt_ns(t0) or '—')}</b> to <b>{_e(fmt_ns(t1) or '—')}</b> (UTC) · "
        f"{n_events:,} events · {n_pairs:,} pairs · {len(alerts):,} alerts "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(alert_counts.items())) or 'none'}) · "
        f"ledger: {_e(', '.join(str(p) for p in reader.files))}</p>",
        "<div class='grid'>",
        f"<section>{bar_chart(oc_items, title='Pair outcomes', colours=OUTCOME_COLOURS)}</section>",
        f"<section>{histogram(slippage, title=f'Slippage of fills (n={len(slippage)}, p50={percentile(slippage, .5):.2f} bps, p95={percentile(slippage, .95):.2f} bps)', xlabel='slippage (bps, positive = worse than reference)')}</section>",
        f"<section>{latency_chart(lat, title='Order round-trip latency per venue')}</section>",
        f"<section>{histogram(exposure, title=f'Unhedged exposure time per pair (n={len(exposure)}, p50={percentile(exposure, .5):.1f} ms, max={max(exposure) if exposure else math.nan:.1f} ms)', xlabel='first fill to terminal state (ms)')}</section>",
        "</div>",
        f"<section>{alert_timeline(alerts, t0 or 0, t1 or 0, title='Alert timeline')}</section>",
        "<section><h2>Escalated pairs</h2>",
    ]
    if escalated:
        parts.append("<table><tr><th>decision id</th><th>escalated at (UTC)</th><th>trace</th></tr>")
        for dec, ts in escalated:
            parts.append(f"<tr><td>{_e(dec)}</td><td>{_e(fmt_ns(ts))}</td><td><code>xmc audit trace {_e(dec)}</code></td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append("</section><section><h2>Events by kind</h2><table><tr><th>kind</th><th>count</th></tr>")
    parts += [f"<tr><td>{_e(k)}</td><td class='num'>{v:,}</td></tr>" for k, v in kinds]
    parts.append("</table></section></body></html>")
    return "".join(parts)
