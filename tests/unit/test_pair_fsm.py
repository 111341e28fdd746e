"""The pair state machine, scenario by scenario, without Ray (pure core + fake venues on a SimClock)."""
from __future__ import annotations

import heapq
from decimal import Decimal

import pytest
import testkit
from pair_harness import MS, Behaviour, Harness
from xmc_actors.core.clock import SimClock
from xmc_actors.core.pair_fsm import (
    Cancel, CoordinatorConfig, HaltStrategy, NotifyDone, PairBook, Place, Query, StartTimer,
)
from xmc_actors.core.pretrade import Denial, PreTradeResult
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import (
    EventKind, ExecReportKind, ExecutionMode, ExecutionReport, Fill, OrderStatus, OrderType, PairState,
    RejectReason, ReplenishBudget, RollbackPolicy, Side,
)
from xmc_actors.model.pairs import PairSummary

INSTRUMENTS = {"SHFE.cu": testkit.instrument("SHFE.cu"), "LME.CA3M": testkit.instrument("LME.CA3M")}
FILLS = Behaviour()  # ack and fill everything at once
A = ("SHFE.cu", "BUY", 2, "72000")
B = ("LME.CA3M", "SELL", 2, "9800")


def intent(did: str = "d1", **kw):  # noqa: ANN201
    return testkit.pair_intent(did, a=kw.pop("a", A), b=kw.pop("b", B), **kw)


def kinds(h: Harness, did: str = "d1") -> list[str]:
    return [e.kind.value for e in h.sink.by_decision(did)]


def states(h: Harness, did: str = "d1") -> list[str]:
    return [e.payload["to"] for e in h.sink.by_decision(did) if e.kind is EventKind.PAIR_STATE]


# -- direct-feed helpers (for races the fake venue cannot script) -----------------------------
def rep(coid: str, kind: ExecReportKind, status: OrderStatus, venue: str = "SHFE", inst: str = "SHFE.cu",
        filled: int = 0, **kw) -> ExecutionReport:
    return ExecutionReport(kind=kind, client_order_id=coid, venue=venue, instrument=inst, status=status,
                           filled_qty=filled, **kw)


def fill(coid: str, qty: int, cum: int, tid: str, venue: str = "SHFE", inst: str = "SHFE.cu",
         status: OrderStatus = OrderStatus.FILLED, price: str = "72000") -> ExecutionReport:
    f = Fill(trade_id=tid, client_order_id=coid, venue_order_id="v", instrument=inst, side=Side.BUY, qty=qty,
             price=Decimal(price), ts_ns=1)
    return rep(coid, ExecReportKind.FILL, status, venue, inst, filled=cum, fill=f)


def leg(summary: dict, name: str) -> dict:
    return next(d for d in summary["legs"] if d["leg"] == name)


def only(cmds: list, kind: type) -> list:
    return [c for c in cmds if isinstance(c, kind)]


# -- scenarios ----------------------------------------------------------------------------------
def test_both_legs_filled_hedges_and_sends_both_legs_in_one_batch() -> None:
    # Arrange
    book = PairBook(INSTRUMENTS, SimClock())
    # Act
    res, cmds = book.submit(intent())
    # Assert: both places come out of one input, so the actor sends them concurrently
    assert res["accepted"] and [c.req.leg for c in only(cmds, Place)] == ["A", "B"]
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    h.submit(intent())
    h.drain()
    assert h.book.pairs["d1"].state is PairState.HEDGED
    assert states(h) == ["NEW", "WORKING", "HEDGED"]
    assert h.done[-1]["complete"] is True and leg(h.done[-1], "B")["filled_qty"] == 2


@pytest.mark.parametrize("lme", [FILLS, Behaviour(latency_ms=(5.0, 5.0)),
                                 Behaviour(reject=1.0, reject_reasons=(RejectReason.MARKET_CLOSED,))],
                         ids=["hedged", "b-late", "rolled-back"])
def test_the_terminal_pair_state_records_the_unhedged_time_the_summary_reports(lme) -> None:
    # Arrange: leg B answers at once, late, or never fills (leg A is unwound)
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": lme})
    # Act
    h.submit(intent(mode=ExecutionMode.SPEED))
    h.drain()
    # Assert: the ledger carries the coordinator's own measure, once, on the terminal state
    pair_states = [e for e in h.sink.by_decision("d1") if e.kind is EventKind.PAIR_STATE]
    terminal = [e for e in pair_states if "unhedged_ms" in e.payload]
    assert [e.payload["to"] for e in terminal] == [pair_states[-1].payload["to"]]
    assert pair_states[-1].payload["to"] in ("HEDGED", "ROLLED_BACK")
    assert terminal[0].payload["unhedged_ms"] == h.done[-1]["unhedged_ms"]
    if lme is not FILLS:  # leg A held alone for a while
        assert terminal[0].payload["unhedged_ms"] > 0


def test_same_intent_sent_twice_executes_once() -> None:
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    first = h.submit(intent())
    second = h.submit(intent())
    h.drain()
    assert first["duplicate"] is False and second["duplicate"] is True
    assert len(h.placed) == 2


def test_reject_on_leg_b_then_replenished_at_a_chased_price_hedges() -> None:
    # Arrange: B's first order is refused (curable), the re-send fills
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    v = h.venues["LME"]
    real = v._place
    calls = {"n": 0}

    def first_rejected(req):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 1:
            v.b = Behaviour(reject=1.0)
            out = real(req)
            v.b = FILLS
            return out
        return real(req)
    v._place = first_rejected  # type: ignore[method-assign]
    # Act
    h.submit(intent(mode=ExecutionMode.SPEED))
    h.drain()
    # Assert
    assert h.book.pairs["d1"].state is PairState.HEDGED
    assert "REPLENISHING" in states(h)
    b_orders = [r for _, r in h.placed if r.leg == "B"]
    assert [r.client_order_id for r in b_orders] == ["d1:B:0", "d1:B:1"]
    assert b_orders[1].price < b_orders[0].price  # a sell chases down
    assert EventKind.REPLENISH.value in kinds(h)


def test_final_reject_on_leg_b_after_leg_a_filled_rolls_back_leg_a() -> None:
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(reject=1.0, reject_reasons=(RejectReason.MARKET_CLOSED,))})
    h.submit(intent(mode=ExecutionMode.SPEED))
    h.drain()
    m = h.book.pairs["d1"]
    assert m.state is PairState.ROLLED_BACK
    unwind = [r for _, r in h.placed if r.leg == "A" and r.reduce_only]
    assert len(unwind) == 1 and unwind[0].side is Side.SELL and unwind[0].qty == 2
    assert unwind[0].order_type is OrderType.IOC
    assert h.venues["SHFE"].net("d1", "A", Side.BUY) == 0
    assert states(h) == ["NEW", "WORKING", "WINDING_DOWN", "ROLLING_BACK", "ROLLED_BACK"]
    assert not [r for _, r in h.placed if r.leg == "B" and r.attempt > 0]  # final: no replenish


def test_partial_fills_on_both_legs_are_replenished_to_the_full_size() -> None:
    h = Harness(INSTRUMENTS, {"SHFE": Behaviour(partial=1.0), "LME": Behaviour(partial=1.0)}, seed=3)
    h.submit(intent(a=("SHFE.cu", "BUY", 5, "72000"), b=("LME.CA3M", "SELL", 5, "9800"), mode=ExecutionMode.SPEED,
                    replenish=ReplenishBudget(max_attempts=10, max_chase_ticks=10)))
    h.drain()
    m = h.book.pairs["d1"]
    assert m.state is PairState.HEDGED
    assert m.legs[0].net == 5 and m.legs[1].net == 5
    assert m.legs[0].replenishes + m.legs[1].replenishes >= 2


def test_partial_fills_left_short_by_the_budget_unwind_the_excess_only() -> None:
    # A fills 2 of 3; B is always refused after its first partial 1: the pair rolls A back to 1
    book = PairBook(INSTRUMENTS, SimClock())
    _, cmds = book.submit(intent(a=("SHFE.cu", "BUY", 3, "72000"), b=("LME.CA3M", "SELL", 3, "9800"),
                                 mode=ExecutionMode.SPEED, replenish=ReplenishBudget(max_attempts=0)))
    cmds = book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED),
                                           fill("d1:A:0", 2, 2, "t1", status=OrderStatus.PARTIALLY_FILLED),
                                           rep("d1:A:0", ExecReportKind.CANCELED, OrderStatus.CANCELED, filled=2)])
    cmds += book.on_place_result("d1:B:0", [
        rep("d1:B:0", ExecReportKind.ACK, OrderStatus.ACCEPTED, "LME", "LME.CA3M"),
        fill("d1:B:0", 1, 1, "t2", "LME", "LME.CA3M", OrderStatus.PARTIALLY_FILLED, "9800"),
        rep("d1:B:0", ExecReportKind.CANCELED, OrderStatus.CANCELED, "LME", "LME.CA3M", filled=1)])
    unwind = only(cmds, Place)
    assert len(unwind) == 1 and unwind[0].req.leg == "A" and unwind[0].req.qty == 1 and unwind[0].req.side is Side.SELL
    cmds = book.on_place_result(unwind[0].req.client_order_id, [
        rep(unwind[0].req.client_order_id, ExecReportKind.ACK, OrderStatus.ACCEPTED),
        fill(unwind[0].req.client_order_id, 1, 1, "t3")])
    assert book.pairs["d1"].state is PairState.HEDGED
    assert book.pair("d1")["complete"] is False and leg(book.pair("d1"), "A")["net_qty"] == 1


def test_cancel_racing_a_fill_is_reconciled_by_query_and_hedges() -> None:
    # Arrange: price priority; A fills at once, B rests, goes stale and is cancelled to replenish
    book = PairBook(INSTRUMENTS, clock := SimClock())
    book.submit(intent())
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")])
    book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.ACK, OrderStatus.ACCEPTED, "LME", "LME.CA3M")])
    clock.advance(600_000_000)
    cmds = book.on_timer("d1", "stale:d1:B:0")
    assert [c.client_order_id for c in only(cmds, Cancel)] == ["d1:B:0"]
    # Act: the fill wins the race; the venue refuses the cancel as too late
    cmds = book.on_cancel_result("d1:B:0", rep("d1:B:0", ExecReportKind.CANCEL_REJECTED, OrderStatus.FILLED, "LME",
                                               "LME.CA3M", reason=RejectReason.TOO_LATE_TO_CANCEL))
    # Assert: no re-send before the order's real state is known
    assert not only(cmds, Place) and [c.client_order_id for c in only(cmds, Query)] == ["d1:B:0"]
    cmds = book.on_reports([fill("d1:B:0", 2, 2, "t2", "LME", "LME.CA3M", price="9800")])
    cmds += book.on_query_result("d1:B:0", rep("d1:B:0", ExecReportKind.STATUS, OrderStatus.FILLED, "LME", "LME.CA3M",
                                               filled=2))
    assert book.pairs["d1"].state is PairState.HEDGED
    assert not only(cmds, Place)


def test_replenish_waits_for_the_cancel_confirmation_before_resending() -> None:
    book = PairBook(INSTRUMENTS, clock := SimClock())
    book.submit(intent())
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")])
    book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.ACK, OrderStatus.ACCEPTED, "LME", "LME.CA3M")])
    clock.advance(600_000_000)
    cmds = book.on_timer("d1", "stale:d1:B:0")
    assert not only(cmds, Place)
    cmds = book.on_cancel_result("d1:B:0", rep("d1:B:0", ExecReportKind.CANCELED, OrderStatus.CANCELED, "LME", "LME.CA3M"))
    places = only(cmds, Place)
    assert [p.req.client_order_id for p in places] == ["d1:B:1"]


