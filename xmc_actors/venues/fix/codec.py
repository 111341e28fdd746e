"""FIX 4.4 <-> model mapping, both ways: orders, execution reports, cancel rejects.

Used by the adapter (our orders out, the venue's reports in) and by the loopback exchange
(orders in, reports out), so the two sides read one table. Prices travel as decimal strings
(never floats), scaled by the instrument's ``price_factor`` and checked against its tick grid
on the way in; quantities are lots.
"""
from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

import quickfix as fix

from ...model.market import Instrument, Side
from ...model.orders import (
    ExecReportKind, ExecutionReport, Fill, OrderRequest, OrderStatus, OrderType, RejectReason, TimeInForce,
    split_client_order_id,
)
from ..sim import wire_message

# --------------------------------------------------------------------------- tags
ACCOUNT, AVG_PX, CL_ORD_ID, CUM_QTY, EXEC_ID, LAST_PX, LAST_QTY, MSG_TYPE = 1, 6, 11, 14, 17, 31, 32, 35
ORDER_ID, ORDER_QTY, ORD_STATUS, ORD_TYPE, ORIG_CL_ORD_ID, PRICE, SENDING_TIME = 37, 38, 39, 40, 41, 44, 52
SIDE, SYMBOL, TEXT, TIF, TRANSACT_TIME, CXL_REJ_REASON, ORD_REJ_REASON = 54, 55, 58, 59, 60, 102, 103
EXEC_TYPE, LEAVES_QTY, SECURITY_EXCHANGE, CXL_REJ_RESPONSE_TO, DK_REASON = 150, 151, 207, 434, 127
POSS_DUP, REF_SEQ_NUM, REF_TAG_ID, REF_MSG_TYPE, SESSION_REJECT_REASON = 43, 45, 371, 372, 373
BUSINESS_REJECT_REASON, BUSINESS_REJECT_REF_ID = 380, 379

_SIDE = {Side.BUY: "1", Side.SELL: "2"}
_SIDE_BACK = {v: k for k, v in _SIDE.items()}
_TIF = {TimeInForce.DAY: "0", TimeInForce.GTC: "1", TimeInForce.IOC: "3", TimeInForce.FOK: "4"}
_TIF_BACK = {v: k for k, v in _TIF.items()}

#: our order status -> OrdStatus (39)
ORD_STATUS_OUT = {
    OrderStatus.NEW: "A", OrderStatus.SUBMITTED: "A", OrderStatus.UNKNOWN: "A", OrderStatus.ACCEPTED: "0",
    OrderStatus.PARTIALLY_FILLED: "1", OrderStatus.FILLED: "2", OrderStatus.PENDING_CANCEL: "6",
    OrderStatus.CANCELED: "4", OrderStatus.REJECTED: "8", OrderStatus.EXPIRED: "C",
}
#: OrdStatus (39) -> our order status (DONE_FOR_DAY: no more fills today, as EXPIRED)
ORD_STATUS_IN = {
    "0": OrderStatus.ACCEPTED, "1": OrderStatus.PARTIALLY_FILLED, "2": OrderStatus.FILLED,
    "3": OrderStatus.EXPIRED, "4": OrderStatus.CANCELED, "6": OrderStatus.PENDING_CANCEL,
    "8": OrderStatus.REJECTED, "9": OrderStatus.ACCEPTED, "A": OrderStatus.SUBMITTED,
    "C": OrderStatus.EXPIRED, "E": OrderStatus.ACCEPTED,
}
#: our report kind -> ExecType (150); CANCEL_REJECTED travels as OrderCancelReject (9)
EXEC_TYPE_OUT = {
    ExecReportKind.ACK: "0", ExecReportKind.FILL: "F", ExecReportKind.CANCELED: "4",
    ExecReportKind.REJECTED: "8", ExecReportKind.EXPIRED: "C", ExecReportKind.STATUS: "I",
}
#: ExecType (150) -> our report kind (DONE_FOR_DAY as EXPIRED; RESTATED as STATUS)
EXEC_TYPE_IN = {
    "0": ExecReportKind.ACK, "F": ExecReportKind.FILL, "4": ExecReportKind.CANCELED,
    "8": ExecReportKind.REJECTED, "C": ExecReportKind.EXPIRED, "3": ExecReportKind.EXPIRED,
    "I": ExecReportKind.STATUS, "D": ExecReportKind.STATUS,
}
#: our reject reasons that FIX 4.4 has an OrdRejReason (103) for; the others go as 99 (Other)
#: with the reason's name leading Text (58), "HALTED: ...", which the adapter reads back
ORD_REJ_OUT = {
    RejectReason.UNKNOWN_INSTRUMENT: "1", RejectReason.MARKET_CLOSED: "2", RejectReason.QTY_ABOVE_MAX: "3",
    RejectReason.UNKNOWN_ORDER: "5", RejectReason.DUPLICATE_ORDER: "6", RejectReason.BAD_QUANTITY: "13",
}
ORD_REJ_IN = {v: k for k, v in ORD_REJ_OUT.items()} | {"4": RejectReason.MARKET_CLOSED, "8": RejectReason.OTHER,
                                                        "15": RejectReason.OTHER, "0": RejectReason.OTHER}


class FixDecodeError(ValueError):
    """A message we cannot map: ``tag`` names the field at fault (0: none in particular)."""

    def __init__(self, msg: str, tag: int = 0) -> None:
        super().__init__(msg)
        self.tag = tag


# --------------------------------------------------------------------------- fields
def get(msg: Any, tag: int) -> str | None:
    """The value of ``tag`` in a message body, or None."""
    return msg.getField(tag) if msg.isSetField(tag) else None


def get_header(msg: Any, tag: int) -> str | None:
    h = msg.getHeader()
    return h.getField(tag) if h.isSetField(tag) else None


def need(msg: Any, tag: int) -> str:
    v = get(msg, tag)
    if v is None or v == "":
        raise FixDecodeError(f"required tag {tag} missing", tag)
    return v


def msg_type(msg: Any) -> str:
    return get_header(msg, MSG_TYPE) or ""


