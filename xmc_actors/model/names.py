"""Names of a deployment's actors (Ray named actors in the deployment's namespace).

A leaf module: anything may import it, it imports nothing. An actor that must find a peer
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

__all__ = ["REGISTRY_NAME", "COORDINATOR_NAME", "RISK_GUARD_NAME", "HOST_PREFIX", "METRICS_HUB_NAME",
           "GATEWAY_PREFIX"]
