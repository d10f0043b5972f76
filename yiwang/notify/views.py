"""Screens of notify (短信平台): usage dashboard, send one, templates, jobs with live progress,
policies (platform admins), the opt-out list, message lookup, and the gateways' receipt endpoint.

Views stay thin: a form validates, a service writes, the small reads below query. Every list
goes through ``scope``; a service's ValidationError / PermissionDenied becomes a form error or
a message (HTTP 400 / 403), never a 500.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, Sum
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from yiwang.core.permissions import scope
from yiwang.core.ui import add_service_errors, paginate
from yiwang.core.validators import is_valid_mobile, normalise_mobile
from yiwang.org.models import Role, Unit

from . import gateways, services, text
from .forms import (
    BRACKETS_IN_BODY,
    PLACEHOLDER_PREFIX,
    DashboardFilterForm,
    JobConfirmForm,
    JobFilterForm,
    JobUploadForm,
    MessageFilterForm,
    OptOutFilterForm,
    OptOutForm,
    PolicyFilterForm,
    PolicyForm,
    SendForm,
    TemplateFilterForm,
    TemplateForm,
)
from .models import InboundSms, Job, Message, OptOut, Policy, Template, UsageDay

MAX_RECEIPT_BYTES = 5 * 1024 * 1024
USAGE_DAYS = 30
PREVIEW_ROWS = 5
ERROR_ROWS_SHOWN = 20
FAILED_STATES = (Message.Status.PERMANENT_FAILURE, Message.Status.TEMPORARY_FAILURE)

# --- access ---------------------------------------------------------------------------------


def _denied(request, message: str):
    """A 403 page that says why."""
    return render(request, "notify/denied.html", {"message": message}, status=403)


def _is_staff(user) -> bool:
    post = user.acting_post
    return user.is_platform_admin or (post is not None and not post.role.is_public)


def staff_required(view):
    """Government staff (not the public accounts) only."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not _is_staff(request.user):
            return _denied(request, _("短信平台仅供机关工作人员使用。"))
        return view(request, *args, **kwargs)

    return wrapper


def platform_admin_required(view):
    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_platform_admin:
            return _denied(request, _("只有平台管理员可以设置短信配额与策略。"))
        return view(request, *args, **kwargs)

    return wrapper


def _can_view_optouts(user) -> bool:
    return user.is_platform_admin or user.has_role(Role.UNIT_ADMIN)


def _acting_unit_or_denied(request):
    unit = request.user.acting_unit
    if unit is None:
        return None, _denied(request, _("您当前没有所属单位，无法以单位名义发送短信。"))
    return unit, None


# --- reads ------------------------------------------------------------------------------------


def _visible_units(user):
    return scope(Unit.objects.filter(status=Unit.Status.ACTIVE), user, unit_field="pk").order_by("path")


def _unit_id(data) -> int | None:
    raw = str(data.get("unit") or "")
    return int(raw) if raw.isdigit() else None


def _get_scoped(request, queryset, pk: int, message: str):
    obj = scope(queryset, request.user).filter(pk=pk).first()
    if obj is None:
        raise Http404(message)
    return obj


def _get_template(request, pk: int) -> Template:
    return _get_scoped(request, Template.objects.select_related("unit", "created_by"), pk, _("模板不存在或无权查看。"))


def _get_job(request, pk: int) -> Job:
    return _get_scoped(
        request, Job.objects.select_related("template", "unit", "created_by"), pk, _("群发任务不存在或无权查看。")
    )


def _error_messages(error: Exception) -> list[str]:
    if isinstance(error, ValidationError):
        return list(error.messages)
    return [str(error) or _("无权执行此操作。")]


def _percent(done: int, total: int) -> int:
    if total <= 0:
        return 0
    return max(0, min(100, math.floor(done * 100 / total)))


def _bar_class(percent: int) -> str:
    """A width class for a progress bar before notify.js sets the exact width (no style="")."""
    if percent >= 100:
        return "w-100"
    return f"w-{percent // 10 * 10}" if percent >= 10 else "w-0"


def sms_preview(*, unit: Unit, body: str, values: dict | None = None, is_template: bool = True) -> dict:
    """What an SMS will look like: final text with the signature, length, parts, unfilled names."""
    signature = services.policy_for(unit).signature
    body = text.normalise(body or "")
    problem = ""
    names = text.placeholders(body) if is_template else []
    values = values or {}
    missing = [name for name in names if not text.clean_value(values.get(name, ""))]
    content = body
    if names:
        filled = {name: values.get(name) if name not in missing else f"(({name}))" for name in names}
        content = text.render(body, filled)
    if is_template and body:
        try:
            text.check_template(body, signature=signature)
        except text.SmsTextError as error:
            problem = str(error)
    elif "【" in body or "】" in body:
        problem = str(BRACKETS_IN_BODY)
    final = f"【{signature}】{content}" if signature and content else content
    length = text.sms_length(final)
    parts = text.sms_parts(final, limit=10**9)
    if length <= text.SINGLE_PART_LENGTH:
        room = text.SINGLE_PART_LENGTH - length
    else:
        room = parts * text.CONCAT_PART_LENGTH - length
    return {
        "final": final,
        "signature": signature,
        "length": length,
        "parts": parts,
        "room": room,
        "too_long": length > text.MAX_LENGTH,
        "max_length": text.MAX_LENGTH,
        "single": text.SINGLE_PART_LENGTH,
        "concat": text.CONCAT_PART_LENGTH,
        "names": names,
        "missing": missing,
        "problem": problem,
    }


