"""Bad deployment files, as users wrote them: each is refused with the path of the field and the
reason, quickly, without a traceback (issue 16)."""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from testkit import ROOT
from xmc_actors.ops.cli import main as xmc
from xmc_actors.runtime.config import MAX_DEPTH, MAX_FILE_BYTES, ConfigError, load_config
from xmc_actors.runtime.registry import ADAPTERS, Entry

DEMO = ROOT / "configs" / "demo.yaml"
DATA = Path(os.environ["XMC_DATA_DIR"]) / "real"
QUICK_S = 20  # generous: a refused file takes well under a second; a bomb expanded took minutes


@pytest.fixture()
def demo():
    return yaml.safe_load(DEMO.read_text())


def write_yaml(tmp_path: Path, data: dict, name: str = "deploy.yaml") -> Path:
    shutil.copy(ROOT / "configs" / "catalogue.yaml", tmp_path / "catalogue.yaml")
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def write_text(tmp_path: Path, text: str | bytes, name: str = "deploy.yaml") -> Path:
    shutil.copy(ROOT / "configs" / "catalogue.yaml", tmp_path / "catalogue.yaml")
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def refused(path: Path, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(path, env=env)
    return e.value.messages


def refused_quickly(path: Path) -> list[str]:
    t0 = time.monotonic()
    msgs = refused(path)
    assert time.monotonic() - t0 < QUICK_S
    return msgs


# --------------------------------------------------------------------------- 1. empty deployments
def test_an_empty_file_is_refused_saying_what_a_deployment_needs(tmp_path):
    path = write_text(tmp_path, "")

    msgs = refused(path)

    assert len(msgs) == 1
    assert msgs[0].startswith("the file is empty: a deployment needs at least one strategy (strategies[])")
    assert "accounts" in msgs[0] and "gateway" in msgs[0]


def test_a_file_of_comments_only_is_empty(tmp_path):
    path = write_text(tmp_path, "# nothing yet\n---\n")

    (msg,) = refused(path)

    assert msg.startswith("the file is empty")


def test_a_deployment_that_only_includes_the_catalogue_has_no_strategy(tmp_path):
    path = write_text(tmp_path, "include: [catalogue.yaml]\n")

    (msg,) = refused(path)

    assert msg.startswith("strategies: no strategy is configured (it has no accounts and no gateways either)")


def test_a_deployment_whose_strategies_are_all_disabled_would_trade_nothing(tmp_path, demo):
    for s in demo["strategies"]:
        s["enabled"] = False

    (msg,) = refused(write_yaml(tmp_path, demo))

    assert msg == "strategies: all 2 strategies are disabled (enabled: false): nothing would trade"


def test_the_catalogue_on_its_own_still_loads_as_a_catalogue():
    cfg = load_config(ROOT / "configs" / "catalogue.yaml")

    assert cfg.instruments and not cfg.strategies


# --------------------------------------------------------------------------- 2. bombs and size
def billion_laughs(levels: int = 9, fan: int = 10) -> str:
    lines = ['a0: &a0 "lol"']
    for k in range(1, levels + 1):
        lines.append(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * fan)}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_bomb_of_nested_aliases_is_refused_quickly(tmp_path):
    path = write_text(tmp_path, billion_laughs())

    (msg,) = refused_quickly(path)

    assert "expands to more than 500,000 values" in msg and "YAML bomb" in msg


def test_a_bomb_of_merge_keys_is_refused_too(tmp_path):
    text = "m0: &m0 {k0: 1, k1: 2, k2: 3, k3: 4, k4: 5, k5: 6, k6: 7, k7: 8, k8: 9, k9: 10}\n"
    for k in range(1, 9):
        text += f"m{k}: &m{k} {{<<: [{', '.join([f'*m{k - 1}'] * 10)}], x: 1}}\n"
    path = write_text(tmp_path, text)

    (msg,) = refused_quickly(path)

    assert "YAML bomb" in msg


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    path = write_text(tmp_path, "run: &loop {again: *loop}\n")

    (msg,) = refused_quickly(path)

    assert msg == "run.again: an alias refers to a mapping or list that contains it (a recursive structure)"


def test_aliases_used_sparingly_still_work(tmp_path, demo):
    text = DEMO.read_text().replace("execution: {mode: price}", "execution: &exec {mode: price}", 1)
    # the copper strategy's whole execution block (its settings and their comments) becomes the alias
    text, n = re.subn(r"    execution:\n      mode: speed\n(?:      .*\n)+", "    execution: *exec\n", text, count=1)
    assert n == 1
    cfg = load_config(write_text(tmp_path, text))

    assert cfg.strategies[1].execution == cfg.strategies[0].execution


