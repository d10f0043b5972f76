"""调用记录: who sees which calls, filters, the CSV export, the chain check and the API."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from yiwang.core.audit import audit_chain, audit_record
from yiwang.core.models import AuditEntry
from yiwang.exchange import evidence

from .conftest import call_record, resident_id

pytestmark = pytest.mark.django_db

API = "/api/exchange/calls/"
TZ = dt.timezone(dt.timedelta(hours=8))
ID_A = resident_id(seq="101")
ID_B = resident_id(seq="202")


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def calls(resident_entry, legal_entry, edu_system, fin_system):
    """edu reads 人口 (ID_A) on Nov 3 and is refused 法人 on Nov 4; fin reads 人口 (ID_B) on Nov 5
    and pulls 人口's changes on Nov 6."""
    made = {}
    with time_machine.travel(dt.datetime(2025, 11, 3, 9, 30, tzinfo=TZ), tick=False):
        made["edu_read"] = call_record(
            edu_system, resident_entry, record=ID_A, items=["id_number", "name", "address"], masked=["address"]
        )
    with time_machine.travel(dt.datetime(2025, 11, 4, 10, 0, tzinfo=TZ), tick=False):
        made["edu_denied"] = call_record(
            edu_system, legal_entry, served=False, purpose="企业资质核验", record="91330206MA2AXXXX0X"
        )
    with time_machine.travel(dt.datetime(2025, 11, 5, 11, 0, tzinfo=TZ), tick=False):
        made["fin_read"] = call_record(
            fin_system, resident_entry, purpose='=HYPERLINK("http://x")补贴发放核对', record=ID_B
        )
    with time_machine.travel(dt.datetime(2025, 11, 6, 12, 0, tzinfo=TZ), tick=False):
        made["fin_changes"] = call_record(
            fin_system, resident_entry, action="exchange.changes", purpose="补贴对象变更同步", items=[], count=3
        )
    # not a call: other audit entries never show up here
    audit_record(actor=None, action="exchange.entry.publish", obj=resident_entry)
    return made


def ids(entries) -> set[int]:
    return {e.pk for e in entries}


# --- scope ----------------------------------------------------------------------------------


def test_egov_and_admin_see_all(calls, egov, admin):
    every = {c.pk for c in calls.values()}
    assert ids(evidence.calls_visible(egov)) == every
    assert ids(evidence.calls_visible(admin)) == every


def test_provider_sees_calls_to_its_resources(calls, psb_staff, mkt_staff):
    assert ids(evidence.calls_visible(psb_staff)) == {
        calls["edu_read"].pk,
        calls["fin_read"].pk,
        calls["fin_changes"].pk,
    }
    assert ids(evidence.calls_visible(mkt_staff)) == {calls["edu_denied"].pk}


def test_consumer_sees_its_own_calls(calls, alice, bob, carol):
    assert ids(evidence.calls_visible(alice)) == {calls["edu_read"].pk, calls["edu_denied"].pk}
    assert ids(evidence.calls_visible(bob)) == {calls["fin_read"].pk, calls["fin_changes"].pk}
    assert ids(evidence.calls_visible(carol)) == {calls["edu_read"].pk, calls["edu_denied"].pk}


def test_system_sees_its_own_calls(calls, edu_system):
    assert ids(evidence.calls_visible(None, system=edu_system)) == {calls["edu_read"].pk, calls["edu_denied"].pk}


def test_nobody(calls, db):
    from django.contrib.auth.models import AnonymousUser

    assert not evidence.calls_visible(AnonymousUser()).exists()


# --- filters --------------------------------------------------------------------------------


def test_filters(calls, egov, resident_entry, legal_entry, fin_system):
    every = evidence.calls_visible(egov)

    def found(**filters):
        return ids(evidence.calls_filter(every, **filters))

    assert found(resource=legal_entry.code) == {calls["edu_denied"].pk}
    assert found(system_id=fin_system.pk) == {calls["fin_read"].pk, calls["fin_changes"].pk}
    assert found(system_id=999999) == set()
    assert found(outcome="served") == {calls["edu_read"].pk, calls["fin_read"].pk}
    assert found(outcome="denied") == {calls["edu_denied"].pk}
    assert found(outcome="changes") == {calls["fin_changes"].pk}
    assert found(date_from=dt.date(2025, 11, 4), date_to=dt.date(2025, 11, 5)) == {
        calls["edu_denied"].pk,
        calls["fin_read"].pk,
    }
    assert found(q="入学") == {calls["edu_read"].pk}
    assert found(q="补贴") == {calls["fin_read"].pk, calls["fin_changes"].pk}
    # "who looked up this ID number"
    assert found(record=ID_A) == {calls["edu_read"].pk}
    assert found(record=f" {ID_B.lower()} ") == {calls["fin_read"].pk}
    assert found(record=ID_A, resource=legal_entry.code) == set()


