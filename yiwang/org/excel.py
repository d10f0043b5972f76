"""Excel import and export of units and people (单位、人员批量导入导出).

Exports hold what the org selectors show the user. Imports are all-or-nothing: every row is
checked first, then every row is written through the org services inside one transaction,
so a file with any bad row writes nothing. Imported people get no usable password.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import openpyxl
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models.functions import Lower
from django.utils import translation
from django.utils.translation import gettext as _
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.comments import Comment
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from yiwang.core.audit import audit_record
from yiwang.core.permissions import can_see_unit
from yiwang.core.spreadsheet import Sheet, SheetError, sheet_open
from yiwang.core.validators import normalise_mobile, validate_mobile, validate_visible_text

from . import selectors, services
from .models import Post, Role, Unit, User

MAX_ROWS = 10_000
PROGRESS_EVERY = 100  # rows between two progress reports of a background import
EXAMPLE_PREFIX = "示例"

# Headers are part of the file format, so they stay Chinese whatever the UI language.
# (header, key, required on import)
UNIT_COLUMNS = [
    ("单位代码", "code", True),
    ("单位名称", "name", True),
    ("简称", "short_name", False),
    ("类型", "kind", True),
    ("上级单位代码", "parent_code", True),
    ("状态", "status", False),
    ("排序", "sort_order", False),
    ("联系电话", "phone", False),
    ("地址", "address", False),
]
PERSON_COLUMNS = [
    ("用户名", "username", True),
    ("姓名", "full_name", True),
    ("手机号码", "mobile", False),
    ("电子邮箱", "email", False),
    ("单位代码", "unit_code", True),
    ("角色", "role", True),
    ("职务", "title", False),
    ("领导类别", "leader_rank", False),
    ("状态", "status", False),
]
UNIT_EXAMPLE = ["示例-BL-EDU-01", "区教育局基础教育科", "基教科", "科室", "EDU", "正常", 100, "021-12345678", ""]
PERSON_EXAMPLE = ["示例-zhangsan", "张三", "13800138000", "zhangsan@example.gov.cn", "EDU", "staff", "科员", "", "启用"]

PERSON_ACTIVE, PERSON_INACTIVE = "启用", "停用"
_USERNAME_RE = re.compile(r"^[\w.@+-]+$")
_HEADER_FONT = Font(bold=True)
_EXAMPLE_FONT = Font(italic=True, color="808080")


def no_password_note() -> str:
    return _("导入的人员没有可用的登录密码，须由单位管理员为其设置（重置）密码后方可登录。")


@dataclass
class RowError:
    row: int  # the Excel row number the user sees; file-level problems are reported on row 1
    column: str  # the column header, "" for the whole row or file
    message: str


@dataclass
class ImportResult:
    created: int = 0
    errors: list[RowError] = field(default_factory=list)


# --- export --------------------------------------------------------------------------------


def units_export(*, user: User, q: str = "", kind: str = "", status: str = "") -> bytes:
    """The units the user may see (optionally filtered as on the list page), parents first."""
    with translation.override("zh-hans"):
        rows = [
            [
                unit.code,
                unit.name,
                unit.short_name,
                str(unit.get_kind_display()),
                unit.parent.code if unit.parent else "",
                str(unit.get_status_display()),
                unit.sort_order,
                unit.phone,
                unit.address,
            ]
            for unit in selectors.unit_list(user=user, q=q, kind=kind, status=status)
        ]
    audit_record(actor=user, action="org.unit.export", object_type="org.unit", changes={"rows": len(rows)})
    book = _workbook(_("单位"), [h for h, _key, _req in UNIT_COLUMNS], rows)
    return _to_bytes(book)


def people_export(*, user: User, q: str = "", unit: int | None = None, role: str = "", active: str = "") -> bytes:
    """The people the user may see, one row per active post in a unit the user may see."""
    rows = []
    for person in selectors.person_list(user=user, q=q, unit=unit, role=role, active=active):
        for post in person.active_posts:
            if not can_see_unit(user, post.unit_id):
                continue
            rows.append(
                [
                    person.username,
                    person.full_name,
                    person.mobile or "",
                    person.email,
                    post.unit.code,
                    post.role.code,
                    post.title,
                    post.leader_rank,
                    PERSON_ACTIVE if person.is_active else PERSON_INACTIVE,
                ]
            )
    audit_record(actor=user, action="org.person.export", object_type="org.user", changes={"rows": len(rows)})
    book = _workbook(_("人员"), [h for h, _key, _req in PERSON_COLUMNS], rows)
    return _to_bytes(book)


def units_template() -> bytes:
    """An empty import file: the header row, one grey example row and a sheet of instructions."""
    headers = [h for h, _key, _req in UNIT_COLUMNS]
    book = _workbook(_("单位"), headers, [], example=UNIT_EXAMPLE)
    with translation.override("zh-hans"):
        kinds = "、".join(f"{label}（{code}）" for code, label in Unit.Kind.choices)
    _add_notes(
        book,
        [
            _("每行一个单位。必填：单位代码、单位名称、类型；上级单位代码留空为顶级单位（仅平台管理员）。"),
            _("第一列以“示例”开头的行不会导入，可直接删除。"),
            _("单位代码全区唯一，不能与已有单位或文件中其他行重复。"),
            _("上级单位代码须为已有单位，或本文件中的另一行；您须有权管理该上级单位。"),
            _("类型可填：%(kinds)s。") % {"kinds": kinds},
            _("状态留空或填“正常”；排序为非负整数，留空为 100。"),
            _("任何一行有误则整个文件不导入；最多 %(max)s 行。") % {"max": MAX_ROWS},
        ],
    )
    return _to_bytes(book)


def people_template() -> bytes:
    """An empty import file for people, with the no-password rule on the header and in the notes."""
    headers = [h for h, _key, _req in PERSON_COLUMNS]
    book = _workbook(_("人员"), headers, [], example=PERSON_EXAMPLE)
    book.active["A1"].comment = Comment(no_password_note(), "yiwang")
    roles = "、".join(f"{r.code}（{r.name}）" for r in _assignable_roles())
    _add_notes(
        book,
        [
            _("每行一个岗位。必填列：用户名、姓名、单位代码、角色。"),
            _("同一用户名写多行表示一人兼多个岗位；姓名、手机号码、电子邮箱、状态以该用户名的第一行为准。"),
            _("第一列以“示例”开头的行不会导入，可直接删除。"),
            _("用户名、手机号码不能与已有人员或文件中其他人员重复。"),
            _("单位代码须为已有单位，且您有权管理该单位。"),
            _("角色填角色代码或名称：%(roles)s。") % {"roles": roles},
            _("领导类别留空表示非领导，或填 deputy（分管领导）、principal（主要领导）。"),
            _("状态留空或填“启用”“停用”。"),
            no_password_note(),
            _("任何一行有误则整个文件不导入；最多 %(max)s 行。") % {"max": MAX_ROWS},
        ],
    )
    return _to_bytes(book)


def _display_width(value) -> int:
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def _workbook(title: str, headers: list[str], rows: Iterable[Sequence], *, example: Sequence | None = None):
    """One sheet with a bold, frozen header row; every text is stored as text, never as a formula."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font = _HEADER_FONT
    widths = [_display_width(h) for h in headers]
    body = [example, *rows] if example else rows
    for row_number, values in enumerate(body, start=2):
        for column, value in enumerate(values, start=1):
            cell = sheet.cell(row=row_number, column=column)
            if value == "":
                continue
            if isinstance(value, str):
                cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
                # A value like "=HYPERLINK(…)" must stay text (spreadsheet formula injection).
                cell.data_type = "s"
                cell.number_format = "@"
            else:
                cell.value = value
            if example and row_number == 2:
                cell.font = _EXAMPLE_FONT
            widths[column - 1] = max(widths[column - 1], _display_width(value))
    for column, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = min(max(width + 2, 8), 50)
    sheet.freeze_panes = "A2"
    return book


