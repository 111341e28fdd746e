"""The calendar roll watch (core/roll_watch.py): a strategy's dated contracts watched for their
roll, alerts by how near the venue's deadline is, the automatic roll sent once, in the risk
guard's core. Fixed dates, no Ray: long 2 SHFE cu2701 against short 2 COMEX HGH7, whose roll
window (docs/contracts.md) runs from 23 to 30 Dec 2026, SHFE's deadline on 31 Dec."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

import testkit as tk
from xmc_actors.core.clock import SimClock
from xmc_actors.core.contracts import concrete_instrument, parse_contract
from xmc_actors.core.risk_guard import RiskGuardCore
from xmc_actors.core.roll_watch import RollWatch, WatchedStrategy, auto_roll_id, roll_watch_of
from xmc_actors.core.sink import MemorySink
from xmc_actors.model.config import DeploymentConfig, RollPolicy
from xmc_actors.model.events import EventKind
from xmc_actors.model.market import Account
from xmc_actors.model.risk import AlertAction, AlertLevel, RiskConfig

SH = ZoneInfo("Asia/Shanghai")
VENUES = {"SHFE": tk.venue("SHFE", offsets=True), "COMEX": tk.venue("COMEX")}
PRODUCTS = {"SHFE": tk.instrument("SHFE.cu"), "COMEX": tk.instrument("COMEX.HG")}
IDS = ("SHFE.cu2701", "SHFE.cu2702", "COMEX.HGH7", "COMEX.HGK7")


def _contract(i: str):
    v = i.split(".")[0]
    return concrete_instrument(PRODUCTS[v], parse_contract(PRODUCTS[v], VENUES[v], i, dt.date(2026, 12, 6)))


INSTS = {**{p.id: p for p in PRODUCTS.values()}, **{i: _contract(i) for i in IDS}}
HELD = {"cu_pair": {"SHFE.cu2701": 2, "COMEX.HGH7": -2}}
QUOTES = {"SHFE.cu2701": ("72000", "72010"), "SHFE.cu2702": ("72100", "72110"),
          "COMEX.HGH7": ("4.5000", "4.5005"), "COMEX.HGK7": ("4.5500", "4.5505")}


def ns(y, m, d, hh=10, mm=0, tz=SH) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=tz).timestamp()) * 1_000_000_000


def watch(mode="auto", quotes=QUOTES, **policy) -> RollWatch:
    w = RollWatch([WatchedStrategy("cu_pair", RollPolicy(mode=mode, **policy), {"SHFE": "cn", "COMEX": "us"})],
                  INSTS, VENUES)
    for i, (b, a) in quotes.items():  # stamped as of the last check these tests make: fresh for each
        w.on_quote(i, Decimal(b), Decimal(a), FRESH)
    return w


FRESH = ns(2027, 1, 1, 0, 0)


def test_early_then_due_then_overdue_as_the_venues_deadline_nears():
    w = watch(mode="alert")
    [c] = w.check(ns(2026, 12, 6), HELD).conditions
    assert c.monitor == "roll_due" and c.scope == "strategy" and c.key == "cu_pair" and c.level is None
    [c] = w.check(ns(2026, 12, 23), HELD).conditions
    assert c.level is AlertLevel.YELLOW and "roll due: roll SHFE.cu2701->SHFE.cu2702, COMEX.HGH7->" in c.message
    assert "between 2026-12-23 and 2026-12-30" in c.message and c.value == 7.0  # days left to roll_by
    [c] = w.check(ns(2026, 12, 31), HELD).conditions
    assert c.level is AlertLevel.RED and "OVERDUE" in c.message
    out = w.check(ns(2026, 12, 23), HELD)
    assert out.rolls == [] and out.waiting == []  # alert mode never rolls


def test_an_automatic_roll_is_sent_once_after_the_open_with_limits_through_the_touch():
    w = watch(limit_ticks=2)
    before = w.check(ns(2026, 12, 23, 9, 5), HELD)  # SHFE opens at 09:00: 15 minutes are waited
    assert before.rolls == [] and before.waiting[0][1].startswith("waiting for 2026-12-23T01:15Z")
    out = w.check(ns(2026, 12, 23, 10, 0), HELD)
    [req] = out.rolls
    assert req.decision_id == auto_roll_id("cu_pair", [("SHFE.cu2701", 2), ("COMEX.HGH7", -2)]) \
        == "autoroll-cu_pair-SHFE_cu2701_2-COMEX_HGH7_m2"
    assert req.operator == "auto:roll_watch" and req.strategy == "cu_pair"
    a, b = req.children
    # long SHFE: sell the near 2 ticks (10 CNY) under its bid, buy the far 2 ticks over its ask
    assert [(lg.instrument, lg.side.value, lg.qty, lg.account, lg.limit_price) for lg in a.legs] == [
        ("SHFE.cu2701", "SELL", 2, "cn", Decimal("71980")), ("SHFE.cu2702", "BUY", 2, "cn", Decimal("72130"))]
    # short COMEX: buy the near back over its ask, sell the far under its bid (tick 0.0005)
    assert [(lg.instrument, lg.side.value, lg.limit_price) for lg in b.legs] == [
        ("COMEX.HGH7", "BUY", Decimal("4.5015")), ("COMEX.HGK7", "SELL", Decimal("4.5490"))]
    # the deadline is the end of roll_by (30 Dec) in SHFE's zone, the binding venue's
    assert req.deadline_ns == ns(2026, 12, 31, 0, 0)
    assert w.check(ns(2026, 12, 23, 11, 0), HELD).rolls == []  # once
    # a guard that restarted sends it again under the same id: the coordinator's duplicate
    again = watch().check(ns(2026, 12, 23, 11, 0), HELD).rolls
    assert [r.decision_id for r in again] == [req.decision_id]


def test_an_escalated_automatic_roll_stops_the_strategys_automatic_rolls_instead_of_rolling_one_leg_again():
    w = watch()
    [req] = w.check(ns(2026, 12, 23, 10, 0), HELD).rolls
    out = w.check(ns(2026, 12, 23, 10, 30), HELD)
    assert out.rolls == [] and out.waiting == [("cu_pair", f"auto roll {req.decision_id} is still working")]
    # it ended ESCALATED (say SHFE rolled and COMEX did not): no roll of this strategy is sent
    # again by the watch, whatever its position now says is due
    w.on_outcome(req.decision_id, "ESCALATED", "roll-x.rollB ended without a complete roll")
    out = w.check(ns(2026, 12, 28, 11, 0), HELD)
    assert out.rolls == [] and "automatic rolls stopped for cu_pair until its position changes" in out.waiting[0][1]
    assert out.conditions[0].level is AlertLevel.YELLOW  # the alert goes on
    assert w.check(ns(2026, 12, 28, 11, 30), HELD).rolls == []  # the same lots: still stopped
    # an operator settles it by hand (here: one lot less on each leg): the watch takes over again
    fixed = {"cu_pair": {"SHFE.cu2701": 1, "COMEX.HGH7": -1}}
    [again] = w.check(ns(2026, 12, 28, 14, 0), fixed).rolls
    assert again.decision_id == "autoroll-cu_pair-SHFE_cu2701_1-COMEX_HGH7_m1" and again.children[0].legs[0].qty == 1
    # a ROLLED one frees the strategy for its next roll; a send that failed is tried again
    w2 = watch()
    [r2] = w2.check(ns(2026, 12, 23, 10, 0), HELD).rolls
    w2.forget(r2.decision_id)
    assert [r.decision_id for r in w2.check(ns(2026, 12, 23, 10, 1), HELD).rolls] == [r2.decision_id]
    w2.on_outcome(r2.decision_id, "ROLLED")
    assert w2.pending == {} and w2.suspended == {}


def test_an_automatic_roll_waits_for_a_quote_of_every_contract_and_says_why_once():
    w = watch(quotes={k: v for k, v in QUOTES.items() if k != "SHFE.cu2702"})
    out = w.check(ns(2026, 12, 23, 10, 0), HELD)
    assert out.rolls == [] and out.waiting == [("cu_pair", "no ask for SHFE.cu2702")]
    assert w.check(ns(2026, 12, 23, 10, 1), HELD).waiting == []  # the same reason is not repeated
    w.on_quote("SHFE.cu2702", Decimal("72100"), Decimal("72110"), FRESH)
    assert len(w.check(ns(2026, 12, 23, 10, 2), HELD).rolls) == 1


def test_a_stale_quote_is_no_price_to_roll_at():
    w = RollWatch([WatchedStrategy("cu_pair", RollPolicy(mode="auto", max_quote_age_s=30), {"SHFE": "cn", "COMEX": "us"})],
                  INSTS, VENUES)
    now = ns(2026, 12, 23, 10, 0)
    for i, (b, a) in QUOTES.items():
        w.on_quote(i, Decimal(b), Decimal(a), now - (120 * 10**9 if i == "COMEX.HGK7" else 0))
    out = w.check(now, HELD)
    assert out.rolls == [] and out.waiting == [("cu_pair", "the quote of COMEX.HGK7 is 120 s old (max_quote_age_s 30)")]


def test_overdue_rolls_by_the_end_of_today_never_past_the_venues_deadline_and_not_in_a_closed_session():
    w = watch()
    closed = w.check(ns(2026, 12, 31, 12, 0), HELD)  # SHFE's lunch break
    assert closed.rolls == [] and "SHFE.cu2701: session closed" in closed.waiting[0][1]
    [req] = w.check(ns(2026, 12, 31, 13, 45), HELD).rolls
    assert req.deadline_ns == ns(2027, 1, 1, 0, 0)  # the end of 31 Dec, SHFE's own deadline


def test_a_position_split_across_months_is_red_and_never_rolled_automatically():
    w = watch()
    split = {"cu_pair": {"SHFE.cu2701": 1, "SHFE.cu2702": 1, "COMEX.HGH7": -2}}
    out = w.check(ns(2026, 12, 23), split)
    assert out.conditions[0].level is AlertLevel.RED and "more than one month" in out.conditions[0].message
    assert out.rolls == []


def test_product_ids_and_flat_positions_are_not_watched_and_off_means_off():
    w = watch()
    [c] = w.check(ns(2026, 12, 31), {"cu_pair": {"SHFE.cu": 3, "SHFE.cu2701": 0}}).conditions
    assert c.level is None and "no position in a dated contract" in c.message
    assert watch(mode="off").check(ns(2026, 12, 31), HELD).conditions == []


def test_a_position_whose_roll_cannot_be_planned_is_red():
    # a contract whose hold deadline lies after SHFE's calendar in the catalogue ends: its
    # deadline is unknown, so the plan fails and says why, never a silent pass
    end = VENUES["SHFE"].calendar.end
    y, m = divmod(end.year * 12 + end.month - 1 + 2, 12)
    sym = f"SHFE.cu{y % 100:02d}{m + 1:02d}"
    far = concrete_instrument(PRODUCTS["SHFE"], parse_contract(PRODUCTS["SHFE"], VENUES["SHFE"], sym, end))
    w = RollWatch([WatchedStrategy("cu_pair", RollPolicy(mode="auto"), {"SHFE": "cn"})], {**INSTS, sym: far}, VENUES)
    [c] = w.check(ns(end.year, end.month, end.day), {"cu_pair": {sym: 2}}).conditions
    assert c.level is AlertLevel.RED and "the roll of its position cannot be planned" in c.message


def _guard(mode="auto"):
    clock, sink = SimClock(ns(2026, 12, 23, 10, 0)), MemorySink()
    accs = [Account(id="cn", broker="sim", venues=("SHFE",), currency="CNY", capital=Decimal(10_000_000)),
            Account(id="us", broker="sim", venues=("COMEX",), currency="USD", capital=Decimal(2_000_000))]
    fx = lambda a, b: {("CNY", "USD"): 1 / Decimal("7.1"), ("USD", "CNY"): Decimal("7.1")}.get((a, b))  # noqa: E731
    g = RiskGuardCore(RiskConfig(), INSTS, VENUES, accs, fx, clock=clock, sink=sink)
    g.set_roll_watch(watch(mode=mode, quotes={}))
    g.on_quotes([tk.quote(i, b, a, ts_ns=clock.now_ns()) for i, (b, a) in QUOTES.items()])
    g.book.apply_fill("cn", "cu_pair", "SHFE.cu2701", 2, Decimal(72000), clock.now_ns())
    g.book.apply_fill("us", "cu_pair", "COMEX.HGH7", -2, Decimal("4.5"), clock.now_ns())
    return g, sink, clock


def test_in_the_risk_guard_a_due_roll_raises_an_alert_that_never_halts_and_the_roll_is_recorded():
    g, sink, clock = _guard()
    out, rolls = g.watch_rolls()
    [a] = out.alerts
    assert a.monitor == "roll_due" and a.level is AlertLevel.YELLOW and a.action is AlertAction.NONE
    assert [r.decision_id for r in rolls] == ["autoroll-cu_pair-SHFE_cu2701_2-COMEX_HGH7_m2"]
    sent = [e for e in sink.events if e.kind is EventKind.LIFECYCLE and e.payload.get("action") == "roll_watch"]
    assert sent[0].decision_id == rolls[0].decision_id and sent[0].reason.startswith("auto roll sent: roll ")
    # overdue is red, and still no halt: the roll itself must stay possible
    clock.set(ns(2026, 12, 31, 13, 45))
    out, _ = g.watch_rolls()
    assert out.alerts[0].level is AlertLevel.RED and out.alerts[0].action is AlertAction.NONE
    assert not out.state_changes and not g.states


def test_a_deployment_watches_each_enabled_strategy_with_its_legs_accounts():
    dep = DeploymentConfig.model_validate({
        "name": "t", "venues": [v.model_dump(mode="json") for v in VENUES.values()],
        "instruments": [i.model_dump(mode="json") for i in INSTS.values()],
        "strategies": [{"name": "cu_pair", "class": "band", "legs": [{"instrument": "SHFE.cu2701", "account": "cn"},
                                                                      {"instrument": "COMEX.HGH7", "account": "us"}],
                        "roll": {"mode": "auto", "limit_ticks": 1}},
                       {"name": "off", "class": "band", "enabled": False,
                        "legs": [{"instrument": "SHFE.cu2701", "account": "cn"},
                                 {"instrument": "COMEX.HGH7", "account": "us"}]}]})
    w = roll_watch_of(dep)
    assert list(w.strategies) == ["cu_pair"]
    ws = w.strategies["cu_pair"]
    assert dict(ws.accounts) == {"SHFE": "cn", "COMEX": "us"} and ws.policy.limit_ticks == 1
    with pytest.raises(ValueError, match="mode"):
        RollPolicy(mode="sometimes")


def test_a_hedge_instructions_position_is_watched_by_its_own_pairs_and_rolled_as_batch_pairs():
    """POST /v1/hedges with roll auto: the guard watches the lots its pairs booked (not a
    strategy's book: batch pairs of every instruction share one), and the lots move with the
    roll's children."""
    g, sink, clock = _guard()
    g.book = type(g.book)()  # no strategy position: only the hedge's
    g.booked_lots = {"batch-hedge-PO-77-1": {("cn", "SHFE.cu2701"): 2, ("us", "COMEX.HGH7"): -2},
                     "batch-other-1": {("cn", "SHFE.cu2701"): 5}}  # another instruction's: not this hedge's
    with pytest.raises(ValueError, match=r"^policy\.mode: "):
        g.watch_position("hedge-PO-77", {"mode": "sometimes"}, {"SHFE": "cn", "COMEX": "us"}, ["x"], "batch")
    with pytest.raises(ValueError, match=r"^decision_ids: "):
        g.watch_position("hedge-PO-77", {"mode": "auto"}, {"SHFE": "cn", "COMEX": "us"}, [], "batch")
    # each refusal counted and recorded, naming the field; nothing watched
    assert g.counters["bad_input"] == 2 and "hedge-PO-77" not in g.roll_watch.status()
    assert [e.reason.split(": ")[1] for e in sink.events if e.kind.value == "BAD_INPUT"] == ["policy.mode", "decision_ids"]
    ans = g.watch_position("hedge-PO-77", {"mode": "auto"}, {"SHFE": "cn", "COMEX": "us"},
                           ["batch-hedge-PO-77-1"], "batch", operator="erp")
    assert ans == {"name": "hedge-PO-77", "mode": "auto", "decision_ids": ["batch-hedge-PO-77-1"]}
    assert any(e.payload.get("action") == "watch_position" for e in sink.events)
    out, [req] = g.watch_rolls()
    assert req.decision_id == "autoroll-hedge-PO-77-SHFE_cu2701_2-COMEX_HGH7_m2" and req.strategy == "batch"
    assert [(lg.instrument, lg.qty) for c in req.children for lg in c.legs if lg.leg == "N"] == [
        ("SHFE.cu2701", 2), ("COMEX.HGH7", 2)]  # the hedge's 2 lots, not the other instruction's 5
    st = g.roll_watch.status()["hedge-PO-77"]
    assert st["pending"] == req.decision_id and st["rolls"] == {req.decision_id: "SENT"} and st["held"]
    # the children booked: the hedge's lots are on the far months, and nothing is due any more
    g.booked_lots["autoroll-hedge-PO-77-SHFE_cu2701_2-COMEX_HGH7_m2.rollA"] = {("cn", "SHFE.cu2701"): -2,
                                                                          ("cn", "SHFE.cu2702"): 2}
    g.booked_lots["autoroll-hedge-PO-77-SHFE_cu2701_2-COMEX_HGH7_m2.rollB"] = {("us", "COMEX.HGH7"): 2,
                                                                          ("us", "COMEX.HGK7"): -2}
    assert g.roll_watch.lots_of("hedge-PO-77", g.booked_lots) == {"SHFE.cu2702": 2, "COMEX.HGK7": -2}
    g.roll_watch.on_outcome(req.decision_id, "ROLLED")
    out, rolls = g.watch_rolls()
    assert rolls == [] and g.roll_watch.status()["hedge-PO-77"]["rolls"] == {req.decision_id: "ROLLED"}


def test_a_restarted_risk_guard_watches_a_hedge_again_from_its_trail():
    """Found in review: the hedge's watch lived only in the guard's memory."""
    g, sink, clock = _guard()
    g.book = type(g.book)()
    g.booked_lots = {"batch-hedge-PO-77-1": {("cn", "SHFE.cu2701"): 2, ("us", "COMEX.HGH7"): -2}}
    g.watch_position("hedge-PO-77", {"mode": "auto"}, {"SHFE": "cn", "COMEX": "us"}, ["batch-hedge-PO-77-1"],
                     "batch", operator="erp")
    _, [req] = g.watch_rolls()
    # Act: a new core rebuilt from what the first one wrote
    g2, _, _ = _guard()
    g2.rebuild([e for e in sink.events], {}, venues=[])
    # Assert: the hedge is watched again, its roll's children counted in its lots
    assert g2.roll_watch.held["hedge-PO-77"] == {"batch-hedge-PO-77-1", *(c.decision_id for c in req.children)}
    assert g2.roll_watch.strategies["hedge-PO-77"].book_as == "batch"


def test_a_restarted_risk_guard_waits_for_its_previous_lifes_automatic_roll_and_stays_stopped_after_it_escalated():
    """Found in review: the stop after an escalated automatic roll lived in the guard's memory, so
    a guard restarted after a half-done roll sent another roll of the half-rolled position."""
    g, sink, _ = _guard()
    _, [req] = g.watch_rolls()
    # Act: a new core rebuilt from the first one's trail
    g2, sink2, clock2 = _guard()
    g2.rebuild(list(sink.events), {}, venues=[])
    # Assert: the roll is pending again; nothing else is sent while its outcome is not known
    assert g2.roll_watch.pending == {"cu_pair": req.decision_id}
    assert g2.watch_rolls()[1] == []
    # the coordinator answers ESCALATED: SHFE rolled, COMEX did not (the position is half-rolled)
    g2.roll_watch.on_outcome(req.decision_id, "ESCALATED", "roll.rollB ended without a complete roll")
    t = clock2.now_ns()
    g2.book.apply_fill("cn", "cu_pair", "SHFE.cu2701", -2, Decimal(72000), t)
    g2.book.apply_fill("cn", "cu_pair", "SHFE.cu2702", 2, Decimal(72100), t)
    clock2.set(ns(2026, 12, 23, 11, 0))
    assert g2.watch_rolls()[1] == [] and "automatic rolls stopped" in g2.roll_watch.status()["cu_pair"]["suspended"]
    # a third life, rebuilt from both trails, is stopped too (the stop is derived from the same roll)
    g3, _, _ = _guard()
    g3.rebuild(list(sink.events) + list(sink2.events), {}, venues=[])
    assert g3.roll_watch.pending == {"cu_pair": req.decision_id}
    # an operator settles COMEX by hand: the position changes, the automatic rolls resume, and
    # that is recorded, so a life rebuilt afterwards does not stop on the old roll again
    g2.book.apply_fill("us", "cu_pair", "COMEX.HGH7", 2, Decimal("4.5"), t)
    g2.book.apply_fill("us", "cu_pair", "COMEX.HGK7", -2, Decimal("4.55"), t)
    clock2.set(ns(2026, 12, 23, 11, 30))
    g2.watch_rolls()
    assert g2.roll_watch.status()["cu_pair"]["suspended"] is None
    resumed = [e for e in sink2.events if e.kind is EventKind.LIFECYCLE and e.payload.get("resumed")]
    assert [(e.decision_id, e.payload["name"]) for e in resumed] == [(req.decision_id, "cu_pair")]
    g4, _, _ = _guard()
    g4.rebuild(list(sink.events) + list(sink2.events), {}, venues=[])
    assert g4.roll_watch.pending == {} and g4.roll_watch.status()["cu_pair"]["suspended"] is None


def test_xmc_risk_status_shows_each_watched_position_and_its_automatic_rolls():
    from xmc_actors.ops.cmd_ops import risk_status_tables

    g, _, _ = _guard()
    _, [req] = g.watch_rolls()
    tables = {t.name: t for t in risk_status_tables(g.status())}
    assert tables["rolls"].rows == [("cu_pair", "auto", req.decision_id, "", f"{req.decision_id} SENT")]
