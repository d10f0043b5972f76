"""Workflow reminders also reach the person's mobile through notify (and only through it)."""

from __future__ import annotations

import pytest

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
    assert [t[0] for t in texts] == ["13800138009", "13800138009"]
    assert "即将到期" in texts[0][1] and "已超期" in texts[1][1] and texts[0][2] == "workflow"
    assert texts[0][1].startswith("【北仑区政府】")


def test_no_mobile_no_text(alice, carol, policy):
    save(code="t.sms2", steps=[{"name": "局长审批", "assignee": {"type": "initiator_leader"}, "time_limit": 1}])
    with at("2026-09-30"):
        workflow.case_start(process="t.sms2", initiator=alice, title="请示")
    with at("2026-10-12"):
        assert workflow.reminders_send()["overdue"] == 1
    assert not Message.objects.exists()
