"""Placement options and the 'why is it pending' explanation, without Ray."""
from __future__ import annotations

import pytest

from xmc_actors.model.config import GatewayConfig
from xmc_actors.runtime.placement import (
    ActorsNotReady,
    NodeView,
    Placement,
    choose_mode,
    coordinator_placement,
    explain_pending,
    gateway_placement,
    parse_node_label,
    strategy_placement,
)


def node(nid: str, labels: dict | None = None, resources: dict | None = None, alive: bool = True) -> NodeView:
    return NodeView(node_id=nid * 8, alive=alive, labels=labels or {}, resources={"CPU": 1.0, **(resources or {})})


def test_gateway_in_label_mode_selects_nodes_labelled_with_its_venue():
    p = gateway_placement(GatewayConfig(venue="SHFE"), mode="label")

    assert p.options == {"num_cpus": 0.0, "label_selector": {"venue": "SHFE"}}
    assert p.describe() == "label selector venue=SHFE"


def test_gateway_node_label_overrides_default_venue_label():
    gw = GatewayConfig(venue="LME", node_label="venue=LME,region=uk")

    p = gateway_placement(gw, mode="label", num_cpus=0.5)

    assert p.options["label_selector"] == {"venue": "LME", "region": "uk"}
    assert p.options["num_cpus"] == 0.5


def test_gateway_in_resource_mode_takes_a_sliver_of_the_venue_resource():
    p = gateway_placement(GatewayConfig(venue="SHFE"), mode="resource")

    assert p.options["resources"] == {"venue:SHFE": 0.001}
    assert "label_selector" not in p.options


def test_auto_mode_prefers_labels_then_resources_then_no_pinning():
    gw = GatewayConfig(venue="SHFE")
    labelled = [node("a", {"venue": "LME"})]
    resourced = [node("a", resources={"venue:LME": 1})]
    bare = [node("a")]

    assert gateway_placement(gw, mode="auto", nodes=labelled).mode == "label"
    assert gateway_placement(gw, mode="auto", nodes=resourced).mode == "resource"
    assert gateway_placement(gw, mode="auto", nodes=bare).mode == "none"


def test_auto_mode_ignores_labels_on_dead_nodes():
    assert choose_mode({"venue": "SHFE"}, [node("a", {"venue": "SHFE"}, alive=False)]) == "none"


@pytest.mark.parametrize("bad, fragment", [
    ("venue", "not key=value"),
    ("venue=SH FE", "label value"),
    ("=SHFE", "label key"),
    ("venue=SHFE,venue=LME", "given twice"),
    ("", "empty label"),
])
def test_bad_node_label_names_the_field_and_the_reason(bad, fragment):
    with pytest.raises(ValueError) as err:
        gateway_placement(GatewayConfig(venue="SHFE", node_label=bad), mode="label")

    assert "gateways[gateway-SHFE].node_label" in str(err.value)
    assert fragment in str(err.value)


def test_strategies_spread_by_default_and_pin_by_label_when_asked():
    assert strategy_placement().options == {"num_cpus": 0.0, "scheduling_strategy": "SPREAD"}
    assert strategy_placement(node_label="zone=cn").options["label_selector"] == {"zone": "cn"}
    assert coordinator_placement().options == {"num_cpus": 0.0}


def test_unmatched_label_selector_is_explained_with_the_labels_that_exist():
    p = gateway_placement(GatewayConfig(venue="XYZ"), mode="label")
    nodes = [node("a", {"venue": "SHFE"}), node("b", {"venue": "LME"}), node("h")]

    why = explain_pending("gateway-XYZ", p, nodes, "PENDING_CREATION")

    assert why.startswith("pending: no alive node matches label selector venue=XYZ")
    assert "venue=SHFE" in why and "venue=LME" in why


def test_selector_whose_only_node_died_says_the_node_is_dead():
    p = gateway_placement(GatewayConfig(venue="SHFE"), mode="label")

    why = explain_pending("gateway-SHFE", p, [node("a", {"venue": "SHFE"}, alive=False), node("b")])

    assert "no alive node matches label selector venue=SHFE" in why
    assert "aaaaaaaa are DEAD" in why


def test_missing_resource_is_explained_by_name():
    p = gateway_placement(GatewayConfig(venue="XYZ"), mode="resource")

    why = explain_pending("gateway-XYZ", p, [node("a", resources={"venue:SHFE": 1})])

    assert why == "pending: no alive node has resource venue:XYZ"


def test_label_selector_value_expressions_match_like_ray():
    p = Placement({}, "label", label_selector={"venue": "in(SHFE,INE)"})
    q = Placement({}, "label", label_selector={"venue": "!SHFE"})
    nodes = [node("a", {"venue": "INE"})]

    assert "match label selector" in explain_pending("x", p, nodes)  # matches: not a 'no node' reason
    assert "no alive node matches" in explain_pending("x", q, [node("a", {"venue": "SHFE"})])


def test_dead_and_blocked_actors_get_their_own_reason():
    assert explain_pending("x", None, [], "DEAD", "constructor raised ValueError") == (
        "died while starting: constructor raised ValueError")
    assert "ready() did not answer" in explain_pending("x", None, [], "ALIVE")


def test_not_ready_error_lists_every_actor_and_its_reason():
    err = ActorsNotReady({"gateway-XYZ": "pending: no node", "strategy-a": "died"}, {}, 3.0)

    text = str(err)
    assert "2 actor(s) not ready after 3s" in text
    assert "- gateway-XYZ: pending: no node" in text and "- strategy-a: died" in text
