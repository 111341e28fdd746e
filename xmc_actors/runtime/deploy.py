"""Start, wire, drive and stop a whole deployment (``xmc run`` and the demo).

A :class:`Deployment` turns a :class:`~xmc_actors.model.config.DeploymentConfig` into named
actors in one namespace:

``deployment`` (registry) · ``ledger-<n>`` · ``risk-guard`` · ``gateway-<VENUE>`` (or ``gateways-<group>``) ·
``coordinator`` · ``strategy-host-<n>`` · ``metrics-hub`` (when ``ray.metrics_port`` is set)

and wires them: the gateways push reports to the coordinator and quotes to the strategy hosts
that trade their instruments; the coordinator pushes pair outcomes to the hosts and the risk
guard; the risk guard grants limits to the coordinator; everything writes to the ledger.

Feeds run in two ways. *Live-like* feeds (synthetic, or replay at a speed) run inside their
gateways on the wall clock. *Replay as fast as possible* of several gateways is driven here
in lock step (:class:`ReplayDriver`): all replay gateways advance to the same replayed time,
then the run settles (quotes delivered, pairs finished) before the next step, so that two
venues' histories never drift apart and a hedge lands at the time of the data that caused it.

The parts live in their own modules and are re-exported here under their old names: the actor
names in :mod:`xmc_actors.model.names`, the run summary in :mod:`.run_summary`, the replay driver
in :mod:`.replay_driver` and what the actors are handed (inline-size limit, pre-trade checker) in
:mod:`.actor_args`. This module keeps :class:`Deployment` and the driver's status and Ctrl-C helpers.
"""
from __future__ import annotations

import functools
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import logging

import ray

from ..model.config import DeploymentConfig, LedgerConfig
from ..model.names import COORDINATOR_NAME, HOST_PREFIX, METRICS_HUB_NAME, REGISTRY_NAME, RISK_GUARD_NAME
from ..model.pairs import PairSummary
from .actor_args import INLINE_ARGS_LIMIT, build_checker, check_inline_size
from .replay_driver import ACTOR_FAULTS, DeploymentFault, ReplayDriver, replayed_strategies, replayed_venues
from .run_summary import TERMINAL_STATES, RunSummary, last_decision_seqs, ledger_pair_counts, run_figures
from .session import DeploymentRegistry, forget_embedded, start_ray

log = logging.getLogger(__name__)


