"""Every command in the README's "Using it" block still works as written (issue 22 item 7).

One short ``xmc backtest`` (the README's own line, on a copy of its scenario cut to a minute of
market time) writes a finished ledger; then every command that reads a finished ledger or a
file runs as written, with ``var/demo/ledger`` pointing at that ledger and ``DECISION_ID`` at one
of its decisions, and must exit 0. The commands that need a running deployment (or a broker's
statement, a stress result) are parsed by the real parser and asked for ``--help``: a renamed
command or option fails here. No Ray is started.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import duckdb
import pytest

from xmc_actors.ops.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

#: commands run for real against the finished ledger (the key: the command's leading words)
RUN = {("validate",), ("backtest",), ("audit", "trace"), ("audit", "query"), ("audit", "export"),
       ("audit", "report"), ("audit", "reconcile")}


def using_it_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Using it", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README: no ```bash block under 'Using it'"
    return [ln for ln in block.group(1).splitlines() if ln.strip()]


def xmc_commands() -> list[list[str]]:
    out = []
    for line in using_it_lines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "xmc":
            out.append(words[1:])
    return out


def key_of(argv: list[str]) -> tuple[str, ...]:
    return tuple(argv[:2]) if argv[0] == "audit" else (argv[0],)


def test_the_block_is_found_and_every_line_is_a_known_kind() -> None:
    lines = using_it_lines()
    assert len(lines) >= 20
    for line in lines:
        first = shlex.split(line, comments=True)[0]
        if first.startswith("scripts/"):
            script = ROOT / first
            assert script.is_file() and script.stat().st_mode & 0o111, f"README names {first}, which is not an executable script"
        else:
            # source (the venv), export (a shell variable), curl (the API: needs a running
            # deployment; its routes are tested in test_api_app.py), xmc (below)
            assert first in {"source", "export", "curl", "xmc"}, f"README 'Using it': a line of an unknown kind: {line}"
    found = {key_of(a) for a in xmc_commands()}
    assert RUN <= found, f"README no longer shows {sorted(RUN - found)}: update this test's RUN"


@pytest.mark.parametrize("argv", [a for a in xmc_commands() if key_of(a) not in RUN], ids=" ".join)
def test_a_command_that_needs_a_deployment_parses_as_written(argv: list[str], capsys) -> None:
    args = build_parser().parse_args(argv)  # a renamed command or option: SystemExit(2)
    assert callable(getattr(args, "func", None)), f"xmc {' '.join(argv)}: parses to no command"
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    assert "usage: xmc" in capsys.readouterr().out


def test_version_named_in_the_block_answers() -> None:
    assert any("xmc --version" in ln for ln in using_it_lines())
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0


def test_the_ledger_commands_run_as_written_against_a_finished_ledger(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    cmds = {key_of(a): a for a in xmc_commands() if key_of(a) in RUN}

    # the README's own backtest line builds the ledger: its scenario cut to a minute of market time
    bt = cmds.pop(("backtest",))
    scenario = ROOT / bt[1]
    short = tmp_path / scenario.name
    short.write_text(scenario.read_text(encoding="utf-8")
                     .replace("include: [../catalogue.yaml]", f"include: [{ROOT / 'configs' / 'catalogue.yaml'}]")
                     .replace("max_duration_s: 3600", "max_duration_s: 60"), encoding="utf-8")
    assert "max_duration_s: 60" in short.read_text(encoding="utf-8")
    assert main(["backtest", str(short), *bt[2:], "--ledger", str(tmp_path / "ledger"), "--quiet"]) == 0
    policies = sorted(p.name for p in (tmp_path / "ledger").iterdir())
    assert len(policies) >= 2  # --policy all
    ledger = tmp_path / "ledger" / "speed"
    con = duckdb.connect(str(ledger / "shard-0.duckdb"), read_only=True)
    try:
        did = con.execute("SELECT decision_id FROM events WHERE kind = 'ORDER_SENT' LIMIT 1").fetchone()[0]
    finally:
        con.close()
    html = bt[bt.index("--html") + 1] if "--html" in bt else None
    if html:
        assert (tmp_path / html).stat().st_size > 0
    capsys.readouterr()

    def run(argv: list[str]) -> str:
        argv = [str(ledger) if w == "var/demo/ledger" else did if w == "DECISION_ID"
                else str(ROOT / w) if w.startswith("configs/") else w for w in argv]
        code = main(argv)
        out = capsys.readouterr().out
        assert code == 0, f"xmc {' '.join(argv)} exited {code}: {out[-500:]}"
        return out

    assert "valid" in run(cmds.pop(("validate",)))
    out = run(cmds.pop(("audit", "trace")))
    assert did in out and "ORDER_SENT" in out
    q = cmds.pop(("audit", "query"))
    assert run(q).startswith("event_id,")  # --format csv: the header at least
    ex = cmds.pop(("audit", "export"))
    run(ex)
    assert (tmp_path / ex[ex.index("-o") + 1]).stat().st_size > 0
    rep = cmds.pop(("audit", "report"))
    run(rep)
    assert "<html" in (tmp_path / rep[rep.index("-o") + 1]).read_text(encoding="utf-8").lower()
    assert "0 missing" in run(cmds.pop(("audit", "reconcile")))
    assert not cmds
