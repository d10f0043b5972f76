"""Workflow's new tasks, reminders and overdue escalations also reach mobiles through notify (and only through it)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from yiwang.core.models import Notice
from yiwang.notify import services
from yiwang.notify.models import Message
from yiwang.workflow import services as workflow
from yiwang.workflow.tests.conftest import save
from yiwang.workflow.tests.test_clock import at

pytestmark = pytest.mark.django_db


def test_due_soon_and_overdue_reminders_are_texted(alice, carol, policy):
    carol.mobile = "13800138009"
    carol.save(update_fields=["mobile"])
    save(code="t.sms", steps=[{"name": "局长审批", "assignee": {"type": "initiator_leader"}, "time_limit": 3}])
    with at("2026-09-30"):
        workflow.case_start(process="t.sms", initiator=alice, title="请示购置电脑")
    with at("2026-10-09"):
        workflow.reminders_send()
        workflow.reminders_send()  # at most one a day
    with at("2026-10-12"):
        workflow.reminders_send()
    texts = list(Message.objects.order_by("id").values_list("mobile", "body", "module"))
    assert [t[0] for t in texts] == ["13800138009"] * 3  # the new task, due soon, overdue
    assert "新待办" in texts[0][1] and "2026-10-10 前办理" in texts[0][1]  # 3 working days (10 Oct is one)
    assert "即将到期" in texts[1][1] and "已超期" in texts[2][1] and texts[1][2] == "workflow"
    assert texts[1][1].startswith("【北仑区政府】")


def test_no_mobile_no_text(alice, carol, policy):
    save(code="t.sms2", steps=[{"name": "局长审批", "assignee": {"type": "initiator_leader"}, "time_limit": 1}])
    with at("2026-09-30"):
        workflow.case_start(process="t.sms2", initiator=alice, title="请示")
    with at("2026-10-12"):
        assert workflow.reminders_send()["overdue"] == 1
    assert not Message.objects.exists()


def test_a_new_task_is_texted_per_the_districts_policy(alice, carol, bob, policy):
    carol.mobile = "13800138009"
    carol.save(update_fields=["mobile"])
    save(code="t.new", steps=[{"name": "局长审批", "assignee": {"type": "initiator_leader"}}])
    with at("2026-09-30"):
        case = workflow.case_start(process="t.new", initiator=alice, title="请示购置电脑")
    message = Message.objects.get()
    assert (message.mobile, message.reference, message.module) == (
        "13800138009",
        f"task-{case.tasks.get().pk}",
        "workflow",
    )
    assert "您有一件新待办：请示购置电脑（局长审批），请及时办理。" in message.body
    # the district switched sending off: the notice still arrives, no text
    services.policy_save(actor=None, unit=None, enabled=False)
    with at("2026-09-30", 11):
        workflow.task_transfer(task=case.tasks.get(), actor=carol, to_user=bob, comment="请李波办理")
    assert Message.objects.count() == 1
    assert Notice.objects.filter(recipient_id=bob.pk, title__startswith="【新待办】请示购置电脑").exists()


def test_a_new_task_is_held_until_the_quiet_hours_end(alice, carol, policy):
    carol.mobile = "13800138009"
    carol.save(update_fields=["mobile"])
    services.policy_save(actor=None, unit=None, signature="北仑区政府", daily_quota=1000, per_minute=100000,
                         quiet_start=dt.time(22), quiet_end=dt.time(7))  # fmt: skip
    save(code="t.night", steps=[{"name": "局长审批", "assignee": {"type": "initiator_leader"}}])
    with at("2026-09-30", 23):
        workflow.case_start(process="t.night", initiator=alice, title="夜间请示")
    message = Message.objects.get()
    assert timezone.localtime(message.not_before).time() == dt.time(7)


def test_an_overdue_case_is_texted_to_the_units_leader(alice, carol, bob, policy):
    carol.mobile = "13800138009"
    carol.save(update_fields=["mobile"])
    save(code="t.late", limit=1, steps=[{"name": "办理", "assignee": {"type": "person", "usernames": [bob.username]}}])
    with at("2026-09-30"):
        case = workflow.case_start(process="t.late", initiator=alice, title="逾期件")
    with at("2026-10-12"):
        assert workflow.reminders_send()["cases_overdue"] == 1
    text = Message.objects.get(mobile="13800138009")
    assert text.reference == f"case-{case.pk}" and "督办提醒：逾期件 已超过办理期限" in text.body