def new_message(mtype: str) -> Any:
    m = fix.Message()
    m.getHeader().setField(8, "FIX.4.4")
    m.getHeader().setField(MSG_TYPE, mtype)
    return m


def utc_timestamp(ns: int) -> str:
    """FIX UTCTimestamp with microseconds: ``YYYYMMDD-HH:MM:SS.ffffff``."""
    s, rem = divmod(ns, 1_000_000_000)
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(s)) + f".{rem // 1000:06d}"


def parse_utc_timestamp(v: str) -> int:
    """Nanoseconds since the epoch of a FIX UTCTimestamp (seconds, milli, micro or nano)."""
    try:
        main, _, frac = v.partition(".")
        t = calendar.timegm(time.strptime(main, "%Y%m%d-%H:%M:%S"))
    except ValueError as e:
        raise FixDecodeError(f"bad UTCTimestamp {v!r}") from e
    if frac and not frac.isdigit():
        raise FixDecodeError(f"bad UTCTimestamp {v!r}")
    return t * 1_000_000_000 + int((frac + "000000000")[:9] or 0)


def _dec(v: str, tag: int) -> Decimal:
    try:
        d = Decimal(v)
    except InvalidOperation as e:
        raise FixDecodeError(f"tag {tag}: {v!r} is not a number", tag) from e
    if not d.is_finite():
        raise FixDecodeError(f"tag {tag}: {v!r} is not finite", tag)
    return d


def _qty(v: str, tag: int) -> int:
    d = _dec(v, tag)
    if d != d.to_integral_value() or d < 0:
        raise FixDecodeError(f"tag {tag}: {v!r} is not a whole number of lots", tag)
    return int(d)


def _price_str(p: Decimal) -> str:
    s = format(p.normalize(), "f")
    return s


# --------------------------------------------------------------------------- instrument map
@dataclass(frozen=True)
class SymbolMap:
    """Our instruments and their FIX names (Symbol 55) and price factors."""

    venue: str
    instruments: Mapping[str, Instrument]
    symbols: Mapping[str, str]
    factors: Mapping[str, Decimal]
    security_exchange: str

    @classmethod
    def build(cls, venue: str, instruments: Any, symbols: Mapping[str, str] | None = None,
              factors: Mapping[str, Decimal] | None = None, security_exchange: str | None = None) -> "SymbolMap":
        insts = {i.id: i for i in instruments}
        sym = {iid: (symbols or {}).get(iid, i.symbol) for iid, i in insts.items()}
        return cls(venue, insts, sym, {iid: Decimal((factors or {}).get(iid, 1)) for iid in insts},
                   security_exchange or venue)

    def symbol(self, instrument: str) -> str:
        try:
            return self.symbols[instrument]
        except KeyError:
            raise FixDecodeError(f"instrument {instrument!r} is not mapped on {self.venue}") from None

    def instrument(self, symbol: str) -> str:
        for iid, s in self.symbols.items():
            if s == symbol:
                return iid
        return f"{self.venue}.{symbol}"  # unknown: the venue's rules (or ours) refuse it by name

    def price_out(self, instrument: str, p: Decimal) -> str:
        return _price_str(p * self.factors.get(instrument, Decimal(1)))

    def price_in(self, instrument: str, v: str, tag: int) -> Decimal:
        d = _dec(v, tag) / self.factors.get(instrument, Decimal(1))
        inst = self.instruments.get(instrument)
        if inst is not None and d != 0:
            # on the grid a venue price is exact; quantize so 70000.50 and 70000.5 compare equal
            if inst.on_grid(d):
                return d.quantize(inst.tick_size)
        return d


# --------------------------------------------------------------------------- adapter side
def new_order_single(req: OrderRequest, smap: SymbolMap, account: str = "", now_ns: int | None = None) -> Any:
    m = new_message("D")
    m.setField(CL_ORD_ID, req.client_order_id)
    if account or req.account:
        m.setField(ACCOUNT, account or req.account)
    m.setField(SYMBOL, smap.symbol(req.instrument))
    m.setField(SECURITY_EXCHANGE, smap.security_exchange)
    m.setField(SIDE, _SIDE[req.side])
    m.setField(TRANSACT_TIME, utc_timestamp(now_ns if now_ns is not None else time.time_ns()))
    m.setField(ORDER_QTY, str(req.qty))
    if req.order_type is OrderType.MARKET:
        m.setField(ORD_TYPE, "1")
        tif = req.tif if req.tif in (TimeInForce.IOC, TimeInForce.FOK) else TimeInForce.IOC
    else:
        m.setField(ORD_TYPE, "2")
        assert req.price is not None
        m.setField(PRICE, smap.price_out(req.instrument, req.price))
        tif = {OrderType.IOC: TimeInForce.IOC, OrderType.FOK: TimeInForce.FOK}.get(req.order_type, req.tif)
    m.setField(TIF, _TIF[tif])
    return m


def cancel_request(req: OrderRequest, cancel_id: str, smap: SymbolMap, account: str = "",
                   now_ns: int | None = None) -> Any:
    m = new_message("F")
    m.setField(ORIG_CL_ORD_ID, req.client_order_id)
    m.setField(CL_ORD_ID, cancel_id)
    if account or req.account:
        m.setField(ACCOUNT, account or req.account)
    m.setField(SYMBOL, smap.symbol(req.instrument))
    m.setField(SECURITY_EXCHANGE, smap.security_exchange)
    m.setField(SIDE, _SIDE[req.side])
    m.setField(TRANSACT_TIME, utc_timestamp(now_ns if now_ns is not None else time.time_ns()))
    m.setField(ORDER_QTY, str(req.qty))
    return m


def status_request(client_order_id: str, req: OrderRequest | None, smap: SymbolMap) -> Any:
    """OrderStatusRequest (H). Without the request (an order we never recorded) Symbol and Side
    are still required by FIX 4.4: the first instrument and BUY stand in; venues look the
    order up by ClOrdID."""
    m = new_message("H")
    m.setField(CL_ORD_ID, client_order_id)
    inst = req.instrument if req is not None else next(iter(smap.symbols))
    m.setField(SYMBOL, smap.symbol(inst))
    m.setField(SECURITY_EXCHANGE, smap.security_exchange)
    m.setField(SIDE, _SIDE[req.side if req is not None else Side.BUY])
    return m


