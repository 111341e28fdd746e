"""docs/strategies.md: its worked example of a user strategy runs as written and does what it says."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "strategies.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_worked_example_registers_loads_and_trades_as_documented(capsys, covered_today):
    # covered_today: the example validates a live deployment, judged on a day the calendars cover
    # Arrange
    blocks = _blocks()
    assert len(blocks) == 3
    module = types.ModuleType("docs_strategies_example")
    sys.modules[module.__name__] = module
    ns = module.__dict__
    # Act: the three blocks, in order, as a reader would paste them (without this file's __future__ flags)
    exec(compile("\n".join(blocks), str(DOC), "exec", dont_inherit=True), ns)
    # Assert: what the page says happens
    from xmc_actors.runtime.registry import STRATEGIES

    assert STRATEGIES.get("ema_band").factory is ns["EmaBand"]
    intent = ns["intent"]
    assert intent.decision_id == "gold-ema-00000001"
    legs = [(leg.instrument, leg.side.value, leg.qty, str(leg.limit_price)) for leg in intent.legs]
    assert legs == [("SGE.AU9999", "SELL", 3, "465.70"), ("COMEX.GC", "BUY", 1, "2000.1")]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("gold-ema-00000001 [('SGE.AU9999', 'SELL', 3, '465.70')")
    assert out[1] == "-3 1"


def test_the_printed_results_in_the_page_match_what_the_code_prints():
    text = DOC.read_text()
    assert "# gold-ema-00000001 [('SGE.AU9999', 'SELL', 3, '465.70'), ('COMEX.GC', 'BUY', 1, '2000.1')]" in text
    assert "# -3 1" in text
