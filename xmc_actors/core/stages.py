"""The rollout stages' pure logic: which stage comes next, whether a gate passes, and what a
shadow order would have got from the book (灰度发布: shadow, canary, live).

Nothing here knows of Ray or the ledger. A gate is checked against a mapping of figures
(:class:`xmc_actors.ledger.stage_figures.StageFigures.gate_values`); the answer names every
bound, its figure and whether it held, so a refusal says why in numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Sequence

from ..model.market import Side
from ..model.quotes import Quote
from ..model.stages import STAGES, AcceptanceTargets, GateConfig


def check_stage(stage: str, field_name: str = "stage") -> str:
    """``stage`` if it is one of :data:`STAGES`, else ``ValueError`` naming the field."""
    s = str(stage).strip().lower()
    if s not in STAGES:
        raise ValueError(f"{field_name}: {stage!r} is not a stage (one of {', '.join(STAGES)})")
    return s


def rank(stage: str) -> int:
    return STAGES.index(check_stage(stage))


def next_stage(stage: str) -> str | None:
    """The stage a promotion leads to (None from live)."""
    i = rank(stage)
    return STAGES[i + 1] if i + 1 < len(STAGES) else None


def previous_stage(stage: str) -> str | None:
    """The stage a demotion leads to by default (None from shadow)."""
    i = rank(stage)
    return STAGES[i - 1] if i > 0 else None


# ------------------------------------------------------------------------------------ gates
#: bound name -> (figure it reads, "min" or "max", what a reader calls it)
BOUNDS: dict[str, tuple[str, str, str]] = {
    "min_pairs": ("pairs", "min", "pairs"),
    "min_success_rate": ("success_rate", "min", "success rate"),
    "min_sync_fill_rate": ("sync_fill_rate", "min", "synchronous fill rate"),
    "max_slippage_p95_bps": ("slippage_p95_bps", "max", "slippage p95 (bps)"),
    "max_reject_ratio": ("reject_ratio", "max", "reject ratio"),
    "max_escalations": ("escalations", "max", "escalations"),
    "max_unhedged_p95_ms": ("unhedged_p95_ms", "max", "unhedged exposure p95 (ms)"),
}


@dataclass(frozen=True)
class Check:
    """One bound of a gate against its figure."""

    bound: str
    figure: str
    limit: float
    value: float | None
    met: bool
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"bound": self.bound, "figure": self.figure, "limit": self.limit, "value": self.value,
                "met": self.met, "text": self.text}


@dataclass(frozen=True)
class GateDecision:
    """A gate's answer: ``passed`` only if every bound held; ``checks`` each bound's figures."""

    passed: bool
    checks: tuple[Check, ...] = ()
    gate: str = ""
    note: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.met]

    def reason(self) -> str:
        """One line: what failed with the numbers, or that everything held."""
        if self.note and not self.checks:
            return self.note
        if self.passed:
            return "gate passed: " + "; ".join(c.text for c in self.checks) if self.checks else "gate passed"
        return "gate refused: " + "; ".join(c.text for c in self.failed)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "gate": self.gate, "note": self.note, "reason": self.reason(),
                "checks": [c.as_dict() for c in self.checks], "figures": dict(self.figures)}


def _fmt(x: float | None) -> str:
    if x is None:
        return "not measured"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:.4g}"


def evaluate_gate(gate: GateConfig | AcceptanceTargets | None, figures: Mapping[str, Any], *,
                  name: str = "", breach: bool = False) -> GateDecision:
    """Check every bound ``gate`` sets against ``figures`` (figure name -> number or None).

    A figure that is None (not measured in that stage, or no pairs to measure it on) fails its
    bound: a gate cannot be passed on figures nobody measured. No gate at all passes, saying so.
    ``breach`` asks the other way round, whether a strategy already in the stage breached its
    gate: ``min_pairs`` is left out and an unmeasured figure is no breach (too few pairs in the
    window is not a breach).
    """
    if gate is None:
        return GateDecision(True, (), name, "no gate configured: the operator's word", dict(figures))
    checks: list[Check] = []
    for bound, (fig, kind, label) in BOUNDS.items():
        limit = getattr(gate, bound, None)
        if limit is None or (breach and bound == "min_pairs"):
            continue
        value = figures.get(fig)
        value = None if value is None else float(value)
        if value is None:
            met = breach
        else:
            met = value >= float(limit) if kind == "min" else value <= float(limit)
        op = ">=" if kind == "min" else "<="
        checks.append(Check(bound, fig, float(limit), value, met,
                            f"{label} {_fmt(value)} {'meets' if met else 'misses'} {op} {_fmt(float(limit))}"))
    return GateDecision(all(c.met for c in checks), tuple(checks), name, "", dict(figures))


# ------------------------------------------------------------------------------- the file
def reference_problems(cfg: Any) -> list[tuple[list[Any], str]]:
    """What a deployment's stage, acceptance and stress settings name that it does not have:
    ``(path, message)`` for :func:`xmc_actors.runtime.config.load_config` to report."""
    from ..model.stages import twin_name

    out: list[tuple[list[Any], str]] = []
    names = {s.name for s in cfg.strategies}
    venues = {v.code for v in cfg.venues}
    instruments = {i.id: i for i in cfg.instruments}
    for n, s in enumerate(cfg.strategies):
        if s.canary.shadow_twin:
            tw = twin_name(s.name)
            if tw in names:
                out.append((["strategies", n, "canary", "shadow_twin"],
                            f"the twin's name {tw!r} is another strategy's: rename one"))
            if len(tw) > 64:
                out.append((["strategies", n, "canary", "shadow_twin"],
                            f"the twin's name {tw!r} is longer than 64 characters: shorten the strategy's name"))
    for name in cfg.acceptance.strategies:
        if name not in names:
            out.append((["acceptance", "strategies", name],
                        f"unknown strategy {name!r} (the file's strategies: {', '.join(sorted(names)) or 'none'})"))
    for n, sc in enumerate(cfg.stress.scenarios):
        if sc.venue is not None and sc.venue not in venues:
            out.append((["stress", "scenarios", n, "venue"],
                        f"unknown venue {sc.venue!r} (the file's venues: {', '.join(sorted(venues))})"))
        if sc.instrument is not None:
            inst = instruments.get(sc.instrument)
            if inst is None:
                out.append((["stress", "scenarios", n, "instrument"], f"unknown instrument {sc.instrument!r}"))
            elif sc.venue is not None and inst.venue != sc.venue:
                out.append((["stress", "scenarios", n, "instrument"],
                            f"{sc.instrument} is not on venue {sc.venue!r}"))
    return out


# ------------------------------------------------------------------------------- shadow prices
@dataclass(frozen=True)
class BookPrice:
    """What the visible book offered an order of ``qty`` lots at ``limit``: ``filled`` lots at
    ``avg_price`` (None when nothing), levels taken; ``short`` lots the book could not give."""

    qty: int
    filled: int
    avg_price: Decimal | None
    levels: int

    @property
    def short(self) -> int:
        return self.qty - self.filled

    @property
    def full(self) -> bool:
        return self.filled >= self.qty


def price_against_book(quote: Quote | None, side: Side, qty: int, limit: Decimal | None = None) -> BookPrice:
    """Walk the visible levels of ``quote`` (depth if it has it, else the top of book) on the
    side a ``side`` order takes, best first, at prices no worse than ``limit`` (when given)."""
    if quote is None or qty <= 0:
        return BookPrice(max(qty, 0), 0, None, 0)
    if side is Side.BUY:
        levels: Sequence[tuple[Decimal, int]] = ([(lv.price, lv.size) for lv in quote.asks] if quote.asks
                                                  else ([(quote.ask, quote.ask_size)] if quote.ask is not None else []))
        ok = (lambda p: limit is None or p <= limit)
    else:
        levels = ([(lv.price, lv.size) for lv in quote.bids] if quote.bids
                  else ([(quote.bid, quote.bid_size)] if quote.bid is not None else []))
        ok = (lambda p: limit is None or p >= limit)
    left, notional, taken = qty, Decimal(0), 0
    for price, size in levels:
        if left <= 0 or not ok(price) or size <= 0:
            if not ok(price):
                break
            continue
        n = min(left, int(size))
        notional += price * n
        left -= n
        taken += 1
    filled = qty - left
    return BookPrice(qty, filled, (notional / filled) if filled else None, taken)


def slippage_bps(side: Side, price: Decimal | None, trigger: Decimal | None) -> float | None:
    """Adverse slippage of ``price`` against ``trigger`` in bps (+ is worse), as the ledger's."""
    if price is None or not trigger:
        return None
    return float((price - trigger) / trigger) * 10_000 * (1 if side is Side.BUY else -1)


__all__ = ["BOUNDS", "BookPrice", "Check", "GateDecision", "check_stage", "evaluate_gate", "next_stage",
           "previous_stage", "price_against_book", "rank", "reference_problems", "slippage_bps"]
