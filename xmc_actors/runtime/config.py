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

Refused, each with its reason (docs/configuration.md): files beyond :data:`MAX_FILE_BYTES`,
binary or not UTF-8; nesting beyond :data:`MAX_DEPTH` and expansion through aliases beyond
:data:`MAX_NODES` (checked on the composed document, before anything is built from it);
duplicate keys; non-finite numbers and integers beyond :data:`MAX_INT`; a deployment without an
enabled strategy; data files (replay feeds, FX series) that are missing or not of their format.
A problem in a value expanded from ``${NAME}`` shows the reference, not the value.
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
from ..model.registry import ADAPTERS, FEEDS, STRATEGIES
from ..model.units import auto_hedge_ratio, dimension

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
# Limits on what a deployment file may be. Real deployments are far inside them (configs/fifty.yaml,
# fifty strategies, is 24 KB, about 3,000 nodes, 7 levels deep); they stop a hostile or broken
# file (a YAML "billion laughs", 20,000 nested brackets, a binary file) before it costs time,
# memory or a RecursionError anywhere after (expansion of ${ENV}, pydantic).
MAX_FILE_BYTES = 2 * 1024 * 1024
"""Largest deployment (or included) file read, in bytes."""
MAX_NODES = 500_000
"""Most values (mappings, lists, scalars) the whole deployment may hold once aliases are expanded."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists, aliases expanded."""
MAX_INCLUDE_DEPTH = 8
"""Deepest chain of includes (a file including a file including ...)."""
MAX_FILES = 64
"""Most files read for one deployment, includes counted."""
MAX_INT = 2**63 - 1
"""Largest integer magnitude anywhere in the file (a signed 64-bit integer, as the ledger stores)."""


@dataclass
class _Doc:
    file: str
    data: Any
    node: yaml.Node | None


