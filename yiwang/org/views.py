"""Screens of org: login, unit switcher, TOTP, units, people, delegation, API keys.

Views stay thin: a form validates, a service writes, a selector reads.
"""

from __future__ import annotations

import base64
import io

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from yiwang.core.ui import add_service_errors, paginate

from . import selectors, services
from . import usage as usage_selectors
from .forms import (
    ApiKeyForm,
    DelegationForm,
    LoginForm,
    NewPersonForm,
    OtpForm,
    PersonFilterForm,
    PersonForm,
    PostForm,
    SetPasswordForm,
    SystemForm,
    UnitAbolishForm,
    UnitFilterForm,
    UnitForm,
    UnitMergeForm,
    UsageFilterForm,
)
from .middleware import SESSION_POST
from .models import Post

# --- sign in, out, switch -----------------------------------------------------------------


class LoginView(auth_views.LoginView):
    template_name = "org/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


def locked_out(request, original_response=None, credentials=None):
    """axes calls this when an account is locked after too many failed attempts."""
    minutes = round(settings.AXES_COOLOFF_TIME * 60)
    return render(request, "org/locked_out.html", {"cooloff_minutes": minutes}, status=429)


@require_POST
@login_required
def switch_post(request):
    """The unit switcher: act for another of one's posts (or a delegated one)."""
    try:
        post_id = int(request.POST.get("post", ""))
    except ValueError:
        post_id = None
    if post_id not in {p.id for p in request.user.available_posts()}:
        messages.error(request, _("无法切换到该岗位。"))
    else:
        request.session[SESSION_POST] = post_id
        request.user.set_acting_post(post_id)
        messages.success(request, _("已切换到：%(post)s") % {"post": request.user.acting_post})
    nxt = request.POST.get("next") or request.META.get("HTTP_REFERER") or ""
    if not url_has_allowed_host_and_scheme(nxt, {request.get_host()}):
        nxt = reverse("core:workbench")
    return redirect(nxt)


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "org/form_page.html"
    success_url = reverse_lazy("core:workbench")
    extra_context = {"title": _("修改密码"), "submit_label": _("修改密码")}

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(user=self.request.user)
        messages.success(self.request, _("密码已修改。"))
        return response


def _safe_next(request) -> str:
    nxt = request.GET.get("next") or request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(nxt, {request.get_host()}):
        return nxt
    return reverse("core:workbench")


@login_required
def otp_setup(request):
    """Bind an authenticator app (TOTP); platform admins must do this before anything else."""
    device = TOTPDevice.objects.filter(user=request.user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=request.user, name=_("身份验证器"), confirmed=False)
    form = OtpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"]):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=request.user).exclude(pk=device.pk).delete()
            otp_login(request, device)
            messages.success(request, _("身份验证器已绑定。"))
            return redirect(_safe_next(request))
        form.add_error("token", _("动态码不正确，请确认手机时间准确后重试。"))
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode("utf-8")
    svg = svg[svg.index("<svg") :]
    secret = base64.b32encode(device.bin_key).decode("ascii")
    return render(request, "org/otp_setup.html", {"form": form, "qr_svg": svg, "secret": secret})


@login_required
def otp_verify(request):
    form = OtpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        for device in TOTPDevice.objects.filter(user=request.user, confirmed=True):
            if device.verify_token(form.cleaned_data["token"]):
                otp_login(request, device)
                return redirect(_safe_next(request))
        form.add_error("token", _("动态码不正确或已过期。"))
    return render(request, "org/otp_verify.html", {"form": form})


# --- units --------------------------------------------------------------------------------


@login_required
def unit_list(request):
    form = UnitFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    units = selectors.unit_list(
        user=request.user, q=data.get("q", ""), kind=data.get("kind", ""), status=data.get("status", "")
    )
    return render(
        request,
        "org/unit_list.html",
        {
            "filter_form": form,
            "page_obj": paginate(request, units, per_page=30),
            "can_create": services.can_manage_unit(request.user, request.user.acting_unit),
        },
    )


def _manageable_units(user):
    return [u for u in selectors.unit_list(user=user, status="active") if services.can_manage_unit(user, u)]


