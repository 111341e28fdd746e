"""A seeded synthetic trading session written as ledger events (tests, demos, benchmarks).

Until the full runtime writes real trails, this produces what one looks like: per decision a
SIGNAL, INTENT, RISK_DECISION, PAIR_STATE changes, ORDER_SENT and ORDER_REPORT per leg
(acks and fills, with slippage and round-trip latency), REPLENISH, ROLLBACK, ESCALATION and
ALERT events, plus the gateways' VENUE_DROP_COPY rows, all under one decision id.
"""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Iterator

from ..core.clock import SimClock
from ..core.sink import EventMaker
from ..model.events import Event, EventKind

PAIRS = (
    ("cu_shfe_lme", ("SHFE", "SHFE.cu", "acc-cn", Decimal("72150"), Decimal("10")),
     ("LME", "LME.CA", "acc-uk", Decimal("9450.5"), Decimal("0.5"))),
    ("au_sge_comex", ("SGE", "SGE.Au99.99", "acc-cn", Decimal("612.30"), Decimal("0.01")),
     ("COMEX", "COMEX.GC", "acc-us", Decimal("2650.1"), Decimal("0.1"))),
    ("sc_ine_brent", ("INE", "INE.sc", "acc-cn", Decimal("565.2"), Decimal("0.1")),
     ("ICE", "ICE.B", "acc-uk", Decimal("78.12"), Decimal("0.01"))),
)
BASE_LATENCY_US = {"SHFE": 900.0, "LME": 2600.0, "SGE": 1100.0, "COMEX": 1900.0, "INE": 950.0, "ICE": 2300.0}


