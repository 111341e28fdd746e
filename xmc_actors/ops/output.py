"""One ``--format table|json|csv`` for every ``xmc`` command that prints data.

A command builds its output once, as plain data: the document it would print as JSON, and the
same content as a list of :class:`Table` (named, with columns and rows of plain values). Then
:func:`emit` prints it in the format asked for:

- ``table``: for people, each table drawn by ``rich`` (colour on a terminal only: a state such as
  HALTED or DOWN, an alert level, a pair outcome); piped, it is plain text as wide as its content
  (no wrapping at 80 columns).
- ``json``: the document, as *one* JSON value (``json.loads`` reads the whole output).
- ``csv``: the tables through the :mod:`csv` module. One table: its header, then its rows.
  Several tables (``xmc status``): one header, the union of their columns, with a first column
  ``table`` naming the table each row belongs to (cells a table does not have are empty).

Commands that had ``--json`` keep it, as another spelling of ``--format json``.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from typing import IO, Any, Iterable, Mapping, Sequence

FORMATS = ("table", "json", "csv")

#: table cells whose whole value is one of these words are drawn in colour on a terminal
STYLES: dict[str, str] = {
    "HALTED": "bold red", "DOWN": "bold red", "ESCALATED": "bold red", "REJECTED": "red", "red": "bold red",
    "DEAD/UNREACHABLE": "bold red", "REDUCING": "yellow", "ROLLED_BACK": "yellow", "orange": "dark_orange",
    "yellow": "yellow", "ACTIVE": "green", "UP": "green", "HEDGED": "green", "RUNNING": "green",
    "LOGGED_ON": "green",
}
#: widest a column is drawn (longer text wraps within it); a table of more rows than
#: :data:`CHUNK_ROWS` is drawn in parts of that many rows, sharing their column widths
MAX_COLUMN_WIDTH = 60
CHUNK_ROWS = 500


@dataclass
class Table:
    """A named table of plain values (``None`` prints as an empty cell)."""

    name: str
    columns: Sequence[str]
    rows: list[Sequence[Any]] = field(default_factory=list)
    title: str = ""  # shown above the table in the table format (default: the name)

    def __post_init__(self) -> None:
        for i, r in enumerate(self.rows):
            if len(r) != len(self.columns):
                raise ValueError(f"table {self.name!r}: row {i} has {len(r)} cells for {len(self.columns)} columns")


def add_format_argument(p: argparse.ArgumentParser, *, json_alias: bool = False, default: str = "table") -> None:
    """``--format table|json|csv`` (and, for a command that had it, ``--json`` meaning ``--format json``)."""
    p.add_argument("--format", choices=FORMATS, default=None,
                   help=f"output: table (for people), json (one JSON document), csv (default: {default})")
    p.set_defaults(format_default=default)
    if json_alias:
        p.add_argument("--json", action="store_true", help="the same as --format json")


def output_format(args: argparse.Namespace) -> str:
    """The format a command's arguments ask for; ``--json`` with another ``--format`` is refused."""
    from .cli import CliError

    fmt = getattr(args, "format", None)
    if getattr(args, "json", False):
        if fmt not in (None, "json"):
            raise CliError(f"--json and --format {fmt}: give one (--json is --format json)")
        return "json"
    return fmt or getattr(args, "format_default", "table")


def cell(v: Any) -> str:
    """A value as the text of a cell: empty for None, JSON for a list or mapping."""
    if v is None:
        return ""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str, ensure_ascii=False, separators=(",", ":"))
    return str(v)


def write_json(data: Any, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    json.dump(data, out, indent=2, default=str, ensure_ascii=False)
    out.write("\n")


def csv_rows(tables: Sequence[Table]) -> list[list[str]]:
    """The rows :func:`write_csv` writes, header first (see the module's docstring)."""
    if len(tables) == 1:
        t = tables[0]
        return [list(t.columns)] + [[cell(v) for v in r] for r in t.rows]
    columns: list[str] = []
    for t in tables:
        columns += [c for c in t.columns if c not in columns]
    out = [["table", *columns]]
    for t in tables:
        pos = {c: i for i, c in enumerate(t.columns)}
        for r in t.rows:
            out.append([t.name, *(cell(r[pos[c]]) if c in pos else "" for c in columns)])
    return out


def write_csv(tables: Sequence[Table], out: IO[str] | None = None) -> None:
    w = csv.writer(out or sys.stdout, lineterminator="\n")
    for row in csv_rows(tables):
        w.writerow(row)


def render_tables(tables: Sequence[Table], out: IO[str] | None = None, *, empty: str = "(none)") -> None:
    """Draw ``tables`` with rich, each under its title; a table without rows is its title and
    ``empty``. On a terminal: fitted to its width, with colour. Otherwise: as wide as the content
    (never wrapped at an assumed 80 columns), no colour, no trailing blanks."""
    import io

    from rich.console import Console

    out = out or sys.stdout
    terminal = hasattr(out, "isatty") and out.isatty()
    buf = None if terminal else io.StringIO()
    console = Console(file=out if terminal else buf, width=None if terminal else 10_000, highlight=False,
                      emoji=False, soft_wrap=False, no_color=not terminal, force_terminal=terminal or None)
    for n, t in enumerate(tables):
        if n:
            console.print()
        _draw(console, t, empty)
    if buf is not None:
        out.write("".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines()))


def _draw(console: Any, t: Table, empty: str) -> None:
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    title = t.title or t.name
    if not t.rows:
        console.print(Text(f"{title}: {empty}", style="dim"))
        return
    console.print(Text(title, style="bold"))
    texts = [[cell(v) for v in r] for r in t.rows]
    widths = [min(MAX_COLUMN_WIDTH, max([len(c)] + [len(r[i]) for r in texts])) for i, c in enumerate(t.columns)]
    for start in range(0, len(texts), CHUNK_ROWS):
        first = start == 0
        rt = RichTable(box=box.SIMPLE_HEAD, show_header=first, show_edge=False, pad_edge=False)
        for c, w in zip(t.columns, widths):
            rt.add_column(c, min_width=w, max_width=w, overflow="fold")
        for r in texts[start:start + CHUNK_ROWS]:
            rt.add_row(*(Text(v, style=STYLES.get(v, "")) for v in r))
        console.print(rt)


def emit(fmt: str, data: Any, tables: Sequence[Table], out: IO[str] | None = None) -> None:
    """Print one command's output: ``data`` as JSON, or ``tables`` as tables or CSV."""
    if fmt == "json":
        write_json(data, out)
    elif fmt == "csv":
        write_csv(tables, out)
    elif fmt == "table":
        render_tables(tables, out)
    else:
        raise ValueError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A nested mapping as ``(dotted.path, value)`` pairs (lists of scalars kept whole)."""
    out: list[tuple[str, Any]] = []
    if isinstance(data, Mapping):
        for k, v in data.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(data, (list, tuple)) and any(isinstance(x, (Mapping, list, tuple)) for x in data):
        for i, v in enumerate(data):
            out += flatten(v, f"{prefix}[{i}]")
    else:
        out.append((prefix, data))
    return out


def key_value_table(name: str, data: Mapping[str, Any], *, columns: tuple[str, str] = ("field", "value"),
                    title: str = "") -> Table:
    return Table(name, columns, [(k, v) for k, v in flatten(data)], title=title)


def rows_of(items: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    return [tuple(it.get(c) for c in columns) for it in items]


__all__ = ["FORMATS", "Table", "add_format_argument", "output_format", "emit", "render_tables", "write_csv",
           "write_json", "csv_rows", "cell", "flatten", "key_value_table", "rows_of"]
