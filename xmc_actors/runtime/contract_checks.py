"""Does a deployment trade contracts that are still alive, and roll them before the venue's deadline?

Checked when a deployment file is loaded (``load_config``), on the days it runs
(:func:`~xmc_actors.runtime.calendars.calendar_spans`):

* a strategy leg on a concrete contract (``SHFE.cu2601``) whose last trading day is before the
  last day the deployment runs: a problem on a real venue's adapter (FIX, CTP: the order would
  be refused, or worse, a position could not be closed), a note on the simulated adapter (a
  synthetic or replayed market has no expiry);
* a ``calendar_roll`` strategy: leg A (near) and leg B (far) contracts of one product, A
  expiring first, and every ``roll_at`` time on or before A's hold deadline (the last day the
  venue lets a position stay in it; after that the broker closes it for you).

Product ids (``SHFE.cu``: the main contract of the day) and spot instruments are not checked here.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from ..core.contracts import Contract, ContractDateError
from . import calendars
from .calendars import calendar_spans

_NS = 1_000_000_000


def _concrete(cfg: Any, inst_id: str, day: dt.date) -> Contract | None:
    inst = next((i for i in cfg.instruments if i.id == inst_id), None)
    if inst is None or inst.contract is not None:
        return None  # unknown (reported elsewhere) or a product id
    venues = {v.code: v for v in cfg.venues}
    insts = {i.id: i for i in cfg.instruments}
    try:
        # resolve() refuses an expired one; parse it directly to report the dates instead
        from ..core.contracts import _product_for, parse_contract

        product = _product_for(insts, inst.venue, inst.symbol, inst)
        if product is None:
            return None
        return parse_contract(product, venues[inst.venue], inst.symbol, day)
    except (ContractDateError, KeyError):
        return None


def contract_checks(cfg: Any, now: dt.datetime | None = None) -> tuple[list[tuple[tuple[Any, ...], str]], list[str]]:
    """``(problems, notes)``: problems as ``(path, message)``, notes as text."""
    now = now or calendars.now_utc()
    last_day: dict[str, dt.date] = {}
    for sp in calendar_spans(cfg, now):
        last_day[sp.venue] = max(last_day.get(sp.venue, sp.last), sp.last)
    gateways = {g.venue: g for g in cfg.gateways}
    problems: list[tuple[tuple[Any, ...], str]] = []
    notes: list[str] = []
    expired: dict[str, list[str]] = {}
    for n, s in enumerate(cfg.strategies):
        if not s.enabled:
            continue
        legs: list[Contract | None] = []
        for k, leg in enumerate(s.legs):
            venue = str(leg.instrument).split(".", 1)[0]
            tz = next((v.tz for v in cfg.venues if v.code == venue), dt.timezone.utc)
            day = last_day.get(venue, now.astimezone(tz).date())
            c = _concrete(cfg, leg.instrument, day)
            legs.append(c)
            if c is None or c.last_trading_day is None or day <= c.last_trading_day:
                continue
            msg = (f"{c.id} expired on {c.last_trading_day} (its last trading day); this deployment runs "
                   f"{venue} up to {day}")
            g = gateways.get(venue)
            if g is not None and g.adapter != "sim":
                problems.append((("strategies", n, "legs", k, "instrument"), msg + ": trade a live contract"))
            else:
                expired.setdefault(msg, []).append(s.name)
        if s.class_ == "calendar_roll":
            problems.extend(_roll_problems(cfg, n, s, legs))
    for msg, names in expired.items():
        who = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        notes.append(f"{msg}; traded by {who} (simulated venue: it trades on anyway)")
    return problems, notes


def _roll_problems(cfg: Any, n: int, s: Any, legs: list[Contract | None]) -> list[tuple[tuple[Any, ...], str]]:
    near, far = legs
    out: list[tuple[tuple[Any, ...], str]] = []
    if near is None or far is None:
        return out  # a roll between product ids or unlisted names: nothing to date
    if near.product_id != far.product_id:
        out.append((("strategies", n, "legs"), f"a calendar roll moves one product from its near to its far "
                                               f"contract: {near.id} and {far.id} are different products"))
        return out
    if (far.year, far.month, far.prompt or dt.date.min) <= (near.year, near.month, near.prompt or dt.date.min):
        out.append((("strategies", n, "legs"), f"leg A is the near contract and leg B the far one: {near.id} does "
                                               f"not expire before {far.id}"))
        return out
    if near.hold_deadline is None:
        return out
    tz = next((v.tz for v in cfg.venues if v.code == near.venue), dt.timezone.utc)
    for i, raw in enumerate((s.params or {}).get("roll_at") or []):
        try:
            t = dt.datetime.fromisoformat(str(raw))
        except ValueError:
            continue  # reported by the parameter check
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        if t.astimezone(tz).date() > near.hold_deadline:
            out.append((("strategies", n, "params", "roll_at", i),
                        f"{raw} is after {near.id}'s hold deadline {near.hold_deadline} ({near.venue}'s last day "
                        f"a position may stay in it): roll before it (core/contracts.py plan_roll gives the window)"))
    return out


def referenced_instruments(cfg: Any) -> list[str]:
    """Instrument ids a deployment names: its strategies' legs and its gateways' feeds."""
    out: list[str] = []
    for s in cfg.strategies:
        out.extend(str(leg.instrument) for leg in s.legs)
    for g in cfg.gateways:
        p = g.feed.params or {}
        out.extend(str(i) for i in p.get("instruments") or [])
        out.extend(str(f.get("instrument")) for f in p.get("files") or [] if isinstance(f, dict) and f.get("instrument"))
    return list(dict.fromkeys(out))


def with_concrete_contracts(cfg: Any) -> Any:
    """``cfg`` with an instrument for each concrete contract it names that the catalogue does
    not list (``SHFE.cu2703``, ``COMEX.GCJ7``, ``LME.CA-20270308``): its product's terms under
    the contract's own id (:func:`~xmc_actors.core.contracts.concrete_instrument`). Only a
    contract still alive today, or on a venue whose data is replayed (history has expired
    contracts): an expired name on a live venue is most likely a typo, and, like a name that is
    not a contract of any product, is left for the references check to report as unknown."""
    from ..core.contracts import _product_for, concrete_instrument, parse_contract

    listed = {i.id for i in cfg.instruments}
    insts = {i.id: i for i in cfg.instruments}
    venues = {v.code: v for v in cfg.venues}
    today = calendars.now_utc().date()
    added = []
    for inst_id in referenced_instruments(cfg):
        venue, _, symbol = inst_id.partition(".")
        if inst_id in listed or venue not in venues or not symbol:
            continue
        product = _product_for(insts, venue, symbol, None)
        if product is None:
            continue
        try:
            c = parse_contract(product, venues[venue], symbol, today)
        except ContractDateError:
            continue
        if c.symbol != symbol:
            continue
        replayed = any(g.venue == venue and g.feed.kind == "replay" for g in cfg.gateways)
        if not replayed and c.last_trading_day is not None and c.last_trading_day < today:
            continue
        added.append(concrete_instrument(product, c))
        listed.add(inst_id)
    return cfg.model_copy(update={"instruments": (*cfg.instruments, *added)}) if added else cfg
