"""exchange fixtures: a provider (区公安分局), a consumer system of 区教育局 with a key, the e-gov office.

Areas append their own fixtures in marked sections below; entries and grants are built
with the module's services, as the UI builds them.
"""

from __future__ import annotations

import pytest

from conftest import make_person
from yiwang.org import services as org


@pytest.fixture(autouse=True)
def _exchange_settings(settings):
    settings.YIWANG_EGOV_UNIT = "EGOV"
    from django.core.cache import cache

    from yiwang.exchange import gateway

    cache.clear()  # gateway caches and rate counters start empty in every test
    gateway.reset()  # caches, rate counts and day counters of an earlier test's calls


@pytest.fixture
def psb(units):
    return org.unit_create(actor=None, name="区公安分局", code="PSB", kind="bureau", parent=units["district"])


@pytest.fixture
def psb_head(psb, roles):
    """Principal leader of the provider: answers access requests and disputes."""
    return make_person("psb_head", "冯刚", psb, roles["leader"], title="分局长", leader_rank="principal")


@pytest.fixture
def psb_staff(psb, roles):
    """Staff of the provider: keeps its catalogue entries."""
    return make_person("psb_staff", "钱勇", psb, roles["staff"], mobile="13800138011", title="民警")


@pytest.fixture
def egov(units, roles):
    """The e-gov office (电子政务办): reviews the catalogue, answers escalated requests."""
    return make_person("egov", "吴建国", units["egov"], roles["egov_office"], title="主任", leader_rank="principal")


@pytest.fixture
def edu_system(units, alice):
    """区教育局's enrolment system (入学报名系统), a consumer."""
    return org.system_create(actor=None, name="入学报名系统", unit=units["edu"])


@pytest.fixture
def edu_key(edu_system):
    """(ApiKey, raw key) of the enrolment system with the exchange scopes."""
    key, raw = org.api_key_issue(
        actor=None, system=edu_system, name="正式密钥", scopes=["exchange:read", "exchange:write"]
    )
    return key, raw


@pytest.fixture
def fin_system(units, bob):
    return org.system_create(actor=None, name="财政补贴系统", unit=units["fin"])


@pytest.fixture
def fin_key(fin_system):
    key, raw = org.api_key_issue(actor=None, system=fin_system, name="正式密钥", scopes=["exchange:read"])
    return key, raw


# --- catalogue/access fixtures ------------------------------------------------------------------
# A published 人口基础库 entry of 区公安分局 (built and reviewed through the workflow engine, as the
# UI does) and a live grant of the enrolment system on it (a conditional request answered by the
# provider's leader).

RESIDENT_DATA = {
    "class_code": "101001001",
    "name": "人口基础信息",
    "abstract": "全区户籍人口的身份号码、姓名、性别、出生日期、户籍地址、联系电话等基础信息。",
    "keywords": "人口,户籍,身份证",
    "format": "database",
    "sharing_type": "conditional",
    "sharing_condition": "用于政务服务事项办理中的身份核验，须经提供方同意。",
    "legal_basis": "《中华人民共和国居民身份证法》；《政务信息资源共享管理暂行办法》（国发〔2016〕51号）",
    "share_method": "api",
    "open_type": "closed",
    "update_cycle": "daily",
    "related_codes": [],
    "registry": "resident",
}

RESIDENT_ITEMS = [
    {"code": "id_number", "name": "公民身份号码", "sharing_type": "unconditional", "personal": True,
     "mask": "id_number", "length": 18, "synonyms": "身份证号码,身份证号,证件号码"},
    {"code": "name", "name": "姓名", "sharing_type": "unconditional", "personal": True, "mask": "name"},
    {"code": "gender", "name": "性别", "sharing_type": "unconditional"},
    {"code": "birth_date", "name": "出生日期", "sharing_type": "unconditional", "data_type": "date"},
    {"code": "address", "name": "户籍地址", "sharing_type": "conditional", "personal": True, "mask": "address"},
    {"code": "phone", "name": "联系电话", "sharing_type": "conditional", "personal": True, "mask": "phone"},
    {"code": "street", "name": "所属街道（镇）", "sharing_type": "unconditional"},
]  # fmt: skip


