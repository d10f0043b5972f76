"""What every module's browser tests share: Debian's headless Chromium, pages that record console
errors, login, and the layout check (nothing wider than the screen, no script errors).

Use it with ``pytestmark = BROWSER`` and the ``browser`` fixture from the root conftest.
"""

from __future__ import annotations

import shutil

import pytest

from conftest import PASSWORD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="需要 Debian 的 chromium（apt-get install chromium）"),
]
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SIZES = [("desktop", 1366, 900), ("phone", 375, 812)]


def open_page(browser, width, height):
    """A zh-CN page of ``width`` × ``height``; the list collects console errors and page errors."""
    page = browser.new_page(viewport={"width": width, "height": height}, locale="zh-CN")
    problems = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())  # data-confirm asks before acting
    return page, problems


def log_in(page, live_server, username):
    """Log in through the form and wait for the page it leads to (not just the click)."""
    page.goto(f"{live_server.url}/org/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/org/login/" not in page.url, "login failed"


def check_layout(page, name, problems):
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: page is {overflow}px wider than the screen"
    assert not problems, problems
