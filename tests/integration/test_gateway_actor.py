"""VenueGateway on Ray: order entry, pushes, conflated subscriptions, faults, bad input."""
from __future__ import annotations

import asyncio
import math
import time
from decimal import Decimal

import pytest
import ray

from testkit import instrument, order, quote, venue, wait_until
from xmc_actors.actors.gateway import VenueGateway
from xmc_actors.model import ExecReportKind, OrderStatus, OrderType, RejectReason, TimeInForce
from xmc_actors.model.config import DeploymentConfig, FeedConfig, GatewayConfig

pytestmark = pytest.mark.ray
T0 = 1_735_808_400_000_000_000  # 2025-01-02 09:00 UTC


def _deployment(**params: object) -> DeploymentConfig:
    return DeploymentConfig(
        name="gwtest", venues=(venue("SHFE"),), instruments=(instrument("SHFE.cu"),),
        gateways=(GatewayConfig(venue="SHFE", params={"seed": 1, "enforce_sessions": False, **params},
                                feed=FeedConfig()),),
    )


@ray.remote(num_cpus=0)
class Collector:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.reports: list = []
        self.batches: list = []
        self.delay_s = delay_s

    def on_reports(self, reports: list) -> None:
        self.reports.extend(reports)

    def on_quotes(self, batch: list) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        self.batches.append(batch)

    def get(self) -> tuple[list, list]:
        return self.reports, self.batches


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, namespace="gw-test", log_to_driver=False)
    yield
    ray.shutdown()


def _gateway(**params: object):
    gw = VenueGateway.options(num_cpus=0).remote(_deployment(**params), "SHFE", clock_mode="sim")
    ray.get(gw.ready.remote(), timeout=30)
    return gw


def test_place_marketable_limit_fills_and_repeat_client_order_id_returns_existing_order():
    gw = _gateway()
    ray.get(gw.push_market.remote([quote("SHFE.cu", 72000, 72010, ask_size=5, ts_ns=T0)]))
    req = order("SHFE.cu", "BUY", 3, "72010")

    first = ray.get(gw.place.remote(req))
    again = ray.get(gw.place.remote(req))

    assert [r.kind for r in first] == [ExecReportKind.ACK, ExecReportKind.FILL]
    assert first[-1].status is OrderStatus.FILLED and first[-1].fill.price == Decimal("72010")
    assert len(again) == 1 and again[0].kind is ExecReportKind.STATUS and again[0].filled_qty == 3
    assert len([d for d in ray.get(gw.drop_copy.remote()) if d["kind"] == "ACK"]) == 1


def test_place_over_the_wire_answers_the_same_and_garbled_bytes_are_refused_and_recorded():
    from xmc_actors.model.fastpickle import from_wire, to_wire

    gw = _gateway()
    ray.get(gw.push_market.remote([quote("SHFE.cu", 72000, 72010, ask_size=5, ts_ns=T0)]))
    # Act: one order as wire bytes; then bytes that are not an order, and a non-order model
    answer = from_wire(ray.get(gw.place_wire.remote(to_wire(order("SHFE.cu", "BUY", 2, "72010")))))
    with pytest.raises(ray.exceptions.RayTaskError, match="place_wire: from_wire: undecodable"):
        ray.get(gw.place_wire.remote(b"\x92\xa1"))
    with pytest.raises(ray.exceptions.RayTaskError, match="place_wire: expected an OrderRequest, got tuple"):
        ray.get(gw.place_wire.remote(to_wire([1, 2])))
    # Assert: the same answer as place(); the refusals counted and recorded, nothing sent
    assert [r.kind for r in answer] == [ExecReportKind.ACK, ExecReportKind.FILL]
    assert answer[-1].status is OrderStatus.FILLED and answer[-1].fill.price == Decimal("72010")
    st = ray.get(gw.status.remote())
    assert st["bad_input"]["GARBAGE"] == 2 and st["counters"]["bad_input"] == 2 and st["counters"]["orders"] == 1
    bad = ray.get(gw.events.remote("BAD_INPUT"))
    assert [(e.reason, e.payload["field"]) for e in bad] == [("GARBAGE", "place_wire")] * 2
    assert "undecodable" in bad[0].payload["detail"] and "expected an OrderRequest" in bad[1].payload["detail"]