def publish_entry(entry, reviewer):
    """Submit a draft and let the e-gov office approve its review task: the entry is published."""
    from yiwang.exchange import services as exchange
    from yiwang.workflow import services as workflow
    from yiwang.workflow.models import Task

    entry = exchange.entry_submit(actor=entry.created_by or reviewer, entry=entry)
    task = Task.objects.get(case=entry.review_case, assignee=reviewer, status=Task.Status.OPEN)
    workflow.task_approve(task=task, actor=reviewer, comment="同意发布。")
    entry.refresh_from_db()
    return entry


@pytest.fixture
def resident_entry(psb, psb_staff, psb_head, egov):
    """人口基础信息 (101001001/000001) of 区公安分局, published, backed by the resident registry."""
    from yiwang.exchange import services as exchange

    entry = exchange.entry_save(actor=psb_staff, data=dict(RESIDENT_DATA), items=RESIDENT_ITEMS, provider=psb)
    entry = publish_entry(entry, egov)
    assert entry.status == "published"
    return entry


@pytest.fixture
def edu_grant(resident_entry, edu_system, alice, psb_head):
    """区教育局's enrolment system may read id_number, name, gender, birth_date, street and address
    (address masked: not granted in plain text); approved by 区公安分局's leader."""
    from yiwang.exchange import services as exchange

    request = exchange.request_create(
        actor=alice,
        system=edu_system,
        entry=resident_entry,
        items=["id_number", "name", "gender", "birth_date", "street", "address"],
        purpose="义务教育入学资格核验",
        legal_basis="《义务教育法》第十二条",
        service_item="义务教育阶段新生入学登记",
    )
    exchange.request_decide(actor=psb_head, request=request, approve=True, reason="同意，用于入学资格核验。")
    grant = exchange.grant_live(system=edu_system, resource_code=resident_entry.code)
    assert grant is not None
    return grant


# --- disputes / subscriptions fixtures ---------------------------------------------------------
# Residents of the 人口基础库 written with registries.record_save (the path imports and dispute
# corrections take), so each write is audited and logged for subscribers.


def resident_id(birth: str = "20150312", seq: str = "123", region: str = "330206") -> str:
    """A valid 18-digit citizen ID number (with its check character)."""
    from yiwang.core.validators import id_check_char

    first17 = f"{region}{birth}{seq}"
    return first17 + id_check_char(first17)


def resident_save(key: str, **values):
    from yiwang.exchange import registries

    base = {"name": "张小明", "gender": "M", "birth_date": "2015-03-12", "address": "北仑区新碶街道明州路 1 号",
            "street": "新碶街道", "phone": "13800138999"}  # fmt: skip
    record, _changed = registries.record_save(
        actor=None, registry_code="resident", key=key, values={**base, **values}, reason="测试数据"
    )
    return record


@pytest.fixture
def resident(resident_entry):
    """One resident of the registry behind 人口基础信息."""
    return resident_save(resident_id())


# --- matching / statistics / evidence fixtures ---------------------------------------------------
# A second provider (区市场监管局) with a published, unconditional 法人基础信息 entry, and
# ``call_record``: one gateway call's evidence in the shape gateway.evidence writes it.

LEGAL_DATA = {
    "class_code": "102001001", "name": "法人基础信息", "abstract": "全区企业、事业单位、社会组织的登记信息。",
    "keywords": "法人,企业,信用代码", "format": "database", "sharing_type": "unconditional",
    "sharing_condition": "", "legal_basis": "", "share_method": "api", "open_type": "conditional",
    "update_cycle": "daily", "related_codes": [], "registry": "legal_entity",
}  # fmt: skip

