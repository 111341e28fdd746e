"""Deployment configuration: the demo is valid; every kind of bad configuration gets its message."""
import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from decimal import Decimal

from testkit import ROOT
from xmc_actors.runtime.config import ConfigError, auto_hedge_ratio, load_config

DEMO = ROOT / "configs" / "demo.yaml"


@pytest.fixture()
def demo():
    return yaml.safe_load(DEMO.read_text())


def write(tmp_path: Path, data: dict, name: str = "deploy.yaml") -> Path:
    shutil.copy(ROOT / "configs" / "catalogue.yaml", tmp_path / "catalogue.yaml")
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def messages(tmp_path, data) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, data))
    return e.value.messages


def test_the_demo_configuration_is_valid():
    cfg = load_config(DEMO)
    assert [s.name for s in cfg.strategies] == ["gold-sge-comex", "copper-shfe-lme"]
    assert cfg.instrument("COMEX.GC").multiplier == 100
    assert cfg.fx[0].file.endswith("real/fred_dexchus_usdcny_daily.csv")
    assert "${" not in cfg.fx[0].file


def test_unknown_instrument_in_a_strategy_leg(tmp_path, demo):
    demo["strategies"][1]["legs"][0]["instrument"] = "SHFE.cu2501"
    assert "strategies[1].legs[0].instrument: unknown instrument 'SHFE.cu2501'" in messages(tmp_path, demo)


def test_unknown_account_in_a_strategy_leg(tmp_path, demo):
    demo["strategies"][0]["legs"][1]["account"] = "us-mian"
    assert messages(tmp_path, demo) == ["strategies[0].legs[1].account: unknown account 'us-mian'"]


def test_account_that_does_not_trade_the_venue(tmp_path, demo):
    demo["strategies"][0]["legs"][0]["account"] = "us-main"
    assert messages(tmp_path, demo) == [
        "strategies[0].legs[0].account: account 'us-main' does not trade on venue 'SGE' (it trades: COMEX, LME)"
    ]


def test_unknown_strategy_class(tmp_path, demo):
    demo["strategies"][0]["class"] = "bandx"
    (msg,) = messages(tmp_path, demo)
    assert msg.startswith("strategies[0].class: unknown strategy class 'bandx' (known: band, ")


def test_unknown_strategy_parameter(tmp_path, demo):
    demo["strategies"][0]["params"]["entyr"] = 0.01
    assert messages(tmp_path, demo) == ["strategies[0].params.entyr: unknown field"]


def test_strategy_bands_the_wrong_way_round(tmp_path, demo):
    demo["strategies"][0]["params"].update(entry=0.001, exit=0.004)
    assert messages(tmp_path, demo) == [
        "strategies[0].params: entry (0.001) must be above exit (0.004): bands are distances from center"
    ]


def test_unknown_venue_in_a_gateway(tmp_path, demo):
    demo["gateways"][0]["venue"] = "SGX"
    msgs = messages(tmp_path, demo)
    assert "gateways[0].venue: unknown venue 'SGX'" in msgs
    # and the strategy that trades SGE now has no gateway for it
    assert "strategies[0].legs[0].instrument: no gateway is configured for venue 'SGE'" in msgs


def test_gateway_groups_become_one_process_each(tmp_path, demo):
    cfg = load_config(write(tmp_path, demo))
    procs = {name: [g.venue for g in gs] for name, gs in cfg.gateway_processes().items()}
    assert procs == {"gateways-gold": ["SGE", "COMEX"], "gateways-copper": ["SHFE", "LME"]}
    demo["gateways"][3].pop("group")
    cfg = load_config(write(tmp_path, demo))
    assert list(cfg.gateway_processes()) == ["gateways-gold", "gateways-copper", "gateway-LME"]