def test_resting_order_fill_is_pushed_to_its_registered_owner():
    gw = _gateway()
    owner = Collector.remote()
    ray.get(gw.register_owner.remote("coord", owner))
    ray.get(gw.push_market.remote([quote("SHFE.cu", 72000, 72010, ts_ns=T0)]))
    placed = ray.get(gw.place.remote(order("SHFE.cu", "BUY", 2, "71990", owner="coord")))

    ray.get(gw.push_market.remote([quote("SHFE.cu", 71970, 71980, ts_ns=T0 + 1_000_000)]))

    assert placed[0].kind is ExecReportKind.ACK and placed[0].status is OrderStatus.ACCEPTED
    reports = wait_until(lambda: ray.get(owner.get.remote())[0])
    assert [r.kind for r in reports] == [ExecReportKind.FILL]
    assert reports[0].fill.price == Decimal("71990") and reports[0].status is OrderStatus.FILLED


def test_cancel_then_query_and_unknown_ids():
    gw = _gateway()
    ray.get(gw.push_market.remote([quote("SHFE.cu", 72000, 72010, ts_ns=T0)]))
    req = order("SHFE.cu", "SELL", 1, "72100")
    ray.get(gw.place.remote(req))

    canceled = ray.get(gw.cancel.remote(req.client_order_id))
    too_late = ray.get(gw.cancel.remote(req.client_order_id))
    unknown = ray.get(gw.cancel.remote("nope:A:0"))

    assert canceled.kind is ExecReportKind.CANCELED
    assert too_late.reason is RejectReason.TOO_LATE_TO_CANCEL
    assert unknown.reason is RejectReason.UNKNOWN_ORDER
    assert ray.get(gw.query.remote(req.client_order_id)).status is OrderStatus.CANCELED
    assert ray.get(gw.query.remote("never:A:0")) is None


def test_injected_reject_and_no_ack_are_definitive_and_unknown_respectively():
    gw = _gateway()
    ray.get(gw.push_market.remote([quote("SHFE.cu", 72000, 72010, ts_ns=T0)]))
    ray.get(gw.inject.remote({"kind": "reject_next", "instrument": "SHFE.cu", "reason": "LIMIT_LOCKED"}))
    rejected = ray.get(gw.place.remote(order("SHFE.cu", "BUY", 1, "72010", leg="A")))
    ray.get(gw.inject.remote({"kind": "no_ack_next"}))
    silent = ray.get(gw.place.remote(order("SHFE.cu", "BUY", 1, "72010", leg="B")))

    assert rejected[0].kind is ExecReportKind.REJECTED and rejected[0].reason is RejectReason.LIMIT_LOCKED
    assert silent[0].status is OrderStatus.UNKNOWN
    # the venue did process it: a status query resolves the unknown outcome
    assert ray.get(gw.query.remote(silent[0].client_order_id)).status is OrderStatus.FILLED


def test_slow_subscriber_gets_conflated_batches_not_a_backlog():
    gw = _gateway()
    slow = Collector.remote(delay_s=0.2)
    ray.get(gw.subscribe.remote(slow))
    quotes = [quote("SHFE.cu", 72000 + 10 * k, 72010 + 10 * k, ts_ns=T0 + k * 1_000_000) for k in range(200)]

    for k in range(0, 200, 20):
        ray.get(gw.push_market.remote(quotes[k:k + 20]))

    batches = wait_until(lambda: (b := ray.get(slow.get.remote())[1]) and b[-1][-1].bid == Decimal("73990") and b)
    assert batches[-1][-1].bid == Decimal("73990")
    assert len(batches) < 20                       # far fewer pushes than quotes
    assert all(len(b) == 1 for b in batches)       # one instrument: latest only


