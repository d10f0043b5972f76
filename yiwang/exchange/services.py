"""Catalogue, access requests and grants: the writes of the exchange module.

The module's other writes live next to their subject: ``imports`` (base registries),
``registries.record_save``, ``disputes``, ``subscriptions``; reads are in ``selectors``,
``matching``, ``statistics`` and ``evidence``; the API gateway's hot path is ``gateway``.

Lifecycle of a catalogue entry (on the workflow engine): draft → review (e-gov office) →
published → revoked; editing a published entry makes the next version a draft, and
publishing it supersedes the old one. Grants name resources by code, so they survive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from yiwang.core.audit import audit_record, diff
from yiwang.core.calendar import add_working_days
from yiwang.core.notices import notice_send
from yiwang.org.models import ConsumerSystem, Role, Unit, User
from yiwang.org.selectors import leaders_of
from yiwang.org.services import can_manage_unit

from . import gateway
from .models import CLASS_CODE_RE, ITEM_CODE_RE, RESOURCE_CODE_RE, AccessRequest, CatalogEntry, DataItem, Grant
from .models import SharingType as ST
from .registries import REGISTRIES

REVIEW_PROCESS = "exchange.catalog_review"
ACCESS_PROCESS = "exchange.access"
# The sharing types (most open first); items of a closed (不予共享) entry must be closed too.
_OPENNESS = {ST.UNCONDITIONAL: 0, ST.CONDITIONAL: 1, ST.NONE: 2}
ENTRY_FIELDS = (
    "class_code", "name", "abstract", "keywords", "format", "sharing_type", "sharing_condition", "legal_basis",
    "share_method", "open_type", "update_cycle", "related_codes", "registry",
)  # fmt: skip
ITEM_FIELDS = ("code", "name", "data_type", "length", "sharing_type", "personal", "mask", "synonyms")


# --- who may do what ------------------------------------------------------------------------


def is_egov(user: User) -> bool:
    """The e-gov office (电子政务办) and platform admins oversee the whole exchange."""
    return user.is_platform_admin or user.has_role(Role.EGOV_OFFICE)


def can_manage_entry(user: User, entry: CatalogEntry | None = None, *, provider: Unit | None = None) -> bool:
    """Keeps a provider's catalogue: its own staff, its unit admins (up the tree), the e-gov office."""
    provider_id = entry.provider_id if entry is not None else (provider.pk if provider else None)
    if provider_id is None or getattr(user, "is_system", False):
        return False
    if is_egov(user) or user.acting_unit_id == provider_id:
        return True
    return can_manage_unit(user, entry.provider if entry is not None else provider)


def can_use_system(user: User, system: ConsumerSystem) -> bool:
    """A person of the system's unit (or its admins), or the system's own service account."""
    if user.pk == system.account_id:
        return True
    if getattr(user, "is_system", False):
        return False
    return user.acting_unit_id == system.unit_id or can_manage_unit(user, system.unit) or is_egov(user)


def egov_people() -> list[User]:
    """Holders of the e-gov office role in the configured unit (电子政务办)."""
    return list(
        User.objects.filter(
            is_active=True,
            posts__active=True,
            posts__role__code=Role.EGOV_OFFICE,
            posts__unit__code=settings.YIWANG_EGOV_UNIT,
        ).distinct()
    )


def _notify_people(people: Iterable[User], *, title: str, url: str, body: str = "") -> None:
    for person in {p.pk: p for p in people}.values():
        notice_send(recipient_id=person.pk, title=title, body=body, url=url, module="exchange")


def _provider_people(unit: Unit) -> list[User]:
    people = list(leaders_of(unit=unit))
    return people or list(User.objects.filter(is_active=True, posts__unit=unit, posts__active=True).distinct()[:5])


# --- catalogue --------------------------------------------------------------------------------


def entry_published(code: str) -> CatalogEntry | None:
    """The published version of a resource, or None."""
    return CatalogEntry.objects.filter(code=code, status=CatalogEntry.Status.PUBLISHED).first()


def next_code(class_code: str) -> str:
    """The next free resource code in a class: ``<class code>/<6-digit sequence>``."""
    last = CatalogEntry.objects.filter(code__startswith=f"{class_code}/").aggregate(m=Max("code"))["m"]
    seq = int(last.split("/")[1]) + 1 if last else 1
    return f"{class_code}/{seq:06d}"


