"""Information-resource sharing and exchange (信息资源共享交换).

- ``CatalogEntry`` / ``DataItem``: the resource catalogue after the 2017 national guideline
  (政务信息资源目录编制指南). One row per version; ``code`` is stable across versions.
- ``Resident``, ``LegalEntity``, ``Place``, ``EconomicIndicator``: the four base registries
  (基础库). A published entry may be *backed* by one of them; the gateway reads it.
- ``AccessRequest`` → ``Grant``: a consumer system's right to a resource, down to items.
  Grants name the resource by ``code``, so a new catalogue version does not drop them.
- ``Change``: an append-only change log per resource; subscriptions read it by cursor.
- ``Dispute`` (疑义校核), ``Subscription``, ``CallDay`` (operational counters per day).

Evidence of every gateway call is in the one hash-chained audit (``core.AuditEntry``),
not here.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from yiwang.core.models import Searchable, TimeStamped
from yiwang.core.validators import validate_credit_code, validate_resident_id, validate_visible_text


class SharingType(models.TextChoices):
    UNCONDITIONAL = "unconditional", _("无条件共享")
    CONDITIONAL = "conditional", _("有条件共享")
    NONE = "none", _("不予共享")


# 资源分类：4 levels, 大类 (1 digit: 1 基础 2 主题 3 部门) · 中类 (2) · 小类 (3) · 细目 (3).
CLASS_CODE_RE = r"^[1-3][0-9]{2}[0-9]{3}[0-9]{3}$"
# 资源代码：分类码 + "/" + 6-digit sequence, e.g. 101001001/000001.
RESOURCE_CODE_RE = r"^[1-3][0-9]{8}/[0-9]{6}$"
ITEM_CODE_RE = r"^[a-z][a-z0-9_]{0,39}$"


class CatalogEntry(Searchable, TimeStamped):
    """One version of a catalogue entry (目录条目). Editing a published entry starts a new version."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("草稿")
        REVIEW = "review", _("审核中")
        PUBLISHED = "published", _("已发布")
        REVOKED = "revoked", _("已撤销")
        SUPERSEDED = "superseded", _("已被新版本替代")

    class Format(models.TextChoices):
        DATABASE = "database", _("数据库表")
        SPREADSHEET = "spreadsheet", _("电子表格")
        DOCUMENT = "document", _("电子文档")
        IMAGE = "image", _("图形图像")
        STREAM = "stream", _("流媒体")
        OTHER = "other", _("其他")

    class ShareMethod(models.TextChoices):
        API = "api", _("接口调用")
        FILE = "file", _("文件下载")
        SUBSCRIPTION = "subscription", _("订阅推送")
        OFFLINE = "offline", _("线下交换")

    class OpenType(models.TextChoices):
        OPEN = "open", _("向社会开放")
        CONDITIONAL = "conditional", _("有条件开放")
        CLOSED = "closed", _("不予开放")

    class UpdateCycle(models.TextChoices):
        REALTIME = "realtime", _("实时")
        DAILY = "daily", _("每日")
        WEEKLY = "weekly", _("每周")
        MONTHLY = "monthly", _("每月")
        QUARTERLY = "quarterly", _("每季度")
        YEARLY = "yearly", _("每年")
        IRREGULAR = "irregular", _("不定期")

    class Registry(models.TextChoices):
        NONE = "", _("无（仅目录）")
        RESIDENT = "resident", _("人口基础库")
        LEGAL_ENTITY = "legal_entity", _("法人基础库")
        PLACE = "place", _("空间地理基础库")
        ECONOMY = "economy", _("宏观经济基础库")

    SEARCH_FIELDS = ("name", "code", "abstract", "keywords")
    OPEN_VERSIONS = (Status.DRAFT, Status.REVIEW)

    code = models.CharField(
        _("资源代码"),
        max_length=20,
        validators=[
            RegexValidator(RESOURCE_CODE_RE, _("资源代码格式为“9 位分类码/6 位顺序码”，如 101001001/000001。"))
        ],
    )
    version = models.PositiveIntegerField(_("版本"), default=1)
    class_code = models.CharField(
        _("资源分类"),
        max_length=9,
        validators=[
            RegexValidator(CLASS_CODE_RE, _("资源分类为 9 位数字：大类 1 位、中类 2 位、小类 3 位、细目 3 位。"))
        ],
    )
    name = models.CharField(_("资源名称"), max_length=100, validators=[validate_visible_text])
    provider = models.ForeignKey(
        "org.Unit", verbose_name=_("提供方"), on_delete=models.PROTECT, related_name="catalog_entries"
    )
    abstract = models.TextField(_("资源摘要"), max_length=2000)
    keywords = models.CharField(_("关键字"), max_length=200, blank=True)
    format = models.CharField(_("资源格式"), max_length=16, choices=Format.choices, default=Format.DATABASE)
    sharing_type = models.CharField(_("共享类型"), max_length=16, choices=SharingType.choices)
    sharing_condition = models.CharField(_("共享条件"), max_length=500, blank=True)
    legal_basis = models.CharField(_("共享依据"), max_length=500, blank=True)
    share_method = models.CharField(_("共享方式"), max_length=16, choices=ShareMethod.choices, default=ShareMethod.API)
    open_type = models.CharField(_("开放属性"), max_length=16, choices=OpenType.choices, default=OpenType.CLOSED)
    update_cycle = models.CharField(_("更新周期"), max_length=16, choices=UpdateCycle.choices)
    published_on = models.DateField(_("发布日期"), null=True, blank=True)
    related_codes = models.JSONField(_("关联资源"), default=list, blank=True)
    registry = models.CharField(_("数据来源"), max_length=16, choices=Registry.choices, blank=True, default="")
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.DRAFT)
    review_case = models.ForeignKey("workflow.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    revoked_reason = models.CharField(_("撤销原因"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("目录条目")
        verbose_name_plural = _("目录条目")
        ordering = ["code", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["code", "version"], name="exchange_entry_code_version"),
            # at most one published version and one version being edited (draft / in review) per resource
            models.UniqueConstraint(
                fields=["code"], condition=Q(status="published"), name="exchange_entry_one_published"
            ),
            models.UniqueConstraint(
                fields=["code"], condition=Q(status__in=["draft", "review"]), name="exchange_entry_one_open"
            ),
        ]
        indexes = [models.Index(fields=["status", "provider"])]

    def __str__(self) -> str:
        return f"{self.name}（{self.code} v{self.version}）"

    @property
    def unit_id(self) -> int:  # the one permission helper scopes by unit
        return self.provider_id

    def get_absolute_url(self) -> str:
        return reverse("exchange:entry_detail", args=[self.pk])


