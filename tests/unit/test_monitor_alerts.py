"""Monitors, alert levels, de-duplication, escalation, actions and sinks (webhook on 127.0.0.1)."""
from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Iterator

import pytest
import testkit as tk

from xmc_actors.core.alerts import AlertDispatcher, AlertManager, WebhookAlertSink
from xmc_actors.core.clock import SimClock
from xmc_actors.core.monitors import Condition, MonitorSet, PairSummary
from xmc_actors.core.risk_guard import RiskGuardCore
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import Account
from xmc_actors.model.events import EventKind
from xmc_actors.model.risk import AlertAction, AlertLevel, Monitors, RiskConfig, TradingState

OPEN_NS = 1_736_215_200_000_000_000
S = 1_000_000_000


def summary(did: str = "d1", *, strategy: str = "s1", state: str = "HEDGED", unhedged_ms: float = 5.0,
            a_avg: str = "72000", a_trigger: str = "72000", orders: int = 1, rejects: int = 0,
            lat: list[float] | None = None, **kw: Any) -> dict[str, Any]:
    return {"decision_id": did, "strategy": strategy, "coordinator": "c1", "outcome": state, "unhedged_ms": unhedged_ms,
            "legs": [
                {"leg": "A", "instrument": "SHFE.cu", "account": "cn", "side": "BUY", "intended_qty": 1, "filled_qty": 1,
                 "avg_price": a_avg, "trigger_price": a_trigger, "orders": orders, "rejects": rejects,
                 "ack_latencies_ms": lat or [2.0]},
                {"leg": "B", "instrument": "LME.CA3M", "account": "us", "side": "SELL", "intended_qty": 1, "filled_qty": 1,
                 "avg_price": "9800", "trigger_price": "9800", "orders": 1, "rejects": 0, "ack_latencies_ms": [3.0]},
            ], **kw}


def core(cfg: RiskConfig | None = None) -> tuple[RiskGuardCore, MemorySink, SimClock]:
    clock, sink = SimClock(OPEN_NS), MemorySink()
    accs = [Account(id="cn", broker="sim", venues=("SHFE",), currency="CNY", capital=Decimal(10_000_000)),
            Account(id="us", broker="sim", venues=("LME",), currency="USD", capital=Decimal(2_000_000))]
    fx = lambda a, b: {("CNY", "USD"): 1 / Decimal("7.1"), ("USD", "CNY"): Decimal("7.1")}.get((a, b))  # noqa: E731
    g = RiskGuardCore(cfg or RiskConfig(), tk.instruments(), {c: tk.venue(c) for c in ("SHFE", "LME")}, accs, fx,
                      clock=clock, sink=sink)
    g.register_coordinator("c1")
    return g, sink, clock


# -- monitor levels -------------------------------------------------------------------------------
@pytest.mark.parametrize("avg,level", [("72300", None), ("72400", AlertLevel.YELLOW), ("72720", AlertLevel.ORANGE),
                                       ("73440", AlertLevel.RED)])
def test_slippage_against_trigger_maps_to_levels(avg: str, level: AlertLevel | None) -> None:
    m = MonitorSet(Monitors())
    s = PairSummary.model_validate(summary(a_avg=avg))
    c = m.slippage("s1", s.legs[0])
    assert c is not None and c.level == level


def test_favourable_slippage_is_not_an_alert() -> None:
    s = PairSummary.model_validate(summary(a_avg="71000"))
    assert MonitorSet(Monitors()).slippage("s1", s.legs[0]).level is None


def test_ack_latency_p99_per_venue_needs_min_samples_then_levels() -> None:
    m = MonitorSet(Monitors(latency_min_samples=20))
    assert m.ack_latency("SHFE", [5.0] * 19) is None
    assert m.ack_latency("SHFE", [5.0]).level is None
    c = m.ack_latency("SHFE", [450.0] * 5)
    assert c.level is AlertLevel.RED and c.value == 450.0 and c.scope == "venue"


