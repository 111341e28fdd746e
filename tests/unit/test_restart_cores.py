"""What a restarted actor takes back, decided in the cores (issue 22 item 5: no restart logic in
the shells): the strategy host core restores a strategy from what outlived its host, the risk
guard's rebuilt core takes over from the core it replaces. No Ray."""
from __future__ import annotations

from decimal import Decimal

from strategy_kit import T0, ctx
from test_monitor_alerts import core as guard_core
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.model.events import EventKind
from xmc_actors.model.risk import TradingState
from xmc_actors.strategies import BandStrategy
from xmc_actors.strategies.base import decision_id
from xmc_actors.strategies.host import StrategyHostCore
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
    outcome, events = host.restore("cu", lots={s.a.id: 2, s.b.id: -10}, decision_seq=12, last_decision=did,
                                   booked=booked(maker, did, s.a.id, s.b.id, 2, -10), stage=None, stopped={},
                                   now_ns=T0 + 1)
    # Assert
    st = host.status()["cu"]
    assert outcome == "resumed" and st["state"] == "ACTIVE"
    assert (st["position"], st["position_b"], st["decision_seq"]) == (2, -10, 12)
    assert s.restore_needed == ""
    restored = [e for e in events if e.reason.startswith("restored after a restart")]
    assert restored and restored[0].payload["position"] == 2 and did in restored[0].reason
    # the last decision's summary, if it still comes, is a repeat: the position does not move twice
    assert did in s._done


def test_a_strategy_a_halt_still_holds_is_restored_but_stays_halted_with_the_reason() -> None:
    host, s, _ = restarted_host()
    outcome, events = host.restore("cu", lots={}, decision_seq=0, last_decision=None, booked=(), stage=None,
                                   stopped={"strategy:cu": "risk guard: strategy:cu HALTED", "venue:LME": "x"},
                                   now_ns=T0 + 1)
    st = host.status()["cu"]
    assert outcome == "halted: risk guard: strategy:cu HALTED"
    assert st["state"] == "HALTED" and "halted: risk guard" in st["reason"]
    assert s.restore_needed == ""  # an operator may resume it now
    assert any("stays halted" in e.reason for e in events)


def test_unknown_trading_states_keep_every_strategy_halted() -> None:
    host, _, _ = restarted_host()
    outcome, _ = host.restore("cu", lots={}, decision_seq=0, last_decision=None, booked=(), stage=None,
                              stopped={"*": "coordinator status unknown (RayActorError)"}, now_ns=T0 + 1)
    assert outcome.startswith("halted: coordinator status unknown") and host.status()["cu"]["state"] == "HALTED"


def test_a_stage_changed_at_run_time_is_taken_back_and_a_shadow_keeps_the_real_position_apart() -> None:
    host, s, _ = restarted_host(stage="live")
    outcome, events = host.restore("cu", lots={s.a.id: 1, s.b.id: -5}, decision_seq=3, last_decision=None,
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
