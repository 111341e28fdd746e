"""The strategy host actor's stage methods, run without Ray on its in-memory sink: a promotion
reads the gate's figures from the trail, a refusal and a pass are both recorded; the configured
automatic demotion acts on a red alert and on a breached gate."""
from __future__ import annotations

import asyncio
import time

import pytest

from strategy_kit import ctx
from testkit import ROOT
from xmc_actors.actors.strategy import StrategyHostActor
from xmc_actors.lab.engine import LabRun
from xmc_actors.model.events import Event, EventKind
from xmc_actors.model.stages import DemoteConfig, GateConfig, StageGates
from xmc_actors.runtime.config import load_config
from xmc_actors.strategies import BandStrategy
from xmc_actors.strategies.stages import StageSettings

NAME = "copper-shfe-lme"
BASE = dict(signal="ratio", price="mid", center=1.0, entry=0.01, exit=0.003, clip=1, max_position=3, cooldown_ms=0)


@pytest.fixture(scope="module")
def trail():
    """A lab run's trail of the strategy (price policy: 65% success), moved to the last minutes."""
    cfg = load_config(ROOT / "configs" / "lab" / "copper.yaml")
    cfg = cfg.model_copy(update={"lab": cfg.lab.model_copy(update={"max_duration_s": 600})})
    ev = LabRun(cfg, policy="price", seed=5).run().sink.events
    shift = time.time_ns() - 60 * 1_000_000_000 - max(e.ts_ns for e in ev)
    return [e.model_copy(update={"ts_ns": e.ts_ns + shift}) for e in ev]


def actor(stage, gates=None, demote=None, events=()):
    s = BandStrategy(ctx(NAME), BASE)
    a = StrategyHostActor([s], None, stages={NAME: StageSettings(stage=stage, gates=gates or StageGates(),
                                                                 demote=demote or DemoteConfig())})
    a.sink.events.extend(events)
    return a


def stage_events(a):
    return [e for e in a.sink.events if e.kind is EventKind.STAGE]


def test_promotion_is_refused_with_the_figures_then_passes_a_gate_they_meet(trail):
    async def go():
        strict = StageGates(live=GateConfig(min_pairs=10, min_success_rate=0.9, window_s=3600))
        a = actor("canary", strict, events=trail)
        res = await a.promote(NAME, "alice", "looks good")
        assert not res["ok"] and res["refused"] and res["stage"] == "canary"
        [miss] = [c for c in res["gate"]["checks"] if not c["met"]]
        assert miss["bound"] == "min_success_rate" and miss["value"] == pytest.approx(15 / 23)
        [ev] = stage_events(a)
        assert ev.payload["outcome"] == "REFUSED" and ev.payload["gate"]["passed"] is False
        assert "success rate 0.6522 misses >= 0.9" in ev.reason and ev.payload["operator"] == "alice"
        loose = actor("canary", StageGates(live=GateConfig(min_pairs=10, min_success_rate=0.6, window_s=3600)),
                      events=trail)
        ok = await loose.promote(NAME, "alice")
        assert ok["ok"] and (ok["from"], ok["to"]) == ("canary", "live")
        assert stage_events(loose)[-1].payload["outcome"] == "CHANGED"
        # nothing to promote to, no operator, a jump: refused before any record
        assert "promotion leads up" in (await loose.promote(NAME, "alice"))["error"]
        assert "operator" in (await loose.promote(NAME, " "))["error"]
        assert "one stage at a time" in (await actor("shadow").promote(NAME, "x", to="live"))["error"]
    asyncio.run(go())


