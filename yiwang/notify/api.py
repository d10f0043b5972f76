"""notify through the API: send one message or a batch, spreadsheet jobs, message status, templates.

A thin layer over ``services``: every send goes through ``services.message_send`` (the one
function) and every job through ``job_create``/``job_confirm``/``job_cancel``. This module
checks the shape of the input, works out who is sending, and maps refusals.

Who sends: with an API key, the unit of the key's system (``ApiKey.unit_id``); in a browser
session, the person's acting unit. Reads are limited to that unit (a key) or to the units the
person may see (a session); anything else is 404.

API key kinds (``ApiKey.kind``):

* ``live``: sends for real.
* ``test``: every message and job is saved with ``test=True`` and only ever reaches the fake
  gateway (``YIWANG_SMS_TEST_GATEWAY``); statuses and receipts behave as for live sends.
* ``team``: may only send to the mobile numbers of people with an active post in the key's
  unit (``User.mobile``); any other number is refused with 403 (a job: when it is confirmed).

Rate limit: at most ``YIWANG_NOTIFY_API_PER_MINUTE`` (default 3,000) requests a minute per key
(per person in a session), counted in the shared cache; above it, 429 ``throttled``. The
platform has no API-wide limit; the SMS themselves are paced by the unit's per-minute policy.

Status codes (errors are always ``{"error": {"code", "message", "details"}}``):

* ``201``: sent (saved and queued) / job accepted for validation.
* ``400 invalid``: bad input — wrong JSON types, a bad or opted-out number, a missing
  placeholder value, too long a text, ``send_at`` outside the next 7 days, an unknown template,
  ``urgent`` without a verification/alarm template, a file that is not a sheet; ``details``
  names the field (for a batch: ``details.messages`` maps the row index to its errors).
* ``403 permission_denied``: a key without ``notify:write`` (or ``notify:read``), a team key
  sending to someone outside its unit, no unit to send from.
* ``404 not_found``: no such message/job/template, or another unit's.
* ``409 conflict``: the unit's daily quota would be exceeded, sending is disabled for the
  unit, or the job is not in a state that allows the action.
* ``429 throttled``: too many requests this minute.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, throttling, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from yiwang.core.api import ApiError, IsAuthenticatedScoped, JSONParser, error_response, parse_id, unstorable
from yiwang.core.permissions import scope
from yiwang.core.validators import normalise_mobile
from yiwang.org.models import ApiKey, Unit, User

from . import services
from .models import Job, Message, Template

MAX_BATCH = 1000
MAX_VALUES = 50
MAX_VALUE_LENGTH = 500
MAX_BODY_LENGTH = 1000  # the service refuses anything above text.MAX_LENGTH with its own message
TEXT_ERROR_CODES = {"too_long", "missing_placeholders", "bad_template", "bad_signature"}
MODULE = "api"


# --- who is calling -----------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    unit: Unit
    key: ApiKey | None

    @property
    def test(self) -> bool:
        return self.key is not None and self.key.kind == ApiKey.Kind.TEST

    @property
    def team(self) -> bool:
        return self.key is not None and self.key.kind == ApiKey.Kind.TEAM


def _key(request) -> ApiKey | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiKey) else None


def _caller(request) -> Caller:
    key = _key(request)
    if key is not None:
        unit = Unit.objects.filter(pk=key.unit_id).first()
    else:
        unit = request.user.acting_unit
    if unit is None:
        raise PermissionDenied(_("您当前没有所在单位，不能使用短信平台。"))
    return Caller(unit=unit, key=key)


def _visible(request, queryset):
    """A key sees its own unit's records; a person those of the units they may see."""
    key = _key(request)
    if key is not None:
        return queryset.filter(unit_id=key.unit_id)
    return scope(queryset, request.user)


def _team_mobiles(unit_id: int, mobiles: set[str]) -> set[str]:
    """Which of ``mobiles`` belong to people with an active post in the unit."""
    return set(
        User.objects.filter(mobile__in=mobiles, is_active=True, posts__unit_id=unit_id, posts__active=True)
        .values_list("mobile", flat=True)
        .distinct()
    )


