"""Shell pages: workbench (工作台), in-app notices (站内提醒), audit log, health check."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from . import calendar, modules, notices
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
            # From 1 November on, while next year's holidays are not entered (core.calendar).
            "calendar_missing_year": calendar.missing_next_year() if user.is_platform_admin else None,
        },
    )


@login_required
def notice_list(request):
    """站内提醒: the user's notices, newest first; unread ones stand out."""
    page = paginate(request, notices.notice_list(user=request.user))
    return render(
        request,
        "core/notices.html",
        {"page_obj": page, "unread": notices.notice_unread_count(user=request.user)},
    )


@require_POST
@login_required
def notice_read(request, pk: int):
    """Mark one notice read and follow its link (a same-site path only)."""
    notice = notices.notice_list(user=request.user).filter(pk=pk).first()
    if notice is None:
        messages.error(request, _("该提醒不存在。"))
        return redirect("core:notices")
    notices.notice_mark_read(user=request.user, notice_id=notice.pk)
    url = notice.url
    if url and url.startswith("/") and url_has_allowed_host_and_scheme(url, {request.get_host()}):
        return redirect(url)
    return redirect("core:notices")


@require_POST
@login_required
def notice_read_all(request):
    changed = notices.notice_mark_read(user=request.user)
    if changed:
        messages.success(request, _("已将 %(n)s 条提醒标为已读。") % {"n": changed})
    return redirect("core:notices")


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


@login_required
def attachment_download(request, pk: int):
    """Any module's stored file, for whoever the module's rule lets see it (``core.attachments``)."""
    from django.http import Http404

    from . import attachments
    from .models import Attachment

    item = Attachment.objects.filter(pk=pk).first()
    if item is None or not attachments.can_view(request.user, item):
        raise Http404(_("附件不存在或无权查看。"))
    return attachments.attachment_response(item, inline=request.GET.get("inline") == "1")
