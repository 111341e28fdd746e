"""The strategy base class: a pure, deterministic core that turns quotes into pair intents.

A strategy sees the latest quote of each of its two legs, asks the parity engine
(:mod:`xmc_actors.core.pricing`) for both legs in common terms, and decides a **target
position** in signed leg-A lots (+ is long A / short B). The base class does everything else:

- guards: a quote flagged STALE or older than ``stale_ms`` (``close_stale_ms`` for a replayed
  daily close); the two legs' calibrated timestamps more than ``max_skew_ms`` apart
  (``close_skew_ms`` when a leg's quote is a daily close); a closed session on either venue (unless
  ``require_sessions_open`` is false); a one-sided book or no FX rate (no parity);
- one pair in flight at a time; a cool-down after each decision;
- the transition from the position to the target (open, add, reduce, close, reverse) as one
  :class:`~xmc_actors.model.pairs.PairIntent`: whole lots on each leg as close as possible to the
  hedge ratio, limit and trigger prices on the tick grid at the executable prices (对价),
  execution mode and budgets from the strategy's ``execution`` config, accounts from its legs;
- deterministic decision ids ``{strategy}-{seq:08d}`` (``decision_seq`` restored at start);
- position tracking from the coordinator's pair summaries (:meth:`Strategy.on_pair_done`);
- events: a SIGNAL (with the numbers: signal value, bands, prices, FX used) for each decision
  and each change of guard state, ALERTs, LIFECYCLE on halt/resume.

A new strategy is one subclass that implements :meth:`Strategy.decide`::

    class MyStrat(Strategy, name="my_strat", params=MyParams):
        def decide(self, snap: Snapshot) -> Decision | None:
            ...

The class keyword arguments register it in :data:`xmc_actors.model.registry.STRATEGIES`
(parameters checked by ``xmc validate``; the class is the entry's factory).
"""
from __future__ import annotations

import traceback
from collections import OrderedDict, deque
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ValidationError

from ..core.calendar import instrument_session_state, open_window_ns
from ..core.clock import Clock, SystemClock
from ..core.pricing import (
    CostModel, FxBook, PairSizing, Parity, ParityEngine, ParityUnavailable, hedge_lots, quote_is_stale,
    resolve_hedge_ratio, size_pair,
)
from ..core.sink import EventMaker
from ..model.config import DeploymentConfig, ExecutionConfig, StrategyConfig
from ..model.events import Event, EventKind
from ..model.market import Instrument, Side, Venue
from ..model.pairs import LegIntent, LegSpec, PairIntent, PairState, PairSummary
from ..model.quotes import Quote, QuoteStatus
from ..model.registry import STRATEGIES
from .params import Guards

_MS = 1_000_000
_STALE = QuoteStatus.STALE


# =========================================================================== value types
class StrategyState(str, Enum):
    ACTIVE = "ACTIVE"
    HALTED = "HALTED"  # by an operator, or after an ESCALATED pair or a malformed pair summary
    ERROR = "ERROR"    # the strategy's own code raised; halted until resumed


_ACTIVE = StrategyState.ACTIVE  # read on every quote (an enum member's lookup costs more than a global's)


class Transition(str, Enum):
    OPEN = "open"
    ADD = "add"
    REDUCE = "reduce"
    CLOSE = "close"
    REVERSE = "reverse"


def classify(position: int, target: int) -> Transition | None:
    """Name the move from ``position`` to ``target`` (signed leg-A lots); None if no move."""
    if target == position:
        return None
    if position == 0:
        return Transition.OPEN
    if target == 0:
        return Transition.CLOSE
    if (position > 0) != (target > 0):
        return Transition.REVERSE
    return Transition.ADD if abs(target) > abs(position) else Transition.REDUCE


@dataclass(frozen=True, slots=True)
class Submit:
    """Action: send this intent to the pair coordinator."""

    intent: PairIntent


@dataclass(frozen=True, slots=True)
class Emit:
    """Action: write this event to the ledger."""

    event: Event


Action = Submit | Emit


@dataclass(frozen=True, slots=True)
class Decision:
    """What :meth:`Strategy.decide` returns: a target position and why.

    ``target`` is signed leg-A lots (+: long A / short B). ``signal`` holds the numbers that
    justified it (signal value, bands, ...); they go into the SIGNAL event.
    """

    target: int
    reason: str
    signal: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a strategy sees: both legs' latest quotes and their parity at ``now_ns``."""

    now_ns: int
    quote_a: Quote
    quote_b: Quote
    parity: Parity | None
    position: int


_SNAP_FIELDS = ("now_ns", "quote_a", "quote_b", "parity", "position")
if tuple(f.name for f in fields(Snapshot)) != _SNAP_FIELDS:  # pragma: no cover - a developer's slip
    raise ImportError("Snapshot's fields changed: update _SNAP_FIELDS and _new_snapshot")


class _SnapshotDraft:
    """A :class:`Snapshot` being made: the same slots, writable; it becomes a ``Snapshot`` once
    written (as :class:`xmc_actors.core.pricing._ParityDraft` does for a parity)."""

    __slots__ = Snapshot.__slots__