def test_fill_after_a_confirmed_cancel_on_a_hedged_pair_is_rolled_back() -> None:
    # Arrange: A overfills through a late fill once the pair is hedged
    book = PairBook(INSTRUMENTS, clock := SimClock())
    book.submit(intent())
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED),
                                    fill("d1:A:0", 1, 1, "t1", status=OrderStatus.PARTIALLY_FILLED)])
    book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.ACK, OrderStatus.ACCEPTED, "LME", "LME.CA3M"),
                                    fill("d1:B:0", 2, 2, "t2", "LME", "LME.CA3M", price="9800")])
    clock.advance(600_000_000)
    book.on_timer("d1", "stale:d1:A:0")
    cmds = book.on_cancel_result("d1:A:0", rep("d1:A:0", ExecReportKind.CANCELED, OrderStatus.CANCELED, filled=1))
    a1 = only(cmds, Place)[0].req
    book.on_place_result(a1.client_order_id, [rep(a1.client_order_id, ExecReportKind.ACK, OrderStatus.ACCEPTED),
                                              fill(a1.client_order_id, 1, 1, "t3")])
    assert book.pairs["d1"].state is PairState.HEDGED
    # Act: the venue reports one more lot on the cancelled order
    cmds = book.on_reports([fill("d1:A:0", 1, 2, "t4")])
    # Assert
    assert book.pairs["d1"].state is PairState.ROLLING_BACK
    unwind = only(cmds, Place)
    assert len(unwind) == 1 and unwind[0].req.side is Side.SELL and unwind[0].req.qty == 1
    book.on_place_result(unwind[0].req.client_order_id, [
        rep(unwind[0].req.client_order_id, ExecReportKind.ACK, OrderStatus.ACCEPTED),
        fill(unwind[0].req.client_order_id, 1, 1, "t5")])
    assert book.pairs["d1"].state is PairState.HEDGED and book.pair("d1")["complete"]


def test_failed_place_call_is_resolved_by_query_before_anything_is_resent() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    book.submit(intent())
    cmds = book.on_call_failed("d1:A:0", "place", "ActorDiedError")
    assert not only(cmds, Place) and [q.client_order_id for q in only(cmds, Query)] == ["d1:A:0"]
    assert book.pair("d1")["orders"][0]["status"] == "UNKNOWN"
    cmds = book.on_query_result("d1:A:0", rep("d1:A:0", ExecReportKind.STATUS, OrderStatus.FILLED, filled=2,
                                              avg_price=Decimal("72000")))
    assert leg(book.pair("d1"), "A")["net_qty"] == 2


def test_query_saying_the_venue_never_saw_the_order_resends_it_under_the_same_id() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    book.submit(intent())
    book.on_call_failed("d1:A:0", "place", "ActorUnavailableError")
    cmds = book.on_query_result("d1:A:0", None)
    assert [p.req.client_order_id for p in only(cmds, Place)] == ["d1:A:0"]


def test_a_not_found_answer_to_a_query_overtaken_by_the_orders_fill_keeps_the_fill() -> None:
    # the ack timed out and the order was queried; its place answer (ACK, FILL) then came in, and
    # only after it the query's answer, "never saw it": stale, the fill stands and nothing is re-sent
    from xmc_actors.core.pair.commands import TimerKey, TimerKind
    book = PairBook(INSTRUMENTS, SimClock())
    book.submit(intent())
    cmds = book.on_timer("d1", TimerKey(TimerKind.ACK, "d1:A:0"))
    assert [q.client_order_id for q in only(cmds, Query)] == ["d1:A:0"]
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")])
    book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.ACK, OrderStatus.ACCEPTED, "LME", "LME.CA3M"),
                                    fill("d1:B:0", 2, 2, "t2", "LME", "LME.CA3M")])
    cmds = book.on_query_result("d1:A:0", None)
    assert not only(cmds, Place)
    assert book.pairs["d1"].state is PairState.HEDGED and leg(book.pair("d1"), "A")["net_qty"] == 2
    stale = [e for e in book.sink.events if e.kind is EventKind.RECONCILE]
    assert stale and stale[-1].payload["action"] == "stale_not_found" and stale[-1].payload["status"] == "FILLED"


def test_silent_venue_escalates_with_the_unknown_order_in_the_residual() -> None:
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(silent_after_ms=0.0)})
    h.submit(intent(mode=ExecutionMode.SPEED))
    h.drain()
    m = h.book.pairs["d1"]
    assert m.state is PairState.ESCALATED
    esc = [e for e in h.sink.by_decision("d1") if e.kind is EventKind.ESCALATION][-1]
    assert esc.payload["residual"]["legs"]["B"]["unknown_orders"] == ["d1:B:0"]
    assert esc.payload["residual"]["legs"]["A"]["net"] == 2
    assert any(e.kind is EventKind.ALERT and e.payload["level"] == "red" for e in h.sink.by_decision("d1"))
    assert h.halts and h.halts[0].strategy == "s1"
    # the strategy is halted in the coordinator too: its next pair is refused
    res = h.submit(intent("d2"))
    assert res["accepted"] is False and "HALTED" in res["reason"]


def test_a_late_unknown_status_of_an_order_already_settled_changes_nothing() -> None:
    """Seen in the chaos suite: a place call timed out, its query said CANCELED, then the
    call's own answer came back UNKNOWN; it was counted as bad input (illegal transition)."""
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(reject=1.0, reject_reasons=(RejectReason.LIMIT_LOCKED,))})
    h.submit(intent(mode=ExecutionMode.SPEED))
    h.drain()
    m = h.book.pairs["d1"]
    b0 = m.by_name["B"].orders[0]
    assert b0.state.status is OrderStatus.REJECTED
    n = len(h.sink.events)
    h.book.on_reports([rep("d1:B:0", ExecReportKind.STATUS, OrderStatus.UNKNOWN, "LME", "LME.CA3M")])
    assert b0.state.status is OrderStatus.REJECTED and not h.book.bad_inputs
    assert [e.kind for e in h.sink.events[n:]] == [EventKind.ORDER_REPORT]  # recorded as it came


def test_escalated_pair_learns_the_unknown_orders_outcome_from_a_reconciled_status() -> None:
    # Arrange: leg B's venue went silent, the pair is escalated with d1:B:0 unknown
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(silent_after_ms=0.0)})
    h.submit(intent(mode=ExecutionMode.SPEED))
    h.drain()
    assert h.book.pairs["d1"].residual["legs"]["B"]["unknown_orders"] == ["d1:B:0"]
    # Act: the restarted gateway pushes the venue's word: B was filled (2 lots)
    n = len(h.sink.events)
    cmds = h.book.on_reports([rep("d1:B:0", ExecReportKind.STATUS, OrderStatus.FILLED, "LME", "LME.CA3M",
                                  filled=2, avg_price=Decimal("9800"))])
    # Assert: still ESCALATED (an operator closes it), residual restated, exposure re-published
    m = h.book.pairs["d1"]
    assert m.state is PairState.ESCALATED
    legs = m.residual["legs"]
    assert legs["B"]["unknown_orders"] == [] and legs["B"]["net"] == 2 and legs["A"]["residual"] == 0
    [done] = only(cmds, NotifyDone)
    assert done.summary.leg("B").filled_qty == 2 and done.summary.state == "ESCALATED"
    [restated] = [e for e in h.sink.events[n:] if e.kind is EventKind.ESCALATION]
    assert restated.reason == "residual changed" and restated.payload["residual"] == m.residual
    assert not only(cmds, Place)  # nothing is sent on an escalated pair


def test_only_the_newest_finished_pairs_stay_in_memory_but_every_decision_id_stays_a_duplicate() -> None:
    # Arrange: keep 3 finished pairs; d0 escalates (silent LME), d1..d5 hedge
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(silent_after_ms=0.0)},
                config=CoordinatorConfig(call_timeout_ms=50, ack_timeout_ms=20, cancel_timeout_ms=20,
                                         keep_finished_pairs=3))
    h.submit(intent("d0", mode=ExecutionMode.SPEED, strategy="s0"))
    h.drain()
    assert h.book.pairs["d0"].state is PairState.ESCALATED
    h.venues["LME"].b = FILLS
    # Act
    for i in range(1, 6):
        h.submit(intent(f"d{i}"))
        h.drain()
    # Assert: d1, d2 forgotten (ids kept), the newest three and the escalated d0 held whole
    assert sorted(h.book.pairs) == ["d0", "d3", "d4", "d5"]
    assert {h.book.pairs[d].state for d in ("d3", "d4", "d5")} == {PairState.HEDGED}
    assert set(h.book.forgotten) == {"d1", "d2"}
    assert not any(c.startswith(("d1:", "d2:")) for c in h.book.index)
    res = h.submit(intent("d1"))  # the same intent again: still executes once
    assert res["duplicate"] is True and "no longer held" in res["reason"]
    assert sorted(h.book.pairs) == ["d0", "d3", "d4", "d5"]


def test_an_intent_whose_deadline_has_passed_is_refused_before_any_order() -> None:
    clock = SimClock()
    book = PairBook(INSTRUMENTS, clock)
    res, cmds = book.submit(intent("late", deadline_ns=clock.now_ns() - 3_000_000))
    assert res["accepted"] is False and res["state"] == "REFUSED"
    assert res["reason"].startswith("DEADLINE_PASSED: the intent's deadline was 3.0 ms before")
    assert not only(cmds, Place) and only(cmds, NotifyDone)[0].summary.state == "REFUSED"
    res, cmds = book.submit(intent("fresh", deadline_ns=clock.now_ns() + 1))
    assert res["accepted"] is True and len(only(cmds, Place)) == 2


def test_an_intent_held_up_past_its_start_by_is_refused_stale_and_a_known_one_is_answered() -> None:
    """Found by the chaos suite: a submit in flight when the coordinator was killed reached the
    restarted one 3.7 s after its signal and ran on those prices (leg B filled, leg A missed,
    leg B's unwinds capped from the stale trigger: escalated)."""
    clock = SimClock()
    book = PairBook(INSTRUMENTS, clock)
    res, cmds = book.submit(intent("held", start_by_ns=clock.now_ns() - 1_700_000_000,
                                   deadline_ns=clock.now_ns() + 6_000_000_000))
    assert res["accepted"] is False and res["state"] == "REFUSED"
    assert res["reason"].startswith("STALE_DECISION: its orders were to leave by 1700.0 ms ago")
    assert not only(cmds, Place) and only(cmds, NotifyDone)[0].summary.state == "REFUSED"
    res, cmds = book.submit(intent("fresh", start_by_ns=clock.now_ns() + 1))
    assert res["accepted"] is True and len(only(cmds, Place)) == 2
    # the same decision sent again once its start-by has passed: answered, not refused
    clock.advance(5 * 1_000_000)
    res, cmds = book.submit(intent("fresh", start_by_ns=clock.now_ns() - 4_000_000))
    assert res["duplicate"] is True and res["accepted"] is True and not only(cmds, Place)


