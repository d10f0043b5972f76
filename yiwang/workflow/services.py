"""Writes of the workflow engine: definitions, starting cases, every task action, clocks.

Each action locks the case row (``select_for_update``) before it reads anything, so two
people acting on the same step at the same moment are serialised: nothing is lost and a
step never advances twice. Every action is one transaction, audited, and written to the
case history; modules hear about it through ``workflow.signals``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from yiwang.core import attachments
from yiwang.core.audit import audit_record
from yiwang.core.notices import notice_send
from yiwang.org.models import Delegation, Role, Unit, User

from . import clock, schema, signals
from .models import Action, Attachment, Case, Extension, ProcessDefinition, Suspension, Task

EXTENSION_PROCESS = "workflow.extension"
_NO_KEY = connection.features.has_select_for_no_key_update
RESERVED_CODES = {"new", "import"}  # path segments of the definition screens
MAX_ATTACHMENT_BYTES = settings.YIWANG_ATTACHMENT_MAX_BYTES
ATTACHMENT_KINDS = (*attachments.DOCUMENTS, "pptx", "ppt", "gif", "csv", "zip", "rar", "7z")  # by content
MAX_COMMENT = 2000


# --- definitions ------------------------------------------------------------------------


def _check_admin(actor: User | None) -> None:
    if actor is not None and not actor.is_platform_admin:
        raise PermissionDenied(_("只有平台管理员可以维护流程定义。"))


@transaction.atomic
def definition_save(
    *,
    actor: User | None,
    code: str,
    name: str,
    module: str,
    steps: Any,
    case_time_limit: int | None = None,
    description: str = "",
) -> ProcessDefinition:
    """Save a process as its next version; new cases start on it, running cases keep theirs."""
    _check_admin(actor)
    errors: dict[str, list[str]] = {}
    code, name, module = (v.strip() if isinstance(v, str) else "" for v in (code, name, module))
    description = description if isinstance(description, str) else ""
    if not code or len(code) > 64 or not all(c.isalnum() or c in "._-" for c in code) or not code.isascii():
        errors["code"] = [_("流程代码只能用英文字母、数字、点、横线和下划线。")]
    elif code in RESERVED_CODES:
        errors["code"] = [_("“%(code)s”是保留字，请换一个流程代码。") % {"code": code}]
    if not (name or "").strip():
        errors["name"] = [_("请填写流程名称。")]
    if not (module or "").strip() or len(module) > 32:
        errors["module"] = [_("请选择所属模块。")]
    if case_time_limit in ("", None):
        case_time_limit = None
    else:
        try:
            case_time_limit = int(case_time_limit)
        except (TypeError, ValueError):
            case_time_limit = -1
        if not 0 < case_time_limit <= schema.MAX_TIME_LIMIT:
            errors["case_time_limit"] = [_("总时限应为 1–365 个工作日。")]
    try:
        clean_steps = schema.validate_steps(steps)
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    latest = ProcessDefinition.objects.select_for_update().filter(code=code).order_by("-version").first()
    version = latest.version + 1 if latest else 1
    ProcessDefinition.objects.filter(code=code, status=ProcessDefinition.Status.ACTIVE).update(
        status=ProcessDefinition.Status.RETIRED
    )
    definition = ProcessDefinition.objects.create(
        code=code,
        version=version,
        name=name.strip(),
        module=module.strip(),
        description=(description or "").strip()[:300],
        steps=clean_steps,
        case_time_limit=case_time_limit,
        internal=latest.internal if latest else False,
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action="workflow.definition.save",
        obj=definition,
        changes={"version": [latest.version if latest else None, version]},
    )
    return definition


@transaction.atomic
def definition_disable(*, actor: User | None, code: str) -> int:
    """Stop new cases of a process (running cases go on)."""
    _check_admin(actor)
    changed = ProcessDefinition.objects.filter(code=code, status=ProcessDefinition.Status.ACTIVE).update(
        status=ProcessDefinition.Status.DISABLED
    )
    audit_record(
        actor=actor,
        action="workflow.definition.disable",
        object_type="workflow.processdefinition",
        object_id=code,
        object_repr=code,
    )
    return changed


def definition_export(definition: ProcessDefinition) -> dict:
    """A definition as portable JSON (format ``yiwang.workflow/1``)."""
    return {
        "format": schema.FORMAT,
        "code": definition.code,
        "version": definition.version,
        "name": definition.name,
        "module": definition.module,
        "description": definition.description,
        "case_time_limit": definition.case_time_limit,
        "steps": definition.steps,
    }


def definition_import(*, actor: User | None, data: bytes | str | dict) -> ProcessDefinition:
    """Save a definition from exported JSON as the next version of its code."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(_("不是有效的 JSON 文件：%(error)s") % {"error": exc}) from exc
    if not isinstance(data, dict) or data.get("format") != schema.FORMAT:
        raise ValidationError(_("不是 yiwang 流程定义文件（缺少 format: %(format)s）。") % {"format": schema.FORMAT})
    return definition_save(
        actor=actor,
        code=str(data.get("code") or ""),
        name=str(data.get("name") or ""),
        module=str(data.get("module") or ""),
        steps=data.get("steps"),
        case_time_limit=data.get("case_time_limit"),
        description=str(data.get("description") or ""),
    )


def _active_definition(code: str) -> ProcessDefinition:
    definition = ProcessDefinition.objects.filter(code=code, status=ProcessDefinition.Status.ACTIVE).first()
    if definition is None:
        raise ValidationError(_("流程“%(code)s”未定义或已停用。") % {"code": code})
    return definition


# --- starting a case ------------------------------------------------------------------


