"""pyproject.toml declares what the code imports, and the code imports what it declares
(issue 22 item 7: ``ruamel.yaml`` was declared and imported by nothing). Every import counts,
a lazy one inside a function included."""
from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: distribution name (as pyproject spells it, lower case) -> the module it is imported as
MODULE_OF = {
    "ray": "ray", "pydantic": "pydantic", "msgpack": "msgpack", "duckdb": "duckdb",
    "prometheus-client": "prometheus_client", "pyyaml": "yaml", "pyarrow": "pyarrow", "rich": "rich",
    "quickfix-ssl": "quickfix", "openctp-ctp": "openctp_ctp",
    "pytest": "pytest", "hypothesis": "hypothesis", "httpx": None, "pytest-timeout": None, "playwright": "playwright",
}
#: modules that come with a declared distribution's extra: ray[serve] brings FastAPI, Starlette and
#: uvicorn[standard] (which brings websockets)
TRANSITIVE = {"fastapi", "starlette", "uvicorn", "websockets"}
#: declared but never imported by name, and why
NOT_IMPORTED = {
    "httpx": "FastAPI's TestClient imports it (tests/unit/test_api_*.py)",
    "pytest-timeout": "a pytest plugin: pyproject's timeout = 300",
}


def _dist(spec: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", spec).group(0).lower()


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_dist(s) for s in project["dependencies"]}, {_dist(s) for s in project["optional-dependencies"]["test"]}


def imported(*dirs: str) -> dict[str, str]:
    """Top-level module -> the first file importing it, over every import statement."""
    out: dict[str, str] = {}
    for d in dirs:
        for m, f in _imported(d).items():
            out.setdefault(m, f)
    return out


@functools.cache
def _imported(d: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in sorted((ROOT / d).rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for n in names:
                out.setdefault(n.split(".")[0], str(p.relative_to(ROOT)))
    return out


def third_party(mods: dict[str, str]) -> dict[str, str]:
    local = {p.stem for p in (ROOT / "tests").rglob("*.py")} | {"xmc_actors"}
    return {m: f for m, f in mods.items() if m not in sys.stdlib_module_names and m not in local}


def test_every_declared_dependency_is_known_here() -> None:
    main, test = declared()
    unknown = (main | test) - MODULE_OF.keys()
    assert not unknown, f"pyproject declares {sorted(unknown)}: add each to MODULE_OF with the module it is imported as"


def test_every_declared_dependency_is_imported() -> None:
    main, test = declared()
    pkg = imported("xmc_actors")
    unused = [d for d in sorted(main) if MODULE_OF[d] not in pkg]
    assert not unused, f"pyproject declares {unused} but nothing in xmc_actors/ imports it: remove it"
    tests = imported("tests", "xmc_actors")
    unused = [d for d in sorted(test) if (MODULE_OF[d] is None and d not in NOT_IMPORTED)
              or (MODULE_OF[d] is not None and MODULE_OF[d] not in tests)]
    assert not unused, f"pyproject's test extra declares {unused} but no test imports it: remove it"


def test_every_imported_module_is_declared() -> None:
    main, test = declared()
    allowed = {MODULE_OF[d] for d in main} | TRANSITIVE
    stray = {m: f for m, f in third_party(imported("xmc_actors")).items() if m not in allowed}
    assert not stray, f"xmc_actors/ imports modules pyproject does not declare: {stray}"
    allowed |= {MODULE_OF[d] for d in test if MODULE_OF[d]}
    stray = {m: f for m, f in third_party(imported("tests", "scripts")).items() if m not in allowed}
    assert not stray, f"the tests import modules pyproject does not declare: {stray}"


def test_the_scan_sees_a_lazy_import() -> None:
    # rich is imported only inside functions (ops/output.py): the scan must count those
    assert "rich" in imported("xmc_actors")
    assert "ruamel" not in imported("xmc_actors", "tests", "scripts")
