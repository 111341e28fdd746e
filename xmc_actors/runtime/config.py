"""Load and check a deployment configuration.

:func:`load_config` returns a :class:`~xmc_actors.model.config.DeploymentConfig` or raises
:class:`ConfigError` listing *every* problem found, each with its path in the file
(``strategies[3].legs[1].instrument: unknown instrument 'SHFE.cu2501'``), the file and line.

Features:
- ``include: [catalogue.yaml]``: files whose lists (venues, instruments, fx, accounts, gateways,
  strategies) are prepended to this file's; paths relative to the including file.
- ``${NAME}`` and ``${NAME:-default}`` in strings are replaced from the environment;
  ``${XMC_DATA_DIR}`` defaults to ``../shared/data`` beside the project.
- Credentials are ``{env: NAME}`` references; their values are never read here or printed.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import yaml
from pydantic import ValidationError

from ..model.config import DeploymentConfig
from ..model.units import dimension
from .registry import ADAPTERS, FEEDS, STRATEGIES

LIST_KEYS = ("venues", "instruments", "fx", "accounts", "gateways", "strategies")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str
    file: str = ""
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def located(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "") if self.file else ""
        return f"{where}: {self}" if where else str(self)


class ConfigError(Exception):
    """A configuration that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(i.located() for i in issues))

    @property
    def messages(self) -> list[str]:
        return [str(i) for i in self.issues]


# --------------------------------------------------------------------------- YAML with origins
@dataclass
class _Doc:
    file: str
    data: Any
    node: yaml.Node | None


def _read_yaml(path: Path, issues: list[ConfigIssue]) -> _Doc | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        issues.append(ConfigIssue("", f"configuration file not found: {path}"))
        return None
    except (OSError, UnicodeDecodeError) as e:
        issues.append(ConfigIssue("", f"cannot read {path}: {e}"))
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        issues.append(ConfigIssue("", f"not valid YAML: {problem}", str(path), line))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        issues.append(ConfigIssue("", f"the top level must be a mapping, not {type(data).__name__}", str(path), 1))
        return None
    return _Doc(str(path), data, node)