@login_required
def unit_create(request):
    parents = _manageable_units(request.user)
    if not parents and not services.can_manage_unit(request.user, None):
        raise PermissionDenied(_("无权新增单位。"))
    form = UnitForm(request.POST or None, parents=parents, initial={"parent": request.GET.get("parent")})
    if request.method == "POST" and form.is_valid():
        try:
            unit = services.unit_create(actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, _("已新增单位：%(name)s") % {"name": unit.name})
            return redirect("org:unit_detail", pk=unit.pk)
    return render(
        request, "org/form_page.html", {"form": form, "title": _("新增单位"), "cancel_url": reverse("org:unit_list")}
    )


@login_required
def unit_detail(request, pk: int):
    unit = _get_or_404(selectors.unit_list(user=request.user), pk)
    children = selectors.unit_list(user=request.user, parent=unit.pk)
    people = selectors.person_list(user=request.user, unit=unit.pk)
    return render(
        request,
        "org/unit_detail.html",
        {
            "unit": unit,
            "children": children,
            "people_page": paginate(request, people, per_page=20),
            "can_manage": services.can_manage_unit(request.user, unit),
        },
    )


@login_required
def unit_edit(request, pk: int):
    unit = _get_or_404(selectors.unit_list(user=request.user), pk)
    services.ensure_can_manage(request.user, unit)
    parents = [u for u in _manageable_units(request.user) if not u.path.startswith(unit.path)]
    initial = {f: getattr(unit, f) for f in ("name", "short_name", "code", "kind", "sort_order", "phone", "address")}
    initial["parent"] = unit.parent_id
    form = UnitForm(request.POST or None, parents=parents, instance=unit, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.unit_update(actor=request.user, unit=unit, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, _("单位信息已保存。"))
            return redirect("org:unit_detail", pk=unit.pk)
    return render(
        request,
        "org/form_page.html",
        {
            "form": form,
            "title": _("编辑单位：%(name)s") % {"name": unit.name},
            "cancel_url": reverse("org:unit_detail", args=[unit.pk]),
        },
    )


@login_required
def unit_merge(request, pk: int):
    """合并: the unit's sub-units and people move to another unit (GET and POST both need the right)."""
    unit = _get_or_404(selectors.unit_list(user=request.user, status="active"), pk)
    services.ensure_can_manage(request.user, unit)
    targets = [u for u in _manageable_units(request.user) if not u.path.startswith(unit.path)]
    form = UnitMergeForm(request.POST or None, targets=targets)
    if request.method == "POST" and form.is_valid():
        try:
            services.unit_merge(actor=request.user, unit=unit, into=form.cleaned_data["merged_into"])
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(
                request, _("已将 %(unit)s 并入 %(into)s。") % {"unit": unit.name, "into": unit.merged_into.name}
            )
            return redirect("org:unit_detail", pk=unit.merged_into_id)
    return render(
        request,
        "org/form_page.html",
        {
            "form": form,
            "title": _("合并单位：%(name)s") % {"name": unit.name},
            "submit_label": _("合并"),
            "cancel_url": reverse("org:unit_detail", args=[unit.pk]),
        },
    )


@login_required
def unit_abolish(request, pk: int):
    """撤销: an empty unit is closed (GET and POST both need the right)."""
    unit = _get_or_404(selectors.unit_list(user=request.user, status="active"), pk)
    services.ensure_can_manage(request.user, unit)
    form = UnitAbolishForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.unit_abolish(actor=request.user, unit=unit, reason=form.cleaned_data["reason"])
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, _("已撤销单位：%(name)s") % {"name": unit.name})
            return redirect("org:unit_detail", pk=unit.pk)
    return render(
        request,
        "org/form_page.html",
        {
            "form": form,
            "title": _("撤销单位：%(name)s") % {"name": unit.name},
            "submit_label": _("撤销"),
            "cancel_url": reverse("org:unit_detail", args=[unit.pk]),
        },
    )


def _get_or_404(queryset, pk):
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404(_("记录不存在或无权查看。"))
    return obj


# --- people ---------------------------------------------------------------------------------


