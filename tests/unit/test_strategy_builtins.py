"""zscore, basis_monitor, calendar_roll; the isolation of a raising strategy in a host; registration."""
from __future__ import annotations

import datetime as dt
import statistics

import pytest

from strategy_kit import MS, T0, ctx, done, events, intents, pair_quotes, written
from testkit import quote
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.model import Side
from xmc_actors.runtime.registry import STRATEGIES
from xmc_actors.strategies import BasisMonitor, CalendarRoll, Strategy, ZScoreStrategy, register_strategy
from xmc_actors.strategies.base import Decision, StrategyState
from xmc_actors.strategies.host import StrategyHostCore
from xmc_actors.strategies.params import BandParams
from xmc_actors.strategies.zscore import RollingStats

NOSESS = {"require_sessions_open": False}


# ------------------------------------------------------------------ zscore
def test_rolling_stats_match_the_exact_mean_and_pstdev_of_the_last_window():
    rs = RollingStats(5)
    xs = [1.0001, 1.0003, 0.9998, 1.0005, 1.0002, 0.9997, 1.0004, 1.0001, 0.9999, 1.0006, 1.0002, 1.0]
    for x in xs:
        rs.push(x)
    assert rs.mean() == pytest.approx(statistics.fmean(xs[-5:]), abs=1e-15)
    assert rs.std() == pytest.approx(statistics.pstdev(xs[-5:]), rel=1e-9)


def _zs(**kw):
    return ZScoreStrategy(ctx(), {"signal": "ratio", "price": "mid", "window": 5, "entry_z": 2.0, "exit_z": 0.5,
                                  "cooldown_ms": 0, **kw})


def _warm(s, values=(1.000, 1.001, 0.999, 1.001, 0.999)):
    t = T0
    for v in values:
        t += MS
        assert intents(s.on_quotes(pair_quotes(v, t=t), t)) == []
    return t


def test_zscore_does_not_trade_while_the_window_warms_up():
    s = _zs()
    _warm(s, (1.05, 1.05, 1.05, 1.05))
    assert s.last_signal["reason"].startswith("warming up 4/5")


def test_zscore_enters_beyond_entry_z_and_exits_inside_exit_z():
    s = _zs()
    t = _warm(s)  # mean 1.0, pstdev 0.000894
    [o] = intents(s.on_quotes(pair_quotes(1.002, t=t + MS), t + MS))   # z = 2.24 -> short A
    assert o.legs[0].side is Side.SELL
    assert s.last_signal["z_sell"] == pytest.approx(0.002 / statistics.pstdev([1.0, 1.001, 0.999, 1.001, 0.999]), rel=1e-6)
    s.on_pair_done(done(o), t + 2 * MS)
    # window now [1.001, .999, 1.001, .999, 1.002]; a value at z ~ 1 holds (hysteresis)
    assert intents(s.on_quotes(pair_quotes(1.0015, t=t + 3 * MS), t + 3 * MS)) == []
    [c] = intents(s.on_quotes(pair_quotes(1.0005, t=t + 4 * MS), t + 4 * MS))
    assert c.legs[0].side is Side.BUY and c.reduce_only


def test_zscore_holds_when_the_window_has_no_variance():
    s = _zs()
    t = _warm(s, (1.0,) * 5)
    assert intents(s.on_quotes(pair_quotes(1.01, t=t + MS), t + MS)) == []
    assert s.last_signal["reason"] == "window has no variance"


# ------------------------------------------------------------------ basis monitor
def test_basis_monitor_alerts_once_per_crossing_rearms_and_never_trades():
    s = BasisMonitor(ctx(), {"signal": "spread", "alert_above": 50.0, "rearm": 10.0})
    t = T0
    out = []
    for i, r in enumerate((1.000, 1.006, 1.007, 1.0045, 1.003, 1.008)):  # spread = 10000 x (r - 1)
        t += MS
        out += s.on_quotes(pair_quotes(r, t=t), t)
    assert intents(out) == []
    alerts = events(out, "ALERT")
    assert [a.payload["level"] for a in alerts] == ["yellow", "info", "yellow"]
    assert alerts[0].payload["value"] == pytest.approx(60.0) and alerts[0].strategy == "cu"


