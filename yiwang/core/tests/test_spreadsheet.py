"""The one spreadsheet reader: zip bombs refused before parsing, bounds, encodings, formulas.

The builders here (``bomb_xlsx``, ``hand_xlsx``) are also used by bench/spreadsheet_bomb.py.
"""

from __future__ import annotations

import codecs
import functools
import io
import zipfile

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from yiwang.core.spreadsheet import SheetError, sheet_open

BOMB_BYTES = 200 * 1024 * 1024


@pytest.fixture(autouse=True)
def _chinese():
    """The messages are asserted in Chinese, whatever an earlier test left active."""
    with translation.override("zh-hans"):
        yield


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="xl/workbook.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
    "</Relationships>"
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="worksheets/sheet1.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>'
    '<Relationship Id="rId2" Target="sharedStrings.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>'
    "</Relationships>"
)
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def hand_xlsx(sheet_data: str, *, shared: list[str] = (), big: str = "", big_bytes: int = 0) -> bytes:
    """An .xlsx written by hand: ``sheet_data`` is the XML inside <sheetData>; ``big`` ("inline" or
    "shared") streams a string of ``big_bytes`` "A"s into the sheet's cell A2 or the shared strings."""
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        sheet_head = f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{_MAIN}"><sheetData>{sheet_data}'
        strings_head = f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{_MAIN}">'
        strings_head += "".join(f"<si><t>{s}</t></si>" for s in shared)
        if big == "inline":
            _write_big(archive, "xl/worksheets/sheet1.xml", sheet_head + '<row r="2"><c r="A2" t="inlineStr"><is><t>',
                       big_bytes, "</t></is></c></row></sheetData></worksheet>")  # fmt: skip
        else:
            archive.writestr("xl/worksheets/sheet1.xml", sheet_head + "</sheetData></worksheet>")
        if big == "shared":
            _write_big(archive, "xl/sharedStrings.xml", strings_head + "<si><t>", big_bytes, "</t></si></sst>")
        else:
            archive.writestr("xl/sharedStrings.xml", strings_head + "</sst>")
    return body.getvalue()


