"""P&L core: average cost, two-sided legs, fees by offset, FX P&L apart from price P&L."""
from __future__ import annotations

from decimal import Decimal

import pytest
import testkit as tk
from hypothesis import given, settings
from hypothesis import strategies as st

from xmc_actors.core.pnl import PnlBook, pair_name

USDCNY = Decimal("7")


def book(rate: dict[tuple[str, str], Decimal] | None = None) -> PnlBook:
    rates = rate if rate is not None else {("CNY", "USD"): 1 / USDCNY, ("USD", "CNY"): USDCNY}
    return PnlBook(tk.instruments(), lambda a, b: rates.get((a, b)), "USD")


def cu_no_fees() -> dict:
    return {"SHFE.cu": tk.instrument("SHFE.cu", fees=None, fee_per_lot=Decimal(0), fee_rate=Decimal(0))}


def test_average_cost_realises_against_the_average_and_keeps_it_for_the_rest() -> None:
    b = PnlBook(cu_no_fees(), lambda a, c: Decimal(1) / USDCNY, "USD")
    kw = dict(account="cn", strategy="s", pair="p", instrument="SHFE.cu")
    b.trade(**kw, side="BUY", qty=1, price=Decimal(72000))
    b.trade(**kw, side="BUY", qty=1, price=Decimal(72100))       # average 72050
    t = b.trade(**kw, side="SELL", qty=1, price=Decimal(72250))   # +200 x 5 t
    assert (t.closed, t.opened, t.realised) == (1, 0, Decimal(1000))
    b.mark("SHFE.cu", Decimal(72150), 1)
    f = b.leg_figures(("cn", "s", "p", "SHFE.cu"))
    assert f.realised == 1000 and f.unrealised == Decimal(500) and f.net == 1  # (72150-72050) x 5


def test_a_netting_venue_trade_through_zero_realises_the_close_and_opens_the_rest() -> None:
    b = book()
    kw = dict(account="us", strategy="s", pair="p", instrument="COMEX.GC")
    b.trade(**kw, side="BUY", qty=2, price=Decimal("2000.0"))
    t = b.trade(**kw, side="SELL", qty=5, price=Decimal("2010.0"))
    assert (t.closed, t.opened) == (2, 3)
    assert t.realised == Decimal("10.0") * 2 * 100
    leg = b.legs[("us", "s", "p", "COMEX.GC")]
    assert (leg.long.lots, leg.short.lots, leg.short.avg) == (0, 3, Decimal("2010.0"))


def test_a_lock_on_a_two_sided_venue_realises_nothing_and_a_close_today_pays_its_fee() -> None:
    cu = tk.instrument("SHFE.cu")
    assert cu.fees is not None
    b = book()
    kw = dict(account="cn", strategy="s", pair="p", instrument="SHFE.cu")
    b.trade(**kw, side="BUY", qty=2, price=Decimal(72000), offset="OPEN")
    lock = b.trade(**kw, side="SELL", qty=2, price=Decimal(72500), offset="OPEN")
    assert lock.realised == 0 and lock.closed == 0
    leg = b.legs[("cn", "s", "p", "SHFE.cu")]
    assert (leg.long.lots, leg.short.lots, leg.net) == (2, 2, 0)
    close = b.trade(**kw, side="SELL", qty=1, price=Decimal(73000), offset="CLOSE_TODAY")
    assert close.realised == Decimal(1000) * 5 and close.fee == cu.fee(Decimal(73000), 1, "CLOSE_TODAY")
    assert (leg.long.lots, leg.short.lots) == (1, 2)


def test_fx_pnl_is_the_revaluation_of_what_was_realised_and_price_pnl_stays_at_the_trades_rates() -> None:
    rates = {("CNY", "USD"): Decimal("0.14")}
    b = PnlBook(cu_no_fees(), lambda a, c: rates.get((a, c)), "USD")
    kw = dict(account="cn", strategy="s", pair="p", instrument="SHFE.cu")
    b.trade(**kw, side="BUY", qty=1, price=Decimal(72000))
    b.trade(**kw, side="SELL", qty=1, price=Decimal(73000))   # +5000 CNY at 0.14 = 700 USD
    rates[("CNY", "USD")] = Decimal("0.15")
    f = b.leg_figures(("cn", "s", "p", "SHFE.cu"))
    assert f.realised_base == Decimal(700) and f.total_base == Decimal(750) and f.fx_base == Decimal(50)


