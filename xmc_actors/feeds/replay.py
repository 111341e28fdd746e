"""Replay of recorded market data: file loaders and the bar -> quote rule.

Loaders return the rows they kept and a :class:`LoadReport` saying what they skipped or
adjusted and why (line number, reason); they never silently drop a row.

Files (``format`` in :class:`~xmc_actors.feeds.config.ReplayFile`):

* ``sge_daily``: SGE Au99.99, columns ``date,open,close,low,high`` (close *before* low/high).
* ``comex_daily``: ``date,open,high,low,close,volume,position,s,settlement``; a settlement of
  0 means "not given".
* ``ohlc_csv``: any CSV with ``date,open,high,low,close`` columns (any order), optional
  ``settlement``.
* ``fred_fx``: FRED series ``date,<SERIES>``; blank or ``.`` values (US holidays, no fixing)
  are skipped. Use :func:`load_fred_fx` for an FX series (USDCNY).
* ``quotes_csv`` / ``quotes_parquet``: one quote per row, columns ``ts`` (ns since the epoch,
  or ISO-8601), ``bid``, ``ask``, optional ``bid_size``, ``ask_size``, ``last``, ``instrument``.

**Bars become quotes** by this rule: each daily bar gives one quote at its close, stamped one
minute before the end of the last session of that trading day in the venue's time zone (SGE
15:29 Shanghai, COMEX 16:59 New York), so a session-enforcing venue is open at that instant.
The quote's price is the close on the tick grid; ``bid = close - floor(spread_ticks/2)``
ticks and ``ask = bid + spread_ticks`` ticks; sizes are ``size`` lots each side; ``last`` is
the close; ``settlement`` (the reference of daily price limits) is the previous bar's
settlement. A replay feed (``limit_reference`` of its parameters) takes it from the file's
settlement column only, by default: most published daily files have none, and a limit invented
from the previous *close* refuses real moves (a close 3.2% from the last close can be 2.9% from
the settlement the exchange's limit is set from), so such a replay carries no reference and the
simulated venue checks no limit; ``limit_reference: previous_close`` restores the close as the
reference (what :func:`bars_to_quotes` does by default).

**Odd prints**: a high more than ``odd_print_pct`` (default 3%) above ``max(open, close)``
(SGE 2017-04-13: high 300.0 against a close of 286.69), or a low as far below
``min(open, close)``, is clipped to that body and reported as adjusted. A row whose OHLC is
inconsistent (high < low, close outside [low, high] after clipping), not a positive number,
not a date, or a date not after the previous row is skipped, and so is a flat placeholder bar
(high == low with no volume and the previous close repeated, as COMEX prints on 25 December; a
flat bar with volume or at a new price, such as a limit-locked day, is kept); an open or close
outside [low, high] (SGE's close is a weighted average) widens the range and is reported as
adjusted. A valid close with a blank open, high or low is kept, the close standing for the blanks
(reported as adjusted). Every quote made from a bar is marked ``origin="close"``.

``csv``: a CSV of any layout read through a column mapping (:mod:`xmc_actors.feeds.csv_source`).
"""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable

from ..core.calendar import session_window
from ..model.market import Instrument, Venue
from ..model.quotes import ORIGIN_CLOSE, Quote

_NS = 1_000_000_000


@dataclass
class LoadReport:
    """What a loader did: rows read, kept, skipped (with reasons) and adjusted."""

    path: str
    rows: int = 0
    kept: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    adjusted: list[tuple[int, str]] = field(default_factory=list)

    def skip(self, line: int, reason: str) -> None:
        self.skipped.append((line, reason))

    def by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, r in self.skipped:
            key = r.split(":")[0]
            out[key] = out.get(key, 0) + 1
        return out

    def as_dict(self, examples: int = 5) -> dict[str, Any]:
        """Plain data (what the gateway records in the ledger and the run summary shows): rows
        read, kept, skipped (count, by reason, the first ``examples`` with their lines), adjusted."""
        return {"path": self.path, "rows": self.rows, "kept": self.kept, "skipped": len(self.skipped),
                "skipped_by_reason": self.by_reason(),
                "first_skipped": [f"line {line}: {why}" for line, why in self.skipped[:examples]],
                "adjusted": len(self.adjusted)}

    def summary(self) -> str:
        parts = [f"{self.path}: {self.rows} rows, {self.kept} kept, {len(self.skipped)} skipped"]
        for k, n in sorted(self.by_reason().items()):
            parts.append(f"  {n} x {k}")
        for line, why in self.adjusted[:10]:
            parts.append(f"  adjusted line {line}: {why}")
        return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class Bar:
    date: dt.date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    settlement: Decimal | None = None


