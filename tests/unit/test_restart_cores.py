"""What a restarted actor takes back, decided in the cores (issue 22 item 5: no restart logic in
the shells): the strategy host core restores a strategy from what outlived its host, the risk
guard's rebuilt core takes over from the core it replaces. No Ray."""
from __future__ import annotations

from decimal import Decimal

from strategy_kit import T0, ctx, written
from test_monitor_alerts import core as guard_core
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.model.events import EventKind
from xmc_actors.model.risk import TradingState
from xmc_actors.strategies import BandStrategy
from xmc_actors.strategies.base import decision_id
from xmc_actors.strategies.host import RESTART_SEQ_GAP, StrategyHostCore
from xmc_actors.strategies.stages import StageSettings

BASE = dict(signal="ratio", price="mid", center=1.0, entry=0.01, exit=0.003, clip=1, max_position=3, cooldown_ms=0)


def restarted_host(stage: str = "live") -> tuple[StrategyHostCore, BandStrategy, EventMaker]:
    """A host as its actor shell builds it after a crash: the strategy halted, not resumable."""
    s = BandStrategy(ctx(), BASE)
    maker = EventMaker(SimClock(T0), "host")
    host = StrategyHostCore([s], maker, {"cu": StageSettings(stage=stage)})
    s.restore_needed = "host restarted: position and decision counter not restored yet"
    host.halt("cu", "host restarted", T0)
    return host, s, maker


def booked(maker: EventMaker, did: str, a: str, b: str, a_total: int, b_total: int) -> list:
    return [maker.make(EventKind.RISK_DECISION, decision_id=did, strategy="cu", reason="BOOKED", ts_ns=T0,
                       legs=[{"instrument": a, "total": a_total}, {"instrument": b, "total": b_total}],
                       summary_ts_ns=T0 + 5)]


# -- strategy host -------------------------------------------------------------------------------
def test_decision_counters_take_each_strategys_last_intent_and_keep_shadow_decisions_apart() -> None:
    m = EventMaker(SimClock(T0), "t")
    trail = [m.make(EventKind.INTENT, decision_id=decision_id("cu", 3), strategy="cu"),
             m.make(EventKind.INTENT, decision_id=decision_id("cu", 7), strategy="cu"),
             m.make(EventKind.SHADOW, decision_id=decision_id("cu", 9), strategy="cu"),
             m.make(EventKind.INTENT, decision_id=decision_id("au", 4), strategy="au"),  # not hosted here
             m.make(EventKind.INTENT, decision_id="not-a-decision-id", strategy="cu")]
    seqs, shadow = StrategyHostCore.decision_counters(trail, ["cu", "ag"])
    assert seqs == {"cu": 7, "ag": 0} and shadow == {"cu": 9, "ag": 0}


def test_stopped_scopes_name_every_state_that_is_not_active_and_who_holds_it() -> None:
    out = StrategyHostCore.stopped_scopes({"risk guard": {"strategy:cu": "HALTED", "global:": "ACTIVE"},
                                           "coordinator": {"venue:LME": "REDUCING"}})
    assert out == {"strategy:cu": "risk guard: strategy:cu HALTED", "venue:LME": "coordinator: venue:LME REDUCING"}


def test_a_restored_strategy_takes_its_booked_position_goes_on_after_its_last_decision_and_resumes() -> None:
    host, s, maker = restarted_host()
    did = decision_id("cu", 12)
    # Act
    outcome, events = written(host, "restore", "cu", lots={s.a.id: 2, s.b.id: -10}, decision_seq=12, last_decision=did,
                                   booked=booked(maker, did, s.a.id, s.b.id, 2, -10), stage=None, stopped={},
                                   now_ns=T0 + 1)
    # Assert
    st = host.status()["cu"]
    assert outcome == "resumed" and st["state"] == "ACTIVE"
    # decision ids go on past a gap: one sent before the crash, never recorded, is never reused
    assert (st["position"], st["position_b"], st["decision_seq"]) == (2, -10, 12 + RESTART_SEQ_GAP)
    assert s.restore_needed == ""
    restored = [e for e in events if e.reason.startswith("restored after a restart")]
    assert restored and restored[0].payload["position"] == 2 and did in restored[0].reason
    # the last decision's summary, if it still comes, is a repeat: the position does not move twice
    assert did in s._done


