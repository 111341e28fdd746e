"""What the API reads from and acts on: :class:`RayBackend` finds the deployment's actors by
name in its namespace (the risk guard, the coordinator, the strategy hosts and gateways listed
by the deployment's registry, the ``api-desk``) and awaits their answers; the act methods call
the RiskGuard's ``set_trading_state`` and ``set_limit``, the methods ``xmc halt|reduce|resume``
and ``xmc limits set`` call. A test gives the app another object with the same methods.
"""
from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ..model.names import COORDINATOR_NAME, REGISTRY_NAME, RISK_GUARD_NAME
from .desk import DESK_NAME, raise_if_error


class Backend(Protocol):
    async def describe(self) -> dict[str, Any]: ...
    async def risk_status(self) -> dict[str, Any]: ...
    async def coordinator_status(self) -> dict[str, Any]: ...
    async def summaries(self) -> list[dict[str, Any]]: ...
    async def strategies(self) -> dict[str, Any]: ...
    async def venues(self) -> dict[str, Any]: ...
    async def set_trading_state(self, scope: str, key: str | None, state: str, operator: str, reason: str,
                                by: dict[str, Any] | None = None) -> dict[str, Any]: ...
    async def set_limit(self, section: str, key: str | None, field: str | None, value: Any, operator: str,
                        by: dict[str, Any] | None = None) -> dict[str, Any]: ...
    async def resolve(self, decision_id: str, operator: str, note: str, by: dict[str, Any] | None = None) -> dict[str, Any]: ...
    async def accept_positions(self, operator: str, note: str, by: dict[str, Any] | None = None) -> dict[str, Any]: ...
    async def desk(self, method: str, *args: Any) -> Any: ...
    async def quotes(self) -> dict[str, Any]: ...
    async def config(self) -> dict[str, Any]: ...
    async def submit(self, intent: Any) -> dict[str, Any]: ...
    async def watch_position(self, name: str, policy: dict[str, Any], accounts: dict[str, str],
                             decision_ids: list[str], book_as: str, operator: str) -> dict[str, Any]: ...
    async def pair(self, decision_id: str) -> dict[str, Any] | None: ...


class BackendUnavailable(RuntimeError):
    """An actor the API needs is not there or did not answer (503)."""


