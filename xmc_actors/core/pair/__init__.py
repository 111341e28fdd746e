"""The pair transaction as a pure core: inputs in, commands out (配对交易状态机).

The package: :mod:`.table` (the state machine as a table, the only way a state changes),
:mod:`.commands` (what the shell executes, typed timer keys), :mod:`.legs`, :mod:`.machine`
(one pair: inputs, timers, entries) with :mod:`.unwind` (rollback and endings), :mod:`.book`
(every pair in flight) with :mod:`.recovery`, :mod:`.late_fills` and :mod:`.offsets`, and
:mod:`.summary` (the one place pair summaries are made).

:class:`PairMachine` is one pair; :class:`PairBook` holds many pairs in flight, the trading
states, the pre-trade checker and the client-order-id index. Neither knows Ray or asyncio: the
:class:`~xmc_actors.actors.coordinator.PairCoordinator` actor feeds them inputs (an intent, the
result or failure of a gateway call, a pushed report, a timer that fired, a trading-state change)
and executes the commands they return (:class:`Place`, :class:`Cancel`, :class:`Query`,
:class:`StartTimer`, :class:`CancelTimers`, :class:`NotifyDone`, :class:`HaltStrategy`). Their
events go to the book's injected sink as they are made (a :class:`~xmc_actors.core.sink.HeldSink`
in the coordinator, released after the batch's orders have left).

Lifecycle (``PairState``)::

    NEW ─risk ok─▶ WORKING ─both legs at target─▶ HEDGED
     │               │ a leg short with no live order
     │               ▼
     │          REPLENISHING (cancel confirmed, re-send remainder at a chased price, within budget)
     │               │ final reject / budget spent / deadline / halt / over-fill
     │               ▼
     │          WINDING_DOWN (cancel what works; every order dead: balanced → HEDGED/ROLLED_BACK, else)
     │               ▼
     │          ROLLING_BACK (unwind the excess on the over-filled leg, IOC within the rollback policy)
     │               ├─▶ ROLLED_BACK (flat) or HEDGED (balanced at a smaller size)
     │               ├─▶ HEDGED, residual booked (unwind impossible, what is left is smaller than one
     │               │   leg-B lot: carried in the strategy's residual book, yellow; red past its limit)
     │               └─▶ ESCALATED (red alert, strategy halted, exact residual recorded)
     └─refused─▶ REFUSED

A late fill (reported after a confirmed cancel) on a finished pair re-opens it to
ROLLING_BACK; on an ESCALATED pair it re-states the residual.

Three kinds of outcome are never mixed: a local denial (pre-trade check or trading state)
blocks a leg; a definitive venue reject is replenished (curable reasons) or blocks the leg
(:attr:`RejectReason.is_final`); an unknown outcome (call failed, no ack) moves the order to
UNKNOWN and is resolved by :class:`Query` before anything else is sent for that leg.
"""
from ...model.coordinator import CoordinatorConfig
from ..sink import Deferred
from .book import SCOPES, PairBook
from .commands import (
    Cancel, CancelTimers, Command, HaltStrategy, NotifyDone, Place, Query, StartTimer, TimerKey, TimerKind,
)
from .legs import Forgotten, Leg, LegOrder
from .machine import PairMachine
from .summary import escalation_alert, leg_summary, pair_summary
from .table import PAIR_TRANSITIONS, TABLE, Transition, Trigger, markdown_table, transition
from .unwind import BPS, TRANSIENT_DENIALS, UNWIND_RETRY_NS

__all__ = [
    "BPS", "PAIR_TRANSITIONS", "SCOPES", "TABLE", "TRANSIENT_DENIALS", "UNWIND_RETRY_NS", "Cancel", "CancelTimers",
    "Command", "CoordinatorConfig", "Deferred", "Forgotten", "HaltStrategy", "Leg", "LegOrder", "NotifyDone",
    "PairBook", "PairMachine", "Place", "Query", "StartTimer", "TimerKey", "TimerKind", "Transition", "Trigger",
    "escalation_alert", "leg_summary", "markdown_table", "pair_summary", "transition",
]
