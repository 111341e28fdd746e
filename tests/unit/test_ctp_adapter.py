"""The CTP adapter driven through its SPI with the binding's own field structures, in the
orders a CTP front sends them; only the network-facing CThostFtdcTraderApi is a recording
fake (tests/unit/ctp_fake.py). No CTP front is reachable from these machines."""
from __future__ import annotations

import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from xmc_actors.venues.ctp.binding import ensure_locale

_ok, _why = ensure_locale(Path(tempfile.gettempdir()) / "xmc-ctp-locale")
if not _ok:
    pytest.skip(f"the CTP binding cannot load here: {_why}", allow_module_level=True)

from ctp_fake import (  # noqa: E402 - after the locale check: the binding's import aborts without it
    AUTH_CODE, PASSWORD, FakeTraderApi, account_row, adapter, instrument, position_row, request, rsp_info, rtn_order,
    rtn_trade, venue,
)
from openctp_ctp import tdapi  # noqa: E402

from xmc_actors.core.clock import SystemClock  # noqa: E402
from xmc_actors.core.gateway_core import GatewayCore  # noqa: E402
from xmc_actors.core.sink import MemorySink  # noqa: E402
from xmc_actors.model.errors import VenueDisconnected  # noqa: E402
from xmc_actors.model.market import Side  # noqa: E402
from xmc_actors.model.orders import (  # noqa: E402
    ExecReportKind, Offset, OrderStatus, OrderType, RejectReason, TimeInForce,
)


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    monkeypatch.setenv("XMC_TEST_CTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("XMC_TEST_CTP_AUTH_CODE", AUTH_CODE)


def kinds(reps):
    return [(r.kind, r.status) for r in reps]


def _sent(api):
    return api.requests("ReqOrderInsert")[-1]


# --------------------------------------------------------------------------- session
def test_logon_authenticates_logs_in_confirms_settlement_then_queries_the_day(tmp_path):
    a, api = adapter(tmp_path)
    names = [n for n, _, _ in api.calls]
    assert names == ["ReqAuthenticate", "ReqUserLogin", "ReqSettlementInfoConfirm", "ReqQryOrder", "ReqQryTrade",
                     "ReqQryInvestorPosition", "ReqQryTradingAccount"]
    auth, login, confirm = api.calls[0][1], api.calls[1][1], api.calls[2][1]
    assert (auth.BrokerID, auth.UserID, auth.AppID, auth.AuthCode) == ("9999", "000123", "simnow_client_test", AUTH_CODE)
    assert (login.BrokerID, login.UserID, login.Password) == ("9999", "000123", PASSWORD)
    assert (confirm.BrokerID, confirm.InvestorID) == ("9999", "000123")
    assert api.fronts == ["tcp://182.254.243.31:30001"] and api.private_topic == tdapi.THOST_TERT_RESUME
    assert api.flow.startswith(str(tmp_path / "ctp" / "gw-shfe-ctp" / "flow"))
    assert a.connected() and a.status()["state"] == "READY"
    assert (a.front_id, a.session_id, a.trading_day) == (1, 0x5A01, "20261207")
    a.close()
    assert api.released and a.status()["state"] == "CLOSED"


def test_without_an_app_id_there_is_no_authentication(tmp_path):
    a, api = adapter(tmp_path, app_id=None, auth_code=None)
    assert [n for n, _, _ in api.calls][:2] == ["ReqUserLogin", "ReqSettlementInfoConfirm"]
    assert a.connected()


def test_a_refused_authentication_or_logon_is_reported_and_orders_are_not_sent(tmp_path):
    api = FakeTraderApi()
    api.auth_error = (63, "CTP:AppID or AuthCode wrong")
    a, _ = adapter(tmp_path, api)
    st = a.status()
    assert st["state"] == "AUTH_FAILED" and not a.connected()
    assert "63" in st["last_error"] and "ReqUserLogin" not in [n for n, _, _ in api.calls]
    with pytest.raises(VenueDisconnected):
        a.send(request())
    api2 = FakeTraderApi()
    api2.login_error = (3, "CTP:invalid login")
    b, _ = adapter(tmp_path / "b", api2)
    assert b.status()["state"] == "LOGIN_FAILED" and "CTP error 3" in b.status()["last_error"]


def test_no_credential_is_kept_logged_or_recorded(tmp_path):
    a, api = adapter(tmp_path)
    ticket = a.send(request())
    inp = _sent(api)
    a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="1001", submit="3", status="3"))
    a.answer(ticket)
    a.spi.OnRspError(rsp_info(3, "CTP:invalid login"), 9, True)
    text = " ".join([repr(a.status()), repr(a.drop_copy()), repr(a.p), str(a.p.password),
                     (Path(a.journal.path)).read_text(), repr(a.drain_bad_input())])
    assert PASSWORD not in text and AUTH_CODE not in text
    assert not any(PASSWORD in p.read_text(errors="replace") for p in (tmp_path / "ctp").rglob("*") if p.is_file())


# --------------------------------------------------------------------------- order insert fields
@pytest.mark.parametrize("offset,flag", [(Offset.OPEN, tdapi.THOST_FTDC_OF_Open),
                                         (Offset.CLOSE_TODAY, tdapi.THOST_FTDC_OF_CloseToday),
                                         (Offset.CLOSE_YESTERDAY, tdapi.THOST_FTDC_OF_CloseYesterday)])
@pytest.mark.parametrize("side,direction", [(Side.BUY, tdapi.THOST_FTDC_D_Buy), (Side.SELL, tdapi.THOST_FTDC_D_Sell)])
def test_order_insert_carries_offset_direction_price_and_volume(tmp_path, offset, flag, side, direction):
    a, api = adapter(tmp_path)
    a.send(request(side=side, offset=offset, qty=3, price="70130"))
    f = _sent(api)
    assert (f.BrokerID, f.InvestorID, f.UserID) == ("9999", "000123", "000123")
    assert (f.InstrumentID, f.ExchangeID) == ("cu2502", "SHFE")
    assert f.CombOffsetFlag == flag and f.Direction == direction
    assert f.LimitPrice == 70130.0 and f.VolumeTotalOriginal == 3
    assert f.OrderPriceType == tdapi.THOST_FTDC_OPT_LimitPrice
    assert (f.TimeCondition, f.VolumeCondition) == (tdapi.THOST_FTDC_TC_GFD, tdapi.THOST_FTDC_VC_AV)
    assert f.CombHedgeFlag == tdapi.THOST_FTDC_HF_Speculation
    assert f.ContingentCondition == tdapi.THOST_FTDC_CC_Immediately
    assert f.ForceCloseReason == tdapi.THOST_FTDC_FCC_NotForceClose and f.MinVolume == 1
    # the OrderRef is above the front's MaxOrderRef (7), on disk before it left
    assert int(f.OrderRef) == 8
    assert f'"{f.OrderRef}"' in Path(a.journal.path).read_text()


