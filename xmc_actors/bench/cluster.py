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

All deployments are up at once (about 50 Ray worker processes): the 100-instance one is started
first on an empty cluster and timed, the others together; every window is filled, then the
rounds run in blocks, the deployments and the floor probe taking turns in a rotating order, so
that every size sees the same machine load (this 2-core machine is shared; sequential runs
minutes apart would compare loads, not sizes). The idle deployments' background (their
gateways' 2 ms timers, Ray's threads) is part of that load for all of them.

Metrics, for each N (``_n{N}``):

- ``round_us_p50_n{N}`` / ``round_us_p99_n{N}``: wall time of one round (quote in → all N
  instances have evaluated it), measured at the driver (two driver round trips included);
- ``cost_per_strategy_quote_us_n{N}``: round p50 / N (how the cost per quote per instance
  falls as instances share host actors); ``marginal_us_per_strategy``: (p50 at 100 − p50 at
  1) / 99, the wall time one more instance adds to a quote;
- ``host_cpu_us_per_quote_n{N}``: CPU all host processes spent per quote, from the processes'
  own CPU clocks (the kernel's per-thread ``schedstat`` run time, all threads, read from
  ``/proc``: the simulated nodes are processes of this machine); ``host_cpu_us_per_strategy_quote_n{N}``
  the same / N and ``host_cpu_us_per_host_quote_n{N}`` per host actor;
  ``gateway_cpu_us_per_quote_n{N}``: the SHFE gateway process (the fan-out sender). The CPU
  the same processes burn idle (Ray's threads, the gateway's 2 ms timer) over as long is
  measured after the rounds and subtracted (``host_cpu_gross_us_per_quote_n{N}`` keeps it,
  ``host_idle_cpu_ms_per_s_n{N}`` is the idle burn);
