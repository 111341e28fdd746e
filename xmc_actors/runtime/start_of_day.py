"""The start-of-day gate of a deployment (:mod:`xmc_actors.core.start_of_day`): checked at every
start, lifted by an operator (``xmc accept-positions``)."""
from __future__ import annotations

import time
from typing import Any, Mapping

import ray

from ..core.start_of_day import GATE_OPERATOR, StartOfDay, assess
from ..model.names import REGISTRY_NAME, RISK_GUARD_NAME


def check(risk: Any, registry: Any, resumed: Mapping[str, Any] | None, instrument_venue: Mapping[str, str],
          timeout_s: float) -> StartOfDay:
    """Compare the positions the deployment starts from with the venues' and engage the gate on
    any difference. ``resumed``: what a start on an existing ledger already rebuilt and compared
    (``Deployment._resume_from_ledger``); None on a new ledger, where the risk guard compares its
    empty book with the venues now (the venues may hold yesterday's positions)."""
    if resumed is None:
        rebuilt = ray.get(risk.rebuild_from_ledger.remote(), timeout=timeout_s) or {}
        if rebuilt.get("deferred"):
            rebuilt = ray.get(risk.await_verified.remote(timeout_s), timeout=timeout_s + 10) or rebuilt
    else:
        rebuilt = resumed
    gate = assess(rebuilt, instrument_venue)
    if gate.engaged:
        ray.get(risk.set_trading_state.remote("global", None, "REDUCING", GATE_OPERATOR, gate.reason()),
                timeout=timeout_s)
    ray.get(registry.update.remote(start_of_day=gate.as_dict()), timeout=timeout_s)
    return gate


def accept(namespace: str, operator: str, note: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """Lift the gate of the deployment in ``namespace`` (the driver is connected to its Ray):
    the differences are accepted as the venues report them, the deployment (and the venues the
    differences were on) return to ACTIVE, the acceptance is recorded by the risk guard
    (OPERATOR, naming the operator, the differences and the note). ValueError when there is
    nothing to accept or the operator or note is missing; LookupError without a deployment."""
    try:
        registry = ray.get_actor(REGISTRY_NAME, namespace=namespace)
        risk = ray.get_actor(RISK_GUARD_NAME, namespace=namespace)
    except ValueError:
        raise LookupError(f"no running deployment in namespace {namespace!r}") from None
    info = ray.get(registry.describe.remote(), timeout=timeout_s)
    if not info.get("start_of_day"):
        raise ValueError("this deployment has no start-of-day check on record (started by an older version?)")
    gate = StartOfDay.from_dict(info["start_of_day"])
    reason = gate.accept(operator, note, time.time_ns())
    states = (ray.get(risk.status.remote(), timeout=timeout_s) or {}).get("trading_states", {})
    done: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for scope, key in [("global", None)] + [("venue", v) for v in gate.venues]:
        name = "global" if key is None else f"venue:{key}"
        cur = states.get(name, "ACTIVE")
        if cur == "REDUCING":
            res = ray.get(risk.set_trading_state.remote(scope, key, "ACTIVE", operator.strip(), reason), timeout=timeout_s)
            done[name] = res
        elif cur != "ACTIVE":
            skipped[name] = f"{cur}: left as it is (not the gate's; resume it yourself if it should go)"
    ray.get(registry.update.remote(start_of_day=gate.as_dict()), timeout=timeout_s)
    return {"accepted": gate.as_dict(), "resumed": sorted(done), "skipped": skipped,
            "ok": all(r.get("ok", True) for r in done.values() if isinstance(r, dict))}
