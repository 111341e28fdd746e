"""Contract months and expiries: names (cu2602, GCG6, LME prompts), last trading days and hold
deadlines on the venues' calendars, the main contract of a product id on a day, and the roll
plan of a cross-market position (every near leg closed, every far leg opened, before the
earliest venue deadline)."""
import datetime as dt

import pytest
import yaml
from pydantic import ValidationError

from testkit import CATALOGUE, instrument, instruments, venue
from xmc_actors.core.contracts import (
    ContractDateError, Holding, concrete_instrument, contract, contract_symbol, lme_prompt, main_contract,
    parse_contract, plan_roll, resolve,
)
from xmc_actors.model.contracts import ContractRules, DateRule

D = dt.date


def _venues():
    return {c: venue(c) for c in ("SHFE", "INE", "SGE", "CFFEX", "COMEX", "LME", "ICE", "HKFE")}


# ----------------------------------------------------------------------------- catalogue
def test_every_futures_product_in_the_catalogue_has_sourced_contract_rules():
    raw = yaml.safe_load(CATALOGUE.read_text())["instruments"]
    products = [i for i in raw if "product" not in i and i["symbol"] != "AU9999"]
    assert {f"{i['venue']}.{i['symbol']}" for i in products} == {
        "SHFE.cu", "SHFE.au", "INE.sc", "CFFEX.IF", "COMEX.GC", "COMEX.HG", "LME.CA3M", "ICE.B", "HKFE.HSI"}
    for i in products:
        assert i.get("contract", {}).get("source"), f"{i['venue']}.{i['symbol']}: no sourced contract rules"
    assert instrument("SGE.AU9999").contract is None  # spot: no months


def test_the_catalogued_concrete_contracts_name_their_product_and_are_dated_by_its_rules():
    cu2602 = resolve(instruments(), _venues(), "SHFE.cu2602", D(2026, 1, 20))
    # the 15th (a Sunday) moves past the Spring Festival week to the next business day
    assert cu2602.last_trading_day == D(2026, 2, 24)
    assert cu2602.hold_deadline == D(2026, 1, 30)  # individuals out before the delivery month
    assert instrument("SHFE.cu2602").product == "cu"


# ----------------------------------------------------------------------------- names and dates
@pytest.mark.parametrize("inst, y, m, symbol", [("SHFE.cu", 2026, 2, "cu2602"), ("COMEX.GC", 2026, 2, "GCG6"),
                                                 ("ICE.B", 2027, 3, "BH27"), ("CFFEX.IF", 2026, 12, "IF2612"),
                                                 ("HKFE.HSI", 2026, 12, "HSIZ6")])
def test_contracts_are_named_as_the_exchange_names_them_and_parse_back(inst, y, m, symbol):
    p = instrument(inst)
    assert contract_symbol(p.symbol, p.contract, y, m) == symbol
    c = parse_contract(p, venue(p.venue), symbol, D(2026, 1, 5))
    assert (c.year, c.month, c.id) == (y, m, f"{p.venue}.{symbol}")


def test_a_symbol_that_is_not_a_contract_of_the_product_says_so():
    with pytest.raises(ContractDateError, match=r"'cu26' is not a contract of SHFE.cu \(e.g. cu2601\)"):
        parse_contract(instrument("SHFE.cu"), venue("SHFE"), "cu26", D(2026, 1, 5))
    with pytest.raises(ContractDateError, match="month 13 is not 01-12"):
        parse_contract(instrument("SHFE.cu"), venue("SHFE"), "cu2613", D(2026, 1, 5))
    with pytest.raises(ContractDateError, match="no contract delivers in month 1"):
        contract(instrument("COMEX.GC").model_copy(update={"contract": instrument("COMEX.GC").contract.model_copy(
            update={"months": (2, 4), "active_months": None})}), venue("COMEX"), 2026, 1)


