"""API keys for consumer systems: ``Authorization: Api-Key yw_<prefix>_<secret>``."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from . import services


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("API 密钥格式错误。"))
        key = services.api_key_check(raw=parts[1])
        if key is None:
            raise exceptions.AuthenticationFailed(_("API 密钥无效、已撤销或已过期。"))
        user = key.system.account
        user._acting_post = user.own_posts[0] if user.own_posts else None
        return user, key

    def authenticate_header(self, request):
        return 'Api-Key realm="yiwang"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the API key in the OpenAPI schema (Swagger UI's "Authorize" button)."""

    target_class = "yiwang.org.api_auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "接入系统的 API 密钥：`Api-Key yw_xxxxxxxx_...`",
        }