def test_one_slow_ack_is_not_a_p99_by_default_but_a_second_one_is() -> None:
    # Arrange: default monitors; a cold start's 172 ms ack among 2 ms ones
    m = MonitorSet(Monitors())
    # Act / Assert: nothing is judged on fewer than 100 acks, where the p99 is the maximum
    assert m.ack_latency("SGE", [172.0] + [2.0] * 98) is None
    c = m.ack_latency("SGE", [2.0] * 50)
    assert c.level is None and c.value == 2.0
    c = m.ack_latency("SGE", [172.0])
    assert c.level is AlertLevel.YELLOW and c.value == 172.0


def test_reject_ratio_over_a_rolling_window_per_venue() -> None:
    m = MonitorSet(Monitors(reject_window=100, reject_min_orders=20))
    assert m.reject_ratio("venue", "LME", 19, 1) is None
    c = m.reject_ratio("venue", "LME", 1, 0)
    assert c.value == pytest.approx(0.05) and c.level is AlertLevel.YELLOW
    c = m.reject_ratio("venue", "LME", 80, 20)  # window now 100 orders, 21 rejects
    assert c.value == pytest.approx(0.21) and c.level is AlertLevel.RED


def test_unhedged_exposure_time_levels_and_escalated_pair_is_red() -> None:
    m = MonitorSet(Monitors(unhedged_exposure_ms=2_000))
    assert m.unhedged(PairSummary.model_validate(summary(unhedged_ms=1_000))).level is None
    assert m.unhedged(PairSummary.model_validate(summary(unhedged_ms=4_500))).level is AlertLevel.ORANGE
    assert m.unhedged(PairSummary.model_validate(summary(state="ESCALATED", unhedged_ms=10))).level is AlertLevel.RED


# -- alert manager --------------------------------------------------------------------------------
def cond(level: AlertLevel | None, key: str = "s1") -> Condition:
    return Condition("slippage", "strategy", key, level, 0.01, 0.005, "slip")


def test_repeated_condition_is_deduplicated_and_a_higher_level_escalates() -> None:
    ids = iter(f"a{i}" for i in range(100))
    am = AlertManager(RiskConfig(), lambda: next(ids))
    first = am.observe(cond(AlertLevel.YELLOW), OPEN_NS)
    assert first.level is AlertLevel.YELLOW and first.action is AlertAction.THROTTLE
    assert am.observe(cond(AlertLevel.YELLOW), OPEN_NS + S) is None
    up = am.observe(cond(AlertLevel.ORANGE), OPEN_NS + 2 * S)
    assert up.escalated and up.alert_id == first.alert_id and up.repeats == 1 and up.action is AlertAction.REDUCE


def test_a_condition_that_persists_escalates_one_level_after_escalate_after_s() -> None:
    am = AlertManager(RiskConfig(), lambda: "a1")
    am.observe(cond(AlertLevel.YELLOW), OPEN_NS)
    assert am.observe(cond(AlertLevel.YELLOW), OPEN_NS + 29 * S) is None
    up = am.observe(cond(AlertLevel.YELLOW), OPEN_NS + 30 * S)
    assert up.level is AlertLevel.ORANGE and up.escalated


def test_a_cleared_condition_resolves_with_an_info_alert() -> None:
    am = AlertManager(RiskConfig(), lambda: "a1")
    am.observe(cond(AlertLevel.RED), OPEN_NS)
    r = am.observe(cond(None), OPEN_NS + S)
    assert r.resolved and r.level is AlertLevel.INFO and r.action is AlertAction.NONE and am.open_alerts() == []


# -- actions through the guard core --------------------------------------------------------------------
def test_yellow_slippage_throttles_the_strategy_until_it_resolves() -> None:
    g, sink, _ = core()
    out = g.on_pair_done(summary("d1", a_avg="72400"))
    assert [a.level for a in out.alerts] == [AlertLevel.YELLOW] and g.throttled == {"strategy:s1": "slippage:strategy:s1"}
    assert g.make_grant("c1").throttled == ("strategy:s1",)
    g.on_pair_done(summary("d2"))
    assert g.throttled == {}
    alerts = [e for e in sink.events if e.kind is EventKind.ALERT]
    assert [e.payload["level"] for e in alerts] == ["yellow", "info"] and alerts[0].strategy == "s1"


