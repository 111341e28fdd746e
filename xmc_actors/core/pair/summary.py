"""The one place pair summaries are made, and the escalation alert's payload."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any


from ...model.events import Event
from ...model.market import Instrument, Side
from ...model.pairs import LegIntent, LegSummary, PairState, PairSummary
from ..alerts import PAIR_ESCALATION, coordinator_alert


if TYPE_CHECKING:
    from .machine import PairMachine

def escalation_alert(decision_id: str, strategy: str, reason: str, now_ns: int, residual_lots: int,
                     **extra: Any) -> dict[str, Any]:
    """The payload of the red ALERT of an escalated pair: the shape of the risk guard's alerts
    (``alert_id`` ``<decision id>:escalated``, monitor ``pair_escalation``, scope ``strategy``,
    action ``halt``), marked ``source: "coordinator"``, with the residual; ``value`` is the
    largest residual of a leg, in its lots."""
    return coordinator_alert(alert_id=f"{decision_id}:escalated", monitor=PAIR_ESCALATION, strategy=strategy,
                             level="red", action="halt", message=reason, value=residual_lots, threshold=0.0,
                             opened_ns=now_ns, **extra)


def _trail_summary(m: PairMachine, end: Event) -> PairSummary | None:
    """The summary of a pair that finished before a restart, from its last ``PAIR_STATE``: each
    leg's net lots (in the leg's own direction) at the end, stamped with that event's time."""
    nets = end.payload.get("nets") or {}
    legs = []
    for leg in m.legs:
        try:
            net = int(nets[leg.name])
        except (KeyError, TypeError, ValueError):
            return None
        legs.append(leg_summary(leg.name, leg.spec.instrument, leg.spec.account, leg.spec.side,
                                filled=max(net, 0), net=net, intended_qty=leg.spec.qty, target_qty=leg.target))
    return pair_summary(m.did, m.intent.strategy, m.book.owner, m.state, legs=legs, ts_ns=end.ts_ns,
                        mode=m.intent.mode, reason=str(end.reason or ""), recovered=True,
                        complete=m.state is PairState.HEDGED, started_ns=m.started_ns, ended_ns=end.ts_ns)


def leg_summary(leg: str, instrument: str, account: str, side: Side, *, filled: int, net: int,
                **extra: Any) -> LegSummary:
    """One leg of a pair summary: ``filled`` lots by the leg's own orders, ``net`` lots held in
    the leg's own direction once its unwinds are counted. ``rollback_qty`` and the signed
    ``net_qty`` are derived from them here, so the two can never disagree (lots bought back on
    the leg's own side count as filled)."""
    filled = max(filled, net)
    return LegSummary(leg=leg, instrument=instrument, account=account, side=side, filled_qty=filled,
                      rollback_qty=filled - net, net_qty=side.sign * net, **extra)


def pair_summary(decision_id: str, strategy: str, coordinator: str, state: PairState, *,
                 legs: list[LegSummary], ts_ns: int, **extra: Any) -> PairSummary:
    """Every pair summary the coordinator pushes is made here: a finished or revised pair
    (:meth:`PairMachine.summary`), one recovered from the ledger after a restart
    (``recovered=True``) and a late fill on a pair no longer held (``incremental=True``,
    ``trade_id``). See :class:`~xmc_actors.model.pairs.PairSummary` for the fields."""
    return PairSummary(decision_id=decision_id, strategy=strategy, coordinator=coordinator, state=state.value,
                       legs=legs, ts_ns=ts_ns, **extra)


def _placeholder(lg: LegIntent) -> Instrument:
    sym = re.sub(r"[^A-Za-z0-9_.\-]", "_", lg.instrument)[:32] or "x"
    return Instrument(venue="UNKNOWN", symbol=sym, currency="USD",
                      price_unit="t", multiplier=Decimal(1), tick_size=Decimal(1))
