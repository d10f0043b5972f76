"""Dispute pages (疑义校核): the list with tabs, the detail with the provider's answer form, and
the form to raise one from a resource page (``?entry=<id>``).

Views stay thin: forms check the shape, ``yiwang.exchange.disputes`` decides and writes; a
service's ValidationError becomes a form error (400), a PermissionDenied a 403 page.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import prefetch_related_objects
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from yiwang.core.ui import add_service_errors, paginate

from .. import disputes, services
from ..masking import mask
from ..models import CatalogEntry, Dispute
from .common import denied, page, staff_required

SECTION = "disputes"
STAFF_ONLY = gettext_lazy("疑义校核仅供机关工作人员使用。")


# --- forms ------------------------------------------------------------------------------------


class DisputeFilterForm(forms.Form):
    tab = forms.CharField(required=False, widget=forms.HiddenInput)
    q = forms.CharField(
        label=gettext_lazy("搜索"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": gettext_lazy("资源、记录标识、说明"), "type": "search"}),
    )
    status = forms.ChoiceField(
        label=gettext_lazy("状态"), required=False, choices=[("", gettext_lazy("全部")), *Dispute.Status.choices]
    )
    resource = forms.ChoiceField(label=gettext_lazy("资源"), required=False)
    overdue = forms.BooleanField(label=gettext_lazy("只看已超期"), required=False)

    def __init__(self, *args, resources: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource"].choices = [("", _("全部资源")), *resources]


class DisputeRaiseForm(forms.Form):
    item = forms.ChoiceField(label=gettext_lazy("有疑义的信息项"))
    record_key = forms.CharField(label=gettext_lazy("记录标识"), max_length=64)
    reported_value = forms.CharField(
        label=gettext_lazy("现有值"),
        max_length=200,
        required=False,
        help_text=gettext_lazy("共享数据中现在的值（选填）"),
    )
    proposed_value = forms.CharField(
        label=gettext_lazy("建议值"), max_length=200, required=False, help_text=gettext_lazy("您认为正确的值（选填）")
    )
    description = forms.CharField(
        label=gettext_lazy("疑义说明"),
        min_length=4,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=gettext_lazy("写明依据，例如：当事人提供的户口簿显示地址已变更。"),
    )
    system = forms.ChoiceField(label=gettext_lazy("业务系统"), required=False)

    def __init__(self, *args, entry: CatalogEntry, systems: list, key_label: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["item"].choices = [
            ("", _("请选择")),
            *((i.code, f"{i.name}（{i.code}）") for i in entry.items.all()),
        ]
        self.fields["record_key"].label = key_label
        if systems:
            self.fields["system"].choices = [(str(s.pk), s.name) for s in systems]
            self.fields["system"].help_text = _("以哪个已获授权的业务系统的名义提出")
        else:
            del self.fields["system"]


class DisputeAnswerForm(forms.Form):
    corrected = forms.TypedChoiceField(
        label=gettext_lazy("核实结果"),
        choices=[("1", gettext_lazy("数据有误，已更正")), ("0", gettext_lazy("数据无误"))],
        coerce=lambda value: value == "1",
        widget=forms.RadioSelect,
    )
    new_value = forms.CharField(
        label=gettext_lazy("更正后的值"),
        max_length=200,
        required=False,
        help_text=gettext_lazy("选择“已更正”时填写；接入基础库的资源将直接更正基础库并通知订阅方"),
    )
    answer = forms.CharField(
        label=gettext_lazy("核实意见"), min_length=2, max_length=2000, widget=forms.Textarea(attrs={"rows": 4})
    )


# --- helpers ----------------------------------------------------------------------------------


def _shown_key(dispute: Dispute) -> str:
    """Resident ID numbers are masked in lists (the detail page shows them whole)."""
    if dispute.entry.registry == "resident":
        return mask(dispute.record_key, "id_number")
    return dispute.record_key


def _get_dispute(request, pk: int) -> Dispute:
    dispute = disputes.disputes_visible(user=request.user).filter(pk=pk).first()
    if dispute is None or not disputes.can_view(request.user, dispute):
        raise Http404(_("疑义不存在或无权查看。"))
    return dispute


# --- pages ------------------------------------------------------------------------------------


@staff_required(SECTION, STAFF_ONLY)
def dispute_list(request):
    user = request.user
    egov = services.is_egov(user)
    tabs = [(disputes.TODO, _("待我核实")), (disputes.MINE, _("我提出的"))]
    if egov:
        tabs.append((disputes.ALL, _("全部")))
    tab = request.GET.get("tab") or (disputes.ALL if egov and not user.acting_unit_id else disputes.TODO)
    if tab not in dict(tabs):
        tab = disputes.TODO
    in_tab = disputes.dispute_list(user=user, tab=tab)
    resources = list(in_tab.order_by("entry__code").values_list("entry__code", "entry__name").distinct())
    resources = list(dict.fromkeys((code, f"{name}（{code}）") for code, name in resources))
    form = DisputeFilterForm(request.GET or None, initial={"tab": tab}, resources=resources)
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    today = timezone.localdate()
    qs = disputes.dispute_list(
        user=user,
        tab=tab,
        status=data.get("status") or "",
        resource=data.get("resource") or "",
        overdue=bool(data.get("overdue")),
        q=data.get("q") or "",
        today=today,
    )
    page_obj = paginate(request, qs)
    prefetch_related_objects(page_obj.object_list, "entry__items")
    for dispute in page_obj:
        dispute.item_label = disputes.item_name(dispute)
        dispute.shown_key = _shown_key(dispute)
        dispute.overdue = disputes.is_overdue(dispute, today=today)
    counts = disputes.tab_counts(user=user)
    return page(
        request,
        "exchange/dispute_list.html",
        {
            "tabs": [(code, label, counts.get(code, 0)) for code, label in tabs],
            "tab": tab,
            "filter_form": form,
            "filtered": any(data.get(k) for k in ("q", "status", "resource", "overdue")),
            "page_obj": page_obj,
            "reset_url": f"{request.path}?tab={tab}",
        },
        section=SECTION,
    )


def _detail_context(request, dispute: Dispute, *, answer_form=None) -> dict:
    user = request.user
    answerable = dispute.status == Dispute.Status.OPEN and disputes.can_answer(user, dispute)
    if answerable and answer_form is None:
        answer_form = DisputeAnswerForm(initial={"new_value": dispute.proposed_value})
    return {
        "dispute": dispute,
        "item_name": disputes.item_name(dispute),
        "key_label": _key_label(dispute.entry),
        "overdue": disputes.is_overdue(dispute),
        # the provider sees the value in the registry now; the raiser reads it through the gateway
        "current_value": disputes.current_value(dispute) if disputes.can_answer(user, dispute) else None,
        "answer_form": answer_form if answerable else None,
    }


def _key_label(entry: CatalogEntry) -> str:
    if entry.registry:
        from ..registries import registry

        return str(registry(entry.registry).key_label)
    return _("记录标识")


@staff_required(SECTION, STAFF_ONLY)
def dispute_detail(request, pk: int):
    dispute = _get_dispute(request, pk)
    return page(request, "exchange/dispute_detail.html", _detail_context(request, dispute), section=SECTION)


@require_POST
@staff_required(SECTION, STAFF_ONLY)
def dispute_answer(request, pk: int):
    dispute = _get_dispute(request, pk)
    if not disputes.can_answer(request.user, dispute):
        return denied(request, _("只有提供方单位或电子政务办可以答复该疑义。"), section=SECTION)
    form = DisputeAnswerForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            disputes.dispute_answer(
                actor=request.user,
                dispute=dispute,
                corrected=data["corrected"],
                answer=data["answer"],
                new_value=data["new_value"],
            )
        except PermissionDenied as error:
            return denied(request, str(error), section=SECTION)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(
                request, _("已更正，订阅方将收到变更。") if data["corrected"] else _("已答复，提出单位会收到提醒。")
            )
            return redirect("exchange:dispute_detail", pk=dispute.pk)
    dispute.refresh_from_db()
    context = _detail_context(request, dispute, answer_form=form)
    if context["answer_form"] is None:  # answered meanwhile: show why
        for message in form.non_field_errors():
            messages.error(request, message)
    return page(request, "exchange/dispute_detail.html", context, section=SECTION, status=400)


def _entry_from(request) -> CatalogEntry:
    raw = request.POST.get("entry") or request.GET.get("entry") or ""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise Http404(_("请从资源页面发起疑义。"))
    entry = CatalogEntry.objects.select_related("provider").filter(pk=int(raw)).first()
    if entry is None:
        raise Http404(_("资源不存在。"))
    return entry


@staff_required(SECTION, STAFF_ONLY)
def dispute_create(request):
    user = request.user
    entry = _entry_from(request)
    if entry.status != CatalogEntry.Status.PUBLISHED:
        return denied(request, _("只能对已发布的资源提出疑义。"), section=SECTION)
    if not disputes.can_raise(user, entry):
        return denied(request, _("本单位未获得该资源的共享授权，不能提出疑义。请先提出共享申请。"), section=SECTION)
    systems = disputes.raising_systems(actor=user, entry=entry)
    form = DisputeRaiseForm(request.POST or None, entry=entry, systems=systems, key_label=_key_label(entry))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            system = next((s for s in systems if str(s.pk) == data.get("system")), None)
            try:
                dispute = disputes.dispute_raise(
                    actor=user,
                    entry=entry,
                    record_key=data["record_key"],
                    item=data["item"],
                    description=data["description"],
                    reported_value=data["reported_value"],
                    proposed_value=data["proposed_value"],
                    system=system,
                )
            except PermissionDenied as error:
                return denied(request, str(error), section=SECTION)
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(
                    request,
                    _("疑义已提交，提供方须于 %(due)s 前核实答复。") % {"due": dispute.due_date.isoformat()},
                )
                return redirect("exchange:dispute_detail", pk=dispute.pk)
    context = {"entry": entry, "form": form, "cancel_url": reverse("exchange:disputes") + f"?tab={disputes.MINE}"}
    return page(request, "exchange/dispute_form.html", context, section=SECTION, status=status)
