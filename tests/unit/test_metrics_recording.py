"""What the actors record: cumulative core counters followed, pair summaries and order answers
turned into series, and no flush from a record when the actor's timer flushes."""
from __future__ import annotations

from types import SimpleNamespace

from xmc_actors.core.clock import SimClock
from xmc_actors.model.orders import OrderStatus
from xmc_actors.ops.metrics import Metrics, MetricsHubCore
from xmc_actors.actors.metrics import record_order, record_pair, sample_gateway

S = 1_000_000_000


def make(**kw):
    clock = SimClock()
    hub = MetricsHubCore(clock=clock)
    return Metrics("coordinator", {}, hub=hub, clock=clock, to_ray=False, **kw), hub, clock


def test_without_auto_flush_a_record_never_pushes_only_the_timer_does():
    m, hub, clock = make(auto_flush=False)
    clock.advance(5 * S)
    m.count("pairs", 1, outcome="HEDGED")
    assert hub.pushes == 0
    m.flush()
    assert hub.pushes == 1


def test_count_total_follows_a_cumulative_counter_and_survives_its_reset():
    m, _, _ = make()
    m.count_total("quotes", 10, venue="SHFE")
    m.count_total("quotes", 25, venue="SHFE")
    m.count_total("quotes", 4, venue="SHFE")  # the core was rebuilt: counts from zero again
    assert m.value("quotes", venue="SHFE") == 29.0
    m.count_total("bad_input", 0, venue="SHFE", reason="GARBAGE")  # the family exists at zero
    assert ("bad_input", "counter") in {(s[0], s[1]) for s in m.snapshot()["series"]}


def test_gateway_sample_reads_quotes_and_bad_input_by_reason():
    m, _, _ = make()
    core = SimpleNamespace(venue=SimpleNamespace(code="LME"), counters={"quotes": 7}, bad_input={"GARBAGE": 2})
    sample_gateway(m, [SimpleNamespace(core=core)])
    assert m.value("quotes", venue="LME") == 7.0
    assert m.value("bad_input", venue="LME", reason="GARBAGE") == 2.0


def summary(**kw):
    leg = {"leg": "B", "instrument": "LME.CA3M", "account": "us-main", "ack_latencies_ms": [1.5, 30.0],
           "slippage_pct": 0.0002}
    return {"decision_id": "d1", "strategy": "cu", "state": "HEDGED", "legs": [leg], **kw}


def test_a_pair_summary_counts_the_pair_and_its_legs_latencies_and_slippage():
    m, hub, _ = make()
    record_pair(m, summary())
    record_pair(m, summary(incremental=True))  # a late fill's increment is not a pair
    record_pair(m, summary(recovered=True))    # nor is a restarted coordinator's recovered one
    m.flush()
    merged = hub.collect()
    assert sum(merged["pairs"].values()) == 1.0
    (tags, h), = merged["leg_latency_ms"].items()
    assert h["count"] == 2 and tags[:5] == ("coordinator", "cu", "LME", "LME.CA3M", "us-main")
    (_, sl), = merged["slippage_bps"].items()
    assert sl["count"] == 1 and abs(sl["sum"] - 2.0) < 1e-9


def test_an_order_answer_counts_by_outcome_with_its_pairs_tags():
    m, _, _ = make()
    leg = SimpleNamespace(spec=SimpleNamespace(instrument="SHFE.cu", account="cn-main"), inst=SimpleNamespace(venue="SHFE"))
    book = SimpleNamespace(pairs={"d1": SimpleNamespace(intent=SimpleNamespace(strategy="cu"), by_name={"A": leg})})
    record_order(m, book, "d1:A:0", [SimpleNamespace(status=OrderStatus.ACCEPTED)])
    record_order(m, book, "d1:A:1", [SimpleNamespace(status=OrderStatus.FILLED)])
    record_order(m, book, "d1:A:2", None, failed=True)
    tags = {"strategy": "cu", "venue": "SHFE", "instrument": "SHFE.cu", "account": "cn-main", "leg": "A"}
    assert [m.value("orders", outcome=o, **tags) for o in ("ACK", "FILLED", "UNKNOWN")] == [1.0, 1.0, 1.0]
