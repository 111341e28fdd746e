"""A user's own daily copper files, as published, through ``xmc run`` (issue 17 item 7).

SHFE (dd/mm/yy, headers with a leading space, thousands separators, a % column) and a
close-only LME file, mapped in the deployment file, replayed against USD/CNY from FRED with the
deployment's defaults: no ``max_lag_days``, no ``stale_ms``/``max_skew_ms``, sessions and
price limits enforced by the simulated venues, the risk check's sessions on and the default
reject-ratio halt. The pairs trade at 2019's FX and hours, the skipped row is counted in the
summary and the ledger, and a gateway whose file lost a column says why in ``xmc run``'s output.
"""
from __future__ import annotations

import datetime as dt
import math
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runtime_kit import TERMINAL, XMC, events, last_pair_states, subprocess_env
from testkit import ROOT, data_dir
from xmc_actors.feeds.replay import load_fred_fx

pytestmark = pytest.mark.ray

FRED = data_dir() / "real" / "fred_dexchus_usdcny_daily.csv"


def _xmc(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([XMC, *args], capture_output=True, text=True, timeout=timeout, env=subprocess_env())


def write_files(tmp: Path) -> tuple[Path, Path]:
    """Jan-Apr 2019 weekdays with a FRED fixing: LME a random walk, SHFE at LME x USDCNY times a
    mean-reverting premium that crosses the band both ways."""
    fx = {d: float(r) for d, r in load_fred_fx(FRED, start=dt.date(2019, 1, 1), end=dt.date(2019, 4, 30))[0]}
    rng = random.Random(17)
    lme, prem = 5900.0, 0.0
    shfe_rows = [" SHFE Copper Exchange Date, SHFE Copper Open, SHFE Copper High, SHFE Copper Low, SHFE Copper Close,"
                 " SHFE Copper Volume, SHFE Copper %Chg"]
    lme_rows = ["LME Copper Date,LME Copper Close"]
    prev = None
    for day in sorted(fx):
        if day.weekday() >= 5:
            continue
        lme *= math.exp(rng.gauss(0, 0.01))
        prem = 0.7 * prem + rng.gauss(0, 0.012)
        close = round(lme * fx[day] * (1 + prem) / 10) * 10
        o, h, lo = close - 100, close + 250, close - 300
        chg = "" if prev is None else f"{(close / prev - 1) * 100:.2f}%"
        d = day.strftime("%d/%m/%y")
        if day == dt.date(2019, 2, 13):      # a day with a close and blank open/high/low
            shfe_rows.append(f'{d},,,,"{close:,}",,{chg}')
        elif day == dt.date(2019, 3, 6):     # limit-locked: High = Low, with volume
            shfe_rows.append(f'{d},"{close:,}","{close:,}","{close:,}","{close:,}","5,000",{chg}')
        else:
            shfe_rows.append(f'{d},"{o:,}","{h:,}","{lo:,}","{close:,}","{rng.randint(50_000, 150_000):,}",{chg}')
        lme_rows.append(f'{day.strftime("%d/%m/%Y")},"{lme:,.2f}"' if day != dt.date(2019, 3, 20) else
                        f'{day.strftime("%d/%m/%Y")},')  # a blank LME close: skipped and counted
        prev = close
    shfe, lme_p = tmp / "SHFE Copper.csv", tmp / "LME Copper.csv"
    shfe.write_text("\n".join(shfe_rows) + "\n")
    lme_p.write_text("\n".join(lme_rows) + "\n")
    return shfe, lme_p


def deployment(tmp: Path, shfe: Path, lme: Path, namespace: str) -> Path:
    shutil.copy(ROOT / "configs" / "catalogue.yaml", tmp / "catalogue.yaml")
    cols = {"date": "SHFE Copper Exchange Date", "open": "SHFE Copper Open", "high": "SHFE Copper High",
            "low": "SHFE Copper Low", "close": "SHFE Copper Close", "volume": "SHFE Copper Volume"}
    doc = {
        "name": "byod-daily",
        "include": ["catalogue.yaml"],
        "fx": [{"base": "USD", "quote": "CNY", "source": "file", "file": str(FRED)}],
        "accounts": [{"id": "cn", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 50_000_000},
                     {"id": "us", "broker": "sim", "venues": ["LME"], "currency": "USD", "capital": 10_000_000}],
        "gateways": [
            {"venue": "SHFE", "group": "copper", "params": {"seed": 1},
             "feed": {"kind": "replay", "params": {"files": [
                 {"instrument": "SHFE.cu", "path": str(shfe), "format": "csv", "date_format": "%d/%m/%y", "columns": cols}]}}},
            {"venue": "LME", "group": "copper", "params": {"seed": 2},
             "feed": {"kind": "replay", "params": {"files": [
                 {"instrument": "LME.CA3M", "path": str(lme), "format": "csv", "date_format": "%d/%m/%Y",
                  "columns": {"date": "LME Copper Date", "close": "LME Copper Close"}}]}}}],
        "strategies": [{"name": "cu-shfe-lme", "class": "band",
                        "legs": [{"instrument": "SHFE.cu", "account": "cn"}, {"instrument": "LME.CA3M", "account": "us"}],
                        "params": {"signal": "ratio", "price": "mid", "center": 1.0, "entry": 0.02, "exit": 0.005,
                                   "clip": 5, "max_position": 10, "cooldown_ms": 0}}],
        "ledger": {"path": str(tmp / "ledger"), "shards": 1},
        "ray": {"namespace": namespace},
    }
    p = tmp / "byod.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def test_published_daily_files_replay_with_the_defaults_at_their_own_market_time(tmp_path):
    shfe, lme = write_files(tmp_path)
    cfg = deployment(tmp_path, shfe, lme, "test-byod-daily")
    assert _xmc("validate", str(cfg), "-q").returncode == 0

    out = _xmc("run", str(cfg), "--no-progress")

    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    # the blank LME close is counted, with its line, in the summary
    assert "1 skipped" in out.stdout and "1 x blank price" in out.stdout, out.stdout
    assert "WARNING" not in out.stdout
    states = last_pair_states(tmp_path / "ledger")
    assert states and set(states.values()) <= TERMINAL
    assert "HEDGED" in states.values(), states
    refused = [e for e in events(tmp_path / "ledger", "RISK_DECISION") if e["reason"] == "REFUSED"]
    assert not refused, [e["payload"].get("denials") for e in refused[:3]]   # no FX_UNAVAILABLE, no MARKET_CLOSED
    rejects = [e for e in events(tmp_path / "ledger", "ORDER_REPORT") if e["payload"].get("status") == "REJECTED"]
    assert not rejects, rejects[:3]
    halts = [e for e in events(tmp_path / "ledger", "ALERT") if "reject" in str(e["payload"].get("monitor", ""))]
    assert not halts
    # each file's counts are in the ledger too
    loaded = [e for e in events(tmp_path / "ledger", "LIFECYCLE") if e["reason"].startswith("replay file")]
    assert sorted(e["payload"]["feed_report"]["skipped"] for e in loaded) == [0, 1]


def test_a_gateway_that_cannot_start_says_why_in_the_run_output(tmp_path):
    from xmc_actors.runtime.config import load_config
    from xmc_actors.runtime.deploy import Deployment
    from xmc_actors.runtime.placement import ActorsNotReady

    shfe, lme = write_files(tmp_path)
    cfg = load_config(deployment(tmp_path, shfe, lme, "test-byod-broken"))
    # the file changes after the configuration was checked: its close column is renamed
    shfe.write_text(shfe.read_text().replace(" SHFE Copper Close", " Settle"))
    dep = Deployment(cfg, ledger_path=str(tmp_path / "ledger"))
    try:
        with pytest.raises(ActorsNotReady) as e:
            dep.start()
    finally:
        dep.shutdown_ray()
    msg = str(e.value)
    assert "gateways-copper" in msg and "died while starting" in msg
    assert "no such column" in msg and "close: column 'SHFE Copper Close'" in msg, msg
