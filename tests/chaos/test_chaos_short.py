"""The chaos suite's short form (the long form: ``scripts/chaos --pairs 1000``).

Each test runs a copper deployment on an embedded Ray and, while pairs are in flight, SIGKILLs
at seeded moments a gateway process, the coordinator, the risk guard, a ledger shard and a
strategy host, drops a venue's connection and stalls a venue; then checks the ledger against
the venues' own journals (``xmc_actors.ops.chaos``). Nothing may be lost, duplicated or left
one-legged, every killed actor must restore itself, and trading must go on after the last fault.
"""
from __future__ import annotations

import pytest

from xmc_actors.ops.chaos import FAULT_KINDS, LOSS_COLUMNS, run_chaos, table

pytestmark = [pytest.mark.ray, pytest.mark.chaos]


@pytest.mark.parametrize(("layout", "seed"), [("group", 11), ("per-venue", 12)])
def test_every_actor_killed_while_pairs_are_in_flight_loses_nothing_and_leaves_nothing_one_legged(tmp_path, layout, seed):
    # Arrange / Act: every fault once, at seeded moments, while two strategies trade
    report = run_chaos(tmp_path, layout=layout, seed=seed, pairs=40, kinds=FAULT_KINDS, rounds=1,
                       max_s=150, min_s=40, echo=print)
    print(table([report]))
    # Assert: every fault was applied and every killed actor restored itself
    assert {f.fault.kind for f in report.faults if f.applied} == set(FAULT_KINDS), report.faults
    assert all(f.recovery_s is not None for f in report.faults if f.fault.kind.startswith("kill_")), report.faults
    # the run itself never died of a fault
    assert not [f for f in report.run_faults if f.startswith("run ended") or f.startswith("run raised")], report.run_faults
    # the loss and duplicate columns are all zero, checked against the venues' own records
    assert {k: report.counts[k] for k in LOSS_COLUMNS} == dict.fromkeys(LOSS_COLUMNS, 0), report.details
    # the venues and the trail were really compared: fills at the venues, acknowledged probes
    assert report.details["venue_fills"] > 0 and report.details["acked"] > 0
    # pairs kept finishing after the last fault: the deployment did not just stop safely
    assert report.details["pairs_after_faults"] > 0, report.details
