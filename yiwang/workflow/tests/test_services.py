"""The engine through its services: every step kind, every action, versions and refusals."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.dispatch import receiver

from conftest import make_person
from yiwang.core import modules
from yiwang.core.models import AuditEntry
from yiwang.workflow import selectors, services, signals
from yiwang.workflow.models import Action, Case, ProcessDefinition, Task

from .conftest import save

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def open_task(user, case=None) -> Task:
    qs = selectors.inbox(user=user)
    if case is not None:
        qs = qs.filter(case=case)
    return qs.get()


def start(initiator, process="test.chain", amount=0, **kwargs) -> Case:
    return services.case_start(
        process=process, initiator=initiator, title="购置办公电脑", fields={"amount": amount}, **kwargs
    )


class TestDefinitionSave:
    def test_no_steps_refused(self, alice):
        with pytest.raises(ValidationError) as exc:
            save(steps=[])
        assert "至少需要一个环节" in str(exc.value)
        assert not ProcessDefinition.objects.exists()

    def test_unknown_person_refused_naming_the_step(self, alice):
        steps = [{"name": "审核", "kind": "single", "assignee": {"type": "person", "usernames": ["alice", "ghost"]}}]
        with pytest.raises(ValidationError) as exc:
            save(steps=steps)
        messages = exc.value.message_dict["steps"]
        assert any("第 1 步“审核”" in m and "ghost" in m for m in messages)

    def test_role_in_unit_with_nobody_refused(self, alice, units):
        steps = [{"name": "财政审核", "kind": "single", "assignee": {"type": "role", "unit": "FIN", "role": "leader"}}]
        with pytest.raises(ValidationError) as exc:
            save(steps=steps)
        assert "无人办理" in str(exc.value)

    @pytest.mark.parametrize(
        ("step", "fragment"),
        [
            ({"name": "x", "kind": "vote", "assignee": {"type": "initiator_leader"}}, "未知的审批方式"),
            ({"name": "x", "assignee": {"type": "somebody"}}, "办理人规则"),
            ({"name": "", "assignee": {"type": "initiator_leader"}}, "环节名称"),
            ({"name": "x", "assignee": {"type": "initiator_leader"}, "time_limit": 0}, "1–365"),
            ({"name": "x", "assignee": {"type": "initiator_leader"}, "time_limit": "abc"}, "1–365"),
            ({"name": "x", "assignee": {"type": "initiator_leader", "rank": "boss"}}, "领导类别"),
            ({"name": "x", "assignee": {"type": "lead_unit", "role": "nope"}}, "未知的角色"),
            (
                {
                    "name": "x",
                    "assignee": {"type": "initiator_leader"},
                    "condition": {"field": "amount", "op": "gt", "value": "many"},
                },
                "必须是数字",
            ),
            (
                {
                    "name": "x",
                    "assignee": {"type": "initiator_leader"},
                    "condition": {"field": "a b", "op": "eq", "value": 1},
                },
                "字段名",
            ),
            ("not a step", "格式错误"),
        ],
    )
    def test_malformed_steps_refused(self, alice, step, fragment):
        with pytest.raises(ValidationError) as exc:
            save(steps=[step])
        assert fragment in str(exc.value)

    def test_duplicate_keys_refused(self, carol):
        rule = {"type": "initiator_leader"}
        with pytest.raises(ValidationError) as exc:
            save(steps=[{"key": "a", "name": "一", "assignee": rule}, {"key": "a", "name": "二", "assignee": rule}])
        assert "重复" in str(exc.value)

    def test_only_platform_admin_may_save(self, alice, admin, carol):
        steps = [{"name": "审批", "assignee": {"type": "initiator_leader"}}]
        with pytest.raises(PermissionDenied):
            services.definition_save(actor=alice, code="x.y", name="n", module="oa", steps=steps)
        definition = services.definition_save(actor=admin, code="x.y", name="n", module="oa", steps=steps)
        assert definition.version == 1 and definition.created_by == admin
        assert AuditEntry.objects.filter(action="workflow.definition.save").exists()

    def test_usernames_may_be_a_chinese_comma_list(self, alice, bob):
        definition = save(steps=[{"name": "会签", "kind": "countersign",
                                  "assignee": {"type": "person", "usernames": "alice，bob"}}])  # fmt: skip
        assert definition.steps[0]["assignee"]["usernames"] == ["alice", "bob"]


class TestVersions:
    def test_running_case_keeps_its_version(self, alice, carol, bob, simple):
        case = start(alice, process="test.simple")
        v2 = save(steps=[{"name": "财政审核", "kind": "single", "assignee": {"type": "person", "usernames": ["bob"]}}])
        assert v2.version == 2
        simple.refresh_from_db()
        assert simple.status == ProcessDefinition.Status.RETIRED
        # the old case still goes to carol, on version 1
        services.task_approve(task=open_task(carol), actor=carol)
        case.refresh_from_db()
        assert case.status == Case.Status.APPROVED and case.definition_id == simple.pk
        # a new case starts on version 2 and goes to bob
        new = start(alice, process="test.simple")
        assert new.definition == v2 and open_task(bob, new).step_name == "财政审核"

    def test_export_import_round_trip(self, admin, simple):
        exported = services.definition_export(simple)
        exported["name"] = "改名后的流程"
        again = services.definition_import(actor=admin, data=__import__("json").dumps(exported))
        assert (again.code, again.version, again.name) == ("test.simple", 2, "改名后的流程")
        assert again.steps == simple.steps

    @pytest.mark.parametrize("data", [b"{not json", b'{"format": "other"}', b"[]"])
    def test_import_refuses_foreign_files(self, admin, data):
        with pytest.raises(ValidationError):
            services.definition_import(actor=admin, data=data)
        assert not ProcessDefinition.objects.exists()

    def test_disabled_process_cannot_start(self, admin, alice, simple):
        services.definition_disable(actor=admin, code="test.simple")
        with pytest.raises(ValidationError) as exc:
            start(alice, process="test.simple")
        assert "未定义或已停用" in str(exc.value)


class TestStepKinds:
    def test_countersign_needs_everyone_and_condition_adds_a_step(self, alice, carol, bob, frank, erin, chain):
        case = start(alice, amount=200000)
        services.task_approve(task=open_task(carol), actor=carol, comment="同意")
        services.task_approve(task=open_task(bob), actor=bob)
        case.refresh_from_db()
        assert case.step_index == 1, "one countersign approval must not complete the step"
        services.task_approve(task=open_task(frank), actor=frank)
        case.refresh_from_db()
        assert case.step_index == 2
        services.task_approve(task=open_task(erin), actor=erin)
        case.refresh_from_db()
        assert case.status == Case.Status.APPROVED and case.finished_at is not None
        kinds = list(case.actions.values_list("kind", flat=True))
        assert kinds.count("step_done") == 3 and kinds[-1] == "finish"

    def test_condition_false_skips_the_step(self, alice, carol, bob, frank, erin, chain):
        case = start(alice, amount=5000)
        for person in (carol, bob, frank):
            services.task_approve(task=open_task(person), actor=person)
        case.refresh_from_db()
        assert case.status == Case.Status.APPROVED
        assert not Task.objects.filter(assignee=erin).exists()
        assert [s["state"] for s in selectors.steps_progress(case)] == ["done", "done", "skipped"]

    def test_any_one_of_completes_on_first_approval(self, alice, bob, frank, carol):
        save(code="t.any", steps=[
            {"name": "或签", "kind": "any_one", "assignee": {"type": "person", "usernames": ["bob", "frank"]}},
            {"name": "局长", "kind": "single", "assignee": {"type": "initiator_leader"}},
        ])  # fmt: skip
        case = start(alice, process="t.any")
        services.task_approve(task=open_task(frank), actor=frank)
        assert case.tasks.get(assignee=bob).status == Task.Status.CANCELLED
        assert open_task(carol, case).step_index == 1
        assert selectors.inbox_count(bob) == 0

    def test_single_step_with_several_candidates_is_a_pool(self, alice, carol, dave, units, roles):
        make_person("gina", "孙红", units["edu"], roles["leader"], title="局长", leader_rank="principal")
        save(code="t.pool", steps=[{"name": "局领导", "kind": "single", "assignee": {"type": "initiator_leader"}}])
        case = start(alice, process="t.pool")
        assert case.tasks.count() == 3  # carol, dave, gina: every leader of 区教育局
        services.task_approve(task=open_task(dave), actor=dave)
        case.refresh_from_db()
        assert case.status == Case.Status.APPROVED

    def test_initiator_leader_goes_up_from_an_office_without_one(self, carol, units, roles):
        clerk = make_person("hank", "钱进", units["edu_office"], roles["staff"])
        save(code="t.up", steps=[{"name": "领导", "assignee": {"type": "initiator_leader", "rank": "principal"}}])
        start(clerk, process="t.up")
        assert open_task(carol).title == "购置办公电脑"

    def test_lead_unit_rule_uses_the_case_lead_unit(self, alice, erin, frank, units):
        save(code="t.lead", steps=[
            {"name": "主办单位领导", "assignee": {"type": "lead_unit"}},
            {"name": "主办单位经办", "assignee": {"type": "lead_unit", "role": "staff"}},
        ])  # fmt: skip
        case = start(alice, process="t.lead", lead_unit=units["fin"])
        services.task_approve(task=open_task(erin), actor=erin)
        assert open_task(frank, case).step_name == "主办单位经办"

    def test_start_refused_when_a_step_would_have_nobody(self, bob):
        save(code="t.none", steps=[{"name": "局长", "assignee": {"type": "initiator_leader"}}])
        with pytest.raises(ValidationError) as exc:
            start(bob, process="t.none")  # 区财政局 has no leader yet, nor has the district
        assert "找不到办理人" in str(exc.value)
        assert not Case.objects.exists()


class TestActions:
    def test_not_your_task_is_refused_and_nothing_changes(self, alice, carol, bob, simple):
        case = start(alice, process="test.simple")
        task = open_task(carol)
        with pytest.raises(PermissionDenied, match="不是您的待办"):
            services.task_approve(task=task, actor=bob)
        task.refresh_from_db()
        assert task.status == Task.Status.OPEN and case.actions.count() == 1

    def test_acting_twice_is_refused(self, alice, carol, chain):
        start(alice)
        task = open_task(carol)
        services.task_approve(task=task, actor=carol)
        with pytest.raises(ValidationError, match="已办理"):
            services.task_approve(task=task, actor=carol)

    def test_reject_needs_a_reason_and_ends_the_case(self, alice, carol, simple):
        case = start(alice, process="test.simple")
        with pytest.raises(ValidationError, match="驳回理由"):
            services.task_reject(task=open_task(carol), actor=carol, comment="  ")
        services.task_reject(task=open_task(carol), actor=carol, comment="预算不足")
        case.refresh_from_db()
        assert case.status == Case.Status.REJECTED
        assert not case.tasks.filter(status=Task.Status.OPEN).exists()

    def test_return_to_an_earlier_step(self, alice, carol, bob, frank, chain):
        case = start(alice)
        services.task_approve(task=open_task(carol), actor=carol)
        services.task_approve(task=open_task(bob), actor=bob)
        with pytest.raises(ValidationError, match="前面环节"):
            services.task_return(task=open_task(frank), actor=frank, to_step=2, comment="x")
        services.task_return(task=open_task(frank), actor=frank, to_step=0, comment="请补充报价单")
        case.refresh_from_db()
        assert case.step_index == 0
        assert not case.tasks.filter(assignee=bob, status=Task.Status.OPEN).exists()
        services.task_approve(task=open_task(carol), actor=carol)
        # the countersign step runs again in full: bob's earlier approval belonged to the old round
        assert {t.assignee for t in case.tasks.filter(status=Task.Status.OPEN)} == {bob, frank}

    def test_return_to_initiator_and_resubmit_resumes_there(self, alice, carol, bob, frank, chain):
        case = start(alice)
        services.task_approve(task=open_task(carol), actor=carol)
        services.task_return(task=open_task(bob), actor=bob, to_step=-1, comment="金额写错")
        redo = open_task(alice)
        assert redo.step_name == "退回起草人修改"
        services.task_approve(task=redo, actor=alice, comment="已改正")
        case.refresh_from_db()
        assert case.step_index == 1 and case.tasks.filter(assignee=frank, status=Task.Status.OPEN).exists()
        assert case.actions.filter(kind=Action.Kind.RESUBMIT).exists()

    def test_transfer(self, alice, carol, bob, frank, chain):
        start(alice)
        services.task_approve(task=open_task(carol), actor=carol)
        new = services.task_transfer(task=open_task(bob), actor=bob, to_user=carol, comment="请陈局代审")
        assert new.sender == bob and new.required
        assert selectors.inbox_count(bob) == 0
        with pytest.raises(ValidationError):
            services.task_transfer(task=new, actor=carol, to_user=frank)  # frank already holds one here
        services.task_approve(task=new, actor=carol)
        assert selectors.done_list(user=bob).get().outcome == Task.Outcome.TRANSFERRED

    def test_delegate_one_task(self, alice, carol, dave, bob, simple):
        case = start(alice, process="test.simple")
        task = open_task(carol)
        services.task_delegate(task=task, actor=carol, to_user=dave)
        assert open_task(dave) == task
        with pytest.raises(PermissionDenied, match="只有办理人本人"):
            services.task_delegate(task=task, actor=dave, to_user=bob)
        services.task_approve(task=task, actor=dave, comment="代局长同意")
        action = case.actions.get(kind=Action.Kind.APPROVE)
        assert action.actor == dave and action.on_behalf_of == carol

    def test_org_delegation_lets_the_delegate_act(self, alice, carol, dave, simple):
        from datetime import timedelta

        from django.utils import timezone

        from yiwang.org import services as org

        case = start(alice, process="test.simple")
        now = timezone.now()
        org.delegation_create(actor=carol, principal=carol, delegate=dave, starts_at=now - timedelta(hours=1),
                              ends_at=now + timedelta(days=3), reason="出差")  # fmt: skip
        task = open_task(dave)
        assert task.assignee == carol
        services.task_approve(task=task, actor=dave)
        assert case.actions.get(kind=Action.Kind.APPROVE).on_behalf_of == carol

    def test_add_signer_must_also_agree(self, alice, carol, bob, simple):
        case = start(alice, process="test.simple")
        services.task_add_signers(task=open_task(carol), actor=carol, people=[bob], comment="请财政会签")
        services.task_approve(task=open_task(carol), actor=carol)
        case.refresh_from_db()
        assert case.is_running, "the added signer has not agreed yet"
        services.task_approve(task=open_task(bob), actor=bob)
        case.refresh_from_db()
        assert case.status == Case.Status.APPROVED

    def test_withdraw_before_anyone_acts(self, alice, carol, bob, simple):
        case = start(alice, process="test.simple")
        with pytest.raises(PermissionDenied):
            services.case_withdraw(case=case, actor=bob)
        services.case_withdraw(case=case, actor=alice, comment="重复提交")
        case.refresh_from_db()
        assert case.status == Case.Status.WITHDRAWN
        with pytest.raises(ValidationError, match="撤回"):
            services.task_approve(task=case.tasks.get(), actor=carol)

    def test_withdraw_refused_once_the_next_step_acted(self, alice, carol, chain):
        case = start(alice)
        services.task_approve(task=open_task(carol), actor=carol)
        assert not services.can_withdraw(case, alice)
        with pytest.raises(ValidationError, match="无法撤回"):
            services.case_withdraw(case=case, actor=alice)

    def test_comment_with_attachment_and_bad_file(self, alice, carol, simple):
        case = start(alice, process="test.simple")
        pdf = SimpleUploadedFile("报价单.pdf", b"%PDF-1.4 test", content_type="application/pdf")
        services.task_approve(task=open_task(carol), actor=carol, comment="见附件", files=[pdf])
        attachment = case.attachments.get()
        assert attachment.name == "报价单.pdf" and attachment.size == 13
        with pytest.raises(ValidationError, match="不支持的附件类型"):
            services.case_comment(case=case, actor=alice, comment="x",
                                  files=[SimpleUploadedFile("a.exe", b"MZ")])  # fmt: skip
        assert case.actions.filter(kind=Action.Kind.COMMENT).count() == 0

    def test_outsider_cannot_comment(self, alice, carol, bob, simple):
        case = start(alice, process="test.simple")
        with pytest.raises(PermissionDenied):
            services.case_comment(case=case, actor=bob, comment="路过")

    def test_signals_reach_modules(self, alice, carol, chain, bob, frank):
        heard = []

        @receiver(signals.step_completed, weak=False)
        def step(sender, case, step_index, **kw):
            heard.append(("step", step_index))

        @receiver(signals.case_returned, weak=False)
        def returned(sender, case, to_step, **kw):
            heard.append(("returned", to_step))

        @receiver(signals.case_finished, weak=False)
        def finished(sender, case, outcome, **kw):
            heard.append(("finished", outcome))

        try:
            start(alice)
            services.task_approve(task=open_task(carol), actor=carol)
            services.task_return(task=open_task(bob), actor=bob, to_step=0, comment="再看看")
            services.task_reject(task=open_task(carol), actor=carol, comment="不办了")
        finally:
            signals.step_completed.disconnect(step)
            signals.case_returned.disconnect(returned)
            signals.case_finished.disconnect(finished)
        assert heard == [("step", 0), ("returned", 0), ("finished", "rejected")]

    def test_inbox_badge_counter_is_registered(self, alice, carol, simple):
        start(alice, process="test.simple")
        assert modules.inbox_count(carol) == 1 and modules.inbox_count(alice) == 0

    def test_every_action_is_audited(self, alice, carol, simple):
        start(alice, process="test.simple")
        services.task_approve(task=open_task(carol), actor=carol)
        actions = set(AuditEntry.objects.values_list("action", flat=True))
        assert {"workflow.case.start", "workflow.task.approve", "workflow.case.approved"} <= actions


class TestHandOver:
    def test_a_unit_admin_hands_over_all_open_tasks(self, alice, carol, dave, bob, units, roles, simple, chain):
        from conftest import make_person

        manager = make_person("ivy", "周敏", units["edu"], roles["unit_admin"], title="办公室主任")
        first = start(alice, process="test.simple")
        second = start(alice)
        assert selectors.inbox_count(carol) == 2
        with pytest.raises(PermissionDenied):
            services.tasks_hand_over(actor=bob, from_user=carol, to_user=dave, reason="调岗")
        with pytest.raises(ValidationError, match="交接原因"):
            services.tasks_hand_over(actor=manager, from_user=carol, to_user=dave, reason="")
        moved = services.tasks_hand_over(actor=manager, from_user=carol, to_user=dave, reason="陈静调任")
        assert moved == 2 and selectors.inbox_count(carol) == 0 and selectors.inbox_count(dave) == 2
        for case in (first, second):
            line = case.actions.get(kind=Action.Kind.TRANSFER)
            assert line.on_behalf_of == carol and line.data["hand_over"] is True
        services.task_approve(task=open_task(dave, first), actor=dave)
        first.refresh_from_db()
        assert first.status == Case.Status.APPROVED


class TestRobustness:
    @pytest.mark.parametrize(
        "step",
        [
            {"name": "x", "kind": ["single"], "assignee": {"type": "initiator_leader"}},
            {"name": "x", "assignee": {"type": ["person"]}},
            {"name": "x", "assignee": {"type": "person", "usernames": 5}},
            {"name": "x", "assignee": {"type": "initiator_leader", "rank": ["principal"]}},
            {
                "name": "x",
                "assignee": {"type": "initiator_leader"},
                "condition": {"field": "a", "op": ["gt"], "value": 1},
            },
            {"name": ["x"], "assignee": {"type": "initiator_leader"}},
        ],
    )
    def test_wrong_json_types_are_refused_not_crashed(self, carol, step):
        with pytest.raises(ValidationError):
            save(steps=[step])

    def test_non_string_code_and_non_object_fields(self, alice, carol, simple):
        with pytest.raises(ValidationError):
            services.definition_save(actor=None, code=["x"], name=None, module=3, steps=simple.steps)
        with pytest.raises(ValidationError, match="对象"):
            services.case_start(process="test.simple", initiator=alice, title="t", fields=["amount"])

    def test_withdrawing_a_suspended_case_closes_the_suspension(self, alice, carol, simple):
        case = start(alice, process="test.simple")
        services.case_suspend(case=case, actor=carol, reason="等待材料")
        services.case_withdraw(case=case, actor=alice)
        case.refresh_from_db()
        assert not case.is_suspended and case.suspensions.get().ended_at is not None
        with pytest.raises(ValidationError, match="已办结"):
            services.case_resume(case=case, actor=carol)

    def test_internal_processes_cannot_be_started_by_hand(self, alice, carol):
        definition = services.builtin_process(
            code="t.internal", name="模块流程", module="oa", description="",
            steps=[{"name": "审批", "assignee": {"type": "initiator_leader"}}],
        )  # fmt: skip
        assert definition.internal
        with pytest.raises(ValidationError, match="不能手工发起"):
            services.case_start(process="t.internal", initiator=alice, title="t", manual=True)
        assert services.case_start(process="t.internal", initiator=alice, title="t").is_running

    def test_case_list_matches_who_may_view(self, alice, carol, dave, simple):
        case = start(alice, process="test.simple")
        services.task_delegate(task=open_task(carol), actor=carol, to_user=dave)
        assert selectors.can_view_case(case, dave)
        assert case in selectors.case_list(user=dave)
