"""What notify does when other modules speak: workflow reminders also go out as SMS.

Connected in ``NotifyConfig.ready``. The engine keeps its in-app notice; this adds a text to the
person's mobile, sent as the district (the root unit's policy and quota), never in quiet hours.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext as _

from . import services

logger = logging.getLogger(__name__)


def remind_by_sms(sender, case, task, overdue: bool = False, **kwargs) -> None:
    """Text the person who must act on ``task`` (its delegate if there is one)."""
    person = task.delegate or task.assignee
    unit = services.platform_sender_unit()
    if not person.mobile or unit is None:
        return
    template = (
        _("您有一件待办已超期：%(title)s（%(step)s），期限 %(due)s，请尽快办理。")
        if overdue
        else _("您有一件待办即将到期：%(title)s（%(step)s），请于 %(due)s 前办理。")
    )
    body = template % {"title": task.title[:40], "step": task.step_name[:20], "due": task.due_date}
    try:
        services.message_send(unit=unit, mobile=person.mobile, body=body, module="workflow",
                              reference=f"task-{task.pk}")  # fmt: skip
    except (ValidationError, PermissionDenied) as error:  # opted out, quota, bad number: the notice stays
        logger.info("待办提醒短信未发送（任务 %s）：%s", task.pk, "; ".join(getattr(error, "messages", [str(error)])))


def remind_overdue_by_sms(sender, case, task, **kwargs) -> None:
    remind_by_sms(sender, case=case, task=task, overdue=True)
