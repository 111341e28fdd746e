"""The VenueGateway Ray actor: a thin async shell around :class:`~xmc_actors.core.gateway_core.GatewayCore`.

Construct it from a deployment and a gateway name::

    gw = VenueGateway.options(name=cfg.actor_name, namespace="xmc", max_restarts=3).remote(
        deployment, "SHFE", sink=ledger_client)

The contract (docs/architecture.md, "VenueGateway") in short: ``place`` returns the ACK or
REJECTED report then any immediate fills / IOC remainder; ``cancel``; ``query`` (None if the
venue never saw the order); ``register_owner`` for pushed reports (``on_reports``);
``subscribe`` for conflated quote batches; ``snapshot``, ``status``, ``drop_copy``.
Order methods are declared with ``max_task_retries=0``.

One actor may host several gateways (a *gateway group*: ``VenueGateway.remote(deployment,
["gateway-SHFE", "gateway-LME"])``), one venue session each; every method then takes
``gateway=`` to name the session, which a :class:`GatewayView` fills in, and
``place_many_wire`` places orders of several sessions in one call.

Driving the market data: ``start_feed()`` / ``stop_feed()`` run the configured feed in the
background (paced or as fast as possible); ``step(n)`` / ``run_until(ts_ns)`` drive a replay
deterministically; ``push_market(quotes)`` feeds quotes directly (scenario tests) and
``push_wire(messages)`` raw venue messages (bad-input tests). ``inject(fault)`` adds a
deterministic fault to the simulated venue (docs/architecture.md, "Simulated venue").
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from typing import Any

import ray

from ..core.clock import Clock, SimClock, SystemClock
from ..core.gateway_core import GatewayCore
from ..core.normalise import BadInput, BadInputReason
from ..core.sink import EventSink, MemorySink
from ..model.config import DeploymentConfig, GatewayConfig
from ..model.events import Event
from ..model.fastpickle import from_wire, to_wire
from ..model.names import actor_repr
from ..model.orders import ExecutionReport, OrderRequest
from ..model.quotes import Quote
from .metrics import Metrics, sample_gateway, start_flush_loop
from .peers import GatewayView, Peers, actor_of, find_gateway_view  # noqa: F401 - re-exported: callers import them from here

_MS = 1_000_000
_IDLE_TICK_S = 0.010  # gateway housekeeping period when nothing is due (was a fixed 2 ms)
_VENUE_THREADS = 32  # a blocking adapter's calls in flight at once per session (each waits <= ack_timeout_ms)


class PositionsUnavailable(RuntimeError):
    """A gateway cannot give the venue's own positions (see ``GatewayActor.positions``)."""


def find_gateway(deployment: DeploymentConfig, gateway: str) -> GatewayConfig:
    """The gateway of ``deployment`` named ``gateway`` (its actor name, name or venue code)."""
    for g in deployment.gateways:
        if gateway in (g.actor_name, g.name, g.venue):
            return g
    known = ", ".join(g.actor_name for g in deployment.gateways) or "none"
    raise KeyError(f"gateway {gateway!r} is not in deployment {deployment.name!r} (known: {known})")


def carried_accounts(deployment: DeploymentConfig, g: GatewayConfig) -> list[str]:
    """The deployment's accounts whose orders gateway ``g`` carries: those it lists, else every
    account trading its venue that no other gateway of the venue lists."""
    if g.accounts:
        return list(g.accounts)
    listed = {a for o in deployment.gateways if o.venue == g.venue and o is not g for a in o.accounts}
    return [a.id for a in deployment.accounts if g.venue in a.venues and a.id not in listed]


def build_core(deployment: DeploymentConfig | dict[str, Any], gateway: str, sink: EventSink,
               clock_mode: str | None = None, *, restart: bool = False) -> tuple[GatewayCore, Any, Clock]:
    """Build the core, its feed and its clock from configuration (no Ray).

    ``clock_mode``: ``"sim"`` (a SimClock the feed drives; the default for replay feeds) or
    ``"system"`` (wall clock; the default otherwise). ``restart``: this is a restarted gateway;
    the adapter reconnects to the venue's existing state (see :meth:`GatewayCore.reconcile`).
    """
    from ..feeds import build_feed
    from ..venues import build_adapter

    dep = deployment if isinstance(deployment, DeploymentConfig) else DeploymentConfig.model_validate(deployment)
    gcfg = find_gateway(dep, gateway)
    venue = dep.venue(gcfg.venue)
    insts = [i for i in dep.instruments if i.venue == gcfg.venue]
    mode = clock_mode or ("sim" if gcfg.feed.kind == "replay" else "system")
    if mode not in ("sim", "system"):
        raise ValueError(f"clock_mode must be 'sim' or 'system', got {clock_mode!r}")
    feed = build_feed(gcfg.feed, venue, insts)
    if mode == "sim":
        first = feed.peek_ts() if feed is not None else None
        clock: Clock = SimClock(first if first is not None else 1_700_000_000_000_000_000)
    else:
        clock = SystemClock()
        if feed is not None:
            feed.rebase(clock.now_ns())
    adapter, params = build_adapter(gcfg.adapter, gcfg.params, venue, insts, clock, gateway=gcfg.actor_name,
                                    restart=restart)
    set_accounts = getattr(adapter, "set_position_accounts", None)
    if set_accounts is not None:
        # an adapter that asks the broker for positions per account (FIX RequestForPositions)
        set_accounts(carried_accounts(dep, gcfg))
    core = GatewayCore(venue, insts, adapter, clock, sink, name=gcfg.actor_name,
                       ack_timeout_ns=int(params.ack_timeout_ms * _MS),
                       probe_interval_ns=int(params.probe_interval_ms * _MS),
                       max_past_ns=(10 ** 20 if mode == "sim" else 600_000 * _MS),
                       # a replay's events go on the trail in wall time, beside every other actor's
                       wall_clock=SystemClock() if mode == "sim" else None,
                       accounts=gcfg.accounts)
    return core, feed, clock