def _clean_items(items: list[dict], *, entry_type: str, registry: str) -> tuple[list[dict], dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    cleaned: list[dict] = []
    seen: set[str] = set()
    columns = set(REGISTRIES[registry].columns) if registry else None
    if not items:
        errors.setdefault("items", []).append(_("请至少填写一个信息项。"))
    for number, raw in enumerate(items, start=1):
        item = {f: raw.get(f) for f in ITEM_FIELDS}
        where = _("第 %(n)d 个信息项") % {"n": number}
        code = (item["code"] or "").strip()
        name = (item["name"] or "").strip()
        problems = []
        if not re.match(ITEM_CODE_RE, code):
            problems.append(_("代码须为小写字母开头的英文、数字、下划线（最长 40 位）"))
        elif code in seen:
            problems.append(_("代码 %(code)s 重复") % {"code": code})
        elif columns is not None and code not in columns:
            problems.append(_("基础库中没有字段 %(code)s") % {"code": code})
        if not name or len(name) > 50:
            problems.append(_("请填写名称（最长 50 字）"))
        kind = item["sharing_type"] or entry_type
        if kind not in _OPENNESS:
            problems.append(_("共享类型无效"))
        elif entry_type == ST.NONE and kind != ST.NONE:
            # 有条件共享 covers "partly shareable with every department" (2017 guideline), so a
            # conditional resource may hold unconditional items; a closed one shares nothing.
            problems.append(_("共享类型不能比资源本身更开放（不予共享的资源，信息项均不予共享）"))
        if item["mask"] and item["mask"] not in DataItem.Mask.values:
            problems.append(_("脱敏方式无效"))
        if item["data_type"] and item["data_type"] not in DataItem.DataType.values:
            problems.append(_("数据类型无效"))
        if problems:
            errors.setdefault("items", []).append(f"{where}：{'；'.join(problems)}。")
            continue
        seen.add(code)
        personal = bool(item["personal"])
        cleaned.append(
            {
                "code": code,
                "name": name,
                "data_type": item["data_type"] or DataItem.DataType.STRING,
                "length": item["length"] or None,
                "sharing_type": kind,
                "personal": personal,
                # a personal item without a chosen mask is hidden whole unless granted in plain text
                "mask": item["mask"] or (DataItem.Mask.FULL if personal else ""),
                "synonyms": (item["synonyms"] or "").strip()[:300],
            }
        )
    return cleaned, errors


def _clean_entry(data: dict, *, code: str | None) -> tuple[dict, dict[str, list[str]]]:
    values = {f: data.get(f) for f in ENTRY_FIELDS}
    for f in ENTRY_FIELDS:
        if isinstance(values[f], str):
            values[f] = values[f].strip()
    values["registry"] = values["registry"] or ""
    values["related_codes"] = [c.strip() for c in values["related_codes"] or [] if c and c.strip()]
    errors: dict[str, list[str]] = {}

    def err(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not values["class_code"] or not re.match(CLASS_CODE_RE, values["class_code"]):
        err(
            "class_code",
            _("资源分类为 9 位数字：大类 1 位（1 基础、2 主题、3 部门）、中类 2 位、小类 3 位、细目 3 位。"),
        )
    elif code and not code.startswith(values["class_code"] + "/"):
        err("class_code", _("资源代码 %(code)s 与分类不一致；改分类请新建资源。") % {"code": code})
    if not values["name"]:
        err("name", _("请填写资源名称。"))
    if not values["abstract"]:
        err("abstract", _("请填写资源摘要。"))
    for field, choices in (
        ("format", CatalogEntry.Format),
        ("sharing_type", ST),
        ("share_method", CatalogEntry.ShareMethod),
        ("open_type", CatalogEntry.OpenType),
        ("update_cycle", CatalogEntry.UpdateCycle),
        ("registry", CatalogEntry.Registry),
    ):
        if values[field] not in choices.values:
            err(field, _("请选择有效的选项。"))
    kind = values["sharing_type"]
    if kind in (ST.CONDITIONAL, ST.NONE) and not values["legal_basis"]:
        err("legal_basis", _("有条件共享或不予共享的资源须写明依据（法律、法规或政策文件）。"))
    if kind == ST.CONDITIONAL and not values["sharing_condition"]:
        err("sharing_condition", _("有条件共享的资源须写明共享条件。"))
    bad = [c for c in values["related_codes"] if not re.match(RESOURCE_CODE_RE, c)]
    if bad:
        err("related_codes", _("关联资源代码格式不正确：%(codes)s") % {"codes": "、".join(bad[:5])})
    else:
        known = set(CatalogEntry.objects.filter(code__in=values["related_codes"]).values_list("code", flat=True))
        missing = [c for c in values["related_codes"] if c not in known or c == code]
        if missing:
            err("related_codes", _("关联资源不存在或为本资源：%(codes)s") % {"codes": "、".join(missing[:5])})
    return values, errors


def _entry_snapshot(entry: CatalogEntry) -> dict:
    data = {f: getattr(entry, f) for f in ENTRY_FIELDS}
    data["items"] = [{f: getattr(i, f) for f in ITEM_FIELDS} for i in entry.items.all()]
    return data


@transaction.atomic
def entry_save(
    *, actor: User, data: dict, items: list[dict], provider: Unit | None = None, entry: CatalogEntry | None = None
) -> CatalogEntry:
    """Create a draft entry, or edit a draft; ``items`` are dicts of the DataItem fields, in order."""
    if entry is not None:
        entry = CatalogEntry.objects.select_for_update().get(pk=entry.pk)
        provider = entry.provider
        if entry.status != CatalogEntry.Status.DRAFT:
            raise ValidationError(_("只有草稿可以修改；已发布的资源请先“修订”生成新版本。"))
    if provider is None:
        raise ValidationError({"provider": _("请选择提供方。")})
    if not can_manage_entry(actor, provider=provider):
        raise PermissionDenied(_("只有提供方单位或电子政务办可以编制该资源目录。"))
    values, errors = _clean_entry(data, code=entry.code if entry else None)
    cleaned_items, item_errors = _clean_items(
        items, entry_type=values.get("sharing_type") or ST.UNCONDITIONAL, registry=values["registry"]
        if values["registry"] in REGISTRIES else ""
    )  # fmt: skip
    errors.update(item_errors)
    if errors:
        raise ValidationError(errors)
    before = _entry_snapshot(entry) if entry else {}
    if entry is None:
        entry = CatalogEntry(provider=provider, created_by=actor, code=next_code(values["class_code"]))
    for field, value in values.items():
        setattr(entry, field, value)
    try:
        with transaction.atomic():
            entry.save()
    except IntegrityError:  # two drafts of one class saved at the same moment took the same code
        raise ValidationError(_("资源代码已被占用，请重新提交。")) from None
    entry.items.all().delete()
    DataItem.objects.bulk_create(
        [DataItem(entry=entry, position=n, **item) for n, item in enumerate(cleaned_items, start=1)]
    )
    after = _entry_snapshot(entry)
    audit_record(
        actor=actor,
        action="exchange.entry.save",
        obj=entry,
        unit_id=entry.provider_id,
        changes=diff(before, after) if before else {"created": [None, entry.code]},
    )
    return entry


def _review_process():
    from yiwang.workflow import services as workflow

    return workflow.builtin_process(
        code=REVIEW_PROCESS,
        name=_("资源目录审核"),
        module="exchange",
        description=_("提供方编制的资源目录条目由电子政务办审核后发布"),
        steps=[{"key": "egov", "name": _("电子政务办审核"), "kind": "any_one",
                "assignee": {"type": "role", "role": Role.EGOV_OFFICE, "unit": settings.YIWANG_EGOV_UNIT},
                "time_limit": 5}],
    )  # fmt: skip


@transaction.atomic
def entry_submit(*, actor: User, entry: CatalogEntry, comment: str = "") -> CatalogEntry:
    """Send a draft to the e-gov office for review (提交审核)."""
    from yiwang.workflow import services as workflow

    entry = CatalogEntry.objects.select_for_update().get(pk=entry.pk)
    if not can_manage_entry(actor, entry):
        raise PermissionDenied(_("只有提供方单位可以提交该资源目录。"))
    if entry.status != CatalogEntry.Status.DRAFT:
        raise ValidationError(_("该资源当前为“%(status)s”，不能提交审核。") % {"status": entry.get_status_display()})
    if not entry.items.exists():
        raise ValidationError(_("请至少填写一个信息项后再提交。"))
    entry.status = CatalogEntry.Status.REVIEW
    entry.save(update_fields=["status", "updated_at"])
    case = workflow.case_start(
        process=_review_process(),
        initiator=actor,
        title=_("资源目录审核：%(name)s（%(code)s 第 %(v)d 版）")
        % {"name": entry.name, "code": entry.code, "v": entry.version},
        subject=entry,
        unit=entry.provider,
        comment=comment,
    )
    entry.review_case = case
    entry.save(update_fields=["review_case", "updated_at"])
    audit_record(actor=actor, action="exchange.entry.submit", obj=entry, unit_id=entry.provider_id)
    return entry


def _publish(entry: CatalogEntry, *, actor: User | None) -> None:
    today = timezone.localdate()
    old = list(
        CatalogEntry.objects.select_for_update()
        .filter(code=entry.code, status=CatalogEntry.Status.PUBLISHED)
        .exclude(pk=entry.pk)
    )
    for previous in old:
        previous.status = CatalogEntry.Status.SUPERSEDED
        previous.save(update_fields=["status", "updated_at"])
    entry.status = CatalogEntry.Status.PUBLISHED
    entry.published_on = today
    entry.save(update_fields=["status", "published_on", "updated_at"])
    audit_record(
        actor=actor,
        action="exchange.entry.publish",
        obj=entry,
        unit_id=entry.provider_id,
        changes={"version": [old[0].version if old else None, entry.version]},
    )
    transaction.on_commit(gateway.bump_generation)


@transaction.atomic
def entry_revise(*, actor: User, entry: CatalogEntry) -> CatalogEntry:
    """Start the next version of a published entry as a draft (修订); an open draft is returned as is."""
    entry = CatalogEntry.objects.select_for_update().get(pk=entry.pk)
    if not can_manage_entry(actor, entry):
        raise PermissionDenied(_("只有提供方单位可以修订该资源目录。"))
    existing = CatalogEntry.objects.filter(code=entry.code, status__in=CatalogEntry.OPEN_VERSIONS).first()
    if existing is not None:
        return existing
    if entry.status != CatalogEntry.Status.PUBLISHED:
        raise ValidationError(_("只有已发布的资源可以修订。"))
    items = list(entry.items.all())
    top = CatalogEntry.objects.filter(code=entry.code).aggregate(v=Max("version"))["v"] or entry.version
    draft = CatalogEntry.objects.get(pk=entry.pk)
    draft.pk = None
    draft.version = top + 1
    draft.status = CatalogEntry.Status.DRAFT
    draft.review_case = None
    draft.published_on = None
    draft.created_by = actor
    draft.save()
    DataItem.objects.bulk_create(
        [DataItem(entry=draft, **{f: getattr(i, f) for f in ("position", *ITEM_FIELDS)}) for i in items]
    )
    audit_record(actor=actor, action="exchange.entry.revise", obj=draft, unit_id=draft.provider_id)
    return draft


@transaction.atomic
def entry_revoke(*, actor: User, entry: CatalogEntry, reason: str) -> CatalogEntry:
    """Withdraw a published resource (撤销): the gateway refuses it from now on; grants stay on record."""
    entry = CatalogEntry.objects.select_for_update().get(pk=entry.pk)
    if not can_manage_entry(actor, entry):
        raise PermissionDenied(_("只有提供方单位或电子政务办可以撤销该资源。"))
    if entry.status != CatalogEntry.Status.PUBLISHED:
        raise ValidationError(_("只有已发布的资源可以撤销。"))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("请填写撤销原因。")})
    entry.status = CatalogEntry.Status.REVOKED
    entry.revoked_reason = reason[:500]
    entry.save(update_fields=["status", "revoked_reason", "updated_at"])
    audit_record(
        actor=actor, action="exchange.entry.revoke", obj=entry, unit_id=entry.provider_id, changes={"reason": reason}
    )
    consumers = User.objects.filter(
        consumer_system__grants__resource_code=entry.code, consumer_system__grants__revoked_at__isnull=True
    )
    units = Unit.objects.filter(systems__account__in=consumers).distinct()
    for unit in units:
        _notify_people(
            _provider_people(unit),
            title=_("共享资源已撤销：%(name)s") % {"name": entry.name},
            body=reason,
            url=entry.get_absolute_url(),
        )
    transaction.on_commit(gateway.bump_generation)
    return entry


