"""Conflation of quotes per subscriber: latest per instrument, at most one batch in flight.

A slow subscriber never builds a backlog: while its previous batch is being processed, newer
quotes overwrite older ones of the same instrument, and the next batch carries only the latest.

A subscription has a *generation*: subscribing again under the same id (a restarted actor keeps
its actor id) starts a new one. The answer to a batch sent to an earlier generation (it failed
because that life died, or came back late) is passed with that generation and then changes
nothing: it neither drops the new subscription nor frees its in-flight slot.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..model.quotes import Quote


@dataclass
class _Sub:
    instruments: frozenset[str] | None
    gen: int
    pending: dict[str, Quote] = field(default_factory=dict)
    in_flight: bool = False
    sent_batches: int = 0
    sent_quotes: int = 0
    conflated: int = 0


class Conflator:
    """Per-subscriber pending quotes. Pure; the actor sends what :meth:`take` returns."""

    def __init__(self) -> None:
        self.subs: dict[str, _Sub] = {}
        self._gens = 0

    def add(self, sub_id: str, instruments: Iterable[str] | None = None) -> int:
        """(Re)subscribe ``sub_id``; returns the new subscription's generation."""
        self._gens += 1
        self.subs[sub_id] = _Sub(frozenset(instruments) if instruments is not None else None, self._gens)
        return self._gens

    def generation(self, sub_id: str) -> int | None:
        """The current generation of ``sub_id`` (None when it is not subscribed)."""
        s = self.subs.get(sub_id)
        return None if s is None else s.gen

    def remove(self, sub_id: str, gen: int | None = None) -> bool:
        """Unsubscribe ``sub_id`` (only if its generation is still ``gen``, when given);
        returns whether a subscription was removed."""
        s = self.subs.get(sub_id)
        if s is None or (gen is not None and s.gen != gen):
            return False
        del self.subs[sub_id]
        return True

    def offer(self, quote: Quote) -> list[str]:
        """Queue ``quote`` for every interested subscriber; returns those ready to send now."""
        ready = []
        for sid, s in self.subs.items():
            if s.instruments is not None and quote.instrument not in s.instruments:
                continue
            if quote.instrument in s.pending:
                s.conflated += 1
            s.pending[quote.instrument] = quote
            if not s.in_flight:
                ready.append(sid)
        return ready

    def take(self, sub_id: str) -> list[Quote]:
        """The batch to send now (empty if one is in flight or nothing is pending)."""
        s = self.subs.get(sub_id)
        if s is None or s.in_flight or not s.pending:
            return []
        batch = list(s.pending.values())
        s.pending = {}
        s.in_flight = True
        s.sent_batches += 1
        s.sent_quotes += len(batch)
        return batch

    def done(self, sub_id: str, gen: int | None = None) -> bool:
        """The in-flight batch (of generation ``gen``, when given) was processed; returns True
        if more is pending. The answer to an earlier generation's batch changes nothing."""
        s = self.subs.get(sub_id)
        if s is None or (gen is not None and s.gen != gen):
            return False
        s.in_flight = False
        return bool(s.pending)

    def stats(self) -> dict[str, dict[str, int]]:
        return {sid: {"batches": s.sent_batches, "quotes": s.sent_quotes, "conflated": s.conflated,
                      "pending": len(s.pending)} for sid, s in self.subs.items()}
