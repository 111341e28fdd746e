"""A position's calendar roll executed as one decision (issue 19 item 1; docs/contracts.md).

Pure and deterministic: no Ray, no clock of its own. :func:`build_roll` turns a
:class:`~xmc_actors.core.contracts.RollPlan` into a :class:`RollRequest`: one parent decision id
and, per rolled leg (venue), one child pair intent that is a calendar spread on that venue
(near contract closed + far contract opened, same lots), so each child keeps the coordinator's
pair guarantees (both orders leave together, replenish within budget, rollback of the filled side
when the other cannot be done). :class:`RollTracker` follows the children to the roll's outcome:
``ROLLED`` once every child is HEDGED and complete, ``ESCALATED`` (a red alert) when one ends
otherwise or when the deadline (the end of the plan's ``roll_by`` day) passes first.

Bad input raises :class:`RollInputError` naming the field and the reason; nothing is sent then.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Collection, Iterable, Mapping
from zoneinfo import ZoneInfo

from ..model.market import Side
from ..model.pairs import LegIntent, PairIntent, PairState, ReplenishBudget, RollbackPolicy
from .attribution import UNKNOWN, attribution
from .contracts import Holding, RollPlan, plan_roll

NEAR_LEG = "N"   # a child pair's near leg (the close)
FAR_LEG = "F"    # a child pair's far leg (the open)
_ID = re.compile(r"^[A-Za-z0-9_\-]{1,70}$")


class RollInputError(ValueError):
    """A roll refused before anything is sent: ``field`` and ``reason``."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


def child_id(decision_id: str, leg: str) -> str:
    """The child pair of leg ``leg`` (``A``/``B``) of roll ``decision_id``: ``{id}.roll{leg}``."""
    return f"{decision_id}.roll{leg}"


def roll_by_ns(plan: RollPlan, timezone: str) -> int:
    """The roll's deadline: the end of the plan's ``roll_by`` day in ``timezone`` (the binding
    venue's), in UTC nanoseconds."""
    end = dt.datetime.combine(plan.roll_by + dt.timedelta(days=1), dt.time(0), ZoneInfo(timezone))
    return int(end.timestamp()) * 1_000_000_000


@dataclass(frozen=True)
class RollRequest:
    """A roll ready to submit: the parent decision, the plan, and one child pair per leg."""

    decision_id: str
    strategy: str
    operator: str
    deadline_ns: int
    plan: RollPlan
    children: tuple[PairIntent, ...]
    role: str = "unknown"  # the operator's role and channel (core/attribution.py)
    via: str = "unknown"

    def payload(self) -> dict[str, Any]:
        """What the parent decision's INTENT event carries (``xmc audit trace`` shows it and
        follows ``roll_children`` to the children's events)."""
        return {
            "roll": True,
            "roll_children": [c.decision_id for c in self.children],
            "operator": self.operator,
            "role": self.role,
            "via": self.via,
            "deadline_ns": self.deadline_ns,
            "roll_from": self.plan.roll_from.isoformat(),
            "roll_by": self.plan.roll_by.isoformat(),
            "venue_deadline": self.plan.deadline.isoformat(),
            "binding": self.plan.binding,
            "plan_status": self.plan.status,
            "legs": [{"leg": lg.leg, "venue": lg.near.venue, "near": lg.near.id, "far": lg.far.id, "qty": lg.qty,
                      "roll_by": lg.roll_by.isoformat()} for lg in self.plan.legs],
            "plan_reason": self.plan.reason,
            # the child pairs as submitted: a coordinator restarted mid-roll finds at the
            # gateways the orders of a child its trail never recorded (recover_rolls)
            "child_intents": [c.model_dump(mode="json") for c in self.children],
        }

    def record(self) -> "RollRecord":
        """What the roll's tracker needs, and all a restarted coordinator can read back."""
        return RollRecord(self.decision_id, self.strategy, self.operator, self.deadline_ns,
                          self.plan.roll_by.isoformat(), tuple(c.decision_id for c in self.children),
                          tuple(f"{lg.near.id}->{lg.far.id}" for lg in self.plan.legs), self.children)


