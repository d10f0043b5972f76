"""Units, people, posts, roles, delegation and consumer systems (统一身份)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from yiwang.core.models import Searchable, TimeStamped
from yiwang.core.permissions import ALL
from yiwang.core.validators import validate_mobile, validate_resident_id, validate_visible_text


class Unit(Searchable, TimeStamped):
    """A node of the organisation tree: 区 → 部门/街道/乡镇 → 科室/社区/村."""

    class Kind(models.TextChoices):
        DISTRICT = "district", _("区委/区政府")
        BUREAU = "bureau", _("部门")
        STREET = "street", _("街道")
        TOWN = "town", _("乡镇")
        OFFICE = "office", _("科室")
        COMMUNITY = "community", _("社区")
        VILLAGE = "village", _("村")

    class Status(models.TextChoices):
        ACTIVE = "active", _("正常")
        MERGED = "merged", _("已合并")
        ABOLISHED = "abolished", _("已撤销")

    SEARCH_FIELDS = ("name", "short_name", "code")

    name = models.CharField(_("单位名称"), max_length=100, validators=[validate_visible_text])
    short_name = models.CharField(_("简称"), max_length=30, blank=True, validators=[validate_visible_text])
    code = models.CharField(_("单位代码"), max_length=32, unique=True, validators=[validate_visible_text])
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices)
    parent = models.ForeignKey(
        "self", verbose_name=_("上级单位"), null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    # Materialised path of ids ("/1/4/17/"): a subtree is one indexed prefix query.
    path = models.CharField(max_length=255, db_index=True, editable=False, default="")
    depth = models.PositiveSmallIntegerField(default=0, editable=False)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    merged_into = models.ForeignKey(
        "self", verbose_name=_("并入单位"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sort_order = models.PositiveIntegerField(_("排序"), default=100)
    phone = models.CharField(_("联系电话"), max_length=32, blank=True)
    address = models.CharField(_("地址"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("单位")
        verbose_name_plural = _("单位")
        ordering = ["path"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    def subtree_ids(self) -> list[int]:
        return list(Unit.objects.filter(path__startswith=self.path).values_list("id", flat=True))


class Role(models.Model):
    """What a post may do. Roles are data; the codes below are the ones code refers to."""

    PLATFORM_ADMIN = "platform_admin"
    UNIT_ADMIN = "unit_admin"
    STAFF = "staff"
    LEADER = "leader"
    EGOV_OFFICE = "egov_office"
    FINANCE = "finance"
    NDRC = "ndrc"
    DISCIPLINE = "discipline"
    HOTLINE_OPERATOR = "hotline_operator"
    CITIZEN = "citizen"
    COMPANY = "company"
    SYSTEM = "system"

    class Scope(models.TextChoices):
        ALL = "all", _("全区")
        SUBTREE = "subtree", _("本单位及下级")
        UNIT = "unit", _("本单位")
        NONE = "none", _("无")

    code = models.CharField(_("角色代码"), max_length=32, unique=True, validators=[validate_visible_text])
    name = models.CharField(_("角色名称"), max_length=50, validators=[validate_visible_text])
    scope = models.CharField(_("数据范围"), max_length=16, choices=Scope.choices, default=Scope.UNIT)
    description = models.CharField(_("说明"), max_length=200, blank=True)
    is_public = models.BooleanField(_("公众角色"), default=False)

    class Meta:
        verbose_name = _("角色")
        verbose_name_plural = _("角色")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class User(Searchable, AbstractUser):
    """A person (staff, citizen, company contact) or a consumer system's service account."""

    SEARCH_FIELDS = ("username", "full_name", "mobile")

    full_name = models.CharField(_("姓名"), max_length=50, blank=True, validators=[validate_visible_text])
    mobile = models.CharField(
        _("手机号码"), max_length=11, blank=True, null=True, unique=True, validators=[validate_mobile]
    )
    # 公民身份号码: maps a provincial single-sign-on identity to this account (org/oidc.py)
    id_number = models.CharField(
        _("公民身份号码"), max_length=18, blank=True, null=True, unique=True, validators=[validate_resident_id]
    )
    is_system = models.BooleanField(_("系统账号"), default=False)

    objects = UserManager()

    class Meta:
        verbose_name = _("用户")
        verbose_name_plural = _("用户")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.full_name or self.username

    def get_full_name(self) -> str:
        return self.full_name or self.username

    # --- posts and the acting post -------------------------------------------------
    @cached_property
    def own_posts(self) -> list[Post]:
        return list(self.posts.select_related("unit", "role").filter(active=True).order_by("-is_primary", "id"))

    @cached_property
    def delegated_posts(self) -> list[Post]:
        """Posts of people who have delegated to this user right now (代理)."""
        now = timezone.now()
        principals = Delegation.objects.filter(
            delegate=self, starts_at__lte=now, ends_at__gt=now, revoked_at__isnull=True
        ).values("principal")
        return list(
            Post.objects.select_related("unit", "role", "user")
            .filter(user__in=principals, active=True)
            .exclude(role__code=Role.PLATFORM_ADMIN)
        )

    def available_posts(self) -> list[Post]:
        return self.own_posts + self.delegated_posts

    @property
    def acting_post(self) -> Post | None:
        post = getattr(self, "_acting_post", None)
        if post is None and self.own_posts:
            post = self.own_posts[0]
        return post

    def set_acting_post(self, post_id: int | None) -> None:
        for post in self.available_posts() if post_id else ():
            if post.id == post_id:
                self._acting_post = post
                break
        self.forget_scope()

    @property
    def acting_unit_id(self) -> int | None:
        post = self.acting_post
        return post.unit_id if post else None

    @property
    def acting_unit(self) -> Unit | None:
        post = self.acting_post
        return post.unit if post else None

    def has_role(self, *codes: str) -> bool:
        """Whether the acting post holds one of these roles (a superuser holds all)."""
        if self.is_superuser:
            return True
        post = self.acting_post
        return post is not None and post.role.code in codes

    @property
    def is_platform_admin(self) -> bool:
        return self.is_superuser or any(p.role.code == Role.PLATFORM_ADMIN for p in self.own_posts)

    def forget_scope(self) -> None:
        """Drop the cached scope, e.g. after creating a unit this user may now see."""
        self.__dict__.pop("_visible_unit_ids", None)

    def visible_unit_ids(self):
        """Units whose records this user may see from the acting post (ALL for every unit)."""
        if "_visible_unit_ids" in self.__dict__:
            return self.__dict__["_visible_unit_ids"]
        post = self.acting_post
        if self.is_superuser:
            result = ALL
        elif post is None or post.role.scope == Role.Scope.NONE:
            result = frozenset()
        elif post.role.scope == Role.Scope.ALL:
            result = ALL
        elif post.role.scope == Role.Scope.SUBTREE:
            result = frozenset(post.unit.subtree_ids())
        else:
            result = frozenset({post.unit_id})
        self.__dict__["_visible_unit_ids"] = result
        return result