@transaction.atomic
def entry_delete_draft(*, actor: User, entry: CatalogEntry) -> None:
    """Throw away a draft that was never published."""
    entry = CatalogEntry.objects.select_for_update().get(pk=entry.pk)
    if not can_manage_entry(actor, entry):
        raise PermissionDenied(_("只有提供方单位可以删除该草稿。"))
    if entry.status != CatalogEntry.Status.DRAFT or entry.requests.exists() or entry.disputes.exists():
        raise ValidationError(_("只有未被引用的草稿可以删除。"))
    audit_record(actor=actor, action="exchange.entry.delete", obj=entry, unit_id=entry.provider_id)
    entry.delete()


# --- access requests and grants ---------------------------------------------------------------


def grant_live(*, system: ConsumerSystem, resource_code: str) -> Grant | None:
    """The system's grant for a resource that is neither revoked nor expired."""
    today = timezone.localdate()
    grant = Grant.objects.filter(system=system, resource_code=resource_code, revoked_at__isnull=True).first()
    if grant is None or (grant.expires_on is not None and grant.expires_on < today):
        return None
    return grant


def _clean_request(entry: CatalogEntry, items: list[str], unmasked: list[str], purpose: str) -> dict:
    errors: dict[str, list[str]] = {}
    by_code = {i.code: i for i in entry.items.all()}
    items = list(dict.fromkeys(items or []))
    unmasked = list(dict.fromkeys(unmasked or []))
    if not items:
        errors["items"] = [_("请选择要申请的信息项。")]
    unknown = [c for c in items if c not in by_code]
    closed = [c for c in items if c in by_code and by_code[c].sharing_type == ST.NONE]
    if unknown:
        errors.setdefault("items", []).append(_("资源中没有这些信息项：%(items)s") % {"items": "、".join(unknown[:10])})
    if closed:
        names = "、".join(by_code[c].name for c in closed)
        errors.setdefault("items", []).append(_("这些信息项不予共享：%(items)s") % {"items": names})
    wrong = [c for c in unmasked if c not in items or not (c in by_code and by_code[c].personal)]
    if wrong:
        errors["unmasked"] = [_("明文申请只能针对所申请的个人信息项：%(items)s") % {"items": "、".join(wrong[:10])}]
    purpose = (purpose or "").strip()
    if len(purpose) < 4:
        errors["purpose"] = [_("请写明用途（至少 4 个字），例如：义务教育入学资格核验。")]
    if errors:
        raise ValidationError(errors)
    return {"items": items, "unmasked": unmasked, "purpose": purpose[:500], "by_code": by_code}


