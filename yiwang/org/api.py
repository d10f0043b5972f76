"""org through the API: units, people, roles and "who am I"."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.response import Response

from yiwang.core.api import IsAuthenticatedScoped
from yiwang.core.validators import normalise_mobile, validate_mobile, validate_visible_text

from . import selectors, services
from . import usage as usage_selectors
from .backends import user_for_login
from .models import Delegation, Post, Role, Unit, User


class UnitSerializer(serializers.ModelSerializer):
    parent = serializers.PrimaryKeyRelatedField(queryset=Unit.objects.all(), allow_null=True, required=False)

    class Meta:
        model = Unit
        fields = [
            "id",
            "name",
            "short_name",
            "code",
            "kind",
            "parent",
            "depth",
            "status",
            "sort_order",
            "phone",
            "address",
        ]
        read_only_fields = ["depth", "status"]


class PostSerializer(serializers.ModelSerializer):
    unit_name = serializers.CharField(source="unit.name", read_only=True)
    role = serializers.SlugRelatedField(slug_field="code", queryset=Role.objects.filter(is_public=False))

    class Meta:
        model = Post
        fields = ["id", "unit", "unit_name", "role", "title", "leader_rank", "is_primary"]


class PersonSerializer(serializers.ModelSerializer):
    posts = PostSerializer(many=True, source="active_posts", read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "full_name", "mobile", "email", "is_active", "posts"]


class PersonCreateSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]+$", max_length=150)
    full_name = serializers.CharField(max_length=50, validators=[validate_visible_text])
    mobile = serializers.CharField(max_length=20, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    password = serializers.CharField(min_length=8, required=False, write_only=True)
    posts = PostSerializer(many=True)

    def validate_username(self, value):
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("该用户名已被使用。")
        return value

    def validate_mobile(self, value):
        if not value:
            return None
        try:
            validate_mobile(value)
        except ValidationError as error:
            raise serializers.ValidationError(error.messages) from None
        if User.objects.filter(mobile=normalise_mobile(value)).exists():
            raise serializers.ValidationError("该手机号码已登记给其他人员。")
        return normalise_mobile(value)

    def validate_posts(self, value):
        if not value:
            raise serializers.ValidationError("至少需要一个岗位。")
        return value


class RoleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Role
        fields = ["code", "name", "scope", "description"]


class UnitMergeSerializer(serializers.Serializer):
    into = serializers.IntegerField(min_value=1, help_text="并入单位的 id；下级单位和在岗人员转到该单位")


class UnitAbolishSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, validators=[validate_visible_text], help_text="撤销依据，如文件文号")


class DelegationSerializer(serializers.ModelSerializer):
    principal = serializers.CharField(source="principal.username", read_only=True)
    delegate = serializers.CharField(
        source="delegate.username", max_length=150, help_text="代理人用户名或手机号（创建时）"
    )
    is_current = serializers.BooleanField(read_only=True)

    class Meta:
        model = Delegation
        fields = ["id", "principal", "delegate", "starts_at", "ends_at", "reason", "revoked_at", "is_current"]
        read_only_fields = ["revoked_at"]


def _as_api_error(error: ValidationError):
    return serializers.ValidationError(error.message_dict if hasattr(error, "error_dict") else error.messages)


@extend_schema_view(
    list=extend_schema(
        summary="单位列表",
        parameters=[
            OpenApiParameter("q", str, description="关键词（名称、简称、代码）"),
            OpenApiParameter("kind", str, enum=Unit.Kind.values),
            OpenApiParameter("status", str, enum=Unit.Status.values),
        ],
    ),
    retrieve=extend_schema(summary="单位详情"),
    create=extend_schema(summary="新增单位"),
    partial_update=extend_schema(summary="修改单位"),
)
class UnitViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = UnitSerializer
    api_scope = "org"
    permission_classes = [IsAuthenticatedScoped]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        params = self.request.query_params
        return selectors.unit_list(
            user=self.request.user, q=params.get("q", ""), kind=params.get("kind", ""), status=params.get("status", "")
        )

    def perform_create(self, serializer):
        try:
            serializer.instance = services.unit_create(actor=self.request.user, **serializer.validated_data)
        except ValidationError as error:
            raise _as_api_error(error) from None

    def perform_update(self, serializer):
        try:
            serializer.instance = services.unit_update(
                actor=self.request.user, unit=serializer.instance, **serializer.validated_data
            )
        except ValidationError as error:
            raise _as_api_error(error) from None

    @extend_schema(summary="合并单位（机构合并）", request=UnitMergeSerializer, responses=UnitSerializer)
    @action(detail=True, methods=["post"])
    def merge(self, request, pk=None):
        unit = self.get_object()
        incoming = UnitMergeSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        into = selectors.unit_list(user=request.user).filter(pk=incoming.validated_data["into"]).first()
        if into is None:
            raise serializers.ValidationError({"into": [_("并入单位不存在或无权查看。")]})
        try:
            unit = services.unit_merge(actor=request.user, unit=unit, into=into)
        except ValidationError as error:
            raise _as_api_error(error) from None
        return Response(UnitSerializer(unit).data)

    @extend_schema(summary="撤销单位（机构撤销）", request=UnitAbolishSerializer, responses=UnitSerializer)
    @action(detail=True, methods=["post"])
    def abolish(self, request, pk=None):
        unit = self.get_object()
        incoming = UnitAbolishSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        try:
            unit = services.unit_abolish(actor=request.user, unit=unit, reason=incoming.validated_data["reason"])
        except ValidationError as error:
            raise _as_api_error(error) from None
        return Response(UnitSerializer(unit).data)


@extend_schema_view(
    list=extend_schema(
        summary="人员列表",
        parameters=[
            OpenApiParameter("q", str, description="姓名、用户名或手机号"),
            OpenApiParameter("unit", int),
            OpenApiParameter("role", str),
        ],
    ),
    retrieve=extend_schema(summary="人员详情"),
    create=extend_schema(summary="新增人员", request=PersonCreateSerializer, responses=PersonSerializer),
)
class PersonViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    serializer_class = PersonSerializer
    api_scope = "org"
    permission_classes = [IsAuthenticatedScoped]

    def get_queryset(self):
        params = self.request.query_params
        unit = params.get("unit")
        return selectors.person_list(
            user=self.request.user,
            q=params.get("q", ""),
            unit=int(unit) if unit and unit.isdigit() else None,
            role=params.get("role", ""),
        )

    def create(self, request, *args, **kwargs):
        incoming = PersonCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        specs = [services.PostSpec(**post) for post in data.pop("posts")]
        try:
            person = services.person_create(actor=request.user, posts=specs, **data)
        except ValidationError as error:
            raise _as_api_error(error) from None
        person = self.get_queryset().get(pk=person.pk)
        return Response(PersonSerializer(person).data, status=201)


@extend_schema_view(
    list=extend_schema(summary="委托列表（本人给出或收到的）"),
    retrieve=extend_schema(summary="委托详情"),
    create=extend_schema(summary="设置委托（本人委托他人代理）"),
)
class DelegationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = DelegationSerializer
    api_scope = "org"
    permission_classes = [IsAuthenticatedScoped]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Delegation.objects.none()
        return selectors.delegation_list(user=self.request.user).order_by("-starts_at", "-id")

    def perform_create(self, serializer):
        data = serializer.validated_data
        delegate = user_for_login(data["delegate"]["username"])
        if delegate is None or delegate.is_system:
            raise serializers.ValidationError({"delegate": [_("找不到该人员。")]})
        try:
            serializer.instance = services.delegation_create(
                actor=self.request.user,
                principal=self.request.user,
                delegate=delegate,
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                reason=data["reason"],
            )
        except ValidationError as error:
            raise _as_api_error(error) from None

    @extend_schema(summary="撤销委托", request=None, responses=DelegationSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        delegation = services.delegation_revoke(actor=request.user, delegation=self.get_object())
        return Response(DelegationSerializer(delegation).data)


@extend_schema_view(list=extend_schema(summary="角色列表"), retrieve=extend_schema(summary="角色详情"))
class RoleViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = RoleSerializer
    api_scope = "org"
    queryset = Role.objects.all()
    lookup_field = "code"


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    full_name = serializers.CharField()
    acting_unit = serializers.CharField(allow_null=True)
    posts = PostSerializer(many=True)


@extend_schema(summary="当前用户", responses=MeSerializer)
@api_view(["GET"])
def me(request):
    user = request.user
    return Response(
        MeSerializer(
            {
                "id": user.pk,
                "username": user.username,
                "full_name": user.get_full_name(),
                "acting_unit": str(user.acting_unit) if user.acting_unit else None,
                "posts": user.own_posts,
            }
        ).data
    )


me.cls.api_scope = "org"


# --- usage (应用情况) ---------------------------------------------------------------------------


class UsageQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="起始日期（含），默认截止日期前 29 天")
    end = serializers.DateField(required=False, help_text="截止日期（含），默认今天")
    module = serializers.CharField(required=False, allow_blank=True, max_length=32, help_text="模块代码")
    unit = serializers.IntegerField(required=False, min_value=1, help_text="单位编号")

    def validate(self, data):
        from django.utils import timezone

        end = data.get("end") or timezone.localdate()
        start = data.get("start") or end - dt.timedelta(days=29)
        try:
            usage_selectors.period_check(start, end)
        except ValidationError as error:
            raise serializers.ValidationError({"end": error.messages}) from error
        return {**data, "start": start, "end": end}


class ModuleUsageSerializer(serializers.Serializer):
    module = serializers.CharField()
    name = serializers.CharField()
    active_users = serializers.IntegerField()
    actions = serializers.IntegerField()
    active_units = serializers.IntegerField()


class UnitUsageSerializer(serializers.Serializer):
    unit_id = serializers.IntegerField()
    unit_name = serializers.CharField()
    module = serializers.CharField()
    active_users = serializers.IntegerField()
    actions = serializers.IntegerField()


class DayUsageSerializer(serializers.Serializer):
    day = serializers.DateField()
    active_users = serializers.IntegerField()
    actions = serializers.IntegerField()


class SystemUsageSerializer(serializers.Serializer):
    system_id = serializers.IntegerField()
    name = serializers.CharField()
    unit_name = serializers.CharField()
    calls = serializers.IntegerField()
    active_days = serializers.IntegerField()


class IdleUnitSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    code = serializers.CharField()


class UsageSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    modules = ModuleUsageSerializer(many=True)
    units = UnitUsageSerializer(many=True)
    daily = DayUsageSerializer(many=True)
    systems = SystemUsageSerializer(many=True)
    idle_units = IdleUnitSerializer(many=True, allow_null=True, help_text="给了 module 时：这段时间从未使用它的单位")


@extend_schema(
    summary="应用情况（使用量）",
    description="按模块、单位、日期统计活跃人数和操作次数，接入系统的接口调用次数，及从未使用某模块的单位。"
    "范围与列表页相同：只统计调用者可见的单位。",
    parameters=[UsageQuerySerializer],
    responses=UsageSerializer,
)
@api_view(["GET"])
@permission_classes([IsAuthenticatedScoped])
def usage(request):
    query = UsageQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    params = query.validated_data
    user, start, end = request.user, params["start"], params["end"]
    module, unit_id = params.get("module", ""), params.get("unit")
    body = {
        "start": start,
        "end": end,
        "modules": usage_selectors.module_usage(user=user, start=start, end=end, unit_id=unit_id),
        "units": usage_selectors.unit_usage(user=user, start=start, end=end, module=module),
        "daily": usage_selectors.daily_usage(user=user, start=start, end=end, module=module, unit_id=unit_id),
        "systems": usage_selectors.system_usage(user=user, start=start, end=end),
        "idle_units": usage_selectors.idle_units(user=user, module=module, start=start, end=end) if module else None,
    }
    return Response(UsageSerializer(body).data)


usage.cls.api_scope = "org"  # a key needs org:read
