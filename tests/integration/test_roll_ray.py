"""A copper position rolled from one month to the next as one traced decision (issue 19 item 1):
PairCoordinator on Ray against simulated SHFE and COMEX gateways; the trail read back with
``AuditReader.trace`` (what ``xmc audit trace`` prints). Last, the operator's command ``xmc roll``
against the same actors found by name in the namespace with a deployment registry, as a
deployment started by ``xmc run`` has them.

The coordinator and ``xmc roll`` keep time on the wall clock, so the position is in the contracts
``plan_roll`` rolls on the day the test runs (``DAY``, today in UTC): the main contract of SHFE
copper and of COMEX copper on that day (near) and the next active month of each (far); on
6 Dec 2026 long SHFE cu2701 against short COMEX HGH7, rolled to cu2702 / HGK7. When a venue's
calendar in the catalogue ends before a date the plan needs, the module is skipped naming that
end (add the exchange's next holidays, docs/contracts.md "the yearly update")."""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest
import ray

import testkit
from testkit import wait_until
from xmc_actors.actors.coordinator import PairCoordinator
from xmc_actors.actors.gateway import VenueGateway
from xmc_actors.core.contracts import Holding, concrete_instrument, main_contract, parse_contract, plan_roll
from xmc_actors.core.roll import build_roll, roll_by_ns, roll_request
from xmc_actors.ledger.actor import start_ledger
from xmc_actors.ledger.audit import AuditReader
from xmc_actors.ledger.client import LedgerClient
from xmc_actors.ledger.schema import encode_events
from xmc_actors.ledger.store import LedgerStore
from xmc_actors.model.config import DeploymentConfig, FeedConfig, GatewayConfig, LedgerConfig
from xmc_actors.model.pairs import ReplenishBudget
from xmc_actors.model.pairs import LegIntent, PairIntent
from xmc_actors.model.market import Side
from xmc_actors.ops.cli import main
from xmc_actors.runtime.session import REGISTRY_NAME, DeploymentRegistry

pytestmark = pytest.mark.ray
DAY = dt.datetime.now(dt.timezone.utc).date()
VENUES = {"SHFE": testkit.venue("SHFE", offsets=True), "COMEX": testkit.venue("COMEX")}
CU, HG = testkit.instrument("SHFE.cu"), testkit.instrument("COMEX.HG")


def _calendar_gap(day: dt.date) -> str | None:
    """Why the roll cannot be planned on ``day`` with the catalogue's calendars, or None: ``day``
    after a venue's calendar end, or the hold deadline of the contract that is main on ``day``
    after it (not known, never guessed)."""
    for product, v in ((CU, VENUES["SHFE"]), (HG, VENUES["COMEX"])):
        assert v.calendar is not None, f"{v.code} has no calendar in the catalogue"
        end = f"{v.code}'s calendar end in the catalogue ({v.calendar.end})"
        fix = f"add {v.code}'s holidays after it to configs/catalogue.yaml (docs/contracts.md, the yearly update)"
        if day > v.calendar.end:
            return f"today ({day}) is after {end}: {fix}"
        near = main_contract(product, v, day)
        if near.hold_deadline is None:
            return f"the hold deadline of {near.id}, the contract to roll on {day}, lies after {end}: {fix}"
    return None


if (_GAP := _calendar_gap(DAY)) is not None:
    pytest.skip(_GAP, allow_module_level=True)
# what plan_roll rolls on DAY: each product's main contract (near) into its next active month (far)
PLAN = plan_roll([Holding(CU, VENUES["SHFE"], 2), Holding(HG, VENUES["COMEX"], -2)], DAY)
(CU_NEAR, CU_FAR), (HG_NEAR, HG_FAR) = ((lg.near.id, lg.far.id) for lg in PLAN.legs)
BINDING_TZ = VENUES[PLAN.legs[ord(PLAN.binding) - ord("A")].near.venue].timezone
IDS = (CU_NEAR, CU_FAR, HG_NEAR, HG_FAR)
PX = {CU_NEAR: 72000, CU_FAR: 72100, HG_NEAR: Decimal("4.5"), HG_FAR: Decimal("4.55")}
LIMITS = {CU_NEAR: 71990, CU_FAR: 72110, HG_NEAR: "4.5005", HG_FAR: "4.5495"}  # the roll's limit prices
CFG = {"ack_timeout_ms": 300, "cancel_timeout_ms": 300, "call_timeout_ms": 800, "query_backoff_ms": 20,
       "query_window_ms": 1000}