def test_a_gateway_group_must_sit_on_one_node_and_not_take_a_gateways_name(tmp_path, demo):
    demo["gateways"][1]["node_label"] = "venue=COMEX"
    demo["gateways"][2]["name"] = "gateways-gold"
    demo["gateways"][2].pop("group")
    msgs = messages(tmp_path, demo)
    assert "gateways[1].node_label: 'venue=COMEX' differs from None of gateways[0] in group 'gold': " \
           "a group runs in one process, on one node" in msgs
    assert "gateways[0].group: group 'gold' would start actor 'gateways-gold', which is the name of gateways[2]; " \
           "rename one" in msgs


def test_non_positive_capital(tmp_path, demo):
    demo["accounts"][1]["capital"] = -5
    assert messages(tmp_path, demo) == ["accounts[1].capital: input should be greater than 0 (got -5)"]


def test_literal_credentials_are_refused_and_never_echoed(tmp_path, demo):
    demo["accounts"][0]["credentials"] = {"api_key": "s3cr3t-value"}
    msgs = messages(tmp_path, demo)
    assert msgs == [
        "accounts[0].credentials: credential 'api_key' must reference an environment variable ({env: NAME}), "
        "never a literal value"
    ]
    assert "s3cr3t" not in "".join(msgs)


def test_unknown_unit_in_an_instrument(tmp_path, demo):
    demo["instruments"] = [{"venue": "SHFE", "symbol": "zz", "currency": "CNY", "price_unit": "stone",
                            "multiplier": 1, "tick_size": 1}]
    (msg,) = messages(tmp_path, demo)
    assert msg.startswith("instruments[0].price_unit: unknown unit 'stone' (known: bbl, g, kg, lb, pt, share, t, troy_oz)")


def test_unknown_currency_in_an_account(tmp_path, demo):
    demo["accounts"][0]["currency"] = "RMB"
    (msg,) = messages(tmp_path, demo)
    assert msg.startswith("accounts[0].currency: unknown currency 'RMB' (known: CNH, CNY, EUR")


def test_occupancy_levels_must_rise(tmp_path, demo):
    demo["risk"]["occupancy"] = {"yellow": 0.9, "orange": 0.85, "red": 0.95}
    assert messages(tmp_path, demo) == ["risk.occupancy: levels must rise: yellow (0.9) < orange (0.85) < red (0.95)"]


def test_unknown_top_level_field(tmp_path, demo):
    demo["strategy"] = []
    assert messages(tmp_path, demo) == ["strategy: unknown field"]


def test_missing_fx_pair_between_leg_currencies(tmp_path, demo):
    demo["fx"] = []
    msgs = messages(tmp_path, demo)
    assert "strategies[0].legs: no FX pair converts CNY to USD; add one under fx" in msgs
    assert "strategies[1].legs: no FX pair converts CNY to USD; add one under fx" in msgs


def test_legs_in_incompatible_units(tmp_path, demo):
    demo["strategies"][1]["legs"][1]["instrument"] = "COMEX.GC"
    demo["accounts"][0]["venues"].append("COMEX")
    load_config(write(tmp_path, demo))  # t against troy_oz: both mass, allowed
    demo["strategies"][1]["legs"][1] = {"instrument": "INE.sc", "account": "cn-main"}
    demo["accounts"][0]["venues"].append("INE")
    demo["gateways"].append({"venue": "INE", "adapter": "sim"})
    assert messages(tmp_path, demo) == [
        "strategies[1].legs: legs are priced in incompatible units: SHFE.cu per t, INE.sc per bbl"
    ]


def test_duplicate_strategy_names(tmp_path, demo):
    demo["strategies"].append(copy.deepcopy(demo["strategies"][0]))
    assert messages(tmp_path, demo) == ["strategies[2]: duplicate strategy 'gold-sge-comex' (first at strategies[0])"]


def _second_shfe_gateway(demo, **extra):
    second = copy.deepcopy(demo["gateways"][2])
    second.update(name="gateway-SHFE-broker2", **extra)
    second.pop("group", None)
    demo["gateways"].append(second)
    return second