def _add_notes(book, lines: list[str]) -> None:
    sheet = book.create_sheet(_("填写说明"))
    sheet.column_dimensions["A"].width = 100
    for line in lines:
        sheet.append([line])


def _to_bytes(book) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --- reading -------------------------------------------------------------------------------

Record = dict[str, str]


def _read(file, columns) -> tuple[list[tuple[int, Record]], list[RowError]]:
    """The data rows of the first sheet as (row number, {key: text}), or file-level errors."""
    try:
        return _read_sheet(sheet_open(file, kind="xlsx"), columns)
    except SheetError as error:
        if error.code == "unreadable":
            return [], [RowError(1, "", _("文件无法读取，请使用本页提供的模板（.xlsx）"))]
        if error.code == "empty":
            return [], [RowError(1, "", _("文件中没有数据行"))]
        return [], [RowError(error.row or 1, error.cell, error.message)]


def _read_sheet(sheet: Sheet, columns) -> tuple[list[tuple[int, Record]], list[RowError]]:
    no_data = [RowError(1, "", _("文件中没有数据行"))]
    rows = sheet.rows
    header = sheet.header
    if not any(header):
        return [], no_data
    keys = {h: key for h, key, _req in columns}
    errors, positions = [], {}
    for index, name in enumerate(header):
        if not name:
            continue
        if name not in keys:
            errors.append(RowError(1, name, _("无法识别的列“%(name)s”，请使用模板中的列名") % {"name": name}))
        elif keys[name] in positions:
            errors.append(RowError(1, name, _("列“%(name)s”重复") % {"name": name}))
        else:
            positions[keys[name]] = index
    for name, key, required in columns:
        if required and key not in positions:
            errors.append(RowError(1, name, _("缺少必填列“%(name)s”") % {"name": name}))
    if errors:
        return [], errors
    data = []
    for number, values in rows:
        record = {key: "" for _h, key, _req in columns}
        record |= {key: values[i].strip() for key, i in positions.items() if i < len(values)}
        if not any(record.values()):
            continue
        if values and values[0].strip().startswith(EXAMPLE_PREFIX):
            continue
        if len(data) == MAX_ROWS:
            return [], [RowError(1, "", _("数据行超过 %(max)s 行，请分批导入") % {"max": MAX_ROWS})]
        data.append((number, record))
    if not data:
        return [], no_data
    return data, []


