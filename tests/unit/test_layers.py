"""The package's layers run one way, and its packages import each other without a cycle.

    model → core → strategies · venues · feeds · ledger → actors · lab → runtime → ops      (bench: anything)

A module may import its own layer or any layer below it, never one above. Every import
counts: at module level, inside a function (a lazy import is still a dependency), relative or
absolute, ``import x.y`` and ``from x import y`` (where ``y`` may itself be a module). The
four packages of the middle layer may import one another, but the package graph as a whole
must have no cycle. ``importlib.import_module("...")`` with a literal string counts too.

An import that cannot move yet is listed in :data:`EXCEPTIONS` with the reason; keep that list
short. A failure names each offending import with its file and line.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = "xmc_actors"

LAYERS: dict[str, int] = {
    "model": 0,
    "core": 1,
    "strategies": 2, "venues": 2, "feeds": 2, "ledger": 2,
    "actors": 3, "lab": 3,  # lab: the discrete-event shell around the same cores (xmc backtest)
    "runtime": 4,
    "api": 4,  # the operator API on Ray Serve (a shell around core.operator_api); runtime.deploy starts it
    "ops": 5,
    "bench": 6,  # benchmarks may import anything; nothing imports them
}

# (importing module, imported module) -> why it cannot move now. Keep this list short.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("xmc_actors.venues.fix.exchange", "xmc_actors.actors.gateway"):
        "main(): the loopback FIX exchange's command line (python -m ...) finds its gateway in a "
        "deployment file; an entry point, not the adapter. It moves to ops with the FIX work under "
        "way in venues/fix (not this change's files).",
    ("xmc_actors.venues.fix.exchange", "xmc_actors.runtime.config"):
        "main(): same command line, loads the deployment file; moves to ops with it.",
}


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    importer: str  # module name of the file
    target: str  # the module imported (xmc_actors.…)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.importer} imports {self.target}"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _known_modules() -> set[str]:
    return {_module_name(p) for p in (ROOT / PKG).rglob("*.py")}


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def collect_imports() -> list[Import]:
    known = _known_modules()
    out: list[Import] = []
    for path in sorted((ROOT / PKG).rglob("*.py")):
        importer = _module_name(path)
        is_package = path.name == "__init__.py"
        rel = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for node in ast.walk(tree):  # every level: module, class, function bodies
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = _resolve(importer, is_package, node)
                # ``from pkg import sub`` imports the module pkg.sub when there is one
                subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
                targets = subs if subs and len(subs) == len(node.names) else [mod, *subs]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "import_module" and node.args
                  and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                targets = [node.args[0].value]
            for t in targets:
                if t == PKG or t.startswith(PKG + "."):
                    out.append(Import(rel, node.lineno, importer, t))
    return out


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # the top-level xmc_actors/__init__ has no layer


def layer_of(module: str) -> int | None:
    pkg = package_of(module)
    if pkg is None:
        return None
    if pkg not in LAYERS:
        raise AssertionError(f"{module}: package {pkg!r} has no layer; add it to LAYERS (and to docs/architecture.md)")
    return LAYERS[pkg]


def _counted(imports: list[Import]) -> list[Import]:
    return [i for i in imports if (i.importer, i.target) not in EXCEPTIONS]


def upward_imports(imports: list[Import]) -> list[Import]:
    bad = []
    for i in _counted(imports):
        src, dst = layer_of(i.importer), layer_of(i.target)
        if src is not None and dst is not None and dst > src:
            bad.append(i)
    return bad


def package_cycles(imports: list[Import]) -> list[list[str]]:
    """Each strongly connected set of packages (more than one) in the package import graph."""
    edges: dict[str, set[str]] = {}
    for i in _counted(imports):
        a, b = package_of(i.importer), package_of(i.target)
        if a and b and a != b:
            edges.setdefault(a, set()).add(b)
            edges.setdefault(b, set())
    # Tarjan
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    sccs: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sccs


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return collect_imports()


def test_every_package_has_a_layer(imports: list[Import]) -> None:
    for p in (ROOT / PKG).iterdir():
        if p.is_dir() and (p / "__init__.py").exists():
            assert p.name in LAYERS, f"xmc_actors/{p.name} has no layer; add it to LAYERS"


def test_no_upward_import(imports: list[Import]) -> None:
    bad = upward_imports(imports)
    assert not bad, "imports from a higher layer (move the code down, or list it in EXCEPTIONS with a reason):\n  " + \
        "\n  ".join(f"{i}  ({package_of(i.importer)}={layer_of(i.importer)} -> "
                    f"{package_of(i.target)}={layer_of(i.target)})" for i in bad)


def test_no_cycle_between_packages(imports: list[Import]) -> None:
    cycles = package_cycles(imports)
    if not cycles:
        return
    lines = []
    for comp in cycles:
        lines.append("cycle between " + ", ".join(comp) + ":")
        lines += [f"    {i}" for i in _counted(imports)
                  if package_of(i.importer) in comp and package_of(i.target) in comp
                  and package_of(i.importer) != package_of(i.target)]
    raise AssertionError("\n".join(lines))


def test_exceptions_are_still_needed(imports: list[Import]) -> None:
    """An exception whose import is gone must leave the list (it would hide a new one)."""
    present = {(i.importer, i.target) for i in imports}
    stale = [k for k in EXCEPTIONS if k not in present]
    assert not stale, f"EXCEPTIONS no longer needed, remove them: {stale}"


def test_the_checker_sees_lazy_relative_and_dynamic_imports(tmp_path: Path) -> None:
    """The parser itself: a function-level relative import, ``from pkg import module`` and
    ``importlib.import_module`` are all found and mapped to their layer."""
    src = (
        "import importlib\n"
        "def f():\n"
        "    from ..runtime.deploy import Deployment\n"
        "    from .. import ops\n"
        "    importlib.import_module('xmc_actors.bench.runner')\n"
    )
    tree = ast.parse(src)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.append(_resolve("xmc_actors.core.x", False, node))
    assert found == ["xmc_actors.runtime.deploy", "xmc_actors"]
    fake = [Import("core/x.py", 3, "xmc_actors.core.x", "xmc_actors.runtime.deploy"),
            Import("runtime/y.py", 1, "xmc_actors.runtime.y", "xmc_actors.core.x"),
            Import("model/z.py", 1, "xmc_actors.model.z", "xmc_actors.model.names")]
    assert [str(i) for i in upward_imports(fake)] == ["core/x.py:3: xmc_actors.core.x imports xmc_actors.runtime.deploy"]
    assert package_cycles(fake) == [["core", "runtime"]]


def test_the_names_leaf_is_the_one_the_runtime_uses() -> None:
    """Actors find their peers by the names in model.names; the runtime creates them under the
    names it re-exports (and risk_guard's own copy, which is not yet an import, agrees)."""
    from xmc_actors.actors import risk_guard
    from xmc_actors.model import names
    from xmc_actors.runtime import deploy, session

    assert session.REGISTRY_NAME == deploy.REGISTRY_NAME == names.REGISTRY_NAME
    assert deploy.COORDINATOR_NAME == risk_guard.COORDINATOR_NAME == names.COORDINATOR_NAME
    assert deploy.RISK_GUARD_NAME == names.RISK_GUARD_NAME and deploy.HOST_PREFIX == names.HOST_PREFIX
