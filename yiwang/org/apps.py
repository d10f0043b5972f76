from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OrgConfig(AppConfig):
    name = "yiwang.org"
    label = "org"
    verbose_name = _("组织机构")

    def ready(self) -> None:
        from yiwang.core import modules

        from . import selectors

        def figures(request):
            user = request.user
            return [
                (_("单位"), selectors.unit_list(user=user, status="active").count(), "org:unit_list"),
                (_("人员"), selectors.person_list(user=user).count(), "org:person_list"),
            ]

        modules.register(
            modules.Module(
                code="org",
                name=_("组织机构"),
                icon="diagram-3",
                url_name="org:unit_list",
                description=_("单位、人员、岗位、角色与统一身份"),
                order=10,
                figures=figures,
            )
        )
