"""Subscriptions through the API (API key only): a consumer system manages its own subscriptions
and pulls a resource's changes by cursor.

* ``/api/exchange/subscriptions/``: list, create (``exchange:write``; the signing secret is in
  the 201 answer and never again), retrieve, ``PATCH`` the webhook, ``DELETE`` to cancel,
  ``POST {id}/retry/`` to push again at once.
* ``GET /api/exchange/gateway/<code>/changes/?cursor=&limit=``: the changes after ``cursor``
  that the grant covers (``exchange:read``), oldest first; send ``next_cursor`` next time.
  Every pull is audited like a gateway read.

Errors are ``{"error": {"code", "message", "details"}}``: 400 bad input (``details`` names the
field), 401 no or bad key, 403 no live grant or a key without the scope, 404 not found, 409 the
state does not allow it (already subscribed, cancelled, not a registry-backed resource).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, Throttled
from rest_framework.response import Response
from rest_framework.views import APIView

from yiwang.core.api import ApiError, IsAuthenticatedScoped, JSONParser, parse_id
from yiwang.org.api_auth import ApiKeyAuthentication
from yiwang.org.models import ConsumerSystem

from .. import gateway, services, subscriptions
from ..models import Subscription
from .common import api_key, error, service_errors

# --- serializers ------------------------------------------------------------------------------


class ExchangeSubscriptionInputSerializer(serializers.Serializer):
    resource_code = serializers.RegexField(
        r"^[1-3][0-9]{8}/[0-9]{6}$", max_length=20, help_text="资源代码，如 101001001/000001（须已获授权）"
    )
    webhook_url = serializers.CharField(
        max_length=300,
        required=False,
        allow_blank=True,
        default="",
        help_text="推送地址（http/https，须为公网地址或平台允许的主机）；留空则只能按游标拉取",
    )


class ExchangeSubscriptionUpdateSerializer(serializers.Serializer):
    webhook_url = serializers.CharField(max_length=300, allow_blank=True, help_text="新的推送地址；空串表示只拉取")


class ExchangeSubscriptionSerializer(serializers.ModelSerializer):
    system = serializers.CharField(source="system.name", help_text="业务系统")
    backlog = serializers.SerializerMethodField(help_text="游标之后尚未推送的变更条数")

    class Meta:
        model = Subscription
        fields = [
            "id",
            "system",
            "resource_code",
            "webhook_url",
            "active",
            "cursor",
            "backlog",
            "failures",
            "next_attempt_at",
            "last_error",
            "last_pushed_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_backlog(self, subscription: Subscription) -> int:
        return subscriptions.backlog(subscription)


class ExchangeSubscriptionCreatedSerializer(ExchangeSubscriptionSerializer):
    secret = serializers.CharField(
        help_text="签名密钥，只在创建时返回一次：推送请求头 X-Yiwang-Signature 为以此密钥对"
        "“{X-Yiwang-Timestamp}.{请求体}”计算的 HMAC-SHA256（十六进制）"
    )

    class Meta(ExchangeSubscriptionSerializer.Meta):
        fields = [*ExchangeSubscriptionSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class ExchangeChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="变更编号（游标）")
    key = serializers.CharField(help_text="记录标识；个人信息未授权明文时已脱敏")
    op = serializers.ChoiceField(choices=["created", "updated", "deleted"], help_text="新增 / 修改 / 删除")
    items = serializers.ListField(child=serializers.CharField(), help_text="变更的信息项（仅授权范围内）")
    changed_at = serializers.DateTimeField()


class ExchangeChangesPageSerializer(serializers.Serializer):
    resource = serializers.CharField(help_text="资源代码")
    cursor = serializers.IntegerField(help_text="本次请求的游标")
    next_cursor = serializers.IntegerField(help_text="下次请求的游标")
    has_more = serializers.BooleanField(help_text="是否还有更多变更（立即再取）")
    count = serializers.IntegerField()
    changes = ExchangeChangeSerializer(many=True)


ERRORS = {401: error("缺少 API 密钥，或密钥无效"), 403: error("密钥权限不足，或未获得该资源的授权")}
ID_PARAM = OpenApiParameter("id", int, OpenApiParameter.PATH, description="订阅编号（正整数）")


# --- helpers ----------------------------------------------------------------------------------


def _system(request) -> ConsumerSystem:
    key = api_key(request)
    if key is None:
        raise PermissionDenied(_("请使用业务系统的 API 密钥。"))
    return key.system


class _KeyOnly:
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticatedScoped]
    api_scope = "exchange"


# --- views ------------------------------------------------------------------------------------


class SubscriptionViewSet(_KeyOnly, viewsets.GenericViewSet):
    """The calling system's subscriptions (订阅)."""

    parser_classes = [JSONParser]
    queryset = Subscription.objects.none()
    serializer_class = ExchangeSubscriptionSerializer

    def _mine(self):
        return Subscription.objects.select_related("system").filter(system=_system(self.request))

    def _get(self, pk) -> Subscription:
        subscription = self._mine().filter(pk=parse_id(pk, _("订阅编号"))).first()
        if subscription is None:
            raise Http404
        return subscription

    @extend_schema(summary="本系统的订阅", responses={200: ExchangeSubscriptionSerializer(many=True), **ERRORS})
    def list(self, request):
        page = self.paginate_queryset(self._mine().order_by("id"))
        return self.get_paginated_response(ExchangeSubscriptionSerializer(page, many=True).data)

    @extend_schema(
        summary="订阅资源变更",
        description="须持有该资源的有效授权，资源须接入基础库。新订阅从当前最新变更开始；"
        "应答中的 secret 是推送签名密钥，只返回这一次。已取消的订阅再次创建时重新启用并生成新密钥。",
        request=ExchangeSubscriptionInputSerializer,
        responses={
            201: ExchangeSubscriptionCreatedSerializer,
            400: error("输入有误：资源不存在或未发布、推送地址无效或指向内网"),
            **ERRORS,
            409: error("已订阅该资源（请用 PATCH 修改推送地址）"),
        },
    )
    def create(self, request):
        serializer = ExchangeSubscriptionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        system = _system(request)
        existing = Subscription.objects.filter(system=system, resource_code=data["resource_code"], active=True)
        if existing.exists():
            raise ApiError(_("本系统已订阅该资源，请用 PATCH 修改推送地址。"), code="conflict", status=409)
        with service_errors():
            subscription, secret = subscriptions.subscription_save(
                actor=request.user, system=system, resource_code=data["resource_code"], webhook_url=data["webhook_url"]
            )
        subscription.secret = secret
        return Response(ExchangeSubscriptionCreatedSerializer(subscription).data, status=201)

    @extend_schema(
        summary="订阅详情",
        parameters=[ID_PARAM],
        responses={200: ExchangeSubscriptionSerializer, 400: error("编号无效"), **ERRORS, 404: error("不存在")},
    )
    def retrieve(self, request, pk=None):
        return Response(ExchangeSubscriptionSerializer(self._get(pk)).data)

    @extend_schema(
        summary="修改推送地址",
        parameters=[ID_PARAM],
        request=ExchangeSubscriptionUpdateSerializer,
        responses={
            200: ExchangeSubscriptionSerializer,
            400: error("推送地址无效或指向内网"),
            **ERRORS,
            404: error("不存在"),
            409: error("订阅已取消"),
        },
    )
    def partial_update(self, request, pk=None):
        subscription = self._get(pk)
        serializer = ExchangeSubscriptionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not subscription.active:
            raise ApiError(_("订阅已取消，请重新创建订阅。"), code="conflict", status=409)
        with service_errors():
            subscription, _secret = subscriptions.subscription_save(
                actor=request.user,
                system=subscription.system,
                resource_code=subscription.resource_code,
                webhook_url=serializer.validated_data["webhook_url"],
            )
        return Response(ExchangeSubscriptionSerializer(subscription).data)

    @extend_schema(
        summary="取消订阅",
        parameters=[ID_PARAM],
        request=None,
        responses={204: None, 400: error("编号无效"), **ERRORS, 404: error("不存在"), 409: error("已停用")},
    )
    def destroy(self, request, pk=None):
        subscription = self._get(pk)
        with service_errors():
            subscriptions.subscription_cancel(actor=request.user, subscription=subscription)
        return Response(status=204)

    @extend_schema(
        summary="立即重新推送",
        description="推送失败后修好了接收端：清零失败次数并在半分钟内重新推送（连续失败停用的订阅会重新启用）。",
        parameters=[ID_PARAM],
        request=None,
        responses={
            200: ExchangeSubscriptionSerializer,
            **ERRORS,
            404: error("不存在"),
            409: error("没有推送地址、已取消或授权已失效"),
        },
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        subscription = self._get(pk)
        with service_errors():
            subscription = subscriptions.subscription_retry(actor=request.user, subscription=subscription)
        return Response(ExchangeSubscriptionSerializer(subscription).data)


CODE = OpenApiParameter(
    "code", OpenApiTypes.STR, OpenApiParameter.PATH, description="资源代码，如 101001001/000001",
    pattern=r"^[1-3][0-9]{8}/[0-9]{6}$",
)  # fmt: skip


class ChangesView(_KeyOnly, APIView):
    """``GET gateway/<code>/changes/``: a resource's changes after a cursor."""

    @extend_schema(
        operation_id="exchange_gateway_changes",
        tags=["exchange-gateway"],
        summary="按游标拉取变更",
        description="返回游标之后、授权信息项范围内的变更（旧的在前）。只说明哪条记录的哪些信息项变了，"
        "取值请调用记录查询接口。首次 cursor=0 取全部历史，之后传上次返回的 next_cursor；has_more 为 true "
        "时立即再取。每次拉取写入审计。",
        parameters=[
            CODE,
            OpenApiParameter("cursor", OpenApiTypes.INT, description="上次返回的 next_cursor（首次 0）", default=0),
            OpenApiParameter(
                "limit", OpenApiTypes.INT, description="最多返回条数（1–每页上限，默认每页上限）", required=False
            ),
        ],
        responses={
            200: ExchangeChangesPageSerializer,
            400: error("cursor 或 limit 无效"),
            **ERRORS,
            404: error("资源不存在、未发布或已撤销"),
            409: error("资源未接入基础库，没有变更记录"),
            429: error("超过本系统对该资源的每分钟调用上限（与记录查询共用）"),
        },
        auth=[{"ApiKey": []}],
    )
    def get(self, request, code: str):
        system = _system(request)
        params = request.query_params
        grant = services.grant_live(system=system, resource_code=code)
        if gateway.rate_exceeded(system_id=system.pk, code=code, per_minute=grant.per_minute if grant else None):
            raise Throttled(wait=60 - time.time() % 60)  # pulls share the record reads' per-minute limit
        with service_errors():
            page = subscriptions.changes_pull_page(
                system=system,
                resource_code=code,
                cursor=params.get("cursor", "0"),
                limit=params.get("limit", str(settings.YIWANG_EXCHANGE_MAX_PAGE)),
            )
        cursor = int(params.get("cursor", "0"))
        return Response({**page, "cursor": cursor, "count": len(page["changes"])})
