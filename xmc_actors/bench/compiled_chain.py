"""Ray Compiled Graphs against ordinary ``.remote()`` calls, on a chain shaped like the hot path.

Part of the ``runtime`` suite (issue 22 item 2: evaluate compiled graphs for the static part of
the hot path). The chain is the product's: a gateway takes a quote batch, hands it to a strategy
host, which hands an order to the coordinator, which sends one leg to each of two gateways (the
first gateway is one of them, as SHFE is in the product) and waits for both answers. Payloads are
the wire bytes the product sends: ``to_wire([Quote])`` for the batch (one quote), ``to_wire
(OrderRequest)`` for the order; every hop decodes nothing (transport only, so the figures are
what the two mechanisms cost, not our code).

* ``chain3_remote_p50_us`` / ``_p99_us``: the driver calls the gateway, which awaits the
  strategy host, which awaits the coordinator, which gathers the two gateways — async actors,
  ``.remote()`` and ``await`` at each hop, as the actors are written. Measured at the driver,
  call to answer.
* ``chain3_compiled_p50_us`` / ``_p99_us``: the same five method calls bound into one compiled
  graph (``InputNode`` → gateway → strategy → coordinator → ``MultiOutputNode`` of two gateway
  calls), run with ``execute`` and ``ray.get``, one execution at a time. Compiled graph nodes
  must be synchronous methods (an ``async def`` node returns a coroutine, which the graph then
  fails to serialise), so these actors are plain classes.
* ``chain3_compiled_vs_remote_p50_ratio`` / ``_p99_ratio``: compiled / remote.
* ``compiled_compile_ms``: ``experimental_compile`` on live actors.
* What a restart does (the strategy host is killed with ``ray.kill(no_restart=False)``; the
  actors have ``max_restarts=-1``, as the product's): ``compiled_error_after_kill_ms``: kill to
  the first ``execute`` that raises (executions go on until one does: the kill is asynchronous,
  and the old process answers until it is gone; the first error is ``ActorUnavailableError``).
  The graph then shuts itself down: once the actor runs again in a new process, the old graph's
  ``execute`` raises ``RayChannelError`` ("Channel closed"), so ``compiled_survives_restart`` is
  0 (1 would mean it answered). ``compiled_teardown_ms`` (of the already shut graph),
  ``compiled_recompile_after_restart_ms`` (compile a new graph on the restarted actor and get its
  first answer) and ``compiled_kill_to_first_result_ms`` (kill to that answer: the outage).
  ``remote_kill_to_first_result_ms``: the same kill on the ``.remote()`` chain, until the
  restarted actor answers from its new process and a call through the chain answers (the
  handles survive a restart; nothing is rebuilt).
"""
from __future__ import annotations

import asyncio
import os
import time
from decimal import Decimal
from typing import Any

import ray

from ..core.stats import percentile as _pct
from ..model.fastpickle import to_wire
from ..model.orders import OrderRequest, OrderType, Side
from ..model.quotes import Quote


def payloads() -> tuple[bytes, bytes]:
    """(quote batch, order) as the product puts them on the wire."""
    now = time.time_ns()
    quote = Quote(instrument="SHFE.cu", bid=Decimal(71990), ask=Decimal(72000), bid_size=5, ask_size=7,
                  venue_ts_ns=now, ts_ns=now, recv_ts_ns=now)
    order = OrderRequest(client_order_id="d000001-A-0", decision_id="d000001", leg="A", account="cn-main",
                         instrument="SHFE.cu", side=Side.SELL, qty=5, order_type=OrderType.IOC,
                         price=Decimal(71990), owner="band-00", sent_ns=now)
    return to_wire([quote]), to_wire(order)


# ------------------------------------------------------------------ ordinary .remote() chain
@ray.remote(num_cpus=0, max_concurrency=1000, max_restarts=-1)
class _AsyncGateway:
    def __init__(self) -> None:
        self.strategy: Any = None

    async def wire(self, strategy: Any) -> None:
        self.strategy = strategy

    async def push_market(self, batch: bytes) -> list[int]:
        return await self.strategy.on_quotes.remote(batch)

    async def place_wire(self, order: bytes) -> int:
        return len(order)


@ray.remote(num_cpus=0, max_concurrency=1000, max_restarts=-1)
class _AsyncStrategy:
    def __init__(self, coord: Any, order: bytes) -> None:
        self.coord, self.order = coord, order

    async def on_quotes(self, batch: bytes) -> list[int]:
        return await self.coord.submit.remote(self.order)

    async def pid(self) -> int:
        return os.getpid()


@ray.remote(num_cpus=0, max_concurrency=1000, max_restarts=-1)
class _AsyncCoordinator:
    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b

    async def submit(self, order: bytes) -> list[int]:
        return list(await asyncio.gather(self.a.place_wire.remote(order), self.b.place_wire.remote(order)))


# ------------------------------------------------------------------------- compiled graph
@ray.remote(num_cpus=0, max_restarts=-1)
class _SyncGateway:
    def push_market(self, batch: bytes) -> bytes:
        return batch

    def place_wire(self, order: bytes) -> int:
        return len(order)

    def ping(self) -> int:
        return 1


@ray.remote(num_cpus=0, max_restarts=-1)
class _SyncStrategy:
    def __init__(self, order: bytes) -> None:
        self.order = order

    def on_quotes(self, batch: bytes) -> bytes:
        return self.order

    def ping(self) -> int:
        return 1

    def pid(self) -> int:
        return os.getpid()


