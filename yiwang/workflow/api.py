"""workflow through the API: the inbox, acting on tasks, cases and process definitions.

A thin layer over ``services`` (writes) and ``selectors`` (reads): the engine decides who may
do what; this module checks the shape of the input, finds the objects and maps refusals.

Status codes (errors are always ``{"error": {"code", "message", "details"}}``):

* ``400 invalid``: bad input — wrong JSON types, missing or oversized values, a non-integer
  id, an unknown username; ``details`` names the field.
* ``403 permission_denied``: not the caller's task (the engine's own Chinese reason), not a
  platform admin for definitions, or an API key without ``workflow:read``/``workflow:write``.
* ``404 not_found``: no such task/case/definition, or the caller may not see it.
* ``409 conflict``: the task or case is not in a state that allows the action — the task is
  already done or cancelled, the case was withdrawn, has finished or is suspended, is already
  (not) suspended, an extension is already pending, the next step has already acted. The
  engine's message says which; reload the task or case and decide again.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from yiwang.core.api import (
    ApiError,
    IsAuthenticatedScoped,
    JSONParser,
    StrictIntegerField,
    parse_id,
    unstorable,
    unstorable_message,
)
from yiwang.org.models import Unit, User

from . import clock, schema, selectors, services
from .models import Action, Attachment, Case, Extension, ProcessDefinition, Task

MAX_FILES = 10
MAX_SIGNERS = 50
MAX_IMPORT_BYTES = 1024 * 1024
ADMIN_ONLY = gettext_lazy("只有平台管理员可以维护流程定义。")


# --- helpers -------------------------------------------------------------------------------


def _is_form(request) -> bool:
    return not (request.content_type or "").startswith("application/json")


@contextmanager
def _engine(*, conflict: bool = False, rename: dict[str, str] | None = None):
    """Map the engine's refusals: field errors stay 400 (renamed to the API's field names);
    a plain refusal of an action on a task or case is a state conflict (409)."""
    try:
        yield
    except DjangoValidationError as error:
        if hasattr(error, "error_dict"):
            renamed = {(rename or {}).get(field, field): messages for field, messages in error.message_dict.items()}
            raise serializers.ValidationError(renamed) from None
        if conflict:
            raise ApiError("".join(error.messages), code="conflict", status=409) from None
        raise serializers.ValidationError(error.messages) from None


def _valid(serializer_class, data, request, **kwargs) -> dict:
    serializer = serializer_class(data=data, context={"request": request, "form": _is_form(request)}, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _users(usernames: list[str], field: str) -> list[User]:
    """Look people up by username; an unknown one is a 400 naming the field."""
    found = {u.username: u for u in User.objects.filter(username__in=usernames)}
    missing = [name for name in usernames if name not in found]
    if missing:
        raise serializers.ValidationError({field: [_("找不到用户：%(names)s。") % {"names": "、".join(missing)}]})
    return [found[name] for name in usernames]


# --- input fields ----------------------------------------------------------------------


@extend_schema_field({"type": "array", "items": {"type": "object", "additionalProperties": {}}})
class StepsField(serializers.JSONField):
    """A definition's steps as given: the engine checks them and names each faulty step."""


def _too_long(label: str, max_length: int):
    """The max_length message, translated (label included) when it is shown, not at import."""
    return lazy(lambda: _("%(label)s不能超过 %(max)s 字。") % {"label": _(label), "max": max_length}, str)()


def _comment_field(*, label: str = gettext_noop("意见"), max_length: int = services.MAX_COMMENT, **kwargs):
    return serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        default="",
        max_length=max_length,
        error_messages={"max_length": _too_long(label, max_length)},
        help_text=f"{label}（不超过 {max_length} 字）",
        **kwargs,
    )


def _files_field():
    return serializers.ListField(
        child=serializers.FileField(allow_empty_file=False),
        required=False,
        default=list,
        max_length=MAX_FILES,
        help_text=f"附件（可多个，最多 {MAX_FILES} 个；单个不超过 {services.MAX_ATTACHMENT_BYTES >> 20} MB）",
    )


# --- output serializers ------------------------------------------------------------------


class WorkflowPersonSerializer(serializers.Serializer):
    username = serializers.CharField(help_text="用户名")
    name = serializers.CharField(source="get_full_name", help_text="姓名")


class WorkflowUnitRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class WorkflowErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="invalid / permission_denied / not_found / conflict …")
    message = serializers.CharField(help_text="中文说明")
    details = serializers.DictField(help_text="字段 → 错误列表")


class WorkflowErrorSerializer(serializers.Serializer):
    error = WorkflowErrorBodySerializer()


DUE_STATES = [clock.ON_TIME, clock.DUE_SOON, clock.OVERDUE, clock.NO_LIMIT]


def _task_context(request) -> dict:
    today = clock.today()
    return {
        "request": request,
        "principals": set(services.delegating_principal_ids(request.user)),
        "today": today,
        "threshold": clock.soon_threshold(today),
    }


