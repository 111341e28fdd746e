"""API tokens: ``xmc api-token new --operator NAME --role ROLE --file TOKENS.yaml`` makes a
token, prints it once, and appends its hashed entry to the tokens file (created 0600); ``xmc
api-token list --file TOKENS.yaml`` shows who holds which key id and role (never a hash).

The deployment file names the tokens file as ``api.tokens_file`` (or lists entries under
``api.tokens``); docs/operations.md, "The operator API and console".
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .cli import CliError

ROLES = ("viewer", "trader", "risk_officer", "admin")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("api-token", help="make or list the operator API's tokens (stored hashed)")
    s = p.add_subparsers(dest="api_token_command", metavar="ACTION")
    n = s.add_parser("new", help="make a token for an operator and role; print it once; append its hash to --file")
    n.add_argument("--operator", required=True, help="who holds it (recorded with every change they make)")
    n.add_argument("--role", required=True, choices=ROLES, help="what they may do (docs/operations.md: the permission matrix)")
    n.add_argument("--file", required=True, help="the tokens file (api.tokens_file); created 0600 if missing")
    n.set_defaults(func=cmd_new)
    ls = s.add_parser("list", help="operators, roles and key ids of a tokens file (no hash, no token)")
    ls.add_argument("--file", required=True)
    ls.set_defaults(func=cmd_list)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _read(path: Path) -> dict[str, Any]:
    import yaml

    if not path.exists():
        return {"tokens": []}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise CliError(f"{path}: not YAML ({type(e).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("tokens", []), list):
        raise CliError(f"{path}: expected a mapping with a list under 'tokens'")
    data.setdefault("tokens", [])
    return data


def add_token(path: Path, operator: str, role: str) -> str:
    """Append a new token's hashed entry to ``path``; returns the token (the only copy)."""
    import yaml

    from ..core.operator_api import hash_token, new_token
    from ..model.api import TokenEntry

    data = _read(path)
    tok, kid = new_token()
    try:
        entry = TokenEntry(operator=operator, role=role, id=kid, hash=hash_token(tok))  # type: ignore[arg-type]
    except Exception as e:  # noqa: BLE001 - pydantic names the field
        raise CliError(f"--operator {operator!r}: {str(e).splitlines()[-1].strip()}") from None
    data["tokens"].append(entry.model_dump(mode="json", exclude_none=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# operator API tokens (hashed): xmc api-token new / list; api.tokens_file in the deployment file\n")
        yaml.safe_dump(data, f, sort_keys=False)
    os.replace(tmp, path)
    return tok


def cmd_new(args: argparse.Namespace) -> int:
    path = Path(args.file)
    tok = add_token(path, args.operator, args.role)
    print(tok)
    import sys

    print(f"token for {args.operator} ({args.role}) added to {path}; it is shown only now: give it to "
          f"{args.operator} (send it as `Authorization: Bearer <token>`). A deployment reads the file at start.",
          file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    data = _read(Path(args.file))
    for e in data["tokens"]:
        kind = f"env {e['token']['env']}" if isinstance(e.get("token"), dict) else f"id {e.get('id')}"
        print(f"{e.get('operator')}\t{e.get('role')}\t{kind}")
    return 0


def demo_token(out: Path) -> tuple[Path, Path]:
    """The demo's own admin token: its hash in ``out/api-tokens.yaml``, the token in
    ``out/api-token`` (0600) for the console's sign-in. Made once per output directory."""
    tokens, secret = out / "api-tokens.yaml", out / "api-token"
    if not (tokens.exists() and secret.exists()):
        tokens.unlink(missing_ok=True)
        tok = add_token(tokens, "demo", "admin")
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(tok + "\n")
    return tokens, secret
