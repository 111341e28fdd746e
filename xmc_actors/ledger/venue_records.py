"""What the venues themselves say happened: their orders and fills, for reconciliation.

The trail's own ``VENUE_DROP_COPY`` events are written by the gateways through the same ledger
client as everything else, so a fill that never reached the ledger usually took its drop copy
with it: checking the trail against those events checks the trail against itself.
Reconciliation (:func:`~xmc_actors.ledger.reconcile.reconcile_against_venues`) therefore reads
each venue's *own* record, through a :class:`VenueRecordSource`:

- :class:`JournalRecordSource`: the simulated venue's journal ``<state_dir>/<gateway>.venue``
  (:mod:`xmc_actors.venues.journal`), a file that outlives the gateway process. Read only: the
  file is never opened for writing, so it can be read while the gateway appends to it.
- :class:`DropCopyRecordSource`: rows of a gateway's ``drop_copy()`` actor method (a running
  deployment; :func:`gateway_record_source` asks the actor).

A source returns a :class:`VenueRecord`: the venue's orders (:class:`VenueOrder`) and fills
(:class:`VenueFill`), each with ``client_order_id``, ``trade_id``, ``qty``, ``price`` and
``status``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence, runtime_checkable

__all__ = [
    "VenueOrder", "VenueFill", "VenueRecord", "VenueRecordSource", "JournalRecordSource", "DropCopyRecordSource",
    "gateway_record_source", "journal_sources", "sources_from_config", "VenueRecordError",
]


class VenueRecordError(Exception):
    """A venue record that cannot be read (the message names the file or gateway and why)."""


@dataclass(frozen=True)
class VenueOrder:
    """One order as the venue holds it (its final status and cumulative fill)."""

    venue: str
    client_order_id: str
    venue_order_id: str = ""
    instrument: str = ""
    account: str = ""
    side: str = ""
    qty: int = 0
    price: str | None = None
    order_type: str = ""
    tif: str = ""
    decision_id: str = ""
    leg: str = ""
    attempt: int | None = None
    status: str = ""
    filled_qty: int = 0
    ts_ns: int = 0  # first time the record mentions it (the gateway's clock)


@dataclass(frozen=True)
class VenueFill:
    """One execution as the venue made it."""

    venue: str
    client_order_id: str
    trade_id: str
    qty: int
    price: str
    side: str = ""
    instrument: str = ""
    account: str = ""
    decision_id: str = ""
    leg: str = ""
    status: str = ""  # the order's status right after this fill
    venue_order_id: str = ""
    ts_ns: int = 0


@dataclass
class VenueRecord:
    """A venue's own record of our orders and fills.

    ``duplicate_order_ids``: client order ids the venue accepted as more than one order (the
    venue should refuse a second order under an id it holds). ``unreadable``: records of the
    source that could not be read (counted, never guessed at); ``torn_bytes``: a record cut
    short at the end of a journal (a crash in the middle of a write; ignored, as the venue
    itself ignores it on restart).
    """

    venue: str
    source: str
    orders: list[VenueOrder] = field(default_factory=list)
    fills: list[VenueFill] = field(default_factory=list)
    duplicate_order_ids: list[str] = field(default_factory=list)
    unreadable: int = 0
    torn_bytes: int = 0


@runtime_checkable
class VenueRecordSource(Protocol):
    """Where a venue's own record comes from. ``describe`` names it in reports and errors."""

    venue: str

    def describe(self) -> str: ...

    def load(self) -> VenueRecord: ...


