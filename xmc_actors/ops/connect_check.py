"""The connection check behind ``xmc connect-test`` (联调): one gateway, in this process.

:func:`plan` checks the user's choices against the deployment (the gateway, the instrument, the
account) and refuses a wrong one with the field and the reason (:class:`PlanError`);
:func:`run` then builds that gateway's adapter and core as a gateway actor does
(:func:`xmc_actors.actors.gateway.build_core`, without Ray, without any other actor) and goes
through seven steps, each timed:

1. ``connect``: the adapter is built and reports itself connected (a FIX session: logged on; a
   CTP session: logged in, settlement confirmed);
2. ``quote``: one quote of the instrument, from the gateway's feed through the adapter, or from
   the adapter's own market data (a FIX session's MarketDataRequest);
3. ``place``: a LIMIT DAY BUY of the instrument's minimum quantity, far below the bid but inside
   the venue's price limits, so that it rests and cannot fill;
4. ``query``: the venue's status of it (live);
5. ``cancel``: cancelled;
6. ``query-canceled``: the venue's status again: CANCELED;
7. ``close``: the session closed (a FIX Logout), a loopback exchange started for it stopped.

Only the adapter interface the gateway core uses is touched (``connected``, ``status`` when the
adapter has one, ``close``), so any adapter works (sim, fix, ctp). Nothing is written to the
ledger unless asked (:func:`record`). An adapter's ``params.state_dir`` (the simulated venue's
journal, a CTP session's order journal) is a temporary directory for the test, so what a
deployment and ``xmc audit reconcile`` read is not replaced.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from ..model.config import DeploymentConfig, GatewayConfig
from ..model.market import Instrument
from ..model.orders import (
    ExecReportKind, Offset, OrderRequest, OrderStatus, OrderType, TimeInForce, client_order_id,
)

#: the steps, in order; a failure of step N exits with ``FIRST_FAILED_CODE + N``
STEPS = ("connect", "quote", "place", "query", "cancel", "query-canceled", "close")
FIRST_FAILED_CODE = 10
#: how far below the bid the test order goes on a venue without price limits
NO_LIMIT_DISCOUNT = Decimal("0.20")
LEG = "T"


class PlanError(ValueError):
    """A choice the deployment does not allow: the message names the field and the reason."""


@dataclass
class Plan:
    """What the check will do, settled before anything connects."""

    deployment: DeploymentConfig
    gateway: GatewayConfig
    instrument: Instrument
    account: str
    qty: int
    decision_id: str
    client_order_id: str
    price: Decimal | None = None      # given by the user (--price); else worked out from the quote
    timeout_s: float = 10.0
    keep_order: bool = False


@dataclass
class Step:
    n: int
    name: str
    outcome: str = "skipped"          # ok | failed | skipped
    elapsed_ms: float = 0.0
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.n, "name": self.name, "outcome": self.outcome,
                "elapsed_ms": round(self.elapsed_ms, 3), "detail": self.detail, **self.extra}


# ----------------------------------------------------------------------------------- planning
def gateway_names(dep: DeploymentConfig) -> str:
    return ", ".join(f"{g.actor_name} (venue {g.venue}, adapter {g.adapter})" for g in dep.gateways) or "none"


def find(dep: DeploymentConfig, name: str) -> GatewayConfig:
    """The gateway named ``name`` (its actor name, its ``name`` or its venue code, as elsewhere)."""
    for g in dep.gateways:
        if name in (g.actor_name, g.name, g.venue):
            return g
    raise PlanError(f"--gateway {name!r}: no such gateway in deployment {dep.name!r}; "
                    f"its gateways: {gateway_names(dep)}")


def carried_accounts(dep: DeploymentConfig, g: GatewayConfig) -> list[str]:
    """The accounts whose orders gateway ``g`` carries: its ``accounts``, else every account
    trading on its venue that no other gateway of the venue lists."""
    if g.accounts:
        return list(g.accounts)
    others = {a for o in dep.gateways if o is not g and o.venue == g.venue for a in o.accounts}
    return [a.id for a in dep.accounts if g.venue in a.venues and a.id not in others]


def feed_instruments(g: GatewayConfig) -> list[str]:
    """Instruments the gateway's feed names in its parameters (synthetic, replay), in order."""
    p = g.feed.params or {}
    out = [str(i) for i in p.get("instruments") or []]
    out += [str(f.get("instrument")) for f in p.get("files") or [] if isinstance(f, dict) and f.get("instrument")]
    return list(dict.fromkeys(out))


