"""Scale-out benchmark: real deployments of 1 → 100 z-score strategy instances on a simulated cluster.

A ``ray.cluster_utils.Cluster`` on this machine (a head with 0 CPU and two worker nodes with
1 CPU each; three raylets, one process tree) runs, for N in 1, 10, 50, 100, a **whole
deployment** through :class:`xmc_actors.runtime.deploy.Deployment`: ledger shard, risk guard,
registry, pair coordinator with its pre-trade checker, two simulated ``VenueGateway`` actors
(SHFE, LME; zero latency, no feeds) and ``StrategyHost`` actors running N ``zscore`` instances.
The runtime groups instances ``STRATEGIES_PER_HOST`` (25, the runtime's default) to a host
actor, so N=100 is 4 host actors; hosts reserve ``ray.strategy_cpus`` = 0.01 CPU, which only
the worker nodes have, and the runtime's ``strategy_placement`` SPREADs them: the hosts land on
the two worker nodes, the rest of the deployment (0 CPU) next to the driver on the head.

Every instance trades SHFE copper against LME copper (the worst case for fan-out: every quote
concerns every instance), with the parameter variants of ``configs/fifty.yaml`` (windows 60 to
150, the three execution modes) but ``entry_z`` out of reach, so nothing triggers and the
measurement is of quote evaluation; the coordinator and gateways are real, so a trigger would
be a real pair. The run checks that there were no intents. Windows are filled (warm-up rounds)
before measuring, so every evaluation is the full z-score path.

One *round* is the product's path for one quote: the driver pushes one SHFE quote into the
SHFE gateway (``push_market``: normaliser, gap check, calibration, conflated push to every
subscribed host), then calls the gateway's ``quiesce`` (which returns once every host's
``on_quotes`` call for that batch has returned). After the rounds, the hosts' ``status()``
counters must show exactly N evaluations per round (a quote evaluated by everyone, once).

Metrics, for each N (``_n{N}``):

- ``round_us_p50_n{N}`` / ``round_us_p99_n{N}``: wall time of one round (quote in → all N
  instances have evaluated it), measured at the driver (two driver round trips included);
- ``cost_per_strategy_quote_us_n{N}``: round p50 / N (how the cost per quote per instance
  falls as instances share host actors); ``marginal_us_per_strategy``: (p50 at 100 − p50 at
  1) / 99, the wall time one more instance adds to a quote;
- ``host_cpu_us_per_quote_n{N}``: CPU all host processes spent per quote, from the processes'
  own CPU clocks (the kernel's per-thread ``schedstat`` run time, all threads, read from
  ``/proc``: the simulated nodes are processes of this machine); ``host_cpu_us_per_strategy_quote_n{N}``
  the same / N; ``gateway_cpu_us_per_quote_n{N}``: the SHFE gateway process (the fan-out sender);
- ``host_rss_mb_per_host_n{N}`` (resident memory per host actor process) and
  ``host_rss_mb_per_strategy_n{N}`` (all hosts' RSS / N); ``hosts_n{N}``, ``nodes_used_n{N}``
  (distinct nodes running hosts);
- ``start_deployment_100_strategies_s``: ``Deployment.start()`` (every actor created, wired
  and ready) for the 100-instance deployment;
- floors on the same cluster: ``floor_actor_call_us`` (one plain actor round trip),
  ``floor_push_quiesce_us`` (the two driver calls of a round to a trivial async actor),
  ``floor_actor_rss_mb`` (a bare Ray actor process); ratios ``round_n1_vs_floor_ratio``
  (round p50 at N=1 / ``floor_push_quiesce_us``) and ``round_n100_vs_n1_ratio``.
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import ray
import yaml
from ray.cluster_utils import Cluster

from ..model.config import DeploymentConfig
from ..runtime.config import PROJECT_ROOT, load_config
from .stats import percentile

SIZES = (1, 10, 50, 100)
STRATEGIES_PER_HOST = 25
"""Instances per host actor (the runtime's default grouping)."""
HOST_CPUS = 0.01
"""CPU a host reserves: only the worker nodes have any, so hosts never land on the head."""
UNREACHABLE_Z = 1000.0
"""``entry_z`` no quote here can reach: every evaluation runs the full z-score, none triggers."""
MAX_WINDOW = 150

#: SHFE copper (CNY/t) alternates between two books so the windows have variance; LME is fixed.
BOOKS_A = ((Decimal(71990), Decimal(72000)), (Decimal(72000), Decimal(72010)))
BOOK_B = (Decimal("9999.5"), Decimal(10000))
#: the five parameter variants of configs/fifty.yaml (window, entry_z → unreachable, exit_z, mode)
VARIANTS = ((60, 0.5, "price"), (100, 0.5, "speed"), (150, 1.0, "quantity"), (80, 0.3, "speed"),
            (120, 0.8, "price"))


# ------------------------------------------------------------------------------ building blocks
def build_config(tmp: Path, n: int, *, namespace: str) -> DeploymentConfig:
    """A deployment of ``n`` z-score instances on SHFE.cu / LME.CA3M (two simulated venues, no feeds).

    Written as YAML and loaded with :func:`~xmc_actors.runtime.config.load_config`, so it is
    validated like any configuration file.
    """
    venue = {"enforce_sessions": False, "enforce_price_limits": False, "seed": 1,
             "ack_latency": {"kind": "const", "mean_ms": 0.0}, "network_latency": {"kind": "const", "mean_ms": 0.0}}
    strategies = []
    for i in range(n):
        window, exit_z, mode = VARIANTS[i % len(VARIANTS)]
        strategies.append({
            "name": f"cu-ca3m-z{i:03d}", "class": "zscore",
            "legs": [{"instrument": "SHFE.cu", "account": "cn-main"}, {"instrument": "LME.CA3M", "account": "us-main"}],
            "params": {"signal": "ratio", "window": window, "entry_z": UNREACHABLE_Z, "exit_z": exit_z, "clip": 5,
                       "max_position": 10, "cooldown_ms": 2000,
                       "guards": {"require_sessions_open": False, "stale_ms": 3_600_000, "max_skew_ms": 3_600_000}},
            "execution": {"mode": mode},
        })
    doc = {
        "name": namespace,
        "description": f"{n} z-score instances on one pair (bench/cluster.py)",
        "include": [str(PROJECT_ROOT / "configs" / "catalogue.yaml")],
        "base_currency": "USD",
        "fx": [{"base": "USD", "quote": "CNY", "source": "static", "rate": 7.2}],
        "accounts": [
            {"id": "cn-main", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 500_000_000},
            {"id": "us-main", "broker": "sim", "venues": ["LME"], "currency": "USD", "capital": 80_000_000},
        ],
        "gateways": [{"venue": "SHFE", "adapter": "sim", "params": venue},
                     {"venue": "LME", "adapter": "sim", "params": venue}],
        "strategies": strategies,
        "risk": {"default_limits": {"max_order_qty": 20, "collar_pct": 0.05}, "check_sessions": False},
        "ledger": {"path": str(tmp / namespace / "ledger"), "shards": 1, "shard_by": "strategy"},
        "ray": {"namespace": namespace, "strategy_cpus": HOST_CPUS, "ready_timeout_s": 120},
    }
    path = tmp / f"{namespace}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_config(path)


def quote(inst: str, book: tuple[Decimal, Decimal]) -> Any:
    """A market quote stamped now (deep book)."""
    from ..model.quotes import Quote

    now = time.time_ns()
    return Quote(instrument=inst, bid=book[0], ask=book[1], bid_size=1_000, ask_size=1_000,
                 venue_ts_ns=now, ts_ns=now, recv_ts_ns=now)


def actor_process(handle: Any) -> tuple[int, str]:
    """(pid, node id) of a live actor, from the GCS actor table."""
    import ray._private.state as gcs_state

    info = gcs_state.actors(handle._actor_id.hex())
    return int(info["Pid"]), str(info["Address"]["NodeID"])


def process_cpu_ns(pid: int) -> int:
    """CPU time of a process (all its threads) in ns, from the kernel's per-thread run time."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError as e:
        raise RuntimeError(f"process {pid} is not on this machine ({e}); the benchmark reads /proc") from None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total


def process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _evaluations(hosts: dict[str, Any]) -> tuple[int, int]:
    sts = ray.get([h.status.remote() for h in hosts.values()])
    ev = sum(int(st["counters"].get("evaluations", 0)) for hs in sts for st in hs["strategies"].values())
    intents = sum(int(st["counters"].get("intents", 0)) for hs in sts for st in hs["strategies"].values())
    return ev, intents


def _stop(dep: Any) -> None:
    try:
        dep.stop()
    finally:
        for h in dep.handles.values():
            try:
                ray.kill(h)
            except Exception:  # noqa: BLE001 - already gone
                pass


def measure_deployment(tmp: Path, n: int, rounds: int, *, address: str, warmup: int = MAX_WINDOW + 10,
                       strategies_per_host: int = STRATEGIES_PER_HOST, idle_s: float = 1.0) -> dict[str, Any]:
    """Start a deployment of ``n`` instances on the running Ray, time ``rounds`` quote rounds, stop it.

    Returns the raw figures: ``round_us`` (list), ``start_s``, ``hosts``, ``host_nodes``,
    ``host_cpu_ns``, ``gateway_cpu_ns``, ``host_rss_mb`` (list per host), ``evaluations``.

    Raises
    ------
    RuntimeError
        If the hosts did not evaluate exactly ``n`` × rounds quotes, or a strategy triggered.
    """
    from ..runtime.deploy import Deployment

    cfg = build_config(tmp, n, namespace=f"bench-cluster-n{n}")
    dep = Deployment(cfg, address=address, strategies_per_host=strategies_per_host)
    t0 = time.perf_counter()
    try:
        dep.start()
        start_s = time.perf_counter() - t0
        gw_a, gw_b = dep.gateways["SHFE"], dep.gateways["LME"]
        ray.get([gw_b.push_market.remote([quote("LME.CA3M", BOOK_B)])])
        ray.get(gw_b.quiesce.remote())
        for i in range(warmup):  # fill every z-score window (the steady state is what is measured)
            ray.get(gw_a.push_market.remote([quote("SHFE.cu", BOOKS_A[i % 2])]))
            ray.get(gw_a.quiesce.remote())
        host_procs = {name: actor_process(h) for name, h in dep.hosts.items()}
        gw_pid, _ = actor_process(gw_a)
        ev0, _ = _evaluations(dep.hosts)
        cpu0 = {name: process_cpu_ns(pid) for name, (pid, _) in host_procs.items()}
        gcpu0 = process_cpu_ns(gw_pid)
        samples = []
        w0 = time.perf_counter()
        for i in range(rounds):
            q = quote("SHFE.cu", BOOKS_A[i % 2])
            t = time.perf_counter()
            ray.get(gw_a.push_market.remote([q]))
            ray.get(gw_a.quiesce.remote())
            samples.append((time.perf_counter() - t) * 1e6)
        busy_s = time.perf_counter() - w0
        cpu1 = {name: process_cpu_ns(pid) for name, (pid, _) in host_procs.items()}
        gcpu1 = process_cpu_ns(gw_pid)
        # what the same processes burn with no quotes (Ray's threads, the gateway's 2 ms timer):
        # subtracted pro rata so that the CPU per quote is what the quotes cost
        w1 = time.perf_counter()
        time.sleep(idle_s)
        idle_wall = time.perf_counter() - w1
        idle_host = sum(process_cpu_ns(pid) for pid, _ in host_procs.values()) - sum(cpu1.values())
        idle_gw = process_cpu_ns(gw_pid) - gcpu1
        ev1, intents = _evaluations(dep.hosts)
        rss = [process_rss_mb(pid) for pid, _ in host_procs.values()]
    finally:
        _stop(dep)
    if ev1 - ev0 != n * rounds:
        raise RuntimeError(f"n={n}: {ev1 - ev0} evaluations for {rounds} quotes x {n} instances "
                           "(a quote was not evaluated by every instance, or twice)")
    if intents:
        raise RuntimeError(f"n={n}: {intents} intents; entry_z was meant to be out of reach")
    return {"round_us": samples, "start_s": start_s, "hosts": len(host_procs),
            "host_nodes": sorted({node for _, node in host_procs.values()}),
            "host_cpu_ns": sum(cpu1[k] - cpu0[k] for k in cpu0), "gateway_cpu_ns": gcpu1 - gcpu0, "busy_s": busy_s,
            "host_idle_cpu_ns_per_s": idle_host / idle_wall, "gateway_idle_cpu_ns_per_s": idle_gw / idle_wall,
            "host_rss_mb": rss, "evaluations": ev1 - ev0}


def measure_core(cfg: DeploymentConfig, quotes: int, warmup: int = MAX_WINDOW + 10) -> float:
    """µs per instance per quote of the same instances in one :class:`StrategyHostCore`, in
    this process (no Ray, no actor): what the strategy code itself costs."""
    from ..core.clock import SystemClock
    from ..core.pricing import fx_book_from_config
    from ..core.sink import EventMaker
    from ..strategies.base import build_strategy
    from ..strategies.host import StrategyHostCore

    fx = fx_book_from_config(cfg.fx, max_lag_days=7)
    clock = SystemClock()
    core = StrategyHostCore([build_strategy(s, cfg, fx, actor=s.name) for s in cfg.strategies],
                            EventMaker(clock, "bench-core"))
    core.on_quotes([quote("LME.CA3M", BOOK_B)], clock.now_ns())
    for i in range(warmup):
        core.on_quotes([quote("SHFE.cu", BOOKS_A[i % 2])], clock.now_ns())
    batches = [[quote("SHFE.cu", BOOKS_A[i % 2])] for i in range(quotes)]
    t = time.perf_counter()
    for b in batches:
        intents, _ = core.on_quotes(b, clock.now_ns())
        if intents:
            raise RuntimeError("core: a strategy triggered; entry_z was meant to be out of reach")
    return (time.perf_counter() - t) * 1e6 / quotes / len(cfg.strategies)


@ray.remote(num_cpus=0)
class Echo:
    """A trivial actor: the floor of one call (sync) and of a round's two calls (async)."""

    def ping(self) -> int:
        return 1


@ray.remote(num_cpus=0)
class AsyncEcho:
    async def push_market(self, quotes: Any) -> int:
        return 1

    async def quiesce(self) -> int:
        return 0


def measure_floors(samples: int) -> dict[str, float]:
    """One plain actor round trip, a round's two calls to a trivial async actor, a bare actor's RSS."""
    echo, aecho = Echo.remote(), AsyncEcho.remote()
    try:
        ray.get([echo.ping.remote(), aecho.quiesce.remote()])
        call, pq = [], []
        q = quote("SHFE.cu", BOOKS_A[0])
        for _ in range(samples + 10):
            t = time.perf_counter()
            ray.get(echo.ping.remote())
            call.append((time.perf_counter() - t) * 1e6)
            t = time.perf_counter()
            ray.get(aecho.push_market.remote([q]))
            ray.get(aecho.quiesce.remote())
            pq.append((time.perf_counter() - t) * 1e6)
        pid, _ = actor_process(echo)
        rss = process_rss_mb(pid)
    finally:
        ray.kill(echo)
        ray.kill(aecho)
    return {"floor_actor_call_us": statistics.median(call[10:]), "floor_push_quiesce_us": statistics.median(pq[10:]),
            "floor_actor_rss_mb": rss}


def summarise(n: int, m: dict[str, Any], rounds: int) -> dict[str, float]:
    """The per-N metrics of one :func:`measure_deployment` result."""
    p50 = percentile(m["round_us"], 0.5)
    host_gross = m["host_cpu_ns"] / 1e3 / rounds
    host_net = (m["host_cpu_ns"] - m["host_idle_cpu_ns_per_s"] * m["busy_s"]) / 1e3 / rounds
    return {
        f"round_us_p50_n{n}": p50,
        f"round_us_p99_n{n}": percentile(m["round_us"], 0.99),
        f"cost_per_strategy_quote_us_n{n}": p50 / n,
        f"host_cpu_gross_us_per_quote_n{n}": host_gross,
        f"host_cpu_us_per_quote_n{n}": host_net,
        f"host_cpu_us_per_strategy_quote_n{n}": host_net / n,
        f"host_idle_cpu_ms_per_s_n{n}": m["host_idle_cpu_ns_per_s"] / 1e6,
        f"gateway_cpu_us_per_quote_n{n}": (m["gateway_cpu_ns"] - m["gateway_idle_cpu_ns_per_s"] * m["busy_s"]) / 1e3 / rounds,
        f"host_rss_mb_per_host_n{n}": statistics.fmean(m["host_rss_mb"]),
        f"host_rss_mb_per_strategy_n{n}": sum(m["host_rss_mb"]) / n,
        f"hosts_n{n}": float(m["hosts"]),
        f"nodes_used_n{n}": float(len(m["host_nodes"])),
    }


# ------------------------------------------------------------------------------------- the run
def run(quick: bool) -> dict[str, float]:
    """Run the scale-out benchmark; returns metric name -> number (units in the names)."""
    rounds = 60 if quick else 300
    out: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="xmc-bench-cluster-"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    ray._common.utils.reset_ray_address()  # keep other processes' ray.init() off this cluster
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        ray.init(address=cluster.address, namespace="bench-cluster", log_to_driver=False)
        worker_ids = {w.node_id for w in workers}
        out.update(measure_floors(50 if quick else 200))
        results = {}
        for n in SIZES:
            results[n] = m = measure_deployment(tmp, n, rounds, address=cluster.address)
            if not set(m["host_nodes"]) <= worker_ids:
                raise RuntimeError(f"n={n}: a strategy host ran outside the two worker nodes: {m['host_nodes']}")
            out.update(summarise(n, m, rounds))
        lo, hi = SIZES[0], SIZES[-1]
        out["core_eval_us_per_strategy_quote"] = measure_core(build_config(tmp, hi, namespace="core"), rounds)
        out["host_cpu_vs_core_ratio"] = out[f"host_cpu_us_per_strategy_quote_n{hi}"] / out["core_eval_us_per_strategy_quote"]
        out[f"start_deployment_{hi}_strategies_s"] = results[hi]["start_s"]
        out["marginal_us_per_strategy"] = (out[f"round_us_p50_n{hi}"] - out[f"round_us_p50_n{lo}"]) / (hi - lo)
        out[f"round_n{lo}_vs_floor_ratio"] = out[f"round_us_p50_n{lo}"] / out["floor_push_quiesce_us"]
        out[f"round_n{hi}_vs_n{lo}_ratio"] = out[f"round_us_p50_n{hi}"] / out[f"round_us_p50_n{lo}"]
        out["rounds_per_n"] = float(rounds)
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return out
