"""``GET /api/exchange/statistics/``: the figures of the 调用统计 page as JSON (same scope)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from yiwang.core.api import ApiError, StrictIntegerField

from .. import statistics
from .common import ensure_staff_or_system, error


class ExchangeStatsQuerySerializer(serializers.Serializer):
    days = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=statistics.MAX_DAYS,
        help_text=f"最近多少天（含今天，1–{statistics.MAX_DAYS}，默认 {statistics.DEFAULT_DAYS}）；"
        "与 date_from/date_to 二选一",
    )
    date_from = serializers.DateField(required=False, help_text="起始日期 YYYY-MM-DD")
    date_to = serializers.DateField(required=False, help_text="截止日期 YYYY-MM-DD（默认今天）")
    unit = StrictIntegerField(required=False, min_value=1, help_text="只看该单位（作为提供方或使用方）")
    side = serializers.ChoiceField(
        required=False,
        default="",
        allow_blank=True,
        choices=[value for value, _label in statistics.Side.CHOICES if value],
        help_text="provider 作为提供方 / consumer 作为使用方；默认两者",
    )

    def validate(self, data):
        if "days" in data and ("date_from" in data or "date_to" in data):
            raise serializers.ValidationError({"days": [_("days 与 date_from/date_to 只能二选一。")]})
        try:
            data["period"] = statistics.period_clean(
                days=data.get("days"), date_from=data.get("date_from"), date_to=data.get("date_to")
            )
        except ValueError as exc:
            raise serializers.ValidationError({"days": [str(exc)]}) from None
        return data


class ExchangeStatsPeriodSerializer(serializers.Serializer):
    date_from = serializers.DateField(source="from")
    date_to = serializers.DateField(source="to")
    days = serializers.IntegerField()


class ExchangeStatsScopeSerializer(serializers.Serializer):
    district = serializers.BooleanField(help_text="是否为全区口径")
    unit = serializers.IntegerField(allow_null=True)
    side = serializers.CharField()


class ExchangeStatsTotalsSerializer(serializers.Serializer):
    calls = serializers.IntegerField(help_text="调用次数")
    served = serializers.IntegerField(help_text="成功（返回数据）")
    denied = serializers.IntegerField(help_text="拒绝或失败（未返回数据，含无记录、出错）")
    errors = serializers.IntegerField(help_text="其中出错（状态码 ≥ 500）")
    records = serializers.IntegerField(help_text="返回记录数")
    bytes = serializers.IntegerField(help_text="返回字节数")
    avg_ms = serializers.FloatField(allow_null=True, help_text="平均耗时（毫秒）")
    max_ms = serializers.FloatField(help_text="最长耗时（毫秒）")
    systems = serializers.IntegerField(help_text="有调用的业务系统数")
    resources = serializers.IntegerField(help_text="被调用的资源数")


class ExchangeStatsDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    calls = serializers.IntegerField()
    served = serializers.IntegerField()
    denied = serializers.IntegerField()
    errors = serializers.IntegerField()


class ExchangeStatsResourceRankSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    provider = serializers.CharField()
    calls = serializers.IntegerField()
    denied = serializers.IntegerField()
    records = serializers.IntegerField()


class ExchangeStatsSystemRankSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    unit = serializers.CharField()
    calls = serializers.IntegerField()
    denied = serializers.IntegerField()
    records = serializers.IntegerField()


class ExchangeStatsProviderFiguresSerializer(serializers.Serializer):
    unit_id = serializers.IntegerField()
    unit = serializers.CharField()
    resources = serializers.IntegerField(help_text="已发布资源数")
    received = serializers.IntegerField(help_text="统计期内收到的申请")
    auto = serializers.IntegerField(help_text="其中无条件共享、自动授权")
    answered = serializers.IntegerField(help_text="需答复且已答复")
    on_time = serializers.IntegerField(help_text="按期答复")
    on_time_rate = serializers.FloatField(allow_null=True, help_text="按期答复率 %")
    avg_days = serializers.FloatField(allow_null=True, help_text="平均答复用时（工作日）")
    open = serializers.IntegerField(help_text="当前待答复")
    overdue = serializers.IntegerField(help_text="其中已逾期")
    disputes_open = serializers.IntegerField(help_text="疑义待核实")
    disputes_overdue = serializers.IntegerField(help_text="其中已逾期")


class ExchangeStatsSerializer(serializers.Serializer):
    period = ExchangeStatsPeriodSerializer()
    scope = ExchangeStatsScopeSerializer()
    totals = ExchangeStatsTotalsSerializer()
    daily = ExchangeStatsDaySerializer(many=True, help_text="统计期内每一天（没有调用的日子为 0）")
    resources = ExchangeStatsResourceRankSerializer(many=True, help_text="调用最多的资源（前 10）")
    systems = ExchangeStatsSystemRankSerializer(many=True, help_text="调用最多的业务系统（前 10）")
    providers = ExchangeStatsProviderFiguresSerializer(many=True, help_text="各提供方答复情况")


class StatisticsView(APIView):
    api_scope = "exchange"

    @extend_schema(
        operation_id="exchange_statistics",
        tags=["exchange"],
        summary="调用统计",
        description="网关调用的每日次数、调用最多的资源与业务系统、各提供方的答复情况。"
        "电子政务办、平台管理员看全区；其他单位看本单位提供的资源被调用情况和本单位系统的调用。",
        parameters=[ExchangeStatsQuerySerializer],
        responses={
            200: ExchangeStatsSerializer,
            400: error("参数有误：天数或日期区间超出 1–366 天"),
            401: error("未登录或密钥无效"),
            403: error("无权查看（密钥无 exchange:read 等）"),
        },
    )
    def get(self, request):
        ensure_staff_or_system(request)
        user = request.user
        query = ExchangeStatsQuerySerializer(data=request.query_params, context={"form": True})
        query.is_valid(raise_exception=True)
        data = query.validated_data
        unit = data.get("unit")
        scope = statistics.stats_scope(user)
        if unit is not None and not scope.allows(unit):
            raise ApiError(_("无权查看该单位的统计。"), code="permission_denied", status=403)
        first, last = data["period"]
        figures = statistics.statistics(user=user, date_from=first, date_to=last, unit_id=unit, side=data["side"])
        return Response(ExchangeStatsSerializer(figures).data)
