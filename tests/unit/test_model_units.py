"""Units, currencies and price normalisation, including SGE CNY/g -> USD/oz on real rows."""
import csv
from decimal import Decimal

import pytest

from testkit import data_dir
from xmc_actors.model import CurrencyError, UnitError, convert_price, convert_quantity, unit_factor


def test_troy_ounce_and_pound_are_exact_definitions():
    assert unit_factor("g", "troy_oz") == Decimal("31.1034768")
    assert unit_factor("g", "lb") == Decimal("453.59237")
    assert unit_factor("kg", "t") == Decimal("1000")


def test_price_per_tonne_to_price_per_pound():
    # 9800 USD/t is 9800 / 2204.62262... USD/lb
    per_lb = convert_price(9800, from_ccy="USD", from_unit="t", to_ccy="USD", to_unit="lb")
    assert per_lb == Decimal("9800") * Decimal("453.59237") / Decimal("1000000")  # exact: 4.445205226


def test_shfe_au_lot_is_32_15_troy_ounces():
    assert round(convert_quantity(1000, "g", "troy_oz"), 2) == Decimal("32.15")


def test_aliases_are_accepted():
    assert unit_factor("ozt", "gram") == Decimal(1) / Decimal("31.1034768")


@pytest.mark.parametrize("bad", ["furlong", "", "OZ_T"])
def test_unknown_unit_is_a_clear_error(bad):
    with pytest.raises(UnitError, match=r"unknown unit"):
        unit_factor(bad, "g")


def test_unknown_currency_is_a_clear_error():
    with pytest.raises(CurrencyError, match=r"unknown currency 'XAU'"):
        convert_price(1, from_ccy="XAU", from_unit="g", to_ccy="USD", to_unit="g", fx=1)


def test_incompatible_dimensions_are_refused():
    with pytest.raises(UnitError, match=r"cannot convert bbl \(volume\) to t \(mass\): incompatible dimensions"):
        convert_price(80, from_ccy="USD", from_unit="bbl", to_ccy="USD", to_unit="t")


def test_a_currency_change_needs_a_rate():
    with pytest.raises(CurrencyError, match=r"an FX rate CNY->USD is needed"):
        convert_price(560, from_ccy="CNY", from_unit="g", to_ccy="USD", to_unit="troy_oz")


@pytest.mark.parametrize("rate", [0, -7.1, float("nan"), float("inf")])
def test_a_rate_must_be_positive_and_finite(rate):
    with pytest.raises(CurrencyError, match=r"must be positive and finite"):
        convert_price(560, from_ccy="CNY", from_unit="g", to_ccy="USD", to_unit="troy_oz", fx=rate)


def _rows(name):
    """Rows by date, without the rows whose values are blank (FRED leaves US holidays blank)."""
    with open(data_dir() / "real" / name, newline="") as f:
        return {r["date"]: r for r in csv.DictReader(f) if all(v.strip() for v in r.values())}


def test_the_fred_file_has_blank_holiday_rows_that_must_be_skipped():
    with open(data_dir() / "real" / "fred_dexchus_usdcny_daily.csv", newline="") as f:
        blanks = [r["date"] for r in csv.DictReader(f) if not r["dexchus"].strip()]
    assert "2000-01-17" in blanks  # Martin Luther King Jr. Day
    assert "2000-01-17" not in _rows("fred_dexchus_usdcny_daily.csv")


def test_sge_cny_per_gram_to_usd_per_ounce_on_real_rows():
    sge, fx, gc = _rows("sge_au9999_daily.csv"), _rows("fred_dexchus_usdcny_daily.csv"), _rows("comex_gc_daily.csv")
    common = sorted(set(sge) & set(fx) & set(gc))
    assert len(common) > 1500, "the three files overlap for years"
    ratios = []
    for day in common:
        cny_g = Decimal(sge[day]["close"])  # the SGE file's columns are date,open,close,low,high
        usdcny = Decimal(fx[day]["dexchus"])
        usd_oz = convert_price(cny_g, from_ccy="CNY", from_unit="g", to_ccy="USD", to_unit="troy_oz",
                               fx=1 / usdcny)
        assert usd_oz == pytest.approx(cny_g * Decimal("31.1034768") / usdcny, rel=Decimal("1e-20"))
        ratios.append(usd_oz / Decimal(gc[day]["close"]))
    # SGE in USD/oz tracks COMEX within a local premium/discount and the closing-time difference
    inside = [r for r in ratios if Decimal("0.95") < r < Decimal("1.10")]
    assert len(inside) / len(ratios) > 0.99


def test_first_overlapping_real_day_by_hand():
    sge, fx = _rows("sge_au9999_daily.csv"), _rows("fred_dexchus_usdcny_daily.csv")
    # 2016-12-19: SGE close 262.76 CNY/g, USDCNY 6.9506 (FRED) -> 1175.83 USD/oz (by hand)
    assert sge["2016-12-19"]["close"] == "262.76"
    assert fx["2016-12-19"]["dexchus"] == "6.9506"
    usd_oz = convert_price(Decimal("262.76"), from_ccy="CNY", from_unit="g", to_ccy="USD", to_unit="troy_oz",
                           fx=1 / Decimal("6.9506"))
    assert round(usd_oz, 2) == Decimal("1175.83")
