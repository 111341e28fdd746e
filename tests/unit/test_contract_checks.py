"""A deployment names concrete contracts (listed or not), is told when one has expired, and a
calendar roll is refused when it would roll after the venue's deadline."""
import datetime as dt
from pathlib import Path

import pytest
import yaml

from testkit import CATALOGUE
from xmc_actors.runtime.config import ConfigError, load_config
from xmc_actors.runtime.contract_checks import contract_checks

UTC = dt.timezone.utc


@pytest.fixture(autouse=True)
def _today_is_7_december_2026(covered_today):
    """The checks judge "today" by the wall clock: pinned (conftest), so these tests do not expire."""


def _deployment(tmp: Path, legs: tuple[str, str], *, cls: str = "band", params: dict | None = None) -> Path:
    def gw(v, seed):
        insts = [x for x in legs if x.startswith(v + ".")]
        return {"venue": v, "adapter": "sim", "params": {"seed": seed, "enforce_sessions": False},
                "feed": {"kind": "synthetic", "params": {"seed": seed, "instruments": insts,
                                                         "start_prices": [72000] * len(insts)}}}
    venues = sorted({x.split(".")[0] for x in legs})
    p = params if params is not None else {"signal": "ratio", "center": 1.0, "entry": 0.001, "exit": 0.0003,
                                           "clip": 5, "guards": {"require_sessions_open": False}}
    doc = {"name": "c", "include": [str(CATALOGUE)], "base_currency": "USD",
           "fx": [{"base": "USD", "quote": "CNY", "source": "static", "rate": 7.1}],
           "accounts": [{"id": "a", "broker": "sim", "venues": venues, "currency": "CNY", "capital": 1e8}],
           "gateways": [gw(v, i + 1) for i, v in enumerate(venues)],
           "strategies": [{"name": "s", "class": cls, "legs": [{"instrument": legs[0], "account": "a"},
                                                                {"instrument": legs[1], "account": "a"}],
                           "params": p}],
           "risk": {"check_sessions": False}, "ledger": {"path": str(tmp / "ledger")}}
    path = tmp / "d.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_a_contract_the_catalogue_does_not_list_is_its_product_under_its_own_id(tmp_path):
    cfg = load_config(_deployment(tmp_path, ("SHFE.cu2703", "LME.CA-20270308")))
    cu, ca = cfg.instrument("SHFE.cu2703"), cfg.instrument("LME.CA-20270308")
    assert (cu.product, cu.multiplier, cu.contract) == ("cu", cfg.instrument("SHFE.cu").multiplier, None)
    assert ca.product == "CA3M" and ca.multiplier == cfg.instrument("LME.CA3M").multiplier


def test_a_name_that_is_no_contract_is_still_an_unknown_instrument(tmp_path):
    with pytest.raises(ConfigError, match="SHFE.cu27x3"):
        load_config(_deployment(tmp_path, ("SHFE.cu27x3", "LME.CA3M")))


def test_an_expired_contract_is_a_note_on_a_simulated_venue_and_a_problem_on_a_real_one(tmp_path):
    cfg = load_config(_deployment(tmp_path, ("SHFE.cu2601", "LME.CA3M")))
    problems, notes = contract_checks(cfg, dt.datetime(2026, 12, 7, tzinfo=UTC))
    assert problems == []
    assert notes == ["SHFE.cu2601 expired on 2026-01-15 (its last trading day); this deployment runs SHFE up to "
                     "2026-12-07; traded by s (simulated venue: it trades on anyway)"]
    live = cfg.model_copy(update={"gateways": tuple(g.model_copy(update={"adapter": "ctp"}) if g.venue == "SHFE" else g
                                                    for g in cfg.gateways)})
    problems, _ = contract_checks(live, dt.datetime(2026, 12, 7, tzinfo=UTC))
    assert problems == [(("strategies", 0, "legs", 0, "instrument"),
                         "SHFE.cu2601 expired on 2026-01-15 (its last trading day); this deployment runs SHFE up "
                         "to 2026-12-07: trade a live contract")]
    assert contract_checks(live, dt.datetime(2026, 1, 15, 3, tzinfo=UTC))[0] == []  # its last day: still alive


def _roll(roll_at):
    return {"roll_at": roll_at, "qty": 1, "guards": {"require_sessions_open": False}}


def test_a_calendar_roll_after_the_near_contracts_deadline_is_refused(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(_deployment(tmp_path, ("SHFE.cu2701", "SHFE.cu2702"), cls="calendar_roll",
                                params=_roll(["2026-12-28T02:00:00Z", "2027-01-05T02:00:00Z"])))
    msg = "\n".join(e.value.messages)
    assert "strategies[0].params.roll_at[1]" in msg and "roll_at[0]" not in msg
    assert "2027-01-05T02:00:00Z is after SHFE.cu2701's hold deadline 2026-12-31" in msg


def test_a_calendar_roll_needs_the_near_contract_first_and_one_product(tmp_path):
    with pytest.raises(ConfigError, match="leg A is the near contract and leg B the far one: SHFE.cu2702 does not "
                                          "expire before SHFE.cu2701"):
        load_config(_deployment(tmp_path, ("SHFE.cu2702", "SHFE.cu2701"), cls="calendar_roll",
                                params=_roll(["2026-12-28T02:00:00Z"])))
    ok = load_config(_deployment(tmp_path, ("SHFE.cu2701", "SHFE.cu2702"), cls="calendar_roll",
                                 params=_roll(["2026-12-28T02:00:00Z"])))
    assert contract_checks(ok, dt.datetime(2026, 12, 7, tzinfo=UTC))[0] == []


def test_an_unlisted_contract_that_has_expired_is_unknown_unless_its_venue_is_replayed(tmp_path):
    with pytest.raises(ConfigError, match="unknown instrument 'SHFE.cu2501'"):
        load_config(_deployment(tmp_path, ("SHFE.cu2501", "LME.CA3M")))
    # a replay of its history: the contract existed then
    data = tmp_path / "cu2501.csv"
    data.write_text("date,open,high,low,close\n2024-12-02,74000,74100,73900,74050\n2024-12-03,74050,74150,73950,74100\n")
    path = _deployment(tmp_path, ("SHFE.cu2501", "LME.CA3M"))
    doc = yaml.safe_load(path.read_text())
    doc["gateways"][1]["feed"] = {"kind": "replay", "params": {"files": [
        {"instrument": "SHFE.cu2501", "path": str(data), "format": "ohlc_csv"}]}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    cfg = load_config(path)
    assert cfg.instrument("SHFE.cu2501").product == "cu"
