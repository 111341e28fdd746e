"""The figures every view of a run shows, computed once from the ledger and labelled once.

The run summary (``xmc run``), the HTML report (``xmc audit report``) and ``xmc status`` used to
compute the same figures each its own way and call them different names: the summary read the
coordinator's memory (unhedged exposure p50 0.0 ms) while the report timed first fill to the
risk guard's BOOKED record (p50 6.5 ms, the booking's own delay); the summary counted "rolled
back" as pairs with an unwind order *or* ending ROLLED_BACK (17) beside the report's outcome
ROLLED_BACK (12). Here each figure has one definition, one function and one label
(:data:`LABELS`), and :meth:`RunFigures.rows` is the text both the summary and the report print.

Definitions (events in ``[since_ns, until_ns)`` of the ledger's ``ts_ns``, the wall clock):

* **pairs**: decisions with a ``PAIR_STATE`` in the range; a pair's **outcome** is the state of
  its last ``PAIR_STATE`` (by ``ts_ns``, then ``event_id``) when terminal (HEDGED, ROLLED_BACK,
  ESCALATED, REFUSED), else ``OPEN``;
* **replenished (补单)**: pairs that sent a replenishment (a ``REPLENISH`` event);
* **unwound a filled leg (回滚)**: pairs that sent a rollback order (a ``ROLLBACK`` event), whatever
  they ended as. A pair that ends ROLLED_BACK without one (nothing had filled) is not counted
  here; one that unwound part of a leg and then hedged is;
* **slippage vs trigger per leg (bps)**: each entry leg's average fill price (over its entry
  orders, unwinds excluded) against its trigger price, positive is worse, as the coordinator's
  pair summary computes it, from each order's last ``ORDER_REPORT``;
* **unhedged exposure per traded pair (ms)**: the time the pair's legs were off their ratio, as
  the coordinator measured it (``unhedged_ms`` of its terminal ``PAIR_STATE``), over pairs that
  had a fill;
* **alerts by level**: ``ALERT`` events by their level; each alert's **name** is its monitor and
  scope (:func:`alert_name`);
* **market time (replayed)**: per strategy, the span of the market time its decisions were
  taken at (``market_ts_ns`` of a decision's first ``SIGNAL``, when it is not the wall clock);
* **P&L** (base currency): the risk guard's last ``PNL`` ``MARK`` record of the range (total,
  realised less fees, unrealised, FX; per strategy and per pair), and **equity** (base
  currency, all accounts) from its first to its last ``MARK`` record; the equity curve is at
  most :data:`EQUITY_POINTS` points (the last record of each time bin); trades are the
  ``PNL`` ``TRADE`` records;
* **capital occupancy (overall)**: margin over equity, all accounts in the base currency, its
  lowest, highest and last value over the range's ``MARK`` records.

Every query streams or aggregates in DuckDB; Python holds a histogram per distribution, not the
values, so a ledger of any size gives figures of the same size.
"""
from __future__ import annotations

import dataclasses
import math
from array import array
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from ..core.stats import percentile
from .schema import TERMINAL_OUTCOMES, unpack_payload

OUTCOMES = ("HEDGED", "ROLLED_BACK", "ESCALATED", "REFUSED", "OPEN")
LEVELS = ("info", "yellow", "orange", "red")
#: one label per figure, in every view
LABELS = {
    "pairs_by_outcome": "pairs by outcome",
    "replenished": "pairs that replenished (补单)",
    "unwound": "pairs that unwound a filled leg (回滚)",
    "escalated": "pairs escalated",
    "slippage_bps": "slippage vs trigger per leg (bps)",
    "unhedged_ms": "unhedged exposure per traded pair (ms)",
    "alerts_by_level": "alerts by level",
    "market_time": "market time (replayed)",
    "pnl": "P&L",
    "pnl_by_strategy": "P&L by strategy",
    "equity": "equity (all accounts)",
    "occupancy": "capital occupancy (overall)",
}
EQUITY_POINTS = 240
HIST_BINS = 30
# an event whose market time is within this of its wall time was not replayed (as audit.Trace)
_SLACK_NS = 3_600 * 1_000_000_000
_BATCH = 65_536


