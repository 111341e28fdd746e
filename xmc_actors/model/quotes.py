"""The one quote model every venue is normalised to."""
from __future__ import annotations

from decimal import Decimal
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

FROZEN = ConfigDict(frozen=True, extra="forbid")


class QuoteStatus(str, Enum):
    OK = "OK"
    STALE = "STALE"  # a sequence gap or a silent feed: no trigger may fire on it


#: ``Quote.origin`` of a replayed daily bar's close / of a synthetic quote bridging two closes
ORIGIN_CLOSE = "close"
ORIGIN_BRIDGE = "bridge"


class Level(BaseModel):
    model_config = FROZEN
    price: Decimal
    size: NonNegativeInt


class Quote(BaseModel):
    """Top of book (plus optional depth) for one instrument.

    ``venue_ts_ns`` is what the venue stamped; ``ts_ns`` is that stamp with the venue's clock
    offset removed (calibrated, comparable across venues); ``recv_ts_ns`` is when the gateway
    received it on its own clock.
    """

    model_config = FROZEN
    instrument: str
    bid: Decimal | None
    ask: Decimal | None
    bid_size: NonNegativeInt = 0
    ask_size: NonNegativeInt = 0
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    last: Decimal | None = None
    venue_ts_ns: int
    recv_ts_ns: int = 0
    ts_ns: int = 0
    seq: NonNegativeInt = 0
    status: QuoteStatus = QuoteStatus.OK
    settlement: Decimal | None = Field(default=None, description="previous settlement, for price limits")
    origin: str | None = Field(default=None, description=(
        "what the quote stands for when it is not a venue's live book: 'close' (a daily bar's close, "
        "replayed), 'bridge' (synthetic: a seeded Brownian bridge between two daily closes); None otherwise"))

    @property
    def synthetic(self) -> bool:
        """Made up by the product (a bridge between daily closes), not recorded from a market."""
        return self.origin == ORIGIN_BRIDGE

    @property
    def mid(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2


# Compact pickling across Ray calls (quote fan-out): see model/fastpickle.py.
from .fastpickle import fast_pickle as _fast_pickle  # noqa: E402

_fast_pickle(Level, Quote)
