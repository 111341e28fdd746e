"""``xmc validate CONFIG``.

``--format table`` (default): problems on stderr, one ``file:line: path: reason`` each; a valid
file's summary as tables on stdout. ``--format json``: one JSON document on stdout either way
(``valid``, ``problems`` with file, line, path and message, ``notes``, ``deployment``: what it
consists of). ``--format csv``: the problems (file, line, path, message), or a valid file's
summary tables. Exit 0 valid, 1 not.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..runtime.config import ConfigError, deployment_summary, is_catalogue, load_config, missing_credentials
from .output import Table, add_format_argument, emit, output_format


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("validate", help="check a deployment configuration and report every problem")
    p.add_argument("config", help="deployment YAML file")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when the file is valid")
    p.add_argument("--require-credentials", action="store_true",
                   help="an unset credential is a problem even where only simulated adapters would use it "
                        "(check the shell a live deployment will start from)")
    add_format_argument(p)
    p.set_defaults(func=cmd_validate)


def check(config: str, *, require_credentials: bool = False) -> dict[str, Any]:
    """Validate ``config``: ``{"file", "valid", "kind", "problems": [{file, line, path, message}],
    "notes": [...], "deployment": summary or None}``."""
    problems: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        cfg = load_config(config)
    except ConfigError as e:
        problems = [{"file": i.file or config, "line": i.line, "path": i.path, "message": i.message} for i in e.issues]
        return {"file": config, "valid": False, "kind": None, "problems": problems, "notes": [], "deployment": None}
    # a credential is read when a gateway connects: one that is unset makes a live venue fail
    # then, so it is a problem now; the simulated adapter reads none (a note, unless required)
    for path, env, needed in missing_credentials(cfg):
        if needed or require_credentials:
            why = "a live adapter reads it when its gateway connects" if needed else "--require-credentials"
            problems.append({"file": config, "line": None, "path": path,
                             "message": f"environment variable {env} (a credential) is not set ({why})"})
        else:
            notes.append(f"{path} refers to ${env}, which is not set in this shell "
                         "(only simulated adapters use this account: not needed now)")
    if not is_catalogue(cfg):  # a live venue calendar that is about to end
        from ..runtime.calendars import calendar_notes
        from ..runtime.contract_checks import contract_checks

        notes.extend(calendar_notes(cfg))
        notes.extend(contract_checks(cfg)[1])
    return {"file": config, "valid": not problems, "kind": "catalogue" if is_catalogue(cfg) else "deployment",
            "problems": problems, "notes": notes, "deployment": deployment_summary(cfg)}


def problem_line(p: dict[str, Any]) -> str:
    where = f"{p['file']}:{p['line']}" if p.get("line") else p["file"]
    return f"{where}: {p['path']}: {p['message']}" if p.get("path") else f"{where}: {p['message']}"


def summary_tables(d: dict[str, Any]) -> list[Table]:
    """A valid deployment's summary: overview, gateways, strategies, accounts."""
    overview = [("name", d["name"]), ("description", d["description"]),
                ("venues", ", ".join(d["venues"])), ("instruments", d["instruments"]),
                ("ledger", f"{d['ledger']['path']} ({d['ledger']['shards']} shard(s) by {d['ledger']['shard_by']})"),
                ("ray", f"{d['ray']['address'] or 'embedded'}, namespace {d['ray']['namespace']}"
                        f"{', dashboard' if d['ray']['dashboard'] else ''}"
                        f"{', /metrics on port ' + str(d['ray']['metrics_port']) if d['ray']['metrics_port'] else ''}")]
    return [
        Table("deployment", ("field", "value"), overview),
        Table("accounts", ("account", "currency", "capital"), [(a["id"], a["currency"], a["capital"]) for a in d["accounts"]]),
        Table("gateways", ("gateway", "venue", "adapter", "feed", "process"),
              [(g["name"], g["venue"], g["adapter"], g["feed"], g["process"]) for g in d["gateways"]]),
        Table("strategies", ("strategy", "class", "leg_a", "leg_b", "priority", "enabled"),
              [(s["name"], s["class"], s["leg_a"], s["leg_b"], s["priority"], s["enabled"]) for s in d["strategies"]]),
    ]


def cmd_validate(args: argparse.Namespace) -> int:
    fmt = output_format(args)
    res = check(args.config, require_credentials=args.require_credentials)
    if fmt == "json":
        emit(fmt, res, [])
        return 0 if res["valid"] else 1
    if not res["valid"]:
        if fmt == "csv":
            emit(fmt, res, [Table("problems", ("file", "line", "path", "message"),
                                  [(p["file"], p["line"], p["path"], p["message"]) for p in res["problems"]])])
        for p in res["problems"]:
            print(problem_line(p), file=sys.stderr)
        n = len(res["problems"])
        print(f"{args.config}: {n} problem{'s' if n != 1 else ''} found", file=sys.stderr)
        return 1
    if args.quiet:
        return 0
    emit(fmt, res, summary_tables(res["deployment"]))
    if fmt == "table":
        for note in res["notes"]:
            print(f"note: {note}")
        if res["kind"] == "catalogue":
            print(f"{args.config}: valid catalogue (venues and instruments for deployments to include; "
                  "not a deployment: it has no strategies)")
        else:
            print(f"{args.config}: valid")
    return 0
