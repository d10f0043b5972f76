"""调用记录: the evidence of every gateway call, read from the one hash-chained audit.

Each call is an ``AuditEntry`` (``object_type`` "exchange.resource", ``object_id`` the
resource code, ``unit_id`` the consumer unit, ``actor_id`` the consumer system's service
account) whose ``changes`` hold the system, key, purpose, record key, items, count, status,
timings and size (see ``gateway.evidence``).

Who sees which calls (``calls_visible``): the e-gov office and platform admins see every
call; a unit sees the calls to the resources it provides (“who read our data, and why”)
and the calls its own systems made; a consumer system's key sees its own calls.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yiwang.core.models import AuditEntry
from yiwang.core.permissions import ALL
from yiwang.org.models import ConsumerSystem, Unit

from .matching import text_cell
from .models import CatalogEntry, DataItem, Grant
from .statistics import date_check

OBJECT_TYPE = "exchange.resource"
ACTION_READ, ACTION_DENIED, ACTION_CHANGES = "exchange.read", "exchange.denied", "exchange.changes"
ACTIONS = (ACTION_READ, ACTION_DENIED, ACTION_CHANGES)


class Outcome:
    SERVED = "served"
    DENIED = "denied"
    CHANGES = "changes"
    CHOICES = [
        ("", gettext_lazy("全部结果")),
        (SERVED, gettext_lazy("成功")),
        (DENIED, gettext_lazy("拒绝或失败")),
        (CHANGES, gettext_lazy("订阅拉取")),
    ]
    ACTION = {SERVED: ACTION_READ, DENIED: ACTION_DENIED, CHANGES: ACTION_CHANGES}


def sees_all(user) -> bool:
    """The e-gov office and platform admins see every call (and may check the chain)."""
    from .services import is_egov

    return bool(user and user.is_authenticated and is_egov(user))


def _own_units(user) -> frozenset[int]:
    """Units whose calls a person may see: the visible ones, but only the acting unit for a
    district-wide role that is not the e-gov office (call evidence is not every role's business)."""
    visible = user.visible_unit_ids()
    if visible is ALL:
        return frozenset({user.acting_unit_id} - {None})
    return frozenset(visible)


def calls_all() -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(object_type=OBJECT_TYPE, action__in=ACTIONS)


def calls_visible(user, *, system: ConsumerSystem | None = None) -> QuerySet[AuditEntry]:
    """The call evidence ``user`` may see; with ``system`` (an API key's), only that system's calls."""
    entries = calls_all()
    if system is not None:
        return entries.filter(actor_id=system.account_id)
    if user is None or not user.is_authenticated:
        return entries.none()
    if sees_all(user):
        return entries
    units = _own_units(user)
    if not units:
        return entries.none()
    return entries.filter(Q(object_id__in=provided_codes(units)) | Q(unit_id__in=units))


def provided_codes(unit_ids) -> QuerySet:
    """Codes of the resources (any version, any status) these units provide, as a subquery."""
    return CatalogEntry.objects.filter(provider_id__in=unit_ids).values("code")


def calls_filter(
    entries: QuerySet[AuditEntry],
    *,
    resource: str = "",
    system_id: int | None = None,
    outcome: str = "",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    q: str = "",
    record: str = "",
) -> QuerySet[AuditEntry]:
    """Narrow calls by resource code, consumer system, outcome, date range, purpose text, record key."""
    if resource:
        entries = entries.filter(object_id=resource)
    if system_id is not None:
        account = ConsumerSystem.objects.filter(pk=system_id).values_list("account_id", flat=True).first()
        entries = entries.filter(actor_id=account) if account else entries.none()
    if outcome in Outcome.ACTION:
        entries = entries.filter(action=Outcome.ACTION[outcome])
    for value in (date_from, date_to):
        date_check(value)  # the form and the API refuse these first; never let one overflow
    tz = timezone.get_current_timezone()
    if date_from:
        entries = entries.filter(created_at__gte=dt.datetime.combine(date_from, dt.time.min, tzinfo=tz))
    if date_to:
        end = date_to + dt.timedelta(days=1)
        entries = entries.filter(created_at__lt=dt.datetime.combine(end, dt.time.min, tzinfo=tz))
    if q:
        entries = entries.filter(changes__purpose__icontains=q)
    if record:
        entries = entries.filter(changes__record__iexact=record.strip())
    return entries


def calls_ordered(entries: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
    return entries.order_by("-created_at", "-id")


@dataclass
class CallRow:
    """One call as the list, the CSV and the API show it."""

    entry: AuditEntry
    unit_name: str
    item_names: list[str]

    @property
    def changes(self) -> dict:
        return self.entry.changes if isinstance(self.entry.changes, dict) else {}

    @property
    def id(self) -> int:
        return self.entry.pk

    @property
    def created_at(self) -> dt.datetime:
        return self.entry.created_at

    @property
    def action(self) -> str:
        return self.entry.action

    @property
    def outcome(self) -> str:
        return {v: k for k, v in Outcome.ACTION.items()}.get(self.entry.action, "")

    @property
    def outcome_label(self) -> str:
        return str(dict(Outcome.CHOICES).get(self.outcome, self.entry.action))

    @property
    def resource_code(self) -> str:
        return self.entry.object_id

    @property
    def resource_name(self) -> str:
        return self.entry.object_repr

    @property
    def system_id(self) -> int | None:
        value = self.changes.get("system")
        return value if isinstance(value, int) else None

    @property
    def system_name(self) -> str:
        return str(self.changes.get("system_name") or self.entry.actor_name)

    @property
    def unit_id(self) -> int | None:
        return self.entry.unit_id

    @property
    def key(self) -> str:
        return str(self.changes.get("key") or "")

    @property
    def purpose(self) -> str:
        return str(self.changes.get("purpose") or "")

    @property
    def record(self) -> str:
        return str(self.changes.get("record") or "")

    @property
    def items(self) -> list[str]:
        value = self.changes.get("items")
        return [str(v) for v in value] if isinstance(value, list) else []

    @property
    def masked(self) -> list[str]:
        value = self.changes.get("masked")
        return [str(v) for v in value] if isinstance(value, list) else []

    @property
    def count(self) -> int:
        value = self.changes.get("count")
        return value if isinstance(value, int) else 0

    @property
    def status(self) -> int | None:
        value = self.changes.get("status")
        return value if isinstance(value, int) else None

    @property
    def error(self) -> str:
        return str(self.changes.get("error") or "")

    @property
    def ms(self) -> float | None:
        value = self.changes.get("ms")
        return float(value) if isinstance(value, int | float) else None

    @property
    def bytes(self) -> int:
        value = self.changes.get("bytes")
        return value if isinstance(value, int) else 0

    @property
    def linked(self) -> bool:
        """Whether the entry is in the hash chain yet (the chaining job links entries every few seconds)."""
        return self.entry.seq is not None

    @property
    def seq(self) -> int | None:
        return self.entry.seq


def call_rows(entries) -> list[CallRow]:
    """Rows for a page of entries: consumer unit names and item names in two queries."""
    entries = list(entries)
    units = dict(Unit.objects.filter(pk__in={e.unit_id for e in entries if e.unit_id}).values_list("pk", "name"))
    codes = {e.object_id for e in entries}
    names: dict[tuple[str, str], str] = {}
    for code, item, name in (
        DataItem.objects.filter(entry__code__in=codes)
        .order_by("entry__version")
        .values_list("entry__code", "code", "name")
    ):
        names[(code, item)] = name  # the latest version's name wins
    rows = []
    for entry in entries:
        changes = entry.changes if isinstance(entry.changes, dict) else {}
        items = changes.get("items") if isinstance(changes.get("items"), list) else []
        rows.append(
            CallRow(
                entry=entry,
                unit_name=units.get(entry.unit_id, ""),
                item_names=[names.get((entry.object_id, str(code)), str(code)) for code in items],
            )
        )
    return rows


# --- choices for the filter ---------------------------------------------------------------------


def resource_choices(user) -> list[tuple[str, str]]:
    """(code, "name（code）") of the resources whose calls ``user`` may filter by."""
    entries = CatalogEntry.objects.order_by("code", "-version")
    if not sees_all(user):
        units = _own_units(user)
        granted = Grant.objects.filter(unit_id__in=units).values_list("resource_code", flat=True)
        entries = entries.filter(Q(provider_id__in=units) | Q(code__in=granted))
    seen: dict[str, str] = {}
    for code, name in entries.values_list("code", "name"):
        seen.setdefault(code, name)
    return [(code, f"{name}（{code}）") for code, name in seen.items()]


def system_choices(user) -> list[tuple[int, str]]:
    """Consumer systems whose calls ``user`` may filter by: all, or those of its units and of
    the units holding grants on its resources."""
    systems = ConsumerSystem.objects.select_related("unit").order_by("unit__path", "name")
    if not sees_all(user):
        units = _own_units(user)
        granted = Grant.objects.filter(provider_id__in=units).values_list("system_id", flat=True)
        systems = systems.filter(Q(unit_id__in=units) | Q(pk__in=granted))
    return [(s.pk, f"{s.name}（{s.unit.name}）") for s in systems]


# --- CSV ----------------------------------------------------------------------------------------


def csv_headers() -> list[str]:
    return [
        _("时间"),
        _("结果"),
        _("状态码"),
        _("错误码"),
        _("资源代码"),
        _("资源名称"),
        _("业务系统"),
        _("使用单位"),
        _("密钥"),
        _("用途"),
        _("查询标识"),
        _("信息项"),
        _("脱敏信息项"),
        _("记录数"),
        _("耗时（毫秒）"),
        _("字节数"),
        _("审计链序号"),
    ]


class _Echo:
    def write(self, value):
        return value


def calls_csv(entries: QuerySet[AuditEntry], *, chunk: int = 1000) -> Iterator[str]:
    """The calls as CSV lines (UTF-8 with a BOM for Excel), read in chunks so any size streams."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(csv_headers())
    tz = timezone.get_current_timezone()
    batch: list[AuditEntry] = []
    for entry in entries.iterator(chunk_size=chunk):
        batch.append(entry)
        if len(batch) >= chunk:
            yield from _csv_lines(writer, call_rows(batch), tz)
            batch = []
    if batch:
        yield from _csv_lines(writer, call_rows(batch), tz)


def _csv_lines(writer, rows: list[CallRow], tz) -> Iterator[str]:
    for row in rows:
        values = [
            row.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
            row.outcome_label,
            row.status if row.status is not None else "",
            row.error,
            row.resource_code,
            row.resource_name,
            row.system_name,
            row.unit_name,
            row.key,
            row.purpose,
            row.record,
            "、".join(row.item_names),
            "、".join(row.masked),
            row.count,
            row.ms if row.ms is not None else "",
            row.bytes,
            row.seq if row.seq is not None else "",
        ]
        yield writer.writerow([text_cell(value) for value in values])
