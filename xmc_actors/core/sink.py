"""The ledger interface every actor writes through, and an event maker.

:class:`EventSink` is what core logic and actors are handed. ``emit`` is fire-and-forget
(hot path); ``emit_durable`` returns once the event is durable (for the few events a sender
must not go on without). :class:`MemorySink` keeps events in memory (tests, replays); the
ledger client (``xmc_actors.ledger``) batches them to DuckDB ledger actors.
"""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping, Protocol, runtime_checkable

from ..model.events import Event, EventKind, trusted_event
from .clock import Clock, EventIdGenerator

_log = logging.getLogger(__name__)


@runtime_checkable
class EventSink(Protocol):
    def emit(self, event: Event) -> None:  # pragma: no cover - protocol
        ...

    def emit_many(self, events: Iterable[Event]) -> None:  # pragma: no cover - protocol
        ...


class MemorySink:
    """Keeps every event in order; de-duplicates on ``event_id`` like the ledger does."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            if event.event_id in self._ids:
                return
            self._ids.add(event.event_id)
            self.events.append(event)

    def emit_many(self, events: Iterable[Event]) -> None:
        for e in events:
            self.emit(e)

    def by_decision(self, decision_id: str) -> list[Event]:
        return [e for e in self.events if e.decision_id == decision_id]

    def kinds(self) -> dict[EventKind, int]:
        out: dict[EventKind, int] = defaultdict(int)
        for e in self.events:
            out[e.kind] += 1
        return dict(out)


class NullSink:
    """Drops everything. Only for benchmarks that measure a floor without a trail."""

    def emit(self, event: Event) -> None:
        pass

    def emit_many(self, events: Iterable[Event]) -> None:
        pass


class Deferred:
    """A payload value computed only when its event is built (a :class:`HeldSink` builds it
    after the orders of the batch have left)."""

    __slots__ = ("fn", "args", "kwargs")

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


def build_event(maker: "EventMaker", spec: Mapping[str, Any]) -> Event:
    """The event an event spec describes (``kind`` and :meth:`EventMaker.make`'s keywords; a
    :class:`Deferred` value is computed now)."""
    spec = dict(spec)
    for k, v in spec.items():
        if type(v) is Deferred:
            spec[k] = v()
    return maker.make(spec.pop("kind"), **spec)


class GuardedSink:
    """Writes to ``into``; a failure of ``into`` is logged and counted, never raised into the
    core that wrote (an actor's ledger client failing must not stop its trading logic)."""

    __slots__ = ("into", "who", "failures")

    def __init__(self, into: EventSink, who: str) -> None:
        self.into = into
        self.who = who
        self.failures = 0

    def emit(self, event: Event) -> None:
        try:
            self.into.emit(event)
        except Exception:  # noqa: BLE001 - see the class docstring
            self.failures += 1
            _log.exception("%s: could not write an event (%s)", self.who,
                           getattr(getattr(event, "kind", None), "value", "?"))

    def emit_many(self, events: Iterable[Event]) -> None:
        events = list(events)
        if not events:
            return
        try:
            self.into.emit_many(events)
        except Exception:  # noqa: BLE001 - see the class docstring
            self.failures += 1
            _log.exception("%s: could not write %d event(s)", self.who, len(events))


class HeldSink:
    """An :class:`EventSink` that holds what a core writes until its shell calls :meth:`release`.

    The pair coordinator's core writes its events while it decides; the coordinator sends the
    batch's orders first and releases the events on the next loop turn, so building them (ids,
    pydantic, a ``Deferred`` intent dump) is not on the orders' path. :meth:`emit_spec` holds an
    event not built yet (:func:`write_spec` picks it when the sink is a HeldSink). Order is kept:
    events reach ``into`` in the order they were written."""

    __slots__ = ("into", "_held")

    def __init__(self, into: EventSink) -> None:
        self.into = into
        self._held: list[Event | tuple["EventMaker", Mapping[str, Any]]] = []

    def emit(self, event: Event) -> None:
        self._held.append(event)

    def emit_many(self, events: Iterable[Event]) -> None:
        self._held.extend(events)

    def emit_spec(self, maker: "EventMaker", spec: Mapping[str, Any]) -> None:
        self._held.append((maker, spec))

    def __len__(self) -> int:
        return len(self._held)

    def release(self) -> int:
        """Build what is held and write it to ``into``, in order; returns how many events."""
        if not self._held:
            return 0
        held, self._held = self._held, []
        self.into.emit_many([e if type(e) is not tuple else build_event(e[0], e[1]) for e in held])
        return len(held)


def write_spec(sink: EventSink, maker: "EventMaker", spec: Mapping[str, Any]) -> None:
    """Write the event ``spec`` describes to ``sink``: held unbuilt by a :class:`HeldSink`,
    built now for any other sink."""
    if type(sink) is HeldSink:
        sink.emit_spec(maker, spec)
    else:
        sink.emit(build_event(maker, spec))


class EventMaker:
    """Builds envelopes with time-ordered ids and the calibrated clock of one actor.

    ``wall``: an actor whose own clock is market time (a replay's SimClock, a strategy host
    following quote time) still stamps the trail in the time every other actor uses: each
    event's ``ts_ns`` and id come from ``wall``, and the market time (the ``ts_ns`` the caller
    gave, else ``clock``'s) goes into the payload as ``market_ts_ns``. So one pair's events are
    on one time axis, and time-range queries and reports see a replay where it ran.
    """

    __slots__ = ("clock", "actor", "wall", "_ids")

    def __init__(self, clock: Clock, actor: str, node: int | None = None, *, wall: Clock | None = None) -> None:
        self.clock = clock
        self.actor = actor
        self.wall = wall
        self._ids = EventIdGenerator(wall or clock, node)

    def new_id(self) -> str:
        return self._ids.next()

    def make(
        self,
        kind: EventKind,
        *,
        decision_id: str = "",
        parent_id: str = "",
        strategy: str = "",
        account: str = "",
        venue: str = "",
        instrument: str = "",
        reason: str = "",
        latency_us: float | None = None,
        ts_ns: int | None = None,
        **payload: Any,
    ) -> Event:
        if self.wall is not None:
            payload["market_ts_ns"] = self.clock.now_ns() if ts_ns is None else ts_ns
            ts_ns = self.wall.now_ns()
        elif ts_ns is None:
            ts_ns = self.clock.now_ns()
        # Fast path: every field already has its exact type (the normal case for internal
        # callers), so the validated constructor would only copy them; anything else goes
        # through validation, which coerces or raises exactly as before.
        if (type(kind) is EventKind and type(ts_ns) is int and ts_ns >= 0 and type(decision_id) is str
                and type(parent_id) is str and type(strategy) is str and type(account) is str
                and type(venue) is str and type(instrument) is str and type(reason) is str
                and (latency_us is None or type(latency_us) is float) and type(self.actor) is str):
            return trusted_event(self._ids.next(), ts_ns, decision_id, parent_id, kind, strategy, account, venue,
                                 instrument, self.actor, reason, latency_us, payload)
        return Event(
            event_id=self._ids.next(),
            ts_ns=ts_ns,
            decision_id=decision_id,
            parent_id=parent_id,
            kind=kind,
            strategy=strategy,
            account=account,
            venue=venue,
            instrument=instrument,
            actor=self.actor,
            reason=reason,
            latency_us=latency_us,
            payload=payload,
        )
