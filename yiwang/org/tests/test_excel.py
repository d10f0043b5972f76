"""Excel import/export of units and people: all-or-nothing imports, row-numbered errors, scope."""

from __future__ import annotations

import io

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from conftest import make_person
from yiwang.core.models import AuditEntry
from yiwang.org import excel
from yiwang.org.models import Post, Unit, User
from yiwang.org.views_excel import XLSX

UNIT_HEADER = ["单位代码", "单位名称", "简称", "类型", "上级单位代码", "状态", "排序", "联系电话", "地址"]
PERSON_HEADER = ["用户名", "姓名", "手机号码", "电子邮箱", "单位代码", "角色", "职务", "领导类别", "状态"]


def xlsx(*rows) -> io.BytesIO:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    buffer.seek(0)
    return buffer


def read(content: bytes) -> list[list]:
    sheet = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def errors_of(result) -> set[tuple[int, str]]:
    return {(e.row, e.column) for e in result.errors}


@pytest.fixture
def edu_admin(units, roles):
    """Unit admin of 区教育局: manages 区教育局 and 教育局办公室 only."""
    return make_person("eduadmin", "何雪", units["edu"], roles["unit_admin"])


# --- export --------------------------------------------------------------------------------


class TestExport:
    def test_units_export_has_header_and_visible_units(self, admin, units):
        rows = read(excel.units_export(user=admin))
        assert rows[0] == UNIT_HEADER
        by_code = {row[0]: row for row in rows[1:]}
        assert set(by_code) == {"BL", "EGOV", "EDU", "EDU-OFFICE", "FIN"}
        assert by_code["EDU-OFFICE"][3] == "科室"
        assert by_code["EDU-OFFICE"][4] == "EDU"
        assert by_code["BL"][4] is None
        assert by_code["EDU"][5] == "正常"
        assert AuditEntry.objects.filter(action="org.unit.export").exists()

    def test_units_export_is_styled(self, admin):
        sheet = openpyxl.load_workbook(io.BytesIO(excel.units_export(user=admin))).active
        assert sheet.freeze_panes == "A2"
        assert sheet["A1"].font.bold
        assert sheet.column_dimensions["B"].width >= 10

    def test_units_export_is_scoped(self, edu_admin):
        rows = read(excel.units_export(user=edu_admin))
        assert {row[0] for row in rows[1:]} == {"EDU", "EDU-OFFICE"}

    def test_people_export_one_row_per_post(self, admin, alice, units, roles):
        from yiwang.org import services

        services.post_add(
            actor=None, person=alice, spec=services.PostSpec(unit=units["edu_office"], role=roles["staff"])
        )
        rows = read(excel.people_export(user=admin))
        assert rows[0] == PERSON_HEADER
        alice_rows = [row for row in rows[1:] if row[0] == "alice"]
        assert sorted(row[4] for row in alice_rows) == ["EDU", "EDU-OFFICE"]
        assert alice_rows[0][1:4] == ["王丽", "13800138001", None]
        assert alice_rows[0][5] == "staff" and alice_rows[0][8] == "启用"

    def test_formula_like_text_is_stored_as_text(self, admin, units):
        from yiwang.org import services

        services.unit_create(
            actor=None, name='=HYPERLINK("http://x","y")', code="EVIL", kind="office", parent=units["edu"]
        )
        sheet = openpyxl.load_workbook(io.BytesIO(excel.units_export(user=admin))).active
        cell = next(row[1] for row in sheet.iter_rows() if row[0].value == "EVIL")
        assert cell.data_type == "s"

    def test_templates_have_header_and_example(self, roles):
        unit_rows = read(excel.units_template())
        assert unit_rows[0] == UNIT_HEADER
        assert unit_rows[1][0].startswith("示例")
        book = openpyxl.load_workbook(io.BytesIO(excel.people_template()))
        assert [c.value for c in book.active[1]] == PERSON_HEADER
        assert book.active["A2"].font.italic
        assert "密码" in book.active["A1"].comment.text


# --- import units --------------------------------------------------------------------------