def test_expiry_rules_on_the_venues_calendars():
    v = _venues()
    gc = contract(instrument("COMEX.GC"), v["COMEX"], 2027, 2)
    assert gc.last_trading_day == D(2027, 2, 24)      # third last business day of February
    assert gc.hold_deadline == D(2027, 1, 27)         # third last business day of January
    gcz = contract(instrument("COMEX.GC"), v["COMEX"], 2026, 12)
    assert gcz.hold_deadline == D(2026, 11, 25)       # Thanksgiving (26th) is not counted
    assert contract(instrument("CFFEX.IF"), v["CFFEX"], 2026, 12).last_trading_day == D(2026, 12, 18)  # 3rd Friday
    assert contract(instrument("ICE.B"), v["ICE"], 2027, 2).last_trading_day == D(2026, 12, 31)
    assert contract(instrument("HKFE.HSI"), v["HKFE"], 2026, 12).last_trading_day == D(2026, 12, 30)
    assert contract(instrument("INE.sc"), v["INE"], 2026, 11).last_trading_day == D(2026, 10, 30)


def test_dates_after_the_calendar_are_unknown_not_guessed_and_needing_them_is_an_error():
    c = contract(instrument("SHFE.cu"), venue("SHFE"), 2027, 2)  # SHFE's calendar ends 2026-12-31
    assert c.last_trading_day is None and c.hold_deadline is None
    with pytest.raises(ContractDateError, match="SHFE.cu2702: planning its roll needs its dates, which lie after "
                                                "venue SHFE's calendar end"):
        c.require_dates("planning its roll")
    with pytest.raises(ContractDateError, match="outside venue SHFE's calendar"):
        main_contract(instrument("SHFE.cu"), venue("SHFE"), D(2027, 1, 4))


def test_lme_cash_and_three_month_prompts():
    lme = venue("LME")
    assert lme_prompt(lme, D(2026, 1, 30), "3M") == D(2026, 4, 30)
    assert lme_prompt(lme, D(2025, 11, 28), "3M") == D(2026, 2, 27)   # 28 Feb a Saturday, 2 Mar the next month
    assert lme_prompt(lme, D(2026, 12, 4), "3M") == D(2027, 3, 4)
    assert lme_prompt(lme, D(2026, 12, 23), "cash") == D(2026, 12, 29)  # over Christmas and Boxing Day
    c = resolve(instruments(), _venues(), "LME.CA3M", D(2026, 12, 4))
    assert (c.id, c.prompt, c.hold_deadline) == ("LME.CA-20270304", D(2027, 3, 4), D(2027, 3, 2))
    assert resolve(instruments(), _venues(), "LME.CA-20270304", D(2026, 12, 4)) == c


# ----------------------------------------------------------------------------- main contract
@pytest.mark.parametrize("day, main", [(D(2026, 3, 10), "SHFE.cu2604"), (D(2026, 3, 18), "SHFE.cu2605"),
                                       (D(2026, 12, 6), "SHFE.cu2701"), (D(2026, 12, 20), "SHFE.cu2702")])
def test_the_product_id_is_the_main_contract_of_the_day(day, main):
    # the nearest month until 10 business days before individuals must be out of it
    assert resolve(instruments(), _venues(), "SHFE.cu", day).id == main


def test_gold_mains_are_the_active_months_only():
    assert resolve(instruments(), _venues(), "COMEX.GC", D(2026, 3, 10)).id == "COMEX.GCJ6"
    assert resolve(instruments(), _venues(), "COMEX.GC", D(2026, 3, 26)).id == "COMEX.GCM6"  # past the cut-off
    assert resolve(instruments(), _venues(), "SHFE.au", D(2026, 3, 10)).id == "SHFE.au2606"


