"""Bring your own data: a CSV of any layout, read through a column mapping (``format: csv``).

A :class:`~xmc_actors.feeds.config.ReplayFile` with ``format: csv`` names which column holds the
date (and optionally the time), the prices and the volume, by header (matched after stripping
spaces and quotes, case-insensitive) or by 0-based index, and how to read the cells:

* **stamps**: ``date_format`` ``iso``, a strptime format (``%d/%m/%y``), or ``epoch_s`` /
  ``epoch_ms`` / ``epoch_us`` / ``epoch_ns``; a separate ``time`` column with ``time_format``;
  ``timezone`` (IANA) of the stamps, the venue's by default;
* **numbers**: surrounding spaces and quotes are dropped, so are a ``%`` sign and the
  ``thousands`` separator (``1,234.5``; a separator must sit between groups of three digits, so
  a decimal comma read with the wrong setting is an error, not a number ten times too large);
  ``decimal: ","`` reads ``1.234,5``; ``-``, ``n/a``, ``null`` and an empty cell are blank;
  ``scale`` multiplies every price (0.01 for a file in cents);
* **blank cells**: a blank close (or bid/ask/last) skips the row (``blanks: skip``) or takes the
  previous row's value (``blanks: carry_forward``); a blank open/high/low beside a valid close
  takes the close (``missing_ohl: close``, the default) or skips the row;
* **rows**: a file sorted newest first is read oldest first; a row whose stamp is not after the
  previous one is skipped.

What the rows become:

* **daily bars** (``close``, optional ``open``/``high``/``low``/``volume``/``settlement``; no
  time of day): the bar rules and the bar -> quote rule of :mod:`xmc_actors.feeds.replay` (one
  quote per day at the venue's close, marked ``origin="close"``);
* **intraday bars** (a time of day): one quote per row at its stamp, around its close;
* **quotes** (``bid`` and ``ask``): one quote per row; **trades** (``last`` alone): one quote
  per row around the trade price.

**The bridge** (``bridge: {steps_per_day, seed, vol_bps}``, daily bars only): between two
consecutive closes ``C0`` and ``C1`` the log price follows a Brownian bridge pinned at both:
``x(u) = ln C0 + u (ln C1 - ln C0) + sigma (W(u) - u W(1))`` for ``u`` in ``[0, 1]``, where
``W`` is a standard Brownian motion drawn from ``random.Random(f"{seed}:{instrument}:{day}")``
(so a seed gives the same path on any machine, and one day's path does not depend on the
others) and ``sigma`` is ``vol_bps`` / 10,000 (one day's standard deviation of the log price;
by default the standard deviation of the file's close-to-close log returns). The
``steps_per_day - 1`` inner points ``u = k / steps_per_day`` are placed at the same fractions of
the open time of the later close's trading day (its sessions, from the first open to the close
stamp), each quote snapped to the tick grid with the bar rule's spread and marked
``origin="bridge"`` (``Quote.synthetic``); the close itself ends the day as recorded.
"""
from __future__ import annotations

import csv
import datetime as dt
import math
import random
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

from ..core.calendar import session_window
from ..model.market import Instrument, Venue
from ..model.quotes import ORIGIN_BRIDGE, ORIGIN_CLOSE, Quote
from .config import ReplayFile
from .replay import Bar, LoadReport, bars_to_quotes, check_bar, close_stamp_ns, ohlc_or_close

_NS = 1_000_000_000
_BLANK = frozenset({"", "-", "--", "\u2014", ".", "n/a", "na", "#n/a", "null", "none", "nan"})
_TIME_DIRECTIVES = re.compile(r"%[HIMSfpXTcR]")
_EPOCH = {"epoch_s": _NS, "epoch_ms": 1_000_000, "epoch_us": 1_000, "epoch_ns": 1}
_PRICE_ROLES = ("open", "high", "low", "close", "settlement", "bid", "ask", "last")


class CsvLayoutError(ValueError):
    """The file cannot be read as mapped at all (missing columns, no header, not text)."""