def _concrete(inst_id: str):
    product = CU if inst_id.startswith("SHFE") else HG
    venue = VENUES[inst_id.split(".")[0]]
    return concrete_instrument(product, parse_contract(product, venue, inst_id, DAY))


INSTS = [_concrete(i) for i in IDS]


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, namespace="roll-test", log_to_driver=False)
    yield
    ray.shutdown()


_KEEP: list = []


def _setup(name: str, quotes: dict | None = None, registered: bool = False, ledger: Any = None):
    """Simulated SHFE and COMEX gateways quoting the four contracts, a coordinator, and the
    position the roll starts from: long 2 SHFE copper against short 2 COMEX copper, both in their
    near contract (CU_NEAR, HG_NEAR). ``registered``:
    the coordinator under its deployment name, with the products listed too and a deployment
    registry holding the configuration (what ``xmc roll`` reads). ``ledger``: a LedgerConfig;
    the coordinator writes its trail there and Ray restarts it once (as a deployment's does)."""
    params = {"seed": 1, "enforce_sessions": False, "enforce_price_limits": False, "ack_timeout_ms": 200,
              "network_latency": {"kind": "const", "mean_ms": 0.0}}
    insts = [CU, HG, *INSTS] if registered else INSTS
    dep = DeploymentConfig(name=name, venues=tuple(VENUES.values()), instruments=tuple(insts),
                           gateways=tuple(GatewayConfig(venue=v, params=params, feed=FeedConfig()) for v in VENUES))
    gws = {v: VenueGateway.options(num_cpus=0).remote(dep, v, clock_mode="system") for v in VENUES}
    ray.get([g.ready.remote() for g in gws.values()], timeout=60)
    for i in IDS:
        p = Decimal(str(PX[i]))
        tick = Decimal("10") if i.startswith("SHFE") else Decimal("0.0005")
        bid, ask = (quotes or {}).get(i, (p - tick, p + tick))
        ray.get(gws[i.split(".")[0]].push_market.remote([testkit.quote(i, bid, ask, bid_size=50, ask_size=50)]))
    named: dict[str, Any] = {"name": "coordinator"} if registered else {}
    sink = None
    if ledger is not None:
        sink = LedgerClient(start_ledger(ledger, "roll-test"), ledger)
        named["max_restarts"] = 1
    coord = PairCoordinator.options(num_cpus=0, **named).remote(insts, gws, config=CFG, name=name, sink=sink,
                                                                venues=list(VENUES.values()))
    if registered:
        reg = DeploymentRegistry.options(name=REGISTRY_NAME).remote(
            {"name": name, "namespace": "roll-test", "coordinator": "coordinator", "strategies": ["cu_pair"],
             "config": dep.model_dump(mode="json", by_alias=True)})
        ray.get(reg.ready.remote(), timeout=30)
        _KEEP.append(reg)  # a named actor without a detached lifetime lives while a handle does
    ray.get(coord.ready.remote(), timeout=60)
    legs = (LegIntent(leg="A", instrument=CU_NEAR, account="cn", side=Side.BUY, qty=2,
                      limit_price=Decimal(72010), trigger_price=Decimal(72010)),
            LegIntent(leg="B", instrument=HG_NEAR, account="us", side=Side.SELL, qty=2,
                      limit_price=Decimal("4.4995"), trigger_price=Decimal("4.4995")))
    ray.get(coord.submit.remote(PairIntent(decision_id="open-1", strategy="cu_pair", legs=legs)), timeout=30)
    opened = ray.get(coord.await_pair.remote("open-1", 20), timeout=30)
    assert opened["state"] == "HEDGED" and opened["complete"], opened
    return coord, gws


def _trace(coord, tmp_path, decision_id: str):
    """The coordinator's trail written to a ledger shard and traced as `xmc audit trace` does."""
    events = ray.get(coord.events.remote(), timeout=30)
    led = tmp_path / "ledger"
    led.mkdir()
    store = LedgerStore(led / "shard-0.duckdb")
    store.append(encode_events(events).table, stored_ns=time.time_ns())
    store.close()
    with AuditReader(led) as r:
        return r.trace(decision_id)


