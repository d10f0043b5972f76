"""Base registry pages (基础库): the overview, a browser per registry, one record, and imports
(upload form with a template file, the run's live progress, its error report, the list of runs).

Who sees what: every member of staff sees the overview (counts, providers). A registry's records
and its imports are for platform admins, the e-gov office and the units that provide it
(``imports.can_manage_registry``); everyone else gets a 403 page that says why. Lists mask the
personal fields (张*三, 330206********1234, 138****1234); a record's page shows them in plain
text and that read is audited.

Lists of a million rows never count: they page by id ("next page" keyset), and the overview
shows PostgreSQL's row estimate for big tables.
"""

from __future__ import annotations

import datetime as dt
import math

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from yiwang.core.audit import audit_record
from yiwang.core.ui import add_service_errors, paginate

from .. import imports
from ..masking import mask
from ..models import CatalogEntry, Change, EconomicIndicator, ImportRun, LegalEntity, Place, Resident
from ..registries import DEFAULT_REGION, REGISTRIES, RegistrySpec, key_clean
from .common import attachment, denied, page, staff_required

SECTION = "registries"
STAFF_ONLY = gettext_lazy("基础库仅供机关工作人员使用。")
PAGE_SIZE = 20
ESTIMATE_ABOVE = 100_000  # above this, PostgreSQL's estimate (pg_class.reltuples) instead of COUNT(*)
RECENT_CHANGES = 20
ERRORS_SHOWN = 200
MAX_ID = 2**63 - 1

# What a list shows per registry: (column, how it is masked in the list).
LIST_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "resident": [("name", "name"), ("id_number", "id_number"), ("gender", ""), ("birth_date", "date"),
                 ("phone", "phone"), ("street", "")],
    "legal_entity": [("name", ""), ("credit_code", ""), ("kind", ""), ("representative", "name"),
                     ("established_on", ""), ("status", "")],
    "place": [("code", ""), ("address", ""), ("building", ""), ("kind", ""), ("street", ""), ("longitude", ""),
              ("latitude", "")],
    "economy": [("code", ""), ("name", ""), ("period", ""), ("value", ""), ("measure", ""), ("region", "")],
}  # fmt: skip
ICONS = {"resident": "people", "legal_entity": "building", "place": "geo-alt", "economy": "graph-up"}


# --- access -----------------------------------------------------------------------------------


def _spec(code: str) -> RegistrySpec:
    spec = REGISTRIES.get(code)
    if spec is None:
        raise Http404(_("没有这个基础库。"))
    return spec


def _refusal(spec: RegistrySpec) -> str:
    return _("只有%(registry)s的提供单位、电子政务办或平台管理员可以查看其中的数据。") % {"registry": spec.label}


# --- reads ------------------------------------------------------------------------------------


def row_count(spec: RegistrySpec) -> tuple[int, bool]:
    """(rows, is_estimate): PostgreSQL's planner estimate for a big table, else an exact count."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [spec.model._meta.db_table])
            found = cursor.fetchone()
        estimate = int(found[0]) if found and found[0] is not None else -1
        if estimate > ESTIMATE_ABOVE:
            return estimate, True
    return spec.model.objects.count(), False


def _providers() -> dict[str, list[str]]:
    """Registry code → names of the units that provide it (draft, in review or published entries)."""
    out: dict[str, list[str]] = {}
    entries = (
        CatalogEntry.objects.filter(status__in=imports.PROVIDING_STATUSES)
        .exclude(registry="")
        .values_list("registry", "provider__name")
        .distinct()
        .order_by("registry", "provider__name")
    )
    for code, name in entries:
        out.setdefault(code, []).append(name)
    return out


def _value(record, code: str):
    """A column's value for display: choices by label, dates as YYYY-MM-DD whatever the language."""
    field = record._meta.get_field(code)
    if field.choices:
        return getattr(record, f"get_{code}_display")()
    value = getattr(record, code)
    return value.isoformat() if isinstance(value, dt.date) else value


