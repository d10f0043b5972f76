"""``/api/exchange/imports/``: loading files into the base registries (基础库导入).

* ``POST /imports/`` (multipart/form-data: ``registry`` and ``file``): a CSV (UTF-8 or GB18030)
  or .xlsx of up to 200 MB whose header row names the columns (Chinese labels or codes, as in the
  template of the registry page). 202 with the run: it is checked and loaded in the background.
  Who may: platform admins, the e-gov office, and the units that provide the registry — in a
  session, or with a key (``exchange:write``) of a system of such a unit.
* ``GET /imports/``, ``GET /imports/{id}/``: status (``pending`` → ``running`` → ``loaded`` /
  ``invalid`` / ``failed``), progress (``done_rows`` of ``total_rows``, ``percent``), counts and,
  for an invalid file, the first 200 problems (row, column, message). Nothing of an invalid file
  is loaded. A key sees its system's unit's runs; a person those of the units they may see.

Reading registry records is the gateway's job (``/api/exchange/gateway/…``), not this module's.
"""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from yiwang.core.api import IsAuthenticatedScoped, JSONParser, parse_id

from .. import imports
from ..models import ImportRun
from ..registries import REGISTRIES
from .common import StaffOrSystemMixin, api_key, error

ERRORS = {
    400: error("输入有误：未知的基础库，或文件为空、过大、不是 CSV / .xlsx（details 指明字段）"),
    403: error("无权导入：不是该基础库的提供单位，或 API 密钥没有 exchange:write"),
    404: error("导入记录不存在或无权查看"),
}
ID_PARAM = OpenApiParameter("id", int, OpenApiParameter.PATH, description="导入记录 ID")


class ExchangeImportErrorLineSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="表格中的行号（第 1 行为表头）")
    column = serializers.CharField(help_text="列名（整行或整个文件的问题为空）")
    message = serializers.CharField(help_text="问题说明")


class ExchangeImportRunSerializer(serializers.ModelSerializer):
    registry = serializers.CharField(help_text="resident 人口 / legal_entity 法人 / place 空间地理 / economy 宏观经济")
    registry_display = serializers.CharField(source="get_registry_display", help_text="基础库（中文）")
    unit = serializers.IntegerField(source="unit_id", help_text="导入单位 ID")
    unit_name = serializers.CharField(source="unit.name", help_text="导入单位")
    status = serializers.CharField(
        help_text="pending 等待处理 / running 处理中 / loaded 已导入 / invalid 有错误未导入 / failed 处理失败"
    )
    status_display = serializers.CharField(source="get_status_display", help_text="状态（中文）")
    percent = serializers.SerializerMethodField(help_text="进度百分比（0–100）")

    class Meta:
        model = ImportRun
        fields = [
            "id", "registry", "registry_display", "unit", "unit_name", "file_name", "status", "status_display",
            "total_rows", "done_rows", "percent", "created_rows", "updated_rows", "error_rows", "message",
            "created_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_percent(self, run: ImportRun) -> int:
        if run.status == ImportRun.Status.LOADED:
            return 100
        if run.total_rows <= 0:
            return 0
        percent = max(0, min(100, math.floor(run.done_rows * 100 / run.total_rows)))
        return min(percent, 99) if run.status in (ImportRun.Status.PENDING, ImportRun.Status.RUNNING) else percent


class ExchangeImportRunDetailSerializer(ExchangeImportRunSerializer):
    errors = ExchangeImportErrorLineSerializer(many=True, help_text="前 200 个问题（文件有误时）")

    class Meta(ExchangeImportRunSerializer.Meta):
        fields = [*ExchangeImportRunSerializer.Meta.fields, "errors"]
        read_only_fields = fields


class ExchangeImportInputSerializer(serializers.Serializer):
    registry = serializers.CharField(
        max_length=16, help_text="resident 人口 / legal_entity 法人 / place 空间地理 / economy 宏观经济"
    )
    file = serializers.FileField(
        allow_empty_file=True, help_text="CSV（UTF-8 或 GB18030）或 .xlsx，首行为表头，最大 200 MB"
    )

    def validate_registry(self, value: str) -> str:
        if value not in REGISTRIES:
            raise serializers.ValidationError(_("未知的基础库，可选：resident、legal_entity、place、economy。"))
        return value


def _visible(request):
    """A key sees its system's unit's runs; a person what ``imports.runs_visible`` allows."""
    key = api_key(request)
    if key is not None:
        return ImportRun.objects.select_related("unit").filter(unit_id=key.unit_id)
    return imports.runs_visible(request.user)


class ImportRunViewSet(StaffOrSystemMixin, viewsets.GenericViewSet):
    """Files loaded into the base registries: upload (202), then follow the run."""

    api_scope = "exchange"
    permission_classes = [IsAuthenticatedScoped]
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    serializer_class = ExchangeImportRunDetailSerializer
    queryset = ImportRun.objects.none()

    @extend_schema(
        summary="基础库导入记录",
        description="新的在前，可按 registry、status 筛选。",
        parameters=[
            OpenApiParameter("registry", str, enum=list(REGISTRIES), description="基础库"),
            OpenApiParameter("status", str, enum=ImportRun.Status.values, description="状态"),
        ],
        responses={200: ExchangeImportRunSerializer(many=True), 403: ERRORS[403]},
    )
    def list(self, request):
        runs = _visible(request).order_by("-id")
        registry_code = request.query_params.get("registry")
        if registry_code:
            runs = runs.filter(registry=registry_code)
        wanted = request.query_params.get("status")
        if wanted:
            runs = runs.filter(status=wanted)
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(ExchangeImportRunSerializer(page, many=True).data)

    @extend_schema(
        summary="基础库导入详情",
        description="状态、进度、新增与更新条数；文件有误时列出前 200 个问题（行号、列、说明），且未导入任何数据。",
        parameters=[ID_PARAM],
        responses={200: ExchangeImportRunDetailSerializer, 400: ERRORS[400], 404: ERRORS[404]},
    )
    def retrieve(self, request, pk=None):
        run = _visible(request).filter(pk=parse_id(pk, _("导入记录 ID"))).first()
        if run is None:
            raise Http404
        return Response(ExchangeImportRunDetailSerializer(run).data)

    @extend_schema(
        summary="上传文件导入基础库",
        description="multipart/form-data：registry 与 file。文件在后台逐行校验，全部正确才一次性导入（已存在的"
        "记录更新、不存在的新增，并写变更记录），有任何一行错误则不导入。返回 202 与导入记录，用详情接口查看进度。",
        request={"multipart/form-data": ExchangeImportInputSerializer},
        responses={202: ExchangeImportRunDetailSerializer, 400: ERRORS[400], 403: ERRORS[403]},
    )
    def create(self, request):
        serializer = ExchangeImportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            run = imports.import_start(actor=request.user, registry_code=data["registry"], upload=data["file"])
        except DjangoValidationError as exc:
            details = exc.message_dict if hasattr(exc, "error_dict") else {"file": exc.messages}
            raise serializers.ValidationError(details) from None
        run = ImportRun.objects.select_related("unit").get(pk=run.pk)
        return Response(ExchangeImportRunDetailSerializer(run).data, status=status.HTTP_202_ACCEPTED)
