"""API pieces that DRF's settings name (pagination, permission, error format).

They live apart from ``core.api`` because DRF imports them while loading its own
``rest_framework.views``; this module must therefore not import that at load time.
Errors always look like ``{"error": {"code": "...", "message": "中文说明", "details": {...}}}``.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, pagination, permissions


class Pagination(pagination.PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 200


_MESSAGES = {
    "not_authenticated": _("未登录或认证信息缺失。"),
    "authentication_failed": _("认证失败：API 密钥无效、已撤销或已过期。"),
    "permission_denied": _("无权执行此操作。"),
    "not_found": _("记录不存在或无权查看。"),
    "method_not_allowed": _("不支持该请求方法。"),
    "throttled": _("请求过于频繁，请稍后再试。"),
    "parse_error": _("请求内容无法解析。"),
    "unsupported_media_type": _("不支持的内容类型。"),
    "invalid": _("提交的数据有误，请检查后重试。"),
    "not_acceptable": _("无法提供所请求的格式。"),
}


def error_body(code: str, message: str, details=None) -> dict:
    """The one error format: ``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": code, "message": str(message), "details": details or {}}}


def exception_handler(exc, context):
    """DRF exceptions (and Django's 404/403/ValidationError) in the one JSON error format."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        reason = str(exc)
        exc = exceptions.PermissionDenied(reason or None)
        exc.yiwang_message = bool(reason)  # a service's own reason ("这不是您的待办") is kept
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        code = "invalid"
        details = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        message = str(_MESSAGES["invalid"])
        if list(details) == ["non_field_errors"] and details["non_field_errors"]:
            message = str(details["non_field_errors"][0])  # a business-rule refusal: say it plainly
    else:
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        detail = getattr(exc, "detail", "")
        message = str(_MESSAGES.get(code) or detail)
        # a message raised on purpose by our code (already Chinese) wins over the generic one
        if isinstance(detail, str) and getattr(exc, "yiwang_message", False):
            message = detail
        details = {}
    response.data = error_body(code, message, details)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.status_code = 401
        response["WWW-Authenticate"] = 'Api-Key realm="yiwang"'
    return response


class IsAuthenticatedScoped(permissions.BasePermission):
    """Signed in (session) or a usable API key whose scopes cover ``view.api_scope``.

    A key needs ``<scope>:read`` for safe methods and ``<scope>:write`` otherwise.
    """

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        key = getattr(request, "auth", None)
        scopes = getattr(key, "scopes", None)
        if scopes is None:  # session: the view's own permission rules apply
            return True
        wanted = getattr(view, "api_scope", None)
        if not wanted:
            return False
        verb = "read" if request.method in permissions.SAFE_METHODS else "write"
        return f"{wanted}:{verb}" in scopes or f"{wanted}:*" in scopes or "*" in scopes
