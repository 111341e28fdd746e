"""Reading the audit trail back from a running deployment, through the shard actors.

DuckDB lets one process write a file and no other open it, so an actor that needs the trail
while the deployment runs (the RiskGuard after a restart, the coordinator recovering its pairs)
asks the shard actors that own the files: :meth:`LedgerShard.read_events
<xmc_actors.ledger.actor.LedgerShard.read_events>` on each, merged here by
:func:`read_trail`. The ``xmc audit`` CLI, in another process and without Ray, copies the
files instead (:mod:`.audit`).

:func:`query_events` is the query itself (no Ray): filters on the typed columns, events back
in time order (``ts_ns``, then ``event_id``) with their payloads decoded.
"""
from __future__ import annotations

import asyncio
import heapq
from typing import Any, Iterable, Sequence

import duckdb
import ray

from ..model.events import Event, EventKind
from .schema import TABLE, rows_to_events
from .store import LedgerError

_KINDS = frozenset(k.value for k in EventKind)


def check_filters(kinds: Iterable[str] | None, since_ns: int | None, decision_ids: Iterable[str] | None,
                  limit: int | None) -> tuple[list[str] | None, int | None, list[str] | None, int | None]:
    """Validated read filters; a bad one raises :class:`ValueError` naming the field and why."""
    ks = None
    if kinds is not None:
        ks = [k.value if isinstance(k, EventKind) else k for k in kinds]
        bad = [k for k in ks if k not in _KINDS]
        if bad:
            raise ValueError(f"kinds: unknown event kind(s) {', '.join(map(repr, bad))}")
    if since_ns is not None and (not isinstance(since_ns, int) or isinstance(since_ns, bool) or since_ns < 0):
        raise ValueError(f"since_ns: must be an int >= 0, got {since_ns!r}")
    ds = None
    if decision_ids is not None:
        if isinstance(decision_ids, str):
            raise ValueError("decision_ids: expected a list of decision ids, got one string")
        ds = [str(d) for d in decision_ids]
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ValueError(f"limit: must be an int >= 0, got {limit!r}")
    return ks, since_ns, ds, limit


def query_events(con: duckdb.DuckDBPyConnection, kinds: Iterable[str] | None = None, since_ns: int | None = None,
                 decision_ids: Iterable[str] | None = None, limit: int | None = None) -> list[Event]:
    """Events of one shard's ``events`` table matching every filter given, oldest first.

    Parameters
    ----------
    con
        An open connection to a shard file (the shard's own, or a read-only one on a copy).
    kinds
        Event kinds to return (``EventKind`` values); ``None``: all. An empty list returns nothing.
    since_ns
        Only events with ``ts_ns >= since_ns``.
    decision_ids
        Only events of these decision ids; ``None``: all. An empty list returns nothing.
    limit
        At most this many (the oldest ones).

    Returns
    -------
    list[Event]
        In time order: ``ts_ns``, then ``event_id``.
    """
    ks, since_ns, ds, limit = check_filters(kinds, since_ns, decision_ids, limit)
    if (ks is not None and not ks) or (ds is not None and not ds) or limit == 0:
        return []
    conds: list[str] = []
    params: list[Any] = []
    if ks is not None:
        conds.append(f"kind IN ({', '.join('?' for _ in ks)})")
        params += ks
    if since_ns is not None:
        conds.append("ts_ns >= ?")
        params.append(since_ns)
    if ds is not None:
        conds.append(f"decision_id IN ({', '.join('?' for _ in ds)})")
        params += ds
    where = (" WHERE " + " AND ".join(conds)) if conds else ""
    sql = (f"SELECT event_id, ts_ns, decision_id, parent_id, kind, strategy, account, venue, instrument, actor, "
           f"reason, latency_us, payload FROM {TABLE}{where} ORDER BY ts_ns, event_id")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return rows_to_events(con.sql(sql, params=params).to_arrow_table())


def merge_in_time_order(parts: Iterable[Sequence[Event]], limit: int | None = None) -> list[Event]:
    """One list in time order (``ts_ns``, then ``event_id``) from lists each already in that order."""
    merged = heapq.merge(*parts, key=lambda e: (e.ts_ns, e.event_id))
    out: list[Event] = []
    for e in merged:
        if limit is not None and len(out) >= limit:
            break
        out.append(e)
    return out


async def read_trail(shards: Sequence[Any], kinds: list[str] | None = None, since_ns: int | None = None,
                     decision_ids: list[str] | None = None, limit: int | None = None,
                     timeout_s: float | None = 30.0) -> list[Event]:
    """The audit trail of every shard, merged in time order (``ts_ns``, then ``event_id``).

    Each shard first commits what it holds queued, so an event acknowledged before this call
    (and every batch whose ``append`` reached the shard before this call) is returned.

    Parameters
    ----------
    shards
        The ledger shard actors (``ledger-<n>`` handles), all of them: the trail of a missing
        shard would be silently missing.
    kinds, since_ns, decision_ids, limit
        Filters, as :meth:`LedgerShard.read_events <xmc_actors.ledger.actor.LedgerShard.read_events>`;
        ``limit`` applies to the merged result (the oldest ``limit`` events overall).
    timeout_s
        Longest wait for all shards (``None``: no limit).

    Raises
    ------
    LedgerError
        A shard failed to answer (dead, restarting, timed out): the message names it. A partial
        trail is never returned.
    ValueError
        A bad filter (the message names it).
    """
    check_filters(kinds, since_ns, decision_ids, limit)
    if not shards:
        raise LedgerError("read_trail: no ledger shard handles given")
    refs = [h.read_events.remote(kinds, since_ns, decision_ids, limit) for h in shards]

    async def one(i: int, ref: Any) -> list[Event]:
        try:
            return await ref
        except Exception as e:  # noqa: BLE001 - named and re-raised as a ledger error
            raise LedgerError(f"read_trail: shard ledger-{i} did not answer: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}") from e

    try:
        parts = await asyncio.wait_for(asyncio.gather(*(one(i, r) for i, r in enumerate(refs))), timeout_s)
    except asyncio.TimeoutError:
        for r in refs:
            try:
                ray.cancel(r)
            except Exception:  # noqa: BLE001 - best effort
                pass
        raise LedgerError(f"read_trail: {len(refs)} shard(s) did not all answer within {timeout_s:.1f} s") from None
    return merge_in_time_order(parts, limit)
