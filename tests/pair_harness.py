"""A pure model of two venues and of the coordinator actor's plumbing, on a SimClock (no Ray).

Used by the pair state-machine tests: scripted scenarios and the property test. The venue model
follows the gateway contract of docs/architecture.md (``place`` returns ACK/REJECT first, then
immediate fills and the IOC remainder's CANCELED; ``cancel``; ``query``; pushed reports), and
can misbehave on request: rejects of every reason, partial fills, no acks, failed or silent
calls, latency, fills racing cancels, and fills reported after a confirmed cancel.

Calls from the coordinator to one venue arrive in the order they were sent (as Ray delivers
calls from one caller to one actor); answers and pushes come back in venue order.
"""
from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from xmc_actors.core.clock import SimClock
from xmc_actors.core.pair_fsm import (
    Cancel, CancelTimers, CoordinatorConfig, HaltStrategy, NotifyDone, PairBook, Place, Query, StartTimer,
)
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import (
    ExecReportKind, ExecutionReport, Fill, OrderRequest, OrderStatus, OrderType, RejectReason,
)

MS = 1_000_000
FAIL = object()   # the call failed (actor died / unavailable)
HANG = object()   # the call never answers (silent venue)


@dataclass
class Behaviour:
    """Probabilities of each venue behaviour (per order / per call)."""

    reject: float = 0.0
    reject_reasons: tuple[RejectReason, ...] = (RejectReason.PRICE_OUT_OF_LIMIT,)
    fill_now: float = 1.0          # of an accepted order: fill (some or all) in the place answer
    partial: float = 0.0           # a fill is partial
    rest_fill: float = 0.0         # a resting order fills later (pushed)
    no_ack: float = 0.0            # place answers [] (the order rests, nobody said so)
    fail: float = 0.0              # a call fails (outcome unknown; the venue may have acted)
    hang: float = 0.0              # a call never answers
    late_fill: float = 0.0         # after a confirmed cancel, a fill is still reported
    latency_ms: tuple[float, float] = (0.1, 0.1)
    silent_after_ms: float | None = None  # from then on, every call hangs


@dataclass
class VOrder:
    req: OrderRequest
    status: OrderStatus
    filled: int = 0
    late: int = 0
    notional: Decimal = Decimal(0)
    trades: list[str] = field(default_factory=list)
    arrived_ns: int = 0


