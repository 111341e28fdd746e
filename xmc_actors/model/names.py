"""Names of a deployment's actors (Ray named actors in the deployment's namespace).

A leaf module: anything may import it, it imports nothing. :func:`actor_repr` is the one shape
of every actor's ``__repr__`` (the dashboard's Repr column). An actor that must find a peer
after a restart looks it up by one of these names; the runtime creates the actors under them.
:mod:`xmc_actors.runtime.deploy` and :mod:`xmc_actors.runtime.session` re-export them.
"""
from __future__ import annotations

from typing import Final

REGISTRY_NAME: Final = "deployment"  # DeploymentRegistry: what the deployment is, its state
COORDINATOR_NAME: Final = "coordinator"  # PairCoordinator
RISK_GUARD_NAME: Final = "risk-guard"  # RiskGuard
HOST_PREFIX: Final = "strategy-host-"  # StrategyHostActor n is f"{HOST_PREFIX}{n}"
METRICS_HUB_NAME: Final = "metrics-hub"  # MetricsHub (when ray.metrics_port is set)
GATEWAY_PREFIX: Final = "gateway-"  # a gateway without a configured name is f"{GATEWAY_PREFIX}{venue}"

#: longest :func:`actor_repr` (Ray also names an actor's tasks ``<repr>.<method>`` in the dashboard)
MAX_REPR = 100


def actor_repr(kind: str, name: str, *details: str) -> str:
    """An actor's ``__repr__``: ``Kind(name: detail, detail)``, at most :data:`MAX_REPR` characters.

    Ray takes it once the actor's constructor has returned (again after each restart) and shows
    it in the dashboard's Repr column (its Actors tab), beside the actor's log lines and in its
    tasks' names; so it says what the actor is (venues, strategies) and how it started, not
    live figures. Empty details are left out."""
    d = ", ".join(x for x in details if x)
    text = f"{kind}({name}{': ' + d if d else ''})"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 4] + "...)"


__all__ = ["REGISTRY_NAME", "COORDINATOR_NAME", "RISK_GUARD_NAME", "HOST_PREFIX", "METRICS_HUB_NAME",
           "GATEWAY_PREFIX", "MAX_REPR", "actor_repr"]