def test_a_file_over_the_size_limit_is_refused_naming_the_limit(tmp_path):
    path = write_text(tmp_path, "# padding\n" * (MAX_FILE_BYTES // 10 + 1))

    (msg,) = refused_quickly(path)

    assert f"at most {MAX_FILE_BYTES:,} bytes (2 MiB)" in msg


# --------------------------------------------------------------------------- 3. deep nesting
def test_twenty_thousand_nested_lists_are_refused_without_a_recursion_error(tmp_path):
    path = write_text(tmp_path, "run: " + "[" * 20_000 + "]" * 20_000 + "\n")

    (msg,) = refused_quickly(path)

    assert msg == f"refused: nested more than {MAX_DEPTH} levels deep"


def test_deeply_nested_mappings_are_refused_with_the_line(tmp_path):
    text = "run:\n" + "".join("  " * (k + 1) + f"k{k}:\n" for k in range(200)) + "  " * 201 + "x: 1\n"
    path = write_text(tmp_path, text)

    with pytest.raises(ConfigError) as e:
        load_config(path)

    (issue,) = e.value.issues
    assert issue.message == f"refused: nested more than {MAX_DEPTH} levels deep"
    assert MAX_DEPTH - 1 <= issue.line <= MAX_DEPTH + 1  # where the nesting goes over the limit


def test_nesting_built_from_aliases_counts_once_expanded(tmp_path):
    deep = "[" * 40 + "x" + "]" * 40
    path = write_text(tmp_path, f"a: &a {deep}\nrun: {{b: {'[' * 40}*a{']' * 40}}}\n")

    (msg,) = refused_quickly(path)

    assert msg.startswith("run.b") and f"nested more than {MAX_DEPTH} levels deep once its aliases are expanded" in msg


# --------------------------------------------------------------------------- 4. not YAML text, not a mapping
def test_a_binary_file_is_refused_as_binary(tmp_path):
    path = write_text(tmp_path, b"PAR1\x00\x01\x02name: x\n")

    (msg,) = refused(path)

    assert "is a binary file, not YAML text (a NUL byte at offset 4)" in msg


def test_a_file_not_in_utf8_says_so(tmp_path):
    path = write_text(tmp_path, "name: caf\u00e9\n".encode("latin-1"))

    (msg,) = refused(path)

    assert "is not UTF-8 text (byte 0xe9 at offset 9): save it as UTF-8" in msg


def test_several_yaml_documents_in_one_file_are_refused(tmp_path):
    (msg,) = refused(write_text(tmp_path, "name: a\n---\nname: b\n"))

    assert msg == "not valid YAML: expected a single document in the stream, but found another document"


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "a list"), ("just words\n", "a string"), ("42\n", "a number")])
def test_a_top_level_that_is_not_a_mapping_is_refused(tmp_path, text, kind):
    (msg,) = refused(write_text(tmp_path, text))

    assert msg.startswith("the top level must be a mapping of sections") and msg.endswith(f"not {kind}")


def test_a_directory_given_as_the_file_is_refused(tmp_path):
    (msg,) = refused(tmp_path)

    assert msg == f"cannot read {tmp_path}: a directory"


def test_an_impossible_date_is_a_yaml_error_with_its_line(tmp_path, demo):
    text = DEMO.read_text() + "\nvenues:\n  - {code: XX, timezone: UTC, sessions: [{start: '09:00', end: '10:00'}], holidays: [2025-13-45]}\n"

    with pytest.raises(ConfigError) as e:
        load_config(write_text(tmp_path, text))

    (issue,) = e.value.issues
    assert issue.message.startswith("not valid YAML: cannot read '2025-13-45'") and issue.line is not None


# --------------------------------------------------------------------------- 5. numbers
@pytest.mark.parametrize("value, reason", [
    (10**400, "an integer of 401 digits is beyond any real quantity"),
    ("1e400", "input should be less than or equal to 1E+15"),
    (float("inf"), ".inf is not a finite number"),
    (float("nan"), ".nan is not a finite number"),
    (2 * 10**15, "input should be less than or equal to 1E+15"),
])
def test_a_capital_beyond_anything_real_is_refused_at_its_path(tmp_path, demo, value, reason):
    demo["accounts"][0]["capital"] = value

    msgs = refused(write_yaml(tmp_path, demo))

    assert len(msgs) == 1 and msgs[0].startswith("accounts[0].capital: ") and reason in msgs[0]


