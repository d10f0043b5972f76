"""Writes of org: every change to units, people, posts, delegations and API keys.

Each function is atomic and writes one audit entry. Other apps call these, never
``.save()`` on org models.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat, Substr
from django.utils import timezone
from django.utils.translation import gettext as _

from yiwang.core.audit import audit_record, diff
from yiwang.core.permissions import can_see_unit
from yiwang.core.validators import normalise_mobile, validate_visible_text

from .models import ApiKey, ConsumerSystem, Delegation, Post, Role, Unit, User

# Reference roles: code, name, data scope, public-side role, description.
ROLE_DEFINITIONS: list[tuple[str, str, str, bool, str]] = [
    (Role.PLATFORM_ADMIN, "平台管理员", "all", False, "管理全平台的单位、人员、配置"),
    (Role.UNIT_ADMIN, "单位管理员", "subtree", False, "管理本单位及下级单位的人员"),
    (Role.STAFF, "工作人员", "unit", False, "本单位业务办理"),
    (Role.LEADER, "领导", "subtree", False, "查看本单位及下级单位，审批签发"),
    (Role.EGOV_OFFICE, "电子政务办", "all", False, "统筹全区电子政务建设与项目审核"),
    (Role.FINANCE, "财政", "all", False, "项目资金审核"),
    (Role.NDRC, "发改", "all", False, "项目立项审核"),
    (Role.DISCIPLINE, "纪委监察", "all", False, "电子监察与问责"),
    (Role.HOTLINE_OPERATOR, "热线话务员", "unit", False, "81890 诉求受理与派单"),
    (Role.CITIZEN, "公众", "none", True, "网上办事的个人"),
    (Role.COMPANY, "企业", "none", True, "网上办事的企业"),
    (Role.SYSTEM, "接入系统", "unit", False, "通过 API 调用平台的业务系统"),
]

API_SCOPES = [("org:read", _("组织机构：读取")), ("org:write", _("组织机构：写入"))]


def ensure_roles() -> None:
    """Create or update the reference roles (idempotent)."""
    for code, name, scope, public, description in ROLE_DEFINITIONS:
        Role.objects.update_or_create(
            code=code, defaults={"name": name, "scope": scope, "is_public": public, "description": description}
        )


# --- who may manage what ------------------------------------------------------------------


def can_manage_unit(user: User, unit: Unit | None) -> bool:
    """Platform admins manage everything; unit admins manage their unit's subtree."""
    if user.has_role(Role.PLATFORM_ADMIN):
        return True
    return unit is not None and user.has_role(Role.UNIT_ADMIN) and can_see_unit(user, unit.id)


def ensure_can_manage(user: User, unit: Unit | None) -> None:
    if not can_manage_unit(user, unit):
        raise PermissionDenied(_("无权管理该单位的组织机构信息。"))


def can_manage_person(user: User, person: User) -> bool:
    """Whoever manages the unit of one of a person's posts manages the person; platform admins everyone."""
    if user.has_role(Role.PLATFORM_ADMIN):
        return True
    return any(can_manage_unit(user, p.unit) for p in person.own_posts)


def ensure_can_manage_person(user: User, person: User, message: str | None = None) -> None:
    """The one check behind a person's edit page, its POST and the service (GET and POST alike)."""
    if not can_manage_person(user, person):
        raise PermissionDenied(message or _("无权修改该人员信息。"))


def grantable_roles(user: User | None):
    """Roles ``user`` may give: a unit admin may not hand out district-wide roles."""
    roles = Role.objects.filter(is_public=False).exclude(code=Role.SYSTEM)
    if user is None or user.has_role(Role.PLATFORM_ADMIN):
        return roles
    return roles.exclude(scope=Role.Scope.ALL)


def ensure_can_grant(user: User | None, role: Role) -> None:
    if user is not None and not grantable_roles(user).filter(pk=role.pk).exists():
        raise PermissionDenied(_("无权授予“%(role)s”角色。") % {"role": role.name})


# --- units -------------------------------------------------------------------------------

UNIT_FIELDS = ("name", "short_name", "code", "kind", "parent_id", "status", "sort_order", "phone", "address")


def _validate_names(**values: str) -> None:
    """For rows saved without ``full_clean``: the same invisible-character check as the model fields."""
    errors = {}
    for name, value in values.items():
        try:
            validate_visible_text(value)
        except ValidationError as error:
            errors[name] = error.messages
    if errors:
        raise ValidationError(errors)


def _snapshot(obj, fields) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in fields}


