"""Market-data sources: replay of recorded files, seeded synthetic generator."""
from ..runtime.registry import FEEDS
from .config import NoFeedParams, ReplayParams, SyntheticParams

for _n, _p in (("none", NoFeedParams), ("replay", ReplayParams), ("synthetic", SyntheticParams)):
    if _n not in FEEDS.entries:
        FEEDS.register(_n, _p)
