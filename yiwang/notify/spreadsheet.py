"""Reading a recipients sheet (CSV or Excel) row by row, without loading it whole.

The first row is the header: one column for the mobile number (手机号 / 手机号码 / 手机 /
mobile / phone) and one per template placeholder. Everything is read as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from yiwang.core import spreadsheet

MOBILE_HEADERS = ("手机号", "手机号码", "手机", "电话号码", "mobile", "phone", "phone number", "phone_number")
MAX_ROWS = 1_000_000


class Sheet:
    """An opened sheet: ``header`` (list of names) and ``rows()`` yielding (row number, values)."""

    def __init__(self, header: list[str], rows: Iterator[tuple[int, list[str]]]):
        self.header = [_clean_header(h) for h in header]
        self._rows = rows

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Non-blank data rows, cells stripped; the shared reader bounds rows, columns and cells."""
        for number, values in self._rows:
            yield number, [v.strip() for v in values]

    def mobile_column(self) -> int:
        lowered = [h.lower() for h in self.header]
        for name in MOBILE_HEADERS:
            if name in lowered:
                return lowered.index(name)
        raise ValidationError(_("表头中找不到手机号列（列名应为“手机号”）。"))


def _clean_header(value: str) -> str:
    name = value.strip()
    for left, right in (("（（", "））"), ("((", "))")):
        if name.startswith(left) and name.endswith(right):
            name = name[2:-2].strip()
    return name


def open_sheet(upload: IO[bytes], name: str) -> Sheet:
    """Open an uploaded .csv or .xlsx (core.spreadsheet); anything else is refused with a clear message."""
    sheet = spreadsheet.sheet_open(upload, name, max_rows=MAX_ROWS)
    return Sheet(sheet.header, sheet.rows)


def to_csv_bytes(header: list[str], rows: list[list]) -> bytes:
    """A small CSV (UTF-8 with BOM, so Excel opens Chinese correctly) for error reports."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")
