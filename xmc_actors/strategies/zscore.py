"""Z-score bands on a rolling window of the spread or ratio (均值回归).

Each evaluation (a new quote on either leg that passes the guards) judges the current values
against the mean and standard deviation of the previous ``window`` mid values, then adds the
current mid value to the window. ``z_sell`` uses the price A can be sold at, ``z_buy`` the
price it can be bought at; entry at ``|z| >= entry_z``, exit at ``|z| <= exit_z``, as in
:func:`~xmc_actors.strategies.base.band_target`. No trade until the window is full.
"""
from __future__ import annotations

import math
from collections import deque

from .base import Decision, Snapshot, Strategy, band_target
from .params import ZScoreParams


class RollingStats:
    """Mean and (population) standard deviation of the last ``window`` values, O(1) per update.

    Sums are kept relative to a shift (the first value seen, refreshed at each exact
    recomputation) so that a ratio near 1.0 with a tiny variance keeps its precision.
    """

    __slots__ = ("window", "values", "_k", "_s", "_ss", "_since")

    def __init__(self, window: int) -> None:
        self.window = window
        self.values: deque[float] = deque(maxlen=window)
        self._k = 0.0
        self._s = 0.0
        self._ss = 0.0
        self._since = 0

    def push(self, x: float) -> None:
        if len(self.values) == self.window:
            old = self.values[0] - self._k
            self._s -= old
            self._ss -= old * old
        self.values.append(x)
        d = x - self._k
        self._s += d
        self._ss += d * d
        self._since += 1
        if self._since >= self.window:
            self._recompute()

    def _recompute(self) -> None:
        self._k = self.values[0]
        ds = [v - self._k for v in self.values]
        self._s = math.fsum(ds)
        self._ss = math.fsum(d * d for d in ds)
        self._since = 0

    @property
    def full(self) -> bool:
        return len(self.values) == self.window

    def mean(self) -> float:
        return self._k + self._s / len(self.values)

    def std(self) -> float:
        n = len(self.values)
        var = self._ss / n - (self._s / n) ** 2
        return math.sqrt(var) if var > 0 else 0.0


class ZScoreStrategy(Strategy, name="zscore", params=ZScoreParams):
    """Z-score bands on a rolling window of the spread or ratio."""

    params: ZScoreParams

    def __init__(self, *args, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kw)
        self.stats = RollingStats(self.params.window)

    def decide(self, snap: Snapshot) -> Decision | None:
        p, par = self.params, snap.parity
        assert par is not None
        mid = par.value(p.signal, "mid")
        ready = self.stats.full
        mean, std = (self.stats.mean(), self.stats.std()) if ready else (math.nan, math.nan)
        self.stats.push(mid)
        if not ready:
            self.last_signal = {"reason": f"warming up {len(self.stats.values)}/{p.window}", "signal_mid": mid}
            return None
        if std <= 0.0:
            self.last_signal = {"reason": "window has no variance", "signal_mid": mid, "mean": mean}
            return None
        sell, buy = par.value(p.signal, "sell_a"), par.value(p.signal, "buy_a")
        z_sell, z_buy = (sell - mean) / std, (buy - mean) / std
        numbers = {"signal_mid": mid, "signal_sell_a": sell, "signal_buy_a": buy, "mean": mean, "std": std,
                   "z_sell": z_sell, "z_buy": z_buy, "entry_z": p.entry_z, "exit_z": p.exit_z}
        self.last_signal = {"reason": "hold", **numbers}
        r = band_target(snap.position, z_sell, z_buy, entry=p.entry_z, exit=p.exit_z, clip=p.clip,
                        max_position=p.max_position, scale_step=p.scale_step)
        if r is None:
            return None
        return Decision(r[0], r[1], numbers)