def _node_at(node: yaml.Node | None, parts: list[str | int]) -> yaml.Node | None:
    for p in parts:
        if node is None:
            return None
        if isinstance(node, yaml.MappingNode) and isinstance(p, str):
            node = next((v for k, v in node.value if getattr(k, "value", None) == p), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(p, int) and 0 <= p < len(node.value):
            node = node.value[p]
        else:
            return node
    return node


def format_path(parts: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


class _Origins:
    """Maps a path in the merged document back to its file, its own path there, and a line."""

    def __init__(self, main: _Doc) -> None:
        self.main = main
        self.items: dict[str, list[tuple[_Doc, int]]] = {k: [] for k in LIST_KEYS}

    def locate(self, parts: list[Any]) -> tuple[str, str, int | None]:
        doc, local = self.main, list(parts)
        if len(parts) >= 2 and parts[0] in self.items and isinstance(parts[1], int):
            origin = self.items[parts[0]]
            if parts[1] < len(origin):
                doc, idx = origin[parts[1]]
                local = [parts[0], idx, *parts[2:]]
        node = _node_at(doc.node, local)
        line = node.start_mark.line + 1 if node is not None else None
        file = doc.file if doc is not self.main else ""
        return format_path(local), file, line


def _load_merged(path: Path, issues: list[ConfigIssue], seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], _Origins] | None:
    doc = _read_yaml(path, issues)
    if doc is None:
        return None
    origins = _Origins(doc)
    merged: dict[str, Any] = {k: v for k, v in doc.data.items() if k != "include"}
    includes = doc.data.get("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        issues.append(ConfigIssue("include", "must be a list of file names", "", _line(doc, ["include"])))
        includes = []
    pre: dict[str, list[Any]] = {k: [] for k in LIST_KEYS}
    for n, inc in enumerate(includes):
        inc_path = (path.parent / _expand_str(str(inc), f"include[{n}]", issues)).resolve()
        if inc_path in seen or inc_path == path.resolve():
            issues.append(ConfigIssue(f"include[{n}]", f"include cycle through {inc_path.name}"))
            continue
        sub = _load_merged(inc_path, issues, seen + (path.resolve(),))
        if sub is None:
            continue
        sub_data, sub_origins = sub
        for k in LIST_KEYS:
            vals = sub_data.get(k) or []
            if isinstance(vals, list):
                for i, v in enumerate(vals):
                    pre[k].append(v)
                    o = sub_origins.items[k][i] if i < len(sub_origins.items[k]) else (sub_origins.main, i)
                    origins.items[k].append(o)
        for k, v in sub_data.items():
            if k not in LIST_KEYS and k not in merged:
                merged[k] = v
    for k in LIST_KEYS:
        own = merged.get(k)
        if own is None:
            own = []
        if not isinstance(own, list):
            continue  # pydantic reports the type error at this key
        for i, _ in enumerate(own):
            origins.items[k].append((doc, i))
        if pre[k] or k in merged:
            merged[k] = pre[k] + own
    return merged, origins


def _line(doc: _Doc, parts: list[Any]) -> int | None:
    node = _node_at(doc.node, parts)
    return node.start_mark.line + 1 if node is not None else None


def default_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("XMC_DATA_DIR", str(PROJECT_ROOT.parent / "shared" / "data"))
    env.setdefault("XMC_PROJECT_DIR", str(PROJECT_ROOT))
    return env


def _expand_str(s: str, path: str, issues: list[ConfigIssue], env: dict[str, str] | None = None) -> str:
    env = env if env is not None else default_env()

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        issues.append(ConfigIssue(path, f"environment variable {name} is not set (write ${{{name}:-default}} to give a default)"))
        return m.group(0)

    return _ENV.sub(sub, s)


def _expand(obj: Any, parts: list[Any], issues: list[ConfigIssue], env: dict[str, str]) -> Any:
    if isinstance(obj, str):
        return _expand_str(obj, format_path(parts), issues, env) if "${" in obj else obj
    if isinstance(obj, dict):
        return {k: _expand(v, parts + [k], issues, env) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_expand(v, parts + [i], issues, env) for i, v in enumerate(obj)]
    return obj


# --------------------------------------------------------------------------- pydantic messages
def _pyd_message(err: dict[str, Any]) -> str:
    t, msg, inp = err.get("type", ""), err.get("msg", ""), err.get("input")
    if t == "extra_forbidden":
        return "unknown field"
    if t == "missing":
        return "required field is missing"
    if t.startswith("value_error") and msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    if t == "assertion_error" and msg.startswith("Assertion failed, "):
        return msg[len("Assertion failed, "):]
    shown = repr(inp) if not isinstance(inp, (dict, list)) else type(inp).__name__
    return f"{msg[:1].lower()}{msg[1:]} (got {shown})"


def _pyd_issues(e: ValidationError, prefix: list[Any], origins: _Origins | None) -> list[ConfigIssue]:
    out = []
    for err in e.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and ("function-" in p or p.startswith("constrained")))]
        # union branches (e.g. Decimal | "auto") add type names to the location: drop them
        loc = [p for p in loc if not (isinstance(p, str) and (p.startswith("literal[") or p in ("decimal",)))]
        message = _pyd_message(err)
        if "[key]" in loc:  # a mapping key that is not valid (e.g. an unknown enum member)
            loc = [p for p in loc if p != "[key]"]
            message = f"not a valid key: {message}"
        parts = prefix + loc
        if origins is not None:
            path, file, line = origins.locate(parts)
        else:
            path, file, line = format_path(parts), "", None
        out.append(ConfigIssue(path, message, file, line))
    return out


