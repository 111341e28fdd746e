"""Command-line arguments that make no sense are refused before anything starts, naming the
argument and the reason (exit 2, argparse's usage error), never a traceback or a hang."""
from __future__ import annotations

import pytest

from xmc_actors.ops.cli import main


@pytest.mark.parametrize(("argv", "arg", "why"), [
    (["run", "configs/demo.yaml", "--duration", "-5"], "--duration", "not a positive number"),
    (["run", "configs/demo.yaml", "--duration", "inf"], "--duration", "not a positive number"),
    (["run", "configs/demo.yaml", "--per-host", "0"], "--per-host", "not a positive whole number"),
    (["demo", "--duration", "0"], "--duration", "not a positive number"),
    (["audit", "query", "--limit", "-1", "--ledger", "x"], "--limit", "not a whole number >= 0"),
    (["halt", "--timeout", "nan", "--operator", "x"], "--timeout", "not a positive number"),
    (["venue", "serve", "configs/demo.yaml", "--gateway", "LME", "--port", "70000"], "--port", "not a port number"),
])
def test_a_nonsense_argument_is_refused_naming_the_argument_and_the_reason(argv, arg, why, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert f"argument {arg}" in err and why in err and "Traceback" not in err
