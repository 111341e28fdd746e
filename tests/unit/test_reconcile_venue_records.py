"""Reconciliation against the venues' own records (the simulated venue's journal), not against
the drop copies the trail holds itself: the chaos run's lost LME fills (3 and 4 lots) are found."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from testkit import instrument, order, quote, venue
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.ledger.audit import AuditReader, Filters
from xmc_actors.ledger.reconcile import compare_with_venues, drop_copy_rows, reconcile, reconcile_against_venues
from xmc_actors.ledger.schema import encode_events
from xmc_actors.ledger.store import LedgerStore
from xmc_actors.ledger.venue_records import (
    DropCopyRecordSource, JournalRecordSource, VenueRecordError, journal_sources, sources_from_config,
)
from xmc_actors.model import ExecReportKind, OrderType, TimeInForce
from xmc_actors.model.events import Event, EventKind
from xmc_actors.ops.cli import main
from xmc_actors.venues import build_sim
from xmc_actors.venues.journal import VenueJournal, journal_path
from xmc_actors.venues.sim_config import SimVenueParams

T0 = int(dt.datetime(2025, 1, 2, 9, 0, tzinfo=dt.timezone.utc).timestamp()) * 10**9
IOC = {"order_type": OrderType.IOC, "tif": TimeInForce.IOC}


class Scenario:
    """An LME and a SHFE simulated venue with journals in ``state``, two pairs traded on them,
    and the trail the coordinator and gateways wrote, as events (before any loss)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.mk = EventMaker(SimClock(T0), "test", node=1)
        self.clock = SimClock(T0)
        self.trail: list[Event] = []
        self.sims = {}
        for code, inst, bid in (("LME", "LME.CA3M", 9800), ("SHFE", "SHFE.cu", 72000)):
            p = SimVenueParams.model_validate({"seed": 3, "enforce_sessions": False, "state_dir": str(state)})
            sim = build_sim(p, venue(code), [instrument(inst)], self.clock, gateway=f"gateway-{code}")
            self.clock.advance(1_000_000)
            sim.on_market(quote(inst, bid, bid + 10, bid_size=20, ask_size=20, ts_ns=self.clock.now_ns()))
            self.sims[code] = sim
        # two pairs: SHFE leg A and LME leg B each; LME fills 3 and 4 lots
        for did, lots in (("s1-00000001", 3), ("s1-00000002", 4)):
            self._place("SHFE", order("SHFE.cu", "BUY", lots * 5, "72010", decision_id=did, leg="A", **IOC), did)
            self._place("LME", order("LME.CA3M", "SELL", lots, "9800", decision_id=did, leg="B", **IOC), did)

    def _place(self, code: str, req, did: str) -> None:
        self.clock.advance(1_000_000)
        self.trail.append(self.mk.make(EventKind.ORDER_SENT, decision_id=did, strategy="s1", venue=code,
                                       instrument=req.instrument, client_order_id=req.client_order_id,
                                       qty=req.qty, side=req.side.value))
        for rep in self.sims[code].place(req).reports:
            self.trail.append(self.mk.make(
                EventKind.ORDER_REPORT, decision_id=did, strategy="s1", venue=code, instrument=req.instrument,
                client_order_id=rep.client_order_id, report_kind=rep.kind.value, status=rep.status.value,
                trade_id=rep.fill.trade_id if rep.fill else "", fill_qty=rep.fill.qty if rep.fill else 0))
            self.trail.append(self.mk.make(EventKind.VENUE_DROP_COPY, decision_id=did, venue=code,
                                           instrument=req.instrument, account="acc", reason=rep.kind.value,
                                           report=rep.model_dump(mode="json")))

    def journal(self, code: str) -> Path:
        return journal_path(self.state, f"gateway-{code}")

    def lme_fills_lost(self) -> list[Event]:
        """The trail after the LME gateway was killed: its fill reports and their drop copies,
        not yet acknowledged by the ledger, died with it."""
        def lme_fill(e: Event) -> bool:
            rep = e.payload.get("report") or {}
            return e.venue == "LME" and (bool(e.payload.get("trade_id")) or rep.get("kind") == "FILL")
        return [e for e in self.trail if not lme_fill(e)]


def _ledger(path: Path, events: list[Event]) -> Path:
    store = LedgerStore(path / "shard-0.duckdb")
    store.append(encode_events(events).table, stored_ns=T0)
    store.close()
    return path


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path / "state")


