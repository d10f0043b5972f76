"""The one approval engine (流程引擎): definitions as data, cases, tasks, history, clocks.

A ``ProcessDefinition`` row is one immutable version of a process; editing saves a new
version and a running ``Case`` keeps the version it started on. A case walks the
definition's ordered steps; each step activation creates ``Task`` rows (one per assignee)
and every action is written to ``Action`` (the case history). Time limits are counted in
working days (``yiwang.core.calendar``); the suspension ledger moves due dates on resume.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from yiwang.core.models import TimeStamped


class ProcessDefinition(TimeStamped):
    """One version of a process (流程定义). ``steps`` is a validated JSON list (see ``schema``)."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("启用")
        RETIRED = "retired", _("历史版本")
        DISABLED = "disabled", _("停用")

    code = models.CharField(
        _("流程代码"),
        max_length=64,
        help_text=_("如 oa.outgoing；各版本共用"),
        validators=[
            RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", _("流程代码只能用英文字母、数字、点、横线和下划线。"))
        ],
    )
    version = models.PositiveIntegerField(_("版本"), default=1)
    name = models.CharField(_("流程名称"), max_length=100)
    module = models.CharField(_("所属模块"), max_length=32)
    description = models.CharField(_("说明"), max_length=300, blank=True)
    steps = models.JSONField(_("环节"), default=list)
    case_time_limit = models.PositiveIntegerField(_("总时限（工作日）"), null=True, blank=True)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # A process a module starts on its own objects (extension, mass-send approval) cannot be
    # started by hand from the general start page or API.
    internal = models.BooleanField(_("模块内部流程"), default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("流程定义")
        verbose_name_plural = _("流程定义")
        ordering = ["code", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["code", "version"], name="workflow_definition_version"),
            # At most one version of a code is the one new cases start on.
            models.UniqueConstraint(fields=["code"], condition=Q(status="active"), name="workflow_definition_active"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def step(self, index: int) -> dict:
        return self.steps[index]


class Case(TimeStamped):
    """One run of a process on a module's object (流程实例)."""

    class Status(models.TextChoices):
        RUNNING = "running", _("办理中")
        APPROVED = "approved", _("已通过")
        REJECTED = "rejected", _("已驳回")
        WITHDRAWN = "withdrawn", _("已撤回")
        CANCELLED = "cancelled", _("已取消")

    FINISHED = (Status.APPROVED, Status.REJECTED, Status.WITHDRAWN, Status.CANCELLED)
    # The index of the "initiator revises" pseudo-step a case is returned to (退回起草人).
    INITIATOR_STEP = -1

    definition = models.ForeignKey(
        ProcessDefinition, verbose_name=_("流程定义"), on_delete=models.PROTECT, related_name="cases"
    )
    module = models.CharField(_("所属模块"), max_length=32, db_index=True)
    title = models.CharField(_("标题"), max_length=200)
    content_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.PROTECT)
    object_id = models.CharField(max_length=64, blank=True)
    subject = GenericForeignKey("content_type", "object_id")
    fields = models.JSONField(_("业务字段"), default=dict, blank=True)
    initiator = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("发起人"), on_delete=models.PROTECT, related_name="+"
    )
    unit = models.ForeignKey(
        "org.Unit", verbose_name=_("发起单位"), on_delete=models.PROTECT, related_name="workflow_cases"
    )
    lead_unit = models.ForeignKey(
        "org.Unit", verbose_name=_("主办单位"), on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.RUNNING)
    step_index = models.IntegerField(_("当前环节"), null=True, blank=True)
    step_round = models.PositiveIntegerField(default=0)  # increases on every step activation
    started_at = models.DateTimeField(_("发起时间"))
    # The last (re)submission by the initiator: withdrawing is allowed until a task acts after it.
    submitted_at = models.DateTimeField(_("提交时间"))
    # A case returned to its initiator resumes at the step that returned it.
    returned_from = models.IntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(_("办结时间"), null=True, blank=True)
    due_date = models.DateField(_("总办理期限"), null=True, blank=True)
    suspended_at = models.DateTimeField(_("挂起时间"), null=True, blank=True)
    paused_days = models.PositiveIntegerField(_("挂起工作日"), default=0)
    extended_days = models.PositiveIntegerField(_("延期工作日"), default=0)
    overdue_notified = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("流程实例")
        verbose_name_plural = _("流程实例")
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["content_type", "object_id"]),
            models.Index(fields=["unit", "status"]),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_running(self) -> bool:
        return self.status == self.Status.RUNNING

    @property
    def subject_url(self) -> str:
        """The page of the module's own object (the entry, request, document…), if it has one."""
        getter = getattr(self.subject, "get_absolute_url", None) if self.object_id else None
        return getter() if getter else ""

    @property
    def is_suspended(self) -> bool:
        return self.suspended_at is not None

    @property
    def current_step(self) -> dict | None:
        if self.step_index is None:
            return None
        if self.step_index == self.INITIATOR_STEP:
            return {"key": "initiator", "name": str(_("退回起草人修改")), "kind": "single"}
        return self.definition.step(self.step_index)


