"""Moved to :mod:`xmc_actors.actors.metrics` (every actor records; the runtime starts the hub and the endpoint);
re-exported here for existing imports."""
from ..actors.metrics import (
    BASE_TAGS, PREFIX, SPECS, HubCollector, Metrics, MetricsEndpoint, MetricsHub, MetricsHubCore, MetricSpec,
    hub_fetcher, start_metrics_endpoint,
)

__all__ = ["MetricSpec", "SPECS", "BASE_TAGS", "Metrics", "MetricsHubCore", "MetricsHub", "HubCollector",
           "MetricsEndpoint", "start_metrics_endpoint", "hub_fetcher", "PREFIX"]
