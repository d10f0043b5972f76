"""Staff and unit imports through the shared reader (core.spreadsheet): bombs and formulas."""

from __future__ import annotations

import io

import pytest
from django.utils import translation

from yiwang.core.tests.test_spreadsheet import bomb_xlsx, xlsx
from yiwang.org import excel
from yiwang.org.models import Unit, User

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _chinese():
    """The messages are asserted in Chinese, whatever an earlier test left active."""
    with translation.override("zh-hans"):
        yield


PERSON_HEADER = ["用户名", "姓名", "手机号码", "电子邮箱", "单位代码", "角色", "职务", "领导类别", "状态"]


@pytest.mark.parametrize("kind", ["inline", "shared"])
def test_a_zip_bomb_is_refused_before_parsing(admin, kind):
    people = User.objects.count()
    result = excel.people_import(actor=admin, file=io.BytesIO(bomb_xlsx(kind)))
    assert result.created == 0
    assert [e.row for e in result.errors] == [1]
    assert result.errors[0].message.startswith("Excel 文件解压后过大（疑似压缩炸弹），已拒绝：")
    assert User.objects.count() == people


def test_units_import_refuses_it_too(admin):
    units = Unit.objects.count()
    result = excel.units_import(actor=admin, file=io.BytesIO(bomb_xlsx()))
    assert "疑似压缩炸弹" in result.errors[0].message
    assert Unit.objects.count() == units


def test_a_formula_without_result_is_not_read_as_a_missing_value(admin, units):
    file = xlsx(PERSON_HEADER, ["lisi", '=CONCAT("李","四")', "", "", "EDU", "staff", "", "", ""])
    result = excel.people_import(actor=admin, file=file)
    assert result.created == 0
    assert [(e.row, e.column) for e in result.errors] == [(2, "B2")]
    assert result.errors[0].message.startswith("单元格 B2 是公式，但文件中没有它的计算结果")
    assert "必填" not in result.errors[0].message