def test_a_strategy_a_halt_still_holds_is_restored_but_stays_halted_with_the_reason() -> None:
    host, s, _ = restarted_host()
    outcome, events = written(host, "restore", "cu", lots={}, decision_seq=0, last_decision=None, booked=(), stage=None,
                                   stopped={"strategy:cu": "risk guard: strategy:cu HALTED", "venue:LME": "x"},
                                   now_ns=T0 + 1)
    st = host.status()["cu"]
    assert outcome == "halted: risk guard: strategy:cu HALTED"
    assert st["state"] == "HALTED" and "halted: risk guard" in st["reason"]
    assert s.restore_needed == ""  # an operator may resume it now
    assert any("stays halted" in e.reason for e in events)


def test_unknown_trading_states_keep_every_strategy_halted() -> None:
    host, _, _ = restarted_host()
    outcome = host.restore("cu", lots={}, decision_seq=0, last_decision=None, booked=(), stage=None,
                              stopped={"*": "coordinator status unknown (RayActorError)"}, now_ns=T0 + 1)
    assert outcome.startswith("halted: coordinator status unknown") and host.status()["cu"]["state"] == "HALTED"


def test_a_stage_changed_at_run_time_is_taken_back_and_a_shadow_keeps_the_real_position_apart() -> None:
    host, s, _ = restarted_host(stage="live")
    outcome, events = written(host, "restore", "cu", lots={s.a.id: 1, s.b.id: -5}, decision_seq=3, last_decision=None,
                                   booked=(), stage="shadow", stopped={}, now_ns=T0 + 1)
    assert host.stage("cu") == "shadow"
    assert host.stages.state("cu").real == (1, -5)
    assert any(e.reason.startswith("stage shadow taken back from the trail") for e in events)
    assert outcome == "resumed"


# -- risk guard -------------------------------------------------------------------------------------
def test_a_rebuilt_guard_core_taking_over_a_live_one_keeps_its_leases_acks_and_owed_bookings() -> None:
    old, _, _ = guard_core()
    old.register_coordinator("c2", Decimal("3"))
    for _ in range(3):
        old.make_grant("c1")
    old.acked["c1"] = 3
    old.booked_pending["c1"] = ["d1", "d2"]
    new, _, _ = guard_core()
    new.booked_pending["c1"] = ["d2", "d3"]
    # Act
    new.take_over_from(old, live=True, coordinators=["c1", "c2", "c3"],
                       held_states=[("venue", "LME", TradingState.HALTED), ("strategy", "s1", TradingState.ACTIVE)])
    # Assert
    assert new.leases is old.leases and new.acked == {"c1": 3}
    assert new.booked_pending["c1"] == ["d2", "d3", "d1"]
    assert new.seq >= 3  # grants never go back
    assert new.leases.weights["c2"] == Decimal("3") and "c3" in new.leases.weights
    assert new.states.get("venue:LME") is TradingState.HALTED


def test_a_restarted_guard_takes_over_an_empty_core_without_its_leases_but_past_its_grant_seq() -> None:
    old, _, _ = guard_core()
    for _ in range(2):
        old.make_grant("c1")
    new, _, _ = guard_core()
    new.states["strategy:s1"] = TradingState.HALTED
    new.take_over_from(old, live=False, coordinators=["c1"],
                       held_states=[("strategy", "s1", TradingState.ACTIVE)])
    assert new.leases is not old.leases and new.seq == 2
    assert "strategy:s1" not in new.states  # resumed while rebuilding: newer than the ledger's HALTED


