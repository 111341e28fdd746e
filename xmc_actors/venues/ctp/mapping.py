"""Our orders and reports <-> CTP's fields (pure: no binding import, so it is testable and
importable anywhere; ``tests/unit/test_ctp_mapping.py`` checks every constant here against
the binding's own ``THOST_FTDC_*``).

CTP field values are single characters:

* Direction: ``0`` buy, ``1`` sell.
* CombOffsetFlag (first character): ``0`` open, ``1`` close, ``3`` close today, ``4`` close
  yesterday (``2`` force close and the rest are the broker's, never ours).
* Order types: LIMIT DAY = LimitPrice ``2`` + GFD ``3`` + any volume ``1``; IOC (FAK) =
  LimitPrice + IOC ``1`` + any volume; FOK = LimitPrice + IOC + complete volume ``3``;
  MARKET = AnyPrice ``1`` + IOC + any volume (not at SHFE / INE, which take no market orders).
* OrderSubmitStatus: ``0`` insert submitted (at CTP), ``3`` accepted (by the exchange),
  ``4`` insert rejected (by the exchange), ``1`` cancel submitted, ``5`` cancel rejected.
* OrderStatus: ``0`` all traded, ``1`` part traded queueing, ``2`` part traded not queueing,
  ``3`` no trade queueing, ``4`` no trade not queueing, ``5`` canceled, ``a`` unknown (CTP
  has it, the exchange has not answered), ``b``/``c`` (conditional orders) not touched/touched.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from ...core.positions import check_offset as venue_offset_rule
from ...model.market import Side, Venue
from ...model.orders import OrderRequest, OrderStatus, OrderType, RejectReason, TimeInForce

# Direction
D_BUY, D_SELL = "0", "1"
# CombOffsetFlag (THOST_FTDC_OF_*), by the model's Offset member names
OFFSET_FLAGS = {"OPEN": "0", "CLOSE": "1", "CLOSE_TODAY": "3", "CLOSE_YESTERDAY": "4"}
# OrderPriceType
OPT_ANY, OPT_LIMIT = "1", "2"
# TimeCondition
TC_IOC, TC_GFD = "1", "3"
# VolumeCondition
VC_ANY, VC_COMPLETE = "1", "3"
# ContingentCondition immediately, ForceCloseReason not a force close
CC_IMMEDIATELY, FCC_NOT_FORCE_CLOSE = "1", "0"
# ActionFlag delete
AF_DELETE = "0"
# CombHedgeFlag
HEDGE_FLAGS = {"speculation": "1", "arbitrage": "2", "hedge": "3"}
# OrderSubmitStatus
OSS_INSERT_SUBMITTED, OSS_CANCEL_SUBMITTED, OSS_ACCEPTED, OSS_INSERT_REJECTED, OSS_CANCEL_REJECTED = "0", "1", "3", "4", "5"
# OrderStatus
OST_ALL_TRADED, OST_PART_QUEUEING, OST_PART_NOT_QUEUEING = "0", "1", "2"
OST_NO_TRADE_QUEUEING, OST_NO_TRADE_NOT_QUEUEING, OST_CANCELED = "3", "4", "5"
OST_UNKNOWN, OST_NOT_TOUCHED, OST_TOUCHED = "a", "b", "c"
# private / public topic resume types (THOST_TE_RESUME_TYPE)
RESUME_TYPES = {"restart": 0, "resume": 1, "quick": 2}

#: exchanges that take no market orders (AnyPrice)
NO_MARKET_ORDERS = frozenset({"SHFE", "INE"})


class OrderNotExpressible(ValueError):
    """An order CTP cannot carry as asked (refused before it leaves, with the reason)."""

    def __init__(self, why: str, reason: RejectReason = RejectReason.OTHER) -> None:
        super().__init__(why)
        self.reason = reason


def offset_name(req: OrderRequest) -> str | None:
    off = getattr(req, "offset", None)
    if off is None:
        return None
    return getattr(off, "name", str(off))


def check_offset(req: OrderRequest, venue: Venue) -> str:
    """The CombOffsetFlag character for ``req``; :class:`OrderNotExpressible` when the order
    has no offset (every CTP order opens or closes) or one its venue's rule
    (``Venue.offsets``, :func:`xmc_actors.core.positions.check_offset`) refuses. A venue whose
    catalogue entry has no rule (``none``) leaves the offset to the exchange."""
    name = offset_name(req)
    if name is None:
        raise OrderNotExpressible(f"{venue.code} holds long and short apart: a CTP order must say whether it "
                                  "opens or closes (offset), none given", RejectReason.OFFSET_NOT_ALLOWED)
    flag = OFFSET_FLAGS.get(name)
    if flag is None:
        raise OrderNotExpressible(f"offset {name} has no CTP flag")
    if venue.offsets != "none":
        why = venue_offset_rule(venue, req.offset)
        if why:
            raise OrderNotExpressible(why, RejectReason.OFFSET_NOT_ALLOWED)
    return flag


def price_terms(req: OrderRequest, exchange_id: str) -> tuple[str, str, str]:
    """(OrderPriceType, TimeCondition, VolumeCondition) of ``req``."""
    ot, tif = req.order_type, req.tif
    if ot is OrderType.MARKET:
        if exchange_id in NO_MARKET_ORDERS:
            raise OrderNotExpressible(f"{exchange_id} takes no market orders: send an IOC limit order")
        return OPT_ANY, TC_IOC, VC_ANY
    if ot is OrderType.FOK or tif is TimeInForce.FOK:
        return OPT_LIMIT, TC_IOC, VC_COMPLETE
    if ot is OrderType.IOC or tif is TimeInForce.IOC:
        return OPT_LIMIT, TC_IOC, VC_ANY
    if tif is TimeInForce.GTC:
        raise OrderNotExpressible("Chinese futures exchanges keep no order past its trading day: GTC is not "
                                  "available, send DAY")
    return OPT_LIMIT, TC_GFD, VC_ANY


def direction(side: Side) -> str:
    return D_BUY if side is Side.BUY else D_SELL


def side_of(d: str) -> Side:
    return Side.BUY if d == D_BUY else Side.SELL


def price_out(p: Decimal | None) -> float:
    return float(p) if p is not None else 0.0


def price_in(v: float, tick: Decimal | None = None) -> Decimal:
    """A CTP price (a double) as a Decimal, on the instrument's grid when it is within a
    millionth of a tick of it (70120.0000001 -> 70120)."""
    try:
        d = Decimal(repr(float(v)))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    if tick:
        n = (d / tick).to_integral_value()
        if abs(d - n * tick) <= tick / Decimal(1_000_000):
            return (n * tick).quantize(tick) if tick.as_tuple().exponent < 0 else n * tick
    return d


def order_ref(n: int) -> str:
    """OrderRef of our ``n``-th order: 12 digits, so that string and numeric order agree
    (CTP wants them increasing within a session)."""
    return f"{n:012d}"


def norm_ref(ref: str) -> str:
    """OrderRef as a key: the number without padding (fronts echo it padded or not)."""
    s = (ref or "").strip()
    return str(int(s)) if s.isdigit() else s


def status_of(submit: str, status: str) -> OrderStatus:
    """Our status of a CTP order from its OrderSubmitStatus and OrderStatus."""
    if submit == OSS_INSERT_REJECTED:
        return OrderStatus.REJECTED
    if status == OST_ALL_TRADED:
        return OrderStatus.FILLED
    if status == OST_PART_QUEUEING:
        return OrderStatus.PARTIALLY_FILLED
    if status in (OST_PART_NOT_QUEUEING, OST_CANCELED):
        return OrderStatus.CANCELED  # the remainder is gone (an IOC's, or canceled)
    if status in (OST_NO_TRADE_QUEUEING, OST_NOT_TOUCHED, OST_TOUCHED):
        return OrderStatus.ACCEPTED
    return OrderStatus.SUBMITTED  # 'a' (at CTP, the exchange not yet answered), '4'


# CTP error ids (the SDK's error.xml) that say more than OTHER
_ERRORS: dict[int, str] = {
    6: "VENUE_ERROR",             # NOT_LOGIN_YET
    7: "VENUE_ERROR",             # NOT_INITED
    8: "VENUE_ERROR",             # FRONT_NOT_ACTIVE
    9: "RISK",                    # NO_PRIVILEGE
    15: "OTHER",                  # BAD_FIELD
    16: "UNKNOWN_INSTRUMENT",     # INSTRUMENT_NOT_FOUND
    17: "MARKET_CLOSED",          # INSTRUMENT_NOT_TRADING
    22: "DUPLICATE_ORDER",        # DUPLICATE_ORDER_REF
    25: "UNKNOWN_ORDER",          # ORDER_NOT_FOUND
    26: "TOO_LATE_TO_CANCEL",     # INSUITABLE_ORDER_STATUS (already traded or canceled)
    28: "RISK",                   # NO_TRADING_RIGHT
    29: "RISK",                   # CLOSE_ONLY
    30: "POSITION_INSUFFICIENT",  # OVER_CLOSE_POSITION
    31: "INSUFFICIENT_MARGIN",    # INSUFFICIENT_MONEY
    40: "THROTTLED",              # CFFEX_OVER_REQUEST
    41: "THROTTLED",              # CFFEX_OVER_REQUEST_PER_SECOND
    42: "VENUE_ERROR",            # SETTLEMENT_INFO_NOT_CONFIRMED
    44: "MARKET_CLOSED",          # EXCHANGE_TRADING: not in a trading phase
    50: "POSITION_INSUFFICIENT",  # OVER_CLOSETODAY_POSITION
    51: "POSITION_INSUFFICIENT",  # OVER_CLOSEYESTERDAY_POSITION
}


def _reason(name: str) -> RejectReason:
    return RejectReason[name]


def reason_of_error(error_id: int) -> RejectReason:
    """Our reason for a CTP ErrorID (OnRspOrderInsert, OnErrRtnOrderInsert, order actions)."""
    return _reason(_ERRORS.get(int(error_id), "OTHER"))


# words of the exchange's StatusMsg on an insert rejected by it (no ErrorID then), first match wins
_TEXT_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("涨跌停", "超出价格", "价格超", "价格不在", "price limit"), "PRICE_OUT_OF_LIMIT"),
    (("最小变动", "tick"), "OFF_TICK"),
    (("非交易", "不在交易", "交易时段", "停止交易", "not trading", "closed"), "MARKET_CLOSED"),
    (("资金不足", "保证金不足", "insufficient money", "margin"), "INSUFFICIENT_MARGIN"),
    (("平仓", "持仓不足", "仓位不足", "position"), "POSITION_INSUFFICIENT"),
    (("数量", "手数", "volume"), "BAD_QUANTITY"),
    (("合约不存在", "找不到合约", "instrument"), "UNKNOWN_INSTRUMENT"),
)


def reason_of_text(text: str) -> RejectReason:
    """Our reason for an exchange's reject message (OnRtnOrder with InsertRejected)."""
    low = (text or "").lower()
    for words, name in _TEXT_REASONS:
        if any(w in low for w in words):
            return _reason(name)
    return RejectReason.OTHER


