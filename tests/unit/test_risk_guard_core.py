"""RiskGuard core: operator actions, limit changes, grants, and rebuild after a restart."""
from __future__ import annotations

from decimal import Decimal

import pytest
import testkit as tk
from test_monitor_alerts import core, summary

from xmc_actors.core.risk_rules import PreTradeChecker
from xmc_actors.model.events import EventKind
from xmc_actors.model.risk import RiskConfig, TradingState


def test_operator_halt_is_recorded_with_the_operator_and_carried_by_the_next_grant() -> None:
    g, sink, _ = core()
    ev = g.set_trading_state("venue", "LME", TradingState.HALTED, "alice", "LME outage")
    assert ev.kind is EventKind.OPERATOR and ev.venue == "LME"
    assert {"operator": "alice", "state": "HALTED", "previous": "ACTIVE", "note": "LME outage"}.items() <= ev.payload.items()
    assert g.make_grant("c1").trading_states == {"venue:LME": TradingState.HALTED}
    g.set_trading_state("venue", "LME", "ACTIVE", "bob")
    assert g.make_grant("c1").trading_states == {}


@pytest.mark.parametrize("operator", ["", "   ", None])
def test_operator_action_without_an_operator_name_is_refused(operator: object) -> None:
    g, sink, _ = core()
    with pytest.raises(ValueError, match="operator: an operator name is required"):
        g.set_trading_state("global", None, "HALTED", operator)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="operator"):
        g.set_limit("default_limits", None, "max_order_qty", "5", operator)  # type: ignore[arg-type]
    assert g.states == {} and not [e for e in sink.events if e.kind is EventKind.OPERATOR]


def test_set_limit_is_validated_recorded_and_reaches_the_checker_through_the_grant() -> None:
    g, sink, clock = core()
    g.set_limit("instruments", "SHFE.cu", "max_order_qty", "2", "alice")
    ev = [e for e in sink.events if e.kind is EventKind.OPERATOR][-1]
    assert ev.payload["section"] == "instruments" and ev.payload["value"] == "2" and ev.payload["operator"] == "alice"
    chk = PreTradeChecker(tk.instruments(), {c: tk.venue(c) for c in ("SHFE", "LME")}, g.capital.fx, name="c1")
    chk.update_grant(g.make_grant("c1"))
    r = chk.check_pair(tk.pair_intent(a=("SHFE.cu", "BUY", 3, "72000"), b=("LME.CA3M", "SELL", 3, "9800")), clock.now_ns())
    assert [str(d) for d in r.denials] == ["QTY_EXCEEDS_MAX: leg=A instrument=SHFE.cu qty=3 max=2"]
    # the instrument entry keeps the default collar it did not set
    assert chk._limits["SHFE.cu"].collar_pct == Decimal("0.05")


@pytest.mark.parametrize("args,msg", [
    (("occupancy", None, "red", "0.5"), "levels must rise"),
    (("throttle", None, "max_orders_per_s", "-1"), "throttle.max_orders_per_s"),
    (("bogus", None, "x", "1"), "section: 'bogus'"),
    (("default_limits", None, "no_such_field", "1"), "no_such_field"),
])
def test_a_bad_limit_change_is_refused_with_the_field_and_reason(args: tuple, msg: str) -> None:
    g, _, _ = core()
    with pytest.raises(ValueError, match=msg):
        g.set_limit(*args, operator="alice")
    assert g.cfg == RiskConfig()


def test_booked_pair_reaches_the_coordinator_once_and_is_dropped_after_the_ack() -> None:
    g, _, _ = core()
    g.on_pair_done(summary("d1"))
    grant = g.make_grant("c1")
    assert grant.booked == ("d1",) and grant.account_positions == {"cn": {"SHFE.cu": 1}, "us": {"LME.CA3M": -1}}
    chk = PreTradeChecker(tk.instruments(), {}, g.capital.fx, name="c1")
    g.on_grant_ack(grant, chk.update_grant(grant))
    assert g.make_grant("c1").booked == ()