@ray.remote(num_cpus=0, max_restarts=-1)
class _SyncCoordinator:
    def submit(self, order: bytes) -> bytes:
        return order


def _compile(ga: Any, gb: Any, s: Any, c: Any) -> Any:
    from ray.dag import InputNode, MultiOutputNode

    with InputNode() as inp:
        order = c.submit.bind(s.on_quotes.bind(ga.push_market.bind(inp)))
        dag = MultiOutputNode([ga.place_wire.bind(order), gb.place_wire.bind(order)])
    return dag.experimental_compile()


def _time(call: Any, n: int, warm: int) -> list[float]:
    out = []
    for i in range(n + warm):
        t = time.perf_counter_ns()
        call()
        if i >= warm:
            out.append((time.perf_counter_ns() - t) / 1e3)
    return out


def _restarted(strategy: Any, old_pid: int, deadline_s: float = 60) -> None:
    """Wait until the strategy actor answers from a new process (``ray.kill`` is asynchronous:
    calls made just after it may still be answered by the old one)."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            if ray.get(strategy.pid.remote(), timeout=10) != old_pid:
                return
        except Exception:  # noqa: BLE001 - restarting: ActorUnavailableError / RayActorError
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"the strategy actor did not restart within {deadline_s} s")
        time.sleep(0.005)


def _remote_chain(batch: bytes, order: bytes, n: int, warm: int) -> dict[str, float]:
    ga, gb = _AsyncGateway.remote(), _AsyncGateway.remote()
    c = _AsyncCoordinator.remote(ga, gb)
    s = _AsyncStrategy.remote(c, order)
    try:
        ray.get(ga.wire.remote(s))
        lat = _time(lambda: ray.get(ga.push_market.remote(batch)), n, warm)
        old = ray.get(s.pid.remote())
        t0 = time.perf_counter()
        ray.kill(s, no_restart=False)
        _restarted(s, old)
        ray.get(ga.push_market.remote(batch), timeout=10)  # the same handles work again
        return {"chain3_remote_p50_us": _pct(lat, 0.5), "chain3_remote_p99_us": _pct(lat, 0.99),
                "remote_kill_to_first_result_ms": (time.perf_counter() - t0) * 1e3}
    finally:
        for h in (ga, gb, c, s):
            ray.kill(h)


def _compiled_chain(batch: bytes, order: bytes, n: int, warm: int) -> dict[str, float]:
    ga, gb = _SyncGateway.remote(), _SyncGateway.remote()
    c, s = _SyncCoordinator.remote(), _SyncStrategy.remote(order)
    out: dict[str, float] = {}
    cg = None
    try:
        ray.get([ga.ping.remote(), gb.ping.remote(), s.ping.remote()])
        t = time.perf_counter()
        cg = _compile(ga, gb, s, c)
        out["compiled_compile_ms"] = (time.perf_counter() - t) * 1e3
        expect = [len(order), len(order)]
        got = ray.get(cg.execute(batch))
        if got != expect:
            raise RuntimeError(f"compiled chain answered {got}, expected {expect}")
        lat = _time(lambda: ray.get(cg.execute(batch)), n, warm)
        out["chain3_compiled_p50_us"] = _pct(lat, 0.5)
        out["chain3_compiled_p99_us"] = _pct(lat, 0.99)
        # the strategy host dies and Ray restarts it (max_restarts=-1, as the product's actors);
        # executions go on until one raises (the kill is asynchronous)
        old = ray.get(s.pid.remote())
        t0 = time.perf_counter()
        ray.kill(s, no_restart=False)
        while time.perf_counter() - t0 < 60:
            try:
                ray.get(cg.execute(batch), timeout=30)
            except Exception:  # noqa: BLE001 - ActorUnavailableError / ActorDiedError / RayChannelError
                break
        out["compiled_error_after_kill_ms"] = (time.perf_counter() - t0) * 1e3
        _restarted(s, old)
        try:  # the actor is back: does the old graph answer? (it has shut itself down)
            ray.get(cg.execute(batch), timeout=10)
            out["compiled_survives_restart"] = 1.0
        except Exception:  # noqa: BLE001 - RayChannelError: Channel closed
            out["compiled_survives_restart"] = 0.0
        t = time.perf_counter()
        cg.teardown()
        cg = None
        out["compiled_teardown_ms"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        cg = _compile(ga, gb, s, c)
        got = ray.get(cg.execute(batch))
        out["compiled_recompile_after_restart_ms"] = (time.perf_counter() - t) * 1e3
        out["compiled_kill_to_first_result_ms"] = (time.perf_counter() - t0) * 1e3
        if got != expect:
            raise RuntimeError(f"recompiled chain answered {got}, expected {expect}")
        return out
    finally:
        if cg is not None:
            cg.teardown()
        for h in (ga, gb, c, s):
            ray.kill(h)


def run_chain(n: int, warm: int = 30) -> dict[str, float]:
    """The chain's metrics (needs ``ray.init`` done); ``n`` timed executions of each."""
    batch, order = payloads()
    out = _remote_chain(batch, order, n, warm)
    out.update(_compiled_chain(batch, order, n, warm))
    out["chain3_compiled_vs_remote_p50_ratio"] = out["chain3_compiled_p50_us"] / out["chain3_remote_p50_us"]
    out["chain3_compiled_vs_remote_p99_ratio"] = out["chain3_compiled_p99_us"] / out["chain3_remote_p99_us"]
    out["chain3_quote_batch_bytes"] = float(len(batch))
    out["chain3_order_bytes"] = float(len(order))
    out["samples_chain3"] = float(n)
    return out