def test_the_lme_fills_lost_with_the_gateway_are_found_in_the_venues_journal(scenario, tmp_path):
    # Arrange: the 3- and 4-lot LME fills are at the venue, not in the trail
    led = _ledger(tmp_path / "ledger", scenario.lme_fills_lost())
    # Act
    report = reconcile_against_venues(led, [JournalRecordSource(scenario.journal("LME"), venue="LME"),
                                            JournalRecordSource(scenario.journal("SHFE"), venue="SHFE")])
    # Assert
    lme = report.venues["LME"]
    assert sorted(f.qty for f in lme.missing_fills) == [3, 4]
    assert report.counts() == {"missing_fills": 2, "unknown_fills": 0, "duplicate_fills": 0,
                               "orders_without_sent": 0, "duplicate_order_ids": 0, "status_differs": 2}
    assert report.venues["SHFE"].ok and not report.ok
    backfilled = [e for e in report.backfill if "fill at the venue" in e.reason]
    assert sorted(e.payload["fill_qty"] for e in backfilled) == [3, 4]
    assert {e.strategy for e in backfilled} == {"s1"}  # from the trail, so the shard is the one the client uses


def test_fills_the_gateways_drop_copies_recorded_are_not_missing_when_read_from_the_ledger_files(scenario, tmp_path):
    """Found by the chaos suite: the coordinator was killed before writing its fill reports,
    the gateways' drop copies have them. Read from the shard files (what ``scripts/chaos`` and
    ``xmc audit reconcile`` do), those fills are in the trail: nothing is missing."""
    # Arrange: the coordinator's LME fill reports lost, the drop copies kept
    trail = [e for e in scenario.trail
             if not (e.venue == "LME" and e.kind is EventKind.ORDER_REPORT and e.payload.get("trade_id"))]
    led = _ledger(tmp_path / "ledger", trail)
    # Act
    report = reconcile_against_venues(led, [JournalRecordSource(scenario.journal("LME"), venue="LME"),
                                            JournalRecordSource(scenario.journal("SHFE"), venue="SHFE")])
    # Assert
    assert report.counts()["missing_fills"] == 0 and report.venues["LME"].ok


def test_the_old_trail_only_check_would_have_said_nothing_was_missing(scenario):
    # Arrange: the same loss; the trail-only check reads the trail's own drop copies
    trail = scenario.lme_fills_lost()
    # Act
    missing = reconcile(drop_copy_rows(trail), trail, now_ns=T0)
    # Assert: the drop copies of the lost fills were lost with them
    assert [e for e in missing if "fill" in e.reason] == []


def test_a_fill_stored_twice_and_a_fill_the_venue_never_made_are_counted(scenario):
    # Arrange: one SHFE fill stored again under another event id, and an LME fill no venue made
    trail = list(scenario.trail)
    shfe_fill = next(e for e in trail if e.venue == "SHFE" and e.payload.get("trade_id"))
    trail.append(shfe_fill.model_copy(update={"event_id": shfe_fill.event_id + "x"}))
    lme_sent = next(e for e in trail if e.venue == "LME" and e.kind is EventKind.ORDER_SENT)
    trail.append(scenario.mk.make(EventKind.ORDER_REPORT, decision_id=lme_sent.decision_id, strategy="s1",
                                  venue="LME", client_order_id=lme_sent.payload["client_order_id"],
                                  report_kind="FILL", status="FILLED", trade_id="LME-T99", fill_qty=1))
    records = [JournalRecordSource(scenario.journal(c), venue=c).load() for c in ("LME", "SHFE")]
    # Act
    report = compare_with_venues(trail, records, now_ns=T0)
    # Assert
    assert report.counts()["duplicate_fills"] == 1 and report.counts()["unknown_fills"] == 1
    assert report.venues["SHFE"].duplicate_fills == [(shfe_fill.payload["client_order_id"],
                                                      shfe_fill.payload["trade_id"], 2)]
    assert [f.trade_id for f in report.venues["LME"].unknown_fills] == ["LME-T99"]
    assert report.counts()["missing_fills"] == 0
    assert set(report.unrepairable()) == {"duplicate_fills", "unknown_fills"}