def test_bad_venue_messages_are_counted_and_the_gateway_keeps_serving():
    gw = _gateway()
    ray.get(gw.push_market.remote([quote("SHFE.cu", 72000, 72010, ts_ns=T0)]))
    garbage = []
    for k in range(300):
        garbage.append([None, "x", 3.5, {"type": "quote"}, {"type": "quote", "instrument": "SHFE.cu", "seq": k,
                        "ts": T0, "bid": math.nan, "ask": 72010, "bid_size": 1, "ask_size": 1},
                        {"type": "quote", "instrument": "SHFE.cu", "seq": 10_000 + k, "ts": T0, "bid": 72020,
                         "ask": 72010, "bid_size": 1, "ask_size": 1}][k % 6])

    accepted = ray.get(gw.push_wire.remote(garbage))
    status = ray.get(gw.status.remote())
    after = ray.get(gw.place.remote(order("SHFE.cu", "BUY", 1, "72010")))

    assert accepted == 0
    assert status["counters"]["bad_input"] == 300
    assert status["bad_input"]["CROSSED_BOOK"] == 50 and status["bad_input"]["NON_FINITE_PRICE"] == 50
    assert len(ray.get(gw.events.remote("BAD_INPUT"))) == 300
    assert after[-1].status is OrderStatus.FILLED


def test_replay_of_the_real_sge_file_steps_deterministically_on_a_sim_clock():
    from testkit import data_dir
    dep = DeploymentConfig(
        name="replay", venues=(venue("SGE"),), instruments=(instrument("SGE.AU9999"),),
        gateways=(GatewayConfig(venue="SGE", params={"seed": 1}, feed=FeedConfig(kind="replay", params={
            "files": [{"instrument": "SGE.AU9999", "path": str(data_dir() / "real" / "sge_au9999_daily.csv"),
                       "format": "sge_daily"}]})),),
    )
    wall0 = time.time_ns()
    gw = VenueGateway.options(num_cpus=0).remote(dep, "gateway-SGE")

    stepped = ray.get(gw.step.remote(3))
    third = ray.get(gw.snapshot.remote("SGE.AU9999"))
    status = ray.get(gw.status.remote())
    placed = ray.get(gw.place.remote(order("SGE.AU9999", "BUY", 1, str(third.ask))))
    upto = ray.get(gw.run_until.remote(status["now_ns"] + 2 * 86_400 * 10**9))

    assert stepped == 3 and status["clock_mode"] == "sim"
    assert third.last == Decimal("260.97") and third.status.value == "OK"   # 2016-12-21 close (column 3)
    assert placed[-1].status is OrderStatus.FILLED                          # inside SGE's afternoon session
    assert upto == 2
    # the venue trades in 2016, the trail records when that happened here: wall time, with the
    # market time alongside (one time axis with the coordinator's and risk guard's events)
    copies = ray.get(gw.events.remote("VENUE_DROP_COPY"))
    assert copies and all(wall0 <= e.ts_ns <= time.time_ns() for e in copies)
    assert {e.payload["market_ts_ns"] for e in copies} == {r.ts_ns for r in placed}
    assert all(r.ts_ns < wall0 - 5 * 365 * 86_400 * 10**9 for r in placed)


def test_delayed_fill_and_fill_after_cancel_are_pushed_to_the_owner():
    gw = _gateway()
    owner = Collector.remote()
    ray.get(gw.register_owner.remote("coord", owner))
    ray.get(gw.push_market.remote([quote("SHFE.cu", 72000, 72010, ts_ns=T0)]))
    ray.get(gw.inject.remote({"kind": "delay_fills", "ms": 20}))
    acked = ray.get(gw.place.remote(order("SHFE.cu", "BUY", 1, "72010", leg="A", owner="coord")))
    ray.get(gw.place.remote(order("SHFE.cu", "BUY", 2, "71900", leg="B", owner="coord")))
    ray.get(gw.inject.remote({"kind": "late_fill_after_cancel", "qty": 1, "delay_ms": 5}))
    canceled = ray.get(gw.cancel.remote("d1:B:0"))

    ray.get(gw.advance.remote(30_000_000))

    assert [r.kind for r in acked] == [ExecReportKind.ACK] and canceled.kind is ExecReportKind.CANCELED
    pushed = wait_until(lambda: len(r := ray.get(owner.get.remote())[0]) >= 2 and r)
    assert sorted((r.client_order_id, r.kind.value, r.fill.qty) for r in pushed) == [
        ("d1:A:0", "FILL", 1), ("d1:B:0", "FILL", 1)]