def test_a_breached_gate_while_live_demotes_to_shadow_when_configured(trail):
    async def go():
        gates = StageGates(live=GateConfig(min_pairs=5, min_success_rate=0.9, window_s=3600))
        a = actor("live", gates, DemoteConfig(on_gate_breach=True), events=trail)
        await a.check_demotions(0)
        [ev] = stage_events(a)
        assert ev.payload["action"] == "auto-demote" and ev.payload["to"] == "shadow"
        assert "gate breached while live" in ev.reason and a.core.stage(NAME) == "shadow"
        untouched = actor("live", gates, DemoteConfig(on_gate_breach=False), events=trail)
        await untouched.check_demotions(0)
        assert untouched.core.stage(NAME) == "live"
    asyncio.run(go())


def test_a_red_alert_about_the_strategy_demotes_it_when_configured():
    async def go():
        red = Event(event_id="a1", ts_ns=time.time_ns(), kind=EventKind.ALERT, reason="unhedged 9 s",
                    payload={"level": "red", "scope": "strategy", "key": NAME})
        other = Event(event_id="a2", ts_ns=time.time_ns(), kind=EventKind.ALERT, reason="x",
                      payload={"level": "red", "scope": "strategy", "key": "someone-else"})
        a = actor("canary", demote=DemoteConfig(on_red_alert=True), events=[other])
        await a.check_demotions(0)
        assert a.core.stage(NAME) == "canary"
        a.sink.events.append(red)
        await a.check_demotions(0)
        assert a.core.stage(NAME) == "shadow" and "red alert: unhedged 9 s" in stage_events(a)[-1].reason
    asyncio.run(go())


def test_a_host_restarted_after_a_crash_takes_each_strategys_stage_back_from_the_trail(monkeypatch):
    """Ray restarts a crashed host with its constructor's (the file's) stages; the stage an
    operator set at run time is in the trail and comes back, the shadow's real position with it."""
    import types

    import ray

    import xmc_actors.ledger.reader as reader
    from xmc_actors.core.clock import SystemClock
    from xmc_actors.core.sink import EventMaker

    mk = EventMaker(SystemClock(), "strategy-host-0")
    trail = [mk.make(EventKind.SHADOW, strategy=NAME, decision_id=f"{NAME}-00000007", reason="would send"),
             mk.make(EventKind.STAGE, strategy=NAME, reason="promote: shadow -> canary", outcome="CHANGED",
                     action="promote", stage="canary", **{"from": "shadow", "to": "canary"})]

    async def read_trail(shards, kinds=None, decision_ids=None, **kw):
        return [e for e in trail if kinds is None or e.kind.value in kinds]

    class Remote:
        def __init__(self, answer):
            self.answer = answer

        def remote(self):
            async def get():
                return self.answer
            return get()

    guard = types.SimpleNamespace(status=Remote({"positions": {"strategies": {NAME: {"LME.CA3M": -2, "SHFE.cu": 10}}},
                                                 "trading_states": {}}))
    coord = types.SimpleNamespace(status=Remote({"trading_states": {}}))
    monkeypatch.setattr(reader, "read_trail", read_trail)
    monkeypatch.setattr(ray, "get_runtime_context", lambda: types.SimpleNamespace(namespace="ns"))
    monkeypatch.setattr(ray, "get_actor", lambda name, namespace=None: guard if name == "risk-guard" else coord)

    async def go():
        a = actor("shadow")
        a.sink.shard_handles = ["shard"]
        a._reconstructed = True
        await a._restore([NAME])
        st = a.core.strategies[NAME]
        assert a.core.stage(NAME) == "canary" and a.core.stages.state(NAME).real is None
        from xmc_actors.strategies.host import RESTART_SEQ_GAP
        # its decision ids go on past the gap after the trail's last (7)
        assert (st.position, st.position_b) == (-2, 10) and st.decision_seq == 7 + RESTART_SEQ_GAP
        assert any("stage canary taken back from the trail" in e.reason for e in a.sink.events)
        # a host that did not crash (a deployment started again from its file) keeps the file's stage
        b = actor("shadow")
        b.sink.shard_handles = ["shard"]
        await b._restore([NAME])
        assert b.core.stage(NAME) == "shadow" and b.core.stages.state(NAME).real == (-2, 10)
    asyncio.run(go())
