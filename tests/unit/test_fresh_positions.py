"""A verification compares the book with broker snapshots asked for after the moment it names
(``VenueGateway.positions(fresh_after_ns=...)``): an older snapshot may miss fills the book
already has, and comparing it would 'confirm' a difference that is only its age. No Ray."""
from __future__ import annotations

import asyncio

import pytest

from xmc_actors.actors.gateway import PositionsUnavailable, wait_fresh_positions


class Broker:
    """An adapter whose snapshot is as of ``as_of`` until a refresh asked for answers later."""

    def __init__(self, as_of: int, answers: bool = True, source: str = "venue") -> None:
        self.as_of, self.answers, self.source, self.refreshes = as_of, answers, source, []

    def positions_status(self):
        return {"source": self.source, "as_of_ns": self.as_of}

    def refresh_positions(self, *, force: bool = False) -> bool:
        self.refreshes.append(force)
        if self.answers:
            asyncio.get_running_loop().call_later(0.05, setattr, self, "as_of", 1_000)
        return True


def run(coro):
    return asyncio.run(coro)


def test_a_snapshot_already_newer_than_asked_is_taken_without_asking_again():
    b = Broker(as_of=2_000)
    run(wait_fresh_positions(b, "gw", 1_000, 1.0))
    assert b.refreshes == []


def test_an_older_snapshot_is_refreshed_once_and_the_newer_one_waited_for():
    b = Broker(as_of=10)
    run(wait_fresh_positions(b, "gw", 500, 2.0))
    assert b.refreshes == [True] and b.as_of == 1_000


def test_no_newer_snapshot_within_the_wait_is_refused_not_compared():
    b = Broker(as_of=10, answers=False)
    with pytest.raises(PositionsUnavailable, match="no positions snapshot asked for after 500 came within 0.2 s"):
        run(wait_fresh_positions(b, "gw", 500, 0.2))


def test_a_source_that_falls_back_to_session_fills_while_waiting_is_refused():
    b = Broker(as_of=10, source="session fills")
    with pytest.raises(PositionsUnavailable, match="session fills"):
        run(wait_fresh_positions(b, "gw", 500, 1.0))


def test_an_adapter_answering_from_the_live_book_is_always_fresh():
    run(wait_fresh_positions(object(), "sim", 10**20, 0.0))  # no positions_status: nothing to wait for