def _write_big(archive: zipfile.ZipFile, name: str, head: str, size: int, tail: str) -> None:
    chunk = b"A" * (1 << 20)
    with archive.open(name, "w", force_zip64=True) as part:
        part.write(head.encode())
        for _ in range(size // len(chunk)):
            part.write(chunk)
        part.write(tail.encode())


@functools.cache
def bomb_xlsx(kind: str = "inline", size: int = BOMB_BYTES) -> bytes:
    """About 200 KB that inflate to ``size`` bytes: one huge inline string, or one huge shared string."""
    header = '<row r="1"><c r="A1" t="inlineStr"><is><t>手机号</t></is></c></row>'
    return hand_xlsx(header, big=kind, big_bytes=size)


def _row(number: int, *cells: str) -> str:
    return f'<row r="{number}">{"".join(cells)}</row>'


def _text(address: str, value: str) -> str:
    return f'<c r="{address}" t="inlineStr"><is><t>{value}</t></is></c>'


def xlsx(*rows) -> io.BytesIO:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    body = io.BytesIO()
    book.save(body)
    body.seek(0)
    return body


def read_all(data, name="a.xlsx", **kwargs) -> tuple[list[str], list[tuple[int, list[str]]]]:
    handle = data if hasattr(data, "read") else io.BytesIO(data)
    sheet = sheet_open(handle, name, **kwargs)
    return sheet.header, list(sheet.rows)


@pytest.fixture(scope="module")
def inline_bomb() -> bytes:
    return bomb_xlsx("inline")


@pytest.fixture(scope="module")
def shared_bomb() -> bytes:
    return bomb_xlsx("shared")


class TestBomb:
    def test_the_bomb_is_small_and_huge(self, inline_bomb):
        assert len(inline_bomb) < 300 * 1024
        assert sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(inline_bomb)).infolist()) > BOMB_BYTES

    @pytest.mark.parametrize("bomb", ["inline_bomb", "shared_bomb"])
    def test_refused_from_the_zip_directory(self, bomb, request):
        with pytest.raises(SheetError, match="疑似压缩炸弹") as caught:
            read_all(request.getfixturevalue(bomb))
        assert caught.value.code == "too_big"

    def test_a_part_read_whole_is_bounded_whatever_the_ratio(self, settings):
        settings.YIWANG_SHEET_MAX_PART = 1 << 20
        settings.YIWANG_SHEET_MAX_RATIO = 10_000
        with pytest.raises(SheetError, match=r"sharedStrings\.xml 解压后 2 MB，上限 1 MB"):
            read_all(bomb_xlsx("shared", size=2 << 20))

    def test_total_uncompressed_size_is_bounded(self, settings):
        settings.YIWANG_SHEET_MAX_UNCOMPRESSED = 2 << 20
        settings.YIWANG_SHEET_MAX_RATIO = 10_000
        with pytest.raises(SheetError, match="解压后共 3 MB，上限 2 MB"):
            read_all(bomb_xlsx("inline", size=3 << 20))

    def test_number_of_parts_is_bounded(self, settings):
        settings.YIWANG_SHEET_MAX_MEMBERS = 5
        with pytest.raises(SheetError, match="包含 6 个部件，上限 5"):
            read_all(hand_xlsx(_row(1, _text("A1", "手机号"))))

    def test_an_ordinary_workbook_passes(self):
        header, rows = read_all(xlsx(["手机号", "姓名"], [13800138000, "王小明"], [None, None], ["13800138001", "李"]))
        assert header == ["手机号", "姓名"]
        assert rows == [(2, ["13800138000", "王小明"]), (4, ["13800138001", "李"])]

    def test_a_hand_written_workbook_passes(self):
        header, rows = read_all(hand_xlsx(_row(1, _text("A1", "手机号")) + _row(2, _text("A2", "13800138000"))))
        assert (header, rows) == (["手机号"], [(2, ["13800138000"])])


class TestBounds:
    def test_too_many_rows(self):
        data = xlsx(["手机号"], *[[f"1380013800{i}"] for i in range(4)])
        assert len(read_all(data, max_rows=4)[1]) == 4
        data.seek(0)
        with pytest.raises(SheetError, match="文件超过 3 行数据的上限") as caught:
            read_all(data, max_rows=3)
        assert caught.value.row == 5

    def test_too_many_rows_in_a_csv(self, settings):
        settings.YIWANG_SHEET_MAX_ROWS = 2
        with pytest.raises(SheetError, match="文件超过 2 行数据的上限"):
            read_all("手机号\n1\n2\n3\n".encode(), "a.csv")

    def test_too_many_columns_before_the_row_is_built(self, settings):
        settings.YIWANG_SHEET_MAX_COLUMNS = 10
        data = hand_xlsx(_row(1, _text("A1", "手机号")) + _row(2, _text("XFD2", "x")))
        with pytest.raises(SheetError, match="第 2 行有 16384 列，超过 10 列的上限"):
            read_all(data)

    def test_too_many_columns_in_a_csv(self, settings):
        settings.YIWANG_SHEET_MAX_COLUMNS = 3
        with pytest.raises(SheetError, match="第 1 行有 4 列"):
            read_all(b"a,b,c,d\n1,2,3,4\n", "a.csv")

    def test_a_cell_too_long_names_its_address(self, settings):
        settings.YIWANG_SHEET_MAX_CELL_CHARS = 100
        data = xlsx(["手机号", "姓名"], ["13800138000", "王" * 101])
        with pytest.raises(SheetError, match="单元格 B2 超过 100 个字符的上限") as caught:
            read_all(data)
        assert (caught.value.row, caught.value.cell) == (2, "B2")

    def test_a_csv_line_without_end_is_refused(self):
        with pytest.raises(SheetError, match="有一行超过"):
            read_all(b"a\n" + b"x" * (1 << 21), "a.csv")

    def test_a_row_growing_past_excels_cells_is_refused_while_parsed(self):
        data = hand_xlsx(_row(1, _text("A1", "手机号")) + _row(2, "<c/>" * 16_385))
        with pytest.raises(SheetError, match="第 2 行的单元格超过 Excel 的上限"):
            read_all(data)

    def test_the_estimate_comes_from_the_dimension(self):
        assert sheet_open(xlsx(["手机号"], ["1"], ["2"], ["3"]), "a.xlsx").estimate == 3
        assert sheet_open(io.BytesIO(hand_xlsx(_row(1, _text("A1", "a")))), "a.xlsx").estimate is None

    def test_styled_empty_cells_far_right_do_not_count(self, settings):
        settings.YIWANG_SHEET_MAX_COLUMNS = 10
        data = hand_xlsx(_row(1, _text("A1", "手机号"), '<c r="XFD1" s="1"/>') + _row(2, _text("A2", "1")))
        assert read_all(data) == (["手机号"], [(2, ["1"])])