def reject_reason_in(code: str | None, text: str) -> RejectReason:
    """Our reject reason from OrdRejReason/CxlRejReason and Text: a reason name leading the
    Text (``HALTED: ...``) wins, then the code's meaning, then OTHER."""
    head = text.split(":", 1)[0].strip()
    if head in RejectReason.__members__:
        return RejectReason(head)
    if code is not None and code in ORD_REJ_IN:
        return ORD_REJ_IN[code]
    return RejectReason.OTHER


@dataclass
class ParsedReport:
    """An ExecutionReport (8) or OrderCancelReject (9) as the adapter reads it."""

    report: ExecutionReport
    exec_id: str
    cl_ord_id: str            # 11 as sent on the wire (a cancel's own id for cancel answers)
    orig_cl_ord_id: str       # the order it is about (41 for cancel answers, else 11)
    poss_dup: bool
    unknown_order: bool = False  # a status answer or cancel reject saying the venue has no such order


def parse_execution_report(msg: Any, smap: SymbolMap, cancel_ids: Mapping[str, str] | None = None) -> ParsedReport:
    """Map an ExecutionReport (8) to our :class:`ExecutionReport`. ``cancel_ids``: our cancel
    ClOrdIDs -> the order each cancels (for venues that omit OrigClOrdID)."""
    cl = need(msg, CL_ORD_ID)
    orig = get(msg, ORIG_CL_ORD_ID) or (cancel_ids or {}).get(cl) or cl
    et = need(msg, EXEC_TYPE)
    kind = EXEC_TYPE_IN.get(et)
    if kind is None:
        raise FixDecodeError(f"ExecType {et!r} is not handled", EXEC_TYPE)
    os_ = need(msg, ORD_STATUS)
    status = ORD_STATUS_IN.get(os_)
    if status is None:
        raise FixDecodeError(f"OrdStatus {os_!r} is not handled", ORD_STATUS)
    instrument = smap.instrument(need(msg, SYMBOL))
    side = _SIDE_BACK.get(need(msg, SIDE))
    if side is None:
        raise FixDecodeError("bad Side", SIDE)
    exec_id = need(msg, EXEC_ID)
    cum = _qty(need(msg, CUM_QTY), CUM_QTY)
    leaves = _qty(need(msg, LEAVES_QTY), LEAVES_QTY)
    avg_s = get(msg, AVG_PX)
    avg = smap.price_in(instrument, avg_s, AVG_PX) if avg_s is not None and cum > 0 else None
    text = get(msg, TEXT) or ""
    ts_s = get(msg, TRANSACT_TIME) or get_header(msg, SENDING_TIME)
    venue_ts = parse_utc_timestamp(ts_s) if ts_s else 0
    order_id = get(msg, ORDER_ID) or ""
    fill = None
    reason = None
    unknown = False
    if kind is ExecReportKind.FILL:
        lq = _qty(need(msg, LAST_QTY), LAST_QTY)
        lp = smap.price_in(instrument, need(msg, LAST_PX), LAST_PX)
        if lq <= 0 or lp <= 0:
            raise FixDecodeError("a trade needs LastQty > 0 and LastPx > 0", LAST_QTY)
        fill = Fill(trade_id=exec_id, client_order_id=orig, venue_order_id=order_id, instrument=instrument,
                    side=side, qty=lq, price=lp, ts_ns=venue_ts)
    elif kind is ExecReportKind.REJECTED or (kind is ExecReportKind.STATUS and status is OrderStatus.REJECTED):
        code = get(msg, ORD_REJ_REASON)
        reason = reject_reason_in(code, text)
        unknown = kind is ExecReportKind.STATUS and (code == "5" or reason is RejectReason.UNKNOWN_ORDER)
    rep = ExecutionReport(kind=kind, client_order_id=orig, venue_order_id=order_id, venue=smap.venue,
                          instrument=instrument, status=status, filled_qty=cum, leaves_qty=leaves, avg_price=avg,
                          fill=fill, reason=reason, text=text, venue_ts_ns=venue_ts)
    return ParsedReport(rep, exec_id, cl, orig, get_header(msg, POSS_DUP) == "Y", unknown)


def parse_cancel_reject(msg: Any, smap: SymbolMap, instrument: str) -> ParsedReport:
    """OrderCancelReject (9) as a CANCEL_REJECTED report (``instrument``: the order's, which 9 does not carry)."""
    cl = need(msg, CL_ORD_ID)
    orig = need(msg, ORIG_CL_ORD_ID)
    code = get(msg, CXL_REJ_REASON)
    text = get(msg, TEXT) or ""
    head = text.split(":", 1)[0].strip()
    if head in RejectReason.__members__:
        reason = RejectReason(head)
    else:
        reason = {"0": RejectReason.TOO_LATE_TO_CANCEL, "1": RejectReason.UNKNOWN_ORDER,
                  "6": RejectReason.DUPLICATE_ORDER}.get(code or "", RejectReason.OTHER)
    status = ORD_STATUS_IN.get(need(msg, ORD_STATUS), OrderStatus.UNKNOWN)
    ts_s = get(msg, TRANSACT_TIME) or get_header(msg, SENDING_TIME)
    rep = ExecutionReport(kind=ExecReportKind.CANCEL_REJECTED, client_order_id=orig,
                          venue_order_id="" if get(msg, ORDER_ID) in (None, "NONE") else get(msg, ORDER_ID) or "",
                          venue=smap.venue, instrument=instrument, status=status, reason=reason, text=text,
                          venue_ts_ns=parse_utc_timestamp(ts_s) if ts_s else 0)
    return ParsedReport(rep, "", cl, orig, get_header(msg, POSS_DUP) == "Y", reason is RejectReason.UNKNOWN_ORDER)