@dataclass
class Dist:
    """A distribution: count, percentiles (the project's one rule, :func:`percentile`) and a
    histogram of :data:`HIST_BINS` equal bins over ``[lo, hi]``."""

    n: int = 0
    p50: float = 0.0
    p95: float = 0.0
    max: float = 0.0
    lo: float = 0.0
    hi: float = 0.0
    counts: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, values: Iterable[float], bins: int = HIST_BINS) -> "Dist":
        v = sorted(x for x in values if not math.isnan(x))
        if not v:
            return cls()
        lo, hi = v[0], v[-1]
        counts = [0] * bins
        width = (hi - lo) or 1.0
        for x in v:
            counts[min(int((x - lo) / width * bins), bins - 1)] += 1
        return cls(len(v), percentile(v, 0.5), percentile(v, 0.95), hi, lo, hi, counts)

    def summary(self) -> dict[str, float]:
        """``{p50, p95, max}`` (empty when there are no values): the run summary's fields."""
        return {"p50": self.p50, "p95": self.p95, "max": self.max} if self.n else {}

    def text(self, digits: int) -> str:
        if not self.n:
            return "none"
        def num(x: float) -> str:  # a value that rounds to zero is 0, not -0
            return f"{round(x, digits) + 0.0:.{digits}f}"
        return f"p50 {num(self.p50)}  p95 {num(self.p95)}  max {num(self.max)}  (n {self.n:,})"


@dataclass
class RunFigures:
    """What the pairs of a range came to; :meth:`rows` is what every view prints."""

    since_ns: int | None = None
    until_ns: int | None = None
    pairs_by_outcome: dict[str, int] = field(default_factory=dict)
    replenished: int = 0
    unwound: int = 0
    slippage_bps: Dist = field(default_factory=Dist)
    unhedged_ms: Dist = field(default_factory=Dist)
    alerts_by_level: dict[str, int] = field(default_factory=dict)
    #: alert name -> {"count", "level" (the highest), "first_ns", "last_ns"}
    alerts_by_name: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: strategy -> (first, last) market time of its replayed decisions (ns)
    market_span: dict[str, tuple[int, int]] = field(default_factory=dict)
    market_pairs: int = 0  # pairs decided in replayed market time
    wall_span: tuple[int, int] | None = None  # first and last event of the range (ns, wall clock)
    open_pairs: list[str] = field(default_factory=list)  # at most 1000, oldest first
    examples: dict[str, str] = field(default_factory=dict)  # "a rolled-back pair" -> decision id
    base_currency: str = ""
    #: the last PNL MARK's total (base): realised_base, unrealised_base, fees_base, fx_base, total_base...
    pnl_total: dict[str, Any] = field(default_factory=dict)
    pnl_by_strategy: dict[str, dict[str, Any]] = field(default_factory=dict)
    pnl_by_pair: dict[str, dict[str, Any]] = field(default_factory=dict)   # "strategy|pair" -> figures
    equity_curve: list[tuple[int, float]] = field(default_factory=list)      # (ts_ns, equity in base)
    pnl_trades: int = 0
    occupancy: tuple[float, float, float] | None = None   # (min, max, last) overall, from the MARK records

    @property
    def pairs(self) -> int:
        return sum(self.pairs_by_outcome.values())

    @property
    def escalated(self) -> int:
        return self.pairs_by_outcome.get("ESCALATED", 0)

    @property
    def replay(self) -> bool:
        """Every pair was decided in replayed market time (and there are pairs)."""
        return self.market_pairs > 0 and self.market_pairs == self.pairs

    def rows(self) -> list[tuple[str, str]]:
        """``(label, text)`` of each figure, in the order every view shows them."""
        out = [(LABELS["pairs_by_outcome"], outcomes_text(self.pairs_by_outcome)),
               (LABELS["replenished"], f"{self.replenished:,}"),
               (LABELS["unwound"], f"{self.unwound:,}"),
               (LABELS["escalated"], f"{self.escalated:,}"),
               (LABELS["slippage_bps"], self.slippage_bps.text(2)),
               (LABELS["unhedged_ms"], self.unhedged_ms.text(1)),
               (LABELS["alerts_by_level"], levels_text(self.alerts_by_level))]
        if self.market_span:
            out.append((LABELS["market_time"], market_text(self.market_span)))
        if self.pnl_total or self.pnl_trades:
            out.append((LABELS["pnl"], pnl_text(self.pnl_total, self.base_currency, self.pnl_trades)))
        if self.pnl_by_strategy:
            def tot(f: dict[str, Any]) -> float:
                try:
                    return float(f.get("total_base") or 0)
                except (TypeError, ValueError):
                    return 0.0
            out.append((LABELS["pnl_by_strategy"], ", ".join(
                f"{k} {tot(v):+,.2f}" for k, v in sorted(self.pnl_by_strategy.items(), key=lambda kv: -abs(tot(kv[1]))))))
        if self.equity_curve:
            a, b = self.equity_curve[0][1], self.equity_curve[-1][1]
            out.append((LABELS["equity"], f"{a:,.2f} to {b:,.2f} {self.base_currency} ({b - a:+,.2f})"))
        if self.occupancy is not None:
            lo, hi, last = self.occupancy
            out.append((LABELS["occupancy"], f"min {lo * 100:.2f}%, max {hi * 100:.2f}%, last {last * 100:.2f}% "
                                             "(margin / equity)"))
        return out

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def pad(label: str, width: int) -> str:
    """``label`` padded to ``width`` terminal cells (a CJK character takes two)."""
    import unicodedata
    cells = sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in label)
    return label + " " * max(width - cells, 1)