# --- dashboard --------------------------------------------------------------------------------


def _usage_chart(rows: dict, days: list[dt.date]) -> dict:
    def series(key):
        return [rows.get(day, {}).get(key) or 0 for day in days]

    return {
        "color": ["#0b3a7e", "#198754", "#dc3545"],
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0},
        "grid": {"left": 8, "right": 16, "top": 16, "bottom": 40, "containLabel": True},
        "xAxis": {"type": "category", "data": [day.strftime("%m-%d") for day in days]},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [
            {"name": _("发送"), "type": "bar", "data": series("sent"), "barMaxWidth": 18},
            {"name": _("送达"), "type": "line", "data": series("delivered"), "showSymbol": False},
            {"name": _("失败"), "type": "line", "data": series("failed"), "showSymbol": False},
        ],
    }


def _gauge_chart(used: int, quota: int) -> dict:
    share = used * 100 / quota if quota else (100.0 if used else 0.0)
    percent = min(100.0, round(share, 2 if share < 1 else 1))  # 8 of 50,000 reads 0.02%, not 0%
    color = "#dc3545" if percent >= 90 else "#fd7e14" if percent >= 70 else "#0b3a7e"
    name = _("已用 %(used)s / %(quota)s 条") % {"used": used, "quota": quota}
    return {
        "series": [
            {
                "type": "gauge",
                "min": 0,
                "max": 100,
                "radius": "90%",
                "center": ["50%", "58%"],
                "startAngle": 200,
                "endAngle": -20,
                "progress": {"show": True, "width": 16, "itemStyle": {"color": color}},
                "axisLine": {"lineStyle": {"width": 16}},
                "pointer": {"show": False},
                "axisTick": {"show": False},
                "splitLine": {"show": False},
                "axisLabel": {"show": False},
                "anchor": {"show": False},
                "title": {"offsetCenter": [0, "38%"], "fontSize": 13},
                "detail": {"offsetCenter": [0, "0%"], "fontSize": 30, "formatter": "{value}%", "color": color},
                "data": [{"value": percent, "name": name}],
            }
        ]
    }


def _quota_bars(units_today: list[tuple[str, int, int]]) -> dict:
    """Usage per unit as bars; each bar is labelled with its figures and has a visible minimum length."""
    names = [name for name, _used, _quota in units_today]
    values = [round(used * 100 / quota, 2) if quota else 100.0 for _name, used, quota in units_today]
    data = [
        {"value": value, "label": {"formatter": f"{value:g}%（{used:,}/{quota:,}）"}}
        for value, (_name, used, quota) in zip(values, units_today, strict=True)
    ]
    return {
        "color": ["#0b3a7e"],
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 8, "right": 128, "top": 8, "bottom": 8, "containLabel": True},
        "xAxis": {"type": "value", "min": 0, "max": max([100, *values]), "axisLabel": {"formatter": "{value}%"}},
        "yAxis": {"type": "category", "data": names, "inverse": True},
        "series": [
            {
                "name": _("配额使用率"),
                "type": "bar",
                "barMaxWidth": 14,
                "barMinHeight": 3,  # 8 of 50,000 (0.02%) still shows as a sliver, not as nothing
                "label": {"show": True, "position": "right"},
                "data": data,
            }
        ],
    }


def _effective_policies(units) -> dict[int, Policy]:
    """Unit id → its policy (own, nearest ancestor's, else the district default), in two queries."""
    units = list(units)
    wanted = {int(i) for u in units for i in u.path.strip("/").split("/") if i}
    own = {p.unit_id: p for p in Policy.objects.filter(Q(unit_id__in=wanted) | Q(unit__isnull=True))}
    default = own.get(None) or Policy(unit=None)
    out = {}
    for unit in units:
        ids = [int(i) for i in unit.path.strip("/").split("/") if i] or [unit.pk]
        out[unit.pk] = next((own[i] for i in reversed(ids) if i in own), default)
    return out


