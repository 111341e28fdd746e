"""The CTP adapter's order journal: which FrontID / SessionID / OrderRef carried which of our
client order ids, on disk, so that a restarted adapter recognises its own orders in the
front's reports and in the answers to its queries.

One JSON line per record, appended and flushed before the order leaves (so an order the
front may have is never missing from it)::

    ["O", <OrderRequest JSON>, front_id, session_id, order_ref, trading_day]   an order sent
    ["S", client_order_id, exchange_id, order_sys_id]                          its exchange id, once known
    ["N", next_order_ref]                                                      refs used up to here (a logon)

A line cut short by a crash is skipped and counted; everything else is read back.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...model.orders import OrderRequest


@dataclass
class JournalEntry:
    req: OrderRequest
    front_id: int
    session_id: int
    order_ref: str
    trading_day: str = ""
    exchange_id: str = ""
    order_sys_id: str = ""


@dataclass
class JournalState:
    entries: dict[str, JournalEntry] = field(default_factory=dict)
    max_ref: int = 0
    unreadable: int = 0


class OrderJournal:
    """Append-only JSON-lines journal of the orders one CTP gateway sent."""

    def __init__(self, path: str | os.PathLike[str], *, fresh: bool) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.state = JournalState()
        if fresh and self.path.exists():
            self.path.unlink()
        elif self.path.exists():
            self.state = self.read(self.path)
        self._f: Any = open(self.path, "a", encoding="utf-8")

    @staticmethod
    def read(path: str | os.PathLike[str]) -> JournalState:
        st = JournalState()
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if rec[0] == "O":
                    req = OrderRequest.model_validate_json(rec[1])
                    st.entries[req.client_order_id] = JournalEntry(req, int(rec[2]), int(rec[3]), str(rec[4]),
                                                                   str(rec[5]) if len(rec) > 5 else "")
                    if str(rec[4]).strip().isdigit():
                        st.max_ref = max(st.max_ref, int(rec[4]))
                elif rec[0] == "S":
                    e = st.entries.get(rec[1])
                    if e is not None:
                        e.exchange_id, e.order_sys_id = str(rec[2]), str(rec[3])
                elif rec[0] == "N":
                    st.max_ref = max(st.max_ref, int(rec[1]))
                else:
                    st.unreadable += 1
            except (ValueError, IndexError, TypeError, KeyError):
                st.unreadable += 1
        return st

    def append(self, rec: list[Any]) -> None:
        if self._f is None:
            raise ValueError(f"order journal {self.path} is closed")
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()

    def order(self, req: OrderRequest, front_id: int, session_id: int, order_ref: str, trading_day: str) -> None:
        self.append(["O", req.model_dump_json(), front_id, session_id, order_ref, trading_day])

    def sys_id(self, coid: str, exchange_id: str, order_sys_id: str) -> None:
        self.append(["S", coid, exchange_id, order_sys_id])

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