def outcomes_text(counts: dict[str, int]) -> str:
    """``HEDGED 247, ROLLED_BACK 8, REFUSED 1``: outcomes in :data:`OUTCOMES` order, then others."""
    keys = [k for k in OUTCOMES if counts.get(k)] + sorted(k for k in counts if k not in OUTCOMES and counts[k])
    return ", ".join(f"{k} {counts[k]:,}" for k in keys) or "none"


def pnl_text(total: dict[str, Any], ccy: str, trades: int) -> str:
    """``+1,234.50 USD (realised less fees +1,000.00, unrealised +300.00, FX -65.50; fees 12.00), 18 trades``."""
    def n(k: str) -> str:
        try:
            return f"{float(total.get(k) or 0):+,.2f}"
        except (TypeError, ValueError):
            return "?"
    if not total:
        return f"no mark recorded yet, {trades:,} trades"
    return (f"{n('total_base')} {ccy} (realised less fees {n('realised_base')}, unrealised {n('unrealised_base')}, "
            f"FX {n('fx_base')}; fees {n('fees_base').lstrip('+')}), {trades:,} trades")


def levels_text(counts: dict[str, int]) -> str:
    keys = [k for k in LEVELS if counts.get(k)] + sorted(k for k in counts if k not in LEVELS and counts[k])
    return ", ".join(f"{k} {counts[k]:,}" for k in keys) or "none"


def market_text(span: dict[str, tuple[int, int]]) -> str:
    from .audit import fmt_ns
    return "; ".join(f"{s or '(no strategy)'} {fmt_ns(a)[:10]} to {fmt_ns(b)[:10]}" for s, (a, b) in sorted(span.items()))


def alert_name(payload: dict[str, Any], reason: str = "") -> str:
    """An alert's name: its monitor and what it watches (``unhedged strategy=cu``,
    ``venue_state venue=LME``, ``actor_fault``), else its reason, else ``alert``."""
    monitor = str(payload.get("monitor") or "")
    scope, key = str(payload.get("scope") or ""), str(payload.get("key") or "")
    if monitor:
        return f"{monitor} {scope}={key}" if key and scope not in ("", "global") else monitor
    return reason or str(payload.get("message") or "") or "alert"


def alert_level(payload: dict[str, Any]) -> str:
    return str(payload.get("level") or "info").lower()


# ------------------------------------------------------------------------------------ queries
def _range(since_ns: int | None, until_ns: int | None, col: str = "ts_ns") -> str:
    conds = []
    if since_ns is not None:
        conds.append(f"{col} >= {int(since_ns)}")
    if until_ns is not None:
        conds.append(f"{col} < {int(until_ns)}")
    return " AND ".join(conds) or "TRUE"


def _batches(con: Any, sql: str) -> Iterable[pa.RecordBatch]:
    yield from con.sql(sql).to_arrow_reader(_BATCH)


def ledger_figures(reader: Any, since_ns: int | None = None, until_ns: int | None = None) -> RunFigures:
    """The figures of the pairs of ``[since_ns, until_ns)`` in the ledger ``reader`` reads
    (an :class:`~xmc_actors.ledger.audit.AuditReader`). Leaves temporary tables ``_xmc_pairs``
    (decision_id, strategy, outcome, done_ns) and ``_xmc_market`` (decision_id, strategy,
    wall_ns, market_ns) on its connection for the report's timelines."""
    from .audit import _translating_call
    return _translating_call(reader, _figures, reader.con, since_ns, until_ns)