class TestEncodings:
    def test_gb18030_with_a_utf8_bom(self):
        data = codecs.BOM_UTF8 + "手机号,姓名\n13800138000,王小明\n".encode("gb18030")
        assert read_all(data, "a.csv") == (["手机号", "姓名"], [(2, ["13800138000", "王小明"])])

    def test_utf8_with_a_bom(self):
        data = "手机号,姓名\n13800138000,王小明\n".encode("utf-8-sig")
        assert read_all(data, "a.csv") == (["手机号", "姓名"], [(2, ["13800138000", "王小明"])])

    def test_gb18030_without_a_bom_and_with_its_own(self):
        for text in ("手机号,姓名\n1,王\n", "\ufeff手机号,姓名\n1,王\n"):
            assert read_all(text.encode("gb18030"), "a.csv") == (["手机号", "姓名"], [(2, ["1", "王"])])

    def test_bad_bytes_later_in_a_utf8_file(self):
        data = "手机号\n".encode() + "1,王\n".encode() * 40_000 + b"\xff\xfe\n" + b"2\n" * 100
        with pytest.raises(SheetError, match="文件编码有误") as caught:
            read_all(data, "a.csv")
        assert caught.value.row == 40_002

    def test_the_upload_stays_open(self):
        upload = SimpleUploadedFile("a.csv", "手机号\n1\n".encode())
        read_all(upload, "a.csv")
        assert not upload.closed


class TestFormulas:
    def test_a_formula_without_cached_value_names_its_cell(self):
        data = xlsx(["手机号", "金额"], ["13800138000", "=SUM(1,2)"])  # openpyxl saves no result
        with pytest.raises(SheetError, match="单元格 B2 是公式，但文件中没有它的计算结果") as caught:
            read_all(data)
        assert (caught.value.row, caught.value.cell) == (2, "B2")

    def test_a_formula_with_cached_value_reads_the_value(self):
        cells = (_text("A2", "1") + '<c r="B2"><f>SUM(1,2)</f><v>3</v></c>'
                 + '<c r="C2" t="str"><f>""</f><v></v></c>')  # fmt: skip
        data = hand_xlsx(_row(1, _text("A1", "a"), _text("B1", "b"), _text("C1", "c")) + _row(2, cells))
        assert read_all(data)[1] == [(2, ["1", "3"])]


class TestKinds:
    @pytest.mark.parametrize(
        ("name", "content", "fragment", "code"),
        [
            ("a.csv", b"", "空的", "empty"),
            ("a.xlsx", b"not a zip", "Excel", "unreadable"),
            ("a.xlsx", b"PK\x03\x04broken", "已损坏", "unreadable"),
            ("a.xls", b"\xd0\xcf\x11\xe0\xa1\xb1", "旧版", "invalid"),
            ("a.pdf", b"%PDF-1.4", "只支持", "invalid"),
        ],
    )
    def test_not_a_sheet(self, name, content, fragment, code):
        with pytest.raises(SheetError, match=fragment) as caught:
            read_all(content, name)
        assert caught.value.code == code
