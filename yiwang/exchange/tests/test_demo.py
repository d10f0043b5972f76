"""The exchange demo: built with the services, every state shown, idempotent like the other demos."""

from __future__ import annotations

from collections import Counter

import pytest

from yiwang.exchange import demo
from yiwang.exchange.models import AccessRequest, CatalogEntry, Grant, Resident
from yiwang.org import demo as org_demo
from yiwang.org.models import ConsumerSystem

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _demo_settings(settings, monkeypatch):
    settings.YIWANG_EGOV_UNIT = "BL-EGOV"  # the demo district's e-gov office
    monkeypatch.setenv("YIWANG_DEMO_RESIDENTS", "300")


def test_demo_loads_twice_and_shows_every_state():
    org_demo.load()
    first = demo.load()
    assert first["目录"] == 9 and first["申请"] == 7
    assert first["人口记录"] == 300 and Resident.objects.count() == 300
    key = first["入学报名系统 API 密钥（只显示这一次）"]
    assert key.startswith("yw_") and key in first["试一试"]

    S = CatalogEntry.Status
    statuses = set(CatalogEntry.objects.values_list("status", flat=True))
    assert statuses == {S.PUBLISHED, S.REVIEW, S.DRAFT, S.REVOKED, S.SUPERSEDED}
    resident = CatalogEntry.objects.get(code="101001001/000001", status=S.PUBLISHED)
    assert resident.version == 2 and resident.items.filter(code="ethnicity").exists()
    assert {e.registry for e in CatalogEntry.objects.filter(status=S.PUBLISHED)} >= {
        "resident",
        "legal_entity",
        "place",
        "economy",
    }

    R = AccessRequest.Status
    assert Counter(AccessRequest.objects.values_list("status", flat=True)) == {
        R.GRANTED: 4,
        R.REFUSED: 1,
        R.PENDING: 1,
        R.ESCALATED: 1,
    }
    narrowed = AccessRequest.objects.get(system__name="入学报名系统")
    assert "phone" not in narrowed.items and narrowed.unmasked == [] and narrowed.case_id
    assert AccessRequest.objects.get(status=R.REFUSED).reason
    assert Grant.objects.filter(revoked_at__isnull=True).count() == 4
    assert ConsumerSystem.objects.filter(keys__isnull=False).distinct().count() == 3

    counts = (CatalogEntry.objects.count(), AccessRequest.objects.count(), Grant.objects.count())
    second = demo.load()
    assert second == {"目录": 0, "申请": 0}
    assert (CatalogEntry.objects.count(), AccessRequest.objects.count(), Grant.objects.count()) == counts


def test_demo_without_the_district_does_nothing():
    assert demo.load() == {"目录": 0, "申请": 0}


def test_demo_requests_agree_with_their_cases_and_the_curl_uses_port(monkeypatch):
    monkeypatch.setenv("PORT", "8765")
    org_demo.load()
    result = demo.load()
    assert '"http://127.0.0.1:8765/api/exchange/gateway/' in result["试一试"]
    backdated = AccessRequest.objects.filter(case__isnull=False, status__in=AccessRequest.OPEN)
    assert backdated.count() >= 2
    for request in backdated.select_related("case"):
        case = request.case
        assert case.due_date == request.due_date  # the inbox and the case show the request's deadline
        assert case.started_at == request.created_at  # the applicant date is the timeline's start
        assert set(case.tasks.filter(status="open").values_list("due_date", flat=True)) == {request.due_date}
