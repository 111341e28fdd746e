"""Broker positions over a real FIX session: the adapter (QuickFIX initiator) asks the loopback
exchange with RequestForPositions (AN) and reads its RequestForPositionsAck (AO) and
PositionReports (AP); the exchange answers from the simulated venue's own positions.

Real sockets on 127.0.0.1, no Ray; each test starts and stops its exchange.
"""
from __future__ import annotations

import time

import pytest

from testkit import instrument, order, quote, venue, wait_until
from xmc_actors.core.clock import SystemClock
from xmc_actors.core.gateway_core import GatewayCore
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import OrderType, TimeInForce
from xmc_actors.venues.fix import codec as C
from xmc_actors.venues.fix.adapter import FixAdapter
from xmc_actors.venues.fix.exchange import FixExchange
from xmc_actors.venues.fix.params import FixVenueParams

pytestmark = pytest.mark.timeout(60)
INST, INST2 = "LME.CA3M", "LME.CA15"


@pytest.fixture
def exchange():
    ex = FixExchange(venue("LME"), [instrument(INST), instrument(INST, id=INST2, symbol="CA15")], comp_id="EXCH", control_port=0)
    ex.start()
    yield ex
    ex.stop()


def _adapter(ex: FixExchange, tmp_path, store: str = "fix", **kw) -> FixAdapter:
    base = dict(port=ex.port, sender_comp_id="GW", target_comp_id="EXCH", heartbeat_s=1, reset_on_logon=True,
                store_path=str(tmp_path / store), ack_timeout_ms=1500, positions_timeout_ms=1000,
                positions_accounts=["acc"], market_data="off")
    return FixAdapter(FixVenueParams.model_validate({**base, **kw}), venue("LME"), [instrument(INST), instrument(INST, id=INST2, symbol="CA15")],
                      SystemClock(), gateway="gateway-LME")


def _core(a: FixAdapter) -> GatewayCore:
    return GatewayCore(venue("LME"), [instrument(INST), instrument(INST, id=INST2, symbol="CA15")], a, SystemClock(), MemorySink(),
                       name="gateway-LME")


def _trade(ex: FixExchange, core: GatewayCore) -> None:
    """Fills at the exchange: +5 then -2 copper, -3 aluminium on account acc."""
    now = time.time_ns()
    ex.market([quote(INST, "9799", "9801", bid_size=9, ask_size=9, ts_ns=now),
               quote(INST2, "2399", "2401", bid_size=9, ask_size=9, ts_ns=now)])
    ioc = dict(order_type=OrderType.IOC, tif=TimeInForce.IOC)
    for n, (inst, side, qty, px) in enumerate([(INST, "BUY", 5, "9801"), (INST, "SELL", 2, "9799"),
                                               (INST2, "SELL", 3, "2399")]):
        core.place(order(inst, side, qty, px, decision_id=f"d{n}", **ioc))


def test_the_snapshot_is_the_brokers_positions_not_the_sessions_fills(exchange, tmp_path):
    a = _adapter(exchange, tmp_path)
    try:
        # asked on logon and answered before the adapter is handed over: nothing held yet
        assert a.positions_source == "venue" and a.positions() == {}
        _trade(exchange, _core(a))
        want = {"acc": {INST: 3, INST2: -3}}
        assert exchange.positions() == want
        # positions() answers from the last snapshot and asks again: a newer one follows
        got = wait_until(lambda: a.positions() == want and a.positions_status(), 5, "a snapshot after the fills")
        assert got["source"] == "venue" and got["reason"] == "" and got["age_ms"] < 5000
        assert a.counters["position_snapshots"] >= 2
    finally:
        a.close()
    # a new session on a fresh store (a restarted deployment) has no fills of its own, yet
    # reports the broker's positions, which is what the risk guard verifies the ledger against
    b = _adapter(exchange, tmp_path, store="fix-b")
    try:
        assert b.session_positions() == {}
        assert b.positions_source == "venue" and b.positions() == want
        st = b.status()["positions"]
        assert st["source"] == "venue" and st["as_of_ns"] <= time.time_ns() and st["age_ms"] >= 0  # how fresh
        assert exchange.counters["position_requests"] >= 1
    finally:
        b.close()