def _instrument(dep: DeploymentConfig, g: GatewayConfig, wanted: str | None) -> Instrument:
    mine = [i for i in dep.instruments if i.venue == g.venue]
    if not mine:
        raise PlanError(f"--gateway {g.actor_name}: venue {g.venue} lists no instrument in the deployment")
    listed = ", ".join(i.id for i in mine)
    if wanted is None:
        fed = [i for i in feed_instruments(g) if any(m.id == i for m in mine)]
        # the first instrument the gateway's feed quotes, else the venue's first
        return next(i for i in mine if i.id == fed[0]) if fed else mine[0]
    for i in mine:
        if wanted in (i.id, i.symbol):
            return i
    elsewhere = [i.venue for i in dep.instruments if i.id == wanted]
    why = (f"it is listed on {elsewhere[0]}, not on {g.venue}" if elsewhere
           else "the deployment lists no such instrument")
    raise PlanError(f"--instrument {wanted!r}: {why}; gateway {g.actor_name} trades {g.venue}: {listed}")


def _account(dep: DeploymentConfig, g: GatewayConfig, wanted: str | None) -> str:
    carried = carried_accounts(dep, g)
    if wanted is None:
        if not carried:
            raise PlanError(f"--account: no account of the deployment trades on {g.venue} through gateway "
                            f"{g.actor_name} (accounts[].venues, gateways[].accounts); give one with --account")
        return carried[0]
    known = {a.id: a for a in dep.accounts}
    if wanted not in known:
        raise PlanError(f"--account {wanted!r}: no such account in the deployment; its accounts: "
                        f"{', '.join(known) or 'none'}")
    acc = known[wanted]
    if g.venue not in acc.venues:
        raise PlanError(f"--account {wanted!r}: the account does not trade on {g.venue} "
                        f"(its venues: {', '.join(acc.venues)}); accounts on {g.venue} through {g.actor_name}: "
                        f"{', '.join(carried) or 'none'}")
    if wanted not in carried:
        via = [o.actor_name for o in dep.gateways if o.venue == g.venue and wanted in o.accounts]
        raise PlanError(f"--account {wanted!r}: gateway {g.actor_name} does not carry it "
                        f"({'it goes through ' + ', '.join(via) if via else 'another gateway lists it'}); "
                        f"{g.actor_name} carries: {', '.join(carried) or 'none'}")
    return wanted


