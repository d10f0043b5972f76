"""Open deadlines are recounted when a year's holidays are entered (core.calendar_changed).

The 2027 arrangement here is made-up test data (1–3 January off, Saturday 9 January a make-up
working day), not the State Council's notice. Before it is entered, 2027 counts Monday–Friday.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine

from yiwang.core import calendar
from yiwang.core.calendar_services import NoticeRow, calendar_year_save
from yiwang.core.models import AuditEntry
from yiwang.workflow import clock, services
from yiwang.workflow.models import Action, Task

from .conftest import save

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")
D = dt.date.fromisoformat
NOTICE_2027 = [
    NoticeRow(D("2027-01-01"), D("2027-01-03"), False, "元旦（测试）"),
    NoticeRow(D("2027-01-09"), None, True, "调休上班（测试）"),
]


@pytest.fixture(autouse=True)
def _fresh_calendar():
    calendar.clear_cache()
    yield
    calendar.clear_cache()


def at(day: str, hour: int = 10):
    return time_machine.travel(dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=SHANGHAI), tick=False)


@pytest.fixture
def process(carol):
    return save(
        code="t.recount",
        steps=[{"name": "局长审批", "assignee": {"type": "initiator_leader"}, "time_limit": 3}],
        limit=8,
    )


def test_entering_a_year_recounts_open_deadlines(alice, admin, process):
    with at("2026-12-30"):  # Wednesday
        case = services.case_start(process="t.recount", initiator=alice, title="跨年请示")
        done = services.case_start(process="t.recount", initiator=alice, title="已办结")
    task = case.tasks.get()
    # Monday–Friday for 2027: Dec 31 (1), Fri Jan 1 (2), Mon Jan 4 (3) …
    assert task.due_date == D("2027-01-04") and case.due_date == D("2027-01-11")
    services.task_approve(task=done.tasks.get(), actor=done.tasks.get().assignee)
    done.refresh_from_db()
    finished_due = done.due_date

    with at("2026-12-31"):
        calendar_year_save(actor=admin, year=2027, rows=NOTICE_2027)

    task.refresh_from_db()
    case.refresh_from_db()
    # Dec 31 (1), Jan 4 (2), Jan 5 (3)
    assert task.due_date == D("2027-01-05")
    # Dec 31, Jan 4, 5, 6, 7, 8, Sat 9 (调休), Jan 11 = 8
    assert case.due_date == D("2027-01-11")
    assert clock.recount(D("2026-12-30"), D("2027-01-11"), {}) == D("2027-01-11")
    done.refresh_from_db()
    assert done.due_date == finished_due  # finished cases keep their history
    assert Task.objects.get(case=done).due_date == D("2027-01-04")
    audit = AuditEntry.objects.get(action="workflow.deadlines.recount")
    assert audit.changes["tasks"] == [None, 1] and audit.changes["cases"] == [None, 0]


def test_a_moved_case_deadline_is_in_its_history(alice, admin, carol):
    save(code="t.long", steps=[{"name": "审批", "assignee": {"type": "initiator_leader"}}], limit=2)
    with at("2026-12-30"):
        case = services.case_start(process="t.long", initiator=alice, title="请示")
    assert case.due_date == D("2027-01-01")  # Dec 31 (1), Fri Jan 1 (2) under Monday–Friday
    with at("2026-12-31"):
        calendar_year_save(actor=admin, year=2027, rows=NOTICE_2027)
    case.refresh_from_db()
    assert case.due_date == D("2027-01-04")
    # the step has no limit of its own: its task is due with the case, and moves with it
    assert case.tasks.get().due_date == D("2027-01-04")
    note = Action.objects.filter(case=case, kind=Action.Kind.COMMENT).latest("id")
    assert "2027 年节假日安排已录入" in note.comment and "2027-01-01" in note.comment and "2027-01-04" in note.comment


def test_clocks_outside_the_year_are_untouched(alice, admin, process):
    with at("2026-10-12"):
        case = services.case_start(process="t.recount", initiator=alice, title="年内办结")
    before = (case.due_date, case.tasks.get().due_date)
    calendar_year_save(actor=admin, year=2027, rows=NOTICE_2027)
    case.refresh_from_db()
    assert (case.due_date, case.tasks.get().due_date) == before
    assert not AuditEntry.objects.filter(action="workflow.deadlines.recount").exists()
