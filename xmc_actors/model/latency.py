"""Latency models: how long a message takes, as a seeded draw (simulated venues, the execution lab)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

STRICT = ConfigDict(frozen=True, extra="forbid")
Prob = Annotated[float, Field(ge=0, le=1)]
NonNegF = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class LatencyModel(BaseModel):
    """A one-way or round-trip delay: ``const`` (mean_ms), ``uniform`` (mean_ms +/- jitter_ms)
    or ``lognormal`` (mean mean_ms, standard deviation jitter_ms: a long right tail).

    Bursts: with probability ``burst_prob`` a draw is a congested one and ``burst_ms`` is added
    (a venue's gateway queueing at the open, a route's retransmission): what makes a foreign leg
    occasionally much later than its mean."""

    model_config = STRICT
    kind: Literal["const", "uniform", "lognormal"] = "const"
    mean_ms: NonNegF = 0.0
    jitter_ms: NonNegF = 0.0
    burst_prob: Prob = 0.0
    burst_ms: NonNegF = 0.0
