"""Operational metrics: cheap to record on the hot path, visible in the Ray dashboard and on
a Prometheus ``/metrics`` endpoint.

How a number gets from an actor to a graph
--------------------------------------------
Every actor owns one :class:`Metrics` (``Metrics("strategy", {"strategy": "cu_spread"}, hub=hub)``)
and records with ``.count("quotes", 1, instrument="SHFE.cu")``,
``.observe("leg_latency_ms", 1.8, venue="LME")``, ``.set("occupancy", 0.42, account="A1")``.
A record is a dictionary update in the actor's own process: no remote call, no lock, about a
microsecond. Every ``flush_interval_s`` (checked on the next record, or when the actor calls
:meth:`Metrics.flush` from its timer/stop path) the aggregate goes two ways:

1. **Ray's metrics agent** (``ray.util.metrics`` Counter/Gauge/Histogram with the same tags),
   which the Ray dashboard and a Prometheus scraping the Ray nodes read. That is the path
   on a cluster.
2. **The MetricsHub actor** (:class:`MetricsHub`), as one fire-and-forget
   ``hub.push.remote(source, snapshot)`` carrying *cumulative* values. In embedded mode the
   runtime starts :func:`start_metrics_endpoint` (``ray.metrics_port > 0``): a
   ``prometheus_client`` HTTP server on 127.0.0.1 in the driver whose collector reads the
   hub at scrape time.

Why a hub with cumulative pushes rather than a ``metrics()`` method on every actor that a
collector would call: a scrape then costs one remote call, not one per actor (hundreds of
strategies); a slow or dead actor cannot stall a scrape; and cumulative snapshots are
idempotent, so a lost or repeated push never corrupts a counter (the next one corrects it).
A restarted actor is a new source: its counters restart at zero while the old source's
totals stay in the hub, so sums stay right; gauges of a source silent for
``stale_after_s`` are dropped.

Metric catalogue (:data:`SPECS`): quotes, triggers, pairs (by outcome), orders (by outcome),
leg_latency_ms, slippage_bps, reject_ratio, occupancy, equity, margin_used, pnl (by strategy and
component), alerts (by level), bad_input (by
reason). Every series carries the tags ``actor_kind, strategy, venue, instrument, account``
plus the metric's own (``outcome``, ``level``, ``leg``, ``reason``); unset tags are ``""``.
"""
from __future__ import annotations

import bisect
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Mapping

from ..core.clock import Clock, SystemClock
from ..model.names import METRICS_HUB_NAME
from ..model.orders import split_client_order_id

__all__ = [
    "MetricSpec",
    "SPECS",
    "ENDPOINT_SERIES",
    "BASE_TAGS",
    "Metrics",
    "MetricsHubCore",
    "MetricsHub",
    "HubCollector",
    "MetricsEndpoint",
    "start_metrics_endpoint",
    "start_flush_loop",
    "find_hub",
    "PREFIX",
]

PREFIX = "xmc_"
BASE_TAGS: tuple[str, ...] = ("actor_kind", "strategy", "venue", "instrument", "account")
Kind = Literal["counter", "gauge", "histogram"]

