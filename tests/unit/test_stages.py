"""Rollout stages in the strategy host core: shadow records and sends nothing, canary sends a
fraction within caps, live sends as decided; stage changes and gate decisions are events."""
from __future__ import annotations

from decimal import Decimal

import pytest

from strategy_kit import MS, T0, A, B, ctx, done, pair_quotes, written
from testkit import quote
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.core.stages import (
    evaluate_gate, next_stage, previous_stage, price_against_book, slippage_bps,
)
from xmc_actors.model import Side
from xmc_actors.model.events import EventKind
from xmc_actors.model.quotes import Level
from xmc_actors.model.stages import CanaryConfig, DemoteConfig, GateConfig
from xmc_actors.strategies import BandStrategy
from xmc_actors.strategies.host import StrategyHostCore
from xmc_actors.strategies.stages import StageSettings

BASE = dict(signal="ratio", price="mid", center=1.0, entry=0.01, exit=0.003, clip=1, max_position=3, cooldown_ms=0)


def host(stage="live", *, canary=None, demote=None, **params):
    s = BandStrategy(ctx(), {**BASE, **params})
    settings = StageSettings(stage=stage, canary=canary or CanaryConfig(), demote=demote or DemoteConfig())
    return StrategyHostCore([s], EventMaker(SimClock(T0), "host"), {"cu": settings}), s


def kinds(events, kind):
    return [e for e in events if e.kind.value == kind]


# ------------------------------------------------------------------ live
def test_a_strategy_without_a_stage_is_live_and_its_intent_goes_as_decided():
    core = StrategyHostCore([BandStrategy(ctx(), BASE)], EventMaker(SimClock(T0), "host"))
    intents, events = written(core, "on_quotes", pair_quotes(1.02), T0)
    [it] = intents
    assert (it.legs[0].qty, it.legs[1].qty) == (1, 5)
    st = core.status()["cu"]
    assert st["stage"] == "live" and not kinds(events, "SHADOW")
    # the stage's keys sit beside the strategy's own status, never over them
    assert st["counters"]["intents"] == 1 and st["stage_counters"]["shadow_intents"] == 0


# ------------------------------------------------------------------ shadow
def test_shadow_sends_nothing_records_the_intent_priced_against_the_book_and_holds_a_virtual_position():
    core, s = host("shadow")
    intents, events = written(core, "on_quotes", pair_quotes(1.02), T0)
    assert intents == []
    [sh] = kinds(events, "SHADOW")
    assert sh.decision_id == "cu-00000001" and sh.strategy == "cu"
    legs = {lg["leg"]: lg for lg in sh.payload["legs"]}
    assert legs["A"]["side"] == "SELL" and legs["A"]["price"] == "10200.0" and legs["A"]["fillable"] == 1
    assert legs["B"]["qty"] == 5 and legs["B"]["slippage_bps"] == 0.0
    assert sh.payload["outcome"] == "FILLABLE" and sh.payload["intent"]["decision_id"] == "cu-00000001"
    # the strategy goes on as it would live: it holds the shadow position and decides to close later
    assert (s.position, s.position_b) == (-1, 5) and s.pending_decision is None
    assert core.status()["cu"]["real_position"] == [0, 0]
    intents, events = written(core, "on_quotes", pair_quotes(1.0, t=T0 + MS), T0 + MS)
    assert intents == [] and kinds(events, "SHADOW")[0].payload["legs"][0]["side"] == "BUY"
    assert s.position == 0


def test_shadow_says_when_the_book_could_not_fill_every_lot_and_prices_the_levels_it_walks():
    core, s = host("shadow", clip=3)
    qa = quote(A, 10200, 10200, bid_size=1, ask_size=1, ts_ns=T0,
               bids=(Level(price=Decimal(10200), size=1), Level(price=Decimal(10190), size=1)))
    qb = quote(B, 70000, 70000, ts_ns=T0, bid_size=100, ask_size=100)
    _, events = written(core, "on_quotes", [qa, qb], T0)
    [sh] = kinds(events, "SHADOW")
    la = sh.payload["legs"][0]
    assert la["qty"] == 3 and la["fillable"] == 2 and la["short"] == 1 and la["price"] == "10195"
    assert la["slippage_bps"] == pytest.approx(5 / 10200 * 1e4)  # sold 5 below the trigger on average
    assert sh.payload["outcome"] == "SHORT" and "A short 1" in sh.reason


