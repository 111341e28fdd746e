"""The start-of-day gate (开盘前核对): no new entry until the positions the deployment starts
from agree with what the venues hold, or an operator has accepted the differences.

At every start the risk guard compares its positions (rebuilt from the ledger: flat on a new
ledger) with each venue's (``positions()``): the same comparison, in the same code
(``RiskGuardCore.rebuild``), as after a restart of the risk guard. Where they differ the venue is
the truth (its lots are booked to ``__unattributed__``), the account's venues go REDUCING
(orange ``position_mismatch``) and this gate holds the whole deployment REDUCING (operator
``start-of-day``): reduce-only orders pass, so a pair a crash left open can still be unwound,
but nothing new is entered. ``xmc accept-positions --operator NAME --note TEXT`` lifts it, and
the acceptance, with the differences it accepted, is in the ledger. A venue that did not answer
(its positions unverified) holds the gate too: an unknown is not an agreement.

:func:`assess` is the pure part: from the rebuild's report to the gate's state and its words.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

#: the operator name the gate's own trading-state changes carry
GATE_OPERATOR = "start-of-day"


@dataclass(slots=True)
class StartOfDay:
    """The gate of one start: ``engaged`` while differences wait for an operator."""

    differences: list[dict[str, Any]] = field(default_factory=list)  # account, instrument, ledger, venue, difference
    funds: list[dict[str, Any]] = field(default_factory=list)        # account, message: broker's reading vs ours
    unverified_venues: list[str] = field(default_factory=list)
    venues: list[str] = field(default_factory=list)                  # venues of the differing instruments
    rebuild_ok: bool = True
    error: str = ""
    engaged: bool = False
    accepted_by: str = ""
    accepted_note: str = ""
    accepted_ns: int = 0
    trigger: str = "start"   # "start", or "trading day <date> at <venues>" for a check at a day's change

    def reason(self) -> str:
        """One line for the trading-state change and the operator's screen."""
        if not self.engaged:
            return "start of day: positions agree with the venues"
        parts = []
        if not self.rebuild_ok:
            parts.append(f"positions could not be checked ({self.error or 'rebuild failed'})")
        if self.differences:
            shown = "; ".join(f"{d['account']} {d['instrument']} ledger {d['ledger']} venue {d['venue']}"
                              + (" (not confirmed: pairs were in flight)" if d.get("unconfirmed") else "")
                              for d in self.differences[:5])
            more = f" and {len(self.differences) - 5} more" if len(self.differences) > 5 else ""
            parts.append(f"{len(self.differences)} position(s) differ from the venues: {shown}{more}")
        if self.unverified_venues:
            parts.append(f"venues that did not report their positions: {', '.join(self.unverified_venues)}")
        if self.funds:
            parts.append(f"{len(self.funds)} account(s) whose broker reading differs from ours: "
                         + "; ".join(str(f.get("message") or f.get("account")) for f in self.funds[:3]))
        when = "" if self.trigger == "start" else f" ({self.trigger})"
        return (f"start of day{when}: " + "; ".join(parts)
                + " — no new entry until `xmc accept-positions --operator NAME --note TEXT`")

    def as_dict(self) -> dict[str, Any]:
        return {"engaged": self.engaged, "differences": list(self.differences), "funds": list(self.funds),
                "trigger": self.trigger,
                "unverified_venues": list(self.unverified_venues), "venues": list(self.venues),
                "rebuild_ok": self.rebuild_ok, "error": self.error, "reason": self.reason(),
                "accepted_by": self.accepted_by, "accepted_note": self.accepted_note, "accepted_ns": self.accepted_ns}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StartOfDay":
        keys = ("differences", "funds", "unverified_venues", "venues", "rebuild_ok", "error", "engaged",
                "accepted_by", "accepted_note", "accepted_ns", "trigger")
        return cls(**{k: d[k] for k in keys if k in d})

    def accept(self, operator: str, note: str, now_ns: int) -> str:
        """Lift the gate; returns the reason recorded with the resume. ValueError (naming what
        is missing) when there is nothing to accept, or no operator or note."""
        if not self.engaged:
            raise ValueError("nothing to accept: the start-of-day check found no difference"
                             + (f" (accepted by {self.accepted_by})" if self.accepted_by else ""))
        if not operator.strip():
            raise ValueError("operator: required (the acceptance is recorded with who accepted it)")
        if not note.strip():
            raise ValueError("note: required (say why the venues' positions are right)")
        self.engaged = False
        self.accepted_by, self.accepted_note, self.accepted_ns = operator.strip(), note.strip(), now_ns
        acc = "; ".join(f"{d['account']} {d['instrument']} {d['ledger']}->{d['venue']}" for d in self.differences)
        unv = f"; unverified venues {', '.join(self.unverified_venues)}" if self.unverified_venues else ""
        fnd = f"; funds of {', '.join(str(f.get('account')) for f in self.funds)}" if self.funds else ""
        return f"start-of-day differences accepted ({acc or 'none'}{unv}{fnd}): {self.accepted_note}"[:1000]


