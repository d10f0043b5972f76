"""Shell pages: workbench (工作台), audit log, health check."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache

from . import modules
from .models import AuditEntry
from .permissions import scope
from .ui import paginate


@login_required
def workbench(request):
    user = request.user
    shown = modules.modules_for(user)
    figures = {m.code: m.figures(request) for m in shown if m.figures}
    recent = scope(AuditEntry.objects.all(), user, unit_field="unit_id").order_by("-id")[:8]
    return render(
        request,
        "core/workbench.html",
        {
            "modules": shown,
            "tile_figures": figures,
            "recent_audit": recent,
            "inbox_count": modules.inbox_count(user),
        },
    )


class AuditFilterForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("操作人/对象"), required=False)
    action = forms.CharField(label=gettext_lazy("动作"), required=False)
    date_from = forms.DateField(
        label=gettext_lazy("起始日期"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=gettext_lazy("截止日期"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )


@login_required
def audit_list(request):
    if not request.user.has_role("platform_admin", "discipline", "unit_admin", "leader"):
        raise PermissionDenied(_("无权查看审计日志。"))
    form = AuditFilterForm(request.GET or None)
    entries = scope(AuditEntry.objects.all(), request.user, unit_field="unit_id").order_by("-id")
    if form.is_valid():
        data = form.cleaned_data
        if data["q"]:
            entries = entries.filter(actor_name__contains=data["q"]) | entries.filter(object_repr__contains=data["q"])
        if data["action"]:
            entries = entries.filter(action__startswith=data["action"])
        if data["date_from"]:
            entries = entries.filter(created_at__date__gte=data["date_from"])
        if data["date_to"]:
            entries = entries.filter(created_at__date__lte=data["date_to"])
    return render(request, "core/audit_list.html", {"filter_form": form, "page_obj": paginate(request, entries)})


@never_cache
def healthz(request):
    """Database and broker reachable? 200 with details, or 503 naming what is down."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:  # noqa: BLE001 - report, never raise, from a health check
        checks["database"] = f"error: {error.__class__.__name__}"
    try:
        from yiwang.celery import app

        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as error:  # noqa: BLE001
        checks["broker"] = f"error: {error.__class__.__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)