def _access_process():
    from yiwang.workflow import services as workflow

    return workflow.builtin_process(
        code=ACCESS_PROCESS,
        name=_("共享申请答复"),
        module="exchange",
        description=_("有条件共享的资源由提供方单位领导在期限内答复"),
        steps=[{"key": "provider", "name": _("提供方答复"), "kind": "any_one",
                "assignee": {"type": "lead_unit", "rank": ""}}],
    )  # fmt: skip


@transaction.atomic
def request_create(
    *,
    actor: User,
    system: ConsumerSystem,
    entry: CatalogEntry,
    items: list[str],
    purpose: str,
    unmasked: list[str] | None = None,
    legal_basis: str = "",
    service_item: str = "",
) -> AccessRequest:
    """Ask for a resource (共享申请). Unconditional items in plain form are granted at once;
    anything else goes to the provider with a working-day deadline."""
    if not can_use_system(actor, system):
        raise PermissionDenied(_("只能为本单位的业务系统提出申请。"))
    entry = CatalogEntry.objects.select_related("provider").get(pk=entry.pk)  # the state now, not the caller's copy
    if entry.status != CatalogEntry.Status.PUBLISHED:
        raise ValidationError(_("只能申请已发布的资源。"))
    if entry.sharing_type == ST.NONE:
        raise ValidationError(_("该资源不予共享，无法申请。依据：%(basis)s") % {"basis": entry.legal_basis})
    clean = _clean_request(entry, items, unmasked or [], purpose)
    by_code = clean["by_code"]
    if AccessRequest.objects.filter(system=system, entry__code=entry.code, status__in=AccessRequest.OPEN).exists():
        raise ValidationError(_("该系统对此资源已有待答复的申请，请勿重复提交。"))
    grant = grant_live(system=system, resource_code=entry.code)
    if grant and set(clean["items"]) <= set(grant.items) and set(clean["unmasked"]) <= set(grant.unmasked):
        raise ValidationError(_("该系统已获得所申请信息项的授权，无需再申请。"))
    request = AccessRequest.objects.create(
        system=system,
        unit=system.unit,
        entry=entry,
        items=clean["items"],
        unmasked=clean["unmasked"],
        purpose=clean["purpose"],
        legal_basis=(legal_basis or "").strip()[:500],
        service_item=(service_item or "").strip()[:200],
        requested_by=actor if not getattr(actor, "is_system", False) else None,
    )
    audit_record(
        actor=actor,
        action="exchange.request.create",
        obj=request,
        unit_id=system.unit_id,
        changes={
            "resource": entry.code,
            "items": clean["items"],
            "unmasked": clean["unmasked"],
            "purpose": clean["purpose"],
        },
    )
    at_once = all(by_code[c].sharing_type == ST.UNCONDITIONAL for c in clean["items"]) and not clean["unmasked"]
    if at_once:
        _decide(request, approve=True, actor=None, reason=_("无条件共享，系统自动授权。"))
        return request
    from yiwang.workflow import services as workflow

    request.due_date = add_working_days(timezone.localdate(), settings.YIWANG_EXCHANGE_REPLY_DAYS)
    initiator = request.requested_by or system.account
    request.case = workflow.case_start(
        process=_access_process(),
        initiator=initiator,
        title=_("共享申请：%(system)s 申请 %(name)s") % {"system": system.name, "name": entry.name},
        subject=request,
        unit=system.unit,
        lead_unit=entry.provider,
        fields={"resource": entry.code},
        due_date=request.due_date,  # the case and its task carry the request's reply deadline
    )
    request.save(update_fields=["due_date", "case", "updated_at"])
    return request


