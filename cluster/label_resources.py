#!/usr/bin/env python
"""Print the custom-resource JSON that mirrors a node-label file's ``venue`` label.

``ray start --resources="$(python cluster/label_resources.py cluster/labels/sh1.yaml)"`` gives
a node labelled ``venue: SHFE`` the resource ``{"venue:SHFE": 1}`` as well, so the
resource fallback of ``runtime.placement`` works on the same hosts as the labels.
"""
from __future__ import annotations

import json
import sys

import yaml


def main(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        labels = yaml.safe_load(f) or {}
    if not isinstance(labels, dict):
        print(f"{path}: expected a mapping of label -> value", file=sys.stderr)
        return 2
    venue = labels.get("venue")
    print(json.dumps({f"venue:{venue}": 1} if venue else {}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: label_resources.py LABELS.yaml", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