def synthetic_session(n_pairs: int, *, seed: int = 7, start_ns: int = 1_767_000_000_000_000_000,
                      gap_ms: float = 40.0) -> Iterator[Event]:
    """Yield the events of ``n_pairs`` pair decisions (deterministic for a seed), in time order per pair.

    Outcome mix: about 80 % HEDGED (one in four after a replenish), 8 % ROLLED_BACK, 3 %
    ESCALATED (with red alert), 9 % REFUSED by risk.
    """
    rng = random.Random(seed)
    clock = SimClock(start_ns)
    actors = {name: EventMaker(clock, name, node=i + 1) for i, name in enumerate(
        ("strategy", "coordinator", "risk", "gateway", "ledger"))}

    def at(ms: float) -> None:
        clock.advance(int(ms * 1_000_000))

    for n in range(n_pairs):
        strat, a, b = PAIRS[n % len(PAIRS)]
        at(rng.expovariate(1 / gap_ms))
        dec = f"dec-{n:07d}"
        m_s, m_c, m_r, m_g = actors["strategy"], actors["coordinator"], actors["risk"], actors["gateway"]
        sig = m_s.make(EventKind.SIGNAL, decision_id=dec, strategy=strat, reason="spread above band",
                       spread_bps=round(rng.uniform(8, 30), 2))
        yield sig
        at(0.05)
        intent = m_s.make(EventKind.INTENT, decision_id=dec, parent_id=sig.event_id, strategy=strat,
                          qty=rng.choice((1, 2, 5)), mode="price")
        yield intent
        at(rng.uniform(0.8, 1.4))
        roll = rng.random()
        if roll < 0.09:
            yield m_r.make(EventKind.RISK_DECISION, decision_id=dec, parent_id=intent.event_id, strategy=strat,
                           reason="NOTIONAL_EXCEEDS_MAX: notional=1.2e6 max=1.0e6", decision="REFUSED",
                           latency_us=rng.uniform(20, 60))
            yield m_c.make(EventKind.PAIR_STATE, decision_id=dec, strategy=strat, state="REFUSED", unhedged_ms=0.0)
            continue
        risk = m_r.make(EventKind.RISK_DECISION, decision_id=dec, parent_id=intent.event_id, strategy=strat,
                        decision="ACCEPTED", latency_us=rng.uniform(20, 60))
        yield risk
        yield m_c.make(EventKind.PAIR_STATE, decision_id=dec, parent_id=risk.event_id, strategy=strat, state="WORKING")
        fills: list[Event] = []
        for leg, (venue, inst, acc, px, tick) in zip("AB", (a, b)):
            side = "BUY" if leg == "A" else "SELL"
            oid = f"{dec}:{leg}:0"
            sent = m_c.make(EventKind.ORDER_SENT, decision_id=dec, parent_id=risk.event_id, strategy=strat,
                            account=acc, venue=venue, instrument=inst, client_order_id=oid, side=side,
                            qty=intent.payload["qty"], limit_price=px)
            yield sent
            at(0.02)
            lat = BASE_LATENCY_US[venue] * rng.lognormvariate(0, 0.35)
            slip_ticks = rng.choice((0, 0, 0, 1, 1, 2, -1))
            fpx = px + slip_ticks * tick if side == "BUY" else px - slip_ticks * tick
            if leg == "B" and 0.09 <= roll < 0.2:  # leg B rejected: rollback or escalation below
                fills.append(m_g.make(EventKind.ORDER_REPORT, decision_id=dec, parent_id=sent.event_id,
                                      strategy=strat, account=acc, venue=venue, instrument=inst,
                                      client_order_id=oid, status="REJECTED", reason="LIMIT_LOCKED",
                                      latency_us=lat))
                continue
            fills.append(m_g.make(EventKind.ORDER_REPORT, decision_id=dec, parent_id=sent.event_id, strategy=strat,
                                  account=acc, venue=venue, instrument=inst, client_order_id=oid, status="FILLED",
                                  side=side, price=fpx, ref_price=px, qty=intent.payload["qty"],
                                  trade_id=f"T{n}{leg}", latency_us=lat,
                                  slippage_bps=float(slip_ticks * tick / px * 10_000)))
        filled_at: list[int] = []  # when each leg filled: the pair is unhedged from the first
        for f in sorted(fills, key=lambda e: e.latency_us or 0):
            at((f.latency_us or 0) / 1000 / 2)
            if f.payload.get("status") == "FILLED":
                filled_at.append(clock.now_ns())
            yield f.model_copy(update={"ts_ns": clock.now_ns()})
            if f.payload.get("status") == "FILLED":
                yield m_g.make(EventKind.VENUE_DROP_COPY, decision_id=dec, venue=f.venue, instrument=f.instrument,
                               client_order_id=f.payload["client_order_id"], trade_id=f.payload["trade_id"],
                               status="FILLED", qty=f.payload["qty"], price=f.payload["price"], ts_ns=clock.now_ns())
        if roll < 0.09 + 0.08:
            at(2)
            yield m_c.make(EventKind.PAIR_STATE, decision_id=dec, strategy=strat, state="ROLLING_BACK")
            yield m_c.make(EventKind.ROLLBACK, decision_id=dec, strategy=strat, venue=a[0], instrument=a[1],
                           client_order_id=f"{dec}:A:rb1", side="SELL", qty=intent.payload["qty"])
            at(BASE_LATENCY_US[a[0]] / 1000)
            yield m_g.make(EventKind.ORDER_REPORT, decision_id=dec, strategy=strat, venue=a[0], instrument=a[1],
                           client_order_id=f"{dec}:A:rb1", status="FILLED", trade_id=f"T{n}Arb",
                           latency_us=BASE_LATENCY_US[a[0]])
            yield m_c.make(EventKind.PAIR_STATE, decision_id=dec, strategy=strat, state="ROLLED_BACK",
                           unhedged_ms=(clock.now_ns() - filled_at[0]) / 1e6 if filled_at else 0.0)
            yield m_r.make(EventKind.ALERT, decision_id=dec, strategy=strat, reason="pair rolled back",
                           level="yellow")
        elif roll < 0.2:
            at(5)
            yield m_c.make(EventKind.PAIR_STATE, decision_id=dec, strategy=strat, state="ROLLING_BACK")
            yield m_c.make(EventKind.ESCALATION, decision_id=dec, strategy=strat, reason="rollback budget spent",
                           residual_qty=intent.payload["qty"], instrument_residual=a[1])
            yield m_c.make(EventKind.PAIR_STATE, decision_id=dec, strategy=strat, state="ESCALATED",
                           unhedged_ms=(clock.now_ns() - filled_at[0]) / 1e6 if filled_at else 0.0)
            yield m_r.make(EventKind.ALERT, decision_id=dec, strategy=strat, reason="unhedged exposure escalated",
                           level="red")
        else:
            if rng.random() < 0.25:
                yield m_c.make(EventKind.PAIR_STATE, decision_id=dec, strategy=strat, state="REPLENISHING")
                yield m_c.make(EventKind.REPLENISH, decision_id=dec, strategy=strat, venue=b[0], instrument=b[1],
                               client_order_id=f"{dec}:B:1", attempt=1, chase_ticks=1)
                at(BASE_LATENCY_US[b[0]] / 1000)
            yield m_c.make(EventKind.PAIR_STATE, decision_id=dec, strategy=strat, state="HEDGED",
                           unhedged_ms=(filled_at[-1] - filled_at[0]) / 1e6 if filled_at else 0.0)
            if rng.random() < 0.03:
                yield m_r.make(EventKind.ALERT, decision_id=dec, strategy=strat, reason="slippage above 10 bps",
                               level=rng.choice(("info", "yellow", "orange")))
