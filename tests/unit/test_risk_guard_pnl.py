"""The risk guard's money: P&L from the pairs it books, equity that follows it, margin by each
venue's rule on two-sided positions, and a broker's account reading that wins (and alerts)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import testkit as tk
from hypothesis import given, settings
from hypothesis import strategies as st
from test_monitor_alerts import OPEN_NS, summary

from xmc_actors.core.clock import SimClock
from xmc_actors.core.risk_guard import RiskGuardCore
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import Account
from xmc_actors.model.events import EventKind
from xmc_actors.model.risk import RiskConfig

RATE = Decimal("7")
S = 1_000_000_000


def core(margin_rule: str = "gross", **kw: Any) -> tuple[RiskGuardCore, MemorySink, SimClock]:
    clock, sink = SimClock(OPEN_NS), MemorySink()
    accs = [Account(id="cn", broker="sim", venues=("SHFE",), currency="CNY", capital=Decimal(10_000_000)),
            Account(id="us", broker="sim", venues=("LME",), currency="USD", capital=Decimal(2_000_000))]
    fx = lambda a, b: {("CNY", "USD"): 1 / RATE, ("USD", "CNY"): RATE}.get((a, b))  # noqa: E731
    venues = {"SHFE": tk.venue("SHFE", offsets=True).model_copy(update={"margin_rule": margin_rule}),
              "LME": tk.venue("LME")}
    g = RiskGuardCore(RiskConfig(), tk.instruments(), venues, accs, fx, clock=clock, sink=sink, **kw)
    g.register_coordinator("c1")
    return g, sink, clock


def one_leg(did: str, side: str, qty: int, price: str, *, inst: str = "SHFE.cu", account: str = "cn",
            strategy: str = "s1") -> dict:
    return {"decision_id": did, "strategy": strategy, "coordinator": "c1", "outcome": "HEDGED", "unhedged_ms": 0.0,
            "legs": [{"leg": "A", "instrument": inst, "account": account, "side": side, "intended_qty": qty,
                      "filled_qty": qty, "avg_price": price, "trigger_price": price, "orders": 1, "rejects": 0,
                      "ack_latencies_ms": [1.0]}]}


def mark(g: RiskGuardCore, clock: SimClock, inst: str, px: str) -> None:
    g.on_quotes([tk.quote(inst, Decimal(px) - 10 if inst == "SHFE.cu" else Decimal(px) - Decimal("0.5"),
                          Decimal(px) + 10 if inst == "SHFE.cu" else Decimal(px) + Decimal("0.5"), ts_ns=clock.now_ns())])


def test_a_booked_pair_records_each_execution_with_its_offset_and_fee() -> None:
    g, sink, _ = core()
    g.on_pair_done(summary("d1"))
    trades = [e for e in sink.events if e.kind is EventKind.PNL and e.reason == "TRADE"]
    assert [(e.instrument, e.payload["side"], e.payload["offset"]) for e in trades] == [
        ("SHFE.cu", "BUY", "OPEN"), ("LME.CA3M", "SELL", None)]
    cu = tk.instrument("SHFE.cu")
    assert Decimal(trades[0].payload["fee"]) == cu.fee(Decimal(72000), 1, "OPEN")
    assert trades[0].decision_id == "d1" and trades[0].payload["pair"] == "LME.CA3M/SHFE.cu"
    booked = [e for e in sink.events if e.kind is EventKind.RISK_DECISION and e.reason == "BOOKED"][-1]
    assert len(booked.payload["trades"]) == 2
    assert g.status()["two_sided"]["cn/SHFE.cu"]["long"]["today"] == 1


def test_equity_follows_pnl_and_occupancy_moves_with_it() -> None:
    g, sink, clock = core()
    g.on_pair_done(one_leg("d1", "BUY", 10, "72000"))
    fee = tk.instrument("SHFE.cu").fee(Decimal(72000), 10, "OPEN")
    mark(g, clock, "SHFE.cu", "72000")
    g.tick()
    occ0 = g.status()["occupancy"]["cn"]["ratio"]
    clock.advance(10 * S)
    mark(g, clock, "SHFE.cu", "73000")           # +1000 x 5 t x 10 lots
    g.tick()
    st = g.status()
    acc = st["accounts"]["cn"]
    assert Decimal(acc["equity"]) == Decimal(10_000_000) + 50_000 - fee.quantize(Decimal("0.01"))
    assert acc["equity_source"] == "computed"
    assert st["occupancy"]["cn"]["ratio"] != occ0
    marks = [e for e in sink.events if e.kind is EventKind.PNL and e.reason == "MARK"]
    assert len(marks) == 2
    assert Decimal(marks[-1].payload["accounts"]["cn"]["equity"]) > Decimal(marks[0].payload["accounts"]["cn"]["equity"])
    assert marks[-1].payload["strategies"]["s1"]["unrealised_base"] == str((Decimal(50_000) / RATE).quantize(Decimal("0.01")))
    assert marks[-1].payload["fx"]["SHFE.cu"] == str(1 / RATE)
    leg = marks[-1].payload["legs"]["cn|s1|SHFE.cu|SHFE.cu"]
    assert (leg["currency"], leg["unrealised"], leg["mark"]) == ("CNY", "50000.00", "73000")


def test_a_close_after_a_trading_day_roll_is_a_close_yesterday_and_realises() -> None:
    g, sink, clock = core()
    g.on_pair_done(one_leg("d1", "BUY", 2, "72000"))
    clock.advance(24 * 3600 * S)                # the next trading day
    mark(g, clock, "SHFE.cu", "72500")
    g.on_pair_done(one_leg("d2", "SELL", 2, "72500"))
    t = [e for e in sink.events if e.kind is EventKind.PNL and e.reason == "TRADE"][-1]
    assert t.payload["offset"] == "CLOSE_YESTERDAY" and Decimal(t.payload["realised"]) == Decimal(500 * 5 * 2)
    assert "cn/SHFE.cu" not in g.status()["two_sided"]


def test_a_locked_position_is_charged_on_both_sides_or_the_larger_by_the_venues_rule() -> None:
    used = {}
    for rule in ("gross", "larger_side"):
        g, _, clock = core(margin_rule=rule, offset_preference="lock")
        mark(g, clock, "SHFE.cu", "72000")
        g.on_pair_done(one_leg("d1", "BUY", 3, "72000"))
        g.on_pair_done(one_leg("d2", "SELL", 2, "72000"))   # a lock: long 3, short 2
        assert g.status()["two_sided"]["cn/SHFE.cu"]["short"]["today"] == 2
        used[rule] = Decimal(g.status()["occupancy"]["cn"]["used"])
    one_lot = tk.instrument("SHFE.cu").notional(Decimal(72000), 1) * tk.instrument("SHFE.cu").margin_rate
    assert used["gross"] == 5 * one_lot and used["larger_side"] == 3 * one_lot


def test_each_accounts_reading_is_recorded_with_its_venue_at_most_once_a_minute() -> None:
    # what xmc settlement compares a statement's funds with (on the venue's trading day)
    g, sink, clock = core()
    g.on_account_reading("cn", {"equity": "1000000", "margin": "36000", "available": "964000"}, venue="SHFE")
    clock.advance(30 * 10**9)
    g.on_account_reading("cn", {"equity": "1000500"}, venue="SHFE")  # half a minute later: not recorded
    clock.advance(31 * 10**9)
    g.on_account_reading("cn", {"equity": "1000700"}, venue="SHFE")
    g.on_account_reading("cn", {"equity": "nonsense"}, venue="SHFE")  # refused: never recorded as a reading
    recs = [e for e in sink.events if e.kind is EventKind.RECONCILE and e.reason == "account reading"]
    assert [(e.account, e.venue, e.payload["equity"]) for e in recs] == [("cn", "SHFE", "1000000"),
                                                                          ("cn", "SHFE", "1000700")]
    assert recs[0].payload == {"currency": "CNY", "equity": "1000000", "margin": "36000", "available": "964000"}
    assert recs[1].payload["margin"] is None


def test_a_broker_reading_wins_and_a_difference_beyond_the_tolerance_is_an_alert() -> None:
    g, sink, clock = core()
    g.on_pair_done(one_leg("d1", "BUY", 1, "72000"))
    mark(g, clock, "SHFE.cu", "72000")
    g.tick()
    ours = Decimal(g.status()["accounts"]["cn"]["computed_equity"])
    # within tolerance: taken, no alert
    out = g.on_account_reading("cn", {"equity": str(ours + 10), "margin": "36000", "available": "9000000"})
    assert not out.alerts
    acc = g.status()["accounts"]["cn"]
    assert acc["equity_source"] == "broker" and Decimal(acc["equity"]) == (ours + 10).quantize(Decimal("0.01"))
    assert acc["available"] == "9000000.00" and acc["margin"] == "36000.00"
    # beyond: a yellow account_mismatch alert and a RECONCILE record; the broker's figure is used
    out = g.on_account_reading("cn", {"equity": str(ours - 200_000), "currency": "CNY"})
    assert [(a.monitor, a.key, a.level.value) for a in out.alerts] == [("account_mismatch", "cn", "yellow")]
    # (the first reading was recorded as it came; this one, within the minute, only as the mismatch)
    assert [e.reason for e in sink.events if e.kind is EventKind.RECONCILE] == ["account reading", "ACCOUNT_MISMATCH"]
    assert Decimal(g.status()["occupancy"]["cn"]["equity"]) == ours - 200_000
    # agreeing again resolves it
    out = g.on_account_reading("cn", {"equity": str(ours)})
    assert [a.resolved for a in out.alerts] == [True]


def test_a_stale_broker_reading_gives_way_to_our_figures() -> None:
    g, _, clock = core(account_reading_max_age_ms=1_000)
    g.on_account_reading("cn", {"equity": "9000000"})
    assert g.status()["accounts"]["cn"]["equity_source"] == "broker"
    clock.advance(5 * S)
    assert g.status()["accounts"]["cn"]["equity_source"] == "computed"


def test_the_same_old_broker_reply_handed_back_again_is_stale_by_its_own_stamp() -> None:
    # an adapter hands its last reply back on every poll; the broker answered it 5 s ago
    g, _, clock = core(account_reading_max_age_ms=1_000)
    answered = clock.now_ns()
    clock.advance(5 * S)
    g.on_account_reading("cn", {"equity": "9000000", "ts_ns": answered})  # received now, answered long ago
    assert g.status()["accounts"]["cn"]["equity_source"] == "computed"
    g.on_account_reading("cn", {"equity": "9000000", "ts_ns": clock.now_ns()})  # a fresh answer
    assert g.status()["accounts"]["cn"]["equity_source"] == "broker"


def test_a_bad_account_reading_is_recorded_and_changes_nothing() -> None:
    g, sink, _ = core()
    for acc, r in (("cn", {"margin": "1"}), ("cn", {"equity": "NaN"}), ("xx", {"equity": "1"}),
                   ("cn", {"equity": "1", "currency": "USD"}), ("cn", "nonsense")):
        g.on_account_reading(acc, r)  # type: ignore[arg-type]
    bad = [e.reason for e in sink.events if e.kind is EventKind.BAD_INPUT]
    assert len(bad) == 5 and any("equity" in b for b in bad) and any("currency" in b for b in bad)
    assert g.status()["accounts"]["cn"]["equity_source"] == "computed"


def test_the_venues_two_sided_positions_replace_the_guards_view_where_the_nets_agree() -> None:
    g, _, clock = core()
    mark(g, clock, "SHFE.cu", "72000")
    g.on_pair_done(one_leg("d1", "BUY", 1, "72000"))      # the guard: long 1 today
    snap = {"cn/SHFE.cu": {"long": {"today": 0, "yesterday": 3}, "short": {"today": 2, "yesterday": 0},
                           "trading_day": "2025-01-07"}, "cn/LME.CA3M": {"long": {"today": 9}},
            "cn/SHFE.al": "nonsense", "other/SHFE.cu": {"long": {"today": 5}}}
    assert g.load_two_sided("SHFE", snap) == 1
    p = g.status()["two_sided"]["cn/SHFE.cu"]
    assert (p["long"]["yesterday"], p["short"]["today"]) == (3, 2)
    one_lot = tk.instrument("SHFE.cu").notional(Decimal(72000), 1) * tk.instrument("SHFE.cu").margin_rate
    assert Decimal(g.status()["occupancy"]["cn"]["used"]) == 5 * one_lot   # gross: both sides
    # a fill the venue has and the guard has not booked yet: the guard keeps its own view
    snap["cn/SHFE.cu"]["long"]["today"] = 1
    assert g.load_two_sided("SHFE", snap) == 0 and g.counters["two_sided_in_flight"] == 1
    assert g.status()["two_sided"]["cn/SHFE.cu"]["long"]["today"] == 0


def test_a_rebuild_restores_pnl_and_two_sided_positions_and_the_same_summary_again_adds_nothing() -> None:
    g, sink, clock = core()
    g.on_pair_done(one_leg("d1", "BUY", 2, "72000"))
    g.on_pair_done(one_leg("d2", "SELL", 1, "72400"))
    before = g.pnl.snapshot()["total"]
    g2, _, _ = core()
    g2.rebuild(sink.events, {"cn": {"SHFE.cu": 1}})
    assert g2.pnl.snapshot()["total"] == before
    assert g2.status()["two_sided"] == g.status()["two_sided"]
    g2.on_pair_done(one_leg("d2", "SELL", 1, "72400"))
    assert g2.pnl.snapshot()["total"] == before


def test_a_revised_summary_books_only_the_new_fills_at_their_own_price() -> None:
    g, sink, _ = core()
    g.on_pair_done(one_leg("d1", "BUY", 1, "72000"))
    rev = one_leg("d1", "BUY", 3, "72100")      # two more lots: average 72100 over 3 -> 72150 each
    rev["ts_ns"] = 5
    g.on_pair_done(rev)
    t = [e for e in sink.events if e.kind is EventKind.PNL and e.reason == "TRADE"][-1]
    assert (t.payload["qty"], Decimal(t.payload["price"])) == (2, Decimal(72150))


def test_the_report_and_the_summary_rows_show_pnl_by_strategy_and_pair_and_a_moving_equity(tmp_path) -> None:
    from xmc_actors.ledger.audit import AuditReader
    from xmc_actors.ledger.figures import LABELS, ledger_figures
    from xmc_actors.ledger.report import build_report
    from xmc_actors.ledger.schema import encode_events
    from xmc_actors.ledger.store import LedgerStore

    g, sink, clock = core(pnl_interval_ms=1_000)
    g.on_pair_done(summary("d1"))
    g.on_pair_done(one_leg("d2", "BUY", 4, "72000", strategy="s2"))
    for i, px in enumerate(("72000", "72300", "72600", "72200")):
        clock.advance(2 * S)
        mark(g, clock, "SHFE.cu", px)
        g.tick()
    s = LedgerStore(tmp_path / "ledger")
    s.append(encode_events(list(sink.events)).table, stored_ns=1)
    s.close()
    with AuditReader(tmp_path / "ledger") as r:
        fig = ledger_figures(r)
        page = build_report(r, figures=fig)
    rows = dict(fig.rows())
    assert fig.pnl_trades == 3 and len(fig.equity_curve) == 4
    assert rows[LABELS["pnl"]].endswith("3 trades") and "USD" in rows[LABELS["pnl"]]
    assert fig.equity_curve[0][1] != fig.equity_curve[-1][1] and LABELS["equity"] in rows
    assert set(fig.pnl_by_strategy) == {"s1", "s2"} and "s1|LME.CA3M/SHFE.cu" in fig.pnl_by_pair
    assert rows[LABELS["pnl_by_strategy"]].startswith(("s1 ", "s2 "))
    lo, hi, last = fig.occupancy
    assert 0 < lo < hi and LABELS["occupancy"] in rows
    assert "Equity and P&amp;L" in page and "P&amp;L by strategy" in page and "<polyline" in page


# -- a broker's account reading, from the simulated venue ----------------------------------------------
def test_the_simulated_venue_reads_out_the_account_as_the_guard_computes_it_and_a_skew_is_caught() -> None:
    import datetime as dt

    from xmc_actors.model.orders import Offset
    from xmc_actors.venues.sim import SimExchange
    from xmc_actors.venues.sim_config import SimVenueParams

    start = int(dt.datetime(2025, 1, 2, 2, 0, tzinfo=dt.timezone.utc).timestamp()) * S  # SHFE morning session
    clock = SimClock(start)
    shfe = tk.venue("SHFE", offsets=True).model_copy(update={"margin_rule": "larger_side"})
    sim = SimExchange(shfe, [tk.instrument("SHFE.cu")], SimVenueParams.model_validate(
        {"seed": 1, "accounts": {"cn": {"capital": "10000000", "currency": "CNY"}}}), clock)
    clock.advance(S)
    sim.on_market(tk.quote("SHFE.cu", 72000, 72010, bid_size=50, ask_size=50, ts_ns=clock.now_ns()))
    sim.place(tk.order("SHFE.cu", "BUY", 3, "72010", account="cn", decision_id="d1", offset=Offset.OPEN))
    sim.place(tk.order("SHFE.cu", "SELL", 2, "72000", account="cn", decision_id="d2", offset=Offset.OPEN))
    clock.advance(S)
    sim.on_market(tk.quote("SHFE.cu", 72400, 72420, bid_size=50, ask_size=50, ts_ns=clock.now_ns()))
    reading = sim.account_reading()["cn"]
    cu = tk.instrument("SHFE.cu")
    fees = cu.fee(Decimal(72010), 3, "OPEN") + cu.fee(Decimal(72000), 2, "OPEN")
    # long 3 at 72010, short 2 at 72000, mid 72410: +400 x 5 x 3 - 410 x 5 x 2
    assert Decimal(reading["equity"]) == Decimal(10_000_000) + 6000 - 4100 - fees
    assert Decimal(reading["margin"]) == cu.notional(Decimal(72410), 3) * cu.margin_rate   # the larger side only
    # the guard, fed the same fills, agrees; then a skew beyond the tolerance is an alert
    g, _, gclock = core(margin_rule="larger_side", offset_preference="lock")
    g.on_quotes([tk.quote("SHFE.cu", 72400, 72420, ts_ns=clock.now_ns())])
    g.on_pair_done(one_leg("d1", "BUY", 3, "72010"))
    g.on_pair_done(one_leg("d2", "SELL", 2, "72000"))
    assert not g.on_account_reading("cn", reading).alerts
    assert Decimal(g.status()["accounts"]["cn"]["computed_equity"]) == Decimal(reading["equity"]).quantize(Decimal("0.01"))
    sim.inject({"kind": "account_skew", "account": "cn", "amount": "-80000"})
    out = g.on_account_reading("cn", sim.account_reading()["cn"])
    assert [(a.monitor, a.level.value) for a in out.alerts] == [("account_mismatch", "yellow")]


def test_the_larger_side_is_compared_in_money_over_the_contracts_of_one_product() -> None:
    """SHFE charges a client's two-sided positions in one product (all months) on the side whose
    margin is larger: long 2 lots of one month against short 2 of another at a higher price
    is charged the short side."""
    from xmc_actors.core.capital import CapitalPool, PositionBook

    near = tk.instrument("SHFE.cu").model_copy(update={"symbol": "cu2601", "product": "cu"})
    far = tk.instrument("SHFE.cu").model_copy(update={"symbol": "cu2603", "product": "cu"})
    insts = {near.id: near, far.id: far}
    shfe = tk.venue("SHFE", offsets=True).model_copy(update={"margin_rule": "larger_side"})
    acc = Account(id="cn", broker="sim", venues=("SHFE",), currency="CNY", capital=Decimal(10_000_000))
    pool = CapitalPool([acc], insts, lambda a, b: None, "CNY", {"SHFE": shfe})
    book = PositionBook()
    book.mark(near.id, Decimal(72000), 1)
    book.mark(far.id, Decimal(73000), 1)
    pool.two_sided = {("cn", near.id): (2, 0), ("cn", far.id): (0, 2)}
    short_side = far.notional(Decimal(73000), 2) * far.margin_rate
    assert pool.computed_margin(book)["cn"] == short_side


def test_risk_status_shows_accounts_pnl_by_strategy_and_pair_and_two_sided_positions() -> None:
    from xmc_actors.ops.cmd_ops import money_tables, risk_status_tables

    g, _, clock = core()
    mark(g, clock, "SHFE.cu", "72100")
    g.on_pair_done(summary("d1"))
    st = g.status()
    tables = {t.name: t for t in money_tables(st)}
    assert [r[0] for r in tables["accounts"].rows] == ["cn", "us"]
    assert tables["accounts"].rows[0][5] == "computed"
    assert [r[0] for r in tables["pnl_by_strategy"].rows] == ["s1"]
    assert [r[0] for r in tables["pnl_by_pair"].rows] == ["s1|LME.CA3M/SHFE.cu"]
    assert tables["risk_two_sided"].rows == [("cn", "SHFE.cu", 1, 0, 0, 0, 1)]
    assert "pnl_by_strategy" in {t.name for t in risk_status_tables(st)}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 4), st.integers(71000, 73000),
                          st.booleans()), min_size=1, max_size=12),
       st.integers(70000, 74000), st.sampled_from(["auto", "lock"]))
def test_whatever_is_booked_equity_is_capital_plus_the_mark_to_market_less_fees(trades, mark_px, pref) -> None:
    """Any sequence of fills at SHFE (offsets chosen by the guard, days rolling): the two-sided
    book nets to the booked position, and the account's equity is its capital plus cash from the
    trades plus the position at the mark, less the fees by each trade's offset."""
    g, sink, clock = core(offset_preference=pref)
    cu = tk.instrument("SHFE.cu")
    cash = Decimal(0)
    for i, (side, qty, px, next_day) in enumerate(trades):
        if next_day:
            clock.advance(24 * 3600 * S)
        mark(g, clock, "SHFE.cu", str(px))
        g.on_pair_done(one_leg(f"d{i}", side, qty, str(px)))
        cash -= (1 if side == "BUY" else -1) * qty * Decimal(px) * cu.multiplier
    clock.advance(S)
    mark(g, clock, "SHFE.cu", str(mark_px))
    g.tick()
    fees = sum(Decimal(e.payload["fee"]) for e in sink.events if e.kind is EventKind.PNL and e.reason == "TRADE")
    net = g.book.account.get("cn", {}).get("SHFE.cu", 0)
    p = g.sides.positions.get(("cn", "SHFE.cu"))
    assert (p.net if p else 0) == net
    expected = Decimal(10_000_000) + cash + net * Decimal(mark_px) * cu.multiplier - fees
    assert abs(g.capital.equity["cn"] - expected) < Decimal("1e-6")


def test_a_summary_without_prices_is_booked_into_pnl_at_the_mark() -> None:
    g, sink, clock = core()
    mark(g, clock, "SHFE.cu", "72100")
    s = one_leg("d1", "BUY", 2, "72000")
    s["legs"][0]["avg_price"] = None
    g.on_pair_done(s)
    t = [e for e in sink.events if e.kind is EventKind.PNL and e.reason == "TRADE"][-1]
    assert (t.payload["qty"], Decimal(t.payload["price"])) == (2, Decimal(72100))
    assert g.pnl.figures("leg")["cn|s1|SHFE.cu|SHFE.cu"].long == 2
