"""Catalogue pages: browse, search and filter, detail, the entry form with its items, review
actions, and the Excel / JSON-LD exports."""

from __future__ import annotations

import io
import json

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from yiwang.exchange import services
from yiwang.exchange.models import CatalogEntry
from yiwang.workflow.models import Task

from .conftest import RESIDENT_DATA, RESIDENT_ITEMS

pytestmark = pytest.mark.django_db

LIST = reverse("exchange:catalog")


def html(response) -> str:
    return response.content.decode()


def as_user(client, user):
    client.force_login(user)
    return client


def psb_draft(psb, psb_staff, **data):
    return services.entry_save(
        actor=psb_staff,
        provider=psb,
        data={**RESIDENT_DATA, "class_code": "101001002", "name": "人口补充信息", **data},
        items=RESIDENT_ITEMS[:3],
    )


def form_post(data: dict, items: list[dict]) -> dict:
    """The entry form as the browser posts it: fields, then item rows as parallel lists."""
    post = {k: v for k, v in data.items() if k != "related_codes"}
    post["related_codes"] = "\n".join(data.get("related_codes") or [])
    for field in ("code", "name", "data_type", "length", "sharing_type", "personal", "mask", "synonyms"):
        post[f"item_{field}"] = [
            ("1" if item.get(field) else "") if field == "personal" else str(item.get(field) or "") for item in items
        ]
    return post


# --- who sees what ------------------------------------------------------------------------------


class TestAccess:
    def test_login_required(self, client, units):
        response = client.get(LIST)
        assert response.status_code == 302 and "login" in response["Location"]

    def test_consumer_system_accounts_get_a_403(self, client, edu_system):
        response = as_user(client, edu_system.account).get(LIST)
        assert response.status_code == 403 and "机关工作人员" in html(response)

    def test_drafts_only_for_their_provider_and_the_egov_office(
        self, client, resident_entry, psb, psb_staff, alice, egov
    ):
        draft = psb_draft(psb, psb_staff)
        detail = reverse("exchange:entry_detail", args=[draft.pk])
        page = html(as_user(client, alice).get(LIST))
        assert "人口基础信息" in page and "人口补充信息" not in page
        assert client.get(detail).status_code == 404
        assert client.get(LIST + "?status=draft").status_code == 200  # no such choice for alice: ignored
        for user in (psb_staff, egov):
            page = html(as_user(client, user).get(LIST))
            assert "人口补充信息" in page and "人口基础信息" in page
            assert client.get(detail).status_code == 200

    def test_bad_ids_are_404(self, client, alice):
        as_user(client, alice)
        assert client.get("/exchange/entries/abc/").status_code == 404
        assert client.get(reverse("exchange:entry_detail", args=[99999])).status_code == 404


# --- the list ------------------------------------------------------------------------------------


