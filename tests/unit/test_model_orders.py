"""Tick grid, the order status machine (every illegal edge), fills and reports."""
import itertools
from decimal import Decimal

import pytest
from pydantic import ValidationError

from testkit import instrument, order
from xmc_actors.model import (
    ExecReportKind, ExecutionReport, Fill, IllegalTransition, OrderState, OrderStatus, PriceError, Side,
    check_transition,
)
from xmc_actors.model.orders import ORDER_TRANSITIONS, RejectReason

S = OrderStatus


# ---------------------------------------------------------------- tick grid
@pytest.mark.parametrize(
    "inst_id, raw, mode, expected",
    [
        ("COMEX.HG", "4.44521", "nearest", "4.4450"),
        ("COMEX.HG", "4.44526", "nearest", "4.4455"),
        ("COMEX.HG", "4.44526", "down", "4.4450"),
        ("COMEX.HG", "4.44501", "up", "4.4455"),
        ("SHFE.cu", "72003", "nearest", "72000"),
        ("SHFE.cu", "72006", "nearest", "72010"),
        ("SHFE.au", "560.03", "nearest", "560.04"),
        ("SHFE.au", "560.01", "down", "560.00"),
        ("CFFEX.IF", "3850.1", "up", "3850.2"),
        ("COMEX.GC", "-2000.04", "nearest", "-2000.0"),
    ],
)
def test_prices_snap_to_the_tick_grid(inst_id, raw, mode, expected):
    assert instrument(inst_id).round_price(raw, mode) == Decimal(expected)


def test_float_input_never_drifts_off_the_grid():
    hg = instrument("COMEX.HG")
    px = hg.round_price(0.1 + 0.2 + 4.0)  # 4.300000000000001 as a float
    assert px == Decimal("4.3000") and str(px) == "4.3000"
    assert hg.on_grid(px)


def test_off_grid_price_is_refused_by_to_ticks():
    with pytest.raises(PriceError, match=r"SHFE\.cu: price 72005 is not a multiple of the tick 10"):
        instrument("SHFE.cu").to_ticks(Decimal("72005"))


def test_ticks_round_trip():
    au = instrument("SHFE.au")
    assert au.to_ticks(Decimal("560.04")) == 28002
    assert au.from_ticks(28002) == Decimal("560.04")


def test_non_finite_price_is_refused():
    with pytest.raises(PriceError, match="not finite"):
        instrument("COMEX.GC").round_price("NaN")


def test_notional_uses_the_multiplier():
    assert instrument("COMEX.GC").notional(Decimal("2000.0"), 3) == Decimal("600000.0")
    assert instrument("CFFEX.IF").notional(Decimal("3850.2"), 1) == Decimal("1155060.0")


def test_quantities_round_down_to_whole_lots():
    inst = instrument("SHFE.cu", lot_size=2)
    assert inst.round_qty_down(7.9) == 6 and inst.round_qty_down(1) == 0


# ---------------------------------------------------------------- status machine
ALL_EDGES = list(itertools.product(S, S))
LEGAL = {(a, b) for a, targets in ORDER_TRANSITIONS.items() for b in targets}


@pytest.mark.parametrize("current, target", [e for e in ALL_EDGES if e not in LEGAL], ids=lambda s: s.value)
def test_every_illegal_transition_raises(current, target):
    with pytest.raises(IllegalTransition, match=f"illegal transition {current.value} -> {target.value}"):
        check_transition(current, target)


@pytest.mark.parametrize("current, target", sorted(LEGAL), ids=lambda s: s.value)
def test_every_legal_transition_is_allowed(current, target):
    check_transition(current, target)


def test_terminal_statuses_have_no_way_out_except_late_fills():
    assert ORDER_TRANSITIONS[S.FILLED] == frozenset() and ORDER_TRANSITIONS[S.REJECTED] == frozenset()
    assert ORDER_TRANSITIONS[S.CANCELED] == {S.PARTIALLY_FILLED, S.FILLED}


def _fill(tid, qty, px="72000", coid="d1:A:0"):
    return Fill(trade_id=tid, client_order_id=coid, venue_order_id="v1", instrument="SHFE.cu", side=Side.BUY,
                qty=qty, price=Decimal(px), ts_ns=1)


def _report(kind, status, **kw):
    return ExecutionReport(kind=kind, client_order_id="d1:A:0", venue="SHFE", instrument="SHFE.cu", status=status, **kw)


def _working(qty=5):
    st = OrderState(request=order("SHFE.cu", "BUY", qty, "72000"))
    st.transition(S.SUBMITTED)
    st.apply(_report(ExecReportKind.ACK, S.ACCEPTED, venue_order_id="v1"))
    return st