def test_a_fill_for_a_forgotten_pair_escalates_it_and_pushes_its_lots_once() -> None:
    # Arrange: keep 1 finished pair; d1 hedges, then d2 hedges and d1 leaves memory
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS},
                config=CoordinatorConfig(call_timeout_ms=50, ack_timeout_ms=20, cancel_timeout_ms=20,
                                         keep_finished_pairs=1))
    for did in ("d1", "d2"):
        h.submit(intent(did, strategy="s1"))
        h.drain()
    assert "d1" not in h.book.pairs and h.book.forgotten["d1"].state is PairState.HEDGED
    done_before = len(h.done)
    # Act: the venue still fills 1 lot of d1's leg A (BUY SHFE.cu), pushes it twice, then a cancel
    late = fill("d1:A:0", 1, 3, "T-late")
    cmds = h.book.on_reports([late])
    again = h.book.on_reports([late])
    other = h.book.on_reports([rep("d1:A:0", ExecReportKind.CANCELED, OrderStatus.CANCELED)])
    h.run(cmds + again + other)
    # Assert: escalated as a live pair would be, the strategy halted, its lots pushed once
    evs = h.sink.by_decision("d1")
    alert = next(e for e in evs if e.kind is EventKind.ALERT)
    assert alert.payload["level"] == "red" and alert.payload["residual"] == {"A": 1}
    assert "late fill: BUY 1 SHFE.cu @ 72000 on d1:A:0" in alert.reason
    assert [e.payload["to"] for e in evs if e.kind is EventKind.PAIR_STATE][-1] == "ESCALATED"
    assert h.book.forgotten["d1"].state is PairState.ESCALATED
    assert [x.strategy for x in only(cmds, HaltStrategy)] == ["s1"] and not only(again + other, HaltStrategy)
    assert h.book.trading[("strategy", "s1")].value == "HALTED"
    pushed = h.done[done_before:]
    assert len(pushed) == 1 and pushed[0]["incremental"] is True and pushed[0]["state"] == "ESCALATED"
    assert pushed[0]["trade_id"] == "T-late"
    [lg] = PairSummary.model_validate(pushed[0]).legs
    assert (lg.leg, lg.instrument, lg.side, lg.filled_qty, lg.rollback_qty, lg.avg_price, lg.rollback_avg_price,
            lg.net_qty) == ("A", "SHFE.cu", Side.BUY, 1, 0, Decimal("72000"), None, 1)
    # every report is on the pair's trail, none of them is bad input
    reports = [e for e in evs if e.kind is EventKind.ORDER_REPORT and e.payload.get("forgotten")]
    assert [(e.payload["report_kind"], e.payload["late_fill"]) for e in reports] == [
        ("FILL", True), ("FILL", False), ("CANCELED", False)]
    assert not [e for e in h.sink.events if e.kind is EventKind.BAD_INPUT]


def test_a_fill_for_a_forgotten_pair_on_a_leg_it_never_had_is_bad_input_and_changes_nothing() -> None:
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS},
                config=CoordinatorConfig(keep_finished_pairs=1))
    for did in ("d1", "d2"):
        h.submit(intent(did))
        h.drain()
    cmds = h.book.on_reports([fill("d1:A:0", 1, 3, "T9", venue="LME", inst="LME.CA3M")])
    assert not only(cmds, NotifyDone) and not only(cmds, HaltStrategy)
    h.run(cmds)
    bad = [e for e in h.sink.events if e.kind is EventKind.BAD_INPUT]
    assert len(bad) == 1 and "not a leg of forgotten pair d1" in bad[0].reason
    assert h.book.forgotten["d1"].state is PairState.HEDGED


def test_new_pairs_on_a_venue_that_is_down_are_refused_and_accepted_once_it_is_up() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    book.set_venue_state("LME", False, "gateway lost: node gone")

    res, cmds = book.submit(intent("d1"))

    assert res["accepted"] is False and res["reason"] == "VENUE_DOWN: LME (gateway lost: node gone)"
    assert not only(cmds, Place)
    assert book.status()["venues_down"] == {"LME": "gateway lost: node gone"}
    book.set_venue_state("LME", True)
    res, cmds = book.submit(intent("d2"))
    assert res["accepted"] is True and len(only(cmds, Place)) == 2


def test_a_gateway_carrying_an_account_routes_its_legs_and_only_its_outage_refuses_them() -> None:
    # Arrange: LME has a default gateway and one carrying account "us-2"
    book = PairBook(INSTRUMENTS, SimClock())
    book.account_routes.add("LME/us-2")
    assert book.route_of("LME", "us-2") == "LME/us-2" and book.route_of("LME", "us") == "LME"
    # Act: the us-2 gateway is down
    book.set_venue_state("LME/us-2", False, "session lost")
    refused, _ = book.submit(intent("d1", accounts=("cn", "us-2")))
    accepted, cmds = book.submit(intent("d2", accounts=("cn", "us")))
    # Assert: only pairs through that gateway are refused, by its key
    assert refused["accepted"] is False and refused["reason"] == "VENUE_DOWN: LME/us-2 (session lost)"
    assert accepted["accepted"] is True and [c.req.account for c in only(cmds, Place)] == ["cn", "us"]


def test_cancels_and_queries_carry_the_legs_account_so_they_reach_the_gateway_that_has_the_order() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    book.submit(intent(accounts=("cn", "us-2")))
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")])
    book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.ACK, OrderStatus.ACCEPTED, "LME", "LME.CA3M")])
    cmds = book.set_trading_state("global", "", "HALTED", operator="ops")
    assert [(c.venue, c.account) for c in only(cmds, Cancel)] == [("LME", "us-2")]


def test_halt_mid_pair_cancels_working_orders_and_escalates_the_residual() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    book.submit(intent())
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")])
    book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.ACK, OrderStatus.ACCEPTED, "LME", "LME.CA3M")])
    cmds = book.set_trading_state("global", "", "HALTED", operator="ops")
    assert [c.client_order_id for c in only(cmds, Cancel)] == ["d1:B:0"]
    cmds = book.on_cancel_result("d1:B:0", rep("d1:B:0", ExecReportKind.CANCELED, OrderStatus.CANCELED, "LME", "LME.CA3M"))
    assert not only(cmds, Place)  # no unwind under HALTED
    assert book.pairs["d1"].state is PairState.ESCALATED
    assert book.pairs["d1"].residual["legs"]["A"]["residual"] == 2


def test_reducing_state_refuses_new_pairs_but_lets_the_rollback_through() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    book.submit(intent())
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")])
    book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.ACK, OrderStatus.ACCEPTED, "LME", "LME.CA3M")])
    book.set_trading_state("strategy", "s1", "REDUCING")
    cmds = book.on_cancel_result("d1:B:0", rep("d1:B:0", ExecReportKind.CANCELED, OrderStatus.CANCELED, "LME", "LME.CA3M"))
    unwind = only(cmds, Place)
    assert len(unwind) == 1 and unwind[0].req.reduce_only and unwind[0].req.leg == "A"
    res, _ = book.submit(intent("d2"))
    assert res["accepted"] is False and "REDUCING" in res["reason"]


def test_quantity_priority_sizes_to_the_smaller_visible_liquidity() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    it = intent(a=("SHFE.cu", "BUY", 5, "72000"), b=("LME.CA3M", "SELL", 5, "9800"), mode=ExecutionMode.QUANTITY)
    res, cmds = book.submit(it, liquidity={"A": 7, "B": 3})
    assert res["accepted"]
    assert [(p.req.leg, p.req.qty, p.req.order_type) for p in only(cmds, Place)] == [
        ("A", 3, OrderType.IOC), ("B", 3, OrderType.IOC)]


def test_quantity_priority_without_liquidity_is_refused() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    res, cmds = book.submit(intent(mode=ExecutionMode.QUANTITY))
    assert res["accepted"] is False and "NO_LIQUIDITY" in res["reason"] and not only(cmds, Place)


def test_lead_lag_sends_the_less_liquid_leg_first_and_hedges_each_fill() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    it = testkit.pair_intent("d1", a=A, b=B, mode=ExecutionMode.LEAD_LAG)
    it = it.model_copy(update={"legs": (it.legs[0].model_copy(update={"visible_qty": 50}),
                                        it.legs[1].model_copy(update={"visible_qty": 4}))})
    _, cmds = book.submit(it)
    assert [p.req.leg for p in only(cmds, Place)] == ["B"]  # LME thinner: it leads
    cmds = book.on_place_result("d1:B:0", [
        rep("d1:B:0", ExecReportKind.ACK, OrderStatus.ACCEPTED, "LME", "LME.CA3M"),
        fill("d1:B:0", 1, 1, "t1", "LME", "LME.CA3M", OrderStatus.PARTIALLY_FILLED, "9800")])
    hedge = only(cmds, Place)
    assert [(p.req.leg, p.req.qty, p.req.order_type) for p in hedge] == [("A", 1, OrderType.IOC)]
    cmds = book.on_place_result(hedge[0].req.client_order_id, [
        rep(hedge[0].req.client_order_id, ExecReportKind.ACK, OrderStatus.ACCEPTED), fill(hedge[0].req.client_order_id, 1, 1, "t2")])
    cmds = book.on_reports([fill("d1:B:0", 1, 2, "t3", "LME", "LME.CA3M", OrderStatus.FILLED, "9800")])
    hedge = only(cmds, Place)
    assert [(p.req.leg, p.req.qty) for p in hedge] == [("A", 1)]
    book.on_place_result(hedge[0].req.client_order_id, [
        rep(hedge[0].req.client_order_id, ExecReportKind.ACK, OrderStatus.ACCEPTED), fill(hedge[0].req.client_order_id, 1, 1, "t4")])
    assert book.pairs["d1"].state is PairState.HEDGED


def test_sequential_sends_leg_a_alone_and_leg_b_only_once_a_is_filled_in_full() -> None:
    """The lab's baseline (分端操作): A first, whatever the liquidity; B waits for all of A."""
    book = PairBook(INSTRUMENTS, SimClock())
    it = testkit.pair_intent("d1", a=A, b=B, mode=ExecutionMode.SEQUENTIAL)
    it = it.model_copy(update={"legs": (it.legs[0].model_copy(update={"visible_qty": 50}),
                                        it.legs[1].model_copy(update={"visible_qty": 4}))})
    _, cmds = book.submit(it)
    first = only(cmds, Place)
    assert [(p.req.leg, p.req.qty, p.req.order_type) for p in first] == [("A", 2, OrderType.LIMIT)]
    # a partial fill of A sends nothing on B (lead-lag would hedge it at once)
    cmds = book.on_place_result("d1:A:0", [
        rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED),
        fill("d1:A:0", 1, 1, "t1", status=OrderStatus.PARTIALLY_FILLED)])
    assert not only(cmds, Place)
    # A complete: B goes, for the whole hedge, as an IOC at the slippage cap
    cmds = book.on_reports([fill("d1:A:0", 1, 2, "t2")])
    hedge = only(cmds, Place)
    assert [(p.req.leg, p.req.qty, p.req.order_type) for p in hedge] == [("B", 2, OrderType.IOC)]
    coid = hedge[0].req.client_order_id
    book.on_place_result(coid, [rep(coid, ExecReportKind.ACK, OrderStatus.ACCEPTED, "LME", "LME.CA3M"),
                                fill(coid, 2, 2, "t3", "LME", "LME.CA3M", price="9800")])
    assert book.pairs["d1"].state is PairState.HEDGED


def test_sequential_never_hedges_a_first_leg_that_did_not_fill_and_rolls_back_a_partial() -> None:
    clock = SimClock()
    book = PairBook(INSTRUMENTS, clock)
    _, cmds = book.submit(testkit.pair_intent("d1", a=A, b=B, mode=ExecutionMode.SEQUENTIAL, deadline_ns=clock.now_ns() + 1_000 * MS))
    assert [p.req.leg for p in only(cmds, Place)] == ["A"]
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED),
                                    fill("d1:A:0", 1, 1, "t1", status=OrderStatus.PARTIALLY_FILLED)])
    clock.advance(1_000 * MS)
    cmds = book.on_timer("d1", "deadline")
    assert [c.client_order_id for c in only(cmds, Cancel)] == ["d1:A:0"] and not only(cmds, Place)
    cmds = book.on_cancel_result("d1:A:0", rep("d1:A:0", ExecReportKind.CANCELED, OrderStatus.CANCELED, filled=1))
    unwind = only(cmds, Place)
    assert [(p.req.leg, p.req.side.value, p.req.qty) for p in unwind] == [("A", "SELL", 1)]  # undone, never hedged


def test_bad_intent_is_refused_recorded_and_sends_nothing() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    res, cmds = book.submit(intent(a=("SHFE.cu", "BUY", 2, "72005")))  # off the 10-yuan tick
    assert res["accepted"] is False and "legs[0].limit_price" in res["reason"]
    assert not only(cmds, Place)
    bad = [e for e in book.sink.events if e.kind is EventKind.BAD_INPUT]
    assert bad and "tick" in bad[0].reason
    res, cmds = book.submit({"decision_id": "x", "strategy": "s", "legs": []})
    assert res["accepted"] is False and res["reason"].startswith("BAD_INPUT legs")
    assert book.status()["bad_input"]["intent"] == 2


