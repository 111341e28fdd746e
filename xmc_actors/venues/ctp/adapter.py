"""The CTP venue adapter: a CTP trader session (``CThostFtdcTraderApi`` of the ``openctp-ctp``
binding) driven by a venue gateway.

It has the simulated venue's interface (``send``/``answer``/``place``, ``cancel``, ``query``,
``open_orders``, ``positions``, ``drop_copy``, ``poll``, ``connected``, ``clock_probe``...),
so :class:`~xmc_actors.core.gateway_core.GatewayCore` drives it as it drives ``sim`` and
``fix`` (``blocking``: its waits run off the gateway's event loop).

Session: the API connects to a front by itself and reconnects after a drop. On every
connection: ReqAuthenticate (when ``app_id`` is configured), ReqUserLogin, then
ReqSettlementInfoConfirm; only then are orders sent. Then a query of the day's orders and
trades (ReqQryOrder, ReqQryTrade, one at a time: fronts allow about one query a second)
resolves every order whose outcome was left UNKNOWN.

The broker's own figures: after each logon (and settlement confirmation), and again whenever
the gateway asks for ``positions()`` / ``two_sided_positions()`` / ``account_reading()``,
ReqQryInvestorPosition and ReqQryTradingAccount are queued behind those queries (same pace).
The views answer from the last complete reply (``read_ns`` says when it completed) and queue
a refresh. Once a complete position reply has arrived since the logon, ``positions_source``
is ``"venue"``; before, ``"session fills"`` (the gateway then refuses ``positions()`` and the
risk guard counts the venue unverified). A reply with an error, one cut by a disconnect, a
row of an instrument this gateway does not carry: counted and recorded (``bad_input``), the
last good figures kept.

Orders: ReqOrderInsert with an OrderRef of ours (FrontID / SessionID / OrderRef name an
order in CTP), written to the order journal before it leaves (:mod:`.journal`). Reports:

* ``OnRtnOrder``: the order's whole state each time. CTP's receipt (submit status 0, order
  status ``a``) says the front has it; the exchange's acceptance is the ACK; a canceled
  order is CANCELED; an exchange reject (submit status 4) is REJECTED with the reason read
  from its message. Each is reported once.
* ``OnRtnTrade``: one FILL per trade (de-duplicated by exchange, TradeID, OrderSysID and
  direction). A trade carries no FrontID / SessionID, only the exchange's OrderSysID, so a
  trade that arrives before its order's first report naming that OrderSysID is held and
  booked right after it (ACK, then FILL).
* ``OnRspOrderInsert`` / ``OnErrRtnOrderInsert``: CTP refused the order before the
  exchange saw it: REJECTED, the reason from the ErrorID.
* ``OnRspOrderAction`` / ``OnErrRtnOrderAction`` (and an OnRtnOrder with submit status 5):
  a cancel refused: CANCEL_REJECTED.

Threads: the API calls the SPI on its own thread; everything is routed under one condition
variable to whoever waits (a place's answer, a cancel, a query) or to the push queue that
:meth:`CtpAdapter.poll` drains. Nothing raises into the API's thread. No credential is kept:
the password and auth code are read from their environment variables when a request is
built and go only into that request.
"""
from __future__ import annotations

import collections
import os
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Sequence

from ...core.clock import Clock
from ...model.market import Instrument, Venue
from ...model.orders import (
    ExecReportKind, ExecutionReport, Fill, OrderRequest, OrderState, OrderStatus, RejectReason,
)
from ..sim import PlaceReply, VenueDisconnected, wire_message
from . import mapping as M
from .binding import load_tdapi
from .journal import OrderJournal
from .params import CTP_EXCHANGES, CtpVenueParams

_MS = 1_000_000
#: what a nonzero return of a Req* call means (the API's documentation)
#: how often a refused position / funds reply is asked again before one has been read since the logon
BROKER_RETRIES = 3
REQ_RETURNS = {-1: "network connection failed", -2: "too many requests waiting", -3: "requests per second exceeded"}


def default_state_root() -> Path:
    env = os.environ.get("XMC_VAR_DIR")
    if env:
        return Path(env) / "ctp"
    return Path(tempfile.gettempdir()) / "xmc-ctp"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "ctp"



@dataclass
class _Wait:
    """One call waiting for the front: its reports so far."""

    reports: list[ExecutionReport] = field(default_factory=list)
    done: bool = False
    dropped: bool = False  # the front went away while waiting


@dataclass(eq=False)
class _Order:
    """One order we sent (or found in the journal), as CTP names it and as its reports left it."""

    req: OrderRequest
    view: OrderState
    key: tuple[int, int, str]          # FrontID, SessionID, OrderRef (normalised)
    ref: str                           # OrderRef as sent
    exchange_id: str
    symbol: str
    sys_id: str = ""                   # the exchange's OrderSysID, once a report names it
    at_front: bool = False             # an OnRtnOrder (or a query) showed the front has it
    acked: bool = False                # ACK (or a later state) reported
    final: bool = False                # REJECTED / CANCELED reported
    absent: bool = False               # a complete query made after it was sent does not list it
    restored: bool = False             # from the journal of a previous life, not yet handed back
    cancel_pending: bool = False
    sent_ns: int = 0                   # monotonic
    trading_day: str = ""              # the front's trading day when it was sent
    venue_filled: int = 0              # VolumeTraded in the front's last word
    venue_status: OrderStatus | None = None
    trades: list[ExecutionReport] = field(default_factory=list)


@dataclass(eq=False)
class _Sweep:
    """A query of the front's orders then trades (of one instrument, or all)."""

    instrument: str = ""
    exchange_id: str = ""
    phase: str = "order"               # order -> trade -> done
    orders: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    started_ns: int = 0                # monotonic, when its first request went out
    done: bool = False
    error: str = ""
    login: bool = False                # the one a logon makes
    rows: list[dict[str, Any]] = field(default_factory=list)  # position / account rows so far


#: the phases of a sweep that reads the broker's figures (one request each), their request
#: and query-field names
_BROKER_QUERIES = {"position": ("ReqQryInvestorPosition", "CThostFtdcQryInvestorPositionField"),
                   "account": ("ReqQryTradingAccount", "CThostFtdcQryTradingAccountField")}


