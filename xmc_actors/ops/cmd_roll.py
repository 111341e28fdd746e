"""Roll a position to the next contract month as one decision: ``xmc roll``.

``xmc roll --strategy S --long SHFE.cu2701=2 --short COMEX.HGH7=2 --price SHFE.cu2701=71990
--price SHFE.cu2702=72110 --price COMEX.HGH7=4.5005 --price COMEX.HGK7=4.5495 --operator NAME
[--wait SECONDS]`` plans the roll of the position (``core.contracts.plan_roll``: the far contract
of each leg, the window, the deadline), builds the request (``core.roll.build_roll``: one child
calendar spread per venue) and hands it to the running deployment's coordinator
(``PairCoordinator.submit_roll``). It prints the roll's decision id (``xmc audit trace ID``
follows it) and, with ``--wait``, its outcome (``PairCoordinator.roll_outcome``).

Everything is checked before anything is sent, each error naming the argument: the syntax of
every leg, lots and price (no Ray), then against the running deployment's configuration (its
registry): the strategy, each contract (a contract of a product the deployment lists; the near
and the far contract must both be instruments the deployment trades), a far contract given as
``NEAR:FAR`` that is not the plan's, the account per venue, a limit price for each of the four
contracts, the deadline (not in the past, not after the venue's own deadline). While the
deployment runs its operator API the command goes through its authorisation (action ``order``,
as a batch: trader and above; ops/operator_auth.py).

Exit codes: 0 ROLLED (with ``--wait``) or accepted; 1 ESCALATED (a red alert names what did not
roll); 2 refused, nothing sent; 3 no deployment to talk to; 4 the coordinator or the registry did
not answer within ``--timeout``; 5 refused by the operator API's authorisation; 6 a second
operator must confirm (not used by a roll today); 7 still working when ``--wait`` ran out (it goes on).
"""
from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping, Sequence
from zoneinfo import ZoneInfo

from .cli import CliError, positive_float

EXIT_ESCALATED = 1
EXIT_UNDECIDED = 7  # --wait ran out: the roll goes on in the coordinator
_CONTRACT = re.compile(r"^[A-Z0-9]{2,10}\.[A-Za-z0-9\-]{1,40}$")
_ID = re.compile(r"^[A-Za-z0-9_\-]{1,70}$")
_NS = 1_000_000_000


@dataclass(frozen=True)
class LegArg:
    """One ``--long``/``--short``: the contract held, an expected far contract or None, signed lots."""

    near: str
    far: str | None
    qty: int

    @property
    def venue(self) -> str:
        return self.near.split(".", 1)[0]


@dataclass(frozen=True)
class RollArgs:
    """The command's arguments, checked for syntax (no deployment needed)."""

    strategy: str
    legs: tuple[LegArg, ...]
    prices: dict[str, Decimal]
    accounts: dict[str, str]
    decision_id: str | None
    deadline: dt.datetime | dt.date | None


def _leg(side: str) -> Any:
    def parse(text: str) -> tuple[str, str]:
        return side, text
    parse.__name__ = "leg"
    return parse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("roll", help="roll a position from its contract month to the next as one traced decision "
                                    "(one calendar spread per venue)")
    p.add_argument("--strategy", help="the strategy the position and the roll are booked to (required)")
    p.add_argument("--long", dest="legs", action="append", type=_leg("long"), default=[], metavar="NEAR[:FAR]=LOTS",
                   help="a leg held long: the contract held (e.g. SHFE.cu2701), optionally the far contract "
                        "you expect (checked against the plan), and the lots (> 0); legs A, B in the order given")
    p.add_argument("--short", dest="legs", action="append", type=_leg("short"), default=[], metavar="NEAR[:FAR]=LOTS",
                   help="a leg held short, as --long")
    p.add_argument("--price", action="append", default=[], metavar="CONTRACT=PRICE",
                   help="the limit price of each near and far contract (all four for a pair of futures)")
    p.add_argument("--account", action="append", default=[], metavar="VENUE=ACCOUNT",
                   help="the account holding the position on VENUE (default: the strategy's account on that venue, "
                        "else the deployment's one account listing it)")
    p.add_argument("--id", dest="decision_id", default=None, metavar="DECISION_ID",
                   help="the roll's decision id (1-70 letters, digits, '_' or '-'; default roll-STRATEGY-UTCTIME)")
    p.add_argument("--deadline", default=None, metavar="WHEN",
                   help="when the roll must be done: a time with its zone (2026-12-30T14:00+08:00, ...Z) or a date "
                        "(the end of that day in the binding venue's zone); default: the end of the plan's roll_by "
                        "day. After it the roll is ESCALATED. Not in the past, not after the venue's own deadline")
    p.add_argument("--operator", help="who orders the roll (required; recorded; with an operator API running: the "
                                      "token's operator, which it may only repeat)")
    p.add_argument("--wait", type=positive_float, default=None, metavar="SECONDS",
                   help="wait up to SECONDS for the outcome (ROLLED exit 0, ESCALATED exit 1, still working exit 7)")
    p.add_argument("--dry-run", action="store_true", help="check everything and print the plan; send nothing")
    from .operator_auth import add_token_argument

    add_token_argument(p)
    p.add_argument("--address", default=None, help="Ray address HOST:PORT of a deployment on a cluster "
                                                   "(default: the deployment's own address file)")
    p.add_argument("--namespace", default=None, help="the deployment's Ray namespace")
    p.add_argument("--timeout", type=positive_float, default=30.0,
                   help="seconds to wait for the coordinator to take the roll")
    p.set_defaults(func=cmd_roll)


