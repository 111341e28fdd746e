"""The execution lab (xmc backtest): the product's cores on a discrete-event clock, no Ray.

What is checked: the same configuration and seed give the same JSON, byte for byte; an order is
matched against the book as it stands when it *arrives* (latency costs something); the
sequential baseline waits for leg A and pays the far venue's round trip when A is far; what the
venues' own records hold agrees with what the strategies and the pair outcomes say; the lab's
ledger is read by `xmc audit`; bad arguments get a clear refusal.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from testkit import ROOT, quote
from xmc_actors.lab.compare import MARKER, backtest, to_json
from xmc_actors.lab.engine import LabRun, load_market
from xmc_actors.model.lab import VenueLatency
from xmc_actors.model.latency import LatencyModel
from xmc_actors.model.market import Side
from xmc_actors.model.orders import OrderRequest, OrderType, TimeInForce, client_order_id
from xmc_actors.model.pairs import PairState
from xmc_actors.ops.cli import main
from xmc_actors.runtime.config import load_config

COPPER = ROOT / "configs" / "lab" / "copper.yaml"


def _copper(seconds: float = 240.0, **lab: object):
    cfg = load_config(COPPER)
    return cfg.model_copy(update={"lab": cfg.lab.model_copy(update={"max_duration_s": seconds, **lab})})


@pytest.fixture(scope="module")
def copper_all():
    cfg = _copper()
    return cfg, backtest(cfg, ["speed", "price", "sequential"], seed=5)


def test_same_configuration_and_seed_give_identical_json_and_another_seed_does_not(copper_all):
    cfg, first = copper_all
    again = backtest(cfg, ["speed", "price", "sequential"], seed=5)
    assert to_json(first) == to_json(again)
    other = backtest(cfg, ["speed", "price", "sequential"], seed=6)
    assert to_json(other) != to_json(first)
    doc = json.loads(to_json(first))
    assert doc["policies"]["speed"]["figures"]["pairs_attempted"] > 5  # something traded
    assert set(doc["ratios"]) >= {"speed_success_rate_vs_sequential_ratio", "price_opportunities_vs_sequential_ratio"}


def test_every_policy_plays_the_same_market(copper_all):
    _, res = copper_all
    quotes = {p: r["figures"]["quotes"] for p, r in res["policies"].items()}
    assert len(set(quotes.values())) == 1 and res["quotes"] == quotes["speed"]


def test_venue_records_agree_with_the_strategies_and_the_pair_outcomes():
    cfg = _copper()
    for policy in ("speed", "price", "quantity", "lead_lag", "sequential"):
        run = LabRun(cfg, policy=policy, seed=2).run()
        strat = run.strategies["copper-shfe-lme"]
        held = {}
        for ex in run.exchanges.values():
            for acc, pos in ex.positions().items():
                held.update(pos)
        # the venues' own books: exactly what the strategy believes it holds
        assert held.get("SHFE.cu", 0) == strat.position, policy
        assert held.get("LME.CA3M", 0) == strat.position_b, policy
        # ... and what the pair outcomes say was left in the book
        net = {"A": 0, "B": 0}
        for rec in run.records.values():
            assert rec.summary is not None, f"{policy}: {rec.decision_id} never finished"
            for lg in rec.summary.legs:
                net[lg.leg] += lg.net_lots
        assert (net["A"], net["B"]) == (strat.position, strat.position_b), policy
        # a pair left off balance is either escalated or booked as a sub-lot residual
        for rec in run.records.values():
            s = rec.summary
            if s.pair_state is PairState.HEDGED and not s.residual_booked:
                a, b = s.leg("A"), s.leg("B")
                assert abs(a.net_lots) == abs(b.net_lots) * 5, (policy, rec.decision_id)  # 5 SHFE lots per LME lot


def _order(did: str, price: str, qty: int = 1) -> OrderRequest:
    return OrderRequest(client_order_id=client_order_id(did, "B", 0), decision_id=did, leg="B", attempt=0,
                        account="us-lab", instrument="LME.CA3M", side=Side.BUY, qty=qty, order_type=OrderType.IOC,
                        price=Decimal(price), tif=TimeInForce.IOC)


def test_an_order_is_matched_against_the_book_when_it_arrives_not_when_it_was_sent():
    far = LatencyModel(kind="const", mean_ms=100)
    lab = {"venues": {"LME": VenueLatency(order_entry=far, ack=far, fill=far, market_data=far)}}
    cfg = _copper(**lab)
    t0 = 1_736_125_300_000_000_000  # 2025-01-06 01:01:40 UTC: LME and SHFE open
    market = [(t0, "LME", quote("LME.CA3M", "10095.0", "10096.0", bid_size=5, ask_size=5, ts_ns=t0)),
              (t0 + 50_000_000, "LME", quote("LME.CA3M", "10099.0", "10100.0", bid_size=5, ask_size=5,
                                                ts_ns=t0 + 50_000_000))]
    run = LabRun(cfg, policy="speed", seed=1, quotes=market)
    run.by_instrument = {}  # no strategy: this test sends its own order
    run.start(t0)
    run.clock.set(t0)
    run._on_market("LME", market[0][2])
    run._at(t0 + 100_000_000, run._order_arrives, "LME", _order("x1", "10096.0"))  # sent at t0, 100 ms away
    run.clock.set(t0 + 50_000_000)
    run._on_market("LME", market[1][2])  # the market moves while the order travels
    while run._heap:
        run._pop()
    kinds = [(d["kind"], d["fill_qty"]) for d in run.exchanges["LME"].drop_copy() if d["client_order_id"] == "x1:B:0"]
    assert kinds == [("ACK", 0), ("CANCELED", 0)]  # the ask it aimed at had gone: nothing filled

    # the same order, had it arrived at once, takes the ask it saw
    run2 = LabRun(cfg, policy="speed", seed=1, quotes=market[:1])
    run2.start(t0)
    run2._on_market("LME", market[0][2])
    run2._order_arrives("LME", _order("x2", "10096.0"))
    fills = [d for d in run2.exchanges["LME"].drop_copy() if d["kind"] == "FILL"]
    assert [(d["fill_qty"], d["fill_price"]) for d in fills] == [(1, "10096.0")]


def test_sequential_legging_costs_synchronous_fills_when_leg_a_is_the_far_venue():
    """SHFE (leg A) made 150 ms away, LME near: the baseline's leg B waits for A's fill to come
    back, and whenever A's limit has to rest, for that too."""
    far = LatencyModel(kind="const", mean_ms=150)
    near = LatencyModel(kind="const", mean_ms=2)
    lab = {"venues": {"SHFE": VenueLatency(order_entry=far, ack=far, fill=far, market_data=near),
                      "LME": VenueLatency(order_entry=near, ack=near, fill=near, market_data=near)}}
    res = backtest(_copper(**lab), ["speed", "sequential"], seed=3)
    speed, seq = (res["policies"][p]["figures"] for p in ("speed", "sequential"))
    assert speed["pairs_attempted"] > 5 and seq["pairs_attempted"] > 5
    # concurrent: done one far round trip after the first order (150 + 150 ms)
    assert 299 <= speed["time_to_hedge_ms_p50"] <= 301
    # sequential: that, then leg B's own round trip, never less; its slow tail is A resting
    assert seq["time_to_hedge_ms_p50"] >= 303.9
    assert seq["time_to_hedge_ms_p95"] > speed["time_to_hedge_ms_p95"] + 200
    assert seq["sync_fill_rate"] < speed["sync_fill_rate"] - 0.1