def test_an_order_with_no_order_sent_and_a_client_order_id_held_twice_at_the_venue_are_counted(scenario):
    # Arrange: the trail lost one ORDER_SENT; the venue's journal holds one id as two orders
    trail = [e for e in scenario.trail if not (e.kind is EventKind.ORDER_SENT and e.venue == "SHFE"
                                               and e.decision_id == "s1-00000002")]
    j = VenueJournal(scenario.journal("LME"), fresh=False)
    first = next(r for r in j.records if r[0] == "O")
    j.append(["O", first[1], "LME-O77", 77])
    j.close()
    records = [JournalRecordSource(scenario.journal(c)).load() for c in ("LME", "SHFE")]
    # Act
    report = compare_with_venues(trail, records, now_ns=T0)
    # Assert: the venue codes come from the venue's own ids when not given
    assert set(report.venues) == {"LME", "SHFE"}
    assert [o.client_order_id for o in report.venues["SHFE"].orders_without_sent] == ["s1-00000002:A:0"]
    assert report.venues["LME"].duplicate_order_ids == [json.loads(first[1])["client_order_id"]]
    sent = [e for e in report.backfill if e.kind is EventKind.ORDER_SENT]
    assert [(e.payload["qty"], e.payload["side"]) for e in sent] == [(20, "BUY")]


def test_fills_of_an_earlier_run_are_not_expected_in_a_journal_that_began_afresh(scenario):
    # Arrange: the trail also holds an earlier run's LME fill, of an order the journal never saw
    early = Scenario.__new__(Scenario)
    mk = EventMaker(SimClock(T0 - 10**12), "early", node=2)
    old = [mk.make(EventKind.ORDER_SENT, decision_id="s1-00000000", strategy="s1", venue="LME",
                   client_order_id="s1-00000000:B:0"),
           mk.make(EventKind.ORDER_REPORT, decision_id="s1-00000000", strategy="s1", venue="LME",
                   client_order_id="s1-00000000:B:0", status="FILLED", trade_id="LME-T1", fill_qty=2)]
    del early
    records = [JournalRecordSource(scenario.journal("LME"), venue="LME").load()]
    # Act
    report = compare_with_venues(old + scenario.trail, records, now_ns=T0)
    # Assert: the same trade id in a new life of the venue is not confused with the old one
    lme = report.venues["LME"]
    assert lme.ok and lme.out_of_scope_fills == 1 and lme.trail_fills == 2
    # and with --since before the earlier run, it is expected at the venue
    assert compare_with_venues(old + scenario.trail, records, since_ns=0).counts()["unknown_fills"] == 1


def test_a_running_gateways_drop_copy_rows_are_a_venue_record_too(scenario):
    # Arrange: what gateway.drop_copy() returns is the venue's row log
    rows = scenario.sims["LME"].drop_copy()
    # Act
    report = compare_with_venues(scenario.lme_fills_lost(), [DropCopyRecordSource("LME", rows).load()])
    # Assert
    assert sorted(f.qty for f in report.venues["LME"].missing_fills) == [3, 4]


def test_reconcile_cli_against_venue_state_lists_then_backfills_once(scenario, tmp_path, capsys):
    # Arrange
    led = _ledger(tmp_path / "ledger", scenario.lme_fills_lost())
    with AuditReader(led) as r:
        before = r.count()
    args = ["audit", "reconcile", "--ledger", str(led), "--venue-state", str(scenario.state)]
    # Act 1: a dry run
    rc = main(args)
    out = capsys.readouterr().out
    # Assert: exit 1, both LME fills listed, nothing written
    assert rc == 1, out
    assert out.count("fill at the venue, not in the trail") == 2 and "missing fills" in out
    with AuditReader(led) as r:
        assert r.count() == before
    # the same as CSV: one row per venue, one per mismatch, each under its table's name
    assert main([*args, "--format", "csv"]) == 1
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][:3] == ["table", "venue", "orders"]
    assert {r[0] for r in rows[1:]} == {"venues", "mismatches"}
    assert sum(1 for r in rows if "fill at the venue, not in the trail" in r) == 2
    # Act 2: write, then check again
    rc_write = main([*args, "--write"])
    capsys.readouterr()
    rc_again = main([*args, "--json"])
    again = json.loads(capsys.readouterr().out)
    rc_write_again = main([*args, "--write", "--json"])
    write_again = json.loads(capsys.readouterr().out)
    # Assert: stored once; the trail now agrees with the venues; a second write stores nothing
    assert rc_write == 0 and rc_again == 0 and again["ok"] and again["backfill"] == []
    assert rc_write_again == 0 and write_again["stored"] == 0
    with AuditReader(led) as r:
        fills = r.query(Filters(venue="LME", kind=("ORDER_REPORT",))).to_pylist()
    lme_fill_qty = sorted(json.loads(f["payload"]).get("fill_qty") for f in fills
                          if f["actor"] == "xmc audit reconcile" and json.loads(f["payload"]).get("trade_id"))
    assert lme_fill_qty == [3, 4]