def test_risk_denial_refuses_the_pair_and_tells_the_strategy() -> None:
    class DenyAll:
        def check_pair(self, intent, now_ns):  # noqa: ANN001, ANN201
            return PreTradeResult(False, (Denial("NOTIONAL_EXCEEDS_MAX", "notional=1 max=0"),))

        def allows_order(self, *a):  # noqa: ANN002, ANN201
            return None

        def on_order_done(self, *a):  # noqa: ANN002, ANN201
            pass

        def update_grant(self, grant):  # noqa: ANN001, ANN201
            pass
    book = PairBook(INSTRUMENTS, SimClock(), checker=DenyAll())
    res, cmds = book.submit(intent())
    assert res["state"] == "REFUSED" and "NOTIONAL_EXCEEDS_MAX" in res["reason"]
    assert not only(cmds, Place)
    done = only(cmds, NotifyDone)
    assert done and done[0].summary.state == "REFUSED"


def test_every_order_is_checked_including_replenish_and_rollback() -> None:
    seen: list[tuple[str, bool]] = []

    class Recorder:
        def check_pair(self, intent, now_ns):  # noqa: ANN001, ANN201
            return PreTradeResult(True)

        def allows_order(self, strategy, venue, instrument, reduce_only, now_ns):  # noqa: ANN001, ANN201
            seen.append((instrument, reduce_only))
            return None

        def on_order_done(self, *a):  # noqa: ANN002, ANN201
            pass

        def update_grant(self, grant):  # noqa: ANN001, ANN201
            pass
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(reject=1.0)}, checker=Recorder())
    h.submit(intent(mode=ExecutionMode.SPEED))
    h.drain()
    assert len(seen) == len(h.placed)
    assert ("SHFE.cu", True) in seen


def test_report_for_an_unknown_order_is_bad_input_and_changes_nothing() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    assert book.on_reports([rep("nope:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED)]) == []
    assert [e.kind for e in book.sink.events] == [EventKind.BAD_INPUT]
    assert book.status()["bad_input"] == {"report": 1}


def test_bad_input_the_shell_met_is_counted_and_recorded_as_the_books_own() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    assert book.refuse_input("roll", "request: a dict, not a RollRequest", "r1") == []
    [ev] = book.sink.events
    assert ev.kind is EventKind.BAD_INPUT and ev.decision_id == "r1" and ev.reason.startswith("roll: request: a dict")
    assert book.status()["bad_input"] == {"roll": 1}


def test_trail_holds_every_state_change_order_and_report_under_the_decision_id() -> None:
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    h.submit(intent())
    h.drain()
    k = kinds(h)
    assert k.count("ORDER_SENT") == 2 and k.count("ORDER_REPORT") == 4 and k.count("PAIR_STATE") == 3
    assert all(e.decision_id == "d1" for e in h.sink.events)


def test_pair_state_events_carry_the_state_the_ledger_lifts_into_its_outcome_column() -> None:
    # a real run's PAIR_STATE events must fill the ledger's outcome column (xmc audit query
    # --outcome, the report's outcome chart): the convention is payload["state"]
    from xmc_actors.ledger.schema import lift

    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    h.submit(intent())
    h.drain()
    outcomes = [lift(e.kind.value, e.payload)[1] for e in h.sink.by_decision("d1") if e.kind is EventKind.PAIR_STATE]
    assert outcomes == ["NEW", "WORKING", "HEDGED"]


def test_filled_order_reports_carry_price_and_trigger_for_the_ledgers_slippage() -> None:
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    h.submit(intent())
    h.drain()
    filled = [e.payload for e in h.sink.by_decision("d1")
              if e.kind is EventKind.ORDER_REPORT and e.payload["status"] == "FILLED"]
    assert {p["client_order_id"].split(":")[1] for p in filled} == {"A", "B"}
    for p in filled:
        assert p["price"] is not None and p["ref_price"] is not None and p["side"] in ("BUY", "SELL")


# -- an order the venue holds but never acknowledged; the wind-down's bound ---------------------
def _a_filled_b_unknown_winding_down(config: CoordinatorConfig | None = None):  # noqa: ANN202
    """A filled; B's place call died with its gateway (UNKNOWN, queried); the deadline passes."""
    from xmc_actors.core.pair.commands import TimerKey, TimerKind
    book = PairBook(INSTRUMENTS, clock := SimClock(), config=config or CoordinatorConfig())
    book.submit(intent())
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")])
    cmds = book.on_call_failed("d1:B:0", "place", "ActorDiedError")
    assert [q.client_order_id for q in only(cmds, Query)] == ["d1:B:0"]
    clock.advance(6_000 * MS)
    cmds = book.on_timer("d1", TimerKey(TimerKind.DEADLINE))
    assert book.pairs["d1"].state is PairState.WINDING_DOWN
    return book, clock, cmds


def test_a_query_answering_submitted_while_winding_down_cancels_the_order_and_rolls_back() -> None:
    """Found by the chaos suite (per-venue, seed 12): the LME gateway died before its ack; the
    restarted gateway found the order in the venue's journal, never acknowledged, and answered
    SUBMITTED. UNKNOWN -> SUBMITTED was not an edge: every answer was refused as bad input, the
    order stayed UNKNOWN and the pair stayed open and one-legged, never escalated."""
    book, _, _ = _a_filled_b_unknown_winding_down()
    # Act: the venue holds B, unacknowledged
    cmds = book.on_query_result("d1:B:0", rep("d1:B:0", ExecReportKind.STATUS, OrderStatus.SUBMITTED, "LME",
                                              "LME.CA3M"))
    # Assert: live again and cancelled (a live order is never left resting in a wind-down)
    assert [c.client_order_id for c in only(cmds, Cancel)] == ["d1:B:0"]
    assert not [e for e in book.sink.events if e.kind is EventKind.BAD_INPUT]
    book.on_cancel_result("d1:B:0", rep("d1:B:0", ExecReportKind.CANCELED, OrderStatus.CANCELED, "LME", "LME.CA3M"))
    m = book.pairs["d1"]
    assert m.state is PairState.ROLLING_BACK
    unwind = [o for o in m.by_name["A"].orders if o.unwind]
    assert [(o.state.request.side, o.state.request.qty) for o in unwind] == [(Side.SELL, 2)]


def test_a_query_answering_submitted_while_working_asks_again_when_no_ack_comes() -> None:
    from xmc_actors.core.pair.commands import TimerKind
    from xmc_actors.core.pair_fsm import StartTimer
    book = PairBook(INSTRUMENTS, SimClock())
    book.submit(intent())
    book.on_call_failed("d1:B:0", "place", "ActorDiedError")
    cmds = book.on_query_result("d1:B:0", rep("d1:B:0", ExecReportKind.STATUS, OrderStatus.SUBMITTED, "LME",
                                              "LME.CA3M"))
    assert book.pair("d1")["orders"][1]["status"] == "SUBMITTED"
    assert [(t.key.kind, t.key.coid) for t in only(cmds, StartTimer)] == [(TimerKind.ACK, "d1:B:0")]
    cmds = book.on_timer("d1", "ack:d1:B:0")
    assert [q.client_order_id for q in only(cmds, Query)] == ["d1:B:0"]


def test_an_answer_that_cannot_be_applied_counts_as_a_failed_query_and_ends_escalated() -> None:
    from xmc_actors.core.pair.commands import TimerKind
    from xmc_actors.core.pair_fsm import StartTimer
    config = CoordinatorConfig(query_retries=3, query_window_ms=0)
    book, clock, _ = _a_filled_b_unknown_winding_down(config)
    bad = rep("d1:B:0", ExecReportKind.STATUS, OrderStatus.NEW, "LME", "LME.CA3M")  # UNKNOWN -> NEW: no edge
    retries = book.config.query_retries
    for n in range(1, retries):
        cmds = book.on_query_result("d1:B:0", bad)
        # recorded as bad input, and the order is asked about again after a backoff
        assert [(t.key.kind, t.key.n) for t in only(cmds, StartTimer)] == [(TimerKind.QUERY, n)]
        assert [q.client_order_id for q in only(book.on_timer("d1", f"query:d1:B:0:{n}"), Query)] == ["d1:B:0"]
    book.on_query_result("d1:B:0", bad)
    m = book.pairs["d1"]
    assert m.state is PairState.ESCALATED and "outcome unknown" in m.reason
    assert len([e for e in book.sink.events if e.kind is EventKind.BAD_INPUT]) == retries


def _fail_queries_until(book, clock, coid: str, until_ns: int) -> int:
    """The gateway is unreachable: every query of ``coid`` fails, each retry is run when its
    timer falls due, until ``until_ns`` or the pair ends; returns how many failed."""
    from xmc_actors.core.pair_fsm import StartTimer
    n = 0
    cmds = book.on_call_failed(coid, "query", "ActorUnavailableError")
    while True:
        n += 1
        timers = [t for t in only(cmds, StartTimer) if t.key.coid == coid]
        if not timers or timers[-1].at_ns > until_ns:
            return n
        clock.set(timers[-1].at_ns)
        assert [q.client_order_id for q in only(book.on_timer("d1", timers[-1].key), Query)] == [coid]
        cmds = book.on_call_failed(coid, "query", "ActorUnavailableError")


def test_a_gateway_away_for_less_than_the_query_window_escalates_nothing_and_its_answer_ends_the_pair() -> None:
    config = CoordinatorConfig(query_retries=3, query_backoff_ms=20, query_backoff_max_ms=2_000, query_window_ms=12_000)
    book, clock, _ = _a_filled_b_unknown_winding_down(config)
    t0 = clock.now_ns()
    # Act: B's gateway restarts for 8 s; every query meanwhile fails (more than query_retries)
    failed = _fail_queries_until(book, clock, "d1:B:0", t0 + 8_000 * MS)
    # Assert: many failures, still not escalated, and never a wait longer than the cap
    assert failed > config.query_retries
    assert book.pairs["d1"].state is PairState.WINDING_DOWN
    # the venue's word, once the gateway is back: B was never filled, the pair rolls A back
    book.on_query_result("d1:B:0", rep("d1:B:0", ExecReportKind.STATUS, OrderStatus.CANCELED, "LME", "LME.CA3M"))
    assert book.pairs["d1"].state is not PairState.ESCALATED
    assert book.pairs["d1"]._find("d1:B:0")[1].query_failed_since_ns is None


def test_a_gateway_away_past_the_query_window_escalates_the_pair_naming_how_long_it_tried() -> None:
    from xmc_actors.core.pair_fsm import StartTimer
    config = CoordinatorConfig(query_retries=3, query_backoff_ms=20, query_backoff_max_ms=2_000, query_window_ms=12_000,
                               wind_down_timeout_ms=60_000)
    book, clock, _ = _a_filled_b_unknown_winding_down(config)
    t0 = clock.now_ns()
    failed = _fail_queries_until(book, clock, "d1:B:0", t0 + 60_000 * MS)
    m = book.pairs["d1"]
    assert m.state is PairState.ESCALATED
    assert f"outcome unknown after {failed} failed queries over" in m.reason
    # it gave up at the window's end, not before and not a backoff cap later
    assert 12_000 * MS <= clock.now_ns() - t0 < (12_000 + 2_000) * MS


def test_a_pair_still_winding_down_at_its_bound_is_escalated_naming_the_order() -> None:
    from xmc_actors.core.pair.commands import TimerKey, TimerKind
    from xmc_actors.core.pair_fsm import StartTimer
    config = CoordinatorConfig(wind_down_timeout_ms=7_000)
    book, clock, cmds = _a_filled_b_unknown_winding_down(config)
    # the bound is armed as the wind-down begins
    [bound] = [t for t in only(cmds, StartTimer) if t.key.kind is TimerKind.WIND_DOWN]
    assert bound.at_ns == clock.now_ns() + 7_000 * MS
    # Act: B's query never comes back; the bound passes
    clock.set(bound.at_ns)
    cmds = book.on_timer("d1", TimerKey(TimerKind.WIND_DOWN))
    # Assert
    m = book.pairs["d1"]
    assert m.state is PairState.ESCALATED
    assert m.reason == "wind-down not finished after 7000 ms: d1:B:0 UNKNOWN"
    assert [h.strategy for h in only(cmds, HaltStrategy)] == ["s1"]
    esc = [e for e in book.sink.by_decision("d1") if e.kind is EventKind.ESCALATION][-1]
    assert esc.payload["residual"]["legs"]["B"]["unknown_orders"] == ["d1:B:0"]


def test_a_wind_down_that_finishes_in_time_ignores_its_bound() -> None:
    from xmc_actors.core.pair.commands import TimerKey, TimerKind
    book, clock, _ = _a_filled_b_unknown_winding_down()
    book.on_query_result("d1:B:0", None)  # never saw it: the pair unwinds A
    m = book.pairs["d1"]
    [u] = [o for o in m.by_name["A"].orders if o.unwind]
    book.on_place_result(u.coid, [rep(u.coid, ExecReportKind.ACK, OrderStatus.ACCEPTED), fill(u.coid, 2, 2, "t9")])
    assert m.state is PairState.ROLLED_BACK
    clock.advance(20_000 * MS)
    book.on_timer("d1", TimerKey(TimerKind.WIND_DOWN))
    assert m.state is PairState.ROLLED_BACK


def test_a_pair_recovered_in_winding_down_has_its_bound_armed_again() -> None:
    from xmc_actors.core.pair.commands import TimerKind
    from xmc_actors.core.pair_fsm import StartTimer
    book, clock, _ = _a_filled_b_unknown_winding_down()
    again = PairBook(INSTRUMENTS, clock, config=book.config, owner=book.owner, event_node=2)
    _, cmds = again.recover(list(book.sink.events))
    assert again.pairs["d1"].state is PairState.WINDING_DOWN
    bounds = [t for t in only(cmds, StartTimer) if t.key.kind is TimerKind.WIND_DOWN and t.decision_id == "d1"]
    assert [t.at_ns for t in bounds] == [clock.now_ns() + book.config.wind_down_timeout_ms * MS]


# -- coordinator restart: recover from the trail -----------------------------------------------
def crash_and_recover(h: Harness, at_ms: float, *, unwritten: tuple[str, ...] = (),
                      ask_gateways: bool = False) -> tuple[PairBook, dict]:
    """Run ``h`` until ``at_ms``, then lose the coordinator: what it had in flight is dropped,
    the venues keep their orders, and a new book recovers from the events written so far.
    ``unwritten``: orders whose ORDER_SENT the crash kept out of the trail; ``ask_gateways``:
    the new book gets the orders the gateways hold for its open decisions."""
    while h.queue and h.queue[0][0] <= h.t0 + int(at_ms * 1_000_000):
        t, _, fn = heapq.heappop(h.queue)
        h.clock.set(max(t, h.clock.now_ns()))
        fn()
    h.queue.clear()  # the old actor's calls and timers die with it
    trail = [e for e in h.sink.events
             if not (e.kind is EventKind.ORDER_SENT and e.payload.get("client_order_id") in unwritten)]
    h.book = PairBook(INSTRUMENTS, h.clock, config=h.config, owner="coord", event_node=2, sink=h.sink)
    held = [req for _, req in h.placed if req.decision_id in h.book.open_decisions(trail)] if ask_gateways else []
    counts, cmds = h.book.recover(trail, held)
    h.run(cmds)
    h.drain()
    return h.book, counts


def test_a_pair_open_when_the_coordinator_died_is_wound_down_from_the_venues_state() -> None:
    # Arrange: SHFE fills at once; LME is 10 ms away each way, and the coordinator dies at 15 ms,
    # after LME filled the order (10 ms) but before its answer came back (20 ms)
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(latency_ms=(10.0, 10.0))})
    h.submit(intent("d1", mode=ExecutionMode.SPEED))
    # Act
    book, counts = crash_and_recover(h, at_ms=15)
    # Assert: recovered, queried, both legs filled at the venues -> HEDGED, strategy told
    assert counts == {"decisions": 1, "finished": 0, "reopened": 1, "orders": 2, "unreadable": 0, "summaries": 0,
                      "adopted": 0, "deferred": 0, "orphans_known": 0}
    m = book.pairs["d1"]
    assert m.state is PairState.HEDGED and [lg.net for lg in m.legs] == [2, 2]
    assert [d["decision_id"] for d in h.done] == ["d1"] and h.done[-1]["state"] == "HEDGED"
    rec = [e for e in h.sink.by_decision("d1") if e.kind is EventKind.RECONCILE and e.payload.get("action") == "recover"]
    assert rec and rec[0].payload["orders"] == ["d1:A:0", "d1:B:0"]
    # the same intent again is a duplicate: nothing more is sent
    placed = len(h.placed)
    assert h.submit(intent("d1", mode=ExecutionMode.SPEED))["duplicate"] is True
    h.drain()
    assert len(h.placed) == placed


@pytest.mark.parametrize("ask_gateways", [True, False])
def test_an_order_sent_just_before_the_crash_but_not_in_the_trail_is_taken_from_its_gateway(ask_gateways) -> None:
    """Found by the chaos suite: the coordinator sends, then writes ORDER_SENT on its next loop
    turn; killed in between, its trail does not name an order the venue filled. Asked, the
    gateways name it and the pair ends HEDGED; not asked, the pair unwinds a leg that was in
    fact hedged and the venue holds a fill the pair never counted (what the chaos run saw)."""
    # Arrange: SHFE fills at once; LME fills at 10 ms, its answer would be back at 20 ms; the
    # coordinator dies at 15 ms and the ORDER_SENT of the LME order was never written
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(latency_ms=(10.0, 10.0))})
    h.submit(intent("d1", mode=ExecutionMode.SPEED))
    # Act
    book, counts = crash_and_recover(h, at_ms=15, unwritten=("d1:B:0",), ask_gateways=ask_gateways)
    m = book.pairs["d1"]
    lme_filled = sum(o.filled for o in m.by_name["B"].orders)
    # Assert
    if ask_gateways:
        assert counts["adopted"] == 1 and counts["orders"] == 1
        assert m.state is PairState.HEDGED and [lg.net for lg in m.legs] == [2, 2]
        adopt = [e for e in h.sink.by_decision("d1") if e.kind is EventKind.ORDER_SENT and e.payload.get("adopted")]
        assert [e.payload["client_order_id"] for e in adopt] == ["d1:B:0"]
        # the trail names it now: a second restart rebuilds it from the trail alone
        again = PairBook(INSTRUMENTS, h.clock, config=h.config, owner="coord", event_node=3)
        again.recover([e for e in h.sink.events if e.decision_id != "d1" or e.kind is not EventKind.PAIR_STATE
                       or e.payload.get("to") != "HEDGED"])
        assert "d1:B:0" in again.index
    else:  # the damage the adoption prevents: the LME fill is not the pair's
        assert counts["adopted"] == 0 and lme_filled == 0
        assert m.state is not PairState.HEDGED