class RayBackend:
    def __init__(self, namespace: str, timeout_s: float = 10.0, accept: Any = None) -> None:
        self.namespace = namespace
        self._accept = accept  # runtime.start_of_day.accept, handed down by the runtime that starts the API
        self.timeout_s = timeout_s
        self._handles: dict[str, Any] = {}
        self._legs: list[tuple[str, str, dict[str, str]]] | None = None

    def _actor(self, name: str) -> Any:
        import ray

        h = self._handles.get(name)
        if h is None:
            try:
                h = ray.get_actor(name, namespace=self.namespace)
            except ValueError:
                raise BackendUnavailable(f"no actor {name!r} in namespace {self.namespace!r}: is the deployment running?") from None
            self._handles[name] = h
        return h

    async def _call(self, name: str, method: str, *a: Any, timeout_s: float | None = None, **kw: Any) -> Any:
        import ray

        try:
            ref = getattr(self._actor(name), method).remote(*a, **kw)
            return await asyncio.wait_for(ref, timeout_s or self.timeout_s)
        except asyncio.TimeoutError:
            raise BackendUnavailable(f"{name} did not answer {method} within {timeout_s or self.timeout_s:g} s") from None
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
            self._handles.pop(name, None)
            raise BackendUnavailable(f"{name} is not available ({type(e).__name__}); it restarts by itself: retry") from None

    async def describe(self) -> dict[str, Any]:
        info = await self._call(REGISTRY_NAME, "describe")
        return {k: v for k, v in info.items() if k != "config"}

    async def risk_status(self) -> dict[str, Any]:
        return await self._call(RISK_GUARD_NAME, "status")

    async def coordinator_status(self) -> dict[str, Any]:
        return await self._call(COORDINATOR_NAME, "status")

    async def summaries(self) -> list[dict[str, Any]]:
        return await self._call(COORDINATOR_NAME, "summaries")

    async def strategies(self) -> dict[str, Any]:
        info = await self._call(REGISTRY_NAME, "describe")
        hosts = list((info.get("hosts") or {}).keys())
        res = await asyncio.gather(*(self._call(h, "status") for h in hosts), return_exceptions=True)
        out: dict[str, Any] = {}
        for h, r in zip(hosts, res):
            if isinstance(r, BaseException):
                for s in (info.get("hosts") or {}).get(h, []):
                    out[s] = {"host": h, "error": str(r)}
                continue
            for s, st in (r.get("strategies") or {}).items():
                out[s] = {**st, "host": h}
        return out

    async def venues(self) -> dict[str, Any]:
        info = await self._call(REGISTRY_NAME, "describe")
        procs: dict[str, str] = info.get("gateway_processes") or {g: g for g in info.get("gateways", [])}
        names = list(procs)
        res = await asyncio.gather(*(self._call(procs[g], "status", gateway=g) for g in names), return_exceptions=True)
        return {g: ({"error": str(r)} if isinstance(r, BaseException) else r) for g, r in zip(names, res)}

    async def quotes(self) -> dict[str, Any]:
        """The latest quote of every instrument a strategy trades, from its venue's gateway
        (``snapshot``): instrument -> {bid, ask, last, status, ts_ns} (prices as strings)."""
        if self._legs is None:
            info = await self._call(REGISTRY_NAME, "describe")
            from ..model.config import DeploymentConfig

            cfg = DeploymentConfig.model_validate(info.get("config") or {})
            procs: dict[str, str] = {g.actor_name: g.process_name for g in cfg.gateways}
            by_venue: dict[str, str] = {}
            for g in cfg.gateways:  # a venue's quote source: its first gateway
                by_venue.setdefault(g.venue, g.actor_name)
            legs = sorted({lg.instrument for s in cfg.strategies for lg in s.legs})
            self._legs = [(i, by_venue.get(cfg.instrument(i).venue, ""), procs) for i in legs]
        pairs = [(i, g, procs.get(g, g)) for i, g, procs in self._legs if g]
        res = await asyncio.gather(*(self._call(p, "snapshot", i, gateway=g) for i, g, p in pairs), return_exceptions=True)
        out: dict[str, Any] = {}
        for (i, _, _), q in zip(pairs, res):
            if q is None or isinstance(q, BaseException):
                continue
            out[i] = {"bid": None if q.bid is None else str(q.bid), "ask": None if q.ask is None else str(q.ask),
                      "last": None if q.last is None else str(q.last), "status": q.status.value, "ts_ns": q.ts_ns}
        return out

    async def config(self) -> dict[str, Any]:
        """The running deployment's configuration (the registry's copy)."""
        return (await self._call(REGISTRY_NAME, "describe")).get("config") or {}

    async def submit(self, intent: Any) -> dict[str, Any]:
        """A pair to the coordinator (``submit``: its risk checks, idempotent on the decision id)."""
        return await self._call(COORDINATOR_NAME, "submit", intent, timeout_s=self.timeout_s * 3)

    async def pair(self, decision_id: str) -> dict[str, Any] | None:
        return await self._call(COORDINATOR_NAME, "pairs", decision_id)

    async def watch_position(self, name: str, policy: dict[str, Any], accounts: dict[str, str],
                             decision_ids: list[str], book_as: str, operator: str) -> dict[str, Any]:
        """A hedge's position watched for its roll by the risk guard (``RiskGuard.watch_position``)."""
        return await self._call(RISK_GUARD_NAME, "watch_position", name, policy, accounts, decision_ids, book_as,
                                operator)

    async def set_trading_state(self, scope: str, key: str | None, state: str, operator: str, reason: str,
                                by: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._call(RISK_GUARD_NAME, "set_trading_state", scope, key, state, operator, reason, by,
                                timeout_s=self.timeout_s * 3)

    async def set_limit(self, section: str, key: str | None, field: str | None, value: Any, operator: str,
                        by: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._call(RISK_GUARD_NAME, "set_limit", section, key, field, value, operator, by,
                                timeout_s=self.timeout_s * 3)

    async def resolve(self, decision_id: str, operator: str, note: str, by: dict[str, Any] | None = None) -> dict[str, Any]:
        """The risk guard's ``resolve`` (what ``xmc resolve`` calls), run by a confirmation."""
        return await self._call(RISK_GUARD_NAME, "resolve", decision_id, operator, note, self.timeout_s, by,
                                timeout_s=self.timeout_s * 3)

    async def accept_positions(self, operator: str, note: str, by: dict[str, Any] | None = None) -> dict[str, Any]:
        """``runtime.start_of_day.accept`` (what ``xmc accept-positions`` calls), run by a confirmation."""
        if self._accept is None:
            raise BackendUnavailable("this API was started without the deployment's start-of-day acceptance: "
                                     "confirm it with `xmc confirm ID`; nothing changed")
        try:
            return await asyncio.to_thread(self._accept, self.namespace, operator, note, self.timeout_s, by)
        except LookupError as e:
            raise BackendUnavailable(str(e)) from None

    async def desk(self, method: str, *args: Any) -> Any:
        return raise_if_error(await self._call(DESK_NAME, "call", method, *args))