class FakeVenue:
    def __init__(self, name: str, rng: random.Random, behaviour: Behaviour, harness: "Harness") -> None:
        self.name, self.rng, self.b, self.h = name, rng, behaviour, harness
        self.orders: dict[str, VOrder] = {}
        self.by_leg: dict[tuple[str, str], list[VOrder]] = {}  # (decision id, leg) -> its orders, in arrival order
        self.trade_seq = itertools.count(1)
        self.violations: list[str] = []
        self.last_in_ns = 0
        self.last_out_ns = 0

    # -- helpers ---------------------------------------------------------------------------
    def lat(self) -> int:
        lo, hi = self.b.latency_ms
        return int(self.rng.uniform(lo, hi) * MS)

    def silent(self) -> bool:
        s = self.b.silent_after_ms
        return s is not None and self.h.clock.now_ns() >= self.h.t0 + int(s * MS)

    def rep(self, o: VOrder, kind: ExecReportKind, status: OrderStatus, **kw: Any) -> ExecutionReport:
        return ExecutionReport(kind=kind, client_order_id=o.req.client_order_id, venue_order_id=f"v-{o.req.client_order_id}",
                               venue=self.name, instrument=o.req.instrument, status=status, filled_qty=o.filled,
                               leaves_qty=max(o.req.qty - o.filled, 0) if status.is_live else 0,
                               ts_ns=self.h.clock.now_ns(), decision_id=o.req.decision_id, leg=o.req.leg, **kw)

    def fill(self, o: VOrder, qty: int, late: bool = False) -> ExecutionReport:
        px = o.req.price or Decimal(1)
        o.filled += qty
        o.notional += px * qty
        if late:
            o.late += qty
        tid = f"{self.name}-t{next(self.trade_seq)}"
        o.trades.append(tid)
        self.h.trades[tid] = o.req.client_order_id
        if not late:
            o.status = OrderStatus.FILLED if o.filled >= o.req.qty else OrderStatus.PARTIALLY_FILLED
        f = Fill(trade_id=tid, client_order_id=o.req.client_order_id, venue_order_id=f"v-{o.req.client_order_id}",
                 instrument=o.req.instrument, side=o.req.side, qty=qty, price=px, ts_ns=self.h.clock.now_ns())
        return self.rep(o, ExecReportKind.FILL, o.status if not late else OrderStatus.FILLED if o.filled >= o.req.qty
                        else OrderStatus.PARTIALLY_FILLED, fill=f)

    def some(self, left: int) -> int:
        return left if (left <= 1 or self.rng.random() >= self.b.partial) else self.rng.randint(1, left - 1)

    def live_for_leg(self, req: OrderRequest) -> list[str]:
        return [o.req.client_order_id for o in self.by_leg.get((req.decision_id, req.leg), ())
                if o.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)]

    # -- the contract ----------------------------------------------------------------------
    def place(self, req: OrderRequest) -> Any:
        if self.silent():
            return HANG
        acts = self.rng.random() >= 0.5
        fate = self.rng.random()
        if fate < self.b.hang:
            if acts:
                self._place(req)
            return HANG
        if fate < self.b.hang + self.b.fail:
            if acts:
                self._place(req)
            return FAIL
        return self._place(req)

    def _place(self, req: OrderRequest) -> list[ExecutionReport]:
        coid = req.client_order_id
        if coid in self.orders:
            o = self.orders[coid]
            return [self.rep(o, ExecReportKind.STATUS, o.status, avg_price=(o.notional / o.filled) if o.filled else None)]
        live = self.live_for_leg(req)
        if live:
            self.violations.append(f"{coid} placed while {live} still live on the same leg")
        o = VOrder(req, OrderStatus.SUBMITTED, arrived_ns=self.h.clock.now_ns())
        self.orders[coid] = o
        self.by_leg.setdefault((req.decision_id, req.leg), []).append(o)
        self.h.placed.append((self.h.clock.now_ns(), req))
        if self.rng.random() < self.b.reject:
            o.status = OrderStatus.REJECTED
            return [self.rep(o, ExecReportKind.REJECTED, OrderStatus.REJECTED, reason=self.rng.choice(self.b.reject_reasons))]
        o.status = OrderStatus.ACCEPTED
        out = [self.rep(o, ExecReportKind.ACK, OrderStatus.ACCEPTED)]
        if self.rng.random() < self.b.fill_now:
            out.append(self.fill(o, self.some(o.req.qty)))
        ioc = req.order_type in (OrderType.IOC, OrderType.FOK)
        if ioc and o.status is not OrderStatus.FILLED:
            o.status = OrderStatus.CANCELED
            out.append(self.rep(o, ExecReportKind.CANCELED, OrderStatus.CANCELED))
            if self.rng.random() < self.b.late_fill:
                self.h.later(self, self.lat() + self.lat(), lambda: self._late(o))
        elif not ioc and o.status is not OrderStatus.FILLED and self.rng.random() < self.b.rest_fill:
            self.h.later(self, self.lat() * 3 + int(self.rng.uniform(0, 5) * MS), lambda: self._rest_fill(o))
        if self.rng.random() < self.b.no_ack:
            return []
        return out

    def _rest_fill(self, o: VOrder) -> list[ExecutionReport]:
        if o.status not in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            return []
        out = [self.fill(o, self.some(o.req.qty - o.filled))]
        if o.status is not OrderStatus.FILLED and self.rng.random() < self.b.rest_fill:
            self.h.later(self, self.lat() * 3, lambda: self._rest_fill(o))
        return out

    def _late(self, o: VOrder) -> list[ExecutionReport]:
        left = o.req.qty - o.filled
        if left <= 0 or o.status is not OrderStatus.CANCELED:
            return []
        self.h.late_fills += 1
        return [self.fill(o, self.rng.randint(1, left), late=True)]

    def cancel(self, coid: str) -> Any:
        if self.silent():
            return HANG
        fate = self.rng.random()
        if fate < self.b.hang + self.b.fail:
            acts = self.rng.random() >= 0.5
            if acts:
                self._cancel(coid)
            return HANG if fate < self.b.hang else FAIL
        return self._cancel(coid)

    def _cancel(self, coid: str) -> ExecutionReport:
        o = self.orders.get(coid)
        if o is None:
            return ExecutionReport(kind=ExecReportKind.CANCEL_REJECTED, client_order_id=coid, venue=self.name,
                                   instrument="", status=OrderStatus.REJECTED, reason=RejectReason.UNKNOWN_ORDER)
        if o.status not in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            return self.rep(o, ExecReportKind.CANCEL_REJECTED, o.status, reason=RejectReason.TOO_LATE_TO_CANCEL)
        o.status = OrderStatus.CANCELED
        if self.rng.random() < self.b.late_fill:
            self.h.later(self, self.lat() + self.lat(), lambda: self._late(o))
        return self.rep(o, ExecReportKind.CANCELED, OrderStatus.CANCELED)

    def query(self, coid: str) -> Any:
        if self.silent():
            return HANG
        fate = self.rng.random()
        if fate < self.b.hang:
            return HANG
        if fate < self.b.hang + self.b.fail:
            return FAIL
        o = self.orders.get(coid)
        if o is None:
            return None
        return self.rep(o, ExecReportKind.STATUS, o.status, avg_price=(o.notional / o.filled) if o.filled else None)

    # -- truth -----------------------------------------------------------------------------
    def net(self, decision_id: str, leg: str, side_of_leg: Any) -> int:
        n = 0
        for o in self.by_leg.get((decision_id, leg), ()):
            n += o.filled if o.req.side is side_of_leg else -o.filled
        return n


