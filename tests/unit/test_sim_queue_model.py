"""The simulated venue's queue model and latency bursts (the execution lab's venues; no Ray)."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from testkit import order, quote, venue, instrument
from xmc_actors.core.calendar import instrument_session_state, session_state
from xmc_actors.core.clock import SimClock
from xmc_actors.model import ExecReportKind, OrderStatus
from xmc_actors.model.latency import LatencyModel
from xmc_actors.venues.sim import SimExchange, sample_latency_ns
from xmc_actors.venues.sim_config import SimVenueParams

OPEN_NS = int(dt.datetime(2025, 1, 2, 2, 0, tzinfo=dt.timezone.utc).timestamp()) * 10**9  # 10:00 Shanghai


def _sim(model: str) -> tuple[SimExchange, SimClock]:
    clock = SimClock(OPEN_NS)
    p = SimVenueParams(seed=1, queue_model=model)  # type: ignore[arg-type]
    return SimExchange(venue("SHFE"), [instrument("SHFE.cu")], p, clock), clock


def _mkt(sim: SimExchange, clock: SimClock, bid: int, ask: int, bid_size: int, ask_size: int, last: int | None = None):
    clock.advance(1_000_000)
    kw = {"last": Decimal(last)} if last is not None else {}
    reps, _ = sim.on_market(quote("SHFE.cu", bid, ask, bid_size=bid_size, ask_size=ask_size, ts_ns=clock.now_ns(), **kw))
    return reps


def _rest_buy_behind(sim: SimExchange, clock: SimClock, ahead: int) -> None:
    _mkt(sim, clock, 72000, 72010, bid_size=ahead, ask_size=5)
    reply = sim.place(order("SHFE.cu", "BUY", 5, "72000"))
    assert [r.kind for r in reply.reports] == [ExecReportKind.ACK]  # rests: nothing at or below 72000 to take


def test_queue_model_we_fill_only_once_the_queue_ahead_is_used_up():
    sim, clock = _sim("queue")
    _rest_buy_behind(sim, clock, ahead=10)
    assert sim.books["SHFE.cu"].resting[0].queue_ahead == 10

    # sellers hit the bid: the visible size at our price falls; we move up the queue, unfilled
    assert _mkt(sim, clock, 72000, 72010, bid_size=6, ask_size=4) == []
    assert sim.books["SHFE.cu"].resting[0].queue_ahead == 6
    # a locked market (sellers at our price while bids still show there): they trade with the
    # 6 ahead of us first, then 2 reach us
    reps = _mkt(sim, clock, 72000, 72000, bid_size=6, ask_size=8)
    assert [(r.kind, r.fill.qty, r.fill.price) for r in reps] == [(ExecReportKind.FILL, 2, Decimal("72000"))]
    assert reps[0].status is OrderStatus.PARTIALLY_FILLED
    # the bids at our price are gone and sellers rest at it: the rest of us is taken
    reps = _mkt(sim, clock, 71990, 72000, bid_size=6, ask_size=8)
    assert [r.fill.qty for r in reps] == [3] and reps[0].status is OrderStatus.FILLED


def test_queue_model_rests_while_the_queue_ahead_is_there_where_touch_would_fill():
    for model, filled in (("queue", []), ("touch", [4])):
        sim, clock = _sim(model)
        _rest_buy_behind(sim, clock, ahead=10)
        reps = _mkt(sim, clock, 72000, 72000, bid_size=10, ask_size=4)  # 4 offered at our price, 10 ahead
        assert [r.fill.qty for r in reps] == filled, model


def test_queue_model_a_trade_through_our_price_fills_us_whole():
    sim, clock = _sim("queue")
    _rest_buy_behind(sim, clock, ahead=30)
    reps = _mkt(sim, clock, 71980, 71990, bid_size=30, ask_size=2, last=71990)
    assert [(r.fill.qty, r.fill.price) for r in reps] == [(5, Decimal("72000"))]
    assert reps[0].status is OrderStatus.FILLED and not sim.books["SHFE.cu"].resting


def test_queue_model_the_queue_only_shrinks_to_what_the_market_still_shows():
    sim, clock = _sim("queue")
    _rest_buy_behind(sim, clock, ahead=10)
    _mkt(sim, clock, 72000, 72010, bid_size=3, ask_size=5)  # 7 ahead of us cancelled
    assert sim.books["SHFE.cu"].resting[0].queue_ahead == 3
    _mkt(sim, clock, 72000, 72010, bid_size=40, ask_size=5)  # joiners behind us do not push us back
    assert sim.books["SHFE.cu"].resting[0].queue_ahead == 3
    _mkt(sim, clock, 71990, 72010, bid_size=40, ask_size=5)  # our price level is gone from the market
    assert sim.books["SHFE.cu"].resting[0].queue_ahead == 0
    reps = _mkt(sim, clock, 71990, 72000, bid_size=40, ask_size=2)
    assert [r.fill.qty for r in reps] == [2]


def test_book_levels_are_built_only_when_read_and_then_match_the_last_quote():
    sim, clock = _sim("queue")
    _mkt(sim, clock, 72000, 72010, bid_size=3, ask_size=4)
    _mkt(sim, clock, 72010, 72020, bid_size=7, ask_size=8)
    book = sim.books["SHFE.cu"]
    assert book.bids == [[Decimal("72010"), 7]] and book.asks == [[Decimal("72020"), 8]]


def test_latency_bursts_add_their_delay_to_the_stated_share_of_draws():
    rng = random.Random(5)
    m = LatencyModel(kind="const", mean_ms=10, burst_prob=0.1, burst_ms=100)
    draws = [sample_latency_ns(m, rng) for _ in range(5_000)]
    assert set(draws) == {10_000_000, 110_000_000}
    share = draws.count(110_000_000) / len(draws)
    assert 0.08 < share < 0.12


def test_lognormal_latency_has_the_stated_mean():
    rng = random.Random(9)
    m = LatencyModel(kind="lognormal", mean_ms=150, jitter_ms=20)
    draws = [sample_latency_ns(m, rng) / 1e6 for _ in range(20_000)]
    assert abs(sum(draws) / len(draws) - 150) < 1.5
    assert min(draws) > 80


def test_latency_draws_are_the_models_formula_on_the_same_seed_whatever_was_drawn_before():
    import math
    models = [LatencyModel(kind="const", mean_ms=3, burst_prob=0.2, burst_ms=40),
              LatencyModel(kind="uniform", mean_ms=5, jitter_ms=2),
              LatencyModel(kind="lognormal", mean_ms=150, jitter_ms=20, burst_prob=0.05, burst_ms=300),
              LatencyModel(kind="lognormal", mean_ms=0)]

    def formula(m, r):
        if m.kind == "const":
            ms = m.mean_ms
        elif m.kind == "uniform":
            ms = r.uniform(m.mean_ms - m.jitter_ms, m.mean_ms + m.jitter_ms)
        elif m.mean_ms <= 0:
            ms = 0.0
        else:
            sigma = math.sqrt(math.log(1 + (m.jitter_ms / m.mean_ms) ** 2))
            ms = r.lognormvariate(math.log(m.mean_ms) - sigma * sigma / 2, sigma)
        if m.burst_prob and r.random() < m.burst_prob:
            ms += m.burst_ms
        return max(int(ms * 1_000_000), 0)

    rng, ref = random.Random(5), random.Random(5)
    for k in range(4_000):  # interleaved: each model's parameters are remembered, never mixed up
        m = models[k % len(models)]
        assert sample_latency_ns(m, rng) == formula(m, ref), (k, m)


def test_cached_session_state_agrees_with_a_fresh_computation_across_breaks_and_dst():
    from xmc_actors.core import calendar

    shfe, comex = venue("SHFE"), venue("COMEX")
    cu = instrument("SHFE.cu")
    start = int(dt.datetime(2025, 3, 7, 0, 0, tzinfo=dt.timezone.utc).timestamp()) * 10**9  # New York DST on 9 March
    for k in range(0, 5 * 24 * 60, 7):  # every 7 minutes for 5 days
        t = start + k * 60 * 10**9
        for v, got in ((shfe, instrument_session_state(shfe, cu, t)), (comex, session_state(comex, t))):
            fresh, _ = calendar._session_state(v, t, cu.sessions if v is shfe else None)
            assert (got.open, got.trading_day, got.session) == (fresh.open, fresh.trading_day, fresh.session), (v.code, t)
