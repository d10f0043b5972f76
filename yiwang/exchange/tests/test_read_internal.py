"""``gateway.read_internal``: a module inside the platform reads shared data through the HTTP
gateway's own checks — same refusals, same shaping, same evidence — without an API key."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from yiwang.core.models import AuditEntry
from yiwang.exchange import gateway
from yiwang.exchange import services as exchange
from yiwang.exchange.tests.test_gateway import ID, OTHER_ID, call, zhang  # noqa: F401 - a fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("zhang")]  # 张三丰 is in the registry
PURPOSE = "义务教育入学资格核验"


def internal(system, code, *, key=ID, purpose=PURPOSE, **kwargs):
    """(status, code, message, body) of an internal read, in the HTTP answer's terms."""
    try:
        body = gateway.read_internal(system=system, resource=code, key=key, purpose=purpose, **kwargs)
    except gateway.Refusal as refusal:
        return refusal.status, refusal.code, refusal.message, None
    if body is None:  # no such record: the HTTP gateway answers 404 not_found, here None
        return 404, "not_found", None, None
    return 200, None, None, body


def http(client, raw, code, **params):
    response = call(client, raw, code, **params)
    body = response.json()
    error = body.get("error") or {}
    return response.status_code, error.get("code"), error.get("message"), (None if error else body)


@pytest.fixture
def hall(units, edu_system, resident_entry, alice, psb_head):
    """The service hall (services) as an internal consumer of 区教育局, granted like an outside system."""
    system = exchange.internal_system_ensure("services", unit=units["edu"], name="政务服务大厅")
    request = exchange.request_create(
        actor=alice, system=system, entry=resident_entry, items=["id_number", "name", "gender"],
        purpose="办事预填", legal_basis="《政务服务条例》", service_item="入学登记预填",
    )  # fmt: skip
    if request.status in type(request).OPEN:  # unconditional items only are granted at once
        exchange.request_decide(actor=psb_head, request=request, approve=True, reason="同意预填。")
    assert exchange.grant_live(system=system, resource_code=resident_entry.code) is not None
    return system


class TestModuleSystem:
    def test_ensure_registers_once_and_reads_by_module_code(self, hall, units, resident_entry, alice):
        assert exchange.internal_system_ensure("services") == hall  # found again, not a second system
        hall.account.refresh_from_db()
        assert hall.account.username == "module-services" and not hall.keys.exists()
        body = gateway.read_internal(module="services", resource=resident_entry.code, key=ID, purpose="预填入学登记表",
                                     actor=alice)  # fmt: skip
        assert set(body["record"]) == {"id_number", "name", "gender"} and body["record"]["gender"] == "M"
        assert body["record"]["name"] != "张三丰" and body["masked"] == ["id_number", "name"]
        entry = AuditEntry.objects.get(action="exchange.read")
        assert entry.actor_id == hall.account_id and entry.changes["key"] == "internal"
        assert entry.changes["user"] == alice.pk and entry.changes["user_name"] == "王丽"

    def test_an_unregistered_module_is_refused(self, resident_entry):
        with pytest.raises(gateway.Refusal) as refused:
            gateway.read_internal(module="hotline", resource=resident_entry.code, key=ID, purpose="来电人核对")
        assert refused.value.status == 403 and refused.value.code == "no_system"

    def test_a_registered_module_without_a_grant_is_refused_and_audited(self, units, resident_entry):
        exchange.internal_system_ensure("hotline", unit=units["edu"])
        with pytest.raises(gateway.Refusal) as refused:
            gateway.read_internal(module="hotline", resource=resident_entry.code, key=ID, purpose="来电人核对")
        assert refused.value.code == "not_granted"
        assert AuditEntry.objects.get(action="exchange.denied").changes["key"] == "internal"

    def test_a_page_with_filters(self, hall, resident_entry):
        body = gateway.read_internal(module="services", resource=resident_entry.code, query={"gender": "M"},
                                     purpose="按性别统计预填", page_size=5)  # fmt: skip
        assert body["count"] == 1 and body["records"][0]["gender"] == "M" and body["next"] is None


