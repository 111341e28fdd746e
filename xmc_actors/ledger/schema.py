"""The ledger's table layout and the codec from :class:`~xmc_actors.model.events.Event` to rows.

Typed columns hold what people filter on (the envelope of ``model.events.Event`` plus two
fields lifted from the payload: ``order_id`` and ``outcome``); the rest of the payload is kept
as msgpack bytes. A batch travels from writers to the ledger as a ``pyarrow.Table`` with
exactly :data:`ARROW_SCHEMA` (encoding happens on the writer's side, off the shard's critical
section), sent as the bytes of one Arrow IPC stream (:func:`batch_to_wire`): Ray serialises a
table column by column in Python, about 1 ms for one of ours on a two-core host, in the
writer's process and holding its GIL (on the coordinator, while pairs are placed); the IPC
bytes take about 12 us and Ray passes bytes as they are.

Bad input is never dropped silently: :func:`encode_events` returns the rows it refused with the
field and the reason, and :func:`bad_input_event` turns a refusal into a ``BAD_INPUT`` event
that is written instead.
"""
from __future__ import annotations

import datetime as _dt
import gc
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from operator import itemgetter
from typing import Any, Iterable, Mapping

import msgpack
import pyarrow as pa
from pydantic import BaseModel, ValidationError

from ..model.events import Event, EventKind

SCHEMA_VERSION = 1
TABLE = "events"
KINDS: frozenset[str] = frozenset(k.value for k in EventKind)
TERMINAL_OUTCOMES = ("HEDGED", "ROLLED_BACK", "ESCALATED", "REFUSED")

#: (column, DuckDB type, Arrow type). Order matters: it is the table's column order.
COLUMNS: tuple[tuple[str, str, pa.DataType], ...] = (
    ("event_id", "VARCHAR NOT NULL", pa.string()),
    ("ts_ns", "BIGINT NOT NULL", pa.int64()),
    ("decision_id", "VARCHAR", pa.string()),
    ("parent_id", "VARCHAR", pa.string()),
    ("kind", "VARCHAR NOT NULL", pa.string()),
    ("strategy", "VARCHAR", pa.string()),
    ("account", "VARCHAR", pa.string()),
    ("venue", "VARCHAR", pa.string()),
    ("instrument", "VARCHAR", pa.string()),
    ("actor", "VARCHAR", pa.string()),
    ("reason", "VARCHAR", pa.string()),
    ("latency_us", "DOUBLE", pa.float64()),
    ("order_id", "VARCHAR", pa.string()),
    ("outcome", "VARCHAR", pa.string()),
    ("payload", "BLOB", pa.binary()),
)
COLUMN_NAMES = tuple(c[0] for c in COLUMNS)
ARROW_SCHEMA = pa.schema([pa.field(n, t, nullable=(n not in ("event_id", "ts_ns", "kind"))) for n, _, t in COLUMNS])
DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    + ", ".join(f"{n} {t}" for n, t, _ in COLUMNS)
    + ", stored_ns BIGINT NOT NULL)"
)
META_DDL = "CREATE TABLE IF NOT EXISTS xmc_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)"


# ------------------------------------------------------------------------------------ payload
def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    raise TypeError(f"cannot encode a {type(obj).__name__}")


_packer = msgpack.Packer(default=_default, use_bin_type=True, datetime=False)


def pack_payload(payload: Mapping[str, Any]) -> bytes:
    """msgpack bytes of a payload. Decimals become strings, models become their JSON dump."""
    return _packer.pack(payload)


def unpack_payload(blob: bytes | None) -> dict[str, Any]:
    """The payload dict back from its msgpack bytes (``{}`` for an empty or null payload)."""
    if not blob:
        return {}
    return msgpack.unpackb(blob, raw=False, strict_map_key=False)


_to_json = json.JSONEncoder(default=lambda b: b.hex() if isinstance(b, bytes) else str(b), ensure_ascii=False,
                            separators=(",", ":")).encode


def payload_json(blob: bytes | None) -> str:
    """The payload as a JSON string (bytes shown as hex). Called once per event by an export:
    the encoder is built once."""
    if not blob:
        return "{}"
    return _to_json(msgpack.unpackb(blob, raw=False, strict_map_key=False))


def lift(kind: str, payload: Mapping[str, Any]) -> tuple[str, str]:
    """The ``(order_id, outcome)`` typed columns lifted from a payload.

    ``order_id`` is ``payload["client_order_id"]``; ``outcome`` is the first present of
    ``payload["outcome"]``, ``payload["state"]`` (pair state changes), ``payload["status"]``
    (order reports) or ``payload["decision"]`` (risk decisions).
    """
    oid = payload.get("client_order_id") or ""
    out = payload.get("outcome") or payload.get("state") or payload.get("status") or payload.get("decision") or ""
    if isinstance(out, Enum):
        out = out.value
    return (oid if isinstance(oid, str) else str(oid)), (out if isinstance(out, str) else str(out))


# ------------------------------------------------------------------------------------- refusals
@dataclass(frozen=True)
class Refusal:
    """An input the ledger would not store as given: which one, which field, why."""

    event_id: str
    field: str
    reason: str
    raw: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" + (f" (event_id={self.event_id})" if self.event_id else "")


