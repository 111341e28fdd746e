"""Pair specifications (configuration) and pair intents (what a strategy asks to execute)."""
from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator,
)

from .market import Side
from .orders import Price

FROZEN = ConfigDict(frozen=True, extra="forbid")


class ExecutionMode(str, Enum):
    PRICE = "price"        # limit orders at the trigger prices
    SPEED = "speed"        # IOC at an aggressive price capped by max slippage
    QUANTITY = "quantity"  # size to the smaller visible liquidity
    LEAD_LAG = "lead_lag"  # the less liquid leg first, hedge the other on each fill
    SEQUENTIAL = "sequential"  # 分端操作: leg A first; leg B only once A is filled (the lab's baseline)


class PairState(str, Enum):
    NEW = "NEW"
    WORKING = "WORKING"
    REPLENISHING = "REPLENISHING"
    WINDING_DOWN = "WINDING_DOWN"  # stopped trying to complete: cancelling what works, then settle or unwind
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
    #: after an unwind that left lots undone (its IOC remainder cancelled, or refused for its price),
    #: the leg's next unwind waits this long (at most an even share of what is left of
    #: ``max_time_ms``) for a thin book to refill; 0 (the default) sends it at once. Unwinds are
    #: priced from the trigger price, so a wait helps where the touch empties and refills (three
    #: IOCs a few milliseconds apart meet the book the first emptied) and costs where the market
    #: runs away (the price drifts further from the trigger while it waits): in one run of the
    #: chaos suite's fast synthetic market it escalated more pairs, not fewer
    #: (docs/architecture.md, "Prices")
    retry_after_ms: NonNegativeInt = 0


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
    #: the latest moment (the coordinator's clock) its first orders may leave: its prices were
    #: decided on quotes of then. Past it, an intent the coordinator does not know is refused
    #: ``STALE_DECISION``. None: no limit
    start_by_ns: int | None = None
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



# --------------------------------------------------------------------------- pair summary
def _pair_state_name(v: str) -> str:
    PairState(v)  # a ValueError names the bad state
    return v


class LegSummary(BaseModel):
    """One leg of a pair's outcome. Quantities are lots; ``filled_qty`` and ``rollback_qty`` are
    unsigned (the leg's own side, and the opposite side for the unwinds), ``net_qty`` is signed
    (+ bought, - sold) and, when given, must agree with them."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    leg: str = Field(min_length=1)
    instrument: str
    account: str
    side: Side
    intended_qty: NonNegativeInt = 0        # the intent's lots
    target_qty: NonNegativeInt | None = None  # after sizing to lots and liquidity
    filled_qty: NonNegativeInt = 0          # lots filled by the leg's own orders (first send + replenish)
    avg_price: Decimal | None = None        # average price of those fills
    rollback_qty: NonNegativeInt = 0        # lots unwound by rollback orders (opposite side)
    rollback_avg_price: Decimal | None = None
    net_qty: int | None = None              # signed lots the leg left in the book
    trigger_price: Decimal | None = None
    slippage_pct: float | None = None       # adverse slippage vs trigger, 0.01 = 1%; computed when absent
    orders: NonNegativeInt = 0              # orders sent on this leg (first, replenish, rollback)
    replenishes: NonNegativeInt = 0
    rejects: NonNegativeInt = 0             # definitive venue rejections among them
    ack_latencies_ms: list[float] = Field(default_factory=list)

    @model_validator(mode="after")
    def _agree(self) -> "LegSummary":
        if self.net_qty is not None and self.net_qty != self.side.sign * (self.filled_qty - self.rollback_qty):
            raise ValueError(f"leg {self.leg}: net_qty {self.net_qty} is not {self.side.value} "
                             f"filled_qty {self.filled_qty} - rollback_qty {self.rollback_qty}")
        return self

    @property
    def venue(self) -> str:
        return self.instrument.split(".", 1)[0]

    @property
    def net_lots(self) -> int:
        """Signed lots this leg left in the book (after rollback)."""
        return (self.filled_qty - self.rollback_qty) * self.side.sign

    def adverse_slippage(self) -> float | None:
        if self.slippage_pct is not None:
            return self.slippage_pct
        if self.avg_price is None or not self.trigger_price or not self.filled_qty:
            return None
        return float((self.avg_price - self.trigger_price) / self.trigger_price) * self.side.sign


class PairSummary(BaseModel):
    """A pair's outcome: what the coordinator pushes to the strategy and the risk guard
    (``on_pair_done``) when a pair ends, again when a late fill revises it, after a restart
    (``recovered``), and for a fill on a pair it no longer holds (``incremental``).

    Built by one function, :func:`xmc_actors.core.pair.summary.pair_summary` (and
    ``incremental_summary`` for the late-fill case); it travels over Ray as
    ``model_dump(mode="json")`` and every reader takes it back with ``model_validate``.
    Unknown keys are refused: a misspelt key is an error, not a silent zero.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    decision_id: str = Field(min_length=1)
    strategy: str
    coordinator: str = ""
    mode: ExecutionMode | None = None
    # a PairState name; "outcome" is accepted on input (older hand-written summaries)
    state: Annotated[str, AfterValidator(_pair_state_name)] = Field(
        validation_alias=AliasChoices("state", "outcome"))
    reason: str = ""
    ts_ns: int = 0                          # when the summary was made (a newer one supersedes)
    complete: bool = False                  # HEDGED with every leg at its target
    unhedged_ms: float = Field(default=0.0, ge=0)  # time with a net unhedged position
    legs: list[LegSummary] = Field(default_factory=list)
    residual: dict[str, Any] | None = None  # an escalated pair's residual (what no order hedges)
    residual_booked: dict[str, Any] | None = None  # a sub-lot residual held in the strategy's book
    started_ns: int | None = None
    ended_ns: int | None = None
    # pushed again by a restarted coordinator from the ledger (nets only, no prices)
    recovered: bool = False
    # the legs are what to add to what is booked for the pair (a late fill on a pair the
    # coordinator no longer holds), not the pair's totals
    incremental: bool = False
    trade_id: str = ""  # of an incremental summary: the late fill it books (booked once)

    @property
    def pair_state(self) -> PairState:
        return PairState(self.state)

    def leg(self, name: str) -> LegSummary | None:
        return next((lg for lg in self.legs if lg.leg == name), None)

    def to_wire(self) -> dict[str, Any]:
        """What travels over Ray and is kept by the coordinator: plain JSON types."""
        return self.model_dump(mode="json")


# Compact pickling across Ray calls (strategy -> coordinator): see model/fastpickle.py.
from .fastpickle import fast_pickle as _fast_pickle  # noqa: E402

_fast_pickle(ReplenishBudget, RollbackPolicy, LegIntent, PairIntent)
