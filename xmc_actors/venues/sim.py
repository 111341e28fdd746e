"""The simulated exchange (模拟交易所): matching, exchange rules, seeded fault injection.

A pure, deterministic core (no Ray): it is handed a clock and a seed, so the same inputs give
the same fills, rejects and timestamps. The gateway actor drives it.

Market model
------------
The *feed* (replay or synthetic) is the rest of the market: each market quote replaces the
visible liquidity of the instrument (top of book, or depth when given; a level with no size
shows ``default_depth`` lots). Our orders trade against that liquidity:

* an incoming order takes visible levels at or better than its limit, best price first, at the
  level's price, until its quantity or the liquidity is used up; what it takes stays taken until
  the next market quote replaces the book;
* the remainder rests (LIMIT with DAY/GTC), is cancelled (IOC / FAK / MARKET) or, for FOK, the
  whole order is rejected (``FOK_UNFILLABLE``) when the liquidity at its limit is short;
* resting orders fill at their own limit when a later market quote trades through them (a buy
  at P fills against asks at or below P, or fully when the last trade printed below P);
  when several resting orders compete, the best price fills first, then the oldest
  (price-time priority). Simulated orders never trade with each other. With
  ``queue_model: queue`` a resting order also waits for the visible queue ahead of it at its
  price to be used up (:meth:`SimExchange._match_queued`);
* DAY orders expire when the instrument's trading day changes (only with ``enforce_sessions``).

Exchange rules, checked in this order: unknown instrument, quantity (positive, a multiple of
``lot_size``, at least ``min_qty``), ``max_qty``, tick grid, session open, halted, the daily
price-limit band around the previous settlement, limit-locked (one side of the book is empty
at the limit), then seeded random rejects (``FaultConfig.reject_prob``).

Faults (seeded, see :class:`~xmc_actors.venues.sim_config.FaultConfig`) and deterministic
one-shot injections (:meth:`SimExchange.inject`, documented in ``docs/architecture.md``,
"Simulated venue").
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

from ..core.calendar import instrument_session_state
from ..core.clock import Clock
from ..core.capital import CapitalPool, PositionBook
from ..core.pnl import PnlBook
from ..core.positions import OffsetError, TwoSidedBook, check_offset
from ..model.errors import VenueDisconnected
from ..model.market import Account, Instrument, Side, Venue
from ..model.orders import (
    ExecReportKind, ExecutionReport, Fill, OrderRequest, OrderState, OrderStatus, OrderType,
    RejectReason, TimeInForce,
)
from ..model.quotes import Quote
from .journal import VenueJournal
from .sim_config import LatencyModel, SimVenueParams

_MS = 1_000_000


class VenueClock:
    """The venue's own clock: true time plus skew, drift (ppm) and seeded jitter.

    ``venue = t + skew + drift_ppm * 1e-6 * (t - t0) + N(0, jitter)``.
    """

    def __init__(self, clock: Clock, skew_ms: float, drift_ppm: float, jitter_ms: float, seed: int | str) -> None:
        self.clock = clock
        self.skew_ns = skew_ms * _MS
        self.drift = drift_ppm * 1e-6
        self.jitter_ns = jitter_ms * _MS
        self.t0 = clock.now_ns()
        self._rng = random.Random(f"{seed}:venue-clock")

    def true_offset_ns(self, t_ns: int) -> float:
        """The venue's offset (venue - true) at true time ``t_ns``, without jitter."""
        return self.skew_ns + self.drift * (t_ns - self.t0)

    def at(self, t_ns: int) -> int:
        j = self._rng.gauss(0.0, self.jitter_ns) if self.jitter_ns else 0.0
        return t_ns + round(self.true_offset_ns(t_ns) + j)  # int + int: no float rounding at 1e18

    def now_ns(self) -> int:
        return self.at(self.clock.now_ns())


_LATENCY: dict[int, tuple[Any, ...]] = {}
_CONST, _UNIFORM, _LOGN, _ZERO = 0, 1, 2, 3


def _latency_plan(model: LatencyModel) -> tuple[Any, ...]:
    """``(model, kind, a, b, burst_prob, burst_ms)`` of a (frozen) latency model, remembered by
    the model's id: the draw's parameters worked out once, not on every draw (the execution lab
    draws one or more per quote). ``a, b``: the const value; the uniform's bounds; the
    lognormal's (mu, sigma) for its mean and standard deviation."""
    if model.kind == "const":
        kind, a, b = _CONST, model.mean_ms, 0.0
    elif model.kind == "uniform":
        kind, a, b = _UNIFORM, model.mean_ms - model.jitter_ms, model.mean_ms + model.jitter_ms
    elif model.mean_ms <= 0:
        kind, a, b = _ZERO, 0.0, 0.0
    else:
        sigma = math.sqrt(math.log(1 + (model.jitter_ms / model.mean_ms) ** 2)) if model.jitter_ms else 0.0
        kind, a, b = _LOGN, math.log(model.mean_ms) - sigma * sigma / 2, sigma
    if len(_LATENCY) > 1024:
        _LATENCY.clear()
    c = _LATENCY[id(model)] = (model, kind, a, b, model.burst_prob, model.burst_ms)
    return c  # the model is kept in it: an id reused by another model is not mistaken for it


def sample_latency_ns(model: LatencyModel, rng: random.Random) -> int:
    """One draw of a latency model, in nanoseconds (never negative)."""
    c = _LATENCY.get(id(model))
    if c is None or c[0] is not model:
        c = _latency_plan(model)
    _, kind, a, b, burst_prob, burst_ms = c
    if kind == _LOGN:  # lognormal with the given mean and a spread of jitter_ms
        ms = math.exp(rng.normalvariate(a, b))  # rng.lognormvariate, one call fewer
    elif kind == _CONST:
        ms = a
    elif kind == _UNIFORM:
        ms = rng.uniform(a, b)
    else:
        ms = 0.0
    if burst_prob and rng.random() < burst_prob:
        ms += burst_ms
    return max(int(ms * _MS), 0)


