"""Metrics recorder and hub: local aggregation, periodic flush, merge across sources."""
from __future__ import annotations

import pytest

from xmc_actors.core.clock import SimClock
from xmc_actors.ops.metrics import SPECS, HubCollector, Metrics, MetricsHubCore

S = 1_000_000_000


def make(clock=None, hub=None, **tags):
    clock = clock or SimClock()
    hub = hub if hub is not None else MetricsHubCore(clock=clock, stale_after_s=10)
    return Metrics("strategy", tags or {"strategy": "s1"}, hub=hub, clock=clock, to_ray=False, flush_interval_s=1.0), hub, clock


def test_records_aggregate_locally_and_reach_the_hub_only_after_the_flush_interval():
    m, hub, clock = make()

    m.count("quotes", 2, instrument="SHFE.cu")
    m.count("quotes", 3, instrument="SHFE.cu")
    assert hub.pushes == 0
    clock.advance(S)
    m.count("quotes", 1, instrument="LME.CA")

    assert hub.pushes == 1
    merged = hub.collect()["quotes"]
    assert merged[("strategy", "s1", "", "SHFE.cu", "")] == 5.0
    assert merged[("strategy", "s1", "", "LME.CA", "")] == 1.0


def test_histogram_buckets_follow_prometheus_le_semantics():
    m, hub, _ = make()
    bounds = SPECS["leg_latency_ms"].buckets

    for v in (0.1, 1.0, 1.01, 10_000):
        m.observe("leg_latency_ms", v, venue="LME", leg="B")
    m.flush()

    h = hub.collect()["leg_latency_ms"][("strategy", "s1", "LME", "", "", "B")]
    assert h["count"] == 4 and h["sum"] == pytest.approx(10_002.11)
    assert h["counts"][0] == 1                       # 0.1 <= 0.25
    assert h["counts"][bounds.index(1)] == 1         # 1.0 <= 1 (le is inclusive)
    assert h["counts"][bounds.index(2)] == 1         # 1.01 <= 2
    assert h["counts"][-1] == 1                      # above the top bound


def test_counters_and_histograms_sum_over_sources_including_a_restarted_actor():
    clock = SimClock()
    hub = MetricsHubCore(clock=clock, stale_after_s=10)
    first, _, _ = make(clock, hub)
    first.count("pairs", 4, outcome="HEDGED")
    first.flush()
    restarted, _, _ = make(clock, hub)  # same strategy, new source after a restart
    restarted.count("pairs", 1, outcome="HEDGED")
    restarted.count("pairs", 1, outcome="ROLLED_BACK")
    restarted.flush()

    pairs = hub.collect()["pairs"]

    assert pairs[("strategy", "s1", "", "", "", "HEDGED")] == 5.0
    assert pairs[("strategy", "s1", "", "", "", "ROLLED_BACK")] == 1.0


def test_repeated_cumulative_push_does_not_double_count():
    m, hub, _ = make()
    m.count("alerts", 1, level="red")
    m.flush()
    m.flush()

    assert hub.collect()["alerts"][("strategy", "s1", "", "", "", "red", "")] == 1.0  # level, monitor


def test_gauges_of_a_silent_source_are_dropped_but_its_counters_stay():
    m, hub, clock = make()
    m.set("occupancy", 0.7, account="A1")
    m.count("triggers", 2)
    m.flush()
    clock.advance(11 * S)

    merged = hub.collect()

    assert "occupancy" not in merged
    assert merged["triggers"][("strategy", "s1", "", "", "")] == 2.0


def test_wrong_kind_or_unknown_metric_is_a_clear_error():
    m, _, _ = make()
    with pytest.raises(ValueError, match="unknown metric 'quote'"):
        m.count("quote")
    with pytest.raises(ValueError, match="'occupancy' is a gauge, not a counter"):
        m.count("occupancy")
    with pytest.raises(ValueError, match="cannot go down"):
        m.count("quotes", -1)


def test_malformed_push_is_counted_not_stored():
    hub = MetricsHubCore(clock=SimClock())
    hub.push("x", {"nope": 1})

    assert hub.bad_pushes == 1 and hub.collect() == {}


def test_collector_reports_hub_down_when_fetch_fails():
    def boom():
        raise TimeoutError("hub away")

    fams = list(HubCollector(boom).collect())

    assert [f.name for f in fams] == ["xmc_metrics_hub_up"]
    assert fams[0].samples[0].value == 0.0