def _decide(request: AccessRequest, *, approve: bool, actor: User | None, reason: str) -> None:
    """Record the answer and, when approved, issue or widen the grant."""
    request.status = AccessRequest.Status.GRANTED if approve else AccessRequest.Status.REFUSED
    request.decided_at = timezone.now()
    request.decided_by = actor
    request.reason = (reason or "")[:500]
    request.save(update_fields=["status", "decided_at", "decided_by", "reason", "items", "unmasked", "updated_at"])
    audit_record(
        actor=actor,
        action="exchange.request.grant" if approve else "exchange.request.refuse",
        obj=request,
        unit_id=request.entry.provider_id,
        changes={"items": request.items, "unmasked": request.unmasked, "reason": request.reason},
    )
    if approve:
        _grant_issue(request, actor=actor)
    people = [request.requested_by] if request.requested_by else _provider_people(request.unit)
    _notify_people(
        people,
        title=(_("共享申请已同意：%(name)s") if approve else _("共享申请未获同意：%(name)s"))
        % {"name": request.entry.name},
        body=request.reason,
        url=request.get_absolute_url(),
    )


def _grant_issue(request: AccessRequest, *, actor: User | None) -> Grant:
    grant = (
        Grant.objects.select_for_update()
        .filter(system=request.system, resource_code=request.entry.code, revoked_at__isnull=True)
        .first()
    )
    if grant is None:
        grant = Grant(
            system=request.system,
            unit=request.unit,
            resource_code=request.entry.code,
            provider=request.entry.provider,
        )
        before = {}
    else:
        before = {"items": grant.items, "unmasked": grant.unmasked, "purpose": grant.purpose}
    grant.items = sorted(set(grant.items or []) | set(request.items))
    grant.unmasked = sorted(set(grant.unmasked or []) | set(request.unmasked))
    grant.purpose = request.purpose
    grant.request = request
    grant.save()
    after = {"items": grant.items, "unmasked": grant.unmasked, "purpose": grant.purpose}
    audit_record(
        actor=actor, action="exchange.grant.issue", obj=grant, unit_id=grant.unit_id, changes=diff(before, after)
    )
    transaction.on_commit(gateway.bump_generation)
    return grant