def test_rebuild_restores_positions_states_limits_alerts_and_open_reservations_from_the_ledger() -> None:
    # Arrange: a first guard runs, then "crashes"; its ledger is the MemorySink
    g1, sink, clock = core()
    chk = PreTradeChecker(tk.instruments(), {c: tk.venue(c) for c in ("SHFE", "LME")}, g1.capital.fx,
                          name="c1", sink=sink, clock=clock)
    g1.on_grant_ack(g := g1.make_grant("c1"), chk.update_grant(g))
    assert chk.check_pair(tk.pair_intent("d1"), clock.now_ns()).allowed
    g1.on_pair_done(summary("d1", a_avg="72400"))                 # booked + yellow slippage (throttle)
    assert chk.check_pair(tk.pair_intent("d2"), clock.now_ns()).allowed   # in flight at the crash
    g1.set_trading_state("strategy", "s9", "REDUCING", "alice")
    g1.set_limit("default_limits", None, "max_order_qty", "7", "alice")
    # Act: a new guard rebuilds; the venue says cn holds 2 SHFE cu (one more than the ledger)
    g2, sink2, _ = core()
    venue = {"cn": {"SHFE.cu": 2}, "us": {"LME.CA3M": -1}}
    rep = g2.rebuild(list(reversed(sink.events)), venue)
    # Assert
    assert rep.booked_pairs == 1
    assert g2.book.strategy["s1"] == {"SHFE.cu": 1, "LME.CA3M": -1}
    # d2 was in flight on cn: its fills may be what the venue holds beyond the ledger, so the
    # difference waits until d2 is booked instead of being booked to nobody now
    assert rep.in_flight == ["d2"] and rep.mismatches == []
    assert rep.deferred == [{"account": "cn", "instrument": "SHFE.cu", "ledger": 1, "venue": 2}]
    assert "venue:SHFE" not in g2.states
    # d2 ends without a fill (the actor then checks again): the difference is a mismatch
    vrep = g2.verify_positions(venue)
    assert g2.book.account["cn"]["SHFE.cu"] == 2 and g2.book.strategy["__unattributed__"] == {"SHFE.cu": 1}
    assert vrep.mismatches == [{"account": "cn", "instrument": "SHFE.cu", "ledger": 1, "venue": 2, "difference": 1}]
    # the mismatch is an orange alert on the account, whose action (REDUCING) applies to its venue
    assert g2.states == {"strategy:s9": TradingState.REDUCING, "venue:SHFE": TradingState.REDUCING}
    assert [(a.monitor, a.key, a.level.value) for a in g2.alerts.open_alerts() if a.monitor == "position_mismatch"] == [
        ("position_mismatch", "cn", "orange")]
    assert g2.cfg.default_limits.max_order_qty == 7
    assert g2.throttled == {"strategy:s1": "slippage:strategy:s1"}
    assert rep.open_reservations == {"c1": {"account:cn": Decimal("36000.0"), "account:us": Decimal("24500.0")}}
    assert g2.leases.counted["c1"]["account:cn"] == Decimal("36000.0")
    assert [e.reason for e in sink2.events if e.kind is EventKind.RECONCILE] == ["POSITION_MISMATCH", "POSITIONS_VERIFIED"]
    # booking the same pair again after the rebuild changes nothing
    g2.on_pair_done(summary("d1"))
    assert g2.book.strategy["s1"] == {"SHFE.cu": 1, "LME.CA3M": -1}


# -- a pair summarised twice (a fill after a confirmed cancel re-opens a finished pair) ---------------
def _late_fill_summary(did: str = "d1", *, a_filled: int = 2, state: str = "ESCALATED", ts_ns: int = 2) -> dict:
    s = summary(did, state=state, ts_ns=ts_ns)
    s["legs"][0] = {**s["legs"][0], "intended_qty": 1, "filled_qty": a_filled}
    return s


def _used(g, account: str) -> Decimal:
    return Decimal(g.status()["occupancy"][account]["used"])