# -- a roll moves a strategy's legs to the far months ----------------------------------------------
def _rolled_host():
    """A band strategy on SHFE cu2701 against COMEX HGH7, holding +2/-2, in a host whose
    deployment also lists the far months cu2702 and HGK7."""
    import dataclasses
    import datetime as dt

    from testkit import instrument, venue
    from xmc_actors.core.contracts import concrete_instrument, parse_contract
    from xmc_actors.model import LegSpec

    day = dt.date(2026, 12, 6)
    cu, hg, shfe, comex = instrument("SHFE.cu"), instrument("COMEX.HG"), venue("SHFE"), venue("COMEX")
    c = {i: concrete_instrument(p, parse_contract(p, v, i, day))
         for p, v, ids in ((cu, shfe, ("SHFE.cu2701", "SHFE.cu2702")), (hg, comex, ("COMEX.HGH7", "COMEX.HGK7")))
         for i in ids}
    base = ctx()
    cx = dataclasses.replace(base, legs=(LegSpec(instrument="SHFE.cu2701", account="cn"),
                                         LegSpec(instrument="COMEX.HGH7", account="us")),
                             instruments=(c["SHFE.cu2701"], c["COMEX.HGH7"]), venues=(shfe, comex))
    s = BandStrategy(cx, {**BASE, "max_position": 10}, position=2, position_b=-2, decision_seq=5)
    maker = EventMaker(SimClock(T0), "host")
    return StrategyHostCore([s], maker, None, c), maker


def _outcome(state="ROLLED", a=True, b=True, lots=2, clean=True):
    return {"decision_id": "roll-1", "strategy": "cu", "roll_state": state,
            "moves": [{"child": "roll-1.rollA", "near": "SHFE.cu2701", "far": "SHFE.cu2702", "lots": lots, "rolled": a,
                       "clean": not a and clean},
                      {"child": "roll-1.rollB", "near": "COMEX.HGH7", "far": "COMEX.HGK7", "lots": lots, "rolled": b,
                       "clean": not b and clean}]}


def test_a_rolled_position_moves_the_strategys_legs_to_the_far_months_keeping_its_state() -> None:
    host, _ = _rolled_host()
    old = host.strategies["cu"]
    old.counters["pairs_done"] = 4
    moved, events = written(host, "on_roll_done", _outcome(), T0 + 1)
    new = host.strategies["cu"]
    assert moved and new is not old and new.instrument_ids == ("SHFE.cu2702", "COMEX.HGK7")
    assert (new.position, new.position_b, new.decision_seq, new.counters["pairs_done"]) == (2, -2, 5, 4)
    assert [lg.instrument for lg in new.ctx.legs] == ["SHFE.cu2702", "COMEX.HGK7"]
    assert [lg.account for lg in new.ctx.legs] == ["cn", "us"]
    assert host.instruments() == ["COMEX.HGK7", "SHFE.cu2702"]  # quotes of the near months no longer routed
    [ev] = [e for e in events if e.payload.get("action") == "roll_legs"]
    assert "trades SHFE.cu2702/COMEX.HGK7 from now (was SHFE.cu2701/COMEX.HGH7)" in ev.reason


def test_a_canarys_shadow_twin_follows_the_roll_of_the_strategy_it_shadows() -> None:
    import dataclasses

    host, maker = _rolled_host()
    s = host.strategies["cu"]
    twin = BandStrategy(dataclasses.replace(s.ctx, name="cu.twin"), {**BASE, "max_position": 10})
    host2 = StrategyHostCore([s, twin], maker, None, host.catalogue)
    moved = host2.on_roll_done(_outcome(), T0)
    assert moved and host2.strategies["cu.twin"].instrument_ids == ("SHFE.cu2702", "COMEX.HGK7")


