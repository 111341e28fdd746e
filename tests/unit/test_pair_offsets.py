"""The coordinator's offsets against the simulated exchange's own two-sided book (no Ray).

The pair book (core) and a real ``SimExchange`` with the catalogue's SHFE and LME, driven in
one loop: what the pair book sends is placed at the venue and the venue's answers come back.
A rollback of a leg opened today at SHFE must be a close-today in the trail; a replenish whose
close finds the lots gone (closed from another terminal) must switch to open; the venue refuses
what its rule or its position cannot take.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import testkit
from testkit import ROOT
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import MemorySink
from xmc_actors.core.pair_fsm import Cancel, CoordinatorConfig, PairBook, Place, Query, StartTimer
from xmc_actors.model import EventKind, ExecutionMode, Offset, PairState, RejectReason
from xmc_actors.model.quotes import Quote
from xmc_actors.runtime.config import load_config
from xmc_actors.venues.sim import SimExchange
from xmc_actors.venues.sim_config import SimVenueParams

CAT = load_config(ROOT / "configs" / "catalogue.yaml")
VENUES = {v.code: v for v in CAT.venues}
INSTS = {i.id: i for i in CAT.instruments}
T0 = int(dt.datetime(2025, 1, 6, 2, 0, tzinfo=dt.timezone.utc).timestamp()) * 10**9  # Monday 10:00 Shanghai


class Loop:
    def __init__(self, mode: ExecutionMode = ExecutionMode.SPEED) -> None:
        self.clock = SimClock(T0)
        self.sink = MemorySink()
        self.book = PairBook(INSTS, self.clock, config=CoordinatorConfig(), venues=VENUES, sink=self.sink)
        self.events = self.sink.events  # what the book wrote, in order
        self.mode = mode
        self.venues = {
            code: SimExchange(VENUES[code], [i for i in CAT.instruments if i.venue == code],
                              SimVenueParams(seed=1), self.clock)
            for code in ("SHFE", "LME")}
        self.timers: list[tuple[int, str, str]] = []
        for code, px, size in (("SHFE", 72000, 50), ("LME", 10000, 50)):
            inst = "SHFE.cu" if code == "SHFE" else "LME.CA3M"
            tick = INSTS[inst].tick_size
            self.venues[code].on_market(Quote(instrument=inst, bid=Decimal(px) - tick, ask=Decimal(px), bid_size=size,
                                              ask_size=size, venue_ts_ns=T0, ts_ns=T0))

    def run(self, cmds: list) -> None:
        queue = list(cmds)
        while queue:
            c = queue.pop(0)
            if isinstance(c, Place):
                reply = self.venues[c.venue].place(c.req)
                queue += self.book.on_place_result(c.req.client_order_id, reply.reports)
            elif isinstance(c, Cancel):
                rep, _ = self.venues[c.venue].cancel(c.client_order_id)
                queue += self.book.on_cancel_result(c.client_order_id, rep)
            elif isinstance(c, Query):
                queue += self.book.on_query_result(c.client_order_id, self.venues[c.venue].query(c.client_order_id))
            elif isinstance(c, StartTimer):
                self.timers.append((c.at_ns, c.decision_id, c.key))

    def submit(self, did: str, side_a: str, qty_a: int, **kw) -> None:
        it = testkit.pair_intent(did, a=("SHFE.cu", side_a, qty_a, "72000" if side_a == "BUY" else "71990"),
                                 b=("LME.CA3M", "SELL" if side_a == "BUY" else "BUY", qty_a // 5,
                                    "9999.5" if side_a == "BUY" else "10000"),
                                 mode=self.mode, accounts=("cn", "us"), hedge_ratio=Decimal("0.2"), **kw)
        res, cmds = self.book.submit(it)
        assert res["accepted"], res
        self.run(cmds)

    def sent(self, did: str) -> list[dict]:
        return [e.payload | {"instrument": e.instrument} for e in self.events
                if e.kind is EventKind.ORDER_SENT and e.decision_id == did]


def test_a_rollback_of_a_leg_opened_today_at_shfe_is_a_close_today_in_the_trail():
    lp = Loop()
    lp.venues["LME"].inject({"kind": "reject_next", "reason": "LIMIT_LOCKED"})  # leg B refused for good
    lp.submit("d1", "BUY", 5)
    m = lp.book.pairs["d1"]
    assert m.state is PairState.ROLLED_BACK
    shfe = [s for s in lp.sent("d1") if s["instrument"] == "SHFE.cu"]
    assert [(s["side"], s["offset"], s["unwind"]) for s in shfe] == [("BUY", "OPEN", False), ("SELL", "CLOSE_TODAY", True)]
    assert "today 5" in shfe[1]["offset_reason"]
    # the venue took it (it holds those lots as today's) and both books are flat again
    venue_pos = lp.venues["SHFE"].two_sided_positions()
    assert venue_pos == {} and lp.book.positions.snapshot() == {}
    rows = [(d["kind"], d["offset"]) for d in lp.venues["SHFE"].drop_copy() if d["kind"] in ("ACK", "FILL")]
    assert ("ACK", "CLOSE_TODAY") in rows and ("FILL", "CLOSE_TODAY") in rows


def test_closing_prefers_yesterdays_lots_and_the_next_day_sees_todays_as_yesterdays():
    lp = Loop()
    lp.submit("d1", "BUY", 5)  # opens 5 today
    # what a close (a roll's) may take, as the coordinator asks it: long 5 at SHFE; LME nets
    assert lp.book.closable("cn", INSTS["SHFE.cu"]) == (5, 0)
    assert lp.book.closable("us", INSTS["LME.CA3M"]) is None
    lp.clock.set(T0 + 24 * 3600 * 10**9)  # Tuesday: those 5 are yesterday's now
    for v in lp.venues.values():
        for book in v.books.values():
            if book.quote is not None:
                q = book.quote.model_copy(update={"ts_ns": lp.clock.now_ns(), "venue_ts_ns": lp.clock.now_ns()})
                v.on_market(q)
    lp.submit("d2", "SELL", 5)
    shfe = [s for s in lp.sent("d2") if s["instrument"] == "SHFE.cu"]
    assert [(s["side"], s["offset"]) for s in shfe] == [("SELL", "CLOSE_YESTERDAY")]
    assert lp.book.pairs["d2"].state is PairState.HEDGED
    assert lp.venues["SHFE"].two_sided_positions() == {} == lp.book.positions.snapshot()


def test_a_replenish_switches_from_close_to_open_when_the_lots_to_close_have_gone():
    lp = Loop()
    lp.book.positions.set("cn", "SHFE.cu", long_yesterday=5, trading_day=dt.date(2025, 1, 6))
    lp.venues["SHFE"].two_sided.set("cn", "SHFE.cu", long_yesterday=3, trading_day=dt.date(2025, 1, 6))  # 2 closed by phone
    lp.submit("d1", "SELL", 5, replenish={"max_attempts": 2, "max_chase_ticks": 2, "max_time_ms": 5000})
    shfe = [s for s in lp.sent("d1") if s["instrument"] == "SHFE.cu"]
    assert [(s["offset"], s["qty"]) for s in shfe] == [("CLOSE_YESTERDAY", 5), ("OPEN", 5)]
    assert "not covered" in shfe[1]["offset_reason"]
    rec = [e for e in lp.events if e.kind is EventKind.RECONCILE and e.payload.get("action") == "position"]
    assert rec and rec[0].payload["lots"] == 5
    rej = [d for d in lp.venues["SHFE"].drop_copy() if d["kind"] == "REJECTED"]
    assert [d["reason"] for d in rej] == [RejectReason.POSITION_INSUFFICIENT.value]
    assert lp.book.pairs["d1"].state is PairState.HEDGED
    # the venue: 3 long yesterday untouched beside the 5 short opened (a lock)
    p = lp.venues["SHFE"].two_sided.get("cn", "SHFE.cu")
    assert (p.long.yesterday, p.short.today) == (3, 5)


def test_the_venue_refuses_orders_its_rule_or_its_position_cannot_take():
    lp = Loop()
    sim = lp.venues["SHFE"]
    for offset, why in ((None, "must say OPEN or CLOSE"), (Offset.CLOSE, "not a plain CLOSE")):
        r = sim.place(testkit.order("SHFE.cu", "SELL", 1, "72000", account="cn", offset=offset,
                                    decision_id=f"x{why[:3]}"))
        assert r.reports[0].reason is RejectReason.OFFSET_NOT_ALLOWED and why in r.reports[0].text
    r = sim.place(testkit.order("SHFE.cu", "SELL", 1, "72000", account="cn", offset=Offset.CLOSE_TODAY, decision_id="y"))
    assert r.reports[0].reason is RejectReason.POSITION_INSUFFICIENT and "only 0 of today's lots" in r.reports[0].text
    r = lp.venues["LME"].place(testkit.order("LME.CA3M", "SELL", 1, "10000", account="us", offset=Offset.OPEN))
    assert r.reports[0].reason is RejectReason.OFFSET_NOT_ALLOWED and "nets positions" in r.reports[0].text


def test_a_gateway_refuses_an_order_its_venue_cannot_take_before_it_leaves():
    from xmc_actors.core.gateway_core import GatewayCore
    from xmc_actors.core.sink import MemorySink

    lp = Loop()
    sim = lp.venues["SHFE"]
    gw = GatewayCore(VENUES["SHFE"], [INSTS["SHFE.cu"]], sim, lp.clock, MemorySink(), name="gateway-SHFE")
    reps, _ = gw.place(testkit.order("SHFE.cu", "BUY", 1, "72000", account="cn", offset=Offset.CLOSE))
    assert [(r.kind.value, r.reason) for r in reps] == [("REJECTED", RejectReason.OFFSET_NOT_ALLOWED)]
    assert "not a plain CLOSE" in reps[0].text and "order not sent" in reps[0].text
    assert sim.drop_copy() == []  # the venue never saw it
    ok, _ = gw.place(testkit.order("SHFE.cu", "BUY", 1, "72000", account="cn", offset=Offset.OPEN, decision_id="d2"))
    assert ok[0].kind.value == "ACK"


def test_a_starting_coordinator_takes_the_venues_two_sided_positions_and_closes_from_them():
    lp = Loop()
    lp.venues["SHFE"].two_sided.set("cn", "SHFE.cu", long_yesterday=5, short_today=2, trading_day=dt.date(2025, 1, 6))
    n = lp.book.load_positions("SHFE", lp.venues["SHFE"].two_sided_positions())
    assert n == 1
    p = lp.book.positions.get("cn", "SHFE.cu")
    assert (p.long.yesterday, p.short.today) == (5, 2)
    lp.run(lp.book._flush())
    loaded = [e for e in lp.events if e.kind is EventKind.RECONCILE and e.payload.get("action") == "positions_loaded"]
    assert loaded and loaded[0].payload["positions"] == 1
    lp.submit("d1", "SELL", 5)  # closes yesterday's long, as the venue holds it
    shfe = [s for s in lp.sent("d1") if s["instrument"] == "SHFE.cu"]
    assert [(s["offset"]) for s in shfe] == ["CLOSE_YESTERDAY"]
    assert lp.book.pairs["d1"].state is PairState.HEDGED
    assert lp.venues["SHFE"].two_sided_positions() == lp.book.positions.snapshot()
    # a malformed answer is recorded, never raised
    assert lp.book.load_positions("SHFE", {"cn/SHFE.cu": {"long": {"today": "x"}}}) == 0
    assert lp.book.bad_inputs["positions"] == 1


def test_a_restart_does_not_count_a_recovered_orders_fills_on_top_of_the_venues_positions():
    """Found by the chaos suite: a restarted coordinator loads the venue's positions (which hold
    what the previous life's orders filled), then rebuilds those orders and learns their fills
    from the venue again; applied a second time, a close-today of 10 lots came to "only 0 held"."""
    lp = Loop()
    lp.submit("d1", "BUY", 5)  # opens 5 today at SHFE
    assert lp.book.pairs["d1"].state is PairState.HEDGED
    venue_says = lp.venues["SHFE"].two_sided_positions()
    # Act: a new life loads the venue's positions, then adopts d1's orders from the venues
    it = lp.book.pairs["d1"].intent
    orders = [o.state.request for lg in lp.book.pairs["d1"].legs for o in lg.orders]
    lp.book = PairBook(INSTS, lp.clock, config=CoordinatorConfig(), venues=VENUES, sink=lp.sink, event_node=2)
    lp.book.load_positions("SHFE", venue_says)
    found = [lp.book.events.make(EventKind.INTENT, decision_id="d1", strategy=it.strategy,
                                 intent=it.model_dump(mode="json")),
             lp.book.events.make(EventKind.PAIR_STATE, decision_id="d1", strategy=it.strategy, to="WORKING")]
    _, cmds = lp.book.recover(found, orders)
    lp.run(cmds)
    # Assert: the pair ends from the venues' word and the book still holds what the venue holds
    assert lp.book.pairs["d1"].state is PairState.HEDGED
    assert lp.book.positions.snapshot() == venue_says
    assert not [e for e in lp.events if e.kind is EventKind.BAD_INPUT]


def _restart(lp: Loop, did: str) -> tuple[list, list]:
    """A new coordinator life: what the trail holds of ``did`` and the orders its venues hold."""
    it = lp.book.pairs[did].intent
    orders = [o.state.request for lg in lp.book.pairs[did].legs for o in lg.orders]
    lp.book = PairBook(INSTS, lp.clock, config=CoordinatorConfig(), venues=VENUES, sink=lp.sink, event_node=2)
    found = [lp.book.events.make(EventKind.INTENT, decision_id=did, strategy=it.strategy,
                                 intent=it.model_dump(mode="json")),
             lp.book.events.make(EventKind.PAIR_STATE, decision_id=did, strategy=it.strategy, to="WORKING")]
    return found, orders


def _close_resting_after_4_of_10() -> Loop:
    """cn holds 10 lots of SHFE copper from yesterday; a pair sells them, the bid takes 4 and
    the other 6 rest at the venue as a working close."""
    lp = Loop(ExecutionMode.PRICE)
    shfe = lp.venues["SHFE"]
    shfe.two_sided.set("cn", "SHFE.cu", long_yesterday=10, trading_day=dt.date(2025, 1, 6))
    lp.book.load_positions("SHFE", shfe.two_sided_positions())
    shfe.on_market(Quote(instrument="SHFE.cu", bid=Decimal(71990), ask=Decimal(72000), bid_size=4, ask_size=50,
                         venue_ts_ns=T0, ts_ns=T0))
    lp.submit("d1", "SELL", 10)
    a = lp.book.pairs["d1"].by_name["A"].orders[0]
    assert (a.state.request.offset, a.filled, a.live) == (Offset.CLOSE_YESTERDAY, 4, True)
    return lp


def test_a_recovered_close_that_fills_after_the_position_reading_takes_those_lots_off():
    """A restarted coordinator reads the venue's positions with each order's lots filled at that
    moment: the 6 lots its rebuilt close fills afterwards come off the loaded position (before,
    they were missed: the book kept 6 lots the account no longer held)."""
    lp = _close_resting_after_4_of_10()
    found, orders = _restart(lp, "d1")
    reading = lp.venues["SHFE"].two_sided_reading()
    coid = next(r.client_order_id for r in orders if r.instrument == "SHFE.cu")
    assert reading["order_fills"][coid] == 4 and "cn" in reading["accounts"]
    lp.book.load_positions("SHFE", reading["positions"], reading["order_fills"], reading["accounts"])
    _, cmds = lp.book.recover(found, orders)
    # the rebuilt close reserves the 6 lots it may still take, as the venue does
    assert lp.book.positions.snapshot() == lp.venues["SHFE"].two_sided_positions()
    assert lp.book.positions.get("cn", "SHFE.cu").long.frozen_yesterday == 6
    # the market trades through the resting 6 before the restart's query reaches the venue
    lp.venues["SHFE"].on_market(Quote(instrument="SHFE.cu", bid=Decimal(71995), ask=Decimal(72000), bid_size=20,
                                      ask_size=50, venue_ts_ns=T0 + 1, ts_ns=T0 + 1))
    lp.run(cmds)
    assert lp.book.pairs["d1"].by_name["A"].orders[0].filled == 10
    assert lp.venues["SHFE"].two_sided_positions() == {}
    assert lp.book.positions.snapshot() == {}  # flat, as the venue holds it
    assert not [e for e in lp.events if e.kind is EventKind.BAD_INPUT]
    loaded = [e for e in lp.events if e.kind is EventKind.RECONCILE and e.payload.get("action") == "positions_loaded"]
    assert loaded[-1].payload["orders_based"] == 0  # read before the rebuild: the rebuild based it


def test_a_reading_after_the_rebuild_bases_the_orders_and_applies_what_they_filled_since():
    """The other order of events: the restart rebuilds the pair and learns its fills before the
    venue's positions arrive; a reading taken before the last fills counts them once."""
    lp = _close_resting_after_4_of_10()
    found, orders = _restart(lp, "d1")
    reading = lp.venues["SHFE"].two_sided_reading()  # read now: 4 filled, 6 long
    lp.venues["SHFE"].on_market(Quote(instrument="SHFE.cu", bid=Decimal(71995), ask=Decimal(72000), bid_size=20,
                                      ask_size=50, venue_ts_ns=T0 + 1, ts_ns=T0 + 1))
    _, cmds = lp.book.recover(found, orders)
    lp.run(cmds)  # the queries say 10 filled; nothing loaded yet
    lp.book.load_positions("SHFE", reading["positions"], reading["order_fills"], reading["accounts"])
    assert lp.book.positions.snapshot() == {} == lp.venues["SHFE"].two_sided_positions()
    loaded = [e for e in lp.events if e.kind is EventKind.RECONCILE and e.payload.get("action") == "positions_loaded"]
    assert loaded[-1].payload["orders_based"] >= 1
    assert not [e for e in lp.events if e.kind is EventKind.BAD_INPUT]