def _team_refusal(outsiders: list[str]) -> str:
    shown = "、".join(outsiders[:10])
    if len(outsiders) > 10:
        return _("团队密钥只能向本单位人员的手机号发送，以下号码不是本单位人员：%(mobiles)s等。") % {"mobiles": shown}
    return _("团队密钥只能向本单位人员的手机号发送，以下号码不是本单位人员：%(mobiles)s。") % {"mobiles": shown}


class PerKeyRateThrottle(throttling.BaseThrottle):
    """At most YIWANG_NOTIFY_API_PER_MINUTE requests a minute per key (or person), in the shared
    cache (a fixed one-minute window: one atomic increment per request)."""

    def allow_request(self, request, view) -> bool:
        limit = getattr(settings, "YIWANG_NOTIFY_API_PER_MINUTE", 3000)
        if not limit:
            return True
        now = time.time()
        key = _key(request)
        ident = f"k{key.pk}" if key is not None else f"u{request.user.pk}"
        name = f"notify:api:{ident}:{int(now // 60)}"
        cache.add(name, 0, timeout=120)
        try:
            used = cache.incr(name)
        except ValueError:  # expired between add and incr
            cache.set(name, 1, timeout=120)
            used = 1
        self._wait = 60 - now % 60
        return used <= limit

    def wait(self) -> float:
        return getattr(self, "_wait", 60)


# --- refusals ----------------------------------------------------------------------------


def _engine_errors(error: DjangoValidationError) -> dict | None:
    """A service's field errors (dict), or None for a refusal of the whole request (conflict)."""
    if hasattr(error, "error_dict"):
        return error.message_dict
    if getattr(error, "code", None) in TEXT_ERROR_CODES:
        return {"body": error.messages}
    return None


@contextmanager
def _engine(*, plain_field: str | None = None):
    """Field errors stay 400; a plain refusal (quota, sending disabled, wrong state) is 409,
    unless ``plain_field`` says which input every plain refusal is about (400 on it)."""
    try:
        yield
    except DjangoValidationError as error:
        fields = _engine_errors(error)
        if fields is None and plain_field:
            fields = {plain_field: error.messages}
        if fields is not None:
            raise serializers.ValidationError(fields) from None
        raise ApiError("".join(error.messages), code="conflict", status=409) from None


def _valid(serializer_class, data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- input -------------------------------------------------------------------------------


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}, "example": {"姓名": "王小明"}})
class ValuesField(serializers.Field):
    """Placeholder values: an object of name → text (numbers are taken as text)."""

    default_error_messages = {
        "not_object": gettext_lazy("请提交对象：占位符名称 → 值。"),
        "too_many": gettext_lazy("占位符的值最多 {max_values} 个。"),
        "bad_value": gettext_lazy("占位符“{name}”的值必须是文字或数字。"),
        "too_long": gettext_lazy("占位符的名称不能超过 64 字，值不能超过 {max_length} 字。"),
        "nul": gettext_lazy("占位符的名称和值不能包含空字符（\\u0000）。"),
    }

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_object")
        if len(data) > MAX_VALUES:
            self.fail("too_many", max_values=MAX_VALUES)
        values = {}
        for name, value in data.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                self.fail("bad_value", name=str(name)[:20])
            if isinstance(value, float) and not math.isfinite(value):
                self.fail("bad_value", name=str(name)[:20])
            text = value if isinstance(value, str) else str(value)
            if len(name) > 64 or len(text) > MAX_VALUE_LENGTH:
                self.fail("too_long", max_length=MAX_VALUE_LENGTH)
            if unstorable(name) or unstorable(text):
                self.fail("nul")
            values[name] = text
        return values

    def to_representation(self, value):
        return value