def test_a_recovered_pair_with_one_leg_missing_at_its_venue_unwinds_the_other() -> None:
    # Arrange: the coordinator dies before the LME order reached LME (5 ms network)
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(latency_ms=(5.0, 5.0))})
    h.submit(intent("d1", mode=ExecutionMode.SPEED))
    book, _ = crash_and_recover(h, at_ms=1)
    # Assert: LME never saw d1:B:0 (not re-sent: we wind down), SHFE's 2 lots are unwound
    m = book.pairs["d1"]
    assert m.state is PairState.ROLLED_BACK, m.reason
    assert [lg.net for lg in m.legs] == [0, 0]
    unwinds = [req for _, req in h.placed if req.reduce_only]
    assert [(u.instrument, u.side.value, u.qty) for u in unwinds] == [("SHFE.cu", "SELL", 2)]
    assert not any(req.client_order_id == "d1:B:0" for _, req in h.placed)


def test_a_restart_pushes_each_strategys_latest_finished_pair_again_from_the_trail() -> None:
    from test_monitor_alerts import core as risk_core

    # Arrange: s1 hedges d1 then d2, s2 hedges d3; the risk guard booked all three
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    for did, strat in (("d1", "s1"), ("d2", "s1"), ("d3", "s2")):
        h.submit(intent(did, strategy=strat))
        h.drain()
    guard, _, _ = risk_core()
    for summary in h.done:
        guard.on_pair_done(summary)
    booked = guard.book.snapshot()
    # Act: a new coordinator recovers from the trail
    book = PairBook(INSTRUMENTS, h.clock, config=h.config, owner="coord", event_node=2)
    counts, cmds = book.recover(list(h.sink.events))
    pushed = only(cmds, NotifyDone)
    # Assert: one push per strategy, its latest pair, with the lots its legs ended with
    assert counts["summaries"] == 2 and sorted((p.strategy, p.summary.decision_id) for p in pushed) == [
        ("s1", "d2"), ("s2", "d3")]
    s = next(p.summary for p in pushed if p.strategy == "s1")
    assert s.recovered is True and s.state == "HEDGED"
    assert [(lg.leg, lg.net_qty) for lg in s.legs] == [("A", 2), ("B", -2)]
    # the risk guard, which had them, changes nothing; one that never had d3 books it
    for p in pushed:
        guard.on_pair_done(p.summary)
    assert guard.book.snapshot() == booked
    fresh, _, _ = risk_core()
    fresh.on_pair_done(next(p.summary for p in pushed if p.strategy == "s2"))
    assert fresh.book.account == {"cn": {"SHFE.cu": 2}, "us": {"LME.CA3M": -2}}
    # a fill that still arrives for a pair recovered as finished (its orders are not rebuilt)
    # escalates it, as for a forgotten pair, instead of being bad input
    late = book.on_reports([fill("d1:A:0", 1, 3, "T-late")])
    assert [x.strategy for x in only(late, HaltStrategy)] == ["s1"]
    assert only(late, NotifyDone)[0].summary.incremental is True and book.bad_inputs == {}
    assert book.pairs["d1"].state is PairState.ESCALATED
    assert book.submit(intent("d1", strategy="s1"))[0]["duplicate"] is True


def test_finished_pairs_stay_finished_and_a_garbled_trail_is_reported_not_guessed() -> None:
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    h.submit(intent("d1"))
    h.drain()
    trail = list(h.sink.events)
    bad = trail[0].model_copy(update={"decision_id": "d9", "payload": {"intent": {"legs": "nonsense"}}})
    book = PairBook(INSTRUMENTS, SimClock(), owner="coord")

    counts, cmds = book.recover([*trail, bad])

    assert counts["finished"] == 1 and counts["reopened"] == 0 and counts["unreadable"] == 1
    assert book.pairs["d1"].state is PairState.HEDGED and not only(cmds, Query)
    assert "d9" not in book.pairs and book.bad_inputs == {"recover": 1}


def test_a_finished_pair_cancels_its_timers_and_one_that_races_the_cancel_leaves_no_trace() -> None:
    # Arrange / Act: both legs fill at once; two ack timers, the deadline and, as leg A's fill
    # is seen before leg B's, B's stale-remainder timer are armed
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    h.submit(intent("d1"))
    h.drain()
    # Assert: HEDGED cancels all four, so none fires; the trail ends at HEDGED
    assert h.book.pairs["d1"].state is PairState.HEDGED
    assert h.timers_cancelled == ["ack:d1:A:0", "ack:d1:B:0", "deadline", "stale:d1:B:0"], h.timers_cancelled
    assert "d1" not in h.armed
    assert not [e for e in h.sink.by_decision("d1") if e.kind is EventKind.TIMER]
    assert max(e.ts_ns for e in h.sink.by_decision("d1")) < h.t0 + 1_000_000_000  # not stretched to the deadline
    # a timer already on its way when the cancel came (an actor's loop) does nothing either
    n = len(h.sink.events)
    assert h.book.on_timer("d1", "deadline") == [] and h.book.on_timer("d1", "ack:d1:A:0") == []
    assert len(h.sink.events) == n


