"""Where actors run on a Ray cluster, and waiting until they are really there.

Gateways are pinned to their venue's nodes (a gateway must sit next to its venue's line; 就近接入)
by **node label** (``ray start --labels venue=SHFE`` → actor option
``label_selector={"venue": "SHFE"}``), or, where labels are not in use, by a **custom
resource** the node advertises (``ray start --resources '{"venue:SHFE": 1}'`` → actor option
``resources={"venue:SHFE": 0.001}``). Strategies and coordinators are spread over the
cluster or pinned by label as configured.

A selector no node matches leaves an actor pending *silently* in Ray. :func:`wait_ready`
therefore waits for every actor's ``ready()`` with a deadline and, when it passes, raises
:class:`ActorsNotReady` naming each actor and *why* it is not there (no node matches the
label selector, no node has the resource, the matching node is dead, the constructor
failed, ...), worked out by :func:`explain_pending` from the node table.

Everything but :func:`wait_ready` and :func:`cluster_nodes` is pure and testable without Ray.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from ..actors.health import actor_state as _actor_state
from ..model.config import GatewayConfig

__all__ = [
    "PlacementMode",
    "Placement",
    "NodeView",
    "ActorsNotReady",
    "parse_node_label",
    "venue_resource",
    "choose_mode",
    "gateway_placement",
    "strategy_placement",
    "coordinator_placement",
    "explain_pending",
    "cluster_nodes",
    "wait_ready",
    "RESOURCE_FRACTION",
]

PlacementMode = Literal["auto", "label", "resource", "none"]
RESOURCE_FRACTION = 0.001
"""How much of a ``venue:X`` resource one gateway takes: up to 1000 gateways per node."""

_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.\-/]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.\-]{0,61}[A-Za-z0-9])?$")


class ActorsNotReady(TimeoutError):
    """Some actors did not answer ``ready()`` in time, or died while starting.

    Attributes
    ----------
    reasons : dict[str, str]
        Actor name → why it is not ready (one line each), e.g.
        ``"pending: no alive node matches label selector venue=XYZ (...)"``.
    ready : dict[str, dict]
        What the actors that did answer returned.
    """

    def __init__(self, reasons: dict[str, str], ready: dict[str, dict], timeout_s: float) -> None:
        self.reasons = dict(reasons)
        self.ready = dict(ready)
        self.timeout_s = timeout_s
        lines = [f"{len(reasons)} actor(s) not ready after {timeout_s:g}s:"]
        lines += [f"  - {name}: {why}" for name, why in sorted(reasons.items())]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Placement:
    """Ray actor options that decide where one actor runs, and what they mean.

    ``options`` goes straight into ``ActorClass.options(**placement.options, name=..., ...)``.
    ``label_selector`` / ``resources`` repeat what was asked so :func:`explain_pending` can
    say why nothing matched.
    """

    options: dict[str, Any]
    mode: Literal["label", "resource", "none", "spread", "default"]
    label_selector: dict[str, str] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    num_cpus: float = 0.0

    def describe(self) -> str:
        if self.mode == "label":
            return "label selector " + _fmt_labels(self.label_selector)
        if self.mode == "resource":
            return "resource " + ", ".join(sorted(self.resources))
        return self.mode


@dataclass(frozen=True)
class NodeView:
    """The part of a Ray node-table row placement cares about (``ray.nodes()``)."""

    node_id: str
    alive: bool
    labels: dict[str, str]
    resources: dict[str, float]

    @classmethod
    def from_ray(cls, row: Mapping[str, Any]) -> "NodeView":
        labels = {k: str(v) for k, v in (row.get("Labels") or {}).items() if not k.startswith("ray.io/")}
        return cls(
            node_id=str(row.get("NodeID", "")),
            alive=bool(row.get("Alive", False)),
            labels=labels,
            resources={k: float(v) for k, v in (row.get("Resources") or {}).items()},
        )

    @property
    def short_id(self) -> str:
        return self.node_id[:8]


# -- labels and resources -------------------------------------------------------------------
def parse_node_label(text: str, *, field_name: str = "node_label") -> dict[str, str]:
    """Parse ``"venue=SHFE"`` or ``"venue=SHFE,region=cn"`` into a label selector.

    Raises
    ------
    ValueError
        Naming ``field_name`` and the bad part, if a pair is not ``key=value`` or a key or
        value is not a valid Ray label (letters, digits, ``-_.``; at most 63 characters).
    """
    out: dict[str, str] = {}
    if not text or not text.strip():
        raise ValueError(f"{field_name}: empty label; expected key=value, e.g. venue=SHFE")
    for part in text.split(","):
        part = part.strip()
        if part.count("=") != 1:
            raise ValueError(f"{field_name}: {part!r} is not key=value (e.g. venue=SHFE)")
        key, value = (s.strip() for s in part.split("="))
        if not _LABEL_KEY.match(key):
            raise ValueError(f"{field_name}: label key {key!r} is not a valid Ray label key")
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"{field_name}: label value {value!r} for {key!r} is not a valid Ray label value")
        if key in out:
            raise ValueError(f"{field_name}: label key {key!r} given twice")
        out[key] = value
    return out


def venue_resource(key: str, value: str) -> str:
    """The custom-resource name that stands for label ``key=value``: ``venue:SHFE``."""
    return f"{key}:{value}"


def _gateway_selector(gw: GatewayConfig) -> dict[str, str]:
    if gw.node_label is None:
        return {"venue": gw.venue}
    return parse_node_label(gw.node_label, field_name=f"gateways[{gw.actor_name}].node_label")


def choose_mode(selector: Mapping[str, str], nodes: Sequence[NodeView]) -> Literal["label", "resource", "none"]:
    """Pick how to pin, from what the cluster's nodes advertise.

    ``label`` if any alive node carries one of the selector's label keys; else ``resource``
    if any alive node advertises a ``key:value`` resource for one of the keys; else ``none``
    (nobody labelled the cluster: an embedded or unlabelled cluster runs gateways anywhere).
    """
    alive = [n for n in nodes if n.alive]
    if any(k in n.labels for n in alive for k in selector):
        return "label"
    prefixes = tuple(f"{k}:" for k in selector)
    if any(r.startswith(prefixes) for n in alive for r in n.resources):
        return "resource"
    return "none"


def gateway_placement(
    gw: GatewayConfig,
    *,
    mode: PlacementMode = "auto",
    nodes: Sequence[NodeView] = (),
    num_cpus: float = 0.0,
) -> Placement:
    """Ray options that pin a venue gateway to its venue's nodes.

    Parameters
    ----------
    gw
        The gateway's config; ``gw.node_label`` (default ``venue=<venue>``) names the nodes.
    mode
        ``label``: ``label_selector``; ``resource``: ``resources={"venue:SHFE": 0.001}``;
        ``none``: not pinned (embedded mode); ``auto``: :func:`choose_mode` on ``nodes``.
    nodes
        The cluster's nodes (:func:`cluster_nodes`), only read in ``auto`` mode.
    num_cpus
        CPUs the gateway reserves (``ray.gateway_cpus``).

    Examples
    --------
    >>> gateway_placement(GatewayConfig(venue="SHFE"), mode="label").options
    {'num_cpus': 0.0, 'label_selector': {'venue': 'SHFE'}}
    """
    selector = _gateway_selector(gw)
    chosen = choose_mode(selector, nodes) if mode == "auto" else mode
    opts: dict[str, Any] = {"num_cpus": float(num_cpus)}
    if chosen == "label":
        opts["label_selector"] = dict(selector)
        return Placement(opts, "label", label_selector=dict(selector), num_cpus=float(num_cpus))
    if chosen == "resource":
        res = {venue_resource(k, v): RESOURCE_FRACTION for k, v in selector.items()}
        opts["resources"] = res
        return Placement(opts, "resource", resources=res, num_cpus=float(num_cpus))
    if chosen == "none":
        return Placement(opts, "none", num_cpus=float(num_cpus))
    raise ValueError(f"placement mode: {mode!r} is not one of auto, label, resource, none")


def _spread_or_label(label: str | None, spread: bool, num_cpus: float, what: str) -> Placement:
    opts: dict[str, Any] = {"num_cpus": float(num_cpus)}
    if label:
        sel = parse_node_label(label, field_name=f"{what}.node_label")
        opts["label_selector"] = sel
        return Placement(opts, "label", label_selector=sel, num_cpus=float(num_cpus))
    if spread:
        opts["scheduling_strategy"] = "SPREAD"
        return Placement(opts, "spread", num_cpus=float(num_cpus))
    return Placement(opts, "default", num_cpus=float(num_cpus))


def strategy_placement(*, node_label: str | None = None, spread: bool = True, num_cpus: float = 0.0) -> Placement:
    """Ray options for a strategy actor: pinned by ``node_label`` if given, else spread
    over the cluster (``scheduling_strategy="SPREAD"``) or packed by Ray's default."""
    return _spread_or_label(node_label, spread, num_cpus, "strategy")


