"""One backtest run: a deployment's cores on a discrete-event clock (``docs/lab.md``).

Nothing here decides anything a live deployment decides. The shells of a live run (the
gateway, strategy host, coordinator and risk guard actors) deliver inputs to the cores and
carry out the commands they return over Ray; this shell does the same through a heap of
timed events, with each hop's delay drawn from the ``lab:`` section's seeded latency models:

* a **market quote** changes the venue's book at its own time (:meth:`SimExchange.on_market`,
  which also fills resting orders by queue position); the strategies see it one market-data
  latency later;
* a strategy's **intent** reaches the pair book one internal hop later (``lab.internal``);
* an **order** reaches its venue one order-entry latency after the pair book sent it, and is
  matched against the book *as it stands then* (the market may have moved); its answer comes
  back one ack latency later; a resting order's fills one fill latency after they happen;
* the pair book's **timers** fire at their simulated time; the risk guard's periodic work
  (marks from the latest quotes, monitors, grant renewal) runs every ``risk.grant_refresh_ms``
  of simulated time, as its live timer does.

Every event of the run goes to a ledger written like a live run's (``xmc audit`` reads it).
The run keeps, beside the cores, what it needs for the execution figures
(:mod:`xmc_actors.lab.figures`): each pair's intent, edge at the trigger, the moments its legs
completed, its fees and its unhedged notional over time; each opportunity (a run of
evaluations in which a strategy's trigger held).
"""
from __future__ import annotations

import heapq
import itertools
import random
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterator

from ..core.clock import SimClock
from ..core.pair import (
    Cancel, CancelTimers, Command, HaltStrategy, NotifyDone, PairBook, Place, Query, StartTimer, TimerKey,
)
from ..core.risk_guard import GuardOutput, RiskGuardCore
from ..core.risk_rules import PreTradeChecker, fx_from_book
from ..core.sink import MemorySink
from ..feeds import build_feed
from ..feeds.fx import fx_book_from_config
from ..model.config import DeploymentConfig
from ..model.errors import VenueDisconnected
from ..model.lab import LabConfig, VenueLatency
from ..model.market import Side
from ..model.orders import ExecReportKind, ExecutionReport, OrderRequest, split_client_order_id
from ..model.pairs import ExecutionMode, PairIntent, PairState, PairSummary
from ..model.quotes import Quote
from ..strategies.base import Emit as StrategyEmit
from ..strategies.base import Strategy, Submit, build_strategy
from ..venues.sim import SimExchange, sample_latency_ns
from ..venues.sim_config import SimVenueParams

_MS = 1_000_000
COORDINATOR = "coordinator"


def _seed(*parts: Any) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode())


# ------------------------------------------------------------------------------ observations
@dataclass(slots=True)
class PairRecord:
    """What the lab saw of one pair, beside its summary."""

    decision_id: str
    strategy: str
    intent: PairIntent
    edge_bps: float | None            # the trigger's edge over the strategy's centre, bps
    submitted_ns: int                 # the intent reached the pair book
    first_sent_ns: int | None = None  # its first order left
    leg_done_ns: dict[str, int] = field(default_factory=dict)  # entry filled in full (received)
    fees: Decimal = Decimal(0)        # in each leg's currency, converted at the end
    fees_base: float = 0.0
    exception_venue_ns: int | None = None   # venue time of the first reject / expiry / IOC remainder
    exception_seen_ns: int | None = None    # the pair left WORKING (replenish or roll back)
    rollback_start_ns: int | None = None
    ended_ns: int | None = None
    summary: PairSummary | None = None


@dataclass(slots=True)
class Opportunity:
    strategy: str
    ts_ns: int
    edge_bps: float | None
    direction: int          # +1 buy A, -1 sell A
    lots: int               # leg-A lots the move wanted


