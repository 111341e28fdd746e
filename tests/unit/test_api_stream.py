"""Live streams (issue 20 item 2): the conflating fan-out (core/stream_fanout.py) with a
simulated clock, the WebSocket endpoint with FastAPI's TestClient (authentication, topics, rate),
and, on a real loopback socket, a client that never reads: dropped within its lag budget while a
reading client keeps its rate and the poller its pace (measured)."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest

from api_fakes import FakeBackend, api_config, make_tokens
from xmc_actors.core.clock import SimClock
from xmc_actors.core.stream_fanout import Fanout

S = 1_000_000_000
ENTRIES, TOKENS = make_tokens()


def test_fanout_conflates_and_paces_each_client():
    clock = SimClock()
    f = Fanout(clock, max_hz=4, max_lag_s=2)
    assert f.add("fast") == 4
    assert f.add("slow", ["quotes"], hz=1) == 1
    assert f.add("greedy", hz=100) == 4  # capped
    with pytest.raises(ValueError, match="topics: unknown bogus"):
        f.add("x", ["bogus"])
    with pytest.raises(ValueError, match="hz"):
        f.add("x", hz=0)
    for i in range(10):  # ten quote updates before anyone is served: nine conflated
        f.publish("quotes", {"SHFE.cu": i})
    f.publish("states", {"global": "ACTIVE"})
    f.publish("states", {"global": "ACTIVE"})  # the same value: not a change
    assert f.published == 11
    m = f.due("fast")
    assert m == {"quotes": {"SHFE.cu": 9}, "states": {"global": "ACTIVE"}}
    assert f.due("fast") is None  # still being written
    f.sent("fast")
    assert f.due("fast") is None  # nothing changed
    f.publish("quotes", {"SHFE.cu": 10})
    assert f.due("fast") is None  # not its time yet (4/s)
    clock.advance(S // 4)
    assert f.due("fast") == {"quotes": {"SHFE.cu": 10}}
    f.sent("fast")
    assert f.due("slow") == {"quotes": {"SHFE.cu": 10}}  # only its topic
    st = f.stats()["per_client"]
    assert st["fast"]["conflated"] == 9 and st["slow"]["conflated"] == 10
    # "slow" never finishes writing: dropped once over its lag budget, the others untouched
    clock.advance(2 * S + 1)
    assert f.too_slow() == ["slow"]
    assert "slow" not in f.clients and f.stats()["dropped"] == 1 and "fast" in f.clients


def _client():
    from fastapi.testclient import TestClient

    from xmc_actors.api.app import build_app
    from xmc_actors.core.operator_api import TokenBook

    be = FakeBackend()
    return TestClient(build_app(api_config(stream_hz=20), TokenBook(ENTRIES), be)), be


def test_websocket_stream_by_first_message():
    c, be = _client()
    with c.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"token": TOKENS["viewer"], "topics": ["quotes", "states", "alerts"], "hz": 10}))
        hello = json.loads(ws.receive_text())["hello"]
        assert hello["hz"] == 10 and hello["topics"] == ["alerts", "quotes", "states"]
        got: dict = {}
        while set(got) < {"quotes", "states", "alerts"}:
            got.update(json.loads(ws.receive_text()))
        assert got["quotes"]["SHFE.cu"]["bid"] == "72000"
        assert got["alerts"][0]["alert_id"] == "al-red"
        assert "spreads" not in got


def test_websocket_stream_by_header_and_refusals():
    c, be = _client()
    with c.websocket_connect("/v1/stream?topics=spreads&hz=5", headers={"Authorization": f"Bearer {TOKENS['trader']}"}) as ws:
        assert json.loads(ws.receive_text())["hello"]["topics"] == ["spreads"]
        assert json.loads(ws.receive_text())["spreads"]["copper"]["center"] == 1.0
    for first, code, field in ((json.dumps({"token": "xmc.abcd.nope"}), 4401, "authorization"),
                               ("not json", 4422, "body"),
                               (json.dumps({"token": TOKENS["viewer"], "topics": ["bogus"]}), 4422, "topics"),
                               (json.dumps({"token": TOKENS["viewer"], "hz": "fast"}), 4422, "hz"),
                               (json.dumps({"token": TOKENS["viewer"], "topics": "quotes"}), 4422, "topics")):
        from starlette.websockets import WebSocketDisconnect

        with c.websocket_connect("/v1/stream") as ws:
            ws.send_text(first)
            body = json.loads(ws.receive_text())
            assert body["field"] == field, body
            with pytest.raises(WebSocketDisconnect) as e:
                ws.receive_text()
            assert e.value.code == code
    assert TOKENS["viewer"] not in json.dumps([e.model_dump(mode="json") for e in be.sink.events])


def silent_client(port: int, hello: str) -> socket.socket:
    """A WebSocket client on a raw socket with a small receive buffer that sends its hello and
    then never reads a byte."""
    import base64
    import os
    import struct

    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head, head
    data, mask = hello.encode(), os.urandom(4)
    frame = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(data)) if len(data) > 125 else bytes([0x81, 0x80 | len(data)])
    s.sendall(frame + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
    return s


def test_a_client_that_never_reads_is_dropped_and_slows_nobody():
    """Measured on a loopback socket through uvicorn: big quote messages at 20/s; one client
    reads, one never does. The silent one is dropped (close 1008) once a message waits over
    max_lag_s; the reader keeps receiving at its rate throughout and the poller keeps its pace."""
    import uvicorn
    import websockets

    from xmc_actors.api.app import build_app
    from xmc_actors.core.operator_api import TokenBook

    be = FakeBackend()
    big = {f"X.{i}": {"bid": "1" * 40, "ask": "2" * 40} for i in range(4000)}  # ~400 kB a message
    tick = {"n": 0}

    async def quotes():
        tick["n"] += 1
        return {**big, "n": tick["n"]}
    be.quotes = quotes
    app = build_app(api_config(stream_hz=20), TokenBook(ENTRIES), be)
    app.state.hub.poll_s = 0.05
    app.state.hub.max_lag_s = 1.0
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    while not srv.started:
        time.sleep(0.05)

    async def main():
        url = f"ws://127.0.0.1:{port}/v1/stream"
        hello = json.dumps({"token": TOKENS["viewer"], "topics": ["quotes"], "hz": 20})
        silent = silent_client(port, hello)
        reader = await websockets.connect(url, max_size=None)
        await reader.send(hello)
        got, t0 = [], time.monotonic()
        dropped_at = None
        while time.monotonic() - t0 < 12:
            m = json.loads(await asyncio.wait_for(reader.recv(), 5))
            if "quotes" in m:
                got.append((time.monotonic(), m["quotes"]["n"]))
            if dropped_at is None and app.state.hub.fan.stats()["dropped"] >= 1:
                dropped_at = time.monotonic() - t0
            if dropped_at is not None and time.monotonic() - t0 > dropped_at + 2:
                break
        await reader.close()
        silent.close()
        return got, dropped_at

    got, dropped_at = asyncio.run(main())
    srv.should_exit = True
    th.join(10)
    stats = app.state.hub.stats()
    span = got[-1][0] - got[0][0]
    rate = (len(got) - 1) / span if span else 0
    gaps = [b[0] - a[0] for a, b in zip(got, got[1:])]
    print(f"\nslow client dropped after {dropped_at:.2f} s; reader got {len(got)} messages at {rate:.1f}/s "
          f"(max gap {max(gaps) * 1000:.0f} ms), poller {stats['polls']} polls, max poll {stats['poll_ms_max']} ms")
    assert dropped_at is not None and dropped_at < 10, stats
    assert rate > 5 and max(gaps) < 1.0, (rate, max(gaps))
    assert got[-1][1] > got[0][1]  # always the latest, not a backlog
