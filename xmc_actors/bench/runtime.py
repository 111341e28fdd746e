"""Runtime benchmark: tick-to-order latency through a whole deployment, quote fan-out 1 → 50.

Everything runs on one embedded Ray (``address="local"``) in one run, through
:class:`xmc_actors.runtime.deploy.Deployment` with small configurations: real ``VenueGateway``
actors over the simulated venue (no added latency), ``StrategyHost`` with the built-in ``band``
strategy, ``PairCoordinator`` with its in-process ``PreTradeChecker`` under a ``RiskGuard``, and
the DuckDB ledger (one shard).

* ``tick_to_order_p50_us`` / ``_p99_us``: a market quote arrives at the SHFE gateway
  (``push_market``) → both legs' orders arrive at their gateways (``place`` on SHFE and on
  LME). Stamps are ``time.perf_counter_ns()`` taken on entry of ``push_market`` and as each
  order is handed to its venue in the gateway actors (``VenueGateway.arrival_stamps``; the
  monotonic clock is shared by the processes of one host). The quotes alternate between a wide book (the band strategy opens a short-A pair)
  and the normal book (it closes it), so every quote is a trigger; the run settles between
  quotes (one pair at a time, as in a replay).
* ``tick_to_order_cpu_ms_per_tick`` (and ``_gateways``, ``_strategy_host``, ``_coordinator``,
  ``_risk_guard``, ``_ledger``): CPU milliseconds the deployment's actor processes used per
  step of that run (a quote, its pair, the settle), from ``/proc``. On a 2-core host the hot
  path waits for whatever else holds the cores, so this is where latency is won or lost.
* ``quiet_tick_to_order_*``, ``quiet_tick_to_coordinator_p50_us``, ``quiet_coordinator_*`` and,
  with a gateway group, ``quiet_cohosted_tick_to_order_*``: the same runs with the replay's
  settle 30 ms after each quote instead of at once. The settle's calls (the gateways'
  ``quiesce``, the risk guard's ``regrant_all``, which pushes fresh grants to the coordinator,
  the hosts' ``drain``) otherwise land while the quote is on its way; a live deployment has no
  settle. Both are reported, each against the same floor: the first is a replay's path, this
  one a live quote's.
* ``cohosted_tick_to_order_*``: the same with both venues' gateways in one process (a
  gateway group: the coordinator sends both legs in one call), and its ratio to the same floor.
* ``floor_three_hop_p50_us``: the same shape with trivial async actors — a gateway-like actor
  stamps a call and pushes to a strategy-like actor (fire-and-forget), which pushes to a
  coordinator-like actor, which gathers one call to each of two trivial "venue" actors that
  stamp their arrival. ``tick_to_order_ratio`` = p50 / floor p50.
* ``fanout_quote_us_p50_{1,10,50}``: one quote pushed to the SHFE gateway until every strategy
  instance has evaluated it (``push_market`` then ``quiesce``: both return only after the
  gateway's pushes were taken by every subscriber — the strategy hosts, 25 instances per host
  as the runtime places them, and the risk guard), with 1, 10 and 50 ``band`` instances that
  never trigger; measured from the driver, so it includes two driver round trips
  (``floor_push_quiesce_us_p50``: the same two calls with no subscriber). The run checks that
  every instance evaluated every quote. ``fanout_50_vs_1_ratio``;
  ``fanout_per_strategy_us``: (p50 at 50 − p50 at 1) / 49.
* ``chain3_*`` and ``compiled_*``: the same chain shape (gateway → strategy host → coordinator
  → two gateways, wire-byte payloads) with ordinary ``.remote()`` calls and as a Ray Compiled
  Graph, and what a restart of one of its actors does to the graph; see
  :mod:`xmc_actors.bench.compiled_chain` (issue 22 item 2).
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import ray
import yaml

from ..core.stats import percentile as _pct
from .compiled_chain import run_chain
from .coordinator import _actor_cpu_s
from ..model.orders import split_client_order_id
from ..model.quotes import Quote
from ..runtime.config import PROJECT_ROOT, load_config

#: the deployment's actor classes whose CPU the tick-to-order run reports, and their metric names
_CPU_CLASSES = {"VenueGateway": "gateways", "StrategyHostActor": "strategy_host", "PairCoordinator": "coordinator",
                "RiskGuard": "risk_guard", "LedgerShard": "ledger"}

#: normal book: executable ratios within the band; wide book: SHFE 0.4 % rich (the band sells A).
NORMAL_A = (Decimal(71990), Decimal(72000))
WIDE_A = (Decimal(72290), Decimal(72300))
BOOK_B = (Decimal("9999.5"), Decimal(10000))




def _config(tmp: Path, name: str, n_strategies: int, *, trigger: bool, group: str | None = None) -> Any:
    """A two-venue deployment (SHFE copper vs LME copper, no feeds, zero-latency simulated venues);
    with ``group``, both gateways in one process (a gateway group)."""
    venue = {"enforce_sessions": False, "enforce_price_limits": False, "seed": 1,
             "ack_latency": {"kind": "const", "mean_ms": 0.0}, "network_latency": {"kind": "const", "mean_ms": 0.0}}
    params = ({"signal": "ratio", "price": "executable", "center": 1.0, "entry": 0.0015, "exit": 0.0005,
               "clip": 5, "max_position": 5, "cooldown_ms": 0} if trigger else
              {"signal": "ratio", "price": "executable", "center": 1.0, "entry": 0.5, "exit": 0.1, "clip": 5,
               "max_position": 5, "cooldown_ms": 0})
    params["guards"] = {"stale_ms": 3_600_000, "max_skew_ms": 3_600_000, "require_sessions_open": False}
    doc = {
        "name": name,
        "include": [str(PROJECT_ROOT / "configs" / "catalogue.yaml")],
        "base_currency": "USD",
        "fx": [{"base": "USD", "quote": "CNY", "source": "static", "rate": 7.2}],
        "accounts": [
            {"id": "cn-main", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 500_000_000},
            {"id": "us-main", "broker": "sim", "venues": ["LME"], "currency": "USD", "capital": 80_000_000},
        ],
        "gateways": [{"venue": v, "adapter": "sim", "params": venue, **({"group": group} if group else {})}
                     for v in ("SHFE", "LME")],
        "strategies": [{"name": f"band-{i:02d}", "class": "band",
                        "legs": [{"instrument": "SHFE.cu", "account": "cn-main"},
                                 {"instrument": "LME.CA3M", "account": "us-main"}],
                        "params": params, "execution": {"mode": "speed"}} for i in range(n_strategies)],
        "risk": {"default_limits": {"max_order_qty": 50, "collar_pct": 0.05}, "check_sessions": False},
        "ledger": {"path": str(tmp / name / "ledger"), "shards": 1, "shard_by": "strategy"},
        "ray": {"namespace": f"bench-rt-{name}"},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_config(path)


def stamped_quote(inst: str, book: tuple[Decimal, Decimal], size: int = 100_000_000) -> Quote:
    """A market quote ``(bid, ask)`` stamped now, ``size`` lots on each side. The default is a
    deep book: what orders take stays taken until the next quote, and leg B is quoted once."""
    now = time.time_ns()
    return Quote(instrument=inst, bid=book[0], ask=book[1], bid_size=size, ask_size=size,
                 venue_ts_ns=now, ts_ns=now, recv_ts_ns=now)


def _start(cfg: Any) -> Any:
    from ..runtime.deploy import Deployment

    dep = Deployment(cfg)
    dep.start()
    gw_a, gw_b = dep.gateways["SHFE"], dep.gateways["LME"]
    ray.get([gw_b.push_market.remote([stamped_quote("LME.CA3M", BOOK_B)]),
             gw_a.push_market.remote([stamped_quote("SHFE.cu", NORMAL_A)])])
    dep.settle()
    return dep


def _stop(dep: Any) -> None:
    try:
        dep.stop()
    finally:
        for h in dep.handles.values():
            try:
                ray.kill(h)
            except Exception:  # noqa: BLE001 - already gone
                pass


# ---------------------------------------------------------------------------------- the floor
@ray.remote(num_cpus=0)
class _Venue:
    def __init__(self) -> None:
        self.stamps: dict[int, int] = {}

    async def place(self, i: int) -> int:
        self.stamps[i] = time.perf_counter_ns()
        return i

    async def get(self) -> dict[int, int]:
        return self.stamps


@ray.remote(num_cpus=0)
class _Coordinator:
    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b
        self.done: dict[int, asyncio.Event] = {}

    def _ev(self, i: int) -> asyncio.Event:
        return self.done.setdefault(i, asyncio.Event())

    async def submit(self, i: int) -> None:
        await asyncio.gather(self.a.place.remote(i), self.b.place.remote(i))
        self._ev(i).set()

    async def wait(self, i: int) -> None:
        await asyncio.wait_for(self._ev(i).wait(), 10)
        self.done.pop(i, None)


@ray.remote(num_cpus=0)
class _Strategy:
    def __init__(self, coord: Any) -> None:
        self.coord = coord

    async def on_quotes(self, i: int) -> None:
        self.coord.submit.remote(i)


@ray.remote(num_cpus=0)
class _Gateway:
    def __init__(self, strategy: Any) -> None:
        self.strategy = strategy
        self.stamps: dict[int, int] = {}

    async def push_market(self, i: int) -> None:
        self.stamps[i] = time.perf_counter_ns()
        self.strategy.on_quotes.remote(i)

    async def get(self) -> dict[int, int]:
        return self.stamps


def _floor_three_hop(n: int) -> list[float]:
    a, b = _Venue.remote(), _Venue.remote()
    c = _Coordinator.remote(a, b)
    s = _Strategy.remote(c)
    g = _Gateway.remote(s)
    try:
        for i in range(n + 30):
            ray.get(g.push_market.remote(i))
            ray.get(c.wait.remote(i))
        sg, sa, sb = ray.get([g.get.remote(), a.get.remote(), b.get.remote()])
        return [(max(sa[i], sb[i]) - sg[i]) / 1e3 for i in range(30, n + 30)]
    finally:
        for h in (a, b, c, s, g):
            ray.kill(h)


def _floor_push_quiesce(n: int) -> list[float]:
    """Two driver round trips to an async actor (what the fan-out measure adds)."""

    @ray.remote(num_cpus=0)
    class _G:
        async def push_market(self, q: Any) -> int:
            return 1

        async def quiesce(self) -> int:
            return 0

    g = _G.remote()
    q = stamped_quote("SHFE.cu", NORMAL_A)
    out = []
    try:
        for i in range(n + 20):
            t = time.perf_counter()
            ray.get(g.push_market.remote([q]))
            ray.get(g.quiesce.remote())
            if i >= 20:
                out.append((time.perf_counter() - t) * 1e6)
    finally:
        ray.kill(g)
    return out


# ---------------------------------------------------------------------------- tick to order
def _tick_to_order(tmp: Path, n: int, group: str | None = None, quiet_s: float = 0.0) -> dict[str, Any]:
    """Quotes one at a time, each followed by the replay's settle; with ``quiet_s``, the settle
    only after that long, so that its calls (quiesce, regrant, drain) do not run during the
    quote's path."""
    name = (f"t2o-{group}" if group else "t2o") + ("-quiet" if quiet_s else "")
    dep = _start(_config(tmp, name, 1, trigger=True, group=group))
    try:
        gw_a, gw_b = dep.gateways["SHFE"], dep.gateways["LME"]
        coord = dep.handles["coordinator"]
        cpu0: dict[str, float] = {}
        for i in range(n + 10):
            if i == 10:  # warm-up done
                ray.get([gw_a.arrival_stamps.remote(True), gw_b.arrival_stamps.remote(True)])
                cpu0 = {c: _actor_cpu_s(c) for c in _CPU_CLASSES}
            ray.get(gw_a.push_market.remote([stamped_quote("SHFE.cu", WIDE_A if i % 2 == 0 else NORMAL_A)]))
            if quiet_s:
                time.sleep(quiet_s)
            dep.settle()
        cpu = {c: (_actor_cpu_s(c) - cpu0[c]) / n * 1e3 for c in _CPU_CLASSES}
        sa, sb = ray.get([gw_a.arrival_stamps.remote(), gw_b.arrival_stamps.remote()])
        if group:  # one process: its stamps cover both venues
            sb = []
        coord_t = ray.get(coord.get_timings.remote())
        outcomes = dict(ray.get(coord.status.remote()).get("outcomes", {}))
    finally:
        _stop(dep)
    ticks = sorted(ns for kind, _, ns in sa if kind == "quotes")
    legs: dict[str, dict[str, int]] = {}
    for stamps in (sa, sb):
        for kind, coid, ns in stamps:
            did, leg, attempt = split_client_order_id(coid)
            if kind == "place" and attempt == "0":
                legs.setdefault(did, {})[leg] = ns
    total, to_coord, in_coord, to_legs = [], [], [], []
    for did, t in legs.items():
        if "A" not in t or "B" not in t:
            continue
        first, last = min(t.values()), max(t.values())
        tick = max((x for x in ticks if x <= first), default=None)
        if tick is None:
            continue
        total.append((last - tick) / 1e3)
        ct = coord_t.get(did, {})
        if "received" in ct and "sent" in ct:
            to_coord.append((ct["received"] - tick) / 1e3)
            in_coord.append((ct["sent"] - ct["received"]) / 1e3)
            to_legs.append((last - ct["sent"]) / 1e3)
    return {"total": total, "to_coord": to_coord, "in_coord": in_coord, "to_legs": to_legs, "ticks": len(ticks),
            "outcomes": outcomes, "cpu_ms_per_tick": cpu}