@pytest.mark.parametrize("order_type,tif,tc,vc", [
    (OrderType.IOC, TimeInForce.DAY, tdapi.THOST_FTDC_TC_IOC, tdapi.THOST_FTDC_VC_AV),      # FAK
    (OrderType.LIMIT, TimeInForce.IOC, tdapi.THOST_FTDC_TC_IOC, tdapi.THOST_FTDC_VC_AV),
    (OrderType.FOK, TimeInForce.DAY, tdapi.THOST_FTDC_TC_IOC, tdapi.THOST_FTDC_VC_CV),      # FOK
    (OrderType.LIMIT, TimeInForce.FOK, tdapi.THOST_FTDC_TC_IOC, tdapi.THOST_FTDC_VC_CV),
])
def test_ioc_fak_and_fok_terms(tmp_path, order_type, tif, tc, vc):
    a, api = adapter(tmp_path)
    a.send(request(order_type=order_type, tif=tif))
    f = _sent(api)
    assert (f.OrderPriceType, f.TimeCondition, f.VolumeCondition) == (tdapi.THOST_FTDC_OPT_LimitPrice, tc, vc)


def test_a_plain_close_at_shfe_a_missing_offset_a_market_order_and_gtc_are_refused_before_they_leave(tmp_path):
    a, api = adapter(tmp_path)
    for n, req, reason in [
        (1, request(1, side=Side.SELL, offset=Offset.CLOSE), RejectReason.OFFSET_NOT_ALLOWED),
        (2, request(2, offset=None), RejectReason.OFFSET_NOT_ALLOWED),
        (3, request(3, order_type=OrderType.MARKET), RejectReason.OTHER),
        (4, request(4, tif=TimeInForce.GTC), RejectReason.OTHER),
    ]:
        rep = a.place(req).reports[0]
        assert (rep.kind, rep.status, rep.reason) == (ExecReportKind.REJECTED, OrderStatus.REJECTED, reason), n
        assert rep.text.startswith("not sent to CTP")
        assert a.query(req.client_order_id) is None  # never sent
    assert api.requests("ReqOrderInsert") == []


def test_cffex_takes_a_plain_close_and_market_orders_and_refuses_close_today(tmp_path):
    v = venue("CFFEX", "close")
    a, api = adapter(tmp_path, v=v, insts=[instrument("CFFEX", "IF", "0.2", 300)], symbols={"CFFEX.IF": "IF2501"})
    a.send(request(1, side=Side.SELL, offset=Offset.CLOSE, instrument_id="CFFEX.IF", price="3900.2"))
    f = _sent(api)
    assert (f.CombOffsetFlag, f.ExchangeID, f.InstrumentID) == (tdapi.THOST_FTDC_OF_Close, "CFFEX", "IF2501")
    a.send(request(2, order_type=OrderType.MARKET, instrument_id="CFFEX.IF"))
    f = _sent(api)
    assert (f.OrderPriceType, f.TimeCondition, f.LimitPrice) == (tdapi.THOST_FTDC_OPT_AnyPrice, tdapi.THOST_FTDC_TC_IOC, 0.0)
    rep = a.place(request(3, side=Side.SELL, offset=Offset.CLOSE_TODAY, instrument_id="CFFEX.IF")).reports[0]
    assert rep.reason is RejectReason.OFFSET_NOT_ALLOWED and len(api.requests("ReqOrderInsert")) == 2


def test_an_insert_the_api_refuses_is_not_sent(tmp_path):
    a, api = adapter(tmp_path)
    api.returns["ReqOrderInsert"] = -3
    with pytest.raises(VenueDisconnected, match="-3"):
        a.send(request())
    assert a.query(request().client_order_id) is None


# --------------------------------------------------------------------------- reports in the orders they arrive
def test_ack_then_trade(tmp_path):
    a, api = adapter(tmp_path)
    ticket = a.send(request(qty=2))
    inp = _sent(api)
    a.spi.OnRtnOrder(rtn_order(inp, api))                                            # CTP's receipt
    a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="880001", submit="3", status="3"))   # the exchange's
    reply = a.answer(ticket)
    assert kinds(reply.reports) == [(ExecReportKind.ACK, OrderStatus.ACCEPTED)]
    assert reply.reports[0].venue_order_id == "880001" and not reply.lost
    a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="880001", submit="3", status="1", traded=1))
    a.spi.OnRtnTrade(rtn_trade(inp, sys_id="880001", trade_id="5001", price=70110.0, volume=1))
    a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="880001", submit="3", status="0", traded=2))
    a.spi.OnRtnTrade(rtn_trade(inp, sys_id="880001", trade_id="5002", price=70120.0, volume=1))
    a.spi.OnRtnTrade(rtn_trade(inp, sys_id="880001", trade_id="5002", price=70120.0, volume=1))  # repeated
    pushed = a.poll()
    assert kinds(pushed) == [(ExecReportKind.FILL, OrderStatus.PARTIALLY_FILLED), (ExecReportKind.FILL, OrderStatus.FILLED)]
    f1, f2 = pushed[0].fill, pushed[1].fill
    assert (f1.trade_id, f1.qty, f1.price, f1.side) == ("SHFE.5001.B", 1, Decimal("70110"), Side.BUY)
    assert f2.price == Decimal("70120") and pushed[1].filled_qty == 2 and pushed[1].leaves_qty == 0
    assert pushed[1].avg_price == Decimal("70115")
    assert a.counters["duplicate_trades"] == 1
    assert a.session_positions() == {"acct-cn": {"SHFE.cu": 2}}
    assert [d["kind"] for d in a.drop_copy()] == ["ACK", "FILL", "FILL"]
    assert a.drop_copy()[0]["ctp"]["offset"] == "OPEN"