def _callback_field():
    return serializers.URLField(
        required=False,
        allow_blank=True,
        default="",
        max_length=200,
        validators=[
            URLValidator(schemes=["http", "https"], message=gettext_lazy("回调地址须为 http:// 或 https:// 网址。"))
        ],
        help_text="送达回执回调地址（http/https，≤200 字）：状态变为已送达或失败时 POST 过去",
    )


class NotifyMessageInputSerializer(serializers.Serializer):
    mobile = serializers.CharField(max_length=32, help_text="手机号（11 位，可带 +86）")
    template = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=64, help_text="模板代码（与 body 二选一）"
    )
    values = ValuesField(required=False, default=dict, help_text='占位符的值，如 {"姓名": "王小明"}')
    body = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=MAX_BODY_LENGTH,
        help_text="短信内容（不用模板时；签名由平台自动加在开头）",
    )
    reference = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=64, help_text="业务编号，用于查询（≤64 字）"
    )
    callback_url = _callback_field()
    send_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="定时发送时间（未来 7 天内；不填为立即）"
    )
    urgent = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="走紧急通道；只允许验证码、告警类模板（不填时按模板类型）",
    )

    def validate(self, data):
        if data["template"] and data["body"]:
            raise serializers.ValidationError({"body": [_("模板 template 与内容 body 只能二选一。")]})
        if not data["template"] and not data["body"].strip():
            raise serializers.ValidationError({"template": [_("请填写模板代码 template 或短信内容 body。")]})
        return data


class NotifyBatchInputSerializer(serializers.Serializer):
    messages = NotifyMessageInputSerializer(many=True, help_text=f"每条一个收件人（1–{MAX_BATCH} 条）")


class NotifyJobInputSerializer(serializers.Serializer):
    template = serializers.CharField(max_length=64, help_text="模板代码（本单位当前版本）")
    file = serializers.FileField(
        allow_empty_file=True, help_text="收件人表格 .csv 或 .xlsx：首行表头，含“手机号”列和每个占位符一列"
    )
    callback_url = _callback_field()
    allow_duplicates = serializers.BooleanField(
        required=False,
        default=False,
        help_text="允许重复号码：默认同一号码（统一格式后）只发一条，其余行计入 duplicate_rows",
    )


class NotifyJobConfirmInputSerializer(serializers.Serializer):
    send_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="定时发送时间（未来 7 天内；不填为立即）"
    )


class NotifyMessageQuerySerializer(serializers.Serializer):
    reference = serializers.CharField(max_length=64, help_text="业务编号（发送时填写的 reference）")


# --- output ------------------------------------------------------------------------------


class NotifyTemplateRefSerializer(serializers.Serializer):
    code = serializers.CharField()
    version = serializers.IntegerField()
    name = serializers.CharField()


class NotifyMessageSerializer(serializers.ModelSerializer):
    status = serializers.CharField(
        help_text="created 待发送 / sending 发送中 / sent 已提交 / delivered 已送达 / "
        "temporary_failure 暂时失败（将重试） / permanent_failure 发送失败 / cancelled 已取消"
    )
    status_display = serializers.CharField(source="get_status_display", help_text="状态（中文）")
    urgent = serializers.SerializerMethodField(help_text="是否走紧急通道")
    template = NotifyTemplateRefSerializer(allow_null=True, help_text="所用模板（版本）")
    job = serializers.IntegerField(source="job_id", allow_null=True, help_text="所属群发任务")
    send_at = serializers.DateTimeField(source="not_before", allow_null=True, help_text="最早发送时间")

    class Meta:
        model = Message
        fields = [
            "id",
            "reference",
            "mobile",
            "body",
            "parts",
            "status",
            "status_display",
            "urgent",
            "test",
            "template",
            "job",
            "row",
            "created_at",
            "send_at",
            "sent_at",
            "delivered_at",
            "error_code",
            "error",
        ]
        read_only_fields = fields

    def get_urgent(self, message: Message) -> bool:
        return message.priority == Message.Priority.URGENT