class TestSameAsHttp:
    """The same consumer system asks over HTTP (with its key) and inside (without): same answers."""

    @pytest.mark.parametrize(
        ("case", "params"),
        [
            ("served", {}),
            ("narrowed", {"items": "gender"}),
            ("not_in_registry", {"key": OTHER_ID}),
            ("item_not_granted", {"items": "phone"}),
            ("unknown_item", {"items": "salary"}),
            ("no_purpose", {"purpose": ""}),
            ("short_purpose", {"purpose": "看看"}),
            ("bad_key", {"key": "12345"}),
            ("no_grant", {}),
            ("expired_grant", {}),
            ("revoked_grant", {}),
            ("resource_closed", {}),
            ("unknown_resource", {}),
        ],
    )
    def test_refuses_what_the_gateway_refuses(self, client, case, params, edu_grant, edu_key, edu_system, fin_key,
                                              fin_system, resident_entry, psb_staff, psb_head,
                                              django_capture_on_commit_callbacks):  # fmt: skip
        system, raw, code = edu_system, edu_key[1], resident_entry.code
        if case == "no_grant":
            system, raw = fin_system, fin_key[1]
        elif case == "expired_grant":
            type(edu_grant).objects.filter(pk=edu_grant.pk).update(expires_on=timezone.localdate() - dt.timedelta(1))
            gateway.bump_generation()
        elif case == "revoked_grant":
            with django_capture_on_commit_callbacks(execute=True):
                exchange.grant_revoke(actor=psb_head, grant=edu_grant, reason="用途已结束")
        elif case == "resource_closed":
            with django_capture_on_commit_callbacks(execute=True):
                exchange.entry_revoke(actor=psb_staff, entry=resident_entry, reason="暂停共享")
        elif case == "unknown_resource":
            code = "101001001/999999"
        key = params.pop("key", ID)
        over_http = http(client, raw, code, key=key, **params)
        inside = internal(system, code, key=key, purpose=params.pop("purpose", PURPOSE), **params)
        if case == "not_in_registry":
            over_http = (*over_http[:2], None, None)
        assert inside == over_http
        if case not in ("served", "narrowed", "not_in_registry"):
            assert over_http[0] >= 400 and over_http[1] and over_http[2]  # a refusal, with a Chinese reason
        denied = AuditEntry.objects.filter(action__in=["exchange.read", "exchange.denied"]).order_by("id")
        assert denied.count() == 2 and denied[0].action == denied[1].action

    def test_rate_limit_counts_both_ways_together(self, client, edu_grant, edu_key, edu_system, resident_entry,
                                                  psb_head, django_capture_on_commit_callbacks):  # fmt: skip
        with django_capture_on_commit_callbacks(execute=True):
            exchange.grant_limit(actor=psb_head, grant=edu_grant, per_minute=2)
        assert http(client, edu_key[1], resident_entry.code)[0] == 200
        assert internal(edu_system, resident_entry.code)[0] == 200
        over_http = http(client, edu_key[1], resident_entry.code)
        inside = internal(edu_system, resident_entry.code)
        assert over_http[:2] == inside[:2] == (429, "throttled")

    def test_the_same_evidence_entry(self, client, edu_grant, edu_key, edu_system, resident_entry, alice):
        http(client, edu_key[1], resident_entry.code, purpose="新生入学资格审核")
        gateway.read_internal(system=edu_system, resource=resident_entry.code, key=ID, purpose="新生入学资格审核",
                              actor=alice)  # fmt: skip
        outside, inside = AuditEntry.objects.filter(action="exchange.read").order_by("id")
        fields = ("actor_id", "actor_name", "unit_id", "object_type", "object_id", "object_repr")
        assert [getattr(outside, f) for f in fields] == [getattr(inside, f) for f in fields]
        timing = {"received_at", "responded_at", "ms"}
        a = {k: v for k, v in outside.changes.items() if k not in timing}
        b = {k: v for k, v in inside.changes.items() if k not in timing}
        assert a.pop("key") == edu_key[0].prefix and b.pop("key") == "internal"
        assert b.pop("user") == alice.pk and b.pop("user_name") == "王丽"
        assert a == b  # system, purpose, record, items, masked, count, status, bytes: identical