def test_basis_monitor_does_not_need_a_tradeable_clip():
    BasisMonitor(ctx(a="SHFE.cu", b="LME.CA3M"), {"alert_below": -1.0})  # 1 SHFE lot = 0.2 LME lots: fine here


# ------------------------------------------------------------------ calendar roll
def _roll_ctx():
    return ctx("roll", a="SHFE.cu2601", b="SHFE.cu2602")


def test_calendar_roll_sells_near_and_buys_far_as_one_pair_once_the_roll_time_passed():
    roll_at = dt.datetime.fromtimestamp((T0 + 60_000 * MS) / 1e9, tz=dt.timezone.utc).isoformat()
    s = CalendarRoll(_roll_ctx(), {"roll_at": [roll_at], "qty": 3, "guards": NOSESS})
    q = lambda t: [quote("SHFE.cu2601", 72000, 72010, ts_ns=t), quote("SHFE.cu2602", 72100, 72110, ts_ns=t)]
    assert intents(s.on_quotes(q(T0), T0)) == []
    t = T0 + 60_000 * MS
    [it] = intents(s.on_quotes(q(t), t))
    assert (it.legs[0].instrument, it.legs[0].side, it.legs[0].qty) == ("SHFE.cu2601", Side.SELL, 3)
    assert (it.legs[1].instrument, it.legs[1].side, it.legs[1].qty) == ("SHFE.cu2602", Side.BUY, 3)
    s.on_pair_done(done(it), t + 1)
    assert intents(s.on_quotes(q(t + 10 * MS), t + 10 * MS)) == []  # rolled once, not again


def test_calendar_roll_restarted_after_its_roll_does_not_roll_twice():
    s = CalendarRoll(_roll_ctx(), {"roll_at": ["2024-01-01T00:00:00Z"], "qty": 2, "guards": NOSESS}, position=-2)
    assert intents(s.on_quotes([quote("SHFE.cu2601", 72000, 72010, ts_ns=T0),
                                quote("SHFE.cu2602", 72100, 72110, ts_ns=T0)], T0)) == []


def test_calendar_roll_waits_while_a_leg_is_too_wide():
    s = CalendarRoll(_roll_ctx(), {"roll_at": ["2024-01-01T00:00:00Z"], "qty": 1, "max_spread_ticks": 2, "guards": NOSESS})
    wide = [quote("SHFE.cu2601", 72000, 72030, ts_ns=T0), quote("SHFE.cu2602", 72100, 72110, ts_ns=T0)]
    assert intents(s.on_quotes(wide, T0)) == []
    assert "spread 3 ticks" in s.last_signal["reason"]
    tight = [quote("SHFE.cu2601", 72000, 72020, ts_ns=T0 + 1)]
    assert len(intents(s.on_quotes(tight, T0 + 1))) == 1


def test_calendar_roll_bad_time_is_a_clear_error():
    with pytest.raises(ValueError, match=r"roll_at\[0\]: 'soon' is not an ISO date-time"):
        CalendarRoll(_roll_ctx(), {"roll_at": ["soon"]})


# ------------------------------------------------------------------ isolation in a host
class Exploding(Strategy, name="test_exploding", params=BandParams):
    """Raises on its third evaluation."""

    def decide(self, snap):
        if self.counters["evaluations"] >= 3:
            raise ZeroDivisionError("bug in user code")
        return None


def test_a_raising_strategy_is_halted_with_strategy_error_while_the_other_keeps_trading():
    from xmc_actors.strategies import BandStrategy

    params = {"signal": "ratio", "price": "mid", "center": 1.0, "entry": 0.01, "exit": 0.003, "cooldown_ms": 0}
    bad = Exploding(ctx("bad"), params)
    good = BandStrategy(ctx("good"), params)
    host = StrategyHostCore([bad, good], EventMaker(SimClock(T0), "host"))
    t = T0
    for _ in range(3):
        t += MS
        intents_, evs = written(host, "on_quotes", pair_quotes(1.0, t=t), t)
        assert intents_ == []
    [err] = [e for e in evs if e.kind.value == "STRATEGY_ERROR"]
    assert err.strategy == "bad" and "ZeroDivisionError: bug in user code" in err.reason
    assert bad.state is StrategyState.ERROR and good.state is StrategyState.ACTIVE
    intents_, evs = written(host, "on_quotes", pair_quotes(1.02, t=t + MS), t + MS)
    assert [i.strategy for i in intents_] == ["good"]
    assert not [e for e in evs if e.kind.value == "STRATEGY_ERROR"]  # a halted one is not re-run
    st = host.status()
    assert st["bad"]["state"] == "ERROR" and st["bad"]["errors"] and st["good"]["pending"] == "good-00000001"


