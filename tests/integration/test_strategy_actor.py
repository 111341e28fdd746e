"""The strategy host actor on Ray with a stand-in coordinator that records intents."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from testkit import wait_until  # noqa: E402
from strategy_kit import T0, ctx, pair_quotes  # noqa: E402

from xmc_actors.actors.strategy import StrategyHost  # noqa: E402
from xmc_actors.strategies import BandStrategy, Strategy  # noqa: E402
from xmc_actors.strategies.params import BandParams  # noqa: E402

pytestmark = pytest.mark.ray
PARAMS = {"signal": "ratio", "price": "mid", "center": 1.0, "entry": 0.01, "exit": 0.003, "cooldown_ms": 0,
          "guards": {"require_sessions_open": False, "stale_ms": 60_000}}


@ray.remote(num_cpus=0)
class RecordingCoordinator:
    """Records intents; refuses decision ids listed in ``refuse``; fails the first ``fail_first`` calls."""

    def __init__(self, refuse: tuple[str, ...] = (), fail_first: int = 0, fill_in_reply: bool = False,
                 recovering_first: int = 0) -> None:
        self.intents: list = []
        self.refuse = set(refuse)
        self.fail_left = fail_first
        self.recovering_left = recovering_first  # answered as a restarted coordinator still reading its trail
        self.fill_in_reply = fill_in_reply  # answer as the coordinator does when the pair hedged while held
        self.asked: list = []

    async def submit(self, intent, summary_in_reply=False):
        if self.fail_left > 0:
            self.fail_left -= 1
            raise RuntimeError("coordinator busy")
        if self.recovering_left > 0:
            self.recovering_left -= 1
            return {"decision_id": intent.decision_id, "accepted": False, "state": "REFUSED", "transient": True,
                    "reason": "RECOVERING: the restarted coordinator cannot read its trail yet; send it again"}
        self.intents.append(intent)
        self.asked.append(summary_in_reply)
        if intent.decision_id in self.refuse:
            return {"decision_id": intent.decision_id, "state": "REFUSED", "reason": "MAX_POSITION"}
        if self.fill_in_reply and summary_in_reply:
            legs = [{"leg": lg.leg, "instrument": lg.instrument, "account": lg.account, "side": lg.side.value,
                     "intended_qty": lg.qty, "filled_qty": lg.qty} for lg in intent.legs]
            return {"decision_id": intent.decision_id, "accepted": True, "state": "HEDGED", "summaries": [
                {"decision_id": intent.decision_id, "strategy": intent.strategy, "state": "HEDGED", "legs": legs}]}
        return {"decision_id": intent.decision_id, "state": "WORKING"}

    async def asked_for_summaries(self):
        return self.asked

    async def recorded(self):
        return self.intents


class Flaky(Strategy, name="test_actor_flaky", params=BandParams):
    def decide(self, snap):
        raise RuntimeError("flaky user code")


# classes defined here travel to the workers by value (the workers cannot import this test module)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="test-strategy-actor", log_to_driver=False)
    yield
    ray.shutdown()


def test_host_submits_intents_to_the_coordinator_and_applies_the_pushed_outcome():
    wall0 = time.time_ns()
    coord = RecordingCoordinator.remote()
    host = StrategyHost.remote([BandStrategy(ctx("g1"), PARAMS), Flaky(ctx("flaky"), PARAMS)], coord,
                               time_source="quotes")
    # Act: one quote batch shared by both instances
    ray.get(host.on_quotes.remote(pair_quotes(1.02, t=T0)))
    recorded = wait_until(lambda: ray.get(coord.recorded.remote()))
    # Assert: the good strategy's intent reached the coordinator; the flaky one is halted alone
    [intent] = recorded
    assert intent.decision_id == "g1-00000001" and intent.legs[0].qty == 1 and intent.legs[1].qty == 5
    # decided in quote time (2025), its deadline leaves on the wall clock the coordinator enforces
    assert intent.created_ns == T0 and wall0 < intent.deadline_ns < time.time_ns() + 3600 * 10**9
    # and so does its start-by, the same distance before the deadline as in quote time
    assert intent.deadline_ns - intent.start_by_ns == (10_000 - 2_000) * 1_000_000
    st = ray.get(host.status.remote())["strategies"]
    assert st["flaky"]["state"] == "ERROR" and st["g1"]["pending"] == "g1-00000001"
    evs = ray.get(host.events.remote())
    kinds = [e.kind.value for e in evs]
    assert "STRATEGY_ERROR" in kinds and "SIGNAL" in kinds
    # following quote time, the trail is still in wall time; the quote time rides along
    signal = next(e for e in evs if e.kind.value == "SIGNAL")
    assert wall0 <= signal.ts_ns <= time.time_ns() and signal.payload["market_ts_ns"] == T0
    assert all(wall0 <= e.ts_ns for e in evs)
    # the coordinator pushes the outcome
    legs = [{"leg": lg.leg, "instrument": lg.instrument, "account": lg.account, "side": lg.side.value,
             "intended_qty": lg.qty, "filled_qty": lg.qty} for lg in intent.legs]
    ray.get(host.on_pair_done.remote({"decision_id": intent.decision_id, "strategy": intent.strategy,
                                      "state": "HEDGED", "legs": legs}))
    st = ray.get(host.status.remote())["strategies"]["g1"]
    assert (st["position"], st["position_b"], st["pending"]) == (-1, 5, None)


def test_a_pair_that_ended_while_the_submit_was_held_is_applied_from_the_answer():
    # Arrange: a coordinator answering as the real one does when both legs filled during the hold
    coord = RecordingCoordinator.remote(fill_in_reply=True)
    host = StrategyHost.remote([BandStrategy(ctx("f1"), PARAMS)], coord, time_source="quotes")
    # Act
    ray.get(host.on_quotes.remote(pair_quotes(1.02, t=T0)))
    ray.get(host.drain.remote())
    # Assert: the host asked for it, and its strategy holds the pair's lots with no push at all
    assert ray.get(coord.asked_for_summaries.remote()) == [True]
    st = ray.get(host.status.remote())["strategies"]["f1"]
    assert (st["position"], st["position_b"], st["pending"]) == (-1, 5, None)
    assert st["counters"]["pairs_done"] == 1


def test_refused_submit_frees_the_strategy_and_a_failing_submit_is_retried_with_the_same_decision_id():
    coord = RecordingCoordinator.remote(refuse=("r1-00000001",), fail_first=0)
    host = StrategyHost.remote([BandStrategy(ctx("r1"), PARAMS)], coord, time_source="quotes", retry_delay_s=0.01)
    ray.get(host.on_quotes.remote(pair_quotes(1.02, t=T0)))
    ray.get(host.drain.remote())
    st = ray.get(host.status.remote())["strategies"]["r1"]
    assert st["pending"] is None and st["position"] == 0 and st["counters"]["pairs_done"] == 1

    flaky_coord = RecordingCoordinator.remote(fail_first=2)
    host2 = StrategyHost.remote([BandStrategy(ctx("r2"), PARAMS)], flaky_coord, time_source="quotes",
                                retry_delay_s=0.01)
    ray.get(host2.on_quotes.remote(pair_quotes(1.02, t=T0)))
    ray.get(host2.drain.remote())
    [intent] = ray.get(flaky_coord.recorded.remote())
    assert intent.decision_id == "r2-00000001"
    status = ray.get(host2.status.remote())
    assert status["submit_failures"] == 2 and status["strategies"]["r2"]["pending"] == "r2-00000001"


def test_a_restarting_coordinators_transient_refusal_is_not_an_outcome_and_the_intent_is_sent_again():
    # a restarted coordinator answers RECOVERING until it has read its trail; taken as a
    # refusal, the strategy forgot a pair whose orders the venues had filled (chaos, seed 31)
    coord = RecordingCoordinator.remote(recovering_first=3)
    host = StrategyHost.remote([BandStrategy(ctx("t1"), PARAMS)], coord, time_source="quotes", retry_delay_s=0.01)
    ray.get(host.on_quotes.remote(pair_quotes(1.02, t=T0)))
    assert wait_until(lambda: ray.get(coord.recorded.remote()))
    ray.get(host.drain.remote())
    [intent] = ray.get(coord.recorded.remote())
    status = ray.get(host.status.remote())
    # still pending on the same decision (its outcome comes from the coordinator), not freed as refused
    assert intent.decision_id == "t1-00000001"
    assert status["submit_failures"] == 3 and status["strategies"]["t1"]["pending"] == "t1-00000001"
    assert status["strategies"]["t1"]["counters"]["pairs_done"] == 0


def test_an_accepted_intent_whose_outcome_never_comes_is_sent_again_until_it_does():
    # the coordinator accepted it and died before writing a word of it: no push will ever come
    coord = RecordingCoordinator.remote()
    host = StrategyHost.remote([BandStrategy(ctx("w1"), PARAMS)], coord, time_source="quotes", reask_after_s=0.3)
    ray.get(host.on_quotes.remote(pair_quotes(1.02, t=T0)))
    assert wait_until(lambda: len(ray.get(coord.recorded.remote())) >= 3, timeout=10)
    assert {i.decision_id for i in ray.get(coord.recorded.remote())} == {"w1-00000001"}
    status = ray.get(host.status.remote())
    assert status["reasked"] >= 2 and status["awaiting_outcome"] == ["w1-00000001"]
    # the outcome comes: never sent again
    intent = ray.get(coord.recorded.remote())[0]
    legs = [{"leg": lg.leg, "instrument": lg.instrument, "account": lg.account, "side": lg.side.value,
             "intended_qty": lg.qty, "filled_qty": lg.qty} for lg in intent.legs]
    ray.get(host.on_pair_done.remote({"decision_id": intent.decision_id, "strategy": intent.strategy,
                                      "state": "HEDGED", "legs": legs}))
    time.sleep(0.3)
    n = len(ray.get(coord.recorded.remote()))
    time.sleep(1.0)
    assert len(ray.get(coord.recorded.remote())) == n
    assert ray.get(host.status.remote())["awaiting_outcome"] == []


def test_halt_and_resume_through_the_actor_and_bad_input_does_not_kill_it():
    coord = RecordingCoordinator.remote()
    host = StrategyHost.remote([BandStrategy(ctx("h1"), PARAMS)], coord, time_source="quotes")
    assert ray.get(host.halt.remote("h1", "desk says stop"))["state"] == "HALTED"
    ray.get(host.on_quotes.remote(pair_quotes(1.02, t=T0)))
    ray.get(host.on_quotes.remote([{"instrument": "LME.CA3M"}]))  # not a Quote
    ray.get(host.on_pair_done.remote({"decision_id": "nope"}))
    assert ray.get(coord.recorded.remote()) == []
    assert ray.get(host.resume.remote("h1"))["state"] == "ACTIVE"
    ray.get(host.on_quotes.remote(pair_quotes(1.02, t=T0 + 1_000_000)))
    assert wait_until(lambda: ray.get(coord.recorded.remote()))
    assert ray.get(host.status.remote())["bad_input"] == 2
    with pytest.raises(ray.exceptions.RayTaskError, match="no strategy named 'zz'"):
        ray.get(host.halt.remote("zz"))


def test_fifty_instances_in_one_host_share_a_batch():
    coord = RecordingCoordinator.remote()
    strategies = [BandStrategy(ctx(f"s{i:02d}"), PARAMS) for i in range(50)]
    host = StrategyHost.remote(strategies, coord, time_source="quotes")
    assert ray.get(host.instruments.remote()) == ["LME.CA3M", "SHFE.cu"]
    ray.get(host.on_quotes.remote(pair_quotes(1.02, t=T0)))
    ray.get(host.drain.remote())
    assert len(ray.get(coord.recorded.remote())) == 50
