"""Workflow tells people: a notice when a task is given to them, and an overdue case is escalated
to the leaders of the unit that handles it (超期督办). SMS is notify's part (notify/tests)."""

from __future__ import annotations

import pytest

from conftest import make_person
from yiwang.core.models import Notice
from yiwang.workflow import services
from yiwang.workflow.tests.conftest import save
from yiwang.workflow.tests.test_clock import at

pytestmark = pytest.mark.django_db


def _titles(person) -> list[str]:
    return list(Notice.objects.filter(recipient_id=person.pk).order_by("id").values_list("title", flat=True))


def test_a_new_task_leaves_a_notice_with_its_deadline(alice, carol, simple):
    with at("2026-09-30"):
        case = services.case_start(process="test.simple", initiator=alice, title="请示购置电脑")
    notice = Notice.objects.get(recipient_id=carol.pk)
    assert notice.title == "【新待办】请示购置电脑（局长审批），请于 2026-10-10 前办理"
    assert notice.url == f"/workflow/cases/{case.pk}/" and notice.module == "workflow"
    assert _titles(alice) == []


def test_transfer_delegate_countersign_and_return_each_tell_the_new_holder(alice, carol, bob, frank, dave, chain):
    case = services.case_start(process="test.chain", initiator=alice, title="采购", fields={"amount": 5})
    task = case.tasks.get()
    services.task_delegate(task=task, actor=carol, to_user=dave, comment="请代为审核")
    assert _titles(dave) == [f"【新待办】采购（局长审核），请于 {task.due_date} 前办理"]
    services.task_approve(task=task, actor=dave)
    assert [t.split("（")[1][:4] for t in _titles(bob) + _titles(frank)] == ["财政会签", "财政会签"]
    bob_task = case.tasks.get(assignee=bob, status="open")
    services.task_return(task=bob_task, actor=bob, to_step=-1, comment="请补充报价单")
    assert _titles(alice)[-1].startswith("【新待办】采购（退回起草人修改）")


def test_no_notice_for_a_task_someone_gives_themselves(alice):
    save(code="t.self", steps=[{"name": "自行办理", "assignee": {"type": "person", "usernames": ["alice"]}}])
    case = services.case_start(process="t.self", initiator=alice, title="自办件")
    assert case.tasks.get().assignee == alice
    assert _titles(alice) == []


def test_an_overdue_case_is_escalated_to_the_principal_leader_once(alice, carol, bob, dave):
    save(code="t.late", limit=1, steps=[{"name": "财政办理", "assignee": {"type": "person", "usernames": ["bob"]}}])
    with at("2026-09-30"):
        case = services.case_start(process="t.late", initiator=alice, title="逾期件")
    with at("2026-10-12"):
        assert services.reminders_send()["cases_overdue"] == 1
        assert services.reminders_send()["cases_overdue"] == 0
    assert _titles(carol) == ["【超期督办】逾期件 已超过办理期限 2026-10-08，停在“财政办理”（李波）"]
    assert Notice.objects.get(recipient_id=carol.pk).url == f"/workflow/cases/{case.pk}/"
    assert _titles(dave) == []  # the deputy only when the unit has no principal leader


def test_escalation_goes_to_the_lead_unit_else_to_any_leader(alice, units, roles, bob):
    deputy = make_person("gina", "孙娜", units["fin"], roles["leader"], title="副局长", leader_rank="deputy")
    save(code="t.lead", limit=1, steps=[{"name": "办理", "assignee": {"type": "person", "usernames": ["bob"]}}])
    with at("2026-09-30"):
        case = services.case_start(process="t.lead", initiator=alice, title="协办件", lead_unit=units["fin"])
    assert services.escalation_leaders(case) == [deputy]
    with at("2026-10-12"):
        services.reminders_send()
    assert _titles(deputy)[-1].startswith("【超期督办】协办件")
