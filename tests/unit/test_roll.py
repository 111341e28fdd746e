"""The calendar roll as one decision (core/roll.py): children, refusals, outcome, deadline."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from testkit import instrument, venue
from xmc_actors.core.contracts import Holding, plan_roll
from xmc_actors.core.roll import RollInputError, RollTracker, build_roll, child_id, roll_by_ns, unheld_near_legs

D = dt.date
PRICES = {"SHFE.cu2701": 72000, "SHFE.cu2702": 72100, "COMEX.HGH7": "4.50", "COMEX.HGK7": "4.55"}
ACCOUNTS = {"SHFE": "cn", "COMEX": "us"}


def _plan(day=D(2026, 12, 6)):
    return plan_roll([Holding(instrument("SHFE.cu"), venue("SHFE"), 10, "SHFE.cu2701"),
                      Holding(instrument("COMEX.HG"), venue("COMEX"), -2, "COMEX.HGH7")], day)


def _req(**kw):
    plan = kw.pop("plan", None) or _plan()
    args = dict(decision_id="roll-cu-1", strategy="cu_pair", accounts=ACCOUNTS, prices=PRICES,
                deadline_ns=roll_by_ns(plan, "Asia/Shanghai"), now_ns=1)
    args.update(kw)
    return build_roll(plan, **args)


def test_a_copper_roll_is_one_decision_with_one_calendar_spread_per_venue():
    req = _req()
    assert [c.decision_id for c in req.children] == ["roll-cu-1.rollA", "roll-cu-1.rollB"]
    a, b = req.children
    assert [(lg.leg, lg.instrument, lg.side.value, lg.qty, lg.account, lg.limit_price) for lg in a.legs] == [
        ("N", "SHFE.cu2701", "SELL", 10, "cn", Decimal(72000)), ("F", "SHFE.cu2702", "BUY", 10, "cn", Decimal(72100))]
    assert [(lg.instrument, lg.side.value, lg.qty) for lg in b.legs] == [
        ("COMEX.HGH7", "BUY", 2), ("COMEX.HGK7", "SELL", 2)]
    assert all(c.strategy == "cu_pair" and c.deadline_ns == req.deadline_ns for c in req.children)
    p = req.payload()
    assert p["roll_children"] == ["roll-cu-1.rollA", "roll-cu-1.rollB"] and p["roll_by"] == "2026-12-30"
    assert p["legs"][0] == {"leg": "A", "venue": "SHFE", "near": "SHFE.cu2701", "far": "SHFE.cu2702", "qty": 10,
                            "roll_by": "2026-12-30"}


def test_a_roll_is_refused_unless_each_near_leg_closes_lots_that_are_held():
    req = _req()  # long 10 SHFE cu2701 (closed by a SELL), short 2 COMEX HGH7 (closed by a BUY)
    held = {("cn", "SHFE.cu2701"): (10, 0), ("us", "COMEX.HGH7"): (0, 2)}
    assert unheld_near_legs(req, lambda a, i: held.get((a, i))) == []
    # the operator typed the wrong direction: the account is short, the roll would sell (open) more
    wrong = {("cn", "SHFE.cu2701"): (0, 10), ("us", "COMEX.HGH7"): (0, 2)}
    [msg] = unheld_near_legs(req, lambda a, i: wrong.get((a, i)))
    assert msg.startswith("roll-cu-1.rollA: cn holds 0 lot(s) long of SHFE.cu2701") and "would close 10" in msg
    # fewer lots than the roll closes, and a venue that cannot say
    short = {("cn", "SHFE.cu2701"): (4, 0)}
    problems = unheld_near_legs(req, lambda a, i: short.get((a, i)))
    assert len(problems) == 2 and "holds 4 lot(s)" in problems[0] and "cannot be verified" in problems[1]


def test_the_deadline_is_the_end_of_roll_by_in_the_venue_time_zone():
    # 31 Dec 2026 00:00 in Shanghai is 30 Dec 16:00 UTC
    assert roll_by_ns(_plan(), "Asia/Shanghai") == int(
        dt.datetime(2026, 12, 30, 16, tzinfo=dt.timezone.utc).timestamp()) * 10**9


@pytest.mark.parametrize("kw, field", [
    ({"decision_id": "bad id!"}, "decision_id"),
    ({"decision_id": "x" * 71}, "decision_id"),
    ({"strategy": " "}, "strategy"),
    ({"accounts": {"SHFE": "cn"}}, "accounts[COMEX]"),
    ({"prices": {k: v for k, v in PRICES.items() if k != "SHFE.cu2702"}}, "prices[SHFE.cu2702]"),
    ({"prices": {**PRICES, "COMEX.HGK7": "abc"}}, "prices[COMEX.HGK7]"),
    ({"prices": {**PRICES, "COMEX.HGK7": -1}}, "prices[COMEX.HGK7]"),
    ({"deadline_ns": 0}, "deadline_ns"),
])
def test_bad_input_is_refused_naming_the_field(kw, field):
    with pytest.raises(RollInputError) as e:
        _req(**kw)
    assert e.value.field == field and str(e.value).startswith(field + ":")


def test_a_roll_is_never_built_with_its_deadline_passed_a_late_one_needs_a_new_deadline():
    for op in ("", "alice"):  # an operator does not change it: the coordinator would refuse the children
        with pytest.raises(RollInputError, match="^deadline_ns: .*has passed.*new deadline in the future"):
            _req(deadline_ns=10, now_ns=11, operator=op)
    assert _req(deadline_ns=12, now_ns=11, operator=" alice ").operator == "alice"


def _summary(did, state="HEDGED", complete=True):
    return {"decision_id": did, "state": state, "complete": complete,
            "legs": [{"instrument": "X.near", "net_qty": -1}, {"instrument": "X.far", "net_qty": 1}]}


def test_the_roll_is_rolled_once_every_child_is_hedged_and_complete():
    tr = RollTracker(_req())
    assert tr.on_child(_summary("other")) is None
    assert tr.on_child(_summary(child_id("roll-cu-1", "A"))) is None
    out = tr.on_child(_summary(child_id("roll-cu-1", "B")))
    assert out["state"] == "ROLLED" and "SHFE.cu2701->SHFE.cu2702" in out["reason"]
    assert out["children"]["roll-cu-1.rollA"]["net"] == {"X.near": -1, "X.far": 1}
    assert tr.on_deadline(10**30) is None  # decided once


def test_one_venue_rolled_and_the_other_not_is_escalated_as_mismatched_months():
    tr = RollTracker(_req())
    tr.on_child(_summary("roll-cu-1.rollA"))
    out = tr.on_child(_summary("roll-cu-1.rollB", state="ROLLED_BACK", complete=False))
    assert out["state"] == "ESCALATED"
    assert out["reason"].startswith("roll-cu-1.rollB ended without a complete roll; roll-cu-1.rollA rolled")
    assert "mismatched months" in out["reason"]


def test_at_the_deadline_a_child_never_sent_ends_the_roll_and_a_working_one_is_waited_for():
    req = _req()
    tr = RollTracker(req)
    tr.on_child(_summary("roll-cu-1.rollA"))
    assert tr.on_deadline(req.deadline_ns - 1) is None and not tr.late
    # rollB is still working at the venues: the roll waits for it (late), never decided on a guess
    assert tr.on_deadline(req.deadline_ns, open_children={"roll-cu-1.rollB"}) is None and tr.late
    # wound down by its own deadline, both legs had filled: the roll is done, late but ROLLED
    assert tr.on_child(_summary("roll-cu-1.rollB"))["state"] == "ROLLED"
    # a child that never became a pair (its submit failed) ends the roll at the deadline
    tr2 = RollTracker(req)
    tr2.on_child(_summary("roll-cu-1.rollA"))
    out = tr2.on_deadline(req.deadline_ns, open_children=set())
    assert out["state"] == "ESCALATED" and out["children"]["roll-cu-1.rollB"]["state"] == "NOT_SENT"
    assert "roll-cu-1.rollB ended without a complete roll (not all done by its deadline, the end of 2026-12-30)" \
        in out["reason"]
    assert out["moves"][1] == {"child": "roll-cu-1.rollB", "near": "COMEX.HGH7", "far": "COMEX.HGK7", "lots": 2,
                               "rolled": False, "clean": True, "net": {}}  # never sent: nothing changed


def _ledger(tmp_path, trail):
    from xmc_actors.ledger.schema import encode_events
    from xmc_actors.ledger.store import LedgerStore
    led = tmp_path / "ledger"
    store = LedgerStore(led / "shard-0.duckdb")
    store.append(encode_events(trail).table, stored_ns=1)
    store.close()
    return led


def test_xmc_audit_trace_of_a_roll_shows_its_children_and_its_outcome(tmp_path, capsys):
    from xmc_actors.core.clock import SimClock
    from xmc_actors.core.sink import EventMaker
    from xmc_actors.ledger.audit import AuditReader
    from xmc_actors.model.events import EventKind
    from xmc_actors.ops.cli import main
    clock = SimClock()
    mk = EventMaker(clock, "test", node=1)
    req = _req()

    def ev(kind, did, **kw):
        clock.advance(1000)
        return mk.make(kind, decision_id=did, strategy="cu_pair", **kw)
    trail = [ev(EventKind.OPERATOR, "roll-cu-1", reason="roll roll-cu-1", action="roll", **req.payload()),
             ev(EventKind.ORDER_SENT, "other-1", instrument="SHFE.cu2701"),
             *[ev(EventKind.ORDER_SENT, c.decision_id, instrument=lg.instrument) for c in req.children for lg in c.legs]]
    led = _ledger(tmp_path / "open", trail)
    with AuditReader(led) as r:
        tr = r.trace("roll-cu-1")
    assert tr.outcome == "OPEN"  # not decided yet, whatever the children's states
    assert [h.instrument for h in tr.hops if h.kind == "ORDER_SENT"] == [
        "SHFE.cu2701", "SHFE.cu2702", "COMEX.HGH7", "COMEX.HGK7"]  # the unrelated decision is not in it
    trail.append(ev(EventKind.LIFECYCLE, "roll-cu-1", reason="ROLL_DONE", roll_state="ROLLED", message="done"))
    led = _ledger(tmp_path / "done", trail)
    assert main(["audit", "trace", "roll-cu-1", "--ledger", str(led)]) == 0
    out = capsys.readouterr().out
    assert "decision roll-cu-1: 6 events, outcome ROLLED" in out and "COMEX.HGK7" in out
    with AuditReader(led) as r:  # a child alone is still its own trace
        assert [h.instrument for h in r.trace("roll-cu-1.rollB").hops] == ["COMEX.HGH7", "COMEX.HGK7"]


def test_a_roll_request_is_planned_with_its_deadline_in_the_binding_venue_time_zone():
    from xmc_actors.core.roll import roll_request
    hold = [Holding(instrument("SHFE.cu"), venue("SHFE"), 10, "SHFE.cu2701"),
            Holding(instrument("COMEX.HG"), venue("COMEX"), -2, "COMEX.HGH7")]
    req = roll_request(hold, D(2026, 12, 6), decision_id="r1", strategy="s", accounts=ACCOUNTS, prices=PRICES, now_ns=1)
    assert req.plan.binding == "A" and req.deadline_ns == roll_by_ns(req.plan, "Asia/Shanghai")
    assert [c.decision_id for c in req.children] == ["r1.rollA", "r1.rollB"]
    with pytest.raises(RollInputError, match=r"^prices\[COMEX.HGK7\]"):
        roll_request(hold, D(2026, 12, 6), decision_id="r1", strategy="s", accounts=ACCOUNTS,
                     prices={k: v for k, v in PRICES.items() if k != "COMEX.HGK7"}, now_ns=1)


# -- a coordinator restarted mid-roll (core.roll.recover_rolls) ---------------------------------
def _roll_trail(req, *children_ends, done=None, owner="coordinator"):
    """The trail a coordinator leaves of ``req``: its roll record, each child's INTENT and the
    PAIR_STATE events in ``children_ends`` ((child id, to-state, nets)), and ``done`` (a
    ROLL_DONE's roll_state) when the roll was decided."""
    from xmc_actors.core.clock import SimClock
    from xmc_actors.core.sink import EventMaker
    from xmc_actors.model.events import EventKind
    clock = SimClock()
    mk = EventMaker(clock, owner, node=1)

    def ev(kind, did, **kw):
        clock.advance(1000)
        return mk.make(kind, decision_id=did, strategy="cu_pair", **kw)
    trail = [ev(EventKind.OPERATOR, req.decision_id, reason="roll", action="roll", **req.payload())]
    trail += [ev(EventKind.INTENT, c.decision_id, intent=c.model_dump(mode="json")) for c in req.children
              if any(e[0] == c.decision_id for e in children_ends)]
    for did, to, nets in children_ends:
        trail.append(ev(EventKind.PAIR_STATE, did, to=to, nets=nets))
    if done:
        trail.append(ev(EventKind.LIFECYCLE, req.decision_id, reason="ROLL_DONE", roll_state=done, message="m"))
    return trail


def test_a_restarted_coordinator_reads_back_an_undecided_roll_and_decides_it_from_the_trail():
    from xmc_actors.core.roll import recover_rolls
    req = _req()
    # both children ended before the crash, the ROLL_DONE was never written: decided now
    trail = _roll_trail(req, ("roll-cu-1.rollA", "WORKING", {"N": 0, "F": 0}),
                        ("roll-cu-1.rollA", "HEDGED", {"N": 10, "F": 10}),
                        ("roll-cu-1.rollB", "HEDGED", {"N": 2, "F": 2}))
    rec = recover_rolls(trail, "coordinator")
    t = rec.trackers["roll-cu-1"]
    assert rec.decided_now == ["roll-cu-1"] and t.outcome["state"] == "ROLLED"
    assert t.outcome["children"]["roll-cu-1.rollB"]["net"] == {"COMEX.HGH7": 2, "COMEX.HGK7": -2}
    assert t.record.deadline_ns == req.deadline_ns and t.record.intents == req.children
    # one child short of its lots: HEDGED but not complete, the roll is escalated
    rec = recover_rolls(_roll_trail(req, ("roll-cu-1.rollA", "HEDGED", {"N": 7, "F": 7}),
                                    ("roll-cu-1.rollB", "HEDGED", {"N": 2, "F": 2})), "coordinator")
    assert rec.trackers["roll-cu-1"].outcome["state"] == "ESCALATED"
    # one child still working at the crash: undecided (the pair book winds it down), deadline kept
    rec = recover_rolls(_roll_trail(req, ("roll-cu-1.rollA", "HEDGED", {"N": 10, "F": 10}),
                                    ("roll-cu-1.rollB", "WORKING", {})), "coordinator")
    t = rec.trackers["roll-cu-1"]
    assert t.outcome is None and rec.decided_now == [] and rec.unrecorded == {}
    assert t.on_child({"decision_id": "roll-cu-1.rollB", "state": "HEDGED", "complete": True})["state"] == "ROLLED"


def test_a_roll_decided_before_the_restart_is_not_decided_again_and_unrecorded_children_are_named():
    from xmc_actors.core.roll import recover_rolls
    req = _req()
    rec = recover_rolls(_roll_trail(req, ("roll-cu-1.rollA", "HEDGED", {"N": 10, "F": 10}), done="ESCALATED"),
                        "coordinator")
    assert rec.decided_now == [] and rec.trackers["roll-cu-1"].outcome["state"] == "ESCALATED"
    # the crash came right after the roll's record: no child in the trail, both looked for at the venues
    rec = recover_rolls(_roll_trail(req), "coordinator")
    assert [c.decision_id for c in rec.unrecorded["roll-cu-1"]] == ["roll-cu-1.rollA", "roll-cu-1.rollB"]
    # another coordinator's rolls are not this one's
    assert recover_rolls(_roll_trail(req), "coordinator-2").trackers == {}


def test_an_unreadable_roll_record_is_named_not_followed():
    from xmc_actors.core.roll import recover_rolls
    req = _req()
    [rec_ev] = _roll_trail(req)
    bad = rec_ev.model_copy(update={"payload": {**rec_ev.payload, "deadline_ns": "soon"}})
    rec = recover_rolls([bad], "coordinator")
    assert rec.trackers == {} and rec.unreadable == [("roll-cu-1", "deadline_ns: 'soon' is not a positive time")]
    bad = rec_ev.model_copy(update={"payload": {**rec_ev.payload, "child_intents": [{"decision_id": 5}]}})
    [(did, why)] = recover_rolls([bad], "coordinator").unreadable
    assert why.startswith("child_intents[0]: ")


def test_a_roll_record_read_back_from_duckdb_is_the_roll_submitted(tmp_path):
    """Written to a ledger shard and read back as a restarted coordinator reads its trail."""
    from xmc_actors.core.roll import RollRecord, recover_rolls
    from xmc_actors.ledger.reader import query_events
    from xmc_actors.ledger.store import LedgerStore
    req = _req()
    led = _ledger(tmp_path, _roll_trail(req))
    store = LedgerStore(led / "shard-0.duckdb")
    try:  # what LedgerShard.read_events runs for a restarted coordinator's read_trail
        events = query_events(store.con, ["OPERATOR", "LIFECYCLE", "INTENT", "PAIR_STATE"])
    finally:
        store.close()
    rec = recover_rolls(events, "coordinator")
    assert rec.trackers["roll-cu-1"].record == RollRecord(
        "roll-cu-1", "cu_pair", "", req.deadline_ns, "2026-12-30", ("roll-cu-1.rollA", "roll-cu-1.rollB"),
        ("SHFE.cu2701->SHFE.cu2702", "COMEX.HGH7->COMEX.HGK7"), req.children)


def test_an_undecided_roll_holds_its_strategys_orders_and_a_second_roll_of_its_contracts():
    from xmc_actors.core.roll import rolls_moving
    t = RollTracker(_req())  # moves SHFE.cu2701->SHFE.cu2702 and COMEX.HGH7->COMEX.HGK7, undecided
    rolls = {"roll-cu-1": t}
    # the near and the far contracts both count; another strategy's or other contracts do not
    assert rolls_moving(rolls, "cu_pair", ["SHFE.cu2702"]) == ["roll-cu-1"]
    assert rolls_moving(rolls, "cu_pair", ["COMEX.HGH7", "SHFE.al2701"]) == ["roll-cu-1"]
    assert rolls_moving(rolls, "other", ["SHFE.cu2701"]) == []
    assert rolls_moving(rolls, "cu_pair", ["SHFE.cu2703"]) == []
    # decided (either way): it holds nothing any more
    t.on_child({"decision_id": "roll-cu-1.rollA", "state": "HEDGED", "complete": True})
    t.on_child({"decision_id": "roll-cu-1.rollB", "state": "ROLLED_BACK", "complete": False})
    assert t.outcome is not None and rolls_moving(rolls, "cu_pair", ["SHFE.cu2701"]) == []
