"""``xmc roll`` (ops/cmd_roll.py) without Ray: every argument checked before anything is sent,
each refusal naming the argument (exit 2); the request built against a deployment's
configuration as the registry hands it; the outcome's exit codes against a fake coordinator.

The deployment: simulated SHFE and COMEX with copper (``SHFE.cu``, ``COMEX.HG``) and the four
contracts rolled on 6 Dec 2026 (what tests/integration/test_roll_ray.py rolls on that day); "now"
is fixed on 6 Dec 2026 (``NOW`` handed to ``build_request``, ``cmd_roll._now_ns`` patched where the
command runs): nothing here reads the wall clock."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from testkit import instrument, venue
from xmc_actors.core.contracts import concrete_instrument, parse_contract
from xmc_actors.core.roll import roll_by_ns
from xmc_actors.model.config import DeploymentConfig, StrategyConfig
from xmc_actors.model.market import Account
from xmc_actors.ops import cmd_roll, operator_auth
from xmc_actors.ops.cli import CliError, build_parser, main

UTC = dt.timezone.utc
NOW = int(dt.datetime(2026, 12, 6, 2, 0, tzinfo=UTC).timestamp()) * 10**9  # 10:00 in Shanghai
VENUES = {"SHFE": venue("SHFE", offsets=True), "COMEX": venue("COMEX")}
CU, HG = instrument("SHFE.cu"), instrument("COMEX.HG")
IDS = ("SHFE.cu2701", "SHFE.cu2702", "COMEX.HGH7", "COMEX.HGK7")
PRICES = ["--price", "SHFE.cu2701=71990", "--price", "SHFE.cu2702=72110", "--price", "COMEX.HGH7=4.5005",
          "--price", "COMEX.HGK7=4.5495"]
ROLL = ["roll", "--strategy", "copper", "--long", "SHFE.cu2701=2", "--short", "COMEX.HGH7=2", *PRICES,
        "--operator", "alice"]


def _concrete(inst_id: str):
    product = CU if inst_id.startswith("SHFE") else HG
    return concrete_instrument(product, parse_contract(product, VENUES[inst_id[:inst_id.index(".")]], inst_id,
                                                       dt.date(2026, 12, 6)))


def config(ids=IDS, accounts=True, strategy=True) -> DeploymentConfig:
    accs = (Account(id="cn-main", broker="sim", venues=("SHFE",), currency="CNY", capital=10**8),
            Account(id="cn-2", broker="sim", venues=("SHFE",), currency="CNY", capital=10**8),
            Account(id="us-main", broker="sim", venues=("COMEX",), currency="USD", capital=10**7)) if accounts else ()
    strats = (StrategyConfig.model_validate({"name": "copper", "class": "band", "legs": [
        {"instrument": "SHFE.cu2701", "account": "cn-main"}, {"instrument": "COMEX.HGH7", "account": "us-main"}]}),
    ) if strategy else ()
    return DeploymentConfig(name="roll-cli", venues=tuple(VENUES.values()),
                            instruments=(CU, HG, *(_concrete(i) for i in ids)), accounts=accs, strategies=strats)


def with_args(extra: list[str]) -> list[str]:
    """ROLL with ``extra``: a --long or --strategy replaces ROLL's, anything else is added."""
    argv = list(ROLL)
    if extra and extra[0] in ("--long", "--strategy"):
        argv[argv.index(extra[0]) + 1] = extra[1]
        extra = extra[2:]
    return argv + extra


def request(argv: list[str], cfg: DeploymentConfig | None = None, now: int = NOW, operator: str = "alice"):
    args = build_parser().parse_args(argv)
    return cmd_roll.build_request(cmd_roll.parse_args(args), cfg or config(), ["copper"], operator, now)


def refused(argv: list[str], **kw: Any) -> str:
    with pytest.raises(CliError) as e:
        request(argv, **kw)
    assert e.value.code == 2
    return str(e.value)