class NotifyBatchResultSerializer(serializers.Serializer):
    messages = NotifyMessageSerializer(many=True, help_text="与提交顺序相同")


class NotifyJobErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="表格行号（表头为第 1 行）")
    mobile = serializers.CharField()
    problem = serializers.CharField()


class NotifyJobProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="有效行数")
    done = serializers.IntegerField(help_text="已处理完（已提交、已送达、失败、已取消）")
    created = serializers.IntegerField()
    sending = serializers.IntegerField()
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    temporary_failure = serializers.IntegerField()
    permanent_failure = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class NotifyJobSerializer(serializers.ModelSerializer):
    status = serializers.CharField(
        help_text="validating 校验中 / invalid 文件有误 / validated 待确认 / pending_approval 待审批 / "
        "scheduled 已排期 / sending 发送中 / finished 已完成 / cancelled 已取消 / refused 审批未通过"
    )
    status_display = serializers.CharField(source="get_status_display", help_text="状态（中文）")
    template = NotifyTemplateRefSerializer()

    class Meta:
        model = Job
        fields = [
            "id",
            "status",
            "status_display",
            "template",
            "source_name",
            "test",
            "processed_rows",
            "total_rows",
            "valid_rows",
            "invalid_rows",
            "opted_out_rows",
            "duplicate_rows",
            "allow_duplicates",
            "parts",
            "problem",
            "created_at",
            "scheduled_for",
            "confirmed_at",
            "started_at",
            "finished_at",
            "cancelled_at",
        ]
        read_only_fields = fields


class NotifyJobDetailSerializer(NotifyJobSerializer):
    errors = serializers.SerializerMethodField(help_text="错误样例（最多 100 行）；完整报告见任务页面")
    has_error_report = serializers.SerializerMethodField(help_text="是否有可下载的错误报告")
    progress = serializers.SerializerMethodField(help_text="各状态的条数（确认发送后）")
    approval_case = serializers.IntegerField(
        source="approval_case_id", allow_null=True, help_text="领导审批的流程实例（超过规模阈值时）"
    )

    class Meta(NotifyJobSerializer.Meta):
        fields = [*NotifyJobSerializer.Meta.fields, "errors", "has_error_report", "progress", "approval_case"]
        read_only_fields = fields

    @extend_schema_field(NotifyJobErrorSerializer(many=True))
    def get_errors(self, job: Job):
        return [
            {"row": row[0], "mobile": str(row[1]), "problem": str(row[2])}
            for row in job.errors or []
            if isinstance(row, list | tuple) and len(row) == 3
        ]

    def get_has_error_report(self, job: Job) -> bool:
        return bool(job.error_report)

    @extend_schema_field(NotifyJobProgressSerializer)
    def get_progress(self, job: Job):
        counts = services.job_progress(job)
        return {name: counts.get(name, 0) for name in NotifyJobProgressSerializer().fields}


class NotifyTemplateSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(help_text="notice 通知 / verification 验证码 / alarm 告警")
    urgent = serializers.BooleanField(help_text="是否走紧急通道（验证码、告警）")
    placeholders = serializers.SerializerMethodField(help_text="占位符名称（发送时 values 的键、表格的列名）")

    class Meta:
        model = Template
        fields = ["id", "code", "version", "name", "kind", "urgent", "body", "placeholders", "updated_at"]
        read_only_fields = fields

    def get_placeholders(self, template: Template) -> list[str]:
        from . import text

        return text.placeholders(template.body)


class NotifyErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="invalid / permission_denied / not_found / conflict / throttled …")
    message = serializers.CharField(help_text="中文说明")
    details = serializers.DictField(help_text="字段 → 错误列表；批量发送时 messages → {行序号 → 字段错误}")


class NotifyErrorSerializer(serializers.Serializer):
    error = NotifyErrorBodySerializer()