def _host(coord):
    """A strategy host holding the position the roll starts from: a band strategy ``cu_pair`` on
    the near months, +2 / -2 lots (halted: it must not trade on the test's quotes)."""
    import dataclasses

    from xmc_actors.actors.strategy import StrategyHost
    from xmc_actors.core.pricing import FxBook, StaticRate
    from xmc_actors.model import LegSpec
    from xmc_actors.strategies import BandStrategy
    from xmc_actors.strategies.base import StrategyContext

    by_id = {i.id: i for i in INSTS}
    cx = StrategyContext(name="cu_pair", legs=(LegSpec(instrument=CU_NEAR, account="cn"),
                                               LegSpec(instrument=HG_NEAR, account="us")),
                         instruments=(by_id[CU_NEAR], by_id[HG_NEAR]), venues=(VENUES["SHFE"], VENUES["COMEX"]),
                         fx=FxBook({("USD", "CNY"): StaticRate(7.0)}), hedge_ratio=Decimal(1))
    far = dataclasses.replace(cx, name="far_months", legs=(LegSpec(instrument=CU_FAR, account="cn"),
                                                             LegSpec(instrument=HG_FAR, account="us")),
                              instruments=(by_id[CU_FAR], by_id[HG_FAR]))  # lists the far months in the host
    params = dict(signal="ratio", price="mid", center=1.0, entry=0.01, exit=0.003, clip=1, max_position=4)
    host = StrategyHost.options(num_cpus=0).remote([BandStrategy(cx, params, position=2, position_b=-2),
                                                    BandStrategy(far, params)], coord)
    ray.get(host.halt.remote("cu_pair", "test: holds the position, does not trade"), timeout=30)
    ray.get(coord.register_strategy.remote("cu_pair", host), timeout=30)
    return host


def test_a_copper_position_rolls_to_the_next_month_as_one_traced_decision(tmp_path):
    coord, gws = _setup("coord-roll")
    host = _host(coord)

    # the operator's request: plan, deadline (end of roll_by, the binding venue's time zone) and children in one call
    now = time.time_ns()
    req = roll_request([Holding(CU, VENUES["SHFE"], 2, CU_NEAR), Holding(HG, VENUES["COMEX"], -2, HG_NEAR)],
                       DAY, decision_id="roll-cu-1", strategy="cu_pair", accounts={"SHFE": "cn", "COMEX": "us"},
                       prices=LIMITS, now_ns=now, operator="alice")
    assert [(lg.near.id, lg.far.id) for lg in req.plan.legs] == [(CU_NEAR, CU_FAR), (HG_NEAR, HG_FAR)]
    assert req.deadline_ns == roll_by_ns(PLAN, BINDING_TZ) and req.deadline_ns > now  # not due to pass in the test
    ans = ray.get(coord.submit_roll.remote(req), timeout=30)
    assert ans["accepted"] and [a["accepted"] for a in ans["children"]] == [True, True], ans
    out = wait_until(lambda: ray.get(coord.roll_outcome.remote("roll-cu-1")), timeout=30, what="roll outcome")
    assert out["state"] == "ROLLED", out
    assert out["children"]["roll-cu-1.rollA"]["net"] == {CU_NEAR: -2, CU_FAR: 2}
    assert out["children"]["roll-cu-1.rollB"]["net"] == {HG_NEAR: 2, HG_FAR: -2}
    # a duplicate is refused, nothing sent
    assert ray.get(coord.submit_roll.remote(req), timeout=30)["duplicate"]
    # the strategy's legs followed its lots to the far months, its position and state kept
    def on_far() -> dict | None:
        s = ray.get(host.status.remote(), timeout=30)["strategies"]["cu_pair"]
        return s if s["instruments"] == [CU_FAR, HG_FAR] else None
    st = wait_until(on_far, timeout=30, what="strategy on the far months")
    assert (st["position"], st["position_b"], st["state"]) == (2, -2, "HALTED"), st
    assert ray.get(host.status.remote(), timeout=30)["bad_input"] == 0  # the children were not pushed to it

    # positions as the venues hold them: all on the far months
    shfe = ray.get(gws["SHFE"].positions.remote(), timeout=30)
    comex = ray.get(gws["COMEX"].positions.remote(), timeout=30)
    assert {k: v for k, v in shfe["cn"].items() if v} == {CU_FAR: 2}, shfe
    assert {k: v for k, v in comex["us"].items() if v} == {HG_FAR: -2}, comex

    tr = _trace(coord, tmp_path, "roll-cu-1")
    assert tr.outcome == "ROLLED"
    kinds = [h.kind for h in tr.hops]
    assert kinds[0] == "OPERATOR" and tr.hops[0].payload["roll_children"] == ["roll-cu-1.rollA", "roll-cu-1.rollB"]
    assert tr.hops[0].payload["operator"] == "alice" and tr.hops[0].payload["roll_by"] == PLAN.roll_by.isoformat()
    sent = [h for h in tr.hops if h.kind == "ORDER_SENT"]
    assert sorted(h.instrument for h in sent) == sorted(IDS)
    # the SHFE near sell closes (offsets chosen by the coordinator from the position it opened)
    near = next(h for h in sent if h.instrument == CU_NEAR)
    assert "CLOSE" in str(near.payload.get("offset")), near.payload
    filled = {h.instrument for h in tr.hops if h.kind == "ORDER_REPORT" and "FILL" in str(h.payload.get("report_kind"))}
    assert filled == set(IDS), [(h.instrument, h.payload) for h in tr.hops if h.kind == "ORDER_REPORT"]
    assert kinds[-1] == "LIFECYCLE" and tr.hops[-1].reason == "ROLL_DONE"
    # nothing of the opening pair is in the roll's trace
    assert not [h for h in tr.hops if h.order_id.startswith("open-1")]
    # bad input is refused and counted, the actor carries on
    bad = ray.get(coord.submit_roll.remote({"decision_id": "roll-x"}), timeout=30)
    assert not bad["accepted"] and bad["reason"].startswith("request:")
    assert ray.get(coord.status.remote(), timeout=30)["bad_input"].get("roll") == 1
    ray.get(coord.shutdown.remote(), timeout=60)