def test_reconcile_cli_with_a_fill_stored_twice_fails_even_after_write(scenario, tmp_path, capsys):
    # Arrange
    trail = list(scenario.trail)
    fill = next(e for e in trail if e.venue == "LME" and e.payload.get("trade_id"))
    led = _ledger(tmp_path / "ledger", [*trail, fill.model_copy(update={"event_id": fill.event_id + "x"})])
    # Act
    rc = main(["audit", "reconcile", "--ledger", str(led), "--venue-state", str(scenario.state), "--write"])
    out = capsys.readouterr().out
    # Assert: a backfill cannot remove a duplicate: exit 1 and said so
    assert rc == 1 and "fill stored 2 times in the trail" in out and "not repairable" in out


def test_reconcile_cli_without_a_venue_record_warns_that_it_checks_the_trail_against_itself(scenario, tmp_path,
                                                                                            capsys):
    # Arrange
    led = _ledger(tmp_path / "ledger", scenario.lme_fills_lost())
    # Act
    rc = main(["audit", "reconcile", "--ledger", str(led)])
    cap = capsys.readouterr()
    # Assert
    assert "no venue record" in cap.err and "trail only" in cap.out


def test_venue_records_that_cannot_be_read_are_named(tmp_path, capsys):
    # Arrange
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "gateway-LME.venue").write_bytes(b"\xc1" * 10)
    # Act / Assert
    with pytest.raises(VenueRecordError, match="no venue journals"):
        journal_sources(tmp_path)
    with pytest.raises(VenueRecordError, match="not a venue journal"):
        JournalRecordSource(tmp_path / "state" / "gateway-LME.venue").load()
    rc = main(["audit", "reconcile", "--ledger", str(tmp_path), "--venue-state", str(tmp_path / "none")])
    assert rc == 1 and "does not exist" in capsys.readouterr().err


def test_a_deployments_gateways_name_their_journals(scenario):
    # Arrange: two sim gateways with state_dir, one without, one on another adapter
    gw = lambda venue, adapter="sim", **params: SimpleNamespace(  # noqa: E731
        venue=venue, adapter=adapter, params=params, actor_name=f"gateway-{venue}")
    cfg = SimpleNamespace(gateways=[gw("LME", state_dir=str(scenario.state)), gw("SHFE", state_dir=str(scenario.state)),
                                    gw("COMEX"), gw("CME", adapter="fix")])
    # Act
    sources, without = sources_from_config(cfg)
    # Assert
    assert [(s.venue, s.path.name) for s in sources] == [("LME", "gateway-LME.venue"), ("SHFE", "gateway-SHFE.venue")]
    assert len(without) == 2 and "COMEX" in without[0] and "fix" in without[1]


def _ev(kind: EventKind, n: int, **payload) -> Event:
    return Event(event_id=f"e{n:04d}", ts_ns=1_000 + n, kind=kind, venue="LME", decision_id="d1", payload=payload)


def test_a_fill_known_to_the_coordinator_only_as_a_quantity_is_in_the_trail_through_the_drop_copy() -> None:
    # Arrange: the venue made trade T1; its answer was lost, so the coordinator learned the
    # order FILLED from a status answer (no trade id), and the gateway recorded the execution
    # as the venue's drop copy, twice (a restarted gateway records it again)
    from xmc_actors.ledger.venue_records import VenueFill, VenueOrder, VenueRecord

    rec = VenueRecord(venue="LME", source="test",
                      orders=[VenueOrder(venue="LME", client_order_id="d1:B:0", status="FILLED", filled_qty=3)],
                      fills=[VenueFill(venue="LME", client_order_id="d1:B:0", trade_id="T1", qty=3, price="9800")])
    drop = {"report": {"kind": "FILL", "venue": "LME", "client_order_id": "d1:B:0",
                       "fill": {"trade_id": "T1", "qty": 3}}}
    trail = [_ev(EventKind.ORDER_SENT, 1, client_order_id="d1:B:0"),
             _ev(EventKind.ORDER_REPORT, 2, client_order_id="d1:B:0", status="FILLED", filled=3),
             _ev(EventKind.VENUE_DROP_COPY, 3, **drop), _ev(EventKind.VENUE_DROP_COPY, 4, **drop)]
    # Act
    counts = compare_with_venues(trail, [rec]).counts()
    # Assert: not missing, and the repeated drop copy is not a double booking
    assert counts["missing_fills"] == 0 and counts["duplicate_fills"] == 0
    # without the drop copy the fill is missing: the check is not blind
    assert compare_with_venues(trail[:2], [rec]).counts()["missing_fills"] == 1
