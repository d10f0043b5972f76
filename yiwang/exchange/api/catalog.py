"""``/api/exchange/entries/``: the resource catalogue (资源目录) through the API.

* ``GET /entries/`` (filters as on the catalogue page, ``q`` full-text) and ``GET /entries/{id}/``
  with the items; ``GET /entries/jsonld/``: the filtered list as a DCAT JSON-LD catalogue.
  A consumer system's key (``exchange:read``) sees published entries; a person's session sees
  what the catalogue page shows (drafts of their own unit too; everything for the e-gov office).
* ``POST /entries/`` (new draft), ``PUT /entries/{id}/`` (edit a draft), ``POST /entries/{id}/submit/``,
  ``/revise/`` (next version as a draft), ``/revoke/``: provider staff in a browser session.

Errors are ``{"error": {"code", "message", "details"}}``: 400 invalid input (``details`` names
the field; item problems are under ``items``), 401 no or bad key, 403 not the provider (or a
key: keys do not keep the catalogue), 404 no such entry (or not visible), 409 the entry is not
in a state that allows the action.
"""

from __future__ import annotations

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from yiwang.core.api import IsAuthenticatedScoped, JSONParser, parse_id, unstorable
from yiwang.org.models import Unit

from .. import selectors, services
from ..models import CLASS_CODE_RE, ITEM_CODE_RE, RESOURCE_CODE_RE, CatalogEntry, DataItem, SharingType
from ..views.catalog import jsonld_catalog
from .common import StaffOrSystemMixin, error, service_errors, valid

# --- serializers ------------------------------------------------------------------------------


class ExchangeDataItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = DataItem
        fields = ["position", "code", "name", "data_type", "length", "sharing_type", "personal", "mask", "synonyms"]
        read_only_fields = fields


class ExchangeEntrySerializer(serializers.ModelSerializer):
    provider = serializers.IntegerField(source="provider_id", help_text="提供方单位 ID")
    provider_name = serializers.CharField(source="provider.name", help_text="提供方单位名称")
    status = serializers.CharField(
        help_text="draft 草稿 / review 审核中 / published 已发布 / superseded 已被新版本替代 / revoked 已撤销"
    )
    status_display = serializers.CharField(source="get_status_display", help_text="状态（中文）")
    sharing_type_display = serializers.CharField(source="get_sharing_type_display", help_text="共享类型（中文）")

    class Meta:
        model = CatalogEntry
        fields = [
            "id", "code", "version", "class_code", "name", "provider", "provider_name", "abstract", "keywords",
            "format", "sharing_type", "sharing_type_display", "sharing_condition", "legal_basis", "share_method",
            "open_type", "update_cycle", "published_on", "related_codes", "registry", "status", "status_display",
            "revoked_reason", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class ExchangeEntryDetailSerializer(ExchangeEntrySerializer):
    items = ExchangeDataItemSerializer(many=True, read_only=True, help_text="信息项（按序号）")
    review_case = serializers.IntegerField(source="review_case_id", allow_null=True, help_text="审核流程实例")

    class Meta(ExchangeEntrySerializer.Meta):
        fields = [*ExchangeEntrySerializer.Meta.fields, "review_case", "items"]
        read_only_fields = fields


class ExchangeDataItemInputSerializer(serializers.Serializer):
    code = serializers.RegexField(ITEM_CODE_RE, max_length=40, help_text="信息项代码：小写字母开头，如 id_number")
    name = serializers.CharField(max_length=50, help_text="信息项名称")
    data_type = serializers.ChoiceField(DataItem.DataType.choices, required=False, default="string")
    length = serializers.IntegerField(min_value=1, max_value=32767, required=False, allow_null=True, default=None)
    sharing_type = serializers.ChoiceField(
        SharingType.choices, required=False, allow_blank=True, default="", help_text="留空与资源相同"
    )
    personal = serializers.BooleanField(required=False, default=False, help_text="是否个人信息（默认脱敏返回）")
    mask = serializers.ChoiceField(DataItem.Mask.choices, required=False, allow_blank=True, default="")
    synonyms = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class ExchangeEntryInputSerializer(serializers.Serializer):
    provider = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="提供方单位 ID（新建时；默认为当前所在单位）"
    )
    class_code = serializers.RegexField(CLASS_CODE_RE, max_length=9, help_text="9 位资源分类码，如 101001001")
    name = serializers.CharField(max_length=100)
    abstract = serializers.CharField(max_length=2000)
    keywords = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    format = serializers.ChoiceField(CatalogEntry.Format.choices, required=False, default="database")
    sharing_type = serializers.ChoiceField(SharingType.choices)
    sharing_condition = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    legal_basis = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    share_method = serializers.ChoiceField(CatalogEntry.ShareMethod.choices, required=False, default="api")
    open_type = serializers.ChoiceField(CatalogEntry.OpenType.choices, required=False, default="closed")
    update_cycle = serializers.ChoiceField(CatalogEntry.UpdateCycle.choices)
    related_codes = serializers.ListField(
        child=serializers.RegexField(RESOURCE_CODE_RE, max_length=20),
        required=False,
        default=list,
        max_length=50,
        help_text="关联资源代码",
    )
    registry = serializers.ChoiceField(
        CatalogEntry.Registry.choices, required=False, allow_blank=True, default="", help_text="数据来源基础库"
    )
    items = ExchangeDataItemInputSerializer(many=True, help_text="信息项（按顺序；至少一项）")

    def validate(self, data):
        if unstorable(dict(data)):
            raise serializers.ValidationError(_("内容不能包含空字符（\\u0000）。"))
        return data


class ExchangeCommentSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="", help_text="说明")


class ExchangeReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="原因")


class ExchangeEntryQuerySerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=100, help_text="全文检索")
    major = serializers.ChoiceField(["1", "2", "3"], required=False, help_text="大类：1 基础、2 主题、3 部门")
    middle = serializers.RegexField(r"^[1-3][0-9]{2}$", required=False, help_text="中类前缀，如 101")
    provider = serializers.IntegerField(required=False, min_value=1, help_text="提供方单位 ID")
    sharing_type = serializers.ChoiceField(SharingType.choices, required=False)
    share_method = serializers.ChoiceField(CatalogEntry.ShareMethod.choices, required=False)
    open_type = serializers.ChoiceField(CatalogEntry.OpenType.choices, required=False)
    update_cycle = serializers.ChoiceField(CatalogEntry.UpdateCycle.choices, required=False)
    registry = serializers.ChoiceField(
        [*[c for c, _l in CatalogEntry.Registry.choices if c], "none"], required=False, help_text="none：仅目录"
    )
    status = serializers.RegexField(
        "^(" + "|".join([*CatalogEntry.Status.values, "all"]) + ")$",
        required=False,
        help_text="draft / review / published / superseded / revoked，或 all（全部版本）；默认：已发布及本单位在编",
    )

    def filters(self) -> selectors.EntryFilters:
        data = self.validated_data
        return selectors.EntryFilters(**{k: v for k, v in data.items() if v not in (None, "")})


ERRORS = {
    400: error("输入有误（details 指明字段）"),
    403: error("无权操作（不是提供方，或 API 密钥不能维护目录）"),
    404: error("不存在或无权查看"),
}
CONFLICT = {409: error("当前状态不允许该操作")}
ID_PARAM = OpenApiParameter("id", int, OpenApiParameter.PATH, description="目录条目 ID（某一版本）")


# --- views -----------------------------------------------------------------------------------------