def test_a_roll_that_moved_one_leg_only_moves_that_leg_and_halts_the_strategy_naming_the_other() -> None:
    host, _ = _rolled_host()
    moved, events = written(host, "on_roll_done", _outcome("ESCALATED", b=False), T0 + 1)
    s = host.strategies["cu"]
    assert moved and s.instrument_ids == ("SHFE.cu2702", "COMEX.HGH7")
    assert s.state.value == "HALTED" and "COMEX.HGH7 not rolled while SHFE.cu2701 did: mismatched months" in s.state_reason
    # a roll of contracts it does not trade leaves it alone; one for nobody here is bad input
    host2, _ = _rolled_host()
    other = {**_outcome(), "moves": [{"near": "SHFE.ag2701", "far": "SHFE.ag2702", "rolled": True}]}
    assert written(host2, "on_roll_done", other, T0) == (False, [])
    moved, [bad] = written(host2, "on_roll_done", {**_outcome(), "strategy": "nobody"}, T0)
    assert not moved and bad.kind is EventKind.BAD_INPUT and host2.bad_input == 1


def test_a_roll_of_fewer_lots_than_the_strategy_holds_does_not_move_its_legs_and_halts_it() -> None:
    """Found in review: an operator rolled 2 of the 10 lots a strategy held; its leg moved
    whole, and its next exit would have sold 10 of the far month against 2 held."""
    host, _ = _rolled_host()
    moved = host.on_roll_done(_outcome(lots=1), T0)
    s = host.strategies["cu"]
    assert not moved and s.instrument_ids == ("SHFE.cu2701", "COMEX.HGH7")
    assert s.state.value == "HALTED" and "SHFE.cu2701: 1 lot(s) rolled to SHFE.cu2702, the strategy holds 2" in s.state_reason


def test_a_roll_that_changed_nothing_leaves_the_strategy_alone_and_an_uncertain_one_halts_it() -> None:
    host, _ = _rolled_host()
    moved, events = written(host, "on_roll_done", _outcome("ESCALATED", a=False, b=False), T0)  # both refused: nothing moved
    s = host.strategies["cu"]
    assert not moved and events == [] and s.state.value == "ACTIVE"
    # COMEX's child closed the near month and could neither open the far one nor undo the close
    # (escalated with a residual): the strategy's count on HGH7 follows the lots really traded
    bad = _outcome("ESCALATED", a=False, b=False, clean=False)
    bad["moves"][1]["net"] = {"COMEX.HGH7": 2, "COMEX.HGK7": 0}
    moved = host.on_roll_done(bad, T0)
    assert s.state.value == "HALTED" and "COMEX.HGH7: its roll to COMEX.HGK7 ended with lots changed but not " \
        "rolled (+2 on COMEX.HGH7, now +2/+0)" in s.state_reason
    assert (s.position, s.position_b) == (2, 0)


def test_an_outcome_retold_after_a_coordinator_restart_moves_what_rolled_and_halts_nothing_again() -> None:
    """Found in review: every coordinator restart re-told old escalated rolls, and a strategy an
    operator had resumed was halted again."""
    host, _ = _rolled_host()
    host.on_roll_done(_outcome("ESCALATED", b=False, clean=False), T0)
    s = host.strategies["cu"]
    assert s.state.value == "HALTED"
    host.resume("cu", "operator: settled by hand", T0 + 1)
    assert host.strategies["cu"].state.value == "ACTIVE"
    moved, events = written(host, "on_roll_done", {**_outcome("ESCALATED", b=False, clean=False), "retold": True}, T0 + 2)
    assert not moved and host.strategies["cu"].state.value == "ACTIVE"


def test_a_far_month_the_deployment_does_not_list_halts_instead_of_trading_the_wrong_month() -> None:
    host, _ = _rolled_host()
    del host.catalogue["COMEX.HGK7"]
    moved = host.on_roll_done(_outcome(), T0)
    s = host.strategies["cu"]
    assert not moved and s.instrument_ids == ("SHFE.cu2701", "COMEX.HGH7")
    assert s.state.value == "HALTED" and "COMEX.HGK7 not among the deployment's instruments" in s.state_reason


