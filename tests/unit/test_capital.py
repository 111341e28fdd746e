"""Capital pool, occupancy and margin leases: two coordinators never spend the same margin twice."""
from __future__ import annotations

import threading
from decimal import Decimal

import testkit as tk

from xmc_actors.core.capital import CapitalPool, LeaseBook, PositionBook, occupancy_level
from xmc_actors.core.clock import SimClock
from xmc_actors.core.risk_guard import RiskGuardCore
from xmc_actors.core.risk_rules import PreTradeChecker
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import Account
from xmc_actors.model.risk import AlertLevel, OccupancyLevels, RiskConfig

OPEN_NS = 1_736_215_200_000_000_000
USDCNY = Decimal("7.1")


def fx(a: str, b: str) -> Decimal | None:
    return {("CNY", "USD"): 1 / USDCNY, ("USD", "CNY"): USDCNY}.get((a, b))


def accounts(cn: int = 10_000_000, us: int = 2_000_000) -> list[Account]:
    return [Account(id="cn", broker="sim", venues=("SHFE", "SGE"), currency="CNY", capital=Decimal(cn)),
            Account(id="us", broker="sim", venues=("LME", "COMEX"), currency="USD", capital=Decimal(us))]


def guard(cn: int = 10_000_000, us: int = 2_000_000, cfg: RiskConfig | None = None) -> RiskGuardCore:
    venues = {c: tk.venue(c) for c in ("SHFE", "LME", "COMEX", "SGE")}
    return RiskGuardCore(cfg or RiskConfig(), tk.instruments(), venues, accounts(cn, us), fx,
                         clock=SimClock(OPEN_NS), sink=MemorySink())


def checker(name: str) -> PreTradeChecker:
    venues = {c: tk.venue(c) for c in ("SHFE", "LME", "COMEX", "SGE")}
    return PreTradeChecker(tk.instruments(), venues, fx, name=name)


def test_occupancy_levels_default_to_yellow_70_orange_85_red_90() -> None:
    lv = OccupancyLevels()
    assert [occupancy_level(Decimal(x), lv) for x in ("0.69", "0.70", "0.85", "0.90")] == \
        [None, AlertLevel.YELLOW, AlertLevel.ORANGE, AlertLevel.RED]


def test_occupancy_per_account_in_its_currency_and_overall_in_base_currency() -> None:
    book = PositionBook()
    book.apply_fill("cn", "s1", "SHFE.cu", 100, Decimal(72000))      # 3.6m CNY margin of 10m
    book.apply_fill("us", "s1", "LME.CA3M", -40, Decimal(9800))      # 980k USD margin of 2m
    pool = CapitalPool(accounts(), tk.instruments(), fx, "USD")
    per, overall = pool.occupancy(book, OccupancyLevels())
    assert per["cn"].ratio == Decimal("0.36") and per["cn"].level is None and per["cn"].currency == "CNY"
    assert per["us"].ratio == Decimal("0.49")
    expected = (Decimal(3_600_000) / USDCNY + 980_000) / (Decimal(10_000_000) / USDCNY + 2_000_000)
    assert abs(overall.ratio - expected) < Decimal("1e-12") and overall.currency == "USD"


def test_leases_of_two_coordinators_are_disjoint_slices_of_the_free_margin() -> None:
    g = guard()
    g.register_coordinator("c1")
    g.register_coordinator("c2")
    l1 = g.make_grant("c1").leases
    l2 = g.make_grant("c2").leases
    cap = Decimal(10_000_000) * Decimal("0.90")
    assert l1["account:cn"] + l2["account:cn"] <= cap
    assert l1["account:cn"] == l2["account:cn"] == cap / 2


