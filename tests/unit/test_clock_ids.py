"""Event ids: time-ordered, unique across generators, 32 hex digits, monotonic per generator;
and the event maker's fast construction gives the same events as validated construction."""
from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from xmc_actors.core.clock import EventIdGenerator, SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.model.events import Event, EventKind

HEX = set("0123456789abcdef")


def _decode(event_id: str) -> tuple[int, int, int, int]:
    v = int(event_id, 16)
    return v >> 80, (v >> 76) & 0xF, (v >> 44) & 0xFFFF_FFFF, v & 0xFFF_FFFF_FFFF


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=0, max_value=3_000_000), min_size=1, max_size=200),
    nodes=st.lists(st.integers(min_value=0, max_value=2**48 - 1), min_size=2, max_size=4, unique_by=lambda n: n & 0xFFF_FFFF_FFFF),
)
def test_ids_from_several_generators_are_unique_well_formed_and_sorted_by_time(steps: list[int], nodes: list[int]) -> None:
    # Arrange: generators with distinct node tags on one clock that moves in random steps
    clock = SimClock(1_700_000_000_000_000_000)
    gens = [EventIdGenerator(clock, node=n) for n in nodes]
    made: list[tuple[int, int, str]] = []  # (ms, generator, id) in creation order
    # Act
    for i, step in enumerate(steps):
        clock.advance(step)
        g = i % len(gens)
        made.append((clock.now_ns() // 1_000_000, g, gens[g].next()))
    # Assert
    ids = [m[2] for m in made]
    assert len(set(ids)) == len(ids)
    for ms, g, eid in made:
        assert len(eid) == 32 and set(eid) <= HEX
        got_ms, version, _, node = _decode(eid)
        assert (got_ms, version, node) == (ms, 7, nodes[g] & 0xFFF_FFFF_FFFF)
    for g in range(len(gens)):
        own = [eid for _, gg, eid in made if gg == g]
        assert own == sorted(own) and len(set(own)) == len(own)  # strictly increasing
    for (ms1, _, a), (ms2, _, b) in zip(made, made[1:]):
        if ms2 > ms1:  # a later millisecond sorts after, whichever generator made it
            assert b > a


def test_ids_stay_monotonic_when_the_clock_goes_back() -> None:
    # Arrange
    clock = SimClock(1_700_000_000_000_000_000)
    gen = EventIdGenerator(clock, node=1)
    first = gen.next()
    clock._now -= 5_000_000  # a wall clock stepped back 5 ms
    # Act
    later = [gen.next() for _ in range(3)]
    # Assert
    assert [first, *later] == sorted({first, *later})


def test_sequence_overflow_borrows_the_next_millisecond() -> None:
    # Arrange: the sequence of this millisecond is at its last value
    clock = SimClock(1_700_000_000_000_000_000)
    gen = EventIdGenerator(clock, node=9)
    a = gen.next()
    gen._seq = 0xFFFF_FFFF
    # Act
    b = gen.next()
    # Assert
    assert b > a
    assert _decode(b)[0] == _decode(a)[0] + 1 and _decode(b)[2] == 0


def test_ids_are_unique_across_threads_sharing_a_generator() -> None:
    # Arrange
    clock = SimClock(1_700_000_000_000_000_000)
    gen = EventIdGenerator(clock, node=3)
    out: list[list[str]] = [[] for _ in range(4)]

    def work(k: int) -> None:
        for _ in range(2_000):
            out[k].append(gen.next())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    # Act
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Assert
    ids = [i for o in out for i in o]
    assert len(set(ids)) == len(ids) == 8_000
    for o in out:
        assert o == sorted(o)


def test_fast_made_event_equals_the_validated_one_and_round_trips() -> None:
    # Arrange
    clock = SimClock(1_700_000_000_000_000_000)
    maker = EventMaker(clock, "gateway:SHFE", node=7)
    # Act
    e = maker.make(EventKind.ORDER_SENT, decision_id="d1", venue="SHFE", instrument="SHFE.cu", latency_us=1.5,
                   order={"qty": 1})
    v = Event(**e.model_dump())
    # Assert
    assert e == v and e.model_fields_set == v.model_fields_set
    assert Event.model_validate(e.model_dump()) == e
    assert e.ts_ns == clock.now_ns() and e.actor == "gateway:SHFE" and e.payload == {"order": {"qty": 1}}


def test_event_maker_still_coerces_and_refuses_what_validation_would() -> None:
    # Arrange
    maker = EventMaker(SimClock(), "x", node=1)
    # Act
    coerced = maker.make(EventKind.TIMER, latency_us=3)  # an int latency is coerced to float
    # Assert
    assert coerced.latency_us == 3.0 and type(coerced.latency_us) is float
    with pytest.raises(ValidationError, match="ts_ns"):
        maker.make(EventKind.TIMER, ts_ns=-1)
    with pytest.raises(ValidationError, match="kind"):
        maker.make("NOT_A_KIND")  # type: ignore[arg-type]


def test_event_maker_on_market_time_stamps_the_trail_with_the_wall_clock_and_keeps_market_time() -> None:
    # Arrange: market time in 2016 (a replay's SimClock), wall time now
    market, wall = SimClock(1_482_300_000 * 10**9), SimClock(1_795_000_000 * 10**9)
    maker = EventMaker(market, "gateway-SGE", node=7, wall=wall)
    # Act
    given_ts = maker.make(EventKind.SIGNAL, ts_ns=market.now_ns() - 5, ratio=1.01)
    market.advance(1_000)
    wall.advance(3_000_000)
    default_ts = maker.make(EventKind.VENUE_DROP_COPY)
    # Assert: ts_ns and the id's time are the wall clock's; the market time is in the payload
    assert (given_ts.ts_ns, given_ts.payload) == (1_795_000_000 * 10**9,
                                                 {"ratio": 1.01, "market_ts_ns": 1_482_300_000 * 10**9 - 5})
    assert default_ts.ts_ns == wall.now_ns() and default_ts.payload == {"market_ts_ns": market.now_ns()}
    assert _decode(given_ts.event_id)[0] == 1_795_000_000_000 and given_ts.event_id < default_ts.event_id
    # without a wall clock nothing changes
    plain = EventMaker(market, "x", node=1).make(EventKind.TIMER)
    assert plain.ts_ns == market.now_ns() and "market_ts_ns" not in plain.payload
