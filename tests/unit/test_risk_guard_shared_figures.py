"""The risk guard computes margin and occupancy once for every caller of the same inputs (a tick,
the grant after it, the PNL MARK record, the status) and again whenever an input changes, even
at the same instant: a fill, a mark, an FX rate, equity, the coordinators' usage, the limits."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import testkit as tk
from test_monitor_alerts import OPEN_NS

from xmc_actors.core.capital import PositionBook
from xmc_actors.core.clock import SimClock
from xmc_actors.core.risk_guard import RiskGuardCore
from xmc_actors.core.risk_types import GrantAck
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import Account
from xmc_actors.model.risk import RiskConfig


def core(rates: dict[tuple[str, str], Decimal]) -> tuple[RiskGuardCore, SimClock, list[int]]:
    """A guard whose CNY-quoted SHFE.cu is held by a USD account (its margin needs a rate), the
    FX from ``rates`` (changed in place by a test), and a count of margin computations."""
    clock = SimClock(OPEN_NS)
    accs = [Account(id="cn", broker="sim", venues=("SHFE",), currency="USD", capital=Decimal(2_000_000)),
            Account(id="us", broker="sim", venues=("LME",), currency="USD", capital=Decimal(2_000_000)),
            Account(id="hk", broker="sim", venues=("HKEX",), currency="CNY", capital=Decimal(1_000_000))]
    g = RiskGuardCore(RiskConfig(), tk.instruments(), {"SHFE": tk.venue("SHFE"), "LME": tk.venue("LME")}, accs,
                      lambda a, b: rates.get((a, b)), clock=clock, sink=MemorySink())
    g.register_coordinator("c1")
    calls = [0]
    inner = g.capital.computed_margin

    def counted(book: PositionBook) -> dict[str, Decimal]:
        calls[0] += 1
        return inner(book)

    g.capital.computed_margin = counted  # type: ignore[method-assign]
    return g, clock, calls


def buy(did: str, qty: int, price: str = "72000") -> dict[str, Any]:
    return {"decision_id": did, "strategy": "s1", "coordinator": "c1", "outcome": "HEDGED", "unhedged_ms": 0.0,
            "legs": [{"leg": "A", "instrument": "SHFE.cu", "account": "cn", "side": "BUY", "intended_qty": qty,
                      "filled_qty": qty, "avg_price": price, "trigger_price": price, "orders": 1, "rejects": 0,
                      "ack_latencies_ms": [1.0]}]}


def mark(g: RiskGuardCore, clock: SimClock, px: str) -> None:
    g.on_quotes([tk.quote("SHFE.cu", Decimal(px) - 10, Decimal(px) + 10, ts_ns=clock.now_ns())])


def fresh(g: RiskGuardCore) -> tuple[dict[str, Decimal], Any]:
    """Margin and occupancy computed from scratch, for comparison."""
    cap = g.capital
    used = cap.used_by_account(g.book)
    return used, cap.occupancy(g.book, g.cfg.occupancy, g.leases.in_flight())


def shared(g: RiskGuardCore) -> tuple[dict[str, Decimal], Any]:
    return g._margins()[1], g._occupancy()


def test_a_tick_and_the_grant_after_it_compute_the_margin_once() -> None:
    g, clock, calls = core({("CNY", "USD"): Decimal("0.14"), ("USD", "CNY"): Decimal("7")})
    g.on_pair_done(buy("d1", 2))
    mark(g, clock, "72000")
    calls[0] = 0
    g.tick()
    grant = g.make_grant("c1")
    g.status()
    assert calls[0] == 1
    assert grant.leases == g.leases.plan("c1", g.capital.capacities(g.book, g.cfg))   # (computes it once more)
    n = calls[0]
    clock.advance(500_000_000)   # the next tick: a new instant, computed again
    g.tick()
    assert calls[0] == n + 1


def test_a_fill_or_a_mark_at_the_same_instant_is_counted_at_once() -> None:
    g, clock, calls = core({("CNY", "USD"): Decimal("0.14"), ("USD", "CNY"): Decimal("7")})
    mark(g, clock, "72000")
    g.tick()
    before = shared(g)
    assert before == fresh(g) and before[0]["cn"] == 0
    g.on_pair_done(buy("d1", 2))   # a fill, same instant
    after_fill = shared(g)
    assert after_fill == fresh(g) and after_fill[0]["cn"] > 0
    mark(g, clock, "73000")        # a new mark, same instant
    after_mark = shared(g)
    assert after_mark == fresh(g) and after_mark[0]["cn"] > after_fill[0]["cn"]
    n = calls[0]
    mark(g, clock, "73000")        # the same mark again changes nothing: nothing computed
    assert shared(g) == after_mark and calls[0] == n


def test_an_fx_update_at_the_same_instant_is_counted_at_once() -> None:
    rates = {("CNY", "USD"): Decimal("0.14"), ("USD", "CNY"): Decimal("7")}
    g, clock, _ = core(rates)
    g.on_pair_done(buy("d1", 2))
    mark(g, clock, "72000")
    g.tick()
    before = shared(g)
    rates[("CNY", "USD")] = Decimal("0.15")   # the margin of cn (USD) and hk's share of the total (CNY) move
    rates[("USD", "CNY")] = Decimal("6.5")
    after = shared(g)
    assert after == fresh(g)
    assert after[0]["cn"] == before[0]["cn"] / Decimal("0.14") * Decimal("0.15")
    assert after[1][1].equity != before[1][1].equity


def test_equity_usage_in_flight_and_new_levels_are_counted_at_once() -> None:
    g, clock, _ = core({("CNY", "USD"): Decimal("0.14"), ("USD", "CNY"): Decimal("7")})
    g.on_pair_done(buy("d1", 2))
    mark(g, clock, "72000")
    g.tick()
    base = shared(g)[1][0]["cn"]
    g.on_account_reading("cn", {"equity": "1000000"})      # the broker's equity wins: same instant
    assert shared(g) == fresh(g) and shared(g)[1][0]["cn"].equity == Decimal(1_000_000)
    grant = g.make_grant("c1")
    g.on_grant_ack(grant, GrantAck("c1", grant.seq, {"account:cn": Decimal(50_000)}, 1))   # usage in flight
    assert shared(g) == fresh(g) and shared(g)[1][0]["cn"].used == base.used + 50_000
    g.set_limit("occupancy", None, "yellow", "0.001", "alice")   # new levels
    assert shared(g) == fresh(g) and shared(g)[1][0]["cn"].level is not None


def test_the_position_book_counts_its_changes() -> None:
    b = PositionBook()
    v = b.version
    b.mark("SHFE.cu", Decimal(72000), 1)
    assert b.version > v
    v = b.version
    b.mark("SHFE.cu", Decimal(72000), 1)   # the same mark: no change
    assert b.version == v
    b.mark("SHFE.cu", Decimal(72000), 0)   # older: not taken
    assert b.version == v
    b.apply_fill("cn", "s1", "SHFE.cu", 1, Decimal(72000), 2)
    assert b.version > v


def test_occupancy_is_kept_across_ticks_while_nothing_it_depends_on_moves_and_fx_at_the_new_market_time_counts() -> None:
    rates = {("CNY", "USD"): Decimal("0.14"), ("USD", "CNY"): Decimal("7")}
    g, clock, _ = core(rates)
    calls = [0]
    inner = g.capital.occupancy

    def counted(*a: Any, **k: Any) -> Any:
        calls[0] += 1
        return inner(*a, **k)

    g.capital.occupancy = counted  # type: ignore[method-assign]
    mark(g, clock, "72000")
    g.tick()
    first = shared(g)[1]
    assert calls[0] == 1
    for _ in range(3):          # nothing held, nothing in flight: later ticks, new marks, the same occupancy
        clock.advance(500_000_000)
        mark(g, clock, "72100")
        g.tick()
        g.make_grant("c1")
    assert calls[0] == 1 and shared(g)[1] is first
    clock.advance(500_000_000)
    rates[("CNY", "USD")] = Decimal("0.15")   # the rate at the new market time differs: hk's share of the total
    mark(g, clock, "72200")
    g.tick()
    assert calls[0] == 2 and shared(g)[1] == fresh(g)[1] and shared(g)[1][1].equity != first[1].equity
