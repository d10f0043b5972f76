"""Named fixtures shared by every app's tests (healthchecks style: alice, bob, …).

The district used in tests:
  区 (BL) ─┬─ 区电子政务办 (EGOV)      admin: platform admin (TOTP)
           ├─ 区教育局 (EDU) ── 教育局办公室 (EDU-OFFICE)
           │                   alice: staff of 区教育局; carol: leader of 区教育局
           └─ 区财政局 (FIN)          bob: staff of 区财政局
"""

from __future__ import annotations

import os

import pytest

from yiwang.org import services as org
from yiwang.org.models import Role

PASSWORD = "Yiwang-test-2026"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With YIWANG_REQUIRE_SERVERS=1 (CI on PostgreSQL + Redis) a skipped test is a failure."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("YIWANG_REQUIRE_SERVERS") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"CI 不允许跳过需要真实服务器的测试：{report.longrepr}"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _chinese_first():
    """Every test starts in the default language: a request in English (LocaleMiddleware
    activates the language for the thread and leaves it) must not leak into the next test."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def roles(db):
    org.ensure_roles()  # transactional tests flush the data migration's rows
    return {role.code: role for role in Role.objects.all()}


@pytest.fixture
def district(db):
    return org.unit_create(actor=None, name="测试区", code="BL", kind="district")


@pytest.fixture
def units(district):
    egov = org.unit_create(actor=None, name="区电子政务办", code="EGOV", kind="bureau", parent=district)
    edu = org.unit_create(actor=None, name="区教育局", code="EDU", kind="bureau", parent=district)
    edu_office = org.unit_create(actor=None, name="教育局办公室", code="EDU-OFFICE", kind="office", parent=edu)
    fin = org.unit_create(actor=None, name="区财政局", code="FIN", kind="bureau", parent=district)
    return {"district": district, "egov": egov, "edu": edu, "edu_office": edu_office, "fin": fin}


def make_person(username, full_name, unit, role, *, mobile=None, title="", leader_rank=""):
    return org.person_create(
        actor=None,
        username=username,
        full_name=full_name,
        mobile=mobile,
        password=PASSWORD,
        posts=[org.PostSpec(unit=unit, role=role, title=title, leader_rank=leader_rank)],
    )


@pytest.fixture
def alice(units, roles):
    return make_person("alice", "王丽", units["edu"], roles["staff"], mobile="13800138001", title="科员")


@pytest.fixture
def bob(units, roles):
    return make_person("bob", "李波", units["fin"], roles["staff"], mobile="13800138002", title="科员")


@pytest.fixture
def carol(units, roles):
    return make_person("carol", "陈静", units["edu"], roles["leader"], title="局长", leader_rank="principal")


@pytest.fixture
def admin(units, roles):
    return make_person("admin", "平台管理员", units["egov"], roles["platform_admin"], title="管理员")


@pytest.fixture
def admin_client(client, admin, settings):
    settings.YIWANG_ADMIN_2FA = False
    client.force_login(admin)
    return client


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def browser():
    """Debian's headless Chromium through Playwright (helpers in ``yiwang/core/tests/browser.py``)."""
    from yiwang.core.tests.browser import CHROMIUM, LAUNCH_ARGS

    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the
    # test itself are synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield instance
        instance.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
