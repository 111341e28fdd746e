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
# The CTP API binding (openctp-ctp, `adapter: ctp`) needs the zh_CN.GB18030 locale: without
# it its import aborts the process. Make it once: the system's locale archive when we may
# write it (root), otherwise a private copy in .venv/locale that the adapter points glibc at
# (XMC_CTP_LOCPATH). Only a machine without localedef (Debian: package `locales`) goes without;
# the CTP tests then skip and say why.
xmc_ctp_locale() {
  if locale -a 2>/dev/null | grep -ix 'zh_CN\.gb18030' >/dev/null; then return 0; fi
  if ! command -v localedef >/dev/null 2>&1; then
    echo "warning: no localedef (Debian: apt-get install locales): the CTP adapter and its tests need the zh_CN.GB18030 locale" >&2
    return 0
  fi
  if localedef -i zh_CN -f GB18030 zh_CN.GB18030 >/dev/null 2>&1 \
      && locale -a 2>/dev/null | grep -ix 'zh_CN\.gb18030' >/dev/null; then
    return 0
  fi
  local dir="$ROOT/.venv/locale"
  if [ -d "$dir/zh_CN.GB18030" ] || { mkdir -p "$dir" && localedef -i zh_CN -f GB18030 "$dir/zh_CN.GB18030" >/dev/null 2>&1; }; then
    export XMC_CTP_LOCPATH="$dir"
    return 0
  fi
  echo "warning: could not create the zh_CN.GB18030 locale: the CTP adapter and its tests need it" >&2
}
xmc_ctp_locale