class Post(TimeStamped):
    """A person's seat in a unit: unit + role + title (岗位/职务)."""

    class LeaderRank(models.TextChoices):
        NONE = "", _("非领导")
        DEPUTY = "deputy", _("分管领导")
        PRINCIPAL = "principal", _("主要领导")

    user = models.ForeignKey(User, verbose_name=_("人员"), on_delete=models.CASCADE, related_name="posts")
    unit = models.ForeignKey(Unit, verbose_name=_("单位"), on_delete=models.PROTECT, related_name="posts")
    role = models.ForeignKey(Role, verbose_name=_("角色"), on_delete=models.PROTECT, related_name="posts")
    title = models.CharField(_("职务"), max_length=50, blank=True, validators=[validate_visible_text])
    leader_rank = models.CharField(_("领导类别"), max_length=16, choices=LeaderRank.choices, blank=True, default="")
    is_primary = models.BooleanField(_("主岗"), default=False)
    active = models.BooleanField(_("在岗"), default=True)

    class Meta:
        verbose_name = _("岗位")
        verbose_name_plural = _("岗位")
        constraints = [models.UniqueConstraint(fields=["user", "unit", "role"], name="post_user_unit_role")]

    def __str__(self) -> str:
        return f"{self.unit.name} · {self.title or self.role.name}"


