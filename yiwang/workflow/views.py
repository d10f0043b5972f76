"""Screens of workflow: the inbox (待办/已办), the case page and its actions, the case list,
process definitions (platform admins only), the general start page and attachment downloads.

Views stay thin: a form validates, a service writes, a selector reads. The engine's
ValidationError / PermissionDenied become messages on the page (HTTP 400 / 403), never a 500,
and nothing is changed then (every service action is one transaction).
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from yiwang.core import attachments, modules
from yiwang.core.ui import add_service_errors, paginate

from . import schema, selectors, services
from .forms import (
    CaseFilterForm,
    CommentForm,
    DefinitionFilterForm,
    DefinitionForm,
    ExtensionForm,
    ImportForm,
    InboxFilterForm,
    PersonPicker,
    ResumeForm,
    StartForm,
    StepFormSet,
    SuspendForm,
    TaskActionForm,
    WithdrawForm,
    active_definitions,
    step_initial,
)
from .models import Attachment, Case, ProcessDefinition, Task
from .templatetags.workflow import due_clock

# --- helpers ------------------------------------------------------------------------------


def _module_names(user) -> dict[str, str]:
    """Module code → its name in the registry (the names shown in lists and selects)."""
    return {m.code: str(m.name) for m in modules.modules_for(user)}


def _error_messages(error: Exception) -> list[str]:
    if isinstance(error, ValidationError):
        return list(error.messages)
    return [str(error) or _("无权执行此操作。")]


def _form_error_messages(form) -> list[str]:
    out = []
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields and field != NON_FIELD_ERRORS else ""
        out += [_("%(label)s：%(message)s") % {"label": label, "message": e} if label else str(e) for e in errors]
    return out


def _denied(request, message: str):
    """A 403 page that says why (Django's bare 403 page says nothing)."""
    return render(request, "workflow/denied.html", {"message": message}, status=403)


def _safe_next(request, default: str) -> str:
    nxt = request.POST.get("next") or request.GET.get("next") or ""
    if nxt and url_has_allowed_host_and_scheme(nxt, {request.get_host()}, require_https=request.is_secure()):
        return nxt
    return default


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def platform_admin_required(view):
    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_platform_admin:
            return _denied(request, _("只有平台管理员可以维护流程定义。"))
        return view(request, *args, **kwargs)

    return wrapper


# --- the inbox ------------------------------------------------------------------------------


@login_required
def inbox(request):
    """待办 (open tasks, earliest deadline first) and 已办 (``?tab=done``)."""
    user = request.user
    done = request.GET.get("tab") == "done"
    names = _module_names(user)
    base = selectors.done_list(user=user) if done else selectors.inbox(user=user)
    present = set(base.order_by().values_list("module", flat=True).distinct())
    choices = [(code, name) for code, name in names.items() if code in present]
    choices += [(code, code) for code in sorted(present - names.keys())]
    form = InboxFilterForm(request.GET or None, modules=choices, done=done)
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    if done:
        tasks = selectors.done_list(user=user, module=data.get("module", ""), q=data.get("q", ""))
    else:
        tasks = selectors.inbox(user=user, module=data.get("module", ""), due=data.get("due", ""), q=data.get("q", ""))
    today, threshold = due_clock(request)
    return render(
        request,
        "workflow/inbox.html",
        {
            "tab": "done" if done else "todo",
            "filter_form": form,
            "filtered": any(data.get(k) for k in ("module", "due", "q")),
            "page_obj": paginate(request, tasks),
            "module_names": names,
            "due_today": today,
            "due_threshold": threshold,
            "wf_section": "inbox",
        },
    )


def _load_task(request, pk: int) -> tuple[Task, Case]:
    task = Task.objects.select_related("case", "assignee", "sender", "delegate").filter(pk=pk).first()
    case = selectors.case_get(user=request.user, pk=task.case_id) if task is not None else None
    if case is None:
        raise Http404(_("待办不存在或无权查看。"))
    return task, case


def _inbox_row(request, task_pk: int, *, errors=(), status=200):
    task = Task.objects.select_related("case", "assignee", "sender", "delegate").get(pk=task_pk)
    today, threshold = due_clock(request)
    response = render(
        request,
        "workflow/_inbox_row.html",
        {
            "task": task,
            "tab": "todo",
            "row_errors": list(errors),
            "module_names": _module_names(request.user),
            "due_today": today,
            "due_threshold": threshold,
        },
        status=status,
    )
    if status >= 400:
        # workflow.js swaps such a response in place instead of htmx's generic error.
        response["X-Workflow-Inline"] = "1"
    return response


# --- the case page --------------------------------------------------------------------------


def _task_form(request, task: Task, case: Case, *, picker=None, targets=None, bound: bool = False):
    picker = picker or PersonPicker(request.user, exclude=request.user)
    targets = services.return_targets(case) if targets is None else targets
    return TaskActionForm(
        request.POST if bound else None,
        request.FILES if bound else None,
        task=task,
        picker=picker,
        return_targets=targets if task.step_index != Case.INITIATOR_STEP else [],
        can_delegate=task.assignee_id == request.user.pk,
    )


def _case_page(request, case: Case, *, forms=None, errors=(), status: int = 200):
    """The case page; ``forms`` replaces some of its forms by bound ones (after a failed POST)."""
    user = request.user
    forms = forms or {}
    my_tasks = selectors.my_open_tasks(case, user) if case.is_running else []
    panels = []
    if my_tasks:
        picker = PersonPicker(user, exclude=user)
        targets = services.return_targets(case)
        for task in my_tasks:
            form = forms.get(("task", task.pk)) or _task_form(request, task, case, picker=picker, targets=targets)
            panels.append(
                {
                    "task": task,
                    "form": form,
                    "on_behalf_of": task.assignee if task.assignee_id != user.pk else None,
                    "is_resubmit": task.step_index == Case.INITIATOR_STEP,
                    "picker": picker,
                }
            )
    can_manage_clock = case.is_running and services.can_manage_clock(case, user)
    extensions = []
    for extension in case.extensions.select_related("requested_by"):
        extensions.append({"extension": extension, "case": selectors.case_for(extension)})
    today, threshold = due_clock(request)
    return render(
        request,
        "workflow/case_detail.html",
        {
            "case": case,
            "definition": case.definition,
            "module_name": _module_names(user).get(case.module, case.module),
            "progress": selectors.steps_progress(case),
            "open_tasks": selectors.open_tasks(case) if case.is_running else [],
            "panels": panels,
            "action_errors": list(errors),
            "can_withdraw": services.can_withdraw(case, user),
            "withdraw_form": forms.get("withdraw") or WithdrawForm(),
            "can_manage_clock": can_manage_clock,
            "suspend_form": forms.get("suspend") or SuspendForm(),
            "resume_form": forms.get("resume") or ResumeForm(),
            "extension_form": forms.get("extension") or ExtensionForm(),
            "comment_form": forms.get("comment") or CommentForm(),
            "suspensions": case.suspensions.select_related("started_by", "ended_by"),
            "extensions": extensions,
            "fields": _case_fields(case),
            "due_today": today,
            "due_threshold": threshold,
            "wf_section": "cases",
        },
        status=status,
    )


_FIELD_LABELS = {
    "amount": gettext_lazy("金额（元）"),
    "days": gettext_lazy("延期天数"),
    "case": gettext_lazy("流程编号"),
}


def _case_fields(case: Case) -> list[tuple[str, str]]:
    out = []
    for key, value in (case.fields or {}).items():
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        out.append((str(_FIELD_LABELS.get(key, key)), value))
    return out


def _get_case(request, pk: int) -> Case:
    case = selectors.case_get(user=request.user, pk=pk)
    if case is None:
        raise Http404(_("流程不存在或无权查看。"))
    return case


@login_required
def case_detail(request, pk: int):
    return _case_page(request, _get_case(request, pk))


def _status_for(error: Exception) -> int:
    return 403 if isinstance(error, PermissionDenied) else 400


def _task_action(request, pk: int, perform, success: str):
    """Validate the action panel, let ``perform(task, data)`` call the service, then redirect."""
    task, case = _load_task(request, pk)
    form = _task_form(request, task, case, bound=True)
    if not form.is_valid():
        return _case_page(request, case, forms={("task", task.pk): form}, errors=_form_error_messages(form), status=400)
    try:
        perform(task, form.cleaned_data)
    except (ValidationError, PermissionDenied) as error:
        if isinstance(error, ValidationError):
            add_service_errors(form, error)
        return _case_page(
            request, case, forms={("task", task.pk): form}, errors=_error_messages(error), status=_status_for(error)
        )
    messages.success(request, success)
    return redirect(_safe_next(request, reverse("workflow:case_detail", args=[case.pk])))


@require_POST
@login_required
def task_approve(request, pk: int):
    """同意 from the case page, or the inbox's quick action (htmx: answers with the row)."""
    if request.htmx:
        task, _case = _load_task(request, pk)
        try:
            services.task_approve(task=task, actor=request.user, comment=request.POST.get("comment", ""))
        except (ValidationError, PermissionDenied) as error:
            return _inbox_row(request, task.pk, errors=_error_messages(error), status=_status_for(error))
        return _inbox_row(request, task.pk)

    def perform(task, data):
        services.task_approve(task=task, actor=request.user, comment=data["comment"], files=data["files"])

    return _task_action(request, pk, perform, _("已办理：同意。"))


@require_POST
@login_required
def task_reject(request, pk: int):
    def perform(task, data):
        services.task_reject(task=task, actor=request.user, comment=data["comment"], files=data["files"])

    return _task_action(request, pk, perform, _("已办理：不同意，流程已结束。"))


@require_POST
@login_required
def task_return(request, pk: int):
    def perform(task, data):
        to_step = data.get("to_step")
        if to_step is None:
            raise ValidationError({"to_step": _("请选择退回到哪个环节。")})
        services.task_return(
            task=task, actor=request.user, to_step=to_step, comment=data["comment"], files=data["files"]
        )

    return _task_action(request, pk, perform, _("已退回。"))


@require_POST
@login_required
def task_transfer(request, pk: int):
    def perform(task, data):
        services.task_transfer(task=task, actor=request.user, to_user=data.get("to_user"), comment=data["comment"])

    return _task_action(request, pk, perform, _("已转办。"))


@require_POST
@login_required
def task_delegate(request, pk: int):
    revoke = bool(request.POST.get("revoke"))

    def perform(task, data):
        to_user = None if revoke else data.get("delegate_to")
        if to_user is None and not revoke:
            raise ValidationError({"delegate_to": _("请选择委托办理人。")})
        services.task_delegate(task=task, actor=request.user, to_user=to_user, comment=data["comment"])

    return _task_action(request, pk, perform, _("已收回委托。") if revoke else _("已委托办理。"))


@require_POST
@login_required
def task_add_signers(request, pk: int):
    def perform(task, data):
        people = data.get("people") or []
        services.task_add_signers(task=task, actor=request.user, people=people, comment=data["comment"])

    return _task_action(request, pk, perform, _("已加签。"))


def _case_action(request, pk: int, form_class, key: str, perform, success: str):
    """The same for actions on the case itself (withdraw, clocks, comments)."""
    case = _get_case(request, pk)
    form = form_class(request.POST, request.FILES)
    if not form.is_valid():
        return _case_page(request, case, forms={key: form}, errors=_form_error_messages(form), status=400)
    try:
        perform(case, form.cleaned_data)
    except (ValidationError, PermissionDenied) as error:
        if isinstance(error, ValidationError):
            add_service_errors(form, error)
        return _case_page(request, case, forms={key: form}, errors=_error_messages(error), status=_status_for(error))
    messages.success(request, success)
    return redirect("workflow:case_detail", pk=case.pk)


@require_POST
@login_required
def case_withdraw(request, pk: int):
    def perform(case, data):
        services.case_withdraw(case=case, actor=request.user, comment=data["comment"])

    return _case_action(request, pk, WithdrawForm, "withdraw", perform, _("流程已撤回。"))


@require_POST
@login_required
def case_suspend(request, pk: int):
    def perform(case, data):
        services.case_suspend(case=case, actor=request.user, reason=data["reason"])

    return _case_action(request, pk, SuspendForm, "suspend", perform, _("流程已挂起，办理期限暂停计算。"))


@require_POST
@login_required
def case_resume(request, pk: int):
    def perform(case, data):
        services.case_resume(case=case, actor=request.user, reason=data["reason"])

    return _case_action(request, pk, ResumeForm, "resume", perform, _("流程已恢复，办理期限已按挂起天数顺延。"))


@require_POST
@login_required
def case_extension(request, pk: int):
    def perform(case, data):
        services.extension_request(case=case, actor=request.user, days=data["days"], reason=data["reason"])

    return _case_action(request, pk, ExtensionForm, "extension", perform, _("延期申请已提交，待单位领导审批。"))


@require_POST
@login_required
def case_comment(request, pk: int):
    def perform(case, data):
        services.case_comment(case=case, actor=request.user, comment=data["comment"], files=data["files"])

    return _case_action(request, pk, CommentForm, "comment", perform, _("意见已添加。"))


@login_required
def attachment(request, pk: int):
    """Download an attachment; only whoever may view its case."""
    item = Attachment.objects.select_related("stored").filter(pk=pk).first()
    if item is None or selectors.case_get(user=request.user, pk=item.case_id) is None:
        raise Http404(_("附件不存在或无权查看。"))
    return attachments.attachment_response(item.stored)


# --- the case list and the start page ----------------------------------------------------------


@login_required
def case_list(request):
    user = request.user
    names = _module_names(user)
    form = CaseFilterForm(request.GET or None, modules=list(names.items()))
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    cases = selectors.case_list(
        user=user,
        module=data.get("module", ""),
        status=data.get("status", ""),
        q=data.get("q", ""),
        mine=bool(data.get("mine")),
    )
    today, threshold = due_clock(request)
    return render(
        request,
        "workflow/case_list.html",
        {
            "filter_form": form,
            "filtered": any(data.get(k) for k in ("module", "status", "q", "mine")),
            "page_obj": paginate(request, cases),
            "module_names": names,
            "due_today": today,
            "due_threshold": threshold,
            "wf_section": "cases",
        },
    )


@login_required
def case_start(request):
    """发起请示报告: start a case of any active process in the user's acting unit."""
    user = request.user
    names = _module_names(user)
    definitions = list(active_definitions().order_by("module", "name"))
    form = StartForm(
        request.POST or None,
        request.FILES or None,
        definitions=definitions,
        module_names=names,
        initial={"process": request.GET.get("process", "")},
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        fields = {"amount": _json_number(data["amount"])} if data.get("amount") is not None else {}
        try:
            case = services.case_start(
                process=data["process"],
                initiator=user,
                title=data["title"],
                fields=fields,
                unit=user.acting_unit,
                comment=data["comment"],
                files=data["files"],
                manual=True,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, _("已发起：%(title)s") % {"title": case.title})
            return redirect("workflow:case_detail", pk=case.pk)
    return render(
        request,
        "workflow/case_start.html",
        {"form": form, "has_processes": bool(definitions), "wf_section": "start"},
        status=400 if request.method == "POST" else 200,
    )


# --- process definitions (platform admins) ------------------------------------------------------


def _registry_choices(user, extra: str = "") -> list[tuple[str, str]]:
    names = _module_names(user)
    choices = [(code, _("%(name)s（%(code)s）") % {"name": name, "code": code}) for code, name in names.items()]
    if extra and extra not in names:
        choices.append((extra, extra))
    return choices


@platform_admin_required
def definition_list(request):
    names = _module_names(request.user)
    form = DefinitionFilterForm(request.GET or None, modules=list(names.items()))
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    definitions = selectors.definition_list(q=data.get("q", ""), module=data.get("module", ""))
    return render(
        request,
        "workflow/definition_list.html",
        {
            "filter_form": form,
            "filtered": any(data.get(k) for k in ("module", "q")),
            "page_obj": paginate(request, definitions),
            "module_names": names,
            "import_form": ImportForm(),
            "wf_section": "definitions",
        },
    )


def _current_version(code: str) -> tuple[ProcessDefinition, list[ProcessDefinition]]:
    versions = list(selectors.definition_versions(code).select_related("created_by"))
    if not versions:
        raise Http404(_("流程定义不存在。"))
    active = next((v for v in versions if v.status == ProcessDefinition.Status.ACTIVE), None)
    return active or versions[0], versions


def _split_service_errors(error: ValidationError) -> tuple[dict[str, list[str]], list[str]]:
    if hasattr(error, "error_dict"):
        found = dict(error.message_dict)
    else:
        found = {NON_FIELD_ERRORS: list(error.messages)}
    return found, list(found.pop("steps", []))


@platform_admin_required
def definition_edit(request, code: str | None = None):
    """The editor: the process form plus a formset of steps; saving makes the next version."""
    editing = code is not None
    initial, steps_initial, current = {}, [], None
    if editing:
        current, _versions = _current_version(code)
        initial = {
            "code": current.code,
            "name": current.name,
            "module": current.module,
            "description": current.description,
            "case_time_limit": current.case_time_limit,
        }
        steps_initial = [step_initial(step) for step in current.steps]
    posted = request.method == "POST"
    form = DefinitionForm(
        request.POST if posted else None,
        modules=_registry_choices(request.user, current.module if current else ""),
        editing=editing,
        initial=initial,
    )
    formset = StepFormSet(request.POST if posted else None, initial=steps_initial, prefix="steps")
    step_errors: list[str] = []
    if posted:
        form_ok, steps_ok = form.is_valid(), formset.is_valid()
        if form_ok and not editing and ProcessDefinition.objects.filter(code=form.cleaned_data["code"]).exists():
            form.add_error("code", _("该流程代码已存在，请到该流程的详情页修改（将保存为新版本）。"))
            form_ok = False
        if form_ok and steps_ok:
            data = form.cleaned_data
            try:
                definition = services.definition_save(
                    actor=request.user,
                    code=code if editing else data["code"],
                    name=data["name"],
                    module=data["module"],
                    steps=formset.steps(),
                    case_time_limit=data["case_time_limit"],
                    description=data["description"],
                )
            except PermissionDenied as error:
                return _denied(request, str(error))
            except ValidationError as error:
                found, step_errors = _split_service_errors(error)
                for field, errors in found.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(
                    request,
                    _("流程“%(name)s”已保存为第 %(version)s 版，新发起的流程按此版本办理。")
                    % {"name": definition.name, "version": definition.version},
                )
                return redirect("workflow:definition_detail", code=definition.code)
        if not steps_ok:
            step_errors += [str(e) for e in formset.non_form_errors()]
    return render(
        request,
        "workflow/definition_edit.html",
        {
            "form": form,
            "formset": formset,
            "step_errors": step_errors,
            "editing": editing,
            "current": current,
            "wf_section": "definitions",
        },
        status=400 if posted else 200,
    )


@platform_admin_required
def definition_detail(request, code: str):
    current, versions = _current_version(code)
    shown = current
    wanted = request.GET.get("version", "")
    if wanted.isdigit():
        shown = next((v for v in versions if v.version == int(wanted)), current)
    steps = [
        {
            "number": index + 1,
            "key": step.get("key"),
            "name": step.get("name"),
            "kind": schema.STEP_KINDS.get(step.get("kind"), step.get("kind")),
            "rule": schema.describe_rule(step.get("assignee") or {}),
            "time_limit": step.get("time_limit"),
            "condition": schema.describe_condition(step.get("condition")),
        }
        for index, step in enumerate(shown.steps)
    ]
    return render(
        request,
        "workflow/definition_detail.html",
        {
            "definition": shown,
            "current": current,
            "versions": versions,
            "steps": steps,
            "module_name": _module_names(request.user).get(shown.module, shown.module),
            "has_active": any(v.status == ProcessDefinition.Status.ACTIVE for v in versions),
            "import_form": ImportForm(),
            "wf_section": "definitions",
        },
    )


@platform_admin_required
def definition_export(request, code: str):
    current, versions = _current_version(code)
    wanted = request.GET.get("version", "")
    definition = next((v for v in versions if str(v.version) == wanted), current)
    body = json.dumps(services.definition_export(definition), ensure_ascii=False, indent=2)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{definition.code}-v{definition.version}.json"'
    return response


@platform_admin_required
def definition_import(request):
    form = ImportForm(request.POST or None, request.FILES or None)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        try:
            definition = services.definition_import(actor=request.user, data=form.cleaned_data["file"].read())
        except PermissionDenied as error:
            return _denied(request, str(error))
        except ValidationError as error:
            found, step_errors = _split_service_errors(error)
            labels = {
                "code": _("流程代码"),
                "name": _("流程名称"),
                "module": _("所属模块"),
                "case_time_limit": _("总时限"),
            }
            for field, messages_ in found.items():
                label = labels.get(field, "")
                errors += [
                    _("%(label)s：%(message)s") % {"label": label, "message": m} if label else m for m in messages_
                ]
            errors += step_errors
        else:
            messages.success(
                request,
                _("已导入流程“%(name)s”，保存为第 %(version)s 版。")
                % {"name": definition.name, "version": definition.version},
            )
            return redirect("workflow:definition_detail", code=definition.code)
    return render(
        request,
        "workflow/definition_import.html",
        {"form": form, "errors": errors, "wf_section": "definitions"},
        status=400 if request.method == "POST" else 200,
    )


@require_POST
@platform_admin_required
def definition_disable(request, code: str):
    _current_version(code)
    try:
        changed = services.definition_disable(actor=request.user, code=code)
    except PermissionDenied as error:
        return _denied(request, str(error))
    if changed:
        messages.success(request, _("流程已停用：不能再发起新流程，进行中的流程照常办理。"))
    else:
        messages.info(request, _("该流程没有启用中的版本。"))
    return redirect("workflow:definition_detail", code=code)
