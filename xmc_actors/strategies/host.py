"""The core of a strategy host: several strategy instances sharing quote batches, each isolated.

:class:`StrategyHostCore` is pure (no Ray): it routes each quote batch to the instances that
trade those instruments, routes pair summaries by decision id, and wraps every call into an
instance so that an exception halts *that* instance only (state ERROR, a STRATEGY_ERROR
event) while the others keep running. The Ray actor (:mod:`xmc_actors.actors.strategy`) owns
one, gives it the actor's event sink and sends the intents it returns.
"""
from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from pydantic import ValidationError

from ..core.sink import EventMaker, EventSink, MemorySink
from ..model.events import Event, EventKind
from ..model.market import Instrument
from ..model.pairs import PairIntent, PairState, PairSummary
from ..model.quotes import Quote
from .base import Action, Emit, Strategy, Submit, decision_seq_of
from ..model.stages import twin_name
from .stages import StageKeeper, StageSettings


#: decision numbers skipped when a strategy is restored from the trail (StrategyHostCore.restore)
RESTART_SEQ_GAP = 1000


@dataclass(frozen=True)
class HostSpec:
    """What a strategy host builds its instances from, inside its own process.

    The runtime starts hosts with this instead of built instances: it is small (the deployment
    as plain data and the strategies' names), so Ray keeps it inline in the actor's creation
    task. Built instances can hold large data (an FX history of ten years is about 150 kB per
    instance), which Ray moves to its object store, owned by the driver; a host restarted after
    the driver released it failed in its constructor (``ReferenceCountingAssertionError``) and its
    strategies were gone for the rest of the run.

    ``deployment`` is :meth:`DeploymentConfig.model_dump` (``mode="json", by_alias=True``);
    ``decision_seqs`` each strategy's last decision sequence number in the ledger at start;
    ``classes`` the strategy classes registered in the starting process outside this package
    (a user's, defined by the script that starts the deployment): name -> (factory, parameter
    model), registered in the host's process before it builds. Classes travel as code (a few
    kB), unlike built instances.
    """

    deployment: dict[str, Any]
    strategies: tuple[str, ...]
    decision_seqs: dict[str, int] = field(default_factory=dict)
    classes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @staticmethod
    def user_classes(names: Iterable[str]) -> dict[str, tuple[Any, Any]]:
        """The registered strategy classes among ``names`` that are not this package's own."""
        from ..model.registry import STRATEGIES

        out: dict[str, tuple[Any, Any]] = {}
        for n in set(names):
            e = STRATEGIES.get(n)
            if e.factory is not None and not str(getattr(e.factory, "__module__", "")).startswith("xmc_actors."):
                out[n] = (e.factory, e.params)
        return out

    def build(self) -> list[Strategy]:
        from ..feeds.fx import fx_book_from_config
        from ..model.config import DeploymentConfig
        from ..model.registry import STRATEGIES
        from .base import build_strategy

        for name, (factory, params) in self.classes.items():
            if name not in STRATEGIES.names():
                STRATEGIES.register(name, params, factory)

        dep = DeploymentConfig.model_validate(self.deployment)
        fx = fx_book_from_config(dep.fx)
        by_name = {s.name: s for s in dep.strategies}
        missing = [n for n in self.strategies if n not in by_name]
        if missing:
            raise ValueError(f"strategy host: {', '.join(missing)} not in the deployment")
        built = [build_strategy(by_name[n], dep, fx, actor=n, decision_seq=self.decision_seqs.get(n, 0))
                 for n in self.strategies]
        for n in self.strategies:  # a canary's shadow twin: the same strategy at full size, in shadow
            if by_name[n].canary.shadow_twin:
                tw = twin_name(n)
                built.append(build_strategy(by_name[n].model_copy(update={"name": tw}), dep, fx, actor=tw,
                                            decision_seq=self.decision_seqs.get(tw, 0)))
        return built

    def instruments(self) -> dict[str, Instrument]:
        """The deployment's instruments by id (where a rolled strategy finds its far contracts)."""
        from ..model.config import DeploymentConfig

        return {i.id: i for i in DeploymentConfig.model_validate(self.deployment).instruments}

    def stage_settings(self) -> dict[str, StageSettings]:
        """Each hosted strategy's rollout stage settings (``stage``, ``canary``, ``gates``, ``demote``)."""
        from ..model.config import DeploymentConfig

        dep = DeploymentConfig.model_validate(self.deployment)
        out = {c.name: StageSettings.of(c) for c in dep.strategies if c.name in self.strategies}
        for c in dep.strategies:
            if c.name in self.strategies and c.canary.shadow_twin:
                out[twin_name(c.name)] = StageSettings(stage="shadow")
        return out


