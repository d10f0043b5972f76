"""Working days on the Chinese calendar: holidays and make-up working days (调休).

The ``chinese-calendar`` package carries the State Council's notices up to the year it was
released. A platform admin can enter later years (or corrections) as ``CalendarOverride``
rows; for a year neither knows, Monday–Friday are working days and a warning is logged.
Every time limit in yiwang is counted here, nowhere else.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from functools import lru_cache

import chinese_calendar
from chinese_calendar import constants as _package
from django.dispatch import Signal

logger = logging.getLogger(__name__)
_warned_years: set[int] = set()

# The years the installed chinese-calendar package carries the State Council's notice for.
PACKAGE_YEARS = range(min(_package.holidays).year, max(_package.holidays).year + 1)

# Sent by ``core.calendar_services.calendar_year_save`` inside its transaction, after a year's
# notice was entered or corrected: ``year`` and ``previous`` ({day: was it a working day} for
# every day of that year before the change). Modules that keep deadlines (workflow) recount them.
calendar_changed = Signal()


@lru_cache(maxsize=2)
def _overrides_for(bucket: int) -> dict[dt.date, bool]:
    from .models import CalendarOverride

    return dict(CalendarOverride.objects.values_list("day", "is_working_day"))


def _overrides() -> dict[dt.date, bool]:
    # Re-read at most every five minutes, so every process sees an admin's edit soon.
    return _overrides_for(int(time.monotonic() // 300))


def clear_cache() -> None:
    """Forget cached overrides (called when an admin edits them)."""
    _overrides_for.cache_clear()


def override_years() -> set[int]:
    """Years with at least one ``CalendarOverride`` row (a notice entered by an admin)."""
    return {day.year for day in _overrides()}


def is_year_covered(year: int) -> bool:
    """Whether the holidays of ``year`` are known (the package's range or an entered notice)."""
    return year in PACKAGE_YEARS or year in override_years()


def covered_years() -> list[int]:
    return sorted(set(PACKAGE_YEARS) | override_years())


def special_days(year: int) -> list[tuple[dt.date, bool, str, str]]:
    """The days of ``year`` that differ from Monday–Friday or carry a holiday name:
    ``(day, is_working_day, name, source)``, source ``"package"`` or ``"override"``."""
    from .models import CalendarOverride

    days: dict[dt.date, tuple[bool, str, str]] = {}
    if year in PACKAGE_YEARS:
        for day, name in _package.holidays.items():
            if day.year == year:
                days[day] = (False, _package_name(name), "package")
        for day, name in _package.workdays.items():
            if day.year == year:
                days[day] = (True, _package_name(name), "package")
    for day, working, name in CalendarOverride.objects.filter(day__year=year).values_list(
        "day", "is_working_day", "name"
    ):
        days[day] = (working, name, "override")
    return [(day, *days[day]) for day in sorted(days)]


def _package_name(value: str) -> str:
    for holiday in _package.Holiday:
        if holiday.value == value:
            return holiday.chinese
    return value


def is_working_day(day: dt.date, *, known: Mapping[dt.date, bool] | None = None) -> bool:
    """Whether ``day`` is a working day (调休 Saturdays included, holidays excluded).

    ``known`` answers first for the days it holds, e.g. a year's calendar before an edit."""
    if isinstance(day, dt.datetime):
        day = day.date()
    if known is not None and day in known:
        return known[day]
    overrides = _overrides()
    if day in overrides:
        return overrides[day]
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        if day.year not in _warned_years:
            _warned_years.add(day.year)
            logger.warning("%s 年节假日安排未录入，暂按周一至周五计算工作日", day.year)
        return day.weekday() < 5


def add_working_days(start: dt.date, days: int) -> dt.date:
    """The date ``days`` working days after ``start`` (before it, if negative).

    ``add_working_days(d, 0)`` is ``d`` itself if it is a working day, else the next one.
    A time limit of N working days for a case received on day D ends on
    ``add_working_days(D, N)``: the day of receipt does not count.
    """
    if isinstance(start, dt.datetime):
        start = start.date()
    step = 1 if days >= 0 else -1
    current = start
    if days == 0:
        while not is_working_day(current):
            current += dt.timedelta(days=1)
        return current
    remaining = abs(days)
    while remaining:
        current += dt.timedelta(days=step)
        if is_working_day(current):
            remaining -= 1
    return current


def working_days_between(start: dt.date, end: dt.date, *, known: Mapping[dt.date, bool] | None = None) -> int:
    """Working days after ``start`` up to and including ``end`` (negative if end < start).

    Inverse of ``add_working_days``: ``working_days_between(d, add_working_days(d, n)) == n``.
    ``known`` as for ``is_working_day`` (to count with the calendar as it was before an edit).
    """
    if isinstance(start, dt.datetime):
        start = start.date()
    if isinstance(end, dt.datetime):
        end = end.date()
    if end < start:
        return -working_days_between(end, start, known=known)
    count, current = 0, start
    while current < end:
        current += dt.timedelta(days=1)
        if is_working_day(current, known=known):
            count += 1
    return count


# From this day of the year on, platform admins are told while next year's notice is missing
# (the State Council usually publishes it in late October or November).
REMINDER_FROM = (11, 1)


def missing_next_year(today: dt.date | None = None) -> int | None:
    """Next year, if it is 1 November or later and next year's holidays are not known yet."""
    from django.utils import timezone

    today = today or timezone.localdate()
    if (today.month, today.day) < REMINDER_FROM:
        return None
    year = today.year + 1
    return None if is_year_covered(year) else year
