"""Rollback and the endings of a pair: the unwind orders, HEDGED/ROLLED_BACK, the sub-lot
residual book, escalation with the exact residual, and the summary pushed at the end."""
from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any


from ...model.events import EventKind
from ...model.market import Side
from ...model.orders import (
    OrderStatus, OrderType, RejectReason, TimeInForce,
)
from ...model.pairs import PairState, PairSummary
from ..sizing import balanced_size, is_balanced
from .commands import CancelTimers, HaltStrategy, NotifyDone, TimerKey, TimerKind
from .summary import escalation_alert, leg_summary, pair_summary
from .table import Trigger

if TYPE_CHECKING:
    pass

BPS = Decimal(10_000)



#: denials that pass by themselves: an unwind refused for one of these is tried again after
#: UNWIND_RETRY_NS instead of being escalated (HALTED and the like are final)
TRANSIENT_DENIALS = frozenset({"ORDER_RATE_EXCEEDED", "NO_GRANT", "GRANT_EXPIRED"})
#: a venue's rejects of an unwind that say nothing of its price or the position (its session
#: dropped, a throttle): the unwind is sent again after UNWIND_RETRY_NS without spending an
#: attempt. Three spent in 160 ms on a venue whose session had just dropped escalated a pair
#: that one more try a moment later would have rolled back (chaos, per-venue seed 23)
TRANSIENT_REJECTS = frozenset({RejectReason.VENUE_ERROR, RejectReason.THROTTLED})
UNWIND_RETRY_NS = 200_000_000
UNWIND_RETRY_SLACK_NS = 20_000_000


