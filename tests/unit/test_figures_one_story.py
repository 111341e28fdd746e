"""One story in every view: the run summary, the HTML report and ``xmc status`` show each figure
computed once (``xmc_actors.ledger.figures``), under one label; the report aggregates (its size
does not grow with the ledger), shows a replay in market time, names every alert and gives
trace commands that work as pasted."""
from __future__ import annotations

import html
import re
import shlex
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
import testkit
from pair_harness import Behaviour, Harness

from xmc_actors.bench.ledger_data import build_ledger
from xmc_actors.core.clock import SimClock
from xmc_actors.core.sink import EventMaker
from xmc_actors.ledger.audit import AuditReader, fmt_ns
from xmc_actors.ledger.figures import LABELS, Dist, alert_name, ledger_figures
from xmc_actors.ledger.report import MAX_TRACE_HINTS, SCATTER_POINTS, TIME_BINS, build_report
from xmc_actors.ledger.schema import ARROW_SCHEMA, encode_events, pack_payload
from xmc_actors.ledger.store import LedgerStore
from xmc_actors.ledger.synthetic import synthetic_session
from xmc_actors.model import EventKind, ExecutionMode, RejectReason
from xmc_actors.ops import cmd_run
from xmc_actors.ops.cli import main
from xmc_actors.runtime.deploy import RunSummary, run_figures


INSTRUMENTS = {"SHFE.cu": testkit.instrument("SHFE.cu"), "LME.CA3M": testkit.instrument("LME.CA3M")}


def intent(did: str, **kw):  # noqa: ANN201
    return testkit.pair_intent(did, a=("SHFE.cu", "BUY", 2, "72000"), b=("LME.CA3M", "SELL", 2, "9800"), **kw)


def _write(path: Path, events) -> None:  # noqa: ANN001
    s = LedgerStore(path)
    s.append(encode_events(list(events)).table, stored_ns=1)
    s.close()


