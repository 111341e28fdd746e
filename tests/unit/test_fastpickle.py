"""Compact pickling of the models that cross Ray calls: exact round trips."""
from __future__ import annotations

import pickle
from decimal import Decimal

import pytest
import ray.cloudpickle as cloudpickle

from xmc_actors.model.market import Side
from xmc_actors.model.orders import (
    ExecReportKind, ExecutionReport, Fill, OrderRequest, OrderStatus, OrderType, RejectReason, TimeInForce,
)
from xmc_actors.model.pairs import ExecutionMode, LegIntent, PairIntent
from xmc_actors.model.quotes import Level, Quote, QuoteStatus


def _objects() -> list[object]:
    req = OrderRequest(client_order_id="d1:A:0", decision_id="d1", leg="A", account="cn", instrument="SHFE.cu",
                       side=Side.SELL, qty=3, order_type=OrderType.IOC, tif=TimeInForce.IOC, price=Decimal("72010.0"))
    fill = Fill(trade_id="t1", client_order_id="d1:A:0", venue_order_id="v1", instrument="SHFE.cu", side=Side.SELL,
                qty=2, price=Decimal("72010.50"), ts_ns=5, fee=Decimal("1.2E+1"))
    rep = ExecutionReport(kind=ExecReportKind.FILL, client_order_id="d1:A:0", venue="SHFE", instrument="SHFE.cu",
                          status=OrderStatus.PARTIALLY_FILLED, filled_qty=2, leaves_qty=1,
                          avg_price=Decimal("72010.50"), fill=fill, ts_ns=7)
    rej = ExecutionReport(kind=ExecReportKind.REJECTED, client_order_id="d1:B:0", venue="LME", instrument="LME.CA3M",
                          status=OrderStatus.REJECTED, reason=RejectReason.MARKET_CLOSED, text="closed")
    intent = PairIntent(decision_id="d1", strategy="s", mode=ExecutionMode.SPEED, legs=(
        LegIntent(leg="A", instrument="SHFE.cu", account="cn", side=Side.BUY, qty=1, limit_price=Decimal("72000")),
        LegIntent(leg="B", instrument="LME.CA3M", account="us", side=Side.SELL, qty=1, visible_qty=4)))
    quote = Quote(instrument="SHFE.cu", bid=Decimal("1.10"), ask=None, bids=(Level(price=Decimal("1.10"), size=3),),
                  venue_ts_ns=1, status=QuoteStatus.STALE)
    return [req, fill, rep, rej, intent, quote]


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_models_on_the_order_path_round_trip_exactly(dumps) -> None:
    # Arrange
    objs = _objects()
    # Act
    back = pickle.loads(dumps(objs))
    # Assert
    assert back == objs
    for a, b in zip(back, objs):
        assert type(a) is type(b) and a.model_fields_set == b.model_fields_set
        for name in type(b).model_fields:
            va, vb = getattr(a, name), getattr(b, name)
            assert type(va) is type(vb), name
            if isinstance(vb, Decimal):
                assert va.as_tuple() == vb.as_tuple(), name  # exponent kept: 72010.50 stays 72010.50


def test_a_value_that_is_not_an_enum_member_is_kept_as_it_was() -> None:
    # Arrange: an unvalidated object (model_construct) with a plain string where an enum belongs
    odd = OrderRequest.model_construct(client_order_id="x:A:0", decision_id="x", leg="A", account="a",
                                       instrument="I.x", side="SIDEWAYS", qty=1)
    # Act
    back = pickle.loads(cloudpickle.dumps(odd))
    # Assert
    assert back.side == "SIDEWAYS" and back.model_fields_set == odd.model_fields_set


def test_wire_bytes_round_trip_every_model_exactly_including_nested_and_sequences() -> None:
    from xmc_actors.model.fastpickle import from_wire, to_wire

    objs = _objects()
    back = from_wire(to_wire(objs))  # a list of models, one with a nested Fill, one with legs and levels
    assert isinstance(back, tuple) and len(back) == len(objs)
    for a, b in zip(objs, back):
        assert type(b) is type(a) and b == a
        assert b.model_fields_set == a.model_fields_set
    rep, fill = back[2], back[1]
    assert str(rep.fill.fee) == str(objs[2].fill.fee) and str(fill.price) == "72010.50"  # exponents kept
    assert isinstance(back[4].legs, tuple) and hash(back[5]) == hash(objs[5])


@pytest.mark.parametrize("data, why", [
    (b"\xc1", "undecodable"),
    (b"\x92\xa1", "undecodable"),
    ("not bytes", "expected bytes"),
])
def test_wire_bytes_that_are_not_an_encoding_are_refused_with_the_reason(data, why) -> None:
    from xmc_actors.model.fastpickle import from_wire

    with pytest.raises(ValueError, match=why):
        from_wire(data)


def test_wire_refuses_unknown_models_and_wrong_field_counts() -> None:
    import msgpack

    from xmc_actors.model.fastpickle import from_wire

    unknown = msgpack.packb(msgpack.ExtType(42, msgpack.packb(("Nope", (1,), 0))))
    short = msgpack.packb(msgpack.ExtType(42, msgpack.packb(("OrderRequest", ("d1:A:0",), 1))))
    with pytest.raises(ValueError, match="'Nope' is not a wire model"):
        from_wire(unknown)
    with pytest.raises(ValueError, match="OrderRequest: expected 15 field values"):
        from_wire(short)