class DataItem(models.Model):
    """An information item (信息项) of an entry: a field with its own sharing type."""

    class DataType(models.TextChoices):
        STRING = "string", _("字符型")
        INTEGER = "integer", _("整数型")
        DECIMAL = "decimal", _("数值型")
        DATE = "date", _("日期型")
        DATETIME = "datetime", _("日期时间型")
        BOOLEAN = "boolean", _("布尔型")

    class Mask(models.TextChoices):
        NONE = "", _("不脱敏")
        NAME = "name", _("姓名（张*三）")
        ID_NUMBER = "id_number", _("证件号（保留前 6 后 4）")
        PHONE = "phone", _("电话（保留前 3 后 4）")
        ADDRESS = "address", _("地址（保留前 6 字）")
        DATE = "date", _("日期（仅保留年份）")
        FULL = "full", _("全部遮盖")

    entry = models.ForeignKey(CatalogEntry, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveSmallIntegerField(_("序号"), default=0)
    code = models.CharField(
        _("信息项代码"),
        max_length=40,
        validators=[RegexValidator(ITEM_CODE_RE, _("信息项代码为小写字母开头的英文、数字、下划线。"))],
    )
    name = models.CharField(_("信息项名称"), max_length=50, validators=[validate_visible_text])
    data_type = models.CharField(_("数据类型"), max_length=16, choices=DataType.choices, default=DataType.STRING)
    length = models.PositiveSmallIntegerField(_("长度"), null=True, blank=True)
    sharing_type = models.CharField(_("共享类型"), max_length=16, choices=SharingType.choices)
    personal = models.BooleanField(_("个人信息"), default=False, help_text=_("未单独授权明文时脱敏返回"))
    mask = models.CharField(_("脱敏方式"), max_length=16, choices=Mask.choices, blank=True, default="")
    synonyms = models.CharField(
        _("同义词"),
        max_length=300,
        blank=True,
        help_text=_("表单上的其他叫法，用逗号分隔，如：身份证号码，公民身份号码"),
    )

    class Meta:
        verbose_name = _("信息项")
        verbose_name_plural = _("信息项")
        ordering = ["entry", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["entry", "code"], name="exchange_item_code")]

    def __str__(self) -> str:
        return f"{self.name}（{self.code}）"


