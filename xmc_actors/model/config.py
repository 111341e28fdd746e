"""The deployment configuration: one YAML file describes a whole deployment.

Load it with :func:`xmc_actors.runtime.config.load_config`, which also resolves ``include``
files, expands ``${ENV}`` references, and checks cross-references (unknown instrument,
account, venue, strategy class, parameter) with the path of each problem.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .api import ApiConfig
from .coordinator import CoordinatorConfig
from .lab import LabConfig
from .market import Account, FxPair, Instrument, Venue
from .pairs import ExecutionMode, LegSpec, ReplenishBudget, RollbackPolicy
from .risk import RiskConfig
from .stages import AcceptanceConfig, CanaryConfig, DemoteConfig, Stage, StageGates, StressConfig
from .units import Count, Factor, NonNegCount

FROZEN = ConfigDict(frozen=True, extra="forbid")
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")]


class FeedConfig(BaseModel):
    model_config = FROZEN
    kind: str = "none"
    params: dict[str, Any] = Field(default_factory=dict)


def route_key(venue: str, account: str = "") -> str:
    """Where an order goes: ``VENUE/ACCOUNT`` for a gateway that lists its accounts, ``VENUE``
    for a venue's default gateway. ``PairBook.route_of`` resolves an order's venue and account."""
    return f"{venue}/{account}" if account else venue


def route_venue(key: str) -> str:
    """The venue of a routing key (:func:`route_key`)."""
    return key.split("/", 1)[0]


class GatewayConfig(BaseModel):
    """A venue gateway actor: which venue, which adapter, which market-data feed."""

    model_config = FROZEN
    venue: str
    name: Name | None = None
    adapter: str = "sim"
    params: dict[str, Any] = Field(default_factory=dict)
    feed: FeedConfig = FeedConfig()
    node_label: str | None = None  # defaults to venue=<venue>; see docs/operations.md
    # gateways of one group share one process (actor ``gateways-<group>``): both legs of a pair
    # on two of its venues leave in one call, placed back to back (docs/architecture.md)
    group: Name | None = None
    # the accounts whose orders this gateway carries (a second broker or account on a venue has
    # a gateway of its own); empty: every account on the venue that no other gateway lists
    accounts: tuple[str, ...] = ()

    @property
    def route_keys(self) -> tuple[str, ...]:
        """The coordinator's routing keys for this gateway (:func:`route_key`)."""
        return tuple(route_key(self.venue, a) for a in self.accounts) if self.accounts else (self.venue,)

    @property
    def actor_name(self) -> str:
        return self.name or f"gateway-{self.venue}"

    @property
    def process_name(self) -> str:
        """The Ray actor that hosts this gateway: its group's, or its own."""
        return f"gateways-{self.group}" if self.group else self.actor_name


class ExecutionConfig(BaseModel):
    model_config = FROZEN
    mode: ExecutionMode = ExecutionMode.PRICE
    replenish: ReplenishBudget = ReplenishBudget()
    rollback: RollbackPolicy = RollbackPolicy()
    max_slippage_bps: Annotated[Decimal, Field(ge=0, le=10_000, allow_inf_nan=False)] = Decimal("30")
    deadline_ms: Count = 10_000
    #: a decision's first orders must leave within this long of the quotes it was made on, or
    #: the coordinator refuses it (``STALE_DECISION``) rather than send those prices: a decision
    #: held up by a restart (a call in flight when the coordinator died, a host's re-send) is
    #: made again on fresh quotes if it still holds. 0: no such limit
    start_within_ms: NonNegCount = 2_000

    def start_by_ns(self, decided_ns: int) -> int | None:
        """The start-by of an intent decided at ``decided_ns`` (None: no limit)."""
        return decided_ns + self.start_within_ms * 1_000_000 if self.start_within_ms else None


class RollPolicy(BaseModel):
    """How the risk guard watches a strategy's position in dated contracts for its calendar roll
    (core/roll_watch.py, docs/contracts.md "Watching for the roll")."""

    model_config = FROZEN
    mode: Literal["off", "alert", "auto"] = "alert"
    window_business_days: Annotated[int, Field(ge=1, le=30)] = 5
    safety_business_days: Annotated[int, Field(ge=0, le=10)] = 1
    after_open_minutes: Annotated[int, Field(ge=0, le=600)] = 15
    limit_ticks: Annotated[int, Field(ge=0, le=100)] = 2
    max_quote_age_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 30.0


class StrategyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    name: Name
    class_: str = Field(alias="class")
    legs: tuple[LegSpec, LegSpec]
    hedge_ratio: Factor | Literal["auto"] = "auto"
    params: dict[str, Any] = Field(default_factory=dict)
    execution: ExecutionConfig = ExecutionConfig()
    enabled: bool = True
    # rollout stage (shadow | canary | live), its canary limits, the gates into each stage and
    # the automatic demotion (model/stages.py, docs/configuration.md "Stages")
    stage: Stage = "live"
    canary: CanaryConfig = CanaryConfig()
    gates: StageGates = StageGates()
    demote: DemoteConfig = DemoteConfig()
    roll: RollPolicy = RollPolicy()  # its position's calendar roll: alert, roll automatically, or off


class LedgerConfig(BaseModel):
    model_config = FROZEN
    path: str = "var/ledger"
    shards: Annotated[int, Field(gt=0, le=1024)] = 1
    shard_by: Literal["strategy", "venue", "none"] = "strategy"
    # writers (the ledger client in each actor) send what they buffered after flush_ms: the
    # most an actor killed mid-run can take with it
    flush_ms: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 5.0
    # a shard commits what it queued commit_ms after the oldest batch arrived (group commit):
    # the most an acknowledgement waits; nothing is lost while it waits (the writer keeps the
    # batch until then). Each commit costs a shard about 4.5 ms of CPU whatever its size, so this
    # bounds the ledger's share of the machine (docs/benchmarks.md "Where a deployment's CPU goes")
    commit_ms: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 25.0
    batch_size: Annotated[int, Field(gt=0, le=10_000_000)] = 5_000


class RayConfig(BaseModel):
    model_config = FROZEN
    address: str | None = None  # None: embedded single-machine Ray
    namespace: Name = "xmc"
    num_cpus: Annotated[int, Field(gt=0, le=1_000_000)] | None = None
    dashboard: bool = False
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0  # 0: no /metrics endpoint
    ready_timeout_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 60.0
    detached: bool = False
    strategy_cpus: Annotated[float, Field(ge=0, le=1024, allow_inf_nan=False)] = 0.0
    gateway_cpus: Annotated[float, Field(ge=0, le=1024, allow_inf_nan=False)] = 0.0


class DeploymentConfig(BaseModel):
    model_config = FROZEN
    name: Name = "xmc"
    description: str = ""
    base_currency: str = "USD"
    venues: tuple[Venue, ...] = ()
    instruments: tuple[Instrument, ...] = ()
    fx: tuple[FxPair, ...] = ()
    accounts: tuple[Account, ...] = ()
    gateways: tuple[GatewayConfig, ...] = ()
    strategies: tuple[StrategyConfig, ...] = ()
    risk: RiskConfig = RiskConfig()
    ledger: LedgerConfig = LedgerConfig()
    ray: RayConfig = RayConfig()
    coordinator: CoordinatorConfig = CoordinatorConfig()  # timers, retries, offsets (docs/configuration.md)
    lab: LabConfig = LabConfig()  # xmc backtest only: venue latencies, queue model (docs/lab.md)
    acceptance: AcceptanceConfig = AcceptanceConfig()  # xmc audit acceptance: targets (model/stages.py)
    stress: StressConfig = StressConfig()  # xmc stress: duration, extreme markets, thresholds
    api: ApiConfig = ApiConfig()  # the operator API and console (model/api.py, docs/operations.md)
    run: dict[str, Any] = Field(default_factory=dict)

    # -- look-ups --------------------------------------------------------------------------
    def instrument(self, inst_id: str) -> Instrument:
        for i in self.instruments:
            if i.id == inst_id:
                return i
        raise KeyError(f"unknown instrument {inst_id!r}")

    def quote_sources(self) -> dict[str, GatewayConfig]:
        """Venue -> the gateway whose quotes the strategies and the risk guard receive: the first
        gateway on the venue in the file (a venue has one market, however many sessions reach it)."""
        out: dict[str, GatewayConfig] = {}
        for g in self.gateways:
            out.setdefault(g.venue, g)
        return out

    def gateway_processes(self) -> dict[str, list[GatewayConfig]]:
        """Gateway actors to start: process name -> the gateways it hosts, in configuration order."""
        out: dict[str, list[GatewayConfig]] = {}
        for g in self.gateways:
            out.setdefault(g.process_name, []).append(g)
        return out

    def venue(self, code: str) -> Venue:
        for v in self.venues:
            if v.code == code:
                return v
        raise KeyError(f"unknown venue {code!r}")

    def account(self, acc_id: str) -> Account:
        for a in self.accounts:
            if a.id == acc_id:
                return a
        raise KeyError(f"unknown account {acc_id!r}")

    def fx_pair(self, base: str, quote: str) -> FxPair | None:
        for p in self.fx:
            if (p.base, p.quote) in ((base, quote), (quote, base)):
                return p
        return None
