"""The workflow screens: inbox, case page actions, attachments, definitions, start, notices."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from yiwang.core.models import Notice
from yiwang.core.notices import notice_send
from yiwang.core.tests import files as sample
from yiwang.org import services as org
from yiwang.workflow import clock, services
from yiwang.workflow.models import Action, Attachment, Case, Extension, ProcessDefinition, Task

from .conftest import save

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def start(user, process="test.simple", title="关于购置办公电脑的请示", **kwargs):
    return services.case_start(process=process, initiator=user, title=title, **kwargs)


def as_user(client, user):
    client.force_login(user)
    return client


def open_task(user):
    return Task.objects.get(assignee=user, status=Task.Status.OPEN)


def case_url(case):
    return reverse("workflow:case_detail", args=[case.pk])


def task_url(name, task):
    return reverse(f"workflow:{name}", args=[task.pk])


def html(response) -> str:
    return response.content.decode()


def delegate(principal, to, *, days=3):
    now = timezone.now()
    return org.delegation_create(
        actor=principal,
        principal=principal,
        delegate=to,
        starts_at=now - dt.timedelta(minutes=1),
        ends_at=now + dt.timedelta(days=days),
        reason="出差",
    )


# --- the inbox --------------------------------------------------------------------------------


class TestInbox:
    def test_lists_only_own_tasks(self, client, alice, bob, carol, simple):
        start(alice, title="请示甲")
        response = as_user(client, carol).get(reverse("workflow:inbox"))
        assert response.status_code == 200
        page = html(response)
        assert "请示甲" in page and "局长审批" in page and "王丽" in page  # title, step, sender
        assert "同意" in page and 'hx-post="/workflow/tasks/' in page
        assert "代 " not in page
        for other in (alice, bob):
            assert "请示甲" not in html(as_user(client, other).get(reverse("workflow:inbox")))

    def test_delegated_tasks_show_on_behalf(self, client, alice, carol, dave, simple):
        start(alice, title="请示乙")
        delegate(carol, dave)
        page = html(as_user(client, dave).get(reverse("workflow:inbox")))
        assert "请示乙" in page and "代 陈静 办理" in page

    def test_done_tab(self, client, alice, carol, simple):
        start(alice, title="请示丙")
        services.task_approve(task=open_task(carol), actor=carol, comment="同意")
        as_user(client, carol)
        todo = html(client.get(reverse("workflow:inbox")))
        assert "请示丙" not in todo and "暂无待办事项" in todo
        done = client.get(reverse("workflow:inbox"), {"tab": "done"})
        assert done.status_code == 200 and done.context["tab"] == "done"
        assert "请示丙" in html(done) and "办理时间" in html(done)

    def test_filters(self, client, alice, carol, simple):
        save(code="test.other", module="workflow", name="其他流程", steps=simple.steps)
        start(alice, title="采购请示")
        start(alice, process="test.other", title="值班安排")
        late = start(alice, title="超期的请示")
        Task.objects.filter(case=late).update(due_date=dt.date(2020, 1, 6))
        as_user(client, carol)
        response = client.get(reverse("workflow:inbox"))
        modules = dict(response.context["filter_form"].fields["module"].choices)
        assert modules.get("workflow") == "流程与待办" and "oa" in modules
        assert "hotline" not in modules  # only modules that appear in the user's tasks
        by_module = html(client.get(reverse("workflow:inbox"), {"module": "workflow"}))
        assert "值班安排" in by_module and "采购请示" not in by_module
        by_title = html(client.get(reverse("workflow:inbox"), {"q": "采购"}))
        assert "采购请示" in by_title and "值班安排" not in by_title
        overdue = html(client.get(reverse("workflow:inbox"), {"due": "overdue"}))
        assert "超期的请示" in overdue and "采购请示" not in overdue and "已超期" in overdue
        on_time = html(client.get(reverse("workflow:inbox"), {"due": "on_time"}))
        assert "超期的请示" not in on_time and "采购请示" in on_time

    def test_due_badges_and_one_threshold_per_request(self, client, alice, carol, simple, monkeypatch):
        cases = [start(alice, title=f"请示{i}") for i in range(3)]
        today = clock.today()
        Task.objects.filter(case=cases[0]).update(due_date=today - dt.timedelta(days=3))
        Task.objects.filter(case=cases[1]).update(due_date=today)
        Task.objects.filter(case=cases[2]).update(due_date=None)
        calls = []
        real = clock.soon_threshold
        monkeypatch.setattr(clock, "soon_threshold", lambda day=None: calls.append(day) or real(day))
        page = html(as_user(client, carol).get(reverse("workflow:inbox")))
        assert "已超期" in page and "即将到期" in page and "无时限" in page
        assert len(calls) == 1

    def test_inbox_badge_in_top_bar(self, client, alice, carol, simple):
        start(alice, title="请示一")
        start(alice, title="请示二")
        page = html(as_user(client, carol).get(reverse("core:workbench")))
        link = page[page.index('id="yw-inbox-link"') : page.index("</a>", page.index('id="yw-inbox-link"'))]
        assert 'href="/workflow/"' in link and "yw-inbox-badge" in link and ">2<" in link
        page = html(as_user(client, alice).get(reverse("core:workbench")))
        link = page[page.index('id="yw-inbox-link"') : page.index("</a>", page.index('id="yw-inbox-link"'))]
        assert "yw-inbox-badge" not in link


# --- approving -------------------------------------------------------------------------------


class TestApprove:
    def test_approve_from_case_page(self, client, alice, carol, simple):
        case = start(alice)
        task = open_task(carol)
        as_user(client, carol)
        page = client.get(case_url(case))
        assert page.status_code == 200
        assert "办理：局长审批" in html(page) and task_url("task_approve", task) in html(page)
        response = client.post(task_url("task_approve", task), {"comment": "同意购置"}, follow=True)
        assert response.status_code == 200 and "已办理：同意" in html(response)
        case.refresh_from_db()
        assert case.status == Case.Status.APPROVED
        assert "同意购置" in html(response)  # the timeline shows the opinion
        assert "办理：局长审批" not in html(response)  # no action panel any more

    def test_htmx_quick_approve_returns_the_row(self, client, alice, carol, simple):
        start(alice)
        task = open_task(carol)
        response = as_user(client, carol).post(task_url("task_approve", task), HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert f'id="wf-task-{task.pk}"' in html(response) and "已办理" in html(response)
        assert "<html" not in html(response)
        task.refresh_from_db()
        assert task.status == Task.Status.DONE and task.acted_by == carol

    def test_htmx_refused_returns_row_with_error(self, client, alice, carol, dave, simple):
        start(alice)
        task = open_task(carol)
        response = as_user(client, dave).post(task_url("task_approve", task), HTTP_HX_REQUEST="true")
        assert response.status_code == 403
        assert response["X-Workflow-Inline"] == "1"
        assert "这不是您的待办" in html(response) and f'id="wf-task-{task.pk}"' in html(response)
        task.refresh_from_db()
        assert task.status == Task.Status.OPEN

    def test_someone_elses_task_is_403_and_nothing_changes(self, client, alice, carol, simple):
        case = start(alice)
        task = open_task(carol)
        actions = case.actions.count()
        response = as_user(client, alice).post(task_url("task_approve", task), {"comment": "我自己批"})
        assert response.status_code == 403
        assert "这不是您的待办，无权办理。" in html(response)
        task.refresh_from_db()
        assert task.status == Task.Status.OPEN and case.actions.count() == actions

    def test_task_of_a_case_one_cannot_see_is_404(self, client, alice, bob, carol, simple):
        start(alice)
        response = as_user(client, bob).post(task_url("task_approve", open_task(carol)))
        assert response.status_code == 404
        assert as_user(client, bob).get(case_url(Case.objects.get())).status_code == 404

    def test_acting_on_a_withdrawn_case(self, client, alice, carol, simple):
        case = start(alice)
        task = open_task(carol)
        response = as_user(client, alice).post(reverse("workflow:case_withdraw", args=[case.pk]), follow=True)
        assert "流程已撤回" in html(response)
        case.refresh_from_db()
        assert case.status == Case.Status.WITHDRAWN
        actions = case.actions.count()
        response = as_user(client, carol).post(task_url("task_approve", task), {"comment": "同意"})
        assert response.status_code == 400
        assert "该流程已被发起人撤回，无需再办理。" in html(response)
        case.refresh_from_db()
        assert case.status == Case.Status.WITHDRAWN and case.actions.count() == actions

    def test_reject_needs_a_reason(self, client, alice, carol, simple):
        case = start(alice)
        task = open_task(carol)
        as_user(client, carol)
        response = client.post(task_url("task_reject", task), {"comment": "  "})
        assert response.status_code == 400
        assert "请填写驳回理由。" in html(response)
        task.refresh_from_db()
        case.refresh_from_db()
        assert task.status == Task.Status.OPEN and case.status == Case.Status.RUNNING
        client.post(task_url("task_reject", task), {"comment": "预算不足"})
        case.refresh_from_db()
        assert case.status == Case.Status.REJECTED

    def test_suspended_case_cannot_be_approved(self, client, alice, carol, simple):
        case = start(alice)
        task = open_task(carol)
        services.case_suspend(case=case, actor=carol, reason="等待补充材料")
        response = as_user(client, carol).post(task_url("task_approve", task))
        assert response.status_code == 400 and "该流程已挂起" in html(response)


# --- the other actions ------------------------------------------------------------------------


class TestOtherActions:
    def test_return_to_an_earlier_step(self, client, alice, carol, bob, frank, erin, chain):
        case = start(alice, process="test.chain", fields={"amount": 5})
        services.task_approve(task=open_task(carol), actor=carol)
        task = open_task(bob)
        as_user(client, bob)
        page = html(client.get(case_url(case)))
        assert "起草人（发起人）" in page and "局长审核" in page  # the return targets
        response = client.post(task_url("task_return", task), {"to_step": "0", "comment": "请局长再核"}, follow=True)
        assert "已退回" in html(response)
        case.refresh_from_db()
        assert case.step_index == 0
        assert open_task(carol).step_index == 0
        assert not Task.objects.filter(assignee=frank, status=Task.Status.OPEN).exists()
        assert "退回到 <strong>局长审核</strong>" in html(response)

    def test_return_needs_reason_and_target(self, client, alice, carol, simple):
        start(alice)
        task = open_task(carol)
        as_user(client, carol)
        response = client.post(task_url("task_return", task), {"to_step": "-1", "comment": ""})
        assert response.status_code == 400 and "请填写退回理由。" in html(response)
        response = client.post(task_url("task_return", task), {"comment": "材料不全"})
        assert response.status_code == 400 and "请选择退回到哪个环节。" in html(response)
        assert Task.objects.get(pk=task.pk).status == Task.Status.OPEN

    def test_return_to_initiator_and_resubmit(self, client, alice, carol, simple):
        case = start(alice)
        as_user(client, carol).post(task_url("task_return", open_task(carol)), {"to_step": "-1", "comment": "补充预算"})
        task = open_task(alice)
        page = html(as_user(client, alice).get(case_url(case)))
        assert "修改后重新提交" in page and "已退回起草人" in page
        client.post(task_url("task_approve", task), {"comment": "已补充"})
        case.refresh_from_db()
        assert case.step_index == 0 and open_task(carol)

    def test_transfer(self, client, alice, carol, dave, simple):
        case = start(alice)
        task = open_task(carol)
        response = as_user(client, carol).post(
            task_url("task_transfer", task), {"to_user": "dave", "comment": "请张副局长办理"}, follow=True
        )
        assert "已转办" in html(response)
        assert open_task(dave).case == case
        task.refresh_from_db()
        assert task.outcome == Task.Outcome.TRANSFERRED
        assert "转办给 <strong>张伟</strong>" in html(response)

    def test_transfer_needs_a_person_one_can_see(self, client, alice, bob, carol, simple):
        start(alice)
        task = open_task(carol)
        as_user(client, carol)
        response = client.post(task_url("task_transfer", task), {"to_user": ""})
        assert response.status_code == 400 and "请选择一位在岗人员。" in html(response)
        response = client.post(task_url("task_transfer", task), {"to_user": "bob"})  # 区财政局: out of sight
        assert response.status_code == 400
        assert Task.objects.get(pk=task.pk).status == Task.Status.OPEN

    def test_delegate_task(self, client, alice, carol, dave, simple):
        case = start(alice)
        task = open_task(carol)
        as_user(client, carol)
        assert client.post(task_url("task_delegate", task), {}).status_code == 400  # nobody chosen
        client.post(task_url("task_delegate", task), {"delegate_to": "dave"})
        task.refresh_from_db()
        assert task.delegate == dave
        page = html(as_user(client, dave).get(reverse("workflow:inbox")))
        assert "代 陈静 办理" in page
        # Only the assignee may delegate: the delegate sees no 委托办理 field.
        assert 'name="delegate_to"' not in html(client.get(case_url(case)))
        client.post(task_url("task_approve", task), {"comment": "代为同意"})
        action = case.actions.get(kind=Action.Kind.APPROVE)
        assert action.actor == dave and action.on_behalf_of == carol

    def test_add_signers(self, client, alice, carol, dave, simple):
        case = start(alice)
        task = open_task(carol)
        as_user(client, carol)
        response = client.post(task_url("task_add_signers", task), {})
        assert response.status_code == 400 and "请选择要加签的人员。" in html(response)
        client.post(task_url("task_add_signers", task), {"people": ["dave"], "comment": "请张副局长会签"})
        assert open_task(dave)
        client.post(task_url("task_approve", task))
        case.refresh_from_db()
        assert case.is_running
        as_user(client, dave).post(task_url("task_approve", open_task(dave)))
        case.refresh_from_db()
        assert case.status == Case.Status.APPROVED

    def test_withdraw_only_before_anyone_acted(self, client, alice, carol, bob, frank, erin, chain):
        case = start(alice, process="test.chain", fields={"amount": 5})
        page = html(as_user(client, alice).get(case_url(case)))
        assert reverse("workflow:case_withdraw", args=[case.pk]) in page
        services.task_approve(task=open_task(carol), actor=carol)
        assert reverse("workflow:case_withdraw", args=[case.pk]) not in html(client.get(case_url(case)))
        response = client.post(reverse("workflow:case_withdraw", args=[case.pk]))
        assert response.status_code == 400 and "下一环节已经办理，无法撤回。" in html(response)
        case.refresh_from_db()
        assert case.is_running

    def test_withdraw_by_someone_else_is_403(self, client, alice, carol, simple):
        case = start(alice)
        response = as_user(client, carol).post(reverse("workflow:case_withdraw", args=[case.pk]))
        assert response.status_code == 403 and "只有发起人可以撤回" in html(response)

    def test_suspend_and_resume(self, client, alice, carol, simple):
        case = start(alice)
        as_user(client, carol)
        response = client.post(reverse("workflow:case_suspend", args=[case.pk]), {"reason": ""})
        assert response.status_code == 400
        case.refresh_from_db()
        assert not case.is_suspended
        response = client.post(
            reverse("workflow:case_suspend", args=[case.pk]), {"reason": "等待补充材料"}, follow=True
        )
        assert "流程已挂起" in html(response) and "挂起记录" in html(response) and "等待补充材料" in html(response)
        case.refresh_from_db()
        assert case.is_suspended
        response = client.post(reverse("workflow:case_resume", args=[case.pk]), {"reason": "材料已补齐"}, follow=True)
        assert "流程已恢复" in html(response)
        case.refresh_from_db()
        assert not case.is_suspended and case.suspensions.get().ended_at is not None

    def test_only_holders_manage_the_clock(self, client, alice, carol, simple):
        case = start(alice)
        page = html(as_user(client, alice).get(case_url(case)))
        assert reverse("workflow:case_suspend", args=[case.pk]) not in page
        response = client.post(reverse("workflow:case_suspend", args=[case.pk]), {"reason": "想挂起"})
        assert response.status_code == 403 and "只有当前办理人可以挂起流程" in html(response)

    def test_extension_request(self, client, alice, carol, dave, simple):
        case = start(alice)
        as_user(client, carol)
        response = client.post(reverse("workflow:case_extension", args=[case.pk]), {"days": "0", "reason": "x"})
        assert response.status_code == 400 and not Extension.objects.exists()
        response = client.post(
            reverse("workflow:case_extension", args=[case.pk]), {"days": "3", "reason": "需要现场核实"}, follow=True
        )
        assert "延期申请已提交" in html(response) and "待审批" in html(response)
        extension = Extension.objects.get()
        assert extension.days == 3 and extension.status == Extension.Status.PENDING

    def test_comment_by_anyone_who_can_view(self, client, alice, bob, carol, simple):
        case = start(alice)
        as_user(client, alice)
        assert client.post(reverse("workflow:case_comment", args=[case.pk]), {"comment": ""}).status_code == 400
        client.post(reverse("workflow:case_comment", args=[case.pk]), {"comment": "补充说明：预算已列支"})
        assert case.actions.filter(kind=Action.Kind.COMMENT, actor=alice).exists()
        assert (
            as_user(client, bob).post(reverse("workflow:case_comment", args=[case.pk]), {"comment": "x"}).status_code
            == 404
        )


# --- attachments ------------------------------------------------------------------------------


class TestAttachments:
    def test_upload_with_approval_and_download_permissions(self, client, alice, bob, carol, simple):
        case = start(alice)
        task = open_task(carol)
        files = [
            SimpleUploadedFile("批示.pdf", b"%PDF-1.4 test", content_type="application/pdf"),
            SimpleUploadedFile("预算.xlsx", sample.XLSX, content_type="application/octet-stream"),
        ]
        as_user(client, carol).post(task_url("task_approve", task), {"comment": "同意", "files": files})
        assert Attachment.objects.count() == 2
        item = Attachment.objects.get(stored__name="批示.pdf")
        page = html(as_user(client, alice).get(case_url(case)))
        assert reverse("workflow:attachment", args=[item.pk]) in page and "批示.pdf" in page
        response = client.get(reverse("workflow:attachment", args=[item.pk]))
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment;")
        assert response["Content-Type"] == "application/pdf" and response["X-Content-Type-Options"] == "nosniff"
        assert b"".join(response.streaming_content) == b"%PDF-1.4 test"
        assert as_user(client, bob).get(reverse("workflow:attachment", args=[item.pk])).status_code == 404

    def test_bad_file_type_refused(self, client, alice, carol, simple):
        case = start(alice)
        task = open_task(carol)
        upload = SimpleUploadedFile("病毒.exe", b"MZ", content_type="application/octet-stream")
        response = as_user(client, carol).post(task_url("task_approve", task), {"files": [upload]})
        assert response.status_code == 400 and "不支持的附件类型" in html(response)
        task.refresh_from_db()
        assert task.status == Task.Status.OPEN and not Attachment.objects.exists()
        case.refresh_from_db()
        assert case.is_running

    def test_comment_with_file(self, client, alice, carol, simple):
        case = start(alice)
        upload = SimpleUploadedFile("补充材料.docx", sample.DOCX, content_type="application/octet-stream")
        as_user(client, alice).post(
            reverse("workflow:case_comment", args=[case.pk]), {"comment": "", "files": [upload]}
        )
        assert Attachment.objects.get().action.kind == Action.Kind.COMMENT


# --- the timeline tag ---------------------------------------------------------------------------


def test_timeline_tag_names_targets_and_on_behalf(rf, alice, carol, dave, simple):
    case = start(alice)
    task = open_task(carol)
    services.task_add_signers(task=task, actor=carol, people=[dave], comment="请会签")
    delegate(carol, dave)
    services.task_approve(task=task, actor=dave, comment="代签")
    rendered = Template("{% load workflow %}{% case_timeline case %}").render(
        Context({"case": case, "request": rf.get("/")})
    )
    assert "加签 <strong>张伟</strong>" in rendered
    assert "（代 陈静）" in rendered and "代签" in rendered and "发起" in rendered


def test_due_badge_tag():
    today = clock.today()
    out = Template("{% load workflow %}{% due_badge a %}|{% due_badge b %}|{% due_badge c %}").render(
        Context({"a": today + dt.timedelta(days=30), "b": today - dt.timedelta(days=1), "c": None})
    )
    assert "text-bg-success" in out and "已超期" in out and "无时限" in out


# --- case list and start page ----------------------------------------------------------------------


class TestCaseListAndStart:
    def test_case_list_scoped_and_filtered(self, client, alice, bob, carol, simple):
        start(alice, title="我的请示")
        services.task_approve(task=open_task(carol), actor=carol)
        as_user(client, alice)
        page = html(client.get(reverse("workflow:case_list")))
        assert "我的请示" in page and "已通过" in page
        assert "我的请示" not in html(client.get(reverse("workflow:case_list"), {"status": "running"}))
        assert "我的请示" in html(client.get(reverse("workflow:case_list"), {"mine": "on"}))
        assert "我的请示" not in html(as_user(client, bob).get(reverse("workflow:case_list")))

    def test_start_from_the_ui(self, client, alice, carol, simple):
        as_user(client, alice)
        page = html(client.get(reverse("workflow:case_start")))
        assert "测试流程" in page and "workflow.extension" not in page
        upload = SimpleUploadedFile("请示.pdf", sample.PDF, content_type="application/pdf")
        response = client.post(
            reverse("workflow:case_start"),
            {
                "process": "test.simple",
                "title": "关于举办培训的请示",
                "amount": "12000",
                "comment": "请审批",
                "files": [upload],
            },
        )
        case = Case.objects.get()
        assert response.status_code == 302 and response["Location"] == case_url(case)
        assert case.fields == {"amount": 12000} and case.unit.code == "EDU" and case.initiator == alice
        assert open_task(carol).case == case
        assert Attachment.objects.get().action.kind == Action.Kind.START

    def test_start_errors(self, client, alice, bob, simple):
        as_user(client, alice)
        response = client.post(reverse("workflow:case_start"), {"process": "test.simple", "title": ""})
        assert response.status_code == 400 and not Case.objects.exists()
        # 区财政局 has no principal leader yet: the engine refuses a case that would get stuck.
        response = as_user(client, bob).post(
            reverse("workflow:case_start"), {"process": "test.simple", "title": "请示"}
        )
        assert response.status_code == 400 and "无法发起" in html(response)
        assert not Case.objects.exists()


# --- definitions ---------------------------------------------------------------------------------


def definition_post(steps, *, initial=0, **fields):
    data = {
        "code": "oa.leave",
        "name": "请假审批",
        "module": "oa",
        "description": "",
        "case_time_limit": "",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": str(initial),
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    data.update(fields)
    defaults = {"kind": "single", "assignee_type": "initiator_leader", "rank": "", "ORDER": ""}
    for index, step in enumerate(steps):
        for key, value in {**defaults, "ORDER": str(index + 1), **step}.items():
            data[f"steps-{index}-{key}"] = value
    return data


LEADER_STEP = {
    "key": "leader",
    "name": "单位领导审批",
    "assignee_type": "initiator_leader",
    "rank": "principal",
    "time_limit": "3",
}


class TestDefinitions:
    @pytest.mark.parametrize("name", ["definition_list", "definition_create", "definition_import"])
    def test_non_admin_is_403_with_message(self, alice_client, name):
        response = alice_client.get(reverse(f"workflow:{name}"))
        assert response.status_code == 403 and "只有平台管理员可以维护流程定义" in html(response)

    def test_non_admin_cannot_edit_or_export(self, alice_client, simple):
        for name in ("definition_detail", "definition_edit", "definition_export"):
            assert alice_client.get(reverse(f"workflow:{name}", args=["test.simple"])).status_code == 403
        assert alice_client.post(reverse("workflow:definition_disable", args=["test.simple"])).status_code == 403
        assert ProcessDefinition.objects.get(code="test.simple").status == ProcessDefinition.Status.ACTIVE

    def test_create_a_definition(self, admin_client, carol):
        page = admin_client.get(reverse("workflow:definition_create"))
        assert page.status_code == 200 and "steps-TOTAL_FORMS" in html(page) and "wf-step-template" in html(page)
        steps = [
            LEADER_STEP,
            {
                "key": "finance",
                "name": "财务核准",
                "assignee_type": "person",
                "usernames": "carol",
                "cond_field": "amount",
                "cond_op": "gt",
                "cond_value": "5000",
            },
            {
                "key": "",
                "name": "",
                "kind": "single",
                "assignee_type": "initiator_leader",
                "ORDER": "",
            },  # blank extra row
        ]
        response = admin_client.post(reverse("workflow:definition_create"), definition_post(steps))
        assert response.status_code == 302, html(response)
        definition = ProcessDefinition.objects.get(code="oa.leave")
        assert definition.version == 1 and definition.module == "oa"
        assert [s["key"] for s in definition.steps] == ["leader", "finance"]
        assert definition.steps[1]["condition"] == {"field": "amount", "op": "gt", "value": 5000}
        assert definition.steps[0]["time_limit"] == 3
        detail = html(admin_client.get(reverse("workflow:definition_detail", args=["oa.leave"])))
        assert "发起人所在单位领导（主要领导）" in detail and "amount &gt; 5000" in detail and "陈静" in detail

    def test_order_and_delete_rows(self, admin_client, carol):
        steps = [
            {**LEADER_STEP, "ORDER": "2"},
            {"key": "first", "name": "先办", "assignee_type": "person", "usernames": "carol", "ORDER": "1"},
            {"key": "gone", "name": "删掉", "assignee_type": "person", "usernames": "carol", "DELETE": "on"},
        ]
        assert admin_client.post(reverse("workflow:definition_create"), definition_post(steps)).status_code == 302
        assert [s["key"] for s in ProcessDefinition.objects.get().steps] == ["first", "leader"]

    @pytest.mark.parametrize(
        ("steps", "message"),
        [
            ([], "流程至少需要一个环节。"),
            (
                [{"key": "a", "name": "审核", "assignee_type": "person", "usernames": "carol, ghost"}],
                "找不到在岗人员 ghost",
            ),
            (
                [{"key": "a", "name": "审核", "assignee_type": "role", "unit": "EGOV", "role": "leader"}],
                "没有担任该角色的在岗人员",
            ),
        ],
    )
    def test_invalid_definitions_are_refused(self, admin_client, carol, steps, message):
        response = admin_client.post(reverse("workflow:definition_create"), definition_post(steps))
        assert response.status_code == 400
        assert message in html(response) and "环节设置有误，流程未保存" in html(response)
        assert not ProcessDefinition.objects.filter(code="oa.leave").exists()

    def test_existing_code_is_not_overwritten_from_new(self, admin_client, simple):
        response = admin_client.post(
            reverse("workflow:definition_create"), definition_post([LEADER_STEP], code="test.simple")
        )
        assert response.status_code == 400 and "该流程代码已存在" in html(response)
        assert ProcessDefinition.objects.filter(code="test.simple").count() == 1

    def test_edit_makes_version_2_while_running_case_keeps_1(self, admin_client, alice, carol, dave, simple):
        case = start(alice)
        page = admin_client.get(reverse("workflow:definition_edit", args=["test.simple"]))
        assert page.status_code == 200 and 'value="局长审批"' in html(page)
        steps = [
            {
                "key": "sign",
                "name": "局长审批",
                "assignee_type": "initiator_leader",
                "rank": "principal",
                "time_limit": "3",
            },
            {"key": "deputy", "name": "分管领导阅知", "assignee_type": "person", "usernames": "dave"},
        ]
        data = definition_post(
            steps, initial=1, code="ignored", name="测试流程（修订）", module="oa", case_time_limit="10"
        )
        response = admin_client.post(reverse("workflow:definition_edit", args=["test.simple"]), data)
        assert response.status_code == 302, html(response)
        v1, v2 = ProcessDefinition.objects.filter(code="test.simple").order_by("version")
        assert (v1.status, v2.status, v2.version) == ("retired", "active", 2)
        assert len(v2.steps) == 2 and v2.name == "测试流程（修订）"
        case.refresh_from_db()
        assert case.definition == v1
        services.task_approve(task=open_task(carol), actor=carol)
        case.refresh_from_db()
        assert case.status == Case.Status.APPROVED  # finished on its one-step version
        assert start(alice).definition == v2

    def test_invalid_edit_makes_no_new_version(self, admin_client, simple):
        steps = [{"key": "sign", "name": "局长审批", "assignee_type": "person", "usernames": "nobody"}]
        response = admin_client.post(
            reverse("workflow:definition_edit", args=["test.simple"]),
            definition_post(steps, initial=1, code="test.simple"),
        )
        assert response.status_code == 400 and "找不到在岗人员 nobody" in html(response)
        assert ProcessDefinition.objects.filter(code="test.simple").count() == 1

    def test_export_import_round_trip(self, admin_client, simple):
        response = admin_client.get(reverse("workflow:definition_export", args=["test.simple"]))
        assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
        assert response["Content-Disposition"] == 'attachment; filename="test.simple-v1.json"'
        exported = json.loads(response.content)
        assert exported["format"] == "yiwang.workflow/1" and exported["steps"] == simple.steps
        upload = SimpleUploadedFile("test.simple-v1.json", response.content, content_type="application/json")
        response = admin_client.post(reverse("workflow:definition_import"), {"file": upload})
        assert response.status_code == 302
        v2 = ProcessDefinition.objects.get(code="test.simple", status="active")
        assert v2.version == 2 and v2.steps == simple.steps

    @pytest.mark.parametrize(
        ("name", "content", "message"),
        [
            ("bad.json", b"{not json", "不是有效的 JSON 文件"),
            ("other.json", b'{"code": "x"}', "不是 yiwang 流程定义文件"),
            ("flow.txt", b"{}", "请上传由“导出 JSON”得到的 .json 文件"),
            ("big.json", b" " * (1024 * 1024 + 1), "文件过大"),
        ],
    )
    def test_bad_import_files(self, admin_client, simple, name, content, message):
        upload = SimpleUploadedFile(name, content, content_type="application/json")
        response = admin_client.post(reverse("workflow:definition_import"), {"file": upload})
        assert response.status_code == 400 and message in html(response)
        assert ProcessDefinition.objects.count() == 1

    def test_import_with_invalid_steps_lists_them(self, admin_client, simple):
        data = services.definition_export(simple)
        data["steps"][0]["assignee"] = {"type": "person", "usernames": ["ghost"]}
        upload = SimpleUploadedFile("x.json", json.dumps(data).encode(), content_type="application/json")
        response = admin_client.post(reverse("workflow:definition_import"), {"file": upload})
        assert response.status_code == 400 and "找不到在岗人员 ghost" in html(response)

    def test_list_and_disable(self, admin_client, simple):
        page = html(admin_client.get(reverse("workflow:definition_list"), {"q": "测试"}))
        assert "测试流程" in page and "test.simple" in page and "v1" in page
        response = admin_client.post(reverse("workflow:definition_disable", args=["test.simple"]), follow=True)
        assert "流程已停用" in html(response)
        assert ProcessDefinition.objects.get().status == ProcessDefinition.Status.DISABLED


# --- notices ---------------------------------------------------------------------------------------


class TestNotices:
    def test_list_bell_and_mark_read(self, client, alice, bob):
        first = notice_send(recipient_id=alice.pk, title="【即将到期】请示（局长审批）", url="/workflow/")
        notice_send(recipient_id=alice.pk, title="第二条提醒")
        notice_send(recipient_id=bob.pk, title="别人的提醒")
        as_user(client, alice)
        page = html(client.get(reverse("core:notices")))
        assert "【即将到期】请示" in page and "第二条提醒" in page and "别人的提醒" not in page
        bell = page[page.index('id="yw-notice-link"') : page.index("</a>", page.index('id="yw-notice-link"'))]
        assert ">2<" in bell
        response = client.post(reverse("core:notice_read", args=[first.pk]))
        assert response.status_code == 302 and response["Location"] == "/workflow/"
        first.refresh_from_db()
        assert first.read_at is not None
        client.post(reverse("core:notice_read_all"))
        assert not Notice.objects.filter(recipient_id=alice.pk, read_at__isnull=True).exists()
        assert Notice.objects.filter(recipient_id=bob.pk, read_at__isnull=True).exists()
        bell_page = html(client.get(reverse("core:notices")))
        bell = bell_page[bell_page.index('id="yw-notice-link"') :]
        assert "yw-inbox-badge" not in bell[: bell.index("</a>")]

    def test_cannot_read_someone_elses_or_follow_external_links(self, client, alice, bob):
        other = notice_send(recipient_id=bob.pk, title="别人的提醒")
        external = notice_send(recipient_id=alice.pk, title="外链", url="https://evil.example.com/")
        as_user(client, alice)
        assert client.post(reverse("core:notice_read", args=[other.pk]))["Location"] == reverse("core:notices")
        other.refresh_from_db()
        assert other.read_at is None
        assert client.post(reverse("core:notice_read", args=[external.pk]))["Location"] == reverse("core:notices")

    def test_reminders_reach_the_page(self, client, alice, carol, simple):
        start(alice)
        Task.objects.update(due_date=clock.today())
        services.reminders_send()
        page = html(as_user(client, carol).get(reverse("core:notices")))
        assert "【即将到期】" in page
