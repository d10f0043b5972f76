"""``/api/exchange/gateway/``: shared data for consumer systems, by API key only.

Thin views over ``yiwang.exchange.gateway``: every call — served or refused — leaves its
evidence in the audit before the response goes out.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from .. import gateway

RESERVED = {"purpose", "items", "after", "page_size", "format"}


class GatewayErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="not_authenticated / authentication_failed / scope / purpose_required / "
                                 "not_found / not_granted / unknown_item / item_not_granted / invalid_key / "
                                 "page_size / throttled …")  # fmt: skip
    message = serializers.CharField(help_text="中文说明")
    details = serializers.DictField(required=False)


class GatewayErrorSerializer(serializers.Serializer):
    error = GatewayErrorBodySerializer()


class GatewayRecordSerializer(serializers.Serializer):
    resource = serializers.CharField(help_text="资源代码")
    version = serializers.IntegerField(help_text="目录版本")
    record = serializers.DictField(help_text="只含授权的信息项；未授权明文的个人信息项已脱敏")
    masked = serializers.ListField(child=serializers.CharField(), help_text="已脱敏的信息项代码")


class GatewayPageSerializer(serializers.Serializer):
    resource = serializers.CharField()
    version = serializers.IntegerField()
    count = serializers.IntegerField()
    next = serializers.IntegerField(allow_null=True, help_text="下一页的 after 游标；没有更多时为 null")
    records = serializers.ListField(child=serializers.DictField())
    masked = serializers.ListField(child=serializers.CharField())


def _errors(*codes: int) -> dict:
    text = {
        400: "输入有误：缺少用途、信息项不存在、证件号格式错误、分页过大",
        401: "缺少 API 密钥，或密钥无效、已撤销、已过期",
        403: "密钥无查询权限、未获授权、信息项不在授权范围内",
        404: "资源不存在、未发布或已撤销；或没有该记录",
        409: "该资源不以接口方式共享",
        429: "超过本系统对该资源的每分钟调用上限",
    }
    return {code: OpenApiResponse(GatewayErrorSerializer, description=text[code]) for code in codes}


PURPOSE = OpenApiParameter(
    "purpose", OpenApiTypes.STR, OpenApiParameter.QUERY, required=True,
    description="本次调用的用途（4–200 个字），写入审计。例如：义务教育入学资格核验",
)  # fmt: skip
ITEMS = OpenApiParameter(
    "items", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False,
    description="要返回的信息项代码，逗号分隔；省略时返回全部已授权的信息项",
)  # fmt: skip
KEY = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH,
                       description="记录标识：公民身份号码、统一社会信用代码、地址编码或“指标代码:统计期”")  # fmt: skip
CODE = OpenApiParameter("code", OpenApiTypes.STR, OpenApiParameter.PATH, description="资源代码，如 101001001/000001",
                        pattern=r"^[1-3][0-9]{8}/[0-9]{6}$")  # fmt: skip


class GatewayView(APIView):
    """Key-only, no session: the checks are the gateway's own (deny by default)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]

    def initial(self, request, *args, **kwargs):
        """No DRF negotiation, authentication, permissions or throttles: the views answer JSON
        bytes they render themselves, and the gateway does its own checks (it saves ~0.3 ms)."""
        self.format_kwarg = None
        request.accepted_renderer = self.renderer_classes[0]()
        request.accepted_media_type = "application/json"

    def _respond(self, request, code: str, read) -> HttpResponse:
        header = request.META.get("HTTP_AUTHORIZATION", "")

        def authenticated_read(call):
            call.key = gateway.authenticate(call, header)
            return read(call)

        status, body, _count, _refusal = gateway.serve(gateway.call_start(code), authenticated_read)
        response = HttpResponse(body, status=status, content_type="application/json")
        if status == 401:
            response["WWW-Authenticate"] = 'Api-Key realm="yiwang"'
        elif status == 429:
            response["Retry-After"] = "60"
        return response


class RecordView(GatewayView):
    @extend_schema(
        operation_id="exchange_gateway_record",
        tags=["exchange-gateway"],
        summary="按标识查询一条记录",
        description="例如人口基础库按公民身份号码查询。只返回授权的信息项；每次调用写入审计。",
        parameters=[CODE, KEY, PURPOSE, ITEMS],
        responses={200: GatewayRecordSerializer, **_errors(400, 401, 403, 404, 409, 429)},
        auth=[{"ApiKey": []}],
    )  # fmt: skip
    def get(self, request, code: str, key: str):
        params = request.GET
        return self._respond(
            request,
            code,
            lambda call: gateway.record_read(
                call=call, key=key, purpose=params.get("purpose"), items=params.get("items")
            ),
        )


class RecordListView(GatewayView):
    @extend_schema(
        operation_id="exchange_gateway_records",
        tags=["exchange-gateway"],
        summary="分页查询记录",
        description="其他查询参数按已授权信息项的值精确筛选，例如 street=新碶街道。按 after 游标翻页。",
        parameters=[
            CODE, PURPOSE, ITEMS,
            OpenApiParameter("after", OpenApiTypes.INT, OpenApiParameter.QUERY, description="上一页返回的 next"),
            OpenApiParameter("page_size", OpenApiTypes.INT, OpenApiParameter.QUERY, description="每页条数（1–100）"),
        ],
        responses={200: GatewayPageSerializer, **_errors(400, 401, 403, 404, 409, 429)},
        auth=[{"ApiKey": []}],
    )  # fmt: skip
    def get(self, request, code: str):
        params = request.GET
        filters = {name: params.get(name) for name in params if name not in RESERVED}

        def read(call):
            bad = [n for n, v in filters.items() if len(n) > 40 or v is None or len(v) > 200 or not v.isprintable()]
            if bad:
                raise gateway.Refusal(
                    400, "invalid", str(_("筛选条件无效：%(names)s")) % {"names": "、".join(bad[:5])[:100]}
                )
            return gateway.records_list(
                call=call,
                purpose=params.get("purpose"),
                items=params.get("items"),
                filters=filters,
                after=params.get("after"),
                page_size=params.get("page_size"),
            )

        return self._respond(request, code, read)


@extend_schema(exclude=True)
class UnknownPathView(GatewayView):
    """Any other path under ``/api/exchange/gateway/``: the gateway's own 404, with its evidence."""

    def get(self, request, rest: str = ""):
        path = request.path_info
        call_code = rest.split("/records")[0].split("/changes")[0].strip("/")[:64] or "-"
        return self._respond(request, call_code, lambda call: gateway.unknown_path(call=call, path=path))

    post = put = patch = delete = head = options = get