def _t2o_figures(prefix: str, t2o: dict[str, Any], floor_p50_us: float) -> dict[str, float]:
    """``{prefix}tick_to_order_p50_us``, ``_p99_us`` and ``_ratio`` (p50 over the floor's) of one run."""
    p50 = _pct(t2o["total"], 0.5)
    return {f"{prefix}tick_to_order_p50_us": p50, f"{prefix}tick_to_order_p99_us": _pct(t2o["total"], 0.99),
            f"{prefix}tick_to_order_ratio": p50 / floor_p50_us}


# -------------------------------------------------------------------------------- fan-out
def _fanout(tmp: Path, n_strategies: int, n_quotes: int) -> list[float]:
    dep = _start(_config(tmp, f"fan{n_strategies}", n_strategies, trigger=False))
    try:
        gw_a = dep.gateways["SHFE"]

        def evaluations() -> int:
            sts = ray.get([h.status.remote() for h in dep.hosts.values()])
            return sum(int(st["counters"].get("evaluations", 0)) for hs in sts for st in hs["strategies"].values())

        for i in range(10):  # warm-up
            ray.get(gw_a.push_market.remote([stamped_quote("SHFE.cu", NORMAL_A)]))
            ray.get(gw_a.quiesce.remote())
        before = evaluations()
        out = []
        books = (NORMAL_A, (Decimal(72000), Decimal(72010)))
        for i in range(n_quotes):
            q = stamped_quote("SHFE.cu", books[i % 2])
            t = time.perf_counter()
            ray.get(gw_a.push_market.remote([q]))
            ray.get(gw_a.quiesce.remote())
            out.append((time.perf_counter() - t) * 1e6)
        evaluated = evaluations() - before
        if evaluated != n_strategies * n_quotes:
            raise RuntimeError(f"fan-out {n_strategies}: {evaluated} evaluations for {n_quotes} quotes "
                               f"x {n_strategies} strategies (a quote was not evaluated by everyone)")
    finally:
        _stop(dep)
    return out


