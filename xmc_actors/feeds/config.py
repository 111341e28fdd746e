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
    speed: Literal["max"] | Annotated[float, Field(gt=0)] = "max"
    start: str | None = None
    end: str | None = None
    spread_ticks: PositiveInt = 2       # bars -> quotes: bid/ask this many ticks apart around the price
    size: PositiveInt = 50


class SyntheticParams(BaseModel):
    """Seeded generator of cointegrated pairs (for load and fault tests)."""

    model_config = STRICT
    seed: int = 0
    instruments: tuple[str, ...] = Field(min_length=1)
    start_prices: tuple[Annotated[float, Field(gt=0)], ...] = ()
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
    speed: Literal["max", "recorded"] | Annotated[float, Field(gt=0)] = "recorded"
    """Pace in a background run: ``recorded`` (ticks_per_s of real time), N x that, or ``max``."""
