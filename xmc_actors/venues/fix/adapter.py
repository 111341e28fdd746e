"""The FIX 4.4 venue adapter: a QuickFIX initiator session driven by a venue gateway.

It has the simulated venue's interface (``send``/``answer``/``place``, ``cancel``, ``query``,
``open_orders``, ``positions``, ``drop_copy``, ``poll``, ``connected``, ``clock_probe``...), so
:class:`~xmc_actors.core.gateway_core.GatewayCore` drives it as it drives ``sim``.

Threads: QuickFIX reads the socket on its own thread and calls :class:`_App`; every report is
parsed there and routed, under one condition variable, to whoever waits for it (a place's
answer, a cancel, a status request) or to the push queue that :meth:`FixAdapter.poll` drains
(fills of resting orders, reports recovered after a reconnect). The gateway's calls wait on
that condition for at most ``ack_timeout_ms``.

Outcomes:

* not logged on when an order is handed over: :class:`VenueDisconnected` (nothing sent, a
  definitive local reject);
* no answer within ``ack_timeout_ms``, or the session drops while waiting: the place is
  ``lost`` (the gateway reports UNKNOWN); later reports still arrive (pushed), a status
  request resolves the rest;
* our messages are never re-sent: the engine keeps none (``PersistMessages=N``) and answers
  the venue's ResendRequest with a gap fill, so a stale order or cancel never reaches the
  venue late; the venue never saw it, and a status request says so.
* reports are de-duplicated by ExecID (a PossDup resend, a PossResend copy).
"""
from __future__ import annotations

import atexit
import collections
import json
import os
import socket
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import quickfix as fix

from ...core.clock import Clock
from ...model.market import Instrument, Venue
from ...model.orders import (
    ExecReportKind, ExecutionReport, OrderRequest, OrderState, OrderStatus, RejectReason,
)
from ..sim import PlaceReply, VenueDisconnected
from . import codec as C
from .backoff import ReconnectBackoff
from .params import SESSION_FAULTS, FixVenueParams

_MS = 1_000_000


def data_dictionary_path() -> str:
    """The FIX 4.4 data dictionary the QuickFIX wheel installs (``<prefix>/share/quickfix``)."""
    import sys

    for base in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(fix.__file__))):
        p = os.path.join(base, "share", "quickfix", "FIX44.xml")
        if os.path.exists(p):
            return p
    raise FileNotFoundError("FIX44.xml not found: is the quickfix-ssl wheel installed?")


def default_store_root() -> Path:
    env = os.environ.get("XMC_VAR_DIR")
    if env:
        return Path(env) / "fix"
    return Path(tempfile.gettempdir()) / "xmc-fix"


def session_settings(p: FixVenueParams, store_dir: Path) -> str:
    """The QuickFIX settings of one initiator session (the text of its .cfg file)."""
    lines = [
        "[DEFAULT]", "ConnectionType=initiator", f"FileStorePath={store_dir / 'store'}",
        f"FileLogPath={store_dir / 'log'}", "StartTime=00:00:00", "EndTime=00:00:00",
        # the engine retries every second while the session is enabled; the adapter's
        # backoff (FixAdapter._supervise) disables it between attempt windows
        f"HeartBtInt={p.heartbeat_s}", "ReconnectInterval=1",
        f"ResetOnLogon={'Y' if p.reset_on_logon else 'N'}", "ResetOnLogout=N", "ResetOnDisconnect=N",
        "PersistMessages=N", "TimestampPrecision=6", "PreserveMessageFieldsOrder=Y", "SocketNodelay=Y", "LogonTimeout=5", "LogoutTimeout=2",
        f"UseDataDictionary={'Y' if p.validate_messages else 'N'}",
        "ValidateUserDefinedFields=N", "ValidateFieldsOutOfOrder=N", "AllowUnknownMsgFields=Y",
        f"SocketConnectHost={p.host}", f"SocketConnectPort={p.port}",
    ]
    if p.validate_messages:
        lines.append(f"DataDictionary={data_dictionary_path()}")
    lines += ["", "[SESSION]", "BeginString=FIX.4.4", f"SenderCompID={p.sender_comp_id}",
              f"TargetCompID={p.target_comp_id}", ""]
    return "\n".join(lines)



@dataclass
class _Wait:
    """One call waiting for the venue: its reports so far."""

    reports: list[ExecutionReport] = field(default_factory=list)
    done: bool = False
    unknown: bool = False
    dropped: bool = False  # the session went down while waiting


class _App(fix.Application):
    """QuickFIX callbacks, handed to the adapter; nothing here may raise into the engine
    except the engine's own exceptions from ``fromApp`` (they make it answer with a Reject)."""

    def __init__(self, adapter: "FixAdapter") -> None:
        super().__init__()
        self.a = adapter

    def onCreate(self, sid: Any) -> None:  # noqa: N802 - QuickFIX names
        pass

    def onLogon(self, sid: Any) -> None:  # noqa: N802
        try:
            self.a._on_logon()
        except Exception as e:  # noqa: BLE001
            self.a._callback_error(e)

    def onLogout(self, sid: Any) -> None:  # noqa: N802
        try:
            self.a._on_logout()
        except Exception as e:  # noqa: BLE001
            self.a._callback_error(e)

    def toAdmin(self, msg: Any, sid: Any) -> None:  # noqa: N802
        try:
            self.a._to_admin(msg)
        except Exception:  # noqa: BLE001
            self.a._count("callback_errors")

    def fromAdmin(self, msg: Any, sid: Any) -> None:  # noqa: N802
        try:
            self.a._from_admin(msg)
        except Exception:  # noqa: BLE001
            self.a._count("callback_errors")

    def toApp(self, msg: Any, sid: Any) -> None:  # noqa: N802
        # Never raise here (not even the engine's DoNotSend): when the engine answers the
        # venue's ResendRequest, a DoNotSend from this callback escapes its handler in this
        # wheel and aborts the process (seen as a gateway restarting in a loop under Ray). Our
        # messages are not kept for resending at all (PersistMessages=N): the engine answers
        # every resend request with a gap fill, so a stale order never reaches a venue late.
        pass

    def fromApp(self, msg: Any, sid: Any) -> None:  # noqa: N802
        try:
            self.a._from_app(msg)
        except fix.FIXException:
            raise  # the engine answers it (session Reject, BusinessMessageReject)
        except Exception as e:  # noqa: BLE001 - any other exception would abort the process in the engine's thread
            self.a._callback_error(e)