def test_a_late_fill_summary_books_only_the_difference_in_positions_and_margin() -> None:
    # Arrange: the pair was booked HEDGED (1 lot each leg); one lot of leg A filled after its cancel
    g, sink, _ = core()
    g.on_pair_done(summary("d1", ts_ns=1))
    used_one_lot = _used(g, "cn")
    # Act: the coordinator re-opened the pair and summarises it again (leg A now 2 lots filled)
    out = g.on_pair_done(_late_fill_summary("d1", a_filled=2, ts_ns=2))
    # Assert
    assert g.book.account == {"cn": {"SHFE.cu": 2}, "us": {"LME.CA3M": -1}}
    assert g.book.strategy["s1"] == {"SHFE.cu": 2, "LME.CA3M": -1}
    assert _used(g, "cn") == 2 * used_one_lot and _used(g, "us") > 0
    booked = [e for e in sink.events if e.kind is EventKind.RISK_DECISION and e.reason == "BOOKED"]
    assert [leg["lots"] for leg in booked[-1].payload["legs"]] == [1]          # only the difference
    assert booked[-1].payload["legs"][0]["total"] == 2 and booked[-1].payload["revision"] is True
    assert out.regrant and g.make_grant("c1").booked == ("d1",)
    # the ESCALATED state of the revision is red on the strategy (its orders are not counted twice)
    assert any(a.monitor == "unhedged" and a.level.value == "red" for a in out.alerts)
    assert g.counters["revised_summary"] == 1


def test_the_same_summary_twice_changes_nothing() -> None:
    # Arrange
    g, sink, _ = core()
    g.on_pair_done(summary("d1", ts_ns=5))
    before = (g.book.snapshot(), _used(g, "cn"), len(sink.events))
    # Act
    out = g.on_pair_done(summary("d1", ts_ns=5))
    # Assert
    assert (g.book.snapshot(), _used(g, "cn"), len(sink.events)) == before
    assert not out.regrant and g.counters["duplicate_summary"] == 1


def test_an_older_summary_arriving_after_a_revision_is_ignored() -> None:
    # Arrange
    g, _, _ = core()
    g.on_pair_done(summary("d1", ts_ns=1))
    g.on_pair_done(_late_fill_summary("d1", a_filled=2, ts_ns=3))
    # Act: the first summary again, delivered late
    g.on_pair_done(summary("d1", ts_ns=1))
    # Assert
    assert g.book.account["cn"] == {"SHFE.cu": 2} and g.counters["stale_summary"] == 1


def _incremental(did: str = "d1", *, qty: int = 1, ts_ns: int = 9, trade: str = "T1") -> dict:
    """What a coordinator pushes for a late fill on a pair it no longer holds (leg A, BUY SHFE.cu)."""
    return {"decision_id": did, "strategy": "s1", "coordinator": "c1", "outcome": "ESCALATED", "ts_ns": ts_ns,
            "incremental": True, "trade_id": trade,
            "legs": [{"leg": "A", "instrument": "SHFE.cu", "account": "cn", "side": "BUY", "filled_qty": qty,
                      "avg_price": "72000"}]}


def test_an_incremental_summary_adds_its_lots_to_what_is_booked_and_survives_a_rebuild() -> None:
    # Arrange: d1 booked HEDGED (1 lot each leg)
    g, sink, _ = core()
    g.on_pair_done(summary("d1", ts_ns=1))
    # Act: one late lot on leg A, reported as an increment (not the pair's totals)
    out = g.on_pair_done(_incremental("d1", qty=1))
    # Assert: added, leg B untouched, the revision is red on the strategy
    assert g.book.account == {"cn": {"SHFE.cu": 2}, "us": {"LME.CA3M": -1}}
    booked = [e for e in sink.events if e.kind is EventKind.RISK_DECISION and e.reason == "BOOKED"][-1]
    assert booked.payload["incremental"] is True and [leg["lots"] for leg in booked.payload["legs"]] == [1]
    assert any(a.monitor == "unhedged" and a.level.value == "red" for a in out.alerts)
    assert g.counters["incremental_summary"] == 1
    # the same trade again (a repeated push) changes nothing; another trade adds
    g.on_pair_done(_incremental("d1", qty=1))
    assert g.book.account["cn"] == {"SHFE.cu": 2} and g.counters["duplicate_summary"] == 1
    g.on_pair_done(_incremental("d1", qty=1, trade="T2"))
    assert g.book.account["cn"] == {"SHFE.cu": 3}
    # a rebuild from the trail gives the same book, and the coordinators' stored increments,
    # fed to it again, are not booked twice
    g2, _, _ = core()
    g2.rebuild(sink.events, {"cn": {"SHFE.cu": 3}, "us": {"LME.CA3M": -1}},
               summaries=[_incremental("d1", qty=1), _incremental("d1", qty=1, trade="T2")])
    assert g2.book.account == g.book.account


