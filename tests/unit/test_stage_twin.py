"""A canary's shadow twin (canary.shadow_twin): the same strategy at full size, in shadow, on the
same quotes; the acceptance report sets the canary's real pairs beside what the twin would have
done and what it could not have done."""
from __future__ import annotations

from decimal import Decimal

from strategy_kit import T0, ctx, pair_quotes, written
from testkit import ROOT, quote
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.lab.engine import LabRun
from xmc_actors.ledger.acceptance import acceptance, build_html
from xmc_actors.ledger.stage_figures import twin_comparison
from xmc_actors.model.quotes import Level
from xmc_actors.model.stages import AcceptanceConfig, CanaryConfig, twin_name
from xmc_actors.runtime.config import load_config
from xmc_actors.strategies import BandStrategy
from xmc_actors.strategies.host import HostSpec, StrategyHostCore
from xmc_actors.strategies.stages import StageSettings

COPPER = ROOT / "configs" / "lab" / "copper.yaml"
NAME = "copper-shfe-lme"
BASE = dict(signal="ratio", price="mid", center=1.0, entry=0.01, exit=0.003, clip=4, max_position=8, cooldown_ms=0)


def test_a_host_spec_builds_the_twin_of_a_strategy_that_asks_for_one_always_in_shadow():
    cfg = load_config(COPPER)
    s = cfg.strategies[0]
    s = s.model_copy(update={"stage": "canary", "canary": CanaryConfig(size_fraction=0.2, shadow_twin=True)})
    dep = cfg.model_copy(update={"strategies": (s,)}).model_dump(mode="json", by_alias=True)
    spec = HostSpec(dep, (NAME,))
    built = spec.build()
    assert [b.name for b in built] == [NAME, twin_name(NAME)] == [NAME, f"{NAME}.twin"]
    assert built[1].instrument_ids == built[0].instrument_ids
    stages = spec.stage_settings()
    assert stages[NAME].stage == "canary" and stages[twin_name(NAME)].stage == "shadow"
    plain = HostSpec(cfg.model_dump(mode="json", by_alias=True), (NAME,))
    assert [b.name for b in plain.build()] == [NAME] and list(plain.stage_settings()) == [NAME]


def test_the_twin_decides_full_size_on_the_same_quotes_while_the_canary_sends_its_fraction():
    canary = BandStrategy(ctx("cu"), BASE)
    twin = BandStrategy(ctx("cu.twin"), BASE)
    core = StrategyHostCore([canary, twin], EventMaker(SimClock(T0), "host"),
                            {"cu": StageSettings(stage="canary", canary=CanaryConfig(size_fraction=0.25, max_open_lots=8)),
                             "cu.twin": StageSettings(stage="shadow")})
    qa = quote("LME.CA3M", 10200, 10200, bid_size=3, ask_size=3, ts_ns=T0,
               bids=(Level(price=Decimal(10200), size=3),))
    qb = quote("SHFE.cu", 70000, 70000, bid_size=100, ask_size=100, ts_ns=T0)
    intents, events = written(core, "on_quotes", [qa, qb], T0)
    [sent] = intents
    assert sent.strategy == "cu" and sent.legs[0].qty == 1
    [sh] = [e for e in events if e.kind.value == "SHADOW"]
    assert sh.strategy == "cu.twin" and sh.payload["legs"][0]["qty"] == 4 and sh.payload["legs"][0]["short"] == 1
    cmp = twin_comparison(events, "cu", "cu.twin")
    assert cmp["twin_full_size"]["pairs"] == 1 and cmp["twin_full_size"]["mean_lots_a"] == 4
    assert cmp["twin_could_not"] == {"intents": 1, "lots_short": 1,
                                     "examples": [{"decision_id": "cu.twin-00000001", "ts_ns": T0,
                                                   "short_lots": {"A": 1}}]}


def test_the_acceptance_report_sets_the_real_pairs_beside_the_twin():
    cfg = load_config(COPPER)
    cfg = cfg.model_copy(update={"lab": cfg.lab.model_copy(update={"max_duration_s": 300})})
    real = LabRun(cfg, policy="speed", seed=5).run().sink.events
    twin = BandStrategy(ctx(twin_name(NAME)), {**BASE, "clip": 1})
    core = StrategyHostCore([twin], EventMaker(SimClock(T0), "host"), {twin_name(NAME): StageSettings(stage="shadow")})
    t = min(e.ts_ns for e in real)
    for i, r in enumerate((1.02, 1.0, 1.02)):
        core.on_quotes(pair_quotes(r, t=t + i), t + i)
    shadow = core.sink.events
    doc = acceptance(real + shadow, config=AcceptanceConfig())
    assert list(doc["strategies"]) == [NAME]  # the twin is reported beside its strategy, not as one
    tw = doc["strategies"][NAME]["twin"]
    assert tw["real"]["pairs"] > 5 and tw["real"]["mean_lots_a"] >= 5
    assert tw["twin_full_size"]["pairs"] == 3 and tw["twin_full_size"]["book_fill_rate"] == 1.0
    assert "beside its shadow twin" in build_html(doc)