def min_qty(inst: Instrument) -> int:
    """The smallest quantity the venue takes: at least ``min_qty``, a whole number of lots."""
    lot = max(int(inst.lot_size), 1)
    q = max(int(inst.min_qty), lot)
    return -(-q // lot) * lot


def new_decision_id(now: dt.datetime | None = None) -> str:
    """``connect-test-<UTC time to the microsecond>``: never a strategy's (theirs end in a
    sequence number of digits only, ``strategies.base.decision_id``)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"connect-test-{now.strftime('%Y%m%dT%H%M%S%fZ')}"


def plan(dep: DeploymentConfig, gateway: str, *, instrument: str | None = None, account: str | None = None,
         price: str | None = None, timeout_s: float = 10.0, keep_order: bool = False) -> Plan:
    g = find(dep, gateway)
    inst = _instrument(dep, g, instrument)
    acc = _account(dep, g, account)
    px = None
    if price is not None:
        try:
            px = Decimal(price)
        except ArithmeticError:
            raise PlanError(f"--price {price!r}: not a number") from None
        if not px.is_finite() or px <= 0:
            raise PlanError(f"--price {price!r}: must be a positive price")
        if not inst.on_grid(px):
            raise PlanError(f"--price {price}: not on {inst.id}'s tick grid (tick {inst.tick_size})")
    did = new_decision_id()
    return Plan(dep, g, inst, acc, min_qty(inst), did, client_order_id(did, LEG, 0), px, timeout_s, keep_order)


def far_price(inst: Instrument, bid: Decimal | None, ask: Decimal | None, last: Decimal | None,
              settlement: Decimal | None) -> tuple[Decimal, str]:
    """A BUY price that rests far below the market and that the venue accepts: on the tick grid,
    inside the daily price-limit band. Returns the price and how it was chosen.

    - limits around a known settlement: the band's lower bound (rounded up to the grid, as the
      simulated venue rounds it), the farthest price the venue takes;
    - limits, no settlement known: halfway from the bid to where the band's lower bound would be
      around the bid (the market may have moved since the settlement, so the full distance
      could be outside the real band);
    - no limits: 20 % below the bid.

    ValueError when the market stands at its lower limit (no price below the bid is inside)."""
    ref = bid if bid is not None else (last if last is not None else ask)
    if ref is None or ref <= 0:
        raise ValueError("the quote has no bid, ask or last price to stay away from")
    pct = inst.price_limit.pct if inst.price_limit.kind == "percent" else None
    band = f"{_pct(pct)} %" if pct is not None else ""
    if pct is not None and settlement is not None:
        lo, _ = inst.price_limit.band(settlement)  # type: ignore[misc]
        px = inst.round_price(lo, "up")
        how = f"the lower price limit: settlement {settlement} - {band}"
    elif pct is not None:
        px = inst.round_price(ref * (1 - pct / 2), "up")
        how = f"{_pct(pct / 2)} % below {ref}, half the {band} price-limit band (no settlement in the quote)"
    else:
        px = inst.round_price(ref * (1 - NO_LIMIT_DISCOUNT), "down")
        how = f"{_pct(NO_LIMIT_DISCOUNT)} % below {ref} (no price limits on {inst.id})"
    if px <= 0:
        px = inst.from_ticks(1)
    if px >= ref:
        raise ValueError(f"the market ({ref}) stands at its lower price limit ({px}): no price below it is "
                         "inside the band; give one with --price")
    return px, f"{how}; {inst.to_ticks(ref) - inst.to_ticks(px)} ticks below {ref}"


# ----------------------------------------------------------------------------------- running
def _secrets(dep: DeploymentConfig) -> list[str]:
    """The values of every credential the deployment references that is set here (to keep them
    out of anything printed, whatever an adapter or a venue puts in an error)."""
    refs: list[str] = [r.env for a in dep.accounts for r in a.credentials.values()]

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if set(x) == {"env"} and isinstance(x["env"], str):
                refs.append(x["env"])
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    for g in dep.gateways:
        walk(g.params)
    return sorted({os.environ[r] for r in refs if len(os.environ.get(r, "")) >= 3}, key=len, reverse=True)


class _Runner:
    def __init__(self, p: Plan, log: Callable[[Step], None] | None) -> None:
        self.p = p
        self.log = log
        self.steps = [Step(n + 1, name) for n, name in enumerate(STEPS)]
        self.secrets = _secrets(p.deployment)
        self.core: Any = None
        self.feed: Any = None
        self.clock: Any = None
        self.sink: Any = None
        self.loopback: Any = None
        self.tmp: str | None = None
        self.quote: Any = None
        self.fed: dict[str, int] = {}
        self.order_live = False   # the test order may be resting at the venue
        self.summary: dict[str, Any] = {}

    # -- plumbing
    def clean(self, x: Any) -> Any:
        """``x`` (text, or a mapping or list holding text) with every credential value masked."""
        if isinstance(x, str):
            for s in self.secrets:
                x = x.replace(s, "***")
            return x
        if isinstance(x, dict):
            return {k: self.clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [self.clean(v) for v in x]
        return x

    def done(self, st: Step, outcome: str, t0: float, detail: str, **extra: Any) -> bool:
        st.outcome, st.elapsed_ms = outcome, (time.perf_counter() - t0) * 1000
        st.detail = self.clean(detail)
        st.extra.update(self.clean(extra))
        if self.log is not None:
            self.log(st)
        return outcome == "ok"

    def skip(self, st: Step, why: str) -> None:
        st.outcome, st.detail = "skipped", why
        if self.log is not None:
            self.log(st)

    def pump(self, feed_too: bool = True) -> None:
        """Market data in: due feed quotes to the venue, the adapter's own (core.tick)."""
        core, feed = self.core, self.feed
        if feed is not None and feed_too:
            for _ in range(64):
                t = feed.peek_ts()
                if t is None:
                    break
                if feed.speed is None:
                    feed.restamp(self.clock.now_ns())
                elif t > self.clock.now_ns():
                    break
                q = feed.next()
                if q is None:
                    break
                self.fed[q.instrument] = self.fed.get(q.instrument, 0) + 1
                core.on_market(q)
        core.tick()

    def wait(self, until: Callable[[], bool], timeout_s: float, feed_too: bool = True) -> bool:
        end = time.monotonic() + timeout_s
        while True:
            self.pump(feed_too)
            if until():
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.005)

    # -- the steps
    def connect(self, st: Step) -> bool:
        from ..actors.gateway import build_core
        from ..core.sink import MemorySink

        p, g = self.p, self.p.gateway
        t0 = time.perf_counter()
        dep = p.deployment
        notes = []
        try:
            params = dict(g.params)
            if "state_dir" in _param_fields(g.adapter):
                # what an adapter keeps in its state_dir (the simulated venue's journal, a CTP
                # session's order journal, which a fresh start begins anew) goes to a directory
                # of the test's own, not over what a deployment and xmc audit reconcile read
                self.tmp = tempfile.mkdtemp(prefix="xmc-connect-test-")
                params["state_dir"] = self.tmp
            dep = dep.model_copy(update={"gateways": tuple(
                g.model_copy(update={"params": params}) if o is g else o for o in dep.gateways)})
            from ..venues.fix.loopback import LoopbackExchanges, needs_loopback

            if g.actor_name in needs_loopback(dep):
                self.loopback = LoopbackExchanges()
                dep = self.loopback.start(dep, timeout_s=max(p.timeout_s, 30.0))
                lp = next(o for o in dep.gateways if o.actor_name == g.actor_name).params
                notes.append(f"loopback FIX exchange started on 127.0.0.1:{lp['port']} (serve_loopback)")
            self.sink = MemorySink()
            self.core, self.feed, self.clock = build_core(dep, g.actor_name, self.sink, "system")
        except Exception as e:  # noqa: BLE001 - whatever the adapter raises is the step's outcome
            return self.done(st, "failed", t0, f"the {g.adapter} adapter could not be built: {type(e).__name__}: {e}")
        adapter = self.core.adapter
        # the feed starts with the quote step, which so times the whole way a quote takes
        ok = self.wait(lambda: bool(adapter.connected()), p.timeout_s, feed_too=False)
        session = _session(adapter)
        extra = {"adapter": type(adapter).__name__, **({"session": session} if session else {})}
        what = _describe_session(g.adapter, session, ok)
        if not ok:
            why = f"not connected after {p.timeout_s:g} s ({what})"
            if session.get("last_logout_text"):
                why += f"; the venue's last logout: {session['last_logout_text']}"
            for k in ("last_error", "last_disconnect"):
                if session.get(k):
                    why += f"; {k.replace('_', ' ')}: {session[k]}"
            return self.done(st, "failed", t0, "; ".join(notes + [why]), **extra)
        return self.done(st, "ok", t0, "; ".join(notes + [what]), **extra)

    def read_quote(self, st: Step) -> bool:
        p, g = self.p, self.p.gateway
        inst = p.instrument.id
        t0 = time.perf_counter()

        def have() -> bool:
            q = self.core.latest.get(inst)
            return q is not None and (q.bid is not None or q.ask is not None or q.last is not None)

        if self.wait(have, p.timeout_s):
            q = self.quote = self.core.latest[inst]
            bid = f"{q.bid} x {q.bid_size}" if q.bid is not None else "none"
            ask = f"{q.ask} x {q.ask_size}" if q.ask is not None else "none"
            src = f"feed {g.feed.kind} through the {g.adapter} adapter" if self.feed is not None \
                else f"the {g.adapter} adapter's market data"
            text = f"{inst} bid {bid} / ask {ask}"
            text += f", last {q.last}" if q.last is not None else ""
            text += f", settlement {q.settlement}" if q.settlement is not None else ""
            text += f" ({q.status.value}; from {src})"
            return self.done(st, "ok", t0, text, bid=_s(q.bid), ask=_s(q.ask), last=_s(q.last),
                             settlement=_s(q.settlement), quote_status=q.status.value)
        if self.feed is None:
            why = (f"gateway {g.actor_name} has no feed (feed.kind: {g.feed.kind}) and its {g.adapter} adapter "
                   f"published no quote for {inst} within {p.timeout_s:g} s")
        elif not self.fed:
            why = f"the {g.feed.kind} feed delivered no quote within {p.timeout_s:g} s"
        elif inst not in self.fed:
            why = (f"no quote for {inst} within {p.timeout_s:g} s: the {g.feed.kind} feed quoted "
                   f"{', '.join(sorted(self.fed))} (choose one with --instrument)")
        else:
            why = (f"the feed sent {self.fed[inst]} quote(s) of {inst} to the venue, none came back "
                   f"within {p.timeout_s:g} s (disconnected, or market data dropped)")
        if p.price is not None:
            why += f"; going on with --price {p.price}"
        return self.done(st, "failed", t0, why)

    def place(self, st: Step) -> bool:
        from ..model.market import Side

        p = self.p
        t0 = time.perf_counter()
        if p.price is not None:
            px, how = p.price, "--price"
        else:
            q = self.quote
            try:
                px, how = far_price(p.instrument, q.bid, q.ask, q.last, q.settlement)
            except ValueError as e:
                return self.done(st, "failed", t0, f"no safe price: {e}")
        # a venue holding long and short apart (SHFE, INE, DCE, ...) needs every order to say
        # open or close: the test buy opens (it needs no position, and it never fills)
        two_sided = getattr(p.deployment.venue(p.gateway.venue), "offsets", "none") != "none"
        offset = Offset.OPEN if two_sided else None
        req = OrderRequest(client_order_id=p.client_order_id, decision_id=p.decision_id, leg=LEG,
                           account=p.account, instrument=p.instrument.id, side=Side.BUY, qty=p.qty,
                           order_type=OrderType.LIMIT, price=px, tif=TimeInForce.DAY, owner="xmc connect-test",
                           sent_ns=time.time_ns(), offset=offset)
        self.summary["order"] = {"side": "BUY", "qty": p.qty, "price": str(px), "type": "LIMIT", "tif": "DAY",
                                 "offset": offset.value if offset else None, "price_chosen": how}
        try:
            reps, latency = self.core.place(req)
        except Exception as e:  # noqa: BLE001
            self.order_live = True  # it may have gone out: query and cancel it
            return self.done(st, "failed", t0, f"place raised {type(e).__name__}: {e}")
        last = reps[-1] if reps else None
        status = self.core.orders[p.client_order_id].status if p.client_order_id in self.core.orders else None
        order = (f"BUY{' ' + offset.value if offset else ''} {p.qty} {p.instrument.id} @ {px} LIMIT DAY ({how}), "
                 f"account {p.account}")
        extra = _rep_fields(last) | {"venue_latency_ms": round(latency / 1e6, 3)}
        if any(r.fill is not None for r in reps) or (last is not None and last.filled_qty):
            self.order_live = status is None or status.is_live
            return self.done(st, "failed", t0, f"{order}: it TRADED ({_rep_text(last)}): the price was not far "
                                               "enough from the market", **extra)
        if last is None or last.kind is ExecReportKind.REJECTED or last.status is OrderStatus.REJECTED:
            return self.done(st, "failed", t0, f"{order}: refused: {_rep_text(last)}", **extra)
        if last.status is OrderStatus.UNKNOWN:
            self.order_live = True
            return self.done(st, "failed", t0, f"{order}: no answer ({_rep_text(last)}); querying it", **extra)
        self.order_live = last.status.is_live
        if last.kind is ExecReportKind.ACK and last.status.is_live:
            return self.done(st, "ok", t0, f"{order}: {_rep_text(last)}", **extra)
        return self.done(st, "failed", t0, f"{order}: unexpected answer {_rep_text(last)}", **extra)

    def query(self, st: Step, want_live: bool) -> bool:
        coid = self.p.client_order_id
        t0 = time.perf_counter()
        try:
            rep = self.core.query(coid)
        except Exception as e:  # noqa: BLE001
            return self.done(st, "failed", t0, f"query raised {type(e).__name__}: {e}")
        if rep is None:
            self.order_live = False
            return self.done(st, "failed", t0, f"the venue has no order {coid}")
        self.order_live = rep.status.is_live
        extra = _rep_fields(rep)
        if want_live:
            ok = rep.status in (OrderStatus.ACCEPTED, OrderStatus.PENDING_CANCEL) and not rep.filled_qty
            return self.done(st, "ok" if ok else "failed", t0,
                             f"{_rep_text(rep)}" + ("" if ok else ": expected a live, unfilled order"), **extra)
        ok = rep.status is OrderStatus.CANCELED and not rep.filled_qty
        return self.done(st, "ok" if ok else "failed", t0,
                         f"{_rep_text(rep)}" + ("" if ok else ": expected CANCELED with nothing filled"), **extra)

    def cancel(self, st: Step) -> bool:
        coid = self.p.client_order_id
        t0 = time.perf_counter()
        try:
            rep, latency = self.core.cancel(coid)
        except Exception as e:  # noqa: BLE001
            return self.done(st, "failed", t0, f"cancel raised {type(e).__name__}: {e}")
        extra = _rep_fields(rep) | {"venue_latency_ms": round(latency / 1e6, 3)}
        if rep.kind is ExecReportKind.CANCELED:
            self.order_live = False
            return self.done(st, "ok", t0, _rep_text(rep), **extra)
        self.order_live = rep.status.is_live
        return self.done(st, "failed", t0, f"cancel refused: {_rep_text(rep)}", **extra)

    def close(self, st: Step) -> bool:
        t0 = time.perf_counter()
        notes, ok = [], True
        if self.core is not None:
            try:
                t1 = time.perf_counter()
                self.core.close()
                took = f" in {(time.perf_counter() - t1) * 1000:.0f} ms"
                session = _session(self.core.adapter)
                state = session.get("state")
                closable = callable(getattr(self.core.adapter, "close", None))
                if closable and self.core.adapter.connected():
                    ok = False
                    notes.append(f"the adapter still reports itself connected after close ({state or 'no state'})")
                else:
                    notes.append(f"session closed ({state}){took}" if state else f"session closed{took}"
                                 if closable else f"nothing to close ({self.p.gateway.adapter} adapter)")
            except Exception as e:  # noqa: BLE001
                ok = False
                notes.append(f"close raised {type(e).__name__}: {e}")
        if self.loopback is not None:
            try:
                t1 = time.perf_counter()
                self.loopback.stop()
                notes.append(f"loopback FIX exchange stopped in {(time.perf_counter() - t1) * 1000:.0f} ms")
            except Exception as e:  # noqa: BLE001
                ok = False
                notes.append(f"stopping the loopback FIX exchange: {type(e).__name__}: {e}")
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self.core is None and self.loopback is None:
            return self.done(st, "ok", t0, "nothing was opened")
        return self.done(st, "ok" if ok else "failed", t0, "; ".join(notes))

    def run(self) -> None:
        s = {st.name: st for st in self.steps}
        try:
            if not self.connect(s["connect"]):
                for name in STEPS[1:-1]:
                    self.skip(s[name], "not connected")
                return
            if not self.read_quote(s["quote"]) and self.p.price is None:
                for name in STEPS[2:-1]:
                    self.skip(s[name], "no quote to place the test order away from (give --price to go on)")
                return
            placed = self.place(s["place"])
            if not self.order_live and not placed:
                for name in STEPS[3:-1]:
                    self.skip(s[name], "no order at the venue")
                return
            self.query(s["query"], want_live=True)
            if self.p.keep_order and self.order_live:
                for name in ("cancel", "query-canceled"):
                    self.skip(s[name], f"--keep-order: {self.p.client_order_id} left at the venue")
                return
            if self.order_live:
                self.cancel(s["cancel"])
            else:
                self.skip(s["cancel"], "the order is no longer live")
            self.query(s["query-canceled"], want_live=False)
        finally:
            self.close(s["close"])