def _spi_class(td: Any) -> type:
    """The SPI (callback) class on the binding's ``CThostFtdcTraderSpi``; every callback hands
    its fields to the adapter and never lets an exception into the API's thread."""

    class CtpTraderSpi(td.CThostFtdcTraderSpi):  # type: ignore[misc, name-defined]
        def __init__(self, adapter: "CtpAdapter") -> None:
            super().__init__()
            self.a = adapter

        def _do(self, fn: Callable[..., None], *args: Any) -> None:
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - never into the API's thread
                self.a._callback_error(e)

        def OnFrontConnected(self) -> None:  # noqa: N802 - the API's names
            self._do(self.a._on_front_connected)

        def OnFrontDisconnected(self, nReason: int) -> None:  # noqa: N802, N803
            self._do(self.a._on_front_disconnected, nReason)

        def OnHeartBeatWarning(self, nTimeLapse: int) -> None:  # noqa: N802, N803
            self._do(self.a._count, "heartbeat_warnings")

        def OnRspAuthenticate(self, pRspAuthenticateField: Any, pRspInfo: Any, nRequestID: int,  # noqa: N802, N803
                              bIsLast: bool) -> None:
            self._do(self.a._on_rsp_authenticate, _err(pRspInfo))

        def OnRspUserLogin(self, pRspUserLogin: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:  # noqa: N802, N803
            f = None
            if pRspUserLogin is not None:
                f = M.fields(pRspUserLogin, ("FrontID", "SessionID", "MaxOrderRef", "TradingDay", "SystemName"))
            self._do(self.a._on_rsp_user_login, f, _err(pRspInfo))

        def OnRspSettlementInfoConfirm(self, pSettlementInfoConfirm: Any, pRspInfo: Any, nRequestID: int,  # noqa: N802, N803
                                       bIsLast: bool) -> None:
            self._do(self.a._on_rsp_settlement_confirm, _err(pRspInfo))

        def OnRspError(self, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:  # noqa: N802, N803
            self._do(self.a._on_rsp_error, _err(pRspInfo), nRequestID)

        def OnRtnOrder(self, pOrder: Any) -> None:  # noqa: N802, N803
            if pOrder is not None:
                self._do(self.a._on_order, M.fields(pOrder, M.ORDER_FIELDS), "flow")

        def OnRtnTrade(self, pTrade: Any) -> None:  # noqa: N802, N803
            if pTrade is not None:
                self._do(self.a._on_trade, M.fields(pTrade, M.TRADE_FIELDS), "flow")

        def OnRspOrderInsert(self, pInputOrder: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:  # noqa: N802, N803
            if pInputOrder is not None:
                self._do(self.a._on_insert_error, M.fields(pInputOrder, M.INPUT_ORDER_FIELDS), _err(pRspInfo),
                         "OnRspOrderInsert")

        def OnErrRtnOrderInsert(self, pInputOrder: Any, pRspInfo: Any) -> None:  # noqa: N802, N803
            if pInputOrder is not None:
                self._do(self.a._on_insert_error, M.fields(pInputOrder, M.INPUT_ORDER_FIELDS), _err(pRspInfo),
                         "OnErrRtnOrderInsert")

        def OnRspOrderAction(self, pInputOrderAction: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:  # noqa: N802, N803
            if pInputOrderAction is not None:
                self._do(self.a._on_action_error, M.fields(pInputOrderAction, M.ACTION_FIELDS), _err(pRspInfo),
                         "OnRspOrderAction")

        def OnErrRtnOrderAction(self, pOrderAction: Any, pRspInfo: Any) -> None:  # noqa: N802, N803
            if pOrderAction is not None:
                self._do(self.a._on_action_error, M.fields(pOrderAction, M.ACTION_FIELDS), _err(pRspInfo),
                         "OnErrRtnOrderAction")

        def OnRspQryOrder(self, pOrder: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:  # noqa: N802, N803
            row = M.fields(pOrder, M.ORDER_FIELDS) if pOrder is not None else None
            self._do(self.a._on_query_rows, "order", row, _err(pRspInfo), nRequestID, bIsLast)

        def OnRspQryTrade(self, pTrade: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:  # noqa: N802, N803
            row = M.fields(pTrade, M.TRADE_FIELDS) if pTrade is not None else None
            self._do(self.a._on_query_rows, "trade", row, _err(pRspInfo), nRequestID, bIsLast)

        def OnRspQryInvestorPosition(self, pInvestorPosition: Any, pRspInfo: Any, nRequestID: int,  # noqa: N802, N803
                                     bIsLast: bool) -> None:
            row = M.fields(pInvestorPosition, M.POSITION_FIELDS) if pInvestorPosition is not None else None
            self._do(self.a._on_query_rows, "position", row, _err(pRspInfo), nRequestID, bIsLast)

        def OnRspQryTradingAccount(self, pTradingAccount: Any, pRspInfo: Any, nRequestID: int,  # noqa: N802, N803
                                   bIsLast: bool) -> None:
            row = M.fields(pTradingAccount, M.ACCOUNT_FIELDS) if pTradingAccount is not None else None
            self._do(self.a._on_query_rows, "account", row, _err(pRspInfo), nRequestID, bIsLast)

    return CtpTraderSpi


#: CTP fills a money field it has no value for with DBL_MAX: anything this large is none
_NOT_AN_AMOUNT = Decimal("1e15")


def _iso_day(day: str) -> str | None:
    """CTP's ``YYYYMMDD`` as ``YYYY-MM-DD`` (None when it is not a date)."""
    day = day.strip()
    return f"{day[:4]}-{day[4:6]}-{day[6:8]}" if len(day) == 8 and day.isdigit() else None


def _err(info: Any) -> tuple[int, str] | None:
    """(ErrorID, ErrorMsg) of a CThostFtdcRspInfoField that reports an error; None for none."""
    if info is None:
        return None
    eid = int(getattr(info, "ErrorID", 0) or 0)
    if eid == 0:
        return None
    return eid, str(getattr(info, "ErrorMsg", "") or "")


class CtpAdapter:
    """A venue reached through one CTP trader session. See the module docstring.

    ``api_factory(flow_dir) -> api``: makes the network-facing API object (default: the
    binding's ``CThostFtdcTraderApi.CreateFtdcTraderApi``); tests give a recording fake and
    drive :attr:`spi` themselves.
    """

    blocking = True
    real_latency = True
    @property
    def positions_source(self) -> str:
        """``"venue"`` once a complete ReqQryInvestorPosition reply has arrived since the
        current logon (positions() are then the broker's); before, ``"session fills"``: the
        gateway refuses positions() and the risk guard counts the venue unverified rather
        than take this session's fills for the broker's position keeping."""
        return "venue" if self._positions_verified else "session fills"

    def __init__(self, params: CtpVenueParams, venue: Venue, instruments: Sequence[Instrument], clock: Clock, *,
                 gateway: str = "", restart: bool = False, api_factory: Callable[[str], Any] | None = None) -> None:
        exchange = params.exchange_id or venue.code
        if exchange not in CTP_EXCHANGES:
            raise ValueError(f"{gateway or venue.code}: params.exchange_id: venue {venue.code} is not an exchange CTP "
                             f"reaches ({', '.join(CTP_EXCHANGES)}); set exchange_id")
        self.td = load_tdapi()
        self.p = params
        self.venue = venue
        self.clock = clock
        self.name = gateway or f"gateway-{venue.code}"
        self.exchange_id = exchange
        self.instruments = {i.id: i for i in instruments}
        self.symbols = {iid: params.symbols.get(iid, i.symbol) for iid, i in self.instruments.items()}
        self.cv = threading.Condition(threading.RLock())
        self.orders: dict[str, _Order] = {}
        self._by_key: dict[tuple[int, int, str], _Order] = {}
        self._by_sys: dict[tuple[str, str], _Order] = {}
        self._foreign_sys: set[tuple[str, str]] = set()
        self._held_trades: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._trade_keys: set[tuple[str, str, str, str]] = set()
        self._places: dict[str, _Wait] = {}
        self._cancels: dict[str, _Wait] = {}
        self._querying: set[str] = set()
        self._pushed: list[ExecutionReport] = []
        self._sweeps: collections.deque[_Sweep] = collections.deque()
        self._inflight: tuple[int, _Sweep] | None = None
        self._next_query_ns = 0
        self._md_seq: dict[str, int] = {}
        # the broker's figures: the last complete replies, when they completed (clock ns)
        self.account = params.account or params.investor
        self._by_symbol = {sym: iid for iid, sym in self.symbols.items()}
        self._positions_verified = False   # a complete position reply since this logon
        self._broker_two_sided: dict[tuple[str, str], dict[str, Any]] | None = None
        self._positions_read_ns = 0
        self._fills_at_read: dict[str, int] = {}  # client order id -> lots filled, at the last position reply
        self._positions_asked_ns = 0          # our clock when the last complete position reply was asked for
        self._account: dict[str, Any] | None = None
        self._account_read_ns = 0
        self._login_ns = 0
        self._unknown_symbols: set[str] = set()
        self._broker_retries: dict[str, int] = {}  # refused replies asked again, this logon
        self._waker: Any = None
        self.counters: dict[str, int] = {}
        self.bad_input: list[dict[str, Any]] = []
        self.bad_input_recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self.drop_copy_log: list[dict[str, Any]] = []
        self.state = "CONNECTING"
        self.ready = False
        self.front_id = 0
        self.session_id = 0
        self.trading_day = ""
        self.last_error = ""
        self.last_disconnect = ""
        self.last_answer_ns = 0
        self.logins = 0
        self._req_id = 0
        self._action_ref = 0
        self._closed = False

        base = Path(params.state_dir) if params.state_dir else default_state_root()
        self.state_dir = base / _safe(self.name)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.journal = OrderJournal(self.state_dir / "orders.jsonl", fresh=not restart)
        self.restored = 0
        for coid, e in self.journal.state.entries.items():
            req = e.req
            key = (e.front_id, e.session_id, M.norm_ref(e.order_ref))
            o = _Order(req=req, view=OrderState(request=req, status=OrderStatus.UNKNOWN), key=key, ref=e.order_ref,
                       exchange_id=e.exchange_id or self.exchange_id,
                       symbol=self.symbols.get(req.instrument, req.instrument.split(".")[-1]), restored=True,
                       sys_id=e.order_sys_id, trading_day=e.trading_day)
            self.orders[coid] = o
            self._by_key[key] = o
            if o.sys_id:
                self._by_sys[(o.exchange_id, o.sys_id)] = o
            self.restored += 1
        if self.journal.state.unreadable:
            self._count("journal_unreadable", self.journal.state.unreadable)
        self._next_ref = self.journal.state.max_ref + 1

        flow = self.state_dir / "flow"
        flow.mkdir(parents=True, exist_ok=True)
        factory = api_factory or self._create_api
        self.api = factory(str(flow) + os.sep)
        self.spi = _spi_class(self.td)(self)
        self.api.RegisterSpi(self.spi)
        for front in params.fronts:
            self.api.RegisterFront(front)
        self.api.SubscribePrivateTopic(M.RESUME_TYPES[params.private_topic])
        self.api.SubscribePublicTopic(M.RESUME_TYPES["quick"])
        self.api.Init()
        self.wait_ready(params.login_timeout_s)

    def _create_api(self, flow: str) -> Any:
        return self.td.CThostFtdcTraderApi.CreateFtdcTraderApi(flow, self.p.production_mode)

    # ------------------------------------------------------------------ lifecycle
    def wait_ready(self, timeout_s: float) -> bool:
        """Wait for a logon with its settlement confirmed (orders may go)."""
        with self.cv:
            return self.cv.wait_for(lambda: self.ready or self._closed or self.state.endswith("FAILED"),
                                    timeout=timeout_s) and self.ready

    def close(self) -> None:
        """Release the API (the session ends; the front keeps our orders). Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self.cv:
            self.ready = False
            self.state = "CLOSED"
            self.cv.notify_all()
        try:
            self.api.RegisterSpi(None)
        except Exception:  # noqa: BLE001
            pass
        try:
            self.api.Release()
        except Exception:  # noqa: BLE001
            pass
        self.journal.close()

    def _next_req(self) -> int:
        self._req_id += 1
        return self._req_id

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _callback_error(self, e: BaseException) -> None:
        self._count("callback_errors")
        self._bad("CALLBACK_ERROR", f"{type(e).__name__}: {e}"[:300])
        traceback.print_exception(e)  # the worker's log: where the bug is

    def _bad(self, reason: str, detail: str) -> None:
        self._count("bad_input")
        b = {"reason": reason, "detail": detail, "tag": 0, "ts_ns": self.clock.now_ns()}
        with self.cv:
            self.bad_input.append(b)
            self.bad_input_recent.append(b)
            del self.bad_input[:-10_000]

    def _error_text(self, what: str, err: tuple[int, str]) -> str:
        return f"{what}: CTP error {err[0]}: {err[1]}"

    # ------------------------------------------------------------------ session (SPI thread)
    def _on_front_connected(self) -> None:
        with self.cv:
            self.state = "AUTHENTICATING" if self.p.app_id else "LOGGING_IN"
            self._count("connects")
        if self.p.app_id:
            f = self.td.CThostFtdcReqAuthenticateField()
            f.BrokerID = self.p.broker_id
            f.UserID = self.p.user_id
            f.AppID = self.p.app_id
            f.AuthCode = self.p.auth_code.resolve() if self.p.auth_code is not None else ""
            f.UserProductInfo = self.p.user_product_info
            self._req("ReqAuthenticate", f)
        else:
            self._login()

    def _req(self, name: str, f: Any) -> int:
        ret = getattr(self.api, name)(f, self._next_req())
        if ret != 0:
            self._count("requests_refused")
            with self.cv:
                self.last_error = f"{name} returned {ret} ({REQ_RETURNS.get(ret, 'refused')})"
        return int(ret)

    def _login(self) -> None:
        f = self.td.CThostFtdcReqUserLoginField()
        f.BrokerID = self.p.broker_id
        f.UserID = self.p.user_id
        f.Password = self.p.password.resolve()
        f.UserProductInfo = self.p.user_product_info
        with self.cv:
            self.state = "LOGGING_IN"
        self._req("ReqUserLogin", f)

    def _on_rsp_authenticate(self, err: tuple[int, str] | None) -> None:
        if err is not None:
            with self.cv:
                self.state = "AUTH_FAILED"
                self.last_error = self._error_text("authentication refused", err)
                self.cv.notify_all()
            return
        self._login()

    def _on_rsp_user_login(self, f: dict[str, Any] | None, err: tuple[int, str] | None) -> None:
        if err is not None or f is None:
            with self.cv:
                self.state = "LOGIN_FAILED"
                self.last_error = self._error_text("logon refused", err) if err else "logon: no answer fields"
                self.cv.notify_all()
            return
        with self.cv:
            self.front_id = int(f["FrontID"])
            self.session_id = int(f["SessionID"])
            self.trading_day = str(f["TradingDay"] or "")
            mx = str(f["MaxOrderRef"] or "").strip()
            if mx.isdigit():
                self._next_ref = max(self._next_ref, int(mx) + 1)
            self.logins += 1
            self._count("logins")
            self._positions_verified = False  # this logon's own reply must come first
            self._broker_retries = {}
            self._login_ns = self.clock.now_ns()
            self._expire_past_days()
        if self.p.confirm_settlement:
            c = self.td.CThostFtdcSettlementInfoConfirmField()
            c.BrokerID = self.p.broker_id
            c.InvestorID = self.p.investor
            with self.cv:
                self.state = "CONFIRMING"
            self._req("ReqSettlementInfoConfirm", c)
        else:
            self._session_ready()

    def _expire_past_days(self) -> None:
        """A logon into a later trading day: the exchanges dropped every order of an earlier
        one at its close without a report (CTP sends none, and its queries list only the
        current day). Those we knew to be working are EXPIRED; one left UNKNOWN stays so (its
        last day's fills cannot be asked for any more: the desk resolves it)."""
        for o in self.orders.values():
            if o.trading_day and self.trading_day and o.trading_day < self.trading_day and not o.final \
                    and o.view.status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED) \
                    and not o.absent:
                o.final = True
                self._count("expired_at_day_end")
                self._emit(o, self._report(o, ExecReportKind.EXPIRED, OrderStatus.EXPIRED,
                                           text=f"day order of trading day {o.trading_day}: gone at its close "
                                                f"(logon into {self.trading_day})"))

    def _on_rsp_settlement_confirm(self, err: tuple[int, str] | None) -> None:
        if err is not None:
            with self.cv:
                self.state = "CONFIRM_FAILED"
                self.last_error = self._error_text("settlement confirmation refused", err)
                self.cv.notify_all()
            return
        self._session_ready()

    def _session_ready(self) -> None:
        with self.cv:
            self.ready = True
            self.state = "READY"
            # every logon asks the front for the day's orders and trades: whatever was left
            # UNKNOWN (an insert whose answer the drop took, a restart) is resolved by it
            self._sweeps.appendleft(_Sweep(login=True))
            # then the broker's positions and funds (start of day, after a reconnect)
            self._queue_broker_reads()
            self.cv.notify_all()
            self._pump()

    def _on_front_disconnected(self, reason: int) -> None:
        with self.cv:
            was = self.ready
            self.ready = False
            if self.state != "CLOSED":
                self.state = "DISCONNECTED"
            self.last_disconnect = f"0x{int(reason):04x}"
            self._count("disconnects")
            # the broker's figures of the last logon may be moving without us: not the venue's
            # word until the next logon's own reply (positions_source 'session fills' meanwhile)
            self._positions_verified = False
            for w in list(self._places.values()) + list(self._cancels.values()):
                w.dropped = True
            if self._inflight is not None:
                # the front will not answer it: the query goes again after the next logon
                _, sw = self._inflight
                if sw.phase in _BROKER_QUERIES:
                    if sw.rows:
                        self._count(f"{sw.phase}_replies_cut")
                        self._bad("PARTIAL_REPLY", f"{_BROKER_QUERIES[sw.phase][0]}: the front went away after "
                                                   f"{len(sw.rows)} row(s) (disconnect 0x{int(reason):04x}); "
                                                   "the last complete reply is kept")
                    sw.rows, sw.started_ns = [], 0
                else:
                    sw.phase, sw.orders, sw.trades, sw.started_ns = "order", [], [], 0
                self._inflight = None
            # the logon sweep of a session that is gone is replaced by the next logon's (and
            # so are its reads of the broker's figures)
            if was:
                self._sweeps = collections.deque(s for s in self._sweeps
                                                 if not s.login and s.phase not in _BROKER_QUERIES)
            self.cv.notify_all()

    def _on_rsp_error(self, err: tuple[int, str] | None, req_id: int) -> None:
        if err is None:
            return
        with self.cv:
            self.last_error = self._error_text(f"request {req_id}", err)
        self._bad("CTP_ERROR", self.last_error)

    # ------------------------------------------------------------------ reports (SPI thread)
    def _report(self, o: _Order, kind: ExecReportKind, status: OrderStatus, *, reason: RejectReason | None = None,
                text: str = "", fill: Fill | None = None, filled: int | None = None) -> ExecutionReport:
        v = o.view
        fq = v.filled_qty if filled is None else filled
        return ExecutionReport(kind=kind, client_order_id=o.req.client_order_id, venue_order_id=o.sys_id,
                               venue=self.venue.code, instrument=o.req.instrument, status=status, filled_qty=fq,
                               leaves_qty=max(o.req.qty - fq, 0) if status.is_live else 0,
                               avg_price=v.avg_price, fill=fill, reason=reason, text=text,
                               decision_id=o.req.decision_id, leg=o.req.leg)

    def _emit(self, o: _Order, rep: ExecutionReport, *, applied: bool = False) -> None:
        """Apply a report to our view, write its drop copy and hand it to whoever waits for it
        (a cancel, a place), else push it."""
        if not applied:
            try:
                o.view.apply(rep)
            except Exception:  # noqa: BLE001 - the venue's word is recorded even if it surprises us
                self._count("unexpected_reports")
        self._drop_copy(o, rep)
        coid = o.req.client_order_id
        if rep.kind in (ExecReportKind.CANCELED, ExecReportKind.CANCEL_REJECTED):
            cw = self._cancels.get(coid)
            if cw is not None and not cw.done:
                cw.reports.append(rep)
                cw.done = True
                self.cv.notify_all()
                return
        w = self._places.get(coid)
        if w is not None and not w.done:
            w.reports.append(rep)
            self.cv.notify_all()
            return
        if o.restored:
            return  # handed back by recovered_orders (the gateway restarting takes them there)
        was_empty = not self._pushed
        self._pushed.append(rep)
        if was_empty:
            self._wake()

    def _drop_copy(self, o: _Order, rep: ExecutionReport) -> None:
        f = rep.fill
        self.drop_copy_log.append({
            "ts_ns": self.clock.now_ns(), "venue_ts_ns": rep.venue_ts_ns, "kind": rep.kind.value,
            "client_order_id": rep.client_order_id, "venue_order_id": rep.venue_order_id,
            "instrument": rep.instrument, "side": o.req.side.value, "account": o.req.account, "order_qty": o.req.qty,
            "status": rep.status.value, "filled_qty": rep.filled_qty, "leaves_qty": rep.leaves_qty,
            "trade_id": f.trade_id if f else "", "fill_qty": f.qty if f else 0,
            "fill_price": str(f.price) if f else "", "reason": rep.reason.value if rep.reason else "",
            "decision_id": o.req.decision_id, "leg": o.req.leg, "exec_id": "",
            "ctp": {"front_id": o.key[0], "session_id": o.key[1], "order_ref": o.ref, "order_sys_id": o.sys_id,
                    "offset": M.offset_name(o.req) or ""},
        })

    def _learn_sys(self, o: _Order, exchange_id: str, sys_id: str) -> None:
        sys_id = (sys_id or "").strip()
        if not sys_id or o.sys_id == sys_id:
            return
        o.sys_id = sys_id
        o.exchange_id = exchange_id or o.exchange_id
        self._by_sys[(o.exchange_id, sys_id)] = o
        try:
            self.journal.sys_id(o.req.client_order_id, o.exchange_id, sys_id)
        except (OSError, ValueError):
            self._count("journal_errors")

    def _on_order(self, f: dict[str, Any], source: str) -> None:
        """An OnRtnOrder (``source`` flow) or a row of ReqQryOrder's answer (query): the
        order's whole state; what changed is reported, once."""
        with self.cv:
            key = (int(f["FrontID"]), int(f["SessionID"]), M.norm_ref(f["OrderRef"]))
            sys = (str(f["ExchangeID"]), str(f["OrderSysID"]).strip())
            o = self._by_key.get(key)
            if o is None:
                # not one of ours (another session of this user, a manual order): its trades are not ours either
                if sys[1]:
                    self._foreign_sys.add(sys)
                    dropped = self._held_trades.pop(sys, None)
                    if dropped:
                        self._count("foreign_trades", len(dropped))
                self._count("foreign_orders")
                return
            self._learn_sys(o, sys[0], sys[1])
            o.at_front = True
            o.absent = False
            submit, ost = str(f["OrderSubmitStatus"]), str(f["OrderStatus"])
            status = M.status_of(submit, ost)
            o.venue_status = status
            o.venue_filled = max(o.venue_filled, int(f["VolumeTraded"] or 0))
            msg = str(f["StatusMsg"] or "")
            if o.view.status is OrderStatus.UNKNOWN and source == "query":
                self._resolve(o, status, msg)
            elif status is OrderStatus.REJECTED:
                if not o.final:
                    o.final = o.acked = True
                    self._emit(o, self._report(o, ExecReportKind.REJECTED, OrderStatus.REJECTED,
                                               reason=M.reason_of_text(msg),
                                               text=f"{sys[0] or self.exchange_id} rejected the order: {msg}"))
            elif submit == M.OSS_CANCEL_REJECTED and o.cancel_pending:
                o.cancel_pending = False
                self._emit(o, self._report(o, ExecReportKind.CANCEL_REJECTED, o.view.status,
                                           reason=RejectReason.TOO_LATE_TO_CANCEL if status.is_terminal else M.reason_of_text(msg),
                                           text=f"cancel refused: {msg}"))
            elif status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED):
                if not o.acked:
                    o.acked = True
                    st = OrderStatus.ACCEPTED if o.view.filled_qty == 0 else o.view.status
                    self._emit(o, self._report(o, ExecReportKind.ACK, st, text=msg))
            elif status is OrderStatus.CANCELED:
                if not o.final:
                    o.final = o.acked = True
                    o.cancel_pending = False
                    self._emit(o, self._report(o, ExecReportKind.CANCELED, OrderStatus.CANCELED, text=msg))
            # trades that came before this order's first word (no OrderSysID to find it by then)
            held = self._held_trades.pop((o.exchange_id, o.sys_id), None) if o.sys_id else None
            for t in held or ():
                self._count("held_trades_booked")
                self._on_trade(t, "held")

    def _resolve(self, o: _Order, status: OrderStatus, msg: str) -> None:
        """A query found an order whose outcome we did not know: its STATUS (pushed, as the
        FIX adapter's status requests on logon are; the gateway core applies it). Its fills
        come as their own FILL reports from the trades query."""
        o.venue_status = status
        o.view.status = status  # the adapter's own view: any status may follow UNKNOWN here
        if status is OrderStatus.SUBMITTED:
            return  # CTP has it, the exchange has not answered: its reports follow on the flow
        o.acked = True
        o.final = status in (OrderStatus.CANCELED, OrderStatus.REJECTED)
        rep = self._report(o, ExecReportKind.STATUS, status, filled=o.venue_filled,
                           text=f"found by the query after {'a restart' if o.restored else 'a reconnect'}: {msg}".rstrip(": "))
        self._count("unknown_resolved")
        if o.req.client_order_id in self._querying or o.restored:
            return  # the query waiting (or recovered_orders) hands it over
        was_empty = not self._pushed
        self._pushed.append(rep)
        if was_empty:
            self._wake()

    def _on_trade(self, t: dict[str, Any], source: str) -> None:
        with self.cv:
            ex, sys_id = str(t["ExchangeID"]), str(t["OrderSysID"]).strip()
            tkey = (ex, str(t["TradeID"]).strip(), sys_id, str(t["Direction"]))
            if tkey in self._trade_keys:
                self._count("duplicate_trades")
                return
            o = self._by_sys.get((ex, sys_id))
            if o is None:
                if (ex, sys_id) in self._foreign_sys:
                    self._trade_keys.add(tkey)
                    self._count("foreign_trades")
                    return
                held = self._held_trades.setdefault((ex, sys_id), [])
                if all((str(h["TradeID"]).strip(), str(h["Direction"])) != (tkey[1], tkey[3]) for h in held):
                    held.append(t)
                    self._count("trades_held")
                return
            self._trade_keys.add(tkey)
            inst = self.instruments.get(o.req.instrument)
            qty = int(t["Volume"])
            if qty <= 0:
                self._bad("BAD_TRADE", f"trade {tkey[1]} of {o.req.client_order_id} has volume {qty}")
                return
            fill = Fill(trade_id=f"{ex}.{tkey[1]}.{'B' if tkey[3] == M.D_BUY else 'S'}",
                        client_order_id=o.req.client_order_id, venue_order_id=sys_id, instrument=o.req.instrument,
                        side=o.req.side, qty=qty, price=M.price_in(t["Price"], inst.tick_size if inst else None),
                        ts_ns=self.clock.now_ns())
            try:
                o.view.apply_fill(fill)
            except Exception:  # noqa: BLE001 - the venue's word is recorded even if it surprises us
                self._count("unexpected_reports")
            o.acked = True
            rep = self._report(o, ExecReportKind.FILL, o.view.status, fill=fill,
                               text=f"{t.get('TradeDate', '')} {t.get('TradeTime', '')}".strip())
            o.trades.append(rep)
            self._count("fills")
            self._emit(o, rep, applied=True)

    def _input_owner(self, f: dict[str, Any]) -> _Order | None:
        """Our order an OnRspOrderInsert / OnErrRtnOrderInsert is about: this session's OrderRef
        (ours are never reused: the journal carries the counter across sessions), checked
        against its instrument and direction."""
        o = self._by_key.get((self.front_id, self.session_id, M.norm_ref(f["OrderRef"])))
        if o is None or o.symbol != str(f["InstrumentID"]) or M.direction(o.req.side) != str(f["Direction"]):
            return None
        return o

    def _on_insert_error(self, f: dict[str, Any], err: tuple[int, str] | None, what: str) -> None:
        if err is None:
            return
        with self.cv:
            o = self._input_owner(f)
            if o is None:
                self._count("foreign_insert_errors")
                return
            if o.final or o.at_front:
                self._count("duplicate_reports")
                return
            o.final = o.acked = True
            o.absent = True  # CTP refused it: no order exists at the front
            self._emit(o, self._report(o, ExecReportKind.REJECTED, OrderStatus.REJECTED,
                                       reason=M.reason_of_error(err[0]),
                                       text=self._error_text(f"{what}: CTP refused the order", err)))

    def _on_action_error(self, f: dict[str, Any], err: tuple[int, str] | None, what: str) -> None:
        if err is None:
            return
        with self.cv:
            o = None
            if str(f["OrderRef"]).strip():
                o = self._by_key.get((int(f["FrontID"] or 0), int(f["SessionID"] or 0), M.norm_ref(f["OrderRef"])))
            if o is None and str(f["OrderSysID"]).strip():
                o = self._by_sys.get((str(f["ExchangeID"]), str(f["OrderSysID"]).strip()))
            if o is None:
                self._count("foreign_action_errors")
                return
            if not o.cancel_pending:
                self._count("duplicate_reports")
                return
            o.cancel_pending = False
            self._emit(o, self._report(o, ExecReportKind.CANCEL_REJECTED, o.view.status,
                                       reason=M.reason_of_error(err[0]),
                                       text=self._error_text(f"{what}: cancel refused", err)))

    # ------------------------------------------------------------------ queries
    def _pump(self) -> None:
        """Send the next query request when none is in flight and the front's pace allows
        (called under the lock: from callbacks, poll and waiting queries)."""
        if self._inflight is not None or not self._sweeps or not self.ready or self._closed:
            return
        now = time.monotonic_ns()
        if now < self._next_query_ns:
            return
        sw = self._sweeps[0]
        if sw.phase in _BROKER_QUERIES:
            name, struct = _BROKER_QUERIES[sw.phase]
            f = getattr(self.td, struct)()
            # every instrument of the investor (the rows of other exchanges are skipped:
            # their gateways read them); funds in the account's currency
            sw.rows = []
        elif sw.phase == "order":
            f = self.td.CThostFtdcQryOrderField()
            name = "ReqQryOrder"
        else:
            f = self.td.CThostFtdcQryTradeField()
            name = "ReqQryTrade"
        f.BrokerID = self.p.broker_id
        f.InvestorID = self.p.investor
        if sw.instrument:  # (a read of the broker's figures names none: all of them)
            f.InstrumentID = sw.instrument
        if sw.exchange_id:
            f.ExchangeID = sw.exchange_id
        rid = self._next_req()
        self._next_query_ns = now + int(self.p.query_interval_ms * _MS)
        if not sw.started_ns:
            sw.started_ns = now
        self._inflight = (rid, sw)
        ret = getattr(self.api, name)(f, rid)
        if ret != 0 and self._inflight is not None and self._inflight[0] == rid:
            self._inflight = None  # refused (pace, queue): tried again on the next pump
            self._count("queries_refused")

    def _on_query_rows(self, kind: str, row: dict[str, Any] | None, err: tuple[int, str] | None, rid: int,
                       last: bool) -> None:
        with self.cv:
            if self._inflight is None or self._inflight[0] != rid:
                self._count("stray_query_answers")
                return
            sw = self._inflight[1]
            if kind in _BROKER_QUERIES:
                self._on_broker_rows(sw, kind, row, err, last)
                return
            if err is not None:
                sw.error = self._error_text(f"ReqQry{kind.title()}", err)
            elif row is not None:
                (sw.orders if kind == "order" else sw.trades).append(row)
            if not last:
                return
            self._inflight = None
            if sw.error:
                self._sweeps.remove(sw)
                sw.done = True
                self._count("query_errors")
                self.cv.notify_all()
            elif kind == "order":
                sw.phase = "trade"
            else:
                self._sweeps.remove(sw)
                self._sweep_done(sw)
            self._pump()

    # ------------------------------------------------------------------ the broker's figures
    def _queue_broker_reads(self) -> None:
        """Queue ReqQryInvestorPosition and ReqQryTradingAccount (each once: one already
        waiting or in flight serves), behind the queries already waiting. Under the lock."""
        for phase in _BROKER_QUERIES:
            if not any(s.phase == phase for s in self._sweeps):
                self._sweeps.append(_Sweep(phase=phase))

    def refresh_broker_figures(self) -> None:
        """Ask the front again for positions and funds (sent when the pace allows)."""
        with self.cv:
            if self._closed:
                return
            self._queue_broker_reads()
            self._pump()

    def _on_broker_rows(self, sw: _Sweep, kind: str, row: dict[str, Any] | None, err: tuple[int, str] | None,
                        last: bool) -> None:
        """A row (or the error) of a position / account reply; the figures change only when
        the reply is complete and every row of it could be read. Under the lock."""
        if err is not None:
            sw.error = sw.error or self._error_text(_BROKER_QUERIES[kind][0], err)
        elif row is not None:
            sw.rows.append(row)
        if not last:
            return
        self._inflight = None
        if sw in self._sweeps:
            self._sweeps.remove(sw)
        sw.done = True
        try:
            if sw.error:
                raise ValueError(sw.error)
            if kind == "position":
                self._take_positions(sw.rows)
                # when the reply was asked for, on our clock: what it can hold (positions_status)
                ago = time.monotonic_ns() - sw.started_ns if sw.started_ns else 0
                self._positions_asked_ns = self.clock.now_ns() - max(ago, 0)
            else:
                self._take_account(sw.rows)
        except ValueError as e:
            self._count(f"{kind}_replies_refused")
            self._bad("QUERY_ERROR" if sw.error else "BAD_REPLY", f"{e}; the last complete reply is kept"[:300])
            # nothing read yet since this logon (a front busy at logon answers "not ready"):
            # asked again at the front's pace, a few times; later, the next demand asks
            read = self._positions_verified if kind == "position" else self._account_read_ns > self._login_ns
            tries = self._broker_retries.get(kind, 0)
            if not read and tries < BROKER_RETRIES and not any(s.phase == kind for s in self._sweeps):
                self._broker_retries[kind] = tries + 1
                self._sweeps.append(_Sweep(phase=kind))
        finally:
            sw.rows = []
            self.cv.notify_all()
            self._pump()

    def _take_positions(self, rows: list[dict[str, Any]]) -> None:
        """A complete ReqQryInvestorPosition reply: per instrument of ours, long and short, each
        today's and yesterday's lots and the part frozen by working closes. SHFE / INE answer a
        today row and a history row per direction (summed); the other exchanges one row whose
        TodayPosition is the part opened today. A long row's closes are sells (ShortFrozen), a
        short row's buys (LongFrozen). Raises ValueError (nothing taken) on a row it cannot read."""
        now = self.clock.now_ns()
        book: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            sym = str(row.get("InstrumentID") or "").strip()
            ex = str(row.get("ExchangeID") or "").strip()
            if ex and ex != self.exchange_id:
                self._count("positions_other_exchange")  # another gateway's exchange
                continue
            iid = self._by_symbol.get(sym)
            if iid is None:
                self._count("position_unknown_instruments")
                if sym not in self._unknown_symbols:
                    self._unknown_symbols.add(sym)
                    self._bad("UNKNOWN_INSTRUMENT", f"ReqQryInvestorPosition: InstrumentID {sym!r} ({ex or '?'}) is "
                                                    f"not one of {self.name}'s instruments (params.symbols): not counted")
                continue
            try:
                pos, today = int(row["Position"]), int(row["TodayPosition"] or 0)
                frozen_l, frozen_s = int(row["LongFrozen"] or 0), int(row["ShortFrozen"] or 0)
            except (TypeError, ValueError, KeyError) as e:
                raise ValueError(f"ReqQryInvestorPosition: {sym}: Position/TodayPosition/Frozen unreadable: {e}") from None
            d, pd = str(row.get("PosiDirection") or ""), str(row.get("PositionDate") or "")
            if d == M.PD_NET:
                side = "long" if pos >= 0 else "short"
                pos, today = abs(pos), abs(today)
            elif d in (M.PD_LONG, M.PD_SHORT):
                side = "long" if d == M.PD_LONG else "short"
            else:
                raise ValueError(f"ReqQryInvestorPosition: {sym}: PosiDirection {d!r} is not net/long/short (1/2/3)")
            if pd not in (M.PSD_TODAY, M.PSD_HISTORY):
                raise ValueError(f"ReqQryInvestorPosition: {sym}: PositionDate {pd!r} is not today/history (1/2)")
            if pos < 0 or today < 0 or frozen_l < 0 or frozen_s < 0:
                raise ValueError(f"ReqQryInvestorPosition: {sym} {side}: negative lots (Position {pos}, "
                                 f"TodayPosition {today}, LongFrozen {frozen_l}, ShortFrozen {frozen_s})")
            frozen = frozen_s if side == "long" else frozen_l
            if frozen > pos:
                self._count("position_frozen_clamped")
                frozen = pos
            e = book.setdefault((self.account, iid), {
                "long": dict.fromkeys(("today", "yesterday", "frozen_today", "frozen_yesterday"), 0),
                "short": dict.fromkeys(("today", "yesterday", "frozen_today", "frozen_yesterday"), 0),
                "trading_day": _iso_day(str(row.get("TradingDay") or "") or self.trading_day)})
            b = e[side]
            if pd == M.PSD_HISTORY:
                b["yesterday"] += pos
                b["frozen_yesterday"] += frozen
            else:
                if today > pos:
                    raise ValueError(f"ReqQryInvestorPosition: {sym} {side}: TodayPosition {today} > Position {pos}")
                yd = pos - today
                b["today"] += today
                b["yesterday"] += yd
                # one row for both days (DCE, CZCE, CFFEX...): frozen closes counted against
                # yesterday's lots first
                b["frozen_yesterday"] += min(frozen, yd)
                b["frozen_today"] += frozen - min(frozen, yd)
        for e in book.values():
            e["net"] = (e["long"]["today"] + e["long"]["yesterday"]) - (e["short"]["today"] + e["short"]["yesterday"])
            e["read_ns"] = now
        self._broker_two_sided = {k: v for k, v in book.items()
                                  if any(v[s][b] for s in ("long", "short") for b in ("today", "yesterday"))}
        self._positions_read_ns = now
        self._positions_verified = True
        # each order's lots filled as this session had heard them when the reply completed (the
        # logon's order and trade sweep goes before its position query): what the reading holds
        self._fills_at_read = {c: max(o.view.filled_qty, o.venue_filled) for c, o in self.orders.items()
                               if not o.absent and (o.view.filled_qty or o.venue_filled or o.view.status.is_live)}
        self._count("position_replies")

    def _take_account(self, rows: list[dict[str, Any]]) -> None:
        """A complete ReqQryTradingAccount reply: Balance (dynamic equity), CurrMargin,
        Available and CurrencyID of the investor's account (the first row in its currency;
        CNY when the front leaves CurrencyID empty)."""
        if not rows:
            raise ValueError("ReqQryTradingAccount: the reply has no account")
        row = rows[0]
        vals: dict[str, Decimal] = {}
        for name, key in (("equity", "Balance"), ("margin", "CurrMargin"), ("available", "Available")):
            v = row.get(key)
            try:
                d = Decimal(repr(float(v)))
            except (TypeError, ValueError, ArithmeticError):
                raise ValueError(f"ReqQryTradingAccount: {key} {v!r} is not an amount") from None
            if not d.is_finite() or abs(d) >= _NOT_AN_AMOUNT:
                raise ValueError(f"ReqQryTradingAccount: {key} {v!r} is not an amount (the API's 'no value')")
            vals[name] = d
        now = self.clock.now_ns()
        self._account = {"equity": str(vals["equity"]), "margin": str(vals["margin"]),
                         "available": str(vals["available"]),
                         "currency": str(row.get("CurrencyID") or "").strip() or "CNY",
                         "trading_day": _iso_day(str(row.get("TradingDay") or "") or self.trading_day), "ts_ns": now}
        self._account_read_ns = now
        self._count("account_replies")

    def _sweep_done(self, sw: _Sweep) -> None:
        """A query answered in full: its orders as the front's word on each (UNKNOWN ones
        resolved), then its trades; our orders sent before it that it does not list never
        reached the front."""
        found: set[str] = set()
        for row in sw.orders:
            self._on_order(row, "query")
            o = self._by_key.get((int(row["FrontID"]), int(row["SessionID"]), M.norm_ref(row["OrderRef"])))
            if o is not None:
                found.add(o.req.client_order_id)
        for t in sw.trades:
            self._on_trade(t, "query")
        for coid, o in self.orders.items():
            if coid in found or o.at_front or o.final:
                continue
            if sw.instrument and o.symbol != sw.instrument:
                continue
            if o.sent_ns and o.sent_ns >= sw.started_ns:
                continue  # sent after the query went out: not a question it answered
            if o.trading_day and self.trading_day and o.trading_day < self.trading_day:
                continue  # of an earlier trading day: the front lists only today's
            if o.view.status in (OrderStatus.UNKNOWN, OrderStatus.SUBMITTED) and coid not in self._places:
                o.absent = True
                self._count("orders_absent")
        sw.done = True
        self._count("queries")
        self.cv.notify_all()

    # ------------------------------------------------------------------ order entry
    def connected(self, now_ns: int | None = None) -> bool:
        return self.ready

    def _local_reject(self, req: OrderRequest, why: str, reason: RejectReason = RejectReason.OTHER) -> PlaceReply:
        rep = ExecutionReport(kind=ExecReportKind.REJECTED, client_order_id=req.client_order_id, venue=self.venue.code,
                              instrument=req.instrument, status=OrderStatus.REJECTED, reason=reason,
                              text=f"not sent to CTP: {why}", decision_id=req.decision_id, leg=req.leg)
        self._count("refused_locally")
        return PlaceReply([rep], 0)

    def send(self, req: OrderRequest) -> tuple[str, Any]:
        """ReqOrderInsert; :meth:`answer` reads the answer. Raises :class:`VenueDisconnected`
        (nothing sent) when not logged on or when the API refuses the request."""
        if not self.ready:
            raise VenueDisconnected(f"{self.venue.code}: CTP session not ready ({self.state})")
        coid = req.client_order_id
        with self.cv:
            existing = self.orders.get(coid)
            if existing is not None and not existing.absent:
                # a client order id is placed once: the order that has it stands
                return coid, PlaceReply([self._status_report(existing, "duplicate client order id: existing order")])
        try:
            offset = M.check_offset(req, self.venue)
            opt, tc, vc = M.price_terms(req, self.exchange_id)
        except M.OrderNotExpressible as e:
            return coid, self._local_reject(req, str(e), e.reason)
        symbol = self.symbols.get(req.instrument)
        if symbol is None:
            return coid, self._local_reject(req, f"instrument {req.instrument} is not one of {self.name}'s")
        f = self.td.CThostFtdcInputOrderField()
        f.BrokerID = self.p.broker_id
        f.InvestorID = self.p.investor
        f.UserID = self.p.user_id
        f.InstrumentID = symbol
        f.ExchangeID = self.exchange_id
        f.Direction = M.direction(req.side)
        f.CombOffsetFlag = offset
        f.CombHedgeFlag = M.HEDGE_FLAGS[self.p.hedge_flag]
        f.OrderPriceType = opt
        f.LimitPrice = M.price_out(req.price) if opt == M.OPT_LIMIT else 0.0
        f.VolumeTotalOriginal = int(req.qty)
        f.TimeCondition = tc
        f.VolumeCondition = vc
        f.MinVolume = 1
        f.ContingentCondition = M.CC_IMMEDIATELY
        f.ForceCloseReason = M.FCC_NOT_FORCE_CLOSE
        f.IsAutoSuspend = 0
        f.UserForceClose = 0
        with self.cv:
            n = self._next_ref
            self._next_ref += 1
            ref = M.order_ref(n)
            f.OrderRef = ref
            key = (self.front_id, self.session_id, M.norm_ref(ref))
            o = _Order(req=req, view=OrderState(request=req, status=OrderStatus.SUBMITTED), key=key, ref=ref,
                       exchange_id=self.exchange_id, symbol=symbol, sent_ns=time.monotonic_ns(),
                       trading_day=self.trading_day)
            # on disk before it leaves: a restart must know every order the front may have
            self.journal.order(req, self.front_id, self.session_id, ref, self.trading_day)
            self.orders[coid] = o
            self._by_key[key] = o
            self._places[coid] = _Wait()
        t0 = time.monotonic_ns()
        ret = self.api.ReqOrderInsert(f, self._next_req())
        if ret != 0:
            with self.cv:
                self._places.pop(coid, None)
                o.absent = o.final = True
                o.view.status = OrderStatus.REJECTED
            self._count("inserts_refused")
            raise VenueDisconnected(f"{self.venue.code}: ReqOrderInsert returned {ret} "
                                    f"({REQ_RETURNS.get(ret, 'refused')})")
        self._count("orders_sent")
        return coid, t0

    def answer(self, ticket: tuple[str, Any]) -> PlaceReply:
        """The answer to :meth:`send`: the first report (for IOC / FOK / market orders, every
        report up to the order's end); ``lost`` if none came within ``ack_timeout_ms`` or the
        front went away meanwhile (the order is then UNKNOWN until a query resolves it)."""
        coid, t0 = ticket
        if isinstance(t0, PlaceReply):
            return t0
        with self.cv:
            o = self.orders[coid]
        immediate = o.req.immediate
        deadline = t0 + int(self.p.ack_timeout_ms * _MS)

        def ready() -> bool:
            w = self._places[coid]
            if w.dropped:
                return True
            if not w.reports:
                return False
            return not immediate or w.reports[-1].status.is_terminal

        with self.cv:
            self.cv.wait_for(ready, timeout=max(0.0, (deadline - time.monotonic_ns()) / 1e9))
            w = self._places.pop(coid)
            w.done = True
            reps = list(w.reports)
            if not reps and not o.view.status.is_terminal:
                o.view.status = OrderStatus.UNKNOWN
        self.last_answer_ns = latency = time.monotonic_ns() - t0
        if not reps:
            self._count("no_answer")
            return PlaceReply([], latency, lost=True)
        return PlaceReply(reps, latency)

    def place(self, req: OrderRequest) -> PlaceReply:
        return self.answer(self.send(req))

    def cancel(self, client_order_id: str) -> tuple[ExecutionReport | None, int]:
        """ReqOrderAction (delete): the CANCELED report, a CANCEL_REJECTED one, or None when we
        never sent such an order. Raises :class:`VenueDisconnected` when not logged on or
        without an answer within ``ack_timeout_ms``."""
        with self.cv:
            o = self.orders.get(client_order_id)
        if o is None:
            return None, 0
        if not self.ready:
            raise VenueDisconnected(f"{self.venue.code}: CTP session not ready ({self.state})")
        f = self.td.CThostFtdcInputOrderActionField()
        f.BrokerID = self.p.broker_id
        f.InvestorID = self.p.investor
        f.UserID = self.p.user_id
        f.ActionFlag = M.AF_DELETE
        f.InstrumentID = o.symbol
        f.ExchangeID = o.exchange_id
        f.FrontID, f.SessionID, f.OrderRef = o.key[0], o.key[1], o.ref
        if o.sys_id:
            f.OrderSysID = o.sys_id
        with self.cv:
            self._action_ref += 1
            f.OrderActionRef = self._action_ref
            w = self._cancels[client_order_id] = _Wait()
            o.cancel_pending = True
        t0 = time.monotonic_ns()
        try:
            ret = self.api.ReqOrderAction(f, self._next_req())
            if ret != 0:
                with self.cv:
                    o.cancel_pending = False
                raise VenueDisconnected(f"{self.venue.code}: ReqOrderAction returned {ret} "
                                        f"({REQ_RETURNS.get(ret, 'refused')})")
            with self.cv:
                self.cv.wait_for(lambda: w.done or w.dropped, timeout=self.p.ack_timeout_ms / 1000)
        finally:
            with self.cv:
                if self._cancels.get(client_order_id) is w:
                    del self._cancels[client_order_id]
                w.done = True
        self.last_answer_ns = latency = time.monotonic_ns() - t0
        if not w.reports:
            raise VenueDisconnected(f"{self.venue.code}: no answer to the cancel within {self.p.ack_timeout_ms:.0f} ms")
        return w.reports[0], latency

    def query(self, client_order_id: str) -> ExecutionReport | None:
        """The order as the front knows it; None when the front never had it. An order the
        private flow has spoken for is answered from it; one left UNKNOWN (or never answered)
        is asked about (ReqQryOrder then ReqQryTrade for its instrument, up to
        ``query_timeout_ms``). Without an answer: our last view, status UNKNOWN kept."""
        with self.cv:
            o = self.orders.get(client_order_id)
            if o is None:
                return None
            if o.absent:
                return None
            if not self.ready:
                return self._status_report(o, f"CTP session not ready ({self.state}): last known state")
            asked = o.view.status is OrderStatus.UNKNOWN or (o.view.status is OrderStatus.SUBMITTED and not o.at_front)
            if not asked:
                return self._status_report(o)
            sw = _Sweep(instrument=o.symbol, exchange_id=o.exchange_id)
            self._sweeps.append(sw)
            self._querying.add(client_order_id)
            deadline = time.monotonic() + self.p.query_timeout_ms / 1000
            try:
                while not sw.done and not self._closed:
                    self._pump()
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.cv.wait(timeout=min(left, 0.05))
            finally:
                self._querying.discard(client_order_id)
            if not sw.done or sw.error:
                if sw in self._sweeps and (self._inflight is None or self._inflight[1] is not sw):
                    self._sweeps.remove(sw)  # not asked yet: nobody waits for it any more
                self._count("query_timeouts" if not sw.done else "query_failed")
                return self._status_report(o, (sw.error or "no answer to the query") + ": last known state")
            if o.absent:
                return None
            return self._status_report(o, "the front's word")

    def _status_report(self, o: _Order, text: str = "") -> ExecutionReport:
        st = o.view.status
        filled = max(o.view.filled_qty, o.venue_filled)
        return self._report(o, ExecReportKind.STATUS, st, filled=filled, text=text)

    def executions(self, client_order_id: str) -> list[ExecutionReport]:
        """Every FILL of the order this session has seen (its trades, from the flow or the
        trades query): what the gateway core records when a status says more filled than
        the fills it heard of (after a restart, a lost answer)."""
        with self.cv:
            o = self.orders.get(client_order_id)
            return list(o.trades) if o is not None else []

    def recovered_orders(self) -> list[tuple[OrderRequest, ExecutionReport]]:
        """After a gateway restart: every order of the journal the front still has, with its
        STATUS, from the logon's query (waited for up to ``query_timeout_ms``); orders the
        front never had are left out. From then on their reports are pushed as any order's."""
        deadline = time.monotonic() + self.p.query_timeout_ms / 1000
        out = []
        with self.cv:
            def swept() -> bool:
                return self.ready and not any(s.login for s in self._sweeps) and self._inflight is None
            while not swept() and not self._closed:
                self._pump()
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cv.wait(timeout=min(left, 0.05))
            complete = swept()
            for coid, o in self.orders.items():
                if not o.restored:
                    continue
                o.restored = False
                if o.absent or (complete and not o.at_front):
                    continue  # the front never had it
                # without the query's answer (not logged on in time) the order is handed back
                # UNKNOWN; the next logon's query resolves it (pushed)
                out.append((o.req, self._status_report(o, "recovered from the front after a restart" if complete
                                                       else "not yet asked (CTP session not ready): outcome unknown")))
        return out

    # ------------------------------------------------------------------ views
    def open_orders(self) -> list[ExecutionReport]:
        with self.cv:
            return [self._status_report(o) for o in self.orders.values() if o.view.status.is_live and not o.absent]

    def positions(self) -> dict[str, dict[str, int]]:
        """Net lots per account and instrument (BUY +): the broker's, from the last complete
        ReqQryInvestorPosition reply (``positions_source`` says whether one came since this
        logon; ``status()["broker_figures"]`` how old it is), a refresh queued. Before any
        reply: the fills this session reported."""
        self.refresh_broker_figures()
        with self.cv:
            if self._broker_two_sided is not None:
                out2: dict[str, dict[str, int]] = {}
                for (acc, iid), e in self._broker_two_sided.items():
                    if e["net"]:
                        out2.setdefault(acc, {})[iid] = e["net"]
                return out2
        return self.session_positions()

    def session_positions(self) -> dict[str, dict[str, int]]:
        """Net filled lots per account and instrument from the fills this session reported."""
        out: dict[str, dict[str, int]] = {}
        with self.cv:
            for o in self.orders.values():
                if o.view.filled_qty:
                    acc = out.setdefault(o.req.account, {})
                    acc[o.req.instrument] = acc.get(o.req.instrument, 0) + o.view.filled_qty * o.req.side.sign
        return {a: {i: q for i, q in p.items() if q} for a, p in out.items() if any(p.values())}

    def positions_status(self) -> dict[str, Any]:
        """How fresh the positions are (the same shape as the FIX adapter's): their source and
        when the last complete reply was asked for (``as_of_ns``, our clock): fills after it
        may be missing from it."""
        with self.cv:
            now = self.clock.now_ns()
            return {"source": self.positions_source, "as_of_ns": self._positions_asked_ns or None,
                    "age_ms": (now - self._positions_asked_ns) / 1e6 if self._positions_asked_ns else None}

    def refresh_positions(self, *, force: bool = False) -> bool:
        """Ask the front for the positions again (at its pace); the FIX adapter's name for it."""
        self.refresh_broker_figures()
        return True

    def two_sided_positions(self) -> dict[str, dict[str, Any]]:
        """``{"ACCOUNT/INSTRUMENT": {long: {today, yesterday, frozen_today, frozen_yesterday},
        short: {...}, net, trading_day, read_ns}}`` from the last complete position reply (the
        simulated venue's shape; ``read_ns``: when the reply completed), a refresh queued;
        ``{}`` when the broker holds nothing; RuntimeError before a reply since this logon (or
        while disconnected), never an empty answer that would read as flat."""
        self.refresh_broker_figures()
        with self.cv:
            if not self._positions_verified:
                # "nothing" would be read as flat: closes of yesterday's lots would go out as opens
                raise RuntimeError(f"{self.name}: the broker's positions have not been read since this logon "
                                   f"({'connected' if self.ready else 'disconnected'}); asked again")
            if not self._broker_two_sided:
                return {}
            return {f"{a}/{i}": {"long": dict(e["long"]), "short": dict(e["short"]), "net": e["net"],
                                 "trading_day": e["trading_day"], "read_ns": e["read_ns"]}
                    for (a, i), e in sorted(self._broker_two_sided.items())}

    def two_sided_reading(self) -> dict[str, Any]:
        """:meth:`two_sided_positions` with ``order_fills``, each order's lots filled as this
        session had heard them when that reply completed, and the one account it speaks for
        (the gateway's ``two_sided_reading``). Raises as :meth:`two_sided_positions` does."""
        with self.cv:  # re-entrant: the positions and the fills of one reply
            return {"positions": self.two_sided_positions(), "order_fills": dict(self._fills_at_read),
                    "accounts": [self.account]}

    def account_reading(self) -> dict[str, dict[str, Any]]:
        """``{account: {equity, margin, available, currency, trading_day, ts_ns}}`` from the last
        complete ReqQryTradingAccount reply (Balance, CurrMargin, Available, CurrencyID;
        ``ts_ns`` when it completed), a refresh queued; ``{}`` before any reply."""
        self.refresh_broker_figures()
        with self.cv:
            return {self.account: dict(self._account)} if self._account is not None else {}

    def drop_copy(self, since_ns: int = 0) -> list[dict[str, Any]]:
        with self.cv:
            return [d for d in self.drop_copy_log if d["ts_ns"] >= since_ns]

    def poll(self, now_ns: int | None = None) -> list[ExecutionReport]:
        """Reports that arrived with nobody waiting (fills of resting orders, orders resolved
        by a query); the next query request goes out when the front's pace allows."""
        with self.cv:
            self._pump()
            out, self._pushed = self._pushed, []
        return out

    def next_due_ns(self) -> int | None:
        return self.clock.now_ns() if self._pushed else None

    def set_waker(self, fn: Any) -> None:
        """``fn()`` is called (from the API's thread) when a report is pushed with nothing queued."""
        self._waker = fn

    def _wake(self) -> None:
        fn = self._waker
        if fn is not None:
            try:
                fn()
            except Exception:  # noqa: BLE001
                self._count("wake_errors")

    def drain_bad_input(self) -> list[dict[str, Any]]:
        if not self.bad_input:
            return []
        with self.cv:
            out, self.bad_input = self.bad_input, []
        return out

    def status(self) -> dict[str, Any]:
        """The session as ``xmc status`` shows it (the gateway's ``status()["session"]``). No credential."""
        with self.cv:
            unknown = sum(1 for o in self.orders.values() if o.view.status is OrderStatus.UNKNOWN and not o.absent)
            return {"kind": "ctp", "state": self.state, "ready": self.ready, "fronts": list(self.p.fronts),
                    "broker_id": self.p.broker_id, "user_id": self.p.user_id, "investor_id": self.p.investor,
                    "app_id": self.p.app_id or "", "front_id": self.front_id, "session_id": self.session_id,
                    "trading_day": self.trading_day, "next_order_ref": self._next_ref, "logins": self.logins,
                    "last_error": self.last_error, "last_disconnect": self.last_disconnect,
                    "orders": len(self.orders), "unknown_orders": unknown,
                    "held_trades": sum(len(v) for v in self._held_trades.values()),
                    "queries_waiting": len(self._sweeps), "journal": str(self.journal.path),
                    "last_answer_us": self.last_answer_ns / 1000,
                    "broker_figures": self._freshness(),
                    "counters": dict(self.counters), "bad_input": list(self.bad_input_recent)}

    def _freshness(self) -> dict[str, Any]:
        now = self.clock.now_ns()

        def age(ns: int) -> float | None:
            return round((now - ns) / _MS, 1) if ns else None
        return {"account": self.account, "positions_source": self.positions_source,
                "positions_read_ns": self._positions_read_ns, "positions_age_ms": age(self._positions_read_ns),
                "positions": len(self._broker_two_sided or {}),
                "account_read_ns": self._account_read_ns, "account_age_ms": age(self._account_read_ns)}

    # ------------------------------------------------------------------ clock and market data
    def clock_probe(self) -> tuple[int, int, int, int]:
        """CTP has no round trip to time: an impossible one, which the calibrator refuses and
        counts (quotes' own stamps calibrate a feed)."""
        now = self.clock.now_ns()
        return now, now, now, now - 1

    def snapshot(self, instrument: str) -> dict[str, Any] | None:
        return None

    def on_market(self, quote: Any) -> tuple[list[ExecutionReport], list[dict[str, Any]]]:
        """A feed quote: with ``market_data: feed`` published as this venue's market (CTP's
        market-data API is not used yet); a real front takes no quotes from us."""
        if self.p.market_data != "feed" or quote.instrument not in self.instruments:
            return [], []
        seq = self._md_seq[quote.instrument] = self._md_seq.get(quote.instrument, 0) + 1
        bids = [(quote.bid, quote.bid_size)] if quote.bid is not None else []
        asks = [(quote.ask, quote.ask_size)] if quote.ask is not None else []
        return [], [wire_message("quote", quote.instrument, seq, quote.venue_ts_ns, bids, asks, quote.last,
                                 quote.settlement)]

    def inject(self, fault: dict[str, Any]) -> None:
        raise ValueError("inject: a CTP front takes no faults")


def build_ctp(params: CtpVenueParams, venue: Venue, instruments: Sequence[Instrument], clock: Clock, *,
              gateway: str = "", restart: bool = False) -> CtpAdapter:
    """The ``ctp`` adapter of gateway ``gateway`` (registered in :mod:`xmc_actors.venues`)."""
    return CtpAdapter(params, venue, instruments, clock, gateway=gateway, restart=restart)


__all__ = ["CtpAdapter", "build_ctp", "default_state_root"]
