"""``xmc audit report``: one self-contained HTML file (inline SVG, no external JS/CSS) whose
size does not grow with the ledger.

Everything drawn is aggregated in DuckDB or bounded: the figures every view shares
(:mod:`.figures`, the same rows the run summary prints), equity over time and P&L by strategy
and by pair (the risk guard's ``PNL`` records), pair outcomes, histograms of slippage
and unhedged exposure (fixed bins), order latency per venue (quantiles), pairs and alerts over
time in at most :data:`TIME_BINS` bins, a scatter of at most :data:`SCATTER_POINTS` sampled
order latencies, the :data:`TOP_ALERT_NAMES` most frequent alert names and at most
:data:`MAX_TRACE_HINTS` escalated pairs, each with a trace command that works as pasted.

A replay is shown in its market time: when every pair of the range was decided in replayed
market time, the timelines' axis is market time (an alert at the market time of the last pair
decided before it); when live and replayed strategies ran together, the axis is the wall clock
and each replayed strategy's market-time span is listed.
"""
from __future__ import annotations

import html
import shlex
from typing import Any, Sequence

from .audit import AuditReader, Filters, _translating_call, fmt_ns
from .figures import LABELS, LEVELS, OUTCOMES, Dist, RunFigures, ledger_figures, levels_text

OUTCOME_COLOURS = {"HEDGED": "#2e7d32", "ROLLED_BACK": "#f9a825", "ESCALATED": "#c62828", "REFUSED": "#607d8b",
                   "OPEN": "#1565c0"}
