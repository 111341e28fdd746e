"""Starting or joining Ray, and finding a running deployment.

``xmc run`` starts an embedded single-machine Ray (the default) or joins ``--address``. Every
actor of a deployment is named in the deployment's namespace (``xmc`` by default). A small
:class:`DeploymentRegistry` actor, named ``deployment``, holds the deployment's description and
the names of all its actors, so ``xmc status`` and the operator commands, from another shell,
find everything without knowing the configuration.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import ray

REGISTRY_NAME = "deployment"
log = logging.getLogger(__name__)


def start_ray(address: str | None, namespace: str, *, num_cpus: int | None = None,
              dashboard: bool = False, quiet: bool = True) -> dict[str, Any]:
    """Start an embedded Ray (``address`` None) or join a cluster; returns Ray's context info."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address, "embedded": address is None}
    kwargs: dict[str, Any] = dict(namespace=namespace, ignore_reinit_error=True, log_to_driver=not quiet,
                                  logging_level=logging.WARNING if quiet else logging.INFO)
    if address is None:
        # "local" always starts a new instance; a bare ray.init() would join any cluster
        # another process on this machine recorded in /tmp/ray/ray_current_cluster.
        kwargs.update(address="local", num_cpus=num_cpus, include_dashboard=dashboard)
    else:
        kwargs["address"] = address
    ctx = ray.init(**kwargs)
    gcs = ctx.address_info.get("gcs_address", "")
    if address is None and gcs:
        record_embedded(namespace, gcs)
    return {"address": gcs, "embedded": address is None, "dashboard_url": ctx.dashboard_url or ""}


def _address_file(namespace: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in namespace) or "xmc"
    return Path(os.environ.get("XMC_RUN_DIR", "/tmp/xmc-run")) / f"{safe}.address"


def record_embedded(namespace: str, gcs_address: str) -> None:
    """Remember which Ray instance the embedded deployment of ``namespace`` runs on, so that
    ``xmc status`` / ``halt`` / ... from another shell join that one, not whichever Ray another
    process on this machine started last (what ``auto`` would pick)."""
    try:
        f = _address_file(namespace)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"address": gcs_address, "pid": os.getpid()}))
    except OSError as e:  # the CLI falls back to ``auto``
        log.warning("could not record the embedded Ray address of %r: %s", namespace, e)


def forget_embedded(namespace: str) -> None:
    """The embedded deployment of ``namespace`` stopped (only its own record is removed)."""
    f = _address_file(namespace)
    try:
        if json.loads(f.read_text()).get("pid") == os.getpid():
            f.unlink()
    except (OSError, ValueError):
        pass


def resolve_address(address: str | None, namespace: str) -> str:
    """The Ray address the CLI joins: ``address`` if given, else the embedded deployment of
    ``namespace`` running on this machine (its driver still alive), else ``auto``."""
    if address:
        return address
    try:
        rec = json.loads(_address_file(namespace).read_text())
        pid, addr = int(rec["pid"]), str(rec["address"])
        os.kill(pid, 0)  # still running? (signal 0 only checks)
        return addr
    except (OSError, ValueError, KeyError, TypeError):
        return "auto"


def connect(address: str | None, namespace: str) -> None:
    """Join a running Ray for CLI look-ups: ``address``, else the embedded deployment of
    ``namespace`` on this machine (:func:`resolve_address`), else ``auto``."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        target = resolve_address(address, namespace)
        ray.init(address=target, namespace=namespace, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError) as e:
        raise LookupError(f"no running Ray cluster found at {address or 'this machine (auto)'}: {e}") from None


@ray.remote(num_cpus=0, max_restarts=-1)
class DeploymentRegistry:
    """Holds what a deployment consists of, for ``xmc status`` and operator commands."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = dict(info)
        self.info.setdefault("started_ns", time.time_ns())
        self.state = "STARTING"

    def ready(self) -> dict[str, Any]:
        return {"actor": REGISTRY_NAME, "state": self.state}

    def describe(self) -> dict[str, Any]:
        return {**self.info, "state": self.state}

    def set_state(self, state: str) -> None:
        self.state = state

    def update(self, **kw: Any) -> None:
        self.info.update(kw)


def find_registry(address: str | None, namespace: str) -> Any:
    """The registry handle of the deployment running in ``namespace``; LookupError if none."""
    connect(address, namespace)
    try:
        return ray.get_actor(REGISTRY_NAME, namespace=namespace)
    except ValueError:
        raise LookupError(f"no deployment is running in namespace {namespace!r} "
                          f"(start one with `xmc run CONFIG`, or pass --namespace)") from None


def get_actor(name: str, namespace: str) -> Any:
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        raise LookupError(f"actor {name!r} is not running in namespace {namespace!r}") from None