def test_a_snapshot_is_only_complete_once_every_announced_report_arrived(exchange, tmp_path):
    a = _adapter(exchange, tmp_path)
    try:
        _trade(exchange, _core(a))
        exchange.positions_mode("ignore")
        assert a.positions() == {}, "the previous complete snapshot (before the fills) is what is answered"
        exchange.positions_mode("answer")
        wait_until(lambda: a.positions() == exchange.positions(), 5, "the next round completes")
    finally:
        a.close()


@pytest.mark.parametrize("mode, reason", [
    ("business_reject", "BusinessMessageReject"),
    ("session_reject", "session Reject"),
    ("unsupported", "PosReqResult 4"),
    ("ignore", "no complete answer"),
])
def test_a_broker_that_does_not_support_positions_leaves_session_fills(exchange, tmp_path, mode, reason):
    exchange.positions_mode(mode)
    a = _adapter(exchange, tmp_path, positions_timeout_ms=500)
    try:
        core = _core(a)
        assert a.positions_source == "session fills"
        _trade(exchange, core)
        # the session's own fills, never a broker's word it did not give
        assert a.positions() == {"acc": {INST: 3, INST2: -3}}
        st = a.status()["positions"]
        assert st["source"] == "session fills" and reason in st["reason"], st
        if mode != "ignore":
            # refused: never asked again (a broker that does not support it is not pestered)
            n = exchange.counters["position_requests"]
            a.positions()
            time.sleep(0.3)
            assert exchange.counters["position_requests"] == n and st["query"] is False
    finally:
        a.close()


def test_the_query_can_be_turned_off(exchange, tmp_path):
    a = _adapter(exchange, tmp_path, positions_query=False)
    try:
        _trade(exchange, _core(a))
        assert a.positions_source == "session fills" and a.positions() == {"acc": {INST: 3, INST2: -3}}
        assert "positions_query is false" in a.status()["positions"]["reason"]
        assert exchange.counters.get("position_requests", 0) == 0
    finally:
        a.close()


def test_a_malformed_position_report_is_counted_and_never_taken(exchange, tmp_path):
    a = _adapter(exchange, tmp_path)
    try:
        _trade(exchange, _core(a))
        a.drain_bad_input()
        exchange.positions_mode("malformed", 1)
        a.refresh_positions(force=True)
        bad = wait_until(lambda: [b for b in a.drain_bad_input() if b["reason"] == "MALFORMED_POSITION_REPORT"], 5,
                         "the malformed report is counted")
        assert bad[0]["tag"] == C.LONG_QTY and "LongQty" in bad[0]["detail"]
        # the round with the malformed report is not taken: the snapshot before the fills stands
        assert a.positions_source == "venue" and a._pos_snapshot == {}
        assert "malformed" in a.status()["positions"]["reason"]
        # and the next round (asked by that positions() call) is good
        wait_until(lambda: a.positions() == exchange.positions(), 5, "a good snapshot again")
        assert a.connected() and exchange.counters["position_reports_malformed"] == 1
    finally:
        a.close()


def test_a_malformed_first_snapshot_leaves_session_fills(exchange, tmp_path):
    exchange.positions_mode("malformed", 1)
    # a position at the exchange from an earlier session, so the first answer has a report
    first = _adapter(exchange, tmp_path, store="fix-0", positions_query=False)
    try:
        _trade(exchange, _core(first))
    finally:
        first.close()
    a = _adapter(exchange, tmp_path)
    try:
        assert a.positions_source == "session fills" and a.counters["bad_input"] >= 1
        assert a.status()["bad_input"][-1]["reason"] == "MALFORMED_POSITION_REPORT"
        assert "malformed" in a.status()["positions"]["reason"]
        assert a.session_positions() == {} and a.positions() == {}  # its own (no) fills, not a broken report
        wait_until(lambda: a.positions_source == "venue", 5, "the next round is good")
        assert a.positions() == exchange.positions()
    finally:
        a.close()


