"""FIX benchmark: the order round trip through the FIX adapter, messages per second each way,
reconnect-and-recover time. No Ray: the gateway core and its ``fix`` adapter run here, the
loopback FIX exchange and the TCP echo floor each in a process of their own (so they do not
share this process's interpreter lock), all on 127.0.0.1.

``run(quick)`` returns a flat dict of metric -> number (unit in the name):

* ``fix_order_ack_rtt_p50_us`` / ``_p99_us``: a limit order away from the market placed through
  ``GatewayCore.place`` -> ``FixAdapter`` -> NewOrderSingle on the socket -> the exchange's
  matching -> ExecutionReport New back -> the core's ACK (one message each way);
* ``sim_order_ack_rtt_p50_us``: the same order through the core into the in-process
  simulated venue (no socket, latency 0): what the adapter replaces;
* ``floor_tcp_echo_rtt_p50_us`` / ``_p99_us``: a plain TCP echo of a message of the same size
  (~200 bytes) to a process on loopback, measured in the same run; ``fix_order_rtt_vs_tcp_echo_ratio``
  is the FIX round trip over that floor (what the two FIX engines, the codec and the matching
  add to the wire);
* ``fix_md_in_per_s``: incremental refreshes (X) the exchange publishes for a burst of book
  changes, received, parsed and turned into the gateway's wire messages, per second;
* ``fix_orders_out_per_s``: NewOrderSingles written by the adapter back to back (answers not
  awaited), per second until the exchange has read them all;
* ``fix_reconnect_recover_ms``: from the exchange dropping the TCP connection to an order
  acknowledged on the new session (logon, resend recovery and the market-data snapshot
  included), with ``fix_reconnect_interval_ms`` the engine's fixed reconnect interval (QuickFIX
  has no backoff; its first attempt after a drop comes on its next timer check, within one
  interval).
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..core.stats import percentile

_INST = "LME.CA3M"
_MSG = b"8=FIX.4.4\x019=170\x01" + b"x" * 180 + b"\x0110=000\x01"  # ~200 bytes, an order's size


def _catalogue() -> tuple[Any, list[Any]]:
    from ..runtime.config import PROJECT_ROOT, load_config

    cat = load_config(PROJECT_ROOT / "configs" / "catalogue.yaml")
    return cat.venue("LME"), [cat.instrument(_INST)]


def serve_exchange() -> None:
    """The benchmark's exchange process (``python -c``): LME on a free port, control channel."""
    from ..venues.fix.exchange import FixExchange, serve

    venue, insts = _catalogue()
    serve(FixExchange(venue, insts, {"seed": 1}, comp_id="EXCH", control_port=0))


