"""What a run did (:class:`RunSummary`), and the ledger reads behind it.

Split out of :mod:`xmc_actors.runtime.deploy` (which re-exports every name here): the summary
``xmc run`` prints, the figures it takes from the ledger (:func:`run_figures`, the same function
as the HTML report's) and the per-strategy last decision a resumed run continues from.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class RunSummary:
    """What a run did, for the console and for tests.

    The pairs' figures come from the ledger through :func:`~xmc_actors.ledger.figures.ledger_figures`
    for the run's own range (``since_ns``, the wall time it started), the function the HTML report
    uses: ``figure_rows`` are the report's "Figures" rows, label for label. ``rolled_back`` counts
    the pairs that unwound a filled leg (回滚), whatever they ended as; pairs that *ended*
    ROLLED_BACK are in ``pairs_by_outcome``."""

    name: str
    wall_s: float
    pairs_by_outcome: dict[str, int]
    quotes: int
    intents: int
    alerts_by_level: dict[str, int]
    slippage_bps: dict[str, float]
    exposure_ms: dict[str, float]
    replenished: int
    rolled_back: int
    escalated: int
    strategy_errors: int
    ledger_path: str
    report_path: str = ""
    examples: dict[str, str] = dataclasses.field(default_factory=dict)
    per_strategy: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    faults: list[str] = dataclasses.field(default_factory=list)  # actors that died or stayed away, and what came of it
    interrupted: bool = False  # stopped early (Ctrl-C, stop_event) rather than at its end
    halted: dict[str, str] = dataclasses.field(default_factory=dict)  # strategy -> why, for those not ACTIVE at the end
    since_ns: int | None = None  # the run's range in the ledger starts here (wall clock)
    figure_rows: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (label, text), as the report's
    market_span: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)  # replayed strategies
    # per replayed file: gateway, path, rows read, kept, skipped (by reason, first lines), adjusted
    feed_reports: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def nothing_evaluated(self) -> str:
        """Why the run is suspect when no strategy evaluated a quote ("" otherwise)."""
        if self.quotes or self.interrupted or not self.per_strategy:
            return ""
        if self.feed_reports:
            kept = sum(int(r.get("kept", 0)) for r in self.feed_reports)
            skipped = sum(int(r.get("skipped", 0)) for r in self.feed_reports)
            return (f"no strategy evaluated a quote: the replayed files kept {kept:,} rows and skipped {skipped:,} "
                    "(see 'replayed files' above; `xmc validate` names each bad cell by its line)")
        return "no strategy evaluated a quote (no market data reached them; is the feed running?)"

    def apply_figures(self, fig: Any) -> None:
        """Take every shared figure from ``fig`` (a :class:`~xmc_actors.ledger.figures.RunFigures`)."""
        self.pairs_by_outcome = dict(fig.pairs_by_outcome)
        self.replenished, self.rolled_back, self.escalated = fig.replenished, fig.unwound, fig.escalated
        self.slippage_bps, self.exposure_ms = fig.slippage_bps.summary(), fig.unhedged_ms.summary()
        self.alerts_by_level = dict(fig.alerts_by_level)
        self.examples = dict(fig.examples)
        self.market_span = dict(fig.market_span)
        self.figure_rows = fig.rows()

    def lines(self) -> list[str]:
        from ..ledger.figures import pad

        how = "was interrupted after" if self.interrupted else "finished in"
        out = [f"run {self.name!r} {how} {self.wall_s:.1f} s"]
        out.append(f"  {pad('strategy evaluations (quotes)', 40)}{self.quotes:,}")
        out.append(f"  {pad('pair intents', 40)}{self.intents:,}")
        out += [f"  {pad(label, 40)}{text}" for label, text in self.figure_rows]
        if self.feed_reports:
            rows = sum(int(r.get("rows", 0)) for r in self.feed_reports)
            skipped = sum(int(r.get("skipped", 0)) for r in self.feed_reports)
            out.append(f"  {pad('replayed files: rows read, skipped', 40)}{rows:,} read, {skipped:,} skipped")
            for r in self.feed_reports:
                if r.get("skipped") or not r.get("kept"):
                    reasons = ", ".join(f"{n} x {k}" for k, n in sorted((r.get("skipped_by_reason") or {}).items()))
                    out.append(f"    {r.get('gateway', '')}: {r.get('path')}: {r.get('rows', 0):,} rows, "
                               f"{r.get('kept', 0):,} kept, {r.get('skipped', 0):,} skipped"
                               + (f" ({reasons})" if reasons else ""))
                    for ex in (r.get("first_skipped") or [])[:3]:
                        out.append(f"      e.g. {ex}")
        if self.nothing_evaluated:
            out.append(f"  WARNING: {self.nothing_evaluated}")
        if self.strategy_errors:
            out.append(f"  {pad('strategy errors (isolated)', 40)}{self.strategy_errors}")
        for name, why in sorted(self.halted.items()):
            out.append(f"  strategy {name} ended {why}")
        if self.faults:
            out.append(f"  {pad('actor faults', 40)}{len(self.faults)}")
            for f in self.faults[:20]:
                out.append(f"    {f}")
        for label, did in self.examples.items():
            out.append(f"  e.g. {label:<35}xmc audit trace {did} --ledger {self.ledger_path}")
        out.append(f"  {pad('ledger', 40)}{self.ledger_path}")
        if self.report_path:
            out.append(f"  {pad('HTML report', 40)}{self.report_path}")
        return out


def last_decision_seqs(ledger_path: str | Path) -> dict[str, int]:
    """Per strategy, the sequence number of its last decision in the ledger at ``ledger_path``
    (decision ids are ``{strategy}-{seq:08d}``); empty when there is no ledger there yet."""
    from ..ledger.audit import AuditReader
    from ..strategies.base import decision_seq_of

    root = Path(ledger_path)
    if not root.is_dir() or not any(root.glob("*.duckdb")):
        return {}
    with AuditReader(root) as r:
        rows = r.con.execute("SELECT strategy, max(decision_id) FROM events WHERE kind IN ('INTENT', 'SHADOW') "
                             "AND strategy != '' GROUP BY strategy").fetchall()  # a shadow's decisions too
    out: dict[str, int] = {}
    for strategy, did in rows:
        seq = decision_seq_of(str(strategy), str(did))
        if seq is not None:
            out[str(strategy)] = seq
    return out


TERMINAL_STATES = ("HEDGED", "ROLLED_BACK", "ESCALATED", "REFUSED")


def run_figures(ledger_dir: str | Path, since_ns: int | None = None, until_ns: int | None = None) -> Any:
    """:func:`~xmc_actors.ledger.figures.ledger_figures` of the ledger at ``ledger_dir``: what the
    run summary and the report show for the same range."""
    from ..ledger.audit import AuditReader
    from ..ledger.figures import ledger_figures

    with AuditReader(ledger_dir) as r:
        return ledger_figures(r, since_ns, until_ns)


def ledger_pair_counts(ledger_dir: str | Path) -> dict[str, Any]:
    """What the ledger's pairs came to (the whole ledger), as :func:`run_figures` counts them:
    pairs by outcome (``OPEN``: a pair whose last state is not terminal), how many replenished
    (补单), unwound a filled leg (回滚, ``rolled_back``) or ended escalated, the open pairs and
    one decision id of each kind, to trace."""
    fig = run_figures(ledger_dir)
    return {"pairs_by_outcome": dict(fig.pairs_by_outcome), "replenished": fig.replenished,
            "rolled_back": fig.unwound, "escalated": fig.escalated, "non_terminal": list(fig.open_pairs),
            "examples": dict(fig.examples)}


__all__ = ["RunSummary", "TERMINAL_STATES", "last_decision_seqs", "ledger_pair_counts", "run_figures"]
