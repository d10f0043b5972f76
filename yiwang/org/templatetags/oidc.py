from django import template

from yiwang.org import oidc

register = template.Library()


@register.simple_tag
def oidc_enabled() -> bool:
    """Whether the login page offers 省统一身份认证登录."""
    return oidc.enabled()