def _open_task_of(request: AccessRequest, actor: User):
    from yiwang.workflow import services as workflow
    from yiwang.workflow.models import Task

    if request.case_id is None:
        return None
    for task in Task.objects.filter(case_id=request.case_id, status=Task.Status.OPEN).select_related("assignee"):
        if workflow.acting_for(task, actor) is not False:
            return task
    return None


def can_decide(user: User, request: AccessRequest) -> bool:
    return request.status in AccessRequest.OPEN and (is_egov(user) or _open_task_of(request, user) is not None)


@transaction.atomic
def request_decide(
    *,
    actor: User,
    request: AccessRequest,
    approve: bool,
    reason: str = "",
    items: list[str] | None = None,
    unmasked: list[str] | None = None,
) -> AccessRequest:
    """The provider (its open task) or the e-gov office answers; approval may narrow the items,
    a refusal needs a reason."""
    from yiwang.workflow import services as workflow

    request = AccessRequest.objects.select_for_update().select_related("entry", "system").get(pk=request.pk)
    if request.status not in AccessRequest.OPEN:
        raise ValidationError(_("该申请已答复（%(status)s）。") % {"status": request.get_status_display()})
    task = _open_task_of(request, actor)
    if task is None and not is_egov(actor):
        raise PermissionDenied(_("只有提供方的答复人或电子政务办可以答复该申请。"))
    reason = (reason or "").strip()
    if not approve and not reason:
        raise ValidationError({"reason": _("不予同意须说明理由。")})
    if approve:
        items = request.items if items is None else list(dict.fromkeys(items))
        unmasked = request.unmasked if unmasked is None else list(dict.fromkeys(unmasked))
        if not items or not set(items) <= set(request.items):
            raise ValidationError({"items": _("同意的信息项须是所申请信息项的一部分，且至少一项。")})
        if not set(unmasked) <= set(request.unmasked) & set(items):
            raise ValidationError({"unmasked": _("明文授权只能针对所申请明文且已同意的信息项。")})
        request.items, request.unmasked = items, unmasked
    if task is not None:
        request.reason = reason[:500]
        request.decided_by = actor
        request.save(update_fields=["items", "unmasked", "reason", "decided_by", "updated_at"])
        # the engine's case_finished signal (``_case_finished``) records the answer
        if approve:
            workflow.task_approve(task=task, actor=actor, comment=reason)
        else:
            workflow.task_reject(task=task, actor=actor, comment=reason)
        request.refresh_from_db()
        return request
    _decide(request, approve=approve, actor=actor, reason=reason or _("电子政务办答复。"))
    if request.case_id:
        workflow.case_cancel(case=request.case, actor=actor, reason=_("电子政务办已直接答复。"))
    return request