def _new_snapshot(now_ns: int, quote_a: Quote, quote_b: Quote, parity: Parity | None, position: int) -> Snapshot:
    """``Snapshot(...)``, made on every evaluation without a frozen dataclass's ``__init__``
    (``object.__setattr__`` per field). Same type, same equality, frozen as any other."""
    snap = _SnapshotDraft()
    snap.now_ns = now_ns; snap.quote_a = quote_a; snap.quote_b = quote_b  # noqa: E702
    snap.parity = parity; snap.position = position  # noqa: E702
    snap.__class__ = Snapshot  # type: ignore[assignment]
    return snap  # type: ignore[return-value]


if _new_snapshot(1, 2, 3, 4, 5) != Snapshot(1, 2, 3, 4, 5) or \
        type(_new_snapshot(1, 2, 3, 4, 5)) is not Snapshot:  # type: ignore[arg-type]  # pragma: no cover
    raise ImportError("_new_snapshot does not make the Snapshot(...) of the same fields: update it")


@dataclass(slots=True)
class _Pending:
    intent: PairIntent
    submitted_ns: int
    overdue_alerted: bool = False


# =========================================================================== context
@dataclass(frozen=True)
class StrategyContext:
    """Everything a strategy instance needs from the deployment (picklable)."""

    name: str
    legs: tuple[LegSpec, LegSpec]
    instruments: tuple[Instrument, Instrument]
    venues: tuple[Venue, Venue]
    fx: FxBook
    hedge_ratio: Decimal
    execution: ExecutionConfig = ExecutionConfig()
    clock: Clock = field(default_factory=SystemClock)
    actor: str = "strategy"

    @classmethod
    def from_config(cls, cfg: StrategyConfig, deployment: DeploymentConfig, fx: FxBook,
                    clock: Clock | None = None, actor: str = "strategy") -> "StrategyContext":
        a, b = (deployment.instrument(leg.instrument) for leg in cfg.legs)
        return cls(
            name=cfg.name, legs=cfg.legs, instruments=(a, b),
            venues=(deployment.venue(a.venue), deployment.venue(b.venue)), fx=fx,
            hedge_ratio=resolve_hedge_ratio(cfg.hedge_ratio, a, b), execution=cfg.execution,
            clock=clock or SystemClock(), actor=actor,
        )


