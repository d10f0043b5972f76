"""Forms of workflow: validation only; the views hand cleaned data to the engine's services."""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from yiwang.org import selectors as org_selectors
from yiwang.org.models import Role, Unit, User

from . import clock, schema
from .models import Case, ProcessDefinition

MAX_FILES = 10
# Up to this many people the pickers are plain selects; beyond it a text box with a datalist.
PICKER_LIMIT = 300


# --- files --------------------------------------------------------------------------------


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Any number of files (the engine checks their types and sizes)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        items = data if isinstance(data, list | tuple) else [data] if data else []
        files = [single(item, initial) for item in items if item]
        if len(files) > MAX_FILES:
            raise forms.ValidationError(_("一次最多上传 %(n)s 个附件。") % {"n": MAX_FILES})
        return files


def _files_field() -> MultipleFileField:
    return MultipleFileField(
        label=_("附件"),
        help_text=_("可多选；支持 PDF、OFD、Word、WPS、Excel、图片、压缩包等，单个不超过 20 MB。"),
    )


def _comment_field(label=None, *, required=False, rows=3) -> forms.CharField:
    return forms.CharField(
        label=label or _("办理意见"),
        required=required,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": rows}),
    )


# --- person pickers -----------------------------------------------------------------------


class PersonPicker:
    """Active people in the units the user can see, ordered by name (shared by a page's fields)."""

    def __init__(self, user: User, *, exclude: User | None = None):
        self.user = user
        qs = org_selectors.person_list(user=user, active="1").order_by("full_name", "username")
        if exclude is not None:
            qs = qs.exclude(pk=exclude.pk)
        self.queryset = qs
        people = list(qs[: PICKER_LIMIT + 1])
        self.large = len(people) > PICKER_LIMIT
        self.people = people[:PICKER_LIMIT]

    @staticmethod
    def label(person: User) -> str:
        posts = getattr(person, "active_posts", None) or []
        unit = posts[0].unit.name if posts else ""
        name = person.full_name or person.username
        return _("%(name)s（%(unit)s）") % {"name": name, "unit": unit} if unit else name

    @property
    def choices(self) -> list[tuple[str, str]]:
        return [(p.username, self.label(p)) for p in self.people]

    def find(self, usernames: list[str]) -> tuple[list[User], list[str]]:
        found = {u.username: u for u in self.queryset.filter(username__in=usernames)}
        return [found[u] for u in usernames if u in found], [u for u in usernames if u not in found]


def _split_usernames(value) -> list[str]:
    if isinstance(value, list | tuple):
        items = value
    else:
        items = re.split(r"[,，、\s]+", value or "")
    return list(dict.fromkeys(str(u).strip() for u in items if str(u).strip()))


def _person_field(picker: PersonPicker, label, *, multiple: bool = False) -> forms.Field:
    if picker.large:
        help_text = _("输入用户名，多人用逗号分隔") if multiple else _("输入用户名")
        return forms.CharField(
            label=label,
            required=False,
            help_text=help_text,
            widget=forms.TextInput(attrs={"list": "wf-people", "autocomplete": "off"}),
        )
    if multiple:
        return forms.MultipleChoiceField(
            label=label,
            required=False,
            choices=picker.choices,
            widget=forms.SelectMultiple(attrs={"size": 5}),
        )
    return forms.ChoiceField(label=label, required=False, choices=[("", _("请选择人员")), *picker.choices])


# --- the inbox and lists ------------------------------------------------------------------


class InboxFilterForm(forms.Form):
    module = forms.ChoiceField(label=_("模块"), required=False)
    due = forms.ChoiceField(
        label=_("办理期限"),
        required=False,
        choices=[
            ("", _("全部")),
            (clock.ON_TIME, _("正常")),
            (clock.DUE_SOON, _("即将到期")),
            (clock.OVERDUE, _("已超期")),
        ],
    )
    q = forms.CharField(label=_("标题"), required=False, max_length=100)
    tab = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, modules: list[tuple[str, str]], done: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["module"].choices = [("", _("全部模块")), *modules]
        if done:
            del self.fields["due"]