@transaction.atomic
def request_withdraw(*, actor: User, request: AccessRequest) -> AccessRequest:
    """The requesting unit takes back an unanswered request."""
    from yiwang.workflow import services as workflow

    request = AccessRequest.objects.select_for_update().select_related("system").get(pk=request.pk)
    if not can_use_system(actor, request.system):
        raise PermissionDenied(_("只有申请单位可以撤回该申请。"))
    if request.status not in AccessRequest.OPEN:
        raise ValidationError(_("该申请已答复，不能撤回。"))
    request.status = AccessRequest.Status.WITHDRAWN
    request.save(update_fields=["status", "updated_at"])
    audit_record(actor=actor, action="exchange.request.withdraw", obj=request, unit_id=request.unit_id)
    if request.case_id:
        workflow.case_cancel(case=request.case, actor=actor, reason=_("申请单位已撤回。"))
    return request


def _case_finished(sender, case, outcome: str, **kwargs) -> None:
    """Answers given in the workflow engine (inbox or case page) land here, inside its transaction."""
    code = case.definition.code
    if code == REVIEW_PROCESS and case.object_id:
        entry = CatalogEntry.objects.select_for_update().filter(pk=case.object_id).first()
        if entry is None or entry.status != CatalogEntry.Status.REVIEW:
            return
        if outcome == "approved":
            _publish(entry, actor=case.tasks.filter(outcome="approved").order_by("-acted_at").first().acted_by)
        else:
            entry.status = CatalogEntry.Status.DRAFT
            entry.save(update_fields=["status", "updated_at"])
            audit_record(actor=None, action="exchange.entry.returned", obj=entry, unit_id=entry.provider_id,
                         changes={"outcome": outcome})  # fmt: skip
            _notify_people(
                [case.initiator] if case.initiator_id else [],
                title=_("资源目录未通过审核：%(name)s") % {"name": entry.name},
                url=entry.get_absolute_url(),
            )
    elif code == ACCESS_PROCESS and case.object_id:
        request = AccessRequest.objects.select_for_update().select_related("entry").filter(pk=case.object_id).first()
        if request is None or request.status not in AccessRequest.OPEN:
            return  # answered outside the engine (e-gov office) or withdrawn
        last = case.tasks.exclude(outcome="").order_by("-acted_at").first()
        actor = last.acted_by if last else None
        if outcome == "approved":
            _decide(request, approve=True, actor=actor, reason=request.reason)
        elif outcome == "rejected":
            comment = case.actions.filter(kind="reject").order_by("-id").values_list("comment", flat=True).first()
            _decide(request, approve=False, actor=actor, reason=request.reason or comment or "")
        else:
            request.status = AccessRequest.Status.WITHDRAWN
            request.save(update_fields=["status", "updated_at"])


