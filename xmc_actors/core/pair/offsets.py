"""Two-sided positions and the offset of each order (mixed into :class:`~.book.PairBook`)."""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Iterable, Mapping


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

    def load_positions(self, venue_code: str, snapshot: Mapping[str, Any],
                       order_fills: Mapping[str, Any] | None = None,
                       accounts: Iterable[str] | None = None) -> int:
        """The venue's word on its two-sided positions (``{"ACCOUNT/INSTRUMENT": {long: {today,
        yesterday}, short: {...}, trading_day}}``, what a gateway's ``two_sided_reading`` answers)
        replaces this book's for that venue's instruments: a coordinator that starts (or
        restarts) chooses offsets from what the accounts hold, not from an empty book.

        ``order_fills`` (client order id -> lots filled, as the same reading holds them): each
        order of this book on the venue then counts from there. What it fills after the reading
        is applied to the loaded positions, what it filled before is not applied again, and a
        working close reserves what it may still take. ``None`` (an adapter that cannot say):
        an order rebuilt by a restart adds nothing to them. ``accounts``: the accounts the
        reading speaks for (a gateway carrying one account must not wipe another's); ``None``:
        every account. Returns how many positions were loaded; recorded as a RECONCILE event."""
        import datetime as _dt

        mine = {i for i, inst in self.instruments.items() if inst.venue == venue_code}
        covered = None if accounts is None else {str(a) for a in accounts}

        def ours(acc: str, inst: str) -> bool:
            return inst in mine and (covered is None or acc in covered)

        for key in [k for k in self.positions.positions if ours(*k)]:
            del self.positions.positions[key]
        for coid in [c for c, held in self.positions.frozen.items() if ours(held[0], held[1])]:
            del self.positions.frozen[coid]  # reservations on positions that are no more: made again below
        n = 0
        for key, p in snapshot.items():
            acc, _, inst = str(key).partition("/")
            if not ours(acc, inst) or not isinstance(p, Mapping):
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
        fills = self._read_order_fills(venue_code, order_fills)
        based = 0
        for m in list(self.pairs.values()):
            for leg in m.legs:
                if leg.inst.venue != venue_code or not ours(leg.spec.account, leg.inst.id):
                    continue
                for order in leg.orders:
                    based += self.base_order(m, order, fills)
        self.sink.emit(self.events.make(EventKind.RECONCILE, reason=f"two-sided positions loaded from {venue_code}",
                                        venue=venue_code, action="positions_loaded", positions=n,
                                        orders_based=based if fills is not None else None,
                                        snapshot={k: v for k, v in self.positions.snapshot().items()
                                                  if ours(*k.split("/", 1))}))
        return n

    def _read_order_fills(self, venue_code: str, order_fills: Mapping[str, Any] | None) -> dict[str, int] | None:
        """A reading's fills per order, checked (kept for orders rebuilt after the load); one
        that cannot be read counts as none given (and is recorded)."""
        if order_fills is None:
            return None
        try:
            fills = {str(c): int(q) for c, q in order_fills.items()}
            bad = next((c for c, q in fills.items() if q < 0), None)
            if bad is not None:
                raise ValueError(f"order {bad}: {fills[bad]} lots filled")
        except (AttributeError, TypeError, ValueError) as e:
            self._bad_input("positions", f"{venue_code} order fills of the position reading: {e}")
            return None
        self.order_fills.setdefault(venue_code, {}).update(fills)  # client order ids are unique across gateways
        return fills

    def base_order(self, m: "PairMachine", order: "LegOrder", fills: Mapping[str, int] | None) -> int:
        """Count ``order``'s fills from what the venue's position reading holds of them: its later
        fills are applied, a working close reserves what it may still take. An order the
        reading does not name had filled nothing by then, unless a restart rebuilt it (a reading
        that does not know it cannot say: it is left as it was). Returns 1 when it was based."""
        if fills is None:
            return 0
        base = fills.get(order.coid)
        if base is None:
            if order.recovered:
                return 0
            base = 0
        order.pos_applied = base
        order.pos_based = True
        if order.live and order.state.request.qty > base:
            self.reserve(order.state.request, m.intent.created_ns, order.state.request.qty - base)
        self.position_fill(m, order)
        return 1

    def reserve(self, req: OrderRequest, at_ns: int | None = None, qty: int | None = None) -> None:
        """A close order sent: the lots it may take (``qty``, default all of it) are frozen until
        it is done."""
        inst = self.instruments.get(req.instrument)
        venue = self._two_sided(inst) if inst is not None else None
        if venue is None or req.offset in (None, Offset.OPEN):
            return
        try:
            self.positions.freeze(venue, req.client_order_id, req.account, req.instrument, req.side, req.offset,
                                  req.qty if qty is None else qty, self._trading_day(venue, inst, at_ns))
        except OffsetError as e:  # chosen on these positions (or the venue's reading): only a bug gets here
            self._bad_input("positions", f"{req.client_order_id}: {e}", req.decision_id)

    def position_fill(self, m: "PairMachine", order: "LegOrder") -> None:
        """What an order filled since last time, applied to the two-sided positions."""
        delta = order.filled - order.pos_applied
        if delta <= 0:
            return
        order.pos_applied = order.filled
        if order.recovered and not order.pos_based:
            # rebuilt by a restart, and no position reading said how much of it the venue's
            # positions hold: they are taken to hold all it filled (applied again, a close-today
            # of 5 lots came to "only 0 held"). A fill it makes after the reading is then missed
            # until the venue's next one; a close that over-asks is refused
            # POSITION_INSUFFICIENT and the lots are taken out (exhaust)
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
