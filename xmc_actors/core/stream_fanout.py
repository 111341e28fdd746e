"""Conflated fan-out of live updates to many clients (the operator API's WebSocket streams).

A publisher sets the latest value of each topic (``quotes``, ``spreads``, ``states``, ``alerts``,
``outcomes``); each client is sent, at most ``hz`` times a second, only the topics that changed
since its last message, each at its latest value: updates in between are conflated (counted,
never queued). A client whose previous message is still being written after ``max_lag_s`` is
too slow: it is dropped (its writer is told to close), so no client holds the publisher or the
others up and no backlog grows anywhere.

Deterministic with the injected clock; the shell (``api/stream.py``) does the I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .clock import Clock

NS_PER_S = 1_000_000_000
TOPICS = ("quotes", "spreads", "states", "alerts", "outcomes")


@dataclass
class _Client:
    topics: frozenset[str]
    period_ns: int
    seen: dict[str, int] = field(default_factory=dict)  # topic -> version last sent
    last_sent_ns: int = -(1 << 62)
    sending_since_ns: int | None = None
    sent: int = 0
    conflated: int = 0  # versions of a topic this client never got (a newer one was sent instead)


class Fanout:
    def __init__(self, clock: Clock, max_hz: float, max_lag_s: float = 2.0) -> None:
        self.clock, self.max_hz, self.max_lag_ns = clock, max_hz, int(max_lag_s * NS_PER_S)
        self.values: dict[str, Any] = {}
        self.versions: dict[str, int] = {}
        self.clients: dict[str, _Client] = {}
        self.published = 0
        self.dropped: list[str] = []
        self.stats_dropped = 0

    def add(self, cid: str, topics: Iterable[str] | None = None, hz: float | None = None) -> float:
        """Register a client; returns the rate it gets (``hz`` capped at the configured maximum).
        ValueError naming the topic or the rate that is not valid."""
        t = frozenset(topics or TOPICS)
        bad = sorted(t - set(TOPICS))
        if bad:
            raise ValueError(f"topics: unknown {', '.join(bad)} (known: {', '.join(TOPICS)})")
        rate = self.max_hz if hz is None else float(hz)
        if not 0 < rate:
            raise ValueError(f"hz: must be > 0, got {hz}")
        rate = min(rate, self.max_hz)
        self.clients[cid] = _Client(t, int(NS_PER_S / rate))
        return rate

    def remove(self, cid: str) -> None:
        self.clients.pop(cid, None)

    def publish(self, topic: str, value: Any) -> None:
        """The latest value of ``topic`` (a value equal to the last one is not a change)."""
        if topic in self.values and self.values[topic] == value:
            return
        self.values[topic] = value
        self.versions[topic] = self.versions.get(topic, 0) + 1
        self.published += 1

    def due(self, cid: str) -> dict[str, Any] | None:
        """The message to send ``cid`` now (changed topics at their latest value), or None: not
        its time yet, nothing changed, or its last message is still being written. Marks it as
        being sent; call :meth:`sent` when the write completes."""
        c = self.clients.get(cid)
        if c is None or c.sending_since_ns is not None:
            return None
        now = self.clock.now_ns()
        if now - c.last_sent_ns < c.period_ns:
            return None
        changed = {t: self.versions[t] for t in c.topics if self.versions.get(t, 0) > c.seen.get(t, 0)}
        if not changed:
            return None
        for t, v in changed.items():
            c.conflated += max(0, v - c.seen.get(t, 0) - 1)
        c.seen.update(changed)
        c.sending_since_ns, c.last_sent_ns = now, now
        return {t: self.values[t] for t in changed}

    def sent(self, cid: str) -> None:
        c = self.clients.get(cid)
        if c is not None:
            c.sending_since_ns = None
            c.sent += 1

    def too_slow(self) -> list[str]:
        """Clients whose message has been being written for more than ``max_lag_s``: removed
        here (and remembered in ``dropped``); the shell closes their connections."""
        now = self.clock.now_ns()
        slow = [cid for cid, c in self.clients.items()
                if c.sending_since_ns is not None and now - c.sending_since_ns > self.max_lag_ns]
        for cid in slow:
            self.remove(cid)
            self.dropped.append(cid)
            self.stats_dropped += 1
        del self.dropped[:-100]
        return slow

    def stats(self) -> dict[str, Any]:
        return {"clients": len(self.clients), "published": self.published, "dropped": self.stats_dropped,
                "per_client": {cid: {"sent": c.sent, "conflated": c.conflated, "hz": NS_PER_S / c.period_ns}
                               for cid, c in self.clients.items()}}
