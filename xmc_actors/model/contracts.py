"""Contract months and expiries of a futures product, as catalogue data.

A catalogue instrument such as ``SHFE.cu`` or ``COMEX.GC`` is a *product*: "the main contract
of" copper or gold. Its ``contract`` field (:class:`ContractRules`) says how its contracts are
named (``cu2602``, ``GCG6``, LME prompt dates), which months are listed and traded actively,
when each contract's last trading day falls, the last day a position may be held into (the
venue's deadline for a roll), and which contract is the main one on a day. The dates are
computed by ``core/contracts.py`` on the venue's calendar (``core/calendar.py``): a date its
calendar does not cover is an error naming the venue, never a guess.

Rules are written as a few kinds of date rule (:class:`DateRule`) relative to the contract's
delivery month, each with the contract specification it comes from (``source``).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FROZEN = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

#: CME / ICE / HKEX month codes, January to December.
MONTH_CODES = "FGHJKMNQUVXZ"

Month = Annotated[int, Field(ge=1, le=12)]


class DateRule(BaseModel):
    """A date relative to a contract's delivery month.

    ``month_offset`` moves the month first (-1: the month before delivery). Then:

    * ``day_of_month``: that ``day``; on a non-business day ``adjust`` (``following``: the next
      business day, SHFE's "15th, postponed on a holiday"; ``preceding``: the previous one).
    * ``last_business_day``: the ``n``-th last business day of the month (1: the last; 3: the
      third last, COMEX gold's last trading day).
    * ``nth_weekday``: the ``n``-th ``weekday`` (0 Monday .. 4 Friday) of the month, adjusted
      like ``day_of_month`` (CFFEX IF: the third Friday).
    """

    model_config = FROZEN
    kind: Literal["day_of_month", "last_business_day", "nth_weekday"]
    month_offset: Annotated[int, Field(ge=-12, le=0)] = 0
    day: Annotated[int, Field(ge=1, le=31)] | None = None
    n: Annotated[int, Field(ge=1, le=10)] = 1
    weekday: Annotated[int, Field(ge=0, le=6)] | None = None
    adjust: Literal["following", "preceding"] = "following"

    @model_validator(mode="after")
    def _check(self) -> "DateRule":
        if self.kind == "day_of_month" and self.day is None:
            raise ValueError("a day_of_month rule needs day")
        if self.kind == "nth_weekday" and self.weekday is None:
            raise ValueError("an nth_weekday rule needs weekday")
        return self


class MainRule(BaseModel):
    """Which contract is the main (most active) one on a day, without market data.

    The main contract is the first contract of ``active_months`` (by expiry) whose hold
    deadline is more than ``business_days_before_deadline`` business days away: activity moves
    to the next contract before the venue forces positions out of the near one. When the open
    interest (or volume) of each contract on the previous trading day is known, ``by``
    ``open_interest`` takes the largest instead, among the same candidates (ties: the nearer).
    """

    model_config = FROZEN
    business_days_before_deadline: Annotated[int, Field(ge=0, le=60)] = 0
    by: Literal["calendar", "open_interest"] = "calendar"


class ContractRules(BaseModel):
    """A futures product's contracts: naming, months, expiry, deadline, main contract.

    Attributes
    ----------
    style
        How a contract is named from the product symbol: ``yymm`` (SHFE ``cu2602``, CFFEX
        ``IF2612``), ``code_y`` (CME ``GCG6``: month code and the year's last digit), ``code_yy``
        (``BH27``), ``prompt`` (LME: the prompt date, ``CA-20270308``).
    months
        Delivery months contracts are listed for.
    active_months
        The months traded actively (the main contract is one of them); default ``months``.
    listed_months_ahead
        How many months ahead contracts are listed (the far end of the curve).
    last_trading_day
        The contract's last trading day.
    hold_deadline
        The last day a position may still be held (the venue's deadline a roll must beat):
        Chinese exchanges force individual clients out before the delivery month; CME longs
        must be out before the first position day. None: the last trading day.
    prompt
        ``prompt`` style only: the tenor the product id trades (``3M`` or ``cash``).
    """

    model_config = FROZEN
    style: Literal["yymm", "code_y", "code_yy", "prompt"]
    months: tuple[Month, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
    active_months: tuple[Month, ...] | None = None
    listed_months_ahead: Annotated[int, Field(ge=1, le=120)] = 12
    last_trading_day: DateRule | None = None
    hold_deadline: DateRule | None = None
    main: MainRule = MainRule()
    prompt: Literal["3M", "cash"] | None = None
    source: str = ""

    @model_validator(mode="after")
    def _check(self) -> "ContractRules":
        if self.style == "prompt":
            if self.prompt is None:
                raise ValueError("a prompt-date product needs prompt (3M or cash)")
        elif self.last_trading_day is None:
            raise ValueError(f"a {self.style} product needs last_trading_day")
        if self.active_months is not None and not set(self.active_months) <= set(self.months):
            raise ValueError(f"active_months {sorted(set(self.active_months) - set(self.months))} are not in months")
        if len(set(self.months)) != len(self.months):
            raise ValueError("months lists a month twice")
        return self

    @property
    def actives(self) -> tuple[int, ...]:
        return tuple(sorted(self.active_months if self.active_months is not None else self.months))