def _num(s: str | None) -> Decimal | None:
    if s is None:
        return None
    s = s.strip()
    if not s or s == ".":
        return None
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _read(path: str | Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"replay file {p} does not exist")
    with p.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        rows = []
        for k, row in enumerate(reader, start=2):
            rows.append((k, {(kk or "").strip().lower(): (v or "") for kk, v in row.items()}))
    return header, rows


def ohlc_or_close(line: int, day: object, o: Decimal | None, h: Decimal | None, lo: Decimal | None,
                  c: Decimal, rep: LoadReport, *, use_close: bool = True) -> tuple[Decimal, Decimal, Decimal] | None:
    """A bar with a close and a blank open, high or low: the close stands for the blanks
    (reported as adjusted), or, with ``use_close=False``, the row is skipped. A trading day with a
    valid close is a trading day: dropping it would open a hole in both legs' history."""
    if o is not None and h is not None and lo is not None:
        return o, h, lo
    blank = ",".join(k for k, v in (("open", o), ("high", h), ("low", lo)) if v is None)
    if not use_close:
        rep.skip(line, f"blank {blank} (missing_ohl: skip): {day}")
        return None
    rep.adjusted.append((line, f"blank {blank} on {day}: the close {c} used for {'it' if ',' not in blank else 'them'}"))
    return (c if o is None else o), (c if h is None else h), (c if lo is None else lo)


def check_bar(line: int, day: object, o: Decimal, h: Decimal, lo: Decimal, c: Decimal, rep: LoadReport, *,
              volume: Decimal | None = None, prev_close: Decimal | None = None,
              odd_print_pct: Decimal = Decimal("0.03"), has_range: bool = True
              ) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
    """The bar rules of this module's docstring for one row: the (possibly clipped or widened)
    ``open, high, low, close``, or None when the row is skipped (the reason is in ``rep``).
    ``has_range=False``: a close-only file (open, high and low are the close): never a placeholder."""
    if min(o, h, lo, c) <= 0:
        rep.skip(line, f"non-positive price: {day}")
        return None
    body_hi, body_lo = max(o, c), min(o, c)
    if h > body_hi * (1 + odd_print_pct):
        rep.adjusted.append((line, f"odd print {day}: high {h} is {(h / body_hi - 1) * 100:.1f}% above "
                                   f"max(open, close) {body_hi}; clipped"))
        h = body_hi
    if lo < body_lo * (1 - odd_print_pct):
        rep.adjusted.append((line, f"odd print {day}: low {lo} is {(1 - lo / body_lo) * 100:.1f}% below "
                                   f"min(open, close) {body_lo}; clipped"))
        lo = body_lo
    if h == lo and has_range and not (volume is not None and volume > 0) and (
            prev_close is not None and abs(c - prev_close) <= prev_close * FLAT_REPEAT):
        # no range, no volume and the previous close again: what COMEX prints on 25 December. A
        # flat bar with volume, or at a new price (a limit-locked day), is a real trading day
        rep.skip(line, f"flat placeholder bar (no range, no volume, the previous close repeated; a holiday): "
                       f"{day} {o}/{h}/{lo}/{c}")
        return None
    if h < lo:
        rep.skip(line, f"inconsistent OHLC: {day} high {h} below low {lo}")
        return None
    if not (lo <= c <= h) or not (lo <= o <= h):
        # SGE's close is a weighted average and can sit outside the day's range
        rep.adjusted.append((line, f"open/close outside low/high on {day} (open {o} close {c} "
                                   f"low {lo} high {h}); range widened"))
        h, lo = max(h, o, c), min(lo, o, c)
    return o, h, lo, c


#: a flat bar whose close is within this fraction of the previous close repeats it (a placeholder)
FLAT_REPEAT = Decimal("0.0001")


