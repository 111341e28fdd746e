"""Every actor of a deployment has a readable ``repr``: Ray shows it in the dashboard's Repr
column (Actors tab), beside the actor's log lines and in its tasks' names.

The actor classes are used here as plain Python (no Ray): their ``__repr__`` must be cheap and
safe, reading only the actor's own attributes.
"""
from __future__ import annotations

from types import SimpleNamespace

from testkit import ROOT
from xmc_actors.actors.coordinator import PairCoordinator
from xmc_actors.actors.gateway import VenueGateway
from xmc_actors.actors.metrics import MetricsHub, MetricsHubCore
from xmc_actors.actors.risk_guard import RiskGuard
from xmc_actors.actors.strategy import StrategyHostActor
from xmc_actors.ledger.actor import LedgerShard
from xmc_actors.model.names import MAX_REPR, actor_repr
from xmc_actors.model.risk import TradingState
from xmc_actors.runtime.config import load_config
from xmc_actors.runtime.session import DeploymentRegistry

DEMO = load_config(ROOT / "configs" / "demo.yaml")


def bare(actor_class):  # noqa: ANN001, ANN201
    """An instance of the user class behind a Ray actor class, its constructor not run."""
    cls = getattr(actor_class, "__ray_actor_class__", actor_class)
    return cls.__new__(cls)


def test_the_shape_is_kind_name_and_details_within_the_limit():
    assert actor_repr("Kind", "name") == "Kind(name)"
    assert actor_repr("Kind", "name", "a", "", "b") == "Kind(name: a, b)"
    long = actor_repr("Kind", "name", "x" * 500)
    assert len(long) == MAX_REPR and long.endswith("...)")


def test_a_gateway_group_names_its_process_and_each_venue_session():
    g = bare(VenueGateway)
    g.deployment = DEMO
    g.sessions = {"gateway-SHFE": SimpleNamespace(venue="SHFE", core=SimpleNamespace(up=True)),
                  "gateway-LME": SimpleNamespace(venue="LME", core=SimpleNamespace(up=False))}
    g.reconstructed = False
    assert repr(g) == "VenueGateway(gateways-copper: SHFE sim UP, LME fix DOWN)"
    g.reconstructed = True
    assert repr(g) == "VenueGateway(gateways-copper: SHFE sim UP, LME fix DOWN, restarted)"


def test_the_coordinator_names_its_instruments_venues_and_pairs():
    c = PairCoordinator.__ray_actor_class__(list(DEMO.instruments), name="coordinator")
    assert repr(c) == f"PairCoordinator(coordinator: {len(DEMO.instruments)} instruments)"
    c.gateways = {"SHFE": object(), "LME": object()}
    c.closing = True
    assert repr(c) == f"PairCoordinator(coordinator: {len(DEMO.instruments)} instruments, venues LME SHFE, closing)"


def test_the_risk_guard_names_its_accounts_and_what_is_not_active():
    r = RiskGuard.__ray_actor_class__(DEMO, refresh=False)
    assert repr(r) == "RiskGuard(risk-guard: all ACTIVE, accounts cn-main us-main, 8 venues)"
    r.core.states["strategy:copper-shfe-lme"] = TradingState.HALTED
    r.rebuilding = True
    # what matters first; the rest cut at the limit
    assert repr(r).startswith("RiskGuard(risk-guard: rebuilding, not ACTIVE: strategy:copper-shfe-lme HALTED, accounts")
    assert len(repr(r)) <= MAX_REPR


def test_a_strategy_host_names_its_strategies_and_a_halted_one_with_its_state():
    h = bare(StrategyHostActor)
    h.name = "strategy-host-0"
    h.restarted = False
    h.core = SimpleNamespace(strategies={"gold-sge-comex": SimpleNamespace(state=SimpleNamespace(value="ACTIVE")),
                                         "copper-shfe-lme": SimpleNamespace(state=SimpleNamespace(value="HALTED"))})
    assert repr(h) == "StrategyHost(strategy-host-0: gold-sge-comex, copper-shfe-lme HALTED)"


def test_a_ledger_shard_names_its_file(tmp_path):
    shard = LedgerShard(str(tmp_path / "shard-0.duckdb"), 0)
    try:
        text = repr(shard)
        assert text.startswith("LedgerShard(ledger-0: ") and text.endswith("/shard-0.duckdb)")
        assert str(tmp_path / "shard-0.duckdb").endswith(text[len("LedgerShard(ledger-0: "):-1].lstrip("."))
    finally:
        shard.store.close()


def test_the_metrics_hub_and_the_registry():
    hub = bare(MetricsHub._factory())
    hub.core = MetricsHubCore()
    hub.core.push("gateway:1", {"series": []})
    assert repr(hub) == "MetricsHub(metrics-hub: 1 sources)"
    reg = bare(DeploymentRegistry)
    reg.info, reg.state = {"name": "demo", "namespace": "xmc-demo"}, "RUNNING"
    assert repr(reg) == "DeploymentRegistry(deployment: demo in xmc-demo, RUNNING)"


def test_a_repr_of_an_actor_whose_constructor_failed_half_way_does_not_raise():
    for cls in (VenueGateway, PairCoordinator, RiskGuard, StrategyHostActor, LedgerShard, DeploymentRegistry):
        assert repr(bare(cls)).endswith(")")
