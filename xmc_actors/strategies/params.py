"""Parameter models of the built-in strategies (validated by ``xmc validate``)."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, field_validator, model_validator

STRICT = ConfigDict(frozen=True, extra="forbid")
Fin = Annotated[float, Field(allow_inf_nan=False)]


class Costs(BaseModel):
    """Costs folded into the signal: fees, an import/VAT factor, financing."""

    model_config = STRICT
    fee_bps: Annotated[float, Field(ge=0, le=1000)] = 0.0
    vat_factor: Annotated[float, Field(ge=1, le=2)] = 1.0   # e.g. 1.13 for 13% VAT on the domestic leg
    vat_leg: Literal["A", "B"] = "A"
    financing_bps_per_day: Annotated[float, Field(ge=0, le=100)] = 0.0
    holding_days: Annotated[float, Field(ge=0)] = 0.0
    venue_fees: bool = True   # also each leg's exchange fee to open (its instrument's fee schedule)


class Guards(BaseModel):
    model_config = STRICT
    stale_ms: PositiveInt = 5_000
    max_skew_ms: PositiveInt = 2_000          # calibrated-time distance allowed between the two legs' quotes
    require_sessions_open: bool = True
    # a quote replayed from a daily bar (Quote.origin "close", or "bridge" between two closes)
    # is one price a day: judged by these instead (a weekend and a holiday; venues closing in
    # different time zones on the same day)
    close_stale_ms: PositiveInt = 345_600_000   # 4 days
    close_skew_ms: PositiveInt = 86_400_000     # 1 day


class BandParams(BaseModel):
    """Band arbitrage: enter when the signal leaves [exit, entry] bands, with hysteresis."""

    model_config = STRICT
    signal: Literal["spread", "ratio"] = "ratio"
    price: Literal["mid", "executable"] = "executable"
    entry: Fin
    exit: Fin
    center: Fin = 0.0
    clip: PositiveInt = 1                     # leg-A lots per entry
    max_position: PositiveInt = 5             # leg-A lots
    cooldown_ms: NonNegativeInt = 1_000
    scale_step: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None  # one more clip per step beyond entry
    costs: Costs = Costs()
    guards: Guards = Guards()

    @model_validator(mode="after")
    def _bands(self) -> "BandParams":
        if self.entry <= self.exit:
            raise ValueError(f"entry ({self.entry}) must be above exit ({self.exit}): bands are distances from center")
        return self


class ZScoreParams(BaseModel):
    model_config = STRICT
    signal: Literal["spread", "ratio"] = "ratio"
    price: Literal["mid", "executable"] = "mid"
    window: Annotated[int, Field(ge=5, le=100_000)] = 100
    entry_z: Annotated[float, Field(gt=0)] = 2.0
    exit_z: Annotated[float, Field(ge=0)] = 0.5
    clip: PositiveInt = 1
    max_position: PositiveInt = 5
    cooldown_ms: NonNegativeInt = 1_000
    scale_step: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None  # in z units
    costs: Costs = Costs()
    guards: Guards = Guards()

    @model_validator(mode="after")
    def _bands(self) -> "ZScoreParams":
        if self.entry_z <= self.exit_z:
            raise ValueError(f"entry_z ({self.entry_z}) must be above exit_z ({self.exit_z})")
        return self


class BasisMonitorParams(BaseModel):
    model_config = STRICT
    signal: Literal["spread", "ratio"] = "spread"
    alert_above: Fin | None = None
    alert_below: Fin | None = None
    rearm: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0  # distance back inside before re-alerting
    level: Literal["info", "yellow", "orange", "red"] = "yellow"
    costs: Costs = Costs()                    # only vat_factor/vat_leg matter: the monitor reads mids
    guards: Guards = Guards()


class CalendarRollParams(BaseModel):
    """Move a position from the near to the far contract (移仓换月) on a schedule."""

    model_config = STRICT
    roll_at: list[str] = Field(default_factory=list, description="ISO date-times (UTC) at which to roll")
    qty: PositiveInt = 1
    holding: Literal["long", "short"] = "long"  # long: sell near / buy far; short: buy near / sell far
    max_spread_ticks: NonNegativeInt = 10       # each leg's bid-ask spread, in its ticks, at most this to roll
    guards: Guards = Guards()

    @field_validator("roll_at")
    @classmethod
    def _times(cls, v: list[str]) -> list[str]:
        for i, s in enumerate(v):
            try:
                dt.datetime.fromisoformat(s)
            except ValueError:
                raise ValueError(f"roll_at[{i}]: {s!r} is not an ISO date-time (2026-01-15T06:00:00Z)") from None
        return v

    def roll_times_ns(self) -> list[int]:
        """The roll times as UTC nanoseconds, sorted (a time without a zone is UTC)."""
        out = []
        for s in self.roll_at:
            t = dt.datetime.fromisoformat(s)
            if t.tzinfo is None:
                t = t.replace(tzinfo=dt.timezone.utc)
            out.append(int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1_000)
        return sorted(out)


BUILTIN_PARAMS: dict[str, type[BaseModel]] = {
    "band": BandParams,
    "zscore": ZScoreParams,
    "basis_monitor": BasisMonitorParams,
    "calendar_roll": CalendarRollParams,
}