def load_bars(path: str | Path, fmt: str = "ohlc_csv", *, odd_print_pct: Decimal = Decimal("0.03")) -> tuple[list[Bar], LoadReport]:
    """Load daily OHLC bars (``sge_daily``, ``comex_daily`` or ``ohlc_csv``)."""
    header, rows = _read(path)
    rep = LoadReport(str(path))
    need = {"date", "open", "high", "low", "close"}
    if not need <= set(header):
        raise ValueError(f"{path}: format {fmt} needs columns {sorted(need)}, found {header}")
    if fmt == "sge_daily" and header[:5] != ["date", "open", "close", "low", "high"]:
        raise ValueError(f"{path}: sge_daily expects columns date,open,close,low,high; found {','.join(header)}")
    bars: list[Bar] = []
    prev: dt.date | None = None
    for line, row in rows:
        rep.rows += 1
        try:
            day = dt.date.fromisoformat(row["date"].strip())
        except ValueError:
            rep.skip(line, f"bad date: {row['date']!r}")
            continue
        o, h, lo, c = (_num(row[k]) for k in ("open", "high", "low", "close"))
        if c is None:
            rep.skip(line, f"missing or non-numeric close: {day}")
            continue
        bad = [k for k, v in (("open", o), ("high", h), ("low", lo)) if v is None and row[k].strip() not in ("", ".")]
        if bad:
            rep.skip(line, f"missing or non-numeric price: {day} {','.join(bad)} not a number")
            continue
        ohl = ohlc_or_close(line, day, o, h, lo, c, rep)
        assert ohl is not None
        if prev is not None and day <= prev:
            rep.skip(line, f"date not after previous row: {day} after {prev}")
            continue
        checked = check_bar(line, day, *ohl, c, rep, volume=_num(row.get("volume")),
                            prev_close=bars[-1].close if bars else None, odd_print_pct=odd_print_pct)
        if checked is None:
            continue
        settle = _num(row.get("settlement"))
        bars.append(Bar(day, *checked, settle if settle and settle > 0 else None))
        prev = day
    rep.kept = len(bars)
    return bars, rep


def load_fred_fx(path: str | Path, *, start: dt.date | None = None,
                 end: dt.date | None = None) -> tuple[list[tuple[dt.date, Decimal]], LoadReport]:
    """Load a FRED daily FX series (DEXCHUS: CNY per USD) as sorted ``(date, rate)``.

    Blank or ``.`` values are US holidays or days without a fixing: skipped and reported.
    """
    header, rows = _read(path)
    rep = LoadReport(str(path))
    if len(header) < 2 or header[0] != "date":
        raise ValueError(f"{path}: a FRED series needs columns date,<SERIES>; found {header}")
    col = header[1]
    out: list[tuple[dt.date, Decimal]] = []
    for line, row in rows:
        rep.rows += 1
        try:
            day = dt.date.fromisoformat(row["date"].strip())
        except ValueError:
            rep.skip(line, f"bad date: {row['date']!r}")
            continue
        if (start and day < start) or (end and day > end):
            rep.skip(line, "outside range")
            continue
        v = _num(row.get(col))
        if v is None:
            rep.skip(line, f"no value (US holiday or no fixing): {day}")
            continue
        if v <= 0:
            rep.skip(line, f"non-positive rate: {day} {v}")
            continue
        if out and day <= out[-1][0]:
            rep.skip(line, f"date not after previous row: {day}")
            continue
        out.append((day, v))
    rep.kept = len(out)
    return out, rep


def close_stamp_ns(venue: Venue | None, day: dt.date) -> int:
    """When a daily bar of ``day`` is replayed: 1 minute before its venue's last session ends."""
    if venue is not None:
        ends = [w[1] for s in venue.sessions if (w := session_window(venue, day, s)) is not None]
        if ends:
            return int(max(ends).timestamp()) * _NS - 60 * _NS
    return int(dt.datetime.combine(day, dt.time(15, 0), dt.timezone.utc).timestamp()) * _NS


def bars_to_quotes(bars: Iterable[Bar], inst: Instrument, venue: Venue | None, *, spread_ticks: int = 2,
                   size: int = 50, report: LoadReport | None = None, origin: str | None = ORIGIN_CLOSE,
                   close_as_settlement: bool = True) -> list[Quote]:
    """Apply the bar -> quote rule of this module's docstring.

    A bar dated on one of the venue's holidays (COMEX prints on US holidays it trades
    abbreviated hours on) is kept and noted in ``report.adjusted``: a session-enforcing
    simulated venue will refuse orders at that instant (MARKET_CLOSED).
    """
    out = []
    settle: Decimal | None = None
    below = spread_ticks // 2
    holidays = set(venue.holidays) if venue is not None else set()
    for b in bars:
        if report is not None and b.date in holidays:
            report.adjusted.append((0, f"bar on a {venue.code if venue else ''} holiday: {b.date} "
                                       "(kept; the venue is closed then by its calendar)"))
        ts = close_stamp_ns(venue, b.date)
        c = inst.round_price(b.close)
        bid = inst.round_price(c - below * inst.tick_size)
        ask = inst.round_price(bid + spread_ticks * inst.tick_size)
        out.append(Quote(instrument=inst.id, bid=bid, ask=ask, bid_size=size, ask_size=size, last=c,
                         venue_ts_ns=ts, recv_ts_ns=ts, ts_ns=ts, settlement=settle, origin=origin))
        settle = inst.round_price(b.settlement) if b.settlement is not None else (c if close_as_settlement else None)
    return out


