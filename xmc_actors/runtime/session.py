"""Starting or joining Ray, and finding a running deployment.

``xmc run`` starts an embedded single-machine Ray (the default) or joins ``--address``. Every
actor of a deployment is named in the deployment's namespace (``xmc`` by default). A small
:class:`DeploymentRegistry` actor, named ``deployment``, holds the deployment's description and
the names of all its actors, so ``xmc status`` and the operator commands, from another shell,
find everything without knowing the configuration.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import ray

REGISTRY_NAME = "deployment"
log = logging.getLogger(__name__)


def start_ray(address: str | None, namespace: str, *, num_cpus: int | None = None,
              dashboard: bool = False, quiet: bool = True) -> dict[str, Any]:
    """Start an embedded Ray (``address`` None) or join a cluster; returns Ray's context info."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address, "embedded": address is None}
    kwargs: dict[str, Any] = dict(namespace=namespace, ignore_reinit_error=True, log_to_driver=not quiet,
                                  logging_level=logging.WARNING if quiet else logging.INFO)
    if address is None:
        # "local" always starts a new instance; a bare ray.init() would join any cluster
        # another process on this machine recorded in /tmp/ray/ray_current_cluster.
        kwargs.update(address="local", num_cpus=num_cpus, include_dashboard=dashboard)
    else:
        kwargs["address"] = address
        prepare_join(address)  # a dead address or a wrong token: one clear error in seconds
    ctx = ray.init(**kwargs)
    gcs = ctx.address_info.get("gcs_address", "")
    if address is None and gcs:
        record_embedded(namespace, gcs)
    return {"address": gcs, "embedded": address is None, "dashboard_url": ctx.dashboard_url or ""}


def _run_dir() -> Path:
    return Path(os.environ.get("XMC_RUN_DIR", "/tmp/xmc-run"))


def _address_file(namespace: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in namespace) or "xmc"
    return _run_dir() / f"{safe}.address"


TOKEN_ENV, TOKEN_PATH_ENV, AUTH_MODE_ENV = "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"


def default_token_path() -> Path:
    """Where Ray keeps the token of a cluster ``ray.init()`` started (and ``ray get-auth-token
    --generate`` writes): ``~/.ray/auth_token``. Ray reads ``RAY_AUTH_TOKEN`` first, then the file
    named by ``RAY_AUTH_TOKEN_PATH``, then this file."""
    return Path.home() / ".ray" / "auth_token"


def auth_record(env: dict[str, str] | None = None) -> dict[str, Any]:
    """How a driver that has just started Ray authenticates: the mode Ray set (``ray.init()``
    of a new local instance turns ``token`` on and creates the token file) and where the token
    is. Never the token itself: the address file is world-readable, the token file is not."""
    env = dict(os.environ) if env is None else env
    mode = (env.get(AUTH_MODE_ENV) or "disabled").lower()
    rec: dict[str, Any] = {"auth_mode": mode}
    if mode == "token":
        if env.get(TOKEN_ENV):
            rec["token_source"] = "env"          # RAY_AUTH_TOKEN in the driver's environment
        else:
            rec["token_source"] = "file"
            rec["token_path"] = str(Path(env.get(TOKEN_PATH_ENV) or default_token_path()).expanduser())
    return rec


def record_embedded(namespace: str, gcs_address: str) -> None:
    """Remember which Ray instance the embedded deployment of ``namespace`` runs on, and how to
    authenticate to it, so that ``xmc status`` / ``halt`` / ... from another shell join that
    one, not whichever Ray another process on this machine started last (what ``auto`` would
    pick)."""
    try:
        f = _address_file(namespace)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"address": gcs_address, "pid": os.getpid(), "namespace": namespace,
                                 **auth_record()}))
    except OSError as e:
        log.warning("could not record the embedded Ray address of %r: %s (operator commands then need "
                    "--address)", namespace, e)


def forget_embedded(namespace: str) -> None:
    """The embedded deployment of ``namespace`` stopped (only its own record is removed)."""
    f = _address_file(namespace)
    try:
        if json.loads(f.read_text()).get("pid") == os.getpid():
            f.unlink()
    except (OSError, ValueError):
        pass


class ConnectError(LookupError):
    """The CLI could not join the deployment; ``code`` is the exit code (3: nothing to join)."""

    def __init__(self, message: str, code: int = 3) -> None:
        super().__init__(message)
        self.code = code


def _live_record(f: Path) -> dict[str, Any] | None:
    try:
        rec = json.loads(f.read_text())
        pid, _ = int(rec["pid"]), str(rec["address"])
        os.kill(pid, 0)  # its driver still running? (signal 0 only checks)
    except PermissionError:
        return rec  # alive, another user's process
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return rec if isinstance(rec, dict) else None


def running_deployments() -> dict[str, dict[str, Any]]:
    """namespace -> record of every embedded deployment whose driver runs on this machine."""
    out: dict[str, dict[str, Any]] = {}
    try:
        files = sorted(_run_dir().glob("*.address"))
    except OSError:
        return out
    for f in files:
        rec = _live_record(f)
        if rec is not None:
            out[str(rec.get("namespace") or f.name[: -len(".address")])] = rec
    return out