def test_an_incremental_summary_for_a_pair_never_booked_books_its_lots() -> None:
    g, _, _ = core()
    g.on_pair_done(_incremental("d7", qty=2))
    assert g.book.account == {"cn": {"SHFE.cu": 2}}


def test_rebuild_after_a_revised_summary_restores_the_revised_positions_and_keeps_booking_differences() -> None:
    # Arrange: first guard books d1 then its revision, then "crashes"
    g1, sink, _ = core()
    g1.on_pair_done(summary("d1", ts_ns=1))
    g1.on_pair_done(_late_fill_summary("d1", a_filled=2, ts_ns=2))
    # Act
    g2, sink2, _ = core()
    rep = g2.rebuild(sink.events, {"cn": {"SHFE.cu": 2}, "us": {"LME.CA3M": -1}})
    g2.on_pair_done(_late_fill_summary("d1", a_filled=2, ts_ns=2))            # duplicate of the revision
    g2.on_pair_done(_late_fill_summary("d1", a_filled=3, ts_ns=4))            # yet another late lot
    # Assert
    assert (rep.booked_pairs, rep.bookings, rep.mismatches) == (1, 2, [])
    assert g2.book.account == {"cn": {"SHFE.cu": 3}, "us": {"LME.CA3M": -1}}
    assert g2.counters["duplicate_summary"] == 1 and g2.counters["revised_summary"] == 1
    rebuilt = [e for e in sink2.events if e.kind is EventKind.RISK_DECISION and e.reason == "REBUILT"]
    assert rebuilt[0].payload["events_read"] == rep.events_read and rebuilt[0].payload["bookings"] == 2


# -- restart: coordinators, grant seq, venues that did not answer, failed reads ----------------------
def test_a_restarted_guard_grants_past_the_seq_its_previous_life_reached() -> None:
    # Arrange: the checker holds grant seq 3 from the first guard
    g1, _, _ = core()
    chk = PreTradeChecker(tk.instruments(), {}, g1.capital.fx, name="c1")
    for _ in range(3):
        g1.on_grant_ack(gr := g1.make_grant("c1"), chk.update_grant(gr))
    g2, _, _ = core()
    # Act: the new guard's first grant (seq 1) is ignored by the checker; the ack says so
    first = g2.make_grant("c1")
    again = g2.on_grant_ack(first, chk.update_grant(first))
    second = g2.make_grant("c1")
    g2.on_grant_ack(second, ack := chk.update_grant(second))
    # Assert
    assert again is True and first.seq == 1
    assert second.seq == 4 and ack.seq == 4 and chk.grant is second


def test_rebuild_registers_the_coordinators_of_the_previous_life_with_their_weights() -> None:
    # Arrange
    g1, sink, _ = core()
    g1.register_coordinator("c2", Decimal("3"))
    # Act
    g2, _, _ = core()
    rep = g2.rebuild(sink.events, {})
    # Assert
    assert rep.coordinators == {"c1": Decimal(1), "c2": Decimal(3)}
    assert g2.leases.weights == {"c1": Decimal(1), "c2": Decimal(3)}


def test_rebuild_keeps_the_ledger_positions_of_a_venue_that_did_not_answer_and_names_it() -> None:
    # Arrange
    g1, sink, _ = core()
    g1.on_pair_done(summary("d1"))
    # Act: only SHFE answered (and agrees); LME's gateway was down
    g2, sink2, _ = core()
    rep = g2.rebuild(sink.events, {"cn": {"SHFE.cu": 1}}, venues=["SHFE"])
    # Assert
    assert rep.mismatches == [] and rep.unverified_venues == ["LME"]
    assert g2.book.account == {"cn": {"SHFE.cu": 1}, "us": {"LME.CA3M": -1}}
    assert not [e for e in sink2.events if e.kind is EventKind.RECONCILE]