def test_backtest_ledger_is_read_by_xmc_audit(tmp_path, capsys):
    cfg = _copper(120.0)
    res = backtest(cfg, ["speed"], seed=1, ledger_root=tmp_path / "lab")
    path = Path(res["ledgers"]["speed"])
    assert (path / MARKER).exists()
    con = duckdb.connect(str(path / "shard-0.duckdb"), read_only=True)
    did, n = con.execute("SELECT decision_id, count(*) FROM events WHERE kind = 'ORDER_SENT' GROUP BY 1 "
                         "ORDER BY 1 LIMIT 1").fetchone()
    head = con.execute("SELECT reason FROM events WHERE kind = 'LIFECYCLE' AND actor = 'lab' ORDER BY ts_ns LIMIT 1").fetchone()
    con.close()
    assert n >= 2 and "policy speed, seed 1" in head[0]
    assert main(["audit", "trace", did, "--ledger", str(path)]) == 0
    out = capsys.readouterr().out
    assert did in out and "ORDER_SENT" in out
    assert main(["audit", "report", "--ledger", str(path), "--out", str(tmp_path / "r.html")]) == 0


def test_backtest_never_writes_over_a_ledger_it_did_not_write(tmp_path):
    live = tmp_path / "ledger" / "speed"
    live.mkdir(parents=True)
    (live / "shard-0.duckdb").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="not written by xmc backtest"):
        backtest(_copper(30.0), ["speed"], seed=1, ledger_root=tmp_path / "ledger")
    assert (live / "shard-0.duckdb").read_bytes() == b"not ours"