class _LimitError(yaml.MarkedYAMLError):
    """A file beyond one of the limits above (raised while composing, reported with its line)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, composing with a depth limit; values that cannot be built (a
    timestamp 2025-13-45, a 5,000-digit integer) become a YAML error with their line."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _LimitError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as e:
            shown = node.value if isinstance(node, yaml.ScalarNode) else node.tag
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {_short(shown)!r}: {e}", node.start_mark) from None


def _short(x: Any, n: int = 60) -> str:
    s = str(x)
    return s if len(s) <= n else s[: n - 3] + "..."


@dataclass
class _Budget:
    """What the files read so far for one deployment used of :data:`MAX_NODES` and :data:`MAX_FILES`."""

    nodes: int = 0
    files: int = 0


def _check_graph(root: yaml.Node, file: str, budget: _Budget, issues: list[ConfigIssue]) -> bool:
    """Walk the composed document once per node (aliases share their node): refuse recursive
    aliases, expansion beyond :data:`MAX_NODES` or :data:`MAX_DEPTH`, duplicate keys, and numbers
    that are not finite or beyond :data:`MAX_INT`. Returns whether the document can be built."""
    size: dict[int, int] = {}     # id(node) -> nodes it expands to
    height: dict[int, int] = {}   # id(node) -> levels it expands to
    active: set[int] = set()
    ok = True

    def fail(message: str, node: yaml.Node, path: list[Any]) -> None:
        issues.append(ConfigIssue(format_path(path), message, file, node.start_mark.line + 1))

    class Stop(Exception):
        pass

    def visit(node: yaml.Node, depth: int, path: list[Any]) -> tuple[int, int]:
        nonlocal ok
        key = id(node)
        if key in active:
            fail("an alias refers to a mapping or list that contains it (a recursive structure)", node, path)
            raise Stop
        if key in size:  # an alias: its expansion is known
            s, h = size[key], height[key]
        else:
            active.add(key)
            s, h = 1, 1
            if isinstance(node, yaml.ScalarNode):
                ok = _check_scalar(node, path, fail) and ok
            elif isinstance(node, yaml.SequenceNode):
                for i, child in enumerate(node.value):
                    cs, ch = visit(child, depth + 1, path + [i])
                    s, h = s + cs, max(h, ch + 1)
                    _check_size(budget.nodes + s, node, path)
            elif isinstance(node, yaml.MappingNode):
                seen: dict[tuple[str, str], int] = {}
                for k, v in node.value:
                    name = k.value if isinstance(k, yaml.ScalarNode) else None
                    if name is not None and k.tag != "tag:yaml.org,2002:merge":
                        line = k.start_mark.line + 1
                        if (k.tag, name) in seen:
                            fail(f"duplicate key {_short(name)!r} (first at line {seen[(k.tag, name)]}, again at "
                                 f"line {line}): a key may appear only once in a mapping", k, path + [name])
                            ok = False
                        else:
                            seen[(k.tag, name)] = line
                    ks, kh = visit(k, depth + 1, path)
                    vs, vh = visit(v, depth + 1, path + [name if name is not None else "?"])
                    s, h = s + ks + vs, max(h, kh + 1, vh + 1)
                    _check_size(budget.nodes + s, node, path)
            active.discard(key)
            size[key], height[key] = s, h
        if depth + h - 1 > MAX_DEPTH:
            fail(f"nested more than {MAX_DEPTH} levels deep once its aliases are expanded", node, path)
            raise Stop
        return s, h

    def _check_size(total: int, node: yaml.Node, path: list[Any]) -> None:
        if total > MAX_NODES:
            fail(f"expands to more than {MAX_NODES:,} values (through aliases, or with its included files): "
                 "refused as a likely YAML bomb", node, path)
            raise Stop

    try:
        s, _ = visit(root, 1, [])
    except Stop:
        return False
    budget.nodes += s
    return ok


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_INT_PARSER = yaml.constructor.SafeConstructor()


def _check_scalar(node: yaml.ScalarNode, path: list[Any], fail: Any) -> bool:
    """Numbers: finite, and integers within :data:`MAX_INT` (before PyYAML builds them)."""
    if node.tag == _FLOAT_TAG:
        v = node.value.lower().lstrip("+-")
        if v in (".inf", ".nan"):
            fail(f"{node.value} is not a finite number", node, path)
            return False
        try:
            f = float(node.value.replace("_", ""))
        except ValueError:
            return True  # the constructor reports it
        if f != f or f in (float("inf"), float("-inf")):
            fail(f"{_short(node.value)} is not a finite number (too large for a float)", node, path)
            return False
    elif node.tag == _INT_TAG:
        digits = sum(c.isdigit() for c in node.value)
        if digits > 40:
            fail(f"an integer of {digits} digits is beyond any real quantity (at most {MAX_INT:,})", node, path)
            return False
        if digits <= 18:
            return True
        try:
            n = yaml.constructor.SafeConstructor.construct_yaml_int(_INT_PARSER, node)
        except (ValueError, yaml.YAMLError):
            return True  # the constructor reports it
        if abs(n) > MAX_INT:
            fail(f"{_short(node.value)} is beyond any real quantity (at most {MAX_INT:,})", node, path)
            return False
    return True


def _read_text(path: Path, issues: list[ConfigIssue], what: str = "configuration file") -> str | None:
    """The file's text, or None with the reason: missing, not a regular file, too large, binary,
    not UTF-8."""
    import stat

    try:
        st = path.stat()
    except FileNotFoundError:
        issues.append(ConfigIssue("", f"{what} not found: {path}"))
        return None
    except OSError as e:
        issues.append(ConfigIssue("", f"cannot read {path}: {e.strerror or e}"))
        return None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        issues.append(ConfigIssue("", f"cannot read {path}: {kind}"))
        return None
    if st.st_size > MAX_FILE_BYTES:
        issues.append(ConfigIssue("", f"{path} is {st.st_size:,} bytes: a deployment file may be at most "
                                      f"{MAX_FILE_BYTES:,} bytes ({MAX_FILE_BYTES // (1024 * 1024)} MiB)"))
        return None
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        issues.append(ConfigIssue("", f"cannot read {path}: {e.strerror or e}"))
        return None
    if len(raw) > MAX_FILE_BYTES:
        issues.append(ConfigIssue("", f"{path}: a deployment file may be at most {MAX_FILE_BYTES:,} bytes"))
        return None
    nul = raw.find(b"\0")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        issues.append(ConfigIssue("", f"{path} is a binary file, not YAML text (a NUL byte at offset {nul})",
                                  str(path), line))
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        issues.append(ConfigIssue("", f"{path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}): "
                                      "save it as UTF-8", str(path), line))
        return None


def _read_yaml(path: Path, issues: list[ConfigIssue], budget: _Budget | None = None) -> _Doc | None:
    budget = budget if budget is not None else _Budget()
    budget.files += 1
    if budget.files > MAX_FILES:
        issues.append(ConfigIssue("", f"more than {MAX_FILES} files read through include: refused"))
        return None
    text = _read_text(path, issues)
    if text is None:
        return None
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()  # composed once: aliases share their node
            if node is None:
                data: Any = None
            elif not _check_graph(node, str(path), budget, issues):
                return None
            else:
                data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context", None)
        if context and getattr(e, "problem", None):
            problem = f"{context}, {problem}"  # "expected a single document in the stream, but found another document"
        if isinstance(e, _LimitError):
            issues.append(ConfigIssue("", f"refused: {problem}", str(path), line))
        else:
            issues.append(ConfigIssue("", f"not valid YAML: {problem}", str(path), line))
        return None
    except RecursionError:  # a safety net: the depth limit should make this unreachable
        issues.append(ConfigIssue("", f"refused: nested too deeply (at most {MAX_DEPTH} levels)", str(path)))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        issues.append(ConfigIssue("", "the top level must be a mapping of sections (name, venues, instruments, "
                                      f"accounts, gateways, strategies, ...), not {_kind(data)}", str(path), 1))
        return None
    return _Doc(str(path), data, node)


def _kind(x: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(x), type(x).__name__)


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


def _load_merged(path: Path, issues: list[ConfigIssue], seen: tuple[Path, ...] = (),
                 budget: _Budget | None = None) -> tuple[dict[str, Any], _Origins] | None:
    budget = budget if budget is not None else _Budget()
    doc = _read_yaml(path, issues, budget)
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
        if not isinstance(inc, str) or not inc.strip():
            issues.append(ConfigIssue(f"include[{n}]", f"must be a file name, not {_kind(inc)}", "",
                                      _line(doc, ["include", n])))
            continue
        if len(seen) >= MAX_INCLUDE_DEPTH:
            issues.append(ConfigIssue(f"include[{n}]", f"includes nested more than {MAX_INCLUDE_DEPTH} files deep",
                                      "", _line(doc, ["include", n])))
            continue
        inc_path = (path.parent / _expand_str(inc, f"include[{n}]", issues)).resolve()
        if inc_path in seen or inc_path == path.resolve():
            issues.append(ConfigIssue(f"include[{n}]", f"include cycle through {inc_path.name}"))
            continue
        sub = _load_merged(inc_path, issues, seen + (path.resolve(),), budget)
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


NOT_SECRET = frozenset({"XMC_DATA_DIR", "XMC_PROJECT_DIR"})
"""Environment variables whose values may be shown in messages (directories); any other
``${NAME}`` may hold a secret: a message about its field shows the reference, not the value."""


def _expand_str(s: str, path: str, issues: list[ConfigIssue], env: dict[str, str] | None = None,
                used: list[str] | None = None) -> str:
    env = env if env is not None else default_env()

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            if used is not None:
                used.append(name)
            return env[name]
        if default is not None:
            return default
        issues.append(ConfigIssue(path, f"environment variable {name} is not set (write ${{{name}:-default}} to give a default)"))
        return m.group(0)

    return _ENV.sub(sub, s)


def _expand(obj: Any, parts: list[Any], issues: list[ConfigIssue], env: dict[str, str],
            expanded: dict[str, tuple[str, str]] | None = None) -> Any:
    """Replace ``${NAME}`` in every string; ``expanded`` collects path -> (as written, value) of
    each string that took a value from the environment (other than :data:`NOT_SECRET`)."""
    if isinstance(obj, str):
        if "${" not in obj:
            return obj
        used: list[str] = []
        value = _expand_str(obj, format_path(parts), issues, env, used)
        if expanded is not None and any(n not in NOT_SECRET for n in used):
            expanded[format_path(parts)] = (obj, value)
        return value
    if isinstance(obj, dict):
        return {k: _expand(v, parts + [k], issues, env, expanded) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_expand(v, parts + [i], issues, env, expanded) for i, v in enumerate(obj)]
    return obj


def _related(a: str, b: str) -> bool:
    """Whether path ``a`` is ``b``, inside it, or contains it."""
    def under(x: str, y: str) -> bool:
        return x == y or not y or x.startswith(y + ".") or x.startswith(y + "[")
    return under(a, b) or under(b, a)


def _hide_expanded(issue: ConfigIssue, expanded: dict[str, tuple[str, str]], merged_path: str) -> ConfigIssue:
    """An issue about a field (or its parent or child) whose value came from the environment
    shows the ``${NAME}`` reference instead of the value."""
    msg = issue.message
    for path, (written, value) in expanded.items():
        if len(value) < 3 or value == written or not _related(merged_path, path):
            continue
        for shown in (_short(repr(value)), repr(value), repr(_short(value))):  # as _pyd_message shows it
            msg = msg.replace(shown, repr(written))
        msg = msg.replace(value, written).replace(_short(value), written)
    return issue if msg == issue.message else ConfigIssue(issue.path, msg, issue.file, issue.line)


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
    shown = _short(repr(inp)) if not isinstance(inp, (dict, list)) else type(inp).__name__
    return f"{msg[:1].lower()}{msg[1:]} (got {shown})"


def _pyd_issues(e: ValidationError, prefix: list[Any], origins: _Origins | None,
                expanded: dict[str, tuple[str, str]] | None = None) -> list[ConfigIssue]:
    out = []
    for err in e.errors(include_url=False):
        if expanded:
            where = format_path(prefix + [p for p in err["loc"] if isinstance(p, (int, str))])
            for path, (written, value) in expanded.items():
                if err.get("input") == value and _related(where, path):
                    err = {**err, "input": written}
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
        issue = ConfigIssue(path, message, file, line)
        out.append(_hide_expanded(issue, expanded, format_path(parts)) if expanded else issue)
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
    venue_codes = {v.code for v in cfg.venues}
    for code in cfg.lab.venues:
        if code not in venue_codes:
            add(["lab", "venues", code], f"unknown venue {code!r} (the file's venues: {', '.join(sorted(venue_codes))})")
    # several gateways on one venue (brokers, accounts): each order goes to the gateway that
    # lists its account, else to the venue's one default gateway (no `accounts`); an account is
    # carried by one gateway per venue, so no order could go two ways
    default_on: dict[str, int] = {}
    carried: dict[tuple[str, str], int] = {}
    accounts = {a.id: a for a in cfg.accounts}
    for n, g in enumerate(cfg.gateways):
        if not g.accounts:
            if g.venue in default_on:
                add(["gateways", n, "accounts"],
                    f"venue {g.venue!r} already has a default gateway (gateways[{default_on[g.venue]}], no accounts): "
                    "list the accounts each further gateway on the venue carries")
            else:
                default_on[g.venue] = n
        for k, a in enumerate(g.accounts):
            acc = accounts.get(a)
            if acc is None:
                add(["gateways", n, "accounts", k], f"unknown account {a!r}")
            elif g.venue not in acc.venues:
                add(["gateways", n, "accounts", k], f"account {a!r} does not trade on venue {g.venue!r} "
                                                    f"(its venues: {', '.join(acc.venues)})")
            if (g.venue, a) in carried:
                add(["gateways", n, "accounts", k], f"account {a!r} on {g.venue!r} is already carried by "
                                                    f"gateways[{carried[(g.venue, a)]}]")
            else:
                carried[(g.venue, a)] = n
    dupes("strategies", [s.name for s in cfg.strategies], "strategy")

    venues = {v.code for v in cfg.venues}
    instruments = {i.id: i for i in cfg.instruments}
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
            elif inst is not None and inst.venue in gw_venues and inst.venue not in default_on \
                    and (inst.venue, acc.id) not in carried:
                add(["strategies", n, "legs", k, "account"],
                    f"no gateway on {inst.venue!r} carries account {acc.id!r}: list it under a gateway's accounts, "
                    "or give the venue a default gateway (one without accounts)")
        if len(resolved) == 2:
            a, b = resolved
            if a.id == b.id:
                add(["strategies", n, "legs"], f"both legs are the same instrument {a.id!r}")
            elif dimension(a.price_unit) is not dimension(b.price_unit):
                add(["strategies", n, "legs"],
                    f"legs are priced in incompatible units: {a.id} per {a.price_unit}, {b.id} per {b.price_unit}")
            if a.currency != b.currency and not _fx_path(a.currency, b.currency, ccy_pairs, cfg.base_currency):
                add(["strategies", n, "legs"], f"no FX pair converts {a.currency} to {b.currency}; add one under fx")
    files_ok = _check_data_files(cfg, add)
    _check_strategies_build(cfg, add, reported, load_fx=files_ok)
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
    from ..core.stages import reference_problems  # stages, acceptance targets, stress scenarios
    for where, message in reference_problems(cfg):
        add(where, message)


def _check_data_files(cfg: DeploymentConfig, add: Any) -> bool:
    """Every data file the deployment reads (replay feeds, FX series) exists and its header and
    first rows fit its format. Returns whether all FX files did."""
    from ..feeds.config import ReplayParams, probe_data_file

    probed: dict[tuple[str, str], str | None] = {}

    def probe(path: str, fmt: str) -> str | None:
        if _ENV.search(path):
            return None  # an unset ${NAME}: reported at this path already
        if (path, fmt) not in probed:
            probed[(path, fmt)] = probe_data_file(path, fmt)
        return probed[(path, fmt)]

    fx_ok = True
    for n, fp in enumerate(cfg.fx):
        if fp.source == "file" and fp.file:
            why = probe(fp.file, "fred_fx")
            if why is not None:
                add(["fx", n, "file"], f"FX rates file: {why}")
                fx_ok = False
    for n, g in enumerate(cfg.gateways):
        if g.feed.kind != "replay":
            continue
        try:
            params = ReplayParams.model_validate(g.feed.params)
        except ValidationError:
            continue  # reported by the feed's parameter check
        for k, f in enumerate(params.files):
            where = ["gateways", n, "feed", "params", "files", k]
            if f.format == "csv":  # a mapped CSV: every row read, each bad cell with its line
                if _ENV.search(f.path):
                    continue
                from ..feeds.csv_source import check_mapped_csv

                venue = next((v for v in cfg.venues if v.code == g.venue), None)
                for field, why in check_mapped_csv(f.path, f, venue):
                    add([*where, field], f"replay file: {why}")
                continue
            why = probe(f.path, f.format)
            if why is not None:
                add([*where, "path"], f"replay file: {why}")
    return fx_ok


def _check_strategies_build(cfg: DeploymentConfig, add: Any, reported: list[str], load_fx: bool = True) -> None:
    """Build every strategy as the runtime will (sizes, hedge ratio, FX): what cannot trade is
    reported here, at its path, not when the deployment starts."""
    from ..feeds.fx import fx_book_from_config
    from ..strategies.base import build_strategy

    if not load_fx:
        return  # the FX files are reported at their paths; the strategies need their rates
    try:
        fx = fx_book_from_config(cfg.fx)
    except (OSError, ValueError, ArithmeticError) as e:
        add(["fx"], f"cannot load FX rates: {e}")
        return
    for n, s in enumerate(cfg.strategies):
        prefix = f"strategies[{n}]"
        if any(p == prefix or p.startswith(prefix + ".") or p.startswith(prefix + "[") for p in reported):
            continue  # its problems are already reported: building it would only repeat them
        try:
            build_strategy(s, cfg, fx, actor=s.name)
        except (ArithmeticError, TypeError) as e:  # numbers the parameter models let through
            add(["strategies", n], f"cannot be built with these numbers: {type(e).__name__}: {_short(e, 200)}")
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
    """Load, expand and check a deployment file; raise :class:`ConfigError` with every problem.

    A deployment needs at least one enabled strategy. A file that only lists venues and
    instruments (no ``include``, no accounts, gateways or strategies) is a *catalogue* and is
    returned as it is (its ``strategies`` empty): see :func:`is_catalogue`.
    """
    issues: list[ConfigIssue] = []
    p = Path(path)
    merged = _load_merged(p, issues)
    if merged is None or issues:  # a file that could not be read: what follows would only cascade from it
        raise ConfigError(issues)
    data, origins = merged
    if not origins.main.data:
        issues.append(ConfigIssue("", "the file is empty: " + _NEEDS))
        raise ConfigError(issues)
    expanded: dict[str, tuple[str, str]] = {}
    data = _expand(data, [], issues, env if env is not None else default_env(), expanded)
    try:
        cfg = DeploymentConfig.model_validate(data)
    except ValidationError as e:
        issues.extend(_pyd_issues(e, [], origins, expanded))
        raise ConfigError(issues) from None
    except RecursionError:  # a safety net: the depth limit should make this unreachable
        issues.append(ConfigIssue("", f"refused: nested too deeply (at most {MAX_DEPTH} levels)"))
        raise ConfigError(issues) from None

    # a concrete contract the catalogue does not list (SHFE.cu2703) is its product's terms under its own id
    from .contract_checks import with_concrete_contracts

    cfg = with_concrete_contracts(cfg)
    reported: list[str] = []

    def add(parts: list[Any], message: str) -> None:
        path_s, file, line = origins.locate(parts)
        reported.append(format_path(parts))
        issue = ConfigIssue(path_s, message, file, line)
        issues.append(_hide_expanded(issue, expanded, format_path(parts)) if expanded else issue)

    _check_references(cfg, add, reported)
    if not _is_catalogue_doc(origins.main.data):
        _check_minimum(cfg, add)
        if not issues:  # every venue calendar it uses covers the days it runs on (runtime/calendars.py)
            from .calendars import calendar_problems

            for parts, why in calendar_problems(cfg):
                add(list(parts), why)
            # its concrete contracts are alive, its calendar rolls before the venue's deadline
            from .contract_checks import contract_checks

            for parts, why in contract_checks(cfg)[0]:
                add(list(parts), why)
    if issues:
        raise ConfigError(issues)
    return cfg


_NEEDS = ("a deployment needs at least one strategy (strategies[]), the accounts its legs trade through "
          "(accounts[]) and a gateway for each of its venues (gateways[]); see configs/demo.yaml")


def _is_catalogue_doc(data: dict[str, Any]) -> bool:
    return ("include" not in data and not any(k in data for k in ("accounts", "gateways", "strategies"))
            and any(data.get(k) for k in ("venues", "instruments")))


def is_catalogue(cfg: DeploymentConfig) -> bool:
    """Whether a loaded file is a catalogue (venues, instruments, FX) for deployments to include,
    not a deployment: :func:`load_config` refuses a deployment without strategies."""
    return not cfg.strategies and not cfg.gateways and not cfg.accounts


def _check_minimum(cfg: DeploymentConfig, add: Any) -> None:
    """The least a deployment must hold to do anything: an enabled strategy (whose legs the
    cross-reference checks tie to accounts and gateways)."""
    if not cfg.strategies:
        missing = [k for k in ("accounts", "gateways") if not getattr(cfg, k)]
        also = f" (it has no {' and no '.join(missing)} either)" if missing else ""
        add(["strategies"], f"no strategy is configured{also}: {_NEEDS}")
    elif not any(s.enabled for s in cfg.strategies):
        add(["strategies"], f"all {len(cfg.strategies)} strategies are disabled (enabled: false): nothing would trade")


def _param_env_refs(params: Any, path: str) -> Iterator[tuple[str, str]]:
    """``{env: NAME}`` references inside a gateway's adapter parameters (a CTP password, a FIX
    password), with their paths."""
    if isinstance(params, dict):
        if set(params) == {"env"} and isinstance(params["env"], str):
            yield path, params["env"]
            return
        for k, v in params.items():
            yield from _param_env_refs(v, f"{path}.{k}")
    elif isinstance(params, (list, tuple)):
        for i, v in enumerate(params):
            yield from _param_env_refs(v, f"{path}[{i}]")


def iter_secret_refs(cfg: DeploymentConfig) -> Iterator[tuple[str, str]]:
    """(path, env var name) of every credential reference, for a set-up check: the accounts'
    credentials and the ``{env: NAME}`` values in gateways' adapter parameters."""
    for n, a in enumerate(cfg.accounts):
        for k, ref in a.credentials.items():
            yield f"accounts[{n}].credentials.{k}", ref.env
    for n, g in enumerate(cfg.gateways):
        yield from _param_env_refs(g.params or {}, f"gateways[{n}].params")


