"""Parity engine, FX sources and pair sizing: hand-computed values, then the real SGE/COMEX/FRED rows."""
from __future__ import annotations

import csv
import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import pytest

from testkit import data_dir, instrument, quote
from xmc_actors.feeds.fx import fx_book_from_config, load_daily_fx_csv
from xmc_actors.core.pricing import (
    CostModel, DailySeries, FxBook, LiveRate, ParityEngine, ParityUnavailable, StaticRate,
    quote_is_stale, resolve_hedge_ratio, size_pair,
)
from xmc_actors.model import FxPair, QuoteStatus, convert_price
from xmc_actors.model.errors import CurrencyError

OZ = 31.1034768
REAL = data_dir() / "real"


def _ts(day: str, hour: int = 12) -> int:
    return int(dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000_000


def _closes(name: str, col: str = "close") -> dict[str, float]:
    with (REAL / name).open() as fh:
        return {r["date"]: float(r[col]) for r in csv.DictReader(fh)}


# ------------------------------------------------------------------ FX sources
def test_fx_book_inverts_a_pair_and_crosses_through_the_pivot():
    book = FxBook({("USD", "CNY"): StaticRate(7.2), ("USD", "HKD"): StaticRate(7.8)})
    assert book.rate("USD", "CNY", 0).rate == 7.2
    assert book.rate("CNY", "USD", 0).rate == pytest.approx(1 / 7.2)
    assert book.rate("HKD", "CNY", 0).rate == pytest.approx(7.2 / 7.8)
    assert book.rate("EUR", "CNY", 0) is None


def test_rate_value_is_the_rate_of_the_observation_for_every_kind_of_path():
    live = LiveRate(max_age_ms=1_000)
    live.update(1.1, 0)
    book = FxBook({("USD", "CNY"): StaticRate(7.2), ("USD", "HKD"): StaticRate(7.8), ("EUR", "USD"): live,
                   ("USD", "JPY"): DailySeries({dt.date(1970, 1, 1): 150.0})})
    for base, quote, ts in [("USD", "CNY", 0), ("CNY", "USD", 0), ("HKD", "CNY", 0), ("CNY", "CNY", 0),
                            ("EUR", "USD", 0), ("USD", "EUR", 0), ("EUR", "CNY", 0), ("EUR", "USD", 5 * 10**9),
                            ("JPY", "USD", 0), ("JPY", "USD", 3 * 86_400 * 10**9), ("GBP", "CNY", 0)]:
        o = book.rate(base, quote, ts)
        assert book.rate_value(base, quote, ts) == (None if o is None else o.rate), (base, quote, ts)
    assert book.rate_value("CNY", "USD", 0) == 1.0 / 7.2 and book.rate_value("GBP", "CNY", 0) is None


def test_daily_series_gives_no_rate_on_a_date_without_a_row_unless_a_lag_is_allowed():
    rows = {dt.date(2025, 7, 3): 7.1684}
    strict = DailySeries(rows)
    lagged = DailySeries(rows, max_lag_days=1)
    assert strict.at(_ts("2025-07-03")).rate == 7.1684
    assert strict.at(_ts("2025-07-04")) is None
    assert lagged.at(_ts("2025-07-04")).rate == 7.1684


def test_live_rate_expires_after_max_age_and_refuses_a_non_positive_rate():
    live = LiveRate(max_age_ms=1_000)
    live.update(7.1, 1_000_000_000)
    assert live.at(1_500_000_000).rate == 7.1
    assert live.at(2_000_000_001) is None
    with pytest.raises(CurrencyError, match="positive and finite"):
        live.update(-1.0, 3_000_000_000)


def test_fred_file_loads_with_its_missing_days_reported_not_invented():
    rows, skipped = load_daily_fx_csv(REAL / "fred_dexchus_usdcny_daily.csv")
    assert rows[dt.date(2025, 9, 26)] == 7.1328
    assert dt.date(2025, 7, 4) not in rows  # US Independence Day: no fixing
    assert any("2025-07-04" in s for s in skipped)


def test_fx_book_from_config_reads_static_and_file_sources():
    book = fx_book_from_config([
        FxPair(base="USD", quote="CNY", source="file", file=str(REAL / "fred_dexchus_usdcny_daily.csv")),
        FxPair(base="USD", quote="HKD", rate=Decimal("7.8")),
    ])
    assert book.rate("USD", "CNY", _ts("2024-01-02")).rate == 7.1426
    assert book.rate("USD", "HKD", _ts("2024-01-02")).rate == 7.8


# ------------------------------------------------------------------ parity on hand-computed values
def _engine(costs: CostModel | None = None, price: str = "executable", fx: float = 7.0, **kw) -> ParityEngine:
    # hand-computed conversions: the venues' own fees (venue_fees, tested below) left out
    return ParityEngine(instrument("LME.CA3M"), instrument("SHFE.cu"), FxBook({("USD", "CNY"): StaticRate(fx)}),
                        costs or CostModel(venue_fees=False), price, **kw)


def test_each_legs_exchange_fee_to_open_is_folded_into_its_executable_values():
    # SHFE cu: 0.5 per 10,000 of turnover (the catalogue's schedule); LME: none catalogued
    e = ParityEngine(instrument("LME.CA3M"), instrument("SHFE.cu"), FxBook({("USD", "CNY"): StaticRate(7.0)}))
    p = e.compute(quote("LME.CA3M", 10000, 10001), quote("SHFE.cu", 70000, 70070))
    assert p.b_buy == pytest.approx(10000.0 * (1 - 0.00005))
    assert p.b_sell == pytest.approx(10010.0 * (1 + 0.00005))
    assert p.a_buy == pytest.approx(10001.0) and p.a_sell == pytest.approx(10000.0)
    # a per-lot fee (SHFE au: CNY 10 a lot of 1,000 g) is a fraction of the lot's value at the price
    g = ParityEngine(instrument("SHFE.au"), instrument("SHFE.au"), FxBook({}))
    q = g.compute(quote("SHFE.au", 600, 600.02), quote("SHFE.au", 600, 600.02))
    frac = 10 / (600.01 * 1000)
    assert q.a_buy == pytest.approx(600.02 * (1 + frac)) and q.b_buy == pytest.approx(600 * (1 - frac))
    # a strategy that already counts fees in its own costs turns this off
    off = ParityEngine(instrument("LME.CA3M"), instrument("SHFE.cu"), FxBook({("USD", "CNY"): StaticRate(7.0)}),
                       CostModel(venue_fees=False))
    assert off.compute(quote("LME.CA3M", 10000, 10001), quote("SHFE.cu", 70000, 70070)).b_buy == pytest.approx(10000.0)


def test_leg_b_is_expressed_in_leg_a_currency_and_unit_on_executable_prices():
    # LME 10000/10001 USD/t; SHFE 70000/70070 CNY/t at 7.0 -> 10000/10010 USD/t
    p = _engine().compute(quote("LME.CA3M", 10000, 10001), quote("SHFE.cu", 70000, 70070))
    assert p.currency == "USD" and p.unit == "t"
    assert p.b_buy == pytest.approx(10000.0)      # sell B at its bid
    assert p.b_sell == pytest.approx(10010.0)     # buy B at its ask
    assert p.value("spread", "buy_a") == pytest.approx(10001 - 10000)
    assert p.value("ratio", "sell_a") == pytest.approx(10000 / 10010)
    assert p.value("spread", "mid") == pytest.approx(10000.5 - 10005)
    assert p.fx == pytest.approx(1 / 7.0)


def test_a_computed_parity_is_an_ordinary_frozen_parity_and_values_reads_the_three_sides():
    import dataclasses
    from xmc_actors.core.pricing import Parity
    p = _engine().compute(quote("LME.CA3M", 10000, 10001), quote("SHFE.cu", 70000, 70070))
    assert type(p) is Parity
    same = Parity(**{f.name: getattr(p, f.name) for f in dataclasses.fields(Parity)})
    assert p == same and hash(p) == hash(same) and repr(p) == repr(same)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.a_mid = 1.0  # type: ignore[misc]
    for signal in ("spread", "ratio"):
        assert p.values(signal) == (p.value(signal, "sell_a"), p.value(signal, "buy_a"), p.value(signal, "mid"))


def test_costs_fold_fees_and_financing_against_the_trade_and_vat_grosses_up_the_other_leg():
    costs = CostModel(fee=0.001, financing=0.002, vat_factor=1.13, vat_leg="B", venue_fees=False)
    p = _engine(costs, price="mid").compute(quote("LME.CA3M", 10000, 10000), quote("SHFE.cu", 70000, 70000))
    # VAT on leg B (domestic): leg A grossed up to 11300; buying A pays fee+financing, selling B loses the fee
    assert p.a_mid == pytest.approx(11300.0)
    assert p.a_buy == pytest.approx(11300 * 1.003)
    assert p.b_buy == pytest.approx(10000 * 0.999)
    assert p.a_sell == pytest.approx(11300 * 0.999)
    assert p.b_sell == pytest.approx(10000 * 1.003)


def test_common_terms_give_the_same_ratio_as_leg_a_terms():
    qa, qb = quote("LME.CA3M", 9800, 9801), quote("SHFE.cu", 71000, 71010)
    in_a = _engine().compute(qa, qb)
    in_cny_kg = _engine(terms=("CNY", "kg")).compute(qa, qb)
    assert in_cny_kg.currency == "CNY" and in_cny_kg.unit == "kg"
    assert in_cny_kg.value("ratio", "mid") == pytest.approx(in_a.value("ratio", "mid"))
    assert in_cny_kg.b_mid == pytest.approx(71005 / 1000)


@pytest.mark.parametrize("qa,qb,why", [
    (dict(bid=None, ask="10001"), dict(bid="70000", ask="70070"), "one-sided"),
    (dict(bid="10002", ask="10001"), dict(bid="70000", ask="70070"), "crossed"),
    (dict(bid="0", ask="10001"), dict(bid="70000", ask="70070"), "non-positive"),
])
def test_a_bad_book_gives_no_parity(qa, qb, why):
    from xmc_actors.model import Quote

    mk = lambda i, d: Quote(instrument=i, bid=None if d["bid"] is None else Decimal(d["bid"]), ask=Decimal(d["ask"]), venue_ts_ns=1)
    with pytest.raises(ParityUnavailable, match=why):
        _engine().compute(mk("LME.CA3M", qa), mk("SHFE.cu", qb))


def test_no_fx_row_gives_no_parity():
    eng = ParityEngine(instrument("SGE.AU9999"), instrument("COMEX.GC"),
                       FxBook({("USD", "CNY"): DailySeries({dt.date(2025, 7, 3): 7.1684})}))
    ts = _ts("2025-07-04")
    with pytest.raises(ParityUnavailable, match="no FX rate USD->CNY"):
        eng.compute(quote("SGE.AU9999", 771.9, 771.9, ts_ns=ts), quote("COMEX.GC", 3346.5, 3346.5, ts_ns=ts))


def test_stale_quote_is_one_flagged_stale_or_older_than_the_limit():
    q = quote("COMEX.GC", 1, 2, ts_ns=1_000_000_000)
    assert not quote_is_stale(q, 1_000_000_000 + 5_000_000_000, 5_000)
    assert quote_is_stale(q, 1_000_000_000 + 5_000_000_001, 5_000)
    assert quote_is_stale(q.model_copy(update={"status": QuoteStatus.STALE}), 1_000_000_000, 5_000)


# ------------------------------------------------------------------ hedge ratio and whole lots
def test_auto_hedge_ratio_of_comex_gc_against_shfe_au_is_3_11_lots():
    hr = resolve_hedge_ratio("auto", instrument("COMEX.GC"), instrument("SHFE.au"))
    assert float(hr) == pytest.approx(100 * OZ / 1000, rel=1e-12)  # 3.110347...


def test_whole_lot_sizing_is_nearest_to_the_hedge_ratio_and_reports_the_residual():
    gc, au = instrument("COMEX.GC"), instrument("SHFE.au")
    hr = resolve_hedge_ratio("auto", gc, au)
    one = size_pair(1, hr, gc, au)
    nine = size_pair(9, hr, gc, au)
    assert (one.qty_a, one.qty_b) == (1, 3)
    assert one.residual_b_lots == pytest.approx(3 - 3.110348, abs=1e-6)
    assert one.residual_pct == pytest.approx(-3.547, abs=1e-3)
    assert (nine.qty_a, nine.qty_b) == (9, 28)  # 27.993 lots
    assert abs(nine.residual_pct) < 0.03


def test_sizing_refuses_a_leg_a_quantity_that_hedges_zero_lots_and_names_the_minimum():
    sge, gc = instrument("SGE.AU9999"), instrument("COMEX.GC")
    hr = resolve_hedge_ratio("auto", sge, gc)  # 1 kg = 0.3215 GC lots
    with pytest.raises(ValueError, match=r"rounds to 0; trade at least 2 lot\(s\) of SGE.AU9999"):
        size_pair(1, hr, sge, gc)
    assert size_pair(3, hr, sge, gc).qty_b == 1


def test_sizing_keeps_leg_b_a_multiple_of_its_lot_size():
    a, b = instrument("COMEX.GC"), instrument("SHFE.au", lot_size=2)
    assert size_pair(3, Decimal("3.11"), a, b).qty_b == 10  # 9.33 -> 5 lots of 2


# ------------------------------------------------------------------ the real data
def _real_engine() -> ParityEngine:
    rows, _ = load_daily_fx_csv(REAL / "fred_dexchus_usdcny_daily.csv")
    return ParityEngine(instrument("SGE.AU9999"), instrument("COMEX.GC"), FxBook({("USD", "CNY"): DailySeries(rows)}),
                        price="mid", terms=("USD", "troy_oz"))


@pytest.mark.parametrize("day,sge,comex,usdcny", [
    ("2024-01-02", 483.66, 2067.6, 7.1426),
    ("2025-09-26", 853.0, 3789.8, 7.1328),
    ("2020-03-16", 345.0, 1514.0, 6.9913),
])
def test_sge_in_usd_per_ounce_matches_the_hand_computation_on_real_rows(day, sge, comex, usdcny):
    # Arrange: the published rows (closes) of that day
    assert _closes("sge_au9999_daily.csv")[day] == sge
    assert _closes("comex_gc_daily.csv")[day] == comex
    ts = _ts(day)
    # Act
    p = _real_engine().compute(quote("SGE.AU9999", sge, sge, ts_ns=ts), quote("COMEX.GC", comex, comex, ts_ns=ts))
    # Assert: USD/oz = CNY/g x 31.1034768 / USDCNY
    hand = sge * OZ / usdcny
    assert p.a_mid == pytest.approx(hand, rel=1e-12)
    assert p.a_mid == pytest.approx(float(convert_price(Decimal(str(sge)), from_ccy="CNY", from_unit="g", to_ccy="USD",
                                                        to_unit="troy_oz", fx=1 / Decimal(str(usdcny)))), rel=1e-12)
    assert p.b_mid == comex
    assert p.mid_ratio == pytest.approx(hand / comex, rel=1e-12)


def test_hand_values_of_2024_01_02():
    ts = _ts("2024-01-02")
    p = _real_engine().compute(quote("SGE.AU9999", 483.66, 483.66, ts_ns=ts), quote("COMEX.GC", 2067.6, 2067.6, ts_ns=ts))
    assert p.a_mid == pytest.approx(2106.1669, abs=1e-3)
    assert p.mid_spread == pytest.approx(38.5669, abs=1e-3)
    assert p.mid_ratio == pytest.approx(1.018653, abs=1e-6)


# The March-August 2020 dislocation: COMEX futures traded far above spot gold elsewhere (the
# EFP blow-out when flights stopped and refiners closed), so SGE spot over COMEX fell to 0.93.
ODD_2020 = (dt.date(2020, 3, 1), dt.date(2020, 8, 31))


def test_sge_over_comex_ratio_stays_in_a_sane_band_over_the_whole_overlap():
    sge, comex = _closes("sge_au9999_daily.csv"), _closes("comex_gc_daily.csv")
    eng = _real_engine()
    ratios, no_fx = {}, []
    for day in sorted(set(sge) & set(comex)):
        ts = _ts(day)
        try:
            p = eng.compute(quote("SGE.AU9999", sge[day], sge[day], ts_ns=ts),
                            quote("COMEX.GC", comex[day], comex[day], ts_ns=ts))
        except ParityUnavailable:
            no_fx.append(day)
            continue
        ratios[day] = p.mid_ratio
    assert len(ratios) > 1900
    assert "2025-07-04" in no_fx and "2025-07-04" not in ratios  # FX holiday: no spread that day
    outside = {d: r for d, r in ratios.items() if not 0.95 <= r <= 1.10}
    assert outside, "the 2020 dislocation should be visible"
    for d, r in outside.items():
        day = dt.date.fromisoformat(d)
        assert ODD_2020[0] <= day <= ODD_2020[1], f"{d}: ratio {r:.4f} outside 0.95..1.10"
        assert 0.92 <= r <= 1.10
    assert all(math.isfinite(r) for r in ratios.values())