def test_a_venue_that_does_not_roll_by_the_deadline_raises_a_red_alert_naming_mismatched_months(tmp_path):
    # nobody bids for COMEX's far month near the roll's limit: COMEX cannot open it
    coord, gws = _setup("coord-roll-late", quotes={HG_FAR: (Decimal("4.0"), Decimal("4.6"))})
    plan = plan_roll([Holding(CU, VENUES["SHFE"], 2, CU_NEAR), Holding(HG, VENUES["COMEX"], -2, HG_NEAR)], DAY)
    now = time.time_ns()  # a deadline 3 s from now, whatever the plan's roll_by
    req = build_roll(plan, decision_id="roll-cu-2", strategy="cu_pair", accounts={"SHFE": "cn", "COMEX": "us"},
                     prices=LIMITS, deadline_ns=now + 3_000_000_000, now_ns=now)
    assert ray.get(coord.submit_roll.remote(req), timeout=30)["accepted"]
    # a second roll of the same position (another id: a restarted risk guard's) while this one
    # is still moving the lots: refused, to be sent again once the first is decided
    again = ray.get(coord.submit_roll.remote(build_roll(
        plan, decision_id="roll-cu-3", strategy="cu_pair", accounts={"SHFE": "cn", "COMEX": "us"}, prices=LIMITS,
        deadline_ns=now + 3_000_000_000, now_ns=now)), timeout=30)
    assert not again["accepted"] and again["transient"] and again["reason"].startswith("ROLLING: roll roll-cu-2"), again
    out = wait_until(lambda: ray.get(coord.roll_outcome.remote("roll-cu-2")), timeout=30, what="roll outcome")
    assert out["state"] == "ESCALATED", out
    assert ray.get(coord.roll_outcome.remote("roll-cu-3")) is None  # nothing of it was recorded or sent
    assert "roll-cu-2.rollB" in out["reason"] and "mismatched months" in out["reason"], out
    assert out["children"]["roll-cu-2.rollA"]["complete"] and not out["children"]["roll-cu-2.rollB"]["complete"]
    # SHFE is on its far month; COMEX ends back on its near month (its near close rolled back)
    wait_until(lambda: ray.get(coord.await_pair.remote("roll-cu-2.rollB", 1), timeout=30), timeout=30,
               what="COMEX child ended")
    shfe = ray.get(gws["SHFE"].positions.remote(), timeout=30)
    comex = ray.get(gws["COMEX"].positions.remote(), timeout=30)
    assert {k: v for k, v in shfe["cn"].items() if v} == {CU_FAR: 2}, shfe
    assert {k: v for k, v in comex["us"].items() if v} == {HG_NEAR: -2}, comex
    tr = _trace(coord, tmp_path, "roll-cu-2")
    assert tr.outcome == "ESCALATED"
    alerts = [h for h in tr.hops if h.kind == "ALERT" and h.payload.get("monitor") == "calendar_roll"]
    assert len(alerts) == 1 and alerts[0].payload["level"] == "red" and "mismatched months" in alerts[0].reason
    ray.get(coord.shutdown.remote(), timeout=60)


