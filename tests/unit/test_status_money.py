"""`xmc status` shows the risk guard's money: accounts, P&L by strategy and by pair."""
from __future__ import annotations

from test_monitor_alerts import summary
from test_risk_guard_pnl import core, mark

from xmc_actors.ops import cmd_run


def test_xmc_status_shows_accounts_and_pnl_by_strategy_and_pair() -> None:
    g, _, clock = core()
    mark(g, clock, "SHFE.cu", "72100")
    g.on_pair_done(summary("d1"))
    tables = {t.name: t for t in cmd_run.status_tables({"name": "demo"}, {"risk-guard": g.status()})}
    assert [r[0] for r in tables["accounts"].rows] == ["cn", "us"]
    assert [r[0] for r in tables["pnl_by_strategy"].rows] == ["s1"]
    assert [r[0] for r in tables["pnl_by_pair"].rows] == ["s1|LME.CA3M/SHFE.cu"]
    assert "risk_two_sided" not in tables   # the coordinator's two-sided table is shown instead
