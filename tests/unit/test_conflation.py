"""Quote conflation per subscriber, and a subscriber that restarts (no Ray).

A restarted Ray actor keeps its actor id, so when it subscribes again its subscription has the
id of its previous life. The answer to a batch pushed to that previous life (a failure, since
the process died, or a late success) must not drop or free the new subscription.
"""
from __future__ import annotations

import asyncio
import collections

from runtime_kit import copper_config
from testkit import quote
from xmc_actors.actors.gateway import _Session
from xmc_actors.core.conflation import Conflator
from xmc_actors.runtime.config import load_config


def test_a_slow_subscriber_gets_only_the_latest_quote_per_instrument():
    c = Conflator()
    c.add("s")
    c.offer(quote("SHFE.cu", 72000, 72010))
    assert [q.bid for q in c.take("s")] == [72000]
    c.offer(quote("SHFE.cu", 72001, 72011))
    c.offer(quote("SHFE.cu", 72002, 72012))  # overwrites the one before: one batch in flight

    assert c.take("s") == [] and c.done("s") is True
    assert [q.bid for q in c.take("s")] == [72002] and c.stats()["s"]["conflated"] == 1


def test_the_answer_to_an_earlier_generation_leaves_a_resubscription_alone():
    c = Conflator()
    old = c.add("s")
    c.offer(quote("SHFE.cu", 72000, 72010))
    c.take("s")  # in flight to the first life
    new = c.add("s")  # the restarted subscriber subscribes again
    c.offer(quote("SHFE.cu", 72001, 72011))
    c.take("s")  # in flight to the second life

    assert new != old
    assert c.remove("s", old) is False and c.generation("s") == new  # the first life's push failed
    assert c.done("s", old) is False and c.subs["s"].in_flight  # a late answer frees nothing
    assert c.done("s", new) is False and not c.subs["s"].in_flight
    assert c.remove("s", new) is True and c.generation("s") is None


class _Subscriber:
    """Stands in for a subscriber's actor handle: ``on_quotes.remote`` returns a future the
    test settles, like the object ref of a push."""

    def __init__(self, actor_id: bytes) -> None:
        self._actor_id = type("Id", (), {"hex": lambda _s: actor_id.hex()})()
        self.pushes: list[tuple[list, asyncio.Future]] = []
        self.on_quotes = self

    def remote(self, batch: list) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.pushes.append((batch, fut))
        return fut


async def _settle() -> None:
    for _ in range(5):  # the gateway's tasks awaiting the pushes run
        await asyncio.sleep(0)


def test_a_restarted_subscriber_keeps_its_quotes_when_its_previous_life_fails_late(tmp_path):
    async def scenario() -> tuple[_Session, _Subscriber]:
        # Arrange: a subscriber with a batch in flight when its process dies
        dep = load_config(copper_config(tmp_path, "conflation", "t"))
        s = _Session(dep, "SHFE", None, "sim", False, collections.deque())
        first = _Subscriber(b"host-1")
        s.subscribe(first, ["SHFE.cu"], "on_quotes")
        s.push_market([quote("SHFE.cu", 72000, 72010, ts_ns=s.clock.now_ns() + 1)])
        (_, dead), = first.pushes
        # Act: the restarted process (same actor id) subscribes again before that push fails
        second = _Subscriber(b"host-1")
        s.subscribe(second, ["SHFE.cu"], "on_quotes")
        dead.set_exception(RuntimeError("ActorDiedError: the subscriber's previous life"))
        await _settle()
        second.pushes[0][1].set_result(None)
        await _settle()
        s.push_market([quote("SHFE.cu", 72010, 72020, ts_ns=s.clock.now_ns() + 1)])
        return s, second

    s, second = asyncio.run(scenario())
    # Assert: still subscribed; the first batch of the new life was the current picture, then the new quote
    assert len(s._subs) == 1 and s.core.counters["subscribers_dropped"] == 0 and s.push_errors == 1
    assert [[q.bid for q in b] for b, _ in second.pushes] == [[72000], [72010]]
