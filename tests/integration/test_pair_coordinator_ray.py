"""PairCoordinator on Ray against two simulated venues (VenueGateway actors), scenario by scenario."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
import ray

import testkit
from testkit import wait_until
from xmc_actors.actors.coordinator import PairCoordinator
from xmc_actors.actors.gateway import GatewayView, VenueGateway, actor_of
from xmc_actors.model import EventKind, ExecutionMode, Offset, ReplenishBudget, RollbackPolicy, Side
from xmc_actors.model.config import DeploymentConfig, FeedConfig, GatewayConfig

pytestmark = pytest.mark.ray
T0 = 1_735_808_400_000_000_000
INSTS = [testkit.instrument("SHFE.cu"), testkit.instrument("LME.CA3M")]
CFG = {"ack_timeout_ms": 300, "cancel_timeout_ms": 300, "call_timeout_ms": 800, "query_backoff_ms": 20,
       "query_window_ms": 1000}


def _deployment() -> DeploymentConfig:
    params = {"seed": 1, "enforce_sessions": False, "enforce_price_limits": False, "ack_timeout_ms": 200,
              "network_latency": {"kind": "const", "mean_ms": 0.0}}
    return DeploymentConfig(
        name="pairtest", venues=(testkit.venue("SHFE"), testkit.venue("LME")), instruments=tuple(INSTS),
        gateways=(GatewayConfig(venue="SHFE", params=params, feed=FeedConfig()),
                  GatewayConfig(venue="LME", params=params, feed=FeedConfig())),
    )


@ray.remote(num_cpus=0)
class StrategyStub:
    def __init__(self) -> None:
        self.done: list = []
        self.halted: list = []

    def on_pair_done(self, summary: dict) -> None:
        self.done.append(summary)

    def halt(self, name: str, reason: str = "") -> None:
        self.halted.append((name, reason))

    def resume(self, name: str, reason: str = "") -> None:
        self.halted.append((name, f"resume: {reason}"))

    def get(self) -> tuple[list, list]:
        return self.done, self.halted


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, namespace="pair-test", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(params=["split", "group"])
def topology(request) -> str:
    """Every scenario runs with one gateway actor per venue, and with both venues' sessions in
    one gateway process (a gateway group: both legs leave in one call)."""
    return request.param


def _setup(name: str, topology: str = "split", **config: object):
    dep = _deployment()
    if topology == "group":
        group = VenueGateway.options(num_cpus=0).remote(dep, ["gateway-SHFE", "gateway-LME"], clock_mode="system")
        gws = {v: GatewayView(group, f"gateway-{v}") for v in ("SHFE", "LME")}
    else:
        gws = {v: VenueGateway.options(num_cpus=0).remote(dep, v, clock_mode="system") for v in ("SHFE", "LME")}
    ray.get([g.ready.remote() for g in gws.values()], timeout=30)
    ray.get(gws["SHFE"].push_market.remote([testkit.quote("SHFE.cu", 72000, 72010, bid_size=20, ask_size=20)]))
    ray.get(gws["LME"].push_market.remote([testkit.quote("LME.CA3M", 9800, 9800.5, bid_size=20, ask_size=20)]))
    coord = PairCoordinator.options(num_cpus=0).remote(INSTS, gws, config={**CFG, **config}, name=name)
    strat = StrategyStub.remote()
    ray.get(coord.register_strategy.remote("s1", strat))
    ray.get(coord.ready.remote(), timeout=30)
    return coord, gws, strat


def _intent(did: str, mode: ExecutionMode = ExecutionMode.SPEED, qty: int = 2, **kw):  # noqa: ANN201
    kw.setdefault("replenish", ReplenishBudget(max_attempts=2, max_chase_ticks=4, max_time_ms=600))
    kw.setdefault("rollback", RollbackPolicy(max_attempts=2, max_time_ms=2000))
    return testkit.pair_intent(did, a=("SHFE.cu", "BUY", qty, "72010"), b=("LME.CA3M", "SELL", qty, "9800"),
                               mode=mode, **kw)


def _wait_done(strat, did: str, timeout: float = 10.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, _ = ray.get(strat.get.remote())
        for s in done:
            if s["decision_id"] == did:
                return s
        time.sleep(0.02)
    raise AssertionError(f"pair {did} not finished in {timeout}s")


def _net(gw, did: str, leg: str, side: Side) -> int:
    """What the venue says the pair holds on one leg (its drop copy of fills)."""
    n = 0
    for d in ray.get(gw.drop_copy.remote()):
        if d.get("kind") == "FILL" and str(d.get("client_order_id", "")).startswith(f"{did}:{leg}:"):
            n += int(d["fill_qty"]) * (1 if d["side"] == side.value else -1)
    return n


def _leg(summary: dict, name: str) -> dict:
    return next(d for d in summary["legs"] if d["leg"] == name)


def test_both_legs_filled_hedges_and_the_trail_holds_every_step(topology):
    coord, gws, strat = _setup("c-both", topology)
    res = ray.get(coord.submit.remote(_intent("both")))
    s = _wait_done(strat, "both")
    assert res["accepted"] and s["state"] == "HEDGED" and s["complete"]
    assert _net(gws["SHFE"], "both", "A", Side.BUY) == 2 and _net(gws["LME"], "both", "B", Side.SELL) == 2
    kinds = [e.kind for e in ray.get(coord.events.remote("both"))]
    assert kinds.count(EventKind.ORDER_SENT) == 2 and EventKind.PAIR_STATE in kinds
    # co-hosted venues get both legs in one call; separate gateways one call each
    together = [ray.get(g.status.remote())["counters"].get("placed_in_one_call", 0) for g in gws.values()]
    assert together == ([1, 1] if topology == "group" else [0, 0])
    again = ray.get(coord.submit.remote(_intent("both")))
    assert again["duplicate"] is True
    # its ack, deadline and stale timers were cancelled when it hedged, not left to fire
    assert ray.get(coord.__ray_call__.remote(lambda self: self._timers.get("both"))) is None


def test_an_accepted_pair_is_answered_once_its_legs_are_and_never_waits_on_a_silent_venue(topology):
    # Arrange: venues that answer at once, and a hold far longer than they take
    coord, _, _ = _setup("c-reply", topology, submit_reply_hold_ms=2_000)
    # Act
    res = ray.get(coord.submit.remote(_intent("answered")))
    # Assert: the answer left after both legs' answers were read and acted on (it is held, not
    # to slow them on their way): the pair stands HEDGED in it
    assert res["accepted"] and res["legs_answered"] and res["state"] == "HEDGED"
    # Arrange: the default hold (5 ms), and LME loses the next order, so its gateway answers
    # only after its 200 ms ack timeout
    coord, gws, strat = _setup("c-reply-silent", topology)
    ray.get(gws["LME"].inject.remote({"kind": "no_ack_next"}))
    # Act
    res = ray.get(coord.submit.remote(_intent("unanswered")))
    # Assert: accepted and answered after the hold, long before the LME answer
    assert res["accepted"] and not res["legs_answered"] and res["state"] == "WORKING"
    assert "ack_B" not in ray.get(coord.get_timings.remote())["unanswered"]
    assert _wait_done(strat, "unanswered")["state"] in ("HEDGED", "ROLLED_BACK")


def test_a_host_asking_for_it_hears_a_pair_that_ends_during_the_hold_in_the_answer_not_a_push(topology):
    # Arrange: venues that fill at once, a hold long enough for both answers
    coord, gws, strat = _setup("c-fold", topology, submit_reply_hold_ms=2_000)
    # Act
    res = ray.get(coord.submit.remote(_intent("fold"), summary_in_reply=True))
    # Assert: the summary rode in the answer, and no push went to the strategy for it
    assert res["accepted"] and res["state"] == "HEDGED"
    assert [w["decision_id"] for w in res["summaries"]] == ["fold"] and res["summaries"][0]["state"] == "HEDGED"
    time.sleep(0.2)
    assert [d["decision_id"] for d in ray.get(strat.get.remote())[0]] == []
    # a host that re-sends (its first call failed) gets the outcome again, with the duplicate
    again = ray.get(coord.submit.remote(_intent("fold"), summary_in_reply=True))
    assert again["duplicate"] is True and again["summaries"][0]["decision_id"] == "fold"
    # a pair still working when the answer leaves is pushed as before
    coord2, gws2, strat2 = _setup("c-fold-late", topology)
    ray.get(gws2["LME"].inject.remote({"kind": "no_ack_next"}))
    late = ray.get(coord2.submit.remote(_intent("late"), summary_in_reply=True))
    assert late["state"] == "WORKING" and "summaries" not in late
    assert _wait_done(strat2, "late")["state"] in ("HEDGED", "ROLLED_BACK")
    # without asking, the push goes as it always did
    plain = ray.get(coord.submit.remote(_intent("plain")))
    assert "summaries" not in plain and _wait_done(strat, "plain")["state"] == "HEDGED"


def test_reject_on_leg_b_then_replenished_hedges(topology):
    coord, gws, strat = _setup("c-repl", topology)
    ray.get(gws["LME"].inject.remote({"kind": "reject_next", "reason": "PRICE_OUT_OF_LIMIT"}))
    ray.get(coord.submit.remote(_intent("repl")))
    s = _wait_done(strat, "repl")
    assert s["state"] == "HEDGED" and _leg(s, "B")["replenishes"] == 1
    assert _net(gws["LME"], "repl", "B", Side.SELL) == 2


def test_final_reject_on_leg_b_rolls_back_leg_a(topology):
    coord, gws, strat = _setup("c-roll", topology)
    ray.get(gws["LME"].inject.remote({"kind": "reject_next", "reason": "MARKET_CLOSED"}))
    ray.get(coord.submit.remote(_intent("roll")))
    s = _wait_done(strat, "roll")
    assert s["state"] == "ROLLED_BACK"
    assert ray.get(coord.__ray_call__.remote(lambda self: self._timers.get("roll"))) is None
    assert _net(gws["SHFE"], "roll", "A", Side.BUY) == 0 and _leg(s, "A")["rollback_qty"] == 2


def test_partial_fills_on_both_legs_are_completed(topology):
    coord, gws, strat = _setup("c-part", topology)
    ray.get(gws["SHFE"].inject.remote({"kind": "partial_fill_next", "qty": 1}))
    ray.get(gws["LME"].inject.remote({"kind": "partial_fill_next", "qty": 2}))
    ray.get(coord.submit.remote(_intent("part", qty=4)))
    s = _wait_done(strat, "part")
    net_a, net_b = _net(gws["SHFE"], "part", "A", Side.BUY), _net(gws["LME"], "part", "B", Side.SELL)
    assert s["state"] == "HEDGED" and net_a == net_b == 4


def test_a_fill_racing_the_cancel_is_absorbed_and_the_pair_ends_balanced(topology):
    coord, gws, strat = _setup("c-race", topology)
    # B rests (sell 9801 above the 9800 bid); A fills; B goes stale, the cancel is confirmed and a fill
    # of the whole order is still reported afterwards
    ray.get(gws["LME"].inject.remote({"kind": "late_fill_after_cancel", "delay_ms": 1}))
    it = _intent("race", mode=ExecutionMode.PRICE,
                 replenish=ReplenishBudget(max_attempts=1, max_chase_ticks=0, max_time_ms=300))
    it = it.model_copy(update={"legs": (it.legs[0], it.legs[1].model_copy(update={"limit_price": Decimal("9801")}))})
    ray.get(coord.submit.remote(it))
    s = _wait_done(strat, "race")
    net_a, net_b = _net(gws["SHFE"], "race", "A", Side.BUY), _net(gws["LME"], "race", "B", Side.SELL)
    time.sleep(0.3)
    final = ray.get(coord.pairs.remote("race"))
    assert final["state"] in ("HEDGED", "ROLLED_BACK") and net_a == net_b, (s, final, net_a, net_b)


def test_silent_venue_orders_never_arrive_and_leg_a_is_rolled_back(topology):
    coord, gws, strat = _setup("c-silent", topology)
    ray.get(gws["LME"].inject.remote({"kind": "drop_next", "count": 20}))
    ray.get(coord.submit.remote(_intent("silent")))
    s = _wait_done(strat, "silent", timeout=15)
    assert s["state"] == "ROLLED_BACK"
    assert _net(gws["SHFE"], "silent", "A", Side.BUY) == 0
    kinds = [e.kind for e in ray.get(coord.events.remote("silent"))]
    assert EventKind.RECONCILE in kinds


def test_gateway_killed_mid_pair_escalates_with_the_exact_residual(topology):
    coord, gws, strat = _setup("c-kill", topology)
    it = _intent("kill", mode=ExecutionMode.PRICE, replenish=ReplenishBudget(max_attempts=1, max_time_ms=600))
    it = it.model_copy(update={"legs": (it.legs[0], it.legs[1].model_copy(update={"limit_price": Decimal("9805")}))})
    ray.get(coord.submit.remote(it))
    time.sleep(0.1)  # A filled, B resting
    ray.kill(actor_of(gws["LME"])[0], no_restart=True)  # in a group: both venues' process
    s = _wait_done(strat, "kill", timeout=15)
    assert s["state"] == "ESCALATED"
    residual = s["residual"]["legs"]
    assert residual["A"]["net"] == 2 and residual["B"]["net"] == 0
    assert residual["B"]["unknown_orders"] or residual["B"]["live_orders"]
    _, halted = ray.get(strat.get.remote())
    assert halted and halted[0][0] == "s1"
    kinds = [e.kind for e in ray.get(coord.events.remote("kill"))]
    assert EventKind.ALERT in kinds and EventKind.ESCALATION in kinds


def test_halt_from_the_risk_guard_stops_the_next_pair(topology):
    coord, gws, strat = _setup("c-halt", topology)
    ray.get(coord.set_trading_state.remote("strategy", "s1", "HALTED", "ops"))
    res = ray.get(coord.submit.remote(_intent("halted")))
    assert res["accepted"] is False and "HALTED" in res["reason"]
    assert not [d for d in ray.get(gws["SHFE"].drop_copy.remote()) if str(d.get("client_order_id", "")).startswith("halted")]
    # the strategy itself is halted in its host, and only an operator's ACTIVE resumes it there
    ray.get(coord.set_trading_state.remote("strategy", "s1", "ACTIVE", "auto"))
    ray.get(coord.set_trading_state.remote("strategy", "s1", "ACTIVE", "alice"))
    ray.get(coord.set_trading_state.remote("strategy", "other", "ACTIVE", "alice"))  # not hosted here: nothing
    _, calls = wait_until(lambda: (r := ray.get(strat.get.remote()))[1][1:] and r)
    assert calls == [("s1", "trading state HALTED by ops"), ("s1", "resume: trading state ACTIVE by alice")]


def test_a_decision_sent_before_a_restart_and_re_sent_is_adopted_from_the_venues_not_run_again():
    """Found by the chaos suite: the coordinator sent a pair's orders and died before writing a
    word of it; the strategy re-sent the decision (unknown outcome) to the restarted coordinator,
    which ran it as new (refused for want of a grant: it could as well have doubled it). The
    gateways hold every order they were handed: the pair is rebuilt from them and wound down."""
    coord, gws, strat = _setup("coord-adopt")
    intent = _intent("pre-1", created_ns=T0)  # decided before this coordinator's life began
    # the previous life's orders, filled at the venues; nothing of them in any trail
    for v, (inst, side, px) in {"SHFE": ("SHFE.cu", "BUY", "72010"), "LME": ("LME.CA3M", "SELL", "9800")}.items():
        leg = "A" if v == "SHFE" else "B"
        acc = "cn" if v == "SHFE" else "us"
        req = testkit.order(inst, side, 2, px, decision_id="pre-1", leg=leg, account=acc, owner="coord-adopt",
                            order_type=testkit.OrderType.IOC, tif=testkit.TimeInForce.IOC)
        ray.get(gws[v].place.remote(req), timeout=30)
    ray.get(coord.recover_from_ledger.remote(), timeout=30)  # what a restarted coordinator does first
    # Act: the strategy sends the decision again
    res = ray.get(coord.submit.remote(intent), timeout=30)
    # Assert: adopted, not sent again; the pair ends from the venues' word with both legs' fills
    assert res["accepted"] and res["duplicate"] and res["adopted"] == 2, res
    s = _wait_done(strat, "pre-1")
    assert s["state"] == "HEDGED", s
    assert _net(gws["SHFE"], "pre-1", "A", Side.BUY) == 2 and _net(gws["LME"], "pre-1", "B", Side.SELL) == 2
    evs = ray.get(coord.events.remote("pre-1"))
    sent = [e for e in evs if e.kind is EventKind.ORDER_SENT]
    assert sent and all(e.payload.get("adopted") for e in sent)  # recorded from the gateways, none new
    # a decision made in this life is not looked for at the venues: it runs as usual
    fresh = ray.get(coord.submit.remote(_intent("new-1", created_ns=time.time_ns())), timeout=30)
    assert fresh["accepted"] and not fresh.get("duplicate")
    ray.get(coord.shutdown.remote(), timeout=60)


def test_a_restarted_coordinator_counts_a_rebuilt_close_from_the_venues_position_reading():
    """SHFE holds long and short, today's and yesterday's lots apart. A previous life opened 2
    lots and left a close of 2 resting at the venue; the new life loads the positions with each
    order's fills through its gateway; the close then fills, and only afterwards is its pair
    adopted. Those 2 lots come off the loaded position (before, they were missed, and the
    rollback that follows left the book 2 lots above the venue)."""
    venues = (testkit.venue("SHFE", offsets=True), testkit.venue("LME"))
    dep = _deployment().model_copy(update={"venues": venues})
    gws = {v: VenueGateway.options(num_cpus=0).remote(dep, v, clock_mode="system") for v in ("SHFE", "LME")}
    ray.get([g.ready.remote() for g in gws.values()], timeout=30)
    ray.get(gws["SHFE"].push_market.remote([testkit.quote("SHFE.cu", 72000, 72010, bid_size=20, ask_size=20)]))
    ray.get(gws["LME"].push_market.remote([testkit.quote("LME.CA3M", 9800, 9800.5, bid_size=20, ask_size=20)]))
    name = "coord-reading"
    opened = testkit.order("SHFE.cu", "BUY", 2, "72010", decision_id="old-1", leg="A", account="cn", owner=name,
                           order_type=testkit.OrderType.IOC, tif=testkit.TimeInForce.IOC, offset=Offset.OPEN)
    ray.get(gws["SHFE"].place.remote(opened), timeout=30)
    close = testkit.order("SHFE.cu", "SELL", 2, "72010", decision_id="old-2", leg="A", account="cn", owner=name,
                          offset=Offset.CLOSE_TODAY)  # rests at the ask
    placed = ray.get(gws["SHFE"].place.remote(close), timeout=30)
    assert [r.status.value for r in placed] == ["ACCEPTED"], placed
    reading = ray.get(gws["SHFE"].two_sided_reading.remote())
    assert reading["order_fills"] == {opened.client_order_id: 2, close.client_order_id: 0}
    assert reading["positions"]["cn/SHFE.cu"]["long"]["frozen_today"] == 2 and reading["accounts"] == ["cn"]
    coord = PairCoordinator.options(num_cpus=0).remote(INSTS, gws, config=CFG, name=name, venues=venues)
    strat = StrategyStub.remote()
    ray.get(coord.register_strategy.remote("s1", strat))
    ray.get(coord.ready.remote(), timeout=30)
    ray.get(coord.recover_from_ledger.remote(), timeout=30)
    loaded = wait_until(lambda: [e for e in ray.get(coord.events.remote()) if e.kind is EventKind.RECONCILE
                                 and e.payload.get("action") == "positions_loaded"], what="positions loaded")
    assert loaded[0].payload["positions"] == 1 and loaded[0].payload["orders_based"] == 0
    # the market trades through the resting close; then the strategy sends its decision again
    ray.get(gws["SHFE"].push_market.remote([testkit.quote("SHFE.cu", 72010, 72020, bid_size=20, ask_size=20)]))
    assert ray.get(gws["SHFE"].two_sided_positions.remote()) == {}
    it = testkit.pair_intent("old-2", a=("SHFE.cu", "SELL", 2, "72010"), b=("LME.CA3M", "BUY", 2, "9800.5"),
                             created_ns=T0)
    res = ray.get(coord.submit.remote(it), timeout=30)
    assert res["accepted"] and res["duplicate"] and res["adopted"] == 1, res
    # adopted with leg A filled and nothing sent on leg B: wound down, leg A rolled back (2 opened)
    s = _wait_done(strat, "old-2")
    assert s["state"] == "ROLLED_BACK", s

    def sides(snap: dict) -> dict:
        return {k: (v["long"]["today"], v["long"]["yesterday"], v["short"]["today"], v["short"]["yesterday"])
                for k, v in snap.items()}
    venue_holds = sides(ray.get(gws["SHFE"].two_sided_positions.remote()))
    assert venue_holds == {"cn/SHFE.cu": (2, 0, 0, 0)}
    wait_until(lambda: sides(ray.get(coord.status.remote())["two_sided_positions"]) == venue_holds,
               what="the coordinator's two-sided book as the venue holds it")
    # (the fill's report reached the coordinator before the pair was adopted: recorded, not applied)
    assert not [e for e in ray.get(coord.events.remote()) if e.kind is EventKind.BAD_INPUT
                and e.reason.startswith("positions")]
    ray.get(coord.shutdown.remote(), timeout=60)
