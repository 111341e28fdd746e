"""The PairCoordinator Ray actor: a thin async shell around :class:`~xmc_actors.core.pair.PairBook`.

Every input (an intent, a gateway answer or failure, a pushed report, a timer, a trading-state
change) goes to the pure core; the commands it returns are executed here: gateway calls are
issued back to back without an ``await`` in between (both legs leave together) and awaited
concurrently, with a timeout; timers run on the event loop; events go to the
:class:`~xmc_actors.core.sink.EventSink` (``MemorySink`` by default, the ledger client in a
deployment).

Construct::

    coord = PairCoordinator.options(name="coordinator", namespace="xmc").remote(
        instruments, gateways={"SHFE": gw_shfe, "LME": gw_lme}, checker=checker_or_factory,
        sink=ledger_client)
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from typing import Any, Callable, Iterable, Mapping

import ray
from ray.exceptions import GetTimeoutError, RayError

from ..core.alerts import coordinator_alert
from ..core.clock import Clock, SystemClock
from ..core.pair import (
    Cancel, CancelTimers, Command, CoordinatorConfig, HaltStrategy, NotifyDone, PairBook, Place, Query, StartTimer,
    TimerKey,
)
from ..core.pretrade import PreTradeCheck
from ..core.roll import NEAR_LEG, RollRequest, RollTracker, recover_rolls, rolls_moving, unheld_near_legs
from ..core.sink import EventSink, HeldSink, MemorySink
from ..core.venue_health import VenueChange, VenueHealth, VenueNotices, VenueState, venue_states
from ..model.config import route_venue
from ..model.events import Event, EventKind
from ..model.fastpickle import from_wire, to_wire
from ..model.market import Instrument, Venue
from ..model.names import actor_repr
from ..model.orders import ExecutionReport, split_client_order_id
from ..model.pairs import ExecutionMode, PairIntent, PairState
from .metrics import Metrics, record_order, record_pair, sample_coordinator, start_flush_loop
from .health import probe_gateways_async
from .gateway import actor_of
from .peers import Peers

CheckerArg = PreTradeCheck | Callable[..., PreTradeCheck] | None
log = logging.getLogger("xmc.coordinator")
_POSITION_LOAD_ATTEMPTS = 30  # a two-sided venue's positions asked for at most this often, 2 s apart


async def _await_ref(ref: Any) -> Any:
    return await asyncio.wrap_future(ref.future())


def _instruments(arg: Mapping[str, Instrument] | Iterable[Instrument]) -> dict[str, Instrument]:
    if isinstance(arg, Mapping):
        return {k: (v if isinstance(v, Instrument) else Instrument.model_validate(v)) for k, v in arg.items()}
    out = {}
    for v in arg:
        inst = v if isinstance(v, Instrument) else Instrument.model_validate(v)
        out[inst.id] = inst
    return out


@ray.remote(num_cpus=0, max_concurrency=1000)
class PairCoordinator:
    """Executes pair intents across two venue gateways; never leaves a desk one-legged unknowingly.

    Parameters
    ----------
    instruments
        Instruments by id (or a list); legs on other instruments are refused (BAD_INPUT).
    gateways
        Gateway handles by venue code; more with :meth:`register_gateway`.
    checker
        A :class:`~xmc_actors.core.pretrade.PreTradeCheck`, or a factory called as
        ``factory(instruments=..., sink=..., clock=..., name=...)``; ``AllowAll`` if None (tests).
    sink
        Where events go (``MemorySink`` if None; :meth:`events` reads it).
    config
        Timers and retry bounds (:class:`~xmc_actors.model.coordinator.CoordinatorConfig`).
    name
        The owner name registered with the gateways and written on every event.
    venues
        The venues (their ``offsets`` rule): orders to a two-sided venue get an offset chosen
        from the positions this coordinator's fills made (``core/positions.py``).
    """

    def __init__(self, instruments: Mapping[str, Instrument] | Iterable[Instrument],
                 gateways: Mapping[str, Any] | None = None, *, checker: CheckerArg = None,
                 sink: EventSink | None = None, config: CoordinatorConfig | dict | None = None,
                 name: str = "coordinator", clock: Clock | None = None,
                 venues: Iterable[Venue | dict[str, Any]] | None = None, namespace: str | None = None) -> None:
        self.name = name
        self.namespace = namespace  # the deployment's actors' (None: this job's), found by name after a restart
        self.clock = clock or SystemClock()
        self.sink: EventSink = sink if sink is not None else MemorySink()
        insts = _instruments(instruments)
        if checker is not None and not hasattr(checker, "check_pair") and callable(checker):
            checker = checker(instruments=insts, sink=self.sink, clock=self.clock, name=name)
        cfg = config if isinstance(config, CoordinatorConfig) or config is None else CoordinatorConfig(**config)
        self.config = cfg or CoordinatorConfig()
        vs = [v if isinstance(v, Venue) else Venue.model_validate(v) for v in (venues or ())]
        # the book's events wait in `held` until the batch's orders have left (_execute, _flush_emits)
        self.held = HeldSink(self.sink)
        self.book = PairBook(insts, self.clock, checker=checker, config=self.config, owner=name, venues=vs,
                             sink=self.held)
        self.gateways: dict[str, Any] = {}  # routing key (VENUE or VENUE/ACCOUNT) -> gateway
        self.strategies: dict[str, Any] = {}
        self.risk_guard: Any = None
        self.tasks: set[asyncio.Task[Any]] = set()
        # decision id -> received / legs acked (perf ns), and the latest summary of each finished
        # pair: both keep the newest ``keep_finished_pairs`` (insertion order, oldest dropped)
        self.timings: OrderedDict[str, dict[str, int]] = OrderedDict()
        self._pending_gateways = dict(gateways or {})
        self._done: dict[str, asyncio.Event] = {}
        # decision id -> (orders of its submit not answered yet, set when none is left): what a
        # held submit answer waits for (CoordinatorConfig.submit_reply_hold_ms)
        self._unanswered: dict[str, tuple[set[str], asyncio.Event]] = {}
        # decision id -> its strategy's summaries to answer a held submit with, instead of
        # pushing them (submit(summary_in_reply=True)), until that answer leaves
        self._in_reply: dict[str, list[dict[str, Any]]] = {}
        self._summaries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._timers: dict[str, dict[int, asyncio.TimerHandle]] = {}  # armed per pair, until fired or cancelled
        self._timer_seq = itertools.count()
        self._emit_scheduled = False
        self.closing = False  # set by shutdown(): new intents are refused
        self._rolls: dict[str, RollTracker] = {}   # roll decision id -> its tracker (core/roll.py)
        self._roll_of: dict[str, str] = {}         # child pair id -> its roll's decision id
        self._roll_timers: dict[str, asyncio.TimerHandle] = {}
        self._rolls_claimed: set[str] = set()       # roll ids being checked by a submit_roll call now
        self._life_started_ns = time.time_ns()  # a decision made before this life may have orders out already
        self.reconstructed = False
        try:
            self.reconstructed = ray.get_runtime_context().was_current_actor_reconstructed
        except Exception:  # noqa: BLE001 - not inside an actor
            pass
        # what the strategies and the risk guard were last told of each venue (a restarted life
        # tells each venue's first state: its previous life may have told them DOWN)
        self._venue_notices = VenueNotices(restarted=self.reconstructed)
        self.recovered: dict[str, Any] | None = None  # what a restart recovered (status())
        self._recover_lock = asyncio.Lock()
        self._recover_task: asyncio.Task[None] | None = None
        self.health = VenueHealth([], self.clock, sink=self.sink)
        self.health.subscribe(self._on_venue_change)
        self._health_task: asyncio.Task[None] | None = None
        # pairs, orders, leg latency, slippage (docs/operations.md "Metrics"); flushed by its timer
        self.metrics = Metrics("coordinator", {}, auto_flush=False)
        self._metrics_task = start_flush_loop(self.metrics, sample=lambda: sample_coordinator(self.metrics, self.book),
                                              namespace=self.namespace)

    def __repr__(self) -> str:
        """The dashboard's Repr column: ``PairCoordinator(coordinator: 12 instruments, venues SHFE LME,
        3 pairs)``; ``restarted`` after a restart, ``closing`` once shutting down."""
        book = getattr(self, "book", None)
        return actor_repr(
            "PairCoordinator", getattr(self, "name", "coordinator"),
            f"{len(book.instruments)} instruments" if book is not None and hasattr(book, "instruments") else "",
            "venues " + " ".join(sorted(self.gateways)) if getattr(self, "gateways", None) else "",
            f"{len(book.pairs)} pairs" if book is not None and book.pairs else "",
            "restarted" if getattr(self, "reconstructed", False) else "",
            "closing" if getattr(self, "closing", False) else "")

    # -- wiring ----------------------------------------------------------------------------
    async def _ensure_registered(self) -> None:
        if self.reconstructed and self.recovered is None:
            await self._recover()
        if self._pending_gateways:
            pending, self._pending_gateways = self._pending_gateways, {}
            for venue, handle in pending.items():
                await self.register_gateway(venue, handle)

    async def register_gateway(self, venue: str, handle: Any) -> None:
        """Use ``handle`` for orders on ``venue`` and receive its pushed reports. ``venue`` is a
        routing key (:func:`~xmc_actors.model.config.route_key`): ``VENUE`` for the venue's
        default gateway, ``VENUE/ACCOUNT`` for a gateway that carries that account."""
        first = venue not in self.gateways
        self.gateways[venue] = handle
        if route_venue(venue) != venue:  # a gateway carrying that account
            self.book.account_routes.add(venue)
        self.health.track(venue)
        me = ray.get_runtime_context().current_actor
        await handle.register_owner.remote(self.name, me)
        if first:
            await self._load_positions(venue, handle)
        if self._health_task is None and self.config.health_interval_ms:
            self._health_task = asyncio.get_running_loop().create_task(self._health_loop())

    async def _load_positions(self, key: str, handle: Any, attempt: int = 1) -> None:
        """A two-sided venue's positions, as its gateway reports them, once per gateway and
        process life (at start and after a restart): offsets are chosen from what the accounts
        hold. A gateway that cannot answer yet (a CTP session before the broker's first position
        reply) is asked again every 2 s, up to 30 times; each failure is recorded, and the book
        stays as it is meanwhile. The reading carries each order's lots filled as it holds them:
        an order rebuilt by a restart adds to the positions what it fills after the reading."""
        venue = route_venue(key)
        v = self.book.venues.get(venue)
        if v is None or v.offsets == "none":
            return
        try:
            reading = await asyncio.wait_for(_await_ref(handle.two_sided_reading.remote()),
                                             self.config.call_timeout_ms / 1000)
        except (RayError, asyncio.TimeoutError, AttributeError) as e:
            self._execute(self.book.refuse_input(
                "positions", f"{key}: two-sided positions not read (attempt {attempt}): "
                             f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:500]))
            if attempt < _POSITION_LOAD_ATTEMPTS and not isinstance(e, AttributeError):
                def again() -> None:
                    if self.gateways.get(key) is handle:  # not replaced meanwhile (a restart re-registers)
                        asyncio.ensure_future(self._load_positions(key, handle, attempt + 1))
                asyncio.get_running_loop().call_later(2.0, again)
            return
        if not isinstance(reading, dict):
            self._execute(self.book.refuse_input("positions", f"{key}: the position reading is a "
                                                              f"{type(reading).__name__}, not a mapping"))
            return
        self.book.load_positions(venue, reading.get("positions") or {}, reading.get("order_fills"),
                                 reading.get("accounts"))
        self._execute([])  # no command: its RECONCILE event is released on the next loop turn

    def _gateway(self, venue: str, account: str) -> Any:
        """The gateway an order on ``venue`` through ``account`` goes to (None: none registered)."""
        return self.gateways.get(self.book.route_of(venue, account))

    # -- venue health ------------------------------------------------------------------------
    async def _health_loop(self) -> None:
        """Probe every gateway each ``health_interval_ms``: a lost gateway (its node gone) or one
        silent for two probes makes its venue DOWN; an answer makes it UP again."""
        while True:
            await asyncio.sleep(self.config.health_interval_ms / 1000)
            try:
                await probe_gateways_async(self.health, dict(self.gateways), self.config.health_timeout_ms / 1000)
            except Exception:  # noqa: BLE001 - the probe loop must outlive any one failure
                log.exception("%s: venue health probe failed", self.name)

    def _on_venue_change(self, change: VenueChange) -> None:
        """A venue changed state: refuse new pairs on a DOWN venue, and tell the strategies (they
        stop triggering on it) and the risk guard (alert, configured action)."""
        up = change.new is VenueState.UP
        self.book.set_venue_state(change.venue, up, change.reason)
        first = change.old is VenueState.UNKNOWN
        if first and up and not self._venue_notices.restarted:
            return  # the first answer: nothing changed for anyone
        gw = self.gateways.get(change.venue)
        if up and gw is not None and not first:
            # a gateway that came back may be a restarted instance: register again so that it
            # knows where our orders' reports go and hands over what it reconciled
            me = ray.get_runtime_context().current_actor
            gw.register_owner.remote(self.name, me)
        # change.venue is a routing key (VENUE, or VENUE/ACCOUNT for a further gateway on the
        # venue): the strategies and the risk guard hear of the venue, DOWN while any of its
        # gateways is, and only when that changes
        venue = route_venue(change.venue)
        down = venue_states(self.health.snapshot()).get(venue) == VenueState.DOWN.value
        if not self._venue_notices.tell(venue, down):
            return
        if change.venue != venue:
            change = VenueChange(venue, change.old, change.new, change.ts_ns, f"{change.venue}: {change.reason}")
        sent: set[Any] = set()
        for h in self.strategies.values():
            key = getattr(h, "_actor_id", id(h))
            if key in sent:
                continue
            sent.add(key)
            try:
                h.on_venue_state.remote(change.venue, change.new.value, change.reason)
            except Exception:  # noqa: BLE001 - a host without the method or gone: the others still hear
                log.warning("%s: could not tell a strategy host that %s is %s", self.name, change.venue, change.new.value)
        if self.risk_guard is not None:
            try:
                self.risk_guard.on_gateway_status.remote(change.venue, {"state": change.new.value, "reason": change.reason})
            except Exception:  # noqa: BLE001
                log.warning("%s: could not tell the risk guard that %s is %s", self.name, change.venue, change.new.value)

    def _retell_guard(self, risk: Any) -> None:
        """Tell ``risk`` (the risk guard found after a restart) each venue's state as the
        strategies were last told it."""
        for venue, down in sorted(self._venue_notices.told.items()):
            risk.on_gateway_status.remote(venue, {"state": "DOWN" if down else "UP",
                                                  "reason": "as this restarted coordinator found it"})

    async def venue_health(self) -> dict[str, dict[str, str]]:
        """Each venue's state as this coordinator sees it (UNKNOWN / UP / DOWN, with the reason)."""
        return self.health.snapshot()

    async def register_strategy(self, strategy: str, handle: Any) -> None:
        """Pair outcomes of ``strategy`` go to ``handle.on_pair_done(summary)``."""
        self.strategies[strategy] = handle

    async def register_risk_guard(self, handle: Any) -> None:
        self.risk_guard = handle

    # -- restart --------------------------------------------------------------------------
    async def _recover(self) -> None:
        """Ray restarted this actor: everything it knew is gone. Before it accepts anything,
        it finds its deployment again (gateways, strategy hosts, risk guard: by their names in
        the deployment registry) and rebuilds its pairs from its own trail in the ledger
        (:meth:`PairBook.recover`: finished pairs stay finished and known, open ones are wound
        down from the venues' state). If the ledger cannot be read, new intents are refused
        (``RECOVERING``) and the next call tries again: trading on an empty memory could
        execute a decision twice."""
        async with self._recover_lock:
            if self.recovered is not None:
                return
            from ..ledger.reader import read_trail

            me = ray.get_runtime_context().current_actor
            peers = Peers(self.namespace)
            info: dict[str, Any] = {}
            try:
                info = await peers.describe()
            except Exception as e:  # noqa: BLE001 - a bare coordinator (tests) has no registry
                log.warning("%s restarted without a deployment registry: %s", self.name, e)
            for gname in info.get("gateways", []):
                try:
                    h = peers.gateway(gname, info)
                    venue = (await h.status.remote())["venue"]
                    for key in (info.get("gateway_routes") or {}).get(gname) or [venue]:
                        self._pending_gateways.setdefault(key, h)
                except Exception as e:  # noqa: BLE001 - its venue will show DOWN in the health probes
                    log.warning("%s: gateway %s not found after restart: %s", self.name, gname, e)
            hosts = peers.hosts(info)
            for hname, strategies in (info.get("hosts") or {}).items():
                h = hosts.get(hname)
                if h is None:
                    continue
                for sname in strategies:
                    self.strategies.setdefault(sname, h)
            shards = getattr(self.sink, "shard_handles", None)  # the ledger client's shards
            try:
                trail = await read_trail(list(shards), kinds=["INTENT", "PAIR_STATE", "ORDER_SENT", "OPERATOR",
                                                              "LIFECYCLE"]) if shards else []
            except Exception as e:  # noqa: BLE001
                log.error("%s: cannot read the ledger to recover: %s", self.name, e)
                return
            pending, self._pending_gateways = self._pending_gateways, {}
            for venue, h in pending.items():
                await self.register_gateway(venue, h)
            if info.get("risk_guard"):  # before the recovered summaries are pushed: it books them too
                try:
                    risk = peers.risk_guard(info)
                    self.risk_guard = risk
                    risk.register_coordinator.remote(self.name, me)  # a fresh grant; refused until it lands
                    # the gateways were registered (and probed) before it was known: what the
                    # strategies were told of each venue meanwhile, the risk guard hears now
                    self._retell_guard(risk)
                except Exception as e:  # noqa: BLE001 - without a grant the checker refuses: safe
                    log.warning("%s: risk guard not found after restart: %s", self.name, e)
            # orders sent just before the crash may have no ORDER_SENT in the trail yet: the
            # gateways hold every order they were handed, so each is asked for those of the
            # pairs left open
            open_dids = sorted(self.book.open_decisions(trail))
            venue_orders: list[Any] = []
            unanswered: dict[str, str] = {}
            if open_dids:  # an unanswered gateway's trail orders are still queried
                venue_orders, unanswered = await self._orders_at_gateways(open_dids)
            counts, cmds = self.book.recover(trail, venue_orders, {k.split("/", 1)[0] for k in unanswered})
            rolls = recover_rolls(trail, self.name)  # installed before any await: a re-sent roll is a duplicate
            self._install_rolls(rolls)
            orphans = await self._record_orphans(trail)
            self.recovered = {**counts, "orphans": len(orphans), "events_read": len(trail),
                              "gateways": sorted(self.gateways),
                              "strategies": len(self.strategies), "gateways_unanswered": sorted(unanswered),
                              "rolls": len(rolls.trackers), "rolls_open": sum(
                                  t.outcome is None for t in rolls.trackers.values())}
            self._execute(cmds)
            unsettled = dict(getattr(self.book, "recovery_deferred", {}))
            for intents in rolls.unrecorded.values():
                unsettled.update({i.decision_id: i for i in intents})
            if unsettled:  # their venues are asked what they hold until they answer
                self._spawn(self._settle_from_venues(unsettled))

    async def _record_orphans(self, trail: list[Event], margin_s: float = 120.0) -> list[str]:
        """Orders the gateways hold for this coordinator, sent since shortly before its last
        event in the trail, of decisions the trail does not know at all: their ORDER_SENT is
        written now (``PairBook.record_orphans``), so the trail names every order the venues
        hold. A gateway that does not answer is skipped (its orders stay unnamed; logged)."""
        mine = [e.ts_ns for e in trail if e.actor == self.name]
        since = max(mine) - int(margin_s * 1e9) if mine else 0
        orders, unanswered = await self._orders_at_gateways(None, since_ns=since)
        named = {str(e.payload.get("client_order_id")) for e in trail if e.kind is EventKind.ORDER_SENT}
        orphans = self.book.record_orphans(orders, named)
        if orphans:
            log.warning("%s: %d decision(s) had orders at the venues and nothing in the trail: recorded (%s)",
                        self.name, len(orphans), ", ".join(orphans[:5]))
            await self._adopt_orphans(orphans, orders)
        if unanswered:
            log.warning("%s: gateways of %s did not list their orders: any order of theirs the trail lacks "
                        "stays unnamed", self.name, ", ".join(sorted(unanswered)))
        return orphans

    async def _adopt_orphans(self, orphans: list[str], orders: list[Any]) -> None:
        """Each orphan decision is rebuilt from its strategy's ``SIGNAL`` (which names both
        legs: ``PairBook.orphan_intent``) and adopted like a re-sent decision: wound down from
        the venues' word, so its trail ends in a terminal ``PAIR_STATE`` even when its strategy
        heard it end before the crash and will never send it again. One whose signal cannot be
        read is left to its strategy's re-send (BAD_INPUT names why)."""
        from ..ledger.reader import read_trail

        shards = getattr(self.sink, "shard_handles", None)
        try:
            signals = await read_trail(list(shards), kinds=["SIGNAL"], decision_ids=orphans) if shards else []
        except Exception as e:  # noqa: BLE001 - the strategies' re-sends remain
            log.error("%s: cannot read the orphans' signals: %s", self.name, e)
            return
        by_did = {e.decision_id: e for e in signals if e.decision_id}
        for did in orphans:
            sig = by_did.get(did)
            try:
                if sig is None:
                    raise ValueError("no SIGNAL of it in the ledger")
                intent = self.book.orphan_intent(sig, orders)
            except (ValueError, KeyError, TypeError) as e:
                self._execute(self.book.refuse_input(
                    "recover", f"orphan decision {did}: not rebuilt ({e}); left to its strategy's re-send", did))
                continue
            self._adopt(intent, [o for o in orders if o.decision_id == did],
                        "rebuilt from its strategy's SIGNAL after the coordinator restarted: its orders were at "
                        "the venues and nothing of it in the trail")

    def _install_rolls(self, rolls: Any) -> None:
        """A restart's rolls (:func:`core.roll.recover_rolls`): each tracker installed (so that
        ``roll_outcome`` answers and a re-sent roll is a duplicate), the outcomes the trail's
        finished children decide recorded now, the deadlines of the rest armed again. Their
        children still open are wound down by the pair book's recovery and reach their tracker
        as any finished pair does."""
        for did, why in rolls.unreadable:
            self._execute(self.book.refuse_input("recover", f"roll {did}: record unreadable ({why}); not followed", did))
        for did, t in rolls.trackers.items():
            self._rolls[did] = t
            for c in t.record.children:
                self._roll_of[c] = did
        for did, t in rolls.trackers.items():
            if did in rolls.decided_now:
                self._record_roll_done(did, t, t.outcome)  # type: ignore[arg-type]
            elif t.outcome is not None:  # decided by the previous life, which may have died before telling the host
                self._push_roll_done(did, t.record.strategy, t.outcome, retold=True)
        for did, t in rolls.trackers.items():
            if t.outcome is None:
                self._arm_roll_deadline(did, t.record.deadline_ns)

    async def _settle_from_venues(self, intents: dict[str, PairIntent], pause_s: float = 2.0) -> None:
        """Decisions a restart could not settle from the trail alone (an INTENT with nothing
        after it while its venue did not answer; a roll's child the trail never recorded): their
        gateways are asked, again every ``pause_s`` until they answer. Orders found are adopted
        and wound down (:meth:`_adopt_from_venues`). None anywhere: the decision was never sent,
        and it ends (ROLLED_BACK, nothing to undo: its trail is terminal, a roll's child counts as
        not rolled, a strategy sending it again gets that answer)."""
        left = dict(intents)
        while left and not self.closing:
            for did, intent in list(left.items()):
                if self.book.knows(did):  # re-sent meanwhile and adopted on that path
                    left.pop(did)
                    continue
                res = await self._adopt_from_venues(intent)
                if res is not None and not res.get("accepted"):
                    continue  # a gateway still cannot say: asked again
                left.pop(did)
                if res is None:  # no order anywhere: it ends with nothing to undo, and its trail says so
                    intent_ev = self.book.events.make(EventKind.INTENT, decision_id=did, strategy=intent.strategy,
                                                      intent=intent.model_dump(mode="json"))  # not written: read
                    counts, cmds = self.book.recover([intent_ev], [])
                    self._execute(cmds)
            if left:
                log.warning("%s: %d decision(s) not settled yet, their venues do not answer: %s", self.name,
                            len(left), ", ".join(sorted(left)[:5]))
                await asyncio.sleep(pause_s)

    async def _orders_at_gateways(self, decision_ids: list[str] | None,
                                  since_ns: int = 0) -> tuple[list[Any], dict[str, str]]:
        """The orders every gateway holds for ``decision_ids`` (None: every decision of this
        coordinator sent since ``since_ns``; ``VenueGateway.orders_of``), each
        gateway asked once (one gateway may stand under several routing keys, its accounts);
        and the venues whose gateway did not answer, with the error's type."""
        orders: list[Any] = []
        unanswered: dict[str, str] = {}
        asked: set[int] = set()
        for venue, h in sorted(self.gateways.items()):
            if id(h) in asked:
                continue
            asked.add(id(h))
            try:
                orders += await asyncio.wait_for(_await_ref(h.orders_of.remote(decision_ids, self.name,
                                                                               since_ns=since_ns)), 10.0)
            except Exception as e:  # noqa: BLE001 - the caller decides what not knowing means
                unanswered[venue] = type(e).__name__
                log.warning("%s: gateway of %s did not list its orders of %s: %s", self.name, venue,
                            ", ".join(decision_ids[:3]) if decision_ids is not None else "any decision", e)
        return orders, unanswered

    async def _adopt_from_venues(self, intent: PairIntent) -> dict[str, Any] | None:
        """A decision made before this coordinator's life, re-sent (unknown outcome) and unknown
        to its trail: the previous life may have sent its orders and died before writing a word
        of it. The gateways hold every order they were handed: if they hold some of this
        decision, the pair is not run again (that would double it) nor refused (its fills would
        belong to nobody); it is rebuilt from the intent and those orders, as a recovered pair,
        and wound down from the venues' word (``PairBook.recover``). None: no order anywhere,
        run it as new. A gateway that cannot say refuses the submit (the strategy sends again)."""
        did = intent.decision_id
        orders, unanswered = await self._orders_at_gateways([did])
        if unanswered:  # not knowing whether it was sent: do not send it again
            venue, why = next(iter(sorted(unanswered.items())))
            return {"decision_id": did, "accepted": False, "state": "REFUSED", "duplicate": False, "transient": True,
                    "reason": f"RECOVERING: the gateway of {venue} did not say whether it holds orders of {did} "
                              f"({why}); not sent, try again"}
        if not orders:
            return None
        counts = self._adopt(intent, orders, "re-sent after the coordinator restarted; its orders were found at the venues")
        m = self.book.pairs.get(did)
        return {"decision_id": did, "accepted": True, "state": m.state.value if m is not None else None,
                "duplicate": True, "adopted": counts.get("adopted", 0),
                "reason": "sent before the coordinator restarted: adopted from the venues' orders and wound down"}

    def _adopt(self, intent: PairIntent, orders: list[Any], why: str) -> dict[str, int]:
        """Rebuild ``intent``'s pair from its ``orders`` at the venues, as a recovered pair (its
        ``INTENT`` and a ``PAIR_STATE`` WORKING written now), and wind it down."""
        did = intent.decision_id
        mk = self.book.events.make
        found = [mk(EventKind.INTENT, decision_id=did, strategy=intent.strategy, reason=why,
                    mode=intent.mode.value, intent=intent.model_dump(mode="json")),
                 # its orders are out: it was working when the previous life died
                 mk(EventKind.PAIR_STATE, decision_id=did, strategy=intent.strategy, to=PairState.WORKING.value,
                    reason="orders found at the venues after the coordinator restarted")]
        self.sink.emit_many(found)
        counts, cmds = self.book.recover(found, orders)
        self._execute(cmds)
        log.warning("%s: decision %s had %d order(s) at the venues: adopted (%s)", self.name, did, len(orders), counts)
        return counts

    async def ready(self) -> bool:
        await self._ensure_registered()
        return True

    # -- inputs ----------------------------------------------------------------------------
    async def submit(self, intent: PairIntent | dict, summary_in_reply: bool = False) -> dict[str, Any]:
        """Accept or refuse a pair (idempotent on ``decision_id``); the outcome is pushed later.

        Returns ``{decision_id, accepted, state, reason, duplicate}``. A refusal or a duplicate
        is answered at once; a refusal with ``transient`` (``RECOVERING``: a restarted
        coordinator not ready to say whether the decision was sent) is not an outcome, and the
        caller sends the same intent again; an accepted pair once the venues have answered its orders, or
        after ``submit_reply_hold_ms``, with ``state`` as the pair stands then and
        ``legs_answered`` (whether they had).

        ``summary_in_reply`` (a strategy host submitting its own strategy's intent): the
        summaries the pair ends with while its answer is held travel in that answer
        (``summaries``: wire dicts, in order) instead of an ``on_pair_done`` push to the
        strategy, one Ray call fewer per pair on the common path (IOC legs answered filled);
        a summary made after the answer left is pushed as usual. A duplicate of a finished pair
        carries its latest summary, so a host that re-sends after a failed call still hears
        the outcome. The risk guard's push is unchanged. The caller applies these exactly as
        a push (applying a summary twice is a no-op)."""
        t0 = time.perf_counter_ns()
        if self.closing:
            did = intent.decision_id if isinstance(intent, PairIntent) else str(dict(intent).get("decision_id", ""))
            return {"decision_id": did, "accepted": False, "state": "REFUSED", "reason": "coordinator is shutting down"}
        await self._ensure_registered()
        if self.reconstructed and self.recovered is None:
            did = intent.decision_id if isinstance(intent, PairIntent) else str(dict(intent).get("decision_id", ""))
            return {"decision_id": did, "accepted": False, "state": "REFUSED", "transient": True,
                    "reason": "RECOVERING: the restarted coordinator cannot read its trail yet; send it again"}
        if self.reconstructed and isinstance(intent, PairIntent) and not self.book.knows(intent.decision_id) \
                and intent.created_ns < self._life_started_ns:
            adopted = await self._adopt_from_venues(intent)
            if adopted is not None:
                return adopted
        rolling = (self._rolling(intent) or "") if isinstance(intent, PairIntent) and self._rolls else ""
        liquidity = None
        if isinstance(intent, PairIntent) and intent.mode is ExecutionMode.QUANTITY:
            liquidity = await self._liquidity(intent)
        res, cmds = self.book.submit(intent, liquidity, refuse=rolling)
        did = res.get("decision_id")
        fresh = did and not res.get("duplicate")
        if summary_in_reply and did and res.get("duplicate") and did in self._summaries:
            res = {**res, "summaries": [self._summaries[did]]}  # the caller may not have heard it
        if fresh:
            self.timings[did] = {"received": t0}
            if len(self.timings) > self.config.keep_finished_pairs:
                self.timings.popitem(last=False)
        sent = {c.req.client_order_id for c in cmds if isinstance(c, Place)}
        if not (fresh and sent and self.config.submit_reply_hold_ms > 0):
            self._execute(cmds)
            return res
        # answer once the venues have answered these orders, or after the hold: an answer sent
        # while the legs are in flight delays them (CoordinatorConfig.submit_reply_hold_ms).
        # Registered before they leave; their answers are read on later loop turns.
        answered = asyncio.Event()
        self._unanswered[did] = (sent, answered)
        if summary_in_reply:
            self._in_reply[did] = []  # NotifyDone puts the strategy's summaries here meanwhile
        try:
            self._execute(cmds)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(answered.wait(), self.config.submit_reply_hold_ms / 1000)
        except BaseException:  # cancelled: this answer will not leave, so its summaries are pushed
            h = self.strategies.get(intent.strategy) if isinstance(intent, PairIntent) else None
            for wire in self._in_reply.pop(did, None) or ():
                if h is not None:
                    h.on_pair_done.remote(wire)
            raise
        finally:
            self._unanswered.pop(did, None)
            folded = self._in_reply.pop(did, None)
        # the pair as it stands now (HEDGED already, when both venues filled at once)
        m = self.book.pairs.get(did)
        out = {**res, "state": m.state.value if m is not None else res["state"], "legs_answered": answered.is_set()}
        if folded:
            out["summaries"] = folded
        return out

    # -- calendar rolls (core/roll.py, docs/contracts.md "Rolling a position") -----------------
    async def submit_roll(self, request: RollRequest) -> dict[str, Any]:
        """Execute a position's roll as one decision: record it (an ``OPERATOR`` event, action
        ``roll``, under the roll's decision id, with the plan and its child pair ids), submit
        every child calendar spread at once (each a pair under the usual guarantees: both
        orders together, offsets chosen here, replenish and rollback), then decide the roll:
        ``ROLLED`` when every child is HEDGED and complete, else ``ESCALATED`` with a red ALERT,
        also when the deadline (end of ``roll_by``) passes first. Idempotent on the decision id.

        Returns ``{decision_id, accepted, children: [submit answers], reason}``."""
        if not isinstance(request, RollRequest):  # built by core.roll.build_roll, which checks the fields
            self._execute(self.book.refuse_input(
                "roll", f"request: a {type(request).__name__}, not a RollRequest (core.roll.build_roll)"))
            return {"decision_id": "", "accepted": False, "reason": "request: not a RollRequest"}
        did = request.decision_id
        if did in self._rolls or did in self._rolls_claimed:
            return {"decision_id": did, "accepted": False, "duplicate": True, "reason": "duplicate roll"}
        if self.closing:
            return {"decision_id": did, "accepted": False, "transient": True, "reason": "coordinator is shutting down"}
        self._rolls_claimed.add(did)  # a second call with this id while this one awaits is a duplicate
        try:
            await self._ensure_registered()
            if self.reconstructed and self.recovered is None:  # its rolls and pairs not read back yet
                return {"decision_id": did, "accepted": False, "transient": True,
                        "reason": "RECOVERING: the restarted coordinator cannot read its trail yet; send it again"}
            # a child the book already knows (a roll sent before this coordinator restarted,
            # recovered from the trail) is the same roll again: nothing is sent twice
            known = [c.decision_id for c in request.children if self.book.knows(c.decision_id)]
            if known:
                return {"decision_id": did, "accepted": False, "duplicate": True,
                        "reason": f"duplicate roll: {', '.join(known)} already submitted (see the ledger)"}
            moving = {lg.instrument for c in request.children for lg in c.legs}
            undecided = rolls_moving(self._rolls, request.strategy, moving)
            if undecided:  # sized on lots that roll is still moving: a second roll would move them twice
                return {"decision_id": did, "accepted": False, "transient": True,
                        "reason": f"ROLLING: roll {undecided[0]} of {request.strategy} is still moving these contracts; "
                                  "send the roll again once it is decided"}
            busy = self._pairs_in_flight(request.strategy, moving)
            if busy:  # its lots are moving: the roll is sized on lots that may not be there when it lands
                return {"decision_id": did, "accepted": False, "transient": True,
                        "reason": f"IN_FLIGHT: {', '.join(busy[:3])} of {request.strategy} still working on these "
                                  "contracts; send the roll again once they are done"}
            unheld = unheld_near_legs(request, await self._roll_holdings(request))
            if unheld:  # refused before anything is recorded as a roll: counted, recorded, nothing sent
                reason = "roll refused: " + "; ".join(unheld)
                self._execute(self.book.refuse_input("roll", reason, decision_id=did))
                return {"decision_id": did, "accepted": False, "reason": reason,
                        "transient": all("cannot be verified" in u for u in unheld)}
            tracker = RollTracker(request.record())
            self._rolls[did] = tracker
        finally:
            self._rolls_claimed.discard(did)
        for c in request.children:
            self._roll_of[c.decision_id] = did
        self._flush_emits()
        self.sink.emit(self.book.events.make(
            EventKind.OPERATOR, decision_id=did, strategy=request.strategy, reason=f"roll {did}", action="roll",
            **request.payload()))
        try:
            answers = list(await asyncio.gather(*(self.submit(c) for c in request.children), return_exceptions=True))
            for i, (c, a) in enumerate(zip(request.children, answers)):
                if isinstance(a, BaseException):  # its fate unknown here: the deadline decides it
                    log.error("%s: roll %s: submitting %s failed: %s", self.name, did, c.decision_id, a)
                    answers[i] = {"decision_id": c.decision_id, "accepted": False,
                                  "reason": f"submit failed: {type(a).__name__}: {a}"[:300]}
                elif not a.get("accepted"):  # refused before any order: that child is done, unrolled
                    self._roll_step(did, lambda t, c=c, a=a: t.on_child(
                        {"decision_id": c.decision_id, "state": a.get("state", "REFUSED"), "complete": False,
                         "reason": a.get("reason", "")}))
        finally:
            if tracker.outcome is None:
                self._arm_roll_deadline(did, request.deadline_ns)
        return {"decision_id": did, "accepted": any(a.get("accepted") for a in answers),
                "children": answers, "reason": request.plan.reason}

    def _pairs_in_flight(self, strategy: str, instruments: set[str], *, but: str = "") -> list[str]:
        """Decision ids of ``strategy``'s pairs still open on any of ``instruments`` (a roll's own
        children and ``but``'s excepted)."""
        out = []
        for did, m in self.book.pairs.items():
            if m.state.is_terminal or did in self._roll_of or did == but or m.intent.strategy != strategy:
                continue
            if any(lg.instrument in instruments for lg in m.intent.legs):
                out.append(did)
        return sorted(out)

    def _rolling(self, intent: PairIntent) -> str | None:
        """Why ``intent`` must wait: its strategy's roll of these contracts is not decided yet (its
        orders would trade lots the roll is moving). None for the roll's own children."""
        if intent.decision_id in self._roll_of:
            return None
        for rid in rolls_moving(self._rolls, intent.strategy, (lg.instrument for lg in intent.legs)):
            return f"ROLLING: roll {rid} of {intent.strategy} is moving these lots; decided first"
        return None

    def _arm_roll_deadline(self, did: str, deadline_ns: int) -> None:
        """Decide the roll at its deadline; a timer that fires early (the loop's clock is not the
        wall clock the deadline is on) is armed again until the tracker decides."""
        def fire() -> None:
            self._roll_timers.pop(did, None)
            t = self._rolls.get(did)
            if t is None or t.outcome is not None:
                return
            was_late = t.late
            working = {c for c in t.record.children
                       if (m := self.book.pairs.get(c)) is not None and not m.state.is_terminal}
            self._roll_step(did, lambda t: t.on_deadline(self.clock.now_ns(), working))
            if t.outcome is None and not t.late:  # early: the loop's clock is not the wall clock the deadline is on
                self._arm_roll_deadline(did, deadline_ns)
            elif t.outcome is None and not was_late:  # late, children still working: said once, decided when they end
                self._flush_emits()
                msg = (f"roll {did} not done by its deadline (end of {t.record.roll_by}): "
                       f"{', '.join(sorted(working))} still working, wound down by their own deadline; "
                       "the roll is decided when they end")
                self.sink.emit(self.book.events.make(
                    EventKind.ALERT, decision_id=did, strategy=t.record.strategy, reason=msg[:500],
                    **coordinator_alert(alert_id=f"{did}:roll_late", monitor="calendar_roll", strategy=t.record.strategy,
                                        level="red", action="none", message=msg, value=float(len(working)),
                                        threshold=0.0, opened_ns=self.clock.now_ns())))

        delay = max(deadline_ns - self.clock.now_ns(), 0) / 1e9
        self._roll_timers[did] = asyncio.get_running_loop().call_later(max(delay, 0.001), fire)

    async def _roll_holdings(self, request: RollRequest) -> Callable[[str, str], tuple[int, int] | None]:
        """``held(account, instrument)`` for the roll's near contracts: ``(long, short)`` lots
        that may be closed now. At a two-sided venue from this coordinator's book (the venue's
        positions loaded at start, then its fills, less working closes); at a netting venue
        from its gateway's ``positions()`` (the venue's word; None when it cannot answer)."""
        out: dict[tuple[str, str], tuple[int, int] | None] = {}
        for c in request.children:
            for lg in c.legs:
                if lg.leg != NEAR_LEG:
                    continue
                inst = self.book.instruments.get(lg.instrument)
                key = (lg.account, lg.instrument)
                if inst is None:
                    out[key] = None
                    continue
                held = self.book.closable(lg.account, inst)
                if held is not None:
                    out[key] = held
                    continue
                gw = self._gateway(inst.venue, lg.account)
                try:
                    r = await asyncio.wait_for(_await_ref(gw.positions.remote()), self.config.call_timeout_ms / 1000) \
                        if gw is not None else None
                    net = int((r or {}).get(lg.account, {}).get(inst.id, 0)) if isinstance(r, dict) else None
                except Exception as e:  # noqa: BLE001 - the venue cannot say: the roll is refused, not guessed
                    log.warning("%s: roll %s: positions of %s not read: %s", self.name, request.decision_id, inst.venue, e)
                    net = None
                out[key] = None if net is None else (max(net, 0), max(-net, 0))
        return lambda account, instrument: out.get((account, instrument))

    def _roll_step(self, did: str, step: Callable[[RollTracker], dict[str, Any] | None]) -> None:
        """Feed the roll's tracker; once it decides, record the outcome (``LIFECYCLE``
        ``ROLL_DONE``; an escalation also a red ``ALERT`` under the roll's decision id)."""
        t = self._rolls.get(did)
        if t is None:
            return
        out = step(t)
        if out is None:
            return
        self._record_roll_done(did, t, out)

    def _record_roll_done(self, did: str, t: RollTracker, out: dict[str, Any]) -> None:
        """A roll's outcome written: ``LIFECYCLE`` ``ROLL_DONE``; an escalation also a red
        ``ALERT`` under the roll's decision id."""
        h = self._roll_timers.pop(did, None)
        if h is not None:
            h.cancel()
        self._flush_emits()
        req = t.record
        mk = self.book.events.make
        self.sink.emit(mk(EventKind.LIFECYCLE, decision_id=did, strategy=req.strategy, reason="ROLL_DONE",
                          roll_state=out["state"], message=out["reason"], children=out["children"],
                          moves=out["moves"]))
        self._push_roll_done(did, req.strategy, out)
        if out["state"] != "ROLLED":
            self.sink.emit(mk(EventKind.ALERT, decision_id=did, strategy=req.strategy, reason=out["reason"][:500],
                              **coordinator_alert(alert_id=f"{did}:roll", monitor="calendar_roll", strategy=req.strategy,
                                                  level="red", action="none", message=out["reason"], value=1.0,
                                                  threshold=0.0, opened_ns=self.clock.now_ns())))

    def _push_roll_done(self, did: str, strategy: str, out: Mapping[str, Any], retold: bool = False) -> None:
        """The strategy's host hears the roll's outcome: its legs follow the lots to the far
        months (``StrategyHost.on_roll_done``; a host that misses it replays the trail when it
        restarts). ``retold``: told again by a restarted coordinator: the host applies the
        rolled moves that still apply and halts nothing."""
        host = self.strategies.get(strategy)
        if host is not None:
            host.on_roll_done.remote({"decision_id": did, "strategy": strategy, "roll_state": out.get("state"),
                                      "moves": out.get("moves") or [], "retold": retold})

    async def roll_outcome(self, decision_id: str) -> dict[str, Any] | None:
        """A roll's outcome once decided (``state`` ROLLED/ESCALATED, ``reason``, ``children``), else None.
        A restarted coordinator answers once it has read its rolls back from the ledger."""
        o = await self.roll_state(decision_id)
        return None if o["state"] in ("WORKING", "UNKNOWN") else o

    async def roll_state(self, decision_id: str) -> dict[str, Any]:
        """A roll's outcome once decided (as :meth:`roll_outcome`), else ``{"state": "WORKING"}``
        while it is, or ``{"state": "UNKNOWN"}`` for a roll this coordinator never recorded (its
        sender may send it again: the same id is never executed twice)."""
        if self.reconstructed and self.recovered is None:
            await self._ensure_registered()
        t = self._rolls.get(decision_id)
        if t is None:
            return {"state": "WORKING" if decision_id in self._rolls_claimed else "UNKNOWN", "decision_id": decision_id}
        return t.outcome if t.outcome is not None else {"state": "WORKING", "decision_id": decision_id}

    async def _liquidity(self, intent: PairIntent) -> dict[str, int] | None:
        """Visible lots per leg: from the intent, else from the gateways' latest quotes."""
        out: dict[str, int] = {}
        for leg in intent.legs:
            if leg.visible_qty is not None:
                out[leg.leg] = leg.visible_qty
                continue
            inst = self.book.instruments.get(leg.instrument)
            gw = self._gateway(inst.venue, leg.account) if inst else None
            if gw is None:
                continue
            try:
                q = await asyncio.wait_for(asyncio.wrap_future(gw.snapshot.remote(leg.instrument).future()),
                                           self.config.call_timeout_ms / 1000)
            except (RayError, asyncio.TimeoutError):
                continue
            if q is not None:
                out[leg.leg] = q.ask_size if leg.side.value == "BUY" else q.bid_size
        return out

    async def on_reports(self, reports: list[ExecutionReport]) -> None:
        """Reports pushed by a gateway (resting fills, expiries, late fills)."""
        if self.reconstructed and self.recovered is None:
            await self._ensure_registered()  # a restarted coordinator knows its orders only after recovery
        self._execute(self.book.on_reports(reports))

    async def on_risk_grant(self, grant: Any) -> Any:
        """From the RiskGuard: hand the grant to the checker; returns the checker's ack."""
        self._kick_recover()
        return self.book.on_risk_grant(grant)

    async def recover_from_ledger(self) -> dict[str, Any] | None:
        """Recover pairs from the ledger now, as a restarted coordinator does: what a deployment
        started on an existing ledger calls before it trades (pairs a crashed run left open are
        wound down from the venues' state; every decision id is known again). Returns what was
        recovered (also in ``status()["recovered"]``)."""
        self.reconstructed = True
        self.recovered = None
        await self._ensure_registered()
        return self.recovered

    def _kick_recover(self) -> None:
        """A restarted coordinator recovers on its first call of any kind, not only on a submit or
        a report: its strategies may be waiting, without a word, for the outcome of a pair the
        crash cut off (only the recovery pushes it again)."""
        if self.reconstructed and self.recovered is None and (self._recover_task is None or self._recover_task.done()):
            self._recover_task = asyncio.get_running_loop().create_task(self._ensure_registered())

    async def set_trading_state(self, scope: str, key: str | None, state: str, operator: str = "",
                                by: dict[str, Any] | None = None) -> dict[str, Any]:
        """From the RiskGuard / operator: applied before any further order is sent.

        A strategy's state also reaches the strategy itself in its host: HALTED halts it (it
        stops deciding), and ACTIVE set by an operator resumes it, which is how a strategy halted
        by an escalated pair trades again (``xmc resume --strategy S``). An automatic change
        never resumes a strategy. ``by``: the operator's role and channel, as the risk guard
        recorded them (core/attribution.py)."""
        self._execute(self.book.set_trading_state(scope, key or "", state, operator, by))
        host = self.strategies.get(key or "") if scope == "strategy" else None
        if host is not None:
            why = f"trading state {state} by {operator or 'unknown'}"
            if str(state) == "HALTED":
                host.halt.remote(key, why)
            elif str(state) == "ACTIVE" and operator not in ("", "auto"):
                host.resume.remote(key, why)
        return {"coordinator": self.name, "scope": scope, "key": key, "state": str(state)}

    # -- views -----------------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        self._kick_recover()
        out = self.book.status()
        out["name"] = self.name
        out["gateways"] = sorted(self.gateways)
        out["reconstructed"], out["recovered"] = self.reconstructed, self.recovered
        return out

    async def pairs(self, decision_id: str) -> dict[str, Any] | None:
        return self.book.pair(decision_id)

    async def events(self, decision_id: str | None = None) -> list[Event]:
        self._flush_emits()
        if not isinstance(self.sink, MemorySink):
            return []
        return self.sink.by_decision(decision_id) if decision_id else list(self.sink.events)

    async def get_timings(self) -> dict[str, dict[str, int]]:
        """Per pair: ``received``, ``ack_A`` / ``ack_B`` (perf ns), gateway arrival stamps, compensation."""
        return self.timings

    async def await_pair(self, decision_id: str, timeout_s: float = 10.0) -> dict[str, Any] | None:
        """The pair's summary once it is finished (None on timeout)."""
        if decision_id not in self._summaries:
            ev = self._done.setdefault(decision_id, asyncio.Event())
            try:
                await asyncio.wait_for(ev.wait(), timeout_s)
            except asyncio.TimeoutError:
                if decision_id not in self.book.pairs:  # never submitted (or forgotten): no waiter left behind
                    self._done.pop(decision_id, None)
                return self._summaries.get(decision_id)
        return self._summaries.get(decision_id)

    async def drain(self, timeout_s: float = 5.0) -> int:
        """Wait for the gateway calls in flight (tests, benchmarks); returns how many remain."""
        end = time.monotonic() + timeout_s
        while self.tasks and time.monotonic() < end:
            await asyncio.wait(list(self.tasks), timeout=max(end - time.monotonic(), 0))
        return len(self.tasks)

    async def await_idle(self, timeout_s: float = 10.0) -> int:
        """Return once no pair is in flight (replay settle); returns how many still are."""
        end = time.monotonic() + timeout_s
        while True:
            n = self.book.in_flight_count()
            if n == 0 or time.monotonic() >= end:
                return n
            await asyncio.sleep(0.0005)

    async def summaries(self) -> list[dict[str, Any]]:
        """The latest summary of every finished pair (run reports, a rebuilding risk guard), as
        sent: ``PairSummary.model_dump(mode="json")``."""
        return list(self._summaries.values())

    async def shutdown(self, timeout_s: float = 20.0) -> dict[str, Any]:
        """Stop cleanly: refuse new intents, let open pairs finish; what is still open after
        half the time is wound down by a global HALT (working orders cancelled, any residual
        rolled back or escalated with its exact size). Returns the final status."""
        self.closing = True
        end = time.monotonic() + timeout_s
        halted = False
        while time.monotonic() < end:
            if not self.book.in_flight_count():
                break
            if not halted and time.monotonic() > end - timeout_s / 2:
                self._execute(self.book.set_trading_state("global", "", "HALTED", "shutdown"))
                halted = True
            await asyncio.sleep(0.01)
        await self.drain(max(0.1, end - time.monotonic()))
        await self.flush_sink()
        return await self.status()

    async def flush_sink(self) -> None:
        """Wait until the events this actor emitted are acknowledged by the ledger (shutdown)."""
        self._flush_emits()
        aflush = getattr(self.sink, "aflush", None)
        if aflush is not None:
            await aflush()

    # -- the command executor --------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    def _execute(self, cmds: list[Command]) -> None:
        # 1. every gateway call of the batch leaves first, back to back, nothing in between
        #    (leg skew is the gap between the two legs' .remote() calls, or, in a gateway
        #    group, between their hand-overs inside the one call)
        calls: list[tuple[str, str, Any]] = []
        batches: list[tuple[list[str], Any]] = []
        places = [c for c in cmds if isinstance(c, Place)]
        # orders bound for one gateway process (a gateway group) leave in one call, at the
        # first one's turn: id(first) -> the group's orders; id(others) -> None
        grouped = self._place_groups(places) if len(places) > 1 else {}
        for c in cmds:
            if isinstance(c, Place):
                if c.req.reduce_only and c.decision_id in self.timings:
                    self.timings[c.decision_id].setdefault("unwind_sent", time.perf_counter_ns())
                gw = self._gateway(c.venue, c.req.account)
                if id(c) in grouped:
                    group = grouped[id(c)]
                    if group is not None:
                        batches.append(([p.req.client_order_id for p, _ in group], actor_of(gw)[0].place_many_wire.remote(
                            [(gname, to_wire(p.req)) for p, gname in group])))
                else:
                    # issued now, awaited later: both legs leave before either is awaited
                    calls.append(("place", c.req.client_order_id,
                                  gw.place_wire.remote(to_wire(c.req)) if gw is not None else None))
            elif isinstance(c, Cancel):
                gw = self._gateway(c.venue, c.account)
                calls.append(("cancel", c.client_order_id, gw.cancel.remote(c.client_order_id) if gw else None))
            elif isinstance(c, Query):
                gw = self._gateway(c.venue, c.account)
                calls.append(("query", c.client_order_id, gw.query.remote(c.client_order_id) if gw else None))
        if places:
            t = self.timings.get(places[0].decision_id)
            if t is not None:
                t.setdefault("sent", time.perf_counter_ns())
        # 2. then the rest, in order; events are built on the next loop turn (after this
        #    call's answer, and after answers already waiting), in the order they were made
        for c in cmds:
            if isinstance(c, StartTimer):
                delay = max(c.at_ns - self.clock.now_ns(), 0) / 1e9
                tok = next(self._timer_seq)
                self._timers.setdefault(c.decision_id, {})[tok] = asyncio.get_running_loop().call_later(
                    delay, self._fire, c.decision_id, c.key, tok)
            elif isinstance(c, CancelTimers):
                for h in self._timers.pop(c.decision_id, {}).values():
                    h.cancel()
            elif isinstance(c, NotifyDone):
                self._metric_pair(c.summary)  # self.metrics: its first summary only
                did = c.summary.decision_id
                wire = c.summary.to_wire()  # over Ray as plain data; receivers model_validate it
                # an increment (a late fill on a pair no longer held) is kept beside the pair's
                # summary, not over it (summaries() feeds a rebuilding risk guard)
                key = f"{did}#{c.summary.trade_id}" if c.summary.incremental else did
                self._summaries[key] = wire
                self._summaries.move_to_end(key)
                if len(self._summaries) > self.config.keep_finished_pairs:
                    self._summaries.popitem(last=False)
                ev = self._done.pop(did, None)
                if ev is not None:
                    ev.set()
                if did in self._roll_of and not c.summary.incremental:
                    self._roll_step(self._roll_of[did], lambda t, w=wire: t.on_child(w))
                # a roll's child is not a decision of its strategy: it hears of the roll as a whole
                h = self.strategies.get(c.strategy) if did not in self._roll_of else None
                folded = self._in_reply.get(did) if h is not None else None
                if folded is not None:  # its held submit answer carries it to the strategy's host
                    folded.append(wire)
                elif h is not None:
                    h.on_pair_done.remote(wire)
                if self.risk_guard is not None:
                    self.risk_guard.on_pair_done.remote(wire)
            elif isinstance(c, HaltStrategy):
                h = self.strategies.get(c.strategy)
                if h is not None and hasattr(h, "halt"):
                    h.halt.remote(c.strategy, f"pair {c.decision_id} escalated: {c.reason}")
        for call, coid, ref in calls:
            self._spawn(self._await_call(call, coid, ref))
        for coids, ref in batches:
            self._spawn(self._await_places(coids, ref))
        if len(self.held) and not self._emit_scheduled:
            self._emit_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_emits)

    def _place_groups(self, places: list[Place]) -> dict[int, list[tuple[Place, str | None]] | None]:
        """Orders of one batch that go to the same gateway process, two or more of them: placed
        there back to back by one ``place_many_wire`` call, so both legs of a pair whose venues
        share a gateway group arrive together. Returns ``id(first order) -> [(order, gateway
        name)]`` and ``id(each other order of the group) -> None``; lone orders are absent."""
        by_actor: dict[Any, list[tuple[Place, str | None]]] = {}
        for c in places:
            gw = self._gateway(c.venue, c.req.account)
            if gw is not None:
                actor, gname = actor_of(gw)
                by_actor.setdefault(getattr(actor, "_actor_id", id(actor)), []).append((c, gname))
        out: dict[int, list[tuple[Place, str | None]] | None] = {}
        for group in by_actor.values():
            if len(group) > 1:
                out[id(group[0][0])] = group
                out.update((id(p), None) for p, _ in group[1:])
        return out

    def _flush_emits(self) -> None:
        """Build and write the queued events (in order); called on the loop turn after ``_execute``."""
        self._emit_scheduled = False
        self.held.release()

    def _fire(self, decision_id: str, key: TimerKey, tok: int) -> None:
        armed = self._timers.get(decision_id)
        if armed is not None:
            armed.pop(tok, None)
            if not armed:
                del self._timers[decision_id]
        self._execute(self.book.on_timer(decision_id, key))

    async def _outcome(self, ref: Any) -> tuple[Any, str | None]:
        """A gateway call's result, or why there is none: a timeout, the actor died or is
        unavailable, the method raised. Without a result the call's outcome is unknown."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(ref.future()), self.config.call_timeout_ms / 1000), None
        except (asyncio.TimeoutError, GetTimeoutError):
            return None, "timeout"
        except RayError as e:  # ActorDiedError, ActorUnavailableError, RayTaskError
            return None, type(e).__name__

    async def _await_call(self, call: str, coid: str, ref: Any) -> None:
        if ref is None:
            self._execute(self.book.on_call_failed(coid, call, "no gateway registered for the venue"))
            return
        result, why = await self._outcome(ref)
        if call == "place":
            self._answered(coid)
        if why is not None:
            self._execute(self.book.on_call_failed(coid, call, why))
            if call == "place":
                record_order(self.metrics, self.book, coid, None, failed=True)
        elif call == "place":
            self._act_on_answer(*self._read_answer(coid, result))
        elif call == "cancel":
            self._execute(self.book.on_cancel_result(coid, result))
        else:
            self._execute(self.book.on_query_result(coid, result))

    async def _await_places(self, coids: list[str], ref: Any) -> None:
        """The answer to one ``place_many_wire`` call: one answer per order, in order. A call that
        failed or timed out leaves every one of its orders' outcomes unknown (each is queried)."""
        results, why = await self._outcome(ref)
        if why is None and (not isinstance(results, list) or len(results) != len(coids)):
            why = f"unreadable answer: {type(results).__name__}"
        for coid in coids:
            self._answered(coid)
        if why is not None:
            for coid in coids:
                self._execute(self.book.on_call_failed(coid, "place", why))
                record_order(self.metrics, self.book, coid, None, failed=True)
            return
        # every answer is read (and its ack timed) before the first is acted on; each comes with
        # how long the gateway held it for the others (``place_many_wire``)
        read: list[tuple[tuple[str, list[ExecutionReport], str | None], int]] = []
        for coid, r in zip(coids, results):
            if isinstance(r, str):
                read.append(((coid, [], f"gateway: {r}"), 0))
                continue
            data, held = r if isinstance(r, (tuple, list)) and len(r) == 2 else (r, 0)
            held = held if isinstance(held, int) and not isinstance(held, bool) else 0  # the book clamps it
            read.append((self._read_answer(coid, data), held))
        for answer, held in read:
            self._act_on_answer(*answer, held_ns=held)

    def _answered(self, coid: str) -> None:
        """A place call came back (answer or failure): a submit held for it may answer."""
        if not self._unanswered:
            return
        held = self._unanswered.get(split_client_order_id(coid)[0])
        if held is not None:
            held[0].discard(coid)
            if not held[0]:
                held[1].set()

    def _read_answer(self, coid: str, result: Any) -> tuple[str, list[ExecutionReport], str | None]:
        """``(coid, reports, None)``, or ``(coid, [], why)`` for an answer that cannot be read
        (a garbled answer: the outcome is unknown, the venue decides)."""
        try:
            reports = list((from_wire(result) if isinstance(result, bytes) else result) or [])
        except ValueError as e:
            return coid, [], f"unreadable answer: {e}"
        self._mark_ack(coid, reports)
        return coid, reports, None

    def _act_on_answer(self, coid: str, reports: list[ExecutionReport], why: str | None, held_ns: int = 0) -> None:
        self._execute(self.book.on_call_failed(coid, "place", why) if why is not None
                      else self.book.on_place_result(coid, reports, held_ns))
        record_order(self.metrics, self.book, coid, reports, failed=why is not None)  # after: off the legs' path

    def _metric_pair(self, summary: Any) -> None:
        """``pairs``, ``leg_latency_ms``, ``slippage_bps`` of a pair's first summary (a revised
        one of a pair whose summary is still kept is not counted again)."""
        did = summary.get("decision_id") if isinstance(summary, dict) else getattr(summary, "decision_id", None)
        if did not in self._summaries:
            record_pair(self.metrics, summary)

    def _mark_ack(self, coid: str, reports: Any) -> None:
        did, leg, rest = split_client_order_id(coid)
        t = self.timings.get(did)
        if t is None:
            return
        now = time.perf_counter_ns()
        if rest == "0":
            t.setdefault(f"ack_{leg}", now)
            if reports:
                t.setdefault(f"gw_ts_{leg}", int(reports[0].ts_ns))  # the gateway's clock on arrival
        if reports and any(r.reason is not None and r.reason.is_final for r in reports):
            t.setdefault("final_reject_recv", now)
