"""Reconciliation: the events missing from the trail, rebuilt from the venues' drop copy.

Gateways write what the venue reported as ``VENUE_DROP_COPY`` events (payload: one drop-copy
row). After a crash some ``ORDER_SENT`` / ``ORDER_REPORT`` events may never have reached the
ledger. :func:`reconcile` compares the two and returns the missing events, marked as
reconciled (``reason`` starts with ``RECONCILED``, ``payload["reconciled"] = True``) and with
deterministic ids, so running it twice writes nothing new.

A drop-copy row is a mapping with ``client_order_id`` and, for a fill, ``trade_id``; other keys
used when present: ``venue``, ``instrument``, ``status``, ``side``, ``qty``, ``price``,
``filled_qty``, ``ts_ns``, ``decision_id``, ``leg``, ``account``, ``strategy``. A gateway records
the venue's report whole (payload ``{"report": <ExecutionReport as JSON>}``);
:func:`drop_copy_rows` flattens it into such a row.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping

from ..model.events import Event, EventKind


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