def test_a_failed_rebuild_refuses_new_entries_but_lets_rollbacks_through_with_a_red_alert() -> None:
    # Arrange
    g, sink, clock = core()
    chk = PreTradeChecker(tk.instruments(), {c: tk.venue(c) for c in ("SHFE", "LME")}, g.capital.fx, name="c1")
    # Act
    out = g.rebuild_failed("read_trail: shard ledger-0 did not answer: ActorDiedError")
    g.on_grant_ack(gr := g.make_grant("c1"), chk.update_grant(gr))
    # Assert
    assert g.states == {"global": TradingState.REDUCING} and out.state_changes == [("global", None, TradingState.REDUCING)]
    assert [(a.monitor, a.level.value, a.action.value) for a in out.alerts] == [("rebuild", "red", "reduce")]
    assert "ledger-0" in out.alerts[0].message
    r = chk.check_pair(tk.pair_intent("d9"), clock.now_ns())
    assert not r.allowed and "TRADING_REDUCING" in [d.code for d in r.denials]
    assert chk.allows_order("s1", "SHFE", "SHFE.cu", True, clock.now_ns()) is None      # a rollback order
    failed = [e for e in sink.events if e.kind is EventKind.RISK_DECISION and e.reason == "REBUILD_FAILED"]
    assert failed and "ledger-0" in failed[0].payload["error"]


def test_rebuild_books_the_summaries_pushed_while_the_guard_was_down_before_comparing_with_the_venues() -> None:
    # Arrange: d1 booked before the crash; d2 finished while the guard was down (its push was lost)
    g1, sink, _ = core()
    g1.on_pair_done(summary("d1"))
    d2 = summary("d2")
    # Act: the coordinator still holds both summaries; the venues hold both pairs
    g2, _, _ = core()
    rep = g2.rebuild(sink.events, {"cn": {"SHFE.cu": 2}, "us": {"LME.CA3M": -2}}, summaries=[summary("d1"), d2])
    # Assert
    assert rep.caught_up == 1 and rep.mismatches == []
    assert g2.book.strategy["s1"] == {"SHFE.cu": 2, "LME.CA3M": -2}


# -- a rebuild never dies on one event it cannot read --------------------------------------------------
def _escalated_pair_trail():
    """A coordinator (pure core, fake venues) escalates d1: leg A filled, leg B's venue silent.
    Returns its trail (with its red ALERT) and the summaries it pushed."""
    from pair_harness import Behaviour, Harness

    from xmc_actors.model import ExecutionMode

    h = Harness({i: tk.instrument(i) for i in ("SHFE.cu", "LME.CA3M")},
                {"SHFE": Behaviour(), "LME": Behaviour(silent_after_ms=0.0)})
    h.submit(tk.pair_intent("d1", a=("SHFE.cu", "BUY", 2, "72000"), b=("LME.CA3M", "SELL", 2, "9800"),
                            mode=ExecutionMode.SPEED))
    h.drain()
    return h.sink.events, h.done


def test_rebuild_from_a_trail_with_a_coordinators_escalation_alert_restores_positions_and_states() -> None:
    # Arrange: the guard books d0 (hedged) and the escalated d1 (its red unhedged alert halts s1);
    # the ledger also holds the coordinator's own red ALERT for d1, in today's shape and in the
    # shape written before it carried an alert_id (level and residual only: what broke rebuilds)
    from xmc_actors.core.clock import SimClock
    from xmc_actors.core.sink import EventMaker

    coord_trail, pushed = _escalated_pair_trail()
    coord_alerts = [e for e in coord_trail if e.kind is EventKind.ALERT]
    assert len(coord_alerts) == 1 and coord_alerts[0].payload["alert_id"] == "d1:escalated"
    assert coord_alerts[0].payload["source"] == "coordinator" and coord_alerts[0].payload["key"] == "s1"
    legacy = EventMaker(SimClock(coord_alerts[0].ts_ns), "coordinator").make(
        EventKind.ALERT, decision_id="d1", strategy="s1", reason="rollback attempts spent", level="red",
        residual={"legs": {"A": {"net": 2, "residual": 2}}})
    g1, sink, _ = core()
    g1.on_pair_done(summary("d0"))
    g1.on_pair_done(pushed[-1])
    assert g1.states == {"strategy:s1": TradingState.HALTED}
    trail = sink.events + coord_trail + [legacy]
    # Act
    g2, sink2, _ = core()
    rep = g2.rebuild(trail, g1.book.account)
    # Assert: positions, states and the guard's own open alerts as before the crash
    assert g2.book.snapshot() == g1.book.snapshot() == ({"cn": {"SHFE.cu": 3}, "us": {"LME.CA3M": -1}},
                                                        {"s1": {"SHFE.cu": 3, "LME.CA3M": -1}})
    assert g2.states == g1.states
    assert {(a.monitor, a.key, a.level) for a in g2.alerts.open_alerts()} == \
        {(a.monitor, a.key, a.level) for a in g1.alerts.open_alerts()}
    assert (rep.booked_pairs, rep.coordinator_alerts, rep.skipped, rep.mismatches) == (2, 2, 0, [])
    assert not [e for e in sink2.events if e.kind is EventKind.BAD_INPUT]


