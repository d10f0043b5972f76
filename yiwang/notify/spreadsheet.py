"""Reading a recipients sheet (CSV or Excel) row by row, without loading it whole.

The first row is the header: one column for the mobile number (手机号 / 手机号码 / 手机 /
mobile / phone) and one per template placeholder. Everything is read as text.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator
from typing import IO

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

MOBILE_HEADERS = ("手机号", "手机号码", "手机", "电话号码", "mobile", "phone", "phone number", "phone_number")
MAX_ROWS = 1_000_000


class Sheet:
    """An opened sheet: ``header`` (list of names) and ``rows()`` yielding (row number, values)."""

    def __init__(self, header: list[str], rows: Iterator[list[str]]):
        self.header = [_clean_header(h) for h in header]
        self._rows = rows

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        for number, values in enumerate(self._rows, start=2):  # row 1 is the header
            if number - 1 > MAX_ROWS:
                raise ValidationError(_("文件超过 %(n)s 行的上限，请拆分后再上传。") % {"n": f"{MAX_ROWS:,}"})
            if not any(v.strip() for v in values):
                continue  # blank lines are not rows
            yield number, values

    def mobile_column(self) -> int:
        lowered = [h.lower() for h in self.header]
        for name in MOBILE_HEADERS:
            if name in lowered:
                return lowered.index(name)
        raise ValidationError(_("表头中找不到手机号列（列名应为“手机号”）。"))


def _clean_header(value) -> str:
    name = str(value if value is not None else "").strip().lstrip("\ufeff")
    for left, right in (("（（", "））"), ("((", "))")):
        if name.startswith(left) and name.endswith(right):
            name = name[2:-2].strip()
    return name


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 13800138000 as a float
    return str(value).strip()


def open_sheet(upload: IO[bytes], name: str) -> Sheet:
    """Open an uploaded .csv or .xlsx; anything else is refused with a clear message."""
    head = upload.read(4)
    upload.seek(0)
    if not head:
        raise ValidationError(_("文件是空的。"))
    lower = (name or "").lower()
    if head.startswith(b"PK\x03\x04"):
        return _open_xlsx(upload)
    if lower.endswith((".xlsx", ".xls", ".xlsm")):
        raise ValidationError(_("无法读取该 Excel 文件：请另存为 .xlsx 或 .csv 后再上传。"))
    if b"\x00" in head or not lower.endswith((".csv", ".txt")):
        raise ValidationError(_("只支持 .csv 或 .xlsx 格式的表格文件。"))
    return _open_csv(upload)


def _open_csv(upload: IO[bytes]) -> Sheet:
    sample = upload.read(64 * 1024)
    upload.seek(0)
    encoding = "utf-8-sig"
    try:
        sample.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # WPS/Excel on Chinese Windows save CSV as GB18030 (a superset of GBK); a cut-off
        # last character of the sample is not an error.
        if exc.start < len(sample) - 4:
            encoding = "gb18030"
    reader = csv.reader(codecs.getreader(encoding)(upload, errors="replace"))
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationError(_("文件是空的。")) from None
    except csv.Error as exc:
        raise ValidationError(_("CSV 文件格式有误：%(error)s") % {"error": exc}) from exc
    return Sheet(header, _csv_rows(reader))


def _csv_rows(reader) -> Iterator[list[str]]:
    try:
        for values in reader:
            yield [v.strip() for v in values]
    except csv.Error as exc:
        raise ValidationError(
            _("CSV 文件第 %(line)s 行格式有误：%(error)s") % {"line": reader.line_num, "error": exc}
        ) from exc


def _open_xlsx(upload: IO[bytes]) -> Sheet:
    import openpyxl

    try:
        book = openpyxl.load_workbook(upload, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ValidationError(_("无法读取该 Excel 文件：%(error)s") % {"error": exc}) from exc
    sheet = book.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    try:
        header = [_cell(v) for v in next(rows)]
    except StopIteration:
        raise ValidationError(_("文件是空的。")) from None
    return Sheet(header, ([_cell(v) for v in row] for row in rows))


def to_csv_bytes(header: list[str], rows: list[list]) -> bytes:
    """A small CSV (UTF-8 with BOM, so Excel opens Chinese correctly) for error reports."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")
