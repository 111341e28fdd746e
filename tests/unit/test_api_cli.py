"""``xmc api-token new|list`` (ops/cmd_api.py): the token is printed once and stored only hashed;
the file is 0600 and loads into the API's token book; the deployment file takes ``api:``."""
from __future__ import annotations

import stat

import pytest
import yaml

from xmc_actors.api.serve import load_token_entries
from xmc_actors.core.operator_api import TokenBook
from xmc_actors.model.api import ApiConfig
from xmc_actors.ops.cli import main as xmc


def test_new_prints_once_and_stores_the_hash(tmp_path, capsys):
    f = tmp_path / "tokens.yaml"
    assert xmc(["api-token", "new", "--operator", "alice", "--role", "trader", "--file", str(f)]) == 0
    tok = capsys.readouterr().out.strip()
    assert tok.startswith("xmc.") and tok not in f.read_text() and tok.split(".")[2] not in f.read_text()
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert xmc(["api-token", "new", "--operator", "bob", "--role", "admin", "--file", str(f)]) == 0
    capsys.readouterr()
    book = TokenBook(load_token_entries(ApiConfig(tokens_file=str(f))))
    assert book.authenticate(tok).operator == "alice"
    assert xmc(["api-token", "list", "--file", str(f)]) == 0
    listed = capsys.readouterr().out
    assert "alice\ttrader" in listed and "bob\tadmin" in listed and "scrypt" not in listed


def test_bad_tokens_file_is_named(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text(yaml.safe_dump({"tokens": [{"operator": "x", "role": "boss", "id": "abcd", "hash": "scrypt$1"}]}))
    with pytest.raises(ValueError, match=r"t.yaml: tokens\[0\]"):
        load_token_entries(ApiConfig(tokens_file=str(f)))
    with pytest.raises(ValueError, match="cannot be read"):
        load_token_entries(ApiConfig(tokens_file=str(tmp_path / "missing.yaml")))


def test_deployment_file_api_section():
    from xmc_actors.model.config import DeploymentConfig

    cfg = DeploymentConfig.model_validate({"api": {"enabled": True, "port": 9001, "confirm": {"limit_raise_pct": 10}}})
    assert cfg.api.port == 9001 and cfg.api.confirm.limit_raise_pct == 10 and cfg.api.host == "127.0.0.1"
    assert DeploymentConfig().api.enabled is None
    with pytest.raises(Exception, match="tokenz"):
        DeploymentConfig.model_validate({"api": {"tokenz": []}})
    with pytest.raises(Exception, match="token"):  # a token in clear is refused: a hash or {env: NAME}
        DeploymentConfig.model_validate({"api": {"tokens": [{"operator": "a", "role": "admin", "token": "xmc.a.b"}]}})


def test_a_taken_port_is_refused_by_name():
    import socket

    from xmc_actors.api.serve import ApiStartError, _check_port_free

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        with pytest.raises(ApiStartError, match=f"127.0.0.1:{port} is taken"):
            _check_port_free(ApiConfig(port=port))
    finally:
        s.close()
    _check_port_free(ApiConfig(port=port))  # free again