@dataclass
class SimOrder:
    state: OrderState
    venue_order_id: str
    priority: int
    trading_day: Any = None
    queue_ahead: int = 0  # queue model: lots ahead of it at its price (the market's, visible)

    @property
    def req(self) -> OrderRequest:
        return self.state.request


@dataclass
class Book:
    """The market's visible liquidity of one instrument, levels ``[price, size]`` best first.

    A market quote replaces the levels lazily: :meth:`replace` keeps the quote, and the levels
    are built from it the first time they are read (most quotes of a backtest are never traded
    against: building their levels was a third of the venue's cost per quote)."""

    inst: Instrument
    _bids: list[list[Any]] = field(default_factory=list)
    _asks: list[list[Any]] = field(default_factory=list)
    last: Decimal | None = None
    settlement: Decimal | None = None
    seq: int = 0
    quote: Quote | None = None
    resting: list[SimOrder] = field(default_factory=list)
    _pending: Quote | None = None
    _depth: int = 0

    def replace(self, q: Quote, default_depth: int) -> None:
        self._pending, self._depth = q, default_depth

    def _load(self) -> None:
        q, d = self._pending, self._depth
        self._pending = None
        assert q is not None
        if q.bids:
            self._bids = [[lv.price, lv.size or d] for lv in q.bids]
        else:
            self._bids = [[q.bid, q.bid_size or d]] if q.bid is not None else []
        if q.asks:
            self._asks = [[lv.price, lv.size or d] for lv in q.asks]
        else:
            self._asks = [[q.ask, q.ask_size or d]] if q.ask is not None else []

    @property
    def bids(self) -> list[list[Any]]:
        if self._pending is not None:
            self._load()
        return self._bids

    @bids.setter
    def bids(self, levels: list[list[Any]]) -> None:
        if self._pending is not None:
            self._load()
        self._bids = levels

    @property
    def asks(self) -> list[list[Any]]:
        if self._pending is not None:
            self._load()
        return self._asks

    @asks.setter
    def asks(self, levels: list[list[Any]]) -> None:
        if self._pending is not None:
            self._load()
        self._asks = levels


@dataclass
class PlaceReply:
    """What the venue answered to a new order.

    ``reports`` is what goes back to the sender, ``latency_ns`` how long the answer took;
    ``lost`` means the venue processed the order but the answer never arrived (no ack);
    ``unseen`` means the order never reached the venue at all.
    """

    reports: list[ExecutionReport]
    latency_ns: int = 0
    lost: bool = False
    unseen: bool = False