def bad_input_event(r: Refusal, *, ts_ns: int, actor: str) -> Event:
    """The ``BAD_INPUT`` event recorded in place of a refused input (deterministic id)."""
    h = hashlib.blake2b(f"{r.event_id}|{r.field}|{r.reason}|{r.raw}".encode(), digest_size=15).hexdigest()
    return Event(event_id=f"bad{h}", ts_ns=ts_ns, kind=EventKind.BAD_INPUT, actor=actor,
                 reason=f"{r.field}: {r.reason}",
                 payload={"refused_event_id": r.event_id, "field": r.field, "raw": r.raw[:2000]})


def _coerce(obj: Any) -> tuple[Event | None, Refusal | None]:
    """An Event from an Event or a mapping; a Refusal naming the first bad field otherwise."""
    if isinstance(obj, Event):
        return obj, None
    raw = repr(obj)[:2000]
    if isinstance(obj, Mapping):
        eid = obj.get("event_id")
        eid = eid if isinstance(eid, str) else ""
        try:
            return Event.model_validate(dict(obj)), None
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err.get("loc", ())) or "event"
            return None, Refusal(eid, field, err.get("msg", "invalid"), raw)
    return None, Refusal("", "event", f"not an Event or a mapping: {type(obj).__name__}", raw)


# ---------------------------------------------------------------------------------------- codec
@dataclass
class EncodedBatch:
    """A batch ready for the store: the Arrow table and what was refused on the way."""

    table: pa.Table
    refused: list[Refusal]


_ENVELOPE = itemgetter("event_id", "ts_ns", "decision_id", "parent_id", "kind", "strategy", "account", "venue",
                       "instrument", "actor", "reason", "latency_us", "payload")


def encode_events(events: Iterable[Any]) -> EncodedBatch:
    """Encode events (``Event`` objects or mappings of their fields) into an Arrow table.

    Inputs that are not valid events, or whose payload cannot be encoded, are returned in
    ``refused`` with the field and the reason; the rest are encoded in order.
    """
    events = events if isinstance(events, list) else list(events)
    refused: list[Refusal] = []
    gc_was_on = gc.isenabled()
    gc.disable()  # the encoder makes many small acyclic objects; collecting them is wasted time
    try:
        if not all(type(e) is Event for e in events):
            ok = []
            for obj in events:
                e, r = _coerce(obj)
                if e is None:
                    refused.append(r)  # type: ignore[arg-type]
                else:
                    ok.append(e)
            events = ok
        rows = [_ENVELOPE(e.__dict__) for e in events]
        pack = _packer.pack
        try:
            blobs = [pack(r[12]) for r in rows]
        except Exception:  # noqa: BLE001 - find the culprits one by one, refuse them with the reason
            _packer.reset()
            blobs, good = [], []
            for r in rows:
                try:
                    blobs.append(pack(r[12]))
                    good.append(r)
                except Exception as x:  # noqa: BLE001
                    _packer.reset()
                    refused.append(Refusal(r[0], "payload", f"cannot encode: {x}", repr(r[12])[:2000]))
            rows = good
        if rows:
            (c_id, c_ts, c_dec, c_par, c_kind, c_str, c_acc, c_ven, c_ins, c_act, c_rea, c_lat,
             c_pay) = zip(*rows)
            kinds = [k.value for k in c_kind]
            lifted = [lift(k, p) if p else _NO_LIFT for k, p in zip(kinds, c_pay)]
            c_oid, c_out = zip(*lifted)
            cols = [c_id, c_ts, c_dec, c_par, kinds, c_str, c_acc, c_ven, c_ins, c_act, c_rea, c_lat, c_oid,
                    c_out, blobs]
            arrays = [pa.array(c, type=t) for c, (_, _, t) in zip(cols, COLUMNS)]
            table = pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)
        else:
            table = ARROW_SCHEMA.empty_table()
    finally:
        if gc_was_on:
            gc.enable()
    return EncodedBatch(table, refused)


_NO_LIFT = ("", "")


def batch_to_wire(table: pa.Table) -> bytes:
    """A batch as the bytes of one Arrow IPC stream (what writers send to a shard)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def batch_from_wire(data: bytes | bytearray | memoryview) -> pa.Table:
    """The table of :func:`batch_to_wire`; ``ValueError`` naming why for anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"expected the bytes of an Arrow IPC stream, got {type(data).__name__}")
    try:
        with pa.ipc.open_stream(pa.py_buffer(data)) as r:
            return r.read_all()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as e:
        raise ValueError(f"not an Arrow IPC stream ({len(data)} bytes): {str(e).splitlines()[0]}") from None


def rows_to_events(table: pa.Table) -> list[Event]:
    """Events back from ledger rows (an Arrow table with the ledger's columns)."""
    d = table.to_pydict()
    out = []
    for i in range(table.num_rows):
        out.append(Event(
            event_id=d["event_id"][i], ts_ns=d["ts_ns"][i], decision_id=d["decision_id"][i] or "",
            parent_id=d["parent_id"][i] or "", kind=EventKind(d["kind"][i]), strategy=d["strategy"][i] or "",
            account=d["account"][i] or "", venue=d["venue"][i] or "", instrument=d["instrument"][i] or "",
            actor=d["actor"][i] or "", reason=d["reason"][i] or "", latency_us=d["latency_us"][i],
            payload=unpack_payload(d["payload"][i]),
        ))
    return out
