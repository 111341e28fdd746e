"""A FIX 4.4 exchange on loopback: the simulated venue's matching behind a FIX acceptor.

Tests and the demo start it (``python -m xmc_actors.venues.fix.exchange --config D --gateway G
--port 0`` prints ``{"port": ..., "control_port": ...}``, or :class:`FixExchange` in-process) and
stop it. Orders are matched by :class:`~xmc_actors.venues.sim.SimExchange` (its rules, faults
and drop copy); a control channel (JSON lines on a second loopback port, or the methods of
:class:`FixExchange`) feeds it the market and injects session faults.

Why the acceptor's session layer is written here and not QuickFIX's: QuickFIX 1.15's acceptor
binds every interface (it has no accept-address setting), and an exchange for tests must
listen on 127.0.0.1 only; it must also misbehave on command (skip sequence numbers, send bad
checksums and body lengths, drop required tags), which an engine is built never to do. So the
product's side of the session (the adapter) runs on QuickFIX, and is tested against this
independent, deliberately small acceptor: Logon (with or without ResetSeqNumFlag), Heartbeat
and TestRequest, ResendRequest answered with PossDup resends and SequenceReset-GapFill,
incoming gaps answered with a ResendRequest, session Reject (3) for malformed input,
BusinessMessageReject (j) for unsupported messages, Logout.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

import quickfix as fix

from ...core.clock import Clock, SystemClock
from ...model.market import Instrument, Venue
from ...model.orders import ExecReportKind, ExecutionReport, RejectReason
from ...model.quotes import Quote
from ..sim import SimExchange
from ..sim_config import SimVenueParams
from . import codec as C

SOH = "\x01"


def frame_messages(buf: bytes) -> tuple[list[bytes], bytes, int]:
    """Cut complete FIX messages off ``buf``: (messages, rest, garbled count). A message whose
    BodyLength does not lead to its CheckSum, or whose CheckSum is wrong, is garbled: dropped
    and counted (FIX: ignore it, do not advance the sequence number)."""
    out: list[bytes] = []
    garbled = 0
    while True:
        start = buf.find(b"8=FIX")
        if start < 0:
            return out, b"" if len(buf) < 16 else buf[-16:], garbled + (1 if len(buf) >= 16 else 0)
        if start > 0:
            garbled += 1
            buf = buf[start:]
        i = buf.find(b"\x019=")
        if i < 0:
            return out, buf, garbled
        j = buf.find(b"\x01", i + 3)
        if j < 0:
            return out, buf, garbled
        try:
            body_len = int(buf[i + 3:j])
        except ValueError:
            garbled += 1
            buf = buf[1:]
            continue
        body_end = j + 1 + body_len
        if len(buf) < body_end + 7:
            # a wrong BodyLength can claim more than ever comes: resync if a new message starts
            nxt = buf.find(b"\x018=FIX", j)
            if nxt >= 0:
                garbled += 1
                buf = buf[nxt + 1:]
                continue
            return out, buf, garbled
        tail = buf[body_end:body_end + 7]
        if not tail.startswith(b"10=") or tail[6:7] != b"\x01":
            garbled += 1
            nxt = buf.find(b"\x018=FIX", 1)
            buf = buf[nxt + 1:] if nxt >= 0 else b""
            continue
        msg, buf = buf[:body_end + 7], buf[body_end + 7:]
        if sum(msg[:body_end]) % 256 != int(tail[3:6]):
            garbled += 1
            continue
        out.append(msg)


class FixExchange:
    """The loopback FIX exchange: one acceptor session (``comp_id`` <-> any peer CompID).

    Parameters
    ----------
    venue, instruments
        What it lists; matching by :class:`SimExchange` with ``sim_params``.
    host, port
        Where it listens (127.0.0.1; port 0: a free one, see :attr:`port` after :meth:`start`).
    comp_id
        Its SenderCompID; the peer's is learnt from the Logon.
    control_port
        A JSON-lines control channel on loopback (None: none; 0: a free port).
    """

    def __init__(self, venue: Venue, instruments: Iterable[Instrument], sim_params: SimVenueParams | dict[str, Any] | None = None,
                 *, host: str = "127.0.0.1", port: int = 0, comp_id: str = "EXCH", control_port: int | None = None,
                 clock: Clock | None = None, symbols: dict[str, str] | None = None,
                 price_factor: dict[str, Decimal] | None = None) -> None:
        insts = list(instruments)
        p = sim_params if isinstance(sim_params, SimVenueParams) else SimVenueParams.model_validate(
            {"enforce_sessions": False, "enforce_price_limits": False, **(sim_params or {})})
        self.clock = clock or SystemClock()
        self.sim = SimExchange(venue, insts, p, self.clock)
        self.smap = C.SymbolMap.build(venue.code, insts, symbols, price_factor)
        self.host, self.port, self.comp_id = host, port, comp_id
        self._control_port = control_port
        self.control_port: int | None = None
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._control: socket.socket | None = None
        self._conn: socket.socket | None = None
        # session state (what a restart with state loss forgets)
        self.peer = ""
        self.next_out = 1
        self.next_in = 1
        self.store: dict[int, str] = {}
        self.heartbeat_s = 30.0
        self.logged_on = False
        self._last_sent = self._last_recv = 0.0
        self._test_req_out = False
        self._resend_asked = 0
        # faults
        self._stall_until = 0.0
        self._duplicate_next = 0
        self._lose_md = 0
        self._exec_seq = 0
        # what it saw: counters and every NewOrderSingle ClOrdID received (duplicates included)
        self.counters: dict[str, int] = {}
        self.received_orders: list[str] = []
        self.logons = 0
        self.connects: list[float] = []   # time.monotonic() of every TCP connection accepted
        self._refuse_until = 0.0
        # market data: subscriptions of this session (symbol -> (MDReqID, depth)), ended with it,
        # and what each subscriber was last told (the base of the next incremental refresh)
        self.md_subs: dict[str, tuple[str, int]] = {}
        self._md_sent: dict[str, tuple[list[tuple[Decimal, int]], list[tuple[Decimal, int]], Decimal | None]] = {}
        self._raw_in = ""  # the wire text of the message being handled (its groups are read from it)
        # RequestForPositions (AN): how it is answered (see :meth:`positions_mode`)
        self._pos_mode = "answer"
        self._pos_malformed = 0
        self._pos_rpt = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> int:
        """Listen; returns the bound port."""
        self._listener = self._listen(self.port)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop, "fix-exchange-accept")
        self._spawn(self._timer_loop, "fix-exchange-timer")
        if self._control_port is not None:
            self._control = self._listen(self._control_port)
            self.control_port = self._control.getsockname()[1]
            self._spawn(self._control_loop, "fix-exchange-control")
        return self.port

    def _listen(self, port: int) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, port))
        s.listen(4)
        s.settimeout(0.1)
        return s

    def _spawn(self, fn: Any, name: str) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.drop()
        for s in (self._listener, self._control):
            if s is not None:
                s.close()
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self) -> "FixExchange":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    # ------------------------------------------------------------------ faults (also on the control channel)
    def drop(self) -> None:
        """Close the TCP connection now, without a Logout."""
        with self.lock:
            c, self._conn = self._conn, None
            self.logged_on = False
            self.md_subs.clear()  # a venue's market-data subscriptions end with the session
            self._md_sent.clear()
        if c is not None:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def stall(self, ms: float) -> None:
        """Read nothing and send nothing (not even heartbeats) for ``ms``."""
        self._stall_until = time.monotonic() + ms / 1000

    def refuse(self, ms: float) -> None:
        """Drop the session and, for ``ms``, close every new connection as soon as it is
        accepted (a venue that is down): the peer's reconnection attempts are counted in
        ``connects``."""
        self._refuse_until = time.monotonic() + ms / 1000
        self.drop()

    def restart(self) -> None:
        """Drop the connection and forget the session: sequence numbers back to 1, sent
        messages gone (the order book, its orders and fills are kept, as a venue's are)."""
        self.drop()
        with self.lock:
            self.next_out = self.next_in = 1
            self.store.clear()
            self._resend_asked = 0
        self._count("restarts")

    def skip_seq(self, n: int) -> None:
        """The next message goes out ``n`` sequence numbers ahead (the peer sees a gap)."""
        with self.lock:
            self.next_out += int(n)

    def malformed(self, kind: str) -> None:
        """Send one malformed message: ``bad_checksum``, ``bad_body_length``, ``missing_tag``
        (an ExecutionReport without OrdStatus), ``unknown_order`` (a report for a ClOrdID
        never sent), ``garbage`` (bytes that are no FIX), ``bad_market_data`` (an incremental
        refresh whose bid level has no price)."""
        if kind not in ("bad_checksum", "bad_body_length", "missing_tag", "unknown_order", "garbage", "bad_market_data"):
            raise ValueError(f"malformed: unknown kind {kind!r}")
        with self.lock:
            self._send_malformed(kind)

    def ask_resend(self, begin: int = 1) -> None:
        """Ask the peer to resend everything from ``begin`` (a venue that lost what it read):
        the peer must answer with gap fills, never with stale orders."""
        with self.lock:
            self.next_in = int(begin)
            self._resend_request()

    def lose_market_data(self, n: int = 1) -> None:
        """The next ``n`` market-data messages are numbered but never arrive (lost on the
        way): the peer sees a sequence gap, and the resend it asks for is a gap fill
        (market data is not resent), so its book must be repaired by a snapshot."""
        with self.lock:
            self._lose_md += int(n)

    def duplicate_next(self, n: int = 1) -> None:
        """The next ``n`` execution reports are each sent twice, the copy under a new sequence
        number with PossResend (97=Y): the peer must de-duplicate by ExecID."""
        self._duplicate_next += n

    def inject(self, fault: dict[str, Any]) -> None:
        """A fault of the simulated venue (``reject_next``, ``no_ack_next``, ...)."""
        with self.lock:
            self.sim.inject(fault)

    def market(self, quotes: Iterable[Quote], wire: list[dict[str, Any]] | None = None) -> int:
        """Feed market quotes to the book; resting orders that trade are reported. Returns reports
        sent. ``wire``: gets what the venue publishes for them (the simulated venue's market-data
        messages, its clock and sequence numbers), which a loopback gateway takes as its quotes."""
        n = 0
        with self.lock:
            for q in quotes:
                reps, msgs = self.sim.on_market(q)
                for r in reps:
                    self._send_report(r)
                    n += 1
                if wire is not None:
                    wire.extend(msgs)
                if msgs:
                    self._md_publish(q.instrument)
        return n

    def fills(self) -> list[dict[str, Any]]:
        """Every execution the venue made (its own record): client order id, trade id, lots, price."""
        with self.lock:
            return [{"client_order_id": d["client_order_id"], "trade_id": d["trade_id"], "qty": d["fill_qty"],
                     "price": d["fill_price"]} for d in self.sim.drop_copy_log if d.get("trade_id")]

    def received(self) -> list[str]:
        """Every NewOrderSingle ClOrdID received, in order, duplicates and PossDup resends included."""
        with self.lock:
            return list(self.received_orders)

    def order_count(self, client_order_id: str | None = None) -> int:
        """Orders the venue holds (with that ClOrdID)."""
        with self.lock:
            if client_order_id is None:
                return len(self.sim.orders)
            return sum(1 for o in self.sim.orders.values() if o.req.client_order_id == client_order_id)

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {"logged_on": self.logged_on, "peer": self.peer, "next_out": self.next_out, "next_in": self.next_in,
                    "orders": len(self.sim.orders), "received_orders": len(self.received_orders),
                    "logons": self.logons, "counters": dict(self.counters)}

    # ------------------------------------------------------------------ wire out
    def _header(self, m: Any, seq: int) -> None:
        h = m.getHeader()
        h.setField(49, self.comp_id)
        h.setField(56, self.peer or "PEER")
        h.setField(34, str(seq))
        h.setField(52, C.utc_timestamp(time.time_ns()))

    def _write(self, raw: str) -> None:
        c = self._conn
        if c is None or time.monotonic() < self._stall_until:
            return
        try:
            c.sendall(raw.encode("latin-1"))
            self._last_sent = time.monotonic()
        except OSError:
            self._count("send_errors")

    def _send(self, m: Any, *, app: bool, store: bool = True, lost: bool = False) -> int:
        """Stamp, store (application messages, for resends) and write one message; it is stored
        and numbered even while nobody is connected, so a returning peer recovers it.
        ``store=False`` (market data): never resent; a resend request gets a gap fill for it,
        as venues do, and the subscriber asks for a snapshot."""
        seq = self.next_out
        self.next_out += 1
        self._header(m, seq)
        raw = m.toString()
        if app and store:
            self.store[seq] = raw
        if not store and self._lose_md > 0:
            self._lose_md -= 1  # numbered, never written: lost on the way
            self._count("md_lost")
            return seq
        if lost:
            self._count("reports_lost")
            return seq
        if self.logged_on or not app:
            self._write(raw)
        return seq

    def _exec_id(self) -> str:
        self._exec_seq += 1
        return f"{self.sim.venue.code}-X{self._exec_seq}"

    def _send_report(self, rep: ExecutionReport, cl_ord_id: str | None = None, orig: str | None = None,
                     lost: bool = False) -> None:
        o = self.sim.orders.get(rep.client_order_id)
        if o is None:
            return
        exec_id = rep.fill.trade_id if rep.fill is not None else self._exec_id()
        m = C.execution_report(rep, o.req, self.smap, exec_id, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig)
        self._send(m, app=True, lost=lost)
        if self._duplicate_next > 0 and rep.kind is not ExecReportKind.STATUS:
            self._duplicate_next -= 1
            m.getHeader().setField(97, "Y")
            self._send(m, app=True)

    def _send_malformed(self, kind: str) -> None:
        if kind == "missing_tag":
            # an ExecutionReport without OrdStatus (39), a required tag
            m = C.new_message("8")
            for tag, v in ((37, "NONE"), (17, self._exec_id()), (11, "no-such-order:Z:0"), (150, "0"),
                           (55, next(iter(self.smap.symbols.values()))), (54, "1"), (151, "0"), (14, "0"), (6, "0")):
                m.setField(tag, v)
            self._send(m, app=True)
            return
        if kind == "unknown_order":
            m = C.new_message("8")
            for tag, v in ((37, "NONE"), (17, self._exec_id()), (11, "no-such-order:Z:0"), (150, "0"), (39, "0"),
                           (55, next(iter(self.smap.symbols.values()))), (54, "1"), (151, "1"), (14, "0"), (6, "0")):
                m.setField(tag, v)
            self._send(m, app=True)
            return
        if kind == "garbage":
            self._write("this is not FIX\x01\x01\x01" * 2)
            return
        if kind == "bad_market_data":
            m = C.new_message("X")
            g = fix.Group(C.NO_MD_ENTRIES, C.MD_UPDATE_ACTION)
            g.setField(C.MD_UPDATE_ACTION, C.MD_CHANGE)
            g.setField(C.SYMBOL, next(iter(self.smap.symbols.values())))
            g.setField(C.MD_ENTRY_TYPE, C.MD_BID)
            g.setField(C.MD_ENTRY_SIZE, "3")
            g.setField(C.MD_ENTRY_POSITION_NO, "1")
            m.addGroup(g)
            self._send(m, app=True, store=False)
            return
        # a Heartbeat whose checksum or body length is wrong: it must be ignored, and since it
        # does not consume a sequence number, the next good message follows without a gap
        m = C.new_message("0")
        self._header(m, self.next_out)
        raw = m.toString()
        if kind == "bad_checksum":
            cs = int(raw[-4:-1])
            raw = raw[:-4] + f"{(cs + 1) % 256:03d}" + SOH
        else:
            i = raw.index("\x019=") + 3
            j = raw.index(SOH, i)
            raw = raw[:i] + str(int(raw[i:j]) + 5) + raw[j:]
        self._write(raw)

    # ------------------------------------------------------------------ wire in
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.connects.append(time.monotonic())
                del self.connects[:-1000]
            if time.monotonic() < self._refuse_until:
                self._count("connections_refused")
                conn.close()
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.drop()  # one session: a new connection replaces the old one
            with self.lock:
                self._conn = conn
                self._last_recv = self._last_sent = time.monotonic()
            self._spawn(lambda c=conn: self._read_loop(c), "fix-exchange-read")

    def _read_loop(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        buf = b""
        while not self._stop.is_set() and self._conn is conn:
            if time.monotonic() < self._stall_until:
                time.sleep(0.01)
                continue
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            buf += data
            msgs, buf, garbled = frame_messages(buf)
            if garbled:
                self._count("garbled_in", garbled)
            for raw in msgs:
                with self.lock:
                    if self._conn is not conn:
                        break
                    self._last_recv = time.monotonic()
                    self._test_req_out = False
                    try:
                        self._raw_in = raw.decode("latin-1")
                        self._on_message(fix.Message(self._raw_in, False))
                    except Exception:  # noqa: BLE001 - a bad message never kills the session thread
                        self._count("handler_errors")
        with self.lock:
            if self._conn is conn:
                self._conn = None
                self.logged_on = False

    def _on_message(self, m: Any) -> None:
        mt = C.msg_type(m)
        seq = int(C.get_header(m, 34) or 0)
        poss_dup = C.get_header(m, 43) == "Y"
        if mt == "A":
            self._on_logon(m, seq)
            return
        if not self.logged_on:
            self._count("before_logon")
            self.drop()
            return
        if mt == "4" and C.get(m, 123) != "Y":  # SequenceReset-Reset: takes effect whatever its number
            self.next_in = int(C.get(m, 36) or self.next_in)
            return
        if seq > self.next_in:
            if self._resend_asked < seq:
                self._resend_request()
                self._resend_asked = seq
            if mt == "2":  # answer a resend request even while our own is pending
                self._on_resend_request(m)
            return
        if seq < self.next_in:
            if not poss_dup:
                self._logout(f"MsgSeqNum too low, expecting {self.next_in} but received {seq}")
                self.drop()
            return
        self.next_in += 1
        if mt == "0":
            return
        if mt == "1":
            hb = C.new_message("0")
            hb.setField(112, C.get(m, 112) or "")
            self._send(hb, app=False)
        elif mt == "2":
            self._on_resend_request(m)
        elif mt == "4":
            new = int(C.get(m, 36) or 0)
            if new > self.next_in:
                self.next_in = new
        elif mt == "5":
            self._logout("bye")
            self.drop()
        elif mt == "3":
            self._count("rejects_in")
        elif mt == "AN" and self._pos_mode in ("business_reject", "ignore"):
            self._count("position_requests")
            if self._pos_mode == "business_reject":
                self._business_reject(seq, mt, C.get(m, C.POS_REQ_ID) or "", "RequestForPositions is not supported")
        elif mt in ("D", "F", "H", "V", "AN"):
            try:
                {"D": self._on_new_order, "F": self._on_cancel, "H": self._on_status, "V": self._on_md_request,
                 "AN": self._on_position_request}[mt](m)
            except C.FixDecodeError as e:
                self._session_reject(seq, mt, e.tag, str(e))
        else:
            self._business_reject(seq, mt, "", f"message type {mt!r} is not supported")

    def _business_reject(self, seq: int, mt: str, ref_id: str, text: str) -> None:
        r = C.new_message("j")
        r.setField(45, str(seq))
        r.setField(372, mt)
        if ref_id:
            r.setField(379, ref_id)
        r.setField(380, "3")  # unsupported message type
        r.setField(58, text)
        self._send(r, app=True)

    def _on_logon(self, m: Any, seq: int) -> None:
        self.peer = C.get_header(m, 49) or "PEER"
        self.heartbeat_s = float(C.get(m, 108) or 30)
        reset = C.get(m, 141) == "Y"
        self.logons += 1
        if reset:
            self.next_out = 1
            self.store.clear()
            self.next_in = seq + 1
        elif seq < self.next_in:
            self.logged_on = True  # so the Logout goes out
            self._logout(f"MsgSeqNum too low, expecting {self.next_in} but received {seq}")
            self.drop()
            return
        a = C.new_message("A")
        a.setField(98, "0")
        a.setField(108, str(int(self.heartbeat_s)))
        if reset:
            a.setField(141, "Y")
        self.logged_on = True
        self._send(a, app=False)
        if seq > self.next_in:
            self._resend_request()
            self._resend_asked = seq
        elif seq == self.next_in:
            self.next_in += 1

    def _resend_request(self) -> None:
        r = C.new_message("2")
        r.setField(7, str(self.next_in))
        r.setField(16, "0")
        self._send(r, app=False)
        self._count("resend_requests_out")

    def _on_resend_request(self, m: Any) -> None:
        begin = int(C.get(m, 7) or 1)
        end = int(C.get(m, 16) or 0)
        last = self.next_out - 1 if end == 0 else min(end, self.next_out - 1)
        self._count("resend_requests_in")
        gap_from = None
        for s in range(begin, last + 1):
            raw = self.store.get(s)
            if raw is None:
                gap_from = s if gap_from is None else gap_from
                continue
            if gap_from is not None:
                self._gap_fill(gap_from, s)
                gap_from = None
            old = fix.Message(raw, False)
            h = old.getHeader()
            h.setField(122, h.getField(52))
            h.setField(43, "Y")
            h.setField(52, C.utc_timestamp(time.time_ns()))
            self._write(old.toString())
            self._count("resent")
        if gap_from is not None:
            self._gap_fill(gap_from, last + 1)

    def _gap_fill(self, at: int, new_seq: int) -> None:
        g = C.new_message("4")
        g.setField(123, "Y")
        g.setField(36, str(new_seq))
        self._header(g, at)
        g.getHeader().setField(43, "Y")
        self._write(g.toString())
        self._count("gap_fills")

    def _logout(self, text: str) -> None:
        lo = C.new_message("5")
        lo.setField(58, text)
        self._send(lo, app=False)

    def _session_reject(self, ref_seq: int, mt: str, tag: int, text: str) -> None:
        r = C.new_message("3")
        r.setField(45, str(ref_seq))
        if tag:
            r.setField(371, str(tag))
        r.setField(372, mt)
        r.setField(373, "1" if "missing" in text else "5")
        r.setField(58, text)
        self._send(r, app=False)
        self._count("rejects_out")

    # ------------------------------------------------------------------ application
    def _on_new_order(self, m: Any) -> None:
        cl = C.need(m, C.CL_ORD_ID)
        self.received_orders.append(cl)
        if C.get_header(m, 43) == "Y" and cl in self.sim.orders:
            return  # a possible duplicate of an order we hold: nothing to do
        req = C.parse_new_order(m, self.smap)
        if cl in self.sim.orders:
            self._count("duplicate_orders")
            o = self.sim.orders[cl]
            rep = self.sim.query(cl)
            assert rep is not None
            dup = rep.model_copy(update={"kind": ExecReportKind.REJECTED, "reason": RejectReason.DUPLICATE_ORDER,
                                         "text": "duplicate ClOrdID: the existing order stands"})
            msg = C.execution_report(dup, o.req, self.smap, self._exec_id())
            msg.setField(C.ORD_STATUS, "8")
            self._send(msg, app=True)
            return
        reply = self.sim.place(req)
        if reply.unseen:
            return  # the fault says the order never reached the venue
        for r in reply.reports:
            # ``lost`` (the no-ack fault): the venue sends its answer and it is lost on the way;
            # numbered and kept like any report, the peer recovers it by resend request
            self._send_report(r, lost=reply.lost)

    def _on_cancel(self, m: Any) -> None:
        cl = C.need(m, C.CL_ORD_ID)
        orig = C.need(m, C.ORIG_CL_ORD_ID)
        C.need(m, C.SIDE)
        rep, _ = self.sim.cancel(orig)
        if rep is None or rep.kind is ExecReportKind.CANCEL_REJECTED:
            self._send(C.cancel_reject(cl, orig, rep, time.time_ns()), app=True)
            return
        self._send_report(rep, cl_ord_id=cl, orig=orig)

    def _on_status(self, m: Any) -> None:
        cl = C.need(m, C.CL_ORD_ID)
        C.need(m, C.SYMBOL)
        side = C.need(m, C.SIDE)
        rep = self.sim.query(cl)
        if rep is None:
            r = C.new_message("8")
            for tag, v in ((37, "NONE"), (17, self._exec_id()), (11, cl), (150, "I"), (39, "8"), (103, "5"),
                           (55, C.need(m, C.SYMBOL)), (54, side), (151, "0"), (14, "0"), (6, "0"),
                           (58, "UNKNOWN_ORDER: the venue has no such order")):
                r.setField(tag, v)
            self._send(r, app=True)
            return
        self._send_report(rep)

    # ------------------------------------------------------------------ positions (AN -> AO + AP)
    def positions_mode(self, mode: str, n: int = 1) -> None:
        """How RequestForPositions (AN) is answered: ``answer`` (default: an AO then one AP per
        instrument held, from the simulated venue's own positions), ``business_reject`` (j),
        ``session_reject`` (3), ``unsupported`` (AO PosReqResult 4, PosReqStatus rejected),
        ``ignore`` (no answer), ``malformed`` (the next ``n`` answers: their first AP has a
        position entry without LongQty or ShortQty; then ``answer`` again)."""
        if mode not in ("answer", "business_reject", "session_reject", "unsupported", "ignore", "malformed"):
            raise ValueError(f"positions_mode: unknown mode {mode!r}")
        with self.lock:
            if mode == "malformed":
                self._pos_mode, self._pos_malformed = "answer", int(n)
            else:
                self._pos_mode = mode

    def positions(self) -> dict[str, dict[str, int]]:
        """The simulated venue's own net lots per account and instrument (what AP reports)."""
        with self.lock:
            return self.sim.positions()

    def _on_position_request(self, m: Any) -> None:
        seq = int(C.get_header(m, 34) or 0)
        req_id, account, req_type, _sub = C.parse_position_request(self._raw_in)
        self._count("position_requests")
        self._pos_rpt += 1
        rpt = f"{self.sim.venue.code}-P{self._pos_rpt}"
        now = time.time_ns()
        if self._pos_mode == "session_reject":
            self._session_reject(seq, "AN", 0, "RequestForPositions is not supported (session reject)")
            return
        if self._pos_mode == "unsupported" or req_type != C.POS_REQ_POSITIONS:
            self._send(C.position_ack(req_id, rpt, account, C.POS_NOT_SUPPORTED, C.POS_STATUS_REJECTED, 0,
                                      f"PosReqType {req_type!r} is not supported" if req_type != C.POS_REQ_POSITIONS
                                      else "positions are not supported"), app=True)
            return
        held = {i: q for i, q in self.sim.positions().get(account, {}).items() if q and i in self.smap.symbols}
        if not held:
            self._send(C.position_ack(req_id, rpt, account, C.POS_NONE_FOUND, C.POS_STATUS_COMPLETED, 0), app=True)
            return
        self._send(C.position_ack(req_id, rpt, account, C.POS_VALID, C.POS_STATUS_COMPLETED, len(held)), app=True)
        bad = self._pos_malformed > 0
        if bad:
            self._pos_malformed -= 1
            self._count("position_reports_malformed")
        for k, (iid, q) in enumerate(sorted(held.items())):
            self._send(C.position_report(req_id, f"{rpt}.{k + 1}", account, iid, max(q, 0), max(-q, 0), len(held),
                                         self.smap, now, quantities=not (bad and k == 0)), app=True)
            self._count("position_reports")

    # ------------------------------------------------------------------ timers and control
    # ------------------------------------------------------------------ market data
    def _book(self, iid: str, depth: int) -> tuple[list[tuple[Decimal, int]], list[tuple[Decimal, int]], Decimal | None]:
        b = self.sim.books.get(iid)
        if b is None or b.quote is None:
            return [], [], None
        cut = depth or None  # MarketDepth 0: the full book
        return ([(Decimal(p), int(z)) for p, z in b.bids[:cut]], [(Decimal(p), int(z)) for p, z in b.asks[:cut]], b.last)

    def _md_snapshot(self, req_id: str, iid: str, depth: int) -> bool:
        bids, asks, last = self._book(iid, depth)
        if not bids and not asks and last is None:
            return False  # nothing to say yet; the first update will be a full book of News
        b = self.sim.books[iid]
        ts = self.sim.venue_clock.now_ns()
        self._send(C.md_snapshot(req_id, iid, C.book_entries(iid, bids, asks, last, b.settlement, ts), self.smap),
                   app=True, store=False)
        self._count("md_snapshots")
        return True

    def _on_md_request(self, m: Any) -> None:
        req_id, kind, depth, symbols = C.parse_md_request(self._raw_in)
        self._count("md_requests")
        known = {s: iid for iid, s in self.smap.symbols.items()}
        unknown = [s for s in symbols if s not in known]
        if unknown:
            self._send(C.md_reject(req_id, "0", f"unknown symbol {unknown[0]!r}"), app=True)
            self._count("md_rejects")
            return
        for sym in symbols:
            iid = known[sym]
            if kind == C.MD_UNSUBSCRIBE:
                self.md_subs.pop(iid, None)
                self._md_sent.pop(iid, None)
                continue
            if kind == C.MD_SUBSCRIBE:
                self.md_subs[iid] = (req_id, depth)
            sent = self._md_snapshot(req_id, iid, depth)
            if kind == C.MD_SUBSCRIBE:
                self._md_sent[iid] = self._book(iid, depth) if sent else ([], [], None)

    def _md_publish(self, iid: str) -> None:
        sub = self.md_subs.get(iid)
        if sub is None or not self.logged_on:
            return
        req_id, depth = sub
        new = self._book(iid, depth)
        changes = C.book_changes(iid, self._md_sent.get(iid, ([], [], None)), new, self.sim.venue_clock.now_ns())
        self._md_sent[iid] = new
        if changes:
            self._send(C.md_incremental(req_id, changes, self.smap), app=True, store=False)
            self._count("md_updates")

    def _timer_loop(self) -> None:
        while not self._stop.wait(0.05):
            now = time.monotonic()
            with self.lock:
                for r in self.sim.poll():  # delayed fills, late fills after a cancel
                    self._send_report(r)
                if not self.logged_on or self._conn is None or now < self._stall_until:
                    continue
                if now - self._last_sent >= self.heartbeat_s:
                    self._send(C.new_message("0"), app=False)
                if now - self._last_recv >= 2.5 * self.heartbeat_s:
                    self._count("peer_timeouts")
                    self.drop()
                elif now - self._last_recv >= 1.2 * self.heartbeat_s and not self._test_req_out:
                    t = C.new_message("1")
                    t.setField(112, f"TEST{int(time.time())}")
                    self._send(t, app=False)
                    self._test_req_out = True

    def _control_loop(self) -> None:
        assert self._control is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._control.accept()
            except (socket.timeout, OSError):
                continue
            self._spawn(lambda c=conn: self._control_conn(c), "fix-exchange-control-conn")

    def _control_conn(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            for line in f:
                try:
                    reply = {"ok": True, "result": self.command(json.loads(line))}
                except Exception as e:  # noqa: BLE001 - the caller hears why
                    reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                f.write((json.dumps(reply, default=str) + "\n").encode())
                f.flush()

    def command(self, cmd: dict[str, Any]) -> Any:
        """One control command: ``{"cmd": "drop" | "stall" (ms) | "refuse" (ms) | "restart" | "skip_seq" (n) |
        "malformed" (kind) | "positions_mode" (mode, n) | "positions" | "duplicate_next" (n) | "lose_market_data" (n) | "ask_resend" (begin) | "inject" (fault) | "market" (quotes; with
        ``"wire": true`` also the venue's market-data messages) | "status" | "order_count"
        (client_order_id) | "received_orders" | "fills" | "stop"}``."""
        c = cmd.get("cmd")
        if c == "drop":
            return self.drop()
        if c == "stall":
            return self.stall(float(cmd["ms"]))
        if c == "restart":
            return self.restart()
        if c == "refuse":
            return self.refuse(float(cmd["ms"]))
        if c == "skip_seq":
            return self.skip_seq(int(cmd.get("n", 1)))
        if c == "malformed":
            return self.malformed(str(cmd["kind"]))
        if c == "duplicate_next":
            return self.duplicate_next(int(cmd.get("n", 1)))
        if c == "ask_resend":
            return self.ask_resend(int(cmd.get("begin", 1)))
        if c == "lose_market_data":
            return self.lose_market_data(int(cmd.get("n", 1)))
        if c == "inject":
            return self.inject(dict(cmd["fault"]))
        if c == "positions_mode":
            return self.positions_mode(str(cmd["mode"]), int(cmd.get("n", 1)))
        if c == "positions":
            return self.positions()
        if c == "market":
            quotes = [Quote.model_validate(q) for q in cmd["quotes"]]
            if cmd.get("wire"):
                wire: list[dict[str, Any]] = []
                return {"reports": self.market(quotes, wire), "wire": wire}
            return self.market(quotes)
        if c == "received_orders":
            return self.received()
        if c == "fills":
            return self.fills()
        if c == "status":
            return self.status()
        if c == "order_count":
            return self.order_count(cmd.get("client_order_id"))
        if c == "stop":
            threading.Thread(target=self.stop, daemon=True).start()
            return None
        raise ValueError(f"unknown control command {c!r}")


def control(address: str, cmd: dict[str, Any], timeout_s: float = 5.0) -> Any:
    """Send one command to an exchange's control channel (``host:port``); returns its result."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s) as s, s.makefile("rwb") as f:
        f.write((json.dumps(cmd, default=str) + "\n").encode())
        f.flush()
        reply = json.loads(f.readline())
    if not reply.get("ok"):
        raise RuntimeError(reply.get("error"))
    return reply.get("result")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xmc_actors.venues.fix.exchange",
                                 description="A FIX 4.4 exchange on loopback around the simulated venue.")
    ap.add_argument("--config", required=True, help="deployment file (venue and instruments are read from it)")
    ap.add_argument("--gateway", required=True, help="the gateway (name, actor name or venue) it serves")
    ap.add_argument("--port", type=int, default=None, help="FIX port (0: a free one; default: the gateway's params.port)")
    ap.add_argument("--control-port", type=int, default=0, help="control channel port (0: a free one)")
    ap.add_argument("--sim-params", default="{}", help="SimVenueParams as JSON (matching rules, faults)")
    ap.add_argument("--checked", action="store_true",
                    help="--config is a deployment the runtime has already loaded and checked, dumped as JSON "
                         "(serve_loopback): read as it is, not judged again")
    a = ap.parse_args(argv)
    if a.checked:  # the runtime judged it (calendars, contracts) before starting anything
        from ...model.config import DeploymentConfig

        dep = DeploymentConfig.model_validate_json(Path(a.config).read_text())
    else:
        from ...runtime.config import load_config

        dep = load_config(a.config)
    ex = exchange_for(dep, a.gateway, port=a.port, control_port=a.control_port, sim_params=json.loads(a.sim_params))
    serve(ex)
    return 0


def exchange_for(dep: Any, gateway: str, *, port: int | None = None, control_port: int | None = 0,
                 sim_params: dict[str, Any] | None = None) -> FixExchange:
    """A (not yet started) loopback exchange for the venue of ``gateway`` in deployment ``dep``:
    its instruments, the gateway's CompIDs (ours is its TargetCompID), symbols and price
    factors. ``port`` None: the gateway's configured ``params.port``; 0: a free one."""
    from ...actors.gateway import find_gateway
    from .params import FixVenueParams

    g = find_gateway(dep, gateway)
    if g.adapter != "fix":
        raise ValueError(f"gateway {g.actor_name} has adapter {g.adapter!r}, not fix")
    fp = FixVenueParams.model_validate(g.params)
    return FixExchange(dep.venue(g.venue), [i for i in dep.instruments if i.venue == g.venue], sim_params or {},
                       port=(fp.port or 0) if port is None else port, comp_id=fp.target_comp_id,
                       control_port=control_port, symbols=fp.symbols, price_factor=fp.price_factor)


def serve(ex: FixExchange, out: Any = None) -> None:
    """Start ``ex``, print ``{"port": P, "control_port": C}`` (one JSON line) and run until it is
    told to ``stop`` or interrupted (Ctrl-C); then stop it."""
    ex.start()
    print(json.dumps({"host": ex.host, "port": ex.port, "control_port": ex.control_port}),
          file=out or sys.stdout, flush=True)
    try:
        while not ex._stop.is_set():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        ex.stop()


if __name__ == "__main__":
    sys.exit(main())