def _figures(con: Any, since_ns: int | None, until_ns: int | None) -> RunFigures:
    fig = RunFigures(since_ns=since_ns, until_ns=until_ns)
    until = _range(None, until_ns)
    rng = _range(since_ns, until_ns)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _xmc_pairs AS "
        "SELECT decision_id, strategy, CASE WHEN last IN " + repr(TERMINAL_OUTCOMES) + " THEN last ELSE 'OPEN' END "
        "AS outcome, done_ns FROM (SELECT decision_id, arg_max(strategy, (ts_ns, event_id)) AS strategy, "
        "arg_max(outcome, (ts_ns, event_id)) AS last, max(ts_ns) AS done_ns FROM events "
        f"WHERE kind = 'PAIR_STATE' AND decision_id != '' AND {until} GROUP BY decision_id) "
        f"WHERE {_range(since_ns, None, 'done_ns')}").fetchall()
    got = con.execute("SELECT outcome, count(*) FROM _xmc_pairs GROUP BY 1").fetchall()
    fig.pairs_by_outcome = {k: int(got_n) for k in OUTCOMES for o, got_n in got if o == k}
    fig.open_pairs = [d for (d,) in con.execute(
        "SELECT decision_id FROM _xmc_pairs WHERE outcome = 'OPEN' ORDER BY done_ns LIMIT 1000").fetchall()]
    span = con.execute(f"SELECT min(ts_ns), max(ts_ns) FROM events WHERE {rng}").fetchall()[0]
    fig.wall_span = (int(span[0]), int(span[1])) if span[0] is not None else None
    kinds = dict(con.execute(
        f"SELECT kind, count(DISTINCT decision_id) FROM events WHERE kind IN ('REPLENISH', 'ROLLBACK') AND {until} "
        "AND decision_id IN (SELECT decision_id FROM _xmc_pairs) GROUP BY 1").fetchall())
    fig.replenished, fig.unwound = int(kinds.get("REPLENISH", 0)), int(kinds.get("ROLLBACK", 0))
    fig.examples = _examples(con, until)
    fig.slippage_bps = Dist.of(_leg_slippage(con, until))
    fig.unhedged_ms = Dist.of(_unhedged(con, until))
    _alerts(con, rng, fig)
    _market(con, until, fig)
    _pnl(con, rng, fig)
    return fig