class _Session:
    """One venue session inside a gateway process: the core, its feed and clock, who its
    reports and quotes go to, and the housekeeping timer. Plain Python on the actor's event
    loop; :class:`VenueGateway` holds one per gateway it hosts."""

    def __init__(self, deployment: DeploymentConfig, gateway: str, sink: EventSink | None, clock_mode: str | None,
                 reconstructed: bool, arrivals: collections.deque[tuple[str, str, int]]) -> None:
        self._memory = MemorySink() if sink is None else None
        self.reconstructed = reconstructed
        self.core, self.feed, self.clock = build_core(deployment, gateway, sink or self._memory, clock_mode,
                                                      restart=reconstructed)
        self.name = self.core.name
        self.venue = self.core.venue.code
        # the venue's first gateway feeds the strategies and the risk guard; a further session
        # on the venue (another broker or account) carries orders only
        src = deployment.quote_sources().get(self.venue)
        self.quote_source = src is None or src.actor_name == self.name
        self.sim_clock = isinstance(self.clock, SimClock)
        # live: reply to place/cancel first, write their drop copies just after (timer / next call)
        self.core.defer_drop_copy = not self.sim_clock
        self.owners: dict[str, Any] = {}
        self._unclaimed: dict[str, list[ExecutionReport]] = {}
        self._subs: dict[str, tuple[Any, str]] = {}
        self._feed_task: asyncio.Task[None] | None = None
        self._timer_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # a restarted gateway takes back what the venue still holds (the orders of its previous
        # life) before anything else; their owners hear the outcome when they register again
        # (the coordinator does when its health probe sees the venue UP; see GatewayCore.reconcile)
        self.reconciled: dict[str, int] | None = self.core.reconcile() if reconstructed else None
        self.push_errors = 0
        self._arrivals = arrivals
        # an adapter whose calls wait on a network (FIX): place answers, cancels and status
        # queries run on this session's threads, never on the event loop the other sessions,
        # pushes and the timer share; the simulated venue answers inline, as before
        self.blocking = self.core.blocking
        # an adapter that waited for its answer for real (on a socket) reports how long it took;
        # sleeping it again, as the simulated venue's latency is slept, would wait twice
        self.real_latency = bool(getattr(self.core.adapter, "real_latency", False))
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._wake: asyncio.Event | None = None
        self.closed = False
        # what the replay loaders read, kept and skipped (with reasons), per file: in the ledger
        # (a LIFECYCLE event per file) and, through feed_reports(), in the run's summary
        self.feed_reports: list[dict[str, Any]] = [r.as_dict() for r in getattr(self.feed, "reports", None) or []]
        for r in self.feed_reports:
            reasons = ", ".join(f"{n} x {k}" for k, n in sorted(r["skipped_by_reason"].items()))
            self.lifecycle(f"replay file {r['path']}: {r['rows']} rows, {r['kept']} kept, {r['skipped']} skipped"
                           + (f" ({reasons})" if reasons else ""), feed_report=r)

    # ------------------------------------------------------------------ plumbing
    def _ensure_timer(self) -> None:
        if self._timer_task is None and not self.sim_clock:
            loop = asyncio.get_running_loop()
            set_waker = getattr(self.core.adapter, "set_waker", None)
            if set_waker is not None:
                # an adapter with its own threads (FIX) wakes the housekeeping when market data or
                # a pushed report arrives, rather than leaving it for the next period
                self._wake = asyncio.Event()
                wake = self._wake
                set_waker(lambda: loop.call_soon_threadsafe(wake.set))
            self._timer_task = loop.create_task(self._timer())

    async def _timer(self) -> None:
        while True:
            try:
                self.core.flush_drop_copy()
                self.core.tick()
                self._flush()
            except Exception:  # noqa: BLE001 - the timer must survive anything
                self.core.counters["timer_errors"] += 1
            if self._wake is None:
                await asyncio.sleep(self._timer_delay_s())
                continue
            self._wake.clear()
            delay = self._timer_delay_s()
            if delay <= 0.0005:  # something already due: go round after the shortest pause
                await asyncio.sleep(delay)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    def _timer_delay_s(self) -> float:
        """Housekeeping runs every ``_IDLE_TICK_S`` when nothing is due, sooner when the venue
        has a delayed report due (never later than it is due, never busier than 0.5 ms).
        Replies and their drop copies do not wait for it: calls flush on their own."""
        due_fn = getattr(self.core.adapter, "next_due_ns", None)
        due = due_fn() if due_fn is not None else None
        if due is None:
            return _IDLE_TICK_S
        return min(_IDLE_TICK_S, max(0.0005, (due - self.clock.now_ns()) / 1e9))

    def _flush(self) -> None:
        for owner, reps in self.core.drain_pushes().items():
            h = self.owners.get(owner)
            if h is None:
                self._unclaimed.setdefault(owner, []).extend(reps)
                continue
            try:
                h.on_reports.remote(reps)
            except Exception:  # noqa: BLE001
                self.push_errors += 1
        for sid in list(self._subs):
            self._pump(sid)

    def _pump(self, sid: str) -> None:
        batch = self.core.conflator.take(sid)
        if not batch:
            return
        handle, method = self._subs[sid]
        gen = self.core.conflator.generation(sid)
        try:
            ref = getattr(handle, method).remote(batch)
        except Exception:  # noqa: BLE001
            self._drop_sub(sid, gen)
            return
        t = asyncio.get_running_loop().create_task(self._await_batch(sid, gen, ref))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _await_batch(self, sid: str, gen: int | None, ref: Any) -> None:
        # a subscriber that restarts keeps its actor id, so its new subscription has this sid
        # too: the answer to a batch of its previous life (``gen``) must not touch the new one
        try:
            await ref
        except Exception:  # noqa: BLE001 - a dead or failing subscriber is dropped, not retried
            self.push_errors += 1
            self._drop_sub(sid, gen)
            return
        if self.core.conflator.done(sid, gen) and sid in self._subs:
            self._pump(sid)

    def _drop_sub(self, sid: str, gen: int | None) -> None:
        if self.core.conflator.remove(sid, gen):
            self._subs.pop(sid, None)
            self.core.counters["subscribers_dropped"] += 1

    def after_reply(self) -> None:
        """Drop copies of this call are written once its answer is on its way (next loop turn)."""
        if self.core.drop_copy_pending:
            asyncio.get_running_loop().call_later(0.0002, self.core.flush_drop_copy)

    async def wait(self, latency_ns: int) -> None:
        """Sleep the simulated venue's answer latency (live clock); an adapter that already
        waited on its socket (``real_latency``) is not waited for twice."""
        if latency_ns > 0 and not self.sim_clock and not self.real_latency:
            await asyncio.sleep(latency_ns / 1e9)

    async def off_loop(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on this session's venue threads (a blocking adapter's call)."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(_VENUE_THREADS, thread_name_prefix=f"{self.name}-venue")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        """The gateway stops: feed and timer stopped, the venue session closed (a FIX adapter's
        Logout; its store keeps the sequence numbers). Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self.stop_feed()
        if self._timer_task is not None:
            self._timer_task.cancel()
            self._timer_task = None
        try:
            self.core.flush_drop_copy()
        except Exception:  # noqa: BLE001 - closing goes on
            pass
        try:
            self.core.close()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    # ------------------------------------------------------------------ order entry
    def decode_order(self, data: bytes, what: str) -> OrderRequest:
        """One encoded :class:`OrderRequest`; anything else is recorded as BAD_INPUT (GARBAGE,
        field ``what``) and raises ``ValueError`` naming why."""
        try:
            req = from_wire(data)
            if not isinstance(req, OrderRequest):
                raise ValueError(f"expected an OrderRequest, got {type(req).__name__}")
        except ValueError as e:
            self.core.refuse(BadInput(BadInputReason.GARBAGE, what, str(e)), data)
            raise ValueError(f"{what}: {e}") from None
        return req

    def prepare(self, req: OrderRequest) -> tuple[Any, ...]:
        """Our side of a new order (:meth:`GatewayCore.place_prepare`); :meth:`send` sends it."""
        self._ensure_timer()
        return self.core.place_prepare(req)

    def send(self, prepared: tuple[Any, ...]) -> tuple[Any, ...]:
        """The order is handed to its venue now (:meth:`GatewayCore.place_send`); :meth:`answer` reads it."""
        if prepared[0] == "ready":
            self._arrivals.append(("place", prepared[1].request.client_order_id, time.perf_counter_ns()))
        return self.core.place_send(prepared)

    def answer(self, sent: tuple[Any, ...]) -> tuple[list[ExecutionReport], int]:
        """The reports of a :meth:`send` and the venue's answer latency; pushes what is due."""
        reps, latency = self.core.place_done(sent)
        self._flush()
        return reps, latency

    async def answer_async(self, sent: tuple[Any, ...]) -> tuple[list[ExecutionReport], int]:
        """:meth:`answer`; a blocking adapter waits for its answer on a venue thread."""
        if self.blocking:
            sent = await self.off_loop(self.core.place_wait, sent)
        return self.answer(sent)

    async def place(self, req: OrderRequest) -> list[ExecutionReport]:
        if self.blocking:
            reps, latency = await self.answer_async(self.send(self.prepare(req)))
        else:
            reps, latency = self.answer(self.send(self.prepare(req)))
        await self.wait(latency)
        self.after_reply()
        return reps

    async def cancel(self, client_order_id: str) -> ExecutionReport:
        self._ensure_timer()
        if self.blocking:
            answer = await self.off_loop(self.core.cancel_call, client_order_id)
            rep, latency = self.core.cancel_done(client_order_id, answer)
        else:
            rep, latency = self.core.cancel(client_order_id)
        self._flush()
        await self.wait(latency)
        self.after_reply()
        return rep

    async def query(self, client_order_id: str) -> ExecutionReport | None:
        if self.blocking:
            answer = await self.off_loop(self.core.query_call, client_order_id)
            rep = self.core.query_done(client_order_id, answer)
            self._flush()  # executions it recovered go to their owner
            return rep
        return self.core.query(client_order_id)

    def register_owner(self, owner: str, handle: Any) -> None:
        self._ensure_timer()
        self.owners[owner] = handle
        held = self._unclaimed.pop(owner, None)
        if held:
            handle.on_reports.remote(held)

    def subscribe(self, handle: Any, instruments: list[str] | None, method: str) -> None:
        self._ensure_timer()
        sid = f"{handle._actor_id.hex()}:{method}"
        self._subs[sid] = (handle, method)
        self.core.conflator.add(sid, instruments)
        for q in self.core.latest.values():  # start with the current picture
            if instruments is None or q.instrument in instruments:
                self.core.conflator.subs[sid].pending[q.instrument] = q
        self._pump(sid)

    def unsubscribe(self, handle: Any, method: str) -> None:
        sid = f"{handle._actor_id.hex()}:{method}"
        self._subs.pop(sid, None)
        self.core.conflator.remove(sid)

    # ------------------------------------------------------------------ views
    def status(self) -> dict[str, Any]:
        if self.reconstructed:  # health probes reach a restarted gateway first: hand over what it recovered
            self._ensure_timer()
            self._flush()
        s = self.core.status()
        s.update(push_errors=self.push_errors, feed_running=self._feed_task is not None and not self._feed_task.done(),
                 feed_remaining=self.feed.remaining() if self.feed is not None else 0,
                 clock_mode="sim" if self.sim_clock else "system", now_ns=self.clock.now_ns(),
                 reconstructed=self.reconstructed, reconciled=self.reconciled,
                 subscribers=len(self._subs), quote_source=self.quote_source, accounts=sorted(self.core.accounts))
        return s

    def events(self, kind: str | None) -> list[Event]:
        self.core.flush_drop_copy()
        if self._memory is None:
            return []
        return [e for e in self._memory.events if kind is None or e.kind.value == kind]

    # ------------------------------------------------------------------ faults and market data
    def inject(self, fault: dict[str, Any]) -> None:
        self.core.adapter.inject(fault)
        self.core.tick()
        self._flush()

    def push_market(self, quotes: list[Quote]) -> int:
        self._ensure_timer()
        n = 0
        for q in quotes:
            if self.sim_clock and q.ts_ns > self.clock.now_ns():
                self.clock.set(q.ts_ns)  # type: ignore[attr-defined]
            n += len(self.core.on_market(q))
            self.core.tick()
        self._flush()
        return n

    def push_wire(self, messages: list[Any]) -> int:
        n = sum(1 for m in messages if self.core.on_wire(m) is not None)
        self._flush()
        return n

    def advance(self, ns: int) -> int:
        if not self.sim_clock:
            raise RuntimeError("advance() needs clock_mode='sim'")
        self.clock.advance(ns)  # type: ignore[attr-defined]
        self.core.tick()
        self._flush()
        return self.clock.now_ns()

    # ------------------------------------------------------------------ feed driving
    def _one(self) -> bool:
        q = self.feed.next() if self.feed is not None else None
        if q is None:
            return False
        if self.sim_clock and q.ts_ns > self.clock.now_ns():
            self.clock.set(q.ts_ns)  # type: ignore[attr-defined]
        self.core.on_market(q)
        self.core.tick()
        return True

    def step(self, n: int) -> int:
        done = 0
        while done < n and self._one():
            done += 1
        self._flush()
        return done

    def skip_to(self, ts_ns: int) -> int:
        """Pass over feed events stamped at or before ``ts_ns``; only the latest of each
        instrument reaches the venue (the market as it stands at ``ts_ns``)."""
        latest: dict[str, Quote] = {}
        n = 0
        while self.feed is not None:
            t = self.feed.peek_ts()
            if t is None or t > ts_ns:
                break
            q = self.feed.next()
            if q is None:
                break
            latest[q.instrument] = q
            n += 1
        for q in sorted(latest.values(), key=lambda q: q.ts_ns):
            if self.sim_clock and q.ts_ns > self.clock.now_ns():
                self.clock.set(q.ts_ns)  # type: ignore[attr-defined]
            self.core.on_market(q)
            self.core.tick()
        if self.sim_clock and ts_ns > self.clock.now_ns():
            self.clock.set(ts_ns)  # type: ignore[attr-defined]
            self.core.tick()
        self._flush()
        return n

    def lifecycle(self, reason: str, level: str | None = None, **payload: Any) -> None:
        """A LIFECYCLE event of this venue session, and an ALERT at ``level`` if given."""
        from ..model.events import EventKind

        sink = self.core.sink
        ev = self.core.events.make(EventKind.LIFECYCLE, venue=self.venue, reason=reason, **payload)
        sink.emit(ev)
        if level is not None:
            # an alert of the shape the risk guard's alerts have, already resolved: it reports
            # what happened (the restart), it is not a condition that stays open
            sink.emit(self.core.events.make(
                EventKind.ALERT, venue=self.venue, reason=reason, parent_id=ev.event_id,
                alert_id=f"gateway_restart:{self.name}:{ev.event_id}", monitor="gateway_restart",
                scope="venue", key=self.venue, level=level, action="none", value=1.0, threshold=0.0,
                message=f"{self.name}: {reason}", opened_ns=ev.ts_ns, resolved=True))

    def run_until(self, ts_ns: int) -> int:
        done = 0
        while self.feed is not None:
            t = self.feed.peek_ts()
            if t is None or t > ts_ns or not self._one():
                break
            done += 1
        if self.sim_clock and ts_ns > self.clock.now_ns():
            self.clock.set(ts_ns)  # type: ignore[attr-defined]
            self.core.tick()
        self._flush()
        return done

    def next_ts(self) -> int | None:
        return self.feed.peek_ts() if self.feed is not None else None

    async def flush_sink(self) -> None:
        self.core.flush_drop_copy()
        aflush = getattr(self.core.sink, "aflush", None)
        if aflush is not None:
            await aflush()

    async def quiesce(self, timeout_s: float) -> int:
        self._flush()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        return len(pending)

    def start_feed(self) -> bool:
        self._ensure_timer()  # also without a feed: a venue's own market data is drained by it
        if self.feed is None:
            return False
        if self._feed_task is None or self._feed_task.done():
            self._feed_task = asyncio.get_running_loop().create_task(self._run_feed())
        return True

    def stop_feed(self) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            self._feed_task = None

    async def _run_feed(self) -> None:
        speed = self.feed.speed  # None: as fast as possible
        wall0, ts0 = time.monotonic(), self.feed.peek_ts()
        k = 0
        while True:
            t = self.feed.peek_ts()
            if t is None:
                break
            if speed is not None and ts0 is not None:
                delay = wall0 + (t - ts0) / 1e9 / speed - time.monotonic()
                if delay > 0:
                    self._flush()
                    await asyncio.sleep(delay)
            if not self.sim_clock and speed is None:
                self.feed.restamp(self.clock.now_ns())
            self._one()
            k += 1
            if speed is None and k % 64 == 0:
                self._flush()
                await asyncio.sleep(0)
        self._flush()


