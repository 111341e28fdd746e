"""The RiskGuard Ray actor: a thin async shell around :class:`~xmc_actors.core.risk_guard.RiskGuardCore`.

Named ``risk-guard`` in the deployment's namespace (the ``xmc halt|reduce|resume|limits``
commands find it by that name). Contract (docs/architecture.md, "Risk guard"):

* ``register_coordinator(name, handle, weight=1)``: the guard pushes ``handle.on_risk_grant(grant)``
  at once and every ``grant_refresh_ms`` after; the coordinator answers with the
  :class:`~xmc_actors.core.risk_rules.GrantAck` its checker's ``update_grant`` returned.
* ``on_pair_done(summary)``: books the pair, feeds the monitors, applies alert actions.
* ``halt / reduce / resume(scope, key, operator)`` and ``set_trading_state``: recorded, then
  pushed to every coordinator as ``set_trading_state(scope, key, state, operator)``; the
  call returns once they have all acknowledged (or the timeout passed), with per-coordinator
  results and the elapsed time.
* ``set_limit(section, key, field, value, operator)``, ``status()``, ``rebuild(events, venue_positions)``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any, Mapping

import ray

from ..core.alerts import Alert, CallbackAlertSink, sinks_from_config
from ..core.clock import Clock, SystemClock
from ..core.risk_guard import GuardOutput, RiskGuardCore
from ..core.risk_rules import FxProvider, GrantAck, fx_from_book
from ..core.sink import EventSink, MemorySink
from ..model.config import DeploymentConfig
from ..model.events import Event
from ..model.quotes import Quote
from ..model.risk import TradingState

ACTOR_NAME = "risk-guard"
log = logging.getLogger("xmc.risk")


async def _await(ref: Any) -> Any:
    return await ref


def _metrics() -> Any:
    try:
        from ray.util.metrics import Counter

        return Counter("xmc_risk_alerts", description="alerts raised by the risk guard", tag_keys=("level", "monitor"))
    except Exception:  # noqa: BLE001 - metrics are optional outside a Ray worker
        return None


@ray.remote(num_cpus=0, max_concurrency=1000)
class RiskGuard:
    """Authoritative limits, positions, capital, alerts and trading state of one deployment."""

    def __init__(self, deployment: DeploymentConfig | dict[str, Any], sink: EventSink | None = None, *,
                 fx: FxProvider | None = None, clock: Clock | None = None, push_timeout_s: float = 2.0,
                 refresh: bool = True) -> None:
        dep = deployment if isinstance(deployment, DeploymentConfig) else DeploymentConfig.model_validate(deployment)
        self.clock = clock or SystemClock()
        self.memory = MemorySink() if sink is None else None
        self.sink = sink or self.memory
        if fx is None:
            from ..core.pricing import fx_book_from_config

            fx = fx_from_book(fx_book_from_config(dep.fx, max_lag_days=7), self.clock)
        self._counter = _metrics()
        self.core = RiskGuardCore(dep.risk, {i.id: i for i in dep.instruments}, {v.code: v for v in dep.venues},
                                  dep.accounts, fx, clock=self.clock, sink=self.sink, base_currency=dep.base_currency,
                                  sinks=[CallbackAlertSink(self._metric)])
        self.remote_sinks = sinks_from_config(dep.risk.sinks)
        self.handles: dict[str, Any] = {}
        self.push_timeout_s = push_timeout_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._refresh = refresh
        self._loop_task: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        self.reconstructed = False
        try:
            self.reconstructed = ray.get_runtime_context().was_current_actor_reconstructed
        except Exception:  # noqa: BLE001
            pass

    def _metric(self, a: Alert) -> None:
        if self._counter is not None:
            try:
                self._counter.inc(1, tags={"level": a.level.value, "monitor": a.monitor})
            except Exception:  # noqa: BLE001
                pass

    # -- coordinators and grants ----------------------------------------------------------------
    async def register_coordinator(self, name: str, handle: Any, weight: float = 1.0) -> dict[str, Any]:
        """Register a coordinator and push it its first grant; returns its ack (or why not)."""
        self.core.register_coordinator(name, Decimal(str(weight)))
        self.handles[name] = handle
        self._ensure_loop()
        ack = await self._grant(name)
        return {"coordinator": name, "acked_seq": ack.seq if ack else None}

    async def unregister_coordinator(self, name: str) -> None:
        self.handles.pop(name, None)

    async def _grant(self, name: str) -> GrantAck | None:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:  # one grant in flight per coordinator: acks match their grants
            h = self.handles.get(name)
            if h is None:
                return None
            grant = self.core.make_grant(name)
            try:
                ack = await asyncio.wait_for(_await(h.on_risk_grant.remote(grant)), self.push_timeout_s)
            except Exception as e:  # noqa: BLE001 - unreachable: its slice stays counted, its grant expires
                log.warning("grant to %s not acknowledged: %s", name, e)
                return None
            ack = ack if isinstance(ack, GrantAck) else None
            self.core.on_grant_ack(grant, ack)
            return ack

    async def regrant_all(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for name in list(self.handles):
            ack = await self._grant(name)
            out[name] = ack.seq if ack else None
        return out

    def _ensure_loop(self) -> None:
        if self._refresh and self._loop_task is None:
            self._loop_task = asyncio.get_event_loop().create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.core.cfg.grant_refresh_ms / 1000)
            try:
                await self._handle(self.core.tick())
                await self.regrant_all()
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                log.exception("risk guard refresh failed")

    # -- inputs -----------------------------------------------------------------------------------
    async def on_pair_done(self, summary: dict[str, Any]) -> int:
        """A coordinator finished a pair. Returns the number of alerts it raised."""
        out = self.core.on_pair_done(summary)
        await self._handle(out)
        return len(out.alerts)

    async def on_gateway_status(self, venue: str, status: dict[str, Any]) -> int:
        out = self.core.on_gateway_status(venue, status)
        await self._handle(out)
        return len(out.alerts)

    async def on_quotes(self, quotes: list[Quote]) -> None:
        self.core.on_quotes(quotes)

    async def tick(self) -> int:
        out = self.core.tick()
        await self._handle(out)
        return len(out.alerts)

    async def _handle(self, out: GuardOutput) -> None:
        for a in out.alerts:
            self._send_remote(a)
        for scope, key, state in out.state_changes:
            await self._broadcast(scope, key, state, "auto")
        if out.regrant or out.state_changes:
            await self.regrant_all()

    def _send_remote(self, a: Alert) -> None:
        if not self.remote_sinks:
            return
        loop = asyncio.get_event_loop()

        def send() -> None:
            for s in self.remote_sinks:
                try:
                    s.send(a)
                except Exception as e:  # noqa: BLE001
                    log.warning("alert sink %s failed: %s", type(s).__name__, e)

        t = loop.create_task(asyncio.to_thread(send))
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    # -- trading state (kill switch) --------------------------------------------------------------
    async def _broadcast(self, scope: str, key: str | None, state: TradingState, operator: str) -> dict[str, str]:
        names = list(self.handles)
        refs = [self.handles[n].set_trading_state.remote(scope, key, state.value, operator) for n in names]
        res = await asyncio.gather(*(asyncio.wait_for(_await(r), self.push_timeout_s) for r in refs), return_exceptions=True)
        return {n: ("ok" if not isinstance(r, BaseException) else f"error: {type(r).__name__}: {r}") for n, r in zip(names, res)}

    async def set_trading_state(self, scope: str, key: str | None, state: str, operator: str, reason: str = "") -> dict[str, Any]:
        """Change a trading state, record it, push it to every coordinator and await their acks."""
        t0 = time.perf_counter()
        try:
            ev = self.core.set_trading_state(scope, key, TradingState(state), operator, reason)
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        acks = await self._broadcast(scope, key, TradingState(state), operator)
        elapsed = (time.perf_counter() - t0) * 1000
        await self.regrant_all()  # a pushed state holds with the more severe grant state until a grant agrees
        return {"ok": all(v == "ok" for v in acks.values()), "event_id": ev.event_id, "scope": scope, "key": key,
                "state": state, "acks": acks, "elapsed_ms": elapsed}

    async def halt(self, scope: str = "global", key: str | None = None, operator: str = "", reason: str = "") -> dict[str, Any]:
        return await self.set_trading_state(scope, key, TradingState.HALTED.value, operator, reason)

    async def reduce(self, scope: str = "global", key: str | None = None, operator: str = "", reason: str = "") -> dict[str, Any]:
        return await self.set_trading_state(scope, key, TradingState.REDUCING.value, operator, reason)

    async def resume(self, scope: str = "global", key: str | None = None, operator: str = "", reason: str = "") -> dict[str, Any]:
        return await self.set_trading_state(scope, key, TradingState.ACTIVE.value, operator, reason)

    async def set_limit(self, section: str, key: str | None, field: str | None, value: Any, operator: str) -> dict[str, Any]:
        try:
            self.core.set_limit(section, key, field, value, operator)
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        acks = await self.regrant_all()
        return {"ok": True, "acks": acks}

    # -- queries and restart ----------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        st = self.core.status()
        st["registered"] = list(self.handles)
        st["reconstructed"] = self.reconstructed
        return st

    async def events(self, kind: str | None = None) -> list[Event]:
        evs = self.memory.events if self.memory is not None else []
        return [e for e in evs if kind is None or e.kind.value == kind]

    async def rebuild(self, events: list[Event], venue_positions: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
        rep = self.core.rebuild(events, venue_positions)
        await self.regrant_all()
        return {"events_read": rep.events_read, "booked_pairs": rep.booked_pairs, "mismatches": rep.mismatches,
                "states": {k: v.value for k, v in rep.states.items()},
                "open_reservations": {c: {p: str(v) for p, v in r.items()} for c, r in rep.open_reservations.items()}}

    async def flush_sink(self) -> None:
        """Wait until the events this actor emitted are acknowledged by the ledger (shutdown)."""
        aflush = getattr(self.sink, "aflush", None)
        if aflush is not None:
            await aflush()

    async def ready(self) -> bool:
        return True