# --------------------------------------------------------------------------- exchange side
def parse_new_order(msg: Any, smap: SymbolMap) -> OrderRequest:
    """NewOrderSingle (D) -> OrderRequest, as the loopback exchange reads it."""
    cl = need(msg, CL_ORD_ID)
    instrument = smap.instrument(need(msg, SYMBOL))
    side = _SIDE_BACK.get(need(msg, SIDE))
    if side is None:
        raise FixDecodeError("Side must be 1 (buy) or 2 (sell)", SIDE)
    qty = _qty(need(msg, ORDER_QTY), ORDER_QTY)
    if qty <= 0:
        raise FixDecodeError("OrderQty must be > 0", ORDER_QTY)
    ot = need(msg, ORD_TYPE)
    tif = _TIF_BACK.get(get(msg, TIF) or "0")
    if tif is None:
        raise FixDecodeError(f"TimeInForce {get(msg, TIF)!r} is not supported", TIF)
    price = None
    if ot == "1":
        order_type = OrderType.MARKET
    elif ot == "2":
        order_type = {TimeInForce.IOC: OrderType.IOC, TimeInForce.FOK: OrderType.FOK}.get(tif, OrderType.LIMIT)
        price = smap.price_in(instrument, need(msg, PRICE), PRICE)
        if price <= 0:
            raise FixDecodeError("Price must be > 0", PRICE)
    else:
        raise FixDecodeError(f"OrdType {ot!r} is not supported", ORD_TYPE)
    decision, leg, attempt = split_client_order_id(cl)
    return OrderRequest(client_order_id=cl, decision_id=decision, leg=leg,
                        attempt=int(attempt) if attempt.isdigit() else 0, account=get(msg, ACCOUNT) or "",
                        instrument=instrument, side=side, qty=qty, order_type=order_type, price=price, tif=tif)


def execution_report(rep: ExecutionReport, req: OrderRequest, smap: SymbolMap, exec_id: str, *,
                     cl_ord_id: str | None = None, orig_cl_ord_id: str | None = None,
                     unknown_order: bool = False) -> Any:
    """Our report -> ExecutionReport (8), as the loopback exchange sends it."""
    m = new_message("8")
    m.setField(ORDER_ID, rep.venue_order_id or "NONE")
    m.setField(EXEC_ID, exec_id)
    m.setField(CL_ORD_ID, cl_ord_id or rep.client_order_id)
    if orig_cl_ord_id:
        m.setField(ORIG_CL_ORD_ID, orig_cl_ord_id)
    if req.account:
        m.setField(ACCOUNT, req.account)
    m.setField(EXEC_TYPE, EXEC_TYPE_OUT[rep.kind])
    m.setField(ORD_STATUS, "8" if unknown_order else ORD_STATUS_OUT[rep.status])
    m.setField(SYMBOL, smap.symbols.get(req.instrument, req.instrument.split(".", 1)[-1]))
    m.setField(SECURITY_EXCHANGE, smap.security_exchange)
    m.setField(SIDE, _SIDE[req.side])
    m.setField(ORDER_QTY, str(req.qty))
    if req.price is not None:
        m.setField(PRICE, smap.price_out(req.instrument, req.price))
    m.setField(LEAVES_QTY, str(rep.leaves_qty))
    m.setField(CUM_QTY, str(rep.filled_qty))
    m.setField(AVG_PX, smap.price_out(req.instrument, rep.avg_price) if rep.avg_price is not None else "0")
    if rep.fill is not None:
        m.setField(LAST_QTY, str(rep.fill.qty))
        m.setField(LAST_PX, smap.price_out(req.instrument, rep.fill.price))
    if unknown_order:
        m.setField(ORD_REJ_REASON, "5")
    elif rep.reason is not None and rep.kind is ExecReportKind.REJECTED:
        m.setField(ORD_REJ_REASON, ORD_REJ_OUT.get(rep.reason, "99"))
    text = f"{rep.reason.value}: {rep.text}" if rep.reason is not None else rep.text
    if unknown_order:
        text = "UNKNOWN_ORDER: the venue has no such order"
    if text:
        m.setField(TEXT, text)
    m.setField(TRANSACT_TIME, utc_timestamp(rep.venue_ts_ns or time.time_ns()))
    return m


def cancel_reject(cl_ord_id: str, orig_cl_ord_id: str, rep: ExecutionReport | None, now_ns: int) -> Any:
    """OrderCancelReject (9); ``rep`` None: the venue has no such order."""
    m = new_message("9")
    m.setField(ORDER_ID, (rep.venue_order_id if rep is not None else "") or "NONE")
    m.setField(CL_ORD_ID, cl_ord_id)
    m.setField(ORIG_CL_ORD_ID, orig_cl_ord_id)
    m.setField(ORD_STATUS, ORD_STATUS_OUT[rep.status] if rep is not None else "8")
    m.setField(CXL_REJ_RESPONSE_TO, "1")
    if rep is None:
        m.setField(CXL_REJ_REASON, "1")
        m.setField(TEXT, "UNKNOWN_ORDER: the venue has no such order")
    else:
        code = {RejectReason.TOO_LATE_TO_CANCEL: "0", RejectReason.UNKNOWN_ORDER: "1"}.get(rep.reason or RejectReason.OTHER, "99")
        m.setField(CXL_REJ_REASON, code)
        m.setField(TEXT, f"{(rep.reason or RejectReason.OTHER).value}: {rep.text}")
    m.setField(TRANSACT_TIME, utc_timestamp(now_ns))
    return m


