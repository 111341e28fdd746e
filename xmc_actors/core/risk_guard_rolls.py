"""The risk guard core's calendar roll watch (core/roll_watch.py): a mixin of
:class:`~xmc_actors.core.risk_guard.RiskGuardCore`, split out by concern as its books and its
rebuild are. It feeds the watch the lots booked per strategy (and per held hedge position),
turns its conditions into alerts through the core's alert manager, and records what it sends.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..model.events import EventKind
from .risk_guard_types import GuardOutput
from .roll import RollRequest
from .roll_watch import RollWatch, WatchedStrategy

if TYPE_CHECKING:
    from .capital import PositionBook
    from .sink import EventMaker, EventSink


class RollWatching:
    """The roll watch's part of the risk guard core (state set in ``RiskGuardCore.__init__``)."""

    roll_watch: RollWatch | None
    _dated: set[str]
    instruments: dict[str, Any]
    book: "PositionBook"
    booked_lots: dict[str, dict[tuple[str, str], int]]
    sink: "EventSink"
    maker: "EventMaker"
    clock: Any

    def set_roll_watch(self, watch: RollWatch | None) -> None:
        self.roll_watch = watch
        self._dated = {i for i in self.instruments if watch is not None and watch.dated(i) is not None}

    def watch_position(self, name: str, policy: Mapping[str, Any], accounts: Mapping[str, str],
                       decision_ids: Iterable[str], book_as: str, operator: str = "") -> dict[str, Any]:
        """Watch, under ``name``, the position the pairs ``decision_ids`` make (an ERP hedge
        instruction: ``POST /v1/hedges`` with ``roll``) for its calendar roll, as a strategy's
        is watched; its rolls are booked to ``book_as``. Recorded (``LIFECYCLE`` "watch position").
        Raises ValueError naming the field when ``policy`` is not a roll policy (counted in
        ``bad_input`` and recorded as BAD_INPUT; nothing watched)."""
        try:
            return self._watch_position(name, policy, accounts, decision_ids, book_as, operator)
        except ValueError as e:
            self._bad_input(f"watch_position {name}", e, {"policy": policy, "decision_ids": decision_ids})
            raise

    def _watch_position(self, name: str, policy: Mapping[str, Any], accounts: Mapping[str, str],
                        decision_ids: Iterable[str], book_as: str, operator: str) -> dict[str, Any]:
        from pydantic import ValidationError as _VE

        from ..model.config import RollPolicy

        if self.roll_watch is None:
            raise ValueError("roll watch: not running in this risk guard")
        try:
            pol = RollPolicy.model_validate(dict(policy))
        except _VE as e:
            first = e.errors(include_url=False)[0]
            raise ValueError(f"policy.{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None
        dids = [str(d) for d in decision_ids]
        if not dids:
            raise ValueError("decision_ids: at least one pair makes the position")
        self.roll_watch.hold(WatchedStrategy(name, pol, dict(accounts), book_as), dids)
        self.sink.emit(self.maker.make(EventKind.LIFECYCLE, strategy=book_as, reason=f"watch position {name} for its roll "
                                       f"({pol.mode})", action="watch_position", name=name, decision_ids=dids,
                                       accounts=dict(accounts), policy=pol.model_dump(mode="json"), operator=operator))
        return {"name": name, "mode": pol.mode, "decision_ids": dids}

    def watch_rolls(self) -> tuple[GuardOutput, list[RollRequest]]:
        """One pass of the roll watch over the lots booked per strategy: its ``roll_due``
        conditions observed as alerts (yellow due, red overdue or unplannable; their action is
        always none: a halt would refuse the roll itself), why an automatic roll waits
        (``LIFECYCLE``, once per reason) and the automatic rolls to send (``LIFECYCLE`` "auto
        roll sent" under the roll's decision id; the coordinator records the roll itself)."""
        out = GuardOutput()
        if self.roll_watch is None:
            return out, []
        now = self.clock.now_ns()
        positions = dict(self.book.snapshot()[1])
        for name in self.roll_watch.held:  # a hedge's position: the lots its own pairs booked
            positions[name] = self.roll_watch.lots_of(name, self.booked_lots)
        w = self.roll_watch.check(now, positions)
        for c in w.conditions:
            out.extend(self._observe(c, now))
        for name, why in w.waiting:
            self.sink.emit(self.maker.make(EventKind.LIFECYCLE, strategy=name, reason=f"auto roll waits: {why}",
                                           action="roll_watch"))
        for name, did in w.resumed:  # read back by a restarted guard: that roll stops nothing again
            self.sink.emit(self.maker.make(EventKind.LIFECYCLE, decision_id=did, strategy=name, action="roll_watch",
                                           reason=f"automatic rolls resume for {name}: its position changed",
                                           name=name, resumed=True))
        for req in w.rolls:
            name = self.roll_watch.submitted.get(req.decision_id, req.strategy)
            self.sink.emit(self.maker.make(EventKind.LIFECYCLE, decision_id=req.decision_id, strategy=req.strategy,
                                           reason=f"auto roll sent: {req.plan.reason}", action="roll_watch",
                                           name=name, children=[c.decision_id for c in req.children]))
        return out, w.rolls