def resolve_target(address: str | None, namespace: str | None) -> tuple[str, str, dict[str, Any]]:
    """(address, namespace, record) the CLI joins: ``address`` if given; else the address file of
    the embedded deployment of ``namespace`` (its driver still alive); with no ``namespace``,
    the one embedded deployment running here, else ``xmc``'s. Never ``auto``, which joins
    whatever Ray another process started. :class:`ConnectError` says what to do otherwise."""
    if address:
        return address, namespace or "xmc", {}
    if namespace is None:
        running = running_deployments()
        if len(running) == 1:
            (ns, rec), = running.items()
            return str(rec["address"]), ns, rec
        namespace = "xmc"
    rec = _live_record(_address_file(namespace))
    if rec is not None:
        return str(rec["address"]), namespace, rec
    running = sorted(running_deployments())
    hint = (f"running here: {', '.join(running)} (pass --namespace)" if running
            else "none runs on this machine: start one with `xmc run CONFIG`")
    raise ConnectError(f"no deployment is running in namespace {namespace!r} on this machine "
                       f"({_address_file(namespace)} names no live `xmc run`); {hint}; "
                       f"for a deployment on a cluster, pass --address HOST:PORT")


def resolve_address(address: str | None, namespace: str) -> str:
    """The Ray address the CLI joins for ``namespace`` (:func:`resolve_target`)."""
    return resolve_target(address, namespace)[0]


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on (``ray.init`` would retry for minutes)."""
    import socket

    if not address or address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as e:
        raise ConnectError(f"no Ray cluster answers at {address}: {e}") from None


def _token_available(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if env is None else env
    if env.get(TOKEN_ENV):
        return True
    path = Path(env.get(TOKEN_PATH_ENV) or default_token_path()).expanduser()
    try:
        return bool(path.read_text().strip())
    except OSError:
        return False


def _set_token_mode() -> None:
    """Turn token authentication on in this process (Ray reads the mode from the environment
    into its config: refresh both, and the token loader's cache)."""
    os.environ[AUTH_MODE_ENV] = "token"
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except Exception as e:  # noqa: BLE001 - an older Ray without token auth: nothing to refresh
        log.debug("token mode refresh: %s", e)


def _apply_record_auth(rec: dict[str, Any]) -> None:
    """Use what the deployment's driver recorded, unless this shell says otherwise
    (``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` set by hand win)."""
    if rec.get("auth_mode") != "token" or AUTH_MODE_ENV in os.environ:
        return
    if rec.get("token_path") and not os.environ.get(TOKEN_ENV) and TOKEN_PATH_ENV not in os.environ \
            and Path(rec["token_path"]).expanduser() != default_token_path():
        os.environ[TOKEN_PATH_ENV] = str(rec["token_path"])
    _set_token_mode()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[Callable[[], str]]:
    """Ray's C++ core logs each failed attempt to stderr (20 lines of ``InvalidAuthToken``): keep
    them out of the operator's terminal while joining; what was said is read back for the error."""
    captured = tempfile.TemporaryFile(mode="w+b")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded in a test runner): nothing to hide
        yield lambda: ""
        captured.close()
        return

    def read() -> str:
        captured.flush()
        captured.seek(0)
        return captured.read().decode("utf-8", "replace")

    os.dup2(captured.fileno(), 2)
    try:
        yield read
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        captured.close()


class _AuthFailed(Exception):
    pass


def _probe(address: str, timeout_s: float) -> None:
    """One GCS round trip: AuthenticationError at once for a missing or wrong token (``ray.init``
    would retry for 20 s), ConnectError when the GCS does not answer within ``timeout_s``."""
    try:
        from ray._raylet import GcsClient
    except ImportError:
        return
    result: dict[str, BaseException | None] = {}

    def go() -> None:
        try:
            GcsClient(address=address)
            result["error"] = None
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            result["error"] = e

    t = threading.Thread(target=go, name="xmc-gcs-probe", daemon=True)
    t.start()
    t.join(timeout_s)
    if "error" not in result:
        raise ConnectError(f"the Ray cluster at {address} does not answer (no GCS reply within {timeout_s:.0f} s)")
    err = result["error"]
    if err is None:
        return
    if type(err).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(err) or "Unauthenticated" in str(err):
        raise _AuthFailed(str(err).splitlines()[0] if str(err) else type(err).__name__)
    raise ConnectError(f"cannot join the Ray cluster at {address}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")