def test_a_reading_for_one_account_leaves_another_accounts_positions_alone():
    lp = Loop()
    lp.book.positions.set("cn2", "SHFE.cu", long_today=3)
    lp.venues["SHFE"].two_sided.set("cn", "SHFE.cu", short_yesterday=2, trading_day=dt.date(2025, 1, 6))
    reading = lp.venues["SHFE"].two_sided_reading()
    assert reading["accounts"] == ["cn"]
    lp.book.load_positions("SHFE", reading["positions"], reading["order_fills"], reading["accounts"])
    assert lp.book.positions.get("cn2", "SHFE.cu").long.today == 3
    assert lp.book.positions.get("cn", "SHFE.cu").short.yesterday == 2
    lp.book.load_positions("SHFE", {})  # a reading that names no accounts speaks for all of them
    assert lp.book.positions.snapshot() == {}


def test_order_fills_that_cannot_be_read_are_recorded_and_taken_as_not_given():
    lp = _close_resting_after_4_of_10()
    found, orders = _restart(lp, "d1")
    reading = lp.venues["SHFE"].two_sided_reading()
    bad = dict(reading["order_fills"]) | {"x-1": -3}
    lp.book.load_positions("SHFE", reading["positions"], bad, reading["accounts"])
    assert lp.book.bad_inputs["positions"] == 1
    assert "x-1: -3 lots filled" in [e for e in lp.events if e.kind is EventKind.BAD_INPUT][-1].reason
    assert lp.book.order_fills == {}
    _, cmds = lp.book.recover(found, orders)
    lp.run(cmds)
    # as before the reading carried fills: the rebuilt order adds nothing, the loaded 6 stay
    assert lp.book.positions.get("cn", "SHFE.cu").long.yesterday == 6
