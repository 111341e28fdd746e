"""Several policies over one scenario and one seed: ``xmc backtest`` and ``scripts/bench execution``.

The market is loaded once (:func:`~xmc_actors.lab.engine.load_market`) and every policy plays
the same quotes with the same seed. Each policy's run writes its own ledger
(``<ledger>/<policy>/shard-0.duckdb``, what ``xmc audit --ledger <ledger>/<policy>`` reads).
The result is plain data: the same configuration and seed give the same JSON, byte for byte
(:func:`to_json`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..model.config import DeploymentConfig
from ..model.events import EventKind
from .engine import LabRun, load_market
from .figures import compare, run_figures

#: written into every ledger directory a backtest creates: only such a directory is replaced by
#: the next run (never a live deployment's ledger)
MARKER = ".xmc-lab"


def write_ledger(run: LabRun, path: Path, *, policy: str, seed: int, loads: Sequence[dict[str, Any]] = ()) -> int:
    """The run's events as a ledger at ``path`` (a directory of one shard); returns the count.
    First a LIFECYCLE event naming the backtest (policy, seed, the lab settings) and one per
    data file loaded (rows read, kept, skipped by reason), as a live replay's gateways write."""
    from ..core.sink import EventMaker
    from ..ledger.store import LedgerStore

    prepare_dir(path)
    maker = EventMaker(run.clock, "lab")
    t0 = run.first_ns or 0
    head = [maker.make(EventKind.LIFECYCLE, ts_ns=t0, reason=f"backtest {run.cfg.name}: policy {policy}, seed {seed}",
                       policy=policy, seed=seed, lab=run.cfg.lab.model_dump(mode="json"))]
    head += [maker.make(EventKind.LIFECYCLE, ts_ns=t0, reason=f"loaded {ld['path']}: {ld['kept']} of {ld['rows']} rows "
                        f"kept, {ld['skipped']} skipped", load=dict(ld)) for ld in loads]
    events = [*head, *run.sink.events]
    store = LedgerStore(path / "shard-0.duckdb", actor="lab")
    try:
        for i in range(0, len(events), 50_000):
            store.append_events(events[i:i + 50_000], stored_ns=time.time_ns())
        store.checkpoint()
    finally:
        store.close()
    return len(events)


def prepare_dir(path: Path) -> None:
    """Create ``path`` for a backtest ledger; an earlier backtest's is replaced, anything else refused."""
    if path.exists():
        if not (path / MARKER).exists() and any(path.iterdir()):
            raise FileExistsError(f"{path}: exists and was not written by xmc backtest; choose another --ledger "
                                  f"(a backtest never writes over another ledger)")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("written by xmc backtest; the next backtest to this path replaces it\n")


def backtest(cfg: DeploymentConfig, policies: Sequence[str], *, seed: int = 0, start_ns: int | None = None,
             end_ns: int | None = None, ledger_root: Path | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Run each policy on the same market and seed; returns the comparison as plain data."""
    with _quiet_logs():
        return _backtest(cfg, policies, seed=seed, start_ns=start_ns, end_ns=end_ns, ledger_root=ledger_root,
                         progress=progress)


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The cores log each alert and state change as a live deployment would; thousands of
    simulated ones would bury the comparison (they are all in the ledger)."""
    lg = logging.getLogger("xmc")
    level = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        lg.setLevel(level)


def _backtest(cfg: DeploymentConfig, policies: Sequence[str], *, seed: int, start_ns: int | None,
              end_ns: int | None, ledger_root: Path | None,
              progress: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    market, reports = load_market(cfg, start_ns=start_ns, end_ns=end_ns)
    loads = [rep.as_dict() for rep in reports if hasattr(rep, "as_dict")]
    results: dict[str, Any] = {}
    ledgers: dict[str, str] = {}
    for policy in policies:
        run = LabRun(cfg, policy=policy, seed=seed, start_ns=start_ns, end_ns=end_ns, quotes=market)
        cb = (lambda n, t, p=policy: progress(p, n, len(market))) if progress is not None else None
        run.run(progress=cb)
        results[policy] = run_figures(run)
        results[policy]["counters"] = dict(sorted(run.counters.items()))
        if ledger_root is not None:
            write_ledger(run, ledger_root / policy, policy=policy, seed=seed, loads=loads)
            ledgers[policy] = str(ledger_root / policy)
    skipped: dict[str, int] = {}
    for rep in reports:
        for reason, n in (rep.by_reason() if hasattr(rep, "by_reason") else {}).items():
            skipped[reason] = skipped.get(reason, 0) + n
    bridged = sum(1 for _, _, q in market if getattr(q, "synthetic", False))
    synthetic = bridged > 0 or any(g.feed.kind == "synthetic" for g in cfg.gateways)
    out = {
        "scenario": cfg.name,
        "seed": seed,
        "from_ns": market[0][0] if market else None,
        "to_ns": market[-1][0] if market else None,
        "quotes": len(market),
        "synthetic_data": synthetic,
        "synthetic_quotes_bridged": bridged,
        "skipped_rows": dict(sorted(skipped.items())),
        "loads": loads,
        "policies": results,
        "ratios": compare(results) if "sequential" in results else {},
    }
    out["ledgers"] = ledgers
    return out


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def to_json(result: dict[str, Any]) -> str:
    """The comparison as JSON: sorted keys, no NaN; the ledger paths left out (they name where it
    was written, not what it found), so two runs of one configuration and seed are identical."""
    body = {k: v for k, v in result.items() if k != "ledgers"}
    return json.dumps(_clean(body), sort_keys=True, indent=1) + "\n"