def test_a_lease_shrink_is_only_reused_once_acknowledged() -> None:
    lb = LeaseBook()
    pools = {"account:x": (Decimal(100), Decimal(0))}
    lb.register("c1")
    assert lb.plan("c1", pools)["account:x"] == 100          # alone: all of it
    lb.register("c2")
    assert lb.plan("c2", pools)["account:x"] == 0            # c1 may still be using 100
    lb.plan("c1", pools)                                     # shrink to 50 sent, not acked
    assert lb.plan("c2", pools)["account:x"] == 0
    from xmc_actors.core.risk_rules import GrantAck  # noqa: F401 - the ack shape the guard receives
    lb.on_ack("c1", {"account:x": Decimal(50)}, {"account:x": Decimal(30)})
    assert lb.plan("c2", pools)["account:x"] == 50


def test_a_coordinator_using_more_than_its_new_lease_is_counted_at_its_usage() -> None:
    lb = LeaseBook()
    pools = {"account:x": (Decimal(100), Decimal(0))}
    lb.register("c1")
    lb.plan("c1", pools)
    lb.register("c2")
    lb.on_ack("c1", {"account:x": Decimal(50)}, {"account:x": Decimal(80)})  # in flight above its new slice
    assert lb.plan("c2", pools)["account:x"] == 20


def test_two_checkers_reserving_concurrently_against_one_guard_never_exceed_the_pool() -> None:
    # Arrange: a small CNY account (1 SHFE cu lot = 36000 CNY margin), two coordinators
    g = guard(cn=400_000, us=10_000_000)
    cap = Decimal(400_000) * Decimal("0.90")
    chks = {n: checker(n) for n in ("c1", "c2")}
    for n in chks:
        g.register_coordinator(n)
    lock = threading.Lock()
    # one checker is driven by one thread at a time, as its coordinator's event loop drives it;
    # the two checkers (and the guard's grants) run concurrently
    turn = {n: threading.Lock() for n in chks}

    def regrant(n: str) -> None:  # the guard's side: plan, push, ack
        with lock:
            grant = g.make_grant(n)
        with turn[n]:
            ack = chks[n].update_grant(grant)
        with lock:
            g.on_grant_ack(grant, ack)

    for n in chks:
        regrant(n)
    accepted: dict[str, list[str]] = {"c1": [], "c2": []}
    stop = threading.Event()

    def trade(n: str) -> None:
        for i in range(400):
            did = f"{n}-{i}"
            with turn[n]:
                r = chks[n].check_pair(tk.pair_intent(did), OPEN_NS)
                if r.allowed:
                    accepted[n].append(did)
                    if i % 3 == 0:  # some pairs end unfilled: margin released and reused
                        chks[n].close_pair(did)
                        accepted[n].remove(did)
            if i % 7 == 0:
                regrant(n)

    def rebalance() -> None:  # grants keep moving while both trade
        while not stop.is_set():
            for n in chks:
                regrant(n)

    # Act
    threads = [threading.Thread(target=trade, args=(n,)) for n in chks]
    rb = threading.Thread(target=rebalance)
    rb.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    rb.join()

    # Assert: what both hold together never exceeds what the account can lend
    held = sum(chks[n].usage().get("account:cn", Decimal(0)) for n in chks)
    assert held <= cap
    assert len(accepted["c1"]) + len(accepted["c2"]) == held / Decimal(36_000)
    assert accepted["c1"] and accepted["c2"]  # both got a slice


def test_a_fill_stamped_on_another_clock_never_freezes_the_quote_marks():
    # replay: quotes stamped in 2017, a pair summary booked at wall-clock time (2026)
    from decimal import Decimal as D

    from xmc_actors.core.capital import PositionBook

    book = PositionBook()
    book.mark("COMEX.GC", D("1133.3"), 1_480_000_000_000_000_000)
    book.apply_fill("us", "s", "COMEX.GC", 1, D("1140.0"), 1_795_000_000_000_000_000)
    book.mark("COMEX.GC", D("1238.2"), 1_487_800_000_000_000_000)
    assert book.marks["COMEX.GC"][0] == D("1238.2")
    # an instrument never quoted takes its mark from the fill
    book.apply_fill("cn", "s", "SGE.AU9999", -3, D("262.05"), 1_795_000_000_000_000_000)
    assert book.marks["SGE.AU9999"][0] == D("262.05")
