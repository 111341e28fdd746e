"""Band strategy and the base class: triggers with hysteresis, target transitions, cool-down, guards, intents."""
from __future__ import annotations

from decimal import Decimal

import pytest

import testkit
from strategy_kit import MS, T0, A, B, ctx, done, events, intents, late_fill, pair_quotes
from testkit import quote
from xmc_actors.core.clock import SimClock
from xmc_actors.core.pair_fsm import PairBook
from xmc_actors.core.sizing import is_balanced
from xmc_actors.model import ExecutionMode, QuoteStatus, Side
from xmc_actors.model.config import ExecutionConfig
from xmc_actors.strategies import BandStrategy
from xmc_actors.strategies.base import StrategyState, Transition, band_target, classify

BASE = dict(signal="ratio", price="mid", center=1.0, entry=0.01, exit=0.003, clip=1, max_position=3, cooldown_ms=0)


def band(**kw):
    return BandStrategy(ctx(execution=kw.pop("execution", None)), {**BASE, **kw})


def step(s, ratio, t, **kw):
    return s.on_quotes(pair_quotes(ratio, t=t, **kw), t)


# ------------------------------------------------------------------ triggers and hysteresis
def test_a_rich_beyond_entry_opens_short_a_long_b_with_whole_lots_at_the_hedge_ratio():
    s = band()
    acts = step(s, 1.011, T0)
    [it] = intents(acts)
    assert it.decision_id == "cu-00000001"
    assert (it.legs[0].instrument, it.legs[0].side, it.legs[0].qty) == (A, Side.SELL, 1)
    assert (it.legs[1].instrument, it.legs[1].side, it.legs[1].qty) == (B, Side.BUY, 5)  # 25 t = 5 x 5 t
    assert it.legs[0].account == "us-main" and it.legs[1].account == "cn-main"
    [sig] = [e for e in events(acts, "SIGNAL") if e.decision_id == it.decision_id]
    assert sig.payload["transition"] == "open"
    assert sig.payload["signal"]["signal_sell_a"] == pytest.approx(1.011)
    assert sig.payload["signal"]["entry"] == 0.01 and sig.payload["parity"]["fx"] == pytest.approx(1 / 7)


def test_inside_the_entry_band_nothing_is_sent():
    s = band()
    assert intents(step(s, 1.0099, T0)) == []
    assert intents(step(s, 0.9901, T0 + MS)) == []


def test_a_short_is_held_between_exit_and_entry_and_closed_inside_exit():
    s = band()
    [opened] = intents(step(s, 1.02, T0))
    s.on_pair_done(done(opened), T0 + MS)
    assert s.position == -1
    assert intents(step(s, 1.005, T0 + 2 * MS)) == []       # hysteresis: still beyond exit
    [close] = intents(step(s, 1.002, T0 + 3 * MS))
    assert close.legs[0].side is Side.BUY and close.legs[0].qty == 1 and close.reduce_only
    s.on_pair_done(done(close), T0 + 4 * MS)
    assert s.position == 0 and s.position_b == 0


def test_a_cheap_opens_long_and_closes_when_the_sell_value_recovers_within_exit():
    s = band()
    [o] = intents(step(s, 0.985, T0))
    assert o.legs[0].side is Side.BUY and o.legs[1].side is Side.SELL
    s.on_pair_done(done(o), T0 + MS)
    assert intents(step(s, 0.995, T0 + 2 * MS)) == []
    [c] = intents(step(s, 0.998, T0 + 3 * MS))
    assert c.legs[0].side is Side.SELL


def test_executable_prices_must_clear_the_band_not_the_mid():
    s = band(price="executable")
    # mid ratio 1.0105 is beyond entry, but A can only be sold at its bid 10095: ratio 1.0095 is not
    acts = step(s, 1.0105, T0, half_spread=10)
    assert intents(acts) == []
    assert s.last_signal["signal_sell_a"] == pytest.approx(1.0095)
    assert s.last_signal["signal_mid"] == pytest.approx(1.0105)


def test_fees_widen_what_the_signal_needs():
    s = band(costs={"fee_bps": 5})
    assert intents(step(s, 1.0105, T0)) == []   # 1.0105 x 0.9995 / 1.0005 = 1.00848
    assert len(intents(step(s, 1.0125, T0 + MS))) == 1


