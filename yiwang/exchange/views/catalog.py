"""Catalogue pages (资源目录): browse and search, entry detail, the entry form with its items,
the review actions (submit, revise, revoke) and the exports (Excel, DCAT JSON-LD).

Views stay thin: forms check shapes, ``services`` writes, ``selectors`` read. A service's
ValidationError becomes a form or row error (HTTP 400), PermissionDenied a 403 page.
"""

from __future__ import annotations

import io
import re
from urllib.parse import quote

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from yiwang.core.ui import add_service_errors, paginate
from yiwang.workflow.models import Task

from .. import disputes, selectors, services
from ..models import CatalogEntry, DataItem, SharingType
from ..registries import REGISTRIES
from .common import attachment, denied, page, staff_required

SECTION = "catalog"
MAX_EXPORT = 5000
MAX_ITEMS = 200

# --- helpers ---------------------------------------------------------------------------------


def _errors(error: Exception) -> list[str]:
    if isinstance(error, ValidationError):
        return list(error.messages)
    return [str(error) or _("无权执行此操作。")]


def _entry_or_404(request, pk: int) -> CatalogEntry:
    entry = selectors.entry_get(user=request.user, pk=pk)
    if entry is None:
        raise Http404(_("资源不存在或无权查看。"))
    return entry


# --- the list and its filters ---------------------------------------------------------------


def _choices(enum, first_label) -> list[tuple[str, str]]:
    return [("", first_label), *[(value, label) for value, label in enum.choices if value]]