LEVEL_COLOURS = {"info": "#1565c0", "yellow": "#f9a825", "orange": "#ef6c00", "red": "#c62828"}
VENUE_COLOURS = ("#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037", "#455a64")
TIME_BINS = 96
SCATTER_POINTS = 1_500
TOP_ALERT_NAMES = 40
MAX_TRACE_HINTS = 200


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _svg(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="{_e(title)}"><text x="0" y="16" font-weight="bold" font-size="13">{_e(title)}</text>')


def _empty(title: str, width: int) -> str:
    return _svg(width, 40, title) + '<text x="0" y="34" font-size="12">no data in this range</text></svg>'


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, unit: str = "", colours: dict[str, str] | None = None,
              width: int = 560, bar_h: int = 22) -> str:
    """Horizontal bars, one per (label, value)."""
    if not items:
        return _empty(title, width)
    top = max(v for _, v in items) or 1.0
    out = [_svg(width, 30 + bar_h * len(items) + 10, title)]
    for i, (label, v) in enumerate(items):
        y = 30 + i * bar_h
        w = (width - 260) * v / top
        c = (colours or {}).get(label, "#455a64")
        out.append(f'<text x="0" y="{y + 15}" font-size="12">{_e(label)}</text>'
                   f'<rect x="150" y="{y + 3}" width="{w:.1f}" height="{bar_h - 6}" fill="{c}"/>'
                   f'<text x="{155 + w:.1f}" y="{y + 15}" font-size="12">{v:,.6g}{_e(unit)}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(d: Dist, *, title: str, xlabel: str, width: int = 560, height: int = 220) -> str:
    """A distribution's fixed bins as a vertical histogram, axis labels at the extremes."""
    if not d.n:
        return _empty(title, width)
    counts = d.counts
    top = max(counts) or 1
    pw, ph, x0, y0 = width - 60, height - 70, 50, 30
    bw = pw / len(counts)
    step = ((d.hi - d.lo) or 1.0) / len(counts)
    out = [_svg(width, height, title), f'<line x1="{x0}" y1="{y0 + ph}" x2="{x0 + pw}" y2="{y0 + ph}" stroke="#333"/>']
    for i, c in enumerate(counts):
        if not c:
            continue
        bh = ph * c / top
        out.append(f'<rect x="{x0 + i * bw:.1f}" y="{y0 + ph - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
                   f'height="{bh:.1f}" fill="#1565c0"><title>{d.lo + i * step:.4g} to {d.lo + (i + 1) * step:.4g}: '
                   f'{c:,}</title></rect>')
    out.append(f'<text x="{x0}" y="{y0 + ph + 16}" font-size="11">{d.lo:.4g}</text>'
               f'<text x="{x0 + pw}" y="{y0 + ph + 16}" font-size="11" text-anchor="end">{d.hi:.4g}</text>'
               f'<text x="{x0 + pw / 2}" y="{y0 + ph + 32}" font-size="12" text-anchor="middle">{_e(xlabel)}</text>'
               f'<text x="{x0 - 4}" y="{y0 + 10}" font-size="11" text-anchor="end">{top:,}</text></svg>')
    return "".join(out)


def latency_chart(rows: Sequence[tuple[str, int, float, float, float, float]], *, title: str, width: int = 560) -> str:
    """Per venue: a bar to p90 with ticks at p50 and p99 (microseconds)."""
    if not rows:
        return _empty(title, width)
    top = max(r[4] for r in rows) or 1.0
    pw = width - 330
    out = [_svg(width, 50 + 26 * len(rows), title),
           '<text x="150" y="34" font-size="11">bar: p90, marks: p50 | p99 (µs)</text>']
    for i, (venue, n, p50, p90, p99, _mx) in enumerate(rows):
        y = 44 + i * 26
        sx = lambda v: 150 + pw * v / top  # noqa: E731
        out.append(f'<text x="0" y="{y + 14}" font-size="12">{_e(venue)} (n={n:,})</text>'
                   f'<rect x="150" y="{y + 3}" width="{sx(p90) - 150:.1f}" height="14" fill="#90a4ae"/>'
                   f'<line x1="{sx(p50):.1f}" y1="{y}" x2="{sx(p50):.1f}" y2="{y + 20}" stroke="#000" stroke-width="2"/>'
                   f'<line x1="{sx(p99):.1f}" y1="{y}" x2="{sx(p99):.1f}" y2="{y + 20}" stroke="#c62828" stroke-width="2"/>'
                   f'<text x="{sx(p99) + 4:.1f}" y="{y + 14}" font-size="11">{p50:,.0f} | {p90:,.0f} | {p99:,.0f}</text>')
    out.append("</svg>")
    return "".join(out)


def _time_label(ns: int, span_ns: int) -> str:
    t = fmt_ns(ns)
    return t[:10] if span_ns > 3 * 86_400 * 10**9 else t[:19]


def stacked_timeline(bins: dict[int, dict[str, int]], keys: Sequence[str], colours: dict[str, str], t0: int, t1: int,
                     *, title: str, axis: str, width: int = 900, height: int = 200) -> str:
    """Counts per time bin (``bins[i][key]``), stacked by ``keys``; a hover title per bin."""
    if not bins:
        return _empty(title, width)
    pw, ph, x0, y0 = width - 90, height - 70, 70, 30
    top = max(sum(b.values()) for b in bins.values()) or 1
    bw = pw / TIME_BINS
    span = max(t1 - t0, 1)
    out = [_svg(width, height, title), f'<line x1="{x0}" y1="{y0 + ph}" x2="{x0 + pw}" y2="{y0 + ph}" stroke="#333"/>']
    for i, b in sorted(bins.items()):
        y = y0 + ph
        lo = t0 + span * i // TIME_BINS
        tip = f"{_time_label(lo, span)}: " + ", ".join(f"{k} {b[k]:,}" for k in keys if b.get(k))
        parts = []
        for k in keys:
            if b.get(k):
                h = ph * b[k] / top
                y -= h
                parts.append(f'<rect x="{x0 + i * bw:.1f}" y="{y:.1f}" width="{max(bw - 0.5, 0.5):.1f}" '
                             f'height="{h:.1f}" fill="{colours.get(k, "#455a64")}"/>')
        out.append(f"<g><title>{_e(tip)}</title>{''.join(parts)}</g>")
    x = x0
    for k in keys:
        out.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colours.get(k, "#455a64")}"/>'
                   f'<text x="{x + 14}" y="{height - 5}" font-size="11">{_e(k)}</text>')
        x += 24 + 7 * len(k)
    out.append(f'<text x="{x0}" y="{y0 + ph + 16}" font-size="11">{_e(_time_label(t0, span))}</text>'
               f'<text x="{x0 + pw}" y="{y0 + ph + 16}" font-size="11" text-anchor="end">'
               f'{_e(_time_label(t1, span))} ({_e(axis)})</text>'
               f'<text x="{x0 - 4}" y="{y0 + 10}" font-size="11" text-anchor="end">{top:,}</text></svg>')
    return "".join(out)