# ------------------------------------------------------------------ target position transitions
def test_add_up_to_max_position_then_stop():
    s = band(max_position=2)
    for n in (1, 2):
        [it] = intents(step(s, 1.02, T0 + n * 10 * MS))
        s.on_pair_done(done(it), T0 + n * 10 * MS + 1)
    assert s.position == -2
    assert intents(step(s, 1.03, T0 + 100 * MS)) == []


def test_reverse_from_long_to_short_is_one_pair_of_the_whole_move():
    s = band(clip=2)
    [o] = intents(step(s, 0.98, T0))
    s.on_pair_done(done(o), T0 + 1)
    assert s.position == 2
    acts = step(s, 1.02, T0 + 10 * MS)
    [r] = intents(acts)
    assert r.legs[0].side is Side.SELL and r.legs[0].qty == 4 and r.legs[1].qty == 20 and not r.reduce_only
    assert events(acts, "SIGNAL")[-1].payload["transition"] == "reverse"
    s.on_pair_done(done(r), T0 + 11 * MS)
    assert s.position == -2 and s.position_b == 10


def test_scaled_band_reduces_as_the_deviation_shrinks_but_stays_beyond_entry():
    s = band(scale_step=0.01, max_position=5)
    [o] = intents(step(s, 1.031, T0))          # 1 + floor(0.021/0.01) = 3 clips
    assert o.legs[0].qty == 3
    s.on_pair_done(done(o), T0 + 1)
    [r] = intents(step(s, 1.012, T0 + 10 * MS))  # 1 clip
    assert r.legs[0].side is Side.BUY and r.legs[0].qty == 2 and r.reduce_only
    assert classify(-3, -1) is Transition.REDUCE


@pytest.mark.parametrize("pos,target,move", [(0, 1, "open"), (1, 3, "add"), (3, 1, "reduce"), (2, 0, "close"),
                                             (2, -1, "reverse"), (-2, 1, "reverse"), (1, 1, None)])
def test_classify_names_each_transition(pos, target, move):
    got = classify(pos, target)
    assert (got.value if got else None) == move


def test_band_target_hysteresis_table():
    kw = dict(entry=1.0, exit=0.3, clip=1, max_position=3)
    assert band_target(0, 0.9, 0.95, **kw) is None
    assert band_target(0, 1.0, 1.1, **kw)[0] == -1
    assert band_target(-1, 0.5, 0.5, **kw) is None
    assert band_target(-1, 0.2, 0.3, **kw)[0] == 0
    assert band_target(1, -0.3, -0.2, **kw)[0] == 0
    assert band_target(1, -0.5, -0.4, **kw) is None


def test_partial_fill_and_rollback_update_the_position_by_what_really_filled():
    s = band(clip=2)
    [o] = intents(step(s, 1.02, T0))
    s.on_pair_done(done(o, "ROLLED_BACK", fill_a=2, net_a=0, fill_b=0), T0 + 1)
    assert (s.position, s.position_b) == (0, 0)
    [o2] = intents(step(s, 1.02, T0 + 10 * MS))
    s.on_pair_done(done(o2, fill_a=1, fill_b=5), T0 + 11 * MS)
    assert (s.position, s.position_b) == (-1, 5)


# ------------------------------------------------------------------ one pair in flight, cool-down
def test_no_second_intent_while_a_pair_is_in_flight():
    s = band()
    assert len(intents(step(s, 1.02, T0))) == 1
    assert intents(step(s, 1.03, T0 + 100 * MS)) == []
    assert s.pending_decision == "cu-00000001"


def test_cooldown_blocks_a_new_decision_until_it_has_passed_since_the_last_outcome():
    s = band(cooldown_ms=500)
    [o] = intents(step(s, 1.02, T0))
    s.on_pair_done(done(o), T0 + 100 * MS)
    assert intents(step(s, 1.02, T0 + 599 * MS)) == []
    assert s.last_signal.get("cooldown") is True
    [it] = intents(step(s, 1.02, T0 + 600 * MS))
    assert it.decision_id == "cu-00000002"


def test_decision_ids_continue_from_the_restored_counter_and_position():
    s = BandStrategy(ctx(), {**BASE, "max_position": 5}, position=-2, position_b=10, decision_seq=41)
    [it] = intents(step(s, 1.02, T0))
    assert it.decision_id == "cu-00000042" and it.legs[0].qty == 1
    assert s.status()["position"] == -2


