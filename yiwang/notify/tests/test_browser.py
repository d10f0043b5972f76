"""The SMS platform in headless Debian Chromium: alice sends one SMS with a template and watches
the preview; she uploads a small CSV job, sees the check's progress and the preview, confirms,
and the job runs to its report with receipts posted back by the fake gateway.

Screenshots go to test-artifacts/ (1366 px and 375 px wide).
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings

from yiwang.core.tests.browser import BROWSER, SIZES, check_layout, log_in, open_page
from yiwang.notify import dispatch, services, tasks
from yiwang.notify.models import Job, Message, UsageDay

pytestmark = BROWSER

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def shoot(page, name):
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=ARTIFACTS / f"notify-{name}.png", full_page=True)


def wait_until(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.django_db(transaction=True)
def test_send_one_with_a_template(browser, live_server, alice, notice):
    ARTIFACTS.mkdir(exist_ok=True)
    for name, width, height in SIZES:
        page, problems = open_page(browser, width, height)
        log_in(page, live_server, "alice")
        page.goto(f"{live_server.url}/notify/send/")
        assert page.locator("h1").inner_text().strip() == "发送短信"
        page.select_option("select[name=template]", str(notice.pk))
        # htmx swaps in one box per placeholder and the preview of the bare template
        page.wait_for_selector("input[name='ph_姓名']")
        page.wait_for_selector("#sms-preview-text:has-text('【北仑区政府】((姓名))同学')")
        page.fill("input[name='ph_姓名']", "王小明")
        page.fill("input[name='ph_日期']", "6月1日")
        page.fill("input[name=mobile]", "13800138000")
        page.wait_for_selector("#sms-preview-text:has-text('【北仑区政府】王小明同学：请于6月1日参加考试。')")
        page.wait_for_selector("#sms-preview:has-text('发送至 13800138000')")
        assert page.locator("#sms-preview .ntf-count").inner_text().strip() == "24 字 · 1 条"
        # a long value makes it two parts, live
        page.fill(
            "input[name='ph_日期']",
            "6月1日上午8点30分在学校本部第三教学楼二楼报告厅，请携带准考证、身份证和2B铅笔，提前二十分钟到达考场",
        )
        page.wait_for_selector("#sms-preview .ntf-count:has-text('2 条')")
        page.fill("input[name='ph_日期']", "6月1日")
        page.wait_for_selector("#sms-preview .ntf-count:has-text('24 字 · 1 条')")
        shoot(page, f"send-{name}")
        check_layout(page, f"send {name}", problems)
        page.locator("button[type=submit]", has_text="发送").locator("visible=true").click()
        page.wait_for_load_state("networkidle")
        assert "短信已提交发送给 138****8000" in page.content()
        # the template stays chosen for the next message
        assert page.locator("select[name=template]").input_value() == str(notice.pk)
        check_layout(page, f"sent {name}", problems)
        page.close()
    assert Message.objects.filter(body="【北仑区政府】王小明同学：请于6月1日参加考试。").count() == 2


@pytest.mark.django_db(transaction=True)
def test_upload_a_job_preview_confirm_and_report(
    browser, live_server, alice, notice, sms_server, tmp_path, monkeypatch
):
    ARTIFACTS.mkdir(exist_ok=True)
    queued: list[int] = []
    monkeypatch.setattr(tasks, "validate_job", SimpleNamespace(delay=queued.append))  # no broker here
    sheet = tmp_path / "期末考试名单.csv"
    sheet.write_text(
        "手机号,姓名,日期\n13800138000,王小明,6月1日\n13800138001,李华,6月1日\n13800138002,张伟,6月2日\n"
        "1380013800,赵敏,6月2日\n13800138004,,6月3日\n",
        encoding="utf-8",
    )

    page, problems = open_page(browser, 1366, 900)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/notify/jobs/new/")
    page.select_option("select[name=template]", str(notice.pk))
    page.wait_for_selector("#ntf-columns code:has-text('日期')")
    page.set_input_files("input[name=file]", str(sheet))
    page.click("form button[type=submit].btn-primary")
    page.wait_for_selector("text=正在校验号码文件")
    job = Job.objects.get()
    assert queued == [job.pk] and page.url.endswith(f"/notify/jobs/{job.pk}/")
    assert page.locator("#job-body .progress-bar").count() == 1
    shoot(page, "job-checking-desktop")

    services.job_validate(job=job)  # what the worker does; the page polls every second
    page.wait_for_selector("#job-confirm-heading", timeout=10_000)
    assert page.locator("#job-status").inner_text().strip() == "待确认"
    body = page.locator("#job-body").inner_text()
    assert "【北仑区政府】王小明同学：请于6月1日参加考试。" in body
    assert "手机号格式不正确：1380013800" in body and "缺少占位符的值：姓名" in body
    assert page.get_by_role("link", name="下载完整错误报告").is_visible()
    shoot(page, "job-preview-desktop")
    check_layout(page, "job preview desktop", problems)

    phone, phone_problems = open_page(browser, 375, 812)
    log_in(phone, live_server, "alice")
    phone.goto(f"{live_server.url}/notify/jobs/{job.pk}/")
    phone.wait_for_selector("#job-confirm-heading")
    shoot(phone, "job-preview-phone")
    check_layout(phone, "job preview phone", phone_problems)
    phone.close()

    # confirm: the rows go out through the fake gateway, whose receipts come back to /notify/receipts/
    page.click("button:has-text('确认发送')")
    page.wait_for_selector("text=已确认，开始发送")
    job.refresh_from_db()
    assert job.status == Job.Status.SENDING
    sms_server.control({"callback_url": f"{live_server.url}/notify/receipts/fake/"})
    assert dispatch.dispatch_round(dispatch.NORMAL) == 3
    assert wait_until(lambda: Message.objects.filter(job=job, status=Message.Status.DELIVERED).count() == 3)
    services.jobs_finish()
    page.wait_for_selector("#job-status:has-text('已完成')", timeout=10_000)
    report = page.locator("#job-body").inner_text()
    assert "发送报告" in report and "已处理 3 / 3 条" in report and "已送达" in report
    shoot(page, "job-report-desktop")
    check_layout(page, "job report", problems)
    assert UsageDay.objects.get(unit=notice.unit).delivered == 3

    # the dashboard shows it, on both sizes
    page.goto(f"{live_server.url}/notify/")
    page.wait_for_selector("#ntf-usage canvas")
    shoot(page, "dashboard-desktop")
    check_layout(page, "dashboard desktop", problems)
    page.close()
    page, problems = open_page(browser, 375, 812)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/notify/")
    page.wait_for_selector("#ntf-quota canvas")
    shoot(page, "dashboard-phone")
    check_layout(page, "dashboard phone", problems)
    page.close()


@pytest.mark.django_db(transaction=True)
def test_every_screen_fits_desktop_and_phone(browser, live_server, alice, admin, units, notice, settings):
    """The other screens at both sizes: no overflow, no console or CSP error (platform admin)."""
    settings.YIWANG_ADMIN_2FA = False
    ARTIFACTS.mkdir(exist_ok=True)
    services.policy_save(actor=None, unit=units["edu"], signature="北仑区教育局", daily_quota=5000)
    services.template_save(actor=alice, unit=units["edu"], code="exam", name="考试通知",
                           body="((姓名))同学：请于((日期))到((考场))参加期末考试，请携带准考证。")  # fmt: skip
    services.message_send(unit=units["edu"], mobile="13800138000", body="明天上午九点在三楼会议室开会。", actor=alice)
    services.optout_add(actor=None, mobile="13900139000", reason="本人来电要求退订")
    UsageDay.objects.create(unit=units["fin"], day=timezone_today(), reserved=1200, sent=1100, delivered=1000)
    screens = [
        ("dashboard", "/notify/"),
        ("templates", "/notify/templates/"),
        ("template", f"/notify/templates/{notice.pk}/?ph_姓名=王小明"),
        ("template-new", "/notify/templates/new/"),
        ("jobs", "/notify/jobs/"),
        ("messages", "/notify/messages/"),
        ("policies", "/notify/policies/"),
        ("policy", f"/notify/policies/{units['edu'].pk}/"),
        ("optouts", "/notify/optouts/"),
    ]
    for size, width, height in SIZES:
        page, problems = open_page(browser, width, height)
        log_in(page, live_server, "admin")
        for name, path in screens:
            page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("networkidle")
            assert page.locator("h1").count() == 1, name
            if name == "dashboard":
                page.wait_for_selector("#ntf-quota canvas")
            shoot(page, f"{name}-{size}")
            check_layout(page, f"{name} {size}", problems)
        page.close()


def timezone_today():
    from django.utils import timezone

    return timezone.localdate()