def test_a_second_default_gateway_on_a_venue_is_refused_rather_than_silently_replacing_the_first(tmp_path, demo):
    _second_shfe_gateway(demo)
    assert messages(tmp_path, demo) == [
        "gateways[4].accounts: venue 'SHFE' already has a default gateway (gateways[2], no accounts): "
        "list the accounts each further gateway on the venue carries"]


def test_a_second_gateway_on_a_venue_carries_the_accounts_it_lists(tmp_path, demo):
    demo["accounts"].append({"id": "cn-broker2", "broker": "b2", "venues": ["SHFE"], "currency": "CNY",
                             "capital": 1000000})
    _second_shfe_gateway(demo, accounts=["cn-broker2"])
    cfg = load_config(write(tmp_path, demo))
    assert [g.route_keys for g in cfg.gateways if g.venue == "SHFE"] == [("SHFE",), ("SHFE/cn-broker2",)]
    # the first gateway on a venue is its quote source
    assert cfg.quote_sources()["SHFE"].actor_name == cfg.gateways[2].actor_name


def test_gateway_accounts_must_exist_trade_the_venue_and_be_carried_once(tmp_path, demo):
    demo["accounts"].append({"id": "cn-broker2", "broker": "b2", "venues": ["SHFE"], "currency": "CNY",
                             "capital": 1000000})
    _second_shfe_gateway(demo, accounts=["nosuch", "us-main", "cn-broker2"])
    third = copy.deepcopy(demo["gateways"][4])
    third.update(name="gateway-SHFE-broker3", accounts=["cn-broker2"])
    demo["gateways"].append(third)
    assert messages(tmp_path, demo) == [
        "gateways[4].accounts[0]: unknown account 'nosuch'",
        "gateways[4].accounts[1]: account 'us-main' does not trade on venue 'SHFE' (its venues: COMEX, LME)",
        "gateways[5].accounts[0]: account 'cn-broker2' on 'SHFE' is already carried by gateways[4]"]


def test_a_leg_whose_account_no_gateway_on_its_venue_carries_is_refused(tmp_path, demo):
    demo["accounts"].append({"id": "cn-broker2", "broker": "b2", "venues": ["SHFE"], "currency": "CNY",
                             "capital": 1000000})
    demo["gateways"][2]["accounts"] = ["cn-broker2"]  # the only SHFE gateway: cn-main has no way there
    msgs = messages(tmp_path, demo)
    assert msgs and all("no gateway on 'SHFE' carries account 'cn-main'" in m for m in msgs), msgs
    assert msgs[0].startswith("strategies[1].legs[0].account: ")


def test_unset_environment_variable(tmp_path, demo):
    demo["gateways"][0]["feed"]["params"]["files"][0]["path"] = "${XMC_NOT_SET_ANYWHERE}/sge.csv"
    assert messages(tmp_path, demo) == [
        "gateways[0].feed.params.files[0].path: environment variable XMC_NOT_SET_ANYWHERE is not set "
        "(write ${XMC_NOT_SET_ANYWHERE:-default} to give a default)"
    ]


def test_unknown_reject_reason_in_fault_injection(tmp_path, demo):
    demo["gateways"][2]["params"]["faults"]["reject_prob"] = {"BAD_LUCK": 0.5}
    (msg,) = messages(tmp_path, demo)
    assert msg.startswith("gateways[2].params.faults.reject_prob.BAD_LUCK: not a valid key: input should be 'MARKET_CLOSED'")


def test_probability_above_one(tmp_path, demo):
    demo["gateways"][2]["params"]["faults"]["partial_fill_prob"] = 1.5
    assert messages(tmp_path, demo) == [
        "gateways[2].params.faults.partial_fill_prob: input should be less than or equal to 1 (got 1.5)"
    ]


def test_unknown_feed_kind(tmp_path, demo):
    demo["gateways"][1]["feed"]["kind"] = "carrier-pigeon"
    (msg,) = messages(tmp_path, demo)
    assert msg.startswith("gateways[1].feed.kind: unknown feed kind 'carrier-pigeon' (known: ")


