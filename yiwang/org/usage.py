"""Who uses which module (应用是它的生命): the reads of core's usage metering.

Metering (``core.metering``) writes one ``UsageDaily`` row per (day, unit, user, module) with
the number of requests. These selectors are the ONE way to read it — the usage page, its API,
project performance evaluation and the annual assessment all call them — and they live in org
because figures are per unit and per person, and people are told apart from consumer systems
(an API key's calls are counted under its system's service account).

Every selector is scoped like a list page (``user.visible_unit_ids()``): a unit admin sees the
units below them, staff their own unit, platform-wide roles everything. Periods are inclusive
dates in the platform's time zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet, Sum
from django.utils.translation import gettext as _

from yiwang.core.models import UsageDaily
from yiwang.core.modules import all_modules
from yiwang.core.permissions import ALL

from .models import ConsumerSystem, Unit

MAX_DAYS = 400  # one year and a little: longer periods are for exports, not for a page


@dataclass(frozen=True)
class ModuleUsage:
    module: str
    name: str
    active_users: int  # distinct people with at least one action in the period
    actions: int  # requests by people (consumer systems are counted in system_usage)
    active_units: int


@dataclass(frozen=True)
class UnitUsage:
    unit_id: int
    unit_name: str
    module: str
    active_users: int
    actions: int


@dataclass(frozen=True)
class DayUsage:
    day: dt.date
    active_users: int
    actions: int


@dataclass(frozen=True)
class SystemUsage:
    system_id: int
    name: str
    unit_name: str
    calls: int
    active_days: int


def module_names() -> dict[str, str]:
    """Code → Chinese name of every registered module (built or planned)."""
    return {m.code: str(m.name) for m in all_modules()}


def _rows(*, user, start: dt.date, end: dt.date, module: str = "", unit_id: int | None = None) -> QuerySet:
    rows = UsageDaily.objects.filter(day__gte=start, day__lte=end)
    visible = user.visible_unit_ids() if user is not None and user.is_authenticated else frozenset()
    if visible is not ALL:
        rows = rows.filter(unit_id__in=visible)
    if module:
        rows = rows.filter(module=module)
    if unit_id:
        rows = rows.filter(unit_id=unit_id)
    return rows


def _people(rows: QuerySet) -> QuerySet:
    return rows.exclude(user_id__in=ConsumerSystem.objects.values("account_id")).exclude(user_id=0)


def module_usage(*, user, start: dt.date, end: dt.date, unit_id: int | None = None) -> list[ModuleUsage]:
    """Per module: active people, their actions and the units they act for; most used first."""
    names = module_names()
    figures = (
        _people(_rows(user=user, start=start, end=end, unit_id=unit_id))
        .values("module")
        .annotate(users=Count("user_id", distinct=True), actions=Sum("hits"), units=Count("unit_id", distinct=True))
    )
    result = [
        ModuleUsage(f["module"], names.get(f["module"], f["module"]), f["users"], f["actions"], f["units"])
        for f in figures
    ]
    return sorted(result, key=lambda m: (-m.actions, m.module))


def unit_usage(*, user, start: dt.date, end: dt.date, module: str = "") -> list[UnitUsage]:
    """Per (unit, module): active people and their actions; most used first."""
    figures = list(
        _people(_rows(user=user, start=start, end=end, module=module))
        .values("unit_id", "module")
        .annotate(users=Count("user_id", distinct=True), actions=Sum("hits"))
    )
    names = dict(Unit.objects.filter(pk__in={f["unit_id"] for f in figures}).values_list("pk", "name"))
    result = [
        UnitUsage(f["unit_id"], names.get(f["unit_id"], "—"), f["module"], f["users"], f["actions"]) for f in figures
    ]
    return sorted(result, key=lambda u: (-u.actions, u.unit_name, u.module))


def daily_usage(*, user, start: dt.date, end: dt.date, module: str = "", unit_id: int | None = None) -> list[DayUsage]:
    """The trend: one row per day of the period (days without use give zeros)."""
    figures = {
        f["day"]: f
        for f in _people(_rows(user=user, start=start, end=end, module=module, unit_id=unit_id))
        .values("day")
        .annotate(users=Count("user_id", distinct=True), actions=Sum("hits"))
    }
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    return [
        DayUsage(day, figures[day]["users"] if day in figures else 0, figures[day]["actions"] if day in figures else 0)
        for day in days
    ]


def idle_units(*, user, module: str, start: dt.date, end: dt.date) -> list[Unit]:
    """Active units the user may see where nobody used ``module`` in the period (少人问津)."""
    used = _people(_rows(user=user, start=start, end=end, module=module)).values("unit_id")
    units = Unit.objects.filter(status=Unit.Status.ACTIVE).exclude(pk__in=used)
    visible = user.visible_unit_ids()
    if visible is not ALL:
        units = units.filter(pk__in=visible)
    return list(units.order_by("path"))


def system_usage(*, user, start: dt.date, end: dt.date) -> list[SystemUsage]:
    """API calls per consumer system (its key's calls are metered under its service account)."""
    systems = ConsumerSystem.objects.select_related("unit")
    visible = user.visible_unit_ids()
    if visible is not ALL:
        systems = systems.filter(unit_id__in=visible)
    by_account = {s.account_id: s for s in systems}
    figures = (
        UsageDaily.objects.filter(day__gte=start, day__lte=end, user_id__in=list(by_account))
        .values("user_id")
        .annotate(calls=Sum("hits"), days=Count("day", distinct=True))
    )
    result = [
        SystemUsage(by_account[f["user_id"]].pk, by_account[f["user_id"]].name, by_account[f["user_id"]].unit.name,
                    f["calls"], f["days"])
        for f in figures
    ]  # fmt: skip
    return sorted(result, key=lambda s: (-s.calls, s.name))


def period_check(start: dt.date, end: dt.date) -> None:
    """Refuse a period that ends before it starts or is longer than ``MAX_DAYS``."""
    if end < start:
        raise ValidationError(_("结束日期不能早于开始日期。"), code="period")
    if (end - start).days + 1 > MAX_DAYS:
        raise ValidationError(_("统计区间最长 %(days)s 天。") % {"days": MAX_DAYS}, code="period")
