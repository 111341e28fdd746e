"""Reconnect backoff for a FIX initiator session (the engine itself only retries at a fixed
interval).

:class:`ReconnectBackoff` is the policy, with no engine and no clock of its own: the adapter's
supervisor thread asks it, with the time and whether the session is logged on, what to do
next. A session that has logged on before and drops gets one attempt window at once (most drops
are a moment's network trouble); each window that ends without a logon is followed by a pause
that doubles from ``base_s`` up to ``max_s``, with +/- ``jitter`` so that many gateways cut off
together do not knock on the venue's door in step. A logon resets it.

While a pause runs the engine's session is *disabled* (QuickFIX's ``Session.logout()``: an
initiator does not connect a disabled session), and *enabled* again (``Session.logon()``) when
the next window opens; within a window the engine tries at its own ``ReconnectInterval`` (1 s).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

Action = Literal["enable", "disable"] | None

_S = 1_000_000_000


@dataclass
class ReconnectBackoff:
    """When to let the engine try to connect, and when to hold it back."""

    base_s: float = 1.0
    max_s: float = 30.0
    window_s: float = 1.5
    """How long an attempt window stays open (the engine connects within ~1 s of enabling)."""
    jitter: float = 0.2
    seed: int = 0
    failures: int = 0
    state: str = "CONNECTED"        # CONNECTED | TRYING | WAITING
    until_ns: int = 0               # end of the current window or pause
    delays: list[float] = field(default_factory=list)   # every pause chosen (seconds), for status and tests
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not (0 < self.base_s <= self.max_s):
            raise ValueError(f"reconnect backoff: base_s ({self.base_s}) must be > 0 and <= max_s ({self.max_s})")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"reconnect backoff: jitter ({self.jitter}) must be in [0, 1)")
        self._rng = random.Random(self.seed)

    def next_delay_s(self) -> float:
        """The pause after the ``failures``-th window without a logon."""
        raw = min(self.base_s * (2 ** max(0, self.failures - 1)), self.max_s)
        return raw * (1 + self.jitter * (2 * self._rng.random() - 1)) if self.jitter else raw

    def step(self, now_ns: int, logged_on: bool, logon_in_flight: bool = False) -> Action:
        """What to do now. ``logon_in_flight``: a Logon went out and its answer is still awaited
        (the window is held open until the engine's logon timeout settles it)."""
        if logged_on:
            self.state, self.failures = "CONNECTED", 0
            return None
        if self.state == "CONNECTED":  # a drop: try at once
            self.state, self.until_ns = "TRYING", now_ns + int(self.window_s * _S)
            return None
        if self.state == "TRYING":
            if now_ns < self.until_ns or logon_in_flight:
                return None
            self.failures += 1
            d = self.next_delay_s()
            self.delays.append(round(d, 3))
            del self.delays[:-32]
            self.state, self.until_ns = "WAITING", now_ns + int(d * _S)
            return "disable"
        if now_ns >= self.until_ns:  # WAITING, and the pause is over
            self.state, self.until_ns = "TRYING", now_ns + int(self.window_s * _S)
            return "enable"
        return None

    def due_ns(self) -> int | None:
        """When :meth:`step` next has something to decide (None: only on a state change)."""
        return None if self.state == "CONNECTED" else self.until_ns
