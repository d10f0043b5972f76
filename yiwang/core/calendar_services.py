"""Entering a year's holiday arrangement (国务院办公厅关于某年部分节假日安排的通知).

A platform admin types the notice as rows of (date range, 放假/调休上班, name). Saving replaces
that year's ``CalendarOverride`` rows, is audited, and sends ``calendar.calendar_changed`` so
that modules keeping deadlines (workflow) recount the open ones in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from . import calendar
from .audit import audit_record
from .models import CalendarOverride
from .validators import validate_visible_text

MIN_YEAR, MAX_YEAR = 2000, 2100
MAX_RANGE_DAYS = 31  # the longest holiday block of any notice is 9 days; a month is a typo guard


@dataclass(frozen=True)
class NoticeRow:
    start: dt.date
    end: dt.date | None
    is_working_day: bool
    name: str


def _fmt(day: dt.date) -> str:
    return _("%(m)s月%(d)s日") % {"m": day.month, "d": day.day}


def notice_days(year: int, rows: list[NoticeRow]) -> dict[dt.date, tuple[bool, str]]:
    """Check a notice's rows and expand them to ``{day: (is_working_day, name)}``.

    Raises ``ValidationError`` with every problem found (Chinese messages)."""
    errors: list[str] = []
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValidationError(_("年份应在 %(a)s–%(b)s 之间。") % {"a": MIN_YEAR, "b": MAX_YEAR})
    if not rows:
        raise ValidationError(_("请至少填写一行放假安排。"))
    days: dict[dt.date, tuple[bool, str]] = {}
    for number, row in enumerate(rows, start=1):
        where = _("第 %(n)s 行：") % {"n": number}
        end = row.end or row.start
        name = (row.name or "").strip()
        if not name:
            errors.append(where + _("请填写名称（如“春节”“春节调休上班”）。"))
        elif len(name) > 64:
            errors.append(where + _("名称不能超过 64 个字。"))
        else:
            try:
                validate_visible_text(name)
            except ValidationError as exc:
                errors.append(where + " ".join(exc.messages))
        if row.start.year != year or end.year != year:
            errors.append(where + _("日期必须在 %(year)s 年内。") % {"year": year})
            continue
        if end < row.start:
            errors.append(where + _("结束日期不能早于开始日期。"))
            continue
        if (end - row.start).days + 1 > MAX_RANGE_DAYS:
            errors.append(where + _("一行最多 %(n)s 天，请检查日期。") % {"n": MAX_RANGE_DAYS})
            continue
        day = row.start
        while day <= end:
            if row.is_working_day and day.weekday() < 5:
                errors.append(
                    where + _("%(day)s 是周一至周五，本来就上班；调休上班日只能是周六或周日。") % {"day": _fmt(day)}
                )
            if day in days:
                if days[day][0] != row.is_working_day:
                    errors.append(where + _("%(day)s 不能既放假又调休上班。") % {"day": _fmt(day)})
                else:
                    errors.append(where + _("%(day)s 与前面的行重复。") % {"day": _fmt(day)})
            else:
                days[day] = (row.is_working_day, name)
            day += dt.timedelta(days=1)
    if not errors and not any(not working for working, _name in days.values()):
        errors.append(_("至少要有一个放假日。"))
    if errors:
        raise ValidationError(errors)
    return days


def _summary(days: dict[dt.date, tuple[bool, str]], working: bool) -> str:
    return "、".join(f"{day.isoformat()} {name}" for day, (w, name) in sorted(days.items()) if w == working)


@transaction.atomic
def calendar_year_save(*, actor, year: int, rows: list[NoticeRow]) -> int:
    """Replace ``year``'s holidays and make-up working days with the notice's (platform admins).

    Returns the number of days saved. Open deadlines running into ``year`` are recounted by the
    receivers of ``calendar_changed`` in the same transaction."""
    if actor is None or not getattr(actor, "is_platform_admin", False):
        raise PermissionDenied(_("只有平台管理员可以维护节假日安排。"))
    days = notice_days(year, rows)
    calendar.clear_cache()
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    year_days = (first + dt.timedelta(days=i) for i in range((last - first).days + 1))
    previous = {day: calendar.is_working_day(day) for day in year_days}
    existing = CalendarOverride.objects.filter(day__year=year)
    old = {day: (working, name) for day, working, name in existing.values_list("day", "is_working_day", "name")}
    try:
        existing.delete()
        CalendarOverride.objects.bulk_create(
            CalendarOverride(day=day, is_working_day=working, name=name) for day, (working, name) in days.items()
        )
        calendar.clear_cache()
        audit_record(
            actor=actor,
            action="core.calendar.year_save",
            object_type="core.calendaroverride",
            object_id=str(year),
            object_repr=_("%(year)s 年节假日安排") % {"year": year},
            changes={
                "holidays": [_summary(old, False) or None, _summary(days, False)],
                "workdays": [_summary(old, True) or None, _summary(days, True)],
            },
        )
        calendar.calendar_changed.send(sender=CalendarOverride, year=year, previous=previous, actor=actor)
    except BaseException:
        calendar.clear_cache()  # never keep a rolled-back calendar in this process
        raise
    transaction.on_commit(calendar.clear_cache)
    return len(days)