def _now():
    return timezone.now()


def _history(case: Case, kind: str, *, actor=None, task=None, on_behalf_of=None, comment="", step=None, **data):
    index = case.step_index if step is None else step
    step_name = ""
    if index is not None:
        step_name = str(case.current_step["name"]) if index == case.step_index else _step_name(case, index)
    return Action.objects.create(
        case=case,
        task=task,
        kind=kind,
        actor=actor,
        on_behalf_of=on_behalf_of,
        step_index=index,
        step_name=step_name,
        comment=comment,
        data=data,
        created_at=_now(),
    )


def _step_name(case: Case, index: int) -> str:
    if index == Case.INITIATOR_STEP:
        return _("退回起草人修改")
    return case.definition.step(index)["name"]


def _clean_comment(comment: str | None, *, required: bool = False, what: str = "") -> str:
    comment = (comment or "").strip()
    if required and not comment:
        raise ValidationError({"comment": _("请填写%(what)s。") % {"what": what or _("意见")}})
    if len(comment) > MAX_COMMENT:
        raise ValidationError({"comment": _("意见不能超过 %(n)s 字。") % {"n": MAX_COMMENT}})
    return comment


def _check_files(files: Sequence[UploadedFile]) -> None:
    for upload in files:
        attachments.attachment_check(upload, kinds=ATTACHMENT_KINDS, max_bytes=MAX_ATTACHMENT_BYTES)


def _attach(action: Action, files: Sequence[UploadedFile], actor: User) -> None:
    for upload in files:
        stored = attachments.attachment_create(
            upload=upload, module="workflow", kinds=ATTACHMENT_KINDS, max_bytes=MAX_ATTACHMENT_BYTES, owner=actor,
            unit_id=action.case.unit_id,
        )  # fmt: skip
        Attachment.objects.create(case=action.case, action=action, stored=stored, uploaded_by=actor)


def _plan(definition: ProcessDefinition, *, fields: dict, unit: Unit, lead_unit: Unit | None, initiator: User) -> None:
    """Refuse to start a case that would get stuck: every applicable step must have someone."""
    for index, step in enumerate(definition.steps):
        if schema.condition_holds(step.get("condition"), fields) and not schema.resolve(
            step["assignee"], unit=unit, lead_unit=lead_unit, initiator=initiator
        ):
            raise ValidationError(
                _("无法发起：第 %(n)s 步“%(name)s”找不到办理人（%(rule)s），请联系平台管理员调整流程。")
                % {"n": index + 1, "name": step["name"], "rule": schema.describe_rule(step["assignee"])}
            )


@transaction.atomic
def case_start(
    *,
    process: str | ProcessDefinition,
    initiator: User,
    title: str,
    subject: Any = None,
    fields: dict | None = None,
    unit: Unit | None = None,
    lead_unit: Unit | None = None,
    comment: str = "",
    files: Sequence[UploadedFile] = (),
    manual: bool = False,
    due_date: dt.date | None = None,
) -> Case:
    """Start a case of the active version of ``process`` on a module's object (``subject``).

    ``manual=True`` is for the general start page and API: processes a module runs on its own
    objects (``internal``) cannot be started that way. ``due_date`` is a deadline the module
    set itself (e.g. an access request's reply date), instead of the process's time limit;
    steps without their own time limit are then due on it too.
    """
    definition = process if isinstance(process, ProcessDefinition) else _active_definition(process)
    if manual and definition.internal:
        raise ValidationError({"process": _("该流程由业务模块自动发起，不能手工发起。")})
    unit = unit or initiator.acting_unit
    if unit is None:
        raise ValidationError(_("发起人没有所在单位，无法发起流程。"))
    title = (title or "").strip()
    if not title or len(title) > 200:
        raise ValidationError({"title": _("请填写标题（不超过 200 字）。")})
    if fields is not None and not isinstance(fields, dict):
        raise ValidationError({"fields": _("业务字段必须是对象（键值对）。")})
    fields = dict(fields or {})
    try:
        json.dumps(fields)
    except (TypeError, ValueError) as exc:
        raise ValidationError({"fields": _("业务字段必须是可保存为 JSON 的值。")}) from exc
    comment = _clean_comment(comment)
    _check_files(files)
    _plan(definition, fields=fields, unit=unit, lead_unit=lead_unit, initiator=initiator)
    now = _now()
    case = Case.objects.create(
        definition=definition,
        module=definition.module,
        title=title,
        content_type=ContentType.objects.get_for_model(subject) if subject is not None else None,
        object_id=str(subject.pk) if subject is not None else "",
        fields=fields,
        initiator=initiator,
        unit=unit,
        lead_unit=lead_unit,
        started_at=now,
        submitted_at=now,
        due_date=due_date or clock.due_after(timezone.localdate(now), definition.case_time_limit),
    )
    action = _history(case, Action.Kind.START, actor=initiator, comment=comment, step=None)
    _attach(action, files, initiator)
    audit_record(
        actor=initiator,
        action="workflow.case.start",
        obj=case,
        unit_id=unit.pk,
        changes={"process": [None, f"{definition.code} v{definition.version}"]},
    )
    signals.case_started.send(sender=Case, case=case)
    _activate(case, 0, sender=initiator)
    return case