@dataclass(frozen=True)
class RollRecord:
    """A roll as its tracker follows it, built from a :class:`RollRequest` (``record()``) or,
    after a restart, read back from the roll's ``OPERATOR`` event (:meth:`from_event`)."""

    decision_id: str
    strategy: str
    operator: str
    deadline_ns: int
    roll_by: str                         # ISO date: the plan's last roll day
    children: tuple[str, ...]            # the child pair ids
    moves: tuple[str, ...]               # "near->far" per rolled leg
    intents: tuple[PairIntent, ...] = ()  # the child pairs as submitted

    @classmethod
    def from_event(cls, event: Any) -> "RollRecord":
        """The roll recorded by ``event`` (an ``OPERATOR`` event, action ``roll``, as
        ``submit_roll`` writes it). Raises :class:`RollInputError` naming the field it cannot read."""
        p = event.payload
        children = p.get("roll_children")
        if not isinstance(children, list) or not children or not all(isinstance(c, str) and c for c in children):
            raise RollInputError("roll_children", f"{children!r}: a list of child pair ids is needed")
        deadline = p.get("deadline_ns")
        if not isinstance(deadline, int) or isinstance(deadline, bool) or deadline <= 0:
            raise RollInputError("deadline_ns", f"{deadline!r} is not a positive time")
        legs = p.get("legs")
        if not isinstance(legs, list) or not all(isinstance(lg, dict) and "near" in lg and "far" in lg for lg in legs):
            raise RollInputError("legs", "a list of {near, far} legs is needed")
        intents: list[PairIntent] = []
        for i, raw in enumerate(p.get("child_intents") or ()):  # absent in rolls recorded before it was
            try:
                intents.append(PairIntent.model_validate(raw))
            except ValueError as e:
                raise RollInputError(f"child_intents[{i}]", str(e).splitlines()[0]) from None
        if intents and [c.decision_id for c in intents] != children:
            raise RollInputError("child_intents", "their decision ids are not roll_children's")
        return cls(event.decision_id, event.strategy, str(p.get("operator") or ""), deadline,
                   str(p.get("roll_by") or "?"), tuple(children),
                   tuple(f"{lg['near']}->{lg['far']}" for lg in legs), tuple(intents))


def _price(prices: Mapping[str, Any], inst: str) -> Decimal:
    if inst not in prices:
        raise RollInputError(f"prices[{inst}]", "missing: every near and far contract needs a limit price")
    try:
        p = Decimal(str(prices[inst]))
    except (InvalidOperation, ValueError):
        raise RollInputError(f"prices[{inst}]", f"{prices[inst]!r} is not a number") from None
    if not p.is_finite() or p <= 0:
        raise RollInputError(f"prices[{inst}]", f"{p} is not a positive price")
    return p


def build_roll(plan: RollPlan, *, decision_id: str, strategy: str, accounts: Mapping[str, str],
               prices: Mapping[str, Any], deadline_ns: int, now_ns: int, operator: str = "",
               replenish: ReplenishBudget | None = None, rollback: RollbackPolicy | None = None,
               by: Mapping[str, Any] | None = None) -> RollRequest:
    """The roll of ``plan`` as one decision ``decision_id`` with one child pair per rolled leg.

    ``accounts``: the account per venue; ``prices``: a limit price per near and far contract;
    ``deadline_ns``: when the roll must be done (:func:`roll_by_ns`), in the future: a late roll
    is given a new deadline (before the venue's own) by an operator, never sent with one passed.
    Children carry the deadline, so the coordinator does not keep working them past it.
    ``by``: the operator's role and channel (core/attribution.py), recorded with the roll.
    """
    try:
        who = attribution((operator or "").strip() or UNKNOWN, by)
    except ValueError as e:
        field_name, _, why = str(e).partition(": ")
        raise RollInputError(field_name, why) from None
    if not isinstance(decision_id, str) or not _ID.match(decision_id):
        raise RollInputError("decision_id", f"{decision_id!r}: 1-70 letters, digits, '_' or '-'")
    if not isinstance(strategy, str) or not strategy.strip():
        raise RollInputError("strategy", "empty: the roll is booked to a strategy")
    if not plan.legs:
        raise RollInputError("plan", "no dated leg to roll")
    if not isinstance(deadline_ns, int) or deadline_ns <= 0:
        raise RollInputError("deadline_ns", f"{deadline_ns!r} is not a positive time")
    if now_ns >= deadline_ns:  # the children carry it: the coordinator would refuse them (DEADLINE_PASSED)
        raise RollInputError("deadline_ns", f"the roll's deadline has passed (the plan's roll_by is {plan.roll_by}): "
                                            "a late roll needs a new deadline in the future, before the venue's own "
                                            "(xmc roll --deadline WHEN)")
    children = []
    for lg in plan.legs:
        venue = lg.near.venue
        acc = accounts.get(venue)
        if not acc:
            raise RollInputError(f"accounts[{venue}]", "missing: the account holding the position is needed")
        if lg.qty == 0:
            raise RollInputError(f"plan.legs[{lg.leg}].qty", "zero lots: nothing to roll")
        close_side, open_side = (Side.SELL, Side.BUY) if lg.qty > 0 else (Side.BUY, Side.SELL)
        pn, pf = _price(prices, lg.near.id), _price(prices, lg.far.id)
        near = LegIntent(leg=NEAR_LEG, instrument=lg.near.id, account=acc, side=close_side, qty=abs(lg.qty),
                         limit_price=pn, trigger_price=pn)
        far = LegIntent(leg=FAR_LEG, instrument=lg.far.id, account=acc, side=open_side, qty=abs(lg.qty),
                        limit_price=pf, trigger_price=pf)
        kw: dict[str, Any] = {}
        if replenish is not None:
            kw["replenish"] = replenish
        if rollback is not None:
            kw["rollback"] = rollback
        children.append(PairIntent(decision_id=child_id(decision_id, lg.leg), strategy=strategy, legs=(near, far),
                                   deadline_ns=deadline_ns, created_ns=now_ns, **kw))
    return RollRequest(decision_id, strategy, (operator or "").strip(), deadline_ns, plan, tuple(children),
                       role=who["role"], via=who["via"])