def test_open_interest_chooses_the_main_when_the_rule_asks_for_it():
    cu = instrument("SHFE.cu")
    by_oi = cu.model_copy(update={"contract": cu.contract.model_copy(
        update={"main": cu.contract.main.model_copy(update={"by": "open_interest"})})})
    oi = {"cu2604": 100_000, "cu2605": 180_000, "SHFE.cu2606": 90_000, "cu2603": 999_999}  # 2603: past its cut-off
    assert main_contract(by_oi, venue("SHFE"), D(2026, 3, 10), oi).symbol == "cu2605"
    assert main_contract(by_oi, venue("SHFE"), D(2026, 3, 10), {"zz": 1}).symbol == "cu2604"  # no figure: calendar
    assert main_contract(cu, venue("SHFE"), D(2026, 3, 10), oi).symbol == "cu2604"  # the rule says calendar


def test_a_concrete_id_resolves_to_itself_and_an_expired_one_is_refused():
    v = _venues()
    assert resolve(instruments(), v, "SHFE.cu2703", D(2026, 12, 6)).id == "SHFE.cu2703"  # not listed: by its product
    assert resolve(instruments(), v, "SGE.AU9999", D(2026, 12, 6)) is None
    with pytest.raises(ContractDateError, match=r"COMEX.GCG6 expired on 2026-02-25 \(its last trading day\)"):
        resolve(instruments(), v, "COMEX.GCG6", D(2026, 12, 6))
    with pytest.raises(KeyError, match="unknown instrument 'SGE.XX'"):
        resolve(instruments(), v, "SGE.XX", D(2026, 12, 6))


def test_a_concrete_instrument_has_the_product_terms_under_its_own_id():
    cu = instrument("SHFE.cu")
    i = concrete_instrument(cu, contract(cu, venue("SHFE"), 2026, 6))
    assert (i.id, i.product, i.contract, i.multiplier, i.fees) == ("SHFE.cu2606", "cu", None, cu.multiplier, cu.fees)


def test_contract_rules_are_checked():
    with pytest.raises(ValidationError, match="needs last_trading_day"):
        ContractRules(style="yymm")
    with pytest.raises(ValidationError, match=r"active_months \[1\] are not in months"):
        ContractRules(style="yymm", months=(2, 4), active_months=(1,), last_trading_day=DateRule(kind="day_of_month", day=15))
    with pytest.raises(ValidationError, match="needs prompt"):
        ContractRules(style="prompt")


# ----------------------------------------------------------------------------- the roll plan
def test_a_copper_pair_rolls_as_one_four_leg_decision_before_the_earlier_deadline():
    v = _venues()
    plan = plan_roll([Holding(instrument("SHFE.cu"), v["SHFE"], 10, "SHFE.cu2701"),
                      Holding(instrument("COMEX.HG"), v["COMEX"], -2, "COMEX.HGH7")], D(2026, 12, 6))
    assert [(o.leg, o.which, o.instrument, o.side, o.qty, o.offset) for o in plan.orders] == [
        ("A", "near", "SHFE.cu2701", "SELL", 10, "CLOSE"), ("A", "far", "SHFE.cu2702", "BUY", 10, "OPEN"),
        ("B", "near", "COMEX.HGH7", "BUY", 2, "CLOSE"), ("B", "far", "COMEX.HGK7", "SELL", 2, "OPEN")]
    # SHFE's deadline (individuals out of cu2701 by 31 Dec) binds, one business day kept in hand
    assert (plan.deadline, plan.binding, plan.roll_by, plan.roll_from) == (
        D(2026, 12, 31), "A", D(2026, 12, 30), D(2026, 12, 23))
    assert plan.status == "early" and "SHFE.cu2701 must be out by 2026-12-31" in plan.reason
    assert plan_roll([Holding(instrument("SHFE.cu"), v["SHFE"], 10, "SHFE.cu2701"),
                      Holding(instrument("COMEX.HG"), v["COMEX"], -2, "COMEX.HGH7")], D(2026, 12, 28)).status == "due"


