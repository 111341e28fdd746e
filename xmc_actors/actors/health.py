"""Probing venue gateways on a Ray cluster and feeding :class:`~xmc_actors.core.venue_health.VenueHealth`.

The coordinator (an actor) probes its gateways with it, so it sits with the actors; the
runtime's placement checks use :func:`actor_state` from here.

The runtime calls :func:`probe_gateways` periodically (every second or so) from the driver,
or :func:`probe_gateways_async` from an async supervisor actor. One probe is one
``status()`` call per gateway, all concurrent, bounded by ``timeout_s``.
"""
from __future__ import annotations

import asyncio
from typing import Any, Mapping

from ..core.venue_health import VenueChange, VenueHealth

__all__ = ["probe_gateways", "probe_gateways_async", "actor_state"]


def actor_state(handle: Any) -> tuple[str | None, str]:
    """The actor's state and death cause from the GCS; works without the dashboard."""
    try:
        import ray._private.state as gcs_state

        info = gcs_state.actors(handle._actor_id.hex())
    except Exception:  # noqa: BLE001 - private API; diagnosis is best-effort
        return None, ""
    if not isinstance(info, dict):
        return None, ""
    return info.get("State"), str(info.get("DeathCause") or "").strip()


_actor_state = actor_state


# A restartable gateway whose node died is RESTARTING (or pending creation on no node):
# calls to it queue silently, so a time-out alone would take several probes to notice.
_LOST_STATES = ("RESTARTING", "DEAD", "PENDING_CREATION", "DEPENDENCIES_UNREADY")


def _lost_reason(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:300]


def _on_timeout(health: VenueHealth, venue: str, state: str | None, cause: str,
                timeout_s: float) -> VenueChange | None:
    """A probe that did not answer: the gateway is lost if the GCS says Ray is restarting it
    (its node gone: calls to it queue silently), otherwise it counts one time-out."""
    if state in _LOST_STATES:
        return health.on_gateway_lost(venue, f"gateway actor {state}" + (f": {cause}" if cause else ""))
    return health.on_probe_timeout(venue, timeout_s)


def probe_gateways(
    health: VenueHealth,
    gateways_by_venue: Mapping[str, Any],
    timeout_s: float = 2.0,
    method: str = "status",
) -> list[VenueChange]:
    """Probe every gateway once (sync; for the driver) and return the venue changes.

    A gateway whose call fails with ``RayActorError`` (died, or unavailable because its
    node is gone) is *lost*: its venue goes DOWN at once. One that does not answer in
    ``timeout_s`` counts a time-out.
    """
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    refs = {}
    changes: list[VenueChange] = []
    for venue, handle in gateways_by_venue.items():
        try:
            refs[venue] = getattr(handle, method).remote()
        except RayActorError as exc:
            c = health.on_gateway_lost(venue, _lost_reason(exc))
            if c:
                changes.append(c)
    if refs:
        ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    for venue, ref in refs.items():
        try:
            status = ray.get(ref, timeout=0)
        except GetTimeoutError:
            c = _on_timeout(health, venue, *_actor_state(gateways_by_venue[venue]), timeout_s)
        except RayActorError as exc:
            c = health.on_gateway_lost(venue, _lost_reason(exc))
        except Exception as exc:  # noqa: BLE001 - status() raising means the gateway is not healthy
            c = health.on_gateway_lost(venue, f"status() raised {_lost_reason(exc)}")
        else:
            c = health.on_probe_ok(venue, status if isinstance(status, dict) else None)
        if c:
            changes.append(c)
    return changes


async def probe_gateways_async(
    health: VenueHealth,
    gateways_by_venue: Mapping[str, Any],
    timeout_s: float = 2.0,
    method: str = "status",
) -> list[VenueChange]:
    """Same as :func:`probe_gateways`, awaiting object refs (for async actors: no ``ray.get``)."""
    from ray.exceptions import RayActorError

    async def one(venue: str, handle: Any) -> VenueChange | None:
        try:
            status = await asyncio.wait_for(getattr(handle, method).remote(), timeout_s)
        except asyncio.TimeoutError:
            return _on_timeout(health, venue, *await asyncio.to_thread(_actor_state, handle), timeout_s)
        except RayActorError as exc:
            return health.on_gateway_lost(venue, _lost_reason(exc))
        except Exception as exc:  # noqa: BLE001
            return health.on_gateway_lost(venue, f"status() raised {_lost_reason(exc)}")
        return health.on_probe_ok(venue, status if isinstance(status, dict) else None)

    results = await asyncio.gather(*(one(v, h) for v, h in gateways_by_venue.items()))
    return [c for c in results if c is not None]
