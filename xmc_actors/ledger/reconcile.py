"""Reconciliation: the trail against what the venues really did, and the events it lacks.

**Against the venues' own records** (:func:`reconcile_against_venues`, :func:`compare_with_venues`):
each venue's orders and fills as the venue keeps them (:mod:`.venue_records`: the simulated
venue's journal under ``state_dir``, a record that outlives the gateway; a running gateway's
``drop_copy()``), compared with the trail's ``ORDER_SENT`` / ``ORDER_REPORT`` events. Per venue:
fills at the venue missing from the trail, fills in the trail unknown to the venue, fills
stored twice, orders with no ``ORDER_SENT``, client order ids held twice at the venue, final
statuses that differ. ``report.backfill`` holds the missing events (deterministic ids).

**Trail only** (:func:`reconcile`, the old check, ``xmc audit reconcile --trail-only``):
gateways write what the venue reported as ``VENUE_DROP_COPY`` events through the same ledger
client as everything else, so this compares the trail with itself: a fill whose drop copy was
lost along with it (the gateway killed before the ledger acknowledged either) is not seen.

Backfilled events are marked as reconciled (``reason`` starts with ``RECONCILED``,
``payload["reconciled"] = True``) and have deterministic ids, so running it twice writes
nothing new.

A drop-copy row is a mapping with ``client_order_id`` and, for a fill, ``trade_id``; other keys
used when present: ``venue``, ``instrument``, ``status``, ``side``, ``qty``, ``price``,
``filled_qty``, ``ts_ns``, ``decision_id``, ``leg``, ``account``, ``strategy``. A gateway records
the venue's report whole (payload ``{"report": <ExecutionReport as JSON>}``);
:func:`drop_copy_rows` flattens it into such a row.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..model.events import Event, EventKind
from .venue_records import VenueFill, VenueOrder, VenueRecord, VenueRecordSource


def reconcile_id(*parts: str) -> str:
    """Deterministic event id for a reconciled event (``rc`` + 30 hex digits)."""
    return "rc" + hashlib.blake2b("|".join(parts).encode(), digest_size=15).hexdigest()


def drop_copy_rows(events: Iterable[Event]) -> list[dict[str, Any]]:
    """The drop-copy rows recorded in the trail (payloads of ``VENUE_DROP_COPY`` events)."""
    out = []
    for e in events:
        if e.kind is EventKind.VENUE_DROP_COPY:
            rep = e.payload.get("report")
            row = _flatten_report(rep) if isinstance(rep, Mapping) else dict(e.payload)
            row.setdefault("venue", e.venue)
            row.setdefault("instrument", e.instrument)
            row.setdefault("account", e.account)
            row.setdefault("decision_id", e.decision_id)
            # the trail's time axis (a replay's report carries market time; the event is in wall time)
            row["ts_ns"] = e.ts_ns
            out.append(row)
    return out


def _flatten_report(rep: Mapping[str, Any]) -> dict[str, Any]:
    """A drop-copy row from a venue report as the gateway records it (``ExecutionReport`` JSON):
    the order's id, status and cumulative fill, and for a fill its trade id, side, size and price."""
    row = {k: rep[k] for k in ("client_order_id", "venue_order_id", "venue", "instrument", "status", "filled_qty",
                               "decision_id", "leg", "ts_ns", "kind", "reason") if rep.get(k) is not None}
    fill = rep.get("fill")
    if isinstance(fill, Mapping):
        row.update(trade_id=fill.get("trade_id"), side=fill.get("side"), qty=fill.get("qty"), price=fill.get("price"))
    return row