def _text_errors(model, record: Record, keys: Iterable[str], headers: dict[str, str], row: int) -> list[RowError]:
    """Cells longer than their field, or holding invisible/direction-changing characters."""
    errors = []
    for key in keys:
        value = record.get(key, "")
        limit = model._meta.get_field(key).max_length
        if len(value) > limit:
            errors.append(RowError(row, headers[key], _("不能超过 %(limit)s 个字") % {"limit": limit}))
        try:
            validate_visible_text(value)
        except ValidationError as error:
            errors.append(RowError(row, headers[key], error.messages[0]))
    return errors


def _choice_lookup(choices) -> dict[str, str]:
    """Code → code and Chinese label → code (the file format is Chinese whatever the UI language)."""
    lookup = {code: code for code, _label in choices}
    with translation.override("zh-hans"):
        lookup |= {str(label): code for code, label in choices}
    return lookup


Progress = Callable[[int, int], None]  # (rows written, rows to write); runs inside the transaction: no DB writes


def _write_all(
    items: list, write_one: Callable, field_headers: dict[str, str], progress: Progress | None = None
) -> list[RowError]:
    """Write every item in one transaction; on a service error, roll back and report that row."""
    current = None
    total = len(items)
    try:
        with transaction.atomic():
            for done, item in enumerate(items):
                if progress is not None and done % PROGRESS_EVERY == 0:
                    progress(done, total)
                current = item
                write_one(item)
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            return [
                RowError(current.row, field_headers.get(name, ""), message)
                for name, messages in error.message_dict.items()
                for message in messages
            ]
        return [RowError(current.row, "", message) for message in error.messages]
    except PermissionDenied as error:
        return [RowError(current.row, "", str(error) or _("无权进行该操作"))]
    return []


# --- import units --------------------------------------------------------------------------


