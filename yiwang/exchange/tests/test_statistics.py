"""调用统计: figures from CallDay, AccessRequest and Dispute rows, and who sees which."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from conftest import make_person
from yiwang.exchange import statistics
from yiwang.exchange.models import AccessRequest, CallDay, Dispute

pytestmark = pytest.mark.django_db

API = "/api/exchange/statistics/"
TODAY = dt.date(2025, 11, 20)  # a Thursday; November 2025 has no public holidays
TZ = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(dt.datetime(2025, 11, 20, 10, 0, tzinfo=TZ), tick=False):
        yield


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def day(n: int) -> dt.date:
    return TODAY - dt.timedelta(days=n)


def callday(system, entry, when: dt.date, *, calls=0, denied=0, errors=0, records=0, size=0, total_ms=0.0, max_ms=0.0):
    return CallDay.objects.create(
        day=when,
        system_id=system.pk,
        unit_id=system.unit_id,
        provider_id=entry.provider_id,
        resource_code=entry.code,
        calls=calls,
        denied=denied,
        errors=errors,
        records=records,
        bytes=size,
        total_ms=total_ms,
        max_ms=max_ms,
    )


@pytest.fixture
def usage(resident_entry, legal_entry, edu_system, fin_system):
    """edu → 人口 (today 10 calls, 2 denied; 3 days ago 5), edu → 法人 (today 4),
    fin → 人口 (yesterday 7, 1 error), fin → 人口 40 days ago (outside 30 days)."""
    callday(edu_system, resident_entry, day(0), calls=10, denied=2, records=8, size=8000, total_ms=100, max_ms=30)
    callday(edu_system, resident_entry, day(3), calls=5, records=5, size=5000, total_ms=50, max_ms=20)
    callday(edu_system, legal_entry, day(0), calls=4, records=4, size=400, total_ms=20, max_ms=8)
    callday(
        fin_system, resident_entry, day(1), calls=7, denied=1, errors=1, records=6, size=600, total_ms=70, max_ms=45
    )
    callday(fin_system, resident_entry, day(40), calls=100, records=100, size=1, total_ms=1, max_ms=1)


# --- scope ----------------------------------------------------------------------------------


def test_scope(egov, admin, alice, carol, psb_staff, units, psb):
    assert statistics.stats_scope(egov).everything
    assert statistics.stats_scope(admin).everything
    assert statistics.stats_scope(alice) == statistics.StatsScope(False, frozenset({units["edu"].pk}))
    assert statistics.stats_scope(carol).unit_ids == {units["edu"].pk, units["edu_office"].pk}
    assert statistics.stats_scope(psb_staff).unit_ids == {psb.pk}


def test_period():
    assert statistics.period_clean() == (day(29), TODAY)
    assert statistics.period_clean(days=1) == (TODAY, TODAY)
    assert statistics.period_clean(date_from=dt.date(2025, 1, 1), date_to=dt.date(2025, 1, 31)) == (
        dt.date(2025, 1, 1),
        dt.date(2025, 1, 31),
    )
    for bad in ({"days": 0}, {"days": 367}, {"date_from": TODAY, "date_to": day(1)}, {"date_from": day(366)}):
        with pytest.raises(ValueError):
            statistics.period_clean(**bad)


# --- call figures ---------------------------------------------------------------------------


def test_district_figures(usage, egov, resident_entry, legal_entry, edu_system, fin_system):
    figures = statistics.statistics(user=egov)
    totals = figures["totals"]
    assert totals["calls"] == 26
    assert totals["denied"] == 3
    assert totals["served"] == 23
    assert totals["errors"] == 1
    assert totals["records"] == 23
    assert totals["bytes"] == 14000
    assert totals["avg_ms"] == round(240 / 26, 1)
    assert totals["max_ms"] == 45
    assert totals["systems"] == 2 and totals["resources"] == 2
    assert figures["period"] == {"from": day(29), "to": TODAY, "days": 30}
    daily = figures["daily"]
    assert len(daily) == 30 and daily[0]["day"] == day(29) and daily[-1]["day"] == TODAY
    assert daily[-1] == {"day": TODAY, "calls": 14, "served": 12, "denied": 2, "errors": 0}
    assert daily[-2] == {"day": day(1), "calls": 7, "served": 6, "denied": 1, "errors": 1}
    assert daily[-4]["calls"] == 5
    assert sum(row["calls"] for row in daily) == 26
    assert figures["resources"] == [
        {
            "code": resident_entry.code,
            "name": "人口基础信息",
            "provider": "区公安分局",
            "calls": 22,
            "denied": 3,
            "records": 19,
        },
        {
            "code": legal_entry.code,
            "name": "法人基础信息",
            "provider": "区市场监管局",
            "calls": 4,
            "denied": 0,
            "records": 4,
        },
    ]
    assert figures["systems"] == [
        {"id": edu_system.pk, "name": "入学报名系统", "unit": "区教育局", "calls": 19, "denied": 2, "records": 17},
        {"id": fin_system.pk, "name": "财政补贴系统", "unit": "区财政局", "calls": 7, "denied": 1, "records": 6},
    ]
    # the longer period takes in the call 40 days ago
    assert statistics.statistics(user=egov, days=60)["totals"]["calls"] == 126


def test_provider_sees_its_resources_only(usage, psb_staff, mkt_staff, resident_entry):
    figures = statistics.statistics(user=psb_staff)
    assert figures["totals"]["calls"] == 22  # 人口 by both consumers, not edu's 法人 calls
    assert [r["code"] for r in figures["resources"]] == [resident_entry.code]
    assert {s["name"] for s in figures["systems"]} == {"入学报名系统", "财政补贴系统"}
    assert statistics.statistics(user=mkt_staff)["totals"]["calls"] == 4


def test_consumer_sees_its_systems_only(usage, alice, bob, carol):
    figures = statistics.statistics(user=alice)
    assert figures["totals"]["calls"] == 19  # edu_system's calls to 人口 and 法人
    assert [s["name"] for s in figures["systems"]] == ["入学报名系统"]
    assert not figures["scope"]["district"]
    assert statistics.statistics(user=bob)["totals"]["calls"] == 7
    assert statistics.statistics(user=carol)["totals"]["calls"] == 19  # leader: 教育局 and below


def test_unit_and_side_filters(usage, egov, psb, units):
    assert statistics.statistics(user=egov, unit_id=psb.pk)["totals"]["calls"] == 22
    assert statistics.statistics(user=egov, unit_id=units["edu"].pk, side="consumer")["totals"]["calls"] == 19
    assert statistics.statistics(user=egov, unit_id=units["edu"].pk, side="provider")["totals"]["calls"] == 0
    assert statistics.statistics(user=egov, unit_id=psb.pk, side="consumer")["providers"] == []


def test_unit_filter_cannot_widen_the_scope(usage, alice, psb):
    assert statistics.statistics(user=alice, unit_id=psb.pk)["totals"]["calls"] == 0


def test_no_calls(egov):
    figures = statistics.statistics(user=egov, days=7)
    assert figures["totals"]["calls"] == 0 and figures["totals"]["avg_ms"] is None
    assert len(figures["daily"]) == 7 and figures["resources"] == [] and figures["systems"] == []


# --- provider figures -----------------------------------------------------------------------


def _request(system, entry, *, created: dt.date, due: dt.date | None, decided: dt.datetime | None, status: str):
    request = AccessRequest.objects.create(
        system=system,
        unit=system.unit,
        entry=entry,
        items=["name"],
        purpose="测试用途说明",
        status=status,
        due_date=due,
        decided_at=decided,
    )
    AccessRequest.objects.filter(pk=request.pk).update(created_at=dt.datetime.combine(created, dt.time(9), tzinfo=TZ))
    return request


@pytest.fixture
def answers(resident_entry, legal_entry, edu_system, fin_system, psb, units):
    g, p = AccessRequest.Status.GRANTED, AccessRequest.Status.PENDING
    # answered on time in 2 working days (Mon 10 → Wed 12)
    _request(edu_system, resident_entry, created=dt.date(2025, 11, 10), due=dt.date(2025, 11, 24),
             decided=dt.datetime(2025, 11, 12, 15, tzinfo=TZ), status=g)  # fmt: skip
    # answered late: due Mon 17, answered Thu 20 → 13 working days after Mon 3
    _request(fin_system, resident_entry, created=dt.date(2025, 11, 3), due=dt.date(2025, 11, 17),
             decided=dt.datetime(2025, 11, 20, 9, tzinfo=TZ), status=AccessRequest.Status.REFUSED)  # fmt: skip
    # open: one overdue, one not
    _request(
        edu_system, resident_entry, created=dt.date(2025, 11, 5), due=dt.date(2025, 11, 19), decided=None, status=p
    )
    _request(fin_system, resident_entry, created=dt.date(2025, 11, 18), due=dt.date(2025, 12, 2), decided=None,
             status=AccessRequest.Status.ESCALATED)  # fmt: skip
    # unconditional: granted by the platform at once (no due date) — not an answer
    _request(edu_system, legal_entry, created=dt.date(2025, 11, 14), due=None,
             decided=dt.datetime(2025, 11, 14, 9, tzinfo=TZ), status=g)  # fmt: skip
    # before the period: not received in it
    _request(edu_system, resident_entry, created=dt.date(2025, 9, 1), due=dt.date(2025, 9, 15),
             decided=dt.datetime(2025, 9, 2, 9, tzinfo=TZ), status=g)  # fmt: skip
    for due in (dt.date(2025, 11, 18), dt.date(2025, 11, 25)):
        Dispute.objects.create(entry=resident_entry, provider=psb, unit=units["edu"], record_key="x", item="name",
                               description="姓名有误", due_date=due)  # fmt: skip
    Dispute.objects.create(entry=resident_entry, provider=psb, unit=units["edu"], record_key="y", item="name",
                           description="已更正", due_date=dt.date(2025, 11, 1), status=Dispute.Status.CORRECTED)  # fmt: skip


def test_provider_figures(answers, egov, psb, mkt):
    rows = {row["unit"]: row for row in statistics.statistics(user=egov)["providers"]}
    assert rows["区公安分局"] == {
        "unit_id": psb.pk,
        "unit": "区公安分局",
        "resources": 1,
        "received": 4,
        "auto": 0,
        "answered": 2,
        "on_time": 1,
        "on_time_rate": 50.0,
        "avg_days": 7.5,
        "open": 2,
        "overdue": 1,
        "disputes_open": 2,
        "disputes_overdue": 1,
    }
    legal = rows["区市场监管局"]
    assert (legal["received"], legal["auto"], legal["answered"], legal["on_time_rate"], legal["avg_days"]) == (
        1,
        1,
        0,
        None,
        None,
    )
    # the older request counts in a long enough period
    long = {row["unit"]: row for row in statistics.statistics(user=egov, days=120)["providers"]}
    assert long["区公安分局"]["received"] == 5 and long["区公安分局"]["on_time"] == 2


def test_provider_figures_are_scoped(answers, psb_staff, alice, mkt_staff):
    assert [row["unit"] for row in statistics.statistics(user=psb_staff)["providers"]] == ["区公安分局"]
    assert [row["unit"] for row in statistics.statistics(user=mkt_staff)["providers"]] == ["区市场监管局"]
    assert statistics.statistics(user=alice)["providers"] == []  # 教育局 provides nothing


# --- page -----------------------------------------------------------------------------------


def test_page_district(usage, answers, egov):
    response = login(egov).get(reverse("exchange:statistics"))
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("调用统计", "exc-chart-daily", "exc-chart-resources", "exc-chart-systems", "查看数据表", "全区",
                 "人口基础信息", "入学报名系统", "区公安分局", "50.0%", "statistics.js"):  # fmt: skip
        assert text in html, text
    assert 'name="unit"' in html  # the district view can pick a unit
    assert "?date_from=2025-11-14&amp;date_to=2025-11-20" in html  # the 近 7 天 preset
    assert response.context["figures"]["totals"]["calls"] == 26


def test_page_filters(usage, egov, psb):
    client = login(egov)
    response = client.get(reverse("exchange:statistics"), {"unit": psb.pk, "side": "provider"})
    assert response.status_code == 200
    assert response.context["figures"]["totals"]["calls"] == 22
    response = client.get(reverse("exchange:statistics"), {"date_from": "2025-11-19", "date_to": "2025-11-20"})
    assert response.context["figures"]["totals"]["calls"] == 21
    assert response.context["figures"]["period"]["days"] == 2


@pytest.mark.parametrize(
    "query",
    [
        {"date_from": "2025-11-20", "date_to": "2025-11-01"},
        {"date_from": "2023-01-01", "date_to": "2025-11-20"},
        {"date_from": "not-a-date"},
        {"unit": "abc"},
        {"unit": "999999"},
        {"side": "everyone"},
        {"date_from": "9999-12-30", "date_to": "9999-12-31"},
        {"date_to": "0001-01-01"},
    ],
)
def test_page_bad_filters(usage, egov, query):
    response = login(egov).get(reverse("exchange:statistics"), query)
    assert response.status_code == 400
    assert response.context["figures"]["period"]["days"] == 30  # the default figures are shown


def test_page_consumer(usage, alice):
    response = login(alice).get(reverse("exchange:statistics"))
    assert response.status_code == 200
    assert response.context["figures"]["totals"]["calls"] == 19
    assert 'name="unit"' not in response.content.decode()  # one unit: no unit filter


def test_page_unit_outside_scope(usage, carol, psb):
    response = login(carol).get(reverse("exchange:statistics"), {"unit": psb.pk})
    assert response.status_code == 400


def test_page_requires_login(client, db):
    assert client.get(reverse("exchange:statistics")).status_code == 302


def test_page_refuses_public_accounts(units, roles):
    citizen = make_person("citizen1", "市民", units["district"], roles["citizen"])
    assert login(citizen).get(reverse("exchange:statistics")).status_code == 403


# --- API ------------------------------------------------------------------------------------


def test_api(usage, answers, egov, resident_entry):
    response = login(egov).get(API, {"days": 30})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["period"] == {"date_from": "2025-10-22", "date_to": "2025-11-20", "days": 30}
    assert body["scope"] == {"district": True, "unit": None, "side": ""}
    assert body["totals"]["calls"] == 26 and body["totals"]["served"] == 23
    assert body["daily"][-1] == {"day": "2025-11-20", "calls": 14, "served": 12, "denied": 2, "errors": 0}
    assert body["resources"][0]["code"] == resident_entry.code
    assert body["providers"][0]["unit"] == "区公安分局"


def test_api_scope(usage, alice, psb):
    client = login(alice)
    assert client.get(API).json()["totals"]["calls"] == 19
    response = client.get(API, {"unit": psb.pk})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_api_key(usage, edu_key):
    _key, raw = edu_key
    response = Client().get(API, HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert response.status_code == 200, response.content
    assert response.json()["totals"]["calls"] == 19


@pytest.mark.parametrize(
    "query",
    [
        {"days": "0"},
        {"days": "367"},
        {"days": "abc"},
        {"days": "7", "date_from": "2025-11-01"},
        {"date_from": "2025-11-20", "date_to": "2025-11-01"},
        {"date_from": "2020-01-01", "date_to": "2025-11-20"},
        {"unit": "x"},
        {"side": "all"},
        {"date_from": "0001-01-01", "date_to": "0001-01-02"},
        {"date_from": "9999-12-30", "date_to": "9999-12-31"},
    ],
)
def test_api_bad_input(egov, query):
    response = login(egov).get(API, query)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"


def test_api_anonymous(db):
    response = Client().get(API)
    assert response.status_code == 401