def test_every_problem_is_reported_at_once(tmp_path, demo):
    demo["strategies"][0]["legs"][1]["account"] = "nobody"
    demo["strategies"][1]["legs"][0]["instrument"] = "SHFE.cu2501"
    demo["gateways"][3]["venue"] = "NOWHERE"
    assert len(messages(tmp_path, demo)) >= 3


def test_errors_in_an_included_file_name_that_file_and_line(tmp_path, demo):
    path = write(tmp_path, demo)
    cat = (tmp_path / "catalogue.yaml").read_text().replace("tick_size: 0.0005", "tick_size: -0.0005")
    (tmp_path / "catalogue.yaml").write_text(cat)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    (issue,) = e.value.issues
    assert str(issue) == "instruments[8].tick_size: input should be greater than 0 (got -0.0005)"
    assert issue.file.endswith("catalogue.yaml")
    line = cat.splitlines()[issue.line - 1]
    assert "tick_size: -0.0005" in line


def test_invalid_yaml_names_the_line(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("name: demo\nstrategies: [\n  - oops: : :\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    (issue,) = e.value.issues
    assert issue.message.startswith("not valid YAML:") and issue.line in (2, 3, 4)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml")


def test_auto_hedge_ratio_gc_against_shfe_au():
    # one COMEX GC lot (100 oz) against SHFE au lots of 1000 g (32.15 oz): 3.11 au lots
    r = auto_hedge_ratio(100, "troy_oz", 1000, "g")
    assert r == Decimal("3.11034768")


def _xmc(*args):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "xmc_actors.ops.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


def test_cli_validate_succeeds_on_the_demo():
    r = _xmc("validate", "configs/demo.yaml")
    assert r.returncode == 0, r.stderr
    assert "configs/demo.yaml: valid" in r.stdout


def test_cli_validate_fails_with_the_path_and_no_traceback(tmp_path, demo):
    demo["strategies"][1]["legs"][0]["instrument"] = "SHFE.cu2501"
    path = write(tmp_path, demo)
    r = _xmc("validate", str(path))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert f"{path}:" in r.stderr and "strategies[1].legs[0].instrument: unknown instrument 'SHFE.cu2501'" in r.stderr
    assert "1 problem found" in r.stderr


def test_a_clip_that_cannot_hedge_one_lot_is_reported_by_validate(tmp_path, demo):
    demo["strategies"][0]["params"]["clip"] = 1  # 1 kg of Au99.99 = 0.32 COMEX GC lots
    assert messages(tmp_path, demo) == [
        "strategies[0].params.clip: 1 lot(s) of SGE.AU9999 hedge 0.3215 lot(s) of COMEX.GC, which rounds to 0; "
        "trade at least 2 lot(s) of SGE.AU9999 (hedge ratio 0.3215)"
    ]


def test_env_references_in_a_gateways_adapter_params_are_checked_like_account_credentials(tmp_path):
    from xmc_actors.runtime.config import iter_secret_refs, missing_credentials

    cfg = load_config(ROOT / "configs" / "demo.yaml")
    gws = list(cfg.gateways)
    gws[0] = gws[0].model_copy(update={"adapter": "ctp", "params": {"password": {"env": "XMC_TEST_CTP_PASSWORD"},
                                                                     "fronts": ["tcp://127.0.0.1:1"]}})
    cfg = cfg.model_copy(update={"gateways": tuple(gws)})
    assert ("gateways[0].params.password", "XMC_TEST_CTP_PASSWORD") in list(iter_secret_refs(cfg))
    missing = missing_credentials(cfg, env={})
    assert ("gateways[0].params.password", "XMC_TEST_CTP_PASSWORD", True) in missing
    assert not [m for m in missing_credentials(cfg, env={"XMC_TEST_CTP_PASSWORD": "x"}) if m[1] == "XMC_TEST_CTP_PASSWORD"]
