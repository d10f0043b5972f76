from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotifyConfig(AppConfig):
    name = "yiwang.notify"
    label = "notify"
    verbose_name = _("短信平台")

    def ready(self) -> None:
        from yiwang.core import modules
        from yiwang.org import services as org_services
        from yiwang.workflow import signals as workflow_signals

        from . import receivers, services

        for code, label in (("notify:read", _("短信平台：查询")), ("notify:write", _("短信平台：发送"))):
            if code not in dict(org_services.API_SCOPES):
                org_services.API_SCOPES.append((code, label))
        workflow_signals.case_finished.connect(services._job_decided, dispatch_uid="notify.job_decided")
        # Workflow's new tasks, reminders and overdue escalations go out as SMS too (the engine
        # keeps its in-app notices).
        workflow_signals.task_created.connect(receivers.task_created_by_sms, dispatch_uid="notify.task_created")
        workflow_signals.case_overdue.connect(receivers.escalate_by_sms, dispatch_uid="notify.escalate_overdue")
        workflow_signals.task_due_soon.connect(receivers.remind_by_sms, dispatch_uid="notify.remind_soon")
        workflow_signals.task_overdue.connect(receivers.remind_overdue_by_sms, dispatch_uid="notify.remind_overdue")

        def figures(request):
            """Today's sent / delivered SMS of the user's acting unit (workbench tile)."""
            from django.utils import timezone

            from .models import UsageDay

            unit_id = request.user.acting_unit_id
            day = UsageDay.objects.filter(unit_id=unit_id, day=timezone.localdate()).first() if unit_id else None
            return [
                (_("今日发送"), day.sent if day else 0, "notify:dashboard"),
                (_("今日送达"), day.delivered if day else 0, "notify:messages"),
            ]

        modules.register(
            modules.Module(
                code="notify",
                name=_("短信平台"),
                icon="chat-dots",
                url_name="notify:dashboard",
                description=_("统一短信群发：模板、配额、群发任务、回执"),
                order=40,
                figures=figures,
            )
        )
