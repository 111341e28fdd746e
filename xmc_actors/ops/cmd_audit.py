"""``xmc audit trace|query|export|report|reconcile``: read the ledger (also while a deployment writes
it); ``reconcile --write`` also backfills it, offline."""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .cli import CliError, non_negative_int
from .output import Table, add_format_argument, emit, output_format, render_tables


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("audit", help="trace, query, export and report on the audit ledger")
    asub = p.add_subparsers(dest="audit_command", metavar="AUDIT_COMMAND")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--ledger", help="ledger directory of shard files (default: from --config, else var/ledger)")
        q.add_argument("--config", help="deployment YAML whose ledger.path to read")

    def filters(q: argparse.ArgumentParser) -> None:
        for name in ("account", "strategy", "venue", "instrument"):
            q.add_argument(f"--{name}", default="")
        q.add_argument("--kind", action="append", default=[], help="event kind (repeatable)")
        q.add_argument("--decision", default="", help="decision id")
        q.add_argument("--since", help="from (ns or ISO time, UTC)")
        q.add_argument("--until", help="until, exclusive (ns or ISO time, UTC)")
        q.add_argument("--outcome", default="", help="pair outcome: HEDGED, ROLLED_BACK, ESCALATED, REFUSED, OPEN")

    t = asub.add_parser("trace", help="the whole chain of one decision, with per-hop latency")
    t.add_argument("decision_id")
    add_format_argument(t, json_alias=True)
    t.add_argument("--payload", action="store_true", help="show each event's payload")
    common(t)
    t.set_defaults(func=cmd_trace)

    q = asub.add_parser("query", help="events matching filters, as a table, CSV or JSON")
    common(q)
    filters(q)
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.add_argument("--limit", type=non_negative_int, default=200, help="rows (0: all)")
    q.set_defaults(func=cmd_query)

    e = asub.add_parser("export", help="export events to csv, parquet or json (lines)")
    common(e)
    filters(e)
    e.add_argument("--format", choices=("csv", "parquet", "json"), required=True)
    e.add_argument("--out", "-o", required=True, help="output file")
    e.add_argument("--payload-json", action="store_true", help="parquet: payload as JSON text (default: msgpack bytes)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    e.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="DuckDB's working memory while sorting, e.g. 256MB (the default); beyond it, it spills to a "
                        "temporary directory")
    e.set_defaults(func=cmd_export)

    r = asub.add_parser("report", help="one self-contained HTML report for a time range")
    common(r)
    r.add_argument("--since")
    r.add_argument("--until")
    r.add_argument("--out", "-o", default="audit-report.html")
    r.add_argument("--title", default="xmc-actors audit report")
    r.set_defaults(func=cmd_report)
    ac = asub.add_parser("acceptance", help="the acceptance report (验收): each strategy's execution figures against "
                                            "the deployment's targets, stage history, stress result; HTML and JSON")
    common(ac)
    ac.add_argument("--strategy", action="append", default=[], help="a strategy to report (repeatable; default: all)")
    ac.add_argument("--since", help="from (ns or ISO time, UTC)")
    ac.add_argument("--until", help="until, exclusive (ns or ISO time, UTC)")
    ac.add_argument("--targets", metavar="CONFIG", default=None,
                    help="deployment file whose acceptance: targets to use (default: --config's; none: the defaults)")
    ac.add_argument("--stress", metavar="FILE", default=None, help="a stress report to attach (xmc stress --json FILE)")
    ac.add_argument("--out", "-o", default="acceptance.html", help="the HTML report (default acceptance.html)")
    ac.add_argument("--json", dest="json_file", metavar="FILE", default=None,
                    help="the report as JSON (default: the HTML file's name with .json)")
    ac.set_defaults(func=cmd_acceptance)
    rc = asub.add_parser("reconcile", help="check the trail against the venues' own records; --write backfills "
                                           "what it lacks (deployment stopped)")
    common(rc)
    rc.add_argument("--venue-state", action="append", default=[], metavar="DIR",
                    help="a simulated venue's state_dir: its journals (*.venue) are the venue's record (repeatable; "
                         "default: the state_dirs of --config's gateways)")
    rc.add_argument("--trail-only", action="store_true",
                    help="only check the trail against the VENUE_DROP_COPY events it holds itself (blind to a fill "
                         "whose drop copy was lost with it)")
    rc.add_argument("--since", help="venue records: trail fills before this are of an earlier run, not expected at "
                                    "the venue; --trail-only: drop-copy rows from (ns or ISO time, UTC)")
    rc.add_argument("--until", help="--trail-only: drop-copy rows until, exclusive")
    rc.add_argument("--write", action="store_true",
                    help="store the missing events in the ledger (needs the deployment stopped; idempotent)")
    add_format_argument(rc, json_alias=True)
    rc.set_defaults(func=cmd_reconcile)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _config(args: argparse.Namespace):  # noqa: ANN202
    from ..runtime.config import ConfigError, load_config
    try:
        return load_config(args.config)
    except ConfigError as e:
        raise CliError(f"{args.config}: configuration not valid:\n{e}", code=1) from None


