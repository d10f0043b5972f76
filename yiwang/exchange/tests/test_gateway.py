"""The API gateway: deny by default, item filtering and masking, evidence in the audit chain."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from yiwang.core.audit import audit_chain, audit_verify
from yiwang.core.models import AuditEntry
from yiwang.core.validators import id_check_char
from yiwang.exchange import gateway
from yiwang.exchange import services as exchange
from yiwang.exchange.models import CallDay, Resident
from yiwang.org import services as org

pytestmark = pytest.mark.django_db


def valid_id(first17: str = "33020619850312123") -> str:
    return first17 + id_check_char(first17)


ID = valid_id()
OTHER_ID = valid_id("33020620100101456")  # valid, not in the registry


@pytest.fixture
def zhang(db):
    return Resident.objects.create(
        id_number=ID,
        name="张三丰",
        gender="M",
        birth_date=dt.date(1985, 3, 12),
        phone="13812341234",
        address="浙江省宁波市北仑区新碶街道明州路 100 号",
        street="新碶街道",
    )


def url(code: str, key: str | None = None) -> str:
    return f"/api/exchange/gateway/{code}/records/{key}/" if key else f"/api/exchange/gateway/{code}/records/"


def call(client, raw: str | None, code: str, key: str | None = ID, **params):
    params.setdefault("purpose", "义务教育入学资格核验")
    headers = {"HTTP_AUTHORIZATION": f"Api-Key {raw}"} if raw else {}
    return client.get(url(code, key), params, **headers)


def error_code(response) -> str:
    return response.json()["error"]["code"]


class TestServed:
    def test_only_granted_items_personal_masked(self, client, edu_grant, edu_key, resident_entry, zhang):
        response = call(client, edu_key[1], resident_entry.code)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["resource"] == resident_entry.code
        record = body["record"]
        # phone is not granted: absent; address granted but not in plain text: masked
        assert set(record) == {"id_number", "name", "gender", "birth_date", "address", "street"}
        assert record["gender"] == "M" and record["birth_date"] == "1985-03-12" and record["street"] == "新碶街道"
        assert record["name"] == "张*丰"
        assert record["id_number"] == "330206********" + ID[-4:]
        assert record["address"].startswith("浙江省宁波市") and "明州路" not in record["address"]
        assert sorted(body["masked"]) == ["address", "id_number", "name"]

    def test_unmasked_grant_returns_plain_values(self, client, edu_grant, edu_key, resident_entry, zhang, alice,
                                                 psb_head, django_capture_on_commit_callbacks):  # fmt: skip
        assert call(client, edu_key[1], resident_entry.code).json()["record"]["name"] == "张*丰"  # cached now
        request = exchange.request_create(
            actor=alice, system=edu_grant.system, entry=resident_entry, items=["name", "id_number"],
            unmasked=["name", "id_number"], purpose="学籍建档需核对实名",
        )  # fmt: skip
        with django_capture_on_commit_callbacks(execute=True):  # the grant changes: every process reloads
            exchange.request_decide(actor=psb_head, request=request, approve=True, reason="同意实名核对。")
        body = call(client, edu_key[1], resident_entry.code, items="name,id_number,address").json()
        assert body["record"] == {"name": "张三丰", "id_number": ID, "address": body["record"]["address"]}
        assert body["masked"] == ["address"]

    def test_items_parameter_narrows_the_answer(self, client, edu_grant, edu_key, resident_entry, zhang):
        body = call(client, edu_key[1], resident_entry.code, items="gender,street").json()
        assert body["record"] == {"gender": "M", "street": "新碶街道"}
        assert body["masked"] == []

    def test_lower_case_check_letter_is_accepted(self, client, edu_grant, edu_key, resident_entry):
        first17 = next(f"3302061990010100{n}" for n in range(10) if id_check_char(f"3302061990010100{n}") == "X")
        Resident.objects.create(id_number=first17 + "X", name="李四", gender="F", birth_date=dt.date(1990, 1, 1),
                                address="北仑区")  # fmt: skip
        response = call(client, edu_key[1], resident_entry.code, key=first17 + "x")
        assert response.status_code == 200
        assert response.json()["record"]["gender"] == "F"

    def test_unknown_but_valid_id_is_404_and_audited(self, client, edu_grant, edu_key, resident_entry):
        response = call(client, edu_key[1], resident_entry.code, key=OTHER_ID)
        assert response.status_code == 404
        assert error_code(response) == "not_found"
        entry = AuditEntry.objects.filter(action="exchange.denied").latest("id")
        assert entry.changes["record"] == OTHER_ID and entry.changes["count"] == 0 and entry.changes["status"] == 404


class TestEvidence:
    def test_every_served_call_is_in_the_audit_with_operational_fields(self, client, edu_grant, edu_key,
                                                                       resident_entry, zhang, edu_system):  # fmt: skip
        call(client, edu_key[1], resident_entry.code, purpose="新生入学资格审核（张三丰）")
        entry = AuditEntry.objects.get(action="exchange.read")
        assert entry.object_type == "exchange.resource" and entry.object_id == resident_entry.code
        assert entry.actor_id == edu_system.account_id and entry.unit_id == edu_system.unit_id
        changes = entry.changes
        assert changes["system"] == edu_system.pk and changes["key"] == edu_key[0].prefix
        assert changes["purpose"] == "新生入学资格审核（张三丰）"
        assert changes["record"] == ID and changes["count"] == 1 and changes["status"] == 200
        assert set(changes["items"]) == {"id_number", "name", "gender", "birth_date", "address", "street"}
        assert changes["bytes"] > 50 and changes["ms"] >= 0
        assert changes["received_at"] <= changes["responded_at"]

    def test_chain_verifies_and_detects_tampering_with_a_read(self, client, edu_grant, edu_key, resident_entry,
                                                              zhang):  # fmt: skip
        for _ in range(3):
            call(client, edu_key[1], resident_entry.code)
        call(client, edu_key[1], resident_entry.code, items="phone")  # denied, also evidence
        audit_chain()
        assert audit_verify() is None
        read = AuditEntry.objects.filter(action="exchange.read").order_by("id")[1]
        changes = dict(read.changes, purpose="随便看看")  # someone rewrites why the data was read
        AuditEntry.objects.filter(pk=read.pk).update(changes=changes)
        broken = audit_verify()
        assert broken is not None and broken.seq == read.seq

    def test_counters_per_day_system_and_resource(self, client, edu_grant, edu_key, resident_entry, zhang):
        gateway.counters_flush()
        call(client, edu_key[1], resident_entry.code)
        call(client, edu_key[1], resident_entry.code, key=OTHER_ID)
        call(client, edu_key[1], resident_entry.code, items="phone")
        gateway.counters_flush()
        row = CallDay.objects.get(system_id=edu_grant.system_id, resource_code=resident_entry.code)
        assert (row.calls, row.denied, row.records, row.errors) == (3, 2, 1, 0)
        assert row.day == timezone.localdate() and row.provider_id == resident_entry.provider_id
        assert row.bytes > 0 and row.max_ms > 0


class TestDenyByDefault:
    """consumer × resource × item: only a live grant on a published entry, within its items, is served."""

    @pytest.fixture
    def keys(self, edu_key, fin_key, edu_system):
        _no_scope, no_scope_raw = org.api_key_issue(actor=None, system=edu_system, name="只读组织", scopes=["org:read"])
        revoked, revoked_raw = org.api_key_issue(actor=None, system=edu_system, name="旧密钥", scopes=["exchange:read"])
        org.api_key_revoke(actor=None, key=revoked)
        _expired, expired_raw = org.api_key_issue(
            actor=None, system=edu_system, name="过期", scopes=["exchange:read"],
            expires_at=timezone.now() - dt.timedelta(minutes=1),
        )  # fmt: skip
        return {
            "granted": edu_key[1],
            "other_unit": fin_key[1],
            "no_scope": no_scope_raw,
            "revoked": revoked_raw,
            "expired": expired_raw,
            "garbage": "yw_deadbeef_not-a-real-secret",
            "malformed": "not-even-a-key",
            "none": None,
        }

    @pytest.mark.parametrize(
        ("consumer", "resource", "items", "status", "code"),
        [
            ("granted", "published", None, 200, None),
            ("granted", "published", "gender", 200, None),
            ("granted", "published", "phone", 403, "item_not_granted"),
            ("granted", "published", "gender,phone", 403, "item_not_granted"),
            ("granted", "published", "salary", 400, "unknown_item"),
            ("granted", "unknown", None, 404, "not_found"),
            ("granted", "draft", None, 404, "not_found"),
            ("granted", "revoked", None, 404, "not_found"),
            ("other_unit", "published", None, 403, "not_granted"),
            ("other_unit", "published", "gender", 403, "not_granted"),
            ("other_unit", "unknown", None, 404, "not_found"),
            ("no_scope", "published", None, 403, "scope"),
            ("revoked", "published", None, 401, "authentication_failed"),
            ("expired", "published", None, 401, "authentication_failed"),
            ("garbage", "published", None, 401, "authentication_failed"),
            ("malformed", "published", None, 401, "authentication_failed"),
            ("none", "published", None, 401, "not_authenticated"),
        ],
    )
    def test_matrix(self, client, keys, edu_grant, resident_entry, psb_staff, zhang, consumer, resource, items,
                    status, code):  # fmt: skip
        target = {"published": resident_entry.code, "unknown": "101001001/999999"}.get(resource)
        if resource == "draft":
            target = exchange.entry_revise(actor=psb_staff, entry=resident_entry).code
            exchange.entry_revoke(actor=psb_staff, entry=resident_entry, reason="停止共享")  # only the draft is left
        if resource == "revoked":
            target = resident_entry.code
            exchange.entry_revoke(actor=psb_staff, entry=resident_entry, reason="数据治理中，暂停共享")
        params = {"items": items} if items else {}
        response = call(client, keys[consumer], target, **params)
        assert response.status_code == status, response.content
        if code:
            body = response.json()
            assert body["error"]["code"] == code and body["error"]["message"]
            assert "record" not in body and "张" not in response.content.decode()
        else:
            assert response.json()["record"]

    def test_purpose_is_required(self, client, edu_grant, edu_key, resident_entry, zhang):
        for purpose in ("", "看看", " " * 10, "x" * 201):
            response = call(client, edu_key[1], resident_entry.code, purpose=purpose)
            assert response.status_code == 400 and error_code(response) == "purpose_required"
        assert AuditEntry.objects.filter(action="exchange.read").count() == 0
        assert AuditEntry.objects.filter(action="exchange.denied").count() == 4

    # a NUL ("%00") never reaches the gateway: core's API guard refuses it (core/tests/test_api_guard.py)
    @pytest.mark.parametrize("key", ["330206198503121230", "12345", "33020619851312123X", "ＡＢＣ"])
    def test_malformed_id_numbers(self, client, edu_grant, edu_key, resident_entry, zhang, key):
        response = call(client, edu_key[1], resident_entry.code, key=key)
        assert response.status_code == 400 and error_code(response) == "invalid_key"
        assert "公民身份号码" in response.json()["error"]["message"]

    def test_revoking_the_grant_takes_effect_at_the_next_call(self, client, edu_grant, edu_key, resident_entry,
                                                              psb_head, zhang, django_capture_on_commit_callbacks):  # fmt: skip
        assert call(client, edu_key[1], resident_entry.code).status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            exchange.grant_revoke(actor=psb_head, grant=edu_grant, reason="用途已结束")
        response = call(client, edu_key[1], resident_entry.code)
        assert response.status_code == 403 and error_code(response) == "not_granted"

    def test_revoking_the_key_takes_effect_at_the_next_call(self, client, edu_grant, edu_key, resident_entry, zhang):
        assert call(client, edu_key[1], resident_entry.code).status_code == 200
        org.api_key_revoke(actor=None, key=edu_key[0])
        assert call(client, edu_key[1], resident_entry.code).status_code == 401

    def test_expired_grant(self, client, edu_grant, edu_key, resident_entry, zhang):
        type(edu_grant).objects.filter(pk=edu_grant.pk).update(expires_on=timezone.localdate() - dt.timedelta(days=1))
        gateway.bump_generation()
        assert call(client, edu_key[1], resident_entry.code).status_code == 403

    def test_rate_limit_per_consumer_and_resource(self, client, edu_grant, edu_key, resident_entry, psb_head, zhang,
                                                  django_capture_on_commit_callbacks):  # fmt: skip
        with django_capture_on_commit_callbacks(execute=True):
            exchange.grant_limit(actor=psb_head, grant=edu_grant, per_minute=2)
        statuses = [call(client, edu_key[1], resident_entry.code).status_code for _ in range(3)]
        assert statuses[:2] == [200, 200] and statuses[2] == 429

    def test_a_new_version_keeps_the_grant_but_drops_removed_items(self, client, edu_grant, edu_key, resident_entry,
                                                                   psb_staff, egov, zhang):  # fmt: skip
        from yiwang.exchange.tests.conftest import RESIDENT_DATA, RESIDENT_ITEMS, publish_entry

        draft = exchange.entry_revise(actor=psb_staff, entry=resident_entry)
        items = [i for i in RESIDENT_ITEMS if i["code"] != "street"]
        exchange.entry_save(actor=psb_staff, entry=draft, data=dict(RESIDENT_DATA), items=items)
        publish_entry(draft, egov)
        body = call(client, edu_key[1], resident_entry.code).json()
        assert body["version"] == 2 and "street" not in body["record"] and body["record"]["gender"] == "M"

    def test_items_or_resources_closed_by_a_later_version_are_no_longer_served(
        self, client, edu_grant, edu_key, resident_entry, psb_staff, egov, zhang, django_capture_on_commit_callbacks
    ):
        from yiwang.exchange.tests.conftest import RESIDENT_DATA, RESIDENT_ITEMS, publish_entry

        draft = exchange.entry_revise(actor=psb_staff, entry=resident_entry)
        items = [dict(i, sharing_type="none") if i["code"] == "street" else i for i in RESIDENT_ITEMS]
        exchange.entry_save(actor=psb_staff, entry=draft, data=dict(RESIDENT_DATA), items=items)
        v2 = publish_entry(draft, egov)
        body = call(client, edu_key[1], resident_entry.code).json()
        assert "street" not in body["record"] and body["record"]["gender"] == "M"
        response = call(client, edu_key[1], resident_entry.code, items="street")
        assert response.status_code == 403 and error_code(response) == "item_not_granted"
        # v3 closes the whole resource (不予共享): the grant no longer opens it
        draft = exchange.entry_revise(actor=psb_staff, entry=v2)
        closed = [dict(i, sharing_type="none") for i in RESIDENT_ITEMS]
        exchange.entry_save(actor=psb_staff, entry=draft, data=dict(RESIDENT_DATA, sharing_type="none"), items=closed)
        with django_capture_on_commit_callbacks(execute=True):  # publishing moves the gateway's generation
            publish_entry(draft, egov)
        response = call(client, edu_key[1], resident_entry.code)
        assert response.status_code == 403 and error_code(response) == "not_granted"


class TestList:
    @pytest.fixture
    def people(self, db):
        for n in range(5):
            first17 = f"3302062000010{n}123"
            Resident.objects.create(
                id_number=first17 + id_check_char(first17), name=f"居民{n}", gender="F",
                birth_date=dt.date(2000, 1, 1), address="北仑区", street="大碶街道" if n % 2 else "新碶街道",
            )  # fmt: skip

    def test_pages_by_cursor_with_filters_on_granted_items(self, client, edu_grant, edu_key, resident_entry, people):
        response = call(client, edu_key[1], resident_entry.code, key=None, street="新碶街道", page_size=2)
        assert response.status_code == 200, response.content
        first = response.json()
        assert first["count"] == 2 and first["next"]
        assert all(r["street"] == "新碶街道" for r in first["records"])
        second = call(client, edu_key[1], resident_entry.code, key=None, street="新碶街道", page_size=2,
                      after=first["next"]).json()  # fmt: skip
        assert second["count"] == 1 and second["next"] is None
        assert {r["name"] for r in first["records"] + second["records"]} == {"居*0", "居*2", "居*4"}

    @pytest.mark.parametrize(
        ("params", "status", "code"),
        [
            ({"page_size": 101}, 400, "page_size"),
            ({"page_size": 0}, 400, "page_size"),
            ({"page_size": "many"}, 400, "invalid"),
            ({"after": "-1"}, 400, "invalid"),
            ({"phone": "13812341234"}, 403, "item_not_granted"),
            ({"birth_date": "not-a-date"}, 400, "invalid"),
        ],
    )
    def test_bad_pages_and_filters(self, client, edu_grant, edu_key, resident_entry, people, params, status, code):
        response = call(client, edu_key[1], resident_entry.code, key=None, **params)
        assert response.status_code == status, response.content
        assert error_code(response) == code