@staff_required
def dashboard(request):
    user = request.user
    units = list(_visible_units(user))
    form = DashboardFilterForm(request.GET or None, units=units)
    form.is_valid()
    unit_id = _unit_id(getattr(form, "cleaned_data", {}))
    by_id = {u.pk: u for u in units}
    selected = by_id.get(unit_id) if unit_id else (units[0] if len(units) == 1 else None)
    usage = scope(UsageDay.objects.all(), user)
    jobs = scope(Job.objects.select_related("template", "unit"), user)
    if selected is not None:
        usage, jobs = usage.filter(unit=selected), jobs.filter(unit=selected)
    today = timezone.localdate()
    days = [today - dt.timedelta(days=n) for n in range(USAGE_DAYS - 1, -1, -1)]
    rows = {
        row["day"]: row
        for row in usage.filter(day__gte=days[0])
        .values("day")
        .annotate(sent=Sum("sent"), delivered=Sum("delivered"), failed=Sum("failed"), parts=Sum("parts"))
    }
    sums = usage.filter(day=today).aggregate(
        reserved=Sum("reserved"), sent=Sum("sent"), delivered=Sum("delivered"), failed=Sum("failed")
    )
    today_figures = {key: value or 0 for key, value in sums.items()}
    month = {key: sum((row.get(key) or 0) for row in rows.values()) for key in ("sent", "delivered", "failed", "parts")}
    month["rate"] = _percent(month["delivered"], month["sent"]) if month["sent"] else None
    quota = None
    if selected is not None:
        policy = services.policy_for(selected)
        quota = {"used": today_figures["reserved"], "quota": policy.daily_quota, "policy": policy}
        quota_chart = _gauge_chart(today_figures["reserved"], policy.daily_quota)
    else:
        busiest = list(usage.filter(day=today, reserved__gt=0).select_related("unit").order_by("-reserved")[:10])
        policies = _effective_policies([row.unit for row in busiest])
        quota_chart = (
            _quota_bars([(row.unit.name, row.reserved, policies[row.unit_id].daily_quota) for row in busiest])
            if busiest
            else None
        )
    return render(
        request,
        "notify/dashboard.html",
        {
            "filter_form": form,
            "selected_unit": selected,
            "today": today_figures,
            "month": month,
            "quota": quota,
            "usage_chart": _usage_chart(rows, days),
            "quota_chart": quota_chart,
            "recent_jobs": jobs[:6],
            "open_jobs": jobs.filter(status__in=Job.IN_PROGRESS).count(),
            "unconfirmed_jobs": jobs.filter(status=Job.Status.VALIDATED).count(),
            "ntf_section": "dashboard",
        },
    )


# --- send one -------------------------------------------------------------------------------


def _send_preview_context(form: SendForm) -> dict:
    if form.chosen is not None:
        preview = sms_preview(unit=form.unit, body=form.chosen.body, values=form.raw_values())
        urgent = form.chosen.urgent
    else:
        source = form.data if form.is_bound else form.initial
        preview = sms_preview(unit=form.unit, body=str(source.get("body") or ""), is_template=False)
        urgent = False
    source = form.data if form.is_bound else form.initial
    raw_mobile = str(source.get("mobile") or "").strip()
    mobile = normalise_mobile(raw_mobile) if raw_mobile else ""
    policy = services.policy_for(form.unit)
    now = timezone.now()
    quiet_until = None
    if not urgent and services.in_quiet_hours(policy, now):
        quiet_until = services.quiet_hours_end(policy, now)
    preview.update(
        {
            "mobile": mobile,
            "mobile_ok": bool(mobile) and is_valid_mobile(mobile),
            "urgent": urgent,
            "quiet_until": quiet_until,
            "policy": policy,
        }
    )
    return preview


@staff_required
def send(request):
    """发送短信: one SMS from the user's acting unit, with a template or free text."""
    unit, denied = _acting_unit_or_denied(request)
    if denied:
        return denied
    initial_template = None
    wanted = request.GET.get("template", "")
    if wanted.isdigit():
        initial_template = Template.objects.filter(unit=unit, active=True, pk=int(wanted)).first()
    posted = request.method == "POST"
    form = SendForm(request.POST if posted else None, unit=unit, template=initial_template)
    status = 200
    if posted:
        status = 400
        if form.template_changed:
            status = 200
            # The boxes on the page belonged to another template (no JavaScript): show the right ones.
            form = SendForm(unit=unit, template=form.chosen, initial=_carry_over(request.POST))
            messages.info(request, _("已切换模板，请填写模板内容后再发送。"))
        elif form.is_valid():
            data = form.cleaned_data
            try:
                message = services.message_send(
                    unit=unit,
                    mobile=data["mobile"],
                    template=form.chosen,
                    values=form.values() if form.chosen else None,
                    body="" if form.chosen else data["body"],
                    actor=request.user,
                    module="notify",
                    send_at=data.get("send_at"),
                )
            except PermissionDenied as error:
                return _denied(request, str(error))
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                masked = message.mobile[:3] + "****" + message.mobile[-4:]
                if message.not_before and message.not_before > timezone.now():
                    when = timezone.localtime(message.not_before).strftime("%Y-%m-%d %H:%M")
                    text_ = _("短信已保存，将于 %(when)s 发送给 %(mobile)s（计费 %(parts)s 条）。")
                    messages.success(request, text_ % {"when": when, "mobile": masked, "parts": message.parts})
                else:
                    text_ = _("短信已提交发送给 %(mobile)s（计费 %(parts)s 条），可在“短信查询”中查看状态。")
                    messages.success(request, text_ % {"mobile": masked, "parts": message.parts})
                url = reverse("notify:send")
                return redirect(f"{url}?template={form.chosen.pk}" if form.chosen else url)
    return render(
        request,
        "notify/send.html",
        {
            "form": form,
            "preview": _send_preview_context(form),
            "unit": unit,
            "ntf_section": "send",
        },
        status=status,
    )