def load_quotes(path: str | Path, inst: Instrument, fmt: str = "quotes_csv") -> tuple[list[Quote], LoadReport]:
    """Load recorded quotes from CSV or Parquet (columns in the module docstring)."""
    rep = LoadReport(str(path))
    if fmt == "quotes_parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(str(path))
        rows: list[tuple[int, dict[str, Any]]] = [
            (k + 1, {str(kk).lower(): v for kk, v in r.items()}) for k, r in enumerate(table.to_pylist())]
    else:
        _, raw = _read(path)
        rows = [(k, dict(r)) for k, r in raw]
    out: list[Quote] = []
    last_ts = -1
    for line, row in rows:
        rep.rows += 1
        if row.get("instrument") not in (None, "", inst.id):
            rep.skip(line, f"other instrument: {row.get('instrument')}")
            continue
        ts = _ts(row.get("ts"))
        if ts is None:
            rep.skip(line, f"bad timestamp: {str(row.get('ts'))[:40]!r}")
            continue
        bid, ask = _num(_s(row.get("bid"))), _num(_s(row.get("ask")))
        if bid is None or ask is None or bid <= 0 or ask <= 0:
            rep.skip(line, "missing or non-positive bid/ask")
            continue
        if bid >= ask:
            rep.skip(line, f"crossed or locked: bid {bid} ask {ask}")
            continue
        if ts < last_ts:
            rep.skip(line, f"timestamp goes backwards: {ts}")
            continue
        bsz, asz = _num(_s(row.get("bid_size"))), _num(_s(row.get("ask_size")))
        lastpx = _num(_s(row.get("last")))
        out.append(Quote(instrument=inst.id, bid=inst.round_price(bid, "down"), ask=inst.round_price(ask, "up"),
                         bid_size=int(bsz) if bsz and bsz > 0 else 0, ask_size=int(asz) if asz and asz > 0 else 0,
                         last=inst.round_price(lastpx) if lastpx and lastpx > 0 else None,
                         venue_ts_ns=ts, recv_ts_ns=ts, ts_ns=ts))
        last_ts = ts
    rep.kept = len(out)
    return out, rep


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


def _ts(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return int(v.timestamp() * _NS) if v.tzinfo else int(v.replace(tzinfo=dt.timezone.utc).timestamp() * _NS)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    s = str(v).strip()
    if s.isdigit():
        return int(s)
    try:
        d = dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp()) * _NS + d.microsecond * 1000


def load_replay_file(path: str | Path, fmt: str, inst: Instrument, venue: Venue | None, *,
                     spread_ticks: int = 2, size: int = 50, spec: Any = None,
                     limit_reference: str = "settlement") -> tuple[list[Quote], LoadReport]:
    """Load one replay file of any supported format as quotes for ``inst``. ``spec``: the
    :class:`~xmc_actors.feeds.config.ReplayFile` (needed by ``csv``, a mapped CSV: its columns,
    stamp and number options, bridge). ``limit_reference``: ``settlement`` (the file's settlement
    column only) or ``previous_close`` (else the previous bar's close): see the module docstring."""
    if fmt == "csv":
        from .csv_source import load_mapped_csv

        if spec is None or getattr(spec, "columns", None) is None:
            raise ValueError(f"{path}: format csv needs its ReplayFile (the column mapping)")
        return load_mapped_csv(path, spec, inst, venue, spread_ticks=spread_ticks, size=size,
                               limit_reference=limit_reference)
    if fmt in ("sge_daily", "comex_daily", "ohlc_csv"):
        bars, rep = load_bars(path, fmt)
        return bars_to_quotes(bars, inst, venue, spread_ticks=spread_ticks, size=size, report=rep,
                              close_as_settlement=limit_reference == "previous_close"), rep
    if fmt == "fred_fx":
        series, rep = load_fred_fx(path)
        bars = [Bar(d, r, r, r, r) for d, r in series]
        return bars_to_quotes(bars, inst, venue, spread_ticks=spread_ticks, size=size), rep
    if fmt in ("quotes_csv", "quotes_parquet"):
        return load_quotes(path, inst, fmt)
    raise ValueError(f"unknown replay format {fmt!r}")
