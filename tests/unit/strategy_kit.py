"""Builders for the strategy tests: a LME/SHFE copper pair at USDCNY 7.0 where the parity is round."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from testkit import instrument, quote, venue
from xmc_actors.core.clock import SimClock
from xmc_actors.core.pair_fsm import leg_summary, pair_summary
from xmc_actors.core.pricing import FxBook, StaticRate, resolve_hedge_ratio
from xmc_actors.model import LegSpec, PairState
from xmc_actors.model.config import ExecutionConfig
from xmc_actors.strategies.base import Emit, StrategyContext, Submit

# Monday 2025-01-06 02:00 UTC: SHFE morning session (10:00 Shanghai) and LMEselect (02:00 London) open
T0 = int(dt.datetime(2025, 1, 6, 2, 0, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000_000
MS = 1_000_000
A, B = "LME.CA3M", "SHFE.cu"  # A: USD/t, 25 t a lot; B: CNY/t, 5 t a lot -> hedge ratio 5


def ctx(name: str = "cu", *, a: str = A, b: str = B, fx: float = 7.0, execution: ExecutionConfig | None = None,
        hedge_ratio: Decimal | None = None) -> StrategyContext:
    ia, ib = instrument(a, fees=None), instrument(b, fees=None)  # round parities: no exchange fees folded in
    return StrategyContext(
        name=name, legs=(LegSpec(instrument=a, account="us-main"), LegSpec(instrument=b, account="cn-main")),
        instruments=(ia, ib), venues=(venue(ia.venue), venue(ib.venue)),
        fx=FxBook({("USD", "CNY"): StaticRate(fx)}),
        hedge_ratio=hedge_ratio or resolve_hedge_ratio("auto", ia, ib), execution=execution or ExecutionConfig(),
        clock=SimClock(T0),
    )


def pair_quotes(ratio: float, *, t: int = T0, half_spread: float = 0.0) -> list:
    """LME around 10000 USD/t and SHFE at 70000 CNY/t (= 10000 USD/t), so A/B = ``ratio``."""
    a_mid = 10000.0 * ratio
    a_bid = round((a_mid - half_spread) * 2) / 2
    a_ask = round((a_mid + half_spread) * 2) / 2
    return [quote(A, a_bid, a_ask, ts_ns=t), quote(B, 70000, 70000, ts_ns=t)]


def intents(actions: list) -> list:
    return [a.intent for a in actions if isinstance(a, Submit)]


def events(actions: list, kind: str | None = None) -> list:
    return [a.event for a in actions if isinstance(a, Emit) and (kind is None or a.event.kind.value == kind)]


def done(intent: Any, state: str = "HEDGED", fill_a: int | None = None, fill_b: int | None = None, *,
         net_a: int | None = None, net_b: int | None = None, ts_ns: int = 0) -> dict:
    """A pair summary as the coordinator sends it (made by ``pair_fsm.pair_summary``, dumped for
    Ray): ``fill_x`` lots filled on leg x (default: the intent's), ``net_x`` lots still held in
    the leg's own direction after its rollback (default: all of ``fill_x``)."""
    legs = []
    for li, fill, net in zip(intent.legs, (fill_a, fill_b), (net_a, net_b)):
        filled = li.qty if fill is None else fill
        legs.append(leg_summary(li.leg, li.instrument, li.account, li.side, filled=filled,
                                net=filled if net is None else net, intended_qty=li.qty, avg_price=li.limit_price))
    return pair_summary(intent.decision_id, intent.strategy, "coordinator", PairState(state), legs=legs,
                        ts_ns=ts_ns).to_wire()


def late_fill(intent: Any, leg: str, qty: int, trade_id: str = "T-late") -> dict:
    """The incremental summary of a fill on ``leg`` (its own side) after the coordinator forgot the pair."""
    li = next(x for x in intent.legs if x.leg == leg)
    return pair_summary(intent.decision_id, intent.strategy, "coordinator", PairState.ESCALATED, ts_ns=0,
                        incremental=True, trade_id=trade_id,
                        legs=[leg_summary(li.leg, li.instrument, li.account, li.side, filled=qty, net=qty)]).to_wire()


def written(core: Any, method: str, *args: Any, **kwargs: Any) -> tuple[Any, list]:
    """Call ``core.method(*args, **kwargs)`` on a strategy host core; returns what it returned
    and the events it wrote to its sink meanwhile (a core writes its events, it does not
    return them)."""
    n = len(core.sink.events)
    out = getattr(core, method)(*args, **kwargs)
    return out, core.sink.events[n:]