class SimExchange:
    """A simulated venue with an order book per instrument and seeded fault injection.

    Parameters
    ----------
    venue
        The venue (calendar) it simulates.
    instruments
        The instruments it lists.
    params
        Matching rules and faults (:class:`SimVenueParams`).
    clock
        True time (the gateway's clock); the venue stamps with its own skewed :class:`VenueClock`.
    journal
        Where the venue keeps its memory so that it outlives the gateway process
        (:class:`~xmc_actors.venues.journal.VenueJournal`); its records, if any, are restored
        first (:meth:`restore`). None: the memory lives in this object only.
    """

    def __init__(self, venue: Venue, instruments: Iterable[Instrument], params: SimVenueParams, clock: Clock,
                 journal: VenueJournal | None = None) -> None:
        self.venue = venue
        self.params = params
        self.clock = clock
        self.books: dict[str, Book] = {i.id: Book(i) for i in instruments}
        f = params.faults
        self.venue_clock = VenueClock(clock, f.clock_skew_ms, f.clock_drift_ppm, f.clock_jitter_ms, params.seed)
        self._rng_orders = random.Random(f"{params.seed}:orders")
        self._rng_latency = random.Random(f"{params.seed}:latency")
        self._rng_md = random.Random(f"{params.seed}:md")
        self.orders: dict[str, SimOrder] = {}
        self._order_seq = 0
        self._trade_seq = 0
        self._prio = 0
        self.drop_copy_log: list[dict[str, Any]] = []
        self._scheduled: list[tuple[int, int, ExecutionReport]] = []
        self._sched_seq = 0
        self._held_md: dict[str, dict[str, Any]] = {}
        self._injections: list[dict[str, Any]] = []
        self.halted: set[str] = set()
        self._start_ns = clock.now_ns()
        self._disconnects: list[tuple[int, int]] = [
            (self._start_ns + int(d.at_s * 1e9), self._start_ns + int((d.at_s + d.duration_s) * 1e9))
            for d in f.disconnects
        ]
        # the venue's own two-sided positions (venues whose rule is not "none"): what it lets close
        self.two_sided = TwoSidedBook()
        self.position_errors = 0
        self._account_skew: dict[str, Decimal] = {}
        self.journal = journal
        self.restored: dict[str, int] = {}
        if journal is not None and journal.records:
            self.restored = self.restore(journal.records)

    def rebase(self, start_ns: int) -> None:
        """Start the venue's life at ``start_ns`` instead of its construction: the configured
        disconnect windows (``at_s`` after the start) and the venue clock's drift move with it.
        For a simulated clock set to the market's first moment after the venue was built
        (the execution lab)."""
        shift = start_ns - self._start_ns
        self._start_ns = start_ns
        self._disconnects = [(a + shift, b + shift) for a, b in self._disconnects]
        self.venue_clock.t0 = start_ns

    # ------------------------------------------------------------------ injections / state
    def inject(self, fault: dict[str, Any]) -> None:
        """Add a deterministic fault. See docs/architecture.md, "Simulated venue"."""
        kind = fault.get("kind")
        now = self.clock.now_ns()
        if kind == "disconnect":
            ms = float(fault.get("ms", 0))
            if ms <= 0:
                raise ValueError("inject disconnect: ms must be > 0")
            self._disconnects.append((now, now + int(ms * _MS)))
            return
        if kind == "reconnect":
            self._disconnects = [(a, min(b, now)) for a, b in self._disconnects]
            return
        if kind == "halt":
            self.halted.add(self._need_inst(fault))
            return
        if kind == "resume":
            self.halted.discard(self._need_inst(fault))
            return
        if kind == "clear":
            self._injections.clear()
            return
        if kind == "account_skew":
            # the broker's account reading of ``account`` differs from the truth by ``amount``
            # (equity and available): what the risk guard's account_mismatch check must catch
            acc = fault.get("account")
            if acc not in self.params.accounts:
                raise ValueError(f"inject account_skew: account {acc!r} is not in this venue's params.accounts")
            self._account_skew[acc] = Decimal(str(fault.get("amount", 0)))
            return
        if kind == "reject_next":
            RejectReason(fault.get("reason", "VENUE_ERROR"))
        if kind not in ("reject_next", "no_ack_next", "drop_next", "delay_fills", "partial_fill_next",
                        "late_fill_after_cancel", "reject_cancel_next", "drop_md_next", "reorder_md_next"):
            raise ValueError(f"inject: unknown fault kind {kind!r}")
        if fault.get("instrument") is not None:
            self._need_inst(fault)
        self._injections.append({"count": 1, **fault})

    def _need_inst(self, fault: dict[str, Any]) -> str:
        inst = fault.get("instrument")
        if inst not in self.books:
            raise ValueError(f"inject {fault.get('kind')}: unknown instrument {inst!r}")
        return str(inst)

    def _take_injection(self, kind: str, instrument: str) -> dict[str, Any] | None:
        for inj in self._injections:
            if inj["kind"] == kind and inj.get("instrument") in (None, instrument):
                inj["count"] -= 1
                if inj["count"] <= 0:
                    self._injections.remove(inj)
                return inj
        return None

    def connected(self, now_ns: int | None = None) -> bool:
        if not self._disconnects:  # asked on every quote; most venues never disconnect
            return True
        t = self.clock.now_ns() if now_ns is None else now_ns
        return not any(a <= t < b for a, b in self._disconnects)

    # ------------------------------------------------------------------ reports
    def _report(self, o: SimOrder, kind: ExecReportKind, *, fill: Fill | None = None,
                reason: RejectReason | None = None, text: str = "", venue_ts: int | None = None,
                status: OrderStatus | None = None) -> ExecutionReport:
        st = o.state
        rep = ExecutionReport(
            kind=kind, client_order_id=st.request.client_order_id, venue_order_id=o.venue_order_id,
            venue=self.venue.code, instrument=st.request.instrument, status=status or st.status,
            filled_qty=st.filled_qty, leaves_qty=st.leaves_qty, avg_price=st.avg_price, fill=fill,
            reason=reason, text=text, venue_ts_ns=self.venue_clock.now_ns() if venue_ts is None else venue_ts,
            decision_id=st.request.decision_id, leg=st.request.leg,
        )
        if st.status.is_terminal:
            self.two_sided.release(st.request.client_order_id)  # an unused close reservation ends
        if kind is not ExecReportKind.STATUS:
            row = {
                "ts_ns": self.clock.now_ns(), "venue_ts_ns": rep.venue_ts_ns, "kind": kind.value,
                "client_order_id": rep.client_order_id, "venue_order_id": rep.venue_order_id,
                "instrument": rep.instrument, "side": st.request.side.value, "account": st.request.account,
                "order_qty": st.request.qty, "status": rep.status.value, "filled_qty": rep.filled_qty,
                "leaves_qty": rep.leaves_qty, "trade_id": fill.trade_id if fill else "",
                "fill_qty": fill.qty if fill else 0, "fill_price": str(fill.price) if fill else "",
                "reason": reason.value if reason else "", "decision_id": st.request.decision_id,
                "leg": st.request.leg, "offset": st.request.offset.value if st.request.offset else "",
            }
            self.drop_copy_log.append(row)
            if self.journal is not None:
                self.journal.append(["R", row])
        return rep

    def _fill(self, o: SimOrder, qty: int, price: Decimal) -> ExecutionReport:
        self._trade_seq += 1
        inst = self.books[o.req.instrument].inst
        off = o.req.offset
        fee = inst.fee(price, qty, off.value if off is not None else None)
        if self.venue.offsets != "none":
            r = o.req
            try:
                self.two_sided.fill(self.venue, r.client_order_id, r.account, r.instrument, r.side, off, qty,
                                    o.trading_day)
            except OffsetError:  # checked and reserved at acceptance: only a bug gets here; never fail a fill
                self.position_errors += 1
        f = Fill(trade_id=f"{self.venue.code}-T{self._trade_seq}", client_order_id=o.req.client_order_id,
                 venue_order_id=o.venue_order_id, instrument=o.req.instrument, side=o.req.side, qty=qty,
                 price=price, ts_ns=self.venue_clock.now_ns(), fee=fee)
        o.state.apply_fill(f)
        return self._report(o, ExecReportKind.FILL, fill=f, venue_ts=f.ts_ns)

    def _schedule(self, due_ns: int, rep: ExecutionReport) -> None:
        self._sched_seq += 1
        self._scheduled.append((due_ns, self._sched_seq, rep))
        self._scheduled.sort(key=lambda x: (x[0], x[1]))

    def poll(self, now_ns: int | None = None) -> list[ExecutionReport]:
        """Reports whose (delayed) delivery time has come; held while disconnected."""
        t = self.clock.now_ns() if now_ns is None else now_ns
        if not self._scheduled or not self.connected(t):
            return []
        out = [r for due, _, r in self._scheduled if due <= t]
        self._scheduled = [x for x in self._scheduled if x[0] > t]
        return out

    def next_due_ns(self) -> int | None:
        return self._scheduled[0][0] if self._scheduled else None

    # ------------------------------------------------------------------ rules
    def limit_band(self, book: Book) -> tuple[Decimal, Decimal] | None:
        if not self.params.enforce_price_limits or book.settlement is None:
            return None
        band = book.inst.price_limit.band(book.settlement)
        if band is None:
            return None
        return book.inst.round_price(band[0], "up"), book.inst.round_price(band[1], "down")

    def _check(self, req: OrderRequest, book: Book | None) -> tuple[RejectReason, str] | None:
        if book is None:
            return RejectReason.UNKNOWN_INSTRUMENT, f"instrument {req.instrument!r} is not listed on {self.venue.code}"
        inst = book.inst
        if req.qty % inst.lot_size or req.qty < inst.min_qty:
            return RejectReason.BAD_QUANTITY, f"qty {req.qty}: must be a multiple of lot {inst.lot_size} and >= {inst.min_qty}"
        if req.qty > inst.max_qty:
            return RejectReason.QTY_ABOVE_MAX, f"qty {req.qty} above max {inst.max_qty}"
        if req.price is not None and not inst.on_grid(req.price):
            return RejectReason.OFF_TICK, f"price {req.price} is not a multiple of tick {inst.tick_size}"
        if self.params.enforce_sessions:
            ss = instrument_session_state(self.venue, inst, self.clock.now_ns())
            if not ss.open:
                return RejectReason.MARKET_CLOSED, ss.reason
        if req.instrument in self.halted:
            return RejectReason.HALTED, f"{req.instrument} is halted"
        band = self.limit_band(book)
        if band is not None:
            lo, hi = band
            if req.price is not None and not (lo <= req.price <= hi):
                return RejectReason.PRICE_OUT_OF_LIMIT, f"price {req.price} outside daily limits [{lo}, {hi}]"
            if req.side is Side.BUY and not book.asks and book.bids and book.bids[0][0] >= hi:
                return RejectReason.LIMIT_LOCKED, f"limit-up at {hi}: no sellers"
            if req.side is Side.SELL and not book.bids and book.asks and book.asks[0][0] <= lo:
                return RejectReason.LIMIT_LOCKED, f"limit-down at {lo}: no buyers"
        for reason, p in self.params.faults.reject_prob.items():
            if p and self._rng_orders.random() < p:
                return reason, f"injected {reason.value} (p={p})"
        return None

    def _check_offset(self, req: OrderRequest, book: Book) -> tuple[RejectReason, str] | None:
        """The venue's offset rule (``Venue.offsets``), then its position: a close of more than
        the account holds (less what working closes reserve) is refused, as CTP refuses it."""
        why = check_offset(self.venue, req.offset)
        if why is not None:
            return RejectReason.OFFSET_NOT_ALLOWED, why
        if self.venue.offsets == "none":
            return None
        why = self.two_sided.check(self.venue, req.account, req.instrument, req.side, req.offset, req.qty,
                                   self._trading_day(book.inst))
        return (RejectReason.POSITION_INSUFFICIENT, why) if why is not None else None

    @staticmethod
    def _crosses(side: Side, limit: Decimal | None, level_px: Decimal) -> bool:
        if limit is None:
            return True
        return level_px <= limit if side is Side.BUY else level_px >= limit

    def _available(self, book: Book, side: Side, limit: Decimal | None) -> int:
        levels = book.asks if side is Side.BUY else book.bids
        return sum(sz for px, sz in levels if self._crosses(side, limit, px))

    def _take(self, book: Book, side: Side, limit: Decimal | None, qty: int) -> list[tuple[int, Decimal]]:
        """Take up to ``qty`` from visible levels crossing ``limit``; returns (qty, price) pieces."""
        levels = book.asks if side is Side.BUY else book.bids
        out: list[tuple[int, Decimal]] = []
        for lvl in levels:
            if qty <= 0 or not self._crosses(side, limit, lvl[0]):
                break
            n = min(qty, lvl[1])
            if n > 0:
                out.append((n, lvl[0]))
                lvl[1] -= n
                qty -= n
        levels[:] = [lvl for lvl in levels if lvl[1] > 0]
        return out

    def _trading_day(self, inst: Instrument) -> Any:
        if not self.params.enforce_sessions:
            return None
        return instrument_session_state(self.venue, inst, self.clock.now_ns()).trading_day

    # ------------------------------------------------------------------ order entry
    def send(self, req: OrderRequest) -> OrderRequest:
        """Hand a new order to the venue; :meth:`answer` gives its reply. The two halves of
        :meth:`place`, as a networked venue has them (the write, then the answer): a gateway
        process placing several orders at once hands them all over before it reads any answer,
        so they reach their venues back to back whatever each venue then does with its order.
        Raises :class:`VenueDisconnected` (nothing sent) while disconnected."""
        if not self.connected():
            raise VenueDisconnected(f"{self.venue.code} disconnected")
        return req

    def answer(self, sent: OrderRequest) -> PlaceReply:
        """The venue's reply to an order handed over by :meth:`send`."""
        return self.place(sent)

    def place(self, req: OrderRequest) -> PlaceReply:
        """Process a new order; see the module docstring for the rules."""
        now = self.clock.now_ns()
        if not self.connected(now):
            raise VenueDisconnected(f"{self.venue.code} disconnected")
        latency = sample_latency_ns(self.params.ack_latency, self._rng_latency)
        if self._take_injection("drop_next", req.instrument):
            return PlaceReply([], latency, lost=True, unseen=True)
        if req.client_order_id in self.orders:  # the venue de-duplicates too
            o = self.orders[req.client_order_id]
            return PlaceReply([self._report(o, ExecReportKind.STATUS, text="duplicate client order id")], latency)
        book = self.books.get(req.instrument)
        self._order_seq += 1
        self._prio += 1
        o = SimOrder(OrderState(request=req), f"{self.venue.code}-O{self._order_seq}", self._prio)
        o.state.transition(OrderStatus.SUBMITTED)
        self.orders[req.client_order_id] = o
        if self.journal is not None:
            self.journal.append(["O", req.model_dump_json(), o.venue_order_id, o.priority])
        lost = self._take_injection("no_ack_next", req.instrument) is not None or bool(
            self.params.faults.no_ack_prob and self._rng_orders.random() < self.params.faults.no_ack_prob)
        inj = self._take_injection("reject_next", req.instrument) if book else None
        bad = (RejectReason(inj.get("reason", "VENUE_ERROR")), "injected reject") if inj else self._check(req, book)
        if bad is None and book is not None:
            bad = self._check_offset(req, book)
        if bad is not None:
            o.state.reject_reason = bad[0]
            o.state.transition(OrderStatus.REJECTED)
            return PlaceReply([self._report(o, ExecReportKind.REJECTED, reason=bad[0], text=bad[1])], latency, lost)
        assert book is not None
        o.trading_day = self._trading_day(book.inst)
        if self.journal is not None and o.trading_day is not None:
            self.journal.append(["D", req.client_order_id, o.trading_day.isoformat()])
        immediate = req.immediate
        fok = req.order_type is OrderType.FOK or req.tif is TimeInForce.FOK
        if fok and self._available(book, req.side, req.price) < req.qty:
            o.state.reject_reason = RejectReason.FOK_UNFILLABLE
            o.state.transition(OrderStatus.REJECTED)
            avail = self._available(book, req.side, req.price)
            return PlaceReply([self._report(o, ExecReportKind.REJECTED, reason=RejectReason.FOK_UNFILLABLE,
                                            text=f"only {avail} of {req.qty} available at {req.price}")], latency, lost)
        o.state.transition(OrderStatus.ACCEPTED)
        if self.venue.offsets != "none":  # a close reserves the lots it may take
            self.two_sided.freeze(self.venue, req.client_order_id, req.account, req.instrument, req.side, req.offset,
                                  req.qty, o.trading_day)
        reports = [self._report(o, ExecReportKind.ACK)]
        after: list[ExecutionReport] = []
        want = req.qty
        part = self._take_injection("partial_fill_next", req.instrument)
        if part is not None:
            want = min(want, int(part.get("qty", 1)))
        elif not fok and self.params.faults.partial_fill_prob and req.qty > 1 and \
                self._rng_orders.random() < self.params.faults.partial_fill_prob:
            want = self._rng_orders.randint(1, req.qty - 1)
        for n, px in self._take(book, req.side, req.price, want):
            after.append(self._fill(o, n, px))
        if o.state.leaves_qty > 0:
            if immediate:
                o.state.transition(OrderStatus.CANCELED)
                after.append(self._report(o, ExecReportKind.CANCELED, text="IOC remainder"))
            else:
                if self.params.queue_model == "queue" and req.price is not None:
                    own = book.bids if req.side is Side.BUY else book.asks
                    o.queue_ahead = sum(sz for p, sz in own if p == req.price)  # joins the back
                book.resting.append(o)
        delay = self._take_injection("delay_fills", req.instrument)
        if delay is not None and after:
            due = now + latency + int(float(delay.get("ms", 0)) * _MS)
            for r in after:
                self._schedule(due, r)
            after = []
        return PlaceReply(reports + after, latency, lost)

    def cancel(self, client_order_id: str) -> tuple[ExecutionReport | None, int]:
        """Cancel a live order. Returns the report (None if the venue never saw the order) and the latency."""
        now = self.clock.now_ns()
        if not self.connected(now):
            raise VenueDisconnected(f"{self.venue.code} disconnected")
        latency = sample_latency_ns(self.params.ack_latency, self._rng_latency)
        o = self.orders.get(client_order_id)
        if o is None:
            return None, latency
        if o.state.status.is_terminal:
            return self._report(o, ExecReportKind.CANCEL_REJECTED, reason=RejectReason.TOO_LATE_TO_CANCEL,
                                text=f"order is {o.state.status.value}", status=o.state.status), latency
        inj = self._take_injection("reject_cancel_next", o.req.instrument)
        if inj is not None:
            return self._report(o, ExecReportKind.CANCEL_REJECTED,
                                reason=RejectReason(inj.get("reason", "TOO_LATE_TO_CANCEL")),
                                text="injected cancel reject"), latency
        book = self.books[o.req.instrument]
        leaves = o.state.leaves_qty
        o.state.transition(OrderStatus.CANCELED)
        if o in book.resting:
            book.resting.remove(o)
        rep = self._report(o, ExecReportKind.CANCELED)
        late = self._take_injection("late_fill_after_cancel", o.req.instrument)
        if late is not None and leaves > 0:
            qty = min(int(late.get("qty", leaves)), leaves)
            px = o.req.price if o.req.price is not None else (book.last or Decimal(1))
            fill_rep = self._fill(o, qty, px)
            self._schedule(now + latency + int(float(late.get("delay_ms", 1)) * _MS), fill_rep)
        return rep, latency

    def restore(self, records: Iterable[list[Any]]) -> dict[str, int]:
        """Rebuild the venue's memory from its journal: orders with their fills and states, the
        drop copy, resting orders and sequence numbers. Returns counts (orders, fills, live,
        unreadable records). The books' market liquidity is not restored: the feed brings it."""
        import datetime as _dt

        counts = {"orders": 0, "fills": 0, "live": 0, "unreadable": 0}
        for rec in records:
            try:
                tag = rec[0]
                if tag == "O":
                    req = OrderRequest.model_validate_json(rec[1])
                    o = SimOrder(OrderState(request=req, status=OrderStatus.SUBMITTED), rec[2], int(rec[3]))
                    self.orders[req.client_order_id] = o
                    self._order_seq += 1
                    self._prio = max(self._prio, o.priority)
                    counts["orders"] += 1
                elif tag == "D":
                    self.orders[rec[1]].trading_day = _dt.date.fromisoformat(rec[2])
                elif tag == "R":
                    row = rec[1]
                    self.drop_copy_log.append(row)
                    o = self.orders[row["client_order_id"]]
                    st = o.state
                    if row["trade_id"] and row["trade_id"] not in st.trade_ids:
                        px = Decimal(row["fill_price"])
                        st.trade_ids.add(row["trade_id"])
                        st.filled_qty += int(row["fill_qty"])
                        st.notional_filled += px * int(row["fill_qty"])
                        counts["fills"] += 1
                        n = row["trade_id"].rsplit("-T", 1)[-1]
                        if n.isdigit():
                            self._trade_seq = max(self._trade_seq, int(n))
                    st.status = OrderStatus(row["status"])  # the venue's word, as recorded
                    if row.get("reason"):
                        st.reject_reason = RejectReason(row["reason"])
                else:
                    counts["unreadable"] += 1
            except (KeyError, IndexError, TypeError, ValueError):
                counts["unreadable"] += 1
        if self.venue.offsets != "none":
            self._restore_positions(counts)
        for o in sorted(self.orders.values(), key=lambda o: o.priority):
            if o.state.status.is_live and o.state.leaves_qty > 0:
                counts["live"] += 1
                book = self.books.get(o.req.instrument)
                if book is not None and not o.req.immediate:
                    book.resting.append(o)
        return counts

    def _restore_positions(self, counts: dict[str, int]) -> None:
        """Two-sided positions from the restored fills, in the order they happened, then the
        reservations of the close orders still working."""
        for row in self.drop_copy_log:
            o = self.orders.get(row.get("client_order_id", ""))
            if o is None or not row.get("fill_qty"):
                continue
            r = o.req
            try:
                self.two_sided.fill(self.venue, None, r.account, r.instrument, r.side, r.offset, int(row["fill_qty"]),
                                    o.trading_day)
            except OffsetError:
                counts["unreadable"] += 1
        for o in sorted(self.orders.values(), key=lambda o: o.priority):
            r = o.req
            if o.state.status.is_live and o.state.leaves_qty > 0:
                try:
                    self.two_sided.freeze(self.venue, r.client_order_id, r.account, r.instrument, r.side, r.offset,
                                          o.state.leaves_qty, o.trading_day)
                except OffsetError:
                    counts["unreadable"] += 1

    def account_reading(self) -> dict[str, dict[str, Any]]:
        """The venue's figures per account of ``params.accounts``, as a broker reads them out:
        ``equity`` (capital + the P&L of every fill here, average cost, marked at the book's mid,
        less the venue's fees), ``margin`` (each position's notional at the mid times its margin
        rate, on the lots ``Venue.margin_rule`` charges), ``available`` (equity - margin) and
        ``currency``. An ``account_skew`` injection offsets equity and available. ``{}`` when
        no account is listed."""
        accs = self.params.accounts
        if not accs:
            return {}
        pnl = PnlBook({i: b.inst for i, b in self.books.items()}, lambda a, b: None, "XXX")
        for row in self.drop_copy_log:
            o = self.orders.get(row.get("client_order_id", ""))
            if o is None or not row.get("trade_id") or o.req.account not in accs:
                continue
            r = o.req
            pnl.trade(account=r.account, strategy="", pair="", instrument=r.instrument, side=r.side,
                      qty=int(row["fill_qty"]), price=Decimal(row["fill_price"]), offset=row.get("offset") or None)
        mids: dict[str, Decimal] = {}
        for i, b in self.books.items():
            q = b.quote
            if q is not None and q.mid is not None and q.mid > 0:
                mids[i] = q.mid
                pnl.mark(i, q.mid, 0)
        held = pnl.positions()
        # margin as the risk guard counts it (core/capital.py): the venue's rule, at its mids
        pool = CapitalPool([Account(id=acc, broker="sim", venues=(self.venue.code,), currency=a.currency, capital=a.capital)
                            for acc, a in accs.items()], {i: b.inst for i, b in self.books.items()},
                           lambda x, y: None, "XXX", {self.venue.code: self.venue})
        marks = PositionBook()
        for i, m in mids.items():
            marks.mark(i, m, 0)
        for (acc, inst_id), (long, short) in held.items():
            marks.account.setdefault(acc, {})[inst_id] = long - short
        if self.venue.offsets != "none":
            pool.two_sided = {k: v for k, v in held.items() if v[0] or v[1]}
        margins = pool.computed_margin(marks)
        out: dict[str, dict[str, Any]] = {}
        for acc, a in accs.items():
            total, _ = pnl.account_pnl(acc, a.currency)
            margin = margins.get(acc, Decimal(0))
            equity = a.capital + total + self._account_skew.get(acc, Decimal(0))
            out[acc] = {"equity": str(equity), "margin": str(margin), "available": str(equity - margin),
                        "currency": a.currency, "ts_ns": self.clock.now_ns()}
        return out

    def two_sided_positions(self) -> dict[str, dict[str, object]]:
        """The venue's own long/short, today/yesterday, frozen per account and instrument."""
        return self.two_sided.snapshot()

    def two_sided_reading(self) -> dict[str, Any]:
        """The positions (:meth:`two_sided_positions`) with, read at the same moment, the lots
        filled of every order that works or has filled (``order_fills``) and the accounts the
        reading speaks for: a restarted coordinator counts each order's later fills from there."""
        fills = {c: o.state.filled_qty for c, o in self.orders.items()
                 if o.state.filled_qty or o.state.status.is_live}
        accounts = set(self.params.accounts) | {o.req.account for o in self.orders.values()} | \
            {a for a, _ in self.two_sided.positions}
        return {"positions": self.two_sided_positions(), "order_fills": fills, "accounts": sorted(accounts)}

    def query(self, client_order_id: str) -> ExecutionReport | None:
        o = self.orders.get(client_order_id)
        return None if o is None else self._report(o, ExecReportKind.STATUS)

    def executions(self, client_order_id: str) -> list[ExecutionReport]:
        """Every fill the venue made for an order, as FILL reports in venue order (what a venue's
        trade query or drop copy gives): the gateway asks when a status answer reveals fills it
        never heard of (their answer was lost), so that each one reaches the trail with its
        trade id, not only as a cumulative quantity."""
        o = self.orders.get(client_order_id)
        if o is None:
            return []
        req, out = o.req, []
        for row in self.drop_copy_log:
            if row.get("client_order_id") != client_order_id or not row.get("trade_id"):
                continue
            fill = Fill(trade_id=row["trade_id"], client_order_id=client_order_id, venue_order_id=o.venue_order_id,
                        instrument=req.instrument, side=req.side, qty=int(row["fill_qty"]),
                        price=Decimal(row["fill_price"]), ts_ns=int(row.get("venue_ts_ns") or row["ts_ns"]))
            out.append(ExecutionReport(
                kind=ExecReportKind.FILL, client_order_id=client_order_id, venue_order_id=o.venue_order_id,
                venue=self.venue.code, instrument=req.instrument, status=OrderStatus(row["status"]),
                filled_qty=int(row["filled_qty"]), leaves_qty=int(row["leaves_qty"]), fill=fill,
                text="execution recovered from the venue", venue_ts_ns=int(row.get("venue_ts_ns") or 0),
                decision_id=req.decision_id, leg=req.leg))
        return out

    def recovered_orders(self) -> list[tuple[OrderRequest, ExecutionReport]]:
        """Every order the venue holds from before a restart (:meth:`restore`), with its STATUS,
        in the order the venue received them."""
        if not self.restored:
            return []
        return [(o.req, self._report(o, ExecReportKind.STATUS, text="venue state after gateway restart"))
                for o in sorted(self.orders.values(), key=lambda o: o.priority)]

    def open_orders(self) -> list[ExecutionReport]:
        return [self._report(o, ExecReportKind.STATUS) for o in self.orders.values() if o.state.status.is_live]

    def positions(self) -> dict[str, dict[str, int]]:
        """Net filled lots per account and instrument, as the venue's books hold them (BUY +, SELL -).

        Counts every fill the venue made, including one whose report is still on its way (a
        fill after a confirmed cancel): it is the venue's word, not the gateway's view.
        """
        out: dict[str, dict[str, int]] = {}
        for o in self.orders.values():
            q = o.state.filled_qty
            if q:
                acc = out.setdefault(o.req.account, {})
                acc[o.req.instrument] = acc.get(o.req.instrument, 0) + q * o.req.side.sign
        return {a: {i: q for i, q in p.items() if q} for a, p in out.items() if any(p.values())}

    def drop_copy(self, since_ns: int = 0) -> list[dict[str, Any]]:
        """The venue's authoritative record of every order event and fill since ``since_ns`` (true time)."""
        return [d for d in self.drop_copy_log if d["ts_ns"] >= since_ns]

    # ------------------------------------------------------------------ market data
    def on_market(self, q: Quote, *, publish: bool = True) -> tuple[list[ExecutionReport], list[dict[str, Any]]]:
        """Apply one market quote (true time). Returns resting-order reports and wire messages.

        The wire messages are what the venue publishes (dicts, see :func:`wire_quote`): none
        when dropped or disconnected, two when a held-back (reordered) message is released.
        ``publish=False``: the book and the resting orders only, no wire message (the execution
        lab delivers the quote itself, after its own market-data latency).
        """
        book = self.books.get(q.instrument)
        if book is None:
            return [], []
        book.replace(q, self.params.default_depth)
        if q.last is not None:
            book.last = q.last
        if q.settlement is not None:
            book.settlement = q.settlement
        book.quote = q
        reports = self._expire(book) + self._match_resting(book) if book.resting else []
        book.seq += 1
        if not publish:
            return (self._deliver(reports) if reports else reports), []
        # the venue published this a network latency ago: the gateway receives it "now"
        sent = self.clock.now_ns() - sample_latency_ns(self.params.network_latency, self._rng_md)
        msg = wire_quote(book, self.venue_clock.at(sent))
        if not self.connected():
            return self._deliver(reports), []
        f = self.params.faults
        if self._take_injection("drop_md_next", q.instrument) or (f.md_drop_prob and self._rng_md.random() < f.md_drop_prob):
            return self._deliver(reports), []
        held = self._held_md.pop(q.instrument, None)
        if held is not None:
            return self._deliver(reports), [msg, held]
        if self._take_injection("reorder_md_next", q.instrument) or (
                f.md_reorder_prob and self._rng_md.random() < f.md_reorder_prob):
            self._held_md[q.instrument] = msg
            return self._deliver(reports), []
        return self._deliver(reports), [msg]

    def _deliver(self, reports: list[ExecutionReport]) -> list[ExecutionReport]:
        if self.connected():
            return reports
        for r in reports:
            self._schedule(self.clock.now_ns(), r)
        return []

    def clock_probe(self) -> tuple[int, int, int, int]:
        """One NTP-style round trip: (t1 local send, t2 venue receive, t3 venue send, t4 local receive).

        Network delays are drawn from ``network_latency`` (seeded); nothing waits.
        """
        t1 = self.clock.now_ns()
        d1 = sample_latency_ns(self.params.network_latency, self._rng_md)
        d2 = sample_latency_ns(self.params.network_latency, self._rng_md)
        t2 = self.venue_clock.at(t1 + d1)
        t3 = t2 + 1_000  # 1 us of venue processing
        return t1, t2, t3, t1 + d1 + 1_000 + d2

    def snapshot(self, instrument: str) -> dict[str, Any] | None:
        """The current book of ``instrument`` as a wire snapshot (for gap recovery)."""
        book = self.books.get(instrument)
        if book is None or book.quote is None or not self.connected():
            return None
        msg = wire_quote(book, self.venue_clock.now_ns())
        msg["type"] = "snapshot"
        return msg

    def _expire(self, book: Book) -> list[ExecutionReport]:
        if not self.params.enforce_sessions or not book.resting:
            return []
        td = instrument_session_state(self.venue, book.inst, self.clock.now_ns()).trading_day
        if td is None:
            return []
        out = []
        for o in list(book.resting):
            if o.req.tif is TimeInForce.DAY and o.trading_day is not None and td != o.trading_day:
                o.state.transition(OrderStatus.EXPIRED)
                book.resting.remove(o)
                out.append(self._report(o, ExecReportKind.EXPIRED, text=f"day order of {o.trading_day} expired"))
        return out

    def _match_resting(self, book: Book) -> list[ExecutionReport]:
        if not book.resting:
            return []
        out: list[ExecutionReport] = []
        for side in (Side.BUY, Side.SELL):
            mine = [o for o in book.resting if o.req.side is side]
            if not mine:
                continue
            # price-time priority: best limit first, then the oldest
            mine.sort(key=lambda o: ((-o.req.price if side is Side.BUY else o.req.price)
                                     if o.req.price is not None else Decimal(0), o.priority))
            for o in mine:
                px = o.req.price
                if px is None:
                    continue
                if self.params.queue_model == "queue":
                    rep = self._match_queued(book, o, side, px)
                    if rep is not None:
                        out.append(rep)
                        if o.state.status is OrderStatus.FILLED:
                            book.resting.remove(o)
                    continue
                last = book.quote.last if book.quote is not None else None
                through = last is not None and (last < px if side is Side.BUY else last > px)
                avail = self._available(book, side, px)
                if through:
                    qty = o.state.leaves_qty
                else:
                    qty = min(o.state.leaves_qty, avail)
                if qty <= 0:
                    continue
                if self.params.faults.partial_fill_prob and qty > 1 and \
                        self._rng_orders.random() < self.params.faults.partial_fill_prob:
                    qty = self._rng_orders.randint(1, qty - 1)
                self._take(book, side, px, qty)
                out.append(self._fill(o, qty, px))
                if o.state.status is OrderStatus.FILLED:
                    book.resting.remove(o)
        return out


    def _match_queued(self, book: Book, o: SimOrder, side: Side, px: Decimal) -> ExecutionReport | None:
        """Queue model: one resting order against the market quote just applied.

        The feed is the market without us, so our order's place in the queue at its price is
        read from what the market shows there (conservatively: a level that shrinks shrank ahead
        of us, one that grows grew behind us):

        * the queue ahead of it can only shrink: to what the market still shows at its price on
          its side (trades and cancellations ahead), to nothing when that level is gone;
        * the market trading through its price (``last`` beyond it) fills it whole;
        * opposite liquidity strictly better than its price trades with it;
        * opposite liquidity *at* its price (the queue there used up, or a locked market) trades
          with what is left of the queue ahead first, and only the rest reaches this order.
        """
        buy = side is Side.BUY
        own = book.bids if buy else book.asks
        opp = book.asks if buy else book.bids
        shown = sum(sz for p, sz in own if p == px)
        o.queue_ahead = min(o.queue_ahead, shown)
        leaves = o.state.leaves_qty
        last = book.quote.last if book.quote is not None else None
        if last is not None and (last < px if buy else last > px):
            qty = leaves
        else:
            qty = 0
            for lvl in opp:
                better = lvl[0] < px if buy else lvl[0] > px
                if better:
                    n = min(leaves - qty, lvl[1])
                    lvl[1] -= n
                    qty += n
                elif lvl[0] == px:
                    eaten = min(o.queue_ahead, lvl[1])
                    o.queue_ahead -= eaten
                    lvl[1] -= eaten
                    n = min(leaves - qty, lvl[1])
                    lvl[1] -= n
                    qty += n
                else:
                    break
                if qty >= leaves:
                    break
            opp[:] = [lvl for lvl in opp if lvl[1] > 0]
        if qty <= 0:
            return None
        return self._fill(o, qty, px)



def wire_message(kind: str, instrument: str, seq: int, ts_ns: int, bids: Any, asks: Any, last: Any,
                 settlement: Any) -> dict[str, Any]:
    """A book in the gateway's wire format (what its normaliser parses): ``kind`` quote or
    snapshot, levels best first as (price, size)."""
    return {
        "type": kind, "instrument": instrument, "seq": seq, "ts": ts_ns,
        "bid": bids[0][0] if bids else None, "bid_size": bids[0][1] if bids else 0,
        "ask": asks[0][0] if asks else None, "ask_size": asks[0][1] if asks else 0,
        "last": last, "settlement": settlement,
        # depth only when there is more than the top level
        "bids": [(p, s) for p, s in bids] if len(bids) > 1 else None,
        "asks": [(p, s) for p, s in asks] if len(asks) > 1 else None,
    }


def wire_quote(book: Book, venue_ts_ns: int) -> dict[str, Any]:
    """The simulated venue's wire message for its book."""
    q = book.quote
    msg = wire_message("quote", book.inst.id, book.seq, venue_ts_ns, book.bids, book.asks, book.last, book.settlement)
    msg["src_ts"] = q.ts_ns if q is not None else 0
    return msg