def _activate(case: Case, index: int, *, sender: User | None, exact: bool = False) -> None:
    """Open the first applicable step from ``index`` on (or finish the case if none is left)."""
    steps = case.definition.steps
    while not exact and index < len(steps) and not schema.condition_holds(steps[index].get("condition"), case.fields):
        index += 1
    if index >= len(steps):
        _finish(case, Case.Status.APPROVED, actor=sender)
        return
    step = steps[index]
    people = schema.resolve(step["assignee"], unit=case.unit, lead_unit=case.lead_unit, initiator=case.initiator)
    note = ""
    if not people:
        # People left since the case started: hand it to the platform admins rather than stall.
        people = list(
            User.objects.filter(posts__role__code=Role.PLATFORM_ADMIN, posts__active=True, is_active=True).distinct()
        )
        note = _("按规则找不到办理人，已转平台管理员处理。")
    case.step_index = index
    case.step_round += 1
    case.save(update_fields=["step_index", "step_round", "updated_at"])
    now = _now()
    due = clock.task_due(timezone.localdate(now), step.get("time_limit"), case.due_date)
    required = step["kind"] == "countersign"
    tasks = [
        _new_task(case, index, step["name"], person, sender=sender, required=required, due=due, now=now)
        for person in people
    ]
    if note:
        _history(case, Action.Kind.COMMENT, comment=note)
    for task in tasks:
        signals.task_created.send(sender=Case, case=case, task=task)


def _new_task(case, index, name, person, *, sender, required, due, now=None, round=None) -> Task:
    return Task.objects.create(
        case=case,
        module=case.module,
        title=case.title,
        step_index=index,
        step_name=name,
        round=case.step_round if round is None else round,
        assignee=person,
        sender=sender,
        required=required,
        created_at=now or _now(),
        due_date=due,
    )


def _reassign(case: Case, task: Task, to_user: User, *, actor: User) -> Task:
    """Close ``task`` as transferred and give the same share of the step to ``to_user``."""
    _close(task, Task.Outcome.TRANSFERRED, actor)
    return _new_task(
        case,
        task.step_index,
        task.step_name,
        to_user,
        sender=actor,
        required=task.required,
        due=task.due_date,
        round=task.round,
    )


def _finish(case: Case, status: str, *, actor: User | None, comment: str = "") -> None:
    now = _now()
    if case.is_suspended:  # a finished case is not paused any more: close the ledger line
        case.suspensions.filter(ended_at__isnull=True).update(ended_at=now, ended_by=actor)
        case.suspended_at = None
    case.status = status
    case.finished_at = now
    case.step_index = None
    case.save(update_fields=["status", "finished_at", "step_index", "suspended_at", "updated_at"])
    case.tasks.filter(status=Task.Status.OPEN).update(status=Task.Status.CANCELLED)
    _history(case, Action.Kind.FINISH, actor=actor, comment=comment, status=status)
    audit_record(actor=actor, action=f"workflow.case.{status}", obj=case, unit_id=case.unit_id)
    signals.case_finished.send(sender=Case, case=case, outcome=status)


# --- who may act -----------------------------------------------------------------------


def delegating_principal_ids(user: User) -> list[int]:
    """People who have delegated to ``user`` right now (org delegation, 代理)."""
    now = _now()
    return list(
        Delegation.objects.filter(
            delegate=user, starts_at__lte=now, ends_at__gt=now, revoked_at__isnull=True
        ).values_list("principal_id", flat=True)
    )


def acting_for(task: Task, user: User) -> User | bool | None:
    """``None`` if ``user`` is the assignee, the assignee if acting for them, ``False`` if neither."""
    if task.assignee_id == user.pk:
        return None
    if task.delegate_id == user.pk or task.assignee_id in delegating_principal_ids(user):
        return task.assignee
    return False


def _locked_cases():
    """Cases locked for an action: the case row only (``OF self``), not the definition it joins,
    and ``NO KEY UPDATE``, so inserting tasks and history that reference the case is not blocked.
    Locking the definition too would serialise every action on every case of a process (bench)."""
    return Case.objects.select_for_update(of=("self",), no_key=_NO_KEY).select_related("definition")


def _lock(task: Task) -> tuple[Case, Task]:
    """Lock the case, then re-read the task: every check below sees the committed state."""
    case = _locked_cases().get(pk=task.case_id)
    return case, Task.objects.select_for_update(no_key=_NO_KEY).get(pk=task.pk)


def _check_can_act(case: Case, task: Task, actor: User) -> User | None:
    on_behalf_of = acting_for(task, actor)
    if on_behalf_of is False:
        raise PermissionDenied(_("这不是您的待办，无权办理。"))
    if case.status == Case.Status.WITHDRAWN:
        raise ValidationError(_("该流程已被发起人撤回，无需再办理。"))
    if not case.is_running:
        raise ValidationError(_("该流程已办结（%(status)s），无法再办理。") % {"status": case.get_status_display()})
    if task.status != Task.Status.OPEN:
        raise ValidationError(_("该待办已办理或已取消，请刷新页面。"))
    if case.is_suspended:
        raise ValidationError(_("该流程已挂起，恢复后才能办理。"))
    return on_behalf_of


def _close(task: Task, outcome: str, actor: User) -> None:
    task.status = Task.Status.DONE
    task.outcome = outcome
    task.acted_at = _now()
    task.acted_by = actor
    task.save(update_fields=["status", "outcome", "acted_at", "acted_by"])


def _step_complete(case: Case, task: Task) -> bool:
    """A step is done when every required task approved and the pool (if any) has one approval."""
    tasks = list(case.tasks.filter(step_index=task.step_index, round=task.round).exclude(status=Task.Status.CANCELLED))
    if any(t.required and t.status == Task.Status.OPEN for t in tasks):
        return False
    pool = [t for t in tasks if not t.required]
    return not pool or any(t.outcome == Task.Outcome.APPROVED for t in pool)


# --- actions --------------------------------------------------------------------------


