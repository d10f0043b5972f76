"""API base for every module: scoped viewsets and business-rule errors."""

from __future__ import annotations

import logging

from django.utils.translation import gettext as _
from rest_framework import exceptions, parsers, serializers, viewsets
from rest_framework.response import Response

from .api_base import IsAuthenticatedScoped, Pagination, error_body, exception_handler  # noqa: F401 - re-exported
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
    return Response(error_body(code, message, details), status=status)


# --- input pieces every module's API shares ----------------------------------------------

MAX_ID = 2**63 - 1


def parse_id(value, what: str | None = None) -> int:
    """A path id: a positive integer, else 400 (never a 500 from the database)."""
    text = str(value)
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_ID:
        raise ApiError(
            _("%(what)s必须是正整数：%(value)s") % {"what": what or _("编号"), "value": text[:20]}, code="invalid"
        )
    return int(text)


def unstorable(value, depth: int = 0) -> bool:
    """Whether a JSON value holds a NUL character (PostgreSQL cannot store it) or nests absurdly deep."""
    if isinstance(value, str):
        return "\x00" in value
    if depth > 50:
        return True
    if isinstance(value, dict):
        return any(unstorable(k, depth + 1) or unstorable(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(unstorable(v, depth + 1) for v in value)
    return False


def unstorable_message(what: str) -> str:
    return _("%(what)s不能包含空字符（\\u0000），嵌套也不能超过 50 层。") % {"what": what}


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but absurdly deep nesting is a 400 rather than a RecursionError (500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(_("JSON 嵌套层次过深。")) from None


class StrictIntegerField(serializers.IntegerField):
    """An integer; in JSON a string or a boolean is refused (form posts send strings)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, float) and not data.is_integer()):
            self.fail("invalid")
        if isinstance(data, str) and not self.context.get("form"):
            self.fail("invalid")
        return super().to_internal_value(data)
