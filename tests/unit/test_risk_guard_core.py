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
    rep = g2.rebuild(list(reversed(sink.events)), {"cn": {"SHFE.cu": 2}, "us": {"LME.CA3M": -1}})
    # Assert
    assert rep.booked_pairs == 1
    assert g2.book.strategy["s1"] == {"SHFE.cu": 1, "LME.CA3M": -1}
    assert g2.book.account["cn"]["SHFE.cu"] == 2 and g2.book.strategy["__unattributed__"] == {"SHFE.cu": 1}
    assert rep.mismatches == [{"account": "cn", "instrument": "SHFE.cu", "ledger": 1, "venue": 2}]
    assert g2.states == {"strategy:s9": TradingState.REDUCING}
    assert g2.cfg.default_limits.max_order_qty == 7
    assert g2.throttled == {"strategy:s1": "slippage:strategy:s1"}
    assert rep.open_reservations == {"c1": {"account:cn": Decimal("36000.0"), "account:us": Decimal("24500.0")}}
    assert g2.leases.counted["c1"]["account:cn"] == Decimal("36000.0")
    assert [e.reason for e in sink2.events if e.kind is EventKind.RECONCILE] == ["POSITION_MISMATCH"]
    # booking the same pair again after the rebuild changes nothing
    g2.on_pair_done(summary("d1"))
    assert g2.book.strategy["s1"] == {"SHFE.cu": 1, "LME.CA3M": -1}