@dataclass(slots=True)
class Problem:
    """A cell that cannot be read: the file's own line, the column as the file names it, the cell."""

    line: int
    column: str
    cell: str
    why: str

    def text(self, name: str) -> str:
        return f"{name} line {self.line}: column {self.column!r}: {self.cell[:40]!r} {self.why}"


@dataclass(slots=True)
class Row:
    line: int
    stamp: dt.datetime | dt.date
    intraday: bool
    values: dict[str, Decimal | None]


class _Numbers:
    """Cleans and reads the number cells of one file (its thousands and decimal separators)."""

    def __init__(self, thousands: str, decimal: str) -> None:
        self.thousands, self.decimal = thousands, decimal
        self.grouped = re.compile(rf"[+-]?\d{{1,3}}({re.escape(thousands)}\d{{3}})+") if thousands else None
        hint = "; a decimal comma? set decimal: ','" if thousands == "," else ""
        self.not_grouped = (f"is not a number (its {thousands!r} is not a thousands separator between groups of "
                            f"three digits{hint})")

    def read(self, raw: str) -> Decimal | None | str:
        """The number, None for a blank cell, or a string saying why the cell is not a number."""
        s = raw.strip().strip("\"'").strip()
        if s.lower() in _BLANK:
            return None
        if s.endswith("%"):
            s = s[:-1].rstrip()
        if self.thousands and self.thousands in s:
            whole, sep, frac = s.partition(self.decimal)
            assert self.grouped is not None
            if not self.grouped.fullmatch(whole):
                digits = whole.lstrip("+-").replace(self.thousands, "")
                return self.not_grouped if digits.isdigit() else "is not a number"
            s = whole.replace(self.thousands, "") + ("." + frac if sep else "")
        elif self.decimal == ",":
            s = s.replace(",", ".")
        try:
            d = Decimal(s)
        except InvalidOperation:
            return "is not a number"
        if not d.is_finite():
            return "is not a finite number"
        return d


def _norm(h: str) -> str:
    return h.strip().strip("\"'").strip().lower()


def resolve_columns(header: list[str], spec: ReplayFile) -> dict[str, int]:
    """Role -> column index of ``spec.columns`` in ``header``; :class:`CsvLayoutError` naming
    every missing column and what the header holds."""
    assert spec.columns is not None
    names = [_norm(h) for h in header]
    out: dict[str, int] = {}
    missing: list[str] = []
    for role, col in spec.columns.mapped().items():
        if isinstance(col, int):
            if col >= len(header):
                missing.append(f"{role}: column index {col} (the header has {len(header)} columns, 0 to {len(header) - 1})")
            else:
                out[role] = col
            continue
        want = _norm(col)
        if want in names:
            out[role] = names.index(want)
        else:
            missing.append(f"{role}: column {col!r}")
    if missing:
        found = ", ".join(repr(h.strip()) for h in header) or "nothing"
        raise CsvLayoutError(f"no such column in the header (line {spec.header_line}): {'; '.join(missing)}; "
                             f"the header holds {found[:400]}")
    return out


def _open_rows(path: str | Path, spec: ReplayFile) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"replay file {p} does not exist")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CsvLayoutError(f"{p} is not UTF-8 text (byte at offset {e.start}): save it as UTF-8") from None
    if "\0" in text:
        raise CsvLayoutError(f"{p} is a binary file, not CSV text")
    lines = text.splitlines()
    if len(lines) < spec.header_line:
        raise CsvLayoutError(f"{p} has {len(lines)} lines: no header at line {spec.header_line}")
    header = next(csv.reader([lines[spec.header_line - 1]], delimiter=spec.delimiter), [])
    if not header:
        raise CsvLayoutError(f"{p}: line {spec.header_line} (the header) is empty")
    body = lines[spec.header_line:]
    # csv.reader over the remaining lines; a quoted cell spanning lines is not expected in price files
    reader = csv.reader(body, delimiter=spec.delimiter)
    return header, ((spec.header_line + 1 + k, r) for k, r in enumerate(reader))


