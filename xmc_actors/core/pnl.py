"""Profit and loss (损益): realised and unrealised, per leg, pair, strategy and account.

Pure and deterministic: no Ray, no clock of its own (every trade and mark carries its stamp).
The risk guard keeps one :class:`PnlBook`, fed by the pairs it books and the marks it takes
from quotes; the simulated exchange can keep one per account to give a broker-style account
reading.

Keys
----
A **leg** is one instrument held by one strategy for one pair in one account:
``(account, strategy, pair, instrument)``; ``pair`` names the pair the strategy trades, the
sorted instrument ids of its legs joined by ``/`` (``LME.CA3M/SHFE.cu``). Figures add up from
legs to pairs (``strategy|pair``), strategies and accounts.

Cost method: average cost (加权平均持仓成本)
--------------------------------------------
Each side of a leg holds its lots and their average price. A trade that closes lots realises
``(price - average) x lots x multiplier`` for a long (the opposite for a short) and leaves the
average of the lots still held unchanged; a trade that opens lots moves the average. We chose
average cost over FIFO because it is what a futures account statement shows per position
(持仓均价) and because the realised figure of a partial close does not depend on which lots a
venue's own close order (today's or yesterday's) took. Total P&L does not depend on the method.

Two-sided positions (双向持仓): where the venue holds long and short apart, a trade says OPEN
(adds to its own side) or CLOSE / CLOSE_TODAY / CLOSE_YESTERDAY (takes from the other side: a
sell closes long). A locked position (long and short at once) realises nothing until a side is
closed. Where the venue nets (``offset`` None) a trade first reduces the opposite side, then
opens the rest. A close for more lots than the leg holds on that side (the account-level close
took another strategy's lots) closes what the leg has and opens the rest: a strategy's P&L is
that of its own lots.

Fees are the venue's, by the trade's offset (:meth:`Instrument.fee`: open, close, close-today
schedules where the contract has one), unless the trade gives its own.

Currencies and FX P&L
---------------------
Everything is first computed in the instrument's currency (local). In the base currency:

* a realised amount (and each fee) counts at the FX rate of the moment it was realised (the
  rate is recorded with the trade): ``price P&L realised (base) = sum(r_i x fx_i)``;
* unrealised P&L counts at the rate of the mark (recorded with the mark);
* **FX P&L** is what the local money already realised gained or lost since, from the rate
  moving: ``(realised - fees) x fx_now - sum((r_i - f_i) x fx_i)``.

So ``total (base) = (realised - fees + unrealised) x fx_now = price P&L (base) + FX P&L``, and
price P&L is what the trades made at the rates of their day. A rate the provider cannot give
falls back to the last rate it gave for that currency; a leg that never had one shows no base
figures (``fx_missing``) rather than a wrong one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from ..model.market import Instrument, Side

ZERO = Decimal(0)
_PLACES = {"0.01": Decimal("0.01")}   # Figures.as_dict's default quantum, parsed once
FxRate = Callable[[str, str], "Decimal | None"]
LegKey = tuple[str, str, str, str]   # account, strategy, pair, instrument
LEVELS = ("leg", "pair", "strategy", "account")


def pair_name(instruments: Iterable[str]) -> str:
    """The pair a set of legs trades: their sorted instrument ids joined by ``/``."""
    return "/".join(sorted(set(instruments)))


@dataclass(slots=True)
class SideLots:
    """Lots held on one side and what they cost (sum of price x lots, in price units)."""

    lots: int = 0
    cost: Decimal = ZERO

    @property
    def avg(self) -> Decimal | None:
        return self.cost / self.lots if self.lots else None


@dataclass(slots=True)
class Leg:
    """One leg's position and money, in the instrument's currency."""

    instrument: Instrument
    long: SideLots = field(default_factory=SideLots)
    short: SideLots = field(default_factory=SideLots)
    realised: Decimal = ZERO          # gross of fees
    fees: Decimal = ZERO
    flows_base: Decimal = ZERO        # sum of (realised_i - fee_i) x fx_i: price P&L realised, in base
    fx_missing: bool = False          # a realised amount had no rate: base figures unknown
    trades: int = 0

    @property
    def net(self) -> int:
        return self.long.lots - self.short.lots

    def unrealised(self, mark: Decimal | None) -> Decimal | None:
        if not self.long.lots and not self.short.lots:
            return ZERO
        if mark is None:
            return None
        m = self.instrument.multiplier
        return (mark * self.long.lots - self.long.cost) * m + (self.short.cost - mark * self.short.lots) * m


@dataclass(frozen=True, slots=True)
class TradePnl:
    """What one trade did: lots it closed and opened, what it realised and paid (local), the
    rate used to count them in base (None: unknown)."""

    closed: int
    opened: int
    realised: Decimal
    fee: Decimal
    fx: Decimal | None

    def as_dict(self) -> dict[str, Any]:
        return {"closed": self.closed, "opened": self.opened, "realised": str(self.realised), "fee": str(self.fee),
                "fx": None if self.fx is None else str(self.fx)}


@dataclass(slots=True)
class Figures:
    """P&L of a leg or of a group of legs.

    Local figures (``currency`` set) exist for a leg; a group of legs in several currencies
    has base figures only. ``total_base == price_base + fx_base``.
    """

    realised: Decimal | None = ZERO
    unrealised: Decimal | None = ZERO
    fees: Decimal | None = ZERO
    currency: str | None = None
    realised_base: Decimal = ZERO     # realised less fees, each at the rate of its trade
    unrealised_base: Decimal = ZERO
    fees_base: Decimal = ZERO
    fx_base: Decimal = ZERO
    total_base: Decimal = ZERO
    fx: Decimal | None = None         # the rate the leg is marked at (instrument currency -> base)
    mark: Decimal | None = None
    net: int = 0
    long: int = 0
    short: int = 0
    unmarked: int = 0                 # legs holding lots without a mark (their unrealised is left out)
    fx_missing: int = 0               # legs without any rate (left out of base figures)
    instrument: str | None = None     # one instrument's figures (lots are only added up within one)

    @property
    def price_base(self) -> Decimal:
        return self.realised_base + self.unrealised_base

    @property
    def total_local(self) -> Decimal | None:
        if self.realised is None or self.unrealised is None or self.fees is None:
            return None
        return self.realised - self.fees + self.unrealised

    def add(self, o: "Figures") -> None:
        """Add another leg's or group's base figures (local ones only where the currency agrees)."""
        same = self.currency is not None and self.currency == o.currency
        if same:   # attribute by attribute (no getattr loop): this runs for every leg of every snapshot
            a, b = self.realised, o.realised
            self.realised = a + b if a is not None and b is not None else None
            a, b = self.unrealised, o.unrealised
            self.unrealised = a + b if a is not None and b is not None else None
            a, b = self.fees, o.fees
            self.fees = a + b if a is not None and b is not None else None
        else:
            self.realised = self.unrealised = self.fees = None
            self.currency = None
        self.realised_base += o.realised_base
        self.unrealised_base += o.unrealised_base
        self.fees_base += o.fees_base
        self.fx_base += o.fx_base
        self.total_base += o.total_base
        if self.instrument != o.instrument:
            self.instrument = None
        self.net += o.net
        self.long += o.long
        self.short += o.short
        self.unmarked += o.unmarked
        self.fx_missing += o.fx_missing

    def as_dict(self, places: str = "0.01") -> dict[str, Any]:
        q = _PLACES.get(places) or Decimal(places)
        rb, ub = self.realised_base, self.unrealised_base
        out: dict[str, Any] = {   # base figures are never None: quantized inline (every snapshot, every leg)
            "realised_base": str(rb.quantize(q)), "unrealised_base": str(ub.quantize(q)),
            "fees_base": str(self.fees_base.quantize(q)), "price_base": str((rb + ub).quantize(q)),
            "fx_base": str(self.fx_base.quantize(q)), "total_base": str(self.total_base.quantize(q))}
        # the keys below are written one by one in this order (no keyword update, no helper per
        # call): the P&L record formats seven of these every few ticks of the risk guard
        if self.instrument is not None:   # lots of one instrument; across instruments they mean nothing
            out["instrument"] = self.instrument
            out["net"] = self.net
            out["long"] = self.long
            out["short"] = self.short
        if self.currency is not None:
            r, u, f = self.realised, self.unrealised, self.fees
            out["currency"] = self.currency
            out["realised"] = None if r is None else str(r.quantize(q))
            out["unrealised"] = None if u is None else str(u.quantize(q))
            out["fees"] = None if f is None else str(f.quantize(q))
            t = self.total_local
            out["total"] = None if t is None else str(t.quantize(q))
        if self.fx is not None:
            out["fx"] = str(self.fx)
        if self.mark is not None:
            out["mark"] = str(self.mark)
        if self.unmarked:
            out["unmarked"] = self.unmarked
        if self.fx_missing:
            out["fx_missing"] = self.fx_missing
        return out


class PnlBook:
    """Average-cost P&L of every leg, marked to the latest price.

    Parameters
    ----------
    instruments
        Multipliers, currencies and fee schedules.
    fx
        ``fx(from, to)``: units of ``to`` per one ``from`` (None or an exception: not known now).
    base_currency
        The currency P&L is added up in.
    """

    def __init__(self, instruments: Mapping[str, Instrument], fx: FxRate, base_currency: str = "USD") -> None:
        self.instruments = dict(instruments)
        self.fx = fx
        self.base = base_currency
        self.legs: dict[LegKey, Leg] = {}
        self.marks: dict[str, tuple[Decimal, int]] = {}
        self.mark_fx: dict[str, Decimal] = {}        # instrument -> rate to base at its latest mark
        self._last_rate: dict[tuple[str, str], Decimal] = {}
        self.counters: dict[str, int] = {}

    # -- rates ----------------------------------------------------------------------------------
    def rate(self, ccy: str, to: str | None = None, at_ns: int | None = None) -> Decimal | None:
        """Units of ``to`` (base by default) per one ``ccy``: at the market time ``at_ns`` when
        given and the provider can be told the time (``MarketTimeFx.at``: a replay of 2019
        counts at 2019's rates), else now; failing that, the last rate known."""
        to = to or self.base
        if ccy == to:
            return Decimal(1)
        at = getattr(self.fx, "at", None) if at_ns else None
        try:
            if at is not None:
                at(at_ns)
            r = self.fx(ccy, to)
        except Exception:  # noqa: BLE001 - a provider that cannot answer: the last rate it gave
            r = None
        finally:
            if at is not None:
                at(None)
        if r is not None and r > 0:
            r = Decimal(r)
            self._last_rate[(ccy, to)] = r
            return r
        self._count("fx_fallback")
        return self._last_rate.get((ccy, to))

    # -- inputs --------------------------------------------------------------------------------
    def trade(self, *, account: str, strategy: str, pair: str, instrument: str, side: Side | str, qty: int,
              price: Decimal, offset: str | None = None, fee: Decimal | None = None,
              at_ns: int | None = None) -> TradePnl:
        """Apply one execution of ``qty`` lots at ``price`` (``at_ns``: its market time, for the
        FX rate it is counted at). ValueError naming the field for input that cannot be a
        trade (nothing changes)."""
        inst = self.instruments.get(instrument)
        if inst is None:
            raise ValueError(f"instrument: {instrument!r} is not in the catalogue this book knows")
        sd = Side(side)
        if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
            raise ValueError(f"qty: {qty!r} is not a positive whole number of lots")
        px = Decimal(price) if not isinstance(price, Decimal) else price
        if not px.is_finite() or px <= 0:
            raise ValueError(f"price: {price!r} is not a positive price")
        off = offset.value if hasattr(offset, "value") else offset  # an Offset enum or its name
        if off not in (None, "OPEN", "CLOSE", "CLOSE_TODAY", "CLOSE_YESTERDAY"):
            raise ValueError(f"offset: {offset!r} is not OPEN, CLOSE, CLOSE_TODAY or CLOSE_YESTERDAY")
        f = inst.fee(px, qty, off) if fee is None else Decimal(fee)
        if not f.is_finite() or f < 0:
            raise ValueError(f"fee: {fee!r} is not a fee")
        leg = self.legs.get((account, strategy, pair, instrument))
        if leg is None:
            leg = self.legs[(account, strategy, pair, instrument)] = Leg(inst)
        own = leg.long if sd is Side.BUY else leg.short
        other = leg.short if sd is Side.BUY else leg.long
        closing = qty if off in (None, "CLOSE", "CLOSE_TODAY", "CLOSE_YESTERDAY") else 0
        closed = min(closing, other.lots)
        realised = ZERO
        if closed:
            avg_cost = other.cost * closed / other.lots
            gain = (px * closed - avg_cost) if other is leg.long else (avg_cost - px * closed)
            realised = gain * inst.multiplier
            other.cost -= avg_cost
            other.lots -= closed
            if not other.lots:
                other.cost = ZERO
        opened = qty - closed
        if opened:
            own.lots += opened
            own.cost += px * opened
        leg.realised += realised
        leg.fees += f
        leg.trades += 1
        r = self.rate(inst.currency, at_ns=at_ns)
        if r is None:
            leg.fx_missing = True
            self._count("fx_missing")
        else:
            leg.flows_base += (realised - f) * r
        return TradePnl(closed, opened, realised, f, r)

    def mark(self, instrument: str, price: Decimal, ts_ns: int) -> bool:
        """The latest price of ``instrument`` (a mid); older stamps are ignored. Returns whether it was taken."""
        if price is None or not price.is_finite() or price <= 0:
            return False
        last = self.marks.get(instrument)
        if last is not None and ts_ns < last[1]:
            return False
        self.marks[instrument] = (price, ts_ns)
        inst = self.instruments.get(instrument)
        if inst is not None:
            r = self.rate(inst.currency, at_ns=ts_ns)
            if r is not None:
                self.mark_fx[instrument] = r
        return True

    # -- figures -------------------------------------------------------------------------------
    def leg_figures(self, key: LegKey) -> Figures:
        leg = self.legs[key]
        inst = leg.instrument
        m = self.marks.get(inst.id)
        mark = m[0] if m else None
        u = leg.unrealised(mark)
        fx = self.mark_fx.get(inst.id) if m is not None else None
        if fx is None:
            fx = self.rate(inst.currency)
        f = Figures(realised=leg.realised, unrealised=u, fees=leg.fees, currency=inst.currency, fx=fx, mark=mark,
                    net=leg.net, long=leg.long.lots, short=leg.short.lots, instrument=inst.id)
        if u is None:
            f.unmarked = 1
            u = ZERO
        if fx is None or leg.fx_missing:
            f.fx_missing = 1
            return f
        f.realised_base = leg.flows_base
        f.unrealised_base = u * fx
        f.fees_base = leg.fees * fx
        f.total_base = (leg.realised - leg.fees + u) * fx
        f.fx_base = f.total_base - f.realised_base - f.unrealised_base
        return f

    def figures(self, level: str = "account") -> dict[str, Figures]:
        """Figures per ``leg`` (``account|strategy|pair|instrument``), ``pair``
        (``strategy|pair``), ``strategy`` or ``account``."""
        if level not in LEVELS:
            raise ValueError(f"level: {level!r} is not one of {', '.join(LEVELS)}")
        out: dict[str, Figures] = {}
        for key in sorted(self.legs):
            acc, strat, pair, inst = key
            name = {"leg": "|".join(key), "pair": f"{strat}|{pair}", "strategy": strat, "account": acc}[level]
            lf = self.leg_figures(key)
            cur = out.get(name)
            if cur is None:
                out[name] = lf if level == "leg" else _copy(lf)
            else:
                cur.add(lf)
        return out

    def total(self) -> Figures:
        t = Figures(currency=None, realised=None, unrealised=None, fees=None)
        for f in self.figures("account").values():
            t.add(f)
        return t

    def account_pnl(self, account: str, currency: str, at_ns: int | None = None) -> tuple[Decimal, int]:
        """Total P&L (realised - fees + unrealised) of ``account`` in ``currency`` at the rates
        of the market time ``at_ns`` (else now): what its equity moved by; and how many legs
        could not be counted (no mark for held lots, or no rate)."""
        total, missing = ZERO, 0
        for key, leg in self.legs.items():
            if key[0] != account:
                continue
            m = self.marks.get(leg.instrument.id)
            u = leg.unrealised(m[0] if m else None)
            if u is None:
                missing += 1
                u = ZERO
            r = self.rate(leg.instrument.currency, currency, at_ns)
            if r is None:
                missing += 1
                continue
            total += (leg.realised - leg.fees + u) * r
        return total, missing

    def accounts_pnl(self, currencies: Mapping[str, str], at_ns: int | None = None) -> dict[str, tuple[Decimal, int]]:
        """:meth:`account_pnl` of every account of ``currencies`` (account -> its currency) from
        one walk over the legs (each account's legs added in the same order)."""
        acc: dict[str, list[Any]] = {a: [ZERO, 0] for a in currencies}
        for key, leg in self.legs.items():
            slot = acc.get(key[0])
            if slot is None:
                continue
            m = self.marks.get(leg.instrument.id)
            u = leg.unrealised(m[0] if m else None)
            if u is None:
                slot[1] += 1
                u = ZERO
            r = self.rate(leg.instrument.currency, currencies[key[0]], at_ns)
            if r is None:
                slot[1] += 1
                continue
            slot[0] += (leg.realised - leg.fees + u) * r
        return {a: (t, n) for a, (t, n) in acc.items()}

    def positions(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(account, instrument) -> (long lots, short lots), over strategies and pairs."""
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for (acc, _, _, inst), leg in self.legs.items():
            lg, sh = out.get((acc, inst), (0, 0))
            out[(acc, inst)] = (lg + leg.long.lots, sh + leg.short.lots)
        return out

    def _all_figures(self) -> dict[str, dict[str, Figures]]:
        """:meth:`figures` of every level from one walk over the legs (each leg's figures
        computed once, added up in the same order as :meth:`figures` adds them)."""
        acc_f: dict[str, Figures] = {}
        strat_f: dict[str, Figures] = {}
        pair_f: dict[str, Figures] = {}
        leg_f: dict[str, Figures] = {}
        for key in sorted(self.legs):
            acc, strat, pair, _ = key
            lf = self.leg_figures(key)
            leg_f["|".join(key)] = lf
            for out, name in ((acc_f, acc), (strat_f, strat), (pair_f, f"{strat}|{pair}")):
                cur = out.get(name)
                if cur is None:
                    out[name] = _copy(lf)
                else:
                    cur.add(lf)
        return {"account": acc_f, "strategy": strat_f, "pair": pair_f, "leg": leg_f}

    def snapshot(self) -> dict[str, Any]:
        """JSON-friendly: the base currency, each level's figures, the marks and rates used."""
        figs = self._all_figures()
        total = Figures(currency=None, realised=None, unrealised=None, fees=None)
        for f in figs["account"].values():
            total.add(f)
        return {"base_currency": self.base, "total": total.as_dict(),
                **{lvl + "s" if lvl != "strategy" else "strategies": {k: f.as_dict() for k, f in figs[lvl].items()}
                   for lvl in ("account", "strategy", "pair", "leg")},
                "marks": {i: str(p) for i, (p, _) in sorted(self.marks.items())},
                "fx": {i: str(r) for i, r in sorted(self.mark_fx.items())}}

    def _count(self, k: str) -> None:
        self.counters[k] = self.counters.get(k, 0) + 1


def _copy(f: Figures) -> Figures:
    g = Figures(realised=f.realised, unrealised=f.unrealised, fees=f.fees, currency=f.currency,
                realised_base=f.realised_base, unrealised_base=f.unrealised_base, fees_base=f.fees_base,
                fx_base=f.fx_base, total_base=f.total_base, net=f.net, long=f.long, short=f.short,
                unmarked=f.unmarked, fx_missing=f.fx_missing, instrument=f.instrument)
    return g
