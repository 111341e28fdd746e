"""Issue 22's house rule: no module in ``core/`` is over about 600 lines without a reason
written at its top (a "Why one module" paragraph in its docstring)."""
from __future__ import annotations

import ast
from pathlib import Path

import xmc_actors.core

CORE = Path(xmc_actors.core.__file__).parent
LIMIT = 620  # "about 600"


def oversized_without_reason(root: Path, limit: int = LIMIT) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        n = text.count("\n")
        if n <= limit:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "Why one module" not in doc:
            out.append(f"{path.relative_to(root)}: {n} lines and no 'Why one module' at its top")
    return out


def test_every_long_core_module_says_why_it_is_one() -> None:
    assert oversized_without_reason(CORE) == []


def test_the_check_finds_a_long_module_without_a_reason(tmp_path: Path) -> None:
    (tmp_path / "long.py").write_text('"""A module."""\n' + "x = 1\n" * 700, encoding="utf-8")
    (tmp_path / "reasoned.py").write_text('"""A module.\n\nWhy one module: it is.\n"""\n' + "x = 1\n" * 700,
                                          encoding="utf-8")
    (tmp_path / "short.py").write_text("x = 1\n", encoding="utf-8")
    assert oversized_without_reason(tmp_path) == ["long.py: 701 lines and no 'Why one module' at its top"]
