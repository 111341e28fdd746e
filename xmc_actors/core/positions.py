"""Two-sided positions (双向持仓) and the choice of an order's offset (开/平, 平今/平昨).

Chinese futures exchanges hold long and short side by side per account and instrument, each
split into today's lots (opened this trading day) and yesterday's; a working close order
freezes the lots it may close. Every domestic order says whether it opens or closes, and at
SHFE and INE whether it closes today's or yesterday's lots. Foreign venues net and take no
offset. The rule of a venue is ``Venue.offsets`` (:data:`~xmc_actors.model.market.OffsetRule`):

* ``none``: a netting venue; orders carry no offset;
* ``close``: OPEN or a plain CLOSE, which the exchange applies in its own order
  (``Venue.close_order``: yesterday's lots first, or today's);
* ``today_yesterday``: OPEN, CLOSE_TODAY or CLOSE_YESTERDAY; a plain CLOSE is refused.

:class:`TwoSidedBook` is pure: the pair coordinator keeps one for its accounts (fed by the
fills it sees), the simulated exchange keeps one as the venue's own record and enforces it.
:func:`choose_offset` is how the coordinator decides (never splitting an order: a close needs
one bucket that covers the whole order, else the order opens, which on a two-sided venue
locks the position instead of closing it, and says so).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from ..model.market import Side, Venue
from ..model.orders import Offset

Preference = Literal["auto", "close_yesterday_first", "close_today_first", "lock"]


@dataclass(slots=True)
class SidePosition:
    """One side (long or short) of an account's position in one instrument, in lots."""

    today: int = 0
    yesterday: int = 0
    frozen_today: int = 0
    frozen_yesterday: int = 0

    @property
    def total(self) -> int:
        return self.today + self.yesterday

    @property
    def available_today(self) -> int:
        return self.today - self.frozen_today

    @property
    def available_yesterday(self) -> int:
        return self.yesterday - self.frozen_yesterday

    def as_dict(self) -> dict[str, int]:
        return {"today": self.today, "yesterday": self.yesterday, "frozen_today": self.frozen_today,
                "frozen_yesterday": self.frozen_yesterday}


@dataclass(slots=True)
class TwoSided:
    """Long and short of one account and instrument, and the trading day ``today`` means."""

    long: SidePosition = field(default_factory=SidePosition)
    short: SidePosition = field(default_factory=SidePosition)
    trading_day: dt.date | None = None

    @property
    def net(self) -> int:
        return self.long.total - self.short.total

    def roll(self, trading_day: dt.date | None) -> bool:
        """A new trading day (the night session's boundary on Chinese exchanges): today's lots
        become yesterday's. Returns whether it rolled."""
        if trading_day is None:
            return False
        if self.trading_day is None or trading_day <= self.trading_day:
            self.trading_day = self.trading_day or trading_day
            return False
        for s in (self.long, self.short):
            s.yesterday += s.today
            s.today = 0
            s.frozen_yesterday += s.frozen_today
            s.frozen_today = 0
        self.trading_day = trading_day
        return True

    def closing(self, side: Side) -> SidePosition:
        """The side an order of ``side`` closes: a sell closes long, a buy closes short."""
        return self.long if side is Side.SELL else self.short

    def as_dict(self) -> dict[str, object]:
        return {"long": self.long.as_dict(), "short": self.short.as_dict(), "net": self.net,
                "trading_day": self.trading_day.isoformat() if self.trading_day else None}


class OffsetError(ValueError):
    """An order whose offset cannot be valid at its venue (the reason names the rule)."""


def check_offset(venue: Venue, offset: Offset | None) -> str | None:
    """Why ``offset`` cannot be sent to ``venue`` (None: it can)."""
    rule = venue.offsets
    if rule == "none":
        return None if offset is None else (f"{venue.code} nets positions: an order takes no offset "
                                            f"(got {offset.value})")
    if offset is None:
        return f"{venue.code} holds long and short apart: every order must say OPEN or CLOSE"
    if rule == "today_yesterday" and offset is Offset.CLOSE:
        return f"{venue.code} needs CLOSE_TODAY or CLOSE_YESTERDAY, not a plain CLOSE"
    if rule == "close" and offset in (Offset.CLOSE_TODAY, Offset.CLOSE_YESTERDAY):
        return f"{venue.code} closes in its own order ({venue.close_order}): send a plain CLOSE, not {offset.value}"
    return None