def roll_request(holdings: list[Holding], day: dt.date, **kw: Any) -> RollRequest:
    """What an operator's or a strategy's roll request comes down to: :func:`plan_roll` of
    ``holdings`` on ``day``, its deadline at the end of ``roll_by`` in the binding venue's time
    zone, and :func:`build_roll` with ``kw`` (``decision_id``, ``strategy``, ``accounts``,
    ``prices``, ``now_ns``, ``operator``...). The result goes to ``PairCoordinator.submit_roll``."""
    plan = plan_roll(holdings, day)
    binding = holdings[ord(plan.binding) - ord("A")]  # plan_roll tags the holdings A, B, ... in order
    return build_roll(plan, deadline_ns=roll_by_ns(plan, binding.venue.timezone), **kw)


def rolls_moving(trackers: Mapping[str, "RollTracker"], strategy: str, instruments: Iterable[str]) -> list[str]:
    """Ids of ``strategy``'s rolls not decided yet that move any of ``instruments`` (near or
    far): an order of that strategy on them, or a second roll of them, would trade lots a roll
    is still moving."""
    insts = set(instruments)
    return [rid for rid, t in trackers.items()
            if t.outcome is None and t.record.strategy == strategy
            and any(x in insts for mv in t.record.moves for x in mv.split("->"))]


def unheld_near_legs(request: RollRequest, held: Callable[[str, str], tuple[int, int] | None]) -> list[str]:
    """What stops ``request`` from rolling a position that is really held: for each child, its
    near order (the close) must close lots the account holds on the near contract, on the side
    the order closes. ``held(account, instrument)`` answers ``(long, short)`` lots that may be
    closed now (at a two-sided venue: held and not reserved by a working close), or None when
    nobody can say. Returns one message per child that fails, naming the field; empty when
    every near leg is covered. A roll of a position nobody holds would otherwise open the near
    contract instead of closing it, fill both legs, and still be reported ROLLED."""
    out: list[str] = []
    for c in request.children:
        near = next((lg for lg in c.legs if lg.leg == NEAR_LEG), None)
        if near is None:
            out.append(f"{c.decision_id}: no near leg")
            continue
        h = held(near.account, near.instrument)
        side = "long" if near.side is Side.SELL else "short"
        if h is None:
            out.append(f"{c.decision_id}: the {side} position of {near.account} in {near.instrument} cannot be "
                       "verified (the venue does not answer for its positions): nothing rolled")
            continue
        have = h[0] if near.side is Side.SELL else h[1]
        if have < near.qty:
            out.append(f"{c.decision_id}: {near.account} holds {have} lot(s) {side} of {near.instrument} that may be "
                       f"closed, the roll would close {near.qty}: check the direction (--long/--short) and the lots")
    return out


