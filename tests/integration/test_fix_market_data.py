"""Market data over the FIX session (MarketDataRequest V, snapshot W, incremental X), through a
real socket on 127.0.0.1 (no Ray).

The gateway core drains what the ``fix`` adapter receives (``market_data: fix``, the default):
its normaliser, gap tracking, STALE marking and clock calibration apply to it as to any feed.
Each test starts and stops its own loopback exchange; the exchange's book is moved through its
simulated venue (``market``), and what the gateway publishes must be that book.
"""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from testkit import instrument, quote, venue, wait_until
from xmc_actors.core.clock import SystemClock
from xmc_actors.core.gateway_core import GatewayCore
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import EventKind
from xmc_actors.model.quotes import QuoteStatus
from xmc_actors.venues.fix.adapter import FixAdapter
from xmc_actors.venues.fix.exchange import FixExchange
from xmc_actors.venues.fix.params import FixVenueParams

from test_fix_session import INST, _params, exchange  # noqa: F401 - the loopback exchange fixture

pytestmark = pytest.mark.timeout(60)


def _gateway(ex: FixExchange, tmp_path, **kw):
    p = _params(ex, tmp_path, **kw)
    sink = MemorySink()
    adapter = FixAdapter(p, venue("LME"), [instrument(INST)], SystemClock(), gateway="gateway-LME")
    core = GatewayCore(venue("LME"), [instrument(INST)], adapter, SystemClock(), sink, name="gateway-LME")
    assert adapter.connected(), "the adapter logs on to the loopback exchange"
    return core, adapter, sink


@pytest.fixture
def gateway(exchange, tmp_path):
    core, adapter, sink = _gateway(exchange, tmp_path)
    yield core, adapter, sink
    adapter.close()


def _market(ex: FixExchange, bid: str, ask: str, size: int = 5, **kw) -> None:
    ex.market([quote(INST, bid, ask, bid_size=size, ask_size=size, ts_ns=time.time_ns(), **kw)])


def _published(core: GatewayCore, bid: str, ask: str, status: QuoteStatus = QuoteStatus.OK, timeout: float = 10.0):
    def seen():
        core.tick()
        q = core.latest.get(INST)
        return q if q is not None and q.bid == Decimal(bid) and q.ask == Decimal(ask) and q.status is status else None

    return wait_until(seen, timeout, f"the gateway publishes {bid}/{ask} {status.value}")


def _venue_top(ex: FixExchange) -> tuple[Decimal, Decimal]:
    b = ex.sim.books[INST]
    return Decimal(b.bids[0][0]), Decimal(b.asks[0][0])


def test_subscribed_on_logon_quotes_arrive_as_incremental_refreshes(exchange, gateway):
    core, adapter, _ = gateway
    wait_until(lambda: exchange.md_subs.get(INST), 5, "the adapter subscribes on logon")

    _market(exchange, "9799", "9801", size=4)
    q = _published(core, "9799", "9801")
    _market(exchange, "9799.5", "9801", size=6)
    q2 = _published(core, "9799.5", "9801")

    assert q.bid_size == 4 and q2.bid_size == 6 and q2.seq > q.seq
    assert exchange.status()["counters"].get("md_updates", 0) >= 2
    assert adapter.counters.get("md_updates", 0) >= 2
    # the message timestamps feed the clock calibration (the venue's stamps, not ours)
    assert core.calibrator.estimate().source != "none"
    assert core.counters["bad_input"] == 0


def test_a_book_already_there_arrives_as_a_snapshot_on_logon(exchange, tmp_path):
    _market(exchange, "9790", "9792", size=3)
    core, adapter, _ = _gateway(exchange, tmp_path)
    try:
        q = _published(core, "9790", "9792")
        assert q.bid_size == 3 and q.ask_size == 3
        assert adapter.counters.get("md_snapshots", 0) >= 1
    finally:
        adapter.close()


def test_lost_incremental_refresh_is_repaired_by_a_snapshot(exchange, gateway):
    """An X lost on the way: the next message shows a sequence gap, the venue answers the
    resend with a gap fill (market data is not resent), the adapter asks for a snapshot and the
    gateway's book is the venue's again; meanwhile nothing wrong was published as OK."""
    core, adapter, sink = gateway
    wait_until(lambda: exchange.md_subs.get(INST), 5, "subscribed")
    _market(exchange, "9799", "9801")
    _published(core, "9799", "9801")
    seen: list = []
    publish = core._publish
    core._publish = lambda q: (seen.append((q.bid, q.ask, q.status)), publish(q))[1]

    exchange.lose_market_data(1)
    _market(exchange, "9795", "9801")  # this update is lost on the way
    _market(exchange, "9795", "9803")  # this one arrives, after a gap

    q = _published(core, "9795", "9803")
    assert (q.bid, q.ask) == _venue_top(exchange)
    assert exchange.status()["counters"].get("md_lost") == 1
    assert exchange.status()["counters"].get("gap_fills", 0) >= 1
    assert adapter.counters.get("md_losses", 0) >= 1 and adapter.counters.get("md_snapshots", 0) >= 1
    # the book that missed the update (the old bid with the new ask) was never published as OK
    assert (Decimal("9799"), Decimal("9803"), QuoteStatus.OK) not in seen, seen
    assert not [e for e in sink.events if e.kind is EventKind.BAD_INPUT]