# --- base registries (基础库) -------------------------------------------------------------


class Resident(models.Model):
    """人口基础库: one resident, keyed by the 18-digit citizen ID number."""

    class Gender(models.TextChoices):
        MALE = "M", _("男")
        FEMALE = "F", _("女")

    id_number = models.CharField(_("公民身份号码"), max_length=18, unique=True, validators=[validate_resident_id])
    name = models.CharField(_("姓名"), max_length=50, validators=[validate_visible_text])
    gender = models.CharField(_("性别"), max_length=1, choices=Gender.choices)
    birth_date = models.DateField(_("出生日期"))
    ethnicity = models.CharField(_("民族"), max_length=20, default="汉族")
    phone = models.CharField(_("联系电话"), max_length=11, blank=True)
    address = models.CharField(_("户籍地址"), max_length=200)
    street = models.CharField(_("所属街道（镇）"), max_length=50, blank=True)
    household = models.CharField(_("户号"), max_length=20, blank=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("人口")
        verbose_name_plural = _("人口基础库")
        ordering = ["id"]
        # name prefix search in the registry browser (LIKE '王%' on PostgreSQL)
        indexes = [models.Index(fields=["name"], name="exchange_resident_name_prefix",
                                opclasses=["varchar_pattern_ops"])]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.name}（{self.id_number[:6]}…）"