def test_a_missing_rate_falls_back_to_the_last_one_and_a_leg_never_rated_has_no_base_figures() -> None:
    rates: dict = {}
    b = PnlBook(tk.instruments(), lambda a, c: rates.get((a, c)), "USD")
    b.trade(account="cn", strategy="s", pair="p", instrument="SHFE.cu", side="BUY", qty=1, price=Decimal(72000))
    f = b.figures("account")["cn"]
    assert f.fx_missing == 1 and f.total_base == 0
    rates[("CNY", "USD")] = Decimal("0.14")
    assert b.rate("CNY") == Decimal("0.14")
    del rates[("CNY", "USD")]
    assert b.rate("CNY") == Decimal("0.14")


def test_figures_add_up_from_legs_to_pairs_strategies_and_accounts() -> None:
    b = book()
    pair = pair_name(["SHFE.cu", "LME.CA3M"])
    assert pair == "LME.CA3M/SHFE.cu"
    b.trade(account="cn", strategy="s1", pair=pair, instrument="SHFE.cu", side="BUY", qty=1, price=Decimal(72000), offset="OPEN")
    b.trade(account="us", strategy="s1", pair=pair, instrument="LME.CA3M", side="SELL", qty=1, price=Decimal("9800"))
    b.trade(account="cn", strategy="s2", pair="x", instrument="SHFE.cu", side="SELL", qty=1, price=Decimal(72000), offset="OPEN")
    b.mark("SHFE.cu", Decimal(72100), 1)
    b.mark("LME.CA3M", Decimal("9790"), 1)
    legs = b.figures("leg")
    strat = b.figures("strategy")
    assert strat["s1"].total_base == sum(v.total_base for k, v in legs.items() if k.split("|")[1] == "s1")
    assert b.figures("pair")[f"s1|{pair}"].total_base == strat["s1"].total_base
    acc = b.figures("account")
    assert acc["cn"].net == 0 and acc["cn"].long == 1 and acc["cn"].short == 1
    assert b.total().total_base == sum(v.total_base for v in acc.values())
    snap = b.snapshot()
    assert set(snap) >= {"accounts", "strategies", "pairs", "legs", "total", "marks", "fx"}


@pytest.mark.parametrize("field,kw", [("qty", {"qty": 0}), ("price", {"price": Decimal(-1)}),
                                      ("offset", {"offset": "SIDEWAYS"}), ("instrument", {"instrument": "X.y"})])
def test_bad_trade_input_names_the_field_and_changes_nothing(field: str, kw: dict) -> None:
    b = book()
    args = dict(account="cn", strategy="s", pair="p", instrument="SHFE.cu", side="BUY", qty=1, price=Decimal(72000))
    args.update(kw)
    with pytest.raises(ValueError, match=field):
        b.trade(**args)
    assert not b.legs


trades = st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 5), st.integers(71000, 73000),
                            st.sampled_from([None, "OPEN", "CLOSE_TODAY", "CLOSE_YESTERDAY"])), min_size=1, max_size=30)


@settings(max_examples=150, deadline=None)
@given(trades, st.integers(70000, 74000), st.decimals("0.10", "0.20", places=3))
def test_realised_plus_unrealised_less_fees_is_the_mark_to_market_change(tr, mark, rate) -> None:
    """Whatever the trades, offsets and rates: P&L (local) = cash from trades + lots held at the
    mark - fees; and in base it is that at the mark's rate, split into price and FX P&L."""
    rates = {("CNY", "USD"): Decimal("0.14")}
    b = PnlBook(tk.instruments(), lambda a, c: rates.get((a, c)), "USD")
    cu = tk.instrument("SHFE.cu")
    cash = fees = Decimal(0)
    net = 0
    for side, qty, px, off in tr:
        t = b.trade(account="cn", strategy="s", pair="p", instrument="SHFE.cu", side=side, qty=qty, price=Decimal(px), offset=off)
        sign = 1 if side == "BUY" else -1
        cash -= sign * qty * Decimal(px) * cu.multiplier
        fees += t.fee
        net += sign * qty
    rates[("CNY", "USD")] = rate
    b.mark("SHFE.cu", Decimal(mark), 1)
    f = b.leg_figures(("cn", "s", "p", "SHFE.cu"))
    leg = b.legs[("cn", "s", "p", "SHFE.cu")]
    assert leg.net == net
    # gross long and short both priced at the mark: a lock holds both
    mtm = cash + Decimal(leg.long.lots - leg.short.lots) * Decimal(mark) * cu.multiplier
    eps = Decimal("1e-9")   # an average cost divides: exact to the 28 digits of Decimal arithmetic
    assert abs(f.total_local - (mtm - fees)) < eps
    assert abs(f.total_base - f.total_local * rate) < eps
    assert abs(f.price_base + f.fx_base - f.total_base) < eps
    assert f.fees == fees