@transaction.atomic
def task_approve(*, task: Task, actor: User, comment: str = "", files: Sequence[UploadedFile] = ()) -> Task:
    """Agree (同意). Completes the step when its rule is met, then opens the next step."""
    case, task = _lock(task)
    on_behalf_of = _check_can_act(case, task, actor)
    comment = _clean_comment(comment)
    _check_files(files)
    resubmit = task.step_index == Case.INITIATOR_STEP
    _close(task, Task.Outcome.RESUBMITTED if resubmit else Task.Outcome.APPROVED, actor)
    kind = Action.Kind.RESUBMIT if resubmit else Action.Kind.APPROVE
    action = _history(case, kind, actor=actor, task=task, on_behalf_of=on_behalf_of, comment=comment)
    _attach(action, files, actor)
    audit_record(actor=actor, action=f"workflow.task.{kind}", obj=task, unit_id=case.unit_id)
    if resubmit:
        case.submitted_at = _now()
        case.save(update_fields=["submitted_at", "updated_at"])
        target, case.returned_from = case.returned_from or 0, None
        case.save(update_fields=["returned_from"])
        _activate(case, target, sender=actor, exact=True)
        return task
    if not task.required:  # one approval satisfies the pool: the others need not act
        case.tasks.filter(step_index=task.step_index, round=task.round, required=False, status=Task.Status.OPEN).update(
            status=Task.Status.CANCELLED
        )
    if _step_complete(case, task):
        index = task.step_index
        _history(case, Action.Kind.STEP_DONE, step=index)
        signals.step_completed.send(sender=Case, case=case, step_index=index, step=case.definition.step(index))
        _activate(case, index + 1, sender=actor)
    return task


@transaction.atomic
def task_reject(*, task: Task, actor: User, comment: str, files: Sequence[UploadedFile] = ()) -> Task:
    """Disagree (不同意): ends the case as rejected. A reason is required."""
    case, task = _lock(task)
    on_behalf_of = _check_can_act(case, task, actor)
    comment = _clean_comment(comment, required=True, what=_("驳回理由"))
    _check_files(files)
    _close(task, Task.Outcome.REJECTED, actor)
    action = _history(case, Action.Kind.REJECT, actor=actor, task=task, on_behalf_of=on_behalf_of, comment=comment)
    _attach(action, files, actor)
    _finish(case, Case.Status.REJECTED, actor=actor, comment=comment)
    return task


def return_targets(case: Case) -> list[tuple[int, str]]:
    """Earlier steps a current task may return the case to, the initiator first."""
    if case.step_index is None or case.step_index <= 0:
        return [] if case.step_index == Case.INITIATOR_STEP else [(Case.INITIATOR_STEP, _("起草人（发起人）"))]
    targets = [(Case.INITIATOR_STEP, _("起草人（发起人）"))]
    reached = set(case.tasks.filter(step_index__gte=0).values_list("step_index", flat=True))
    targets += [(i, s["name"]) for i, s in enumerate(case.definition.steps[: case.step_index]) if i in reached]
    return targets


@transaction.atomic
def task_return(*, task: Task, actor: User, to_step: int, comment: str, files: Sequence[UploadedFile] = ()) -> Task:
    """Send the case back to an earlier step (or to the initiator to revise). A reason is required."""
    case, task = _lock(task)
    on_behalf_of = _check_can_act(case, task, actor)
    comment = _clean_comment(comment, required=True, what=_("退回理由"))
    _check_files(files)
    if to_step not in {index for index, _name in return_targets(case)}:
        raise ValidationError({"to_step": _("只能退回到已经办理过的前面环节。")})
    _close(task, Task.Outcome.RETURNED, actor)
    from_step = case.step_index
    action = _history(
        case,
        Action.Kind.RETURN,
        actor=actor,
        task=task,
        on_behalf_of=on_behalf_of,
        comment=comment,
        to_step=to_step,
        to_name=_step_name(case, to_step),
    )
    _attach(action, files, actor)
    case.tasks.filter(status=Task.Status.OPEN).update(status=Task.Status.CANCELLED)
    audit_record(
        actor=actor,
        action="workflow.task.return",
        obj=task,
        unit_id=case.unit_id,
        changes={"step": [from_step, to_step]},
    )
    if to_step == Case.INITIATOR_STEP:
        case.returned_from = from_step
        case.step_index = Case.INITIATOR_STEP
        case.step_round += 1
        case.save(update_fields=["returned_from", "step_index", "step_round", "updated_at"])
        new = _new_task(
            case, Case.INITIATOR_STEP, _("退回起草人修改"), case.initiator, sender=actor, required=True, due=None
        )
        signals.task_created.send(sender=Case, case=case, task=new)
    else:
        _activate(case, to_step, sender=actor, exact=True)
    signals.case_returned.send(sender=Case, case=case, to_step=to_step, actor=actor)
    return task


def _check_person(person: User | None, field: str = "to_user") -> User:
    if person is None or not person.is_active or person.is_system:
        raise ValidationError({field: _("请选择一位在岗人员。")})
    return person