def test_pair_summaries_route_by_decision_id_and_an_unknown_one_is_bad_input():
    from xmc_actors.strategies import BandStrategy

    params = {"center": 1.0, "entry": 0.01, "exit": 0.003, "cooldown_ms": 0, "price": "mid"}
    a, b = BandStrategy(ctx("a"), params), BandStrategy(ctx("b"), params)
    host = StrategyHostCore([a, b], EventMaker(SimClock(T0), "host"))
    its = host.on_quotes(pair_quotes(1.02), T0)
    assert sorted(i.decision_id for i in its) == ["a-00000001", "b-00000001"]
    host.on_pair_done(done(its[1]), T0 + 1)
    assert its[1].strategy == "b" and (a.position, b.position) == (0, -1)
    _, evs = written(host, "on_pair_done", {"decision_id": "zz-1", "state": "HEDGED"}, T0 + 2)
    assert [e.kind.value for e in evs] == ["BAD_INPUT"] and host.bad_input == 1
    _, evs = written(host, "on_quotes", ["not a quote", *pair_quotes(1.0, t=T0 + 3)], T0 + 3)
    assert any(e.kind.value == "BAD_INPUT" and "not Quote" in e.reason for e in evs)


# ------------------------------------------------------------------ registration
def test_builtins_are_registered_with_their_classes_as_factories():
    for name in ("band", "zscore", "basis_monitor", "calendar_roll"):
        assert issubclass(STRATEGIES.get(name).factory, Strategy)


def test_a_user_subclass_registers_by_class_keywords_and_by_decorator():
    class P(BandParams):
        pass

    class Mine(Strategy, name="test_mine_kw", params=P):
        def decide(self, snap):
            return Decision(0, "flat")

    @register_strategy("test_mine_deco", P)
    class Mine2(Strategy):
        def decide(self, snap):
            return None

    assert STRATEGIES.get("test_mine_kw").factory is Mine and STRATEGIES.get("test_mine_kw").params is P
    assert STRATEGIES.get("test_mine_deco").factory is Mine2


def test_a_second_class_under_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="'band' is already registered"):
        class Other(Strategy, name="band", params=BandParams):
            pass


def test_unknown_strategy_class_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown strategy class 'bandd' \(known: .*band"):
        STRATEGIES.get("bandd")


def test_live_fx_quotes_feed_the_hosts_fx_book_and_a_bad_one_is_bad_input():
    from xmc_actors.core.pricing import FxBook, LiveRate
    from xmc_actors.strategies import BandStrategy

    c = ctx("live")
    c = c.__class__(**{**c.__dict__, "fx": FxBook({("USD", "CNY"): LiveRate(max_age_ms=60_000)})})
    s = BandStrategy(c, {"center": 1.0, "entry": 0.01, "exit": 0.003, "cooldown_ms": 0, "price": "mid"})
    host = StrategyHostCore([s], EventMaker(SimClock(T0), "host"))
    its = host.on_quotes(pair_quotes(1.02), T0)
    assert its == [] and s.blocked[0] == "NO_PARITY"
    # USDCNY 7.07: SHFE 70000 CNY/t is 9900.99 USD/t, so LME at 10200 is rich by 3 %
    its, evs = written(host, "on_quotes", [quote("FX.USDCNY", "7.0699", "7.0701", ts_ns=T0 + 1), *pair_quotes(1.02, t=T0 + 1)], T0 + 1)
    assert len(its) == 1
    assert s.last_signal["signal_mid"] == pytest.approx(10200 / (70000 / 7.07), rel=1e-9)
    _, evs = written(host, "on_quotes", [quote("FX.USDCNY", "-1", "-1", ts_ns=T0 + 2)], T0 + 2)
    assert [e.kind.value for e in evs] == ["BAD_INPUT"] and "positive" in evs[0].reason