LEGAL_ITEMS = [
    {"code": "credit_code", "name": "统一社会信用代码", "sharing_type": "unconditional"},
    {"code": "name", "name": "名称", "sharing_type": "unconditional"},
    {"code": "representative", "name": "法定代表人", "sharing_type": "unconditional"},
    {"code": "address", "name": "住所", "sharing_type": "unconditional"},
    {"code": "established_on", "name": "成立日期", "sharing_type": "unconditional", "data_type": "date"},
    {"code": "registered_capital", "name": "注册资本（万元）", "sharing_type": "unconditional", "data_type": "decimal"},
    {"code": "phone", "name": "联系电话", "sharing_type": "unconditional"},
]  # fmt: skip


@pytest.fixture
def mkt(units):
    return org.unit_create(actor=None, name="区市场监管局", code="MKT", kind="bureau", parent=units["district"])


@pytest.fixture
def mkt_staff(mkt, roles):
    """Staff of 区市场监管局, provider of 法人基础信息."""
    return make_person("mkt_staff", "孙敏", mkt, roles["staff"], title="科员")


@pytest.fixture
def legal_entry(mkt, mkt_staff, egov):
    """法人基础信息 (102001001/000001) of 区市场监管局, published, unconditional."""
    from yiwang.exchange import services as exchange

    entry = exchange.entry_save(actor=mkt_staff, data=dict(LEGAL_DATA), items=LEGAL_ITEMS, provider=mkt)
    return publish_entry(entry, egov)


def call_record(
    system, entry, *, served: bool = True, purpose: str = "义务教育入学资格核验", record: str = "",
    items=("id_number", "name"), masked=(), count: int = 1, status: int | None = None, error: str = "",
    ms: float = 12.5, size: int = 321, action: str | None = None,
):  # fmt: skip
    """Write one call's evidence (core.AuditEntry) as the gateway does."""
    from django.utils import timezone

    from yiwang.core.audit import audit_record

    now = timezone.now()
    status = status if status is not None else (200 if served else 403)
    return audit_record(
        actor=system.account,
        action=action or ("exchange.read" if served else "exchange.denied"),
        unit_id=system.unit_id,
        object_type="exchange.resource",
        object_id=entry.code,
        object_repr=entry.name,
        changes={
            "system": system.pk, "system_name": system.name, "key": "abcd1234", "purpose": purpose,
            "record": record, "items": list(items) if served else [], "masked": list(masked),
            "count": count if served else 0, "status": status, "error": error if served else (error or "not_granted"),
            "received_at": now.isoformat(timespec="milliseconds"), "responded_at": now.isoformat(timespec="milliseconds"),
            "ms": ms, "bytes": size,
        },
    )  # fmt: skip


# --- API fuzzing (schemathesis) -------------------------------------------------------------


@pytest.fixture(scope="session")
def openapi() -> dict:
    """The project's OpenAPI description, as drf-spectacular generates it."""
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def fuzz(db):
    """``fuzz(spec, authorizations, max_examples)`` sends schemathesis-generated requests for every operation
    of ``spec`` through the real WSGI app and returns the statuses seen; a 500 or an answer that does not match
    the documented status codes, content type or body schema fails the test. Cases are derandomized, so a
    failure is reproducible."""
    import schemathesis
    from django.core import signals
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    # like Django's test client: the request cycle must not close the test's database connection
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)

    def run_all(spec: dict, authorizations: list[str], max_examples: int) -> set[int]:
        schema = schemathesis.openapi.from_dict(spec)
        schema.app = get_wsgi_application()
        statuses: set[int] = set()
        for operation in [result.ok() for result in schema.get_all_operations()]:

            @given(case=operation.as_strategy(), authorization=st.sampled_from(authorizations))
            @settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            )
            def run(case, authorization):
                headers = {"Authorization": authorization} if authorization else {}
                response = case.call(headers=headers)
                statuses.add(response.status_code)
                assert response.status_code < 500, (case.path, case.query, case.body, response.text[:300])
                case.validate_response(response, checks=checks)

            run()
        return statuses

    yield run_all
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
