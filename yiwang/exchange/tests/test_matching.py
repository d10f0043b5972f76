"""免于重复采集: form field labels against the shareable items of the published catalogue."""

from __future__ import annotations

import io
import json

import openpyxl
import pytest
from django.test import Client
from django.urls import reverse

from conftest import make_person
from yiwang.exchange import matching
from yiwang.exchange.models import CatalogEntry, Grant
from yiwang.org import services as org

from .conftest import publish_entry

pytestmark = pytest.mark.django_db

API = "/api/exchange/match/"

HOUSE_DATA = {
    "class_code": "305002001",
    "name": "不动产登记信息",
    "abstract": "不动产权利人、坐落、权证号等登记信息。",
    "keywords": "不动产,房屋",
    "format": "database",
    "sharing_type": "conditional",
    "sharing_condition": "用于政务服务事项办理中的房产核验。",
    "legal_basis": "《不动产登记暂行条例》",
    "share_method": "file",
    "open_type": "closed",
    "update_cycle": "daily",
    "related_codes": [],
    "registry": "",
}
HOUSE_ITEMS = [
    {"code": "location", "name": "房屋坐落", "sharing_type": "conditional", "synonyms": "房产坐落"},
    {"code": "certificate", "name": "不动产权证号", "sharing_type": "conditional"},
    {"code": "owner_id", "name": "权利人证件号", "sharing_type": "none"},
]

SCHOOL_DATA = {
    **HOUSE_DATA,
    "class_code": "306001001",
    "name": "学籍信息",
    "abstract": "学生学籍、学历信息（不予共享）。",
    "keywords": "学籍",
    "sharing_type": "none",
    "sharing_condition": "",
    "legal_basis": "《中小学生学籍管理办法》",
}
SCHOOL_ITEMS = [{"code": "education", "name": "学历", "sharing_type": "none"}]


@pytest.fixture
def nrb(units):
    return org.unit_create(actor=None, name="区自然资源局", code="NRB", kind="bureau", parent=units["district"])


@pytest.fixture
def catalogue(resident_entry, legal_entry, nrb, units, roles, egov):
    """Published: 人口 (公安, conditional), 法人 (市场监管, unconditional), 不动产 (自然资源,
    conditional), and a closed 学籍 entry (教育) whose 学历 must never be offered."""
    from yiwang.exchange import services as exchange

    made = {"resident": resident_entry, "legal": legal_entry}
    for key, unit, data, items, username in (
        ("house", nrb, HOUSE_DATA, HOUSE_ITEMS, "nrb_staff"),
        ("school", units["edu"], SCHOOL_DATA, SCHOOL_ITEMS, "edu_cat"),
    ):
        author = make_person(username, f"编目{key}", unit, roles["staff"])
        entry = exchange.entry_save(actor=author, data=dict(data), items=items, provider=unit)
        made[key] = publish_entry(entry, egov)
        assert made[key].status == CatalogEntry.Status.PUBLISHED
    matching.index_clear()
    return made


# label → (result without grants, resource key, item code, match kind)
EXPECTED = [
    ("申请人姓名", "request", "resident", "name", "exact"),
    ("身份证号码", "request", "resident", "id_number", "synonym"),
    ("居民身份证号：", "request", "resident", "id_number", "synonym"),
    ("户籍所在地", "request", "resident", "address", "synonym"),
    ("家庭住址", "request", "resident", "address", "synonym"),
    ("联系电话", "request", "legal", "phone", "exact"),  # in both: the unconditional one first
    ("企业名称", "request", "legal", "name", "synonym"),
    ("统一社会信用代码", "request", "legal", "credit_code", "exact"),
    ("营业执照号", "request", "legal", "credit_code", "synonym"),
    ("法定代表人", "request", "legal", "representative", "exact"),
    ("法定代表人姓名", "request", "legal", "representative", "synonym"),
    ("注册地址", "request", "legal", "address", "synonym"),
    ("注册资本", "request", "legal", "registered_capital", "exact"),
    ("房屋坐落", "request", "house", "location", "exact"),
    ("房屋坐落地址", "request", "house", "location", "token"),
    ("出生年月", "request", "resident", "birth_date", "synonym"),
    ("性别", "request", "resident", "gender", "exact"),
    ("＊性　别（必填）", "request", "resident", "gender", "exact"),
    ("学历", "collect", None, None, ""),
    ("毕业学校", "collect", None, None, ""),
    ("婚姻状况", "collect", None, None, ""),
    ("权利人证件号", "request", "resident", "id_number", "token"),  # not 不动产's closed owner_id
    ("联系人姓名", "collect", None, None, ""),  # another person's name: not close enough
]