def alert_heat(bins: dict[tuple[int, str], int], t0: int, t1: int, *, title: str, axis: str, width: int = 900) -> str:
    """Alerts per level and time bin: one row per level, a cell per bin whose shade grows with
    its count (hover: the count), never one mark per alert."""
    if not bins:
        return _empty(title, width)
    pw, x0 = width - 90, 70
    h = 40 + 22 * len(LEVELS) + 24
    span = max(t1 - t0, 1)
    top = max(bins.values())
    bw = pw / TIME_BINS
    out = [_svg(width, h, title)]
    for j, lvl in enumerate(LEVELS):
        y = 30 + j * 22
        out.append(f'<text x="0" y="{y + 14}" font-size="12">{lvl}</text>'
                   f'<rect x="{x0}" y="{y}" width="{pw}" height="18" fill="#f5f5f5"/>')
    for (i, lvl), n in sorted(bins.items()):
        j = LEVELS.index(lvl) if lvl in LEVELS else 0
        op = 0.25 + 0.75 * n / top
        lo = t0 + span * i // TIME_BINS
        out.append(f'<rect x="{x0 + i * bw:.1f}" y="{30 + j * 22}" width="{max(bw - 0.5, 0.5):.1f}" height="18" '
                   f'fill="{LEVEL_COLOURS.get(lvl, "#000")}" fill-opacity="{op:.2f}"><title>{_e(_time_label(lo, span))}: '
                   f'{n:,} {_e(lvl)}</title></rect>')
    yb = 30 + 22 * len(LEVELS) + 14
    out.append(f'<text x="{x0}" y="{yb}" font-size="11">{_e(_time_label(t0, span))}</text>'
               f'<text x="{x0 + pw}" y="{yb}" font-size="11" text-anchor="end">{_e(_time_label(t1, span))} '
               f'({_e(axis)})</text></svg>')
    return "".join(out)


def scatter(points: Sequence[tuple[int, float, str]], t0: int, t1: int, *, title: str, axis: str, ylabel: str,
            width: int = 900, height: int = 240) -> str:
    """Sampled points (time, value, series); one colour per series."""
    if not points:
        return _empty(title, width)
    pw, ph, x0, y0 = width - 90, height - 70, 70, 30
    top = max(v for _, v, _ in points) or 1.0
    span = max(t1 - t0, 1)
    series = sorted({s for _, _, s in points})
    col = {s: VENUE_COLOURS[i % len(VENUE_COLOURS)] for i, s in enumerate(series)}
    out = [_svg(width, height, title), f'<line x1="{x0}" y1="{y0 + ph}" x2="{x0 + pw}" y2="{y0 + ph}" stroke="#333"/>']
    for s in series:
        out.append(f'<g fill="{col[s]}" fill-opacity="0.6">')
        out += [f'<circle cx="{x0 + pw * (t - t0) / span:.1f}" cy="{y0 + ph - ph * v / top:.1f}" r="1.8"/>'
                for t, v, s2 in points if s2 == s]
        out.append("</g>")
    x = x0
    for s in series:
        out.append(f'<circle cx="{x + 5}" cy="{height - 9}" r="4" fill="{col[s]}"/>'
                   f'<text x="{x + 12}" y="{height - 5}" font-size="11">{_e(s)}</text>')
        x += 24 + 7 * len(s)
    out.append(f'<text x="{x0}" y="{y0 + ph + 16}" font-size="11">{_e(_time_label(t0, span))}</text>'
               f'<text x="{x0 + pw}" y="{y0 + ph + 16}" font-size="11" text-anchor="end">{_e(_time_label(t1, span))} '
               f'({_e(axis)})</text><text x="{x0 - 4}" y="{y0 + 10}" font-size="11" text-anchor="end">{top:,.4g}</text>'
               f'<text x="{x0 - 4}" y="{y0 + 24}" font-size="10" text-anchor="end">{_e(ylabel)}</text></svg>')
    return "".join(out)