# --------------------------------------------------------------------------- market data (V, W, X, Y)
MD_REQ_ID, SUB_REQ_TYPE, MARKET_DEPTH, MD_UPDATE_TYPE, MD_REQ_REJ_REASON = 262, 263, 264, 265, 281
NO_MD_ENTRY_TYPES, NO_RELATED_SYM, NO_MD_ENTRIES = 267, 146, 268
MD_ENTRY_TYPE, MD_ENTRY_PX, MD_ENTRY_SIZE, MD_ENTRY_DATE, MD_ENTRY_TIME = 269, 270, 271, 272, 273
MD_UPDATE_ACTION, MD_ENTRY_POSITION_NO = 279, 290
MD_BID, MD_OFFER, MD_TRADE, MD_SETTLE = "0", "1", "2", "6"
MD_NEW, MD_CHANGE, MD_DELETE = "0", "1", "2"
#: SubscriptionRequestType (263)
MD_SNAPSHOT, MD_SUBSCRIBE, MD_UNSUBSCRIBE = "0", "1", "2"


@dataclass(frozen=True)
class MdEntry:
    """One market-data entry of a W (``action`` "") or an X (New/Change/Delete): a price level
    (``position`` 1 = best) of the bids (``type`` "0") or offers ("1"), the last trade ("2") or
    the settlement price ("6"), with the venue's time of it when the venue gave one."""

    instrument: str
    type: str
    action: str = ""
    price: Decimal | None = None
    size: int = 0
    position: int = 0
    ts_ns: int | None = None


def _md_time(ns: int) -> tuple[str, str]:
    s, rem = divmod(ns, 1_000_000_000)
    t = time.gmtime(s)
    return time.strftime("%Y%m%d", t), time.strftime("%H:%M:%S", t) + f".{rem // 1000:06d}"


def _md_ts(date: str | None, tm: str | None) -> int | None:
    if not date or not tm:
        return None
    return parse_utc_timestamp(f"{date}-{tm}")


def md_request(req_id: str, symbols: list[str], kind: str = MD_SUBSCRIBE, depth: int = 5) -> Any:
    """MarketDataRequest (V): bids, offers, trades and settlement of ``symbols``; ``kind``
    snapshot (0), subscribe to snapshot and incremental updates (1) or unsubscribe (2)."""
    m = new_message("V")
    m.setField(MD_REQ_ID, req_id)
    m.setField(SUB_REQ_TYPE, kind)
    m.setField(MARKET_DEPTH, str(depth))
    if kind == MD_SUBSCRIBE:
        m.setField(MD_UPDATE_TYPE, "1")  # incremental refresh
    for t in (MD_BID, MD_OFFER, MD_TRADE, MD_SETTLE):
        g = fix.Group(NO_MD_ENTRY_TYPES, MD_ENTRY_TYPE)
        g.setField(MD_ENTRY_TYPE, t)
        m.addGroup(g)
    for s in symbols:
        g = fix.Group(NO_RELATED_SYM, SYMBOL)
        g.setField(SYMBOL, s)
        m.addGroup(g)
    return m


class RawFields:
    """A message's fields in the order they came on the wire, for its repeating groups.

    Groups are read here, from the text, rather than with the engine's ``getGroup``: that
    call's C++ exception on a malformed group is not turned into a Python one by the wheel and
    aborts the process; and a message the engine parsed without a dictionary has no group
    structure at all. ``raw`` must keep the wire order (``PreserveMessageFieldsOrder=Y``)."""

    def __init__(self, raw: str) -> None:
        self.pairs: list[tuple[int, str]] = []
        for part in raw.split("\x01"):
            if not part:
                continue
            tag, eq, value = part.partition("=")
            if not eq or not tag.isdigit():
                raise FixDecodeError(f"{part[:20]!r} is not tag=value")
            self.pairs.append((int(tag), value))

    def get(self, tag: int) -> str | None:
        for t, v in self.pairs:
            if t == tag:
                return v
        return None

    def groups(self, count_tag: int, delim: int, stop: frozenset[int] = frozenset()) -> list[dict[int, str]]:
        """The entries of repeating group ``count_tag`` (each starting at ``delim``): every
        field up to the next ``delim``, the trailer, or a tag in ``stop``. Raises naming the
        tag when the count and the entries disagree."""
        idx = next((i for i, (t, _) in enumerate(self.pairs) if t == count_tag), None)
        if idx is None:
            return []
        n = _qty(self.pairs[idx][1], count_tag)
        out: list[dict[int, str]] = []
        for t, v in self.pairs[idx + 1:]:
            if t == 10 or t in stop or (len(out) >= n and t == delim):
                break
            if t == delim:
                out.append({t: v})
            elif not out:
                raise FixDecodeError(f"repeating group {count_tag}: tag {t} before its first {delim}", count_tag)
            else:
                out[-1].setdefault(t, v)
        if len(out) != n:
            raise FixDecodeError(f"repeating group {count_tag}: {n} entries announced, {len(out)} found", count_tag)
        return out


class _Entry:
    """One repeating-group entry read by :class:`RawFields` (the getters ``need`` uses)."""

    def __init__(self, fields: dict[int, str]) -> None:
        self.f = fields

    def isSetField(self, tag: int) -> bool:  # noqa: N802 - the engine's names, so get/need work
        return tag in self.f

    def getField(self, tag: int) -> str:  # noqa: N802
        return self.f[tag]


_V_STOP = frozenset({NO_RELATED_SYM, NO_MD_ENTRY_TYPES, 386, 815, 812})


def parse_md_request(raw: str) -> tuple[str, str, int, list[str]]:
    """(MDReqID, SubscriptionRequestType, MarketDepth, symbols) of a V's wire text."""
    msg = RawFields(raw)
    req_id = msg.get(MD_REQ_ID)
    if not req_id:
        raise FixDecodeError(f"required tag {MD_REQ_ID} missing", MD_REQ_ID)
    kind = msg.get(SUB_REQ_TYPE) or ""
    if kind not in (MD_SNAPSHOT, MD_SUBSCRIBE, MD_UNSUBSCRIBE):
        raise FixDecodeError(f"tag {SUB_REQ_TYPE}: {kind!r} is not 0, 1 or 2", SUB_REQ_TYPE)
    depth = _qty(msg.get(MARKET_DEPTH) or "", MARKET_DEPTH)
    symbols = [need(_Entry(g), SYMBOL) for g in msg.groups(NO_RELATED_SYM, SYMBOL, _V_STOP)]
    if not symbols:
        raise FixDecodeError(f"tag {NO_RELATED_SYM}: no instrument requested", NO_RELATED_SYM)
    return req_id, kind, depth, symbols


