"""Market-data sources: replay of recorded files, seeded synthetic generator.

:func:`build_feed` turns a gateway's ``feed`` configuration into a :class:`FeedSource`; the
``factory`` slot of each registry entry points at the builder of that kind.
"""
from __future__ import annotations

import datetime as dt
import heapq
from typing import Any, Sequence

from ..model.config import FeedConfig
from ..model.market import Instrument, Venue
from ..model.registry import FEEDS
from .config import NoFeedParams, ReplayParams, SyntheticParams
from .replay import LoadReport, load_fred_fx, load_replay_file
from .source import FeedSource
from .synthetic import synthetic_quotes


def build_replay(params: ReplayParams, venue: Venue | None, instruments: Sequence[Instrument]) -> FeedSource:
    """A replay of ``params.files`` merged in time order; ``.reports`` says what each loader skipped."""
    by_id = {i.id: i for i in instruments}
    streams, reports = [], []
    start = dt.date.fromisoformat(params.start) if params.start else None
    end = dt.date.fromisoformat(params.end) if params.end else None
    for f in params.files:
        if f.instrument not in by_id:
            raise KeyError(f"replay file {f.path}: instrument {f.instrument!r} is not listed on this venue")
        quotes, rep = load_replay_file(f.path, f.format, by_id[f.instrument], venue,
                                       spread_ticks=params.spread_ticks, size=params.size, spec=f,
                                       limit_reference=params.limit_reference)
        if start or end:
            tz = venue.tz if venue is not None else dt.timezone.utc
            def _day(q: Any) -> dt.date:
                return dt.datetime.fromtimestamp(q.ts_ns / 1e9, tz).date()
            quotes = [q for q in quotes if (not start or _day(q) >= start) and (not end or _day(q) <= end)]
        streams.append(quotes)
        reports.append(rep)
    merged = list(heapq.merge(*streams, key=lambda q: q.ts_ns))
    src = FeedSource(merged, speed=None if params.speed == "max" else float(params.speed))
    src.reports = reports  # type: ignore[attr-defined]
    return src


def build_synthetic(params: SyntheticParams, venue: Venue | None, instruments: Sequence[Instrument]) -> FeedSource:
    """The seeded synthetic generator as a feed (paced at ``ticks_per_s`` unless ``speed`` says otherwise)."""
    speed = None if params.speed == "max" else (1.0 if params.speed == "recorded" else float(params.speed))
    src = FeedSource(synthetic_quotes(params, {i.id: i for i in instruments}, venue), speed=speed,
                     total=params.count)
    src.reports = []  # type: ignore[attr-defined]
    return src


def build_feed(cfg: FeedConfig, venue: Venue | None, instruments: Sequence[Instrument]) -> FeedSource | None:
    """Build the feed a gateway is configured with; None for ``kind: none``."""
    entry = FEEDS.get(cfg.kind)
    params = entry.params.model_validate(cfg.params)
    if entry.factory is None:
        return None
    return entry.factory(params, venue, instruments)


FEEDS.register("none", NoFeedParams, None, doc="no market data (orders only)")
FEEDS.register("replay", ReplayParams, build_replay, doc="replay of recorded files (CSV/Parquet quotes or daily bars)")
FEEDS.register("synthetic", SyntheticParams, build_synthetic, doc="seeded cointegrated synthetic market")

__all__ = ["FeedSource", "LoadReport", "build_feed", "build_replay", "build_synthetic", "load_fred_fx"]
