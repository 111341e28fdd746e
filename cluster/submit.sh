#!/usr/bin/env bash
# Submit a job to a Ray 2.60 cluster, handling token authentication.
#
#   cluster/submit.sh [--address http://HOST:DASHBOARD_PORT] [--no-wait] [ray job submit options] -- ENTRYPOINT...
#
# Token authentication in Ray 2.60 (checked against the installed ray, see docs/operations.md):
#   * the mode comes only from the environment variable RAY_AUTH_MODE (token | disabled);
#   * the token is read from RAY_AUTH_TOKEN, else the file named by RAY_AUTH_TOKEN_PATH,
#     else ~/.ray/auth_token (`ray get-auth-token --generate` writes it);
#   * `ray start --head` turns token mode on by itself when RAY_AUTH_MODE is unset and a token
#     exists, but `ray job submit` does NOT: it sends the `Authorization: Bearer` header only
#     when RAY_AUTH_MODE=token is set in its own environment, and otherwise gets 401.
# So: if RAY_AUTH_MODE is unset and a token is available, this script sets RAY_AUTH_MODE=token;
# if it is "token" and no token is available, it stops with a clear message;
# if it is "disabled", it submits without a token.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
address="${RAY_API_SERVER_ADDRESS:-${RAY_DASHBOARD_ADDRESS:-http://127.0.0.1:8265}}"
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --address) address="$2"; shift 2 ;;
    --address=*) address="${1#*=}"; shift ;;
    --) shift; break ;;
    *) extra+=("$1"); shift ;;
  esac
done
if [[ $# -eq 0 ]]; then
  echo "usage: cluster/submit.sh [--address http://HOST:PORT] [ray job submit options] -- ENTRYPOINT..." >&2
  exit 2
fi

have_token() {
  [[ -n "${RAY_AUTH_TOKEN:-}" ]] && return 0
  if [[ -n "${RAY_AUTH_TOKEN_PATH:-}" ]]; then
    [[ -s "${RAY_AUTH_TOKEN_PATH}" ]] && return 0
    echo "submit.sh: RAY_AUTH_TOKEN_PATH=${RAY_AUTH_TOKEN_PATH} is missing or empty" >&2
    exit 2
  fi
  [[ -s "${HOME}/.ray/auth_token" ]]
}

case "${RAY_AUTH_MODE:-}" in
  "")
    if have_token; then export RAY_AUTH_MODE=token; fi ;;
  token)
    if ! have_token; then
      echo "submit.sh: RAY_AUTH_MODE=token but no token: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH," >&2
      echo "           or copy the cluster's token to ~/.ray/auth_token (on the head: ray get-auth-token)" >&2
      exit 2
    fi ;;
  disabled) ;;
  *) echo "submit.sh: RAY_AUTH_MODE=${RAY_AUTH_MODE} is not 'token' or 'disabled'" >&2; exit 2 ;;
esac

cd "${here}/.."
exec ray job submit --address "${address}" --runtime-env "${here}/runtime_env.yaml" "${extra[@]+"${extra[@]}"}" -- "$@"
