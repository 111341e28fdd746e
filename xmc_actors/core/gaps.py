"""Sequence-gap detection and repair (缺口修复).

Per instrument, the tracker knows the last sequence number accepted. A message with:

* the next number is accepted (``OK``);
* a number already seen is a duplicate, a lower one is out of order: both are dropped;
* a higher number opens a **gap**: the instrument is STALE (no trigger may fire on it) until a
  snapshot brings it back; messages that arrive meanwhile are passed on marked STALE.

:meth:`GapTracker.on_snapshot` closes the gap and returns a :class:`Gap` record with its
duration, which the gateway writes to the ledger as an Event of kind GAP.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class SeqVerdict(str, Enum):
    OK = "OK"
    FIRST = "FIRST"              # the first message seen for the instrument
    GAP = "GAP"                  # a gap opened with this message (passed on STALE)
    STALE = "STALE"              # in sequence, but a gap is still open
    DUPLICATE = "DUPLICATE_SEQ"
    OUT_OF_ORDER = "OUT_OF_ORDER_SEQ"


@dataclass(frozen=True, slots=True)
class Gap:
    instrument: str
    from_seq: int        # first missing number
    to_seq: int          # last missing number (as known when the gap opened)
    opened_ns: int
    closed_ns: int
    resumed_at_seq: int

    @property
    def missing(self) -> int:
        return self.to_seq - self.from_seq + 1

    @property
    def duration_ns(self) -> int:
        return self.closed_ns - self.opened_ns


@dataclass(slots=True)
class _Line:
    last: int
    gap_from: int | None = None
    gap_to: int | None = None
    opened_ns: int = 0
    stale_reason: str = ""


class GapTracker:
    """Per-instrument sequence state. Pure: times are passed in."""

    def __init__(self) -> None:
        self._lines: dict[str, _Line] = {}
        self.gaps: list[Gap] = []
        self.counts: dict[str, int] = {}

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def on_message(self, instrument: str, seq: int, now_ns: int) -> SeqVerdict:
        """Classify one message's sequence number and update the state."""
        line = self._lines.get(instrument)
        if line is None:
            self._lines[instrument] = _Line(last=seq)
            return SeqVerdict.FIRST
        if seq == line.last:
            self._count("duplicate")
            return SeqVerdict.DUPLICATE
        if seq < line.last:
            self._count("out_of_order")
            return SeqVerdict.OUT_OF_ORDER
        verdict = SeqVerdict.OK
        if seq > line.last + 1:
            if line.gap_from is None:
                line.gap_from, line.opened_ns = line.last + 1, now_ns
                line.stale_reason = f"sequence gap {line.last + 1}..{seq - 1}"
                self._count("gaps_opened")
                verdict = SeqVerdict.GAP
            line.gap_to = seq - 1 if line.gap_to is None else max(line.gap_to, seq - 1)
            if verdict is not SeqVerdict.GAP:
                verdict = SeqVerdict.STALE
        elif line.gap_from is not None or line.stale_reason:
            verdict = SeqVerdict.STALE
        line.last = seq
        return verdict

    def mark_stale(self, instrument: str, reason: str, now_ns: int) -> bool:
        """Mark stale without a sequence gap (silent feed, disconnect). True if it was fresh."""
        line = self._lines.get(instrument)
        if line is None:
            line = self._lines[instrument] = _Line(last=-1)
        if line.gap_from is not None or line.stale_reason:
            return False
        line.stale_reason, line.opened_ns = reason, now_ns
        return True

    def is_stale(self, instrument: str) -> bool:
        line = self._lines.get(instrument)
        return line is not None and (line.gap_from is not None or bool(line.stale_reason))

    def stale_reason(self, instrument: str) -> str:
        line = self._lines.get(instrument)
        return line.stale_reason if line else ""

    def needs_snapshot(self) -> list[str]:
        return [i for i, line in self._lines.items() if line.gap_from is not None or line.stale_reason]

    def on_snapshot(self, instrument: str, seq: int, now_ns: int) -> Gap | None:
        """A snapshot at ``seq`` resynchronises the instrument. Returns the closed gap, if any."""
        line = self._lines.get(instrument)
        if line is None:
            self._lines[instrument] = _Line(last=seq)
            return None
        gap = None
        if line.gap_from is not None or line.stale_reason:
            frm = line.gap_from if line.gap_from is not None else line.last + 1
            to = line.gap_to if line.gap_to is not None else max(seq - 1, frm - 1)
            gap = Gap(instrument, frm, to, line.opened_ns, now_ns, seq)
            self.gaps.append(gap)
            self._count("gaps_closed")
        line.last = max(seq, line.last)
        line.gap_from = line.gap_to = None
        line.stale_reason = ""
        return gap