def _carry_over(data) -> dict:
    keep = {"mobile", "send_at", "body"}
    return {key: data.get(key) for key in data if key in keep or key.startswith(PLACEHOLDER_PREFIX)}


@require_POST
@staff_required
def send_preview(request):
    """htmx: the live preview of the send form; with new placeholder boxes when the template changed."""
    unit, denied = _acting_unit_or_denied(request)
    if denied:
        return denied
    form = SendForm(request.POST, unit=unit)
    fields_form = None
    if form.template_changed:
        fields_form = SendForm(unit=unit, template=form.chosen, initial=_carry_over(request.POST))
    return render(
        request,
        "notify/_send_preview_response.html",
        {"preview": _send_preview_context(form), "fields_form": fields_form},
    )


# --- templates ------------------------------------------------------------------------------


def _template_units(user) -> list[Unit]:
    """Units the user may keep templates for: the acting unit first, then the others in scope."""
    acting = user.acting_unit
    units = [u for u in _visible_units(user) if services.can_use_unit(user, u)]
    if acting is not None:
        units = [acting] + [u for u in units if u.pk != acting.pk]
    return units


@staff_required
def template_list(request):
    user = request.user
    units = list(_visible_units(user))
    form = TemplateFilterForm(request.GET or None, units=units)
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    templates = scope(Template.objects.filter(active=True).select_related("unit", "created_by"), user)
    if data.get("q"):
        q = data["q"]
        templates = templates.filter(Q(name__icontains=q) | Q(code__icontains=q) | Q(body__icontains=q))
    if data.get("kind"):
        templates = templates.filter(kind=data["kind"])
    if _unit_id(data):
        templates = templates.filter(unit_id=_unit_id(data))
    return render(
        request,
        "notify/template_list.html",
        {
            "filter_form": form,
            "filtered": any(data.get(k) for k in ("q", "kind", "unit")),
            "page_obj": paginate(request, templates.order_by("unit__path", "name", "code")),
            "can_create": bool(_template_units(user)),
            "show_unit": len(units) > 1,
            "ntf_section": "templates",
        },
    )


@staff_required
def template_edit(request, pk: int | None = None):
    """New template, or the next version of an existing one (template_save)."""
    user = request.user
    current = None
    if pk is not None:
        shown = _get_template(request, pk)
        current = Template.objects.filter(unit=shown.unit, code=shown.code, active=True).first() or shown
    units = _template_units(user)
    if current is None and not units:
        return _denied(request, _("您当前没有所属单位，无法维护短信模板。"))
    initial = {}
    if current is not None:
        initial = {"code": current.code, "name": current.name, "kind": current.kind, "body": current.body}
    elif user.acting_unit is not None:
        initial = {"unit": str(user.acting_unit.pk)}
    posted = request.method == "POST"
    form = TemplateForm(request.POST if posted else None, units=units, editing=current, initial=initial)
    if posted and form.is_valid():
        data = form.cleaned_data
        unit = current.unit if current is not None else data.get("unit") or units[0]
        try:
            template = services.template_save(
                actor=user,
                unit=unit,
                code=current.code if current is not None else data["code"],
                name=data["name"],
                body=data["body"],
                kind=data["kind"],
            )
        except PermissionDenied as error:
            return _denied(request, str(error))
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(
                request,
                _("模板“%(name)s”已保存为第 %(version)s 版。") % {"name": template.name, "version": template.version},
            )
            return redirect("notify:template_detail", pk=template.pk)
    preview_unit = current.unit if current is not None else (user.acting_unit or (units[0] if units else None))
    body = (request.POST.get("body") if posted else initial.get("body")) or ""
    return render(
        request,
        "notify/template_form.html",
        {
            "form": form,
            "current": current,
            "preview": sms_preview(unit=preview_unit, body=body) if preview_unit else None,
            "ntf_section": "templates",
        },
        status=400 if posted else 200,
    )


@require_POST
@staff_required
def template_preview(request):
    """htmx: length, parts and placeholders of a template body being edited."""
    units = {str(u.pk): u for u in _template_units(request.user)}
    unit = None
    template_pk = request.POST.get("template", "")
    if template_pk.isdigit():
        found = scope(Template.objects.select_related("unit"), request.user).filter(pk=int(template_pk)).first()
        unit = found.unit if found is not None else None
    if unit is None:
        unit = units.get(request.POST.get("unit", "")) or request.user.acting_unit
    if unit is None:
        raise Http404(_("没有可用的单位。"))
    preview = sms_preview(unit=unit, body=request.POST.get("body", ""))
    return render(request, "notify/_preview.html", {"preview": preview, "mode": "template"})


