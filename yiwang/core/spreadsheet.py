"""Reading an uploaded spreadsheet (CSV or .xlsx) row by row, within bounds — the one reader for
every importer (org staff, notify recipients, exchange registries).

An .xlsx is a zip: its directory is checked before anything is decompressed (uncompressed size
of all parts and of each part read whole, compression ratio, number of parts), because a 200 KB
file can hold a 200 MB string. While streaming, rows, columns and cell length are bounded. A CSV
loses a UTF-8 BOM before its encoding (UTF-8 or GB18030) is guessed. Every refusal is one
exception, ``SheetError`` (a ``ValidationError``), with a Chinese message and, where known, the
row and the cell address. The limits are settings (``YIWANG_SHEET_*``).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO
from xml.etree.ElementTree import ParseError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from openpyxl.utils.exceptions import InvalidFileException

CSV_NAMES = (".csv", ".txt")
# One physical CSV line longer than this is refused before the csv module sees it.
MAX_CSV_LINE_CHARS = 1 << 20
# Parts above this size must compress no better than YIWANG_SHEET_MAX_RATIO (small parts may).
RATIO_FLOOR_BYTES = 1 << 20
EXCEL_MAX_ROWS, EXCEL_MAX_COLUMNS = 1_048_576, 16_384
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension ref="[A-Z]+\d+(?::[A-Z]+(\d+))?"')
# What a broken .xlsx raises from zipfile, zlib, the XML parser or openpyxl.
_BROKEN = (InvalidFileException, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, ValueError, TypeError, IndexError,
           AttributeError, OSError, EOFError, ParseError, zlib.error)  # fmt: skip


class SheetError(ValidationError):
    """The file is refused: ``message`` in Chinese, ``row`` (1 = header) and ``cell`` (e.g. "B3") if known."""

    def __init__(self, message: str, *, row: int | None = None, cell: str = "", code: str = "invalid"):
        super().__init__(message, code=code)  # code "unreadable": not an .xlsx / broken, "too_big": bounds
        self.row, self.cell = row, cell


@dataclass
class Sheet:
    header: list[str]  # the first row, as text (stripped, without a BOM)
    rows: Iterator[tuple[int, list[str]]]  # (row number as in the spreadsheet, cells as text); blank rows skipped
    estimate: int | None  # about how many data rows, for a progress bar


@dataclass(frozen=True)
class Limits:
    uncompressed: int
    part: int
    ratio: int
    members: int
    rows: int
    columns: int
    cell_chars: int

    @classmethod
    def from_settings(cls, *, max_rows: int | None = None) -> Limits:
        return cls(
            uncompressed=settings.YIWANG_SHEET_MAX_UNCOMPRESSED,
            part=settings.YIWANG_SHEET_MAX_PART,
            ratio=settings.YIWANG_SHEET_MAX_RATIO,
            members=settings.YIWANG_SHEET_MAX_MEMBERS,
            rows=max_rows or settings.YIWANG_SHEET_MAX_ROWS,
            columns=settings.YIWANG_SHEET_MAX_COLUMNS,
            cell_chars=settings.YIWANG_SHEET_MAX_CELL_CHARS,
        )


def cell_text(value) -> str:
    """A cell value as text: a mobile typed as a number (13800138000.0) gives its digits, a date ISO."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value).upper() if abs(value) >= 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def sheet_kind(handle: IO[bytes], name: str) -> str:
    """ "csv" or "xlsx" from the first bytes and the name; anything else is refused in Chinese."""
    head = handle.read(8)
    handle.seek(0)
    if not head:
        raise SheetError(_("文件是空的。"), code="empty")
    lower = (name or "").lower()
    if head.startswith(b"PK\x03\x04"):
        if lower.endswith(CSV_NAMES):
            raise SheetError(_("文件内容是 Excel 表格，但扩展名是 .csv，请检查后重新上传。"))
        return "xlsx"
    if lower.endswith((".xlsx", ".xlsm")):
        raise SheetError(_("无法读取该 Excel 文件：请另存为 .xlsx 或 .csv 后再上传。"), code="unreadable")
    if head.startswith(b"\xd0\xcf\x11\xe0") or lower.endswith(".xls"):
        raise SheetError(_("不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 或 .csv 后再上传。"))
    if not lower.endswith(CSV_NAMES) or b"\x00" in head:
        raise SheetError(_("只支持 .csv 或 .xlsx 格式的表格文件。"))
    return "csv"


def sheet_check(handle: IO[bytes], name: str) -> str:
    """ "csv" or "xlsx", after the cheap checks an upload view can afford: the kind, and an .xlsx's zip directory."""
    kind = sheet_kind(handle, name)
    if kind == "xlsx":
        _check_archive(handle, Limits.from_settings())
        handle.seek(0)
    return kind