ERRORS = {
    400: OpenApiResponse(NotifyErrorSerializer, description="输入有误（details 指明字段）"),
    403: OpenApiResponse(NotifyErrorSerializer, description="API 密钥权限不足，或团队密钥发给本单位以外的号码"),
    404: OpenApiResponse(NotifyErrorSerializer, description="不存在或不属于本单位"),
}
CONFLICT = {409: OpenApiResponse(NotifyErrorSerializer, description="超出每日配额、本单位已停用发送，或任务状态不允许")}
THROTTLED = {429: OpenApiResponse(NotifyErrorSerializer, description="请求过于频繁（每个密钥每分钟上限）")}
ID_PARAM = OpenApiParameter("id", int, OpenApiParameter.PATH, description="ID（正整数）")
CODE_PARAM = OpenApiParameter("code", str, OpenApiParameter.PATH, description="模板代码")


# --- views -------------------------------------------------------------------------------


class NotifyViewMixin:
    api_scope = "notify"
    permission_classes = [IsAuthenticatedScoped]
    throttle_classes = [PerKeyRateThrottle]
    lookup_value_regex = "[^/]+"


def _template(caller: Caller, code: str, *, known: dict | None = None) -> Template:
    """The unit's current template ``code``, else 400 on ``template``."""
    known = {} if known is None else known
    if code not in known:
        known[code] = Template.objects.filter(unit=caller.unit, code=code, active=True).first()
    if known[code] is None:
        raise serializers.ValidationError({"template": [_("本单位没有代码为“%(code)s”的模板。") % {"code": code}]})
    return known[code]


def _check_urgent(data: dict, template: Template | None) -> None:
    if data["urgent"] and (template is None or not template.urgent):
        raise serializers.ValidationError({"urgent": [_("只有验证码、告警类模板可以走紧急通道。")]})


def _send(request, caller: Caller, data: dict, template: Template | None) -> Message:
    return services.message_send(
        unit=caller.unit,
        mobile=data["mobile"],
        template=template,
        values=data["values"],
        body=data["body"],
        actor=request.user,
        module=MODULE,
        reference=data["reference"],
        urgent=data["urgent"],
        test=caller.test,
        callback_url=data["callback_url"],
        send_at=data["send_at"],
        idempotency_key=request.headers.get("Idempotency-Key", "").strip(),
    )


def _message_payload(message_ids: list[int]) -> list[dict]:
    found = Message.objects.select_related("template").in_bulk(message_ids)
    return NotifyMessageSerializer([found[pk] for pk in message_ids], many=True).data


class _BatchRefused(Exception):
    """Rolls the whole batch back after every row was tried."""