def test_the_same_fill_applied_twice_is_a_no_op():
    st = _working()
    assert st.apply(_report(ExecReportKind.FILL, S.PARTIALLY_FILLED, fill=_fill("t1", 2)))
    assert not st.apply(_report(ExecReportKind.FILL, S.PARTIALLY_FILLED, fill=_fill("t1", 2)))
    assert st.filled_qty == 2 and st.status is S.PARTIALLY_FILLED and st.leaves_qty == 3


def test_fills_complete_the_order_and_average_price_is_exact():
    st = _working(3)
    st.apply(_report(ExecReportKind.FILL, S.PARTIALLY_FILLED, fill=_fill("t1", 1, "72000")))
    st.apply(_report(ExecReportKind.FILL, S.FILLED, fill=_fill("t2", 2, "72010")))
    assert st.status is S.FILLED and st.avg_price == Decimal("216020") / 3


def test_a_fill_that_overtakes_the_ack_leaves_the_order_partially_filled():
    st = OrderState(request=order("SHFE.cu", "BUY", 5, "72000"))
    st.transition(S.SUBMITTED)
    st.apply(_report(ExecReportKind.FILL, S.PARTIALLY_FILLED, fill=_fill("t1", 2)))
    assert not st.apply(_report(ExecReportKind.ACK, S.ACCEPTED))  # stale ack ignored
    assert st.status is S.PARTIALLY_FILLED


def test_a_fill_after_a_confirmed_cancel_is_counted():
    st = _working(5)
    st.transition(S.PENDING_CANCEL)
    st.apply(_report(ExecReportKind.CANCELED, S.CANCELED))
    assert st.leaves_qty == 0
    st.apply(_report(ExecReportKind.FILL, S.PARTIALLY_FILLED, fill=_fill("late", 2)))
    assert st.filled_qty == 2 and st.status is S.CANCELED


def test_a_rejected_cancel_returns_to_the_previous_state():
    st = _working(5)
    st.apply(_report(ExecReportKind.FILL, S.PARTIALLY_FILLED, fill=_fill("t1", 1)))
    st.transition(S.PENDING_CANCEL)
    st.apply(_report(ExecReportKind.CANCEL_REJECTED, S.PARTIALLY_FILLED, reason=RejectReason.TOO_LATE_TO_CANCEL))
    assert st.status is S.PARTIALLY_FILLED


def test_an_unknown_outcome_is_resolved_by_a_status_report():
    st = OrderState(request=order("SHFE.cu", "BUY", 5, "72000"))
    st.transition(S.SUBMITTED)
    st.transition(S.UNKNOWN)
    assert st.status.is_live
    st.apply(_report(ExecReportKind.STATUS, S.REJECTED, reason=RejectReason.MARKET_CLOSED))
    assert st.status is S.REJECTED and st.leaves_qty == 0


def test_nothing_moves_a_filled_order():
    st = _working(1)
    st.apply(_report(ExecReportKind.FILL, S.FILLED, fill=_fill("t1", 1)))
    assert not st.apply(_report(ExecReportKind.CANCELED, S.CANCELED))
    assert st.status is S.FILLED


def test_a_limit_order_needs_a_price():
    with pytest.raises(ValidationError, match="LIMIT order d1:A:0: price is required"):
        order("SHFE.cu", "BUY", 1, None)


@pytest.mark.parametrize("bad", [{"qty": 0}, {"qty": -1}])
def test_order_quantity_must_be_positive(bad):
    with pytest.raises(ValidationError, match="qty"):
        order("SHFE.cu", "BUY", bad["qty"], "72000")


def test_order_price_must_be_positive_and_finite():
    for px in ("0", "-1", "NaN", "Infinity"):
        with pytest.raises(ValidationError, match="price"):
            order("SHFE.cu", "BUY", 1, px)


def test_a_cancel_sent_before_the_ack_can_cross_the_venues_reject_of_the_order():
    # seen in the demo: replenish order sent, cancel sent, the venue had rejected the order
    st = OrderState(request=order("SHFE.cu", "BUY", 5, "72000"))
    st.transition(S.SUBMITTED)
    st.transition(S.PENDING_CANCEL)
    st.apply(_report(ExecReportKind.REJECTED, S.REJECTED, reason=RejectReason.PRICE_OUT_OF_LIMIT))
    assert st.status is S.REJECTED and st.leaves_qty == 0
    assert st.reject_reason is RejectReason.PRICE_OUT_OF_LIMIT


def test_a_cancel_rejected_before_the_ack_returns_to_submitted_not_a_guessed_accepted():
    st = OrderState(request=order("SHFE.cu", "BUY", 5, "72000"))
    st.transition(S.SUBMITTED)
    st.transition(S.PENDING_CANCEL)
    st.apply(_report(ExecReportKind.CANCEL_REJECTED, S.PENDING_CANCEL, reason=RejectReason.TOO_LATE_TO_CANCEL))
    assert st.status is S.SUBMITTED
    st.apply(_report(ExecReportKind.STATUS, S.REJECTED, reason=RejectReason.PRICE_OUT_OF_LIMIT))
    assert st.status is S.REJECTED
