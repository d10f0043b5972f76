"""``/api/exchange/requests/`` and ``/api/exchange/grants/``: access requests (共享申请) and grants (授权).

* ``POST /requests/`` with a consumer system's key (``exchange:write``): the key's own system asks
  for items of a published resource (named by its code). Unconditional items in masked form are
  granted at once (201 with ``status: granted``); anything else waits for the provider (``pending``,
  ``due_date`` 10 working days on). A person's session names the ``system`` of their unit.
* ``GET /requests/``, ``GET /requests/{id}/``: a key sees its system's requests; a person those of
  their units as consumer or provider (all of them: the e-gov office).
* ``POST /requests/{id}/decide/`` (provider leader holding the task, or the e-gov office) and
  ``POST /requests/{id}/withdraw/`` (the requesting unit or system).
* ``GET /grants/``, ``GET /grants/{id}/``: a key sees its own system's grants; a person those their
  units hold or give. ``POST /grants/{id}/revoke/`` and ``/limit/``: the provider or the e-gov office.

Errors are ``{"error": {"code", "message", "details"}}``: 400 invalid input (``details`` names the
field), 401 no or bad key, 403 not allowed, 404 not found (or not visible), 409 the request or
grant is not in a state that allows the action (already answered, duplicate open request, …).
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from yiwang.core.api import IsAuthenticatedScoped, JSONParser, parse_id, unstorable
from yiwang.org.models import ConsumerSystem

from .. import selectors, services
from ..models import RESOURCE_CODE_RE, AccessRequest, Grant
from .catalog import CONFLICT, ERRORS, ExchangeReasonSerializer
from .common import StaffOrSystemMixin, api_key, service_errors, valid

# --- serializers -----------------------------------------------------------------------------


class ExchangeAccessRequestSerializer(serializers.ModelSerializer):
    resource = serializers.CharField(source="entry.code", help_text="资源代码")
    resource_name = serializers.CharField(source="entry.name", help_text="资源名称")
    entry = serializers.IntegerField(source="entry_id", help_text="申请时的目录条目（版本）ID")
    system = serializers.IntegerField(source="system_id", help_text="申请的业务系统 ID")
    system_name = serializers.CharField(source="system.name")
    unit = serializers.IntegerField(source="unit_id", help_text="申请单位 ID")
    provider = serializers.IntegerField(source="entry.provider_id", help_text="提供方单位 ID")
    status = serializers.CharField(
        help_text="pending 待答复 / escalated 逾期已提交电子政务办 / granted 已同意 / refused 不予同意 / "
        "withdrawn 已撤回"
    )
    status_display = serializers.CharField(source="get_status_display", help_text="状态（中文）")
    items = serializers.ListField(child=serializers.CharField(), help_text="申请（同意后为同意）的信息项代码")
    unmasked = serializers.ListField(child=serializers.CharField(), help_text="申请（同意后为同意）明文的信息项")
    case = serializers.IntegerField(source="case_id", allow_null=True, help_text="答复流程实例（有条件时）")

    class Meta:
        model = AccessRequest
        fields = [
            "id", "resource", "resource_name", "entry", "system", "system_name", "unit", "provider", "items",
            "unmasked", "purpose", "legal_basis", "service_item", "status", "status_display", "due_date",
            "escalated_at", "decided_at", "reason", "case", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ExchangeAccessRequestInputSerializer(serializers.Serializer):
    resource = serializers.RegexField(RESOURCE_CODE_RE, max_length=20, help_text="资源代码，如 101001001/000001")
    items = serializers.ListField(
        child=serializers.CharField(max_length=40), min_length=1, max_length=200, help_text="申请的信息项代码"
    )
    unmasked = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        default=list,
        max_length=200,
        help_text="申请明文的个人信息项（须在 items 中）；不填则个人信息脱敏返回",
    )
    purpose = serializers.CharField(max_length=500, help_text="用途（至少 4 个字）")
    legal_basis = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    service_item = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", help_text="关联的政务服务事项"
    )
    system = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="业务系统 ID（浏览器会话时必填；API 密钥为其本身）"
    )

    def validate(self, data):
        if unstorable(dict(data)):
            raise serializers.ValidationError(_("内容不能包含空字符（\\u0000）。"))
        return data


class ExchangeDecisionSerializer(serializers.Serializer):
    approve = serializers.BooleanField(help_text="true 同意，false 不予同意")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="", help_text="答复意见")
    items = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        allow_null=True,
        default=None,
        help_text="同意的信息项（所申请的一部分；省略为全部）",
    )
    unmasked = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        allow_null=True,
        default=None,
        help_text="同意明文的信息项（省略为所申请的明文项）",
    )


class ExchangeGrantSerializer(serializers.ModelSerializer):
    system = serializers.IntegerField(source="system_id", help_text="业务系统 ID")
    system_name = serializers.CharField(source="system.name")
    unit = serializers.IntegerField(source="unit_id", help_text="使用单位 ID")
    provider = serializers.IntegerField(source="provider_id", help_text="提供方单位 ID")
    items = serializers.ListField(child=serializers.CharField(), help_text="授权的信息项代码")
    unmasked = serializers.ListField(child=serializers.CharField(), help_text="授权明文的个人信息项")
    request = serializers.IntegerField(source="request_id", allow_null=True, help_text="来源申请 ID")
    live = serializers.SerializerMethodField(help_text="是否有效（未撤销、未过期）")

    class Meta:
        model = Grant
        fields = [
            "id", "resource_code", "system", "system_name", "unit", "provider", "items", "unmasked", "purpose",
            "per_minute", "request", "expires_on", "revoked_at", "revoked_reason", "live", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_live(self, grant: Grant) -> bool:
        return services.grant_live(system=grant.system, resource_code=grant.resource_code) == grant


class ExchangeLimitSerializer(serializers.Serializer):
    per_minute = serializers.IntegerField(
        min_value=1, max_value=1_000_000, allow_null=True, help_text="每分钟调用上限；null 为全区默认"
    )


class ExchangeRequestQuerySerializer(serializers.Serializer):
    status = serializers.RegexField(
        "^(" + "|".join([*AccessRequest.Status.values, "open"]) + ")$",
        required=False,
        help_text="pending / escalated / granted / refused / withdrawn，或 open（待答复，含逾期）",
    )
    resource = serializers.CharField(required=False, max_length=20, help_text="资源代码")


class ExchangeGrantQuerySerializer(serializers.Serializer):
    resource = serializers.CharField(required=False, max_length=20, help_text="资源代码")
    live = serializers.BooleanField(required=False, allow_null=True, default=None, help_text="只看有效 / 只看失效")


ID_PARAM = OpenApiParameter("id", int, OpenApiParameter.PATH, description="ID（正整数）")


# --- helpers ------------------------------------------------------------------------------------


def _requests(request) -> QuerySet[AccessRequest]:
    key = api_key(request)
    qs = selectors.requests_visible(request.user)
    return qs.filter(system_id=key.system_id) if key is not None else qs


def _grants(request) -> QuerySet[Grant]:
    key = api_key(request)
    if key is not None:
        return Grant.objects.select_related("system").filter(system_id=key.system_id)
    return selectors.grants_visible(request.user)


class AccessViewMixin:
    api_scope = "exchange"
    permission_classes = [IsAuthenticatedScoped]
    parser_classes = [JSONParser]


# --- views ------------------------------------------------------------------------------------


class AccessRequestViewSet(StaffOrSystemMixin, AccessViewMixin, viewsets.GenericViewSet):
    """Access requests of the caller's system (a key) or units (a session)."""

    serializer_class = ExchangeAccessRequestSerializer
    queryset = AccessRequest.objects.none()

    def _get(self, pk) -> AccessRequest:
        found = _requests(self.request).filter(pk=parse_id(pk)).first()
        if found is None:
            raise Http404
        return found

    @extend_schema(
        summary="共享申请列表",
        description="API 密钥：本系统的申请；浏览器会话：本单位提出或待本单位答复的申请（电子政务办为全部）。",
        parameters=[ExchangeRequestQuerySerializer],
        responses={200: ExchangeAccessRequestSerializer(many=True), 400: ERRORS[400]},
    )
    def list(self, request):
        params = valid(ExchangeRequestQuerySerializer, request.query_params)
        qs = _requests(request)
        if params.get("status") == "open":
            qs = qs.filter(status__in=AccessRequest.OPEN)
        elif params.get("status"):
            qs = qs.filter(status=params["status"])
        if params.get("resource"):
            qs = qs.filter(entry__code=params["resource"])
        page = self.paginate_queryset(qs.order_by("-id"))
        return self.get_paginated_response(ExchangeAccessRequestSerializer(page, many=True).data)

    @extend_schema(
        summary="共享申请详情",
        parameters=[ID_PARAM],
        responses={200: ExchangeAccessRequestSerializer, 400: ERRORS[400], 404: ERRORS[404]},
    )
    def retrieve(self, request, pk=None):
        return Response(ExchangeAccessRequestSerializer(self._get(pk)).data)

    @extend_schema(
        summary="提出共享申请",
        description="API 密钥（exchange:write）为其本身的业务系统申请；浏览器会话须指定本单位的 system。"
        "全部为无条件共享且不申请明文时立即授权（status 为 granted）；否则由提供方在 10 个工作日内答复，"
        "逾期提交电子政务办。同一系统对同一资源已有待答复申请时 409。",
        request=ExchangeAccessRequestInputSerializer,
        responses={201: ExchangeAccessRequestSerializer, **ERRORS, **CONFLICT},
    )
    def create(self, request):
        data = valid(ExchangeAccessRequestInputSerializer, request.data)
        key = api_key(request)
        if key is not None:
            system = key.system
        else:
            if data["system"] is None:
                raise serializers.ValidationError({"system": [_("请指定申请的业务系统。")]})
            system = ConsumerSystem.objects.select_related("unit").filter(pk=data["system"]).first()
            if system is None:
                raise serializers.ValidationError({"system": [_("业务系统不存在。")]})
        entry = services.entry_published(data["resource"])
        if entry is None:
            raise serializers.ValidationError({"resource": [_("资源不存在、未发布或已撤销。")]})
        with service_errors():
            created = services.request_create(
                actor=request.user,
                system=system,
                entry=entry,
                items=data["items"],
                unmasked=data["unmasked"],
                purpose=data["purpose"],
                legal_basis=data["legal_basis"],
                service_item=data["service_item"],
            )
        created = _requests(request).get(pk=created.pk)
        return Response(ExchangeAccessRequestSerializer(created).data, status=201)

    @extend_schema(
        summary="答复共享申请",
        description="提供方答复人（持有该申请待办的领导）或电子政务办答复：同意时可缩小信息项和明文范围，"
        "不予同意须写明理由。浏览器会话使用。",
        parameters=[ID_PARAM],
        request=ExchangeDecisionSerializer,
        responses={200: ExchangeAccessRequestSerializer, **ERRORS, **CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def decide(self, request, pk=None):
        found = self._get(pk)
        data = valid(ExchangeDecisionSerializer, request.data)
        with service_errors():
            decided = services.request_decide(
                actor=request.user,
                request=found,
                approve=data["approve"],
                reason=data["reason"],
                items=data["items"] if data["approve"] else None,
                unmasked=data["unmasked"] if data["approve"] else None,
            )
        return Response(ExchangeAccessRequestSerializer(_requests(request).get(pk=decided.pk)).data)

    @extend_schema(
        summary="撤回共享申请",
        description="申请单位（或业务系统本身）撤回尚未答复的申请。",
        parameters=[ID_PARAM],
        request=None,
        responses={200: ExchangeAccessRequestSerializer, **ERRORS, **CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        found = self._get(pk)
        with service_errors():
            services.request_withdraw(actor=request.user, request=found)
        return Response(ExchangeAccessRequestSerializer(_requests(request).get(pk=found.pk)).data)


class GrantViewSet(StaffOrSystemMixin, AccessViewMixin, viewsets.GenericViewSet):
    """Grants of the key's own system (a key) or of the caller's units (a session)."""

    serializer_class = ExchangeGrantSerializer
    queryset = Grant.objects.none()

    def _get(self, pk) -> Grant:
        found = _grants(self.request).filter(pk=parse_id(pk)).first()
        if found is None:
            raise Http404
        return found

    @extend_schema(
        summary="共享授权列表",
        description="API 密钥：本系统获得的授权；浏览器会话：本单位获得或给出的授权（电子政务办为全部）。",
        parameters=[ExchangeGrantQuerySerializer],
        responses={200: ExchangeGrantSerializer(many=True), 400: ERRORS[400]},
    )
    def list(self, request):
        params = valid(ExchangeGrantQuerySerializer, request.query_params)
        qs = _grants(request)
        if params.get("resource"):
            qs = qs.filter(resource_code=params["resource"])
        if params.get("live") is True:
            qs = qs.filter(revoked_at__isnull=True)
        elif params.get("live") is False:
            qs = qs.filter(revoked_at__isnull=False)
        page = self.paginate_queryset(qs.order_by("-id"))
        return self.get_paginated_response(ExchangeGrantSerializer(page, many=True).data)

    @extend_schema(
        summary="共享授权详情",
        parameters=[ID_PARAM],
        responses={200: ExchangeGrantSerializer, 400: ERRORS[400], 404: ERRORS[404]},
    )
    def retrieve(self, request, pk=None):
        return Response(ExchangeGrantSerializer(self._get(pk)).data)

    @extend_schema(
        summary="撤销授权",
        description="提供方或电子政务办撤销授权，下一次调用即被拒绝。须填写原因。浏览器会话使用。",
        parameters=[ID_PARAM],
        request=ExchangeReasonSerializer,
        responses={200: ExchangeGrantSerializer, **ERRORS, **CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        grant = self._get(pk)
        data = valid(ExchangeReasonSerializer, request.data)
        with service_errors():
            grant = services.grant_revoke(actor=request.user, grant=grant, reason=data["reason"])
        return Response(ExchangeGrantSerializer(grant).data)

    @extend_schema(
        summary="设置调用频率上限",
        description="提供方或电子政务办设置该授权每分钟的调用上限；null 为全区默认。浏览器会话使用。",
        parameters=[ID_PARAM],
        request=ExchangeLimitSerializer,
        responses={200: ExchangeGrantSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def limit(self, request, pk=None):
        grant = self._get(pk)
        data = valid(ExchangeLimitSerializer, request.data)
        with service_errors():
            grant = services.grant_limit(actor=request.user, grant=grant, per_minute=data["per_minute"])
        return Response(ExchangeGrantSerializer(grant).data)