def run(quick: bool) -> dict[str, float]:
    """Run the runtime benchmark; returns metric name -> number (units in the names)."""
    n_t2o = 100 if quick else 500
    n_fan = 100 if quick else 400
    own = not ray.is_initialized()
    if own:
        ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="bench-runtime",
                 log_to_driver=False)
    tmp = Path(tempfile.mkdtemp(prefix="xmc-bench-runtime-"))
    try:
        out: dict[str, float] = {}
        floor = _floor_three_hop(n_t2o)
        t2o = _tick_to_order(tmp, n_t2o)
        out["floor_three_hop_p50_us"] = _pct(floor, 0.5)
        out["floor_three_hop_p99_us"] = _pct(floor, 0.99)
        out.update(_t2o_figures("", t2o, out["floor_three_hop_p50_us"]))
        # where the time goes (same clock): tick -> coordinator.submit entry -> legs sent -> legs at gateways
        out["tick_to_coordinator_p50_us"] = _pct(t2o["to_coord"], 0.5)
        out["coordinator_received_to_sent_p50_us"] = _pct(t2o["in_coord"], 0.5)
        out["coordinator_sent_to_legs_arrived_p50_us"] = _pct(t2o["to_legs"], 0.5)
        # CPU of the deployment's actors per step (a quote, its pair, the replay's settle): on a
        # small host the hot path waits for whatever else holds its cores
        for c, ms in t2o["cpu_ms_per_tick"].items():
            out[f"tick_to_order_cpu_ms_per_tick_{_CPU_CLASSES[c]}"] = ms
        out["tick_to_order_cpu_ms_per_tick"] = sum(t2o["cpu_ms_per_tick"].values())
        out["samples_tick_to_order"] = float(len(t2o["total"]))
        out["samples_ticks"] = float(t2o["ticks"])
        for k, v in sorted(t2o["outcomes"].items()):
            out[f"tick_to_order_pairs_{k.lower()}"] = float(v)
        # the same with nothing of the harness on the path: the settle 30 ms after each quote
        t2o_q = _tick_to_order(tmp, n_t2o, quiet_s=0.03)
        out.update(_t2o_figures("quiet_", t2o_q, out["floor_three_hop_p50_us"]))
        out["quiet_tick_to_coordinator_p50_us"] = _pct(t2o_q["to_coord"], 0.5)
        out["quiet_coordinator_received_to_sent_p50_us"] = _pct(t2o_q["in_coord"], 0.5)
        out["quiet_coordinator_sent_to_legs_arrived_p50_us"] = _pct(t2o_q["to_legs"], 0.5)
        # the same with both venues in one gateway process (a gateway group)
        t2o_g = _tick_to_order(tmp, n_t2o, group="copper")
        out.update(_t2o_figures("cohosted_", t2o_g, out["floor_three_hop_p50_us"]))
        out["cohosted_coordinator_sent_to_legs_arrived_p50_us"] = _pct(t2o_g["to_legs"], 0.5)
        t2o_gq = _tick_to_order(tmp, n_t2o, group="copper", quiet_s=0.03)
        out.update(_t2o_figures("quiet_cohosted_", t2o_gq, out["floor_three_hop_p50_us"]))
        fan = {k: _fanout(tmp, k, n_fan) for k in (1, 10, 50)}
        pq = _floor_push_quiesce(n_fan)
        for k, xs in fan.items():
            out[f"fanout_quote_us_p50_{k}"] = _pct(xs, 0.5)
            out[f"fanout_quote_us_p99_{k}"] = _pct(xs, 0.99)
        out["floor_push_quiesce_us_p50"] = _pct(pq, 0.5)
        out["fanout_50_vs_1_ratio"] = out["fanout_quote_us_p50_50"] / out["fanout_quote_us_p50_1"]
        out["fanout_per_strategy_us"] = (out["fanout_quote_us_p50_50"] - out["fanout_quote_us_p50_1"]) / 49
        out["fanout_quotes_per_s_50"] = 1e6 / out["fanout_quote_us_p50_50"]
        out.update(run_chain(200 if quick else 1000))  # remote vs compiled graph, and a restart
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if own:
            ray.shutdown()
