"""调用记录: who read which data, when and why — filtered, paginated, exported; the chain check."""

from __future__ import annotations

import re

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from yiwang.core.audit import audit_verify
from yiwang.core.ui import paginate

from .. import evidence
from ..models import RESOURCE_CODE_RE
from ..statistics import date_check
from .common import attachment, denied, page, staff_required

SECTION = "evidence"
FILTERS = ("resource", "system", "outcome", "date_from", "date_to", "q", "record")


class EvidenceFilterForm(forms.Form):
    resource = forms.CharField(label=gettext_lazy("资源"), required=False, widget=forms.Select)
    system = forms.IntegerField(label=gettext_lazy("业务系统"), required=False, min_value=1, widget=forms.Select)
    outcome = forms.ChoiceField(label=gettext_lazy("结果"), required=False, choices=evidence.Outcome.CHOICES)
    date_from = forms.DateField(
        label=gettext_lazy("起始日期"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=gettext_lazy("截止日期"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    q = forms.CharField(label=gettext_lazy("用途包含"), required=False, max_length=100)
    record = forms.CharField(
        label=gettext_lazy("查询标识"),
        required=False,
        max_length=64,
        help_text=gettext_lazy("如公民身份号码：查看谁查询过这条记录"),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource"].widget.choices = [("", _("全部资源")), *evidence.resource_choices(user)]
        self.fields["system"].widget.choices = [("", _("全部系统")), *evidence.system_choices(user)]

    def clean_resource(self) -> str:
        code = (self.cleaned_data.get("resource") or "").strip()
        if code and not re.match(RESOURCE_CODE_RE, code):
            raise forms.ValidationError(_("资源代码格式为“9 位分类码/6 位顺序码”。"))
        return code

    def clean_q(self) -> str:
        return (self.cleaned_data.get("q") or "").replace("\x00", "").strip()

    def clean_record(self) -> str:
        return (self.cleaned_data.get("record") or "").replace("\x00", "").strip()

    def clean(self):
        data = super().clean()
        for name in ("date_from", "date_to"):
            try:
                date_check(data.get(name))
            except ValueError as error:
                self.add_error(name, str(error))
                data.pop(name, None)
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("截止日期不能早于起始日期。"))
        return data

    def filters(self) -> dict:
        data = self.cleaned_data
        return {
            "resource": data.get("resource") or "",
            "system_id": data.get("system"),
            "outcome": data.get("outcome") or "",
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to"),
            "q": data.get("q") or "",
            "record": data.get("record") or "",
        }


def _filtered(request):
    """(form, filtered entries or None when the filter is invalid)."""
    form = EvidenceFilterForm(request.GET or None, user=request.user)
    entries = evidence.calls_visible(request.user)
    if not form.is_bound:
        return form, entries
    if not form.is_valid():
        return form, None
    return form, evidence.calls_filter(entries, **form.filters())


def _calls_page(request, form, entries, *, status: int = 200, **context):
    """The evidence page with a page of ``entries`` (none when the filter is invalid)."""
    page_obj = paginate(
        request, evidence.calls_ordered(entries) if entries is not None else evidence.calls_all().none()
    )
    return page(
        request,
        "exchange/evidence.html",
        {"filter_form": form, "page_obj": page_obj, "rows": evidence.call_rows(page_obj.object_list), **context},
        section=SECTION,
        status=status,
    )


@require_GET
@staff_required(SECTION)
def call_list(request):
    """The calls the user's units may see, newest first."""
    form, entries = _filtered(request)
    return _calls_page(
        request,
        form,
        entries,
        status=200 if entries is not None else 400,
        filtered=any(request.GET.get(name) for name in FILTERS),
        sees_all=evidence.sees_all(request.user),
        query=request.GET.urlencode(),
    )


@require_GET
@staff_required(SECTION)
def call_export(request):
    """The filtered calls as CSV, streamed (any number of rows)."""
    _form, entries = _filtered(request)
    if entries is None:
        return call_list(request)
    response = StreamingHttpResponse(
        evidence.calls_csv(evidence.calls_ordered(entries)), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    name = _("调用记录-%(stamp)s.csv") % {"stamp": stamp}
    response["Content-Disposition"] = attachment(name, f"exchange-calls-{stamp}.csv")
    return response


@require_POST
@login_required
def chain_verify(request):
    """Walk the whole audit chain (on request only: it reads every entry). E-gov and admins."""
    if not evidence.sees_all(request.user):
        return denied(request, _("只有电子政务办和平台管理员可以校验审计链。"), section=SECTION)
    problem = audit_verify()
    context = {"checked": True, "problem": str(problem) if problem else "", "checked_at": timezone.now()}
    if request.headers.get("HX-Request"):
        return render(request, "exchange/_chain_status.html", context)
    form, entries = _filtered(request)
    return _calls_page(request, form, entries, filtered=False, sees_all=True, query="", **context)
