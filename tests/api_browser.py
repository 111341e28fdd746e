"""Drive the console in Debian's Chromium (headless) through playwright's python package: the
browser is the system's (/usr/bin/chromium), never one downloaded. Tests skip with the reason
when either is missing."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    for c in (shutil.which("chromium"), "/usr/bin/chromium"):
        if c and Path(c).exists():
            return c
    return None


def need_browser() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium: `apt-get install -y chromium` (.ci/run installs it)")
    import importlib.util

    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright's python package is not installed (pip install -e '.[test]')")
    return path


def launch(p, path: str):  # noqa: ANN001, ANN201
    return p.chromium.launch(executable_path=path, headless=True, args=ARGS)


def sign_in(page, token: str) -> None:  # noqa: ANN001
    page.fill("#token", token)
    page.click("#signin")