@transaction.atomic
def unit_create(
    *,
    actor: User | None,
    name: str,
    code: str,
    kind: str,
    parent: Unit | None = None,
    short_name: str = "",
    sort_order: int = 100,
    phone: str = "",
    address: str = "",
) -> Unit:
    """Create a unit under ``parent`` (None only for the top of the tree)."""
    if actor is not None:
        ensure_can_manage(actor, parent)
    unit = Unit(
        name=name.strip(),
        code=code.strip(),
        kind=kind,
        parent=parent,
        short_name=short_name,
        sort_order=sort_order,
        phone=phone,
        address=address,
    )
    unit.full_clean(exclude=["path"])
    unit.save()
    unit.path = f"{parent.path if parent else '/'}{unit.pk}/"
    unit.depth = parent.depth + 1 if parent else 0
    unit.save(update_fields=["path", "depth"])
    audit_record(
        actor=actor, action="org.unit.create", obj=unit, unit_id=unit.pk, changes=diff({}, _snapshot(unit, UNIT_FIELDS))
    )
    if actor is not None:
        actor.forget_scope()  # the new unit is in the actor's subtree from now on
    return unit


@transaction.atomic
def unit_update(*, actor: User | None, unit: Unit, **fields: Any) -> Unit:
    """Change a unit's fields; moving it (new parent) moves its whole subtree."""
    if actor is not None:
        ensure_can_manage(actor, unit)
    unit = Unit.objects.select_for_update().get(pk=unit.pk)
    before = _snapshot(unit, UNIT_FIELDS)
    new_parent = fields.pop("parent", unit.parent)
    for name, value in fields.items():
        setattr(unit, name, value)
    moved = (new_parent.pk if new_parent else None) != unit.parent_id
    if moved:
        if new_parent is not None and new_parent.path.startswith(unit.path):
            raise ValidationError({"parent": _("不能把单位移到它自己或它的下级单位之下。")})
        if actor is not None:
            ensure_can_manage(actor, new_parent)
        unit.parent = new_parent
    unit.full_clean(exclude=["path"])
    unit.save()
    if moved:
        old_path = unit.path
        new_path = f"{new_parent.path if new_parent else '/'}{unit.pk}/"
        depth_change = (new_parent.depth + 1 if new_parent else 0) - unit.depth
        Unit.objects.filter(path__startswith=old_path).update(
            path=Concat(Value(new_path), Substr("path", len(old_path) + 1)),
            depth=F("depth") + depth_change,
        )
        unit.refresh_from_db()
    changes = diff(before, _snapshot(unit, UNIT_FIELDS))
    if changes:
        audit_record(actor=actor, action="org.unit.update", obj=unit, unit_id=unit.pk, changes=changes)
    return unit


@transaction.atomic
def unit_merge(*, actor: User | None, unit: Unit, into: Unit) -> Unit:
    """Merge ``unit`` into ``into``: its children and active posts move there (机构合并)."""
    if actor is not None:
        ensure_can_manage(actor, unit)
        ensure_can_manage(actor, into)
    if not unit.is_active:
        raise ValidationError(_("该单位已合并或撤销。"))
    if into.pk == unit.pk or into.path.startswith(unit.path):
        raise ValidationError({"merged_into": _("不能并入自身或其下级单位。")})
    if not into.is_active:
        raise ValidationError({"merged_into": _("目标单位已停用。")})
    for child in list(unit.children.all()):
        unit_update(actor=None, unit=child, parent=into)
    moved_posts = 0
    for post in Post.objects.filter(unit=unit, active=True).select_related("user", "role"):
        if not Post.objects.filter(user=post.user, unit=into, role=post.role).exists():
            Post.objects.create(
                user=post.user,
                unit=into,
                role=post.role,
                title=post.title,
                leader_rank=post.leader_rank,
                is_primary=post.is_primary,
            )
            moved_posts += 1
        post.active = False
        post.save(update_fields=["active", "updated_at"])
    unit.status = Unit.Status.MERGED
    unit.merged_into = into
    unit.save(update_fields=["status", "merged_into", "updated_at"])
    audit_record(
        actor=actor,
        action="org.unit.merge",
        obj=unit,
        unit_id=unit.pk,
        changes={"merged_into": [None, into.pk], "posts_moved": [0, moved_posts]},
    )
    return unit


@transaction.atomic
def unit_abolish(*, actor: User | None, unit: Unit, reason: str) -> Unit:
    """Abolish an empty unit (机构撤销): no active sub-units and no one holding a post in it."""
    if actor is not None:
        ensure_can_manage(actor, unit)
    if not unit.is_active:
        raise ValidationError(_("该单位已合并或撤销。"))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("请填写撤销依据（如机构改革文件文号）。")})
    _validate_names(reason=reason)
    if unit.children.filter(status=Unit.Status.ACTIVE).exists():
        raise ValidationError(_("该单位还有下级单位，请先将其合并或撤销。"))
    if Post.objects.filter(unit=unit, active=True).exists():
        raise ValidationError(_("该单位还有在岗人员，请先调出人员，或改为合并到其他单位。"))
    unit.status = Unit.Status.ABOLISHED
    unit.save(update_fields=["status", "updated_at"])
    audit_record(
        actor=actor,
        action="org.unit.abolish",
        obj=unit,
        unit_id=unit.pk,
        changes={"status": [Unit.Status.ACTIVE, Unit.Status.ABOLISHED], "reason": [None, reason]},
    )
    return unit