@pytest.mark.parametrize("where, value, reason", [
    (("risk", "default_limits", "max_order_notional"), "1e20", "less than or equal to 1E+15"),
    (("risk", "default_limits", "max_order_qty"), 10**13, "less than or equal to 1000000000000"),
    (("risk", "monitors", "ack_latency_p99_ms"), "1e-30", "too small"),
    (("fx", 0, "rate"), "1e12", "less than or equal to 1E+9"),
    (("strategies", 0, "hedge_ratio"), "1e99", "less than or equal to 1E+9"),
    (("ledger", "shards"), 10**6, "less than or equal to 1024"),
    (("strategies", 0, "legs", 0, "ratio"), 10**30, "beyond any real quantity"),
])
def test_limits_rates_and_counts_beyond_anything_real_are_refused(tmp_path, demo, where, value, reason):
    if where[0] == "fx":
        demo["fx"] = [{"base": "USD", "quote": "CNY", "source": "static", "rate": 7.1}]
    node = demo
    for k in where[:-1]:
        node = node.setdefault(k, {}) if isinstance(k, str) else node[k]
    node[where[-1]] = value

    msgs = refused(write_yaml(tmp_path, demo))

    path = ".".join(str(k) for k in where).replace(".0.", "[0].").replace(".0", "[0]")
    assert any(m.startswith(path + ":") and reason in m for m in msgs), msgs


def test_an_instrument_tick_of_infinity_is_refused_in_the_included_catalogue(tmp_path, demo):
    path = write_yaml(tmp_path, demo)
    cat = tmp_path / "catalogue.yaml"
    cat.write_text(cat.read_text().replace("tick_size: 0.0005", "tick_size: .inf"))

    with pytest.raises(ConfigError) as e:
        load_config(path)

    (issue,) = e.value.issues
    assert issue.message == ".inf is not a finite number" and issue.file.endswith("catalogue.yaml")
    assert "tick_size" in issue.path


# --------------------------------------------------------------------------- 6. secrets from the environment
SECRET = "sk-live-7f3a9c2e41"


def test_a_secret_expanded_into_a_credential_field_is_not_echoed(tmp_path, demo):
    demo["accounts"][0]["credentials"] = {"api_key": {"env": "${XMC_TEST_BROKER_KEY}"}}
    env = {**os.environ, "XMC_TEST_BROKER_KEY": SECRET}

    msgs = refused(write_yaml(tmp_path, demo), env=env)

    (msg,) = msgs
    assert msg.startswith("accounts[0].credentials.api_key.env: string should match pattern")
    assert SECRET not in msg and "${XMC_TEST_BROKER_KEY}" in msg


def test_a_secret_expanded_into_a_validated_field_is_not_echoed(tmp_path, demo):
    demo["accounts"][0]["currency"] = "${XMC_TEST_BROKER_KEY}"
    env = {**os.environ, "XMC_TEST_BROKER_KEY": SECRET}

    msgs = refused(write_yaml(tmp_path, demo), env=env)

    assert any(m.startswith("accounts[0].currency:") for m in msgs), msgs
    assert not any(SECRET in m for m in msgs) and any("${XMC_TEST_BROKER_KEY}" in m for m in msgs)


def test_a_secret_expanded_into_a_cross_reference_is_not_echoed(tmp_path, demo):
    demo["strategies"][0]["legs"][0]["account"] = "${XMC_TEST_BROKER_KEY}"
    env = {**os.environ, "XMC_TEST_BROKER_KEY": SECRET}

    msgs = refused(write_yaml(tmp_path, demo), env=env)

    assert msgs == ["strategies[0].legs[0].account: unknown account '${XMC_TEST_BROKER_KEY}'"]


def test_a_long_secret_expanded_into_a_strategy_parameter_is_not_echoed_even_in_part(tmp_path, demo):
    long_secret = "sk-live-" + "9" * 90
    demo["strategies"][0]["params"]["signal"] = "${XMC_TEST_BROKER_KEY}"
    env = {**os.environ, "XMC_TEST_BROKER_KEY": long_secret}

    (msg,) = refused(write_yaml(tmp_path, demo), env=env)

    assert msg.startswith("strategies[0].params.signal: ") and msg.endswith("(got '${XMC_TEST_BROKER_KEY}')")
    assert "sk-live-99" not in msg


# --------------------------------------------------------------------------- 7. credentials
class _LiveParams(BaseModel):
    model_config = ConfigDict(extra="allow")


