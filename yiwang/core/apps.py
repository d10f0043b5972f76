from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "yiwang.core"
    label = "core"
    verbose_name = _("平台公共")

    def ready(self) -> None:
        from . import modules, search

        search.connect_search_signal()
        modules.register(
            modules.Module(
                code="audit",
                name=_("审计日志"),
                icon="shield-lock",
                url_name="core:audit_list",
                description=_("全平台防篡改操作留痕"),
                order=900,
                visible=lambda user: user.has_role("platform_admin", "discipline"),
            )
        )
        modules.register(
            modules.Module(
                code="api",
                name=_("开放接口"),
                icon="plug",
                url_name="swagger-ui",
                description=_("各模块的 REST API 文档（OpenAPI 3）"),
                order=910,
            )
        )
        # Modules planned on the platform; each app replaces its entry when it is built.
        for order, (code, name, icon, description) in enumerate(
            [
                ("workflow", _("流程与待办"), "list-check", _("统一流程引擎与待办")),
                ("oa", _("协同办公"), "file-earmark-text", _("公文拟稿、签发、交换、传阅")),
                ("services", _("网上政务大厅"), "building", _("事项、办件、电子监察、好差评")),
                ("exchange", _("信息资源共享"), "arrow-left-right", _("资源目录、基础库、共享交换")),
                ("notify", _("短信平台"), "chat-dots", _("统一短信群发")),
                ("hotline", _("81890 热线"), "telephone", _("市民诉求受理与派单")),
                ("projects", _("信息化项目"), "kanban", _("立项、审核、绩效评估")),
                ("assessment", _("年度考核"), "award", _("部门电子政务考核")),
                ("sites", _("网站群"), "globe", _("门户与子站统一管理")),
                ("iot", _("物联感知"), "thermometer-half", _("机房环境与城市传感器")),
                ("cockpit", _("领导驾驶舱"), "speedometer2", _("跨模块关键指标")),
            ],
            start=20,
        ):
            modules.register(
                modules.Module(
                    code=code, name=name, icon=icon, description=description, order=order * 10, url_name=None
                )
            )
