"""The start-of-day gate of a deployment (:mod:`xmc_actors.core.start_of_day`): checked at every
start, lifted by an operator (``xmc accept-positions``)."""
from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Mapping

import ray

from ..core.attribution import attribution
from ..core.start_of_day import GATE_OPERATOR, StartOfDay, TradingDayWatch, assess, funds_differences
from ..model.names import REGISTRY_NAME, RISK_GUARD_NAME

log = logging.getLogger(__name__)


def check(risk: Any, registry: Any, resumed: Mapping[str, Any] | None, instrument_venue: Mapping[str, str],
          timeout_s: float, trigger: str = "start") -> StartOfDay:
    """Compare the positions the deployment starts from with the venues' and engage the gate on
    any difference. ``resumed``: what a start on an existing ledger already rebuilt and compared
    (``Deployment._resume_from_ledger``); None on a new ledger (the risk guard compares its empty
    book with the venues now: they may hold yesterday's positions) and at a trading day's change.
    The brokers' account readings are taken too (``poll_venues``): a reading that differs from the
    guard's figures beyond its tolerance (an open ``account_mismatch``) holds the gate as well.
    A gate still waiting for its operator stays engaged whatever a later check finds."""
    if resumed is None:
        rebuilt = ray.get(risk.rebuild_from_ledger.remote(), timeout=timeout_s) or {}
        if rebuilt.get("deferred"):
            rebuilt = ray.get(risk.await_verified.remote(timeout_s), timeout=timeout_s + 10) or rebuilt
    else:
        rebuilt = resumed
    funds: list[dict[str, Any]] = []
    try:
        ray.get(risk.poll_venues.remote(), timeout=timeout_s)
        funds = funds_differences((ray.get(risk.status.remote(), timeout=timeout_s) or {}).get("open_alerts", []))
    except Exception as e:  # noqa: BLE001 - unread funds hold the gate too: an operator decides
        log.warning("start of day: the brokers' account readings were not taken: %s", e)
        funds = [{"account": "*", "message": f"the brokers' account readings were not taken: {type(e).__name__}: {e}"[:300]}]
    gate = assess(rebuilt, instrument_venue, funds, trigger)
    before = (ray.get(registry.describe.remote(), timeout=timeout_s) or {}).get("start_of_day") or {}
    if not gate.engaged and before.get("engaged"):
        return StartOfDay.from_dict(before)  # differences found earlier still wait for an operator
    if gate.engaged:
        ray.get(risk.set_trading_state.remote("global", None, "REDUCING", GATE_OPERATOR, gate.reason()),
                timeout=timeout_s)
    ray.get(registry.update.remote(start_of_day=gate.as_dict()), timeout=timeout_s)
    return gate


class DayGate:
    """The gate again at each venue's trading-day change, for the venues of live gateways (a
    replay's days are market time and pass in seconds: not a start of day). ``poll()`` is cheap
    and called from the deployment's run loop; it looks at the calendars every ``every_s``."""

    def __init__(self, risk: Any, registry: Any, cfg: Any, live_venues: Iterable[str], timeout_s: float,
                 every_s: float = 30.0) -> None:
        from ..core.calendar import instrument_session_state

        insts: dict[str, Any] = {}
        for i in cfg.instruments:
            insts.setdefault(i.venue, i)
        venues = {v.code: v for v in cfg.venues}

        def trading_day(code: str, now_ns: int) -> Any:
            if code not in venues or code not in insts:
                return None
            return instrument_session_state(venues[code], insts[code], now_ns).trading_day

        self.risk, self.registry, self.timeout_s, self.every_s = risk, registry, timeout_s, every_s
        self.instrument_venue = {i.id: i.venue for i in cfg.instruments}
        self.watch = TradingDayWatch([v for v in live_venues if v in venues], trading_day)
        self._next = 0.0
        self.watch.changed(time.time_ns())  # today's days, recorded

    def poll(self) -> StartOfDay | None:
        """The gate of a check run now because a venue's day changed; None when none did."""
        if time.monotonic() < self._next:
            return None
        self._next = time.monotonic() + self.every_s
        before = dict(self.watch.seen)
        changed = self.watch.changed(time.time_ns())
        if not changed:
            return None
        trigger = "trading day " + ", ".join(f"{v} {d.isoformat()}" for v, d in sorted(changed.items()))
        try:
            return check(self.risk, self.registry, None, self.instrument_venue, self.timeout_s, trigger)
        except Exception as e:  # noqa: BLE001 - the deployment runs on; the change is checked again next poll
            log.error("start of day at %s: the check failed (tried again in %.0f s): %s", trigger, self.every_s, e)
            for v in changed:  # not seen yet: the next poll finds the same change and checks again
                self.watch.seen[v] = before.get(v)
            return None


def accept(namespace: str, operator: str, note: str, timeout_s: float = 10.0,
           by: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Lift the gate of the deployment in ``namespace`` (the driver is connected to its Ray):
    the differences are accepted as the venues report them, the deployment (and the venues the
    differences were on) return to ACTIVE, the acceptance is recorded by the risk guard
    (OPERATOR, naming the operator, the differences and the note). ValueError when there is
    nothing to accept or the operator or note is missing; LookupError without a deployment.
    ``by``: the operator's role and channel, recorded with each event (core/attribution.py)."""
    by = {k: v for k, v in attribution(operator, by).items() if k != "operator"}  # a wrong one: nothing done
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
            res = ray.get(risk.set_trading_state.remote(scope, key, "ACTIVE", operator.strip(), reason, by),
                          timeout=timeout_s)
            done[name] = res
        elif cur != "ACTIVE":
            skipped[name] = f"{cur}: left as it is (not the gate's; resume it yourself if it should go)"
    # the acceptance itself, on the record whatever the states were (resumed by hand before?)
    rec = ray.get(risk.record_acceptance.remote(operator.strip(), reason, gate.as_dict(), by), timeout=timeout_s)
    ray.get(registry.update.remote(start_of_day=gate.as_dict()), timeout=timeout_s)
    return {"accepted": gate.as_dict(), "recorded": rec, "resumed": sorted(done), "skipped": skipped,
            "ok": all(r.get("ok", True) for r in done.values() if isinstance(r, dict))}