def test_a_rebuild_skips_each_event_it_cannot_read_records_it_and_restores_everything_else() -> None:
    # Arrange: a first guard's trail, then garbage of every kind the rebuild reads
    from xmc_actors.core.sink import EventMaker

    g1, sink, clock = core()
    g1.on_pair_done(summary("d1", a_avg="72400"))           # booked + yellow slippage (throttle)
    g1.set_trading_state("strategy", "s9", "REDUCING", "alice")
    g1.set_limit("default_limits", None, "max_order_qty", "7", "alice")
    g1.register_coordinator("c2", Decimal(2))
    mk = EventMaker(clock, "risk-guard")
    leg_ok = {"account": "cn", "instrument": "SHFE.cu", "lots": 5, "price": "72000"}
    garbage = [
        # the second leg is unreadable: the first must not be booked either (all or nothing)
        mk.make(EventKind.RISK_DECISION, decision_id="g1", strategy="s1", reason="BOOKED",
                legs=[leg_ok, {"account": "us", "instrument": "LME.CA3M", "lots": "1.5"}]),
        mk.make(EventKind.RISK_DECISION, decision_id="g2", strategy="s1", reason="BOOKED", legs=[{"lots": 1}]),
        mk.make(EventKind.RISK_DECISION, decision_id="g3", strategy="s1", reason="BOOKED", legs="nonsense"),
        mk.make(EventKind.RISK_DECISION, decision_id="g4", strategy="s1", reason="BOOKED",
                legs=[{**leg_ok, "price": "not-a-price"}]),
        mk.make(EventKind.RISK_DECISION, decision_id="g5", reason="ACCEPTED", coordinator="c1", reservation={"x": "?"}),
        mk.make(EventKind.OPERATOR, action="trading_state", scope="strategy", key="s1", state="BOGUS"),
        mk.make(EventKind.OPERATOR, action="trading_state", state="HALTED"),
        mk.make(EventKind.OPERATOR, action="set_limit", section="default_limits", field="max_order_qty", value="-3"),
        mk.make(EventKind.ALERT, monitor="slippage", scope="strategy", key="s1", level="purple"),
        mk.make(EventKind.ALERT, monitor="slippage", scope="strategy", key="s2", level="red"),   # no alert_id
        mk.make(EventKind.LIFECYCLE, reason="COORDINATOR_REGISTERED", coordinator="c3", weight="heavy"),
    ]
    # Act
    g2, sink2, _ = core()
    rep = g2.rebuild(sink.events + garbage + [{"kind": "NOT_A_KIND"}], {"cn": {"SHFE.cu": 1}, "us": {"LME.CA3M": -1}})
    # Assert: everything readable is restored as before
    assert g2.book.snapshot() == g1.book.snapshot()
    assert g2.states == g1.states == {"strategy:s9": TradingState.REDUCING}
    assert g2.throttled == g1.throttled == {"strategy:s1": "slippage:strategy:s1"}
    assert g2.cfg.default_limits.max_order_qty == 7
    assert g2.leases.weights == {"c1": Decimal(1), "c2": Decimal(2)}
    assert {a.key for a in g2.alerts.open_alerts()} == {"s1"} and rep.open_reservations == {}
    assert (rep.booked_pairs, rep.mismatches) == (1, [])
    # each unreadable event is skipped, counted and recorded
    assert rep.skipped == len(garbage) + 1 == len(rep.skipped_events)
    assert {s["event_id"] for s in rep.skipped_events} >= {e.event_id for e in garbage}
    bad = [e for e in sink2.events if e.kind is EventKind.BAD_INPUT]
    assert len(bad) == rep.skipped and all(e.reason.startswith("rebuild: ") for e in bad)
    assert any("legs[1].lots: '1.5'" in e.reason for e in bad)
    rebuilt = [e for e in sink2.events if e.kind is EventKind.RISK_DECISION and e.reason == "REBUILT"]
    assert rebuilt[0].payload["skipped"] == rep.skipped