SIMULATED_ADAPTERS = frozenset({"sim"})
"""Venue adapters that never read credentials."""


def missing_credentials(cfg: DeploymentConfig, env: dict[str, str] | None = None
                        ) -> list[tuple[str, str, bool]]:
    """(path, env var, needed) of every credential whose environment variable is not set.

    ``needed``: a gateway of one of the account's venues has an adapter that is not simulated,
    so it will read the credential when it connects. The simulated adapter reads none, nor does
    a FIX gateway to a loopback exchange the runtime serves (``serve_loopback``).
    """
    env = env if env is not None else dict(os.environ)
    adapters: dict[str, set[str]] = {}
    for g in cfg.gateways:
        loopback = g.adapter == "fix" and bool((g.params or {}).get("serve_loopback"))
        adapters.setdefault(g.venue, set()).add("sim" if loopback else g.adapter)
    out = []
    for n, a in enumerate(cfg.accounts):
        live = any(ad not in SIMULATED_ADAPTERS for v in a.venues for ad in adapters.get(v, ()))
        for k, ref in a.credentials.items():
            if not env.get(ref.env):
                out.append((f"accounts[{n}].credentials.{k}", ref.env, live))
    for n, g in enumerate(cfg.gateways):
        loopback = g.adapter == "fix" and bool((g.params or {}).get("serve_loopback"))
        live = g.adapter not in SIMULATED_ADAPTERS and not loopback
        for path, name in _param_env_refs(g.params or {}, f"gateways[{n}].params"):
            if not env.get(name):
                out.append((path, name, live))
    return out