class WorkflowTaskSerializer(serializers.ModelSerializer):
    case = serializers.IntegerField(source="case_id", help_text="流程实例 ID")
    assignee = WorkflowPersonSerializer(help_text="办理人")
    acting_for = serializers.SerializerMethodField(help_text="调用者代他人办理时为该办理人，否则为 null")
    delegate = WorkflowPersonSerializer(allow_null=True, help_text="委托办理人")
    sender = WorkflowPersonSerializer(allow_null=True, help_text="来自")
    acted_by = WorkflowPersonSerializer(allow_null=True, help_text="实际办理人")
    due_state = serializers.SerializerMethodField(
        help_text="on_time 正常 / due_soon 即将到期 / overdue 超期 / none 无时限；已办结的任务按办理当天计算"
    )

    class Meta:
        model = Task
        fields = [
            "id",
            "case",
            "module",
            "title",
            "step_index",
            "step_name",
            "assignee",
            "acting_for",
            "delegate",
            "sender",
            "created_at",
            "due_date",
            "due_state",
            "status",
            "outcome",
            "acted_at",
            "acted_by",
        ]
        read_only_fields = fields

    @extend_schema_field(WorkflowPersonSerializer(allow_null=True))
    def get_acting_for(self, task: Task):
        user = self.context["request"].user
        if task.assignee_id == user.pk:
            return None
        principals = self.context.get("principals", set())
        may_act = task.status == Task.Status.OPEN and (task.delegate_id == user.pk or task.assignee_id in principals)
        if may_act or task.acted_by_id == user.pk:
            return WorkflowPersonSerializer(task.assignee).data
        return None

    @extend_schema_field(serializers.ChoiceField(choices=DUE_STATES))
    def get_due_state(self, task: Task) -> str:
        if task.status == Task.Status.OPEN or task.acted_at is None:
            return clock.due_state(
                task.due_date, today=self.context.get("today"), threshold=self.context.get("threshold")
            )
        return clock.due_state(task.due_date, today=timezone.localdate(task.acted_at))


class WorkflowReturnTargetSerializer(serializers.Serializer):
    step_index = serializers.IntegerField(help_text="-1 为退回起草人")
    name = serializers.CharField()


class WorkflowProcessRefSerializer(serializers.Serializer):
    code = serializers.CharField()
    version = serializers.IntegerField()
    name = serializers.CharField()


class WorkflowCaseSerializer(serializers.ModelSerializer):
    process = WorkflowProcessRefSerializer(source="definition", help_text="流程定义（版本）")
    initiator = WorkflowPersonSerializer()
    unit = WorkflowUnitRefSerializer(help_text="发起单位")
    lead_unit = WorkflowUnitRefSerializer(allow_null=True, help_text="主办单位")
    step_name = serializers.SerializerMethodField(help_text="当前环节名称（已办结为 null）")
    due_state = serializers.SerializerMethodField(help_text="总时限状态：on_time / due_soon / overdue / none")
    suspended = serializers.BooleanField(source="is_suspended", help_text="是否挂起")

    class Meta:
        model = Case
        fields = [
            "id",
            "title",
            "module",
            "process",
            "status",
            "initiator",
            "unit",
            "lead_unit",
            "step_index",
            "step_name",
            "started_at",
            "submitted_at",
            "finished_at",
            "due_date",
            "due_state",
            "suspended",
            "suspended_at",
            "paused_days",
            "extended_days",
        ]
        read_only_fields = fields

    def get_step_name(self, case: Case) -> str | None:
        step = case.current_step if case.is_running else None
        return str(step["name"]) if step else None

    @extend_schema_field(serializers.ChoiceField(choices=DUE_STATES))
    def get_due_state(self, case: Case) -> str:
        if not case.is_running:
            return clock.NO_LIMIT
        return clock.due_state(case.due_date, today=self.context.get("today"), threshold=self.context.get("threshold"))


class WorkflowTaskDetailSerializer(serializers.Serializer):
    task = WorkflowTaskSerializer(source="*")
    case = WorkflowCaseSerializer(help_text="流程实例的当前状态")
    return_targets = serializers.SerializerMethodField(help_text="可退回的环节（调用者可办理该待办时，否则为空）")

    @extend_schema_field(WorkflowReturnTargetSerializer(many=True))
    def get_return_targets(self, task: Task):
        if task.status != Task.Status.OPEN or not task.case.is_running:
            return []
        if services.acting_for(task, self.context["request"].user) is False:
            return []
        return [{"step_index": i, "name": str(name)} for i, name in services.return_targets(task.case)]


class WorkflowAttachmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attachment
        fields = ["id", "name", "size"]
        read_only_fields = fields


class WorkflowActionSerializer(serializers.ModelSerializer):
    actor = WorkflowPersonSerializer(allow_null=True, help_text="操作人（系统动作为 null）")
    on_behalf_of = WorkflowPersonSerializer(allow_null=True, help_text="代谁办理")
    data = serializers.JSONField(help_text="动作附带的数据，如退回目标、转办对象")
    attachments = WorkflowAttachmentSerializer(many=True)

    class Meta:
        model = Action
        fields = [
            "id",
            "kind",
            "actor",
            "on_behalf_of",
            "task",
            "step_index",
            "step_name",
            "comment",
            "data",
            "attachments",
            "created_at",
        ]
        read_only_fields = fields


class WorkflowStepProgressSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField(help_text="single / countersign / any_one")
    state = serializers.CharField(help_text="current 当前 / done 已办 / skipped 跳过 / pending 未到")


class WorkflowExtensionSerializer(serializers.ModelSerializer):
    requested_by = WorkflowPersonSerializer()

    class Meta:
        model = Extension
        fields = ["id", "days", "reason", "status", "requested_by", "requested_at", "decided_at"]
        read_only_fields = fields


class WorkflowCaseDetailSerializer(serializers.Serializer):
    case = WorkflowCaseSerializer(source="*")
    fields = serializers.DictField(help_text="业务字段")
    steps = serializers.SerializerMethodField(help_text="各环节进度")
    open_tasks = serializers.SerializerMethodField(help_text="当前待办")
    my_tasks = serializers.SerializerMethodField(help_text="调用者可办理的待办 ID")
    timeline = serializers.SerializerMethodField(help_text="办理记录（时间顺序）")
    extensions = WorkflowExtensionSerializer(many=True, help_text="延期申请")
    can_withdraw = serializers.SerializerMethodField(help_text="调用者可否撤回")
    can_manage_clock = serializers.SerializerMethodField(help_text="调用者可否挂起、恢复、申请延期")

    @extend_schema_field(WorkflowStepProgressSerializer(many=True))
    def get_steps(self, case: Case):
        return WorkflowStepProgressSerializer(selectors.steps_progress(case), many=True).data

    @extend_schema_field(WorkflowTaskSerializer(many=True))
    def get_open_tasks(self, case: Case):
        tasks = selectors.open_tasks(case).select_related("sender", "acted_by")
        return WorkflowTaskSerializer(tasks, many=True, context=self.context).data

    def get_my_tasks(self, case: Case) -> list[int]:
        return [task.pk for task in selectors.my_open_tasks(case, self.context["request"].user)]

    @extend_schema_field(WorkflowActionSerializer(many=True))
    def get_timeline(self, case: Case):
        return WorkflowActionSerializer(selectors.timeline(case), many=True).data

    def get_can_withdraw(self, case: Case) -> bool:
        return services.can_withdraw(case, self.context["request"].user)

    def get_can_manage_clock(self, case: Case) -> bool:
        return case.is_running and services.can_manage_clock(case, self.context["request"].user)


class WorkflowTaskResultSerializer(serializers.Serializer):
    task = WorkflowTaskSerializer(help_text="办理后的待办（转办时为新生成的待办）")
    case = WorkflowCaseSerializer(help_text="流程实例的最新状态")


class WorkflowSignersResultSerializer(serializers.Serializer):
    task = WorkflowTaskSerializer(help_text="调用者的待办")
    added = WorkflowTaskSerializer(many=True, help_text="新增的加签待办")
    case = WorkflowCaseSerializer()


class WorkflowExtensionResultSerializer(serializers.Serializer):
    extension = WorkflowExtensionSerializer()
    case = WorkflowCaseSerializer()


class WorkflowDefinitionSerializer(serializers.ModelSerializer):
    code = serializers.CharField(help_text="流程代码，各版本共用")
    steps = StepsField(help_text="环节列表")
    created_by = WorkflowPersonSerializer(allow_null=True)

    class Meta:
        model = ProcessDefinition
        fields = [
            "id",
            "code",
            "version",
            "name",
            "module",
            "description",
            "case_time_limit",
            "status",
            "steps",
            "created_at",
            "created_by",
        ]
        read_only_fields = fields


class WorkflowDefinitionDetailSerializer(serializers.Serializer):
    definition = WorkflowDefinitionSerializer(source="*", help_text="启用的版本（或所请求的版本）")
    versions = serializers.SerializerMethodField(help_text="全部版本（新的在前）")

    @extend_schema_field(WorkflowDefinitionSerializer(many=True))
    def get_versions(self, definition: ProcessDefinition):
        versions = selectors.definition_versions(definition.code).select_related("created_by")
        return WorkflowDefinitionSerializer(versions, many=True).data


class WorkflowDefinitionFileSerializer(serializers.Serializer):
    """The portable JSON of a definition (导出/导入格式)."""

    format = serializers.CharField(required=False, help_text=f"固定为 {schema.FORMAT}（导入时必填）")
    code = serializers.CharField(required=False, allow_blank=True, default="", help_text="流程代码")
    version = serializers.IntegerField(required=False, allow_null=True, help_text="导出时的版本号；保存时忽略")
    name = serializers.CharField(required=False, allow_blank=True, default="", help_text="流程名称")
    module = serializers.CharField(required=False, allow_blank=True, default="", help_text="所属模块")
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")
    case_time_limit = StrictIntegerField(required=False, allow_null=True, default=None, help_text="总时限（工作日）")
    steps = StepsField(required=False, default=None, help_text="环节列表")


class WorkflowDefinitionImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="导出的 JSON 文件")


# --- input serializers ---------------------------------------------------------------------


class WorkflowCommentInputSerializer(serializers.Serializer):
    comment = _comment_field()


class WorkflowCommentFilesInputSerializer(WorkflowCommentInputSerializer):
    files = _files_field()


class WorkflowReturnInputSerializer(WorkflowCommentInputSerializer):
    to_step = StrictIntegerField(help_text="退回到的环节序号（-1 为起草人），见任务详情的 return_targets")


class WorkflowReturnFilesInputSerializer(WorkflowReturnInputSerializer):
    files = _files_field()


class WorkflowTransferInputSerializer(WorkflowCommentInputSerializer):
    to_user = serializers.CharField(max_length=150, help_text="转办给（用户名）")


class WorkflowDelegateInputSerializer(WorkflowCommentInputSerializer):
    to_user = serializers.CharField(max_length=150, allow_null=True, help_text="委托给（用户名）；null 为收回委托")


class WorkflowAddSignersInputSerializer(WorkflowCommentInputSerializer):
    usernames = serializers.ListField(
        child=serializers.CharField(max_length=150), max_length=MAX_SIGNERS, help_text="加签人员（用户名列表）"
    )


class WorkflowCaseStartInputSerializer(serializers.Serializer):
    process = serializers.CharField(max_length=64, help_text="流程代码（启用的版本）")
    title = serializers.CharField(max_length=200, help_text="标题")
    fields = serializers.DictField(required=False, default=dict, help_text="业务字段（对象），条件环节按它判断")
    lead_unit = serializers.PrimaryKeyRelatedField(
        queryset=Unit.objects.filter(status=Unit.Status.ACTIVE),
        required=False,
        allow_null=True,
        default=None,
        help_text="主办单位 ID",
    )
    comment = _comment_field(label=gettext_noop("发起意见"))

    def validate_fields(self, value):
        if unstorable(value):
            raise serializers.ValidationError(unstorable_message(_("业务字段")))
        return value


class WorkflowSuspendInputSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=200, error_messages={"max_length": gettext_lazy("挂起原因不能超过 200 字。")}, help_text="挂起原因"
    )


class WorkflowResumeInputSerializer(serializers.Serializer):
    reason = _comment_field(label=gettext_noop("恢复说明"), max_length=200)


class WorkflowExtensionInputSerializer(serializers.Serializer):
    days = StrictIntegerField(help_text="延期工作日（1–60）")
    reason = serializers.CharField(
        max_length=300, error_messages={"max_length": gettext_lazy("延期理由不能超过 300 字。")}, help_text="延期理由"
    )


class WorkflowTaskQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=[("open", "待办"), ("done", "已办")], required=False, default="open", help_text="open 待办 / done 已办"
    )
    module = serializers.CharField(required=False, allow_blank=True, default="", max_length=32, help_text="所属模块")
    due = serializers.ChoiceField(
        choices=[(clock.ON_TIME, "正常"), (clock.DUE_SOON, "即将到期"), (clock.OVERDUE, "超期")],
        required=False,
        allow_blank=True,
        default="",
        help_text="时限状态（仅待办）",
    )
    q = serializers.CharField(required=False, allow_blank=True, default="", max_length=100, help_text="标题关键词")


class WorkflowCaseQuerySerializer(serializers.Serializer):
    module = serializers.CharField(required=False, allow_blank=True, default="", max_length=32, help_text="所属模块")
    status = serializers.ChoiceField(choices=Case.Status.choices, required=False, allow_blank=True, default="")
    q = serializers.CharField(required=False, allow_blank=True, default="", max_length=100, help_text="标题关键词")
    mine = serializers.BooleanField(required=False, default=False, help_text="只看我发起的")


class WorkflowDefinitionQuerySerializer(serializers.Serializer):
    module = serializers.CharField(required=False, allow_blank=True, default="", max_length=32)
    q = serializers.CharField(required=False, allow_blank=True, default="", max_length=100, help_text="名称或代码")


class WorkflowVersionQuerySerializer(serializers.Serializer):
    version = StrictIntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text="指定版本（默认为启用版本或最新版本）"
    )


ERRORS = {
    400: OpenApiResponse(WorkflowErrorSerializer, description="输入有误（details 指明字段）"),
    403: OpenApiResponse(
        WorkflowErrorSerializer, description="无权操作（如：这不是您的待办、不是平台管理员）或 API 密钥权限不足"
    ),
    404: OpenApiResponse(WorkflowErrorSerializer, description="不存在或无权查看"),
}
CONFLICT = {409: OpenApiResponse(WorkflowErrorSerializer, description="状态不允许：已办理、已撤回、已办结或已挂起等")}
ID_PARAM = OpenApiParameter("id", int, OpenApiParameter.PATH, description="ID（正整数）")
CODE_PARAM = OpenApiParameter("code", str, OpenApiParameter.PATH, description="流程代码，如 oa.outgoing")


