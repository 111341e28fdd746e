"""A CTP front for the adapter's tests, without a network: the only thing replaced is the
network-facing ``CThostFtdcTraderApi``. :class:`FakeTraderApi` records every request and
answers the session's own requests (authenticate, logon, settlement confirmation, order and
trade queries) through the adapter's real SPI, with the binding's own field structures;
the orders' reports are driven by the tests with :func:`rtn_order` and :func:`rtn_trade`
(CThostFtdcOrderField / CThostFtdcTradeField built from the captured
CThostFtdcInputOrderField), in the orders they arrive in practice.

Import only after the locale check (the binding's import aborts without it).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

from openctp_ctp import tdapi

from xmc_actors.core.clock import SystemClock
from xmc_actors.model.market import Instrument, Side, TradingSession, Venue
from xmc_actors.model.orders import Offset, OrderRequest, OrderType, TimeInForce
from xmc_actors.venues.ctp.adapter import CtpAdapter
from xmc_actors.venues.ctp.params import CtpVenueParams

PASSWORD = "s3cret-Pa55"
AUTH_CODE = "0000000000000000"


def venue(code: str = "SHFE", offsets: str = "today_yesterday") -> Venue:
    return Venue(code=code, timezone="Asia/Shanghai", offsets=offsets,
                 sessions=[TradingSession(name="day", start="09:00", end="15:00")])


def instrument(code: str = "SHFE", symbol: str = "cu", tick: str = "10", mult: int = 5) -> Instrument:
    return Instrument(venue=code, symbol=symbol, currency="CNY", price_unit="t" if code != "CFFEX" else "pt",
                      multiplier=mult, tick_size=Decimal(tick))


def request(n: int = 1, *, side: Side = Side.BUY, qty: int = 2, price: str = "70120", offset: Offset | None = Offset.OPEN,
            order_type: OrderType = OrderType.LIMIT, tif: TimeInForce = TimeInForce.DAY,
            instrument_id: str = "SHFE.cu") -> OrderRequest:
    return OrderRequest(client_order_id=f"dec{n}:A:0", decision_id=f"dec{n}", leg="A", account="acct-cn",
                        instrument=instrument_id, side=side, qty=qty, order_type=order_type,
                        price=Decimal(price) if order_type is not OrderType.MARKET else None, tif=tif, offset=offset)


def rsp_info(error_id: int = 0, msg: str = "") -> Any:
    r = tdapi.CThostFtdcRspInfoField()
    r.ErrorID = error_id
    r.ErrorMsg = msg
    return r


class FakeTraderApi:
    """Stands in for CThostFtdcTraderApi. ``front_id``/``session_id``/``max_order_ref``: what
    the logon answers. ``orders``/``trades``: the front's records (CThostFtdcOrderField /
    CThostFtdcTradeField) that ReqQryOrder / ReqQryTrade answer with (filtered by instrument).
    ``on_insert(field)`` / ``on_action(field)``: a test's front reacting to an order or a cancel
    (called inside the request, before it returns). ``returns[name]``: a Req*'s return value (``next_returns[name]``: the next ones, once each)."""

    def __init__(self, *, front_id: int = 1, session_id: int = 0x5A01, max_order_ref: str = "7",
                 trading_day: str = "20261207", connect_on_init: bool = True) -> None:
        self.front_id, self.session_id = front_id, session_id
        self.max_order_ref, self.trading_day = max_order_ref, trading_day
        self.connect_on_init = connect_on_init
        self.calls: list[tuple[str, Any, int]] = []
        self.fronts: list[str] = []
        self.orders: list[Any] = []
        self.trades: list[Any] = []
        self.returns: dict[str, int] = {}
        self.next_returns: dict[str, list[int]] = {}
        self.on_insert: Callable[[Any], None] | None = None
        self.on_action: Callable[[Any], None] | None = None
        self.auth_error: tuple[int, str] | None = None
        self.login_error: tuple[int, str] | None = None
        self.positions: list[Any] = []      # CThostFtdcInvestorPositionField rows ReqQryInvestorPosition answers
        self.accounts: list[Any] = [account_row()]  # CThostFtdcTradingAccountField rows ReqQryTradingAccount answers
        self.query_errors: dict[str, list[tuple[int, str]]] = {}  # "position"/"account": the next answers are these errors
        self.hold_queries = False
        self.held: list[tuple[str, Any, int]] = []
        self.spi: Any = None
        self.flow = ""
        self.private_topic: int | None = None
        self.released = False

    # -- what the adapter calls to set the API up
    def factory(self, flow: str) -> "FakeTraderApi":
        self.flow = flow
        return self

    def RegisterSpi(self, spi: Any) -> None:  # noqa: N802 - the API's names
        self.spi = spi

    def RegisterFront(self, address: str) -> None:  # noqa: N802
        self.fronts.append(address)

    def SubscribePrivateTopic(self, t: int) -> None:  # noqa: N802
        self.private_topic = t

    def SubscribePublicTopic(self, t: int) -> None:  # noqa: N802
        pass

    def Init(self) -> None:  # noqa: N802
        if self.connect_on_init:
            self.spi.OnFrontConnected()

    def Release(self) -> None:  # noqa: N802
        self.released = True

    # -- requests
    def _rec(self, name: str, f: Any, rid: int) -> int:
        self.calls.append((name, f, rid))
        if self.next_returns.get(name):
            return self.next_returns[name].pop(0)
        return self.returns.get(name, 0)

    def requests(self, name: str) -> list[Any]:
        return [f for n, f, _ in self.calls if n == name]

    def ReqAuthenticate(self, f: Any, rid: int) -> int:  # noqa: N802
        r = self._rec("ReqAuthenticate", f, rid)
        rsp = tdapi.CThostFtdcRspAuthenticateField()
        rsp.BrokerID, rsp.UserID, rsp.AppID = f.BrokerID, f.UserID, f.AppID
        self.spi.OnRspAuthenticate(rsp, rsp_info(*self.auth_error) if self.auth_error else None, rid, True)
        return r

    def ReqUserLogin(self, f: Any, rid: int) -> int:  # noqa: N802
        r = self._rec("ReqUserLogin", f, rid)
        rsp = tdapi.CThostFtdcRspUserLoginField()
        rsp.BrokerID, rsp.UserID = f.BrokerID, f.UserID
        rsp.FrontID, rsp.SessionID = self.front_id, self.session_id
        rsp.MaxOrderRef, rsp.TradingDay = self.max_order_ref, self.trading_day
        self.spi.OnRspUserLogin(rsp, rsp_info(*self.login_error) if self.login_error else rsp_info(0), rid, True)
        return r

    def ReqSettlementInfoConfirm(self, f: Any, rid: int) -> int:  # noqa: N802
        r = self._rec("ReqSettlementInfoConfirm", f, rid)
        c = tdapi.CThostFtdcSettlementInfoConfirmField()
        c.BrokerID, c.InvestorID, c.ConfirmDate, c.ConfirmTime = f.BrokerID, f.InvestorID, self.trading_day, "08:55:00"
        self.spi.OnRspSettlementInfoConfirm(c, rsp_info(0), rid, True)
        return r

    def ReqQryOrder(self, f: Any, rid: int) -> int:  # noqa: N802
        r = self._rec("ReqQryOrder", f, rid)
        if r == 0:
            (self.held.append(("order", f, rid)) if self.hold_queries else self.answer_query("order", f, rid))
        return r

    def ReqQryTrade(self, f: Any, rid: int) -> int:  # noqa: N802
        r = self._rec("ReqQryTrade", f, rid)
        if r == 0:
            (self.held.append(("trade", f, rid)) if self.hold_queries else self.answer_query("trade", f, rid))
        return r

    def ReqQryInvestorPosition(self, f: Any, rid: int) -> int:  # noqa: N802
        r = self._rec("ReqQryInvestorPosition", f, rid)
        if r == 0:
            (self.held.append(("position", f, rid)) if self.hold_queries else self.answer_query("position", f, rid))
        return r

    def ReqQryTradingAccount(self, f: Any, rid: int) -> int:  # noqa: N802
        r = self._rec("ReqQryTradingAccount", f, rid)
        if r == 0:
            (self.held.append(("account", f, rid)) if self.hold_queries else self.answer_query("account", f, rid))
        return r

    def answer_query(self, kind: str, f: Any, rid: int) -> None:
        if kind in ("position", "account"):
            cb = self.spi.OnRspQryInvestorPosition if kind == "position" else self.spi.OnRspQryTradingAccount
            errs = self.query_errors.get(kind)
            err = errs.pop(0) if errs else None
            if err is not None:
                cb(None, rsp_info(*err), rid, True)
                return
            rows = self.positions if kind == "position" else self.accounts
            if not rows:
                cb(None, None, rid, True)
            for i, x in enumerate(rows):
                cb(x, rsp_info(0), rid, i == len(rows) - 1)
            return

        rows = [x for x in (self.orders if kind == "order" else self.trades)
                if not f.InstrumentID or x.InstrumentID == f.InstrumentID]
        cb = self.spi.OnRspQryOrder if kind == "order" else self.spi.OnRspQryTrade
        if not rows:
            cb(None, None, rid, True)
        for i, x in enumerate(rows):
            cb(x, None, rid, i == len(rows) - 1)

    def ReqOrderInsert(self, f: Any, rid: int) -> int:  # noqa: N802
        r = self._rec("ReqOrderInsert", f, rid)
        if r == 0 and self.on_insert is not None:
            self.on_insert(f)
        return r

    def ReqOrderAction(self, f: Any, rid: int) -> int:  # noqa: N802
        r = self._rec("ReqOrderAction", f, rid)
        if r == 0 and self.on_action is not None:
            self.on_action(f)
        return r