def line_chart(points: Sequence[tuple[int, float]], *, title: str, unit: str = "", width: int = 900,
               height: int = 220) -> str:
    """A line over time (``(ts_ns, value)``, already bounded by the caller), with its first and
    last values and the time axis in UTC."""
    if not points:
        return _empty(title, width)
    left, top, bottom = 90, 30, 30
    w, h = width - left - 10, height - top - bottom
    t0, t1 = points[0][0], points[-1][0]
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    span_t, span_v = max(t1 - t0, 1), (hi - lo) or max(abs(hi), 1.0) * 1e-6

    def xy(t: int, v: float) -> str:
        return f"{left + w * (t - t0) / span_t:.1f},{top + h - h * (v - lo) / span_v:.1f}"

    out = [_svg(width, height, title),
           f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#ccc"/>',
           f'<text x="{left - 4}" y="{top + 10}" font-size="11" text-anchor="end">{hi:,.0f}</text>',
           f'<text x="{left - 4}" y="{top + h}" font-size="11" text-anchor="end">{lo:,.0f}</text>',
           f'<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="{" ".join(xy(t, v) for t, v in points)}"/>',
           f'<text x="{left}" y="{height - 8}" font-size="11">{_e(fmt_ns(t0))}</text>',
           f'<text x="{left + w}" y="{height - 8}" font-size="11" text-anchor="end">{_e(fmt_ns(t1))}</text>',
           f'<text x="{left + w / 2:.0f}" y="{height - 8}" font-size="11" text-anchor="middle">'
           f'{points[0][1]:,.2f} to {points[-1][1]:,.2f} {_e(unit)} ({points[-1][1] - points[0][1]:+,.2f})</text>',
           "</svg>"]
    return "".join(out)


def signed_bars(items: Sequence[tuple[str, float]], *, title: str, unit: str = "", width: int = 820,
                bar_h: int = 22) -> str:
    """Horizontal bars around zero: gains to the right (green), losses to the left (red)."""
    if not items:
        return _empty(title, width)
    top = max(abs(v) for _, v in items) or 1.0
    label_w, half = 300, (width - 300 - 170) / 2
    mid = label_w + half
    out = [_svg(width, 30 + bar_h * len(items) + 10, title),
           f'<line x1="{mid:.1f}" y1="26" x2="{mid:.1f}" y2="{30 + bar_h * len(items)}" stroke="#999"/>']
    for i, (label, v) in enumerate(items):
        y = 30 + i * bar_h
        bw = half * abs(v) / top
        x = mid if v >= 0 else mid - bw
        out.append(f'<text x="0" y="{y + 15}" font-size="12">{_e(label[:48])}</text>'
                   f'<rect x="{x:.1f}" y="{y + 3}" width="{bw:.1f}" height="{bar_h - 6}" fill="{"#2e7d32" if v >= 0 else "#c62828"}"/>'
                   f'<text x="{width - 165}" y="{y + 15}" font-size="12">{v:+,.2f} {_e(unit)}</text>')
    out.append("</svg>")
    return "".join(out)


def _money(v: Any) -> str:
    try:
        return f"{float(v):,.2f}"
    except (TypeError, ValueError):
        return "—"


def _pnl_items(d: dict[str, dict[str, Any]]) -> list[tuple[str, float]]:
    out = []
    for k, v in d.items():
        try:
            out.append((k, float(v.get("total_base") or 0)))
        except (TypeError, ValueError):
            continue
    return sorted(out, key=lambda kv: -abs(kv[1]))[:40]


def _pnl_section(fig: RunFigures) -> list[str]:
    """Equity over time, P&L by strategy and by pair (the risk guard's PNL records)."""
    ccy = fig.base_currency
    if not fig.equity_curve and not fig.pnl_by_strategy:
        return ["<section><h2>Equity and P&amp;L</h2><p>No P&amp;L recorded in this range (the risk guard records "
                "a PNL event per trade and per mark interval).</p></section>"]
    t = fig.pnl_total
    rows = [("total", t.get("total_base")), ("realised less fees", t.get("realised_base")),
            ("unrealised", t.get("unrealised_base")), ("FX", t.get("fx_base")), ("fees", t.get("fees_base"))]
    out = ["<section><h2>Equity and P&amp;L</h2>",
           f"<p>In {_e(ccy)}, at the last mark of the range; price P&amp;L counts each realised amount at the "
           "FX rate of its trade, FX P&amp;L is what the rate moved since.</p><table>",
           *(f"<tr><th>{_e(k)}</th><td class='num'>{_e(_money(v))}</td></tr>" for k, v in rows),
           "</table>",
           line_chart(fig.equity_curve, title=f"Equity, all accounts ({ccy})", unit=ccy),
           f"<section>{signed_bars(_pnl_items(fig.pnl_by_strategy), title='P&L by strategy', unit=ccy)}</section>",
           f"<section>{signed_bars(_pnl_items(fig.pnl_by_pair), title='P&L by pair (strategy|pair)', unit=ccy)}</section>",
           "</section>"]
    return out