def _report_rows(page: str) -> list[tuple[str, str]]:
    """The (label, text) rows of the report's Figures table."""
    table = page.split("<h2>Figures</h2>", 1)[1].split("</table>", 1)[0]
    return [(html.unescape(a), html.unescape(b)) for a, b in re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", table)]


def _hints(page: str) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<code>(xmc audit trace [^<]*)</code>", page)]


@pytest.fixture(scope="module")
def coordinator_run(tmp_path_factory) -> dict:
    """The coordinator's pair state machine trading 40 pairs against venues that reject, fill in
    part and answer late (so pairs hedge, replenish and unwind), its events in a ledger, plus
    the risk guard's BOOKED record of each pair 7 ms after it ended (the record the report took
    for the pair's end)."""
    h = Harness(INSTRUMENTS, {"SHFE": Behaviour(latency_ms=(0.1, 2.0)),
                              "LME": Behaviour(reject=0.35, partial=0.3, latency_ms=(0.1, 6.0),
                                               reject_reasons=(RejectReason.PRICE_OUT_OF_LIMIT,
                                                               RejectReason.MARKET_CLOSED))}, seed=5)
    for i in range(40):
        h.submit(intent(f"d{i:03d}", mode=ExecutionMode.SPEED))
        h.drain()
    guard = EventMaker(SimClock(), "risk-guard", node=9)
    booked = []
    for e in h.sink.events:
        if e.kind is EventKind.PAIR_STATE and "unhedged_ms" in e.payload:
            booked.append(guard.make(EventKind.RISK_DECISION, decision_id=e.decision_id, strategy=e.strategy,
                                     reason="BOOKED", state=e.payload["state"], ts_ns=e.ts_ns + 7_000_000))
    root = tmp_path_factory.mktemp("coordinator-run") / "ledger"
    root.mkdir()
    _write(root / "shard-0.duckdb", [*h.sink.events, *booked])
    last = {d["decision_id"]: d for d in h.done}  # each pair's last summary
    return {"ledger": root, "summaries": list(last.values()), "events": h.sink.events}


def test_the_summary_and_the_report_show_the_same_figures_under_the_same_labels(coordinator_run):
    # Arrange: what Deployment.stop and `xmc run --report` do with the run's ledger
    ledger = coordinator_run["ledger"]
    summary = RunSummary(name="t", wall_s=1.0, pairs_by_outcome={}, quotes=0, intents=0, alerts_by_level={},
                         slippage_bps={}, exposure_ms={}, replenished=0, rolled_back=0, escalated=0,
                         strategy_errors=0, ledger_path=str(ledger))
    # Act
    summary.apply_figures(run_figures(ledger))
    with AuditReader(ledger) as r:
        page = build_report(r)
    # Assert: row for row, label for label, and every one in the summary's lines
    rows = _report_rows(page)
    assert rows == summary.figure_rows and len(rows) >= 7
    lines = summary.lines()
    for label, text in rows:
        assert any(ln.strip().startswith(label) and ln.rstrip().endswith(text) for ln in lines), (label, lines)
    labels = [label for label, _ in rows]
    assert LABELS["unwound"] in labels and LABELS["pairs_by_outcome"] in labels


def test_the_figures_are_what_the_coordinator_measured_not_the_risk_guards_booking_delay(coordinator_run):
    # Arrange: the coordinator's own pair summaries (what the run summary used to read)
    done = coordinator_run["summaries"]
    traded = [s for s in done if any(lg["filled_qty"] for lg in s["legs"])]
    slip = [lg["slippage_pct"] * 1e4 for s in done for lg in s["legs"] if lg["slippage_pct"] is not None]
    unwound = {e.decision_id for e in coordinator_run["events"] if e.kind is EventKind.ROLLBACK}
    # Act
    fig = run_figures(coordinator_run["ledger"])
    # Assert
    assert fig.unhedged_ms == Dist.of(s["unhedged_ms"] for s in traded) and fig.unhedged_ms.n == len(traded)
    assert fig.slippage_bps.n == len(slip) and fig.slippage_bps.p50 == pytest.approx(Dist.of(slip).p50)
    assert fig.slippage_bps.max == pytest.approx(max(slip))
    assert fig.pairs_by_outcome == dict(Counter(s["state"] for s in done))
    # "unwound a filled leg" and "ended ROLLED_BACK" are two figures, each counted one way
    assert fig.unwound == len(unwound) > 0 and fig.pairs_by_outcome.get("ROLLED_BACK", 0) > 0
    assert fig.replenished == len({e.decision_id for e in coordinator_run["events"] if e.kind is EventKind.REPLENISH})


def test_a_report_hint_works_as_pasted_from_another_directory(coordinator_run, tmp_path, monkeypatch, capsys):
    # Arrange: the report made with a relative --ledger path
    monkeypatch.chdir(coordinator_run["ledger"].parent)
    out = tmp_path / "r.html"
    assert main(["audit", "report", "--ledger", "ledger", "-o", str(out)]) == 0
    hints = _hints(out.read_text(encoding="utf-8"))
    assert hints and all("--ledger" in h for h in hints)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    for hint in hints:
        argv = shlex.split(hint)
        # Act: as pasted (without the program name, which is main's)
        rc = main(argv[1:])
        # Assert
        said = capsys.readouterr().out
        assert argv[0] == "xmc" and rc == 0 and argv[3] in said


def test_escalated_pairs_are_listed_with_their_trace_commands(tmp_path):
    # Arrange
    events = list(synthetic_session(400, seed=4))
    escalated = {e.decision_id for e in events if e.kind is EventKind.PAIR_STATE and e.payload["state"] == "ESCALATED"}
    _write(tmp_path / "shard-0.duckdb", events)
    # Act
    with AuditReader(tmp_path) as r:
        page = build_report(r)
    # Assert
    listed = {shlex.split(h)[3] for h in _hints(page.split("<h3>Escalated pairs", 1)[1])}
    assert escalated and listed == escalated and len(escalated) <= MAX_TRACE_HINTS
    assert f"Escalated pairs ({len(escalated):,})" in page


def _alert_rows(n: int, t0: int, t1: int) -> pa.Table:
    """``n`` ALERT events spread over ``[t0, t1)``: 60 names (monitor, scope, key) at 4 levels, and
    global-scope alerts with no key."""
    blobs = []
    for i in range(240):
        level = ("info", "yellow", "orange", "red")[i % 4]
        if i % 60 == 0:
            blobs.append(pack_payload({"monitor": "actor_fault", "scope": "global", "key": "", "level": level}))
        else:
            blobs.append(pack_payload({"monitor": f"m{i % 6}", "scope": "strategy", "key": f"s{i % 10}",
                                       "level": level, "message": "x"}))
    ts = [t0 + (t1 - t0) * i // n for i in range(n)]
    cols = {"event_id": [f"alert-{i:012d}" for i in range(n)], "ts_ns": ts, "kind": ["ALERT"] * n,
            "payload": [blobs[i % len(blobs)] for i in range(n)], "reason": [""] * n}
    return pa.Table.from_arrays([pa.array(cols.get(f.name, [None] * n), f.type) for f in ARROW_SCHEMA],
                                schema=ARROW_SCHEMA)


def test_the_report_of_a_ledger_with_many_pairs_and_alerts_stays_small_and_holds_the_totals(tmp_path):
    # Arrange: 300k events (27k pairs) plus 150k alerts: one circle per alert made 17.8 MB
    build_ledger(tmp_path / "shard-0.duckdb", 300_000)
    store = LedgerStore(tmp_path / "shard-0.duckdb")
    (t0, t1), = store.con.execute("SELECT min(ts_ns), max(ts_ns) FROM events").fetchall()
    store.append(_alert_rows(150_000, t0, t1), stored_ns=1)
    store.close()
    # Act
    with AuditReader(tmp_path) as r:
        fig = ledger_figures(r)
        page = build_report(r, figures=fig)
        n_events = r.count()
    # Assert: bounded size and marks, and still the totals
    assert len(page.encode("utf-8")) < 2_000_000
    assert page.count("<circle") <= SCATTER_POINTS + 16
    assert page.count("<rect") <= 6 * TIME_BINS + 4 * TIME_BINS + 200
    n_alerts = sum(fig.alerts_by_level.values())
    assert n_alerts >= 150_000 and fig.pairs > 20_000
    header = page.split("<h2>", 1)[0]
    assert f"{n_events:,} events" in header and f"{fig.pairs:,} pairs" in header and f"{n_alerts:,} alerts" in header
    assert f"Alerts over time, by level ({n_alerts:,})" in page
    # every alert has a name, the global ones too
    names = re.findall(r"<tr><td>([^<]*)</td><td>(?:info|yellow|orange|red)</td>", page)
    assert names and all(n.strip() for n in names) and "actor_fault" in names


def test_a_replay_is_shown_in_market_time_and_a_mixed_run_lists_each_replayed_strategy(tmp_path):
    # Arrange: the synthetic session's decisions taken in 2020 market time (as a replaying
    # strategy host stamps them: wall ts_ns, market time in the SIGNAL's payload)
    five_years = 5 * 365 * 86_400 * 10**9

    def replayed(e, strategies):  # noqa: ANN001, ANN202
        if e.kind is EventKind.SIGNAL and e.strategy in strategies:
            return e.model_copy(update={"payload": {**e.payload, "market_ts_ns": e.ts_ns - five_years}})
        return e
    events = list(synthetic_session(200, seed=3))
    every = {e.strategy for e in events if e.strategy}
    (tmp_path / "all").mkdir()
    (tmp_path / "one").mkdir()
    _write(tmp_path / "all" / "shard-0.duckdb", (replayed(e, every) for e in events))
    _write(tmp_path / "one" / "shard-0.duckdb", (replayed(e, {"au_sge_comex"}) for e in events))
    first_market = min(e.ts_ns for e in events if e.kind is EventKind.SIGNAL) - five_years
    # Act
    with AuditReader(tmp_path / "all") as r:
        replay_fig = ledger_figures(r)
        replay = build_report(r, figures=replay_fig)
    with AuditReader(tmp_path / "one") as r:
        mixed_fig = ledger_figures(r)
        mixed = build_report(r, figures=mixed_fig)
    # Assert
    assert replay_fig.replay and not mixed_fig.replay and set(mixed_fig.market_span) == {"au_sge_comex"}
    assert f"Market time (replayed data): <b>{fmt_ns(first_market)}</b>" in replay
    assert "(market time, UTC)" in replay and "(wall clock, UTC)" not in replay
    assert fmt_ns(first_market)[:10] in re.search(r"Pairs over time.*?</svg>", replay, re.S).group(0)
    assert "(wall clock, UTC)" in mixed and "au_sge_comex <b>" + fmt_ns(mixed_fig.market_span["au_sge_comex"][0])[:10] in mixed
    assert (LABELS["market_time"], f"au_sge_comex {fmt_ns(mixed_fig.market_span['au_sge_comex'][0])[:10]} to "
            f"{fmt_ns(mixed_fig.market_span['au_sge_comex'][1])[:10]}") in mixed_fig.rows()


def test_alert_names_are_never_blank():
    assert alert_name({"monitor": "actor_fault", "scope": "global", "key": ""}) == "actor_fault"
    assert alert_name({"monitor": "venue_state", "scope": "venue", "key": "LME"}) == "venue_state venue=LME"
    assert alert_name({}, "pair rolled back") == "pair rolled back"
    assert alert_name({}) == "alert"


def test_status_shows_outcomes_and_alerts_as_the_summary_and_report_name_them():
    status = {"coordinator": {"in_flight": {"WORKING": 1}, "outcomes": {"ROLLED_BACK": 2, "HEDGED": 5, "REFUSED": 1}},
              "risk-guard": {"open_alerts": [{"level": "yellow", "monitor": "actor_fault", "scope": "global", "key": "",
                                              "message": "replay step failed"}]}}
    tables = {t.name: t for t in cmd_run.status_tables({}, status)}
    assert [r[0] for r in tables["pairs"].rows] == ["in flight", "HEDGED", "ROLLED_BACK", "REFUSED"]
    assert LABELS["pairs_by_outcome"] in tables["pairs"].title
    assert [r[1] for r in tables["open_alerts"].rows] == ["actor_fault"]


def test_the_demo_describes_the_ledger_it_writes(tmp_path, capsys):
    assert main(["demo", "--validate-only", "--out", str(tmp_path)]) == 0
    said = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("ledger")]
    assert said and said[0].split()[1] == str(tmp_path / "ledger")


def test_the_rolled_back_example_is_a_pair_that_unwound_and_ended_rolled_back(tmp_path):
    # Arrange: the first pair to unwind a leg ended HEDGED (its unwind left a sub-lot residual the
    # replenishment covered); a later one unwound and ended ROLLED_BACK
    m = EventMaker(SimClock(), "coordinator", node=1)
    t = 1_000_000_000
    events = [
        m.make(EventKind.ROLLBACK, decision_id="d-hedged", strategy="s", ts_ns=t),
        m.make(EventKind.PAIR_STATE, decision_id="d-hedged", strategy="s", state="HEDGED", ts_ns=t + 10),
        m.make(EventKind.ROLLBACK, decision_id="d-rolled", strategy="s", ts_ns=t + 20),
        m.make(EventKind.PAIR_STATE, decision_id="d-rolled", strategy="s", state="ROLLED_BACK", ts_ns=t + 30),
    ]
    _write(tmp_path / "shard-0.duckdb", events)
    # Act
    with AuditReader(tmp_path) as r:
        examples = ledger_figures(r).examples
    # Assert
    assert examples["a rolled-back pair"] == "d-rolled"
    assert examples["a hedged pair"] == "d-hedged"


def test_without_a_rolled_back_pair_the_example_is_the_first_pair_that_unwound(tmp_path):
    m = EventMaker(SimClock(), "coordinator", node=1)
    events = [
        m.make(EventKind.ROLLBACK, decision_id="d-hedged", strategy="s", ts_ns=1_000),
        m.make(EventKind.PAIR_STATE, decision_id="d-hedged", strategy="s", state="HEDGED", ts_ns=2_000),
    ]
    _write(tmp_path / "shard-0.duckdb", events)
    with AuditReader(tmp_path) as r:
        assert ledger_figures(r).examples["a rolled-back pair"] == "d-hedged"