class CaseFilterForm(forms.Form):
    q = forms.CharField(label=_("标题"), required=False, max_length=100)
    module = forms.ChoiceField(label=_("模块"), required=False)
    status = forms.ChoiceField(label=_("状态"), required=False, choices=[("", _("全部状态")), *Case.Status.choices])
    mine = forms.BooleanField(label=_("我发起的"), required=False)

    def __init__(self, *args, modules: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["module"].choices = [("", _("全部模块")), *modules]


class DefinitionFilterForm(forms.Form):
    q = forms.CharField(label=_("名称或代码"), required=False, max_length=100)
    module = forms.ChoiceField(label=_("模块"), required=False)

    def __init__(self, *args, modules: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["module"].choices = [("", _("全部模块")), *modules]


# --- acting on a task ---------------------------------------------------------------------


class TaskActionForm(forms.Form):
    """The action panel of one open task: one form, each button posts to its own view."""

    comment = _comment_field()
    files = _files_field()
    to_step = forms.TypedChoiceField(label=_("退回到"), coerce=int, required=False, empty_value=None)

    def __init__(self, *args, task, picker: PersonPicker, return_targets, can_delegate: bool, **kwargs):
        kwargs.setdefault("auto_id", f"t{task.pk}_%s")
        super().__init__(*args, **kwargs)
        self.task = task
        self.picker = picker
        self.fields["to_step"].choices = [(str(i), name) for i, name in return_targets]
        if not return_targets:
            del self.fields["to_step"]
        self.fields["to_user"] = _person_field(picker, _("转办给"))
        if can_delegate:
            self.fields["delegate_to"] = _person_field(picker, _("委托给"))
        self.fields["people"] = _person_field(picker, _("加签人员"), multiple=True)

    def _one_person(self, name: str) -> User | None:
        usernames = _split_usernames(self.cleaned_data.get(name))
        if not usernames:
            return None
        people, missing = self.picker.find(usernames[:1])
        if missing:
            raise forms.ValidationError(_("找不到在岗人员：%(names)s") % {"names": "、".join(missing)})
        return people[0]

    def clean_to_user(self):
        return self._one_person("to_user")

    def clean_delegate_to(self):
        return self._one_person("delegate_to")

    def clean_people(self):
        usernames = _split_usernames(self.cleaned_data.get("people"))
        people, missing = self.picker.find(usernames)
        if missing:
            raise forms.ValidationError(_("找不到在岗人员：%(names)s") % {"names": "、".join(missing)})
        return people


class CommentForm(forms.Form):
    comment = _comment_field(_("意见"))
    files = _files_field()

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "c_%s")
        super().__init__(*args, **kwargs)


class WithdrawForm(forms.Form):
    comment = forms.CharField(label=_("撤回说明"), required=False, max_length=2000)


class SuspendForm(forms.Form):
    reason = forms.CharField(label=_("挂起原因"), max_length=200)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "s_%s")
        super().__init__(*args, **kwargs)


class ResumeForm(forms.Form):
    reason = forms.CharField(label=_("恢复说明"), required=False, max_length=200)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "r_%s")
        super().__init__(*args, **kwargs)


class ExtensionForm(forms.Form):
    days = forms.IntegerField(label=_("延期天数（工作日）"), min_value=1, max_value=60)
    reason = forms.CharField(label=_("延期理由"), max_length=300, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "e_%s")
        super().__init__(*args, **kwargs)


# --- starting a case ----------------------------------------------------------------------


