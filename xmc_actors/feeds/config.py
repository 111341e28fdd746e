"""Parameters of the market-data feeds a gateway can be given."""
from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

STRICT = ConfigDict(frozen=True, extra="forbid")


class NoFeedParams(BaseModel):
    model_config = STRICT


Column = Annotated[str, Field(min_length=1, max_length=200)] | Annotated[int, Field(ge=0, le=10_000)]
"""A CSV column: its header (matched after stripping spaces, case-insensitive) or its 0-based index."""

_PRICE_ROLES = ("open", "high", "low", "close", "bid", "ask", "last", "settlement")


class CsvColumns(BaseModel):
    """Which column of a mapped CSV (``format: csv``) holds what (docs/configuration.md,
    "Bring your own data"). ``date`` is required; then ``close`` (daily or minute bars, with
    optional ``open``/``high``/``low``/``volume``/``settlement``), or ``bid`` and ``ask`` (one
    quote per row, optional ``last`` and sizes), or ``last`` alone (trades)."""

    model_config = STRICT
    date: Column
    time: Column | None = None
    open: Column | None = None
    high: Column | None = None
    low: Column | None = None
    close: Column | None = None
    volume: Column | None = None
    settlement: Column | None = None
    bid: Column | None = None
    ask: Column | None = None
    last: Column | None = None
    bid_size: Column | None = None
    ask_size: Column | None = None

    @model_validator(mode="after")
    def _prices(self) -> "CsvColumns":
        if (self.bid is None) != (self.ask is None):
            raise ValueError("bid and ask: map both (one quote per row) or neither")
        if self.close is None and self.bid is None and self.last is None:
            raise ValueError("map a price: close (bars), bid and ask (quotes), or last (trades)")
        if self.bid is not None and (self.close is not None or self.open is not None):
            raise ValueError("a file is either bars (close, open/high/low) or quotes (bid/ask), not both")
        return self

    def mapped(self) -> dict[str, str | int]:
        """Role -> column, for the roles that are mapped."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class BridgeParams(BaseModel):
    """Synthetic intraday paths between daily closes (a seeded Brownian bridge; every quote it
    makes is marked ``origin: bridge``). See :mod:`xmc_actors.feeds.csv_source`."""

    model_config = STRICT
    steps_per_day: Annotated[int, Field(ge=2, le=100_000)]
    """Quotes per trading day: ``steps_per_day - 1`` synthetic ones spread over the day's sessions, then the close."""
    seed: int = 0
    vol_bps: Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False)] | None = None
    """Standard deviation of one day's log move, in bps; None: estimated from the file's closes."""


class ReplayFile(BaseModel):
    """One replayed file. ``format: csv`` is a CSV of any layout, read through ``columns`` and
    the options below it (docs/configuration.md, "Bring your own data"); the other formats have
    fixed layouts (:mod:`xmc_actors.feeds.replay`)."""

    model_config = STRICT
    instrument: str
    path: str
    format: Literal["sge_daily", "comex_daily", "fred_fx", "ohlc_csv", "quotes_csv", "quotes_parquet", "csv"] = "ohlc_csv"
    # ---- format: csv only
    columns: CsvColumns | None = None
    date_format: Annotated[str, Field(min_length=1, max_length=100)] = "iso"
    """``iso`` (2024-03-01, 2024-03-01T09:30:00), a strptime format (``%d/%m/%y``), or
    ``epoch_s`` / ``epoch_ms`` / ``epoch_us`` / ``epoch_ns``."""
    time_format: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    """strptime format of a separate ``time`` column (default: ``%H:%M:%S``, or ``%H:%M``)."""
    timezone: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """IANA zone of the stamps in the file (default: the venue's). Daily bars are stamped at the venue's close."""
    frequency: Literal["auto", "daily", "intraday"] = "auto"
    """``daily``: one bar per trading day (stamped at the venue's close); ``intraday``: each row at its own
    stamp; ``auto``: daily when no row carries a time of day."""
    scale: Annotated[Decimal, Field(gt=0, le=Decimal("1e9"), allow_inf_nan=False)] = Decimal(1)
    """Every price is multiplied by this (0.01: the file is in cents)."""
    blanks: Literal["skip", "carry_forward"] = "skip"
    """A blank price cell (close, or bid/ask/last): skip the row, or use the previous row's value."""
    missing_ohl: Literal["close", "skip"] = "close"
    """A bar with a close but a blank open, high or low: use the close for them, or skip the row."""
    thousands: Literal[",", ".", " ", "'", "_", ""] = ","
    decimal: Literal[".", ","] = "."
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    header_line: Annotated[int, Field(ge=1, le=1000)] = 1
    """The line holding the column names (lines above it, such as a title, are ignored)."""
    bridge: BridgeParams | None = None

    @model_validator(mode="after")
    def _csv(self) -> "ReplayFile":
        if self.format == "csv":
            if self.columns is None:
                raise ValueError("format csv needs columns: which column holds the date and the prices")
            if self.thousands == self.decimal:
                raise ValueError(f"thousands and decimal separators are both {self.decimal!r}")
            if self.timezone is not None:
                from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

                try:
                    ZoneInfo(self.timezone)
                except (ZoneInfoNotFoundError, ValueError):
                    raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None
            if self.bridge is not None and self.columns.close is None:
                raise ValueError("bridge: needs daily closes (columns.close)")
            if self.date_format not in ("iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns") and "%" not in self.date_format:
                raise ValueError(f"date_format {self.date_format!r}: iso, epoch_s/ms/us/ns, or a strptime format such as %d/%m/%y")
        else:
            extra = [k for k in ("columns", "bridge") if getattr(self, k) is not None]
            extra += [k for k in ("date_format", "time_format", "timezone", "frequency", "scale", "blanks",
                                  "missing_ohl", "thousands", "decimal", "delimiter", "header_line")
                      if k in self.model_fields_set]
            if extra:
                raise ValueError(f"{', '.join(extra)}: only for format csv (a mapped CSV), not {self.format}")
        return self


