"""Positions, capital occupancy (资金占用) and margin leases, as the RiskGuard keeps them.

* :class:`PositionBook`: net lots per account x instrument and per strategy x instrument,
  with the last mark per instrument; fed by booked pair summaries and rebuilt on restart.
* :class:`CapitalPool`: accounts at several brokers in several currencies; used margin,
  equity and occupancy per account and overall (in the base currency); occupancy levels.
  Equity follows P&L (the risk guard sets it from :class:`~xmc_actors.core.pnl.PnlBook`, or
  from the broker's own account reading when an adapter gives one). Margin follows each
  venue's rule (``Venue.margin_rule``): at a venue holding long and short apart, ``gross``
  charges both sides of a locked position, ``larger_side`` only the larger (单向大边).
* :class:`LeaseBook`: splits each pool's free margin into disjoint slices (leases), one per
  coordinator, so two coordinators never spend the same margin twice. A slice is counted at
  the larger of what was granted and what the coordinator says it uses, and a shrink is only
  counted once the coordinator has acknowledged it.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Iterable, Mapping

from ..model.market import Account, Instrument, Venue
from ..model.risk import AlertLevel, OccupancyLevels, RiskConfig
from .risk_types import ZERO, account_pool, strategy_pool

#: a ratio shown for an account whose equity is gone (zero or below): beyond every level
NO_EQUITY_RATIO = Decimal(100)

FxRate = Callable[[str, str], "Decimal | None"]


class PositionBook:
    """Net positions in lots, and the last mark per instrument (for margin).

    ``version`` counts the changes made through :meth:`apply_fill` and :meth:`mark` (a mark
    equal to the one held changes nothing): a figure computed from the book (margin,
    occupancy) holds while it is unchanged. Code that writes ``account`` or ``marks``
    directly must not rely on it.
    """

    def __init__(self) -> None:
        self.account: dict[str, dict[str, int]] = {}
        self.strategy: dict[str, dict[str, int]] = {}
        self.marks: dict[str, tuple[Decimal, int]] = {}
        self._quote_ts: dict[str, int] = {}  # instrument -> stamp of the latest market quote marked
        self.version = 0

    def apply_fill(self, account: str, strategy: str, instrument: str, signed_lots: int, price: Decimal | None, ts_ns: int = 0) -> None:
        self.version += 1
        if signed_lots:
            a = self.account.setdefault(account, {})
            a[instrument] = a.get(instrument, 0) + signed_lots
            s = self.strategy.setdefault(strategy, {})
            s[instrument] = s.get(instrument, 0) + signed_lots
        if price is not None and price > 0 and instrument not in self._quote_ts:
            # no market quote yet: the fill price is the best mark there is. Once quotes flow
            # they are the mark; a fill's stamp may come from another clock (a replay's
            # quotes are stamped in replayed time, a pair summary on the wall clock).
            self.marks[instrument] = (price, ts_ns)

    def mark(self, instrument: str, price: Decimal, ts_ns: int) -> None:
        """Mark from a market quote; quotes are ordered by their own stamps."""
        last = self._quote_ts.get(instrument)
        if last is None or ts_ns >= last:
            self._quote_ts[instrument] = ts_ns
            m = (price, ts_ns)
            if self.marks.get(instrument) != m:
                self.marks[instrument] = m
                self.version += 1

    def instrument_net(self, instrument: str) -> int:
        return sum(p.get(instrument, 0) for p in self.account.values())

    def snapshot(self) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
        def clean(d: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
            return {k: {i: q for i, q in v.items() if q} for k, v in d.items() if any(v.values())}
        return clean(self.account), clean(self.strategy)


@dataclass(frozen=True, slots=True)
class Occupancy:
    """Used margin over equity for one account (its currency) or overall (base currency)."""

    used: Decimal
    equity: Decimal
    ratio: Decimal
    level: AlertLevel | None  # None below yellow
    currency: str


def occupancy_level(ratio: Decimal, levels: OccupancyLevels) -> AlertLevel | None:
    if ratio >= levels.red:
        return AlertLevel.RED
    if ratio >= levels.orange:
        return AlertLevel.ORANGE
    if ratio >= levels.yellow:
        return AlertLevel.YELLOW
    return None


class CapitalPool:
    """Accounts, their equity and the margin their positions use.

    Parameters
    ----------
    accounts
        The deployment's accounts (currency, starting capital = equity until told otherwise).
    instruments
        For multipliers, currencies and margin rates.
    fx
        ``fx(from, to)``: units of ``to`` per one ``from``.
    base_currency
        The currency overall occupancy and strategy budgets are expressed in.
    """

    def __init__(self, accounts: Iterable[Account], instruments: Mapping[str, Instrument], fx: FxRate, base_currency: str = "USD",
                 venues: Mapping[str, Venue] | None = None) -> None:
        self.accounts = {a.id: a for a in accounts}
        self.equity: dict[str, Decimal] = {a.id: a.capital for a in self.accounts.values()}
        self.instruments = dict(instruments)
        self.fx = fx
        self.base = base_currency
        self.venues = dict(venues or {})
        #: (account, instrument) -> (long lots, short lots) at venues that hold them apart; set
        #: by the risk guard from its two-sided book. Margin of these follows the venue's rule
        self.two_sided: Mapping[tuple[str, str], tuple[int, int]] = {}
        #: account -> margin the broker says the account uses (its currency): wins over ours
        self.broker_margin: dict[str, Decimal] = {}
        #: while a list: every rate :meth:`rate` looks up is appended as (from, to, at_ns, rate),
        #: so that a caller keeping a figure can ask the same questions again and know whether
        #: the answers (an FX update) changed it (:meth:`rates_unchanged`)
        self.rate_trace: list[tuple[str, str, int | None, Decimal | None]] | None = None

    def rate(self, a: str, b: str, at_ns: int | None = None) -> Decimal | None:
        """Units of ``b`` per ``a``; at the market time ``at_ns`` (a mark's stamp) when the
        provider can be told the time (``MarketTimeFx.at``), else at its clock's time."""
        if a == b:
            return Decimal(1)
        at = getattr(self.fx, "at", None) if at_ns else None
        try:
            if at is not None:
                at(at_ns)
            r = self.fx(a, b)
        except Exception:
            r = None
        finally:
            if at is not None:
                at(None)
        r = r if r is not None and r > 0 else None
        if self.rate_trace is not None:
            self.rate_trace.append((a, b, at_ns, r))
        return r

    def rates_unchanged(self, trace: Iterable[tuple[str, str, int | None, Decimal | None]]) -> bool:
        """Whether every rate of ``trace`` (what :meth:`rate` answered while tracing) is answered
        the same now."""
        return all(self.rate(a, b, at) == r for a, b, at, r in trace)

    @staticmethod
    def market_ns(book: PositionBook) -> int | None:
        """The market time of the book: its latest mark's stamp (None without marks)."""
        return max((m[1] for m in book.marks.values()), default=None)

    def set_equity(self, account: str, amount: Decimal, *, allow_loss: bool = False) -> None:
        """The account's equity now (its currency). ``allow_loss``: equity that P&L took to
        zero or below is taken as it is (occupancy is then beyond every level), not refused."""
        if account not in self.accounts:
            raise KeyError(f"account: unknown account {account!r}")
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise ValueError(f"equity of {account}: {amount!r} is not an amount")
        if amount <= 0 and not allow_loss:
            raise ValueError(f"equity of {account}: must be positive, got {amount}")
        self.equity[account] = amount

    def margin_lots(self, account: str, instrument: str, net: int) -> int:
        """Lots ``instrument`` is charged margin on in ``account``: the net position at a
        netting venue; at a two-sided venue, by its rule: both sides (``gross``), the larger
        side (``larger_side``), or the net (``net``)."""
        sides = self.two_sided.get((account, instrument))
        inst = self.instruments.get(instrument)
        venue = self.venues.get(inst.venue) if inst is not None else None
        if sides is None or venue is None or venue.offsets == "none":
            return abs(net)
        long, short = sides
        rule = venue.margin_rule
        if rule == "larger_side":
            return max(long, short)
        if rule == "net":
            return abs(long - short)
        return long + short

    def margin_of(self, instrument: str, lots: int, marks: Mapping[str, tuple[Decimal, int]], currency: str) -> Decimal | None:
        """Margin ``lots`` (absolute) of ``instrument`` use at its mark, in ``currency``."""
        inst = self.instruments.get(instrument)
        m = marks.get(instrument)
        if inst is None or m is None or not lots:
            return ZERO if not lots else None
        r = self.rate(inst.currency, currency, m[1])
        if r is None:
            return None
        return inst.notional(m[0], abs(lots)) * inst.margin_rate * r

    def computed_margin(self, book: PositionBook) -> dict[str, Decimal]:
        """Margin per account by our own figures, each position at its mark. At a two-sided
        venue whose rule is ``larger_side`` the exchanges compare the two sides of a product
        (all its contract months) in money and charge the larger (单向大边): the sides are
        added up per product (``Instrument.product`` where the instrument has one, else its
        symbol) and the larger sum counted."""
        out: dict[str, Decimal] = {}
        for acc_id, acc in self.accounts.items():
            total = ZERO
            held = dict(book.account.get(acc_id, {}))
            for (a, inst), _ in self.two_sided.items():
                if a == acc_id:
                    held.setdefault(inst, 0)
            sides: dict[tuple[str, str], list[Decimal]] = {}   # (venue, product) -> [long margin, short margin]
            for inst, lots in held.items():
                two = self.two_sided.get((acc_id, inst))
                ins = self.instruments.get(inst)
                venue = self.venues.get(ins.venue) if ins is not None else None
                if two is not None and ins is not None and venue is not None and venue.offsets != "none" \
                        and venue.margin_rule == "larger_side":
                    ml = self.margin_of(inst, two[0], book.marks, acc.currency)
                    ms = self.margin_of(inst, two[1], book.marks, acc.currency)
                    if ml is None or ms is None:
                        continue
                    slot = sides.setdefault((ins.venue, getattr(ins, "product", None) or ins.symbol), [ZERO, ZERO])
                    slot[0] += ml
                    slot[1] += ms
                    continue
                m = self.margin_of(inst, self.margin_lots(acc_id, inst, lots), book.marks, acc.currency)
                if m is None:  # unknown mark or rate: not counted (a position without any price yet)
                    continue
                total += m
            out[acc_id] = total + sum((max(lg, sh) for lg, sh in sides.values()), ZERO)
        return out

    def used_by_account(self, book: PositionBook, computed: Mapping[str, Decimal] | None = None) -> dict[str, Decimal]:
        """Margin per account: the broker's reading where there is one, else ours (``computed``:
        :meth:`computed_margin` of ``book`` as it stands, when the caller has it)."""
        out = self.computed_margin(book) if computed is None else dict(computed)
        for acc_id, m in self.broker_margin.items():
            if acc_id in out:
                out[acc_id] = m
        return out

    def used_by_strategy(self, book: PositionBook) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for strat, pos in book.strategy.items():
            total = ZERO
            for inst, lots in pos.items():
                m = self.margin_of(inst, lots, book.marks, self.base)
                if m is not None:
                    total += m
            out[strat] = total
        return out

    def occupancy(self, book: PositionBook, levels: OccupancyLevels, in_flight: Mapping[str, Decimal] | None = None,
                  used: Mapping[str, Decimal] | None = None) -> tuple[dict[str, Occupancy], Occupancy]:
        """Occupancy per account and overall; ``in_flight`` adds coordinators' unbooked usage per
        pool. ``used``: :meth:`used_by_account` of ``book`` as it stands, when the caller has it."""
        if used is None:
            used = self.used_by_account(book)
        per: dict[str, Occupancy] = {}
        tot_used = tot_eq = ZERO
        at = self.market_ns(book)
        for acc_id, acc in self.accounts.items():
            u = used.get(acc_id, ZERO) + (in_flight or {}).get(account_pool(acc_id), ZERO)
            eq = self.equity[acc_id]
            ratio = u / eq if eq > 0 else NO_EQUITY_RATIO
            per[acc_id] = Occupancy(u, eq, ratio, occupancy_level(ratio, levels), acc.currency)
            r = self.rate(acc.currency, self.base, at)
            if r is not None:
                tot_used += u * r
                tot_eq += eq * r
        ratio = tot_used / tot_eq if tot_eq else ZERO
        return per, Occupancy(tot_used, tot_eq, ratio, occupancy_level(ratio, levels), self.base)

    def capacities(self, book: PositionBook, cfg: RiskConfig,
                   used: Mapping[str, Decimal] | None = None) -> dict[str, tuple[Decimal, Decimal]]:
        """Per pool: (capacity, used by booked positions). An account may be used up to its red
        level. ``used``: :meth:`used_by_account` of ``book`` as it stands, when the caller has it."""
        if used is None:
            used = self.used_by_account(book)
        out = {account_pool(a): (max(self.equity[a], ZERO) * cfg.occupancy.red, used.get(a, ZERO)) for a in self.accounts}
        s_used: dict[str, Decimal] | None = None   # only when a strategy has a margin budget
        for name, budget in cfg.strategies.items():
            if budget.max_margin is not None:
                if s_used is None:
                    s_used = self.used_by_strategy(book)
                out[strategy_pool(name)] = (budget.max_margin, s_used.get(name, ZERO))
        return out


class LeaseBook:
    """Disjoint margin leases per coordinator and pool.

    ``counted[c][pool]`` is what coordinator ``c`` may be using of ``pool`` at worst: the
    larger of its last acknowledged lease and the usage it reported, or, while a new lease
    is on its way, the larger of the old and the new. A new lease for ``c`` never exceeds
    ``capacity - booked - sum(counted of the others)``, so the coordinators' slices plus the
    booked margin never exceed the pool, whatever order grants and acks arrive in.
    """

    def __init__(self) -> None:
        self.weights: dict[str, Decimal] = {}
        self.counted: dict[str, dict[str, Decimal]] = {}
        self.granted: dict[str, dict[str, Decimal]] = {}
        self.reported: dict[str, dict[str, Decimal]] = {}

    def register(self, coordinator: str, weight: Decimal = Decimal(1)) -> None:
        if weight <= 0:
            raise ValueError(f"weight of {coordinator}: must be positive, got {weight}")
        self.weights[coordinator] = weight
        self.counted.setdefault(coordinator, {})
        self.granted.setdefault(coordinator, {})

    def drop(self, coordinator: str) -> None:
        """Forget a coordinator (its grant expired and it holds nothing: operator decision)."""
        for d in (self.weights, self.counted, self.granted, self.reported):
            d.pop(coordinator, None)

    def plan(self, coordinator: str, pools: Mapping[str, tuple[Decimal, Decimal]]) -> dict[str, Decimal]:
        """The leases to grant ``coordinator`` now, counted at once (pessimistically)."""
        if coordinator not in self.weights:
            raise KeyError(f"coordinator {coordinator!r} is not registered")
        total_w = sum(self.weights.values())
        share = self.weights[coordinator] / total_w
        out: dict[str, Decimal] = {}
        mine = self.counted[coordinator]
        for pool, (cap, booked) in pools.items():
            free = max(cap - booked, ZERO)
            others = sum(self.counted[d].get(pool, ZERO) for d in self.counted if d != coordinator)
            headroom = max(cap - booked - others, ZERO)
            lease = min(free * share, headroom)
            out[pool] = lease
            mine[pool] = max(mine.get(pool, ZERO), lease)
        self.granted[coordinator] = out
        return out

    def on_ack(self, coordinator: str, leases: Mapping[str, Decimal], usage: Mapping[str, Decimal]) -> None:
        """The coordinator holds ``leases`` now and uses ``usage``: count the larger of the two."""
        if coordinator not in self.counted:
            return
        self.reported[coordinator] = dict(usage)
        pools = set(leases) | set(usage)
        self.counted[coordinator] = {p: max(leases.get(p, ZERO), usage.get(p, ZERO)) for p in pools}

    def in_flight(self) -> dict[str, Decimal]:
        """What the coordinators last said they use, per pool (for occupancy)."""
        out: dict[str, Decimal] = {}
        for rep in self.reported.values():
            for p, v in rep.items():
                out[p] = out.get(p, ZERO) + v
        return out

    def total_counted(self, pool: str) -> Decimal:
        return sum((c.get(pool, ZERO) for c in self.counted.values()), ZERO)
