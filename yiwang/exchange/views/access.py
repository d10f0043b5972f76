"""Access request and grant pages (共享申请与授权): ask for a resource, answer, withdraw; the
grants a unit holds or gives, their revocation and per-minute limits.

A request is seen by the requesting unit, the provider and the e-gov office; the decision form
shows for whoever ``services.can_decide`` (the provider leader holding the task, or the e-gov
office). Grants: the consumer unit sees them, the provider and the e-gov office manage them.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from yiwang.core.ui import add_service_errors, paginate

from .. import selectors, services
from ..models import AccessRequest, CatalogEntry, Grant, SharingType
from .common import act, denied, page, staff_required

# --- forms ------------------------------------------------------------------------------------


class RequestForm(forms.Form):
    system = forms.TypedChoiceField(
        label=gettext_lazy("申请系统"), coerce=int, help_text=gettext_lazy("数据将由这个业务系统通过接口调用。")
    )
    items = forms.MultipleChoiceField(label=gettext_lazy("申请的信息项"), required=False)
    unmasked = forms.MultipleChoiceField(label=gettext_lazy("申请明文"), required=False)
    purpose = forms.CharField(
        label=gettext_lazy("用途"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("写明具体用途，如：义务教育入学资格核验。"),
    )
    legal_basis = forms.CharField(
        label=gettext_lazy("申请依据"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("法律、法规、政策文件或“三定”职责；有条件共享的资源请务必填写。"),
    )
    service_item = forms.CharField(
        label=gettext_lazy("关联事项"),
        max_length=200,
        required=False,
        help_text=gettext_lazy("使用这些数据办理的政务服务事项，如：义务教育阶段新生入学登记。"),
    )

    def __init__(self, *args, entry: CatalogEntry, systems, **kwargs):
        super().__init__(*args, **kwargs)
        self.systems = {s.pk: s for s in systems}
        self.fields["system"].choices = [(str(s.pk), f"{s.name}（{s.unit.name}）") for s in systems]
        self.item_list = list(entry.items.all())
        self.fields["items"].choices = [(i.code, i.name) for i in self.item_list if i.sharing_type != SharingType.NONE]
        self.fields["unmasked"].choices = [(i.code, i.name) for i in self.item_list if i.personal]

    def rows(self) -> list[dict]:
        chosen = set(self["items"].value() or [])
        plain = set(self["unmasked"].value() or [])
        return [
            {"item": i, "checked": i.code in chosen, "plain": i.code in plain, "closed": i.sharing_type == "none"}
            for i in self.item_list
        ]


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", gettext_lazy("同意")), ("refuse", gettext_lazy("不予同意"))])
    items = forms.MultipleChoiceField(required=False)
    unmasked = forms.MultipleChoiceField(required=False)
    reason = forms.CharField(
        label=gettext_lazy("答复意见"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("不予同意时必填；同意时可说明未同意的信息项及原因。"),
    )

    def __init__(self, *args, request_obj: AccessRequest, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["items"].choices = [(c, c) for c in request_obj.items]
        self.fields["unmasked"].choices = [(c, c) for c in request_obj.unmasked]


class RequestFilterForm(forms.Form):
    tab = forms.CharField(required=False, widget=forms.HiddenInput)
    entry = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    q = forms.CharField(
        label=gettext_lazy("搜索"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": gettext_lazy("资源、系统或用途")}),
    )
    status = forms.ChoiceField(label=gettext_lazy("状态"), required=False)
    overdue = forms.BooleanField(label=gettext_lazy("只看逾期未答复"), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [
            ("", _("全部")),
            ("open", _("待答复（含逾期）")),
            *AccessRequest.Status.choices,
        ]


class GrantFilterForm(forms.Form):
    tab = forms.CharField(required=False, widget=forms.HiddenInput)
    q = forms.CharField(
        label=gettext_lazy("搜索"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": gettext_lazy("资源、系统或用途")}),
    )
    state = forms.ChoiceField(
        label=gettext_lazy("状态"),
        required=False,
        choices=[
            ("", gettext_lazy("全部")),
            ("live", gettext_lazy("有效")),
            ("revoked", gettext_lazy("已撤销")),
            ("expired", gettext_lazy("已过期")),
        ],
    )


# --- helpers -----------------------------------------------------------------------------------


def _tab(request, tabs: list[str]) -> str:
    tab = request.GET.get("tab") or tabs[0]
    return tab if tab in tabs else tabs[0]


def _request_or_404(request, pk: int) -> AccessRequest:
    found = selectors.request_get(user=request.user, pk=pk)
    if found is None:
        raise Http404(_("申请不存在或无权查看。"))
    return found


def _grant_or_404(request, pk: int) -> Grant:
    found = selectors.grant_get(user=request.user, pk=pk)
    if found is None:
        raise Http404(_("授权不存在或无权查看。"))
    return found


def can_manage_grant(user, grant: Grant) -> bool:
    return services.is_egov(user) or services.can_manage_entry(user, provider=grant.provider)


def _item_names(entry: CatalogEntry | None) -> dict[str, object]:
    return {i.code: i for i in entry.items.all()} if entry is not None else {}


# --- requests ------------------------------------------------------------------------------------

TAB_LABELS = {
    "mine": gettext_lazy("我单位提出的"),
    "todo": gettext_lazy("待我单位答复"),
    "all": gettext_lazy("全部"),
    "given": gettext_lazy("我单位提供的"),
}


@staff_required("requests")
def request_list(request):
    user = request.user
    tabs = selectors.request_tabs(user)
    tab = _tab(request, tabs)
    form = RequestFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    requests = selectors.request_list(
        user=user,
        tab=tab,
        status=data.get("status") or "",
        q=(data.get("q") or "").strip(),
        overdue=bool(data.get("overdue")),
        entry=data.get("entry"),
    )
    return page(
        request,
        "exchange/request_list.html",
        {
            "filter_form": form,
            "filtered": any(data.get(k) for k in ("status", "q", "overdue", "entry")),
            "tabs": [(t, TAB_LABELS[t]) for t in tabs],
            "tab": tab,
            "page_obj": paginate(request, requests),
            "to_answer": selectors.requests_to_answer_count(user),
        },
        section="requests",
    )


@staff_required("catalog")
def request_create(request, pk: int):
    """申请共享: a system of the user's unit asks for items of a published resource."""
    user = request.user
    entry = selectors.entry_get(user=user, pk=pk)
    if entry is None:
        raise Http404(_("资源不存在或无权查看。"))
    if entry.status != CatalogEntry.Status.PUBLISHED:
        return denied(request, _("只能申请已发布的资源。"), section="catalog")
    if entry.sharing_type == SharingType.NONE:
        return denied(
            request, _("该资源不予共享，无法申请。依据：%(basis)s") % {"basis": entry.legal_basis}, section="catalog"
        )
    systems = selectors.systems_for(user=user)
    if not systems:
        return denied(
            request, _("您所在单位还没有登记业务系统，请先由单位管理员在“接入系统”中登记。"), section="catalog"
        )
    posted = request.method == "POST"
    initial = {"system": str(systems[0].pk)}
    if not posted and request.GET.get("items"):
        initial["items"] = [c for c in request.GET["items"].split(",") if c]
    form = RequestForm(request.POST if posted else None, entry=entry, systems=systems, initial=initial)
    if posted and form.is_valid():
        data = form.cleaned_data
        try:
            created = services.request_create(
                actor=user,
                system=form.systems[data["system"]],
                entry=entry,
                items=data["items"],
                unmasked=data["unmasked"],
                purpose=data["purpose"],
                legal_basis=data["legal_basis"],
                service_item=data["service_item"],
            )
        except PermissionDenied as error:
            return denied(request, str(error), section="requests")
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            if created.status == AccessRequest.Status.GRANTED:
                messages.success(request, _("所申请的信息项为无条件共享，已自动授权，可以开始调用。"))
            else:
                messages.success(
                    request,
                    _("申请已提交，%(provider)s 应在 %(due)s 前答复。")
                    % {"provider": entry.provider.name, "due": created.due_date.strftime("%Y-%m-%d")},
                )
            return redirect("exchange:request_detail", pk=created.pk)
    return page(
        request,
        "exchange/request_form.html",
        {
            "form": form,
            "entry": entry,
            "rows": form.rows(),
            "text_fields": [form["purpose"], form["legal_basis"], form["service_item"]],
            "reply_days": settings.YIWANG_EXCHANGE_REPLY_DAYS,
        },
        section="requests",
        status=400 if posted else 200,
    )


