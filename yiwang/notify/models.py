"""The district's one SMS platform (统一短信群发平台): templates, policies, jobs, messages, receipts.

Every SMS any module sends is a ``Message`` row first (an outbox): a dispatcher claims rows
that are still ``created`` with an atomic UPDATE, so a redelivered Celery task or a second
worker never sends a row twice, and a killed worker loses nothing (a beat job puts rows stuck
in ``sending`` back). A job's rows are unique on (job, row number).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from yiwang.core.models import TimeStamped
from yiwang.core.validators import validate_visible_text


class Policy(TimeStamped):
    """Central control per unit (集中控制): signature, quotas, rate, approval threshold.

    The row with ``unit`` NULL is the district default; a unit without its own row uses it.
    """

    unit = models.OneToOneField(
        "org.Unit", verbose_name=_("单位"), null=True, blank=True, on_delete=models.CASCADE, related_name="sms_policy"
    )
    signature = models.CharField(_("短信签名"), max_length=12, blank=True, help_text=_("如：北仑区教育局"))
    daily_quota = models.PositiveIntegerField(_("每日配额（条）"), default=5000)
    per_minute = models.PositiveIntegerField(_("每分钟上限（条）"), default=3000)
    approval_threshold = models.PositiveIntegerField(_("需领导审批的群发规模（条）"), default=10000)
    quiet_start = models.TimeField(_("免打扰开始"), null=True, blank=True)
    quiet_end = models.TimeField(_("免打扰结束"), null=True, blank=True)
    enabled = models.BooleanField(_("允许发送"), default=True)

    class Meta:
        verbose_name = _("短信策略")
        verbose_name_plural = _("短信策略")

    def __str__(self) -> str:
        return str(self.unit or _("全区默认"))


class Template(TimeStamped):
    """One version of a unit's SMS template (短信模板); editing saves the next version."""

    class Kind(models.TextChoices):
        NOTICE = "notice", _("通知")
        VERIFICATION = "verification", _("验证码")
        ALARM = "alarm", _("告警")

    URGENT_KINDS = (Kind.VERIFICATION, Kind.ALARM)

    unit = models.ForeignKey("org.Unit", verbose_name=_("单位"), on_delete=models.PROTECT, related_name="sms_templates")
    code = models.SlugField(_("模板代码"), max_length=64)
    version = models.PositiveIntegerField(_("版本"), default=1)
    name = models.CharField(_("模板名称"), max_length=100, validators=[validate_visible_text])
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices, default=Kind.NOTICE)
    body = models.TextField(_("内容"), help_text=_("占位符写作 ((姓名))"))
    active = models.BooleanField(_("当前版本"), default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = _("短信模板")
        verbose_name_plural = _("短信模板")
        ordering = ["unit", "code", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["unit", "code", "version"], name="notify_template_version"),
            models.UniqueConstraint(fields=["unit", "code"], condition=Q(active=True), name="notify_template_active"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def urgent(self) -> bool:
        return self.kind in self.URGENT_KINDS


class OptOut(models.Model):
    """A number that asked not to receive SMS (退订); honoured for every non-urgent send."""

    mobile = models.CharField(_("手机号"), max_length=11, unique=True)
    reason = models.CharField(_("原因"), max_length=200, blank=True)
    source = models.CharField(_("来源"), max_length=16, default="admin")  # admin / reply / api
    created_at = models.DateTimeField(_("退订时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("退订号码")
        verbose_name_plural = _("退订号码")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.mobile


class Job(TimeStamped):
    """A mass send from a spreadsheet (群发任务)."""

    class Status(models.TextChoices):
        VALIDATING = "validating", _("校验中")
        INVALID = "invalid", _("文件有误")
        VALIDATED = "validated", _("待确认")
        PENDING_APPROVAL = "pending_approval", _("待审批")
        SCHEDULED = "scheduled", _("已排期")
        SENDING = "sending", _("发送中")
        FINISHED = "finished", _("已完成")
        CANCELLED = "cancelled", _("已取消")
        REFUSED = "refused", _("审批未通过")

    OPEN = (Status.VALIDATING, Status.VALIDATED, Status.PENDING_APPROVAL, Status.SCHEDULED, Status.SENDING)
    # 进行中: moving without the sender doing anything; a validated job waits for their confirmation (待确认)
    IN_PROGRESS = (Status.VALIDATING, Status.PENDING_APPROVAL, Status.SCHEDULED, Status.SENDING)

    unit = models.ForeignKey("org.Unit", verbose_name=_("单位"), on_delete=models.PROTECT, related_name="sms_jobs")
    template = models.ForeignKey(Template, verbose_name=_("模板"), on_delete=models.PROTECT, related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    source_name = models.CharField(_("文件名"), max_length=200)
    source = models.FileField(upload_to="notify/jobs/", blank=True)  # the uploaded sheet, until validated
    processed_rows = models.PositiveIntegerField(_("已校验行数"), default=0)  # progress while validating
    problem = models.CharField(_("文件问题"), max_length=300, blank=True)  # why the whole file was refused
    status = models.CharField(_("状态"), max_length=20, choices=Status.choices, default=Status.VALIDATING)
    total_rows = models.PositiveIntegerField(_("总行数"), default=0)
    valid_rows = models.PositiveIntegerField(_("有效行数"), default=0)
    invalid_rows = models.PositiveIntegerField(_("错误行数"), default=0)
    opted_out_rows = models.PositiveIntegerField(_("退订号码"), default=0)
    duplicate_rows = models.PositiveIntegerField(_("重复号码"), default=0)  # same number as an earlier row
    allow_duplicates = models.BooleanField(_("允许重复号码"), default=False)  # off: one SMS per number
    parts = models.PositiveIntegerField(_("计费条数"), default=0)
    errors = models.JSONField(_("错误样例"), default=list, blank=True)  # first rows with problems, for the preview
    error_report = models.FileField(_("错误报告"), upload_to="notify/errors/", blank=True)
    scheduled_for = models.DateTimeField(_("计划发送时间"), null=True, blank=True)
    confirmed_at = models.DateTimeField(_("确认时间"), null=True, blank=True)
    quota_day = models.DateField(_("占用配额日期"), null=True, blank=True)  # set once the rows count against a quota
    started_at = models.DateTimeField(_("开始发送"), null=True, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("取消时间"), null=True, blank=True)
    test = models.BooleanField(_("测试任务"), default=False)  # sent with a test key: fake gateway only
    callback_url = models.URLField(_("回执回调地址"), blank=True)
    approval_case_id = models.BigIntegerField(null=True, blank=True)  # workflow.Case of the leader's approval

    class Meta:
        verbose_name = _("群发任务")
        verbose_name_plural = _("群发任务")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "scheduled_for"], name="notify_job_due")]

    def __str__(self) -> str:
        return f"{self.template.name} · {self.source_name}"


class Message(models.Model):
    """One SMS to one number (短信): the outbox row and its delivery record."""

    class Status(models.TextChoices):
        CREATED = "created", _("待发送")
        SENDING = "sending", _("发送中")
        SENT = "sent", _("已提交")
        DELIVERED = "delivered", _("已送达")
        TEMPORARY_FAILURE = "temporary_failure", _("暂时失败")
        PERMANENT_FAILURE = "permanent_failure", _("发送失败")
        CANCELLED = "cancelled", _("已取消")

    FINAL = (Status.DELIVERED, Status.PERMANENT_FAILURE, Status.CANCELLED)
    PENDING_STATES = (Status.CREATED, Status.SENDING, Status.TEMPORARY_FAILURE)

    class Priority(models.IntegerChoices):
        URGENT = 0, _("紧急")
        NORMAL = 1, _("普通")

    # No separate FK indexes on job / unit / template / created_by: the (job, row) key, the unit-day
    # index and the queues cover the lookups, and each index costs an insert per row of a big job.
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    row = models.PositiveIntegerField(_("行号"), null=True, blank=True)
    unit = models.ForeignKey(
        "org.Unit", verbose_name=_("单位"), on_delete=models.PROTECT, related_name="+", db_index=False
    )
    template = models.ForeignKey(
        Template, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    mobile = models.CharField(_("手机号"), max_length=11)
    body = models.CharField(_("内容"), max_length=600)
    # The placeholder values of a template send: template-only providers (Aliyun) need them.
    params = models.JSONField(_("占位符取值"), default=dict, blank=True)
    parts = models.PositiveSmallIntegerField(_("计费条数"), default=1)
    priority = models.PositiveSmallIntegerField(_("优先级"), choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(_("状态"), max_length=20, choices=Status.choices, default=Status.CREATED)
    test = models.BooleanField(_("测试"), default=False)
    module = models.CharField(_("来源模块"), max_length=32, blank=True)
    reference = models.CharField(_("业务编号"), max_length=64, blank=True)
    # the API caller's Idempotency-Key header: a retried request returns this message
    idempotency_key = models.CharField(max_length=64, blank=True, db_default="")
    callback_url = models.URLField(_("回执回调地址"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    not_before = models.DateTimeField(_("最早发送时间"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("发送次数"), default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=32, blank=True)  # the dispatcher run that holds the row
    gateway = models.CharField(_("通道"), max_length=32, blank=True)
    provider_id = models.CharField(_("通道消息号"), max_length=64, blank=True)
    error_code = models.CharField(_("错误码"), max_length=64, blank=True)
    error = models.CharField(_("错误说明"), max_length=200, blank=True)
    sent_at = models.DateTimeField(_("提交时间"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("送达时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("短信")
        verbose_name_plural = _("短信")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "row"], name="notify_message_job_row"),
            # One message per caller's key: a retried request returns the message it already made.
            models.UniqueConstraint(
                fields=["unit", "idempotency_key"], condition=~Q(idempotency_key=""), name="notify_message_idempotency"
            ),
        ]
        indexes = [
            # The dispatcher's queues: single messages still to send, by lane; a job's rows still to
            # send. Partial, so the millions of rows already sent are in neither.
            models.Index(
                fields=["priority", "not_before", "id"],
                condition=Q(status__in=["created", "temporary_failure"], job__isnull=True),
                name="notify_message_queue",
            ),
            models.Index(
                fields=["job", "id"],
                condition=Q(status__in=["created", "temporary_failure"]),
                name="notify_message_job_queue",
            ),
            models.Index(fields=["provider_id"], condition=~Q(provider_id=""), name="notify_message_provider"),
            models.Index(fields=["unit", "created_at"], name="notify_message_unit_day"),
            # The API's look-up by business number (GET /messages/?reference=…), always within a unit.
            models.Index(fields=["unit", "reference"], condition=~Q(reference=""), name="notify_message_reference"),
            models.Index(fields=["status", "claimed_at"], condition=Q(status="sending"), name="notify_message_stuck"),
        ]

    def __str__(self) -> str:
        return f"{self.mobile} {self.body[:20]}"


class UsageDay(models.Model):
    """Per unit and day: quota reserved and what happened (the dashboard reads only this)."""

    unit = models.ForeignKey("org.Unit", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    reserved = models.PositiveIntegerField(default=0)  # messages counted against the daily quota
    sent = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    parts = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("短信用量")
        verbose_name_plural = _("短信用量")
        constraints = [models.UniqueConstraint(fields=["unit", "day"], name="notify_usage_unit_day")]

    def __str__(self) -> str:
        return f"{self.unit_id} {self.day}"


class Callback(models.Model):
    """A receipt to post back to the calling system (an outbox row, retried with backoff)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="callbacks")
    url = models.URLField()
    payload = models.JSONField()
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(done_at__isnull=True), name="notify_cb_due")]

    def __str__(self) -> str:
        return self.url


class InboundSms(models.Model):
    """A reply a person sent to the platform's number (上行短信), as pushed by a gateway."""

    gateway = models.CharField(_("通道"), max_length=32)
    provider_id = models.CharField(_("通道消息号"), max_length=64, blank=True)
    mobile = models.CharField(_("手机号"), max_length=20)
    text = models.CharField(_("内容"), max_length=500)
    received_at = models.DateTimeField(_("接收时间"))
    opted_out = models.BooleanField(_("退订"), default=False)  # the reply was TD/退订 and the number was opted out
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("上行短信")
        verbose_name_plural = _("上行短信")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "provider_id"], condition=~Q(provider_id=""), name="notify_inbound_once"
            ),
        ]
        indexes = [models.Index(fields=["mobile", "received_at"], name="notify_inbound_mobile")]

    def __str__(self) -> str:
        return f"{self.mobile} {self.text[:20]}"
