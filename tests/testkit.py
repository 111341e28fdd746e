"""Builders shared by all tests: catalogue instruments and venues, quotes, orders, intents; and
the one wait-until loop the Ray tests poll with."""
from __future__ import annotations

import os
import time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from xmc_actors.model import (
    Instrument, LegIntent, OrderRequest, OrderType, PairIntent, Quote, Side, TimeInForce, Venue,
    client_order_id,
)

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "configs" / "catalogue.yaml"


def data_dir() -> Path:
    """The shared real-data folder (``XMC_DATA_DIR`` or ``../shared/data`` beside the project)."""
    return Path(os.environ.get("XMC_DATA_DIR", ROOT.parent / "shared" / "data"))


@lru_cache(maxsize=1)
def _catalogue() -> tuple[dict[str, Venue], dict[str, Instrument]]:
    raw = yaml.safe_load(CATALOGUE.read_text())
    venues = {v["code"]: Venue.model_validate(v) for v in raw["venues"]}
    insts = {f"{i['venue']}.{i['symbol']}": Instrument.model_validate(i) for i in raw["instruments"]}
    return venues, insts


def venue(code: str, *, offsets: bool = False) -> Venue:
    """A catalogue venue. Without ``offsets`` its orders take no offset (``offsets: none``), so
    tests of matching, sessions, faults place plain orders; ``offsets=True``: the catalogue's
    rule (SHFE and INE: today/yesterday), which the offset tests check."""
    v = _catalogue()[0][code]
    return v if offsets else v.model_copy(update={"offsets": "none"})


def instrument(inst_id: str, **overrides: Any) -> Instrument:
    inst = _catalogue()[1][inst_id]
    return inst.model_copy(update=overrides) if overrides else inst


def instruments() -> dict[str, Instrument]:
    return dict(_catalogue()[1])


def quote(inst_id: str, bid: str | float, ask: str | float, *, bid_size: int = 10, ask_size: int = 10,
          ts_ns: int = 1_700_000_000_000_000_000, seq: int = 0, **kw: Any) -> Quote:
    return Quote(instrument=inst_id, bid=Decimal(str(bid)), ask=Decimal(str(ask)), bid_size=bid_size,
                 ask_size=ask_size, venue_ts_ns=ts_ns, recv_ts_ns=ts_ns, ts_ns=ts_ns, seq=seq, **kw)


def order(inst_id: str, side: Side | str, qty: int, price: str | float | None, *, decision_id: str = "d1",
          leg: str = "A", attempt: int = 0, account: str = "acc", order_type: OrderType = OrderType.LIMIT,
          tif: TimeInForce = TimeInForce.DAY, owner: str = "", **kw: Any) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id(decision_id, leg, attempt), decision_id=decision_id, leg=leg,
        attempt=attempt, account=account, instrument=inst_id, side=Side(side), qty=qty,
        order_type=order_type, price=None if price is None else Decimal(str(price)), tif=tif, owner=owner, **kw,
    )


def pair_intent(decision_id: str = "d1", *, a: tuple[str, str, int, str] = ("SHFE.cu", "BUY", 1, "72000"),
                b: tuple[str, str, int, str] = ("LME.CA3M", "SELL", 1, "9800"), strategy: str = "s1",
                accounts: tuple[str, str] = ("cn", "us"), **kw: Any) -> PairIntent:
    legs = []
    for name, (inst, side, qty, px), acc in zip(("A", "B"), (a, b), accounts):
        legs.append(LegIntent(leg=name, instrument=inst, account=acc, side=Side(side), qty=qty,
                              limit_price=Decimal(px), trigger_price=Decimal(px)))
    return PairIntent(decision_id=decision_id, strategy=strategy, legs=(legs[0], legs[1]), **kw)


T = TypeVar("T")


def wait_until(cond: Callable[[], T], timeout: float = 10.0, what: str = "condition", every: float = 0.05) -> T:
    """Call ``cond`` every ``every`` seconds until it returns something truthy, and return that;
    fail the test with ``what`` if ``timeout`` seconds pass first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s: {what}")