class FixAdapter:
    """A venue reached over one FIX 4.4 session. See the module docstring."""

    #: place answers, cancels and status requests wait on the socket (up to ``ack_timeout_ms``):
    #: the gateway runs them off its event loop
    blocking = True
    #: the latency a call reports was waited for on the socket: the gateway must not sleep it
    real_latency = True
    @property
    def positions_source(self) -> str:
        """``venue`` once a complete PositionReport snapshot (RequestForPositions) has come since
        the current logon: positions() is then the broker's position keeping, which the risk
        guard verifies its ledger against. Otherwise ``session fills``: the fills this session
        reported, which a restarted deployment cannot verify against (the venue counts
        unverified and the start-of-day gate waits for an operator)."""
        return "venue" if self._pos_ok_since_logon and self._pos_snapshot is not None else "session fills"

    def __init__(self, params: FixVenueParams, venue: Venue, instruments: Sequence[Instrument], clock: Clock, *,
                 gateway: str = "", restart: bool = False) -> None:
        if params.port is None:
            raise ValueError(f"{gateway or venue.code}: params.port is not set (serve_loopback: the runtime starts the "
                             "loopback exchange and sets it; outside a deployment give the port)")
        self.p = params
        self.venue = venue
        self.clock = clock
        self.name = gateway or f"gateway-{venue.code}"
        self.smap = C.SymbolMap.build(venue.code, instruments, params.symbols, params.price_factor,
                                      params.security_exchange)
        self.cv = threading.Condition(threading.RLock())
        self.orders: dict[str, OrderRequest] = {}
        self.views: dict[str, OrderState] = {}     # the venue's word on each order, from its reports
        self._places: dict[str, _Wait] = {}
        self._cancels: dict[str, _Wait] = {}       # by cancel ClOrdID
        self._cancel_of: dict[str, str] = {}       # cancel ClOrdID -> order
        self._queries: dict[str, _Wait] = {}
        self._pushed: list[ExecutionReport] = []
        # market data over the session (V/W/X): one book per instrument, the wire messages made
        # from it for the gateway (with when each arrived), a local sequence per instrument that
        # jumps where updates may have been lost (the gateway's gap tracking then marks the
        # instrument STALE until a snapshot), and when a snapshot was last asked for
        self._md_books = {i.id: C.MdBook(i.id) for i in instruments}
        self._md_seq: dict[str, int] = {i.id: 0 for i in instruments}
        self._md_out: list[tuple[dict[str, Any], int]] = []
        self._snap_asked: dict[str, int] = {}
        self._md_req_n = 0
        self._reissue_at = 0
        self._waker: Any = None
        self._exec_ids: set[str] = set()
        self._n_cancel = 0
        self.drop_copy_log: list[dict[str, Any]] = []
        self.counters: dict[str, int] = {}
        self.bad_input: list[dict[str, Any]] = []       # not yet drained by the gateway
        self.bad_input_recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self.logged_on = False
        self.last_answer_ns = 0
        self.last_logout_text = ""
        self.last_heartbeat_ns = 0
        self._probe_out: dict[str, int] = {}
        self._probe_done: list[tuple[int, int, int, int]] = []
        self._probe_n = 0
        self._ctl: Any = None
        # broker positions (AN -> AO + AP): the last complete snapshot, when it was asked for,
        # the round in flight (PosReqID -> what came), why the session stays at session fills
        self._pos_accounts: list[str] = list(params.positions_accounts)
        self._pos_snapshot: dict[str, dict[str, int]] | None = None
        self._pos_as_of_ns = 0          # our clock when the complete snapshot's round was sent
        self._pos_done_ns = 0           # our clock when it completed
        self._pos_ok_since_logon = False
        self._pos_round: dict[str, dict[str, Any]] = {}
        self._pos_round_t0 = 0          # time.monotonic_ns() the round was sent (0: none in flight)
        self._pos_round_n = 0
        self._pos_round_as_of = 0
        self._pos_off = "" if params.positions_query else "positions_query is false"
        self._pos_reason = self._pos_off or "no complete snapshot yet"
        base = Path(params.store_path) if params.store_path else default_store_root()
        self.store_dir = base / self.name
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._journal_path = self.store_dir / "orders.jsonl"
        self.restored = self._load_journal() if restart else 0
        if not restart and self._journal_path.exists():
            self._journal_path.unlink()
        cfg = self.store_dir / "session.cfg"
        cfg.write_text(session_settings(params, self.store_dir))
        self.session_id = fix.SessionID("FIX.4.4", params.sender_comp_id, params.target_comp_id)
        self._settings = fix.SessionSettings(str(cfg))
        self._app = _App(self)
        self._store = fix.FileStoreFactory(self._settings)
        self._log = fix.FileLogFactory(self._settings)
        if fix.Session.doesSessionExist(self.session_id):
            raise RuntimeError(f"FIX session {self.session_id.toString()} is already open in this process")
        self.initiator = fix.SocketInitiator(self._app, self._store, self._settings, self._log)
        self._sess = self.initiator.getSession(self.session_id)
        self._closed = False
        # the engine session is only touched under this lock once it runs: close() destroys it
        self._engine_lock = threading.Lock()
        self.backoff = ReconnectBackoff(base_s=float(params.reconnect_interval_s), max_s=float(params.reconnect_max_s),
                                        seed=zlib.crc32(self.session_id.toString().encode()))
        self.initiator.start()
        atexit.register(self.close)
        self._supervisor = threading.Thread(target=self._supervise, name=f"fix-reconnect-{self.name}", daemon=True)
        self._supervisor.start()
        if self.wait_logon(params.logon_timeout_s) and not self._pos_off and self._position_accounts():
            # the snapshot that the logon asked for: a deployment's start-up check sees "venue"
            with self.cv:
                self.cv.wait_for(lambda: self._pos_off or self._pos_ok_since_logon or
                                 (self._pos_round_n > 0 and not self._pos_round_t0),
                                 timeout=params.positions_timeout_ms / 1000)
            self._check_positions_timeout()

    def set_position_accounts(self, accounts: Sequence[str]) -> None:
        """The accounts of the deployment this gateway carries (the gateway hands them over at
        start): they are asked about besides ``positions_accounts`` and the orders' accounts;
        a new snapshot is asked for and waited for (at most ``positions_timeout_ms``)."""
        with self.cv:
            new = [a for a in accounts if a and a not in self._pos_accounts]
            self._pos_accounts.extend(new)
        if new and self.logged_on:
            self.refresh_positions(force=True)
            self.wait_positions(self.p.positions_timeout_ms / 1000)

    # ------------------------------------------------------------------ lifecycle
    def wait_logon(self, timeout_s: float) -> bool:
        with self.cv:
            return self.cv.wait_for(lambda: self.logged_on, timeout=timeout_s)

    def _supervise(self) -> None:
        """Reconnect backoff (:mod:`.backoff`): hold the engine's session disabled between
        attempt windows, enable it when the next one opens."""
        while not self._closed:
            with self._engine_lock:
                s = self._sess
                if s is None or self._closed:
                    return
                try:
                    in_flight = bool(s.sentLogon() and not s.receivedLogon())
                    act = self.backoff.step(time.monotonic_ns(), self.logged_on, in_flight)
                    # never disable a session that logged on since the step (a logon in between)
                    if act == "disable" and not self.logged_on:
                        s.logout("reconnect backoff")
                        self._count("reconnect_pauses")
                    elif act == "enable":
                        s.logon()
                        self._count("reconnect_windows")
                except Exception:  # noqa: BLE001 - the supervisor must outlive any engine error
                    self._count("supervisor_errors")
            with self.cv:
                due = self.backoff.due_ns()
                wait = 0.5 if due is None else min(0.5, max(0.01, (due - time.monotonic_ns()) / 1e9))
                # a logon or a drop wakes it at once (the state it reports follows the session)
                was = self.logged_on
                self.cv.wait_for(lambda: self._closed or self.logged_on != was, timeout=wait)

    def close(self) -> None:
        """Stop the session: a Logout when logged on (the engine waits for the venue's, at most
        its LogoutTimeout), else at once; the store keeps the sequence numbers. Idempotent;
        the gateway calls it when it stops, atexit is the backstop."""
        if self._closed:
            return
        self._closed = True
        with self.cv:
            self.cv.notify_all()  # the supervisor stops
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001
            pass
        with self._engine_lock:
            try:
                self.initiator.stop(not self.logged_on)
            except Exception:  # noqa: BLE001
                pass
            # the engine keeps a session registered until its initiator is destroyed: drop ours
            # so that a new adapter (a restart in this process) can open the same session
            self._sess = None
            self.initiator = None
        with self.cv:
            self.logged_on = False
            self.cv.notify_all()
        if self._ctl is not None:
            try:
                self._ctl[0].close()
            except OSError:
                pass

    def seq_nums(self) -> tuple[int, int]:
        """(next sequence number we send, next we expect), from the engine's store."""
        s = self._sess
        return (s.getExpectedSenderNum(), s.getExpectedTargetNum()) if s is not None else (0, 0)

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _callback_error(self, e: BaseException) -> None:
        """A bug met in an engine callback: counted and kept as bad input, never raised into
        the engine (a Python exception that is not the engine's own aborts the process there)."""
        import traceback

        self._count("callback_errors")
        self._bad("CALLBACK_ERROR", f"{type(e).__name__}: {e}"[:300])
        traceback.print_exception(e)  # the worker's log: where the bug is

    def _bad(self, reason: str, detail: str, tag: int = 0) -> None:
        self._count("bad_input")
        b = {"reason": reason, "detail": detail, "tag": tag, "ts_ns": self.clock.now_ns()}
        with self.cv:
            self.bad_input.append(b)
            self.bad_input_recent.append(b)
            del self.bad_input[:-10_000]  # a gateway that never drains cannot grow it without end

    # ------------------------------------------------------------------ journal (our orders, for a restart)
    def _journal(self, rec: list[Any]) -> None:
        with open(self._journal_path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def _load_journal(self) -> int:
        if not self._journal_path.exists():
            return 0
        n = 0
        for line in self._journal_path.read_text().splitlines():
            try:
                rec = json.loads(line)
                if rec[0] == "O":
                    req = OrderRequest.model_validate_json(rec[1])
                    self.orders[req.client_order_id] = req
                    self.views[req.client_order_id] = OrderState(request=req, status=OrderStatus.UNKNOWN)
                    n += 1
            except (ValueError, IndexError, TypeError):
                self._count("journal_unreadable")
        return n

    def recovered_orders(self) -> list[tuple[OrderRequest, ExecutionReport]]:
        """After a gateway restart: every order of the journal with the venue's STATUS of it
        (a status request each; orders the venue never saw are left out)."""
        out = []
        for coid, req in list(self.orders.items()):
            rep = self.query(coid)
            if rep is not None:
                out.append((req, rep))
        return out

    # ------------------------------------------------------------------ engine callbacks
    def _on_logon(self) -> None:
        with self.cv:
            self.logged_on = True
            self._count("logons")
            self.cv.notify_all()
        self._logon_requests()

    def _logon_requests(self) -> None:
        """What a logon asks: the status of every order left UNKNOWN (answers are pushed as
        STATUS reports) and the market-data subscription."""
        with self.cv:
            unknown = [c for c, st in self.views.items() if st.status is OrderStatus.UNKNOWN]
        for coid in unknown:
            self._send_status_request(coid)
        self.refresh_positions(force=True)
        if self.p.market_data == "fix":
            # a venue's subscriptions end with the session: subscribe again; the snapshot (W)
            # that answers it replaces whatever the books missed while we were away
            self._md_loss(list(self._md_books), ask=False)
            self._md_request(list(self._md_books), C.MD_SUBSCRIBE)

    def _on_logout(self) -> None:
        with self.cv:
            was = self.logged_on
            self.logged_on = False
            if was:
                self._count("logouts")
            for w in list(self._places.values()) + list(self._cancels.values()) + list(self._queries.values()):
                w.dropped = True
            # a snapshot speaks for the session it came on: the next logon asks again
            self._pos_ok_since_logon = False
            self._pos_round, self._pos_round_t0 = {}, 0
            if not self._pos_off:
                self._pos_reason = "session down: a snapshot is asked for on the next logon"
            self.cv.notify_all()

    def _to_admin(self, msg: Any) -> None:
        mt = C.msg_type(msg)
        if mt == "A":
            if self.p.username is not None:
                msg.setField(553, self.p.username.resolve())
            if self.p.password is not None:
                msg.setField(554, self.p.password.resolve())
        elif mt == "3":  # we refuse a malformed message from the venue (the engine's session Reject)
            self._bad("SESSION_REJECT_SENT", C.get(msg, C.TEXT) or "", int(C.get(msg, C.REF_TAG_ID) or 0))
        elif mt == "5":
            self._count("logouts_sent")

    def _from_admin(self, msg: Any) -> None:
        mt = C.msg_type(msg)
        now = self.clock.now_ns()
        if mt == "0":
            self.last_heartbeat_ns = now
            tid = C.get(msg, 112)
            with self.cv:
                t1 = self._probe_out.pop(tid, None) if tid else None
                if t1 is not None:
                    sent = C.get_header(msg, C.SENDING_TIME)
                    if sent:
                        t2 = C.parse_utc_timestamp(sent)
                        self._probe_done.append((t1, t2, t2, now))
                        del self._probe_done[:-16]
        elif mt == "5":
            self.last_logout_text = C.get(msg, C.TEXT) or ""
            self._count("logouts_received")
        elif mt == "3":
            self._count("session_rejects_received")
            if C.get(msg, C.REF_MSG_TYPE) == "AN":
                self._positions_unsupported(f"session Reject of RequestForPositions: {C.get(msg, C.TEXT) or ''}")
            self._bad("SESSION_REJECT_RECEIVED", C.get(msg, C.TEXT) or "", int(C.get(msg, C.REF_TAG_ID) or 0))
        elif mt == "4":
            self._count("gap_fills_received" if C.get(msg, 123) == "Y" else "seq_resets_received")
            if self.p.market_data == "fix" and self.logged_on:
                # messages the venue would not resend (its market data, as venues do): the books
                # may have missed updates; a snapshot of each is asked for
                self._md_loss(list(self._md_books), ask=True)
        elif mt == "2":
            self._count("resend_requests_received")
            # the engine answers with a gap fill (we keep no messages to resend): whatever we
            # sent in that range is gone, including the requests a logon makes (status of orders
            # left UNKNOWN, the market-data subscription). Those are safe to repeat: they are
            # sent again shortly after (from poll, once the gap fill is out; never orders)
            self._reissue_at = now + 200 * _MS

    def _from_app(self, msg: Any) -> None:
        mt = C.msg_type(msg)
        if mt in ("8", "9"):
            try:
                if mt == "8":
                    with self.cv:
                        parsed = C.parse_execution_report(msg, self.smap, self._cancel_of)
                else:
                    req = self.orders.get(C.need(msg, C.ORIG_CL_ORD_ID))
                    parsed = C.parse_cancel_reject(msg, self.smap, req.instrument if req else "")
            except C.FixDecodeError as e:
                self._bad("MALFORMED_REPORT", str(e), e.tag)
                if e.tag:
                    raise fix.IncorrectTagValue(e.tag)
                return
            self._on_report(parsed)
        elif mt == "j":
            if C.get(msg, C.REF_MSG_TYPE) == "AN":
                self._count("position_requests_rejected")
                self._bad("BUSINESS_REJECT", f"AN: {C.get(msg, C.TEXT) or 'business message reject'}")
                self._positions_unsupported(f"BusinessMessageReject of RequestForPositions: {C.get(msg, C.TEXT) or ''}")
                return
            self._on_business_reject(msg)
        elif mt in ("AO", "AP"):
            self._on_position_message(mt, msg)
        elif mt in ("W", "X"):
            self._on_md(msg)
        elif mt == "Y":
            self._count("md_request_rejects")
            self._bad("MD_REQUEST_REJECTED", f"MarketDataRequest {C.get(msg, C.MD_REQ_ID)}: "
                      f"{C.get(msg, C.TEXT) or C.get(msg, C.MD_REQ_REJ_REASON) or 'rejected'}", C.MD_REQ_REJ_REASON)
        else:
            self._bad("UNSUPPORTED_MESSAGE", f"message type {mt!r}")
            raise fix.UnsupportedMessageType()

    # ------------------------------------------------------------------ broker positions (AN, AO, AP)
    def _position_accounts(self) -> list[tuple[str, str]]:
        """(our account, the broker's Account (1) to ask) pairs. With ``account`` set every order
        goes out under it: the broker's position can be attributed only when exactly one of our
        accounts trades through the session; otherwise none (the reason is kept)."""
        with self.cv:
            ours = list(dict.fromkeys(self._pos_accounts + [st.request.account for st in self.views.values()
                                                             if st.request.account]))
        if self.p.account:
            if len(ours) > 1:
                self._pos_reason = (f"account {self.p.account!r} carries {len(ours)} of our accounts "
                                    f"({', '.join(ours)}): the broker's position cannot be split between them")
                self._drop_snapshot()  # one filed under a single account before is not the venue's word now
                return []
            if not ours:  # never file the broker's figures under its own account id: not one of ours
                self._pos_reason = (f"no account of the deployment known yet for broker account {self.p.account!r} "
                                    "(the gateway hands them over at start, or set positions_accounts)")
                return []
            return [(ours[0], self.p.account)]
        return [(a, a) for a in ours]

    def _drop_snapshot(self) -> None:
        """Forget the broker's snapshot and any round in flight (its answers are then strays):
        positions are the session's fills until a new one comes."""
        with self.cv:
            self._pos_ok_since_logon = False
            self._pos_snapshot = None
            self._pos_round, self._pos_round_t0 = {}, 0
            self.cv.notify_all()

    def refresh_positions(self, *, force: bool = False) -> bool:
        """Ask the broker for a snapshot of its positions (one AN per account), unless a round is
        in flight (``force``: a new round replaces it), the query is off or the broker refused
        it. Returns whether a round was sent."""
        if self._pos_off or not self.logged_on:
            return False
        now = time.monotonic_ns()
        with self.cv:
            if self._pos_round_t0 and not force and now - self._pos_round_t0 < self.p.positions_timeout_ms * _MS:
                return False
        accounts = self._position_accounts()
        if not accounts:
            if not self.p.account:
                self._pos_reason = "no account to ask about (set positions_accounts)"
            return False
        with self.cv:
            self._pos_round_n += 1
            rnd = self._pos_round_n
            self._pos_round = {f"{self.name}-pos{rnd}-{k}": {"account": ours, "broker": broker, "total": None,
                                                              "lines": {}, "n": 0, "acked": False}
                               for k, (ours, broker) in enumerate(accounts)}
            self._pos_round_t0 = now
            self._pos_round_as_of = self.clock.now_ns()
            reqs = [(rid, r["broker"]) for rid, r in self._pos_round.items()]
        try:
            for rid, broker in reqs:
                self._send_app(C.position_request(rid, broker, self.clock.now_ns()))
        except VenueDisconnected:
            with self.cv:
                self._pos_round, self._pos_round_t0 = {}, 0
            return False
        self._count("position_requests")
        return True

    def wait_positions(self, timeout_s: float) -> bool:
        """Wait until the round in flight ends (complete, refused or malformed); True when a
        complete snapshot has come since the logon."""
        with self.cv:
            self.cv.wait_for(lambda: not self._pos_round_t0, timeout=timeout_s)
        self._check_positions_timeout()
        return self.positions_source == "venue"

    def _check_positions_timeout(self) -> None:
        with self.cv:
            t0 = self._pos_round_t0
            if not t0 or time.monotonic_ns() - t0 < self.p.positions_timeout_ms * _MS:
                return
            self._pos_round, self._pos_round_t0 = {}, 0
            self._count("position_timeouts")
            why = f"no complete answer to RequestForPositions within {self.p.positions_timeout_ms:.0f} ms"
            self._pos_reason = why if self._pos_snapshot is None or not self._pos_ok_since_logon else \
                f"last refresh: {why} (the snapshot shown is older)"
            self.cv.notify_all()

    def _positions_unsupported(self, why: str) -> None:
        """The broker refused RequestForPositions: never asked again in this session's life;
        positions stay the session's fills."""
        with self.cv:
            self._pos_off = self._pos_reason = why[:300]
            self._pos_ok_since_logon = False
            self._pos_snapshot = None
            self._pos_round, self._pos_round_t0 = {}, 0
            self.cv.notify_all()
        self._count("position_requests_refused")

    def _pos_bad(self, why: str, tag: int) -> None:
        """A malformed AO/AP: counted as bad input; the round it belongs to cannot complete (the
        last complete snapshot stays); positions() asks again."""
        self._bad("MALFORMED_POSITION_REPORT", why[:300], tag)
        with self.cv:
            if self._pos_round:
                self._pos_round, self._pos_round_t0 = {}, 0
                self._pos_reason = f"last refresh: a malformed position report ({why[:200]})"
            self.cv.notify_all()

    def _on_position_message(self, mt: str, msg: Any) -> None:
        try:
            raw = msg.toString()
            if mt == "AO":
                ack = C.parse_position_ack(raw)
                rid = ack.req_id
            else:
                line = C.parse_position_report(raw, self.smap)
                rid = line.req_id
        except Exception as e:  # noqa: BLE001 - never raised into the engine or the gateway
            self._pos_bad(f"{mt}: {e}", getattr(e, "tag", 0) if isinstance(e, C.FixDecodeError) else 0)
            return
        with self.cv:
            r = self._pos_round.get(rid)
            if r is None:
                self._count("position_reports_unrequested")  # an old round's, or unsolicited
                return
            if mt == "AO":
                self._count("position_acks")
                if ack.status == C.POS_STATUS_REJECTED or ack.result not in (C.POS_VALID, C.POS_NONE_FOUND):
                    refused = True
                else:
                    refused = False
                    r["acked"] = True
                    r["total"] = 0 if ack.result == C.POS_NONE_FOUND else ack.total
            else:
                self._count("position_reports")
                refused = False
                if line.result not in (C.POS_VALID,):
                    r = None
                else:
                    if line.account and line.account != self._pos_round[rid]["broker"]:
                        r = None
                    else:
                        r["lines"][line.instrument] = r["lines"].get(line.instrument, 0) + line.net
                        r["n"] += 1
                        if line.total is not None:
                            r["total"] = line.total
        if mt == "AO" and refused:
            self._positions_unsupported(f"RequestForPositionsAck PosReqResult {ack.result} PosReqStatus {ack.status}: "
                                        f"{ack.text}")
            return
        if r is None:
            self._pos_bad(f"AP for {rid}: PosReqResult {line.result} or Account {line.account!r} is not what was asked",
                          C.POS_REQ_RESULT if line.result != C.POS_VALID else C.ACCOUNT)
            return
        self._pos_maybe_complete()

    def _pos_maybe_complete(self) -> None:
        with self.cv:
            rnd = self._pos_round
            if not rnd or any(r["total"] is None or r["n"] < r["total"] or (r["total"] == 0 and not r["acked"])
                              for r in rnd.values()):
                return
            snap: dict[str, dict[str, int]] = {}
            for r in rnd.values():
                held = {i: q for i, q in r["lines"].items() if q}
                if held:
                    acc = snap.setdefault(r["account"], {})
                    for i, q in held.items():
                        acc[i] = acc.get(i, 0) + q
            self._pos_snapshot = snap
            self._pos_as_of_ns = self._pos_round_as_of
            self._pos_done_ns = self.clock.now_ns()
            self._pos_ok_since_logon = True
            self._pos_round, self._pos_round_t0 = {}, 0
            self._pos_reason = ""
            self.cv.notify_all()
        self._count("position_snapshots")

    def positions_status(self) -> dict[str, Any]:
        """How fresh the positions are: their source, when the last complete snapshot was asked
        for (``as_of_ns``, our clock) and its age, whether a refresh is in flight, and why the
        session is at ``session fills`` when it is."""
        with self.cv:
            now = self.clock.now_ns()
            return {"source": self.positions_source, "query": not self._pos_off,
                    "as_of_ns": self._pos_as_of_ns or None,
                    "age_ms": (now - self._pos_as_of_ns) / _MS if self._pos_as_of_ns else None,
                    "refreshing": bool(self._pos_round_t0), "reason": self._pos_reason,
                    "accounts": list(self._pos_accounts)}

    # ------------------------------------------------------------------ market data
    def set_waker(self, fn: Any) -> None:
        """``fn()`` is called (from the engine's thread) when market data or a pushed report
        arrives with nothing queued before it: the gateway's housekeeping wakes at once
        instead of at its next period."""
        self._waker = fn

    def _wake(self) -> None:
        fn = self._waker
        if fn is not None:
            try:
                fn()
            except Exception:  # noqa: BLE001 - a closed loop: the next period drains it
                self._count("wake_errors")

    def _md_request(self, instruments: list[str], kind: str) -> bool:
        self._md_req_n += 1
        rid = f"{self.name}-md{self._md_req_n}"
        try:
            self._send_app(C.md_request(rid, [self.smap.symbol(i) for i in instruments], kind, self.p.market_depth))
        except VenueDisconnected:
            return False
        self._count("md_requests")
        if kind == C.MD_SNAPSHOT:
            now = self.clock.now_ns()
            with self.cv:
                for i in instruments:
                    self._snap_asked[i] = now
        return True

    def _md_loss(self, instruments: list[str], *, ask: bool) -> None:
        """Updates of ``instruments`` may have been lost: their next message shows the gateway a
        sequence gap (STALE until a snapshot); with ``ask``, a snapshot is asked for now."""
        with self.cv:
            for i in instruments:
                self._md_seq[i] += 1
        self._count("md_losses")
        if ask:
            self._md_request(instruments, C.MD_SNAPSHOT)

    def _on_md(self, msg: Any) -> None:
        now = self.clock.now_ns()
        try:
            # groups read from the text (the session keeps the wire order of fields)
            entries = C.parse_md(msg.toString(), self.smap)
        except Exception as e:  # noqa: BLE001 - the engine's parse errors too: never raised into it
            tag = getattr(e, "tag", 0) if isinstance(e, C.FixDecodeError) else 0
            self._bad("MALFORMED_MARKET_DATA", str(e)[:200], tag)
            self._md_loss(list(self._md_books), ask=True)
            return
        sent = C.get_header(msg, C.SENDING_TIME)
        sent_ns = C.parse_utc_timestamp(sent) if sent else now
        full = C.msg_type(msg) == "W"
        touched: dict[str, int] = {}
        with self.cv:
            if full:
                inst = entries[0].instrument if entries else self.smap.instrument(C.need(msg, C.SYMBOL))
                book = self._md_books.get(inst)
                if book is None:
                    self._bad("UNKNOWN_INSTRUMENT", f"market data for {inst!r}, not one of this session's", C.SYMBOL)
                    return
                book.replace(entries)
                touched[inst] = book.ts_ns or sent_ns
                self._snap_asked.pop(inst, None)
                self._count("md_snapshots")
            else:
                for e in entries:
                    book = self._md_books.get(e.instrument)
                    if book is None:
                        self._bad("UNKNOWN_INSTRUMENT", f"market data for {e.instrument!r}, not one of this session's",
                                  C.SYMBOL)
                        continue
                    book.apply(e)
                    touched[e.instrument] = max(touched.get(e.instrument, 0), e.ts_ns or sent_ns)
                self._count("md_updates")
            was_empty = not self._md_out and not self._pushed
            for inst, ts in touched.items():
                self._md_seq[inst] += 1
                self._md_out.append((self._md_books[inst].wire(self._md_seq[inst], "snapshot" if full else "quote", ts),
                                     now))
            del self._md_out[:-10_000]  # a gateway that never drains cannot grow it without end
        if touched and was_empty:
            self._wake()

    def poll_market(self) -> list[tuple[dict[str, Any], int]]:
        """Market-data messages (the gateway's wire format) that arrived since the last call,
        each with the local time it arrived."""
        if not self._md_out:
            return []
        with self.cv:
            out, self._md_out = self._md_out, []
        return out

    # ------------------------------------------------------------------ routing
    def _on_report(self, pr: C.ParsedReport) -> None:
        rep = pr.report
        with self.cv:
            if pr.exec_id and pr.exec_id in self._exec_ids:
                self._count("duplicate_reports")
                return
            if pr.exec_id:
                self._exec_ids.add(pr.exec_id)
            coid = rep.client_order_id
            req = self.orders.get(coid)
            if req is None:
                self._bad("UNKNOWN_ORDER", f"report {rep.kind.value} for ClOrdID {coid!r} we never sent")
                return
            rep = rep.model_copy(update={"decision_id": req.decision_id, "leg": req.leg})
            if pr.poss_dup:
                self._count("recovered_reports")
            if rep.kind is ExecReportKind.STATUS:
                w = self._queries.get(coid)
                if w is not None and not w.done:
                    w.unknown = pr.unknown_order
                    w.reports.append(rep)
                    w.done = True
                    self.cv.notify_all()
                elif not pr.unknown_order:
                    self._pushed.append(rep)
                    self._wake()
                self._note_status(rep)
                return
            if rep.kind is ExecReportKind.REJECTED and rep.reason is RejectReason.DUPLICATE_ORDER:
                # the venue refused a second order with this id: the first one stands
                self._count("duplicate_order_refused")
                w = self._places.get(coid)
                if w is not None and not w.done:
                    w.reports.append(rep)
                    self.cv.notify_all()
                return
            self._apply(rep, pr.exec_id)
            cw = self._cancels.get(pr.cl_ord_id)
            if cw is not None and not cw.done and rep.kind in (ExecReportKind.CANCELED, ExecReportKind.CANCEL_REJECTED):
                cw.reports.append(rep)
                cw.done = True
                cw.unknown = pr.unknown_order
                self.cv.notify_all()
                return
            w = self._places.get(coid)
            if w is not None and not w.done:
                w.reports.append(rep)
                self.cv.notify_all()
                return
            self._pushed.append(rep)
            self._wake()

    def _on_business_reject(self, msg: Any) -> None:
        ref = C.get(msg, C.BUSINESS_REJECT_REF_ID) or ""
        text = C.get(msg, C.TEXT) or "business message reject"
        self._bad("BUSINESS_REJECT", f"{C.get(msg, C.REF_MSG_TYPE)}: {text}")
        with self.cv:
            req = self.orders.get(ref)
            w = self._places.get(ref)
            if req is None or w is None or w.done:
                return
            st = self.views[ref]
            rep = ExecutionReport(kind=ExecReportKind.REJECTED, client_order_id=ref, venue=self.venue.code,
                                  instrument=req.instrument, status=OrderStatus.REJECTED, reason=RejectReason.OTHER,
                                  text=f"BusinessMessageReject: {text}", decision_id=req.decision_id, leg=req.leg,
                                  venue_ts_ns=self.clock.now_ns(), filled_qty=st.filled_qty)
            self._apply(rep, "")
            w.reports.append(rep)
            self.cv.notify_all()

    def _note_status(self, rep: ExecutionReport) -> None:
        st = self.views.get(rep.client_order_id)
        if st is not None and st.status is OrderStatus.UNKNOWN and rep.status is not OrderStatus.UNKNOWN:
            st.status = rep.status
            st.filled_qty = max(st.filled_qty, rep.filled_qty)
            if rep.avg_price is not None:
                st.notional_filled = rep.avg_price * st.filled_qty

    def _apply(self, rep: ExecutionReport, exec_id: str) -> None:
        st = self.views.get(rep.client_order_id)
        if st is not None and st.status is OrderStatus.UNKNOWN:
            # an answer we had given up on (a resent report after ack_timeout_ms): the venue's word
            self._note_status(rep)
        elif st is not None:
            try:
                st.apply(rep)
            except Exception:  # noqa: BLE001 - the venue's word is recorded even if it surprises us
                self._count("unexpected_reports")
        req = self.orders[rep.client_order_id]
        f = rep.fill
        self.drop_copy_log.append({
            "ts_ns": self.clock.now_ns(), "venue_ts_ns": rep.venue_ts_ns, "kind": rep.kind.value,
            "client_order_id": rep.client_order_id, "venue_order_id": rep.venue_order_id,
            "instrument": rep.instrument, "side": req.side.value, "account": req.account, "order_qty": req.qty,
            "status": rep.status.value, "filled_qty": rep.filled_qty, "leaves_qty": rep.leaves_qty,
            "trade_id": f.trade_id if f else "", "fill_qty": f.qty if f else 0,
            "fill_price": str(f.price) if f else "", "reason": rep.reason.value if rep.reason else "",
            "decision_id": req.decision_id, "leg": req.leg, "exec_id": exec_id,
        })

    # ------------------------------------------------------------------ order entry
    def connected(self, now_ns: int | None = None) -> bool:
        return self.logged_on

    def _send_app(self, msg: Any) -> None:
        s = self._sess
        if not self.logged_on or s is None:
            raise VenueDisconnected(f"{self.venue.code}: FIX session not logged on")
        if not s.send(msg):
            raise VenueDisconnected(f"{self.venue.code}: the FIX engine did not send the message")

    def send(self, req: OrderRequest) -> tuple[str, int]:
        """Write a NewOrderSingle; :meth:`answer` reads its answer. Raises
        :class:`VenueDisconnected` (nothing sent) when not logged on."""
        if not self.logged_on:
            raise VenueDisconnected(f"{self.venue.code}: FIX session not logged on")
        msg = C.new_order_single(req, self.smap, self.p.account, self.clock.now_ns())
        coid = req.client_order_id
        with self.cv:
            first = coid not in self.orders
            self.orders[coid] = req
            if first:
                self.views[coid] = OrderState(request=req, status=OrderStatus.SUBMITTED)
                self._journal(["O", req.model_dump_json()])
            self._places[coid] = _Wait()
        t0 = time.monotonic_ns()
        try:
            self._send_app(msg)
        except VenueDisconnected:
            with self.cv:
                self._places.pop(coid, None)
                if first:
                    self.orders.pop(coid, None)
                    self.views.pop(coid, None)
            raise
        self._count("orders_sent")
        return coid, t0

    def answer(self, ticket: tuple[str, int]) -> PlaceReply:
        """The venue's answer to :meth:`send`: the first report, and for IOC/FOK/market orders
        every report up to the order's end; ``lost`` if none came within ``ack_timeout_ms``."""
        coid, t0 = ticket
        req = self.orders[coid]
        immediate = req.immediate
        deadline = t0 + int(self.p.ack_timeout_ms * _MS)

        def ready() -> bool:
            w = self._places[coid]
            if w.dropped:
                return True
            if not w.reports:
                return False
            return not immediate or w.reports[-1].status.is_terminal or \
                w.reports[-1].reason is RejectReason.DUPLICATE_ORDER

        with self.cv:
            self.cv.wait_for(ready, timeout=max(0.0, (deadline - time.monotonic_ns()) / 1e9))
            w = self._places.pop(coid)
            w.done = True
            reps = list(w.reports)
        self.last_answer_ns = latency = time.monotonic_ns() - t0  # waited for real (real_latency)
        if reps and reps[0].reason is RejectReason.DUPLICATE_ORDER:
            st = self.query(coid)
            return PlaceReply([st.model_copy(update={"text": "duplicate client order id: existing order"})]
                              if st is not None else [], latency, lost=st is None)
        if not reps:
            with self.cv:
                self.views[coid].status = OrderStatus.UNKNOWN
            self._count("no_answer")
            return PlaceReply([], latency, lost=True)
        return PlaceReply(reps, latency)

    def place(self, req: OrderRequest) -> PlaceReply:
        return self.answer(self.send(req))

    def cancel(self, client_order_id: str) -> tuple[ExecutionReport | None, int]:
        """OrderCancelRequest: the CANCELED report, a CANCEL_REJECTED one, or None when the
        venue has no such order. Raises :class:`VenueDisconnected` when not logged on or
        without an answer within ``ack_timeout_ms``."""
        req = self.orders.get(client_order_id)
        if req is None:
            return None, 0
        with self.cv:
            self._n_cancel += 1
            cid = f"{client_order_id}:X{self._n_cancel}"
            self._cancel_of[cid] = client_order_id
            w = self._cancels[cid] = _Wait()
        t0 = time.monotonic_ns()
        try:
            self._send_app(C.cancel_request(req, cid, self.smap, self.p.account, self.clock.now_ns()))
            with self.cv:
                self.cv.wait_for(lambda: w.done or w.dropped, timeout=self.p.ack_timeout_ms / 1000)
        finally:
            with self.cv:
                self._cancels.pop(cid, None)
                w.done = True
        self.last_answer_ns = latency = time.monotonic_ns() - t0  # waited for real (real_latency)
        if not w.reports:
            raise VenueDisconnected(f"{self.venue.code}: no answer to the cancel within {self.p.ack_timeout_ms:.0f} ms")
        if w.unknown:
            return None, latency
        return w.reports[0], latency

    def _send_status_request(self, coid: str) -> bool:
        try:
            self._send_app(C.status_request(coid, self.orders.get(coid), self.smap))
            return True
        except VenueDisconnected:
            return False

    def query(self, client_order_id: str) -> ExecutionReport | None:
        """OrderStatusRequest: the venue's STATUS of the order; None when it has no such order.
        Without an answer in time: our last view of it, status UNKNOWN kept."""
        with self.cv:
            w = self._queries[client_order_id] = _Wait()
        try:
            if not self._send_status_request(client_order_id):
                return self._last_known(client_order_id, "FIX session not logged on")
            with self.cv:
                self.cv.wait_for(lambda: w.done or w.dropped, timeout=self.p.ack_timeout_ms / 1000)
        finally:
            with self.cv:
                if self._queries.get(client_order_id) is w:
                    del self._queries[client_order_id]
                w.done = True
        if w.reports:
            return None if w.unknown else w.reports[0]
        self._count("status_timeouts")
        return self._last_known(client_order_id, "no answer to the status request")

    def _last_known(self, coid: str, why: str) -> ExecutionReport | None:
        st = self.views.get(coid)
        if st is None:
            return None
        return self._status_report(st, f"{why}: last known state")

    def _status_report(self, st: OrderState, text: str = "") -> ExecutionReport:
        r = st.request
        return ExecutionReport(kind=ExecReportKind.STATUS, client_order_id=r.client_order_id,
                               venue_order_id=st.venue_order_id, venue=self.venue.code, instrument=r.instrument,
                               status=st.status, filled_qty=st.filled_qty,
                               leaves_qty=st.leaves_qty if st.status.is_live else 0, avg_price=st.avg_price,
                               text=text, decision_id=r.decision_id, leg=r.leg)

    # ------------------------------------------------------------------ views
    def open_orders(self) -> list[ExecutionReport]:
        """Live orders as the venue's reports left them (FIX 4.4 has no portable open-orders
        call the adapter relies on; OrderMassStatusRequest is broker-specific)."""
        with self.cv:
            return [self._status_report(st) for st in self.views.values() if st.status.is_live]

    def positions(self) -> dict[str, dict[str, int]]:
        """Net lots per account and instrument. With ``positions_source`` ``venue``: the broker's
        last complete PositionReport snapshot (as of ``positions_status()["as_of_ns"]``; fills
        after it are not in it), and a refresh is asked for (unless one is in flight), so the
        next call answers from a newer one. Otherwise: the net of the fills reported on this
        session (and a snapshot is asked for when the query is on)."""
        self._check_positions_timeout()
        self.refresh_positions()
        with self.cv:
            if self.positions_source == "venue" and self._pos_snapshot is not None:
                return {a: dict(p) for a, p in self._pos_snapshot.items()}
        return self.session_positions()

    def session_positions(self) -> dict[str, dict[str, int]]:
        """Net filled lots per account and instrument from the fills reported on this session."""
        out: dict[str, dict[str, int]] = {}
        with self.cv:
            for st in self.views.values():
                if st.filled_qty:
                    acc = out.setdefault(st.request.account, {})
                    acc[st.request.instrument] = acc.get(st.request.instrument, 0) + st.filled_qty * st.request.side.sign
        return {a: {i: q for i, q in p.items() if q} for a, p in out.items() if any(p.values())}

    def drop_copy(self, since_ns: int = 0) -> list[dict[str, Any]]:
        with self.cv:
            return [d for d in self.drop_copy_log if d["ts_ns"] >= since_ns]

    def poll(self, now_ns: int | None = None) -> list[ExecutionReport]:
        """Reports that arrived with nobody waiting (fills of resting orders, recovered reports)."""
        if self._reissue_at and self.logged_on and self.clock.now_ns() >= self._reissue_at:
            self._reissue_at = 0
            self._count("requests_reissued")
            self._logon_requests()
        if self._pos_round_t0:
            self._check_positions_timeout()
        with self.cv:
            out, self._pushed = self._pushed, []
        return out

    def next_due_ns(self) -> int | None:
        return self.clock.now_ns() if self._pushed or self._md_out else None

    def drain_bad_input(self) -> list[dict[str, Any]]:
        """Malformed input seen since the last call (for the gateway to record as BAD_INPUT)."""
        if not self.bad_input:
            return []
        with self.cv:
            out, self.bad_input = self.bad_input, []
        return out

    def status(self) -> dict[str, Any]:
        """The FIX session as ``xmc status`` shows it (``status()["session"]`` of the gateway)."""
        out, exp = self.seq_nums()
        with self.cv:
            unknown = sum(1 for st in self.views.values() if st.status is OrderStatus.UNKNOWN)
            recent = list(self.bad_input_recent)
        return {"kind": "fix", "session_id": self.session_id.toString(),
                "endpoint": f"{self.p.host}:{self.p.port}",
                "state": "CLOSED" if self._closed else ("LOGGED_ON" if self.logged_on else "DISCONNECTED"),
                "logged_on": self.logged_on, "next_sender_seq": out, "next_target_seq": exp,
                "last_answer_us": self.last_answer_ns / 1000,
                "last_heartbeat_ns": self.last_heartbeat_ns, "last_logout_text": self.last_logout_text,
                "orders": len(self.orders), "unknown_orders": unknown, "store": str(self.store_dir),
                "market_data": self.p.market_data, "md_awaiting_snapshot": sorted(self._snap_asked),
                "reconnect": {"state": self.backoff.state, "failures": self.backoff.failures,
                              "recent_pauses_s": list(self.backoff.delays[-5:])},
                "positions": self.positions_status(),
                "counters": dict(self.counters), "bad_input": recent}

    # ------------------------------------------------------------------ clock and market data
    def clock_probe(self) -> tuple[int, int, int, int]:
        """A TestRequest goes out now; the round trip returned is the latest one answered (the
        Heartbeat's SendingTime is the venue's t2 = t3). Before any answer, an impossible
        round trip, which the calibrator refuses and counts."""
        now = self.clock.now_ns()
        s = self._sess
        if self.logged_on and s is not None:
            self._probe_n += 1
            tid = f"P{self._probe_n}"
            m = C.new_message("1")
            m.setField(112, tid)
            with self.cv:
                self._probe_out[tid] = now
                if len(self._probe_out) > 64:
                    self._probe_out.pop(next(iter(self._probe_out)))
            s.send(m)
        with self.cv:
            if self._probe_done:
                return self._probe_done.pop()
        return now, now, now, now - 1

    def snapshot(self, instrument: str) -> dict[str, Any] | None:
        """Gap repair by re-request: a snapshot MarketDataRequest goes out (at most once per
        ``snapshot_retry_ms`` per instrument) and None is returned; the venue's W arrives
        later through :meth:`poll_market` as a snapshot message, which closes the gap."""
        if self.p.market_data != "fix" or not self.logged_on or instrument not in self._md_books:
            return None
        asked = self._snap_asked.get(instrument)
        if asked is None or self.clock.now_ns() - asked >= self.p.snapshot_retry_ms * _MS:
            self._md_request([instrument], C.MD_SNAPSHOT)
        return None

    def on_market(self, quote: Any) -> tuple[list[ExecutionReport], list[dict[str, Any]]]:
        """A feed quote: forwarded to a loopback exchange's control channel when configured
        (so it trades against the same market). With ``market_data: control`` what that
        exchange publishes for it comes back here as this gateway's market data; with ``fix``
        it comes over the session (:meth:`poll_market`); a real venue has its own market and
        takes no quotes from us (nothing)."""
        if not self.p.exchange_control:
            return [], []
        try:
            if self.p.market_data == "control":
                got = self._control({"cmd": "market", "quotes": [quote.model_dump(mode="json")], "wire": True})
                return [], list(got.get("wire") or []) if isinstance(got, dict) else []
            self._control({"cmd": "market", "quotes": [quote.model_dump(mode="json")]})
        except (OSError, RuntimeError, ValueError):
            self._count("control_errors")
        return [], []

    def inject(self, fault: dict[str, Any]) -> None:
        """Faults reach a loopback exchange (``exchange_control``): its session faults
        (:data:`~.params.SESSION_FAULTS`) by name, anything else as a simulated-venue fault."""
        if not self.p.exchange_control:
            raise ValueError("inject: this FIX session has no exchange_control (a real venue takes no faults)")
        kind = fault.get("kind")
        if kind in SESSION_FAULTS:
            self._control({"cmd": kind, **{k: v for k, v in fault.items() if k != "kind"}})
        else:
            self._control({"cmd": "inject", "fault": fault})

    def _control(self, cmd: dict[str, Any]) -> Any:
        assert self.p.exchange_control
        for attempt in (0, 1):
            if self._ctl is None:
                host, _, port = self.p.exchange_control.rpartition(":")
                s = socket.create_connection((host or "127.0.0.1", int(port)), timeout=5)
                self._ctl = (s, s.makefile("rwb"))
            s, f = self._ctl
            try:
                f.write((json.dumps(cmd, default=str) + "\n").encode())
                f.flush()
                line = f.readline()
                if not line:
                    raise OSError("control channel closed")
                reply = json.loads(line)
                if not reply.get("ok"):
                    raise RuntimeError(reply.get("error"))
                return reply.get("result")
            except OSError:
                self._ctl = None
                if attempt:
                    raise
        return None


def build_fix(params: FixVenueParams, venue: Venue, instruments: Sequence[Instrument], clock: Clock, *,
              gateway: str = "", restart: bool = False) -> FixAdapter:
    """The ``fix`` adapter of gateway ``gateway`` (registered in :mod:`xmc_actors.venues`)."""
    return FixAdapter(params, venue, instruments, clock, gateway=gateway, restart=restart)
