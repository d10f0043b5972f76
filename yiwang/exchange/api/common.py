"""What the exchange API modules share: who may call, the error envelope of the schema, and
how a service's errors become answers."""

from __future__ import annotations

from contextlib import contextmanager

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from yiwang.core.api import ApiError
from yiwang.org.models import ApiKey

from ..views.common import is_staff

# --- who may call -----------------------------------------------------------------------------


def api_key(request) -> ApiKey | None:
    """The consumer system's API key the request came with (None in a browser session)."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiKey) else None


def ensure_staff_or_system(request) -> None:
    """Government staff in a session (``views.common.is_staff``), or a consumer system's key;
    not the public accounts."""
    if api_key(request) is None and not is_staff(request.user):
        raise PermissionDenied(_("共享交换仅供机关工作人员和接入系统使用。"))


class StaffOrSystemMixin:
    """For every exchange management endpoint: the same rule as the pages (staff or a consumer system)."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        ensure_staff_or_system(request)


# --- errors -----------------------------------------------------------------------------------


class ExchangeErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="invalid / not_authenticated / permission_denied / not_found / conflict …")
    message = serializers.CharField(help_text="中文说明")
    details = serializers.DictField(help_text="字段 → 错误列表")


class ExchangeApiErrorSerializer(serializers.Serializer):
    error = ExchangeErrorBodySerializer()


def error(description: str) -> OpenApiResponse:
    """A documented error answer: ``{"error": {"code", "message", "details"}}``."""
    return OpenApiResponse(ExchangeApiErrorSerializer, description=description)


@contextmanager
def service_errors():
    """Field errors stay 400; a refusal of the whole action (wrong state) is 409."""
    try:
        yield
    except DjangoValidationError as exc:
        if hasattr(exc, "error_dict"):
            raise serializers.ValidationError(exc.message_dict) from None
        raise ApiError("".join(exc.messages), code="conflict", status=409) from None


def valid(serializer_class, data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
