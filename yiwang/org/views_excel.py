"""Screens for Excel import/export of units and people (批量导入导出).

Thin like views.py: the form checks the upload, ``excel`` reads, checks and writes.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from . import excel, imports, selectors, services
from .forms import ImportForm, PersonFilterForm, UnitFilterForm
from .models import ImportJob

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


def _import_page(request, *, kind, columns, title, template_url, list_url, note=""):
    """The upload form; a valid upload becomes a background job whose page shows its progress."""
    _ensure_can_import(request.user)
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        job = imports.import_job_create(actor=request.user, kind=kind, file=form.cleaned_data["file"])
        return redirect("org:import_job", pk=job.pk)
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
            "max_rows": excel.MAX_ROWS,
        },
    )


@login_required
def units_import(request):
    return _import_page(
        request,
        kind=ImportJob.Kind.UNITS,
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
        kind=ImportJob.Kind.PEOPLE,
        columns=excel.PERSON_COLUMNS,
        title=_("导入人员"),
        template_url=reverse("org:person_template"),
        list_url=reverse("org:person_list"),
        note=_("同一用户名写多行表示一人兼多个岗位。") + excel.no_password_note(),
    )


# --- import jobs ----------------------------------------------------------------------------

_JOB_PAGES = {
    ImportJob.Kind.UNITS: ("org:unit_import", "org:unit_list"),
    ImportJob.Kind.PEOPLE: ("org:person_import", "org:person_list"),
}


def _get_job(request, pk: int) -> ImportJob:
    """A job is seen by the person who uploaded it only."""
    job = ImportJob.objects.filter(pk=pk, actor=request.user).first()
    if job is None:
        raise Http404(_("导入任务不存在或无权查看。"))
    return job


def _job_context(request, job: ImportJob) -> dict:
    import_url, list_url = (reverse(name) for name in _JOB_PAGES[job.kind])
    errors = [excel.RowError(*e) for e in job.errors]
    return {
        "job": job,
        "progress": imports.import_job_progress(job),
        "import_url": import_url,
        "list_url": list_url,
        "errors": errors[:MAX_ERRORS_SHOWN],
        "error_count": len(errors),
        "errors_hidden": max(len(errors) - MAX_ERRORS_SHOWN, 0),
    }


@require_GET
@login_required
def import_job(request, pk: int):
    job = _get_job(request, pk)
    title = _("导入单位") if job.kind == ImportJob.Kind.UNITS else _("导入人员")
    return render(request, "org/import_job.html", {**_job_context(request, job), "title": title})


@require_GET
@login_required
def import_job_progress(request, pk: int):
    """htmx, every second until the job is finished: the job's live part."""
    return render(request, "org/_import_job_body.html", _job_context(request, _get_job(request, pk)))
