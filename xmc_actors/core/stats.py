"""The one percentile rule used everywhere: run summaries, audit reports, benchmarks."""
from __future__ import annotations

import math
from typing import Iterable


def percentile(values: Iterable[float], q: float, empty: float = math.nan) -> float:
    """Nearest-rank percentile: the sample at rank ``floor(q * (n - 1) + 0.5)`` of the sorted
    values, so q=0 is the minimum, q=1 the maximum and q=0.5 the median (the upper of two
    middle samples). ``empty`` when there are no values."""
    s = sorted(values)
    if not s:
        return empty
    return s[min(len(s) - 1, max(0, int(q * (len(s) - 1) + 0.5)))]
