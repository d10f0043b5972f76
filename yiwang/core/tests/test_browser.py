"""The main flow in headless Debian Chromium: log in, land on the workbench, look at it.

Screenshots go to test-artifacts/ (desktop and 375 px phone width).
"""

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from conftest import PASSWORD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"

pytestmark = [
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


@pytest.fixture
def browser():
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the
    # test itself are synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield instance
        instance.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def open_page(browser, live_server, width, height):
    page = browser.new_page(viewport={"width": width, "height": height}, locale="zh-CN")
    problems = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return page, problems


def log_in(page, live_server, username):
    page.goto(f"{live_server.url}/org/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


@pytest.mark.django_db(transaction=True)
def test_login_lands_on_workbench_desktop_and_phone(browser, live_server, alice, bob):
    ARTIFACTS.mkdir(exist_ok=True)
    for name, width, height in [("desktop", 1366, 900), ("phone", 375, 812)]:
        page, problems = open_page(browser, live_server, width, height)
        page.goto(f"{live_server.url}/org/login/")
        page.screenshot(path=ARTIFACTS / f"login-{name}.png", full_page=True)
        log_in(page, live_server, "alice")
        assert page.url.rstrip("/") == live_server.url
        assert page.locator("h1").inner_text().strip() == "工作台"
        assert page.get_by_text("组织机构").first.is_visible() or name == "phone"
        page.screenshot(path=ARTIFACTS / f"workbench-{name}.png", full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name}: page is {overflow}px wider than the screen"
        assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
        assert not problems, problems
        page.close()


@pytest.mark.django_db(transaction=True)
def test_wrong_password_message_and_people_list(browser, live_server, alice, bob):
    ARTIFACTS.mkdir(exist_ok=True)
    page, problems = open_page(browser, live_server, 375, 812)
    page.goto(f"{live_server.url}/org/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    assert "用户名（手机号）或密码错误" in page.content()
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/org/people/")
    html = page.content()
    assert "王丽" in html and "李波" not in html
    page.screenshot(path=ARTIFACTS / "people-phone.png", full_page=True)
    # the phone menu opens the module navigation
    page.goto(f"{live_server.url}/")
    page.click("button[data-bs-target='#yw-sidebar']")
    page.wait_for_selector("#yw-sidebar.show")
    assert page.locator("#yw-sidebar").get_by_text("组织机构").is_visible()
    page.screenshot(path=ARTIFACTS / "menu-phone.png")
    assert not problems, problems
