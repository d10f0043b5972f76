from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WorkflowConfig(AppConfig):
    name = "yiwang.workflow"
    label = "workflow"
    verbose_name = _("流程与待办")

    def ready(self) -> None:
        from yiwang.core import attachments, modules
        from yiwang.core.calendar import calendar_changed
        from yiwang.org import services as org_services

        from . import selectors, services  # services connects the engine's own receivers on import

        calendar_changed.connect(services._calendar_changed, dispatch_uid="workflow.deadlines_recount")

        for code, label in (("workflow:read", _("流程与待办：读取")), ("workflow:write", _("流程与待办：办理"))):
            if code not in dict(org_services.API_SCOPES):
                org_services.API_SCOPES.append((code, label))

        def figures(request):
            user = request.user
            inbox = selectors.inbox(user=user)
            return [
                (_("待办"), inbox.count(), "workflow:inbox"),
                (_("超期"), selectors.inbox(user=user, due="overdue").count(), "workflow:inbox"),
            ]

        modules.register(
            modules.Module(
                code="workflow",
                name=_("流程与待办"),
                icon="list-check",
                url_name="workflow:inbox",
                description=_("统一流程引擎与待办：审批、会签、时限、催办"),
                order=15,
                figures=figures,
            )
        )
        modules.register_inbox_counter(selectors.inbox_count)
        attachments.register_viewer("workflow", selectors.attachment_visible)