def test_promotion_out_of_shadow_gives_the_strategy_back_what_it_really_holds():
    core, s = host("shadow")
    core.on_quotes(pair_quotes(1.02), T0)
    assert s.position == -1
    receipt, [ev] = written(core, "set_stage", "cu", "canary", T0 + MS, operator="alice", reason="gate passed",
                            action="promote")
    assert receipt is ev  # what it wrote is what it returns (an operator's answer cites its id)
    assert ev.kind is EventKind.STAGE and ev.payload["from"] == "shadow" and ev.payload["to"] == "canary"
    assert ev.payload["operator"] == "alice" and ev.payload["virtual_position"] == [-1, 5]
    assert (s.position, s.position_b) == (0, 0) and core.stage("cu") == "canary"


def test_a_real_pair_that_ends_after_a_demotion_to_shadow_counts_in_the_real_position():
    core, s = host("live")
    [it] = core.on_quotes(pair_quotes(1.02), T0)
    core.set_stage("cu", "shadow", T0 + 1, operator="bob", action="demote")
    core.on_pair_done(done(it), T0 + 2)
    assert core.status()["cu"]["real_position"] == [-1, 5]
    core.on_quotes(pair_quotes(1.0, t=T0 + 3), T0 + 3)  # shadow closes virtually
    assert s.position == 0
    core.set_stage("cu", "live", T0 + 4, operator="bob", action="promote")
    assert (s.position, s.position_b) == (-1, 5)


# ------------------------------------------------------------------ canary
def test_canary_sends_a_fraction_of_the_size_with_leg_b_resized_and_records_why():
    core, s = host("canary", clip=4, max_position=8, canary=CanaryConfig(size_fraction=0.25, max_open_lots=3))
    [it], events = written(core, "on_quotes", pair_quotes(1.02), T0)
    assert (it.legs[0].qty, it.legs[1].qty) == (1, 5) and it.hedge_ratio == Decimal(5)
    [st] = kinds(events, "STAGE")
    assert st.payload["action"] == "resize" and st.payload["qty_a"] == [4, 1] and st.payload["qty_b"] == [20, 5]
    s_pending = s._pending.intent
    assert s_pending.legs[0].qty == 1
    core.on_pair_done(done(it), T0 + 1)
    assert s.position == -1


def test_canary_caps_open_lots_and_pairs_per_day_but_always_lets_a_reduction_through():
    core, s = host("canary", clip=1, max_position=5,
                   canary=CanaryConfig(size_fraction=1.0, max_open_lots=2, max_pairs_per_day=5))
    for n in (1, 2):
        [it] = core.on_quotes(pair_quotes(1.02, t=T0 + n * MS), T0 + n * MS)
        core.on_pair_done(done(it), T0 + n * MS + 1)
    assert s.position == -2
    intents, events = written(core, "on_quotes", pair_quotes(1.03, t=T0 + 10 * MS), T0 + 10 * MS)
    assert intents == []
    [st] = kinds(events, "STAGE")
    assert st.payload["outcome"] == "REFUSED" and "max_open_lots is 2" in st.reason
    assert s.pending_decision is None and s.blocked[0] == "TRADING_STATE"  # paused, not re-deciding every quote
    # a close reduces: it goes whatever the caps (after the pause a trading-state refusal sets)
    later = T0 + 10 * MS + 6_000 * MS
    [close] = core.on_quotes(pair_quotes(1.0, t=later), later)
    assert close.legs[0].side is Side.BUY and close.legs[0].qty == 2


def test_canary_pairs_per_day_cap_refuses_the_next_opening_pair_and_resets_the_next_day():
    core, s = host("canary", canary=CanaryConfig(size_fraction=1.0, max_open_lots=5, max_pairs_per_day=1))
    [it] = core.on_quotes(pair_quotes(1.02), T0)
    core.on_pair_done(done(it), T0 + 1)
    intents, events = written(core, "on_quotes", pair_quotes(1.03, t=T0 + MS), T0 + MS)
    assert intents == [] and "max_pairs_per_day 1" in kinds(events, "STAGE")[0].reason
    day = T0 + 86_400 * 1_000 * MS
    [again] = core.on_quotes(pair_quotes(1.03, t=day), day)
    assert again.legs[0].side is Side.SELL


# ------------------------------------------------------------------ automatic demotion
def test_an_escalated_pair_demotes_a_live_strategy_to_shadow_when_configured():
    core, s = host("live", demote=DemoteConfig(on_red_alert=True))
    [it] = core.on_quotes(pair_quotes(1.02), T0)
    _, events = written(core, "on_pair_done", done(it, "ESCALATED", fill_a=1, fill_b=0), T0 + 1)
    [st] = kinds(events, "STAGE")
    assert st.payload["action"] == "auto-demote" and st.payload["to"] == "shadow" and "ESCALATED" in st.reason
    assert core.stage("cu") == "shadow"