def test_a_trade_before_its_orders_ack_is_booked_right_after_it(tmp_path):
    a, api = adapter(tmp_path)
    ticket = a.send(request(qty=1))
    inp = _sent(api)
    # the trade names the order only by OrderSysID, which no report has told us yet
    a.spi.OnRtnTrade(rtn_trade(inp, sys_id="880002", trade_id="6001", price=70100.0, volume=1))
    assert a.status()["held_trades"] == 1 and a.poll() == []
    a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="880002", submit="3", status="0", traded=1))
    reply = a.answer(ticket)
    assert kinds(reply.reports) == [(ExecReportKind.ACK, OrderStatus.ACCEPTED), (ExecReportKind.FILL, OrderStatus.FILLED)]
    assert reply.reports[1].fill.price == Decimal("70100") and a.status()["held_trades"] == 0
    a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="880002", submit="3", status="0", traded=1))  # again: nothing new
    assert a.poll() == []


def test_an_ioc_answer_waits_for_its_end(tmp_path):
    a, api = adapter(tmp_path)

    def front(inp):
        a.spi.OnRtnOrder(rtn_order(inp, api))
        a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="880003", submit="3", status="3"))
        a.spi.OnRtnTrade(rtn_trade(inp, sys_id="880003", trade_id="7001", price=70120.0, volume=1))
        a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="880003", submit="3", status="5", traded=1, msg="partly canceled"))
    api.on_insert = front
    reply = a.place(request(qty=3, order_type=OrderType.IOC))
    assert kinds(reply.reports) == [(ExecReportKind.ACK, OrderStatus.ACCEPTED),
                                    (ExecReportKind.FILL, OrderStatus.PARTIALLY_FILLED),
                                    (ExecReportKind.CANCELED, OrderStatus.CANCELED)]
    assert reply.reports[-1].filled_qty == 1 and reply.reports[-1].leaves_qty == 0


def test_the_exchange_rejects_after_ctp_accepted(tmp_path):
    a, api = adapter(tmp_path)
    ticket = a.send(request())
    inp = _sent(api)
    a.spi.OnRtnOrder(rtn_order(inp, api))  # CTP took it (submit status 0, order status a)
    a.spi.OnRtnOrder(rtn_order(inp, api, submit=tdapi.THOST_FTDC_OSS_InsertRejected,
                               status=tdapi.THOST_FTDC_OST_Canceled, msg="price limit exceeded"))
    rep, = a.answer(ticket).reports
    assert (rep.kind, rep.status, rep.reason) == (ExecReportKind.REJECTED, OrderStatus.REJECTED,
                                                  RejectReason.PRICE_OUT_OF_LIMIT)
    assert "price limit exceeded" in rep.text
    a.spi.OnRtnOrder(rtn_order(inp, api, submit="4", status="5", msg="price limit exceeded"))  # resumed copy
    assert a.poll() == []


@pytest.mark.parametrize("error_id,reason", [(31, RejectReason.INSUFFICIENT_MARGIN), (30, RejectReason.POSITION_INSUFFICIENT),
                                             (50, RejectReason.POSITION_INSUFFICIENT), (16, RejectReason.UNKNOWN_INSTRUMENT),
                                             (99999, RejectReason.OTHER)])
def test_ctp_refuses_the_insert_on_rsp_and_err_rtn_once(tmp_path, error_id, reason):
    a, api = adapter(tmp_path)
    ticket = a.send(request(side=Side.SELL, offset=Offset.CLOSE_TODAY))
    inp = _sent(api)
    a.spi.OnRspOrderInsert(inp, rsp_info(error_id, "CTP:refused"), 12, True)
    a.spi.OnErrRtnOrderInsert(inp, rsp_info(error_id, "CTP:refused"))
    rep, = a.answer(ticket).reports
    assert (rep.kind, rep.status, rep.reason) == (ExecReportKind.REJECTED, OrderStatus.REJECTED, reason)
    assert f"CTP error {error_id}" in rep.text and a.poll() == []
    assert a.query(rep.client_order_id) is None  # no such order at the front


def test_an_insert_error_for_someone_elses_order_ref_is_not_ours(tmp_path):
    a, api = adapter(tmp_path)
    ticket = a.send(request())
    inp = _sent(api)
    other = tdapi.CThostFtdcInputOrderField()
    other.OrderRef, other.InstrumentID, other.Direction = inp.OrderRef, "rb2505", inp.Direction
    a.spi.OnErrRtnOrderInsert(other, rsp_info(31, "CTP:no money"))
    a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="1", submit="3", status="3"))
    assert kinds(a.answer(ticket).reports) == [(ExecReportKind.ACK, OrderStatus.ACCEPTED)]
    assert a.counters["foreign_insert_errors"] == 1


def test_reports_of_orders_from_other_sessions_are_ignored_with_their_trades(tmp_path):
    a, api = adapter(tmp_path)
    inp = tdapi.CThostFtdcInputOrderField()
    inp.BrokerID, inp.InvestorID, inp.InstrumentID, inp.ExchangeID = "9999", "000123", "cu2502", "SHFE"
    inp.OrderRef, inp.Direction, inp.CombOffsetFlag, inp.VolumeTotalOriginal = "8", "0", "0", 1
    a.spi.OnRtnTrade(rtn_trade(inp, sys_id="990001", trade_id="1", price=70000.0, volume=1))  # held: whose?
    a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="990001", submit="3", status="0", traded=1, session_id=77))
    a.spi.OnRtnTrade(rtn_trade(inp, sys_id="990001", trade_id="2", price=70000.0, volume=1))
    assert a.poll() == [] and a.status()["held_trades"] == 0
    assert a.counters["foreign_orders"] == 1 and a.counters["foreign_trades"] == 2


# --------------------------------------------------------------------------- cancels
def _resting(a, api, n=1, sys_id="880010"):
    ticket = a.send(request(n))
    inp = _sent(api)
    a.spi.OnRtnOrder(rtn_order(inp, api, sys_id=sys_id, submit="3", status="3"))
    assert kinds(a.answer(ticket).reports) == [(ExecReportKind.ACK, OrderStatus.ACCEPTED)]
    return inp


