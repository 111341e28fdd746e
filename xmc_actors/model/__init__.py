"""Pydantic domain model: units, venues, instruments, orders, quotes, pairs, events, config."""
from .errors import CurrencyError, IllegalTransition, PriceError, UnitError, XmcError
from .events import Event, EventKind
from .market import Account, Fee, FeeSchedule, FxPair, Instrument, PriceLimitRule, SecretRef, Side, TradingSession, Venue
from .orders import (
    ExecReportKind, ExecutionReport, Fill, Offset, OrderRequest, OrderState, OrderStatus, OrderType,
    RejectReason, TimeInForce, check_transition, client_order_id,
)
from .pairs import (
    ExecutionMode, LegIntent, LegSpec, LegSummary, PairIntent, PairSpec, PairState, PairSummary, ReplenishBudget,
    RollbackPolicy,
)
from .quotes import Level, Quote, QuoteStatus
from .units import convert_price, convert_quantity, unit_factor

__all__ = [n for n in dir() if not n.startswith("_")]
