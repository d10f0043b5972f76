"""``/api/exchange/disputes/``: raise disputes (疑义校核) from a consumer system, follow them, answer.

* ``POST /disputes/`` with an API key holding ``exchange:write``: the key's system raises it
  (it needs a live grant for the resource); a person's session raises it for their unit.
* ``GET /disputes/`` and ``GET /disputes/{id}/``: a key sees its unit's disputes; a person
  those raised by or addressed to the units they may see (everything: the e-gov office).
* ``POST /disputes/{id}/answer/``: the provider, in a browser session (a key is refused).

Errors are ``{"error": {"code", "message", "details"}}``: 400 invalid input (``details`` names
the field), 401 no or bad key, 403 no grant / not the provider / key without the scope,
404 no such dispute (or not visible), 409 already answered.
"""

from __future__ import annotations

from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from yiwang.core.api import ApiError, IsAuthenticatedScoped, JSONParser, parse_id, unstorable

from .. import disputes, services
from ..models import Dispute
from .common import StaffOrSystemMixin, error, service_errors


class ExchangeDisputeInputSerializer(serializers.Serializer):
    resource = serializers.RegexField(
        r"^[1-3][0-9]{8}/[0-9]{6}$", max_length=20, help_text="资源代码，如 101001001/000001（须已发布）"
    )
    record_key = serializers.CharField(
        max_length=64, help_text="记录标识：公民身份号码、统一社会信用代码、地址编码或“指标代码:统计期”"
    )
    item = serializers.CharField(max_length=40, help_text="有疑义的信息项代码，如 address")
    description = serializers.CharField(max_length=2000, help_text="疑义说明（4–2000 字）")
    reported_value = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", help_text="共享数据中现有的值"
    )
    proposed_value = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", help_text="建议更正为"
    )

    def validate(self, data):
        if any(unstorable(value) for value in data.values()):
            raise serializers.ValidationError(_("内容不能包含空字符（\\u0000）。"))
        return data


class ExchangeDisputeAnswerSerializer(serializers.Serializer):
    corrected = serializers.BooleanField(help_text="true：数据有误，已更正；false：数据无误")
    answer = serializers.CharField(max_length=2000, help_text="核实意见")
    new_value = serializers.CharField(
        max_length=200,
        required=False,
        allow_null=True,
        default=None,
        help_text="更正后的值（corrected 为 true 时；省略时用建议值）。接入基础库的资源将直接更正基础库",
    )

    def validate(self, data):
        if any(unstorable(value) for value in data.values() if isinstance(value, str)):
            raise serializers.ValidationError(_("内容不能包含空字符（\\u0000）。"))
        return data


