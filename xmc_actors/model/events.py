"""The one event envelope every actor writes to the ledger."""
from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventKind(str, Enum):
    SIGNAL = "SIGNAL"
    INTENT = "INTENT"
    RISK_DECISION = "RISK_DECISION"
    PAIR_STATE = "PAIR_STATE"
    ORDER_SENT = "ORDER_SENT"
    ORDER_REPORT = "ORDER_REPORT"
    CANCEL_SENT = "CANCEL_SENT"
    REPLENISH = "REPLENISH"
    ROLLBACK = "ROLLBACK"
    ESCALATION = "ESCALATION"
    TIMER = "TIMER"
    ALERT = "ALERT"
    OPERATOR = "OPERATOR"
    VENUE_DROP_COPY = "VENUE_DROP_COPY"
    BAD_INPUT = "BAD_INPUT"
    GAP = "GAP"
    RECONCILE = "RECONCILE"
    STRATEGY_ERROR = "STRATEGY_ERROR"
    LIFECYCLE = "LIFECYCLE"


class Event(BaseModel):
    """An audit event. ``event_id`` (time-ordered, unique) makes ledger writes idempotent."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    event_id: str = Field(min_length=1, max_length=64)
    ts_ns: int = Field(ge=0)
    decision_id: str = ""
    parent_id: str = ""
    kind: EventKind
    strategy: str = ""
    account: str = ""
    venue: str = ""
    instrument: str = ""
    actor: str = ""
    reason: str = ""
    latency_us: float | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