@transaction.atomic
def task_transfer(*, task: Task, actor: User, to_user: User, comment: str = "") -> Task:
    """Hand the task to someone else (转办); they become the one who must act."""
    case, task = _lock(task)
    on_behalf_of = _check_can_act(case, task, actor)
    _check_person(to_user)
    comment = _clean_comment(comment)
    if to_user.pk == task.assignee_id:
        raise ValidationError({"to_user": _("不能转办给当前办理人本人。")})
    if case.tasks.filter(
        step_index=task.step_index, round=task.round, assignee=to_user, status=Task.Status.OPEN
    ).exists():
        raise ValidationError({"to_user": _("%(name)s 在本环节已有待办。") % {"name": to_user}})
    new = _reassign(case, task, to_user, actor=actor)
    _history(
        case,
        Action.Kind.TRANSFER,
        actor=actor,
        task=task,
        on_behalf_of=on_behalf_of,
        comment=comment,
        to_user=to_user.username,
        to_name=str(to_user),
    )
    audit_record(
        actor=actor,
        action="workflow.task.transfer",
        obj=task,
        unit_id=case.unit_id,
        changes={"assignee": [task.assignee.username, to_user.username]},
    )
    signals.task_created.send(sender=Case, case=case, task=new)
    return new


@transaction.atomic
def task_delegate(*, task: Task, actor: User, to_user: User | None, comment: str = "") -> Task:
    """Let someone act on this one task in the assignee's name (委托办理); ``None`` takes it back."""
    case, task = _lock(task)
    on_behalf_of = _check_can_act(case, task, actor)
    if on_behalf_of is not None:
        raise PermissionDenied(_("只有办理人本人可以委托他人办理。"))
    if to_user is not None:
        _check_person(to_user)
        if to_user.pk == actor.pk:
            raise ValidationError({"to_user": _("不能委托给本人。")})
    comment = _clean_comment(comment)
    task.delegate = to_user
    task.save(update_fields=["delegate"])
    if to_user is not None:
        _task_created_notice(Case, case=case, task=task)  # the delegate now holds it: tell them
    _history(
        case,
        Action.Kind.DELEGATE,
        actor=actor,
        task=task,
        comment=comment,
        to_user=to_user.username if to_user else "",
        to_name=str(to_user) if to_user else "",
    )
    audit_record(
        actor=actor,
        action="workflow.task.delegate",
        obj=task,
        unit_id=case.unit_id,
        changes={"delegate": [None, to_user.username if to_user else None]},
    )
    return task


@transaction.atomic
def task_add_signers(*, task: Task, actor: User, people: Iterable[User], comment: str = "") -> list[Task]:
    """Add signers to the current step (加签): each of them must also agree before it completes."""
    case, task = _lock(task)
    on_behalf_of = _check_can_act(case, task, actor)
    people = list({p.pk: p for p in people}.values())
    if not people:
        raise ValidationError({"people": _("请选择要加签的人员。")})
    if task.step_index == Case.INITIATOR_STEP:
        raise ValidationError(_("退回修改环节不能加签。"))
    comment = _clean_comment(comment)
    busy = set(
        case.tasks.filter(step_index=task.step_index, round=task.round, status=Task.Status.OPEN).values_list(
            "assignee_id", flat=True
        )
    )
    new_tasks = []
    for person in people:
        _check_person(person, "people")
        if person.pk in busy:
            raise ValidationError({"people": _("%(name)s 在本环节已有待办。") % {"name": person}})
        new_tasks.append(
            _new_task(
                case,
                task.step_index,
                task.step_name,
                person,
                sender=actor,
                required=True,
                due=task.due_date,
                round=task.round,
            )
        )
    _history(
        case,
        Action.Kind.ADD_SIGNER,
        actor=actor,
        task=task,
        on_behalf_of=on_behalf_of,
        comment=comment,
        people=[p.username for p in people],
        names=[str(p) for p in people],
    )
    audit_record(
        actor=actor,
        action="workflow.task.add_signer",
        obj=task,
        unit_id=case.unit_id,
        changes={"signers": [None, [p.username for p in people]]},
    )
    for new in new_tasks:
        signals.task_created.send(sender=Case, case=case, task=new)
    return new_tasks


def can_view_case(case: Case, user: User) -> bool:
    """The initiator, anyone who holds or held a task (or acts for them), and whoever's scope covers the unit."""
    from .selectors import can_view_case as _can_view

    return _can_view(case, user)


@transaction.atomic
def case_comment(*, case: Case, actor: User, comment: str, files: Sequence[UploadedFile] = ()) -> Action:
    """Add an opinion or a file to a case without acting on it."""
    if not can_view_case(case, actor):
        raise PermissionDenied(_("无权查看该流程。"))
    comment = _clean_comment(comment, required=not files)
    _check_files(files)
    case = _locked_cases().get(pk=case.pk)
    action = _history(case, Action.Kind.COMMENT, actor=actor, comment=comment)
    _attach(action, files, actor)
    return action


def can_withdraw(case: Case, user: User) -> bool:
    return (
        case.is_running
        and case.initiator_id == user.pk
        and (
            case.step_index == Case.INITIATOR_STEP  # returned to the initiator: they may drop it
            or not case.tasks.filter(acted_at__gt=case.submitted_at, step_index__gte=0).exists()
        )
    )


@transaction.atomic
def case_withdraw(*, case: Case, actor: User, comment: str = "") -> Case:
    """The initiator takes the case back (撤回) before anyone has acted on it."""
    case = _locked_cases().get(pk=case.pk)
    if case.initiator_id != actor.pk:
        raise PermissionDenied(_("只有发起人可以撤回。"))
    if not case.is_running:
        raise ValidationError(_("该流程已办结（%(status)s），无法撤回。") % {"status": case.get_status_display()})
    if not can_withdraw(case, actor):
        raise ValidationError(_("下一环节已经办理，无法撤回。"))
    comment = _clean_comment(comment)
    _history(case, Action.Kind.WITHDRAW, actor=actor, comment=comment)
    _finish(case, Case.Status.WITHDRAWN, actor=actor, comment=comment)
    return case


