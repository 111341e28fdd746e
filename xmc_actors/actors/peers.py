"""How an actor finds the rest of its deployment: by name, in its own namespace.

An actor restarted by Ray keeps no handle it was given (its constructor's arguments are plain
data and names, architecture.md "Constructor arguments stay small and hold no handle"), so
after a restart it looks its peers up again. Every actor does that here, in one way:
:class:`Peers` reads the deployment's registry (``deployment``: which gateways, in which
processes, which hosts with which strategies, the coordinator's and the risk guard's names) and
turns names into handles; a gateway hosted in a gateway group's process is reached through a
:class:`GatewayView` of that process. Used by the coordinator's recovery, a gateway's re-join,
a strategy host's re-subscription and restore, and the risk guard's rebuild.
"""
from __future__ import annotations

from typing import Any, Mapping

import ray

from ..model.names import COORDINATOR_NAME, REGISTRY_NAME, RISK_GUARD_NAME


class _BoundCall:
    __slots__ = ("method", "gateway")

    def __init__(self, method: Any, gateway: str) -> None:
        self.method, self.gateway = method, gateway

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("gateway", self.gateway)
        return self.method.remote(*args, **kwargs)

    def options(self, **options: Any) -> "_BoundCall":
        return _BoundCall(self.method.options(**options), self.gateway)


class GatewayView:
    """One gateway of a gateway process, used like an actor handle: ``view.place_wire.remote(b)``
    calls ``handle.place_wire.remote(b, gateway=<name>)``. Picklable (it travels to actors like a
    handle); ``view.handle`` is the process's actor handle, ``view.gateway`` the gateway's name,
    and ``_actor_id`` is the process's (two views of one group share it)."""

    __slots__ = ("handle", "gateway")

    def __init__(self, handle: Any, gateway: str) -> None:
        self.handle, self.gateway = handle, gateway

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name.startswith("_"):  # _actor_id and the like: the process's
            return getattr(self.handle, name)
        return _BoundCall(getattr(self.handle, name), self.gateway)

    def __reduce__(self) -> tuple[Any, ...]:
        return (GatewayView, (self.handle, self.gateway))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GatewayView) and other.gateway == self.gateway and other.handle == self.handle

    def __hash__(self) -> int:
        return hash((self.gateway, self.handle._actor_id))

    def __repr__(self) -> str:
        return f"GatewayView({self.gateway!r} in actor {self.handle._actor_id.hex()[:12]})"


def actor_of(handle: Any) -> tuple[Any, str | None]:
    """``(actor handle, gateway name or None)`` for a handle or a :class:`GatewayView`."""
    if isinstance(handle, GatewayView):
        return handle.handle, handle.gateway
    return handle, None


def find_gateway_view(gateway: str, namespace: str, processes: Mapping[str, str] | None = None) -> GatewayView:
    """A view of the running gateway ``gateway`` (its actor name), found by the name of the
    process that hosts it: ``processes[gateway]`` (the deployment registry's
    ``gateway_processes``), else the gateway's own name. Raises ``ValueError`` if no such actor."""
    return GatewayView(ray.get_actor((processes or {}).get(gateway, gateway), namespace=namespace), gateway)



class Peers:
    """The deployment's actors seen from one actor, found by name in ``namespace`` (default:
    the calling actor's own). Lookups raise ``ValueError`` (Ray's) when no such actor is alive;
    :meth:`find` answers None instead."""

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace if namespace is not None else ray.get_runtime_context().namespace

    async def describe(self) -> dict[str, Any]:
        """The deployment registry's description (``gateways``, ``gateway_processes``,
        ``gateway_routes``, ``hosts``, ``coordinator``, ``risk_guard``, ...). Raises when there
        is no registry (a bare actor in a test)."""
        return await ray.get_actor(REGISTRY_NAME, namespace=self.namespace).describe.remote()

    def actor(self, name: str) -> Any:
        """The named actor's handle; raises ``ValueError`` when it is not alive."""
        return ray.get_actor(name, namespace=self.namespace)

    def find(self, name: str) -> Any | None:
        """The named actor's handle, or None when it is gone or was never named."""
        try:
            return ray.get_actor(name, namespace=self.namespace)
        except Exception:  # noqa: BLE001 - not found: the caller decides what that means
            return None

    def gateway(self, gateway: str, info: Mapping[str, Any] | None = None, *, process: str | None = None) -> GatewayView:
        """A view of the gateway named ``gateway``, in the process ``process`` or the one the
        registry's ``info`` names for it (its own name when it has its own process)."""
        if process is not None:
            return GatewayView(self.actor(process), gateway)
        return find_gateway_view(gateway, self.namespace, (info or {}).get("gateway_processes"))

    def hosts(self, info: Mapping[str, Any]) -> dict[str, Any]:
        """Host name -> handle for every strategy host the registry lists that is alive."""
        out: dict[str, Any] = {}
        for name in (info.get("hosts") or {}):
            h = self.find(name)
            if h is not None:
                out[name] = h
        return out

    def coordinator(self, info: Mapping[str, Any] | None = None) -> Any:
        """The deployment's coordinator (its name from the registry, else the default)."""
        return self.actor(str((info or {}).get("coordinator") or COORDINATOR_NAME))

    def risk_guard(self, info: Mapping[str, Any] | None = None) -> Any:
        """The deployment's risk guard (its name from the registry, else the default)."""
        return self.actor(str((info or {}).get("risk_guard") or RISK_GUARD_NAME))

    def ledger_shards(self, shards: int) -> list[Any]:
        """The ledger's ``shards`` shard actors (``ledger-0`` ...)."""
        return [self.actor(f"ledger-{i}") for i in range(shards)]
