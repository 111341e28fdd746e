"""A backend for the operator API's app without Ray: the risk guard's answers from memory, the
desk as a plain :class:`DeskService` writing to a MemorySink. What every call reached is kept
in ``calls`` so a test can say nothing was executed (or executed once)."""
from __future__ import annotations

import copy
from typing import Any

from xmc_actors.api.desk import DeskService, raise_if_error
from xmc_actors.core.clock import SimClock
from xmc_actors.core.operator_api import hash_token, new_token
from xmc_actors.core.sink import MemorySink
from xmc_actors.model.api import ApiConfig, ConfirmConfig, TokenEntry

ROLES = ("viewer", "trader", "risk_officer", "admin")

BASE_STATUS: dict[str, Any] = {
    "trading_states": {},
    "throttled": [],
    "occupancy": {"A": {"used": "100.00", "equity": "1000000", "ratio": 0.0001, "level": None, "currency": "USD"}},
    "overall": {"used": "100.00", "equity": "1000000", "ratio": 0.0001, "level": None, "currency": "USD"},
    "open_alerts": [
        {"alert_id": "al-red", "monitor": "slippage", "scope": "strategy", "key": "gold", "level": "red",
         "action": "halt", "value": 50.0, "threshold": 30.0, "message": "slippage 50 bps", "opened_ns": 1, "ts_ns": 2},
        {"alert_id": "al-yel", "monitor": "latency", "scope": "venue", "key": "LME", "level": "yellow",
         "action": "none", "value": 9.0, "threshold": 5.0, "message": "latency", "opened_ns": 1, "ts_ns": 3},
    ],
    "positions": {"accounts": {"A": {"SHFE.cu": 2, "LME.CA": -2}}, "strategies": {"copper": {"SHFE.cu": 2}}},
    "limits": {"instruments": {"SHFE.cu": {"max_position": 10}}, "default_limits": {"max_order_qty": 5},
               "strategies": {"copper": {"max_position": 20}}, "max_account_position": {"A": 100}},
    "unresolved_escalations": {},
    "known": {"strategies": ["copper", "gold"], "venues": ["LME", "SHFE"], "accounts": ["A", "B"],
              "instruments": ["LME.CA", "SHFE.cu"]},
}


