"""A seeded synthetic market: cointegrated instruments with realistic ticks, spreads and sizes.

Model (all draws from seeded ``random.Random``, so a seed gives the same stream everywhere):

* a **common factor** ``x`` on a fixed 50 ms grid anchored at absolute time, a random walk of
  ``vol_bps`` per square-root second, drawn from ``factor_seed``; every feed with the same
  ``factor_seed`` and ``start_ns`` sees the same factor, so instruments on different gateways
  are cointegrated;
* per instrument an **idiosyncratic** part ``s``, mean-reverting (an Ornstein-Uhlenbeck step
  per tick with pull ``spread_mean_reversion`` and a stationary standard deviation of
  ``spread_vol_bps``), with **jumps** of ``jump_bps`` (either sign)
  with probability ``jump_prob`` per tick;
* ``price = start_price * exp(beta * x + s)`` snapped to the tick grid; the bid-ask spread is
  ``spread_ticks`` (uniform in the range); sizes are uniform in ``1..max_size``; ``last`` is a
  trade at the bid or the ask; ``depth`` levels one tick apart;
* tick times are a Poisson process of ``ticks_per_s`` per instrument (exponential gaps); with
  ``respect_sessions`` the clock skips the venue's closed hours (minute steps);
* the ``settlement`` (reference of daily price limits) is the start price, then the last
  price of the previous UTC day.
"""
from __future__ import annotations

import heapq
import math
import random
from decimal import Decimal
from typing import Iterator

from ..core.calendar import instrument_session_state
from ..model.market import Instrument, Venue
from ..model.quotes import Level, Quote
from .config import SyntheticParams

_NS = 1_000_000_000
_GRID_NS = 50_000_000
DEFAULT_START_NS = 1_735_776_000_000_000_000  # 2025-01-02 00:00 UTC


class _Factor:
    """The common random walk on an absolute 50 ms grid (lazy, deterministic)."""

    def __init__(self, seed: int, vol_bps: float, k0: int) -> None:
        self._rng = random.Random(f"factor:{seed}")
        self._step = vol_bps * 1e-4 * math.sqrt(_GRID_NS / _NS)
        self._k = k0
        self._x = 0.0

    def at(self, t_ns: int) -> float:
        k = t_ns // _GRID_NS
        while self._k < k:
            self._x += self._rng.gauss(0.0, self._step)
            self._k += 1
        return self._x


def synthetic_quotes(params: SyntheticParams, instruments: dict[str, Instrument],
                     venue: Venue | None = None) -> Iterator[Quote]:
    """The quote stream of :mod:`this model <xmc_actors.feeds.synthetic>`, in time order."""
    insts = []
    for k, iid in enumerate(params.instruments):
        if iid not in instruments:
            raise KeyError(f"synthetic feed: instrument {iid!r} is not listed on this venue")
        insts.append(instruments[iid])
    start = params.start_ns if params.start_ns is not None else DEFAULT_START_NS
    factor = _Factor(params.factor_seed, params.vol_bps, start // _GRID_NS)
    rng = random.Random(f"synthetic:{params.seed}")
    p0 = [float(params.start_prices[k]) if k < len(params.start_prices) else 100.0 for k in range(len(insts))]
    beta = [params.hedge_betas[k] if k < len(params.hedge_betas) else 1.0 for k in range(len(insts))]
    idio = [0.0] * len(insts)
    pull = params.spread_mean_reversion
    idio_step = params.spread_vol_bps * 1e-4 * math.sqrt(1 - (1 - pull) ** 2)  # stationary std = spread_vol_bps
    settle: list[Decimal] = [insts[k].round_price(p0[k]) for k in range(len(insts))]
    last_px: list[Decimal] = list(settle)
    day = [start // (86_400 * _NS)] * len(insts)
    heap = [(start + int(rng.expovariate(params.ticks_per_s) * _NS), k) for k in range(len(insts))]
    heapq.heapify(heap)
    emitted = 0
    lo_sp, hi_sp = params.spread_ticks
    while params.count is None or emitted < params.count:
        t, k = heapq.heappop(heap)
        inst = insts[k]
        if params.respect_sessions and venue is not None:
            guard = 0
            while not instrument_session_state(venue, inst, t).open and guard < 20_000:
                t += 60 * _NS
                guard += 1
        heapq.heappush(heap, (t + max(int(rng.expovariate(params.ticks_per_s) * _NS), 1), k))
        idio[k] += -params.spread_mean_reversion * idio[k] + rng.gauss(0.0, idio_step)
        if params.jump_prob and rng.random() < params.jump_prob:
            idio[k] += rng.choice((-1, 1)) * params.jump_bps * 1e-4
        px = p0[k] * math.exp(beta[k] * factor.at(t) + idio[k])
        tick = inst.tick_size
        spread = rng.randint(min(lo_sp, hi_sp), max(lo_sp, hi_sp))
        bid = inst.round_price(Decimal(repr(px)) - tick * spread / 2, "down")
        if bid <= 0:
            bid = tick
        ask = inst.round_price(bid + tick * spread)
        d = t // (86_400 * _NS)
        if d != day[k]:
            settle[k], day[k] = last_px[k], d
        bids = tuple(Level(price=inst.round_price(bid - tick * j), size=rng.randint(1, params.max_size))
                     for j in range(params.depth) if bid - tick * j > 0)
        asks = tuple(Level(price=inst.round_price(ask + tick * j), size=rng.randint(1, params.max_size))
                     for j in range(params.depth))
        last = bid if rng.random() < 0.5 else ask
        last_px[k] = last
        yield Quote(instrument=inst.id, bid=bid, ask=ask, bid_size=bids[0].size if bids else 0,
                    ask_size=asks[0].size, bids=bids if params.depth > 1 else (),
                    asks=asks if params.depth > 1 else (), last=last, venue_ts_ns=t, recv_ts_ns=t, ts_ns=t,
                    settlement=settle[k])
        emitted += 1