def test_cli_backtest_writes_json_and_html_and_refuses_bad_arguments(tmp_path, capsys, monkeypatch):
    short = tmp_path / "copper.yaml"
    text = COPPER.read_text().replace("include: [../catalogue.yaml]", f"include: [{ROOT / 'configs' / 'catalogue.yaml'}]")
    short.write_text(text.replace("max_duration_s: 3600", "max_duration_s: 60"))
    args = ["backtest", str(short), "--policy", "speed,sequential", "--seed", "2", "--quiet", "--no-ledger"]
    assert main([*args, "--json", str(tmp_path / "a.json"), "--html", str(tmp_path / "a.html")]) == 0
    out = capsys.readouterr().out
    assert "success_rate" in out and "ratio to the sequential baseline" in out
    assert main([*args, "--json", str(tmp_path / "b.json")]) == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    page = (tmp_path / "a.html").read_text()
    assert "<svg" in page and "sequential" in page and "pair slippage" in page
    capsys.readouterr()
    assert main(["backtest", str(short), "--policy", "fastest"]) == 2
    assert "--policy: 'fastest' is not one of" in capsys.readouterr().err
    assert main(["backtest", str(short), "--from", "2025-01-07", "--to", "2025-01-06"]) == 2
    assert "--to: must be after --from" in capsys.readouterr().err
    assert main(["backtest", str(short), "--from", "yesterday"]) == 2
    assert "--from/--to" in capsys.readouterr().err


def test_load_market_is_time_ordered_and_bounded():
    cfg = _copper(60.0)
    market, _ = load_market(cfg)
    ts = [t for t, _, _ in market]
    assert ts == sorted(ts) and ts[-1] - ts[0] <= 60e9
    assert {v for _, v, _ in market} == {"SHFE", "LME"}


def test_a_configured_venue_disconnect_happens_at_its_time_in_the_market_and_the_pairs_survive_it():
    cfg = _copper(300.0)
    gws = []
    for g in cfg.gateways:
        if g.venue == "LME":
            g = g.model_copy(update={"params": {**g.params, "faults": {"disconnects": [{"at_s": 60, "duration_s": 30}]}}})
        gws.append(g)
    cfg = cfg.model_copy(update={"gateways": tuple(gws)})
    run = LabRun(cfg, policy="speed", seed=4).run()
    lme = run.exchanges["LME"]
    t0 = run.first_ns
    assert lme._disconnects == [(t0 + 60 * 10**9, t0 + 90 * 10**9)]
    # found DOWN at the next probe: the venue reduced by the risk guard, the strategy blocked,
    # nothing reaches the venue while it is away; UP again after it
    kinds = [(e.kind.value, e.reason) for e in run.sink.events]
    assert ("OPERATOR", "trading state venue:LME -> REDUCING") in kinds
    assert ("OPERATOR", "trading state venue:LME -> ACTIVE") in kinds
    assert any(e.kind.value == "SIGNAL" and e.reason == "blocked: VENUE_DOWN" for e in run.sink.events)
    assert not [d for d in lme.drop_copy() if t0 + 61 * 10**9 <= d["ts_ns"] < t0 + 90 * 10**9]
    assert [d for d in lme.drop_copy() if d["ts_ns"] >= t0 + 92 * 10**9]  # trading again
    for rec in run.records.values():
        assert rec.summary is not None and rec.summary.pair_state.is_terminal
    strat = run.strategies["copper-shfe-lme"]
    held = {i: q for ex in run.exchanges.values() for pos in ex.positions().values() for i, q in pos.items()}
    assert (held.get("SHFE.cu", 0), held.get("LME.CA3M", 0)) == (strat.position, strat.position_b)


def test_validate_names_a_lab_latency_for_a_venue_the_file_does_not_have(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"include: [{COPPER}]\nname: bad\nlab:\n  venues:\n    SHFX: {{}}\n")
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr()
    assert "lab.venues.SHFX" in err.out + err.err and "unknown venue 'SHFX'" in err.out + err.err