class FakeBackend:
    def __init__(self, clock: SimClock | None = None, confirm: ConfirmConfig | None = None) -> None:
        self.status = copy.deepcopy(BASE_STATUS)
        self.calls: list[tuple[Any, ...]] = []
        self.bys: list[dict[str, Any] | None] = []  # the role and channel each change was sent with
        self.sink = MemorySink()
        self.svc = DeskService(confirm or ConfirmConfig(), 3600.0, self.sink, clock)

    async def describe(self) -> dict[str, Any]:
        return {"name": "fake", "namespace": "xmc", "state": "RUNNING", "strategies": ["copper", "gold"]}

    async def risk_status(self) -> dict[str, Any]:
        return copy.deepcopy(self.status)

    async def coordinator_status(self) -> dict[str, Any]:
        return {"in_flight": {"WORKING": 1}, "outcomes": {"HEDGED": 3}, "venues_down": {},
                "two_sided_positions": {"A/SHFE.cu": {"long": {"today": 2, "yesterday": 0},
                                                      "short": {"today": 0, "yesterday": 0}}}}

    async def summaries(self) -> list[dict[str, Any]]:
        return [{"decision_id": f"d{i}", "outcome": "HEDGED", "done_ns": i} for i in range(5)]

    async def strategies(self) -> dict[str, Any]:
        sig = {"reason": "hold", "signal_mid": 1.0001, "center": 1.0, "entry": 0.0004, "exit": 0.0001}
        return {"copper": {"state": "ACTIVE", "host": "h0", "position": 2, "last_signal": sig},
                "gold": {"state": "ACTIVE", "host": "h0", "position": 0, "last_signal": {"reason": "hold"}}}

    async def quotes(self) -> dict[str, Any]:
        return {"SHFE.cu": {"bid": "72000", "ask": "72010", "last": None, "status": "OK", "ts_ns": 1},
                "LME.CA": {"bid": "10140", "ask": "10141", "last": None, "status": "OK", "ts_ns": 1}}

    async def venues(self) -> dict[str, Any]:
        return {"gateway-LME": {"state": "UP"}, "gateway-SHFE": {"state": "UP"}}

    async def set_trading_state(self, scope: str, key: str | None, state: str, operator: str, reason: str,
                                by: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append(("set_trading_state", scope, key, state, operator, reason))
        self.bys.append(by)
        self.status["trading_states"][f"{scope}:{key}" if key else "global"] = state
        return {"ok": True, "event_id": f"ev{len(self.calls)}", "scope": scope, "key": key, "state": state,
                "acks": {"coordinator": "ok"}, "elapsed_ms": 1.0}

    async def set_limit(self, section: str, key: str | None, field: str | None, value: Any, operator: str,
                        by: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append(("set_limit", section, key, field, value, operator))
        self.bys.append(by)
        return {"ok": True, "acks": {"coordinator": 1}}

    async def resolve(self, decision_id: str, operator: str, note: str, by: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append(("resolve", decision_id, operator, note))
        self.bys.append(by)
        esc = self.status["unresolved_escalations"].pop(decision_id, None)
        if esc is None:
            return {"ok": False, "error": f"decision {decision_id} is not an escalated pair"}
        return {"ok": True, "decision_id": decision_id, "strategy": esc["strategy"], "event_id": "ev-resolve",
                "resumed": True}

    async def accept_positions(self, operator: str, note: str, by: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append(("accept_positions", operator, note))
        self.bys.append(by)
        return {"ok": True, "resumed": ["global"], "skipped": {}}

    async def desk(self, method: str, *args: Any) -> Any:
        return raise_if_error(self.svc.call(method, *args))


def make_tokens(roles: tuple[str, ...] = ROLES) -> tuple[list[TokenEntry], dict[str, str]]:
    """One token per role, operator named after it (and a second risk officer, ``risk_officer2``)."""
    entries, toks = [], {}
    for role in list(roles) + ["risk_officer"]:
        op = role if role not in toks else f"{role}2"
        tok, kid = new_token()
        entries.append(TokenEntry(operator=op, role=role, id=kid, hash=hash_token(tok, n=2 ** 8)))
        toks[op] = tok
    return entries, toks


def api_config(**kw: Any) -> ApiConfig:
    return ApiConfig(enabled=True, **kw)


def batch_deployment(tmp):  # noqa: ANN001, ANN201
    """A copper deployment file (the catalogue's SHFE.cu vs LME.CA3M, strategy ``cu``) with more
    accounts: cn-main, cn-b, cn-c on SHFE (CNY 200m, 100m, 50m), us-main, us-b on LME."""
    import yaml

    from runtime_kit import band, copper_config
    from xmc_actors.runtime.config import load_config

    path = copper_config(tmp, "batch", "t-batch", strategies=[band("cu")])
    doc = yaml.safe_load(path.read_text())
    doc["accounts"] += [{"id": "cn-b", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 100_000_000},
                        {"id": "cn-c", "broker": "sim", "venues": ["SHFE"], "currency": "CNY", "capital": 50_000_000},
                        {"id": "us-b", "broker": "sim", "venues": ["LME"], "currency": "USD", "capital": 20_000_000}]
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


class BatchBackend(FakeBackend):
    def __init__(self, dep) -> None:  # noqa: ANN001
        super().__init__()
        self.dep = dep
        self.status["known"]["accounts"] = sorted(a.id for a in dep.accounts)
        self.status["known"]["strategies"] = ["cu"]
        self.status["occupancy"] = {a.id: {"equity": str(a.capital), "currency": a.currency, "used": "0", "ratio": 0,
                                           "level": None} for a in dep.accounts}
        self.submitted: dict[str, dict] = {}

    async def config(self):
        return self.dep.model_dump(mode="json", by_alias=True)

    async def strategies(self):
        return {"cu": {"state": "ACTIVE", "hedge_ratio": 0.2, "last_signal": {}}}

    async def quotes(self):
        return {"SHFE.cu": {"bid": "72000", "ask": "72010", "status": "OK"},
                "LME.CA3M": {"bid": "10140", "ask": "10140.5", "status": "OK"}}

    async def submit(self, intent):
        dup = intent.decision_id in self.submitted
        self.submitted.setdefault(intent.decision_id, intent)
        self.calls.append(("submit", intent.decision_id))
        return {"decision_id": intent.decision_id, "accepted": not dup, "state": "WORKING", "duplicate": dup}

    async def watch_position(self, name, policy, accounts, decision_ids, book_as, operator):
        self.calls.append(("watch_position", name, policy, accounts, list(decision_ids), book_as, operator))
        return {"name": name, "mode": policy["mode"], "decision_ids": list(decision_ids)}

    async def pair(self, did):
        i = self.submitted.get(did)
        if i is None:
            return None
        return {"state": "HEDGED", "legs": [{"leg": "A", "net_qty": i.legs[0].qty}, {"leg": "B", "net_qty": -i.legs[1].qty}]}
