"""What notify does when other modules speak: workflow's new tasks, reminders and overdue
escalations also go out as SMS.

Connected in ``NotifyConfig.ready``. The engine keeps its in-app notice; this adds a text to the
person's mobile, sent as the district under its SMS policy (the root unit's 短信策略): nothing
when sending is switched off there or the quota is spent, held until the quiet hours end, never
to a number that opted out. A failure is logged and the notice stays.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext as _

from . import services

logger = logging.getLogger(__name__)


def _text(person, body: str, reference: str) -> None:
    """Send ``body`` to ``person`` as the district, under its policy; a refusal leaves the notice."""
    unit = services.platform_sender_unit()
    if person is None or not person.mobile or unit is None:
        return
    try:
        services.message_send(unit=unit, mobile=person.mobile, body=body, module="workflow", reference=reference)
    except (ValidationError, PermissionDenied) as error:  # switched off, opted out, quota, bad number
        logger.info("流程短信未发送（%s）：%s", reference, "; ".join(getattr(error, "messages", [str(error)])))


def remind_by_sms(sender, case, task, overdue: bool = False, **kwargs) -> None:
    """Text the person who must act on ``task`` (its delegate if there is one)."""
    template = (
        _("您有一件待办已超期：%(title)s（%(step)s），期限 %(due)s，请尽快办理。")
        if overdue
        else _("您有一件待办即将到期：%(title)s（%(step)s），请于 %(due)s 前办理。")
    )
    body = template % {"title": task.title[:40], "step": task.step_name[:20], "due": task.due_date}
    _text(task.delegate or task.assignee, body, f"task-{task.pk}")


def task_created_by_sms(sender, case, task, **kwargs) -> None:
    """Text the person a new task was given to (not someone who handed it to themselves)."""
    from yiwang.workflow.services import task_recipient_id

    if task_recipient_id(task) is None:
        return
    if task.due_date:
        template = _("您有一件新待办：%(title)s（%(step)s），请于 %(due)s 前办理。")
    else:
        template = _("您有一件新待办：%(title)s（%(step)s），请及时办理。")
    body = template % {"title": task.title[:40], "step": task.step_name[:20], "due": task.due_date}
    _text(task.delegate or task.assignee, body, f"task-{task.pk}")


def escalate_by_sms(sender, case, **kwargs) -> None:
    """``case_overdue``: text the leaders the engine escalates the case to (its notice names the step)."""
    from yiwang.workflow.services import escalation_leaders

    body = _("督办提醒：%(title)s 已超过办理期限 %(due)s，请督促办理。") % {
        "title": case.title[:40],
        "due": case.due_date,
    }
    for leader in escalation_leaders(case):
        _text(leader, body, f"case-{case.pk}")


def remind_overdue_by_sms(sender, case, task, **kwargs) -> None:
    remind_by_sms(sender, case=case, task=task, overdue=True)