# ------------------------------------------------------------------ guards
def test_stale_flagged_quote_blocks_and_the_block_is_recorded_once():
    s = band()
    qa, qb = pair_quotes(1.02)
    acts = s.on_quotes([qa.model_copy(update={"status": QuoteStatus.STALE}), qb], T0)
    assert intents(acts) == []
    [ev] = events(acts, "SIGNAL")
    assert ev.payload["blocked"] == "STALE"
    assert events(s.on_quotes([qb.model_copy(update={"seq": 1})], T0 + 1), "SIGNAL") == []  # same block: no new event


def test_quote_older_than_stale_ms_blocks():
    s = band(guards={"stale_ms": 1000, "max_skew_ms": 60_000})
    acts = step(s, 1.02, T0, )
    assert len(intents(acts)) == 1
    s2 = band(guards={"stale_ms": 1000, "max_skew_ms": 60_000})
    acts = s2.on_quotes(pair_quotes(1.02, t=T0), T0 + 1001 * MS)
    assert intents(acts) == [] and s2.blocked[0] == "STALE"


def test_a_stale_leg_b_blocks_and_the_detail_names_leg_b():
    s = band(guards={"stale_ms": 1000, "max_skew_ms": 60_000})
    qa, qb = pair_quotes(1.02, t=T0)
    acts = s.on_quotes([qa.model_copy(update={"ts_ns": T0 + 1500 * MS}), qb], T0 + 1500 * MS)
    assert intents(acts) == []
    assert s.blocked == ("STALE", f"{B} quote is OK, 1500 ms old (stale_ms=1000)")


def test_decide_sees_an_ordinary_frozen_snapshot():
    import dataclasses
    from xmc_actors.strategies.base import Snapshot
    s, seen = band(), []
    inner = s.decide
    s.decide = lambda snap: (seen.append(snap), inner(snap))[1]  # type: ignore[method-assign]
    step(s, 1.0, T0)
    [snap] = seen
    assert type(snap) is Snapshot and snap.position == 0 and snap.now_ns == T0
    assert snap == Snapshot(snap.now_ns, snap.quote_a, snap.quote_b, snap.parity, snap.position)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.position = 1  # type: ignore[misc]


def test_a_venue_pushed_down_blocks_triggers_until_it_is_up_again():
    # Arrange: LME (leg A) is reported DOWN by the coordinator's venue health
    s = band()
    acts = s.on_venue_state("LME", False, "gateway lost: node gone", T0)
    [ev] = events(acts, "SIGNAL")
    assert ev.payload["blocked"] == "VENUE_DOWN" and "LME: gateway lost" in ev.payload["detail"]

    # Act / Assert: fresh quotes far beyond the band do not trigger while it is DOWN
    assert intents(step(s, 1.05, T0 + 1)) == [] and s.blocked[0] == "VENUE_DOWN"
    # a venue this strategy does not trade changes nothing
    assert s.on_venue_state("CME", True, "", T0 + 2) == []
    assert intents(step(s, 1.05, T0 + 3)) == []
    # UP again: the next quote triggers
    s.on_venue_state("LME", True, "gateway answered", T0 + 4)
    assert len(intents(step(s, 1.05, T0 + 5))) == 1


def test_legs_too_far_apart_in_calibrated_time_block():
    s = band(guards={"max_skew_ms": 500})
    qa, qb = pair_quotes(1.02)
    acts = s.on_quotes([qa, qb.model_copy(update={"ts_ns": T0 - 501 * MS})], T0)
    assert intents(acts) == [] and s.blocked[0] == "SKEW"
    acts = s.on_quotes([qb.model_copy(update={"ts_ns": T0 - 400 * MS, "seq": 2})], T0)
    assert len(intents(acts)) == 1


def test_closed_session_blocks_unless_sessions_are_not_required():
    sat = T0 + 5 * 86_400_000 * MS  # Saturday
    s = band()
    assert intents(step(s, 1.02, sat)) == [] and s.blocked[0] == "SESSION"
    assert "weekend" in s.blocked[1]
    s2 = band(guards={"require_sessions_open": False})
    assert len(intents(step(s2, 1.02, sat))) == 1


def test_no_fx_means_no_signal():
    from xmc_actors.core.pricing import FxBook

    s = BandStrategy(ctx().__class__(**{**ctx().__dict__, "fx": FxBook()}), BASE)
    assert intents(step(s, 1.02, T0)) == [] and s.blocked[0] == "NO_PARITY"


