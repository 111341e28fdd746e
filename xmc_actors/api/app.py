"""The operator API as a FastAPI application: :func:`build_app`. The Serve deployment
(``api/serve.py``) builds one per replica around a :class:`~xmc_actors.api.backend.RayBackend`;
a unit test builds one around a fake backend and drives it with FastAPI's TestClient.

Every rule (tokens, roles, rate limit, request ids, second-operator confirmation, name checks)
is in ``core/operator_api.py``; this module maps HTTP onto it:

* ``Authorization: Bearer xmc.<id>.<secret>`` -> the operator and role (401 without one);
* the permission matrix -> 403 with the role and the action;
* a body over ``api.max_body_bytes`` -> 413; malformed JSON -> 400 (field ``body``); a wrong
  type or a missing or unknown field -> 422 naming it; an unknown strategy, venue, instrument
  or account -> 404 naming the field and listing the valid names; a used ``request_id`` -> the
  first answer again, or 409; too many requests for one token -> 429 with ``Retry-After``;
* every refusal is answered ``{"error": why, "field": field}``, counted and recorded
  (BAD_INPUT in the ledger); nothing is sent to the risk guard;
* every change is recorded with the operator, the token's role and the channel (``via``:
  ``console`` when the request says ``X-XMC-Via: console``, as the console's page does, else
  ``api``; core/attribution.py).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from ..core.attribution import UNKNOWN, api_by
from ..core.clock import Clock, SystemClock
from ..core.operator_api import (ANONYMOUS, Action, ApiError, Principal, RateLimiter, TokenBook, authorise, bearer,
                                 check_known, fingerprint, needs_confirmation)
from ..model.api import ApiConfig
from .backend import Backend, BackendUnavailable
from .desk import principal_wire
from .stream import StreamHub
from .models import (AckRequest, AckResult, BatchAccount, BatchRequest, HedgeRequest, ConfirmRequest, ErrorBody, LimitChange, LimitResult, PendingResult,
                     StateChange, StateResult, Whoami)

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
STATES = {"halt": "HALTED", "reduce": "REDUCING", "resume": "ACTIVE"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (400, 401, 403, 404, 409, 413, 422, 429, 503)}


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before the app reads
    it (by its Content-Length, or counted as it arrives when there is none)."""

    def __init__(self, app: Any, limit: int, on_refuse: Callable[[str], None]) -> None:
        self.app, self.limit, self.on_refuse = app, limit, on_refuse

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = False
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                too_big = True
        body, more = b"", True
        if not too_big and scope.get("method") in ("POST", "PUT", "PATCH"):
            while more:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return
                body += msg.get("body", b"")
                more = msg.get("more_body", False)
                if len(body) > self.limit:
                    too_big = True
                    break
        if too_big:
            self.on_refuse(scope.get("path", ""))
            err = ApiError(413, f"request body over {self.limit} bytes (api.max_body_bytes)", "body")
            resp = JSONResponse(err.body(), status_code=413)
            return await resp(scope, receive, send)
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def via_of(request: Request) -> str:
    """The channel a change came through: ``console`` (the console's page says so with the
    ``X-XMC-Via`` header) or ``api``. A label for the record, not a permission: the token decides
    what the caller may do."""
    return "console" if (request.headers.get("x-xmc-via") or "").strip().lower() == "console" else "api"


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def build_app(cfg: ApiConfig, tokens: TokenBook, backend: Backend, *, clock: Clock | None = None,
              title: str = "xmc operator API") -> FastAPI:
    clock = clock or SystemClock()
    limiter = RateLimiter(cfg.rate_per_s, cfg.burst, clock)
    open_reads = len(tokens) == 0 and cfg.host in LOOPBACK
    counters: dict[str, int] = {}
    bg: set[asyncio.Task[Any]] = set()

    def count(what: str) -> None:
        counters[what] = counters.get(what, 0) + 1

    def record_refusal(status: int, reason: str, field: str | None, path: str, who: Principal | None,
                       via: str = "api") -> None:
        count(f"refused_{status}")

        async def send() -> None:
            try:
                await backend.desk("refused", status, reason, field, path, principal_wire(who) if who else None, via)
            except Exception as e:  # noqa: BLE001 - recording a refusal must never fail the answer
                log.warning("refusal not recorded: %s", type(e).__name__)

        try:
            t = asyncio.get_running_loop().create_task(send())
            bg.add(t)
            t.add_done_callback(bg.discard)
        except RuntimeError:
            pass

    app = FastAPI(title=title, version="1", openapi_url="/v1/openapi.json", docs_url="/v1/docs", redoc_url=None,
                  description="Read the running deployment and act on it (halt, reduce, resume, limits, "
                              "acknowledge) through the same risk guard methods as the xmc commands. "
                              "Authorization: Bearer <token> (xmc api-token new).")
    app.state.counters = counters
    app.state.limiter = limiter
    app.state.bg = bg
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes,
                       on_refuse=lambda path: record_refusal(413, "body too large", "body", path, None))

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        record_refusal(e.status, e.reason, e.field, request.url.path, getattr(request.state, "principal", None),
                       via_of(request))
        headers = {"Retry-After": str(max(1, int(e.extra.get("retry_after_s", 1) + 0.999)))} if e.status == 429 else None
        if e.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        first = errs[0] if errs else {"loc": ("body",), "msg": "invalid", "type": ""}
        if first.get("type") == "json_invalid":
            status, field = 400, "body"
            reason = f"malformed JSON: {first.get('msg')} ({(first.get('ctx') or {}).get('error', '')})"
        else:
            status, field = 422, _field_of(first.get("loc", ()))
            reason = f"{field}: {first.get('msg')}"
        record_refusal(status, reason, field, request.url.path, getattr(request.state, "principal", None),
                       via_of(request))
        detail = [{"field": _field_of(x.get("loc", ())), "error": x.get("msg"), "type": x.get("type")} for x in errs]
        return JSONResponse({"error": reason, "field": field, "errors": detail}, status_code=status)

    @app.exception_handler(BackendUnavailable)
    async def _unavailable(request: Request, e: BackendUnavailable) -> JSONResponse:
        count("unavailable")
        return JSONResponse({"error": str(e), "field": None}, status_code=503)

    # -- who is calling ---------------------------------------------------------------------
    def identify(token: str | None, client: str) -> Principal:
        if token is None and open_reads:
            p = ANONYMOUS
            limiter.take(f"anon:{client}")
            return p
        p = tokens.authenticate(token)
        limiter.take(p.key_id)
        return p

    async def principal(request: Request) -> Principal:
        p = identify(bearer(request.headers.get("authorization")), request.client.host if request.client else "")
        request.state.principal = p
        return p

    def reader(p: Principal = Depends(principal)) -> Principal:
        authorise(p, Action.READ)
        return p

    def may(action: Action) -> Callable[..., Principal]:
        def dep(p: Principal = Depends(principal)) -> Principal:
            authorise(p, action)
            return p
        return dep

    # -- the change path: request id, second operator, the risk guard -------------------------
    async def run_change(p: Principal, action: str, params: dict[str, Any], request_id: str | None,
                         do: Callable[[], Awaitable[dict[str, Any]]], status: dict[str, Any],
                         via: str = "api") -> dict[str, Any]:
        rid = f"{p.operator}:{request_id}" if request_id else None
        if rid:
            first = await backend.desk("begin", rid, p.operator, fingerprint(action, params))
            if first is not None:
                count("replayed")
                return first
        try:
            why = needs_confirmation(cfg.confirm, action, params, status)
            if why:
                pend = await backend.desk("propose", action, params, principal_wire(p), why, via)
                out = PendingResult(confirmation_id=pend["confirmation_id"], action=action, why=why,
                                    proposer=p.operator, expires_ns=pend["expires_ns"]).model_dump()
            else:
                out = await do()
        except BaseException:
            if rid:
                await backend.desk("abort", rid)
            raise
        if rid:
            await backend.desk("finish", rid, out)
        count(action)
        return out

    async def do_state(action: str, scope: str, key: str | None, reason: str, operator: str,
                       by: dict[str, Any]) -> dict[str, Any]:
        res = await backend.set_trading_state(scope, key, STATES[action], operator, reason, by)
        if "error" in res and "event_id" not in res:
            raise ApiError(409, res["error"], "state")
        return StateResult(ok=bool(res.get("ok")), scope=scope, key=key, state=STATES[action], operator=operator,
                           event_id=res.get("event_id"), acks=res.get("acks") or {}).model_dump()

    async def do_limit(section: str, key: str | None, field: str | None, value: Any, operator: str,
                       by: dict[str, Any]) -> dict[str, Any]:
        res = await backend.set_limit(section, key, field, value, operator, by)
        if not res.get("ok"):
            raise ApiError(422, res.get("error", "refused"), "value")
        return LimitResult(ok=True, section=section, key=key, field=field, value=value, operator=operator,
                           acks=res.get("acks") or {}).model_dump()

    def state_route(action: str) -> None:
        act = Action(action)

        async def change(body: StateChange, request: Request, p: Principal = Depends(may(act))) -> Any:
            via = via_of(request)
            scope, key = body.scope()
            st = await backend.risk_status()
            if key is not None:
                check_known(st, "strategies" if scope == "strategy" else "venues", key, scope)
            reason = f"[api] {body.reason}".strip()
            params = {"scope": scope, "key": key, "reason": reason}
            out = await run_change(p, action, params, body.request_id,
                                   lambda: do_state(action, scope, key, reason, p.operator, api_by(p, via)), st, via)
            return JSONResponse(out, status_code=202 if out.get("pending") else 200)

        app.post(f"/v1/{action}", response_model=StateResult | PendingResult, responses=ERRORS,
                 summary=f"{action} trading (a strategy, a venue or everything)", name=action)(change)

    for a in STATES:
        state_route(a)

    @app.post("/v1/limits", response_model=LimitResult | PendingResult, responses=ERRORS, summary="change one risk limit")
    async def set_limit(body: LimitChange, request: Request, p: Principal = Depends(may(Action.LIMITS))) -> Any:
        via = via_of(request)
        section, key, field, kind = body.target()
        st = await backend.risk_status()
        if key is not None and kind is not None:
            check_known(st, kind, key, {"instruments": "instrument", "strategies": "strategy", "accounts": "account",
                                        "venues": "venue"}[kind])
        value = body.value if body.value is not None else "none"
        params = {"section": section, "key": key, "field": field, "value": str(value)}
        out = await run_change(p, "limits", params, body.request_id,
                               lambda: do_limit(section, key, field, str(value), p.operator, api_by(p, via)), st, via)
        return JSONResponse(out, status_code=202 if out.get("pending") else 200)

    @app.post("/v1/alerts/{alert_id}/acknowledge", response_model=AckResult, responses=ERRORS,
              summary="acknowledge an open alert (recorded with the operator)")
    async def acknowledge(alert_id: str, body: AckRequest, request: Request,
                          p: Principal = Depends(may(Action.ACKNOWLEDGE))) -> Any:
        st = await backend.risk_status()
        params = {"alert_id": alert_id, "note": body.note}
        via = via_of(request)

        async def do() -> dict[str, Any]:
            return await backend.desk("acknowledge", alert_id, principal_wire(p), body.note, st.get("open_alerts") or [],
                                      via)

        return await run_change(p, "acknowledge", params, body.request_id, do, {})

    @app.post("/v1/confirmations/{confirmation_id}", response_model=StateResult | LimitResult, responses=ERRORS,
              summary="confirm another operator's change (二次确认); it runs now, recorded with both names")
    async def confirm(confirmation_id: str, request: Request, body: ConfirmRequest | None = None,
                      p: Principal = Depends(may(Action.CONFIRM))) -> Any:
        pend = await backend.desk("confirm", confirmation_id, principal_wire(p), via_of(request))
        prm, who = pend["params"], pend["proposer"]
        # the change is the proposer's: recorded under their name, role and channel
        by = {"role": pend.get("proposer_role") or UNKNOWN, "via": pend.get("proposer_via") or UNKNOWN}
        note = f" (confirmed by {p.operator}, {confirmation_id})"
        if pend["action"] in STATES:
            out = await do_state(pend["action"], prm["scope"], prm["key"], (prm.get("reason") or "") + note, who, by)
        elif pend["action"] == "limits":
            out = await do_limit(prm["section"], prm["key"], prm["field"], prm["value"], who, by)
        elif pend["action"] == "resolve":
            res = await backend.resolve(prm["decision_id"], who, prm["note"] + note, by)
            if not res.get("ok"):
                raise ApiError(409, f"resolve {prm['decision_id']}: {res.get('error', 'refused')}", "decision_id")
            return JSONResponse({**res, "operator": who, "confirmed_by": p.operator})
        elif pend["action"] == "accept_positions":
            try:
                res = await backend.accept_positions(who, prm["note"] + note, by)
            except ValueError as e:
                raise ApiError(409, f"accept_positions: {e}", "confirmation_id") from None
            return JSONResponse({**res, "operator": who, "confirmed_by": p.operator})
        else:  # the desk proposes only the changes listed in core.operator_api.CONFIRMABLE
            raise ApiError(422, f"confirmation {confirmation_id}: no way to run {pend['action']!r}", "confirmation_id")
        out["confirmed_by"] = p.operator
        return out

    @app.get("/v1/confirmations", responses=ERRORS, summary="changes waiting for a second operator")
    async def confirmations(p: Principal = Depends(reader)) -> Any:
        return await backend.desk("pending")

    # -- batch orders across accounts (item 4) -------------------------------------------------
    @app.post("/v1/batches", responses=ERRORS, summary="one instruction split into one pair per account and executed")
    async def batch(body: BatchRequest, request: Request, p: Principal = Depends(may(Action.ORDER))) -> Any:
        return await run_batch(body, p, "batch", {}, via_of(request))

    @app.post("/v1/hedges", responses=ERRORS,
              summary="an ERP's hedging need (commodity, quantity in physical units, direction, account) executed as a pair")
    async def hedge(body: HedgeRequest, request: Request, p: Principal = Depends(may(Action.ORDER))) -> Any:
        from ..model.config import DeploymentConfig

        dep = DeploymentConfig.model_validate(await backend.config())
        fits = [s for s in dep.strategies if s.legs[0].instrument == body.commodity
                and (body.strategy is None or s.name == body.strategy)]
        if not fits:
            known = sorted({s.legs[0].instrument for s in dep.strategies})
            raise ApiError(404, f"commodity {body.commodity!r}: no configured pair trades it as its leg A"
                                f"{' under strategy ' + repr(body.strategy) if body.strategy else ''}; these do: "
                                f"{', '.join(known) or 'none'}", "commodity", known=known)
        if len(fits) > 1:
            raise ApiError(422, f"commodity {body.commodity!r}: pairs {', '.join(s.name for s in fits)} trade it: "
                                "name one as strategy", "strategy")
        s = fits[0]
        b = BatchRequest(instruction_id=f"hedge-{body.hedge_id}", strategy=s.name, side=body.direction,
                         quantity=body.quantity, unit=body.unit,
                         accounts=[BatchAccount(a=body.account, b=body.account_b or s.legs[1].account)],
                         allocation="equal", webhook=body.webhook)
        extra = {"hedge_id": body.hedge_id, "commodity": body.commodity,
                 "period": body.period.model_dump() if body.period else None, "roll": body.roll}
        roll = None
        if body.roll in ("auto", "alert"):  # the risk guard's roll watch follows the position's months
            ia, ib = dep.instrument(s.legs[0].instrument), dep.instrument(s.legs[1].instrument)
            roll = {"name": f"hedge-{body.hedge_id}", "policy": {"mode": body.roll},
                    "accounts": {ia.venue: body.account, ib.venue: body.account_b or s.legs[1].account}}
        return await run_batch(b, p, "hedge", extra, via_of(request), roll)

    @app.get("/v1/webhooks", responses=ERRORS, summary="each webhook: deliveries by state, dead letters")
    async def webhooks(p: Principal = Depends(reader)) -> Any:
        return await backend.desk("webhooks_status")

    async def watch_roll(roll: dict[str, Any], answer: dict[str, Any], webhook: str | None, operator: str) -> Any:
        """The risk guard watches the position a hedge's pairs made for its roll (idempotent:
        a hedge sent again watches it again, as a restarted guard needs), and the desk reports
        its rolls to the hedge's webhook."""
        from ..core.batch import BATCH_STRATEGY

        dids = [x["decision_id"] for x in answer.get("parts") or () if x.get("decision_id")]
        try:
            res = await backend.watch_position(roll["name"], roll["policy"], roll["accounts"], dids, BATCH_STRATEGY,
                                               operator)
        except BackendUnavailable as e:
            return {"error": str(e)}
        if webhook and "error" not in res:
            await backend.desk("watch_rolls", roll["name"], answer.get("instruction_id"), webhook)
        return res

    async def run_batch(body: BatchRequest, p: Principal, kind: str, extra: dict[str, Any], via: str = "api",
                        roll: dict[str, Any] | None = None) -> Any:
        from ..core.batch import AccountPair, plan_batch
        from ..model.config import DeploymentConfig
        from ..model.market import Side

        st, raw = await asyncio.gather(backend.risk_status(), backend.config())
        dep = DeploymentConfig.model_validate(raw)
        names = [s.name for s in dep.strategies]
        if body.strategy not in names:
            check_known({"known": {"strategies": names}}, "strategies", body.strategy, "strategy")
        scfg = next(s for s in dep.strategies if s.name == body.strategy)
        inst_a, inst_b = dep.instrument(scfg.legs[0].instrument), dep.instrument(scfg.legs[1].instrument)
        for i, acc in enumerate(body.accounts):
            for leg, name, inst in (("a", acc.a, inst_a), ("b", acc.b, inst_b)):
                check_known(st, "accounts", name, f"accounts.{i}.{leg}")
                venues = next((a.venues for a in dep.accounts if a.id == name), ())
                if inst.venue not in venues:
                    raise ApiError(422, f"accounts.{i}.{leg}: account {name!r} does not trade on {inst.venue} "
                                        f"({inst.id}); it trades on {', '.join(venues)}", f"accounts.{i}.{leg}")
        await backend.desk("check_webhook", body.webhook)
        params = {**body.model_dump(mode="json"), **extra}
        rid = f"batch:{body.instruction_id}"
        first = await backend.desk("begin", rid, p.operator, fingerprint("batch", params))
        if first is not None:
            count("replayed")
            if roll is not None and first.get("submitted"):  # a restarted risk guard is given the watch again
                first = {**first, "roll_watch": await watch_roll(roll, first, body.webhook, p.operator)}
            return first
        try:
            ss, qs = await asyncio.gather(backend.strategies(), backend.quotes())
            ratio = Decimal(str((ss.get(body.strategy) or {}).get("hedge_ratio") or scfg.hedge_ratio))
            plan = plan_batch(instruction_id=body.instruction_id, strategy=scfg, inst_a=inst_a, inst_b=inst_b,
                              side_a=Side.BUY if body.side == "buy" else Side.SELL, quantity=body.quantity,
                              unit=body.unit, pairs=[AccountPair(a.a, a.b) for a in body.accounts],
                              rule=body.allocation, weights=body.weights, occupancy=st.get("occupancy") or {},
                              hedge_ratio=ratio, quotes=qs, now_ns=clock.now_ns())
        except BaseException:
            await backend.desk("abort", rid)
            raise
        submitted = []
        for intent in plan.intents:  # past this point the instruction id is spent: pairs may be out
            try:
                r = await backend.submit(intent)
            except BackendUnavailable as e:
                r = {"decision_id": intent.decision_id, "accepted": False, "state": "UNKNOWN", "reason": str(e)}
            submitted.append({k: r.get(k) for k in ("decision_id", "accepted", "state", "reason", "duplicate")})
        public = {**plan.public(), "kind": kind, **extra, "webhook": body.webhook}
        await backend.desk("batch_put", public, principal_wire(p), submitted, via)
        if body.webhook:
            await backend.desk("watch", kind, body.instruction_id, body.webhook,
                               [x["decision_id"] for x in plan.parts if x.get("decision_id")])
        out = {**public, "operator": p.operator, "submitted": submitted,
               "report": f"/v1/batches/{body.instruction_id}", "replayed": False}
        if roll is not None:  # after the pairs: their decision ids make the position watched
            out["roll_watch"] = await watch_roll(roll, out, body.webhook, p.operator)
        await backend.desk("finish", rid, out)
        count("batch")
        return out

    @app.get("/v1/batches/{instruction_id}", responses=ERRORS, summary="a batch per account and in total")
    async def batch_report_route(instruction_id: str, p: Principal = Depends(reader)) -> Any:
        from ..core.batch import batch_report

        plan = await backend.desk("batch_get", instruction_id)
        dids = [x["decision_id"] for x in plan["parts"] if x.get("decision_id")]
        got = await asyncio.gather(*(backend.pair(d) for d in dids), return_exceptions=True)
        return batch_report(plan, {d: (None if isinstance(g, BaseException) else g) for d, g in zip(dids, got)})

    # -- reads ----------------------------------------------------------------------------------
    @app.get("/v1/whoami", response_model=Whoami, responses=ERRORS)
    async def whoami(p: Principal = Depends(principal)) -> Any:
        return p.public()

    @app.get("/v1/status", responses=ERRORS, summary="the deployment: its actors, trading states, occupancy, counts")
    async def status(p: Principal = Depends(reader)) -> Any:
        info, st, co = await asyncio.gather(backend.describe(), backend.risk_status(), backend.coordinator_status())
        return {"deployment": info, "trading_states": st.get("trading_states") or {"global": "ACTIVE"},
                "throttled": st.get("throttled") or [], "overall": st.get("overall"),
                "open_alerts": len(st.get("open_alerts") or []), "rebuilding": st.get("rebuilding", False),
                "pairs": {"in_flight": co.get("in_flight") or {}, "outcomes": co.get("outcomes") or {}},
                "unresolved_escalations": sorted(st.get("unresolved_escalations") or {}),
                "api": {"counters": dict(counters), "rate_limited": limiter.refused}}

    @app.get("/v1/strategies", responses=ERRORS, summary="each strategy: state, position, last signal, counters")
    async def strategies(p: Principal = Depends(reader)) -> Any:
        ss, st = await asyncio.gather(backend.strategies(), backend.risk_status())
        states = st.get("trading_states") or {}
        return {n: {**s, "trading_state": states.get(f"strategy:{n}", "ACTIVE")} for n, s in sorted(ss.items())}

    @app.get("/v1/positions", responses=ERRORS, summary="positions per account (net) and two-sided where the venue holds them so")
    async def positions(p: Principal = Depends(reader)) -> Any:
        st, co = await asyncio.gather(backend.risk_status(), backend.coordinator_status())
        return {"accounts": (st.get("positions") or {}).get("accounts") or {},
                "strategies": (st.get("positions") or {}).get("strategies") or {},
                "two_sided": co.get("two_sided_positions") or {}}

    @app.get("/v1/positions/{account}", responses=ERRORS, summary="one account's positions")
    async def account_positions(account: str, p: Principal = Depends(reader)) -> Any:
        st, co = await asyncio.gather(backend.risk_status(), backend.coordinator_status())
        check_known(st, "accounts", account, "account")
        two = {k: v for k, v in (co.get("two_sided_positions") or {}).items() if k.split("/", 1)[0] == account}
        return {"account": account, "net": ((st.get("positions") or {}).get("accounts") or {}).get(account, {}),
                "two_sided": two, "occupancy": (st.get("occupancy") or {}).get(account)}

    @app.get("/v1/occupancy", responses=ERRORS, summary="capital occupancy per account and overall")
    async def occupancy(p: Principal = Depends(reader)) -> Any:
        st = await backend.risk_status()
        return {"accounts": st.get("occupancy") or {}, "overall": st.get("overall")}

    @app.get("/v1/pairs/open", responses=ERRORS, summary="pairs in flight by state, and escalations nobody resolved yet")
    async def open_pairs(p: Principal = Depends(reader)) -> Any:
        st, co = await asyncio.gather(backend.risk_status(), backend.coordinator_status())
        return {"in_flight": co.get("in_flight") or {}, "unresolved_escalations": st.get("unresolved_escalations") or {}}

    @app.get("/v1/outcomes", responses=ERRORS, summary="the latest finished pairs, newest first")
    async def outcomes(limit: int = 50, p: Principal = Depends(reader)) -> Any:
        if not 1 <= limit <= 1000:
            raise ApiError(422, "limit: between 1 and 1000", "limit")
        ss = await backend.summaries()
        ss = sorted(ss, key=lambda s: s.get("done_ns") or s.get("ts_ns") or 0, reverse=True)[:limit]
        return {"count": len(ss), "pairs": ss}

    @app.get("/v1/alerts", responses=ERRORS, summary="open alerts, by level, with who acknowledged them")
    async def alerts(p: Principal = Depends(reader)) -> Any:
        st, acks = await asyncio.gather(backend.risk_status(), backend.desk("acks"))
        rank = {"red": 0, "orange": 1, "yellow": 2, "info": 3}
        out = sorted(st.get("open_alerts") or [], key=lambda a: (rank.get(a.get("level"), 9), -(a.get("ts_ns") or 0)))
        return {"open": [{**a, "acknowledged": acks.get(a.get("alert_id"))} for a in out]}

    @app.get("/v1/venues", responses=ERRORS, summary="each gateway: state, session, clock, counters")
    async def venues(p: Principal = Depends(reader)) -> Any:
        vs, co = await asyncio.gather(backend.venues(), backend.coordinator_status())
        return {"gateways": vs, "venues_down": co.get("venues_down") or {}}

    @app.get("/v1/limits", responses=ERRORS, summary="the limits in force")
    async def limits(p: Principal = Depends(reader)) -> Any:
        return (await backend.risk_status()).get("limits") or {}

    # -- the console ------------------------------------------------------------------------------
    if STATIC.is_dir():
        app.mount("/console/static", StaticFiles(directory=STATIC), name="static")

        @app.get("/", include_in_schema=False)
        async def root() -> Any:
            return RedirectResponse("/console/")

        @app.get("/console/", include_in_schema=False)
        async def console() -> Any:
            return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    # -- live streams (item 2): conflated, at most api.stream_hz messages a second per client ------
    hub = StreamHub(backend, cfg.stream_hz, clock=None if isinstance(clock, SystemClock) else clock)
    app.state.hub = hub

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        """Authenticate by the ``Authorization`` header (topics and hz as query parameters) or by
        a first message ``{"token", "topics", "hz"}``; a refusal closes with 4000 + the HTTP
        status (4401, 4403, 4422, 4429) and the reason."""
        await ws.accept()
        who: Principal | None = None
        try:
            header = ws.headers.get("authorization")
            token = bearer(header) if header else None
            topics: Any = ws.query_params.get("topics")
            topics = topics.split(",") if topics else None
            hz: Any = ws.query_params.get("hz")
            if token is None:
                try:
                    hello = json.loads(await asyncio.wait_for(ws.receive_text(), 10.0))
                except (asyncio.TimeoutError, ValueError, KeyError, TypeError):
                    raise ApiError(422, "first message: expected JSON {\"token\": ..., \"topics\": [...], \"hz\": N} "
                                        "within 10 s", "body") from None
                if not isinstance(hello, dict):
                    raise ApiError(422, "first message: expected a JSON object", "body")
                token, topics, hz = hello.get("token"), hello.get("topics", topics), hello.get("hz", hz)
                if token is not None and not isinstance(token, str):
                    raise ApiError(422, "token: expected a string", "token")
                if topics is not None and (not isinstance(topics, list) or not all(isinstance(t, str) for t in topics)):
                    raise ApiError(422, "topics: expected a list of names", "topics")
            who = identify(token, ws.client.host if ws.client else "")
            authorise(who, Action.READ)
            try:
                hz = None if hz is None else float(hz)
            except (TypeError, ValueError):
                raise ApiError(422, f"hz: expected a number, got {hz!r}", "hz") from None
            try:
                await hub.serve(ws, topics, hz, who.operator)
            except ValueError as e:
                raise ApiError(422, str(e), str(e).split(":", 1)[0]) from None
        except ApiError as e:
            record_refusal(e.status, e.reason, e.field, "/v1/stream", who)
            try:
                await ws.send_text(json.dumps(e.body()))
                await ws.close(code=4000 + e.status, reason=e.reason[:120])
            except Exception:  # noqa: BLE001 - it went away
                pass

    @app.get("/v1/streams", responses=ERRORS, summary="the live streams of this replica: clients, sent, conflated, dropped")
    async def streams(p: Principal = Depends(reader)) -> Any:
        return hub.stats()

    app.state.identify = identify
    app.state.started = time.time()
    return app
