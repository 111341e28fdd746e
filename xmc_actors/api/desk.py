"""The API's shared state: :class:`DeskService` (plain; what a test's local backend uses) and
:class:`ApiDesk`, the named actor ``api-desk`` that holds it for every Serve replica of one
deployment (request ids, confirmations waiting for a second operator, acknowledgements), and
writes the OPERATOR / BAD_INPUT events that record them.

Refusals (:class:`~xmc_actors.core.operator_api.ApiError`) cross the actor boundary as plain
data (``{"__api_error__": ...}``) and are raised again on the caller's side.
"""
from __future__ import annotations

import logging
from typing import Any

import os
import time

from ..core.clock import Clock, SystemClock
from ..core.operator_api import ApiError, OperatorDesk, Principal, Role, TokenBook
from ..core.sink import EventSink, NullSink
from ..core.webhook import Outbox, RollFollow, Watch, sign
from ..model.api import ConfirmConfig, WebhookConfig

DESK_NAME = "api-desk"
log = logging.getLogger(__name__)


def principal_wire(p: Principal) -> tuple[str, str, str]:
    return (p.operator, p.role.value, p.key_id)


def principal_from(w: tuple[str, str, str] | list[str]) -> Principal:
    return Principal(w[0], Role(w[1]), w[2])


DESK_VIAS = ("api", "console", "cli")


def check_via(via: object) -> str:
    """The channel a desk call came through (recorded with the operator); 422 naming ``via``."""
    if via not in DESK_VIAS:
        raise ApiError(422, f"via: {via!r} is not one of {', '.join(DESK_VIAS)}", "via")
    return str(via)