def _ledger_dir(args: argparse.Namespace) -> Path:
    if args.ledger:
        return Path(args.ledger)
    if args.config:
        return Path(_config(args).ledger.path)
    return Path("var/ledger")


@contextmanager
def _open(args: argparse.Namespace) -> Iterator[Any]:
    """The ledger, read-only, for the ``with`` block. A shard that cannot be read — on opening,
    or met by a query in the block — ends the command with ``xmc: <file>: <reason>``, exit 1."""
    import duckdb

    from ..ledger.audit import READER_MEMORY_LIMIT, AuditReader, parse_size
    from ..ledger.store import LedgerError
    limit = getattr(args, "memory_limit", None) or READER_MEMORY_LIMIT
    try:
        parse_size(limit)
    except ValueError as e:
        raise CliError(f"--memory-limit: {e}") from None
    try:
        with AuditReader(_ledger_dir(args), memory_limit=limit) as reader:
            for f in reader.snapshots:
                print(f"note: {f} is held by a running writer; reading a snapshot copy", file=sys.stderr)
            yield reader
    except LedgerError as e:
        raise CliError(f"{e}\n(see docs/operations.md, section 6: a damaged ledger file)", code=1) from None
    except duckdb.OutOfMemoryException as e:
        raise CliError(f"DuckDB ran out of its working memory ({limit}; {str(e).splitlines()[0]}): give it more "
                       "with --memory-limit", code=1) from None


def _filters(args: argparse.Namespace):  # noqa: ANN202
    from ..ledger.audit import Filters, parse_time
    from ..model.events import EventKind
    kinds = tuple(k.upper() for k in args.kind)
    bad = [k for k in kinds if k not in EventKind.__members__]
    if bad:
        raise CliError(f"--kind {bad[0]}: unknown event kind (one of {', '.join(EventKind.__members__)})")
    try:
        since, until = parse_time(args.since), parse_time(args.until)
    except ValueError as e:
        raise CliError(f"--since/--until: {e}") from None
    return Filters(account=args.account, strategy=args.strategy, venue=args.venue, instrument=args.instrument,
                   kind=kinds, decision=args.decision, since_ns=since, until_ns=until, outcome=args.outcome)


TRACE_CSV = ("event_id", "parent_id", "ts_ns", "time_utc", "clock", "hop_us", "latency_us", "kind", "actor", "venue",
             "instrument", "order_id", "outcome", "reason", "payload")