def test_the_request_is_one_calendar_spread_per_venue_with_the_plans_deadline():
    req = request(ROLL)
    assert req.decision_id.startswith("roll-copper-20261230-") and req.operator == "alice"
    a, b = req.children
    assert [(lg.instrument, lg.side.value, lg.qty, lg.account, lg.limit_price) for lg in a.legs] == [
        ("SHFE.cu2701", "SELL", 2, "cn-main", Decimal(71990)), ("SHFE.cu2702", "BUY", 2, "cn-main", Decimal(72110))]
    assert [(lg.instrument, lg.side.value, lg.qty, lg.account) for lg in b.legs] == [
        ("COMEX.HGH7", "BUY", 2, "us-main"), ("COMEX.HGK7", "SELL", 2, "us-main")]
    assert req.deadline_ns == roll_by_ns(req.plan, "Asia/Shanghai")  # end of 30 Dec in Shanghai (SHFE binds)


def test_the_default_id_is_made_from_what_is_rolled_so_running_the_command_again_is_the_same_roll():
    # a retry after a timeout, minutes later: the same decision (the coordinator refuses it as a duplicate)
    assert request(ROLL).decision_id == request(ROLL, now=NOW + 600 * 10**9).decision_id
    other = [a if a != "SHFE.cu2701=2" else "SHFE.cu2701=3" for a in ROLL]
    other = [a if a != "COMEX.HGH7=2" else "COMEX.HGH7=3" for a in other]
    assert request(other).decision_id != request(ROLL).decision_id  # other holdings: another roll


def test_an_expected_far_an_id_an_account_and_a_deadline_are_taken():
    req = request(["roll", "--strategy", "copper", "--long", "SHFE.cu2701:SHFE.cu2702=3", "--short", "COMEX.HGH7=3",
                   *PRICES, "--id", "roll-cu-7", "--account", "SHFE=cn-2", "--deadline", "2026-12-07T15:00+08:00"])
    assert req.decision_id == "roll-cu-7"
    assert [c.legs[0].account for c in req.children] == ["cn-2", "us-main"]
    assert req.deadline_ns == int(dt.datetime(2026, 12, 7, 7, tzinfo=UTC).timestamp()) * 10**9


SYNTAX = [  # (arguments replacing ROLL's, the text the refusal starts with)
    (["--long", "SHFE.cu2701=0"], "--long SHFE.cu2701: lots 0 is not positive"),
    (["--long", "SHFE.cu2701=-2"], "--long SHFE.cu2701: lots -2 is not positive"),
    (["--long", "SHFE.cu2701=two"], "--long SHFE.cu2701: lots 'two' is not a whole number"),
    (["--long", "SHFE.cu2701"], "--long 'SHFE.cu2701': expected NEAR[:FAR]=LOTS"),
    (["--long", "cu2701=2"], "--long 'cu2701': not a contract id"),
    (["--long", "SHFE.cu2701:COMEX.HGK7=2"], "--long SHFE.cu2701:COMEX.HGK7: the far contract must be on"),
    (["--long", "COMEX.HGH7=1"], "--long/--short: two legs on COMEX"),
    (["--price", "SHFE.cu2703=abc"], "--price SHFE.cu2703: 'abc' is not a number"),
    (["--price", "SHFE.cu2703=0"], "--price SHFE.cu2703: 0 is not a positive price"),
    (["--price", "SHFE.cu2703=NaN"], "--price SHFE.cu2703: NaN is not a positive price"),
    (["--price", "SHFE.cu2701=1"], "--price SHFE.cu2701: given twice"),
    (["--account", "SHFE"], "--account 'SHFE': expected VENUE=ACCOUNT"),
    (["--deadline", "tomorrow"], "--deadline 'tomorrow': not a date"),
    (["--deadline", "2026-12-30T14:00"], "--deadline '2026-12-30T14:00': give its time zone"),
    (["--id", "bad id!"], "--id 'bad id!': 1-70 letters"),
    (["--strategy", " "], "--strategy NAME is required"),
]