def test_dropped_connection_resubscribes_and_the_snapshot_replaces_the_book(exchange, gateway):
    core, adapter, _ = gateway
    wait_until(lambda: exchange.md_subs.get(INST), 5, "subscribed")
    _market(exchange, "9799", "9801")
    _published(core, "9799", "9801")

    exchange.drop()
    wait_until(lambda: (core.tick(), not adapter.connected())[1] or not exchange.md_subs, 5, "the drop is seen")
    _market(exchange, "9780", "9782")  # moves while we are away: nobody subscribed to tell
    q = _published(core, "9780", "9782", timeout=15)

    assert adapter.counters.get("logons", 0) >= 2
    try:
        wait_until(lambda: (core.tick(), exchange.md_subs.get(INST))[1], 5, "subscribed again on the new logon")
    except AssertionError:
        raise AssertionError(f"not subscribed again: adapter {adapter.counters} exchange {exchange.status()}") from None
    assert q.bid_size == 5


def test_malformed_market_data_is_bad_input_and_a_snapshot_repairs_the_book(exchange, gateway):
    core, adapter, sink = gateway
    wait_until(lambda: exchange.md_subs.get(INST), 5, "subscribed")
    _market(exchange, "9799", "9801")
    _published(core, "9799", "9801")

    exchange.malformed("bad_market_data")
    wait_until(lambda: (core.tick(), core.bad_input.get("MALFORMED_MARKET_DATA", 0))[1], 5,
               "the malformed refresh is recorded as BAD_INPUT")
    _market(exchange, "9798", "9801")
    q = _published(core, "9798", "9801")

    bad = [e for e in sink.events if e.kind is EventKind.BAD_INPUT]
    assert bad and bad[0].reason == "MALFORMED_MARKET_DATA" and "price" in bad[0].payload["detail"], bad
    assert adapter.connected(), "the session goes on"
    assert q.bid_size == 5


def test_unknown_symbol_request_is_refused_by_the_venue_and_recorded(exchange, tmp_path):
    core, adapter, sink = _gateway(exchange, tmp_path, symbols={INST: "NOSUCH"})
    try:
        wait_until(lambda: (core.tick(), core.bad_input.get("MD_REQUEST_REJECTED", 0))[1], 5,
                   "the venue's MarketDataRequestReject is recorded")
        ev = [e for e in sink.events if e.kind is EventKind.BAD_INPUT][0]
        assert "NOSUCH" in ev.payload["detail"]
        assert adapter.connected()
    finally:
        adapter.close()


def test_market_data_off_sends_no_request(exchange, tmp_path):
    core, adapter, _ = _gateway(exchange, tmp_path, market_data="off")
    try:
        _market(exchange, "9799", "9801")
        time.sleep(0.3)
        core.tick()
        assert not exchange.md_subs and exchange.status()["counters"].get("md_requests", 0) == 0
        assert INST not in core.latest
    finally:
        adapter.close()


def test_market_data_control_needs_an_exchange_control_channel():
    with pytest.raises(ValueError, match="exchange_control"):
        FixVenueParams.model_validate(dict(port=1, sender_comp_id="A", target_comp_id="B", market_data="control"))


def test_requests_a_resend_gap_fills_away_are_made_again(exchange, gateway):
    """The venue asks us to resend from 1 after losing what it read, including our market-data
    subscription: the engine gap-fills (it keeps nothing to resend), and the adapter makes the
    logon's requests again (subscription, status of unknown orders), never an order. Without
    that, a subscription sent right after a logon that raced a resend request was lost."""
    core, adapter, _ = gateway
    wait_until(lambda: exchange.md_subs.get(INST), 5, "subscribed")
    with exchange.lock:
        exchange.md_subs.clear()  # what the venue lost with the messages it asks for
    received = list(exchange.received())

    exchange.ask_resend(1)

    wait_until(lambda: (core.tick(), exchange.md_subs.get(INST))[1], 5, "subscribed again after the gap fill")
    assert adapter.counters.get("requests_reissued", 0) >= 1
    assert exchange.received() == received, "no order was sent again"
    _market(exchange, "9777", "9779")
    _published(core, "9777", "9779")