class Task(models.Model):
    """One person's share of a step (待办). Open tasks make up the inbox."""

    class Status(models.TextChoices):
        OPEN = "open", _("待办")
        DONE = "done", _("已办")
        CANCELLED = "cancelled", _("已取消")

    class Outcome(models.TextChoices):
        APPROVED = "approved", _("同意")
        REJECTED = "rejected", _("不同意")
        RETURNED = "returned", _("退回")
        TRANSFERRED = "transferred", _("已转办")
        RESUBMITTED = "resubmitted", _("修改后提交")

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="tasks")
    module = models.CharField(_("所属模块"), max_length=32)  # copied from the case for the inbox filter
    title = models.CharField(_("标题"), max_length=200)  # copied from the case: the inbox needs no join
    step_index = models.IntegerField(_("环节序号"))
    step_name = models.CharField(_("环节"), max_length=100)
    round = models.PositiveIntegerField(default=0)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("办理人"), on_delete=models.PROTECT, related_name="workflow_tasks"
    )
    # 委托办理: this one task may also be acted on by ``delegate`` in the assignee's name.
    delegate = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("委托办理人"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("来自"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Countersign tasks and added signers must all approve; pool tasks (single/any-one-of)
    # need one approval among them.
    required = models.BooleanField(default=False)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.OPEN)
    outcome = models.CharField(_("结果"), max_length=16, choices=Outcome.choices, blank=True)
    created_at = models.DateTimeField(_("收到时间"))
    due_date = models.DateField(_("办理期限"), null=True, blank=True)
    acted_at = models.DateTimeField(_("办理时间"), null=True, blank=True)
    acted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reminded_on = models.DateField(null=True, blank=True)

    class Meta:
        verbose_name = _("任务")
        verbose_name_plural = _("任务")
        ordering = ["created_at", "id"]
        indexes = [
            # The inbox: one person's open tasks, earliest deadline first (done tasks, the vast
            # majority, are not in this index at all).
            models.Index(fields=["assignee", "due_date"], condition=Q(status="open"), name="workflow_task_inbox"),
            models.Index(fields=["acted_by", "acted_at"], name="workflow_task_done"),
            models.Index(fields=["case", "status"], name="workflow_task_case"),
            models.Index(fields=["delegate"], condition=Q(delegate__isnull=False), name="workflow_task_delegate"),
            models.Index(fields=["status", "due_date"], name="workflow_task_due"),
        ]

    def __str__(self) -> str:
        return f"{self.title} · {self.step_name}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    def due_state(self, today: dt.date | None = None) -> str:
        from .clock import due_state

        return due_state(self.due_date, today=today)


class Action(models.Model):
    """One line of a case's history (办理记录): who did what, in whose name, with what comment."""

    class Kind(models.TextChoices):
        START = "start", _("发起")
        APPROVE = "approve", _("同意")
        REJECT = "reject", _("驳回")
        RETURN = "return", _("退回")
        RESUBMIT = "resubmit", _("重新提交")
        TRANSFER = "transfer", _("转办")
        DELEGATE = "delegate", _("委托办理")
        WITHDRAW = "withdraw", _("撤回")
        ADD_SIGNER = "add_signer", _("加签")
        COMMENT = "comment", _("意见")
        SUSPEND = "suspend", _("挂起")
        RESUME = "resume", _("恢复")
        EXTENSION_REQUEST = "extension_request", _("申请延期")
        EXTENSION_DECIDED = "extension_decided", _("延期审批")
        STEP_DONE = "step_done", _("环节完成")
        FINISH = "finish", _("办结")
        CANCEL = "cancel", _("取消")

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="actions")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="actions")
    kind = models.CharField(_("动作"), max_length=24, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    step_index = models.IntegerField(null=True, blank=True)
    step_name = models.CharField(_("环节"), max_length=100, blank=True)
    comment = models.TextField(_("意见"), blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(_("时间"))

    class Meta:
        verbose_name = _("办理记录")
        verbose_name_plural = _("办理记录")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.comment[:20]}"


def _attachment_path(instance, filename: str) -> str:  # named by migration 0001; files now go through core
    return f"workflow/{instance.case_id}/{filename}"


class Attachment(models.Model):
    """A file attached to an action (附件): the link; the file itself is a ``core.Attachment``."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="attachments")
    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="attachments")
    stored = models.OneToOneField("core.Attachment", on_delete=models.PROTECT, related_name="+")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(_("上传时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("附件")
        verbose_name_plural = _("附件")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.stored.name

    @property
    def size(self) -> int:
        return self.stored.size


class Suspension(models.Model):
    """The suspension ledger (挂起台账): paused working days do not count against limits."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="suspensions")
    reason = models.CharField(_("挂起原因"), max_length=200)
    started_at = models.DateTimeField(_("挂起时间"))
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    ended_at = models.DateTimeField(_("恢复时间"), null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resume_reason = models.CharField(_("恢复说明"), max_length=200, blank=True)
    working_days = models.PositiveIntegerField(_("挂起工作日"), default=0)

    class Meta:
        verbose_name = _("挂起记录")
        verbose_name_plural = _("挂起记录")
        ordering = ["started_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["case"], condition=Q(ended_at__isnull=True), name="workflow_one_open_pause")
        ]

    def __str__(self) -> str:
        return self.reason


class Extension(models.Model):
    """A request to extend a case's time limit (延期); it runs as a case of its own."""

    class Status(models.TextChoices):
        PENDING = "pending", _("待审批")
        APPROVED = "approved", _("已批准")
        REFUSED = "refused", _("未批准")

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="extensions")
    days = models.PositiveIntegerField(_("延期工作日"))
    reason = models.CharField(_("延期理由"), max_length=300)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(_("申请时间"))
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_at = models.DateTimeField(_("审批时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("延期申请")
        verbose_name_plural = _("延期申请")
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["case"], condition=Q(status="pending"), name="workflow_one_pending_extension"
            )
        ]

    def __str__(self) -> str:
        return f"{self.case} +{self.days}"