class _Builder:
    """Orders and fills from venue drop-copy rows (the sim's row format, also accepted with the
    ``qty``/``price`` keys of a flattened gateway report)."""

    def __init__(self, venue: str, source: str) -> None:
        self.rec = VenueRecord(venue=venue, source=source)
        self.orders: dict[str, dict[str, Any]] = {}
        self.order_entries: dict[str, set[str]] = {}
        self.fills: dict[tuple[str, str], VenueFill] = {}

    def order(self, req: Mapping[str, Any], venue_order_id: str, ts_ns: int = 0) -> None:
        oid = str(req.get("client_order_id") or "")
        if not oid:
            self.rec.unreadable += 1
            return
        entries = self.order_entries.setdefault(oid, set())
        entries.add(venue_order_id or f"#{len(entries)}")
        o = self.orders.setdefault(oid, {"client_order_id": oid, "ts_ns": ts_ns})
        o.update(venue_order_id=venue_order_id or o.get("venue_order_id", ""),
                 instrument=str(req.get("instrument") or ""), account=str(req.get("account") or ""),
                 side=str(req.get("side") or ""), qty=int(req.get("qty") or 0),
                 price=None if req.get("price") in (None, "", "None") else str(req.get("price")),
                 order_type=str(req.get("order_type") or ""), tif=str(req.get("tif") or ""),
                 decision_id=str(req.get("decision_id") or ""), leg=str(req.get("leg") or ""),
                 attempt=req.get("attempt"))

    def row(self, row: Mapping[str, Any]) -> None:
        oid = str(row.get("client_order_id") or "")
        if not oid:
            self.rec.unreadable += 1
            return
        ts = int(row.get("ts_ns") or 0)
        o = self.orders.setdefault(oid, {"client_order_id": oid, "ts_ns": ts})
        if not o.get("ts_ns"):
            o["ts_ns"] = ts
        if row.get("venue_order_id"):
            self.order_entries.setdefault(oid, set()).add(str(row["venue_order_id"]))
        for k_row, k in (("venue_order_id", "venue_order_id"), ("instrument", "instrument"), ("account", "account"),
                         ("side", "side"), ("decision_id", "decision_id"), ("leg", "leg")):
            if row.get(k_row) and not o.get(k):
                o[k] = str(row[k_row])
        if row.get("order_qty") and not o.get("qty"):
            o["qty"] = int(row["order_qty"])
        if row.get("status"):
            o["status"] = str(row["status"])
        if row.get("filled_qty") is not None:
            o["filled_qty"] = max(int(row["filled_qty"] or 0), int(o.get("filled_qty") or 0))
        tid = str(row.get("trade_id") or "")
        if tid and (oid, tid) not in self.fills:
            qty = row.get("fill_qty") if row.get("fill_qty") not in (None, "") else row.get("qty")
            px = row.get("fill_price") if row.get("fill_price") not in (None, "") else row.get("price")
            self.fills[(oid, tid)] = VenueFill(
                venue=self.rec.venue, client_order_id=oid, trade_id=tid, qty=int(qty or 0), price=str(px or ""),
                side=str(row.get("side") or o.get("side") or ""), instrument=str(row.get("instrument") or ""),
                account=str(row.get("account") or ""), decision_id=str(row.get("decision_id") or ""),
                leg=str(row.get("leg") or ""), status=str(row.get("status") or ""),
                venue_order_id=str(row.get("venue_order_id") or ""), ts_ns=ts)

    def done(self) -> VenueRecord:
        names = VenueOrder.__dataclass_fields__
        self.rec.orders = [VenueOrder(venue=self.rec.venue, **{k: v for k, v in o.items() if k in names})
                           for o in self.orders.values()]
        self.rec.fills = list(self.fills.values())
        self.rec.duplicate_order_ids = sorted(oid for oid, ids in self.order_entries.items() if len(ids) > 1)
        return self.rec


def _venue_from_ids(records: Iterable[Sequence[Any]]) -> str:
    """The simulated venue's code, from the ids it gives (``<VENUE>-O<n>``, ``<VENUE>-T<n>``)."""
    for rec in records:
        try:
            if rec[0] == "O" and "-O" in str(rec[2]):
                return str(rec[2]).rsplit("-O", 1)[0]
            if rec[0] == "R" and "-T" in str(rec[1].get("trade_id") or ""):
                return str(rec[1]["trade_id"]).rsplit("-T", 1)[0]
        except (IndexError, TypeError, AttributeError):
            continue
    return ""