def reconcile(drop_copy: Iterable[Mapping[str, Any]], trail: Iterable[Event], *, now_ns: int,
              actor: str = "reconciler") -> list[Event]:
    """Events the trail lacks according to the drop copy.

    Parameters
    ----------
    drop_copy
        What the venues say happened (gateway ``drop_copy()`` rows, or :func:`drop_copy_rows`).
    trail
        The ledger's events (at least ORDER_SENT and ORDER_REPORT of the period).
    now_ns
        Timestamp for events whose drop-copy row has no ``ts_ns``.

    Returns
    -------
    list[Event]
        One ``ORDER_SENT`` per order the trail never saw sent, one ``ORDER_REPORT`` per fill
        (``trade_id``) the trail lacks, one ``ORDER_REPORT`` per order whose final status in
        the drop copy differs from the trail's last one, and, if anything was missing, one
        ``RECONCILE`` summary. Ids are deterministic; the result is sorted by ``ts_ns``.
    """
    sent: set[str] = set()
    trades: set[str] = set()
    last_status: dict[str, tuple[int, str]] = {}
    for e in trail:
        oid = e.payload.get("client_order_id")
        if not oid:
            continue
        if e.kind is EventKind.ORDER_SENT:
            sent.add(oid)
        elif e.kind is EventKind.ORDER_REPORT:
            sent.add(oid)  # a report proves the order was sent, even if ORDER_SENT was lost
            tid = e.payload.get("trade_id") or (e.payload.get("fill") or {}).get("trade_id")
            if tid:
                trades.add(str(tid))
            st = e.payload.get("status")
            if st and (oid not in last_status or e.ts_ns >= last_status[oid][0]):
                last_status[oid] = (e.ts_ns, str(st))
    missing: list[Event] = []
    final_status: dict[str, tuple[int, Mapping[str, Any]]] = {}
    seen_orders: set[str] = set()
    for row in drop_copy:
        oid = str(row.get("client_order_id") or "")
        if not oid:
            continue
        ts = int(row.get("ts_ns") or now_ns)
        tid = str(row.get("trade_id") or "")
        env = _envelope(row, oid)
        if oid not in sent and oid not in seen_orders:
            seen_orders.add(oid)
            missing.append(Event(event_id=reconcile_id("sent", oid), ts_ns=ts, kind=EventKind.ORDER_SENT,
                                 actor=actor, reason="RECONCILED: order in venue drop copy, not in trail",
                                 payload=_payload(row, oid), **env))
        if tid and tid not in trades:
            trades.add(tid)
            missing.append(Event(event_id=reconcile_id("fill", env["venue"], tid), ts_ns=ts,
                                 kind=EventKind.ORDER_REPORT, actor=actor,
                                 reason="RECONCILED: fill in venue drop copy, not in trail",
                                 payload=_payload(row, oid), **env))
        st = row.get("status")
        if st and (oid not in final_status or ts >= final_status[oid][0]):
            final_status[oid] = (ts, row)
    for oid, (ts, row) in sorted(final_status.items()):
        st = str(row["status"])
        if last_status.get(oid, (0, ""))[1] != st:
            missing.append(Event(event_id=reconcile_id("status", oid, st), ts_ns=ts, kind=EventKind.ORDER_REPORT,
                                 actor=actor, reason=f"RECONCILED: venue status {st}, trail had "
                                                     f"{last_status.get(oid, (0, 'nothing'))[1]}",
                                 payload={**_payload(row, oid), "trade_id": None}, **_envelope(row, oid)))
    if missing:
        ids = sorted(e.event_id for e in missing)
        missing.append(Event(event_id=reconcile_id("summary", *ids), ts_ns=max(e.ts_ns for e in missing),
                             kind=EventKind.RECONCILE, actor=actor, reason=f"RECONCILED: {len(ids)} events backfilled",
                             payload={"reconciled": True, "backfilled": ids}))
    missing.sort(key=lambda e: (e.ts_ns, e.event_id))
    return missing


def _envelope(row: Mapping[str, Any], oid: str) -> dict[str, str]:
    return {
        "decision_id": str(row.get("decision_id") or oid.split(":")[0]),
        "venue": str(row.get("venue") or ""),
        "instrument": str(row.get("instrument") or ""),
        "account": str(row.get("account") or ""),
        "strategy": str(row.get("strategy") or ""),
    }


def _payload(row: Mapping[str, Any], oid: str) -> dict[str, Any]:
    p = {k: (str(v) if not isinstance(v, (str, int, float, bool, type(None))) else v) for k, v in row.items()}
    p["client_order_id"] = oid
    p["reconciled"] = True
    return p


# ------------------------------------------------------------------------ against the venues
@dataclass(frozen=True)
class TrailFill:
    """A fill as the trail holds it: an ``ORDER_REPORT`` with a trade id."""

    venue: str
    client_order_id: str
    trade_id: str
    qty: int
    event_id: str
    ts_ns: int


