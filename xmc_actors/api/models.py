"""The API's request and answer models: what its OpenAPI schema (``/v1/openapi.json``) shows."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RequestId = Field(default=None, pattern=r"^[A-Za-z0-9_.:\-]{1,64}$",
                  description="the caller's id of this request: a repeat with the same id and body answers the "
                              "first answer again (replayed: true) and changes nothing")
NameStr = Field(default=None, min_length=1, max_length=64)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StateChange(_Body):
    """Halt, reduce or resume: a strategy, a venue, or everything (neither given)."""

    strategy: str | None = NameStr
    venue: str | None = NameStr
    reason: str = Field(default="", max_length=500)
    request_id: str | None = RequestId

    @model_validator(mode="after")
    def _one_scope(self) -> "StateChange":
        if self.strategy and self.venue:
            raise ValueError("give strategy or venue, not both (neither: everything)")
        return self

    def scope(self) -> tuple[str, str | None]:
        if self.strategy:
            return "strategy", self.strategy
        if self.venue:
            return "venue", self.venue
        return "global", None


LimitSection = Literal["default_limits", "throttle", "occupancy", "monitors", "risk"]


class LimitChange(_Body):
    """One limit, as ``xmc limits set``: per instrument, strategy, account (max_position only)
    or venue (daily counts), else a global section. ``value`` "none" clears the limit."""

    instrument: str | None = NameStr
    strategy: str | None = NameStr
    account: str | None = NameStr
    venue: str | None = NameStr
    section: LimitSection | None = None
    field: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_][a-z0-9_]*$")
    value: str | int | float | None
    request_id: str | None = RequestId

    @model_validator(mode="after")
    def _one_place(self) -> "LimitChange":
        given = [k for k in ("instrument", "strategy", "account", "venue", "section") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"give one of instrument, strategy, account, venue, section (got {', '.join(given)})")
        if self.account and self.field != "max_position":
            raise ValueError(f"an account takes field max_position (max gross lots), not {self.field!r}")
        return self

    def target(self) -> tuple[str, str | None, str | None, str | None]:
        """(section, key, field, kind of key) as the risk guard's set_limit takes them."""
        if self.instrument:
            return "instruments", self.instrument, self.field, "instruments"
        if self.strategy:
            return "strategies", self.strategy, self.field, "strategies"
        if self.account:
            return "max_account_position", self.account, None, "accounts"
        if self.venue:
            return "daily_counts", self.venue, self.field, "venues"
        return self.section or "default_limits", None, self.field, None


class AckRequest(_Body):
    note: str = Field(default="", max_length=500)
    request_id: str | None = RequestId


class ConfirmRequest(_Body):
    request_id: str | None = RequestId


class BatchAccount(_Body):
    a: str = Field(min_length=1, max_length=64, description="leg A's account")
    b: str = Field(min_length=1, max_length=64, description="leg B's account")


class BatchRequest(_Body):
    """One instruction split into one pair per account (core/batch.py: the allocation rule)."""

    instruction_id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,40}$",
                                description="the caller's id: the batch runs once; a repeat answers the first answer")
    strategy: str = Field(min_length=1, max_length=64, description="a configured strategy: its legs, hedge ratio and execution")
    side: Literal["buy", "sell"] = Field(description="leg A's side (leg B takes the other)")
    quantity: Decimal = Field(gt=0, max_digits=20, decimal_places=6)
    unit: str = Field(default="lots", max_length=16, description="lots, or leg A's price unit (t, kg, troy_oz...)")
    accounts: list[BatchAccount] = Field(min_length=1, max_length=50)
    allocation: Literal["capital_share", "equal", "weights"] = "capital_share"
    weights: dict[str, float] | None = None
    webhook: str | None = Field(default=None, max_length=40, description="an api.webhooks name: progress posted there")


class HedgePeriod(_Body):
    start: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    end: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")


class HedgeRequest(_Body):
    """An ERP's hedging need: a commodity (an instrument a configured pair trades as its leg A),
    a quantity in physical units, a direction and the account; executed as a batch of one."""

    hedge_id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,40}$", description="the ERP's id: the hedge runs once")
    commodity: str = Field(min_length=1, max_length=64, description="leg A's instrument, e.g. SHFE.cu")
    quantity: Decimal = Field(gt=0, max_digits=20, decimal_places=6)
    unit: str = Field(default="t", max_length=16)
    direction: Literal["buy", "sell"]
    account: str = Field(min_length=1, max_length=64, description="leg A's account")
    account_b: str | None = Field(default=None, max_length=64, description="leg B's account (default: the pair's)")
    strategy: str | None = Field(default=None, max_length=64, description="which configured pair, if several trade the commodity")
    period: HedgePeriod | None = None
    roll: Literal["auto", "alert", "none"] | None = Field(
        default=None, description="the position's calendar roll before each contract's deadline: auto (rolled by the "
                                  "risk guard's roll watch, reported to the webhook), alert (roll_due alerts only), "
                                  "none (default)")
    webhook: str | None = Field(default=None, max_length=40)


class ErrorBody(BaseModel):
    error: str = Field(description="why, in words")
    field: str | None = Field(description="the field (or header) the refusal concerns")


class StateResult(BaseModel):
    ok: bool
    scope: str
    key: str | None
    state: str
    operator: str
    event_id: str | None = None
    acks: dict[str, str] = {}
    confirmed_by: str | None = None  # the second operator, for a change that needed one
    replayed: bool = False


class LimitResult(BaseModel):
    ok: bool
    section: str
    key: str | None
    field: str | None
    value: Any
    operator: str
    acks: dict[str, Any] = {}
    confirmed_by: str | None = None
    replayed: bool = False


class PendingResult(BaseModel):
    """The change needs a second operator: ``POST /v1/confirmations/{confirmation_id}`` by
    another operator with the confirm right, before ``expires_ns``."""

    pending: Literal[True] = True
    confirmation_id: str
    action: str
    why: str
    proposer: str
    expires_ns: int
    replayed: bool = False


class AckResult(BaseModel):
    ok: bool
    alert_id: str
    operator: str
    event_id: str
    replayed: bool = False


class Whoami(BaseModel):
    operator: str
    role: str
    may: list[str]