def test_the_roll_day_is_a_business_day_of_every_venue_of_the_pair():
    v = _venues()
    # COMEX's latest roll day for GCV6 is Fri 25 Sep 2026: SHFE's Mid-Autumn holiday, so the day before
    plan = plan_roll([Holding(instrument("SHFE.au"), v["SHFE"], -3, "SHFE.au2612"),
                      Holding(instrument("COMEX.GC"), v["COMEX"], 1, "COMEX.GCV6")], D(2026, 9, 1))
    assert plan.binding == "B" and plan.deadline == D(2026, 9, 28)
    assert plan.roll_by == D(2026, 9, 24)
    assert [o.instrument for o in plan.orders if o.which == "far"] == ["SHFE.au2706", "COMEX.GCZ6"]


def test_a_roll_past_its_day_is_overdue_and_says_so():
    v = _venues()
    plan = plan_roll([Holding(instrument("COMEX.GC"), v["COMEX"], 1, "COMEX.GCZ6")], D(2026, 11, 25))
    assert plan.status == "overdue" and plan.reason.startswith("OVERDUE on 2026-11-25")
    assert plan.roll_by == D(2026, 11, 24)


def test_a_spot_leg_is_not_rolled_and_the_held_main_is_the_default():
    v = _venues()
    plan = plan_roll([Holding(instrument("SGE.AU9999"), v["SGE"], 3),
                      Holding(instrument("COMEX.GC"), v["COMEX"], -1)], D(2026, 3, 10))
    assert [(o.leg, o.instrument) for o in plan.orders] == [("B", "COMEX.GCJ6"), ("B", "COMEX.GCM6")]


def test_the_lme_leg_rolls_to_the_three_month_prompt_of_the_roll_day():
    v = _venues()
    plan = plan_roll([Holding(instrument("SHFE.cu"), v["SHFE"], 5, "SHFE.cu2701"),
                      Holding(instrument("LME.CA3M"), v["LME"], -1, "LME.CA-20270304")], D(2026, 12, 6))
    assert [o.instrument for o in plan.orders] == ["SHFE.cu2701", "SHFE.cu2702", "LME.CA-20270304",
                                                   "LME.CA-20270323"]  # 3M from the window's first day, 23 Dec


def test_a_roll_whose_deadline_lies_after_the_calendar_refuses_by_name():
    v = _venues()
    with pytest.raises(ContractDateError, match="SHFE.cu2702: planning its roll needs its hold deadline, which lies after venue SHFE"):
        plan_roll([Holding(instrument("SHFE.cu"), v["SHFE"], 10, "SHFE.cu2702")], D(2026, 12, 6))
    with pytest.raises(ValueError, match=r"leg A \(SHFE.cu\) holds no lots"):
        plan_roll([Holding(instrument("SHFE.cu"), v["SHFE"], 0)], D(2026, 3, 10))
    with pytest.raises(ContractDateError, match="nothing to roll"):
        plan_roll([Holding(instrument("SGE.AU9999"), v["SGE"], 3)], D(2026, 3, 10))


def test_roll_times_give_a_calendar_roll_its_roll_at_inside_the_window():
    from xmc_actors.core.contracts import roll_times

    v = _venues()
    plan = plan_roll([Holding(instrument("SHFE.cu"), v["SHFE"], 10, "SHFE.cu2701"),
                      Holding(instrument("COMEX.HG"), v["COMEX"], -2, "COMEX.HGH7")], D(2026, 12, 6))
    # SHFE's day opens 09:00 Shanghai (01:00 UTC); COMEX has only its evening Globex session
    assert roll_times(plan, [v["SHFE"], v["COMEX"]]) == ["2026-12-30T01:15:00Z"]
    assert roll_times(plan, [v["SHFE"], v["COMEX"]], days=2) == ["2026-12-29T01:15:00Z", "2026-12-30T01:15:00Z"]
    with pytest.raises(ContractDateError, match="fewer than 9 business days"):
        roll_times(plan, [v["SHFE"], v["COMEX"]], days=9)