def cmd_trace(args: argparse.Namespace) -> int:
    from ..ledger.audit import fmt_ns
    fmt = output_format(args)
    with _open(args) as reader:
        tr = reader.trace(args.decision_id)
    if not tr.hops:
        raise CliError(f"decision {args.decision_id!r}: no events in the ledger", code=1)
    if fmt != "table":  # json: the whole trace; csv: one row per event (payload as JSON)
        emit(fmt, {"decision_id": tr.decision_id, "outcome": tr.outcome, "total_us": tr.total_us,
                   "mixed_clocks": tr.mixed_clocks, "events": [h.__dict__ for h in tr.hops]},
             [Table("trace", TRACE_CSV, [tuple(fmt_ns(h.ts_ns) if c == "time_utc" else getattr(h, c) for c in TRACE_CSV)
                                         for h in tr.hops])])
        return 0
    if tr.mixed_clocks:
        market = sum(h.clock == "market" for h in tr.hops)
        print(f"decision {tr.decision_id}: {len(tr.hops)} events, outcome {tr.outcome}, "
              f"{tr.total_us / 1000:.3f} ms first to last on the wall clock; {market} events (clock 'market') "
              "carry a venue's or a replay's time, so hops are measured within each clock only")
    else:
        print(f"decision {tr.decision_id}: {len(tr.hops)} events, outcome {tr.outcome}, "
              f"{tr.total_us / 1000:.3f} ms first to last")
    market = [int(m) for h in tr.hops if isinstance(m := (h.payload or {}).get("market_ts_ns"), int)]
    if market:  # a replay: its gateways and strategy decided in the market's time (payload market_ts_ns)
        span = fmt_ns(min(market)) + (f" to {fmt_ns(max(market))}" if max(market) != min(market) else "")
        print(f"market time (replayed): {span} UTC, on {len(market)} of the events")
    head = ("time (UTC)", "+ms", "hop µs", "lat µs", "kind", "actor", "venue", "instrument", "order", "outcome", "reason")
    t0 = {c: min(h.ts_ns for h in tr.hops if h.clock == c) for c in {h.clock for h in tr.hops}}
    rows = [(fmt_ns(h.ts_ns), f"{(h.ts_ns - t0[h.clock]) / 1e6:.3f}", "" if h.hop_us is None else f"{h.hop_us:.0f}",
             "" if h.latency_us is None else f"{h.latency_us:.0f}", h.kind, h.actor, h.venue, h.instrument,
             h.order_id, h.outcome, h.reason) for h in tr.hops]
    if tr.mixed_clocks:
        head = (*head, "clock")
        rows = [(*r, h.clock) for r, h in zip(rows, tr.hops)]
    render_tables([Table("trace", head, rows, title=f"{tr.decision_id}, hop by hop")])
    if args.payload:
        for h in tr.hops:
            print(f"{h.event_id} {h.kind}: {json.dumps(h.payload, default=str)}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    f = _filters(args)
    with _open(args) as reader:
        t = reader.query(f, limit=args.limit or None)
    rows = t.to_pylist()
    if args.format == "json":  # one JSON array (json.loads reads it whole), one event per line
        out = sys.stdout
        out.write("[")
        for i, r in enumerate(rows):
            r["payload"] = json.loads(r["payload"])
            out.write(("\n" if i == 0 else ",\n") + json.dumps(r, ensure_ascii=False, default=str))
        out.write("\n]\n")
    elif args.format == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=t.column_names)
        w.writeheader()
        w.writerows(rows)
        sys.stdout.write(buf.getvalue())
    else:
        cols = ("time_utc", "kind", "decision_id", "strategy", "account", "venue", "instrument", "order_id",
                "outcome", "latency_us", "reason")
        render_tables([Table("events", cols, [tuple("" if r[c] is None else (f"{r[c]:.0f}" if c == "latency_us" else r[c])
                                                   for c in cols) for r in rows])], empty="no events match")
        print(f"({len(rows)} rows{'; --limit reached' if args.limit and len(rows) == args.limit else ''})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Streams (bounded memory, any ledger size), with a progress bar on stderr."""
    f = _filters(args)
    with _open(args) as reader, _progress_bar(f"export {args.format}", not args.no_progress) as progress:
        n = reader.export(Path(args.out), args.format, f, payload="json" if args.payload_json else "auto",
                          progress=progress)
    print(f"{args.out}: {n:,} events ({args.format})")
    return 0


@contextmanager
def _progress_bar(what: str, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on stderr for the ``with`` block; yields ``update(done, total)``
    (``None`` when not ``enabled``). Before the first rows arrive (``done`` 0) it says that
    the ledger is being read and sorted. On a stderr that is not a terminal rich draws it once,
    at the end."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
        TimeRemainingColumn,
    )
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            phase = "reading and sorting" if done == 0 and total else "writing"
            bar.update(task, completed=done, total=total, description=f"{what}: {phase}")
        yield update


def cmd_report(args: argparse.Namespace) -> int:
    from ..ledger.audit import parse_time
    from ..ledger.report import build_report
    try:
        since, until = parse_time(args.since), parse_time(args.until)
    except ValueError as e:
        raise CliError(f"--since/--until: {e}") from None
    with _open(args) as reader:
        page = build_report(reader, since, until, title=args.title)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    print(f"{out}: report written ({len(page) / 1024:.0f} KiB)")
    return 0


def cmd_acceptance(args: argparse.Namespace) -> int:
    """``xmc audit acceptance``: exit 0 accepted, 1 not accepted (the report says why)."""
    import json

    from ..ledger.acceptance import build_html, read_acceptance
    from ..ledger.audit import parse_time
    try:
        since, until = parse_time(args.since), parse_time(args.until)
    except ValueError as e:
        raise CliError(f"--since/--until: {e}") from None
    cfg = None
    if args.targets or args.config:
        from ..runtime.config import ConfigError, load_config
        try:
            cfg = load_config(args.targets or args.config)
        except ConfigError as e:
            raise CliError(f"{args.targets or args.config}: configuration not valid:\n{e}", code=1) from None
    stress = None
    if args.stress:
        try:
            stress = json.loads(Path(args.stress).read_text())
        except (OSError, ValueError) as e:
            raise CliError(f"--stress {args.stress}: not a stress report ({e})") from None
        if not isinstance(stress, dict) or "passed" not in stress:
            raise CliError(f"--stress {args.stress}: not a stress report (no 'passed'; write one with xmc stress --json)")
    known = {s.name for s in cfg.strategies} if cfg is not None else None
    if known is not None:
        bad = [s for s in args.strategy if s not in known]
        if bad:
            raise CliError(f"--strategy {bad[0]!r}: not in {args.targets or args.config} ({', '.join(sorted(known))})")
    with _open(args) as reader:
        doc = read_acceptance(reader, strategies=args.strategy or None, since_ns=since, until_ns=until,
                              config=cfg.acceptance if cfg is not None else None,
                              stages={s.name: s.stage for s in cfg.strategies} if cfg is not None else None,
                              stress=stress, title=f"acceptance: {cfg.name}" if cfg is not None else "acceptance")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_html(doc), encoding="utf-8")
    js = Path(args.json_file) if args.json_file else out.with_suffix(".json")
    js.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    print(f"{'ACCEPTED' if doc['accepted'] else 'NOT ACCEPTED'}: {out} and {js} written")
    for name, s in doc["strategies"].items():
        print(f"  {name}: {'accepted' if s['accepted'] else 'not accepted'}: {s['why']}")
    if doc["stress"] is not None:
        print(f"  stress: {'passed' if doc['stress']['passed'] else 'FAILED'}")
    for r in doc["reasons"]:
        if ":" not in r:
            print(f"  {r}")
    return 0 if doc["accepted"] else 1


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Exit 0: the trail agrees with the venues' own records (or ``--write`` stored what it lacked
    and nothing else is wrong); 1: mismatches (listed), or the ledger or a venue record cannot be
    read or written. Without a venue record (no ``--venue-state``, no journals in ``--config``)
    or with ``--trail-only``: the trail against the ``VENUE_DROP_COPY`` events it holds."""
    from ..ledger.audit import parse_time
    from ..ledger.venue_records import VenueRecordError, journal_sources, sources_from_config
    try:
        since, until = parse_time(args.since), parse_time(args.until)
    except ValueError as e:
        raise CliError(f"--since/--until: {e}") from None
    sources: list = []
    without: list[str] = []
    if not args.trail_only:
        try:
            for d in args.venue_state:
                sources += journal_sources(d)
            if args.config and not args.venue_state:
                sources, without = sources_from_config(_config(args))
        except VenueRecordError as e:
            raise CliError(str(e), code=1) from None
    if not sources:
        if not args.trail_only:
            why = "".join(f"\n  {w}" for w in without)
            print("xmc: warning: no venue record to reconcile against (give --venue-state DIR, or --config with "
                  "gateways that have params.state_dir)" + why + "\nchecking the trail against the VENUE_DROP_COPY "
                  "events it holds itself: blind to a fill whose drop copy was lost along with it", file=sys.stderr)
        return _reconcile_trail_only(args, since, until)
    if until is not None:
        raise CliError("--until: only with --trail-only (venue records are compared whole)")
    return _reconcile_venues(args, sources, without, since)


def _reconcile_venues(args: argparse.Namespace, sources: list, without: list[str], since: int | None) -> int:
    import time

    from ..ledger.reconcile import compare_with_venues
    from ..ledger.venue_records import VenueRecordError
    try:
        records = [s.load() for s in sources]
    except VenueRecordError as e:
        raise CliError(str(e), code=1) from None
    with _open(args) as reader:
        files = list(reader.files)
        trail = reader.events(kinds=["ORDER_SENT", "ORDER_REPORT", "VENUE_DROP_COPY"])
    rep = compare_with_venues(trail, records, since_ns=since, now_ns=time.time_ns(), actor="xmc audit reconcile")
    stored = _backfill(args, files, rep.backfill) if rep.backfill and args.write else 0
    left = rep.unrepairable() if args.write else {k: n for k, n in rep.counts().items() if n}
    for w in without:
        print(f"xmc: warning: not checked: {w}", file=sys.stderr)
    fmt = output_format(args)
    if fmt == "json":
        json.dump({**rep.to_dict(), "stored": stored, "not_checked": without}, sys.stdout, indent=1,
                  ensure_ascii=False, default=str)
        print()
        return 1 if left else 0
    head = ("venue", "orders", "fills", "trail fills", "missing fills", "unknown fills", "stored twice",
            "no ORDER_SENT", "dup order ids", "status differs", "source")
    per_venue = [(v.venue, v.orders, v.fills, v.trail_fills, *v.counts().values(), "; ".join(v.sources))
                 for v in rep.venues.values()]
    rows = _mismatch_rows(rep)
    if fmt == "csv":
        emit("csv", None, [Table("venues", head, per_venue),
                           Table("mismatches", ("venue", "what", "order", "trade", "qty", "price", "time (UTC)"), rows)])
        return 1 if left else 0
    print(f"{len(records)} venue records checked against {rep.trail_events} order events of the trail:")
    _print_table(head, per_venue)
    for v in rep.venues.values():
        if v.out_of_scope_fills:
            print(f"{v.venue}: {v.out_of_scope_fills} trail fills of orders the venue's record does not hold, from "
                  "before it begins (an earlier run), not compared")
        if v.unreadable or v.torn_bytes:
            print(f"{v.venue}: {v.unreadable} unreadable records, {v.torn_bytes} bytes of a torn last record "
                  "in the venue's record (skipped)")
    if rows:
        print()
        _print_table(("venue", "what", "order", "trade", "qty", "price", "time (UTC)"), rows)
    if args.write:
        print(f"{len(rep.backfill)} events to backfill, {stored} stored")
    elif rep.backfill:
        print(f"{len(rep.backfill)} events would complete the trail: run again with --write, with the deployment "
              "stopped, to store them")
    if left:
        print("not repairable by a backfill: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in left.items())
              if args.write else "mismatches: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in left.items()))
    else:
        print("the trail agrees with the venues" + (" (after the backfill)" if stored else ""))
    return 1 if left else 0


def _mismatch_rows(rep: Any) -> list[tuple[Any, ...]]:
    """Every difference between the trail and the venues' records, one row each."""
    from ..ledger.audit import fmt_ns

    rows: list[tuple[Any, ...]] = []
    for v in rep.venues.values():
        rows += [(v.venue, "fill at the venue, not in the trail", f.client_order_id, f.trade_id, f.qty, f.price,
                  fmt_ns(f.ts_ns)) for f in v.missing_fills]
        rows += [(v.venue, "fill in the trail, unknown to the venue", f.client_order_id, f.trade_id, f.qty, "",
                  fmt_ns(f.ts_ns)) for f in v.unknown_fills]
        rows += [(v.venue, f"fill stored {n} times in the trail", o, t, "", "", "") for o, t, n in v.duplicate_fills]
        rows += [(v.venue, "order at the venue, no ORDER_SENT", o.client_order_id, "", o.qty, o.price or "",
                  fmt_ns(o.ts_ns)) for o in v.orders_without_sent]
        rows += [(v.venue, "client order id held twice at the venue", o, "", "", "", "") for o in v.duplicate_order_ids]
        rows += [(v.venue, f"venue status {a}, trail {b or 'none'}", o, "", "", "", "") for o, a, b in v.status_differs]
    return rows