def test_rows(calls, egov, units):
    rows = {row.id: row for row in evidence.call_rows(evidence.calls_ordered(evidence.calls_visible(egov)))}
    read = rows[calls["edu_read"].pk]
    assert read.outcome == "served" and read.outcome_label == "成功"
    assert read.system_name == "入学报名系统" and read.unit_name == "区教育局"
    assert read.purpose == "义务教育入学资格核验" and read.record == ID_A
    assert read.items == ["id_number", "name", "address"]
    assert read.item_names == ["公民身份号码", "姓名", "户籍地址"]
    assert read.masked == ["address"]
    assert (read.count, read.status, read.ms, read.bytes) == (1, 200, 12.5, 321)
    assert not read.linked
    denied = rows[calls["edu_denied"].pk]
    assert denied.outcome_label == "拒绝或失败" and denied.status == 403 and denied.error == "not_granted"
    assert denied.item_names == [] and denied.count == 0
    assert rows[calls["fin_changes"].pk].outcome_label == "订阅拉取"
    audit_chain()
    rows = evidence.call_rows(evidence.calls_visible(egov))
    assert all(row.linked and row.seq for row in rows)


# --- page -----------------------------------------------------------------------------------


def test_page_provider(calls, psb_staff):
    response = login(psb_staff).get(reverse("exchange:evidence"))
    assert response.status_code == 200
    html = response.content.decode()
    assert ID_A in html and ID_B in html
    assert "91330206MA2AXXXX0X" not in html  # edu's call to 法人 is not 公安's business
    assert "校验审计链" not in html  # the chain check is for the e-gov office
    assert [row.id for row in response.context["rows"]] == [
        calls["fin_changes"].pk,
        calls["fin_read"].pk,
        calls["edu_read"].pk,
    ]  # newest first


def test_page_filter_by_record(calls, psb_staff):
    response = login(psb_staff).get(reverse("exchange:evidence"), {"record": ID_A})
    assert response.status_code == 200
    assert [row.id for row in response.context["rows"]] == [calls["edu_read"].pk]
    assert "入学报名系统" in response.content.decode()


def test_page_egov(calls, egov):
    response = login(egov).get(reverse("exchange:evidence"), {"outcome": "denied"})
    assert response.status_code == 200
    assert [row.id for row in response.context["rows"]] == [calls["edu_denied"].pk]
    html = response.content.decode()
    assert "校验审计链" in html and "待入链" in html


@pytest.mark.parametrize(
    "query",
    [
        {"system": "abc"},
        {"system": "-1"},
        {"resource": "DROP TABLE"},
        {"outcome": "everything"},
        {"date_from": "2025-13-01"},
        {"date_from": "2025-11-05", "date_to": "2025-11-01"},
        {"record": "x" * 65},
        {"date_to": "9999-12-31"},
        {"date_from": "0001-01-01"},
    ],
)
def test_page_bad_filters(calls, egov, query):
    response = login(egov).get(reverse("exchange:evidence"), query)
    assert response.status_code == 400
    assert response.context["rows"] == []


def test_page_empty(egov):
    response = login(egov).get(reverse("exchange:evidence"))
    assert response.status_code == 200
    assert "还没有接口调用记录" in response.content.decode()


def test_page_pagination(resident_entry, edu_system, egov):
    for n in range(25):
        call_record(edu_system, resident_entry, record=resident_id(seq=f"{n:03d}"))
    client = login(egov)
    first = client.get(reverse("exchange:evidence"))
    assert len(first.context["rows"]) == 20
    second = client.get(reverse("exchange:evidence"), {"page": 2})
    assert len(second.context["rows"]) == 5
    assert client.get(reverse("exchange:evidence"), {"page": "abc"}).status_code == 200


def test_page_requires_staff(client, calls, units, roles):
    from conftest import make_person

    assert client.get(reverse("exchange:evidence")).status_code == 302
    citizen = make_person("citizen2", "市民", units["district"], roles["citizen"])
    assert login(citizen).get(reverse("exchange:evidence")).status_code == 403