# --------------------------------------------------------------------------- cross-references
def _check_references(cfg: DeploymentConfig, add: Any, reported: list[str]) -> None:
    from ..model.units import normalise_currency

    try:
        normalise_currency(cfg.base_currency)
    except ValueError as e:
        add(["base_currency"], str(e))

    def dupes(key: str, ids: list[str], what: str) -> None:
        seen: dict[str, int] = {}
        for i, x in enumerate(ids):
            if x in seen:
                add([key, i], f"duplicate {what} {x!r} (first at {key}[{seen[x]}])")
            else:
                seen[x] = i

    dupes("venues", [v.code for v in cfg.venues], "venue")
    dupes("instruments", [i.id for i in cfg.instruments], "instrument")
    dupes("fx", [f.id for f in cfg.fx], "FX pair")
    dupes("accounts", [a.id for a in cfg.accounts], "account")
    dupes("gateways", [g.actor_name for g in cfg.gateways], "gateway")
    dupes("strategies", [s.name for s in cfg.strategies], "strategy")

    venues = {v.code for v in cfg.venues}
    instruments = {i.id: i for i in cfg.instruments}
    accounts = {a.id: a for a in cfg.accounts}
    gw_venues = {g.venue for g in cfg.gateways}
    for n, inst in enumerate(cfg.instruments):
        if inst.venue not in venues:
            add(["instruments", n, "venue"], f"unknown venue {inst.venue!r}")
    for n, acc in enumerate(cfg.accounts):
        for k, v in enumerate(acc.venues):
            if v not in venues:
                add(["accounts", n, "venues", k], f"unknown venue {v!r}")
    for n, g in enumerate(cfg.gateways):
        if g.venue not in venues:
            add(["gateways", n, "venue"], f"unknown venue {g.venue!r}")
        _check_params(ADAPTERS, g.adapter, g.params, ["gateways", n], "adapter", add)
        _check_params(FEEDS, g.feed.kind, g.feed.params, ["gateways", n, "feed"], "kind", add)
    # a gateway group is one process: one name, one placement
    names = {g.actor_name: n for n, g in enumerate(cfg.gateways)}
    first_of_group: dict[str, int] = {}
    for n, g in enumerate(cfg.gateways):
        if g.group is None:
            continue
        if g.process_name in names:
            add(["gateways", n, "group"], f"group {g.group!r} would start actor {g.process_name!r}, which is the name "
                                          f"of gateways[{names[g.process_name]}]; rename one")
        k = first_of_group.setdefault(g.group, n)
        if k != n and cfg.gateways[k].node_label != g.node_label:
            add(["gateways", n, "node_label"], f"{g.node_label!r} differs from {cfg.gateways[k].node_label!r} of "
                                               f"gateways[{k}] in group {g.group!r}: a group runs in one process, on one node")

    ccy_pairs = {(f.base, f.quote) for f in cfg.fx} | {(f.quote, f.base) for f in cfg.fx}
    for n, s in enumerate(cfg.strategies):
        _check_params(STRATEGIES, s.class_, s.params, ["strategies", n], "class", add)
        resolved = []
        for k, leg in enumerate(s.legs):
            inst = instruments.get(leg.instrument)
            if inst is None:
                add(["strategies", n, "legs", k, "instrument"], f"unknown instrument {leg.instrument!r}")
            else:
                resolved.append(inst)
                if inst.venue not in gw_venues:
                    add(["strategies", n, "legs", k, "instrument"], f"no gateway is configured for venue {inst.venue!r}")
            acc = accounts.get(leg.account)
            if acc is None:
                add(["strategies", n, "legs", k, "account"], f"unknown account {leg.account!r}")
            elif inst is not None and inst.venue not in acc.venues:
                add(["strategies", n, "legs", k, "account"],
                    f"account {acc.id!r} does not trade on venue {inst.venue!r} (it trades: {', '.join(acc.venues)})")
        if len(resolved) == 2:
            a, b = resolved
            if a.id == b.id:
                add(["strategies", n, "legs"], f"both legs are the same instrument {a.id!r}")
            elif dimension(a.price_unit) is not dimension(b.price_unit):
                add(["strategies", n, "legs"],
                    f"legs are priced in incompatible units: {a.id} per {a.price_unit}, {b.id} per {b.price_unit}")
            if a.currency != b.currency and not _fx_path(a.currency, b.currency, ccy_pairs, cfg.base_currency):
                add(["strategies", n, "legs"], f"no FX pair converts {a.currency} to {b.currency}; add one under fx")
    _check_strategies_build(cfg, add, reported)
    for inst_id in cfg.risk.instruments:
        if inst_id not in instruments:
            add(["risk", "instruments", inst_id], f"unknown instrument {inst_id!r}")
    names = {s.name for s in cfg.strategies}
    for sname in cfg.risk.strategies:
        if sname not in names:
            add(["risk", "strategies", sname], f"unknown strategy {sname!r}")
    for v in cfg.risk.daily_counts:
        if v not in venues:
            add(["risk", "daily_counts", v], f"unknown venue {v!r}")
    for a in cfg.risk.max_account_position:
        if a not in accounts:
            add(["risk", "max_account_position", a], f"unknown account {a!r}")


def _check_strategies_build(cfg: DeploymentConfig, add: Any, reported: list[str]) -> None:
    """Build every strategy as the runtime will (sizes, hedge ratio, FX): what cannot trade is
    reported here, at its path, not when the deployment starts."""
    from ..core.pricing import fx_book_from_config
    from ..strategies.base import build_strategy

    try:
        fx = fx_book_from_config(cfg.fx, max_lag_days=7)
    except (OSError, ValueError) as e:
        add(["fx"], f"cannot load FX rates: {e}")
        return
    for n, s in enumerate(cfg.strategies):
        prefix = f"strategies[{n}]"
        if any(p == prefix or p.startswith(prefix + ".") or p.startswith(prefix + "[") for p in reported):
            continue  # its problems are already reported: building it would only repeat them
        try:
            build_strategy(s, cfg, fx, actor=s.name)
        except (KeyError, ValueError) as e:
            msg = str(e.args[0]) if e.args else str(e)
            msg = msg.split(": ", 1)[1] if msg.startswith(f"strategy {s.name!r}: ") else msg
            field, sep, rest = msg.partition(": ")
            if sep and re.fullmatch(r"params(\.[A-Za-z_][A-Za-z0-9_]*)+", field):
                add(["strategies", n, *field.split(".")], rest)
            else:
                add(["strategies", n], msg)


