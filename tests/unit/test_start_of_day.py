"""The start-of-day gate's logic, and a broker's settlement statement against a ledger DuckDB wrote."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import testkit
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.core.start_of_day import StartOfDay, TradingDayWatch, assess, funds_differences
from xmc_actors.ledger.schema import encode_events
from xmc_actors.ledger.settlement import SettlementError, read_statement, reconcile_statement
from xmc_actors.ledger.store import LedgerStore
from xmc_actors.model.events import EventKind
from xmc_actors.ops.cli import main

VENUE_OF = {"SHFE.cu": "SHFE", "LME.CA3M": "LME"}


def test_positions_that_agree_leave_the_gate_open():
    gate = assess({"ok": True, "mismatches": [], "unverified_venues": []}, VENUE_OF)
    assert not gate.engaged and "agree" in gate.reason()
    with pytest.raises(ValueError, match="nothing to accept"):
        gate.accept("alice", "checked", 1)


def test_a_difference_holds_the_gate_names_it_and_needs_an_operator_and_a_note():
    rebuilt = {"ok": True, "mismatches": [{"account": "cn-main", "instrument": "SHFE.cu", "ledger": 0, "venue": 3,
                                           "difference": 3}],
               "verified": {"mismatches": [{"account": "cn-main", "instrument": "SHFE.cu", "ledger": 0, "venue": 3}],
                            "unverified_venues": ["LME"]}}
    gate = assess(rebuilt, VENUE_OF)
    assert gate.engaged and gate.venues == ["SHFE"] and gate.unverified_venues == ["LME"]
    assert len(gate.differences) == 1  # the same difference twice (rebuild, then its check) is one
    assert "cn-main SHFE.cu ledger 0 venue 3" in gate.reason() and "LME" in gate.reason()
    assert "xmc accept-positions" in gate.reason()
    with pytest.raises(ValueError, match="operator: required"):
        gate.accept(" ", "note", 1)
    with pytest.raises(ValueError, match="note: required"):
        gate.accept("alice", "", 1)
    assert gate.engaged
    why = gate.accept("alice", "confirmed with the broker", 42)
    assert not gate.engaged and gate.accepted_by == "alice" and gate.accepted_ns == 42
    assert "SHFE.cu 0->3" in why and "confirmed with the broker" in why and "unverified venues LME" in why
    back = StartOfDay.from_dict(gate.as_dict())
    assert back.accepted_by == "alice" and not back.engaged and back.differences == gate.differences


def test_a_rebuild_that_failed_holds_the_gate():
    gate = assess({"ok": False, "error": "ledger not readable after 3 attempt(s)"}, VENUE_OF)
    assert gate.engaged and "could not be checked (ledger not readable" in gate.reason()


def test_a_venue_that_did_not_answer_holds_the_gate_even_where_the_ledger_is_flat():
    # a new ledger: nothing to compare at LME, whose broker did not answer: it may hold yesterday's lots
    gate = assess({"ok": True, "mismatches": [], "unverified_venues": [],
                   "venue_errors": {"LME": "positions(): PositionsUnavailable: session fills"}}, VENUE_OF)
    assert gate.engaged and gate.unverified_venues == ["LME"]
    assert "venues that did not report their positions: LME" in gate.reason()


def test_differences_noted_while_pairs_were_in_flight_hold_the_gate_until_a_check_settles_them():
    deferred = [{"account": "cn-main", "instrument": "SHFE.cu", "ledger": 2, "venue": 3}]
    # the later check never came (timed out, or the difference kept moving): held, marked unconfirmed
    gate = assess({"ok": True, "mismatches": [], "deferred": deferred}, VENUE_OF)
    assert gate.engaged and gate.differences[0]["difference"] == 1 and gate.differences[0]["unconfirmed"]
    assert "not confirmed: pairs were in flight" in gate.reason()
    # the check came and found they were pairs in flight: nothing holds the gate
    settled = assess({"ok": True, "mismatches": [], "deferred": deferred,
                      "verified": {"mismatches": [], "unverified_venues": []}}, VENUE_OF)
    assert not settled.engaged


def test_a_day_change_whose_check_failed_is_checked_again_at_the_next_poll(monkeypatch):
    from xmc_actors.runtime import start_of_day as sod

    days = iter([dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 3), dt.date(2026, 3, 3)])
    gate = object.__new__(sod.DayGate)
    gate.risk = gate.registry = None
    gate.timeout_s, gate.every_s, gate._next, gate.instrument_venue = 1.0, 0.0, 0.0, VENUE_OF
    gate.watch = TradingDayWatch(["SHFE"], lambda v, now: next(days))
    gate.watch.changed(0)  # 2 March recorded
    calls: list[str] = []

    def check(risk, registry, resumed, iv, timeout, trigger):
        calls.append(trigger)
        if len(calls) == 1:
            raise TimeoutError("risk guard busy")
        return StartOfDay(trigger=trigger)

    monkeypatch.setattr(sod, "check", check)
    assert gate.poll() is None                       # 3 March: the check failed
    assert gate.poll().trigger == "trading day SHFE 2026-03-03"  # the same change, checked again
    assert gate.poll() is None and len(calls) == 2   # done: not checked a third time


def test_a_broker_reading_that_differs_holds_the_gate_until_accepted():
    alerts = [{"monitor": "account_mismatch", "key": "cn-main", "level": "yellow",
               "message": "account cn-main: broker equity 990000.00 vs ours 1000000.00 CNY"},
              {"monitor": "account_mismatch", "key": "us-main", "level": None, "message": "resolved"},
              {"monitor": "slippage", "key": "s1", "level": "yellow", "message": "x"}]
    funds = funds_differences(alerts)
    assert funds == [{"account": "cn-main", "message": alerts[0]["message"]}]
    gate = assess({"ok": True, "mismatches": []}, VENUE_OF, funds)
    assert gate.engaged and gate.venues == [] and "broker equity 990000.00" in gate.reason()
    why = gate.accept("alice", "the broker booked a fee we did not", 7)
    assert "funds of cn-main" in why and StartOfDay.from_dict(gate.as_dict()).funds == funds


def test_a_venues_new_trading_day_is_seen_once_and_the_first_look_only_records():
    days = {"SHFE": dt.date(2026, 3, 2), "LME": dt.date(2026, 3, 2)}
    watch = TradingDayWatch(["SHFE", "LME", "NOPE"], lambda v, now: days.get(v))
    assert watch.changed(0) == {}            # today's days, recorded
    assert watch.changed(1) == {}
    days["SHFE"] = dt.date(2026, 3, 3)       # SHFE's night session opens the next trading day
    assert watch.changed(2) == {"SHFE": dt.date(2026, 3, 3)}
    assert watch.changed(3) == {}
    gate = assess({"ok": True, "mismatches": [{"account": "cn-main", "instrument": "SHFE.cu", "ledger": 2, "venue": 3}]},
                  VENUE_OF, trigger="trading day SHFE 2026-03-03")
    assert gate.reason().startswith("start of day (trading day SHFE 2026-03-03): 1 position(s) differ")


def test_a_calendar_that_cannot_answer_is_not_a_day_change():
    def broken(v, now):
        raise ValueError("no calendar")
    watch = TradingDayWatch(["SHFE"], broken)
    assert watch.changed(0) == {} and watch.changed(1) == {}


def test_a_venue_closed_at_start_changes_day_when_it_opens_and_a_break_keeps_its_day():
    day: dict[str, dt.date | None] = {"SHFE": None}   # started on a Sunday
    watch = TradingDayWatch(["SHFE"], lambda v, now: day[v])
    assert watch.changed(0) == {}
    day["SHFE"] = dt.date(2026, 12, 7)
    assert watch.changed(1) == {"SHFE": dt.date(2026, 12, 7)}
    day["SHFE"] = None                                # the lunch break, then the afternoon
    assert watch.changed(2) == {}
    day["SHFE"] = dt.date(2026, 12, 7)
    assert watch.changed(3) == {}


# ------------------------------------------------------------------------------ settlement
def _ledger(tmp_path: Path) -> Path:
    """cn-main bought 3 SHFE.cu (open) then sold 1 (close today) on 2026-03-02; LME sold 1 (net)."""
    mk = EventMaker(SimClock(start_ns=0), "coordinator")
    t0 = int(dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.timezone.utc).timestamp() * 1e9)
    next_day = t0 + 86_400 * 10**9
    trail = [
        mk.make(EventKind.ORDER_SENT, ts_ns=t0, decision_id="d1", account="cn-main", instrument="SHFE.cu",
                client_order_id="d1:A:0", side="BUY", qty=3, offset="OPEN"),
        mk.make(EventKind.ORDER_REPORT, ts_ns=t0 + 1, decision_id="d1", account="cn-main", instrument="SHFE.cu",
                client_order_id="d1:A:0", filled=2, fill_qty=2, trade_id="T1"),
        mk.make(EventKind.ORDER_REPORT, ts_ns=t0 + 2, decision_id="d1", account="cn-main", instrument="SHFE.cu",
                client_order_id="d1:A:0", filled=3, fill_qty=1, trade_id="T2"),
        mk.make(EventKind.ORDER_REPORT, ts_ns=t0 + 3, decision_id="d1", account="cn-main", instrument="SHFE.cu",
                client_order_id="d1:A:0", filled=3, fill_qty=0, trade_id="T2", repeat=True),
        mk.make(EventKind.ORDER_SENT, ts_ns=t0 + 4, decision_id="d2", account="cn-main", instrument="SHFE.cu",
                client_order_id="d2:A:0", side="SELL", qty=1, offset="CLOSE_TODAY"),
        mk.make(EventKind.ORDER_REPORT, ts_ns=t0 + 5, decision_id="d2", account="cn-main", instrument="SHFE.cu",
                client_order_id="d2:A:0", filled=1, fill_qty=1, trade_id="T3"),
        mk.make(EventKind.ORDER_SENT, ts_ns=t0 + 6, decision_id="d1", account="us-main", instrument="LME.CA3M",
                client_order_id="d1:B:0", side="SELL", qty=1),
        mk.make(EventKind.ORDER_REPORT, ts_ns=t0 + 7, decision_id="d1", account="us-main", instrument="LME.CA3M",
                client_order_id="d1:B:0", filled=1, fill_qty=1, trade_id="L1"),
        # the next day: not in the 2 March statement
        mk.make(EventKind.ORDER_SENT, ts_ns=next_day, decision_id="d3", account="cn-main", instrument="SHFE.cu",
                client_order_id="d3:A:0", side="BUY", qty=5, offset="OPEN"),
        mk.make(EventKind.ORDER_REPORT, ts_ns=next_day + 1, decision_id="d3", account="cn-main", instrument="SHFE.cu",
                client_order_id="d3:A:0", filled=5, fill_qty=5, trade_id="T9"),
        mk.make(EventKind.RECONCILE, ts_ns=t0 + 8, account="cn-main", reason="account reading", equity="1000100.00",
                margin="50000"),
    ]
    led = tmp_path / "ledger"
    store = LedgerStore(led / "shard-0.duckdb")
    store.append(encode_events(trail).table, stored_ns=1)
    store.close()
    return led


def _statement(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "statement.csv"
    p.write_text("record,trading_day,account,instrument,long,short,field,value\n" + body)
    return p


def test_a_statement_that_matches_the_ledgers_fills_agrees(tmp_path):
    led = _ledger(tmp_path)
    st = _statement(tmp_path, "position,2026-03-02,cn-main,SHFE.cu,2,0,,\n"
                              "position,2026-03-02,us-main,LME.CA3M,0,1,,\n"
                              "funds,2026-03-02,cn-main,,,,equity,1000100.004\n")
    rep = reconcile_statement(st, led)
    assert rep["agree"], rep
    assert {(r["instrument"], r["side"], r["ledger"]) for r in rep["positions"]} == {("SHFE.cu", "long", 2),
                                                                                     ("LME.CA3M", "short", 1)}
    assert rep["funds"][0]["ledger"] == "1000100.00"


def test_a_statement_that_differs_is_shown_line_by_line_and_the_command_exits_1(tmp_path, capsys):
    led = _ledger(tmp_path)
    st = _statement(tmp_path, "position,2026-03-02,cn-main,SHFE.cu,3,0,,\n"
                              "funds,2026-03-02,cn-main,,,,equity,999000\n"
                              "funds,2026-03-02,cn-main,,,,available,5\n")
    rep = reconcile_statement(st, led)
    assert not rep["positions_agree"] and not rep["funds_agree"]
    cu = [r for r in rep["positions"] if r["instrument"] == "SHFE.cu"][0]
    assert (cu["statement"], cu["ledger"], cu["difference"]) == (3, 2, -1)
    # us-main is not in the statement: its ledger position is not compared against nothing
    assert not [r for r in rep["positions"] if r["account"] == "us-main"]
    assert rep["funds_unverified"] == ["cn-main available"]
    assert main(["settlement", str(st), "--ledger", str(led), "--format", "json"]) == 1
    out = capsys.readouterr().out
    assert '"positions_agree": false' in out


def test_rows_of_one_contract_are_added_up_and_an_account_listed_only_in_its_funds_is_compared(tmp_path):
    led = _ledger(tmp_path)
    # SHFE lists yesterday's and today's lots on rows of their own: 1 + 1 is the ledger's 2;
    # us-main is in the statement by its funds only (the broker holds nothing): the ledger's short 1 differs
    st = _statement(tmp_path, "position,2026-03-02,cn-main,SHFE.cu,1,0,,\n"
                              "position,2026-03-02,cn-main,SHFE.cu,1,0,,\n"
                              "funds,2026-03-02,us-main,,,,equity,5\n")
    rep = reconcile_statement(st, led)
    cu = [r for r in rep["positions"] if r["instrument"] == "SHFE.cu"][0]
    assert (cu["statement"], cu["ledger"], cu["difference"]) == (2, 2, 0)
    lme = [r for r in rep["positions"] if r["account"] == "us-main"]
    assert [(r["side"], r["statement"], r["ledger"]) for r in lme] == [("short", 0, 1)]
    assert not rep["positions_agree"]


@pytest.mark.parametrize("body, message", [
    ("position,2026-02-30,cn-main,SHFE.cu,1,0,,\n", "line 2 column trading_day: '2026-02-30' is not a date"),
    ("position,2026-03-02,cn-main,SHFE.cu,-1,0,,\n", "line 2 column long: '-1' is not a whole number"),
    ("position,2026-03-02,cn-main,,1,0,,\n", "line 2 column instrument: empty"),
    ("funds,2026-03-02,cn-main,,,,equity,lots\n", "line 2 column value: 'lots' is not a number"),
    ("trade,2026-03-02,cn-main,SHFE.cu,1,0,,\n", "line 2 column record: 'trade' (position or funds)"),
])
def test_a_statement_that_cannot_be_read_names_the_line_and_column(tmp_path, body, message):
    with pytest.raises(SettlementError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_statement(_statement(tmp_path, body))


def test_the_settlement_command_refuses_a_bad_statement_with_exit_2(tmp_path, capsys):
    led = _ledger(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("when,who\n2026-03-02,cn-main\n")
    assert main(["settlement", str(bad), "--ledger", str(led)]) == 2
    assert "no column record, trading_day, account" in capsys.readouterr().err


def test_accept_positions_needs_an_operator_and_a_note_before_it_looks_for_a_deployment(capsys):
    assert main(["accept-positions", "--note", "x"]) == 2
    assert "--operator NAME is required" in capsys.readouterr().err
    assert main(["accept-positions", "--operator", "alice"]) == 2
    assert "--note TEXT is required" in capsys.readouterr().err


def test_trading_day_of_a_night_session_fill_is_the_venues_next_day(tmp_path):
    """With the deployment's venues, a SHFE fill at 21:30 Shanghai on Friday 27 Feb belongs to the
    trading day of Monday 2 March."""
    cu, shfe = testkit.instrument("SHFE.cu"), testkit.venue("SHFE")
    mk = EventMaker(SimClock(start_ns=0), "coordinator")
    t = int(dt.datetime(2026, 2, 27, 13, 30, tzinfo=dt.timezone.utc).timestamp() * 1e9)  # 21:30 in Shanghai
    trail = [mk.make(EventKind.ORDER_SENT, ts_ns=t, account="cn-main", instrument="SHFE.cu", client_order_id="n:A:0",
                     decision_id="n", side="BUY", qty=1, offset="OPEN"),
             mk.make(EventKind.ORDER_REPORT, ts_ns=t + 1, account="cn-main", instrument="SHFE.cu",
                     client_order_id="n:A:0", decision_id="n", filled=1, fill_qty=1, trade_id="N1")]
    led = tmp_path / "ledger"
    store = LedgerStore(led / "shard-0.duckdb")
    store.append(encode_events(trail).table, stored_ns=1)
    store.close()
    st = _statement(tmp_path, "position,2026-02-27,cn-main,SHFE.cu,0,0,,\nposition,2026-03-02,cn-main,SHFE.cu,1,0,,\n")
    rep = reconcile_statement(st, led, venues=[shfe], instruments=[cu])
    assert rep["positions_agree"], rep["positions"]
    # without the venues, the fill counts on its UTC date (27 Feb): the 27 Feb line differs
    assert not reconcile_statement(st, led)["positions_agree"]


def test_an_account_reading_speaks_for_the_trading_day_of_its_venue_not_its_utc_date(tmp_path):
    """cn-main is read at 16:00 Shanghai on Friday 27 Feb (after the close: Friday's settlement)
    and at 21:30 (in the night session, which belongs to Monday's trading day; still Friday in
    UTC). Friday's statement is compared with the 16:00 figure. On UTC dates the night reading
    was filed under Friday and hid it."""
    from xmc_actors.ledger.settlement import reading_day
    from xmc_actors.model.market import Account

    shfe = testkit.venue("SHFE")
    sh = dt.timezone(dt.timedelta(hours=8))

    def at(*a):
        return int(dt.datetime(*a, tzinfo=sh).timestamp() * 1e9)
    assert reading_day(shfe, at(2026, 2, 27, 10, 30)) == dt.date(2026, 2, 27)  # in session
    assert reading_day(shfe, at(2026, 2, 27, 12, 0)) == dt.date(2026, 2, 27)   # the lunch break
    assert reading_day(shfe, at(2026, 2, 27, 16, 0)) == dt.date(2026, 2, 27)   # after the close
    assert reading_day(shfe, at(2026, 2, 27, 21, 30)) == dt.date(2026, 3, 2)   # the night session: Monday's
    assert reading_day(shfe, at(2026, 2, 28, 12, 0)) == dt.date(2026, 3, 2)    # the weekend, after it
    mk = EventMaker(SimClock(start_ns=0), "risk-guard")
    trail = [mk.make(EventKind.RECONCILE, ts_ns=at(2026, 2, 27, 16, 0), account="cn-main", equity="100"),
             mk.make(EventKind.RECONCILE, ts_ns=at(2026, 2, 27, 21, 30), account="cn-main", equity="250")]
    led = tmp_path / "ledger"
    store = LedgerStore(led / "shard-0.duckdb")
    store.append(encode_events(trail).table, stored_ns=1)
    store.close()
    st = _statement(tmp_path, "funds,2026-02-27,cn-main,,,,equity,100\n")
    acc = Account(id="cn-main", broker="sim", venues=("SHFE",), currency="CNY", capital=1)
    rep = reconcile_statement(st, led, venues=[shfe], instruments=[], accounts=[acc])
    assert rep["funds_agree"], rep["funds"]
    assert not reconcile_statement(st, led)["funds_agree"]  # UTC dates: the night's 250 taken for Friday


def test_an_account_on_two_venues_files_each_reading_under_the_trading_day_of_the_venue_it_came_from(tmp_path):
    """Found in review: a reading took the account's first venue's trading day. At 21:30 Shanghai
    on Friday 27 Feb SHFE trades Monday's night session, while COMEX (08:30 New York) is in
    Friday's; a reading the COMEX gateway gave is Friday's."""
    from xmc_actors.model.market import Account

    shfe, comex = testkit.venue("SHFE"), testkit.venue("COMEX")
    at = int(dt.datetime(2026, 2, 27, 21, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp() * 1e9)
    mk = EventMaker(SimClock(start_ns=0), "risk-guard")
    trail = [mk.make(EventKind.RECONCILE, ts_ns=at, account="both", venue="COMEX", reason="account reading",
                     equity="300")]
    led = tmp_path / "ledger"
    store = LedgerStore(led / "shard-0.duckdb")
    store.append(encode_events(trail).table, stored_ns=1)
    store.close()
    acc = Account(id="both", broker="sim", venues=("SHFE", "COMEX"), currency="USD", capital=1)
    friday = _statement(tmp_path, "funds,2026-02-27,both,,,,equity,300\n")
    rep = reconcile_statement(friday, led, venues=[shfe, comex], instruments=[], accounts=[acc])
    assert rep["funds_agree"] and not rep["funds_unverified"], rep["funds"]
