"""Forms of org: validation only; the views hand cleaned data to services."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from yiwang.core.validators import normalise_mobile, validate_mobile, validate_visible_text

from . import selectors
from .models import ApiKey, Post, Role, Unit, User
from .services import API_SCOPES, grantable_roles
from .usage import period_check


class LoginForm(AuthenticationForm):
    username = forms.CharField(
        label=_("用户名或手机号"),
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password = forms.CharField(
        label=_("密码"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    error_messages = {
        "invalid_login": _("用户名（手机号）或密码错误。连续多次错误后账号将被临时锁定。"),
        "inactive": _("该账号已停用，请联系单位管理员。"),
    }


class OtpForm(forms.Form):
    token = forms.CharField(
        label=_("动态码"),
        min_length=6,
        max_length=6,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )

    def clean_token(self):
        token = self.cleaned_data["token"].strip()
        if not token.isdigit():
            raise forms.ValidationError(_("动态码为 6 位数字。"))
        return token


class UnitFilterForm(forms.Form):
    q = forms.CharField(label=_("关键词"), required=False)
    kind = forms.ChoiceField(label=_("类型"), required=False, choices=[("", _("全部类型")), *Unit.Kind.choices])
    status = forms.ChoiceField(label=_("状态"), required=False, choices=[("", _("全部状态")), *Unit.Status.choices])


def _unit_choices(units) -> list[tuple[int, str]]:
    return [(u.pk, f"{'　' * u.depth}{u.name}") for u in units]


class UnitForm(forms.Form):
    name = forms.CharField(label=_("单位名称"), max_length=100, validators=[validate_visible_text])
    short_name = forms.CharField(label=_("简称"), max_length=30, required=False, validators=[validate_visible_text])
    code = forms.CharField(
        label=_("单位代码"), max_length=32, help_text=_("全区唯一，如 BL-EGOV"), validators=[validate_visible_text]
    )
    kind = forms.ChoiceField(label=_("类型"), choices=Unit.Kind.choices)
    parent = forms.TypedChoiceField(label=_("上级单位"), coerce=int, required=False, empty_value=None)
    sort_order = forms.IntegerField(label=_("排序"), min_value=0, initial=100)
    phone = forms.CharField(label=_("联系电话"), max_length=32, required=False)
    address = forms.CharField(label=_("地址"), max_length=200, required=False)

    def __init__(self, *args, parents, instance: Unit | None = None, **kwargs):
        self.instance = instance
        super().__init__(*args, **kwargs)
        self.parents = {u.pk: u for u in parents}
        self.fields["parent"].choices = [("", _("（无，顶级单位）")), *_unit_choices(parents)]

    def clean_code(self):
        code = self.cleaned_data["code"].strip()
        qs = Unit.objects.filter(code=code)
        if self.instance is not None:
            qs = qs.exclude(pk=self.instance.pk)
        if qs.exists():
            raise forms.ValidationError(_("单位代码已被使用。"))
        return code

    def clean_parent(self):
        parent_id = self.cleaned_data.get("parent")
        if parent_id is None:
            return None
        return self.parents[parent_id]


class UnitMergeForm(forms.Form):
    merged_into = forms.TypedChoiceField(label=_("并入单位"), coerce=int)

    def __init__(self, *args, targets, **kwargs):
        super().__init__(*args, **kwargs)
        self.targets = {u.pk: u for u in targets}
        self.fields["merged_into"].choices = _unit_choices(targets)
        self.fields["merged_into"].help_text = _("下级单位和在岗人员将转到并入单位，本单位标记为“已合并”。")

    def clean_merged_into(self):
        return self.targets[self.cleaned_data["merged_into"]]


class UnitAbolishForm(forms.Form):
    reason = forms.CharField(
        label=_("撤销依据"),
        max_length=200,
        validators=[validate_visible_text],
        help_text=_("如机构改革文件文号。只有没有下级单位、没有在岗人员的单位可以撤销。"),
    )


class PersonFilterForm(forms.Form):
    q = forms.CharField(label=_("姓名/用户名/手机"), required=False)
    unit = forms.TypedChoiceField(label=_("单位"), required=False, coerce=int, empty_value=None)
    role = forms.ChoiceField(label=_("角色"), required=False)
    active = forms.ChoiceField(
        label=_("状态"), required=False, choices=[("", _("全部")), ("1", _("启用")), ("0", _("停用"))]
    )

    def __init__(self, *args, units, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit"].choices = [("", _("全部单位")), *_unit_choices(units)]
        self.fields["role"].choices = [
            ("", _("全部角色")),
            *Role.objects.filter(is_public=False).values_list("code", "name"),
        ]


class PersonForm(forms.Form):
    username = forms.RegexField(
        label=_("用户名"),
        max_length=150,
        regex=r"^[\w.@+-]+$",
        error_messages={"invalid": _("用户名只能包含字母、数字和 @/./+/-/_ 。")},
    )
    full_name = forms.CharField(label=_("姓名"), max_length=50, validators=[validate_visible_text])
    mobile = forms.CharField(label=_("手机号码"), max_length=20, required=False)
    email = forms.EmailField(label=_("电子邮箱"), required=False)
    is_active = forms.BooleanField(label=_("启用"), required=False, initial=True)

    def __init__(self, *args, instance: User | None = None, **kwargs):
        self.instance = instance
        super().__init__(*args, **kwargs)

    def clean_username(self):
        username = self.cleaned_data["username"]
        qs = User.objects.filter(username__iexact=username)
        if self.instance is not None:
            qs = qs.exclude(pk=self.instance.pk)
        if qs.exists():
            raise forms.ValidationError(_("该用户名已被使用。"))
        return username

    def clean_mobile(self):
        mobile = self.cleaned_data["mobile"].strip()
        if not mobile:
            return None
        validate_mobile(mobile)
        mobile = normalise_mobile(mobile)
        qs = User.objects.filter(mobile=mobile)
        if self.instance is not None:
            qs = qs.exclude(pk=self.instance.pk)
        if qs.exists():
            raise forms.ValidationError(_("该手机号码已登记给其他人员。"))
        return mobile


class PostForm(forms.Form):
    unit = forms.TypedChoiceField(label=_("单位"), coerce=int)
    role = forms.ModelChoiceField(
        label=_("角色"), queryset=Role.objects.filter(is_public=False).exclude(code=Role.SYSTEM)
    )
    title = forms.CharField(label=_("职务"), max_length=50, required=False, validators=[validate_visible_text])
    leader_rank = forms.ChoiceField(label=_("领导类别"), choices=Post.LeaderRank.choices, required=False)
    is_primary = forms.BooleanField(label=_("设为主岗"), required=False)

    def __init__(self, *args, units, actor=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.units = {u.pk: u for u in units}
        self.fields["unit"].choices = _unit_choices(units)
        self.fields["role"].queryset = grantable_roles(actor)

    def clean_unit(self):
        return self.units[self.cleaned_data["unit"]]


class SetPasswordForm(forms.Form):
    password = forms.CharField(
        label=_("新密码"), widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}), min_length=8
    )

    def __init__(self, *args, person=None, **kwargs):
        self.person = person
        super().__init__(*args, **kwargs)

    def clean_password(self):
        from django.contrib.auth import password_validation

        password = self.cleaned_data["password"]
        password_validation.validate_password(password, self.person)
        return password


class NewPersonForm(PersonForm):
    password = forms.CharField(
        label=_("初始密码"),
        widget=forms.PasswordInput,
        required=False,
        min_length=8,
        help_text=_("留空则该人员暂不能登录。"),
    )

    def __init__(self, *args, units, actor=None, **kwargs):
        super().__init__(*args, **kwargs)
        post = PostForm(units=units, actor=actor, prefix=None)
        for name in ("unit", "role", "title", "leader_rank"):
            self.fields[name] = post.fields[name]
        self.units = post.units

    def clean_unit(self):
        return self.units[self.cleaned_data["unit"]]


class DelegationForm(forms.Form):
    delegate = forms.CharField(label=_("代理人用户名或手机号"), max_length=150)
    starts_at = forms.DateTimeField(label=_("开始时间"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    ends_at = forms.DateTimeField(label=_("结束时间"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    reason = forms.CharField(label=_("事由"), max_length=200)

    def clean_delegate(self):
        login = self.cleaned_data["delegate"].strip()
        user = (
            User.objects.filter(username=login, is_system=False).first()
            or User.objects.filter(mobile=normalise_mobile(login), is_system=False).first()
        )
        if user is None:
            raise forms.ValidationError(_("找不到该人员。"))
        return user

    def clean(self):
        data = super().clean()
        if data.get("starts_at") and data.get("ends_at") and data["ends_at"] <= data["starts_at"]:
            self.add_error("ends_at", _("结束时间须晚于开始时间。"))
        return data


class SystemForm(forms.Form):
    name = forms.CharField(label=_("系统名称"), max_length=100, validators=[validate_visible_text])
    unit = forms.TypedChoiceField(label=_("所属单位"), coerce=int)
    description = forms.CharField(label=_("说明"), max_length=200, required=False)

    def __init__(self, *args, units, **kwargs):
        super().__init__(*args, **kwargs)
        self.units = {u.pk: u for u in units}
        self.fields["unit"].choices = _unit_choices(units)

    def clean_unit(self):
        return self.units[self.cleaned_data["unit"]]


class ApiKeyForm(forms.Form):
    name = forms.CharField(label=_("密钥名称"), max_length=100, validators=[validate_visible_text])
    kind = forms.ChoiceField(label=_("类型"), choices=ApiKey.Kind.choices)
    scopes = forms.MultipleChoiceField(
        label=_("权限范围"), choices=lambda: API_SCOPES, widget=forms.CheckboxSelectMultiple
    )
    expires_at = forms.DateTimeField(
        label=_("过期时间"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )


class ImportForm(forms.Form):
    file = forms.FileField(label=_("Excel 文件 (.xlsx)"))

    MAX_BYTES = 5 * 1024 * 1024

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(".xlsx"):
            raise forms.ValidationError(_("请上传 .xlsx 格式的 Excel 文件。"))
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError(_("文件过大（上限 5 MB）。"))
        return upload


class UsageFilterForm(forms.Form):
    """The usage page's filters: a period (default: the last 30 days), a module, a unit."""

    start = forms.DateField(label=_("起始日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("截止日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    module = forms.ChoiceField(label=_("模块"), required=False)
    unit = forms.TypedChoiceField(label=_("单位"), required=False, coerce=int, empty_value=None)

    def __init__(self, *args, user, module_choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["module"].choices = [("", _("全部模块")), *module_choices]
        self.fields["unit"].choices = [("", _("全部单位")), *_unit_choices(selectors.unit_list(user=user))]

    def clean(self):
        data = super().clean()
        end = data.get("end") or timezone.localdate()
        start = data.get("start") or end - dt.timedelta(days=29)
        try:
            period_check(start, end)
        except ValidationError as error:
            self.add_error("end", error)
        data["start"], data["end"] = start, end
        return data