def run(p: Plan, log: Callable[[Step], None] | None = None) -> dict[str, Any]:
    """Run the check; the result as one document (``steps``, ``ok``, ``exit_code``,
    ``first_failed``, ``order_left_live``, ``events``: what the core recorded, for :func:`record`)."""
    r = _Runner(p, log)
    r.run()
    failed = [st for st in r.steps if st.outcome == "failed"]
    g = p.gateway
    doc: dict[str, Any] = {
        "deployment": p.deployment.name, "gateway": g.actor_name, "venue": g.venue, "adapter": g.adapter,
        "feed": g.feed.kind, "instrument": p.instrument.id, "account": p.account, "decision_id": p.decision_id,
        "client_order_id": p.client_order_id, **r.summary,
        "ok": not failed, "first_failed": failed[0].name if failed else None,
        "exit_code": FIRST_FAILED_CODE + failed[0].n if failed else 0,
        "order_left_live": r.order_live, "steps": [st.as_dict() for st in r.steps],
    }
    doc["events"] = list(r.sink.events) if r.sink is not None else []
    return doc


def record(dep: DeploymentConfig, doc: dict[str, Any], ledger_dir: str | None = None) -> tuple[str, int]:
    """Write the check's events (the gateway's drop copies and one LIFECYCLE event with the
    steps) to the deployment's ledger, in the shards its client would use. Returns the ledger
    directory and how many events were stored. Refused (LedgerError) on a ledger a running
    deployment holds."""
    from pathlib import Path

    from ..core.clock import SystemClock
    from ..core.sink import EventMaker
    from ..ledger.client import shard_index
    from ..ledger.store import LedgerStore
    from ..model.events import EventKind

    root = Path(ledger_dir or dep.ledger.path).expanduser().resolve()
    events = list(doc["events"])
    outcome = "all steps passed" if doc["ok"] else f"step {doc['first_failed']} failed"
    events.append(EventMaker(SystemClock(), "xmc connect-test").make(
        EventKind.LIFECYCLE, decision_id=doc["decision_id"], venue=doc["venue"], instrument=doc["instrument"],
        account=doc["account"], reason=f"connect-test of {doc['gateway']}: {outcome}",
        steps=[{k: v for k, v in s.items() if k in ("step", "name", "outcome", "elapsed_ms", "detail")}
               for s in doc["steps"]]))
    groups: dict[int, list[Any]] = {}
    shards = dep.ledger.shards
    for e in events:
        groups.setdefault(shard_index(e, dep.ledger.shard_by, shards), []).append(e)
    root.mkdir(parents=True, exist_ok=True)
    stored = 0
    for i, evs in sorted(groups.items()):
        store = LedgerStore(root / f"shard-{i}.duckdb", actor="xmc connect-test")
        try:
            stored += store.append_events(evs, stored_ns=time.time_ns()).stored
        finally:
            store.close()
    return str(root), stored


