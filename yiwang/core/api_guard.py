"""Every ``/api/`` request of every module passes here once, before any view.

- Refused up front, with a 400 in the error format: a NUL character (U+0000) in the decoded
  path, in a query parameter (name or value), in a form field, or anywhere in a JSON body
  (keys included) — PostgreSQL cannot store it, so it would otherwise be a 500 wherever it
  reaches a query; a JSON body that is ``null`` or a bare scalar; JSON nested too deep to parse.
- A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is a 413 in the error format.
- Whatever Django itself answers on an ``/api/`` path outside a view — the 404 of an
  unmatched path (with the URL list under DEBUG), a 400/403/500 page — is turned into the
  error format, so a client never gets HTML from the API.

The middleware sits before the gateway's short path, so gateway calls are covered too.
"""

from __future__ import annotations

import json
from io import BytesIO

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.files import uploadhandler
from django.http import JsonResponse, QueryDict
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .api_base import error_body

PREFIX = "/api/"
JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def error_json(code: str, message: str, status: int, details=None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status, json_dumps_params={"ensure_ascii": False})


def has_nul(value) -> bool:
    """Whether a decoded JSON value (or a string) holds U+0000 anywhere, keys included. Iterative,
    so any depth the parser accepted is walked without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def nul_field(data) -> str | None:
    """The top-level field of a decoded JSON body that holds a NUL (``non_field_errors`` when the
    body is not an object or a key itself holds one); None when there is none."""
    if isinstance(data, dict):
        for key, value in data.items():
            if "\x00" in key:
                return "non_field_errors"
            if has_nul(value):
                return key
        return None
    return "non_field_errors" if has_nul(data) else None


def _nul_refusal(where: str, fields: list[str]) -> JsonResponse:
    message = _("%(where)s中含有空字符（\\u0000），无法处理。请删除后重试。") % {"where": where}
    return error_json("invalid", message, 400, {field: [message] for field in fields})


def _too_big() -> JsonResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
    return error_json(
        "too_large",
        _("请求内容过大：不能超过 %(mb)s MB。") % {"mb": f"{limit / 1024 / 1024:g}"},
        413,
        {"limit_bytes": limit},
    )


def _nul_params(params) -> list[str]:
    """The names (NUL shown as U+FFFD) of the query or form parameters that hold a NUL."""
    bad = [name for name, values in params.lists() if "\x00" in name or any("\x00" in v for v in values)]
    return [name.replace("\x00", "\ufffd")[:100] for name in bad[:20]]


def _unprocessable(exc) -> JsonResponse:
    return error_json("bad_request", _("请求无法处理：%(reason)s") % {"reason": str(exc)[:200]}, 400)


class ApiGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(PREFIX):
            return self.get_response(request)
        with translation.override(translation.get_language_from_request(request)):
            refusal = self.check(request)
        if refusal is not None:
            return refusal
        return self.as_json(request, self.get_response(request))

    # --- before the view ---------------------------------------------------------------------

    def check(self, request) -> JsonResponse | None:
        if "\x00" in request.path_info:
            return _nul_refusal(_("请求路径"), ["path"])
        try:
            bad = _nul_params(request.GET)
            if bad:
                return _nul_refusal(_("查询参数"), bad)
            content_type = (request.content_type or "").lower()
            if content_type in JSON_TYPES or content_type.endswith("+json"):
                return self.check_json(request)
            if content_type in FORM_TYPES:
                bad = _nul_params(self.form_fields(request, content_type))
                if bad:
                    return _nul_refusal(_("表单字段"), bad)
        except RequestDataTooBig:
            return _too_big()
        except (SuspiciousOperation, MultiPartParserError) as exc:  # too many fields, a malformed body
            return _unprocessable(exc)
        return None

    def form_fields(self, request, content_type: str) -> QueryDict:
        """The form's fields (not its files), parsed from a copy of the body: ``request.POST`` is left
        untouched, so the view's own parsers still decide what they accept (415 for a form sent to a
        JSON-only view). A multipart body over the memory limit (a large upload) is not read here."""
        empty = QueryDict(encoding=request.encoding)
        if content_type == "application/x-www-form-urlencoded":
            body = request.body
            if b"%00" not in body and b"\x00" not in body:
                return empty
            return QueryDict(body, encoding=request.encoding)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return empty
        if limit is not None and length > limit:
            return empty
        body = request.body
        if b"\x00" not in body:  # the common case (a file's bytes may hold NULs: then parse)
            return empty
        handlers = [uploadhandler.load_handler(h, request) for h in settings.FILE_UPLOAD_HANDLERS]
        fields, _files = MultiPartParser(request.META, BytesIO(body), handlers, request.encoding).parse()
        return fields

    def process_exception(self, request, exception):
        """A body the view's parser finds over the limit (or with too many fields): the error format."""
        if not request.path_info.startswith(PREFIX):
            return None
        if isinstance(exception, RequestDataTooBig):
            return _too_big()
        if isinstance(exception, SuspiciousOperation | MultiPartParserError):
            return _unprocessable(exception)
        return None

    def check_json(self, request) -> JsonResponse | None:
        body = request.body  # kept by Django: the view's parser reads it again from memory
        if not body.strip():
            return None
        try:
            data = json.loads(body)
        except RecursionError:
            return error_json("parse_error", _("JSON 嵌套层次过深。"), 400)
        except ValueError:
            return None  # malformed JSON: the view's parser answers it (parse_error)
        field = nul_field(data)
        if field is not None:
            return _nul_refusal(_("请求内容"), [field])
        if not isinstance(data, dict | list):
            return error_json("invalid", _("请求内容必须是 JSON 对象（{...}），不能是 null 或单个值。"), 400)
        return None

    # --- after the view ----------------------------------------------------------------------

    GENERIC = {
        400: ("bad_request", gettext_lazy("请求有误。")),
        403: ("permission_denied", gettext_lazy("无权执行此操作。")),
        404: ("not_found", gettext_lazy("接口不存在：%(path)s")),
        405: ("method_not_allowed", gettext_lazy("不支持该请求方法。")),
        413: ("too_large", gettext_lazy("请求内容过大。")),
        500: ("server_error", gettext_lazy("服务器内部错误，请稍后再试；问题已记录。")),
    }

    def as_json(self, request, response):
        """An error page Django rendered outside the API's views (HTML) → the error format."""
        if response.status_code < 400 or "json" in response.get("Content-Type", ""):
            return response
        code, message = self.GENERIC.get(response.status_code, ("error", gettext_lazy("请求失败。")))
        message = str(message)
        if "%(path)s" in message:
            message = message % {"path": request.path[:200]}
        converted = error_json(code, message, response.status_code)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                converted[header] = response[header]
        return converted