class Delegation(TimeStamped):
    """Someone acts for another while away (委托/代理)."""

    principal = models.ForeignKey(
        User, verbose_name=_("委托人"), on_delete=models.CASCADE, related_name="delegations_given"
    )
    delegate = models.ForeignKey(
        User, verbose_name=_("代理人"), on_delete=models.CASCADE, related_name="delegations_received"
    )
    starts_at = models.DateTimeField(_("开始时间"))
    ends_at = models.DateTimeField(_("结束时间"))
    reason = models.CharField(_("事由"), max_length=200)
    revoked_at = models.DateTimeField(_("撤销时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("委托")
        verbose_name_plural = _("委托")
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="delegation_period"),
            models.CheckConstraint(condition=~Q(principal=models.F("delegate")), name="delegation_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.principal} → {self.delegate}"

    @property
    def is_current(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and self.starts_at <= now < self.ends_at


class ConsumerSystem(TimeStamped):
    """Another system that calls yiwang's API (业务系统), owned by a unit."""

    name = models.CharField(_("系统名称"), max_length=100, validators=[validate_visible_text])
    unit = models.ForeignKey(Unit, verbose_name=_("所属单位"), on_delete=models.PROTECT, related_name="systems")
    account = models.OneToOneField(User, on_delete=models.PROTECT, related_name="consumer_system")
    description = models.CharField(_("说明"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("接入系统")
        verbose_name_plural = _("接入系统")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class ApiKey(TimeStamped):
    """A key for a consumer system; only its SHA-256 is stored. Scopes like ``org:read``."""

    class Kind(models.TextChoices):
        LIVE = "live", _("正式")
        TEAM = "team", _("团队")
        TEST = "test", _("测试")

    system = models.ForeignKey(
        ConsumerSystem, verbose_name=_("接入系统"), on_delete=models.CASCADE, related_name="keys"
    )
    name = models.CharField(_("密钥名称"), max_length=100, validators=[validate_visible_text])
    kind = models.CharField(_("类型"), max_length=8, choices=Kind.choices, default=Kind.LIVE)
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(_("权限范围"), default=list)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField(_("过期时间"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("撤销时间"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("最近使用"), null=True, blank=True)

    class Meta:
        verbose_name = _("API 密钥")
        verbose_name_plural = _("API 密钥")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.system.name} · {self.name}"

    @property
    def unit_id(self) -> int:
        return self.system.unit_id

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class ImportJob(TimeStamped):
    """An Excel import of units or people run by a worker (批量导入任务): checked, then written at once."""

    class Kind(models.TextChoices):
        UNITS = "units", _("单位")
        PEOPLE = "people", _("人员")

    class Status(models.TextChoices):
        QUEUED = "queued", _("排队中")
        RUNNING = "running", _("导入中")
        DONE = "done", _("已导入")
        FAILED = "failed", _("未导入")

    FINISHED = (Status.DONE, Status.FAILED)

    kind = models.CharField(_("类型"), max_length=8, choices=Kind.choices)
    status = models.CharField(_("状态"), max_length=8, choices=Status.choices, default=Status.QUEUED)
    actor = models.ForeignKey(User, verbose_name=_("导入人"), on_delete=models.PROTECT, related_name="import_jobs")
    file_name = models.CharField(_("文件名"), max_length=200)
    # The upload (≤ 5 MB) until the worker has read it; emptied afterwards.
    content = models.BinaryField(editable=False, default=b"")
    created_count = models.PositiveIntegerField(_("导入条数"), default=0)
    errors = models.JSONField(_("问题"), default=list, blank=True)  # [[row, column, message], …]
    started_at = models.DateTimeField(_("开始时间"), null=True, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("导入任务")
        verbose_name_plural = _("导入任务")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.file_name}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
