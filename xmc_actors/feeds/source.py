"""A feed source: a time-ordered stream of market quotes (true time) a gateway drives its venue with."""
from __future__ import annotations

from typing import Callable, Iterator

from ..model.quotes import Quote


class FeedSource:
    """Wraps an iterator of :class:`Quote` ordered by ``ts_ns``.

    Parameters
    ----------
    events
        The quotes, in time order (a list or a lazy iterator).
    speed
        ``None``: as fast as possible; ``N``: N times the recorded pace.
    total
        How many events there are, if known (for :meth:`remaining`).
    """

    def __init__(self, events: Iterator[Quote] | list[Quote], speed: float | None = None,
                 total: int | None = None) -> None:
        self._it = iter(events)
        self.speed = speed
        self._total = total if total is not None else (len(events) if isinstance(events, list) else None)
        self._next: Quote | None = None
        self._shift = 0
        self._restamp: Callable[[Quote], Quote] | None = None
        self.emitted = 0

    def _fill(self) -> None:
        if self._next is None:
            self._next = next(self._it, None)
            if self._next is not None and self._shift:
                t = self._next.ts_ns + self._shift
                self._next = self._next.model_copy(update={"ts_ns": t, "venue_ts_ns": t, "recv_ts_ns": t})

    def peek_ts(self) -> int | None:
        self._fill()
        return None if self._next is None else self._next.ts_ns

    def next(self) -> Quote | None:
        self._fill()
        q, self._next = self._next, None
        if q is not None:
            self.emitted += 1
        return q

    def rebase(self, start_ns: int) -> None:
        """Shift every timestamp so that the first event is at ``start_ns`` (live clock runs)."""
        first = self.peek_ts()
        if first is None:
            return
        self._shift = start_ns - (first - self._shift)
        self._next = None if self._next is None else self._next.model_copy(update={
            "ts_ns": start_ns, "venue_ts_ns": start_ns, "recv_ts_ns": start_ns})

    def restamp(self, now_ns: int) -> None:
        """Stamp the next event ``now_ns`` and shift the rest with it (as-fast-as-possible on a live clock)."""
        t = self.peek_ts()
        if t is None or t == now_ns:
            return
        self._shift += now_ns - t
        assert self._next is not None
        self._next = self._next.model_copy(update={"ts_ns": now_ns, "venue_ts_ns": now_ns, "recv_ts_ns": now_ns})

    def remaining(self) -> int:
        if self._total is None:
            return -1
        return max(self._total - self.emitted, 0)