class EntryViewSet(StaffOrSystemMixin, viewsets.GenericViewSet):
    """Catalogue entries: read for everyone with access; kept by provider staff in a session."""

    api_scope = "exchange"
    permission_classes = [IsAuthenticatedScoped]
    parser_classes = [JSONParser]
    serializer_class = ExchangeEntrySerializer
    queryset = CatalogEntry.objects.none()

    def _get(self, pk) -> CatalogEntry:
        entry = selectors.entry_get(user=self.request.user, pk=parse_id(pk))
        if entry is None:
            raise Http404
        return entry

    def _filtered(self, request):
        query = ExchangeEntryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.entry_list(user=request.user, filters=query.filters())

    @extend_schema(
        summary="资源目录",
        description="按分类、提供方、共享类型等筛选，q 为全文检索。API 密钥只能看到已发布的资源。",
        parameters=[ExchangeEntryQuerySerializer],
        responses={200: ExchangeEntrySerializer(many=True), 400: ERRORS[400]},
    )
    def list(self, request):
        page = self.paginate_queryset(self._filtered(request))
        return self.get_paginated_response(ExchangeEntrySerializer(page, many=True).data)

    @extend_schema(
        summary="目录条目详情",
        description="一个版本的目录条目及其信息项。",
        parameters=[ID_PARAM],
        responses={200: ExchangeEntryDetailSerializer, 400: ERRORS[400], 404: ERRORS[404]},
    )
    def retrieve(self, request, pk=None):
        entry = self._get(pk)
        return Response(ExchangeEntryDetailSerializer(entry).data)

    @extend_schema(
        summary="导出 DCAT JSON-LD",
        description="筛选后的目录（最多 5000 条）作为 DCAT 数据目录（dcat:Catalog / dcat:dataset），JSON-LD 格式。",
        parameters=[ExchangeEntryQuerySerializer],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="JSON-LD（@context 含 dcat、dct）")},
    )
    @action(detail=False, methods=["get"])
    def jsonld(self, request):
        entries = list(self._filtered(request).prefetch_related("items")[:5000])
        return Response(jsonld_catalog(request, entries))

    def _provider(self, request, provider_id: int | None) -> Unit:
        if provider_id is None:
            unit = request.user.acting_unit
            if unit is None:
                raise serializers.ValidationError({"provider": [_("请指定提供方单位。")]})
            return unit
        unit = Unit.objects.filter(pk=provider_id).first()
        if unit is None:
            raise serializers.ValidationError({"provider": [_("提供方单位不存在。")]})
        return unit

    @extend_schema(
        summary="新建目录草稿",
        description="提供方单位（或电子政务办）编制一条目录草稿；资源代码按分类自动编号。仅限浏览器会话。",
        request=ExchangeEntryInputSerializer,
        responses={201: ExchangeEntryDetailSerializer, **ERRORS},
    )
    def create(self, request):
        data = valid(ExchangeEntryInputSerializer, request.data)
        provider = self._provider(request, data.pop("provider"))
        items = data.pop("items")
        with service_errors():
            entry = services.entry_save(actor=request.user, data=data, items=items, provider=provider)
        return Response(ExchangeEntryDetailSerializer(entry).data, status=201)

    @extend_schema(
        summary="修改目录草稿",
        description="整体替换草稿的目录信息和信息项（资源分类不能更改）。只有草稿可以修改。",
        parameters=[ID_PARAM],
        request=ExchangeEntryInputSerializer,
        responses={200: ExchangeEntryDetailSerializer, **ERRORS, **CONFLICT},
    )
    def update(self, request, pk=None):
        entry = self._get(pk)
        data = valid(ExchangeEntryInputSerializer, request.data)
        data.pop("provider")
        items = data.pop("items")
        with service_errors():
            entry = services.entry_save(actor=request.user, data=data, items=items, entry=entry)
        return Response(ExchangeEntryDetailSerializer(entry).data)

    @extend_schema(
        summary="提交审核",
        description="草稿提交电子政务办审核（工作流）；审核通过即发布，退回则回到草稿。",
        parameters=[ID_PARAM],
        request=ExchangeCommentSerializer,
        responses={200: ExchangeEntryDetailSerializer, **ERRORS, **CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        entry = self._get(pk)
        data = valid(ExchangeCommentSerializer, request.data)
        with service_errors():
            entry = services.entry_submit(actor=request.user, entry=entry, comment=data["comment"])
        return Response(ExchangeEntryDetailSerializer(entry).data)

    @extend_schema(
        summary="修订（生成新版本草稿）",
        description="已发布的资源生成下一版本的草稿（已有在编版本时返回它）；新版本发布前现行版本继续有效。",
        parameters=[ID_PARAM],
        request=None,
        responses={201: ExchangeEntryDetailSerializer, **ERRORS, **CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def revise(self, request, pk=None):
        entry = self._get(pk)
        with service_errors():
            draft = services.entry_revise(actor=request.user, entry=entry)
        return Response(ExchangeEntryDetailSerializer(draft).data, status=201)

    @extend_schema(
        summary="撤销资源",
        description="撤销已发布的资源：接口网关立即停止提供；授权保留记录。须填写原因。",
        parameters=[ID_PARAM],
        request=ExchangeReasonSerializer,
        responses={200: ExchangeEntryDetailSerializer, **ERRORS, **CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        entry = self._get(pk)
        data = valid(ExchangeReasonSerializer, request.data)
        with service_errors():
            entry = services.entry_revoke(actor=request.user, entry=entry, reason=data["reason"])
        return Response(ExchangeEntryDetailSerializer(entry).data)
