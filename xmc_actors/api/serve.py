"""The operator API on Ray Serve: one FastAPI ingress deployment (``xmc-api``, ``api.replicas``
replicas, no CPU reserved) in front of the deployment's actors, and the ``api-desk`` actor the
replicas share. :func:`start_api` is what ``runtime.deploy.Deployment`` calls when ``api`` is on;
:func:`stop_api` removes both.

Each replica loads the tokens itself (``api.tokens`` and ``api.tokens_file``; ``{env: NAME}``
references read from its own environment, which Ray gives it from the driver's through the
runtime environment's ``env_vars``: only the variables the token entries name).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from ..model.api import ApiConfig, TokenEntry

log = logging.getLogger(__name__)
APP_NAME = "xmc-api"


class ApiStartError(RuntimeError):
    pass


def load_token_entries(cfg: ApiConfig) -> list[TokenEntry]:
    """``api.tokens`` and the entries of ``api.tokens_file`` (YAML or JSON ``{tokens: [...]}``)."""
    entries = list(cfg.tokens)
    if cfg.tokens_file:
        import yaml

        path = Path(cfg.tokens_file)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as e:
            raise ValueError(f"api.tokens_file {path}: cannot be read ({e.strerror})") from None
        except yaml.YAMLError as e:
            raise ValueError(f"api.tokens_file {path}: not YAML/JSON ({type(e).__name__})") from None
        raw = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(raw, list):
            raise ValueError(f"api.tokens_file {path}: expected a mapping with a list under 'tokens'")
        for i, item in enumerate(raw):
            try:
                entries.append(TokenEntry.model_validate(item))
            except Exception as e:  # noqa: BLE001 - pydantic's error names the field (never a hash or a token)
                raise ValueError(f"api.tokens_file {path}: tokens[{i}]: {str(e).splitlines()[1:3]}") from None
    return entries


def env_refs(entries: list[TokenEntry]) -> dict[str, str]:
    """The environment variables the entries reference, as the driver sees them (passed to the replicas)."""
    return {e.token.env: os.environ[e.token.env] for e in entries if e.token is not None and e.token.env in os.environ}


def _deployment_class() -> Any:
    from ray import serve

    @serve.ingress()
    class OperatorApi:
        def __init__(self, api: dict[str, Any], entries: list[dict[str, Any]], namespace: str,
                     accept: Any = None) -> None:
            from ..core.operator_api import TokenBook
            from .backend import RayBackend

            self.cfg = ApiConfig.model_validate(api)
            self.tokens = TokenBook([TokenEntry.model_validate(e) for e in entries], os.environ)
            self.backend = RayBackend(namespace, accept=accept)

        def __serve_build_asgi_app__(self) -> Any:
            from .app import build_app

            return build_app(self.cfg, self.tokens, self.backend)

    return OperatorApi


def start_api(cfg: ApiConfig, namespace: str, ledger: dict[str, Any] | None, *, detached: bool = False,
              accept: Any = None) -> dict[str, Any]:
    """Start Serve on ``cfg.host:cfg.port`` (once per Ray cluster), the desk, and the ingress;
    returns ``{"url", "console", "startup_s", "openapi", "tokens", "desk"}`` (``desk``: the desk's
    handle, which the caller keeps). ApiStartError saying why otherwise. ``accept``: how the
    deployment accepts its start-of-day positions (``runtime.start_of_day.accept``, handed down by
    the runtime that starts the API, a layer the API does not import), what a confirmed
    ``accept_positions`` runs."""
    import ray
    from ray import serve

    from ..core.operator_api import TokenBook
    from .desk import get_or_create_desk

    t0 = time.monotonic()
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # its INFO lines would go to the run's terminal
    entries = load_token_entries(cfg)
    refs = env_refs(entries)
    TokenBook(entries, {**refs})  # fails here, by entry, before anything starts
    _check_port_free(cfg)
    desk = get_or_create_desk(namespace, cfg.confirm, cfg.request_id_ttl_s, ledger, detached, cfg.webhooks, entries)
    ray.get(desk.ready.remote(), timeout=cfg.startup_timeout_s)
    try:
        serve.start(http_options={"host": cfg.host, "port": cfg.port}, detached=detached)
    except Exception as e:  # noqa: BLE001 - the port taken, the host not ours: say so
        raise ApiStartError(f"api: Serve did not start on {cfg.host}:{cfg.port}: {type(e).__name__}: {e}") from None
    dep = serve.deployment(_deployment_class(), name="OperatorApi", num_replicas=cfg.replicas,
                           ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": refs}} if refs
                           else {"num_cpus": 0})
    app = dep.bind(cfg.model_dump(mode="json"), [e.model_dump(mode="json") for e in entries], namespace, accept)
    try:
        serve.run(app, name=APP_NAME, route_prefix="/")
    except Exception as e:  # noqa: BLE001
        raise ApiStartError(f"api: the ingress did not start: {type(e).__name__}: {e}") from None
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    port = _bound_port(cfg)
    url = f"http://{host}:{port}"
    _check_answers(url, cfg.startup_timeout_s)
    return {"url": url, "console": f"{url}/console/", "openapi": f"{url}/v1/openapi.json",
            "startup_s": round(time.monotonic() - t0, 2), "tokens": len(entries), "desk": desk}


def _check_port_free(cfg: ApiConfig) -> None:
    """Serve's proxy would fail to bind a taken port quietly (and the URL we print would be
    another program's): refuse here, naming the port. A Serve already running in this Ray
    (a second start) is left alone."""
    import socket

    import ray

    if ray.is_initialized():
        from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

        try:
            ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
            return  # Serve already runs in this Ray: its proxy holds the port
        except ValueError:
            pass
    if not cfg.port:
        return
    s = socket.socket()
    try:
        s.bind((cfg.host, cfg.port))
    except OSError as e:
        raise ApiStartError(f"api: {cfg.host}:{cfg.port} is taken ({e.strerror}): set api.port to a free port, "
                            "or api.enabled: false") from None
    finally:
        s.close()


def _check_answers(url: str, timeout_s: float) -> None:
    """The URL answers with this API's schema (not another program's), within ``timeout_s``."""
    import json
    import urllib.request

    end, why = time.monotonic() + timeout_s, ""
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"{url}/v1/openapi.json", timeout=5) as r:
                if json.loads(r.read()).get("info", {}).get("title") == "xmc operator API":
                    return
                why = "another program answers there"
        except Exception as e:  # noqa: BLE001 - not up yet
            why = f"{type(e).__name__}"
        time.sleep(0.2)
    raise ApiStartError(f"api: {url} does not answer as the operator API ({why})")


def _bound_port(cfg: ApiConfig) -> int:
    if cfg.port:
        return cfg.port
    try:  # port 0: the proxy chose one
        from ray.serve.context import _get_global_client

        return int(_get_global_client().http_config.port)
    except Exception:  # noqa: BLE001
        return cfg.port


def stop_api(namespace: str) -> None:
    """Remove the ingress and the desk (what a deployment's stop does); Serve itself goes with Ray."""
    import ray
    from ray import serve

    from .desk import DESK_NAME

    try:
        serve.delete(APP_NAME)
    except Exception as e:  # noqa: BLE001 - a stop goes on
        log.warning("api: the ingress was not removed: %s", type(e).__name__)
    try:
        ray.kill(ray.get_actor(DESK_NAME, namespace=namespace), no_restart=True)
    except Exception:  # noqa: BLE001 - already gone
        pass