class ExchangeDisputeSerializer(serializers.ModelSerializer):
    resource = serializers.CharField(source="entry.code", help_text="资源代码")
    resource_name = serializers.CharField(source="entry.name", help_text="资源名称")
    provider = serializers.CharField(source="provider.name", help_text="提供方")
    unit = serializers.CharField(source="unit.name", help_text="提出单位")
    system = serializers.CharField(source="system.name", allow_null=True, default=None, help_text="提出的业务系统")
    status = serializers.CharField(help_text="open 待核实 / corrected 已更正 / answered 已答复（数据无误）")
    status_display = serializers.CharField(source="get_status_display", help_text="状态（中文）")
    overdue = serializers.SerializerMethodField(help_text="待核实且已超过核实期限")

    class Meta:
        model = Dispute
        fields = [
            "id",
            "resource",
            "resource_name",
            "provider",
            "unit",
            "system",
            "record_key",
            "item",
            "reported_value",
            "proposed_value",
            "description",
            "status",
            "status_display",
            "due_date",
            "overdue",
            "answer",
            "answered_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_overdue(self, dispute: Dispute) -> bool:
        return disputes.is_overdue(dispute)


ID_PARAM = OpenApiParameter("id", int, OpenApiParameter.PATH, description="疑义编号（正整数）")
LIST_PARAMS = [
    OpenApiParameter("status", str, description="open 待核实 / corrected 已更正 / answered 已答复"),
    OpenApiParameter("resource", str, description="资源代码"),
    OpenApiParameter("overdue", bool, description="true：只看已超期的"),
]


class DisputeViewSet(StaffOrSystemMixin, viewsets.GenericViewSet):
    """Disputes about shared records (疑义校核)."""

    api_scope = "exchange"
    permission_classes = [IsAuthenticatedScoped]
    parser_classes = [JSONParser]
    queryset = Dispute.objects.none()
    serializer_class = ExchangeDisputeSerializer

    def _visible(self):
        return disputes.disputes_visible(user=self.request.user)

    def _get(self, pk) -> Dispute:
        dispute = self._visible().filter(pk=parse_id(pk, _("疑义编号"))).first()
        if dispute is None:
            raise Http404
        return dispute

    @extend_schema(
        summary="疑义列表",
        description="API 密钥：本单位提出的疑义；会话：本人可见单位提出的和须答复的疑义（电子政务办可见全部）。",
        parameters=LIST_PARAMS,
        responses={200: ExchangeDisputeSerializer(many=True), 401: error("未认证"), 403: error("密钥无读取权限")},
    )
    def list(self, request):
        qs = self._visible()
        params = request.query_params
        status = params.get("status", "")
        if status and status not in Dispute.Status.values:
            raise serializers.ValidationError({"status": [_("状态须为 open、corrected 或 answered。")]})
        if status:
            qs = qs.filter(status=status)
        if params.get("resource"):
            qs = qs.filter(entry__code=params["resource"][:20])
        if params.get("overdue") in ("1", "true"):
            qs = qs.filter(status=Dispute.Status.OPEN, due_date__lt=timezone.localdate())
        page = self.paginate_queryset(qs.order_by("-id"))
        return self.get_paginated_response(ExchangeDisputeSerializer(page, many=True).data)

    @extend_schema(
        summary="疑义详情",
        parameters=[ID_PARAM],
        responses={200: ExchangeDisputeSerializer, 400: error("编号无效"), 404: error("不存在或无权查看")},
    )
    def retrieve(self, request, pk=None):
        return Response(ExchangeDisputeSerializer(self._get(pk)).data)

    @extend_schema(
        summary="提出疑义",
        description="对已发布资源的一条记录的一个信息项提出疑义。使用 API 密钥时由密钥所属业务系统提出，"
        "须持有该资源的有效授权；提供方须在规定工作日内核实答复。",
        request=ExchangeDisputeInputSerializer,
        responses={
            201: ExchangeDisputeSerializer,
            400: error("输入有误（details 指明字段），或已有相同的待核实疑义"),
            401: error("未认证"),
            403: error("未获得该资源的授权，或密钥无 exchange:write 权限"),
        },
    )
    def create(self, request):
        serializer = ExchangeDisputeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        entry = services.entry_published(data["resource"])
        if entry is None:
            raise serializers.ValidationError({"resource": [_("资源不存在或未发布。")]})
        dispute = disputes.dispute_raise(
            actor=request.user,
            entry=entry,
            record_key=data["record_key"],
            item=data["item"],
            description=data["description"],
            reported_value=data["reported_value"],
            proposed_value=data["proposed_value"],
        )
        return Response(ExchangeDisputeSerializer(dispute).data, status=201)

    @extend_schema(
        summary="答复疑义（提供方）",
        description="提供方核实后答复：corrected=true 时更正数据（接入基础库的资源直接更正基础库，订阅方可见）；"
        "false 表示数据无误。仅限提供方人员的会话，API 密钥不能答复。",
        parameters=[ID_PARAM],
        request=ExchangeDisputeAnswerSerializer,
        responses={
            200: ExchangeDisputeSerializer,
            400: error("输入有误"),
            403: error("不是提供方"),
            404: error("不存在或无权查看"),
            409: error("已答复"),
        },
    )
    @action(detail=True, methods=["post"])
    def answer(self, request, pk=None):
        dispute = self._get(pk)
        serializer = ExchangeDisputeAnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if dispute.status != Dispute.Status.OPEN and disputes.can_answer(request.user, dispute):
            raise ApiError(_("该疑义已答复，不能再次答复。"), code="conflict", status=409)
        with service_errors():
            dispute = disputes.dispute_answer(
                actor=request.user,
                dispute=dispute,
                corrected=data["corrected"],
                answer=data["answer"],
                new_value=data["new_value"],
            )
        return Response(ExchangeDisputeSerializer(dispute).data)