class ReplayParams(BaseModel):
    """Replay recorded files. ``speed``: ``max`` (as fast as possible) or a multiple of real time."""

    model_config = STRICT
    files: tuple[ReplayFile, ...] = Field(min_length=1)
    speed: Literal["max"] | Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)] = "max"
    start: str | None = None
    end: str | None = None
    spread_ticks: PositiveInt = 2       # bars -> quotes: bid/ask this many ticks apart around the price
    size: PositiveInt = 50
    limit_reference: Literal["settlement", "previous_close"] = "settlement"
    """Daily bars: the reference of the venue's price limits on each quote: the previous day's
    settlement from the file (none when the file has no settlement column: no limit is checked),
    or ``previous_close`` (the previous bar's close when the file gives no settlement)."""


class SyntheticParams(BaseModel):
    """Seeded generator of cointegrated pairs (for load and fault tests)."""

    model_config = STRICT
    seed: int = 0
    instruments: tuple[str, ...] = Field(min_length=1)
    start_prices: tuple[Annotated[float, Field(gt=0, le=1e15, allow_inf_nan=False)], ...] = ()
    vol_bps: Annotated[float, Field(ge=0, le=10_000)] = 2.0
    ticks_per_s: Annotated[float, Field(gt=0, le=100_000)] = 10.0
    count: PositiveInt | None = None
    jump_prob: Annotated[float, Field(ge=0, le=1)] = 0.0
    jump_bps: Annotated[float, Field(ge=0, le=10_000)] = 50.0
    factor_seed: int = 0
    """Seed of the common factor: feeds with the same factor_seed (on any gateway) are cointegrated."""
    hedge_betas: tuple[Annotated[float, Field(gt=0, le=10)], ...] = ()
    """Loading of each instrument on the common factor (default 1.0)."""
    spread_vol_bps: Annotated[float, Field(ge=0, le=10_000)] = 5.0
    """Standard deviation of each instrument's stationary idiosyncratic part (the pair's spread noise)."""
    spread_mean_reversion: Annotated[float, Field(gt=0, le=1)] = 0.05
    """Per-tick pull of each instrument's idiosyncratic part back to zero (an OU process)."""
    spread_ticks: tuple[PositiveInt, PositiveInt] = (1, 3)
    """Bid-ask spread drawn uniformly in this range of ticks."""
    max_size: PositiveInt = 50
    depth: Annotated[int, Field(ge=1, le=10)] = 1
    respect_sessions: bool = False
    """Only emit while the venue is in session (skips closed hours)."""
    start_ns: int | None = None
    speed: Literal["max", "recorded"] | Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)] = "recorded"
    """Pace in a background run: ``recorded`` (ticks_per_s of real time), N x that, or ``max``."""


# --------------------------------------------------------------------------- data file probe
PROBE_BYTES = 64 * 1024
"""How much of a data file :func:`probe_data_file` reads: its header and first rows."""
PROBE_ROWS = 5

