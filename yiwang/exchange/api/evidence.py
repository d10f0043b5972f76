"""``GET /api/exchange/calls/``: the evidence of gateway calls (调用记录), paginated, newest first.

Same scope as the page: the e-gov office and platform admins see every call; a person the
calls to their units' resources and of their units' systems; a consumer system's key its own.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView

from yiwang.core.api import StrictIntegerField

from .. import evidence
from ..models import RESOURCE_CODE_RE
from ..statistics import date_check
from .common import api_key, ensure_staff_or_system, error


class ExchangeCallQuerySerializer(serializers.Serializer):
    resource = serializers.RegexField(
        RESOURCE_CODE_RE,
        required=False,
        help_text="资源代码，如 101001001/000001",
        error_messages={"invalid": gettext_lazy("资源代码格式为“9 位分类码/6 位顺序码”。")},
    )
    system = StrictIntegerField(required=False, min_value=1, help_text="业务系统编号")
    outcome = serializers.ChoiceField(
        required=False,
        default="",
        allow_blank=True,
        choices=[value for value, _label in evidence.Outcome.CHOICES if value],
        help_text="served 成功 / denied 拒绝或失败 / changes 订阅拉取",
    )
    date_from = serializers.DateField(required=False, help_text="起始日期 YYYY-MM-DD")
    date_to = serializers.DateField(required=False, help_text="截止日期 YYYY-MM-DD")
    q = serializers.CharField(required=False, default="", allow_blank=True, max_length=100, help_text="用途包含的文字")
    record = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=64, help_text="查询标识（如公民身份号码），精确匹配"
    )

    def validate(self, data):
        for name in ("date_from", "date_to"):
            try:
                date_check(data.get(name))
            except ValueError as exc:
                raise serializers.ValidationError({name: [str(exc)]}) from None
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise serializers.ValidationError({"date_to": [_("截止日期不能早于起始日期。")]})
        return data


class ExchangeCallSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="审计记录编号")
    time = serializers.DateTimeField(source="created_at")
    outcome = serializers.CharField(help_text="served 成功 / denied 拒绝或失败 / changes 订阅拉取")
    outcome_display = serializers.CharField(source="outcome_label")
    status = serializers.IntegerField(allow_null=True, help_text="HTTP 状态码")
    error = serializers.CharField(help_text="错误码（成功时为空）")
    resource_code = serializers.CharField()
    resource_name = serializers.CharField()
    system_id = serializers.IntegerField(allow_null=True)
    system_name = serializers.CharField()
    unit_id = serializers.IntegerField(allow_null=True, help_text="使用单位")
    unit_name = serializers.CharField()
    key = serializers.CharField(help_text="API 密钥前缀")
    purpose = serializers.CharField(help_text="用途")
    record = serializers.CharField(help_text="查询的记录标识（列表查询时为空）")
    items = serializers.ListField(child=serializers.CharField(), help_text="返回的信息项代码")
    item_names = serializers.ListField(child=serializers.CharField(), help_text="返回的信息项名称")
    masked = serializers.ListField(child=serializers.CharField(), help_text="脱敏返回的信息项代码")
    count = serializers.IntegerField(help_text="返回记录数")
    ms = serializers.FloatField(allow_null=True, help_text="耗时（毫秒）")
    bytes = serializers.IntegerField(help_text="返回字节数")
    linked = serializers.BooleanField(help_text="是否已写入审计链")
    seq = serializers.IntegerField(allow_null=True, help_text="审计链序号")


class CallListView(GenericAPIView):
    api_scope = "exchange"
    serializer_class = ExchangeCallSerializer

    def get_queryset(self):
        key = api_key(self.request)
        if key is not None:
            return evidence.calls_visible(self.request.user, system=key.system)
        ensure_staff_or_system(self.request)
        return evidence.calls_visible(self.request.user)

    @extend_schema(
        operation_id="exchange_calls",
        tags=["exchange"],
        summary="接口调用记录",
        description="网关每次调用（含被拒绝的）的审计记录：业务系统、用途、查询标识、信息项、记录数、状态、耗时。"
        "提供方看本单位资源被调用的记录，使用方看本单位系统的调用，API 密钥只看本系统的调用。",
        parameters=[ExchangeCallQuerySerializer],
        responses={
            200: ExchangeCallSerializer(many=True),
            400: error("筛选参数有误"),
            401: error("未登录或密钥无效"),
            403: error("无权查看（密钥无 exchange:read 等）"),
            404: error("页码超出范围"),
        },
    )
    def get(self, request):
        query = ExchangeCallQuerySerializer(data=request.query_params, context={"form": True})
        query.is_valid(raise_exception=True)
        data = query.validated_data
        entries = evidence.calls_filter(
            self.get_queryset(),
            resource=data.get("resource") or "",
            system_id=data.get("system"),
            outcome=data["outcome"],
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            q=data["q"],
            record=data["record"],
        )
        page = self.paginate_queryset(evidence.calls_ordered(entries))
        return self.get_paginated_response(self.get_serializer(evidence.call_rows(page), many=True).data)
