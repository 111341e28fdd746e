"""The pair scenarios and the pair invariants once more, with leg B over a real FIX session.

The pure pair state machine (``PairBook``) is driven in wall time as the coordinator actor
drives it, without Ray: leg A through a gateway core on the in-process simulated venue (SHFE),
leg B through a gateway core whose ``fix`` adapter is logged on to the loopback FIX exchange
(LME) on 127.0.0.1. The venue faults are the exchange's own (a reject, a partial fill, a lost
answer, a dropped connection, reports sent twice, a stall), and the truth the invariants are
checked against is each venue's own record of orders and executions, not our trail.
"""
from __future__ import annotations

import heapq
import itertools
import random
import time
from decimal import Decimal

import pytest

from testkit import instrument, quote, venue
from xmc_actors.core.clock import SystemClock
from xmc_actors.core.gateway_core import GatewayCore
from xmc_actors.core.pair_fsm import (
    PAIR_TRANSITIONS, Cancel, CancelTimers, CoordinatorConfig, HaltStrategy, NotifyDone, PairBook, Place, Query,
    StartTimer,
)
from xmc_actors.core.sink import MemorySink
from xmc_actors.core.sizing import is_balanced
from xmc_actors.model import (
    EventKind, ExecutionMode, LegIntent, PairIntent, PairState, ReplenishBudget, RollbackPolicy, Side,
)
from xmc_actors.venues.fix.adapter import FixAdapter
from xmc_actors.venues.fix.exchange import FixExchange
from xmc_actors.venues.fix.params import FixVenueParams
from xmc_actors.venues.sim import SimExchange
from xmc_actors.venues.sim_config import SimVenueParams

pytestmark = pytest.mark.timeout(180)
A_INST, B_INST = "SHFE.cu", "LME.CA3M"
INSTRUMENTS = {A_INST: instrument(A_INST), B_INST: instrument(B_INST)}
_MS = 1_000_000