@pytest.mark.parametrize(("label", "result", "resource", "item", "kind"), EXPECTED)
def test_labels(catalogue, label, result, resource, item, kind):
    [match] = matching.fields_match(labels=[label])
    assert match.label == label
    assert match.result == result, (label, match.source, match.kind, match.score)
    if resource is None:
        assert match.source is None and match.kind == "" and match.result_label == "需采集"
        return
    assert match.source.resource_code == catalogue[resource].code
    assert match.source.item_code == item
    assert match.kind == kind
    assert match.result_label == "需申请"
    assert match.kind_label == matching.MatchKind.LABELS[kind]
    if kind == "token":
        assert matching.TOKEN_THRESHOLD <= match.score < 1
    else:
        assert match.score == 1


def test_closed_items_are_never_offered(catalogue):
    index = matching.index_get()
    assert {s.item_code for s in index.sources if s.resource_code == catalogue["house"].code} == {
        "location",
        "certificate",
    }
    assert not any(s.resource_code == catalogue["school"].code for s in index.sources)


def test_normalise():
    assert matching.label_normalise(" ＊ 身份证号码（必填）： ") == "身份证号"
    assert matching.label_normalise("申请人姓名") == "姓名"
    assert matching.label_normalise("法定代表人") == "法定代表人"  # never read as a prefix
    assert matching.label_normalise("申请人") == "申请人"  # nothing left after the prefix: kept
    assert matching.label_normalise("ＡＢＣ：") == "abc"
    assert matching.labels_parse("姓名\n性别，联系电话、姓名;;\n  \n学历") == ["姓名", "性别", "联系电话", "学历"]


def test_sharing_type_is_the_stricter(catalogue):
    by_label = {m.label: m for m in matching.fields_match(labels=["性别", "户籍地址", "成立日期", "不动产权证号"])}
    # resident entry is conditional, its 性别 item unconditional: conditional wins
    assert by_label["性别"].source.sharing_type == "conditional"
    assert by_label["户籍地址"].sharing_label == "有条件共享"
    assert by_label["成立日期"].source.sharing_type == "unconditional"
    assert by_label["成立日期"].sharing_label == "无条件共享"
    assert by_label["不动产权证号"].source.provider_name == "区自然资源局"


def test_same_item_in_two_resources_prefers_the_form_context(catalogue):
    """联系电话 is in 人口 and 法人: a company form takes it from 法人, a person's form from 人口."""
    company = matching.fields_match(labels=["企业名称", "统一社会信用代码", "联系电话"])
    assert company[2].source.resource_code == catalogue["legal"].code
    assert company[2].alternatives == 1
    person = matching.fields_match(labels=["姓名", "身份证号", "联系电话"])
    assert person[2].source.resource_code == catalogue["resident"].code


def test_grant_awareness(catalogue, edu_grant, units):
    labels = ["姓名", "身份证号码", "户籍地址", "联系电话", "学历"]
    results = {m.label: m for m in matching.fields_match(labels=labels, unit=units["edu"])}
    assert results["姓名"].granted and results["姓名"].result == "shared"
    assert results["姓名"].result_label == "可共享获取"
    assert results["身份证号码"].result == "shared"
    assert results["户籍地址"].result == "shared"
    assert results["联系电话"].result == "request"  # phone is not in the grant
    assert results["学历"].result == "collect"
    # the unit's id works as well; another unit holds no grant
    assert matching.fields_match(labels=["姓名"], unit=units["edu"].pk)[0].granted
    assert not matching.fields_match(labels=["姓名"], unit=units["fin"])[0].granted
    # a revoked grant no longer counts
    Grant.objects.filter(pk=edu_grant.pk).update(revoked_at="2020-01-01T00:00:00Z")
    assert matching.fields_match(labels=["姓名"], unit=units["edu"])[0].result == "request"


def test_summary(catalogue, edu_grant, units):
    matches = matching.fields_match(labels=["姓名", "联系电话", "学历", "毕业学校"], unit=units["edu"])
    assert matching.summary(matches) == {
        "total": 4,
        "matched": 2,
        "granted": 1,
        "request": 1,
        "collect": 2,
        "percent": 50,
    }


def test_index_follows_the_catalogue(catalogue, psb_staff, egov):
    """Revoking an entry takes its items out of the index at once (no stale cache)."""
    from yiwang.exchange import services as exchange

    assert matching.fields_match(labels=["性别"])[0].matched
    exchange.entry_revoke(actor=egov, entry=catalogue["resident"], reason="数据来源调整")
    assert not matching.fields_match(labels=["性别"])[0].matched


def test_item_synonyms_are_used(catalogue):
    [match] = matching.fields_match(labels=["房产坐落"])  # only in the item's own synonyms
    assert match.source.item_code == "location" and match.kind == "synonym"


def test_nothing_published(db):
    matching.index_clear()
    [match] = matching.fields_match(labels=["姓名"])
    assert match.result == "collect"
    assert matching.summary([match])["percent"] == 0


# --- download -------------------------------------------------------------------------------


