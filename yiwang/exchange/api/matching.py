"""``POST /api/exchange/match/``: which of a form's fields the exchange can supply (免于重复采集).

Reads only: a key needs ``exchange:read`` even though the labels travel in a POST body (a
form may have 200 fields, too many for a query string). Grants are those of the key's unit
(a key) or of the acting unit (a session).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from yiwang.core.api import IsAuthenticatedScoped, JSONParser
from yiwang.org.models import Unit

from .. import matching
from .common import api_key, ensure_staff_or_system, error


class ReadOnlyPost(IsAuthenticatedScoped):
    """A POST that reads: a key with ``exchange:read`` is enough."""

    def has_permission(self, request, view) -> bool:
        key = getattr(request, "auth", None)
        scopes = getattr(key, "scopes", None)
        if scopes is None or not (request.user and request.user.is_authenticated):
            return super().has_permission(request, view)
        return bool({f"{view.api_scope}:read", f"{view.api_scope}:*", "*"} & set(scopes))


class LabelField(serializers.CharField):
    """A label: text only (a number or an object is refused rather than turned into text)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ExchangeMatchInputSerializer(serializers.Serializer):
    fields = serializers.ListField(
        child=LabelField(
            max_length=matching.MAX_LABEL_LENGTH,
            error_messages={
                "blank": gettext_lazy("字段名称不能为空。"),
                "max_length": gettext_lazy("字段名称不能超过 {max_length} 字。"),
                "invalid": gettext_lazy("字段名称必须是文字。"),
                "null": gettext_lazy("字段名称不能为空。"),
            },
        ),
        min_length=1,
        max_length=matching.MAX_FIELDS,
        help_text=f"表单字段名称（1–{matching.MAX_FIELDS} 个，每个 1–{matching.MAX_LABEL_LENGTH} 字），"
        "如 申请人姓名、身份证号码",
        error_messages={
            "not_a_list": gettext_lazy("fields 须为字段名称的数组。"),
            "min_length": gettext_lazy("请至少提交一个字段名称。"),
            "max_length": gettext_lazy("一次最多核验 {max_length} 个字段。"),
            "empty": gettext_lazy("请至少提交一个字段名称。"),
        },
    )


class ExchangeMatchProviderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ExchangeMatchResourceSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="资源代码")
    name = serializers.CharField(help_text="资源名称")
    provider = ExchangeMatchProviderSerializer(help_text="提供方")


class ExchangeMatchItemSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="信息项代码")
    name = serializers.CharField(help_text="信息项名称")


class ExchangeMatchResultSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="提交的字段名称")
    normalised = serializers.CharField(help_text="规范化后的名称（去掉标点、前缀“申请人”，号码→号）")
    result = serializers.ChoiceField(
        choices=["shared", "request", "collect"],
        help_text="shared 可共享获取（本单位已授权）/ request 需申请 / collect 需采集",
    )
    result_display = serializers.CharField()
    matched = serializers.BooleanField(help_text="是否有可共享的信息项")
    granted = serializers.BooleanField(help_text="本单位是否已有覆盖该信息项的有效授权")
    match_type = serializers.ChoiceField(
        choices=["exact", "synonym", "token", ""],
        help_text="exact 名称一致 / synonym 同义词 / token 分词相似；未匹配时为空",
    )
    match_type_display = serializers.CharField()
    score = serializers.FloatField(help_text="相似度 0–1（名称一致、同义词为 1）")
    resource = ExchangeMatchResourceSerializer(allow_null=True)
    item = ExchangeMatchItemSerializer(allow_null=True)
    sharing_type = serializers.CharField(help_text="unconditional 无条件 / conditional 有条件；未匹配时为空")
    sharing_type_display = serializers.CharField()
    alternatives = serializers.IntegerField(help_text="另有几个可共享的信息项也能提供该字段")


class ExchangeMatchSummarySerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="字段数")
    matched = serializers.IntegerField(help_text="可通过共享获取（已授权 + 需申请）")
    granted = serializers.IntegerField(help_text="已授权，可直接调用")
    request = serializers.IntegerField(help_text="需申请")
    collect = serializers.IntegerField(help_text="需采集")
    percent = serializers.IntegerField(help_text="可通过共享获取的百分比")


class ExchangeMatchOutputSerializer(serializers.Serializer):
    summary = ExchangeMatchSummarySerializer()
    results = ExchangeMatchResultSerializer(many=True, help_text="与提交顺序相同")


def _unit(request) -> Unit | None:
    ensure_staff_or_system(request)
    key = api_key(request)
    return key.system.unit if key is not None else request.user.acting_unit


class MatchView(APIView):
    api_scope = "exchange"
    permission_classes = [ReadOnlyPost]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="exchange_match",
        tags=["exchange"],
        summary="表单字段共享核验（免于重复采集）",
        description="提交办事表单的字段名称，返回每个字段能否由已发布的共享资源提供、来自哪个资源和信息项、"
        "本单位是否已获授权。只读操作：API 密钥需 exchange:read。",
        request=ExchangeMatchInputSerializer,
        responses={
            200: ExchangeMatchOutputSerializer,
            400: error("输入有误：fields 不是 1–200 个 1–50 字的名称"),
            401: error("未登录或密钥无效"),
            403: error("密钥无 exchange:read，或不是机关工作人员"),
        },
    )
    def post(self, request):
        unit = _unit(request)
        data = request.data if isinstance(request.data, dict) else {"fields": None}
        serializer = ExchangeMatchInputSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        labels = [label.strip() for label in serializer.validated_data["fields"]]
        matches = matching.fields_match(labels=labels, unit=unit)
        return Response({"summary": matching.summary(matches), "results": [m.as_dict() for m in matches]})
