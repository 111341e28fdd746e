"""The normaliser refuses every kind of bad venue message with a named reason and never raises."""
from __future__ import annotations

import math
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from testkit import instrument, quote, venue
from xmc_actors.core.clock import SimClock
from xmc_actors.core.gateway_core import GatewayCore
from xmc_actors.core.normalise import BadInput, BadInputReason, Normaliser
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import EventKind, Quote
from xmc_actors.venues.sim import SimExchange
from xmc_actors.venues.sim_config import SimVenueParams

NOW = 1_735_808_400_000_000_000
CU = instrument("SHFE.cu")
N = Normaliser({CU.id: CU})


def _msg(**kw: object) -> dict:
    m = {"type": "quote", "instrument": "SHFE.cu", "seq": 1, "ts": NOW, "bid": 72000, "bid_size": 3,
         "ask": 72010, "ask_size": 4}
    m.update(kw)
    return m


def test_good_message_becomes_a_calibrated_quote():
    q = N.parse(_msg(ts=NOW + 250_000_000), recv_ns=NOW, offset_ns=250_000_000)

    assert isinstance(q, Quote)
    assert (q.bid, q.ask, q.bid_size, q.ts_ns, q.venue_ts_ns) == (Decimal(72000), Decimal(72010), 3, NOW, NOW + 250_000_000)


def test_each_kind_of_bad_field_is_refused_with_its_reason_and_field():
    cases = [
        ("not a dict", BadInputReason.GARBAGE, "message"),
        (_msg(type="trade"), BadInputReason.GARBAGE, "type"),
        (_msg(instrument="LME.XX"), BadInputReason.UNKNOWN_INSTRUMENT, "instrument"),
        (_msg(bid=math.nan), BadInputReason.NON_FINITE_PRICE, "bid"),
        (_msg(ask=math.inf), BadInputReason.NON_FINITE_PRICE, "ask"),
        (_msg(bid="NaN"), BadInputReason.NON_FINITE_PRICE, "bid"),
        (_msg(bid=0), BadInputReason.NON_POSITIVE_PRICE, "bid"),
        (_msg(ask=-10), BadInputReason.NON_POSITIVE_PRICE, "ask"),
        (_msg(bid=72005), BadInputReason.OFF_TICK, "bid"),
        (_msg(bid_size=0), BadInputReason.BAD_SIZE, "bid_size"),
        (_msg(ask_size=-1), BadInputReason.BAD_SIZE, "ask_size"),
        (_msg(ask_size=1.5), BadInputReason.BAD_SIZE, "ask_size"),
        (_msg(bid=72020), BadInputReason.CROSSED_BOOK, "bid/ask"),
        (_msg(bid=72010), BadInputReason.LOCKED_BOOK, "bid/ask"),
        (_msg(bid=None, ask=None), BadInputReason.EMPTY_BOOK, "bid/ask"),
        (_msg(ts=NOW + 10**11), BadInputReason.FUTURE_TS, "ts"),
        (_msg(ts=NOW - 10**13), BadInputReason.STALE_TS, "ts"),
        (_msg(ts="yesterday"), BadInputReason.GARBAGE, "ts"),
        (_msg(seq=-1), BadInputReason.BAD_SEQ, "seq"),
        (_msg(bids=[(72000, 1), "x"]), BadInputReason.GARBAGE, "bids[1]"),
    ]
    for msg, reason, field in cases:
        bad = N.parse(msg, recv_ns=NOW)
        assert isinstance(bad, BadInput), msg
        assert (bad.reason, bad.field) == (reason, field), (msg, bad)


_price = st.one_of(st.none(), st.integers(-10, 10**7), st.floats(allow_nan=True, allow_infinity=True),
                   st.decimals(allow_nan=True, allow_infinity=True), st.text(max_size=8), st.booleans(),
                   st.just(72000), st.just(72010))
_size = st.one_of(st.none(), st.integers(-5, 100), st.floats(allow_nan=True), st.text(max_size=3))
_junk = st.one_of(st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=3),
                  st.binary(max_size=5))
_message = st.one_of(
    _junk,
    st.dictionaries(st.text(max_size=10), _junk, max_size=6),
    st.fixed_dictionaries({
        "type": st.sampled_from(["quote", "snapshot", "trade", None]),
        "instrument": st.sampled_from(["SHFE.cu", "SHFE.zz", "", None]),
        "seq": st.one_of(st.integers(-3, 10**6), st.none(), st.text(max_size=2), st.booleans()),
        "ts": st.one_of(st.integers(NOW - 10**14, NOW + 10**14), st.just(NOW), st.floats(), st.none()),
        "bid": _price, "ask": _price, "bid_size": _size, "ask_size": _size,
    }, optional={"last": _price, "settlement": _price,
                 "bids": st.one_of(_junk, st.lists(st.tuples(_price, _size), max_size=3))}),
)


@settings(max_examples=3000)
@given(_message)
def test_normaliser_never_raises_and_only_lets_through_sane_quotes(msg):
    out = N.parse(msg, recv_ns=NOW)

    if isinstance(out, Quote):
        assert out.bid is None or (out.bid.is_finite() and out.bid > 0 and CU.on_grid(out.bid))
        assert out.ask is None or (out.ask.is_finite() and out.ask > 0 and CU.on_grid(out.ask))
        assert out.bid is not None or out.ask is not None
        if out.bid is not None and out.ask is not None:
            assert out.bid < out.ask
        assert (out.bid is None or out.bid_size > 0) and (out.ask is None or out.ask_size > 0)
        assert abs(out.ts_ns - NOW) <= N.max_past_ns
    else:
        assert isinstance(out, BadInput) and out.detail and out.field


@settings(max_examples=300)
@given(st.lists(_message, min_size=1, max_size=20))
def test_gateway_core_counts_and_records_every_refused_message_and_keeps_its_book(msgs):
    clock, sink = SimClock(NOW), MemorySink()
    sim = SimExchange(venue("SHFE"), [CU], SimVenueParams(enforce_sessions=False), clock)
    core = GatewayCore(venue("SHFE"), [CU], sim, clock, sink, max_past_ns=10**12)
    core.on_market(quote("SHFE.cu", 72000, 72010, ts_ns=NOW))
    before = core.counters["bad_input"]

    accepted = sum(1 for m in msgs if core.on_wire(m) is not None)

    refused = core.counters["bad_input"] - before
    assert accepted + refused == len(msgs)
    assert len([e for e in sink.events if e.kind is EventKind.BAD_INPUT]) == refused
    assert sum(core.bad_input.values()) == refused
    last = core.snapshot("SHFE.cu")
    assert last is not None and last.bid < last.ask