class Driver:
    """Executes a PairBook's commands against two gateway cores, as the coordinator actor does
    (calls made at once, their answers applied; timers on the wall clock; pushed reports
    drained on every turn)."""

    def __init__(self, cores: dict[str, GatewayCore]) -> None:
        self.clock = SystemClock()
        self.sink = MemorySink()
        # bounds well inside until_finished's 30 s: a pair that cannot finish is escalated, and
        # its escalation checked, before the driver stops waiting
        self.config = CoordinatorConfig(call_timeout_ms=3000, ack_timeout_ms=1500, cancel_timeout_ms=1500,
                                        query_backoff_ms=100, query_window_ms=6000, wind_down_timeout_ms=15000)
        self.book = PairBook(INSTRUMENTS, self.clock, config=self.config, owner="coord", sink=self.sink)
        self.cores = cores
        self.timers: list[tuple[int, int, str, str]] = []
        self.seq = itertools.count()
        self.dropped: set[str] = set()
        self.done: list[dict] = []
        self.halts: list[HaltStrategy] = []

    def run(self, cmds: list) -> None:
        b = self.book
        for c in cmds:
            if isinstance(c, Place):
                coid = c.req.client_order_id
                try:
                    reps, _ = self.cores[c.venue].place(c.req)
                except Exception as e:  # noqa: BLE001 - as a failed actor call
                    self.run(b.on_call_failed(coid, "place", f"{type(e).__name__}: {e}"))
                else:
                    self.run(b.on_place_result(coid, reps))
            elif isinstance(c, Cancel):
                try:
                    rep, _ = self.cores[c.venue].cancel(c.client_order_id)
                except Exception as e:  # noqa: BLE001
                    self.run(b.on_call_failed(c.client_order_id, "cancel", f"{type(e).__name__}: {e}"))
                else:
                    self.run(b.on_cancel_result(c.client_order_id, rep))
            elif isinstance(c, Query):
                try:
                    rep = self.cores[c.venue].query(c.client_order_id)
                except Exception as e:  # noqa: BLE001
                    self.run(b.on_call_failed(c.client_order_id, "query", f"{type(e).__name__}: {e}"))
                else:
                    self.run(b.on_query_result(c.client_order_id, rep))
            elif isinstance(c, StartTimer):
                heapq.heappush(self.timers, (c.at_ns, next(self.seq), c.decision_id, c.key))
            elif isinstance(c, CancelTimers):
                self.timers = [t for t in self.timers if t[2] != c.decision_id]
                heapq.heapify(self.timers)
            elif isinstance(c, NotifyDone):
                self.done.append(c.summary.to_wire())
            elif isinstance(c, HaltStrategy):
                self.halts.append(c)

    def turn(self) -> None:
        for core in self.cores.values():
            core.tick()
            for reps in core.drain_pushes().values():
                self.run(self.book.on_reports(reps))
        now = self.clock.now_ns()
        while self.timers and self.timers[0][0] <= now:
            _, _, did, key = heapq.heappop(self.timers)
            self.run(self.book.on_timer(did, key))

    def until_finished(self, did: str, timeout_s: float = 30.0, settle_s: float = 0.5) -> PairState:
        """Turn until the pair is terminal, then a little longer (late reports land)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not self.book.pairs[did].state.is_terminal:
            self.turn()
            time.sleep(0.005)
        stop = time.monotonic() + settle_s
        while time.monotonic() < stop:
            self.turn()
            time.sleep(0.005)
        return self.book.pairs[did].state


@pytest.fixture
def venues(tmp_path):
    """SHFE in process, LME over FIX to the loopback exchange; both with a market to trade on."""
    clock = SystemClock()
    shfe_sim = SimExchange(venue("SHFE"), [INSTRUMENTS[A_INST]], SimVenueParams(seed=3, enforce_sessions=False), clock)
    shfe = GatewayCore(venue("SHFE"), [INSTRUMENTS[A_INST]], shfe_sim, clock, MemorySink(), name="gateway-SHFE")
    ex = FixExchange(venue("LME"), [INSTRUMENTS[B_INST]], comp_id="EXCH", control_port=0)
    ex.start()
    adapter = None
    try:
        p = FixVenueParams.model_validate(dict(port=ex.port, sender_comp_id="GW", target_comp_id="EXCH", heartbeat_s=1,
                                               store_path=str(tmp_path / "fix"), reconnect_interval_s=1,
                                               ack_timeout_ms=1000))
        adapter = FixAdapter(p, venue("LME"), [INSTRUMENTS[B_INST]], clock, gateway="gateway-LME")
        lme = GatewayCore(venue("LME"), [INSTRUMENTS[B_INST]], adapter, clock, MemorySink(), name="gateway-LME",
                          ack_timeout_ns=1000 * _MS)
        assert adapter.connected(), "logged on to the loopback exchange"
        yield {"shfe": shfe, "shfe_sim": shfe_sim, "lme": lme, "exchange": ex, "adapter": adapter}
    finally:
        if adapter is not None:
            adapter.close()
        ex.stop()


def _markets(v: dict, size: int = 10) -> None:
    now = time.time_ns()
    v["shfe"].on_market(quote(A_INST, "72000", "72010", bid_size=size, ask_size=size, ts_ns=now))
    v["exchange"].market([quote(B_INST, "9799", "9801", bid_size=size, ask_size=size, ts_ns=now)])


def _intent(did: str, qty: int = 2, mode: ExecutionMode = ExecutionMode.SPEED, **kw) -> PairIntent:
    legs = (LegIntent(leg="A", instrument=A_INST, account="cn", side=Side.BUY, qty=qty, limit_price=Decimal("72010"),
                      trigger_price=Decimal("72010")),
            LegIntent(leg="B", instrument=B_INST, account="us", side=Side.SELL, qty=qty, limit_price=Decimal("9799"),
                      trigger_price=Decimal("9799")))
    return PairIntent(decision_id=did, strategy="s1", legs=legs, mode=mode,
                      replenish=kw.pop("replenish", ReplenishBudget(max_attempts=3, max_time_ms=3000)),
                      rollback=kw.pop("rollback", RollbackPolicy(max_attempts=3, max_time_ms=5000)), **kw)


def _venue_net(sim: SimExchange, did: str, leg: str, side: Side) -> int:
    """Net lots of the leg's direction the venue itself executed for this pair (its own record)."""
    return sum((r["fill_qty"] if r["side"] == side.value else -r["fill_qty"]) for r in sim.drop_copy_log
               if r.get("trade_id") and r["decision_id"] == did and r["leg"] == leg)


