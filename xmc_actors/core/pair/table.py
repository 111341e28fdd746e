"""The pair state machine as a table: ``(state, trigger) -> next state``, with the guard that
must hold and the actions taken (配对交易状态机).

Every change of a pair's state goes through :func:`transition` (``PairMachine._to``, which also
writes the ``PAIR_STATE`` event, ``PairMachine._restore`` for a pair rebuilt from its trail, and
the tombstone of a forgotten pair). A ``(state, trigger, next)`` not in :data:`TABLE` raises
:class:`~xmc_actors.model.errors.IllegalTransition`. ``docs/architecture.md`` carries
:func:`markdown_table` verbatim; ``tests/unit/test_pair_table.py`` fails when the two differ.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from ...model.errors import IllegalTransition
from ...model.pairs import PairState

P = PairState


class Trigger(str, Enum):
    """What moved a pair (the reason string of its ``PAIR_STATE`` event says more)."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    SHORT = "short"
    STOP = "stop"
    FILLED = "filled"
    STOPPED = "stopped"
    UNWOUND = "unwound"
    RESIDUAL_BOOKED = "residual_booked"
    ESCALATE = "escalate"
    LATE_FILL = "late_fill"
    LATE_FILL_FORGOTTEN = "late_fill_forgotten"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class Transition:
    source: PairState
    trigger: Trigger
    target: PairState
    guard: str
    actions: str


_LIVE: Final = (P.WORKING, P.REPLENISHING, P.WINDING_DOWN, P.ROLLING_BACK)


def _rows() -> tuple[Transition, ...]:
    rows = [
        Transition(P.NEW, Trigger.ACCEPTED, P.WORKING,
                   "intent valid, trading state allows, `check_pair` allowed",
                   "first orders sent (both legs at once; the lead leg first in LEAD_LAG and SEQUENTIAL); deadline timer"),
        Transition(P.NEW, Trigger.REFUSED, P.REFUSED,
                   "bad input (field named), HALTED/REDUCING scope, risk denial, venue down, no liquidity (QUANTITY mode)",
                   "BAD_INPUT or RISK_DECISION event; the refusal answered at once"),
        Transition(P.WORKING, Trigger.SHORT, P.REPLENISHING,
                   "a leg short with no live order (curable reject, IOC remainder, stale resting order cancelled), replenish budget left",
                   "REPLENISH: the remainder re-sent at a chased price"),
    ]
    for s in (P.WORKING, P.REPLENISHING):
        rows += [
            Transition(s, Trigger.FILLED, P.HEDGED, "both legs filled to target, no order live, nets balanced",
                       "CancelTimers; summary pushed (NotifyDone)"),
            Transition(s, Trigger.STOP, P.WINDING_DOWN,
                       "final reject (`RejectReason.is_final`), budget spent, deadline, HALTED/REDUCING, local denial, "
                       "over-fill, or a restart recovering the pair",
                       "cancel every live entry order"),
        ]
    rows += [
        Transition(P.WINDING_DOWN, Trigger.STOPPED, P.HEDGED,
                   "every order confirmed dead, nets balanced and not flat", "CancelTimers; summary pushed"),
        Transition(P.WINDING_DOWN, Trigger.STOPPED, P.ROLLED_BACK,
                   "every order confirmed dead, both legs flat", "CancelTimers; summary pushed"),
        Transition(P.WINDING_DOWN, Trigger.STOPPED, P.ROLLING_BACK,
                   "every order confirmed dead, nets unbalanced", "rollback timer; IOC reduce-only unwind on the over-filled leg"),
        Transition(P.ROLLING_BACK, Trigger.UNWOUND, P.HEDGED,
                   "unwinds brought the nets to the largest balanced position (`sizing.balanced_size`), not flat",
                   "CancelTimers; summary pushed"),
        Transition(P.ROLLING_BACK, Trigger.UNWOUND, P.ROLLED_BACK, "unwinds brought both legs flat",
                   "CancelTimers; summary pushed"),
        Transition(P.ROLLING_BACK, Trigger.RESIDUAL_BOOKED, P.HEDGED,
                   "rollback attempts or time spent, or an unwind denied; no order live or unknown; legs balanced "
                   "within one leg-B lot (`sizing.is_balanced`)",
                   "RECONCILE `residual_booked`; residual carried in the strategy's residual book (yellow; red past its limit)"),
    ]
    for s in (P.HEDGED, P.ROLLED_BACK):
        rows.append(Transition(s, Trigger.LATE_FILL, P.ROLLING_BACK,
                               "a fill reported after a confirmed cancel unbalanced the finished pair",
                               "rollback timer; unwind with the attempts left over the pair's life"))
    # a finished pair too: a query still in flight for one of its orders can fail for good
    for s in _LIVE + (P.HEDGED, P.ROLLED_BACK):
        rows.append(Transition(s, Trigger.ESCALATE, P.ESCALATED,
                               "rollback attempts or time spent, an unwind denied (HALTED), an outcome still unknown "
                               "after `query_retries` failed queries and `query_window_ms`, cancels never confirmed (unless the residual is booked), "
                               "a wind-down not finished within `wind_down_timeout_ms`",
                               "red ALERT and ESCALATION with the exact residual; strategy HALTED (HaltStrategy); "
                               "live orders cancelled"))
    for s in (P.HEDGED, P.ROLLED_BACK):
        rows.append(Transition(s, Trigger.LATE_FILL_FORGOTTEN, P.ESCALATED,
                               "a fill for an order of a pair no longer held whole (evicted by `keep_finished_pairs`, "
                               "or finished before a restart)",
                               "red ALERT and ESCALATION with the fill as residual; strategy HALTED; incremental summary"))
    for s in PairState:
        if s is not P.NEW:
            rows.append(Transition(P.NEW, Trigger.RECOVERED, s,
                                   "the last PAIR_STATE of the pair in this coordinator's trail (a restart)",
                                   "state restored without an event; an open pair is then wound down (STOP) from "
                                   "the venues' answers"))
    return tuple(rows)