@dataclass
class _UnitRow:
    row: int
    code: str
    name: str
    short_name: str
    kind: str
    parent_code: str
    parent: Unit | None  # the parent in the database, if it is not in the file
    sort_order: int
    phone: str
    address: str


def units_import(*, actor: User, file, progress: Progress | None = None) -> ImportResult:
    """Create the units in an .xlsx (parents first) through ``services.unit_create``, or none."""
    records, errors = _read(file, UNIT_COLUMNS)
    if errors:
        return ImportResult(errors=errors)
    headers = {key: h for h, key, _req in UNIT_COLUMNS}
    kinds = _choice_lookup(Unit.Kind.choices)
    with translation.override("zh-hans"):
        active_status = {"", Unit.Status.ACTIVE.value, str(Unit.Status.ACTIVE.label)}
    codes = [r["code"] for _n, r in records if r["code"]]
    in_db = {u.code: u for u in Unit.objects.filter(code__in=codes + [r["parent_code"] for _n, r in records])}
    first_row: dict[str, int] = {}
    for number, record in records:
        first_row.setdefault(record["code"], number)

    plans: list[_UnitRow] = []
    for number, record in records:
        row_errors = _text_errors(Unit, record, ("code", "name", "short_name", "phone", "address"), headers, number)
        code, parent_code = record["code"], record["parent_code"]
        if not code:
            row_errors.append(RowError(number, headers["code"], _("必填")))
        elif first_row[code] != number:
            row_errors.append(
                RowError(number, headers["code"], _("单位代码与第 %(row)s 行重复") % {"row": first_row[code]})
            )
        elif code in in_db:
            row_errors.append(RowError(number, headers["code"], _("单位代码已被使用")))
        if not record["name"]:
            row_errors.append(RowError(number, headers["name"], _("必填")))
        kind = kinds.get(record["kind"])
        if kind is None:
            row_errors.append(RowError(number, headers["kind"], _("类型无效，请填写模板说明中的类型")))
        if record["status"] not in active_status:
            row_errors.append(RowError(number, headers["status"], _("导入只能新建状态为“正常”的单位")))
        sort_order = 100
        if record["sort_order"]:
            try:
                sort_order = int(record["sort_order"])
                if not 0 <= sort_order <= 2_147_483_647:
                    raise ValueError
            except ValueError:
                row_errors.append(RowError(number, headers["sort_order"], _("排序须为非负整数")))
        parent = None
        if not parent_code:
            if not services.can_manage_unit(actor, None):
                row_errors.append(
                    RowError(number, headers["parent_code"], _("只有平台管理员可以新建顶级单位，请填写上级单位代码"))
                )
        elif parent_code == code:
            row_errors.append(RowError(number, headers["parent_code"], _("上级单位不能是本单位")))
        elif parent_code in first_row:
            pass  # in this file: checked with the whole tree below
        elif parent_code not in in_db:
            row_errors.append(RowError(number, headers["parent_code"], _("上级单位代码不存在")))
        else:
            parent = in_db[parent_code]
            if not parent.is_active:
                row_errors.append(RowError(number, headers["parent_code"], _("上级单位已合并或撤销")))
            elif not services.can_manage_unit(actor, parent):
                row_errors.append(RowError(number, headers["parent_code"], _("无权在该上级单位下新建单位")))
        errors += row_errors
        plans.append(
            _UnitRow(
                row=number,
                code=code,
                name=record["name"],
                short_name=record["short_name"],
                kind=kind or "",
                parent_code=parent_code,
                parent=parent,
                sort_order=sort_order,
                phone=record["phone"],
                address=record["address"],
            )
        )

    ordered, tree_errors = _parents_first(plans, headers["parent_code"])
    errors += tree_errors
    if errors:
        return ImportResult(errors=sorted(errors, key=lambda e: e.row))

    created: dict[str, Unit] = {}

    def write(plan: _UnitRow) -> None:
        unit = services.unit_create(
            actor=actor,
            name=plan.name,
            code=plan.code,
            kind=plan.kind,
            parent=plan.parent or created.get(plan.parent_code),
            short_name=plan.short_name,
            sort_order=plan.sort_order,
            phone=plan.phone,
            address=plan.address,
        )
        created[unit.code] = unit
        # The actor's visible units are cached per request; a unit admin must see the new
        # unit to create its children next.
        actor.forget_scope()

    field_headers = headers | {"parent": headers["parent_code"]}
    try:
        errors = _write_all(ordered, write, field_headers, progress)
    finally:
        actor.forget_scope()
    return ImportResult(created=0 if errors else len(ordered), errors=errors)


