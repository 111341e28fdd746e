"""The one percentile rule (core.stats) that run summaries, audit reports and benchmarks share."""
from __future__ import annotations

import math

from xmc_actors.core.stats import percentile


def test_nearest_rank_with_half_up_rounding_from_minimum_to_maximum() -> None:
    xs = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert [percentile(xs, q) for q in (0.0, 0.25, 0.5, 0.75, 1.0)] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile([1.0, 2.0], 0.5) == 2.0  # the upper of two middle samples
    assert percentile(range(100), 0.99) == 98 and percentile(range(101), 0.99) == 99


def test_empty_gives_the_callers_choice_and_a_single_value_is_every_percentile() -> None:
    assert math.isnan(percentile([], 0.5)) and percentile([], 0.99, empty=0.0) == 0.0
    assert percentile([7.0], 0.0) == percentile([7.0], 0.99) == 7.0
