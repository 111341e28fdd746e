"""Gap repair (缺口修复): detection, STALE marking, snapshot recovery, GAP events."""
from __future__ import annotations

from testkit import instrument, quote, venue
from xmc_actors.core.clock import SimClock
from xmc_actors.core.gaps import GapTracker, SeqVerdict
from xmc_actors.core.gateway_core import GatewayCore
from xmc_actors.core.sink import MemorySink
from xmc_actors.model import EventKind, QuoteStatus
from xmc_actors.venues.sim import SimExchange
from xmc_actors.venues.sim_config import SimVenueParams

T0 = 1_735_808_400_000_000_000


def _core(**params: object) -> tuple[GatewayCore, SimClock, MemorySink]:
    clock, sink = SimClock(T0), MemorySink()
    p = SimVenueParams.model_validate({"seed": 9, "enforce_sessions": False, **params})
    sim = SimExchange(venue("SHFE"), [instrument("SHFE.cu")], p, clock)
    return GatewayCore(venue("SHFE"), [instrument("SHFE.cu")], sim, clock, sink), clock, sink


def _tick(core: GatewayCore, clock: SimClock, k: int):
    clock.advance(1_000_000)
    return core.on_market(quote("SHFE.cu", 72000 + 10 * k, 72010 + 10 * k, ts_ns=clock.now_ns()))


def test_tracker_classifies_in_order_duplicate_out_of_order_and_gap():
    t = GapTracker()

    verdicts = [t.on_message("X", s, 0) for s in (5, 6, 6, 4, 9, 10)]

    assert verdicts == [SeqVerdict.FIRST, SeqVerdict.OK, SeqVerdict.DUPLICATE, SeqVerdict.OUT_OF_ORDER,
                        SeqVerdict.GAP, SeqVerdict.STALE]
    assert t.is_stale("X")


def test_snapshot_closes_the_gap_with_its_duration():
    t = GapTracker()
    t.on_message("X", 1, 100)
    t.on_message("X", 4, 1_000)

    gap = t.on_snapshot("X", 5, 3_500)

    assert gap is not None and (gap.from_seq, gap.to_seq, gap.missing) == (2, 3, 2)
    assert gap.duration_ns == 2_500 and not t.is_stale("X")


def test_dropped_message_marks_stale_then_snapshot_recovers_and_records_a_gap_event():
    core, clock, sink = _core()
    _tick(core, clock, 0)
    core.adapter.inject({"kind": "drop_md_next"})
    _tick(core, clock, 1)                       # lost on the wire

    out = _tick(core, clock, 2)                 # seq jumps: gap, snapshot, resume

    assert out[-1].status is QuoteStatus.OK and out[-1].bid == 72020
    gaps = [e for e in sink.events if e.kind is EventKind.GAP]
    assert len(gaps) == 1 and gaps[0].payload["missing"] == 1
    assert core.status()["gaps"] == 1 and core.status()["stale"] == []


def test_while_no_snapshot_is_available_quotes_go_out_stale():
    core, clock, sink = _core()
    _tick(core, clock, 0)
    core.adapter.inject({"kind": "drop_md_next"})
    _tick(core, clock, 1)
    core.adapter.snapshot = lambda inst: None    # the venue's snapshot service is down

    out = _tick(core, clock, 2)

    assert out[-1].status is QuoteStatus.STALE
    assert core.snapshot("SHFE.cu").status is QuoteStatus.STALE


def test_reordered_messages_are_repaired_and_the_late_one_is_dropped_as_out_of_order():
    core, clock, sink = _core()
    _tick(core, clock, 0)
    core.adapter.inject({"kind": "reorder_md_next"})
    _tick(core, clock, 1)                       # held back

    _tick(core, clock, 2)                       # delivered before the held one

    assert core.bad_input.get("OUT_OF_ORDER_SEQ") == 1
    assert core.snapshot("SHFE.cu").status is QuoteStatus.OK
    assert core.snapshot("SHFE.cu").bid == 72020


def test_disconnect_marks_every_instrument_stale_and_reconnect_resynchronises():
    core, clock, sink = _core()
    _tick(core, clock, 0)
    core.adapter.inject({"kind": "disconnect", "ms": 5})
    core.tick()
    stale = core.snapshot("SHFE.cu").status
    _tick(core, clock, 1)

    clock.advance(10_000_000)
    core.tick()

    assert stale is QuoteStatus.STALE and core.status()["state"] == "UP"
    assert core.snapshot("SHFE.cu").status is QuoteStatus.OK and core.snapshot("SHFE.cu").bid == 72010
    assert len([e for e in sink.events if e.kind is EventKind.GAP]) == 1
