"""Access request and grant pages: ask, list by tab, answer (narrowing items), withdraw; grants,
their revocation and per-minute limits."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from yiwang.exchange import services
from yiwang.exchange.models import AccessRequest, Grant

from .conftest import RESIDENT_DATA, RESIDENT_ITEMS

pytestmark = pytest.mark.django_db

REQUESTS = reverse("exchange:requests")
GRANTS = reverse("exchange:grants")


def html(response) -> str:
    return response.content.decode()


def as_user(client, user):
    client.force_login(user)
    return client


def ask(alice, edu_system, entry, items, **kwargs):
    kwargs.setdefault("purpose", "义务教育入学资格核验")
    return services.request_create(actor=alice, system=edu_system, entry=entry, items=items, **kwargs)


class TestRequestForm:
    def test_form_shows_items_with_sharing_types_and_plain_text_for_personal_items(
        self, client, resident_entry, edu_system, alice
    ):
        body = html(as_user(client, alice).get(reverse("exchange:request_create", args=[resident_entry.pk])))
        assert "入学报名系统" in body and "有条件共享" in body and "无条件共享" in body
        assert 'name="unmasked" value="address"' in body and 'name="unmasked" value="gender"' not in body
        assert 'name="items" value="gender"' in body and "catalog.js" in body

    def test_unconditional_items_are_granted_at_once(self, client, resident_entry, edu_system, alice):
        url = reverse("exchange:request_create", args=[resident_entry.pk])
        response = as_user(client, alice).post(
            url, {"system": edu_system.pk, "items": ["id_number", "name"], "purpose": "入学资格核验"}, follow=True
        )
        request = AccessRequest.objects.get()
        assert request.status == "granted" and request.requested_by == alice
        assert response.redirect_chain[-1][0] == request.get_absolute_url()
        assert "已自动授权" in html(response)

    def test_conditional_items_wait_for_the_provider(self, client, resident_entry, edu_system, alice, psb_head):
        url = reverse("exchange:request_create", args=[resident_entry.pk])
        response = as_user(client, alice).post(
            url,
            {"system": edu_system.pk, "items": ["name", "address"], "unmasked": ["address"],
             "purpose": "入学资格核验", "legal_basis": "义务教育法", "service_item": "新生入学登记"},
            follow=True,
        )  # fmt: skip
        request = AccessRequest.objects.get()
        assert request.status == "pending" and request.unmasked == ["address"]
        assert request.service_item == "新生入学登记" and request.legal_basis == "义务教育法"
        assert request.due_date.isoformat() in html(response) and "区公安分局" in html(response)

    def test_errors_are_shown_and_nothing_is_saved(self, client, resident_entry, edu_system, alice):
        url = reverse("exchange:request_create", args=[resident_entry.pk])
        response = as_user(client, alice).post(url, {"system": edu_system.pk, "items": [], "purpose": "核验"})
        assert response.status_code == 400 and not AccessRequest.objects.exists()
        body = html(response)
        assert "请选择要申请的信息项" in body and "至少 4 个字" in body
        response = client.post(url, {"system": "999", "items": ["name"], "purpose": "入学资格核验"})
        assert response.status_code == 400

    def test_units_without_a_system_and_unpublished_entries(self, client, resident_entry, psb, psb_staff, alice):
        response = as_user(client, psb_staff).get(reverse("exchange:request_create", args=[resident_entry.pk]))
        assert response.status_code == 403 and "业务系统" in html(response)
        draft = services.entry_save(actor=psb_staff, provider=psb, items=RESIDENT_ITEMS,
                                    data={**RESIDENT_DATA, "class_code": "101001002"})  # fmt: skip
        assert client.get(reverse("exchange:request_create", args=[draft.pk])).status_code == 403
        as_user(client, alice)
        assert client.get(reverse("exchange:request_create", args=[draft.pk])).status_code == 404


class TestRequestList:
    def test_tabs(self, client, resident_entry, edu_system, alice, psb_head, egov, bob):
        request = ask(alice, edu_system, resident_entry, ["address"])
        link = reverse("exchange:request_detail", args=[request.pk])
        assert link in html(as_user(client, alice).get(REQUESTS))
        assert link not in html(client.get(REQUESTS + "?tab=todo"))
        assert 'href="?tab=all"' not in html(client.get(REQUESTS))
        as_user(client, psb_head)
        assert link not in html(client.get(REQUESTS))
        todo = html(client.get(REQUESTS + "?tab=todo"))
        assert link in todo and "badge text-bg-danger" in todo  # one to answer
        assert link in html(as_user(client, egov).get(REQUESTS + "?tab=all"))
        assert 'href="?tab=all"' in html(client.get(REQUESTS))
        assert link not in html(as_user(client, bob).get(REQUESTS + "?tab=all"))  # not a tab for bob: his own

    def test_filters_and_due_colours(self, client, resident_entry, edu_system, alice):
        request = ask(alice, edu_system, resident_entry, ["address"])
        as_user(client, alice)
        assert "wf-due" in html(client.get(REQUESTS))
        link = reverse("exchange:request_detail", args=[request.pk])
        assert link in html(client.get(REQUESTS + "?status=open"))
        assert link not in html(client.get(REQUESTS + "?status=granted"))
        assert link not in html(client.get(REQUESTS + "?overdue=on"))
        AccessRequest.objects.filter(pk=request.pk).update(due_date=dt.date.today() - dt.timedelta(days=3))
        body = html(client.get(REQUESTS + "?overdue=on"))
        assert link in body and "已超期" in body
        assert link in html(client.get(REQUESTS + "?q=人口"))
        assert link not in html(client.get(REQUESTS + "?q=不存在xyz"))
        assert client.get(REQUESTS + "?status=bogus&entry=x&tab=zzz").status_code == 200


class TestRequestDetail:
    def test_the_provider_leader_answers_with_fewer_items(self, client, resident_entry, edu_system, alice, psb_head):
        request = ask(alice, edu_system, resident_entry, ["name", "address", "phone"], unmasked=["address"])
        body = html(as_user(client, alice).get(request.get_absolute_url()))
        assert "答复申请" not in body and "撤回申请" in body and "办理记录" in body
        body = html(as_user(client, psb_head).get(request.get_absolute_url()))
        assert "答复申请" in body and "撤回申请" not in body
        response = client.post(
            reverse("exchange:request_decide", args=[request.pk]),
            {"decision": "approve", "items": ["name", "address"], "unmasked": [], "reason": "电话不予提供"},
        )
        assert response.status_code == 302
        request.refresh_from_db()
        assert request.status == "granted" and request.items == ["name", "address"] and request.unmasked == []
        grant = Grant.objects.get()
        assert grant.items == ["address", "name"] and grant.unmasked == []
        body = html(client.get(request.get_absolute_url()))
        assert "电话不予提供" in body and reverse("exchange:grant_detail", args=[grant.pk]) in body

    def test_refusal_needs_a_reason(self, client, resident_entry, edu_system, alice, psb_head):
        request = ask(alice, edu_system, resident_entry, ["address"])
        as_user(client, psb_head)
        decide = reverse("exchange:request_decide", args=[request.pk])
        response = client.post(decide, {"decision": "refuse", "reason": ""})
        assert response.status_code == 400 and "不予同意须说明理由" in html(response)
        client.post(decide, {"decision": "refuse", "reason": "用途不符"})
        request.refresh_from_db()
        assert request.status == "refused" and request.reason == "用途不符"
        assert client.post(decide, {"decision": "approve"}).status_code == 403  # answered: no one may decide

    def test_others_cannot_decide_or_see(self, client, resident_entry, edu_system, alice, bob):
        request = ask(alice, edu_system, resident_entry, ["address"])
        response = as_user(client, alice).post(reverse("exchange:request_decide", args=[request.pk]),
                                               {"decision": "approve"})  # fmt: skip
        assert response.status_code == 403
        assert as_user(client, bob).get(request.get_absolute_url()).status_code == 404
        assert client.get(reverse("exchange:request_decide", args=[request.pk])).status_code == 405

    def test_egov_answers_directly(self, client, resident_entry, edu_system, alice, egov):
        request = ask(alice, edu_system, resident_entry, ["address"])
        body = html(as_user(client, egov).get(request.get_absolute_url()))
        assert "电子政务办直接答复" in body
        client.post(
            reverse("exchange:request_decide", args=[request.pk]), {"decision": "approve", "items": ["address"]}
        )
        request.refresh_from_db()
        assert request.status == "granted" and request.case.status == "cancelled"

    def test_withdraw(self, client, resident_entry, edu_system, alice):
        request = ask(alice, edu_system, resident_entry, ["address"])
        response = as_user(client, alice).post(reverse("exchange:request_withdraw", args=[request.pk]), follow=True)
        request.refresh_from_db()
        assert request.status == "withdrawn" and "申请已撤回" in html(response)
        response = client.post(reverse("exchange:request_withdraw", args=[request.pk]), follow=True)
        assert "不能撤回" in html(response)


class TestGrants:
    def test_tabs_and_detail(self, client, edu_grant, alice, psb_staff, egov, bob):
        link = reverse("exchange:grant_detail", args=[edu_grant.pk])
        assert link in html(as_user(client, alice).get(GRANTS))
        assert link not in html(client.get(GRANTS + "?tab=given"))
        assert link in html(as_user(client, psb_staff).get(GRANTS + "?tab=given"))
        assert link in html(as_user(client, egov).get(GRANTS + "?tab=all"))
        assert link not in html(as_user(client, bob).get(GRANTS))
        assert client.get(link).status_code == 404
        body = html(as_user(client, alice).get(link))
        assert "人口基础信息" in body and "户籍地址" in body and "脱敏" in body and "撤销授权" not in body
        assert "撤销授权" in html(as_user(client, psb_staff).get(link))
        assert link in html(as_user(client, alice).get(GRANTS + "?state=live&q=人口"))
        assert link not in html(client.get(GRANTS + "?state=revoked"))

    def test_revoke_and_limit(self, client, edu_grant, psb_staff, alice):
        revoke = reverse("exchange:grant_revoke", args=[edu_grant.pk])
        limit = reverse("exchange:grant_limit", args=[edu_grant.pk])
        assert as_user(client, alice).post(revoke, {"reason": "x"}).status_code == 403
        assert client.post(limit, {"per_minute": "10"}).status_code == 403
        as_user(client, psb_staff)
        response = client.post(limit, {"per_minute": "abc"}, follow=True)
        assert "正整数" in html(response)
        client.post(limit, {"per_minute": "120"})
        edu_grant.refresh_from_db()
        assert edu_grant.per_minute == 120
        client.post(limit, {"per_minute": ""})
        edu_grant.refresh_from_db()
        assert edu_grant.per_minute is None
        response = client.post(revoke, {"reason": ""}, follow=True)
        assert "请填写撤销原因" in html(response)
        client.post(revoke, {"reason": "超范围使用"})
        edu_grant.refresh_from_db()
        assert edu_grant.revoked_at is not None
        body = html(client.get(reverse("exchange:grant_detail", args=[edu_grant.pk])))
        assert "超范围使用" in body and "撤销授权" not in body

    def test_empty_states(self, client, alice, psb_staff):
        assert "还没有获得授权" in html(as_user(client, alice).get(GRANTS))
        assert "还没有共享申请" in html(client.get(REQUESTS))
        assert "没有需要本单位答复的申请" in html(as_user(client, psb_staff).get(REQUESTS + "?tab=todo"))