def _auth_message(address: str, rec: dict[str, Any], detail: str) -> str:
    mode = os.environ.get(AUTH_MODE_ENV, "disabled")
    if rec.get("token_source") == "env" and not os.environ.get(TOKEN_ENV):
        how = ("the deployment's driver took its token from RAY_AUTH_TOKEN: set the same RAY_AUTH_TOKEN "
               "in this shell")
    elif os.environ.get(TOKEN_ENV):
        how = "RAY_AUTH_TOKEN in this shell is not the cluster's token"
    elif _token_available():
        where = os.environ.get(TOKEN_PATH_ENV) or str(default_token_path())
        how = f"the token in {where} is not the cluster's (a token generated after the cluster started?)"
    else:
        where = os.environ.get(TOKEN_PATH_ENV) or str(default_token_path())
        how = (f"no token here: copy the cluster's token to {where} (`ray get-auth-token` on the head prints it) "
               "or set RAY_AUTH_TOKEN")
    return (f"the Ray cluster at {address} refused this client's authentication token ({how}; "
            f"RAY_AUTH_MODE is {mode!r} here); Ray said: {detail[:300]}")


def prepare_join(target: str, rec: dict[str, Any] | None = None, *, timeout_s: float = 5.0) -> None:
    """Everything before ``ray.init(address=target)``: a TCP check that fails in seconds on an
    address nobody listens on, the authentication the deployment's driver recorded (``rec``),
    and one GCS round trip that tells a missing or wrong token at once (and, for a cluster we
    know nothing of, tries the token on hand). :class:`ConnectError` names the cause."""
    rec = rec or {}
    check_reachable(target, timeout_s=min(timeout_s, 3.0))
    if target == "auto" or "://" in target:
        return
    _apply_record_auth(rec)
    with _quiet_stderr():
        try:
            _probe(target, timeout_s)
        except _AuthFailed as e:
            # Ray joins an explicit address without a token unless RAY_AUTH_MODE says otherwise;
            # with a token on hand and nobody having said, try it (a server whose authentication
            # is disabled ignores a token, so this changes nothing there)
            if AUTH_MODE_ENV in os.environ or not _token_available():
                raise ConnectError(_auth_message(target, rec, str(e))) from None
            _set_token_mode()
            try:
                _probe(target, timeout_s)
            except _AuthFailed as e2:
                raise ConnectError(_auth_message(target, rec, str(e2))) from None


def connect(address: str | None, namespace: str | None, *, timeout_s: float = 5.0) -> str:
    """Join the deployment's Ray for CLI look-ups; returns the namespace joined.

    The one way every CLI command joins: :func:`resolve_target` (``--address``, else the
    deployment's own address file, else an error, never ``auto``), :func:`prepare_join` (fast
    failure on a dead address, the recorded token, a wrong token told at once), then
    ``ray.init`` with Ray's own logs silenced. Every failure is a :class:`ConnectError` naming
    its cause (exit code 3)."""
    if ray.is_initialized():  # joined already (a test, a driver): named actors are looked up by namespace
        return namespace or joined_namespace()
    target, ns, rec = resolve_target(address, namespace)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    prepare_join(target, rec, timeout_s=timeout_s)
    with _quiet_stderr() as said:
        try:
            ray.init(address=target, namespace=ns, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as e:
            detail = " ".join(str(e).split())[:300]
            if "InvalidAuthToken" in said() or "AuthenticationError" in type(e).__name__:
                raise ConnectError(_auth_message(target, rec, detail)) from None
            raise ConnectError(f"cannot join the Ray cluster at {target}: {detail}") from None
    return ns


@ray.remote(num_cpus=0, max_restarts=-1)
class DeploymentRegistry:
    """Holds what a deployment consists of, for ``xmc status`` and operator commands."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = dict(info)
        self.info.setdefault("started_ns", time.time_ns())
        self.state = "STARTING"

    def ready(self) -> dict[str, Any]:
        return {"actor": REGISTRY_NAME, "state": self.state}

    def __repr__(self) -> str:
        """The dashboard's Repr column: ``DeploymentRegistry(deployment: demo in xmc-demo, STARTING)``."""
        from ..model.names import actor_repr

        info = getattr(self, "info", {})
        return actor_repr("DeploymentRegistry", REGISTRY_NAME, f"{info.get('name', '?')} in {info.get('namespace', '?')}",
                          getattr(self, "state", ""))

    def describe(self) -> dict[str, Any]:
        return {**self.info, "state": self.state}

    def set_state(self, state: str) -> None:
        self.state = state

    def update(self, **kw: Any) -> None:
        self.info.update(kw)


def find_registry(address: str | None, namespace: str | None) -> Any:
    """The registry handle of the deployment running in ``namespace`` (None: the one running
    here, see :func:`resolve_target`); :class:`ConnectError` if none. :func:`joined_namespace`
    says which namespace that was."""
    ns = connect(address, namespace)
    try:
        return ray.get_actor(REGISTRY_NAME, namespace=ns)
    except ValueError:
        raise ConnectError(f"no deployment is running in namespace {ns!r}"
                           f"{' at ' + address if address else ''} (start one with `xmc run CONFIG`, "
                           "or pass --namespace)") from None


def joined_namespace(default: str = "xmc") -> str:
    """The namespace :func:`connect` joined."""
    try:
        return ray.get_runtime_context().namespace or default
    except Exception:  # noqa: BLE001 - not connected
        return default


def get_actor(name: str, namespace: str) -> Any:
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        raise LookupError(f"actor {name!r} is not running in namespace {namespace!r}") from None
