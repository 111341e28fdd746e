"""The strategy host actor: a thin Ray shell around :class:`~xmc_actors.strategies.host.StrategyHostCore`.

One actor hosts one or more strategy instances (50 instances on a 2-core machine share one or
a few hosts: one quote subscription, one batch evaluated by every instance that trades it).
Gateways push conflated quote batches to :meth:`StrategyHostActor.on_quotes`; intents go to
the coordinator with ``coordinator.submit.remote(intent)`` without waiting on the hot path
(each call is watched by a task that logs a failure and re-submits: ``submit`` is idempotent on
``decision_id``); the coordinator pushes outcomes to :meth:`StrategyHostActor.on_pair_done`, or
returns them in the submit's answer when the pair ended while that answer was held
(``submit(..., summary_in_reply=True)``: one Ray call fewer per pair).
Events go through an :class:`~xmc_actors.core.sink.EventSink` (fire-and-forget).

The actor is async: nothing blocks its event loop (object refs are awaited, never ``ray.get``).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable, Literal

import ray

from ..core.clock import Clock, SystemClock
from ..core.sink import EventMaker, EventSink, GuardedSink, MemorySink
from ..model.events import Event, EventKind
from ..model.market import Instrument
from ..model.names import actor_repr
from ..model.pairs import PairIntent, PairState, PairSummary
from ..model.quotes import Quote
from ..strategies.base import Strategy
from ..strategies.host import HostSpec, StrategyHostCore
from ..core.stages import check_stage, evaluate_gate, next_stage, previous_stage, rank
from ..ledger.stage_figures import stage_figures, stage_since
from ..model.stages import STAGES
from ..strategies.stages import StageSettings
from .metrics import Metrics, sample_strategy_host, start_flush_loop
from .peers import Peers

log = logging.getLogger(__name__)

#: the longest wait between two re-submissions of an intent whose outcome is unknown
SUBMIT_RETRY_CAP_S = 5.0
#: an intent accepted (or sent) this long ago whose outcome never came is sent again: the
#: coordinator answers its outcome, or, restarted, adopts what the venues hold for it
REASK_AFTER_S = 10.0

#: what a gate's figures are read from
FIGURE_KINDS = ["PAIR_STATE", "ORDER_SENT", "ORDER_REPORT", "ROLLBACK", "ALERT", "SHADOW", "STAGE"]


class StrategyHostActor:
    """Hosts strategy instances on Ray (use :data:`StrategyHost`, the remote class).

    Parameters
    ----------
    strategies
        Built instances (:func:`xmc_actors.strategies.base.build_strategy`), unique names; or a
        :class:`~xmc_actors.strategies.host.HostSpec` the host builds them from in its own
        process (what the runtime passes: small, so a restart needs nothing its creator holds).
    coordinator
        The PairCoordinator handle (``submit.remote(intent)``), or its actor name in this
        actor's namespace (found on first use); may be set later with :meth:`set_coordinator`.
        Without one, a submission fails (logged, retried, then an orange alert).
    sink
        Where events go. Default: an in-actor :class:`MemorySink` readable with :meth:`events`.
    name
        Actor name used in events.
    clock
        Time source; ``time_source="quotes"`` instead follows the latest calibrated quote time
        (replays at full speed, where the wall clock would make every quote stale).
    submit_retries
        Re-submissions of an intent whose ``submit`` call failed or was refused as
        ``transient`` (a restarting coordinator): its outcome is unknown. The waits double from
        ``retry_delay_s`` up to :data:`SUBMIT_RETRY_CAP_S`; the defaults keep re-sending for
        about 20 s, longer than a coordinator's restart, which adopts a decision the venues hold
        (the strategy then hears its outcome; giving up earlier left it pending while its
        orders filled).
    reask_after_s
        An intent whose outcome has not come this long after it was last sent is sent again
        (default :data:`REASK_AFTER_S`).
    stages
        Each strategy's rollout stage settings when ``strategies`` are built instances (a
        :class:`HostSpec` carries them in its deployment); a strategy not named is live.
    """

    def __init__(self, strategies: list[Strategy] | HostSpec, coordinator: Any = None, sink: EventSink | None = None, *,
                 name: str = "strategy-host", clock: Clock | None = None,
                 time_source: Literal["clock", "quotes"] = "clock", submit_retries: int = 8,
                 retry_delay_s: float = 0.2, stages: dict[str, StageSettings] | None = None,
                 reask_after_s: float = REASK_AFTER_S) -> None:
        self.name = name
        self.clock = clock or SystemClock()
        self.time_source = time_source
        catalogue: dict[str, Instrument] = {}
        #: where the deployment's actors are: its own namespace (a driver may run in another one;
        #: an actor's runtime context gives the driver's), else this job's
        self.namespace: str | None = None
        if isinstance(strategies, HostSpec):
            self.namespace = (strategies.deployment.get("ray") or {}).get("namespace")
            stages = strategies.stage_settings()
            catalogue = strategies.instruments()
            strategies = strategies.build()
        else:  # built instances: what they trade is what a roll can move them to
            catalogue = {i.id: i for st in strategies for i in st.ctx.instruments}
        # following quote time (a replay), the trail is still stamped in wall time, beside every
        # other actor's; the quote time each event was decided at goes in as market_ts_ns
        wall = SystemClock() if time_source == "quotes" else None
        self.maker = EventMaker(self.clock, name, wall=wall)
        if wall is not None:
            for s in strategies:
                ev = getattr(s, "events", None)
                if isinstance(ev, EventMaker):
                    s.events = EventMaker(ev.clock, ev.actor, wall=wall)
        self.sink: EventSink = sink if sink is not None else MemorySink()
        # the core writes its events as it makes them; the ledger client failing must not stop it
        self._out = GuardedSink(self.sink, name)
        self.core = StrategyHostCore(strategies, self.maker, stages, catalogue, sink=self._out)
        self._wall = wall or self.clock
        self._watch_task: asyncio.Task[None] | None = None
        self._reask_task: asyncio.Task[None] | None = None
        self.reasked = 0
        self.coordinator = coordinator
        self.submit_retries = submit_retries
        self.retry_delay_s = retry_delay_s
        self.reask_after_s = reask_after_s
        self._quote_now = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.submit_failures = 0
        try:
            restarted = ray.get_runtime_context().was_current_actor_reconstructed
        except Exception:  # noqa: BLE001 - not running inside an actor (direct use in a test)
            restarted = False
        now = self._now()
        self.restarted = restarted
        self._reconstructed = restarted  # a crash: the stage changed at run time is taken back from the trail
        self._restore_task: asyncio.Task[None] | None = None
        self.restored: dict[str, str] = {}  # strategy -> how a restart restored it (status())
        if restarted:
            # positions and decision counters in the constructor arguments are those of the first
            # start: trading on them could double a position or reuse a decision id. Halted, not
            # resumable until restored (see _restore), then halted until an operator resumes.
            self.core.hold_for_restore("host restarted: position and decision counter not restored yet", now)
        self._emit([self.maker.make(EventKind.LIFECYCLE, ts_ns=now, reason="strategy host started",
                                    strategies=sorted(self.core.strategies), restarted=restarted)])
        # evaluations, triggers, bad input per strategy, read from their counters by its timer
        self.metrics = Metrics("strategy", {}, auto_flush=False)
        self._metrics_task = start_flush_loop(self.metrics, sample=lambda: sample_strategy_host(self.metrics, self.core),
                                              namespace=self.namespace)

    def __repr__(self) -> str:
        """The dashboard's Repr column: ``StrategyHost(strategy-host-0: gold-sge-comex, copper-shfe-lme)``;
        a strategy not ACTIVE with its state (``copper-shfe-lme HALTED``), ``restarted`` after a restart."""
        core = getattr(self, "core", None)
        parts = [n if st.state.value == "ACTIVE" else f"{n} {st.state.value}"
                 for n, st in (core.strategies.items() if core is not None else ())]
        return actor_repr("StrategyHost", getattr(self, "name", "strategy-host"), *parts,
                          "restarted" if getattr(self, "restarted", False) else "")

    # ------------------------------------------------------------------ remote API
    async def on_quotes(self, quotes: list[Quote]) -> None:
        """A conflated quote batch from a gateway (fire-and-forget)."""
        self._kick_restore()
        self._kick_stage_watch()
        if self._reask_task is None:
            self._reask_task = asyncio.get_running_loop().create_task(self._reask_loop())
        if self.time_source == "quotes":
            for q in quotes if isinstance(quotes, (list, tuple)) else ():
                if isinstance(q, Quote) and q.ts_ns > self._quote_now:
                    self._quote_now = q.ts_ns
        intents = self.core.on_quotes(quotes, self._now())
        for intent in intents:
            self._spawn(self._submit(self._wall_deadline(intent)))

    async def on_pair_done(self, summary: dict[str, Any]) -> None:
        """A pair's outcome pushed by the coordinator: a ``PairSummary.model_dump(mode="json")``,
        validated back into the model by the host core (an unreadable one halts its strategy)."""
        intents = self.core.on_pair_done(summary, self._now())
        for intent in intents:
            self._spawn(self._submit(self._wall_deadline(intent)))

    async def on_roll_done(self, outcome: dict[str, Any]) -> None:
        """A roll of a hosted strategy's position was decided (pushed by the coordinator): its
        legs follow the lots to the far months, or it is halted when they are on mismatched
        months (``StrategyHostCore.on_roll_done``); the far contracts' quotes are subscribed."""
        moved = self.core.on_roll_done(outcome, self._now())
        if moved:
            try:
                await self._resubscribe()
            except Exception as e:  # noqa: BLE001 - a bare host (tests) has no registry: subscribe by hand
                log.warning("%s: far contracts not subscribed after roll %s: %s", self.name,
                            outcome.get("decision_id"), e)

    async def status(self) -> dict[str, Any]:
        """Per strategy: state, position, pending decision, last signal, errors, counters."""
        self._kick_restore()
        return {"host": self.name, "strategies": self.core.status(), "submit_failures": self.submit_failures,
                "awaiting_outcome": self.core.awaiting(), "reasked": self.reasked,
                "bad_input": self.core.bad_input, "in_flight_submits": len(self._tasks),
                "restarted": self.restarted, "restored": dict(self.restored)}

    async def halt(self, name: str, reason: str = "operator") -> dict[str, Any]:
        self.core.halt(name, reason, self._now())
        return self.core.strategies[name].status()

    async def resume(self, name: str, reason: str = "operator") -> dict[str, Any]:
        self.core.resume(name, reason, self._now())
        return self.core.strategies[name].status()

    async def on_venue_state(self, venue: str, state: str, reason: str = "") -> None:
        """Pushed by the coordinator's venue health: strategies on a DOWN venue stop triggering."""
        self.core.on_venue_state(venue, state, reason, self._now())

    async def ready(self) -> dict[str, Any]:
        """Cheap readiness probe (runtime.placement.wait_ready)."""
        self._kick_restore()
        self._kick_stage_watch()
        return {"actor": self.name, "strategies": sorted(self.core.strategies)}

    async def instruments(self) -> list[str]:
        return self.core.instruments()

    async def set_coordinator(self, coordinator: Any) -> None:
        self.coordinator = coordinator

    async def events(self, kind: str | None = None) -> list[Event]:
        """Events kept by the default in-actor sink (tests, the demo); [] with another sink."""
        if not isinstance(self.sink, MemorySink):
            return []
        return [e for e in self.sink.events if kind is None or e.kind.value == kind]

    async def flush_sink(self) -> None:
        """Wait until the events this actor emitted are acknowledged by the ledger (shutdown)."""
        aflush = getattr(self.sink, "aflush", None)
        if aflush is not None:
            await aflush()

    # ------------------------------------------------------------------ rollout stages
    async def stages(self) -> dict[str, dict[str, Any]]:
        """Each hosted strategy's stage, since when, its canary limits and counters."""
        return {n: self.core.stages.status(n) for n in self.core.strategies}

    async def promote(self, name: str, operator: str, reason: str = "", to: str | None = None) -> dict[str, Any]:
        """Promote ``name`` one stage up (shadow -> canary -> live) if its figures in the stage it
        leaves meet the gate of the stage it enters (``gates.<stage>`` in its deployment entry).
        Every decision, passed or refused, is a STAGE event with the figures. Returns ``ok``,
        ``from``, ``to``, ``gate`` (its checks and figures) and ``event_id``; ``error`` when the
        request itself is wrong (nothing recorded)."""
        op = (operator or "").strip()
        if not op:
            return {"ok": False, "error": "an operator name is required: every stage change is recorded with who did it"}
        try:
            cur = self.core.stage(name)
            target = check_stage(to, "to") if to else next_stage(cur)
        except (KeyError, ValueError) as e:
            return {"ok": False, "error": str(e).strip('"')}
        if target is None or rank(target) <= rank(cur):
            return {"ok": False, "error": f"{name} is {cur}: a promotion leads up ({' -> '.join(STAGES)}); "
                                          "use demote to go down"}
        if rank(target) != rank(cur) + 1:
            return {"ok": False, "error": f"{name} is {cur}: promote one stage at a time ({cur} -> {next_stage(cur)}), "
                                          "each through its gate"}
        gate_cfg = getattr(self.core.stages.state(name).settings.gates, target)
        try:
            gate = await self._gate(name, cur, target, gate_cfg)
        except Exception as e:  # noqa: BLE001 - no figures: refused, recorded, said why
            gate = {"passed": False, "gate": f"{cur}->{target}", "reason": f"figures unavailable: {type(e).__name__}: {e}",
                    "checks": [], "figures": {}}
        now = self._now()
        if not gate["passed"]:
            event_id = self.core.refuse_promotion(name, target, now, operator=op, reason=reason, gate=gate).event_id
            return {"ok": False, "refused": True, "from": cur, "to": target, "gate": gate,
                    "event_id": event_id, "stage": cur}
        event_id = self.core.set_stage(name, target, now, operator=op, reason=reason, action="promote", gate=gate).event_id
        return {"ok": True, "from": cur, "to": target, "gate": gate, "event_id": event_id, "stage": target}

    async def demote(self, name: str, operator: str, reason: str = "", to: str | None = None) -> dict[str, Any]:
        """Demote ``name`` (default one stage down; ``to="shadow"`` straight to shadow). No gate:
        going down is always allowed. A STAGE event records it."""
        op = (operator or "").strip()
        if not op:
            return {"ok": False, "error": "an operator name is required: every stage change is recorded with who did it"}
        try:
            cur = self.core.stage(name)
            target = check_stage(to, "to") if to else previous_stage(cur)
        except (KeyError, ValueError) as e:
            return {"ok": False, "error": str(e).strip('"')}
        if target is None or rank(target) >= rank(cur):
            return {"ok": False, "error": f"{name} is {cur}: a demotion leads down ({' -> '.join(reversed(STAGES))}); "
                                          "use promote to go up"}
        event_id = self.core.set_stage(name, target, self._now(), operator=op, reason=reason, action="demote").event_id
        return {"ok": True, "from": cur, "to": target, "event_id": event_id, "stage": target}

    async def stage_figures(self, name: str, window_s: float = 86_400.0) -> dict[str, Any]:
        """The figures a gate would read now for ``name`` in its current stage (``xmc stages``)."""
        cur = self.core.stage(name)
        fig, since = await self._figures(name, cur, window_s, 500.0)
        return {"stage": cur, "since_ns": since, **fig.as_dict()}

    async def _figures(self, name: str, stage: str, window_s: float, sync_window_ms: float) -> tuple[Any, int]:
        now = self._wall.now_ns()
        start = now - int(window_s * 1e9)
        stage_trail = await self._trail(["STAGE"], None)
        since = max(start, stage_since(stage_trail, name) or 0)
        trail = await self._trail(FIGURE_KINDS, since)
        return stage_figures(trail, name, stage=stage, since_ns=since, until_ns=now + 1,
                             sync_window_ms=sync_window_ms), since

    async def _gate(self, name: str, cur: str, target: str, gate_cfg: Any, *, breach: bool = False) -> dict[str, Any]:
        label = f"{cur}->{target}" if not breach else f"{cur} (breach check)"
        if gate_cfg is None:
            return {**evaluate_gate(None, {}, name=label).as_dict()}
        fig, since = await self._figures(name, cur, gate_cfg.window_s, gate_cfg.sync_window_ms)
        out = evaluate_gate(gate_cfg, fig.gate_values(), name=label, breach=breach).as_dict()
        out["window"] = {"since_ns": since, "window_s": gate_cfg.window_s, "stage": cur}
        out["counts"] = {"orders": fig.orders, "rejects": fig.rejects, "red_alerts": fig.red_alerts,
                         "pairs_by_outcome": fig.pairs_by_outcome}
        return out

    async def _trail(self, kinds: list[str], since_ns: int | None) -> list[Event]:
        """This deployment's trail (every shard), after what this host emitted is in it."""
        from ..ledger.reader import read_trail

        aflush = getattr(self.sink, "aflush", None)
        if aflush is not None:
            await aflush()
        shards = getattr(self.sink, "shard_handles", None)
        if shards:
            return await read_trail(list(shards), kinds=kinds, since_ns=since_ns)
        if isinstance(self.sink, MemorySink):
            return [e for e in self.sink.events if e.kind.value in kinds and (since_ns is None or e.ts_ns >= since_ns)]
        raise RuntimeError("no ledger to read the figures from")

    def _kick_stage_watch(self) -> None:
        if self._watch_task is not None:
            return
        watched = [st.settings.demote for st in self.core.stages.states.values()
                   if st.settings.demote.on_red_alert or st.settings.demote.on_gate_breach]
        if watched:
            every = min(d.check_every_s for d in watched)
            self._watch_task = asyncio.get_running_loop().create_task(self._stage_watch(every))

    async def _stage_watch(self, every_s: float) -> None:
        """The configured automatic demotion: a strategy in canary or live goes to shadow on a
        red alert about it (``demote.on_red_alert``) or when its stage's gate no longer holds
        over the gate's window (``demote.on_gate_breach``)."""
        last = self._wall.now_ns()
        while True:
            await asyncio.sleep(every_s)
            try:
                last = await self.check_demotions(last)
            except Exception as e:  # noqa: BLE001 - tried again next time; said why
                log.warning("%s: stage watch: %s: %s", self.name, type(e).__name__, e)

    async def _reask_loop(self) -> None:
        """Send again every intent whose outcome has not come ``reask_after_s`` after it was
        last sent (:meth:`StrategyHostCore.overdue`)."""
        while True:
            await asyncio.sleep(min(1.0, self.reask_after_s / 2))
            for intent in self.core.overdue(self._wall.now_ns(), int(self.reask_after_s * 1e9)):
                self.reasked += 1
                log.warning("%s: no outcome for %s %.1f s after it was sent: sending it again", self.name,
                            intent.decision_id, self.reask_after_s)
                self._spawn(self._submit(intent))

    async def check_demotions(self, since_ns: int = 0) -> int:
        """One pass of the automatic demotion over alerts since ``since_ns`` (wall clock);
        returns the time it looked up to (the next pass starts there)."""
        now = self._wall.now_ns()
        alerts: list[Event] | None = None
        for name, st in self.core.stages.states.items():
            d = st.settings.demote
            if st.stage == "shadow" or name not in self.core.strategies or not (d.on_red_alert or d.on_gate_breach):
                continue
            why, gate = "", None
            if d.on_red_alert:
                if alerts is None:
                    alerts = await self._trail(["ALERT"], since_ns)
                red = [e for e in alerts if e.payload.get("level") == "red" and e.ts_ns >= st.since_ns
                       and (e.strategy == name or (e.payload.get("scope") == "strategy" and e.payload.get("key") == name))]
                if red:
                    why = f"red alert: {red[0].reason} (demote.on_red_alert)"
            if not why and d.on_gate_breach:
                gate_cfg = getattr(st.settings.gates, st.stage)
                if gate_cfg is not None:
                    gate = await self._gate(name, st.stage, st.stage, gate_cfg, breach=True)
                    if not gate["passed"]:
                        why = f"gate breached while {st.stage}: {gate['reason']} (demote.on_gate_breach)"
            if why:
                self.core.set_stage(name, "shadow", self._now(), operator="auto", reason=why,
                                    action="auto-demote", gate=gate)
        return now

    async def drain(self, timeout_s: float = 5.0) -> int:
        """Wait for in-flight submissions to settle; returns how many are still running."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
        return len(self._tasks)

    async def restore_from_ledger(self, timeout_s: float = 60.0) -> dict[str, str]:
        """Take each strategy's position and decision counter from the risk guard and the ledger
        now, as a restarted host does: what a deployment started on an existing ledger calls
        once the risk guard has rebuilt. The strategies are halted meanwhile and resume by
        themselves when nothing holds them stopped. Returns how each was restored."""
        now = self._now()
        self.core.hold_for_restore("deployment started on an existing ledger: restoring position and "
                                   "decision counter", now)
        self.restarted = True
        if self._restore_task is None or self._restore_task.done():
            self._restore_task = asyncio.get_running_loop().create_task(self._restore_loop(pause_s=0.5))
        await asyncio.wait([self._restore_task], timeout=timeout_s)
        return dict(self.restored)

    # ------------------------------------------------------------------ restart
    def _kick_restore(self) -> None:
        if self.restarted and self._restore_task is None:
            self._restore_task = asyncio.get_running_loop().create_task(self._restore_loop())

    async def _restore_loop(self, attempts: int = 30, pause_s: float = 2.0) -> None:
        """A restarted host takes each strategy's position from the risk guard (what it booked
        for the strategy, per instrument) and its decision counter from the ledger (its last
        INTENT), once the risk guard has booked that last decision (a pair in flight when the
        host died is waited for). Tried until it works or ``attempts`` run out; the strategies
        then stay HALTED until an operator resumes them (``xmc resume --strategy S``)."""
        subscribed = False
        for attempt in range(attempts):
            pending = self.core.awaiting_restore()
            if not pending and subscribed:
                return
            try:
                if not subscribed:
                    # the gateways dropped this host's quote subscription when pushes to it failed
                    await self._resubscribe()
                    subscribed = True
                if pending:
                    await self._restore(pending)
            except Exception as e:  # noqa: BLE001 - recorded; the strategies stay halted and unresumable
                why = f"restore attempt {attempt + 1}/{attempts} failed: {type(e).__name__}: {e}"
                log.warning("%s: %s", self.name, why)
                still = self.core.restore_failed(pending, why)  # others were restored meanwhile
                self._emit([self.maker.make(EventKind.LIFECYCLE, ts_ns=self._now(), reason=why, strategies=still)])
            await asyncio.sleep(pause_s)

    async def _resubscribe(self) -> None:
        """Subscribe again to every gateway of the deployment (found by name through its
        registry) for the instruments this host's strategies trade."""
        peers = Peers(self.namespace)
        info = await peers.describe()
        me = ray.get_runtime_context().current_actor
        wanted = sorted(self.core.instruments())
        for gname in info.get("gateways", []):
            await peers.gateway(gname, info).subscribe.remote(me, wanted)

    async def _restore(self, names: list[str]) -> None:
        """Read what outlived the host (the trail's decision counters and bookings, the risk
        guard's positions, the trading states, the stages) and hand each strategy to
        ``StrategyHostCore.restore``; a strategy whose last decision is not booked yet waits."""
        from ..ledger.reader import read_trail
        from ..strategies.base import decision_id

        shards = getattr(self.sink, "shard_handles", None)
        if not shards:
            raise RuntimeError("no ledger to read the decision counters from")
        peers = Peers(self.namespace)
        seqs, shadow_seqs = self.core.decision_counters(await read_trail(list(shards), kinds=["INTENT", "SHADOW"]), names)
        last = {n: decision_id(n, seq) for n, seq in seqs.items() if seq}
        # a position must include its last decision's outcome: restore only the booked ones
        booked: dict[str, list[Event]] = {}
        if last:
            for e in await read_trail(list(shards), kinds=["RISK_DECISION"], decision_ids=sorted(last.values())):
                if e.reason == "BOOKED":
                    booked.setdefault(e.decision_id, []).append(e)
        ready = [n for n in names if n not in last or last[n] in booked]
        if ready:  # rolls decided while the host was away, or before: its legs follow the lots again
            rolls = [e for e in await read_trail(list(shards), kinds=["LIFECYCLE"])
                     if e.reason == "ROLL_DONE" and e.strategy in ready]
            moved = False
            for name in ready:
                moved = self.core.replay_rolls(name, rolls, self._now()) or moved
            if moved:  # subscribed above to the file's contracts: the far ones are traded now
                await self._resubscribe()
        rstat = (await peers.risk_guard().status.remote()) if ready else {}
        positions = rstat.get("positions", {}).get("strategies", {}) or {}
        # who says a strategy must stay stopped: the risk guard's and the coordinator's trading
        # states (an escalation, an operator's halt, an automatic action) survive this host
        stopped: dict[str, str] = {}
        if ready:
            cstat: dict[str, Any] = {}
            try:
                cstat = await peers.coordinator().status.remote()
            except Exception as e:  # noqa: BLE001 - not knowing is a reason to stay halted
                stopped["*"] = f"coordinator status unknown ({type(e).__name__})"
            stopped.update(self.core.stopped_scopes({"risk guard": rstat.get("trading_states") or {},
                                                     "coordinator": cstat.get("trading_states") or {}}))
        stage_now: dict[str, str] = {}
        if self._reconstructed and ready:
            # the stage each strategy was moved to at run time (its last STAGE change) outlives this host
            for e in await read_trail(list(shards), kinds=["STAGE"]):
                if e.strategy in seqs and e.payload.get("outcome") == "CHANGED" and e.payload.get("to"):
                    stage_now[e.strategy] = str(e.payload["to"])
        for name in ready:
            outcome = self.core.restore(
                name, lots=positions.get(name, {}), decision_seq=max(seqs[name], shadow_seqs[name]),
                last_decision=last.get(name), booked=booked.get(last.get(name, ""), ()), stage=stage_now.get(name),
                stopped=stopped, now_ns=self._now())
            self.restored[name] = outcome
        waiting = [last[n] for n in names if n not in ready]
        if waiting:
            raise RuntimeError(f"no outcome booked by the risk guard yet for {', '.join(waiting)}")

    # ------------------------------------------------------------------ internals
    def _wall_deadline(self, intent: PairIntent) -> PairIntent:
        """Following quote time, a strategy sets its intent's deadline and start-by in market
        time; the coordinator enforces them on the wall clock (and refuses one already past).
        They leave here as the same distance from now, on the wall clock."""
        if self.time_source != "quotes" or not self._quote_now:
            return intent
        now, wall = self._quote_now, self.clock.now_ns()
        update = {k: wall + (v - now) for k in ("deadline_ns", "start_by_ns") if (v := getattr(intent, k)) is not None}
        return intent.model_copy(update=update) if update else intent

    def _now(self) -> int:
        return self._quote_now if self.time_source == "quotes" and self._quote_now else self.clock.now_ns()

    def _emit(self, events: Iterable[Event]) -> None:
        """Write the actor's own events (its lifecycle), as the core writes its."""
        self._out.emit_many(events)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _submit(self, intent: PairIntent) -> None:
        did = intent.decision_id
        for attempt in range(self.submit_retries + 1):
            self.core.sending(intent, self._wall.now_ns())  # not asked again while this call is out
            if self.coordinator is None:
                err = "no coordinator handle set"
            else:
                try:
                    if isinstance(self.coordinator, str):  # a name: found in this actor's namespace
                        self.coordinator = Peers(self.namespace).actor(self.coordinator)
                    # a pair that ends while the answer is held comes back in it (no push)
                    result = await self.coordinator.submit.remote(intent, summary_in_reply=True)
                except Exception as exc:  # noqa: BLE001 - unknown outcome: re-submit (idempotent on decision_id)
                    err = f"{type(exc).__name__}: {exc}"
                else:
                    if not (isinstance(result, dict) and result.get("transient")):
                        self._on_submit_result(intent, result)
                        return
                    # a restarting coordinator cannot say yet whether it sent this decision:
                    # not an outcome (taken as a refusal, the strategy forgot a pair the venues filled)
                    err = str(result.get("reason") or "transient refusal")
            self.submit_failures += 1
            final = attempt == self.submit_retries
            log.warning("%s: submit %s failed (attempt %d): %s", self.name, did, attempt + 1, err)
            self.core.on_submit_failed(did, err, self._now(), final=final)
            if final:
                return
            await asyncio.sleep(min(self.retry_delay_s * 2 ** attempt, SUBMIT_RETRY_CAP_S))

    def _on_submit_result(self, intent: PairIntent, result: Any) -> None:
        # The outcome is pushed through on_pair_done, or comes back in this answer when the pair
        # ended while it was held (``summaries``, in order: applied as pushes would be); a
        # refusal returned here is applied at once too (applying a summary twice is a no-op),
        # so a strategy never waits on a refused pair.
        folded = result.get("summaries") if isinstance(result, dict) else None
        for summary in folded if isinstance(folded, list) else ():
            for nxt in self.core.on_pair_done(summary, self._now()):
                self._spawn(self._submit(self._wall_deadline(nxt)))
        state = None
        if isinstance(result, dict):
            state = result.get("state") or result.get("outcome")
        else:
            state = getattr(result, "state", None)
        state = getattr(state, "value", state)
        if state == "REFUSED":
            reason = result.get("reason") if isinstance(result, dict) else getattr(result, "reason", "")
            summary = PairSummary(decision_id=intent.decision_id, strategy=intent.strategy,
                                  state=PairState.REFUSED.value, reason=str(reason or ""))
            self.core.on_pair_done(summary, self._now())


#: The Ray actor class. ``num_cpus=0``: hosts are I/O-light; place many on a small machine.
StrategyHost = ray.remote(num_cpus=0, max_restarts=0)(StrategyHostActor)

__all__ = ["StrategyHost", "StrategyHostActor"]
