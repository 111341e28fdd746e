"""Conflation of quotes per subscriber: latest per instrument, at most one batch in flight.

A slow subscriber never builds a backlog: while its previous batch is being processed, newer
quotes overwrite older ones of the same instrument, and the next batch carries only the latest.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..model.quotes import Quote


@dataclass
class _Sub:
    instruments: frozenset[str] | None
    pending: dict[str, Quote] = field(default_factory=dict)
    in_flight: bool = False
    sent_batches: int = 0
    sent_quotes: int = 0
    conflated: int = 0


class Conflator:
    """Per-subscriber pending quotes. Pure; the actor sends what :meth:`take` returns."""

    def __init__(self) -> None:
        self.subs: dict[str, _Sub] = {}

    def add(self, sub_id: str, instruments: Iterable[str] | None = None) -> None:
        self.subs[sub_id] = _Sub(frozenset(instruments) if instruments is not None else None)

    def remove(self, sub_id: str) -> None:
        self.subs.pop(sub_id, None)

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

    def done(self, sub_id: str) -> bool:
        """The in-flight batch was processed; returns True if more is pending."""
        s = self.subs.get(sub_id)
        if s is None:
            return False
        s.in_flight = False
        return bool(s.pending)

    def stats(self) -> dict[str, dict[str, int]]:
        return {sid: {"batches": s.sent_batches, "quotes": s.sent_quotes, "conflated": s.conflated,
                      "pending": len(s.pending)} for sid, s in self.subs.items()}