def fields(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Copy a CThostFtdc* struct's fields into a dict: the API may reuse its buffers once a
    callback returns, so nothing keeps the struct itself."""
    return {n: getattr(obj, n) for n in names}


ORDER_FIELDS = ("BrokerID", "InvestorID", "InstrumentID", "ExchangeID", "OrderRef", "FrontID", "SessionID",
                "OrderSysID", "OrderSubmitStatus", "OrderStatus", "Direction", "CombOffsetFlag", "LimitPrice",
                "VolumeTotalOriginal", "VolumeTraded", "VolumeTotal", "StatusMsg", "InsertDate", "InsertTime",
                "UpdateTime", "CancelTime", "TradingDay", "SequenceNo", "UserID")
TRADE_FIELDS = ("BrokerID", "InvestorID", "InstrumentID", "ExchangeID", "OrderRef", "OrderSysID", "TradeID",
                "Direction", "OffsetFlag", "Price", "Volume", "TradeDate", "TradeTime", "TradingDay",
                "SequenceNo", "UserID")
INPUT_ORDER_FIELDS = ("BrokerID", "InvestorID", "InstrumentID", "ExchangeID", "OrderRef", "Direction",
                      "CombOffsetFlag", "LimitPrice", "VolumeTotalOriginal", "UserID")
ACTION_FIELDS = ("BrokerID", "InvestorID", "InstrumentID", "ExchangeID", "OrderRef", "FrontID", "SessionID",
                 "OrderSysID", "OrderActionRef")

# The broker's own figures (ReqQryInvestorPosition / ReqQryTradingAccount)
# PosiDirection (THOST_FTDC_PD_*): net, long, short
PD_NET, PD_LONG, PD_SHORT = "1", "2", "3"
# PositionDate (THOST_FTDC_PSD_*): today's row, history (yesterday's) row; SHFE and INE answer
# one row of each per direction, the other exchanges one row (PositionDate today) whose
# TodayPosition is the part opened today
PSD_TODAY, PSD_HISTORY = "1", "2"
POSITION_FIELDS = ("BrokerID", "InvestorID", "InstrumentID", "ExchangeID", "PosiDirection", "HedgeFlag",
                   "PositionDate", "YdPosition", "Position", "TodayPosition", "LongFrozen", "ShortFrozen",
                   "TradingDay", "UseMargin")
ACCOUNT_FIELDS = ("BrokerID", "AccountID", "Balance", "CurrMargin", "Available", "CurrencyID", "TradingDay",
                  "PreBalance", "FrozenMargin", "CloseProfit", "PositionProfit", "Commission")
