"""Recipients sheets through the shared reader (core.spreadsheet): bombs, encodings, formulas."""

from __future__ import annotations

import codecs
import io

import openpyxl
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from yiwang.core.tests.test_spreadsheet import bomb_xlsx
from yiwang.notify import services, spreadsheet
from yiwang.notify.models import Job, Message

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _chinese():
    """The messages are asserted in Chinese, whatever an earlier test left active."""
    with translation.override("zh-hans"):
        yield


def job_of(alice, notice, name: str, body: bytes) -> Job:
    job = services.job_create(actor=alice, unit=notice.unit, template=notice, upload=SimpleUploadedFile(name, body))
    return services.job_validate(job=job)


def test_a_zip_bomb_is_refused_at_upload(alice, notice):
    with pytest.raises(ValidationError, match="疑似压缩炸弹"):
        job_of(alice, notice, "名单.xlsx", bomb_xlsx())
    assert not Job.objects.exists()


def test_gb18030_with_a_utf8_bom(alice, notice):
    body = codecs.BOM_UTF8 + "手机号,姓名,日期\n13800138000,王小明,周一\n".encode("gb18030")
    job = job_of(alice, notice, "名单.csv", body)
    assert job.status == Job.Status.VALIDATED, job.problem
    assert Message.objects.get(job=job).body.endswith("王小明同学：请于周一参加考试。")


def test_a_formula_without_result_is_named_not_taken_for_an_empty_cell(alice, notice):
    book = openpyxl.Workbook()
    book.active.append(["手机号", "姓名", "日期"])
    book.active.append([13800138000, '=CONCAT("王","小明")', "周一"])
    body = io.BytesIO()
    book.save(body)
    job = job_of(alice, notice, "名单.xlsx", body.getvalue())
    assert job.status == Job.Status.INVALID
    assert job.problem.startswith("单元格 B2 是公式，但文件中没有它的计算结果")
    assert not Message.objects.filter(job=job).exists()


def test_rows_beyond_the_limit(alice, notice, monkeypatch):
    monkeypatch.setattr(spreadsheet, "MAX_ROWS", 2)
    job = job_of(
        alice,
        notice,
        "名单.csv",
        "手机号,姓名,日期\n13800138000,甲,一\n13800138001,乙,二\n13800138002,丙,三\n".encode(),
    )
    assert job.status == Job.Status.INVALID
    assert "文件超过 2 行数据的上限" in job.problem


def test_a_million_rows_are_allowed_by_default():
    assert spreadsheet.MAX_ROWS == 1_000_000
    sheet = spreadsheet.open_sheet(io.BytesIO("手机号\n13800138000\n".encode()), "a.csv")
    assert list(sheet.rows()) == [(2, ["13800138000"])]