def test_a_restarted_host_replays_the_trails_rolls_and_stays_halted_on_lots_outside_its_legs() -> None:
    host, maker = _rolled_host()
    done = [maker.make(EventKind.LIFECYCLE, decision_id="roll-1", strategy="cu", reason="ROLL_DONE",
                       roll_state="ESCALATED", moves=_outcome(b=False)["moves"])]
    host.replay_rolls("cu", done, T0)
    s = host.strategies["cu"]
    assert s.instrument_ids == ("SHFE.cu2702", "COMEX.HGH7")
    s.restore_needed = "restarting"
    # the risk guard booked SHFE on the far month, COMEX still on the near one: consistent, resumes
    outcome = host.restore("cu", lots={"SHFE.cu2702": 2, "COMEX.HGH7": -2}, decision_seq=5, last_decision=None,
                              booked=(), stage=None, stopped={}, now_ns=T0)
    assert outcome == "resumed" and (s.position, s.position_b) == (2, -2)
    # lots left on a month none of its legs trades: it stays halted, naming them
    s.restore_needed = "restarting"
    outcome = host.restore("cu", lots={"SHFE.cu2702": 2, "SHFE.cu2701": 1, "COMEX.HGH7": -2}, decision_seq=5,
                              last_decision=None, booked=(), stage=None, stopped={}, now_ns=T0)
    assert outcome.startswith("halted: ") and "outside its legs SHFE.cu2701 +1" in outcome


# -- an outcome that never comes: the intent is sent again -----------------------------------------
def test_an_intent_whose_outcome_never_came_is_sent_again_until_it_comes() -> None:
    """Found by the chaos suite (seed 31): the coordinator accepted a pair, sent its orders and
    died before writing a word of it; its restart knew nothing of the pair, the strategy waited
    for ever and the venues held fills nobody counted. Sent again, the restarted coordinator
    adopts what the venues hold for it."""
    from strategy_kit import done, pair_quotes
    s = BandStrategy(ctx(), BASE)
    host = StrategyHostCore([s], EventMaker(SimClock(T0), "host"))
    [intent] = host.on_quotes(pair_quotes(1.02), T0)
    sec = 1_000_000_000
    host.sending(intent, T0)
    assert host.awaiting() == [intent.decision_id]
    # not yet: the pair may still be working
    assert host.overdue(T0 + 9 * sec, 10 * sec) == []
    # Act / Assert: past the bound it is returned once, then again only after another bound
    assert host.overdue(T0 + 10 * sec, 10 * sec) == [intent]
    assert host.overdue(T0 + 15 * sec, 10 * sec) == []
    assert host.overdue(T0 + 20 * sec, 10 * sec) == [intent]
    # the outcome comes: no longer awaited, and a late re-send of it does not await it again
    host.on_pair_done(done(intent), T0 + 21 * sec)
    host.sending(intent, T0 + 21 * sec)
    assert host.awaiting() == [] and host.overdue(T0 + 60 * sec, 10 * sec) == []
    assert s.position != 0


def test_a_refused_or_shadow_intent_is_not_awaited() -> None:
    from strategy_kit import done, pair_quotes
    s = BandStrategy(ctx(), BASE)
    host = StrategyHostCore([s], EventMaker(SimClock(T0), "host"))
    [intent] = host.on_quotes(pair_quotes(1.02), T0)
    host.sending(intent, T0)
    host.on_pair_done(done(intent, "REFUSED", 0, 0), T0 + 1)
    assert host.awaiting() == []
    shadow = StrategyHostCore([BandStrategy(ctx(), BASE)], EventMaker(SimClock(T0), "host"),
                              {"cu": StageSettings(stage="shadow")})
    assert shadow.on_quotes(pair_quotes(1.02), T0) == [] and shadow.awaiting() == []
