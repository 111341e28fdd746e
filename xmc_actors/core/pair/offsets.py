"""Two-sided positions and the offset of each order (mixed into :class:`~.book.PairBook`)."""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping


from ...model.events import EventKind
from ...model.market import Instrument, Side, Venue
from ...model.orders import (
    Offset, OrderRequest,
)
from ..calendar import instrument_session_state
from ..positions import OffsetError, choose_offset, lock_is_cheaper
from .legs import LegOrder

if TYPE_CHECKING:
    from .machine import PairMachine

class Offsets:
    """The book of two-sided positions this coordinator's fills made, and offsets chosen from it."""

    # -- two-sided positions and offsets ---------------------------------------------------
    def _two_sided(self, inst: Instrument) -> Venue | None:
        v = self.venues.get(inst.venue)
        return v if v is not None and v.offsets != "none" else None

    def closable(self, account: str, inst: Instrument) -> tuple[int, int] | None:
        """Lots a close order of ``account`` can take now on ``inst``: ``(long, short)``
        available, today's and earlier days' together, from the two-sided book; None when its
        venue does not hold long and short apart (the caller asks the venue for a net)."""
        venue = self._two_sided(inst)
        if venue is None:
            return None
        pos = self.positions.get(account, inst.id, self._trading_day(venue, inst))
        return (pos.long.available_today + pos.long.available_yesterday,
                pos.short.available_today + pos.short.available_yesterday)

    def _trading_day(self, venue: Venue, inst: Instrument, at_ns: int | None = None) -> Any:
        """The venue's trading day at the market time of the pair (``PairIntent.created_ns``, the
        stamp of the quotes it was decided on: a replay's, not the wall clock's), or now."""
        return instrument_session_state(venue, inst, at_ns or self.clock.now_ns()).trading_day

    def choose_offset(self, account: str, inst: Instrument, side: Side, qty: int,
                      at_ns: int | None = None, price: Decimal | None = None) -> tuple[Offset | None, str]:
        """The offset of a new order and why (``core/positions.choose_offset`` on the lots this
        coordinator's fills left available, with ``CoordinatorConfig.offset_preference``)."""
        venue = self._two_sided(inst)
        if venue is None:
            return None, ""
        pos = self.positions.get(account, inst.id, self._trading_day(venue, inst, at_ns))
        dearer = inst.fees.close_today_dearer if inst.fees is not None else True
        lock = price is not None and lock_is_cheaper(inst.fees, price, inst.multiplier)
        return choose_offset(venue, pos, side, qty, self.config.offset_preference, dearer, lock)

    def load_positions(self, venue_code: str, snapshot: Mapping[str, Any]) -> int:
        """The venue's word on its two-sided positions (``{"ACCOUNT/INSTRUMENT": {long: {today,
        yesterday}, short: {...}, trading_day}}``, what a gateway's ``two_sided_positions``
        answers) replaces this book's for that venue's instruments: a coordinator that starts
        (or restarts) chooses offsets from what the accounts hold, not from an empty book.
        Returns how many positions were loaded; recorded as a RECONCILE event."""
        import datetime as _dt

        mine = {i for i, inst in self.instruments.items() if inst.venue == venue_code}
        for key in [k for k in self.positions.positions if k[1] in mine]:
            del self.positions.positions[key]
        n = 0
        for key, p in snapshot.items():
            acc, _, inst = str(key).partition("/")
            if inst not in mine or not isinstance(p, Mapping):
                continue
            lg, sh = p.get("long") or {}, p.get("short") or {}
            day = p.get("trading_day")
            try:
                self.positions.set(acc, inst, long_today=int(lg.get("today", 0)), long_yesterday=int(lg.get("yesterday", 0)),
                                   short_today=int(sh.get("today", 0)), short_yesterday=int(sh.get("yesterday", 0)),
                                   trading_day=_dt.date.fromisoformat(day) if day else None)
            except (TypeError, ValueError) as e:
                self._bad_input("positions", f"{venue_code} position {key!r}: {e}")
                continue
            n += 1
        self.sink.emit(self.events.make(EventKind.RECONCILE, reason=f"two-sided positions loaded from {venue_code}",
                                        venue=venue_code, action="positions_loaded", positions=n,
                                        snapshot={k: v for k, v in self.positions.snapshot().items()
                                                  if k.split("/", 1)[1] in mine}))
        return n

    def reserve(self, req: OrderRequest, at_ns: int | None = None) -> None:
        """A close order sent: the lots it may take are frozen until it is done."""
        inst = self.instruments.get(req.instrument)
        venue = self._two_sided(inst) if inst is not None else None
        if venue is None or req.offset in (None, Offset.OPEN):
            return
        try:
            self.positions.freeze(venue, req.client_order_id, req.account, req.instrument, req.side, req.offset,
                                  req.qty, self._trading_day(venue, inst, at_ns))
        except OffsetError as e:  # the choice was made on these positions: only a bug gets here
            self._bad_input("positions", f"{req.client_order_id}: {e}", req.decision_id)

    def position_fill(self, m: "PairMachine", order: "LegOrder") -> None:
        """What an order filled since last time, applied to the two-sided positions."""
        delta = order.filled - order.pos_applied
        if delta <= 0:
            return
        order.pos_applied = order.filled
        if order.recovered:
            # a restart loaded the venue's positions before it rebuilt this order: they hold what
            # it filled (applied again, a close-today of 5 lots came to "only 0 held"). A fill it
            # makes after that load is missed here until the venue's next reading; a close it
            # then over-asks is refused POSITION_INSUFFICIENT and the lots are taken out (exhaust)
            return
        req = order.state.request
        inst = self.instruments.get(req.instrument)
        venue = self._two_sided(inst) if inst is not None else None
        if venue is None:
            return
        try:
            self.positions.fill(venue, req.client_order_id, req.account, req.instrument, req.side, req.offset, delta,
                                self._trading_day(venue, inst, m.intent.created_ns))
        except OffsetError as e:  # the venue filled a close we do not hold: our view is behind the venue's
            self._bad_input("positions", f"fill of {req.client_order_id}: {e}", m.did)