class JournalRecordSource:
    """The simulated venue's journal (``<state_dir>/<gateway>.venue``), read without writing.

    Parameters
    ----------
    path
        The journal file.
    venue
        The venue code the trail uses (``LME``). Default: read from the ids the venue gave.
    """

    def __init__(self, path: str | Path, venue: str = "") -> None:
        self.path = Path(path)
        self.venue = venue

    def describe(self) -> str:
        return f"journal {self.path}"

    def load(self) -> VenueRecord:
        from ..venues.journal import VenueJournal

        try:
            records, torn = VenueJournal.read(self.path)
        except OSError as e:
            raise VenueRecordError(f"{self.path}: cannot read venue journal: {e.strerror or e}") from None
        if not records and torn:
            raise VenueRecordError(f"{self.path}: not a venue journal (no readable record in {torn} bytes)")
        venue = self.venue or _venue_from_ids(records) or self.path.stem
        b = _Builder(venue, self.describe())
        b.rec.torn_bytes = torn
        for rec in records:
            try:
                tag = rec[0]
                if tag == "O":
                    req = json.loads(rec[1])
                    b.order(req, str(rec[2]))
                elif tag == "R":
                    if not isinstance(rec[1], Mapping):
                        raise TypeError("report row is not a mapping")
                    b.row(rec[1])
                elif tag != "D":
                    b.rec.unreadable += 1
            except (IndexError, TypeError, ValueError, KeyError):
                b.rec.unreadable += 1
        return b.done()


class DropCopyRecordSource:
    """A venue's record from drop-copy rows: a gateway's ``drop_copy()`` answer (a running
    deployment), or any list of rows in that format (``client_order_id``, ``trade_id``,
    ``fill_qty``/``qty``, ``fill_price``/``price``, ``status``, ...)."""

    def __init__(self, venue: str, rows: Iterable[Mapping[str, Any]], source: str = "") -> None:
        self.venue = venue
        self.rows = list(rows)
        self.source = source or f"drop copy of {venue}"

    def describe(self) -> str:
        return self.source

    def load(self) -> VenueRecord:
        b = _Builder(self.venue, self.describe())
        for row in self.rows:
            b.row(row)
        return b.done()


def gateway_record_source(handle: Any, venue: str, gateway: str | None = None,
                          timeout_s: float = 30.0) -> DropCopyRecordSource:
    """The record of a running gateway: its venue's drop copy, asked through the actor
    (``handle.drop_copy.remote(0, gateway=...)``). Needs Ray (``ray.init`` done)."""
    import ray

    try:
        rows = ray.get(handle.drop_copy.remote(0, gateway=gateway), timeout=timeout_s)
    except Exception as e:  # noqa: BLE001 - named and re-raised
        raise VenueRecordError(f"gateway {gateway or venue}: drop_copy() did not answer: {type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}") from e
    return DropCopyRecordSource(venue, rows, source=f"gateway {gateway or venue} drop_copy()")


def journal_sources(state_dir: str | Path) -> list[JournalRecordSource]:
    """One source per journal (``*.venue``) in ``state_dir``; venues named by their ids."""
    root = Path(state_dir)
    if not root.is_dir():
        raise VenueRecordError(f"{root}: no venue state here (directory does not exist)")
    files = sorted(root.glob("*.venue"))
    if not files:
        raise VenueRecordError(f"{root}: no venue journals (*.venue) in this directory")
    return [JournalRecordSource(f) for f in files]


def sources_from_config(cfg: Any) -> tuple[list[JournalRecordSource], list[str]]:
    """The journals of a deployment's simulated venues (gateways with ``params.state_dir``),
    and the gateways that have no record to read (why, one line each)."""
    from ..venues.journal import journal_path

    out: list[JournalRecordSource] = []
    without: list[str] = []
    for g in cfg.gateways:
        state_dir = (g.params or {}).get("state_dir") if g.adapter == "sim" else None
        if not state_dir:
            without.append(f"{g.actor_name} ({g.venue}): " + (
                "no params.state_dir, the simulated venue's memory died with its gateway" if g.adapter == "sim"
                else f"adapter {g.adapter!r} keeps no record here; ask the running gateway"))
            continue
        path = journal_path(state_dir, g.actor_name)
        if not path.exists():
            without.append(f"{g.actor_name} ({g.venue}): {path} does not exist")
            continue
        out.append(JournalRecordSource(path, venue=g.venue))
    return out, without
