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

from hypothesis import settings  # noqa: E402

# Property tests are seeded and reproducible in CI; locally they still derandomize so that a
# failure seen once is seen again.
settings.register_profile("xmc", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("xmc")