def _md_fields(g: Any, e: MdEntry, smap: SymbolMap) -> None:
    g.setField(MD_ENTRY_TYPE, e.type)
    if e.price is not None:
        g.setField(MD_ENTRY_PX, smap.price_out(e.instrument, e.price))
    if e.type in (MD_BID, MD_OFFER, MD_TRADE) and e.action != MD_DELETE:
        g.setField(MD_ENTRY_SIZE, str(e.size))
    if e.ts_ns is not None:
        d, t = _md_time(e.ts_ns)
        g.setField(MD_ENTRY_DATE, d)
        g.setField(MD_ENTRY_TIME, t)
    if e.position:
        g.setField(MD_ENTRY_POSITION_NO, str(e.position))


def md_snapshot(req_id: str, instrument: str, entries: list[MdEntry], smap: SymbolMap) -> Any:
    """MarketDataSnapshotFullRefresh (W) of one instrument."""
    m = new_message("W")
    if req_id:
        m.setField(MD_REQ_ID, req_id)
    m.setField(SYMBOL, smap.symbol(instrument))
    for e in entries:
        g = fix.Group(NO_MD_ENTRIES, MD_ENTRY_TYPE)
        _md_fields(g, e, smap)
        m.addGroup(g)
    return m


def md_incremental(req_id: str, entries: list[MdEntry], smap: SymbolMap) -> Any:
    """MarketDataIncrementalRefresh (X): New / Change / Delete of levels, trades, settlement."""
    m = new_message("X")
    if req_id:
        m.setField(MD_REQ_ID, req_id)
    for e in entries:
        g = fix.Group(NO_MD_ENTRIES, MD_UPDATE_ACTION)
        g.setField(MD_UPDATE_ACTION, e.action or MD_CHANGE)
        g.setField(SYMBOL, smap.symbol(e.instrument))
        _md_fields(g, e, smap)
        m.addGroup(g)
    return m


def _md_entry(g: Any, instrument: str, action: str, smap: SymbolMap) -> MdEntry:
    t = need(g, MD_ENTRY_TYPE)
    px = get(g, MD_ENTRY_PX)
    size = get(g, MD_ENTRY_SIZE)
    pos = get(g, MD_ENTRY_POSITION_NO)
    if t in (MD_BID, MD_OFFER) and action != MD_DELETE and px is None:
        raise FixDecodeError(f"tag {MD_ENTRY_PX}: a {'bid' if t == MD_BID else 'offer'} level without a price", MD_ENTRY_PX)
    return MdEntry(instrument=instrument, type=t, action=action,
                   price=smap.price_in(instrument, px, MD_ENTRY_PX) if px is not None else None,
                   size=_qty(size, MD_ENTRY_SIZE) if size is not None else 0,
                   position=_qty(pos, MD_ENTRY_POSITION_NO) if pos is not None else 0,
                   ts_ns=_md_ts(get(g, MD_ENTRY_DATE), get(g, MD_ENTRY_TIME)))


_MD_STOP = frozenset({813, 814})


def parse_md(raw: str, smap: SymbolMap) -> list[MdEntry]:
    """The entries of a W's or an X's wire text. Raises :class:`FixDecodeError` naming the tag."""
    msg = RawFields(raw)
    mt = msg.get(MSG_TYPE)
    if mt == "W":
        sym = msg.get(SYMBOL)
        if not sym:
            raise FixDecodeError(f"required tag {SYMBOL} missing", SYMBOL)
        inst = smap.instrument(sym)
        return [_md_entry(_Entry(g), inst, "", smap) for g in msg.groups(NO_MD_ENTRIES, MD_ENTRY_TYPE, _MD_STOP)]
    if mt == "X":
        out = []
        for fields in msg.groups(NO_MD_ENTRIES, MD_UPDATE_ACTION, _MD_STOP):
            g = _Entry(fields)
            action = need(g, MD_UPDATE_ACTION)
            if action not in (MD_NEW, MD_CHANGE, MD_DELETE):
                raise FixDecodeError(f"tag {MD_UPDATE_ACTION}: {action!r} is not 0, 1 or 2", MD_UPDATE_ACTION)
            out.append(_md_entry(g, smap.instrument(need(g, SYMBOL)), action, smap))
        return out
    raise FixDecodeError(f"message type {mt!r} is not market data", MSG_TYPE)


def md_reject(req_id: str, reason: str, text: str) -> Any:
    """MarketDataRequestReject (Y): 281 0 unknown symbol, 5 unsupported MarketDepth..."""
    m = new_message("Y")
    m.setField(MD_REQ_ID, req_id)
    m.setField(MD_REQ_REJ_REASON, reason)
    m.setField(TEXT, text)
    return m


class MdBook:
    """The book of one instrument as a FIX market-data subscriber keeps it: price levels by
    position (MDEntryPositionNo), the last trade and the settlement price, replaced by a W and
    changed by an X's New / Change / Delete (a New or a Delete at a position shifts the levels
    below it, as FIX's price-level books do)."""

    def __init__(self, instrument: str) -> None:
        self.instrument = instrument
        self.bids: list[tuple[Decimal, int]] = []
        self.asks: list[tuple[Decimal, int]] = []
        self.last: Decimal | None = None
        self.settlement: Decimal | None = None
        self.ts_ns: int | None = None

    def _side(self, t: str) -> list[tuple[Decimal, int]]:
        return self.bids if t == MD_BID else self.asks

    def apply(self, e: MdEntry) -> None:
        if e.ts_ns is not None:
            self.ts_ns = e.ts_ns if self.ts_ns is None else max(self.ts_ns, e.ts_ns)
        if e.type == MD_TRADE:
            if e.price is not None:
                self.last = e.price
            return
        if e.type == MD_SETTLE:
            self.settlement = e.price
            return
        if e.type not in (MD_BID, MD_OFFER):
            return  # entry types we did not ask for: ignored
        levels = self._side(e.type)
        i = max(e.position, 1) - 1
        if e.action == MD_DELETE:
            if i < len(levels):
                del levels[i]
            return
        assert e.price is not None
        lvl = (e.price, e.size)
        if e.action == MD_NEW or e.action == "":
            levels.insert(min(i, len(levels)), lvl)
        elif i < len(levels):
            levels[i] = lvl
        else:
            levels.append(lvl)

    def replace(self, entries: list[MdEntry]) -> None:
        """A full refresh (W): the book is what it says."""
        self.bids, self.asks, self.last, self.settlement, self.ts_ns = [], [], None, None, None
        for e in sorted(entries, key=lambda x: x.position):
            self.apply(e)

    def wire(self, seq: int, kind: str, ts_ns: int) -> dict[str, Any]:
        """The book in the gateway's wire format (what its normaliser parses)."""
        return wire_message(kind, self.instrument, seq, ts_ns, self.bids, self.asks, self.last, self.settlement)


