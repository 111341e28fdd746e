"""Ctrl-C on a running ``xmc run``: one SIGINT stops it cleanly, every open pair resolved.

The child process starts its own embedded Ray; the pytest process starts none.
"""
from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time

import pytest

from runtime_kit import TERMINAL, XMC, copper_config, last_pair_states, ledger_pair_outcomes, subprocess_env

pytestmark = pytest.mark.ray


class Lines:
    """The stdout of a running child, line by line, with time-outs."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.q: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.q.put(line)
        self.q.put(None)

    def until(self, text: str, timeout_s: float) -> str:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                line = self.q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed within {timeout_s} s; got:\n{''.join(self.seen)}")

    def rest(self) -> str:
        out = []
        while True:
            line = self.q.get(timeout=30)
            if line is None:
                return "".join(out)
            out.append(line)


def test_one_sigint_stops_a_running_xmc_run_cleanly_with_every_pair_resolved(tmp_path):
    # Arrange: live feeds only and no --duration: it runs until Ctrl-C; LME acks take 250 ms so
    # that pairs are in flight when the signal lands
    cfg = copper_config(tmp_path, "cli-sigint", "test-runtime-cli-sigint", lme={"ack_ms": 250})
    proc = subprocess.Popen([XMC, "run", str(cfg), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=subprocess_env())
    lines = Lines(proc)
    try:
        lines.until("all actors ready", 120)
        time.sleep(4)  # trading
        assert proc.poll() is None, "xmc run ended by itself without --duration"
        # Act
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(90)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Assert
    out = "".join(lines.seen) + lines.rest()
    err = proc.stderr.read()
    assert rc == 130, out + err  # interrupted, said so by the exit code as shells expect
    assert "run 'cli-sigint' was interrupted after" in out and "pairs by outcome" in out
    assert "interrupted: stopping cleanly" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    states = last_pair_states(tmp_path / "ledger")
    assert states, "no pair traded before the signal"
    assert {d: s for d, s in states.items() if s not in TERMINAL} == {}
    assert "OPEN" not in ledger_pair_outcomes(tmp_path / "ledger")