@dataclass(slots=True)
class LabFill:
    ts_ns: int              # when the pair book heard of it
    venue_ts_ns: int        # when the venue made it (the market risk starts there)
    strategy: str
    decision_id: str
    leg: str
    instrument: str
    side: Side
    qty: int
    price: Decimal
    fee: Decimal
    kind: str = "entry"     # entry (a leg's first order), replenish (补单), unwind (回滚)


# ------------------------------------------------------------------------------ the run
class LabRun:
    """One policy over one scenario: build with the deployment, then :meth:`run`.

    Parameters
    ----------
    cfg
        The deployment (its ``lab:`` section, gateways, feeds, strategies, risk).
    policy
        ``price``, ``speed``, ``quantity``, ``lead_lag`` or ``sequential``: every trading
        strategy's execution mode for this run; None keeps each strategy's own.
    seed
        Mixed into every venue's seed and every latency draw (the market itself comes from the
        feeds' own configuration: the same for every policy).
    start_ns, end_ns
        Only quotes in ``[start_ns, end_ns)`` are played.
    max_duration_s
        A bound for endless feeds (synthetic without ``count``): simulated seconds after the
        first quote.
    quotes
        The market, already loaded (:func:`load_market`): several policies play one load.
    """

    def __init__(self, cfg: DeploymentConfig, *, policy: str | None = None, seed: int = 0,
                 start_ns: int | None = None, end_ns: int | None = None, max_duration_s: float | None = None,
                 quotes: list[tuple[int, str, Quote]] | None = None) -> None:
        self.cfg = cfg
        self.lab: LabConfig = cfg.lab
        self.policy = policy
        self.seed = seed
        self.start_ns, self.end_ns = start_ns, end_ns
        self.max_duration_s = max_duration_s if max_duration_s is not None else self.lab.max_duration_s
        self.clock = SimClock(0)
        self.sink = MemorySink()
        self.instruments = {i.id: i for i in cfg.instruments}
        self.venues = {v.code: v for v in cfg.venues}
        self.fx_book = fx_book_from_config(cfg.fx)  # each pair's max_lag_days, as a live run
        self.fx = fx_from_book(self.fx_book, self.clock)
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._build_venues(load_feeds=quotes is None)
        self.market = quotes
        self._build_risk()
        self._holding: dict[str, tuple[int, int]] = {}  # strategy -> (direction, target) wanted
        self._build_strategies()
        self._timer_tokens: dict[str, set[int]] = {}
        self._timer_seq = itertools.count()
        self.records: dict[str, PairRecord] = {}
        self.opportunities: list[Opportunity] = []
        self._last_edge: dict[str, float | None] = {}
        self.fills: list[LabFill] = []
        self.latest: dict[str, Quote] = {}
        self.counters: dict[str, int] = {"quotes": 0, "md_deliveries": 0, "orders": 0, "cancels": 0, "queries": 0,
                                         "timers": 0, "refused": 0, "disconnected_calls": 0}
        self.first_ns: int | None = None
        self.last_ns: int | None = None

    # -- construction ----------------------------------------------------------------------
    def _latency(self, venue: str) -> VenueLatency:
        lat = self.lab.venues.get(venue)
        if lat is not None:
            return lat
        v = self.venues.get(venue)
        domestic = v is not None and v.timezone in self.lab.domestic_timezones
        return VenueLatency.domestic() if domestic else VenueLatency.foreign()

    def _build_venues(self, load_feeds: bool = True) -> None:
        cfg = self.cfg
        self.exchanges: dict[str, SimExchange] = {}
        self.latency: dict[str, VenueLatency] = {}
        self.rng: dict[str, random.Random] = {}
        self.feeds: list[tuple[str, Iterator[Quote]]] = []
        self.feed_reports: list[Any] = []
        for g in cfg.gateways:
            if g.venue in self.exchanges:
                continue  # one market per venue: its first gateway's simulator and feed
            raw = dict(g.params or {})
            if g.adapter == "fix":
                raw = dict(raw.get("loopback_sim") or {})
            elif g.adapter != "sim":
                raw = {}
            base = SimVenueParams.model_validate(raw)
            params = base.model_copy(update={"seed": _seed(self.seed, g.venue, base.seed),
                                             "queue_model": self.lab.queue_model, "state_dir": None})
            venue = self.venues[g.venue]
            insts = [i for i in cfg.instruments if i.venue == g.venue]
            self.exchanges[g.venue] = SimExchange(venue, insts, params, self.clock)
            self.latency[g.venue] = self._latency(g.venue)
            self.rng[g.venue] = random.Random(_seed(self.seed, "lab-latency", g.venue))
            src = build_feed(g.feed, venue, insts) if load_feeds else None
            if src is not None:
                self.feeds.append((g.venue, iter(src.next, None)))
                self.feed_reports.extend(getattr(src, "reports", []) or [])
        self.rng_internal = random.Random(_seed(self.seed, "lab-internal"))
        # (venue, hop) -> its latency model and the venue's generator: a draw per quote at least
        self._models = {(v, which): (getattr(lat, which), self.rng[v]) for v, lat in self.latency.items()
                        for which in VenueLatency.model_fields}

    def _build_risk(self) -> None:
        cfg = self.cfg
        self.checker = PreTradeChecker(self.instruments, self.venues, self.fx, name=COORDINATOR, sink=self.sink,
                                       clock=self.clock)
        self.book = PairBook(self.instruments, self.clock, checker=self.checker,
                             config=cfg.coordinator.model_copy(update={"health_interval_ms": 0}), owner=COORDINATOR,
                             event_node=_seed(self.seed, "coord"), venues=self.venues, sink=self.sink)
        self.guard = RiskGuardCore(cfg.risk, self.instruments, self.venues, cfg.accounts, self.fx, clock=self.clock,
                                   sink=self.sink, base_currency=cfg.base_currency)
        self._next_tick_ns: int | None = None
        self._down: set[str] = set()  # venues found not answering
        self._open: set[str] = set()  # decisions in flight
        self._owed = False            # the guard's periodic work skipped over a quiet gap
        self.started = False

    def _build_strategies(self) -> None:
        cfg = self.cfg
        self.strategies: dict[str, Strategy] = {}
        self.by_instrument: dict[str, list[Strategy]] = {}
        mode = ExecutionMode(self.policy) if self.policy else None
        for s in cfg.strategies:
            if not s.enabled:
                continue
            if mode is not None:
                s = s.model_copy(update={"execution": s.execution.model_copy(update={"mode": mode})})
            strat = build_strategy(s, cfg, self.fx_book, clock=self.clock, actor="lab")
            self.strategies[strat.name] = strat
            for iid in strat.instrument_ids:
                self.by_instrument.setdefault(iid, []).append(strat)
            if strat.trades:
                self._watch_decisions(strat)

    def _watch_decisions(self, strat: Strategy) -> None:
        """Count opportunities: runs of evaluations in which the strategy wanted to move."""
        inner = strat.decide
        signal_kind = str(getattr(strat.params, "signal", "ratio"))
        name = strat.name
        holding = self._holding
        still = (0, 0)

        def decide(snap: Any) -> Any:
            d = inner(snap)
            if d is None:   # most evaluations: nothing wanted
                holding[name] = still
                return d
            target = d.target
            if strat.max_position is not None:
                target = max(-strat.max_position, min(strat.max_position, target))
            want = (target > snap.position) - (target < snap.position)
            held = (want, target) if want else still
            if want:
                edge = _edge_bps(d.signal, want, signal_kind, snap.parity)
                self._last_edge[name] = edge
                if held != holding.get(name):  # a new move wanted: a new opportunity
                    self.opportunities.append(Opportunity(name, snap.now_ns, edge, want, abs(target - snap.position)))
            holding[name] = held
            return d

        strat.decide = decide  # type: ignore[method-assign]

    # -- the event loop --------------------------------------------------------------------
    def _at(self, t_ns: int, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._heap, (t_ns, next(self._seq), fn, args))

    def _draw(self, venue: str, which: str) -> int:
        model, rng = self._models[venue, which]
        return sample_latency_ns(model, rng)

    def _hop(self) -> int:
        return sample_latency_ns(self.lab.internal, self.rng_internal)

    def _quotes(self) -> Iterator[tuple[int, str, Quote]]:
        if self.market is not None:
            return iter(self.market)
        return self._feed_quotes()

    def _feed_quotes(self) -> Iterator[tuple[int, str, Quote]]:
        def tagged(venue: str, it: Iterator[Quote]) -> Iterator[tuple[int, str, Quote]]:
            for q in it:
                yield q.ts_ns, venue, q

        streams = [tagged(venue, it) for venue, it in self.feeds]
        merged = heapq.merge(*streams, key=lambda x: (x[0], x[1]))
        for t, venue, q in merged:
            if self.start_ns is not None and t < self.start_ns:
                continue
            if self.end_ns is not None and t >= self.end_ns:
                return
            if self.first_ns is not None and self.max_duration_s is not None and \
                    t - self.first_ns > self.max_duration_s * 1e9:
                return
            yield t, venue, q

    def run(self, progress: Callable[[int, int], None] | None = None, progress_every: int = 5_000) -> "LabRun":
        """Play every quote, then let what is in flight finish (at most ``drain`` simulated s)."""
        heap = self._heap
        clock = self.clock
        tick_until, heappop, heappush = self._tick_until, heapq.heappop, heapq.heappush
        exchanges, seq, md_arrive = self.exchanges, self._seq, self._md_arrive
        md_models = {v: m for (v, which), m in self._models.items() if which == "market_data"}  # by venue
        n = 0
        for t, venue, q in self._quotes():
            while heap and heap[0][0] <= t:
                if self._open:  # pairs working between quotes meet grants as fresh as live
                    tick_until(heap[0][0])
                te, _, fn, args = heappop(heap)  # _pop, inline: at least one event per quote
                if te > clock.now_ns():
                    clock.set(te)
                fn(*args)
            if self.first_ns is None:
                self.first_ns = t
                self.start(t)
            nxt = self._next_tick_ns
            if nxt is None or t >= nxt:  # _tick_until does nothing before the next tick is due
                tick_until(t)
            if t > clock.now_ns():
                clock.set(t)
            # _on_market, inline (every quote): the venue's book, then the quote's delivery
            ex = exchanges[venue]
            reports, _ = ex.on_market(q, publish=False)
            now = clock.now_ns()
            if reports:
                self._at(now + self._draw(venue, "fill"), self._reports_arrive, reports)
            due = ex.next_due_ns()
            if due is not None:
                self._at(max(due, now), self._poll, venue)
            model, rng = md_models[venue]
            heappush(heap, (now + sample_latency_ns(model, rng), next(seq), md_arrive, (q,)))
            n += 1
            if progress is not None and n % progress_every == 0:
                progress(n, t)
        self.last_ns = self.clock.now_ns()
        # drain: timers, answers and fills of pairs still in flight (no new quotes)
        limit = self.clock.now_ns() + int(self.lab.drain_s * 1e9)
        while heap and heap[0][0] <= limit:
            self._tick_until(heap[0][0])
            self._pop()
        self.counters["quotes"] = n
        self.counters["left_in_flight"] = sum(1 for m in self.book.pairs.values() if not m.state.is_terminal)
        if progress is not None:
            progress(n, self.clock.now_ns())
        return self

    def _pop(self) -> None:
        t, _, fn, args = heapq.heappop(self._heap)
        if t > self.clock.now_ns():
            self.clock.set(t)
        fn(*args)

    def _tick_until(self, t: int) -> None:
        """The risk guard's periodic work (marks, checks, grant renewal) every
        ``risk.grant_refresh_ms`` of simulated time, as the live guard's timer does, up to ``t``.

        Across a long gap with nothing in flight (a night between daily bars, ten minutes
        between bridged quotes) the work is owed, not done: it runs before the next pair is
        checked (:meth:`_submit`), so every pair meets a grant and monitors as fresh as a live
        run's, and a quiet history does not pay a tick per quote."""
        step = int(self.cfg.risk.grant_refresh_ms * _MS)
        nxt = self._next_tick_ns
        if nxt is None:
            self._next_tick_ns = t + step
            return
        if t < nxt:
            return
        dense = t - nxt < step
        if dense or self._open:
            self._tick(nxt if dense else t)
            self._next_tick_ns = nxt + step if dense else t + step
            return
        self._owed = True
        self._venue_health()
        self._next_tick_ns = t + step

    def _tick(self, at: int) -> None:
        if at > self.clock.now_ns():
            self.clock.set(at)
        self._owed = False
        if self.latest:
            self.guard.on_quotes(self.latest.values())
        self._handle_guard(self.guard.tick(), regrant=True)
        self._venue_health()

    def _venue_health(self) -> None:
        """What the coordinator's gateway probes find, at the guard's cadence: a venue that does
        not answer is DOWN to the pair book (new pairs on it refused), its strategies (no trigger)
        and the risk guard (alert, configured action); UP again when it answers."""
        now = self.clock.now_ns()
        for venue, ex in self.exchanges.items():
            up = ex.connected(now)
            if up == (venue not in self._down):
                continue
            reason = "answers again" if up else "not answering (disconnected)"
            if up:
                self._down.discard(venue)
            else:
                self._down.add(venue)
            self.book.set_venue_state(venue, up, reason)
            state = "UP" if up else "DOWN"
            for strat in self.strategies.values():
                self._strategy_actions(strat.on_venue_state(venue, up, reason, now))
            self._handle_guard(self.guard.on_gateway_status(venue, {"state": state, "reason": reason}), regrant=False)

    # -- market data -----------------------------------------------------------------------
    def _on_market(self, venue: str, q: Quote) -> None:
        """A market quote changes the venue's book (filling resting orders) at its own time; the
        strategies hear it one market-data latency later. :meth:`run` does the same inline."""
        ex = self.exchanges[venue]
        reports, _ = ex.on_market(q, publish=False)
        now = self.clock.now_ns()
        if reports:
            self._at(now + self._draw(venue, "fill"), self._reports_arrive, reports)
        due = ex.next_due_ns()  # _schedule_poll, once per quote
        if due is not None:
            self._at(max(due, now), self._poll, venue)
        model, rng = self._models[venue, "market_data"]
        heapq.heappush(self._heap, (now + sample_latency_ns(model, rng), next(self._seq), self._md_arrive, (q,)))

    def _md_arrive(self, q: Quote) -> None:
        self.counters["md_deliveries"] += 1
        self.latest[q.instrument] = q  # the risk guard marks the latest of each at its tick
        now = self.clock.now_ns()
        for strat in self.by_instrument.get(q.instrument, ()):
            actions = strat.on_quotes([q], now)
            if actions:
                self._strategy_actions(actions)

    def _strategy_actions(self, actions: list[Any]) -> None:
        for a in actions:
            if isinstance(a, Submit):
                self._at(self.clock.now_ns() + self._hop(), self._submit, a.intent)
            elif isinstance(a, StrategyEmit):
                self.sink.emit(a.event)

    # -- pairs -----------------------------------------------------------------------------
    def _liquidity(self, intent: PairIntent) -> dict[str, int]:
        out = {}
        for leg in intent.legs:
            inst = self.instruments.get(leg.instrument)
            ex = self.exchanges.get(inst.venue) if inst is not None else None
            book = ex.books.get(leg.instrument) if ex is not None else None
            if book is None:
                continue
            levels = book.asks if leg.side is Side.BUY else book.bids
            out[leg.leg] = int(levels[0][1]) if levels else 0
        return out

    def _submit(self, intent: PairIntent) -> None:
        now = self.clock.now_ns()
        if self._owed:
            self._tick(now)  # the guard's work owed since a quiet gap, before this pair is checked
        did = intent.decision_id
        self._open.add(did)
        self.records[did] = PairRecord(did, intent.strategy, intent, self._last_edge.get(intent.strategy), now)
        liquidity = self._liquidity(intent) if intent.mode is ExecutionMode.QUANTITY else None
        res, cmds = self.book.submit(intent, liquidity)
        self._execute(cmds)
        if res.get("state") == PairState.REFUSED.value:
            self.counters["refused"] += 1
            strat = self.strategies.get(intent.strategy)
            if strat is not None:
                s = PairSummary(decision_id=did, strategy=intent.strategy, state=PairState.REFUSED.value,
                                reason=str(res.get("reason") or ""))
                self._strategy_actions(strat.on_pair_done(s, now))
        self._observe(did)

    def _execute(self, cmds: list[Command]) -> None:
        now = self.clock.now_ns()
        for c in cmds:
            if isinstance(c, Place):
                self.counters["orders"] += 1
                rec = self.records.get(c.decision_id)
                if rec is not None and rec.first_sent_ns is None:
                    rec.first_sent_ns = now
                self._at(now + self._draw(c.venue, "order_entry"), self._order_arrives, c.venue, c.req)
            elif isinstance(c, Cancel):
                self.counters["cancels"] += 1
                self._at(now + self._draw(c.venue, "order_entry"), self._cancel_arrives, c.venue, c.client_order_id)
            elif isinstance(c, Query):
                self.counters["queries"] += 1
                self._at(now + self._draw(c.venue, "order_entry"), self._query_arrives, c.venue, c.client_order_id)
            elif isinstance(c, StartTimer):
                tok = next(self._timer_seq)
                self._timer_tokens.setdefault(c.decision_id, set()).add(tok)
                self._at(max(c.at_ns, now), self._timer, c.decision_id, c.key, tok)
            elif isinstance(c, CancelTimers):
                self._timer_tokens.pop(c.decision_id, None)
            elif isinstance(c, NotifyDone):
                self._done(c.summary)
            elif isinstance(c, HaltStrategy):
                strat = self.strategies.get(c.strategy)
                if strat is not None:
                    self._strategy_actions(strat.halt(f"pair {c.decision_id} escalated: {c.reason}", now))

    def _done(self, summary: PairSummary) -> None:
        did = summary.decision_id
        rec = self.records.get(did)
        if rec is not None and not summary.incremental:
            rec.summary = summary
            rec.ended_ns = self.clock.now_ns()
        if summary.pair_state.is_terminal:
            self._open.discard(did)
        self._at(self.clock.now_ns() + self._hop(), self._done_arrives, summary)

    def _done_arrives(self, summary: PairSummary) -> None:
        now = self.clock.now_ns()
        strat = self.strategies.get(summary.strategy)
        if strat is not None:
            self._strategy_actions(strat.on_pair_done(summary, now))
        self._handle_guard(self.guard.on_pair_done(summary), regrant=False)

    def _timer(self, did: str, key: TimerKey, tok: int) -> None:
        armed = self._timer_tokens.get(did)
        if armed is None or tok not in armed:
            return
        armed.discard(tok)
        self.counters["timers"] += 1
        self._execute(self.book.on_timer(did, key))
        self._observe(did)

    # -- venues ----------------------------------------------------------------------------
    def _schedule_poll(self, venue: str) -> None:
        due = self.exchanges[venue].next_due_ns()
        if due is not None:
            self._at(max(due, self.clock.now_ns()), self._poll, venue)

    def _poll(self, venue: str) -> None:
        reps = self.exchanges[venue].poll(self.clock.now_ns())
        if reps:
            self._at(self.clock.now_ns() + self._draw(venue, "fill"), self._reports_arrive, reps)

    def _order_arrives(self, venue: str, req: OrderRequest) -> None:
        ex = self.exchanges[venue]
        back = self.clock.now_ns() + self._draw(venue, "ack")
        coid = req.client_order_id
        try:
            reply = ex.place(req)
        except VenueDisconnected as e:
            self.counters["disconnected_calls"] += 1
            self._at(back, self._call_failed, coid, "place", str(e))
            return
        self._schedule_poll(venue)
        if reply.lost:
            return  # no answer: the pair's ack timer queries the venue
        self._at(back, self._place_result, coid, reply.reports)

    def _cancel_arrives(self, venue: str, coid: str) -> None:
        back = self.clock.now_ns() + self._draw(venue, "ack")
        try:
            rep, _ = self.exchanges[venue].cancel(coid)
        except VenueDisconnected as e:
            self.counters["disconnected_calls"] += 1
            self._at(back, self._call_failed, coid, "cancel", str(e))
            return
        self._at(back, self._cancel_result, coid, rep)

    def _query_arrives(self, venue: str, coid: str) -> None:
        back = self.clock.now_ns() + self._draw(venue, "ack")
        try:
            if not self.exchanges[venue].connected():
                raise VenueDisconnected(f"{venue} disconnected")
            rep = self.exchanges[venue].query(coid)
        except VenueDisconnected as e:
            self.counters["disconnected_calls"] += 1
            self._at(back, self._call_failed, coid, "query", str(e))
            return
        self._at(back, self._query_result, coid, rep)

    def _place_result(self, coid: str, reports: list[ExecutionReport]) -> None:
        self._seen(reports)
        self._execute(self.book.on_place_result(coid, reports))
        self._observe(_did(coid))

    def _cancel_result(self, coid: str, rep: ExecutionReport | None) -> None:
        self._seen([rep] if rep is not None else [])
        self._execute(self.book.on_cancel_result(coid, rep))
        self._observe(_did(coid))

    def _query_result(self, coid: str, rep: ExecutionReport | None) -> None:
        self._execute(self.book.on_query_result(coid, rep))
        self._observe(_did(coid))

    def _call_failed(self, coid: str, call: str, why: str) -> None:
        self._execute(self.book.on_call_failed(coid, call, why))
        self._observe(_did(coid))

    def _reports_arrive(self, reports: list[ExecutionReport]) -> None:
        self._seen(reports)
        self._execute(self.book.on_reports(reports))
        for did in dict.fromkeys(r.decision_id for r in reports):
            self._observe(did)

    # -- what the figures need -------------------------------------------------------------
    def _seen(self, reports: list[ExecutionReport]) -> None:
        """Fills (for P&L and fees) and the venue time of the first exception of each pair."""
        for r in reports:
            rec = self.records.get(r.decision_id)
            if r.fill is not None:
                f = r.fill
                strat = rec.strategy if rec is not None else ""
                kind = "entry"
                if rec is not None:
                    own = next((lg.side for lg in rec.intent.legs if lg.leg == r.leg), f.side)
                    attempt = split_client_order_id(r.client_order_id)[2]
                    kind = "unwind" if f.side is not own else ("entry" if attempt in ("0", "") else "replenish")
                self.fills.append(LabFill(self.clock.now_ns(), f.ts_ns, strat, r.decision_id, r.leg, f.instrument,
                                          f.side, f.qty, f.price, f.fee, kind))
                if rec is not None:
                    rec.fees += f.fee
                    inst = self.instruments[f.instrument]
                    rec.fees_base += float(f.fee) * self._fx(inst.currency)
            elif rec is not None and rec.exception_venue_ns is None and (
                    r.kind in (ExecReportKind.REJECTED, ExecReportKind.EXPIRED)
                    or (r.kind is ExecReportKind.CANCELED and r.text == "IOC remainder")):
                rec.exception_venue_ns = r.venue_ts_ns

    def _fx(self, ccy: str) -> float:
        if ccy == self.cfg.base_currency:
            return 1.0
        o = self.fx_book.rate(ccy, self.cfg.base_currency, self.clock.now_ns())
        return o.rate if o is not None else float("nan")

    def _observe(self, did: str) -> None:
        """After each input to a pair: leg completion times, state milestones."""
        rec = self.records.get(did)
        m = self.book.pairs.get(did)
        if rec is None or m is None:
            return
        now = self.clock.now_ns()
        for leg in m.legs:
            if leg.name not in rec.leg_done_ns and leg.target and leg.entry_filled >= leg.target:
                rec.leg_done_ns[leg.name] = now
        st = m.state
        if rec.exception_seen_ns is None and rec.exception_venue_ns is not None and (
                st in (PairState.REPLENISHING, PairState.WINDING_DOWN, PairState.ROLLING_BACK)):
            rec.exception_seen_ns = now  # the pair book acted on a venue's exception
        if rec.rollback_start_ns is None and st is PairState.ROLLING_BACK:
            rec.rollback_start_ns = now

    # -- the risk guard --------------------------------------------------------------------
    def _handle_guard(self, out: GuardOutput, *, regrant: bool) -> None:
        now = self.clock.now_ns()
        for scope, key, state in out.state_changes:
            self._execute(self.book.set_trading_state(scope, key or "", state, "auto"))
            if scope == "strategy" and state.value == "HALTED":
                strat = self.strategies.get(key or "")
                if strat is not None:
                    self._strategy_actions(strat.halt(f"trading state {state.value} by auto", now))
        if regrant or out.regrant or out.state_changes:
            grant = self.guard.make_grant(COORDINATOR)
            ack = self.checker.update_grant(grant)
            if self.guard.on_grant_ack(grant, ack):
                grant = self.guard.make_grant(COORDINATOR)
                self.guard.on_grant_ack(grant, self.checker.update_grant(grant))

    def start(self, t0_ns: int) -> None:
        """At the first quote's time: the coordinator registers with the risk guard and gets its
        first grant (a live coordinator gets one at registration)."""
        if self.started:
            return
        self.started = True
        if t0_ns > self.clock.now_ns():
            self.clock.set(t0_ns)
        for ex in self.exchanges.values():
            ex.rebase(t0_ns)  # configured disconnects count from the market's start
        self.guard.register_coordinator(COORDINATOR)
        self._handle_guard(GuardOutput(), regrant=True)