@dataclass
class VenueReconcile:
    """One venue: its own record against the trail.

    ``missing_fills``: fills at the venue the trail lacks. ``unknown_fills``: fills in the trail
    the venue never made (only trail fills in scope: of an order the venue knows, or stored at or
    after ``since_ns`` / the trail's first event of an order the venue knows; the others,
    from before the venue's record begins, are counted in ``out_of_scope_fills``).
    ``duplicate_fills``: fills stored more than once in the trail (``(client_order_id,
    trade_id)``, number of events). ``orders_without_sent``: orders at the venue with no
    ``ORDER_SENT`` in the trail. ``duplicate_order_ids``: client order ids the venue holds as
    more than one order. ``status_differs``: orders whose final status at the venue is not the
    trail's last (``(client_order_id, venue status, trail status)``).
    """

    venue: str
    sources: list[str]
    orders: int = 0
    fills: int = 0
    trail_fills: int = 0
    missing_fills: list[VenueFill] = field(default_factory=list)
    unknown_fills: list[TrailFill] = field(default_factory=list)
    duplicate_fills: list[tuple[str, str, int]] = field(default_factory=list)
    orders_without_sent: list[VenueOrder] = field(default_factory=list)
    duplicate_order_ids: list[str] = field(default_factory=list)
    status_differs: list[tuple[str, str, str]] = field(default_factory=list)
    out_of_scope_fills: int = 0
    unreadable: int = 0
    torn_bytes: int = 0

    def counts(self) -> dict[str, int]:
        return {"missing_fills": len(self.missing_fills), "unknown_fills": len(self.unknown_fills),
                "duplicate_fills": len(self.duplicate_fills), "orders_without_sent": len(self.orders_without_sent),
                "duplicate_order_ids": len(self.duplicate_order_ids), "status_differs": len(self.status_differs)}

    @property
    def ok(self) -> bool:
        return not any(self.counts().values())


#: what a backfill (``--write``) repairs; the rest can only be reported
BACKFILLABLE = ("missing_fills", "orders_without_sent", "status_differs")


@dataclass
class ReconcileReport:
    """The trail against every venue's own record (:func:`compare_with_venues`).

    ``venues``: per venue code. ``backfill``: the events that would complete the trail (deterministic
    ids, ``reason`` ``RECONCILED: ...``, plus one ``RECONCILE`` summary), what ``--write`` stores.
    """

    venues: dict[str, VenueReconcile] = field(default_factory=dict)
    backfill: list[Event] = field(default_factory=list)
    trail_events: int = 0

    def counts(self) -> dict[str, int]:
        """Totals over the venues, by kind of mismatch (see :class:`VenueReconcile`)."""
        tot = dict.fromkeys(("missing_fills", "unknown_fills", "duplicate_fills", "orders_without_sent",
                             "duplicate_order_ids", "status_differs"), 0)
        for v in self.venues.values():
            for k, n in v.counts().items():
                tot[k] += n
        return tot

    @property
    def ok(self) -> bool:
        return not any(self.counts().values())

    def unrepairable(self) -> dict[str, int]:
        """Mismatches a backfill cannot repair (the trail is append-only; the venue is the venue)."""
        return {k: n for k, n in self.counts().items() if k not in BACKFILLABLE and n}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "counts": self.counts(), "trail_events": self.trail_events,
            "venues": {code: {
                "sources": v.sources, "orders": v.orders, "fills": v.fills, "trail_fills": v.trail_fills,
                "counts": v.counts(), "out_of_scope_fills": v.out_of_scope_fills, "unreadable": v.unreadable,
                "torn_bytes": v.torn_bytes,
                "missing_fills": [asdict(f) for f in v.missing_fills],
                "unknown_fills": [asdict(f) for f in v.unknown_fills],
                "duplicate_fills": [{"client_order_id": o, "trade_id": t, "events": n} for o, t, n in v.duplicate_fills],
                "orders_without_sent": [asdict(o) for o in v.orders_without_sent],
                "duplicate_order_ids": v.duplicate_order_ids,
                "status_differs": [{"client_order_id": o, "venue": a, "trail": b} for o, a, b in v.status_differs],
            } for code, v in sorted(self.venues.items())},
            "backfill": [e.model_dump(mode="json") for e in self.backfill],
        }


