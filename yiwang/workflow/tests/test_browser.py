"""The approval flow in headless Debian Chromium: alice starts a case, carol approves it.

Screenshots of the inbox and the case page go to test-artifacts/ (1366 px and 375 px wide).
"""

from pathlib import Path

import pytest
from django.conf import settings

from yiwang.core.tests.browser import BROWSER, SIZES, check_layout, log_in, open_page
from yiwang.workflow import services
from yiwang.workflow.models import Case, ProcessDefinition, Task

pytestmark = BROWSER

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"


@pytest.mark.django_db(transaction=True)
def test_start_then_approve_from_the_case_page(browser, live_server, alice, carol, simple):
    ARTIFACTS.mkdir(exist_ok=True)
    # alice starts a 请示报告 from the start page
    page, problems = open_page(browser, 1366, 900)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/workflow/start/")
    page.select_option("select[name=process]", "test.simple")
    page.fill("input[name=title]", "关于购置办公电脑的请示")
    page.fill("input[name=amount]", "12000")
    page.fill("textarea[name=comment]", "因业务需要，拟购置办公电脑 3 台。")
    page.click("form button[type=submit].btn-primary")
    page.wait_for_load_state("networkidle")
    assert "已发起" in page.content()
    case = Case.objects.get()
    assert page.url.endswith(f"/workflow/cases/{case.pk}/")
    check_layout(page, "start", problems)
    page.close()

    # carol sees it in her inbox, with the count in the top bar
    for name, width, height in SIZES:
        page, problems = open_page(browser, width, height)
        log_in(page, live_server, "carol")
        assert page.locator("#yw-inbox-link .yw-inbox-badge").inner_text().strip() == "1"
        page.click("#yw-inbox-link")
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").inner_text().strip() == "我的待办"
        row = page.locator("table.wf-inbox tbody tr").first
        assert "关于购置办公电脑的请示" in row.inner_text()
        page.screenshot(path=ARTIFACTS / f"workflow-inbox-{name}.png", full_page=True)
        check_layout(page, f"inbox {name}", problems)
        row.get_by_role("link", name="办理").click()
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").inner_text().strip() == "关于购置办公电脑的请示"
        assert page.get_by_text("办理：局长审批").is_visible()
        page.screenshot(path=ARTIFACTS / f"workflow-case-{name}.png", full_page=True)
        check_layout(page, f"case {name}", problems)
        page.close()

    # carol approves from the case page; the timeline shows it
    page, problems = open_page(browser, 1366, 900)
    log_in(page, live_server, "carol")
    page.goto(f"{live_server.url}/workflow/cases/{case.pk}/")
    page.fill(".wf-action-panel textarea[name=comment]", "同意购置，请按规定程序采购。")
    page.click(".wf-action-panel button:has-text('同意'):not(:has-text('不同意'))")
    page.wait_for_load_state("networkidle")
    assert "已办理：同意" in page.content()
    timeline = page.locator(".wf-timeline").inner_text()
    assert "同意购置，请按规定程序采购。" in timeline and "陈静" in timeline and "办结" in timeline
    assert page.locator(".wf-status-approved").first.is_visible()
    page.screenshot(path=ARTIFACTS / "workflow-case-approved-desktop.png", full_page=True)
    check_layout(page, "approved", problems)
    case.refresh_from_db()
    assert case.status == Case.Status.APPROVED
    page.close()


@pytest.mark.django_db(transaction=True)
def test_quick_approve_in_the_inbox(browser, live_server, alice, carol, simple):
    ARTIFACTS.mkdir(exist_ok=True)
    first = services.case_start(process="test.simple", initiator=alice, title="第一份请示")
    services.case_start(process="test.simple", initiator=alice, title="第二份请示")
    page, problems = open_page(browser, 375, 812)
    log_in(page, live_server, "carol")
    page.goto(f"{live_server.url}/workflow/")
    row = page.locator("tr", has_text="第一份请示")
    row.get_by_role("button", name="同意").click()
    page.wait_for_selector("tr:has-text('第一份请示') >> text=已办理")
    assert Task.objects.get(case=first).status == Task.Status.DONE
    # A refusal is shown in the row, not as a generic error: the task was handled elsewhere
    # (another tab, the delegate) after this page was loaded.
    second = page.locator("tr", has_text="第二份请示")
    services.task_approve(task=Task.objects.get(case__title="第二份请示"), actor=carol)
    second.get_by_role("button", name="同意").click()
    page.wait_for_selector("tr:has-text('第二份请示') .alert-danger")
    assert "无法再办理" in second.inner_text()
    assert page.locator("#yw-messages .alert").count() == 0  # not htmx's generic error
    page.screenshot(path=ARTIFACTS / "workflow-inbox-quick-phone.png", full_page=True)
    # Chromium logs every 4xx answer to the console; that one is expected here.
    problems[:] = [p for p in problems if "status of 400" not in p]
    check_layout(page, "quick", problems)
    page.close()


@pytest.mark.django_db(transaction=True)
def test_definition_editor(browser, live_server, admin, carol, settings):
    settings.YIWANG_ADMIN_2FA = False
    ARTIFACTS.mkdir(exist_ok=True)
    page, problems = open_page(browser, 1366, 900)
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/workflow/definitions/new/")
    page.fill("input[name=name]", "公务用车申请")
    page.fill("input[name=code]", "oa.car")
    page.select_option("select[name=module]", "oa")
    # the first blank row: the leader of the initiator's unit
    page.fill("input[name='steps-0-name']", "单位领导审批")
    page.dispatch_event("input[name='steps-0-name']", "change")
    assert page.locator("input[name='steps-0-usernames']").is_hidden()  # only the rule's fields show
    page.select_option("select[name='steps-0-rank']", "principal")
    # 添加环节 (JavaScript): a named person, moved in front of the first row
    page.click("[data-wf-add-step]")
    page.fill("input[name='steps-2-name']", "办公室核对")
    page.select_option("select[name='steps-2-assignee_type']", "person")
    assert page.locator("input[name='steps-2-usernames']").is_visible()
    page.fill("input[name='steps-2-usernames']", "carol")
    page.dispatch_event("input[name='steps-2-name']", "change")
    step = page.locator("[data-wf-step]", has=page.locator("input[name='steps-2-name']"))
    step.locator("[data-wf-move=up]").click()
    step.locator("[data-wf-move=up]").click()
    assert page.input_value("input[name='steps-2-ORDER']") == "1"
    assert page.input_value("input[name='steps-0-ORDER']") == "2"
    page.evaluate("window.scrollTo(0, 0)")  # sticky bars would be drawn mid-page otherwise
    page.screenshot(path=ARTIFACTS / "workflow-definition-editor-desktop.png", full_page=True)
    page.click("button[type=submit]:has-text('保存')")
    page.wait_for_load_state("networkidle")
    assert "已保存为第 1 版" in page.content()
    definition = ProcessDefinition.objects.get(code="oa.car")
    assert [s["name"] for s in definition.steps] == ["办公室核对", "单位领导审批"]
    check_layout(page, "definition", problems)
    page.close()