def funds_differences(open_alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The accounts whose broker reading (equity, margin) differs from the guard's beyond its
    tolerance: the open ``account_mismatch`` alerts of the risk guard's status."""
    return [{"account": str(a.get("key", "")), "message": str(a.get("message", ""))}
            for a in open_alerts if a.get("monitor") == "account_mismatch" and a.get("level")]


def assess(rebuilt: Mapping[str, Any], instrument_venue: Mapping[str, str],
           funds: Iterable[Mapping[str, Any]] = (), trigger: str = "start") -> StartOfDay:
    """The gate from a rebuild's report (``RiskGuard.rebuild_from_ledger``, with its deferred
    check's ``verified`` part when there was one). ``instrument_venue``: instrument id -> venue
    code, to name the venues the differences are on. ``funds``: :func:`funds_differences`
    (the broker's reading is used whatever happens; a difference still waits for an operator)."""
    verified = rebuilt.get("verified") or {}
    found = [(m, False) for m in list(rebuilt.get("mismatches") or []) + list(verified.get("mismatches") or [])]
    if not verified:
        # differences the rebuild only noted (pairs were in flight) and no later check confirmed
        # or cleared (it timed out, or they kept moving): candidates still, so held for an operator
        found += [(m, True) for m in rebuilt.get("deferred") or []]
    diffs: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for m, unconfirmed in found:
        key = (str(m.get("account", "")), str(m.get("instrument", "")))
        if key in seen:
            continue
        seen.add(key)
        led, ven, diff = m.get("ledger"), m.get("venue"), m.get("difference")
        if unconfirmed and diff is None and isinstance(led, int) and isinstance(ven, int):
            diff = ven - led  # a deferred difference carries only the two figures
        diffs.append({"account": key[0], "instrument": key[1], "ledger": led, "venue": ven, "difference": diff,
                      **({"unconfirmed": True} if unconfirmed else {})})
    # a venue that did not answer is unverified whatever the ledger holds there: the venue may
    # hold yesterday's lots on a ledger that is flat (an unknown is not an agreement)
    unverified = sorted(set(rebuilt.get("unverified_venues") or []) | set(verified.get("unverified_venues") or [])
                        | set((rebuilt.get("venue_errors") or {}).keys()))
    ok = bool(rebuilt.get("ok", False))
    venues = sorted({instrument_venue.get(d["instrument"], d["instrument"].split(".", 1)[0]) for d in diffs})
    fund_rows = [dict(f) for f in funds]
    return StartOfDay(differences=diffs, funds=fund_rows, unverified_venues=unverified, venues=venues, rebuild_ok=ok,
                      error="" if ok else str(rebuilt.get("error") or rebuilt.get("reason") or "rebuild failed"),
                      engaged=bool(diffs or unverified or fund_rows or not ok), trigger=trigger)


class TradingDayWatch:
    """Which venues' trading day has changed since it last looked (the gate is checked again
    then: a venue's new day is a start of day too). ``trading_day(venue, now_ns)`` gives a
    venue's trading day, None while it is closed (or when it cannot be told). The first look
    only records, a closed venue included: the first day it opens on afterwards is a change; a
    closed spell between sessions keeps the day it had."""

    def __init__(self, venues: Iterable[str], trading_day: Callable[[str, int], dt.date | None]) -> None:
        self.venues = sorted(set(venues))
        self.trading_day = trading_day
        self.seen: dict[str, dt.date | None] = {}

    def changed(self, now_ns: int) -> dict[str, dt.date]:
        """venue -> its new trading day, for the venues whose day moved since the last call."""
        out: dict[str, dt.date] = {}
        for v in self.venues:
            try:
                day = self.trading_day(v, now_ns)
            except Exception:  # noqa: BLE001 - a calendar that cannot answer: not a day change
                day = None
            if v not in self.seen:
                self.seen[v] = day
            elif day is not None and day != self.seen[v]:
                self.seen[v] = day
                out[v] = day
        return out