@staff_required
def template_detail(request, pk: int):
    template = _get_template(request, pk)
    versions = Template.objects.filter(unit=template.unit, code=template.code).select_related("created_by")
    names = text.placeholders(template.body)
    samples = {name: request.GET.get(PLACEHOLDER_PREFIX + name, "") for name in names}
    preview = sms_preview(unit=template.unit, body=template.body, values=samples)
    if request.htmx:
        return render(request, "notify/_preview.html", {"preview": preview, "mode": "sample"})
    return render(
        request,
        "notify/template_detail.html",
        {
            "template": template,
            "versions": versions.order_by("-version"),
            "samples": [
                (PLACEHOLDER_PREFIX + name, name, value, index) for index, (name, value) in enumerate(samples.items())
            ],
            "preview": preview,
            "can_edit": services.can_use_unit(request.user, template.unit),
            "can_send": template.active and request.user.acting_unit_id == template.unit_id,
            "ntf_section": "templates",
        },
    )


# --- jobs -----------------------------------------------------------------------------------


@staff_required
def job_list(request):
    user = request.user
    units = list(_visible_units(user))
    form = JobFilterForm(request.GET or None, units=units)
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    jobs = scope(Job.objects.select_related("template", "unit", "created_by"), user)
    if data.get("q"):
        q = data["q"]
        jobs = jobs.filter(Q(source_name__icontains=q) | Q(template__name__icontains=q))
    if data.get("status"):
        jobs = jobs.filter(status=data["status"])
    if _unit_id(data):
        jobs = jobs.filter(unit_id=_unit_id(data))
    return render(
        request,
        "notify/job_list.html",
        {
            "filter_form": form,
            "filtered": any(data.get(k) for k in ("q", "status", "unit")),
            "page_obj": paginate(request, jobs.order_by("-created_at", "-id")),
            "show_unit": len(units) > 1,
            "ntf_section": "jobs",
        },
    )


@staff_required
def job_create(request):
    """上传号码文件: the sheet is checked in the background; the job page shows the progress."""
    unit, denied = _acting_unit_or_denied(request)
    if denied:
        return denied
    posted = request.method == "POST"
    initial = {}
    if request.GET.get("template", "").isdigit():
        initial["template"] = int(request.GET["template"])
    form = JobUploadForm(request.POST if posted else None, request.FILES if posted else None, unit=unit,
                         initial=initial)  # fmt: skip
    if posted and form.is_valid():
        try:
            job = services.job_create(
                actor=request.user, unit=unit, template=form.cleaned_data["template"], upload=form.cleaned_data["file"],
                allow_duplicates=form.cleaned_data["allow_duplicates"],
            )  # fmt: skip
        except PermissionDenied as error:
            return _denied(request, str(error))
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                add_service_errors(form, error)
            else:
                form.add_error("file", error.messages)  # a problem of the file itself
        else:
            messages.success(request, _("文件已上传，正在校验号码与内容。"))
            return redirect("notify:job_detail", pk=job.pk)
    chosen = form["template"].value()
    template = form.fields["template"].queryset.filter(pk=chosen).first() if str(chosen or "").isdigit() else None
    return render(
        request,
        "notify/job_form.html",
        {
            "form": form,
            "columns": _columns(template),
            "chosen_template": template,
            "has_templates": form.fields["template"].queryset.exists(),
            "ntf_section": "jobs",
        },
        status=400 if posted else 200,
    )


def _columns(template: Template | None) -> list[str]:
    if template is None:
        return []
    return [_("手机号"), *text.placeholders(template.body)]


@require_GET
@staff_required
def job_columns(request):
    """htmx: the header row the chosen template needs."""
    raw = request.GET.get("template", "")
    template = None
    if raw.isdigit():
        template = scope(Template.objects.filter(active=True), request.user).filter(pk=int(raw)).first()
    return render(request, "notify/_job_columns.html", {"columns": _columns(template), "chosen_template": template})


@require_GET
@staff_required
def job_sample(request, pk: int):
    """A header-only CSV for a template: 手机号 plus one column per placeholder."""
    template = _get_template(request, pk)
    from . import spreadsheet

    body = spreadsheet.to_csv_bytes(_columns(template), [])
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = _attachment(
        _("%(code)s-号码模板.csv") % {"code": template.code}, f"{template.code}-recipients.csv"
    )
    return response


def _attachment(filename: str, fallback: str) -> str:
    """Content-Disposition with the Chinese name (RFC 5987) and an ASCII one for old clients."""
    from urllib.parse import quote

    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def _estimated_rows(job: Job) -> int | None:
    """About how many rows a CSV being checked has (from its size and first 64 KB)."""
    if not job.source or not job.source_name.lower().endswith((".csv", ".txt")):
        return None
    try:
        size = job.source.size
        with job.source.open("rb") as handle:
            sample = handle.read(64 * 1024)
    except (OSError, ValueError):
        return None
    lines = sample.count(b"\n")
    if not sample or not lines:
        return None
    if len(sample) >= size:
        return max(0, lines - (0 if sample.endswith(b"\n") else -1) - 1)
    return max(1, int(size * lines / len(sample)) - 1)