def trace_command(decision_id: str, ledger: str) -> str:
    """The ``xmc audit trace`` of one decision on this ledger, quoted to work as pasted."""
    return f"xmc audit trace {shlex.quote(decision_id)} --ledger {shlex.quote(ledger)}"


# ------------------------------------------------------------------------------ aggregation
def _bin_sql(col: str, t0: int, t1: int) -> str:
    return f"least(({col} - {t0}) * {TIME_BINS} // {max(t1 - t0, 1)}, {TIME_BINS - 1})::INTEGER"


def _timelines(con: Any, fig: RunFigures, since_ns: int | None, until_ns: int | None) -> dict[str, Any]:
    """Pairs, alerts and a latency sample on one time axis: market time for a replay, else the
    wall clock."""
    rng = " AND ".join(c for c in (f"ts_ns >= {int(since_ns)}" if since_ns is not None else "",
                                   f"ts_ns < {int(until_ns)}" if until_ns is not None else "") if c) or "TRUE"
    market = fig.replay
    if market:
        pairs_t = "SELECT p.outcome, m.market_ns AS t FROM _xmc_pairs p JOIN _xmc_market m USING (decision_id)"
        first = "(SELECT min(market_ns) FROM _xmc_market)"
        alerts_src = ("SELECT coalesce(m.market_ns, " + first + ") AS t, a.payload, a.reason FROM (SELECT ts_ns, payload, "
                      f"reason FROM events WHERE kind = 'ALERT' AND {rng}) a ASOF LEFT JOIN _xmc_market m "
                      "ON a.ts_ns >= m.wall_ns")
        lat_t = ("SELECT m.market_ns AS t, r.latency_us, r.venue FROM events r JOIN _xmc_market m USING (decision_id) "
                 f"WHERE r.kind = 'ORDER_REPORT' AND r.latency_us IS NOT NULL AND r.venue != '' AND {rng}")
        axis = "market time, UTC"
    else:
        pairs_t = "SELECT outcome, done_ns AS t FROM _xmc_pairs"
        alerts_src = f"SELECT ts_ns AS t, payload, reason FROM events WHERE kind = 'ALERT' AND {rng}"
        lat_t = ("SELECT ts_ns AS t, latency_us, venue FROM events WHERE kind = 'ORDER_REPORT' AND latency_us IS NOT NULL "
                 f"AND venue != '' AND {rng}")
        axis = "wall clock, UTC"
    lo_hi = con.execute(f"SELECT min(t), max(t) FROM ({pairs_t} UNION ALL SELECT t, NULL FROM ({alerts_src}))"
                        ).fetchall()[0]
    if lo_hi[0] is None:
        return {"axis": axis, "t0": 0, "t1": 0, "pairs": {}, "alerts": {}, "points": [], "sampled_of": 0}
    t0, t1 = int(lo_hi[0]), int(lo_hi[1])
    pairs: dict[int, dict[str, int]] = {}
    for b, outcome, n in con.execute(f"SELECT {_bin_sql('t', t0, t1)} AS b, outcome, count(*) FROM ({pairs_t}) "
                                     "GROUP BY ALL").fetchall():
        pairs.setdefault(int(b), {})[str(outcome)] = int(n)
    # an alert's level is in its payload (msgpack): decoded per alert, counted per bin
    from .figures import alert_level
    from .schema import unpack_payload
    alerts: dict[tuple[int, str], int] = {}
    bsql = _bin_sql("t", t0, t1)
    for batch in con.sql(f"SELECT {bsql} AS b, payload FROM ({alerts_src})").to_arrow_reader(65_536):
        for b, blob in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            key = (int(b), alert_level(unpack_payload(blob)))
            alerts[key] = alerts.get(key, 0) + 1
    n_lat = int(con.execute(f"SELECT count(*) FROM ({lat_t})").fetchall()[0][0])
    points = [(int(t), float(v) / 1000, str(venue)) for t, v, venue in con.execute(
        f"SELECT * FROM ({lat_t}) USING SAMPLE reservoir({SCATTER_POINTS} ROWS) REPEATABLE (7)").fetchall()]
    return {"axis": axis, "t0": t0, "t1": t1, "pairs": pairs, "alerts": alerts, "points": points, "sampled_of": n_lat}