class LegalEntity(models.Model):
    """法人基础库: a company, institution or organisation, keyed by its unified social credit code."""

    class Kind(models.TextChoices):
        COMPANY = "company", _("企业")
        INSTITUTION = "institution", _("事业单位")
        ORGANISATION = "organisation", _("社会组织")
        AGENCY = "agency", _("机关")
        INDIVIDUAL = "individual", _("个体工商户")

    class Status(models.TextChoices):
        ACTIVE = "active", _("存续")
        REVOKED = "revoked", _("吊销")
        CANCELLED = "cancelled", _("注销")

    credit_code = models.CharField(_("统一社会信用代码"), max_length=18, unique=True, validators=[validate_credit_code])
    name = models.CharField(_("名称"), max_length=100, validators=[validate_visible_text])
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices, default=Kind.COMPANY)
    representative = models.CharField(_("法定代表人"), max_length=50)
    registered_capital = models.DecimalField(
        _("注册资本（万元）"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    established_on = models.DateField(_("成立日期"))
    industry = models.CharField(_("行业"), max_length=50, blank=True)
    address = models.CharField(_("住所"), max_length=200)
    phone = models.CharField(_("联系电话"), max_length=20, blank=True)
    status = models.CharField(_("登记状态"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("法人")
        verbose_name_plural = _("法人基础库")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Place(models.Model):
    """空间地理基础库: a standard address with its building and coordinates (WGS-84)."""

    class Kind(models.TextChoices):
        BUILDING = "building", _("建筑物")
        DOORPLATE = "doorplate", _("门牌")
        POI = "poi", _("兴趣点")
        PARCEL = "parcel", _("地块")

    code = models.CharField(_("地址编码"), max_length=32, unique=True, validators=[validate_visible_text])
    address = models.CharField(_("标准地址"), max_length=200)
    building = models.CharField(_("建筑物名称"), max_length=100, blank=True, validators=[validate_visible_text])
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices, default=Kind.BUILDING)
    street = models.CharField(_("所属街道（镇）"), max_length=50, blank=True)
    longitude = models.DecimalField(_("经度"), max_digits=9, decimal_places=6)
    latitude = models.DecimalField(_("纬度"), max_digits=8, decimal_places=6)
    floors = models.PositiveSmallIntegerField(_("层数"), null=True, blank=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("地址")
        verbose_name_plural = _("空间地理基础库")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.address


class EconomicIndicator(models.Model):
    """宏观经济基础库: one value of an indicator series for a period (2025, 2025Q3, 2025-09)."""

    code = models.CharField(_("指标代码"), max_length=32, validators=[validate_visible_text])
    name = models.CharField(_("指标名称"), max_length=100, validators=[validate_visible_text])
    period = models.CharField(
        _("统计期"),
        max_length=7,
        validators=[
            RegexValidator(r"^[12][0-9]{3}(Q[1-4]|-(0[1-9]|1[0-2]))?$", _("统计期写作 2025、2025Q3 或 2025-09。"))
        ],
    )
    value = models.DecimalField(_("数值"), max_digits=18, decimal_places=4)
    measure = models.CharField(_("计量单位"), max_length=20, blank=True)
    region = models.CharField(_("地区"), max_length=50, default="北仑区")
    source = models.CharField(_("来源单位"), max_length=100, blank=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("经济指标")
        verbose_name_plural = _("宏观经济基础库")
        ordering = ["code", "period"]
        constraints = [models.UniqueConstraint(fields=["code", "period", "region"], name="exchange_indicator_period")]

    def __str__(self) -> str:
        return f"{self.name} {self.period}"


class Change(models.Model):
    """An append-only line per changed record of a registry; ``id`` is the subscription cursor."""

    class Op(models.TextChoices):
        CREATED = "created", _("新增")
        UPDATED = "updated", _("修改")
        DELETED = "deleted", _("删除")

    registry = models.CharField(_("基础库"), max_length=16, choices=CatalogEntry.Registry.choices)
    record_key = models.CharField(_("记录标识"), max_length=64)
    op = models.CharField(_("变更类型"), max_length=8, choices=Op.choices)
    items = models.JSONField(_("变更的信息项"), default=list)
    changed_at = models.DateTimeField(_("变更时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("变更记录")
        verbose_name_plural = _("变更记录")
        indexes = [
            models.Index(fields=["registry", "id"]),  # a resource's feed by cursor
            models.Index(fields=["registry", "record_key", "id"]),  # one record's history
        ]

    def __str__(self) -> str:
        return f"{self.registry}:{self.record_key} {self.op}"


class ImportRun(TimeStamped):
    """One upload into a base registry: validated whole, then loaded all-or-nothing."""

    class Status(models.TextChoices):
        PENDING = "pending", _("等待处理")
        RUNNING = "running", _("处理中")
        LOADED = "loaded", _("已导入")
        INVALID = "invalid", _("有错误，未导入")
        FAILED = "failed", _("处理失败")

    registry = models.CharField(_("基础库"), max_length=16, choices=CatalogEntry.Registry.choices)
    unit = models.ForeignKey("org.Unit", verbose_name=_("单位"), on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    file = models.FileField(_("文件"), upload_to="exchange/imports/%Y/%m/", blank=True)
    file_name = models.CharField(_("文件名"), max_length=200)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.PENDING)
    total_rows = models.PositiveIntegerField(_("总行数"), default=0)
    done_rows = models.PositiveIntegerField(_("已处理行数"), default=0)
    created_rows = models.PositiveIntegerField(_("新增"), default=0)
    updated_rows = models.PositiveIntegerField(_("更新"), default=0)
    error_rows = models.PositiveIntegerField(_("错误行数"), default=0)
    errors = models.JSONField(_("错误（前 200 条）"), default=list, blank=True)
    message = models.CharField(_("说明"), max_length=500, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("基础库导入")
        verbose_name_plural = _("基础库导入")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.get_registry_display()} · {self.file_name}"


# --- access requests and grants -----------------------------------------------------------


class AccessRequest(TimeStamped):
    """A consumer system asks for a resource (共享申请); conditional ones are answered by the provider."""

    class Status(models.TextChoices):
        PENDING = "pending", _("待答复")
        ESCALATED = "escalated", _("已逾期，提交电子政务办")
        GRANTED = "granted", _("已同意")
        REFUSED = "refused", _("不予同意")
        WITHDRAWN = "withdrawn", _("已撤回")

    OPEN = (Status.PENDING, Status.ESCALATED)

    system = models.ForeignKey(
        "org.ConsumerSystem", verbose_name=_("业务系统"), on_delete=models.PROTECT, related_name="access_requests"
    )
    unit = models.ForeignKey("org.Unit", verbose_name=_("申请单位"), on_delete=models.PROTECT, related_name="+")
    entry = models.ForeignKey(CatalogEntry, verbose_name=_("资源"), on_delete=models.PROTECT, related_name="requests")
    items = models.JSONField(_("申请的信息项"), default=list)
    unmasked = models.JSONField(_("申请明文的个人信息项"), default=list, blank=True)
    purpose = models.CharField(_("用途"), max_length=500)
    legal_basis = models.CharField(_("依据"), max_length=500, blank=True)
    service_item = models.CharField(_("关联事项"), max_length=200, blank=True)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    due_date = models.DateField(_("答复期限"), null=True, blank=True)
    escalated_at = models.DateTimeField(_("提交电子政务办时间"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(_("答复时间"), null=True, blank=True)
    reason = models.CharField(_("答复意见"), max_length=500, blank=True)
    case = models.ForeignKey("workflow.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = _("共享申请")
        verbose_name_plural = _("共享申请")
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "due_date"])]

    def __str__(self) -> str:
        return f"{self.system} → {self.entry.name}"

    def get_absolute_url(self) -> str:
        return reverse("exchange:request_detail", args=[self.pk])


class Grant(TimeStamped):
    """A consumer system's right to a resource (授权): which items, which of them in plain text."""

    system = models.ForeignKey(
        "org.ConsumerSystem", verbose_name=_("业务系统"), on_delete=models.PROTECT, related_name="grants"
    )
    unit = models.ForeignKey("org.Unit", verbose_name=_("使用单位"), on_delete=models.PROTECT, related_name="+")
    resource_code = models.CharField(_("资源代码"), max_length=20)
    provider = models.ForeignKey("org.Unit", verbose_name=_("提供方"), on_delete=models.PROTECT, related_name="+")
    items = models.JSONField(_("授权的信息项"), default=list)
    unmasked = models.JSONField(_("授权明文的个人信息项"), default=list, blank=True)
    purpose = models.CharField(_("用途"), max_length=500)
    per_minute = models.PositiveIntegerField(_("每分钟调用上限"), null=True, blank=True)
    request = models.ForeignKey(AccessRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="grants")
    expires_on = models.DateField(_("有效期至"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("撤销时间"), null=True, blank=True)
    revoked_reason = models.CharField(_("撤销原因"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("共享授权")
        verbose_name_plural = _("共享授权")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["system", "resource_code"], condition=Q(revoked_at__isnull=True), name="exchange_grant_one_live"
            )
        ]

    def __str__(self) -> str:
        return f"{self.system} · {self.resource_code}"


class Dispute(TimeStamped):
    """A consumer says a record is wrong (疑义校核); the provider corrects or answers by the deadline."""

    class Status(models.TextChoices):
        OPEN = "open", _("待核实")
        CORRECTED = "corrected", _("已更正")
        ANSWERED = "answered", _("已答复（数据无误）")

    entry = models.ForeignKey(CatalogEntry, verbose_name=_("资源"), on_delete=models.PROTECT, related_name="disputes")
    provider = models.ForeignKey("org.Unit", verbose_name=_("提供方"), on_delete=models.PROTECT, related_name="+")
    unit = models.ForeignKey("org.Unit", verbose_name=_("提出单位"), on_delete=models.PROTECT, related_name="+")
    system = models.ForeignKey(
        "org.ConsumerSystem",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("业务系统"),
    )
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    record_key = models.CharField(_("记录标识"), max_length=64)
    item = models.CharField(_("信息项"), max_length=40)
    reported_value = models.CharField(_("现有值"), max_length=200, blank=True)
    proposed_value = models.CharField(_("建议值"), max_length=200, blank=True)
    description = models.TextField(_("疑义说明"), max_length=2000)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.OPEN)
    due_date = models.DateField(_("核实期限"))
    answer = models.TextField(_("核实意见"), max_length=2000, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    answered_at = models.DateTimeField(_("答复时间"), null=True, blank=True)
    reminded_on = models.DateField(null=True, blank=True)

    class Meta:
        verbose_name = _("疑义校核")
        verbose_name_plural = _("疑义校核")
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "due_date"])]

    def __str__(self) -> str:
        return f"{self.entry.name} · {self.record_key} · {self.item}"

    def get_absolute_url(self) -> str:
        return reverse("exchange:dispute_detail", args=[self.pk])


class Subscription(TimeStamped):
    """A consumer follows a resource's changes: pulls by cursor, or gets pushed to a webhook."""

    system = models.ForeignKey(
        "org.ConsumerSystem", verbose_name=_("业务系统"), on_delete=models.CASCADE, related_name="subscriptions"
    )
    unit = models.ForeignKey("org.Unit", verbose_name=_("订阅单位"), on_delete=models.PROTECT, related_name="+")
    resource_code = models.CharField(_("资源代码"), max_length=20)
    webhook_url = models.URLField(_("推送地址"), max_length=300, blank=True, help_text=_("留空则只能按游标拉取"))
    secret = models.CharField(_("签名密钥"), max_length=64, blank=True)
    cursor = models.BigIntegerField(_("已推送到"), default=0)
    active = models.BooleanField(_("启用"), default=True)
    failures = models.PositiveIntegerField(_("连续失败次数"), default=0)
    next_attempt_at = models.DateTimeField(_("下次推送时间"), null=True, blank=True)
    last_error = models.CharField(_("最近错误"), max_length=300, blank=True)
    last_pushed_at = models.DateTimeField(_("最近推送"), null=True, blank=True)

    class Meta:
        verbose_name = _("订阅")
        verbose_name_plural = _("订阅")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["system", "resource_code"], name="exchange_subscription_one"),
        ]

    def __str__(self) -> str:
        return f"{self.system} · {self.resource_code}"


class CallDay(models.Model):
    """Operational counters of gateway calls per (day, system, resource) (运行监测).

    Requests add to an in-process buffer that is written in one upsert every few seconds,
    like ``core.metering``; the per-call evidence is the audit entry.
    """

    day = models.DateField(_("日期"))
    system_id = models.BigIntegerField(_("业务系统"))
    unit_id = models.BigIntegerField(_("使用单位"))
    provider_id = models.BigIntegerField(_("提供方"))
    resource_code = models.CharField(_("资源代码"), max_length=20)
    calls = models.PositiveBigIntegerField(_("调用次数"), default=0)
    denied = models.PositiveBigIntegerField(_("拒绝次数"), default=0)
    errors = models.PositiveBigIntegerField(_("失败次数"), default=0)
    records = models.PositiveBigIntegerField(_("返回记录数"), default=0)
    bytes = models.PositiveBigIntegerField(_("返回字节数"), default=0)
    total_ms = models.FloatField(_("累计耗时（毫秒）"), default=0)
    max_ms = models.FloatField(_("最长耗时（毫秒）"), default=0)

    class Meta:
        verbose_name = _("调用统计")
        verbose_name_plural = _("调用统计")
        constraints = [
            models.UniqueConstraint(fields=["day", "system_id", "resource_code"], name="exchange_callday_key"),
        ]
        indexes = [models.Index(fields=["resource_code", "day"]), models.Index(fields=["provider_id", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.resource_code} {self.calls}"