def _job_context(request, job: Job, *, confirm_form=None, action_errors=()) -> dict:
    policy = services.policy_for(job.unit)
    context = {
        "job": job,
        "can_act": services.can_use_unit(request.user, job.unit),
        "can_cancel": job.status in Job.OPEN and services.can_use_unit(request.user, job.unit),
        "action_errors": list(action_errors),
        "policy": policy,
        "poll": "",
    }
    if job.status == Job.Status.VALIDATING:
        estimate = _estimated_rows(job)
        percent = min(99, _percent(job.processed_rows, estimate)) if estimate else None
        context.update({"estimate": estimate, "percent": percent, "poll": "every 1s"})
        if percent is not None:
            context["bar_class"] = _bar_class(percent)
    elif job.status == Job.Status.INVALID:
        pass
    else:
        context["sample_rows"] = list(Message.objects.filter(job=job).order_by("row")[:PREVIEW_ROWS])
        context["errors_shown"] = job.errors[:ERROR_ROWS_SHOWN]
        progress = services.job_progress(job)
        labels = dict(Message.Status.choices)
        context["progress"] = progress
        S = Message.Status
        pending = sum(progress.get(s, 0) for s in (S.CREATED, S.SENDING, S.TEMPORARY_FAILURE))
        context["by_status"] = [
            ("delivered", labels[S.DELIVERED], progress.get(S.DELIVERED, 0)),
            ("sent", _("已提交，待回执"), progress.get(S.SENT, 0)),
            ("created", _("待发送或重试中"), pending),
            ("permanent_failure", labels[S.PERMANENT_FAILURE], progress.get(S.PERMANENT_FAILURE, 0)),
            ("cancelled", labels[S.CANCELLED], progress.get(S.CANCELLED, 0)),
        ]
        context["failed"] = sum(progress.get(s, 0) for s in FAILED_STATES)
        percent = _percent(progress["done"], progress["total"])
        context.update({"percent": percent, "bar_class": _bar_class(percent)})
        if job.status == Job.Status.VALIDATED:
            today = timezone.localdate()
            used = UsageDay.objects.filter(unit=job.unit, day=today).values_list("reserved", flat=True).first() or 0
            context.update(
                {
                    "confirm_form": confirm_form or JobConfirmForm(),
                    "needs_approval": job.valid_rows >= policy.approval_threshold and not job.test,
                    "quota_used": used,
                    "quota_left": max(0, policy.daily_quota - used),
                }
            )
        elif job.status == Job.Status.SENDING:
            context["poll"] = "every 1s"
        elif job.status in (Job.Status.SCHEDULED, Job.Status.PENDING_APPROVAL):
            context["poll"] = "every 5s"
        if job.approval_case_id:
            from yiwang.workflow import selectors as wf_selectors

            case = wf_selectors.case_get(user=request.user, pk=job.approval_case_id)
            context["approval_case"] = case
    return context


@staff_required
def job_detail(request, pk: int):
    job = _get_job(request, pk)
    return render(request, "notify/job_detail.html", {**_job_context(request, job), "ntf_section": "jobs"})


@require_GET
@staff_required
def job_progress(request, pk: int):
    """htmx, every second while checking or sending: the job's live part."""
    job = _get_job(request, pk)
    return render(request, "notify/_job_body.html", _job_context(request, job))


@require_POST
@staff_required
def job_confirm(request, pk: int):
    job = _get_job(request, pk)
    form = JobConfirmForm(request.POST)
    errors: list[str] = []
    if form.is_valid():
        try:
            job = services.job_confirm(actor=request.user, job=job, send_at=form.cleaned_data.get("send_at"))
        except PermissionDenied as error:
            return _denied(request, str(error))
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                add_service_errors(form, error)
            else:
                errors = list(error.messages)
        else:
            if job.status == Job.Status.PENDING_APPROVAL:
                messages.success(request, _("已确认。群发规模达到审批标准，已提交单位主要领导审批，批准后发送。"))
            elif job.scheduled_for and job.scheduled_for > timezone.now() + dt.timedelta(minutes=1):
                when = timezone.localtime(job.scheduled_for).strftime("%Y-%m-%d %H:%M")
                messages.success(request, _("已确认，将于 %(when)s 开始发送。") % {"when": when})
            else:
                messages.success(request, _("已确认，开始发送。"))
            return redirect("notify:job_detail", pk=job.pk)
    job.refresh_from_db()
    context = _job_context(request, job, confirm_form=form, action_errors=errors)
    return render(request, "notify/job_detail.html", {**context, "ntf_section": "jobs"}, status=400)


@require_POST
@staff_required
def job_cancel(request, pk: int):
    job = _get_job(request, pk)
    try:
        services.job_cancel(actor=request.user, job=job)
    except PermissionDenied as error:
        return _denied(request, str(error))
    except ValidationError as error:
        for message in _error_messages(error):
            messages.error(request, message)
    else:
        messages.success(request, _("群发任务已取消，尚未发出的短信不会再发送。"))
    return redirect("notify:job_detail", pk=job.pk)