# --- CSV ------------------------------------------------------------------------------------


def _csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def test_export(calls, psb_staff):
    response = login(psb_staff).get(reverse("exchange:evidence_export"), {"outcome": "served"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = _csv(response)
    assert rows[0][:4] == ["时间", "结果", "状态码", "错误码"]
    assert len(rows) == 3
    newest, oldest = rows[1], rows[2]
    assert newest[0] == "2025-11-05 11:00:00"
    assert newest[9].startswith("'=HYPERLINK")  # a purpose cannot become a spreadsheet formula
    assert oldest[6:8] == ["入学报名系统", "区教育局"]
    assert oldest[10] == ID_A
    assert oldest[11] == "公民身份号码、姓名、户籍地址"


def test_export_scope(calls, alice):
    rows = _csv(login(alice).get(reverse("exchange:evidence_export")))
    assert {row[6] for row in rows[1:]} == {"入学报名系统"}


def test_export_bad_filter(calls, egov):
    assert login(egov).get(reverse("exchange:evidence_export"), {"system": "x"}).status_code == 400


# --- chain check ----------------------------------------------------------------------------


def test_chain_check(calls, egov):
    audit_chain()
    client = login(egov)
    response = client.post(reverse("exchange:chain_verify"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "审计链完整" in response.content.decode()
    # a tampered purpose breaks the chain
    AuditEntry.objects.filter(pk=calls["edu_read"].pk).update(changes={**calls["edu_read"].changes, "purpose": "改"})
    response = client.post(reverse("exchange:chain_verify"), HTTP_HX_REQUEST="true")
    assert "审计链校验未通过" in response.content.decode()
    # without htmx: the whole page with the result
    response = client.post(reverse("exchange:chain_verify"))
    assert response.status_code == 200
    assert "审计链校验未通过" in response.content.decode() and "调用记录" in response.content.decode()


def test_chain_check_only_egov(calls, psb_staff, alice):
    for user in (psb_staff, alice):
        assert login(user).post(reverse("exchange:chain_verify")).status_code == 403


def test_chain_check_post_only(egov):
    assert login(egov).get(reverse("exchange:chain_verify")).status_code == 405


# --- API ------------------------------------------------------------------------------------


def test_api(calls, psb_staff):
    response = login(psb_staff).get(API)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 3
    first = body["results"][0]
    assert first["id"] == calls["fin_changes"].pk and first["outcome"] == "changes"
    read = body["results"][2]
    assert read["record"] == ID_A and read["system_name"] == "入学报名系统" and read["unit_name"] == "区教育局"
    assert read["item_names"] == ["公民身份号码", "姓名", "户籍地址"]
    assert read["status"] == 200 and read["linked"] is False and read["seq"] is None


def test_api_filters_and_pages(calls, egov, fin_system):
    client = login(egov)
    assert client.get(API, {"record": ID_B}).json()["count"] == 1
    assert client.get(API, {"system": fin_system.pk, "outcome": "served"}).json()["count"] == 1
    assert client.get(API, {"date_from": "2025-11-06"}).json()["count"] == 1
    page = client.get(API, {"page_size": 2}).json()
    assert page["count"] == 4 and len(page["results"]) == 2 and page["next"]


def test_api_key_sees_own_system(calls, edu_key, fin_key):
    _key, raw = edu_key
    body = Client().get(API, HTTP_AUTHORIZATION=f"Api-Key {raw}").json()
    assert {row["system_name"] for row in body["results"]} == {"入学报名系统"} and body["count"] == 2
    _key, raw = fin_key
    body = Client().get(API, HTTP_AUTHORIZATION=f"Api-Key {raw}").json()
    assert body["count"] == 2


@pytest.mark.parametrize(
    "query",
    [
        {"resource": "abc"},
        {"system": "x"},
        {"system": "0"},
        {"outcome": "all"},
        {"date_from": "yesterday"},
        {"date_from": "2025-11-05", "date_to": "2025-11-01"},
        {"q": "x" * 101},
        {"date_to": "9999-12-31"},
        {"date_from": "0001-01-01"},
    ],
)
def test_api_bad_input(calls, egov, query):
    response = login(egov).get(API, query)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"


def test_api_anonymous(db):
    assert Client().get(API).status_code == 401