# =========================================================================== the base class
class Strategy:
    """Base class of every strategy (pure core; hosted by :class:`xmc_actors.actors.strategy.StrategyHost`).

    Subclasses implement :meth:`decide` and may override :meth:`on_result`. Register with
    class keywords: ``class MyStrat(Strategy, name="my_strat", params=MyParams)``.

    Parameters
    ----------
    ctx
        Legs, instruments, venues, FX, hedge ratio, execution settings, clock.
    params
        The parameter model instance, or a dict validated against the registered model.
    position, position_b, decision_seq
        State restored at start (signed leg-A and leg-B lots; the last decision counter).
    """

    registry_name: ClassVar[str] = ""
    params_model: ClassVar[type[BaseModel]]
    #: False for strategies that never trade (basis monitor): no sizing check, no intents.
    trades: ClassVar[bool] = True

    def __init_subclass__(cls, *, name: str | None = None, params: type[BaseModel] | None = None,
                          **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if params is not None:
            cls.params_model = params
        if name is not None:
            register_strategy(name, getattr(cls, "params_model", None))(cls)

    def __init__(self, ctx: StrategyContext, params: BaseModel | dict[str, Any] | None = None, *,
                 position: int = 0, position_b: int = 0, decision_seq: int = 0) -> None:
        model = getattr(type(self), "params_model", None)
        if model is None:
            raise TypeError(f"{type(self).__name__} has no parameter model: declare params=... on the class")
        if params is None or isinstance(params, dict):
            try:
                params = model.model_validate(params or {})
            except ValidationError as e:
                first = e.errors(include_url=False)[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"strategy {ctx.name!r}: params.{where}: {first['msg']}") from None
        elif not isinstance(params, model):
            raise TypeError(f"strategy {ctx.name!r}: params must be {model.__name__}, got {type(params).__name__}")
        self.ctx = ctx
        self.params: Any = params
        self.name = ctx.name
        self.a, self.b = ctx.instruments
        self._a_id, self._b_id = self.a.id, self.b.id  # Instrument.id formats a string on each read
        # the guards' session check per leg: (instrument, venue, open from, open until); within
        # an open session the answer cannot change, so a quote inside it asks the calendar nothing
        self._sessions = [[inst, venue, 0, 0] for inst, venue in zip(ctx.instruments, ctx.venues)]
        self.guards: Guards = getattr(params, "guards", None) or Guards()
        self.cooldown_ns = int(getattr(params, "cooldown_ms", 0)) * _MS
        self.backoff_until_ns = 0  # a refusal by trading state (HALTED/REDUCING) pauses new entries
        self.clip: int = int(getattr(params, "clip", 1))
        self.max_position: int | None = getattr(params, "max_position", None)
        self.engine = ParityEngine(
            self.a, self.b, ctx.fx, CostModel.from_params(getattr(params, "costs", None)),
            price=getattr(params, "price", "executable"),
        )
        self.events = EventMaker(ctx.clock, f"{ctx.actor}/{ctx.name}")
        # state
        self.state = StrategyState.ACTIVE
        self.state_reason = ""
        self.restore_needed = ""  # why its position is unknown (it cannot be resumed until restored)
        self.position = int(position)
        self.position_b = int(position_b)
        self.decision_seq = int(decision_seq)
        self.quotes: dict[str, Quote] = {}
        self.last_signal: dict[str, Any] = {}
        self.last_decision_ns: int | None = None
        self.blocked: tuple[str, str] | None = None  # (code, detail)
        self.venues_down: dict[str, str] = {}  # venue code -> why (pushed by the coordinator)
        self.errors: deque[str] = deque(maxlen=10)
        self.counters: dict[str, int] = {"evaluations": 0, "intents": 0, "blocked": 0, "pairs_done": 0,
                                         "bad_input": 0}
        self._pending: _Pending | None = None
        # decisions applied (newest 1024): the net lots per leg applied for each and the applied
        # summary's ts_ns; a newer revised summary of the same decision applies the difference
        self._done: OrderedDict[str, tuple[int, int, int]] = OrderedDict()
        self._outbox: list[Action] = []
        if self.trades:
            self._check_clip_hedges()

    def __getstate__(self) -> dict[str, Any]:
        # the event maker holds a lock: rebuilt on unpickling (strategies are shipped to host actors)
        state = dict(self.__dict__)
        state.pop("events", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.events = EventMaker(self.ctx.clock, f"{self.ctx.actor}/{self.ctx.name}")

    # ------------------------------------------------------------------ hooks for subclasses
    def decide(self, snap: Snapshot) -> Decision | None:
        """Return the target position for this snapshot, or None to hold. Must be deterministic."""
        raise NotImplementedError

    def on_result(self, summary: PairSummary) -> None:
        """Called after the position was updated from a pair summary (optional)."""

    # ------------------------------------------------------------------ helpers for subclasses
    def alert(self, level: Literal["info", "yellow", "orange", "red"], message: str, now_ns: int,
              **numbers: Any) -> None:
        """Queue an ALERT event (written with this call's other actions)."""
        self._outbox.append(Emit(self.events.make(
            EventKind.ALERT, ts_ns=now_ns, strategy=self.name, reason=message, level=level, **numbers)))

    def record(self, kind: EventKind, reason: str, now_ns: int, **payload: Any) -> None:
        """Queue any other event (SIGNAL, TIMER, ...)."""
        self._outbox.append(Emit(self.events.make(kind, ts_ns=now_ns, strategy=self.name, reason=reason, **payload)))

    # ------------------------------------------------------------------ the pure core API
    @property
    def instrument_ids(self) -> tuple[str, str]:
        return self.a.id, self.b.id

    @property
    def pending_decision(self) -> str | None:
        return self._pending.intent.decision_id if self._pending else None

    def on_quotes(self, quotes: list[Quote], now_ns: int) -> list[Action]:
        """Take a (conflated) quote batch; return the intents to submit and events to write."""
        changed = False
        a_id, b_id, held = self._a_id, self._b_id, self.quotes
        for q in quotes:
            inst = q.instrument
            if inst == a_id or inst == b_id:
                old = held.get(inst)
                if old is None or q.ts_ns >= old.ts_ns:
                    held[inst] = q
                    changed = True
        if not changed:
            return []
        if self._pending is not None:
            self._check_overdue(now_ns)
        if self.state is _ACTIVE:
            self._evaluate(now_ns)
        out, self._outbox = self._outbox, []  # _flush, written out (every quote)
        return out

    def on_pair_done(self, summary: PairSummary | Mapping[str, Any], now_ns: int) -> list[Action]:
        """Apply the coordinator's outcome of a pair to the position.

        ``summary`` is a :class:`~xmc_actors.model.pairs.PairSummary` (or its ``model_dump``, as
        it arrives over Ray). Each leg's signed ``net_qty`` (``filled_qty`` minus
        ``rollback_qty`` in the leg's direction) moves the position. A summary this strategy
        cannot read is recorded as BAD_INPUT and halts the strategy: its position is then
        unknown and it must not trade on a guess.
        """
        if not isinstance(summary, PairSummary):
            try:
                summary = PairSummary.model_validate(summary)
            except (ValidationError, TypeError) as e:
                raw = summary.get("decision_id", "") if isinstance(summary, Mapping) else ""
                return self._unreadable_summary("pair summary", str(raw), e, now_ns)
        did = summary.decision_id
        if summary.incremental:
            return self._on_late_fill(did, summary, now_ns)
        if did in self._done:
            return self._on_revision(did, summary, now_ns)
        pend = self._pending
        if pend is None or pend.intent.decision_id != did:
            self.counters["bad_input"] += 1
            self._outbox.append(Emit(self.events.make(
                EventKind.BAD_INPUT, ts_ns=now_ns, strategy=self.name, decision_id=did,
                reason=f"pair summary for a decision this strategy has not pending ({did!r}; pending: {self.pending_decision!r})")))
            return self._flush()
        try:
            state = summary.pair_state
            if not state.is_terminal:
                raise ValueError(f"state: {state.value!r} is not a terminal pair state")
            net_a, net_b = self._net_fills(summary, pend.intent)
        except (ValueError, TypeError, KeyError) as e:
            return self._unreadable_summary("pair summary", did, e, now_ns)
        self.position += net_a
        self.position_b += net_b
        self._pending = None
        self._done[did] = (net_a, net_b, summary.ts_ns)
        while len(self._done) > 1024:
            self._done.popitem(last=False)
        self.last_decision_ns = max(self.last_decision_ns or 0, now_ns)
        self.counters["pairs_done"] += 1
        if state is PairState.ESCALATED:
            self._halt(f"pair {did} ESCALATED: residual recorded by the coordinator", now_ns, StrategyState.HALTED)
        elif state is PairState.REFUSED and ("TRADING_" in summary.reason or summary.reason.startswith("ROLLING:")):
            # halted or reducing by the risk guard or an operator, or its position being rolled:
            # do not re-submit every cool-down; try again after TRADING_STATE_BACKOFF (a resume,
            # or the roll's outcome, then takes effect)
            self.backoff_until_ns = now_ns + TRADING_STATE_BACKOFF_NS
            self._set_blocked("TRADING_STATE", f"pair {did} refused: {summary.reason}", now_ns)
        self.on_result(summary)
        return self._flush()

    def on_submit_failed(self, decision_id: str, error: str, now_ns: int, *, final: bool) -> list[Action]:
        """The coordinator call failed. Its outcome is unknown: the pair stays pending.

        The host re-submits the same intent (``submit`` is idempotent on ``decision_id``);
        ``final`` says it gave up, which raises an orange alert for an operator.
        """
        self.errors.append(f"submit {decision_id}: {error}")
        if final:
            self.alert("orange", f"submit of {decision_id} failed ({error}); outcome unknown, strategy waits", now_ns,
                       decision_id=decision_id)
        return self._flush()

    def fail(self, exc: BaseException, where: str, now_ns: int) -> list[Action]:
        """Record an exception raised by this strategy and halt it (state ERROR)."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
        msg = f"{where}: {type(exc).__name__}: {exc}"
        self.errors.append(msg)
        self._outbox.clear()
        self.state = StrategyState.ERROR
        self.state_reason = msg
        return [Emit(self.events.make(EventKind.STRATEGY_ERROR, ts_ns=now_ns, strategy=self.name, reason=msg,
                                      traceback=tb[-2000:], position=self.position))]

    def halt(self, reason: str, now_ns: int) -> list[Action]:
        """Stop sending new intents (a pair already in flight completes and is accounted)."""
        self._halt(reason, now_ns, StrategyState.HALTED)
        return self._flush()

    def on_venue_state(self, venue: str, up: bool, reason: str, now_ns: int) -> list[Action]:
        """A venue this strategy trades went DOWN (no trigger until it is UP again: its quotes
        cannot be trusted and its leg cannot be sent) or came back UP."""
        if venue not in {v.code for v in self.ctx.venues}:
            return []
        if up:
            if self.venues_down.pop(venue, None) is not None:
                self.record(EventKind.SIGNAL, f"venue {venue} UP", now_ns, venue=venue)
        elif venue not in self.venues_down:
            self.venues_down[venue] = reason or "down"
            self._set_blocked("VENUE_DOWN", f"{venue}: {reason or 'down'}", now_ns)
        return self._flush()

    def resume(self, reason: str, now_ns: int) -> list[Action]:
        """Back to ACTIVE (from HALTED or ERROR: an operator's decision), unless its position is
        not known (``restore_needed``: its host restarted without restoring it)."""
        if self.restore_needed:
            self.record(EventKind.LIFECYCLE, f"resume refused ({reason}): {self.restore_needed}", now_ns,
                        state=self.state.value, position=self.position)
            return self._flush()
        if self.state is not StrategyState.ACTIVE:
            self.state, self.state_reason = StrategyState.ACTIVE, ""
            self.record(EventKind.LIFECYCLE, f"resumed: {reason}", now_ns, state="ACTIVE", position=self.position)
        return self._flush()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name, "class": self.registry_name or type(self).__name__, "state": self.state.value,
            "reason": self.state_reason, "instruments": list(self.instrument_ids),
            "position": self.position, "position_b": self.position_b,
            "hedge_ratio": float(self.ctx.hedge_ratio), "pending": self.pending_decision,
            "decision_seq": self.decision_seq, "blocked": None if self.blocked is None else f"{self.blocked[0]}: {self.blocked[1]}",
            "last_signal": dict(self.last_signal), "errors": list(self.errors), "counters": dict(self.counters),
        }

    # ------------------------------------------------------------------ internals
    def _flush(self) -> list[Action]:
        out, self._outbox = self._outbox, []
        return out

    def _halt(self, reason: str, now_ns: int, state: StrategyState) -> None:
        self.state, self.state_reason = state, reason
        self.record(EventKind.LIFECYCLE, f"halted: {reason}", now_ns, state=state.value, position=self.position)

    def _check_clip_hedges(self) -> None:
        try:
            size_pair(self.clip, self.ctx.hedge_ratio, self.a, self.b)
        except ValueError as e:
            raise ValueError(f"strategy {self.name!r}: params.clip: {e}") from None

    def _check_overdue(self, now_ns: int) -> None:
        p = self._pending
        if p is None or p.overdue_alerted:
            return
        deadline = p.intent.deadline_ns or (p.submitted_ns + self.ctx.execution.deadline_ms * _MS)
        if now_ns > deadline + 30_000 * _MS:
            p.overdue_alerted = True
            self.alert("yellow", f"no outcome for {p.intent.decision_id} 30 s after its deadline; strategy waits",
                       now_ns, decision_id=p.intent.decision_id)

    def _guard(self, qa: Quote, qb: Quote, now_ns: int) -> tuple[str, str] | None:
        g = self.guards
        if self.venues_down:
            venue, why = next(iter(self.venues_down.items()))
            return "VENUE_DOWN", f"{venue}: {why}"
        ta, tb = qa.ts_ns, qb.ts_ns
        daily_a, daily_b = qa.origin is not None, qb.origin is not None  # a daily close, or a bridge: one price a day
        # quote_is_stale of each leg, written out (two calls a quote); the message is made only when stale
        limit_a = g.close_stale_ms if daily_a else g.stale_ms
        limit_b = g.close_stale_ms if daily_b else g.stale_ms
        if (qa.status is _STALE or now_ns - ta > limit_a * _MS) or (qb.status is _STALE or now_ns - tb > limit_b * _MS):
            for q, daily, limit in ((qa, daily_a, limit_a), (qb, daily_b, limit_b)):
                if quote_is_stale(q, now_ns, limit):
                    age = (now_ns - q.ts_ns) / _MS
                    name = "close_stale_ms" if daily else "stale_ms"
                    return "STALE", f"{q.instrument} quote is {q.status.value}, {age:.0f} ms old ({name}={limit})"
        skew = (ta - tb if ta >= tb else tb - ta) / _MS
        daily = daily_a or daily_b
        max_skew = max(g.max_skew_ms, g.close_skew_ms) if daily else g.max_skew_ms
        if skew > max_skew:
            name = "close_skew_ms" if daily else "max_skew_ms"
            return "SKEW", f"legs' calibrated times are {skew:.0f} ms apart ({name}={max_skew})"
        sa, sb = self._sessions
        if g.require_sessions_open and not (sa[2] <= now_ns < sa[3] and sb[2] <= now_ns < sb[3]):
            for leg in (sa, sb):
                if leg[2] <= now_ns < leg[3]:
                    continue
                inst, venue = leg[0], leg[1]
                st = instrument_session_state(venue, inst, now_ns)
                if not st.open:
                    return "SESSION", f"{inst.id}: {st.reason}"
                win = open_window_ns(venue, now_ns, inst.sessions)
                if win is not None:
                    leg[2], leg[3] = win
        return None

    def _set_blocked(self, code: str, detail: str, now_ns: int) -> None:
        self.counters["blocked"] += 1
        if self.blocked is None or self.blocked[0] != code:
            self.record(EventKind.SIGNAL, f"blocked: {code}", now_ns, blocked=code, detail=detail)
        self.blocked = (code, detail)

    def _evaluate(self, now_ns: int) -> None:
        qa, qb = self.quotes.get(self._a_id), self.quotes.get(self._b_id)
        if qa is None or qb is None:
            missing = self.a.id if qa is None else self.b.id
            self._set_blocked("NO_QUOTE", f"no quote yet for {missing}", now_ns)
            return
        g = self._guard(qa, qb, now_ns)
        if g is not None:
            self._set_blocked(*g, now_ns)
            return
        try:
            parity = self.engine.compute(qa, qb)
        except ParityUnavailable as e:
            self._set_blocked("NO_PARITY", e.reason, now_ns)
            return
        # paused entries (a refusal by trading state) stay blocked until the pause ends: recording
        # "unblocked" on every quote, then "blocked" again, wrote a pair of events per tick
        if self.blocked is not None and not (self.blocked[0] == "TRADING_STATE" and now_ns < self.backoff_until_ns):
            self.record(EventKind.SIGNAL, "unblocked", now_ns, was=self.blocked[0])
            self.blocked = None
        self.counters["evaluations"] += 1
        snap = _new_snapshot(now_ns, qa, qb, parity, self.position)
        decision = self.decide(snap)
        if decision is None:
            return
        self.last_signal = {"reason": decision.reason, "target": decision.target, **decision.signal}
        if not self.trades:
            return
        target = decision.target
        if self.max_position is not None:
            target = max(-self.max_position, min(self.max_position, target))
        if target == self.position or self._pending is not None:
            return
        if now_ns < self.backoff_until_ns:
            self._set_blocked("TRADING_STATE", "a pair was refused by trading state; entries paused until "
                              f"{self.backoff_until_ns}", now_ns)
            return
        if self.last_decision_ns is not None and now_ns - self.last_decision_ns < self.cooldown_ns:
            self.last_signal["cooldown"] = True
            return
        self._submit(target, decision, snap, parity)

    def _hedge_b(self, a_lots: int) -> int:
        """Signed leg-B lots that hedge ``a_lots`` signed leg-A lots: the whole B lots nearest
        to ``|a_lots| x hedge ratio``, on the other side."""
        qty = hedge_lots(a_lots, self.ctx.hedge_ratio, self.b)
        return -qty if a_lots > 0 else qty

    def _sizing(self, qty_a: int, target: int) -> tuple[PairSizing | None, str]:
        """Whole-lot quantities of the move to ``target``, or ``(None, why)`` when no pair can
        make it without adding to the imbalance.

        Leg B is sized against what the strategy holds, not against the move alone: after the
        pair, B holds the whole B lots nearest to the hedge of ``target`` (a close flattens both
        legs as held). A pair ends balanced within one lot, not exactly, so the residuals of
        pairs in a row would otherwise add up to whole lots of one leg with nothing against
        them; each move takes back what the ones before it left.
        """
        delta_a = target - self.position
        want_b = self._hedge_b(target)
        move_b = want_b - self.position_b
        if move_b == 0 or (move_b > 0) == (delta_a > 0):
            if move_b == 0 and want_b == self._hedge_b(self.position):
                why = (f"{qty_a} lot(s) of {self.a.id} hedges less than one lot of {self.b.id} "
                       f"(hedge ratio {float(self.ctx.hedge_ratio):.4f})")
            else:  # what earlier pairs left on leg B is in the way
                why = (f"holding {self.position:+d} {self.a.id} / {self.position_b:+d} {self.b.id}: the hedge of "
                       f"{target:+d} is {want_b:+d} {self.b.id}, which a pair that {'buys' if delta_a > 0 else 'sells'} "
                       f"{self.a.id} cannot reach (its leg B trades the other way); the residual needs an operator")
            return None, why
        qty_b = abs(move_b)
        ideal = float(qty_a * self.ctx.hedge_ratio)
        res = qty_b - ideal
        return PairSizing(qty_a, qty_b, ideal, res, 100.0 * res / ideal), ""

    def _submit(self, target: int, decision: Decision, snap: Snapshot, parity: Parity) -> None:
        move = classify(self.position, target)
        assert move is not None
        delta = target - self.position
        side_a = Side.BUY if delta > 0 else Side.SELL
        qty_a = abs(delta)
        sizing, why = self._sizing(qty_a, target)
        if sizing is None:
            # e.g. an add clamped by max_position to 1 lot of a leg whose hedge rounds to 0
            self._set_blocked("TOO_SMALL_TO_HEDGE", f"{move.value}: {why}", snap.now_ns)
            return
        self.decision_seq += 1
        did = decision_id(self.name, self.decision_seq)
        intent = self._build_intent(did, side_a, sizing, snap, move, target)
        self._pending = _Pending(intent, snap.now_ns)
        self.last_decision_ns = snap.now_ns
        self.counters["intents"] += 1
        # the legs as the intent has them (a restarted coordinator that lost the pair's every
        # event rebuilds the intent from this: PairBook.orphan_intent)
        legs = [{"leg": leg.leg, "instrument": leg.instrument, "account": leg.account, "side": leg.side.value,
                 "qty": leg.qty, "limit": str(leg.limit_price)} for leg in intent.legs]
        self._outbox.append(Emit(self.events.make(
            EventKind.SIGNAL, ts_ns=snap.now_ns, decision_id=did, strategy=self.name, reason=decision.reason,
            transition=move.value, position=self.position, target=target, legs=legs, mode=intent.mode.value,
            reduce_only=intent.reduce_only,
            hedge_ratio=float(self.ctx.hedge_ratio), pair_hedge_ratio=str(intent.hedge_ratio),
            residual_b_lots=sizing.residual_b_lots,
            residual_pct=sizing.residual_pct, signal=dict(decision.signal), parity=parity.payload())))
        self._outbox.append(Submit(intent))

    def _build_intent(self, did: str, side_a: Side, sizing: PairSizing, snap: Snapshot, move: Transition,
                      target: int) -> PairIntent:
        """The pair of ``sizing``. Its hedge ratio is the strategy's, unless leg B is not the
        hedge of the move alone (it takes back an earlier residual, or flattens what is held):
        then it is the pair's own ``qty_b / qty_a``, the proportion the coordinator keeps the
        legs in while it works the pair (replenishing, rolling back), so that a close which
        fills short on one leg does not end "balanced within a lot" with a lot of the other
        left over. ``reduce_only`` when both legs shrink."""
        ex = self.ctx.execution
        legs = []
        for name, spec, inst, q, side, qty in (
            ("A", self.ctx.legs[0], self.a, snap.quote_a, side_a, sizing.qty_a),
            ("B", self.ctx.legs[1], self.b, snap.quote_b, side_a.opposite, sizing.qty_b),
        ):
            px = q.ask if side is Side.BUY else q.bid  # 对价: buy at the ask, sell at the bid
            assert px is not None  # the parity engine refused one-sided books
            # never a worse limit than the price seen: buys round down, sells round up
            limit = inst.round_price(px, "down" if side is Side.BUY else "up")
            legs.append(LegIntent(leg=name, instrument=inst.id, account=spec.account, side=side, qty=qty,
                                  limit_price=limit, trigger_price=limit))
        ratio = self.ctx.hedge_ratio
        if sizing.qty_b != abs(self._hedge_b(sizing.qty_a)):  # not the hedge of the move alone
            ratio = Decimal(sizing.qty_b) / Decimal(sizing.qty_a)
        b_after = self._hedge_b(target)  # what _sizing brings leg B to
        b_shrinks = abs(b_after) < abs(self.position_b) and b_after * self.position_b >= 0
        reduce_only = move in (Transition.CLOSE, Transition.REDUCE) and b_shrinks
        return PairIntent(
            decision_id=did, strategy=self.name, legs=(legs[0], legs[1]), hedge_ratio=ratio,
            mode=ex.mode, deadline_ns=snap.now_ns + ex.deadline_ms * _MS, replenish=ex.replenish,
            start_by_ns=ex.start_by_ns(snap.now_ns),
            rollback=ex.rollback, max_slippage_bps=ex.max_slippage_bps, reduce_only=reduce_only,
            created_ns=snap.now_ns,
        )

    def _unreadable_summary(self, what: str, did: str, e: Exception, now_ns: int) -> list[Action]:
        """A summary this strategy cannot read: BAD_INPUT, and halted (its position is unknown)."""
        self.counters["bad_input"] += 1
        self._halt(f"position unknown: malformed {what} for {did}: {e}", now_ns, StrategyState.HALTED)
        self._outbox.insert(0, Emit(self.events.make(
            EventKind.BAD_INPUT, ts_ns=now_ns, strategy=self.name, decision_id=did, reason=f"malformed {what}: {e}")))
        return self._flush()

    def _on_revision(self, did: str, summary: PairSummary, now_ns: int) -> list[Action]:
        """A decision already applied, summarised again: the same push twice changes nothing; a
        revision (a late fill on a finished pair, an escalated pair's residual restated) moves
        the position by the difference, so it stays what the venues hold. One older (``ts_ns``)
        than the summary applied is stale (a restarted coordinator's push) and ignored."""
        a0, b0, ts0 = self._done[did]
        ts = summary.ts_ns
        if ts and ts < ts0:
            return []
        la, lb = summary.leg("A"), summary.leg("B")
        if la is None or lb is None:
            return []  # no legs to compare (a refusal applied at once, then pushed): a plain repeat
        now = (la.net_lots, lb.net_lots)
        if now == (a0, b0):
            return []  # a repeated push: already applied
        da, db = now[0] - a0, now[1] - b0
        self.position += da
        self.position_b += db
        self._done[did] = (*now, max(ts, ts0))
        self.counters["revisions"] = self.counters.get("revisions", 0) + 1
        self.record(EventKind.LIFECYCLE, f"pair {did} revised: {da:+d}/{db:+d} lots (late fill)", now_ns,
                    decision_id=did, position=self.position, position_b=self.position_b)
        return self._flush()

    def _on_late_fill(self, did: str, summary: PairSummary, now_ns: int) -> list[Action]:
        """An incremental summary: a fill that arrived after the coordinator forgot pair ``did``
        (``legs`` lists only what to add). The lots go into the position (it is what the venue
        holds) and the strategy halts: the coordinator escalated the pair and an operator
        decides what to do with the unhedged lots."""
        try:
            if not summary.legs:
                raise ValueError("legs: missing")
            add = {"A": 0, "B": 0}
            for lg in summary.legs:
                if lg.leg not in add:
                    raise ValueError(f"legs: unknown leg {lg.leg!r}")
                add[lg.leg] += lg.net_lots
        except ValueError as e:
            return self._unreadable_summary("late-fill summary", did, e, now_ns)
        self.position += add["A"]
        self.position_b += add["B"]
        if did in self._done:
            a, b, ts = self._done[did]
            self._done[did] = (a + add["A"], b + add["B"], ts)
        self.counters["late_fills"] = self.counters.get("late_fills", 0) + 1
        self._halt(f"late fill on pair {did} after it finished: ESCALATED, {add['A']:+d}/{add['B']:+d} lots "
                   "added to the position", now_ns, StrategyState.HALTED)
        return self._flush()

    @staticmethod
    def _net_fills(summary: PairSummary, intent: PairIntent) -> tuple[int, int]:
        if not summary.legs and summary.pair_state is PairState.REFUSED:
            return 0, 0  # refused before any order: nothing filled
        out = []
        for li in intent.legs:
            lg = summary.leg(li.leg)
            if lg is None:
                raise ValueError(f"legs.{li.leg}: missing")
            if lg.instrument != li.instrument or lg.side is not li.side:
                raise ValueError(f"legs.{li.leg}: {lg.side.value} {lg.instrument} is not the intent's "
                                 f"{li.side.value} {li.instrument}")
            out.append(lg.net_lots)
        return out[0], out[1]


def decision_id(strategy: str, seq: int) -> str:
    """The id of a strategy's ``seq``-th decision: ``{strategy}-{seq:08d}``."""
    return f"{strategy}-{seq:08d}"


def decision_seq_of(strategy: str, did: str) -> int | None:
    """The sequence number in ``did`` if it is one of ``strategy``'s decision ids, else None."""
    tail = did[len(strategy) + 1:] if did.startswith(f"{strategy}-") else ""
    return int(tail) if tail.isdigit() else None


# =========================================================================== band logic
def band_target(position: int, dev_sell: float, dev_buy: float, *, entry: float, exit: float, clip: int,
                max_position: int, scale_step: float | None = None) -> tuple[int, str] | None:
    """Target position of a band strategy with hysteresis (entry > exit > ... distances).

    ``dev_sell`` is the value at which A can be *sold* (SELL_A) minus the centre: A is rich
    when it reaches ``+entry``. ``dev_buy`` is the value at which A can be *bought* (BUY_A)
    minus the centre: A is cheap at ``-entry``. A short closes when ``dev_buy <= exit``, a long
    when ``dev_sell >= -exit``; between exit and entry the position is held (hysteresis).

    Without ``scale_step`` each trigger adds one ``clip`` up to ``max_position``; with it, the
    target is one clip at ``entry`` plus one per further ``scale_step`` (so the position is
    reduced as the deviation shrinks back towards entry).
    """
    if dev_sell >= entry:  # A rich: sell A / buy B
        if scale_step is not None:
            return -_scaled_level(dev_sell, entry, clip, max_position, scale_step), \
                f"A rich by {dev_sell:.6g} >= entry {entry:g} (scaled)"
        tgt = -clip if position > 0 else max(-max_position, position - clip)
        return tgt, f"A rich by {dev_sell:.6g} >= entry {entry:g}"
    if dev_buy <= -entry:  # A cheap: buy A / sell B
        if scale_step is not None:
            return _scaled_level(-dev_buy, entry, clip, max_position, scale_step), \
                f"A cheap by {-dev_buy:.6g} >= entry {entry:g} (scaled)"
        tgt = clip if position < 0 else min(max_position, position + clip)
        return tgt, f"A cheap by {-dev_buy:.6g} >= entry {entry:g}"
    if position < 0 and dev_buy <= exit:
        return 0, f"short closes: buy-back deviation {dev_buy:.6g} <= exit {exit:g}"
    if position > 0 and dev_sell >= -exit:
        return 0, f"long closes: sell deviation {dev_sell:.6g} >= -exit {-exit:g}"
    return None


def _scaled_level(dev: float, entry: float, clip: int, max_position: int, scale_step: float) -> int:
    """:func:`band_target`'s scaled target: one clip at ``entry``, one more per ``scale_step``
    beyond it (a module function: a closure made on every call cost every quote)."""
    return min(max_position, clip * (1 + int((dev - entry) // scale_step)))


TRADING_STATE_BACKOFF_NS = 5_000 * _MS


# =========================================================================== registration
def register_strategy(name: str, params: type[BaseModel] | None = None, *, doc: str = ""):
    """Class decorator registering a :class:`Strategy` subclass under ``name``.

    ``params`` defaults to the class's ``params_model``. Registering a *different* class under
    a name already taken raises a clear error (re-registering the same class is a no-op).
    """
    def deco(cls: type[Strategy]) -> type[Strategy]:
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise TypeError(f"register_strategy({name!r}): {cls!r} is not a Strategy subclass")
        model = params or getattr(cls, "params_model", None)
        if model is None or not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"register_strategy({name!r}): params must be a pydantic model class, got {model!r}")
        old = STRATEGIES.entries.get(name)
        if old is not None and old.factory is not None and _qualname(old.factory) != _qualname(cls):
            raise ValueError(f"strategy class name {name!r} is already registered by {_qualname(old.factory)}")
        cls.params_model = model
        cls.registry_name = name
        STRATEGIES.register(name, model, cls, doc or (cls.__doc__ or "").strip().split("\n")[0])
        return cls

    return deco


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def build_strategy(cfg: StrategyConfig, deployment: DeploymentConfig, fx: FxBook, *, clock: Clock | None = None,
                   actor: str = "strategy", position: int = 0, position_b: int = 0, decision_seq: int = 0) -> Strategy:
    """Instantiate the registered class of ``cfg`` with its validated parameters.

    Raises
    ------
    KeyError
        Unknown strategy class (the message lists the known ones).
    ValueError
        Parameters that do not validate, or a clip that hedges zero lots of leg B.
    """
    entry = STRATEGIES.get(cfg.class_)
    if entry.factory is None:
        raise KeyError(f"strategies[{cfg.name}].class: {cfg.class_!r} has parameters registered but no class")
    ctx = StrategyContext.from_config(cfg, deployment, fx, clock, actor)
    return entry.factory(ctx, cfg.params, position=position, position_b=position_b, decision_seq=decision_seq)


__all__ = [
    "Strategy", "StrategyState", "StrategyContext", "Snapshot", "Decision", "Submit", "Emit", "Action",
    "Transition", "classify", "band_target", "register_strategy", "build_strategy",
]