def _pnl(con: Any, rng: str, fig: RunFigures) -> None:
    """The P&L figures and the equity curve from the risk guard's ``PNL`` records."""
    fig.pnl_trades = int(con.execute(f"SELECT count(*) FROM events WHERE kind = 'PNL' AND reason = 'TRADE' AND {rng}")
                         .fetchall()[0][0])
    lo, hi, n = con.execute(f"SELECT min(ts_ns), max(ts_ns), count(*) FROM events WHERE kind = 'PNL' "
                            f"AND reason = 'MARK' AND {rng}").fetchall()[0]
    if not n:
        return
    width = max((int(hi) - int(lo)) // EQUITY_POINTS, 1)
    points: dict[int, tuple[int, float]] = {}
    last: tuple[int, dict[str, Any]] | None = None
    first: tuple[int, float] | None = None
    occ: tuple[float, float, float] | None = None
    for b in _batches(con, f"SELECT ts_ns, payload FROM events WHERE kind = 'PNL' AND reason = 'MARK' AND {rng} "
                           "ORDER BY ts_ns, event_id"):
        for ts, blob in zip(b.column(0).to_pylist(), b.column(1).to_pylist()):
            p = unpack_payload(blob)
            try:
                eq = float(p.get("equity_base"))
            except (TypeError, ValueError):
                continue
            k = (int(ts) - int(lo)) // width
            if first is None:
                first = (int(ts), eq)
            points[k] = (int(ts), eq)   # the last record of each bin
            last = (int(ts), p)
            o = p.get("occupancy")
            if isinstance(o, (int, float)) and not isinstance(o, bool) and math.isfinite(o):
                occ = (min(occ[0], o), max(occ[1], o), o) if occ else (o, o, o)
    if first is not None:
        fig.equity_curve = [first] + [points[k] for k in sorted(points) if points[k] != first]
    fig.occupancy = occ
    if last is not None:
        p = last[1]
        fig.base_currency = str(p.get("base_currency") or "")
        fig.pnl_total = dict(p.get("total") or {})
        fig.pnl_by_strategy = {str(k): dict(v) for k, v in (p.get("strategies") or {}).items()}
        fig.pnl_by_pair = {str(k): dict(v) for k, v in (p.get("pairs") or {}).items()}


def _examples(con: Any, until: str) -> dict[str, str]:
    """One decision id of each kind of pair worth tracing, the first of its kind.

    "A rolled-back pair" is the first pair that sent an unwind and ended ``ROLLED_BACK``; only when
    there is none, the first that sent an unwind whatever its end (a sub-lot residual can still
    end a pair that unwound ``HEDGED``), then the first that ended ``ROLLED_BACK``.
    """
    unwound = con.execute(
        "SELECT e.decision_id FROM events e JOIN _xmc_pairs p USING (decision_id) WHERE e.kind = 'ROLLBACK' "
        f"AND {until} AND p.outcome != 'OPEN' ORDER BY p.outcome != 'ROLLED_BACK', e.ts_ns LIMIT 1").fetchone()
    rows = con.execute(
        "SELECT outcome, arg_min(decision_id, done_ns) FILTER (WHERE NOT replenished), "
        "arg_min(decision_id, done_ns) FILTER (WHERE replenished) FROM (SELECT p.*, r.decision_id IS NOT NULL "
        "AS replenished FROM _xmc_pairs p LEFT JOIN (SELECT DISTINCT decision_id FROM events WHERE kind = "
        f"'REPLENISH' AND {until}) r USING (decision_id)) GROUP BY outcome").fetchall()
    by = {o: (plain, repl) for o, plain, repl in rows}
    out: dict[str, str] = {}
    if unwound:
        out["a rolled-back pair"] = unwound[0]
    elif by.get("ROLLED_BACK"):
        out["a rolled-back pair"] = by["ROLLED_BACK"][0] or by["ROLLED_BACK"][1]
    if by.get("HEDGED", (None, None))[1]:
        out["a replenished pair"] = by["HEDGED"][1]
    if by.get("HEDGED", (None, None))[0]:
        out["a hedged pair"] = by["HEDGED"][0]
    if by.get("ESCALATED"):
        out["an escalated pair"] = by["ESCALATED"][0] or by["ESCALATED"][1]
    return out


def _dec(v: Any) -> Decimal | None:
    if v is None or v == "":
        return None
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _leg_slippage(con: Any, until: str) -> array:
    """Each entry leg's slippage (bps): its entry orders' average fill price against the
    trigger (``ref_price``, which unwinds do not carry), from each order's last report."""
    sql = ("SELECT decision_id, instrument, arg_max(payload, (ts_ns, event_id)) AS payload FROM events "
           f"WHERE kind = 'ORDER_REPORT' AND order_id != '' AND {until} "
           "AND decision_id IN (SELECT decision_id FROM _xmc_pairs) GROUP BY decision_id, instrument, order_id "
           "ORDER BY decision_id, instrument")
    out = array("d")
    key: tuple[str, str] | None = None
    qty, notional, ref, sign = 0, Decimal(0), None, 1

    def close() -> None:
        if qty and ref:
            out.append(float((notional / qty - ref) * sign / ref * 10_000))

    for b in _batches(con, sql):
        for did, inst, blob in zip(*(b.column(i).to_pylist() for i in range(3))):
            if (did, inst) != key:
                close()
                key, qty, notional, ref, sign = (did, inst), 0, Decimal(0), None, 1
            if not blob or b"ref_price" not in blob:
                continue
            p = unpack_payload(blob)
            r, px = _dec(p.get("ref_price")), _dec(p.get("price"))
            filled = p.get("filled")
            if filled is None and str(p.get("status", "")).upper() == "FILLED":
                filled = p.get("qty")
            if r is None or r == 0 or px is None or not isinstance(filled, int) or filled <= 0:
                continue
            ref = r
            sign = -1 if str(p.get("side", "BUY")).upper() == "SELL" else 1
            qty += filled
            notional += px * filled
    close()
    return out


def _unhedged(con: Any, until: str) -> array:
    sql = ("SELECT arg_max(payload, (ts_ns, event_id)) FROM events WHERE kind = 'PAIR_STATE' AND outcome IN "
           f"{TERMINAL_OUTCOMES!r} AND {until} AND decision_id IN (SELECT decision_id FROM _xmc_pairs WHERE "
           "outcome != 'OPEN') AND decision_id IN (SELECT decision_id FROM events WHERE kind = 'ORDER_REPORT' "
           f"AND outcome IN ('FILLED', 'PARTIALLY_FILLED') AND {until}) GROUP BY decision_id")
    out = array("d")
    for b in _batches(con, sql):
        for blob in b.column(0).to_pylist():
            if blob and b"unhedged_ms" in blob:
                v = unpack_payload(blob).get("unhedged_ms")
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out.append(float(v))
    return out


_RANK = {lvl: i for i, lvl in enumerate(LEVELS)}


def _alerts(con: Any, rng: str, fig: RunFigures) -> None:
    levels: dict[str, int] = {}
    names: dict[str, dict[str, Any]] = {}
    for b in _batches(con, f"SELECT ts_ns, reason, payload FROM events WHERE kind = 'ALERT' AND {rng}"):
        for ts, reason, blob in zip(*(b.column(i).to_pylist() for i in range(3))):
            p = unpack_payload(blob)
            lvl = alert_level(p)
            levels[lvl] = levels.get(lvl, 0) + 1
            n = names.get(name := alert_name(p, reason or ""))
            if n is None:
                names[name] = {"count": 1, "level": lvl, "first_ns": ts, "last_ns": ts}
                continue
            n["count"] += 1
            n["first_ns"], n["last_ns"] = min(n["first_ns"], ts), max(n["last_ns"], ts)
            if _RANK.get(lvl, -1) > _RANK.get(n["level"], -1):
                n["level"] = lvl
    fig.alerts_by_level = {k: levels[k] for k in sorted(levels, key=lambda k: (_RANK.get(k, 99), k))}
    fig.alerts_by_name = names


def _market(con: Any, until: str, fig: RunFigures) -> None:
    """``_xmc_market``: the market time each pair was decided at (its first SIGNAL's
    ``market_ts_ns``, when that is not the wall clock), and the span per strategy."""
    sql = ("SELECT decision_id, arg_min(strategy, (ts_ns, event_id)) AS strategy, min(ts_ns) AS wall_ns, "
           "arg_min(payload, (ts_ns, event_id)) AS payload FROM events WHERE kind = 'SIGNAL' AND decision_id != '' "
           f"AND {until} AND decision_id IN (SELECT decision_id FROM _xmc_pairs) GROUP BY decision_id")
    parts = []
    for b in _batches(con, sql):
        wall = b.column(2).to_pylist()
        market = []
        for w, blob in zip(wall, b.column(3).to_pylist()):
            m = unpack_payload(blob).get("market_ts_ns") if blob and b"market_ts_ns" in blob else None
            market.append(m if isinstance(m, int) and abs(m - w) > _SLACK_NS else None)
        m_arr = pa.array(market, pa.int64())
        keep = pc.is_valid(m_arr)
        parts.append(pa.table({"decision_id": pc.filter(b.column(0), keep), "strategy": pc.filter(b.column(1), keep),
                               "wall_ns": pc.filter(b.column(2), keep), "market_ns": pc.filter(m_arr, keep)}))
    schema = pa.schema([("decision_id", pa.string()), ("strategy", pa.string()), ("wall_ns", pa.int64()),
                        ("market_ns", pa.int64())])
    table = pa.concat_tables([t.cast(schema) for t in parts]) if parts else schema.empty_table()
    con.register("_xmc_market_arrow", table)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _xmc_market AS SELECT * FROM _xmc_market_arrow").fetchall()
    finally:
        con.unregister("_xmc_market_arrow")
    fig.market_pairs = int(con.execute("SELECT count(*) FROM _xmc_market").fetchall()[0][0])
    fig.market_span = {s or "": (int(a), int(b)) for s, a, b in con.execute(
        "SELECT strategy, min(market_ns), max(market_ns) FROM _xmc_market GROUP BY 1").fetchall()}


__all__ = ["Dist", "LABELS", "OUTCOMES", "LEVELS", "RunFigures", "alert_level", "alert_name", "ledger_figures",
           "levels_text", "market_text", "outcomes_text", "pad", "pnl_text"]
