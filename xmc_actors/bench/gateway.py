"""Gateway benchmark: normalise-and-fan-out throughput, order round trip, calibration error.

``run(quick)`` returns a flat dict of metric -> number (unit in the name):

* ``core_quotes_per_s``: feed quote -> simulated venue -> wire -> normaliser -> gap check ->
  calibrated quote -> conflation, in one process (no Ray);
* ``gateway_quotes_per_s_{1,10,50}_subs``: the same through a real VenueGateway actor running
  its synthetic feed as fast as possible while pushing conflated batches to 1, 10 and 50
  subscriber actors; ``batches_per_sub_{n}_subs`` how many batches each subscriber got;
* ``place_rtt_p50_us`` / ``place_rtt_p99_us``: a marketable order placed and answered through the
  actor (ack latency 0);
* ``calibration_error_p50_us`` / ``calibration_error_p99_us``: |estimated - true| venue clock
  offset after warm-up, with +/-250 ms skew, drift, and lognormal network jitter;
* floors measured in the same run: ``floor_actor_call_per_s`` (sequential round trips to a
  trivial actor), ``floor_actor_call_p50_us``, ``floor_push_per_s`` (fire-and-forget calls
  with a one-quote batch); and ratios ``*_ratio`` to those floors.
"""
from __future__ import annotations

import statistics
import time
from decimal import Decimal
from typing import Any

from ..core.stats import percentile

MS = 1_000_000


def _deployment(count: int, feed: bool = True) -> Any:
    from ..model.config import DeploymentConfig, FeedConfig, GatewayConfig
    from ..runtime.config import load_config, PROJECT_ROOT

    cat = load_config(PROJECT_ROOT / "configs" / "catalogue.yaml")
    fc = FeedConfig(kind="synthetic", params={"seed": 1, "instruments": ["SHFE.cu"], "start_prices": [72000],
                                              "count": count, "speed": "max", "ticks_per_s": 1000}) if feed else FeedConfig()
    return DeploymentConfig(name="bench", venues=(cat.venue("SHFE"),), instruments=(cat.instrument("SHFE.cu"),),
                            gateways=(GatewayConfig(venue="SHFE", params={"seed": 1, "enforce_sessions": False},
                                                    feed=fc),))


def bench_core(n: int) -> float:
    from ..actors.gateway import build_core
    from ..core.sink import NullSink

    core, feed, clock = build_core(_deployment(n), "SHFE", NullSink(), "sim")
    core.conflator.add("s")
    quotes = [feed.next() for _ in range(n)]
    t0 = time.perf_counter()
    for q in quotes:
        if q.ts_ns > clock.now_ns():
            clock.set(q.ts_ns)
        core.on_market(q)
        core.conflator.take("s")
        core.conflator.done("s")
    return n / (time.perf_counter() - t0)


def bench_calibration(probes: int) -> list[float]:
    from ..core.calibration import ClockCalibrator
    from ..core.clock import SimClock
    from ..model.market import Instrument, TradingSession, Venue
    from ..venues.sim import SimExchange
    from ..venues.sim_config import SimVenueParams

    venue = Venue(code="SIM", timezone="UTC", sessions=(TradingSession(start="00:00", end="23:59"),))
    inst = Instrument(venue="SIM", symbol="X", currency="USD", price_unit="t", multiplier=Decimal(1),
                      tick_size=Decimal("0.1"))
    errors: list[float] = []
    for seed, skew, drift in ((1, 250, 20), (2, -250, -20), (3, 250, -50), (4, -250, 50)):
        clock = SimClock(1_735_808_400_000_000_000)
        params = SimVenueParams.model_validate({
            "seed": seed, "network_latency": {"kind": "lognormal", "mean_ms": 0.5, "jitter_ms": 1.0},
            "faults": {"clock_skew_ms": skew, "clock_drift_ppm": drift, "clock_jitter_ms": 0.02}})
        sim = SimExchange(venue, [inst], params, clock)
        cal = ClockCalibrator()
        for k in range(probes):
            clock.advance(100 * MS)
            cal.add_round_trip(*sim.clock_probe())
            if k >= 64:
                now = clock.now_ns()
                errors.append(abs(cal.estimate(now).offset_ns - sim.venue_clock.true_offset_ns(now)))
    return errors