def build_report(reader: AuditReader, since_ns: int | None = None, until_ns: int | None = None,
                 title: str = "xmc-actors audit report", figures: RunFigures | None = None) -> str:
    """The HTML report of the events in ``[since_ns, until_ns)`` (wall clock): the figures of
    :func:`~xmc_actors.ledger.figures.ledger_figures` (computed here unless given, for the same
    range) and the charts, every one of bounded size."""
    fig = figures if figures is not None else ledger_figures(reader, since_ns, until_ns)
    return _translating_call(reader, _build, reader, fig, since_ns, until_ns, title)


def _build(reader: AuditReader, fig: RunFigures, since_ns: int | None, until_ns: int | None, title: str) -> str:
    con = reader.con
    where, params = Filters(since_ns=since_ns, until_ns=until_ns).where()
    and_ = " AND " if where else " WHERE "
    n_events = int(con.execute(f"SELECT count(*) FROM events{where}", params).fetchall()[0][0])
    kinds = con.execute(f"SELECT kind, count(*) FROM events{where} GROUP BY 1 ORDER BY 2 DESC", params).fetchall()
    lat = con.execute(
        f"SELECT venue, count(*), quantile_cont(latency_us, 0.5), quantile_cont(latency_us, 0.9), "
        f"quantile_cont(latency_us, 0.99), max(latency_us) FROM events{where}{and_}kind = 'ORDER_REPORT' "
        "AND venue != '' AND latency_us IS NOT NULL GROUP BY venue ORDER BY venue", params).fetchall()
    n_escalated = fig.escalated
    escalated = con.execute("SELECT decision_id, done_ns FROM _xmc_pairs WHERE outcome = 'ESCALATED' "
                            f"ORDER BY done_ns LIMIT {MAX_TRACE_HINTS}").fetchall()
    tl = _timelines(con, fig, since_ns, until_ns)
    ledger = str(reader.root.resolve())
    sample_title = f"Order round-trip latency (a sample of {len(tl['points']):,} of {tl['sampled_of']:,} answers)"
    n_alerts = sum(fig.alerts_by_level.values())
    wall = fig.wall_span
    run_range = f"<b>{_e(fmt_ns(wall[0]))}</b> to <b>{_e(fmt_ns(wall[1]))}</b> UTC" if wall else "—"
    if fig.market_span:
        lo = min(a for a, _ in fig.market_span.values())
        hi = max(b for _, b in fig.market_span.values())
        if fig.replay:
            when = (f"<p>Market time (replayed data): <b>{_e(fmt_ns(lo))}</b> to <b>{_e(fmt_ns(hi))}</b> UTC; the "
                    f"timelines below are on market time. Run on the wall clock: {run_range}.</p>")
        else:
            when = (f"<p>Run on the wall clock: {run_range}; the timelines below are on the wall clock (live and "
                    f"replayed strategies ran together). Market time of the replayed strategies: "
                    + "; ".join(f"{_e(s)} <b>{_e(fmt_ns(a)[:10])}</b> to <b>{_e(fmt_ns(b)[:10])}</b>"
                                for s, (a, b) in sorted(fig.market_span.items())) + ".</p>")
    else:
        when = f"<p>Range (wall clock): {run_range}.</p>"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>body{{font-family:system-ui,Arial,sans-serif;margin:24px;color:#222}}"
        "section{margin:18px 0}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:left}.grid{display:flex;flex-wrap:wrap;gap:24px}.num{text-align:right}"
        "code{font-size:12px}svg{font-family:system-ui,Arial,sans-serif}</style></head><body>",
        f"<h1>{_e(title)}</h1>", when,
        f"<p>{n_events:,} events · {fig.pairs:,} pairs · {n_alerts:,} alerts ({_e(levels_text(fig.alerts_by_level))}) · "
        f"ledger: <code>{_e(ledger)}</code></p>",
        "<section><h2>Figures</h2><table>",
        *(f"<tr><th>{_e(label)}</th><td>{_e(text)}</td></tr>" for label, text in fig.rows()),
        "</table></section>",
        "<div class='grid'>",
        f"<section>{bar_chart([(k, float(fig.pairs_by_outcome[k])) for k in OUTCOMES if fig.pairs_by_outcome.get(k)], title=LABELS['pairs_by_outcome'].capitalize(), colours=OUTCOME_COLOURS)}</section>",
        f"<section>{histogram(fig.slippage_bps, title=LABELS['slippage_bps'].capitalize(), xlabel='bps, positive = worse than the trigger')}</section>",
        f"<section>{latency_chart(lat, title='Order round-trip latency per venue')}</section>",
        f"<section>{histogram(fig.unhedged_ms, title=LABELS['unhedged_ms'].capitalize(), xlabel='legs off their ratio (ms)')}</section>",
        "</div>",
        *_pnl_section(fig),
        f"<section>{stacked_timeline(tl['pairs'], OUTCOMES, OUTCOME_COLOURS, tl['t0'], tl['t1'], title='Pairs over time, by outcome', axis=tl['axis'])}</section>",
        f"<section>{alert_heat(tl['alerts'], tl['t0'], tl['t1'], title=f'Alerts over time, by level ({n_alerts:,})', axis=tl['axis'])}</section>",
        f"<section>{scatter(tl['points'], tl['t0'], tl['t1'], title=sample_title, axis=tl['axis'], ylabel='ms')}</section>",
    ]
    parts += _alert_table(fig)
    parts.append("<section><h2>Trace a pair</h2>")
    if fig.examples:
        parts.append("<table><tr><th>example</th><th>command</th></tr>")
        parts += [f"<tr><td>{_e(k)}</td><td><code>{_e(trace_command(d, ledger))}</code></td></tr>"
                  for k, d in fig.examples.items()]
        parts.append("</table>")
    parts.append(f"<h3>Escalated pairs ({n_escalated:,})</h3>")
    if escalated:
        parts.append("<table><tr><th>decision id</th><th>escalated at (UTC)</th><th>trace</th></tr>")
        parts += [f"<tr><td>{_e(dec)}</td><td>{_e(fmt_ns(ts))}</td><td><code>{_e(trace_command(dec, ledger))}</code></td></tr>"
                  for dec, ts in escalated]
        parts.append("</table>")
        if n_escalated > len(escalated):
            parts.append(f"<p>… and {n_escalated - len(escalated):,} more: <code>{_e('xmc audit query --kind PAIR_STATE --outcome ESCALATED --ledger ' + shlex.quote(ledger))}</code></p>")
    else:
        parts.append("<p>None.</p>")
    parts.append("</section><section><h2>Events by kind</h2><table><tr><th>kind</th><th>count</th></tr>")
    parts += [f"<tr><td>{_e(k)}</td><td class='num'>{v:,}</td></tr>" for k, v in kinds]
    parts.append("</table></section></body></html>")
    return "".join(parts)


def _alert_table(fig: RunFigures) -> list[str]:
    names = sorted(fig.alerts_by_name.items(), key=lambda kv: (-kv[1]["count"], kv[0]))
    if not names:
        return ["<section><h2>Alerts by name</h2><p>None.</p></section>"]
    out = ["<section><h2>Alerts by name</h2><table><tr><th>alert</th><th>highest level</th><th>count</th>"
           "<th>first (UTC)</th><th>last (UTC)</th></tr>"]
    out += [f"<tr><td>{_e(name)}</td><td>{_e(a['level'])}</td><td class='num'>{a['count']:,}</td>"
            f"<td>{_e(fmt_ns(a['first_ns']))}</td><td>{_e(fmt_ns(a['last_ns']))}</td></tr>"
            for name, a in names[:TOP_ALERT_NAMES]]
    out.append("</table>")
    rest = names[TOP_ALERT_NAMES:]
    if rest:
        out.append(f"<p>… and {len(rest):,} more names ({sum(a['count'] for _, a in rest):,} alerts).</p>")
    out.append("</section>")
    return out