class Deployment:
    """A running deployment (driver side).

    Parameters
    ----------
    cfg
        The validated deployment configuration.
    address
        Ray address to join; ``None`` starts an embedded single-machine Ray.
    ledger_path
        Overrides ``cfg.ledger.path``.
    strategies_per_host
        How many strategy instances one host actor runs (they share one quote stream).
    """

    def __init__(self, cfg: DeploymentConfig, *, address: str | None = None, ledger_path: str | None = None,
                 strategies_per_host: int = 25, quiet: bool = True, api_default: bool = False) -> None:
        self.cfg = cfg
        # the operator API (cfg.api): `enabled: null` means api_default, which `xmc run` and `xmc
        # demo` set in the embedded mode; a program's Deployment (tests' kits) leaves it off
        self.api_default = api_default
        self.api_info: dict[str, Any] = {}
        self.address = address if address is not None else cfg.ray.address
        self.namespace = cfg.ray.namespace
        ledger = cfg.ledger if ledger_path is None else cfg.ledger.model_copy(update={"path": ledger_path})
        self.ledger_cfg: LedgerConfig = ledger
        self.strategies_per_host = max(1, strategies_per_host)
        self.quiet = quiet
        self.handles: dict[str, Any] = {}
        # venue -> its quote-source gateway (the first in the file; the one strategies and the
        # risk guard subscribe to); every gateway by actor name; routing key -> gateway (what
        # the coordinator is given: VENUE, or VENUE/ACCOUNT for a gateway that lists accounts)
        self.gateways: dict[str, Any] = {}
        self.all_gateways: dict[str, Any] = {}
        self.routes: dict[str, Any] = {}
        # replayed at max speed (driven by the replay driver) / live; keyed by venue for a
        # venue's quote source, by actor name for a further gateway on it
        self.replay_gateways: dict[str, Any] = {}
        self.live_gateways: dict[str, Any] = {}
        self.hosts: dict[str, Any] = {}
        self.host_strategies: dict[str, list[str]] = {}
        self.sink: Any = None
        self.decision_seqs: dict[str, int] = {}  # strategy -> last decision seq found in the ledger at start
        self.metrics_endpoint: Any = None
        self.started_at = 0.0
        self.started_ns: int | None = None  # wall clock: where this run's range of the ledger starts
        self._stopped = False
        self.faults: list[str] = []  # actor faults met while running or stopping, and what came of them
        self.resumed: dict[str, Any] | None = None  # what a start on an existing ledger restored
        self.start_of_day: Any = None  # core.start_of_day.StartOfDay: the gate of this start
        self.day_gate: Any = None      # runtime.start_of_day.DayGate: the gate at each trading-day change
        self.interrupted = False
        self.loopbacks: Any = None  # loopback FIX exchange processes (gateways with serve_loopback)
        self.ray_info: dict[str, Any] = {}  # what start_ray said: the GCS address, the dashboard's URL
        self.feed_reports: list[dict[str, Any]] = []  # per replayed file: rows read, kept, skipped by reason

    # ------------------------------------------------------------------ start
    def start(self) -> dict[str, dict]:
        """Create every actor, wire them, and wait until all are ready (or say which is not).

        A start that fails (an actor not ready in time, a placement no node can satisfy, an
        error while wiring) leaves nothing running: every actor it created is killed before the
        error is raised, so a half-started deployment (detached, on a cluster) does not linger.
        """
        try:
            return self._start()
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        sink = getattr(self, "sink", None)
        if sink is not None and hasattr(sink, "close"):
            try:
                sink.close(timeout=2.0)
            except Exception:  # noqa: BLE001 - the shards may be the actors that never started
                pass
        for h in list(self.handles.values()):
            try:
                ray.kill(h, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.handles.clear()
        self.hosts.clear()
        self._stop_loopbacks()

    def _stop_loopbacks(self) -> None:
        if self.loopbacks is not None:
            try:
                self.loopbacks.stop()
            except Exception as e:  # noqa: BLE001 - a stop must go on
                self.faults.append(f"loopback FIX exchange: did not stop cleanly ({type(e).__name__}: {e})")

    def _start(self) -> dict[str, dict]:
        from ..actors.coordinator import PairCoordinator
        from ..actors.gateway import VenueGateway
        from ..actors.risk_guard import RiskGuard
        from ..actors.strategy import StrategyHost
        from ..feeds.fx import fx_book_from_config
        from ..ledger.actor import start_ledger
        from ..ledger.client import LedgerClient
        from ..strategies.base import build_strategy
        from ..strategies.host import HostSpec
        from .placement import cluster_nodes, coordinator_placement, gateway_placement, strategy_placement, wait_ready

        cfg, ns = self.cfg, self.namespace
        # a venue calendar that does not cover the days this run trades on stops it here, before
        # any actor exists (validated files are checked again: a file may be started days later)
        from .calendars import require_covered

        require_covered(cfg)
        self.started_at = time.monotonic()
        self.started_ns = time.time_ns()
        from ..venues.fix.loopback import LoopbackExchanges, needs_loopback

        if needs_loopback(cfg):
            if self.address is not None:
                raise ValueError(f"gateways {', '.join(needs_loopback(cfg))}: serve_loopback runs the FIX exchange on "
                                 "this machine's loopback: embedded mode only (no ray.address)")
            self.loopbacks = LoopbackExchanges()
            self.cfg = cfg = self.loopbacks.start(cfg)
        self.ray_info = start_ray(self.address, ns, num_cpus=cfg.ray.num_cpus, dashboard=cfg.ray.dashboard,
                                  quiet=self.quiet)
        embedded = self.address is None
        info = {"name": cfg.name, "namespace": ns, "ledger": str(Path(self.ledger_cfg.path).resolve()),
                "gateways": [g.actor_name for g in cfg.gateways],
                "gateway_processes": {g.actor_name: g.process_name for g in cfg.gateways},
                "gateway_routes": {g.actor_name: list(g.route_keys) for g in cfg.gateways},
                "strategies": [s.name for s in cfg.strategies], "coordinator": COORDINATOR_NAME, "risk_guard": RISK_GUARD_NAME}
        registry = DeploymentRegistry.options(name=REGISTRY_NAME, namespace=ns, lifetime="detached" if cfg.ray.detached else None).remote(info)
        self.handles[REGISTRY_NAME] = registry

        # a ledger that already holds decisions (an earlier run): each strategy's decision ids go
        # on from its last, so no decision id (nor client order id) is ever used twice
        self.decision_seqs = last_decision_seqs(self.ledger_cfg.path)
        Path(self.ledger_cfg.path).mkdir(parents=True, exist_ok=True)
        shards = start_ledger(self.ledger_cfg, ns, detached=cfg.ray.detached, ready_timeout_s=cfg.ray.ready_timeout_s)
        for i, h in enumerate(shards):
            self.handles[f"ledger-{i}"] = h
        # a client of the named shards: handed to every actor, it travels as the shards' names, so
        # no actor's constructor arguments hold a handle (they would live in the driver's object
        # store, and an actor restarted after the driver released them could not be built)
        self.sink = LedgerClient(shards, self.ledger_cfg, actor="driver", namespace=ns)
        dep = cfg.model_dump(mode="json", by_alias=True)
        check_inline_size(dep)
        lifetime = {"lifetime": "detached"} if cfg.ray.detached else {}

        placements: dict[str, Any] = {}
        risk = RiskGuard.options(name=RISK_GUARD_NAME, namespace=ns, max_restarts=-1, **lifetime).remote(dep, self.sink)
        self.handles[RISK_GUARD_NAME] = risk

        nodes = [] if embedded else cluster_nodes()
        # one actor per gateway, or per gateway group (several venue sessions in one process);
        # everything else holds a view of its gateway in that process
        for proc, members in cfg.gateway_processes().items():
            pl = gateway_placement(members[0], mode="none" if embedded else "auto", nodes=nodes,
                                   num_cpus=cfg.ray.gateway_cpus)
            placements[proc] = pl
            h = VenueGateway.options(name=proc, namespace=ns, max_restarts=-1, **pl.options, **lifetime).remote(
                dep, [g.actor_name for g in members], self.sink, namespace=ns)
            self.handles[proc] = h
            for g in members:
                self._index_gateway(g, h)

        cpl = coordinator_placement()
        # the gateways are registered after readiness (below): the coordinator's ready() awaits
        # the registration of gateways given here, so a gateway pending placement would show up
        # as a blocked coordinator instead of as itself
        coord = PairCoordinator.options(name=COORDINATOR_NAME, namespace=ns, max_restarts=-1, **cpl.options, **lifetime).remote(
            list(cfg.instruments), {}, checker=functools.partial(build_checker, dep), sink=self.sink,
            name=COORDINATOR_NAME, venues=list(cfg.venues), config=cfg.coordinator, namespace=ns)
        self.handles[COORDINATOR_NAME] = coord

        # built here to fail early (a strategy that cannot be built stops the start, by name); the
        # hosts build their own instances from a HostSpec, which restarts need nothing else for
        fx = fx_book_from_config(cfg.fx)
        instances = []
        for s in cfg.strategies:
            if s.enabled:
                instances.append(build_strategy(s, cfg, fx, actor=s.name, decision_seq=self.decision_seqs.get(s.name, 0)))
        spl = strategy_placement(spread=not embedded, num_cpus=cfg.ray.strategy_cpus)
        # A strategy whose legs are both on replayed venues lives on replayed time (the quotes'
        # own stamps); the others on the wall clock. The two never share a host.
        replayed = set(self.replay_gateways) & set(self.gateways)  # venues whose quotes are replayed
        on_replay = [i for i in instances if {cfg.instrument(x).venue for x in i.instrument_ids} <= replayed]
        on_clock = [i for i in instances if i not in on_replay]
        n_host = 0
        for group, time_source in ((on_replay, "quotes"), (on_clock, "clock")):
            for n in range(0, len(group), self.strategies_per_host):
                name = f"{HOST_PREFIX}{n_host}"
                n_host += 1
                chunk = group[n:n + self.strategies_per_host]
                # restarted by Ray if its process dies: it re-subscribes, restores its strategies'
                # positions and decision counters, and holds them HALTED until an operator resumes
                spec = HostSpec(dep, tuple(i.name for i in chunk),
                                {i.name: self.decision_seqs[i.name] for i in chunk if i.name in self.decision_seqs},
                                HostSpec.user_classes(s.class_ for s in cfg.strategies if s.name in {i.name for i in chunk}))
                h = StrategyHost.options(name=name, namespace=ns, max_restarts=-1, **spl.options, **lifetime).remote(
                    spec, COORDINATOR_NAME, self.sink, name=name, time_source=time_source)
                self.hosts[name] = self.handles[name] = h
                self.host_strategies[name] = [i.name for i in chunk]

        ready = wait_ready(self.handles, cfg.ray.ready_timeout_s, placements=placements)
        # what each replay loader read, kept and skipped (also in the ledger, from each gateway)
        self.feed_reports = [r for reps in ray.get([self.handles[p].feed_reports.remote()
                                                    for p in cfg.gateway_processes()], timeout=60) for r in reps]

        # wiring (after readiness, so a pending actor is reported by wait_ready, not hung on here)
        calls = []
        for key, gw in self.routes.items():
            calls.append(coord.register_gateway.remote(key, gw))  # orders go there; it pushes reports back
        for hname, h in self.hosts.items():
            for sname in self.host_strategies[hname]:
                calls.append(coord.register_strategy.remote(sname, h))
        calls.append(coord.register_risk_guard.remote(risk))
        calls.append(risk.register_coordinator.remote(COORDINATOR_NAME, coord))
        for venue, gw in self.gateways.items():
            calls.append(gw.subscribe.remote(risk, None))
        ray.get(calls)

        if cfg.ray.metrics_port:
            self._start_metrics()
        if self.api_on():
            self._start_api()
        # the deployment as plain data: what `xmc stop` attaches with once the driver is gone
        # api: whether an operator API runs (the CLI refuses to act without its desk then)
        ray.get(registry.update.remote(actors=sorted(self.handles), hosts=self.host_strategies, config=dep,
                                       api="api-desk" in self.handles))
        if self.decision_seqs:
            self.resumed = self._resume_from_ledger()
        # the start-of-day gate: positions the deployment starts from against the venues' (a
        # new ledger too: the venues may hold yesterday's positions); a difference holds new
        # entries until an operator accepts it (xmc accept-positions)
        from .start_of_day import DayGate, check as start_of_day_check

        self.start_of_day = start_of_day_check(self.handles[RISK_GUARD_NAME], registry, self.resumed,
                                               {i.id: i.venue for i in cfg.instruments},
                                               cfg.ray.ready_timeout_s)
        # the strategies hear quotes only now: a venue whose session streams quotes from its
        # logon (FIX market data) could otherwise trigger entries before the gate was checked
        calls = []
        for hname, h in self.hosts.items():
            insts = ray.get(h.instruments.remote())
            for venue, gw in self.gateways.items():
                mine = [i for i in insts if i.split(".", 1)[0] == venue]
                if mine:
                    calls.append(gw.subscribe.remote(h, mine))
        ray.get(calls)
        # and again at each live venue's trading-day change (run() polls it)
        self.day_gate = DayGate(self.handles[RISK_GUARD_NAME], registry, cfg,
                                {g.venue for g in cfg.gateways if g.feed.kind != "replay"}, cfg.ray.ready_timeout_s)
        ray.get(registry.set_state.remote("RUNNING"))
        return ready

    def _resume_from_ledger(self) -> dict[str, Any]:
        """The ledger holds an earlier run: go on from it instead of starting flat. The
        coordinator recovers its pairs (any a crashed run left open are wound down from the
        venues' state), the risk guard rebuilds positions, states, limits and alerts from the
        ledger and checks them against the venues' positions, and each strategy takes its
        position from the risk guard and its decision counter from the ledger. A difference
        from a venue is recorded, alerted (orange ``position_mismatch``) and sets the account's
        venues REDUCING: no new entry until an operator has looked and resumes them."""
        timeout = self.cfg.ray.ready_timeout_s
        coord, risk = self.handles[COORDINATOR_NAME], self.handles[RISK_GUARD_NAME]
        # the risk guard first: the coordinator's recovery pushes each strategy's latest summary
        # again, which a guard that has not read the ledger yet would book a second time
        rebuilt = ray.get(risk.rebuild_from_ledger.remote(), timeout=timeout) or {}
        if rebuilt.get("deferred"):  # differences checked again against the venues once quiet
            rebuilt = ray.get(risk.await_verified.remote(timeout), timeout=timeout + 10) or rebuilt
        recovered = ray.get(coord.recover_from_ledger.remote(), timeout=timeout) or {}
        restored: dict[str, str] = {}
        for h in self.hosts.values():
            restored.update(ray.get(h.restore_from_ledger.remote(timeout), timeout=timeout + 10) or {})
        status = ray.get(risk.status.remote(), timeout=timeout)
        return {"recovered_pairs": {k: v for k, v in recovered.items() if isinstance(v, int)},
                "positions": status.get("positions", {}).get("accounts", {}),
                "mismatches": list(rebuilt.get("mismatches", [])) + list((rebuilt.get("verified") or {}).get("mismatches", [])),
                "deferred": list(rebuilt.get("deferred", [])),
                "unverified_venues": list(rebuilt.get("unverified_venues", [])),
                "trading_states": dict(status.get("trading_states", {})), "strategies": restored,
                "ok": bool(rebuilt.get("ok", False))}

    def access_info(self) -> dict[str, Any]:
        """How to look at the running deployment (``xmc run`` prints it at start): the Ray
        dashboard's URL ("" when it is off), how this driver authenticates to Ray (the token's
        file, never the token: ``session.auth_record``), the embedded ``/metrics`` URL ("" without
        ``ray.metrics_port``), and each alive node's Ray metrics export address (``ray_xmc_*``)."""
        from .session import auth_record

        try:
            nodes = [f"{n['NodeManagerAddress']}:{n['MetricsExportPort']}" for n in ray.nodes()
                     if n.get("Alive") and n.get("MetricsExportPort")]
        except Exception:  # noqa: BLE001 - informative only
            nodes = []
        return {"dashboard_url": self.ray_info.get("dashboard_url", ""), "dashboard": bool(self.cfg.ray.dashboard),
                "embedded": self.address is None, "auth": auth_record(),
                "metrics_url": self.metrics_endpoint.url if self.metrics_endpoint is not None else "",
                "api": dict(self.api_info),
                "ray_metrics": sorted(nodes)}

    def api_on(self) -> bool:
        """``api.enabled``; when it is not set: on for ``xmc run``/``xmc demo`` in the embedded
        mode (``api_default``), unless the environment says ``XMC_API=off`` (or ``on``)."""
        if self.cfg.api.enabled is not None:
            return self.cfg.api.enabled
        env = os.environ.get("XMC_API", "").strip().lower()
        if env in ("on", "off"):
            return env == "on"
        return self.api_default and self.address is None

    def _start_api(self) -> None:
        """The operator API on Serve (api/serve.py). Asked for in the file (``enabled: true``), a
        failure stops the start; on by default only, it is recorded and the deployment runs without."""
        from ..api.serve import ApiStartError, start_api
        from .start_of_day import accept

        try:
            self.api_info = start_api(self.cfg.api, self.namespace, self.ledger_cfg.model_dump(mode="json"),
                                      detached=self.cfg.ray.detached, accept=accept)
            self.handles["api-desk"] = self.api_info.pop("desk")  # stopped, flushed and killed with the rest
        except (ApiStartError, ValueError) as e:
            if self.cfg.api.enabled:
                raise
            self.faults.append(f"operator API not started: {e}")
            self.api_info = {"error": str(e)}

    def _stop_api(self) -> None:
        if self.api_info.get("url") or "api-desk" in self.handles:  # started here, or attached by `xmc stop`
            from ..api.serve import stop_api

            stop_api(self.namespace)
            self.api_info = {}

    def _start_metrics(self) -> None:
        from ..actors.metrics import MetricsHub, hub_fetcher, start_metrics_endpoint

        hub = MetricsHub.options(name=METRICS_HUB_NAME, namespace=self.namespace, get_if_exists=True).remote()
        self.handles[METRICS_HUB_NAME] = hub
        self.metrics_endpoint = start_metrics_endpoint(self.cfg.ray.metrics_port, hub_fetcher(hub))

    def _index_gateway(self, g: Any, process: Any) -> None:
        """Record gateway ``g`` (hosted by actor ``process``) in the gateway maps."""
        from ..actors.gateway import GatewayView

        view = GatewayView(process, g.actor_name)
        self.all_gateways[g.actor_name] = view
        source = self.cfg.quote_sources()[g.venue].actor_name == g.actor_name
        if source:
            self.gateways[g.venue] = view
        for key in g.route_keys:
            self.routes[key] = view
        is_replay_max = g.feed.kind == "replay" and g.feed.params.get("speed", "max") == "max"
        (self.replay_gateways if is_replay_max else self.live_gateways)[g.venue if source else g.actor_name] = view

    # ------------------------------------------------------------------ run
    def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until quotes pushed so far are processed, the risk guard re-granted, and no pair
        is in flight (the settle loop of a replay)."""
        deadline = time.monotonic() + timeout_s
        ray.get([g.quiesce.remote() for g in self.all_gateways.values()])
        # the risk guard's reaction to the data is part of what a step caused: fresh reference
        # prices (the collar) and limits reach the coordinator before the next step
        ray.get(self.handles[RISK_GUARD_NAME].regrant_all.remote())
        ray.get([h.drain.remote(max(0.1, deadline - time.monotonic())) for h in self.hosts.values()])
        ray.get(self.handles[COORDINATOR_NAME].await_idle.remote(max(0.1, deadline - time.monotonic())))

    def run(self, *, duration_s: float | None = None, progress: Callable[[dict[str, Any]], None] | None = None,
            stop_event: threading.Event | None = None) -> RunSummary:
        """Run the feeds until replays end and ``duration_s`` (wall time) has passed, then stop.

        Without ``duration_s``: until the replays end or, with live feeds only, until
        ``stop_event`` is set (Ctrl-C). ``stop_event`` ends the run early in every case.
        An actor that dies is waited for while Ray restarts it (:meth:`recover`); one that
        does not come back within ``ray.ready_timeout_s`` ends the run through :meth:`stop`,
        with the fault in the summary.
        """
        stop_event = stop_event or threading.Event()
        for gw in self.live_gateways.values():
            self._attempt("start feed", lambda gw=gw: ray.get(gw.start_feed.remote(), timeout=30), retry=True)
        driver = ReplayDriver(self.replay_gateways, self.settle, recover=self.recover)
        t0 = time.monotonic()
        last_progress = 0.0
        try:
            while not stop_event.is_set():
                if not driver.done:
                    driver.step()
                else:
                    # replays ended: stop, unless live feeds run for a duration or (no replay at
                    # all, no duration) until Ctrl-C / stop_event
                    if duration_s is None and self.replay_gateways:
                        break
                    if duration_s is not None and time.monotonic() - t0 >= duration_s:
                        break
                    time.sleep(0.05)
                if self.day_gate is not None and (gate := self.day_gate.poll()) is not None:
                    self.start_of_day = gate
                if progress is not None and time.monotonic() - last_progress > 0.5:
                    last_progress = time.monotonic()
                    progress(self.progress(replay_ns=driver.now_ns))
        except DeploymentFault as e:
            self.faults.append(f"run ended: {e}")
        self.interrupted = stop_event.is_set() or any(f.startswith("run ended") for f in self.faults)
        return self.stop()

    def recover(self, what: str, error: BaseException) -> None:
        """An actor call failed because an actor died or is restarting: record it (a LIFECYCLE
        event and a yellow alert in the ledger), wait until every actor of the deployment answers
        again and every restarted gateway has wired itself back in, and return. An actor still
        away after ``ray.ready_timeout_s`` raises :class:`DeploymentFault` (a red alert)."""
        t0 = time.monotonic()
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        why = f"{what}: {type(error).__name__}: {first[:200]}"
        self._record_fault(why, "yellow")
        deadline = t0 + self.cfg.ray.ready_timeout_s
        missing: list[str] = []
        while time.monotonic() < deadline:
            missing = self._unanswered(min(5.0, max(0.5, deadline - time.monotonic())))
            if not missing:
                gws = {v.handle._actor_id: v.handle for v in self.all_gateways.values()}
                try:
                    ray.get([h.rewire_done.remote(max(1.0, deadline - time.monotonic())) for h in gws.values()],
                            timeout=max(1.0, deadline - time.monotonic()))
                except ACTOR_FAULTS:
                    continue
                took = time.monotonic() - t0
                self.faults.append(f"{why} -> recovered in {took:.1f} s")
                self._record_fault(f"recovered from {why} in {took:.1f} s", None)
                return
            time.sleep(0.5)
        msg = f"{why}; still not answering after {self.cfg.ray.ready_timeout_s:.0f} s: {', '.join(missing)}"
        self._record_fault(msg, "red")
        raise DeploymentFault(msg)

    def _unanswered(self, timeout_s: float) -> list[str]:
        """Actors of the deployment that do not answer ``ready()`` within ``timeout_s``."""
        names = [n for n in self.handles if n != METRICS_HUB_NAME]
        refs = {}
        for n in names:
            try:
                refs[n] = self.handles[n].ready.remote()
            except Exception:  # noqa: BLE001 - a handle that cannot even send: not answering
                refs[n] = None
        out = []
        for n, ref in refs.items():
            try:
                if ref is None:
                    raise RuntimeError(n)
                ray.get(ref, timeout=timeout_s)
            except Exception:  # noqa: BLE001 - dead, restarting, or slow: all mean "not yet"
                out.append(n)
        return out

    def _record_fault(self, reason: str, level: str | None) -> None:
        """A LIFECYCLE event for the deployment's trail, and an alert at ``level`` if given."""
        from ..core.clock import SystemClock
        from ..core.sink import EventMaker
        from ..model.events import EventKind

        if self.sink is None:
            return
        maker = getattr(self, "_maker", None) or EventMaker(SystemClock(), "driver")
        self._maker = maker
        ev = maker.make(EventKind.LIFECYCLE, reason=reason, deployment=self.cfg.name)
        try:
            self.sink.emit(ev)
            if level is not None:
                self.sink.emit(maker.make(
                    EventKind.ALERT, reason=reason, parent_id=ev.event_id, alert_id=f"actor_fault:{ev.event_id}",
                    monitor="actor_fault", scope="global", key="", level=level, action="none", value=1.0,
                    threshold=0.0, message=reason, opened_ns=ev.ts_ns, resolved=True))
        except Exception:  # noqa: BLE001 - the ledger client holds events until the shards answer
            log.warning("could not record: %s", reason)

    def _attempt(self, what: str, fn: Callable[[], Any], *, retry: bool = False) -> Any:
        """``fn()``; an actor fault is recorded (and, with ``retry``, recovered from and ``fn``
        tried once more) instead of ending the caller."""
        try:
            return fn()
        except ACTOR_FAULTS as e:
            if not retry:
                self.faults.append(f"{what}: {type(e).__name__} (skipped)")
                return None
            try:
                self.recover(what, e)
                return fn()
            except (DeploymentFault, *ACTOR_FAULTS) as e2:
                self.faults.append(f"{what}: {type(e2).__name__} (gave up)")
                return None

    def progress(self, replay_ns: int | None = None) -> dict[str, Any]:
        try:
            st = ray.get(self.handles[COORDINATOR_NAME].status.remote(), timeout=5)
        except ACTOR_FAULTS:
            st = {}
        return {"elapsed_s": time.monotonic() - self.started_at, "replay_ns": replay_ns,
                "by_outcome": st.get("outcomes", {}), "in_flight": sum(st.get("in_flight", {}).values()),
                "faults": len(self.faults), "halted": sorted(k for k, v in st.get("trading_states", {}).items()
                                                             if v != "ACTIVE")}

    def status(self) -> dict[str, Any]:
        return collect_status(self.handles)

    # ------------------------------------------------------------------ stop
    def stop(self, timeout_s: float = 30.0) -> RunSummary:
        """Stop feeds, resolve every open pair (finished or escalated), flush the ledger.

        Every step survives an actor that died: the coordinator's shutdown and the ledger's
        flush wait for a restart and try again (what they guard must not be skipped); the
        others are skipped and recorded in the summary's ``faults``.
        """
        if self._stopped:
            raise RuntimeError("deployment already stopped")
        self._stopped = True
        for gw in self.live_gateways.values():
            self._attempt("stop feed", lambda gw=gw: ray.get(gw.stop_feed.remote(), timeout=10))
        coord = self.handles[COORDINATOR_NAME]
        # the whole of timeout_s: an order whose gateway stopped answering is queried for
        # CoordinatorConfig.query_window_ms (12 s) before its pair escalates
        self._attempt("coordinator shutdown", lambda: ray.get(coord.shutdown.remote(timeout_s=timeout_s),
                                                               timeout=timeout_s + 30), retry=True)
        for h in self.hosts.values():
            self._attempt("strategy host drain", lambda h=h: ray.get(h.drain.remote(2.0), timeout=30))
        summary = self._summary()
        self._attempt("registry", lambda: ray.get(self.handles[REGISTRY_NAME].set_state.remote("STOPPED"), timeout=10))
        # every actor's sink flushes what it holds before the shards go away
        for name, h in self.handles.items():
            if hasattr(h, "flush_sink"):
                self._attempt(f"{name} flush", lambda h=h: ray.get(h.flush_sink.remote(), timeout=60), retry=True)
        # venue sessions end cleanly (a FIX session logs out, its sequence numbers kept in its
        # store) while the ledger can still take what closing writes
        for proc in self.cfg.gateway_processes():
            h = self.handles.get(proc)
            if h is not None:
                self._attempt(f"{proc} close", lambda h=h: ray.get(h.close.remote(), timeout=30))
        self.sink.close()
        shards = [n for n in self.handles if n.startswith("ledger-")]
        for n in shards:
            self._attempt(f"{n} flush", lambda n=n: ray.get(self.handles[n].flush.remote(), timeout=60), retry=True)
            self._attempt(f"{n} checkpoint", lambda n=n: ray.get(self.handles[n].checkpoint.remote(), timeout=60),
                          retry=True)
        try:
            # the trail, not the coordinator's memory (a restart empties it), says what the pairs
            # came to: the figures the report shows, for this run's range of the ledger
            fig = run_figures(self.ledger_cfg.path, self.started_ns)
        except Exception as e:  # noqa: BLE001 - a ledger on another machine (xmc stop of a cluster deployment)
            self.faults.append(f"ledger {self.ledger_cfg.path} not readable here ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}); pair counts not shown, slippage and "
                               "exposure from the coordinator's memory")
        else:
            summary.apply_figures(fig)
        summary.faults = list(self.faults)
        summary.interrupted = self.interrupted
        summary.feed_reports = list(self.feed_reports)
        return summary

    def _summary(self) -> RunSummary:
        """What the actors still remember: slippage, exposure and per-strategy counters (the
        pair counts are replaced by the ledger's in :meth:`stop`)."""
        coord = self.handles[COORDINATOR_NAME]
        raw = self._attempt("coordinator summaries", lambda: ray.get(coord.summaries.remote(), timeout=30)) or []
        done = [PairSummary.model_validate(s) for s in raw]
        cstat = self._attempt("coordinator status", lambda: ray.get(coord.status.remote(), timeout=30)) or {}
        slip = [lg.slippage_pct * 1e4 for s in done for lg in s.legs if lg.slippage_pct is not None]
        expo = [s.unhedged_ms for s in done if any(lg.filled_qty for lg in s.legs)]  # traded pairs, as the ledger's
        per_strategy: dict[str, dict[str, Any]] = {}
        quotes = intents = errors = 0
        for hname, h in self.hosts.items():
            hs = self._attempt(f"{hname} status", lambda h=h: ray.get(h.status.remote(), timeout=30)) or {}
            for name, st in hs.get("strategies", {}).items():
                per_strategy[name] = st
                quotes += int(st.get("counters", {}).get("evaluations", 0))
                intents += int(st.get("counters", {}).get("intents", 0))
                errors += len(st.get("errors", []))
        halted = {n: f"{st.get('state')}: {st.get('reason', '')}".rstrip(": ")
                  for n, st in per_strategy.items() if st.get("state") not in (None, "ACTIVE")}
        for key, state in (cstat.get("trading_states") or {}).items():
            scope, _, name = str(key).partition(":")
            if scope == "strategy" and state != "ACTIVE" and name not in halted:
                halted[name] = str(state)
        from ..ledger.figures import LABELS, Dist
        slip_d, expo_d = Dist.of(slip), Dist.of(expo)
        return RunSummary(
            name=self.cfg.name, wall_s=time.monotonic() - self.started_at,
            pairs_by_outcome={}, quotes=quotes, intents=intents,
            alerts_by_level={}, slippage_bps=slip_d.summary(), exposure_ms=expo_d.summary(),
            replenished=0, rolled_back=0, escalated=0,
            strategy_errors=errors, ledger_path=str(Path(self.ledger_cfg.path)), examples={},
            per_strategy=per_strategy, halted=halted, since_ns=self.started_ns,
            # replaced by the ledger's figures in stop(); these, from the coordinator's memory,
            # stay when the ledger cannot be read here
            figure_rows=[(LABELS["slippage_bps"], slip_d.text(2)), (LABELS["unhedged_ms"], expo_d.text(1))],
        )

    @classmethod
    def attach(cls, namespace: str) -> "Deployment":
        """The running deployment of ``namespace`` (Ray already joined), rebuilt from its
        registry: what ``xmc stop`` stops once the driver that started a detached deployment is
        gone. Its ledger client is a new client of the named shards."""
        from ..ledger.client import LedgerClient
        from .session import find_registry

        info = ray.get(find_registry(None, namespace).describe.remote(), timeout=30)
        if not info.get("config"):
            raise LookupError(f"deployment in namespace {namespace!r} was started by an older version: "
                              f"its registry has no configuration to stop it with")
        cfg = DeploymentConfig.model_validate(info["config"])
        dep = cls(cfg, address="attached", ledger_path=info.get("ledger") or None)
        dep.namespace = namespace
        dep.started_at = time.monotonic() - (time.time_ns() - int(info.get("started_ns", time.time_ns()))) / 1e9
        dep.started_ns = int(info["started_ns"]) if info.get("started_ns") else None
        for n in info.get("actors", []):
            try:
                dep.handles[n] = ray.get_actor(n, namespace=namespace)
            except ValueError:
                dep.faults.append(f"{n}: not running when attached")
        dep.hosts = {n: dep.handles[n] for n in info.get("hosts", {}) if n in dep.handles}
        dep.host_strategies = dict(info.get("hosts", {}))
        for g in cfg.gateways:
            h = dep.handles.get(g.process_name)
            if h is None:
                continue
            dep._index_gateway(g, h)
        dep.sink = LedgerClient.named(dep.ledger_cfg, namespace, actor="xmc-stop")
        return dep

    def remove(self) -> None:
        """Kill every actor of the deployment (after :meth:`stop`): what ends a detached one."""
        self._stop_api()
        self._abandon()

    def shutdown_ray(self) -> None:
        self._stop_api()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        self._stop_loopbacks()
        if self.address is None and ray.is_initialized():
            ray.shutdown()
            forget_embedded(self.namespace)


def collect_status(handles: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    """Ask every actor of a deployment for its status; an actor that does not answer says so,
    and one that has no status to give (the ``metrics-hub``) is listed as such
    (``{"no_status": why}``), not asked."""
    names = [n for n in handles if n != REGISTRY_NAME]
    out: dict[str, Any] = {}
    refs: dict[str, Any] = {}
    for n in names:
        method = "stats" if n.startswith("ledger-") else "status"
        try:
            refs[n] = getattr(handles[n], method).remote()
        except AttributeError:  # an actor class without that method
            out[n] = {"no_status": "serves /metrics" if n == "metrics-hub" else f"it has no {method}()"}
    for n, ref in refs.items():
        try:
            out[n] = ray.get(ref, timeout=timeout_s)
        except Exception as e:  # noqa: BLE001 - status must report a dead actor, not die of it
            out[n] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    return out


def install_sigint(stop_event: threading.Event) -> None:
    """First Ctrl-C: stop cleanly (resolve open pairs); second: let Python interrupt."""

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
        if stop_event.is_set():
            signal.default_int_handler(signum, frame)
        stop_event.set()
        import sys

        sys.stderr.write("\ninterrupted: stopping cleanly (open pairs finish or wind down, the ledger is flushed); "
                         "Ctrl-C again aborts at once\n")
        sys.stderr.flush()

    signal.signal(signal.SIGINT, handler)


__all__ = ["ACTOR_FAULTS", "COORDINATOR_NAME", "Deployment", "DeploymentFault", "HOST_PREFIX", "INLINE_ARGS_LIMIT",
           "METRICS_HUB_NAME", "REGISTRY_NAME", "RISK_GUARD_NAME", "ReplayDriver", "RunSummary", "TERMINAL_STATES",
           "build_checker", "check_inline_size", "collect_status", "install_sigint", "last_decision_seqs",
           "ledger_pair_counts", "replayed_strategies", "replayed_venues", "run_figures"]
