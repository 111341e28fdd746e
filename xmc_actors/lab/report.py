"""``xmc backtest --html``: one self-contained HTML page comparing the policies (inline SVG).

Figures as a table (each policy, and its ratio to the sequential baseline), outcome bars, and
the distributions behind the means: pair slippage, time to hedge, legging exposure per pair,
exception detection and rollback times, one histogram per policy so that tails can be compared.
"""
from __future__ import annotations

import html
from typing import Any

from ..ledger.figures import Dist
from ..ledger.report import OUTCOME_COLOURS, bar_chart, histogram
from .figures import RATIO_FIGURES

DISTRIBUTIONS = (
    ("slippage_pair_bps", "pair slippage", "bps of the trigger prices (+: adverse)"),
    ("time_to_hedge_ms", "time to hedged", "ms from the first order to both legs filled"),
    ("legging_exposure_base_s", "legging exposure per pair", "base currency x seconds unhedged"),
    ("exception_detection_ms", "exception detection", "ms from the venue's reject/expiry to the coordinator acting"),
    ("rollback_time_ms", "rollback time", "ms from ROLLING_BACK to the pair ending"),
)


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else _e(v)


def build_html(result: dict[str, Any]) -> str:
    policies = list(result["policies"])
    figs = {p: result["policies"][p]["figures"] for p in policies}
    ratios = result.get("ratios", {})
    names = list(next(iter(figs.values())).keys()) if figs else []
    out = ["<!doctype html><html><head><meta charset='utf-8'>",
           f"<title>xmc backtest: {_e(result['scenario'])}</title>",
           "<style>body{font-family:system-ui,Arial,sans-serif;margin:24px;max-width:1200px}"
           "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
           "text-align:right;font-size:13px}th:first-child,td:first-child{text-align:left}"
           ".grid{display:flex;flex-wrap:wrap;gap:12px}svg{font-family:system-ui,Arial,sans-serif}</style>"
           "</head><body>",
           f"<h1>Backtest: {_e(result['scenario'])}</h1>",
           f"<p>seed {result['seed']}, {result['quotes']:,} quotes"
           + (", <b>synthetic market data</b>" if result.get("synthetic_data") else "")
           + (f", rows skipped while loading: {_e(result['skipped_rows'])}" if result.get("skipped_rows") else "")
           + ". Every policy played the same quotes with the same seed. Definitions: docs/lab.md.</p>",
           "<h2>Figures</h2><table><tr><th>figure</th>"
           + "".join(f"<th>{_e(p)}</th>" for p in policies) + "</tr>"]
    for n in names:
        out.append(f"<tr><td>{_e(n)}</td>" + "".join(f"<td>{_num(figs[p].get(n))}</td>" for p in policies) + "</tr>")
    out.append("</table>")
    if ratios:
        others = [p for p in policies if p != "sequential"]
        out.append("<h2>Against the sequential baseline (分端操作)</h2><p>policy's figure / sequential's "
                   "(below 1 is better for failure rate, slippage, exposure, rollbacks and their cost, time to hedge)."
                   "</p><table><tr><th>figure</th>" + "".join(f"<th>{_e(p)}</th>" for p in others) + "</tr>")
        for n in RATIO_FIGURES:
            cells = [ratios.get(f"{p}_{n}_vs_sequential_ratio") for p in others]
            if any(c is not None for c in cells):
                out.append(f"<tr><td>{_e(n)}</td>" + "".join(f"<td>{_num(c) if c is not None else '–'}</td>"
                                                              for c in cells) + "</tr>")
        out.append("</table>")
    out.append("<h2>Outcomes</h2><div class='grid'>")
    for p in policies:
        f = figs[p]
        items = [("HEDGED", f["pairs_hedged"]), ("ROLLED_BACK", f["pairs_rolled_back"]),
                 ("ESCALATED", f["pairs_escalated"]), ("REFUSED", f["pairs_refused"])]
        out.append(bar_chart(items, title=p, colours=OUTCOME_COLOURS, width=380))
    out.append("</div>")
    for key, title, unit in DISTRIBUTIONS:
        out.append(f"<h2>{_e(title)}</h2><div class='grid'>")
        for p in policies:
            d = Dist.of(result["policies"][p]["distributions"].get(key, []))
            label = f"{p}: n={d.n}, p50 {d.p50:,.4g}, p95 {d.p95:,.4g}" if d.n else p
            out.append(histogram(d, title=label, xlabel=unit, width=380, height=200))
        out.append("</div>")
    pnl = {p: result["policies"][p].get("pnl_by_strategy", {}) for p in policies}
    strategies = sorted({s for d in pnl.values() for s in d})
    if strategies:
        out.append("<h2>P&amp;L after fees by strategy (base currency)</h2><table><tr><th>strategy</th>"
                   + "".join(f"<th>{_e(p)}</th>" for p in policies) + "</tr>")
        for s in strategies:
            out.append(f"<tr><td>{_e(s)}</td>" + "".join(f"<td>{_num(pnl[p].get(s, 0.0))}</td>" for p in policies) + "</tr>")
        out.append("</table>")
    if result.get("ledgers"):
        out.append("<h2>Ledgers</h2><ul>" + "".join(
            f"<li>{_e(p)}: <code>xmc audit report --ledger {_e(path)}</code></li>" for p, path in result["ledgers"].items())
            + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)
