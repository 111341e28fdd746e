# Shared by scripts/demo, scripts/test and scripts/bench: create or reuse .venv and install
# the project (editable) with the extras the caller asks for. Re-installs only when
# pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${XMC_PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "xmc-actors needs Python >= 3.11 (found: $("$PY" --version 2>&1))" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv" >&2
  "$PY" -m venv .venv
fi
VENV_PY="$ROOT/.venv/bin/python"
xmc_install() {
  local extras="$1"
  local stamp=".venv/.xmc-installed-${extras:-base}"
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing xmc-actors${extras:+[$extras]} into .venv (first run takes a few minutes)" >&2
    "$VENV_PY" -m pip install --quiet --upgrade pip >&2
    "$VENV_PY" -m pip install --quiet -e ".${extras:+[$extras]}" >&2
    echo "$want" > "$stamp"
  fi
}
export PATH="$ROOT/.venv/bin:$PATH"
export XMC_DATA_DIR="${XMC_DATA_DIR:-$(cd "$ROOT/.." && pwd)/shared/data}"
export RAY_USAGE_STATS_ENABLED=0