def test_a_cancel_confirmed(tmp_path):
    a, api = adapter(tmp_path)
    inp = _resting(a, api)

    def front(f):
        a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="880010", submit=tdapi.THOST_FTDC_OSS_CancelSubmitted, status="3"))
        a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="880010", submit="3", status=tdapi.THOST_FTDC_OST_Canceled,
                                   msg="canceled"))
    api.on_action = front
    rep, latency = a.cancel("dec1:A:0")
    assert (rep.kind, rep.status, rep.leaves_qty) == (ExecReportKind.CANCELED, OrderStatus.CANCELED, 0)
    f = api.requests("ReqOrderAction")[0]
    assert f.ActionFlag == tdapi.THOST_FTDC_AF_Delete
    assert (f.BrokerID, f.InvestorID, f.UserID, f.InstrumentID, f.ExchangeID) == ("9999", "000123", "000123", "cu2502", "SHFE")
    assert (f.FrontID, f.SessionID, f.OrderRef, f.OrderSysID) == (1, 0x5A01, inp.OrderRef, "880010")
    assert f.OrderActionRef == 1 and a.poll() == []


def test_a_cancel_refused_by_ctp_and_one_refused_by_the_exchange(tmp_path):
    a, api = adapter(tmp_path)
    inp = _resting(a, api)
    api.on_action = lambda f: a.spi.OnRspOrderAction(f, rsp_info(26, "CTP:order already traded"), 3, True)
    rep, _ = a.cancel("dec1:A:0")
    assert (rep.kind, rep.reason, rep.status) == (ExecReportKind.CANCEL_REJECTED, RejectReason.TOO_LATE_TO_CANCEL,
                                                  OrderStatus.ACCEPTED)
    assert "CTP error 26" in rep.text

    def exchange_refuses(f):
        act = tdapi.CThostFtdcOrderActionField()
        act.BrokerID, act.InvestorID, act.ExchangeID, act.OrderSysID = f.BrokerID, f.InvestorID, f.ExchangeID, f.OrderSysID
        act.FrontID, act.SessionID, act.OrderRef, act.InstrumentID = f.FrontID, f.SessionID, f.OrderRef, f.InstrumentID
        a.spi.OnErrRtnOrderAction(act, rsp_info(25, "CTP:order not found at the exchange"))
        a.spi.OnErrRtnOrderAction(act, rsp_info(25, "CTP:order not found at the exchange"))  # a second copy
    api.on_action = exchange_refuses
    rep, _ = a.cancel("dec1:A:0")
    assert (rep.kind, rep.reason) == (ExecReportKind.CANCEL_REJECTED, RejectReason.UNKNOWN_ORDER)
    assert a.poll() == [] and a.counters["duplicate_reports"] == 1
    # a cancel the front never answers, and one for an order we never sent
    api.on_action = None
    with pytest.raises(VenueDisconnected, match="no answer to the cancel"):
        a.cancel("dec1:A:0")
    assert a.cancel("nobody:A:0") == (None, 0)
    del inp


# --------------------------------------------------------------------------- disconnect, reconnect, query
def test_a_disconnect_between_insert_and_ack_leaves_it_unknown_and_the_reconnect_query_resolves_it(tmp_path):
    a, api = adapter(tmp_path)
    api.calls.clear()
    ticket = a.send(request(qty=2))
    inp = _sent(api)
    a.spi.OnFrontDisconnected(0x1001)
    reply = a.answer(ticket)
    assert reply.lost and reply.reports == []
    assert not a.connected() and a.status()["unknown_orders"] == 1
    with pytest.raises(VenueDisconnected):
        a.send(request(2))
    # the front had it: the exchange filled one lot while we were away
    api.orders.append(rtn_order(inp, api, sys_id="880020", submit="3", status="1", traded=1))
    api.trades.append(rtn_trade(inp, sys_id="880020", trade_id="8001", price=70090.0, volume=1))
    api.session_id = 0x5A02
    api.max_order_ref = "3"  # a front that restarted its counter: ours goes on above the journal's
    a.spi.OnFrontConnected()
    assert a.connected() and [n for n, _, _ in api.calls][-4:] == ["ReqQryOrder", "ReqQryTrade", "ReqQryInvestorPosition",
                                                                    "ReqQryTradingAccount"]
    pushed = a.poll()
    assert kinds(pushed) == [(ExecReportKind.STATUS, OrderStatus.PARTIALLY_FILLED),
                             (ExecReportKind.FILL, OrderStatus.PARTIALLY_FILLED)]
    assert pushed[0].filled_qty == 1 and pushed[0].venue_order_id == "880020"
    assert pushed[1].fill.trade_id == "SHFE.8001.B"
    assert a.status()["unknown_orders"] == 0
    # the rest of its life comes on the flow as usual
    a.spi.OnRtnTrade(rtn_trade(inp, sys_id="880020", trade_id="8002", price=70100.0, volume=1))
    assert kinds(a.poll()) == [(ExecReportKind.FILL, OrderStatus.FILLED)]
    a.send(request(3))
    assert int(_sent(api).OrderRef) == int(inp.OrderRef) + 1


def test_the_position_reading_carries_each_orders_fills_as_of_that_reply(tmp_path):
    """What a restarted coordinator counts a rebuilt order's later fills from: the lots each
    order had filled when the position reply completed, not when the reading is asked for."""
    a, api = adapter(tmp_path, account="acct-cn")
    ticket = a.send(request(qty=2))
    inp = _sent(api)
    a.spi.OnFrontDisconnected(0x1001)
    assert a.answer(ticket).lost
    api.orders.append(rtn_order(inp, api, sys_id="880020", submit="3", status="1", traded=1))
    api.trades.append(rtn_trade(inp, sys_id="880020", trade_id="8001", price=70090.0, volume=1))
    api.positions = [position_row("cu2502", LONG, position=1, date=TODAY)]
    a.spi.OnFrontConnected()  # the logon's order and trade sweep goes before its position query
    r = a.two_sided_reading()
    assert r["order_fills"] == {"dec1:A:0": 1} and r["accounts"] == ["acct-cn"]
    assert r["positions"]["acct-cn/SHFE.cu"]["long"]["today"] == 1
    # the second lot trades; the broker's next position reply has not come yet
    api.hold_queries = True
    a.spi.OnRtnTrade(rtn_trade(inp, sys_id="880020", trade_id="8002", price=70100.0, volume=1))
    assert a.two_sided_reading()["order_fills"] == {"dec1:A:0": 1}
    api.positions = [position_row("cu2502", LONG, position=2, date=TODAY)]
    _release(api)
    r = a.two_sided_reading()
    assert r["order_fills"] == {"dec1:A:0": 2} and r["positions"]["acct-cn/SHFE.cu"]["long"]["today"] == 2


