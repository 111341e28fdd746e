"""The pages that name code name code that exists (issue 22 item 7: docs that match the code).

Every ``Class.member`` in backticks whose class is defined in ``xmc_actors`` must be a member
of it (a method, a class attribute, an attribute the class sets on ``self``, or one of its
bases' in the package; pydantic's ``model_*`` and Ray's ``remote``/``options`` pass), every
``module.name`` whose module is in the package (``core.pair.book.PairBook``,
``fastpickle.to_wire``) must be defined or imported there, and every ``path/file.py`` must
exist. A renamed function fails here until the page is updated. Read from the source (``ast``),
nothing imported.
"""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "xmc_actors"
DOCS = ["README.md", "docs/architecture.md", "docs/life-of-a-quote.md", "docs/configuration.md", "docs/operations.md",
        "docs/strategies.md", "docs/lab.md", "docs/stages.md", "docs/contracts.md", "docs/fix.md", "docs/benchmarks.md"]
ALWAYS = {"remote", "options"}
LAYERS = ("model", "core", "strategies", "venues", "feeds", "ledger", "actors", "lab", "runtime", "api", "ops", "bench")


@functools.cache
def index() -> tuple[dict[str, tuple[set[str], list[str]]], dict[str, set[str]]]:
    """``classes``: name -> (members, base names); ``modules``: dotted path in the package -> top-level names."""
    classes: dict[str, tuple[set[str], list[str]]] = {}
    modules: dict[str, set[str]] = {}
    for p in sorted(PKG.rglob("*.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        parts = p.relative_to(PKG).with_suffix("").parts
        mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        top = modules.setdefault(mod, set())
        for n in tree.body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                top.add(n.name)
            elif isinstance(n, ast.Assign):
                top |= {t.id for t in n.targets if isinstance(t, ast.Name)}
            elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
                top.add(n.target.id)
            elif isinstance(n, (ast.ImportFrom, ast.Import)):
                top |= {(a.asname or a.name).split(".")[0] for a in n.names}
        for n in ast.walk(tree):
            if not isinstance(n, ast.ClassDef):
                continue
            members, bases = classes.setdefault(n.name, (set(), []))
            for b in n.body:
                if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    members.add(b.name)
                elif isinstance(b, ast.Assign):
                    members |= {t.id for t in b.targets if isinstance(t, ast.Name)}
                elif isinstance(b, ast.AnnAssign) and isinstance(b.target, ast.Name):
                    members.add(b.target.id)
            for f in ast.walk(n):
                if isinstance(f, ast.Attribute) and isinstance(f.ctx, ast.Store) \
                        and isinstance(f.value, ast.Name) and f.value.id == "self":
                    members.add(f.attr)
            bases += [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in n.bases]
    return classes, modules


def members(name: str, seen: tuple[str, ...] = ()) -> set[str] | None:
    """Everything a class of the package has; ``None`` when a base is outside it (cannot tell)."""
    classes, _ = index()
    own, bases = classes[name]
    out = set(own)
    for b in bases:
        if b in seen:
            continue
        if b not in classes:
            if b in ("BaseModel", "Protocol", "Generic", "Exception", "ValueError", "str", "Enum", "IntEnum", "object",
                     "NamedTuple", "TypedDict", "RuntimeError", "KeyError", "TypeError"):
                continue
            return None
        more = members(b, (*seen, name))
        if more is None:
            return None
        out |= more
    return out


def stale_references(text: str) -> list[str]:
    classes, modules = index()
    bad = []
    for tok in re.findall(r"`([^`\n]+)`", text):
        for m in re.finditer(r"(?<![\w.])(_?[A-Z][A-Za-z0-9]*)\.([A-Za-z_][A-Za-z0-9_]*)", tok):
            cls, attr = m.groups()
            if cls in classes and attr not in ALWAYS and not attr.startswith("model_"):
                have = members(cls)
                if have is not None and attr not in have:
                    bad.append(f"{cls}.{attr}")
        # a module path from a layer down (``model.fastpickle.to_wire``, ``core.pair.TRANSIENT_DENIALS``);
        # one segment (``ledger.flush_ms``) is as often a configuration key, so not judged
        for m in re.finditer(r"(?<![\w./])(?:xmc_actors\.)?((?:%s)(?:\.[a-z_][a-z0-9_]*)+)\.([A-Za-z_][A-Za-z0-9_]*)(?![\w/])"
                             % "|".join(LAYERS), tok):
            prefix, name = m.groups()
            if prefix in modules and name not in modules[prefix] and f"{prefix}.{name}" not in modules:
                bad.append(f"{prefix}.{name}")
        for m in re.finditer(r"(?<![\w/.])((?:[a-z_]+/)*[a-z_0-9]+\.py)\b", tok):
            path = m.group(1)
            if "/" in path and not any((base / path).exists() for base in (PKG, ROOT, ROOT / "tests", ROOT / "tests" / "unit")):
                bad.append(path)
    return sorted(set(bad))


@pytest.mark.parametrize("doc", DOCS)
def test_the_code_a_page_names_exists(doc: str) -> None:
    bad = stale_references((ROOT / doc).read_text(encoding="utf-8"))
    assert not bad, f"{doc} names code that does not exist (renamed or removed?): {bad}"


def test_the_check_catches_a_renamed_method_a_module_function_and_a_file() -> None:
    assert stale_references("`GatewayCore.on_wire`, `core.pair.book.PairBook`, `fastpickle.to_wire`, "
                            "`actors/gateway.py`, `_Session._pump`") == []
    assert stale_references("`GatewayCore.on_wires`") == ["GatewayCore.on_wires"]
    assert stale_references("`_Session._pumps`") == ["_Session._pumps"]
    assert stale_references("`model.fastpickle.to_wires`") == ["model.fastpickle.to_wires"]
    assert stale_references("`core/gateway_cores.py`") == ["core/gateway_cores.py"]
