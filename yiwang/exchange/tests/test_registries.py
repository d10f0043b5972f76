"""Base registries (基础库): synthetic data, imports (all or nothing), pages, the imports API."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import openpyxl
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from yiwang.core.models import AuditEntry
from yiwang.core.validators import id_check_char, is_valid_credit_code, is_valid_mobile, is_valid_resident_id
from yiwang.exchange import imports, services, tasks
from yiwang.exchange.models import Change, EconomicIndicator, ImportRun, LegalEntity, Place, Resident
from yiwang.exchange.registries import REGISTRIES

pytestmark = pytest.mark.django_db

RESIDENT_HEADER = "公民身份号码,姓名,性别,出生日期,民族,联系电话,户籍地址,所属街道（镇）,户号"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture(autouse=True)
def eager_imports(monkeypatch):
    """No broker in unit tests: the queued task runs right away (on commit, in the test)."""
    monkeypatch.setattr(tasks.import_run, "delay", lambda run_id: tasks.import_run(run_id))


def _entry(actor, provider, registry_code: str, items: list[tuple[str, str]], name: str):
    return services.entry_save(
        actor=actor,
        provider=provider,
        data={
            "class_code": "101001001",
            "name": name,
            "abstract": f"{name}（测试）",
            "keywords": "",
            "related_codes": [],
            "format": "database",
            "sharing_type": "conditional",
            "sharing_condition": "用于政务服务",
            "legal_basis": "《政务信息资源共享管理暂行办法》",
            "share_method": "api",
            "open_type": "closed",
            "update_cycle": "daily",
            "registry": registry_code,
        },
        items=[{"code": code, "name": label, "sharing_type": "conditional"} for code, label in items],
    )


@pytest.fixture
def resident_entry(psb, psb_staff):
    """区公安分局 provides the population registry (a draft entry is enough to load it)."""
    return _entry(psb_staff, psb, "resident", [("id_number", "公民身份号码"), ("name", "姓名")], "人口基本信息")


def make_id(area: str = "330206", birth: str = "19900101", seq: int = 123) -> str:
    first17 = f"{area}{birth}{seq:03d}"
    return first17 + id_check_char(first17)


def resident_line(id_number: str, name: str = "张三", gender: str = "男", birth: str = "1990-01-01", **kw) -> str:
    phone = kw.get("phone", "13800138000")
    address = kw.get("address", "浙江省宁波市北仑区新碶街道明州路100号")
    return f"{id_number},{name},{gender},{birth},汉族,{phone},{address},新碶街道,B01"


def upload(lines: list[str], name: str = "人口.csv", encoding: str = "utf-8-sig") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, "\r\n".join(lines).encode(encoding), content_type="text/csv")


def run_import(actor, lines: list[str], django_capture_on_commit_callbacks, registry_code="resident", **kw):
    with django_capture_on_commit_callbacks(execute=True):
        run = imports.import_start(actor=actor, registry_code=registry_code, upload=upload(lines, **kw))
    run.refresh_from_db()
    return run


# --- synthetic data ---------------------------------------------------------------------------


class TestGenerators:
    def test_residents_valid_unique_consistent_and_deterministic(self):
        rows = list(imports.resident_rows(count=3000, seed=7))
        assert rows == list(imports.resident_rows(count=3000, seed=7))
        assert rows != list(imports.resident_rows(count=3000, seed=8))
        numbers = [r[0] for r in rows]
        assert len(set(numbers)) == 3000
        columns = REGISTRIES["resident"].columns
        for row in rows:
            record = dict(zip(columns, row, strict=True))
            number = record["id_number"]
            assert is_valid_resident_id(number), number
            assert record["gender"] == ("M" if int(number[16]) % 2 else "F")
            assert record["birth_date"] == dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
            assert dt.date(1930, 1, 1) <= record["birth_date"] <= dt.date(2024, 12, 31)
            assert record["street"] in imports.STREETS
            assert record["address"].startswith("浙江省宁波市北仑区" + record["street"])
            assert record["phone"] == "" or is_valid_mobile(record["phone"])
            assert 2 <= len(record["name"]) <= 4
        assert sum(n.startswith("330206") for n in numbers) > 1800  # mostly issued in 北仑区

    def test_residents_generate_stores_them_once(self):
        assert imports.residents_generate(count=500, seed=3, batch=200) == 500
        assert imports.residents_generate(count=500, seed=3, batch=200) == 0  # same seed: nothing new
        assert Resident.objects.count() == 500
        for resident in Resident.objects.all()[:50]:
            resident.full_clean()
        assert not Change.objects.exists()

    def test_residents_generate_can_log_changes(self):
        imports.residents_generate(count=50, seed=4, log_changes=True)
        assert Change.objects.filter(registry="resident", op="created").count() == 50

    def test_entities_places_indicators(self):
        assert imports.entities_generate(count=300, seed=2) == 300
        for entity in LegalEntity.objects.all():
            assert is_valid_credit_code(entity.credit_code)
            entity.full_clean()
        assert imports.places_generate(count=200, seed=2) == 200
        for place in Place.objects.all():
            assert Decimal("121.7") <= place.longitude <= Decimal("122.0")
            assert Decimal("29.75") <= place.latitude <= Decimal("29.95")
            place.full_clean()
        assert imports.indicators_generate(seed=2) > 200
        gdp = EconomicIndicator.objects.filter(code="gdp")
        assert {"2015", "2025", "2025Q4"} <= set(gdp.values_list("period", flat=True))
        assert set(EconomicIndicator.objects.filter(code="resident_population").values_list("period", flat=True)) == {
            str(y) for y in range(2015, 2026)
        }
        for value in EconomicIndicator.objects.all()[:40]:
            value.full_clean()
        assert imports.indicators_generate(seed=2) == 0


# --- imports ----------------------------------------------------------------------------------


class TestImportGood:
    def test_loads_every_row_with_change_lines_and_one_audit(
        self, psb_staff, resident_entry, django_capture_on_commit_callbacks
    ):
        a, b = make_id(seq=123), make_id(birth="19851231", seq=124)
        run = run_import(
            psb_staff,
            [RESIDENT_HEADER, resident_line(a), resident_line(b, name="李芳", gender="F", birth="1985/12/31")],
            django_capture_on_commit_callbacks,
        )
        assert run.status == ImportRun.Status.LOADED, run.errors
        assert (run.total_rows, run.created_rows, run.updated_rows, run.error_rows) == (2, 2, 0, 0)
        assert run.unit_id == psb_staff.acting_unit_id
        assert not run.file  # the upload (personal data) is not kept
        li = Resident.objects.get(id_number=b)
        assert (li.name, li.gender, li.birth_date) == ("李芳", "F", dt.date(1985, 12, 31))
        lines = list(Change.objects.filter(registry="resident").order_by("id"))
        assert [(c.record_key, c.op) for c in lines] == [(a, "created"), (b, "created")]
        assert "name" in lines[0].items and "id_number" in lines[0].items
        assert AuditEntry.objects.filter(action="exchange.import.load").count() == 1
        entry = AuditEntry.objects.get(action="exchange.import.load")
        assert entry.changes["created"] == 2

    def test_upsert_updates_only_changed_records_and_logs_the_items(
        self, psb_staff, resident_entry, django_capture_on_commit_callbacks
    ):
        a, b, c = make_id(seq=11), make_id(seq=12), make_id(seq=13)
        run_import(
            psb_staff,
            [RESIDENT_HEADER, resident_line(a), resident_line(b, gender="F"), resident_line(c)],
            django_capture_on_commit_callbacks,
        )
        stamp = Resident.objects.get(id_number=c).updated_at
        Change.objects.all().delete()
        run = run_import(
            psb_staff,
            [
                RESIDENT_HEADER,
                resident_line(a, phone="13900139000"),  # phone changed
                resident_line(b, gender="女", name="李四", address="浙江省宁波市北仑区大碶街道灵岩路1号"),
                resident_line(c),  # unchanged
                resident_line(make_id(seq=15)),  # new
            ],
            django_capture_on_commit_callbacks,
        )
        assert run.status == ImportRun.Status.LOADED, run.errors
        assert (run.created_rows, run.updated_rows) == (1, 2)
        assert "无变化 1" in run.message
        assert Resident.objects.get(id_number=a).phone == "13900139000"
        assert Resident.objects.get(id_number=b).name == "李四"
        assert Resident.objects.get(id_number=c).updated_at == stamp  # not touched
        changes = {c.record_key: (c.op, c.items) for c in Change.objects.all()}
        assert changes[a] == ("updated", ["phone"])
        assert changes[b] == ("updated", ["address", "name"])
        assert changes[make_id(seq=15)][0] == "created"
        assert c not in changes

    def test_columns_left_out_keep_their_values_and_gender_birth_follow_the_id(
        self, psb_staff, resident_entry, django_capture_on_commit_callbacks
    ):
        a = make_id(birth="20010203", seq=122)  # 122: even → female
        run = run_import(
            psb_staff, ["公民身份号码,姓名,户籍地址", f"{a},王芳,北仑区新碶街道"], django_capture_on_commit_callbacks
        )
        assert run.status == ImportRun.Status.LOADED, run.errors
        resident = Resident.objects.get(id_number=a)
        assert (resident.gender, resident.birth_date, resident.ethnicity) == ("F", dt.date(2001, 2, 3), "汉族")
        Resident.objects.filter(pk=resident.pk).update(phone="13700137000")
        run = run_import(psb_staff, ["id_number,name,address", f"{a},王芳芳,北仑区新碶街道"],
                         django_capture_on_commit_callbacks)  # fmt: skip
        assert run.status == ImportRun.Status.LOADED, run.errors
        resident.refresh_from_db()
        assert (resident.name, resident.phone) == ("王芳芳", "13700137000")

    def test_gb18030_csv(self, psb_staff, resident_entry, django_capture_on_commit_callbacks):
        a = make_id(seq=32)
        run = run_import(
            psb_staff,
            [RESIDENT_HEADER, resident_line(a, name="欧阳娜娜", gender="F")],
            django_capture_on_commit_callbacks,
            encoding="gb18030",
        )
        assert run.status == ImportRun.Status.LOADED, run.errors
        assert Resident.objects.get(id_number=a).name == "欧阳娜娜"

    def test_xlsx_with_dates_and_numbers(self, psb_staff, resident_entry, django_capture_on_commit_callbacks):
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(RESIDENT_HEADER.split(","))
        a, b = make_id(seq=41), make_id(birth="19770707", seq=42)
        sheet.append([a, "周明", "男", dt.datetime(1990, 1, 1), "汉族", 13800138000, "北仑区霞浦街道", "霞浦街道", ""])
        sheet.append([b, "吴静", "F", "1977-07-07", None, None, "北仑区春晓街道", "春晓街道", None])
        sheet.append([None] * 9)  # blank rows are not rows
        body = io.BytesIO()
        book.save(body)
        with django_capture_on_commit_callbacks(execute=True):
            run = imports.import_start(
                actor=psb_staff, registry_code="resident", upload=SimpleUploadedFile("人口.xlsx", body.getvalue())
            )
        run.refresh_from_db()
        assert run.status == ImportRun.Status.LOADED, run.errors
        assert run.total_rows == 2
        assert Resident.objects.get(id_number=a).phone == "13800138000"
        assert Resident.objects.get(id_number=b).ethnicity == "汉族"

    def test_other_registries(self, egov, django_capture_on_commit_callbacks):
        lines = [imports.template_csv(code).decode("utf-8-sig").splitlines() for code in REGISTRIES]
        for code, (header, example) in zip(REGISTRIES, lines, strict=True):
            run = run_import(egov, [header, example], django_capture_on_commit_callbacks, registry_code=code)
            assert run.status == ImportRun.Status.LOADED, (code, run.errors)
            assert run.created_rows == 1
        place = Place.objects.get()
        assert place.longitude == Decimal("121.844000")
        assert EconomicIndicator.objects.get().value == Decimal("2745.6700")
        assert Change.objects.filter(registry="economy").get().record_key == "gdp:2024"


class TestImportBad:
    def test_bad_rows_load_nothing_and_every_row_is_reported(
        self, psb_staff, resident_entry, django_capture_on_commit_callbacks
    ):
        good, dup = make_id(seq=51), make_id(seq=53)
        bad_check = make_id(seq=55)[:17] + ("0" if make_id(seq=55)[17] != "0" else "1")
        run = run_import(
            psb_staff,
            [
                RESIDENT_HEADER,
                resident_line(good),  # row 2
                resident_line(bad_check),  # 3: check digit
                resident_line(make_id(seq=61), birth="1990-13-01"),  # 4: bad date
                resident_line(dup),  # 5
                resident_line(dup),  # 6: duplicate of row 5
                resident_line(make_id(seq=63), phone="12345"),  # 7: bad mobile
                resident_line(make_id(seq=57), gender="女"),  # 8: 57 is odd → male
                resident_line(make_id(seq=58), name=""),  # 9: required
                resident_line(make_id(seq=59), gender="未知"),  # 10: not a choice
            ],
            django_capture_on_commit_callbacks,
        )
        assert run.status == ImportRun.Status.INVALID
        assert not Resident.objects.exists() and not Change.objects.exists()
        assert run.total_rows == 9
        assert run.error_rows == 7
        rows = [e["row"] for e in run.errors]
        assert rows == sorted(rows)
        by_row = {e["row"]: e for e in run.errors}
        assert set(by_row) == {3, 4, 6, 7, 8, 9, 10}
        assert by_row[3]["column"] == "公民身份号码" and "校验位" in by_row[3]["message"]
        assert by_row[4]["column"] == "出生日期"
        assert by_row[6]["message"] == "与第 5 行重复"
        assert by_row[7]["column"] == "联系电话"
        assert "不一致" in by_row[8]["message"]
        assert by_row[9]["message"].startswith("必填")
        assert "不是可选值" in by_row[10]["message"]
        report = imports.error_report_open(run)
        text = report.read().decode("utf-8-sig")
        report.close()
        lines = list(csv.reader(io.StringIO(text)))
        assert lines[0] == ["行号", "列", "问题"]
        assert [line[0] for line in lines[1:]] == [str(e["row"]) for e in run.errors]
        assert AuditEntry.objects.filter(action="exchange.import.invalid").exists()

    def test_missing_required_column(self, psb_staff, resident_entry, django_capture_on_commit_callbacks):
        run = run_import(psb_staff, ["公民身份号码,性别", f"{make_id()},男"], django_capture_on_commit_callbacks)
        assert run.status == ImportRun.Status.INVALID
        assert run.errors[0]["row"] == 1
        assert "缺少必填列：姓名、户籍地址" in run.errors[0]["message"]
        assert not Resident.objects.exists()

    def test_wrong_header(self, psb_staff, resident_entry, django_capture_on_commit_callbacks):
        lines = [RESIDENT_HEADER + ",备注", resident_line(make_id()) + ",x"]
        run = run_import(psb_staff, lines, django_capture_on_commit_callbacks)
        assert run.status == ImportRun.Status.INVALID
        assert "无法识别的列：备注" in run.errors[0]["message"]
        run = run_import(psb_staff, ["姓名,姓名,公民身份号码,户籍地址", "a,b,c,d"], django_capture_on_commit_callbacks)
        assert "重复" in run.errors[0]["message"]
        assert not Resident.objects.exists()

    def test_header_only(self, psb_staff, resident_entry, django_capture_on_commit_callbacks):
        run = run_import(psb_staff, [RESIDENT_HEADER], django_capture_on_commit_callbacks)
        assert run.status == ImportRun.Status.INVALID
        assert "没有数据行" in run.errors[0]["message"]

    def test_bad_bytes_in_the_middle(self, psb_staff, resident_entry, django_capture_on_commit_callbacks):
        body = ("\n".join([RESIDENT_HEADER, resident_line(make_id())]) + "\n").encode() * 1
        body += b"\xff\xfe\xfa broken\n"
        with django_capture_on_commit_callbacks(execute=True):
            run = imports.import_start(
                actor=psb_staff, registry_code="resident", upload=SimpleUploadedFile("a.csv", body * 1)
            )
        run.refresh_from_db()
        assert run.status == ImportRun.Status.INVALID
        assert not Resident.objects.exists()

    @pytest.mark.parametrize(
        ("name", "body", "fragment"),
        [
            ("a.csv", b"", "空"),
            ("a.pdf", b"%PDF-1.4", "只支持"),
            ("a.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "旧版"),
            ("a.csv", b"PK\x03\x04rest", "扩展名"),
        ],
    )
    def test_refused_files(self, psb_staff, resident_entry, name, body, fragment):
        with pytest.raises(ValidationError) as exc:
            imports.import_start(actor=psb_staff, registry_code="resident", upload=SimpleUploadedFile(name, body))
        assert fragment in str(exc.value)
        assert not ImportRun.objects.exists()

    def test_too_big(self, psb_staff, resident_entry, monkeypatch):
        monkeypatch.setattr(imports, "MAX_UPLOAD_BYTES", 10)
        with pytest.raises(ValidationError, match="文件过大"):
            imports.import_start(actor=psb_staff, registry_code="resident", upload=upload([RESIDENT_HEADER]))

    def test_who_may_import(self, alice, psb_staff, egov, admin, resident_entry):
        assert imports.can_manage_registry(psb_staff, "resident")
        assert imports.can_manage_registry(egov, "resident")
        assert imports.can_manage_registry(admin, "resident")
        assert not imports.can_manage_registry(alice, "resident")
        assert not imports.can_manage_registry(psb_staff, "legal_entity")  # 公安 does not provide it
        with pytest.raises(PermissionDenied):
            imports.import_start(actor=alice, registry_code="resident", upload=upload([RESIDENT_HEADER]))
        with pytest.raises(ValidationError):
            imports.import_start(actor=egov, registry_code="nope", upload=upload([RESIDENT_HEADER]))


# --- pages ------------------------------------------------------------------------------------


@pytest.fixture
def residents(resident_entry):
    imports.residents_generate(count=45, seed=5)
    return list(Resident.objects.order_by("id"))


class TestPages:
    def test_overview_for_all_staff_detail_links_for_providers(self, client, alice, psb_staff, residents):
        client.force_login(alice)
        response = client.get(reverse("exchange:registries"))
        assert response.status_code == 200
        text = response.content.decode()
        assert "人口基础库" in text and "区公安分局" in text and "45" in text
        assert reverse("exchange:registry", args=["resident"]) not in text
        client.force_login(psb_staff)
        assert (
            reverse("exchange:registry", args=["resident"])
            in client.get(reverse("exchange:registries")).content.decode()
        )

    def test_browser_masks_and_pages_by_id(self, client, psb_staff, residents):
        client.force_login(psb_staff)
        url = reverse("exchange:registry", args=["resident"])
        response = client.get(url)
        assert response.status_code == 200
        text = response.content.decode()
        first = residents[0]
        assert first.id_number not in text
        assert f"{first.id_number[:6]}********{first.id_number[-4:]}" in text
        assert first.name[0] + "*" in text
        assert "共 45 条" in text
        assert response.context["window"]["has_next"] and not response.context["window"]["has_prev"]
        second = client.get(url, {"after": response.context["window"]["next"]})
        assert [r["pk"] for r in second.context["rows"]] == [r.pk for r in residents[20:40]]
        assert second.context["window"]["has_prev"]
        back = client.get(url, {"before": second.context["window"]["prev"]})
        assert [r["pk"] for r in back.context["rows"]] == [r.pk for r in residents[:20]]
        last = client.get(url, {"after": residents[39].pk})
        assert len(last.context["rows"]) == 5 and not last.context["window"]["has_next"]
        assert client.get(url, {"after": "abc", "before": "-1"}).status_code == 200  # bad cursors: first page

    def test_search_and_filters(self, client, psb_staff, residents):
        client.force_login(psb_staff)
        url = reverse("exchange:registry", args=["resident"])
        target = residents[7]
        found = client.get(url, {"q": target.id_number.lower()}).context["rows"]
        assert [r["pk"] for r in found] == [target.pk]
        by_name = client.get(url, {"q": target.name[:1]}).context["rows"]
        assert target.pk in [r["pk"] for r in by_name]
        women = client.get(url, {"gender": "F"})
        assert {Resident.objects.get(pk=r["pk"]).gender for r in women.context["rows"]} == {"F"}
        assert women.context["count"] is None  # a filtered list is not counted
        assert client.get(url, {"gender": "X"}).status_code == 200

    def test_other_units_are_refused(self, client, alice, bob, psb_staff, residents):
        client.force_login(alice)
        for name, args in (("exchange:registry", ["resident"]), ("exchange:registry_record", ["resident", residents[0].pk]),
                           ("exchange:import_create", ["resident"])):  # fmt: skip
            response = client.get(reverse(name, args=args))
            assert response.status_code == 403
            assert "只有人口基础库的提供单位" in response.content.decode()
        client.force_login(psb_staff)
        assert client.get(reverse("exchange:registry", args=["legal_entity"])).status_code == 403
        assert client.get(reverse("exchange:registry", args=["nope"])).status_code == 404
        assert client.get(reverse("exchange:registry_record", args=["resident", 999999])).status_code == 404

    def test_egov_and_admin_see_every_registry(self, client, egov, admin, residents, settings):
        settings.YIWANG_ADMIN_2FA = False
        for person in (egov, admin):
            client.force_login(person)
            for code in REGISTRIES:
                assert client.get(reverse("exchange:registry", args=[code])).status_code == 200

    def test_record_in_plain_text_with_changes_and_audited(
        self, client, psb_staff, resident_entry, django_capture_on_commit_callbacks
    ):
        a = make_id(seq=71)
        run_import(psb_staff, [RESIDENT_HEADER, resident_line(a)], django_capture_on_commit_callbacks)
        run_import(psb_staff, [RESIDENT_HEADER, resident_line(a, phone="13900139000")],
                   django_capture_on_commit_callbacks)  # fmt: skip
        client.force_login(psb_staff)
        resident = Resident.objects.get(id_number=a)
        response = client.get(reverse("exchange:registry_record", args=["resident", resident.pk]))
        text = response.content.decode()
        assert a in text and "张三" in text and "13900139000" in text
        assert [c.op for c in response.context["changes"]] == ["updated", "created"]
        assert "联系电话" in text
        assert AuditEntry.objects.filter(action="exchange.registry.view", object_id=a).exists()

    def test_indicator_chart(self, client, egov):
        imports.indicators_generate(seed=1)
        client.force_login(egov)
        url = reverse("exchange:registry", args=["economy"])
        response = client.get(url)
        assert response.status_code == 200
        chart = response.context["chart"]
        assert chart["series"][0]["type"] == "line"
        assert chart["xAxis"]["data"][0] == "2015" and len(chart["xAxis"]["data"]) == 11
        assert 'id="exc-reg-indicator"' in response.content.decode()
        quarterly = client.get(url, {"series": "gdp", "freq": "quarter"}).context["chart"]
        assert quarterly["xAxis"]["data"][:2] == ["2015Q1", "2015Q2"]
        rows = client.get(url, {"series": "gdp", "year": "2020", "freq": "quarter"}).context["rows"]
        assert len(rows) == 4

    def test_upload_form_template_and_result_page(
        self, client, psb_staff, resident_entry, django_capture_on_commit_callbacks
    ):
        client.force_login(psb_staff)
        form_url = reverse("exchange:import_create", args=["resident"])
        page = client.get(form_url)
        assert page.status_code == 200 and "公民身份号码" in page.content.decode()
        template = client.get(reverse("exchange:import_template", args=["resident"]))
        assert template["Content-Type"].startswith("text/csv")
        lines = template.content.decode("utf-8-sig").splitlines()
        assert lines[0].startswith("公民身份号码,姓名,性别")
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(form_url, {"file": SimpleUploadedFile("人口.csv", template.content)})
        run = ImportRun.objects.get()
        assert response.status_code == 302 and response.url == reverse("exchange:import_detail", args=[run.pk])
        detail = client.get(response.url)
        assert detail.status_code == 200
        text = detail.content.decode()
        assert "已导入" in text and "hx-trigger" not in text
        assert client.get(reverse("exchange:imports")).context["page_obj"].object_list[0] == run

    def test_upload_form_errors(self, client, psb_staff, resident_entry):
        client.force_login(psb_staff)
        form_url = reverse("exchange:import_create", args=["resident"])
        response = client.post(form_url, {"file": SimpleUploadedFile("a.pdf", b"%PDF")})
        assert response.status_code == 400 and "只支持" in response.content.decode()
        assert client.post(form_url, {}).status_code == 400
        assert not ImportRun.objects.exists()

    def test_progress_page_polls_while_running(self, client, psb_staff, resident_entry, monkeypatch):
        monkeypatch.setattr(tasks.import_run, "delay", lambda run_id: None)  # no worker yet
        run = imports.import_start(actor=psb_staff, registry_code="resident",
                                   upload=upload([RESIDENT_HEADER, resident_line(make_id())]))  # fmt: skip
        ImportRun.objects.filter(pk=run.pk).update(status="running", total_rows=1000, done_rows=420)
        client.force_login(psb_staff)
        url = reverse("exchange:import_detail", args=[run.pk])
        page = client.get(url)
        text = page.content.decode()
        assert 'hx-trigger="every 1s"' in text and 'data-progress="42"' in text and "<html" in text
        partial = client.get(url, HTTP_HX_REQUEST="true")
        assert "<html" not in partial.content.decode() and 'id="exc-reg-run"' in partial.content.decode()
        imports.import_run(run_id=run.pk)
        done = client.get(url, HTTP_HX_REQUEST="true").content.decode()
        assert "hx-trigger" not in done and "已导入" in done

    def test_error_list_and_report(self, client, psb_staff, bob, resident_entry, django_capture_on_commit_callbacks):
        run = run_import(
            psb_staff,
            [RESIDENT_HEADER, resident_line(make_id(seq=81)), resident_line(make_id(seq=81))],
            django_capture_on_commit_callbacks,
        )
        client.force_login(psb_staff)
        detail = client.get(reverse("exchange:import_detail", args=[run.pk])).content.decode()
        assert "与第 2 行重复" in detail and "未导入任何数据" in detail
        report = client.get(reverse("exchange:import_errors", args=[run.pk]))
        assert report.status_code == 200
        body = b"".join(report.streaming_content).decode("utf-8-sig")
        assert body.splitlines()[1] == "3,公民身份号码,与第 2 行重复"
        client.force_login(bob)
        assert client.get(reverse("exchange:import_detail", args=[run.pk])).status_code == 404
        assert client.get(reverse("exchange:import_errors", args=[run.pk])).status_code == 404
        assert not client.get(reverse("exchange:imports")).context["page_obj"].object_list

    def test_loaded_run_has_no_report(self, client, psb_staff, resident_entry, django_capture_on_commit_callbacks):
        run = run_import(psb_staff, [RESIDENT_HEADER, resident_line(make_id())], django_capture_on_commit_callbacks)
        client.force_login(psb_staff)
        assert client.get(reverse("exchange:import_errors", args=[run.pk])).status_code == 404


# --- API --------------------------------------------------------------------------------------

API = "/api/exchange/imports/"


@pytest.fixture
def psb_key(psb):
    from yiwang.org import services as org

    system = org.system_create(actor=None, name="户籍管理系统", unit=psb)
    return org.api_key_issue(actor=None, system=system, name="导入", scopes=["exchange:read", "exchange:write"])[1]


class TestApi:
    def test_session_upload_202_then_detail(
        self, client, psb_staff, resident_entry, django_capture_on_commit_callbacks
    ):
        client.force_login(psb_staff)
        body = "\r\n".join([RESIDENT_HEADER, resident_line(make_id(seq=91))]).encode()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(API, {"registry": "resident", "file": SimpleUploadedFile("a.csv", body)})
        assert response.status_code == 202, response.content
        data = response.json()
        assert data["registry"] == "resident" and data["status"] in ("pending", "running", "loaded")
        detail = client.get(f"{API}{data['id']}/").json()
        assert (detail["status"], detail["created_rows"], detail["percent"], detail["errors"]) == ("loaded", 1, 100, [])
        listed = client.get(API, {"registry": "resident"}).json()
        assert [r["id"] for r in listed["results"]] == [data["id"]]

    def test_key_upload_and_invalid_file_errors(
        self, client, psb_key, resident_entry, django_capture_on_commit_callbacks
    ):
        auth = {"HTTP_AUTHORIZATION": f"Api-Key {psb_key}"}
        body = "\r\n".join([RESIDENT_HEADER, resident_line("330206199001011230")]).encode()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(API, {"registry": "resident", "file": SimpleUploadedFile("a.csv", body)}, **auth)
        assert response.status_code == 202, response.content
        detail = client.get(f"{API}{response.json()['id']}/", **auth).json()
        assert detail["status"] == "invalid" and detail["errors"][0]["row"] == 2
        assert detail["errors"][0]["column"] == "公民身份号码"
        assert not Resident.objects.exists()

    def test_refusals(self, client, alice, edu_key, psb_staff, resident_entry):
        body = SimpleUploadedFile("a.csv", RESIDENT_HEADER.encode())
        raw = edu_key[1]
        response = client.post(API, {"registry": "resident", "file": body}, HTTP_AUTHORIZATION=f"Api-Key {raw}")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
        client.force_login(psb_staff)
        response = client.post(API, {"registry": "nope", "file": SimpleUploadedFile("a.csv", b"x")})
        assert response.status_code == 400 and "registry" in response.json()["error"]["details"]
        response = client.post(API, {"registry": "resident", "file": SimpleUploadedFile("a.doc", b"x")})
        assert response.status_code == 400 and "file" in response.json()["error"]["details"]
        assert client.get(f"{API}abc/").status_code == 400
        assert client.get(f"{API}999/").status_code == 404

    def test_read_only_key_cannot_upload(self, client, psb, resident_entry):
        from yiwang.org import services as org

        system = org.system_create(actor=None, name="只读系统", unit=psb)
        raw = org.api_key_issue(actor=None, system=system, name="只读", scopes=["exchange:read"])[1]
        body = SimpleUploadedFile("a.csv", RESIDENT_HEADER.encode())
        response = client.post(API, {"registry": "resident", "file": body}, HTTP_AUTHORIZATION=f"Api-Key {raw}")
        assert response.status_code == 403
        assert client.get(API, HTTP_AUTHORIZATION=f"Api-Key {raw}").status_code == 200


# --- more of the importer -----------------------------------------------------------------------


class TestImportMore:
    def test_files_speak_chinese_whatever_the_page_language(
        self, psb_staff, resident_entry, django_capture_on_commit_callbacks
    ):
        from django.utils import translation

        with translation.override("en"):
            header = imports.template_csv("resident").decode("utf-8-sig").splitlines()[0]
            assert header.startswith("公民身份号码,姓名,性别")
            assert imports.header_map(REGISTRIES["resident"], header.split(","))["name"] == 1
        run = run_import(psb_staff, [RESIDENT_HEADER, resident_line(make_id())], django_capture_on_commit_callbacks)
        assert run.status == ImportRun.Status.LOADED

    @pytest.mark.parametrize(
        ("registry_code", "column", "bad", "fragment"),
        [
            ("legal_entity", "credit_code", "91330206MA2H7K3L0X", "校验位"),
            ("legal_entity", "credit_code", "9133020", "18 位"),
            ("legal_entity", "kind", "公司", "不是可选值"),
            ("legal_entity", "registered_capital", "一百万", "应为数字"),
            ("legal_entity", "phone", "call me", "电话号码"),
            ("legal_entity", "established_on", "2015.06.01", "日期格式"),
            ("place", "longitude", "29.899", "经度"),
            ("place", "latitude", "121.844", "纬度"),
            ("place", "floors", "3.5", "整数"),
            ("place", "code", "A B", "空格"),
            ("economy", "period", "2025Q5", "统计期"),
            ("economy", "code", "地区生产总值", "指标代码"),
            ("economy", "value", "1e999", "数值过大"),
        ],
    )
    def test_cells_of_the_other_registries(
        self, egov, django_capture_on_commit_callbacks, registry_code, column, bad, fragment
    ):
        header, example = imports.template_csv(registry_code).decode("utf-8-sig").splitlines()
        codes = [c.code for c in imports.columns_of(REGISTRIES[registry_code])]
        cells = next(csv.reader([example]))
        cells[codes.index(column)] = bad
        body = io.StringIO()
        csv.writer(body).writerow(cells)
        run = run_import(egov, [header, body.getvalue().strip()], django_capture_on_commit_callbacks,
                         registry_code=registry_code)  # fmt: skip
        assert run.status == ImportRun.Status.INVALID, run.errors
        assert fragment in run.errors[0]["message"], run.errors
        assert not REGISTRIES[registry_code].model.objects.exists()

    def test_excel_number_for_an_id_gets_a_hint(self, psb_staff, resident_entry, django_capture_on_commit_callbacks):
        book = openpyxl.Workbook()
        book.active.append(["公民身份号码", "姓名", "户籍地址"])
        book.active.append([330206199001011230.0, "张三", "北仑区"])
        body = io.BytesIO()
        book.save(body)
        with django_capture_on_commit_callbacks(execute=True):
            run = imports.import_start(
                actor=psb_staff, registry_code="resident", upload=SimpleUploadedFile("a.xlsx", body.getvalue())
            )
        run.refresh_from_db()
        assert "科学计数法" in run.errors[0]["message"]

    def test_a_finished_run_is_not_run_again(self, psb_staff, resident_entry, django_capture_on_commit_callbacks):
        run = run_import(psb_staff, [RESIDENT_HEADER, resident_line(make_id())], django_capture_on_commit_callbacks)
        Resident.objects.all().delete()
        assert imports.import_run(run_id=run.pk).status == ImportRun.Status.LOADED
        assert not Resident.objects.exists()
        assert imports.import_run(run_id=999_999) is None

    def test_a_crash_fails_the_run_and_loads_nothing(self, psb_staff, resident_entry, monkeypatch):
        monkeypatch.setattr(tasks.import_run, "delay", lambda run_id: None)
        run = imports.import_start(actor=psb_staff, registry_code="resident",
                                   upload=upload([RESIDENT_HEADER, resident_line(make_id())]))  # fmt: skip

        def boom(*args, **kwargs):
            raise RuntimeError("disk full")

        monkeypatch.setattr(imports, "_load", boom)
        run = imports.import_run(run_id=run.pk)
        assert run.status == ImportRun.Status.FAILED and "disk full" in run.message
        assert run.file  # kept, so the run can be looked into
        assert not Resident.objects.exists()

    def test_management_command(self, capsys):
        from django.core.management import call_command

        call_command("exchange_generate", "--residents", "300", "--entities", "30", "--places", "20", "--indicators")
        out = capsys.readouterr().out
        assert "人口：新增 300 条" in out and "行/秒" in out and "经济指标：新增" in out
        assert (Resident.objects.count(), LegalEntity.objects.count(), Place.objects.count()) == (300, 30, 20)
        from django.core.management.base import CommandError

        with pytest.raises(CommandError):
            call_command("exchange_generate")


class TestSpreadsheetBounds:
    """The shared reader (core.spreadsheet) under the registry import."""

    def test_a_zip_bomb_is_refused_at_upload(self, psb_staff, resident_entry):
        from yiwang.core.tests.test_spreadsheet import bomb_xlsx

        bomb = SimpleUploadedFile("人口.xlsx", bomb_xlsx())
        with pytest.raises(ValidationError, match="疑似压缩炸弹"):
            imports.import_start(actor=psb_staff, registry_code="resident", upload=bomb)
        assert not ImportRun.objects.exists()

    def test_gb18030_with_a_utf8_bom(self, psb_staff, resident_entry, django_capture_on_commit_callbacks):
        a = make_id(seq=34)
        body = b"\xef\xbb\xbf" + "\r\n".join([RESIDENT_HEADER, resident_line(a, name="欧阳娜娜", gender="F")]).encode(
            "gb18030"
        )
        with django_capture_on_commit_callbacks(execute=True):
            run = imports.import_start(
                actor=psb_staff, registry_code="resident", upload=SimpleUploadedFile("人口.csv", body)
            )
        run.refresh_from_db()
        assert run.status == ImportRun.Status.LOADED, run.errors
        assert Resident.objects.get(id_number=a).name == "欧阳娜娜"

    def test_a_formula_without_result_names_its_cell(
        self, psb_staff, resident_entry, django_capture_on_commit_callbacks
    ):
        book = openpyxl.Workbook()
        book.active.append(RESIDENT_HEADER.split(","))
        book.active.append(
            [make_id(seq=35), '=CONCAT("王","芳")', "女", "1990-01-01", "汉族", "", "北仑区", "霞浦街道"]
        )
        body = io.BytesIO()
        book.save(body)
        with django_capture_on_commit_callbacks(execute=True):
            run = imports.import_start(
                actor=psb_staff, registry_code="resident", upload=SimpleUploadedFile("人口.xlsx", body.getvalue())
            )
        run.refresh_from_db()
        assert run.status == ImportRun.Status.INVALID
        assert [(e["row"], e["message"][:10]) for e in run.errors] == [(2, "单元格 B2 是公式")]
        assert not Resident.objects.exists()
