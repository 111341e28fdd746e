"""The rule that turns a difference found at a risk guard's restart into a mismatch
(core/risk_guard_rebuild.py ``DifferenceConfirmation``): only comparisons made while no pair
was in flight count."""
from xmc_actors.core.risk_guard_rebuild import DifferenceConfirmation

DIFF = [{"account": "cn-main", "instrument": "SHFE.cu", "ledger": 10, "venue": 12}]
OTHER = [{"account": "cn-main", "instrument": "SHFE.cu", "ledger": 10, "venue": 14}]


def test_the_same_difference_twice_while_pairs_were_in_flight_is_not_a_mismatch() -> None:
    # Arrange: a stalled venue holds a pair (its fills unbooked) across every comparison
    rule = DifferenceConfirmation(checks=6)
    # Act
    verdicts = [rule.observe(False, DIFF) for _ in range(6)]
    # Assert: never confirmed; the check gives up at its last comparison
    assert verdicts == ["again"] * 5 + ["moving"]


def test_the_same_difference_in_two_idle_comparisons_in_a_row_is_confirmed() -> None:
    rule = DifferenceConfirmation(checks=6)
    assert rule.observe(True, DIFF) == "again"
    assert rule.observe(True, list(DIFF)) == "confirmed"


def test_a_busy_comparison_between_two_idle_ones_breaks_the_run() -> None:
    rule = DifferenceConfirmation(checks=6)
    assert [rule.observe(True, DIFF), rule.observe(False, DIFF), rule.observe(True, DIFF)] == ["again"] * 3
    assert rule.observe(True, DIFF) == "confirmed"


def test_a_difference_that_changes_is_still_moving_and_none_at_all_clears() -> None:
    rule = DifferenceConfirmation(checks=3)
    assert [rule.observe(True, DIFF), rule.observe(True, OTHER), rule.observe(True, DIFF)] == ["again", "again", "moving"]
    assert DifferenceConfirmation().observe(False, []) == "clear"


def test_a_check_that_gives_up_records_what_it_saw_for_an_operator() -> None:
    from xmc_actors.core.clock import SimClock
    from xmc_actors.core.risk_guard_rebuild import unconfirmed_event
    from xmc_actors.core.sink import EventMaker
    from xmc_actors.model.events import EventKind
    rule = DifferenceConfirmation(checks=2)
    assert [rule.observe(False, DIFF), rule.observe(False, OTHER)] == ["again", "moving"]
    ev = unconfirmed_event(EventMaker(SimClock(), "risk-guard"), rule.last, rule.made)
    assert ev.kind is EventKind.RECONCILE and ev.reason == "POSITIONS_UNCONFIRMED"
    assert ev.payload["differences"] == OTHER and ev.payload["checks"] == 2
