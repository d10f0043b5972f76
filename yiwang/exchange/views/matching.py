"""免于重复采集: paste a form's field labels, see which the exchange can supply (and download it)."""

from __future__ import annotations

from django import forms
from django.http import HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import matching
from .common import attachment, page, staff_required


class MatchForm(forms.Form):
    title = forms.CharField(
        label=gettext_lazy("表单名称"),
        required=False,
        max_length=100,
        help_text=gettext_lazy("选填，如：义务教育新生入学登记表；用于下载的文件。"),
    )
    labels = forms.CharField(
        label=gettext_lazy("表单字段"),
        max_length=matching.MAX_FIELDS * (matching.MAX_LABEL_LENGTH + 2),
        widget=forms.Textarea(
            attrs={"rows": 12, "placeholder": gettext_lazy("申请人姓名\n身份证号码\n户籍所在地\n联系电话")}
        ),
        help_text=gettext_lazy("每行一个字段名称，或用逗号、顿号分隔；最多 200 个，每个不超过 50 字。"),
        error_messages={"required": gettext_lazy("请填写表单字段名称，每行一个。")},
    )

    def clean_labels(self) -> list[str]:
        labels = matching.labels_parse(self.cleaned_data["labels"])
        if not labels:
            raise forms.ValidationError(_("请填写表单字段名称，每行一个。"))
        if len(labels) > matching.MAX_FIELDS:
            raise forms.ValidationError(
                _("一次最多核验 %(max)d 个字段，当前 %(n)d 个。") % {"max": matching.MAX_FIELDS, "n": len(labels)}
            )
        long = [label for label in labels if len(label) > matching.MAX_LABEL_LENGTH]
        if long:
            raise forms.ValidationError(
                _("字段名称不能超过 %(max)d 字：%(label)s…") % {"max": matching.MAX_LABEL_LENGTH, "label": long[0][:20]}
            )
        if any("\x00" in label for label in labels):
            raise forms.ValidationError(_("字段名称不能包含空字符。"))
        return labels


@staff_required("matching")
def match_page(request):
    """GET: the empty form; POST: the check of the labels (or, with ``download``, the file)."""
    unit = request.user.acting_unit
    matches, figures, status = None, None, 200
    form = MatchForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            labels, title = form.cleaned_data["labels"], form.cleaned_data["title"]
            fmt = request.POST.get("download")
            if fmt in matching.REPORT_FORMATS:
                body = matching.fields_report(labels=labels, unit=unit, fmt=fmt, title=title)
                response = HttpResponse(body, content_type=matching.REPORT_FORMATS[fmt])
                stem = title or _("表单字段核验")
                response["Content-Disposition"] = attachment(f"{stem}.{fmt}", f"fields-check.{fmt}")
                return response
            matches = matching.fields_match(labels=labels, unit=unit)
            figures = matching.summary(matches)
        else:
            status = 400
    return page(
        request,
        "exchange/matching.html",
        {"form": form, "matches": matches, "figures": figures, "acting_unit": unit},
        section="matching",
        status=status,
    )
