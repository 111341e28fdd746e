"""FIX market-data messages (V, W, X) both ways, and the subscriber's book (no socket).

Messages are built by the codec, written as FIX text, checked by the QuickFIX engine against
its FIX 4.4 dictionary (a parser nobody on this team wrote), then read back by the codec.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
import quickfix as fix
from hypothesis import given, settings
from hypothesis import strategies as st

from testkit import instrument
from xmc_actors.venues.fix import codec as C
from xmc_actors.venues.fix.adapter import data_dictionary_path

INST = "LME.CA3M"
SMAP = C.SymbolMap.build("LME", [instrument(INST)])
TICK = instrument(INST).tick_size
DD = fix.DataDictionary(data_dictionary_path())
TS = 1_790_000_000_123_456_000


def _wire(m) -> str:
    """The message as sent, after the engine has validated it against FIX 4.4."""
    raw = m.toString()
    fix.Message(raw, DD, True)  # raises on a message FIX 4.4 does not allow
    return raw


books = st.tuples(
    st.lists(st.integers(1, 50), max_size=6),    # bid sizes, best first
    st.lists(st.integers(1, 50), max_size=6),    # ask sizes
    st.integers(0, 3), st.integers(1, 4),        # where the bid starts, where the ask starts
    st.one_of(st.none(), st.integers(-5, 5)),    # last trade
)


def _book(b) -> tuple[list[tuple[Decimal, int]], list[tuple[Decimal, int]], Decimal | None]:
    bid_sizes, ask_sizes, b0, a0, last = b
    bids = [(Decimal(9000) - (b0 + k) * TICK, z) for k, z in enumerate(bid_sizes)]
    asks = [(Decimal(9000) + (a0 + k) * TICK, z) for k, z in enumerate(ask_sizes)]
    return bids, asks, (Decimal(9000) + last * TICK if last is not None else None)


@settings(max_examples=150, deadline=None)
@given(st.lists(books, min_size=1, max_size=6))
def test_incremental_refreshes_take_a_subscriber_to_every_book_the_venue_shows(seq):
    """Whatever the books in between, a snapshot then one X per change leaves the subscriber's
    book equal to the venue's: levels by position, sizes, the last trade."""
    first = _book(seq[0])
    book = C.MdBook(INST)
    book.replace(C.parse_md(_wire(C.md_snapshot("r", INST, C.book_entries(INST, *first, None, TS), SMAP)), SMAP))
    prev = first
    for b in seq[1:]:
        new = _book(b)
        changes = C.book_changes(INST, prev, new, TS)
        if changes:
            for e in C.parse_md(_wire(C.md_incremental("r", changes, SMAP)), SMAP):
                book.apply(e)
        assert (book.bids, book.asks) == (new[0], new[1])
        if new[2] is not None:
            assert book.last == new[2]
        prev = (new[0], new[1], new[2] if new[2] is not None else prev[2])


def test_snapshot_carries_levels_trade_settlement_and_the_venue_time():
    bids, asks = [(Decimal("9000"), 3), (Decimal("8999.5"), 5)], [(Decimal("9000.5"), 2)]
    raw = _wire(C.md_snapshot("r1", INST, C.book_entries(INST, bids, asks, Decimal("9000"), Decimal("8990"), TS), SMAP))
    book = C.MdBook(INST)
    book.replace(C.parse_md(raw, SMAP))
    w = book.wire(7, "snapshot", book.ts_ns)
    assert (w["bid"], w["bid_size"], w["ask"], w["ask_size"]) == (Decimal("9000"), 3, Decimal("9000.5"), 2)
    assert w["bids"] == bids and w["asks"] is None
    assert (w["last"], w["settlement"], w["ts"], w["seq"]) == (Decimal("9000"), Decimal("8990"), TS, 7)


def test_market_data_request_round_trips():
    raw = _wire(C.md_request("gw-md1", ["CA3M"], C.MD_SUBSCRIBE, 5))
    assert C.parse_md_request(raw) == ("gw-md1", "1", 5, ["CA3M"])


@pytest.mark.parametrize("mangle, tag", [
    (lambda r: r.replace("268=2", "268=3"), 268),            # more entries announced than sent
    (lambda r: r.replace("270=9000\x01", ""), 270),  # a level without its price
    (lambda r: r.replace("279=1", "279=7"), 279),            # not New, Change or Delete
    (lambda r: r.replace("271=3", "271=1.5"), 271),          # a fraction of a lot
])
def test_malformed_refresh_raises_naming_the_tag(mangle, tag):
    changes = [C.MdEntry(INST, C.MD_BID, C.MD_CHANGE, Decimal("9000"), 3, 1, TS),
               C.MdEntry(INST, C.MD_OFFER, C.MD_CHANGE, Decimal("9001"), 4, 1, TS)]
    raw = mangle(C.md_incremental("r", changes, SMAP).toString())
    with pytest.raises(C.FixDecodeError) as e:
        C.parse_md(raw, SMAP)
    assert e.value.tag == tag


def test_request_without_instruments_or_with_a_bad_kind_is_refused():
    raw = C.md_request("r", ["CA3M"]).toString()
    with pytest.raises(C.FixDecodeError, match="263"):
        C.parse_md_request(raw.replace("263=1", "263=9"))
    with pytest.raises(C.FixDecodeError, match="146"):
        C.parse_md_request(raw.replace("146=1", "146=0").replace("\x0155=CA3M", ""))