def test_an_order_lost_with_the_connection_is_absent_after_the_reconnect_query(tmp_path):
    a, api = adapter(tmp_path)
    ticket = a.send(request())
    a.spi.OnFrontDisconnected(0x2002)
    assert a.answer(ticket).lost
    a.spi.OnFrontConnected()  # the front never had it
    assert a.poll() == []
    assert a.query("dec1:A:0") is None and a.status()["unknown_orders"] == 0
    assert a.counters["orders_absent"] == 1


def test_the_gateway_core_resolves_the_unknown_order_from_the_pushed_status(tmp_path):
    a, api = adapter(tmp_path, ack_timeout_ms=30)
    sink = MemorySink()
    core = GatewayCore(a.venue, list(a.instruments.values()), a, SystemClock(), sink, name="gw-shfe-ctp",
                       ack_timeout_ns=30_000_000)
    req = request(qty=1)
    api.on_insert = lambda inp: a.spi.OnFrontDisconnected(0x1001)  # the line drops as the order leaves
    reps, _ = core.place(req)
    assert kinds(reps) == [(ExecReportKind.STATUS, OrderStatus.UNKNOWN)]
    inp = _sent(api)
    api.orders.append(rtn_order(inp, api, sys_id="880030", submit="3", status="0", traded=1))
    api.trades.append(rtn_trade(inp, sys_id="880030", trade_id="9001", price=70120.0, volume=1))
    a.spi.OnFrontConnected()
    core.tick()
    st = core.orders[req.client_order_id]
    assert st.status is OrderStatus.FILLED and st.filled_qty == 1 and core.counters["unknown_resolved"] == 1
    fills = [e for e in sink.events if e.kind.value == "VENUE_DROP_COPY" and e.payload["report"]["fill"]]
    assert len(fills) == 1  # the execution once in the trail
    pushed = core.drain_pushes()[""]
    assert [r.kind for r in pushed][0] is ExecReportKind.STATUS


def test_a_query_of_an_unanswered_order_asks_the_front(tmp_path):
    a, api = adapter(tmp_path)
    ticket = a.send(request(qty=2))
    inp = _sent(api)
    assert a.answer(ticket).lost  # no word within ack_timeout_ms, still connected
    api.orders.append(rtn_order(inp, api, sys_id="880040", submit="3", status="3"))
    n = len(api.requests("ReqQryOrder"))
    rep = a.query("dec1:A:0")
    q = api.requests("ReqQryOrder")[n]
    assert (q.BrokerID, q.InvestorID, q.InstrumentID, q.ExchangeID) == ("9999", "000123", "cu2502", "SHFE")
    assert (rep.kind, rep.status, rep.venue_order_id) == (ExecReportKind.STATUS, OrderStatus.ACCEPTED, "880040")
    assert a.poll() == []  # the query's caller has it
    # now the flow speaks for it: a query is answered from there
    n = len(api.calls)
    assert a.query("dec1:A:0").status is OrderStatus.ACCEPTED and len(api.calls) == n


def test_queries_wait_their_turn_at_the_fronts_pace(tmp_path):
    a, api = adapter(tmp_path, query_interval_ms=80)
    ticket = a.send(request())
    assert a.answer(ticket).lost
    api.next_returns["ReqQryOrder"] = [-3]  # the front's pace: refused once, asked again after the interval
    n = len(api.requests("ReqQryOrder"))
    t0 = time.monotonic()
    assert a.query("dec1:A:0") is None  # the front has no such order
    assert len(api.requests("ReqQryOrder")) == n + 2 and time.monotonic() - t0 >= 0.08
    assert a.counters["queries_refused"] == 1


# --------------------------------------------------------------------------- restart
def test_a_restart_reloads_the_journal_and_recognises_its_orders_in_the_query(tmp_path):
    a, api = adapter(tmp_path)
    t1 = a.send(request(1, qty=2))
    inp1 = _sent(api)
    a.spi.OnRtnOrder(rtn_order(inp1, api, sys_id="880050", submit="3", status="3"))
    a.answer(t1)
    t2 = a.send(request(2))
    inp2 = _sent(api)  # never reached the front (the process died with it)
    a.close()
    del t2

    api2 = FakeTraderApi(session_id=0x6B01, max_order_ref="1")
    # the front: our first order filled while we were down, and another session's order with the same OrderRef
    api2.orders.append(rtn_order(inp1, api, sys_id="880050", submit="3", status="0", traded=2))
    api2.trades.append(rtn_trade(inp1, sys_id="880050", trade_id="9101", price=70110.0, volume=2))
    api2.orders.append(rtn_order(inp2, api, sys_id="880099", submit="3", status="3", session_id=0x7777))
    b, _ = adapter(tmp_path, api2, restart=True)
    assert b.restored == 2
    got = b.recovered_orders()
    assert [(r.client_order_id, rep.status, rep.filled_qty, rep.venue_order_id) for r, rep in got] == [
        ("dec1:A:0", OrderStatus.FILLED, 2, "880050")]
    ex = b.executions("dec1:A:0")
    assert [(e.fill.trade_id, e.fill.qty, e.fill.price) for e in ex] == [("SHFE.9101.B", 2, Decimal("70110"))]
    assert b.poll() == []  # handed back by recovered_orders, not pushed again
    assert b.query("dec2:A:0") is None
    # its next OrderRef is above every one in the journal, whatever the front's MaxOrderRef says
    b.send(request(3))
    assert int(_sent(api2).OrderRef) == int(inp2.OrderRef) + 1
    # a fresh start (not a restart) begins a new journal
    b.close()
    c, _ = adapter(tmp_path, FakeTraderApi())
    assert c.restored == 0 and c.orders == {}


