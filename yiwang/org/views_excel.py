"""Screens for Excel import/export of units and people (批量导入导出).

Thin like views.py: the form checks the upload, ``excel`` reads, checks and writes.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from . import excel, selectors, services
from .forms import ImportForm, PersonFilterForm, UnitFilterForm

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_ERRORS_SHOWN = 500


def _xlsx(content: bytes, stem: str, *, dated: bool = True) -> HttpResponse:
    name = f"{stem}-{timezone.localdate():%Y%m%d}.xlsx" if dated else f"{stem}.xlsx"
    response = HttpResponse(content, content_type=XLSX)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


# --- export and templates -------------------------------------------------------------------


@login_required
def units_export(request):
    form = UnitFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    content = excel.units_export(
        user=request.user, q=data.get("q", ""), kind=data.get("kind", ""), status=data.get("status", "")
    )
    return _xlsx(content, "units")


@login_required
def people_export(request):
    filters = {}
    if request.GET:
        form = PersonFilterForm(request.GET, units=list(selectors.unit_list(user=request.user)))
        if form.is_valid():
            filters = {k: v for k, v in form.cleaned_data.items() if v not in ("", None)}
    return _xlsx(excel.people_export(user=request.user, **filters), "people")


@login_required
def units_template(request):
    return _xlsx(excel.units_template(), "units-template", dated=False)


@login_required
def people_template(request):
    return _xlsx(excel.people_template(), "people-template", dated=False)


# --- import ---------------------------------------------------------------------------------


def _ensure_can_import(user) -> None:
    """Importing needs the right to manage at least one unit (or the whole tree)."""
    if services.can_manage_unit(user, None):
        return
    if not any(services.can_manage_unit(user, unit) for unit in selectors.unit_list(user=user, status="active")):
        raise PermissionDenied(_("无权导入：您不是任何单位的管理员。"))


def _import_page(request, *, importer, columns, title, template_url, list_url, note=""):
    _ensure_can_import(request.user)
    form = ImportForm(request.POST or None, request.FILES or None)
    errors = []
    if request.method == "POST" and form.is_valid():
        result = importer(actor=request.user, file=form.cleaned_data["file"])
        if not result.errors:
            messages.success(request, _("已导入 %(count)s 条") % {"count": result.created})
            return redirect(list_url)
        errors = result.errors
    return render(
        request,
        "org/import.html",
        {
            "form": form,
            "title": title,
            "columns": [(header, required) for header, _key, required in columns],
            "template_url": template_url,
            "list_url": list_url,
            "note": note,
            "errors": errors[:MAX_ERRORS_SHOWN],
            "error_count": len(errors),
            "errors_hidden": max(len(errors) - MAX_ERRORS_SHOWN, 0),
            "max_rows": excel.MAX_ROWS,
        },
    )


@login_required
def units_import(request):
    return _import_page(
        request,
        importer=excel.units_import,
        columns=excel.UNIT_COLUMNS,
        title=_("导入单位"),
        template_url=reverse("org:unit_template"),
        list_url=reverse("org:unit_list"),
        note=_("上级单位可以是已有单位，也可以是本文件中的另一行；您只能在自己管理的单位之下新建单位。"),
    )


@login_required
def people_import(request):
    return _import_page(
        request,
        importer=excel.people_import,
        columns=excel.PERSON_COLUMNS,
        title=_("导入人员"),
        template_url=reverse("org:person_template"),
        list_url=reverse("org:person_list"),
        note=_("同一用户名写多行表示一人兼多个岗位。") + excel.no_password_note(),
    )
