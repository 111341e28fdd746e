"""VenueHealth: gateway probes → venue UP/DOWN, published to subscribers and the ledger."""
from __future__ import annotations

import pytest

from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import MemorySink
from xmc_actors.core.venue_health import VenueHealth, VenueState
from xmc_actors.model.events import EventKind


def make(timeouts_to_down: int = 2):
    clock, sink, seen = SimClock(), MemorySink(), []
    h = VenueHealth(["SHFE", "LME"], clock, timeouts_to_down=timeouts_to_down, sink=sink)
    h.subscribe(seen.append)
    return h, clock, sink, seen


def test_lost_gateway_marks_its_venue_down_at_once_and_publishes_it():
    h, clock, sink, seen = make()
    h.on_probe_ok("SHFE")
    clock.advance(1_000)

    change = h.on_gateway_lost("SHFE", "ActorUnavailableError: node died")

    assert h.state("SHFE") is VenueState.DOWN
    assert change is not None and change.old is VenueState.UP and change.ts_ns == clock.now_ns()
    assert [c.new for c in seen] == [VenueState.UP, VenueState.DOWN]
    assert sink.events[-1].kind is EventKind.LIFECYCLE and sink.events[-1].reason.startswith("VENUE_DOWN")
    assert h.state("LME") is VenueState.UNKNOWN


def test_single_probe_timeout_is_tolerated_but_consecutive_timeouts_mark_down():
    h, _, _, seen = make(timeouts_to_down=2)
    h.on_probe_ok("LME")

    assert h.on_probe_timeout("LME", 1.0) is None
    assert h.state("LME") is VenueState.UP
    h.on_probe_timeout("LME", 1.0)

    assert h.state("LME") is VenueState.DOWN
    assert "2 probe(s)" in seen[-1].reason


def test_an_answer_between_timeouts_resets_the_count():
    h, *_ = make(timeouts_to_down=2)
    h.on_probe_timeout("LME", 1.0)
    h.on_probe_ok("LME")
    h.on_probe_timeout("LME", 1.0)

    assert h.state("LME") is VenueState.UP


def test_gateway_that_reports_its_venue_line_down_marks_venue_down_and_back_up():
    h, *_ = make()
    h.on_probe_ok("SHFE", {"state": "DOWN"})
    assert h.state("SHFE") is VenueState.DOWN

    h.on_probe_ok("SHFE", {"state": "UP"})

    assert h.state("SHFE") is VenueState.UP
    assert h.down() == []


def test_repeated_same_state_publishes_nothing():
    h, _, sink, seen = make()
    h.on_gateway_lost("SHFE", "died")
    h.on_gateway_lost("SHFE", "died again")

    assert len(seen) == 1 and len(sink.events) == 1


def test_a_failing_subscriber_does_not_stop_others():
    h, _, _, seen = make()
    h.subscribe(lambda c: 1 / 0)
    later = []
    h.subscribe(later.append)

    h.on_gateway_lost("SHFE", "died")

    assert len(seen) == 1 and len(later) == 1 and h.subscriber_errors == 1


def test_unknown_venue_is_a_clear_error():
    h, *_ = make()
    with pytest.raises(KeyError, match="unknown venue 'CBOT'"):
        h.on_probe_ok("CBOT")