def _stamp(raw: str, spec: ReplayFile, time_raw: str | None, tz: dt.tzinfo) -> tuple[dt.datetime | dt.date, bool] | str:
    """(date or aware datetime, has a time of day) or why not."""
    s = raw.strip().strip("\"'").strip()
    if not s:
        return "is blank (no date)"
    fmt = spec.date_format
    try:
        if fmt in _EPOCH:
            n = Decimal(s)
            ns = int(n * _EPOCH[fmt])
            return dt.datetime.fromtimestamp(ns // _NS, dt.timezone.utc).replace(microsecond=(ns % _NS) // 1000), True
        if fmt == "iso":
            if len(s) <= 10:
                value: dt.datetime | dt.date = dt.date.fromisoformat(s)
            else:
                value = dt.datetime.fromisoformat(s)
        else:
            value = dt.datetime.strptime(s, fmt)
            if not _TIME_DIRECTIVES.search(fmt):
                value = value.date()
    except (ValueError, InvalidOperation, OverflowError):
        what = {"iso": "ISO-8601 (2024-03-01)"}.get(fmt, fmt)
        return f"is not a date in the format {what}"
    if time_raw is not None:
        t = time_raw.strip().strip("\"'").strip()
        tfmts = [spec.time_format] if spec.time_format else ["%H:%M:%S", "%H:%M", "%H:%M:%S.%f"]
        for tf in tfmts:
            try:
                tt = dt.datetime.strptime(t, tf).time()
                break
            except ValueError:
                continue
        else:
            return f"time {t[:20]!r} is not a time in the format {spec.time_format or '%H:%M:%S'}"
        day = value if not isinstance(value, dt.datetime) else value.date()
        value = dt.datetime.combine(day, tt)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz)
        return value, True
    return value, False


def parse_rows(path: str | Path, spec: ReplayFile, venue: Venue | None, rep: LoadReport,
               problems: list[Problem] | None = None) -> list[Row]:
    """Read every row of a mapped CSV: stamps and numbers, blank rules applied. Rows that cannot
    be read are skipped into ``rep`` with their reason and, when given, into ``problems`` (a cell
    that is not a date or not a number: what ``xmc validate`` reports)."""
    assert spec.columns is not None
    header, body = _open_rows(path, spec)
    cols = resolve_columns(header, spec)
    tz: dt.tzinfo = ZoneInfo(spec.timezone) if spec.timezone else (venue.tz if venue is not None else dt.timezone.utc)
    nums = _Numbers(spec.thousands, spec.decimal)
    label = {role: (header[i].strip() or f"#{i}") for role, i in cols.items()}
    price_roles = [r for r in _PRICE_ROLES if r in cols]
    need = ["bid", "ask"] if "bid" in cols else (["close"] if "close" in cols else ["last"])
    numeric = price_roles + [r for r in ("volume", "bid_size", "ask_size") if r in cols]
    width = max(cols.values()) + 1
    date_i, time_i = cols["date"], cols.get("time")
    carry: dict[str, Decimal] = {}
    rows: list[Row] = []
    for line, cells in body:
        if not cells or all(not c.strip() for c in cells):
            continue  # an empty line (often the last): not a row
        rep.rows += 1
        if len(cells) < width:
            rep.skip(line, f"short row: {len(cells)} cells, the mapping reads column {width - 1}")
            if problems is not None:
                problems.append(Problem(line, "(row)", ",".join(cells)[:40], f"has {len(cells)} cells; the mapping reads "
                                                                            f"up to column index {width - 1}"))
            continue
        st = _stamp(cells[date_i], spec, cells[time_i] if time_i is not None else None, tz)
        if isinstance(st, str):
            rep.skip(line, f"bad date: {cells[date_i].strip()[:30]!r} {st}")
            if problems is not None:
                problems.append(Problem(line, label["date"], cells[date_i], st))
            continue
        values: dict[str, Decimal | None] = {}
        bad = False
        for role in numeric:
            v = nums.read(cells[cols[role]])
            if isinstance(v, str):
                rep.skip(line, f"not a number: column {label[role]!r}: {cells[cols[role]].strip()[:30]!r}")
                if problems is not None:
                    problems.append(Problem(line, label[role], cells[cols[role]].strip(), v))
                bad = True
                break
            if v is not None and role in price_roles:
                v = v * spec.scale
            values[role] = v
        if bad:
            continue
        blank = [r for r in need if values.get(r) is None]
        if blank:
            if spec.blanks == "carry_forward" and all(r in carry for r in blank):
                for r in blank:
                    values[r] = carry[r]
                rep.adjusted.append((line, f"blank {','.join(label[r] for r in blank)}: the previous row's value carried forward"))
            else:
                rep.skip(line, f"blank price: column {', '.join(repr(label[r]) for r in blank)}"
                               f"{' (nothing to carry forward yet)' if spec.blanks == 'carry_forward' else ''}")
                continue
        for r in need:
            carry[r] = values[r]  # type: ignore[assignment]
        rows.append(Row(line, st[0], st[1], values))
    # a file sorted newest first (as many sites publish) is read oldest first
    if len(rows) >= 2 and _key(rows[0].stamp) > _key(rows[-1].stamp):
        rows.reverse()
        rep.adjusted.append((0, "rows are newest first: read in reverse (oldest first)"))
    return rows


