"""The execution lab's settings (the ``lab:`` section of a deployment file; ``docs/lab.md``).

A backtest (``xmc backtest``) runs the deployment's own strategies, pair state machine, risk
rules and simulated venues in one process on a discrete-event clock. What it adds to a live
deployment's configuration is *where the venues are*: how long an order takes to reach each
venue, how long its acknowledgement and its fills take to come back, how old the venue's
market data is when a strategy sees it, and how long a message between two of our own actors
takes. Each is a :class:`~xmc_actors.model.latency.LatencyModel` (const, uniform or
lognormal, with bursts).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .latency import LatencyModel

STRICT = ConfigDict(frozen=True, extra="forbid")
PositiveMs = Annotated[float, Field(gt=0, le=86_400_000, allow_inf_nan=False)]

#: the policies a backtest can compare: the coordinator's four modes and the sequential baseline
POLICIES: tuple[str, ...] = ("price", "speed", "quantity", "lead_lag", "sequential")


def _ms(mean: float, jitter: float, burst_prob: float = 0.0, burst_ms: float = 0.0) -> LatencyModel:
    return LatencyModel(kind="lognormal", mean_ms=mean, jitter_ms=jitter, burst_prob=burst_prob, burst_ms=burst_ms)


class VenueLatency(BaseModel):
    """One venue's distance from the desk, each leg of a round trip drawn separately.

    ``order_entry``: our gateway to the venue's matching engine (one way: the order is matched
    against the book as it stands when it *arrives*); ``ack``: the venue's answer back to us (one
    way); ``fill``: a fill of a resting order, from the match to us; ``market_data``: a change of
    the venue's book to our strategy seeing it.
    """

    model_config = STRICT
    order_entry: LatencyModel = _ms(1.5, 0.5)
    ack: LatencyModel = _ms(1.5, 0.5)
    fill: LatencyModel = _ms(1.5, 0.5)
    market_data: LatencyModel = _ms(1.5, 0.5)

    @classmethod
    def domestic(cls) -> "VenueLatency":
        """A venue a few milliseconds away (co-located broker front, the same country)."""
        return cls()

    @classmethod
    def foreign(cls, mean_ms: float = 75.0) -> "VenueLatency":
        """A venue across an ocean: ``mean_ms`` one way with jitter and rare bursts."""
        m = _ms(mean_ms, mean_ms * 0.15, burst_prob=0.02, burst_ms=mean_ms)
        return cls(order_entry=m, ack=m, fill=m, market_data=m)


class LabConfig(BaseModel):
    """The ``lab:`` section: latency per venue and the backtest's own settings.

    Attributes
    ----------
    venues
        Latency per venue code. A venue not listed gets :meth:`VenueLatency.domestic` if its
        time zone is one of ``domestic_timezones``, else :meth:`VenueLatency.foreign`.
    domestic_timezones
        Where the desk sits (``Asia/Shanghai``): decides the default latency of unlisted venues.
    internal
        One message between two of our actors (gateway -> strategy -> coordinator): the Ray
        hop a live deployment pays (about 1 ms on one host, see ``scripts/bench runtime``).
    queue_model
        ``queue`` (default): resting orders fill by queue position and traded volume; ``touch``:
        as soon as the market reaches their price (optimistic; the live simulator's default).
    sync_window_ms
        A pair is filled *synchronously* when both legs are completely filled within this long
        of each other (the synchronous fill rate).
    policies
        The policies ``--policy all`` runs (default: every coordinator mode and ``sequential``).
    max_duration_s
        Simulated seconds after the first quote at which a run stops when its feeds do not end
        by themselves (synthetic feeds without ``count``); ``--to`` bounds it too.
    drain_s
        After the last quote, how long (simulated) pairs still in flight may take to finish.
    """

    model_config = STRICT
    venues: dict[str, VenueLatency] = Field(default_factory=dict)
    domestic_timezones: tuple[str, ...] = ("Asia/Shanghai",)
    internal: LatencyModel = LatencyModel(kind="uniform", mean_ms=1.0, jitter_ms=0.3)
    queue_model: Literal["touch", "queue"] = "queue"
    sync_window_ms: PositiveMs = 500.0
    policies: tuple[Literal["price", "speed", "quantity", "lead_lag", "sequential"], ...] = POLICIES  # type: ignore[assignment]
    max_duration_s: Annotated[float, Field(gt=0, le=10 * 366 * 86_400, allow_inf_nan=False)] = 3_600.0
    drain_s: Annotated[float, Field(ge=0, le=86_400, allow_inf_nan=False)] = 60.0