def test_orange_reject_ratio_puts_the_venue_in_reducing() -> None:
    g, sink, _ = core(RiskConfig(monitors=Monitors(reject_min_orders=10)))
    out = g.on_pair_done(summary("d1", orders=10, rejects=1))  # SHFE: 1 of 10 = 10% (3.3x threshold)
    assert ("venue", "SHFE", TradingState.REDUCING) in out.state_changes
    assert g.states["venue:SHFE"] is TradingState.REDUCING
    op = [e for e in sink.events if e.kind is EventKind.OPERATOR]
    assert op[-1].payload["operator"] == "auto:reject_ratio" and op[-1].payload["auto"] is True


def test_escalated_pair_halts_the_strategy() -> None:
    g, _, _ = core()
    out = g.on_pair_done(summary("d1", state="ESCALATED", unhedged_ms=9_000))
    assert ("strategy", "s1", TradingState.HALTED) in out.state_changes
    assert g.make_grant("c1").trading_states == {"strategy:s1": TradingState.HALTED}


def test_occupancy_red_blocks_the_account_and_reduces_its_venues() -> None:
    g, _, _ = core()
    g.on_pair_done(summary("d1") | {"legs": [{"leg": "A", "instrument": "LME.CA3M", "account": "us", "side": "BUY",
                                              "filled_qty": 74, "avg_price": "9800", "trigger_price": "9800"}]})
    out = g.tick()  # 74 x 24500 = 1.813m of 2m = 90.65%
    lv = {(a.scope, a.key): a.level for a in out.alerts}
    assert lv[("account", "us")] is AlertLevel.RED
    assert ("venue", "LME", TradingState.REDUCING) in out.state_changes
    assert "us" in g.make_grant("c1").blocked_accounts


def test_bad_summary_is_recorded_as_bad_input_and_changes_nothing() -> None:
    g, sink, _ = core()
    out = g.on_pair_done({"decision_id": "d1", "legs": "oops"})
    assert out.alerts == [] and g.book.account == {}
    bad = [e for e in sink.events if e.kind is EventKind.BAD_INPUT]
    assert len(bad) == 1 and "strategy" in bad[0].reason and g.counters["bad_input"] == 1


def test_the_same_summary_twice_is_booked_once() -> None:
    g, _, _ = core()
    g.on_pair_done(summary("d1"))
    g.on_pair_done(summary("d1"))
    assert g.book.account["cn"]["SHFE.cu"] == 1


# -- sinks -------------------------------------------------------------------------------------------
@pytest.fixture
def webhook_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}/hook", got
    srv.shutdown()
    srv.server_close()


def test_webhook_sink_posts_alerts_at_or_above_its_level(webhook_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, got = webhook_server
    am = AlertManager(RiskConfig(), lambda: "a1")
    sink = WebhookAlertSink(url, min_level=AlertLevel.ORANGE)
    sink.send(am.observe(cond(AlertLevel.YELLOW, "s1"), OPEN_NS))
    sink.send(am.observe(cond(AlertLevel.RED, "s2"), OPEN_NS))
    assert len(got) == 1 and got[0]["alert"]["level"] == "red" and got[0]["alert"]["key"] == "s2"
    assert "[RED]" in got[0]["text"] and sink.sent == 1


def test_an_unreachable_webhook_is_counted_and_never_raised() -> None:
    am = AlertManager(RiskConfig(), lambda: "a1")
    hook = WebhookAlertSink("http://127.0.0.1:9/none", min_level=AlertLevel.INFO, timeout_ms=200)
    d = AlertDispatcher([hook])
    d.dispatch(am.observe(cond(AlertLevel.RED), OPEN_NS))
    assert hook.failed == 1 and d.failures == {"WebhookAlertSink": 1}