# ------------------------------------------------------------------ intent building
def test_intent_limits_are_on_the_tick_grid_at_the_executable_prices_with_execution_settings():
    exe = ExecutionConfig(mode=ExecutionMode.SPEED, max_slippage_bps=Decimal("12"), deadline_ms=3000)
    s = band(price="executable", execution=exe)
    qa = quote(A, "10150.5", "10151", ts_ns=T0)
    qb = quote(B, "70000", "70010", ts_ns=T0)
    [it] = intents(s.on_quotes([qa, qb], T0))
    la, lb = it.legs
    assert la.side is Side.SELL and la.limit_price == Decimal("10150.5") == la.trigger_price  # A's bid
    assert lb.side is Side.BUY and lb.limit_price == Decimal("70010")                       # B's ask
    assert it.mode is ExecutionMode.SPEED and it.max_slippage_bps == Decimal("12")
    assert it.deadline_ns == T0 + 3000 * MS and it.created_ns == T0
    assert it.start_by_ns == T0 + 2000 * MS  # execution.start_within_ms, by default
    assert it.hedge_ratio == Decimal(5)
    # start_within_ms 0: no start-by
    s = band(price="executable", execution=exe.model_copy(update={"start_within_ms": 0}))
    [it] = intents(s.on_quotes([qa, qb], T0))
    assert it.start_by_ns is None


def test_a_clip_that_hedges_zero_lots_of_leg_b_is_a_clear_error_naming_clip():
    with pytest.raises(ValueError, match=r"params.clip: .*rounds to 0"):
        BandStrategy(ctx(a=B, b=A), BASE)  # 1 SHFE lot = 0.2 LME lots


def test_bad_params_name_the_field():
    with pytest.raises(ValueError, match=r"params.entry"):
        BandStrategy(ctx(), {**BASE, "entry": "wide"})


# ------------------------------------------------------------------ outcomes and halts
def test_escalated_pair_updates_the_position_and_halts_the_strategy():
    s = band()
    [o] = intents(step(s, 1.02, T0))
    acts = s.on_pair_done(done(o, state="ESCALATED", fill_a=1, fill_b=0), T0 + 1)
    assert s.state is StrategyState.HALTED and (s.position, s.position_b) == (-1, 0)
    assert events(acts, "LIFECYCLE")
    assert intents(step(s, 0.9, T0 + 10 * MS)) == []


def test_a_late_fill_on_a_forgotten_pair_adds_its_lots_to_the_position_and_halts():
    # Arrange: the pair hedged (A -1, B +1) and is long done
    s = band()
    [o] = intents(step(s, 1.02, T0))
    s.on_pair_done(done(o), T0 + 1)
    before = (s.position, s.position_b)
    # Act: the coordinator pushes an incremental summary: one more lot sold on leg A
    late = late_fill(o, "A", 1)
    acts = s.on_pair_done(late, T0 + 2)
    # Assert: the position holds what the venue holds, and the strategy stops
    assert (s.position, s.position_b) == (before[0] - 1, before[1])
    assert s.state is StrategyState.HALTED and "late fill" in s.state_reason
    assert events(acts, "LIFECYCLE") and not events(acts, "BAD_INPUT")
    assert intents(step(s, 0.9, T0 + 10 * MS)) == []
    # unreadable: position unknown, recorded
    bad = s.on_pair_done({**late, "legs": [{"leg": "C", "net_qty": 1}]}, T0 + 3)
    assert events(bad, "BAD_INPUT") and "position unknown" in s.state_reason


def test_malformed_pair_summary_is_bad_input_and_halts_with_position_unknown():
    s = band()
    [o] = intents(step(s, 1.02, T0))
    acts = s.on_pair_done({"decision_id": o.decision_id, "state": "HEDGED", "legs": {"A": {"filled_qty": -3}}}, T0 + 1)
    assert [e.kind.value for e in events(acts)][:1] == ["BAD_INPUT"]
    assert s.state is StrategyState.HALTED and "position unknown" in s.state_reason
    assert s.pending_decision == o.decision_id and s.counters["bad_input"] == 1


def test_a_repeated_pair_summary_is_applied_once():
    s = band()
    [o] = intents(step(s, 1.02, T0))
    s.on_pair_done(done(o), T0 + 1)
    assert s.on_pair_done(done(o), T0 + 2) == []
    assert s.position == -1


