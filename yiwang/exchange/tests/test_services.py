"""Catalogue, access requests and grants: the services end to end through the workflow engine."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from yiwang.core.models import AuditEntry, Notice
from yiwang.exchange import services
from yiwang.exchange.models import AccessRequest, CatalogEntry, Grant
from yiwang.workflow import services as workflow
from yiwang.workflow.models import Case, Task

from .conftest import RESIDENT_DATA, RESIDENT_ITEMS, publish_entry

pytestmark = pytest.mark.django_db

LICENCE_DATA = {
    "class_code": "301002001",
    "name": "学籍信息",
    "abstract": "全区中小学生学籍信息。",
    "keywords": "学籍,学生",
    "format": "database",
    "sharing_type": "unconditional",
    "sharing_condition": "",
    "legal_basis": "",
    "share_method": "file",
    "open_type": "closed",
    "update_cycle": "monthly",
    "related_codes": [],
    "registry": "",
}
LICENCE_ITEMS = [
    {"code": "student_no", "name": "学籍号", "sharing_type": "unconditional"},
    {"code": "school", "name": "学校", "sharing_type": "unconditional"},
]


def errors_of(excinfo) -> dict:
    return excinfo.value.message_dict


def draft(actor, provider, **overrides):
    data = {**RESIDENT_DATA, **overrides.pop("data", {})}
    items = overrides.pop("items", RESIDENT_ITEMS)
    return services.entry_save(actor=actor, data=data, items=items, provider=provider)


def open_task(case, user=None) -> Task:
    tasks = Task.objects.filter(case=case, status=Task.Status.OPEN)
    if user is not None:
        tasks = tasks.filter(assignee=user)
    return tasks.get()


def ask(actor, system, entry, items, **kwargs):
    kwargs.setdefault("purpose", "义务教育入学资格核验")
    return services.request_create(actor=actor, system=system, entry=entry, items=items, **kwargs)


# --- the catalogue lifecycle -------------------------------------------------------------------


class TestCatalogueLifecycle:
    def test_draft_then_review_then_published_by_the_egov_office(self, psb, psb_staff, egov):
        entry = draft(psb_staff, psb)
        assert entry.status == CatalogEntry.Status.DRAFT
        assert entry.code == "101001001/000001" and entry.version == 1
        assert [i.code for i in entry.items.all()] == [i["code"] for i in RESIDENT_ITEMS]
        assert [i.position for i in entry.items.all()] == list(range(1, len(RESIDENT_ITEMS) + 1))
        id_item = entry.items.get(code="id_number")
        assert id_item.personal and id_item.mask == "id_number" and id_item.length == 18

        entry = services.entry_submit(actor=psb_staff, entry=entry, comment="请审核")
        assert entry.status == CatalogEntry.Status.REVIEW
        case = entry.review_case
        assert case.definition.code == services.REVIEW_PROCESS and case.status == Case.Status.RUNNING
        task = open_task(case)
        assert task.assignee == egov

        workflow.task_approve(task=task, actor=egov, comment="同意发布")
        entry.refresh_from_db()
        assert entry.status == CatalogEntry.Status.PUBLISHED
        assert entry.published_on == timezone.localdate()
        assert services.entry_published(entry.code) == entry
        actions = set(AuditEntry.objects.filter(object_id=str(entry.pk)).values_list("action", flat=True))
        assert {"exchange.entry.save", "exchange.entry.submit", "exchange.entry.publish"} <= actions

    def test_next_code_counts_up_within_a_class(self, psb, psb_staff):
        first = draft(psb_staff, psb)
        second = draft(psb_staff, psb, data={"name": "人口补充信息"})
        other = draft(psb_staff, psb, data={"class_code": "101001002"})
        assert (first.code, second.code, other.code) == ("101001001/000001", "101001001/000002", "101001002/000001")
        assert services.next_code("101001001") == "101001001/000003"

    def test_rejected_review_goes_back_to_draft_and_may_be_resubmitted(self, psb, psb_staff, egov):
        entry = services.entry_submit(actor=psb_staff, entry=draft(psb_staff, psb))
        workflow.task_reject(task=open_task(entry.review_case), actor=egov, comment="摘要过于简单，请补充。")
        entry.refresh_from_db()
        assert entry.status == CatalogEntry.Status.DRAFT
        assert entry.review_case.status == Case.Status.REJECTED
        assert Notice.objects.filter(recipient_id=psb_staff.pk, title__contains="未通过审核").exists()
        # edit and resubmit: a new review case
        entry = services.entry_save(
            actor=psb_staff, entry=entry, data={**RESIDENT_DATA, "abstract": "更详细的摘要。"}, items=RESIDENT_ITEMS
        )
        first_case = entry.review_case_id
        entry = publish_entry(entry, egov)
        assert entry.status == CatalogEntry.Status.PUBLISHED and entry.review_case_id != first_case

    def test_only_drafts_are_edited_or_submitted(self, resident_entry, psb_staff):
        with pytest.raises(ValidationError):
            services.entry_save(actor=psb_staff, entry=resident_entry, data=RESIDENT_DATA, items=RESIDENT_ITEMS)
        with pytest.raises(ValidationError):
            services.entry_submit(actor=psb_staff, entry=resident_entry)

    def test_revise_makes_v2_and_publishing_it_supersedes_v1_while_grants_survive(
        self, resident_entry, edu_grant, psb_staff, egov
    ):
        v2 = services.entry_revise(actor=psb_staff, entry=resident_entry)
        assert (v2.code, v2.version, v2.status) == (resident_entry.code, 2, CatalogEntry.Status.DRAFT)
        assert [i.code for i in v2.items.all()] == [i.code for i in resident_entry.items.all()]
        assert v2.review_case_id is None and v2.published_on is None
        # a second 修订 returns the open draft rather than a third version
        assert services.entry_revise(actor=psb_staff, entry=resident_entry) == v2
        # v1 stays published (the gateway keeps serving it) while v2 is edited
        assert services.entry_published(resident_entry.code) == resident_entry
        items = [*RESIDENT_ITEMS, {"code": "ethnicity", "name": "民族", "sharing_type": "unconditional"}]
        v2 = services.entry_save(
            actor=psb_staff, entry=v2, data={**RESIDENT_DATA, "name": "人口基础信息（2026 版）"}, items=items
        )
        v2 = publish_entry(v2, egov)
        resident_entry.refresh_from_db()
        assert resident_entry.status == CatalogEntry.Status.SUPERSEDED
        assert v2.status == CatalogEntry.Status.PUBLISHED
        assert services.entry_published(resident_entry.code) == v2
        assert v2.items.filter(code="ethnicity").exists()
        # the grant names the resource by code: it still holds for the new version
        grant = services.grant_live(system=edu_grant.system, resource_code=v2.code)
        assert grant == edu_grant

    def test_revise_needs_a_published_entry(self, psb, psb_staff, resident_entry):
        entry = draft(psb_staff, psb, data={"class_code": "101001002"})
        assert services.entry_revise(actor=psb_staff, entry=entry) == entry  # the open draft as is
        services.entry_revoke(actor=psb_staff, entry=resident_entry, reason="停用")
        with pytest.raises(ValidationError):
            services.entry_revise(actor=psb_staff, entry=resident_entry)

    def test_revoke_needs_a_reason_and_notifies_consumers(self, resident_entry, edu_grant, psb_staff, alice):
        with pytest.raises(ValidationError) as excinfo:
            services.entry_revoke(actor=psb_staff, entry=resident_entry, reason="  ")
        assert "reason" in errors_of(excinfo)
        entry = services.entry_revoke(actor=psb_staff, entry=resident_entry, reason="数据源迁移至市级平台")
        assert entry.status == CatalogEntry.Status.REVOKED and entry.revoked_reason == "数据源迁移至市级平台"
        assert services.entry_published(entry.code) is None
        # the consumer unit (区教育局) hears about it
        assert Notice.objects.filter(recipient_id=alice.pk, title__contains="已撤销").exists()
        with pytest.raises(ValidationError):
            services.entry_revoke(actor=psb_staff, entry=entry, reason="again")

    def test_delete_draft(self, psb, psb_staff, resident_entry):
        entry = draft(psb_staff, psb, data={"name": "临时"})
        services.entry_delete_draft(actor=psb_staff, entry=entry)
        assert not CatalogEntry.objects.filter(pk=entry.pk).exists()
        with pytest.raises(ValidationError):
            services.entry_delete_draft(actor=psb_staff, entry=resident_entry)


# --- validation --------------------------------------------------------------------------------


class TestValidation:
    @pytest.mark.parametrize("kind", ["conditional", "none"])
    def test_legal_basis_required_unless_unconditional(self, psb, psb_staff, kind):
        items = [{**i, "sharing_type": "none"} for i in RESIDENT_ITEMS] if kind == "none" else RESIDENT_ITEMS
        with pytest.raises(ValidationError) as excinfo:
            draft(psb_staff, psb, data={"sharing_type": kind, "legal_basis": ""}, items=items)
        assert "legal_basis" in errors_of(excinfo)

    def test_unconditional_needs_no_legal_basis(self, psb, psb_staff):
        items = [{**i, "sharing_type": "unconditional"} for i in RESIDENT_ITEMS]
        entry = draft(psb_staff, psb, data={"sharing_type": "unconditional", "legal_basis": "", "sharing_condition": ""},
                      items=items)  # fmt: skip
        assert entry.sharing_type == "unconditional"

    def test_condition_required_when_conditional(self, psb, psb_staff):
        with pytest.raises(ValidationError) as excinfo:
            draft(psb_staff, psb, data={"sharing_condition": ""})
        assert "sharing_condition" in errors_of(excinfo)

    def test_item_more_open_than_entry_refused(self, psb, psb_staff):
        items = [{**i, "sharing_type": "none"} for i in RESIDENT_ITEMS]
        items[2] = {**items[2], "sharing_type": "unconditional"}
        with pytest.raises(ValidationError) as excinfo:
            draft(psb_staff, psb, data={"sharing_type": "none"}, items=items)
        messages = errors_of(excinfo)["items"]
        assert len(messages) == 1 and "第 3 个信息项" in messages[0] and "更开放" in messages[0]

    def test_conditional_entry_may_hold_unconditional_items(self, psb, psb_staff):
        # 有条件共享 covers "only part of it may go to every department" (2017 guideline)
        entry = draft(psb_staff, psb)
        assert set(entry.items.values_list("sharing_type", flat=True)) == {"unconditional", "conditional"}

    def test_item_without_sharing_type_takes_the_entry_type(self, psb, psb_staff):
        entry = draft(psb_staff, psb, items=[{"code": "id_number", "name": "公民身份号码", "personal": True}])
        item = entry.items.get()
        assert item.sharing_type == "conditional" and item.mask == "full"  # personal without a mask: hidden whole

    def test_item_code_must_be_a_registry_column(self, psb, psb_staff):
        items = [*RESIDENT_ITEMS, {"code": "salary", "name": "工资", "sharing_type": "conditional"}]
        with pytest.raises(ValidationError) as excinfo:
            draft(psb_staff, psb, items=items)
        assert "基础库中没有字段 salary" in errors_of(excinfo)["items"][0]

    def test_catalogue_only_entries_name_their_own_items(self, psb, psb_staff):
        entry = draft(psb_staff, psb, data={**LICENCE_DATA, "class_code": "101001009"}, items=LICENCE_ITEMS)
        assert entry.registry == "" and entry.items.count() == 2

    def test_duplicate_item_codes(self, psb, psb_staff):
        items = [*RESIDENT_ITEMS, {"code": "name", "name": "曾用名", "sharing_type": "conditional"}]
        with pytest.raises(ValidationError) as excinfo:
            draft(psb_staff, psb, items=items)
        assert "重复" in errors_of(excinfo)["items"][0]

    @pytest.mark.parametrize(
        ("raw", "problem"),
        [(["101001001/999999"], "不存在"), (["abc"], "格式不正确"), (["101001001/000001"], "本资源")],
    )
    def test_related_codes_must_exist(self, psb, psb_staff, egov, raw, problem):
        entry = draft(psb_staff, psb)
        with pytest.raises(ValidationError) as excinfo:
            services.entry_save(actor=psb_staff, entry=entry, data={**RESIDENT_DATA, "related_codes": raw},
                                items=RESIDENT_ITEMS)  # fmt: skip
        assert problem in errors_of(excinfo)["related_codes"][0]

    def test_related_codes_of_existing_resources_are_kept(self, psb, psb_staff, resident_entry):
        entry = draft(psb_staff, psb, data={"class_code": "101001002", "related_codes": [resident_entry.code, " "]})
        assert entry.related_codes == [resident_entry.code]

    def test_items_class_code_and_choices(self, psb, psb_staff):
        with pytest.raises(ValidationError) as excinfo:
            draft(psb_staff, psb, data={"class_code": "401", "update_cycle": "hourly", "name": ""}, items=[])
        errors = errors_of(excinfo)
        assert {"class_code", "update_cycle", "name", "items"} <= set(errors)

    def test_class_code_cannot_change_on_edit(self, psb, psb_staff):
        entry = draft(psb_staff, psb)
        with pytest.raises(ValidationError) as excinfo:
            services.entry_save(actor=psb_staff, entry=entry, data={**RESIDENT_DATA, "class_code": "101001002"},
                                items=RESIDENT_ITEMS)  # fmt: skip
        assert "class_code" in errors_of(excinfo)

    def test_submit_without_items_refused(self, psb, psb_staff):
        entry = draft(psb_staff, psb)
        entry.items.all().delete()
        with pytest.raises(ValidationError):
            services.entry_submit(actor=psb_staff, entry=entry)


# --- access requests -------------------------------------------------------------------------


class TestAccessRequests:
    def test_unconditional_plain_items_are_granted_at_once(self, resident_entry, edu_system, alice):
        request = ask(alice, edu_system, resident_entry, ["id_number", "name", "gender"])
        assert request.status == AccessRequest.Status.GRANTED
        assert request.case_id is None and request.due_date is None
        grant = Grant.objects.get(system=edu_system, resource_code=resident_entry.code)
        assert grant.items == ["gender", "id_number", "name"] and grant.unmasked == []
        assert grant.provider == resident_entry.provider and grant.unit == edu_system.unit
        assert grant.request == request
        assert Notice.objects.filter(recipient_id=alice.pk, title__contains="已同意").exists()

    def test_plain_text_of_a_personal_item_needs_the_provider(self, resident_entry, edu_system, alice, psb_head):
        request = ask(alice, edu_system, resident_entry, ["id_number", "name"], unmasked=["name"])
        assert request.status == AccessRequest.Status.PENDING
        assert open_task(request.case).assignee == psb_head

    def test_conditional_request_goes_to_the_provider_leader_with_a_working_day_deadline(
        self, resident_entry, edu_system, alice, psb_head
    ):
        # Monday 2026-09-28: National Day 10-01..10-07 is off, Saturday 10-10 is a make-up working day.
        # 10 working days: 09-29, 09-30, 10-08, 10-09, 10-10, 10-12 … 10-16.
        with time_machine.travel(dt.datetime(2026, 9, 28, 10, 0, tzinfo=dt.UTC), tick=False):
            request = ask(alice, edu_system, resident_entry, ["id_number", "name", "address"])
        assert request.status == AccessRequest.Status.PENDING
        assert request.due_date == dt.date(2026, 10, 16)
        case = request.case
        assert case.definition.code == services.ACCESS_PROCESS
        assert case.lead_unit == resident_entry.provider and case.unit == edu_system.unit
        assert open_task(case).assignee == psb_head
        assert not Grant.objects.exists()

    def test_the_case_and_its_task_carry_the_reply_deadline(self, resident_entry, edu_system, alice, psb_head):
        # was 无时限 in the inbox and on the case while the request page said overdue
        with time_machine.travel(dt.datetime(2026, 9, 28, 10, 0, tzinfo=dt.UTC), tick=False):
            request = ask(alice, edu_system, resident_entry, ["id_number", "name", "address"])
        task = open_task(request.case)
        assert request.case.due_date == task.due_date == request.due_date == dt.date(2026, 10, 16)
        assert task.due_state(today=dt.date(2026, 10, 19)) == "overdue"

    def test_provider_approves_narrowing_the_items(self, resident_entry, edu_system, alice, psb_head):
        request = ask(alice, edu_system, resident_entry, ["id_number", "name", "address", "phone"],
                      unmasked=["address", "phone"])  # fmt: skip
        assert services.can_decide(psb_head, request)
        request = services.request_decide(
            actor=psb_head, request=request, approve=True, items=["id_number", "name", "address"],
            unmasked=["address"], reason="联系电话不予提供。",
        )  # fmt: skip
        assert request.status == AccessRequest.Status.GRANTED
        assert request.items == ["id_number", "name", "address"] and request.unmasked == ["address"]
        assert request.decided_by == psb_head and request.reason == "联系电话不予提供。"
        request.case.refresh_from_db()
        assert request.case.status == Case.Status.APPROVED
        grant = services.grant_live(system=edu_system, resource_code=resident_entry.code)
        assert grant.items == ["address", "id_number", "name"] and grant.unmasked == ["address"]
        assert not services.can_decide(psb_head, request)

    @pytest.mark.parametrize(
        ("items", "unmasked", "field"),
        [(["phone"], [], "items"), ([], [], "items"), (["name"], ["address"], "unmasked")],
    )
    def test_approval_may_only_narrow(self, resident_entry, edu_system, alice, psb_head, items, unmasked, field):
        request = ask(alice, edu_system, resident_entry, ["name", "address"], unmasked=["address"])
        with pytest.raises(ValidationError) as excinfo:
            services.request_decide(actor=psb_head, request=request, approve=True, items=items, unmasked=unmasked)
        assert field in errors_of(excinfo)

    def test_refusal_needs_a_reason(self, resident_entry, edu_system, alice, psb_head):
        request = ask(alice, edu_system, resident_entry, ["address"])
        with pytest.raises(ValidationError) as excinfo:
            services.request_decide(actor=psb_head, request=request, approve=False, reason=" ")
        assert "reason" in errors_of(excinfo)
        request = services.request_decide(actor=psb_head, request=request, approve=False, reason="用途与户籍地址无关")
        assert request.status == AccessRequest.Status.REFUSED and request.reason == "用途与户籍地址无关"
        request.case.refresh_from_db()
        assert request.case.status == Case.Status.REJECTED
        assert not Grant.objects.exists()
        assert Notice.objects.filter(recipient_id=alice.pk, title__contains="未获同意").exists()
        with pytest.raises(ValidationError):
            services.request_decide(actor=psb_head, request=request, approve=True)

    def test_answer_in_the_workflow_inbox_lands_on_the_request(self, resident_entry, edu_system, alice, psb_head):
        request = ask(alice, edu_system, resident_entry, ["address"])
        workflow.task_reject(task=open_task(request.case), actor=psb_head, comment="不符合共享条件")
        request.refresh_from_db()
        assert request.status == AccessRequest.Status.REFUSED and request.reason == "不符合共享条件"

    def test_egov_office_answers_directly_and_the_case_is_cancelled(self, resident_entry, edu_system, alice, egov):
        request = ask(alice, edu_system, resident_entry, ["id_number", "address"])
        assert services.can_decide(egov, request)
        request = services.request_decide(actor=egov, request=request, approve=True)
        assert request.status == AccessRequest.Status.GRANTED and request.decided_by == egov
        request.case.refresh_from_db()
        assert request.case.status == Case.Status.CANCELLED
        assert not Task.objects.filter(case=request.case, status=Task.Status.OPEN).exists()
        assert services.grant_live(system=edu_system, resource_code=resident_entry.code).items == [
            "address",
            "id_number",
        ]

    def test_overdue_requests_are_escalated_to_the_egov_office(self, resident_entry, edu_system, alice, psb_head, egov):
        request = ask(alice, edu_system, resident_entry, ["address"])
        assert services.requests_escalate(today=request.due_date) == 0
        assert services.requests_escalate(today=request.due_date + dt.timedelta(days=1)) == 1
        request.refresh_from_db()
        assert request.status == AccessRequest.Status.ESCALATED and request.escalated_at is not None
        assert Notice.objects.filter(recipient_id=egov.pk, title__contains="逾期").exists()
        assert Notice.objects.filter(recipient_id=psb_head.pk, title__contains="逾期").exists()
        assert services.requests_escalate(today=request.due_date + dt.timedelta(days=5)) == 0  # once only
        # still open: either the provider or the e-gov office may answer
        assert services.can_decide(psb_head, request) and services.can_decide(egov, request)
        request = services.request_decide(actor=egov, request=request, approve=False, reason="用途不明确")
        assert request.status == AccessRequest.Status.REFUSED

    def test_withdraw(self, resident_entry, edu_system, alice, bob):
        request = ask(alice, edu_system, resident_entry, ["address"])
        with pytest.raises(PermissionDenied):
            services.request_withdraw(actor=bob, request=request)
        request = services.request_withdraw(actor=alice, request=request)
        assert request.status == AccessRequest.Status.WITHDRAWN
        request.case.refresh_from_db()
        assert request.case.status == Case.Status.CANCELLED
        with pytest.raises(ValidationError):
            services.request_withdraw(actor=alice, request=request)
        # a new request may follow
        assert ask(alice, edu_system, resident_entry, ["address"]).status == AccessRequest.Status.PENDING

    def test_duplicate_open_request_refused(self, resident_entry, edu_system, alice):
        ask(alice, edu_system, resident_entry, ["address"])
        with pytest.raises(ValidationError, match="重复"):
            ask(alice, edu_system, resident_entry, ["phone"])

    def test_nothing_new_to_ask_for(self, edu_grant, resident_entry, edu_system, alice):
        with pytest.raises(ValidationError, match="无需再申请"):
            ask(alice, edu_system, resident_entry, ["name", "gender"])

    def test_a_second_grant_widens_the_first(self, edu_grant, resident_entry, edu_system, alice, psb_head):
        request = ask(alice, edu_system, resident_entry, ["phone"], unmasked=["phone"])
        services.request_decide(actor=psb_head, request=request, approve=True)
        grant = services.grant_live(system=edu_system, resource_code=resident_entry.code)
        assert grant.pk == edu_grant.pk and "phone" in grant.items and grant.unmasked == ["phone"]
        assert Grant.objects.filter(system=edu_system).count() == 1

    def test_the_system_account_may_ask_for_itself(self, resident_entry, edu_system):
        request = ask(edu_system.account, edu_system, resident_entry, ["address"])
        assert request.requested_by is None and request.case.initiator == edu_system.account

    @pytest.mark.parametrize(
        ("items", "unmasked", "purpose", "field"),
        [
            ([], [], "入学资格核验", "items"),
            (["salary"], [], "入学资格核验", "items"),
            (["gender"], ["gender"], "入学资格核验", "unmasked"),
            (["name"], ["address"], "入学资格核验", "unmasked"),
            (["name"], [], "核验", "purpose"),
        ],
    )
    def test_request_validation(self, resident_entry, edu_system, alice, items, unmasked, purpose, field):
        with pytest.raises(ValidationError) as excinfo:
            ask(alice, edu_system, resident_entry, items, unmasked=unmasked, purpose=purpose)
        assert field in errors_of(excinfo)

    def test_only_published_shareable_resources(self, psb, psb_staff, resident_entry, edu_system, alice):
        entry = draft(psb_staff, psb, data={"class_code": "101001002"})
        with pytest.raises(ValidationError, match="已发布"):
            ask(alice, edu_system, entry, ["name"])
        services.entry_revoke(actor=psb_staff, entry=resident_entry, reason="停用")
        with pytest.raises(ValidationError, match="已发布"):
            ask(alice, edu_system, resident_entry, ["name"])

    def test_closed_items_cannot_be_asked_for(self, psb, psb_staff, egov, edu_system, alice):
        items = [*RESIDENT_ITEMS[:2], {"code": "household", "name": "户号", "sharing_type": "none"}]
        entry = publish_entry(draft(psb_staff, psb, data={"class_code": "101001003"}, items=items), egov)
        with pytest.raises(ValidationError, match="不予共享"):
            ask(alice, edu_system, entry, ["name", "household"])


# --- grants ------------------------------------------------------------------------------------


class TestGrants:
    def test_revoke(self, edu_grant, psb_staff, alice):
        with pytest.raises(PermissionDenied):
            services.grant_revoke(actor=alice, grant=edu_grant, reason="不用了")
        with pytest.raises(ValidationError):
            services.grant_revoke(actor=psb_staff, grant=edu_grant, reason="")
        grant = services.grant_revoke(actor=psb_staff, grant=edu_grant, reason="核查发现超范围使用")
        assert grant.revoked_at is not None and grant.revoked_reason == "核查发现超范围使用"
        assert services.grant_live(system=grant.system, resource_code=grant.resource_code) is None
        assert Notice.objects.filter(recipient_id=alice.pk, title__contains="授权已撤销").exists()
        with pytest.raises(ValidationError):
            services.grant_revoke(actor=psb_staff, grant=grant, reason="again")

    def test_a_revoked_grant_may_be_asked_for_again(self, edu_grant, psb_staff, resident_entry, edu_system, alice):
        services.grant_revoke(actor=psb_staff, grant=edu_grant, reason="到期复核")
        request = ask(alice, edu_system, resident_entry, ["name"])
        assert request.status == AccessRequest.Status.GRANTED
        assert Grant.objects.filter(system=edu_system).count() == 2

    def test_expired_grant_is_not_live(self, edu_grant):
        Grant.objects.filter(pk=edu_grant.pk).update(expires_on=timezone.localdate() - dt.timedelta(days=1))
        assert services.grant_live(system=edu_grant.system, resource_code=edu_grant.resource_code) is None

    def test_limit(self, edu_grant, psb_staff, egov, alice):
        assert services.grant_limit(actor=psb_staff, grant=edu_grant, per_minute=120).per_minute == 120
        assert services.grant_limit(actor=egov, grant=edu_grant, per_minute=None).per_minute is None
        with pytest.raises(ValidationError):
            services.grant_limit(actor=psb_staff, grant=edu_grant, per_minute=0)
        with pytest.raises(PermissionDenied):
            services.grant_limit(actor=alice, grant=edu_grant, per_minute=10)


# --- who may do what ------------------------------------------------------------------------


class TestPermissions:
    def test_another_unit_cannot_keep_the_catalogue(self, psb, psb_staff, bob, resident_entry):
        with pytest.raises(PermissionDenied):
            draft(bob, psb)
        entry = draft(psb_staff, psb, data={"class_code": "101001002"})
        with pytest.raises(PermissionDenied):
            services.entry_save(actor=bob, entry=entry, data=RESIDENT_DATA, items=RESIDENT_ITEMS)
        with pytest.raises(PermissionDenied):
            services.entry_submit(actor=bob, entry=entry)
        with pytest.raises(PermissionDenied):
            services.entry_delete_draft(actor=bob, entry=entry)
        with pytest.raises(PermissionDenied):
            services.entry_revise(actor=bob, entry=resident_entry)
        with pytest.raises(PermissionDenied):
            services.entry_revoke(actor=bob, entry=resident_entry, reason="x")
        assert not services.can_manage_entry(bob, resident_entry)
        assert services.can_manage_entry(psb_staff, resident_entry)

    def test_egov_office_keeps_any_catalogue(self, psb, egov):
        entry = draft(egov, psb)
        assert entry.provider == psb and services.can_manage_entry(egov, entry)

    def test_only_the_provider_task_or_egov_decides(self, resident_entry, edu_system, alice, bob, psb_staff, psb_head):
        request = ask(alice, edu_system, resident_entry, ["address"])
        for outsider in (alice, bob, psb_staff):
            assert not services.can_decide(outsider, request)
            with pytest.raises(PermissionDenied):
                services.request_decide(actor=outsider, request=request, approve=True)
        assert services.can_decide(psb_head, request)

    def test_requests_only_for_own_unit_systems(self, resident_entry, edu_system, fin_system, bob):
        with pytest.raises(PermissionDenied):
            ask(bob, edu_system, resident_entry, ["name"])
        assert ask(bob, fin_system, resident_entry, ["name"], purpose="财政补贴对象身份核验").status == "granted"

    def test_system_accounts_cannot_keep_a_catalogue(self, psb, edu_system):
        assert not services.can_manage_entry(edu_system.account, provider=psb)
        assert services.can_use_system(edu_system.account, edu_system)
