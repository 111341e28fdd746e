"""The ledger client sends a lone fire-and-forget event within flush_ms, even after an idle spell."""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from xmc_actors.core.clock import SystemClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.ledger.client import LedgerClient
from xmc_actors.ledger.schema import batch_from_wire
from xmc_actors.model.config import LedgerConfig
from xmc_actors.model.events import EventKind


class _Ref:
    def __init__(self) -> None:
        self._f: Future = Future()
        self._f.set_result(None)

    def future(self) -> Future:
        return self._f


class _Method:
    def __init__(self, shard: "_FakeShard") -> None:
        self.shard = shard

    def remote(self, data, urgent=False) -> _Ref:  # noqa: ANN001
        self.shard.calls.append((time.monotonic(), batch_from_wire(data).num_rows))
        self.shard.sent.set()
        return _Ref()


class _FakeShard:
    """Stands in for a ledger shard actor handle: ``append.remote`` acknowledges at once."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, int]] = []
        self.sent = threading.Event()
        self.append = _Method(self)


def test_a_lone_event_after_an_idle_spell_is_sent_within_flush_ms_not_at_the_next_idle_wakeup():
    # Arrange: the pump has gone to sleep on its idle wait (nothing buffered)
    shard = _FakeShard()
    client = LedgerClient([shard], LedgerConfig(path="/tmp/unused", shards=1, flush_ms=2))
    time.sleep(0.05)
    mk = EventMaker(SystemClock(), "test")
    # Act
    t0 = time.monotonic()
    client.emit(mk.make(EventKind.RISK_DECISION, reason="BOOKED"))
    sent = shard.sent.wait(2.0)
    # Assert: well before the pump's 0.5 s idle wake-up (a writer killed 0.4 s later lost it before)
    assert sent and shard.calls[0][0] - t0 < 0.25 and shard.calls[0][1] == 1
    client.close(2)
