"""Disputes (疑义校核): a consumer says a record of a shared resource is wrong; the provider
checks it within ``YIWANG_EXCHANGE_DISPUTE_DAYS`` working days and corrects it or answers.

Who raises: a person of a unit whose systems hold a live grant for the resource, or a
consumer system (its service account) with its own grant; the e-gov office and platform
admins may raise about anything. Who answers: the provider (``services.can_manage_entry``:
its staff and admins, the e-gov office). A correction of a registry-backed resource goes
through ``registries.record_save``, so it is audited and lands in the change log that
subscribers read. ``disputes_remind`` (hourly) reminds providers once a day when a dispute
is due within one working day or overdue.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from yiwang.core.audit import audit_record
from yiwang.core.calendar import add_working_days
from yiwang.core.notices import notice_send
from yiwang.core.permissions import scope
from yiwang.org.models import ConsumerSystem, Post, Role, Unit, User

from . import registries, services
from .models import CatalogEntry, Dispute

MODULE = "exchange"
TODO, MINE, ALL = "todo", "mine", "all"


# --- who ------------------------------------------------------------------------------------


def unit_people(unit_id: int) -> list[User]:
    """Leaders and admins of a unit; its staff when it has neither (someone must hear)."""
    posts = Post.objects.filter(unit_id=unit_id, active=True, user__is_active=True, user__is_system=False)
    chiefs = posts.filter(Q(leader_rank__gt="") | Q(role__code=Role.UNIT_ADMIN))
    people = list(User.objects.filter(posts__in=chiefs).distinct().order_by("id"))
    return people or list(User.objects.filter(posts__in=posts).distinct().order_by("id")[:5])


def tell(people, *, title: str, body: str = "", url: str = "") -> None:
    """Leave the same in-app notice for each person once."""
    for person in {p.pk: p for p in people}.values():
        notice_send(recipient_id=person.pk, title=title, body=body, url=url, module=MODULE)


def _system_of(user: User) -> ConsumerSystem | None:
    if not getattr(user, "is_system", False):
        return None
    return ConsumerSystem.objects.select_related("unit").filter(account=user).first()


def raising_systems(*, actor: User, entry: CatalogEntry) -> list[ConsumerSystem]:
    """The systems on whose grant ``actor`` may raise a dispute about ``entry`` (the actor's own,
    for a system account; every system of the acting unit, for a person)."""
    own = _system_of(actor)
    if own is not None:
        candidates = [own]
    elif actor.acting_unit_id:
        candidates = list(ConsumerSystem.objects.filter(unit_id=actor.acting_unit_id).order_by("id"))
    else:
        candidates = []
    return [s for s in candidates if services.grant_live(system=s, resource_code=entry.code) is not None]


def can_raise(user: User, entry: CatalogEntry) -> bool:
    """Whether ``user`` may raise a dispute about ``entry`` (a live grant, or the e-gov office)."""
    if not getattr(user, "is_authenticated", False) or entry.status != CatalogEntry.Status.PUBLISHED:
        return False
    if not getattr(user, "is_system", False) and services.is_egov(user):
        return True
    return bool(raising_systems(actor=user, entry=entry))


def can_answer(user: User, dispute: Dispute) -> bool:
    """The provider side: its staff and admins, the e-gov office (never a system account)."""
    return services.can_manage_entry(user, dispute.entry)


def can_view(user: User, dispute: Dispute) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if getattr(user, "is_system", False):
        system = _system_of(user)
        return system is not None and system.unit_id == dispute.unit_id
    if services.is_egov(user) or user.acting_unit_id in (dispute.unit_id, dispute.provider_id):
        return True
    return disputes_visible(user=user).filter(pk=dispute.pk).exists()


# --- writes ---------------------------------------------------------------------------------


def _clean_text(value: str | None, *, limit: int) -> str:
    return (value or "").strip()[:limit]


@transaction.atomic
def dispute_raise(
    *,
    actor: User,
    entry: CatalogEntry,
    record_key: str,
    item: str,
    description: str,
    reported_value: str = "",
    proposed_value: str = "",
    system: ConsumerSystem | None = None,
) -> Dispute:
    """Raise a dispute about one item of one record (提出疑义); the provider is told at once."""
    if entry.status != CatalogEntry.Status.PUBLISHED:
        raise ValidationError(_("只能对已发布的资源提出疑义。"))
    own = _system_of(actor)
    if own is not None:
        system = own  # a key's system raises for itself
        unit = own.unit
    else:
        unit = actor.acting_unit
        if system is not None and system.unit_id != actor.acting_unit_id:
            raise PermissionDenied(_("只能以本单位的业务系统提出疑义。"))
    if unit is None:
        raise PermissionDenied(_("您当前没有所属单位，不能提出疑义。"))
    egov = own is None and services.is_egov(actor)
    if not egov:
        holders = raising_systems(actor=actor, entry=entry)
        if system is not None:
            holders = [s for s in holders if s.pk == system.pk]
        if not holders:
            raise PermissionDenied(_("本单位未获得该资源的共享授权，不能提出疑义。"))
        system = system or holders[0]
    errors: dict[str, list[str]] = {}
    item = (item or "").strip()
    items = {i.code: i for i in entry.items.all()}
    if item not in items:
        errors["item"] = [_("请选择该资源的一个信息项。")]
    key = (record_key or "").strip()
    if not key or len(key) > 64:
        errors["record_key"] = [_("请填写记录标识（最长 64 个字符）。")]
    elif entry.registry:
        spec = registries.registry(entry.registry)
        try:
            key = registries.key_clean(spec, key)
        except ValidationError as error:
            errors["record_key"] = error.messages
        else:
            if registries.record_get(spec, key) is None:
                errors["record_key"] = [
                    _("%(registry)s中没有该记录，请核对%(label)s。") % {"registry": spec.label, "label": spec.key_label}
                ]
    description = (description or "").strip()
    if len(description) < 4:
        errors["description"] = [_("请说明疑义（至少 4 个字），例如：户籍地址已于 2025 年迁至新碶街道。")]
    elif len(description) > 2000:
        errors["description"] = [_("疑义说明不能超过 2000 字。")]
    for field, value in (("reported_value", reported_value), ("proposed_value", proposed_value)):
        if len(value or "") > 200:
            errors[field] = [_("不能超过 200 个字符。")]
    if errors:
        raise ValidationError(errors)
    duplicate = Dispute.objects.filter(
        entry__code=entry.code, record_key=key, item=item, unit=unit, status=Dispute.Status.OPEN
    ).first()
    if duplicate is not None:
        raise ValidationError(
            _("本单位对该记录的这一信息项已有待核实的疑义（编号 %(id)d），请勿重复提出。") % {"id": duplicate.pk}
        )
    dispute = Dispute.objects.create(
        entry=entry,
        provider_id=entry.provider_id,
        unit=unit,
        system=system,
        raised_by=actor,
        record_key=key,
        item=item,
        reported_value=_clean_text(reported_value, limit=200),
        proposed_value=_clean_text(proposed_value, limit=200),
        description=description,
        due_date=add_working_days(timezone.localdate(), settings.YIWANG_EXCHANGE_DISPUTE_DAYS),
    )
    audit_record(
        actor=actor,
        action="exchange.dispute.raise",
        obj=dispute,
        unit_id=unit.pk,
        changes={
            "resource": entry.code,
            "record_key": key,
            "item": item,
            "system": system.name if system else None,
            "reported_value": dispute.reported_value,
            "proposed_value": dispute.proposed_value,
            "due_date": dispute.due_date.isoformat(),
        },
    )
    raiser = system.name if system is not None else unit.name
    tell(
        unit_people(entry.provider_id),
        title=_("疑义校核：%(raiser)s 对“%(name)s”的“%(item)s”提出疑义，请于 %(due)s 前核实")
        % {"raiser": raiser, "name": entry.name, "item": items[item].name, "due": dispute.due_date.isoformat()},
        body=description[:500],
        url=reverse("exchange:dispute_detail", args=[dispute.pk]),
    )
    return dispute


@transaction.atomic
def dispute_answer(
    *, actor: User, dispute: Dispute, corrected: bool, answer: str, new_value: str | None = None
) -> Dispute:
    """The provider answers (核实答复): corrects the value (which subscribers then see) or says it is right."""
    dispute = Dispute.objects.select_for_update().select_related("entry", "entry__provider").get(pk=dispute.pk)
    entry = dispute.entry
    if not can_answer(actor, dispute):
        raise PermissionDenied(_("只有提供方单位或电子政务办可以答复该疑义。"))
    if dispute.status != Dispute.Status.OPEN:
        raise ValidationError(_("该疑义已于 %(when)s 答复，不能再次答复。") % {"when": _when(dispute.answered_at)})
    answer = (answer or "").strip()
    errors: dict[str, list[str]] = {}
    if len(answer) < 2:
        errors["answer"] = [_("请填写核实意见。")]
    elif len(answer) > 2000:
        errors["answer"] = [_("核实意见不能超过 2000 字。")]
    value = (new_value if new_value is not None else dispute.proposed_value or "").strip() if corrected else ""
    changed: list[str] = []
    if corrected and entry.registry and not errors:
        spec = registries.registry(entry.registry)
        if dispute.item in spec.key_fields:
            errors["new_value"] = [_("记录标识本身不能通过疑义更正，请在基础库中处理。")]
        elif dispute.item not in spec.columns:
            errors["new_value"] = [_("该信息项不在基础库中，无法自动更正。")]
        elif not value:
            errors["new_value"] = [_("请填写更正后的值。")]
        elif len(value) > 200:
            errors["new_value"] = [_("更正后的值不能超过 200 个字符。")]
        else:
            try:
                with transaction.atomic():
                    _record, changed = registries.record_save(
                        actor=actor,
                        registry_code=entry.registry,
                        key=dispute.record_key,
                        values={dispute.item: value},
                        reason=_("疑义校核 %(id)d：%(answer)s") % {"id": dispute.pk, "answer": answer[:200]},
                    )
            except ValidationError as error:
                messages = error.message_dict if hasattr(error, "error_dict") else {"": error.messages}
                errors["new_value"] = [m for field_messages in messages.values() for m in field_messages]
            else:
                if not changed:
                    errors["new_value"] = [_("更正后的值与现有值相同；如数据无误，请选择“数据无误”答复。")]
    if errors:
        raise ValidationError(errors)
    dispute.status = Dispute.Status.CORRECTED if corrected else Dispute.Status.ANSWERED
    dispute.answer = answer
    dispute.answered_by = actor
    dispute.answered_at = timezone.now()
    dispute.save(update_fields=["status", "answer", "answered_by", "answered_at", "updated_at"])
    audit_record(
        actor=actor,
        action="exchange.dispute.answer",
        obj=dispute,
        unit_id=dispute.provider_id,
        changes={"status": [Dispute.Status.OPEN, dispute.status], "answer": answer, "new_value": value or None,
                 "changed": changed},
    )  # fmt: skip
    raiser = dispute.raised_by
    people = [raiser] if raiser is not None and not raiser.is_system and raiser.is_active else []
    title = (
        _("疑义已更正：%(name)s（%(item)s）") if corrected else _("疑义已答复，数据无误：%(name)s（%(item)s）")
    ) % {"name": entry.name, "item": item_name(dispute)}
    tell(
        people or unit_people(dispute.unit_id),
        title=title,
        body=answer[:500],
        url=reverse("exchange:dispute_detail", args=[dispute.pk]),
    )
    return dispute


def _when(moment: dt.datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "—"


def disputes_remind(*, today: dt.date | None = None) -> int:
    """Remind providers of open disputes due within one working day or overdue, once a day each.

    A dispute is claimed with a conditional UPDATE of ``reminded_on`` before its notice goes
    out, so two beat runs (or two workers) never remind twice on the same day.
    """
    today = today or timezone.localdate()
    threshold = add_working_days(today, 1)
    not_today = Q(reminded_on__isnull=True) | Q(reminded_on__lt=today)
    due = (
        Dispute.objects.filter(status=Dispute.Status.OPEN, due_date__lte=threshold)
        .filter(not_today)
        .select_related("entry")
        .order_by("id")
    )
    sent = 0
    for dispute in due.iterator(chunk_size=500):
        with transaction.atomic():
            if (
                not Dispute.objects.filter(pk=dispute.pk, status=Dispute.Status.OPEN)
                .filter(not_today)
                .update(reminded_on=today)
            ):
                continue
            template = (
                _("【超期】疑义校核：“%(name)s”记录的疑义已超过核实期限 %(due)s，请尽快答复")
                if dispute.due_date < today
                else _("【即将到期】疑义校核：“%(name)s”记录的疑义请于 %(due)s 前答复")
            )
            tell(
                unit_people(dispute.provider_id),
                title=template % {"name": dispute.entry.name, "due": dispute.due_date.isoformat()},
                url=reverse("exchange:dispute_detail", args=[dispute.pk]),
            )
            sent += 1
    return sent


# --- reads ----------------------------------------------------------------------------------


def disputes_visible(*, user: User) -> QuerySet[Dispute]:
    """Disputes raised by or addressed to the units the user may see (all for the e-gov office)."""
    base = Dispute.objects.select_related("entry", "provider", "unit", "system", "raised_by")
    if getattr(user, "is_system", False):
        system = _system_of(user)
        return base.filter(unit_id=system.unit_id) if system else base.none()
    if services.is_egov(user):
        return base
    return scope(base, user, unit_field="unit") | scope(base, user, unit_field="provider")


def dispute_list(
    *,
    user: User,
    tab: str = TODO,
    status: str = "",
    resource: str = "",
    overdue: bool = False,
    q: str = "",
    today: dt.date | None = None,
) -> QuerySet[Dispute]:
    """A tab of the dispute list: to answer by my unit (待我核实), raised by my unit (我提出的), or
    all (e-gov office); filtered by status, resource code, overdue and a search text."""
    qs = disputes_visible(user=user)
    unit_id = user.acting_unit_id
    if tab == ALL and services.is_egov(user):
        pass
    elif tab == MINE:
        qs = qs.filter(unit_id=unit_id)
    else:
        qs = qs.filter(provider_id=unit_id)
    if status in Dispute.Status.values:
        qs = qs.filter(status=status)
    if resource:
        qs = qs.filter(entry__code=resource)
    if overdue:
        qs = qs.filter(status=Dispute.Status.OPEN, due_date__lt=today or timezone.localdate())
    q = (q or "").strip()
    if q:
        qs = qs.filter(
            Q(record_key__icontains=q)
            | Q(entry__name__icontains=q)
            | Q(entry__code__icontains=q)
            | Q(item__icontains=q)
            | Q(description__icontains=q)
        )
    return qs.order_by("-id")


def is_overdue(dispute: Dispute, *, today: dt.date | None = None) -> bool:
    return dispute.status == Dispute.Status.OPEN and dispute.due_date < (today or timezone.localdate())


def tab_counts(*, user: User) -> dict[str, int]:
    """Open disputes per tab, for the tab badges."""
    visible = disputes_visible(user=user).filter(status=Dispute.Status.OPEN)
    unit_id = user.acting_unit_id
    counts = {TODO: visible.filter(provider_id=unit_id).count(), MINE: visible.filter(unit_id=unit_id).count()}
    if services.is_egov(user):
        counts[ALL] = visible.count()
    return counts


def current_value(dispute: Dispute) -> str | None:
    """The registry's value of the disputed item now (for the provider's answer form), or None."""
    if not dispute.entry.registry:
        return None
    spec = registries.registry(dispute.entry.registry)
    if dispute.item not in spec.columns:
        return None
    try:
        record = registries.record_fetch(spec, dispute.record_key, [dispute.item])
    except (ValueError, ValidationError):
        return None
    if record is None:
        return None
    value = record.get(dispute.item)
    return "" if value is None else str(value)


def item_name(dispute: Dispute) -> str:
    """The disputed item's name in the entry (its code if the entry no longer has it)."""
    found = next((i.name for i in dispute.entry.items.all() if i.code == dispute.item), None)
    return found or dispute.item


def unit_of(user: User) -> Unit | None:
    system = _system_of(user)
    return system.unit if system is not None else user.acting_unit