# --- overview ---------------------------------------------------------------------------------


@staff_required(SECTION, STAFF_ONLY)
def registry_list(request):
    """基础库: the four registries with their size, last change and providers."""
    providers = _providers()
    cards = []
    for code, spec in REGISTRIES.items():
        count, estimated = row_count(spec)
        last = Change.objects.filter(registry=code).order_by("-id").values_list("changed_at", flat=True).first()
        cards.append(
            {
                "code": code,
                "spec": spec,
                "icon": ICONS[code],
                "count": count,
                "estimated": estimated,
                "last_change": last,
                "providers": providers.get(code, []),
                "can_manage": imports.can_manage_registry(request.user, code),
                "columns": len(spec.columns),
            }
        )
    recent = imports.runs_visible(request.user).order_by("-id")[:5]
    return page(request, "exchange/registry_list.html", {"cards": cards, "recent_runs": recent}, section=SECTION)


# --- browser ----------------------------------------------------------------------------------


class RegistryFilterForm(forms.Form):
    """Search and filters above a registry's list; the fields depend on the registry."""

    q = forms.CharField(label=gettext_lazy("搜索"), required=False, max_length=64)

    def __init__(self, *args, spec: RegistrySpec, series: list[tuple[str, str]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = spec
        placeholders = {
            "resident": _("身份证号码（精确）或姓名（开头）"),
            "legal_entity": _("信用代码（精确）或名称（开头）"),
            "place": _("地址编码（精确）或地址（开头）"),
            "economy": _("指标代码或名称（开头）"),
        }
        self.fields["q"].widget.attrs.update({"placeholder": placeholders[spec.code], "type": "search"})
        every = [("", _("全部"))]
        if spec.code == "resident":
            self.fields["street"] = forms.ChoiceField(
                label=_("所属街道（镇）"), required=False, choices=every + [(s, s) for s in imports.STREETS]
            )
            self.fields["gender"] = forms.ChoiceField(
                label=_("性别"), required=False, choices=every + list(Resident.Gender.choices)
            )
        elif spec.code == "legal_entity":
            self.fields["kind"] = forms.ChoiceField(
                label=_("类型"), required=False, choices=every + list(LegalEntity.Kind.choices)
            )
            self.fields["status"] = forms.ChoiceField(
                label=_("登记状态"), required=False, choices=every + list(LegalEntity.Status.choices)
            )
        elif spec.code == "place":
            self.fields["kind"] = forms.ChoiceField(
                label=_("类型"), required=False, choices=every + list(Place.Kind.choices)
            )
            self.fields["street"] = forms.ChoiceField(
                label=_("所属街道（镇）"), required=False, choices=every + [(s, s) for s in imports.STREETS]
            )
        else:
            self.fields["series"] = forms.ChoiceField(label=_("指标"), required=False, choices=every + list(series))
            self.fields["freq"] = forms.ChoiceField(
                label=_("统计期类型"),
                required=False,
                choices=[("", _("全部")), ("year", _("年度")), ("quarter", _("季度")), ("month", _("月度"))],
            )
            self.fields["year"] = forms.IntegerField(label=_("年份"), required=False, min_value=1900, max_value=2100)

    def filter(self, queryset):
        data = self.cleaned_data if self.is_valid() else {}
        spec = self.spec
        q = (data.get("q") or "").strip()
        if q:
            try:
                key = key_clean(spec, q)
            except ValidationError:
                key = None
            if spec.code == "resident":
                queryset = queryset.filter(id_number=key) if key else queryset.filter(name__startswith=q)
            elif spec.code == "legal_entity":
                queryset = queryset.filter(credit_code=key) if key else queryset.filter(name__startswith=q)
            elif spec.code == "place":
                by_code = queryset.filter(code=q)
                queryset = by_code if by_code.exists() else queryset.filter(address__startswith=q)
            elif key:
                code, period = key.split(":")
                queryset = queryset.filter(code=code, period=period)
            else:
                queryset = queryset.filter(Q(code=q) | Q(name__startswith=q))
        for name in ("street", "gender", "kind", "status"):
            if data.get(name):
                queryset = queryset.filter(**{name: data[name]})
        if spec.code == "economy":
            if data.get("series"):
                queryset = queryset.filter(code=data["series"])
            if data.get("year"):
                queryset = queryset.filter(period__startswith=str(data["year"]))
            freq = data.get("freq")
            if freq == "year":
                queryset = queryset.filter(period__regex=r"^[0-9]{4}$")
            elif freq == "quarter":
                queryset = queryset.filter(period__contains="Q")
            elif freq == "month":
                queryset = queryset.filter(period__contains="-")
        return queryset

    @property
    def filtered(self) -> bool:
        return self.is_valid() and any(self.cleaned_data.get(name) for name in self.fields)


def _cursor(raw) -> int | None:
    text = str(raw or "")
    if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_ID:
        return int(text)
    return None


def keyset_page(queryset, *, after: int | None, before: int | None, size: int = PAGE_SIZE) -> dict:
    """One page by id, never counted: ``after`` → the page after that id, ``before`` → the one before."""
    if before is not None:
        rows = list(queryset.filter(pk__lt=before).order_by("-pk")[: size + 1])
        has_prev = len(rows) > size
        rows = rows[:size][::-1]
        has_next = bool(rows)  # we came back from a later page
    else:
        rows = list((queryset.filter(pk__gt=after) if after else queryset).order_by("pk")[: size + 1])
        has_next = len(rows) > size
        rows = rows[:size]
        has_prev = after is not None and queryset.filter(pk__lte=after).exists()
    return {
        "rows": rows,
        "has_next": has_next,
        "has_prev": has_prev,
        "next": rows[-1].pk if rows else None,
        "prev": rows[0].pk if rows else None,
    }


def _series_choices() -> list[tuple[str, str]]:
    pairs = EconomicIndicator.objects.filter(region=DEFAULT_REGION).values_list("code", "name").distinct()
    return sorted({code: f"{name}（{code}）" for code, name in pairs}.items())


def _period_kind(period: str) -> str:
    return "quarter" if "Q" in period else "month" if "-" in period else "year"


def indicator_chart(*, code: str, freq: str) -> dict | None:
    """An ECharts line chart of one series (the region's values of one period kind)."""
    values = list(
        EconomicIndicator.objects.filter(code=code, region=DEFAULT_REGION)
        .order_by("period")
        .values_list("period", "value", "name", "measure")
    )
    if not values:
        return None
    kinds = {_period_kind(p) for p, *_rest in values}
    freq = freq if freq in kinds else ("year" if "year" in kinds else sorted(kinds)[0])
    points = [(p, float(v)) for p, v, _n, _m in values if _period_kind(p) == freq]
    name, measure = values[-1][2], values[-1][3]
    return {
        "title": {"text": f"{name}（{measure}）" if measure else name, "left": "center", "textStyle": {"fontSize": 14}},
        "color": ["#0b3a7e"],
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 8, "right": 16, "top": 40, "bottom": 8, "containLabel": True},
        "xAxis": {"type": "category", "data": [p for p, _v in points], "boundaryGap": False},
        "yAxis": {"type": "value", "scale": True},
        "series": [{"name": name, "type": "line", "data": [v for _p, v in points], "smooth": True}],
    }


def _list_rows(spec: RegistrySpec, records: list) -> list[dict]:
    columns = LIST_COLUMNS[spec.code]
    return [
        {"pk": record.pk, "cells": [mask(_value(record, code), how) for code, how in columns]} for record in records
    ]


@staff_required(SECTION, STAFF_ONLY)
def registry_detail(request, code: str):
    """A registry's records: search, filters, keyset pages; personal fields masked."""
    spec = _spec(code)
    if not imports.can_manage_registry(request.user, code):
        return denied(request, _refusal(spec), section=SECTION)
    series = _series_choices() if code == "economy" else []
    form = RegistryFilterForm(request.GET or None, spec=spec, series=series)
    queryset = form.filter(spec.model.objects.all())
    window = keyset_page(queryset, after=_cursor(request.GET.get("after")), before=_cursor(request.GET.get("before")))
    count, estimated = (None, False) if form.filtered else row_count(spec)
    chart = None
    if code == "economy" and series:
        data = form.cleaned_data if form.is_valid() else {}
        chosen = data.get("series") or series[0][0]
        chart = indicator_chart(code=chosen, freq=data.get("freq") or "year")
    labels = [spec.column_label(c) for c, _how in LIST_COLUMNS[code]]
    return page(
        request,
        "exchange/registry_detail.html",
        {
            "spec": spec,
            "filter_form": form,
            "filtered": form.filtered,
            "labels": labels,
            "rows": _list_rows(spec, window["rows"]),
            "window": window,
            "count": count,
            "estimated": estimated,
            "chart": chart,
            "can_manage": True,
            "personal": code in ("resident", "legal_entity"),
        },
        section=SECTION,
    )


@staff_required(SECTION, STAFF_ONLY)
def registry_record(request, code: str, pk: int):
    """One record in plain text with its recent changes; the read is audited."""
    spec = _spec(code)
    if not imports.can_manage_registry(request.user, code):
        return denied(request, _refusal(spec), section=SECTION)
    record = spec.model.objects.filter(pk=pk).first()
    if record is None:
        raise Http404(_("记录不存在。"))
    key = spec.key_of(record)
    fields = [(spec.column_label(c), _value(record, c)) for c in spec.columns]
    changes = list(Change.objects.filter(registry=code, record_key=key).order_by("-id")[:RECENT_CHANGES])
    for change in changes:
        change.item_labels = [spec.column_label(c) if c in spec.columns else c for c in change.items or []]
    audit_record(
        actor=request.user,
        action="exchange.registry.view",
        object_type=f"exchange.{code}",
        object_id=key,
        object_repr=str(record)[:255],
    )
    return page(
        request,
        "exchange/registry_record.html",
        {"spec": spec, "record": record, "key": key, "fields": fields, "changes": changes},
        section=SECTION,
    )


# --- imports ----------------------------------------------------------------------------------


class ImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("数据文件"),
        allow_empty_file=True,  # the service says 文件是空的 in its own words
        widget=forms.FileInput(attrs={"accept": ".csv,.xlsx"}),
        help_text=gettext_lazy(
            "CSV（UTF-8 或 GBK 编码）或 Excel（.xlsx），第一行为表头，列名与导入模板一致；最大 200 MB。"
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].widget.attrs["data-max-bytes"] = str(imports.MAX_UPLOAD_BYTES)


@staff_required(SECTION, STAFF_ONLY)
def import_create(request, code: str):
    """导入数据: upload a file; it is checked and loaded in the background."""
    spec = _spec(code)
    if not imports.can_manage_registry(request.user, code):
        return denied(
            request,
            _("只有%(registry)s的提供单位、电子政务办或平台管理员可以导入数据。") % {"registry": spec.label},
            section=SECTION,
        )
    posted = request.method == "POST"
    form = ImportForm(request.POST if posted else None, request.FILES if posted else None)
    if posted and form.is_valid():
        try:
            run = imports.import_start(actor=request.user, registry_code=code, upload=form.cleaned_data["file"])
        except PermissionDenied as error:
            return denied(request, str(error), section=SECTION)
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                add_service_errors(form, error)
            else:
                form.add_error("file", error.messages)
        else:
            messages.success(request, _("文件已上传，正在逐行校验；全部正确才会导入。"))
            return redirect("exchange:import_detail", pk=run.pk)
    return page(
        request,
        "exchange/registry_import_form.html",
        {"spec": spec, "form": form, "columns": imports.columns_of(spec), "max_mb": imports.MAX_UPLOAD_BYTES >> 20},
        section=SECTION,
        status=400 if posted else 200,
    )


@require_GET
@staff_required(SECTION, STAFF_ONLY)
def import_template(request, code: str):
    """The template CSV: the header row and one example row."""
    spec = _spec(code)
    response = HttpResponse(imports.template_csv(code), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = attachment(
        _("%(registry)s导入模板.csv") % {"registry": spec.label}, f"{code}-template.csv"
    )
    return response


class ImportFilterForm(forms.Form):
    registry = forms.ChoiceField(
        label=gettext_lazy("基础库"),
        required=False,
        choices=[("", gettext_lazy("全部"))] + [(c, s.label) for c, s in REGISTRIES.items()],
    )
    status = forms.ChoiceField(
        label=gettext_lazy("状态"), required=False, choices=[("", gettext_lazy("全部")), *ImportRun.Status.choices]
    )
    q = forms.CharField(
        label=gettext_lazy("文件名"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": gettext_lazy("文件名")}),
    )


@staff_required(SECTION, STAFF_ONLY)
def import_list(request):
    """Imports the user may follow, newest first."""
    form = ImportFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    runs = imports.runs_visible(request.user)
    if data.get("registry"):
        runs = runs.filter(registry=data["registry"])
    if data.get("status"):
        runs = runs.filter(status=data["status"])
    if data.get("q"):
        runs = runs.filter(file_name__icontains=data["q"])
    manageable = [(c, s) for c, s in REGISTRIES.items() if imports.can_manage_registry(request.user, c)]
    return page(
        request,
        "exchange/registry_import_list.html",
        {
            "filter_form": form,
            "filtered": any(data.values()),
            "page_obj": paginate(request, runs.order_by("-id")),
            "manageable": manageable,
        },
        section=SECTION,
    )


def _get_run(request, pk: int) -> ImportRun:
    run = imports.runs_visible(request.user).filter(pk=pk).first()
    if run is None:
        raise Http404(_("导入记录不存在或无权查看。"))
    return run


def _percent(done: int, total: int) -> int:
    if total <= 0:
        return 0
    return max(0, min(100, math.floor(done * 100 / total)))


def _run_context(run: ImportRun) -> dict:
    running = run.status in (ImportRun.Status.PENDING, ImportRun.Status.RUNNING)
    percent = 100 if run.status == ImportRun.Status.LOADED else _percent(run.done_rows, run.total_rows)
    if running:
        percent = min(percent, 99)
    return {
        "run": run,
        "spec": REGISTRIES[run.registry],
        "running": running,
        "percent": percent,
        "bar_class": f"exc-reg-w-{percent // 10 * 10}",
        "errors_shown": (run.errors or [])[:ERRORS_SHOWN],
        "has_report": run.status == ImportRun.Status.INVALID,
        "unchanged": max(0, run.total_rows - run.created_rows - run.updated_rows),
        "elapsed": ((run.finished_at or timezone.now()) - run.created_at).total_seconds(),
    }


@staff_required(SECTION, STAFF_ONLY)
def import_detail(request, pk: int):
    """A run: live progress while it is checked (htmx, every second), then the result or the errors."""
    run = _get_run(request, pk)
    context = _run_context(run)
    if request.htmx:
        return page(request, "exchange/registry_import_body.html", context, section=SECTION)
    return page(request, "exchange/registry_import_detail.html", context, section=SECTION)


@require_GET
@staff_required(SECTION, STAFF_ONLY)
def import_errors(request, pk: int):
    """The full error report of an invalid run (CSV: 行号, 列, 问题)."""
    run = _get_run(request, pk)
    handle = imports.error_report_open(run)
    if handle is None:
        raise Http404(_("该导入没有错误报告。"))
    stem = run.file_name.rsplit(".", 1)[0] or f"import-{run.pk}"
    response = FileResponse(handle, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = attachment(
        _("%(name)s-错误报告.csv") % {"name": stem}, f"import-{run.pk}-errors.csv"
    )
    return response
