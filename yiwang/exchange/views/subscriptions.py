"""Subscription pages (订阅): my unit's subscriptions with their push state, the form to
subscribe a system to a granted resource (or change its webhook), cancel and "retry now".

The signing secret of a new subscription is shown once, on the page the form leads to.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from yiwang.core import webhooks
from yiwang.core.ui import add_service_errors, paginate
from yiwang.org.models import ConsumerSystem

from .. import services, subscriptions
from ..models import CatalogEntry, Subscription
from .common import act, denied, page, staff_required

SECTION = "subscriptions"
STAFF_ONLY = gettext_lazy("订阅管理仅供机关工作人员使用。")
SECRET_SESSION_KEY = "exchange_subscription_secret"


class SubscriptionFilterForm(forms.Form):
    q = forms.CharField(
        label=gettext_lazy("搜索"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": gettext_lazy("系统、资源代码、推送地址"), "type": "search"}),
    )
    state = forms.ChoiceField(
        label=gettext_lazy("状态"),
        required=False,
        choices=[
            ("", gettext_lazy("全部")),
            ("active", gettext_lazy("启用")),
            ("failing", gettext_lazy("推送失败")),
            ("inactive", gettext_lazy("已停用")),
        ],
    )
    system = forms.ChoiceField(label=gettext_lazy("业务系统"), required=False)

    def __init__(self, *args, systems: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["system"].choices = [("", _("全部系统")), *((str(s.pk), s.name) for s in systems)]


class SubscriptionForm(forms.Form):
    grant = forms.ChoiceField(
        label=gettext_lazy("订阅的资源"), help_text=gettext_lazy("只能订阅本单位业务系统已获授权、接入基础库的资源")
    )
    webhook_url = forms.CharField(
        label=gettext_lazy("推送地址"),
        max_length=300,
        required=False,
        widget=forms.URLInput(attrs={"placeholder": "https://"}),
        help_text=gettext_lazy("有变更时 POST 到这里（签名 JSON）；留空则只能按游标拉取"),
    )

    def __init__(self, *args, choices: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["grant"].choices = [("", _("请选择")), *choices]


def _get(request, pk: int) -> Subscription:
    subscription = subscriptions.subscriptions_visible(user=request.user).filter(pk=pk).first()
    if subscription is None:
        raise Http404(_("订阅不存在或无权查看。"))
    return subscription


@staff_required(SECTION, STAFF_ONLY)
def subscription_list(request):
    user = request.user
    visible = subscriptions.subscriptions_visible(user=user)
    systems = list(ConsumerSystem.objects.filter(pk__in=visible.values("system_id")).order_by("id"))
    form = SubscriptionFilterForm(request.GET or None, systems=systems)
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    qs = visible
    if data.get("q"):
        q = data["q"]
        qs = qs.filter(Q(system__name__icontains=q) | Q(resource_code__icontains=q) | Q(webhook_url__icontains=q))
    state = data.get("state")
    if state == "active":
        qs = qs.filter(active=True)
    elif state == "failing":
        qs = qs.filter(active=True, failures__gt=0)
    elif state == "inactive":
        qs = qs.filter(active=False)
    if data.get("system"):
        qs = qs.filter(system_id=int(data["system"]))
    page_obj = paginate(request, qs.order_by("-active", "system_id", "resource_code"))
    entries = {
        e.code: e
        for e in CatalogEntry.objects.filter(
            code__in=[s.resource_code for s in page_obj], status=CatalogEntry.Status.PUBLISHED
        )
    }
    live = {
        (g.system_id, g.resource_code): g.pk
        for g, _entry in subscriptions.grants_for(systems=list({s.system_id: s.system for s in page_obj}.values()))
    }
    for subscription in page_obj:
        subscription.grant_id = live.get((subscription.system_id, subscription.resource_code))
        entry = entries.get(subscription.resource_code)
        subscription.entry = entry
        subscription.backlog = subscriptions.backlog(subscription, registry=entry.registry if entry else "")
        subscription.manageable = subscriptions.can_manage(user, subscription)
    secret = request.session.pop(SECRET_SESSION_KEY, None)
    return page(
        request,
        "exchange/subscription_list.html",
        {
            "filter_form": form,
            "filtered": any(data.get(k) for k in ("q", "state", "system")),
            "page_obj": page_obj,
            "new_secret": secret,
            "max_failures": subscriptions.MAX_FAILURES,
            "signature_header": webhooks.SIGNATURE_HEADER,
            "timestamp_header": webhooks.TIMESTAMP_HEADER,
            "can_create": bool(subscriptions.systems_of(user=user)),
            "show_unit": services.is_egov(user),
        },
        section=SECTION,
    )


@staff_required(SECTION, STAFF_ONLY)
def subscription_create(request):
    user = request.user
    granted = subscriptions.grants_for(systems=subscriptions.systems_of(user=user))
    choices = [(str(g.pk), f"{g.system.name} · {e.name}（{e.code}）") for g, e in granted]
    by_id = {str(g.pk): g for g, _e in granted}
    initial = {}
    if request.method == "GET" and request.GET.get("grant") in by_id:
        grant = by_id[request.GET["grant"]]
        initial["grant"] = request.GET["grant"]
        existing = Subscription.objects.filter(system=grant.system, resource_code=grant.resource_code).first()
        if existing is not None:
            initial["webhook_url"] = existing.webhook_url
    form = SubscriptionForm(request.POST or None, initial=initial, choices=choices)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            grant = by_id[form.cleaned_data["grant"]]
            try:
                subscription, secret = subscriptions.subscription_save(
                    actor=user,
                    system=grant.system,
                    resource_code=grant.resource_code,
                    webhook_url=form.cleaned_data["webhook_url"],
                )
            except PermissionDenied as error:
                return denied(request, str(error), section=SECTION)
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                if secret:
                    request.session[SECRET_SESSION_KEY] = {"id": subscription.pk, "secret": secret}
                    messages.success(request, _("已订阅。签名密钥只显示这一次，请立即保存。"))
                else:
                    messages.success(request, _("订阅已更新。"))
                return redirect("exchange:subscriptions")
    return page(
        request,
        "exchange/subscription_form.html",
        {"form": form, "has_choices": bool(choices)},
        section=SECTION,
        status=status,
    )


@require_POST
@staff_required(SECTION, STAFF_ONLY)
def subscription_cancel(request, pk: int):
    subscription = _get(request, pk)
    return act(
        request,
        lambda: subscriptions.subscription_cancel(actor=request.user, subscription=subscription),
        success=_("订阅已取消，不再推送。"),
        section=SECTION,
        then="exchange:subscriptions",
    )


@require_POST
@staff_required(SECTION, STAFF_ONLY)
def subscription_retry(request, pk: int):
    subscription = _get(request, pk)
    return act(
        request,
        lambda: subscriptions.subscription_retry(actor=request.user, subscription=subscription),
        success=_("将在半分钟内重新推送。"),
        section=SECTION,
        then="exchange:subscriptions",
    )
