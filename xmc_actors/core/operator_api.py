"""The operator API's rules, without Ray or a web framework: who a token names, what each role
may do, rate limits, replayed request ids, second-operator confirmation (二次确认), alert
acknowledgements and the checks of names against the running deployment.

The Serve app (``xmc_actors/api``) is a thin shell around these: it turns an :class:`ApiError`
into its HTTP answer (``status`` and ``{"error": reason, "field": field}``) and calls the same
RiskGuard methods ``xmc halt|reduce|resume|limits`` call.

Tokens look like ``xmc.<id>.<secret>``: the id finds the entry, the whole token is checked
against its scrypt hash (``hashlib.scrypt``; salt per token), so a stolen tokens file does not
give a token. A token's text never goes into an error, a log line, an event or a status: every
message here names the operator or the key id, never the token.

Everything is deterministic given the injected clock.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Callable, Iterable, Mapping

from ..model.api import ConfirmConfig, TokenEntry
from ..model.events import Event, EventKind
from .clock import Clock
from .sink import EventMaker, EventSink, MemorySink

NS_PER_S = 1_000_000_000
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
TOKEN_PREFIX = "xmc"


class ApiError(Exception):
    """A refusal with its HTTP status, the field it concerns and why (never a token's text)."""

    def __init__(self, status: int, reason: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.reason, "field": self.field, **self.extra}


# ---------------------------------------------------------------------------------- roles
class Role(str, Enum):
    VIEWER = "viewer"
    TRADER = "trader"
    RISK_OFFICER = "risk_officer"
    ADMIN = "admin"


class Action(str, Enum):
    READ = "read"            # every GET: status, strategies, positions, occupancy, pairs, alerts, venues
    HALT = "halt"
    REDUCE = "reduce"
    RESUME = "resume"
    LIMITS = "limits"        # change a risk limit
    ACKNOWLEDGE = "acknowledge"  # acknowledge an alert
    CONFIRM = "confirm"      # be the second operator of a change that needs one
    ORDER = "order"          # send a batch of pairs across accounts (POST /v1/batches)
    # the CLI's other acting commands (authorised the same way while an operator API runs)
    RESOLVE = "resolve"      # xmc resolve: an escalated pair's residual was dealt with (and its strategy resumed)
    ACCEPT_POSITIONS = "accept_positions"  # xmc accept-positions: the venues' positions stand (start of day)
    STAGE = "stage"          # xmc promote / demote: a strategy's rollout stage
    STOP = "stop"            # xmc stop: stop the deployment


# The permission matrix (docs/operations.md shows it): a desk's traders may stop and restart
# trading, send batch orders and acknowledge alerts; limits, confirming another's change,
# resolving an escalation, accepting the venues' positions and moving a strategy's stage are the
# risk officer's; stopping the deployment is the admin's, who may do everything. A viewer only reads.
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.READ}),
    Role.TRADER: frozenset({Action.READ, Action.HALT, Action.REDUCE, Action.RESUME, Action.ACKNOWLEDGE, Action.ORDER}),
    Role.RISK_OFFICER: frozenset(set(Action) - {Action.STOP}),
    Role.ADMIN: frozenset(set(Action)),
}


@dataclass(frozen=True)
class Principal:
    operator: str
    role: Role
    key_id: str  # which token (its id, never its secret); "" for the anonymous local viewer

    def may(self, action: Action) -> bool:
        return action in PERMISSIONS[self.role]

    def public(self) -> dict[str, Any]:
        return {"operator": self.operator, "role": self.role.value,
                "may": sorted(a.value for a in PERMISSIONS[self.role])}


ANONYMOUS = Principal("local", Role.VIEWER, "")


def authorise(p: Principal, action: Action) -> None:
    """403 naming the role and the action when ``p`` may not do ``action``."""
    if not p.may(action):
        allowed = sorted(r.value for r, acts in PERMISSIONS.items() if action in acts)
        raise ApiError(403, f"operator {p.operator!r} (role {p.role.value}) may not {action.value}: "
                            f"that needs the role {' or '.join(allowed)}", "role")


# ------------------------------------------------------------------ the CLI's acting commands
#: each acting ``xmc`` command and the action of the permission matrix it needs while an
#: operator API runs (ops/operator_auth.py asks the deployment's ``api-desk`` for the token's operator)
CLI_COMMANDS: dict[str, Action] = {
    "halt": Action.HALT, "reduce": Action.REDUCE, "resume": Action.RESUME, "limits set": Action.LIMITS,
    "resolve": Action.RESOLVE, "accept-positions": Action.ACCEPT_POSITIONS, "promote": Action.STAGE,
    "demote": Action.STAGE, "stop": Action.STOP, "confirm": Action.CONFIRM,
    "roll": Action.ORDER,  # xmc roll sends orders (two calendar spreads), as a batch does
}


