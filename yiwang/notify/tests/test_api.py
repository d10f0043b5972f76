"""The notify API: sending one and a batch, jobs, status, templates, keys, scoping and refusals."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from conftest import make_person
from yiwang.notify import dispatch, gateways, services
from yiwang.notify.gateways.fake_server import FakeSmsServer
from yiwang.notify.models import Job, Message, UsageDay
from yiwang.org import services as org

from .conftest import SECRET

pytestmark = pytest.mark.django_db

API = "/api/notify"
VALUES = {"姓名": "王小明", "日期": "12月1日"}
OMIT = object()


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def post(client, url, data=None, **extra):
    return client.post(url, json.dumps({} if data is None else data), content_type="application/json", **extra)


def raw_post(client, url, body: bytes | str, **extra):
    return client.post(url, body, content_type="application/json", **extra)


def error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def system(units):
    return org.system_create(actor=None, name="教育业务系统", unit=units["edu"])


@pytest.fixture
def fin_system(units):
    return org.system_create(actor=None, name="财政业务系统", unit=units["fin"])


def key_auth(system, scopes=("notify:read", "notify:write"), kind="live") -> dict:
    _key, raw = org.api_key_issue(actor=None, system=system, name=f"{kind}-key", scopes=list(scopes), kind=kind)
    return {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}


@pytest.fixture
def live(system):
    return key_auth(system)


def send(client, auth, **data):
    payload = {"mobile": "13800138000", "template": "exam", "values": VALUES, **data}
    return post(client, f"{API}/messages/", {k: v for k, v in payload.items() if v is not None}, **auth)


def csv_upload(rows: list[str], name="名单.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, "\n".join(rows).encode(), content_type="text/csv")


def upload_job(client, auth, rows, template="exam", **extra):
    return client.post(f"{API}/jobs/", {"template": template, "file": csv_upload(rows), **extra}, **auth)


ROWS = ["手机号,姓名,日期", "13800138000,王小明,周一", "12345,李四,周一", "13900000002,赵六,周二"]


def validated_job(client, auth, rows=ROWS) -> Job:
    """Upload through the API, then validate as the worker would."""
    response = upload_job(client, auth, rows)
    assert response.status_code == 201, response.content.decode()
    return services.job_validate(job=Job.objects.get(pk=response.json()["id"]))


# --- sending one ---------------------------------------------------------------------------


class TestSendOne:
    def test_template_message_is_saved_and_returned(self, client, live, notice):
        response = send(client, live, reference="exam-2026-001", mobile="+86 138-0013-8000")
        assert response.status_code == 201, response.content.decode()
        body = response.json()
        assert body["mobile"] == "13800138000" and body["status"] == "created"
        assert body["body"] == "【北仑区政府】王小明同学：请于12月1日参加考试。"
        assert body["template"] == {"code": "exam", "version": 1, "name": "考试通知"}
        assert body["reference"] == "exam-2026-001" and body["urgent"] is False and body["test"] is False
        message = Message.objects.get(pk=body["id"])
        assert message.unit == notice.unit and message.module == "api"
        assert UsageDay.objects.get(unit=notice.unit).reserved == 1

    def test_plain_body_and_schedule(self, client, live, notice):
        at = timezone.now() + dt.timedelta(days=2)
        response = send(client, live, template=None, values=None, body="明天上午九点开会。", send_at=at.isoformat())
        assert response.status_code == 201, response.content.decode()
        assert response.json()["body"] == "【北仑区政府】明天上午九点开会。"
        assert Message.objects.get().not_before == at

    def test_urgent_only_for_code_and_alarm_templates(self, client, live, notice, code_template):
        response = send(client, live, urgent=True)
        assert response.status_code == 400 and "urgent" in error(response)["details"]
        response = send(client, live, template=None, values=None, body="紧急通知", urgent=True)
        assert response.status_code == 400 and "urgent" in error(response)["details"]
        response = send(client, live, template="otp", values={"验证码": 123456}, urgent=True)
        assert response.status_code == 201 and response.json()["urgent"] is True
        response = send(client, live, template="otp", values={"验证码": "654321"})
        assert response.status_code == 201 and response.json()["urgent"] is True  # the template's kind
        assert Message.objects.filter(priority=Message.Priority.URGENT).count() == 2

    def test_session_user_sends_as_their_unit(self, alice, notice):
        response = send(login(alice), {})
        assert response.status_code == 201
        assert Message.objects.get().unit == notice.unit and Message.objects.get().created_by == alice

    def test_opt_out_is_refused_but_codes_still_go(self, client, live, notice, code_template):
        services.optout_add(actor=None, mobile="13800138000")
        response = send(client, live)
        assert response.status_code == 400
        assert "已退订" in error(response)["details"]["mobile"][0]
        assert send(client, live, template="otp", values={"验证码": "1234"}).status_code == 201
        assert Message.objects.count() == 1

    def test_quota_exceeded_is_409(self, client, live, units, notice):
        services.policy_save(actor=None, unit=units["edu"], daily_quota=2, signature="北仑区教育局")
        assert [send(client, live).status_code for _ in range(2)] == [201, 201]
        response = send(client, live)
        assert response.status_code == 409
        assert error(response)["code"] == "conflict" and "配额" in error(response)["message"]
        assert Message.objects.count() == 2

    def test_sending_disabled_is_409(self, client, live, units, notice):
        services.policy_save(actor=None, unit=units["edu"], enabled=False, signature="北仑区教育局")
        response = send(client, live)
        assert response.status_code == 409 and "停用" in error(response)["message"]

    def test_missing_placeholder_and_unknown_template(self, client, live, notice):
        response = send(client, live, values={"姓名": "王"})
        assert response.status_code == 400 and "日期" in error(response)["details"]["values"][0]
        response = send(client, live, template="nope")
        assert response.status_code == 400 and "nope" in error(response)["details"]["template"][0]
        assert not Message.objects.exists()

    def test_another_units_template_is_unknown(self, client, fin_system, notice):
        response = send(client, key_auth(fin_system))
        assert response.status_code == 400 and "template" in error(response)["details"]


class TestBadInput:
    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"mobile": "12345"}, "mobile"),
            ({"mobile": "23800138000"}, "mobile"),
            ({"mobile": ""}, "mobile"),
            ({"mobile": None}, "mobile"),
            ({"mobile": ["13800138000"]}, "mobile"),
            ({"mobile": {"n": 1}}, "mobile"),
            ({"mobile": True}, "mobile"),
            ({"mobile": "1" * 5000}, "mobile"),
            ({"mobile": "1380013\x008000"}, "mobile"),
            ({"values": ["王"]}, "values"),
            ({"values": "王"}, "values"),
            ({"values": {"姓名": {"x": 1}}}, "values"),
            ({"values": {"姓名": ["王"]}}, "values"),
            ({"values": {"姓名": True, "日期": "1"}}, "values"),
            ({"values": {"姓名": "王\x00", "日期": "1"}}, "values"),
            ({"values": {"姓名": "王" * 501, "日期": "1"}}, "values"),
            ({"values": {f"k{i}": "v" for i in range(51)}}, "values"),
            ({"template": 123}, "template"),
            ({"template": "x" * 65}, "template"),
            ({"template": "exam\x00"}, "template"),
            ({"template": "", "values": OMIT}, "template"),
            ({"template": OMIT, "values": OMIT, "body": "   "}, "template"),
            ({"template": None}, "template"),
            ({"body": "你好"}, "body"),  # template and body together
            ({"template": OMIT, "values": OMIT, "body": "字" * 600}, "body"),
            ({"template": OMIT, "values": OMIT, "body": "字" * 5000}, "body"),
            ({"template": OMIT, "values": OMIT, "body": "a\x00b"}, "body"),
            ({"template": OMIT, "values": OMIT, "body": ["x"]}, "body"),
            ({"reference": "r" * 65}, "reference"),
            ({"reference": ["r"]}, "reference"),
            ({"callback_url": "ftp://example.com/x"}, "callback_url"),
            ({"callback_url": "javascript:alert(1)"}, "callback_url"),
            ({"callback_url": "http://" + "a" * 300 + ".cn/"}, "callback_url"),
            ({"send_at": "tomorrow"}, "send_at"),
            ({"send_at": "99999-01-01T00:00:00Z"}, "send_at"),
            ({"send_at": 1764000000}, "send_at"),
            ({"send_at": "2000-01-01T00:00:00+08:00"}, "send_at"),
            ({"send_at": "2999-01-01T00:00:00+08:00"}, "send_at"),
            ({"urgent": "maybe"}, "urgent"),
            ({"urgent": [True]}, "urgent"),
        ],
    )
    def test_bad_fields_are_400_naming_the_field(self, client, live, notice, data, field):
        payload = {"mobile": "13800138000", "template": "exam", "values": VALUES, **data}
        response = post(client, f"{API}/messages/", {k: v for k, v in payload.items() if v is not OMIT}, **live)
        assert response.status_code == 400, response.content.decode()
        assert error(response)["code"] == "invalid" and field in error(response)["details"], error(response)
        assert not Message.objects.exists()

    @pytest.mark.parametrize(
        "body",
        [b"{", b"[]", b'"text"', b"null", b"13800138000", b"[" * 10000 + b"]" * 10000, b'{"values": 1e400}', b"\xff"],
    )
    def test_unreadable_bodies_are_400(self, client, live, notice, body):
        response = raw_post(client, f"{API}/messages/", body, **live)
        assert response.status_code == 400, response.content.decode()
        assert not Message.objects.exists()

    def test_huge_number_value_is_400(self, client, live, notice):
        response = raw_post(client, f"{API}/messages/", '{"mobile": "13800138000", "template": "exam", '
                            '"values": {"姓名": 1e400, "日期": "1"}}', **live)  # fmt: skip
        assert response.status_code == 400 and "values" in error(response)["details"]
        response = raw_post(client, f"{API}/messages/", '{"mobile": "13800138000", "template": "exam", '
                            '"values": {"姓名": ' + "9" * 5000 + ', "日期": "1"}}', **live)  # fmt: skip
        assert response.status_code == 400

    @pytest.mark.parametrize("pk", ["0", "-1", "abc", "1.5", "99999999999999999999999", "1%00", "%EF%BC%91"])
    def test_bad_ids_are_400(self, client, live, notice, pk):
        for url in (f"{API}/messages/{pk}/", f"{API}/jobs/{pk}/"):
            response = client.get(url, **live)
            assert response.status_code == 400, (url, response.content)
        for action in ("confirm", "cancel"):
            assert post(client, f"{API}/jobs/{pk}/{action}/", **live).status_code == 400

    def test_unknown_but_valid_ids_are_404(self, client, live, notice):
        for url in (f"{API}/messages/{2**63 - 1}/", f"{API}/jobs/{2**63 - 1}/"):
            assert client.get(url, **live).status_code == 404
        assert post(client, f"{API}/jobs/{2**63 - 1}/cancel/", **live).status_code == 404

    def test_wrong_content_type_and_method(self, client, live, notice):
        response = client.post(f"{API}/messages/", {"mobile": "13800138000"}, **live)  # multipart
        assert response.status_code == 415
        assert client.put(f"{API}/messages/1/", "{}", content_type="application/json", **live).status_code == 405
        assert client.delete(f"{API}/templates/exam/", **live).status_code == 405


# --- keys, scopes and scoping ------------------------------------------------------------


class TestKeys:
    def test_anonymous_is_401(self, client, notice):
        response = send(client, {})
        assert response.status_code == 401 and error(response)["code"] == "not_authenticated"
        assert client.get(f"{API}/templates/").status_code == 401

    def test_read_only_key_cannot_send(self, client, system, notice):
        auth = key_auth(system, ["notify:read"])
        assert client.get(f"{API}/templates/", **auth).status_code == 200
        response = send(client, auth)
        assert response.status_code == 403 and error(response)["code"] == "permission_denied"
        assert (
            post(client, f"{API}/messages/batch/", {"messages": [{"mobile": "13800138000"}]}, **auth).status_code == 403
        )
        assert upload_job(client, auth, ROWS).status_code == 403
        assert not Message.objects.exists() and not Job.objects.exists()

    def test_other_scopes_cannot_read_or_send(self, client, system, notice):
        auth = key_auth(system, ["org:read", "org:write", "workflow:write"])
        assert client.get(f"{API}/templates/", **auth).status_code == 403
        assert client.get(f"{API}/messages/?reference=x", **auth).status_code == 403
        assert send(client, auth).status_code == 403

    def test_write_only_key_cannot_read(self, client, system, notice):
        auth = key_auth(system, ["notify:write"])
        response = send(client, auth)
        assert response.status_code == 201
        assert client.get(f"{API}/messages/{response.json()['id']}/", **auth).status_code == 403

    def test_revoked_key_is_401(self, client, system, notice):
        key, raw = org.api_key_issue(actor=None, system=system, name="k", scopes=["notify:write"])
        key.revoked_at = timezone.now()
        key.save()
        assert send(client, {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}).status_code == 401

    def test_test_key_marks_messages_and_jobs_and_only_reaches_the_fake(self, settings, client, system, notice):
        fake = "yiwang.notify.gateways.fake.FakeGateway"
        with FakeSmsServer(secret=SECRET) as provider, FakeSmsServer(secret=SECRET) as test_fake:
            settings.YIWANG_SMS_GATEWAYS = [
                {"code": "provider", "class": fake, "url": provider.url, "secret": SECRET, "priority": 0},
                {"code": "sandbox", "class": fake, "url": test_fake.url, "secret": SECRET, "priority": 1},
            ]
            settings.YIWANG_SMS_TEST_GATEWAY = "sandbox"
            gateways.reset()
            test_key = key_auth(system, kind="test")
            response = send(client, test_key, mobile="13800138011")
            assert response.status_code == 201 and response.json()["test"] is True
            assert send(client, key_auth(system), mobile="13800138022").status_code == 201  # a live one
            job = validated_job(client, test_key)
            assert job.test and Message.objects.filter(job=job, test=True).count() == job.valid_rows == 2
            services.job_confirm(actor=job.created_by, job=job)
            services.job_start_due()
            while dispatch.dispatch_round(dispatch.NORMAL):
                pass
            assert sorted(m["mobile"] for m in test_fake.messages()) == ["13800138000", "13800138011", "13900000002"]
            assert [m["mobile"] for m in provider.messages()] == ["13800138022"]
            test_message = Message.objects.get(pk=response.json()["id"])
            assert test_message.gateway == "sandbox" and test_message.status == Message.Status.SENT
        gateways.reset()

    def test_team_key_sends_only_to_people_of_its_unit(self, client, system, alice, bob, notice):
        team = key_auth(system, kind="team")
        assert send(client, team, mobile=alice.mobile).status_code == 201
        for mobile in (bob.mobile, "13912345678"):
            response = send(client, team, mobile=mobile)
            assert response.status_code == 403
            assert "团队密钥" in error(response)["message"] and mobile in error(response)["message"]
        rows = [{"mobile": alice.mobile, "template": "exam", "values": VALUES},
                {"mobile": bob.mobile, "template": "exam", "values": VALUES}]  # fmt: skip
        response = post(client, f"{API}/messages/batch/", {"messages": rows}, **team)
        assert response.status_code == 403 and list(error(response)["details"]["messages"]) == ["1"]
        assert Message.objects.count() == 1

    def test_team_key_job_is_refused_at_confirm_when_it_has_outsiders(self, client, system, alice, notice):
        team = key_auth(system, kind="team")
        job = validated_job(client, team, ["手机号,姓名,日期", f"{alice.mobile},王丽,周一", "13900000002,赵六,周二"])
        response = post(client, f"{API}/jobs/{job.pk}/confirm/", **team)
        assert response.status_code == 403 and "13900000002" in error(response)["message"]
        job = validated_job(client, team, ["手机号,姓名,日期", f"{alice.mobile},王丽,周一"])
        assert post(client, f"{API}/jobs/{job.pk}/confirm/", **team).json()["status"] == "scheduled"

    def test_a_person_not_in_the_unit_cannot_be_a_team_member_by_inactive_post(
        self, client, system, units, roles, notice
    ):
        former = make_person("dave", "前同事", units["edu"], roles["staff"], mobile="13800138003")
        former.posts.update(active=False)
        response = send(client, key_auth(system, kind="team"), mobile="13800138003")
        assert response.status_code == 403

    def test_rate_limit_per_key(self, settings, client, system, notice, monkeypatch):
        from django.core.cache.backends.locmem import LocMemCache

        from yiwang.notify import api

        # A private counter store: with -n 2 on Redis, another test process shares the cache
        # (and clears it), and key ids repeat across test databases.
        monkeypatch.setattr(api, "cache", LocMemCache(f"notify-api-test-{id(self)}", {}))
        settings.YIWANG_NOTIFY_API_PER_MINUTE = 2
        auth, other = key_auth(system), key_auth(system)
        minute = timezone.now().replace(second=30, microsecond=0) + dt.timedelta(minutes=1)
        with time_machine.travel(minute, tick=False):  # all in one window of the counter
            assert [client.get(f"{API}/templates/", **auth).status_code for _ in range(3)] == [200, 200, 429]
            response = client.get(f"{API}/templates/", **auth)
            assert error(response)["code"] == "throttled" and int(response["Retry-After"]) == 30
            assert client.get(f"{API}/templates/", **other).status_code == 200  # counted per key
        with time_machine.travel(minute + dt.timedelta(minutes=1), tick=False):
            assert client.get(f"{API}/templates/", **auth).status_code == 200  # a new minute


class TestScoping:
    def test_status_of_own_message_and_404_for_another_units(self, client, live, fin_system, alice, bob, notice):
        message_id = send(client, live, reference="r1").json()["id"]
        response = client.get(f"{API}/messages/{message_id}/", **live)
        assert response.status_code == 200 and response.json()["status"] == "created"
        assert response.json()["status_display"] == "待发送"
        assert client.get(f"{API}/messages/{message_id}/", **key_auth(fin_system)).status_code == 404
        assert login(alice).get(f"{API}/messages/{message_id}/").status_code == 200
        assert login(bob).get(f"{API}/messages/{message_id}/").status_code == 404

    def test_lookup_by_reference(self, client, live, fin_system, units, notice):
        first = send(client, live, reference="biz-7").json()["id"]
        second = send(client, live, reference="biz-7", mobile="13800138009").json()["id"]
        send(client, live, reference="biz-8")
        services.message_send(unit=units["fin"], mobile="13800138000", body="财政局的", reference="biz-7")
        response = client.get(f"{API}/messages/", {"reference": "biz-7"}, **live)
        assert response.status_code == 200
        assert [m["id"] for m in response.json()["results"]] == [second, first]
        assert client.get(f"{API}/messages/", {"reference": "nothing"}, **live).json()["results"] == []
        fin = client.get(f"{API}/messages/", {"reference": "biz-7"}, **key_auth(fin_system)).json()["results"]
        assert [m["body"] for m in fin] == ["【北仑区政府】财政局的"]
        for params in ({}, {"reference": "r" * 65}, {"reference": "a\x00"}):
            response = client.get(f"{API}/messages/", params, **live)
            assert response.status_code == 400 and "reference" in error(response)["details"]

    def test_another_units_job_is_404(self, client, live, fin_system, notice):
        job = validated_job(client, live)
        other = key_auth(fin_system)
        assert client.get(f"{API}/jobs/{job.pk}/", **other).status_code == 404
        assert post(client, f"{API}/jobs/{job.pk}/confirm/", **other).status_code == 404
        assert post(client, f"{API}/jobs/{job.pk}/cancel/", **other).status_code == 404
        assert client.get(f"{API}/jobs/", **other).json()["results"] == []
        job.refresh_from_db()
        assert job.status == Job.Status.VALIDATED


# --- batch ---------------------------------------------------------------------------------


def batch(client, auth, rows):
    return post(client, f"{API}/messages/batch/", {"messages": rows}, **auth)


def row(n: int, **kw) -> dict:
    return {"mobile": f"1380013{8000 + n:04d}", "template": "exam", "values": VALUES, "reference": f"b{n}", **kw}


class TestBatch:
    def test_all_rows_are_sent_in_order(self, client, live, notice):
        rows = [row(0), row(1, template="", values={}, body="直接写的内容"), row(2)]
        response = batch(client, live, rows)
        assert response.status_code == 201, response.content.decode()
        messages = response.json()["messages"]
        assert [m["reference"] for m in messages] == ["b0", "b1", "b2"]
        assert messages[1]["body"] == "【北仑区政府】直接写的内容"
        assert Message.objects.count() == 3 and UsageDay.objects.get(unit=notice.unit).reserved == 3

    def test_a_thousand_rows(self, client, live, units, notice):
        services.policy_save(actor=None, unit=units["edu"], daily_quota=5000, signature="北仑区教育局")
        response = batch(client, live, [row(n) for n in range(1000)])
        assert response.status_code == 201 and len(response.json()["messages"]) == 1000
        assert Message.objects.count() == 1000

    def test_one_bad_row_refuses_the_whole_batch_with_per_row_errors(self, client, live, notice):
        services.optout_add(actor=None, mobile="13800138003")
        rows = [row(0), row(1, mobile="12345"), row(2), row(3), row(4, values={"姓名": "王"}), "not an object"]
        response = batch(client, live, rows)
        assert response.status_code == 400
        details = error(response)["details"]["messages"]
        assert list(details) == ["1", "3", "4", "5"]
        assert "手机号" in details["1"]["mobile"][0] and "已退订" in details["3"]["mobile"][0]
        assert "日期" in details["4"]["values"][0] and "non_field_errors" in details["5"]
        assert "6 条中有 4 条有误" in error(response)["message"] and "整批未发送" in error(response)["message"]
        assert not Message.objects.exists() and not UsageDay.objects.filter(reserved__gt=0).exists()

    def test_over_quota_refuses_the_whole_batch(self, client, live, units, notice):
        services.policy_save(actor=None, unit=units["edu"], daily_quota=3, signature="北仑区教育局")
        response = batch(client, live, [row(n) for n in range(4)])
        assert response.status_code == 409 and "配额" in error(response)["message"]
        assert not Message.objects.exists() and not UsageDay.objects.filter(reserved__gt=0).exists()

    @pytest.mark.parametrize(
        "payload", [{}, {"messages": []}, {"messages": {"0": {}}}, {"messages": "x"}, [], {"messages": [{}] * 1001}]
    )
    def test_bad_batch_shapes(self, client, live, notice, payload):
        response = post(client, f"{API}/messages/batch/", payload, **live)
        assert response.status_code == 400 and "messages" in error(response)["details"]

    def test_unknown_template_and_urgent_per_row(self, client, live, notice):
        response = batch(client, live, [row(0, template="nope"), row(1, urgent=True), row(2)])
        assert response.status_code == 400
        details = error(response)["details"]["messages"]
        assert "template" in details["0"] and "urgent" in details["1"]


# --- jobs ----------------------------------------------------------------------------------


class TestJobs:
    def test_upload_validate_confirm_progress(self, client, live, sms_server, notice):
        response = upload_job(client, live, ROWS, callback_url="https://edu.example.cn/sms")
        assert response.status_code == 201, response.content.decode()
        created = response.json()
        assert created["status"] == "validating" and created["source_name"] == "名单.csv"
        assert created["template"]["code"] == "exam" and created["test"] is False
        services.job_validate(job=Job.objects.get(pk=created["id"]))  # what the worker does
        detail = client.get(f"{API}/jobs/{created['id']}/", **live).json()
        assert detail["status"] == "validated" and detail["status_display"] == "待确认"
        assert (detail["total_rows"], detail["valid_rows"], detail["invalid_rows"]) == (3, 2, 1)
        assert detail["errors"] == [{"row": 3, "mobile": "12345", "problem": "手机号格式不正确：12345"}]
        assert detail["has_error_report"] is True
        assert detail["progress"]["total"] == 2 and detail["progress"]["created"] == 2
        response = post(client, f"{API}/jobs/{created['id']}/confirm/", **live)
        assert response.status_code == 200 and response.json()["status"] == "scheduled"
        assert UsageDay.objects.get(unit=notice.unit).reserved == 2
        services.job_start_due()
        while dispatch.dispatch_round(dispatch.NORMAL):
            pass
        progress = client.get(f"{API}/jobs/{created['id']}/", **live).json()["progress"]
        assert progress["sent"] == 2 and progress["done"] == 2 and progress["created"] == 0
        assert len(sms_server.messages()) == 2
        listed = client.get(f"{API}/jobs/", **live).json()["results"]
        assert [j["id"] for j in listed] == [created["id"]] and listed[0]["status"] == "sending"

    def test_confirm_twice_is_409_and_cancel(self, client, live, notice):
        job = validated_job(client, live)
        at = (timezone.now() + dt.timedelta(days=1)).isoformat()
        response = post(client, f"{API}/jobs/{job.pk}/confirm/", {"send_at": at}, **live)
        assert response.status_code == 200 and response.json()["scheduled_for"]
        response = post(client, f"{API}/jobs/{job.pk}/confirm/", **live)
        assert response.status_code == 409 and error(response)["code"] == "conflict"
        response = post(client, f"{API}/jobs/{job.pk}/cancel/", **live)
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        assert not Message.objects.filter(job=job, status=Message.Status.CREATED).exists()
        assert UsageDay.objects.get(unit=notice.unit).reserved == 0
        response = post(client, f"{API}/jobs/{job.pk}/cancel/", **live)
        assert response.status_code == 409 and "已结束" in error(response)["message"]

    def test_confirm_bad_send_at_and_quota(self, client, live, units, notice):
        job = validated_job(client, live)
        for send_at in ("2999-01-01T00:00:00Z", "soon", 12):
            response = post(client, f"{API}/jobs/{job.pk}/confirm/", {"send_at": send_at}, **live)
            assert response.status_code == 400 and "send_at" in error(response)["details"]
        assert post(client, f"{API}/jobs/{job.pk}/confirm/", [1], **live).status_code == 400
        services.policy_save(actor=None, unit=units["edu"], daily_quota=1, signature="北仑区教育局")
        response = post(client, f"{API}/jobs/{job.pk}/confirm/", **live)
        assert response.status_code == 409 and "配额" in error(response)["message"]
        job.refresh_from_db()
        assert job.status == Job.Status.VALIDATED

    def test_invalid_file_shows_the_problem(self, client, live, notice):
        job = validated_job(client, live, ["手机号,姓名", "13800138000,王小明"])
        detail = client.get(f"{API}/jobs/{job.pk}/", **live).json()
        assert detail["status"] == "invalid" and "日期" in detail["problem"]
        response = post(client, f"{API}/jobs/{job.pk}/confirm/", **live)
        assert response.status_code == 409

    @pytest.mark.parametrize(
        ("name", "content", "fragment"),
        [
            ("a.csv", b"", "空的"),
            ("a.pdf", b"%PDF-1.4", "只支持"),
            ("a.xlsx", b"not a zip", "Excel"),
            ("a.csv", b"\x00\x01\x02binary", "只支持"),
        ],
    )
    def test_bad_files_are_400(self, client, live, notice, name, content, fragment):
        response = client.post(f"{API}/jobs/", {"template": "exam", "file": SimpleUploadedFile(name, content)}, **live)
        assert response.status_code == 400, response.content.decode()
        assert "file" in error(response)["details"] and fragment in error(response)["details"]["file"][0]
        assert not Job.objects.exists()

    def test_nul_in_the_file_name_is_dropped(self, client, live, notice):
        upload = SimpleUploadedFile("名\x00单.csv", "\n".join(ROWS).encode())
        response = client.post(f"{API}/jobs/", {"template": "exam", "file": upload}, **live)
        assert response.status_code in (201, 400), response.content.decode()
        assert all("\x00" not in job.source_name for job in Job.objects.all())

    def test_oversized_file_is_400(self, client, live, notice, monkeypatch):
        monkeypatch.setattr(services, "MAX_UPLOAD_BYTES", 10)
        response = upload_job(client, live, ROWS)
        assert response.status_code == 400 and "文件过大" in error(response)["details"]["file"][0]

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"template": "exam"}, "file"),
            ({"template": "exam", "file": "not a file"}, "file"),
            ({"template": "nope", "file": None}, "template"),
            ({"template": "", "file": None}, "template"),
            ({"template": "exam\x00", "file": None}, "template"),
            ({"template": "exam", "file": None, "callback_url": "file:///etc/passwd"}, "callback_url"),
        ],
    )
    def test_bad_upload_fields(self, client, live, notice, data, field):
        data = {k: (csv_upload(ROWS) if k == "file" and v is None else v) for k, v in data.items()}
        response = client.post(f"{API}/jobs/", data, **live)
        assert response.status_code == 400 and field in error(response)["details"], response.content.decode()
        assert post(client, f"{API}/jobs/", {"template": "exam"}, **live).status_code == 400  # JSON has no file
        assert not Job.objects.exists()


# --- templates -----------------------------------------------------------------------------


class TestTemplates:
    def test_list_and_detail(self, client, live, fin_system, notice, code_template):
        services.template_save(
            actor=None, unit=notice.unit, code="exam", name="考试通知", body="((姓名))：改期至((日期))。"
        )
        response = client.get(f"{API}/templates/", **live)
        assert response.status_code == 200
        assert [(t["code"], t["version"]) for t in response.json()["results"]] == [("exam", 2), ("otp", 1)]
        detail = client.get(f"{API}/templates/otp/", **live).json()
        assert detail["kind"] == "verification" and detail["urgent"] is True and detail["placeholders"] == ["验证码"]
        assert client.get(f"{API}/templates/exam/", **live).json()["placeholders"] == ["姓名", "日期"]
        assert client.get(f"{API}/templates/", **key_auth(fin_system)).json()["results"] == []
        for code in ("nope", "x" * 65, "%E4%BD%A0"):
            assert client.get(f"{API}/templates/{code}/", **live).status_code == 404
        assert client.get(f"{API}/templates/otp%00/", **live).status_code == 400  # core's API guard: NUL
        assert client.get(f"{API}/templates/otp/", **key_auth(fin_system)).status_code == 404


def test_schema_documents_the_api(alice_client):
    response = alice_client.get("/api/schema/")
    assert response.status_code == 200
    for path in (b"/api/notify/messages/batch/", b"/api/notify/jobs/{id}/confirm/", b"/api/notify/templates/{code}/"):
        assert path in response.content


def send_keyed(client, auth, key: str):
    payload = {"mobile": "13800138000", "template": "exam", "values": VALUES}
    return post(client, f"{API}/messages/", payload, HTTP_IDEMPOTENCY_KEY=key, **auth)


class TestIdempotency:
    def test_a_retried_send_with_the_same_key_returns_the_first_message(self, client, live, notice):
        first = send_keyed(client, live, "order-42")
        again = send_keyed(client, live, "order-42")
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]
        assert Message.objects.count() == 1 and UsageDay.objects.get(unit=notice.unit).reserved == 1
        other = send_keyed(client, live, "order-43")
        assert other.status_code == 201 and Message.objects.count() == 2
        assert send(client, live).status_code == 201 and send(client, live).status_code == 201  # no key: each sends

    def test_an_overlong_key_is_refused(self, client, live, notice):
        response = send_keyed(client, live, "k" * 65)
        assert response.status_code == 400 and "Idempotency-Key" in error(response)["details"]
        assert not Message.objects.exists()