def rtn_order(inp: Any, api: FakeTraderApi, *, sys_id: str = "", submit: str = "0", status: str = "a",
              traded: int = 0, msg: str = "", front_id: int | None = None, session_id: int | None = None) -> Any:
    """The CThostFtdcOrderField a front sends (OnRtnOrder, or a row of ReqQryOrder) for the
    order ``inp`` (the CThostFtdcInputOrderField the adapter sent)."""
    o = tdapi.CThostFtdcOrderField()
    o.BrokerID, o.InvestorID, o.UserID = inp.BrokerID, inp.InvestorID, inp.UserID
    o.InstrumentID, o.ExchangeID, o.OrderRef = inp.InstrumentID, inp.ExchangeID, inp.OrderRef
    o.FrontID = api.front_id if front_id is None else front_id
    o.SessionID = api.session_id if session_id is None else session_id
    o.OrderSysID = f"{sys_id:>12}" if sys_id else ""
    o.OrderSubmitStatus, o.OrderStatus = submit, status
    o.Direction, o.CombOffsetFlag, o.CombHedgeFlag = inp.Direction, inp.CombOffsetFlag, inp.CombHedgeFlag
    o.OrderPriceType, o.TimeCondition, o.VolumeCondition = inp.OrderPriceType, inp.TimeCondition, inp.VolumeCondition
    o.LimitPrice = inp.LimitPrice
    o.VolumeTotalOriginal = inp.VolumeTotalOriginal
    o.VolumeTraded, o.VolumeTotal = traded, inp.VolumeTotalOriginal - traded
    o.StatusMsg = msg
    o.TradingDay = o.InsertDate = api.trading_day
    o.InsertTime = o.UpdateTime = "21:00:01"
    return o