def _trade_id(e: Event) -> str:
    p = e.payload
    fill = p.get("fill")
    return str(p.get("trade_id") or (fill.get("trade_id") if isinstance(fill, Mapping) else "") or "")


def _fill_qty(e: Event) -> int:
    p = e.payload
    for k in ("fill_qty", "qty"):
        try:
            if p.get(k) not in (None, ""):
                return int(p[k])
        except (TypeError, ValueError):
            pass
    return 0


def compare_with_venues(trail: Iterable[Event], records: Iterable[VenueRecord], *, since_ns: int | None = None,
                        now_ns: int | None = None, actor: str = "reconciler") -> ReconcileReport:
    """The trail against the venues' own records; pure (no files, no Ray).

    Parameters
    ----------
    trail
        The ledger's events (at least every ``ORDER_SENT`` and ``ORDER_REPORT``; others are skipped).
    records
        The venues' records (:meth:`VenueRecordSource.load`); several of one venue code are merged.
    since_ns
        Trail fills stored before this (trail time) and of orders the venue does not know are not
        expected at the venue (an earlier run; a simulated venue's journal starts afresh with
        each deployment). Default: the trail's first event of an order the venue knows.
    now_ns
        Time for backfilled events whose venue row has none.

    Returns
    -------
    ReconcileReport
        Per venue the mismatches (:class:`VenueReconcile`), and the backfill events.
    """
    import time as _time

    now = _time.time_ns() if now_ns is None else now_ns
    merged: dict[str, VenueReconcile] = {}
    v_orders: dict[str, dict[str, VenueOrder]] = {}
    v_fills: dict[str, dict[tuple[str, str], VenueFill]] = {}
    for rec in records:
        vr = merged.setdefault(rec.venue, VenueReconcile(venue=rec.venue, sources=[]))
        vr.sources.append(rec.source)
        vr.unreadable += rec.unreadable
        vr.torn_bytes += rec.torn_bytes
        vr.duplicate_order_ids.extend(rec.duplicate_order_ids)
        os_ = v_orders.setdefault(rec.venue, {})
        for o in rec.orders:
            if o.client_order_id in os_:  # one id in two records of one venue (two sessions): held twice
                vr.duplicate_order_ids.append(o.client_order_id)
            os_[o.client_order_id] = o
        fs = v_fills.setdefault(rec.venue, {})
        for f in rec.fills:
            fs.setdefault((f.client_order_id, f.trade_id), f)
    venue_of_order = {oid: code for code, os_ in v_orders.items() for oid in os_}

    trail = list(trail)
    events = [e for e in trail if e.kind in (EventKind.ORDER_SENT, EventKind.ORDER_REPORT)]
    # the gateways' drop copies: the venue's word as the gateway recorded it. A fill recorded
    # there is in the trail even when the coordinator only learned it as a cumulative quantity
    # (a status answer after the fill's own answer was lost); repeats of a drop copy (a restarted
    # gateway records the venue's executions again) are not double bookings
    dropped: set[tuple[str, str, str]] = set()
    drop_status: dict[str, tuple[int, str]] = {}  # the venue's last word on each order, as the gateway recorded it
    for e in trail:
        if e.kind is EventKind.VENUE_DROP_COPY:
            rep = e.payload.get("report")
            if isinstance(rep, Mapping) and rep.get("client_order_id") and rep.get("status"):
                oid_ = str(rep["client_order_id"])
                if oid_ not in drop_status or e.ts_ns >= drop_status[oid_][0]:
                    drop_status[oid_] = (e.ts_ns, str(rep["status"]))
            fill = rep.get("fill") if isinstance(rep, Mapping) else None
            if isinstance(fill, Mapping) and fill.get("trade_id"):
                dropped.add((str(rep.get("venue") or e.venue), str(rep.get("client_order_id") or ""),
                             str(fill["trade_id"])))
    sent: set[str] = set()
    first_ts: dict[str, int] = {}
    last_status: dict[str, tuple[int, str]] = {}
    fills_by_key: dict[tuple[str, str, str], list[TrailFill]] = {}
    strategy_of: dict[str, str] = {}
    for e in events:
        oid = str(e.payload.get("client_order_id") or "")
        if not oid:
            continue
        if e.strategy and e.decision_id:
            strategy_of.setdefault(e.decision_id, e.strategy)
        first_ts[oid] = min(first_ts.get(oid, e.ts_ns), e.ts_ns)
        if e.kind is EventKind.ORDER_SENT:
            sent.add(oid)
            continue
        st = e.payload.get("status")
        if st and (oid not in last_status or e.ts_ns >= last_status[oid][0]):
            last_status[oid] = (e.ts_ns, str(st))
        tid = _trade_id(e)
        if tid and e.payload.get("repeat"):
            # a report of a trade the coordinator had already booked, recorded as a repeat
            # (fill_qty 0): present in the trail, not a second booking
            dropped.add((venue_of_order.get(oid) or e.venue, oid, tid))
        elif tid:
            venue = venue_of_order.get(oid) or e.venue
            fills_by_key.setdefault((venue, oid, tid), []).append(
                TrailFill(venue, oid, tid, _fill_qty(e), e.event_id, e.ts_ns))

    for oid, (ts, st) in drop_status.items():
        if oid not in last_status or ts >= last_status[oid][0]:
            last_status[oid] = (ts, st)

    backfill: list[Event] = []
    for code, vr in sorted(merged.items()):
        orders, fills = v_orders[code], v_fills[code]
        vr.orders, vr.fills = len(orders), len(fills)
        vr.duplicate_order_ids = sorted(set(vr.duplicate_order_ids))
        known_ts = [first_ts[o] for o in orders if o in first_ts]
        start = since_ns if since_ns is not None else (min(known_ts) if known_ts else None)
        trail_keys: set[tuple[str, str]] = set()
        for (venue, oid, tid), tfs in sorted(fills_by_key.items()):
            if venue != code:
                continue
            first = min(tfs, key=lambda f: (f.ts_ns, f.event_id))
            if oid not in orders and (start is None or first.ts_ns < start):
                vr.out_of_scope_fills += 1
                continue
            vr.trail_fills += 1
            trail_keys.add((oid, tid))
            if len({f.event_id for f in tfs}) > 1:
                vr.duplicate_fills.append((oid, tid, len({f.event_id for f in tfs})))
            if (oid, tid) not in fills:
                vr.unknown_fills.append(first)
        trail_keys |= {(oid, tid) for venue, oid, tid in dropped if venue == code}
        vr.missing_fills = sorted((f for k, f in fills.items() if k not in trail_keys),
                                  key=lambda f: (f.ts_ns, f.client_order_id, f.trade_id))
        vr.orders_without_sent = sorted((o for o in orders.values() if o.client_order_id not in sent),
                                        key=lambda o: (o.ts_ns, o.client_order_id))
        for oid, o in sorted(orders.items()):
            trail_st = last_status.get(oid, (0, ""))[1]
            if o.status and o.status != trail_st:
                vr.status_differs.append((oid, o.status, trail_st))
        backfill += _backfill(vr, orders, strategy_of, now, actor)
    if backfill:
        ids = sorted(e.event_id for e in backfill)
        backfill.append(Event(event_id=reconcile_id("summary", *ids), ts_ns=max(e.ts_ns for e in backfill),
                              kind=EventKind.RECONCILE, actor=actor,
                              reason=f"RECONCILED: {len(ids)} events backfilled from the venues' records",
                              payload={"reconciled": True, "backfilled": ids,
                                       "sources": [s for v in merged.values() for s in v.sources]}))
    backfill.sort(key=lambda e: (e.ts_ns, e.event_id))
    return ReconcileReport(venues=merged, backfill=backfill, trail_events=len(events))


