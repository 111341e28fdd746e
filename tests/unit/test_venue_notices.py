"""What a coordinator tells its strategies and risk guard of each venue (core/venue_health.py
``VenueNotices``), in a first life and after a restart."""
from xmc_actors.core.venue_health import VenueNotices


def test_a_first_life_tells_only_changes_from_up() -> None:
    n = VenueNotices()
    assert [n.tell("LME", False), n.tell("LME", True), n.tell("LME", True), n.tell("LME", False)] == \
        [False, True, False, True]


def test_a_restarted_life_tells_each_venues_first_state_even_up() -> None:
    """The previous life may have told them DOWN, and the venue came back while the coordinator
    was dead: without this its strategies stayed blocked VENUE_DOWN and the risk guard held the
    venue REDUCING."""
    n = VenueNotices(restarted=True)
    assert n.tell("LME", False) is True      # UP, told once
    assert n.tell("LME", False) is False
    assert n.tell("SHFE", True) is True      # DOWN, told
    assert n.tell("SHFE", False) is True     # and its return