@require_GET
@staff_required
def job_error_report(request, pk: int):
    """The full error report of the file check (CSV: 行号, 手机号, 问题)."""
    job = _get_job(request, pk)
    if not job.error_report:
        raise Http404(_("该任务没有错误报告。"))
    try:
        handle = job.error_report.open("rb")
    except (FileNotFoundError, OSError) as error:
        raise Http404(_("错误报告文件已丢失。")) from error
    stem = job.source_name.rsplit(".", 1)[0] or f"job-{job.pk}"
    response = FileResponse(handle, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = _attachment(
        _("%(name)s-错误报告.csv") % {"name": stem}, f"job-{job.pk}-errors.csv"
    )
    return response


class _Echo:
    def write(self, value):
        return value


@require_GET
@staff_required
def job_failures(request, pk: int):
    """Rows that could not be delivered, as CSV (手机号, 行号, 状态, 错误码, 错误说明)."""
    job = _get_job(request, pk)
    labels = dict(Message.Status.choices)
    rows = (
        Message.objects.filter(job=job, status__in=FAILED_STATES)
        .order_by("row")
        .values_list("mobile", "row", "status", "error_code", "error")
    )

    def lines():
        writer = csv.writer(_Echo())
        yield "\ufeff" + writer.writerow([_("手机号"), _("行号"), _("状态"), _("错误码"), _("错误说明")])
        for mobile, row, status, code, error in rows.iterator(chunk_size=2000):
            yield writer.writerow([mobile, row, labels.get(status, status), code, error])

    stem = job.source_name.rsplit(".", 1)[0] or f"job-{job.pk}"
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = _attachment(
        _("%(name)s-发送失败.csv") % {"name": stem}, f"job-{job.pk}-failed.csv"
    )
    return response


# --- message lookup -------------------------------------------------------------------------


@staff_required
def message_list(request):
    user = request.user
    units = list(_visible_units(user))
    form = MessageFilterForm(request.GET or None, units=units)
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    found = scope(Message.objects.select_related("unit", "template", "job"), user)
    mobile = "".join(ch for ch in (data.get("mobile") or "") if ch.isdigit())
    if mobile:
        found = found.filter(mobile=mobile) if len(mobile) == 11 else found.filter(mobile__contains=mobile)
    if data.get("status"):
        found = found.filter(status=data["status"])
    tz = timezone.get_current_timezone()
    if data.get("date_from"):
        found = found.filter(created_at__gte=dt.datetime.combine(data["date_from"], dt.time.min, tzinfo=tz))
    if data.get("date_to"):
        end = data["date_to"] + dt.timedelta(days=1)
        found = found.filter(created_at__lt=dt.datetime.combine(end, dt.time.min, tzinfo=tz))
    if _unit_id(data):
        found = found.filter(unit_id=_unit_id(data))
    job = None
    if data.get("job"):
        job = scope(Job.objects.all(), user).filter(pk=data["job"]).first()
        found = found.filter(job=job) if job else found.none()
    return render(
        request,
        "notify/message_list.html",
        {
            "filter_form": form,
            "filtered": any(data.get(k) for k in ("mobile", "status", "date_from", "date_to", "unit", "job")),
            "page_obj": paginate(request, found.order_by("-id")),
            "show_unit": len(units) > 1,
            "job": job,
            "ntf_section": "messages",
        },
    )


# --- policies (platform admins) ----------------------------------------------------------------


@platform_admin_required
def policy_list(request):
    q = (request.GET.get("q") or "").strip()[:100]
    units = Unit.objects.filter(status=Unit.Status.ACTIVE).order_by("path")
    if q:
        units = units.filter(Q(name__icontains=q) | Q(code__icontains=q) | Q(short_name__icontains=q))
    page_obj = paginate(request, units)
    policies = _effective_policies(page_obj.object_list)
    rows = [{"unit": unit, "policy": policies[unit.pk], "own": policies[unit.pk].unit_id == unit.pk}
            for unit in page_obj.object_list]  # fmt: skip
    default = Policy.objects.filter(unit__isnull=True).first() or Policy(unit=None)
    filter_form = PolicyFilterForm(request.GET or None)
    return render(
        request,
        "notify/policy_list.html",
        {
            "default": default,
            "rows": rows,
            "page_obj": page_obj,
            "filter_form": filter_form,
            "filtered": bool(q),
            "ntf_section": "policies",
        },
    )


@platform_admin_required
def policy_edit(request, unit_pk: int | None = None):
    unit = None
    if unit_pk is not None:
        unit = Unit.objects.filter(pk=unit_pk).first()
        if unit is None:
            raise Http404(_("单位不存在。"))
    own = Policy.objects.filter(unit=unit).first()
    effective = own or (services.policy_for(unit) if unit is not None else Policy(unit=None))
    fields = ("signature", "daily_quota", "per_minute", "approval_threshold", "quiet_start", "quiet_end", "enabled")
    initial = {name: getattr(effective, name) for name in fields}
    posted = request.method == "POST"
    form = PolicyForm(request.POST if posted else None, initial=initial)
    if posted and form.is_valid():
        try:
            services.policy_save(actor=request.user, unit=unit, **{name: form.cleaned_data[name] for name in fields})
        except PermissionDenied as error:
            return _denied(request, str(error))
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            name = unit.name if unit is not None else _("全区默认策略")
            messages.success(request, _("“%(name)s”的短信策略已保存。") % {"name": name})
            return redirect("notify:policies")
    return render(
        request,
        "notify/policy_form.html",
        {
            "form": form,
            "unit": unit,
            "own": own,
            "inherited_from": None if own or unit is None else (effective.unit or None),
            "ntf_section": "policies",
        },
        status=400 if posted else 200,
    )


# --- opt-outs (退订) ---------------------------------------------------------------------------


def _optout_page(request, *, add_form=None, status=200):
    form = OptOutFilterForm(request.GET or None)
    form.is_valid()
    q = "".join(ch for ch in (getattr(form, "cleaned_data", {}).get("q") or "") if ch.isdigit())
    optouts = OptOut.objects.all()
    if q:
        optouts = optouts.filter(mobile__contains=q)
    can_manage = request.user.is_platform_admin
    return render(
        request,
        "notify/optout_list.html",
        {
            "filter_form": form,
            "filtered": bool(q),
            "page_obj": paginate(request, optouts.order_by("-created_at", "-id")),
            "can_manage": can_manage,
            "add_form": (add_form or OptOutForm()) if can_manage else None,
            "ntf_section": "optouts",
        },
        status=status,
    )


@login_required
def optout_list(request):
    if not _can_view_optouts(request.user):
        return _denied(request, _("只有平台管理员和单位管理员可以查看退订名单。"))
    return _optout_page(request)


@require_POST
@login_required
def optout_add(request):
    if not request.user.is_platform_admin:
        return _denied(request, _("只有平台管理员可以维护退订名单。"))
    form = OptOutForm(request.POST)
    if form.is_valid():
        try:
            optout = services.optout_add(
                actor=request.user, mobile=form.cleaned_data["mobile"], reason=form.cleaned_data["reason"]
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, _("号码 %(mobile)s 已加入退订名单。") % {"mobile": optout.mobile})
            return redirect("notify:optouts")
    return _optout_page(request, add_form=form, status=400)


@require_POST
@login_required
def optout_remove(request):
    if not request.user.is_platform_admin:
        return _denied(request, _("只有平台管理员可以维护退订名单。"))
    mobile = request.POST.get("mobile", "")
    if services.optout_remove(actor=request.user, mobile=mobile):
        messages.success(request, _("号码 %(mobile)s 已移出退订名单，可以再次接收通知类短信。") % {"mobile": mobile})
    else:
        messages.error(request, _("退订名单中没有号码 %(mobile)s。") % {"mobile": mobile})
    return redirect("notify:optouts")


# --- receipts from the gateways (回执) -------------------------------------------------------------


def _plain(status: int, message: str) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _gateway_push(request, gateway_code: str, parse: str, apply) -> HttpResponse:
    """A gateway's push (receipts or replies): size-bounded, verified by the adapter, then applied."""
    try:
        gateway = gateways.get_gateway(gateway_code)
    except gateways.UnknownGateway:
        raise Http404(_("未知的短信通道。")) from None
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_RECEIPT_BYTES:
        return _plain(413, _("回执过大。"))
    body = request.read(MAX_RECEIPT_BYTES + 1)
    if len(body) > MAX_RECEIPT_BYTES:
        return _plain(413, _("回执过大。"))
    try:
        parsed = getattr(gateway, parse)(body, request.headers, request.GET)
    except gateways.RepliesUnsupported:
        raise Http404(_("该短信通道不支持上行短信。")) from None
    except gateways.BadSignature as error:
        return _plain(403, str(error) or _("回执签名校验失败"))
    except gateways.BadReceipt as error:
        return _plain(400, str(error) or _("回执格式无法解析"))
    apply(gateway_code=gateway_code, parsed=parsed)
    return HttpResponse(gateway.receipt_ack(), content_type="application/json")


@csrf_exempt
@require_POST
def receipts(request, gateway_code: str):
    """A gateway's delivery-report push (no login)."""
    return _gateway_push(request, gateway_code, "parse_receipts",
                         lambda gateway_code, parsed: services.receipts_apply(gateway_code=gateway_code,
                                                                              receipts=parsed))  # fmt: skip


@csrf_exempt
@require_POST
def replies(request, gateway_code: str):
    """A gateway's push of people's replies (上行短信), signed like receipts (no login)."""
    return _gateway_push(request, gateway_code, "parse_replies",
                         lambda gateway_code, parsed: services.replies_apply(gateway_code=gateway_code,
                                                                             replies=parsed))  # fmt: skip


@login_required
def reply_list(request):
    """上行短信: what people replied to the platform's number, newest first."""
    if not _can_view_optouts(request.user):
        return _denied(request, _("只有平台管理员和单位管理员可以查看上行短信。"))
    form = OptOutFilterForm(request.GET or None)
    form.is_valid()
    q = "".join(ch for ch in (getattr(form, "cleaned_data", {}).get("q") or "") if ch.isdigit())
    found = InboundSms.objects.all()
    if q:
        found = found.filter(mobile__contains=q)
    return render(request, "notify/reply_list.html", {
        "filter_form": form, "filtered": bool(q), "page_obj": paginate(request, found.order_by("-received_at", "-id")),
        "ntf_section": "replies",
    })  # fmt: skip