class TestUnitsImport:
    def test_good_file_creates_units_through_services(self, admin, units):
        before = AuditEntry.objects.filter(action="org.unit.create").count()
        # The child comes before its parent in the file: the importer reorders.
        file = xlsx(
            ["单位名称", "单位代码", "类型", "上级单位代码", "排序"],  # any column order
            ["基教科", "EDU-BASIC", "科室", "EDU-NEW", 5],
            ["新教育局", "EDU-NEW", "bureau", "BL", None],
        )
        result = excel.units_import(actor=admin, file=file)
        assert result.errors == []
        assert result.created == 2
        child = Unit.objects.get(code="EDU-BASIC")
        assert child.parent.code == "EDU-NEW" and child.kind == "office" and child.sort_order == 5
        assert child.path.startswith(units["district"].path) and child.depth == 2
        assert AuditEntry.objects.filter(action="org.unit.create").count() == before + 2

    def test_example_and_blank_rows_are_skipped(self, admin, units):
        file = xlsx(UNIT_HEADER, excel.UNIT_EXAMPLE, [], ["NEW-1", "新科室", "", "科室", "EDU"])
        result = excel.units_import(actor=admin, file=file)
        assert result.errors == [] and result.created == 1

    def test_one_bad_row_imports_nothing(self, admin, units):
        file = xlsx(
            UNIT_HEADER,
            ["OK-1", "好单位", "", "科室", "EDU"],  # row 2
            ["OK-1", "重复代码", "", "科室", "EDU"],  # row 3
            ["BAD-KIND", "类型错", "", "部委", "EDU"],  # row 4
            ["NO-PARENT", "无上级", "", "科室", "NOPE"],  # row 5
            ["EDU", "已有代码", "", "科室", "BL"],  # row 6
            ["OK-2", "好单位二", "", "科室", "EDU", "", "abc"],  # row 7
        )
        result = excel.units_import(actor=admin, file=file)
        assert result.created == 0
        assert errors_of(result) == {(3, "单位代码"), (4, "类型"), (5, "上级单位代码"), (6, "单位代码"), (7, "排序")}
        messages = {e.row: e.message for e in result.errors}
        assert "第 2 行" in messages[3]
        assert "不存在" in messages[5]
        assert "已被使用" in messages[6]
        assert not Unit.objects.filter(code__in=["OK-1", "OK-2"]).exists()

    def test_cycle_is_reported_on_each_row(self, admin, units):
        file = xlsx(
            UNIT_HEADER,
            ["GOOD", "好单位", "", "科室", "EDU"],
            ["CYC-A", "甲", "", "科室", "CYC-B"],
            ["CYC-B", "乙", "", "科室", "CYC-A"],
            ["SELF", "自己", "", "科室", "SELF"],
        )
        result = excel.units_import(actor=admin, file=file)
        assert errors_of(result) == {(3, "上级单位代码"), (4, "上级单位代码"), (5, "上级单位代码")}
        assert "循环" in result.errors[0].message
        assert not Unit.objects.filter(code="GOOD").exists()

    def test_unit_admin_only_under_own_subtree(self, edu_admin, units):
        good = xlsx(
            UNIT_HEADER,
            ["EDU-A", "教育局科室甲", "", "科室", "EDU-OFFICE"],
            ["EDU-A-1", "甲下属", "", "科室", "EDU-A"],  # under a unit created by this same file
        )
        result = excel.units_import(actor=edu_admin, file=good)
        assert result.errors == [] and result.created == 2

        bad = xlsx(
            UNIT_HEADER,
            ["EDU-B", "教育局科室乙", "", "科室", "EDU"],
            ["FIN-A", "财政局科室", "", "科室", "FIN"],  # row 3: not theirs
            ["TOP", "顶级", "", "区委/区政府", ""],  # row 4: top level needs a platform admin
        )
        result = excel.units_import(actor=edu_admin, file=bad)
        assert errors_of(result) == {(3, "上级单位代码"), (4, "上级单位代码")}
        assert not Unit.objects.filter(code="EDU-B").exists()

    def test_service_error_while_writing_rolls_back(self, admin, units):
        # A check can pass and the write still fail (e.g. the code is taken meanwhile):
        # the rows already written are rolled back and the failing row is reported.
        from unittest import mock

        from django.core.exceptions import ValidationError

        from yiwang.org import services

        real_create = services.unit_create

        def flaky(**kwargs):
            if kwargs["code"] == "W-2":
                raise ValidationError({"code": ["单位代码已被使用。"]})
            return real_create(**kwargs)

        file = xlsx(UNIT_HEADER, ["W-1", "一", "", "科室", "EDU"], ["W-2", "二", "", "科室", "EDU"])
        with mock.patch.object(services, "unit_create", side_effect=flaky):
            result = excel.units_import(actor=admin, file=file)
        assert [(e.row, e.column) for e in result.errors] == [(3, "单位代码")]
        assert result.created == 0
        assert not Unit.objects.filter(code="W-1").exists()

    def test_export_round_trip(self, admin, units):
        rows = read(excel.units_export(user=admin))
        fresh = [rows[0]]
        for row in rows[1:]:
            if row[0] == "BL":
                continue  # keep the district; re-import its subtree under fresh codes
            parent = row[4] if row[4] == "BL" else f"R-{row[4]}"
            fresh.append([f"R-{row[0]}", *row[1:4], parent, *row[5:]])
        result = excel.units_import(actor=admin, file=xlsx(*fresh))
        assert result.errors == []
        assert result.created == 4
        assert Unit.objects.get(code="R-EDU-OFFICE").parent.code == "R-EDU"