@login_required
def person_list(request):
    units = list(selectors.unit_list(user=request.user))
    form = PersonFilterForm(request.GET or None, units=units)
    data = form.cleaned_data if form.is_valid() else {}
    people = selectors.person_list(
        user=request.user,
        q=data.get("q", ""),
        unit=data.get("unit"),
        role=data.get("role", ""),
        active=data.get("active", ""),
    )
    return render(
        request,
        "org/person_list.html",
        {
            "filter_form": form,
            "page_obj": paginate(request, people, per_page=30),
            "can_create": bool(_manageable_units(request.user)),
        },
    )


@login_required
def person_create(request):
    units = _manageable_units(request.user)
    if not units:
        raise PermissionDenied(_("无权新增人员。"))
    form = NewPersonForm(request.POST or None, units=units, actor=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        spec = services.PostSpec(
            unit=data["unit"], role=data["role"], title=data["title"], leader_rank=data["leader_rank"], is_primary=True
        )
        try:
            person = services.person_create(
                actor=request.user,
                username=data["username"],
                full_name=data["full_name"],
                mobile=data["mobile"],
                email=data["email"],
                password=data["password"] or None,
                posts=[spec],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, _("已新增人员：%(name)s") % {"name": person})
            return redirect("org:person_detail", pk=person.pk)
    return render(
        request, "org/form_page.html", {"form": form, "title": _("新增人员"), "cancel_url": reverse("org:person_list")}
    )


@login_required
def person_detail(request, pk: int):
    person = _get_or_404(selectors.person_list(user=request.user), pk)
    units = _manageable_units(request.user)
    post_form = PostForm(units=units, actor=request.user) if units else None
    return render(
        request,
        "org/person_detail.html",
        {
            "person": person,
            "posts": person.posts.select_related("unit", "role").order_by("-active", "-is_primary", "id"),
            "post_form": post_form,
            "can_manage": services.can_manage_person(request.user, person),
        },
    )


@login_required
def person_edit(request, pk: int):
    person = _get_or_404(selectors.person_list(user=request.user), pk)
    services.ensure_can_manage_person(request.user, person)  # on GET too: no form for what POST refuses
    initial = {f: getattr(person, f) for f in ("username", "full_name", "mobile", "email", "is_active")}
    form = PersonForm(request.POST or None, instance=person, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.person_update(actor=request.user, person=person, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, _("人员信息已保存。"))
            return redirect("org:person_detail", pk=person.pk)
    return render(
        request,
        "org/form_page.html",
        {
            "form": form,
            "title": _("编辑人员：%(name)s") % {"name": person},
            "cancel_url": reverse("org:person_detail", args=[person.pk]),
        },
    )


@require_POST
@login_required
def post_add(request, pk: int):
    person = _get_or_404(selectors.person_list(user=request.user), pk)
    form = PostForm(request.POST, units=_manageable_units(request.user), actor=request.user)
    if form.is_valid():
        try:
            services.post_add(actor=request.user, person=person, spec=services.PostSpec(**form.cleaned_data))
            messages.success(request, _("岗位已添加。"))
        except (ValidationError, PermissionDenied) as error:
            messages.error(request, "；".join(getattr(error, "messages", None) or [str(error)]))
    else:
        messages.error(
            request,
            _("岗位信息有误：%(errors)s")
            % {
                "errors": "；".join(
                    f"{form.fields[f].label}：{'，'.join(e)}" if f in form.fields else "，".join(e)
                    for f, e in form.errors.items()
                )
            },
        )
    return redirect("org:person_detail", pk=person.pk)


@login_required
def person_set_password(request, pk: int):
    person = _get_or_404(selectors.person_list(user=request.user), pk)
    services.ensure_can_manage_person(request.user, person, _("无权重置该人员的密码。"))
    form = SetPasswordForm(request.POST or None, person=person)
    if request.method == "POST" and form.is_valid():
        services.person_set_password(actor=request.user, person=person, password=form.cleaned_data["password"])
        messages.success(
            request, _("已为 %(name)s 设置新密码，请当面或电话告知本人，并提醒其登录后修改。") % {"name": person}
        )
        return redirect("org:person_detail", pk=person.pk)
    return render(
        request,
        "org/form_page.html",
        {
            "form": form,
            "title": _("设置密码：%(name)s") % {"name": person},
            "submit_label": _("设置密码"),
            "cancel_url": reverse("org:person_detail", args=[person.pk]),
        },
    )


@require_POST
@login_required
def post_remove(request, pk: int):
    post = get_object_or_404(Post.objects.select_related("unit", "user"), pk=pk)
    services.post_remove(actor=request.user, post=post)
    messages.success(request, _("岗位已解除。"))
    return redirect("org:person_detail", pk=post.user_id)


# --- delegation -----------------------------------------------------------------------------


@login_required
def delegation_list(request):
    form = DelegationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.delegation_create(actor=request.user, principal=request.user, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, _("委托已设置。"))
            return redirect("org:delegation_list")
    return render(
        request, "org/delegation_list.html", {"form": form, "delegations": selectors.delegation_list(user=request.user)}
    )


@require_POST
@login_required
def delegation_revoke(request, pk: int):
    delegation = _get_or_404(selectors.delegation_list(user=request.user), pk)
    services.delegation_revoke(actor=request.user, delegation=delegation)
    messages.success(request, _("委托已撤销。"))
    return redirect("org:delegation_list")


# --- consumer systems and API keys ----------------------------------------------------------


@login_required
def system_list(request):
    units = _manageable_units(request.user)
    if not units:
        raise PermissionDenied(_("无权管理接入系统。"))
    form = SystemForm(request.POST or None, units=units)
    if request.method == "POST" and form.is_valid():
        try:
            system = services.system_create(actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, _("已登记接入系统：%(name)s") % {"name": system.name})
            return redirect("org:system_detail", pk=system.pk)
    return render(request, "org/system_list.html", {"form": form, "systems": selectors.system_list(user=request.user)})


@login_required
def system_detail(request, pk: int):
    system = _get_or_404(selectors.system_list(user=request.user), pk)
    services.ensure_can_manage(request.user, system.unit)
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            _key, new_key = services.api_key_issue(actor=request.user, system=system, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.warning(request, _("新密钥只显示这一次，请立即复制保存。"))
            form = ApiKeyForm()
    return render(
        request,
        "org/system_detail.html",
        {"system": system, "keys": system.keys.order_by("-id"), "form": form, "new_key": new_key},
    )


@require_POST
@login_required
def api_key_revoke(request, pk: int):
    key = _get_or_404(selectors.api_key_list(user=request.user), pk)
    services.api_key_revoke(actor=request.user, key=key)
    messages.success(request, _("密钥已撤销，使用它的请求将被拒绝。"))
    return redirect("org:system_detail", pk=key.system_id)


@login_required
def usage(request):
    """Who uses which module: trend, per module, per unit, idle units, consumer systems."""
    names = usage_selectors.module_names()
    # always bound: no parameters at all is valid too and means the last 30 days
    form = UsageFilterForm(request.GET, user=request.user, module_choices=sorted(names.items()))
    context = {"filter_form": form, "names": names}
    if form.is_valid():
        data = form.cleaned_data
        user, start, end = request.user, data["start"], data["end"]
        module, unit_id = data.get("module") or "", data.get("unit")
        daily = usage_selectors.daily_usage(user=user, start=start, end=end, module=module, unit_id=unit_id)
        context.update(
            start=start,
            end=end,
            module=module,
            module_name=names.get(module, module),
            daily=daily,
            modules=usage_selectors.module_usage(user=user, start=start, end=end, unit_id=unit_id),
            units_page=paginate(
                request, usage_selectors.unit_usage(user=user, start=start, end=end, module=module), per_page=20
            ),
            idle=usage_selectors.idle_units(user=user, module=module, start=start, end=end) if module else None,
            systems=usage_selectors.system_usage(user=user, start=start, end=end),
            chart={
                "tooltip": {"trigger": "axis"},
                "legend": {"data": [_("活跃人数"), _("操作次数")]},
                "grid": {"left": 48, "right": 48, "top": 40, "bottom": 32},
                "xAxis": {"type": "category", "data": [d.day.isoformat() for d in daily]},
                "yAxis": [{"type": "value", "name": _("人")}, {"type": "value", "name": _("次")}],
                "series": [
                    {"name": _("活跃人数"), "type": "line", "data": [d.active_users for d in daily]},
                    {"name": _("操作次数"), "type": "bar", "yAxisIndex": 1, "data": [d.actions for d in daily]},
                ],
            },
        )
    return render(request, "org/usage.html", context)