async def wait_fresh_positions(adapter: Any, name: str, after_ns: int, wait_s: float) -> None:
    """Wait (at most ``wait_s``) for a broker snapshot asked for at or after ``after_ns``,
    asking for one; PositionsUnavailable when none comes. An adapter that answers from the
    venue's live book (no ``positions_status``: the simulated exchange) is always fresh."""
    status = getattr(adapter, "positions_status", None)
    if not callable(status):
        return
    deadline = time.monotonic() + wait_s
    asked = False
    while True:
        st = status() or {}
        if st.get("source", "venue") != "venue":
            raise PositionsUnavailable(f"{name}: positions are {st.get('source')} while waiting for a fresh snapshot")
        if int(st.get("as_of_ns") or 0) >= after_ns:
            return
        if not asked:
            refresh = getattr(adapter, "refresh_positions", None)
            if callable(refresh):
                refresh(force=True)
            asked = True
        if time.monotonic() >= deadline:
            raise PositionsUnavailable(f"{name}: no positions snapshot asked for after {after_ns} came within "
                                       f"{wait_s:g} s (the last is as of {st.get('as_of_ns')}): not compared")
        await asyncio.sleep(0.05)


@ray.remote(num_cpus=0, max_concurrency=1000)
class VenueGateway:
    """One venue (or venue account), or a group of them sharing one process: normalised quotes
    out, orders in, drop copy to the ledger.

    ``gateway`` names one gateway of the deployment, or several (a *gateway group*,
    ``gateways[].group`` in the configuration): each is a venue session of its own (core, feed,
    clock, subscribers, owners) on this actor's event loop. Every method takes ``gateway=``,
    which selects the session (its actor name, name or venue); it may be left out when the
    actor hosts one session. Callers normally hold a :class:`GatewayView`, which fills it in.
    ``place_many_wire`` places the orders of several sessions in one call: how the
    coordinator sends both legs of a pair whose venues share a group.
    """

    def __init__(self, deployment: DeploymentConfig | dict[str, Any], gateway: str | list[str] | tuple[str, ...],
                 sink: EventSink | None = None, clock_mode: str | None = None, namespace: str | None = None) -> None:
        self.namespace = namespace  # the deployment's actors' (None: this job's), found by name after a restart
        self.reconstructed = False
        try:
            self.reconstructed = ray.get_runtime_context().was_current_actor_reconstructed
        except Exception:  # noqa: BLE001
            pass
        dep = deployment if isinstance(deployment, DeploymentConfig) else DeploymentConfig.model_validate(deployment)
        self.deployment = dep
        names = [gateway] if isinstance(gateway, str) else list(gateway)
        if not names:
            raise ValueError("gateway: name at least one gateway of the deployment")
        # (kind, key, perf_counter_ns) on arrival of push_market / place: benchmarks only (bench/runtime.py)
        self._arrivals: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=100_000)
        self.sessions: dict[str, _Session] = {}
        for n in names:
            s = _Session(dep, n, sink, clock_mode, self.reconstructed, self._arrivals)
            if s.name in self.sessions:
                raise ValueError(f"gateway: {n!r} given twice")
            self.sessions[s.name] = s
        self._only = next(iter(self.sessions.values())) if len(self.sessions) == 1 else None
        self._rewire_task: asyncio.Task[None] | None = None
        self.rewired: dict[str, Any] | None = None  # what a restarted process took back (status())
        # quotes and bad input per venue, read from the cores' counters by its timer (docs/operations.md "Metrics")
        self.metrics = Metrics("gateway", {}, auto_flush=False)
        self._metrics_task = start_flush_loop(self.metrics, sample=lambda: sample_gateway(self.metrics, self.sessions.values()),
                                              want_hub=bool(dep.ray.metrics_port), namespace=self.namespace)

    def __repr__(self) -> str:
        """The dashboard's Repr column: ``VenueGateway(gateways-copper: SHFE sim UP, LME fix UP)``
        (process, then each venue session's venue, adapter and state; ``restarted`` after a restart)."""
        sessions = getattr(self, "sessions", None) or {}
        by_name = {g.actor_name: g for g in self.deployment.gateways} if hasattr(self, "deployment") else {}
        first = by_name.get(next(iter(sessions), ""))
        parts = [f"{s.venue} {by_name[n].adapter if n in by_name else '?'} {'UP' if s.core.up else 'DOWN'}"
                 for n, s in sessions.items()]
        return actor_repr("VenueGateway", first.process_name if first else "gateway", *parts,
                          "restarted" if getattr(self, "reconstructed", False) else "")

    # ------------------------------------------------------------------ restart
    def _kick_rewire(self) -> None:
        """A restarted process wires itself back into its deployment on its first call."""
        if self.reconstructed and self._rewire_task is None:
            self._rewire_task = asyncio.get_running_loop().create_task(self._rewire_loop())

    async def _rewire_loop(self, attempts: int = 30, pause_s: float = 1.0) -> None:
        for attempt in range(attempts):
            try:
                self.rewired = await self._rewire()
                return
            except Exception as e:  # noqa: BLE001 - recorded and tried again; the gateway still answers
                why = f"rewire attempt {attempt + 1}/{attempts} failed: {type(e).__name__}: {e}"
                for sess in self.sessions.values():
                    sess.lifecycle(why, level="orange" if attempt + 1 == attempts else None)
            await asyncio.sleep(pause_s)

    async def _rewire(self) -> dict[str, Any]:
        """Ray restarted this gateway process: everything it knew of its deployment is gone.

        It finds the deployment again by name (the ``deployment`` registry) and takes back its
        place in it without anyone's help: every strategy host subscribes again for the
        instruments it trades on these venues, the risk guard for all of them (its marks), the
        coordinator is the owner of its orders' reports again (the coordinator also registers
        when its health probe sees the venue UP), and a live feed starts again if the deployment
        is running (a replayed feed is driven by the replay driver, which re-synchronises it).
        Each venue session records a LIFECYCLE event and a yellow ALERT saying so.
        """
        peers = Peers(self.namespace)
        info = await peers.describe()
        coord_name = str(info.get("coordinator") or "coordinator")
        coord, risk = peers.coordinator(info), peers.risk_guard(info)
        hosts = {n: peers.actor(n) for n in info.get("hosts", {})}
        wanted = dict(zip(hosts, await asyncio.gather(*(h.instruments.remote() for h in hosts.values()))))
        done: dict[str, Any] = {"subscribed": 0, "feeds_started": []}
        for sess in self.sessions.values():
            sess.register_owner(coord_name, coord)
            for hname, h in (hosts.items() if sess.quote_source else ()):
                mine = [i for i in wanted[hname] if i.split(".", 1)[0] == sess.venue]
                if mine:
                    sess.subscribe(h, mine, "on_quotes")
                    done["subscribed"] += 1
            if sess.quote_source:
                sess.subscribe(risk, None, "on_quotes")
            if info.get("state") == "RUNNING" and not sess.sim_clock and sess.start_feed():
                done["feeds_started"].append(sess.name)
            sess.lifecycle("gateway restarted: subscribers, report owner and feed restored", level="yellow",
                           hosts=sorted(hosts), feed_started=sess.name in done["feeds_started"])
        return done

    def _s(self, gateway: str | None) -> _Session:
        """The session ``gateway`` names (actor name, name or venue); the only one if None."""
        if gateway is None:
            if self._only is not None:
                return self._only
            raise ValueError(f"gateway: this process hosts {len(self.sessions)} venue sessions "
                             f"({', '.join(self.sessions)}); name one with gateway=")
        s = self.sessions.get(gateway)
        if s is not None:
            return s
        for s in self.sessions.values():
            if gateway in (s.name, s.venue):
                return s
        raise ValueError(f"gateway: {gateway!r} is not hosted here (hosted: {', '.join(self.sessions)})")

    def _all(self, gateway: str | None) -> list[_Session]:
        return list(self.sessions.values()) if gateway is None else [self._s(gateway)]

    # ------------------------------------------------------------------ order entry
    @ray.method(max_task_retries=0)
    async def place(self, req: OrderRequest, gateway: str | None = None) -> list[ExecutionReport]:
        """Send an order; returns ACK/REJECTED first, then immediate fills and the IOC remainder."""
        return await self._s(gateway).place(req)

    @ray.method(max_task_retries=0)
    async def place_wire(self, data: bytes, gateway: str | None = None) -> bytes:
        """:meth:`place` with the order and the answer as wire bytes (``model.fastpickle.to_wire``):
        what the coordinator uses, since Ray passes bytes without pickling. Bytes that are not
        one encoded :class:`OrderRequest` are refused (``ValueError`` naming why), counted and
        recorded as BAD_INPUT like any garbage the venue sends (reason GARBAGE, field
        ``place_wire``); nothing is sent."""
        s = self._s(gateway)
        return to_wire(await s.place(s.decode_order(data, "place_wire")))

    @ray.method(max_task_retries=0)
    async def place_many_wire(self, orders: list[tuple[str | None, bytes]]) -> list[tuple[bytes, int] | str]:
        """Place several encoded orders, each on its session (``(gateway, bytes)``), and answer
        for all of them at once: all are decoded and prepared, then handed to their venues back
        to back, in this order, then the answers are read. The two legs of a pair whose venues
        share this process reach them microseconds apart, in one Ray call.

        Returns, per order, ``(answer, held_ns)``: its answer as wire bytes (as :meth:`place_wire`)
        and how long this call held it after its venue had answered, waiting for the others' answers
        (the coordinator leaves that out of the venue's ack latency); or a string saying
        why it could not be placed (bytes that are not one order: BAD_INPUT on the session, field
        ``place_many_wire``; a session not hosted here: BAD_INPUT on the first session, field
        ``place_many_wire.gateway``); one bad order does not stop the others."""
        reqs: list[tuple[_Session, OrderRequest] | str] = []
        for gateway, data in orders:
            try:
                s = self._s(gateway)
            except ValueError as e:  # recorded on the process's first session: it has a sink
                next(iter(self.sessions.values())).core.refuse(
                    BadInput(BadInputReason.GARBAGE, "place_many_wire.gateway", str(e)), gateway)
                reqs.append(f"ValueError: {e}")
                continue
            try:
                reqs.append((s, s.decode_order(data, "place_many_wire")))
            except ValueError as e:  # the answer says why; the other orders still go
                reqs.append(str(e))
        # all prepared, then all handed to their venues back to back, then the answers read
        prepared: list[tuple[_Session, tuple[Any, ...]] | str] = []
        for r in reqs:
            if isinstance(r, str):
                prepared.append(r)
                continue
            r[0].core.counters["placed_in_one_call"] += 1
            try:
                prepared.append((r[0], r[0].prepare(r[1])))
            except Exception as e:  # noqa: BLE001 - not sent (a bug): the coordinator queries it
                prepared.append(f"{type(e).__name__}: {e}")
        sent: list[tuple[_Session, tuple[Any, ...], int] | str] = []
        for x in prepared:
            if isinstance(x, str):
                sent.append(x)
                continue
            try:
                sent.append((x[0], x[0].send(x[1]), time.perf_counter_ns()))
            except Exception as e:  # noqa: BLE001 - not sent (a bug): the coordinator queries it
                sent.append(f"{type(e).__name__}: {e}")
        # the answers read side by side (a blocking venue's on its own thread), each timed: when
        # it was there (a simulated venue's: sent + its latency, slept below)
        if any(not isinstance(x, str) and x[0].blocking for x in sent):
            results = await asyncio.gather(*(_read_answer(x) for x in sent))
        else:  # simulated venues answer at once (their latency is slept below): no tasks needed
            results = [await _read_answer(x) for x in sent]
        # each venue answers after its own latency; the one reply carries all the answers
        await _wait_max([r[:3] for r in results if not isinstance(r, str)])
        done = time.perf_counter_ns()
        out: list[tuple[bytes, int] | str] = []
        for r in results:
            if isinstance(r, str):
                out.append(r)
            else:
                out.append((to_wire(r[1]), max(done - r[3], 0)))
                r[0].after_reply()
        return out

    async def orders_of(self, decision_ids: list[str] | None, owner: str | None = None,
                        gateway: str | None = None, since_ns: int = 0) -> list[OrderRequest]:
        """The orders this session holds for ``decision_ids`` (None: every decision) sent since
        ``since_ns`` (:meth:`GatewayCore.orders_of`)."""
        return self._s(gateway).core.orders_of(decision_ids, owner, since_ns)

    @ray.method(max_task_retries=0)
    async def cancel(self, client_order_id: str, gateway: str | None = None) -> ExecutionReport:
        """CANCELED, or CANCEL_REJECTED with UNKNOWN_ORDER / TOO_LATE_TO_CANCEL / VENUE_ERROR."""
        return await self._s(gateway).cancel(client_order_id)

    async def query(self, client_order_id: str, gateway: str | None = None) -> ExecutionReport | None:
        """STATUS report of the order as the venue knows it; None if the venue never saw it."""
        return await self._s(gateway).query(client_order_id)

    async def open_orders(self, gateway: str | None = None) -> list[ExecutionReport]:
        core = self._s(gateway).core
        return [core._stamp(r) for r in core.adapter.open_orders()]

    async def register_owner(self, owner: str, handle: Any, gateway: str | None = None) -> None:
        """Push later reports of ``owner``'s orders to ``handle.on_reports``; held ones are sent now
        (every session of this process when ``gateway`` is None)."""
        for s in self._all(gateway):
            s.register_owner(owner, handle)

    async def subscribe(self, handle: Any, instruments: list[str] | None = None, method: str = "on_quotes",
                        gateway: str | None = None) -> None:
        """Push conflated quote batches to ``handle.<method>`` (one batch in flight at a time)."""
        self._s(gateway).subscribe(handle, instruments, method)

    async def unsubscribe(self, handle: Any, method: str = "on_quotes", gateway: str | None = None) -> None:
        self._s(gateway).unsubscribe(handle, method)

    # ------------------------------------------------------------------ views
    async def snapshot(self, instrument: str, gateway: str | None = None) -> Quote | None:
        return self._s(gateway).core.snapshot(instrument)

    async def status(self, gateway: str | None = None) -> dict[str, Any]:
        """The session's status; for a group asked without ``gateway``, every session's under
        ``sessions`` (what ``xmc status`` shows for the process)."""
        self._kick_rewire()
        if gateway is None and self._only is None:
            return {"state": "UP", "sessions": {n: s.status() for n, s in self.sessions.items()}}
        return self._s(gateway).status()

    async def drop_copy(self, since_ns: int = 0, gateway: str | None = None) -> list[dict[str, Any]]:
        """The venue's authoritative record of every order event and fill (for reconciliation)."""
        return self._s(gateway).core.adapter.drop_copy(since_ns)

    async def positions(self, gateway: str | None = None, fresh_after_ns: int | None = None,
                        wait_s: float = 5.0) -> dict[str, dict[str, int]]:
        """The venue's net position per account and instrument (lots, BUY +), as the venue reports it:
        what a restarted RiskGuard reconciles the ledger's positions against. An adapter whose
        ``positions_source`` is not ``"venue"`` (it knows only this session's fills) raises
        :class:`PositionsUnavailable`: the guard counts the venue unverified rather than take
        a session's fills for the broker's positions. ``fresh_after_ns`` (our clock): answer only
        from a broker snapshot asked for at or after it, waiting up to ``wait_s`` for one (a
        verification after pairs were booked must not compare with a snapshot older than their
        fills), else PositionsUnavailable."""
        adapter = self._s(gateway).core.adapter
        name = getattr(adapter, "name", gateway or "gateway")
        source = getattr(adapter, "positions_source", "venue")
        if source != "venue":
            raise PositionsUnavailable(f"{name}: positions are {source} (this session's), not the broker's "
                                       "position keeping")
        if fresh_after_ns is not None:
            await wait_fresh_positions(adapter, name, fresh_after_ns, wait_s)
        return adapter.positions()

    async def two_sided_positions(self, gateway: str | None = None) -> dict[str, dict[str, Any]]:
        """Long and short, today's and yesterday's lots per ``ACCOUNT/INSTRUMENT`` as the venue
        holds them (venues that hold them apart; an adapter that cannot say answers ``{}``): what a
        coordinator chooses offsets from when it starts."""
        fn = getattr(self._s(gateway).core.adapter, "two_sided_positions", None)
        return fn() if fn is not None else {}

    async def two_sided_reading(self, gateway: str | None = None) -> dict[str, Any]:
        """``{positions, order_fills, accounts}``: the two-sided positions with each order's lots
        filled as the same reading holds them (``None`` from an adapter that cannot say) and the
        accounts it speaks for (``None``: all). What a coordinator loads when it starts or
        restarts, so that an order it rebuilds adds exactly what it fills after the reading."""
        fn = getattr(self._s(gateway).core.adapter, "two_sided_reading", None)
        if fn is not None:
            return fn()
        return {"positions": await self.two_sided_positions(gateway), "order_fills": None, "accounts": None}

    async def account_reading(self, gateway: str | None = None) -> dict[str, dict[str, Any]]:
        """The broker's own figures per account (``{account: {equity, margin, available,
        currency}}``) from an adapter that can read them (``adapter.account_reading()``); ``{}``
        from one that cannot. The risk guard polls it: a reading wins over its own figures."""
        fn = getattr(self._s(gateway).core.adapter, "account_reading", None)
        return fn() if fn is not None else {}

    async def events(self, kind: str | None = None, gateway: str | None = None) -> list[Event]:
        """Events recorded when no sink was given (tests)."""
        return [e for s in self._all(gateway) for e in s.events(kind)]

    async def ready(self, gateway: str | None = None) -> bool:
        self._kick_rewire()
        return True

    async def rewire_done(self, timeout_s: float = 10.0) -> dict[str, Any] | None:
        """Wait (at most ``timeout_s``) until a restarted process has wired itself back in; what
        it restored, or None (not restarted, or not done yet)."""
        self._kick_rewire()
        if self._rewire_task is not None:
            await asyncio.wait([self._rewire_task], timeout=timeout_s)
        return self.rewired

    async def feed_reports(self) -> list[dict[str, Any]]:
        """Per replayed file of the hosted sessions: rows read, kept, skipped by reason (the
        loaders' :class:`~xmc_actors.feeds.replay.LoadReport`), with the gateway's name."""
        return [{"gateway": s.name, **r} for s in self.sessions.values() for r in s.feed_reports]

    async def hosted(self) -> list[str]:
        """The gateways (venue sessions) this process hosts."""
        return list(self.sessions)

    # ------------------------------------------------------------------ faults and market data
    async def inject(self, fault: dict[str, Any], gateway: str | None = None) -> None:
        """Add a deterministic fault to the simulated venue (see docs/architecture.md)."""
        self._s(gateway).inject(fault)

    async def push_market(self, quotes: list[Quote], gateway: str | None = None) -> int:
        """Feed market quotes (true time) to the venue as if they came from the feed; returns quotes published."""
        self._arrivals.append(("quotes", "", time.perf_counter_ns()))
        return self._s(gateway).push_market(quotes)

    async def arrival_stamps(self, clear: bool = False, gateway: str | None = None) -> list[tuple[str, str, int]]:
        """``(kind, key, time.perf_counter_ns())`` stamped on entry of ``push_market`` ("quotes", "")
        and just before an order is handed to its venue ("place", client order id); the last
        100k, for every session of the process (``gateway`` is accepted for views and ignored).
        For benchmarks: the monotonic clock is shared by the processes of one host."""
        out = list(self._arrivals)
        if clear:
            self._arrivals.clear()
        return out

    async def push_wire(self, messages: list[Any], gateway: str | None = None) -> int:
        """Feed raw venue messages to the normaliser; returns how many were accepted."""
        return self._s(gateway).push_wire(messages)

    async def advance(self, ns: int, gateway: str | None = None) -> int:
        """Move a sim clock forward (delayed fills, disconnect ends); returns the new time."""
        return self._s(gateway).advance(ns)

    # ------------------------------------------------------------------ feed driving
    async def step(self, n: int = 1, gateway: str | None = None) -> int:
        """Process the next ``n`` feed events; returns how many were processed."""
        return self._s(gateway).step(n)

    async def run_until(self, ts_ns: int, gateway: str | None = None) -> int:
        """Process feed events stamped at or before ``ts_ns``; returns how many."""
        return self._s(gateway).run_until(ts_ns)

    async def flush_sink(self, gateway: str | None = None) -> None:
        """Wait until the events this actor emitted are acknowledged by the ledger (shutdown)."""
        for s in self._all(gateway):
            await s.flush_sink()

    async def advance_to(self, ts_ns: int, gateway: str | None = None) -> tuple[int, int | None]:
        """``run_until(ts_ns)`` and the next feed stamp in one call (the replay driver's step)."""
        s = self._s(gateway)
        n = s.run_until(ts_ns)
        return n, s.next_ts()

    async def next_ts(self, gateway: str | None = None) -> int | None:
        """Timestamp of the next feed event (None when the feed is exhausted or absent)."""
        self._kick_rewire()
        return self._s(gateway).next_ts()

    async def skip_to(self, ts_ns: int, gateway: str | None = None) -> tuple[int, int | None]:
        """Pass over the feed events stamped at or before ``ts_ns`` without publishing them, and
        move a sim clock there; returns (events skipped, next stamp). A restarted replay gateway
        starts its file from the beginning: the replay driver brings it back to the replayed
        time the others are at this way, instead of replaying history into live strategies."""
        s = self._s(gateway)
        return s.skip_to(ts_ns), s.next_ts()

    async def quiesce(self, timeout_s: float = 5.0, gateway: str | None = None) -> int:
        """Flush, then wait until every batch pushed so far was taken by its subscriber.

        Used by the replay driver's settle step; returns how many pushes were awaited.
        """
        n = 0
        for s in self._all(gateway):
            n += await s.quiesce(timeout_s)
        return n

    async def start_feed(self, gateway: str | None = None) -> bool:
        """Run the configured feed in the background (at its speed); False if there is none."""
        started = [s.start_feed() for s in self._all(gateway)]
        return any(started)

    async def stop_feed(self, gateway: str | None = None) -> None:
        """Stop the feed; the venue session stays open (the coordinator's shutdown may still
        cancel and query orders): :meth:`close` ends it."""
        for s in self._all(gateway):
            s.stop_feed()

    async def close(self, gateway: str | None = None) -> None:
        """The gateway stops: feeds and timers stopped, drop copies written, every venue
        session closed (``adapter.close()``: a FIX session logs out and keeps its sequence
        numbers in its store). Idempotent. Also run when Ray ends the actor gracefully
        (``__ray_shutdown__``), and by the FIX adapter's own atexit hook as a last resort."""
        for s in self._all(gateway):
            try:
                s.close()
            except Exception:  # noqa: BLE001 - every session is closed whatever one does
                s.core.counters["close_errors"] += 1
        for s in self._all(gateway):
            try:
                await s.flush_sink()
            except Exception:  # noqa: BLE001 - a sink already gone: nothing more to write
                s.core.counters["close_errors"] += 1

    def __ray_shutdown__(self) -> None:
        """Ray ends this actor gracefully (every handle gone, or ``__ray_terminate__``): close
        each venue session that is still open (not awaited: no event loop here)."""
        for s in self.sessions.values():
            if not s.closed:
                s.closed = True
                try:
                    s.core.close()
                except Exception:  # noqa: BLE001
                    pass


async def _read_answer(x: tuple[_Session, tuple[Any, ...], int] | str) -> tuple[_Session, list[ExecutionReport], int, int] | str:
    """One order's answer in a ``place_many_wire`` call: ``(session, reports, latency ns, when the
    answer was there, perf_counter ns)``, or why it cannot be read (the coordinator queries it)."""
    if isinstance(x, str):
        return x
    s, token, sent_at = x
    try:
        reps, latency = await s.answer_async(token) if s.blocking else s.answer(token)
    except Exception as e:  # noqa: BLE001 - sent, answer unread: the coordinator queries it
        return f"{type(e).__name__}: {e}"
    there = time.perf_counter_ns()
    if latency > 0 and not s.sim_clock and not s.real_latency:
        there = max(there, sent_at + latency)  # a simulated venue answers after its latency
    return s, reps, latency, there


async def _wait_max(placed: list[tuple[_Session, list[ExecutionReport], int]]) -> None:
    """Wait the longest of the venues' answer latencies (live clocks only)."""
    live = [lat for s, _, lat in placed if lat > 0 and not s.sim_clock and not s.real_latency]
    if live:
        await asyncio.sleep(max(live) / 1e9)


