"""Builders for runtime tests: small deployment files over the catalogue, and ledger reads.

The deployments trade SHFE copper against LME copper on synthetic feeds (a shared factor, so
the ratio moves and the band strategy triggers) with ``enforce_sessions: false`` so that they
trade at any hour.
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "configs" / "catalogue.yaml"
XMC = str(ROOT / ".venv" / "bin" / "xmc")
TERMINAL = {"HEDGED", "ROLLED_BACK", "ESCALATED", "REFUSED"}


def band(name: str, *, cls: str = "band", mode: str = "speed", entry: float = 0.0004, cooldown_ms: int = 50,
         stale_ms: int = 10_000, **params: Any) -> dict[str, Any]:
    """A copper band strategy (SHFE.cu vs LME.CA3M) that triggers often on the synthetic feeds."""
    p = {"signal": "ratio", "price": "executable", "center": 1.0, "entry": entry, "exit": entry / 4, "clip": 5,
         "max_position": 20, "cooldown_ms": cooldown_ms,
         "guards": {"require_sessions_open": False, "stale_ms": stale_ms}}
    p.update(params)
    return {"name": name, "class": cls, "legs": [{"instrument": "SHFE.cu", "account": "cn-main"},
                                                   {"instrument": "LME.CA3M", "account": "us-main"}],
            "params": p, "execution": {"mode": mode}}


def gateway(venue: str, *, seed: int, start: float, inst: str, ticks_per_s: int = 40,
            ack_ms: float = 2.0, **params: Any) -> dict[str, Any]:
    gp = {"seed": seed, "enforce_sessions": False, "ack_latency": {"kind": "const", "mean_ms": ack_ms}}
    gp.update(params)
    return {"venue": venue, "adapter": "sim", "params": gp,
            "feed": {"kind": "synthetic", "params": {"seed": seed + 100, "factor_seed": 42, "instruments": [inst],
                                                     "start_prices": [start], "vol_bps": 5,
                                                     "ticks_per_s": ticks_per_s}}}


def copper_config(tmp: Path, name: str, namespace: str, *, strategies: list[dict[str, Any]] | None = None,
                  lme: dict[str, Any] | None = None, shfe: dict[str, Any] | None = None,
                  ray_extra: dict[str, Any] | None = None, gateways_extra: list[dict[str, Any]] = (),
                  group: str | None = None) -> Path:
    """Write ``<tmp>/<name>.yaml`` (includes the catalogue) and return its path; ledger in ``<tmp>/ledger``.
    ``group``: the SHFE and LME gateways share one process (a gateway group of that name)."""
    doc = {
        "name": name,
        "include": [str(CATALOGUE)],
        "base_currency": "USD",
        "fx": [{"base": "USD", "quote": "CNY", "source": "static", "rate": 7.1}],
        "accounts": [
            {"id": "cn-main", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 200_000_000},
            {"id": "us-main", "broker": "sim", "venues": ["LME"], "currency": "USD", "capital": 30_000_000},
        ],
        "gateways": [*({**g, "group": group} if group else g for g in (
                         gateway("SHFE", seed=21, start=72000, inst="SHFE.cu", **(shfe or {})),
                         gateway("LME", seed=22, start=10140, inst="LME.CA3M", **(lme or {})))), *gateways_extra],
        "strategies": strategies if strategies is not None else [band("cu")],
        "risk": {"default_limits": {"max_order_qty": 50, "collar_pct": 0.05}, "check_sessions": False},
        "ledger": {"path": str(tmp / "ledger"), "shards": 1},
        "ray": {"namespace": namespace, "num_cpus": 2, "ready_timeout_s": 90, **(ray_extra or {})},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def last_pair_states(ledger: str | Path) -> dict[str, str]:
    """decision id -> the state the last PAIR_STATE event of that pair moved it to.

    The coordinator writes the transition as ``payload {"from": ..., "to": ...}``.
    """
    from xmc_actors.ledger.audit import AuditReader, Filters

    with AuditReader(ledger) as r:
        t = r.query(Filters(kind=("PAIR_STATE",)), limit=None, decode=True)
    out: dict[str, str] = {}
    for did, payload in zip(t.column("decision_id").to_pylist(), t.column("payload").to_pylist()):
        p = json.loads(payload or "{}")
        out[did] = p.get("to") or p.get("state") or "?"
    return out


def ledger_pair_outcomes(ledger: str | Path) -> dict[str, int]:
    """The audit's own count of pairs by terminal outcome (``OPEN``: a decision with no end)."""
    from xmc_actors.ledger.audit import AuditReader

    with AuditReader(ledger) as r:
        return r.pair_outcomes()


def outcome_counts(states: dict[str, str]) -> dict[str, int]:
    return dict(Counter(states.values()))


def events(ledger: str | Path, kind: str) -> list[dict[str, Any]]:
    """Every event of ``kind`` as a dict (payload decoded)."""
    from xmc_actors.ledger.audit import AuditReader, Filters

    with AuditReader(ledger) as r:
        rows = r.query(Filters(kind=(kind,)), limit=None, decode=True).to_pylist()
    for row in rows:
        row["payload"] = json.loads(row["payload"] or "{}")
    return rows


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("XMC_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    return env


__all__ = ["XMC", "TERMINAL", "band", "gateway", "copper_config", "last_pair_states", "ledger_pair_outcomes", "outcome_counts", "events",
           "subprocess_env", "sys"]
