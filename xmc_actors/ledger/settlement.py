"""A broker's daily settlement statement (结算单) reconciled with the ledger.

The statement is a CSV file, one row per record (extra columns are ignored; header names are
case-insensitive)::

    record,trading_day,account,instrument,long,short,field,value
    position,2026-03-02,cn-main,SHFE.cu,5,0,,
    position,2026-03-02,us-main,LME.CA3M,0,1,,
    funds,2026-03-02,cn-main,,,,equity,1012345.50
    funds,2026-03-02,cn-main,,,,margin,180000

``position`` rows give the lots held long and short at the end of ``trading_day`` (a netting
venue's net goes in one of the two); ``funds`` rows give a figure of the account (``equity``,
``margin``, ``available`` or any other name). The ledger's side of each position is what its
fills made: every order's last cumulative ``filled`` (``ORDER_REPORT``) up to the end of that
trading day, long and short kept apart by the order's offset where it has one (an order
without an offset nets). A fill's trading day is its venue's (night sessions count for the
next day) when the deployment file is given, its UTC date otherwise. Funds are compared with the
last account reading the ledger holds for the account and that trading day (a ``RECONCILE`` event
with ``equity``, ``margin``… in its payload, which a venue's account reading writes), when there is
one; a reading's trading day is its account's venue's (:func:`reading_day`: one taken after the
close and before the next session speaks for the day that closed; in a night session, for the next
day) with the deployment file, its UTC date otherwise.
"""
from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

POSITION_FIELDS = ("record", "trading_day", "account", "instrument", "long", "short")


class SettlementError(ValueError):
    """The statement cannot be read: names the line and the column."""


