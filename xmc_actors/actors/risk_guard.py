"""The RiskGuard Ray actor: a thin async shell around :class:`~xmc_actors.core.risk_guard.RiskGuardCore`.

Named ``risk-guard`` in the deployment's namespace (the ``xmc halt|reduce|resume|limits``
commands find it by that name). Contract (docs/architecture.md, "Risk guard"):

* ``register_coordinator(name, handle, weight=1)``: the guard pushes ``handle.on_risk_grant(grant)``
  at once and every ``grant_refresh_ms`` after; the coordinator answers with the
  :class:`~xmc_actors.core.risk_rules.GrantAck` its checker's ``update_grant`` returned.
* ``on_pair_done(summary)``: books the pair, feeds the monitors, applies alert actions.
* ``halt / reduce / resume(scope, key, operator, by=)`` and ``set_trading_state``: recorded (the
  operator, and ``by``: their role and channel, core/attribution.py), then pushed to every
  coordinator as ``set_trading_state(scope, key, state, operator, by=)``; the
  call returns once they have all acknowledged (or the timeout passed), with per-coordinator
  results and the elapsed time.
* ``poll_venues()`` (every ``account_poll_s``): the venues' two-sided positions and the brokers'
  account readings (equity, margin, available) from the gateways that can give them; a reading
  wins over the guard's figures, a difference beyond the tolerance is an ``account_mismatch``
  alert. ``on_account_reading(account, reading)`` takes one pushed.
* ``set_limit(section, key, field, value, operator)``, ``status()``, ``rebuild(events, venue_positions)``,
  ``resolve(decision_id, operator, note)`` (an escalated pair dealt with by a person).
* Restart: when Ray reconstructs the actor (``max_restarts``), it rebuilds before granting
  anything: the ledger trail read through the shard actors (``ledger-<n>``), the coordinators'
  latest pair summaries, and each gateway's ``positions()``; ``rebuild_from_ledger()`` does the
  same on demand. While it rebuilds it grants nothing: coordinators keep enforcing their last
  grant until it expires (``grant_ttl_ms``), after which only reduce-only orders pass. A rebuild
  that cannot read the ledger leaves the guard in global REDUCING with a red alert.
"""
from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any, Mapping, Sequence

import ray

from ..core.alerts import Alert, CallbackAlertSink, sinks_from_config
from ..core.clock import Clock, SystemClock
from ..core.attribution import attribution
from ..core.risk_guard import GuardOutput, RiskGuardCore
from ..core.risk_guard_rebuild import DifferenceConfirmation, unconfirmed_event
from ..core.risk_checker import fx_from_book
from ..core.risk_types import FxProvider, GrantAck, scope_key
from ..core.roll_watch import roll_watch_of
from ..core.sink import EventSink, MemorySink
from ..core.venue_health import venue_states
from ..ledger.reader import read_trail
from ..model.config import DeploymentConfig
from ..model.events import Event
from ..model.names import RISK_GUARD_NAME, actor_repr
from ..model.quotes import Quote
from ..model.risk import TradingState
from .metrics import Metrics, start_flush_loop
from .peers import Peers

ACTOR_NAME = "risk-guard"
COORDINATOR_NAME = "coordinator"  # runtime.deploy.COORDINATOR_NAME (not imported: deploy imports this module)
#: what a rebuild reads from the ledger (the rest of the trail is not the guard's business)
REBUILD_KINDS = ["OPERATOR", "RISK_DECISION", "ALERT", "LIFECYCLE", "RECONCILE"]  # RECONCILE: POSITION_MISMATCH settings
log = logging.getLogger("xmc.risk")


async def _await(ref: Any) -> Any:
    return await ref


#: an alert's scope that is also a metric tag (``xmc_alerts_total{strategy=...}``)
_SCOPE_TAGS = {"strategy": "strategy", "venue": "venue", "instrument": "instrument", "account": "account"}


