"""Signed webhooks that report a batch's or a hedge's progress to a caller's system (an ERP):
the signature, the outbox with retries and a dead-letter record, and the watch that turns pair
states into events. No I/O here: the desk actor (``api/desk.py``) polls and posts.

**Signature** (:func:`sign`, :func:`verify`): header ``X-XMC-Signature: t=<unix s>,v1=<hex>``
where ``hex = HMAC-SHA256(secret, "<t>." + body)``; the receiver recomputes it over the raw body
and refuses a ``t`` too far from its clock (replays). ``X-XMC-Event-Id`` is the event's id: a
receiver that sees one twice (a retry after a lost answer) keeps the first.

**Delivery** (:class:`Outbox`): each event is posted until a 2xx answer; otherwise again after
``backoff_s`` doubled each time (at most ``max_backoff_s``), at most ``max_attempts`` times; then
it is a dead letter (kept, counted, and recorded by the shell in the ledger), never dropped
silently. Events of one webhook go out in order.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from .clock import Clock

NS_PER_S = 1_000_000_000
FINAL = ("HEDGED", "ROLLED_BACK", "ESCALATED", "REFUSED")


def sign(secret: bytes, ts_s: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{ts_s}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts_s},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, now_s: int, tolerance_s: int = 300) -> bool:
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now_s - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body).split("v1=", 1)[1], parts.get("v1", ""))


@dataclass
class Delivery:
    event_id: str
    webhook: str
    body: bytes
    attempts: int = 0
    next_ns: int = 0
    last_error: str = ""
    state: str = "PENDING"  # PENDING, SENDING, DELIVERED, DEAD

    def public(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "webhook": self.webhook, "attempts": self.attempts,
                "last_error": self.last_error, "state": self.state, "event": json.loads(self.body)}


class Outbox:
    def __init__(self, clock: Clock, *, max_attempts: int = 8, backoff_s: float = 1.0, max_backoff_s: float = 60.0) -> None:
        self.clock, self.max_attempts = clock, max_attempts
        self.backoff_ns, self.max_backoff_ns = int(backoff_s * NS_PER_S), int(max_backoff_s * NS_PER_S)
        self.items: dict[str, Delivery] = {}
        self.dead: list[Delivery] = []
        self.delivered = 0

    def add(self, event_id: str, webhook: str, event: Mapping[str, Any]) -> bool:
        """Queue an event (False: that id is already queued or delivered)."""
        if event_id in self.items:
            return False
        body = json.dumps({"event_id": event_id, **event}, sort_keys=True, default=str).encode()
        self.items[event_id] = Delivery(event_id, webhook, body, next_ns=self.clock.now_ns())
        return True

    def due(self) -> list[Delivery]:
        """What to post now: per webhook, its oldest undelivered event, if its time has come."""
        now = self.clock.now_ns()
        first: dict[str, Delivery] = {}
        for d in self.items.values():
            if d.state in ("PENDING", "SENDING") and d.webhook not in first:
                first[d.webhook] = d
        out = [d for d in first.values() if d.state == "PENDING" and d.next_ns <= now]
        for d in out:
            d.state = "SENDING"
        return out

    def result(self, event_id: str, ok: bool, error: str = "") -> Delivery:
        d = self.items[event_id]
        d.attempts += 1
        if ok:
            d.state, d.last_error = "DELIVERED", ""
            self.delivered += 1
            return d
        d.last_error = error[:300]
        if d.attempts >= self.max_attempts:
            d.state = "DEAD"
            self.dead.append(d)
            return d
        d.state = "PENDING"
        d.next_ns = self.clock.now_ns() + min(self.max_backoff_ns, self.backoff_ns * 2 ** (d.attempts - 1))
        return d

    def stats(self) -> dict[str, Any]:
        by: dict[str, int] = {}
        for d in self.items.values():
            by[d.state] = by.get(d.state, 0) + 1
        return {"by_state": by, "delivered": self.delivered, "dead": len(self.dead)}


@dataclass
class Watch:
    """One batch (or hedge) followed for its webhook: what was last reported per pair."""

    kind: str  # "batch" or "hedge"
    ref: str  # the instruction or hedge id
    webhook: str
    decision_ids: list[str]
    reported: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # did -> (state, |A|, |B|)
    completed: bool = False

    def observe(self, summaries: Mapping[str, Mapping[str, Any] | None]) -> list[tuple[str, dict[str, Any]]]:
        """Events ``(event_id, event)`` for what changed: ``fill`` (a pair's filled lots or
        state moved), ``completed`` once every pair is final (with the totals)."""
        out: list[tuple[str, dict[str, Any]]] = []
        if self.completed:
            return out
        for did in self.decision_ids:
            s = summaries.get(did)
            if not s:
                continue
            fa = fb = 0
            for lg in s.get("legs") or []:
                n = abs(int(lg.get("net_qty") if lg.get("net_qty") is not None else lg.get("filled_qty") or 0))
                if lg.get("leg") == "A":
                    fa = n
                else:
                    fb = n
            now = (str(s.get("state")), fa, fb)
            if self.reported.get(did) != now:
                self.reported[did] = now
                out.append((f"{self.ref}:{did}:{now[0]}:{fa}:{fb}",
                            {"type": "fill", "kind": self.kind, "ref": self.ref, "decision_id": did,
                             "state": now[0], "filled_a": fa, "filled_b": fb}))
        if all(self.reported.get(d, ("",))[0] in FINAL for d in self.decision_ids):
            self.completed = True
            by: dict[str, int] = {}
            for d in self.decision_ids:
                st = self.reported[d][0]
                by[st] = by.get(st, 0) + 1
            out.append((f"{self.ref}:completed", {"type": "completed", "kind": self.kind, "ref": self.ref,
                                                  "pairs": len(self.decision_ids), "by_outcome": by,
                                                  "filled_a": sum(self.reported[d][1] for d in self.decision_ids),
                                                  "filled_b": sum(self.reported[d][2] for d in self.decision_ids)}))
        return out


@dataclass
class RollFollow:
    """A hedge's calendar rolls followed for its webhook (the risk guard's roll watch sends them:
    ``RiskGuard.roll_watch_status``): one ``roll`` event per automatic roll and state (``SENT``,
    then ``ROLLED`` / ``ESCALATED`` / ``REFUSED``), and one ``roll_stopped`` when the watch stops
    rolling it (an escalated roll: an operator rolls the rest)."""

    name: str      # the watched position's name (``hedge-<hedge id>``)
    ref: str       # the instruction id the webhook's other events carry
    webhook: str
    reported: dict[str, str] = field(default_factory=dict)   # roll decision id -> state reported
    stopped: str = ""

    def observe(self, status: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        st = status.get(self.name)
        if not isinstance(st, Mapping):
            return []
        out: list[tuple[str, dict[str, Any]]] = []
        for did, state in sorted((st.get("rolls") or {}).items()):
            if self.reported.get(did) != state:
                self.reported[did] = str(state)
                out.append((f"{self.ref}:roll:{did}:{state}", {"type": "roll", "kind": "hedge", "ref": self.ref,
                                                                "decision_id": did, "state": str(state)}))
        why = str(st.get("suspended") or "")
        if why and not self.stopped:
            self.stopped = why
            out.append((f"{self.ref}:roll_stopped", {"type": "roll_stopped", "kind": "hedge", "ref": self.ref,
                                                     "reason": why}))
        return out