@transaction.atomic
def case_cancel(*, case: Case, actor: User | None, reason: str) -> Case:
    """The owning module ends a running case (e.g. its document was deleted)."""
    case = _locked_cases().get(pk=case.pk)
    if not case.is_running:
        return case
    _finish(case, Case.Status.CANCELLED, actor=actor, comment=_clean_comment(reason, required=True))
    return case


# --- clocks: suspension and extension ---------------------------------------------------


def can_manage_clock(case: Case, user: User) -> bool:
    """Holders of an open task (or their delegates) and platform admins may pause and extend."""
    if user.is_platform_admin:
        return True
    principals = delegating_principal_ids(user)
    return (
        case.tasks.filter(status=Task.Status.OPEN)
        .filter(Q(assignee=user) | Q(delegate=user) | Q(assignee_id__in=principals))
        .exists()
    )


@transaction.atomic
def case_suspend(*, case: Case, actor: User, reason: str) -> Suspension:
    """Pause the case's clocks (挂起), e.g. while the applicant corrects documents."""
    case = _locked_cases().get(pk=case.pk)
    if not case.is_running:
        raise ValidationError(_("该流程已办结，无法挂起。"))
    if not can_manage_clock(case, actor):
        raise PermissionDenied(_("只有当前办理人可以挂起流程。"))
    if case.is_suspended:
        raise ValidationError(_("该流程已处于挂起状态。"))
    reason = _clean_comment(reason, required=True, what=_("挂起原因"))[:200]
    now = _now()
    suspension = Suspension.objects.create(case=case, reason=reason, started_at=now, started_by=actor)
    case.suspended_at = now
    case.save(update_fields=["suspended_at", "updated_at"])
    _history(case, Action.Kind.SUSPEND, actor=actor, comment=reason)
    audit_record(actor=actor, action="workflow.case.suspend", obj=case, unit_id=case.unit_id)
    return suspension


@transaction.atomic
def case_resume(*, case: Case, actor: User, reason: str = "") -> Suspension:
    """Restart the clocks; the paused working days move every open deadline later."""
    case = _locked_cases().get(pk=case.pk)
    if not case.is_running:
        raise ValidationError(_("该流程已办结，无需恢复。"))
    if not can_manage_clock(case, actor):
        raise PermissionDenied(_("只有当前办理人可以恢复流程。"))
    suspension = case.suspensions.filter(ended_at__isnull=True).first()
    if suspension is None:
        raise ValidationError(_("该流程没有挂起。"))
    now = _now()
    days = clock.paused_working_days(suspension.started_at, now)
    suspension.ended_at, suspension.ended_by, suspension.working_days = now, actor, days
    suspension.resume_reason = _clean_comment(reason)[:200]
    suspension.save()
    case.suspended_at = None
    case.paused_days += days
    _shift_deadlines(case, days)
    case.save(update_fields=["suspended_at", "paused_days", "due_date", "updated_at"])
    _history(case, Action.Kind.RESUME, actor=actor, comment=suspension.resume_reason, paused_days=days)
    audit_record(
        actor=actor,
        action="workflow.case.resume",
        obj=case,
        unit_id=case.unit_id,
        changes={"paused_days": [None, days]},
    )
    return suspension


def _shift_deadlines(case: Case, days: int) -> None:
    if days <= 0:
        return
    case.due_date = clock.shift(case.due_date, days)
    for task in case.tasks.filter(status=Task.Status.OPEN, due_date__isnull=False):
        task.due_date = clock.shift(task.due_date, days)
        task.reminded_on = None
        task.save(update_fields=["due_date", "reminded_on"])
    if case.due_date is None or case.due_date >= clock.today():
        case.overdue_notified = False
        case.save(update_fields=["overdue_notified"])


def deadlines_recount(*, year: int, previous: Mapping[dt.date, bool], actor=None) -> dict[str, int]:
    """Recount the due dates of open tasks and running cases whose clock runs into ``year``
    after that year's holidays changed (``previous``: the year's old working days).

    Each clock keeps its number of working days from the day it started; a moved case
    deadline is written to the case history. Called by the ``calendar_changed`` receiver."""
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    moved = {"tasks": 0, "cases": 0}
    today = clock.today()
    tasks = Task.objects.filter(status=Task.Status.OPEN, due_date__gte=first).select_for_update()
    for task in tasks:
        start = timezone.localdate(task.created_at)
        due = clock.recount(start, task.due_date, previous) if start <= last else task.due_date
        if due != task.due_date:
            task.due_date, task.reminded_on = due, None
            task.save(update_fields=["due_date", "reminded_on"])
            moved["tasks"] += 1
    cases = Case.objects.filter(status=Case.Status.RUNNING, due_date__gte=first).select_for_update()
    for case in cases:
        start = timezone.localdate(case.started_at)
        due = clock.recount(start, case.due_date, previous) if start <= last else case.due_date
        if due == case.due_date:
            continue
        old, case.due_date = case.due_date, due
        if due >= today:
            case.overdue_notified = False
        case.save(update_fields=["due_date", "overdue_notified", "updated_at"])
        _history(
            case,
            Action.Kind.COMMENT,
            comment=_("%(year)s 年节假日安排已录入，总办理期限由 %(old)s 调整为 %(new)s。")
            % {"year": year, "old": old.isoformat(), "new": due.isoformat()},
        )
        moved["cases"] += 1
    if moved["tasks"] or moved["cases"]:
        audit_record(
            actor=actor,
            action="workflow.deadlines.recount",
            object_type="core.calendaroverride",
            object_id=str(year),
            object_repr=_("%(year)s 年节假日安排") % {"year": year},
            changes={"tasks": [None, moved["tasks"]], "cases": [None, moved["cases"]]},
        )
    return moved