LATENCY_MS_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 20, 50, 100, 250, 1000, 5000)
SLIPPAGE_BPS_BUCKETS = (-20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 50, 100)


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its kind, help text, its own tag keys, (histograms) bucket bounds, and which
    actor kinds record it (docs/operations.md "Metrics" lists the same)."""

    kind: Kind
    help: str
    tags: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    recorded_by: tuple[str, ...] = ()

    @property
    def tag_keys(self) -> tuple[str, ...]:
        return BASE_TAGS + self.tags


SPECS: dict[str, MetricSpec] = {
    "quotes": MetricSpec("counter", "Quotes a gateway accepted from its venue (normalised, before conflation), per venue.",
                         recorded_by=("gateway",)),
    "evaluations": MetricSpec("counter", "Quote batches a strategy evaluated (its quotes changed), per strategy.",
                              recorded_by=("strategy",)),
    "triggers": MetricSpec("counter", "Strategy triggers that produced a pair intent, per strategy.", recorded_by=("strategy",)),
    "pairs": MetricSpec("counter", "Pairs reaching a terminal state, by outcome (HEDGED, ROLLED_BACK, ESCALATED, REFUSED).",
                        ("outcome",), recorded_by=("coordinator",)),
    "orders": MetricSpec("counter", "Orders sent, by the venue's answer to the send (ACK: resting, PARTIALLY_FILLED, "
                         "FILLED, CANCELED, EXPIRED, REJECTED, UNKNOWN: no answer) and leg.", ("outcome", "leg"),
                         recorded_by=("coordinator",)),
    "leg_latency_ms": MetricSpec("histogram", "Order send to the venue's first answer, per leg, in milliseconds.", ("leg",),
                                 LATENCY_MS_BUCKETS, recorded_by=("coordinator",)),
    "slippage_bps": MetricSpec("histogram", "Average entry fill price versus trigger price, in basis points (positive: worse).",
                               ("leg",), SLIPPAGE_BPS_BUCKETS, recorded_by=("coordinator",)),
    "reject_ratio": MetricSpec("gauge", "Rejected orders / orders sent over the risk guard's window, per venue.",
                               recorded_by=("risk_guard",)),
    "occupancy": MetricSpec("gauge", "Capital occupancy: margin used / equity (0..1), per account.", recorded_by=("risk_guard",)),
    "equity": MetricSpec("gauge", "Account equity in the account's currency: capital + P&L, or the broker's reading "
                         "while fresh, per account.", recorded_by=("risk_guard",)),
    "margin_used": MetricSpec("gauge", "Margin the account's positions use (its currency), by each venue's rule, or "
                              "the broker's reading, per account.", recorded_by=("risk_guard",)),
    "pnl": MetricSpec("gauge", "P&L in the base currency per strategy, by component (total, realised: less fees, "
                      "unrealised, fx, fees).", ("component",), recorded_by=("risk_guard",)),
    "alerts": MetricSpec("counter", "Alerts raised or escalated by the risk guard, by level (yellow, orange, red) and monitor.",
                         ("level", "monitor"), recorded_by=("risk_guard",)),
    "bad_input": MetricSpec("counter", "Inputs refused as bad (BAD_INPUT events), by reason.", ("reason",),
                            recorded_by=("gateway", "coordinator", "strategy")),
}

#: Series the ``/metrics`` endpoint adds beside :data:`SPECS` (full name -> kind): whether the hub answered the scrape.
ENDPOINT_SERIES: dict[str, Kind] = {PREFIX + "metrics_hub_up": "gauge"}

#: Raw histogram observations kept per series between flushes for Ray's histogram (beyond
#: this many, Ray sees a sample; the hub and /metrics always see every observation).
RAY_HISTOGRAM_REPLAY_CAP = 2_000


class _Hist:
    __slots__ = ("counts", "sum", "count", "pending")

    def __init__(self, n_buckets: int) -> None:
        self.counts = [0] * (n_buckets + 1)  # last slot: above the highest bound (+Inf)
        self.sum = 0.0
        self.count = 0
        self.pending: list[float] = []


def _spec(name: str) -> MetricSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"metrics: unknown metric {name!r} (known: {', '.join(sorted(SPECS))})") from None


class Metrics:
    """Per-actor metric recorder: aggregates locally, flushes periodically.

    Parameters
    ----------
    actor_kind
        ``gateway``, ``strategy``, ``coordinator``, ``risk_guard``, ``ledger``...
    tags
        Tags on every series of this recorder (``{"strategy": "cu_spread"}``); any of
        :data:`BASE_TAGS` or a metric's own tags.
    hub
        Where snapshots go: a :class:`MetricsHub` actor handle (``push.remote``), a
        :class:`MetricsHubCore` (direct call), or ``None`` (Ray metrics only).
    flush_interval_s
        Minimum time between automatic flushes.
    clock
        Injected clock (only decides when to flush).
    to_ray
        Also record through ``ray.util.metrics`` (needs a Ray worker or driver).
    auto_flush
        Flush from a record call once ``flush_interval_s`` has passed. Actors pass ``False``
        and flush from a timer (:func:`start_flush_loop`): a record is then only the local
        dictionary update, never a clock read or a push.

    Examples
    --------
    >>> m = Metrics("strategy", {"strategy": "cu_spread"}, to_ray=False)
    >>> m.count("quotes", 3, instrument="SHFE.cu"); m.value("quotes", instrument="SHFE.cu")
    3.0
    """

    def __init__(
        self,
        actor_kind: str,
        tags: Mapping[str, str] | None = None,
        *,
        hub: Any = None,
        flush_interval_s: float = 1.0,
        clock: Clock | None = None,
        to_ray: bool = True,
        source: str | None = None,
        auto_flush: bool = True,
    ) -> None:
        self.actor_kind = actor_kind
        self.base = {k: str(v) for k, v in (tags or {}).items()}
        self.base["actor_kind"] = actor_kind
        self.source = source or f"{actor_kind}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._hub = hub
        self._clock = clock or SystemClock()
        self._interval_ns = int(flush_interval_s * 1e9)
        self._next_flush_ns = self._clock.now_ns() + self._interval_ns
        self._to_ray = to_ray
        self._auto = auto_flush
        self._totals: dict[tuple[str, tuple[str, ...]], float] = {}  # count_total: last raw total seen
        self._values: dict[tuple[str, tuple[str, ...]], float] = {}
        self._hists: dict[tuple[str, tuple[str, ...]], _Hist] = {}
        self._sent_to_ray: dict[tuple[str, tuple[str, ...]], float] = {}
        self._dirty_gauges: set[tuple[str, tuple[str, ...]]] = set()
        self._lock = threading.Lock()  # actors with max_concurrency > 1 record from threads
        self.flushes = 0
        self.flush_errors = 0

    # -- hot path ------------------------------------------------------------------------
    def _key(self, name: str, spec: MetricSpec, tags: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        base = self.base
        if not tags:
            return name, tuple([base.get(k, "") for k in spec.tag_keys])
        return name, tuple([str(tags[k]) if k in tags else base.get(k, "") for k in spec.tag_keys])

    def count(self, name: str, n: float = 1, **tags: Any) -> None:
        """Add ``n`` (>= 0) to counter ``name``."""
        spec = SPECS.get(name) or _spec(name)
        if spec.kind != "counter":
            raise ValueError(f"metrics: {name!r} is a {spec.kind}, not a counter")
        if n < 0:
            raise ValueError(f"metrics: counter {name!r} cannot go down (n={n})")
        key = self._key(name, spec, tags)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + n
        if self._auto:
            self._maybe_flush()

    def count_total(self, name: str, total: float, **tags: Any) -> None:
        """Counter ``name`` follows a cumulative count kept elsewhere (a core's own counters,
        read by the actor's flush timer): adds what it grew by since the last call. A total
        that went down (its owner was rebuilt) counts from zero again."""
        spec = SPECS.get(name) or _spec(name)
        key = self._key(name, spec, tags)
        last = self._totals.get(key, 0.0)
        total = float(total)
        self._totals[key] = total
        grew = total - last if total >= last else total
        if grew > 0 or key not in self._values:
            self.count(name, grew, **tags)

    def set(self, name: str, value: float, **tags: Any) -> None:
        """Set gauge ``name`` to ``value``."""
        spec = SPECS.get(name) or _spec(name)
        if spec.kind != "gauge":
            raise ValueError(f"metrics: {name!r} is a {spec.kind}, not a gauge")
        key = self._key(name, spec, tags)
        with self._lock:
            self._values[key] = float(value)
            self._dirty_gauges.add(key)
        if self._auto:
            self._maybe_flush()

    def observe(self, name: str, value: float, **tags: Any) -> None:
        """Record one observation of histogram ``name``."""
        spec = SPECS.get(name) or _spec(name)
        if spec.kind != "histogram":
            raise ValueError(f"metrics: {name!r} is a {spec.kind}, not a histogram")
        key = self._key(name, spec, tags)
        v = float(value)
        with self._lock:
            h = self._hists.get(key)
            if h is None:
                h = self._hists[key] = _Hist(len(spec.buckets))
            h.counts[bisect.bisect_left(spec.buckets, v)] += 1
            h.sum += v
            h.count += 1
            if self._to_ray and len(h.pending) < RAY_HISTOGRAM_REPLAY_CAP:
                h.pending.append(v)
        if self._auto:
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        if self._clock.now_ns() >= self._next_flush_ns:
            self.flush()

    @property
    def hub(self) -> Any:
        return self._hub

    def set_hub(self, hub: Any) -> None:
        """Push snapshots to ``hub`` from now on (found after this recorder was made)."""
        self._hub = hub

    # -- reading -------------------------------------------------------------------------
    def value(self, name: str, **tags: Any) -> float:
        """Current local value of a counter or gauge series (0 if never recorded)."""
        spec = _spec(name)
        return self._values.get(self._key(name, spec, tags), 0.0)

    def snapshot(self) -> dict[str, Any]:
        """Cumulative state: ``{"source", "series": [[name, kind, tags, value], ...]}``.

        A histogram's value is ``{"counts": [...], "sum": s, "count": n}`` with per-bucket
        (non-cumulative) counts, the last one above the highest bound.
        """
        with self._lock:
            series: list[list[Any]] = []
            for (name, tv), v in self._values.items():
                series.append([name, SPECS[name].kind, list(tv), v])
            for (name, tv), h in self._hists.items():
                series.append([name, "histogram", list(tv), {"counts": list(h.counts), "sum": h.sum, "count": h.count}])
        return {"source": self.source, "series": series}

    # -- flushing ------------------------------------------------------------------------
    def flush(self) -> None:
        """Send the aggregate to Ray's metrics and the hub now. Never raises."""
        self._next_flush_ns = self._clock.now_ns() + self._interval_ns
        self.flushes += 1
        if self._to_ray:
            try:
                self._flush_to_ray()
            except Exception:  # noqa: BLE001 - metrics must never take an actor down
                self.flush_errors += 1
        if self._hub is not None:
            try:
                snap = self.snapshot()
                push = getattr(self._hub, "push")
                if hasattr(push, "remote"):
                    push.remote(self.source, snap)  # fire-and-forget
                else:
                    push(self.source, snap)
            except Exception:  # noqa: BLE001
                self.flush_errors += 1

    def _flush_to_ray(self) -> None:
        with self._lock:
            counters = [(k, v) for k, v in self._values.items() if SPECS[k[0]].kind == "counter"]
            gauges = [(k, self._values[k]) for k in self._dirty_gauges]
            self._dirty_gauges.clear()
            hists = []
            for k, h in self._hists.items():
                if h.pending:
                    hists.append((k, h.pending))
                    h.pending = []
        # one series that Ray refuses must not keep the others from it (each is tried on its own)
        for key, total in counters:
            delta = total - self._sent_to_ray.get(key, 0.0)
            if delta > 0:
                try:
                    _ray_metric(key[0]).inc(delta, tags=_tags(key))
                    self._sent_to_ray[key] = total
                except Exception:  # noqa: BLE001 - counted; tried again with the next flush
                    self.flush_errors += 1
        for key, v in gauges:
            try:
                _ray_metric(key[0]).set(v, tags=_tags(key))
            except Exception:  # noqa: BLE001
                self.flush_errors += 1
        for key, values in hists:
            try:
                m = _ray_metric(key[0])
                t = _tags(key)
                for v in values:
                    m.observe(v, tags=t)
            except Exception:  # noqa: BLE001 - these observations are lost to Ray only (the hub has them)
                self.flush_errors += 1


_RAY_METRICS: dict[str, Any] = {}
_RAY_LOCK = threading.Lock()


def _tags(key: tuple[str, tuple[str, ...]]) -> dict[str, str]:
    return dict(zip(SPECS[key[0]].tag_keys, key[1]))


def ray_buckets(spec: MetricSpec) -> list[float]:
    """A histogram's bucket bounds for ``ray.util.metrics``, which takes positive bounds only:
    ``slippage_bps`` loses its negative ones there, so on Ray's export every observation at or
    below its first positive bound (1 bps: all improvements) is in that first bucket (counts and
    sums stay whole; the hub and the embedded ``/metrics`` keep every bound)."""
    return [float(b) for b in spec.buckets if b > 0]


def _ray_metric(name: str) -> Any:
    """One ``ray.util.metrics`` object per metric per process (created on first use)."""
    m = _RAY_METRICS.get(name)
    if m is not None:
        return m
    from ray.util import metrics as rm

    spec = SPECS[name]
    with _RAY_LOCK:
        m = _RAY_METRICS.get(name)
        if m is None:
            full = PREFIX + name
            if spec.kind == "counter":
                m = rm.Counter(full, description=spec.help, tag_keys=spec.tag_keys)
            elif spec.kind == "gauge":
                m = rm.Gauge(full, description=spec.help, tag_keys=spec.tag_keys)
            else:
                m = rm.Histogram(full, description=spec.help, boundaries=ray_buckets(spec), tag_keys=spec.tag_keys)
            _RAY_METRICS[name] = m
    return m


# -- an actor's flush timer -------------------------------------------------------------------
HUB_NAME = METRICS_HUB_NAME  # runtime.deploy starts it when ray.metrics_port is set
#: without a known ``ray.metrics_port`` (want_hub None), the hub is looked for after 1, 2, 4 ... s,
#: then every this many seconds
HUB_LOOKUP_MAX_S = 30.0


def find_hub(namespace: str | None) -> Any:
    """The ``metrics-hub`` actor of ``namespace``, or None (no hub: Ray metrics only)."""
    try:
        import ray

        return ray.get_actor(HUB_NAME, namespace=namespace)
    except Exception:  # noqa: BLE001 - not started (ray.metrics_port unset) or not yet
        return None


def actor_namespace() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().namespace
    except Exception:  # noqa: BLE001 - not inside Ray
        return None


def start_flush_loop(metrics: Metrics, *, sample: Callable[[], None] | None = None, want_hub: bool | None = None,
                     namespace: str | None = None, interval_s: float = 1.0) -> Any:
    """Run an actor's metrics timer on its event loop; returns the task (None without a running
    loop: an actor class used directly in a test records, nothing flushes).

    Every ``interval_s``: ``sample()`` (the actor reads the counters and gauges its core keeps
    anyway into ``metrics``: nothing of that is on the hot path), then :meth:`Metrics.flush`.
    The hub is found by name in the actor's namespace: every tick until found when
    ``want_hub`` (``ray.metrics_port`` set), never when ``False``, and with a growing pause
    (1, 2, 4 ... :data:`HUB_LOOKUP_MAX_S` s) when the actor does not know (``None``).
    """
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    ns = namespace if namespace is not None else actor_namespace()

    async def run() -> None:
        pause, next_lookup = 1.0, 0.0
        while True:
            await asyncio.sleep(interval_s)
            if sample is not None:
                try:
                    sample()
                except Exception:  # noqa: BLE001 - metrics must never take an actor down
                    metrics.flush_errors += 1
            if metrics.hub is None and want_hub is not False and loop.time() >= next_lookup:
                hub = await asyncio.to_thread(find_hub, ns)  # a GCS round trip: off the event loop
                if hub is not None:
                    metrics.set_hub(hub)
                elif want_hub is None:
                    next_lookup = loop.time() + pause
                    pause = min(pause * 2, HUB_LOOKUP_MAX_S)
            metrics.flush()

    return loop.create_task(run())


# -- what each actor reads into its Metrics on its timer ------------------------------------------
# Counters the cores keep anyway (a gateway's quotes and bad input, a strategy's evaluations and
# intents, the pair book's bad input) are read once a second here instead of being recorded a
# second time on the hot path.
def sample_gateway(metrics: Metrics, sessions: Iterable[Any]) -> None:
    """A gateway process: per venue session, quotes accepted and bad input by reason."""
    for s in sessions:
        core = s.core
        venue = core.venue.code
        metrics.count_total("quotes", core.counters.get("quotes", 0), venue=venue)
        for reason, n in list(core.bad_input.items()):
            metrics.count_total("bad_input", n, venue=venue, reason=reason)


def sample_strategy_host(metrics: Metrics, core: Any) -> None:
    """A strategy host: per strategy, evaluations, triggers (intents) and bad input."""
    for name, st in list(core.strategies.items()):
        c = st.counters
        metrics.count_total("evaluations", c.get("evaluations", 0), strategy=name)
        metrics.count_total("triggers", c.get("intents", 0), strategy=name)
        if c.get("bad_input"):
            metrics.count_total("bad_input", c["bad_input"], strategy=name, reason="UNREADABLE_SUMMARY")
    if core.bad_input:
        metrics.count_total("bad_input", core.bad_input, reason="NOT_A_QUOTE")


def sample_coordinator(metrics: Metrics, book: Any) -> None:
    """A coordinator: bad input by reason (pairs, orders and latencies are recorded as they happen)."""
    for reason, n in list(getattr(book, "bad_inputs", {}).items()):
        metrics.count_total("bad_input", n, reason=str(reason))


def _get(o: Any, k: str) -> Any:
    return o.get(k) if isinstance(o, Mapping) else getattr(o, k, None)


def record_pair(metrics: Metrics, summary: Any) -> None:
    """A coordinator finished a pair (its first summary; not a revision, a late fill's
    increment nor a restarted coordinator's recovered one): pairs by outcome, and per leg the
    ack latencies and the slippage. ``summary`` is a ``PairSummary`` or its dict."""
    if _get(summary, "incremental") or _get(summary, "recovered"):
        return
    strategy = str(_get(summary, "strategy") or "")
    metrics.count("pairs", 1, strategy=strategy, outcome=str(_get(summary, "state") or _get(summary, "outcome") or ""))
    for leg in _get(summary, "legs") or ():
        inst = str(_get(leg, "instrument") or "")
        tags = {"strategy": strategy, "leg": str(_get(leg, "leg") or ""), "instrument": inst,
                "venue": inst.split(".", 1)[0], "account": str(_get(leg, "account") or "")}
        for ms in _get(leg, "ack_latencies_ms") or ():
            metrics.observe("leg_latency_ms", float(ms), **tags)
        slip = _get(leg, "slippage_pct")
        if slip is not None:
            metrics.observe("slippage_bps", float(slip) * 1e4, **tags)


#: an order's outcome in ``xmc_orders_total``: the status the venue's answer to the send left it in
_ORDER_OUTCOME = {"ACCEPTED": "ACK", "SUBMITTED": "ACK", "NEW": "ACK"}


def record_order(metrics: Metrics, book: Any, coid: str, reports: Any, failed: bool = False) -> None:
    """A coordinator's order was answered (or its send failed: UNKNOWN): ``orders`` by outcome,
    tagged with the pair's strategy and the leg's instrument, venue and account."""
    did, leg, _ = split_client_order_id(coid)
    if failed or not reports:
        outcome = "UNKNOWN"
    else:
        st = getattr(reports[-1].status, "value", str(reports[-1].status))
        outcome = _ORDER_OUTCOME.get(st, st)
    tags = {"leg": leg, "outcome": outcome}
    m = getattr(book, "pairs", {}).get(did)
    if m is not None:
        tags["strategy"] = m.intent.strategy
        lg = m.by_name.get(leg)
        if lg is not None:
            tags["instrument"] = lg.spec.instrument
            tags["venue"] = lg.inst.venue
            tags["account"] = lg.spec.account
    metrics.count("orders", 1, **tags)


# -- the hub -------------------------------------------------------------------------------
class MetricsHubCore:
    """Keeps the latest cumulative snapshot of every source and merges them on demand.

    Counters and histograms are summed over sources (including sources gone quiet: what
    they counted happened). Gauges come from sources heard from within ``stale_after_s``;
    if several sources set the same series, the most recently pushed wins.
    """

    def __init__(self, clock: Clock | None = None, stale_after_s: float = 30.0) -> None:
        self._clock = clock or SystemClock()
        self._stale_ns = int(stale_after_s * 1e9)
        self._sources: dict[str, tuple[int, list[list[Any]]]] = {}
        self.pushes = 0
        self.bad_pushes = 0

    def push(self, source: str, snapshot: Mapping[str, Any]) -> None:
        series = snapshot.get("series") if isinstance(snapshot, Mapping) else None
        if not isinstance(source, str) or not isinstance(series, list):
            self.bad_pushes += 1
            return
        self.pushes += 1
        self._sources[source] = (self._clock.now_ns(), series)

    def forget(self, source: str) -> None:
        self._sources.pop(source, None)

    def sources(self) -> list[str]:
        return sorted(self._sources)

    def collect(self) -> dict[str, dict[tuple[str, ...], Any]]:
        """Merged view: metric name → tag values → value (float or histogram dict)."""
        now = self._clock.now_ns()
        out: dict[str, dict[tuple[str, ...], Any]] = {}
        gauge_seen: dict[tuple[str, tuple[str, ...]], int] = {}
        for seen_ns, series in self._sources.values():
            fresh = now - seen_ns <= self._stale_ns
            for name, kind, tags, value in series:
                spec = SPECS.get(name)
                if spec is None or spec.kind != kind:
                    continue
                tv = tuple(tags)
                bucket = out.setdefault(name, {})
                if kind == "counter":
                    bucket[tv] = bucket.get(tv, 0.0) + float(value)
                elif kind == "gauge":
                    if fresh and seen_ns >= gauge_seen.get((name, tv), -1):
                        bucket[tv] = float(value)
                        gauge_seen[(name, tv)] = seen_ns
                else:
                    prev = bucket.get(tv)
                    if prev is None:
                        bucket[tv] = {"counts": list(value["counts"]), "sum": float(value["sum"]), "count": int(value["count"])}
                    else:
                        prev["counts"] = [a + b for a, b in zip(prev["counts"], value["counts"])]
                        prev["sum"] += float(value["sum"])
                        prev["count"] += int(value["count"])
        return {k: v for k, v in out.items() if v}


def _make_hub_actor() -> Any:
    import ray

    @ray.remote(num_cpus=0, max_restarts=-1)
    class MetricsHub:
        """Ray actor shell around :class:`MetricsHubCore` (named ``metrics-hub``)."""

        def __init__(self, stale_after_s: float = 30.0) -> None:
            self.core = MetricsHubCore(stale_after_s=stale_after_s)

        def ready(self) -> dict:
            return {"actor": "metrics-hub", "sources": len(self.core.sources())}

        def __repr__(self) -> str:
            """The dashboard's Repr column: ``MetricsHub(metrics-hub: 6 sources)``."""
            from ..model.names import actor_repr

            core = getattr(self, "core", None)
            return actor_repr("MetricsHub", HUB_NAME, f"{len(core._sources)} sources" if core is not None else "")

        def push(self, source: str, snapshot: dict) -> None:
            self.core.push(source, snapshot)

        def forget(self, source: str) -> None:
            self.core.forget(source)

        def collect(self) -> dict:
            return self.core.collect()

    return MetricsHub


class _LazyActorClass:
    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._cls: Any = None

    def __getattr__(self, item: str) -> Any:
        if self._cls is None:
            self._cls = self._factory()
        return getattr(self._cls, item)


MetricsHub: Any = _LazyActorClass(_make_hub_actor)
"""The hub actor class: ``MetricsHub.options(name="metrics-hub").remote()``."""


# -- prometheus ----------------------------------------------------------------------------
class HubCollector:
    """A ``prometheus_client`` collector that turns a hub's merged view into families.

    ``fetch`` returns :meth:`MetricsHubCore.collect` output: for the driver,
    ``lambda: ray.get(hub.collect.remote(), timeout=5)``; in tests, ``core.collect``.
    """

    def __init__(self, fetch: Callable[[], Mapping[str, Mapping[tuple[str, ...], Any]]]) -> None:
        self._fetch = fetch
        self.scrape_errors = 0

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        ok = True
        try:
            merged = self._fetch()
        except Exception:  # noqa: BLE001 - a scrape must answer even if the hub is away
            self.scrape_errors += 1
            merged, ok = {}, False
        up = GaugeMetricFamily(next(iter(ENDPOINT_SERIES)), "1 if the metrics hub answered this scrape.")
        up.add_metric([], 1.0 if ok else 0.0)
        yield up
        for name, series in sorted(merged.items()):
            spec = SPECS.get(name)
            if spec is None:
                continue
            keys = list(spec.tag_keys)
            full = PREFIX + name
            if spec.kind == "counter":
                fam: Any = CounterMetricFamily(full, spec.help, labels=keys)
                for tv, v in series.items():
                    fam.add_metric(list(tv), v)
            elif spec.kind == "gauge":
                fam = GaugeMetricFamily(full, spec.help, labels=keys)
                for tv, v in series.items():
                    fam.add_metric(list(tv), v)
            else:
                fam = HistogramMetricFamily(full, spec.help, labels=keys)
                for tv, h in series.items():
                    cum, buckets = 0, []
                    for bound, c in zip(list(spec.buckets) + [float("inf")], h["counts"]):
                        cum += c
                        buckets.append(("+Inf" if bound == float("inf") else _fmt_bound(bound), cum))
                    fam.add_metric(list(tv), buckets, sum_value=h["sum"])
            yield fam


def _fmt_bound(b: float) -> str:
    return repr(float(b))


class MetricsEndpoint:
    """A running ``/metrics`` HTTP server; :meth:`close` stops it."""

    def __init__(self, server: Any, thread: threading.Thread, host: str, port: int) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_endpoint(
    port: int,
    fetch: Callable[[], Mapping[str, Mapping[tuple[str, ...], Any]]],
    host: str = "127.0.0.1",
) -> MetricsEndpoint:
    """Serve ``/metrics`` (Prometheus text format) on ``host:port`` from the hub's view.

    Parameters
    ----------
    port
        TCP port (``ray.metrics_port``); 0 picks a free one (see ``.port``).
    fetch
        Returns the merged view (see :class:`HubCollector`).
    host
        Loopback by default: the embedded endpoint is not meant to face a network.
    """
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(fetch))
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsEndpoint(server, thread, host, server.server_address[1])


def hub_fetcher(hub_handle: Any, timeout_s: float = 5.0) -> Callable[[], Mapping[str, Any]]:
    """A ``fetch`` for :func:`start_metrics_endpoint` that reads a hub actor (driver side)."""

    def fetch() -> Mapping[str, Any]:
        import ray

        return ray.get(hub_handle.collect.remote(), timeout=timeout_s)

    return fetch
