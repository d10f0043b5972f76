"""The workflow API: inbox, task actions, cases, definitions, scopes and refusals."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from yiwang.core.tests import files as sample
from yiwang.org import services as org
from yiwang.workflow import services
from yiwang.workflow.models import Action, Attachment, Case, Extension, ProcessDefinition, Task

from .conftest import save

pytestmark = pytest.mark.django_db

API = "/api/workflow"


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client, url, data=None, **extra):
    return client.post(url, json.dumps({} if data is None else data), content_type="application/json", **extra)


def error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def snapshot() -> tuple:
    """Everything an action could change."""
    return (
        list(Task.objects.order_by("id").values_list("id", "status", "outcome", "assignee_id", "delegate_id")),
        Action.objects.count(),
        list(Case.objects.order_by("id").values_list("id", "status", "step_index", "suspended_at")),
        Extension.objects.count(),
    )


def start(client, process="test.chain", title="采购电脑", fields=None, **extra):
    response = post(client, f"{API}/cases/", {"process": process, "title": title, "fields": fields or {}, **extra})
    assert response.status_code == 201, response.content.decode()
    return response.json()


def inbox(client, **params) -> list[dict]:
    response = client.get(f"{API}/tasks/", params)
    assert response.status_code == 200, response.content.decode()
    return response.json()["results"]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def started(alice, carol, chain):
    """A chain case started by alice (amount 200000), waiting for carol."""
    detail = start(login(alice), fields={"amount": 200000})
    task = Task.objects.get(assignee=carol, status="open")
    return Case.objects.get(pk=detail["case"]["id"]), task


# --- the whole chain ---------------------------------------------------------------------


class TestChain:
    def test_chain_through_api(self, alice, carol, bob, frank, erin, chain):
        a = login(alice)
        detail = start(a, fields={"amount": 200000}, comment="请审批")
        case_id = detail["case"]["id"]
        assert detail["case"]["status"] == "running"
        assert detail["case"]["process"] == {"code": "test.chain", "version": 1, "name": "测试流程"}
        assert detail["case"]["step_name"] == "局长审核"
        assert detail["case"]["initiator"] == {"username": "alice", "name": "王丽"}
        assert [s["state"] for s in detail["steps"]] == ["current", "pending", "pending"]
        assert [t["assignee"]["username"] for t in detail["open_tasks"]] == ["carol"]
        assert detail["my_tasks"] == [] and detail["can_withdraw"] is True
        assert [(e["kind"], e["comment"]) for e in detail["timeline"]] == [("start", "请审批")]

        c = login(carol)
        (task,) = inbox(c)
        assert task["case"] == case_id and task["module"] == "oa" and task["title"] == "采购电脑"
        assert task["step_name"] == "局长审核" and task["status"] == "open" and task["outcome"] == ""
        assert task["assignee"] == {"username": "carol", "name": "陈静"} and task["acting_for"] is None
        assert task["sender"]["username"] == "alice"
        assert task["due_state"] in ("on_time", "due_soon") and task["due_date"]
        shown = c.get(f"{API}/tasks/{task['id']}/").json()
        assert shown["task"]["id"] == task["id"] and shown["case"]["id"] == case_id
        assert shown["return_targets"] == [{"step_index": -1, "name": "起草人（发起人）"}]

        response = post(c, f"{API}/tasks/{task['id']}/approve/", {"comment": "同意"})
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["task"]["status"] == "done" and body["task"]["outcome"] == "approved"
        assert body["case"]["status"] == "running" and body["case"]["step_name"] == "财政会签"

        # countersign: both bob and frank must agree
        b, f = login(bob), login(frank)
        (tb,), (tf,) = inbox(b), inbox(f)
        body = post(b, f"{API}/tasks/{tb['id']}/approve/").json()
        assert body["case"]["step_index"] == 1
        body = post(f, f"{API}/tasks/{tf['id']}/approve/").json()
        assert body["case"]["step_index"] == 2 and body["case"]["step_name"] == "财政局长审批"

        # the condition step (amount > 100000) goes to erin
        e = login(erin)
        (te,) = inbox(e)
        body = post(e, f"{API}/tasks/{te['id']}/approve/", {"comment": "准予采购"}).json()
        assert body["case"]["status"] == "approved" and body["case"]["step_name"] is None
        assert body["case"]["finished_at"]

        detail = a.get(f"{API}/cases/{case_id}/").json()
        assert [s["state"] for s in detail["steps"]] == ["done", "done", "done"]
        assert detail["open_tasks"] == []
        kinds = [entry["kind"] for entry in detail["timeline"]]
        assert kinds[:2] == ["start", "approve"] and kinds[-1] == "finish"
        approvals = [(x["actor"]["username"], x["step_name"]) for x in detail["timeline"] if x["kind"] == "approve"]
        assert approvals == [
            ("carol", "局长审核"),
            ("bob", "财政会签"),
            ("frank", "财政会签"),
            ("erin", "财政局长审批"),
        ]
        # carol's done list
        (done,) = inbox(c, state="done")
        assert done["id"] == task["id"] and done["outcome"] == "approved"

    def test_condition_step_skipped(self, alice, carol, bob, frank, erin, chain):
        case_id = start(login(alice), fields={"amount": 5000})["case"]["id"]
        for user in (carol, bob, frank):
            client = login(user)
            (task,) = inbox(client)
            assert post(client, f"{API}/tasks/{task['id']}/approve/").status_code == 200
        detail = login(alice).get(f"{API}/cases/{case_id}/").json()
        assert detail["case"]["status"] == "approved"
        assert [s["state"] for s in detail["steps"]] == ["done", "done", "skipped"]
        assert inbox(login(erin)) == []

    def test_inbox_filters_and_pagination(self, alice, carol, simple, chain):
        a = login(alice)
        start(a, process="test.simple", title="请假申请")
        start(a, title="采购电脑", fields={"amount": 1})
        c = login(carol)
        body = c.get(f"{API}/tasks/").json()
        assert body["count"] == 2 and {"next", "previous", "results"} <= set(body)
        assert [t["title"] for t in inbox(c, q="请假")] == ["请假申请"]
        assert inbox(c, module="hr") == []
        assert len(inbox(c, due="on_time")) + len(inbox(c, due="due_soon")) == 2
        assert inbox(c, due="overdue") == []
        assert len(c.get(f"{API}/tasks/", {"page_size": 1}).json()["results"]) == 1
        assert inbox(c, state="done") == []
        for params in ({"due": "late"}, {"state": "all"}, {"q": "x" * 101}):
            response = c.get(f"{API}/tasks/", params)
            assert response.status_code == 400 and list(error(response)["details"]) == list(params)


# --- task actions ------------------------------------------------------------------------


class TestTaskActions:
    def test_reject_needs_a_reason(self, started, carol):
        case, task = started
        c = login(carol)
        response = post(c, f"{API}/tasks/{task.pk}/reject/", {"comment": "  "})
        assert response.status_code == 400 and error(response)["details"] == {"comment": ["请填写驳回理由。"]}
        body = post(c, f"{API}/tasks/{task.pk}/reject/", {"comment": "预算不足"}).json()
        assert body["task"]["outcome"] == "rejected" and body["case"]["status"] == "rejected"
        assert Case.objects.get(pk=case.pk).status == Case.Status.REJECTED

    def test_return_to_the_initiator_and_resubmit(self, started, alice, carol):
        _case, task = started
        c = login(carol)
        url = f"{API}/tasks/{task.pk}/return/"
        response = post(c, url, {"to_step": "-1", "comment": "请补充"})
        assert response.status_code == 400 and "to_step" in error(response)["details"]
        response = post(c, url, {"to_step": 0, "comment": "请补充"})
        assert error(response)["details"] == {"to_step": ["只能退回到已经办理过的前面环节。"]}
        response = post(c, url, {"to_step": -1})
        assert error(response)["details"] == {"comment": ["请填写退回理由。"]}
        body = post(c, url, {"to_step": -1, "comment": "请补充报价单"}).json()
        assert body["task"]["outcome"] == "returned" and body["case"]["step_index"] == -1
        assert body["case"]["step_name"] == "退回起草人修改"
        a = login(alice)
        (mine,) = inbox(a)
        assert mine["step_name"] == "退回起草人修改"
        body = post(a, f"{API}/tasks/{mine['id']}/approve/", {"comment": "已补充"}).json()
        assert body["task"]["outcome"] == "resubmitted" and body["case"]["step_index"] == 0
        assert len(inbox(c)) == 1

    def test_return_with_files_as_multipart(self, media, started, bob, frank, carol):
        _case, task = started
        services.task_approve(task=task, actor=carol)
        (tb,) = Task.objects.filter(assignee=bob, status="open")
        response = login(bob).post(
            f"{API}/tasks/{tb.pk}/return/",
            {"to_step": "0", "comment": "报价单有误", "files": [SimpleUploadedFile("报价单.pdf", b"%PDF-1.4 x")]},
        )
        assert response.status_code == 200, response.content
        assert response.json()["case"]["step_index"] == 0
        attachment = Attachment.objects.get()
        assert attachment.name == "报价单.pdf" and attachment.action.kind == "return"
        # countersign partner's task was cancelled with the return
        assert Task.objects.get(assignee=frank).status == Task.Status.CANCELLED

    def test_approve_with_files(self, media, started, alice, carol):
        case, task = started
        files = [SimpleUploadedFile("意见.docx", sample.DOCX), SimpleUploadedFile("图.png", sample.PNG)]
        response = login(carol).post(f"{API}/tasks/{task.pk}/approve/", {"comment": "同意", "files": files})
        assert response.status_code == 200, response.content
        (entry,) = [x for x in login(alice).get(f"{API}/cases/{case.pk}/").json()["timeline"] if x["kind"] == "approve"]
        assert [(f["name"], f["size"]) for f in entry["attachments"]] == [
            ("意见.docx", len(sample.DOCX)),
            ("图.png", len(sample.PNG)),
        ]

    def test_bad_attachment_refused(self, media, started, carol):
        _case, task = started
        before = snapshot()
        response = login(carol).post(f"{API}/tasks/{task.pk}/approve/", {"files": [SimpleUploadedFile("x.exe", b"MZ")]})
        assert response.status_code == 400 and "files" in error(response)["details"]
        assert snapshot() == before

    def test_transfer(self, started, carol, dave):
        _case, task = started
        c = login(carol)
        url = f"{API}/tasks/{task.pk}/transfer/"
        response = post(c, url, {"to_user": "nobody"})
        assert response.status_code == 400
        assert error(response)["details"] == {"to_user": ["找不到用户：nobody。"]}
        response = post(c, url, {})
        assert response.status_code == 400 and "to_user" in error(response)["details"]
        response = post(c, url, {"to_user": "carol"})
        assert error(response)["details"] == {"to_user": ["不能转办给当前办理人本人。"]}
        body = post(c, url, {"to_user": "dave", "comment": "请张局办理"}).json()
        assert body["task"]["assignee"]["username"] == "dave" and body["task"]["status"] == "open"
        assert body["task"]["sender"]["username"] == "carol" and body["task"]["id"] != task.pk
        task.refresh_from_db()
        assert task.outcome == Task.Outcome.TRANSFERRED
        assert [t["id"] for t in inbox(login(dave))] == [body["task"]["id"]]

    def test_task_delegate(self, started, carol, dave, bob):
        _case, task = started
        c = login(carol)
        url = f"{API}/tasks/{task.pk}/delegate/"
        response = post(c, url, {"comment": "x"})
        assert response.status_code == 400 and "to_user" in error(response)["details"]
        body = post(c, url, {"to_user": "dave"}).json()
        assert body["task"]["delegate"]["username"] == "dave"
        d = login(dave)
        (shown,) = inbox(d)
        assert shown["acting_for"] == {"username": "carol", "name": "陈静"}
        # a delegate may not delegate further
        response = post(d, url, {"to_user": "bob"})
        assert response.status_code == 403 and error(response)["message"] == "只有办理人本人可以委托他人办理。"
        # carol takes it back
        body = post(c, url, {"to_user": None}).json()
        assert body["task"]["delegate"] is None and inbox(d) == []
        post(c, url, {"to_user": "dave"})
        body = post(d, f"{API}/tasks/{task.pk}/approve/", {"comment": "代签"}).json()
        assert body["task"]["acted_by"]["username"] == "dave" and body["task"]["acting_for"]["username"] == "carol"
        action = Action.objects.get(kind="approve")
        assert (action.actor, action.on_behalf_of) == (dave, carol)
        assert [t["id"] for t in inbox(d, state="done")] == [task.pk]

    def test_org_delegation(self, started, carol, dave):
        _case, task = started
        d = login(dave)
        before = snapshot()
        response = post(d, f"{API}/tasks/{task.pk}/approve/")
        assert response.status_code == 403 and error(response)["message"] == "这不是您的待办，无权办理。"
        assert snapshot() == before
        assert d.get(f"{API}/tasks/{task.pk}/").status_code == 404
        now = timezone.now()
        org.delegation_create(
            actor=carol,
            principal=carol,
            delegate=dave,
            starts_at=now - dt.timedelta(hours=1),
            ends_at=now + dt.timedelta(days=3),
            reason="出差",
        )
        (shown,) = inbox(d)
        assert shown["id"] == task.pk and shown["acting_for"]["username"] == "carol"
        assert d.get(f"{API}/tasks/{task.pk}/").json()["task"]["acting_for"]["username"] == "carol"
        body = post(d, f"{API}/tasks/{task.pk}/approve/").json()
        assert body["task"]["outcome"] == "approved"
        assert Action.objects.get(kind="approve").on_behalf_of == carol

    def test_add_signers(self, started, carol, dave, bob):
        _case, task = started
        c = login(carol)
        url = f"{API}/tasks/{task.pk}/add-signers/"
        for bad in ({"usernames": "dave"}, {"usernames": [1, {}]}, {}):
            response = post(c, url, bad)
            assert response.status_code == 400 and "usernames" in error(response)["details"], bad
        response = post(c, url, {"usernames": ["dave", "ghost"]})
        assert error(response)["details"] == {"usernames": ["找不到用户：ghost。"]}
        response = post(c, url, {"usernames": []})
        assert error(response)["details"] == {"usernames": ["请选择要加签的人员。"]}
        response = post(c, url, {"usernames": ["carol"]})
        assert error(response)["details"] == {"usernames": ["陈静 在本环节已有待办。"]}
        body = post(c, url, {"usernames": ["dave", "dave"], "comment": "请张局一并把关"}).json()
        assert [t["assignee"]["username"] for t in body["added"]] == ["dave"]
        assert body["task"]["id"] == task.pk and body["task"]["status"] == "open"
        body = post(c, f"{API}/tasks/{task.pk}/approve/").json()
        assert body["case"]["step_index"] == 0  # dave still has to agree
        (td,) = inbox(login(dave))
        body = post(login(dave), f"{API}/tasks/{td['id']}/approve/").json()
        assert body["case"]["step_index"] == 1

    def test_only_the_assignee_or_delegate_may_act(self, started, alice, bob, dave):
        _case, task = started
        before = snapshot()
        for user in (alice, bob, dave):
            client = login(user)
            for verb, data in (
                ("approve", {}),
                ("reject", {"comment": "不同意"}),
                ("return", {"to_step": -1, "comment": "退回"}),
                ("transfer", {"to_user": "bob"}),
                ("delegate", {"to_user": "bob"}),
                ("add-signers", {"usernames": ["bob"]}),
            ):
                response = post(client, f"{API}/tasks/{task.pk}/{verb}/", data)
                assert response.status_code == 403, (user, verb, response.content)
                assert error(response)["message"] == "这不是您的待办，无权办理。"
            assert client.get(f"{API}/tasks/{task.pk}/").status_code == 404
        assert snapshot() == before

    def test_done_task_and_withdrawn_case_are_conflicts(self, started, alice, carol, bob):
        _case, task = started
        c = login(carol)
        assert post(c, f"{API}/tasks/{task.pk}/approve/").status_code == 200
        before = snapshot()
        for verb, data in (("approve", {}), ("reject", {"comment": "x"}), ("transfer", {"to_user": "bob"})):
            response = post(c, f"{API}/tasks/{task.pk}/{verb}/", data)
            assert response.status_code == 409, response.content
            assert error(response) == {
                "code": "conflict",
                "message": "该待办已办理或已取消，请刷新页面。",
                "details": {},
            }
        assert snapshot() == before
        # carol may still read the task she acted on
        assert c.get(f"{API}/tasks/{task.pk}/").json()["return_targets"] == []

        # a withdrawn case: the open task of another case is refused
        a = login(alice)
        other = start(a, title="第二件", fields={"amount": 1})
        (open_task,) = [t for t in inbox(c) if t["case"] == other["case"]["id"]]
        assert post(a, f"{API}/cases/{other['case']['id']}/withdraw/", {"comment": "重复"}).status_code == 200
        response = post(c, f"{API}/tasks/{open_task['id']}/approve/")
        assert response.status_code == 409
        assert error(response)["message"] == "该流程已被发起人撤回，无需再办理。"

    def test_unknown_and_malformed_ids(self, started, carol):
        c = login(carol)
        for path in ("abc", "1.5", "-1", "0", "99999999999999999999999", "%E4%B8%80"):
            response = c.get(f"{API}/tasks/{path}/")
            assert response.status_code == 400, path
            assert error(response)["code"] == "invalid"
            assert post(c, f"{API}/tasks/{path}/approve/").status_code == 400
        response = post(c, f"{API}/tasks/987654/approve/")
        assert response.status_code == 404 and error(response)["code"] == "not_found"

    def test_malformed_bodies(self, started, carol):
        _case, task = started
        c = login(carol)
        before = snapshot()
        url = f"{API}/tasks/{task.pk}/"
        cases = [
            ("approve/", {"comment": "长" * 2001}, "comment"),
            ("approve/", {"comment": ["x"]}, "comment"),
            ("approve/", {"files": "x"}, "files"),
            ("return/", {"to_step": "abc", "comment": "x"}, "to_step"),
            ("return/", {"to_step": 1.5, "comment": "x"}, "to_step"),
            ("return/", {"to_step": True, "comment": "x"}, "to_step"),
            ("transfer/", {"to_user": ["bob"]}, "to_user"),
            ("delegate/", {"to_user": 12}, "to_user"),
        ]
        for path, data, field in cases:
            response = post(c, url + path, data)
            assert response.status_code == 400, (path, data, response.content)
            assert field in error(response)["details"], (path, data)
        assert error(post(c, url + "approve/", {"comment": "长" * 2001}))["details"]["comment"] == [
            "意见不能超过 2000 字。"
        ]
        for raw in ("[1, 2]", "not json", "[" * 5000 + "]" * 5000, '"text"'):
            response = c.post(url + "approve/", raw, content_type="application/json")
            assert response.status_code == 400, raw[:20]
            assert "error" in response.json()
        assert snapshot() == before


# --- cases -----------------------------------------------------------------------------------


class TestCases:
    def test_start_refusals(self, alice, chain, units):
        services._extension_process()  # an internal process: started by its module only
        a = login(alice)
        url = f"{API}/cases/"
        bad = [
            ({"process": "test.chain", "title": "x", "fields": [1, 2]}, "fields"),
            ({"process": "test.chain", "title": "x", "fields": "amount=1"}, "fields"),
            ({"process": "test.chain", "title": "x", "lead_unit": "EDU"}, "lead_unit"),
            ({"process": "test.chain", "title": "x", "lead_unit": 10**30}, "lead_unit"),
            ({"process": "test.chain", "title": "x", "lead_unit": 987654}, "lead_unit"),
            ({"process": "test.chain", "title": "x", "lead_unit": True}, "lead_unit"),
            ({"process": "test.chain", "title": ""}, "title"),
            ({"process": "test.chain", "title": "x" * 201}, "title"),
            ({"process": "test.chain", "title": "x", "comment": "c" * 2001}, "comment"),
            ({"title": "x"}, "process"),
            ({"process": ["test.chain"], "title": "x"}, "process"),
            ({"process": services.EXTENSION_PROCESS, "title": "x"}, "process"),
            ({"process": "test.chain", "title": "x", "fields": {"note": "a\x00b"}}, "fields"),
            ({"process": "test.chain", "title": "a\x00b"}, "title"),
        ]
        for data, field in bad:
            response = post(a, url, data)
            assert response.status_code == 400, (data, response.content)
            assert field in error(response)["details"], data
        response = post(a, url, {"process": "no.such", "title": "x"})
        assert response.status_code == 400 and error(response)["message"] == "流程“no.such”未定义或已停用。"
        assert not Case.objects.exists()

    def test_start_with_lead_unit(self, alice, units, carol, chain):
        detail = start(login(alice), lead_unit=units["edu"].pk, fields={"amount": 1})
        assert detail["case"]["lead_unit"] == {"id": units["edu"].pk, "name": "区教育局"}
        assert detail["case"]["unit"] == {"id": units["edu"].pk, "name": "区教育局"}
        assert detail["fields"] == {"amount": 1}

    def test_start_refused_when_nobody_would_act(self, bob, erin):
        # 财政局 has no deputy leader (nor has the district): the first step would get stuck
        steps = [{"name": "分管领导审批", "assignee": {"type": "initiator_leader", "rank": "deputy"}}]
        save(code="test.deputy", steps=steps)
        response = post(login(bob), f"{API}/cases/", {"process": "test.deputy", "title": "x"})
        assert response.status_code == 400 and "找不到办理人" in error(response)["message"]

    def test_list_and_visibility(self, started, alice, carol, bob, simple):
        case, task = started
        a = login(alice)
        start(a, process="test.simple", title="请假")
        body = a.get(f"{API}/cases/").json()
        assert body["count"] == 2
        assert [c["title"] for c in a.get(f"{API}/cases/", {"q": "采购"}).json()["results"]] == ["采购电脑"]
        assert a.get(f"{API}/cases/", {"status": "approved"}).json()["count"] == 0
        assert a.get(f"{API}/cases/", {"mine": "true", "module": "oa"}).json()["count"] == 2
        response = a.get(f"{API}/cases/", {"status": "done"})
        assert response.status_code == 400 and "status" in error(response)["details"]
        # bob (财政局) neither sees nor takes part in the case yet
        b = login(bob)
        assert b.get(f"{API}/cases/").json()["count"] == 0
        response = b.get(f"{API}/cases/{case.pk}/")
        assert response.status_code == 404 and error(response)["code"] == "not_found"
        services.task_approve(task=task, actor=carol)
        assert b.get(f"{API}/cases/{case.pk}/").status_code == 200
        detail = b.get(f"{API}/cases/{case.pk}/").json()
        (mine,) = detail["my_tasks"]
        assert Task.objects.get(pk=mine).assignee == bob
        assert detail["can_withdraw"] is False and detail["can_manage_clock"] is True

    def test_withdraw(self, started, alice, carol):
        case, task = started
        c, a = login(carol), login(alice)
        response = post(c, f"{API}/cases/{case.pk}/withdraw/")
        assert response.status_code == 403 and error(response)["message"] == "只有发起人可以撤回。"
        body = post(a, f"{API}/cases/{case.pk}/withdraw/", {"comment": "写错了"}).json()
        assert body["status"] == "withdrawn"
        assert Task.objects.get(pk=task.pk).status == Task.Status.CANCELLED
        response = post(a, f"{API}/cases/{case.pk}/withdraw/")
        assert response.status_code == 409 and "无法撤回" in error(response)["message"]

    def test_withdraw_after_next_step_acted(self, started, alice, carol):
        case, task = started
        services.task_approve(task=task, actor=carol)
        response = post(login(alice), f"{API}/cases/{case.pk}/withdraw/")
        assert response.status_code == 409 and error(response)["message"] == "下一环节已经办理，无法撤回。"

    def test_comment(self, media, started, alice, bob):
        case, _task = started
        a = login(alice)
        response = post(a, f"{API}/cases/{case.pk}/comment/", {"comment": ""})
        assert response.status_code == 400 and "comment" in error(response)["details"]
        response = post(a, f"{API}/cases/{case.pk}/comment/", {"comment": "补充说明"})
        assert response.status_code == 201 and response.json()["kind"] == "comment"
        response = a.post(f"{API}/cases/{case.pk}/comment/", {"files": [SimpleUploadedFile("报价.xlsx", sample.XLSX)]})
        assert response.status_code == 201, response.content
        assert response.json()["attachments"][0]["name"] == "报价.xlsx"
        assert response.json()["attachments"][0]["size"] == len(sample.XLSX)
        assert post(login(bob), f"{API}/cases/{case.pk}/comment/", {"comment": "x"}).status_code == 404

    def test_suspend_and_resume(self, started, alice, carol):
        case, task = started
        c = login(carol)
        url = f"{API}/cases/{case.pk}/"
        response = post(c, url + "suspend/", {"reason": ""})
        assert response.status_code == 400 and "reason" in error(response)["details"]
        response = post(c, url + "suspend/", {"reason": "x" * 201})
        assert error(response)["details"] == {"reason": ["挂起原因不能超过 200 字。"]}
        response = post(login(alice), url + "suspend/", {"reason": "等材料"})
        assert response.status_code == 403 and error(response)["message"] == "只有当前办理人可以挂起流程。"
        body = post(c, url + "suspend/", {"reason": "等待补正材料"}).json()
        assert body["suspended"] is True and body["suspended_at"]
        response = post(c, url + "suspend/", {"reason": "again"})
        assert response.status_code == 409 and error(response)["message"] == "该流程已处于挂起状态。"
        response = post(c, f"{API}/tasks/{task.pk}/approve/")
        assert response.status_code == 409 and error(response)["message"] == "该流程已挂起，恢复后才能办理。"
        body = post(c, url + "resume/", {"reason": "材料已补正"}).json()
        assert body["suspended"] is False and body["paused_days"] == 0
        response = post(c, url + "resume/")
        assert response.status_code == 409 and error(response)["message"] == "该流程没有挂起。"
        kinds = [e["kind"] for e in c.get(url).json()["timeline"]]
        assert kinds[-2:] == ["suspend", "resume"]
        assert post(c, f"{API}/tasks/{task.pk}/approve/").status_code == 200

    def test_extension(self, started, alice, carol, dave):
        case, _task = started
        c = login(carol)
        url = f"{API}/cases/{case.pk}/extension/"
        for data, field in (
            ({"days": "5", "reason": "x"}, "days"),
            ({"days": 100, "reason": "x"}, "days"),
            ({"days": 5}, "reason"),
            ({"days": 5, "reason": ""}, "reason"),
        ):
            response = post(c, url, data)
            assert response.status_code == 400 and field in error(response)["details"], data
        assert post(login(alice), url, {"days": 5, "reason": "x"}).status_code == 403
        response = post(c, url, {"days": 5, "reason": "需要现场核查"})
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["extension"]["status"] == "pending" and body["extension"]["days"] == 5
        assert body["extension"]["requested_by"]["username"] == "carol"
        response = post(c, url, {"days": 3, "reason": "再延"})
        assert response.status_code == 409 and error(response)["message"] == "已有一份延期申请在审批中。"
        # the extension runs as a case of its own; a leader of carol's unit approves it
        due = Case.objects.get(pk=case.pk).due_date
        d = login(dave)
        (approval,) = [t for t in inbox(d) if t["module"] == "workflow"]
        assert post(d, f"{API}/tasks/{approval['id']}/approve/").status_code == 200
        detail = login(alice).get(f"{API}/cases/{case.pk}/").json()
        assert detail["extensions"][0]["status"] == "approved"
        assert detail["case"]["extended_days"] == 5
        assert detail["case"]["due_date"] > due.isoformat()
        assert detail["timeline"][-1]["kind"] == "extension_decided"


# --- definitions ---------------------------------------------------------------------------


STEPS = [
    {"key": "sign", "name": "局长审批", "kind": "single", "assignee": {"type": "initiator_leader", "rank": "principal"}}
]


class TestDefinitions:
    def test_read_by_anyone(self, alice, chain, simple):
        a = login(alice)
        body = a.get(f"{API}/definitions/").json()
        assert [d["code"] for d in body["results"]] == ["test.chain", "test.simple"]
        assert a.get(f"{API}/definitions/", {"q": "chain"}).json()["count"] == 1
        detail = a.get(f"{API}/definitions/test.chain/").json()
        assert detail["definition"]["version"] == 1 and detail["definition"]["status"] == "active"
        assert detail["definition"]["steps"][1]["kind"] == "countersign"
        assert [v["version"] for v in detail["versions"]] == [1]
        assert a.get(f"{API}/definitions/no.such/").status_code == 404
        assert a.get(f"{API}/definitions/a%00b/").status_code == 400  # core's API guard: NUL
        assert a.get(f"{API}/definitions/{'x' * 300}/export/").status_code == 404
        response = a.get(f"{API}/definitions/test.chain/", {"version": "x"})
        assert response.status_code == 400 and "version" in error(response)["details"]

    def test_write_is_admin_only(self, alice, carol, simple):
        before = ProcessDefinition.objects.count()
        for user in (alice, carol):
            client = login(user)
            data = {"code": "test.simple", "name": "x", "module": "oa", "steps": STEPS}
            response = post(client, f"{API}/definitions/", data)
            assert response.status_code == 403
            assert error(response)["message"] == "只有平台管理员可以维护流程定义。"
            response = post(client, f"{API}/definitions/import/", {"format": "yiwang.workflow/1", **data})
            assert response.status_code == 403
            # garbage from a non-admin is still 403, not 400
            assert post(client, f"{API}/definitions/", {"steps": 5}).status_code == 403
        assert ProcessDefinition.objects.count() == before

    def test_save_new_version(self, admin_client, simple, alice, carol):
        response = post(
            admin_client,
            f"{API}/definitions/",
            {"code": "test.simple", "name": "请假审批", "module": "hr", "case_time_limit": 5, "steps": STEPS},
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["definition"]["version"] == 2 and body["definition"]["status"] == "active"
        assert body["definition"]["created_by"]["username"] == "admin"
        assert [(v["version"], v["status"]) for v in body["versions"]] == [(2, "active"), (1, "retired")]
        # older version still readable
        old = admin_client.get(f"{API}/definitions/test.simple/", {"version": 1}).json()
        assert old["definition"]["version"] == 1 and old["definition"]["module"] == "oa"

    def test_invalid_definitions_name_the_step(self, admin_client, roles, carol):
        url = f"{API}/definitions/"
        steps = [
            STEPS[0],
            {"key": "two", "name": "会签", "kind": "everyone", "assignee": {"type": "person", "usernames": ["ghost"]}},
            "not a step",
        ]
        response = post(admin_client, url, {"code": "bad code!", "name": "", "module": "oa", "steps": steps})
        assert response.status_code == 400
        details = error(response)["details"]
        assert set(details) == {"code", "name", "steps"}
        assert "第 2 步“会签”：未知的审批方式 everyone。" in details["steps"]
        assert "第 2 步“会签”：找不到在岗人员 ghost。" in details["steps"]
        assert "第 3 步“?”：格式错误。" in details["steps"]
        response = post(admin_client, url, {"code": "x", "name": "x", "module": "oa", "steps": []})
        assert error(response)["details"] == {"steps": ["流程至少需要一个环节。"]}
        # wrong JSON types are 400s that still name the step, never 500s
        weird = [
            {"name": "甲", "kind": ["single"], "assignee": {"type": "initiator_leader"}},
            {"name": "乙", "assignee": {"type": {"a": 1}, "rank": []}},
            {"name": "丙", "assignee": {"type": "person", "usernames": 5}},
            {"name": "丁", "assignee": {"type": "initiator_leader"}, "condition": {"field": "a", "op": ["gt"]}},
        ]
        response = post(admin_client, url, {"code": "x", "name": "x", "module": "oa", "steps": weird})
        assert response.status_code == 400
        messages = error(response)["details"]["steps"]
        assert [m.split("：")[0] for m in messages] == ["第 1 步“甲”", "第 2 步“乙”", "第 3 步“丙”", "第 4 步“丁”"]
        for data in ({"code": ["x"], "name": "x", "module": "oa", "steps": STEPS}, {"case_time_limit": "abc"}, [1]):
            assert post(admin_client, url, data).status_code == 400, data
        response = post(
            admin_client, url, {"format": "other/1", "code": "x", "name": "x", "module": "oa", "steps": STEPS}
        )
        assert "format" in error(response)["details"]
        assert not ProcessDefinition.objects.filter(code="x").exists()

    def test_export_import_round_trip(self, admin_client, chain, alice):
        exported = login(alice).get(f"{API}/definitions/test.chain/export/").json()
        assert exported["format"] == "yiwang.workflow/1" and exported["version"] == 1
        response = post(admin_client, f"{API}/definitions/import/", exported)
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["definition"]["version"] == 2 and body["definition"]["steps"] == exported["steps"]
        assert body["definition"]["case_time_limit"] == 15
        again = admin_client.get(f"{API}/definitions/test.chain/export/").json()
        assert {**again, "version": 1} == exported
        # as a file upload too
        upload = SimpleUploadedFile("chain.json", json.dumps(exported).encode(), content_type="application/json")
        response = admin_client.post(f"{API}/definitions/import/", {"file": upload})
        assert response.status_code == 201 and response.json()["definition"]["version"] == 3
        assert ProcessDefinition.objects.filter(code="test.chain", status="active").get().version == 3

    def test_import_refusals(self, admin_client, chain):
        url = f"{API}/definitions/import/"
        response = post(admin_client, url, {"code": "test.chain"})
        assert response.status_code == 400 and "yiwang 流程定义文件" in error(response)["message"]
        response = admin_client.post(url, {"file": SimpleUploadedFile("x.json", b"{not json")})
        assert response.status_code == 400 and "不是有效的 JSON 文件" in error(response)["message"]
        response = admin_client.post(url, {"file": SimpleUploadedFile("x.json", b"\xff\xfe")})
        assert response.status_code == 400
        response = admin_client.post(url, {"other": "x"})
        assert response.status_code == 400 and "file" in error(response)["details"]
        exported = services.definition_export(chain)
        exported["steps"][0]["kind"] = {"x": 1}
        response = post(admin_client, url, exported)
        assert response.status_code == 400 and error(response)["details"]["steps"][0].startswith("第 1 步")
        assert ProcessDefinition.objects.filter(code="test.chain").count() == 1


# --- API keys and the schema ----------------------------------------------------------------


@pytest.fixture
def system(units, admin):
    return org.system_create(actor=None, name="教育业务系统", unit=units["edu"])


def key_auth(system, scopes) -> dict:
    _key, raw = org.api_key_issue(actor=None, system=system, name="k", scopes=scopes)
    return {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}


class TestApiKeys:
    def test_read_scope_reads_but_cannot_write(self, client, system, started, chain):
        case, task = started
        auth = key_auth(system, ["workflow:read"])
        assert client.get(f"{API}/tasks/", **auth).status_code == 200
        assert client.get(f"{API}/definitions/", **auth).status_code == 200
        assert client.get(f"{API}/cases/{case.pk}/", **auth).status_code == 200  # the system's unit is 教育局
        before = snapshot()
        response = post(client, f"{API}/cases/", {"process": "test.chain", "title": "x"}, **auth)
        assert response.status_code == 403 and error(response)["code"] == "permission_denied"
        assert post(client, f"{API}/tasks/{task.pk}/approve/", **auth).status_code == 403
        assert snapshot() == before

    def test_other_scopes_cannot_read(self, client, system, started):
        auth = key_auth(system, ["org:read", "org:write"])
        for path in ("tasks/", "cases/", "definitions/"):
            assert client.get(f"{API}/{path}", **auth).status_code == 403

    def test_write_scope_starts_a_case(self, client, system, chain, carol):
        auth = key_auth(system, ["workflow:read", "workflow:write"])
        response = post(client, f"{API}/cases/", {"process": "test.chain", "title": "接口发起", "fields": {}}, **auth)
        assert response.status_code == 201, response.content
        assert response.json()["case"]["unit"]["name"] == "区教育局"

    def test_anonymous_is_401(self, client, chain):
        response = client.get(f"{API}/tasks/")
        assert response.status_code == 401 and error(response)["code"] == "not_authenticated"


def test_schema_documents_the_api(alice_client):
    response = alice_client.get("/api/schema/")
    assert response.status_code == 200
    for path in (
        b"/api/workflow/tasks/{id}/add-signers/",
        b"/api/workflow/cases/{id}/extension/",
        b"/api/workflow/definitions/import/",
    ):
        assert path in response.content