class MessageViewSet(NotifyViewMixin, viewsets.GenericViewSet):
    """Send one message or a batch; a message's status; look messages up by reference."""

    queryset = Message.objects.none()
    serializer_class = NotifyMessageSerializer
    parser_classes = [JSONParser]

    @extend_schema(
        summary="按业务编号查询短信",
        description="本单位以 reference 发送的短信（新的在前）。",
        parameters=[NotifyMessageQuerySerializer],
        responses={200: NotifyMessageSerializer(many=True), 400: ERRORS[400], 403: ERRORS[403], **THROTTLED},
    )
    def list(self, request):
        params = _valid(NotifyMessageQuerySerializer, request.query_params)
        qs = _visible(request, Message.objects.filter(reference=params["reference"]))
        page = self.paginate_queryset(qs.select_related("template").order_by("-id"))
        return self.get_paginated_response(NotifyMessageSerializer(page, many=True).data)

    @extend_schema(
        summary="短信状态",
        description="一条短信的状态：created 待发送 → sending → sent 已提交网关 → delivered 已送达 / "
        "permanent_failure 失败；temporary_failure 表示将自动重试。只能查看本单位的短信。",
        parameters=[ID_PARAM],
        responses={200: NotifyMessageSerializer, **ERRORS, **THROTTLED},
    )
    def retrieve(self, request, pk=None):
        message = _visible(request, Message.objects.select_related("template")).filter(pk=parse_id(pk)).first()
        if message is None:
            raise Http404
        return Response(NotifyMessageSerializer(message).data)

    @extend_schema(
        summary="发送一条短信",
        description="用模板（template + values）或直接给内容（body）向一个号码发送一条短信；签名自动加在开头。"
        "返回已保存的短信（status 为 created），提交后由调度器发出。已退订号码不能收非紧急短信；"
        "超出本单位每日配额时 409。测试密钥发送的短信只进入模拟网关；团队密钥只能发给本单位人员。"
        "带 Idempotency-Key 头时，同一单位以同一键重复提交（如超时后重试）返回第一次创建的短信（200），不会重复发送。",
        request=NotifyMessageInputSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="调用方生成的唯一键（最长 64 字符）；重试时带同一个键，避免重复发送",
            )
        ],
        responses={
            200: OpenApiResponse(NotifyMessageSerializer, description="该 Idempotency-Key 已发送过：返回原短信"),
            201: NotifyMessageSerializer,
            400: ERRORS[400],
            403: ERRORS[403],
            **CONFLICT,
            **THROTTLED,
        },
    )
    def create(self, request):
        data = _valid(NotifyMessageInputSerializer, request.data)
        caller = _caller(request)
        template = _template(caller, data["template"]) if data["template"] else None
        _check_urgent(data, template)
        if caller.team:
            mobile = normalise_mobile(data["mobile"])
            if not _team_mobiles(caller.unit.pk, {mobile}):
                raise PermissionDenied(_team_refusal([mobile]))
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 64:
            raise serializers.ValidationError({"Idempotency-Key": [_("Idempotency-Key 最长 64 个字符。")]})
        with _engine():
            message = _send(request, caller, data, template)
        return Response(_message_payload([message.pk])[0], status=200 if message.replayed else 201)

    @extend_schema(
        summary="批量发送短信",
        description=f"一次最多 {MAX_BATCH} 条，每条与“发送一条短信”相同。全部校验通过才发送：任何一条有误时整批不发送，"
        "400 的 details.messages 按序号（从 0 开始）列出每条的错误；超出配额时整批 409。",
        request=NotifyBatchInputSerializer,
        responses={201: NotifyBatchResultSerializer, 400: ERRORS[400], 403: ERRORS[403], **CONFLICT, **THROTTLED},
    )
    @action(detail=False, methods=["post"])
    def batch(self, request):
        rows = request.data.get("messages") if isinstance(request.data, dict) else None
        if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_BATCH:
            raise serializers.ValidationError(
                {"messages": [_("请提交 messages 列表（1–%(max)s 条）。") % {"max": MAX_BATCH}]}
            )
        caller = _caller(request)
        errors: dict[str, dict] = {}
        cleaned: list[tuple[int, dict, Template | None]] = []
        templates: dict[str, Template | None] = {}
        for index, row in enumerate(rows):
            serializer = NotifyMessageInputSerializer(data=row)
            if not serializer.is_valid():
                errors[str(index)] = serializer.errors
                continue
            data = serializer.validated_data
            try:
                template = _template(caller, data["template"], known=templates) if data["template"] else None
                _check_urgent(data, template)
            except serializers.ValidationError as error:
                errors[str(index)] = error.detail
                continue
            cleaned.append((index, data, template))
        if caller.team and cleaned:
            mobiles = {index: normalise_mobile(data["mobile"]) for index, data, _t in cleaned}
            members = _team_mobiles(caller.unit.pk, set(mobiles.values()))
            outsiders = {index: mobile for index, mobile in mobiles.items() if mobile not in members}
            if outsiders:
                return error_response(
                    _team_refusal(list(dict.fromkeys(outsiders.values()))),
                    code="permission_denied",
                    status=403,
                    details={"messages": {str(i): {"mobile": [_("不是本单位人员的手机号。")]} for i in outsiders}},
                )
        if errors:  # the rows the engine would take are checked too, so the answer lists every problem
            try:
                with transaction.atomic():
                    _send_many(request, caller, cleaned)
                    raise _BatchRefused
            except services.BatchRefused as refused:
                errors.update(_row_errors(refused, cleaned))
            except (_BatchRefused, DjangoValidationError):
                pass
            return _batch_invalid(dict(sorted(errors.items(), key=lambda item: int(item[0]))), len(rows))
        try:
            sent = _send_many(request, caller, cleaned)
        except services.BatchRefused as refused:
            return _batch_invalid(_row_errors(refused, cleaned), len(rows))
        except DjangoValidationError as error:  # quota, sending disabled: the whole batch is refused
            raise ApiError("".join(error.messages) + _("整批未发送。"), code="conflict", status=409) from None
        return Response({"messages": _message_payload([m.pk for m in sent])}, status=201)