# --- import people -------------------------------------------------------------------------


class TestPeopleImport:
    def test_good_file_creates_people_with_posts(self, admin, units, roles):
        file = xlsx(
            PERSON_HEADER,
            excel.PERSON_EXAMPLE,
            ["zhangsan", "张三", 13900139000, "zs@example.gov.cn", "EDU", "staff", "科员", "", ""],
            ["zhangsan", "（忽略）", "", "", "EDU-OFFICE", "leader", "主任", "主要领导", ""],
            ["lisi", "李四", "+86 139-0013-9001", "", "FIN", "工作人员", "", "", "停用"],
        )
        result = excel.people_import(actor=admin, file=file)
        assert result.errors == []
        assert result.created == 2
        zhang = User.objects.get(username="zhangsan")
        assert zhang.full_name == "张三" and zhang.mobile == "13900139000"
        assert not zhang.has_usable_password()
        posts = {p.unit.code: p for p in Post.objects.filter(user=zhang)}
        assert set(posts) == {"EDU", "EDU-OFFICE"}
        assert posts["EDU"].is_primary and not posts["EDU-OFFICE"].is_primary
        assert posts["EDU-OFFICE"].leader_rank == "principal"
        lisi = User.objects.get(username="lisi")
        assert lisi.mobile == "13900139001" and not lisi.is_active
        assert AuditEntry.objects.filter(action="org.person.create", object_id=str(zhang.pk)).exists()

    def test_one_bad_row_imports_nothing(self, admin, alice, units):
        file = xlsx(
            PERSON_HEADER,
            ["p1", "甲", "13900000001", "", "EDU", "staff"],  # row 2: good
            ["p2", "乙", "12345", "", "EDU", "staff"],  # row 3: bad mobile
            ["p3", "丙", "", "", "NOPE", "staff"],  # row 4: unknown unit
            ["p4", "丁", "", "", "EDU", "wizard"],  # row 5: unknown role
            ["p5", "戊", "", "", "EDU", "citizen"],  # row 6: public role
            ["P1", "己", "", "", "EDU", "staff", "", "", ""],  # row 7: P1 = p1 → same person, fine
            ["alice", "庚", "", "", "EDU", "staff"],  # row 8: username taken
            ["p6", "辛", "13800138001", "", "EDU", "staff"],  # row 9: alice's mobile
            ["p7", "壬", "13900000001", "", "EDU", "staff"],  # row 10: mobile used on row 2
            ["p8", "癸", "", "", "EDU", "staff", "", "副职"],  # row 11: bad leader rank
            ["p1", "甲", "", "", "EDU", "staff"],  # row 12: same post as row 2
        )
        result = excel.people_import(actor=admin, file=file)
        assert result.created == 0
        assert errors_of(result) == {
            (3, "手机号码"),
            (4, "单位代码"),
            (5, "角色"),
            (6, "角色"),
            (8, "用户名"),
            (9, "手机号码"),
            (10, "手机号码"),
            (11, "领导类别"),
            (7, ""),
            (12, ""),
        }
        messages = {(e.row, e.column): e.message for e in result.errors}
        assert "手机号码无效" in messages[(3, "手机号码")]
        assert "不存在" in messages[(4, "单位代码")]
        assert "第 2 行" in messages[(10, "手机号码")]
        assert not User.objects.filter(username="p1").exists()

    def test_unit_admin_only_in_own_subtree(self, edu_admin, units):
        ok = xlsx(PERSON_HEADER, ["t1", "甲", "", "", "EDU-OFFICE", "staff"])
        assert excel.people_import(actor=edu_admin, file=ok).created == 1
        bad = xlsx(
            PERSON_HEADER,
            ["t2", "乙", "", "", "EDU", "staff"],
            ["t3", "丙", "", "", "FIN", "staff"],  # row 3: not their unit
            ["t4", "丁", "", "", "EDU", "platform_admin"],  # row 4: cannot hand out a district-wide role
        )
        result = excel.people_import(actor=edu_admin, file=bad)
        assert errors_of(result) == {(3, "单位代码"), (4, "角色")}
        assert not User.objects.filter(username="t2").exists()

    def test_export_round_trip(self, admin, alice, bob, carol):
        rows = read(excel.people_export(user=admin))
        fresh = [rows[0]]
        for row in rows[1:]:
            mobile = f"139{row[2][3:]}" if row[2] else None
            fresh.append([f"new-{row[0]}", row[1], mobile, *row[3:]])
        result = excel.people_import(actor=admin, file=xlsx(*fresh))
        assert result.errors == []
        assert result.created == 4  # admin, alice, bob, carol
        assert User.objects.get(username="new-carol").posts.get().leader_rank == "principal"