class DeskService:
    def __init__(self, confirm: ConfirmConfig, ttl_s: float, sink: EventSink | None = None,
                 clock: Clock | None = None, webhooks: tuple[WebhookConfig, ...] = (),
                 env: dict[str, str] | None = None, tokens: TokenBook | None = None) -> None:
        # the desk's core writes its OPERATOR and BAD_INPUT events to the deployment's ledger
        self.core = OperatorDesk(clock or SystemClock(), confirm, ttl_s)
        self.sink = sink
        # the API's tokens, for the CLI's acting commands (ops/operator_auth.py): the same book
        # the replicas load, so a token means the same operator and role on both paths
        self.tokens = tokens
        self.batches: dict[str, dict[str, Any]] = {}
        self.webhooks = {w.name: w for w in webhooks}
        env = os.environ if env is None else env
        # the HMAC keys, read from the environment once; never returned, logged or recorded
        self._secrets = {w.name: env.get(w.secret.env, "").encode() for w in webhooks}
        self.outboxes = {w.name: Outbox(self.core.clock, max_attempts=w.max_attempts, backoff_s=w.backoff_s,
                                        max_backoff_s=w.max_backoff_s) for w in webhooks}
        self.watches: dict[str, Watch] = {}
        self.roll_follows: dict[str, RollFollow] = {}  # watched position name -> its rolls reported

    @property
    def sink(self) -> EventSink | None:
        return self._sink

    @sink.setter
    def sink(self, sink: EventSink | None) -> None:
        """Where the desk's records go (None: nowhere); its core writes there."""
        self._sink = sink
        self.core.sink = sink if sink is not None else NullSink()

    # every method takes and returns plain data (it travels through Ray)
    def begin(self, request_id: str, operator: str, fp: str) -> dict[str, Any] | None:
        return self.core.requests.begin(request_id, operator, fp)

    def finish(self, request_id: str, result: dict[str, Any]) -> None:
        self.core.requests.finish(request_id, result)

    def abort(self, request_id: str) -> None:
        self.core.requests.abort(request_id)

    def propose(self, action: str, params: dict[str, Any], who: Any, why: str, via: str = "api") -> dict[str, Any]:
        p = principal_from(who)
        pend = self.core.confirmations.propose(action, params, p, why, check_via(via))
        self.core.count("proposed")
        self.core.record("propose", p, via, confirmation_id=pend.confirmation_id, change=action,
                         params=params, why=why, expires_ns=pend.expires_ns)
        return pend.public()

    def confirm(self, confirmation_id: str, who: Any, via: str = "api") -> dict[str, Any]:
        p = principal_from(who)
        check_via(via)
        pend = self.core.confirmations.confirm(confirmation_id, p)
        self.core.count("confirmed")
        self.core.record("confirm", p, via, confirmation_id=confirmation_id, change=pend.action,
                         params=pend.params, proposer=pend.proposer, why=pend.why)
        return pend.public()

    def authenticate(self, token: str) -> tuple[str, str, str]:
        """The token's (operator, role, key id) for ``xmc`` (401 as the API answers otherwise)."""
        if self.tokens is None:
            raise ApiError(503, "this desk has no token book: the CLI's authorisation cannot be checked", "token")
        return principal_wire(self.tokens.authenticate(token))

    def confirm_config(self) -> dict[str, Any]:
        return self.core.confirm_cfg.model_dump(mode="json")

    def pending(self) -> list[dict[str, Any]]:
        return [p.public() for p in self.core.confirmations.pending()]

    def acknowledge(self, alert_id: str, who: Any, note: str, open_alerts: list[dict[str, Any]],
                    via: str = "api") -> dict[str, Any]:
        ack = self.core.acknowledge(alert_id, principal_from(who), note, open_alerts, check_via(via))
        return {"ok": True, "alert_id": alert_id, "operator": ack.operator, "event_id": ack.event_id}

    def batch_put(self, plan: dict[str, Any], who: Any, submitted: list[dict[str, Any]], via: str = "api") -> None:
        p, via = principal_from(who), check_via(via)
        self.batches[plan["instruction_id"]] = plan
        self.core.count("batches")
        self.core.record("batch", p, via, instruction_id=plan["instruction_id"], plan=plan, submitted=submitted)

    def batch_get(self, instruction_id: str) -> dict[str, Any]:
        plan = self.batches.get(instruction_id)
        if plan is None:
            raise ApiError(404, f"no batch {instruction_id!r} (this desk's memory: since the API started)", "instruction_id")
        return plan

    # -- webhooks: progress of a batch or a hedge, signed, retried, dead letters kept -------------
    def check_webhook(self, name: str | None) -> None:
        if name is None:
            return
        if name not in self.webhooks:
            raise ApiError(404, f"unknown webhook {name!r}; the deployment's webhooks (api.webhooks): "
                                f"{', '.join(self.webhooks) or 'none'}", "webhook")
        if not self._secrets.get(name):
            raise ApiError(503, f"webhook {name!r}: its secret ({self.webhooks[name].secret.env}) is not set in the "
                                "API's environment", "webhook")

    def watch(self, kind: str, ref: str, webhook: str, decision_ids: list[str]) -> None:
        self.check_webhook(webhook)
        if ref not in self.watches:
            self.watches[ref] = Watch(kind, ref, webhook, list(decision_ids))

    def watch_rolls(self, name: str, ref: str, webhook: str) -> None:
        """Report the automatic rolls of the watched position ``name`` to ``webhook``."""
        self.check_webhook(webhook)
        self.roll_follows.setdefault(name, RollFollow(name, ref, webhook))

    def followed_rolls(self) -> list[str]:
        return sorted(self.roll_follows)

    def observe_rolls(self, status: dict[str, Any]) -> int:
        """The risk guard's ``roll_watch_status``: new roll events queued for their webhooks."""
        return self._queue(self.roll_follows.values(), status)

    def watched_ids(self) -> list[str]:
        return sorted({d for w in self.watches.values() if not w.completed for d in w.decision_ids})

    def observe(self, summaries: dict[str, Any]) -> int:
        """The watched pairs' summaries: new fill and completion events queued for their webhooks."""
        return self._queue(self.watches.values(), summaries)

    def _queue(self, followers: Any, state: dict[str, Any]) -> int:
        """What each of ``followers`` (a :class:`Watch` or :class:`RollFollow`) makes of
        ``state``, queued on its webhook's outbox; how many events were new."""
        n = 0
        for f in followers:
            for eid, ev in f.observe(state):
                n += self.outboxes[f.webhook].add(eid, f.webhook, {**ev, "ts_ns": self.core.clock.now_ns()})
        return n

    def due(self) -> list[tuple[str, str, str, bytes, dict[str, str], float]]:
        """(webhook, event id, url, body, headers, timeout) of each post to make now."""
        out = []
        for name, box in self.outboxes.items():
            w = self.webhooks[name]
            for d in box.due():
                sig = sign(self._secrets[name], self.core.clock.now_ns() // 1_000_000_000, d.body)
                out.append((name, d.event_id, w.url, d.body, {"Content-Type": "application/json",
                                                              "X-XMC-Signature": sig, "X-XMC-Event-Id": d.event_id},
                            w.timeout_s))
        return out

    def result(self, webhook: str, event_id: str, ok: bool, error: str = "") -> str:
        d = self.outboxes[webhook].result(event_id, ok, error)
        if d.state == "DEAD":
            self.core.record_dead_letter(webhook, event_id, d.attempts, d.last_error, d.public()["event"])
        elif d.state == "DELIVERED":
            self.core.count("webhook_delivered")
        return d.state

    def webhooks_status(self) -> dict[str, Any]:
        return {n: {"url": self.webhooks[n].url, **box.stats(),
                    "dead_letters": [d.public() for d in box.dead[-50:]]} for n, box in self.outboxes.items()}

    def acks(self) -> dict[str, dict[str, Any]]:
        return self.core.acks_public()

    def refused(self, status: int, reason: str, field: str | None, path: str, who: Any | None,
                via: str = "api") -> None:
        err = ApiError(status, reason, field)
        self.core.record_refusal(err, path, principal_from(who) if who else None, via if via in DESK_VIAS else "api")

    def stats(self) -> dict[str, Any]:
        return {"counters": dict(self.core.counters), "replayed": self.core.requests.replayed,
                "request_ids": len(self.core.requests.reqs), "pending": len(self.core.confirmations.pending()),
                "acknowledged": len(self.core.acks)}

    def call(self, method: str, *args: Any) -> Any:
        """``method(*args)``, a refusal returned as data (what the actor sends back)."""
        try:
            return getattr(self, method)(*args)
        except ApiError as e:
            return {"__api_error__": {"status": e.status, "reason": e.reason, "field": e.field, "extra": e.extra}}


def raise_if_error(res: Any) -> Any:
    if isinstance(res, dict) and "__api_error__" in res:
        e = res["__api_error__"]
        raise ApiError(e["status"], e["reason"], e["field"], **(e.get("extra") or {}))
    return res


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[bool, str]:
    """POST; (True, "") on a 2xx answer, else (False, why)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return (200 <= r.status < 300), f"HTTP {r.status}"
    except urllib.error.HTTPError as e:
        return False, f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        return False, f"{type(e).__name__} after {time.monotonic() - t0:.1f} s"


def _actor_class() -> Any:
    import ray

    @ray.remote(num_cpus=0, max_restarts=-1)
    class ApiDesk:
        """One per deployment (``api-desk``): the desk every API replica shares."""

        def __init__(self, confirm: dict[str, Any], ttl_s: float, ledger: dict[str, Any] | None, namespace: str,
                     webhooks: list[dict[str, Any]] | None = None,
                     entries: list[dict[str, Any]] | None = None) -> None:
            from ..model.api import TokenEntry

            sink = None
            if ledger is not None:
                from ..ledger.client import LedgerClient
                from ..model.config import LedgerConfig

                try:
                    sink = LedgerClient.named(LedgerConfig.model_validate(ledger), namespace, actor="api")
                except ValueError:  # no ledger shards (a test's deployment without one): nothing recorded
                    sink = None
            tokens = TokenBook([TokenEntry.model_validate(e) for e in entries or ()], os.environ)
            self.svc = DeskService(ConfirmConfig.model_validate(confirm), ttl_s, sink,
                                   webhooks=tuple(WebhookConfig.model_validate(w) for w in webhooks or ()),
                                   tokens=tokens)
            self.namespace = namespace
            self._pump: Any = None

        async def call(self, method: str, *args: Any) -> Any:
            out = self.svc.call(method, *args)
            if method in ("watch", "watch_rolls") and self._pump is None:
                import asyncio

                self._pump = asyncio.get_running_loop().create_task(self._pump_loop())
            return out

        async def _pump_loop(self) -> None:
            """Follow the watched pairs at the coordinator and post what changed to the webhooks."""
            import asyncio

            from ..model.names import COORDINATOR_NAME

            from ..model.names import RISK_GUARD_NAME

            busy: set[Any] = set()
            rounds = 0
            while True:
                try:
                    ids = self.svc.watched_ids()
                    if ids:
                        coord = ray.get_actor(COORDINATOR_NAME, namespace=self.namespace)
                        got = await asyncio.gather(*(coord.pairs.remote(d) for d in ids), return_exceptions=True)
                        self.svc.observe({d: g for d, g in zip(ids, got) if isinstance(g, dict)})
                    rounds += 1
                    if rounds % 10 == 0 and self.svc.followed_rolls():  # rolls: every 2 s is plenty
                        guard = ray.get_actor(RISK_GUARD_NAME, namespace=self.namespace)
                        self.svc.observe_rolls(await guard.roll_watch_status.remote())
                    for name, eid, url, body, headers, timeout in self.svc.due():
                        t = asyncio.get_running_loop().create_task(self._post(name, eid, url, body, headers, timeout))
                        busy.add(t)
                        t.add_done_callback(busy.discard)
                except Exception as e:  # noqa: BLE001 - the pump goes on; the next round tries again
                    log.warning("webhook pump: %s", type(e).__name__)
                await asyncio.sleep(0.2)

        async def _post(self, name: str, eid: str, url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
            import asyncio

            ok, err = await asyncio.to_thread(post, url, body, headers, timeout)
            self.svc.result(name, eid, ok, err)

        def flush_sink(self) -> None:
            if self.svc.sink is not None and hasattr(self.svc.sink, "flush"):
                self.svc.sink.flush(10.0)

        def ready(self) -> bool:
            return True

    return ApiDesk


def get_or_create_desk(namespace: str, confirm: ConfirmConfig, ttl_s: float, ledger: dict[str, Any] | None,
                       detached: bool = False, webhooks: tuple[WebhookConfig, ...] = (),
                       entries: list[Any] | tuple[Any, ...] = ()) -> Any:
    """The desk's handle: keep it (a named actor whose handles are all gone is destroyed). The
    webhooks' secrets and the tokens' environment references reach it in its environment (only
    the variables they name); ``entries`` are the API's token entries (TokenEntry)."""
    env = {w.secret.env: os.environ[w.secret.env] for w in webhooks if w.secret.env in os.environ}
    env.update({e.token.env: os.environ[e.token.env] for e in entries
                if e.token is not None and e.token.env in os.environ})
    opts: dict[str, Any] = {"lifetime": "detached"} if detached else {}
    if env:
        opts["runtime_env"] = {"env_vars": env}
    return _actor_class().options(name=DESK_NAME, namespace=namespace, get_if_exists=True, **opts).remote(
        confirm.model_dump(mode="json"), ttl_s, ledger, namespace, [w.model_dump(mode="json") for w in webhooks],
        [e.model_dump(mode="json") for e in entries])
