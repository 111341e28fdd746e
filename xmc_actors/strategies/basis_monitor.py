"""Basis monitor (基差监控): alerts when the spread or ratio leaves a range; never trades.

An ALERT is raised once when the mid signal goes above ``alert_above`` (or below
``alert_below``) and re-armed once it is back inside by ``rearm``; an ``info`` alert says
when it came back.
"""
from __future__ import annotations

from .base import Decision, Snapshot, Strategy
from .params import BasisMonitorParams


class BasisMonitor(Strategy, name="basis_monitor", params=BasisMonitorParams):
    """Alerts on the basis (spread or ratio) leaving a range; sends no orders."""

    params: BasisMonitorParams
    trades = False

    def __init__(self, *args, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kw)
        self.alerting: dict[str, bool] = {"above": False, "below": False}

    def decide(self, snap: Snapshot) -> Decision | None:
        p, par = self.params, snap.parity
        assert par is not None
        v = par.value(p.signal, "mid")
        self.last_signal = {"reason": "monitor", "signal_mid": v, "alert_above": p.alert_above,
                            "alert_below": p.alert_below, "fx": par.fx}
        for side, limit, out, back in (
            ("above", p.alert_above, lambda x, t: x > t, lambda x, t: x <= t - p.rearm),
            ("below", p.alert_below, lambda x, t: x < t, lambda x, t: x >= t + p.rearm),
        ):
            if limit is None:
                continue
            if not self.alerting[side] and out(v, limit):
                self.alerting[side] = True
                self.alert(p.level, f"{p.signal} {v:.6g} is {side} {limit:g}", snap.now_ns, value=v, limit=limit,
                           side=side, parity=par.payload())
            elif self.alerting[side] and back(v, limit):
                self.alerting[side] = False
                self.alert("info", f"{p.signal} {v:.6g} is back inside {limit:g}", snap.now_ns, value=v, limit=limit,
                           side=side)
        return None
