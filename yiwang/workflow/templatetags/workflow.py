"""Template helpers any module may use on its own pages: ``{% load workflow %}``.

``{% case_timeline case %}``  the case history (办理记录) with attachments;
``{% due_badge date %}``      a deadline coloured green / yellow (即将到期) / red (已超期).
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext as _

from yiwang.workflow import clock, selectors
from yiwang.workflow.models import Action

register = template.Library()

_REQUEST_CACHE = "_workflow_due_clock"


def due_clock(request=None) -> tuple[dt.date, dt.date]:
    """Today and the "due soon" threshold, computed once per request (the calendar is not free)."""
    cached = getattr(request, _REQUEST_CACHE, None) if request is not None else None
    if cached is None:
        today = clock.today()
        cached = (today, clock.soon_threshold(today))
        if request is not None:
            setattr(request, _REQUEST_CACHE, cached)
    return cached


def _due_clock_from(context) -> tuple[dt.date, dt.date]:
    today, threshold = context.get("due_today"), context.get("due_threshold")
    if today is not None and threshold is not None:
        return today, threshold
    return due_clock(context.get("request"))


@register.simple_tag(takes_context=True)
def due_badge(context, due: dt.date | None, short: bool = False):
    """``{% due_badge task.due_date %}``: the deadline as a coloured badge, or 无时限."""
    if due is None:
        return format_html('<span class="badge text-bg-light border wf-due">{}</span>', _("无时限"))
    today, threshold = _due_clock_from(context)
    state = clock.due_state(due, today=today, threshold=threshold)
    shown = date_format(due, "m-d" if short else "Y-m-d")
    iso = due.isoformat()
    if state == clock.OVERDUE:
        return format_html(
            '<span class="badge text-bg-danger wf-due"><i class="bi bi-exclamation-octagon me-1" aria-hidden="true">'
            '</i>{} <time datetime="{}">{}</time></span>',
            _("已超期"),
            iso,
            shown,
        )
    if state == clock.DUE_SOON:
        return format_html(
            '<span class="badge text-bg-warning wf-due"><i class="bi bi-hourglass-split me-1" aria-hidden="true">'
            '</i>{} <time datetime="{}">{}</time></span>',
            _("即将到期"),
            iso,
            shown,
        )
    return format_html(
        '<span class="badge text-bg-success wf-due" title="{}"><time datetime="{}">{}</time></span>',
        _("正常"),
        iso,
        shown,
    )


@register.simple_tag(takes_context=True)
def due_state(context, due: dt.date | None) -> str:
    """``{% due_state date as state %}``: "on_time" / "due_soon" / "overdue" / "none"."""
    today, threshold = _due_clock_from(context)
    return clock.due_state(due, today=today, threshold=threshold)


def _target(action: Action) -> str:
    """Whom or where an action went to, from ``action.data``."""
    data = action.data or {}
    if action.kind in (Action.Kind.RETURN, Action.Kind.TRANSFER, Action.Kind.DELEGATE):
        return data.get("to_name") or data.get("to_user") or ""
    if action.kind == Action.Kind.ADD_SIGNER:
        return "、".join(data.get("names") or data.get("people") or [])
    return ""


_KIND_ICONS = {
    Action.Kind.START: ("send", "primary"),
    Action.Kind.APPROVE: ("check-circle-fill", "success"),
    Action.Kind.RESUBMIT: ("arrow-repeat", "primary"),
    Action.Kind.REJECT: ("x-circle-fill", "danger"),
    Action.Kind.RETURN: ("arrow-return-left", "warning"),
    Action.Kind.TRANSFER: ("arrow-right-circle", "info"),
    Action.Kind.DELEGATE: ("person-check", "info"),
    Action.Kind.WITHDRAW: ("arrow-counterclockwise", "secondary"),
    Action.Kind.ADD_SIGNER: ("person-plus", "info"),
    Action.Kind.COMMENT: ("chat-left-text", "secondary"),
    Action.Kind.SUSPEND: ("pause-circle", "warning"),
    Action.Kind.RESUME: ("play-circle", "primary"),
    Action.Kind.EXTENSION_REQUEST: ("calendar-plus", "warning"),
    Action.Kind.EXTENSION_DECIDED: ("calendar-check", "info"),
    Action.Kind.STEP_DONE: ("flag", "success"),
    Action.Kind.FINISH: ("flag-fill", "dark"),
    Action.Kind.CANCEL: ("slash-circle", "secondary"),
}


def _target_label(action: Action) -> str:
    return {
        Action.Kind.RETURN: _("退回到"),
        Action.Kind.TRANSFER: _("转办给"),
        Action.Kind.DELEGATE: _("委托给"),
        Action.Kind.ADD_SIGNER: _("加签"),
    }.get(action.kind, "")


def _extra(action: Action) -> str:
    data = action.data or {}
    if action.kind == Action.Kind.EXTENSION_REQUEST and data.get("days"):
        return _("申请延期 %(days)s 个工作日") % {"days": data["days"]}
    if action.kind == Action.Kind.EXTENSION_DECIDED and data.get("days"):
        return _("延期 %(days)s 个工作日") % {"days": data["days"]}
    if action.kind == Action.Kind.RESUME and data.get("paused_days") is not None:
        return _("挂起 %(days)s 个工作日，期限相应顺延") % {"days": data["paused_days"]}
    if action.kind == Action.Kind.DELEGATE and not data.get("to_user"):
        return _("收回委托")
    if action.kind == Action.Kind.FINISH and data.get("status"):
        from yiwang.workflow.models import Case

        return dict(Case.Status.choices).get(data["status"], data["status"])
    return ""


@register.inclusion_tag("workflow/_timeline.html", takes_context=True)
def case_timeline(context, case):
    """``{% case_timeline case %}``: the history of a case, oldest first, for any module's page."""
    entries = []
    for action in selectors.timeline(case):
        icon, tone = _KIND_ICONS.get(action.kind, ("dot", "secondary"))
        entries.append(
            {
                "action": action,
                "icon": icon,
                "tone": tone,
                "target_label": _target_label(action),
                "target": _target(action),
                "extra": _extra(action),
                "minor": action.kind in (Action.Kind.STEP_DONE,),
            }
        )
    return {"case": case, "entries": entries, "request": context.get("request")}