def test_a_session_drop_asks_again_on_the_next_logon(exchange, tmp_path):
    a = _adapter(exchange, tmp_path)
    try:
        _trade(exchange, _core(a))
        exchange.drop()
        wait_until(lambda: not a.connected(), 5, "the drop is seen")
        assert a.positions_source == "session fills"
        wait_until(lambda: a.connected() and a.positions_source == "venue", 15, "logon again and a snapshot")
        assert a.positions() == exchange.positions()
    finally:
        a.close()


def test_position_report_parsing_names_the_field_at_fault(exchange):
    smap = exchange.smap
    good = C.position_report("r1", "p1", "acc", INST, 4, 1, 1, smap, time.time_ns())
    line = C.parse_position_report(good.toString(), smap)
    assert (line.req_id, line.account, line.instrument, line.net, line.total) == ("r1", "acc", INST, 3, 1)
    missing = C.position_report("r1", "p1", "acc", INST, 4, 1, 1, smap, time.time_ns(), quantities=False)
    with pytest.raises(C.FixDecodeError) as e:
        C.parse_position_report(missing.toString(), smap)
    assert e.value.tag == C.LONG_QTY
    # entries without a TOT: one is the position; several (SOD and FIN) cannot be added up
    import quickfix as fix

    one = C.position_report("r1", "p1", "acc", INST, 4, 1, 1, smap, time.time_ns())
    one_txt = one.toString().replace(f"{C.POS_TYPE}={C.POS_TYPE_TOTAL}\x01", f"{C.POS_TYPE}=SOD\x01")
    assert C.parse_position_report(one_txt, smap).net == 3
    two = C.position_report("r1", "p1", "acc", INST, 4, 1, 1, smap, time.time_ns())
    g = fix.Group(C.NO_POSITIONS, C.POS_TYPE)
    g.setField(C.POS_TYPE, "FIN")
    g.setField(C.LONG_QTY, "4")
    g.setField(C.SHORT_QTY, "1")
    two.addGroup(g)
    two_txt = two.toString().replace(f"{C.POS_TYPE}={C.POS_TYPE_TOTAL}\x01", f"{C.POS_TYPE}=SOD\x01")
    with pytest.raises(C.FixDecodeError, match="2 position entries \\(SOD, FIN\\)") as e:
        C.parse_position_report(two_txt, smap)
    assert e.value.tag == C.POS_TYPE
    unknown = good.toString().replace(f"55={smap.symbol(INST)}\x01", "55=ZZZ\x01")
    with pytest.raises(C.FixDecodeError) as e:
        C.parse_position_report(unknown, smap)
    assert e.value.tag == C.SYMBOL


def test_a_broker_account_is_asked_about_only_once_it_stands_for_exactly_one_of_ours(exchange, tmp_path):
    # the session's orders carry broker account 'acc'; no deployment account is known yet:
    # nothing is asked (the broker's figures are never filed under its own account id)
    a = _adapter(exchange, tmp_path, account="acc", positions_accounts=[])
    try:
        assert a.positions_source == "session fills" and a.counters.get("position_requests", 0) == 0
        assert "no account of the deployment known yet" in a.positions_status()["reason"]
        a.set_position_accounts(["us-a"])  # what the gateway hands over at start
        wait_until(lambda: a.positions_source == "venue", 5, "a snapshot for us-a")
        assert a.positions() == {}
        # a second account carried by the same broker account: the snapshot cannot be split,
        # so the one filed under us-a is not the venue's word any more
        a.set_position_accounts(["us-b"])
        assert a.positions_source == "session fills" and "cannot be split" in a.positions_status()["reason"]
    finally:
        a.close()