def _reconcile_trail_only(args: argparse.Namespace, since: int | None, until: int | None) -> int:
    import time

    from ..ledger.audit import fmt_ns
    from ..ledger.reconcile import drop_copy_rows, reconcile
    with _open(args) as reader:
        files = list(reader.files)
        trail = reader.events(kinds=["ORDER_SENT", "ORDER_REPORT", "RECONCILE"])
        venue_rows = reader.events(kinds=["VENUE_DROP_COPY"], since_ns=since)
    drop = [r for r in drop_copy_rows(venue_rows) if until is None or int(r.get("ts_ns") or 0) < until]
    missing = reconcile(drop, trail, now_ns=time.time_ns(), actor="xmc audit reconcile")
    stored = 0
    if missing and args.write:
        stored = _backfill(args, files, missing)
    fmt = output_format(args)
    missing_rows = [(fmt_ns(e.ts_ns), e.kind.value, e.decision_id, e.venue, str(e.payload.get("client_order_id", "")),
                     e.reason) for e in missing]
    if fmt == "csv":
        emit("csv", None, [Table("missing", ("time (UTC)", "kind", "decision", "venue", "order", "reason"), missing_rows)])
    elif fmt == "json":
        json.dump({"mode": "trail-only", "drop_copy_rows": len(drop), "trail_orders_events": len(trail),
                   "missing": len(missing), "stored": stored, "events": [e.model_dump(mode="json") for e in missing]},
                  sys.stdout, indent=1, ensure_ascii=False)
        print()
    else:
        print(f"trail only: {len(drop)} drop-copy rows checked against {len(trail)} order events of the trail: "
              f"{len(missing)} missing" + (f", {stored} stored" if args.write else ""))
        if missing:
            _print_table(("time (UTC)", "kind", "decision", "venue", "order", "reason"), missing_rows)
            if not args.write:
                print("run again with --write, with the deployment stopped, to store them")
    return 0 if not missing or args.write else 1