# ------------------------------------------------------------------ syntax (no deployment)
def _pairs(values: Sequence[str], option: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, val = v.partition("=")
        key, val = key.strip(), val.strip()
        if not sep or not key or not val:
            raise CliError(f"{option} {v!r}: expected {what}")
        if key in out:
            raise CliError(f"{option} {key}: given twice")
        out[key] = val
    return out


def _contract_name(text: str, option: str) -> str:
    if not _CONTRACT.match(text):
        raise CliError(f"{option} {text!r}: not a contract id VENUE.SYMBOL (e.g. SHFE.cu2701, COMEX.HGH7)")
    return text


def parse_deadline(text: str) -> dt.datetime | dt.date:
    """``--deadline``: an aware datetime, or a date. CliError naming the argument otherwise."""
    t = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
            return dt.date.fromisoformat(t)
        when = dt.datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
    except ValueError:
        raise CliError(f"--deadline {text!r}: not a date (2026-12-30) or a time (2026-12-30T14:00+08:00)") from None
    if when.tzinfo is None:
        raise CliError(f"--deadline {text!r}: give its time zone (Z or +08:00): a time without one is ambiguous")
    return when


def parse_args(args: argparse.Namespace) -> RollArgs:
    """Check the arguments' syntax: CliError (exit 2) naming the argument; nothing is sent."""
    strategy = (args.strategy or "").strip()
    if not strategy:
        raise CliError("--strategy NAME is required: the roll is booked to the strategy holding the position")
    if not args.legs:
        raise CliError("--long/--short: no leg to roll (e.g. --long SHFE.cu2701=2 --short COMEX.HGH7=2)")
    if len(args.legs) > 2:
        raise CliError(f"--long/--short: {len(args.legs)} legs: a position to roll has one or two legs (A, B)")
    legs = []
    for side, text in args.legs:
        opt = f"--{side}"
        spec, sep, lots = text.rpartition("=")
        if not sep or not spec.strip():
            raise CliError(f"{opt} {text!r}: expected NEAR[:FAR]=LOTS (e.g. SHFE.cu2701=2)")
        near, _, far = spec.strip().partition(":")
        near = _contract_name(near.strip(), opt)
        far_id = _contract_name(far.strip(), opt) if far.strip() else None
        try:
            n = int(lots.strip())
        except ValueError:
            raise CliError(f"{opt} {near}: lots {lots.strip()!r} is not a whole number") from None
        if n <= 0:
            raise CliError(f"{opt} {near}: lots {n} is not positive (--long or --short says the direction)")
        if far_id is not None and far_id.split(".", 1)[0] != near.split(".", 1)[0]:
            raise CliError(f"{opt} {near}:{far_id}: the far contract must be on the near contract's venue")
        legs.append(LegArg(near, far_id, n if side == "long" else -n))
    venues = [lg.venue for lg in legs]
    if len(set(venues)) != len(venues):
        raise CliError(f"--long/--short: two legs on {venues[0]}: a roll has one leg per venue (each becomes one "
                       "calendar spread on its venue)")
    prices: dict[str, Decimal] = {}
    for inst, text in _pairs(args.price, "--price", "CONTRACT=PRICE (e.g. SHFE.cu2702=72110)").items():
        _contract_name(inst, "--price")
        try:
            px = Decimal(text)
        except InvalidOperation:
            raise CliError(f"--price {inst}: {text!r} is not a number") from None
        if not px.is_finite() or px <= 0:
            raise CliError(f"--price {inst}: {text} is not a positive price")
        prices[inst] = px
    accounts = _pairs(args.account, "--account", "VENUE=ACCOUNT (e.g. SHFE=cn-main)")
    did = args.decision_id
    if did is not None and not _ID.match(did):
        raise CliError(f"--id {did!r}: 1-70 letters, digits, '_' or '-'")
    deadline = parse_deadline(args.deadline) if args.deadline else None
    return RollArgs(strategy, tuple(legs), prices, accounts, did, deadline)


# ------------------------------------------------------- against the deployment (no Ray)
def default_decision_id(strategy: str, plan: Any) -> str:
    """The roll's id when ``--id`` is not given: made from what is rolled (the strategy, the
    plan's roll_by, the near contracts and their lots), not from the time, so that running the
    same command again (after a timeout, say) is the same decision, refused as a duplicate,
    instead of a second roll of the same position. Another roll of the same holdings on the
    same day needs its own ``--id``."""
    import hashlib

    stem = re.sub(r"[^A-Za-z0-9_\-]", "-", strategy)[:36]
    what = ";".join(sorted(f"{lg.near.id}={lg.qty}" for lg in plan.legs))
    return f"roll-{stem}-{plan.roll_by:%Y%m%d}-{hashlib.sha256(what.encode()).hexdigest()[:10]}"


def _account(cfg: Any, ra: RollArgs, venue: str) -> str:
    listed = {a.id: a for a in cfg.accounts}
    given = ra.accounts.get(venue)
    if given is not None:
        if listed and given not in listed:
            raise CliError(f"--account {venue}={given}: unknown account; the deployment's accounts: "
                           f"{', '.join(sorted(listed))}")
        if given in listed and venue not in listed[given].venues:
            raise CliError(f"--account {venue}={given}: that account trades on {', '.join(listed[given].venues)}, "
                           f"not {venue}")
        return given
    strat = next((s for s in cfg.strategies if s.name == ra.strategy), None)
    if strat is not None:
        mine = {leg.account for leg in strat.legs if str(leg.instrument).split(".", 1)[0] == venue}
        if len(mine) == 1:
            return mine.pop()
    on_venue = sorted(a.id for a in cfg.accounts if venue in a.venues)
    if len(on_venue) == 1:
        return on_venue[0]
    raise CliError(f"--account {venue}=ACCOUNT is needed: the strategy names no account on {venue} and the deployment "
                   f"lists {'the accounts ' + ', '.join(on_venue) if on_venue else 'no account'} on it")


def _deadline_ns(when: dt.datetime | dt.date, timezone: str) -> int:
    if isinstance(when, dt.datetime):
        return int(when.timestamp() * _NS)
    end = dt.datetime.combine(when + dt.timedelta(days=1), dt.time(0), ZoneInfo(timezone))
    return int(end.timestamp()) * _NS


def _utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / _NS, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def build_request(ra: RollArgs, cfg: Any, strategies: Sequence[str], operator: str, now_ns: int,
                  by: Mapping[str, Any] | None = None) -> Any:
    """The :class:`~xmc_actors.core.roll.RollRequest` of ``ra`` on the deployment ``cfg``
    (a DeploymentConfig) at ``now_ns``; CliError (exit 2) naming the argument when anything is
    wrong. Pure: nothing is sent."""
    from ..core.contracts import ContractDateError, Holding, _product_for, parse_contract, plan_roll
    from ..core.roll import RollInputError, build_roll, roll_by_ns

    if ra.strategy not in strategies:
        near = [s for s in strategies if s.lower() == ra.strategy.lower()]
        raise CliError(f"--strategy: unknown strategy {ra.strategy!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                       + f"; the deployment's strategies: {', '.join(sorted(strategies)) or 'none'}")
    insts = {i.id: i for i in cfg.instruments}
    venues = {v.code: v for v in cfg.venues}
    first = venues.get(ra.legs[0].venue)
    day = (dt.datetime.fromtimestamp(now_ns / _NS, first.tz) if first is not None
           else dt.datetime.fromtimestamp(now_ns / _NS, dt.timezone.utc)).date()
    holdings = []
    for lg in ra.legs:
        opt = "--long" if lg.qty > 0 else "--short"
        venue = venues.get(lg.venue)
        if venue is None:
            raise CliError(f"{opt} {lg.near}: unknown venue {lg.venue!r}; the deployment's venues: "
                           f"{', '.join(sorted(venues))}")
        inst = insts.get(lg.near)
        if inst is not None and inst.contract is not None:
            raise CliError(f"{opt} {lg.near}: a product, not a contract: name the contract held (e.g. "
                           f"{lg.near}{'2701' if inst.contract.style == 'yymm' else 'H7'})")
        symbol = lg.near.split(".", 1)[1]
        product = _product_for(insts, lg.venue, symbol, inst)
        if product is None:
            raise CliError(f"{opt} {lg.near}: unknown instrument: not a contract of a dated product the deployment "
                           "lists")
        try:
            c = parse_contract(product, venue, symbol, day)
        except ContractDateError as e:
            raise CliError(f"{opt} {lg.near}: {e}") from None
        if c.last_trading_day is not None and c.last_trading_day < day:
            raise CliError(f"{opt} {lg.near}: expired on {c.last_trading_day} (its last trading day); it is {day}")
        holdings.append(Holding(product, venue, lg.qty, c.id))
    try:
        plan = plan_roll(holdings, day)
    except (ContractDateError, ValueError) as e:
        raise CliError(f"--long/--short: the roll cannot be planned: {e}") from None
    contracts: list[str] = []
    for lg, pl in zip(ra.legs, plan.legs):
        opt = "--long" if lg.qty > 0 else "--short"
        if lg.far is not None and lg.far != pl.far.id:
            raise CliError(f"{opt} {lg.near}:{lg.far}: the plan rolls {pl.near.id} into {pl.far.id} (the next active "
                           f"month), not {lg.far}")
        for cid in (pl.near.id, pl.far.id):
            if cid not in insts:
                raise CliError(f"{opt} {lg.near}: {cid} is not an instrument this deployment trades, so its "
                               "coordinator and gateway cannot order it (add it to the deployment file)")
            contracts.append(cid)
    extra = sorted(set(ra.prices) - set(contracts))
    if extra:
        raise CliError(f"--price {extra[0]}: not a contract of this roll (its contracts: {', '.join(contracts)})")
    missing = [c for c in contracts if c not in ra.prices]
    if missing:
        raise CliError(f"--price {missing[0]}=PRICE is needed: a limit price for each near and far contract "
                       f"({', '.join(contracts)})")
    for v in sorted(set(ra.accounts) - {lg.venue for lg in ra.legs}):
        raise CliError(f"--account {v}: no leg of this roll is on {v}")
    accounts = {lg.venue: _account(cfg, ra, lg.venue) for lg in ra.legs}
    binding = venues[ra.legs[ord(plan.binding) - ord("A")].venue]
    latest = _deadline_ns(plan.deadline, binding.timezone)
    if ra.deadline is None:
        deadline = roll_by_ns(plan, binding.timezone)
        if deadline <= now_ns:
            raise CliError(f"--deadline: the plan's roll_by ({plan.roll_by}) has passed, the roll is overdue: give "
                           f"--deadline WHEN in the future, before the end of {binding.code}'s deadline "
                           f"{plan.deadline} ({_utc(latest)}), to order it late")
    else:
        deadline = _deadline_ns(ra.deadline, binding.timezone)
        if deadline <= now_ns:
            raise CliError(f"--deadline {ra.deadline.isoformat()}: in the past (it is {_utc(now_ns)})")
        if deadline > latest:
            raise CliError(f"--deadline {ra.deadline.isoformat()}: after the end of {binding.code}'s deadline "
                           f"{plan.deadline} ({_utc(latest)}): the venue may force the position out by then")
    did = ra.decision_id or default_decision_id(ra.strategy, plan)
    try:
        return build_roll(plan, decision_id=did, strategy=ra.strategy, accounts=accounts, prices=ra.prices,
                          deadline_ns=deadline, now_ns=now_ns, operator=operator, by=by)
    except RollInputError as e:
        raise CliError(f"{e.field}: {e.reason}; nothing sent") from None


def describe(req: Any) -> list[str]:
    """The roll as lines: the plan's reason, each child spread, the deadline."""
    lines = [f"roll {req.decision_id} for {req.strategy} by {req.operator or '?'}: {req.plan.reason}"]
    for c in req.children:
        n, f = c.legs
        lines.append(f"  {c.decision_id}: {n.side.value} {n.qty} {n.instrument} @ {n.limit_price}, "
                     f"{f.side.value} {f.qty} {f.instrument} @ {f.limit_price} (account {n.account})")
    lines.append(f"  deadline {_utc(req.deadline_ns)}")
    return lines


def outcome_lines(out: Mapping[str, Any]) -> list[str]:
    lines = [f"{out['state']}: {out['reason']}"]
    for did, ch in sorted((out.get("children") or {}).items()):
        net = ", ".join(f"{k} {v:+d}" if isinstance(v, int) else f"{k} {v}" for k, v in sorted(ch.get("net", {}).items()))
        lines.append(f"  {did}: {ch.get('state')}{' complete' if ch.get('complete') else ''}" + (f"; net {net}" if net else ""))
    return lines


# ------------------------------------------------------------------------------ the command
def _now_ns() -> int:
    return time.time_ns()


def _deployment(args: argparse.Namespace) -> dict[str, Any]:
    """The running deployment's registry description (joins it: ``cmd_ops.join``)."""
    from .cmd_ops import registry_info

    ns, info = registry_info(args, args.timeout)
    if not info.get("config"):
        raise CliError(f"the deployment in namespace {ns!r} has not finished starting, or was started by an older "
                       "version: its registry holds no configuration to check the roll against", code=3)
    return info


#: after a submit that got no answer the roll may have been taken: say how to find out, and
#: that running the same command again is safe (same holdings, same default id: a duplicate)
_MAYBE = ("; the roll may have been taken: `xmc audit trace ID` shows it; running the same command "
          "again is refused as a duplicate if it was (give the same --id if you gave one)")


def _coordinator(args: argparse.Namespace, info: Mapping[str, Any]) -> Callable[..., Any]:
    """``call(method, *a)`` on the deployment's coordinator, its answer within ``--timeout``."""
    import ray

    name = info.get("coordinator") or "coordinator"
    try:
        coord = ray.get_actor(name, namespace=args.namespace)
    except ValueError:
        raise CliError(f"the deployment's coordinator {name!r} is not running", code=3) from None

    def call(method: str, *a: Any) -> Any:
        try:
            return ray.get(getattr(coord, method).remote(*a), timeout=args.timeout)
        except ray.exceptions.GetTimeoutError:
            raise CliError(f"the coordinator did not answer {method} within {args.timeout:.0f} s{_MAYBE}", code=4) from None
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
            raise CliError(f"the coordinator is not available ({type(e).__name__}){_MAYBE}", code=4) from None
    return call


def cmd_roll(args: argparse.Namespace) -> int:
    from ..model.config import DeploymentConfig
    from .operator_auth import authorise_cli

    ra = parse_args(args)  # syntax first: a typo needs no deployment
    auth = authorise_cli(args, "roll")
    info = _deployment(args)
    cfg = DeploymentConfig.model_validate(info["config"])
    strategies = info.get("strategies") or [s.name for s in cfg.strategies]
    req = build_request(ra, cfg, strategies, auth.operator, _now_ns(), auth.by())
    for line in describe(req):
        print(line)
    if args.dry_run:
        print("dry run: nothing sent")
        return 0
    call = _coordinator(args, info)
    ans = call("submit_roll", req)
    if not ans.get("accepted") and not ans.get("children"):  # refused as a whole: no child was submitted
        if ans.get("duplicate"):
            raise CliError(f"{req.decision_id}: a roll with this decision id was already submitted; nothing sent "
                           f"(`xmc audit trace {req.decision_id}` shows it; a new roll of the same holdings "
                           "needs its own --id)")
        raise CliError(f"the coordinator refused the roll: {ans.get('reason', '?')}; nothing sent")
    for c in ans.get("children") or []:
        if not c.get("accepted"):
            print(f"  {c.get('decision_id', '?')}: refused: {c.get('reason', '')}")
    trace = f"xmc audit trace {req.decision_id}" + (f" --ledger {info['ledger']}" if info.get("ledger") else "")
    print(f"{req.decision_id}: submitted ({trace})")
    until = time.monotonic() + (args.wait or 0.0)
    while True:
        out = call("roll_outcome", req.decision_id)
        if out is not None or time.monotonic() >= until:
            break
        time.sleep(0.2)
    if out is None:
        if args.wait:
            print(f"{req.decision_id}: still working after {args.wait:g} s; it goes on until "
                  f"{_utc(req.deadline_ns)} ({trace})")
            return EXIT_UNDECIDED
        return 0
    for line in outcome_lines(out):
        print(line)
    return 0 if out["state"] == "ROLLED" else EXIT_ESCALATED