TABLE: Final[tuple[Transition, ...]] = _rows()
_INDEX: Final[dict[tuple[PairState, Trigger, PairState], Transition]] = {(t.source, t.trigger, t.target): t for t in TABLE}

#: every next state a state may have, whatever the trigger (derived from :data:`TABLE`)
PAIR_TRANSITIONS: Final[dict[PairState, frozenset[PairState]]] = {
    s: frozenset(t.target for t in TABLE if t.source is s) for s in PairState
}


def transition(source: PairState, trigger: Trigger, target: PairState, what: str = "pair", reason: str = "") -> PairState:
    """``target`` if the table has ``(source, trigger) -> target``; else :class:`IllegalTransition`."""
    if (source, trigger, target) not in _INDEX:
        raise IllegalTransition(what, source.value, target.value, f"{trigger.value}: {reason}" if reason else trigger.value)
    return target


def markdown_table() -> str:
    """The table as ``docs/architecture.md`` shows it (rows with the same trigger, guard and actions merged)."""
    lines = ["| from | trigger | to | guard | actions |", "|---|---|---|---|---|"]
    groups: dict[tuple[Trigger, str, str], tuple[list[str], list[str]]] = {}
    for t in TABLE:
        srcs, dsts = groups.setdefault((t.trigger, t.guard, t.actions), ([], []))
        if t.source.value not in srcs:
            srcs.append(t.source.value)
        if t.target.value not in dsts:
            dsts.append(t.target.value)
    for (trigger, guard, actions), (srcs, dsts) in groups.items():
        lines.append(f"| {' / '.join(srcs)} | `{trigger.value}` | {' / '.join(dsts)} | {guard} | {actions} |")
    return "\n".join(lines)
