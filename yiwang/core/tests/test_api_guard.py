"""The API guard every module's API passes: NUL bytes, null/oversized bodies and Django's own error
pages all answer in the one JSON error format (issue 10, items 4 and 9). Run on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from yiwang.core.models import AuditEntry
from yiwang.org import services as org


def error(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


@pytest.mark.django_db
class TestNul:
    def test_query_parameter(self, admin_client):
        response = admin_client.get("/api/org/people/?role=a%00b")
        assert response.status_code == 400
        assert "空字符" in error(response)["message"]

    def test_query_parameter_name(self, admin_client):
        response = admin_client.get("/api/org/people/?a%00b=1&role=x&q=%00")
        assert response.status_code == 400
        assert list(error(response)["details"]) == ["a\ufffdb", "q"]

    def test_path_parameter(self, admin_client):
        response = admin_client.get("/api/org/roles/a%00b/")
        assert response.status_code == 400
        assert list(error(response)["details"]) == ["path"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"role": "a\u0000b"}, "role"),
            ({"a\u0000b": "x"}, "non_field_errors"),
            ({"full_name": "王", "fields": [{"deep": ["ok", "a\u0000"]}]}, "fields"),
            ([{"x": "\u0000"}], "non_field_errors"),
        ],
    )
    def test_json_body_anywhere(self, admin_client, body, field):
        response = admin_client.post("/api/org/people/", data=json.dumps(body), content_type="application/json")
        assert response.status_code == 400
        assert list(error(response)["details"]) == [field]
        assert "空字符" in error(response)["details"][field][0]

    def test_form_field(self, admin_client):
        response = admin_client.post("/api/org/people/", data={"full_name": "a\x00b"})
        assert response.status_code == 400
        assert list(error(response)["details"]) == ["full_name"]

    def test_gateway_path_too(self, client):
        response = client.get("/api/exchange/gateway/101001001/000001/records/a%00b/?purpose=测试用途")
        assert response.status_code == 400 and error(response)["code"] == "invalid"

    def test_escaped_backslash_is_not_a_nul(self, admin_client):
        """``"\\\\u0000"`` is the six characters ``\\u0000``, not a NUL: the guard lets it through."""
        body = json.dumps({"full_name": "\\u0000"})
        response = admin_client.post("/api/org/people/", data=body, content_type="application/json")
        assert "空字符" not in response.content.decode()

    def test_pages_outside_the_api_are_untouched(self, admin_client):
        assert admin_client.get("/org/people/?q=a%00b").status_code != 500


@pytest.mark.django_db
class TestBodies:
    @pytest.mark.parametrize("body", ["null", "3", '"text"'])
    def test_null_or_scalar_body_in_chinese(self, admin_client, body):
        response = admin_client.post("/api/org/people/", data=body, content_type="application/json")
        assert response.status_code == 400
        assert "JSON 对象" in error(response)["message"]

    def test_body_over_the_limit_is_413_in_the_format(self, admin_client, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
        response = admin_client.post("/api/org/people/", data="{" + " " * 2000 + "}", content_type="application/json")
        assert response.status_code == 413
        assert error(response)["code"] == "too_large" and error(response)["details"] == {"limit_bytes": 1000}

    def test_form_body_over_the_limit(self, admin_client, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
        response = admin_client.post("/api/org/people/", data={"full_name": "x" * 2000})
        assert response.status_code == 413 and error(response)["code"] == "too_large"

    def test_too_deep_json(self, admin_client):
        body = "[" * 100_000 + "]" * 100_000
        response = admin_client.post("/api/org/people/", data=body, content_type="application/json")
        assert response.status_code == 400 and error(response)["code"] == "parse_error"


@pytest.mark.django_db
class TestUnmatched:
    def test_unmatched_api_path_is_json_even_under_debug(self, admin_client, settings):
        settings.DEBUG = True
        response = admin_client.get("/api/org/no-such-thing/")
        assert response.status_code == 404
        body = error(response)
        assert body["code"] == "not_found" and "/api/org/no-such-thing/" in body["message"]
        assert "urlpatterns" not in response.content.decode()

    def test_unmatched_api_path_anonymous(self, client):
        response = client.post("/api/nothing/here/", data="{}", content_type="application/json")
        assert response.status_code == 404 and error(response)["code"] == "not_found"

    def test_unmatched_gateway_path_is_the_gateways_404_with_evidence(self, client, units):
        system = org.system_create(actor=None, name="入学报名系统", unit=units["edu"])
        _key, raw = org.api_key_issue(actor=None, system=system, name="正式密钥", scopes=["exchange:read"])
        response = client.get(
            "/api/exchange/gateway/101001001/000001/nothing/?purpose=入学资格核验",
            HTTP_AUTHORIZATION=f"Api-Key {raw}",
        )
        assert response.status_code == 404
        assert error(response)["code"] == "not_found" and "网关没有该接口" in error(response)["message"]
        entry = AuditEntry.objects.get(action="exchange.denied")
        assert entry.object_id == "101001001/000001/nothing"
        assert entry.changes["status"] == 404 and entry.changes["error"] == "not_found"
        assert entry.changes["system_name"] == "入学报名系统"

    def test_unmatched_gateway_path_without_key_is_401(self, client):
        response = client.get("/api/exchange/gateway/x/")
        assert response.status_code == 401 and error(response)["code"] == "not_authenticated"
        assert not AuditEntry.objects.filter(action="exchange.denied").exists()