def deployment_summary(cfg: DeploymentConfig) -> dict[str, Any]:
    """What a deployment consists of, as plain data (``xmc validate --format json``; the lines of
    :func:`describe` are made from it)."""
    procs = cfg.gateway_processes()
    return {
        "name": cfg.name, "description": cfg.description,
        "venues": [v.code for v in cfg.venues], "instruments": len(cfg.instruments),
        "accounts": [{"id": a.id, "currency": a.currency, "capital": a.capital} for a in cfg.accounts],
        "gateways": [{"name": g.actor_name, "venue": g.venue, "adapter": g.adapter, "feed": g.feed.kind,
                      "process": g.process_name, "shares_process_with": [o.venue for o in procs[g.process_name] if o is not g]}
                     for g in cfg.gateways],
        "strategies": [{"name": s.name, "class": s.class_, "leg_a": s.legs[0].instrument, "leg_b": s.legs[1].instrument,
                        "priority": s.execution.mode.value, "enabled": s.enabled} for s in cfg.strategies],
        "ledger": {"path": cfg.ledger.path, "shards": cfg.ledger.shards, "shard_by": cfg.ledger.shard_by},
        "ray": {"address": cfg.ray.address, "namespace": cfg.ray.namespace, "dashboard": cfg.ray.dashboard,
                "metrics_port": cfg.ray.metrics_port},
    }