def _key(s: dt.datetime | dt.date) -> float:
    if isinstance(s, dt.datetime):
        return s.timestamp()
    return dt.datetime.combine(s, dt.time(), dt.timezone.utc).timestamp()


def _daily(rows: list[Row], spec: ReplayFile) -> bool:
    """Daily bars: as configured, or (``auto``) when no row carries a time of day other than midnight."""
    if spec.frequency != "auto":
        return spec.frequency == "daily"
    return not any(isinstance(r.stamp, dt.datetime) and r.stamp.time() != dt.time() for r in rows)


def _bars(rows: list[Row], spec: ReplayFile, rep: LoadReport) -> list[Bar]:
    bars: list[Bar] = []
    prev: dt.date | None = None
    assert spec.columns is not None
    has_range = any(getattr(spec.columns, k) is not None for k in ("open", "high", "low"))
    for r in rows:
        day = r.stamp.date() if isinstance(r.stamp, dt.datetime) else r.stamp
        v = r.values
        c = v["close"]
        assert c is not None
        if has_range:
            ohl = ohlc_or_close(r.line, day, v.get("open"), v.get("high"), v.get("low"), c, rep,
                                use_close=spec.missing_ohl == "close")
            if ohl is None:
                continue
        else:  # a close-only file (LME's): the close is the whole bar
            ohl = (c, c, c)
        if prev is not None and day <= prev:
            rep.skip(r.line, f"date not after previous row: {day} after {prev}")
            continue
        checked = check_bar(r.line, day, *ohl, c, rep, volume=v.get("volume"),
                            prev_close=bars[-1].close if bars else None, has_range=has_range)
        if checked is None:
            continue
        settle = v.get("settlement")
        bars.append(Bar(day, *checked, settle if settle is not None and settle > 0 else None))
        prev = day
    return bars


