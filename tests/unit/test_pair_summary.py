"""The pair summary is one model (model/pairs.py PairSummary), built by the coordinator's
pair_fsm.pair_summary and read through the model by the strategy and the risk guard.

The strategy used to read ``rolled_back_qty`` while the coordinator wrote ``rollback_qty``; only
``net_qty`` hid it. These tests feed a strategy the summary a real (harness) pair pushes.
"""
from __future__ import annotations

import pytest
from pydantic import ValidationError

import testkit
from pair_harness import Behaviour, Harness
from strategy_kit import T0, ctx, events, pair_quotes
from xmc_actors.model import PairState, RejectReason, Side
from xmc_actors.model.pairs import LegSummary, PairSummary
from xmc_actors.strategies import BandStrategy
from xmc_actors.strategies.base import StrategyState

BAND = dict(signal="ratio", price="mid", center=1.0, entry=0.01, exit=0.003, clip=1, max_position=3, cooldown_ms=0)
INSTRUMENTS = {i: testkit.instrument(i) for i in ("LME.CA3M", "SHFE.cu")}


def _strategy_and_its_intent():  # noqa: ANN202
    s = BandStrategy(ctx(), dict(BAND))
    [intent] = [a.intent for a in s.on_quotes(pair_quotes(1.02, t=T0), T0) if hasattr(a, "intent")]
    return s, intent


def _rolled_back(intent) -> dict:  # noqa: ANN001
    """Leg A fills, leg B is rejected for good: the coordinator unwinds A. The last summary it
    pushes, as it travels over Ray."""
    h = Harness(INSTRUMENTS, {"LME": Behaviour(), "SHFE": Behaviour(reject=1.0, reject_reasons=(RejectReason.MARKET_CLOSED,))})
    h.submit(intent)
    h.drain()
    assert h.book.pairs[intent.decision_id].state is PairState.ROLLED_BACK
    return h.done[-1]


def test_a_strategy_reads_a_rolled_back_pair_from_the_coordinators_own_summary() -> None:
    # Arrange: a band strategy sells A / buys B; the harness pair fills A, B is rejected
    s, intent = _strategy_and_its_intent()
    wire = _rolled_back(intent)
    a = PairSummary.model_validate(wire).leg("A")
    assert a is not None and a.filled_qty == intent.legs[0].qty and a.rollback_qty == a.filled_qty
    # Act
    s.on_pair_done(wire, T0 + 1)
    # Assert: what was sold was bought back: flat, and trading on
    assert (s.position, s.position_b) == (0, 0) and s.state is StrategyState.ACTIVE


def test_the_rollback_quantity_is_read_by_its_key_not_hidden_by_net_qty() -> None:
    # Arrange: the same real summary without the signed net_qty, so that only filled_qty and
    # rollback_qty say what the leg holds (the strategy that read rolled_back_qty saw -1 here)
    s, intent = _strategy_and_its_intent()
    wire = _rolled_back(intent)
    bare = {**wire, "legs": [{k: v for k, v in lg.items() if k != "net_qty"} for lg in wire["legs"]]}
    # Act
    acts = s.on_pair_done(bare, T0 + 1)
    # Assert
    assert (s.position, s.position_b) == (0, 0) and not events(acts, "BAD_INPUT")


def test_the_risk_guard_books_the_same_summary_as_flat() -> None:
    from test_monitor_alerts import core as risk_core

    _, intent = _strategy_and_its_intent()
    guard, _, _ = risk_core()
    guard.on_pair_done(_rolled_back(intent))
    assert intent.decision_id in guard.booked and guard.counters.get("bad_input", 0) == 0
    assert all(v == 0 for acc in guard.book.account.values() for v in acc.values())


def test_a_misspelt_key_is_refused_not_read_as_zero() -> None:
    leg = dict(leg="A", instrument="LME.CA3M", account="us", side="SELL", filled_qty=1)
    with pytest.raises(ValidationError, match="rolled_back_qty"):
        LegSummary.model_validate({**leg, "rolled_back_qty": 1})
    with pytest.raises(ValidationError, match="net_qty"):
        LegSummary.model_validate({**leg, "rollback_qty": 1, "net_qty": -1})  # sold 1, bought it back: 0
    assert LegSummary.model_validate({**leg, "rollback_qty": 1, "net_qty": 0}).net_lots == 0
    # a strategy fed such a summary does not guess: bad input, halted with its position unknown
    s, intent = _strategy_and_its_intent()
    wire = _rolled_back(intent)
    bad = {**wire, "legs": [{**lg, "rolled_back_qty": lg["rollback_qty"]} for lg in wire["legs"]]}
    acts = s.on_pair_done(bad, T0 + 1)
    assert events(acts, "BAD_INPUT") and s.state is StrategyState.HALTED and "position unknown" in s.state_reason


def test_a_summary_survives_the_trip_over_ray_unchanged() -> None:
    _, intent = _strategy_and_its_intent()
    wire = _rolled_back(intent)
    s = PairSummary.model_validate(wire)
    assert s.to_wire() == wire and PairSummary.model_validate(s.to_wire()) == s
    assert s.state == "ROLLED_BACK" and s.pair_state is PairState.ROLLED_BACK
    assert [lg.side for lg in s.legs] == [Side.SELL, Side.BUY] and s.strategy == intent.strategy
