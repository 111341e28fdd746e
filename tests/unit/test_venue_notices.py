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


def test_a_venue_is_down_while_any_of_its_gateways_is_down_in_any_coordinators_view():
    from xmc_actors.core.venue_health import venue_states

    # Arrange: LME has a second gateway for one account; a second coordinator sees it DOWN
    first = {"SHFE": {"state": "UP"}, "LME": {"state": "UP"}, "LME/us-2": {"state": "UP"},
             "COMEX": {"state": "UNKNOWN"}, "SGE": "garbage"}
    second = {"LME/us-2": {"state": "DOWN", "reason": "gateway lost"}, "SHFE": {"state": "up"}}
    # Act / Assert
    assert venue_states(first) == {"SHFE": "UP", "LME": "UP"}
    assert venue_states(first, second) == {"SHFE": "UP", "LME": "DOWN"}
    assert venue_states(second, first) == {"SHFE": "UP", "LME": "DOWN"}
    # a venue none of whose gateways answered yet is not told at all
    assert venue_states({"COMEX": {"state": "UNKNOWN"}}) == {} and venue_states() == {}