def test_an_escalated_pair_keeps_its_timers() -> None:
    # Arrange / Act: LME silent, so the pair escalates with d1:B:0 unknown
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(silent_after_ms=0.0)})
    h.submit(intent(mode=ExecutionMode.SPEED))
    h.drain()
    # Assert: nothing was cancelled for it; its timers ran out on their own
    assert h.book.pairs["d1"].state is PairState.ESCALATED
    assert h.timers_cancelled == [] and h.armed["d1"] == {}


def test_a_rollback_timer_of_a_pairs_first_life_does_not_fire_into_a_life_reopened_by_a_late_fill() -> None:
    # Arrange: leg A fills 1 of 2 (IOC remainder cancelled), leg B is finally rejected, so A's
    # lot is rolled back within a 1 s rollback budget and the pair ends ROLLED_BACK
    h = Harness(INSTRUMENTS, {"SHFE": Behaviour(partial=1.0),
                              "LME": Behaviour(reject=1.0, reject_reasons=(RejectReason.MARKET_CLOSED,))})
    h.submit(intent("d1", mode=ExecutionMode.SPEED, rollback=RollbackPolicy(max_attempts=3, max_time_ms=1_000)))
    h.drain()
    m = h.book.pairs["d1"]
    assert m.state is PairState.ROLLED_BACK and "rollback" in h.timers_cancelled
    # Act: 990 ms in (10 ms before the first rollback budget ran out), a late fill of the
    # cancelled entry remainder re-opens the pair; SHFE now answers nothing, so it stays open
    h.clock.set(h.t0 + 990 * MS)
    shfe = h.venues["SHFE"]
    shfe.b = Behaviour(silent_after_ms=0.0)
    assert h.book.in_flight_count() == 0
    h.run(h.book.on_reports(shfe._late(shfe.orders["d1:A:0"])))
    assert m.state is PairState.ROLLING_BACK
    assert h.book.in_flight_count() == 1  # a reopened pair is open again (a replay's settle waits for it)
    h.drain()
    # Assert: no rollback timer acted before the new life's own budget (990 + 1000 ms)
    acted = [e for e in h.sink.by_decision("d1") if e.kind is EventKind.TIMER and e.payload["key"] == "rollback"]
    assert all(e.ts_ns >= h.t0 + 1_990 * MS for e in acted), [(e.reason, (e.ts_ns - h.t0) / MS) for e in acted]
    assert m.state is PairState.ESCALATED  # the unwind's outcome never became known


# -- a residual smaller than one lot of leg B: carried in the strategy's residual book -------------
# copper: 5 SHFE lots (5 t each) hedge 1 LME lot (25 t): one SHFE lot is 0.2 of an LME lot
CU_A, CU_B = ("SHFE.cu", "BUY", 5, "72000"), ("LME.CA3M", "SELL", 1, "9800")


def _copper(did: str, book: PairBook, *, a_fill: int, b_fill: int = 0, unwind: str = "reject",
            strategy: str = "s1") -> list:
    """Submit a copper pair (SPEED, one unwind attempt) and feed the venues' answers: leg B fills
    ``b_fill`` of 1, else is rejected MARKET_CLOSED (final); then leg A fills ``a_fill`` of 5 (IOC
    remainder cancelled); the unwind of A is rejected (limit-locked market) or filled."""
    cmds = book.submit(intent(did, a=CU_A, b=CU_B, hedge_ratio=Decimal("0.2"), mode=ExecutionMode.SPEED,
                              strategy=strategy, rollback=RollbackPolicy(max_attempts=1)))[1]
    a_reps = [rep(f"{did}:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED)]
    if a_fill:
        a_reps.append(fill(f"{did}:A:0", a_fill, a_fill, f"{did}-tA",
                           status=OrderStatus.FILLED if a_fill == 5 else OrderStatus.PARTIALLY_FILLED))
    if a_fill < 5:
        a_reps.append(rep(f"{did}:A:0", ExecReportKind.CANCELED, OrderStatus.CANCELED, filled=a_fill))
    if b_fill:
        b = fill(f"{did}:B:0", 1, 1, f"{did}-tB", venue="LME", inst="LME.CA3M", price="9800")
        cmds += book.on_place_result(f"{did}:B:0", [rep(f"{did}:B:0", ExecReportKind.ACK, OrderStatus.ACCEPTED,
                                                        "LME", "LME.CA3M"), b])
    else:
        cmds += book.on_place_result(f"{did}:B:0", [rep(f"{did}:B:0", ExecReportKind.REJECTED, OrderStatus.REJECTED,
                                                        "LME", "LME.CA3M", reason=RejectReason.MARKET_CLOSED)])
    cmds += book.on_place_result(f"{did}:A:0", a_reps)
    unwinds = [p for p in only(cmds, Place) if p.req.reduce_only]
    for p in unwinds:
        coid = p.req.client_order_id
        if unwind == "reject":
            cmds += book.on_place_result(coid, [rep(coid, ExecReportKind.REJECTED, OrderStatus.REJECTED,
                                                    reason=RejectReason.LIMIT_LOCKED)])
        else:
            cmds += book.on_place_result(coid, [rep(coid, ExecReportKind.ACK, OrderStatus.ACCEPTED),
                                                fill(coid, p.req.qty, p.req.qty, f"{coid}-t")])
    return cmds


def _events(book: PairBook, did: str) -> list:
    """What the book wrote under decision ``did`` (to its own sink)."""
    return book.sink.by_decision(did)


def test_sub_lot_residual_after_leg_b_final_reject_is_booked_yellow_not_escalated() -> None:
    # Arrange: leg A fills 3 of 5 SHFE lots (0.6 of an LME lot), leg B is rejected MARKET_CLOSED,
    # and the unwind of A is rejected (limit-locked): before the book this escalated the pair
    book = PairBook(INSTRUMENTS, SimClock())
    # Act
    cmds = _copper("d1", book, a_fill=3)
    # Assert: HEDGED within tolerance (3 A / 0 B is 0.6 of a B lot off the hedge), not ESCALATED
    m = book.pairs["d1"]
    assert m.state is PairState.HEDGED and [lg.net for lg in m.legs] == [3, 0]
    assert m.reason.startswith("SUB_LOT_RESIDUAL: leg A: rollback attempts spent")
    assert book.residual_book == {"s1": {"d1": Decimal("-0.6")}}
    evs = _events(book, "d1")
    kinds_ = [e.kind for e in evs]
    assert EventKind.ESCALATION not in kinds_ and not only(cmds, HaltStrategy)
    [alert] = [e for e in evs if e.kind is EventKind.ALERT]
    assert alert.payload["level"] == "yellow" and alert.payload["monitor"] == "residual_book"
    assert alert.payload["book_b_lots"] == "-0.6" and alert.payload["source"] == "coordinator"
    [done] = only(cmds, NotifyDone)
    s = done.summary
    assert s.state == "HEDGED" and s.complete is False
    assert s.residual_booked["imbalance_b_lots"] == "-0.6" and s.residual_booked["book_b_lots"] == "-0.6"
    assert (s.leg("A").net_qty, s.leg("B").net_qty) == (3, 0)
    assert ("strategy", "s1") not in book.trading      # the strategy trades on
    res, _ = book.submit(intent("d2", a=CU_A, b=CU_B, hedge_ratio=Decimal("0.2")))
    assert res["accepted"] is True


def test_a_sub_lot_residual_that_unwinds_ends_rolled_back_with_nothing_booked() -> None:
    book = PairBook(INSTRUMENTS, SimClock())
    _copper("d1", book, a_fill=2, unwind="fill")
    assert book.pairs["d1"].state is PairState.ROLLED_BACK and book.residual_book == {}
    assert not [e for e in _events(book, "d1") if e.kind is EventKind.ALERT]


def test_residual_book_past_limit_goes_red_and_halts() -> None:
    # Arrange: a book limit of 1 LME lot; two pairs each leave 0.6 of an LME lot unhedged
    book = PairBook(INSTRUMENTS, SimClock(), config=CoordinatorConfig(max_residual_lots_b=Decimal(1)))
    first = _copper("d1", book, a_fill=3)
    assert not only(first, HaltStrategy)
    # Act
    cmds = _copper("d2", book, a_fill=3)
    # Assert: the pair itself is HEDGED within tolerance; the book (1.2 LME lots) is red, the strategy halted
    assert book.pairs["d2"].state is PairState.HEDGED
    assert book.residual_total("s1") == Decimal("-1.2")
    [alert] = [e for e in _events(book, "d2") if e.kind is EventKind.ALERT]
    assert (alert.payload["level"], alert.payload["action"], alert.payload["pairs"]) == ("red", "halt", ["d1", "d2"])
    assert "past its limit of 1" in alert.payload["message"]
    assert [(h.strategy, h.decision_id) for h in only(cmds, HaltStrategy)] == [("s1", "d2")]
    assert book.trading[("strategy", "s1")].value == "HALTED"
    res, _ = book.submit(intent("d3", a=CU_A, b=CU_B, hedge_ratio=Decimal("0.2")))
    assert res["accepted"] is False and "HALTED" in res["reason"]


def test_a_pair_that_fills_both_legs_in_full_takes_the_residual_book_back() -> None:
    # Arrange: d1 leaves 0.6 of an LME lot in the book
    book = PairBook(INSTRUMENTS, SimClock())
    _copper("d1", book, a_fill=3)
    # Act: the strategy's next move, sized against its holding, fills both legs in full
    _copper("d2", book, a_fill=5, b_fill=1)
    # Assert: the book is empty and its alert closed
    assert book.pairs["d2"].state is PairState.HEDGED and book.residual_book == {}
    [closed] = [e for e in _events(book, "d2") if e.kind is EventKind.ALERT]
    assert closed.payload["resolved"] is True and closed.payload["pairs"] == ["d1"]


def test_a_residual_of_a_whole_leg_b_lot_is_still_escalated() -> None:
    # Arrange: 1:1 copper (one LME lot per SHFE lot): a lone SHFE lot is a whole LME lot unhedged
    book = PairBook(INSTRUMENTS, SimClock())
    book.submit(intent("d1", mode=ExecutionMode.SPEED, rollback=RollbackPolicy(max_attempts=1)))
    book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.REJECTED, OrderStatus.REJECTED, "LME",
                                        "LME.CA3M", reason=RejectReason.MARKET_CLOSED)])
    cmds = book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED),
                                           fill("d1:A:0", 1, 1, "t1", status=OrderStatus.PARTIALLY_FILLED),
                                           rep("d1:A:0", ExecReportKind.CANCELED, OrderStatus.CANCELED, filled=1)])
    [unwind] = [p for p in only(cmds, Place) if p.req.reduce_only]
    # Act
    cmds = book.on_place_result(unwind.req.client_order_id, [rep(
        unwind.req.client_order_id, ExecReportKind.REJECTED, OrderStatus.REJECTED, reason=RejectReason.LIMIT_LOCKED)])
    # Assert
    assert book.pairs["d1"].state is PairState.ESCALATED and book.residual_book == {}
    assert only(cmds, HaltStrategy)


def test_with_the_residual_book_off_a_sub_lot_residual_escalates_as_before() -> None:
    book = PairBook(INSTRUMENTS, SimClock(), config=CoordinatorConfig(book_sub_lot_residuals=False))
    cmds = _copper("d1", book, a_fill=3)
    assert book.pairs["d1"].state is PairState.ESCALATED and only(cmds, HaltStrategy)


class _RefuseUnwinds:
    """A checker that refuses the first ``n`` risk-reducing orders with ``code``."""

    def __init__(self, code: str, n: int) -> None:
        self.code, self.left = code, n

    def check_pair(self, intent, now_ns):  # noqa: ANN001, ANN201
        return PreTradeResult(True)

    def allows_order(self, strategy, venue, instrument, reduce_only, now_ns):  # noqa: ANN001, ANN201
        if reduce_only and self.left > 0:
            self.left -= 1
            return Denial(self.code, "refused for the test")
        return None

    def on_order_done(self, *a):  # noqa: ANN002, ANN201
        pass

    def update_grant(self, grant):  # noqa: ANN001, ANN201
        pass