def read_statement(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(positions, funds)`` rows of a statement file; SettlementError naming line and column."""
    p = Path(path)
    if not p.exists():
        raise SettlementError(f"statement {p}: no such file")
    positions: list[dict[str, Any]] = []
    funds: list[dict[str, Any]] = []
    with p.open(newline="", encoding="utf-8-sig") as fh:
        rd = csv.DictReader(fh)
        if rd.fieldnames is None:
            raise SettlementError(f"statement {p}: empty file")
        cols = {c.strip().lower(): c for c in rd.fieldnames if c}
        missing = [c for c in ("record", "trading_day", "account") if c not in cols]
        if missing:
            raise SettlementError(f"statement {p}: no column {', '.join(missing)} (have: {', '.join(cols)})")
        for n, raw in enumerate(rd, start=2):
            row = {k: (raw.get(v) or "").strip() for k, v in cols.items()}
            kind = row["record"].lower()
            where = f"statement {p} line {n}"
            try:
                day = dt.date.fromisoformat(row["trading_day"])
            except ValueError:
                raise SettlementError(f"{where} column trading_day: {row['trading_day']!r} is not a date (YYYY-MM-DD)") from None
            if not row["account"]:
                raise SettlementError(f"{where} column account: empty")
            if kind == "position":
                if not row.get("instrument"):
                    raise SettlementError(f"{where} column instrument: empty")
                lots = {}
                for c in ("long", "short"):
                    v = row.get(c, "") or "0"
                    if not v.isdigit():
                        raise SettlementError(f"{where} column {c}: {v!r} is not a whole number of lots (>= 0)")
                    lots[c] = int(v)
                positions.append({"trading_day": day, "account": row["account"], "instrument": row["instrument"], **lots})
            elif kind == "funds":
                name = row.get("field", "")
                if not name:
                    raise SettlementError(f"{where} column field: empty (equity, margin, available, ...)")
                try:
                    value = Decimal(row.get("value", ""))
                    if not value.is_finite():
                        raise InvalidOperation
                except (InvalidOperation, ValueError):
                    raise SettlementError(f"{where} column value: {row.get('value')!r} is not a number") from None
                funds.append({"trading_day": day, "account": row["account"], "field": name, "value": value})
            else:
                raise SettlementError(f"{where} column record: {row['record']!r} (position or funds)")
    if not positions and not funds:
        raise SettlementError(f"statement {p}: no position or funds row")
    return positions, funds


def ledger_positions(events: list[Any], day: dt.date, trading_day: Any = None) -> dict[tuple[str, str], dict[str, int]]:
    """``(account, instrument) -> {long, short}`` the ledger's fills made by the end of ``day``.

    ``events``: ``ORDER_SENT`` and ``ORDER_REPORT`` events (``model.events.Event``).
    ``trading_day(instrument, ts_ns) -> date``: a fill's trading day (default: its UTC date)."""
    sent: dict[str, tuple[str, str, str, str]] = {}  # coid -> account, instrument, side, offset
    filled: dict[str, int] = {}
    for e in events:
        p = e.payload
        coid = str(p.get("client_order_id") or "")
        if not coid:
            continue
        if e.kind.value == "ORDER_SENT" and "side" in p and coid not in sent:
            sent[coid] = (e.account, e.instrument, str(p["side"]), str(p.get("offset") or ""))
        elif e.kind.value == "ORDER_REPORT" and p.get("filled") is not None:
            when = trading_day(e.instrument, e.ts_ns) if trading_day is not None else \
                dt.datetime.fromtimestamp(e.ts_ns / 1e9, dt.timezone.utc).date()
            if when <= day:
                try:
                    filled[coid] = max(filled.get(coid, 0), int(p["filled"]))
                except (TypeError, ValueError):
                    continue
    out: dict[tuple[str, str], dict[str, int]] = {}
    for coid, q in filled.items():
        if coid not in sent or not q:
            continue
        acc, inst, side, offset = sent[coid]
        pos = out.setdefault((acc, inst), {"long": 0, "short": 0})
        buy = side == "BUY"
        if offset in ("", "NONE"):  # a netting venue: one net figure, shown on the side it is on
            net = pos["long"] - pos["short"] + (q if buy else -q)
            pos["long"], pos["short"] = max(net, 0), max(-net, 0)
        elif offset == "OPEN":
            pos["long" if buy else "short"] += q
        else:  # a close takes from the other side
            pos["short" if buy else "long"] -= q
    return out


def compare(statement: tuple[list[dict[str, Any]], list[dict[str, Any]]], ledger: dict[dt.date, dict[tuple[str, str], dict[str, int]]],
            readings: dict[tuple[dt.date, str], dict[str, Decimal]], tolerance: float = 0.01) -> dict[str, Any]:
    """The statement against the ledger's positions per trading day and its account readings."""
    positions, funds = statement
    rows: list[dict[str, Any]] = []
    for day in sorted({r["trading_day"] for r in positions} | {f["trading_day"] for f in funds}):
        # rows of one account and instrument are added up (SHFE/INE statements list today's and
        # yesterday's lots on rows of their own)
        stated: dict[tuple[str, str], dict[str, int]] = {}
        for r in positions:
            if r["trading_day"] == day:
                slot = stated.setdefault((r["account"], r["instrument"]), {"long": 0, "short": 0})
                slot["long"] += r["long"]
                slot["short"] += r["short"]
        # every account the statement covers that day, one it lists only in its funds included:
        # a broker that holds nothing for an account lists no position row for it
        accounts = {a for a, _ in stated} | {f["account"] for f in funds if f["trading_day"] == day}
        held = {k: v for k, v in ledger.get(day, {}).items() if k[0] in accounts and (v["long"] or v["short"])}
        for acc, inst in sorted(set(stated) | set(held)):
            s = stated.get((acc, inst), {"long": 0, "short": 0})
            led = held.get((acc, inst), {"long": 0, "short": 0})
            for side in ("long", "short"):
                if s[side] or led[side]:
                    rows.append({"trading_day": day.isoformat(), "account": acc, "instrument": inst, "side": side,
                                 "statement": s[side], "ledger": led[side], "difference": led[side] - s[side]})
    frows = []
    for f in funds:
        have = readings.get((f["trading_day"], f["account"]), {}).get(f["field"])
        frows.append({"trading_day": f["trading_day"].isoformat(), "account": f["account"], "field": f["field"],
                      "statement": str(f["value"]), "ledger": None if have is None else str(have),
                      "difference": None if have is None else str(have - f["value"])})
    pos_ok = all(r["difference"] == 0 for r in rows)
    funds_ok = all(r["difference"] is None or abs(Decimal(r["difference"])) <= Decimal(str(tolerance)) for r in frows)
    return {"positions": rows, "funds": frows, "positions_agree": pos_ok, "funds_agree": funds_ok,
            "agree": pos_ok and funds_ok,
            "funds_unverified": [f"{r['account']} {r['field']}" for r in frows if r["ledger"] is None]}


def reading_day(venue: Any, ts_ns: int) -> dt.date:
    """The trading day an account reading taken at ``ts_ns`` speaks for, on ``venue``: the
    latest trading day whose first session had begun by then (in session, in a break, or after
    its close until the next day's first session opens: a night session belongs to the next
    day), else the venue's local date."""
    from ..core.calendar import is_business_day, session_window

    when = dt.datetime.fromtimestamp(ts_ns / 1e9, dt.timezone.utc).astimezone(venue.tz)
    day = when.date() + dt.timedelta(days=10)  # a night session opens the next trading day, past weekends and holidays
    for _ in range(25):
        if is_business_day(venue, day):
            starts = [w[0] for w in (session_window(venue, day, x) for x in venue.sessions) if w]
            if starts and min(starts) <= when:
                return day
        day -= dt.timedelta(days=1)
    return when.date()


def reconcile_statement(statement_path: str | Path, ledger_dir: str | Path, *, venues: Any = None,
                        instruments: Any = None, accounts: Any = None, tolerance: float = 0.01) -> dict[str, Any]:
    """Read the statement and the ledger and compare them (``xmc settlement``). ``venues`` and
    ``instruments`` (of the deployment file) give each fill its venue's trading day;
    ``accounts`` too give each account reading its venue's trading day (:func:`reading_day`:
    the venue the reading came from, else the account's first venue); without them, UTC dates."""
    from ..core.calendar import instrument_session_state
    from .audit import AuditReader

    stmt = read_statement(statement_path)
    insts = {i.id: i for i in instruments or ()}
    vs = {v.code: v for v in venues or ()}

    def venue_day(inst_id: str, ts_ns: int) -> dt.date:
        inst = insts.get(inst_id)
        if inst is None or inst.venue not in vs:
            return dt.datetime.fromtimestamp(ts_ns / 1e9, dt.timezone.utc).date()
        return instrument_session_state(vs[inst.venue], inst, ts_ns).trading_day

    trading_day = venue_day if insts else None
    acc_venue = {a.id: a.venues[0] for a in accounts or () if a.venues}
    ledger_path = Path(ledger_dir)
    if not ledger_path.exists():
        raise SettlementError(f"ledger {ledger_path}: no such directory")
    reader = AuditReader(ledger_path)
    try:
        events = reader.events(kinds=["ORDER_SENT", "ORDER_REPORT", "RECONCILE"])
    finally:
        reader.close()
    days = sorted({r["trading_day"] for r in stmt[0]})
    ledger = {d: ledger_positions(events, d, trading_day) for d in days}
    readings: dict[tuple[dt.date, str], dict[str, Decimal]] = {}
    for e in events:
        if e.kind.value != "RECONCILE" or not e.account or "equity" not in e.payload:
            continue
        venue = vs.get(e.venue or "") or vs.get(acc_venue.get(e.account, ""))  # the venue it was read from
        day = reading_day(venue, e.ts_ns) if venue is not None else \
            dt.datetime.fromtimestamp(e.ts_ns / 1e9, dt.timezone.utc).date()
        vals = {}
        for k, v in e.payload.items():
            try:
                vals[k] = Decimal(str(v))
            except (InvalidOperation, ValueError):
                continue
        readings[(day, e.account)] = vals
    return compare(stmt, ledger, readings, tolerance)
