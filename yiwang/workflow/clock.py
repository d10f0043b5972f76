"""Working-day clocks of cases and tasks: due dates, states, and pauses.

Everything is counted with ``yiwang.core.calendar``; the day a case or task is received does
not count. "Due soon" means at most one working day is left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from django.utils import timezone

from yiwang.core.calendar import add_working_days, is_working_day, working_days_between

ON_TIME, DUE_SOON, OVERDUE, NO_LIMIT = "on_time", "due_soon", "overdue", "none"


def today() -> dt.date:
    return timezone.localdate()


def due_after(start: dt.date, limit: int | None) -> dt.date | None:
    """The due date of a time limit of ``limit`` working days received on ``start``."""
    return add_working_days(start, limit) if limit else None


def task_due(start: dt.date, limit: int | None, case_due: dt.date | None) -> dt.date | None:
    """A task's due date: its step's own time limit, else the case's deadline (a task of a
    case that has a deadline is never without one)."""
    return due_after(start, limit) or case_due


def recount(start: dt.date, due: dt.date | None, previous: Mapping[dt.date, bool]) -> dt.date | None:
    """``due`` moved so that the clock from ``start`` keeps its number of working days after
    the calendar changed (``previous``: the changed days' old working status).

    Unchanged if the same number of working days still ends on ``due``."""
    if due is None or due <= start:
        return due
    days = working_days_between(start, due, known=previous)
    if working_days_between(start, due) == days and is_working_day(due) == is_working_day(due, known=previous):
        return due
    return add_working_days(start, days)


def soon_threshold(day: dt.date | None = None) -> dt.date:
    """Anything due on or before this date is due soon (or overdue) on ``day``."""
    return add_working_days(day or today(), 1)


def due_state(due: dt.date | None, *, today: dt.date | None = None, threshold: dt.date | None = None) -> str:
    """green / yellow / red: on time, due soon (≤ 1 working day left) or overdue."""
    if due is None:
        return NO_LIMIT
    day = today or timezone.localdate()
    if due < day:
        return OVERDUE
    if due <= (threshold or soon_threshold(day)):
        return DUE_SOON
    return ON_TIME


def paused_working_days(start: dt.datetime, end: dt.datetime) -> int:
    """Working days a suspension took: those after the day it began, up to the day it ended."""
    return max(0, working_days_between(timezone.localdate(start), timezone.localdate(end)))


def shift(due: dt.date | None, days: int) -> dt.date | None:
    """Move a due date ``days`` working days later (after a pause or an extension)."""
    if due is None or days <= 0:
        return due
    return add_working_days(due, days)
