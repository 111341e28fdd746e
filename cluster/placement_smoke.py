#!/usr/bin/env python
"""Placement smoke test: put one trivial actor on each venue's nodes and say where it landed.

Usage (from the repository root, with a running cluster):

    python cluster/placement_smoke.py --address 127.0.0.1:6390 --venues SHFE,LME

or as a Ray job (``cluster/submit.sh -- python cluster/placement_smoke.py --venues SHFE,LME``;
inside a job the address comes from ``RAY_ADDRESS``). Exit code 0 when every venue's actor
is ready on a node carrying its label (or resource), 1 otherwise, with the reason.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ray  # noqa: E402

from xmc_actors.model.config import GatewayConfig  # noqa: E402
from xmc_actors.runtime.placement import (  # noqa: E402
    ActorsNotReady,
    cluster_nodes,
    gateway_placement,
    wait_ready,
)


@ray.remote(num_cpus=0)
class VenueProbe:
    def ready(self) -> dict:
        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "pid": os.getpid()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                    help="Ray cluster address (host:port); default $RAY_ADDRESS")
    ap.add_argument("--venues", default="SHFE,LME", help="comma-separated venue codes")
    ap.add_argument("--mode", default="auto", choices=["auto", "label", "resource"],
                    help="pin by node label, by custom resource, or auto (label if nodes carry labels)")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for readiness")
    args = ap.parse_args(argv)
    if not args.address:
        print("placement_smoke: give --address host:port (or run it as a Ray job)", file=sys.stderr)
        return 2
    ray.init(address=args.address, namespace="xmc-smoke", log_to_driver=False)
    try:
        nodes = {n.node_id: n for n in cluster_nodes()}
        print(f"cluster: {sum(n.alive for n in nodes.values())} alive node(s)")
        for n in nodes.values():
            if n.alive:
                venue_res = sorted(r for r in n.resources if r.startswith("venue:"))
                print(f"  node {n.short_id}  labels={n.labels or {}}  venue resources={venue_res}")
        handles, placements = {}, {}
        for venue in [v.strip() for v in args.venues.split(",") if v.strip()]:
            p = gateway_placement(GatewayConfig(venue=venue), mode=args.mode, nodes=list(nodes.values()))
            if p.mode == "none":
                print(f"venue {venue}: no node carries a venue label or resource; refusing to place unpinned",
                      file=sys.stderr)
                return 1
            name = f"probe-{venue}"
            handles[name] = VenueProbe.options(name=name, **p.options).remote()
            placements[name] = p
        try:
            answers = wait_ready(handles, args.timeout, placements=placements)
        except ActorsNotReady as exc:
            print(str(exc), file=sys.stderr)
            return 1
        for name, ans in sorted(answers.items()):
            n = nodes.get(ans["node_id"])
            labels = n.labels if n else {}
            print(f"{name}: {placements[name].describe()} -> node {ans['node_id'][:8]} labels={labels} pid={ans['pid']}")
        return 0
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