def authorise_command(p: Principal, command: str, operator: str | None) -> str:
    """The operator to record for ``xmc <command>`` run with a token naming ``p``: the token's
    operator. 403 when ``p``'s role may not do the command's action, or when ``--operator`` names
    someone else (a token acts only for the operator it names)."""
    action = CLI_COMMANDS.get(command)
    if action is None:
        raise ValueError(f"xmc {command}: not an acting command ({', '.join(sorted(CLI_COMMANDS))})")
    given = (operator or "").strip()
    if given and given != p.operator:
        raise ApiError(403, f"--operator {given!r} does not match the token's operator {p.operator!r}: a token acts "
                            f"only for the operator it names (leave --operator out, or use {given}'s token)", "operator")
    authorise(p, action)
    return p.operator


# --------------------------------------------------------------------------------- tokens
def hash_token(token: str, salt: bytes | None = None, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$N$r$p$salt$hash`` (hex) of ``token``."""
    salt = secrets.token_bytes(16) if salt is None else salt
    dk = hashlib.scrypt(token.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${dk.hex()}"


def verify_hash(token: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, want = stored.split("$")
        dk = hashlib.scrypt(token.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(dk.hex(), want)


def new_token() -> tuple[str, str]:
    """A fresh random token and its key id: ``(xmc.<id>.<secret>, id)``."""
    kid = secrets.token_hex(6)
    return f"{TOKEN_PREFIX}.{kid}.{secrets.token_urlsafe(32)}", kid


def token_key_id(token: str) -> str | None:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


class TokenBook:
    """The configured tokens: key id -> (hash, principal). Verified tokens are remembered by
    their SHA-256 (in memory, never the token) so scrypt runs once per token per process."""

    def __init__(self, entries: Iterable[TokenEntry], env: Mapping[str, str] | None = None) -> None:
        self.by_id: dict[str, tuple[str, Principal]] = {}
        self._verified: dict[bytes, Principal] = {}
        for i, e in enumerate(entries):
            where = f"api.tokens[{i}] ({e.operator})"
            if e.token is not None:
                if env is None or e.token.env not in env:
                    raise ValueError(f"{where}: environment variable {e.token.env} (a token) is not set")
                tok = env[e.token.env]
                kid = token_key_id(tok)
                if kid is None:
                    raise ValueError(f"{where}: the token in {e.token.env} is not of the form xmc.<id>.<secret> "
                                     "(`xmc api-token new` makes one)")
                h = hash_token(tok, n=2 ** 10)  # hashed here from the environment: a cheap cost is enough in memory
            elif e.id and e.hash:
                kid, h = e.id, e.hash
            else:
                raise ValueError(f"{where}: give either id and hash (`xmc api-token new`) or token: {{env: NAME}}")
            if kid in self.by_id:
                raise ValueError(f"{where}: key id {kid} is used twice")
            self.by_id[kid] = (h, Principal(e.operator, Role(e.role), kid))

    def __len__(self) -> int:
        return len(self.by_id)

    def authenticate(self, token: str | None) -> Principal:
        """The token's principal; 401 with the reason otherwise (the token is never repeated)."""
        if not token:
            raise ApiError(401, "no token: send `Authorization: Bearer <token>`", "authorization")
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(digest)
        if hit is not None:
            return hit
        kid = token_key_id(token)
        if kid is None:
            raise ApiError(401, "malformed token: expected xmc.<id>.<secret>", "authorization")
        entry = self.by_id.get(kid)
        if entry is None or not verify_hash(token, entry[0]):
            raise ApiError(401, f"unknown or revoked token (key id {kid})", "authorization")
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[digest] = entry[1]
        return entry[1]


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError(401, "the authorization header must be `Bearer <token>`", "authorization")
    return value.strip()


# ----------------------------------------------------------------------------- rate limit
class RateLimiter:
    """A token bucket per key (an operator's key id): ``rate_per_s`` refill, ``burst`` deep."""

    def __init__(self, rate_per_s: float, burst: int, clock: Clock) -> None:
        self.rate, self.burst, self.clock = rate_per_s, burst, clock
        self.buckets: dict[str, tuple[float, int]] = {}
        self.refused = 0

    def take(self, key: str) -> None:
        now = self.clock.now_ns()
        level, last = self.buckets.get(key, (float(self.burst), now))
        level = min(float(self.burst), level + (now - last) / NS_PER_S * self.rate)
        if level < 1.0:
            self.buckets[key] = (level, now)
            self.refused += 1
            wait = (1.0 - level) / self.rate
            raise ApiError(429, f"too many requests: at most {self.rate:g}/s (burst {self.burst}) per token; "
                                f"retry in {wait:.2f} s", "authorization", retry_after_s=round(wait, 3))
        self.buckets[key] = (level - 1.0, now)


# ---------------------------------------------------------------------- request ids (replay)
def fingerprint(action: str, params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps([action, params], sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass
class _Req:
    operator: str
    fp: str
    ts_ns: int
    result: dict[str, Any] | None = None  # None: still running


class RequestLog:
    """Each ``request_id`` runs once: a repeat of the same request gets the first answer again
    (``replayed: true``); the same id with another request, or while the first still runs, is
    refused (409). Ids are kept ``ttl_s``."""

    def __init__(self, clock: Clock, ttl_s: float = 86_400.0, max_ids: int = 100_000) -> None:
        self.clock, self.ttl_ns, self.max_ids = clock, int(ttl_s * NS_PER_S), max_ids
        self.reqs: OrderedDict[str, _Req] = OrderedDict()
        self.replayed = 0

    def _expire(self, now: int) -> None:
        while self.reqs:
            rid, r = next(iter(self.reqs.items()))
            if now - r.ts_ns < self.ttl_ns and len(self.reqs) <= self.max_ids:
                break
            self.reqs.popitem(last=False)

    def begin(self, request_id: str, operator: str, fp: str) -> dict[str, Any] | None:
        """None: go ahead (the id is now taken); else the first answer, to send again."""
        now = self.clock.now_ns()
        self._expire(now)
        r = self.reqs.get(request_id)
        if r is None:
            self.reqs[request_id] = _Req(operator, fp, now)
            return None
        if r.fp != fp or r.operator != operator:
            raise ApiError(409, f"request_id {request_id!r} was used for another request"
                                f"{'' if r.operator == operator else ' by another operator'}: nothing done", "request_id")
        if r.result is None:
            raise ApiError(409, f"request_id {request_id!r} is still running: ask again for its answer", "request_id")
        self.replayed += 1
        return {**r.result, "replayed": True}

    def finish(self, request_id: str, result: dict[str, Any]) -> None:
        r = self.reqs.get(request_id)
        if r is not None:
            r.result = result

    def abort(self, request_id: str) -> None:
        """The request was refused before anything changed: its id may be used again."""
        r = self.reqs.get(request_id)
        if r is not None and r.result is None:
            del self.reqs[request_id]


# ------------------------------------------------------------------- second-operator confirm
@dataclass
class Pending:
    confirmation_id: str
    action: str
    params: dict[str, Any]
    proposer: str
    why: str  # why a second operator is needed
    opened_ns: int
    expires_ns: int
    confirmed_by: str = ""
    state: str = "PENDING"  # PENDING, CONFIRMED, EXPIRED
    proposer_role: str = ""  # the proposer's role and channel: the change runs under them (core/attribution.py)
    proposer_via: str = "api"

    def public(self) -> dict[str, Any]:
        return {"confirmation_id": self.confirmation_id, "action": self.action, "params": self.params,
                "proposer": self.proposer, "proposer_role": self.proposer_role, "proposer_via": self.proposer_via,
                "why": self.why, "opened_ns": self.opened_ns,
                "expires_ns": self.expires_ns, "confirmed_by": self.confirmed_by, "state": self.state}


def _num(v: Any) -> Decimal | None:
    if v is None or (isinstance(v, str) and v.strip().lower() in ("", "none", "null")):
        return None
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def current_limit(limits: Mapping[str, Any], section: str, key: str | None, field_name: str | None) -> Any:
    """The value in force of one limit in the risk guard's ``status()["limits"]`` (a RiskConfig dump)."""
    node: Any = limits.get(section)
    if key is not None:
        node = (node or {}).get(key) if isinstance(node, Mapping) else None
    if field_name is not None:
        node = node.get(field_name) if isinstance(node, Mapping) else None
    return node


def _open_reds(status: Mapping[str, Any], scope: Any, key: Any) -> list[Mapping[str, Any]]:
    """The red alerts open on ``scope``/``key`` or on everything (all of them for a global scope)."""
    return [a for a in status.get("open_alerts") or [] if a.get("level") == "red"
            and (scope == "global" or a.get("scope") == "global" or (a.get("scope") == scope and a.get("key") == key))]


def _reds_text(reds: list[Mapping[str, Any]]) -> str:
    return ", ".join(f"{a.get('monitor')} {a.get('scope')}={a.get('key')}" for a in reds[:5])


#: the changes a second operator may have to confirm (what a confirmation runs): the API's and
#: ``xmc``'s trading states and limits, and ``xmc resolve`` / ``xmc accept-positions``, which
#: resume trading too (an escalated strategy; the deployment held by the start-of-day gate)
CONFIRMABLE = ("halt", "reduce", "resume", "limits", "resolve", "accept_positions")


def needs_confirmation(cfg: ConfirmConfig, action: str, params: Mapping[str, Any], status: Mapping[str, Any]) -> str | None:
    """Why this change needs a second operator (None: it does not). ``status``: the risk guard's.

    * ``limits``: raised by more than ``cfg.limit_raise_pct`` (or cleared);
    * with ``cfg.resume_after_red``: ``resume`` while a red alert is open on the scope (or a
      global one); ``resolve`` of an escalated pair (``params["decision_id"]`` among the guard's
      unresolved escalations: an escalation is a red alert, ``pair_escalation``, that halted its
      strategy, and resolving it resumes the strategy); ``accept_positions`` (it resumes
      everything the start-of-day gate held) while any red alert is open, as a global resume."""
    if action == "limits":
        old = _num(current_limit(status.get("limits") or {}, params["section"], params.get("key"), params.get("field")))
        new = _num(params.get("value"))
        if old is None or old <= 0:
            return None  # no limit before (or a zero one): nothing is raised by a percentage
        if new is None:
            return f"the limit {params['section']}.{params.get('key') or ''}.{params.get('field') or ''} is cleared (was {old})"
        pct = float((new - old) / old * 100)
        if pct > cfg.limit_raise_pct:
            return f"the limit is raised by {pct:.1f}% ({old} -> {new}), more than {cfg.limit_raise_pct:g}%"
        return None
    if not cfg.resume_after_red:
        return None
    if action == "resume":
        reds = _open_reds(status, params.get("scope"), params.get("key"))
        if reds:
            return f"resume while {len(reds)} red alert(s) are open: " + _reds_text(reds)
    elif action == "resolve":
        did = str(params.get("decision_id") or "").strip()
        esc = (status.get("unresolved_escalations") or {}).get(did)
        if esc is not None:  # not escalated (or resolved already): the risk guard refuses it, nothing to confirm
            strategy = esc.get("strategy") if isinstance(esc, Mapping) else None
            return (f"resolve {did}: it clears a red escalation (pair_escalation) that halted strategy {strategy}, "
                    "which resumes once none of its escalations is left")
    elif action == "accept_positions":
        reds = _open_reds(status, "global", None)
        if reds:
            return (f"accept the start-of-day positions (trading resumes) while {len(reds)} red alert(s) are open: "
                    + _reds_text(reds))
    return None


class ConfirmationBook:
    """Changes waiting for a second operator: another operator who may confirm, within the window."""

    def __init__(self, clock: Clock, window_s: float, new_id: Callable[[], str]) -> None:
        self.clock, self.window_ns, self.new_id = clock, int(window_s * NS_PER_S), new_id
        self.items: dict[str, Pending] = {}

    def propose(self, action: str, params: dict[str, Any], proposer: Principal, why: str, via: str = "api") -> Pending:
        if action not in CONFIRMABLE:
            raise ApiError(422, f"action {action!r}: not a change a confirmation can run ({', '.join(CONFIRMABLE)})",
                           "action")
        now = self.clock.now_ns()
        p = Pending(self.new_id(), action, dict(params), proposer.operator, why, now, now + self.window_ns,
                    proposer_role=proposer.role.value, proposer_via=via)
        self.items[p.confirmation_id] = p
        return p

    def _tick(self) -> None:
        now = self.clock.now_ns()
        for p in self.items.values():
            if p.state == "PENDING" and now > p.expires_ns:
                p.state = "EXPIRED"

    def pending(self) -> list[Pending]:
        self._tick()
        return [p for p in self.items.values() if p.state == "PENDING"]

    def confirm(self, confirmation_id: str, who: Principal) -> Pending:
        self._tick()
        p = self.items.get(confirmation_id)
        if p is None:
            raise ApiError(404, f"no confirmation {confirmation_id!r}", "confirmation_id")
        if p.state == "EXPIRED":
            raise ApiError(410, f"confirmation {confirmation_id} expired (window {self.window_ns / NS_PER_S:g} s): "
                                "propose the change again", "confirmation_id")
        if p.state != "PENDING":
            raise ApiError(409, f"confirmation {confirmation_id} was already confirmed by {p.confirmed_by}",
                           "confirmation_id")
        if who.operator == p.proposer:
            raise ApiError(403, f"{who.operator} proposed this change: a second, different operator must confirm it",
                           "operator")
        authorise(who, Action.CONFIRM)
        p.state, p.confirmed_by = "CONFIRMED", who.operator
        return p


# ----------------------------------------------------------------------------- name checks
def check_known(status: Mapping[str, Any], kind: str, name: str, field_name: str) -> None:
    """404 naming the field when ``name`` is not one of the deployment's ``kind`` (the same
    list ``xmc`` checks: the risk guard's ``status()["known"]``)."""
    known = (status.get("known") or {}).get(kind)
    if known is None:
        raise ApiError(503, f"the risk guard does not list its {kind}: cannot check {name!r}; nothing changed", field_name)
    if name not in known:
        near = [k for k in known if k.lower() == name.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ApiError(404, f"unknown {field_name} {name!r}{hint}: nothing changed; the deployment's {kind}: "
                            f"{', '.join(known) or 'none'}", field_name, known=list(known))


# ----------------------------------------------------------------------------- the desk
@dataclass
class Ack:
    alert_id: str
    operator: str
    note: str
    ts_ns: int
    event_id: str = ""  # the OPERATOR event that records it


@dataclass
class OperatorDesk:
    """The API's shared state (one per deployment, in the ``api-desk`` actor): request ids,
    confirmations, acknowledgements; and the OPERATOR events that record them, written to
    ``sink`` (its own :class:`MemorySink` unless given)."""

    clock: Clock
    confirm_cfg: ConfirmConfig = field(default_factory=ConfirmConfig)
    ttl_s: float = 86_400.0
    actor: str = "api"
    sink: EventSink = field(default_factory=MemorySink)

    def __post_init__(self) -> None:
        self.maker = EventMaker(self.clock, self.actor)
        self.requests = RequestLog(self.clock, self.ttl_s)
        self.confirmations = ConfirmationBook(self.clock, self.confirm_cfg.window_s,
                                              lambda: "cf-" + self.maker.new_id()[-12:])
        self.acks: dict[str, Ack] = {}
        self.counters: dict[str, int] = {}

    def count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    def record(self, action: str, p: Principal, via: str = "api", **payload: Any) -> Event:
        """Write an OPERATOR event of the desk's own (a proposal, a confirmation, an
        acknowledgement, a batch) naming the operator, their role and the channel (``api``,
        ``console`` or ``cli``); returns it (the receipt)."""
        ev = self.maker.make(EventKind.OPERATOR, reason=action, action=action, operator=p.operator,
                             role=p.role.value, via=via, **payload)
        self.sink.emit(ev)
        return ev

    def record_refusal(self, err: ApiError, path: str, who: Principal | None, via: str = "api") -> None:
        """Count a refusal and write its BAD_INPUT event, with the channel it came through
        (``api``, ``console``, ``cli``)."""
        self.count(f"refused_{err.status}")
        self.sink.emit(self.maker.make(EventKind.BAD_INPUT, reason=err.reason[:500], field=err.field or "",
                                       status=err.status, path=path, operator=who.operator if who else "", via=via))

    def record_dead_letter(self, webhook: str, event_id: str, attempts: int, error: str, event: Any) -> None:
        """A webhook delivery given up: counted, and a LIFECYCLE event says which and why."""
        self.count("webhook_dead")
        self.sink.emit(self.maker.make(EventKind.LIFECYCLE, reason="webhook dead letter", webhook=webhook,
                                       event_id=event_id, attempts=attempts, error=error, event=event, via="api"))

    def acknowledge(self, alert_id: str, who: Principal, note: str, open_alerts: Iterable[Mapping[str, Any]],
                    via: str = "api") -> Ack:
        authorise(who, Action.ACKNOWLEDGE)
        alert = next((a for a in open_alerts if a.get("alert_id") == alert_id), None)
        if alert is None:
            raise ApiError(404, f"no open alert {alert_id!r}", "alert_id")
        if alert_id in self.acks:
            a = self.acks[alert_id]
            raise ApiError(409, f"alert {alert_id} was already acknowledged by {a.operator}", "alert_id")
        ev = self.record("acknowledge_alert", who, via, alert_id=alert_id, note=note, level=alert.get("level"),
                          monitor=alert.get("monitor"), scope=alert.get("scope"), key=alert.get("key"))
        ack = self.acks[alert_id] = Ack(alert_id, who.operator, note, self.clock.now_ns(), ev.event_id)
        return ack

    def acks_public(self) -> dict[str, dict[str, Any]]:
        return {k: {"operator": a.operator, "note": a.note, "ts_ns": a.ts_ns} for k, a in self.acks.items()}