def _quote_rows(rows: list[Row], inst: Instrument, rep: LoadReport, spread_ticks: int, size: int) -> list[Quote]:
    out: list[Quote] = []
    last_ts = -1
    below = spread_ticks // 2
    for r in rows:
        stamp = r.stamp if isinstance(r.stamp, dt.datetime) else dt.datetime.combine(r.stamp, dt.time(), dt.timezone.utc)
        ts = int(stamp.timestamp()) * _NS + stamp.microsecond * 1000
        v = r.values
        if ts <= last_ts:
            rep.skip(r.line, f"timestamp not after previous row: {stamp.isoformat()}")
            continue
        if "bid" in v:
            bid, ask = v["bid"], v["ask"]
            assert bid is not None and ask is not None
            if bid <= 0 or ask <= 0:
                rep.skip(r.line, "non-positive bid/ask")
                continue
            if bid >= ask:
                rep.skip(r.line, f"crossed or locked: bid {bid} ask {ask}")
                continue
            bsz, asz = v.get("bid_size"), v.get("ask_size")
            lastpx = v.get("last")
            q = Quote(instrument=inst.id, bid=inst.round_price(bid, "down"), ask=inst.round_price(ask, "up"),
                      bid_size=int(bsz) if bsz and bsz > 0 else size, ask_size=int(asz) if asz and asz > 0 else size,
                      last=inst.round_price(lastpx) if lastpx and lastpx > 0 else None,
                      venue_ts_ns=ts, recv_ts_ns=ts, ts_ns=ts)
        else:
            px = v.get("close") if v.get("close") is not None else v.get("last")
            assert px is not None
            if px <= 0:
                rep.skip(r.line, f"non-positive price: {px}")
                continue
            c = inst.round_price(px)
            bid = inst.round_price(c - below * inst.tick_size)
            q = Quote(instrument=inst.id, bid=bid, ask=inst.round_price(bid + spread_ticks * inst.tick_size),
                      bid_size=size, ask_size=size, last=c, venue_ts_ns=ts, recv_ts_ns=ts, ts_ns=ts)
        out.append(q)
        last_ts = ts
    return out


def bridge_sigma(bars: list[Bar]) -> float:
    """One day's standard deviation of the log price, from the closes (0.01 with fewer than 3 bars)."""
    rets = [math.log(b.close / a.close) for a, b in zip(bars, bars[1:])]
    if len(rets) < 2:
        return 0.01
    mean = sum(rets) / len(rets)
    return math.sqrt(sum((x - mean) ** 2 for x in rets) / (len(rets) - 1)) or 0.0001


def _open_times(venue: Venue | None, day: dt.date, close_ns: int, prev_close_ns: int) -> list[tuple[int, int]]:
    """The open intervals of ``day``'s sessions before ``close_ns`` (ns), after the previous close."""
    if venue is None:
        return [(max(prev_close_ns, close_ns - 8 * 3600 * _NS), close_ns)]
    out = []
    for s in venue.sessions:
        w = session_window(venue, day, s)
        if w is None:
            continue
        a, b = int(w[0].timestamp()) * _NS, min(int(w[1].timestamp()) * _NS, close_ns)
        a = max(a, prev_close_ns)
        if b > a:
            out.append((a, b))
    out.sort()
    return out or [(max(prev_close_ns, close_ns - 8 * 3600 * _NS), close_ns)]


def bridge_quotes(closes: list[Quote], bars: list[Bar], inst: Instrument, venue: Venue | None, spec: ReplayFile,
                  *, spread_ticks: int, size: int) -> list[Quote]:
    """The closes with the seeded Brownian bridge of this module's docstring between each two."""
    assert spec.bridge is not None
    b = spec.bridge
    sigma = b.vol_bps / 1e4 if b.vol_bps is not None else bridge_sigma(bars)
    n = b.steps_per_day
    below = spread_ticks // 2
    out: list[Quote] = [closes[0]] if closes else []
    for k in range(1, len(closes)):
        q0, q1, bar = closes[k - 1], closes[k], bars[k]
        rng = random.Random(f"{b.seed}:{inst.id}:{bar.date.isoformat()}")
        x0, x1 = math.log(bars[k - 1].close), math.log(bar.close)
        # W at u = j/n, j = 1..n (standard Brownian motion on [0, 1])
        w, walk = 0.0, []
        step = math.sqrt(1.0 / n)
        for _ in range(n):
            w += rng.gauss(0.0, step)
            walk.append(w)
        w1 = walk[-1]
        spans = _open_times(venue, bar.date, q1.ts_ns, q0.ts_ns)
        total = sum(e - s for s, e in spans)
        last_ts = q0.ts_ns
        for j in range(1, n):
            u = j / n
            x = x0 + u * (x1 - x0) + sigma * (walk[j - 1] - u * w1)
            # the instant at fraction u of the day's open time
            at, left = spans[-1][1] - 1, u * total
            for s, e in spans:
                if left <= e - s:
                    at = s + int(left)
                    break
                left -= e - s
            if at <= last_ts or at >= q1.ts_ns:
                continue
            px = inst.round_price(Decimal(repr(math.exp(x))))
            bid = inst.round_price(px - below * inst.tick_size)
            out.append(Quote(instrument=inst.id, bid=bid, ask=inst.round_price(bid + spread_ticks * inst.tick_size),
                             bid_size=size, ask_size=size, last=px, venue_ts_ns=at, recv_ts_ns=at, ts_ns=at,
                             settlement=q1.settlement, origin=ORIGIN_BRIDGE))
            last_ts = at
        out.append(q1)
    return out


