"""The live console (api/static) in a real headless Chromium against the API on a loopback
uvicorn server with a fake backend (no Ray): what a role may press is enabled, what it may not
is disabled; a halt pressed reaches the backend with the operator; an alert acknowledged; the
page asks for nothing outside the server."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from api_browser import launch, need_browser, sign_in
from api_fakes import FakeBackend, api_config, make_tokens

ENTRIES, TOKENS = make_tokens()


@pytest.fixture(scope="module")
def server():
    need_browser()
    import uvicorn

    from xmc_actors.api.app import build_app
    from xmc_actors.core.operator_api import TokenBook

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    be = FakeBackend()
    app = build_app(api_config(port=port), TokenBook(ENTRIES), be)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", be
    srv.should_exit = True
    th.join(10)


def test_console_buttons_follow_the_role_and_a_halt_reaches_the_backend(server):
    from playwright.sync_api import sync_playwright

    url, be = server
    path = need_browser()
    with sync_playwright() as p:
        browser = launch(p, path)
        page = browser.new_page()
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url))
        page.goto(f"{url}/console/")
        page.wait_for_selector("#who")
        assert page.is_disabled("#btn-halt-global")  # nobody signed in
        sign_in(page, TOKENS["viewer"])
        page.wait_for_function("document.getElementById('who').textContent.includes('viewer')")
        page.wait_for_selector("#strategies tbody tr[data-strategy='copper']")
        assert page.is_disabled("#btn-halt-global") and page.is_disabled("#btn-resume-global")
        assert "A" in page.inner_text("#positions") and "slippage" in page.inner_text("#alerts")
        sign_in(page, TOKENS["trader"])
        page.wait_for_function("document.getElementById('who').textContent.includes('trader')")
        page.wait_for_function("!document.getElementById('btn-halt-global').disabled")
        page.fill("#reason", "browser test")
        page.click("#btn-halt-global")
        page.wait_for_function("document.getElementById('msg').textContent.includes('HALTED by trader')")
        assert ("set_trading_state", "global", None, "HALTED", "trader", "[api] console: browser test") in be.calls
        page.wait_for_selector("#states .state-HALTED")
        page.click("#alerts tr[data-alert='al-yel'] button")
        page.wait_for_function("document.getElementById('msg').textContent.includes('acknowledged by trader')")
        page.wait_for_function("document.querySelector(\"#alerts tr[data-alert='al-yel']\").textContent.includes('ack trader')")
        # a resume with a red alert open on 'gold' waits for a second operator
        page.click("#strategies tr[data-strategy='gold'] button[data-action='resume']")
        page.wait_for_function("document.getElementById('msg').textContent.includes('second operator')")
        browser.close()
    assert asked and all(u.startswith(url) for u in asked), [u for u in asked if not u.startswith(url)]