def test_a_revised_pair_summary_moves_the_position_by_the_difference():
    # Arrange: the pair hedged (A -1, B +5); a late fill on leg A, the pair still balanced
    s = band()
    [o] = intents(step(s, 1.02, T0))
    first = done(o, fill_a=1, fill_b=5)
    s.on_pair_done(first, T0 + 1)
    before = (s.position, s.position_b)
    # Act: the coordinator pushes the summary again with A at -2, then the same again
    revised = done(o, fill_a=2, fill_b=5)
    acts = s.on_pair_done(revised, T0 + 2)
    again = s.on_pair_done(revised, T0 + 3)
    # Assert: moved once, by the difference, recorded; the strategy keeps trading
    assert (s.position, s.position_b) == (before[0] - 1, before[1]) and again == []
    assert events(acts, "LIFECYCLE") and s.counters["revisions"] == 1 and s.state is StrategyState.ACTIVE


def test_a_pair_summary_older_than_the_one_applied_is_ignored():
    # Arrange: applied at ts 5, revised at ts 9 (A -1 -> -2)
    s = band()
    [o] = intents(step(s, 1.02, T0))
    s.on_pair_done(done(o, fill_a=1, fill_b=5, ts_ns=5), T0 + 1)
    s.on_pair_done(done(o, fill_a=2, fill_b=5, ts_ns=9), T0 + 2)
    # Act: a restarted coordinator pushes what the trail said at ts 7
    stale = s.on_pair_done(done(o, fill_a=1, fill_b=5, ts_ns=7), T0 + 3)
    # Assert
    assert stale == [] and s.position == -2


def test_a_strategy_whose_position_is_unknown_cannot_be_resumed():
    s = band()
    s.restore_needed = "host restarted: position not restored"
    s.halt("host restarted", T0)
    acts = s.resume("operator alice", T0 + 1)
    assert s.state is StrategyState.HALTED
    assert any("resume refused (operator alice): host restarted" in e.reason for e in events(acts, "LIFECYCLE"))
    s.restore_needed = ""
    s.resume("operator alice", T0 + 2)
    assert s.state is StrategyState.ACTIVE


def test_halt_and_resume():
    s = band()
    s.halt("operator", T0)
    assert intents(step(s, 1.02, T0 + 1)) == []
    s.resume("operator", T0 + 2)
    assert len(intents(step(s, 1.02, T0 + 3))) == 1


# ------------------------------------------------------------------ sizing after partial fills
def _shfe_lme(**kw):
    """SHFE cu (5 t) as leg A against LME (25 t): 0.2 LME lots per SHFE lot."""
    return BandStrategy(ctx(a="SHFE.cu", b="LME.CA3M"), {**BASE, **kw})


def _cu_quotes(ratio: float, t: int) -> list:
    # LME 10000 USD/t = 70000 CNY/t at 7.0; SHFE at 70000 x ratio
    return [quote("SHFE.cu", round(70000 * ratio, -1), round(70000 * ratio, -1), ts_ns=t),
            quote("LME.CA3M", 10000, 10000, ts_ns=t)]


def test_an_add_clamped_to_a_lot_that_hedges_nothing_is_skipped_not_raised():
    s = _shfe_lme(clip=5, max_position=6)
    [o] = intents(s.on_quotes(_cu_quotes(1.02, T0), T0))
    assert [(l.instrument, l.qty) for l in o.legs] == [("SHFE.cu", 5), ("LME.CA3M", 1)]
    s.on_pair_done(done(o), T0 + 1)
    acts = s.on_quotes(_cu_quotes(1.021, T0 + 10 * MS), T0 + 10 * MS)  # add: clamped from 5 to 1 lot
    assert intents(acts) == [] and s.state is StrategyState.ACTIVE
    [sig] = events(acts, "SIGNAL")
    assert sig.payload["blocked"] == "TOO_SMALL_TO_HEDGE"
    assert "1 lot(s) of SHFE.cu hedges less than one lot of LME.CA3M" in sig.payload["detail"]


def test_a_close_after_a_partial_fill_flattens_both_legs_as_held():
    s = _shfe_lme(clip=5, max_position=5)
    [o] = intents(s.on_quotes(_cu_quotes(1.02, T0), T0))
    s.on_pair_done(done(o, fill_a=4, fill_b=1), T0 + 1)  # A short 4 (one lot short of 5), B long 1
    assert (s.position, s.position_b) == (-4, 1)
    [c] = intents(s.on_quotes(_cu_quotes(1.0, T0 + 10 * MS), T0 + 10 * MS))
    assert [(l.instrument, l.side, l.qty) for l in c.legs] == [("SHFE.cu", Side.BUY, 4), ("LME.CA3M", Side.SELL, 1)]
    assert c.reduce_only


