"""What a strategy's rollout stage does to the intents it decides (pure; the host core owns one).

* **shadow**: the intent is not sent. It is priced against the book the strategy saw (each leg
  walks the visible levels, :func:`~xmc_actors.core.stages.price_against_book`) and recorded as a
  ``SHADOW`` event (the intent, each leg's price and slippage against its trigger, what the book
  could not fill); the strategy is then told its pair HEDGED at those prices, so it goes on
  deciding as it would live (its position in shadow is what it would hold). The position it
  really holds is kept apart and given back when it leaves shadow.
* **canary**: the intent is sent at ``size_fraction`` of its leg-A lots (whole lots, at least one,
  leg B re-sized against what the strategy holds), at most ``max_open_lots`` leg-A lots held, at
  most ``max_pairs_per_day`` pairs a UTC day that add to what it holds. A move that only reduces
  what it holds always goes. An intent the limits stop is not sent: the strategy is told it was
  REFUSED (``CANARY_LIMIT``) and pauses entries as for a trading-state refusal.
* **live**: the intent goes as decided.

Every stage change is a ``STAGE`` event (from, to, who, why, the gate's decision when there was
one), in the strategy's trail.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..core.pair_fsm import leg_summary, pair_summary
from ..core.sink import EventMaker, EventSink
from ..core.stages import check_stage, price_against_book, slippage_bps
from ..model.config import StrategyConfig
from ..model.events import Event, EventKind
from ..model.pairs import PairIntent, PairState, PairSummary
from ..model.stages import CanaryConfig, DemoteConfig, StageGates
from .base import Strategy

_DAY_NS = 86_400 * 1_000_000_000
#: the reason a canary limit gives a refused intent (contains TRADING_ so the strategy pauses
#: entries for a while instead of deciding again at every quote)
CANARY_LIMIT = "CANARY_LIMIT"


@dataclass(frozen=True)
class StageSettings:
    """A strategy's stage settings from its deployment entry."""

    stage: str = "live"
    canary: CanaryConfig = CanaryConfig()
    gates: StageGates = StageGates()
    demote: DemoteConfig = DemoteConfig()

    @classmethod
    def of(cls, cfg: StrategyConfig) -> "StageSettings":
        return cls(cfg.stage, cfg.canary, cfg.gates, cfg.demote)


@dataclass
class StageState:
    """One strategy's stage and what the stage keeps."""

    settings: StageSettings
    stage: str = "live"
    since_ns: int = 0
    #: what the strategy really holds while in shadow (leg-A, leg-B lots)
    real: tuple[int, int] | None = None
    shadow_decisions: set[str] = field(default_factory=set)
    canary_day: int = -1
    canary_pairs_today: int = 0
    counters: dict[str, int] = field(default_factory=lambda: {"shadow_intents": 0, "canary_resized": 0,
                                                               "canary_refused": 0, "stage_changes": 0})
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Routed:
    """What the keeper made of one intent: ``send`` it (maybe resized); ``summary`` for the
    strategy at once (a shadow's virtual fill, a canary refusal). Its events are written."""

    send: PairIntent | None
    summary: PairSummary | None = None


