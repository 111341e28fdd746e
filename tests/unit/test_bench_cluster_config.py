"""The scale-out benchmark's premise, checked without Ray: its configuration is N z-score
instances on one pair whose quotes reach the full z-score path (windows filled) and never
trigger, so the benchmark measures quote evaluation (bench/cluster.py)."""
from __future__ import annotations

from xmc_actors.bench import cluster as bench
from xmc_actors.core.clock import SystemClock
from xmc_actors.feeds.fx import fx_book_from_config
from xmc_actors.core.sink import EventMaker
from xmc_actors.strategies.base import build_strategy
from xmc_actors.strategies.host import StrategyHostCore


def test_bench_config_has_n_zscore_instances_on_one_pair_with_fifty_yaml_variants(tmp_path):
    # Arrange / Act
    cfg = bench.build_config(tmp_path, 7, namespace="bench-cfg")
    # Assert
    assert len(cfg.strategies) == 7
    assert {s.class_ for s in cfg.strategies} == {"zscore"}
    assert {tuple(leg.instrument for leg in s.legs) for s in cfg.strategies} == {("SHFE.cu", "LME.CA3M")}
    windows = [s.params["window"] for s in cfg.strategies]
    assert windows[:5] == [v[0] for v in bench.VARIANTS] and max(windows) == bench.MAX_WINDOW
    assert cfg.ray.strategy_cpus == bench.HOST_CPUS > 0


def test_quick_mode_config_divides_the_windows_and_keeps_them_valid(tmp_path):
    # Act
    cfg = bench.build_config(tmp_path, 5, namespace="bench-quick", window_div=5)
    # Assert
    assert [s.params["window"] for s in cfg.strategies] == [v[0] // 5 for v in bench.VARIANTS]


def test_bench_quotes_after_warmup_run_full_zscore_in_every_instance_and_never_trigger(tmp_path):
    # Arrange: the instances the runtime would build from the bench's configuration
    cfg = bench.build_config(tmp_path, 5, namespace="bench-core")
    fx = fx_book_from_config(cfg.fx, max_lag_days=7)
    clock = SystemClock()
    core = StrategyHostCore([build_strategy(s, cfg, fx, actor=s.name) for s in cfg.strategies],
                            EventMaker(clock, "test"))
    core.on_quotes([bench.quote("LME.CA3M", bench.BOOK_B)], clock.now_ns())
    for i in range(bench.MAX_WINDOW + 10):
        core.on_quotes([bench.quote("SHFE.cu", bench.BOOKS_A[i % 2])], clock.now_ns())
    before = {n: st["counters"]["evaluations"] for n, st in core.status().items()}
    # Act
    intents = []
    for i in range(20):
        got = core.on_quotes([bench.quote("SHFE.cu", bench.BOOKS_A[i % 2])], clock.now_ns())
        intents += got
    # Assert
    status = core.status()
    assert intents == []
    assert {n: st["counters"]["evaluations"] - before[n] for n, st in status.items()} == {n: 20 for n in status}
    assert {st["last_signal"]["reason"] for st in status.values()} == {"hold"}  # windows full, z computed
    assert all(abs(st["last_signal"]["z_sell"]) < bench.UNREACHABLE_Z for st in status.values())