def _detail(request, obj: AccessRequest, *, decision: DecisionForm | None = None, status: int = 200):
    user = request.user
    names = _item_names(obj.entry)
    can_decide = services.can_decide(user, obj)
    if can_decide and decision is None:
        decision = DecisionForm(request_obj=obj, initial={"items": obj.items, "unmasked": obj.unmasked})
    chosen = set(decision["items"].value() or []) if decision is not None else set()
    plain = set(decision["unmasked"].value() or []) if decision is not None else set()
    rows = [
        {"code": c, "item": names.get(c), "plain": c in obj.unmasked, "keep": c in chosen, "keep_plain": c in plain}
        for c in obj.items
    ]
    return page(
        request,
        "exchange/request_detail.html",
        {
            "req": obj,
            "rows": rows,
            "decision": decision if can_decide else None,
            "can_withdraw": obj.status in AccessRequest.OPEN and services.can_use_system(user, obj.system),
            "is_egov": services.is_egov(user),
            "grants": list(obj.grants.select_related("system")),
            "overdue": obj.status in AccessRequest.OPEN and obj.due_date is not None,
        },
        section="requests",
        status=status,
    )


@staff_required("requests")
def request_detail(request, pk: int):
    return _detail(request, _request_or_404(request, pk))


@require_POST
@staff_required("requests")
def request_decide(request, pk: int):
    obj = _request_or_404(request, pk)
    if not services.can_decide(request.user, obj):
        return denied(request, _("只有提供方的答复人或电子政务办可以答复该申请。"), section="requests")
    form = DecisionForm(request.POST, request_obj=obj)
    if form.is_valid():
        data = form.cleaned_data
        approve = data["decision"] == "approve"
        try:
            decided = services.request_decide(
                actor=request.user,
                request=obj,
                approve=approve,
                reason=data["reason"],
                items=data["items"] if approve else None,
                unmasked=data["unmasked"] if approve else None,
            )
        except PermissionDenied as error:
            return denied(request, str(error), section="requests")
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(
                request,
                _("已同意该申请，授权即时生效。")
                if decided.status == AccessRequest.Status.GRANTED
                else _("已答复不予同意。"),
            )
            return redirect("exchange:request_detail", pk=obj.pk)
    return _detail(request, obj, decision=form, status=400)