def _send_many(request, caller: Caller, cleaned: list[tuple[int, dict, Template | None]]) -> list[Message]:
    items = [
        services.Outgoing(mobile=data["mobile"], template=template, values=data["values"], body=data["body"],
                          reference=data["reference"], urgent=data["urgent"], callback_url=data["callback_url"],
                          send_at=data["send_at"])
        for _index, data, template in cleaned
    ]  # fmt: skip
    return services.message_send_many(unit=caller.unit, items=items, actor=request.user, module=MODULE,
                                      test=caller.test)  # fmt: skip


def _row_errors(refused: services.BatchRefused, cleaned: list[tuple[int, dict, Template | None]]) -> dict:
    """The engine's per-message errors, keyed by the row's index in the request."""
    out = {}
    for position, error in refused.errors.items():
        out[str(cleaned[position][0])] = _engine_errors(error) or {"non_field_errors": error.messages}
    return out


def _batch_invalid(errors: dict, total: int) -> Response:
    first = ", ".join(list(errors)[:10]) + ("…" if len(errors) > 10 else "")
    return error_response(
        _("%(total)s 条中有 %(count)s 条有误（序号 %(first)s），整批未发送。")
        % {"total": total, "count": len(errors), "first": first},
        code="invalid",
        status=400,
        details={"messages": errors},
    )