def check_invariants(drv: Driver, v: dict, intent: PairIntent) -> None:
    """The pair invariants of DESIGN.md, against the venues' own records."""
    did = intent.decision_id
    m = drv.book.pairs[did]
    assert m.state.is_terminal, f"pair not finished: {m.state}"
    changes = [e for e in drv.sink.by_decision(did) if e.kind is EventKind.PAIR_STATE and e.payload.get("from")]
    for e in changes:
        assert PairState(e.payload["to"]) in PAIR_TRANSITIONS[PairState(e.payload["from"])], e.payload
    # no ClOrdID reached the FIX venue twice as a new order, and none is held twice
    ex = v["exchange"]
    firsts = [c for c in ex.received() if c.startswith(did)]
    for coid in set(firsts):
        # (0: an order lost before the venue's book, the drop_next fault)
        assert ex.order_count(coid) <= 1, f"{coid} held {ex.order_count(coid)} times"
    # every execution is booked once, on the order the venue made it on
    venue_trades = {f["trade_id"]: f["client_order_id"] for f in ex.fills()}
    for leg in m.legs:
        for o in leg.orders:
            for tid in o.state.trade_ids:
                if leg.name == "B":
                    assert venue_trades.get(tid) == o.coid, (tid, o.coid)
        booked = sum(o.state.filled_qty for o in leg.orders)
        sim = v["shfe_sim"] if leg.name == "A" else ex.sim
        truth = sum(d["fill_qty"] for d in sim.drop_copy_log if d.get("trade_id")
                    and d["client_order_id"] in {o.coid for o in leg.orders})
        assert booked == truth, f"leg {leg.name}: booked {booked}, the venue executed {truth}"
    true_net = {"A": _venue_net(v["shfe_sim"], did, "A", Side.BUY), "B": _venue_net(ex.sim, did, "B", Side.SELL)}
    if m.state is PairState.ESCALATED:
        assert [e for e in drv.sink.by_decision(did) if e.kind is EventKind.ESCALATION]
        assert any(h.decision_id == did for h in drv.halts)
    else:
        assert is_balanced(true_net["A"], true_net["B"], intent.hedge_ratio, 1), (m.state, true_net)
        if m.state is PairState.ROLLED_BACK:
            assert true_net == {"A": 0, "B": 0}
        live = [o.req.client_order_id for o in ex.sim.orders.values() if o.req.decision_id == did
                and o.state.status.is_live]
        assert not live, f"live order left at the venue of a finished pair: {live}"
        assert drv.done and drv.done[-1]["decision_id"] == did and drv.done[-1]["state"] == m.state.value


def _run(v: dict, intent: PairIntent, before=None, after_place=None) -> Driver:  # noqa: ANN001
    drv = Driver({"SHFE": v["shfe"], "LME": v["lme"]})
    _markets(v)
    if before is not None:
        before(v)
    res, cmds = drv.book.submit(intent, {"A": 10, "B": 10})  # visible lots, as the coordinator asks
    assert res["accepted"], res
    drv.run(cmds)
    if after_place is not None:
        after_place(v)
    drv.until_finished(intent.decision_id)
    _after_logon(drv, v, intent.decision_id)
    check_invariants(drv, v, intent)
    return drv


def _after_logon(drv: Driver, v: dict, did: str, within_s: float = 30.0) -> None:
    """What the FIX venue did reaches the book only through a live session: after a drop, the
    logon (reconnect_interval_s) and what it resends must land before the venue's record is
    compared. The pair may well finish while the session is down (its queries fail, it
    escalates); on a loaded host the logon then came after a fixed settle: "booked 0,
    executed 1", and "the session logged on again" false, in CI twice."""
    if v["adapter"].connected():
        return
    end = time.monotonic() + within_s
    while time.monotonic() < end and not v["adapter"].connected():
        drv.turn()
        time.sleep(0.005)
    drv.until_finished(did, settle_s=1.0)


# ----------------------------------------------------------------------------------- scenarios
def test_both_legs_fill_and_the_pair_is_hedged(venues):
    drv = _run(venues, _intent("d1"))
    assert drv.book.pairs["d1"].state is PairState.HEDGED