@require_POST
@staff_required("requests")
def request_withdraw(request, pk: int):
    obj = _request_or_404(request, pk)
    return act(
        request,
        lambda: services.request_withdraw(actor=request.user, request=obj),
        success=_("申请已撤回。"),
        section="requests",
        then=reverse("exchange:request_detail", args=[obj.pk]),
    )


# --- grants ------------------------------------------------------------------------------------


@staff_required("grants")
def grant_list(request):
    user = request.user
    tabs = selectors.grant_tabs(user)
    tab = _tab(request, tabs)
    form = GrantFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    grants = selectors.grant_list(user=user, tab=tab, q=(data.get("q") or "").strip(), state=data.get("state") or "")
    page_obj = paginate(request, grants)
    entries = selectors.entries_by_code(g.resource_code for g in page_obj.object_list)
    for grant in page_obj.object_list:
        grant.entry = entries.get(grant.resource_code)
    return page(
        request,
        "exchange/grant_list.html",
        {
            "filter_form": form,
            "filtered": any(data.get(k) for k in ("q", "state")),
            "tabs": [(t, TAB_LABELS[t]) for t in tabs],
            "tab": tab,
            "page_obj": page_obj,
            "today": timezone.localdate(),
        },
        section="grants",
    )


@staff_required("grants")
def grant_detail(request, pk: int):
    grant = _grant_or_404(request, pk)
    entry = selectors.entries_by_code([grant.resource_code]).get(grant.resource_code)
    names = _item_names(entry)
    return page(
        request,
        "exchange/grant_detail.html",
        {
            "grant": grant,
            "entry": entry,
            # in catalogue order (the grant keeps its codes sorted)
            "rows": [
                {"code": c, "item": names.get(c), "plain": c in (grant.unmasked or [])}
                for c in sorted(grant.items, key=lambda c: list(names).index(c) if c in names else len(names))
            ],
            "can_manage": can_manage_grant(request.user, grant) and grant.revoked_at is None,
            "usage": selectors.grant_usage(grant=grant),
            "live": services.grant_live(system=grant.system, resource_code=grant.resource_code) == grant,
            "requests": AccessRequest.objects.filter(system=grant.system, entry__code=grant.resource_code)
            .select_related("entry")
            .order_by("-id")[:10],
        },
        section="grants",
    )


@require_POST
@staff_required("grants")
def grant_revoke(request, pk: int):
    grant = _grant_or_404(request, pk)
    reason = (request.POST.get("reason") or "")[:500]
    return act(
        request,
        lambda: services.grant_revoke(actor=request.user, grant=grant, reason=reason),
        success=_("授权已撤销，该系统下一次调用即被拒绝。"),
        section="grants",
        then=reverse("exchange:grant_detail", args=[grant.pk]),
    )


@require_POST
@staff_required("grants")
def grant_limit(request, pk: int):
    grant = _grant_or_404(request, pk)
    raw = (request.POST.get("per_minute") or "").strip()
    if raw and not raw.isdigit():
        messages.error(request, _("每分钟调用上限须为正整数，留空表示使用全区默认值。"))
        return redirect("exchange:grant_detail", pk=grant.pk)
    return act(
        request,
        lambda: services.grant_limit(actor=request.user, grant=grant, per_minute=int(raw) if raw else None),
        success=_("每分钟调用上限已更新。"),
        section="grants",
        then=reverse("exchange:grant_detail", args=[grant.pk]),
    )