def coordinator_placement(*, node_label: str | None = None, spread: bool = False, num_cpus: float = 0.0) -> Placement:
    """Ray options for a pair coordinator: by default Ray's default placement (next to the
    driver); pinned by ``node_label`` (e.g. the node between the two venues) when given."""
    return _spread_or_label(node_label, spread, num_cpus, "coordinator")


# -- why is it not there? --------------------------------------------------------------------
def _fmt_labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(none)"


def _value_matches(expr: str, value: str | None) -> bool:
    """Ray label-selector value expressions: ``v``, ``!v``, ``in(a,b)``, ``!in(a,b)``."""
    expr = expr.strip()
    negate = expr.startswith("!")
    if negate:
        expr = expr[1:].strip()
    if expr.startswith("in(") and expr.endswith(")"):
        hit = value is not None and value in {s.strip() for s in expr[3:-1].split(",")}
    else:
        hit = value == expr
    return not hit if negate else hit


def node_matches(selector: Mapping[str, str], node: NodeView) -> bool:
    return all(_value_matches(expr, node.labels.get(key)) for key, expr in selector.items())


def explain_pending(
    name: str,
    placement: Placement | None,
    nodes: Sequence[NodeView],
    actor_state: str | None = None,
    death_cause: str = "",
) -> str:
    """One line saying why actor ``name`` has not answered ``ready()``.

    Pure: give it the placement that was asked, the node table and the actor's state from
    the GCS (``PENDING_CREATION``, ``ALIVE``, ``RESTARTING``, ``DEAD``; ``None`` if unknown).
    """
    alive = [n for n in nodes if n.alive]
    dead = [n for n in nodes if not n.alive]
    if actor_state == "DEAD":
        return f"died while starting: {death_cause or 'no cause recorded'}"
    if actor_state == "ALIVE":
        return ("alive but ready() did not answer in time: the constructor or the actor's event "
                "loop is blocked (check the actor's log)")
    if placement is not None and placement.mode == "label":
        sel = _fmt_labels(placement.label_selector)
        matching = [n for n in alive if node_matches(placement.label_selector, n)]
        if not matching:
            seen = "; ".join(f"{n.short_id}: {_fmt_labels(n.labels)}" for n in alive) or "no alive nodes"
            gone = [n.short_id for n in dead if node_matches(placement.label_selector, n)]
            extra = f"; matching node(s) {', '.join(gone)} are DEAD" if gone else ""
            return f"pending: no alive node matches label selector {sel} (alive nodes' labels: {seen}){extra}"
        if placement.num_cpus > 0 and all(n.resources.get("CPU", 0.0) < placement.num_cpus for n in matching):
            return (f"pending: nodes matching label selector {sel} have fewer than "
                    f"{placement.num_cpus:g} CPU")
        return (f"pending: node(s) {', '.join(n.short_id for n in matching)} match label selector "
                f"{sel} but have not started it (busy, or still starting a worker)")
    if placement is not None and placement.mode == "resource":
        missing = [r for r in sorted(placement.resources) if not any(r in n.resources for n in alive)]
        if missing:
            gone = [n.short_id for n in dead if any(r in n.resources for r in missing)]
            extra = f"; node(s) {', '.join(gone)} that had it are DEAD" if gone else ""
            return f"pending: no alive node has resource {', '.join(missing)}{extra}"
        return (f"pending: resource {', '.join(sorted(placement.resources))} exists but is used up "
                "or its node is busy")
    if placement is not None and placement.num_cpus > 0:
        if all(n.resources.get("CPU", 0.0) < placement.num_cpus for n in alive):
            return f"pending: no alive node has {placement.num_cpus:g} CPU"
    state = actor_state or "unknown"
    return f"pending (state {state}): waiting for a worker process or for CPU on the cluster"