def rtn_trade(inp: Any, *, sys_id: str, trade_id: str, price: float, volume: int) -> Any:
    """The CThostFtdcTradeField of one execution of ``inp`` (no FrontID / SessionID: a trade
    names its order by the exchange's OrderSysID)."""
    t = tdapi.CThostFtdcTradeField()
    t.BrokerID, t.InvestorID, t.UserID = inp.BrokerID, inp.InvestorID, inp.UserID
    t.InstrumentID, t.ExchangeID, t.OrderRef = inp.InstrumentID, inp.ExchangeID, inp.OrderRef
    t.OrderSysID = f"{sys_id:>12}"
    t.TradeID = f"{trade_id:>20}"
    t.Direction, t.OffsetFlag, t.HedgeFlag = inp.Direction, inp.CombOffsetFlag[:1], inp.CombHedgeFlag[:1]
    t.Price, t.Volume = price, volume
    t.TradeDate, t.TradeTime, t.TradingDay = "20261207", "21:00:02", "20261207"
    return t


def position_row(symbol: str, direction: str, *, position: int, today: int | None = None, yd: int = 0,
                 date: str = tdapi.THOST_FTDC_PSD_Today, long_frozen: int = 0, short_frozen: int = 0,
                 exchange: str = "SHFE", investor: str = "000123", trading_day: str = "20261207") -> Any:
    """One CThostFtdcInvestorPositionField row of a ReqQryInvestorPosition reply."""
    r = tdapi.CThostFtdcInvestorPositionField()
    r.BrokerID, r.InvestorID, r.InstrumentID, r.ExchangeID = "9999", investor, symbol, exchange
    r.PosiDirection, r.HedgeFlag, r.PositionDate = direction, tdapi.THOST_FTDC_HF_Speculation, date
    r.Position, r.YdPosition = position, yd
    r.TodayPosition = (position if date == tdapi.THOST_FTDC_PSD_Today else 0) if today is None else today
    r.LongFrozen, r.ShortFrozen = long_frozen, short_frozen
    r.TradingDay = trading_day
    r.UseMargin = 7000.0 * position
    return r


