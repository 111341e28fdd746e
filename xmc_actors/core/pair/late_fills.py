"""A fill for a pair no longer held whole (evicted, or recovered as finished): escalated, never
lost (mixed into :class:`~.book.PairBook`)."""
from __future__ import annotations

from typing import TYPE_CHECKING


from ...model.events import EventKind
from ...model.orders import (
    ExecReportKind, ExecutionReport,
)
from ...model.pairs import PairState
from .commands import HaltStrategy, NotifyDone
from .summary import escalation_alert, leg_summary, pair_summary
from .table import Trigger, transition

if TYPE_CHECKING:
    pass

class LateFills:
    """:meth:`_forgotten_report`."""

    def _forgotten_report(self, did: str, leg_name: str, rep: ExecutionReport) -> None:
        """A report for an order of a pair evicted from memory. Recorded under its decision id; a
        fill (the venue filled after the pair had finished, long enough ago to be forgotten) is
        exposure no pair hedges any more: the pair is escalated as a live one would be (red
        alert, ESCALATION with the residual, strategy halted) and the fill is pushed to the
        strategy and the risk guard as an *incremental* summary (``incremental: True``: its
        legs are what to add to what is booked for the pair, not the pair's totals)."""
        t = self.forgotten[did]
        coid = rep.client_order_id
        fill = rep.fill if rep.kind is ExecReportKind.FILL else None
        leg = next((lg for lg in t.legs if lg[0] == leg_name and lg[1] == rep.instrument), None)
        fresh = fill is not None and leg is not None and fill.trade_id not in (t.trades or ())
        self._write_spec(dict(
            kind=EventKind.ORDER_REPORT, decision_id=did, strategy=t.strategy, account=leg[2] if leg else "",
            venue=rep.venue, instrument=rep.instrument, ts_ns=self.clock.now_ns(),
            reason="report for a pair no longer held in memory", source="push", client_order_id=coid,
            report_kind=rep.kind.value, status=rep.status.value, forgotten=True, late_fill=fresh,
            trade_id=fill.trade_id if fill else "", fill_qty=fill.qty if fill else 0,
            fill_price=str(fill.price) if fill else ""))
        if fill is None:
            return
        if leg is None:
            self._bad_input("report", f"fill on {coid}: leg {leg_name!r} on {rep.instrument!r} is not a leg "
                                      f"of forgotten pair {did}", did)
            return
        if not fresh:
            return  # the same trade pushed again: applied once
        if t.trades is None:
            t.trades, t.residual = set(), {}
        t.trades.add(fill.trade_id)
        name, inst, account, side = leg
        signed = fill.qty * fill.side.sign
        assert t.residual is not None
        t.residual[name] = t.residual.get(name, 0) + signed
        reason = (f"late fill: {fill.side.value} {fill.qty} {inst} @ {fill.price} on {coid} after pair {did} "
                  f"finished {t.state.value} and is no longer held whole (keep_finished_pairs, or a coordinator "
                  "restart); nothing hedges it")
        residual = dict(t.residual)
        now = self.clock.now_ns()
        common = dict(decision_id=did, strategy=t.strategy, account=account, venue=rep.venue, instrument=inst,
                      ts_ns=now, reason=reason)
        if t.state is not PairState.ESCALATED:
            before = t.state
            t.state = transition(before, Trigger.LATE_FILL_FORGOTTEN, PairState.ESCALATED, f"pair {did}", reason)
            self._write_spec(dict(common, kind=EventKind.PAIR_STATE, state=PairState.ESCALATED.value,
                                  to=PairState.ESCALATED.value, **{"from": before.value}))
        shell = self.pairs.get(did)  # a pair recovered as finished keeps an order-less machine: it says so too
        if shell is not None and shell.state is not PairState.ESCALATED:
            shell._mark(Trigger.LATE_FILL_FORGOTTEN, PairState.ESCALATED, reason)
        self._write_spec(dict(common, kind=EventKind.ALERT, **escalation_alert(
            did, t.strategy, reason, now, sum(abs(v) for v in residual.values()), residual=residual)))
        self._write_spec(dict(common, kind=EventKind.ESCALATION, residual=residual))
        self.halt_scope("strategy", t.strategy)
        self.out.append(HaltStrategy(t.strategy, did, reason))
        entry = fill.side is side
        self.out.append(NotifyDone(t.strategy, pair_summary(
            did, t.strategy, self.owner, PairState.ESCALATED, ts_ns=now, reason=reason, residual=residual,
            incremental=True, trade_id=fill.trade_id,
            legs=[leg_summary(name, inst, account, side, filled=fill.qty if entry else 0,
                              net=fill.qty if entry else -fill.qty,
                              avg_price=fill.price if entry else None,
                              rollback_avg_price=None if entry else fill.price)])))
