"""The pair coordinator's settings (the ``coordinator:`` section of a deployment file).

Timers, retry bounds, the residual book and how domestic orders choose their offsets; the pair
state machine (:mod:`xmc_actors.core.pair`) reads them. A leaf of the model so that the
deployment file's schema can hold it.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt


class CoordinatorConfig(BaseModel):
    """Timers and retry bounds of the pair coordinator.

    Attributes
    ----------
    ack_timeout_ms
        A place that returned no ACK/REJECT: query the venue after this long.
    cancel_timeout_ms
        A cancel not confirmed after this long: query the venue.
    call_timeout_ms
        The actor gives up waiting on a gateway call after this long (outcome unknown).
    query_retries
        Status queries that may fail in a row before the pair is escalated (and
        ``query_window_ms`` must have passed too).
    query_backoff_ms
        Delay before re-trying a failed query (doubles each time, up to ``query_backoff_max_ms``).
    query_backoff_max_ms
        The longest wait between two queries of one order.
    query_window_ms
        How long an order's failed queries are retried before its pair is escalated ("outcome
        unknown"), counted from the first failure in a row: longer than a gateway actor's
        restart (4–8 s measured on a loaded two-core host), so a restart that comes back with
        the venue's word does not escalate a pair whose orders the venue simply held.
    replace_retries
        When a query says the venue never saw an order, re-send it under the *same* client
        order id (so a late original is de-duplicated) this many times before calling it lost.
    default_deadline_ms
        Deadline of a pair whose intent has none.
    wind_down_timeout_ms
        A pair that stopped trying to complete (WINDING_DOWN) waits for every order to be
        confirmed dead. Cancels and queries each have their own bounds; this bounds the whole:
        a pair still winding down this long after it began is escalated (red alert, strategy
        halted) with each order still live named, never left open unwatched.
    health_interval_ms
        The coordinator probes its gateways this often (venue health: a lost or silent gateway
        makes its venue DOWN, pushed to the strategies and the risk guard); 0 turns it off.
    health_timeout_ms
        A probe not answered within this long counts a time-out (two in a row: DOWN).
    keep_finished_pairs
        Finished pairs kept whole in memory (summaries, orders, late-fill handling); older
        ones are forgotten except a tombstone (:class:`Forgotten`: decision id, strategy,
        final state, each leg's instrument, account and side, about 200 bytes): the id still
        makes a re-sent intent a duplicate, and a fill that still arrives for a forgotten pair
        escalates it (red alert, strategy halted, the fill's exposure pushed to the risk guard)
        instead of being lost. ESCALATED pairs are never forgotten (an operator closes them).
    submit_reply_hold_ms
        ``submit`` answers an accepted pair once the venues have answered the orders it sent,
        or after this long, whichever comes first (0: at once). The answer is Ray work in the
        coordinator's process, and done while the legs are still in flight it delays them on
        their way to the gateways (measured: a quarter of the Ray floor on a two-core host).
        A strategy loses nothing: it learns the outcome from ``on_pair_done``, and a refusal
        or a duplicate is answered at once.
    book_sub_lot_residuals
        A pair whose unwind budget is spent (attempts or time) or whose unwind is denied, with
        no order live or unknown and legs balanced within one leg-B lot (``sizing.is_balanced``,
        each leg within 0..its target), ends HEDGED with that residual carried in its
        strategy's **residual book** (a yellow ``residual_book`` ALERT) instead of ESCALATED:
        a residual smaller than one lot of leg B cannot be hedged on leg B, and the strategy,
        which sizes leg B against what it holds, takes it back with its next move. False: such
        a pair is escalated (the behaviour before the book).
    max_residual_lots_b
        A strategy's residual book past this many leg-B lots (absolute, summed over its pairs
        with a booked residual since its last pair that filled both legs in full) is red: the
        strategy is halted, as for an escalated pair.
    offset_preference
        How an order to a two-sided (Chinese) venue chooses its offset (``core/positions.py``
        :func:`~xmc_actors.core.positions.choose_offset`): ``auto`` closes yesterday's lots first
        where the contract's close-today fee is dearer (today's first otherwise),
        ``close_yesterday_first``, ``close_today_first``, or ``lock`` (always open: the opposite
        position is held beside the old one).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    offset_preference: Literal["auto", "close_yesterday_first", "close_today_first", "lock"] = "auto"
    book_sub_lot_residuals: bool = True
    max_residual_lots_b: Decimal = Field(Decimal(2), gt=0)
    ack_timeout_ms: PositiveInt = 500
    cancel_timeout_ms: PositiveInt = 500
    call_timeout_ms: PositiveInt = 2_000
    query_retries: PositiveInt = 3
    query_backoff_ms: PositiveInt = 20
    query_backoff_max_ms: PositiveInt = 2_000
    query_window_ms: NonNegativeInt = 12_000
    replace_retries: NonNegativeInt = 1
    default_deadline_ms: PositiveInt = 5_000
    wind_down_timeout_ms: PositiveInt = 30_000
    health_interval_ms: NonNegativeInt = 1_000
    health_timeout_ms: PositiveInt = 1_000
    keep_finished_pairs: PositiveInt = 50_000
    submit_reply_hold_ms: NonNegativeFloat = 5.0
