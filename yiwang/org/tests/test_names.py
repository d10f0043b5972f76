"""Unit and person names and codes refuse invisible and direction-changing characters (issue 10 item 7)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from yiwang.org import excel, services
from yiwang.org.models import Unit, User

from .test_excel import PERSON_HEADER, UNIT_HEADER, xlsx

pytestmark = pytest.mark.django_db

SPOOFS = ["教\u200b育", "\u202e局育教", "教育\u2067局", "\ufeff教育", "教\x00育"]


class TestServices:
    @pytest.mark.parametrize("name", SPOOFS)
    def test_unit_name_refused(self, units, name):
        with pytest.raises(ValidationError) as error:
            services.unit_create(actor=None, name=name, code="EDU-X", kind="office", parent=units["edu"])
        assert "name" in error.value.message_dict
        assert not Unit.objects.filter(code="EDU-X").exists()

    def test_unit_code_and_short_name_refused(self, units):
        with pytest.raises(ValidationError) as error:
            services.unit_create(
                actor=None,
                name="新科室",
                short_name="新\u200d科",
                code="EDU\u200bX",
                kind="office",
                parent=units["edu"],
            )
        assert {"code", "short_name"} <= set(error.value.message_dict)

    def test_unit_rename_refused(self, units):
        with pytest.raises(ValidationError):
            services.unit_update(actor=None, unit=units["edu"], name="区教\u200b育局")
        units["edu"].refresh_from_db()
        assert "\u200b" not in units["edu"].name

    def test_person_name_refused(self, alice):
        with pytest.raises(ValidationError) as error:
            services.person_update(actor=None, person=alice, full_name="王\u202e丽")
        assert "不能包含" in error.value.message_dict["full_name"][0]

    def test_system_and_key_names_refused(self, units):
        with pytest.raises(ValidationError):
            services.system_create(actor=None, name="教育\u200b系统", unit=units["edu"])
        system = services.system_create(actor=None, name="教育系统", unit=units["edu"])
        with pytest.raises(ValidationError):
            services.api_key_issue(actor=None, system=system, name="k\u2066ey", scopes=["org:read"])


class TestFormsAndApi:
    def test_unit_form_shows_the_error_beside_the_field(self, admin_client, units):
        response = admin_client.post(
            reverse("org:unit_create"),
            {"name": "教\u200b育", "code": "EDU-Y", "kind": "office", "parent": units["edu"].pk, "sort_order": 1},
        )
        assert response.status_code == 200
        assert "不能包含控制字符" in response.content.decode()
        assert not Unit.objects.filter(code="EDU-Y").exists()

    def test_api_person_create_refused_in_error_envelope(self, admin_client, units, roles):
        response = admin_client.post(
            "/api/org/people/",
            {"username": "spoof", "full_name": "王\u200b丽", "unit": units["edu"].pk, "role": "staff"},
            content_type="application/json",
        )
        assert response.status_code == 400
        body = response.json()["error"]
        assert "full_name" in body["details"]
        assert not User.objects.filter(username="spoof").exists()

    def test_api_unit_rename_refused(self, admin_client, units):
        response = admin_client.patch(
            f"/api/org/units/{units['edu'].pk}/", {"name": "区\u202e局育教"}, content_type="application/json"
        )
        assert response.status_code == 400
        assert "name" in response.json()["error"]["details"]


class TestImport:
    def test_people_import_row_error(self, admin, units):
        file = xlsx(
            PERSON_HEADER,
            ["zhangsan", "张三", "", "", "EDU", "staff", "", "", ""],
            ["lisi", "李\u200b四", "", "", "EDU", "staff", "科\u202e员", "", ""],
        )
        result = excel.people_import(actor=admin, file=file)
        assert result.created == 0
        assert {(e.row, e.column) for e in result.errors} == {(3, "姓名"), (3, "职务")}
        assert all("不能包含" in e.message for e in result.errors)
        assert not User.objects.filter(username__in=["zhangsan", "lisi"]).exists()

    def test_units_import_row_error(self, admin, units):
        file = xlsx(UNIT_HEADER, ["EDU-Z", "基础\u2060教育科", "", "科室", "EDU", "", "", "", ""])
        result = excel.units_import(actor=admin, file=file)
        assert result.created == 0
        assert [(e.row, e.column) for e in result.errors] == [(2, "单位名称")]
