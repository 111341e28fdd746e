"""Batch orders across accounts (the operator API's ``POST /v1/batches``): one instruction ("buy
300 t of a configured pair's leg A for accounts A, B, C by capital share") split into one pair
per account, each a :class:`~xmc_actors.model.pairs.PairIntent` the coordinator executes with
the usual risk checks.

**The allocation rule** (:func:`allocate`): the total in leg-A lots is split in whole multiples
of leg A's lot size in proportion to the accounts' weights (capital share: each leg-A account's
equity as the risk guard reports it, all in one currency; ``equal``; or explicit ``weights``) by
the largest-remainder method: each account first gets the whole steps of its exact share, then
the steps left over go one each to the largest remainders (ties: the account listed first). The
parts always add up to the total; an account whose part is zero gets no pair.

Each account's leg B is sized from its leg A with the strategy's hedge ratio (``size_pair``:
whole lots nearest to ``qty_a × ratio``), priced at the executable side of the latest quote
(对价: a buy at the ask, a sell at the bid) and executed in the strategy's execution mode.
Decision ids are ``batch-<instruction id>-<n>``: the coordinator's own idempotency makes a
repeated instruction a duplicate of the first, never a second order.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Sequence

from ..model.market import Instrument, Side
from ..model.pairs import ExecutionMode, LegIntent, PairIntent
from .operator_api import ApiError
from .pricing import size_pair

BATCH_STRATEGY = "batch"  # the strategy name batch pairs carry (outcomes are read back, not pushed)
MS = 1_000_000


def allocate(total: int, weights: Sequence[tuple[str, Decimal]], step: int = 1) -> dict[str, int]:
    """Split ``total`` (a multiple of ``step``) over the named weights, largest remainder first."""
    if total <= 0 or total % step:
        raise ApiError(422, f"quantity: {total} lots is not a positive multiple of the lot size {step}", "quantity")
    if not weights:
        raise ApiError(422, "accounts: at least one account", "accounts")
    if any(w < 0 for _, w in weights):
        raise ApiError(422, "weights: must not be negative", "weights")
    tot_w = sum((w for _, w in weights), Decimal(0))
    if tot_w <= 0:
        raise ApiError(422, "weights: all zero: nothing to split by", "weights")
    steps = total // step
    exact = [(name, Decimal(steps) * w / tot_w) for name, w in weights]
    base = {name: int(x) for name, x in exact}
    left = steps - sum(base.values())
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i][1] - int(exact[i][1])), i))
    for i in order[:left]:
        base[exact[i][0]] += 1
    return {name: n * step for name, n in base.items()}


def lots_of(quantity: Decimal, unit: str, inst: Instrument) -> int:
    """``quantity`` in ``unit`` (``lots``, or the instrument's price unit) as whole lots."""
    if unit == "lots":
        lots = quantity
    elif unit == inst.price_unit:
        lots = quantity / Decimal(str(inst.multiplier))
    else:
        raise ApiError(422, f"unit: {unit!r}: give lots or {inst.id}'s unit {inst.price_unit!r}", "unit")
    if lots != lots.to_integral_value() or lots <= 0:
        raise ApiError(422, f"quantity: {quantity} {unit} is not a whole, positive number of {inst.id} lots "
                            f"({inst.multiplier} {inst.price_unit} a lot)", "quantity")
    return int(lots)


@dataclass(frozen=True)
class AccountPair:
    a: str
    b: str


@dataclass(frozen=True)
class BatchPlan:
    instruction_id: str
    strategy: str
    side_a: str
    total_lots_a: int
    rule: str
    parts: list[dict[str, Any]]  # per account: a, b, weight, lots_a, lots_b, decision_id
    intents: list[PairIntent]

    def public(self) -> dict[str, Any]:
        return {"instruction_id": self.instruction_id, "strategy": self.strategy, "side_a": self.side_a,
                "total_lots_a": self.total_lots_a, "rule": self.rule, "parts": self.parts}


def weights_for(rule: str, pairs: Sequence[AccountPair], occupancy: Mapping[str, Mapping[str, Any]],
                explicit: Mapping[str, Any] | None) -> list[tuple[str, Decimal]]:
    if rule == "equal":
        return [(p.a, Decimal(1)) for p in pairs]
    if rule == "weights":
        if not explicit:
            raise ApiError(422, "weights: the rule 'weights' needs {account: weight}", "weights")
        out = []
        for p in pairs:
            if p.a not in explicit:
                raise ApiError(422, f"weights: no weight for account {p.a!r}", "weights")
            try:
                out.append((p.a, Decimal(str(explicit[p.a]))))
            except InvalidOperation:
                raise ApiError(422, f"weights.{p.a}: not a number", "weights") from None
        return out
    # capital share: the leg-A accounts' equity, as the risk guard reports it
    ccys = {str((occupancy.get(p.a) or {}).get("currency")) for p in pairs}
    if len(ccys) != 1:
        raise ApiError(422, f"allocation: capital share needs the leg-A accounts in one currency (they are in "
                            f"{', '.join(sorted(ccys))}); give allocation 'weights'", "allocation")
    out = []
    for p in pairs:
        o = occupancy.get(p.a)
        if o is None:
            raise ApiError(503, f"the risk guard reports no capital for account {p.a!r}", "accounts")
        out.append((p.a, Decimal(str(o.get("equity")))))
    return out


def plan_batch(*, instruction_id: str, strategy: Any, inst_a: Instrument, inst_b: Instrument, side_a: Side,
               quantity: Decimal, unit: str, pairs: Sequence[AccountPair], rule: str,
               weights: Mapping[str, Any] | None, occupancy: Mapping[str, Mapping[str, Any]],
               hedge_ratio: Decimal, quotes: Mapping[str, Mapping[str, Any]], now_ns: int) -> BatchPlan:
    """The per-account pairs of one instruction (ApiError naming the field otherwise)."""
    if len({p.a for p in pairs}) != len(pairs):
        raise ApiError(422, "accounts: an account is listed twice", "accounts")
    total = lots_of(quantity, unit, inst_a)
    split = allocate(total, weights_for(rule, pairs, occupancy, weights), inst_a.lot_size)
    px: dict[str, Decimal] = {}
    for inst, side in ((inst_a, side_a), (inst_b, side_a.opposite)):
        q = quotes.get(inst.id) or {}
        raw = q.get("ask") if side is Side.BUY else q.get("bid")
        if raw in (None, "") or q.get("status") not in (None, "OK"):
            raise ApiError(409, f"no executable {'ask' if side is Side.BUY else 'bid'} for {inst.id} now "
                                f"(quote {q.get('status') or 'missing'}): nothing sent", "quotes")
        px[inst.id] = inst.round_price(Decimal(str(raw)), "down" if side is Side.BUY else "up")
    ex = strategy.execution
    parts, intents = [], []
    n = 0
    for p in pairs:
        qa = split[p.a]
        part: dict[str, Any] = {"a": p.a, "b": p.b, "lots_a": qa, "lots_b": 0, "decision_id": None}
        if qa:
            try:
                qb = size_pair(qa, hedge_ratio, inst_a, inst_b).qty_b
            except ValueError as e:
                raise ApiError(422, f"accounts.{p.a}: {e}", "quantity") from None
            n += 1
            did = f"batch-{instruction_id}-{n}"
            legs = (LegIntent(leg="A", instrument=inst_a.id, account=p.a, side=side_a, qty=qa,
                              limit_price=px[inst_a.id], trigger_price=px[inst_a.id]),
                    LegIntent(leg="B", instrument=inst_b.id, account=p.b, side=side_a.opposite, qty=qb,
                              limit_price=px[inst_b.id], trigger_price=px[inst_b.id]))
            intents.append(PairIntent(decision_id=did, strategy=BATCH_STRATEGY, legs=legs, hedge_ratio=hedge_ratio,
                                      mode=ExecutionMode(ex.mode), deadline_ns=now_ns + ex.deadline_ms * MS,
                                      start_by_ns=ex.start_by_ns(now_ns),
                                      replenish=ex.replenish, rollback=ex.rollback,
                                      max_slippage_bps=ex.max_slippage_bps, created_ns=now_ns))
            part.update(lots_b=qb, decision_id=did)
        parts.append(part)
    return BatchPlan(instruction_id, strategy.name, side_a.value, total, rule, parts, intents)


def batch_report(plan: Mapping[str, Any], outcomes: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """Per account and in total: what each pair came to (``outcomes``: decision id -> its summary
    as the coordinator gives it, or None while it runs)."""
    per, tot = [], {"filled_a": 0, "filled_b": 0, "pairs": 0, "done": 0, "by_outcome": {}}
    for part in plan["parts"]:
        did = part.get("decision_id")
        s = outcomes.get(did) if did else None
        row = {**part, "state": "NONE" if not did else (s or {}).get("state") or "WORKING",
               "filled_a": 0, "filled_b": 0}
        if s:
            for lg in s.get("legs") or []:
                key = "filled_a" if lg.get("leg") == "A" else "filled_b"
                row[key] = int(lg.get("net_qty") or 0) if lg.get("net_qty") is not None else int(lg.get("filled_qty") or 0)
        if did:
            tot["pairs"] += 1
            tot["filled_a"] += abs(row["filled_a"])
            tot["filled_b"] += abs(row["filled_b"])
            if s and s.get("state") in ("HEDGED", "ROLLED_BACK", "ESCALATED", "REFUSED"):
                tot["done"] += 1
                tot["by_outcome"][s["state"]] = tot["by_outcome"].get(s["state"], 0) + 1
        per.append(row)
    return {**{k: plan[k] for k in ("instruction_id", "strategy", "side_a", "total_lots_a", "rule")},
            "accounts": per, "total": tot, "complete": tot["done"] == tot["pairs"]}