def test_synthetic_feed_runs_in_the_background_and_reaches_subscribers_stale_free():
    dep = DeploymentConfig(
        name="synth", venues=(venue("SHFE"),), instruments=(instrument("SHFE.cu"),),
        gateways=(GatewayConfig(venue="SHFE", params={"seed": 1, "enforce_sessions": False},
                                feed=FeedConfig(kind="synthetic", params={
                                    "seed": 4, "instruments": ["SHFE.cu"], "start_prices": [72000],
                                    "count": 500, "speed": "max"})),),
    )
    gw = VenueGateway.options(num_cpus=0).remote(dep, "SHFE")
    sub = Collector.remote()
    ray.get(gw.subscribe.remote(sub, ["SHFE.cu"]))

    assert ray.get(gw.start_feed.remote())
    done = wait_until(lambda: not ray.get(gw.status.remote())["feed_running"], timeout=20)
    status = ray.get(gw.status.remote())
    batches = wait_until(lambda: ray.get(sub.get.remote())[1])

    assert done and status["counters"]["quotes"] == 500 and status["state"] == "UP"
    assert status["clock_source"] == "round_trip"
    assert batches and all(q.status.value == "OK" for b in batches for q in b)


def _group(clock_mode: str = "sim", lme: dict | None = None):
    """Two venues' sessions in one gateway process (a gateway group)."""
    dep = DeploymentConfig(
        name="gwgroup", venues=(venue("SHFE"), venue("LME")), instruments=(instrument("SHFE.cu"), instrument("LME.CA3M")),
        gateways=(GatewayConfig(venue="SHFE", params={"seed": 1, "enforce_sessions": False}, feed=FeedConfig(), group="g"),
                  GatewayConfig(venue="LME", params={"seed": 2, "enforce_sessions": False, **(lme or {})},
                                feed=FeedConfig(), group="g")))
    gw = VenueGateway.options(num_cpus=0).remote(dep, ["gateway-SHFE", "gateway-LME"], clock_mode=clock_mode)
    ray.get(gw.push_market.remote([quote("SHFE.cu", 72000, 72010, ask_size=5, ts_ns=T0)], gateway="SHFE"))
    ray.get(gw.push_market.remote([quote("LME.CA3M", 9800, 9800.5, bid_size=5, ts_ns=T0)], gateway="LME"))
    return gw


