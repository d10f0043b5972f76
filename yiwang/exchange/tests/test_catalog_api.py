"""``/api/exchange/entries/``: the catalogue for keys and sessions, drafts kept by provider staff."""

from __future__ import annotations

import pytest
from django.urls import reverse

from yiwang.exchange import services
from yiwang.exchange.models import CatalogEntry

from .conftest import RESIDENT_DATA, RESIDENT_ITEMS

pytestmark = pytest.mark.django_db

ENTRIES = reverse("api:exchange:entry-list")


def detail(pk, action=None):
    return reverse(f"api:exchange:entry-{action or 'detail'}", args=[pk])


def key_client(client, raw):
    client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {raw}"
    return client


def payload(**overrides):
    return {**RESIDENT_DATA, "items": RESIDENT_ITEMS, **overrides}


def draft(psb, psb_staff):
    return services.entry_save(actor=psb_staff, provider=psb, items=RESIDENT_ITEMS,
                               data={**RESIDENT_DATA, "class_code": "101001002", "name": "人口补充信息"})  # fmt: skip


class TestRead:
    def test_a_key_sees_published_entries(self, client, resident_entry, psb, psb_staff, edu_key):
        hidden = draft(psb, psb_staff)
        key_client(client, edu_key[1])
        data = client.get(ENTRIES).json()
        assert data["count"] == 1
        (row,) = data["results"]
        assert row["code"] == resident_entry.code and row["provider_name"] == "区公安分局"
        assert row["status"] == "published" and row["sharing_type_display"] == "有条件共享"
        body = client.get(detail(resident_entry.pk)).json()
        assert [i["code"] for i in body["items"]] == [i["code"] for i in RESIDENT_ITEMS]
        assert body["items"][0]["personal"] is True and body["items"][0]["mask"] == "id_number"
        assert client.get(detail(hidden.pk)).status_code == 404
        assert client.get(ENTRIES + "?status=all").json()["count"] == 1

    def test_filters_and_search(self, client, resident_entry, edu_key):
        key_client(client, edu_key[1])
        assert client.get(ENTRIES + "?q=户籍").json()["count"] == 1
        assert client.get(ENTRIES + "?q=不存在xyz").json()["count"] == 0
        assert client.get(ENTRIES + "?major=1&middle=101&registry=resident").json()["count"] == 1
        assert client.get(ENTRIES + "?sharing_type=unconditional").json()["count"] == 0
        assert client.get(ENTRIES + "?registry=none").json()["count"] == 0
        response = client.get(ENTRIES + "?major=9&status=bogus")
        assert response.status_code == 400
        assert set(response.json()["error"]["details"]) == {"major", "status"}

    def test_bad_and_missing_ids(self, client, resident_entry, edu_key):
        key_client(client, edu_key[1])
        response = client.get("/api/exchange/entries/abc/")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
        assert client.get(detail(999999)).json()["error"]["code"] == "not_found"

    def test_jsonld(self, client, resident_entry, edu_key):
        data = key_client(client, edu_key[1]).get(reverse("api:exchange:entry-jsonld")).json()
        assert data["@type"] == "dcat:Catalog" and "dcat" in data["@context"]
        assert data["dcat:dataset"][0]["dct:identifier"] == resident_entry.code

    def test_no_key_no_entry(self, client, resident_entry):
        response = client.get(ENTRIES)
        assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"

    def test_a_session_sees_its_own_drafts(self, client, resident_entry, psb, psb_staff, alice):
        hidden = draft(psb, psb_staff)
        client.force_login(psb_staff)
        assert client.get(ENTRIES).json()["count"] == 2
        assert client.get(detail(hidden.pk)).status_code == 200
        client.force_login(alice)
        assert client.get(ENTRIES).json()["count"] == 1


class TestWrite:
    def test_create_update_submit(self, client, psb, psb_staff, egov):
        client.force_login(psb_staff)
        response = client.post(ENTRIES, payload(), content_type="application/json")
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["code"] == "101001001/000001" and body["status"] == "draft" and body["provider"] == psb.pk
        assert len(body["items"]) == len(RESIDENT_ITEMS)
        response = client.put(detail(body["id"]), payload(name="人口基础信息（修订）", items=RESIDENT_ITEMS[:2]),
                              content_type="application/json")  # fmt: skip
        assert response.status_code == 200 and response.json()["name"] == "人口基础信息（修订）"
        assert len(response.json()["items"]) == 2
        response = client.post(detail(body["id"], "submit"), {"comment": "请审核"}, content_type="application/json")
        assert response.status_code == 200 and response.json()["status"] == "review"
        assert response.json()["review_case"]
        response = client.post(detail(body["id"], "submit"), {}, content_type="application/json")
        assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"
        response = client.put(detail(body["id"]), payload(), content_type="application/json")
        assert response.status_code == 409

    def test_validation_errors_name_the_fields(self, client, psb_staff):
        client.force_login(psb_staff)
        bad_items = [*RESIDENT_ITEMS, {"code": "salary", "name": "工资"}]
        response = client.post(ENTRIES, payload(legal_basis="", items=bad_items), content_type="application/json")
        assert response.status_code == 400
        details = response.json()["error"]["details"]
        assert "legal_basis" in details and "salary" in details["items"][0]
        response = client.post(ENTRIES, {"class_code": "x", "items": "no"}, content_type="application/json")
        assert response.status_code == 400 and {"class_code", "items", "name"} <= set(
            response.json()["error"]["details"]
        )
        response = client.post(ENTRIES, payload(provider=999999), content_type="application/json")
        assert response.status_code == 400 and "provider" in response.json()["error"]["details"]
        assert not CatalogEntry.objects.exists()

    def test_revise_and_revoke(self, client, resident_entry, psb_staff):
        client.force_login(psb_staff)
        response = client.post(detail(resident_entry.pk, "revise"), content_type="application/json")
        assert response.status_code == 201 and response.json()["version"] == 2
        response = client.post(detail(resident_entry.pk, "revoke"), {}, content_type="application/json")
        assert response.status_code == 400 and "reason" in response.json()["error"]["details"]
        response = client.post(detail(resident_entry.pk, "revoke"), {"reason": "停用"}, content_type="application/json")
        assert response.status_code == 200 and response.json()["status"] == "revoked"
        response = client.post(detail(resident_entry.pk, "revoke"), {"reason": "停用"}, content_type="application/json")
        assert response.status_code == 409

    def test_other_units_and_keys_cannot_write(self, client, resident_entry, psb, bob, edu_key):
        client.force_login(bob)
        response = client.post(ENTRIES, payload(provider=psb.pk), content_type="application/json")
        assert response.status_code == 403 and "提供方" in response.json()["error"]["message"]
        response = client.post(detail(resident_entry.pk, "revoke"), {"reason": "x"}, content_type="application/json")
        assert response.status_code == 403
        client.logout()
        key_client(client, edu_key[1])
        response = client.post(ENTRIES, payload(provider=psb.pk), content_type="application/json")
        assert response.status_code == 403


@pytest.mark.parametrize(
    "path",
    ["/api/exchange/entries/", "/api/exchange/requests/", "/api/exchange/grants/", "/api/exchange/disputes/",
     "/api/exchange/imports/"],
)  # fmt: skip
def test_public_accounts_get_nothing_from_the_management_api(client, units, roles, resident_entry, path):
    """The same rule as the pages: government staff or a consumer system, not a citizen's account."""
    from conftest import make_person

    citizen = make_person("citizen_api", "市民", units["district"], roles["citizen"])
    client.force_login(citizen)
    response = client.get(path)
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "共享交换仅供机关工作人员和接入系统使用。"
