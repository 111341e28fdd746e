"""Live streams over WebSocket (``/v1/stream``): one poller per API replica reads the deployment
(quotes from the gateways, each strategy's computed spread or basis with its bands, trading
states, open alerts, the latest pair outcomes) while at least one client listens, and
publishes them into a :class:`~xmc_actors.core.stream_fanout.Fanout`; each client's writer
sends it the changed topics at most ``hz`` times a second. A client that does not read is
dropped after ``max_lag_s`` (close code 1008 with the reason); it never holds up the poller, the
other clients or the deployment (whose actors are polled once per replica, not per client).

Protocol: connect, send ``{"token": "...", "topics": ["quotes", ...], "hz": 2}`` as the first
message (or send the ``Authorization`` header and nothing), receive ``{"hello": {...}}``, then
messages ``{"ts_ns": ..., "<topic>": value, ...}``.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from typing import Any

from ..core.clock import Clock, SystemClock
from ..core.stream_fanout import TOPICS, Fanout
from .backend import Backend

log = logging.getLogger(__name__)
_ids = itertools.count(1)


class StreamHub:
    def __init__(self, backend: Backend, max_hz: float, *, clock: Clock | None = None, poll_s: float = 0.25,
                 max_lag_s: float = 2.0) -> None:
        self.backend = backend
        self.clock = clock or SystemClock()
        self.fan = Fanout(self.clock, max_hz, max_lag_s)
        self.poll_s = poll_s
        self.max_lag_s = max_lag_s
        self._task: asyncio.Task[None] | None = None
        self._closers: dict[str, asyncio.Event] = {}
        self.polls = 0
        self.poll_errors = 0
        self.poll_ms_max = 0.0
        self.last_outcome = ""

    def stats(self) -> dict[str, Any]:
        return {**self.fan.stats(), "polls": self.polls, "poll_errors": self.poll_errors,
                "poll_ms_max": round(self.poll_ms_max, 2)}

    # -- the poller: one per replica, only while someone listens ------------------------------
    def _ensure_polling(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll_loop())

    async def _poll_loop(self) -> None:
        while self.fan.clients:
            t0 = time.perf_counter()
            try:
                await self.poll_once()
            except Exception as e:  # noqa: BLE001 - a poll that fails is counted; the streams go on
                self.poll_errors += 1
                log.warning("stream poll failed: %s", type(e).__name__)
            self.poll_ms_max = max(self.poll_ms_max, (time.perf_counter() - t0) * 1000)
            for cid in self.fan.too_slow():
                ev = self._closers.get(cid)
                if ev is not None:
                    ev.set()
            await asyncio.sleep(self.poll_s)

    async def poll_once(self) -> None:
        self.polls += 1
        st, ss, qs, outs = await asyncio.gather(self.backend.risk_status(), self.backend.strategies(),
                                                self.backend.quotes(), self.backend.summaries(), return_exceptions=True)
        if not isinstance(qs, BaseException):
            self.fan.publish("quotes", qs)
        if not isinstance(ss, BaseException):
            self.fan.publish("spreads", {n: s.get("last_signal") or {} for n, s in ss.items()})
        if not isinstance(st, BaseException):
            self.fan.publish("states", {"trading_states": st.get("trading_states") or {},
                                        "throttled": st.get("throttled") or []})
            self.fan.publish("alerts", st.get("open_alerts") or [])
        if not isinstance(outs, BaseException):
            last = sorted(outs, key=lambda s: s.get("done_ns") or s.get("ts_ns") or 0)[-20:]
            self.fan.publish("outcomes", last)

    # -- one client ------------------------------------------------------------------------------
    async def serve(self, ws: Any, topics: list[str] | None, hz: float | None, who: str) -> None:
        """Stream to ``ws`` until it goes away or is too slow."""
        cid = f"{who}#{next(_ids)}"
        rate = self.fan.add(cid, topics, hz)
        closer = self._closers[cid] = asyncio.Event()
        self._ensure_polling()
        await ws.send_text(json.dumps({"hello": {"client": cid, "topics": sorted(topics or TOPICS), "hz": rate,
                                                 "max_lag_s": self.max_lag_s}}))

        async def reader() -> None:
            try:
                while True:
                    msg = await ws.receive()
                    if msg.get("type") == "websocket.disconnect":
                        return
            except Exception:  # noqa: BLE001 - the connection went away
                return

        async def writer() -> None:
            while not closer.is_set():
                msg = self.fan.due(cid)
                if msg is not None:
                    msg["ts_ns"] = self.clock.now_ns()
                    try:
                        await asyncio.wait_for(ws.send_text(json.dumps(msg, default=str)), self.max_lag_s)
                    except asyncio.TimeoutError:
                        self.fan.remove(cid)
                        self.fan.stats_dropped += 1
                        return
                    self.fan.sent(cid)
                await asyncio.sleep(min(0.05, 1.0 / rate / 2))

        r, w = asyncio.ensure_future(reader()), asyncio.ensure_future(writer())
        gone = asyncio.ensure_future(closer.wait())
        try:
            await asyncio.wait({r, w, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            left = r.done()  # the client went away by itself
            for t in (r, w, gone):
                t.cancel()
            self.fan.remove(cid)
            self._closers.pop(cid, None)
            if not left:
                try:
                    await asyncio.wait_for(ws.close(code=1008, reason=f"too slow: a message not taken within "
                                                                      f"{self.max_lag_s:g} s"), 1.0)
                except Exception:  # noqa: BLE001
                    pass