def serve_echo() -> None:
    """The floor's process: echo every byte back on each connection, on a free loopback port."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    print(json.dumps({"port": ls.getsockname()[1]}), flush=True)
    while True:
        c, _ = ls.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def echo(c: socket.socket = c) -> None:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)

        threading.Thread(target=echo, daemon=True).start()


def _spawn(fn: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    p = subprocess.Popen([sys.executable, "-c", f"from xmc_actors.bench.fix import {fn}; {fn}()"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line:
        p.kill()
        raise RuntimeError(f"bench fix: {fn} did not start")
    return p, json.loads(line)


def _stop(p: subprocess.Popen[str]) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)


def floor_tcp_echo(n: int) -> list[float]:
    p, info = _spawn("serve_echo")
    try:
        s = socket.create_connection(("127.0.0.1", info["port"]))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out = []
        for _ in range(n + 50):
            t0 = time.perf_counter_ns()
            s.sendall(_MSG)
            got = 0
            while got < len(_MSG):
                got += len(s.recv(65536))
            out.append((time.perf_counter_ns() - t0) / 1000)
        s.close()
        return out[50:]
    finally:
        _stop(p)


def _order(k: int, price: str, tif: str = "DAY") -> Any:
    from ..model.orders import OrderRequest, OrderType, TimeInForce
    from ..model.market import Side

    return OrderRequest(client_order_id=f"b{k}:A:0", decision_id=f"b{k}", leg="A", instrument=_INST, side=Side.BUY,
                        qty=1, price=Decimal(price), order_type=OrderType.LIMIT, tif=TimeInForce(tif),
                        account="bench")


def sim_order_ack(n: int) -> list[float]:
    from ..core.clock import SystemClock
    from ..core.gateway_core import GatewayCore
    from ..core.sink import NullSink
    from ..model.quotes import Quote
    from ..venues.sim import SimExchange
    from ..venues.sim_config import SimVenueParams

    venue, insts = _catalogue()
    clock = SystemClock()
    sim = SimExchange(venue, insts, SimVenueParams.model_validate({"seed": 1, "enforce_sessions": False,
                                                                   "enforce_price_limits": False}), clock)
    core = GatewayCore(venue, insts, sim, clock, NullSink(), name="bench-sim")
    now = clock.now_ns()
    sim.on_market(Quote(instrument=_INST, bid=Decimal(9799), ask=Decimal(9801), bid_size=5, ask_size=5,
                        venue_ts_ns=now, recv_ts_ns=now, ts_ns=now, seq=1))
    out = []
    for k in range(n + 50):
        req = _order(k, "9700")
        t0 = time.perf_counter_ns()
        core.place(req)
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out[50:]


def run(quick: bool = False) -> dict[str, float]:
    from ..core.clock import SystemClock
    from ..core.gateway_core import GatewayCore
    from ..core.sink import NullSink
    from ..model.quotes import Quote
    from ..venues.fix.adapter import FixAdapter
    from ..venues.fix.exchange import control
    from ..venues.fix.params import FixVenueParams

    n = 300 if quick else 3000
    burst = 1000 if quick else 10000
    out: dict[str, float] = {}
    echo = floor_tcp_echo(n)
    sim = sim_order_ack(n)
    venue, insts = _catalogue()
    ex, info = _spawn("serve_exchange")
    ctl = f"127.0.0.1:{info['control_port']}"
    store = Path(tempfile.mkdtemp(prefix="xmc-bench-fix-"))
    interval_s = 1
    adapter = None
    try:
        p = FixVenueParams.model_validate(dict(port=info["port"], sender_comp_id="BENCH", target_comp_id="EXCH",
                                               heartbeat_s=5, store_path=str(store), reconnect_interval_s=interval_s,
                                               ack_timeout_ms=2000, exchange_control=ctl))
        clock = SystemClock()
        adapter = FixAdapter(p, venue, insts, clock, gateway="bench-fix")
        core = GatewayCore(venue, insts, adapter, clock, NullSink(), name="bench-fix")

        def quote(bid: int, seq: int) -> dict[str, Any]:
            now = time.time_ns()
            return Quote(instrument=_INST, bid=Decimal(bid), ask=Decimal(bid + 2), bid_size=5, ask_size=5,
                         venue_ts_ns=now, recv_ts_ns=now, ts_ns=now, seq=seq).model_dump(mode="json")

        control(ctl, {"cmd": "market", "quotes": [quote(9799, 1)]})
        # market data in: a burst of book changes, each one incremental refresh; first, while
        # the book holds none of our orders (the simulated venue checks every resting order
        # against each quote: with the round trips' 3,000 orders resting it measured that
        # matching, ~190 quotes/s, not the session)
        while adapter.poll_market():
            pass
        before = adapter.counters.get("md_updates", 0)
        quotes = [quote(9800 + (i % 2), 10 + i) for i in range(burst)]  # each one a change of the book
        t0 = time.perf_counter()
        control(ctl, {"cmd": "market", "quotes": quotes}, timeout_s=120)
        deadline = time.monotonic() + 120
        while adapter.counters.get("md_updates", 0) - before < burst and time.monotonic() < deadline:
            time.sleep(0.0005)
        md_s = time.perf_counter() - t0
        got_md = adapter.counters.get("md_updates", 0) - before

        rtt = []
        for k in range(n + 50):
            req = _order(k, "9700")
            t0 = time.perf_counter_ns()
            reps, _ = core.place(req)
            rtt.append((time.perf_counter_ns() - t0) / 1000)
            if not reps or reps[0].kind.value != "ACK":
                raise RuntimeError(f"bench fix: order {k} was not acknowledged: {reps}")
        rtt = rtt[50:]

        # orders out, answers not awaited
        k0 = n + 1000
        t0 = time.perf_counter()
        for k in range(k0, k0 + burst):
            adapter.send(_order(k, "9700"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if control(ctl, {"cmd": "order_count"}) >= n + 50 + burst:
                break
            time.sleep(0.002)
        out_s = time.perf_counter() - t0

        # reconnect and recover: the exchange drops the connection
        control(ctl, {"cmd": "drop"})
        t0 = time.perf_counter()
        while adapter.connected():
            time.sleep(0.0005)
        while not adapter.connected():
            time.sleep(0.001)
        reps, _ = core.place(_order(10 ** 7, "9700"))
        recover_ms = (time.perf_counter() - t0) * 1000
        if not reps or reps[0].kind.value != "ACK":
            raise RuntimeError(f"bench fix: no ACK after the reconnect: {reps}")
    finally:
        if adapter is not None:
            adapter.close()
        try:
            control(ctl, {"cmd": "stop"}, timeout_s=3)
        except OSError:
            pass
        _stop(ex)
    out["fix_order_ack_rtt_p50_us"] = percentile(rtt, 0.5)
    out["fix_order_ack_rtt_p99_us"] = percentile(rtt, 0.99)
    out["sim_order_ack_rtt_p50_us"] = percentile(sim, 0.5)
    out["floor_tcp_echo_rtt_p50_us"] = percentile(echo, 0.5)
    out["floor_tcp_echo_rtt_p99_us"] = percentile(echo, 0.99)
    out["fix_order_rtt_vs_tcp_echo_ratio"] = out["fix_order_ack_rtt_p50_us"] / out["floor_tcp_echo_rtt_p50_us"]
    out["fix_md_in_per_s"] = got_md / md_s
    out["fix_md_in_received"] = got_md
    out["fix_orders_out_per_s"] = burst / out_s
    out["fix_reconnect_recover_ms"] = recover_ms
    out["fix_reconnect_interval_ms"] = interval_s * 1000
    return out
