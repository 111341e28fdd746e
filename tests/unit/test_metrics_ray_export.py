"""What an actor's :class:`Metrics` hands to ``ray.util.metrics`` (Ray's own export, ``ray_xmc_*``).

Found by the live test: Ray refuses a histogram with a bound <= 0, so ``slippage_bps`` (negative
bounds: price improvements) raised on every flush, and since the flush stopped at the first
error, every histogram series after it (the B leg's latency) never reached Ray.
"""
from __future__ import annotations

from typing import Any

import pytest
from ray.util import metrics as rm

from xmc_actors.actors import metrics as mod
from xmc_actors.actors.metrics import SPECS, Metrics, ray_buckets


def test_every_histogram_is_one_ray_accepts():
    for name, spec in SPECS.items():
        if spec.kind == "histogram":
            bounds = ray_buckets(spec)
            assert bounds and all(b > 0 for b in bounds) and bounds == sorted(bounds), name
            rm.Histogram(f"xmc_check_{name}", description="d", boundaries=bounds, tag_keys=spec.tag_keys)
    # slippage keeps its positive bounds; its improvements fall in the first bucket on Ray's side
    assert ray_buckets(SPECS["slippage_bps"]) == [float(b) for b in mod.SLIPPAGE_BPS_BUCKETS if b > 0]


class FakeRay:
    """Stands in for the ray.util.metrics objects: records what reached them; ``refuse`` raises."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.seen: list[tuple[str, str, float, dict[str, str]]] = []

    def metric(self, name: str) -> Any:
        if name in self.refuse:
            raise ValueError(f"Ray refuses {name}")
        fake = self

        class M:
            def inc(self, v: float, tags: dict[str, str]) -> None:
                fake.seen.append((name, "inc", v, tags))

            def set(self, v: float, tags: dict[str, str]) -> None:
                fake.seen.append((name, "set", v, tags))

            def observe(self, v: float, tags: dict[str, str]) -> None:
                fake.seen.append((name, "observe", v, tags))
        return M()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRay:
    f = FakeRay(refuse={"slippage_bps"})
    monkeypatch.setattr(mod, "_ray_metric", f.metric)
    return f


def test_a_metric_ray_refuses_does_not_keep_the_others_from_it(fake):
    m = Metrics("coordinator", {"strategy": "cu"}, hub=None, to_ray=True, auto_flush=False)
    # what record_pair does, leg by leg: latency, then slippage
    m.observe("leg_latency_ms", 1.5, leg="A", venue="SHFE")
    m.observe("slippage_bps", -0.5, leg="A", venue="SHFE")
    m.observe("leg_latency_ms", 2.5, leg="B", venue="LME")
    m.observe("slippage_bps", 3.0, leg="B", venue="LME")
    m.count("pairs", 1, outcome="HEDGED")
    m.set("occupancy", 0.25, account="cn-main")

    m.flush()

    observed = {(t["venue"], v) for n, what, v, t in fake.seen if n == "leg_latency_ms" and what == "observe"}
    assert observed == {("SHFE", 1.5), ("LME", 2.5)}
    assert ("pairs", "inc", 1.0) in {(n, w, v) for n, w, v, _ in fake.seen}
    assert ("occupancy", "set", 0.25) in {(n, w, v) for n, w, v, _ in fake.seen}
    assert m.flush_errors == 2  # the two slippage series, counted


def test_a_counter_ray_refused_is_sent_again_with_the_next_flush(fake):
    m = Metrics("gateway", {"venue": "SHFE"}, hub=None, to_ray=True, auto_flush=False)
    fake.refuse.add("quotes")
    m.count("quotes", 5)
    m.flush()
    assert not [s for s in fake.seen if s[0] == "quotes"] and m.flush_errors == 1
    fake.refuse.discard("quotes")
    m.count("quotes", 2)
    m.flush()
    assert [(n, v) for n, w, v, _ in fake.seen if n == "quotes"] == [("quotes", 7.0)]