def test_a_venue_position_that_is_not_a_number_leaves_that_venue_unverified_instead_of_failing_the_rebuild() -> None:
    g1, sink, _ = core()
    g1.on_pair_done(summary("d1"))
    g2, sink2, _ = core()
    rep = g2.rebuild(sink.events, {"cn": {"SHFE.cu": "lots"}, "us": {"LME.CA3M": -1}})
    assert g2.book.account == {"cn": {"SHFE.cu": 1}, "us": {"LME.CA3M": -1}}
    assert rep.unverified_venues == ["SHFE"] and rep.mismatches == []
    assert len([e for e in sink2.events if e.kind is EventKind.BAD_INPUT]) == 1


def test_a_venue_reduced_automatically_while_down_is_active_again_when_it_answers() -> None:
    # Arrange: the venue's connection drops: orange alert, automatic REDUCING of the venue
    g, sink, clock = core()
    out = g.on_gateway_status("LME", {"state": "DOWN"})
    assert g.states == {"venue:LME": TradingState.REDUCING}
    assert (("venue", "LME", TradingState.REDUCING) in out.state_changes)
    # Act: it answers again
    clock.advance(1_000_000)
    out = g.on_gateway_status("LME", {"state": "UP"})
    # Assert: lifted by the monitor that set it, and recorded as such
    assert g.states == {} and ("venue", "LME", TradingState.ACTIVE) in out.state_changes
    ops = [e.payload for e in sink.events if e.kind is EventKind.OPERATOR]
    assert ops[-1]["state"] == "ACTIVE" and ops[-1]["operator"] == "auto:venue_state" and ops[-1]["auto"] is True


def test_a_guard_rebuilt_while_a_venue_was_down_lifts_its_reducing_when_told_the_venue_is_up() -> None:
    """Found by the chaos suite (group, seed 11, in CI): the gateway came back while the risk
    guard was dead, so the guard never heard UP, and SHFE stayed REDUCING for the rest of the
    run. A rebuilt guard asks the coordinators for each venue's state (actor shell); this is
    the core half: the rebuilt alert and state are lifted by that answer."""
    # Arrange: LME down (automatic REDUCING); the guard dies; a new one is rebuilt from the trail
    g1, sink, clock = core()
    g1.on_gateway_status("LME", {"state": "DOWN"})
    g2, sink2, clock2 = core()
    g2.rebuild(list(sink.events), {})
    assert g2.states == {"venue:LME": TradingState.REDUCING}
    # Act: the state the coordinator's probes see now
    clock2.advance(5_000_000_000)
    out = g2.on_gateway_status("LME", {"state": "UP"})
    # Assert
    assert g2.states == {} and ("venue", "LME", TradingState.ACTIVE) in out.state_changes


def test_an_operators_halt_of_a_venue_is_not_lifted_when_the_venue_answers_again() -> None:
    # Arrange: down (automatic REDUCING), then an operator halts the venue
    g, _, clock = core()
    g.on_gateway_status("LME", {"state": "DOWN"})
    g.set_trading_state("venue", "LME", TradingState.HALTED, "alice", "until the broker explains")
    # Act
    clock.advance(1_000_000)
    g.on_gateway_status("LME", {"state": "UP"})
    # Assert: the operator's decision stands
    assert g.states == {"venue:LME": TradingState.HALTED}



