"""Clocks on the Chinese working-day calendar: holidays, 调休 Saturdays, suspensions, extensions, reminders.

National Day 2026: 1–7 October off; Sunday 20 September and Saturday 10 October are
make-up working days (调休).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError

from yiwang.core.models import Notice
from yiwang.workflow import clock, selectors, services, signals
from yiwang.workflow.models import Case, Extension, Task

from .conftest import save

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(day: str, hour: int = 10):
    return time_machine.travel(dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=SHANGHAI), tick=False)


@pytest.fixture
def three_days(carol):
    return save(
        code="t.clock",
        steps=[{"name": "局长审批", "assignee": {"type": "initiator_leader"}, "time_limit": 3}],
        limit=5,
    )


def start(alice):
    return services.case_start(process="t.clock", initiator=alice, title="请示")


class TestDueDates:
    def test_limit_skips_the_holiday_and_counts_the_make_up_saturday(self, alice, three_days):
        with at("2026-09-30"):
            case = start(alice)
        task = case.tasks.get()
        # Oct 1–7 are holidays; Oct 8 (Thu) = 1, Oct 9 (Fri) = 2, Oct 10 (调休 Sat) = 3.
        assert task.due_date == dt.date(2026, 10, 10)
        # the whole case: 5 working days → Oct 12 (Sun 11th is a rest day), 13th
        assert case.due_date == dt.date(2026, 10, 13)

    @pytest.mark.parametrize(
        ("today", "state"),
        [
            ("2026-10-08", clock.ON_TIME),  # two working days left
            ("2026-10-09", clock.DUE_SOON),  # the next working day is the 调休 Saturday: due
            ("2026-10-10", clock.DUE_SOON),  # due today
            ("2026-10-11", clock.OVERDUE),
        ],
    )
    def test_due_states(self, today, state):
        assert clock.due_state(dt.date(2026, 10, 10), today=dt.date.fromisoformat(today)) == state

    def test_no_limit(self):
        assert clock.due_state(None) == clock.NO_LIMIT

    def test_inbox_filters_by_due_state(self, alice, carol, three_days):
        with at("2026-09-30"):
            start(alice)
        with at("2026-10-09"):
            assert selectors.inbox(user=carol, due=clock.DUE_SOON).count() == 1
            assert selectors.inbox(user=carol, due=clock.OVERDUE).count() == 0
        with at("2026-10-12"):
            assert selectors.inbox(user=carol, due=clock.OVERDUE).count() == 1
            assert selectors.inbox(user=carol, due=clock.ON_TIME).count() == 0


class TestSuspension:
    def test_paused_working_days_move_the_deadlines(self, alice, carol, three_days):
        with at("2026-09-30"):
            case = start(alice)
        task = case.tasks.get()
        with at("2026-10-08"):
            services.case_suspend(case=case, actor=carol, reason="等待申请人补正材料")
        with at("2026-10-09"):
            with pytest.raises(ValidationError, match="挂起"):
                services.task_approve(task=task, actor=carol)
        with at("2026-10-12", hour=9):
            suspension = services.case_resume(case=case, actor=carol, reason="材料已补齐")
        # paused: Oct 9, Oct 10 (调休 Saturday) and Oct 12 — three working days
        assert suspension.working_days == 3
        task.refresh_from_db()
        case.refresh_from_db()
        assert task.due_date == dt.date(2026, 10, 14)  # Oct 10 + 3 working days (12, 13, 14)
        assert case.due_date == dt.date(2026, 10, 16)
        assert case.paused_days == 3 and not case.is_suspended
        services.task_approve(task=task, actor=carol)

    def test_only_a_current_handler_may_suspend(self, alice, bob, carol, three_days):
        case = start(alice)
        with pytest.raises(PermissionDenied):
            services.case_suspend(case=case, actor=bob, reason="x")
        with pytest.raises(ValidationError, match="挂起原因"):
            services.case_suspend(case=case, actor=carol, reason=" ")
        services.case_suspend(case=case, actor=carol, reason="等待")
        with pytest.raises(ValidationError, match="已处于挂起"):
            services.case_suspend(case=case, actor=carol, reason="再次")
        assert case.suspensions.count() == 1

    def test_resume_without_suspension(self, alice, carol, three_days):
        case = start(alice)
        with pytest.raises(ValidationError, match="没有挂起"):
            services.case_resume(case=case, actor=carol)


class TestExtension:
    def test_extension_needs_a_leaders_approval(self, alice, carol, dave, bob, frank, three_days):
        with at("2026-09-30"):
            case = start(alice)
        task = case.tasks.get(assignee=carol)
        with at("2026-10-08"):
            extension = services.extension_request(case=case, actor=carol, days=2, reason="需现场核查")
            with pytest.raises(ValidationError, match="审批中"):
                services.extension_request(case=case, actor=carol, days=1, reason="again")
        # carol's own unit leaders approve it (dave is also a leader of 区教育局)
        review = selectors.inbox(user=dave).get(case__definition__code=services.EXTENSION_PROCESS)
        task.refresh_from_db()
        assert task.due_date == dt.date(2026, 10, 10), "nothing moves before approval"
        with at("2026-10-08"):
            services.task_approve(task=review, actor=dave)
        extension.refresh_from_db()
        task.refresh_from_db()
        case.refresh_from_db()
        assert extension.status == Extension.Status.APPROVED
        assert task.due_date == dt.date(2026, 10, 13) and case.extended_days == 2

    def test_refused_extension_changes_nothing(self, alice, carol, dave, three_days):
        case = start(alice)
        due = case.tasks.get(assignee=carol).due_date
        extension = services.extension_request(case=case, actor=carol, days=5, reason="忙")
        review = selectors.inbox(user=dave).get(case__definition__code=services.EXTENSION_PROCESS)
        services.task_reject(task=review, actor=dave, comment="理由不充分")
        extension.refresh_from_db()
        assert extension.status == Extension.Status.REFUSED and case.tasks.get(assignee=carol).due_date == due

    @pytest.mark.parametrize("days", [0, 61, "x"])
    def test_bad_days(self, alice, carol, three_days, days):
        case = start(alice)
        with pytest.raises(ValidationError, match="1–60"):
            services.extension_request(case=case, actor=carol, days=days, reason="r")


class TestReminders:
    def test_at_most_one_reminder_per_task_per_day(self, alice, carol, three_days):
        with at("2026-09-30"):
            start(alice)
        with at("2026-10-08"):
            assert services.reminders_send()["due_soon"] == 0  # two working days left
        with at("2026-10-09", hour=9):
            assert services.reminders_send()["due_soon"] == 1
        with at("2026-10-09", hour=15):
            assert services.reminders_send()["due_soon"] == 0
        with at("2026-10-12"):
            sent = services.reminders_send()
        assert sent["overdue"] == 1
        notices = list(Notice.objects.filter(recipient_id=carol.pk).values_list("title", flat=True))
        assert len(notices) == 3 and notices[0].startswith("【超期】")  # overdue, due soon, the new task
        assert notices[1].startswith("【即将到期】") and notices[2].startswith("【新待办】")

    def test_overdue_signal_and_case_overdue_once(self, alice, carol, three_days):
        heard = []

        def on_case(sender, case, **kw):
            heard.append(case.pk)

        signals.case_overdue.connect(on_case)
        try:
            with at("2026-09-30"):
                case = start(alice)
            with at("2026-10-14"):
                services.reminders_send()
                services.reminders_send()
        finally:
            signals.case_overdue.disconnect(on_case)
        assert heard == [case.pk]

    def test_suspended_and_finished_tasks_are_not_reminded(self, alice, carol, three_days):
        with at("2026-09-30"):
            case = start(alice)
            services.case_suspend(case=case, actor=carol, reason="等待")
        with at("2026-10-12"):
            assert services.reminders_send() == {"due_soon": 0, "overdue": 0, "cases_overdue": 0}
        assert Task.objects.get().reminded_on is None
        assert Case.objects.get().is_suspended


def test_beat_runs_the_reminder_job(settings, alice, carol, three_days):
    from yiwang.workflow import tasks

    assert settings.CELERY_BEAT_SCHEDULE["workflow-reminders"]["task"] == tasks.send_reminders.name
    with at("2026-09-30"):
        start(alice)
    with at("2026-10-12"):
        assert tasks.send_reminders.apply().get() == {"due_soon": 0, "overdue": 1, "cases_overdue": 0}
