"""The CLI joins the Ray instance of the deployment it is asked about, not whichever Ray
another process on this machine started last."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from xmc_actors.runtime.session import ConnectError, _address_file, forget_embedded, record_embedded, resolve_address


def test_an_embedded_deployment_is_found_by_its_namespace_while_its_driver_lives(tmp_path, monkeypatch):
    monkeypatch.setenv("XMC_RUN_DIR", str(tmp_path))
    record_embedded("desk-a", "127.0.0.1:61234")
    record_embedded("desk-b", "127.0.0.1:61999")

    assert resolve_address(None, "desk-a") == "127.0.0.1:61234"
    assert resolve_address(None, "desk-b") == "127.0.0.1:61999"
    assert resolve_address("10.0.0.5:6379", "desk-a") == "10.0.0.5:6379"  # an explicit address wins
    with pytest.raises(ConnectError, match="no deployment is running in namespace 'no-such-desk'"):
        resolve_address(None, "no-such-desk")  # never `auto`: it joins whatever Ray another process started


def test_a_record_left_by_a_dead_driver_is_ignored_and_only_its_owner_removes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XMC_RUN_DIR", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _address_file("desk").write_text(json.dumps({"address": "127.0.0.1:61234", "pid": int(dead.stdout)}))

    with pytest.raises(ConnectError):
        resolve_address(None, "desk")
    forget_embedded("desk")  # not ours: left alone
    assert _address_file("desk").exists()
    record_embedded("desk", "127.0.0.1:60000")
    forget_embedded("desk")
    assert not _address_file("desk").exists()


def test_a_garbled_record_is_no_deployment(tmp_path, monkeypatch):
    monkeypatch.setenv("XMC_RUN_DIR", str(tmp_path))
    _address_file("desk").write_text("not json")
    with pytest.raises(ConnectError):
        resolve_address(None, "desk")