def describe(cfg: DeploymentConfig) -> list[str]:
    """A short human description of a deployment (used by the demo)."""
    d = deployment_summary(cfg)
    lines = [f"deployment {d['name']!r}: {d['description']}".rstrip(": ")]
    lines.append(f"  venues      {len(d['venues']):>3}  {', '.join(d['venues'])}")
    lines.append(f"  instruments {d['instruments']:>3}")
    lines.append(f"  accounts    {len(d['accounts']):>3}  " + ", ".join(f"{a['id']} ({a['currency']} {a['capital']:,})" for a in d["accounts"]))
    lines.append(f"  gateways    {len(d['gateways']):>3}  " + ", ".join(f"{g['venue']}/{g['adapter']}/{g['feed']}" for g in d["gateways"]))
    for proc, members in cfg.gateway_processes().items():
        if len(members) > 1:
            lines.append(f"    - {proc}: one process for {', '.join(g.venue for g in members)}")
    lines.append(f"  strategies  {len(d['strategies']):>3}")
    for st in d["strategies"][:12]:
        lines.append(f"    - {st['name']}: {st['class']} {st['leg_a']} / {st['leg_b']} ({st['priority']} priority)")
    if len(d["strategies"]) > 12:
        lines.append(f"    ... and {len(d['strategies']) - 12} more")
    led = d["ledger"]
    lines.append(f"  ledger      {led['path']} ({led['shards']} shard(s) by {led['shard_by']})")
    lines.append(f"  ray         {'embedded' if cfg.ray.address is None else cfg.ray.address}, namespace {cfg.ray.namespace!r}")
    return lines


__all__ = ["ConfigError", "ConfigIssue", "load_config", "describe", "deployment_summary", "format_path", "auto_hedge_ratio",
           "is_catalogue", "missing_credentials", "iter_secret_refs"]