class JobViewSet(NotifyViewMixin, viewsets.GenericViewSet):
    """Spreadsheet jobs (群发任务): upload, check the preview, confirm or cancel, follow progress."""

    queryset = Job.objects.none()
    serializer_class = NotifyJobDetailSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def _job(self, pk) -> Job:
        job = _visible(self.request, Job.objects.select_related("template")).filter(pk=parse_id(pk)).first()
        if job is None:
            raise Http404
        return job

    def _detail(self, job_id: int, status: int = 200) -> Response:
        job = Job.objects.select_related("template").get(pk=job_id)
        return Response(NotifyJobDetailSerializer(job).data, status=status)

    @extend_schema(
        summary="群发任务列表",
        description="本单位的群发任务（新的在前）。",
        responses={200: NotifyJobSerializer(many=True), 403: ERRORS[403], **THROTTLED},
    )
    def list(self, request):
        qs = _visible(request, Job.objects.select_related("template")).order_by("-created_at", "-id")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(NotifyJobSerializer(page, many=True).data)

    @extend_schema(
        summary="上传群发名单",
        description="multipart/form-data 上传 .csv 或 .xlsx（最多 100 万行、100 MB）：首行表头，含“手机号”列和模板每个"
        "占位符一列。文件在后台逐行校验（status 从 validating 变为 validated 或 invalid），"
        "用“群发任务详情”查看进度、有效行数和错误样例，然后确认发送。",
        request={"multipart/form-data": NotifyJobInputSerializer},
        responses={201: NotifyJobDetailSerializer, 400: ERRORS[400], 403: ERRORS[403], **THROTTLED},
    )
    def create(self, request):
        data = _valid(NotifyJobInputSerializer, request.data)
        caller = _caller(request)
        template = _template(caller, data["template"])
        with _engine(plain_field="file"):  # job_create's own refusals are about the file
            job = services.job_create(
                actor=request.user,
                unit=caller.unit,
                template=template,
                upload=data["file"],
                test=caller.test,
                callback_url=data["callback_url"],
                allow_duplicates=data["allow_duplicates"],
            )
        return self._detail(job.pk, status=201)

    @extend_schema(
        summary="群发任务详情",
        description="状态、行数统计、错误样例和发送进度（progress 按短信状态计数）。",
        parameters=[ID_PARAM],
        responses={200: NotifyJobDetailSerializer, **ERRORS, **THROTTLED},
    )
    def retrieve(self, request, pk=None):
        return self._detail(self._job(pk).pk)

    @extend_schema(
        summary="确认群发",
        description="校验通过（validated）后确认发送：按有效行数占用当日配额；超过本单位规模阈值的任务先经单位主要"
        "领导审批（status 为 pending_approval），否则按 send_at 排期（不填为立即）。超出配额或状态不对时 409。",
        parameters=[ID_PARAM],
        request=NotifyJobConfirmInputSerializer,
        responses={200: NotifyJobDetailSerializer, **ERRORS, **CONFLICT, **THROTTLED},
    )
    @action(detail=True, methods=["post"])
    def confirm(self, request, pk=None):
        job = self._job(pk)
        data = _valid(NotifyJobConfirmInputSerializer, request.data)
        caller = _caller(request)
        if caller.team:
            outsiders = _team_outsiders(job, caller.unit.pk)
            if outsiders:
                raise PermissionDenied(_team_refusal(outsiders))
        with _engine():
            services.job_confirm(actor=request.user, job=job, send_at=data["send_at"])
        return self._detail(job.pk)

    @extend_schema(
        summary="取消群发",
        description="取消尚未结束的任务（校验中、待确认、待审批、已排期或发送中）：尚未发出的短信不再发送，"
        "占用的配额退回。已结束的任务 409。",
        parameters=[ID_PARAM],
        request=None,
        responses={200: NotifyJobDetailSerializer, **ERRORS, **CONFLICT, **THROTTLED},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self._job(pk)
        with _engine():
            services.job_cancel(actor=request.user, job=job)
        return self._detail(job.pk)


def _team_outsiders(job: Job, unit_id: int, limit: int = 20) -> list[str]:
    """Numbers of the job that are not people of the unit (a team key may not send to them)."""
    members = User.objects.filter(is_active=True, posts__unit_id=unit_id, posts__active=True).exclude(mobile=None)
    rows = Message.objects.filter(job=job).exclude(mobile__in=members.values("mobile"))
    return list(rows.order_by("row").values_list("mobile", flat=True).distinct()[:limit])


class TemplateViewSet(NotifyViewMixin, viewsets.GenericViewSet):
    """The unit's SMS templates (current versions)."""

    queryset = Template.objects.none()
    serializer_class = NotifyTemplateSerializer
    lookup_field = "code"

    @extend_schema(
        summary="短信模板列表",
        description="本单位当前有效的模板（每个代码的当前版本）。",
        responses={200: NotifyTemplateSerializer(many=True), 403: ERRORS[403], **THROTTLED},
    )
    def list(self, request):
        caller = _caller(request)
        qs = Template.objects.filter(unit=caller.unit, active=True).order_by("code")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(NotifyTemplateSerializer(page, many=True).data)

    @extend_schema(
        summary="短信模板详情",
        description="当前版本的内容、类型和占位符。",
        parameters=[CODE_PARAM],
        responses={200: NotifyTemplateSerializer, **ERRORS, **THROTTLED},
    )
    def retrieve(self, request, code=None):
        if len(code) > 64 or "\x00" in code:
            raise Http404
        caller = _caller(request)
        template = Template.objects.filter(unit=caller.unit, code=code, active=True).first()
        if template is None:
            raise Http404
        return Response(NotifyTemplateSerializer(template).data)
