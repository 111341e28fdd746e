"""The gateway with an adapter that crosses a network (the FIX adapter's shape), without Ray
and without a socket: a simulated venue dressed as one.

A ``blocking`` adapter's place answers, cancels and status queries run off the event loop (the
loop keeps turning while they wait), the simulated venue's stay inline; a ``real_latency``
adapter's latency is not slept again; malformed input the adapter met is recorded as BAD_INPUT;
its session status shows in the gateway's; a STATUS pushed after a reconnect resolves an
UNKNOWN order; the gateway closes its adapter when it stops.
"""
from __future__ import annotations

import asyncio
import collections
import threading
import time

from testkit import instrument, order, quote, venue
from xmc_actors.actors.gateway import _Session
from xmc_actors.core.clock import SimClock
from xmc_actors.core.gateway_core import GatewayCore
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import EventKind, ExecReportKind, OrderStatus
from xmc_actors.model.config import DeploymentConfig, FeedConfig, GatewayConfig
from xmc_actors.model.orders import ExecutionReport
from xmc_actors.venues.sim import SimExchange
from xmc_actors.venues.sim_config import SimVenueParams

T0 = 1_735_808_400_000_000_000
WAIT_S = 0.2


class NetworkedSim(SimExchange):
    """The simulated venue, answering as a networked one would: each answer waits ``WAIT_S`` on
    the calling thread, and says so (``real_latency``)."""

    blocking = True
    real_latency = True

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.threads: list[str] = []
        self.closed = 0
        self.bad: list[dict] = []
        self.pushed: list[ExecutionReport] = []

    def _wait(self) -> None:
        self.threads.append(threading.current_thread().name)
        time.sleep(WAIT_S)

    def answer(self, ticket):
        self._wait()
        r = super().answer(ticket)
        r.latency_ns = int(WAIT_S * 1e9)
        return r

    def cancel(self, coid):
        self._wait()
        return super().cancel(coid)

    def query(self, coid):
        self._wait()
        return super().query(coid)

    def poll(self, now_ns=None):
        out, self.pushed = self.pushed + super().poll(now_ns), []
        return out

    def drain_bad_input(self):
        out, self.bad = self.bad, []
        return out

    def status(self):
        return {"kind": "fix", "logged_on": True, "next_sender_seq": 7, "next_target_seq": 9}

    def close(self):
        self.closed += 1


def _deployment() -> DeploymentConfig:
    return DeploymentConfig(
        name="blocking", venues=(venue("SHFE"),), instruments=(instrument("SHFE.cu"),),
        gateways=(GatewayConfig(venue="SHFE", params={"seed": 1, "enforce_sessions": False}, feed=FeedConfig()),),
    )


def _session(networked: bool) -> _Session:
    s = _Session(_deployment(), "SHFE", None, "system", False, collections.deque())
    if networked:
        sim = s.core.adapter
        net = NetworkedSim(sim.venue, list(s.core.instruments.values()), sim.params, s.clock)
        s.core = GatewayCore(s.core.venue, s.core.instruments.values(), net, s.clock, s.core.sink, name=s.name)
        s.blocking, s.real_latency = s.core.blocking, True
    s.core.on_market(quote("SHFE.cu", 72000, 72010, bid_size=5, ask_size=5, ts_ns=time.time_ns()))
    return s


async def _with_ticker(coro):
    """Run ``coro`` while a ticker counts loop turns every 10 ms: how long the loop was blocked."""
    turns = 0
    stop = False

    async def ticker():
        nonlocal turns
        while not stop:
            turns += 1
            await asyncio.sleep(0.01)

    t = asyncio.ensure_future(ticker())
    try:
        out = await coro
    finally:
        stop = True
        await t
    return out, turns


def test_a_blocking_adapters_place_cancel_and_query_run_off_the_event_loop():
    s = _session(networked=True)

    async def go():
        reps, turns_place = await _with_ticker(s.place(order("SHFE.cu", "BUY", 1, "71990")))
        rep, turns_cancel = await _with_ticker(s.cancel("d1:A:0"))
        st, turns_query = await _with_ticker(s.query("d1:A:0"))
        return reps, rep, st, (turns_place, turns_cancel, turns_query)

    t0 = time.monotonic()
    reps, rep, st, turns = asyncio.run(go())
    took = time.monotonic() - t0

    assert [r.kind for r in reps] == [ExecReportKind.ACK]
    assert rep.kind is ExecReportKind.CANCELED and st.status is OrderStatus.CANCELED
    assert all(n >= 5 for n in turns), f"the loop kept turning while the venue answered: {turns}"
    loop_thread = threading.main_thread().name
    assert s.core.adapter.threads and all(t != loop_thread for t in s.core.adapter.threads)
    # the latency the adapter waited for real is not slept again: three calls, about 3 x WAIT_S
    assert took < 3 * WAIT_S + 0.4


def test_a_duplicate_place_asks_the_blocking_venue_off_the_loop_too():
    s = _session(networked=True)

    async def go():
        await s.place(order("SHFE.cu", "BUY", 1, "72010"))
        return await _with_ticker(s.place(order("SHFE.cu", "BUY", 1, "72010")))

    (reps, turns) = asyncio.run(go())
    assert [r.kind for r in reps] == [ExecReportKind.STATUS] and reps[0].status is OrderStatus.FILLED
    assert "duplicate" in reps[0].text and turns >= 5


