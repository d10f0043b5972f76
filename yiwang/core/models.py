"""Shared models: base classes, the audit log, usage counters, calendar overrides.

core is the ground floor: it knows no other yiwang app, so references to units and users
are stored as plain ids (an audit entry must outlive whatever it talks about anyway).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class TimeStamped(models.Model):
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        abstract = True


class Searchable(models.Model):
    """A model whose ``SEARCH_FIELDS`` are segmented by jieba into ``search_text``.

    Query with ``yiwang.core.search.search(queryset, text)``; the migration of each
    subclass adds the full-text index with ``yiwang.core.search.index_operations``.
    """

    SEARCH_FIELDS: tuple[str, ...] = ()
    search_text = models.TextField(_("检索词"), blank=True, default="", editable=False)

    class Meta:
        abstract = True


class AuditEntry(models.Model):
    """One append-only record of a write or a data read (审计日志).

    Requests only INSERT (``entry_hash`` covers the row's own content). A background
    job links entries in ``seq`` order: ``chain_hash = sha256(prev chain_hash + entry_hash)``.
    So writers never wait on one lock, and any edit or deletion breaks the chain.
    """

    created_at = models.DateTimeField(_("时间"), db_index=True)
    actor_id = models.BigIntegerField(_("操作人"), null=True, blank=True)
    actor_name = models.CharField(_("操作人姓名"), max_length=150, blank=True)
    unit_id = models.BigIntegerField(_("单位"), null=True, blank=True, db_index=True)
    action = models.CharField(_("动作"), max_length=64, db_index=True)
    object_type = models.CharField(_("对象类型"), max_length=64, blank=True)
    object_id = models.CharField(_("对象编号"), max_length=64, blank=True)
    object_repr = models.CharField(_("对象"), max_length=255, blank=True)
    changes = models.JSONField(_("变更"), default=dict, blank=True)
    ip = models.GenericIPAddressField(_("IP 地址"), null=True, blank=True)
    entry_hash = models.CharField(max_length=64)
    seq = models.BigIntegerField(null=True, blank=True, unique=True)
    chain_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = _("审计日志")
        verbose_name_plural = _("审计日志")
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"


class AuditChainHead(models.Model):
    """The single row holding the end of the chain; only the chaining job locks it."""

    seq = models.BigIntegerField(default=0)
    chain_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"#{self.seq} {self.chain_hash[:12]}"


class UsageDaily(models.Model):
    """Requests per (day, unit, user, module): which systems are used and which sit idle."""

    day = models.DateField(_("日期"))
    # 0, not NULL, for "none", so the unique key also holds for anonymous use.
    unit_id = models.BigIntegerField(_("单位"), default=0)
    user_id = models.BigIntegerField(_("用户"), default=0)
    module = models.CharField(_("模块"), max_length=32)
    hits = models.PositiveIntegerField(_("次数"), default=0)

    class Meta:
        verbose_name = _("使用量")
        verbose_name_plural = _("使用量")
        constraints = [models.UniqueConstraint(fields=["day", "unit_id", "user_id", "module"], name="usage_daily_key")]
        indexes = [models.Index(fields=["module", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.module} {self.hits}"


class CalendarOverride(models.Model):
    """A day whose working status the State Council notice sets, for years the
    ``chinese-calendar`` package does not know yet (entered by a platform admin)."""

    day = models.DateField(_("日期"), unique=True)
    is_working_day = models.BooleanField(_("是否工作日"))
    name = models.CharField(_("说明"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("节假日调整")
        verbose_name_plural = _("节假日调整")
        ordering = ["day"]

    def __str__(self) -> str:
        return f"{self.day} {self.name}"


class Notice(models.Model):
    """An in-app notice to one person (站内提醒), e.g. a workflow reminder.

    SMS goes through notify; this is the channel every module has even without it.
    """

    recipient_id = models.BigIntegerField(_("接收人"), db_index=True)
    module = models.CharField(_("来源模块"), max_length=32, blank=True)
    title = models.CharField(_("标题"), max_length=200)
    body = models.TextField(_("内容"), blank=True)
    url = models.CharField(_("链接"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(_("已读时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("站内提醒")
        verbose_name_plural = _("站内提醒")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["recipient_id", "read_at"], name="core_notice_unread")]

    def __str__(self) -> str:
        return self.title


class Attachment(models.Model):
    """A stored file of any module (附件), accepted by ``core.attachments`` by its content.

    The module links it to its own record; owner and unit (ids, as in the audit) decide who
    may download it when the module sets no rule of its own."""

    module = models.CharField(_("所属模块"), max_length=32, db_index=True)
    name = models.CharField(_("文件名"), max_length=200)
    kind = models.CharField(_("类型"), max_length=8)
    content_type = models.CharField(_("内容类型"), max_length=100)
    size = models.PositiveBigIntegerField(_("大小"))
    sha256 = models.CharField(_("SHA-256"), max_length=64, db_index=True)
    file = models.FileField(_("文件"), max_length=255)
    owner_id = models.BigIntegerField(_("上传人"), null=True, blank=True)
    unit_id = models.BigIntegerField(_("所属单位"), null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(_("上传时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("附件")
        verbose_name_plural = _("附件")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name
