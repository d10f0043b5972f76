"""Demo processes and cases, built with the workflow services (idempotent).

Three processes (a general request, an outgoing document, an IT project review) and a
handful of cases in different states, so the inbox, the badge and the timeline have
something to show right after ``bin/demo``.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from yiwang.core.calendar import add_working_days
from yiwang.org.models import Unit, User

from . import services
from .models import Case, ProcessDefinition, Task

PROCESSES = [
    {
        "code": "general.request",
        "name": "请示报告审批",
        "module": "workflow",
        "description": "各单位向上级请示事项；金额超过 50 万元的须报区长审批",
        "case_time_limit": 10,
        "steps": [
            {"key": "unit_leader", "name": "单位领导审核", "kind": "any_one",
             "assignee": {"type": "initiator_leader"}, "time_limit": 2},
            {"key": "deputy", "name": "分管区领导审批", "kind": "single",
             "assignee": {"type": "person", "usernames": ["leader"]}, "time_limit": 3},
            {"key": "mayor", "name": "区长审批", "kind": "single",
             "assignee": {"type": "person", "usernames": ["mayor"]}, "time_limit": 3,
             "condition": {"field": "amount", "op": "gt", "value": 500000}},
        ],
    },
    {
        "code": "oa.outgoing",
        "name": "发文审批",
        "module": "oa",
        "description": "拟稿 → 办公室核稿 → 相关部门会签 → 主要领导签发",
        "case_time_limit": 8,
        "steps": [
            {"key": "check", "name": "办公室核稿", "kind": "single",
             "assignee": {"type": "lead_unit", "role": "unit_admin"}, "time_limit": 1},
            {"key": "countersign", "name": "财政、发改会签", "kind": "countersign",
             "assignee": {"type": "person", "usernames": ["fin_head", "ndrc_head"]}, "time_limit": 3},
            {"key": "sign", "name": "主要领导签发", "kind": "single",
             "assignee": {"type": "initiator_leader", "rank": "principal"}, "time_limit": 2},
        ],
    },
    {
        "code": "projects.review",
        "name": "信息化项目审核",
        "module": "projects",
        "description": "电子政务办初审，财政、发改联合审核；预算超过 100 万元报分管区领导",
        "case_time_limit": 20,
        "steps": [
            {"key": "egov", "name": "电子政务办初审", "kind": "single",
             "assignee": {"type": "role", "unit": "BL-EGOV", "role": "egov_office"}, "time_limit": 5},
            {"key": "joint", "name": "财政、发改联合审核", "kind": "countersign",
             "assignee": {"type": "person", "usernames": ["fin_head", "ndrc_head"]}, "time_limit": 5},
            {"key": "deputy", "name": "分管区领导审批", "kind": "single",
             "assignee": {"type": "person", "usernames": ["leader"]}, "time_limit": 5,
             "condition": {"field": "budget", "op": "gt", "value": 1000000}},
        ],
    },
]  # fmt: skip

# initiator, process, title, fields, how many steps to approve, days to backdate
CASES = [
    ("staff", "general.request", "关于购置教学用计算机的请示", {"amount": 380000}, 0, 0),
    ("staff", "general.request", "关于举办全区中小学信息化培训的请示", {"amount": 60000}, 0, 3),
    ("staff", "general.request", "关于新建智慧校园平台的请示", {"amount": 1200000}, 1, 0),
    ("edu_staff2", "oa.outgoing", "关于做好 2027 年春季开学工作的通知", {}, 0, 0),
    ("edu_staff2", "oa.outgoing", "关于开展校园安全大检查的通知", {}, 1, 1),
    ("itc", "projects.review", "区政务云扩容项目", {"budget": 2600000}, 0, 0),
    ("staff", "general.request", "关于更换办公室打印机的请示", {"amount": 8000}, 2, 0),
]


def _backdate(case: Case, days: int) -> None:
    """Move a demo case into the past so the inbox shows due-soon and overdue colours."""
    if not days:
        return
    today = timezone.localdate()
    start = add_working_days(today, -days)
    delta = timezone.now() - timezone.make_aware(dt.datetime.combine(start, dt.time(9)))
    Case.objects.filter(pk=case.pk).update(
        started_at=case.started_at - delta,
        submitted_at=case.submitted_at - delta,
        due_date=add_working_days(start, case.definition.case_time_limit or 0),
    )
    for task in case.tasks.filter(status=Task.Status.OPEN):
        step = case.definition.steps[task.step_index] if task.step_index >= 0 else {}
        limit = step.get("time_limit")
        Task.objects.filter(pk=task.pk).update(
            created_at=task.created_at - delta, due_date=add_working_days(start, limit) if limit else None
        )


@transaction.atomic
def load() -> dict[str, int]:
    """Create the demo processes and cases that are missing."""
    if not Unit.objects.filter(code="BL").exists():
        return {"流程": 0, "办件": 0}
    created_processes = created_cases = 0
    existing = set(ProcessDefinition.objects.values_list("code", flat=True))
    for process in PROCESSES:
        if process["code"] not in existing:
            services.definition_save(actor=None, **process)
            created_processes += 1
    people = {u.username: u for u in User.objects.filter(username__in={c[0] for c in CASES} | {"edu_head"})}
    titles = set(Case.objects.values_list("title", flat=True))
    for username, code, title, fields, approvals, backdate in CASES:
        if title in titles or username not in people:
            continue
        case = services.case_start(process=code, initiator=people[username], title=title, fields=fields)
        for _ in range(approvals):
            task = case.tasks.filter(status=Task.Status.OPEN).select_related("assignee").first()
            if task is None:
                break
            services.task_approve(task=task, actor=task.assignee, comment="同意。")
        _backdate(case, backdate)
        created_cases += 1
    return {"流程": created_processes, "办件": created_cases}
