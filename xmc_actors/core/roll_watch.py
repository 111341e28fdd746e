"""Watching each strategy's dated contracts for their calendar roll (issue 19 item 1).

A position in a concrete contract (``SHFE.cu2701``, ``COMEX.HGH7``) must be out of it before
the venue's own deadline (docs/contracts.md). :class:`RollWatch` is the risk guard's view of
that duty, pure and deterministic (the time is passed in): for each strategy, from the lots the
guard has booked for it per contract, it plans the roll (:func:`~.contracts.plan_roll`) and
answers

* a ``roll_due`` condition per strategy (scope ``strategy``): none while the roll is early,
  yellow once the window has begun (the plan's reason names the contracts, the window and the
  venue's deadline), red when it is overdue, when it cannot be planned (a calendar that ends
  before the deadline) or when the position is split across months of one product;
* in ``auto`` mode (``strategies[].roll.mode``), once per position, the roll itself as a
  :class:`~.roll.RollRequest` (what ``xmc roll`` sends, operator ``auto:roll_watch``): when the
  window of every rolled leg has begun, ``after_open_minutes`` after the day-session opens, in
  an open session of every contract, with a fresh quote for each; limit prices ``limit_ticks``
  ticks through the touch; decision id derived from the strategy, its near months and lots, so that a
  restarted guard sending it again is a duplicate at the coordinator, never a second roll;
* why an automatic roll waits (``waiting``), each reason once while it lasts.

Product ids (``SHFE.cu``: "the main contract of", a perpetual on a simulated venue) and spot
instruments are not watched: they have nothing to roll.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Mapping, Sequence

from ..model.risk import AlertLevel
from ..model.config import DeploymentConfig, RollPolicy
from ..model.market import Instrument, Side, Venue
from .calendar import instrument_session_state
from .contracts import ContractDateError, Holding, RollPlan, plan_roll, roll_time_on
from .monitors import Condition
from .roll import RollInputError, RollRequest, build_roll, roll_by_ns

MONITOR = "roll_due"
OPERATOR = "auto:roll_watch"
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


@dataclass(frozen=True)
class WatchedStrategy:
    """A strategy as the watch needs it: its name, its policy, and the account per venue of
    its legs (a roll is booked to the accounts that hold the position)."""

    name: str
    policy: RollPolicy
    accounts: Mapping[str, str]   # venue -> account
    book_as: str | None = None    # the strategy the roll's pairs are booked to (default: name)


@dataclass
class WatchOutput:
    conditions: list[Condition] = field(default_factory=list)
    rolls: list[RollRequest] = field(default_factory=list)
    waiting: list[tuple[str, str]] = field(default_factory=list)   # (strategy, why), new reasons only
    resumed: list[tuple[str, str]] = field(default_factory=list)   # (strategy, the roll that had stopped it)


def auto_roll_id(strategy: str, nears: Sequence[tuple[str, int]]) -> str:
    """The decision id of the automatic roll of ``strategy``'s lots in ``nears`` (contract,
    signed lots): the same position's roll always has the same id
    (``autoroll-cu_pair-SHFE_cu2701_2-COMEX_HGH7_m2``; a digest when that is over 70
    characters), so a restarted guard sending it again is a duplicate, and a position an
    operator has changed since is a new roll."""
    parts = [_UNSAFE.sub("_", strategy)] + [f"{_UNSAFE.sub('_', c)}_{'m' if q < 0 else ''}{abs(q)}" for c, q in nears]
    did = "autoroll-" + "-".join(parts)
    if len(did) <= 70:
        return did
    return "autoroll-" + hashlib.sha256(did.encode()).hexdigest()[:40]


class RollWatch:
    """See the module. ``instruments`` and ``venues`` are the deployment's."""

    def __init__(self, strategies: Sequence[WatchedStrategy], instruments: Mapping[str, Instrument],
                 venues: Mapping[str, Venue]) -> None:
        self.strategies = {s.name: s for s in strategies if s.policy.mode != "off"}
        self.instruments = dict(instruments)
        self.venues = dict(venues)
        self.quotes: dict[str, tuple[Decimal | None, Decimal | None, int]] = {}  # dated contracts' touch, its ts_ns
        self.submitted: dict[str, str] = {}   # auto roll decision id -> strategy
        self.pending: dict[str, str] = {}     # strategy -> its auto roll not decided yet
        self.history: dict[str, dict[str, str]] = {}  # name -> auto roll id -> SENT, then its outcome
        #: positions watched by the decisions that make them (a hedge's pairs, then its rolls'
        #: children), not by a strategy's book: name -> decision ids (``hold``)
        self.held: dict[str, set[str]] = {}
        self.suspended: dict[str, str] = {}   # strategy -> why its auto rolls stopped (an escalated one)
        self._suspended_at: dict[str, dict[str, int] | None] = {}  # strategy -> its lots when stopped
        self._suspended_by: dict[str, str] = {}  # strategy -> the auto roll that stopped it
        self._waiting: dict[str, str] = {}    # strategy -> the reason last reported

    def dated(self, inst_id: str) -> tuple[Instrument, Venue] | None:
        """``(product, venue)`` of a concrete contract of a dated product, else None."""
        inst = self.instruments.get(inst_id)
        if inst is None or inst.contract is not None or not inst.product:
            return None
        product = self.instruments.get(f"{inst.venue}.{inst.product}")
        venue = self.venues.get(inst.venue)
        if product is None or product.contract is None or venue is None:
            return None
        return product, venue

    def hold(self, ws: WatchedStrategy, decision_ids: Sequence[str]) -> None:
        """Watch the position the pairs ``decision_ids`` made (a hedge instruction's), under
        ``ws.name``: its lots are what the guard booked for those decisions and for the children
        of the rolls this watch sends for it (``lots_of``)."""
        self.strategies[ws.name] = ws
        self.held.setdefault(ws.name, set()).update(decision_ids)

    def restore_held(self, name: str, policy: Mapping[str, Any], accounts: Mapping[str, str],
                     decision_ids: Sequence[str], book_as: str | None) -> None:
        """A held position read back from the guard's trail after a restart (its ``watch
        position`` record). Raises ValueError naming the field when the record cannot be read."""
        self.hold(WatchedStrategy(name, RollPolicy.model_validate(dict(policy)), dict(accounts), book_as),
                  [str(d) for d in decision_ids])

    def restore_sent(self, name: str, decision_id: str) -> None:
        """An automatic roll this watch's previous life sent (its "auto roll sent" record, read
        back after a restart): pending again, so that its outcome is asked for before anything
        else is sent for ``name``, and an escalated one stops the automatic rolls again."""
        if name in self.strategies and decision_id:
            self.submitted[decision_id] = name
            self.pending[name] = decision_id
            self.history.setdefault(name, {})[decision_id] = "SENT"

    def restore_resumed(self, name: str, decision_id: str) -> None:
        """The previous life's automatic rolls had resumed after ``decision_id`` stopped them
        (the position changed since): that roll's outcome stops nothing again."""
        if self.pending.get(name) == decision_id:
            del self.pending[name]
        self.submitted.pop(decision_id, None)
        if name in self.history and decision_id in self.history[name]:
            self.history[name][decision_id] = "RESUMED"

    def lots_of(self, name: str, booked: Mapping[str, Mapping[tuple[str, str], int]]) -> dict[str, int]:
        """A held position's lots per instrument from the guard's ``booked_lots``."""
        out: dict[str, int] = {}
        for did in self.held.get(name, ()):
            for (_, inst), q in (booked.get(did) or {}).items():
                out[inst] = out.get(inst, 0) + int(q)
        return {i: q for i, q in out.items() if q}

    def status(self) -> dict[str, Any]:
        """Per watched name: its policy mode, the roll pending, why it is stopped, its automatic rolls."""
        return {n: {"mode": ws.policy.mode, "pending": self.pending.get(n), "suspended": self.suspended.get(n),
                    "rolls": dict(self.history.get(n, {})), "held": n in self.held}
                for n, ws in sorted(self.strategies.items())}

    def on_outcome(self, decision_id: str, state: str, reason: str = "") -> None:
        """An automatic roll's outcome (``ROLLED`` / ``ESCALATED``, the coordinator's
        ``roll_outcome``). Anything but ROLLED stops the strategy's automatic rolls until its
        position changes (an operator rolls or settles the rest: ``xmc roll``): its legs may be
        on mismatched months, and rolling again would roll the leg that did move once more."""
        name = self.submitted.get(decision_id)
        if name is None or self.pending.get(name) != decision_id:
            return
        del self.pending[name]
        self.history.setdefault(name, {})[decision_id] = state
        if state != "ROLLED":
            self.suspended[name] = (f"auto roll {decision_id} {state}: automatic rolls stopped for {name} until its "
                                    f"position changes; roll the rest by hand (xmc roll)"
                                    f"{': ' + reason[:200] if reason else ''}")
            self._suspended_at[name] = None  # the lots it held then: taken at the next check
            self._suspended_by[name] = decision_id

    def forget(self, decision_id: str) -> None:
        """An automatic roll that did not reach the coordinator: tried again at the next check."""
        name = self.submitted.pop(decision_id, None)
        if name is not None and self.pending.get(name) == decision_id:
            del self.pending[name]

    def on_quote(self, inst_id: str, bid: Decimal | None, ask: Decimal | None, ts_ns: int) -> None:
        if inst_id in self.instruments and self.instruments[inst_id].product:
            self.quotes[inst_id] = (bid, ask, ts_ns)

    # ------------------------------------------------------------------ the check
    def check(self, now_ns: int, positions: Mapping[str, Mapping[str, int]]) -> WatchOutput:
        """One pass over every watched strategy's booked lots (``{strategy: {instrument: lots}}``)."""
        out = WatchOutput()
        for name, ws in sorted(self.strategies.items()):
            lots = {i: int(q) for i, q in (positions.get(name) or {}).items() if int(q or 0)}
            if name in self._suspended_at:  # stopped after a roll that did not complete: until an operator moves it
                if self._suspended_at[name] is None:
                    self._suspended_at[name] = lots
                elif self._suspended_at[name] != lots:
                    del self._suspended_at[name]
                    self.suspended.pop(name, None)
                    out.resumed.append((name, self._suspended_by.pop(name, "")))
            level, value, message, plan, holdings = self._assess(ws, now_ns, positions.get(name) or {})
            out.conditions.append(Condition(MONITOR, "strategy", name, level, value, 0.0, message))
            if ws.policy.mode == "auto" and plan is not None and plan.status != "early":
                req, why = self._auto(ws, now_ns, plan, holdings)
                if req is not None:
                    self.submitted[req.decision_id] = name
                    self.pending[name] = req.decision_id
                    self.history.setdefault(name, {})[req.decision_id] = "SENT"
                    if name in self.held:  # its lots move with the roll's children
                        self.held[name].update(c.decision_id for c in req.children)
                    self._waiting.pop(name, None)
                    out.rolls.append(req)
                elif why and self._waiting.get(name) != why:
                    self._waiting[name] = why
                    out.waiting.append((name, why))
            else:
                self._waiting.pop(name, None)
        return out

    def _assess(self, ws: WatchedStrategy, now_ns: int, lots: Mapping[str, int]
                ) -> tuple[AlertLevel | None, float, str, RollPlan | None, list[Holding]]:
        by_product: dict[str, list[tuple[str, int]]] = {}
        for inst_id, q in sorted(lots.items()):
            if int(q or 0) and self.dated(inst_id) is not None:
                product, _ = self.dated(inst_id)  # type: ignore[misc]
                by_product.setdefault(product.id, []).append((inst_id, int(q)))
        if not by_product:
            return None, 0.0, f"{ws.name}: no position in a dated contract", None, []
        split = {p: h for p, h in by_product.items() if len(h) > 1}
        if split:
            held = "; ".join(f"{p}: " + ", ".join(f"{i} {q:+d}" for i, q in h) for p, h in sorted(split.items()))
            return (AlertLevel.RED, float(len(split)),
                    f"{ws.name} holds more than one month of a product ({held}): a roll left half done or a "
                    "month nobody follows; roll or settle it by hand (xmc roll)", None, [])
        # legs in the order of the strategy's venues (its leg A first), then the rest
        order = list(ws.accounts)
        holdings = []
        for _, [(inst_id, q)] in sorted(by_product.items(), key=lambda kv: (
                order.index(self.instruments[kv[1][0][0]].venue) if self.instruments[kv[1][0][0]].venue in order
                else len(order), kv[0])):
            product, venue = self.dated(inst_id)  # type: ignore[misc]
            holdings.append(Holding(product, venue, q, inst_id))
        day = self._day(holdings[0].venue, now_ns)
        try:
            plan = plan_roll(holdings, day, window_business_days=ws.policy.window_business_days,
                             safety_business_days=ws.policy.safety_business_days)
        except (ContractDateError, ValueError) as e:
            return AlertLevel.RED, 1.0, f"{ws.name}: the roll of its position cannot be planned: {e}", None, holdings
        left = float(max((plan.roll_by - day).days, 0))
        if plan.status == "early":
            return None, left, f"{ws.name}: {plan.reason}", plan, holdings
        level = AlertLevel.YELLOW if plan.status == "due" else AlertLevel.RED
        return level, left, f"{ws.name}: roll due: {plan.reason}", plan, holdings

    @staticmethod
    def _day(venue: Venue, now_ns: int) -> dt.date:
        return dt.datetime.fromtimestamp(now_ns / 1e9, tz=dt.timezone.utc).astimezone(venue.tz).date()

    # ------------------------------------------------------------------ an automatic roll
    def _auto(self, ws: WatchedStrategy, now_ns: int, plan: RollPlan, holdings: list[Holding]
              ) -> tuple[RollRequest | None, str]:
        if ws.name in self.suspended:
            return None, self.suspended[ws.name]
        if ws.name in self.pending:
            return None, f"auto roll {self.pending[ws.name]} is still working"
        did = auto_roll_id(ws.name, [(lg.near.id, lg.qty) for lg in plan.legs])
        if did in self.submitted:  # decided ROLLED, and the lots not booked on the far months yet
            return None, ""
        p = ws.policy
        day = self._day(holdings[0].venue, now_ns)
        venues = [self.venues[lg.near.venue] for lg in plan.legs]
        start = roll_time_on(day, venues, p.after_open_minutes)
        if now_ns < int(start.timestamp()) * 1_000_000_000:
            return None, f"waiting for {start.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%MZ} ({p.after_open_minutes} min after the open)"
        prices: dict[str, Decimal] = {}
        for lg in plan.legs:
            close = Side.SELL if lg.qty > 0 else Side.BUY
            for inst_id, side in ((lg.near.id, close), (lg.far.id, close.opposite)):
                inst = self.instruments.get(inst_id)
                if inst is None:
                    return None, f"{inst_id} is not among the deployment's instruments: add it (and its quotes)"
                st = instrument_session_state(self.venues[inst.venue], inst, now_ns)
                if not st.open:
                    return None, f"{inst_id}: session closed ({st.reason})"
                bid, ask, ts = self.quotes.get(inst_id, (None, None, 0))
                touch = bid if side is Side.SELL else ask
                if touch is None or touch <= 0:
                    return None, f"no {'bid' if side is Side.SELL else 'ask'} for {inst_id}"
                if now_ns - ts > p.max_quote_age_s * 1e9:  # a feed that died: its touch is no price to roll at
                    return None, f"the quote of {inst_id} is {(now_ns - ts) / 1e9:.0f} s old (max_quote_age_s {p.max_quote_age_s:g})"
                prices[inst_id] = _through(touch, side, p.limit_ticks, inst.tick_size)
        binding = self.venues[next(lg.near.venue for lg in plan.legs if lg.leg == plan.binding)]
        deadline = roll_by_ns(plan, binding.timezone)
        if plan.status == "overdue":  # the window has passed: today, and never after the venue's own deadline
            last = min(day, plan.deadline)
            deadline = int(dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), binding.tz).timestamp()) * 1_000_000_000
        accounts = {lg.near.venue: ws.accounts.get(lg.near.venue, "") for lg in plan.legs}
        try:
            return build_roll(plan, decision_id=did, strategy=ws.book_as or ws.name, accounts=accounts, prices=prices,
                              deadline_ns=deadline, now_ns=now_ns, operator=OPERATOR), ""
        except RollInputError as e:
            return None, f"not sent: {e}"


def _through(touch: Decimal, side: Side, ticks: int, tick: Decimal) -> Decimal:
    """``ticks`` ticks through the touch on the side that takes liquidity, on the tick grid."""
    px = touch + ticks * tick if side is Side.BUY else touch - ticks * tick
    steps = (px / tick).to_integral_value(rounding=ROUND_CEILING if side is Side.BUY else ROUND_FLOOR)
    return max(steps * tick, tick)


def roll_watch_of(deployment: DeploymentConfig) -> RollWatch:
    """The watch of a deployment's enabled strategies (``strategies[].roll``), each with the
    account of its leg on each venue."""
    strategies = []
    insts = {i.id: i for i in deployment.instruments}
    for s in deployment.strategies:
        if not s.enabled:
            continue
        accounts: dict[str, str] = {}
        for lg in s.legs:
            venue = insts[lg.instrument].venue if lg.instrument in insts else lg.instrument.partition(".")[0]
            accounts.setdefault(venue, lg.account)
        strategies.append(WatchedStrategy(s.name, s.roll, accounts))
    return RollWatch(strategies, insts, {v.code: v for v in deployment.venues})
