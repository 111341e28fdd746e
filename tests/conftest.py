import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("XMC_DATA_DIR", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# a background thread of a module whose deployment was left running (a failed test) must not
# start a Ray of its own after the module's ray.shutdown(): the next module's ray.init would fail
os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")

import datetime as dt  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests are seeded and reproducible in CI; locally they still derandomize so that a
# failure seen once is seen again.
settings.register_profile("xmc", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("xmc")


#: A day every venue calendar of the catalogue covers (a Monday): what "today" is for the checks
#: of tests that start live deployments but are not about calendars.
COVERED_TODAY = dt.datetime(2026, 12, 7, 12, tzinfo=dt.timezone.utc)


@pytest.fixture
def covered_today(monkeypatch):
    """Pin the day the calendar checks judge a live run by (``runtime.calendars.now_utc``) to
    :data:`COVERED_TODAY`. A live deployment refuses to start on a day its venues' calendars do
    not cover; a test of something else must not start failing the day a calendar ends (the
    refusal itself is tested with explicit dates, tests/unit/test_calendar_coverage.py)."""
    from xmc_actors.runtime import calendars

    monkeypatch.setattr(calendars, "now_utc", lambda: COVERED_TODAY)
    return COVERED_TODAY
