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
from functools import lru_cache

import chinese_calendar

logger = logging.getLogger(__name__)
_warned_years: set[int] = set()


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


def is_working_day(day: dt.date) -> bool:
    """Whether ``day`` is a working day (调休 Saturdays included, holidays excluded)."""
    if isinstance(day, dt.datetime):
        day = day.date()
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


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days after ``start`` up to and including ``end`` (negative if end < start).

    Inverse of ``add_working_days``: ``working_days_between(d, add_working_days(d, n)) == n``.
    """
    if isinstance(start, dt.datetime):
        start = start.date()
    if isinstance(end, dt.datetime):
        end = end.date()
    if end < start:
        return -working_days_between(end, start)
    count, current = 0, start
    while current < end:
        current += dt.timedelta(days=1)
        if is_working_day(current):
            count += 1
    return count
