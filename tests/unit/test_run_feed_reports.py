"""What a run says of its replayed files (issue 17 item 7): the rows each loader skipped, by
reason, in the summary; a replay in which no strategy evaluated a quote is not a silent exit 0;
a gateway that cannot start says why in `xmc run`'s own output."""
from __future__ import annotations

from xmc_actors.ops.cmd_run import run_exit_code
from xmc_actors.runtime.deploy import RunSummary
from xmc_actors.runtime.placement import creation_error


def summary(**kw) -> RunSummary:
    base = dict(name="byod", wall_s=1.0, pairs_by_outcome={}, quotes=0, intents=0, alerts_by_level={},
                slippage_bps={}, exposure_ms={}, replenished=0, rolled_back=0, escalated=0, strategy_errors=0,
                ledger_path="var/x", per_strategy={"cu": {"state": "ACTIVE", "counters": {"evaluations": 0}}})
    base.update(kw)
    return RunSummary(**base)


WRONG_FORMAT = [{"gateway": "gateway-SHFE", "path": "shfe.csv", "rows": 3120, "kept": 0, "skipped": 3120,
                 "skipped_by_reason": {"bad date": 3120}, "adjusted": 0,
                 "first_skipped": ["line 2: bad date: '02/01/12' is not a date in the format ISO-8601 (2024-03-01)"]},
                {"gateway": "gateway-LME", "path": "lme.csv", "rows": 3150, "kept": 3149, "skipped": 1,
                 "skipped_by_reason": {"blank price": 1}, "adjusted": 0, "first_skipped": ["line 40: blank price"]}]


def test_a_replay_whose_rows_were_all_skipped_says_so_and_does_not_exit_0():
    s = summary(feed_reports=WRONG_FORMAT)
    text = "\n".join(s.lines())
    assert "6,270 read, 3,121 skipped" in text
    assert "gateway-SHFE: shfe.csv: 3,120 rows, 0 kept, 3,120 skipped (3120 x bad date)" in text
    assert "e.g. line 2: bad date: '02/01/12'" in text
    assert "gateway-LME: lme.csv: 3,150 rows, 3,149 kept, 1 skipped (1 x blank price)" in text
    assert "WARNING: no strategy evaluated a quote" in text
    assert run_exit_code(s) == 5


def test_a_replay_that_evaluated_quotes_exits_0_and_still_lists_what_was_skipped():
    s = summary(quotes=6000, feed_reports=WRONG_FORMAT[1:])
    text = "\n".join(s.lines())
    assert "1 x blank price" in text and "WARNING" not in text
    assert run_exit_code(s) == 0


def test_the_reason_an_actor_died_while_starting_is_its_constructor_s_exception():
    ray_text = ("The actor died because of an error raised in its creation task, \x1b[36mray::gateways-copper:VenueGateway.__init__()"
                "\x1b[39m (pid=1, ip=127.0.0.1, actor_id=ab)\n"
                "  File \"/x/gateway.py\", line 70, in build_core\n"
                "    feed = build_feed(gcfg.feed, venue, insts)\n"
                "xmc_actors.feeds.csv_source.CsvLayoutError: no such column in the header (line 1): close: column 'Close'; "
                "the header holds 'Date', 'SHFE Copper Close'\n")
    assert creation_error(RuntimeError(ray_text)) == (
        "CsvLayoutError: no such column in the header (line 1): close: column 'Close'; the header holds 'Date', "
        "'SHFE Copper Close'")
    assert creation_error(RuntimeError("\x1b[36mactor gone\x1b[39m\nmore")) == "actor gone"