def test_a_coordinator_killed_mid_roll_decides_the_roll_from_its_trail_and_the_venues(tmp_path):
    """Issue 19 with the restart recovery: the roll's tracker lived only in the coordinator's
    memory, so a coordinator killed mid-roll lost the roll: no outcome, no ROLL_DONE, no alert,
    and the same roll could be sent again. The restarted coordinator reads the roll back from its
    ledger, winds the open child down from the venues' word and decides the roll."""
    # COMEX's far month has no bid near the roll's limit: its child rests, working, for up to a minute
    coord, gws = _setup("coord-roll-kill", quotes={HG_FAR: (Decimal("4.0"), Decimal("4.6"))},
                        ledger=LedgerConfig(path=str(tmp_path / "ledger"), shards=1, flush_ms=2))
    plan = plan_roll([Holding(CU, VENUES["SHFE"], 2, CU_NEAR), Holding(HG, VENUES["COMEX"], -2, HG_NEAR)], DAY)
    now = time.time_ns()
    req = build_roll(plan, decision_id="roll-cu-3", strategy="cu_pair", accounts={"SHFE": "cn", "COMEX": "us"},
                     prices=LIMITS, deadline_ns=now + 600 * 10**9, now_ns=now,
                     replenish=ReplenishBudget(max_attempts=1, max_time_ms=60_000))
    assert ray.get(coord.submit_roll.remote(req), timeout=30)["accepted"]
    wait_until(lambda: ray.get(coord.await_pair.remote("roll-cu-3.rollA", 1), timeout=30), timeout=30,
               what="SHFE child hedged")
    assert ray.get(coord.roll_outcome.remote("roll-cu-3"), timeout=30) is None  # COMEX's far sell rests
    # while it works, the strategy's own pairs on these contracts wait: they would trade the lots it moves
    legs = (LegIntent(leg="A", instrument=CU_NEAR, account="cn", side=Side.SELL, qty=2, limit_price=Decimal(71990)),
            LegIntent(leg="B", instrument=HG_NEAR, account="us", side=Side.BUY, qty=2, limit_price=Decimal("4.5005")))
    exit_ = ray.get(coord.submit.remote(PairIntent(decision_id="exit-1", strategy="cu_pair", legs=legs)), timeout=30)
    assert not exit_["accepted"] and exit_["reason"].startswith("ROLLING: roll roll-cu-3 of cu_pair"), exit_
    ray.get(coord.flush_sink.remote(), timeout=30)  # what it wrote is in the ledger; then it dies
    ray.kill(coord, no_restart=False)

    # the restarted coordinator knows the roll, winds COMEX's child down and decides the roll
    def outcome() -> Any:
        try:
            return ray.get(coord.roll_outcome.remote("roll-cu-3"), timeout=30)
        except ray.exceptions.ActorUnavailableError:  # restarting
            return None
    out = wait_until(outcome, timeout=60, what="roll decided after the restart")
    st = ray.get(coord.status.remote(), timeout=30)
    assert st["reconstructed"] and st["recovered"]["rolls"] == 1 and st["recovered"]["rolls_open"] == 1, st
    assert out["state"] == "ESCALATED" and "roll-cu-3.rollB" in out["reason"] and "mismatched months" in out["reason"]
    assert out["children"]["roll-cu-3.rollA"]["complete"] and not out["children"]["roll-cu-3.rollB"]["complete"]
    # sent again (the operator's retry after the crash): a duplicate, nothing sent
    assert ray.get(coord.submit_roll.remote(req), timeout=30)["duplicate"]
    # the venues: SHFE on its far month; COMEX's resting far sell cancelled, its near close unwound
    wait_until(lambda: {k: v for k, v in ray.get(gws["COMEX"].positions.remote(), timeout=30)["us"].items() if v}
               == {HG_NEAR: -2}, timeout=30, what="COMEX back on its near month")
    shfe = ray.get(gws["SHFE"].positions.remote(), timeout=30)
    assert {k: v for k, v in shfe["cn"].items() if v} == {CU_FAR: 2}, shfe
    # the trail: one ROLL_DONE and one red alert, written by the restarted life
    ray.get(coord.flush_sink.remote(), timeout=30)
    ray.get(coord.shutdown.remote(), timeout=60)
    with AuditReader(tmp_path / "ledger") as r:
        tr = r.trace("roll-cu-3")
    assert tr.outcome == "ESCALATED"
    assert len([h for h in tr.hops if h.kind == "LIFECYCLE" and h.reason == "ROLL_DONE"]) == 1
    alerts = [h for h in tr.hops if h.kind == "ALERT" and h.payload.get("monitor") == "calendar_roll"]
    assert len(alerts) == 1 and alerts[0].payload["level"] == "red"