class TestList:
    def test_search_filters_and_tree(self, client, resident_entry, psb, psb_staff, egov, alice):
        other = services.entry_save(
            actor=psb_staff,
            provider=psb,
            data={**RESIDENT_DATA, "class_code": "301001001", "name": "户政业务办件信息", "registry": "",
                  "sharing_type": "unconditional", "legal_basis": "", "sharing_condition": "", "share_method": "file",
                  "abstract": "窗口受理的办件记录。", "keywords": "办件"},
            items=[{"code": "case_no", "name": "办件编号"}],
        )  # fmt: skip
        from .conftest import publish_entry

        publish_entry(other, egov)
        as_user(client, alice)
        page = html(client.get(LIST))
        assert "基础信息资源" in page and "部门信息资源" in page and "人口基础信息" in page  # the tree and its 中类
        assert "户政业务办件信息" in page
        cases = [
            ("q=户籍", ["人口基础信息"], ["户政业务办件信息"]),
            ("major=3", ["户政业务办件信息"], ["人口基础信息"]),
            ("middle=101", ["人口基础信息"], ["户政业务办件信息"]),
            ("sharing_type=unconditional", ["户政业务办件信息"], ["人口基础信息"]),
            ("registry=none", ["户政业务办件信息"], ["人口基础信息"]),
            ("registry=resident", ["人口基础信息"], ["户政业务办件信息"]),
            ("share_method=file", ["户政业务办件信息"], ["人口基础信息"]),
            (f"provider={psb.pk}", ["人口基础信息", "户政业务办件信息"], []),
        ]
        for query, present, absent in cases:
            body = html(client.get(f"{LIST}?{query}"))
            table = body.split("<tbody>", 1)[1] if "<tbody>" in body else ""
            for name in present:
                assert name in table, query
            for name in absent:
                assert name not in table, query

    def test_history_versions_only_on_request(self, client, resident_entry, psb_staff, egov, alice):
        from .conftest import publish_entry

        v2 = publish_entry(services.entry_revise(actor=psb_staff, entry=resident_entry), egov)
        as_user(client, alice)
        body = html(client.get(LIST))
        assert body.count("v2") == 1 and "v1" not in body.split("<tbody>", 1)[1]
        body = html(client.get(LIST + "?status=superseded"))
        assert "v1" in body and v2.code in body

    def test_empty_state_and_bad_filters(self, client, alice, resident_entry):
        as_user(client, alice)
        response = client.get(LIST + "?q=不存在的资源名称xyz")
        assert response.status_code == 200 and "没有符合条件的资源" in html(response)
        response = client.get(LIST + "?provider=abc&major=9&middle=x&page=999")
        assert response.status_code == 200

    def test_pagination(self, client, psb, psb_staff):
        for n in range(21):
            services.entry_save(actor=psb_staff, provider=psb, items=RESIDENT_ITEMS[:1],
                                data={**RESIDENT_DATA, "name": f"资源{n:02d}"})  # fmt: skip
        as_user(client, psb_staff)
        first = html(client.get(LIST))
        assert "共 21 条" in first and "资源19" in first and "资源20" not in first
        assert "资源20" in html(client.get(LIST + "?page=2"))

    def test_create_button_only_for_provider_units(self, client, alice, psb_staff, edu_system):
        # every bureau may compile its own catalogue; a user without a unit may not
        assert "编制目录" in html(as_user(client, psb_staff).get(LIST))


# --- detail ---------------------------------------------------------------------------------------


class TestDetail:
    def test_fields_items_history_and_timeline(self, client, resident_entry, alice):
        body = html(as_user(client, alice).get(resident_entry.get_absolute_url()))
        for text in ("101001001/000001", "人口基础信息", "户籍地址", "公民身份号码", "有条件共享", "无条件共享",
                     "脱敏", "版本历史", "审核记录", "同意发布", "共享依据", "居民身份证法"):  # fmt: skip
            assert text in body, text
        assert "/api/exchange/gateway/101001001/000001/records/" in body

    def test_buttons_by_permission(self, client, resident_entry, psb_staff, alice, bob, edu_system):
        body = html(as_user(client, psb_staff).get(resident_entry.get_absolute_url()))
        assert reverse("exchange:entry_revise", args=[resident_entry.pk]) in body
        assert reverse("exchange:entry_revoke", args=[resident_entry.pk]) in body
        assert reverse("exchange:request_create", args=[resident_entry.pk]) not in body  # PSB has no system
        body = html(as_user(client, alice).get(resident_entry.get_absolute_url()))
        assert reverse("exchange:request_create", args=[resident_entry.pk]) in body
        assert reverse("exchange:entry_revise", args=[resident_entry.pk]) not in body
        dispute = f"{reverse('exchange:dispute_create')}?entry={resident_entry.pk}"
        assert dispute not in body  # no grant yet: nothing to dispute
        body = html(as_user(client, bob).get(resident_entry.get_absolute_url()))
        assert reverse("exchange:request_create", args=[resident_entry.pk]) not in body

    def test_dispute_button_only_for_units_holding_a_grant(self, client, resident_entry, edu_grant, psb_staff, alice):
        dispute = f"{reverse('exchange:dispute_create')}?entry={resident_entry.pk}"
        assert dispute in html(as_user(client, alice).get(resident_entry.get_absolute_url()))
        assert dispute not in html(as_user(client, psb_staff).get(resident_entry.get_absolute_url()))  # the provider

    def test_egov_office_gets_the_review_link(self, client, psb, psb_staff, egov):
        draft = services.entry_submit(actor=psb_staff, entry=psb_draft(psb, psb_staff))
        body = html(as_user(client, egov).get(draft.get_absolute_url()))
        assert "去审核" in body and reverse("workflow:case_detail", args=[draft.review_case_id]) in body

    def test_usage_and_grants_for_the_provider(self, client, edu_grant, resident_entry, psb_staff, alice):
        from django.utils import timezone

        from yiwang.exchange.models import CallDay

        CallDay.objects.create(day=timezone.localdate(), system_id=edu_grant.system_id, unit_id=edu_grant.unit_id,
                               provider_id=edu_grant.provider_id, resource_code=resident_entry.code, calls=42)  # fmt: skip
        body = html(as_user(client, psb_staff).get(resident_entry.get_absolute_url()))
        assert "42" in body and "exc-entry-usage" in body and "入学报名系统" in body
        body = html(as_user(client, alice).get(resident_entry.get_absolute_url()))
        assert "已授权系统" not in body


