"""The exchange module in headless Debian Chromium: a provider catalogues a resource and the e-gov
office publishes it; a consumer unit applies for the resident resource and the provider's leader
answers with one item removed; the "don't collect what you can share" check; the call evidence
and the statistics after a few gateway calls.

Screenshots go to /tmp/exchange_*.png (1366 px and, for most pages, 375 px wide).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from yiwang.core.tests.browser import BROWSER, SIZES, check_layout, log_in, open_page
from yiwang.exchange import gateway
from yiwang.exchange.models import AccessRequest, CatalogEntry, Grant

from .conftest import resident_id, resident_save

pytestmark = BROWSER

SHOTS = Path("/tmp")


def shoot(page, name):
    page.evaluate("window.scrollTo(0, 0)")  # sticky bars would be drawn mid-page otherwise
    page.screenshot(path=SHOTS / f"exchange_{name}.png", full_page=True)


def follow(page, target):
    """Click a link or a submit button (a locator) and wait for the page it leads to."""
    with page.expect_navigation():
        target.click()
    page.wait_for_load_state("networkidle")


def heading(page) -> str:
    return page.locator("h1").inner_text().strip()


# --- 1. catalogue: a provider's staff catalogues, the e-gov office publishes --------------------


@pytest.mark.django_db(transaction=True)
def test_catalogue_entry_created_reviewed_and_published(browser, live_server, psb, psb_staff, egov):
    page, problems = open_page(browser, 1366, 900)
    log_in(page, live_server, "psb_staff")
    page.goto(f"{live_server.url}/exchange/")
    expect(page.get_by_text("资源目录还是空的")).to_be_visible()
    follow(page, page.get_by_role("link", name="编制目录").first)
    assert page.url.endswith("/exchange/entries/new/")
    # the guideline's fields; one provider unit, so no provider field
    assert page.locator("select[name=provider]").count() == 0
    page.fill("input[name=class_code]", "301002001")
    page.fill("input[name=name]", "机动车登记信息")
    page.fill("textarea[name=abstract]", "全区登记机动车的号牌号码、车辆类型、所有人、登记日期等信息。")
    page.fill("input[name=keywords]", "机动车,号牌,车辆登记")
    page.select_option("select[name=format]", "database")
    page.select_option("select[name=sharing_type]", "unconditional")
    page.select_option("select[name=share_method]", "api")
    page.select_option("select[name=open_type]", "closed")
    page.select_option("select[name=update_cycle]", "daily")
    page.select_option("select[name=registry]", "")
    # two data items in the first two (of three) blank rows; the third stays blank and is ignored
    rows = page.locator("#exc-items tbody.exc-item")
    assert rows.count() == 3
    rows.nth(0).locator("input[name=item_code]").fill("plate_number")
    rows.nth(0).locator("input[name=item_name]").fill("号牌号码")
    rows.nth(0).locator("input[name=item_length]").fill("12")
    rows.nth(0).locator("input[name=item_synonyms]").fill("车牌号,车牌号码")
    rows.nth(1).locator("input[name=item_code]").fill("vehicle_type")
    rows.nth(1).locator("input[name=item_name]").fill("车辆类型")
    shoot(page, "entry-form-desktop")
    check_layout(page, "entry form", problems)
    follow(page, page.get_by_role("button", name="保存并提交审核"))
    assert "“机动车登记信息”已保存并提交电子政务办审核。" in page.content()
    entry = CatalogEntry.objects.get(name="机动车登记信息")
    assert page.url.endswith(f"/exchange/entries/{entry.pk}/")
    assert entry.status == CatalogEntry.Status.REVIEW and entry.code == "301002001/000001"
    assert page.locator("#exc-entry-heading ~ .exc-cat-status-review").inner_text().strip() == "审核中"
    expect(page.get_by_text("正在由电子政务办审核。")).to_be_visible()
    assert "信息项（2 项）" in page.locator("#exc-items-heading").inner_text()
    items = page.locator("section[aria-labelledby=exc-items-heading] tbody").inner_text()
    assert "号牌号码" in items and "车辆类型" in items and "又称：车牌号,车牌号码" in items
    shoot(page, "entry-review-desktop")
    check_layout(page, "entry in review", problems)
    page.close()

    # the e-gov office finds the review in its inbox and approves it on the case page
    page, problems = open_page(browser, 1366, 900)
    log_in(page, live_server, "egov")
    page.goto(f"{live_server.url}/workflow/")
    row = page.locator("table.wf-inbox tbody tr", has_text="机动车登记信息")
    assert "资源目录审核：机动车登记信息（301002001/000001 第 1 版）" in row.inner_text()
    follow(page, row.get_by_role("link", name="办理"))
    page.fill(".wf-action-panel textarea[name=comment]", "目录要素齐全，同意发布。")
    follow(page, page.locator(".wf-action-panel button:has-text('同意'):not(:has-text('不同意'))"))
    assert "已办理：同意" in page.content()
    entry.refresh_from_db()
    assert entry.status == CatalogEntry.Status.PUBLISHED
    page.close()

    # the provider sees it published in the catalogue browser and finds it by search
    for name, width, height in SIZES:
        page, problems = open_page(browser, width, height)
        log_in(page, live_server, "psb_staff")
        page.goto(f"{live_server.url}/exchange/")
        row = page.locator("table tbody tr", has_text="机动车登记信息")
        assert row.count() == 1
        if name == "desktop":
            assert row.locator(".exc-cat-status").inner_text().strip() == "已发布"
        else:
            page.get_by_role("button", name="筛选").click()  # the filter bar folds on phones
            page.wait_for_selector("#yw-filter.collapse.show")  # opened, not still sliding
        page.fill("input[name=q]", "号牌")
        follow(page, page.locator("#yw-filter button[type=submit]"))
        assert "q=" in page.url
        found = page.locator("table tbody tr")
        assert found.count() == 1 and "301002001/000001" in found.inner_text()
        shoot(page, f"catalog-search-{name}")
        check_layout(page, f"catalogue search {name}", problems)
        # a search that matches nothing says so
        page.fill("input[name=q]", "不存在的资源名称")
        follow(page, page.locator("#yw-filter button[type=submit]"))
        expect(page.get_by_text("没有符合条件的资源")).to_be_visible()
        page.goto(f"{live_server.url}/exchange/entries/{entry.pk}/")
        assert heading(page) == "机动车登记信息"
        assert page.locator("#exc-entry-heading ~ .exc-cat-status").inner_text().strip() == "已发布"
        timeline = page.locator("section[aria-labelledby=exc-review-heading]").inner_text()
        assert "目录要素齐全，同意发布。" in timeline and "吴建国" in timeline
        shoot(page, f"entry-published-{name}")
        check_layout(page, f"entry published {name}", problems)
        page.close()


# --- 2. access: a consumer applies, the provider's leader narrows and approves -------------------


@pytest.mark.django_db(transaction=True)
def test_access_request_approved_with_one_item_removed(
    browser, live_server, resident_entry, edu_system, alice, psb_head
):
    page, problems = open_page(browser, 1366, 900)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/exchange/entries/{resident_entry.pk}/")
    follow(page, page.get_by_role("link", name="申请共享"))
    assert page.url.endswith(f"/exchange/entries/{resident_entry.pk}/request/")
    assert page.locator("select[name=system] option:checked").inner_text().startswith("入学报名系统")
    # the plain-text box of a personal item is usable only when its item is ticked
    assert page.locator("#exc-plain-address").is_disabled()
    for code in ("id_number", "name", "birth_date", "address", "phone"):
        page.check(f"#exc-item-{code}")
    assert page.locator("#exc-plain-address").is_enabled()
    page.fill("textarea[name=purpose]", "义务教育入学资格核验")
    page.fill("textarea[name=legal_basis]", "《义务教育法》第十二条")
    page.fill("input[name=service_item]", "义务教育阶段新生入学登记")
    shoot(page, "request-form-desktop")
    check_layout(page, "request form", problems)
    follow(page, page.get_by_role("button", name="提交申请"))
    assert "申请已提交，区公安分局 应在" in page.content()
    req = AccessRequest.objects.get()
    assert req.status == AccessRequest.Status.PENDING
    assert sorted(req.items) == sorted(["id_number", "name", "birth_date", "address", "phone"])
    assert page.locator(".exc-req-status-pending").inner_text().strip() == "待答复"
    page.close()

    # the provider's leader opens it from the requests awaiting an answer (looks on the phone
    # first), then removes 联系电话 and approves on the desktop
    for name, width, height in reversed(SIZES):
        page, problems = open_page(browser, width, height)
        log_in(page, live_server, "psb_head")
        page.goto(f"{live_server.url}/exchange/requests/?tab=todo")
        follow(page, page.get_by_role("link", name="人口基础信息").first)
        assert page.url.endswith(f"/exchange/requests/{req.pk}/")
        expect(page.locator("#exc-decide-heading")).to_be_visible()
        assert page.locator("input[name=items]:checked").count() == 5
        shoot(page, f"request-decide-{name}")
        check_layout(page, f"request decide {name}", problems)
        if name == "desktop":
            page.uncheck("#exc-keep-phone")
            page.fill("textarea[name=reason]", "联系电话不属于入学资格核验所需，不予提供。")
            follow(page, page.get_by_role("button", name="同意", exact=True))
            assert "已同意该申请，授权即时生效。" in page.content()
            assert page.locator(".exc-req-status-granted").inner_text().strip() == "已同意"
            assert page.locator("#exc-decide-heading").count() == 0
            kept = page.locator("section[aria-labelledby=exc-req-items-heading]").inner_text()
            assert "户籍地址" in kept and "联系电话" not in kept
        page.close()
    req.refresh_from_db()
    assert req.status == AccessRequest.Status.GRANTED
    grant = Grant.objects.get(system=edu_system)
    assert sorted(grant.items) == sorted(["id_number", "name", "birth_date", "address"])

    # alice sees the grant with the narrowed items
    page, problems = open_page(browser, 1366, 900)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/exchange/grants/")
    row = page.locator("table tbody tr", has_text="人口基础信息")
    assert "入学报名系统" in row.inner_text() and "4 项" in row.inner_text()
    assert row.locator(".badge").inner_text().strip() == "有效"
    follow(page, row.get_by_role("link", name="人口基础信息"))
    assert page.url.endswith(f"/exchange/grants/{grant.pk}/")
    assert "授权的信息项（4 项）" in page.locator("#exc-grant-items").inner_text()
    granted = page.locator("section[aria-labelledby=exc-grant-items]").inner_text()
    for label in ("公民身份号码", "姓名", "出生日期", "户籍地址"):
        assert label in granted
    assert "联系电话" not in granted
    assert "脱敏" in granted  # personal items without plain text come back masked
    shoot(page, "grant-desktop")
    check_layout(page, "grant", problems)
    page.close()


# --- 3. 免于重复采集 -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_matching_tells_shared_from_collected(browser, live_server, edu_grant, alice):
    for name, width, height in SIZES:
        page, problems = open_page(browser, width, height)
        log_in(page, live_server, "alice")
        page.goto(f"{live_server.url}/exchange/matching/")
        assert heading(page) == "免于重复采集"
        expect(page.get_by_text("填写表单字段后点击“核验”，结果显示在这里")).to_be_visible()
        page.fill("input[name=title]", "义务教育新生入学登记表")
        page.fill("textarea[name=labels]", "学生姓名\n身份证号\n户籍地址\n联系电话\n家长工作单位")
        follow(page, page.get_by_role("button", name="核验"))
        table = page.locator("table.exc-match-table tbody")
        assert table.locator("tr").count() == 5

        results = {
            row.locator("th").inner_text().strip(): row.locator(".exc-result").inner_text().strip()
            for row in table.locator("tr").all()
        }
        assert results["身份证号"] == "可共享获取"
        assert results["户籍地址"] == "可共享获取"
        assert results["联系电话"] == "需申请"  # shareable, but not in the grant
        assert results["家长工作单位"] == "需采集"
        summary = page.locator(".exc-match-summary").inner_text()
        assert "5 个字段中" in summary and "需采集 1 个" in summary
        expect(page.get_by_role("button", name="Excel")).to_be_visible()
        shoot(page, f"matching-{name}")
        check_layout(page, f"matching {name}", problems)
        page.close()


# --- 4. evidence and statistics after gateway calls -----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_call_evidence_and_statistics(browser, live_server, client, edu_grant, edu_key, resident_entry, psb_staff):
    known = resident_save(resident_id()).id_number
    unknown = resident_id(birth="20160101", seq="456")
    headers = {"HTTP_AUTHORIZATION": f"Api-Key {edu_key[1]}"}
    url = f"/api/exchange/gateway/{resident_entry.code}/records/"
    assert client.get(f"{url}{known}/", {"purpose": "新生入学资格审核（张小明）"}, **headers).status_code == 200
    assert client.get(f"{url}{known}/", {"purpose": "学籍建档核对户籍地址"}, **headers).status_code == 200
    assert client.get(f"{url}{unknown}/", {"purpose": "新生入学资格审核（查无此人）"}, **headers).status_code == 404
    gateway.counters_flush()  # what the periodic task does: the day counters behind the statistics

    page, problems = open_page(browser, 1366, 900)
    log_in(page, live_server, "psb_staff")
    page.goto(f"{live_server.url}/exchange/evidence/")
    assert heading(page) == "调用记录"
    expect(page.get_by_text("共 3 次调用")).to_be_visible()
    table = page.locator("table.exc-calls tbody")
    assert table.locator("tr").count() == 3
    text = table.inner_text()
    for purpose in ("新生入学资格审核（张小明）", "学籍建档核对户籍地址", "新生入学资格审核（查无此人）"):
        assert purpose in text
    assert "入学报名系统" in text and "人口基础信息" in text
    newest = table.locator("tr").first
    assert "查无此人" in newest.inner_text() and "HTTP 404" in newest.inner_text()
    shoot(page, "evidence-desktop")
    check_layout(page, "evidence", problems)
    # filtering by purpose narrows the list
    page.fill("input[name=q]", "学籍建档")
    follow(page, page.locator("#yw-filter button[type=submit]"))
    expect(page.get_by_text("共 1 次调用")).to_be_visible()
    assert "学籍建档核对户籍地址" in page.locator("table.exc-calls tbody").inner_text()

    page.goto(f"{live_server.url}/exchange/statistics/")
    assert heading(page) == "调用统计"
    page.wait_for_selector("#exc-chart-daily canvas, #exc-chart-daily svg")
    page.wait_for_selector("#exc-chart-resources canvas, #exc-chart-resources svg")
    page.wait_for_selector("#exc-chart-systems canvas, #exc-chart-systems svg")
    page.wait_for_load_state("networkidle")
    figures = page.locator(".exc-stat-value")
    assert figures.nth(0).inner_text().strip() == "3"  # calls
    assert figures.nth(1).inner_text().strip() == "2"  # served
    shoot(page, "statistics-desktop")
    check_layout(page, "statistics", problems)
    page.close()

    page, problems = open_page(browser, 375, 812)
    log_in(page, live_server, "psb_staff")
    page.goto(f"{live_server.url}/exchange/statistics/")
    page.wait_for_selector("#exc-chart-daily canvas, #exc-chart-daily svg")
    page.wait_for_load_state("networkidle")
    shoot(page, "statistics-phone")
    check_layout(page, "statistics phone", problems)
    page.goto(f"{live_server.url}/exchange/evidence/")
    shoot(page, "evidence-phone")
    check_layout(page, "evidence phone", problems)
    page.close()