def book_entries(instrument: str, bids: list[tuple[Decimal, int]], asks: list[tuple[Decimal, int]],
                 last: Decimal | None, settlement: Decimal | None, ts_ns: int) -> list[MdEntry]:
    """A W's entries for a book (the venue side)."""
    out = [MdEntry(instrument, MD_BID, "", p, s, i + 1, ts_ns) for i, (p, s) in enumerate(bids)]
    out += [MdEntry(instrument, MD_OFFER, "", p, s, i + 1, ts_ns) for i, (p, s) in enumerate(asks)]
    if last is not None:
        out.append(MdEntry(instrument, MD_TRADE, "", last, 0, 0, ts_ns))
    if settlement is not None:
        out.append(MdEntry(instrument, MD_SETTLE, "", settlement, 0, 0, ts_ns))
    return out


def book_changes(instrument: str, old: tuple[list[tuple[Decimal, int]], list[tuple[Decimal, int]], Decimal | None],
                 new: tuple[list[tuple[Decimal, int]], list[tuple[Decimal, int]], Decimal | None],
                 ts_ns: int) -> list[MdEntry]:
    """An X's entries taking a subscriber from ``old`` (bids, asks, last) to ``new``: Change where
    a level differs, New where the book got deeper, Delete (from the bottom) where it got
    shallower, a trade where the last price moved."""
    out: list[MdEntry] = []
    for t, o, n in ((MD_BID, old[0], new[0]), (MD_OFFER, old[1], new[1])):
        for i in range(max(len(o), len(n))):
            if i >= len(n):
                continue
            if i >= len(o):
                out.append(MdEntry(instrument, t, MD_NEW, n[i][0], n[i][1], i + 1, ts_ns))
            elif o[i] != n[i]:
                out.append(MdEntry(instrument, t, MD_CHANGE, n[i][0], n[i][1], i + 1, ts_ns))
        for i in range(len(o) - 1, len(n) - 1, -1):
            out.append(MdEntry(instrument, t, MD_DELETE, None, 0, i + 1, ts_ns))
    if new[2] is not None and new[2] != old[2]:
        out.append(MdEntry(instrument, MD_TRADE, MD_NEW, new[2], 0, 0, ts_ns))
    return out


# --------------------------------------------------------------------------- positions (AN, AO, AP)
POS_REQ_ID, POS_MAINT_RPT_ID, POS_REQ_TYPE, TOTAL_NUM_POS_REPORTS = 710, 721, 724, 727
POS_REQ_RESULT, POS_REQ_STATUS, CLEARING_BUSINESS_DATE, ACCOUNT_TYPE = 728, 729, 715, 581
SETTL_PRICE, SETTL_PRICE_TYPE, PRIOR_SETTL_PRICE, UNSOLICITED_INDICATOR = 730, 731, 734, 325
NO_POSITIONS, POS_TYPE, LONG_QTY, SHORT_QTY, NO_POS_AMT = 702, 703, 704, 705, 753
#: PosReqType (724) 0: positions
POS_REQ_POSITIONS = "0"
#: PosReqResult (728)
POS_VALID, POS_INVALID, POS_NONE_FOUND, POS_NOT_AUTHORIZED, POS_NOT_SUPPORTED = "0", "1", "2", "3", "4"
#: PosReqStatus (729)
POS_STATUS_COMPLETED, POS_STATUS_WARNINGS, POS_STATUS_REJECTED = "0", "1", "2"
#: PosType (703) of the total position; other entries are summed only when no TOT is given
POS_TYPE_TOTAL = "TOT"