def _parents_first(plans: list[_UnitRow], column: str) -> tuple[list[_UnitRow], list[RowError]]:
    """Order rows so that a parent in the file comes before its children; report cycles."""
    by_code = {p.code: p for p in plans if p.code}
    depth: dict[str, int] = {}
    errors = []
    for plan in plans:
        chain, code = [], plan.code
        while code in by_code and code not in depth and code not in chain:
            chain.append(code)
            code = by_code[code].parent_code
        if code in chain:  # walked back into this chain: a cycle
            cycle = chain[chain.index(code) :]
            text = " → ".join([*cycle, code])
            for member in cycle:
                depth[member] = 0
                if len(cycle) > 1:  # a unit that is its own parent is reported with its row
                    message = _("上级单位形成循环：%(cycle)s") % {"cycle": text}
                    errors.append(RowError(by_code[member].row, column, message))
            chain = chain[: chain.index(code)]
            code = ""
        base = depth.get(code, -1) if code in by_code else -1
        for offset, member in enumerate(reversed(chain), start=1):
            depth[member] = base + offset
    ordered = sorted(plans, key=lambda p: (depth.get(p.code, 0), p.row))
    return ordered, errors


# --- import people -------------------------------------------------------------------------


@dataclass
class _PersonRow:
    row: int
    username: str
    full_name: str
    mobile: str | None
    email: str
    active: bool
    posts: list[services.PostSpec] = field(default_factory=list)


def _assignable_roles() -> list[Role]:
    return list(Role.objects.filter(is_public=False).exclude(code=Role.SYSTEM).order_by("id"))


