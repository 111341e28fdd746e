"""Parameters of the simulated venue: its matching rules and its seeded fault injection."""
from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

from ..model.latency import LatencyModel
from ..model.orders import RejectReason

STRICT = ConfigDict(frozen=True, extra="forbid")
Prob = Annotated[float, Field(ge=0, le=1)]
NonNegF = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Disconnect(BaseModel):
    model_config = STRICT
    at_s: NonNegF
    duration_s: Annotated[float, Field(gt=0)]


class FaultConfig(BaseModel):
    model_config = STRICT
    reject_prob: dict[RejectReason, Prob] = Field(default_factory=dict)
    partial_fill_prob: Prob = 0.0
    no_ack_prob: Prob = 0.0
    disconnects: tuple[Disconnect, ...] = ()
    clock_skew_ms: Annotated[float, Field(ge=-60_000, le=60_000)] = 0.0
    clock_drift_ppm: Annotated[float, Field(ge=-1000, le=1000)] = 0.0
    clock_jitter_ms: NonNegF = 0.0
    md_drop_prob: Prob = 0.0
    md_reorder_prob: Prob = 0.0


class SimAccount(BaseModel):
    """An account the simulated venue reads out like a broker (``account_reading``)."""

    model_config = STRICT
    capital: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class SimVenueParams(BaseModel):
    model_config = STRICT
    seed: int = 0
    ack_latency: LatencyModel = LatencyModel()
    faults: FaultConfig = FaultConfig()
    default_depth: NonNegativeInt = 50  # lots shown at top of book when a feed gives no size
    queue_model: Literal["touch", "queue"] = "touch"
    """How a resting limit order fills. ``touch``: when the market's opposite side reaches its
    price (liquidity at the limit is ours). ``queue``: it joins the back of the visible queue at
    its price and fills only once the volume traded at that price has used up the queue ahead of
    it, or when the market trades through its price (``docs/lab.md``, "Queue position")."""
    enforce_sessions: bool = True
    enforce_price_limits: bool = True
    network_latency: LatencyModel = LatencyModel(kind="uniform", mean_ms=0.3, jitter_ms=0.2)
    """One-way gateway <-> venue network latency (market data and clock probes)."""
    ack_timeout_ms: Annotated[float, Field(gt=0)] = 1000.0
    """How long the gateway waits for an answer before it reports the outcome as UNKNOWN."""
    probe_interval_ms: Annotated[float, Field(gt=0)] = 100.0
    """Clock-calibration round trips (NTP-style) every this many milliseconds."""
    state_dir: str | None = None
    """Where the simulated venue keeps its memory (orders, fills, drop copy) so that it outlives
    the gateway process, as a real venue does: a journal ``<state_dir>/<gateway>.venue``. A
    gateway that Ray restarts (its node came back) reopens it and reconciles; a fresh start
    begins a new journal (unless ``keep_state``). None (the default): the venue's memory dies
    with the gateway."""
    keep_state: bool = False
    """With ``state_dir``: the venue's memory also outlives the deployment, as a real venue's
    does: a new deployment on the same ``state_dir`` finds the venue's orders, fills and
    positions of the earlier one (what a deployment started on an existing ledger is
    reconciled against)."""
    accounts: dict[str, SimAccount] = Field(default_factory=dict)
    """Accounts whose figures the venue gives like a broker (``account_reading()``: equity =
    capital + the P&L of its fills here marked at its own mids, less fees; margin by the venue's
    ``margin_rule``; available = equity - margin), which the risk guard compares with its own.
    List an account only when all its positions are at this venue and in its currency (a
    broker's reading covers the whole account). Empty: the venue gives no reading."""