class EntryFilterForm(forms.Form):
    q = forms.CharField(
        label=gettext_lazy("搜索"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": gettext_lazy("资源名称、代码、摘要、关键字")}),
    )
    major = forms.ChoiceField(label=gettext_lazy("资源分类"), required=False)
    middle = forms.RegexField(regex=r"^[1-3][0-9]{2}$", required=False, widget=forms.HiddenInput)
    provider = forms.TypedChoiceField(label=gettext_lazy("提供方"), required=False, coerce=int, empty_value=None)
    sharing_type = forms.ChoiceField(label=gettext_lazy("共享类型"), required=False)
    share_method = forms.ChoiceField(label=gettext_lazy("共享方式"), required=False)
    open_type = forms.ChoiceField(label=gettext_lazy("开放属性"), required=False)
    update_cycle = forms.ChoiceField(label=gettext_lazy("更新周期"), required=False)
    registry = forms.ChoiceField(label=gettext_lazy("数据来源"), required=False)
    status = forms.ChoiceField(label=gettext_lazy("状态"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["major"].choices = [("", _("全部分类")), *[(k, v) for k, v in selectors.MAJOR_CLASSES.items()]]
        self.fields["provider"].choices = [("", _("全部提供方"))] + [
            (str(u.pk), u.name) for u in selectors.provider_choices(user=user)
        ]
        self.fields["sharing_type"].choices = _choices(SharingType, _("全部"))
        self.fields["share_method"].choices = _choices(CatalogEntry.ShareMethod, _("全部"))
        self.fields["open_type"].choices = _choices(CatalogEntry.OpenType, _("全部"))
        self.fields["update_cycle"].choices = _choices(CatalogEntry.UpdateCycle, _("全部"))
        self.fields["registry"].choices = [
            ("", _("全部")),
            *[(value, label) for value, label in CatalogEntry.Registry.choices if value],
            ("none", _("仅目录（无基础库）")),
        ]
        S = CatalogEntry.Status
        keeper = selectors.keeper_unit_ids(user)
        statuses = [
            ("", _("已发布") if not keeper else _("当前（已发布及本单位在编）")),
            (S.PUBLISHED, S.PUBLISHED.label),
        ]
        if keeper:
            statuses += [(S.DRAFT, S.DRAFT.label), (S.REVIEW, S.REVIEW.label)]
        statuses += [(S.SUPERSEDED, _("历史版本")), (S.REVOKED, S.REVOKED.label), ("all", _("全部版本"))]
        self.fields["status"].choices = statuses

    def filters(self) -> selectors.EntryFilters:
        data = self.cleaned_data if self.is_valid() else {}
        return selectors.EntryFilters(
            q=(data.get("q") or "").strip(),
            major=data.get("major") or "",
            middle=data.get("middle") or "",
            provider=data.get("provider"),
            sharing_type=data.get("sharing_type") or "",
            share_method=data.get("share_method") or "",
            open_type=data.get("open_type") or "",
            update_cycle=data.get("update_cycle") or "",
            registry=data.get("registry") or "",
            status=data.get("status") or "",
        )


def _filtered(request) -> tuple[EntryFilterForm, selectors.EntryFilters]:
    form = EntryFilterForm(request.GET or None, user=request.user)
    return form, form.filters() if request.GET else selectors.EntryFilters()


@staff_required(SECTION)
def entry_list(request):
    """资源目录: search, filters, the classification tree, exports."""
    form, filters = _filtered(request)
    entries = selectors.entry_list(user=request.user, filters=filters)
    query = request.GET.copy()
    query.pop("page", None)
    return page(
        request,
        "exchange/catalog_list.html",
        {
            "filter_form": form,
            "filters": filters,
            "filtered": filters.active,
            "page_obj": paginate(request, entries),
            "tree": selectors.class_tree(user=request.user),
            "can_create": bool(selectors.provider_units(user=request.user)),
            "export_query": query.urlencode(),
            "middle_names": selectors.MIDDLE_CLASSES,
        },
        section=SECTION,
    )


# --- detail ------------------------------------------------------------------------------------


def _dispute_url(entry: CatalogEntry) -> str:
    try:
        return f"{reverse('exchange:dispute_create')}?entry={entry.pk}"
    except NoReverseMatch:
        return ""


def _usage_chart(usage: dict) -> dict:
    return {
        "color": ["#0b3a7e"],
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 8, "right": 16, "top": 16, "bottom": 8, "containLabel": True},
        "xAxis": {"type": "category", "data": [day.strftime("%m-%d") for day, _n in usage["series"]]},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [{"name": _("调用次数"), "type": "bar", "barMaxWidth": 14, "data": [n for _d, n in usage["series"]]}],
    }


@staff_required(SECTION)
def entry_detail(request, pk: int):
    user = request.user
    entry = _entry_or_404(request, pk)
    manage = services.can_manage_entry(user, entry)
    S = CatalogEntry.Status
    review_task = None
    if entry.status == S.REVIEW and entry.review_case_id:
        review_task = Task.objects.filter(case_id=entry.review_case_id, assignee=user, status=Task.Status.OPEN).first()
    systems = selectors.systems_for(user=user) if entry.status == S.PUBLISHED else []
    usage = selectors.entry_usage(entry=entry)
    show_grants = manage or services.is_egov(user)
    return page(
        request,
        "exchange/catalog_detail.html",
        {
            "entry": entry,
            "items": list(entry.items.all()),
            "versions": selectors.entry_versions(user=user, entry=entry),
            "class_label": selectors.class_label(entry.class_code),
            "related": selectors.entries_by_code(entry.related_codes),
            "can_edit": manage and entry.status == S.DRAFT,
            "can_revise": manage and entry.status == S.PUBLISHED,
            "can_revoke": manage and entry.status == S.PUBLISHED,
            "open_version": CatalogEntry.objects.filter(code=entry.code, status__in=CatalogEntry.OPEN_VERSIONS)
            .exclude(pk=entry.pk)
            .first()
            if manage
            else None,
            "review_task": review_task,
            "can_request": entry.status == S.PUBLISHED and entry.sharing_type != SharingType.NONE and bool(systems),
            # only those who may raise one (a unit holding a grant, the e-gov office) see the button
            "dispute_url": _dispute_url(entry) if disputes.can_raise(request.user, entry) else "",
            "usage": usage,
            "usage_chart": _usage_chart(usage) if usage["calls"] else None,
            "grants": list(selectors.live_grants_of(code=entry.code)) if show_grants else None,
            "open_requests": selectors.requests_visible(user)
            .filter(entry__code=entry.code, status__in=("pending", "escalated"))
            .count()
            if show_grants
            else 0,
            "gateway_url": gateway_url(request, entry) if entry.registry else "",
        },
        section=SECTION,
    )


def gateway_url(request, entry: CatalogEntry) -> str:
    """Where a consumer system reads the resource (the API gateway), absolute."""
    try:
        path = reverse("api:exchange:gateway_records", kwargs={"code": entry.code})
    except NoReverseMatch:
        path = f"/api/exchange/gateway/{entry.code}/records/"
    return request.build_absolute_uri(path)


# --- the entry form ---------------------------------------------------------------------------


class EntryForm(forms.Form):
    """The guideline's fields (政务信息资源目录编制指南); items come as rows (see ``_item_rows``)."""

    provider = forms.TypedChoiceField(
        label=gettext_lazy("提供方"), coerce=int, help_text=gettext_lazy("资源的提供单位（信息资源提供方）。")
    )
    class_code = forms.CharField(
        label=gettext_lazy("资源分类"),
        max_length=9,
        help_text=gettext_lazy(
            "9 位分类码：大类 1 位（1 基础信息资源、2 主题信息资源、3 部门信息资源）、中类 2 位、小类 3 位、细目 3 位，"
            "如 101001001。资源代码按分类自动编号。"
        ),
        widget=forms.TextInput(attrs={"inputmode": "numeric", "pattern": "[1-3][0-9]{8}", "autocomplete": "off"}),
    )
    name = forms.CharField(
        label=gettext_lazy("资源名称"), max_length=100, help_text=gettext_lazy("简明反映资源内容，如“人口基础信息”。")
    )
    abstract = forms.CharField(
        label=gettext_lazy("资源摘要"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("资源内容的概要说明：覆盖范围、主要信息、数据量等。"),
    )
    keywords = forms.CharField(
        label=gettext_lazy("关键字"), max_length=200, required=False, help_text=gettext_lazy("用逗号分隔，便于检索。")
    )
    format = forms.ChoiceField(label=gettext_lazy("资源格式"), choices=CatalogEntry.Format.choices)
    sharing_type = forms.ChoiceField(
        label=gettext_lazy("共享类型"),
        choices=SharingType.choices,
        help_text=gettext_lazy(
            "无条件共享：可提供给所有政务部门；有条件共享：提供给相关部门或仅部分信息项可提供给所有部门；"
            "不予共享：依法不能共享。"
        ),
    )
    sharing_condition = forms.CharField(
        label=gettext_lazy("共享条件"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("有条件共享时必填：向谁、为何种用途、须满足什么条件。"),
    )
    legal_basis = forms.CharField(
        label=gettext_lazy("共享依据"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("有条件共享、不予共享时必填：法律、行政法规或政策文件。"),
    )
    share_method = forms.ChoiceField(label=gettext_lazy("共享方式"), choices=CatalogEntry.ShareMethod.choices)
    open_type = forms.ChoiceField(
        label=gettext_lazy("开放属性"),
        choices=CatalogEntry.OpenType.choices,
        help_text=gettext_lazy("是否向社会开放（公共数据开放）。"),
    )
    update_cycle = forms.ChoiceField(label=gettext_lazy("更新周期"), choices=CatalogEntry.UpdateCycle.choices)
    registry = forms.ChoiceField(
        label=gettext_lazy("数据来源"),
        required=False,
        choices=CatalogEntry.Registry.choices,
        help_text=gettext_lazy("由基础库提供的资源，接口网关按信息项直接读取基础库；信息项代码须为基础库的字段。"),
    )
    related_codes = forms.CharField(
        label=gettext_lazy("关联资源"),
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("相关资源的资源代码，多个用逗号或换行分隔，如 101001001/000001。"),
    )

    def __init__(self, *args, units=None, editing: CatalogEntry | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        units = units or []
        if editing is not None or len(units) <= 1:
            del self.fields["provider"]
        else:
            self.fields["provider"].choices = [(str(u.pk), u.name) for u in units]
        if editing is not None:
            self.fields["class_code"].disabled = True
            self.fields["class_code"].help_text = _("资源代码 %(code)s 已按此分类编号，不能更改。") % {
                "code": editing.code
            }
        self.units = {u.pk: u for u in units}

    def entry_data(self) -> dict:
        data = dict(self.cleaned_data)
        data.pop("provider", None)
        data["related_codes"] = [c for c in re.split(r"[\s,，、;；]+", data.get("related_codes") or "") if c]
        return data


ITEM_POST_FIELDS = ("code", "name", "data_type", "length", "sharing_type", "personal", "mask", "synonyms")


def _item_rows(post) -> tuple[list[dict], list[dict]]:
    """The item rows of the form (parallel ``item_<field>`` lists, in page order): rows to show
    again and the items for the service. Entirely blank rows are dropped."""
    columns = {f: post.getlist(f"item_{f}") for f in ITEM_POST_FIELDS}
    count = min(max((len(v) for v in columns.values()), default=0), MAX_ITEMS)
    rows, items = [], []
    for index in range(count):
        row = {f: (columns[f][index] if index < len(columns[f]) else "").strip() for f in ITEM_POST_FIELDS}
        if not any(row[f] for f in ("code", "name", "length", "synonyms")):
            continue
        row["errors"] = []
        length = None
        if row["length"]:
            if row["length"].isdigit() and 0 < int(row["length"]) <= 32767:
                length = int(row["length"])
            else:
                row["errors"].append(_("长度须为 1–32767 的整数"))
        rows.append(row)
        items.append({**{f: row[f] for f in ITEM_POST_FIELDS}, "length": length, "personal": row["personal"] == "1"})
    return rows, items


def _rows_of(entry: CatalogEntry | None) -> list[dict]:
    if entry is None:
        return []
    return [
        {
            "code": i.code,
            "name": i.name,
            "data_type": i.data_type,
            "length": i.length or "",
            "sharing_type": i.sharing_type,
            "personal": "1" if i.personal else "",
            "mask": i.mask,
            "synonyms": i.synonyms,
            "errors": [],
        }
        for i in entry.items.all()
    ]


def _item_errors(rows: list[dict], messages_: list[str]) -> list[str]:
    """Put the service's “第 n 个信息项：…” messages on their rows; return the others."""
    rest = []
    for message in messages_:
        match = re.search(r"(\d+)", message)
        number = int(match.group(1)) if match else 0
        if 1 <= number <= len(rows) and ("：" in message or ":" in message):
            rows[number - 1]["errors"].append(re.split(r"[：:]", message, maxsplit=1)[1].strip())
        else:
            rest.append(message)
    return rest


def _registry_columns() -> dict[str, list[list[str]]]:
    return {code: [[c, spec.column_label(c)] for c in spec.columns] for code, spec in REGISTRIES.items()}


def _form_context(form, rows, item_errors, entry=None) -> dict:
    return {
        "form": form,
        "rows": rows,
        "item_errors": item_errors,
        "entry": entry,
        "registry_columns": _registry_columns(),
        "data_types": DataItem.DataType.choices,
        "sharing_types": SharingType.choices,
        "masks": DataItem.Mask.choices,
        "wide_fields": ["abstract", "sharing_condition", "legal_basis", "related_codes"],
    }


def _entry_form(request, entry: CatalogEntry | None):
    user = request.user
    units = [] if entry is not None else selectors.provider_units(user=user)
    if entry is None and not units:
        return denied(request, _("您所在单位不能编制资源目录。"), section=SECTION)
    if entry is not None and (entry.status != CatalogEntry.Status.DRAFT or not services.can_manage_entry(user, entry)):
        return denied(request, _("只有提供方单位可以修改草稿；已发布的资源请先“修订”。"), section=SECTION)
    initial = {}
    if entry is not None:
        initial = {f: getattr(entry, f) for f in services.ENTRY_FIELDS}
        initial["related_codes"] = "\n".join(entry.related_codes or [])
    elif units:
        initial = {
            "provider": str(units[0].pk),
            "sharing_type": SharingType.UNCONDITIONAL,
            "update_cycle": CatalogEntry.UpdateCycle.DAILY,
            "open_type": CatalogEntry.OpenType.CLOSED,
            "share_method": CatalogEntry.ShareMethod.API,
        }
    posted = request.method == "POST"
    form = EntryForm(request.POST if posted else None, units=units, editing=entry, initial=initial)
    rows, item_errors = (_rows_of(entry), [])
    if posted:
        rows, items = _item_rows(request.POST)
        form_ok = form.is_valid()
        rows_ok = not any(row["errors"] for row in rows)
        if form_ok and rows_ok:
            provider = form.units.get(form.cleaned_data.get("provider")) if entry is None else None
            if entry is None and provider is None:
                provider = units[0]
            data = form.entry_data()
            if entry is not None:
                data["class_code"] = entry.class_code
            try:
                saved = services.entry_save(actor=user, data=data, items=items, provider=provider, entry=entry)
                if request.POST.get("then") == "submit":
                    saved = services.entry_submit(actor=user, entry=saved)
            except PermissionDenied as error:
                return denied(request, str(error), section=SECTION)
            except ValidationError as error:
                if hasattr(error, "error_dict"):
                    fields = error.message_dict
                    item_errors = _item_errors(rows, fields.pop("items", []))
                    if fields:
                        add_service_errors(form, ValidationError(fields))
                else:
                    form.add_error(None, error.messages)
            else:
                if saved.status == CatalogEntry.Status.REVIEW:
                    messages.success(request, _("“%(name)s”已保存并提交电子政务办审核。") % {"name": saved.name})
                else:
                    messages.success(
                        request, _("草稿已保存：%(code)s 第 %(v)d 版。") % {"code": saved.code, "v": saved.version}
                    )
                return redirect("exchange:entry_detail", pk=saved.pk)
    return page(
        request,
        "exchange/catalog_form.html",
        _form_context(form, rows, item_errors, entry),
        section=SECTION,
        status=400 if posted else 200,
    )


@staff_required(SECTION)
def entry_create(request):
    return _entry_form(request, None)


@staff_required(SECTION)
def entry_edit(request, pk: int):
    return _entry_form(request, _entry_or_404(request, pk))


# --- actions --------------------------------------------------------------------------------------


def _act(request, pk: int, action, success: str, *, go_to=None):
    entry = _entry_or_404(request, pk)
    try:
        result = action(entry)
    except PermissionDenied as error:
        return denied(request, str(error), section=SECTION)
    except ValidationError as error:
        for message in _errors(error):
            messages.error(request, message)
        return redirect("exchange:entry_detail", pk=entry.pk)
    if success:
        messages.success(request, success % {"name": entry.name})
    target = go_to(result) if go_to else entry
    return redirect(target) if isinstance(target, str) else redirect("exchange:entry_detail", pk=target.pk)


@require_POST
@staff_required(SECTION)
def entry_submit(request, pk: int):
    comment = (request.POST.get("comment") or "")[:2000]
    return _act(
        request,
        pk,
        lambda e: services.entry_submit(actor=request.user, entry=e, comment=comment),
        _("“%(name)s”已提交电子政务办审核。"),
    )


@require_POST
@staff_required(SECTION)
def entry_revise(request, pk: int):
    return _act(
        request,
        pk,
        lambda e: services.entry_revise(actor=request.user, entry=e),
        _("已生成“%(name)s”的新版本草稿，修改后提交审核；审核通过前现行版本继续有效。"),
        go_to=lambda draft: reverse("exchange:entry_edit", args=[draft.pk]),
    )


@require_POST
@staff_required(SECTION)
def entry_revoke(request, pk: int):
    reason = (request.POST.get("reason") or "")[:500]
    return _act(
        request,
        pk,
        lambda e: services.entry_revoke(actor=request.user, entry=e, reason=reason),
        _("“%(name)s”已撤销，接口网关不再提供该资源。"),
    )


@require_POST
@staff_required(SECTION)
def entry_delete(request, pk: int):
    return _act(
        request,
        pk,
        lambda e: services.entry_delete_draft(actor=request.user, entry=e),
        _("草稿“%(name)s”已删除。"),
        go_to=lambda _r: reverse("exchange:catalog"),
    )


# --- exports ----------------------------------------------------------------------------------------

ENTRY_COLUMNS = [
    (gettext_lazy("资源代码"), lambda e: e.code),
    (gettext_lazy("版本"), lambda e: e.version),
    (gettext_lazy("资源名称"), lambda e: e.name),
    (gettext_lazy("资源分类"), lambda e: e.class_code),
    (gettext_lazy("分类名称"), lambda e: selectors.class_label(e.class_code)),
    (gettext_lazy("资源提供方"), lambda e: e.provider.name),
    (gettext_lazy("资源摘要"), lambda e: e.abstract),
    (gettext_lazy("关键字"), lambda e: e.keywords),
    (gettext_lazy("资源格式"), lambda e: e.get_format_display()),
    (gettext_lazy("共享类型"), lambda e: e.get_sharing_type_display()),
    (gettext_lazy("共享条件"), lambda e: e.sharing_condition),
    (gettext_lazy("共享依据"), lambda e: e.legal_basis),
    (gettext_lazy("共享方式"), lambda e: e.get_share_method_display()),
    (gettext_lazy("开放属性"), lambda e: e.get_open_type_display()),
    (gettext_lazy("更新周期"), lambda e: e.get_update_cycle_display()),
    (gettext_lazy("发布日期"), lambda e: e.published_on.isoformat() if e.published_on else ""),
    (gettext_lazy("关联资源代码"), lambda e: "、".join(e.related_codes or [])),
    (gettext_lazy("数据来源"), lambda e: e.get_registry_display() if e.registry else ""),
    (gettext_lazy("状态"), lambda e: e.get_status_display()),
]
ITEM_COLUMNS = [
    (gettext_lazy("资源代码"), lambda e, i: e.code),
    (gettext_lazy("资源名称"), lambda e, i: e.name),
    (gettext_lazy("序号"), lambda e, i: i.position),
    (gettext_lazy("信息项代码"), lambda e, i: i.code),
    (gettext_lazy("信息项名称"), lambda e, i: i.name),
    (gettext_lazy("数据类型"), lambda e, i: i.get_data_type_display()),
    (gettext_lazy("长度"), lambda e, i: i.length or ""),
    (gettext_lazy("共享类型"), lambda e, i: i.get_sharing_type_display()),
    (gettext_lazy("个人信息"), lambda e, i: _("是") if i.personal else _("否")),
    (gettext_lazy("脱敏方式"), lambda e, i: i.get_mask_display() if i.mask else ""),
    (gettext_lazy("同义词"), lambda e, i: i.synonyms),
]


def _export_entries(request) -> list[CatalogEntry]:
    _form, filters = _filtered(request)
    qs = selectors.entry_list(user=request.user, filters=filters).prefetch_related("items")
    return list(qs[:MAX_EXPORT])


def _download(body: bytes, content_type: str, name: str, fallback: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = attachment(name, fallback)
    return response


def _cell(value):
    """Text a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


@require_GET
@staff_required(SECTION)
def entry_export_xlsx(request):
    """The filtered catalogue as Excel: a sheet of entries and a sheet of their items."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    entries = _export_entries(request)
    book = Workbook()
    sheet = book.active
    sheet.title = _("资源目录")
    sheet.append([str(label) for label, _f in ENTRY_COLUMNS])
    for entry in entries:
        sheet.append([_cell(get(entry)) for _l, get in ENTRY_COLUMNS])
    items = book.create_sheet(_("信息项"))
    items.append([str(label) for label, _f in ITEM_COLUMNS])
    for entry in entries:
        for item in entry.items.all():
            items.append([_cell(get(entry, item)) for _l, get in ITEM_COLUMNS])
    for ws in (sheet, items):
        ws.freeze_panes = "A2"
        for cell in ws[1]:
            cell.font = Font(bold=True)
    buffer = io.BytesIO()
    book.save(buffer)
    stamp = timezone.localdate().strftime("%Y%m%d")
    return _download(
        buffer.getvalue(),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _("政务信息资源目录-%(day)s.xlsx") % {"day": stamp},
        f"catalog-{stamp}.xlsx",
    )


# EU frequency vocabulary, the one DCAT-AP uses for dct:accrualPeriodicity
FREQUENCY = "http://publications.europa.eu/resource/authority/frequency/"
FREQUENCIES = {
    "realtime": "CONT",
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "yearly": "ANNUAL",
    "irregular": "IRREG",
}


def jsonld_catalog(request, entries) -> dict:
    """The entries as a DCAT catalogue in JSON-LD (dcat:Catalog with dcat:dataset)."""
    base = request.build_absolute_uri("/")
    datasets = []
    for entry in entries:
        dataset = {
            "@id": request.build_absolute_uri(entry.get_absolute_url()),
            "@type": "dcat:Dataset",
            "dct:identifier": entry.code,
            "dct:title": entry.name,
            "dct:description": entry.abstract,
            "dct:publisher": {"@type": "foaf:Organization", "foaf:name": entry.provider.name},
            "dct:issued": {"@value": entry.published_on.isoformat(), "@type": "xsd:date"}
            if entry.published_on
            else None,
            "dct:accrualPeriodicity": {"@id": FREQUENCY + FREQUENCIES.get(entry.update_cycle, "UNKNOWN")},
            "dcat:keyword": [k for k in re.split(r"[,，、;；\s]+", entry.keywords or "") if k],
            "dcat:theme": selectors.class_label(entry.class_code),
            "dct:relation": [
                {"@id": request.build_absolute_uri(reverse("exchange:catalog")) + "?q=" + quote(c), "dct:identifier": c}
                for c in entry.related_codes or []
            ],
            "yw:version": entry.version,
            "yw:classCode": entry.class_code,
            "yw:status": entry.status,
            "yw:sharingType": entry.sharing_type,
            "yw:sharingCondition": entry.sharing_condition,
            "yw:legalBasis": entry.legal_basis,
            "yw:shareMethod": entry.share_method,
            "yw:openType": entry.open_type,
            "yw:registry": entry.registry,
            "yw:dataItem": [
                {
                    "dct:identifier": i.code,
                    "dct:title": i.name,
                    "yw:dataType": i.data_type,
                    "yw:sharingType": i.sharing_type,
                    "yw:personal": i.personal,
                }
                for i in entry.items.all()
            ],
            "dcat:distribution": [
                {
                    "@type": "dcat:Distribution",
                    "dct:title": entry.get_share_method_display(),
                    "dcat:accessURL": {"@id": gateway_url(request, entry)}
                    if entry.registry
                    else {"@id": request.build_absolute_uri(entry.get_absolute_url())},
                    "dct:format": "application/json" if entry.registry else entry.get_format_display(),
                }
            ],
        }
        datasets.append({k: v for k, v in dataset.items() if v is not None})
    return {
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
            "yw": base + "ns/exchange#",
            "@language": "zh",
        },
        "@type": "dcat:Catalog",
        "@id": request.build_absolute_uri(reverse("exchange:catalog")),
        "dct:title": _("政务信息资源目录"),
        "dct:modified": {"@value": timezone.localdate().isoformat(), "@type": "xsd:date"},
        "dct:language": "zh",
        "dcat:dataset": datasets,
    }


@require_GET
@staff_required(SECTION)
def entry_export_jsonld(request):
    """The filtered catalogue as DCAT JSON-LD."""
    body = jsonld_catalog(request, _export_entries(request))
    response = JsonResponse(
        body, content_type="application/ld+json; charset=utf-8", json_dumps_params={"ensure_ascii": False, "indent": 1}
    )
    stamp = timezone.localdate().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="catalog-{stamp}.jsonld"'
    return response
