from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ExchangeConfig(AppConfig):
    name = "yiwang.exchange"
    label = "exchange"
    verbose_name = _("共享交换")

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from yiwang.core import modules
        from yiwang.org import services as org_services
        from yiwang.org.models import ApiKey, ConsumerSystem, User
        from yiwang.workflow import signals as workflow_signals

        from . import gateway, services

        for code, label in (
            ("exchange:read", _("共享交换：查询共享数据")),
            ("exchange:write", _("共享交换：申请、订阅、疑义")),
        ):
            if code not in dict(org_services.API_SCOPES):
                org_services.API_SCOPES.append((code, label))
        workflow_signals.case_finished.connect(services._case_finished, dispatch_uid="exchange.case_finished")
        # The gateway caches keys, grants and entries per process; any change to them moves
        # the shared generation so every process drops its copy at its next call.
        for model in (ApiKey, ConsumerSystem, User):
            post_save.connect(gateway.bump_generation, sender=model, dispatch_uid=f"exchange.bump.{model.__name__}")
            post_delete.connect(gateway.bump_generation, sender=model, dispatch_uid=f"exchange.bumpd.{model.__name__}")

        def figures(request):
            """Published resources and today's gateway calls (workbench tile)."""
            from django.db.models import Sum
            from django.utils import timezone

            from .models import CallDay, CatalogEntry

            published = CatalogEntry.objects.filter(status=CatalogEntry.Status.PUBLISHED).count()
            calls = CallDay.objects.filter(day=timezone.localdate()).aggregate(n=Sum("calls"))["n"] or 0
            return [(_("已发布资源"), published, "exchange:catalog"), (_("今日调用"), calls, "exchange:statistics")]

        modules.register(
            modules.Module(
                code="exchange",
                name=_("共享交换"),
                icon="diagram-3",
                url_name="exchange:catalog",
                description=_("资源目录、基础库、共享申请与授权、接口网关"),
                order=50,
                figures=figures,
            )
        )