@pytest.fixture()
def live_adapter(monkeypatch):
    ADAPTERS.names()  # the built-ins first, so that they do not replace the entry below
    monkeypatch.setitem(ADAPTERS.entries, "live-test", Entry("live-test", _LiveParams))


def test_validate_fails_when_a_live_adapter_needs_an_unset_credential(tmp_path, demo, live_adapter, capsys, monkeypatch):
    demo["gateways"][1]["adapter"] = "live-test"  # COMEX, traded through us-main
    monkeypatch.delenv("XMC_US_API_KEY", raising=False)
    monkeypatch.setenv("XMC_CN_API_KEY", "set")
    path = write_yaml(tmp_path, demo)

    code = xmc(["validate", str(path)])

    err = capsys.readouterr().err
    assert code == 1
    assert ("accounts[1].credentials.api_key: environment variable XMC_US_API_KEY (a credential) is not set "
            "(a live adapter reads it when its gateway connects)") in err
    assert "Traceback" not in err


def test_validate_notes_credentials_only_simulated_adapters_would_use(tmp_path, demo, capsys, monkeypatch):
    monkeypatch.delenv("XMC_US_API_KEY", raising=False)
    path = write_yaml(tmp_path, demo)

    code = xmc(["validate", str(path)])

    out = capsys.readouterr().out
    assert code == 0 and "note: accounts[1].credentials.api_key refers to $XMC_US_API_KEY" in out


def test_validate_can_require_every_credential(tmp_path, demo, capsys, monkeypatch):
    monkeypatch.delenv("XMC_US_API_KEY", raising=False)
    path = write_yaml(tmp_path, demo)

    code = xmc(["validate", "--require-credentials", str(path)])

    assert code == 1 and "XMC_US_API_KEY (a credential) is not set" in capsys.readouterr().err


# --------------------------------------------------------------------------- 8. duplicate keys
def test_a_key_given_twice_in_one_mapping_is_refused_with_both_lines(tmp_path):
    text = DEMO.read_text().replace("      entry: 0.012\n", "      entry: 0.012\n      entry: 0.5\n", 1)
    first = text.splitlines().index("      entry: 0.012") + 1

    with pytest.raises(ConfigError) as e:
        load_config(write_text(tmp_path, text))

    (issue,) = e.value.issues
    assert str(issue) == (f"strategies[0].params.entry: duplicate key 'entry' (first at line {first}, again at line "
                          f"{first + 1}): a key may appear only once in a mapping")
    assert issue.line == first + 1


def test_validate_names_the_file_line_and_key_of_every_duplicate_in_a_file(tmp_path, capsys):
    # Arrange: two duplicates in the deployment file
    text = DEMO.read_text().replace("      entry: 0.012\n", "      entry: 0.012\n      entry: 0.5\n", 1)
    text = text.replace("name: demo\n", "name: demo\nname: demo2\n", 1)
    path = write_text(tmp_path, text)
    entry_line = text.splitlines().index("      entry: 0.5") + 1
    name_line = text.splitlines().index("name: demo2") + 1

    # Act
    code = xmc(["validate", str(path)])

    # Assert: both reported in one run (not only the first one met), each as file:line: path: reason
    err = capsys.readouterr().err
    assert code == 1
    assert (f"{path}:{name_line}: name: duplicate key 'name' (first at line {name_line - 1}, again at line "
            f"{name_line})") in err
    assert (f"{path}:{entry_line}: strategies[0].params.entry: duplicate key 'entry' "
            f"(first at line {entry_line - 1}, again at line {entry_line})") in err
    assert f"{path}: 2 problems found" in err


def test_a_duplicate_in_an_included_file_names_that_file(tmp_path, capsys):
    path = write_text(tmp_path, DEMO.read_text())
    cat = (tmp_path / "catalogue.yaml").read_text()
    cat = cat.replace("    timezone: Asia/Shanghai\n", "    timezone: Asia/Shanghai\n    timezone: Europe/London\n", 1)
    (tmp_path / "catalogue.yaml").write_text(cat)
    tz_line = cat.splitlines().index("    timezone: Europe/London") + 1

    code = xmc(["validate", str(path)])

    err = capsys.readouterr().err
    assert code == 1
    assert (f"{tmp_path / 'catalogue.yaml'}:{tz_line}: venues[0].timezone: duplicate key 'timezone' "
            f"(first at line {tz_line - 1}, again at line {tz_line})") in err