class _TimerFire:
    """A timer armed by :class:`StartTimer` in the harness queue (dropped if its pair cancels it)."""

    __slots__ = ("h", "decision_id", "key", "tok")

    def __init__(self, h: "Harness", decision_id: str, key: str, tok: int) -> None:
        self.h, self.decision_id, self.key, self.tok = h, decision_id, key, tok

    def cancelled(self) -> bool:
        return self.tok not in self.h.armed.get(self.decision_id, ())

    def __call__(self) -> None:
        self.h._fire(self.decision_id, self.key, self.tok)


class Harness:
    """Drives a :class:`PairBook` with two fake venues; executes its commands like the actor does."""

    def __init__(self, instruments: dict, behaviours: dict[str, Behaviour], seed: int = 0,
                 config: CoordinatorConfig | None = None, checker: Any = None, venues: Any = None) -> None:
        self.rng = random.Random(seed)
        self.clock = SimClock()
        self.t0 = self.clock.now_ns()
        self.sink = MemorySink()
        self.config = config or CoordinatorConfig(call_timeout_ms=50, ack_timeout_ms=20, cancel_timeout_ms=20,
                                                  query_backoff_ms=5)
        self.book = PairBook(instruments, self.clock, checker=checker, config=self.config, owner="coord", event_node=1,
                             venues=venues, sink=self.sink)
        self.venues = {v: FakeVenue(v, random.Random(self.rng.random()), b, self) for v, b in behaviours.items()}
        self.queue: list[tuple[int, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.done: list[dict] = []
        self.halts: list[HaltStrategy] = []
        self.placed: list[tuple[int, OrderRequest]] = []
        self.trades: dict[str, str] = {}
        self.late_fills = 0
        self.steps = 0
        self.armed: dict[str, dict[int, str]] = {}  # per pair: token -> key of each timer armed, until it fires
        self.timers_cancelled: list[str] = []  # keys of the timers CancelTimers dropped

    # -- scheduling ------------------------------------------------------------------------
    def at(self, t: int, fn: Callable[[], None]) -> None:
        heapq.heappush(self.queue, (t, next(self.seq), fn))

    def later(self, venue: FakeVenue, delay: int, make_reports: Callable[[], list[ExecutionReport]]) -> None:
        """A venue-side event; its reports are pushed to the coordinator in venue order."""
        def fire() -> None:
            reps = make_reports()
            if reps:
                t = max(self.clock.now_ns() + venue.lat(), venue.last_out_ns)
                venue.last_out_ns = t
                self.at(t, lambda: self.run(self.book.on_reports(reps)))
        self.at(self.clock.now_ns() + delay, fire)

    def call(self, venue: FakeVenue, do: Callable[[], Any], ok: Callable[[Any], list], failed: Callable[[str], list]) -> None:
        """One gateway call: FIFO arrival, venue answer after latency, actor-side timeout."""
        state = {"answered": False}
        t_in = max(self.clock.now_ns() + venue.lat(), venue.last_in_ns)
        venue.last_in_ns = t_in

        def answer(result: Any) -> None:
            if state["answered"]:
                return
            state["answered"] = True
            self.run(failed("ActorDiedError") if result is FAIL else ok(result))

        def timeout() -> None:
            if not state["answered"]:
                state["answered"] = True
                self.run(failed("timeout"))

        def arrive() -> None:
            result = do()
            if result is HANG:
                return
            t_out = max(self.clock.now_ns() + venue.lat(), venue.last_out_ns)
            venue.last_out_ns = t_out
            self.at(t_out, lambda: answer(result))

        self.at(t_in, arrive)
        self.at(self.clock.now_ns() + self.config.call_timeout_ms * MS, timeout)

    # -- the actor's command loop ------------------------------------------------------------
    def run(self, commands: list) -> None:
        b = self.book
        for c in commands:
            if isinstance(c, Place):
                v, req = self.venues[c.venue], c.req
                self.call(v, lambda v=v, req=req: v.place(req),
                          lambda r, coid=req.client_order_id: b.on_place_result(coid, r),
                          lambda e, coid=req.client_order_id: b.on_call_failed(coid, "place", e))
            elif isinstance(c, Cancel):
                v = self.venues[c.venue]
                self.call(v, lambda v=v, coid=c.client_order_id: v.cancel(coid),
                          lambda r, coid=c.client_order_id: b.on_cancel_result(coid, r),
                          lambda e, coid=c.client_order_id: b.on_call_failed(coid, "cancel", e))
            elif isinstance(c, Query):
                v = self.venues[c.venue]
                self.call(v, lambda v=v, coid=c.client_order_id: v.query(coid),
                          lambda r, coid=c.client_order_id: b.on_query_result(coid, r),
                          lambda e, coid=c.client_order_id: b.on_call_failed(coid, "query", e))
            elif isinstance(c, StartTimer):
                tok = next(self.seq)
                self.armed.setdefault(c.decision_id, {})[tok] = c.key
                self.at(max(c.at_ns, self.clock.now_ns()), _TimerFire(self, c.decision_id, c.key, tok))
            elif isinstance(c, CancelTimers):
                self.timers_cancelled += sorted(str(k) for k in self.armed.pop(c.decision_id, {}).values())
            elif isinstance(c, NotifyDone):
                self.done.append(c.summary.to_wire())  # as it travels over Ray
            elif isinstance(c, HaltStrategy):
                self.halts.append(c)
            else:  # pragma: no cover
                raise TypeError(c)

    def _fire(self, decision_id: str, key: str, tok: int) -> None:
        del self.armed[decision_id][tok]
        self.run(self.book.on_timer(decision_id, key))

    def submit(self, intent: Any, liquidity: dict | None = None) -> dict:
        res, cmds = self.book.submit(intent, liquidity)
        self.run(cmds)
        return res

    def drain(self, max_steps: int = 20_000) -> None:
        while self.queue:
            t, _, fn = heapq.heappop(self.queue)
            if type(fn) is _TimerFire and fn.cancelled():
                continue  # gone, as a cancelled asyncio timer is: it does not move the clock either
            if t > self.clock.now_ns():
                self.clock.set(t)
            fn()
            self.steps += 1
            if self.steps > max_steps:
                raise AssertionError(f"no quiescence after {max_steps} steps (livelock?)")