def test_an_unwind_refused_for_the_order_rate_is_tried_again_and_the_pair_rolls_back() -> None:
    # Arrange: leg B is rejected for good, leg A fills; the first unwinds meet the order-rate
    # throttle (as after a coordinator restart, before the risk guard's first grant)
    chk = _RefuseUnwinds("ORDER_RATE_EXCEEDED", 2)
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(reject=1.0, reject_reasons=(RejectReason.LIMIT_LOCKED,))}, checker=chk)
    # Act
    h.submit(intent(mode=ExecutionMode.SPEED))
    h.drain()
    # Assert: unwound after the refusals passed, not escalated
    m = h.book.pairs["d1"]
    assert chk.left == 0
    assert m.state is PairState.ROLLED_BACK, (m.state, m.reason)
    assert [e for e in h.sink.events if e.kind is EventKind.RISK_DECISION and not e.payload.get("allowed", True)]


def test_an_unwind_refused_because_trading_is_halted_is_escalated_at_once() -> None:
    # a HALTED scope is final: nothing is retried
    chk = _RefuseUnwinds("TRADING_HALTED", 100)
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(reject=1.0, reject_reasons=(RejectReason.LIMIT_LOCKED,))}, checker=chk)
    h.submit(intent(mode=ExecutionMode.SPEED))
    h.drain()
    assert h.book.pairs["d1"].state is PairState.ESCALATED
    assert chk.left == 99


def test_a_fill_reported_twice_is_recorded_as_a_repeat_that_books_nothing() -> None:
    # Arrange: a hedged pair whose leg A fill (trade T-A) the venue then reports again
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    h.submit(intent())
    h.drain()
    m = h.book.pairs["d1"]
    assert m.state is PairState.HEDGED
    a = m.legs[0].orders[0]
    (tid,) = a.state.trade_ids
    nets = [lg.net for lg in m.legs]
    # Act
    h.run(h.book.on_reports([fill(a.coid, a.state.request.qty, a.state.request.qty, tid)]))
    h.drain()
    # Assert: in the trail as a repeat with nothing booked; the pair unchanged
    last = [e for e in h.sink.by_decision("d1") if e.kind is EventKind.ORDER_REPORT][-1]
    assert last.payload["trade_id"] == tid and last.payload["repeat"] is True and last.payload["fill_qty"] == 0
    assert [lg.net for lg in m.legs] == nets and m.state is PairState.HEDGED


def test_a_pair_whose_trail_holds_only_its_intent_is_recovered_and_wound_down_from_the_venues() -> None:
    """Found reading the recovery: the crash came after the INTENT was written and before any
    PAIR_STATE. Restoring its state NEW was a NEW -> NEW transition the table refuses, so the
    whole recovery raised and the restarted coordinator refused every intent (RECOVERING) for
    good. The pair is recovered as any open one: its orders, found at the gateways, settle it."""
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    h.submit(intent("d1", mode=ExecutionMode.SPEED))
    h.drain()
    trail = [e for e in h.sink.events if e.decision_id != "d1" or e.kind is EventKind.INTENT]
    assert [e.kind for e in trail if e.decision_id == "d1"] == [EventKind.INTENT]
    h.book = PairBook(INSTRUMENTS, h.clock, config=h.config, owner="coord", event_node=2, sink=h.sink)
    held = [req for _, req in h.placed if req.decision_id == "d1"]  # what the gateways hold
    counts, cmds = h.book.recover(trail, held)
    h.run(cmds)
    h.drain()
    m = h.book.pairs["d1"]
    assert counts["reopened"] == 1 and counts["adopted"] == 2 and counts["unreadable"] == 0
    assert m.state is PairState.HEDGED and [lg.net for lg in m.legs] == [2, 2], m.reason
    # and without any order anywhere (the crash came before they left): it ends with nothing to undo
    h2 = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    h2.submit(intent("d2", mode=ExecutionMode.SPEED))
    h2.drain()
    h2.book = PairBook(INSTRUMENTS, h2.clock, config=h2.config, owner="coord", event_node=2, sink=h2.sink)
    counts, cmds = h2.book.recover([e for e in h2.sink.events if e.kind is EventKind.INTENT])
    h2.run(cmds)
    h2.drain()
    assert h2.book.pairs["d2"].state.is_terminal and counts["reopened"] == 1


def test_a_pair_known_by_its_intent_alone_whose_venue_did_not_answer_is_left_for_the_venue_to_say() -> None:
    """Found in review: with nothing after its INTENT and a gateway that did not answer at the
    restart, the pair had no order to query and was ended ROLLED_BACK at once, while its orders
    could be working at that venue. It is deferred: the coordinator asks that gateway again."""
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    h.submit(intent("d1", mode=ExecutionMode.SPEED))
    h.drain()
    trail = [e for e in h.sink.events if e.kind is EventKind.INTENT]
    book = PairBook(INSTRUMENTS, h.clock, config=h.config, owner="coord", event_node=2)
    counts, cmds = book.recover(trail, [], unanswered_venues={"LME"})
    assert counts["deferred"] == 1 and counts["reopened"] == 0 and not book.knows("d1")
    assert list(book.recovery_deferred) == ["d1"] and not only(cmds, NotifyDone)  # nothing ended
    # every venue answered (and none holds an order of it): ended with nothing to undo
    book2 = PairBook(INSTRUMENTS, h.clock, config=h.config, owner="coord", event_node=3)
    counts, _ = book2.recover(trail, [], unanswered_venues=set())
    assert counts["deferred"] == 0 and counts["reopened"] == 1 and book2.knows("d1")


def test_a_restart_pushes_the_strategys_own_latest_pair_not_a_later_roll_child() -> None:
    """Found in review: the push a strategy may still be waiting for after a restart was its
    latest finished pair, which could be a calendar roll's child (not its decision): its own
    latest outcome was then never pushed again."""
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": FILLS})
    for did in ("d1", "roll-9.rollA"):
        h.submit(intent(did, strategy="s1"))
        h.drain()
    book = PairBook(INSTRUMENTS, h.clock, config=h.config, owner="coord", event_node=2)
    _, cmds = book.recover(list(h.sink.events))
    assert [p.summary.decision_id for p in only(cmds, NotifyDone)] == ["d1"]


def test_orders_of_a_decision_the_trail_never_named_are_recorded_as_orphans_once_then_adopted() -> None:
    """Found by the chaos suite (ledger flush 1 s, coordinator killed): pairs whose orders left
    and whose every event died with the coordinator; the venues held orders the trail never
    named. A restart records them; a later re-send of the decision adopts them without a second
    ORDER_SENT."""
    h = Harness(INSTRUMENTS, {"SHFE": FILLS, "LME": Behaviour(latency_ms=(10.0, 10.0))})
    h.submit(intent("d1", mode=ExecutionMode.SPEED))
    h.drain()
    from xmc_actors.model.orders import Offset
    # SHFE's order as a two-sided venue takes it, with its offset
    placed = [req.model_copy(update={"offset": Offset.OPEN}) if req.leg == "A" else req for _, req in h.placed]
    # Act: a new life whose trail holds nothing of d1
    book = PairBook(INSTRUMENTS, h.clock, config=h.config, owner=h.book.owner, event_node=2,
                    sink=(sink := MemorySink()))
    book.recover([])
    orphans = book.record_orphans(placed, named=())
    # Assert: each order named once, the decision reconciled, nothing sent
    assert orphans == ["d1"]
    sent = [e for e in sink.events if e.kind is EventKind.ORDER_SENT]
    assert sorted(e.payload["client_order_id"] for e in sent) == ["d1:A:0", "d1:B:0"]
    assert all(e.payload["orphan"] and e.payload["adopted"] and e.decision_id == "d1" for e in sent)
    assert {e.venue for e in sent} == {"SHFE", "LME"}
    # each carries the order's offset as the venue took it (SHFE's OPEN), as the pair's own send does
    by_id = {req.client_order_id: req for req in placed}
    assert all(e.payload.get("offset") == (by_id[e.payload["client_order_id"]].offset.value
                                           if by_id[e.payload["client_order_id"]].offset else None) for e in sent)
    assert [e.payload["action"] for e in sink.by_decision("d1") if e.kind is EventKind.RECONCILE] == ["orphan"]
    assert book.record_orphans(placed, named=()) == []  # a second sweep records nothing again
    # a third life reads those ORDER_SENTs back: not an unreadable pair, and not recorded again
    third = PairBook(INSTRUMENTS, h.clock, config=h.config, owner=h.book.owner, event_node=3, sink=(sink3 := MemorySink()))
    counts, _ = third.recover(list(sink.events))
    assert counts["orphans_known"] == 1 and counts["unreadable"] == 0
    assert not [e for e in sink3.events if e.kind is EventKind.BAD_INPUT]
    named = [e.payload["client_order_id"] for e in sink.events if e.kind is EventKind.ORDER_SENT]
    assert third.record_orphans(placed, named=named) == []
    # an order of a decision the trail knows, or another coordinator's, is not an orphan
    other = placed[0].model_copy(update={"owner": "someone-else", "decision_id": "d9", "client_order_id": "d9:A:0"})
    assert book.record_orphans([other], named=()) == []
    # the strategy sends d1 again: adopted, wound down, and no second ORDER_SENT
    found = [book.events.make(EventKind.INTENT, decision_id="d1", strategy="s1",
                              intent=intent("d1", mode=ExecutionMode.SPEED).model_dump(mode="json"))]
    counts, _ = book.recover(found, placed)
    assert counts["adopted"] == 2
    assert len([e for e in sink.events if e.kind is EventKind.ORDER_SENT]) == 2


def test_an_orphan_decisions_intent_is_rebuilt_from_its_strategys_signal() -> None:
    from xmc_actors.core.sink import EventMaker
    mk = EventMaker(SimClock(), "cu/cu")
    legs = [{"leg": "A", "instrument": "SHFE.cu", "account": "cn", "side": "BUY", "qty": 5, "limit": "72000"},
            {"leg": "B", "instrument": "LME.CA3M", "account": "us", "side": "SELL", "qty": 1, "limit": "9800"}]
    sig = mk.make(EventKind.SIGNAL, decision_id="cu-00000007", strategy="cu", legs=legs, pair_hedge_ratio="0.2",
                  mode="speed", reduce_only=False)
    it = PairBook.orphan_intent(sig)
    assert (it.decision_id, it.strategy, it.mode, it.hedge_ratio) == ("cu-00000007", "cu", ExecutionMode.SPEED,
                                                                      Decimal("0.2"))
    assert [(lg.leg, lg.instrument, lg.account, lg.side, lg.qty, lg.limit_price) for lg in it.legs] == [
        ("A", "SHFE.cu", "cn", Side.BUY, 5, Decimal("72000")), ("B", "LME.CA3M", "us", Side.SELL, 1, Decimal("9800"))]
    # a signal written before it carried accounts takes a leg's account from that leg's order
    old = mk.make(EventKind.SIGNAL, decision_id="cu-00000007", strategy="cu",
                  legs=[{k: v for k, v in lg.items() if k != "account"} for lg in legs], pair_hedge_ratio="0.2")
    orders = [testkit.order("SHFE.cu", "BUY", 5, "72000", decision_id="cu-00000007", leg="A", account="cn-x"),
              testkit.order("LME.CA3M", "SELL", 1, "9800", decision_id="cu-00000007", leg="B", account="us-x")]
    assert [lg.account for lg in PairBook.orphan_intent(old, orders).legs] == ["cn-x", "us-x"]
    # and without an order for that leg it names what is missing
    with pytest.raises(ValueError, match="leg 'B' has no account and no order"):
        PairBook.orphan_intent(old, orders[:1])
    with pytest.raises(ValueError, match="1 legs, a pair has 2"):
        PairBook.orphan_intent(mk.make(EventKind.SIGNAL, decision_id="x-1", strategy="x", legs=legs[:1]))