def _fx_path(a: str, b: str, pairs: set[tuple[str, str]], base: str) -> bool:
    if (a, b) in pairs:
        return True
    return (a, base) in pairs and (base, b) in pairs


def _check_params(reg: Any, name: str, params: dict[str, Any], prefix: list[Any], field: str, add: Any) -> None:
    try:
        entry = reg.get(name)
    except KeyError as e:
        add(prefix + [field], str(e.args[0]))
        return
    try:
        entry.params.model_validate(params)
    except ValidationError as e:
        for issue in _pyd_issues(e, [*prefix, "params"], None):
            add(_split(issue.path), issue.message)


def _split(path: str) -> list[Any]:
    parts: list[Any] = []
    for tok in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        parts.append(int(tok[1:-1]) if tok.startswith("[") else tok)
    return parts


# --------------------------------------------------------------------------- public API
def load_config(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> DeploymentConfig:
    """Load, expand and check a deployment file; raise :class:`ConfigError` with every problem."""
    issues: list[ConfigIssue] = []
    p = Path(path)
    merged = _load_merged(p, issues)
    if merged is None:
        raise ConfigError(issues)
    data, origins = merged
    data = _expand(data, [], issues, env if env is not None else default_env())
    try:
        cfg = DeploymentConfig.model_validate(data)
    except ValidationError as e:
        issues.extend(_pyd_issues(e, [], origins))
        raise ConfigError(issues) from None

    reported: list[str] = []

    def add(parts: list[Any], message: str) -> None:
        path_s, file, line = origins.locate(parts)
        reported.append(format_path(parts))
        issues.append(ConfigIssue(path_s, message, file, line))

    _check_references(cfg, add, reported)
    if issues:
        raise ConfigError(issues)
    return cfg


def iter_secret_refs(cfg: DeploymentConfig) -> Iterator[tuple[str, str]]:
    """(path, env var name) of every credential reference, for a set-up check."""
    for n, a in enumerate(cfg.accounts):
        for k, ref in a.credentials.items():
            yield f"accounts[{n}].credentials.{k}", ref.env


def describe(cfg: DeploymentConfig) -> list[str]:
    """A short human description of a deployment (used by ``xmc validate`` and the demo)."""
    lines = [f"deployment {cfg.name!r}: {cfg.description}".rstrip(": ")]
    lines.append(f"  venues      {len(cfg.venues):>3}  {', '.join(v.code for v in cfg.venues)}")
    lines.append(f"  instruments {len(cfg.instruments):>3}")
    lines.append(f"  accounts    {len(cfg.accounts):>3}  " + ", ".join(f"{a.id} ({a.currency} {a.capital:,})" for a in cfg.accounts))
    lines.append(f"  gateways    {len(cfg.gateways):>3}  " + ", ".join(f"{g.venue}/{g.adapter}/{g.feed.kind}" for g in cfg.gateways))
    for proc, members in cfg.gateway_processes().items():
        if len(members) > 1:
            lines.append(f"    - {proc}: one process for {', '.join(g.venue for g in members)}")
    lines.append(f"  strategies  {len(cfg.strategies):>3}")
    for s in cfg.strategies[:12]:
        lines.append(f"    - {s.name}: {s.class_} {s.legs[0].instrument} / {s.legs[1].instrument} ({s.execution.mode.value} priority)")
    if len(cfg.strategies) > 12:
        lines.append(f"    ... and {len(cfg.strategies) - 12} more")
    lines.append(f"  ledger      {cfg.ledger.path} ({cfg.ledger.shards} shard(s) by {cfg.ledger.shard_by})")
    lines.append(f"  ray         {'embedded' if cfg.ray.address is None else cfg.ray.address}, namespace {cfg.ray.namespace!r}")
    return lines


def auto_hedge_ratio(a_mult: Decimal, a_unit: str, b_mult: Decimal, b_unit: str) -> Decimal:
    """Leg-B lots per leg-A lot that carry the same quantity of goods (or index exposure)."""
    from ..model.units import unit_factor

    # one A lot = a_mult * a_unit; expressed in b_unit: a_mult / unit_factor(a_unit -> b_unit)
    a_in_b_units = a_mult / unit_factor(a_unit, b_unit)
    return a_in_b_units / b_mult


__all__ = ["ConfigError", "ConfigIssue", "load_config", "describe", "format_path", "auto_hedge_ratio"]