def _buckets(venue: Venue, offset: Offset, pos: SidePosition, qty: int, *, held: bool = False) -> tuple[int, int]:
    """(from today, from yesterday) that a close of ``qty`` takes; raises when it cannot. From
    what is available (held less what working closes reserve), or with ``held`` from all that is
    held (an execution that happened: a fill reported after its order's cancel takes real lots,
    whatever another order has reserved)."""
    td_have = pos.today if held else pos.available_today
    yd_have = pos.yesterday if held else pos.available_yesterday
    what = "held" if held else "available"
    if offset is Offset.CLOSE_TODAY:
        if td_have < qty:
            raise OffsetError(f"close-today {qty}: only {td_have} of today's lots {what}")
        return qty, 0
    if offset is Offset.CLOSE_YESTERDAY:
        if yd_have < qty:
            raise OffsetError(f"close-yesterday {qty}: only {yd_have} of yesterday's lots {what}")
        return 0, qty
    avail_td, avail_yd = td_have, yd_have
    if avail_td + avail_yd < qty:
        raise OffsetError(f"close {qty}: only {avail_td + avail_yd} lots {what}")
    if venue.close_order == "today_first":
        td = min(qty, avail_td)
        return td, qty - td
    yd = min(qty, avail_yd)
    return qty - yd, yd


class TwoSidedBook:
    """Two-sided positions per (account, instrument) at venues whose rule is not ``none``.

    ``freeze`` reserves what a working close order may close; ``fill`` applies an execution;
    ``release`` gives back what a finished close order did not use. The trading day rolls
    lazily: every call passes the venue's trading day of that moment.
    """

    def __init__(self) -> None:
        self.positions: dict[tuple[str, str], TwoSided] = {}
        # client order id -> (account, instrument, side, offset, frozen today, frozen yesterday)
        self.frozen: dict[str, tuple[str, str, Side, Offset, int, int]] = {}

    def get(self, account: str, instrument: str, trading_day: dt.date | None = None) -> TwoSided:
        p = self.positions.setdefault((account, instrument), TwoSided())
        p.roll(trading_day)
        return p

    def set(self, account: str, instrument: str, *, long_today: int = 0, long_yesterday: int = 0,
            short_today: int = 0, short_yesterday: int = 0, trading_day: dt.date | None = None) -> TwoSided:
        """Load a position (start of day, a test's set-up)."""
        p = TwoSided(SidePosition(long_today, long_yesterday), SidePosition(short_today, short_yesterday), trading_day)
        self.positions[(account, instrument)] = p
        return p

    def check(self, venue: Venue, account: str, instrument: str, side: Side, offset: Offset | None, qty: int,
              trading_day: dt.date | None = None) -> str | None:
        """Why this order could not be accepted (rule, then position), or None."""
        why = check_offset(venue, offset)
        if why is not None or offset is None or offset is Offset.OPEN:
            return why
        pos = self.get(account, instrument, trading_day).closing(side)
        try:
            _buckets(venue, offset, pos, qty)
        except OffsetError as e:
            kind = "long" if side is Side.SELL else "short"
            return f"{e} ({kind} {instrument} in {account}: today {pos.today}, yesterday {pos.yesterday}, " \
                   f"frozen {pos.frozen_today}/{pos.frozen_yesterday})"
        return None

    def freeze(self, venue: Venue, coid: str, account: str, instrument: str, side: Side, offset: Offset | None,
               qty: int, trading_day: dt.date | None = None) -> None:
        """Reserve the lots a close order may take (raises :class:`OffsetError` when it cannot)."""
        if offset is None or offset is Offset.OPEN or coid in self.frozen:
            return
        pos = self.get(account, instrument, trading_day).closing(side)
        td, yd = _buckets(venue, offset, pos, qty)
        pos.frozen_today += td
        pos.frozen_yesterday += yd
        self.frozen[coid] = (account, instrument, side, offset, td, yd)

    def fill(self, venue: Venue, coid: str | None, account: str, instrument: str, side: Side, offset: Offset | None,
             qty: int, trading_day: dt.date | None = None) -> None:
        """Apply an execution of ``qty`` lots."""
        p = self.get(account, instrument, trading_day)
        if offset is None or offset is Offset.OPEN:
            (p.long if side is Side.BUY else p.short).today += qty
            return
        pos = p.closing(side)
        held = self.frozen.get(coid or "")
        if held is None:  # a close not (or no longer) reserved: a late fill, a venue's record
            td, yd = _buckets(venue, offset, pos, qty, held=True)
            pos.today -= td
            pos.yesterday -= yd
            return
        acc, inst, sd, off, td, yd = held
        if off is Offset.CLOSE_TODAY or (off is Offset.CLOSE and venue.close_order == "today_first"):
            use_td = min(qty, td)
            use_yd = min(qty - use_td, yd)
        else:
            use_yd = min(qty, yd)
            use_td = min(qty - use_yd, td)
        pos.frozen_today -= use_td
        pos.frozen_yesterday -= use_yd
        self.frozen[coid or ""] = (acc, inst, sd, off, td - use_td, yd - use_yd)
        pos.today -= use_td
        pos.yesterday -= use_yd
        rest = qty - use_td - use_yd
        if rest:  # filled beyond its reservation (a venue that over-fills): from what is held
            td2, yd2 = _buckets(venue, Offset.CLOSE, pos, rest, held=True)
            pos.today -= td2
            pos.yesterday -= yd2

    def release(self, coid: str) -> None:
        """A close order is done (filled, cancelled, rejected, expired): its unused reservation ends."""
        held = self.frozen.pop(coid, None)
        if held is None:
            return
        acc, inst, side, _, td, yd = held
        pos = self.positions[(acc, inst)].closing(side)
        pos.frozen_today -= td
        pos.frozen_yesterday -= yd

    def exhaust(self, account: str, instrument: str, side: Side, offset: Offset | None) -> int:
        """The venue refused a close for want of lots our book showed: what it would have
        closed is not there (another terminal, a trade by phone). The bucket(s) it named are
        taken down to what working closes reserve, so that the next order opens instead of
        failing the same way. Returns the lots removed (to record)."""
        p = self.positions.get((account, instrument))
        if p is None or offset in (None, Offset.OPEN):
            return 0
        pos = p.closing(side)
        gone = 0
        if offset in (Offset.CLOSE_TODAY, Offset.CLOSE):
            gone += pos.today - pos.frozen_today
            pos.today = pos.frozen_today
        if offset in (Offset.CLOSE_YESTERDAY, Offset.CLOSE):
            gone += pos.yesterday - pos.frozen_yesterday
            pos.yesterday = pos.frozen_yesterday
        return gone

    def snapshot(self) -> dict[str, dict[str, object]]:
        """``{"ACCOUNT/INSTRUMENT": {long, short, net, trading_day}}`` of every non-flat position."""
        return {f"{a}/{i}": p.as_dict() for (a, i), p in sorted(self.positions.items())
                if p.long.total or p.short.total}


