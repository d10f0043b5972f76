"""``/api/exchange/requests/`` and ``/grants/``: a consumer system asks with its key, the provider
answers in a session; each caller sees only its own."""

from __future__ import annotations

import pytest
from django.urls import reverse

from yiwang.exchange import services
from yiwang.exchange.models import AccessRequest, Grant

pytestmark = pytest.mark.django_db

REQUESTS = reverse("api:exchange:request-list")
GRANTS = reverse("api:exchange:grant-list")


def req(pk, action=None):
    return reverse(f"api:exchange:request-{action or 'detail'}", args=[pk])


def grant_url(pk, action=None):
    return reverse(f"api:exchange:grant-{action or 'detail'}", args=[pk])


def key_client(client, raw):
    client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {raw}"
    return client


def body(resource, items, **extra):
    return {"resource": resource.code, "items": items, "purpose": "义务教育入学资格核验", **extra}


class TestCreate:
    def test_unconditional_granted_at_once(self, client, resident_entry, edu_system, edu_key):
        response = key_client(client, edu_key[1]).post(
            REQUESTS, body(resident_entry, ["id_number", "name"]), content_type="application/json"
        )
        assert response.status_code == 201, response.json()
        data = response.json()
        assert data["status"] == "granted" and data["system"] == edu_system.pk and data["case"] is None
        grants = client.get(GRANTS).json()
        assert grants["count"] == 1 and grants["results"][0]["items"] == ["id_number", "name"]
        assert grants["results"][0]["live"] is True

    def test_conditional_pending_with_a_deadline(self, client, resident_entry, edu_key, psb_head):
        response = key_client(client, edu_key[1]).post(
            REQUESTS,
            body(resident_entry, ["name", "address"], unmasked=["address"], service_item="新生入学登记"),
            content_type="application/json",
        )
        data = response.json()
        assert response.status_code == 201 and data["status"] == "pending" and data["due_date"] and data["case"]
        assert AccessRequest.objects.get().requested_by is None
        response = client.post(REQUESTS, body(resident_entry, ["phone"]), content_type="application/json")
        assert response.status_code == 409 and "重复" in response.json()["error"]["message"]

    def test_invalid_input(self, client, resident_entry, edu_key):
        key_client(client, edu_key[1])
        response = client.post(REQUESTS, body(resident_entry, ["salary"]), content_type="application/json")
        assert response.status_code == 400 and "items" in response.json()["error"]["details"]
        response = client.post(REQUESTS, {"resource": "101001001/999999", "items": ["name"], "purpose": "用途用途"},
                               content_type="application/json")  # fmt: skip
        assert response.status_code == 400 and "resource" in response.json()["error"]["details"]
        response = client.post(REQUESTS, {"resource": "x", "items": "name"}, content_type="application/json")
        assert response.status_code == 400
        assert {"resource", "items", "purpose"} <= set(response.json()["error"]["details"])
        response = client.post(
            REQUESTS, body(resident_entry, ["name"], purpose="核验"), content_type="application/json"
        )
        assert response.status_code == 400 and "purpose" in response.json()["error"]["details"]

    def test_a_read_only_key_cannot_ask(self, client, resident_entry, fin_key):
        response = key_client(client, fin_key[1]).post(
            REQUESTS, body(resident_entry, ["name"]), content_type="application/json"
        )
        assert response.status_code == 403

    def test_a_session_names_a_system_of_its_unit(self, client, resident_entry, edu_system, fin_system, alice):
        client.force_login(alice)
        response = client.post(REQUESTS, body(resident_entry, ["name"]), content_type="application/json")
        assert response.status_code == 400 and "system" in response.json()["error"]["details"]
        response = client.post(REQUESTS, body(resident_entry, ["name"], system=fin_system.pk),
                               content_type="application/json")  # fmt: skip
        assert response.status_code == 403
        response = client.post(REQUESTS, body(resident_entry, ["name"], system=edu_system.pk),
                               content_type="application/json")  # fmt: skip
        assert response.status_code == 201 and response.json()["status"] == "granted"