class TimedFx:
    """A provider that can be told the market time (as ``MarketTimeFx``): CNY 0.14 USD before
    ``switch_ns``, 0.15 from it; the wall clock sits far later (0.20)."""

    def __init__(self, switch_ns: int) -> None:
        self.switch, self.at_ns = switch_ns, None

    def at(self, ts_ns):  # noqa: ANN001, ANN201
        self.at_ns = ts_ns or None

    def __call__(self, a: str, b: str):  # noqa: ANN204
        if (a, b) != ("CNY", "USD"):
            return None
        if self.at_ns is None:
            return Decimal("0.20")
        return Decimal("0.14") if self.at_ns < self.switch else Decimal("0.15")


def test_a_replay_counts_at_the_rates_of_its_market_time_and_the_fx_pnl_follows_them() -> None:
    b = PnlBook(cu_no_fees(), TimedFx(switch_ns=100), "USD")
    kw = dict(account="cn", strategy="s", pair="p", instrument="SHFE.cu")
    b.trade(**kw, side="BUY", qty=1, price=Decimal(72000), at_ns=10)
    t = b.trade(**kw, side="SELL", qty=1, price=Decimal(73000), at_ns=20)   # +5000 CNY at 0.14
    assert t.fx == Decimal("0.14")
    b.mark("SHFE.cu", Decimal(73000), 200)                                  # the market moved on: 0.15
    f = b.leg_figures(("cn", "s", "p", "SHFE.cu"))
    assert (f.realised_base, f.fx_base, f.total_base, f.fx) == (Decimal(700), Decimal(50), Decimal(750), Decimal("0.15"))
    assert b.account_pnl("cn", "USD", at_ns=200)[0] == Decimal(750)


def test_the_snapshot_shows_at_each_level_what_figures_of_that_level_show() -> None:
    # the snapshot walks the legs once for every level; each level must be what figures(level) is
    b = book()
    pair = pair_name(["SHFE.cu", "LME.CA3M"])
    b.trade(account="cn", strategy="s1", pair=pair, instrument="SHFE.cu", side="BUY", qty=2, price=Decimal(72000), offset="OPEN")
    b.trade(account="us", strategy="s1", pair=pair, instrument="LME.CA3M", side="SELL", qty=1, price=Decimal("9800"))
    b.trade(account="cn", strategy="s2", pair="x", instrument="SHFE.cu", side="SELL", qty=1, price=Decimal(72000), offset="OPEN")
    b.trade(account="us", strategy="s2", pair="x", instrument="LME.CA3M", side="BUY", qty=3, price=Decimal("9801"))
    b.trade(account="cn", strategy="s1", pair=pair, instrument="SHFE.cu", side="SELL", qty=1, price=Decimal(72150), offset="CLOSE")
    b.mark("SHFE.cu", Decimal(72100), 1)
    b.mark("LME.CA3M", Decimal("9790.5"), 1)
    snap = b.snapshot()
    for level, name in (("account", "accounts"), ("strategy", "strategies"), ("pair", "pairs"), ("leg", "legs")):
        want = {k: f.as_dict() for k, f in b.figures(level).items()}
        assert snap[name] == want and list(snap[name]) == list(want)
    assert snap["total"] == b.total().as_dict()
    assert snap["accounts"]["cn"]["currency"] == "CNY" and "currency" not in snap["strategies"]["s1"]


def test_every_accounts_pnl_from_one_walk_is_each_accounts_own() -> None:
    b = book()
    b.trade(account="cn", strategy="s1", pair="p", instrument="SHFE.cu", side="BUY", qty=2, price=Decimal(72000), offset="OPEN")
    b.trade(account="us", strategy="s1", pair="p", instrument="LME.CA3M", side="SELL", qty=1, price=Decimal("9800"))
    b.trade(account="cn", strategy="s2", pair="q", instrument="LME.CA3M", side="BUY", qty=1, price=Decimal("9801"))
    b.mark("SHFE.cu", Decimal(72100), 1)   # LME.CA3M has no mark: its legs count as missing
    ccy = {"cn": "CNY", "us": "USD", "none": "USD"}
    got = b.accounts_pnl(ccy, 1)
    assert got == {a: b.account_pnl(a, c, 1) for a, c in ccy.items()}
    assert got["cn"][1] == 1 and got["none"] == (0, 0)