def test_a_gateway_group_places_both_legs_in_one_call_each_on_its_own_venue():
    from xmc_actors.actors.gateway import GatewayView
    from xmc_actors.model.fastpickle import from_wire, to_wire

    gw = _group()
    a, b = order("SHFE.cu", "BUY", 2, "72010", decision_id="p", leg="A"), order("LME.CA3M", "SELL", 2, "9800", decision_id="p", leg="B")
    # Act: both orders in one call, through the views a deployment hands out
    answers = ray.get(gw.place_many_wire.remote([("gateway-SHFE", to_wire(a)), ("gateway-LME", to_wire(b))]))
    views = {v: GatewayView(gw, f"gateway-{v}") for v in ("SHFE", "LME")}
    # Assert: each order reached its own venue, and each venue knows only its own
    ra, rb = (from_wire(x[0]) for x in answers)
    assert [r.kind for r in ra] == [ExecReportKind.ACK, ExecReportKind.FILL] and ra[-1].venue == "SHFE"
    assert [r.kind for r in rb] == [ExecReportKind.ACK, ExecReportKind.FILL] and rb[-1].venue == "LME"
    assert [d["client_order_id"] for d in ray.get(views["SHFE"].drop_copy.remote()) if d["kind"] == "FILL"] == ["p:A:0"]
    assert [d["client_order_id"] for d in ray.get(views["LME"].drop_copy.remote()) if d["kind"] == "FILL"] == ["p:B:0"]
    assert ray.get(views["LME"].query.remote("p:A:0")) is None and ray.get(views["SHFE"].query.remote("p:A:0"))
    # a group's status without a gateway lists its sessions; a call that needs one says which
    st = ray.get(gw.status.remote())
    assert sorted(st["sessions"]) == ["gateway-LME", "gateway-SHFE"]
    with pytest.raises(ray.exceptions.RayTaskError, match="gateway: this process hosts 2 venue sessions"):
        ray.get(gw.query.remote("p:A:0"))
    with pytest.raises(ray.exceptions.RayTaskError, match="gateway: 'gateway-CME' is not hosted here"):
        ray.get(gw.query.remote("p:A:0", gateway="gateway-CME"))


def test_a_group_call_says_how_long_it_held_each_answer_for_the_slower_venue():
    from xmc_actors.model.fastpickle import from_wire, to_wire

    # Arrange: SHFE answers at once, LME after 60 ms, on the live clock
    gw = _group("system", lme={"ack_latency": {"kind": "const", "mean_ms": 60},
                               "network_latency": {"kind": "const", "mean_ms": 0}})
    a, b = order("SHFE.cu", "BUY", 2, "72010", decision_id="h", leg="A"), order("LME.CA3M", "SELL", 2, "9800", decision_id="h", leg="B")
    # Act
    t0 = time.perf_counter()
    answers = ray.get(gw.place_many_wire.remote([("gateway-SHFE", to_wire(a)), ("gateway-LME", to_wire(b))]))
    took_ms = (time.perf_counter() - t0) * 1000
    # Assert: one reply after the slower venue; SHFE's answer was held about LME's latency, LME's hardly
    (wa, held_a), (wb, held_b) = answers
    assert from_wire(wa)[0].kind is ExecReportKind.ACK and from_wire(wb)[0].kind is ExecReportKind.ACK
    assert took_ms >= 60
    assert 45e6 <= held_a <= took_ms * 1e6 and 0 <= held_b < 15e6


def test_a_bad_order_in_a_group_call_is_refused_and_recorded_and_the_others_still_go():
    from xmc_actors.model.fastpickle import from_wire, to_wire

    gw = _group()
    good = order("LME.CA3M", "SELL", 1, "9800", decision_id="q", leg="B")
    # Act: garbage for SHFE, an order for a session this process does not host, a good LME order
    answers = ray.get(gw.place_many_wire.remote([("gateway-SHFE", b"\x92\xa1"), ("gateway-CME", to_wire(good)),
                                                 ("gateway-LME", to_wire(good))]))
    # Assert: each refusal says why; the good order was placed; both refusals counted and recorded
    assert isinstance(answers[0], str) and "place_many_wire: from_wire: undecodable" in answers[0]
    assert isinstance(answers[1], str) and "'gateway-CME' is not hosted here" in answers[1]
    assert [r.kind for r in from_wire(answers[2][0])] == [ExecReportKind.ACK, ExecReportKind.FILL]
    shfe = ray.get(gw.status.remote(gateway="SHFE"))
    assert shfe["bad_input"]["GARBAGE"] == 2 and shfe["counters"].get("orders", 0) == 0
    bad = ray.get(gw.events.remote("BAD_INPUT", gateway="SHFE"))
    assert sorted(e.payload["field"] for e in bad) == ["place_many_wire", "place_many_wire.gateway"]
    assert ray.get(gw.status.remote(gateway="LME"))["counters"]["orders"] == 1
