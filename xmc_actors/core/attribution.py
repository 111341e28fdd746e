"""Who did an operator action: the ``operator``, ``role`` and ``via`` every ``OPERATOR`` event
carries (issue 20: "every call that changes anything names its operator in the ledger").

* ``role``: the role of the API token that authorised the action (``viewer``, ``trader``,
  ``risk_officer``, ``admin``: ``core.operator_api.Role``); :data:`UNAUTHENTICATED` when no
  operator API authorised it (the deployment runs none, so the name is ``--operator``'s as it
  was typed, checked by nobody); :data:`SYSTEM` for the deployment's own changes (an alert's
  automatic action, the start-of-day gate, a coordinator's shutdown); :data:`UNKNOWN` when the
  caller did not say (a caller that predates this, e.g. a script calling the risk guard).
* ``via``: ``cli`` (an ``xmc`` command), ``api`` (the HTTP API), ``console`` (the API's page),
  ``auto`` (an alert's automatic action), ``system`` (the deployment itself), or ``unknown``.

A caller hands ``by = {"role": ..., "via": ...}`` along with the operator's name
(:func:`cli_by`, :func:`api_by`); :func:`attribution` checks it and returns the three fields of
the event. A wrong ``by`` is a ValueError naming the field (``by.role``, ``by.via``): nothing is
done, as for a missing operator.
"""
from __future__ import annotations

from typing import Any, Mapping

from .operator_api import Principal, Role
from .risk_guard_types import check_operator

UNAUTHENTICATED = "unauthenticated"
SYSTEM = "system"
UNKNOWN = "unknown"
ROLES: tuple[str, ...] = tuple(r.value for r in Role) + (UNAUTHENTICATED, SYSTEM, UNKNOWN)
VIAS: tuple[str, ...] = ("cli", "api", "console", "auto", "system", UNKNOWN)
#: operator names the deployment itself uses for its own changes (the start-of-day gate, a
#: coordinator halting on shutdown) and their channel; ``auto`` and ``auto:<monitor>`` are alerts'
SYSTEM_OPERATORS = {"start-of-day": "system", "shutdown": "system"}


def cli_by(principal: Principal | None) -> dict[str, str]:
    """``by`` of an ``xmc`` command: the role of the token the operator API authorised it with,
    or :data:`UNAUTHENTICATED` when no operator API runs (``principal`` None)."""
    return {"role": principal.role.value if principal is not None else UNAUTHENTICATED, "via": "cli"}


def api_by(principal: Principal, via: str = "api") -> dict[str, str]:
    """``by`` of a call to the operator API (``via`` ``api``, or ``console`` for its page)."""
    return {"role": principal.role.value, "via": via}


def attribution(operator: object, by: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``{"operator", "role", "via"}`` for an OPERATOR event. ``by`` None: the deployment's own
    names (``auto``/``auto:…``, :data:`SYSTEM_OPERATORS`) are attributed to it; anyone else's
    role and channel are :data:`UNKNOWN`. ValueError naming the field: no operator, a ``by`` that
    is not ``{role, via}`` or holds a role or channel not listed above."""
    op = check_operator(operator)
    if by is None:
        if op == "auto" or op.startswith("auto:"):
            return {"operator": op, "role": SYSTEM, "via": "auto"}
        if op in SYSTEM_OPERATORS:
            return {"operator": op, "role": SYSTEM, "via": SYSTEM_OPERATORS[op]}
        return {"operator": op, "role": UNKNOWN, "via": UNKNOWN}
    if not isinstance(by, Mapping):
        raise ValueError(f"by: expected {{role, via}} (who acted, through what), got {type(by).__name__}")
    extra = sorted(str(k) for k in by if k not in ("role", "via"))
    if extra:
        raise ValueError(f"by.{extra[0]}: not a field of by (role, via)")
    role, via = by.get("role"), by.get("via")
    if role not in ROLES:
        raise ValueError(f"by.role: {role!r} is not one of {', '.join(ROLES)}")
    if via not in VIAS:
        raise ValueError(f"by.via: {via!r} is not one of {', '.join(VIAS)}")
    return {"operator": op, "role": str(role), "via": str(via)}
