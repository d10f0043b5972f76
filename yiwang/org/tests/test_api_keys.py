"""API keys for consumer systems: hashed at rest, scoped, revocable; bad keys get 401 JSON."""

import pytest
from django.urls import reverse

from yiwang.org import services
from yiwang.org.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def system(units, admin):
    return services.system_create(actor=None, name="教育业务系统", unit=units["edu"])


def auth(raw):
    return {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}


class TestApiKeys:
    def test_raw_key_not_stored(self, system):
        key, raw = services.api_key_issue(actor=None, system=system, name="k", scopes=["org:read"])
        assert raw not in key.key_hash and key.key_hash != raw
        assert ApiKey.objects.filter(key_hash__contains=raw.split("_")[2]).count() == 0

    def test_key_reads_its_units_scope(self, client, system, alice, bob):
        _key, raw = services.api_key_issue(actor=None, system=system, name="k", scopes=["org:read"])
        response = client.get("/api/org/people/", **auth(raw))
        assert response.status_code == 200
        assert [p["username"] for p in response.json()["results"]] == ["alice"]

    def test_read_scope_cannot_write(self, client, system, units):
        _key, raw = services.api_key_issue(actor=None, system=system, name="k", scopes=["org:read"])
        response = client.post(
            "/api/org/units/",
            {"name": "x", "code": "X", "kind": "office"},
            content_type="application/json",
            **auth(raw),
        )
        assert response.status_code == 403

    def test_revoked_key_is_401(self, client, system):
        key, raw = services.api_key_issue(actor=None, system=system, name="k", scopes=["org:read"])
        services.api_key_revoke(actor=None, key=key)
        response = client.get("/api/org/units/", **auth(raw))
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"
        assert "密钥" in response.json()["error"]["message"]

    @pytest.mark.parametrize("raw", ["nonsense", "yw_00000000_wrong", "yw__", "a b c"])
    def test_bad_keys_are_401(self, client, system, raw):
        services.api_key_issue(actor=None, system=system, name="k", scopes=["org:read"])
        response = client.get("/api/org/units/", **auth(raw))
        assert response.status_code == 401
        assert "error" in response.json()

    def test_expired_key_is_401(self, client, system):
        import datetime as dt

        from django.utils import timezone

        _key, raw = services.api_key_issue(
            actor=None,
            system=system,
            name="k",
            scopes=["org:read"],
            expires_at=timezone.now() - dt.timedelta(minutes=1),
        )
        assert client.get("/api/org/units/", **auth(raw)).status_code == 401

    def test_issue_and_revoke_in_browser(self, admin_client, system):
        url = reverse("org:system_detail", args=[system.pk])
        response = admin_client.post(url, {"name": "生产", "kind": "live", "scopes": ["org:read"]})
        assert response.status_code == 200
        key = ApiKey.objects.get(system=system)
        raw = response.context["new_key"]
        assert raw.startswith(f"yw_{key.prefix}_")
        assert admin_client.get("/api/org/me/", **auth(raw)).status_code == 200
        admin_client.post(reverse("org:api_key_revoke", args=[key.pk]))
        key.refresh_from_db()
        assert key.revoked_at is not None

    def test_staff_cannot_manage_systems(self, alice_client, system):
        assert alice_client.get(reverse("org:system_detail", args=[system.pk])).status_code in (403, 404)
        assert alice_client.get(reverse("org:system_list")).status_code == 403