- ``host_rss_mb_per_host_n{N}`` (resident memory per host actor process) and
  ``host_rss_mb_per_strategy_n{N}`` (all hosts' RSS / N); ``hosts_n{N}``, ``nodes_used_n{N}``
  (distinct nodes running hosts);
- the same metrics for the 100 instances grouped ``FEW_PER_HOST`` (10) to a host
  (``..._n100_10_per_host``: 10 host actors), to weigh fewer big hosts against more small ones
  (full mode only; quick mode also divides the windows by 5 to shorten the warm-up);
- ``core_eval_us_per_strategy_quote``: the same 100 instances in one ``StrategyHostCore`` in the
  driver's process (no Ray): what the strategy code costs; ``host_cpu_vs_core_ratio``: host
  CPU per instance per quote at N=100 over that;
- ``start_deployment_100_strategies_s``: ``Deployment.start()`` (every actor created, wired
  and ready) for the 100-instance deployment;
- floors on the same cluster, measured in the same rotation: ``floor_actor_call_us`` (one
  plain actor round trip), ``floor_push_quiesce_us`` (the two driver calls of a round to a
  trivial async actor), ``floor_async_actor_cpu_us_per_call`` (that actor's CPU per call, idle
  burn subtracted: what Ray alone costs a host per quote), ``floor_actor_rss_mb`` (a bare Ray
  actor process); ratios ``round_n1_vs_floor_ratio``
  (round p50 at N=1 / ``floor_push_quiesce_us``) and ``round_n100_vs_n1_ratio``.
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import ray
import yaml
from ray.cluster_utils import Cluster

from ..core.stats import percentile
from ..model.config import DeploymentConfig
from ..runtime.config import PROJECT_ROOT, load_config
from .runtime import stamped_quote

SIZES = (1, 10, 50, 100)
STRATEGIES_PER_HOST = 25
"""Instances per host actor (the runtime's default grouping)."""
FEW_PER_HOST = 10
"""The alternative grouping measured at N=100 (``..._n100_10_per_host``)."""
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
def build_config(tmp: Path, n: int, *, namespace: str, window_div: int = 1) -> DeploymentConfig:
    """A deployment of ``n`` z-score instances on SHFE.cu / LME.CA3M (two simulated venues, no feeds).

    ``window_div`` divides fifty.yaml's windows (quick mode: 5, so the warm-up is shorter; an
    evaluation costs the same whatever the window, the rolling statistics being O(1)).

    Written as YAML and loaded with :func:`~xmc_actors.runtime.config.load_config`, so it is
    validated like any configuration file.
    """
    venue = {"enforce_sessions": False, "enforce_price_limits": False, "seed": 1,
             "ack_latency": {"kind": "const", "mean_ms": 0.0}, "network_latency": {"kind": "const", "mean_ms": 0.0}}
    strategies = []
    for i in range(n):
        window, exit_z, mode = VARIANTS[i % len(VARIANTS)]
        window = max(5, window // window_div)
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
    """A market quote stamped now (1,000 lots a side)."""
    return stamped_quote(inst, book, size=1_000)


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


class BenchDeployment:
    """One started deployment of ``n`` instances, driven in blocks of quote rounds.

    :meth:`start` starts it and fills every z-score window; :meth:`rounds` times ``k`` rounds
    and adds the host and gateway processes' CPU over those rounds; :meth:`idle_start` /
    :meth:`idle_end` bracket an idle period; :meth:`finish` checks the evaluation counters,
    reads RSS, stops the deployment and returns the raw figures. Several can be alive at once,
    so that the sizes are measured interleaved under the same machine load.
    """

    def __init__(self, tmp: Path, n: int, *, address: str, strategies_per_host: int = STRATEGIES_PER_HOST,
                 window_div: int = 1) -> None:
        from ..runtime.deploy import Deployment

        self.n = n
        suffix = f"-{strategies_per_host}-per-host" if strategies_per_host != STRATEGIES_PER_HOST else ""
        self.cfg = build_config(tmp, n, namespace=f"bench-cluster-n{n}{suffix}", window_div=window_div)
        self.dep = Deployment(self.cfg, address=address, strategies_per_host=strategies_per_host)
        self.samples: list[float] = []
        self.busy_s = 0.0
        self.host_cpu_ns = 0
        self.gateway_cpu_ns = 0
        self.start_s = float("nan")
        self.host_procs: dict[str, tuple[int, str]] = {}
        self._ev0 = 0
        self._idle: tuple[float, int, int] | None = None
        self.idle_rates = (0.0, 0.0)

    def start(self) -> "BenchDeployment":
        """Start the deployment (timed: ``start_s``) and give the hosts the LME quote."""
        t0 = time.perf_counter()
        try:
            self.dep.start()
            self.start_s = time.perf_counter() - t0
            self.gw_a, gw_b = self.dep.gateways["SHFE"], self.dep.gateways["LME"]
            ray.get(gw_b.push_market.remote([quote("LME.CA3M", BOOK_B)]))
            ray.get(gw_b.quiesce.remote())
            self.host_procs = {name: actor_process(h) for name, h in self.dep.hosts.items()}
            self.gw_pid, _ = actor_process(self.gw_a)
        except BaseException:
            _stop(self.dep)
            raise
        return self

    @staticmethod
    def warm_up(deployments: list["BenchDeployment"], k: int = MAX_WINDOW + 10) -> None:
        """``k`` rounds in every deployment at once (not timed): fills every z-score window, so
        that the steady state is what is measured; the evaluation counters start after it."""
        for i in range(k):
            q = [quote("SHFE.cu", BOOKS_A[i % 2])]
            ray.get([b.gw_a.push_market.remote(q) for b in deployments])
            ray.get([b.gw_a.quiesce.remote() for b in deployments])
        for b in deployments:
            b._ev0, _ = _evaluations(b.dep.hosts)

    def _cpu(self) -> tuple[int, int]:
        return sum(process_cpu_ns(pid) for pid, _ in self.host_procs.values()), process_cpu_ns(self.gw_pid)

    def rounds(self, k: int) -> None:
        """``k`` rounds: one SHFE quote in (``push_market``), ``quiesce`` until every host took it."""
        h0, g0 = self._cpu()
        w0 = time.perf_counter()
        for i in range(k):
            q = quote("SHFE.cu", BOOKS_A[(len(self.samples) + i) % 2])
            t = time.perf_counter()
            ray.get(self.gw_a.push_market.remote([q]))
            ray.get(self.gw_a.quiesce.remote())
            self.samples.append((time.perf_counter() - t) * 1e6)
        self.busy_s += time.perf_counter() - w0
        h1, g1 = self._cpu()
        self.host_cpu_ns += h1 - h0
        self.gateway_cpu_ns += g1 - g0

    def idle_start(self) -> None:
        self._idle = (time.perf_counter(), *self._cpu())

    def idle_end(self) -> None:
        """What the same processes burn with no quotes (Ray's threads, the gateway's 2 ms timer),
        in ns per s: subtracted pro rata so that the CPU per quote is what the quotes cost."""
        assert self._idle is not None, "idle_start() first"
        w, h, g = self._idle
        h1, g1 = self._cpu()
        wall = time.perf_counter() - w
        self.idle_rates = ((h1 - h) / wall, (g1 - g) / wall)

    def finish(self) -> dict[str, Any]:
        """Check every instance evaluated every quote once and nothing triggered; stop; the figures.

        Raises
        ------
        RuntimeError
            If the hosts did not evaluate exactly ``n`` × rounds quotes, or a strategy triggered.
        """
        try:
            ev1, intents = _evaluations(self.dep.hosts)
            rss = [process_rss_mb(pid) for pid, _ in self.host_procs.values()]
        finally:
            _stop(self.dep)
        n, rounds = self.n, len(self.samples)
        if ev1 - self._ev0 != n * rounds:
            raise RuntimeError(f"n={n}: {ev1 - self._ev0} evaluations for {rounds} quotes x {n} instances "
                               "(a quote was not evaluated by every instance, or twice)")
        if intents:
            raise RuntimeError(f"n={n}: {intents} intents; entry_z was meant to be out of reach")
        return {"round_us": list(self.samples), "start_s": self.start_s, "hosts": len(self.host_procs),
                "host_nodes": sorted({node for _, node in self.host_procs.values()}),
                "host_cpu_ns": self.host_cpu_ns, "gateway_cpu_ns": self.gateway_cpu_ns, "busy_s": self.busy_s,
                "host_idle_cpu_ns_per_s": self.idle_rates[0], "gateway_idle_cpu_ns_per_s": self.idle_rates[1],
                "host_rss_mb": rss, "evaluations": ev1 - self._ev0}


def measure_deployment(tmp: Path, n: int, rounds: int, *, address: str, warmup: int = MAX_WINDOW + 10,
                       strategies_per_host: int = STRATEGIES_PER_HOST, idle_s: float = 1.0) -> dict[str, Any]:
    """Start a deployment of ``n`` instances on the running Ray, time ``rounds`` quote rounds, stop it.

    Returns the raw figures (:meth:`BenchDeployment.finish`): ``round_us`` (list), ``start_s``,
    ``hosts``, ``host_nodes``, ``host_cpu_ns``, ``gateway_cpu_ns``, ``host_rss_mb`` (list per
    host), ``evaluations``, the idle burn rates.
    """
    b = BenchDeployment(tmp, n, address=address, strategies_per_host=strategies_per_host).start()
    try:
        BenchDeployment.warm_up([b], warmup)
        b.rounds(rounds)
        b.idle_start()
        time.sleep(idle_s)
        b.idle_end()
    except BaseException:
        _stop(b.dep)
        raise
    return b.finish()


def measure_core(cfg: DeploymentConfig, quotes: int, warmup: int = MAX_WINDOW + 10) -> float:
    """µs per instance per quote of the same instances in one :class:`StrategyHostCore`, in
    this process (no Ray, no actor): what the strategy code itself costs."""
    from ..core.clock import SystemClock
    from ..feeds.fx import fx_book_from_config
    from ..core.sink import EventMaker, NullSink
    from ..strategies.base import build_strategy
    from ..strategies.host import StrategyHostCore

    fx = fx_book_from_config(cfg.fx, max_lag_days=7)
    clock = SystemClock()
    core = StrategyHostCore([build_strategy(s, cfg, fx, actor=s.name) for s in cfg.strategies],
                            EventMaker(clock, "bench-core"), sink=NullSink())
    core.on_quotes([quote("LME.CA3M", BOOK_B)], clock.now_ns())
    for i in range(warmup):
        core.on_quotes([quote("SHFE.cu", BOOKS_A[i % 2])], clock.now_ns())
    batches = [[quote("SHFE.cu", BOOKS_A[i % 2])] for i in range(quotes)]
    t = time.perf_counter()
    for b in batches:
        intents = core.on_quotes(b, clock.now_ns())
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


class FloorProbe:
    """The floors, driven in blocks like a :class:`BenchDeployment`: one plain actor call, and a
    round's two calls (``push_market`` + ``quiesce``) to a trivial async actor, with that
    actor's CPU per call."""

    def __init__(self) -> None:
        self.echo, self.aecho = Echo.remote(), AsyncEcho.remote()
        ray.get([self.echo.ping.remote(), self.aecho.quiesce.remote()])
        self.pid, _ = actor_process(self.aecho)
        self.call_us: list[float] = []
        self.pq_us: list[float] = []
        self.cpu_ns = 0
        self.busy_s = 0.0
        self.idle_rate = 0.0
        self._idle: tuple[float, int] | None = None
        self._q = quote("SHFE.cu", BOOKS_A[0])

    def reset(self) -> None:
        """Forget what was measured so far (after a warm-up)."""
        self.call_us.clear()
        self.pq_us.clear()
        self.cpu_ns, self.busy_s = 0, 0.0

    def rounds(self, k: int) -> None:
        c0, w0 = process_cpu_ns(self.pid), time.perf_counter()
        for _ in range(k):
            t = time.perf_counter()
            ray.get(self.echo.ping.remote())
            self.call_us.append((time.perf_counter() - t) * 1e6)
            t = time.perf_counter()
            ray.get(self.aecho.push_market.remote([self._q]))
            ray.get(self.aecho.quiesce.remote())
            self.pq_us.append((time.perf_counter() - t) * 1e6)
        self.busy_s += time.perf_counter() - w0
        self.cpu_ns += process_cpu_ns(self.pid) - c0

    def idle_start(self) -> None:
        self._idle = (time.perf_counter(), process_cpu_ns(self.pid))

    def idle_end(self) -> None:
        assert self._idle is not None, "idle_start() first"
        w, c = self._idle
        self.idle_rate = (process_cpu_ns(self.pid) - c) / (time.perf_counter() - w)

    def finish(self) -> dict[str, float]:
        try:
            rss = process_rss_mb(actor_process(self.echo)[0])
        finally:
            ray.kill(self.echo)
            ray.kill(self.aecho)
        calls = 2 * len(self.pq_us)
        return {"floor_actor_call_us": statistics.median(self.call_us),
                "floor_push_quiesce_us": statistics.median(self.pq_us),
                "floor_async_actor_cpu_us_per_call": (self.cpu_ns - self.idle_rate * self.busy_s) / 1e3 / calls,
                "floor_actor_rss_mb": rss}


def measure_floors(samples: int) -> dict[str, float]:
    """One plain actor round trip, a round's two calls to a trivial async actor (and that actor's
    CPU per call), a bare actor's RSS."""
    probe = FloorProbe()
    probe.rounds(10)  # warm-up
    probe.reset()
    probe.rounds(samples)
    probe.idle_start()
    time.sleep(0.2)
    probe.idle_end()
    return probe.finish()


def summarise(n: int, m: dict[str, Any], rounds: int, label: str = "") -> dict[str, float]:
    """The metrics of one :func:`measure_deployment` result, named ``..._n{n}{label}``."""
    x = f"n{n}{label}"
    p50 = percentile(m["round_us"], 0.5)
    host_gross = m["host_cpu_ns"] / 1e3 / rounds
    host_net = (m["host_cpu_ns"] - m["host_idle_cpu_ns_per_s"] * m["busy_s"]) / 1e3 / rounds
    return {
        f"round_us_p50_{x}": p50,
        f"round_us_p99_{x}": percentile(m["round_us"], 0.99),
        f"cost_per_strategy_quote_us_{x}": p50 / n,
        f"host_cpu_gross_us_per_quote_{x}": host_gross,
        f"host_cpu_us_per_quote_{x}": host_net,
        f"host_cpu_us_per_strategy_quote_{x}": host_net / n,
        f"host_idle_cpu_ms_per_s_{x}": m["host_idle_cpu_ns_per_s"] / 1e6,
        f"gateway_cpu_us_per_quote_{x}": (m["gateway_cpu_ns"] - m["gateway_idle_cpu_ns_per_s"] * m["busy_s"]) / 1e3 / rounds,
        f"host_rss_mb_per_host_{x}": statistics.fmean(m["host_rss_mb"]),
        f"host_cpu_us_per_host_quote_{x}": host_net / m["hosts"],
        f"host_rss_mb_per_strategy_{x}": sum(m["host_rss_mb"]) / n,
        f"hosts_{x}": float(m["hosts"]),
        f"nodes_used_{x}": float(len(m["host_nodes"])),
    }


# ------------------------------------------------------------------------------------- the run
def run(quick: bool) -> dict[str, float]:
    """Run the scale-out benchmark; returns metric name -> number (units in the names).

    Every deployment (the four sizes and the 10-per-host variant) is started first, the
    100-instance one on an empty cluster (``start_deployment_100_strategies_s``); the rounds
    then run in blocks, the deployments and the floor probe taking turns in a rotating order,
    so that all of them see the same machine load (this machine is shared).
    """
    rounds, blocks, window_div = (60, 6, 5) if quick else (300, 10, 1)
    lo, hi = SIZES[0], SIZES[-1]
    plan = [(hi, STRATEGIES_PER_HOST, "")] + [(n, STRATEGIES_PER_HOST, "") for n in SIZES if n != hi]
    if not quick:
        plan.append((hi, FEW_PER_HOST, f"_{FEW_PER_HOST}_per_host"))
    out: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="xmc-bench-cluster-"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    ray._common.utils.reset_ray_address()  # keep other processes' ray.init() off this cluster
    running: dict[tuple[int, str], BenchDeployment] = {}
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        ray.init(address=cluster.address, namespace="bench-cluster", log_to_driver=False)
        worker_ids = {w.node_id for w in workers}
        # the 100-instance deployment starts alone (its start time is reported), the others together
        for i, (n, per_host, label) in enumerate(plan):
            running[(n, label)] = BenchDeployment(tmp, n, address=cluster.address, strategies_per_host=per_host,
                                                  window_div=window_div)
            if i == 0:
                running[(n, label)].start()
        with ThreadPoolExecutor(len(plan) - 1) as pool:
            list(pool.map(BenchDeployment.start, list(running.values())[1:]))
        BenchDeployment.warm_up(list(running.values()), MAX_WINDOW // window_div + 10)
        floor = FloorProbe()
        floor.rounds(10)  # warm-up, not counted below
        floor.reset()
        takers: list[Any] = [*running.values(), floor]
        for k in range(blocks):
            for t in takers[k % len(takers):] + takers[:k % len(takers)]:
                t.rounds(rounds // blocks)
        for t in takers:
            t.idle_start()
        time.sleep(1.0 if quick else 2.0)
        for t in takers:
            t.idle_end()
        out.update(floor.finish())
        with ThreadPoolExecutor(len(running)) as pool:  # stopping is slow (ledger flush): together
            results = dict(zip(running, pool.map(BenchDeployment.finish, running.values())))
        running.clear()
        for key, m in results.items():
            if not set(m["host_nodes"]) <= worker_ids:
                raise RuntimeError(f"n={key[0]}{key[1]}: a strategy host ran outside the two worker nodes: "
                                   f"{m['host_nodes']}")
        per = blocks * (rounds // blocks)
        for n, _, label in plan:
            out.update(summarise(n, results[(n, label)], per, label))
        out["core_eval_us_per_strategy_quote"] = measure_core(build_config(tmp, hi, namespace="core", window_div=window_div), rounds,
                                                               MAX_WINDOW // window_div + 10)
        out["host_cpu_vs_core_ratio"] = out[f"host_cpu_us_per_strategy_quote_n{hi}"] / out["core_eval_us_per_strategy_quote"]
        out[f"start_deployment_{hi}_strategies_s"] = results[(hi, "")]["start_s"]
        out["marginal_us_per_strategy"] = (out[f"round_us_p50_n{hi}"] - out[f"round_us_p50_n{lo}"]) / (hi - lo)
        out[f"round_n{lo}_vs_floor_ratio"] = out[f"round_us_p50_n{lo}"] / out["floor_push_quiesce_us"]
        out[f"round_n{hi}_vs_n{lo}_ratio"] = out[f"round_us_p50_n{hi}"] / out[f"round_us_p50_n{lo}"]
        out["rounds_per_n"] = float(per)
    finally:
        for b in running.values():  # only after a failure
            try:
                _stop(b.dep)
            except Exception:  # noqa: BLE001 - the cluster goes away next anyway
                pass
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return out