def test_a_restarted_gateway_core_takes_its_orders_back(tmp_path):
    a, api = adapter(tmp_path)
    t = a.send(request(1, qty=2))
    inp = _sent(api)
    a.spi.OnRtnOrder(rtn_order(inp, api, sys_id="880060", submit="3", status="3"))
    a.answer(t)
    a.close()
    api2 = FakeTraderApi(session_id=0x6B02)
    api2.orders.append(rtn_order(inp, api, sys_id="880060", submit="3", status="1", traded=1))
    api2.trades.append(rtn_trade(inp, sys_id="880060", trade_id="9201", price=70120.0, volume=1))
    b, _ = adapter(tmp_path, api2, restart=True)
    sink = MemorySink()
    core = GatewayCore(b.venue, list(b.instruments.values()), b, SystemClock(), sink, name="gw-shfe-ctp")
    out = core.reconcile()
    assert out == {"orders": 1, "live": 1, "with_fills": 1}
    st = core.orders["dec1:A:0"]
    assert st.status is OrderStatus.PARTIALLY_FILLED and st.trade_ids == {"SHFE.9201.B"}
    # later reports of it reach the core as any order's
    b.spi.OnRtnTrade(rtn_trade(inp, sys_id="880060", trade_id="9202", price=70130.0, volume=1))
    core.tick()
    assert core.orders["dec1:A:0"].status is OrderStatus.FILLED


def test_the_feed_is_published_as_the_venues_market(tmp_path):
    from xmc_actors.model.quotes import Quote

    a, _ = adapter(tmp_path)
    q = Quote(instrument="SHFE.cu", bid=Decimal("70100"), ask=Decimal("70110"), bid_size=3, ask_size=4,
              venue_ts_ns=1_700_000_000_000_000_000)
    reps, msgs = a.on_market(q)
    assert reps == [] and msgs[0]["bid"] == Decimal("70100") and msgs[0]["seq"] == 1
    b, _ = adapter(tmp_path / "b", market_data="off")
    assert b.on_market(q) == ([], [])
    with pytest.raises(ValueError):
        a.inject({"kind": "reject_next"})


def test_a_logon_into_the_next_trading_day_expires_the_orders_left_working(tmp_path):
    a, api = adapter(tmp_path)
    _resting(a, api, 1, sys_id="880070")
    t = a.send(request(2))
    a.spi.OnFrontDisconnected(0x1001)
    assert a.answer(t).lost  # UNKNOWN: stays so, its day's fills cannot be asked for any more
    api.trading_day = "20261208"
    a.spi.OnFrontConnected()
    pushed = a.poll()
    assert kinds(pushed) == [(ExecReportKind.EXPIRED, OrderStatus.EXPIRED)] and pushed[0].client_order_id == "dec1:A:0"
    assert a.status()["unknown_orders"] == 1
    # today's list cannot say whether yesterday's order reached the front: still unknown, not absent
    rep = a.query("dec2:A:0")
    assert rep is not None and rep.status is OrderStatus.UNKNOWN


def test_reports_from_the_apis_own_thread_reach_a_waiting_place_and_cancel(tmp_path):
    a, api = adapter(tmp_path, ack_timeout_ms=2000)

    def later(fn, *args):
        threading.Timer(0.05, fn, args).start()

    api.on_insert = lambda inp: later(a.spi.OnRtnOrder, rtn_order(inp, api, sys_id="880080", submit="3", status="3"))
    t0 = time.monotonic()
    reply = a.place(request())
    assert kinds(reply.reports) == [(ExecReportKind.ACK, OrderStatus.ACCEPTED)] and 0.04 < time.monotonic() - t0 < 1.5
    inp = _sent(api)
    api.on_action = lambda f: later(a.spi.OnRtnOrder, rtn_order(inp, api, sys_id="880080", submit="3", status="5"))
    rep, latency = a.cancel("dec1:A:0")
    assert rep.kind is ExecReportKind.CANCELED and latency >= 40_000_000


# --------------------------------------------------------------------------- the broker's figures
LONG, SHORT, NET = tdapi.THOST_FTDC_PD_Long, tdapi.THOST_FTDC_PD_Short, tdapi.THOST_FTDC_PD_Net
TODAY, HISTORY = tdapi.THOST_FTDC_PSD_Today, tdapi.THOST_FTDC_PSD_History


def _release(api, kinds_=("order", "trade", "position", "account")):
    """Answer the held queries, in the order they were asked (each answer may send the next)."""
    while api.held and api.held[0][0] in kinds_:
        kind, f, rid = api.held.pop(0)
        api.answer_query(kind, f, rid)


def _shfe_rows():
    # SHFE answers a today row and a history row per direction: long 2 today (1 frozen by a
    # working sell close-today) + 3 yesterday (2 frozen), short 1 yesterday
    return [position_row("cu2502", LONG, position=2, date=TODAY, short_frozen=1),
            position_row("cu2502", LONG, position=3, yd=3, date=HISTORY, short_frozen=2),
            position_row("cu2502", SHORT, position=1, yd=1, date=HISTORY)]


def test_shfe_today_and_history_rows_are_read_after_logon_and_summed(tmp_path):
    api = FakeTraderApi()
    api.hold_queries = True
    api.positions = _shfe_rows()
    api.accounts = [account_row(balance=1_012_345.5, margin=120_000.0, available=892_345.5)]
    a, _ = adapter(tmp_path, api, account="acct-cn")
    # logged on, the day's queries waiting: nothing from the broker yet
    assert a.positions_source == "session fills" and a.account_reading() == {}
    with pytest.raises(RuntimeError, match="not been read since this logon"):  # not {}: that reads as flat
        a.two_sided_positions()
    _release(api)
    names = [n for n, _, _ in api.calls]
    assert names[-4:] == ["ReqQryOrder", "ReqQryTrade", "ReqQryInvestorPosition", "ReqQryTradingAccount"]
    q = api.requests("ReqQryInvestorPosition")[0]
    assert (q.BrokerID, q.InvestorID, q.InstrumentID) == ("9999", "000123", "")
    assert a.positions_source == "venue"
    assert a.positions() == {"acct-cn": {"SHFE.cu": 4}}
    two = a.two_sided_positions()
    assert set(two) == {"acct-cn/SHFE.cu"}
    p = two["acct-cn/SHFE.cu"]
    assert p["long"] == {"today": 2, "yesterday": 3, "frozen_today": 1, "frozen_yesterday": 2}
    assert p["short"] == {"today": 0, "yesterday": 1, "frozen_today": 0, "frozen_yesterday": 0}
    assert p["net"] == 4 and p["trading_day"] == "2026-12-07" and p["read_ns"] > 0
    st = a.positions_status()  # what a verification's freshness is judged by: when the reply was asked for
    assert st["source"] == "venue" and 0 < st["as_of_ns"] <= p["read_ns"]
    r = a.account_reading()["acct-cn"]
    assert (r["equity"], r["margin"], r["available"], r["currency"]) == ("1012345.5", "120000.0", "892345.5", "CNY")
    assert Decimal(r["equity"]) - Decimal(r["margin"]) == Decimal(r["available"]) and r["ts_ns"] > 0
    fresh = a.status()["broker_figures"]
    assert fresh["positions_source"] == "venue" and fresh["positions_age_ms"] >= 0 and fresh["account_age_ms"] >= 0
    assert a.counters["position_replies"] == 1 and a.counters["account_replies"] == 1 and not a.drain_bad_input()