def account_row(*, balance: float = 1_000_000.0, margin: float = 70_000.0, available: float = 930_000.0,
                currency: str = "CNY") -> Any:
    """The CThostFtdcTradingAccountField of a ReqQryTradingAccount reply."""
    r = tdapi.CThostFtdcTradingAccountField()
    r.BrokerID, r.AccountID, r.CurrencyID, r.TradingDay = "9999", "000123", currency, "20261207"
    r.Balance, r.CurrMargin, r.Available, r.PreBalance = balance, margin, available, balance
    return r


def params(tmp_path: Any, **over: Any) -> CtpVenueParams:
    base: dict[str, Any] = {
        "fronts": ["tcp://182.254.243.31:30001"], "broker_id": "9999", "user_id": "000123",
        "password": {"env": "XMC_TEST_CTP_PASSWORD"}, "app_id": "simnow_client_test",
        "auth_code": {"env": "XMC_TEST_CTP_AUTH_CODE"}, "state_dir": str(tmp_path / "ctp"),
        "symbols": {"SHFE.cu": "cu2502"}, "ack_timeout_ms": 200, "query_timeout_ms": 1000,
        "query_interval_ms": 0, "login_timeout_s": 1,
    }
    base.update(over)
    return CtpVenueParams.model_validate(base)


def adapter(tmp_path: Any, api: FakeTraderApi | None = None, *, restart: bool = False, v: Venue | None = None,
            insts: list[Instrument] | None = None, **over: Any) -> tuple[CtpAdapter, FakeTraderApi]:
    api = api or FakeTraderApi()
    v = v or venue()
    a = CtpAdapter(params(tmp_path, **over), v, insts or [instrument(v.code)], SystemClock(), gateway="gw-shfe-ctp",
                   restart=restart, api_factory=api.factory)
    return a, api