def people_import(*, actor: User, file, progress: Progress | None = None) -> ImportResult:
    """Create the people in an .xlsx with their posts through ``services.person_create``, or none.

    Rows with the same username are one person with several posts; the first row gives the
    name, mobile, e-mail and status. ``created`` counts people.
    """
    records, errors = _read(file, PERSON_COLUMNS)
    if errors:
        return ImportResult(errors=errors)
    headers = {key: h for h, key, _req in PERSON_COLUMNS}
    ranks = _choice_lookup(Post.LeaderRank.choices)
    roles: dict[str, Role] = {}
    for role in _assignable_roles():
        roles.setdefault(role.name, role)
        roles[role.code] = role
    units = {u.code: u for u in Unit.objects.filter(code__in={r["unit_code"] for _n, r in records})}
    lowered = {r["username"].lower() for _n, r in records}
    taken_usernames = set(
        User.objects.annotate(lower=Lower("username")).filter(lower__in=lowered).values_list("lower", flat=True)
    )
    mobiles = {normalise_mobile(r["mobile"]) for _n, r in records if r["mobile"]}
    taken_mobiles = set(User.objects.filter(mobile__in=mobiles).values_list("mobile", flat=True))

    people: dict[str, _PersonRow] = {}
    mobile_rows: dict[str, int] = {}
    post_rows: dict[tuple[str, int, int], int] = {}
    for number, record in records:
        row_errors = _text_errors(User, record, ("username", "full_name", "email"), headers, number)
        row_errors += _text_errors(Post, record, ("title",), headers, number)
        username = record["username"]
        person = people.get(username.lower())
        if person is None:
            person, person_errors = _person_from_row(number, record, headers, taken_usernames)
            row_errors += person_errors
            if person.mobile:
                if person.mobile in taken_mobiles:
                    row_errors.append(RowError(number, headers["mobile"], _("该手机号码已登记给其他人员")))
                elif person.mobile in mobile_rows:
                    row_errors.append(
                        RowError(
                            number,
                            headers["mobile"],
                            _("手机号码与第 %(row)s 行重复") % {"row": mobile_rows[person.mobile]},
                        )
                    )
                else:
                    mobile_rows[person.mobile] = number
            if username:
                people[username.lower()] = person

        unit = units.get(record["unit_code"])
        if not record["unit_code"]:
            row_errors.append(RowError(number, headers["unit_code"], _("必填")))
        elif unit is None:
            row_errors.append(RowError(number, headers["unit_code"], _("单位代码不存在")))
        elif not unit.is_active:
            row_errors.append(RowError(number, headers["unit_code"], _("该单位已合并或撤销")))
        elif not services.can_manage_unit(actor, unit):
            row_errors.append(RowError(number, headers["unit_code"], _("无权管理该单位")))
        role = roles.get(record["role"])
        if not record["role"]:
            row_errors.append(RowError(number, headers["role"], _("必填")))
        elif role is None:
            row_errors.append(RowError(number, headers["role"], _("角色不存在，请填写模板说明中的角色代码")))
        elif role.scope == Role.Scope.ALL and not actor.has_role(Role.PLATFORM_ADMIN):
            row_errors.append(RowError(number, headers["role"], _("只有平台管理员可以授予该角色")))
        rank = ranks.get(record["leader_rank"])
        if rank is None:
            row_errors.append(
                RowError(number, headers["leader_rank"], _("领导类别须留空，或填 deputy/分管领导、principal/主要领导"))
            )
        if unit is not None and role is not None:
            key = (username.lower(), unit.pk, role.pk)
            if key in post_rows:
                row_errors.append(
                    RowError(number, "", _("与第 %(row)s 行是同一人的同一岗位") % {"row": post_rows[key]})
                )
            post_rows.setdefault(key, number)
        errors += row_errors
        if not row_errors:
            person.posts.append(
                services.PostSpec(unit=unit, role=role, title=record["title"], leader_rank=rank, is_primary=False)
            )
    if errors:
        return ImportResult(errors=sorted(errors, key=lambda e: e.row))

    def write(person: _PersonRow) -> None:
        person.posts[0].is_primary = True
        user = services.person_create(
            actor=actor,
            username=person.username,
            full_name=person.full_name,
            mobile=person.mobile,
            email=person.email,
            password=None,
            posts=person.posts,
        )
        if not person.active:
            services.person_update(actor=actor, person=user, is_active=False)

    field_headers = headers | {"unit": headers["unit_code"], "__all__": ""}
    items = list(people.values())
    errors = _write_all(items, write, field_headers, progress)
    return ImportResult(created=0 if errors else len(items), errors=errors)


def _person_from_row(
    number: int, record: Record, headers: dict[str, str], taken_usernames: set[str]
) -> tuple[_PersonRow, list[RowError]]:
    """The person described by their first row, and what is wrong with it."""
    errors = []
    username = record["username"]
    if not username:
        errors.append(RowError(number, headers["username"], _("必填")))
    elif not _USERNAME_RE.match(username):
        errors.append(RowError(number, headers["username"], _("用户名只能包含字母、数字和 @/./+/-/_")))
    elif username.lower() in taken_usernames:
        errors.append(RowError(number, headers["username"], _("该用户名已被使用")))
    if not record["full_name"]:
        errors.append(RowError(number, headers["full_name"], _("必填")))
    mobile = None
    if record["mobile"]:
        try:
            validate_mobile(record["mobile"])
            mobile = normalise_mobile(record["mobile"])
        except ValidationError as error:
            errors += [RowError(number, headers["mobile"], message) for message in error.messages]
    if record["email"]:
        try:
            validate_email(record["email"])
        except ValidationError:
            errors.append(RowError(number, headers["email"], _("电子邮箱格式不正确")))
    if record["status"] not in ("", PERSON_ACTIVE, PERSON_INACTIVE):
        errors.append(RowError(number, headers["status"], _("状态须留空，或填“启用”“停用”")))
    person = _PersonRow(
        row=number,
        username=username,
        full_name=record["full_name"],
        mobile=mobile,
        email=record["email"],
        active=record["status"] != PERSON_INACTIVE,
    )
    return person, errors