def _body(json_serializer, form_serializer=None) -> dict:
    if form_serializer is None:
        return {"application/json": json_serializer}
    return {"application/json": json_serializer, "multipart/form-data": form_serializer}


def _task_action(summary: str, description: str, request, response=WorkflowTaskResultSerializer):
    return extend_schema(
        summary=summary,
        description=description,
        parameters=[ID_PARAM],
        request=request,
        responses={200: response, **ERRORS, **CONFLICT},
    )


# --- tasks ---------------------------------------------------------------------------------


class WorkflowViewMixin:
    api_scope = "workflow"
    permission_classes = [IsAuthenticatedScoped]

    def _context(self) -> dict:
        """Serializer context: the caller, whom they act for right now, today's clock."""
        if not hasattr(self, "_serializer_context"):
            self._serializer_context = _task_context(self.request)
        return self._serializer_context

    def _case_payload(self, case_id: int) -> dict:
        case = Case.objects.select_related("definition", "initiator", "unit", "lead_unit").get(pk=case_id)
        return WorkflowCaseSerializer(case, context=self._context()).data

    def _task_payload(self, task_id: int) -> dict:
        task = Task.objects.select_related("assignee", "delegate", "sender", "acted_by").get(pk=task_id)
        return WorkflowTaskSerializer(task, context=self._context()).data


