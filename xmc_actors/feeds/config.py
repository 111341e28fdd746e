"""Parameters of the market-data feeds a gateway can be given."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

STRICT = ConfigDict(frozen=True, extra="forbid")


class NoFeedParams(BaseModel):
    model_config = STRICT


class ReplayFile(BaseModel):
    model_config = STRICT
    instrument: str
    path: str
    format: Literal["sge_daily", "comex_daily", "fred_fx", "ohlc_csv", "quotes_csv", "quotes_parquet"] = "ohlc_csv"


class ReplayParams(BaseModel):
    """Replay recorded files. ``speed``: ``max`` (as fast as possible) or a multiple of real time."""

    model_config = STRICT
    files: tuple[ReplayFile, ...] = Field(min_length=1)
    speed: Literal["max"] | Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)] = "max"
    start: str | None = None
    end: str | None = None
    spread_ticks: PositiveInt = 2       # bars -> quotes: bid/ask this many ticks apart around the price
    size: PositiveInt = 50


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