# ----------------------------------------------------------------------------------- helpers
def _pct(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}"


def _s(x: Any) -> str | None:
    return None if x is None else str(x)


def _param_fields(adapter: str) -> set[str]:
    from ..model.registry import ADAPTERS

    try:
        return set(getattr(ADAPTERS.get(adapter).params, "model_fields", {}))
    except Exception:  # noqa: BLE001 - an unknown adapter fails when it is built, with its reason
        return set()


def _session(adapter: Any) -> dict[str, Any]:
    fn = getattr(adapter, "status", None)
    if not callable(fn):
        return {}
    try:
        s = fn()
    except Exception:  # noqa: BLE001
        return {}
    # what says where the session goes and how it stands (FIX: CompIDs, endpoint, sequence
    # numbers; CTP: fronts, broker, trading day, the last error); never a credential
    keep = ("kind", "state", "session_id", "endpoint", "logged_on", "next_sender_seq", "next_target_seq",
            "last_logout_text", "market_data", "fronts", "broker_id", "front_id", "trading_day", "last_error",
            "last_disconnect")
    return {k: s[k] for k in keep if isinstance(s, dict) and k in s}


def _describe_session(adapter: str, s: dict[str, Any], connected: bool) -> str:
    if not s:
        what = "the simulated venue" if adapter == "sim" else f"the {adapter} adapter"
        return f"{what} reports itself {'connected' if connected else 'disconnected'}"
    parts = [str(s.get("state") or ("LOGGED_ON" if s.get("logged_on") else "not logged on"))]
    if s.get("session_id"):
        parts.append(f"session {s['session_id']}")
    if s.get("endpoint"):
        parts.append(f"at {s['endpoint']}")
    if s.get("fronts"):
        parts.append(f"front {', '.join(map(str, s['fronts']))}" + (f", broker {s['broker_id']}" if s.get("broker_id") else ""))
    if s.get("trading_day"):
        parts.append(f"trading day {s['trading_day']}")
    if s.get("next_sender_seq"):
        parts.append(f"next seq out {s['next_sender_seq']} / in {s.get('next_target_seq')}")
    return ", ".join(parts)


def _rep_text(rep: Any) -> str:
    if rep is None:
        return "no report"
    out = rep.kind.value if rep.kind.value == rep.status.value else f"{rep.kind.value} {rep.status.value}"
    if rep.venue_order_id:
        out += f", venue order id {rep.venue_order_id}"
    if rep.filled_qty or rep.leaves_qty:
        out += f", filled {rep.filled_qty} / leaves {rep.leaves_qty}"
    if rep.reason is not None:
        out += f", reason {rep.reason.value}"
    if rep.text:
        out += f": {rep.text}"
    return out


def _rep_fields(rep: Any) -> dict[str, Any]:
    if rep is None:
        return {}
    return {"report": rep.kind.value, "status": rep.status.value, "venue_order_id": rep.venue_order_id or None,
            "reason": rep.reason.value if rep.reason is not None else None, "filled_qty": rep.filled_qty,
            "leaves_qty": rep.leaves_qty}


__all__ = ["FIRST_FAILED_CODE", "STEPS", "Plan", "PlanError", "Step", "carried_accounts", "far_price", "find",
           "min_qty", "new_decision_id", "plan", "record", "run"]
