"""Venue clock calibration (时间戳校准): estimate how far a venue's clock is from ours.

Two sources of evidence:

* **Round trips** (NTP-style): we send at ``t1`` (our clock), the venue stamps receipt ``t2``
  and reply ``t3`` (its clock), we receive at ``t4``. The offset sample is
  ``((t2 - t1) + (t3 - t4)) / 2`` and it is wrong by at most half the path asymmetry, which is
  bounded by the round-trip delay ``(t4 - t1) - (t3 - t2)``. Samples with the smallest delay
  are the most trustworthy (**min-filter**): the window is cut into buckets of consecutive
  samples, the lowest-delay sample of each bucket is kept, and a straight line (offset and
  drift) is fitted through those by least squares.
* **The feed**: a quote stamped ``venue_ts`` and received at ``recv_ts`` satisfies
  ``venue_ts - recv_ts = offset - latency <= offset``, a lower bound. Used alone (no round
  trips yet), the best bound in the window is the estimate and its spread the uncertainty.

Everything is in nanoseconds, on the local clock handed in; nothing reads the time itself.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OffsetEstimate:
    """``offset_ns``: venue clock minus ours; ``uncertainty_ns``: a bound on its error."""

    offset_ns: float
    uncertainty_ns: float
    drift_ppm: float
    samples: int
    source: str  # "round_trip", "feed" or "none"


class ClockCalibrator:
    """Estimates one venue's clock offset and drift.

    Parameters
    ----------
    window
        Round-trip samples kept (the most recent ones).
    bucket
        Consecutive samples per min-filter bucket.
    feed_window
        Feed (one-way) samples kept.
    """

    def __init__(self, window: int = 256, bucket: int = 8, feed_window: int = 512) -> None:
        if bucket < 1 or window < bucket:
            raise ValueError(f"ClockCalibrator: need window >= bucket >= 1 (window={window}, bucket={bucket})")
        self.bucket = bucket
        self._rt: deque[tuple[int, float, int]] = deque(maxlen=window)  # (t_local_mid, offset, delay)
        self._feed_window = feed_window
        self._feed_n = 0
        # sliding max / min of (venue_ts - recv_ts) over the last feed_window samples (monotonic deques)
        self._fmax: deque[tuple[int, int]] = deque()
        self._fmin: deque[tuple[int, int]] = deque()
        self._fit: tuple[float, float, int, float, float] | None = None  # (a, b, t_ref, resid, min_delay)
        self.round_trips = 0
        self.rejected = 0

    # ------------------------------------------------------------------ evidence
    def add_round_trip(self, t1: int, t2: int, t3: int, t4: int) -> bool:
        """Add one round trip; returns False (and counts it) if it is impossible (negative delay)."""
        delay = (t4 - t1) - (t3 - t2)
        if delay < 0 or t4 < t1:
            self.rejected += 1
            return False
        offset = ((t2 - t1) + (t3 - t4)) / 2
        self._rt.append(((t1 + t4) // 2, offset, delay))
        self.round_trips += 1
        self._fit = None
        return True

    def add_feed(self, venue_ts: int, recv_ts: int) -> None:
        """Add one feed observation (a lower bound on the offset)."""
        d, n = venue_ts - recv_ts, self._feed_n
        self._feed_n += 1
        while self._fmax and self._fmax[-1][1] <= d:
            self._fmax.pop()
        self._fmax.append((n, d))
        while self._fmin and self._fmin[-1][1] >= d:
            self._fmin.pop()
        self._fmin.append((n, d))
        oldest = self._feed_n - self._feed_window
        while self._fmax[0][0] < oldest:
            self._fmax.popleft()
        while self._fmin[0][0] < oldest:
            self._fmin.popleft()

    # ------------------------------------------------------------------ estimate
    def _refit(self) -> tuple[float, float, int, float, float]:
        samples = list(self._rt)
        picked = []
        for i in range(0, len(samples), self.bucket):
            chunk = samples[i:i + self.bucket]
            picked.append(min(chunk, key=lambda s: s[2]))
        t_ref = picked[-1][0]
        min_delay = float(min(s[2] for s in picked))
        if len(picked) < 3 or picked[-1][0] == picked[0][0]:
            best = min(picked, key=lambda s: s[2])
            return float(best[1]), 0.0, best[0], 0.0, min_delay
        xs = [float(s[0] - t_ref) for s in picked]
        ys = [s[1] for s in picked]
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
        a = my - b * mx  # offset at t_ref
        resid = (sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys)) / max(n - 2, 1)) ** 0.5
        return a, b, t_ref, resid, min_delay

    def estimate(self, at_ns: int | None = None) -> OffsetEstimate:
        """The offset (venue - local) at local time ``at_ns`` (default: the latest sample)."""
        if self._rt:
            if self._fit is None:
                self._fit = self._refit()
            a, b, t_ref, resid, min_delay = self._fit
            t = t_ref if at_ns is None else at_ns
            return OffsetEstimate(a + b * (t - t_ref), min_delay / 2 + 2 * resid, b * 1e6,
                                  len(self._rt), "round_trip")
        if self._fmax:
            hi, lo = self._fmax[0][1], self._fmin[0][1]
            return OffsetEstimate(float(hi), float(hi - lo), 0.0, min(self._feed_n, self._feed_window), "feed")
        return OffsetEstimate(0.0, float("inf"), 0.0, 0, "none")

    def calibrate(self, venue_ts: int, at_ns: int | None = None) -> int:
        """A venue timestamp moved onto our clock: ``venue_ts - offset``."""
        return venue_ts - round(self.estimate(at_ns).offset_ns)
