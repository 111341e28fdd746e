"""The CLI's acting commands under the operator API's authorisation.

While a deployment runs its operator API (the ``api-desk`` actor exists in its namespace), ``xmc
halt|reduce|resume``, ``xmc limits set``, ``xmc resolve``, ``xmc accept-positions``, ``xmc
promote|demote``, ``xmc roll``, ``xmc stop`` and ``xmc confirm`` need a token, exactly as the API does:

* the token is read from the environment: ``--token-env NAME`` names the variable, else
  ``XMC_API_TOKEN``; there is no option that takes a token on the command line (it would stay in
  the shell's history and the process list), and no message repeats it;
* the deployment's desk says whose it is (the same token book the API's replicas load); the role
  must allow the command's action (``core.operator_api.PERMISSIONS``, the API's matrix;
  ``CLI_COMMANDS`` maps each command to its action); the operator recorded is the token's, and an
  ``--operator`` naming someone else is refused;
* a change that needs a second operator in the API needs one here too (a limit raised above
  ``api.confirm.limit_raise_pct``, a resume while a red alert is open, and with it ``xmc
  resolve`` of an escalated pair and ``xmc accept-positions`` while a red alert is open:
  ``core.operator_api.needs_confirmation``): it is proposed to the same desk and waits; another
  operator confirms it with ``xmc confirm ID`` or the API's ``POST /v1/confirmations/ID`` (the
  console lists it).

Every event the command writes names the operator, their role (the token's; ``unauthenticated``
without an operator API: ``--operator`` as typed) and ``via: cli`` (:meth:`Authorised.by`).

A refusal names its reason, is recorded (BAD_INPUT, via ``cli``) and exits with
:data:`EXIT_UNAUTHORISED` before anything changes; a proposal exits with :data:`EXIT_PENDING`.
Without an operator API the commands behave as they always did (``--operator`` required).
"""
from __future__ import annotations

import argparse
import os
import re
from typing import Any, Mapping

from .cli import CliError

EXIT_UNAUTHORISED = 5  # the operator API's authorisation refused the command: nothing changed
EXIT_PENDING = 6       # the change waits for a second operator's confirmation: nothing changed yet
TOKEN_ENV_DEFAULT = "XMC_API_TOKEN"
EXIT_CODES_HELP = (f"Exit {EXIT_UNAUTHORISED}: its authorisation refused (no token, an unknown token, a role that may "
                   f"not, --operator not the token's); exit {EXIT_PENDING}: a second operator must confirm "
                   "(xmc confirm ID); nothing changed either way")


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def add_token_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token-env", metavar="NAME", default=None,
                   help=f"while the deployment runs its operator API: the environment variable holding your API "
                        f"token (default {TOKEN_ENV_DEFAULT}); the token's operator is recorded. {EXIT_CODES_HELP}")


