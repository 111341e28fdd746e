"""A replay trades at its own market time: the pre-trade check looks FX up at the stamp of the
quotes a pair was decided on (with the deployment's default lag, no ``max_lag_days: 1000``),
judges a replayed strategy's sessions then, and the risk guard converts margins at the marks'
stamps. (Issue 17 item 7: every pair of a 2019 replay was REFUSED with FX_UNAVAILABLE.)"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import testkit as tk

from xmc_actors.core.capital import CapitalPool, PositionBook
from xmc_actors.core.clock import SimClock
from xmc_actors.core.risk_rules import PreTradeChecker, RiskGrant, fx_from_book
from xmc_actors.core.sink import MemorySink
from xmc_actors.feeds.fx import DEFAULT_FX_MAX_LAG_DAYS, fx_book_from_config
from xmc_actors.model.market import Account, FxPair
from xmc_actors.model.risk import RiskConfig

FRED = tk.data_dir() / "real" / "fred_dexchus_usdcny_daily.csv"
MS = 1_000_000
NS = 1_000_000_000
# a wall clock after the FRED file's last row (2025-09-26): no rate "today" without a lag
WALL_NS = int(dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.timezone.utc).timestamp()) * NS      # Mon 10:00 Shanghai
LUNCH_NS = int(dt.datetime(2026, 3, 2, 4, 30, tzinfo=dt.timezone.utc).timestamp()) * NS    # 12:30 Shanghai
# Wed 2019-03-06 14:59 Shanghai: an SHFE daily close, LME open (06:59 London)
MARKET_NS = int(dt.datetime(2019, 3, 6, 6, 59, tzinfo=dt.timezone.utc).timestamp()) * NS
JULY_4_NS = int(dt.datetime(2019, 7, 4, 6, 59, tzinfo=dt.timezone.utc).timestamp()) * NS  # FRED: no fixing


def usdcny_book():
    return fx_book_from_config([FxPair(base="USD", quote="CNY", source="file", file=str(FRED))])


def checker(now: int, *, replayed: tuple[str, ...] = ()) -> PreTradeChecker:
    clock = SimClock(now)
    venues = {c: tk.venue(c) for c in ("SHFE", "LME")}
    chk = PreTradeChecker(tk.instruments(), venues, fx_from_book(usdcny_book(), clock), name="c1", sink=MemorySink(),
                          clock=clock, market_time_strategies=replayed)
    chk.update_grant(RiskGrant(coordinator="c1", seq=1, issued_ns=now, expires_ns=now + 5_000 * MS, config=RiskConfig(),
                               accounts={"cn": "CNY", "us": "USD"},
                               leases={"account:cn": Decimal(10_000_000), "account:us": Decimal(2_000_000)}))
    return chk


def test_the_default_lag_is_one_rule_a_date_without_a_row_gives_no_rate():
    assert DEFAULT_FX_MAX_LAG_DAYS == 0
    book = usdcny_book()
    assert book.rate("USD", "CNY", MARKET_NS) is not None   # 2019-03-06 has a fixing
    assert book.rate("USD", "CNY", JULY_4_NS) is None     # a US holiday: no row, no rate
    assert book.rate("USD", "CNY", WALL_NS) is None       # after the file's last row


def test_a_2019_pair_is_checked_at_2019_rates_whatever_the_wall_clock_says():
    chk = checker(WALL_NS)
    r = chk.check_pair(tk.pair_intent(created_ns=MARKET_NS), WALL_NS)
    assert r.allowed, r.denials
    # the same pair with no market time is checked at the clock's date: after the series, no rate
    r = checker(WALL_NS).check_pair(tk.pair_intent(decision_id="d2"), WALL_NS)
    assert "FX_UNAVAILABLE" in [d.code for d in r.denials]


def test_a_market_date_without_a_fixing_is_refused_as_the_strategies_would_see_it():
    r = checker(WALL_NS).check_pair(tk.pair_intent(created_ns=JULY_4_NS), WALL_NS)
    assert "FX_UNAVAILABLE" in [d.code for d in r.denials]


def test_a_replayed_strategy_s_sessions_are_judged_at_its_market_time():
    # the wall clock is in SHFE's lunch break; the pair was decided at a 2019 SHFE close
    intent = tk.pair_intent(created_ns=MARKET_NS, strategy="replayed")
    assert checker(LUNCH_NS, replayed=("replayed",)).check_pair(intent, LUNCH_NS).allowed
    live = checker(LUNCH_NS).check_pair(intent, LUNCH_NS)   # a live strategy: the wall clock's sessions
    assert "MARKET_CLOSED" in [d.code for d in live.denials]


def test_the_risk_guard_converts_a_margin_at_its_mark_s_stamp():
    clock = SimClock(WALL_NS)
    accounts = [Account(id="cn", broker="sim", venues=("SHFE",), currency="CNY", capital=Decimal(10_000_000)),
                Account(id="us", broker="sim", venues=("LME",), currency="USD", capital=Decimal(2_000_000))]
    pool = CapitalPool(accounts, tk.instruments(), fx_from_book(usdcny_book(), clock), "USD")
    book = PositionBook()
    book.mark("SHFE.cu", Decimal(48000), MARKET_NS)
    assert pool.margin_of("SHFE.cu", 1, book.marks, "USD") is not None    # at 2019-03-06's rate
    assert pool.rate("CNY", "USD") is None                                 # at the clock's: none
    _, overall = pool.occupancy(book, RiskConfig().occupancy)
    assert overall.equity > Decimal(2_000_000)                             # the CNY account counted, at 2019's rate


def test_market_time_fx_answers_the_decimal_the_rate_prints_as_from_any_book():
    clock = SimClock(MARKET_NS)
    book = usdcny_book()
    fx = fx_from_book(book, clock)
    o = book.rate("USD", "CNY", MARKET_NS)
    for _ in range(2):  # the second answer is the remembered one: the same decimal
        d = fx("USD", "CNY")
        assert d == Decimal(repr(o.rate)) and str(d) == repr(o.rate)
    assert fx("CNY", "USD") == Decimal(repr(book.rate("CNY", "USD", MARKET_NS).rate))
    fx.at(JULY_4_NS)
    assert fx("USD", "CNY") is None  # no fixing that day (the default lag: none)

    class RatesOnly:  # a book with rate() alone (no rate_value): answered through its observations
        def rate(self, a, b, ts):
            return book.rate(a, b, ts)

    other = fx_from_book(RatesOnly(), clock)
    assert other("USD", "CNY") == fx_from_book(book, clock)("USD", "CNY")
