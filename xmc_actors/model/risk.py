"""Risk configuration: limits, throttles, capital occupancy levels, monitors and alert actions."""
from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .units import Amount, Count, Factor, NonNegCount

FROZEN = ConfigDict(frozen=True, extra="forbid")
Pct = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]
PosDec = Factor  # multipliers, milliseconds: finite, within units.MAX_FACTOR


class TradingState(str, Enum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"  # only risk-reducing orders
    HALTED = "HALTED"      # no new orders; cancels always allowed


class AlertLevel(str, Enum):
    INFO = "info"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"

    @property
    def rank(self) -> int:
        return ("info", "yellow", "orange", "red").index(self.value)


class AlertAction(str, Enum):
    NONE = "none"
    THROTTLE = "throttle"
    REDUCE = "reduce"
    HALT = "halt"


class InstrumentLimits(BaseModel):
    model_config = FROZEN
    max_order_qty: Count | None = None
    max_order_notional: Amount | None = None   # in the instrument's currency
    collar_pct: Pct | None = Decimal("0.05")    # fat-finger band around the reference price
    max_position: Count | None = None     # lots, absolute


class StrategyBudget(BaseModel):
    model_config = FROZEN
    max_margin: Amount | None = None           # in the base currency
    max_position: Count | None = None    # lots per instrument for this strategy
    max_pair_net_exposure: Amount | None = None  # base currency, |long notional - short notional|


class Throttle(BaseModel):
    """Order and cancel rates for the whole deployment; the RiskGuard splits them among coordinators."""

    model_config = FROZEN
    max_orders_per_s: Count = 50
    max_cancels_per_s: Count = 50
    throttled_fraction: Annotated[Decimal, Field(gt=0, le=1, allow_inf_nan=False)] = Decimal("0.2")
    """Share of the rate left to a scope (strategy, venue, global) a THROTTLE action applies to."""


class DailyCounts(BaseModel):
    """Per-contract daily order and cancel counts (Chinese futures abnormal-trading thresholds)."""

    model_config = FROZEN
    max_orders_per_contract: Count | None = None
    max_cancels_per_contract: Count | None = None


class OccupancyLevels(BaseModel):
    """Capital occupancy (资金占用) = used margin / equity; red refuses new entries."""

    model_config = FROZEN
    yellow: Pct = Decimal("0.70")
    orange: Pct = Decimal("0.85")
    red: Pct = Decimal("0.90")

    @model_validator(mode="after")
    def _ordered(self) -> "OccupancyLevels":
        if not (self.yellow < self.orange < self.red):
            raise ValueError(
                f"levels must rise: yellow ({self.yellow}) < orange ({self.orange}) < red ({self.red})"
            )
        return self


class Monitors(BaseModel):
    model_config = FROZEN
    slippage_pct: Pct = Decimal("0.005")
    ack_latency_p99_ms: PosDec = Decimal("100")
    reject_ratio: Pct = Decimal("0.03")
    reject_window: Count = 100
    reject_min_orders: Count = 20
    unhedged_exposure_ms: Count = 2_000
    escalate_after_s: Count = 30     # a condition that persists this long goes up one level
    latency_window: Count = 200      # acks per venue in the rolling p99
    # Below 100 acks the p99 of the window is its maximum: one slow ack (a cold start, a GC
    # pause) would raise the alert, persist with the window and, escalated, reduce the venue.
    latency_min_samples: Count = 100
    level_multipliers: tuple[PosDec, PosDec, PosDec] = (Decimal("1"), Decimal("2"), Decimal("4"))
    """A value at or above threshold x m[0] is yellow, x m[1] orange, x m[2] red."""
    occupancy_actions: dict[AlertLevel, AlertAction] = Field(
        default_factory=lambda: {
            AlertLevel.INFO: AlertAction.NONE,
            AlertLevel.YELLOW: AlertAction.NONE,
            AlertLevel.ORANGE: AlertAction.THROTTLE,
            AlertLevel.RED: AlertAction.REDUCE,  # red: new entries refused, reducing still allowed
        }
    )

    @model_validator(mode="after")
    def _rising(self) -> "Monitors":
        m = self.level_multipliers
        if not (m[0] < m[1] < m[2]):
            raise ValueError(f"level_multipliers must rise, got {tuple(str(x) for x in m)}")
        return self


class AlertSink(BaseModel):
    model_config = FROZEN
    kind: str = "webhook"
    url: str
    min_level: AlertLevel = AlertLevel.ORANGE
    timeout_ms: Count = 2_000


class RiskConfig(BaseModel):
    model_config = FROZEN
    default_limits: InstrumentLimits = InstrumentLimits()
    instruments: dict[str, InstrumentLimits] = Field(default_factory=dict)
    strategies: dict[str, StrategyBudget] = Field(default_factory=dict)
    max_account_position: dict[str, Count] = Field(default_factory=dict)
    throttle: Throttle = Throttle()
    daily_counts: dict[str, DailyCounts] = Field(default_factory=dict)  # by venue
    occupancy: OccupancyLevels = OccupancyLevels()
    monitors: Monitors = Monitors()
    actions: dict[AlertLevel, AlertAction] = Field(
        default_factory=lambda: {
            AlertLevel.INFO: AlertAction.NONE,
            AlertLevel.YELLOW: AlertAction.THROTTLE,
            AlertLevel.ORANGE: AlertAction.REDUCE,
            AlertLevel.RED: AlertAction.HALT,
        }
    )
    sinks: tuple[AlertSink, ...] = ()
    grant_ttl_ms: Count = 5_000        # a grant not renewed within this lets only reducing orders through
    grant_refresh_ms: Count = 1_000    # how often the RiskGuard renews grants and re-checks monitors
    require_both_sessions_open: bool = True
    check_sessions: bool = True
    max_reference_age_ms: NonNegCount = 0  # 0: no age check on the collar's reference price
