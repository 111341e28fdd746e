"""Venue health: is each venue's gateway there and connected? (交易所连接状态)

:class:`VenueHealth` is the pure core. The runtime feeds it the outcome of each probe of a
gateway (``runtime.health.probe_gateways`` calls ``status()`` on every gateway actor) and
it decides the venue's state and publishes every change to its subscribers (the
coordinators and strategies stop sending to a DOWN venue) and to the ledger.

Rules:

- a gateway that **died** or is **unavailable** (``ActorDiedError`` /
  ``ActorUnavailableError``, its node gone) is a definitive failure: the venue is DOWN at
  once;
- a probe that only **timed out** marks the venue DOWN after ``timeouts_to_down``
  consecutive time-outs (a GC pause is not an outage);
- a gateway that answers but reports ``state == "DOWN"`` (lost its venue line) makes the
  venue DOWN;
- a gateway that answers ``UP`` makes the venue UP again (e.g. it was restarted on a node
  that came back).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Iterable, Mapping

from ..model.config import route_venue
from ..model.events import EventKind
from .clock import Clock
from .sink import EventMaker, EventSink

__all__ = ["VenueState", "VenueChange", "VenueHealth", "VenueNotices", "venue_states"]


class VenueState(str, Enum):
    UNKNOWN = "UNKNOWN"
    UP = "UP"
    DOWN = "DOWN"


@dataclass(frozen=True)
class VenueChange:
    """One venue state change, as published to subscribers."""

    venue: str
    old: VenueState
    new: VenueState
    ts_ns: int
    reason: str


Subscriber = Callable[[VenueChange], None]


class VenueHealth:
    """Tracks the state of each venue from gateway probes and publishes changes.

    Parameters
    ----------
    venues
        The venues to track; each starts UNKNOWN.
    clock
        Injected clock; stamps changes.
    timeouts_to_down
        Consecutive probe time-outs after which a venue is DOWN.
    sink
        Optional event sink: every change is recorded as a ``LIFECYCLE`` event.
    """

    def __init__(
        self,
        venues: Iterable[str],
        clock: Clock,
        *,
        timeouts_to_down: int = 2,
        sink: EventSink | None = None,
    ) -> None:
        if timeouts_to_down < 1:
            raise ValueError(f"timeouts_to_down: must be >= 1, got {timeouts_to_down}")
        self._clock = clock
        self._states: dict[str, VenueState] = {v: VenueState.UNKNOWN for v in venues}
        self._reasons: dict[str, str] = {v: "" for v in self._states}
        self._timeouts: dict[str, int] = {v: 0 for v in self._states}
        self._timeouts_to_down = timeouts_to_down
        self._subscribers: list[Subscriber] = []
        self._sink = sink
        self._events = EventMaker(clock, "venue-health") if sink is not None else None
        self.subscriber_errors = 0

    def track(self, venue: str) -> None:
        """Start tracking ``venue`` (UNKNOWN until its first probe); no-op if tracked."""
        if venue not in self._states:
            self._states[venue] = VenueState.UNKNOWN
            self._reasons[venue] = ""
            self._timeouts[venue] = 0

    # -- queries -------------------------------------------------------------------------
    def state(self, venue: str) -> VenueState:
        try:
            return self._states[venue]
        except KeyError:
            raise KeyError(f"venue health: unknown venue {venue!r} (tracked: {sorted(self._states)})") from None

    def snapshot(self) -> dict[str, dict[str, str]]:
        return {v: {"state": s.value, "reason": self._reasons[v]} for v, s in self._states.items()}

    def down(self) -> list[str]:
        return sorted(v for v, s in self._states.items() if s is VenueState.DOWN)

    # -- subscription --------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> None:
        """``callback(change)`` is called for every later change, in order."""
        self._subscribers.append(callback)

    # -- inputs --------------------------------------------------------------------------
    def on_probe_ok(self, venue: str, status: dict | None = None) -> VenueChange | None:
        """The gateway answered. ``status["state"] == "DOWN"`` means it lost its venue."""
        self.state(venue)
        self._timeouts[venue] = 0
        reported = str((status or {}).get("state", "UP")).upper()
        if reported == "DOWN":
            return self._set(venue, VenueState.DOWN, "gateway reports its venue connection DOWN")
        return self._set(venue, VenueState.UP, "gateway answered")

    def on_gateway_lost(self, venue: str, reason: str) -> VenueChange | None:
        """The gateway actor died or is unavailable (its node is gone): DOWN at once."""
        self.state(venue)
        self._timeouts[venue] = 0
        return self._set(venue, VenueState.DOWN, f"gateway lost: {reason}")

    def on_probe_timeout(self, venue: str, timeout_s: float) -> VenueChange | None:
        """The gateway did not answer within ``timeout_s``."""
        self.state(venue)
        self._timeouts[venue] += 1
        n = self._timeouts[venue]
        if n >= self._timeouts_to_down:
            return self._set(venue, VenueState.DOWN, f"gateway did not answer {n} probe(s) of {timeout_s:g}s")
        return None

    # -- internals -----------------------------------------------------------------------
    def _set(self, venue: str, new: VenueState, reason: str) -> VenueChange | None:
        old = self._states[venue]
        if old is new:
            return None
        self._states[venue] = new
        self._reasons[venue] = reason
        change = VenueChange(venue, old, new, self._clock.now_ns(), reason)
        if self._sink is not None and self._events is not None:
            self._sink.emit(self._events.make(
                EventKind.LIFECYCLE, venue=venue, reason=f"VENUE_{new.value}: {reason}",
                ts_ns=change.ts_ns, old=old.value, new=new.value,
            ))
        for cb in list(self._subscribers):
            try:
                cb(change)
            except Exception:  # noqa: BLE001 - one bad subscriber must not hide the change from others
                self.subscriber_errors += 1
        return change


class VenueNotices:
    """Which venue states a coordinator's strategies and risk guard must be told: each venue's
    state when it changes from what they were last told (``tell(venue, down)`` is True then).

    A first life tells nothing of a venue's first answer (UP: they assume UP). A restarted
    coordinator does not know what its previous life told them: a strategy and the risk guard
    may still hold a DOWN it sent, the venue having come back while this coordinator was dead
    (its automatic REDUCING, the strategy's VENUE_DOWN block, would hold for the rest of the
    day). So a restarted one tells each venue's first state, whatever it is; UP where they
    already hold UP changes nothing for them."""

    def __init__(self, restarted: bool = False) -> None:
        self.restarted = restarted
        self.told: dict[str, bool] = {}   # venue -> DOWN as last told

    def tell(self, venue: str, down: bool) -> bool:
        prev = self.told.get(venue)
        if prev is None and not self.restarted:
            prev = False
        if prev == down:
            return False
        self.told[venue] = down
        return True


def venue_states(*snapshots: Mapping[str, Any]) -> dict[str, str]:
    """Each venue's state as strategies and the risk guard are told it, from gateway health
    snapshots (:meth:`VenueHealth.snapshot`: routing key, ``VENUE`` or ``VENUE/ACCOUNT``, to
    ``{"state": ...}``) of one coordinator or several: ``DOWN`` while any of the venue's
    gateways is DOWN in any of them, ``UP`` once one has answered and none is DOWN. A venue none
    of whose gateways has answered yet (``UNKNOWN``), and an unreadable entry, is left out."""
    out: dict[str, str] = {}
    for snap in snapshots:
        for key, h in snap.items():
            st = str(h.get("state", "")).upper() if isinstance(h, Mapping) else ""
            if st not in (VenueState.UP.value, VenueState.DOWN.value):
                continue
            venue = route_venue(str(key))
            if st == VenueState.DOWN.value or venue not in out:
                out[venue] = st
    return out
