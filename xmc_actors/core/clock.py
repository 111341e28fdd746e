"""Clocks and identifiers.

Core logic never calls ``time.time()``: it is handed a :class:`Clock`. Live actors use
:class:`SystemClock`; replays and tests use :class:`SimClock`, which only moves when told.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now_ns(self) -> int:  # pragma: no cover - protocol
        """Nanoseconds since the Unix epoch, UTC."""


class SystemClock:
    """Wall clock (``time.time_ns``)."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.time_ns()


class SimClock:
    """A clock that moves only when :meth:`advance` or :meth:`set` is called."""

    __slots__ = ("_now",)

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self._now = int(start_ns)

    def now_ns(self) -> int:
        return self._now

    def advance(self, ns: int) -> int:
        if ns < 0:
            raise ValueError(f"SimClock.advance: ns must be >= 0, got {ns}")
        self._now += int(ns)
        return self._now

    def set(self, ns: int) -> None:
        if ns < self._now:
            raise ValueError(f"SimClock.set: time cannot go backwards ({ns} < {self._now})")
        self._now = int(ns)


class EventIdGenerator:
    """Time-ordered, unique event ids (UUIDv7 layout, as 32 lower-case hex digits).

    48 bits of milliseconds, then a per-generator monotonic sequence and a node tag, so ids
    sort by creation time across actors and never collide between generators that have
    different ``node`` tags. Two ids made in the same millisecond by one generator sort in
    the order they were made.

    The layout falls on hex-digit boundaries (12 digits of ms, the version digit ``7``, 8
    digits of sequence, 11 digits of node), so an id is three cached or formatted pieces
    joined: the ms prefix is formatted once per millisecond and the node suffix once per
    generator (hot path: every event of every actor).
    """

    __slots__ = ("_clock", "_node", "_last_ms", "_seq", "_lock", "_prefix", "_suffix")

    def __init__(self, clock: Clock, node: int | None = None) -> None:
        self._clock = clock
        self._node = (node if node is not None else int.from_bytes(os.urandom(6), "big")) & 0xFFFF_FFFF_FFFF
        self._last_ms = -1
        self._seq = 0
        self._lock = threading.Lock()
        self._prefix = ""
        self._suffix = f"{self._node & 0xFFF_FFFF_FFFF:011x}"

    def next(self) -> str:
        with self._lock:
            ms = self._clock.now_ns() // 1_000_000
            if ms > self._last_ms:
                self._last_ms = ms
                self._seq = seq = 0
                self._prefix = prefix = f"{ms:012x}7"
            else:
                seq = self._seq + 1
                if seq > 0xFFFF_FFFF:  # 2^32 ids in one ms: borrow the next ms
                    self._last_ms = ms = self._last_ms + 1
                    seq = 0
                    self._prefix = f"{ms:012x}7"
                self._seq = seq
                prefix = self._prefix
        return f"{prefix}{seq:08x}{self._suffix}"


_counter = itertools.count()


def short_id(prefix: str, clock: Clock) -> str:
    """A readable id: ``prefix-<ms in base 36>-<counter>``; unique within one process."""
    ms = clock.now_ns() // 1_000_000
    return f"{prefix}-{_b36(ms)}-{next(_counter):x}{os.getpid() % 4096:03x}"


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