def test_without_the_configured_action_an_escalation_leaves_the_stage_alone():
    core, s = host("live")
    [it] = core.on_quotes(pair_quotes(1.02), T0)
    _, events = written(core, "on_pair_done", done(it, "ESCALATED", fill_a=1, fill_b=0), T0 + 1)
    assert not kinds(events, "STAGE") and core.stage("cu") == "live"


def test_a_stage_change_to_no_stage_or_for_no_strategy_is_refused_with_the_name():
    core, _ = host()
    with pytest.raises(ValueError, match="stage: 'prod' is not a stage"):
        core.set_stage("cu", "prod", T0, operator="x")
    with pytest.raises(KeyError, match="no strategy named 'zz'"):
        core.set_stage("zz", "live", T0, operator="x")


# ------------------------------------------------------------------ gates (pure)
def test_a_gate_passes_only_when_every_bound_holds_and_names_each_figure():
    gate = GateConfig(min_pairs=10, min_success_rate=0.9, max_slippage_p95_bps=5, max_escalations=0)
    good = {"pairs": 12, "success_rate": 0.95, "slippage_p95_bps": 3.0, "escalations": 0}
    d = evaluate_gate(gate, good)
    assert d.passed and len(d.checks) == 4 and "success rate 0.95 meets >= 0.9" in d.reason()
    bad = evaluate_gate(gate, {**good, "pairs": 4, "slippage_p95_bps": 7.5})
    assert not bad.passed
    assert {c.bound for c in bad.failed} == {"min_pairs", "max_slippage_p95_bps"}
    assert "pairs 4 misses >= 10" in bad.reason() and "slippage p95 (bps) 7.5 misses <= 5" in bad.reason()


def test_a_figure_nobody_measured_fails_its_bound_and_no_gate_passes_on_the_operators_word():
    d = evaluate_gate(GateConfig(min_success_rate=0.9, max_escalations=None), {"pairs": 30, "success_rate": None})
    assert not d.passed and "success rate not measured" in d.reason()
    free = evaluate_gate(None, {"pairs": 0})
    assert free.passed and "no gate configured" in free.reason()
    # asked whether a strategy in the stage breached it: too few pairs or nothing measured is no breach
    assert evaluate_gate(GateConfig(min_pairs=5, max_reject_ratio=0.1), {"pairs": 0}, breach=True).passed
    assert not evaluate_gate(GateConfig(max_reject_ratio=0.1), {"reject_ratio": 0.2}, breach=True).passed


def test_stage_order_and_book_pricing_helpers():
    assert next_stage("shadow") == "canary" and next_stage("live") is None
    assert previous_stage("live") == "canary" and previous_stage("shadow") is None
    q = quote(A, 100, 101, bid_size=2, ask_size=3, ts_ns=T0)
    bp = price_against_book(q, Side.BUY, 5)
    assert (bp.filled, bp.short, bp.avg_price) == (3, 2, Decimal(101))
    assert price_against_book(None, Side.SELL, 2).filled == 0
    assert slippage_bps(Side.SELL, Decimal(99), Decimal(100)) == pytest.approx(100.0)


def test_a_canary_fraction_too_small_to_hedge_a_whole_b_lot_sends_the_fewest_lots_that_do():
    from strategy_kit import ctx as mk

    # leg A SHFE (5 t) against leg B LME (25 t): a B lot hedges five A lots, three round to it
    s = BandStrategy(mk(a=B, b=A), {**BASE, "clip": 10, "max_position": 20})
    core = StrategyHostCore([s], EventMaker(SimClock(T0), "host"),
                            {"cu": StageSettings(stage="canary", canary=CanaryConfig(size_fraction=0.1, max_open_lots=20))})
    qs = [quote(B, 70000, 70000, ts_ns=T0), quote(A, 10200, 10200, ts_ns=T0)]
    [it] = core.on_quotes(qs, T0)
    assert (it.legs[0].qty, it.legs[1].qty) == (3, 1)  # 1 and 2 lots hedge 0.2 and 0.4 of a B lot: none
    core2 = StrategyHostCore([BandStrategy(mk(a=B, b=A), {**BASE, "clip": 10, "max_position": 20})],
                             EventMaker(SimClock(T0), "host"),
                             {"cu": StageSettings(stage="canary", canary=CanaryConfig(size_fraction=0.1, max_open_lots=2))})
    intents, events = written(core2, "on_quotes", qs, T0)
    assert intents == [] and "cannot be hedged" in kinds(events, "STAGE")[0].reason