def test_an_unwind_the_venue_rejects_for_a_passing_reason_is_sent_again_without_spending_an_attempt() -> None:
    """Found by the chaos suite (per-venue, seed 23): LME's session had just dropped; the three
    unwinds of a filled leg were rejected VENUE_ERROR within 160 ms and the pair escalated,
    though one more try a moment later would have rolled it back."""
    from xmc_actors.core.pair.commands import TimerKey, TimerKind
    from xmc_actors.core.pair_fsm import StartTimer
    book = PairBook(INSTRUMENTS, clock := SimClock())
    book.submit(intent())
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")])
    cmds = book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.REJECTED, OrderStatus.REJECTED, "LME", "LME.CA3M",
                                               reason=RejectReason.MARKET_CLOSED)])
    [unwind] = only(cmds, Place)
    assert unwind.req.leg == "A" and unwind.req.reduce_only
    attempts = book.pairs["d1"].intent.rollback.max_attempts
    # Act: the venue rejects every unwind with VENUE_ERROR, more times than the attempts allow
    coid = unwind.req.client_order_id
    for n in range(attempts + 2):
        cmds = book.on_place_result(coid, [rep(coid, ExecReportKind.REJECTED, OrderStatus.REJECTED,
                                               reason=RejectReason.VENUE_ERROR)])
        # Assert: nothing sent at once; a retry timer instead, and the pair still rolling back
        assert not only(cmds, Place)
        [t] = [t for t in only(cmds, StartTimer) if t.key.kind is TimerKind.UNWIND_RETRY]
        assert book.pairs["d1"].state is PairState.ROLLING_BACK
        # nothing else sends it before its wait is over: another timer of the pair (the
        # deadline), or an older retry timer of the same key firing meanwhile
        clock.set(t.at_ns - 150 * MS)
        assert not only(book.on_timer("d1", TimerKey(TimerKind.DEADLINE)), Place)
        assert not only(book.on_timer("d1", t.key), Place)
        clock.set(t.at_ns)
        [again] = only(book.on_timer("d1", t.key), Place)
        assert again.req.leg == "A" and again.req.price == unwind.req.price  # the same step of the chase
        coid = again.req.client_order_id
    # the venue takes the next one: rolled back
    book.on_place_result(coid, [rep(coid, ExecReportKind.ACK, OrderStatus.ACCEPTED),
                                fill(coid, 2, 2, "t9", status=OrderStatus.FILLED)])
    assert book.pairs["d1"].state is PairState.ROLLED_BACK
    retries = [e for e in book.sink.by_decision("d1") if e.kind is EventKind.RECONCILE
               and e.payload.get("action") == "unwind_retry"]
    assert len(retries) == attempts + 2


def test_unwinds_rejected_for_a_passing_reason_until_the_rollback_budget_ends_escalate() -> None:
    from xmc_actors.core.pair.commands import TimerKey, TimerKind
    from xmc_actors.core.pair_fsm import StartTimer
    book = PairBook(INSTRUMENTS, clock := SimClock())
    t0 = clock.now_ns()
    book.submit(intent())
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")])
    cmds = book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.REJECTED, OrderStatus.REJECTED, "LME", "LME.CA3M",
                                               reason=RejectReason.MARKET_CLOSED)])
    [bound] = [t for t in only(cmds, StartTimer) if t.key.kind is TimerKind.ROLLBACK]
    coid = only(cmds, Place)[0].req.client_order_id
    while True:
        cmds = book.on_place_result(coid, [rep(coid, ExecReportKind.REJECTED, OrderStatus.REJECTED,
                                               reason=RejectReason.VENUE_ERROR)])
        [t] = [t for t in only(cmds, StartTimer) if t.key.kind is TimerKind.UNWIND_RETRY]
        if t.at_ns >= bound.at_ns:
            break
        clock.set(t.at_ns)
        coid = only(book.on_timer("d1", t.key), Place)[0].req.client_order_id
    clock.set(bound.at_ns)
    book.on_timer("d1", TimerKey(TimerKind.ROLLBACK))
    m = book.pairs["d1"]
    assert m.state is PairState.ESCALATED and m.reason == "rollback time budget spent"
    assert clock.now_ns() - t0 >= m.intent.rollback.max_time_ms * MS


def test_a_decision_re_sent_with_other_budgets_is_a_duplicate_and_with_another_trade_is_bad_input() -> None:
    """A restart rebuilds an orphan decision from its SIGNAL with default budgets; the strategy
    then re-sends its own intent. Chaos (per-venue, seed 23) recorded that as BAD_INPUT."""
    book = PairBook(INSTRUMENTS, SimClock())
    book.submit(intent())
    # Act 1: the same trade, other budgets
    res, _ = book.submit(intent(replenish=ReplenishBudget(max_attempts=1, max_time_ms=900)))
    # Assert 1
    assert res["duplicate"] and not [e for e in book.sink.events if e.kind is EventKind.BAD_INPUT]
    # Act 2: another trade under the same id
    res, _ = book.submit(intent(a=("SHFE.cu", "BUY", 3, "72000")))
    # Assert 2
    assert res["duplicate"]
    [bad] = [e for e in book.sink.events if e.kind is EventKind.BAD_INPUT]
    assert "re-used with a different intent" in bad.reason


def test_an_unwind_the_venue_says_it_never_saw_spends_its_attempt() -> None:
    """A gateway that lost its order map answers "never seen" for an IOC it did send, which may
    have executed: that unwind is not retried for free as a VENUE_ERROR reject is."""
    book = PairBook(INSTRUMENTS, SimClock())
    book.submit(intent())
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")])
    cmds = book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.REJECTED, OrderStatus.REJECTED, "LME", "LME.CA3M",
                                               reason=RejectReason.MARKET_CLOSED)])
    coid = only(cmds, Place)[0].req.client_order_id
    book.on_call_failed(coid, "place", "ActorDiedError")
    # Act: the query's answer: the venue never saw it
    cmds = book.on_query_result(coid, None)
    # Assert: the next unwind is sent at once, its attempt spent (no free retry)
    [again] = only(cmds, Place)
    assert again.req.attempt > 1 and book.pairs["d1"].by_name["A"].unwinds == 2
    assert not [e for e in book.sink.by_decision("d1") if e.kind is EventKind.RECONCILE
                and e.payload.get("action") == "unwind_retry"]


def test_an_ack_held_at_a_gateway_group_for_the_other_venue_is_timed_as_its_own_venue_answered() -> None:
    # Arrange: both legs go out together; the one reply of the group comes back 40 ms later, SHFE's
    # answer having waited 37 ms there for LME's
    book = PairBook(INSTRUMENTS, clock := SimClock(), sink=(sink := MemorySink()))
    book.submit(intent(mode=ExecutionMode.SPEED))
    clock.advance(40_000_000)
    # Act
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")],
                         held_ns=37_000_000)
    book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.ACK, OrderStatus.ACCEPTED, "LME", "LME.CA3M"),
                                    fill("d1:B:0", 2, 2, "t2", "LME", "LME.CA3M", price="9800")])
    # Assert: SHFE answered in 3 ms, LME in 40; the trail and the pair's summary say so
    lat = {e.payload["client_order_id"]: e.latency_us for e in sink.by_decision("d1")
           if e.kind is EventKind.ORDER_REPORT and e.latency_us is not None}
    assert lat == {"d1:A:0": 3_000.0, "d1:B:0": 40_000.0}
    s = book.pair("d1")
    assert leg(s, "A")["ack_latencies_ms"] == [3.0] and leg(s, "B")["ack_latencies_ms"] == [40.0]
    # a hold longer than the whole wait (a confused clock) never makes a latency negative
    book.submit(intent("d2", mode=ExecutionMode.SPEED))
    clock.advance(1_000_000)
    book.on_place_result("d2:A:0", [rep("d2:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED)], held_ns=5_000_000)
    assert leg(book.pair("d2"), "A")["ack_latencies_ms"] == [0.0]


def _rolling_back_after_an_unfilled_unwind(rollback: RollbackPolicy):  # noqa: ANN202
    """A fills 2, B is refused for good: the pair unwinds A; the first unwind's IOC goes unfilled."""
    book = PairBook(INSTRUMENTS, clock := SimClock())
    book.submit(intent(mode=ExecutionMode.SPEED, replenish=ReplenishBudget(max_attempts=0), rollback=rollback))
    book.on_place_result("d1:A:0", [rep("d1:A:0", ExecReportKind.ACK, OrderStatus.ACCEPTED), fill("d1:A:0", 2, 2, "t1")])
    cmds = book.on_place_result("d1:B:0", [rep("d1:B:0", ExecReportKind.REJECTED, OrderStatus.REJECTED, "LME", "LME.CA3M",
                                               reason=RejectReason.MARKET_CLOSED)])
    first = only(cmds, Place)
    assert [(p.req.leg, p.req.side, p.req.qty) for p in first] == [("A", Side.SELL, 2)]
    coid = first[0].req.client_order_id
    clock.advance(3_000_000)
    cmds = book.on_place_result(coid, [rep(coid, ExecReportKind.ACK, OrderStatus.ACCEPTED),
                                       rep(coid, ExecReportKind.CANCELED, OrderStatus.CANCELED)])
    return book, clock, coid, cmds


def test_an_unwind_that_left_lots_waits_for_the_book_to_refill_before_the_next() -> None:
    # Arrange + Act: the first unwind's IOC was cancelled unfilled
    book, clock, _, cmds = _rolling_back_after_an_unfilled_unwind(RollbackPolicy(retry_after_ms=100))
    # Assert: no unwind at once; a timer 100 ms on, then the second unwind, further through the book
    assert not only(cmds, Place)
    (timer,) = [c for c in only(cmds, StartTimer) if c.key.kind.value == "unwind_retry"]
    assert timer.at_ns == clock.now_ns() + 100_000_000
    clock.advance(50_000_000)
    assert not only(book.on_timer("d1", timer.key), Place)  # an early fire sends nothing
    clock.set(timer.at_ns)
    second = only(book.on_timer("d1", timer.key), Place)
    assert [(p.req.leg, p.req.side, p.req.qty, p.req.attempt) for p in second] == [("A", Side.SELL, 2, 2)]
    assert book.pairs["d1"].state is PairState.ROLLING_BACK


def test_the_waits_between_unwinds_leave_each_attempt_its_share_of_the_time_budget() -> None:
    # a 90 ms budget, 3 attempts: after the first (3 ms in), the wait is (90 - 3) / 3 ms, not 100
    book, clock, _, cmds = _rolling_back_after_an_unfilled_unwind(RollbackPolicy(retry_after_ms=100, max_time_ms=90))
    (timer,) = [c for c in only(cmds, StartTimer) if c.key.kind.value == "unwind_retry"]
    assert timer.at_ns - clock.now_ns() == 87_000_000 // 3
    # retry_after_ms 0: the next unwind goes at once, as before
    book, clock, _, cmds = _rolling_back_after_an_unfilled_unwind(RollbackPolicy(retry_after_ms=0))
    assert [p.req.attempt for p in only(cmds, Place)] == [2]


def test_a_late_fill_during_an_unwinds_wait_ends_the_pair_rolled_back() -> None:
    # Arrange: waiting to send the second unwind
    book, clock, coid, cmds = _rolling_back_after_an_unfilled_unwind(RollbackPolicy(retry_after_ms=100, max_time_ms=50))
    # Act: the cancelled unwind's fill arrives late (the venue filled it before the cancel)
    book.on_reports([fill(coid, 2, 2, "t9", price="71990")])
    # Assert: flat: ROLLED_BACK now, without waiting for the timer, and no second unwind
    assert book.pairs["d1"].state is PairState.ROLLED_BACK
    assert leg(book.pair("d1"), "A")["net_qty"] == 0
    # the rollback budget's timer and the retry's, firing later, change nothing
    clock.advance(200_000_000)
    for key in ("rollback", "unwind_retry"):
        assert not only(book.on_timer("d1", key), Place)
    assert book.pairs["d1"].state is PairState.ROLLED_BACK
