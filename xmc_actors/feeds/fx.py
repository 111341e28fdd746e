"""An FX book from a deployment's ``fx`` section, reading ``source: file`` series from disk.

Reading files is the feeds' business, so this sits here rather than in
:mod:`xmc_actors.core.pricing` (which holds the rate providers and the book themselves): the
FRED layout has one reader, :func:`xmc_actors.feeds.replay.load_fred_fx`.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Sequence

from ..core.pricing import DailySeries, FxBook, LiveRate, StaticRate
from ..model.errors import CurrencyError
from ..model.market import FxPair
from .replay import load_fred_fx


def load_daily_fx_csv(path: str | Path) -> tuple[dict[dt.date, float], list[str]]:
    """Read a ``date,rate`` CSV (FRED layout: header row, ``.`` or blank for no fixing).

    Returns the rows and a list of what was skipped and why (line number and reason); a file
    without a single usable row is an error naming the file. The parsing is the replay
    loader's (:func:`xmc_actors.feeds.replay.load_fred_fx`): one reader of the FRED layout.
    """
    p = Path(path)
    try:
        series, report = load_fred_fx(p)
    except (OSError, ValueError) as e:
        raise CurrencyError(f"{p}: cannot read FX rates: {e}") from None
    rows = {day: float(rate) for day, rate in series}
    skipped = [f"{p.name}:{line}: {why}" for line, why in report.skipped]
    if not rows:
        raise CurrencyError(f"{p}: no usable FX row (skipped {len(skipped)})")
    return rows, skipped


#: How many calendar days back a ``source: file`` series looks for a row when a date has none,
#: unless its ``fx[].max_lag_days`` says otherwise: 0, a date without a row gives no rate (no
#: parity, no signal, and the pre-trade check refuses with FX_UNAVAILABLE). Every part of a
#: deployment (strategies, the pre-trade check, the risk guard, ``xmc validate``) uses this one
#: default, and looks the rate up at the market time of the data (a replay of 2019 at 2019's
#: rates), so a replay never needs a lag to reach its own dates.
DEFAULT_FX_MAX_LAG_DAYS = 0


def fx_book_from_config(pairs: Sequence[FxPair], *, pivot: str = "USD", tz: str = "UTC",
                        max_lag_days: int = DEFAULT_FX_MAX_LAG_DAYS, live_max_age_ms: int = 60_000) -> FxBook:
    """Build an :class:`FxBook` from a deployment's ``fx`` section.

    ``source: static`` -> :class:`StaticRate`; ``source: file`` -> :class:`DailySeries` read
    with :func:`load_daily_fx_csv`; any other source (``live``, a gateway) -> :class:`LiveRate`
    fed through :meth:`FxBook.update`.
    """
    book = FxBook(pivot=pivot)
    for fp in pairs:
        if fp.source == "static":
            assert fp.rate is not None
            book.add(fp.base, fp.quote, StaticRate(float(fp.rate), source=f"static:{fp.id}"))
        elif fp.source == "file":
            assert fp.file is not None
            rows, _ = load_daily_fx_csv(fp.file)
            book.add(fp.base, fp.quote, DailySeries(rows, tz=tz, max_lag_days=max_lag_days if fp.max_lag_days is None else fp.max_lag_days, source=f"{fp.id}@{Path(fp.file).name}"))
        else:
            book.add(fp.base, fp.quote, LiveRate(max_age_ms=live_max_age_ms, source=f"{fp.source}:{fp.id}"))
    return book


__all__ = ["DEFAULT_FX_MAX_LAG_DAYS", "load_daily_fx_csv", "fx_book_from_config"]
