"""Contracts of a futures product: names, expiries, the main contract, and the roll plan.

Pure functions over catalogue data (:class:`~xmc_actors.model.market.Instrument` with its
``contract`` rules, :class:`~xmc_actors.model.market.Venue` with its calendar):

* :func:`contract` / :func:`parse_contract`: a contract of a product by delivery month, or by
  its id (``SHFE.cu2602``, ``COMEX.GCG6``, ``LME.CA-20270308``), with its last trading day and
  hold deadline computed on the venue's calendar;
* :func:`main_contract` / :func:`resolve`: what a product id (``SHFE.cu``) means on a day;
* :func:`lme_prompt`: LME cash and 3-month prompt dates;
* :func:`plan_roll`: which contracts a (cross-market) position rolls from and to, and the
  window it must be done in, before every venue's own deadline.

Dates a venue's calendar does not cover are never guessed: :class:`ContractDateError` names
the venue, the contract and the calendar's range (the same rule as ``core/calendar.py``).
"""
from __future__ import annotations

import calendar as _cal
import datetime as dt
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..model.contracts import MONTH_CODES, ContractRules, DateRule
from ..model.market import Instrument, Venue
from .calendar import _known, is_business_day

D = dt.date


class ContractDateError(ValueError):
    """A contract date that cannot be computed: outside the venue's calendar, or no such contract."""