def test_xmc_roll_rolls_the_running_deployments_position_and_waits_for_the_outcome(tmp_path, capsys):
    coord, gws = _setup("coord-roll-cli", registered=True)
    # xmc roll plans from the wall clock (its own day in SHFE's time zone, which may be DAY + 1)
    argv = ["roll", "--strategy", "cu_pair", "--long", f"{CU_NEAR}:{CU_FAR}=2", "--short", f"{HG_NEAR}=2",
            *(a for c, p in LIMITS.items() for a in ("--price", f"{c}={p}")), "--account", "SHFE=cn",
            "--account", "COMEX=us", "--operator", "alice", "--id", "roll-cli-1", "--wait", "30"]
    before = len(ray.get(coord.events.remote(), timeout=30))

    # a bad month is refused naming the leg, nothing reaches the coordinator
    bad = list(argv)
    bad[bad.index("--long") + 1] = "SHFE.cu2713=2"
    assert main(bad) == 2
    assert "--long SHFE.cu2713: 'cu2713': month 13 is not 01-12" in capsys.readouterr().err
    assert len(ray.get(coord.events.remote(), timeout=30)) == before

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "roll-cli-1: submitted (xmc audit trace roll-cli-1)" in out, out
    assert "ROLLED: every leg is on its far contract" in out, out
    shfe = ray.get(gws["SHFE"].positions.remote(), timeout=30)
    comex = ray.get(gws["COMEX"].positions.remote(), timeout=30)
    assert {k: v for k, v in shfe["cn"].items() if v} == {CU_FAR: 2}, shfe
    assert {k: v for k, v in comex["us"].items() if v} == {HG_FAR: -2}, comex
    tr = _trace(coord, tmp_path, "roll-cli-1")
    assert tr.outcome == "ROLLED" and tr.hops[0].payload["operator"] == "alice"

    # the same id again: refused, nothing sent
    assert main(argv) == 2
    assert "roll-cli-1: a roll with this decision id was already submitted; nothing sent" in capsys.readouterr().err

    # the near months are flat now: a roll of them (under a new id) would open instead of close,
    # so the coordinator refuses it against the venues' positions and nothing is sent
    again = list(argv)
    again[again.index("--id") + 1] = "roll-cli-2"
    sent = sum(1 for e in ray.get(coord.events.remote(), timeout=30) if e.kind.value == "ORDER_SENT")
    assert main(again) == 2
    err = capsys.readouterr().err
    assert "roll refused: roll-cli-2.rollA: cn holds 0 lot(s) long of " + CU_NEAR in err, err
    assert "roll-cli-2.rollB: us holds 0 lot(s) short of " + HG_NEAR in err, err
    evs = ray.get(coord.events.remote(), timeout=30)
    assert sum(1 for e in evs if e.kind.value == "ORDER_SENT") == sent
    assert any(e.kind.value == "BAD_INPUT" and e.decision_id == "roll-cli-2" for e in evs)
    ray.get(coord.shutdown.remote(), timeout=60)


