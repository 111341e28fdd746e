"""``serve_loopback``: the runtime's loopback FIX exchange processes (what the demo uses), without
Ray: started for the gateways that ask for one, the configuration pointed at them, a FIX session
logs on to each, and :meth:`stop` ends them (no process left).
"""
from __future__ import annotations

import pytest
import yaml

from runtime_kit import band, copper_config
from testkit import instrument, venue
from xmc_actors.core.clock import SystemClock
from xmc_actors.runtime.config import load_config, missing_credentials
from xmc_actors.venues.fix.adapter import FixAdapter
from xmc_actors.venues.fix.exchange import control
from xmc_actors.venues.fix.loopback import LoopbackExchanges, needs_loopback
from xmc_actors.venues.fix.params import FixVenueParams

pytestmark = pytest.mark.timeout(120)


def _config(tmp_path, params):
    path = copper_config(tmp_path, "loopback", "test-loopback", strategies=[band("cu")])
    doc = yaml.safe_load(path.read_text())
    for g in doc["gateways"]:
        if g["venue"] == "LME":
            g.update(adapter="fix", params=params)
    doc["accounts"][1]["credentials"] = {"api_key": {"env": "XMC_TEST_UNSET_KEY"}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_config(path)


def test_a_loopback_exchange_is_started_for_the_gateway_pointed_at_it_and_stopped(tmp_path):
    cfg = _config(tmp_path, {"sender_comp_id": "XMCT", "target_comp_id": "LMEX", "serve_loopback": True,
                             "reset_on_logon": True, "store_path": str(tmp_path / "fix"),
                             "loopback_sim": {"seed": 5}})
    assert needs_loopback(cfg) == ["gateway-LME"]
    # no credential is needed for a loopback exchange (the account's only venue is served here)
    assert [needed for _, _, needed in missing_credentials(cfg, env={})] == [False]
    lb = LoopbackExchanges()
    try:
        served = lb.start(cfg)
        [g] = [g for g in served.gateways if g.venue == "LME"]
        p = FixVenueParams.model_validate(g.params)
        assert p.port and p.exchange_control and p.exchange_control.startswith("127.0.0.1:")
        proc, _ = lb.procs["gateway-LME"]
        a = FixAdapter(p, venue("LME"), [instrument("LME.CA3M")], SystemClock(), gateway="gateway-LME")
        try:
            assert a.connected(), "a FIX session logs on to the served exchange"
            assert control(p.exchange_control, {"cmd": "status"})["logged_on"]
        finally:
            a.close()
    finally:
        lb.stop()
    assert proc.poll() is not None and not lb.procs, "the exchange process is gone"


def test_a_fix_gateway_without_a_port_is_refused_unless_served():
    with pytest.raises(ValueError, match="port: required"):
        FixVenueParams.model_validate({"sender_comp_id": "A", "target_comp_id": "B"})
    assert FixVenueParams.model_validate({"sender_comp_id": "A", "target_comp_id": "B", "serve_loopback": True}).port is None