# --- the form -------------------------------------------------------------------------------------


class TestForm:
    def test_new_entry_with_items_in_order(self, client, psb, psb_staff):
        as_user(client, psb_staff)
        page = client.get(reverse("exchange:entry_create"))
        assert page.status_code == 200 and "exc-registry-columns" in html(page) and "catalog.js" in html(page)
        assert "birth_date" in html(page)  # the registry's columns for the picker
        items = [RESIDENT_ITEMS[1], RESIDENT_ITEMS[0], {"code": "", "name": ""}, RESIDENT_ITEMS[4]]
        response = client.post(reverse("exchange:entry_create"), form_post(RESIDENT_DATA, items))
        entry = CatalogEntry.objects.get()
        assert response.status_code == 302 and response["Location"] == entry.get_absolute_url()
        assert entry.status == "draft" and entry.provider == psb and entry.created_by == psb_staff
        assert list(entry.items.values_list("code", flat=True)) == ["name", "id_number", "address"]
        assert entry.items.get(code="address").personal

    def test_errors_per_field_and_row_and_nothing_lost(self, client, psb_staff):
        as_user(client, psb_staff)
        items = [RESIDENT_ITEMS[0], {"code": "salary", "name": "工资"}, {"code": "name", "name": "姓名", "length": "x"}]
        data = {**RESIDENT_DATA, "legal_basis": "", "name": "我的资源草稿"}
        response = client.post(reverse("exchange:entry_create"), form_post(data, items))
        body = html(response)
        assert response.status_code == 400 and not CatalogEntry.objects.exists()
        assert "长度须为" in body  # the row's own check comes first
        items[2].pop("length")
        response = client.post(reverse("exchange:entry_create"), form_post(data, items))
        body = html(response)
        assert response.status_code == 400
        assert "须写明依据" in body  # field error
        assert "基础库中没有字段 salary" in body  # row error, on its row
        assert 'value="salary"' in body and 'value="我的资源草稿"' in body  # nothing lost

    def test_save_and_submit(self, client, psb_staff, egov):
        as_user(client, psb_staff)
        post = form_post(RESIDENT_DATA, RESIDENT_ITEMS)
        post["then"] = "submit"
        response = client.post(reverse("exchange:entry_create"), post)
        entry = CatalogEntry.objects.get()
        assert response.status_code == 302 and entry.status == "review"
        assert Task.objects.filter(case=entry.review_case, assignee=egov, status="open").exists()

    def test_edit_a_draft(self, client, psb, psb_staff, bob):
        draft = psb_draft(psb, psb_staff)
        url = reverse("exchange:entry_edit", args=[draft.pk])
        as_user(client, psb_staff)
        page = html(client.get(url))
        assert "101001002/000001" in page and 'value="gender"' in page
        data = {**RESIDENT_DATA, "class_code": "999", "name": "人口补充信息（修改）"}  # class code is fixed
        response = client.post(url, form_post(data, RESIDENT_ITEMS[:2]))
        draft.refresh_from_db()
        assert response.status_code == 302 and draft.name == "人口补充信息（修改）" and draft.class_code == "101001002"
        assert draft.items.count() == 2
        assert as_user(client, bob).get(url).status_code == 404  # bob cannot even see the draft

    def test_published_entries_are_not_edited(self, client, resident_entry, psb_staff):
        response = as_user(client, psb_staff).get(reverse("exchange:entry_edit", args=[resident_entry.pk]))
        assert response.status_code == 403 and "修订" in html(response)

    def test_units_without_a_post_cannot_compile(self, client, db, roles):
        from yiwang.org.models import User

        nobody = User.objects.create_user(username="nobody", password="x")
        response = as_user(client, nobody).get(reverse("exchange:entry_create"))
        assert response.status_code == 403


