"""The ledger client: an :class:`~xmc_actors.core.sink.EventSink` that batches to shard actors.

``emit`` / ``emit_many`` only append to an in-memory buffer (hot path: a lock and a list
append). A pump thread cuts the buffer of each shard into batches (``batch_size`` events, or
whatever is buffered after ``flush_ms``), encodes them to Arrow and sends them, as the bytes of
an Arrow IPC stream, with ``shard.append.remote`` — at most ``max_in_flight`` batches per shard at a time. A batch stays in
the client until its call returns (the shard committed it: *acknowledged*); if the call fails
(the shard died, is restarting, or its commit failed), the batch is sent again with back-off
until it is acknowledged. Nothing is dropped: ``stats()["unacked"]`` says what is still held.

``emit_durable(event)`` returns an :class:`Ack` that completes when the event — and everything
this client emitted to the same shard before it — is committed. It works from sync code
(``ack.result(timeout)``) and from async actors (``await ack``; no ``ray.get`` anywhere on the
caller's side).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import zlib
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import pyarrow as pa
import ray

from ..model.config import LedgerConfig
from ..model.events import Event
from .schema import EncodedBatch, bad_input_event, batch_to_wire, encode_events
from .store import LedgerError

log = logging.getLogger(__name__)


class Ack:
    """Completion of a durable write: ``await ack`` (async) or ``ack.result(timeout)`` (sync)."""

    __slots__ = ("_f",)

    def __init__(self, f: Future) -> None:
        self._f = f

    def result(self, timeout: float | None = None) -> None:
        self._f.result(timeout)

    def done(self) -> bool:
        return self._f.done()

    def __await__(self):  # type: ignore[no-untyped-def]
        return asyncio.wrap_future(self._f).__await__()


@dataclass
class _Batch:
    events: list[Event]
    acks: list[Future] = field(default_factory=list)
    urgent: bool = False
    encoded: EncodedBatch | None = None
    wire: bytes | None = None  # encoded.table as Arrow IPC bytes: what is sent
    attempts: int = 0
    retry_at: float = 0.0


@dataclass
class _Shard:
    handle: Any
    buffer: list[Event] = field(default_factory=list)
    buffer_acks: list[Future] = field(default_factory=list)
    urgent: bool = False
    since: float = 0.0
    retry: deque = field(default_factory=deque)
    in_flight: int = 0
    errors_in_a_row: int = 0        # failed sends since the last acknowledged one


def shard_index(event: Event, shard_by: str, shards: int) -> int:
    """Shard of an event: a stable hash of its strategy or venue; no key (or one shard): shard 0."""
    if shards == 1 or shard_by == "none":
        return 0
    key = event.strategy if shard_by == "strategy" else event.venue
    if not key:
        return 0
    return zlib.crc32(key.encode()) % shards


class LedgerClient:
    """Batching, re-sending writer to the ledger shards.

    Parameters
    ----------
    handles
        The shard actors, in shard order (from :func:`~xmc_actors.ledger.actor.start_ledger` or
        ``ray.get_actor("ledger-<n>")``).
    cfg
        Ledger configuration (``shard_by``, ``flush_ms``, ``batch_size``).
    max_in_flight
        Batches per shard sent and not yet acknowledged.
    actor
        Name recorded on ``BAD_INPUT`` events for inputs this client refuses.
    namespace
        The shards are the named actors ``ledger-<n>`` of this namespace
        (:func:`~xmc_actors.ledger.actor.start_ledger`). A client sent to another actor then
        travels as that name, not as the handles, and finds the shards again by name where it
        arrives: an actor given such a client as a constructor argument restarts without
        depending on anything its creator holds (handles in constructor arguments keep the
        arguments in the creator's object store, and a restart after they were released fails).
    """

    def __init__(self, handles: Sequence[Any], cfg: LedgerConfig, *, max_in_flight: int = 4,
                 actor: str = "ledger-client", namespace: str | None = None) -> None:
        if len(handles) != cfg.shards:
            raise LedgerError(f"ledger client: {len(handles)} shard handles for {cfg.shards} configured shards")
        self.cfg = cfg
        self.actor = actor
        self.namespace = namespace
        self.max_in_flight = max_in_flight
        self._handles = list(handles)
        self._flush_s = cfg.flush_ms / 1000.0
        self._shards = [_Shard(h) for h in handles]
        self._cond = threading.Condition()
        self._closed = False
        self._outstanding = 0  # events sent and not yet acknowledged
        self.counters = {"emitted": 0, "sent_batches": 0, "acked_events": 0, "resent_batches": 0,
                         "refused": 0, "send_errors": 0}
        self._pump = threading.Thread(target=self._run, name="ledger-client", daemon=True)
        self._pump.start()

    @property
    def shard_handles(self) -> list[Any]:
        """The shard actors this client writes to, in shard order (readers of the trail use
        them: :func:`xmc_actors.ledger.reader.read_trail`)."""
        return list(self._handles)

    @classmethod
    def named(cls, cfg: LedgerConfig, namespace: str, *, max_in_flight: int = 4,
              actor: str = "ledger-client") -> "LedgerClient":
        """A client of the running shards ``ledger-0 .. ledger-<n-1>`` of ``namespace``, found by name."""
        import ray

        handles = [ray.get_actor(f"ledger-{i}", namespace=namespace) for i in range(cfg.shards)]
        return cls(handles, cfg, max_in_flight=max_in_flight, actor=actor, namespace=namespace)

    def __reduce__(self) -> tuple[Any, ...]:
        """Sent to another actor, a client arrives as a new client of the same shards
        (its own buffer and pump thread): events are never shared between processes. A client
        of named shards travels as their namespace and finds them by name on arrival."""
        state = {"max_in_flight": self.max_in_flight, "actor": self.actor}
        if self.namespace is not None:
            return (_named_client, (self.cfg.model_dump(mode="json"), self.namespace, self.max_in_flight, self.actor))
        return (LedgerClient, (self._handles, self.cfg), state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_in_flight = state["max_in_flight"]
        self.actor = state["actor"]

    # ------------------------------------------------------------------------- EventSink
    def _queue_locked(self, event: Event, now: float) -> _Shard:
        """Append ``event`` to its shard's buffer (caller holds the lock); returns the shard."""
        i = shard_index(event, self.cfg.shard_by, len(self._shards)) if isinstance(event, Event) else 0
        s = self._shards[i]
        if not s.buffer:
            s.since = now
        s.buffer.append(event)
        self.counters["emitted"] += 1
        return s

    def emit(self, event: Event) -> None:
        """Queue one event (fire-and-forget); sent within ``flush_ms`` (or at once when a batch is full)."""
        with self._cond:
            n = len(self._queue_locked(event, time.monotonic()).buffer)
            if n == 1 or n >= self.cfg.batch_size:
                # the first event of a batch starts its flush_ms timer: the pump may be sleeping
                # on a longer wait computed while every buffer was empty
                self._cond.notify()

    def emit_many(self, events: Iterable[Event]) -> None:
        """Queue several events (fire-and-forget)."""
        now = time.monotonic()
        with self._cond:
            wake = False
            for e in events:
                n = len(self._queue_locked(e, now).buffer)
                wake = wake or n == 1 or n >= self.cfg.batch_size
            if wake:
                self._cond.notify()

    def emit_durable(self, event: Event) -> Ack:
        """Queue an event and send it at once; the returned :class:`Ack` completes on commit."""
        f: Future = Future()
        with self._cond:
            s = self._queue_locked(event, time.monotonic())
            s.buffer_acks.append(f)
            s.urgent = True
            self._cond.notify()
        return Ack(f)

    def flush(self, timeout: float | None = 30.0) -> None:
        """Send everything buffered and block until all of it is acknowledged (sync code only)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            for s in self._shards:
                s.urgent = s.urgent or bool(s.buffer)
            self._cond.notify()
            while self._unacked_locked():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise LedgerError(f"ledger client: {self._unacked_locked()} events not acknowledged "
                                      f"after {timeout:.1f} s (shards down?)")
                self._cond.wait(0.05 if left is None else min(0.05, left))

    async def aflush(self, timeout: float | None = 30.0) -> None:
        """:meth:`flush` for async actors (runs the wait in a thread; never blocks the loop)."""
        await asyncio.get_running_loop().run_in_executor(None, self.flush, timeout)

    def stats(self) -> dict[str, int]:
        with self._cond:
            out = dict(self.counters)
            out["unacked"] = self._unacked_locked()
            out["in_flight_batches"] = sum(s.in_flight for s in self._shards)
            return out

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, then stop the pump thread."""
        try:
            self.flush(timeout)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify()
            self._pump.join(2.0)

    # ------------------------------------------------------------------------------ pump
    def _unacked_locked(self) -> int:
        n = 0
        for s in self._shards:
            n += len(s.buffer) + sum(len(b.events) for b in s.retry)
        return n + self._outstanding

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                sends = self._take_ready_locked()
                if not sends:
                    self._cond.wait(self._next_wait_locked())
                    sends = self._take_ready_locked()
            for shard, batch in sends:
                self._send(shard, batch)

    def _next_wait_locked(self) -> float:
        now, wait = time.monotonic(), 0.5
        for s in self._shards:
            if s.buffer:
                wait = min(wait, max(0.0, s.since + self._flush_s - now))
            if s.retry and s.in_flight < self.max_in_flight:
                wait = min(wait, max(0.0, s.retry[0].retry_at - now))
        return max(wait, 0.0005)

    def _take_ready_locked(self) -> list[tuple[int, _Batch]]:
        now, out = time.monotonic(), []
        bs = self.cfg.batch_size
        for i, s in enumerate(self._shards):
            while s.retry and s.in_flight < self.max_in_flight and s.retry[0].retry_at <= now:
                b = s.retry.popleft()
                s.in_flight += 1
                self._outstanding += len(b.events)
                out.append((i, b))
            while s.buffer and s.in_flight < self.max_in_flight and (
                    len(s.buffer) >= bs or s.urgent or now - s.since >= self._flush_s):
                events, s.buffer = s.buffer[:bs], s.buffer[bs:]
                b = _Batch(events, urgent=s.urgent)
                if not s.buffer:
                    b.acks, s.buffer_acks, s.urgent = s.buffer_acks, [], False
                s.since = now
                s.in_flight += 1
                self._outstanding += len(events)
                out.append((i, b))
        return out

    def _send(self, i: int, b: _Batch) -> None:
        if b.encoded is None:
            b.encoded = encode_events(b.events)
            if b.encoded.refused:
                now_ns = time.time_ns()
                bad = encode_events(bad_input_event(r, ts_ns=now_ns, actor=self.actor) for r in b.encoded.refused)
                b.encoded = EncodedBatch(pa.concat_tables([b.encoded.table, bad.table]), b.encoded.refused)
                with self._cond:
                    self.counters["refused"] += len(b.encoded.refused)
                for r in b.encoded.refused:
                    log.warning("ledger client refused an event: %s", r)
            b.wire = batch_to_wire(b.encoded.table)
        b.attempts += 1
        try:
            h = self._shards[i].handle
            if isinstance(h, ray.actor.ActorHandle) and not ray.is_initialized():
                # the cluster went away under us: keep the batch (retried), never start a Ray
                raise LedgerError("ray is not connected")
            ref = h.append.remote(b.wire, b.urgent or bool(b.acks))
        except Exception as e:  # noqa: BLE001 - submission itself failed; keep the batch
            self._done(i, b, e)
            return
        with self._cond:
            self.counters["sent_batches"] += 1
            if b.attempts > 1:
                self.counters["resent_batches"] += 1
        ref.future().add_done_callback(lambda f, i=i, b=b: self._done(i, b, f.exception()))

    def _done(self, i: int, b: _Batch, err: BaseException | None) -> None:
        with self._cond:
            s = self._shards[i]
            s.in_flight -= 1
            self._outstanding -= len(b.events)
            if err is None:
                s.errors_in_a_row = 0
                self.counters["acked_events"] += len(b.events)
                for f in b.acks:
                    if not f.done():
                        f.set_result(None)
            else:
                self.counters["send_errors"] += 1
                s.errors_in_a_row += 1
                if s.errors_in_a_row in (20, 200) or s.errors_in_a_row % 2000 == 0:
                    # a shard that fails every send (restarting is a few; this many is not):
                    # the batches are kept and re-sent, but somebody must look
                    log.error("ledger client %s: %d sends in a row to shard %d failed, the last: %s: %s",
                              self.actor, s.errors_in_a_row, i, type(err).__name__, str(err).splitlines()[0][:300]
                              if str(err) else "")
                b.retry_at = time.monotonic() + min(0.05 * 2 ** min(b.attempts - 1, 5), 1.0)
                s.retry.appendleft(b)
            self._cond.notify_all()


def _named_client(cfg: dict[str, Any], namespace: str, max_in_flight: int, actor: str) -> LedgerClient:
    """Unpickle a client of named shards (:meth:`LedgerClient.__reduce__`)."""
    return LedgerClient.named(LedgerConfig.model_validate(cfg), namespace, max_in_flight=max_in_flight, actor=actor)
