"""The ``api:`` section of a deployment file: the operator API and console (docs/operations.md,
"The operator API and console"; the Serve shell is ``xmc_actors/api``, its pure core
``xmc_actors/core/operator_api.py``).

Tokens are never written here in clear: an entry holds either the token's ``hash`` (what
``xmc api-token new`` prints or appends to a tokens file) or a ``token: {env: NAME}`` reference
to an environment variable that holds it (hashed when the API loads it; the value is never
stored, printed or logged).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .market import SecretRef

FROZEN = ConfigDict(frozen=True, extra="forbid")
ROLES = ("viewer", "trader", "risk_officer", "admin")
Role = Literal["viewer", "trader", "risk_officer", "admin"]
OperatorName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@\-]{0,63}$")]


class TokenEntry(BaseModel):
    """One API token: who it names and what they may do."""

    model_config = FROZEN
    operator: OperatorName
    role: Role
    # the token's key id (the middle of ``xmc.<id>.<secret>``) and its scrypt hash
    # (``scrypt$N$r$p$salt$hash``); or ``token: {env: NAME}``, hashed at load
    id: Annotated[str, Field(pattern=r"^[a-z0-9]{4,32}$")] | None = None
    hash: Annotated[str, Field(pattern=r"^scrypt\$")] | None = None
    token: SecretRef | None = None


class ConfirmConfig(BaseModel):
    """Changes that need a second operator's confirmation (二次确认) within ``window_s``."""

    model_config = FROZEN
    window_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 300.0
    # a limit raised by more than this many percent (or a limit cleared: no limit at all)
    limit_raise_pct: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)] = 20.0
    # a resume while a red alert is open (on the scope resumed, or a global one)
    resume_after_red: bool = True


class WebhookConfig(BaseModel):
    """Where batch and hedge progress is posted (HMAC-signed; core/webhook.py)."""

    model_config = FROZEN
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,40}$")]
    url: Annotated[str, Field(pattern=r"^https?://")]
    secret: SecretRef  # {env: NAME}: the HMAC key, never written in the file
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    backoff_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 1.0
    max_backoff_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 60.0
    timeout_s: Annotated[float, Field(gt=0, le=120, allow_inf_nan=False)] = 5.0


class ApiConfig(BaseModel):
    """``api:`` in the deployment file."""

    model_config = FROZEN
    # None: on for `xmc run` / `xmc demo` in the embedded mode, off for a Deployment built by a
    # program (tests' kits); true/false: as said
    enabled: bool | None = None
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8765
    replicas: Annotated[int, Field(ge=1, le=64)] = 1
    tokens_file: str | None = None  # YAML/JSON {tokens: [TokenEntry...]}, relative to the working directory
    tokens: tuple[TokenEntry, ...] = ()
    # with no token configured at all, on a loopback host, reads are open (as a viewer named
    # "local"); every change still needs a token
    max_body_bytes: Annotated[int, Field(ge=256, le=10_000_000)] = 65_536
    rate_per_s: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)] = 20.0  # per token, per replica
    burst: Annotated[int, Field(ge=1, le=100_000)] = 40
    stream_hz: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 4.0  # WebSocket updates per client
    request_id_ttl_s: Annotated[float, Field(gt=0, le=7 * 86_400, allow_inf_nan=False)] = 86_400.0
    confirm: ConfirmConfig = ConfirmConfig()
    webhooks: tuple[WebhookConfig, ...] = ()  # batch and hedge progress to an ERP (operations.md §16)
    startup_timeout_s: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 60.0