def run(quick: bool = True) -> dict[str, float]:
    import ray

    from ..actors.gateway import VenueGateway
    from ..core.sink import NullSink
    from ..model.orders import OrderRequest, OrderType, TimeInForce
    from ..model.market import Side
    from ..model.quotes import Quote

    out: dict[str, float] = {}
    n_core = 5_000 if quick else 50_000
    out["core_quotes_per_s"] = bench_core(n_core)
    errs = bench_calibration(400 if quick else 3_000)
    out["calibration_error_p50_us"] = percentile(errs, 0.50) / 1e3
    out["calibration_error_p99_us"] = percentile(errs, 0.99) / 1e3
    out["calibration_error_max_us"] = max(errs) / 1e3
    out["calibration_error_p99_target_ratio"] = out["calibration_error_p99_us"] / 1000.0  # target: 1 ms

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, namespace="bench-gateway", log_to_driver=False)
        started = True
    try:
        @ray.remote(num_cpus=0)
        class Sink:
            def __init__(self) -> None:
                self.batches = 0
                self.quotes = 0

            def ping(self) -> int:
                return 1

            def on_quotes(self, batch: list) -> None:
                self.batches += 1
                self.quotes += len(batch)

            def counts(self) -> tuple[int, int]:
                return self.batches, self.quotes

        probe = Sink.remote()
        ray.get(probe.ping.remote())
        n_calls = 300 if quick else 3_000
        lat = []
        t0 = time.perf_counter()
        for _ in range(n_calls):
            t = time.perf_counter()
            ray.get(probe.ping.remote())
            lat.append(time.perf_counter() - t)
        out["floor_actor_call_per_s"] = n_calls / (time.perf_counter() - t0)
        out["floor_actor_call_p50_us"] = statistics.median(lat) * 1e6
        q = Quote(instrument="SHFE.cu", bid=Decimal(72000), ask=Decimal(72010), bid_size=1, ask_size=1, venue_ts_ns=1)
        n_push = 2_000 if quick else 20_000
        t0 = time.perf_counter()
        for _ in range(n_push):
            probe.on_quotes.remote([q])
        ray.get(probe.ping.remote())
        out["floor_push_per_s"] = n_push / (time.perf_counter() - t0)

        n_feed = 5_000 if quick else 100_000
        for n_subs in (1, 10, 50):
            gw = VenueGateway.options(num_cpus=0).remote(_deployment(n_feed), "SHFE", sink=NullSink(),
                                                         clock_mode="system")
            subs = [Sink.remote() for _ in range(n_subs)]
            ray.get([s.ping.remote() for s in subs] + [gw.ready.remote()])
            ray.get([gw.subscribe.remote(s) for s in subs])
            t0 = time.perf_counter()
            ray.get(gw.start_feed.remote())
            while ray.get(gw.status.remote())["feed_running"]:
                time.sleep(0.01)
            elapsed = time.perf_counter() - t0
            out[f"gateway_quotes_per_s_{n_subs}_subs"] = n_feed / elapsed
            counts = ray.get([s.counts.remote() for s in subs])
            out[f"batches_per_sub_{n_subs}_subs"] = statistics.mean(c[0] for c in counts)
            for a in subs + [gw]:
                ray.kill(a)
        out["gateway_fanout_1_sub_vs_push_floor_ratio"] = out["gateway_quotes_per_s_1_subs"] / out["floor_push_per_s"]
        out["gateway_fanout_50_vs_1_sub_ratio"] = out["gateway_quotes_per_s_50_subs"] / out["gateway_quotes_per_s_1_subs"]

        gw = VenueGateway.options(num_cpus=0).remote(_deployment(0, feed=False), "SHFE", sink=NullSink(),
                                                     clock_mode="sim")
        ray.get(gw.push_market.remote([Quote(instrument="SHFE.cu", bid=Decimal(72000), ask=Decimal(72010),
                                             bid_size=10**6 // 1000, ask_size=10**6 // 1000,
                                             venue_ts_ns=1_735_808_400_000_000_000,
                                             ts_ns=1_735_808_400_000_000_000)]))
        rtt = []
        for k in range(200 if quick else 2_000):
            req = OrderRequest(client_order_id=f"b{k}:A:0", decision_id=f"b{k}", leg="A", account="x",
                               instrument="SHFE.cu", side=Side.BUY if k % 2 == 0 else Side.SELL, qty=1,
                               order_type=OrderType.IOC, tif=TimeInForce.IOC,
                               price=Decimal(72010) if k % 2 == 0 else Decimal(72000))
            t = time.perf_counter()
            ray.get(gw.place.remote(req))
            rtt.append(time.perf_counter() - t)
        out["place_rtt_p50_us"] = statistics.median(rtt) * 1e6
        out["place_rtt_p99_us"] = percentile(rtt, 0.99) * 1e6
        out["place_rtt_vs_actor_call_ratio"] = out["place_rtt_p50_us"] / out["floor_actor_call_p50_us"]
        ray.kill(gw)
    finally:
        if started:
            ray.shutdown()
    return out


if __name__ == "__main__":  # pragma: no cover
    for k, v in run(quick=True).items():
        print(f"{k:48s} {v:14.2f}")