def _calendar_changed(sender, year: int, previous: Mapping[dt.date, bool], actor=None, **kwargs) -> None:
    deadlines_recount(year=year, previous=previous, actor=actor)


def builtin_process(*, code: str, name: str, module: str, description: str, steps: list[dict]) -> ProcessDefinition:
    """The active version of a process a module relies on, created on first use.

    An admin may later save a new version in the editor (e.g. to change the approver);
    the module keeps using whichever version is active. A disabled one is not revived.
    """
    definition = ProcessDefinition.objects.filter(code=code).order_by("-version").first()
    if definition is None:
        try:
            with transaction.atomic():
                definition = ProcessDefinition.objects.create(
                    code=code,
                    name=name,
                    module=module,
                    description=description,
                    steps=schema.validate_steps(steps),
                    internal=True,
                )
        except IntegrityError:
            definition = None
    return (
        definition
        if definition is not None and definition.status == ProcessDefinition.Status.ACTIVE
        else (_active_definition(code))
    )


def _extension_process() -> ProcessDefinition:
    """The built-in process that approves extensions: any leader of the requester's unit."""
    return builtin_process(
        code=EXTENSION_PROCESS,
        name=_("延期审批"),
        module="workflow",
        description=_("办理期限延期须经申请人所在单位领导批准"),
        steps=[
            {
                "key": "approve",
                "name": _("单位领导审批"),
                "kind": "any_one",
                "assignee": {"type": "initiator_leader", "rank": ""},
                "time_limit": 2,
            }
        ],
    )


@transaction.atomic
def extension_request(*, case: Case, actor: User, days: int, reason: str) -> Extension:
    """Ask to extend the case's time limit (延期); a leader approves it through its own case."""
    case = _locked_cases().get(pk=case.pk)
    if not case.is_running:
        raise ValidationError(_("该流程已办结，无需延期。"))
    if not can_manage_clock(case, actor):
        raise PermissionDenied(_("只有当前办理人可以申请延期。"))
    try:
        days = int(days)
    except (TypeError, ValueError):
        days = 0
    if not 0 < days <= 60:
        raise ValidationError({"days": _("延期天数应为 1–60 个工作日。")})
    reason = _clean_comment(reason, required=True, what=_("延期理由"))[:300]
    if case.extensions.filter(status=Extension.Status.PENDING).exists():
        raise ValidationError(_("已有一份延期申请在审批中。"))
    extension = Extension.objects.create(case=case, days=days, reason=reason, requested_by=actor, requested_at=_now())
    _history(case, Action.Kind.EXTENSION_REQUEST, actor=actor, comment=reason, days=days)
    case_start(
        process=_extension_process(),
        initiator=actor,
        title=_("延期申请：%(title)s（%(days)s 个工作日）") % {"title": case.title[:150], "days": days},
        subject=extension,
        fields={"days": days, "case": case.pk},
        unit=actor.acting_unit or case.unit,
        comment=reason,
    )
    return extension


def _extension_decided(sender, case: Case, outcome: str, **kwargs) -> None:
    """When an extension's own case ends, apply or refuse it on the case it extends."""
    if case.definition.code != EXTENSION_PROCESS or case.content_type is None:
        return
    extension = Extension.objects.select_for_update().filter(pk=case.object_id).first()
    if extension is None or extension.status != Extension.Status.PENDING:
        return
    extension.status = Extension.Status.APPROVED if outcome == Case.Status.APPROVED else Extension.Status.REFUSED
    extension.decided_at = _now()
    extension.save(update_fields=["status", "decided_at"])
    target = _locked_cases().get(pk=extension.case_id)
    if extension.status == Extension.Status.APPROVED and target.is_running:
        target.extended_days += extension.days
        _shift_deadlines(target, extension.days)
        target.save(update_fields=["extended_days", "due_date", "updated_at"])
    _history(
        target,
        Action.Kind.EXTENSION_DECIDED,
        actor=None,
        comment=extension.get_status_display(),
        days=extension.days,
        approved=extension.status == Extension.Status.APPROVED,
    )


signals.case_finished.connect(_extension_decided, dispatch_uid="workflow.extension_decided")


# --- reminders ------------------------------------------------------------------------


def _remind(sender, case: Case, task: Task, overdue: bool = False, **kwargs) -> None:
    """The default reminder: an in-app notice (notify adds SMS when it is installed)."""
    template = (
        _("【超期】%(title)s（%(step)s）已超过办理期限 %(due)s")
        if overdue
        else _("【即将到期】%(title)s（%(step)s）请于 %(due)s 前办理")
    )
    notice_send(
        recipient_id=task.delegate_id or task.assignee_id,
        module="workflow",
        title=template % {"title": task.title[:120], "step": task.step_name, "due": task.due_date},
        url=reverse("workflow:case_detail", args=[case.pk]),
    )


signals.task_due_soon.connect(_remind, dispatch_uid="workflow.remind_soon")
signals.task_overdue.connect(
    lambda sender, **kw: _remind(sender, overdue=True, **kw), weak=False, dispatch_uid="workflow.remind_overdue"
)


def task_recipient_id(task: Task) -> int | None:
    """Who is told about ``task``: its delegate if there is one, else its assignee — nobody
    when that is the person who handed it over (someone starting a case on their own desk)."""
    recipient_id = task.delegate_id or task.assignee_id
    return None if recipient_id == task.sender_id else recipient_id