@pytest.mark.parametrize("extra, message", SYNTAX, ids=[m for _, m in SYNTAX])
def test_bad_syntax_is_refused_before_the_deployment_is_asked(extra, message, monkeypatch, capsys):
    def never(*a: Any, **k: Any) -> Any:
        raise AssertionError("the deployment was asked")

    monkeypatch.setattr(operator_auth, "locate_desk", never)
    monkeypatch.setattr(cmd_roll, "_deployment", never)
    monkeypatch.setattr(cmd_roll, "_coordinator", never)
    assert main(with_args(extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xmc: {message}"), err


def test_no_leg_is_refused():
    with pytest.raises(CliError, match="^--long/--short: no leg to roll"):
        cmd_roll.parse_args(build_parser().parse_args(["roll", "--strategy", "copper"]))


AGAINST_THE_DEPLOYMENT = [
    (["--long", "SHFE.cu2713=2"], {}, "--long SHFE.cu2713: 'cu2713': month 13 is not 01-12"),
    (["--long", "SHFE.zn2701=2"], {}, "--long SHFE.zn2701: unknown instrument"),
    (["--long", "NYMEX.CLF7=2"], {}, "--long NYMEX.CLF7: unknown venue 'NYMEX'"),
    (["--long", "SHFE.cu=2"], {}, "--long SHFE.cu: a product, not a contract"),
    (["--long", "SHFE.cu2611=2"], {}, "--long SHFE.cu2611: expired on 2026-11-16"),
    (["--long", "SHFE.cu2701:SHFE.cu2703=2"], {}, "--long SHFE.cu2701:SHFE.cu2703: the plan rolls SHFE.cu2701 into "
                                                  "SHFE.cu2702"),
    ([], {"cfg": config(ids=("SHFE.cu2701", "COMEX.HGH7", "COMEX.HGK7"))},
     "--long SHFE.cu2701: SHFE.cu2702 is not an instrument this deployment trades"),
    (["--strategy", "Copper"], {}, "--strategy: unknown strategy 'Copper' (did you mean 'copper'?)"),
    (["--price", "SHFE.cu2703=72000"], {}, "--price SHFE.cu2703: not a contract of this roll"),
    (["--account", "COMEX=cn-main"], {}, "--account COMEX=cn-main: that account trades on SHFE, not COMEX"),
    (["--account", "SHFE=nobody"], {}, "--account SHFE=nobody: unknown account"),
    (["--account", "LME=us-main"], {}, "--account LME: no leg of this roll is on LME"),
    ([], {"cfg": config(strategy=False)}, "--account SHFE=ACCOUNT is needed"),  # two SHFE accounts, no strategy leg
    (["--deadline", "2026-12-06T01:00Z"], {}, "--deadline 2026-12-06T01:00:00+00:00: in the past"),
    (["--deadline", "2027-01-04"], {}, "--deadline 2027-01-04: after the end of SHFE's deadline 2026-12-31"),
    ([], {"now": int(dt.datetime(2026, 12, 31, 2, tzinfo=UTC).timestamp()) * 10**9},
     "--deadline: the plan's roll_by (2026-12-30) has passed"),
]


@pytest.mark.parametrize("extra, kw, message", AGAINST_THE_DEPLOYMENT, ids=[m for _, _, m in AGAINST_THE_DEPLOYMENT])
def test_what_the_deployment_does_not_have_is_refused_naming_the_argument(extra, kw, message):
    assert refused(with_args(extra), **kw).startswith(message)


def test_missing_price_is_refused_naming_the_contract():
    argv = ["roll", "--strategy", "copper", "--long", "SHFE.cu2701=2", "--short", "COMEX.HGH7=2", *PRICES[:6]]
    assert refused(argv).startswith("--price COMEX.HGK7=PRICE is needed")


def test_an_overdue_roll_goes_with_a_deadline_before_the_venues_own():
    late = int(dt.datetime(2026, 12, 31, 2, tzinfo=UTC).timestamp()) * 10**9  # 31 Dec, 10:00 in Shanghai
    req = request([*ROLL, "--deadline", "2026-12-31"], now=late)
    assert req.deadline_ns == int(dt.datetime(2026, 12, 31, 16, tzinfo=UTC).timestamp()) * 10**9
    assert req.plan.status == "overdue"


class FakeCoordinator:
    def __init__(self, outcome: dict[str, Any] | None, answer: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.outcome, self.answer = outcome, answer

    def __call__(self, method: str, *a: Any) -> Any:
        self.calls.append((method, *a))
        if method == "submit_roll":
            req = a[0]
            return self.answer or {"decision_id": req.decision_id, "accepted": True,
                                   "children": [{"decision_id": c.decision_id, "accepted": True} for c in req.children]}
        return self.outcome


@pytest.fixture
def deployment(monkeypatch):
    def install(coord: FakeCoordinator) -> FakeCoordinator:
        monkeypatch.setattr(operator_auth, "locate_desk", lambda args: None)  # no operator API
        monkeypatch.setattr(cmd_roll, "_deployment", lambda args: {
            "config": config().model_dump(mode="json", by_alias=True), "strategies": ["copper"],
            "coordinator": "coordinator", "ledger": "/var/ledger"})
        monkeypatch.setattr(cmd_roll, "_coordinator", lambda args, info: coord)
        monkeypatch.setattr(cmd_roll, "_now_ns", lambda: NOW)
        return coord
    return install


ROLLED = {"state": "ROLLED", "reason": "every leg is on its far contract", "children": {
    "r1.rollA": {"state": "HEDGED", "complete": True, "net": {"SHFE.cu2701": -2, "SHFE.cu2702": 2}}}}


@pytest.mark.parametrize("outcome, extra, code, said", [
    (ROLLED, ["--wait", "5"], 0, "ROLLED: every leg"),
    ({**ROLLED, "state": "ESCALATED", "reason": "r1.rollB ended without a complete roll"}, ["--wait", "5"], 1,
     "ESCALATED: r1.rollB"),
    (None, ["--wait", "0.3"], 7, "r1: still working after 0.3 s"),
    (None, [], 0, "r1: submitted (xmc audit trace r1 --ledger /var/ledger)"),
])
def test_the_outcome_sets_the_exit_code(deployment, capsys, outcome, extra, code, said):
    coord = deployment(FakeCoordinator(outcome))
    assert main([*ROLL, "--id", "r1", *extra]) == code
    out = capsys.readouterr().out
    assert said in out and "r1.rollA: SELL 2 SHFE.cu2701 @ 71990" in out, out
    assert [c[0] for c in coord.calls][0] == "submit_roll" and coord.calls[0][1].operator == "alice"


def test_a_dry_run_sends_nothing(deployment, capsys):
    coord = deployment(FakeCoordinator(ROLLED))
    assert main([*ROLL, "--dry-run"]) == 0
    assert "dry run: nothing sent" in capsys.readouterr().out and coord.calls == []


def test_a_duplicate_id_is_refused(deployment, capsys):
    deployment(FakeCoordinator(None, {"decision_id": "r1", "accepted": False, "duplicate": True}))
    assert main([*ROLL, "--id", "r1"]) == 2
    assert "r1: a roll with this decision id was already submitted; nothing sent" in capsys.readouterr().err


def test_without_an_operator_nothing_is_asked(deployment, capsys):
    coord = deployment(FakeCoordinator(ROLLED))
    assert main([a for a in ROLL if a not in ("--operator", "alice")]) == 2
    assert "--operator NAME is required" in capsys.readouterr().err and coord.calls == []
