"""The main flow in headless Debian Chromium: log in, land on the workbench, look at it.

Screenshots go to test-artifacts/ (desktop and 375 px phone width).
"""

from pathlib import Path

import pytest
from django.conf import settings

from yiwang.core.tests.browser import BROWSER, log_in, open_page

pytestmark = BROWSER

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"


@pytest.mark.django_db(transaction=True)
def test_login_lands_on_workbench_desktop_and_phone(browser, live_server, alice, bob):
    ARTIFACTS.mkdir(exist_ok=True)
    for name, width, height in [("desktop", 1366, 900), ("phone", 375, 812)]:
        page, problems = open_page(browser, width, height)
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
    page, problems = open_page(browser, 375, 812)
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


@pytest.mark.django_db(transaction=True)
def test_module_tabs_scroll_on_a_phone_and_say_so(browser, live_server, alice):
    """At 375 px the module tabs scroll sideways: the current tab is scrolled into view and the
    edges that hide more tabs are marked (a fade and an arrow), so no tab is silently cut off."""
    ARTIFACTS.mkdir(exist_ok=True)
    page, problems = open_page(browser, 375, 812)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/notify/messages/")
    nav = page.locator("nav.yw-subnav")
    strip = nav.locator(".nav")
    assert strip.evaluate("el => el.scrollWidth > el.clientWidth"), "the strip should not fit at 375 px"
    active = nav.locator(".nav-link.active")
    box = active.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    classes = nav.get_attribute("class")
    assert "yw-more-left" in classes, classes
    page.screenshot(path=ARTIFACTS / "subnav-phone.png")
    page.goto(f"{live_server.url}/notify/")
    classes = page.locator("nav.yw-subnav").get_attribute("class")
    assert "yw-more-right" in classes and "yw-more-left" not in classes, classes
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, overflow
    assert not problems, problems
    page.close()
