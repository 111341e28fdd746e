"""Loading the CTP API binding (``openctp-ctp``) safely.

The binding's import *aborts the process* (a C++ ``std::runtime_error`` from
``std::locale("zh_CN.GB18030")`` that nothing catches) on a machine without that locale.
So the locale is checked first, without touching the process's own locale (glibc's
``newlocale``), and the binding is imported only when it is there: otherwise
:class:`CtpUnavailable` says what to do. ``scripts/_env.sh`` creates the locale; when it
could only make a private copy (not root), it exports ``XMC_CTP_LOCPATH`` and
:func:`locale_available` points glibc there (``LOCPATH``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

LOCALE = "zh_CN.GB18030"
_LC_ALL_MASK = 0x1FBF  # glibc: every category


class CtpUnavailable(RuntimeError):
    """The CTP binding cannot be loaded here (locale missing, package missing)."""


def _newlocale_ok(name: str) -> bool:
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(libc_name)
    except OSError:
        return False
    libc.newlocale.restype = ctypes.c_void_p
    libc.newlocale.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]
    libc.freelocale.argtypes = [ctypes.c_void_p]
    h = libc.newlocale(_LC_ALL_MASK, name.encode(), None)
    if not h:
        return False
    libc.freelocale(h)
    return True


def locale_available() -> bool:
    """Whether the zh_CN.GB18030 locale can be opened by this process (system archive, or the
    private copy ``XMC_CTP_LOCPATH`` names)."""
    if _newlocale_ok(LOCALE):
        return True
    private = os.environ.get("XMC_CTP_LOCPATH")
    if private and (Path(private) / LOCALE).is_dir() and not os.environ.get("LOCPATH"):
        os.environ["LOCPATH"] = private  # glibc reads it when a locale is next opened
        if _newlocale_ok(LOCALE):
            return True
        del os.environ["LOCPATH"]
    return False


def ensure_locale(private_dir: str | os.PathLike[str] | None = None) -> tuple[bool, str]:
    """Make the locale if it is missing (what ``scripts/_env.sh`` does): the system's archive
    (root), else a private copy in ``private_dir``. Returns (available, why not)."""
    if locale_available():
        return True, ""
    localedef = shutil.which("localedef")
    if localedef is None:
        return False, (f"the {LOCALE} locale is missing and there is no localedef to make it "
                       "(Debian: apt-get install locales)")
    errors = []
    r = subprocess.run([localedef, "-i", "zh_CN", "-f", "GB18030", LOCALE], capture_output=True, text=True)
    if r.returncode == 0 and _newlocale_ok(LOCALE):
        return True, ""
    errors.append((r.stderr or r.stdout or f"exit {r.returncode}").strip()[:200])
    if private_dir is not None:
        d = Path(private_dir)
        d.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([localedef, "-i", "zh_CN", "-f", "GB18030", str(d / LOCALE)], capture_output=True, text=True)
        if r.returncode == 0:
            os.environ["XMC_CTP_LOCPATH"] = str(d)
            if locale_available():
                return True, ""
        errors.append((r.stderr or r.stdout or f"exit {r.returncode}").strip()[:200])
    return False, f"could not create the {LOCALE} locale with localedef: {'; '.join(errors)}"


def load_tdapi() -> Any:
    """The binding's trader API module (``openctp_ctp.thosttraderapi``), or
    :class:`CtpUnavailable` with the reason (never the process abort)."""
    if not locale_available():
        raise CtpUnavailable(f"the CTP API binding needs the {LOCALE} locale, which this machine lacks: run "
                             f"`localedef -i zh_CN -f GB18030 {LOCALE}` as root (scripts/_env.sh does), or set "
                             "XMC_CTP_LOCPATH to a directory holding a private copy")
    try:
        from openctp_ctp import thosttraderapi
    except ImportError as e:
        raise CtpUnavailable(f"the CTP API binding is not installed (pip install openctp-ctp): {e}") from None
    return thosttraderapi