def load_mapped_csv(path: str | Path, spec: ReplayFile, inst: Instrument, venue: Venue | None, *,
                    spread_ticks: int = 2, size: int = 50,
                    limit_reference: str = "settlement") -> tuple[list[Quote], LoadReport]:
    """Load a mapped CSV as quotes for ``inst`` (this module's docstring); every skipped row is in
    the report with its line and reason. :class:`CsvLayoutError` when the file cannot be read as
    mapped at all (a missing column: named, with what the header holds)."""
    rep = LoadReport(str(path))
    rows = parse_rows(path, spec, venue, rep)
    if spec.columns is not None and spec.columns.close is not None and _daily(rows, spec):
        bars = _bars(rows, spec, rep)
        quotes = bars_to_quotes(bars, inst, venue, spread_ticks=spread_ticks, size=size, report=rep, origin=ORIGIN_CLOSE,
                                close_as_settlement=limit_reference == "previous_close")
        if spec.bridge is not None:
            quotes = bridge_quotes(quotes, bars, inst, venue, spec, spread_ticks=spread_ticks, size=size)
        rep.kept = len(bars)
        return quotes, rep
    if spec.bridge is not None:
        rep.adjusted.append((0, "bridge: ignored, the file is not daily bars"))
    quotes = _quote_rows(rows, inst, rep, spread_ticks, size)
    rep.kept = len(quotes)
    return quotes, rep


def check_mapped_csv(path: str | Path, spec: ReplayFile, venue: Venue | None, *,
                     limit: int = 10) -> list[tuple[str, str]]:
    """What ``xmc validate`` says of a mapped CSV, reading the whole file: ``(field, message)``
    pairs, ``field`` being ``path`` or ``columns`` (where in the ``ReplayFile`` the problem is).
    The layout problem (a missing column, named with what the header holds), or each cell that
    is not a date or a number (the first ``limit``, then how many more) with the file's own line
    numbers, or a file of which no row can be used. Empty: the file fits its mapping."""
    name = Path(path).name
    rep = LoadReport(str(path))
    problems: list[Problem] = []
    try:
        rows = parse_rows(path, spec, venue, rep, problems)
    except FileNotFoundError:
        p = Path(path)
        rel = "" if p.is_absolute() else f" (relative to the current directory {Path.cwd()})"
        return [("path", f"file {path} does not exist{rel}")]
    except CsvLayoutError as e:
        return [("columns" if "no such column" in str(e) else "path", f"{name}: {e}")]
    except OSError as e:
        return [("path", f"cannot read {path}: {e.strerror or e}")]
    out = [("path", p.text(name)) for p in problems[:limit]]
    if len(problems) > limit:
        out.append(("path", f"{name}: {len(problems) - limit} more cells that cannot be read (lines "
                            f"{problems[limit].line} to {problems[-1].line})"))
    if not problems:
        if rep.rows == 0:
            out.append(("path", f"{name}: no data rows after the header (line {spec.header_line})"))
        elif not rows:
            reasons = ", ".join(f"{n} x {k}" for k, n in sorted(rep.by_reason().items()))
            out.append(("path", f"{name}: none of its {rep.rows} rows can be used ({reasons})"))
    return out


__all__ = ["CsvLayoutError", "Problem", "bridge_quotes", "bridge_sigma", "check_mapped_csv", "load_mapped_csv",
           "parse_rows", "resolve_columns"]