def lock_is_cheaper(fees: Any, price: Any, multiplier: Any) -> bool:
    """Whether locking today's lots (open the opposite side now, close both sides as yesterday's
    lots later) costs less than closing them today, by the contract's fee schedule at ``price``:
    ``open + 2 x close < close_today`` (per lot). True for a contract whose close-today fee is
    punitive (CSI 300 futures: ten times the open fee), false for most commodities."""
    if fees is None:
        return False

    def per_lot(f: Any) -> float:
        return float(f.per_lot) + float(f.rate) * float(price) * float(multiplier)

    return per_lot(fees.open) + 2 * per_lot(fees.close) < per_lot(fees.close_today)


def choose_offset(venue: Venue, pos: TwoSided, side: Side, qty: int, preference: Preference = "auto",
                  close_today_dearer: bool = True, lock_cheaper: bool = False) -> tuple[Offset | None, str]:
    """The offset of an order of ``qty`` lots of ``side``, and why (the reason goes to the trail).

    A close is chosen when one bucket (or, where the venue closes in its own order, the two
    together) covers the whole order; otherwise the order opens: on a two-sided venue that holds
    the opposite position beside it (a lock, 锁仓) rather than closing part of it. ``lock``
    always opens. ``auto`` closes yesterday's lots first when close-today costs more than a
    close (``close_today_dearer``: from the fee schedule), else today's first; and where only
    today's lots could be closed and a lock costs less than a close-today
    (``lock_cheaper``: :func:`lock_is_cheaper`), it opens instead.
    """
    if venue.offsets == "none":
        return None, "netting venue: no offset"
    closing = pos.closing(side)
    kind = "long" if side is Side.SELL else "short"
    have = f"{kind} today {closing.available_today}, yesterday {closing.available_yesterday} available"
    if preference == "lock":
        return Offset.OPEN, f"OPEN: lock preferred ({have})"
    if venue.offsets == "close":
        if closing.available_today + closing.available_yesterday >= qty:
            takes_today = venue.close_order == "today_first" or closing.available_yesterday < qty
            if preference == "auto" and lock_cheaper and takes_today and closing.available_today:
                return Offset.OPEN, f"OPEN: the close would take today's lots and a lock costs less than a close-today ({have})"
            return Offset.CLOSE, f"CLOSE: {have}; {venue.code} closes {venue.close_order.replace('_', ' ')}"
        return Offset.OPEN, f"OPEN: {qty} not covered ({have})"
    yesterday_first = preference == "close_yesterday_first" or (preference == "auto" and close_today_dearer)
    order = ((Offset.CLOSE_YESTERDAY, closing.available_yesterday), (Offset.CLOSE_TODAY, closing.available_today))
    if not yesterday_first:
        order = order[::-1]
    for off, avail in order:
        if avail >= qty:
            if off is Offset.CLOSE_TODAY and preference == "auto" and lock_cheaper:
                return Offset.OPEN, f"OPEN: a lock costs less than a close-today here (open + 2 closes < close-today; {have})"
            why = "close-today costs more" if preference == "auto" and close_today_dearer else preference.replace("_", " ")
            return off, f"{off.value}: {have} ({why})"
    if closing.available_today + closing.available_yesterday >= qty:
        return Offset.OPEN, f"OPEN: {qty} needs both today's and yesterday's lots ({have}); an order is never split: opens (a lock)"
    return Offset.OPEN, f"OPEN: {qty} not covered ({have})"