class StrategyHostCore:
    """Hosts strategy instances. Every entry point writes its events (the strategies', the
    stages', the host's own) to ``sink`` as they are made, and returns only what the actor
    must do: the intents to send, whether legs moved, the receipt of a stage change.

    Parameters
    ----------
    strategies
        The instances (unique names).
    events
        Event maker for the host's own events (BAD_INPUT on an unroutable message).
    sink
        Where every event goes (its own :class:`MemorySink` if None: tests read ``core.sink``).
    stages
        Each strategy's rollout stage settings (:class:`~xmc_actors.strategies.stages.StageSettings`);
        a strategy not named is live. Its intents pass through the
        :class:`~xmc_actors.strategies.stages.StageKeeper` (shadow: recorded, not sent; canary:
        resized and capped).
    """

    def __init__(self, strategies: Iterable[Strategy], events: EventMaker,
                 stages: Mapping[str, StageSettings] | None = None,
                 instruments: Mapping[str, Instrument] | None = None, sink: EventSink | None = None) -> None:
        #: the deployment's instruments: where a rolled strategy finds its far contracts
        self.catalogue: dict[str, Instrument] = dict(instruments or {})
        self.strategies: dict[str, Strategy] = {}
        for s in strategies:
            if s.name in self.strategies:
                raise ValueError(f"strategy name {s.name!r} is hosted twice")
            self.strategies[s.name] = s
        self.events = events
        self.sink: EventSink = sink if sink is not None else MemorySink()
        self.by_instrument: dict[str, list[Strategy]] = {}
        self._index()
        self.decisions: dict[str, str] = {}  # decision id -> strategy name
        # intents sent to the coordinator whose outcome has not come back: (intent as sent,
        # wall time it was last sent); and the latest decisions whose outcome came (bounded)
        self._awaiting: dict[str, tuple[PairIntent, int]] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self.bad_input = 0
        self.stages = StageKeeper({n: st for n, st in (stages or {}).items() if n in self.strategies}, events,
                                  self.sink)
        for s in self.strategies.values():
            self.stages.start(s, 0)

    def instruments(self) -> list[str]:
        """Instrument ids to subscribe to (one subscription per gateway covers every instance)."""
        return sorted(self.by_instrument)

    # ------------------------------------------------------------------ entry points
    def on_quotes(self, quotes: list[Quote], now_ns: int) -> list[PairIntent]:
        touched: dict[str, Strategy] = {}
        if not isinstance(quotes, (list, tuple)):
            quotes = [quotes]  # type: ignore[list-item]
        good = [q for q in quotes if isinstance(q, Quote)]
        if len(good) != len(quotes):
            bad = next(q for q in quotes if not isinstance(q, Quote))
            self.bad_input += len(quotes) - len(good)
            self.sink.emit(self.events.make(
                EventKind.BAD_INPUT, ts_ns=now_ns,
                reason=f"quotes: {len(quotes) - len(good)} item(s) are not Quote objects (first: {type(bad).__name__}); skipped"))
            quotes = good
        for q in quotes:
            if q.instrument.startswith("FX."):
                self._update_fx(q, now_ns)
                continue
            for s in self.by_instrument.get(q.instrument, ()):
                touched[s.name] = s
        intents: list[PairIntent] = []
        for s in touched.values():
            self._run(s, "on_quotes", lambda s=s: s.on_quotes(quotes, now_ns), now_ns, intents)
        return intents

    def on_pair_done(self, summary: PairSummary | Mapping[str, Any], now_ns: int) -> list[PairIntent]:
        """Route a pair summary to its strategy (by decision id, else by its ``strategy``); the
        strategy reads it (:meth:`Strategy.on_pair_done` validates a dict as a PairSummary)."""
        if not isinstance(summary, PairSummary):
            try:
                summary = PairSummary.model_validate(summary)  # as it arrives over Ray
            except (ValidationError, TypeError):
                pass  # routed by what it says, it is its strategy's bad input (and halts it)
        if isinstance(summary, PairSummary):
            did, name = summary.decision_id, self.decisions.get(summary.decision_id) or summary.strategy
        elif isinstance(summary, Mapping):
            did = str(summary.get("decision_id", ""))
            name = self.decisions.get(did) or summary.get("strategy")
        else:
            did, name = "", None
        s = self.strategies.get(str(name)) if name else None
        if isinstance(summary, PairSummary) and summary.pair_state.is_terminal:
            self._awaiting.pop(did, None)
            self._answered[did] = None
            if len(self._answered) > 10_000:
                self._answered.popitem(last=False)
        if s is not None and isinstance(summary, PairSummary):
            self.stages.on_real_summary(s.name, summary)
        if s is None:
            self.bad_input += 1
            self.sink.emit(self.events.make(EventKind.BAD_INPUT, ts_ns=now_ns, decision_id=did,
                                            reason=f"pair summary for no hosted strategy (decision_id={did!r}, strategy={name!r})"))
            return []
        intents: list[PairIntent] = []
        self._run(s, "on_pair_done", lambda: s.on_pair_done(summary, now_ns), now_ns, intents)
        if (isinstance(summary, PairSummary) and summary.pair_state is PairState.ESCALATED
                and self.stages.stage(s.name) != "shadow" and self.stages.state(s.name).settings.demote.on_red_alert):
            self.set_stage(s.name, "shadow", now_ns, operator="auto", action="auto-demote",
                           reason=f"red alert: pair {summary.decision_id} ESCALATED (demote.on_red_alert)")
        return intents

    def sending(self, intent: PairIntent, wall_ns: int) -> None:
        """``intent`` is (re-)sent to the coordinator at ``wall_ns``: awaited until its outcome
        comes (a pair already answered is not awaited again)."""
        did = intent.decision_id
        if did not in self._answered:
            self._awaiting[did] = (intent, wall_ns)

    def overdue(self, wall_ns: int, after_ns: int) -> list[PairIntent]:
        """Intents sent at least ``after_ns`` ago whose outcome has not come: to send again
        (idempotent on the decision id). A coordinator that died after accepting one may have
        sent its orders without writing a word of it; sent again, the restarted coordinator
        adopts what the venues hold for it, or answers its outcome. Each is marked as sent now."""
        out = [i for i, at in self._awaiting.values() if wall_ns - at >= after_ns]
        for i in out:
            self._awaiting[i.decision_id] = (i, wall_ns)
        return out

    def awaiting(self) -> list[str]:
        """Decision ids sent whose outcome has not come back."""
        return sorted(self._awaiting)

    def on_submit_failed(self, decision_id: str, error: str, now_ns: int, *, final: bool) -> None:
        s = self.strategies.get(self.decisions.get(decision_id, ""))
        if s is None:
            return
        self._run(s, "on_submit_failed", lambda: s.on_submit_failed(decision_id, error, now_ns, final=final),
                  now_ns, [])

    def halt(self, name: str, reason: str, now_ns: int) -> None:
        self._control(name, lambda s: s.halt(reason, now_ns), now_ns)

    def resume(self, name: str, reason: str, now_ns: int) -> None:
        self._control(name, lambda s: s.resume(reason, now_ns), now_ns)

    def on_venue_state(self, venue: str, state: str, reason: str, now_ns: int) -> None:
        """A venue went DOWN or came back UP: every hosted strategy trading on it hears it."""
        up = str(state).upper() == "UP"
        for s in self.strategies.values():
            self._run(s, "on_venue_state", lambda s=s: s.on_venue_state(venue, up, reason, now_ns), now_ns, [])

    def status(self) -> dict[str, dict[str, Any]]:
        return {n: {**s.status(), **self.stages.status(n)} for n, s in self.strategies.items()}

    def stage(self, name: str) -> str:
        self._strategy(name)
        return self.stages.stage(name)

    def set_stage(self, name: str, stage: str, now_ns: int, *, operator: str, reason: str = "",
                  action: str = "set", gate: dict[str, Any] | None = None) -> Event:
        """Move strategy ``name`` to ``stage`` (a promotion, a demotion, an automatic demotion);
        writes the STAGE event and returns it (the receipt). ``KeyError`` for a strategy not hosted,
        ``ValueError`` for a stage that is none."""
        return self.stages.set_stage(self._strategy(name), stage, now_ns, operator=operator, reason=reason,
                                     action=action, gate=gate)

    def refuse_promotion(self, name: str, to: str, now_ns: int, *, operator: str, reason: str,
                         gate: dict[str, Any]) -> Event:
        """Record a promotion the gate refused; returns the STAGE event it wrote (the receipt)."""
        self._strategy(name)
        return self.stages.record_refusal(name, to, now_ns, operator=operator, reason=reason, gate=gate)

    # ------------------------------------------------------------------ restart
    @staticmethod
    def decision_counters(events: Iterable[Event], names: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
        """Each strategy's last decision number from its trail's ``INTENT`` events, and apart
        from it the last one a shadow recorded (``SHADOW``: never sent, never booked)."""
        seqs = dict.fromkeys(names, 0)
        shadow = dict.fromkeys(seqs, 0)
        for e in events:
            if e.strategy in seqs and (seq := decision_seq_of(e.strategy, e.decision_id)) is not None:
                into = shadow if e.kind is EventKind.SHADOW else seqs
                into[e.strategy] = max(into[e.strategy], seq)
        return seqs, shadow

    @staticmethod
    def stopped_scopes(states_by_source: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """Scope -> why, for every trading state that is not ACTIVE in the risk guard's and the
        coordinator's ``status()['trading_states']`` (``{"risk guard": {...}, "coordinator": {...}}``):
        a halt, an escalation or an automatic action outlives a host's restart."""
        out: dict[str, str] = {}
        for who, states in states_by_source.items():
            for k, v in (states or {}).items():
                if v != "ACTIVE":
                    k = str(k).rstrip(":")
                    out[k] = f"{who}: {k} {v}"
        return out

    def hold_for_restore(self, why: str, now_ns: int) -> None:
        """Every hosted strategy is halted and cannot be resumed until :meth:`restore` takes
        it back (its position and decision counter are not known yet: a restarted host, a
        deployment started on an existing ledger)."""
        for n, st in self.strategies.items():
            st.restore_needed = why
            self.halt(n, why, now_ns)

    def awaiting_restore(self) -> list[str]:
        """Strategies :meth:`restore` has not taken back yet."""
        return [n for n, st in self.strategies.items() if st.restore_needed]

    def restore_failed(self, names: Iterable[str], why: str) -> list[str]:
        """A restore attempt failed: those of ``names`` still waiting stay halted and unresumable,
        saying ``why``. Returns them."""
        still = [n for n in names if self.strategies[n].restore_needed]
        for n in still:
            self.strategies[n].restore_needed = f"host restarted: position not restored ({why})"
        return still

    def restore(self, name: str, *, lots: Mapping[str, int], decision_seq: int, last_decision: str | None,
                booked: Iterable[Event], stage: str | None, stopped: Mapping[str, str], now_ns: int) -> str:
        """Take strategy ``name`` back after its host restarted, from what outlived the host.

        ``lots``: what the risk guard booked for it, per instrument (its position); ``decision_seq``:
        the last decision number in the trail (ids go on after it); ``last_decision`` and
        ``booked``: that decision and the risk guard's ``BOOKED`` events of it (so its summary,
        if it still comes, is a repeat); ``stage``: the stage it was last moved to at run time
        (None: the file's); ``stopped``: scope -> why for the trading states that are not
        ACTIVE (:meth:`stopped_scopes`; ``*`` when they could not be read). It resumes by itself
        only when nothing holds it stopped. Returns ``"resumed"`` or ``"halted: why"``."""
        st = self._strategy(name)
        st.position, st.position_b = int(lots.get(st.a.id, 0)), int(lots.get(st.b.id, 0))
        if stage is not None and stage != self.stages.stage(name):
            keep = self.stages.state(name)
            self.sink.emit(self.events.make(EventKind.LIFECYCLE, ts_ns=now_ns, strategy=name,
                                            reason=f"stage {stage} taken back from the trail after a restart "
                                                   f"(the file says {keep.stage})", stage=stage))
            keep.stage, keep.real = stage, None
        if self.stages.stage(name) == "shadow":  # what it really holds, kept apart in shadow
            self.stages.state(name).real = (st.position, st.position_b)
        # decision ids go on past a gap: a decision sent just before the crash may have reached the
        # venues without its INTENT reaching the trail; taking its number again would give a new
        # pair the client order ids of orders still at the venues (a gateway answers an id it
        # has seen with that order: the new pair would take the old one's fills)
        last = max(st.decision_seq, decision_seq)
        st.decision_seq = last + RESTART_SEQ_GAP if last else 0
        evs = list(booked)
        if last_decision is not None and evs:
            totals = {str(leg.get("instrument")): int(leg.get("total", 0)) for e in evs for leg in e.payload.get("legs") or []}
            st._done[last_decision] = (totals.get(st.a.id, 0), totals.get(st.b.id, 0),
                                       max(int(e.payload.get("summary_ts_ns") or 0) for e in evs))
        st.restore_needed = ""
        held = [why for k, why in stopped.items() if k in ("*", "global", f"strategy:{name}")]
        # lots booked on a contract that is not one of its legs (a roll that moved one leg and not
        # the other, a month nobody followed): its orders would not close what it holds
        outside = {i: q for i, q in lots.items() if int(q or 0) and i not in st.instrument_ids}
        if outside:
            held.append("it holds lots outside its legs " + ", ".join(f"{i} {int(q):+d}" for i, q in sorted(outside.items()))
                        + f" (legs {'/'.join(st.instrument_ids)}): roll or settle them, then resume")
        base = "host restarted: position and decision counter restored"
        st.state_reason = base + ("; halted: " + "; ".join(held) if held else "")
        self.sink.emit(self.events.make(
            EventKind.LIFECYCLE, ts_ns=now_ns, strategy=name,
            reason=f"restored after a restart: position {st.position:+d}/{st.position_b:+d} from the risk guard, "
                   f"decision ids go on after {last_decision or 'none'}; "
                   + (f"stays halted ({'; '.join(held)})" if held else "resumes: nothing holds it stopped"),
            position=st.position, position_b=st.position_b, decision_seq=st.decision_seq))
        if held:
            return "halted: " + "; ".join(held)
        # the ledger, the risk guard and the coordinator agree on where it stands and nobody
        # halted it: it goes on by itself (an escalated strategy does not: its HALTED scope is
        # held until an operator resolves the residual)
        self.resume(name, "restored after a host restart", now_ns)
        return "resumed"

    # ------------------------------------------------------------------ calendar rolls
    def on_roll_done(self, outcome: Mapping[str, Any], now_ns: int) -> bool:
        """A roll of a strategy's position has been decided (the coordinator's ``ROLL_DONE``:
        ``decision_id``, ``strategy``, ``roll_state``, ``moves`` = one ``{child, near, far, lots,
        rolled, clean}`` per rolled venue; ``retold`` when a restarted coordinator tells it
        again). The lots of each rolled move are on its far contract now: when they are all the
        strategy holds on that leg, the leg moves to the far contract (:meth:`roll_legs`), so that
        its next order closes or adds to the lots it really holds. The strategy is halted, naming
        why, when its legs would not match what it holds: a move that rolled fewer lots than it
        holds, a leg that moved while the other did not (mismatched months), a child that ended
        with lots changed but not rolled (its position is then uncertain). A roll that changed
        nothing (refused, rejected) leaves it alone. A retold outcome applies its rolled moves only
        (idempotent: a near month that is no longer a leg is skipped) and halts nothing. Returns
        whether any leg moved (the host then subscribes to the far contracts)."""
        name = str(outcome.get("strategy") or "")
        did = str(outcome.get("decision_id") or "")
        st = self.strategies.get(name)
        moves = outcome.get("moves")
        if st is None or not isinstance(moves, (list, tuple)):
            self.bad_input += 1
            why = "no hosted strategy" if st is None else "moves: a list of {near, far, rolled} is needed"
            self.sink.emit(self.events.make(EventKind.BAD_INPUT, ts_ns=now_ns, decision_id=did, strategy=name,
                                            reason=f"roll outcome {did!r}: {why}"))
            return False
        held = {st.a.id: abs(st.position), st.b.id: abs(st.position_b)}
        rolled: dict[str, str] = {}
        problems: list[str] = []
        not_rolled: list[str] = []
        for m in moves:
            if not isinstance(m, Mapping) or m.get("near") not in held:
                continue
            near, far = str(m.get("near")), str(m.get("far"))
            if m.get("rolled"):
                lots = m.get("lots")
                if lots is not None and int(lots) == held[near]:
                    rolled[near] = far
                else:
                    problems.append(f"{near}: {lots if lots is not None else 'an unknown number of'} lot(s) rolled to "
                                    f"{far}, the strategy holds {held[near]}")
            elif m.get("clean"):
                not_rolled.append(near)
            else:
                # the lots the child left traded on the near contract are the strategy's: its
                # count follows them (those on the far one lie outside its legs: halted below)
                nets = m.get("net") if isinstance(m.get("net"), Mapping) else {}
                moved_near = int(nets.get(near, 0) or 0) if not outcome.get("retold") else 0
                if moved_near and near == st.a.id:
                    st.position += moved_near
                elif moved_near and near == st.b.id:
                    st.position_b += moved_near
                problems.append(f"{near}: its roll to {far} ended with lots changed but not rolled"
                                + (f" ({moved_near:+d} on {near}, now {st.position:+d}/{st.position_b:+d})"
                                   if moved_near else "")
                                + (f", {int(nets.get(far, 0) or 0):+d} on {far} outside its legs"
                                   if int(nets.get(far, 0) or 0) else ""))
        moved = False
        if rolled:
            try:
                self.roll_legs(name, rolled, now_ns, reason=f"roll {did} {outcome.get('roll_state')}")
                moved = True
            except (KeyError, ValueError) as e:
                problems.append(f"{', '.join(rolled)} rolled, but the strategy cannot follow: {e}")
        if moved and not_rolled:
            problems.append(f"{', '.join(not_rolled)} not rolled while {', '.join(rolled)} did: mismatched months")
        if problems and not outcome.get("retold"):
            self.halt(name, f"roll {did} {outcome.get('roll_state')}: " + "; ".join(problems)
                      + "; roll or settle it (xmc roll), then resume", now_ns)
        return moved

    def replay_rolls(self, name: str, events: Iterable[Event], now_ns: int) -> bool:
        """After a host restart (its strategies were rebuilt on the file's contracts): the legs
        of ``name`` follow every roll of its position the trail has decided (``ROLL_DONE``
        events, in time order), move by rolled move. A move that did not roll is not replayed
        as a halt: :meth:`restore` halts a strategy whose booked lots lie outside its legs. Returns
        whether any leg moved (the host then subscribes to the far contracts)."""
        moved = False
        for e in events:
            if e.strategy != name or e.reason != "ROLL_DONE" or not isinstance(e.payload.get("moves"), list):
                continue
            legs = set(self._strategy(name).instrument_ids)
            moves = {str(m.get("near")): str(m.get("far")) for m in e.payload["moves"]
                     if isinstance(m, Mapping) and m.get("rolled") and m.get("near") in legs}
            if moves:
                try:
                    self.roll_legs(name, moves, now_ns, reason=f"roll {e.decision_id} (from the trail)")
                    moved = True
                except (KeyError, ValueError) as err:
                    self.halt(name, f"roll {e.decision_id}: cannot follow it after a restart ({err})", now_ns)
        return moved

    def roll_legs(self, name: str, moves: Mapping[str, str], now_ns: int, *, reason: str) -> None:
        """Strategy ``name`` trades the far contract of each ``near -> far`` in ``moves`` from now
        on: rebuilt on them (same class, parameters, account and venue per leg; the far
        contract's terms from the deployment's instruments), with its position, decision
        counter, trading state, pending decision and applied outcomes carried over. What a
        strategy computed from its quotes (a z-score's window) starts again, as after a
        restart. A canary's shadow twin on the same legs follows. Raises KeyError when a far
        contract is not one of the deployment's instruments."""
        import dataclasses

        old = self._strategy(name)
        missing = [far for far in moves.values() if far not in self.catalogue]
        if missing:
            raise KeyError(f"{', '.join(missing)} not among the deployment's instruments")
        legs = tuple(lg.model_copy(update={"instrument": moves.get(lg.instrument, lg.instrument)}) for lg in old.ctx.legs)
        insts = tuple(self.catalogue[moves[i.id]] if i.id in moves else i for i in old.ctx.instruments)
        ctx = dataclasses.replace(old.ctx, legs=legs, instruments=insts)
        new = type(old)(ctx, old.params, position=old.position, position_b=old.position_b,
                        decision_seq=old.decision_seq)
        for k in ("state", "state_reason", "restore_needed", "backoff_until_ns", "last_decision_ns", "venues_down",
                  "counters", "_pending", "_done", "errors"):
            setattr(new, k, getattr(old, k))
        if isinstance(getattr(old, "events", None), EventMaker):
            new.events = old.events
        self.strategies[name] = new
        self._index()
        self.sink.emit(self.events.make(
            EventKind.LIFECYCLE, ts_ns=now_ns, strategy=name,
            reason=f"{reason}: trades {'/'.join(new.instrument_ids)} from now (was "
                   f"{'/'.join(old.instrument_ids)}); position {new.position:+d}/{new.position_b:+d}",
            action="roll_legs", moves=dict(moves), instruments=list(new.instrument_ids)))
        twin = self.strategies.get(twin_name(name))  # a canary's shadow twin prices the same legs
        if twin is not None and (tm := {n: f for n, f in moves.items() if n in twin.instrument_ids}):
            self.roll_legs(twin.name, tm, now_ns, reason=f"{reason} of {name}")

    # ------------------------------------------------------------------ internals
    def _index(self) -> None:
        """Which hosted strategies trade each instrument (quotes are routed by it)."""
        self.by_instrument = defaultdict(list)
        for st in self.strategies.values():
            for inst in set(st.instrument_ids):
                self.by_instrument[inst].append(st)

    def _update_fx(self, q: Quote, now_ns: int) -> None:
        """A live FX quote ``FX.USDCNY`` (quote currency per base): its mid feeds every FX book."""
        sym = q.instrument[3:]
        try:
            if len(sym) != 6 or q.mid is None:
                raise ValueError(f"{q.instrument}: expected FX.<BASE><QUOTE> with a bid and an ask")
            books = {id(s.ctx.fx): s.ctx.fx for s in self.strategies.values()}
            for book in books.values():
                book.update(sym[:3], sym[3:], float(q.mid), q.ts_ns)
        except ValueError as e:
            self.bad_input += 1
            self.sink.emit(self.events.make(EventKind.BAD_INPUT, ts_ns=now_ns, instrument=q.instrument, reason=str(e)))

    def _strategy(self, name: str) -> Strategy:
        s = self.strategies.get(name)
        if s is None:
            raise KeyError(f"no strategy named {name!r} in this host (hosted: {', '.join(sorted(self.strategies))})")
        return s

    def _control(self, name: str, fn: Callable[[Strategy], list[Action]], now_ns: int) -> None:
        s = self._strategy(name)
        self._run(s, "control", lambda: fn(s), now_ns, [])

    def _run(self, s: Strategy, where: str, call: Callable[[], list[Action]], now_ns: int,
             intents: list[PairIntent]) -> None:
        """Call into ``s``; its intents go to ``intents`` (through its stage), its events to the sink."""
        try:
            actions = call()
        except Exception as exc:  # noqa: BLE001 - isolation is the point: one strategy's bug halts it alone
            actions = s.fail(exc, where, now_ns)
        for a in actions:
            if isinstance(a, Submit):
                self.decisions[a.intent.decision_id] = s.name
                routed = self.stages.route(s, a.intent, now_ns)
                if routed.send is not None:
                    intents.append(routed.send)
                if routed.summary is not None:  # not sent: the strategy hears what it came to at once
                    summary = routed.summary
                    self._run(s, "stage", lambda: s.on_pair_done(summary, now_ns), now_ns, intents)
            elif isinstance(a, Emit):
                self.sink.emit(a.event)