def test_the_reading_loads_into_the_guards_two_sided_book_shape(tmp_path):
    from xmc_actors.core.positions import TwoSidedBook
    api = FakeTraderApi()
    api.positions = _shfe_rows()
    a, _ = adapter(tmp_path, api, account="acct-cn")
    p = a.two_sided_positions()["acct-cn/SHFE.cu"]
    import datetime as dt
    b = TwoSidedBook()
    got = b.set("acct-cn", "SHFE.cu", long_today=p["long"]["today"], long_yesterday=p["long"]["yesterday"],
                short_today=p["short"]["today"], short_yesterday=p["short"]["yesterday"],
                trading_day=dt.date.fromisoformat(p["trading_day"]))
    assert got.net == p["net"] == a.positions()["acct-cn"]["SHFE.cu"]


def test_a_locked_position_long_and_short_at_dce_in_one_row_per_side(tmp_path):
    api = FakeTraderApi()
    # DCE answers one row per direction (PositionDate today): TodayPosition is the part opened today
    api.positions = [position_row("m2605", LONG, position=3, today=1, yd=2, exchange="DCE"),
                     position_row("m2605", SHORT, position=3, today=3, exchange="DCE", long_frozen=1)]
    v = venue("DCE", "close")
    a, _ = adapter(tmp_path, api, v=v, insts=[instrument("DCE", "m", "1", 10)], symbols={"DCE.m": "m2605"},
                   account="acct-cn")
    assert a.positions_source == "venue"
    assert a.positions() == {}   # locked: net flat
    p = a.two_sided_positions()["acct-cn/DCE.m"]
    assert p["long"] == {"today": 1, "yesterday": 2, "frozen_today": 0, "frozen_yesterday": 0}
    # the working buy close of the short side: against yesterday's lots first (it has none)
    assert p["short"] == {"today": 3, "yesterday": 0, "frozen_today": 1, "frozen_yesterday": 0}
    assert p["net"] == 0


def test_the_account_defaults_to_the_investor_and_a_net_row_keeps_its_sign(tmp_path):
    api = FakeTraderApi()
    api.positions = [position_row("cu2502", NET, position=-2, today=-2)]
    a, _ = adapter(tmp_path, api)
    assert a.positions() == {"000123": {"SHFE.cu": -2}}
    assert a.two_sided_positions()["000123/SHFE.cu"]["short"]["today"] == 2


def test_a_reply_cut_by_a_disconnect_keeps_the_last_complete_one_and_the_next_logon_reads_again(tmp_path):
    api = FakeTraderApi()
    api.positions = _shfe_rows()
    a, _ = adapter(tmp_path, api, account="acct-cn")
    before = a.two_sided_positions()
    assert a.positions_source == "venue"
    # a refresh: the front answers two rows of three, then the line drops
    api.hold_queries = True
    a._next_query_ns = 0
    a.positions()
    kind, f, rid = api.held.pop(0)
    assert kind == "position"
    a.spi.OnRspQryInvestorPosition(position_row("cu2502", LONG, position=5, date=TODAY), rsp_info(0), rid, False)
    a.spi.OnRspQryInvestorPosition(position_row("cu2502", LONG, position=0, yd=3, date=HISTORY), rsp_info(0), rid, False)
    a.spi.OnFrontDisconnected(0x1001)
    assert a.counters["position_replies_cut"] == 1
    bad = a.drain_bad_input()
    assert [b["reason"] for b in bad] == ["PARTIAL_REPLY"] and "2 row(s)" in bad[0]["detail"]
    # the last complete figures are kept, but while disconnected they are not the venue's word:
    # the gateway refuses positions() (source) and two-sided positions are refused, not guessed
    assert a.positions_source == "session fills" and a.positions() == {"acct-cn": {"SHFE.cu": 4}}
    with pytest.raises(RuntimeError, match="not been read since this logon \\(disconnected\\)"):
        a.two_sided_positions()
    # a late row of the dead request is not taken either
    a.spi.OnRspQryInvestorPosition(position_row("cu2502", SHORT, position=9, date=TODAY), rsp_info(0), rid, True)
    assert a.positions() == {"acct-cn": {"SHFE.cu": 4}} and a.counters["stray_query_answers"] == 1
    # the next logon: unverified until its own reply is complete (the last figures still shown)
    api.held.clear()
    api.positions = [position_row("cu2502", LONG, position=5, date=TODAY)]
    a.spi.OnFrontConnected()
    assert a.connected() and a.positions_source == "session fills" and a.positions() == {"acct-cn": {"SHFE.cu": 4}}
    _release(api)
    assert a.positions_source == "venue" and a.positions() == {"acct-cn": {"SHFE.cu": 5}}
    assert a.two_sided_positions() != before and a.two_sided_positions()["acct-cn/SHFE.cu"]["net"] == 5


NOT_READY = (90, "CTP:query not ready, try again")


def test_an_error_reply_at_logon_is_asked_again_a_few_times_then_left_unverified(tmp_path):
    api = FakeTraderApi()
    api.query_errors = {"position": [NOT_READY] * 10, "account": [NOT_READY] * 10}
    a, _ = adapter(tmp_path, api, account="acct-cn")
    # the logon's reply and BROKER_RETRIES more (at the front's pace) all errors: never verified
    assert a.counters["position_replies_refused"] == 4 and a.counters["account_replies_refused"] == 4
    assert len(api.requests("ReqQryInvestorPosition")) == 4 and not a._sweeps
    bad = a.drain_bad_input()
    assert {b["reason"] for b in bad} == {"QUERY_ERROR"} and all("CTP error 90" in b["detail"] for b in bad)
    a._next_query_ns = time.monotonic_ns() + 10**12   # the front's pace: the refresh waits
    assert a.positions_source == "session fills" and a.account_reading() == {}
    with pytest.raises(RuntimeError, match="not been read since this logon"):  # not {}: that reads as flat
        a.two_sided_positions()
    # the refresh the calls above queued answers
    api.query_errors = {}
    api.positions = _shfe_rows()
    a._next_query_ns = 0
    a.poll()
    assert a.positions_source == "venue" and a.positions() == {"acct-cn": {"SHFE.cu": 4}}