def sheet_open(handle: IO[bytes], name: str = "", *, kind: str | None = None, max_rows: int | None = None) -> Sheet:
    """Open an uploaded CSV or .xlsx for reading row by row.

    ``kind`` ("csv" / "xlsx") comes from the content and name unless given; ``max_rows`` replaces
    YIWANG_SHEET_MAX_ROWS for an importer with its own bound.
    """
    limits = Limits.from_settings(max_rows=max_rows)
    kind = kind or sheet_kind(handle, name)
    handle.seek(0)
    if kind == "xlsx":
        return _open_xlsx(handle, limits)
    return _open_csv(handle, limits)


# --- bounds shared by both formats ----------------------------------------------------------------


def _bounded(rows: Iterator[tuple[int, list[str]]], limits: Limits) -> Iterator[tuple[int, list[str]]]:
    """Skip blank rows; refuse too many rows, columns or characters in a cell."""
    count = 0
    for number, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        count += 1
        if count > limits.rows:
            raise SheetError(_("文件超过 %(n)s 行数据的上限，请拆分后再上传。") % {"n": f"{limits.rows:,}"}, row=number)
        _check_cells(number, cells, limits)
        yield number, cells


def _check_cells(number: int, cells: list[str], limits: Limits) -> None:
    width = len(cells)
    while width > limits.columns and not cells[width - 1]:
        width -= 1
    if width > limits.columns:
        raise SheetError(
            _("第 %(row)s 行有 %(n)s 列，超过 %(max)s 列的上限。") % {"row": number, "n": width, "max": limits.columns},
            row=number,
        )
    if not cells or max(map(len, cells)) <= limits.cell_chars:
        return
    for index, value in enumerate(cells):
        if len(value) > limits.cell_chars:
            address = _address(number, index + 1)
            raise SheetError(
                _("单元格 %(cell)s 超过 %(max)s 个字符的上限。") % {"cell": address, "max": f"{limits.cell_chars:,}"},
                row=number,
                cell=address,
            )