def _backfill(args: argparse.Namespace, files: list[Path], missing: list) -> int:  # noqa: ANN001
    """Append reconciled events to the shard the ledger client would have sent them to."""
    import re
    import time

    from ..ledger.client import shard_index
    from ..ledger.store import LedgerError, LedgerStore
    shard_by = _config(args).ledger.shard_by if args.config else "strategy"
    by_index = {int(m.group(1)): f for f in files if (m := re.fullmatch(r"shard-(\d+)\.duckdb", f.name))}
    if sorted(by_index) != list(range(len(by_index))) or not by_index:
        raise CliError(f"{files[0].parent}: --write needs the shard-<n>.duckdb files of one ledger "
                       f"(found {', '.join(f.name for f in files)})", code=1)
    groups: dict[int, list] = {}
    for e in missing:
        groups.setdefault(shard_index(e, shard_by, len(by_index)), []).append(e)
    stored = 0
    for i, evs in sorted(groups.items()):
        try:
            store = LedgerStore(by_index[i], actor="xmc audit reconcile")
        except LedgerError as e:
            if "held by another process" not in str(e):
                raise CliError(f"cannot write: {e}", code=1) from None
            raise CliError(f"{by_index[i]}: cannot write ({e}); is the deployment still running? "
                           "Stop it first: reconcile --write works on a stopped ledger", code=1) from None
        try:
            res = store.append_events(evs, stored_ns=time.time_ns())
        finally:
            store.close()
        if res.refused:
            raise CliError(f"{by_index[i]}: {len(res.refused)} reconciled events refused: {res.refused[0]}", code=1)
        stored += res.stored
    return stored


def _print_table(head: tuple[str, ...], rows: list[tuple]) -> None:
    widths = [max([len(str(h))] + [len(str(r[i])) for r in rows]) for i, h in enumerate(head)]
    widths = [min(w, 48) for w in widths]
    print("  ".join(str(h).ljust(w) for h, w in zip(head, widths)))
    for r in rows:
        print("  ".join(str(v)[:w].ljust(w) for v, w in zip(r, widths)))
