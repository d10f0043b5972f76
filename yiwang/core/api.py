"""API base for every module: scoped viewsets and business-rule errors."""

from __future__ import annotations

import logging

from rest_framework import exceptions, viewsets
from rest_framework.response import Response

from .api_base import IsAuthenticatedScoped, Pagination, exception_handler  # noqa: F401 - re-exported
from .permissions import scope

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """A business-rule refusal with our own Chinese message: ``raise ApiError("...", status=409)``."""

    yiwang_message = True

    def __init__(self, message: str, *, code: str = "refused", status: int = 400):
        super().__init__(detail=message, code=code)
        self.status_code = status


class ScopedViewSetMixin:
    """Every queryset of a viewset passes the one permission helper."""

    unit_field = "unit"
    api_scope: str | None = None

    def get_queryset(self):
        return scope(super().get_queryset(), self.request.user, unit_field=self.unit_field)


class ScopedReadOnlyViewSet(ScopedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass


class ScopedModelViewSet(ScopedViewSetMixin, viewsets.ModelViewSet):
    pass


def error_response(message: str, *, code: str = "refused", status: int = 400, details=None) -> Response:
    return Response({"error": {"code": code, "message": message, "details": details or {}}}, status=status)