@dataclass(frozen=True, slots=True)
class Contract:
    """One dated contract of a product.

    ``hold_deadline``: the last day a position may still be held (a roll must be done by then).
    ``prompt``: LME only, the prompt (settlement) date the contract is named by. A date in a month
    after the venue's calendar ends is None: not known yet (never guessed), and certainly not
    passed on any day the calendar covers.
    """

    venue: str
    product: str
    symbol: str
    year: int
    month: int
    last_trading_day: D | None
    hold_deadline: D | None
    prompt: D | None = None

    def require_dates(self, why: str) -> tuple[D, D]:
        """``(last_trading_day, hold_deadline)``, or :class:`ContractDateError` saying ``why`` they
        are needed and that the venue's calendar does not reach them."""
        if self.last_trading_day is None or self.hold_deadline is None:
            raise ContractDateError(f"{self.id}: {why} needs its dates, which lie after venue {self.venue}'s "
                                    "calendar end: add the exchange's next holidays to the catalogue")
        return self.last_trading_day, self.hold_deadline

    def require_deadline(self, why: str) -> D:
        """``hold_deadline``, or :class:`ContractDateError` as :meth:`require_dates`."""
        if self.hold_deadline is None:
            raise ContractDateError(f"{self.id}: {why} needs its hold deadline, which lies after venue {self.venue}'s "
                                    "calendar end: add the exchange's next holidays to the catalogue")
        return self.hold_deadline

    @property
    def id(self) -> str:
        return f"{self.venue}.{self.symbol}"

    @property
    def product_id(self) -> str:
        return f"{self.venue}.{self.product}"

    @property
    def delivery_month(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


# ----------------------------------------------------------------------------- business days
def _covered_or_raise(venue: Venue, day: D, what: str) -> None:
    if not _known(venue, day):
        cal = venue.calendar
        rng = cal.describe() if cal is not None else "none"
        raise ContractDateError(f"{what}: {day.isoformat()} is outside venue {venue.code}'s calendar ({rng}); "
                                f"add its holidays to the catalogue")


def _bday(venue: Venue, day: D, what: str) -> bool:
    _covered_or_raise(venue, day, what)
    return is_business_day(venue, day)


def shift_business_days(venue: Venue, day: D, n: int, what: str = "") -> D:
    """``day`` moved by ``n`` business days of ``venue`` (negative: back); n=0: ``day`` itself."""
    step = 1 if n >= 0 else -1
    d, left = day, abs(n)
    while left:
        d += dt.timedelta(days=step)
        if _bday(venue, d, what or f"{venue.code} business days from {day}"):
            left -= 1
    return d


def _add_months(year: int, month: int, k: int) -> tuple[int, int]:
    m = year * 12 + (month - 1) + k
    return m // 12, m % 12 + 1


def _adjust(venue: Venue, day: D, how: str, what: str) -> D:
    d = day
    for _ in range(31):
        if _bday(venue, d, what):
            return d
        d += dt.timedelta(days=1 if how == "following" else -1)
    raise ContractDateError(f"{what}: no business day of {venue.code} within 31 days of {day}")


def evaluate_known(rule: DateRule, venue: Venue, year: int, month: int, what: str = "") -> D | None:
    """:func:`evaluate`, or None when the month the rule lands in begins after the venue's
    calendar ends (not known yet)."""
    y, m = _add_months(year, month, rule.month_offset)
    if venue.calendar is not None and D(y, m, 1) > venue.calendar.end:
        return None
    return evaluate(rule, venue, year, month, what)


def evaluate(rule: DateRule, venue: Venue, year: int, month: int, what: str = "") -> D:
    """The date ``rule`` gives for the contract delivering in ``year``-``month``."""
    what = what or f"{venue.code} {year:04d}-{month:02d}"
    y, m = _add_months(year, month, rule.month_offset)
    last = _cal.monthrange(y, m)[1]
    if rule.kind == "day_of_month":
        assert rule.day is not None
        return _adjust(venue, D(y, m, min(rule.day, last)), rule.adjust, what)
    if rule.kind == "nth_weekday":
        assert rule.weekday is not None
        first = D(y, m, 1)
        d = first + dt.timedelta(days=(rule.weekday - first.weekday()) % 7 + 7 * (rule.n - 1))
        if d.month != m:
            raise ContractDateError(f"{what}: {y:04d}-{m:02d} has no {rule.n}th weekday {rule.weekday}")
        return _adjust(venue, d, rule.adjust, what)
    # last_business_day: the n-th last business day of the month
    d, seen = D(y, m, last), 0
    while d.month == m:
        if _bday(venue, d, what):
            seen += 1
            if seen == rule.n:
                return d
        d -= dt.timedelta(days=1)
    raise ContractDateError(f"{what}: {y:04d}-{m:02d} has fewer than {rule.n} business days of {venue.code}")


# ----------------------------------------------------------------------------- names
def contract_symbol(product: str, rules: ContractRules, year: int, month: int, prompt: D | None = None) -> str:
    """The exchange's name of a contract: ``cu2602``, ``GCG6``, ``BH27``, ``CA-20270308``."""
    if rules.style == "yymm":
        return f"{product}{year % 100:02d}{month:02d}"
    if rules.style == "code_y":
        return f"{product}{MONTH_CODES[month - 1]}{year % 10}"
    if rules.style == "code_yy":
        return f"{product}{MONTH_CODES[month - 1]}{year % 100:02d}"
    assert prompt is not None
    return f"{_lme_metal(product)}-{prompt.strftime('%Y%m%d')}"


def _lme_metal(product: str) -> str:
    return re.sub(r"(3M|CASH)$", "", product)


def _rules(product: Instrument) -> ContractRules:
    if product.contract is None:
        raise ContractDateError(f"{product.id} is not a dated futures product (no contract rules in the catalogue)")
    return product.contract


def contract(product: Instrument, venue: Venue, year: int, month: int) -> Contract:
    """The contract of ``product`` delivering in ``year``-``month``, with its dates."""
    rules = _rules(product)
    if rules.style == "prompt":
        raise ContractDateError(f"{product.id}: LME contracts are named by prompt date: use lme_contract")
    if month not in rules.months:
        raise ContractDateError(f"{product.id}: no contract delivers in month {month} "
                                f"(listed months {', '.join(map(str, rules.months))})")
    symbol = contract_symbol(product.symbol, rules, year, month)
    what = f"{product.venue}.{symbol}"
    assert rules.last_trading_day is not None
    ltd = evaluate_known(rules.last_trading_day, venue, year, month, what + " last trading day")
    hold = (evaluate_known(rules.hold_deadline, venue, year, month, what + " hold deadline")
            if rules.hold_deadline else ltd)
    if hold is not None and ltd is not None:
        hold = min(hold, ltd)
    return Contract(product.venue, product.symbol, symbol, year, month, ltd, hold)


def parse_contract(product: Instrument, venue: Venue, symbol: str, near: D) -> Contract:
    """The contract named ``symbol`` (``cu2602``, ``GCG6``, ``CA-20270308``; with or without the
    venue prefix). ``near``: a day the contract is listed around, for one-digit years (``GCG6``
    is the February nearest after ``near``'s year minus one)."""
    rules = _rules(product)
    symbol = symbol.split(".", 1)[1] if symbol.startswith(product.venue + ".") else symbol
    p = re.escape(product.symbol)
    if rules.style == "prompt":
        m = re.fullmatch(re.escape(_lme_metal(product.symbol)) + r"-(\d{8})", symbol)
        if not m:
            raise ContractDateError(f"{symbol!r} is not a {product.id} prompt (e.g. {_lme_metal(product.symbol)}-20270308)")
        return lme_contract(product, venue, dt.datetime.strptime(m.group(1), "%Y%m%d").date())
    pat = {"yymm": p + r"(\d{2})(\d{2})", "code_y": p + r"([FGHJKMNQUVXZ])(\d)",
           "code_yy": p + r"([FGHJKMNQUVXZ])(\d{2})"}[rules.style]
    m = re.fullmatch(pat, symbol)
    if not m:
        example = contract_symbol(product.symbol, rules, near.year, rules.months[0])
        raise ContractDateError(f"{symbol!r} is not a contract of {product.id} (e.g. {example})")
    if rules.style == "yymm":
        year, month = 2000 + int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            raise ContractDateError(f"{symbol!r}: month {month} is not 01-12")
    else:
        month = MONTH_CODES.index(m.group(1)) + 1
        if rules.style == "code_yy":
            year = 2000 + int(m.group(2))
        else:  # one digit: the first such year from near's previous year on
            year = next(y for y in range(near.year - 1, near.year + 9) if y % 10 == int(m.group(2)))
    return contract(product, venue, year, month)


# ----------------------------------------------------------------------------- LME prompts
def lme_prompt(venue: Venue, trade_day: D, tenor: str) -> D:
    """The prompt date of ``tenor`` (``cash``: two business days after the trade day; ``3M``:
    three calendar months after it, on a non-business day the next business day unless that is
    in the next month, then the previous one), on ``venue``'s (London) calendar."""
    what = f"{venue.code} {tenor} prompt for {trade_day}"
    if tenor == "cash":
        return shift_business_days(venue, trade_day, 2, what)
    if tenor != "3M":
        raise ContractDateError(f"unknown LME tenor {tenor!r} (cash or 3M)")
    y, m = _add_months(trade_day.year, trade_day.month, 3)
    d = D(y, m, min(trade_day.day, _cal.monthrange(y, m)[1]))
    if _bday(venue, d, what):
        return d
    after = _adjust(venue, d, "following", what)
    return after if after.month == d.month else _adjust(venue, d, "preceding", what)


def lme_contract(product: Instrument, venue: Venue, prompt: D) -> Contract:
    """The LME contract for ``prompt``: it trades up to the business day before the prompt; a
    position must be carried (rolled) by the day the prompt becomes the cash date (two business
    days before it), after which only a tom/next carry or delivery remain."""
    rules = _rules(product)
    what = f"{product.venue} prompt {prompt}"
    if not _bday(venue, prompt, what):
        raise ContractDateError(f"{what}: not an LME business day, so not a prompt date")
    symbol = contract_symbol(product.symbol, rules, prompt.year, prompt.month, prompt)
    last = shift_business_days(venue, prompt, -1, what)
    hold = shift_business_days(venue, prompt, -2, what)
    return Contract(product.venue, product.symbol, symbol, prompt.year, prompt.month, last, hold, prompt)


# ----------------------------------------------------------------------------- main contract
def _cutoff(c: Contract, venue: Venue, rules: ContractRules) -> D | None:
    """The last day ``c`` is the main contract by the calendar rule (None: after the calendar)."""
    if c.hold_deadline is None:
        return None
    return shift_business_days(venue, c.hold_deadline, -rules.main.business_days_before_deadline,
                               f"{c.id} main-contract cut-off")


def candidates(product: Instrument, venue: Venue, day: D) -> list[tuple[int, int]]:
    """Delivery months ``(year, month)`` of the active months, from ``day``'s month through
    ``listed_months_ahead``, nearest first."""
    rules = _rules(product)
    out = []
    for k in range(rules.listed_months_ahead + 1):
        y, m = _add_months(day.year, day.month, k)
        if m in rules.actives:
            out.append((y, m))
    return out


def live_contracts(product: Instrument, venue: Venue, day: D) -> list[Contract]:
    """The active-month contracts still eligible as main on ``day`` (cut-off not passed), nearest first."""
    rules = _rules(product)
    out = []
    for y, m in candidates(product, venue, day):
        c = contract(product, venue, y, m)
        cut = _cutoff(c, venue, rules)
        if cut is None or day <= cut:
            out.append(c)
    return out


def main_contract(product: Instrument, venue: Venue, day: D,
                  open_interest: Mapping[str, float] | None = None) -> Contract:
    """The main (most active) contract of ``product`` on ``day`` (see :class:`~xmc_actors.model.contracts.MainRule`).

    Calendar rule: the first active-month contract whose hold deadline is more than
    ``business_days_before_deadline`` business days after ``day``. With ``open_interest``
    (contract id or symbol -> open interest of the previous trading day) and ``main.by:
    open_interest``, the largest among the same candidates (ties: the nearer); when none of
    them has a figure, the calendar rule.
    """
    rules = _rules(product)
    _covered_or_raise(venue, day, f"{product.id} main contract")
    if rules.style == "prompt":
        assert rules.prompt is not None
        return lme_contract(product, venue, lme_prompt(venue, day, rules.prompt))
    live = live_contracts(product, venue, day)
    if not live:
        raise ContractDateError(f"{product.id}: no active contract within {rules.listed_months_ahead} months of {day}")
    if rules.main.by == "open_interest" and open_interest:
        def oi(c: Contract) -> float:
            return float(open_interest.get(c.symbol, open_interest.get(c.id, -1.0)))
        best = max(range(len(live)), key=lambda i: (oi(live[i]), -i))
        if oi(live[best]) >= 0:
            return live[best]
    return live[0]


def next_contract(product: Instrument, venue: Venue, near: Contract, roll_day: D | None = None) -> Contract:
    """The contract a position in ``near`` rolls into: the next active month after it (LME: the
    3-month prompt of ``roll_day``)."""
    rules = _rules(product)
    if rules.style == "prompt":
        if roll_day is None:
            raise ContractDateError(f"{near.id}: an LME roll's far prompt depends on the roll day")
        assert rules.prompt is not None
        return lme_contract(product, venue, lme_prompt(venue, roll_day, "3M"))
    y, m = near.year, near.month
    for _ in range(24):
        y, m = _add_months(y, m, 1)
        if m in rules.actives:
            return contract(product, venue, y, m)
    raise ContractDateError(f"{near.id}: no active month in the 24 months after it")


def resolve(instruments: Mapping[str, Instrument], venues: Mapping[str, Venue], inst_id: str, day: D) -> Contract | None:
    """What ``inst_id`` trades on ``day``: a product id (``SHFE.cu``) is its main contract; a
    concrete id (``SHFE.cu2602``, listed or not) is that contract; an instrument that is not a
    dated product (SGE spot) is None. A concrete contract past its last trading day is an error."""
    venue_code, _, symbol = inst_id.partition(".")
    venue = venues.get(venue_code)
    if venue is None:
        raise KeyError(f"unknown venue {venue_code!r} in {inst_id!r}")
    inst = instruments.get(inst_id)
    if inst is not None and inst.contract is not None:
        return main_contract(inst, venue, day)
    product = _product_for(instruments, venue_code, symbol, inst)
    if product is None:
        if inst is None:
            raise KeyError(f"unknown instrument {inst_id!r}: not listed, and no product of {venue_code} names it")
        return None
    c = parse_contract(product, venue, symbol, day)
    if c.last_trading_day is not None and day > c.last_trading_day:
        raise ContractDateError(f"{c.id} expired on {c.last_trading_day} (its last trading day); it is {day}")
    return c


def _product_for(instruments: Mapping[str, Instrument], venue: str, symbol: str, inst: Instrument | None) -> Instrument | None:
    if inst is not None and inst.product:
        return instruments.get(f"{venue}.{inst.product}")
    best = None
    for p in instruments.values():
        if p.venue != venue or p.contract is None:
            continue
        stem = _lme_metal(p.symbol) if p.contract.style == "prompt" else p.symbol
        if symbol.startswith(stem) and symbol != p.symbol and (best is None or len(stem) > len(best.symbol)):
            best = p
    return best


def concrete_instrument(product: Instrument, c: Contract) -> Instrument:
    """The instrument of contract ``c``: the product's terms under the contract's own id."""
    month = c.prompt.isoformat() if c.prompt else c.delivery_month
    return product.model_copy(update={"symbol": c.symbol, "contract": None, "product": product.symbol,
                                      "name": f"{product.name or product.id} {month}".strip()})


# ----------------------------------------------------------------------------- the roll plan
@dataclass(frozen=True, slots=True)
class Holding:
    """A leg of a position to roll: ``qty`` lots (signed: + long) of ``held`` (a concrete contract
    id, or None: the product's main contract on the planning day)."""

    product: Instrument
    venue: Venue
    qty: int
    held: str | None = None


@dataclass(frozen=True, slots=True)
class RollOrder:
    """One of the roll's orders: ``leg`` ``A``/``B`` (the pair's legs), ``near`` or ``far``."""

    leg: str
    which: str
    instrument: str
    side: str
    qty: int
    offset: str


@dataclass(frozen=True, slots=True)
class RollLeg:
    leg: str
    near: Contract
    far: Contract
    qty: int
    roll_by: D        # this venue's latest roll day (its deadline less the safety margin)


@dataclass(frozen=True, slots=True)
class RollPlan:
    """A position's roll as one decision: every leg's near contract closed and far contract opened.

    ``roll_from``..``roll_by``: the window (both business days on every leg's venue); ``deadline``:
    the earliest venue deadline, on ``binding``'s venue; ``status`` on the planning day:
    ``early`` (before the window), ``due`` (in it), ``overdue`` (past ``roll_by``: roll now;
    past ``deadline`` the venue may already force the position out).
    """

    legs: tuple[RollLeg, ...]
    orders: tuple[RollOrder, ...]
    roll_from: D
    roll_by: D
    deadline: D
    binding: str
    status: str
    reason: str


def _common_business_day(venues: Sequence[Venue], day: D, step: int, what: str) -> D:
    d = day
    for _ in range(31):
        if all(_bday(v, d, what) for v in venues):
            return d
        d += dt.timedelta(days=step)
    raise ContractDateError(f"{what}: no day within 31 days of {day} is a business day of "
                            f"{', '.join(v.code for v in venues)}")


def plan_roll(holdings: Sequence[Holding], day: D, *, window_business_days: int = 5,
              safety_business_days: int = 1) -> RollPlan:
    """Plan the roll of a position held in ``holdings`` (one per leg, ``A`` then ``B``), on ``day``.

    For each leg with a dated product: the near contract (the one held, or the main one on
    ``day``), the far contract (:func:`next_contract`; LME: the 3-month prompt of the roll day),
    and its latest roll day, ``safety_business_days`` business days before the near contract's
    hold deadline. The plan's ``roll_by`` is the earliest of these, moved back to a business day
    of every venue involved; ``roll_from`` is ``window_business_days`` business days before it
    (not before ``day``). Its orders close every near leg and open every far leg with the same
    quantities: one decision, four legs for a pair of futures. A leg that is not a dated product
    (spot) is not rolled; a plan needs at least one dated leg.
    """
    if not holdings:
        raise ValueError("plan_roll: no holdings")
    dated = [(chr(ord("A") + i), h) for i, h in enumerate(holdings) if h.product.contract is not None]
    if not dated:
        raise ContractDateError("nothing to roll: no leg is a dated futures product")
    for tag, h in dated:
        if h.qty == 0:
            raise ValueError(f"plan_roll: leg {tag} ({h.product.id}) holds no lots")
    nears = {tag: (parse_contract(h.product, h.venue, h.held, day) if h.held
                   else main_contract(h.product, h.venue, day)) for tag, h in dated}
    venues = [h.venue for _, h in dated]
    leg_by: dict[str, D] = {}
    deadlines = {tag: c.require_deadline("planning its roll") for tag, c in nears.items()}
    for tag, h in dated:
        leg_by[tag] = shift_business_days(h.venue, deadlines[tag], -safety_business_days,
                                          f"{nears[tag].id} roll day")
    binding = min(leg_by, key=lambda t: (deadlines[t], t))
    roll_by = _common_business_day(venues, min(leg_by.values()), -1, "roll day")
    roll_from = _common_business_day(
        venues, shift_business_days(dict(dated)[binding].venue, roll_by, -window_business_days, "roll window"), 1,
        "roll window")
    roll_from = max(roll_from, min(day, roll_by))
    legs, orders = [], []
    for tag, h in dated:
        near = nears[tag]
        far = next_contract(h.product, h.venue, near, roll_day=max(day, roll_from))
        legs.append(RollLeg(tag, near, far, h.qty, leg_by[tag]))
        close_side, open_side = ("SELL", "BUY") if h.qty > 0 else ("BUY", "SELL")
        orders.append(RollOrder(tag, "near", near.id, close_side, abs(h.qty), "CLOSE"))
        orders.append(RollOrder(tag, "far", far.id, open_side, abs(h.qty), "OPEN"))
    deadline = min(deadlines.values())
    status = "early" if day < roll_from else ("due" if day <= roll_by else "overdue")
    b = nears[binding]
    reason = (f"roll {', '.join(f'{lg.near.id}->{lg.far.id}' for lg in legs)} between {roll_from} and {roll_by}: "
              f"{b.id} must be out by {b.hold_deadline} ({b.venue}'s deadline), {safety_business_days} business "
              f"day(s) kept in hand")
    if status == "overdue":
        reason = f"OVERDUE on {day}: " + reason
    return RollPlan(tuple(legs), tuple(orders), roll_from, roll_by, deadline, binding, status, reason)


def roll_times(plan: RollPlan, venues: Sequence[Venue], *, after_open_minutes: int = 15, days: int = 1) -> list[str]:
    """``calendar_roll``'s ``roll_at`` for ``plan``: on the last ``days`` business days of the
    window (common to ``venues``, ending at ``roll_by``), ``after_open_minutes`` after the latest
    of the venues' first day-session opens, as UTC ISO times (``2026-12-29T01:45:00Z``). With
    ``days`` > 1 the position moves in as many steps (``qty`` = lots / ``days``)."""
    if days < 1:
        raise ValueError("roll_times: days must be at least 1")
    out: list[dt.datetime] = []
    d = plan.roll_by
    while len(out) < days:
        if d < plan.roll_from:
            raise ContractDateError(f"roll_times: the window {plan.roll_from}..{plan.roll_by} has fewer than "
                                    f"{days} business days common to {', '.join(v.code for v in venues)}")
        if all(_bday(v, d, "roll time") for v in venues):
            out.append(roll_time_on(d, venues, after_open_minutes))
        d -= dt.timedelta(days=1)
    return [t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for t in sorted(out)]


def roll_time_on(day: D, venues: Sequence[Venue], after_open_minutes: int = 15) -> dt.datetime:
    """When a roll may start on ``day``: ``after_open_minutes`` after the latest of the
    venues' first day-session opens (every leg trades by then), as an aware datetime."""
    opens = []
    for v in venues:
        day_sessions = [s for s in v.sessions if not s.night]
        if day_sessions:
            first = min(day_sessions, key=lambda s: s.start_time)
            opens.append(dt.datetime.combine(day, first.start_time, v.tz))
    if not opens:  # Globex-style venues only: their session opens the evening before
        opens = [dt.datetime.combine(day, dt.time(9, 0), venues[0].tz)]
    return max(opens) + dt.timedelta(minutes=after_open_minutes)