@ray.remote(num_cpus=0, max_concurrency=1000)
class RiskGuard:
    """Authoritative limits, positions, capital, alerts and trading state of one deployment."""

    def __init__(self, deployment: DeploymentConfig | dict[str, Any], sink: EventSink | None = None, *,
                 fx: FxProvider | None = None, clock: Clock | None = None, push_timeout_s: float = 2.0,
                 refresh: bool = True, ledger_shards: Sequence[Any] | None = None,
                 gateways: Mapping[str, Any] | None = None, rebuild_on_start: bool | None = None,
                 rebuild_timeout_s: float = 20.0, namespace: str | None = None, account_poll_s: float = 5.0,
                 roll_check_s: float = 30.0) -> None:
        """
        Parameters
        ----------
        deployment
            The deployment (limits, instruments, venues, accounts, FX, ledger and gateways).
        sink
            Where events go (the ledger client); ``None``: kept in memory (tests).
        ledger_shards, gateways
            Handles of the ledger shards (in shard order) and of the gateways (venue -> handle)
            a rebuild reads. ``None``: found by their actor names (``ledger-<n>``, each
            gateway's process (``gateway-<VENUE>`` or its group's ``gateways-<group>``), and the
            coordinators the ledger names) in ``namespace``.
            Handles survive the actor's restarts (Ray keeps the constructor's arguments).
        namespace
            Where the deployment's named actors are; ``None``: ``deployment.ray.namespace``
            (what ``runtime.deploy`` uses).
        rebuild_on_start
            Rebuild from the ledger and the venues before granting anything. ``None``: when
            Ray reconstructed this actor (``was_current_actor_reconstructed``).
        rebuild_timeout_s
            How long a rebuild retries reading the ledger (shards restarting too) before it
            gives up into global REDUCING.
        account_poll_s
            How often the venues' two-sided positions and the brokers' account readings are
            read from the gateways (:meth:`poll_venues`); 0: never.
        roll_check_s
            How often the calendar roll watch looks at the strategies' dated contracts
            (:meth:`check_rolls`; ``strategies[].roll``); 0: never.
        """
        dep = deployment if isinstance(deployment, DeploymentConfig) else DeploymentConfig.model_validate(deployment)
        self.dep = dep
        self.clock = clock or SystemClock()
        self.memory = MemorySink() if sink is None else None
        self.sink = sink or self.memory
        if fx is None:
            from ..feeds.fx import fx_book_from_config

            fx = fx_from_book(fx_book_from_config(dep.fx), self.clock)
        self.fx = fx
        # alerts as they are raised; occupancy and reject ratio read from the core by its timer
        self.metrics = Metrics("risk_guard", {}, auto_flush=False)
        self.core = self._new_core()
        self.remote_sinks = sinks_from_config(dep.risk.sinks)
        self._ledger_shards = list(ledger_shards) if ledger_shards is not None else None
        self._gateways = dict(gateways) if gateways is not None else None
        self.rebuild_timeout_s = rebuild_timeout_s
        self.namespace = namespace or dep.ray.namespace
        self.rebuilding = False
        # venue -> the last gateway state a coordinator pushed since the last rebuild began: newer
        # than what that rebuild asks the coordinators for
        self._pushed_since_rebuild: dict[str, dict[str, Any]] = {}
        self.last_rebuild: dict[str, Any] | None = None
        self._rebuild_task: asyncio.Task[Any] | None = None
        self._held_summaries: list[dict[str, Any]] = []
        self._held_states: list[tuple[str, str | None, TradingState]] = []
        self.grants_skipped = 0
        self.handles: dict[str, Any] = {}
        self.push_timeout_s = push_timeout_s
        #: how often the guard asks the gateways for two-sided positions and account readings (0: never)
        self.account_poll_s = account_poll_s
        self.roll_check_s = roll_check_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._refresh = refresh
        self._loop_task: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        self.started_ns = self.clock.now_ns()  # this process life's start: grants before it are a previous life's
        self.reconstructed = False
        try:
            self.reconstructed = ray.get_runtime_context().was_current_actor_reconstructed
        except Exception:  # noqa: BLE001
            pass
        if self.reconstructed if rebuild_on_start is None else rebuild_on_start:
            self.rebuilding = True  # nothing is granted until the rebuild is done
            try:  # Ray runs an async actor's constructor on its event loop
                self._rebuild_task = asyncio.get_running_loop().create_task(self._rebuild_on_start())
            except RuntimeError:
                pass  # no loop (constructed outside Ray): ready() starts it
        self._metrics_task = start_flush_loop(self.metrics, sample=self._sample_metrics, want_hub=bool(dep.ray.metrics_port),
                                              namespace=self.namespace)

    def __repr__(self) -> str:
        """The dashboard's Repr column: ``RiskGuard(risk-guard: all ACTIVE, accounts cn-main us-main,
        8 venues)``; first ``rebuilding`` while a restarted guard reads the ledger (nothing granted)
        and the scopes not ACTIVE."""
        dep, core = getattr(self, "dep", None), getattr(self, "core", None)
        held = [f"{k} {v.value}" for k, v in sorted(core.states.items()) if v is not TradingState.ACTIVE] if core else []
        return actor_repr(
            "RiskGuard", RISK_GUARD_NAME,
            "rebuilding" if getattr(self, "rebuilding", False) else "",
            ("not ACTIVE: " + " ".join(held)) if held else "all ACTIVE" if core is not None else "",
            "accounts " + " ".join(a.id for a in dep.accounts) if dep is not None and dep.accounts else "",
            f"{len(dep.venues)} venues" if dep is not None else "")

    def _new_core(self) -> RiskGuardCore:
        dep = self.dep
        core = RiskGuardCore(dep.risk, {i.id: i for i in dep.instruments}, {v.code: v for v in dep.venues},
                             dep.accounts, self.fx, clock=self.clock, sink=self.sink, base_currency=dep.base_currency,
                             sinks=[CallbackAlertSink(self._metric)],
                             # a booked fill's offset is taken as the coordinators choose it
                             offset_preference=dep.coordinator.offset_preference)
        core.set_roll_watch(roll_watch_of(dep))
        return core

    def _metric(self, a: Alert) -> None:
        """``xmc_alerts_total{level, monitor}`` (and the alert's scope as a tag): every alert
        raised or escalated; a resolution is not an alert."""
        if a.resolved:
            return
        tag = _SCOPE_TAGS.get(a.scope)
        if tag is not None:
            self.metrics.count("alerts", 1, level=a.level.value, monitor=a.monitor, **{tag: a.key})
        else:
            self.metrics.count("alerts", 1, level=a.level.value, monitor=a.monitor)

    def _sample_metrics(self) -> None:
        """Gauges, once a second: occupancy per account, reject ratio per venue (the monitor's window)."""
        core = self.core
        per, _ = core.capital.occupancy(core.book, core.cfg.occupancy, core.leases.in_flight())
        for acc, o in per.items():
            self.metrics.set("occupancy", float(o.ratio), account=acc)
            self.metrics.set("equity", float(o.equity), account=acc)
            self.metrics.set("margin_used", float(o.used), account=acc)
        for strat, f in core.pnl.figures("strategy").items():
            for comp, v in (("total", f.total_base), ("realised", f.realised_base), ("unrealised", f.unrealised_base),
                            ("fx", f.fx_base), ("fees", f.fees_base)):
                self.metrics.set("pnl", float(v), strategy=strat, component=comp)
        for key, w in list(core.monitors.rejects.items()):
            scope, _, venue = key.partition(":")
            if scope == "venue" and w:
                self.metrics.set("reject_ratio", sum(w) / len(w), venue=venue)

    # -- coordinators and grants ----------------------------------------------------------------
    async def register_coordinator(self, name: str, handle: Any, weight: float = 1.0) -> dict[str, Any]:
        """Register a coordinator and push it its first grant; returns its ack (or why not)."""
        self.core.register_coordinator(name, Decimal(str(weight)))
        self.handles[name] = handle
        self._ensure_loop()
        if self.rebuilding:
            return {"coordinator": name, "acked_seq": None, "rebuilding": True}
        ack = await self._grant(name)
        return {"coordinator": name, "acked_seq": ack.seq if ack else None}

    async def unregister_coordinator(self, name: str) -> None:
        self.handles.pop(name, None)

    async def _grant(self, name: str) -> GrantAck | None:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:  # one grant in flight per coordinator: acks match their grants
            for _ in range(2):
                h = self.handles.get(name)
                if h is None:
                    return None
                if self.rebuilding:  # positions unknown: grant nothing, the last grant runs out
                    self.grants_skipped += 1
                    return None
                grant = self.core.make_grant(name)
                try:
                    ack = await asyncio.wait_for(_await(h.on_risk_grant.remote(grant)), self.push_timeout_s)
                except Exception as e:  # noqa: BLE001 - unreachable: its slice stays counted, its grant expires
                    log.warning("grant to %s not acknowledged: %s", name, e)
                    return None
                ack = ack if isinstance(ack, GrantAck) else None
                if not self.core.on_grant_ack(grant, ack):
                    return ack
                # it holds a grant of this guard's previous life (higher seq): grant again past it
            return ack

    async def regrant_all(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for name in list(self.handles):
            ack = await self._grant(name)
            out[name] = ack.seq if ack else None
        return out

    def _ensure_loop(self) -> None:
        if self._refresh and self._loop_task is None:
            self._loop_task = asyncio.get_event_loop().create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        next_poll = next_roll_check = 0.0
        while True:
            await asyncio.sleep(self.core.cfg.grant_refresh_ms / 1000)
            if self.rebuilding:
                continue
            try:
                if self.account_poll_s and time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.account_poll_s
                    await self.poll_venues()
                if self.roll_check_s and time.monotonic() >= next_roll_check:
                    next_roll_check = time.monotonic() + self.roll_check_s
                    await self.check_rolls()
                await self._handle(self.core.tick())
                await self.regrant_all()
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                log.exception("risk guard refresh failed")

    async def watch_position(self, name: str, policy: dict[str, Any], accounts: dict[str, str],
                             decision_ids: list[str], book_as: str, operator: str = "") -> dict[str, Any]:
        """Watch the position ``decision_ids`` make for its calendar roll (``RiskGuardCore.watch_position``);
        bad input is answered ``{"error": ...}`` naming the field, nothing watched."""
        try:
            return self.core.watch_position(name, policy, accounts, decision_ids, book_as, operator)
        except ValueError as e:  # counted by the core
            return {"error": str(e)}

    async def roll_watch_status(self) -> dict[str, Any]:
        """Every watched name: mode, the automatic roll pending, why stopped, each automatic roll's state."""
        w = self.core.roll_watch
        return w.status() if w is not None else {}

    async def check_rolls(self) -> dict[str, Any]:
        """One pass of the calendar roll watch (``RiskGuardCore.watch_rolls``): its alerts
        handled, each automatic roll handed to the coordinator (``submit_roll``; idempotent on
        its decision id). Returns ``{sent: {decision id: the coordinator's answer or error}}``."""
        watch = self.core.roll_watch
        coord = next(iter(self.handles.values()), None)
        if watch is not None and coord is not None:  # how the automatic rolls sent earlier ended
            for did in list(watch.pending.values()):
                try:
                    o = await asyncio.wait_for(_await(coord.roll_state.remote(did)), self.push_timeout_s)
                except Exception as e:  # noqa: BLE001 - asked again at the next check
                    log.warning("%s: outcome of auto roll %s not read: %s", RISK_GUARD_NAME, did, e)
                    continue
                state = str(o.get("state") or "") if isinstance(o, dict) else ""
                if state == "UNKNOWN":  # never recorded (sent before a crash that lost it): planned again
                    watch.forget(did)
                elif state and state != "WORKING":
                    watch.on_outcome(did, state, str(o.get("reason") or ""))
        out, rolls = self.core.watch_rolls()
        await self._handle(out)
        sent: dict[str, Any] = {}
        for req in rolls:
            if coord is None:
                sent[req.decision_id] = "no coordinator registered"
                watch.forget(req.decision_id)  # type: ignore[union-attr]  # tried again at the next check
                continue
            try:
                ans = await asyncio.wait_for(_await(coord.submit_roll.remote(req)), max(self.push_timeout_s, 30.0))
                sent[req.decision_id] = ans
                if isinstance(ans, dict) and ans.get("transient"):  # recovering, pairs in flight, a venue silent
                    watch.forget(req.decision_id)  # type: ignore[union-attr]  # sent again at a later check
                elif isinstance(ans, dict) and not ans.get("accepted") and not ans.get("duplicate"):
                    watch.on_outcome(req.decision_id, "REFUSED", str(ans.get("reason") or ""))  # type: ignore[union-attr]
            except Exception as e:  # noqa: BLE001 - unknown: the id makes a second try a duplicate
                sent[req.decision_id] = f"{type(e).__name__}: {e}"
                watch.forget(req.decision_id)  # type: ignore[union-attr]
            log.warning("%s: auto roll %s: %s", RISK_GUARD_NAME, req.decision_id, sent[req.decision_id])
        return {"sent": sent}

    async def poll_venues(self) -> dict[str, Any]:
        """Ask every gateway for the venue's two-sided positions (venues that hold long and short
        apart: they replace the guard's inferred view) and for the broker's account reading
        (``account_reading()``: ``{account: {equity, margin, available, currency}}``, from an
        adapter that can read it; ``{}`` otherwise): a reading wins over our figures and a
        difference beyond the tolerance raises ``account_mismatch``. What answered is returned;
        a gateway that cannot answer is skipped (its venue keeps the guard's own figures)."""
        gws, _ = self._find_gateways()
        two_sided = {v for v in gws if (vv := self.core.venues.get(v)) is not None and vv.offsets != "none"}
        calls = [(v, "two_sided", h.two_sided_positions.remote()) for v, hs in gws.items() if v in two_sided for h in hs]
        calls += [(v, "account", h.account_reading.remote()) for v, hs in gws.items() for h in hs]
        res = await asyncio.gather(*(asyncio.wait_for(_await(r), self.push_timeout_s) for _, _, r in calls),
                                   return_exceptions=True)
        out: dict[str, Any] = {"two_sided": {}, "accounts": {}}
        alerts = GuardOutput()
        for (venue, what, _), r in zip(calls, res):
            if isinstance(r, BaseException) or not isinstance(r, dict):
                continue
            if what == "two_sided":
                out["two_sided"][venue] = self.core.load_two_sided(venue, r)
            else:
                for acc, reading in r.items():
                    alerts.extend(self.core.on_account_reading(str(acc), reading, venue=venue))
                    out["accounts"][str(acc)] = venue
        await self._handle(alerts)
        return out

    async def on_account_reading(self, account: str, reading: dict[str, Any]) -> int:
        """A broker's account reading pushed by an adapter or an operator's tool. Returns the alerts raised."""
        out = self.core.on_account_reading(account, reading)
        await self._handle(out)
        return len(out.alerts)

    # -- inputs -----------------------------------------------------------------------------------
    async def on_pair_done(self, summary: dict[str, Any]) -> int:
        """A coordinator finished a pair. Returns the number of alerts it raised."""
        if self.rebuilding:  # booked into the rebuilt core once it is there
            self._held_summaries.append(summary)
            return 0
        out = self.core.on_pair_done(summary)
        await self._handle(out)
        return len(out.alerts)

    async def on_gateway_status(self, venue: str, status: dict[str, Any]) -> int:
        self._pushed_since_rebuild[venue] = status
        out = self.core.on_gateway_status(venue, status)
        await self._handle(out)
        return len(out.alerts)

    async def on_quotes(self, quotes: list[Quote]) -> None:
        self.core.on_quotes(quotes)

    async def tick(self) -> int:
        if self.rebuilding:
            return 0
        out = self.core.tick()
        await self._handle(out)
        return len(out.alerts)

    async def _handle(self, out: GuardOutput) -> None:
        for a in out.alerts:
            self._send_remote(a)
        for scope, key, state in out.state_changes:
            await self._broadcast(scope, key, state, "auto")
        if out.regrant or out.state_changes:
            await self.regrant_all()

    def _send_remote(self, a: Alert) -> None:
        if not self.remote_sinks:
            return
        loop = asyncio.get_event_loop()

        def send() -> None:
            for s in self.remote_sinks:
                try:
                    s.send(a)
                except Exception as e:  # noqa: BLE001
                    log.warning("alert sink %s failed: %s", type(s).__name__, e)

        t = loop.create_task(asyncio.to_thread(send))
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    # -- trading state (kill switch) --------------------------------------------------------------
    async def _broadcast(self, scope: str, key: str | None, state: TradingState, operator: str,
                         by: dict[str, Any] | None = None) -> dict[str, str]:
        names = list(self.handles)
        refs = [self.handles[n].set_trading_state.remote(scope, key, state.value, operator, by=by) for n in names]
        res = await asyncio.gather(*(asyncio.wait_for(_await(r), self.push_timeout_s) for r in refs), return_exceptions=True)
        return {n: ("ok" if not isinstance(r, BaseException) else f"error: {type(r).__name__}: {r}") for n, r in zip(names, res)}

    async def set_trading_state(self, scope: str, key: str | None, state: str, operator: str, reason: str = "",
                                by: dict[str, Any] | None = None) -> dict[str, Any]:
        """Change a trading state, record it, push it to every coordinator and await their acks.
        ``by``: the operator's role and channel (core/attribution.py), recorded with the name."""
        t0 = time.perf_counter()
        try:
            ev = self.core.set_trading_state(scope, key, TradingState(state), operator, reason, by=by)
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        if self.rebuilding:  # pushed now, and applied again to the rebuilt core
            self._held_states.append((scope, key, TradingState(state)))
        acks = await self._broadcast(scope, key, TradingState(state), operator,
                                     {"role": ev.payload["role"], "via": ev.payload["via"]})
        elapsed = (time.perf_counter() - t0) * 1000
        await self.regrant_all()  # a pushed state holds with the more severe grant state until a grant agrees
        return {"ok": all(v == "ok" for v in acks.values()), "event_id": ev.event_id, "scope": scope, "key": key,
                "state": state, "acks": acks, "elapsed_ms": elapsed}

    async def record_acceptance(self, operator: str, reason: str, accepted: dict[str, Any],
                                by: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record an operator's acceptance of the start-of-day differences (``RiskGuardCore.record_acceptance``)."""
        try:
            ev = self.core.record_acceptance(operator, reason, accepted, by=by)
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        return {"ok": True, "event_id": ev.event_id}

    async def halt(self, scope: str = "global", key: str | None = None, operator: str = "", reason: str = "",
                   by: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.set_trading_state(scope, key, TradingState.HALTED.value, operator, reason, by=by)

    async def reduce(self, scope: str = "global", key: str | None = None, operator: str = "", reason: str = "",
                   by: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.set_trading_state(scope, key, TradingState.REDUCING.value, operator, reason, by=by)

    async def resume(self, scope: str = "global", key: str | None = None, operator: str = "", reason: str = "",
                   by: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.set_trading_state(scope, key, TradingState.ACTIVE.value, operator, reason, by=by)

    async def resolve(self, decision_id: str, operator: str, note: str, timeout_s: float = 10.0,
                      by: dict[str, Any] | None = None) -> dict[str, Any]:
        """A person dealt with an escalated pair's residual (``xmc resolve``): record it (an
        ``OPERATOR`` event under the decision id: who, the note, the residual as the ledger's
        ``ESCALATION`` event recorded it), then resume the strategy the escalation halted, once
        none of its escalations is left unresolved (a resume of the strategy scope, which the
        coordinators forward to the strategy's host). Refused: a decision id that is not
        escalated or is already resolved, no operator, no note, a guard still rebuilding."""
        if self.rebuilding:
            return {"ok": False, "error": "risk guard is rebuilding after a restart: retry in a few seconds"}
        try:
            attribution(operator, by)
            if not isinstance(note, str) or not note.strip():
                raise ValueError("note: say how the residual was dealt with (--note TEXT); it is recorded")
            esc = self.core.check_resolvable(decision_id)
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        did = decision_id.strip()
        residual, source = await self._ledger_residual(did, timeout_s)
        try:  # checked again: a resolve of the same id may have run while the ledger was read
            ev, last = self.core.resolve(did, operator, note, residual, source, by=by)
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        strategy = esc["strategy"]
        out: dict[str, Any] = {"ok": True, "decision_id": did, "strategy": strategy, "event_id": ev.event_id,
                               "residual": ev.payload.get("residual"), "residual_source": source,
                               "unresolved": self.core.unresolved_escalations(strategy), "resumed": False}
        if not last:
            out["note"] = (f"strategy {strategy} stays halted: {len(out['unresolved'])} more escalation(s) to resolve: "
                           + ", ".join(out["unresolved"]))
            return out
        setter = self.core.state_setter.get(scope_key("strategy", strategy), "")
        if setter and not setter.startswith("auto:"):
            out["note"] = (f"strategy {strategy} stays {self.core.states[scope_key('strategy', strategy)].value}: "
                           f"{setter} set it; `xmc resume --strategy {strategy}` lifts that")
            return out
        res = await self.set_trading_state("strategy", strategy, TradingState.ACTIVE.value, operator.strip(),
                                           f"escalation {did} resolved: {note.strip()}", by=by)
        out.update(resumed="event_id" in res, resume=res)
        return out

    async def _ledger_residual(self, did: str, timeout_s: float) -> tuple[Any, str]:
        """The residual the last ``ESCALATION`` event of ``did`` recorded, and where it came from."""
        try:
            shards = self._find_ledger()
            events = await read_trail(shards, kinds=["ESCALATION"], decision_ids=[did], timeout_s=timeout_s)
        except Exception as e:  # noqa: BLE001 - the pair summary's residual is recorded instead, and says so
            log.warning("resolve %s: ESCALATION not read from the ledger: %s", did, e)
            return None, f"pair summary (ledger not read: {type(e).__name__})"
        for ev in reversed(events):
            if "residual" in ev.payload:
                return ev.payload["residual"], f"ESCALATION {ev.event_id}"
        return None, "pair summary (no ESCALATION event in the ledger)"

    async def set_limit(self, section: str, key: str | None, field: str | None, value: Any, operator: str,
                        by: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.rebuilding:
            return {"ok": False, "error": "risk guard is rebuilding after a restart: retry in a few seconds"}
        try:
            self.core.set_limit(section, key, field, value, operator, by=by)
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        acks = await self.regrant_all()
        return {"ok": True, "acks": acks}

    # -- queries and restart ----------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        st = self.core.status()
        st["registered"] = list(self.handles)
        st["reconstructed"] = self.reconstructed
        st["started_ns"] = self.started_ns
        st["rebuilding"] = self.rebuilding
        st["last_rebuild"] = self.last_rebuild
        st["grants_skipped"] = self.grants_skipped
        st.setdefault("known", {})["strategies"] = sorted(s.name for s in self.dep.strategies)
        return st

    async def events(self, kind: str | None = None) -> list[Event]:
        evs = self.memory.events if self.memory is not None else []
        return [e for e in evs if kind is None or e.kind.value == kind]

    async def rebuild(self, events: list[Event], venue_positions: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
        """Rebuild the current core from given events and venue positions (tools and tests; a
        restart uses :meth:`rebuild_from_ledger`, which reads them itself)."""
        rep = self.core.rebuild(events, venue_positions)
        await self._handle(rep.output)
        await self.regrant_all()
        return rep.as_dict()

    async def rebuild_from_ledger(self) -> dict[str, Any]:
        """Rebuild positions, reservations, states, limits and alerts from the ledger and the venues, now.

        What a restarted guard does on start (the ops CLI or a test may call it on a running
        guard too): this guard's own events are flushed to the ledger first, then a fresh core
        is rebuilt from the trail (:func:`~xmc_actors.ledger.reader.read_trail`), the
        coordinators' latest summaries and the gateways' ``positions()``, and replaces the
        current one. Nothing is granted meanwhile; operator state changes made meanwhile are
        pushed at once and kept; summaries that arrive meanwhile are booked after.

        Returns
        -------
        dict
            ``ok``; on success the report (``events_read``, ``booked_pairs``, ``mismatches``
            with account / instrument / ledger / venue / difference, ``unverified_venues``,
            ``open_reservations``, ``caught_up``, ``states``), ``venue_errors`` and ``elapsed_ms``;
            on failure ``error`` (the guard is then in global REDUCING).
        """
        if self._rebuild_task is not None and not self._rebuild_task.done():
            return await asyncio.shield(self._rebuild_task)
        self.rebuilding = True
        self._rebuild_task = asyncio.get_running_loop().create_task(self._run_rebuild(live=True))
        return await asyncio.shield(self._rebuild_task)

    async def _rebuild_on_start(self) -> dict[str, Any]:
        return await self._run_rebuild(live=False)

    def _namespace(self) -> str | None:
        return self.namespace

    def _find_ledger(self) -> list[Any]:
        if self._ledger_shards is not None:
            return self._ledger_shards
        return Peers(self._namespace()).ledger_shards(self.dep.ledger.shards)

    def _find_gateways(self) -> tuple[dict[str, list[Any]], dict[str, str]]:
        """venue -> gateway handles, and venue -> why a gateway could not be found."""
        found: dict[str, list[Any]] = {}
        errors: dict[str, str] = {}
        if self._gateways is not None:
            return {v: [h] for v, h in self._gateways.items()}, errors
        peers = Peers(self._namespace())
        for g in self.dep.gateways:
            try:  # in its own process, or its group's
                found.setdefault(g.venue, []).append(peers.gateway(g.actor_name, process=g.process_name))
            except Exception as e:  # noqa: BLE001 - not found: its venue is not verified
                errors[g.venue] = f"{g.actor_name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return found, errors

    def _find_coordinator(self, name: str) -> Any:
        return Peers(self._namespace()).find(name)  # None: gone, or not a named actor

    async def _venue_positions(self, gws: dict[str, list[Any]], errors: dict[str, str],
                               fresh_after_ns: int | None = None) -> tuple[dict[str, dict[str, int]], list[str]]:
        """Each venue's positions; ``fresh_after_ns``: only from broker snapshots asked for after
        that moment (``VenueGateway.positions``), a venue without one counted unverified."""
        wait_s = 5.0
        if fresh_after_ns is None:
            calls = [(v, h.positions.remote()) for v, hs in gws.items() for h in hs]
        else:
            calls = [(v, h.positions.remote(fresh_after_ns=fresh_after_ns, wait_s=wait_s)) for v, hs in gws.items() for h in hs]
        res = await asyncio.gather(*(asyncio.wait_for(_await(r), self.push_timeout_s * 2 + (wait_s if fresh_after_ns else 0))
                                     for _, r in calls), return_exceptions=True)
        out: dict[str, dict[str, int]] = {}
        failed: set[str] = set(errors)
        for (venue, _), r in zip(calls, res):
            if isinstance(r, BaseException) or not isinstance(r, dict):
                failed.add(venue)
                errors.setdefault(venue, f"positions(): {type(r).__name__}: {r}"[:300])
                continue
            for acc, pos in r.items():
                slot = out.setdefault(str(acc), {})
                for inst, q in pos.items():
                    slot[str(inst)] = slot.get(str(inst), 0) + int(q)
        return out, sorted(set(gws) - failed)

    async def _coordinator_summaries(self) -> list[dict[str, Any]]:
        names = list(self.handles)
        refs = [self.handles[n].summaries.remote() for n in names]
        res = await asyncio.gather(*(asyncio.wait_for(_await(r), self.push_timeout_s * 2) for r in refs),
                                   return_exceptions=True)
        out: list[dict[str, Any]] = []
        for n, r in zip(names, res):
            if isinstance(r, BaseException):
                log.warning("rebuild: summaries of coordinator %s not read: %s", n, r)
            elif isinstance(r, list):
                out += [x for x in r if isinstance(x, dict)]
        return sorted(out, key=lambda x: int(x.get("ts_ns") or 0))

    async def _venue_states_now(self) -> GuardOutput:
        """Tell the (rebuilt) core each venue's state as the coordinators' health probes see it
        now (:func:`~xmc_actors.core.venue_health.venue_states`; unanswered coordinators are left
        out). A state pushed since the rebuild began went to the core being replaced and is newer
        than the snapshot: it is the one told."""
        names = list(self.handles)
        res = await asyncio.gather(*(asyncio.wait_for(_await(self.handles[n].venue_health.remote()), self.push_timeout_s * 2)
                                     for n in names), return_exceptions=True)
        for n, r in zip(names, res):
            if not isinstance(r, dict):
                log.warning("rebuild: venue health of coordinator %s not read: %s", n, r)
        states = venue_states(*(r for r in res if isinstance(r, dict)))
        out = GuardOutput()
        why = "as the coordinators see it at the risk guard's restart"
        newer = self._pushed_since_rebuild
        for venue in sorted(set(states) | set(newer)):
            # a state a coordinator pushed while the snapshot was asked for is newer than it
            status = newer[venue] if venue in newer else {"state": states[venue], "reason": why}
            out.extend(self.core.on_gateway_status(venue, status))
        return out

    async def _run_rebuild(self, live: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        self._pushed_since_rebuild = {}
        try:
            if live:
                try:
                    await self.flush_sink()  # our own BOOKED / OPERATOR events must be in what we read
                except Exception as e:  # noqa: BLE001 - read what is there; the venues correct the rest
                    log.warning("rebuild: own events not flushed: %s", e)
            deadline = time.monotonic() + self.rebuild_timeout_s
            attempt = 0
            while True:  # the shards may be restarting too (a lost node): retry until the deadline
                attempt += 1
                try:
                    shards = self._find_ledger()
                    events = await read_trail(shards, kinds=REBUILD_KINDS,
                                              timeout_s=max(1.0, deadline - time.monotonic()))
                    break
                except Exception as e:  # noqa: BLE001 - LedgerError, ValueError (no such actor), Ray errors
                    err = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    if time.monotonic() >= deadline:
                        return await self._fail_rebuild(f"ledger not readable after {attempt} attempt(s): {err}", t0)
                    await asyncio.sleep(min(0.25 * attempt, 2.0))
            names = {str(e.payload.get("coordinator")) for e in events
                     if e.kind.value == "LIFECYCLE" and e.reason == "COORDINATOR_REGISTERED" and e.payload.get("coordinator")}
            names.add(COORDINATOR_NAME)  # the deployment's, in case its registration record was lost
            for n in sorted(names - set(self.handles)):
                h = self._find_coordinator(n)
                if h is not None:
                    self.handles[n] = h
            summaries = await self._coordinator_summaries()
            gws, venue_errors = self._find_gateways()
            positions, venues_ok = await self._venue_positions(gws, venue_errors)
            old, new = self.core, self._new_core()
            rep = new.rebuild(events, positions, venues=venues_ok, summaries=summaries, defer_all=True)
            self._install_rebuilt(old, new, live)
            out = rep.output
            # the venues' state now: a venue that came back while this guard was dead was never
            # heard UP here, and its automatic REDUCING would hold for the rest of the day
            out.extend(await self._venue_states_now())
            for sm in self._held_summaries:
                out.extend(new.on_pair_done(sm))
            self._held_summaries = []
            out.extend(new.rebuild_succeeded())
            self.rebuilding = False
            self.last_rebuild = {"ok": True, **rep.as_dict(), "venue_errors": venue_errors,
                                 "elapsed_ms": (time.perf_counter() - t0) * 1000}
            log.warning("risk guard rebuilt: %d events, %d pairs, %d mismatches, unverified venues %s",
                        rep.events_read, rep.booked_pairs, len(rep.mismatches), rep.unverified_venues)
            self._resubscribe(gws)
            self._ensure_loop()
            out.regrant = True
            await self._handle(out)
            if rep.deferred:
                # differences on accounts with pairs still open: checked again once they are booked
                self._verify_task = asyncio.get_running_loop().create_task(self._verify_later(list(rep.in_flight)))
            return self.last_rebuild
        except Exception as e:  # noqa: BLE001 - never trade on a half-built picture
            log.exception("risk guard rebuild failed")
            return await self._fail_rebuild(f"{type(e).__name__}: {e}", t0)

    async def _verify_later(self, in_flight: list[str], wait_s: float = 30.0, checks: int = 6) -> None:
        """After a rebuild that found differences from the venues: the ledger, the summaries and
        the venues were read one after the other while pairs may have been trading, so a
        difference is only a candidate. Wait until the pairs open at the rebuild are booked
        (their summaries arrive as they finish; at most ``wait_s``), then compare the guard's
        book with the venues again, at most ``checks`` times, until
        :class:`~xmc_actors.core.risk_guard_rebuild.DifferenceConfirmation` confirms a mismatch
        (recorded, set to the venue's, alerted), finds nothing different, or gives up."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not set(in_flight) <= self.core.booked:
            await asyncio.sleep(0.25)
        try:
            gws, errors = self._find_gateways()
            rule = DifferenceConfirmation(checks)
            while True:
                idle = await self._coordinators_idle(5.0)
                # a broker snapshot older than this moment may miss fills the book already has:
                # compared, it would "confirm" a difference that is only its age
                positions, venues_ok = await self._venue_positions(gws, dict(errors), fresh_after_ns=time.time_ns())
                verdict = rule.observe(idle, self.core.verify_positions(positions, venues_ok, act=False).deferred)
                if verdict == "moving":
                    # still moving: the deployment trades on; recorded, and the next rebuild checks again
                    log.warning("risk guard: position differences neither confirmed nor cleared after %d checks: %s",
                                rule.made, rule.last)
                    self.core.sink.emit(unconfirmed_event(self.core.maker, rule.last, rule.made))
                    self.last_rebuild = {**(self.last_rebuild or {}), "verified": {"unconfirmed": rule.last}}
                    return
                if verdict != "again":
                    break
                await asyncio.sleep(1.0)
            # nothing differs (POSITIONS_VERIFIED is recorded), or the same difference twice while idle: a mismatch
            rep = self.core.verify_positions(positions, venues_ok)
            self.last_rebuild = {**(self.last_rebuild or {}), "verified": {
                "mismatches": rep.mismatches, "unverified_venues": rep.unverified_venues,
                "waited_for": sorted(set(in_flight) - self.core.booked) or "all booked"}}
            await self._handle(rep.output)
        except Exception:  # noqa: BLE001 - the positions stay as rebuilt; the next restart checks again
            log.exception("risk guard: verifying positions after the rebuild failed")

    async def await_verified(self, timeout_s: float = 60.0) -> dict[str, Any] | None:
        """Wait (at most ``timeout_s``) for the check against the venues that a rebuild
        deferred; returns the last rebuild's report (``verified`` holds that check's result)."""
        task = getattr(self, "_verify_task", None)
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=timeout_s)
        return self.last_rebuild

    async def _coordinators_idle(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until every coordinator has no pair in flight; True when
        each one answered that none was (False: one was busy at the end, or did not answer)."""
        async def one(h: Any) -> Any:
            return await asyncio.wait_for(_await(h.await_idle.remote(timeout_s)), timeout_s + 2)

        answers = await asyncio.gather(*(one(h) for h in list(self.handles.values())), return_exceptions=True)
        return all(a == 0 and not isinstance(a, BaseException) for a in answers)

    def _install_rebuilt(self, old: RiskGuardCore, new: RiskGuardCore, live: bool) -> None:
        """Swap in the rebuilt core (``RiskGuardCore.take_over_from`` keeps what the running
        guard knows better than the ledger)."""
        new.take_over_from(old, live=live, coordinators=list(self.handles), held_states=self._held_states)
        self._held_states = []
        self.core = new

    async def _fail_rebuild(self, reason: str, t0: float) -> dict[str, Any]:
        out = self.core.rebuild_failed(reason)
        for sm in self._held_summaries:
            out.extend(self.core.on_pair_done(sm))
        self._held_summaries = []
        if not self.handles:  # the trail named nobody: try the deployment's coordinator by name
            h = self._find_coordinator(COORDINATOR_NAME)
            if h is not None:
                self.handles[COORDINATOR_NAME] = h
        for name in self.handles:
            if name not in self.core.leases.weights:
                self.core.register_coordinator(name)
        self.rebuilding = False
        self.last_rebuild = {"ok": False, "error": reason, "elapsed_ms": (time.perf_counter() - t0) * 1000}
        self._ensure_loop()
        out.regrant = True
        await self._handle(out)
        return self.last_rebuild

    def _resubscribe(self, gws: dict[str, list[Any]]) -> None:
        """Quotes (marks) again: a gateway drops a subscriber whose push failed (this actor, while
        down). Only from each venue's quote source (its first gateway), as at start: a second
        session on the venue carries the same market."""
        try:
            me = ray.get_runtime_context().current_actor
        except Exception:  # noqa: BLE001 - not inside an actor
            return
        sources = {g.actor_name for g in self.dep.quote_sources().values()} if self._gateways is None else None
        for hs in gws.values():
            for h in hs:
                if sources is not None and getattr(h, "gateway", None) not in sources:
                    continue
                try:
                    h.subscribe.remote(me, None)
                except Exception as e:  # noqa: BLE001
                    log.warning("rebuild: re-subscribing to a gateway failed: %s", e)

    async def flush_sink(self) -> None:
        """Wait until the events this actor emitted are acknowledged by the ledger (shutdown)."""
        aflush = getattr(self.sink, "aflush", None)
        if aflush is not None:
            await aflush()

    async def ready(self) -> bool:
        if self.rebuilding and self._rebuild_task is None:
            self._rebuild_task = asyncio.get_running_loop().create_task(self._rebuild_on_start())
        return True
