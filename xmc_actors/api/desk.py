"""The API's shared state: :class:`DeskService` (plain; what a test's local backend uses) and
:class:`ApiDesk`, the named actor ``api-desk`` that holds it for every Serve replica of one
deployment (request ids, confirmations waiting for a second operator, acknowledgements), and
writes the OPERATOR / BAD_INPUT events that record them.

Refusals (:class:`~xmc_actors.core.operator_api.ApiError`) cross the actor boundary as plain
data (``{"__api_error__": ...}``) and are raised again on the caller's side.
"""
from __future__ import annotations

from typing import Any

from ..core.clock import Clock, SystemClock
from ..core.operator_api import ApiError, OperatorDesk, Principal, Role
from ..core.sink import EventSink
from ..model.api import ConfirmConfig

DESK_NAME = "api-desk"


def principal_wire(p: Principal) -> tuple[str, str, str]:
    return (p.operator, p.role.value, p.key_id)


def principal_from(w: tuple[str, str, str] | list[str]) -> Principal:
    return Principal(w[0], Role(w[1]), w[2])


class DeskService:
    def __init__(self, confirm: ConfirmConfig, ttl_s: float, sink: EventSink | None = None,
                 clock: Clock | None = None) -> None:
        self.core = OperatorDesk(clock or SystemClock(), confirm, ttl_s)
        self.sink = sink
        self.batches: dict[str, dict[str, Any]] = {}

    def _emit(self, ev: Any) -> None:
        if self.sink is not None:
            self.sink.emit(ev)

    # every method takes and returns plain data (it travels through Ray)
    def begin(self, request_id: str, operator: str, fp: str) -> dict[str, Any] | None:
        return self.core.requests.begin(request_id, operator, fp)

    def finish(self, request_id: str, result: dict[str, Any]) -> None:
        self.core.requests.finish(request_id, result)

    def abort(self, request_id: str) -> None:
        self.core.requests.abort(request_id)

    def propose(self, action: str, params: dict[str, Any], who: Any, why: str) -> dict[str, Any]:
        p = principal_from(who)
        pend = self.core.confirmations.propose(action, params, p, why)
        self.core.count("proposed")
        self._emit(self.core.operator_event("propose", p, confirmation_id=pend.confirmation_id, change=action,
                                            params=params, why=why, expires_ns=pend.expires_ns))
        return pend.public()

    def confirm(self, confirmation_id: str, who: Any) -> dict[str, Any]:
        p = principal_from(who)
        pend = self.core.confirmations.confirm(confirmation_id, p)
        self.core.count("confirmed")
        self._emit(self.core.operator_event("confirm", p, confirmation_id=confirmation_id, change=pend.action,
                                            params=pend.params, proposer=pend.proposer, why=pend.why))
        return pend.public()

    def pending(self) -> list[dict[str, Any]]:
        return [p.public() for p in self.core.confirmations.pending()]

    def acknowledge(self, alert_id: str, who: Any, note: str, open_alerts: list[dict[str, Any]]) -> dict[str, Any]:
        ack, ev = self.core.acknowledge(alert_id, principal_from(who), note, open_alerts)
        self._emit(ev)
        return {"ok": True, "alert_id": alert_id, "operator": ack.operator, "event_id": ev.event_id}

    def batch_put(self, plan: dict[str, Any], who: Any, submitted: list[dict[str, Any]]) -> None:
        p = principal_from(who)
        self.batches[plan["instruction_id"]] = plan
        self.core.count("batches")
        self._emit(self.core.operator_event("batch", p, instruction_id=plan["instruction_id"], plan=plan,
                                            submitted=submitted))

    def batch_get(self, instruction_id: str) -> dict[str, Any]:
        plan = self.batches.get(instruction_id)
        if plan is None:
            raise ApiError(404, f"no batch {instruction_id!r} (this desk's memory: since the API started)", "instruction_id")
        return plan

    def acks(self) -> dict[str, dict[str, Any]]:
        return self.core.acks_public()

    def refused(self, status: int, reason: str, field: str | None, path: str, who: Any | None) -> None:
        err = ApiError(status, reason, field)
        self._emit(self.core.refused_event(err, path, principal_from(who) if who else None))

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


def _actor_class() -> Any:
    import ray

    @ray.remote(num_cpus=0, max_restarts=-1)
    class ApiDesk:
        """One per deployment (``api-desk``): the desk every API replica shares."""

        def __init__(self, confirm: dict[str, Any], ttl_s: float, ledger: dict[str, Any] | None, namespace: str) -> None:
            sink = None
            if ledger is not None:
                from ..ledger.client import LedgerClient
                from ..model.config import LedgerConfig

                try:
                    sink = LedgerClient.named(LedgerConfig.model_validate(ledger), namespace, actor="api")
                except ValueError:  # no ledger shards (a test's deployment without one): nothing recorded
                    sink = None
            self.svc = DeskService(ConfirmConfig.model_validate(confirm), ttl_s, sink)

        def call(self, method: str, *args: Any) -> Any:
            return self.svc.call(method, *args)

        def flush_sink(self) -> None:
            if self.svc.sink is not None and hasattr(self.svc.sink, "flush"):
                self.svc.sink.flush(10.0)

        def ready(self) -> bool:
            return True

    return ApiDesk


def get_or_create_desk(namespace: str, confirm: ConfirmConfig, ttl_s: float, ledger: dict[str, Any] | None,
                       detached: bool = False) -> Any:
    """The desk's handle: keep it (a named actor whose handles are all gone is destroyed)."""
    return _actor_class().options(name=DESK_NAME, namespace=namespace, get_if_exists=True,
                                  **({"lifetime": "detached"} if detached else {})).remote(
        confirm.model_dump(mode="json"), ttl_s, ledger, namespace)