def read_token(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """(the token or None, the variable it was looked for in). Never prints it."""
    env = os.environ if env is None else env
    name = (getattr(args, "token_env", None) or TOKEN_ENV_DEFAULT).strip()
    if not _ENV_NAME.match(name):  # a token pasted here must not be echoed, logged or recorded
        raise CliError("--token-env: not the name of an environment variable (letters, digits and '_'): give the "
                       "name of the variable that holds your token, never the token itself; nothing changed")
    tok = (env.get(name) or "").strip()
    return (tok or None), name


def decide(command: str, operator_arg: str | None, token: str | None, token_var: str,
           authenticate: Any) -> Any:
    """The authorisation decision, without Ray: the :class:`Principal` to act as, or a CliError
    (code :data:`EXIT_UNAUTHORISED`) naming the reason. ``authenticate(token)`` is the desk's
    (it raises ApiError 401 for a token it does not know)."""
    from ..core.operator_api import ApiError, authorise_command

    if token is None:
        raise CliError(f"xmc {command}: this deployment runs its operator API, so acting commands need an API token: "
                       f"put yours in the environment variable {token_var} (or name another with --token-env NAME; "
                       "`xmc api-token new` makes one); nothing changed", code=EXIT_UNAUTHORISED)
    try:
        p = authenticate(token)
        authorise_command(p, command, operator_arg)
    except ApiError as e:
        raise CliError(f"xmc {command}: refused by the operator API's authorisation: {e.reason}; nothing changed",
                       code=EXIT_UNAUTHORISED) from None
    return p


class Authorised:
    """Who acts (``principal``, ``operator``) and the desk to propose to; ``desk`` is None (and
    ``principal`` too) when no operator API runs: the command goes on as before."""

    def __init__(self, operator: str, principal: Any = None, desk: Any = None, timeout: float = 10.0) -> None:
        self.operator, self.principal, self.desk, self.timeout = operator, principal, desk, timeout

    def by(self) -> dict[str, str]:
        """The role and channel the command's events record (core/attribution.py): the token's
        role, or ``unauthenticated`` when no operator API authorised it; ``via: cli``."""
        from ..core.attribution import cli_by

        return cli_by(self.principal)

    def call(self, method: str, *a: Any) -> Any:
        import ray

        from ..api.desk import raise_if_error

        try:
            answer = ray.get(self.desk.call.remote(method, *a), timeout=self.timeout)
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
            # not a refusal and not a success: a script must not read a failed halt as done
            raise CliError(f"the operator API's desk did not answer ({type(e).__name__}) within {self.timeout:g} s; "
                           "nothing changed", code=4) from None
        return raise_if_error(answer)

    def confirmation(self, action: str, params: dict[str, Any], status: Mapping[str, Any]) -> None:
        """When the change needs a second operator (the API's rule, the desk's thresholds):
        propose it and stop with EXIT_PENDING; otherwise return (go ahead)."""
        if self.desk is None:
            return
        from ..core.operator_api import needs_confirmation
        from ..model.api import ConfirmConfig
        from ..api.desk import principal_wire

        why = needs_confirmation(ConfirmConfig.model_validate(self.call("confirm_config")), action, params, status)
        if not why:
            return
        pend = self.call("propose", action, params, principal_wire(self.principal), why, "cli")
        raise CliError(f"{why}: a second operator must confirm within {(pend['expires_ns'] - pend['opened_ns']) / 1e9:g} s "
                       f"(`xmc confirm {pend['confirmation_id']}` with their token, or POST /v1/confirmations/"
                       f"{pend['confirmation_id']}); nothing changed yet", code=EXIT_PENDING)


def locate_desk(args: argparse.Namespace) -> Any:
    """Join the deployment (``cmd_ops.join``); its ``api-desk`` actor's handle, or None when it
    runs no operator API."""
    import ray

    from ..api.desk import DESK_NAME
    from .cmd_ops import join

    ns = join(args)
    try:
        return ray.get_actor(DESK_NAME, namespace=ns)
    except ValueError:
        pass
    # no desk: fine when the deployment runs no operator API; when it says it does, the desk is
    # gone (restarting, or stopped by hand) and acting without its authorisation is refused
    from ..runtime.session import REGISTRY_NAME

    try:
        api = bool(ray.get(ray.get_actor(REGISTRY_NAME, namespace=ns).describe.remote(), timeout=10).get("api"))
    except Exception:  # noqa: BLE001 - no registry (a bare actor): the command goes on as before
        api = False
    if api:
        raise CliError("this deployment runs its operator API but its desk (api-desk) is not there: acting "
                       "commands wait for it (retry shortly); nothing changed", code=EXIT_UNAUTHORISED)
    return None


def authorise_cli(args: argparse.Namespace, command: str, *, required_operator: bool = True) -> Authorised:
    """Join the deployment; if it runs an operator API, authorise ``xmc <command>`` by the
    caller's token (CliError EXIT_UNAUTHORISED otherwise, recorded). Without one: ``--operator``
    as before (CliError 2 when it is missing and ``required_operator``)."""
    timeout = float(getattr(args, "timeout", 10.0) or 10.0)
    operator_arg = (getattr(args, "operator", None) or "").strip()
    token, var = read_token(args)
    missing = ("--operator NAME is required: every operator action is recorded with who did it (while an operator "
               f"API runs, the operator of your token in {var})")
    if required_operator and not operator_arg and token is None:
        raise CliError(missing)  # before looking for a deployment: neither way says who acts
    desk = locate_desk(args)
    if desk is None:
        if required_operator and not operator_arg:
            raise CliError(missing)
        return Authorised(operator_arg, timeout=timeout)
    from ..api.desk import principal_from

    auth = Authorised("", None, desk, timeout)
    try:
        p = decide(command, operator_arg or None, token, var,
                   lambda t: principal_from(auth.call("authenticate", t)))
    except CliError as e:
        _record_refusal(auth, command, str(e), operator_arg)
        raise
    auth.operator, auth.principal = p.operator, p
    return auth


def _record_refusal(auth: Authorised, command: str, reason: str, operator_arg: str) -> None:
    """BAD_INPUT in the ledger, as the API records its refusals (best effort; never the token)."""
    try:
        auth.call("refused", 403, reason[:500], "authorization", f"cli:xmc {command}",
                  None, "cli")
    except Exception:  # noqa: BLE001 - recording must not hide the refusal
        pass
