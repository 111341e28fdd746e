"""Pair specifications (configuration) and pair intents (what a strategy asks to execute)."""
from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

from .market import Side
from .orders import Price

FROZEN = ConfigDict(frozen=True, extra="forbid")


class ExecutionMode(str, Enum):
    PRICE = "price"        # limit orders at the trigger prices
    SPEED = "speed"        # IOC at an aggressive price capped by max slippage
    QUANTITY = "quantity"  # size to the smaller visible liquidity
    LEAD_LAG = "lead_lag"  # the less liquid leg first, hedge the other on each fill


class PairState(str, Enum):
    NEW = "NEW"
    WORKING = "WORKING"
    REPLENISHING = "REPLENISHING"
    ROLLING_BACK = "ROLLING_BACK"
    HEDGED = "HEDGED"
    ROLLED_BACK = "ROLLED_BACK"
    ESCALATED = "ESCALATED"
    REFUSED = "REFUSED"

    @property
    def is_terminal(self) -> bool:
        return self in (PairState.HEDGED, PairState.ROLLED_BACK, PairState.ESCALATED, PairState.REFUSED)


class LegSpec(BaseModel):
    """One leg of a configured pair: which instrument, through which account, how much per unit."""

    model_config = FROZEN
    instrument: str
    account: str
    ratio: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] = Decimal("1")


class PairSpec(BaseModel):
    """A pair of legs and the hedge ratio between them.

    ``hedge_ratio`` is leg B lots per leg A lot and need not be an integer: SHFE au is 1,000 g
    = 32.15 troy oz, so one COMEX GC lot (100 oz) hedges about 3.11 SHFE au lots.
    """

    model_config = FROZEN
    legs: tuple[LegSpec, LegSpec]
    hedge_ratio: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] = Decimal("1")


class ReplenishBudget(BaseModel):
    """How hard the coordinator may try to complete an unfilled leg (补单)."""

    model_config = FROZEN
    max_attempts: NonNegativeInt = 3
    max_chase_ticks: NonNegativeInt = 5
    max_chase_bps: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] = Decimal("20")
    max_time_ms: PositiveInt = 2_000


class RollbackPolicy(BaseModel):
    """How aggressively the filled leg may be unwound (回滚) when the pair cannot complete."""

    model_config = FROZEN
    max_slippage_ticks: NonNegativeInt = 20
    max_slippage_bps: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] = Decimal("50")
    max_attempts: PositiveInt = 3
    max_time_ms: PositiveInt = 5_000


class LegIntent(BaseModel):
    model_config = FROZEN
    leg: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,8}$")] = "A"
    instrument: str
    account: str
    side: Side
    qty: PositiveInt
    limit_price: Price | None = None
    trigger_price: Price | None = None
    visible_qty: NonNegativeInt | None = None  # lots visible at the executable price when the signal fired


class PairIntent(BaseModel):
    """What a strategy asks the coordinator to execute. ``decision_id`` is the idempotency key."""

    model_config = FROZEN
    decision_id: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.\-]+$")]
    strategy: str
    legs: tuple[LegIntent, LegIntent]
    hedge_ratio: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] = Decimal("1")
    mode: ExecutionMode = ExecutionMode.PRICE
    deadline_ns: int | None = None
    replenish: ReplenishBudget = ReplenishBudget()
    rollback: RollbackPolicy = RollbackPolicy()
    max_slippage_bps: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] = Decimal("30")
    reduce_only: bool = False
    created_ns: int = 0

    @model_validator(mode="after")
    def _check(self) -> "PairIntent":
        if self.legs[0].leg == self.legs[1].leg:
            raise ValueError(f"legs: both legs are named {self.legs[0].leg!r}")
        return self


# Compact pickling across Ray calls (strategy -> coordinator): see model/fastpickle.py.
from .fastpickle import fast_pickle as _fast_pickle  # noqa: E402

_fast_pickle(ReplenishBudget, RollbackPolicy, LegIntent, PairIntent)
