"""The dispatcher against a real fake gateway: once per row, lanes, fairness, retries, receipts."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from yiwang.core import webhooks
from yiwang.notify import dispatch, gateways, services
from yiwang.notify.gateways import Receipt, ReceiptStatus
from yiwang.notify.gateways.fake_server import FakeSmsServer
from yiwang.notify.models import Callback, Job, Message, UsageDay

from .conftest import SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def accepted(server) -> list[dict]:
    return server.messages(limit=100000)


def send_notice(unit, n=1, **kw) -> list[Message]:
    return [services.message_send(unit=unit, mobile=f"1380013{8000 + i:04d}", body=f"通知{i}", **kw) for i in range(n)]


def sending_job(alice, notice, rows: int) -> Job:
    lines = ["手机号,姓名,日期"] + [f"139{i:08d},人{i},周一" for i in range(rows)]
    upload = SimpleUploadedFile("名单.csv", "\n".join(lines).encode())
    job = services.job_validate(job=services.job_create(actor=alice, unit=notice.unit, template=notice, upload=upload))
    services.job_confirm(actor=alice, job=job)
    services.job_start_due()
    job.refresh_from_db()
    assert job.status == Job.Status.SENDING
    return job


class TestOncePerRow:
    def test_sent_once_even_when_dispatch_runs_again(self, sms_server, units, policy):
        send_notice(units["edu"], 3)
        assert dispatch.dispatch_round(dispatch.NORMAL) == 3
        assert dispatch.dispatch_round(dispatch.NORMAL) == 0  # a redelivered task finds nothing
        assert len(accepted(sms_server)) == 3
        message = Message.objects.first()
        assert message.status == Message.Status.SENT and message.provider_id and message.gateway == "fake"
        assert UsageDay.objects.get(unit=units["edu"]).sent == 3

    def test_two_claims_never_share_a_row(self, units, policy):
        send_notice(units["edu"], 10)
        queue = Message.objects.filter(status=Message.Status.CREATED)
        first = dispatch.claim(queue, limit=6)
        second = dispatch.claim(Message.objects.filter(status=Message.Status.CREATED), limit=6)
        assert len(first) == 6 and len(second) == 4
        assert not {m.pk for m in first} & {m.pk for m in second}

    def test_stuck_rows_are_put_back_and_sent_once(self, sms_server, units, policy):
        (message,) = send_notice(units["edu"])
        dispatch.claim(Message.objects.all(), limit=10)  # a worker claimed it, then died
        assert dispatch.dispatch_round(dispatch.NORMAL) == 0
        assert dispatch.requeue_stuck() == 0  # not old enough yet
        with time_machine.travel(timezone.now() + dt.timedelta(seconds=25)):  # a dead worker's lease ran out
            assert dispatch.requeue_stuck() == 1
            assert dispatch.dispatch_round(dispatch.NORMAL) == 1
        assert [m["id"] for m in accepted(sms_server)] == [str(message.pk)]

    def test_a_job_runs_to_finished(self, sms_server, alice, notice):
        job = sending_job(alice, notice, 30)
        while dispatch.dispatch_round(dispatch.NORMAL):
            pass
        assert services.jobs_finish() == 1
        job.refresh_from_db()
        assert job.status == Job.Status.FINISHED
        assert sorted(m["mobile"] for m in accepted(sms_server)) == [f"139{i:08d}" for i in range(30)]


class TestLanes:
    def test_urgent_lane_takes_only_urgent_rows(self, sms_server, units, policy, code_template):
        send_notice(units["edu"], 2)
        services.message_send(unit=units["edu"], mobile="13800138000", template=code_template, values={"验证码": "9"})
        assert dispatch.dispatch_round(dispatch.URGENT) == 1
        assert accepted(sms_server)[0]["text"].endswith("您的验证码是9，5分钟内有效。")

    def test_a_big_job_does_not_starve_another_unit(self, sms_server, alice, units, notice):
        sending_job(alice, notice, 300)
        singles = send_notice(units["fin"], 3)
        dispatch.dispatch_round(dispatch.NORMAL, batch=50)
        for message in singles:
            message.refresh_from_db()
            assert message.status == Message.Status.SENT
        assert Message.objects.filter(job__isnull=False, status=Message.Status.SENT).count() == 50

    def test_per_minute_rate_limit(self, sms_server, units, policy):
        services.policy_save(actor=None, unit=units["edu"], per_minute=5, signature="北仑区教育局")
        dispatch._policies.clear()
        send_notice(units["edu"], 8)
        assert dispatch.dispatch_round(dispatch.NORMAL) == 5
        assert dispatch.dispatch_round(dispatch.NORMAL) == 0
        assert Message.objects.filter(status=Message.Status.CREATED).count() == 3


class TestFailures:
    def test_temporary_failures_back_off_then_succeed(self, sms_server, units, policy):
        sms_server.control({"fail_rate": 1, "fail_kind": "temporary"})
        (message,) = send_notice(units["edu"])
        dispatch.dispatch_round(dispatch.NORMAL)
        message.refresh_from_db()
        assert message.status == Message.Status.TEMPORARY_FAILURE and message.not_before > timezone.now()
        assert dispatch.dispatch_round(dispatch.NORMAL) == 0  # not before its backoff
        sms_server.control({"fail_rate": 0})
        gateways.reset()  # forget the failing window
        with time_machine.travel(timezone.now() + dt.timedelta(minutes=1)):
            assert dispatch.dispatch_round(dispatch.NORMAL) == 1
        message.refresh_from_db()
        assert message.status == Message.Status.SENT and message.attempts == 2

    def test_permanent_failures_are_not_retried(self, sms_server, units, policy):
        sms_server.control({"fail_rate": 1, "fail_kind": "permanent"})
        (message,) = send_notice(units["edu"])
        dispatch.dispatch_round(dispatch.NORMAL)
        message.refresh_from_db()
        assert message.status == Message.Status.PERMANENT_FAILURE and message.error_code == "FAKE_PERMANENT"
        assert UsageDay.objects.get(unit=units["edu"]).failed == 1

    def test_failover_moves_to_the_healthy_gateway(self, settings, units, policy):
        with FakeSmsServer(secret=SECRET, seed=1) as bad, FakeSmsServer(secret=SECRET, seed=2) as good:
            bad.control({"fail_rate": 1, "fail_kind": "temporary"})
            fake = "yiwang.notify.gateways.fake.FakeGateway"
            settings.YIWANG_SMS_GATEWAYS = [
                {"code": "primary", "class": fake, "url": bad.url, "secret": SECRET, "priority": 0},
                {"code": "backup", "class": fake, "url": good.url, "secret": SECRET, "priority": 1},
            ]
            settings.YIWANG_SMS_FAILOVER = {"min_sends": 20, "threshold": 0.3}
            gateways.reset()
            send_notice(units["edu"], 60)
            for _ in range(5):
                dispatch.dispatch_round(dispatch.NORMAL, batch=20)
            assert len(good.messages()) == 40  # the first 20 failed on primary; then primary is cooling down
            assert Message.objects.filter(gateway="backup", status=Message.Status.SENT).count() == 40
        gateways.reset()

    def test_test_sends_only_reach_the_fake_gateway(self, sms_server, units, policy):
        (message,) = send_notice(units["edu"], test=True)
        dispatch.dispatch_round(dispatch.NORMAL)
        message.refresh_from_db()
        assert message.gateway == "fake" and message.status == Message.Status.SENT


class _Hook(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(
            (body, self.headers.get("X-Yiwang-Signature"), self.headers.get("X-Yiwang-Timestamp"))
        )
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook(settings):
    settings.YIWANG_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]  # callbacks refuse loopback unless allowed
    _Hook.received, _Hook.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/receipt", _Hook
    server.shutdown()
    server.server_close()


class TestReceipts:
    def test_receipts_update_status_once_and_call_back(self, sms_server, units, policy, hook):
        url, handler = hook
        (message,) = send_notice(units["edu"], callback_url=url, reference="biz-1")
        dispatch.dispatch_round(dispatch.NORMAL)
        message.refresh_from_db()
        receipt = Receipt(provider_id=message.provider_id, status=ReceiptStatus.DELIVERED)
        assert services.receipts_apply(gateway_code="fake", receipts=[receipt]) == 1
        assert services.receipts_apply(gateway_code="fake", receipts=[receipt]) == 0  # repeated receipt
        message.refresh_from_db()
        assert message.status == Message.Status.DELIVERED
        assert UsageDay.objects.get(unit=units["edu"]).delivered == 1
        assert services.callbacks_send() == {"done": 1, "failed": 0}
        body, signature, timestamp = handler.received[0]
        assert json.loads(body)["reference"] == "biz-1" and json.loads(body)["status"] == "delivered"
        assert webhooks.verify(services.callback_secret(), body, timestamp, signature)

    def test_failed_callbacks_are_retried_with_backoff(self, sms_server, units, policy, hook):
        url, handler = hook
        handler.status = 500
        (message,) = send_notice(units["edu"], callback_url=url)
        dispatch.dispatch_round(dispatch.NORMAL)
        message.refresh_from_db()
        services.receipts_apply(gateway_code="fake", receipts=[Receipt(message.provider_id, ReceiptStatus.DELIVERED)])
        assert services.callbacks_send() == {"done": 0, "failed": 1}
        assert services.callbacks_send() == {"done": 0, "failed": 0}  # not due yet
        handler.status = 200
        with time_machine.travel(timezone.now() + dt.timedelta(seconds=11)):
            assert services.callbacks_send() == {"done": 1, "failed": 0}
        assert Callback.objects.get().attempts == 2


class TestReceiptRace:
    def test_a_receipt_that_overtakes_the_dispatcher_is_kept(self, sms_server, units, policy):
        (message,) = send_notice(units["edu"])
        claimed = dispatch.claim(Message.objects.all(), limit=1)  # sent, but the result not yet saved
        receipt = Receipt(provider_id="p-1", status=ReceiptStatus.DELIVERED, id=str(message.pk))
        assert services.receipts_apply(gateway_code="fake", receipts=[receipt]) == 1
        from yiwang.notify.gateways import SendResult, SendStatus

        dispatch._record(claimed, {str(message.pk): SendResult(str(message.pk), SendStatus.ACCEPTED, "fake", "p-1")},
                         "fake")  # fmt: skip
        message.refresh_from_db()
        assert message.status == Message.Status.DELIVERED and message.provider_id == "p-1"
        assert message.sent_at is not None
        usage = UsageDay.objects.get(unit=units["edu"])
        assert (usage.sent, usage.delivered) == (1, 1)

    @pytest.mark.parametrize("lost", ["timeout", "refused"])
    def test_a_receipt_counts_as_sent_when_the_gateways_answer_was_lost(self, sms_server, units, policy, lost):
        from yiwang.notify.gateways import SendResult, SendStatus

        (message,) = send_notice(units["edu"])
        claimed = dispatch.claim(Message.objects.all(), limit=1)
        receipt = Receipt(provider_id="p-1", status=ReceiptStatus.DELIVERED, id=str(message.pk))
        services.receipts_apply(gateway_code="fake", receipts=[receipt])
        status = SendStatus.TEMPORARY_FAILURE if lost == "timeout" else SendStatus.PERMANENT_FAILURE
        dispatch._record(claimed, {str(message.pk): SendResult(str(message.pk), status, "fake", error_code="x")},
                         "fake")  # fmt: skip
        message.refresh_from_db()
        assert message.status == Message.Status.DELIVERED and message.sent_at is not None
        usage = UsageDay.objects.get(unit=units["edu"])
        assert (usage.sent, usage.delivered, usage.failed) == (1, 1, 0)

    def test_quiet_hours_pause_mass_sends(self, sms_server, alice, units, notice):
        job = sending_job(alice, notice, 5)
        services.policy_save(actor=None, unit=None, quiet_start=dt.time(0), quiet_end=dt.time(23, 59))
        dispatch._policies.clear()
        assert dispatch.dispatch_round(dispatch.NORMAL) == 0
        assert Message.objects.filter(job=job, status=Message.Status.CREATED).count() == 5


def test_template_only_providers_get_code_values_and_signature(units, policy, notice, monkeypatch):
    """Aliyun-style gateways send a registered template: they need our code, the values and the sign name."""
    from yiwang.notify.gateways import SendResult, SendStatus

    seen = []

    class Recording:
        code = "recording"

        def send(self, batch):
            seen.extend(batch)
            return [SendResult(sms.id, SendStatus.ACCEPTED, "recording", f"r-{sms.id}") for sms in batch]

    monkeypatch.setattr(dispatch, "choose_gateway", lambda test=False: Recording())
    services.message_send(unit=notice.unit, mobile="13800138000", template=notice,
                          values={"姓名": "王小明", "日期": "周一"})  # fmt: skip
    assert dispatch.dispatch_round(dispatch.NORMAL) == 1
    (sms,) = seen
    assert (sms.template, sms.sign_name, dict(sms.values)) == ("exam", "北仑区政府", {"姓名": "王小明", "日期": "周一"})


def test_an_urgent_job_waits_for_its_confirmation(sms_server, alice, admin, units, policy):
    otp = services.template_save(actor=admin, unit=units["edu"], code="alarm", name="告警", kind="alarm",
                                 body="机房((机房))温度过高")  # fmt: skip
    upload = SimpleUploadedFile("名单.csv", "手机号,机房\n13800138000,一号\n".encode())
    job = services.job_validate(job=services.job_create(actor=alice, unit=units["edu"], template=otp, upload=upload))
    assert dispatch.dispatch_round(dispatch.URGENT) == 0 and dispatch.dispatch_round(dispatch.NORMAL) == 0
    services.job_confirm(actor=alice, job=job)
    services.job_start_due()
    assert dispatch.dispatch_round(dispatch.NORMAL) == 1
    assert accepted(sms_server)[0]["text"].endswith("机房一号温度过高")


@pytest.mark.django_db(transaction=True)
def test_a_live_dispatcher_renews_its_lease_during_a_slow_gateway_call(units, policy, monkeypatch, request):
    from yiwang.notify.gateways import SendResult, SendStatus

    request.addfinalizer(dispatch._codes.clear)  # the flush after this test reuses template ids

    (message,) = send_notice(units["edu"])
    claimed_at = []

    class Slow:
        code = "slow"

        def send(self, batch):
            first = Message.objects.get(pk=message.pk).claimed_at
            time.sleep(0.5)  # several beats
            claimed_at.extend([first, Message.objects.get(pk=message.pk).claimed_at])
            return [SendResult(sms.id, SendStatus.ACCEPTED, "slow", f"s-{sms.id}") for sms in batch]

    monkeypatch.setattr(dispatch, "HEARTBEAT", 0.1)
    monkeypatch.setattr(dispatch, "choose_gateway", lambda test=False: Slow())
    assert dispatch.dispatch_round(dispatch.NORMAL) == 1
    assert claimed_at[1] > claimed_at[0]  # renewed while the call lasted: the beat does not requeue it
    assert Message.objects.get(pk=message.pk).status == Message.Status.SENT