def _task_created_notice(sender, case: Case, task: Task, **kwargs) -> None:
    """A new task: an in-app notice to the person who must act (notify adds SMS per its policy)."""
    recipient_id = task_recipient_id(task)
    if recipient_id is None:
        return
    if task.due_date:
        title = _("【新待办】%(title)s（%(step)s），请于 %(due)s 前办理")
    else:
        title = _("【新待办】%(title)s（%(step)s）")
    notice_send(
        recipient_id=recipient_id,
        module="workflow",
        title=title % {"title": task.title[:120], "step": task.step_name, "due": task.due_date},
        url=reverse("workflow:case_detail", args=[case.pk]),
    )


signals.task_created.connect(_task_created_notice, dispatch_uid="workflow.task_created_notice")


def escalation_leaders(case: Case) -> list[User]:
    """The leaders an overdue case is escalated to (超期督办): the principal leaders (主要领导) of
    the unit that handles it (主办单位, else the starting unit), or its other leaders if it has
    no principal one."""
    from yiwang.org.selectors import leaders_of

    unit = case.lead_unit or case.unit
    return list(leaders_of(unit=unit, rank="principal").order_by("id")) or list(leaders_of(unit=unit).order_by("id"))


def _escalate_overdue(sender, case: Case, **kwargs) -> None:
    """``case_overdue``: tell the unit's leaders which step it is stuck at and with whom."""
    waiting = case.tasks.filter(status=Task.Status.OPEN).select_related("assignee", "delegate").order_by("id")
    people = "、".join(dict.fromkeys(str(t.delegate or t.assignee) for t in waiting)) or "—"
    step = _step_name(case, case.step_index) if case.step_index is not None else "—"
    title = _("【超期督办】%(title)s 已超过办理期限 %(due)s，停在“%(step)s”（%(people)s）") % {
        "title": case.title[:80],
        "due": case.due_date,
        "step": step,
        "people": people[:60],
    }
    for leader in escalation_leaders(case):
        notice_send(
            recipient_id=leader.pk,
            module="workflow",
            title=title,
            url=reverse("workflow:case_detail", args=[case.pk]),
        )


signals.case_overdue.connect(_escalate_overdue, dispatch_uid="workflow.escalate_overdue")


def reminders_send(*, today=None) -> dict[str, int]:
    """Send due-soon and overdue reminders, at most one per task per day (beat job).

    A task is claimed with a conditional UPDATE before its reminder goes out, so two beat
    runs (or two workers) never remind twice on the same day.
    """
    today = today or clock.today()
    threshold = clock.soon_threshold(today)
    sent = {"due_soon": 0, "overdue": 0, "cases_overdue": 0}
    candidates = (
        Task.objects.filter(status=Task.Status.OPEN, due_date__lte=threshold, case__suspended_at__isnull=True)
        .filter(Q(reminded_on__isnull=True) | Q(reminded_on__lt=today))
        .select_related("case")
        .order_by("id")
    )
    for task in candidates.iterator(chunk_size=500):
        with transaction.atomic():
            claimed = (
                Task.objects.filter(pk=task.pk, status=Task.Status.OPEN)
                .filter(Q(reminded_on__isnull=True) | Q(reminded_on__lt=today))
                .update(reminded_on=today)
            )
            if not claimed:
                continue
            overdue = task.due_date < today
            (signals.task_overdue if overdue else signals.task_due_soon).send(sender=Case, case=task.case, task=task)
            sent["overdue" if overdue else "due_soon"] += 1
    late_cases = Case.objects.filter(
        status=Case.Status.RUNNING, due_date__lt=today, overdue_notified=False, suspended_at__isnull=True
    )
    for case in late_cases.iterator(chunk_size=500):
        with transaction.atomic():
            if Case.objects.filter(pk=case.pk, overdue_notified=False).update(overdue_notified=True):
                signals.case_overdue.send(sender=Case, case=case)
                sent["cases_overdue"] += 1
    return sent


@transaction.atomic
def tasks_hand_over(*, actor: User, from_user: User, to_user: User, reason: str) -> int:
    """Move all of a person's open tasks to someone else (工作交接), e.g. when they change post.

    Only a manager of one of ``from_user``'s units (or a platform admin) may do this; each task is
    transferred with the usual history line, so every case shows who took over and why.
    """
    from yiwang.org.services import can_manage_unit

    if not actor.is_platform_admin and not any(can_manage_unit(actor, post.unit) for post in from_user.own_posts):
        raise PermissionDenied(_("只有该人员所在单位的管理员可以办理工作交接。"))
    _check_person(to_user)
    if to_user.pk == from_user.pk:
        raise ValidationError({"to_user": _("交接双方不能是同一人。")})
    reason = _clean_comment(reason, required=True, what=_("交接原因"))
    moved = 0
    for task in Task.objects.filter(assignee=from_user, status=Task.Status.OPEN).order_by("case_id", "id"):
        case, task = _lock(task)
        if task.status != Task.Status.OPEN or not case.is_running:
            continue
        if case.tasks.filter(
            step_index=task.step_index, round=task.round, assignee=to_user, status=Task.Status.OPEN
        ).exists():
            # the successor already holds this step: the predecessor's share simply lapses
            task.status = Task.Status.CANCELLED
            task.save(update_fields=["status"])
        else:
            signals.task_created.send(sender=Case, case=case, task=_reassign(case, task, to_user, actor=actor))
        _history(
            case,
            Action.Kind.TRANSFER,
            actor=actor,
            task=task,
            comment=reason,
            on_behalf_of=from_user,
            to_user=to_user.username,
            to_name=str(to_user),
            hand_over=True,
        )
        moved += 1
    audit_record(
        actor=actor,
        action="workflow.tasks.hand_over",
        obj=from_user,
        changes={"to": [None, to_user.username], "tasks": [None, moved]},
    )
    return moved