def test_report_xlsx(catalogue):
    body = matching.fields_report(labels=["姓名", "学历", '=HYPERLINK("http://x")'], fmt="xlsx", title="入学登记表")
    sheet = openpyxl.load_workbook(io.BytesIO(body)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "入学登记表"
    assert "3 个字段中 1 个可通过共享获取" in rows[1][0]
    assert rows[3][:3] == ("序号", "表单字段", "核验结果")
    assert rows[4][1:5] == ("姓名", "需申请", catalogue["resident"].code, "人口基础信息")
    assert rows[5][1:3] == ("学历", "需采集")
    assert sheet.cell(row=7, column=2).data_type == "s"  # a formula stays text


def test_report_csv(catalogue):
    body = matching.fields_report(labels=["姓名", "=1+1"], fmt="csv").decode("utf-8")
    assert body.startswith("\ufeff序号,表单字段,核验结果")
    assert "姓名,需申请" in body
    assert "'=1+1" in body


# --- page -----------------------------------------------------------------------------------


def test_page_get(alice_client):
    response = alice_client.get(reverse("exchange:matching"))
    assert response.status_code == 200
    assert "免于重复采集" in response.content.decode()


def test_page_requires_login(client, db):
    response = client.get(reverse("exchange:matching"))
    assert response.status_code == 302


def test_page_post_shows_results(catalogue, edu_grant, alice_client):
    response = alice_client.post(reverse("exchange:matching"), {"labels": "姓名\n联系电话，学历"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "3 个字段中 2 个可通过共享获取" in html
    assert "可共享获取" in html and "需申请" in html and "需采集" in html
    assert "人口基础信息" in html


def test_page_post_errors(alice_client, db):
    response = alice_client.post(reverse("exchange:matching"), {"labels": "  \n "})
    assert response.status_code == 400
    assert "请填写表单字段" in response.content.decode()
    response = alice_client.post(reverse("exchange:matching"), {"labels": "字" * 51})
    assert response.status_code == 400
    assert "50" in response.content.decode()
    response = alice_client.post(reverse("exchange:matching"), {"labels": "\n".join(f"字段{n}" for n in range(201))})
    assert response.status_code == 400
    assert "200" in response.content.decode()


def test_page_download(catalogue, alice_client):
    response = alice_client.post(
        reverse("exchange:matching"), {"labels": "姓名\n学历", "title": "入学登记表", "download": "xlsx"}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in response["Content-Disposition"]
    response = alice_client.post(reverse("exchange:matching"), {"labels": "姓名", "download": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert "姓名" in response.content.decode("utf-8-sig")


# --- API ------------------------------------------------------------------------------------


def _post(client, data, **extra):
    return client.post(API, json.dumps(data), content_type="application/json", **extra)


def test_api_with_session(catalogue, edu_grant, alice_client):
    response = _post(alice_client, {"fields": ["姓名", "联系电话", "学历"]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["summary"] == {"total": 3, "matched": 2, "granted": 1, "request": 1, "collect": 1, "percent": 67}
    first = body["results"][0]
    assert first["result"] == "shared" and first["granted"] is True
    assert first["resource"]["code"] == catalogue["resident"].code
    assert first["resource"]["provider"]["name"] == "区公安分局"
    assert first["item"] == {"code": "name", "name": "姓名"}
    assert first["match_type"] == "exact" and first["match_type_display"] == "名称一致"
    assert body["results"][2]["result"] == "collect" and body["results"][2]["resource"] is None


def test_api_with_key(catalogue, edu_grant, edu_key, fin_key):
    _key, raw = edu_key
    response = _post(Client(), {"fields": ["姓名"]}, HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["granted"] is True
    # a key with only exchange:read may match too (it reads nothing)
    _key, raw = fin_key
    response = _post(Client(), {"fields": ["姓名"]}, HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert response.status_code == 200
    assert response.json()["results"][0]["result"] == "request"


def test_api_key_without_scope(catalogue, fin_system):
    _key, raw = org.api_key_issue(actor=None, system=fin_system, name="组织机构", scopes=["org:read"])
    response = _post(Client(), {"fields": ["姓名"]}, HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_api_anonymous(db):
    response = _post(Client(), {"fields": ["姓名"]})
    assert response.status_code == 401
    assert set(response.json()) == {"error"}


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"fields": []},
        {"fields": "姓名"},
        {"fields": [1]},
        {"fields": [""]},
        {"fields": ["   "]},
        {"fields": ["字" * 51]},
        {"fields": [f"字段{n}" for n in range(201)]},
        {"fields": ["姓\x00名"]},
        {"fields": [None]},
        [],
    ],
)
def test_api_bad_input(alice_client, payload):
    response = _post(alice_client, payload)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] in ("invalid", "parse_error")
    assert error["message"]


def test_api_bad_json(alice_client):
    response = alice_client.post(API, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_api_get_not_allowed(alice_client):
    response = alice_client.get(API)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