def test_a_key_given_twice_on_one_line_is_refused(tmp_path):
    (msg,) = refused(write_text(tmp_path, "run: {a: 1, a: 2}\n"))

    assert msg.startswith("run.a: duplicate key 'a' (first at line 1, again at line 1)")


def test_a_merge_key_may_be_overridden(tmp_path):
    text = DEMO.read_text().replace("risk:\n", "limits: &lim {max_order_qty: 50, collar_pct: 0.05}\nrisk:\n", 1)
    text = text.replace("  default_limits: {max_order_qty: 50, collar_pct: 0.05}",
                        "  default_limits: {<<: *lim, max_order_qty: 40}")
    path = write_text(tmp_path, text)

    (msg,) = refused(path)  # only the unknown top-level key `limits`

    assert msg.startswith("limits: unknown field")


# --------------------------------------------------------------------------- 9. data files
def test_a_missing_replay_file_is_reported_at_its_path(tmp_path, demo):
    demo["gateways"][1]["feed"]["params"]["files"][0]["path"] = str(tmp_path / "gc.csv")

    msgs = refused(write_yaml(tmp_path, demo))

    assert msgs == [f"gateways[1].feed.params.files[0].path: replay file: file {tmp_path / 'gc.csv'} does not exist"]


def test_a_replay_file_of_another_format_is_reported(tmp_path, demo):
    demo["gateways"][0]["feed"]["params"]["files"][0]["path"] = str(DATA / "comex_gc_daily.csv")  # as sge_daily

    (msg,) = refused(write_yaml(tmp_path, demo))

    assert msg.startswith("gateways[0].feed.params.files[0].path: replay file: ")
    assert "format sge_daily expects columns date,open,close,low,high; found date,open,high,low,close" in msg


def test_a_replay_file_whose_rows_are_not_bars_is_reported(tmp_path, demo):
    bad = tmp_path / "sge.csv"
    bad.write_text("date,open,close,low,high\n19/12/2016,262.45,262.76,262.02,263.5\n")
    demo["gateways"][0]["feed"]["params"]["files"][0]["path"] = str(bad)

    (msg,) = refused(write_yaml(tmp_path, demo))

    assert msg.endswith("the first rows do not read as format sge_daily (line 2: date '19/12/2016' is not YYYY-MM-DD)")


def test_a_binary_replay_file_is_reported(tmp_path, demo):
    bad = tmp_path / "gc.csv"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    demo["gateways"][1]["feed"]["params"]["files"][0]["path"] = str(bad)

    (msg,) = refused(write_yaml(tmp_path, demo))

    assert msg == f"gateways[1].feed.params.files[0].path: replay file: {bad} is a binary file, not CSV text (format comex_daily)"


def test_a_missing_fx_file_is_reported_at_fx_file(tmp_path, demo):
    demo["fx"][0]["file"] = str(tmp_path / "dexchus.csv")

    msgs = refused(write_yaml(tmp_path, demo))

    assert msgs == [f"fx[0].file: FX rates file: file {tmp_path / 'dexchus.csv'} does not exist"]


def test_an_fx_file_that_is_not_a_fred_series_is_reported(tmp_path, demo):
    demo["fx"][0]["file"] = str(DATA / "sge_au9999_daily.csv")

    (msg,) = refused(write_yaml(tmp_path, demo))

    assert msg.startswith("fx[0].file: FX rates file: ") and "expects two columns date,<SERIES>" in msg


# --------------------------------------------------------------------------- through the CLI
@pytest.mark.parametrize("text", ["", billion_laughs(), "run: " + "[" * 20_000 + "]" * 20_000 + "\n"],
                         ids=["empty", "bomb", "deep"])
def test_cli_validate_refuses_bad_files_without_a_traceback(tmp_path, capsys, text):
    path = write_text(tmp_path, text)

    code = xmc(["validate", str(path)])

    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"{path}:" in err and "1 problem found" in err


def test_cli_validate_in_a_process_of_its_own_refuses_a_bomb_without_a_traceback(tmp_path):
    path = write_text(tmp_path, billion_laughs(levels=12))

    r = subprocess.run([sys.executable, "-m", "xmc_actors.ops.cli", "validate", str(path)], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)

    assert r.returncode == 1 and "Traceback" not in r.stderr and "YAML bomb" in r.stderr


def test_the_shipped_configurations_stay_valid():
    for name in ("demo.yaml", "fifty.yaml", "cluster-demo.yaml", "catalogue.yaml"):
        load_config(ROOT / "configs" / name)