# -- Ray side -------------------------------------------------------------------------------
def cluster_nodes() -> list[NodeView]:
    """The cluster's node table (needs ``ray.init``)."""
    import ray

    return [NodeView.from_ray(row) for row in ray.nodes()]


_EXC_LINE = re.compile(r"^\s*((?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*(?:Error|Exception|Exit|Fault)): (.+)$")


def creation_error(exc: BaseException) -> str:
    """Why an actor died while starting, in one line: the exception its constructor raised
    (``ValueError: .../shfe.csv: no such column ...``), taken from the traceback Ray wraps in
    the error (which otherwise says only that the creation task failed, the reason being in a
    worker's log); else the error's first line."""
    text = str(exc)
    found = None
    for line in text.splitlines():
        m = _EXC_LINE.match(line)
        if m and not m.group(1).startswith(("ray.", "Ray")):
            found = f"{m.group(1).rsplit('.', 1)[-1]}: {m.group(2).strip()}"
    if found is not None:
        return found[:1000]
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return re.sub(r"\x1b\[[0-9;]*m", "", first)


def wait_ready(
    handles_by_name: Mapping[str, Any],
    timeout_s: float,
    *,
    placements: Mapping[str, Placement] | None = None,
    method: str = "ready",
) -> dict[str, dict]:
    """Call ``ready()`` on every actor and wait for all answers, at most ``timeout_s``.

    Returns
    -------
    dict[str, dict]
        Actor name → what its ``ready()`` returned.

    Raises
    ------
    ActorsNotReady
        If any actor has not answered by the deadline or died while starting; the message
        names each such actor and why (see :func:`explain_pending`). Never hangs.
    """
    import ray
    from ray.exceptions import RayActorError

    placements = placements or {}
    deadline = time.monotonic() + float(timeout_s)
    refs = {getattr(h, method).remote(): name for name, h in handles_by_name.items()}
    ready: dict[str, dict] = {}
    failed: dict[str, str] = {}
    pending = list(refs)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=min(left, 0.5))
        for ref in done:
            name = refs[ref]
            try:
                answer = ray.get(ref)
                if answer is False:
                    failed[name] = "ready() answered False (the actor says it is not ready)"
                else:
                    ready[name] = answer if isinstance(answer, dict) else {"ready": answer}
            except RayActorError as exc:
                failed[name] = f"died while starting: {creation_error(exc)}"
            except Exception as exc:  # noqa: BLE001 - a raising ready() is a not-ready actor
                failed[name] = f"ready() raised {type(exc).__name__}: {exc}"
    if not pending and not failed:
        return ready
    nodes = cluster_nodes() if pending else []
    for ref in pending:
        name = refs[ref]
        state, cause = _actor_state(handles_by_name[name])
        failed[name] = explain_pending(name, placements.get(name), nodes, state, cause)
    raise ActorsNotReady(failed, ready, timeout_s)