@dataclass
class RollTracker:
    """Follows a roll's children to its outcome. ``on_child(summary)`` with each child's pair
    summary (a dict as the coordinator pushes it); ``on_deadline(now_ns)`` when the deadline
    timer fires. Each returns None, or the outcome once (``ROLLED`` / ``ESCALATED``, a reason,
    and per child its state and net lots per contract). Built from a :class:`RollRecord` (a
    :class:`RollRequest` is taken too: its record)."""

    record: RollRecord
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcome: dict[str, Any] | None = None
    late: bool = False   # its deadline passed with a child still working

    def __post_init__(self) -> None:
        if isinstance(self.record, RollRequest):
            self.record = self.record.record()

    def _children(self) -> dict[str, Any]:
        out = {}
        for c in self.record.children:
            s = self.summaries.get(c)
            out[c] = {
                "state": s.get("state", "?") if s else "WORKING",
                "complete": bool(s and s.get("complete")),
                "net": {lg["instrument"]: lg.get("net_qty") for lg in (s or {}).get("legs", [])},
            }
        return out

    def _finish(self, state: str, reason: str) -> dict[str, Any]:
        children = self._children()
        self.outcome = {"state": state, "reason": reason, "children": children, "moves": self.moves(children)}
        return self.outcome

    def moves(self, children: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Per child: its ``near`` and ``far`` contract, the ``lots`` it rolls (None when the
        record does not say), whether they moved (``rolled``: HEDGED and complete) and, when
        they did not, whether nothing changed either (``clean``: no lot left on either contract,
        e.g. refused or both orders rejected). What the strategy's legs follow
        (``StrategyHostCore.on_roll_done``)."""
        lots = {i.decision_id: i.legs[0].qty for i in self.record.intents}
        out = []
        for c, mv in zip(self.record.children, self.record.moves):
            near, _, far = mv.partition("->")
            ch = children.get(c) or {}
            rolled = ch.get("state") == "HEDGED" and bool(ch.get("complete"))
            nets = ch.get("net") if isinstance(ch.get("net"), Mapping) else {}
            clean = not rolled and ch.get("state") in ("REFUSED", "NOT_SENT", "ROLLED_BACK") \
                and not any(int(v or 0) for v in nets.values())
            out.append({"child": c, "near": near, "far": far, "lots": lots.get(c), "rolled": rolled, "clean": clean,
                        "net": {str(k): int(v or 0) for k, v in nets.items()}})
        return out

    def on_child(self, summary: Mapping[str, Any]) -> dict[str, Any] | None:
        did = summary.get("decision_id")
        if self.outcome is not None or did not in self.record.children:
            return None
        self.summaries[did] = dict(summary)
        return self._decide()

    def _decide(self) -> dict[str, Any] | None:
        if len(self.summaries) < len(self.record.children):
            return None
        bad = [d for d, s in self.summaries.items() if not (s.get("state") == "HEDGED" and s.get("complete"))]
        if not bad:
            return self._finish("ROLLED", "every leg is on its far contract: " + ", ".join(self.record.moves))
        late = f" (not all done by its deadline, the end of {self.record.roll_by})" if self.late else ""
        return self._finish("ESCALATED", _mismatch(self.record, bad, "ended without a complete roll" + late))

    def on_deadline(self, now_ns: int, open_children: Collection[str] = ()) -> dict[str, Any] | None:
        """The deadline has come: a child that never became a pair (``open_children`` are those
        still working) ends as NOT_SENT. The roll is decided once every child has ended, never
        before: a child still working is wound down by its own deadline, and what its venues
        then say (a complete roll, late) is the roll's outcome; meanwhile ``late`` is set (the
        coordinator raises its red alert once)."""
        if self.outcome is not None or now_ns < self.record.deadline_ns:
            return None
        for c in self.record.children:
            if c not in self.summaries and c not in open_children:
                self.summaries[c] = {"decision_id": c, "state": "NOT_SENT", "complete": False}
        self.late = True
        return self._decide()


def _mismatch(rec: RollRecord, bad: list[str], what: str) -> str:
    ok = [c for c in rec.children if c not in bad]
    msg = f"{', '.join(sorted(bad))} {what}"
    if ok:
        msg += (f"; {', '.join(ok)} rolled: the cross-market hedge still holds its lots but on mismatched "
                "months until the rest is rolled by hand")
    return msg


# ----------------------------------------------------------------------- after a restart
_TERMINAL = frozenset(s.value for s in PairState if s.is_terminal)


@dataclass
class RecoveredRolls:
    """What a restarted coordinator learns of its rolls from its trail (:func:`recover_rolls`).

    ``trackers``: one per roll the trail records, by decision id; a roll decided by the previous
    life (its ``ROLL_DONE``) has its outcome set. ``decided_now``: rolls whose children had all
    ended before the restart but whose ``ROLL_DONE`` was never written: the outcome is set and
    must be recorded now. ``unrecorded``: per undecided roll, its child pairs with no ``INTENT``
    in the trail (the crash came between the roll's record and the child's): their orders, if
    any left, are at the gateways. ``unreadable``: ``(decision id, why)`` of roll records that
    could not be read (recorded as bad input; such a roll is not followed)."""

    trackers: dict[str, RollTracker] = field(default_factory=dict)
    decided_now: list[str] = field(default_factory=list)
    unrecorded: dict[str, list[PairIntent]] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def _child_end(intent: PairIntent | None, did: str, last_state: Any) -> dict[str, Any] | None:
    """A child's end as its tracker reads a pushed summary, from its last ``PAIR_STATE`` event;
    None while it was not finished. Complete: HEDGED with every leg's net at its lots."""
    p = last_state.payload
    state = str(p.get("to") or p.get("state") or "")
    if state not in _TERMINAL:
        return None
    nets = p.get("nets") if isinstance(p.get("nets"), Mapping) else {}
    legs, complete = [], state == PairState.HEDGED.value
    for lg in (intent.legs if intent is not None else ()):
        try:
            net = int(nets[lg.leg])
        except (KeyError, TypeError, ValueError):
            complete = False
            continue
        complete = complete and net == lg.qty
        legs.append({"leg": lg.leg, "instrument": lg.instrument, "net_qty": lg.side.sign * net})
    return {"decision_id": did, "state": state, "complete": complete, "legs": legs, "recovered": True}


