"""Band arbitrage on the spread or the ratio (价差/比价套利), with hysteresis.

The signal is leg A over leg B (ratio) or A minus B (spread) after FX, unit and multiplier
conversion, on executable prices (对价) or mids, with costs folded in. Enter short A / long B
when A is rich by ``entry`` over ``center`` at the price A can be sold; enter long A / short B
when A is cheap by ``entry`` at the price A can be bought; close when the closing price is
back within ``exit`` of the centre. Between exit and entry nothing changes (hysteresis).
"""
from __future__ import annotations

from .base import Decision, Snapshot, Strategy, band_target
from .params import BandParams


class BandStrategy(Strategy, name="band", params=BandParams):
    """Band arbitrage on spread or ratio (entry/exit bands around a centre)."""

    params: BandParams

    def decide(self, snap: Snapshot) -> Decision | None:
        p, par = self.params, snap.parity
        assert par is not None
        sell, buy, mid = par.values(p.signal)
        center, entry, exit_ = p.center, p.entry, p.exit
        # every quote: the "hold" signal as one dict; the decision's numbers (the same, without
        # the reason) only when there is a decision
        self.last_signal = {"reason": "hold", "signal_sell_a": sell, "signal_buy_a": buy, "signal_mid": mid,
                            "center": center, "entry": entry, "exit": exit_}
        r = band_target(snap.position, sell - center, buy - center, entry=entry, exit=exit_, clip=p.clip,
                        max_position=p.max_position, scale_step=p.scale_step)
        if r is None:
            return None
        return Decision(r[0], r[1], {"signal_sell_a": sell, "signal_buy_a": buy, "signal_mid": mid,
                                     "center": center, "entry": entry, "exit": exit_})