def test_an_lme_prompt_leg_rolls_to_the_three_month_prompt_with_shfe_in_one_decision(tmp_path):
    """Issue 19: an LME leg is a prompt date, not a month. Long SHFE copper against short LME
    copper on a prompt about three weeks out: the roll carries the LME lots to the 3-month prompt
    of the roll's first day and SHFE's to its next month, as one decision."""
    from xmc_actors.core.calendar import is_business_day
    from xmc_actors.core.contracts import lme_contract

    lme_v, ca = testkit.venue("LME"), testkit.instrument("LME.CA3M")
    d = DAY + dt.timedelta(days=21)
    while not is_business_day(lme_v, d):  # a prompt is a London business day
        d += dt.timedelta(days=1)
    near_c = lme_contract(ca, lme_v, d)
    venues = {"SHFE": VENUES["SHFE"], "LME": lme_v}
    plan = plan_roll([Holding(CU, VENUES["SHFE"], 2, CU_NEAR), Holding(ca, lme_v, -2, f"LME.{near_c.symbol}")], DAY)
    (cu_near, cu_far), (ca_near, ca_far) = ((lg.near.id, lg.far.id) for lg in plan.legs)
    assert ca_near == f"LME.{near_c.symbol}" and ca_far.startswith("LME.CA-") and ca_far != ca_near
    assert plan.legs[1].far.prompt > plan.legs[1].near.prompt  # carried forward to a later prompt
    conc = {i.id: i for i in (concrete_instrument(CU, parse_contract(CU, VENUES["SHFE"], x, DAY))
                              for x in (cu_near, cu_far))}
    conc.update({c.id: concrete_instrument(ca, c) for c in (plan.legs[1].near, plan.legs[1].far)})
    params = {"seed": 1, "enforce_sessions": False, "enforce_price_limits": False, "ack_timeout_ms": 200,
              "network_latency": {"kind": "const", "mean_ms": 0.0}}
    dep = DeploymentConfig(name="lme-roll", venues=tuple(venues.values()), instruments=tuple(conc.values()),
                           gateways=tuple(GatewayConfig(venue=v, params=params, feed=FeedConfig()) for v in venues))
    gws = {v: VenueGateway.options(num_cpus=0).remote(dep, v, clock_mode="system") for v in venues}
    ray.get([g.ready.remote() for g in gws.values()], timeout=60)
    px = {cu_near: (71990, 72010), cu_far: (72090, 72110), ca_near: ("9800", "9801"), ca_far: ("9850", "9851")}
    for i, (b, a) in px.items():
        ray.get(gws[i.split(".")[0]].push_market.remote([testkit.quote(i, b, a, bid_size=50, ask_size=50)]))
    coord = PairCoordinator.options(num_cpus=0).remote(list(conc.values()), gws, config=CFG, name="coord-lme",
                                                       venues=list(venues.values()))
    ray.get(coord.ready.remote(), timeout=60)
    legs = (LegIntent(leg="A", instrument=cu_near, account="cn", side=Side.BUY, qty=2, limit_price=Decimal(72010)),
            LegIntent(leg="B", instrument=ca_near, account="us", side=Side.SELL, qty=2, limit_price=Decimal("9800")))
    ray.get(coord.submit.remote(PairIntent(decision_id="open-lme", strategy="cu_lme", legs=legs)), timeout=30)
    assert ray.get(coord.await_pair.remote("open-lme", 20), timeout=30)["state"] == "HEDGED"
    # Act: the roll as an operator's request, prices inside each touch
    req = roll_request([Holding(CU, VENUES["SHFE"], 2, cu_near), Holding(ca, lme_v, -2, ca_near)], DAY,
                       decision_id="roll-lme-1", strategy="cu_lme", accounts={"SHFE": "cn", "LME": "us"},
                       prices={cu_near: 71990, cu_far: 72110, ca_near: "9801", ca_far: "9850"}, now_ns=time.time_ns())
    assert ray.get(coord.submit_roll.remote(req), timeout=30)["accepted"]
    out = wait_until(lambda: ray.get(coord.roll_outcome.remote("roll-lme-1")), timeout=30, what="roll outcome")
    # Assert: one decision, both venues on their far contract
    assert out["state"] == "ROLLED", out
    assert {m["near"]: (m["far"], m["rolled"]) for m in out["moves"]} == {cu_near: (cu_far, True),
                                                                          ca_near: (ca_far, True)}
    lme = ray.get(gws["LME"].positions.remote(), timeout=30)
    assert {k: v for k, v in lme["us"].items() if v} == {ca_far: -2}, lme
    shfe = ray.get(gws["SHFE"].positions.remote(), timeout=30)
    assert {k: v for k, v in shfe["cn"].items() if v} == {cu_far: 2}, shfe
    ray.get(coord.shutdown.remote(), timeout=60)


