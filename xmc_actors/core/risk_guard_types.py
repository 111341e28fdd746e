"""What :class:`~xmc_actors.core.risk_guard.RiskGuardCore` hands back (:class:`GuardOutput`,
:class:`RebuildReport`) and the small readers it and its parts share: the operator's name, whole
lots, JSON-friendly values and one limit change applied to a :class:`RiskConfig`.

Split out of ``core/risk_guard.py``, which re-exports every public name here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from ..model.risk import RiskConfig, TradingState
from .alerts import Alert

#: what reading one ledger event can raise; the rebuild skips such an event and goes on
_UNREADABLE = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, ValidationError)
_SKIPPED_KEPT = 50   # skipped events recorded one by one (BAD_INPUT, in the report); the rest counted
UNATTRIBUTED = "__unattributed__"
LIMIT_SECTIONS = ("default_limits", "instruments", "strategies", "max_account_position", "throttle",
                  "daily_counts", "occupancy", "monitors", "risk")


@dataclass(slots=True)
class GuardOutput:
    """What the actor must do after feeding the core: send alerts, push states, re-grant."""

    alerts: list[Alert] = field(default_factory=list)
    state_changes: list[tuple[str, str | None, TradingState]] = field(default_factory=list)
    regrant: bool = False

    def extend(self, other: "GuardOutput") -> None:
        self.alerts += other.alerts
        self.state_changes += other.state_changes
        self.regrant = self.regrant or other.regrant


@dataclass(slots=True)
class RebuildReport:
    """What :meth:`RiskGuardCore.rebuild` restored, and what the venues disagreed with."""

    events_read: int = 0
    booked_pairs: int = 0                       # decision ids with at least one BOOKED record
    bookings: int = 0                           # BOOKED records applied (revisions included)
    open_reservations: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # coordinator -> pool -> amount
    mismatches: list[dict[str, Any]] = field(default_factory=list)   # account, instrument, ledger, venue, difference
    unverified_venues: list[str] = field(default_factory=list)       # venues holding positions that did not report
    states: dict[str, TradingState] = field(default_factory=dict)
    limit_changes: int = 0
    coordinators: dict[str, Decimal] = field(default_factory=dict)   # registered before the restart -> weight
    caught_up: int = 0                                               # summaries booked from the coordinators
    skipped: int = 0                                                 # events that could not be read (BAD_INPUT each)
    skipped_events: list[dict[str, str]] = field(default_factory=list)  # the first of them: event_id, kind, error
    coordinator_alerts: int = 0                                      # coordinators' alerts (escalations): not the guard's
    other_alerts: int = 0                                            # strategies' / gateways' free-form alerts
    in_flight: list[str] = field(default_factory=list)               # accepted, not booked: pairs still open
    deferred: list[dict[str, Any]] = field(default_factory=list)     # differences their fills may explain
    corrections: int = 0                                             # earlier POSITION_MISMATCH settings replayed
    output: GuardOutput = field(default_factory=GuardOutput)        # alerts / state changes to send on

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (the payload of the ``REBUILT`` record and the actor's answer)."""
        return {"events_read": self.events_read, "booked_pairs": self.booked_pairs, "bookings": self.bookings,
                "mismatches": list(self.mismatches), "unverified_venues": list(self.unverified_venues),
                "states": {k: v.value for k, v in self.states.items()}, "limit_changes": self.limit_changes,
                "open_reservations": {c: {p: str(v) for p, v in r.items()} for c, r in self.open_reservations.items()},
                "coordinators": {c: str(w) for c, w in self.coordinators.items()}, "caught_up": self.caught_up,
                "skipped": self.skipped, "skipped_events": list(self.skipped_events),
                "coordinator_alerts": self.coordinator_alerts, "other_alerts": self.other_alerts,
                "in_flight": list(self.in_flight), "deferred": list(self.deferred), "corrections": self.corrections}


def check_operator(operator: object) -> str:
    if not isinstance(operator, str) or not operator.strip():
        raise ValueError("operator: an operator name is required for every operator action (--operator NAME)")
    return operator.strip()


def _whole_lots(v: Any, where: str) -> int:
    """``v`` as a whole number of lots (an int, or a string or number holding one); ValueError otherwise."""
    if isinstance(v, bool):
        raise ValueError(f"{where}: {v!r} is not a number of lots")
    d = Decimal(str(v).strip()) if isinstance(v, (int, str, float, Decimal)) else None
    if d is None or not d.is_finite() or d != d.to_integral_value():
        raise ValueError(f"{where}: {v!r} is not a whole number of lots")
    return int(d)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def _apply_limit(cfg: RiskConfig, section: str, key: str | None, field_name: str | None, value: Any) -> tuple[RiskConfig, Any]:
    """A new RiskConfig with one value changed, validated; raises ValueError naming the field."""
    if section not in LIMIT_SECTIONS:
        raise ValueError(f"section: {section!r} is not one of {', '.join(LIMIT_SECTIONS)}")
    if isinstance(value, str) and value.strip().lower() in ("none", "null", ""):
        value = None
    d = cfg.model_dump()
    path: list[str] = []
    if section == "risk":
        if not field_name or field_name not in RiskConfig.model_fields:
            raise ValueError(f"field: {field_name!r} is not a top-level risk setting")
        old = d.get(field_name)
        d[field_name] = value
        path = [field_name]
    elif section in ("instruments", "strategies", "daily_counts"):
        if not key:
            raise ValueError(f"key: section {section} needs a key (the instrument, strategy or venue)")
        if not field_name:
            raise ValueError(f"field: section {section} needs a field")
        entry = d[section].setdefault(key, {})
        old = entry.get(field_name)
        entry[field_name] = value
        path = [section, key, field_name]
    elif section == "max_account_position":
        if not key:
            raise ValueError("key: max_account_position needs the account")
        old = d[section].get(key)
        if value is None:
            d[section].pop(key, None)
        else:
            d[section][key] = value
        path = [section, key]
    else:
        if not field_name:
            raise ValueError(f"field: section {section} needs a field")
        old = d[section].get(field_name)
        d[section][field_name] = value
        path = [section, field_name]
    # entries given as dicts for instruments keep only the fields set explicitly
    if section == "instruments" and key:
        d["instruments"][key] = {k: v for k, v in d["instruments"][key].items()
                                 if k in (cfg.instruments[key].model_fields_set if key in cfg.instruments else set()) or k == field_name}
    try:
        return RiskConfig.model_validate(d), old
    except ValidationError as e:
        errs = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ValueError(f"limit {'.'.join(path)}={value!r} refused: {errs}") from None