def _address(row: int, column: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"{get_column_letter(min(column, 16384))}{row}"


# --- .xlsx ---------------------------------------------------------------------------------------


class _NoCachedValue:
    """A formula cell saved without its result (files written by programs, not by Excel)."""


NO_CACHED_VALUE = _NoCachedValue()


def _check_archive(handle: IO[bytes], limits: Limits) -> None:
    """Refuse a zip whose parts would decompress beyond the limits, from its directory alone.

    zipfile never inflates a part beyond the size its directory states, so these sizes hold.
    """
    try:
        with zipfile.ZipFile(handle) as archive:
            members = archive.infolist()
    except _BROKEN:
        raise SheetError(_("无法读取该 Excel 文件：文件已损坏或不是 .xlsx 格式。"), code="unreadable") from None
    problem = _archive_problem(members, limits)
    if problem:
        message = _("Excel 文件解压后过大（疑似压缩炸弹），已拒绝：%(detail)s") % {"detail": problem}
        raise SheetError(message, code="too_big")


def _archive_problem(members: list[zipfile.ZipInfo], limits: Limits) -> str:
    if len(members) > limits.members:
        return _("包含 %(n)s 个部件，上限 %(max)s") % {"n": len(members), "max": limits.members}
    for member in members:
        name, size, packed = member.filename[:80], member.file_size, max(1, member.compress_size)
        streamed = member.filename.startswith("xl/worksheets/") and member.filename.endswith(".xml")
        if not streamed and size > limits.part:  # read whole into memory (shared strings, styles …)
            return _("部件 %(name)s 解压后 %(mb)s MB，上限 %(max)s MB") % {
                "name": name, "mb": size >> 20, "max": limits.part >> 20}  # fmt: skip
        if size > RATIO_FLOOR_BYTES and size > limits.ratio * packed:
            return _("部件 %(name)s 压缩比 %(ratio)s:1，上限 %(max)s:1") % {
                "name": name, "ratio": size // packed, "max": limits.ratio}  # fmt: skip
    total = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if total > limits.uncompressed:
        return _("解压后共 %(mb)s MB，上限 %(max)s MB") % {"mb": total >> 20, "max": limits.uncompressed >> 20}
    if total > RATIO_FLOOR_BYTES and total > limits.ratio * packed:
        return _("压缩比 %(ratio)s:1，上限 %(max)s:1") % {"ratio": total // packed, "max": limits.ratio}
    return ""


def _parser(source, reader):
    from openpyxl.worksheet._reader import FORMULA_TAG, VALUE_TAG, WorkSheetParser

    class CachedValueParser(WorkSheetParser):
        """Reads cached results (data_only) and marks a formula that has none, instead of an empty cell."""

        def parse_cell(self, element):
            cell = super().parse_cell(element)
            if cell["value"] is None and element.find(FORMULA_TAG) is not None:
                # openpyxl and other writers save <v/>; only a text result (t="str") may be empty
                cached = element.find(VALUE_TAG)
                if cached is None or (not cached.text and element.get("t") != "str"):
                    cell["value"] = NO_CACHED_VALUE
            return cell

        def parse_row(self, row):
            # as openpyxl's, without keeping each row's height and style (memory grows per row)
            number = row.get("r")
            self.row_counter = int(float(number)) if number else self.row_counter + 1
            self.col_counter = 0
            return self.row_counter, [self.parse_cell(element) for element in row]

    wb = reader.wb
    return CachedValueParser(source, reader.shared_strings, data_only=True, epoch=wb.epoch,
                             date_formats=wb._date_formats, timedelta_formats=wb._timedelta_formats)  # fmt: skip


def _first_sheet(reader) -> str:
    for _sheet, rel in reader.parser.find_sheets():
        if rel.target in reader.valid_files and "chartsheet" not in rel.Type:
            return rel.target
    raise SheetError(_("文件是空的。"), code="empty")


def _parsed_rows(source, parser) -> Iterator[tuple[int, list[dict]]]:
    """The <row> elements of a worksheet one by one, in constant memory.

    Unlike openpyxl's read-only sheet, parsed rows are dropped from the tree, a row is refused
    while it grows past Excel's 16,384 cells, and nothing after <sheetData> is read.
    """
    from openpyxl.xml.constants import SHEET_MAIN_NS
    from openpyxl.xml.functions import iterparse

    row_tag, cell_tag, data_tag = f"{{{SHEET_MAIN_NS}}}row", f"{{{SHEET_MAIN_NS}}}c", f"{{{SHEET_MAIN_NS}}}sheetData"
    data, cells, rows = None, 0, 0
    for event, element in iterparse(source, events=("start", "end")):
        if event == "start":
            if element.tag == data_tag:
                data = element
            continue
        if element.tag == cell_tag:
            cells += 1
            if cells > EXCEL_MAX_COLUMNS:
                raise SheetError(_("第 %(row)s 行的单元格超过 Excel 的上限。") % {"row": parser.row_counter + 1})
        elif element.tag == row_tag:
            rows += 1
            if rows > EXCEL_MAX_ROWS:
                raise SheetError(_("工作表超过 Excel 的 %(n)s 行上限。") % {"n": f"{EXCEL_MAX_ROWS:,}"})
            yield parser.parse_row(element)
            cells = 0
            element.clear()
            if data is not None:
                data.clear()
        elif element.tag == data_tag:
            break


def _open_xlsx(handle: IO[bytes], limits: Limits) -> Sheet:
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.styles.stylesheet import apply_stylesheet

    _check_archive(handle, limits)
    handle.seek(0)
    unreadable = _("无法读取该 Excel 文件：文件已损坏或不是 .xlsx 格式。")
    try:
        # What load_workbook(read_only=True) reads, but not its worksheets: it would scan a
        # sheet without <dimension> whole on opening, keeping an element per row.
        reader = ExcelReader(handle, read_only=True, data_only=True)
        reader.read_manifest()
        reader.read_strings()
        reader.read_workbook()
        apply_stylesheet(reader.archive, reader.wb)
        path = _first_sheet(reader)
        source = reader.archive.open(path)
        head = reader.archive.open(path).read(64 * 1024)
    except SheetError:
        raise
    except _BROKEN:
        raise SheetError(unreadable, code="unreadable") from None
    parser = _parser(source, reader)

    def cells() -> Iterator[tuple[int, list[str]]]:
        try:
            for number, row in _parsed_rows(source, parser):
                yield number, _row_values(number, row, limits)
        except SheetError:
            raise
        except _BROKEN:
            raise SheetError(unreadable, code="unreadable") from None
        finally:
            source.close()
            reader.archive.close()

    rows = cells()
    header_row = next(rows, None)
    if header_row is None:
        raise SheetError(_("文件是空的。"), code="empty")
    number, header = header_row
    _check_cells(number, header, limits)
    if number != 1:  # the header is the first row, even when it is blank
        rows = _chain([(number, header)], rows)
        header = []
    header = [h.strip().lstrip("\ufeff") for h in header]
    return Sheet(header=header, rows=_bounded(rows, limits), estimate=_dimension_rows(head))


def _dimension_rows(head: bytes) -> int | None:
    """Data rows by the sheet's <dimension ref="A1:C1000"> (for a progress bar), if it has one."""
    found = _DIMENSION.search(head)
    last = int(found.group(1)) if found and found.group(1) else 0
    return last - 1 if last > 1 else None


def _chain(first, rest):
    yield from first
    yield from rest


def _row_values(number: int, row: list[dict], limits: Limits) -> list[str]:
    """One parsed row as a list of text, by column; refused before building an over-wide list."""
    filled = [cell for cell in row if cell["value"] is not None and cell["value"] != ""]
    if not filled:
        return []
    width = max(cell["column"] for cell in filled)
    if width > limits.columns:
        raise SheetError(
            _("第 %(row)s 行有 %(n)s 列，超过 %(max)s 列的上限。") % {"row": number, "n": width, "max": limits.columns},
            row=number,
        )
    values = [""] * width
    for cell in filled:
        if cell["value"] is NO_CACHED_VALUE:
            address = _address(number, cell["column"])
            raise SheetError(
                _("单元格 %(cell)s 是公式，但文件中没有它的计算结果：请在 Excel 中打开并保存后再上传。")
                % {"cell": address},
                row=number,
                cell=address,
            )
        values[cell["column"] - 1] = cell_text(cell["value"])
    return values


# --- CSV -----------------------------------------------------------------------------------------


class _Borrowed(io.BufferedIOBase):
    """The upload seen as a buffer that TextIOWrapper may close without closing the upload."""

    def __init__(self, handle: IO[bytes]):
        self._handle = handle

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._handle.read(-1 if size is None else size)

    read1 = read


def _encoding(sample: bytes) -> str:
    """UTF-8, or GB18030 (WPS / Excel on Chinese Windows) if the sample, BOM removed, is not UTF-8."""
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a character cut at the end of the sample
            return "gb18030"
    return "utf-8"


class _BadBytes(Exception):
    """Bytes the guessed encoding cannot decode, on the line being read (not in a chunk read ahead)."""


# surrogateescape turns undecodable bytes into these, so the row holding them can be named.
_UNDECODED = re.compile("[\udc80-\udcff]")


def _lines(text: io.TextIOBase) -> Iterator[str]:
    while line := text.readline(MAX_CSV_LINE_CHARS + 1):
        if len(line) > MAX_CSV_LINE_CHARS:
            raise SheetError(_("CSV 文件中有一行超过 %(n)s 个字符，已拒绝。") % {"n": f"{MAX_CSV_LINE_CHARS:,}"})
        if not line.isascii() and _UNDECODED.search(line):
            raise _BadBytes
        yield line


def _open_csv(handle: IO[bytes], limits: Limits) -> Sheet:
    sample = handle.read(64 * 1024)
    size = _size(handle)
    start = len(codecs.BOM_UTF8) if sample.startswith(codecs.BOM_UTF8) else 0
    handle.seek(start)
    text = io.TextIOWrapper(_Borrowed(handle), encoding=_encoding(sample[start:]), errors="surrogateescape", newline="")
    reader = csv.reader(_lines(text))
    bad_encoding = _("文件编码有误：请以 UTF-8 或 GB18030（GBK）编码保存为 CSV。")
    try:
        header = next(reader)
    except StopIteration:
        raise SheetError(_("文件是空的。"), code="empty") from None
    except (_BadBytes, csv.Error):
        raise SheetError(_("无法读取表头：请以 UTF-8 或 GB18030（GBK）编码保存为 CSV。"), row=1) from None

    def cells() -> Iterator[tuple[int, list[str]]]:
        number = 1
        try:
            for number, row in enumerate(reader, start=2):
                yield number, row
        except _BadBytes:
            raise SheetError(bad_encoding, row=number + 1) from None
        except csv.Error as exc:
            raise SheetError(_("CSV 文件第 %(row)s 行格式有误：%(error)s") % {"row": number + 1, "error": exc},
                             row=number + 1) from None  # fmt: skip

    _check_cells(1, header, limits)
    estimate = None
    lines = sample.count(b"\n")
    if lines and size:
        estimate = max(1, lines - 1) if len(sample) >= size else max(1, int(size * lines / len(sample)) - 1)
    header = [h.strip().lstrip("\ufeff") for h in header]  # a GB18030-encoded BOM decodes to U+FEFF
    return Sheet(header=header, rows=_bounded(cells(), limits), estimate=estimate)


def _size(handle: IO[bytes]) -> int | None:
    try:
        handle.seek(0, io.SEEK_END)
        return handle.tell()
    except (OSError, AttributeError, ValueError):
        return None
