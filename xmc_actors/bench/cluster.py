"""Scale-out benchmark: many strategy actors spread over two simulated nodes.

A ``ray.cluster_utils.Cluster`` (head + two worker nodes, one process tree on this machine)
runs N stand-in strategy actors placed with ``runtime.placement.strategy_placement``
(SPREAD). The driver plays the gateway: it pushes conflated quote batches to every strategy,
fire-and-forget, and then waits for all of them to have processed the batch (one round =
one quote update fanned out to N strategies). Reported for N in 1, 10, 50, 100:

- ``standin_fanout_round_us_n{N}``: wall time of one round (quote → all N strategies done);
- ``standin_cost_per_strategy_quote_us_n{N}``: that divided by N (how the per-quote cost
  grows with the number of strategies);
- ``standin_cpu_us_per_quote_n{N}``: CPU the strategy processes spent per quote (from the
  actors' own CPU clocks), and ``standin_rss_mb_per_actor_n{N}`` (resident memory per
  strategy actor process);
- ``floor_actor_call_us``: one plain actor round trip on the same cluster, the floor a round
  cannot beat.

The strategy is a *stand-in* (``standin_`` in every name): it computes an executable spread
(对价: buy at the ask, sell at the bid) over a conflated batch and records metrics through
``ops.metrics.Metrics``, as a real strategy would; it does not run the strategy engineer's
``StrategyHost``.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Any

import ray
from ray.cluster_utils import Cluster

from ..ops.metrics import Metrics
from ..runtime.placement import strategy_placement, wait_ready


@ray.remote(num_cpus=0)
class StandInStrategy:
    """Keeps the latest quote per instrument and checks a spread band on every batch."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latest: dict[str, tuple[float, float]] = {}
        self.triggers = 0
        self.quotes = 0
        self.metrics = Metrics("strategy", {"strategy": name}, flush_interval_s=1.0, to_ray=False)

    def ready(self) -> dict:
        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def on_quotes(self, batch: list[tuple[str, float, float]]) -> int:
        for inst, bid, ask in batch:
            self.latest[inst] = (bid, ask)
            self.quotes += 1
            self.metrics.count("quotes", 1, instrument=inst)
        a, b = self.latest.get("SHFE.cu"), self.latest.get("LME.CA")
        if a and b:
            spread = a[0] / 7.2 - b[1] * 1.0  # sell domestic at its bid, buy foreign at its ask
            if spread > 150.0:
                self.triggers += 1
                self.metrics.count("triggers", 1)
        return self.quotes

    def usage(self) -> dict:
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF)
        return {"cpu_s": ru.ru_utime + ru.ru_stime, "rss_mb": _rss_mb(), "quotes": self.quotes}


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


@ray.remote(num_cpus=0)
class Echo:
    def ping(self) -> int:
        return 1


def _batch(i: int) -> list[tuple[str, float, float]]:
    return [("SHFE.cu", 72000.0 + i % 7, 72010.0 + i % 7), ("LME.CA", 9850.0 + i % 3, 9851.0 + i % 3)]


def _measure(strategies: list[Any], rounds: int) -> tuple[float, float, float]:
    before = ray.get([s.usage.remote() for s in strategies])
    samples = []
    for i in range(rounds):
        t0 = time.perf_counter()
        ray.get([s.on_quotes.remote(_batch(i)) for s in strategies])
        samples.append(time.perf_counter() - t0)
    after = ray.get([s.usage.remote() for s in strategies])
    cpu = sum(a["cpu_s"] - b["cpu_s"] for a, b in zip(after, before))
    quotes = sum(a["quotes"] - b["quotes"] for a, b in zip(after, before))
    rss = statistics.fmean(a["rss_mb"] for a in after)
    return statistics.median(samples), cpu / max(quotes, 1), rss


def run(quick: bool) -> dict[str, float]:
    sizes = (1, 10, 50, 100)
    rounds = 30 if quick else 200
    out: dict[str, float] = {}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    ray._common.utils.reset_ray_address()  # keep other processes' ray.init() off this cluster
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, namespace="bench-cluster", log_to_driver=False)
        echo = Echo.remote()
        ray.get(echo.ping.remote())
        floor = []
        for _ in range(200 if not quick else 50):
            t0 = time.perf_counter()
            ray.get(echo.ping.remote())
            floor.append(time.perf_counter() - t0)
        out["floor_actor_call_us"] = statistics.median(floor) * 1e6

        placement = strategy_placement()  # SPREAD over the three nodes
        strategies: list[Any] = []
        t_start = time.perf_counter()
        for n in sizes:
            while len(strategies) < n:
                strategies.append(StandInStrategy.options(**placement.options).remote(f"s{len(strategies)}"))
            answers = wait_ready({f"s{i}": s for i, s in enumerate(strategies)}, 300)
            if n == sizes[-1]:
                out["standin_start_100_actors_s"] = time.perf_counter() - t_start
                out["standin_nodes_used"] = float(len({a["node_id"] for a in answers.values()}))
            round_s, cpu_per_quote, rss = _measure(strategies, rounds)
            out[f"standin_fanout_round_us_n{n}"] = round_s * 1e6
            out[f"standin_cost_per_strategy_quote_us_n{n}"] = round_s * 1e6 / n
            out[f"standin_cpu_us_per_quote_n{n}"] = cpu_per_quote * 1e6
            out[f"standin_rss_mb_per_actor_n{n}"] = rss
        out["standin_round_n100_vs_n1_ratio"] = out["standin_fanout_round_us_n100"] / out["standin_fanout_round_us_n1"]
        out["standin_round_n1_vs_floor_ratio"] = out["standin_fanout_round_us_n1"] / out["floor_actor_call_us"]
    finally:
        ray.shutdown()
        cluster.shutdown()
    return out
