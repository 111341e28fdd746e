"""The lock-step driver of replays run as fast as possible (:class:`ReplayDriver`), and which
venues and strategies live on replayed time.

Split out of :mod:`xmc_actors.runtime.deploy` (which re-exports every name here). What an actor
call raises when the actor died or is restarting (:data:`ACTOR_FAULTS`) and the fault a deployment
gives up with (:class:`DeploymentFault`) live here because the driver is their first user.
"""
from __future__ import annotations

from typing import Any, Callable

import ray

from ..model.config import DeploymentConfig


def replayed_venues(cfg: DeploymentConfig) -> set[str]:
    """Venues whose quotes are replayed as fast as possible (by the replay driver, in replayed
    time): the quote source of the venue is a ``replay`` feed without a ``speed``."""
    out = set()
    for venue, g in cfg.quote_sources().items():
        if g.feed.kind == "replay" and g.feed.params.get("speed", "max") == "max":
            out.add(venue)
    return out


def replayed_strategies(cfg: DeploymentConfig) -> set[str]:
    """Strategies whose two legs are on replayed venues: they live on the quotes' own time
    (their host's ``time_source="quotes"``), and so does the pre-trade check of their pairs."""
    venues = replayed_venues(cfg)
    return {s.name for s in cfg.strategies if {cfg.instrument(leg.instrument).venue for leg in s.legs} <= venues}


class DeploymentFault(RuntimeError):
    """An actor of the deployment stayed unavailable past the time allowed for its restart."""


# what a call to an actor that died or is restarting raises (its outcome is unknown)
ACTOR_FAULTS: tuple[type[BaseException], ...] = (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError)


class ReplayDriver:
    """Steps every replay gateway through one merged timeline, settling after each step.

    Each step advances all replay gateways to the earliest next event among them (so events
    of different venues interleave in true time order), then waits until what that event
    caused has happened (quotes delivered, pairs finished) before the next one: the settle
    loop of a deterministic replay.

    An actor that dies during a step is a fault to recover from, not the end of the run
    (``recover``): the driver waits for Ray to restart it, brings every replay gateway back to
    the replayed time the step had reached (a restarted one starts its file again and passes
    over what was already replayed: :meth:`VenueGateway.skip_to`), and goes on.
    """

    def __init__(self, gateways: dict[str, Any], settle: Callable[[], None],
                 recover: Callable[[str, BaseException], None] | None = None) -> None:
        self.gateways = gateways
        self.settle = settle
        self.recover = recover
        self.now_ns: int | None = None
        self.done = not gateways
        self.events = 0
        self.resyncs = 0
        self._next: dict[str, int | None] | None = None

    def step(self) -> int:
        """One step; returns how many feed events the gateways processed."""
        if self.done:
            return 0
        try:
            return self._step()
        except ACTOR_FAULTS as e:
            if self.recover is None:
                raise
            self.recover("replay step", e)  # waits until the deployment answers again, or raises
            self.resync()
            return 0

    def resync(self) -> None:
        """Bring every replay gateway to the replayed time reached so far (after a restart)."""
        self.resyncs += 1
        self._next = None
        if self.now_ns is None:
            return
        names = list(self.gateways)
        results = ray.get([self.gateways[n].skip_to.remote(self.now_ns) for n in names], timeout=60)
        self._next = {n: nxt for n, (_, nxt) in zip(names, results)}
        self.settle()

    def _step(self) -> int:
        if self._next is None:
            names = list(self.gateways)
            self._next = dict(zip(names, ray.get([self.gateways[n].next_ts.remote() for n in names], timeout=60)))
        pending = [t for t in self._next.values() if t is not None]
        if not pending:
            self.done = True
            return 0
        target = self.now_ns = min(pending)
        names = list(self.gateways)
        results = ray.get([self.gateways[n].advance_to.remote(target) for n in names], timeout=60)
        self._next = {n: nxt for n, (_, nxt) in zip(names, results)}
        count = sum(c for c, _ in results)
        self.events += count
        self.settle()
        return count


__all__ = ["ACTOR_FAULTS", "DeploymentFault", "ReplayDriver", "replayed_strategies", "replayed_venues"]
