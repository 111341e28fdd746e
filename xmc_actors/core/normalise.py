"""Normalise a venue's market-data messages to the one :class:`~xmc_actors.model.quotes.Quote`.

The wire format (what :mod:`xmc_actors.venues.sim` publishes, and what other adapters map to)
is a mapping::

    {"type": "quote" | "snapshot", "instrument": "SHFE.cu", "seq": 12, "ts": <venue ns>,
     "bid": 72000, "bid_size": 5, "ask": 72010, "ask_size": 3,
     "last": 72000 (optional), "settlement": 71500 (optional),
     "bids": [(price, size), ...] (optional depth), "asks": [...]}

Prices may be Decimal, int, float or str. Anything wrong is refused with a :class:`BadInput`
naming the field and the reason (one of :class:`BadInputReason`); the caller counts it and
writes it to the ledger. Nothing here raises on bad data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Mapping

from ..model.market import Instrument
from ..model.quotes import ORIGIN_BRIDGE, ORIGIN_CLOSE, Level, Quote, QuoteStatus


class BadInputReason(str, Enum):
    GARBAGE = "GARBAGE"                       # not a mapping, wrong type of a field, missing field
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    NON_FINITE_PRICE = "NON_FINITE_PRICE"     # NaN or infinity
    NON_POSITIVE_PRICE = "NON_POSITIVE_PRICE"
    OFF_TICK = "OFF_TICK"
    BAD_SIZE = "BAD_SIZE"                     # <= 0 on a side that has a price, or not a whole number
    EMPTY_BOOK = "EMPTY_BOOK"                 # neither a bid nor an ask
    CROSSED_BOOK = "CROSSED_BOOK"             # bid > ask
    LOCKED_BOOK = "LOCKED_BOOK"               # bid == ask
    FUTURE_TS = "FUTURE_TS"
    STALE_TS = "STALE_TS"                     # far in the past
    BAD_SEQ = "BAD_SEQ"                       # missing or negative sequence number
    DUPLICATE_SEQ = "DUPLICATE_SEQ"
    OUT_OF_ORDER_SEQ = "OUT_OF_ORDER_SEQ"


@dataclass(frozen=True, slots=True)
class BadInput:
    """A refused message: ``field`` and ``detail`` say what was wrong."""

    reason: BadInputReason
    field: str
    detail: str
    instrument: str = ""

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.field}: {self.detail}"


class _Bad(Exception):
    def __init__(self, bad: BadInput) -> None:
        self.bad = bad


def _price(value: Any, field: str, inst: Instrument, *, optional: bool) -> Decimal | None:
    if value is None:
        if optional:
            return None
        raise _Bad(BadInput(BadInputReason.GARBAGE, field, "is missing", inst.id))
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise _Bad(BadInput(BadInputReason.GARBAGE, field, f"is a {type(value).__name__}, not a price", inst.id))
    if isinstance(value, float) and not math.isfinite(value):
        raise _Bad(BadInput(BadInputReason.NON_FINITE_PRICE, field, f"{value!r} is not finite", inst.id))
    try:
        if isinstance(value, Decimal):
            d = value
        elif isinstance(value, str):
            d = Decimal(value.strip()[:64])
        elif isinstance(value, float):
            d = Decimal(repr(value))  # the shortest decimal that round-trips: 72000.1, not 72000.100000000006
        else:
            d = Decimal(value)
    except (InvalidOperation, ValueError):
        raise _Bad(BadInput(BadInputReason.GARBAGE, field, f"{str(value)[:40]!r} is not a number", inst.id)) from None
    if not d.is_finite():
        raise _Bad(BadInput(BadInputReason.NON_FINITE_PRICE, field, f"{value!r} is not finite", inst.id))
    if d <= 0:
        raise _Bad(BadInput(BadInputReason.NON_POSITIVE_PRICE, field, f"{d} is not > 0", inst.id))
    if d % inst.tick_size:
        raise _Bad(BadInput(BadInputReason.OFF_TICK, field, f"{d} is not a multiple of tick {inst.tick_size}", inst.id))
    return d


def _origin(value: Any) -> str | None:
    """A replayed quote's ``origin`` tag (``Quote.origin``), as the gateway put it on the venue's message."""
    return value if value in (ORIGIN_CLOSE, ORIGIN_BRIDGE) else None


def _size(value: Any, field: str, inst: Instrument) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise _Bad(BadInput(BadInputReason.BAD_SIZE, field, f"{str(value)[:40]!r} is not a whole number", inst.id))
    if isinstance(value, float) and not math.isfinite(value):
        raise _Bad(BadInput(BadInputReason.BAD_SIZE, field, f"{value!r} is not finite", inst.id))
    if isinstance(value, Decimal) and not value.is_finite():
        raise _Bad(BadInput(BadInputReason.BAD_SIZE, field, f"{value!r} is not finite", inst.id))
    if int(value) != value:
        raise _Bad(BadInput(BadInputReason.BAD_SIZE, field, f"{value!r} is not a whole number", inst.id))
    if value <= 0:
        raise _Bad(BadInput(BadInputReason.BAD_SIZE, field, f"{value} is not > 0", inst.id))
    return int(value)


def _levels(raw: Any, field: str, inst: Instrument) -> tuple[Level, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise _Bad(BadInput(BadInputReason.GARBAGE, field, "depth is not a list of (price, size)", inst.id))
    out = []
    for k, item in enumerate(raw[:20]):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise _Bad(BadInput(BadInputReason.GARBAGE, f"{field}[{k}]", "is not a (price, size) pair", inst.id))
        px = _price(item[0], f"{field}[{k}].price", inst, optional=False)
        assert px is not None
        out.append(Level(price=px, size=_size(item[1], f"{field}[{k}].size", inst)))
    return tuple(out)


class Normaliser:
    """Turns wire messages into calibrated :class:`Quote` objects or :class:`BadInput`.

    Parameters
    ----------
    instruments
        The instruments this venue lists, by id.
    max_future_ns, max_past_ns
        How far a calibrated venue timestamp may be ahead of / behind our receive time.
    """

    def __init__(self, instruments: Mapping[str, Instrument], *, max_future_ns: int = 2_000_000_000,
                 max_past_ns: int = 600_000_000_000) -> None:
        self.instruments = dict(instruments)
        self.max_future_ns = max_future_ns
        self.max_past_ns = max_past_ns

    def parse(self, msg: Any, recv_ns: int, offset_ns: float = 0.0) -> Quote | BadInput:
        """Validate one message. ``offset_ns`` (venue - local) moves its stamp onto our clock."""
        try:
            return self._parse(msg, recv_ns, offset_ns)
        except _Bad as e:
            return e.bad
        except Exception as e:  # noqa: BLE001 - a message must never crash the gateway
            return BadInput(BadInputReason.GARBAGE, "message", f"{type(e).__name__}: {str(e)[:80]}")

    def _parse(self, msg: Any, recv_ns: int, offset_ns: float) -> Quote:
        if not isinstance(msg, Mapping):
            raise _Bad(BadInput(BadInputReason.GARBAGE, "message", f"is a {type(msg).__name__}, not a mapping"))
        if msg.get("type") not in ("quote", "snapshot"):
            raise _Bad(BadInput(BadInputReason.GARBAGE, "type", f"{str(msg.get('type'))[:40]!r} is not quote/snapshot"))
        inst_id = msg.get("instrument")
        if not isinstance(inst_id, str):
            raise _Bad(BadInput(BadInputReason.GARBAGE, "instrument", "is missing or not a string"))
        inst = self.instruments.get(inst_id)
        if inst is None:
            raise _Bad(BadInput(BadInputReason.UNKNOWN_INSTRUMENT, "instrument", f"{inst_id[:40]!r} is not listed", inst_id[:40]))
        seq = msg.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise _Bad(BadInput(BadInputReason.BAD_SEQ, "seq", f"{str(seq)[:40]!r} is not a sequence number >= 0", inst_id))
        ts = msg.get("ts")
        if isinstance(ts, bool) or not isinstance(ts, int):
            raise _Bad(BadInput(BadInputReason.GARBAGE, "ts", f"{str(ts)[:40]!r} is not an integer timestamp (ns)", inst_id))
        bid = _price(msg.get("bid"), "bid", inst, optional=True)
        ask = _price(msg.get("ask"), "ask", inst, optional=True)
        if bid is None and ask is None:
            raise _Bad(BadInput(BadInputReason.EMPTY_BOOK, "bid/ask", "neither a bid nor an ask", inst_id))
        bid_size = _size(msg.get("bid_size"), "bid_size", inst) if bid is not None else 0
        ask_size = _size(msg.get("ask_size"), "ask_size", inst) if ask is not None else 0
        if bid is not None and ask is not None:
            if bid > ask:
                raise _Bad(BadInput(BadInputReason.CROSSED_BOOK, "bid/ask", f"bid {bid} > ask {ask}", inst_id))
            if bid == ask:
                raise _Bad(BadInput(BadInputReason.LOCKED_BOOK, "bid/ask", f"bid == ask == {bid}", inst_id))
        last = _price(msg.get("last"), "last", inst, optional=True)
        settlement = _price(msg.get("settlement"), "settlement", inst, optional=True)
        bids = _levels(msg.get("bids"), "bids", inst)
        asks = _levels(msg.get("asks"), "asks", inst)
        cal = ts - round(offset_ns)
        if cal > recv_ns + self.max_future_ns:
            raise _Bad(BadInput(BadInputReason.FUTURE_TS, "ts", f"{(cal - recv_ns) / 1e6:.1f} ms in the future", inst_id))
        if cal < recv_ns - self.max_past_ns:
            raise _Bad(BadInput(BadInputReason.STALE_TS, "ts", f"{(recv_ns - cal) / 1e9:.1f} s in the past", inst_id))
        return Quote(instrument=inst_id, bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size, bids=bids,
                     asks=asks, last=last, venue_ts_ns=ts, recv_ts_ns=recv_ns, ts_ns=cal, seq=seq,
                     status=QuoteStatus.OK, settlement=settlement, origin=_origin(msg.get("origin")))