def test_an_error_reply_is_recorded_and_the_last_good_figures_kept(tmp_path):
    api = FakeTraderApi()
    api.positions = _shfe_rows()
    api.query_errors = {"position": [NOT_READY], "account": [NOT_READY]}
    a, _ = adapter(tmp_path, api, account="acct-cn")
    # the logon's reply was an error, asked again: the second reply is good
    assert a.counters["position_replies_refused"] == 1 and a.counters["account_replies_refused"] == 1
    assert a.positions_source == "venue" and a.positions() == {"acct-cn": {"SHFE.cu": 4}}
    assert a.account_reading()["acct-cn"]["equity"] == "1000000.0"
    assert {b["reason"] for b in a.drain_bad_input()} == {"QUERY_ERROR"}
    # later errors: counted and recorded, the good figures stay, no retry (the next demand asks)
    api.query_errors = {"position": [NOT_READY]}
    api.accounts = [account_row(balance=1.7976931348623157e308)]  # the API's "no value"
    n = len(api.requests("ReqQryInvestorPosition"))
    a.refresh_broker_figures()
    assert len(api.requests("ReqQryInvestorPosition")) == n + 1
    assert a.counters["position_replies_refused"] == 2 and a.counters["account_replies_refused"] == 2
    a._next_query_ns = time.monotonic_ns() + 10**12   # hold the refreshes the views queue
    assert a.positions() == {"acct-cn": {"SHFE.cu": 4}} and a.positions_source == "venue"
    assert a.account_reading()["acct-cn"]["equity"] == "1000000.0"
    bad = a.drain_bad_input()
    assert [b["reason"] for b in bad] == ["QUERY_ERROR", "BAD_REPLY"] and "Balance" in bad[1]["detail"]


def test_an_unreadable_row_refuses_the_whole_reply(tmp_path):
    api = FakeTraderApi()
    api.positions = _shfe_rows()
    a, _ = adapter(tmp_path, api, account="acct-cn")
    api.positions = [position_row("cu2502", LONG, position=2, today=5, date=TODAY)]  # today > total
    a.refresh_broker_figures()
    assert a.counters["position_replies_refused"] == 1 and a.positions() == {"acct-cn": {"SHFE.cu": 4}}
    assert "TodayPosition 5 > Position 2" in a.drain_bad_input()[0]["detail"]


def test_unknown_instruments_are_recorded_once_and_other_exchanges_skipped(tmp_path):
    api = FakeTraderApi()
    api.positions = _shfe_rows() + [position_row("ag2606", LONG, position=4, date=TODAY),
                                    position_row("m2605", LONG, position=7, today=0, exchange="DCE")]
    a, _ = adapter(tmp_path, api, account="acct-cn")
    assert a.positions() == {"acct-cn": {"SHFE.cu": 4}} and a.positions_source == "venue"
    a.refresh_broker_figures()  # the same rows again
    n = a.counters["position_replies"]
    assert n >= 2 and a.counters["position_unknown_instruments"] == n and a.counters["positions_other_exchange"] == n
    bad = a.drain_bad_input()
    assert [b["reason"] for b in bad] == ["UNKNOWN_INSTRUMENT"] and "'ag2606'" in bad[0]["detail"]


def test_on_demand_refreshes_wait_for_the_fronts_pace_and_are_not_duplicated(tmp_path):
    api = FakeTraderApi()
    api.positions = _shfe_rows()
    a, _ = adapter(tmp_path, api, account="acct-cn")
    n = len(api.requests("ReqQryInvestorPosition"))
    a._next_query_ns = time.monotonic_ns() + 10**12   # the front's pace: not yet
    for _ in range(3):
        a.positions()
        a.two_sided_positions()
        a.account_reading()
    assert len(api.requests("ReqQryInvestorPosition")) == n
    assert [s.phase for s in a._sweeps] == ["position", "account"]
    a._next_query_ns = 0
    a.poll()
    a.poll()
    assert len(api.requests("ReqQryInvestorPosition")) == n + 1 and len(a._sweeps) == 0


def test_the_gateway_refuses_positions_until_the_brokers_reply_and_then_serves_it(tmp_path):
    """The venue gateway's own rule (actors/gateway.py) applied to this adapter: refused while
    unverified, the broker's figures once a complete reply came since the logon."""
    import asyncio
    from types import SimpleNamespace

    from xmc_actors.actors.gateway import PositionsUnavailable, VenueGateway

    cls = VenueGateway.__ray_metadata__.modified_class
    api = FakeTraderApi()
    api.hold_queries = True
    api.positions = _shfe_rows()
    a, _ = adapter(tmp_path, api, account="acct-cn")
    gw = SimpleNamespace(_s=lambda gateway: SimpleNamespace(core=SimpleNamespace(adapter=a)))
    with pytest.raises(PositionsUnavailable, match="session fills"):
        asyncio.run(cls.positions(gw))
    _release(api)
    assert asyncio.run(cls.positions(gw)) == {"acct-cn": {"SHFE.cu": 4}}
    assert asyncio.run(cls.two_sided_positions(gw))["acct-cn/SHFE.cu"]["net"] == 4
    assert asyncio.run(cls.account_reading(gw))["acct-cn"]["currency"] == "CNY"


def test_xmc_status_says_whether_the_positions_are_the_brokers_and_how_old(tmp_path):
    from xmc_actors.ops.cmd_run import _session_line

    api = FakeTraderApi()
    api.hold_queries = True
    api.positions = _shfe_rows()
    a, _ = adapter(tmp_path, api, account="acct-cn")
    assert "positions session fills (not read yet)" in _session_line(a.status())
    _release(api)
    line = _session_line(a.status())
    assert "positions venue (read " in line and " s ago)" in line