# --- actions ---------------------------------------------------------------------------------------


class TestActions:
    def test_submit_revise_revoke(self, client, psb, psb_staff, egov, resident_entry):
        as_user(client, psb_staff)
        draft = psb_draft(psb, psb_staff)
        response = client.post(reverse("exchange:entry_submit", args=[draft.pk]))
        draft.refresh_from_db()
        assert response.status_code == 302 and draft.status == "review"
        assert client.post(reverse("exchange:entry_submit", args=[draft.pk]), follow=True).status_code == 200
        assert client.get(reverse("exchange:entry_submit", args=[draft.pk])).status_code == 405

        response = client.post(reverse("exchange:entry_revise", args=[resident_entry.pk]))
        v2 = CatalogEntry.objects.get(code=resident_entry.code, version=2)
        assert response["Location"] == reverse("exchange:entry_edit", args=[v2.pk])

        response = client.post(reverse("exchange:entry_revoke", args=[resident_entry.pk]), {"reason": ""}, follow=True)
        resident_entry.refresh_from_db()
        assert resident_entry.status == "published" and "请填写撤销原因" in html(response)
        client.post(reverse("exchange:entry_revoke", args=[resident_entry.pk]), {"reason": "数据源停用"})
        resident_entry.refresh_from_db()
        assert resident_entry.status == "revoked" and resident_entry.revoked_reason == "数据源停用"

    def test_another_unit_is_refused(self, client, resident_entry, bob):
        response = as_user(client, bob).post(
            reverse("exchange:entry_revoke", args=[resident_entry.pk]), {"reason": "x"}
        )
        assert response.status_code == 403
        resident_entry.refresh_from_db()
        assert resident_entry.status == "published"

    def test_delete_draft(self, client, psb, psb_staff):
        draft = psb_draft(psb, psb_staff)
        response = as_user(client, psb_staff).post(reverse("exchange:entry_delete", args=[draft.pk]))
        assert response["Location"] == LIST and not CatalogEntry.objects.filter(pk=draft.pk).exists()


# --- exports ---------------------------------------------------------------------------------------


class TestExports:
    def test_excel_has_entries_and_items(self, client, resident_entry, alice):
        response = as_user(client, alice).get(reverse("exchange:entry_export_xlsx") + "?q=人口")
        assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
        book = load_workbook(io.BytesIO(response.content))
        entries, items = book.worksheets
        header = [c.value for c in entries[1]]
        assert header[:3] == ["资源代码", "版本", "资源名称"] and "共享依据" in header and "更新周期" in header
        assert entries.max_row == 2 and entries["A2"].value == resident_entry.code
        assert items.max_row == 1 + len(RESIDENT_ITEMS)
        assert [c.value for c in items[2]][:5] == [resident_entry.code, "人口基础信息", 1, "id_number", "公民身份号码"]

    def test_jsonld_is_a_dcat_catalog(self, client, resident_entry, alice):
        response = as_user(client, alice).get(reverse("exchange:entry_export_jsonld"))
        assert response.status_code == 200 and response["Content-Type"].startswith("application/ld+json")
        data = json.loads(response.content)
        assert data["@context"]["dcat"] == "http://www.w3.org/ns/dcat#"
        assert data["@context"]["dct"] == "http://purl.org/dc/terms/" and data["@context"]["@language"] == "zh"
        assert data["@type"] == "dcat:Catalog"
        (dataset,) = data["dcat:dataset"]
        assert dataset["dct:identifier"] == resident_entry.code and dataset["dct:title"] == "人口基础信息"
        assert dataset["dct:publisher"]["foaf:name"] == "区公安分局"
        assert dataset["dct:accrualPeriodicity"]["@id"].endswith("/DAILY")
        assert "户籍" in dataset["dcat:keyword"] and dataset["yw:sharingType"] == "conditional"
        assert dataset["dct:issued"]["@value"] == resident_entry.published_on.isoformat()
        assert (
            "/api/exchange/gateway/101001001/000001/records/"
            in dataset["dcat:distribution"][0]["dcat:accessURL"]["@id"]
        )
        assert len(dataset["yw:dataItem"]) == len(RESIDENT_ITEMS)
        empty = json.loads(client.get(reverse("exchange:entry_export_jsonld") + "?q=不存在xyz").content)
        assert empty["dcat:dataset"] == []