def test_a_difference_that_a_pair_in_flight_at_the_crash_explains_is_no_mismatch_once_it_is_booked() -> None:
    # Arrange: d1 accepted and in flight when the guard died; the venue already holds its fills
    g1, sink, clock = core()
    chk = PreTradeChecker(tk.instruments(), {c: tk.venue(c) for c in ("SHFE", "LME")}, g1.capital.fx,
                          name="c1", sink=sink, clock=clock)
    g1.on_grant_ack(g := g1.make_grant("c1"), chk.update_grant(g))
    assert chk.check_pair(tk.pair_intent("d1"), clock.now_ns()).allowed
    g2, sink2, _ = core()
    venue = {"cn": {"SHFE.cu": 1}, "us": {"LME.CA3M": -1}}
    rep = g2.rebuild(list(sink.events), venue)
    assert rep.in_flight == ["d1"] and rep.mismatches == [] and len(rep.deferred) == 2
    # Act: its summary arrives (the coordinator finished it), then the positions are checked again
    g2.on_pair_done(summary("d1"))
    rep = g2.verify_positions(venue)
    # Assert: nothing booked to nobody, no alert, no state change
    assert rep.mismatches == [] and "__unattributed__" not in g2.book.strategy
    assert g2.book.account["cn"]["SHFE.cu"] == 1 and g2.states == {}
    assert not [a for a in g2.alerts.open_alerts() if a.monitor == "position_mismatch"]


def test_a_rebuild_while_the_deployment_trades_only_notes_differences_until_they_are_checked_again() -> None:
    # Arrange: the ledger says cn holds 1 SHFE cu; the venue, read a moment later, says 2 (a pair
    # accepted and filled between the two reads would look exactly like this)
    g1, sink, clock = core()
    g1.on_pair_done(summary("d1"))
    g2, sink2, _ = core()
    venue = {"cn": {"SHFE.cu": 2}, "us": {"LME.CA3M": -1}}
    # Act
    rep = g2.rebuild(list(sink.events), venue, defer_all=True)
    # Assert: noted, not acted on: no mismatch, nothing booked to nobody, no alert, no state
    assert rep.mismatches == [] and rep.deferred == [{"account": "cn", "instrument": "SHFE.cu", "ledger": 1, "venue": 2}]
    assert "__unattributed__" not in g2.book.strategy and g2.states == {}
    # a dry check lists it and records nothing; the check that acts makes it a mismatch
    dry = g2.verify_positions(venue, act=False)
    assert dry.deferred == rep.deferred and not [e for e in sink2.events if e.kind is EventKind.RECONCILE]
    assert g2.verify_positions(venue).mismatches[0]["difference"] == 1
    assert g2.states == {"venue:SHFE": TradingState.REDUCING}


def test_a_position_set_to_the_venues_is_replayed_so_the_next_rebuild_agrees() -> None:
    # Arrange: a life whose ledger said 1 lot while the venue held 3: set to the venue's
    g1, sink, _ = core()
    g1.on_pair_done(summary("d1"))
    venue = {"cn": {"SHFE.cu": 3}, "us": {"LME.CA3M": -1}}
    g2, sink2, _ = core()
    first = g2.rebuild(list(sink.events), venue)
    assert [m["difference"] for m in first.mismatches] == [2]
    # Act: the next life reads both trails (the POSITION_MISMATCH record among them)
    g3, _, _ = core()
    again = g3.rebuild(list(sink.events) + list(sink2.events), venue)
    # Assert: the earlier setting is replayed; the venue agrees; the lots are nobody's still
    assert again.mismatches == [] and again.corrections == 1
    assert g3.book.account["cn"]["SHFE.cu"] == 3 and g3.book.strategy["__unattributed__"]["SHFE.cu"] == 2


def test_an_accepted_start_of_day_is_recorded_with_its_operator_and_differences_and_replays_harmlessly() -> None:
    g, sink, _ = core()
    accepted = {"differences": [{"account": "cn", "instrument": "SHFE.cu", "ledger": 0, "venue": 3, "difference": 3}],
                "unverified_venues": ["LME"], "funds": [], "accepted_note": "checked with the broker",
                "trigger": "start"}
    ev = g.record_acceptance("alice", "start-of-day differences accepted", accepted)
    assert ev.kind is EventKind.OPERATOR and ev.payload["action"] == "accept_positions"
    assert ev.payload["operator"] == "alice" and ev.payload["note"] == "checked with the broker"
    assert ev.payload["differences"][0]["venue"] == 3 and ev.payload["unverified_venues"] == ["LME"]
    with pytest.raises(ValueError):
        g.record_acceptance(" ", "x", accepted)  # who accepted is required
    g2, _, _ = core()
    rep = g2.rebuild(sink.events, {})
    assert rep.skipped == 0  # the acceptance is read back without complaint, and changes no state
    assert g2.states == g.states