def _backfill(vr: VenueReconcile, orders: Mapping[str, VenueOrder], strategy_of: Mapping[str, str], now: int,
              actor: str) -> list[Event]:
    src = ", ".join(vr.sources)
    out: list[Event] = []

    def env(oid: str, decision_id: str, instrument: str, account: str) -> dict[str, str]:
        did = decision_id or oid.split(":")[0]
        return {"decision_id": did, "venue": vr.venue, "instrument": instrument, "account": account,
                "strategy": strategy_of.get(did, "")}

    for o in vr.orders_without_sent:
        out.append(Event(
            event_id=reconcile_id("sent", o.client_order_id), ts_ns=o.ts_ns or now, kind=EventKind.ORDER_SENT,
            actor=actor, reason="RECONCILED: order at the venue, no ORDER_SENT in the trail",
            payload={"client_order_id": o.client_order_id, "leg_name": o.leg, "attempt": o.attempt, "side": o.side,
                     "qty": o.qty, "price": o.price, "order_type": o.order_type, "tif": o.tif,
                     "venue_order_id": o.venue_order_id, "reconciled": True, "source": src},
            **env(o.client_order_id, o.decision_id, o.instrument, o.account)))
    for f in vr.missing_fills:
        o = orders.get(f.client_order_id)
        out.append(Event(
            event_id=reconcile_id("fill", vr.venue, f.client_order_id, f.trade_id), ts_ns=f.ts_ns or now,
            kind=EventKind.ORDER_REPORT, actor=actor, reason="RECONCILED: fill at the venue, not in the trail",
            payload={"client_order_id": f.client_order_id, "report_kind": "FILL", "trade_id": f.trade_id,
                     "fill_qty": f.qty, "fill_price": f.price, "qty": f.qty, "price": f.price, "side": f.side,
                     "status": f.status, "venue_order_id": f.venue_order_id, "reconciled": True, "source": src},
            **env(f.client_order_id, f.decision_id or (o.decision_id if o else ""), f.instrument or
                  (o.instrument if o else ""), f.account or (o.account if o else ""))))
    for oid, st, was in vr.status_differs:
        o = orders[oid]
        last_fill = max((f.ts_ns for f in vr.missing_fills if f.client_order_id == oid), default=0)
        out.append(Event(
            event_id=reconcile_id("status", oid, st), ts_ns=max(o.ts_ns, last_fill) or now,
            kind=EventKind.ORDER_REPORT, actor=actor,
            reason=f"RECONCILED: venue status {st}, trail had {was or 'nothing'}",
            payload={"client_order_id": oid, "report_kind": "STATUS", "status": st, "filled": o.filled_qty,
                     "trade_id": None, "reconciled": True, "source": src},
            **env(oid, o.decision_id, o.instrument, o.account)))
    return out


