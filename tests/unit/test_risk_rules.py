"""Pre-trade checks: every check's refusal and its recorded reason, grants, throttles, margin."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import testkit as tk

from xmc_actors.core.clock import SimClock
from xmc_actors.core.risk_rules import DenialCode, PreTradeChecker, RiskGrant
from xmc_actors.core.sink import MemorySink
from xmc_actors.model.events import EventKind
from xmc_actors.model.risk import DailyCounts, InstrumentLimits, RiskConfig, StrategyBudget, Throttle, TradingState

OPEN_NS = 1_736_215_200_000_000_000      # Tue 2025-01-07 10:00 Shanghai / 02:00 London: both open
LUNCH_NS = 1_736_224_200_000_000_000     # 12:30 Shanghai: SHFE lunch break
MS = 1_000_000
USDCNY = Decimal("7.1")


def fx(a: str, b: str) -> Decimal | None:
    return {("CNY", "USD"): 1 / USDCNY, ("USD", "CNY"): USDCNY}.get((a, b))


def make(config: RiskConfig | None = None, *, leases: dict[str, Decimal] | None = None, now: int = OPEN_NS,
         **grant: Any) -> tuple[PreTradeChecker, MemorySink, SimClock]:
    clock = SimClock(now)
    sink = MemorySink()
    venues = {c: tk.venue(c) for c in ("SHFE", "LME", "COMEX", "SGE")}
    chk = PreTradeChecker(tk.instruments(), venues, fx, name="c1", sink=sink, clock=clock)
    chk.update_grant(RiskGrant(
        coordinator="c1", seq=1, issued_ns=now, expires_ns=now + 5_000 * MS, config=config or RiskConfig(),
        accounts={"cn": "CNY", "us": "USD"},
        leases=leases if leases is not None else {"account:cn": Decimal(10_000_000), "account:us": Decimal(2_000_000)},
        **grant))
    return chk, sink, clock


def codes(result: Any) -> list[str]:
    return [d.code for d in result.denials]


def test_pair_within_limits_is_accepted_and_reserves_margin_on_both_accounts() -> None:
    chk, sink, clock = make()
    r = chk.check_pair(tk.pair_intent(), clock.now_ns())
    assert r.allowed and r.reservation_id == "d1"
    # SHFE cu 72000 x 5 t x 10% = 36000 CNY; LME 9800 x 25 t x 10% = 24500 USD
    assert chk.reservation("d1") == {"account:cn": Decimal("36000"), "account:us": Decimal("24500")}
    ev = [e for e in sink.events if e.kind is EventKind.RISK_DECISION]
    assert len(ev) == 1 and ev[0].reason == "ACCEPTED" and ev[0].payload["reservation"]["account:us"] == "24500.0"


def test_checking_the_same_decision_twice_reserves_once() -> None:
    chk, _, clock = make()
    chk.check_pair(tk.pair_intent(), clock.now_ns())
    chk.check_pair(tk.pair_intent(), clock.now_ns())
    assert chk.usage() == {"account:cn": Decimal("36000"), "account:us": Decimal("24500")}


def test_quantity_above_max_is_refused_with_qty_and_max() -> None:
    chk, sink, clock = make(RiskConfig(default_limits=InstrumentLimits(max_order_qty=5)))
    r = chk.check_pair(tk.pair_intent(a=("SHFE.cu", "BUY", 6, "72000")), clock.now_ns())
    assert not r.allowed
    assert [str(d) for d in r.denials] == ["QTY_EXCEEDS_MAX: leg=A instrument=SHFE.cu qty=6 max=5"]
    refused = [e for e in sink.events if e.reason == "REFUSED"]
    assert refused[0].payload["denials"] == ["QTY_EXCEEDS_MAX: leg=A instrument=SHFE.cu qty=6 max=5"]
    assert chk.usage() == {}


def test_quantity_above_the_venue_max_is_refused() -> None:
    chk, _, clock = make()
    r = chk.check_pair(tk.pair_intent(a=("SHFE.cu", "BUY", 501, "72000")), clock.now_ns())
    assert "QTY_EXCEEDS_MAX" in codes(r) and "max=500 (venue)" in str(r.denials[0])


def test_notional_above_max_is_refused_with_notional_and_max() -> None:
    cfg = RiskConfig(instruments={"LME.CA3M": InstrumentLimits(max_order_notional=Decimal(400_000))})
    chk, _, clock = make(cfg)
    r = chk.check_pair(tk.pair_intent(b=("LME.CA3M", "SELL", 2, "9800")), clock.now_ns())
    assert [str(d) for d in r.denials] == ["NOTIONAL_EXCEEDS_MAX: leg=B instrument=LME.CA3M notional=490000 max=400000 USD"]


def test_fat_finger_price_outside_collar_of_the_reference_is_refused() -> None:
    chk, _, clock = make(reference_prices={"SHFE.cu": (Decimal(72000), OPEN_NS)})
    intent = tk.pair_intent(a=("SHFE.cu", "BUY", 1, "79200"))  # 10% above the reference
    r = chk.check_pair(intent, clock.now_ns())
    assert codes(r) == ["PRICE_OUTSIDE_COLLAR"]
    assert "price=79200 reference=72000 deviation=10.00% max=5.00%" in str(r.denials[0])


def test_stale_reference_price_is_refused_when_an_age_limit_is_set() -> None:
    chk, _, clock = make(RiskConfig(max_reference_age_ms=1_000), reference_prices={"SHFE.cu": (Decimal(72000), OPEN_NS - 5_000 * MS)})
    r = chk.check_pair(tk.pair_intent(), clock.now_ns())
    assert codes(r) == ["REFERENCE_STALE"] and "reference_age_ms=5000 max=1000" in str(r.denials[0])


def test_instrument_position_limit_counts_booked_position_and_pairs_in_flight() -> None:
    cfg = RiskConfig(instruments={"SHFE.cu": InstrumentLimits(max_position=3)})
    chk, _, clock = make(cfg, account_positions={"cn": {"SHFE.cu": 2}})
    assert chk.check_pair(tk.pair_intent("d1"), clock.now_ns()).allowed       # 2 + 1 = 3
    r = chk.check_pair(tk.pair_intent("d2"), clock.now_ns())                  # 2 + 1 in flight + 1 = 4
    assert codes(r) == ["POSITION_EXCEEDS_INSTRUMENT_MAX"]
    assert "position=2 in_flight=1 order=1 after=4 max=3" in str(r.denials[0])


def test_strategy_position_limit_is_refused() -> None:
    cfg = RiskConfig(strategies={"s1": StrategyBudget(max_position=1)})
    chk, _, clock = make(cfg, strategy_positions={"s1": {"LME.CA3M": -1}})
    r = chk.check_pair(tk.pair_intent(), clock.now_ns())
    assert codes(r) == ["POSITION_EXCEEDS_STRATEGY_MAX"] and "after=-2 max=1" in str(r.denials[0])


def test_account_gross_position_limit_is_refused() -> None:
    cfg = RiskConfig(max_account_position={"us": 3})
    chk, _, clock = make(cfg, account_positions={"us": {"LME.CA3M": -2, "COMEX.GC": 1}})
    r = chk.check_pair(tk.pair_intent(), clock.now_ns())
    assert [str(d) for d in r.denials] == ["POSITION_EXCEEDS_ACCOUNT_MAX: account=us gross_lots=3 order=1 after=4 max=3"]


def test_pair_net_exposure_above_max_is_refused_in_base_currency() -> None:
    # long 1 SHFE cu (360000 CNY = 50704 USD) vs short 1 LME (245000 USD): net 194296 USD
    cfg = RiskConfig(strategies={"s1": StrategyBudget(max_pair_net_exposure=Decimal(100_000))})
    chk, _, clock = make(cfg)
    r = chk.check_pair(tk.pair_intent(), clock.now_ns())
    assert codes(r) == ["PAIR_NET_EXPOSURE_EXCEEDS_MAX"]
    assert "net_exposure=194295.77 max=100000 USD" in str(r.denials[0])


def test_margin_above_the_lease_is_refused_with_required_and_available_in_account_currency() -> None:
    chk, _, clock = make(leases={"account:cn": Decimal(50_000), "account:us": Decimal(2_000_000)})
    assert chk.check_pair(tk.pair_intent("d1"), clock.now_ns()).allowed
    r = chk.check_pair(tk.pair_intent("d2"), clock.now_ns())
    assert codes(r) == ["MARGIN_EXCEEDS_AVAILABLE"]
    assert "account=cn required=36000.0 available=14000.0 CNY" in str(r.denials[0])


def test_strategy_margin_budget_is_enforced_in_base_currency() -> None:
    leases = {"account:cn": Decimal(10**8), "account:us": Decimal(10**8), "strategy:s1": Decimal(25_000)}
    chk, _, clock = make(leases=leases)
    r = chk.check_pair(tk.pair_intent(), clock.now_ns())  # 36000/7.1 + 24500 = 29570 USD
    assert codes(r) == ["STRATEGY_MARGIN_EXCEEDS_BUDGET"] and "strategy=s1 required=29570.42" in str(r.denials[0])


def test_account_at_red_occupancy_refuses_new_entries() -> None:
    chk, _, clock = make(blocked_accounts={"us": "occupancy=91.0% at or above red 90%"})
    r = chk.check_pair(tk.pair_intent(), clock.now_ns())
    assert [str(d) for d in r.denials] == ["OCCUPANCY_RED: account=us occupancy=91.0% at or above red 90%"]


def test_missing_fx_rate_is_refused_not_crashed() -> None:
    chk, _, clock = make()
    chk.fx = lambda a, b: None
    r = chk.check_pair(tk.pair_intent(), clock.now_ns())
    assert "FX_UNAVAILABLE" in codes(r)


def test_entry_during_a_break_on_one_leg_is_refused_with_the_calendar_reason() -> None:
    chk, _, clock = make(now=LUNCH_NS)
    r = chk.check_pair(tk.pair_intent(), LUNCH_NS)
    assert codes(r) == ["MARKET_CLOSED"]
    assert "leg=A instrument=SHFE.cu SHFE closed: outside sessions or in a break at 12:30 local" == r.denials[0].detail


def test_every_failed_check_is_reported_not_just_the_first() -> None:
    cfg = RiskConfig(default_limits=InstrumentLimits(max_order_qty=1))
    chk, sink, _ = make(cfg, now=LUNCH_NS, trading_states={"strategy:s1": TradingState.HALTED})
    r = chk.check_pair(tk.pair_intent(a=("SHFE.cu", "BUY", 2, "72000")), LUNCH_NS)
    assert codes(r) == ["TRADING_HALTED", "MARKET_CLOSED", "QTY_EXCEEDS_MAX"]
    assert sink.events[-1].payload["codes"] == ["TRADING_HALTED", "MARKET_CLOSED", "QTY_EXCEEDS_MAX"]


def test_unknown_instrument_is_refused() -> None:
    chk, _, clock = make()
    r = chk.check_pair(tk.pair_intent(a=("SHFE.zz", "BUY", 1, "100")), clock.now_ns())
    assert codes(r)[0] == "UNKNOWN_INSTRUMENT"


# -- trading states ------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["global", "strategy:s1", "venue:LME"])
def test_halted_scope_refuses_pairs_and_orders(scope: str) -> None:
    chk, _, clock = make(trading_states={scope: TradingState.HALTED})
    assert codes(chk.check_pair(tk.pair_intent(), clock.now_ns())) == ["TRADING_HALTED"]
    d = chk.allows_order("s1", "LME", "LME.CA3M", True, clock.now_ns())
    assert d is not None and d.code == "TRADING_HALTED"


def test_reducing_state_refuses_entries_but_lets_a_reducing_pair_through() -> None:
    chk, _, clock = make(trading_states={"strategy:s1": TradingState.REDUCING},
                         strategy_positions={"s1": {"SHFE.cu": 1, "LME.CA3M": -1}},
                         account_positions={"cn": {"SHFE.cu": 1}, "us": {"LME.CA3M": -1}})
    entry = chk.check_pair(tk.pair_intent("d1"), clock.now_ns())
    assert codes(entry) == ["TRADING_REDUCING"]
    close = tk.pair_intent("d2", a=("SHFE.cu", "SELL", 1, "72000"), b=("LME.CA3M", "BUY", 1, "9800"), reduce_only=True)
    r = chk.check_pair(close, clock.now_ns())
    assert r.allowed and chk.reservation("d2") == {}  # closing needs no margin
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", False, clock.now_ns()).code == "TRADING_REDUCING"
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", True, clock.now_ns()) is None


def test_reduce_only_pair_that_would_open_a_position_is_refused() -> None:
    chk, _, clock = make()
    r = chk.check_pair(tk.pair_intent(reduce_only=True), clock.now_ns())
    assert codes(r) == ["NOT_REDUCING", "NOT_REDUCING"]


def test_pushed_state_and_grant_the_more_severe_holds_until_a_newer_grant_agrees() -> None:
    chk, _, clock = make()
    chk.set_trading_state("global", None, TradingState.HALTED)
    stale = chk.grant.model_copy(update={"seq": 2, "trading_states": {}})  # planned before the halt
    chk.update_grant(stale)
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", False, clock.now_ns()).code == "TRADING_HALTED"
    chk.update_grant(chk.grant.model_copy(update={"seq": 3, "trading_states": {"global": TradingState.HALTED}}))
    chk.set_trading_state("global", None, TradingState.ACTIVE)  # resume pushed; grant 3 still says HALTED
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", False, clock.now_ns()).code == "TRADING_HALTED"
    chk.update_grant(chk.grant.model_copy(update={"seq": 4, "trading_states": {}}))  # planned after the resume
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", False, clock.now_ns()) is None


# -- grants ----------------------------------------------------------------------------------------
def test_no_grant_refuses_every_pair() -> None:
    chk = PreTradeChecker(tk.instruments(), {}, fx, name="c9")
    r = chk.check_pair(tk.pair_intent(), OPEN_NS)
    assert codes(r) == ["NO_GRANT"]
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", False, OPEN_NS).code == "NO_GRANT"


def test_expired_grant_lets_only_reducing_orders_through() -> None:
    chk, _, clock = make()
    clock.advance(6_000 * MS)
    r = chk.check_pair(tk.pair_intent(), clock.now_ns())
    assert codes(r) == ["GRANT_EXPIRED"]
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", False, clock.now_ns()).code == "GRANT_EXPIRED"
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", True, clock.now_ns()) is None


def test_an_older_grant_never_replaces_a_newer_one() -> None:
    chk, _, _ = make()
    newer = chk.grant.model_copy(update={"seq": 5, "leases": {"account:cn": Decimal(1)}})
    chk.update_grant(newer)
    ack = chk.update_grant(newer.model_copy(update={"seq": 4, "leases": {"account:cn": Decimal(10**9)}}))
    assert ack.seq == 5 and chk.grant.leases == {"account:cn": Decimal(1)}


# -- throttles and daily counts --------------------------------------------------------------------
def test_order_rate_above_the_granted_rate_is_denied_then_allowed_after_a_second() -> None:
    chk, _, clock = make(order_rate_per_s=3)
    now = clock.now_ns()
    assert [chk.allows_order("s1", "SHFE", "SHFE.cu", False, now + i) for i in range(3)] == [None] * 3
    d = chk.allows_order("s1", "SHFE", "SHFE.cu", False, now + 3)
    assert str(d) == "ORDER_RATE_EXCEEDED: coordinator orders_last_1s=3 max=3"
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", False, now + 1_000 * MS + 1) is None


def test_throttled_strategy_gets_a_fraction_of_the_rate_but_rollbacks_are_not_slowed() -> None:
    cfg = RiskConfig(throttle=Throttle(max_orders_per_s=50, throttled_fraction=Decimal("0.1")))
    chk, _, clock = make(cfg, order_rate_per_s=50, throttled=("strategy:s1",))
    now = clock.now_ns()
    got = [chk.allows_order("s1", "SHFE", "SHFE.cu", False, now + i) for i in range(6)]
    assert got[:5] == [None] * 5 and got[5].code == "ORDER_RATE_EXCEEDED" and "throttled strategy:s1" in got[5].detail
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", True, now + 7) is None
    assert chk.allows_order("s2", "SHFE", "SHFE.cu", False, now + 8) is None


def test_cancel_rate_above_max_is_denied() -> None:
    chk, _, clock = make(cancel_rate_per_s=2)
    now = clock.now_ns()
    assert chk.allows_cancel("s1", "SHFE", "SHFE.cu", now) is None
    assert chk.allows_cancel("s1", "SHFE", "SHFE.cu", now + 1) is None
    assert chk.allows_cancel("s1", "SHFE", "SHFE.cu", now + 2).code == "CANCEL_RATE_EXCEEDED"


def test_daily_order_and_cancel_counts_per_contract_stop_at_the_venue_threshold_and_reset_next_trading_day() -> None:
    cfg = RiskConfig(daily_counts={"SHFE": DailyCounts(max_orders_per_contract=2, max_cancels_per_contract=1)})
    chk, _, clock = make(cfg)
    now = clock.now_ns()
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", False, now) is None
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", False, now + 1) is None
    d = chk.allows_order("s1", "SHFE", "SHFE.cu", True, now + 2)
    assert str(d) == "DAILY_ORDER_COUNT_EXCEEDED: instrument=SHFE.cu orders_today=2 max=2"
    assert chk.allows_order("s1", "SHFE", "SHFE.cu2601", False, now + 3) is None  # another contract
    assert chk.allows_cancel("s1", "SHFE", "SHFE.cu", now + 4) is None
    assert chk.allows_cancel("s1", "SHFE", "SHFE.cu", now + 5).code == "DAILY_CANCEL_COUNT_EXCEEDED"
    next_day = now + 24 * 3600 * 1_000_000_000
    chk.update_grant(chk.grant.model_copy(update={"seq": 2, "expires_ns": next_day + 10**10}))
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", False, next_day) is None


# -- reservations: reserve, commit on fill, release on cancel/reject ------------------------------
def test_fill_commits_margin_and_close_releases_the_unfilled_rest() -> None:
    chk, _, clock = make()
    intent = tk.pair_intent(a=("SHFE.cu", "BUY", 4, "72000"), b=("LME.CA3M", "SELL", 4, "9800"))
    assert chk.check_pair(intent, clock.now_ns()).allowed
    assert chk.usage()["account:cn"] == Decimal(144_000)
    chk.on_order_done(intent, "A", 3, Decimal(72000))        # 3 of 4 filled, 1 canceled
    chk.on_order_done(intent, "B", 0, None)                  # leg B rejected
    assert chk.usage()["account:cn"] == Decimal(144_000)     # the rest stays reserved for a replenish
    chk.close_pair(intent.decision_id)
    assert chk.usage() == {"account:cn": Decimal(108_000)}   # 3 lots committed, B released
    assert chk.position("s1", "SHFE.cu") == 3


def test_rollback_fill_unwinds_committed_margin_and_position() -> None:
    chk, _, clock = make()
    intent = tk.pair_intent()
    chk.check_pair(intent, clock.now_ns())
    chk.on_order_done(intent, "A", 1, Decimal(72000))
    chk.on_order_done(intent, "A", -1, Decimal(71990))       # rolled back
    chk.close_pair(intent.decision_id)
    assert chk.usage() == {} and chk.position("s1", "SHFE.cu") == 0


def test_booked_pair_in_a_new_grant_moves_from_local_to_granted_positions() -> None:
    chk, _, clock = make()
    intent = tk.pair_intent()
    chk.check_pair(intent, clock.now_ns())
    chk.on_order_done(intent, "A", 1, Decimal(72000))
    chk.on_order_done(intent, "B", 1, Decimal(9800))
    chk.close_pair("d1")
    ack = chk.update_grant(chk.grant.model_copy(update={
        "seq": 2, "booked": ("d1",), "strategy_positions": {"s1": {"SHFE.cu": 1, "LME.CA3M": -1}}}))
    assert ack.usage == {} and ack.open_reservations == 0
    assert chk.position("s1", "SHFE.cu") == 1 and chk.position("s1", "LME.CA3M") == -1