class TaskViewSet(WorkflowViewMixin, viewsets.GenericViewSet):
    """The caller's tasks (待办/已办) and the actions on one task."""

    queryset = Task.objects.none()
    serializer_class = WorkflowTaskSerializer
    lookup_value_regex = "[^/]+"
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def _task(self, pk) -> Task:
        task = Task.objects.select_related("case", "assignee").filter(pk=parse_id(pk)).first()
        if task is None:
            raise Http404
        return task

    def _result(self, task: Task) -> Response:
        return Response({"task": self._task_payload(task.pk), "case": self._case_payload(task.case_id)})

    @extend_schema(
        summary="我的待办（或已办）",
        description="state=open（默认）为待办，按期限先后排列；state=done 为我办理过的已办，最新在前。",
        parameters=[WorkflowTaskQuerySerializer],
        responses={200: WorkflowTaskSerializer(many=True), 400: ERRORS[400]},
    )
    def list(self, request):
        params = _valid(WorkflowTaskQuerySerializer, request.query_params, request)
        if params["state"] == "done":
            qs = selectors.done_list(user=request.user, module=params["module"], q=params["q"])
            qs = qs.select_related("delegate", "acted_by")
        else:
            qs = selectors.inbox(user=request.user, module=params["module"], due=params["due"], q=params["q"])
            qs = qs.select_related("acted_by")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(WorkflowTaskSerializer(page, many=True, context=self._context()).data)

    @extend_schema(
        summary="待办详情",
        description="只有能办理（本人、委托办理人、代理人）或办理过该待办的人可以查看，否则 404。",
        parameters=[ID_PARAM],
        responses={200: WorkflowTaskDetailSerializer, **ERRORS},
    )
    def retrieve(self, request, pk=None):
        task = self._task(pk)
        if task.acted_by_id != request.user.pk and services.acting_for(task, request.user) is False:
            raise Http404
        task = Task.objects.select_related(
            "case__definition",
            "case__initiator",
            "case__unit",
            "case__lead_unit",
            "assignee",
            "delegate",
            "sender",
            "acted_by",
        ).get(pk=task.pk)
        return Response(WorkflowTaskDetailSerializer(task, context=self._context()).data)

    @_task_action(
        "同意",
        "同意（办理）该待办；满足环节规则后流转到下一环节。退回起草人的待办由发起人“同意”即为修改后重新提交。"
        "可用 multipart/form-data 同时上传附件 files。",
        _body(WorkflowCommentInputSerializer, WorkflowCommentFilesInputSerializer),
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        task = self._task(pk)
        data = _valid(WorkflowCommentFilesInputSerializer, request.data, request)
        with _engine(conflict=True):
            services.task_approve(task=task, actor=request.user, comment=data["comment"] or "", files=data["files"])
        return self._result(task)

    @_task_action(
        "不同意（驳回）",
        "驳回：流程以“已驳回”办结。必须填写驳回理由 comment。",
        _body(WorkflowCommentInputSerializer, WorkflowCommentFilesInputSerializer),
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        task = self._task(pk)
        data = _valid(WorkflowCommentFilesInputSerializer, request.data, request)
        with _engine(conflict=True):
            services.task_reject(task=task, actor=request.user, comment=data["comment"] or "", files=data["files"])
        return self._result(task)

    @_task_action(
        "退回",
        "退回到已经办理过的前面环节，to_step 为 -1 时退回起草人修改。必须填写退回理由 comment。",
        _body(WorkflowReturnInputSerializer, WorkflowReturnFilesInputSerializer),
    )
    @action(detail=True, methods=["post"], url_path="return", url_name="return")
    def return_(self, request, pk=None):
        task = self._task(pk)
        data = _valid(WorkflowReturnFilesInputSerializer, request.data, request)
        with _engine(conflict=True):
            services.task_return(
                task=task,
                actor=request.user,
                to_step=data["to_step"],
                comment=data["comment"] or "",
                files=data["files"],
            )
        return self._result(task)

    @_task_action("转办", "把待办转给另一位在岗人员，由其办理；返回新生成的待办。", WorkflowTransferInputSerializer)
    @action(detail=True, methods=["post"], parser_classes=[JSONParser])
    def transfer(self, request, pk=None):
        task = self._task(pk)
        data = _valid(WorkflowTransferInputSerializer, request.data, request)
        (to_user,) = _users([data["to_user"]], "to_user")
        with _engine(conflict=True):
            new = services.task_transfer(task=task, actor=request.user, to_user=to_user, comment=data["comment"] or "")
        return self._result(new)

    @_task_action(
        "委托办理",
        "办理人本人让另一位在岗人员以自己的名义办理这一待办；to_user 为 null 时收回委托。",
        WorkflowDelegateInputSerializer,
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser])
    def delegate(self, request, pk=None):
        task = self._task(pk)
        data = _valid(WorkflowDelegateInputSerializer, request.data, request)
        to_user = _users([data["to_user"]], "to_user")[0] if data["to_user"] is not None else None
        with _engine(conflict=True):
            services.task_delegate(task=task, actor=request.user, to_user=to_user, comment=data["comment"] or "")
        return self._result(task)

    @_task_action(
        "加签",
        "在当前环节增加会签人员，他们也都同意后本环节才算完成。",
        WorkflowAddSignersInputSerializer,
        WorkflowSignersResultSerializer,
    )
    @action(detail=True, methods=["post"], url_path="add-signers", url_name="add-signers", parser_classes=[JSONParser])
    def add_signers(self, request, pk=None):
        task = self._task(pk)
        data = _valid(WorkflowAddSignersInputSerializer, request.data, request)
        people = _users(list(dict.fromkeys(data["usernames"])), "usernames")
        with _engine(conflict=True, rename={"people": "usernames"}):
            added = services.task_add_signers(
                task=task, actor=request.user, people=people, comment=data["comment"] or ""
            )
        context = self._context()
        added = Task.objects.filter(pk__in=[t.pk for t in added]).select_related("assignee", "sender").order_by("id")
        return Response(
            {
                "task": self._task_payload(task.pk),
                "added": WorkflowTaskSerializer(added, many=True, context=context).data,
                "case": self._case_payload(task.case_id),
            }
        )


# --- cases ---------------------------------------------------------------------------------


def _case_action(summary: str, description: str, request, response=WorkflowCaseSerializer, status: int = 200):
    return extend_schema(
        summary=summary,
        description=description,
        parameters=[ID_PARAM],
        request=request,
        responses={status: response, **ERRORS, **CONFLICT},
    )


class CaseViewSet(WorkflowViewMixin, viewsets.GenericViewSet):
    """Cases the caller may see, starting one, and what may be done to a whole case."""

    queryset = Case.objects.none()
    serializer_class = WorkflowCaseSerializer
    lookup_value_regex = "[^/]+"
    parser_classes = [JSONParser]

    def _case(self, pk) -> Case:
        case = selectors.case_get(user=self.request.user, pk=parse_id(pk))
        if case is None:
            raise Http404
        return case

    def _detail(self, case_id: int) -> Response:
        case = (
            Case.objects.select_related("definition", "initiator", "unit", "lead_unit")
            .prefetch_related("extensions__requested_by")
            .get(pk=case_id)
        )
        return Response(WorkflowCaseDetailSerializer(case, context=self._context()).data)

    @extend_schema(
        summary="流程实例列表",
        description="调用者可见的流程：数据范围内单位的、本人发起的和参与办理的。",
        parameters=[WorkflowCaseQuerySerializer],
        responses={200: WorkflowCaseSerializer(many=True), 400: ERRORS[400]},
    )
    def list(self, request):
        params = _valid(WorkflowCaseQuerySerializer, request.query_params, request)
        qs = selectors.case_list(user=request.user, **params).select_related("lead_unit")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(WorkflowCaseSerializer(page, many=True, context=self._context()).data)

    @extend_schema(
        summary="流程实例详情",
        description="业务字段、各环节进度、当前待办和办理记录（含附件名称与大小）。",
        parameters=[ID_PARAM],
        responses={200: WorkflowCaseDetailSerializer, **ERRORS},
    )
    def retrieve(self, request, pk=None):
        return self._detail(self._case(pk).pk)

    @extend_schema(
        summary="发起流程",
        description="以调用者当前岗位所在单位发起指定流程（启用的版本）。流程找不到办理人时拒绝发起。",
        request=WorkflowCaseStartInputSerializer,
        responses={201: WorkflowCaseDetailSerializer, 400: ERRORS[400], 403: ERRORS[403]},
    )
    def create(self, request):
        data = _valid(WorkflowCaseStartInputSerializer, request.data, request)
        with _engine():
            case = services.case_start(
                process=data["process"],
                initiator=request.user,
                title=data["title"],
                fields=data["fields"],
                unit=request.user.acting_unit,
                lead_unit=data["lead_unit"],
                comment=data["comment"] or "",
                manual=True,
            )
        response = self._detail(case.pk)
        response.status_code = 201
        return response

    @_case_action("撤回", "发起人在下一环节办理之前撤回流程。", WorkflowCommentInputSerializer)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        case = self._case(pk)
        data = _valid(WorkflowCommentInputSerializer, request.data, request)
        with _engine(conflict=True):
            services.case_withdraw(case=case, actor=request.user, comment=data["comment"] or "")
        return Response(self._case_payload(case.pk))

    @_case_action(
        "发表意见",
        "不办理、只添加意见或附件（可用 multipart/form-data 上传 files）；无附件时必须填写意见。",
        _body(WorkflowCommentInputSerializer, WorkflowCommentFilesInputSerializer),
        WorkflowActionSerializer,
        status=201,
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, MultiPartParser, FormParser])
    def comment(self, request, pk=None):
        case = self._case(pk)
        data = _valid(WorkflowCommentFilesInputSerializer, request.data, request)
        with _engine(conflict=True):
            added = services.case_comment(
                case=case, actor=request.user, comment=data["comment"] or "", files=data["files"]
            )
        actions = Action.objects.select_related("actor", "on_behalf_of").prefetch_related("attachments__stored")
        added = actions.get(pk=added.pk)
        return Response(WorkflowActionSerializer(added).data, status=201)

    @_case_action(
        "挂起", "暂停计时（如等待申请人补正材料）；当前办理人或平台管理员可操作。", WorkflowSuspendInputSerializer
    )
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        case = self._case(pk)
        data = _valid(WorkflowSuspendInputSerializer, request.data, request)
        with _engine(conflict=True, rename={"comment": "reason"}):
            services.case_suspend(case=case, actor=request.user, reason=data["reason"])
        return Response(self._case_payload(case.pk))

    @_case_action("恢复", "恢复计时；挂起的工作日顺延所有未办待办和总期限。", WorkflowResumeInputSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        case = self._case(pk)
        data = _valid(WorkflowResumeInputSerializer, request.data, request)
        with _engine(conflict=True, rename={"comment": "reason"}):
            services.case_resume(case=case, actor=request.user, reason=data["reason"] or "")
        return Response(self._case_payload(case.pk))

    @_case_action(
        "申请延期",
        "申请延长办理期限（1–60 个工作日），由申请人所在单位领导通过“延期审批”流程审批。",
        WorkflowExtensionInputSerializer,
        WorkflowExtensionResultSerializer,
        status=201,
    )
    @action(detail=True, methods=["post"])
    def extension(self, request, pk=None):
        case = self._case(pk)
        data = _valid(WorkflowExtensionInputSerializer, request.data, request)
        with _engine(conflict=True, rename={"comment": "reason"}):
            extension = services.extension_request(
                case=case, actor=request.user, days=data["days"], reason=data["reason"]
            )
        extension = Extension.objects.select_related("requested_by").get(pk=extension.pk)
        return Response(
            {"extension": WorkflowExtensionSerializer(extension).data, "case": self._case_payload(case.pk)},
            status=201,
        )


# --- definitions ---------------------------------------------------------------------------


def _require_platform_admin(user: User) -> None:
    if not user.is_platform_admin:
        raise PermissionDenied(ADMIN_ONLY)


def _step_type_errors(steps) -> list[str]:
    """Values the engine compares by hashing must be plain strings: refuse lists and objects
    there (with the engine's step labels) rather than let the engine fail on them."""
    if not isinstance(steps, list):
        return []
    errors = []

    def scalar(value) -> bool:
        return value is None or isinstance(value, str | int | float | bool)

    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        label = schema._step_label(index, step)
        bad = [name for name in ("key", "name", "kind", "time_limit") if not scalar(step.get(name))]
        rule = step.get("assignee")
        if isinstance(rule, dict):
            bad += [f"assignee.{name}" for name in ("type", "role", "rank", "unit") if not scalar(rule.get(name))]
            usernames = rule.get("usernames")
            if not (
                usernames is None
                or isinstance(usernames, str)
                or (isinstance(usernames, list) and all(isinstance(u, str) for u in usernames))
            ):
                bad.append("assignee.usernames")
        condition = step.get("condition")
        if isinstance(condition, dict):
            bad += [f"condition.{name}" for name in ("field", "op") if not scalar(condition.get(name))]
        if bad:
            errors.append(_("%(step)s：%(names)s 格式错误。") % {"step": label, "names": "、".join(bad)})
    return errors


def _check_definition_types(data: dict, request) -> dict:
    clean = _valid(WorkflowDefinitionFileSerializer, data, request)
    if unstorable(clean.get("steps")):
        raise serializers.ValidationError({"steps": [unstorable_message(_("环节"))]})
    errors = _step_type_errors(clean.get("steps"))
    if errors:
        raise serializers.ValidationError({"steps": errors})
    return clean


class DefinitionViewSet(WorkflowViewMixin, viewsets.GenericViewSet):
    """Process definitions: read by everyone, saved and imported by platform admins only."""

    queryset = ProcessDefinition.objects.none()
    serializer_class = WorkflowDefinitionSerializer
    lookup_field = "code"
    lookup_value_regex = "[^/]+"
    parser_classes = [JSONParser]

    def _definition(self, code: str) -> ProcessDefinition:
        if len(code) > 64 or "\x00" in code:
            raise Http404
        params = _valid(WorkflowVersionQuerySerializer, self.request.query_params, self.request)
        versions = selectors.definition_versions(code).select_related("created_by")
        if "version" in params:
            definition = versions.filter(version=params["version"]).first()
        else:
            definition = versions.filter(status=ProcessDefinition.Status.ACTIVE).first() or versions.first()
        if definition is None:
            raise Http404
        return definition

    def _detail(self, definition: ProcessDefinition, status: int = 200) -> Response:
        return Response(WorkflowDefinitionDetailSerializer(definition).data, status=status)

    @extend_schema(
        summary="流程定义列表",
        description="每个流程的最新版本。",
        parameters=[WorkflowDefinitionQuerySerializer],
        responses={200: WorkflowDefinitionSerializer(many=True), 400: ERRORS[400]},
    )
    def list(self, request):
        params = _valid(WorkflowDefinitionQuerySerializer, request.query_params, request)
        qs = selectors.definition_list(q=params["q"], module=params["module"]).select_related("created_by")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(WorkflowDefinitionSerializer(page, many=True).data)

    @extend_schema(
        summary="流程定义详情",
        description="启用的版本（没有启用版本时为最新版本，或 version 指定的版本）及全部版本列表。",
        parameters=[CODE_PARAM, WorkflowVersionQuerySerializer],
        responses={200: WorkflowDefinitionDetailSerializer, **ERRORS},
    )
    def retrieve(self, request, code=None):
        return self._detail(self._definition(code))

    @extend_schema(
        summary="导出流程定义",
        description=f"可移植的 JSON（format: {schema.FORMAT}），可用于导入。",
        parameters=[CODE_PARAM, WorkflowVersionQuerySerializer],
        responses={200: WorkflowDefinitionFileSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def export(self, request, code=None):
        return Response(services.definition_export(self._definition(code)))

    @extend_schema(
        summary="保存流程定义（新版本）",
        description="与导出格式相同的 JSON；保存为该流程代码的下一个版本并启用，运行中的流程仍按原版本办理。"
        "仅平台管理员。环节有误时 details.steps 逐条指明是第几步。",
        request=WorkflowDefinitionFileSerializer,
        responses={201: WorkflowDefinitionDetailSerializer, 400: ERRORS[400], 403: ERRORS[403]},
    )
    def create(self, request):
        _require_platform_admin(request.user)
        if not isinstance(request.data, dict):
            raise serializers.ValidationError([_("请提交 JSON 对象。")])
        data = _check_definition_types(request.data, request)
        if "format" in data and data["format"] != schema.FORMAT:
            raise serializers.ValidationError({"format": [_("格式应为 %(format)s。") % {"format": schema.FORMAT}]})
        with _engine():
            definition = services.definition_save(
                actor=request.user,
                code=data["code"],
                name=data["name"],
                module=data["module"],
                steps=data["steps"],
                case_time_limit=data["case_time_limit"],
                description=data["description"] or "",
            )
        return self._detail(definition, status=201)

    @extend_schema(
        summary="导入流程定义",
        description="导入导出的 JSON（请求体直接提交，或以 multipart/form-data 上传文件 file），"
        "保存为新版本。仅平台管理员。",
        request=_body(WorkflowDefinitionFileSerializer, WorkflowDefinitionImportSerializer),
        responses={201: WorkflowDefinitionDetailSerializer, 400: ERRORS[400], 403: ERRORS[403]},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        url_name="import",
        parser_classes=[JSONParser, MultiPartParser],
    )
    def import_(self, request):
        _require_platform_admin(request.user)
        if _is_form(request):
            upload = request.data.get("file")
            if not hasattr(upload, "read"):
                raise serializers.ValidationError({"file": [_("请上传导出的 JSON 文件。")]})
            if upload.size > MAX_IMPORT_BYTES:
                raise serializers.ValidationError(
                    {"file": [_("文件不能超过 %(size)s KB。") % {"size": MAX_IMPORT_BYTES >> 10}]}
                )
            data = upload.read()
            try:
                data = json.loads(data)
            except (ValueError, UnicodeDecodeError):
                pass  # the engine says why it is not a definition file
            except RecursionError:
                raise serializers.ValidationError({"file": [_("JSON 嵌套层次过深。")]}) from None
        else:
            data = request.data
        if isinstance(data, dict) and data.get("format") == schema.FORMAT:
            _check_definition_types(data, request)
        with _engine():
            definition = services.definition_import(actor=request.user, data=data)
        return self._detail(definition, status=201)