def recover_rolls(events: Any, owner: str) -> RecoveredRolls:
    """Rebuild the rolls of coordinator ``owner`` from its trail (``events`` in time order: its
    ``OPERATOR`` roll records, ``LIFECYCLE`` ``ROLL_DONE`` outcomes, the children's ``INTENT``
    and ``PAIR_STATE`` events; other events are skipped). Pure: the coordinator installs the
    trackers, records the outcomes decided now, looks for the unrecorded children's orders at
    the gateways, and arms the deadlines of the rest. A child still open in the trail is wound
    down by the pair book's own recovery and reaches its tracker as any finished pair does."""
    out = RecoveredRolls()
    done: dict[str, Mapping[str, Any]] = {}
    intents: set[str] = set()
    last: dict[str, Any] = {}
    for e in events:
        if e.actor not in ("", owner):
            continue
        kind = getattr(e.kind, "value", e.kind)
        if kind == "OPERATOR" and e.payload.get("action") == "roll" and e.decision_id not in out.trackers:
            try:
                out.trackers[e.decision_id] = RollTracker(RollRecord.from_event(e))
            except RollInputError as err:
                out.unreadable.append((e.decision_id, str(err)))
        elif kind == "LIFECYCLE" and e.reason == "ROLL_DONE":
            done.setdefault(e.decision_id, e.payload)
        elif kind == "INTENT":
            intents.add(e.decision_id)
        elif kind == "PAIR_STATE":
            last[e.decision_id] = e
    for did, t in out.trackers.items():
        if did in done:
            p = done[did]
            children = p.get("children") if isinstance(p.get("children"), Mapping) else {}
            t.outcome = {"state": str(p.get("roll_state") or "?"), "reason": str(p.get("message") or ""),
                         "children": children, "moves": p.get("moves") or t.moves(children)}
            continue
        by_id = {c.decision_id: c for c in t.record.intents}
        for c in t.record.children:
            if c in last:
                end = _child_end(by_id.get(c), c, last[c])
                if end is not None:
                    t.on_child(end)
            elif c not in intents and c in by_id:
                out.unrecorded.setdefault(did, []).append(by_id[c])
        if t.outcome is not None:
            out.decided_now.append(did)
    return out
