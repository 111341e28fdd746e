"""docs/configuration.md says it describes the deployment file field by field: every field of
``DeploymentConfig`` and of every model it holds (at any depth) must be named there, so a new
field without documentation fails here (issue 22 item 7)."""
from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from xmc_actors.model.config import DeploymentConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _models(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models inside a field's annotation (``X | None``, ``tuple[X, ...]``,
    ``dict[str, X]``, ``Annotated[...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def config_fields(root: type[BaseModel] = DeploymentConfig) -> list[tuple[str, str]]:
    """``(dotted path, key as written in the file)`` of every field, depth first; each model once."""
    seen: set[type[BaseModel]] = set()
    out: list[tuple[str, str]] = []

    def walk(model: type[BaseModel], path: str) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            key = field.alias or name
            out.append((f"{path}{key}", key))
            for sub in _models(field.annotation):
                walk(sub, f"{path}{key}.")

    walk(root, "")
    return out


def undocumented(doc: str) -> list[str]:
    return [path for path, key in config_fields() if not re.search(rf"(?<![\w.-]){re.escape(key)}(?![\w-])", doc)]


def test_walk_reaches_nested_models() -> None:
    paths = {p for p, _ in config_fields()}
    # through a tuple (strategies[]), a model (execution), a dict's values (risk.instruments)
    assert "strategies.execution.replenish.max_chase_ticks" in paths
    assert "risk.instruments.collar_pct" in paths or "risk.default_limits.collar_pct" in paths
    assert "coordinator.submit_reply_hold_ms" in paths
    assert len(paths) > 150


def test_every_config_field_is_in_configuration_md() -> None:
    missing = undocumented(DOC.read_text(encoding="utf-8"))
    assert not missing, ("fields of the deployment file not named in docs/configuration.md "
                         "(add each with its default and meaning): " + ", ".join(missing))


def test_check_catches_a_missing_field() -> None:
    doc = DOC.read_text(encoding="utf-8")
    # a key named only as part of a longer word does not count as documented
    removed = re.sub(r"(?<![\w.-])grant_refresh_ms(?![\w-])", "grant_refresh_msX", doc)
    assert "risk.grant_refresh_ms" in undocumented(removed)


def test_every_top_level_section_has_a_row_in_the_sections_table() -> None:
    doc = DOC.read_text(encoding="utf-8")
    table = doc.split("## Sections", 1)[1]
    rows = [ln.split("|")[1] for ln in table.splitlines() if ln.startswith("| `")]
    missing = [k for k in DeploymentConfig.model_fields
               if not any(re.search(rf"`{re.escape(k)}(\[\])?`", first) for first in rows)]
    assert not missing, f"docs/configuration.md, 'Sections': no row for {missing}"
