"""The simulated venue's memory on disk, so that it outlives the gateway process.

A real exchange keeps our orders and fills when our gateway's host dies; the simulated one
lives inside the gateway actor, so without help its memory would die with it, and a gateway
that Ray restarts could not reconcile against anything. :class:`VenueJournal` is an
append-only file of msgpack records, one per order accepted and one per drop-copy row (every
ack, reject, fill, cancel and expiry), written with one ``write(2)`` each: it survives the
process being killed (the page cache keeps it), not a power cut, which is enough for a
simulation. :meth:`SimExchange.restore <xmc_actors.venues.sim.SimExchange>` rebuilds the
venue's orders, fills, resting orders and sequence numbers from it.

Records::

    ["O", <OrderRequest JSON>, venue_order_id, priority]   an order the venue accepted
    ["D", client_order_id, trading_day ISO date]           the trading day a DAY order belongs to
    ["R", <drop-copy row dict>]                             every report the venue sent

A record cut short by a crash in the middle of a write is ignored and counted
(``truncated_bytes``); everything before it is kept.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgpack

__all__ = ["VenueJournal", "journal_path"]


def journal_path(state_dir: str | os.PathLike[str], name: str) -> Path:
    """The journal of the simulated venue behind gateway ``name`` in ``state_dir``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "venue"
    return Path(state_dir) / f"{safe}.venue"


class VenueJournal:
    """Append-only msgpack journal.

    Parameters
    ----------
    path
        The file. Its directory is created if missing.
    fresh
        True: start a new journal (an existing file is truncated: a fresh start of a
        simulated venue, e.g. a new run). False: keep the file and read its records back
        (:attr:`records`), for a restarted gateway.
    """

    def __init__(self, path: str | os.PathLike[str], *, fresh: bool) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[list[Any]] = []
        self.truncated_bytes = 0
        if not fresh and self.path.exists():
            self.records, self.truncated_bytes = self.read(self.path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if fresh else 0)
        self._fd: int | None = os.open(self.path, flags, 0o644)
        if self.truncated_bytes:
            # cut the torn tail so that new records follow the last whole one
            os.truncate(self.path, self.path.stat().st_size - self.truncated_bytes)
        self.written = 0

    @staticmethod
    def read(path: str | os.PathLike[str]) -> tuple[list[list[Any]], int]:
        """The whole records of ``path`` and the size of a torn tail (bytes)."""
        data = Path(path).read_bytes()
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        unpacker.feed(data)
        out: list[list[Any]] = []
        used = 0
        try:
            for rec in unpacker:
                out.append(rec)
                used = unpacker.tell()
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError):
            pass
        return out, len(data) - used

    def append(self, record: list[Any]) -> None:
        """Write one record (one system call)."""
        if self._fd is None:
            raise ValueError(f"journal {self.path} is closed")
        os.write(self._fd, msgpack.packb(record, use_bin_type=True))
        self.written += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