def _did(coid: str) -> str:
    return split_client_order_id(coid)[0]


def _edge_bps(signal: dict[str, float], direction: int, kind: str, parity: Any) -> float | None:
    """The edge the trigger saw: the strategy's signal at the executable prices of the move,
    beyond its centre, in bps (of the centre for a ratio, of leg B's price for a spread)."""
    v = signal.get("signal_buy_a" if direction > 0 else "signal_sell_a")
    c = signal.get("center")
    if v is None or c is None:
        return None
    dev = (float(c) - float(v)) if direction > 0 else (float(v) - float(c))
    if kind == "spread":
        ref = getattr(parity, "b_mid", None)
        return dev / ref * 1e4 if ref else None
    return dev / float(c) * 1e4 if c else None


def load_market(cfg: DeploymentConfig, *, start_ns: int | None = None, end_ns: int | None = None,
                max_duration_s: float | None = None) -> tuple[list[tuple[int, str, Quote]], list[Any]]:
    """Every quote a run over ``cfg`` would play, in time order, and the feeds' load reports
    (rows skipped and why): loaded once, played by each policy."""
    probe = LabRun(cfg, start_ns=start_ns, end_ns=end_ns, max_duration_s=max_duration_s)
    out = []
    for t, venue, q in probe._feed_quotes():
        if probe.first_ns is None:
            probe.first_ns = t
        out.append((t, venue, q))
    return out, probe.feed_reports