# --- unreadable and malformed files ---------------------------------------------------------


class TestFileErrors:
    def test_not_an_xlsx(self, admin):
        result = excel.units_import(actor=admin, file=io.BytesIO(b"not a spreadsheet"))
        assert [(e.row, e.message) for e in result.errors] == [(1, "文件无法读取，请使用本页提供的模板（.xlsx）")]

    def test_zip_that_is_not_a_workbook(self, admin):
        import zipfile

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("hello.txt", "hi")
        buffer.seek(0)
        result = excel.people_import(actor=admin, file=buffer)
        assert result.errors[0].message == "文件无法读取，请使用本页提供的模板（.xlsx）"

    def test_empty_workbook(self, admin):
        result = excel.units_import(actor=admin, file=xlsx())
        assert [(e.row, e.message) for e in result.errors] == [(1, "文件中没有数据行")]

    def test_header_only(self, admin):
        result = excel.people_import(actor=admin, file=xlsx(PERSON_HEADER, excel.PERSON_EXAMPLE))
        assert [e.message for e in result.errors] == ["文件中没有数据行"]

    def test_unknown_and_missing_headers(self, admin):
        result = excel.units_import(actor=admin, file=xlsx(["单位代码", "名字", "类型"], ["X", "Y", "科室"]))
        assert errors_of(result) == {(1, "名字"), (1, "单位名称"), (1, "上级单位代码")}

    def test_too_many_rows(self, admin, monkeypatch):
        monkeypatch.setattr(excel, "MAX_ROWS", 2)
        rows = [["X1", "一", "", "科室", "EDU"], ["X2", "二", "", "科室", "EDU"], ["X3", "三", "", "科室", "EDU"]]
        result = excel.units_import(actor=admin, file=xlsx(UNIT_HEADER, *rows))
        assert len(result.errors) == 1 and "分批" in result.errors[0].message


# --- views ---------------------------------------------------------------------------------


def upload(content: io.BytesIO, name: str = "data.xlsx") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.getvalue(), content_type=XLSX)


class TestViews:
    def test_urls(self):
        assert reverse("org:unit_import") == "/org/units/import/"
        assert reverse("org:person_template") == "/org/people/template/"

    @pytest.mark.parametrize(
        ("name", "stem"),
        [("org:unit_export", "units-2"), ("org:person_export", "people-2"), ("org:unit_template", "units-template")],
    )
    def test_downloads(self, admin_client, name, stem):
        response = admin_client.get(reverse(name))
        assert response.status_code == 200
        assert response["Content-Type"] == XLSX
        assert response["Content-Disposition"].startswith(f'attachment; filename="{stem}')
        assert response["Content-Disposition"].endswith('.xlsx"')
        openpyxl.load_workbook(io.BytesIO(response.content))

    def test_export_applies_list_filters(self, admin_client):
        response = admin_client.get(reverse("org:unit_export"), {"q": "教育"})
        codes = {row[0] for row in read(response.content)[1:]}
        assert codes == {"EDU", "EDU-OFFICE"}

    def test_staff_may_export_own_scope_but_not_import(self, alice_client):
        response = alice_client.get(reverse("org:person_export"))
        assert response.status_code == 200
        assert {row[0] for row in read(response.content)[1:]} == {"alice"}
        assert alice_client.get(reverse("org:unit_import")).status_code == 403
        file = upload(xlsx(PERSON_HEADER, ["x1", "甲", "", "", "EDU", "staff"]))
        assert alice_client.post(reverse("org:person_import"), {"file": file}).status_code == 403
        assert not User.objects.filter(username="x1").exists()

    def test_anonymous_is_sent_to_login(self, client, db):
        response = client.get(reverse("org:unit_import"))
        assert response.status_code == 302

    def test_import_page(self, admin_client):
        response = admin_client.get(reverse("org:person_import"))
        assert response.status_code == 200
        assert "任何一行有误则整个文件不导入" in response.content.decode()
        assert reverse("org:person_template") in response.content.decode()

    def test_form_rejects_other_extensions(self, admin_client):
        file = SimpleUploadedFile("data.csv", b"a,b", content_type="text/csv")
        response = admin_client.post(reverse("org:person_import"), {"file": file})
        assert response.status_code == 200
        assert "请上传 .xlsx 格式" in response.content.decode()

    def test_unit_admin_can_open_import(self, client, edu_admin):
        client.force_login(edu_admin)
        assert client.get(reverse("org:unit_import")).status_code == 200