_BAR_COLUMNS = ("date", "open", "high", "low", "close")
_COLUMNS: dict[str, tuple[str, ...]] = {
    "sge_daily": _BAR_COLUMNS,
    "comex_daily": _BAR_COLUMNS,
    "ohlc_csv": _BAR_COLUMNS,
    "fred_fx": ("date",),
    "quotes_csv": ("ts", "bid", "ask"),
}


def probe_data_file(path: str, fmt: str) -> str | None:
    """A cheap check that ``path`` exists and looks like ``fmt`` (the formats of
    :class:`ReplayFile`; ``fred_fx`` also for FX files): its header has the format's columns
    and one of its first rows reads as a row of it. Returns why not, or None.

    The loaders (:mod:`xmc_actors.feeds.replay`) still report each row they skip; this catches
    a wrong path, a wrong file or a wrong format when the configuration is checked.
    """
    import csv
    import datetime as dt
    import stat
    from decimal import Decimal, InvalidOperation
    from pathlib import Path

    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        rel = "" if p.is_absolute() else f" (relative to the current directory {Path.cwd()})"
        return f"file {path} does not exist{rel}"
    except OSError as e:
        return f"cannot read {path}: {e.strerror or e}"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is {'a directory' if stat.S_ISDIR(st.st_mode) else 'not a regular file'}"
    if st.st_size == 0:
        return f"{path} is empty"
    try:
        with p.open("rb") as fh:
            head = fh.read(PROBE_BYTES)
            tail = b""
            if fmt == "quotes_parquet" and st.st_size >= 8:
                fh.seek(-4, 2)
                tail = fh.read(4)
    except OSError as e:
        return f"cannot read {path}: {e.strerror or e}"
    if fmt == "quotes_parquet":
        if not (head[:4] == b"PAR1" and tail == b"PAR1"):
            return f"{path} is not a Parquet file (format {fmt})"
        return None
    if fmt not in _COLUMNS:
        return f"unknown format {fmt!r}"
    if b"\0" in head:
        return f"{path} is a binary file, not CSV text (format {fmt})"
    complete = len(head) == st.st_size
    if not complete:  # drop the row cut by the read
        head = head[: head.rfind(b"\n") + 1] if b"\n" in head else b""
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return f"{path} is not UTF-8 text (byte 0x{head[e.start]:02x} at offset {e.start})"
    rows = list(csv.reader(text.splitlines()[: PROBE_ROWS + 1]))
    if not rows:
        return f"{path} has no header row (format {fmt})"
    header = [h.strip().lower() for h in rows[0]]
    need = _COLUMNS[fmt]
    if fmt == "sge_daily":
        if header[:5] != ["date", "open", "close", "low", "high"]:
            return f"{path}: format sge_daily expects columns date,open,close,low,high; found {_cols(header)}"
    elif fmt == "fred_fx":
        if len(header) != 2 or header[0] != "date":
            return f"{path}: format fred_fx (a FRED series) expects two columns date,<SERIES>; found {_cols(header)}"
    elif not set(need) <= set(header):
        missing = [c for c in need if c not in header]
        return f"{path}: format {fmt} needs columns {','.join(need)}; missing {','.join(missing)} (found {_cols(header)})"
    data = rows[1:]
    if not data:
        return f"{path} has a header but no data rows"

    def number(s: str) -> bool:
        try:
            return Decimal(s.strip()).is_finite()
        except InvalidOperation:
            return False

    def fits(row: list[str]) -> str | None:
        cell = dict(zip(header, row))
        if fmt == "quotes_csv":
            ts = cell.get("ts", "").strip()
            if not ts.isdigit():
                try:
                    dt.datetime.fromisoformat(ts)
                except ValueError:
                    return f"timestamp {ts[:30]!r} is neither ns since the epoch nor ISO-8601"
            if not (number(cell.get("bid", "")) and number(cell.get("ask", ""))):
                return "bid/ask are not numbers"
            return None
        try:
            dt.date.fromisoformat(cell.get("date", "").strip())
        except ValueError:
            return f"date {cell.get('date', '')[:30]!r} is not YYYY-MM-DD"
        if fmt == "fred_fx":
            v = cell.get(header[1], "").strip()
            return None if v in ("", ".") or number(v) else f"rate {v[:30]!r} is not a number"
        bad = [c for c in _BAR_COLUMNS[1:] if not number(cell.get(c, ""))]
        return f"{','.join(bad)} not numbers" if bad else None

    reasons = [fits(r) for r in data]
    if all(r is not None for r in reasons):
        return f"{path}: the first rows do not read as format {fmt} (line 2: {reasons[0]})"
    return None


def _cols(header: list[str]) -> str:
    s = ",".join(header)
    return (s[:80] + "...") if len(s) > 80 else (s or "nothing")