class TestReadAndAnswer:
    def test_each_key_sees_its_own(self, client, resident_entry, edu_system, edu_key, fin_system, fin_key, bob):
        mine = services.request_create(actor=edu_system.account, system=edu_system, entry=resident_entry,
                                       items=["address"], purpose="入学资格核验")  # fmt: skip
        theirs = services.request_create(actor=bob, system=fin_system, entry=resident_entry, items=["name"],
                                         purpose="补贴对象核验")  # fmt: skip
        key_client(client, edu_key[1])
        data = client.get(REQUESTS).json()
        assert [r["id"] for r in data["results"]] == [mine.pk]
        assert client.get(req(theirs.pk)).status_code == 404
        assert client.get(REQUESTS + "?status=open").json()["count"] == 1
        assert client.get(REQUESTS + "?status=granted").json()["count"] == 0
        assert client.get(REQUESTS + "?status=nope").status_code == 400
        assert client.get(GRANTS).json()["count"] == 0
        key_client(client, fin_key[1])
        assert client.get(GRANTS).json()["count"] == 1
        other = Grant.objects.get(system=fin_system)
        key_client(client, edu_key[1])
        assert client.get(grant_url(other.pk)).status_code == 404

    def test_the_provider_answers_in_a_session(self, client, resident_entry, edu_system, edu_key, psb_head, alice):
        request = services.request_create(actor=edu_system.account, system=edu_system, entry=resident_entry,
                                          items=["name", "address", "phone"], unmasked=["address"],
                                          purpose="入学资格核验")  # fmt: skip
        key_client(client, edu_key[1])
        response = client.post(req(request.pk, "decide"), {"approve": True}, content_type="application/json")
        assert response.status_code == 403  # a key does not answer
        client.defaults.pop("HTTP_AUTHORIZATION")
        client.force_login(alice)
        assert (
            client.post(req(request.pk, "decide"), {"approve": True}, content_type="application/json").status_code
            == 403
        )
        client.force_login(psb_head)
        response = client.post(req(request.pk, "decide"), {"approve": False}, content_type="application/json")
        assert response.status_code == 400 and "reason" in response.json()["error"]["details"]
        response = client.post(req(request.pk, "decide"), {"approve": True, "items": ["salary"]},
                               content_type="application/json")  # fmt: skip
        assert response.status_code == 400 and "items" in response.json()["error"]["details"]
        response = client.post(req(request.pk, "decide"),
                               {"approve": True, "items": ["name", "address"], "unmasked": [], "reason": "电话不提供"},
                               content_type="application/json")  # fmt: skip
        data = response.json()
        assert response.status_code == 200 and data["status"] == "granted"
        assert data["items"] == ["name", "address"] and data["unmasked"] == [] and data["reason"] == "电话不提供"
        response = client.post(req(request.pk, "decide"), {"approve": True}, content_type="application/json")
        assert response.status_code == 409

    def test_withdraw_with_the_key(self, client, resident_entry, edu_system, edu_key):
        request = services.request_create(actor=edu_system.account, system=edu_system, entry=resident_entry,
                                          items=["address"], purpose="入学资格核验")  # fmt: skip
        key_client(client, edu_key[1])
        response = client.post(req(request.pk, "withdraw"), content_type="application/json")
        assert response.status_code == 200 and response.json()["status"] == "withdrawn"
        assert client.post(req(request.pk, "withdraw"), content_type="application/json").status_code == 409


class TestGrants:
    def test_revoke_and_limit_by_the_provider(self, client, edu_grant, edu_key, psb_staff):
        key_client(client, edu_key[1])
        data = client.get(grant_url(edu_grant.pk)).json()
        assert data["resource_code"] == edu_grant.resource_code and data["live"] is True
        assert client.post(grant_url(edu_grant.pk, "revoke"), {"reason": "x"},
                           content_type="application/json").status_code == 403  # fmt: skip
        client.defaults.pop("HTTP_AUTHORIZATION")
        client.force_login(psb_staff)
        response = client.post(grant_url(edu_grant.pk, "limit"), {"per_minute": 60}, content_type="application/json")
        assert response.status_code == 200 and response.json()["per_minute"] == 60
        response = client.post(grant_url(edu_grant.pk, "limit"), {"per_minute": 0}, content_type="application/json")
        assert response.status_code == 400
        response = client.post(grant_url(edu_grant.pk, "revoke"), {"reason": "超范围使用"},
                               content_type="application/json")  # fmt: skip
        assert response.status_code == 200 and response.json()["live"] is False
        response = client.post(grant_url(edu_grant.pk, "revoke"), {"reason": "again"}, content_type="application/json")
        assert response.status_code == 409
        assert client.get(GRANTS + "?live=false").json()["count"] == 1
        assert client.get(GRANTS + "?live=true").json()["count"] == 0