class Endings:
    """Mixed into :class:`~.machine.PairMachine`: everything from the decision to unwind to the end."""

    def _rollback_targets(self) -> tuple[int, int]:
        a, b = self.legs
        return balanced_size(min(a.net, a.target), min(b.net, b.target), self.intent.hedge_ratio,
                             a.inst.lot_size, b.inst.lot_size)

    def _needs_unwind(self) -> bool:
        ta, tb = self._rollback_targets()
        return self.legs[0].net != ta or self.legs[1].net != tb

    def _begin_rollback(self) -> None:
        # The time budget starts again with each rollback, but the unwind orders per leg
        # (rollback.max_attempts) are counted over the pair's whole life: a late fill that
        # re-opens a finished pair unwinds with what is left, then escalates. Resetting them
        # let a venue that late-fills every cancelled unwind re-open the pair forever.
        self.rollback_started_ns = self.book.clock.now_ns()
        self._timer(TimerKey(TimerKind.ROLLBACK), self.intent.rollback.max_time_ms * 1_000_000)

    def _drive_rollback(self) -> None:
        if any(lg.live_order() for lg in self.legs):
            return
        targets = self._rollback_targets()
        if not self._needs_unwind():  # a late fill may have done it during an unwind's wait
            self._finish(self.reason or "rolled back")
            return
        if self.book.clock.now_ns() < self.unwind_retry_at_ns:
            return  # an unwind retry's wait: its timer drives the rollback on
        policy = self.intent.rollback
        spent = [(leg, leg.net - t) for leg, t in zip(self.legs, targets)
                 if leg.net != t and leg.unwinds >= policy.max_attempts]
        if spent and self._sub_lot_residual():
            leg, delta = spent[0]
            self._book_residual(f"leg {leg.name}: rollback attempts spent, {delta} lots left to unwind")
            return
        for leg, target in zip(self.legs, targets):
            delta = leg.net - target
            if delta == 0:
                continue
            last = leg.orders[-1] if leg.orders else None
            if last is not None and last.unwind and not last.retry_counted \
                    and last.state.status is OrderStatus.REJECTED and last.state.reject_reason in TRANSIENT_REJECTS:
                # the venue could not take it just now: the attempt is given back and the unwind
                # sent again shortly (the rollback time budget still bounds the whole)
                last.retry_counted = True
                leg.unwinds -= 1
                self._emit(EventKind.RECONCILE, leg=leg, client_order_id=last.coid, action="unwind_retry",
                           reason=f"unwind rejected {last.state.reject_reason.value}: sent again in "
                                  f"{UNWIND_RETRY_NS // 1_000_000} ms, no attempt spent")
                self._unwind_retry_later()
                return
            if leg.unwinds >= policy.max_attempts:
                self._escalate(f"leg {leg.name}: rollback attempts spent, {delta} lots left to unwind")
                return
            wait = self._unwind_pace_ns(leg) if last is not None and last.unwind and not last.paced \
                and not last.retry_counted else 0
            if wait > 0:
                # the leg's last unwind left lots undone: the next waits for the book to refill
                # (an IOC sent at once meets the book the last one emptied)
                for lg in self.legs:
                    if lg.orders and lg.orders[-1].unwind:
                        lg.orders[-1].paced = True
                self._unwind_retry_later(wait)
                return
            leg.unwinds += 1
            side = leg.spec.side.opposite if delta > 0 else leg.spec.side
            ticks = math.ceil(leg.unwinds * policy.max_slippage_ticks / policy.max_attempts)
            ticks = min(ticks, self._bps_ticks(leg, policy.max_slippage_bps))
            px = leg.ref_price + side.sign * ticks * leg.inst.tick_size
            px = max(leg.inst.round_price(px, "down" if side is Side.BUY else "up"), leg.inst.tick_size)
            req = self._new_request(leg, side, abs(delta), px, OrderType.IOC, TimeInForce.IOC, True)
            self._emit(EventKind.ROLLBACK, leg=leg, client_order_id=req.client_order_id, qty=abs(delta),
                       side=side.value, price=str(px), attempt=leg.unwinds, slippage_ticks=ticks,
                       latency_us=None)
            if not self._send(leg, req, unwind=True):
                if self.last_denial is not None and self.last_denial.code in TRANSIENT_DENIALS:
                    # a passing refusal (no grant yet after a restart, the order rate): the unwind
                    # is tried again shortly, without spending an attempt; the rollback time
                    # budget still bounds it (its timer escalates or books the residual)
                    leg.unwinds -= 1
                    self._unwind_retry_later()
                    return
                if self._sub_lot_residual():
                    self._book_residual(f"leg {leg.name}: unwind order denied")
                else:
                    self._escalate(f"leg {leg.name}: unwind order denied")
                return

    def _unwind_pace_ns(self, leg: Any) -> int:
        """The wait before ``leg``'s next unwind: ``rollback.retry_after_ms``, but never more than
        an even share of what is left of the rollback's time budget, so that the waits leave each
        remaining attempt its turn."""
        policy = self.intent.rollback
        if not policy.retry_after_ms:
            return 0
        left = self.rollback_started_ns + policy.max_time_ms * 1_000_000 - self.book.clock.now_ns()
        attempts_left = max(policy.max_attempts - leg.unwinds, 0)
        return max(min(policy.retry_after_ms * 1_000_000, left // (attempts_left + 1)), 0)

    def _unwind_retry_later(self, wait_ns: int = UNWIND_RETRY_NS) -> None:
        """No unwind before ``wait_ns`` from now, whatever else drives the rollback meanwhile;
        the UNWIND_RETRY timer then drives it on."""
        self.unwind_retry_at_ns = self.book.clock.now_ns() + wait_ns
        self._timer(TimerKey(TimerKind.UNWIND_RETRY), wait_ns)

    # -- endings ---------------------------------------------------------------------------
    def _finish(self, reason: str, trigger: Trigger | None = None) -> None:
        """End HEDGED (nets balanced, not flat) or ROLLED_BACK (flat). The trigger follows from
        where the pair is: both legs filled (WORKING/REPLENISHING), stopped (WINDING_DOWN),
        unwound (ROLLING_BACK), unless the caller names it (a residual booked)."""
        flat = all(lg.net == 0 for lg in self.legs)
        target = PairState.ROLLED_BACK if flat else PairState.HEDGED
        if trigger is None:
            trigger = {PairState.WINDING_DOWN: Trigger.STOPPED,
                       PairState.ROLLING_BACK: Trigger.UNWOUND}.get(self.state, Trigger.FILLED)
        self._to(target, trigger, reason)
        self.ended_ns = self.book.clock.now_ns()
        self._track_unhedged()
        self.book.close_pair(self.did)
        self.out.append(CancelTimers(self.did))
        if self.residual_booked is None:
            # finished at its balanced target: nothing of it stays in the book (a pair re-opened
            # by a late fill and unwound to its target takes back what it had booked)
            self.book._residual_set(self, None)
        if target is PairState.HEDGED and all(lg.net == lg.spec.qty for lg in self.legs):
            # both legs filled in full: the strategy sized leg B against its holding, so this move
            # took back what the book held for it (whole lots: within half a B lot of its ratio)
            self.book._residual_clear(self)
        self._notify_done()

    def _sub_lot_residual(self) -> bool:
        """The pair can stop here with what it holds carried in its strategy's residual book: no
        order is live or unknown, each leg holds between 0 and its target, and the legs are
        balanced within one leg-B lot (the residual, in leg-B terms, is smaller than a B lot:
        no B order can hedge it)."""
        if not self.book.config.book_sub_lot_residuals:
            return False
        if any(o.live for lg in self.legs for o in lg.orders):
            return False
        a, b = self.legs
        if any(lg.net < 0 or lg.net > lg.target for lg in self.legs):
            return False
        return is_balanced(a.net, b.net, self.intent.hedge_ratio, b.inst.lot_size)

    def _book_residual(self, why: str) -> None:
        """End the pair HEDGED within tolerance, its sub-lot residual carried in the strategy's book."""
        a, b = self.legs
        ta, tb = self._rollback_targets()
        imbalance = Decimal(b.net) - Decimal(a.net) * self.intent.hedge_ratio
        total = self.book._residual_set(self, imbalance)
        self.residual_booked = {
            "imbalance_b_lots": str(imbalance), "book_b_lots": str(total), "lot_b": b.inst.lot_size,
            "legs": {lg.name: {"instrument": lg.spec.instrument, "net": lg.net, "balanced_target": t,
                               "residual": lg.net - t} for lg, t in ((a, ta), (b, tb))},
        }
        reason = (f"SUB_LOT_RESIDUAL: {why}; {self.residual_booked['legs']['A']['net']} A / "
                  f"{self.residual_booked['legs']['B']['net']} B lots held, {imbalance} B lots off the hedge "
                  f"(less than one B lot of {b.inst.lot_size}): carried in {self.intent.strategy}'s residual book "
                  f"({total} B lots)")
        self.reason = reason
        self._emit(EventKind.RECONCILE, reason=reason, action="residual_booked", residual=self.residual_booked)
        self.book._residual_alert(self, reason, total, b.inst.lot_size)
        self._finish(reason, Trigger.RESIDUAL_BOOKED)

    def _residual(self) -> dict[str, Any]:
        ta, tb = self._rollback_targets()
        legs = {}
        for leg, t in zip(self.legs, (ta, tb)):
            legs[leg.name] = {
                "instrument": leg.spec.instrument, "account": leg.spec.account, "side": leg.spec.side.value,
                "net": leg.net, "balanced_target": t, "residual": leg.net - t,
                "unknown_orders": [o.coid for o in leg.orders if o.state.status is OrderStatus.UNKNOWN],
                "live_orders": [o.coid for o in leg.orders if o.live],
            }
        a, b = self.legs
        return {"legs": legs, "imbalance_b_lots": str(Decimal(b.net) - Decimal(a.net) * self.intent.hedge_ratio)}

    def _escalate(self, reason: str) -> None:
        if self.state is PairState.ESCALATED:
            return
        self._to(PairState.ESCALATED, Trigger.ESCALATE, reason)
        for leg in self.legs:  # best effort: stop what still works
            o = leg.live_order()
            if o is not None and o.state.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
                                                    OrderStatus.SUBMITTED):
                self._cancel(leg, o, "escalation")
        self.reason = reason
        self.ended_ns = self.book.clock.now_ns()
        self.residual = self._residual()
        if self.residual_booked is not None:  # re-opened, then escalated: the escalation holds it now
            self.residual_booked = None
            self.book._residual_set(self, None)
        self._emit(EventKind.ALERT, reason=reason, **escalation_alert(
            self.did, self.intent.strategy, reason, self.ended_ns,
            max((abs(v["residual"]) for v in self.residual["legs"].values()), default=0), residual=self.residual))
        self._emit(EventKind.ESCALATION, reason=reason, residual=self.residual)
        self.book.halt_scope("strategy", self.intent.strategy)
        self.book.close_pair(self.did)
        self.out.append(HaltStrategy(self.intent.strategy, self.did, reason))
        self._notify_done()

    def _notify_done(self) -> None:
        self.pushed_nets = tuple(lg.net for lg in self.legs)
        self.out.append(NotifyDone(self.intent.strategy, self.summary()))

    def _restate_finished(self) -> None:
        """A late fill that leaves a finished pair balanced (nothing to unwind) still changes what
        it holds: the summary is pushed again, so the risk guard books the difference and the
        strategy's position follows the venues."""
        nets = tuple(lg.net for lg in self.legs)
        if self.pushed_nets is None or nets == self.pushed_nets:
            return
        self._emit(EventKind.RECONCILE, reason=f"late fill: {self.state.value} pair still balanced, summary revised",
                   action="restate", nets={lg.name: lg.net for lg in self.legs},
                   before=dict(zip((lg.name for lg in self.legs), self.pushed_nets)))
        self._notify_done()

    def _restate_residual(self) -> None:
        now = self._residual()
        if now != self.residual:
            self.residual = now
            self._emit(EventKind.ESCALATION, reason="residual changed", residual=now)
            # what became known (an unknown order's outcome, a late fill) changes the exposure the
            # risk guard books and the strategy's position follows; the strategy stays halted
            self._notify_done()

    # -- views -----------------------------------------------------------------------------
    def summary(self) -> PairSummary:
        """The pair's outcome (:class:`~xmc_actors.model.pairs.PairSummary`)."""
        legs = []
        for leg in self.legs:
            avg = leg.avg_entry_price()
            slip = None
            trig = leg.spec.trigger_price
            if avg is not None and trig:
                slip = float((avg - trig) * leg.spec.side.sign / trig)
            unwinds = [o for o in leg.orders if o.unwind]
            rb_q = sum(o.filled for o in unwinds)
            rb_n = sum((o.avg_price or 0) * o.filled for o in unwinds if o.filled)
            lat = [(self.acked_ns[o.coid] - o.state.request.sent_ns) / 1e6 for o in leg.orders if o.coid in self.acked_ns]
            legs.append(leg_summary(
                leg.name, leg.spec.instrument, leg.spec.account, leg.spec.side, filled=leg.entry_filled, net=leg.net,
                intended_qty=leg.spec.qty, target_qty=leg.target, avg_price=avg,
                rollback_avg_price=rb_n / rb_q if rb_q else None, trigger_price=trig or None,
                slippage_pct=slip, orders=len(leg.orders), replenishes=leg.replenishes,
                rejects=sum(1 for o in leg.orders if o.state.status is OrderStatus.REJECTED
                            and o.state.reject_reason is not RejectReason.VENUE_ERROR),
                ack_latencies_ms=lat))
        return pair_summary(
            self.did, self.intent.strategy, self.book.owner, self.state, legs=legs, ts_ns=self.book.clock.now_ns(),
            mode=self.intent.mode, reason=self.reason,
            complete=all(lg.net == lg.target for lg in self.legs) and self.state is PairState.HEDGED,
            unhedged_ms=self.unhedged_ns() / 1e6, residual=self.residual, residual_booked=self.residual_booked,
            started_ns=self.started_ns, ended_ns=self.ended_ns)

    def unhedged_ns(self) -> int:
        extra = (self.book.clock.now_ns() - self.unhedged_since) if self.unhedged_since else 0
        return self.unhedged_total + extra

    def _track_unhedged(self) -> None:
        a, b = self.legs
        now = self.book.clock.now_ns()
        if not is_balanced(a.net, b.net, self.intent.hedge_ratio, b.inst.lot_size):
            if not self.unhedged_since:
                self.unhedged_since = now
        elif self.unhedged_since:
            self.unhedged_total += now - self.unhedged_since
            self.unhedged_since = 0