def test_the_simulated_venue_stays_inline_and_its_latency_is_slept():
    s = _session(networked=False)
    assert not s.blocking and not s.real_latency

    async def go():
        return await s.place(order("SHFE.cu", "BUY", 1, "72010"))

    reps = asyncio.run(go())
    assert [r.kind for r in reps] == [ExecReportKind.ACK, ExecReportKind.FILL]
    assert s._pool is None  # no thread hop for sim


def _core() -> tuple[GatewayCore, NetworkedSim, MemorySink]:
    clock, sink = SimClock(T0), MemorySink()
    p = SimVenueParams.model_validate({"seed": 5, "enforce_sessions": False})
    net = NetworkedSim(venue("SHFE"), [instrument("SHFE.cu")], p, clock)
    core = GatewayCore(venue("SHFE"), [instrument("SHFE.cu")], net, clock, sink, ack_timeout_ns=500_000_000)
    clock.advance(1_000)
    core.on_market(quote("SHFE.cu", 72000, 72010, bid_size=5, ask_size=5, ts_ns=clock.now_ns()))
    return core, net, sink


def test_malformed_input_the_adapter_met_is_bad_input_counted_by_reason():
    core, net, sink = _core()
    net.bad = [{"reason": "SESSION_REJECT_SENT", "detail": "Required tag missing", "tag": 39},
               {"reason": "UNKNOWN_ORDER", "detail": "report for ClOrdID 'x' we never sent", "tag": 0},
               {"reason": "UNKNOWN_ORDER", "detail": "again", "tag": 0}]

    core.tick()
    core.tick()

    assert core.status()["bad_input"] == {"SESSION_REJECT_SENT": 1, "UNKNOWN_ORDER": 2}
    bad = [e for e in sink.events if e.kind is EventKind.BAD_INPUT]
    assert [e.reason for e in bad] == ["SESSION_REJECT_SENT", "UNKNOWN_ORDER", "UNKNOWN_ORDER"]
    assert bad[0].payload["field"] == "tag 39"


def test_the_gateway_status_carries_the_adapters_session_status_and_close_reaches_it():
    core, net, _ = _core()
    assert core.status()["session"]["next_target_seq"] == 9
    core.close()
    assert net.closed == 1


def test_a_status_pushed_after_a_reconnect_resolves_an_unknown_order_and_its_fills_book_once():
    core, net, sink = _core()
    net.inject({"kind": "no_ack_next"})
    reps, _ = core.place(order("SHFE.cu", "BUY", 2, "72010", owner="coord"))
    assert reps[0].status is OrderStatus.UNKNOWN
    venue_fills = net.executions("d1:A:0")
    assert venue_fills and sum(r.fill.qty for r in venue_fills) == 2

    # on logon again the adapter asked; the venue's STATUS comes back pushed
    net.pushed = [net.query("d1:A:0")]
    core.tick()
    st = core.orders["d1:A:0"]
    assert st.status is OrderStatus.FILLED and core.counters["unknown_resolved"] == 1
    pushed = core.drain_pushes()["coord"]
    status = [r for r in pushed if r.kind is ExecReportKind.STATUS]
    assert len(status) == 1 and status[0].status is OrderStatus.FILLED
    # the executions whose answer was lost come with it, each once
    fills = [r for r in pushed if r.kind is ExecReportKind.FILL]
    assert sorted(r.fill.trade_id for r in fills) == sorted(r.fill.trade_id for r in venue_fills)

    # the venue's resend of the same fills after the gap fill: nothing booked twice
    net.pushed = list(venue_fills)
    core.tick()
    assert not core.drain_pushes().get("coord")
    drop = [e for e in sink.events if e.kind is EventKind.VENUE_DROP_COPY and e.payload["report"]["fill"]]
    assert len(drop) == len(venue_fills)
    assert st.filled_qty == 2


def test_a_resent_fill_after_a_status_showed_the_order_filled_is_counted_once():
    core, net, sink = _core()
    net.inject({"kind": "no_ack_next"})
    core.place(order("SHFE.cu", "BUY", 2, "72010"))
    st = core.orders["d1:A:0"]
    rep = net.query("d1:A:0")
    fill = net.executions("d1:A:0")[0]
    # a venue without an executions call: the status first, then the resent fill reports
    core.adapter.executions = lambda coid: []  # type: ignore[method-assign]
    net.pushed = [rep]
    core.tick()
    assert st.status is OrderStatus.FILLED and st.filled_qty == 0
    partial = fill.model_copy(update={"status": OrderStatus.PARTIALLY_FILLED, "filled_qty": 1, "leaves_qty": 1,
                                      "fill": fill.fill.model_copy(update={"qty": 1, "trade_id": "T-1"})})
    net.pushed = [partial, partial]
    core.tick()
    assert st.status is OrderStatus.FILLED and st.filled_qty == 1 and core.counters.get("unexpected_reports", 0) == 0
    assert core.counters["repeated_executions"] == 1
