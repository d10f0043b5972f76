"""Forms of notify: validation only; the views hand cleaned data to ``services``.

The send form grows one text box per placeholder of the chosen template (``ph_<名称>``); the
page remembers which template its boxes belong to (``shown_template``), so a change of template
reloads the boxes (htmx) and a submit with stale boxes is not sent.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from yiwang.org.models import Unit

from . import services, text
from .models import Job, Message, Template

PLACEHOLDER_PREFIX = "ph_"
# The same rule as for template bodies (text.check_template): only the platform writes 【签名】.
BRACKETS_IN_BODY = _("短信内容中不能含有【】：运营商会把它当作签名。签名由平台自动加在开头。")
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format=DATETIME_LOCAL)


def _schedule_field(help_text=None) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=_("定时发送"),
        required=False,
        widget=DateTimeLocalInput(),
        input_formats=[DATETIME_LOCAL, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        help_text=help_text or _("留空则立即发送；最多可提前 7 天安排。"),
    )


def _check_schedule(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    now = timezone.now()
    if value < now - dt.timedelta(minutes=1):
        raise forms.ValidationError(_("定时发送的时间已经过去，请重新选择。"))
    if value > now + services.MAX_SCHEDULE_AHEAD:
        raise forms.ValidationError(_("定时发送只能安排在未来 7 天内。"))
    return value


def unit_choices(units) -> list[tuple[str, str]]:
    return [("", _("全部单位"))] + [(str(u.pk), u.name) for u in units]


class UnitFilterMixin:
    """A 单位 select for people who see more than one unit (platform admins, leaders)."""

    def set_units(self, units) -> None:
        units = list(units)
        if len(units) > 1:
            self.fields["unit"].choices = unit_choices(units)
        else:
            del self.fields["unit"]


# --- sending one message ---------------------------------------------------------------------


class SendForm(forms.Form):
    template = forms.ModelChoiceField(
        label=_("短信模板"),
        queryset=Template.objects.none(),
        required=False,
        empty_label=_("不使用模板，直接填写内容"),
    )
    body = forms.CharField(
        label=_("短信内容"),
        required=False,
        max_length=text.MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("签名由平台自动加在开头，不必填写。"),
    )
    mobile = forms.CharField(
        label=_("手机号"),
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off", "placeholder": "13800138000"}),
    )
    send_at = _schedule_field()

    def __init__(self, data=None, *, unit: Unit, template: Template | None = None, **kwargs):
        super().__init__(data, **kwargs)
        self.unit = unit
        queryset = Template.objects.filter(unit=unit, active=True).order_by("name", "code")
        self.fields["template"].queryset = queryset
        self.chosen = self._chosen(queryset, template)
        if template is not None and not self.is_bound:
            self.initial["template"] = template.pk
        self.placeholder_names = text.placeholders(self.chosen.body) if self.chosen else []
        for index, name in enumerate(self.placeholder_names):
            self.fields[PLACEHOLDER_PREFIX + name] = forms.CharField(
                label=name,
                max_length=200,
                widget=forms.TextInput(attrs={"id": f"id_ph_{index}", "autocomplete": "off"}),
            )
        if self.chosen is not None:
            del self.fields["body"]

    def _chosen(self, queryset, template):
        if not self.is_bound:
            return template
        raw = str(self.data.get("template") or "")
        if not raw.isdigit():
            return None
        return queryset.filter(pk=int(raw)).first()

    @property
    def template_key(self) -> str:
        """Which template the placeholder boxes on the page are for ("" for free text)."""
        return str(self.chosen.pk) if self.chosen else ""

    @property
    def template_changed(self) -> bool:
        """The page shows the boxes of another template than the one now chosen."""
        if not self.is_bound:
            return False
        return str(self.data.get("template") or "") != str(self.data.get("shown_template") or "")

    def placeholder_fields(self):
        return [self[PLACEHOLDER_PREFIX + name] for name in self.placeholder_names]

    def raw_values(self) -> dict[str, str]:
        """The placeholder values as typed (for the live preview; nothing validated)."""
        source = self.data if self.is_bound else self.initial
        return {name: str(source.get(PLACEHOLDER_PREFIX + name) or "") for name in self.placeholder_names}

    def values(self) -> dict[str, str]:
        return {name: self.cleaned_data[PLACEHOLDER_PREFIX + name] for name in self.placeholder_names}

    def clean_body(self):
        body = self.cleaned_data.get("body") or ""
        if "【" in body or "】" in body:
            raise forms.ValidationError(BRACKETS_IN_BODY)
        return body

    def clean_send_at(self):
        return _check_schedule(self.cleaned_data.get("send_at"))

    def clean(self):
        data = super().clean()
        if self.chosen is None and "body" in self.fields and not (data.get("body") or "").strip():
            self.add_error("body", _("请填写短信内容或选择模板。"))
        return data


# --- templates ------------------------------------------------------------------------------


class TemplateFilterForm(UnitFilterMixin, forms.Form):
    q = forms.CharField(label=_("名称、代码或内容"), required=False, max_length=100)
    kind = forms.ChoiceField(label=_("类型"), required=False, choices=[("", _("全部类型")), *Template.Kind.choices])
    unit = forms.ChoiceField(label=_("单位"), required=False)

    def __init__(self, *args, units, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_units(units)


class TemplateForm(forms.Form):
    unit = forms.ChoiceField(label=_("所属单位"))
    code = forms.CharField(
        label=_("模板代码"),
        max_length=64,
        help_text=_("英文字母、数字、横线和下划线，如 exam-notice；其他系统按代码调用，保存后不能修改。"),
    )
    name = forms.CharField(label=_("模板名称"), max_length=100)
    kind = forms.ChoiceField(
        label=_("类型"),
        choices=Template.Kind.choices,
        help_text=_("验证码、告警为紧急短信：优先发送，不受免打扰时段和退订限制。"),
    )
    body = forms.CharField(
        label=_("短信内容"),
        max_length=text.MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_("占位符写作 ((姓名))，发送时替换为实际内容；签名由平台自动加在开头。"),
    )

    def __init__(self, *args, units, editing: Template | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.units = {str(u.pk): u for u in units}
        self.fields["unit"].choices = [(key, unit.name) for key, unit in self.units.items()]
        if editing is not None or len(self.units) <= 1:
            del self.fields["unit"]
        if editing is not None:
            self.fields["code"].disabled = True
            self.fields["code"].help_text = _("保存后成为新版本，已发出的短信仍对应原版本。")

    def clean_unit(self):
        return self.units[self.cleaned_data["unit"]]


# --- jobs -----------------------------------------------------------------------------------


class JobUploadForm(forms.Form):
    template = forms.ModelChoiceField(
        label=_("短信模板"), queryset=Template.objects.none(), empty_label=_("请选择模板")
    )
    file = forms.FileField(
        label=_("号码文件"),
        allow_empty_file=True,  # the service says 文件是空的 in its own words
        widget=forms.FileInput(attrs={"accept": ".csv,.xlsx"}),
        help_text=_(
            "CSV 或 Excel（.xlsx），第一行为表头：一列“手机号”，模板的每个占位符各一列；最多 100 万行、100 MB。"
        ),
    )
    allow_duplicates = forms.BooleanField(
        label=_("允许重复号码"),
        required=False,
        help_text=_("默认每个号码只发一条；勾选后同一号码出现在多行时每行各发一条（如每行内容不同的通知）。"),
    )

    def __init__(self, *args, unit: Unit, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = Template.objects.filter(unit=unit, active=True).order_by("name", "code")
        # htmx: the header row the chosen template needs
        self.fields["template"].widget.attrs.update(
            {"hx-get": reverse("notify:job_columns"), "hx-target": "#ntf-columns", "hx-swap": "outerHTML"}
        )
        self.fields["file"].widget.attrs["data-max-bytes"] = str(services.MAX_UPLOAD_BYTES)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > services.MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("文件过大：上限 %(mb)s MB（约 100 万行）。") % {"mb": services.MAX_UPLOAD_BYTES >> 20}
            )
        return upload


class JobConfirmForm(forms.Form):
    send_at = _schedule_field(_("留空则确认后立即发送；最多可提前 7 天安排。"))

    def clean_send_at(self):
        return _check_schedule(self.cleaned_data.get("send_at"))


class JobFilterForm(UnitFilterMixin, forms.Form):
    q = forms.CharField(label=_("文件名或模板"), required=False, max_length=100)
    status = forms.ChoiceField(label=_("状态"), required=False, choices=[("", _("全部状态")), *Job.Status.choices])
    unit = forms.ChoiceField(label=_("单位"), required=False)

    def __init__(self, *args, units, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_units(units)


# --- message lookup and dashboard -------------------------------------------------------------


class MessageFilterForm(UnitFilterMixin, forms.Form):
    mobile = forms.CharField(
        label=_("手机号"), required=False, max_length=20, widget=forms.TextInput(attrs={"inputmode": "tel"})
    )
    status = forms.ChoiceField(label=_("状态"), required=False, choices=[("", _("全部状态")), *Message.Status.choices])
    date_from = forms.DateField(label=_("起始日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("截止日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    unit = forms.ChoiceField(label=_("单位"), required=False)
    job = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, units, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_units(units)

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("截止日期不能早于起始日期。"))
        return data


class DashboardFilterForm(UnitFilterMixin, forms.Form):
    unit = forms.ChoiceField(label=_("单位"), required=False)

    def __init__(self, *args, units, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_units(units)


# --- policies and opt-outs ----------------------------------------------------------------------


class PolicyForm(forms.Form):
    signature = forms.CharField(
        label=_("短信签名"),
        max_length=14,
        help_text=_("2–12 个字，不含括号和空格，如：北仑区教育局；发送时加在开头为【北仑区教育局】。"),
    )
    daily_quota = forms.IntegerField(label=_("每日配额（条）"), min_value=0, max_value=10_000_000)
    per_minute = forms.IntegerField(label=_("每分钟上限（条）"), min_value=1, max_value=1_000_000)
    approval_threshold = forms.IntegerField(
        label=_("需领导审批的群发规模（条）"),
        min_value=1,
        max_value=10_000_000,
        help_text=_("一次群发的有效号码达到此数时，须经本单位主要领导审批。"),
    )
    quiet_start = forms.TimeField(
        label=_("免打扰开始"), required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    quiet_end = forms.TimeField(
        label=_("免打扰结束"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=_("如 22:00 至 08:00；此时段内的非紧急短信顺延到结束后发送。两项都留空则不设免打扰。"),
    )
    enabled = forms.BooleanField(label=_("允许发送"), required=False)

    def clean_signature(self):
        try:
            return text.validate_signature(self.cleaned_data["signature"])
        except text.SmsTextError as error:
            raise forms.ValidationError(str(error)) from error

    def clean(self):
        data = super().clean()
        start, end = data.get("quiet_start"), data.get("quiet_end")
        if (start is None) != (end is None) and "quiet_start" not in self.errors and "quiet_end" not in self.errors:
            self.add_error("quiet_end", _("免打扰时段须同时填写开始和结束时间。"))
        return data


class PolicyFilterForm(forms.Form):
    q = forms.CharField(label=_("单位名称或代码"), required=False, max_length=100)


class OptOutFilterForm(forms.Form):
    q = forms.CharField(
        label=_("手机号"), required=False, max_length=20, widget=forms.TextInput(attrs={"inputmode": "tel"})
    )


class OptOutForm(forms.Form):
    mobile = forms.CharField(
        label=_("手机号"), max_length=20, widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"})
    )
    reason = forms.CharField(label=_("原因"), required=False, max_length=200)