class StartForm(forms.Form):
    process = forms.ChoiceField(label=_("流程"))
    title = forms.CharField(label=_("标题"), max_length=200)
    amount = forms.DecimalField(
        label=_("金额（元）"),
        required=False,
        max_digits=14,
        decimal_places=2,
        min_value=0,
        help_text=_("涉及金额时填写，流程可按金额走不同的审批环节。"),
    )
    comment = _comment_field(_("说明"), rows=4)
    files = _files_field()

    def __init__(self, *args, definitions, module_names: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.definitions = {d.code: d for d in definitions}
        self.fields["process"].choices = [("", _("请选择流程"))] + [
            (d.code, _("%(name)s（%(module)s）") % {"name": d.name, "module": module_names.get(d.module, d.module)})
            for d in definitions
        ]

    def clean_process(self):
        return self.definitions[self.cleaned_data["process"]]


# --- definitions ------------------------------------------------------------------------


class DefinitionForm(forms.Form):
    code = forms.CharField(
        label=_("流程代码"),
        max_length=64,
        help_text=_("英文字母、数字、点、横线和下划线，如 oa.outgoing；保存后不能修改"),
    )
    name = forms.CharField(label=_("流程名称"), max_length=100)
    module = forms.ChoiceField(label=_("所属模块"))
    description = forms.CharField(label=_("说明"), max_length=300, required=False)
    case_time_limit = forms.IntegerField(
        label=_("总时限（工作日）"), required=False, min_value=1, max_value=schema.MAX_TIME_LIMIT
    )

    def __init__(self, *args, modules: list[tuple[str, str]], editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["module"].choices = [("", _("请选择模块")), *modules]
        if editing:
            self.fields["code"].disabled = True
            self.fields["code"].help_text = _("流程代码不能修改；保存后生成新版本，进行中的流程仍按原版本办理")


def _unit_choices() -> list[tuple[str, str]]:
    units = Unit.objects.filter(status=Unit.Status.ACTIVE).order_by("path").values_list("code", "name", "depth")
    return [
        (code, "　" * depth + _("%(name)s（%(code)s）") % {"name": name, "code": code}) for code, name, depth in units
    ]


def _role_choices() -> list[tuple[str, str]]:
    return list(Role.objects.exclude(code=Role.SYSTEM).order_by("id").values_list("code", "name"))


class StepForm(forms.Form):
    """One row of the step editor; ``step_data`` turns it into the engine's step dict."""

    key = forms.CharField(label=_("环节代码"), max_length=32, required=False)
    name = forms.CharField(label=_("环节名称"), max_length=100, required=False)
    kind = forms.ChoiceField(label=_("审批方式"), choices=list(schema.STEP_KINDS.items()), initial="single")
    assignee_type = forms.ChoiceField(
        label=_("办理人规则"), choices=list(schema.RULE_TYPES.items()), initial="initiator_leader"
    )
    usernames = forms.CharField(
        label=_("指定人员（用户名）"), max_length=500, required=False, help_text=_("多人用逗号分隔")
    )
    unit = forms.ChoiceField(label=_("单位"), required=False)
    role = forms.ChoiceField(label=_("角色"), required=False)
    rank = forms.ChoiceField(label=_("领导类别"), required=False, choices=list(schema.RANKS.items()))
    time_limit = forms.IntegerField(label=_("时限（工作日）"), required=False, min_value=1)
    cond_field = forms.CharField(label=_("条件字段"), max_length=64, required=False)
    cond_op = forms.ChoiceField(label=_("条件运算"), required=False, choices=[("", "—"), *schema.CONDITION_OPS.items()])
    cond_value = forms.CharField(label=_("条件值"), max_length=200, required=False)

    def __init__(self, *args, unit_choices=(), role_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit"].choices = [("", "—"), *unit_choices]
        self.fields["role"].choices = [("", "—"), *role_choices]

    def step_data(self) -> dict:
        data = self.cleaned_data
        kind = data["assignee_type"]
        if kind == "person":
            rule = {"type": kind, "usernames": data["usernames"]}
        elif kind == "role":
            rule = {"type": kind, "unit": data["unit"], "role": data["role"]}
        elif kind == "initiator_leader":
            rule = {"type": kind, "rank": data["rank"]}
        else:
            rule = {"type": kind, "role": data["role"], "rank": data["rank"]}
        step = {
            "key": data["key"].strip(),
            "name": data["name"].strip(),
            "kind": data["kind"],
            "assignee": rule,
            "time_limit": data["time_limit"],
        }
        if data["cond_field"].strip() or data["cond_op"] or data["cond_value"].strip():
            step["condition"] = {
                "field": data["cond_field"].strip(),
                "op": data["cond_op"],
                "value": _condition_value(data["cond_value"].strip()),
            }
        return step


def _condition_value(text: str):
    if re.fullmatch(r"-?\d{1,15}", text):
        return int(text)
    if re.fullmatch(r"-?\d{1,15}\.\d{1,6}", text):
        return float(text)
    return text


def step_initial(step: dict) -> dict:
    """A saved step as the editor row's initial data."""
    rule = step.get("assignee") or {}
    condition = step.get("condition") or {}
    usernames = rule.get("usernames") or []
    value = condition.get("value", "")
    return {
        "key": step.get("key", ""),
        "name": step.get("name", ""),
        "kind": step.get("kind", "single"),
        "assignee_type": rule.get("type", ""),
        "usernames": ", ".join(usernames) if isinstance(usernames, list) else usernames,
        "unit": rule.get("unit", ""),
        "role": rule.get("role", ""),
        "rank": rule.get("rank", ""),
        "time_limit": step.get("time_limit"),
        "cond_field": condition.get("field", ""),
        "cond_op": condition.get("op", ""),
        "cond_value": ", ".join(map(str, value)) if isinstance(value, list) else ("" if value is None else value),
    }


class BaseStepFormSet(forms.BaseFormSet):
    def __init__(self, *args, **kwargs):
        self.unit_choices = _unit_choices()
        self.role_choices = _role_choices()
        super().__init__(*args, **kwargs)

    def get_form_kwargs(self, index):
        return {"unit_choices": self.unit_choices, "role_choices": self.role_choices}

    def steps(self) -> list[dict]:
        """The rows in their order, without deleted and untouched extra rows."""
        return [form.step_data() for form in self.ordered_forms]


StepFormSet = forms.formset_factory(
    StepForm, formset=BaseStepFormSet, extra=2, can_delete=True, can_order=True, max_num=schema.MAX_STEPS
)


class ImportForm(forms.Form):
    file = forms.FileField(label=_("流程定义文件（.json）"))

    MAX_BYTES = 1024 * 1024

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(".json"):
            raise forms.ValidationError(_("请上传由“导出 JSON”得到的 .json 文件。"))
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError(_("文件过大（上限 1 MB）。"))
        return upload


def active_definitions():
    """Processes a case can be started on by hand (modules start their ``internal`` ones)."""
    return ProcessDefinition.objects.filter(status=ProcessDefinition.Status.ACTIVE, internal=False)