# --- people and posts --------------------------------------------------------------------

PERSON_FIELDS = ("username", "full_name", "mobile", "email", "is_active")


@dataclass
class PostSpec:
    unit: Unit
    role: Role
    title: str = ""
    leader_rank: str = ""
    is_primary: bool = False


@transaction.atomic
def person_create(
    *,
    actor: User | None,
    username: str,
    full_name: str,
    mobile: str | None = None,
    email: str = "",
    password: str | None = None,
    posts: list[PostSpec] = (),
) -> User:
    """Create a person with their posts; without a password they cannot log in until one is set."""
    for spec in posts:
        if actor is not None:
            ensure_can_manage(actor, spec.unit)
            ensure_can_grant(actor, spec.role)
    user = User(
        username=username.strip(),
        full_name=full_name.strip(),
        mobile=normalise_mobile(mobile) if mobile else None,
        email=email,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    for index, spec in enumerate(posts):
        _post_create(user=user, spec=spec, primary=spec.is_primary or index == 0)
    audit_record(
        actor=actor,
        action="org.person.create",
        obj=user,
        unit_id=posts[0].unit.pk if posts else None,
        changes=diff({}, _snapshot(user, PERSON_FIELDS)) | {"posts": [None, [str(p.unit) for p in posts]]},
    )
    return user


def _post_create(*, user: User, spec: PostSpec, primary: bool) -> Post:
    if primary:
        Post.objects.filter(user=user, is_primary=True).update(is_primary=False)
    post = Post(
        user=user, unit=spec.unit, role=spec.role, title=spec.title, leader_rank=spec.leader_rank, is_primary=primary
    )
    post.full_clean()
    post.save()
    user.__dict__.pop("own_posts", None)
    return post


@transaction.atomic
def person_update(*, actor: User | None, person: User, **fields: Any) -> User:
    """Change a person's name, mobile, e-mail or active flag."""
    if actor is not None:
        ensure_can_manage_person(actor, person)
    before = _snapshot(person, PERSON_FIELDS)
    if "mobile" in fields:
        fields["mobile"] = normalise_mobile(fields["mobile"]) if fields["mobile"] else None
    for name, value in fields.items():
        setattr(person, name, value)
    person.full_clean(exclude=["password"])
    person.save()
    changes = diff(before, _snapshot(person, PERSON_FIELDS))
    if changes:
        audit_record(
            actor=actor,
            action="org.person.update",
            obj=person,
            changes=changes,
            unit_id=person.own_posts[0].unit_id if person.own_posts else None,
        )
    return person


@transaction.atomic
def post_add(*, actor: User | None, person: User, spec: PostSpec) -> Post:
    """Give a person one more post (兼职)."""
    if actor is not None:
        ensure_can_manage(actor, spec.unit)
        ensure_can_grant(actor, spec.role)
    if Post.objects.filter(user=person, unit=spec.unit, role=spec.role).exists():
        raise ValidationError(_("该人员在此单位已有相同角色的岗位。"))
    post = _post_create(user=person, spec=spec, primary=spec.is_primary or not person.own_posts)
    audit_record(
        actor=actor,
        action="org.post.add",
        obj=post,
        unit_id=spec.unit.pk,
        changes={"post": [None, str(post)], "person": [None, person.username]},
    )
    return post


@transaction.atomic
def post_remove(*, actor: User | None, post: Post) -> None:
    """End a post (离岗); the person keeps any other posts."""
    if actor is not None:
        ensure_can_manage(actor, post.unit)
    post.active = False
    post.is_primary = False
    post.save(update_fields=["active", "is_primary", "updated_at"])
    audit_record(
        actor=actor,
        action="org.post.remove",
        obj=post,
        unit_id=post.unit_id,
        changes={"active": [True, False], "person": [post.user.username, post.user.username]},
    )


@transaction.atomic
def person_set_password(*, actor: User, person: User, password: str) -> User:
    """A manager sets someone's password (new staff, imported staff, forgotten password)."""
    ensure_can_manage_person(actor, person, _("无权重置该人员的密码。"))
    if person.is_platform_admin and not actor.has_role(Role.PLATFORM_ADMIN):
        raise PermissionDenied(_("只有平台管理员可以重置平台管理员的密码。"))
    person.set_password(password)
    person.save(update_fields=["password"])
    audit_record(
        actor=actor,
        action="org.person.password_reset",
        obj=person,
        unit_id=person.own_posts[0].unit_id if person.own_posts else None,
    )
    return person


def password_changed(*, user: User) -> None:
    """Record a password change made through Django's own form."""
    audit_record(actor=user, action="org.person.password_change", obj=user)


# --- delegation --------------------------------------------------------------------------


@transaction.atomic
def delegation_create(
    *, actor: User, principal: User, delegate: User, starts_at: dt.datetime, ends_at: dt.datetime, reason: str
) -> Delegation:
    """Let ``delegate`` act for ``principal`` between the two times (self, or a manager)."""
    if actor.pk != principal.pk and not any(can_manage_unit(actor, p.unit) for p in principal.own_posts):
        raise PermissionDenied(_("只能为本人或所管理单位的人员设置委托。"))
    if principal.pk == delegate.pk:
        raise ValidationError({"delegate": _("不能委托给本人。")})
    if ends_at <= starts_at:
        raise ValidationError({"ends_at": _("结束时间须晚于开始时间。")})
    if not reason.strip():
        raise ValidationError({"reason": _("请填写委托事由。")})
    delegation = Delegation.objects.create(
        principal=principal, delegate=delegate, starts_at=starts_at, ends_at=ends_at, reason=reason.strip()
    )
    audit_record(
        actor=actor,
        action="org.delegation.create",
        obj=delegation,
        unit_id=principal.own_posts[0].unit_id if principal.own_posts else None,
        changes={"delegate": [None, delegate.username], "until": [None, ends_at]},
    )
    return delegation


@transaction.atomic
def delegation_revoke(*, actor: User, delegation: Delegation) -> Delegation:
    if actor.pk != delegation.principal_id and not actor.has_role(Role.PLATFORM_ADMIN):
        raise PermissionDenied(_("只有委托人本人可以撤销委托。"))
    delegation.revoked_at = timezone.now()
    delegation.save(update_fields=["revoked_at", "updated_at"])
    audit_record(actor=actor, action="org.delegation.revoke", obj=delegation)
    return delegation


# --- consumer systems and API keys -------------------------------------------------------


@transaction.atomic
def system_create(*, actor: User | None, name: str, unit: Unit, description: str = "") -> ConsumerSystem:
    """Register a business system that will call the API; it gets a service account."""
    if actor is not None:
        ensure_can_manage(actor, unit)
    if not name.strip():
        raise ValidationError({"name": _("请填写系统名称。")})
    _validate_names(name=name)
    account = User(username=f"sys-{secrets.token_hex(6)}", full_name=name.strip(), is_system=True)
    account.set_unusable_password()
    account.save()
    Post.objects.create(
        user=account, unit=unit, role=Role.objects.get(code=Role.SYSTEM), title=_("接入系统"), is_primary=True
    )
    system = ConsumerSystem.objects.create(name=name.strip(), unit=unit, account=account, description=description)
    audit_record(actor=actor, action="org.system.create", obj=system, changes={"name": [None, system.name]})
    return system


def _hash_key(secret: str) -> str:
    # Keys are 32 random bytes, so a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@transaction.atomic
def api_key_issue(
    *,
    actor: User | None,
    system: ConsumerSystem,
    name: str,
    scopes: list[str],
    kind: str = ApiKey.Kind.LIVE,
    expires_at: dt.datetime | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key; the raw key is returned once and never stored."""
    if actor is not None:
        ensure_can_manage(actor, system.unit)
    valid = {code for code, _label in API_SCOPES} | {"*"}
    unknown = [s for s in scopes if s not in valid and not s.endswith(":read") and not s.endswith(":write")]
    if not scopes or unknown:
        raise ValidationError({"scopes": _("请选择有效的权限范围。")})
    _validate_names(name=name)
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    raw = f"yw_{prefix}_{secret}"
    key = ApiKey.objects.create(
        system=system,
        name=name.strip() or _("未命名"),
        kind=kind,
        prefix=prefix,
        key_hash=_hash_key(raw),
        scopes=sorted(set(scopes)),
        created_by=actor,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        action="org.apikey.issue",
        obj=key,
        unit_id=system.unit_id,
        changes={"scopes": [None, key.scopes], "prefix": [None, prefix]},
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, actor: User | None, key: ApiKey) -> ApiKey:
    if actor is not None:
        ensure_can_manage(actor, key.system.unit)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at", "updated_at"])
        audit_record(actor=actor, action="org.apikey.revoke", obj=key, unit_id=key.system.unit_id)
    return key


def api_key_check(*, raw: str) -> ApiKey | None:
    """The usable key matching ``raw``, or None. Marks use at most once a minute."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != "yw":
        return None
    key = ApiKey.objects.select_related("system__account").filter(prefix=parts[1]).first()
    if key is None or not hmac.compare_digest(key.key_hash, _hash_key(raw)) or not key.is_usable:
        return None
    if not key.system.account.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > dt.timedelta(minutes=1):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key