def test_a_close_of_a_position_off_the_hedge_ratio_is_a_pair_the_coordinator_accepts():
    # Arrange: what the demo's copper pair came to hold: 5 SHFE lots against 2 LME lots (the
    # hedge of 5 is 1), after pairs that each ended balanced within a lot
    s = BandStrategy(ctx(a="SHFE.cu", b="LME.CA3M"), {**BASE, "clip": 5, "max_position": 10},
                     position=-5, position_b=2)
    book = PairBook({i: testkit.instrument(i) for i in ("SHFE.cu", "LME.CA3M")}, SimClock(T0))
    # Act
    [c] = intents(s.on_quotes(_cu_quotes(1.0, T0), T0))
    res, _ = book.submit(c)
    # Assert: both legs flattened as held, in the pair's own proportion. At the strategy's 0.2
    # the coordinator refused it (BAD_INPUT legs.qty), again at every cool-down, and a close
    # of 6 against 2 could end HEDGED with 1 LME lot of the 2, leaving the other alone
    assert [(l.instrument, l.side, l.qty) for l in c.legs] == [("SHFE.cu", Side.BUY, 5), ("LME.CA3M", Side.SELL, 2)]
    assert c.hedge_ratio == Decimal("0.4") and c.reduce_only
    assert res["accepted"] and res["state"] == "WORKING"
    assert not is_balanced(5, 1, c.hedge_ratio, 1) and is_balanced(5, 1, Decimal("0.2"), 1)


def test_a_reduce_takes_back_the_residual_earlier_pairs_left_on_leg_b():
    # Arrange: short 10 SHFE lots against 3 LME lots (the hedge of 10 is 2)
    s = BandStrategy(ctx(a="SHFE.cu", b="LME.CA3M"), {**BASE, "clip": 5, "max_position": 10, "scale_step": 0.01},
                     position=-10, position_b=3)
    # Act: the ratio comes back to one clip's worth (1 + floor(0.002 / 0.01) = 1 clip)
    [r] = intents(s.on_quotes(_cu_quotes(1.012, T0), T0))
    s.on_pair_done(done(r), T0 + 1)
    # Assert: leg B moves to the hedge of the new position, not by the hedge of the move
    assert [(l.side, l.qty) for l in r.legs] == [(Side.BUY, 5), (Side.SELL, 2)]
    assert r.hedge_ratio == Decimal("0.4") and r.reduce_only
    assert (s.position, s.position_b) == (-5, 1)


def test_a_residual_no_pair_can_take_back_blocks_the_move_with_the_reason():
    # Arrange: short 5 SHFE lots with nothing against them on LME
    s = BandStrategy(ctx(a="SHFE.cu", b="LME.CA3M"), {**BASE, "clip": 5, "max_position": 10}, position=-5)
    # Act: the ratio says close
    acts = s.on_quotes(_cu_quotes(1.0, T0), T0)
    # Assert: no pair (it would leave the LME leg short instead); the block says why
    assert intents(acts) == []
    [sig] = events(acts, "SIGNAL")
    assert sig.payload["blocked"] == "TOO_SMALL_TO_HEDGE"
    assert "holding -5 SHFE.cu / +0 LME.CA3M: the hedge of +0 is +0 LME.CA3M" in sig.payload["detail"]
    assert "the residual needs an operator" in sig.payload["detail"]


def test_a_refusal_by_trading_state_pauses_entries_instead_of_resubmitting_every_cooldown():
    s = band()
    [o] = intents(step(s, 1.02, T0))
    s.on_pair_done({"decision_id": o.decision_id, "strategy": o.strategy, "state": "REFUSED",
                    "reason": "TRADING_HALTED: LME.CA3M for cu: trading state HALTED"}, T0 + 1)
    assert intents(step(s, 1.02, T0 + 1_000 * MS)) == []          # within the back-off
    assert s.status()["blocked"].startswith("TRADING_STATE")
    # every quote of the pause: one "blocked" event, no unblocked/blocked pair per tick (the
    # chaos suite saw 94k of them while a venue stayed REDUCING)
    later = [a for t in range(2, 40) for a in step(s, 1.02, T0 + t * 100 * MS)]
    assert intents(later) == [] and events(later, "SIGNAL") == []
    assert len(intents(step(s, 1.02, T0 + 6_000 * MS))) == 1       # after it: tries again
