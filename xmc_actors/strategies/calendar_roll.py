"""Calendar roll (移仓换月): move a position from the near to the far contract on a schedule.

Leg A is the near contract, leg B the far one; each time in ``roll_at`` that has passed moves
``qty`` lots, executed as one pair (sell near / buy far for a long holding, the reverse for a
short one). The target is therefore ``-qty x (rolls passed)`` for a long holding (the pair
position offsets the near contract held elsewhere), so a restart with the restored position
does not roll twice. A roll waits while either leg's bid-ask spread is wider than
``max_spread_ticks`` ticks, or a guard blocks (stale quotes, closed session).
"""
from __future__ import annotations

import bisect

from .base import Decision, Snapshot, Strategy
from .params import CalendarRollParams


class CalendarRoll(Strategy, name="calendar_roll", params=CalendarRollParams):
    """Roll a near-contract position into the far contract at scheduled times, as a pair."""

    params: CalendarRollParams

    def __init__(self, *args, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kw)
        self.roll_times = self.params.roll_times_ns()
        self.clip = self.params.qty

    def decide(self, snap: Snapshot) -> Decision | None:
        p = self.params
        passed = bisect.bisect_right(self.roll_times, snap.now_ns)
        sign = -1 if p.holding == "long" else 1
        target = sign * p.qty * passed
        self.last_signal = {"reason": "waiting for the next roll time", "rolls_passed": passed, "target": target}
        if target == snap.position:
            return None
        for inst, q in ((self.a, snap.quote_a), (self.b, snap.quote_b)):
            assert q.bid is not None and q.ask is not None
            ticks = int((q.ask - q.bid) / inst.tick_size)
            if ticks > p.max_spread_ticks:
                self.last_signal = {"reason": f"{inst.id} spread {ticks} ticks > max_spread_ticks {p.max_spread_ticks}",
                                    "rolls_passed": passed, "target": target}
                return None
        calendar_spread = float(snap.quote_b.mid - snap.quote_a.mid)  # type: ignore[operator]
        return Decision(target, f"roll {passed} of {len(self.roll_times)} due", {
            "rolls_passed": float(passed), "calendar_spread": calendar_spread})
