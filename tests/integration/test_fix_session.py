"""The FIX adapter and the loopback FIX exchange, through a real socket on 127.0.0.1 (no Ray).

The gateway core drives the ``fix`` adapter exactly as it drives ``sim``; the exchange is
started and stopped by each test on a free port.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal

import pytest
import yaml

from testkit import ROOT, instrument, order, quote, venue, wait_until
from xmc_actors.core.clock import SystemClock
from xmc_actors.core.gateway_core import GatewayCore
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import ExecReportKind, OrderStatus, OrderType, RejectReason, TimeInForce
from xmc_actors.venues.fix.adapter import FixAdapter
from xmc_actors.venues.fix.exchange import FixExchange, control, frame_messages
from xmc_actors.venues.fix.params import FixVenueParams

pytestmark = pytest.mark.timeout(60)
INST = "LME.CA3M"


@pytest.fixture
def exchange():
    ex = FixExchange(venue("LME"), [instrument(INST)], comp_id="EXCH", control_port=0)
    ex.start()
    yield ex
    ex.stop()


def _params(ex: FixExchange, tmp_path, **kw) -> FixVenueParams:
    base = dict(port=ex.port, sender_comp_id="GW", target_comp_id="EXCH", heartbeat_s=1,
                store_path=str(tmp_path / "fix"), reconnect_interval_s=1, ack_timeout_ms=1500)
    return FixVenueParams.model_validate({**base, **kw})


@pytest.fixture
def gateway(exchange, tmp_path):
    adapter = FixAdapter(_params(exchange, tmp_path), venue("LME"), [instrument(INST)], SystemClock(),
                         gateway="gateway-LME")
    core = GatewayCore(venue("LME"), [instrument(INST)], adapter, SystemClock(), MemorySink(), name="gateway-LME")
    assert adapter.connected(), "the adapter logs on to the loopback exchange"
    yield core, adapter
    adapter.close()


def _market(ex: FixExchange, bid: str, ask: str, size: int = 5, **kw) -> None:
    ex.market([quote(INST, bid, ask, bid_size=size, ask_size=size, ts_ns=time.time_ns(), **kw)])


def _pushed(core: GatewayCore, want: int, timeout: float = 10.0) -> list:
    got: list = []

    def more() -> bool:
        core.tick()
        for reps in core.drain_pushes().values():
            got.extend(reps)
        return len(got) >= want

    wait_until(more, timeout, f"{want} pushed reports")
    return got


# ----------------------------------------------------------------------------- order entry
def test_resting_limit_order_is_acked_then_its_fill_is_pushed(exchange, gateway):
    core, _ = gateway
    _market(exchange, "9799", "9801")

    reps, _ = core.place(order(INST, "BUY", 2, "9800"))

    assert [r.kind for r in reps] == [ExecReportKind.ACK]
    assert reps[0].status is OrderStatus.ACCEPTED and reps[0].venue_order_id
    _market(exchange, "9799", "9800")
    fill = _pushed(core, 1)[0]
    assert fill.kind is ExecReportKind.FILL and fill.fill.qty == 2 and fill.fill.price == Decimal("9800")
    assert core.orders["d1:A:0"].status is OrderStatus.FILLED and core.orders["d1:A:0"].filled_qty == 2


def test_ioc_fills_what_is_visible_and_its_remainder_is_canceled(exchange, gateway):
    core, _ = gateway
    _market(exchange, "9799", "9801", size=2)

    reps, _ = core.place(order(INST, "BUY", 5, "9801", order_type=OrderType.IOC, tif=TimeInForce.IOC))

    assert [r.kind for r in reps] == [ExecReportKind.ACK, ExecReportKind.FILL, ExecReportKind.CANCELED]
    assert reps[1].fill.qty == 2 and reps[-1].filled_qty == 2 and reps[-1].status is OrderStatus.CANCELED


@pytest.mark.parametrize("setup, req_kw, reason", [
    (None, dict(qty=1, price="9800.3"), RejectReason.OFF_TICK),
    (None, dict(qty=5000, price="9800"), RejectReason.QTY_ABOVE_MAX),
    ({"kind": "halt", "instrument": INST}, dict(qty=1, price="9800"), RejectReason.HALTED),
    ({"kind": "reject_next", "reason": "INSUFFICIENT_MARGIN"}, dict(qty=1, price="9800"),
     RejectReason.INSUFFICIENT_MARGIN),
])
def test_venue_rejects_map_to_our_reject_reasons(exchange, gateway, setup, req_kw, reason):
    core, _ = gateway
    _market(exchange, "9799", "9801")
    if setup:
        exchange.inject(setup)

    reps, _ = core.place(order(INST, "BUY", req_kw["qty"], req_kw["price"]))

    assert [r.kind for r in reps] == [ExecReportKind.REJECTED]
    assert reps[0].reason is reason and reps[0].status is OrderStatus.REJECTED


def test_cancel_is_confirmed_and_a_second_cancel_is_rejected_too_late(exchange, gateway):
    core, _ = gateway
    _market(exchange, "9799", "9801")
    core.place(order(INST, "BUY", 1, "9790"))

    first, _ = core.cancel("d1:A:0")
    again, _ = core.cancel("d1:A:0")
    never, _ = core.cancel("nobody:A:0")

    assert first.kind is ExecReportKind.CANCELED and first.client_order_id == "d1:A:0"
    assert core.orders["d1:A:0"].status is OrderStatus.CANCELED
    assert again.kind is ExecReportKind.CANCEL_REJECTED and again.reason is RejectReason.TOO_LATE_TO_CANCEL
    assert never.kind is ExecReportKind.CANCEL_REJECTED and never.reason is RejectReason.UNKNOWN_ORDER


def test_a_lost_answer_is_unknown_a_status_request_resolves_it_and_its_resend_books_nothing_twice(exchange, tmp_path):
    """The venue's answer is lost on the way (the no-ack fault): the place is UNKNOWN after
    ack_timeout_ms, a status request says FILLED; the session then sees the gap, asks for a
    resend and gets the lost reports as PossDup: the fill is not counted a second time."""
    adapter = FixAdapter(_params(exchange, tmp_path, ack_timeout_ms=200, market_data="off"), venue("LME"),
                         [instrument(INST)], SystemClock(), gateway="gateway-LME")
    core = GatewayCore(venue("LME"), [instrument(INST)], adapter, SystemClock(), MemorySink(), name="gateway-LME")
    try:
        _market(exchange, "9799", "9801")
        exchange.inject({"kind": "no_ack_next"})

        reps, _ = core.place(order(INST, "BUY", 1, "9801"))
        assert reps[0].status is OrderStatus.UNKNOWN

        st = core.query("d1:A:0")
        assert st.kind is ExecReportKind.STATUS and st.status is OrderStatus.FILLED and st.filled_qty == 1
        assert core.orders["d1:A:0"].status is OrderStatus.FILLED
        assert core.query("never-sent:A:0") is None
        # the lost reports come back by resend (the next heartbeat shows the gap)
        wait_until(lambda: (core.tick(), adapter.counters.get("recovered_reports", 0))[1] >= 1, 10,
                   "the lost reports recovered by resend")
        core.tick()
        core.drain_pushes()
        assert exchange.counters.get("reports_lost", 0) >= 1
        assert core.orders["d1:A:0"].filled_qty == 1 and core.orders["d1:A:0"].status is OrderStatus.FILLED
    finally:
        adapter.close()


def test_a_duplicate_client_order_id_is_refused_by_the_venue_and_no_second_order_exists(exchange, gateway):
    core, adapter = gateway
    _market(exchange, "9799", "9801")
    req = order(INST, "BUY", 1, "9790")
    adapter.place(req)

    again = adapter.place(req)  # past the gateway's own de-duplication: straight to the venue

    assert exchange.received_orders.count(req.client_order_id) == 2
    assert exchange.order_count(req.client_order_id) == 1 and exchange.order_count() == 1
    assert [r.kind for r in again.reports] == [ExecReportKind.STATUS]
    assert again.reports[0].status is OrderStatus.ACCEPTED and "duplicate" in again.reports[0].text
    assert adapter.views[req.client_order_id].status is OrderStatus.ACCEPTED


# ----------------------------------------------------------------------------- session recovery
def test_reports_missed_while_disconnected_are_recovered_once_on_logon_again(exchange, gateway):
    core, adapter = gateway
    _market(exchange, "9799", "9801")
    core.place(order(INST, "BUY", 3, "9795"))

    exchange.drop()
    wait_until(lambda: not adapter.connected(), 5, "the adapter sees the drop")
    core.tick()
    assert core.status()["state"] == "DOWN"
    _market(exchange, "9794", "9795", size=2)   # fills 2 while nobody listens
    _market(exchange, "9793", "9795", size=1)   # and the last lot
    rep_down = core.place(order(INST, "BUY", 1, "9795", decision_id="d2"))[0][0]
    assert rep_down.kind is ExecReportKind.REJECTED and rep_down.reason is RejectReason.VENUE_ERROR  # not sent

    wait_until(adapter.connected, 10, "the adapter logs on again")
    fills = _pushed(core, 2)
    assert [f.fill.qty for f in fills] == [2, 1]
    assert adapter.counters.get("recovered_reports", 0) >= 2
    st = core.orders["d1:A:0"]
    assert st.status is OrderStatus.FILLED and st.filled_qty == 3
    time.sleep(0.3)
    core.tick()
    assert not core.drain_pushes(), "nothing is delivered twice"
    assert exchange.order_count() == 1, "the order refused while down never reached the venue"


def test_a_venue_that_stays_down_is_retried_with_growing_pauses_and_rejoined_when_it_is_back(exchange, tmp_path):
    adapter = FixAdapter(_params(exchange, tmp_path, reconnect_interval_s=1, reconnect_max_s=4), venue("LME"),
                         [instrument(INST)], SystemClock(), gateway="gw")
    try:
        assert adapter.connected()
        t0 = time.monotonic()
        exchange.refuse(9000)  # down for 9 s: every connection is closed as it is accepted
        wait_until(lambda: time.monotonic() - t0 > 9, 12, "the venue's down time")
        t_end = time.monotonic()
        tries = [t for t in exchange.connects if t0 <= t <= t_end]
        # the silence since the last attempt is a pause at least that long (under load the
        # engine's retries land late, and the longest pause may still be running at t_end)
        gaps = [b - a for a, b in zip(tries, tries[1:] + [t_end])]
        assert len(tries) >= 3, f"it kept trying: {tries}"
        # the engine alone retries every second (about 9 attempts); paused 1, 2, 4 s (+/-20%) in between
        assert len(tries) <= 7 and max(gaps) >= 2.5, f"attempts at {[round(t - t0, 2) for t in tries]}"
        assert adapter.backoff.failures >= 2 and adapter.counters.get("reconnect_pauses", 0) >= 2
        pauses = adapter.backoff.delays
        assert pauses[1] > pauses[0] * 1.2, f"the pauses grow: {pauses}"
        assert adapter.status()["reconnect"]["recent_pauses_s"]
        wait_until(adapter.connected, 10, "logon once the venue is back")
        # the supervisor wakes on the logon and resets the pauses
        wait_until(lambda: adapter.status()["reconnect"]["state"] == "CONNECTED", 2, "the backoff reset by the logon")
        assert adapter.status()["reconnect"]["failures"] == 0
    finally:
        adapter.close()


def test_a_report_sent_twice_under_new_sequence_numbers_is_booked_once(exchange, gateway):
    core, adapter = gateway
    _market(exchange, "9799", "9801")
    core.place(order(INST, "BUY", 2, "9795"))
    exchange.duplicate_next(1)

    _market(exchange, "9794", "9795")

    fills = _pushed(core, 1)
    time.sleep(0.3)
    core.tick()
    assert len(fills) == 1 and not core.drain_pushes()
    assert adapter.counters["duplicate_reports"] == 1 and core.orders["d1:A:0"].filled_qty == 2


def test_a_sequence_gap_from_the_venue_is_filled_by_resend_request(exchange, gateway):
    core, adapter = gateway
    _market(exchange, "9799", "9801")
    exchange.skip_seq(3)

    reps, _ = core.place(order(INST, "BUY", 1, "9790"))

    # (the exchange counts the request before it writes the gap fill: wait for both)
    wait_until(lambda: exchange.counters.get("resend_requests_in") and exchange.counters.get("gap_fills", 0) >= 1, 5,
               "the adapter asks for the gap and the venue fills it")
    if not reps or reps[0].status is OrderStatus.UNKNOWN:  # the ack waited behind the gap: pushed
        _pushed(core, 1)
    assert core.orders["d1:A:0"].status is OrderStatus.ACCEPTED
    assert adapter.connected()


def test_a_venue_asking_for_our_messages_again_gets_gap_fills_never_a_stale_order(exchange, gateway):
    """The venue asks us to resend from 1 (it lost what it read): our orders and cancels are
    never sent again (the engine keeps none and gap-fills them), and the session goes on.
    Raising DoNotSend from toApp instead aborted the whole process here."""
    core, adapter = gateway
    _market(exchange, "9799", "9801")
    core.place(order(INST, "BUY", 1, "9790"))
    core.cancel("d1:A:0")
    before = list(exchange.received())

    exchange.ask_resend(1)

    wait_until(lambda: exchange.next_in > 3 and adapter.counters.get("resend_requests_received"), 5,
               "the adapter answers the resend request")
    assert exchange.received() == before == ["d1:A:0"], "no NewOrderSingle reached the venue twice"
    assert exchange.order_count("d1:A:0") == 1
    reps, _ = core.place(order(INST, "BUY", 1, "9791", decision_id="d2"))
    assert reps and reps[0].kind is ExecReportKind.ACK, "the session goes on"
    assert adapter.connected() and exchange.counters.get("rejects_out", 0) == 0


def test_sequence_numbers_survive_an_adapter_restart_and_orders_are_recovered(exchange, tmp_path):
    p = _params(exchange, tmp_path)
    a1 = FixAdapter(p, venue("LME"), [instrument(INST)], SystemClock(), gateway="gw")
    _market(exchange, "9799", "9801")
    a1.place(order(INST, "BUY", 1, "9790"))
    sent_before, _ = a1.seq_nums()
    a1.close()
    wait_until(lambda: not exchange.logged_on, 5, "the exchange sees the adapter go")

    a2 = FixAdapter(p, venue("LME"), [instrument(INST)], SystemClock(), gateway="gw", restart=True)
    try:
        assert a2.connected()
        sent_after, _ = a2.seq_nums()
        assert sent_after > sent_before > 2, "sequence numbers continue from the store"
        assert exchange.logons == 2 and exchange.counters.get("rejects_out", 0) == 0
        recovered = a2.recovered_orders()
        assert [(r.client_order_id, rep.status) for r, rep in recovered] == [("d1:A:0", OrderStatus.ACCEPTED)]
    finally:
        a2.close()


def test_an_exchange_that_restarts_and_loses_its_session_is_rejoined_with_reset_on_logon(exchange, tmp_path):
    adapter = FixAdapter(_params(exchange, tmp_path, reset_on_logon=True), venue("LME"), [instrument(INST)],
                         SystemClock(), gateway="gw")
    core = GatewayCore(venue("LME"), [instrument(INST)], adapter, SystemClock(), MemorySink())
    try:
        _market(exchange, "9799", "9801")
        core.place(order(INST, "BUY", 1, "9790"))
        exchange.restart()
        _market(exchange, "9789", "9790")  # fills while the exchange's session state is gone
        wait_until(lambda: exchange.logons >= 2 and adapter.connected(), 10, "logon again with a reset")
        assert adapter.seq_nums()[0] < 10
        st = core.query("d1:A:0")
        assert st.status is OrderStatus.FILLED and st.filled_qty == 1  # the fill report is gone; its status is not
    finally:
        adapter.close()


# ----------------------------------------------------------------------------- malformed input
@pytest.mark.parametrize("kind", ["bad_checksum", "bad_body_length", "garbage", "missing_tag", "unknown_order"])
def test_malformed_input_is_counted_answered_and_the_session_keeps_trading(exchange, gateway, kind):
    core, adapter = gateway
    _market(exchange, "9799", "9801")

    exchange.malformed(kind)

    if kind == "missing_tag":
        wait_until(lambda: exchange.counters.get("rejects_in"), 5, "a session Reject comes back")
        assert adapter.bad_input_recent[-1]["reason"] == "SESSION_REJECT_SENT" and adapter.bad_input_recent[-1]["tag"] == 39
    elif kind == "unknown_order":
        wait_until(lambda: adapter.bad_input_recent, 5, "the stray report is counted")
        assert adapter.bad_input_recent[-1]["reason"] == "UNKNOWN_ORDER"
    else:
        time.sleep(0.2)  # garbled input is ignored by the engine (FIX: no Reject, no sequence number)
    reps, _ = core.place(order(INST, "BUY", 1, "9801", order_type=OrderType.IOC, tif=TimeInForce.IOC))
    assert [r.kind for r in reps] == [ExecReportKind.ACK, ExecReportKind.FILL]
    assert adapter.connected() and exchange.order_count() == 1


def test_the_exchange_frames_cut_garbled_messages_out():
    good = b"8=FIX.4.4\x019=5\x0135=0\x0110=163\x01"
    assert frame_messages(good) == ([good], b"", 0)
    bad_cs = good.replace(b"10=163", b"10=164")
    msgs, rest, garbled = frame_messages(bad_cs + good)
    assert msgs == [good] and garbled == 1


# ----------------------------------------------------------------------------- the exchange as a process
def test_the_exchange_runs_as_a_process_and_takes_faults_on_its_control_channel(tmp_path):
    # the demo deployment, its LME gateway switched to FIX
    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    demo["include"] = [str(ROOT / "configs" / f) for f in demo.get("include", [])]
    for g in demo["gateways"]:
        if g["venue"] == "LME":
            g.update(adapter="fix", params={"port": 1, "sender_comp_id": "GW", "target_comp_id": "EXCH"})
    cfg = tmp_path / "deploy.yaml"
    cfg.write_text(yaml.safe_dump(demo))
    proc = subprocess.Popen([sys.executable, "-m", "xmc_actors.venues.fix.exchange", "--config", str(cfg),
                             "--gateway", "LME", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        if not line:
            pytest.skip(f"exchange process did not start: {proc.stderr.read()[-2000:]}")
        ports = json.loads(line)
        ctl = f"127.0.0.1:{ports['control_port']}"
        p = FixVenueParams(port=ports["port"], sender_comp_id="GW", target_comp_id="EXCH", heartbeat_s=1,
                           store_path=str(tmp_path / "fix"), reconnect_interval_s=1, exchange_control=ctl)
        adapter = FixAdapter(p, venue("LME"), [instrument(INST)], SystemClock(), gateway="gw")
        try:
            assert adapter.connected()
            adapter.on_market(quote(INST, "9799", "9801", ts_ns=time.time_ns()))
            rep = adapter.place(order(INST, "SELL", 1, "9799", order_type=OrderType.IOC, tif=TimeInForce.IOC)).reports
            assert [r.kind for r in rep] == [ExecReportKind.ACK, ExecReportKind.FILL]
            adapter.inject({"kind": "drop"})
            wait_until(lambda: not adapter.connected(), 5, "dropped")
            wait_until(adapter.connected, 10, "back")
            assert control(ctl, {"cmd": "order_count"}) == 1
        finally:
            adapter.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