class StageKeeper:
    """Stages of the hosted strategies; :meth:`route` applies one to an intent. Its events
    (SHADOW, STAGE) go to ``sink`` as they are made."""

    def __init__(self, settings: dict[str, StageSettings], events: EventMaker, sink: EventSink) -> None:
        self.events = events
        self.sink = sink
        self.states: dict[str, StageState] = {n: StageState(s, check_stage(s.stage, f"strategies[{n}].stage"))
                                              for n, s in settings.items()}

    def state(self, name: str) -> StageState:
        st = self.states.get(name)
        if st is None:
            st = self.states[name] = StageState(StageSettings())
        return st

    def stage(self, name: str) -> str:
        return self.state(name).stage

    def start(self, s: Strategy, now_ns: int) -> None:
        """A strategy starts in its configured stage: shadow keeps its real position aside."""
        st = self.state(s.name)
        st.since_ns = now_ns
        if st.stage == "shadow":
            st.real = (s.position, s.position_b)

    # ------------------------------------------------------------------ intents
    def route(self, s: Strategy, intent: PairIntent, now_ns: int) -> Routed:
        st = self.state(s.name)
        if st.stage == "shadow":
            return self._shadow(s, st, intent, now_ns)
        if st.stage == "canary":
            return self._canary(s, st, intent, now_ns)
        return Routed(intent)

    def on_real_summary(self, name: str, summary: PairSummary) -> None:
        """A real pair's outcome reached a strategy now in shadow (it was sent before the
        demotion): what it filled is what the strategy really holds."""
        st = self.state(name)
        if st.stage != "shadow" or st.real is None or summary.decision_id in st.shadow_decisions:
            return
        la, lb = summary.leg("A"), summary.leg("B")
        st.real = (st.real[0] + (la.net_lots if la else 0), st.real[1] + (lb.net_lots if lb else 0))

    def _shadow(self, s: Strategy, st: StageState, intent: PairIntent, now_ns: int) -> Routed:
        legs_out: list[dict[str, Any]] = []
        legs = []
        for li in intent.legs:
            book = price_against_book(s.quotes.get(li.instrument), li.side, li.qty)
            px = book.avg_price if book.avg_price is not None else (li.limit_price or li.trigger_price)
            slip = slippage_bps(li.side, book.avg_price, li.trigger_price or li.limit_price)
            legs_out.append({"leg": li.leg, "instrument": li.instrument, "side": li.side.value, "qty": li.qty,
                             "limit": str(li.limit_price), "trigger": str(li.trigger_price),
                             "price": None if book.avg_price is None else str(book.avg_price),
                             "fillable": book.filled, "short": book.short, "levels": book.levels,
                             "slippage_bps": slip})
            # the strategy is told it got every lot (the position it would hold), at the book's price
            legs.append(leg_summary(li.leg, li.instrument, li.account, li.side, filled=li.qty, net=li.qty,
                                    intended_qty=li.qty, avg_price=px, trigger_price=li.trigger_price))
        full = all(lg["short"] == 0 for lg in legs_out)
        st.shadow_decisions.add(intent.decision_id)
        if len(st.shadow_decisions) > 4096:
            st.shadow_decisions.pop()
        st.counters["shadow_intents"] += 1
        self.sink.emit(self.events.make(
            EventKind.SHADOW, ts_ns=now_ns, decision_id=intent.decision_id, strategy=s.name,
            reason=("would send; the book could fill both legs" if full
                    else "would send; the book could not fill every lot: " + ", ".join(
                        f"{lg['leg']} short {lg['short']}" for lg in legs_out if lg["short"])),
            stage="shadow", outcome="FILLABLE" if full else "SHORT", fillable=full, legs=legs_out,
            intent=intent.model_dump(mode="json"), mode=intent.mode.value if intent.mode else None))
        summary = pair_summary(intent.decision_id, s.name, "shadow", PairState.HEDGED, legs=legs, ts_ns=now_ns,
                               reason="shadow: not sent", started_ns=now_ns, ended_ns=now_ns)
        return Routed(None, summary)

    def _canary(self, s: Strategy, st: StageState, intent: PairIntent, now_ns: int) -> Routed:
        cfg = st.settings.canary
        la, lb = intent.legs
        sign = la.side.sign
        pos = s.position
        target = pos + sign * la.qty
        reduces = abs(target) < abs(pos) and target * pos >= 0
        qty = la.qty if reduces else max(1, int(la.qty * cfg.size_fraction))
        new_target = pos + sign * qty
        room = la.qty  # the most leg-A lots the canary may send for this intent
        if not reduces:
            cap = cfg.max_open_lots
            new_target = max(-cap, min(cap, new_target))
            qty = abs(new_target - pos)
            room = abs(max(-cap, min(cap, target)) - pos)
            day = now_ns // _DAY_NS
            if day != st.canary_day:
                st.canary_day, st.canary_pairs_today = day, 0
        if qty == 0 or new_target == pos:
            return self._canary_refused(s, st, intent, now_ns,
                                        f"holds {pos:+d} lots of leg A, the canary's max_open_lots is {cfg.max_open_lots}")
        adds = abs(new_target) > abs(pos) or new_target * pos < 0
        if adds and st.canary_pairs_today >= cfg.max_pairs_per_day:
            return self._canary_refused(s, st, intent, now_ns,
                                        f"{st.canary_pairs_today} pairs today, max_pairs_per_day {cfg.max_pairs_per_day}")
        out = intent
        if qty != la.qty:
            # the fewest leg-A lots from the fraction up that hedge whole leg-B lots (a 1-lot SHFE
            # move hedges 0.2 of an LME lot: the canary then sends the 5 lots that hedge one)
            sizing, why = None, ""
            for q in range(qty, max(room, qty) + 1):
                sizing, why = s._sizing(q, pos + sign * q)
                if sizing is not None:
                    break
            if sizing is None:
                return self._canary_refused(s, st, intent, now_ns, f"a {qty}-lot canary move cannot be hedged: {why}")
            new_target = pos + sign * sizing.qty_a
            ratio = s.ctx.hedge_ratio
            if sizing.qty_b != abs(s._hedge_b(sizing.qty_a)):
                ratio = Decimal(sizing.qty_b) / Decimal(sizing.qty_a)
            b_after = s._hedge_b(new_target)
            reduce_only = intent.reduce_only and abs(b_after) <= abs(s.position_b)
            out = intent.model_copy(update={
                "legs": (la.model_copy(update={"qty": sizing.qty_a}), lb.model_copy(update={"qty": sizing.qty_b})),
                "hedge_ratio": ratio, "reduce_only": reduce_only})
            pend = getattr(s, "_pending", None)
            if pend is not None and pend.intent.decision_id == intent.decision_id:
                pend.intent = out
            st.counters["canary_resized"] += 1
            self.sink.emit(self.events.make(
                EventKind.STAGE, ts_ns=now_ns, decision_id=intent.decision_id, strategy=s.name,
                reason=f"canary: {la.qty}/{lb.qty} lots sized to {sizing.qty_a}/{sizing.qty_b} "
                       f"(size_fraction {cfg.size_fraction:g}, max_open_lots {cfg.max_open_lots})",
                stage="canary", action="resize", outcome="RESIZED",
                qty_a=[la.qty, sizing.qty_a], qty_b=[lb.qty, sizing.qty_b]))
        if adds:
            st.canary_pairs_today += 1
        return Routed(out)

    def _canary_refused(self, s: Strategy, st: StageState, intent: PairIntent, now_ns: int, why: str) -> Routed:
        st.counters["canary_refused"] += 1
        reason = f"{CANARY_LIMIT}: {why} (not sent; entries paused as for TRADING_STATE)"
        self.sink.emit(self.events.make(EventKind.STAGE, ts_ns=now_ns, decision_id=intent.decision_id,
                                        strategy=s.name, reason=reason, stage="canary", action="limit",
                                        outcome="REFUSED"))
        summary = PairSummary(decision_id=intent.decision_id, strategy=s.name, state=PairState.REFUSED.value,
                              reason=reason, ts_ns=now_ns)
        return Routed(None, summary)

    # ------------------------------------------------------------------ stage changes
    def set_stage(self, s: Strategy, stage: str, now_ns: int, *, operator: str, reason: str,
                  action: str, gate: dict[str, Any] | None = None) -> Event:
        """Move ``s`` to ``stage``; the STAGE event says from, to, who and why (written, and
        returned as the receipt). Leaving shadow gives the strategy back what it really holds; entering it
        keeps that aside."""
        new = check_stage(stage)
        st = self.state(s.name)
        old = st.stage
        if new == old:
            return self._write(self.events.make(
                EventKind.STAGE, ts_ns=now_ns, strategy=s.name, operator=operator,
                reason=f"already {new}: nothing changed ({reason})" if reason else f"already {new}",
                stage=new, action=action, outcome="UNCHANGED", **({"gate": gate} if gate else {})))
        extra: dict[str, Any] = {}
        if new == "shadow":
            st.real = (s.position, s.position_b)
        elif old == "shadow" and st.real is not None:
            extra["virtual_position"] = [s.position, s.position_b]
            s.position, s.position_b = st.real
            st.real = None
            extra["position"] = [s.position, s.position_b]
        st.stage, st.since_ns = new, now_ns
        st.counters["stage_changes"] += 1
        rec = {"ts_ns": now_ns, "from": old, "to": new, "operator": operator, "action": action, "reason": reason}
        st.history.append(rec)
        del st.history[:-100]
        return self._write(self.events.make(
            EventKind.STAGE, ts_ns=now_ns, strategy=s.name, operator=operator,
            reason=f"{action}: {old} -> {new}" + (f" ({reason})" if reason else ""),
            stage=new, action=action, outcome="CHANGED", **{"from": old, "to": new},
            **extra, **({"gate": gate} if gate else {})))

    def record_refusal(self, name: str, to: str, now_ns: int, *, operator: str, reason: str,
                       gate: dict[str, Any]) -> Event:
        """A promotion the gate refused: a STAGE event with the figures (written, and returned
        as the receipt), nothing changed."""
        st = self.state(name)
        return self._write(self.events.make(
            EventKind.STAGE, ts_ns=now_ns, strategy=name, operator=operator,
            reason=f"promote: {st.stage} -> {to} refused: {gate.get('reason', '')}" + (f" ({reason})" if reason else ""),
            stage=st.stage, action="promote", outcome="REFUSED", **{"from": st.stage, "to": to}, gate=gate))

    def _write(self, ev: Event) -> Event:
        self.sink.emit(ev)
        return ev

    def status(self, name: str) -> dict[str, Any]:
        st = self.state(name)
        # merged into the strategy's own status: every key says it is the stage's
        out: dict[str, Any] = {"stage": st.stage, "stage_since_ns": st.since_ns, "stage_counters": dict(st.counters)}
        if st.stage == "canary":
            c = st.settings.canary
            out["canary"] = {"size_fraction": c.size_fraction, "max_pairs_per_day": c.max_pairs_per_day,
                             "max_open_lots": c.max_open_lots, "pairs_today": st.canary_pairs_today}
        if st.real is not None:
            out["real_position"] = list(st.real)
        return out


__all__ = ["CANARY_LIMIT", "Routed", "StageKeeper", "StageSettings", "StageState"]