def requests_escalate(*, today=None) -> int:
    """Past the reply deadline: the request goes to the e-gov office (逾期提交电子政务办)."""
    today = today or timezone.localdate()
    count = 0
    overdue = AccessRequest.objects.filter(status=AccessRequest.Status.PENDING, due_date__lt=today)
    for request in overdue.select_related("entry", "system", "entry__provider"):
        with transaction.atomic():
            claimed = AccessRequest.objects.filter(pk=request.pk, status=AccessRequest.Status.PENDING).update(
                status=AccessRequest.Status.ESCALATED, escalated_at=timezone.now()
            )
            if not claimed:
                continue
            audit_record(
                actor=None,
                action="exchange.request.escalate",
                obj=request,
                unit_id=request.entry.provider_id,
                changes={"due_date": request.due_date.isoformat()},
            )
            title = _("共享申请逾期未答复：%(system)s 申请 %(name)s") % {
                "system": request.system.name,
                "name": request.entry.name,
            }
            _notify_people(
                egov_people() + _provider_people(request.entry.provider),
                title=title,
                url=request.get_absolute_url(),
            )
            count += 1
    return count


@transaction.atomic
def grant_revoke(*, actor: User, grant: Grant, reason: str) -> Grant:
    """The provider or the e-gov office withdraws a grant (撤销授权); effective at the next call."""
    grant = Grant.objects.select_for_update().select_related("provider").get(pk=grant.pk)
    if not (is_egov(actor) or can_manage_entry(actor, provider=grant.provider)):
        raise PermissionDenied(_("只有提供方或电子政务办可以撤销授权。"))
    if grant.revoked_at is not None:
        raise ValidationError(_("该授权已撤销。"))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("请填写撤销原因。")})
    grant.revoked_at = timezone.now()
    grant.revoked_reason = reason[:500]
    grant.save(update_fields=["revoked_at", "revoked_reason", "updated_at"])
    audit_record(
        actor=actor, action="exchange.grant.revoke", obj=grant, unit_id=grant.unit_id, changes={"reason": reason}
    )
    _notify_people(
        _provider_people(grant.unit),
        title=_("共享授权已撤销：%(code)s") % {"code": grant.resource_code},
        body=reason,
        url=reverse("exchange:grant_detail", args=[grant.pk]),
    )
    transaction.on_commit(gateway.bump_generation)
    return grant


@transaction.atomic
def grant_limit(*, actor: User, grant: Grant, per_minute: int | None) -> Grant:
    """Set a grant's own rate limit (calls a minute); None uses the district default."""
    grant = Grant.objects.select_for_update().select_related("provider").get(pk=grant.pk)
    if not (is_egov(actor) or can_manage_entry(actor, provider=grant.provider)):
        raise PermissionDenied(_("只有提供方或电子政务办可以调整调用上限。"))
    if per_minute is not None and not 1 <= per_minute <= 1_000_000:
        raise ValidationError({"per_minute": _("每分钟调用上限须在 1 到 1,000,000 之间。")})
    before = grant.per_minute
    grant.per_minute = per_minute
    grant.save(update_fields=["per_minute", "updated_at"])
    audit_record(actor=actor, action="exchange.grant.limit", obj=grant, unit_id=grant.unit_id,
                 changes={"per_minute": [before, per_minute]})  # fmt: skip
    transaction.on_commit(gateway.bump_generation)
    return grant


@transaction.atomic
def internal_system_ensure(module_code: str, *, unit: Unit | None = None, name: str = "") -> ConsumerSystem:
    """The consumer system a platform module reads shared data as (``gateway.read_internal``):
    created once, then found again by its service account ``module-<code>``. Its grants are
    requested and approved like any outside system's."""
    from yiwang.org import services as org

    if not re.fullmatch(r"[a-z][a-z0-9_]{1,40}", module_code or ""):
        raise ValidationError({"module": _("模块代码只能由小写字母、数字和下划线组成。")})
    username = f"{gateway.INTERNAL_PREFIX}{module_code}"
    system = ConsumerSystem.objects.filter(account__username=username).first()
    if system is not None:
        return system
    unit = unit or Unit.objects.get(code=settings.YIWANG_EGOV_UNIT)
    system = org.system_create(
        actor=None,
        name=name or _("%(module)s（平台内部模块）") % {"module": module_code},
        unit=unit,
        description=_("平台内部模块，通过共享网关读取共享数据，无 API 密钥。"),
    )
    # a fixed account name, so the module is found again without holding any key or id
    User.objects.filter(pk=system.account_id).update(username=username)
    system.account.username = username
    audit_record(actor=None, action="exchange.internal_system.ensure", obj=system, changes={"module": module_code})
    return system
