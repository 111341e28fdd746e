"""Rolling a strategy out in stages: shadow, canary, live; the gates between them; the
acceptance targets and the stress test's thresholds (docs/configuration.md, "Stages").

A desk brings a strategy to full size in steps (灰度发布): **shadow** (it decides and records what
it would send, priced against the live book, and sends nothing), **canary** (live, with a fraction
of the size, a cap on pairs a day and on the lots it may hold), **live**. A promotion passes a
**gate**: figures measured from the strategy's own trail in the stage it leaves. While canary or
live, a red alert or a breached gate can send it back to shadow by itself (``demote``).

These are the settings only; the logic is in :mod:`xmc_actors.core.stages` (gates),
:mod:`xmc_actors.strategies.stages` (what each stage does to an intent) and
:mod:`xmc_actors.ledger.stage_figures` (the figures).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

FROZEN = ConfigDict(frozen=True, extra="forbid")

#: the stages, lowest first
STAGES: tuple[str, ...] = ("shadow", "canary", "live")
Stage = Literal["shadow", "canary", "live"]

Rate = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(gt=0, le=366 * 86_400, allow_inf_nan=False)]


class CanaryConfig(BaseModel):
    """What a canary may do: a fraction of each move's size (whole lots, at least one), at most
    ``max_pairs_per_day`` pairs that add to what it holds per UTC day, and at most
    ``max_open_lots`` leg-A lots held. Moves that only reduce what it holds always pass.
    ``shadow_twin`` also runs the strategy at full size in shadow beside it."""

    model_config = FROZEN
    size_fraction: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.25
    max_pairs_per_day: Annotated[int, Field(ge=0, le=1_000_000)] = 20
    max_open_lots: Annotated[int, Field(gt=0, le=1_000_000)] = 2
    #: run a shadow twin beside the strategy (``<name>.twin``, always in shadow, full size, on the
    #: same quotes): what full size would have done, compared in the acceptance report
    shadow_twin: bool = False


class GateConfig(BaseModel):
    """What a strategy's figures in the stage it leaves must be for a promotion to pass.

    Each bound left out is not checked. Figures are measured over the last ``window_s`` seconds
    of the strategy's trail in that stage (``xmc_actors.ledger.stage_figures``). A shadow stage
    has no venue outcomes: its ``pairs`` are the intents it recorded, its sync fill rate the share
    the visible book could have filled in full on both legs, its slippage that of the prices
    the book offered; success rate and reject ratio are not measured there (a gate that asks for
    them from a shadow is refused, saying so).
    """

    model_config = FROZEN
    window_s: Seconds = 86_400.0
    min_pairs: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    min_success_rate: Rate | None = None
    min_sync_fill_rate: Rate | None = None
    max_slippage_p95_bps: NonNegative | None = None
    max_reject_ratio: Rate | None = None
    max_escalations: Annotated[int, Field(ge=0, le=1_000_000)] | None = 0
    #: a pair is synchronous when both legs filled in full within this of its first order
    sync_window_ms: Annotated[float, Field(gt=0, le=3_600_000, allow_inf_nan=False)] = 500.0


class StageGates(BaseModel):
    """The gate into each stage: ``canary`` (from shadow) and ``live`` (from canary). A stage
    without a gate is entered on the operator's word (recorded as such)."""

    model_config = FROZEN
    canary: GateConfig | None = None
    live: GateConfig | None = None


class DemoteConfig(BaseModel):
    """Automatic demotion to shadow (a configured action; off by default): on a red alert about
    the strategy (an escalated pair is one), or when the gate of its stage no longer holds over
    that gate's window (checked every ``check_every_s`` once ``min_pairs`` pairs are in it)."""

    model_config = FROZEN
    on_red_alert: bool = False
    on_gate_breach: bool = False
    check_every_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 30.0


class AcceptanceTargets(BaseModel):
    """Targets of the acceptance report (验收): the execution figures a strategy's live (or canary)
    trail must meet; the same names as a gate's bounds."""

    model_config = FROZEN
    min_pairs: Annotated[int, Field(ge=0, le=10_000_000)] = 1
    min_success_rate: Rate | None = None
    min_sync_fill_rate: Rate | None = None
    max_slippage_p95_bps: NonNegative | None = None
    max_reject_ratio: Rate | None = None
    max_escalations: Annotated[int, Field(ge=0, le=1_000_000)] | None = 0
    max_unhedged_p95_ms: NonNegative | None = None
    sync_window_ms: Annotated[float, Field(gt=0, le=3_600_000, allow_inf_nan=False)] = 500.0


class AcceptanceConfig(BaseModel):
    """``acceptance:`` in the deployment file: default targets and per-strategy overrides."""

    model_config = FROZEN
    targets: AcceptanceTargets = AcceptanceTargets()
    strategies: dict[str, AcceptanceTargets] = Field(default_factory=dict)

    def targets_for(self, strategy: str) -> AcceptanceTargets:
        return self.strategies.get(strategy, self.targets)


class StressScenario(BaseModel):
    """One extreme market of a stress run (``xmc stress``)."""

    model_config = FROZEN
    kind: Literal["gap_through_band", "limit_locked", "venue_silent", "quote_burst", "all_fire"]
    at_s: NonNegative = 0.0
    venue: str | None = None
    instrument: str | None = None
    duration_s: NonNegative = 2.0
    #: quote_burst: the multiple of the usual quote rate
    factor: Annotated[float, Field(ge=1, le=1_000, allow_inf_nan=False)] = 10.0


class StressThresholds(BaseModel):
    """Pass or fail of a stress run: each bound left out is not checked, lost events always are."""

    model_config = FROZEN
    min_pairs_per_s: NonNegative | None = None
    max_decision_to_sent_p99_ms: NonNegative | None = None
    max_ack_p99_ms: NonNegative | None = None
    max_escalations: Annotated[int, Field(ge=0)] | None = None
    max_lost_events: Annotated[int, Field(ge=0)] = 0


class StressConfig(BaseModel):
    """``stress:`` in the deployment file: how long, which extreme markets, what must hold."""

    model_config = FROZEN
    duration_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 60.0
    quote_interval_ms: Annotated[float, Field(gt=0, le=60_000, allow_inf_nan=False)] = 50.0
    seed: int = 0
    scenarios: tuple[StressScenario, ...] = ()
    thresholds: StressThresholds = StressThresholds()


def twin_name(strategy: str) -> str:
    """The name of a strategy's shadow twin (``canary.shadow_twin``): ``<strategy>.twin``."""
    return f"{strategy}.twin"


__all__ = ["twin_name", "STAGES", "Stage", "CanaryConfig", "GateConfig", "StageGates", "DemoteConfig", "AcceptanceTargets",
           "AcceptanceConfig", "StressScenario", "StressThresholds", "StressConfig"]