def _business_date(now_ns: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now_ns // 1_000_000_000))


def position_request(req_id: str, account: str, now_ns: int) -> Any:
    """RequestForPositions (AN): a snapshot (SubscriptionRequestType 0) of the positions
    (PosReqType 0) of ``account``, with the fields FIX 4.4 requires."""
    m = new_message("AN")
    m.setField(POS_REQ_ID, req_id)
    m.setField(POS_REQ_TYPE, POS_REQ_POSITIONS)
    m.setField(SUB_REQ_TYPE, MD_SNAPSHOT)
    m.setField(ACCOUNT, account)
    m.setField(ACCOUNT_TYPE, "1")  # carried on the customer side of the books
    m.setField(CLEARING_BUSINESS_DATE, _business_date(now_ns))
    m.setField(TRANSACT_TIME, utc_timestamp(now_ns))
    return m


def parse_position_request(raw: str) -> tuple[str, str, str, str]:
    """(PosReqID, Account, PosReqType, SubscriptionRequestType) of an AN's wire text."""
    msg = RawFields(raw)
    out = []
    for tag in (POS_REQ_ID, ACCOUNT, POS_REQ_TYPE):
        v = msg.get(tag)
        if not v:
            raise FixDecodeError(f"required tag {tag} missing", tag)
        out.append(v)
    return out[0], out[1], out[2], msg.get(SUB_REQ_TYPE) or MD_SNAPSHOT


def position_ack(req_id: str, rpt_id: str, account: str, result: str, status: str, total: int,
                 text: str = "") -> Any:
    """RequestForPositionsAck (AO)."""
    m = new_message("AO")
    m.setField(POS_MAINT_RPT_ID, rpt_id)
    m.setField(POS_REQ_ID, req_id)
    m.setField(TOTAL_NUM_POS_REPORTS, str(total))
    m.setField(POS_REQ_RESULT, result)
    m.setField(POS_REQ_STATUS, status)
    m.setField(ACCOUNT, account)
    m.setField(ACCOUNT_TYPE, "1")
    if text:
        m.setField(TEXT, text)
    return m


def position_report(req_id: str, rpt_id: str, account: str, instrument: str, long_qty: int, short_qty: int,
                    total: int, smap: SymbolMap, now_ns: int, *, quantities: bool = True) -> Any:
    """PositionReport (AP) of one instrument: one NoPositions entry, PosType TOT, with LongQty
    and ShortQty (``quantities=False``: neither, a malformed report for tests)."""
    m = new_message("AP")
    m.setField(POS_MAINT_RPT_ID, rpt_id)
    m.setField(POS_REQ_ID, req_id)
    m.setField(POS_REQ_TYPE, POS_REQ_POSITIONS)
    m.setField(SUB_REQ_TYPE, MD_SNAPSHOT)
    m.setField(TOTAL_NUM_POS_REPORTS, str(total))
    m.setField(POS_REQ_RESULT, POS_VALID)
    m.setField(CLEARING_BUSINESS_DATE, _business_date(now_ns))
    m.setField(ACCOUNT, account)
    m.setField(ACCOUNT_TYPE, "1")
    m.setField(SYMBOL, smap.symbol(instrument))
    m.setField(SECURITY_EXCHANGE, smap.security_exchange)
    m.setField(SETTL_PRICE, "0")
    m.setField(SETTL_PRICE_TYPE, "1")
    m.setField(PRIOR_SETTL_PRICE, "0")
    g = fix.Group(NO_POSITIONS, POS_TYPE)
    g.setField(POS_TYPE, POS_TYPE_TOTAL)
    if quantities:
        g.setField(LONG_QTY, str(long_qty))
        g.setField(SHORT_QTY, str(short_qty))
    m.addGroup(g)
    return m


@dataclass(frozen=True)
class PositionAck:
    """What a RequestForPositionsAck (AO) says."""

    req_id: str
    result: str
    status: str
    total: int | None
    text: str


@dataclass(frozen=True)
class PositionLine:
    """One PositionReport (AP): the net lots (long - short) of one instrument."""

    req_id: str
    account: str
    instrument: str
    net: int
    total: int | None
    result: str


def parse_position_ack(raw: str) -> PositionAck:
    msg = RawFields(raw)
    req_id = msg.get(POS_REQ_ID) or ""
    result = msg.get(POS_REQ_RESULT)
    if not result:
        raise FixDecodeError(f"required tag {POS_REQ_RESULT} missing", POS_REQ_RESULT)
    tot = msg.get(TOTAL_NUM_POS_REPORTS)
    return PositionAck(req_id, result, msg.get(POS_REQ_STATUS) or "", _qty(tot, TOTAL_NUM_POS_REPORTS)
                       if tot is not None else None, msg.get(TEXT) or "")


_AP_STOP = frozenset({NO_POS_AMT, 753, 58, 354, 355, 539, 555, 711, 751})


def parse_position_report(raw: str, smap: SymbolMap) -> PositionLine:
    """An AP's wire text -> :class:`PositionLine`. The instrument is read through the symbol
    map (a Symbol it does not map is refused naming tag 55); the net is LongQty - ShortQty of
    the PosType TOT entries, else of the only entry (several entries without a TOT are refused:
    SOD and FIN, or a breakdown, would count the position twice). Raises :class:`FixDecodeError` naming the tag."""
    msg = RawFields(raw)
    req_id = msg.get(POS_REQ_ID)
    if not req_id:
        raise FixDecodeError(f"required tag {POS_REQ_ID} missing", POS_REQ_ID)
    result = msg.get(POS_REQ_RESULT)
    if not result:
        raise FixDecodeError(f"required tag {POS_REQ_RESULT} missing", POS_REQ_RESULT)
    tot = msg.get(TOTAL_NUM_POS_REPORTS)
    total = _qty(tot, TOTAL_NUM_POS_REPORTS) if tot is not None else None
    sym = msg.get(SYMBOL)
    if not sym:
        raise FixDecodeError(f"required tag {SYMBOL} missing", SYMBOL)
    inst = next((iid for iid, s in smap.symbols.items() if s == sym), None)
    if inst is None:
        raise FixDecodeError(f"tag {SYMBOL}: {sym!r} is not an instrument of this session", SYMBOL)
    entries = msg.groups(NO_POSITIONS, POS_TYPE, _AP_STOP)
    if not entries:
        raise FixDecodeError(f"tag {NO_POSITIONS}: no position entry", NO_POSITIONS)
    tot_entries = [e for e in entries if e.get(POS_TYPE) == POS_TYPE_TOTAL]
    if not tot_entries:
        if len(entries) > 1:  # SOD + FIN, or a breakdown (IAS, IES...): their sum counts lots twice
            kinds = ", ".join(str(e.get(POS_TYPE)) for e in entries)
            raise FixDecodeError(f"tag {POS_TYPE}: {len(entries)} position entries ({kinds}) and none of PosType "
                                 f"{POS_TYPE_TOTAL}: which one is the position cannot be told", POS_TYPE)
        tot_entries = entries
    net = 0
    for e in tot_entries:
        if LONG_QTY not in e and SHORT_QTY not in e:
            raise FixDecodeError(f"tag {LONG_QTY}: a position entry ({e.get(POS_TYPE)}) without LongQty or ShortQty",
                                 LONG_QTY)
        net += _qty(e.get(LONG_QTY, "0"), LONG_QTY) - _qty(e.get(SHORT_QTY, "0"), SHORT_QTY)
    return PositionLine(req_id, msg.get(ACCOUNT) or "", inst, net, total, result)
