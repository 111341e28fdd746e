"""Small statistics shared by the benchmark suites."""
from __future__ import annotations


def percentile(xs: list[float], p: float) -> float:
    """The sample at rank ``round(p * (n - 1))`` of the sorted values (nan when empty)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(p * (len(s) - 1)))))]
