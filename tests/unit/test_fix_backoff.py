"""The FIX session's reconnect backoff policy (no engine, no clock: time is handed in)."""
from __future__ import annotations

import pytest

from xmc_actors.venues.fix.backoff import ReconnectBackoff
from xmc_actors.venues.fix.params import SESSION_FAULTS

S = 1_000_000_000


def run_down(b: ReconnectBackoff, seconds: float, step_s: float = 0.05) -> list[tuple[float, str]]:
    """Step a session that never logs on for ``seconds``; the actions with their times."""
    out, t = [], 0.0
    while t < seconds:
        act = b.step(int(t * S), logged_on=False)
        if act:
            out.append((round(t, 2), act))
        t += step_s
    return out


def test_pauses_double_from_the_base_up_to_the_cap_and_windows_open_after_each():
    b = ReconnectBackoff(base_s=1, max_s=8, window_s=1.5, jitter=0)
    acts = run_down(b, 60)
    assert b.delays[:6] == [1, 2, 4, 8, 8, 8]
    kinds = [a for _, a in acts]
    assert kinds[:4] == ["disable", "enable", "disable", "enable"], "a pause, then a window, alternately"
    # the gap between one window's end and the next window's start is the pause
    disables = [t for t, a in acts if a == "disable"]
    enables = [t for t, a in acts if a == "enable"]
    assert enables[2] - disables[2] == pytest.approx(4, abs=0.06)


def test_a_logon_resets_the_backoff_and_a_later_drop_tries_at_once():
    b = ReconnectBackoff(base_s=1, max_s=30, window_s=1.0, jitter=0)
    run_down(b, 20)
    assert b.failures >= 3
    assert b.step(25 * S, logged_on=True) is None
    assert (b.state, b.failures) == ("CONNECTED", 0)
    # dropped again: no pause first, a window at once
    assert b.step(30 * S, logged_on=False) is None and b.state == "TRYING"
    assert b.step(int(30.5 * S), logged_on=False) is None
    assert b.step(31 * S, logged_on=False) == "disable" and b.delays[-1] == 1


def test_a_logon_in_flight_holds_the_window_open():
    b = ReconnectBackoff(base_s=1, max_s=30, window_s=1.0, jitter=0)
    b.step(0, logged_on=False)
    assert b.step(3 * S, logged_on=False, logon_in_flight=True) is None
    assert b.step(4 * S, logged_on=False, logon_in_flight=False) == "disable"


def test_jitter_stays_within_its_band_and_is_seeded():
    a = ReconnectBackoff(base_s=2, max_s=2, jitter=0.2, seed=7)
    b = ReconnectBackoff(base_s=2, max_s=2, jitter=0.2, seed=7)
    run_down(a, 120), run_down(b, 120)
    assert a.delays == b.delays and len(set(a.delays)) > 1
    assert all(1.6 <= d <= 2.4 for d in a.delays)


@pytest.mark.parametrize("kw", [dict(base_s=0), dict(base_s=5, max_s=2), dict(jitter=1.0), dict(jitter=-0.1)])
def test_impossible_settings_are_refused(kw):
    with pytest.raises(ValueError, match="reconnect backoff"):
        ReconnectBackoff(**kw)


def test_params_refuse_a_cap_below_the_first_pause():
    from xmc_actors.venues.fix.params import FixVenueParams

    with pytest.raises(ValueError, match="reconnect_max_s"):
        FixVenueParams(port=1, sender_comp_id="A", target_comp_id="B", reconnect_interval_s=10, reconnect_max_s=5)


def test_every_session_fault_the_adapter_forwards_is_a_command_of_the_exchange():
    import inspect

    from xmc_actors.venues.fix.exchange import FixExchange

    src = inspect.getsource(FixExchange.command)
    for name in SESSION_FAULTS:
        assert f'c == "{name}"' in src, name