def test_the_risk_guards_roll_watch_rolls_a_due_position_by_itself_through_the_coordinator(tmp_path):
    """strategies[].roll.mode auto: the risk guard, on a day inside the roll window (its clock is
    set there; the coordinator keeps the wall clock, on which the roll's deadline is still ahead),
    alerts roll_due, sends the roll once, and learns its outcome from the coordinator."""
    from zoneinfo import ZoneInfo

    from xmc_actors.actors.risk_guard import RiskGuard
    from xmc_actors.core.clock import SimClock
    from xmc_actors.model.market import Account

    if PLAN.status == "overdue":
        pytest.skip(f"the plan of {DAY} is overdue: the roll's deadline would be behind the coordinator's wall clock")
    coord, gws = _setup("coord-roll-watch")
    day = max(PLAN.roll_from, DAY)
    sim = SimClock(int(dt.datetime.combine(day, dt.time(10, 0), ZoneInfo("Asia/Shanghai")).timestamp()) * 10**9)
    dep = DeploymentConfig.model_validate({
        "name": "roll-watch", "venues": [v.model_dump(mode="json") for v in VENUES.values()],
        "instruments": [i.model_dump(mode="json") for i in (CU, HG, *INSTS)],
        "accounts": [Account(id="cn", broker="sim", venues=("SHFE",), currency="CNY", capital=Decimal(10**8)).model_dump(mode="json"),
                     Account(id="us", broker="sim", venues=("COMEX",), currency="USD", capital=Decimal(10**7)).model_dump(mode="json")],
        "strategies": [{"name": "cu_pair", "class": "band", "legs": [{"instrument": CU_NEAR, "account": "cn"},
                                                                      {"instrument": HG_NEAR, "account": "us"}],
                        "hedge_ratio": 1, "roll": {"mode": "auto", "limit_ticks": 1}}]})
    guard = RiskGuard.options(num_cpus=0).remote(dep, clock=sim, refresh=False, rebuild_on_start=False,
                                                 account_poll_s=0, roll_check_s=0)
    ray.get(guard.register_coordinator.remote("coord-roll-watch", coord), timeout=30)
    # what the guard booked for the strategy: the opening pair's summary, as the coordinator pushes it
    opened = next(s for s in ray.get(coord.summaries.remote(), timeout=30) if s["decision_id"] == "open-1")
    ray.get(guard.on_pair_done.remote(opened), timeout=30)
    ray.get(guard.on_quotes.remote([testkit.quote(i, b, a, ts_ns=sim.now_ns()) for i, (b, a) in {
        CU_NEAR: (71990, 72010), CU_FAR: (72090, 72110), HG_NEAR: ("4.4995", "4.5005"),
        HG_FAR: ("4.5495", "4.5505")}.items()]), timeout=30)
    # Act
    sent = ray.get(guard.check_rolls.remote(), timeout=60)["sent"]
    # Assert: one roll, accepted, executed and decided at the coordinator, the guard told
    [(did, ans)] = sent.items()
    assert did == f"autoroll-cu_pair-{CU_NEAR.replace('.', '_')}_2-{HG_NEAR.replace('.', '_')}_m2", sent
    assert ans["accepted"], ans
    out = wait_until(lambda: ray.get(coord.roll_outcome.remote(did), timeout=30), timeout=30, what="roll outcome")
    assert out["state"] == "ROLLED", out
    assert ray.get(guard.check_rolls.remote(), timeout=60)["sent"] == {}  # not sent twice
    st = ray.get(guard.roll_watch_status.remote(), timeout=30)["cu_pair"]
    assert st["rolls"] == {did: "ROLLED"} and st["pending"] is None and st["suspended"] is None
    alerts = [e for e in ray.get(guard.events.remote("ALERT"), timeout=30) if e.payload.get("monitor") == "roll_due"]
    assert alerts and alerts[0].payload["level"] == "yellow" and alerts[0].payload["action"] == "none"
    shfe = ray.get(gws["SHFE"].positions.remote(), timeout=30)
    assert {k: v for k, v in shfe["cn"].items() if v} == {CU_FAR: 2}, shfe
    ray.get(coord.shutdown.remote(), timeout=60)