def test_a_final_reject_of_the_fix_leg_rolls_back_the_filled_leg(venues):
    drv = _run(venues, _intent("d1"),
               before=lambda v: v["exchange"].inject({"kind": "reject_next", "reason": "MARKET_CLOSED"}))
    m = drv.book.pairs["d1"]
    assert m.state is PairState.ROLLED_BACK
    assert any(o.req.reduce_only for o in venues["shfe_sim"].orders.values()), "leg A was unwound at SHFE"


def test_a_partial_fill_over_fix_is_replenished_until_hedged(venues):
    drv = _run(venues, _intent("d1", qty=4),
               before=lambda v: v["exchange"].inject({"kind": "partial_fill_next", "qty": 1}))
    m = drv.book.pairs["d1"]
    assert m.state is PairState.HEDGED and m.legs[1].net == 4
    assert len(m.legs[1].orders) >= 2, "leg B was replenished (补单)"


def test_a_lost_answer_over_fix_is_resolved_by_a_status_request(venues):
    drv = _run(venues, _intent("d1"), before=lambda v: v["exchange"].inject({"kind": "no_ack_next"}))
    assert drv.book.pairs["d1"].state is PairState.HEDGED
    assert venues["exchange"].counters.get("reports_lost", 0) >= 1, "the venue's answer was lost"
    # recovered by the session (a resend after the gap) or by the pair (a status request)
    assert venues["adapter"].counters.get("recovered_reports", 0) >= 1 or \
        any(e.kind is EventKind.RECONCILE for e in drv.sink.by_decision("d1"))


def test_reports_sent_twice_under_new_sequence_numbers_are_booked_once(venues):
    drv = _run(venues, _intent("d1"), before=lambda v: v["exchange"].duplicate_next(3))
    assert drv.book.pairs["d1"].state is PairState.HEDGED


def test_a_connection_dropped_while_the_fix_leg_rests_ends_the_pair_with_the_venues_truth(venues):
    # leg B rests (no visible bid at its limit), the connection drops; the pair must still end
    # HEDGED, ROLLED_BACK or ESCALATED exactly as the venues say, with no order sent twice
    def rest_then_drop(v: dict) -> None:
        v["exchange"].drop()

    drv = Driver({"SHFE": venues["shfe"], "LME": venues["lme"]})
    _markets(venues)
    venues["exchange"].market([quote(B_INST, "9790", "9801", bid_size=5, ask_size=5, ts_ns=time.time_ns())])
    intent = _intent("d1", replenish=ReplenishBudget(max_attempts=1, max_time_ms=1500))
    res, cmds = drv.book.submit(intent, {"A": 10, "B": 10})
    assert res["accepted"]
    drv.run(cmds)
    rest_then_drop(venues)
    drv.until_finished("d1", timeout_s=40, settle_s=2.0)
    _after_logon(drv, venues, "d1")
    assert venues["adapter"].connected(), "the session logged on again"
    check_invariants(drv, venues, intent)


# ------------------------------------------------------------------------------- property run
FAULTS = [
    None,
    lambda v: v["exchange"].inject({"kind": "reject_next", "reason": "PRICE_OUT_OF_LIMIT"}),
    lambda v: v["exchange"].inject({"kind": "reject_next", "reason": "MARKET_CLOSED"}),
    lambda v: v["exchange"].inject({"kind": "partial_fill_next", "qty": 1}),
    lambda v: v["exchange"].inject({"kind": "no_ack_next"}),
    lambda v: v["exchange"].inject({"kind": "drop_next"}),
    lambda v: v["exchange"].duplicate_next(2),
    lambda v: v["exchange"].stall(300),
]
AFTER = [None, lambda v: v["exchange"].drop(), lambda v: v["exchange"].skip_seq(2)]


@pytest.mark.parametrize("seed", range(6))
def test_pair_invariants_hold_over_fix_under_seeded_faults(venues, seed):
    rng = random.Random(seed)
    for n in range(3):
        fault, after = rng.choice(FAULTS), rng.choice(AFTER)
        qty = rng.choice((1, 2, 3))
        mode = rng.choice(list(ExecutionMode))
        _run(venues, _intent(f"s{seed}-{n}", qty=qty, mode=mode), before=fault, after_place=after)
