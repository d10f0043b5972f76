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

        from . import services

        for code, label in (("notify:read", _("短信平台：查询")), ("notify:write", _("短信平台：发送"))):
            if code not in dict(org_services.API_SCOPES):
                org_services.API_SCOPES.append((code, label))
        workflow_signals.case_finished.connect(services._job_decided, dispatch_uid="notify.job_decided")
        modules.register(
            modules.Module(
                code="notify",
                name=_("短信平台"),
                icon="chat-dots",
                url_name=None,  # screens arrive with the send page
                description=_("统一短信群发：模板、配额、群发任务、回执"),
                order=40,
            )
        )