def reconcile_against_venues(ledger_dir: str | Path, venue_records: Iterable[VenueRecordSource | VenueRecord], *,
                             since_ns: int | None = None, now_ns: int | None = None,
                             actor: str = "reconciler") -> ReconcileReport:
    """Read the ledger in ``ledger_dir`` (read-only; a snapshot copy if a deployment holds it)
    and compare it with each venue's own record.

    Parameters
    ----------
    ledger_dir
        Directory of ``shard-<n>.duckdb`` files.
    venue_records
        :class:`~xmc_actors.ledger.venue_records.VenueRecordSource` objects (e.g.
        ``JournalRecordSource(state_dir / "gateway-LME.venue", venue="LME")``,
        ``journal_sources(state_dir)``, ``gateway_record_source(handle, "LME")``) or records
        already loaded.
    since_ns, now_ns, actor
        As :func:`compare_with_venues`.

    Returns
    -------
    ReconcileReport
        ``report.counts()`` totals ``missing_fills``, ``unknown_fills``, ``duplicate_fills``,
        ``orders_without_sent``, ``duplicate_order_ids``, ``status_differs``; ``report.ok``;
        per venue ``report.venues[code]``; ``report.backfill`` (nothing is written).

    Raises
    ------
    LedgerFileError
        A shard that cannot be read (missing, truncated, corrupt, another schema version).
    VenueRecordError
        A venue record that cannot be read.
    """
    from .audit import AuditReader

    records = [r if isinstance(r, VenueRecord) else r.load() for r in venue_records]
    with AuditReader(ledger_dir) as reader:
        trail = reader.events(kinds=["ORDER_SENT", "ORDER_REPORT", "VENUE_DROP_COPY"])
    return compare_with_venues(trail, records, since_ns=since_ns, now_ns=now_ns, actor=actor)
