"""Gateways: the fake gateway end to end over HTTP, the Aliyun adapter against a local server
that checks its signature, failover by error rate, and the registry built from settings.

Every server here is a real HTTP server on 127.0.0.1 in a thread; nothing leaves the machine.

What the Aliyun tests verify, honestly: ``sign()`` reproduces two examples published in
Alibaba Cloud's documentation (the SMS "HTTP protocol and signature" example and the RPC
signature example), and a second implementation of their documented algorithm, written
independently below, accepts every request the adapter sends. The response codes and the
receipt format are canned from their documentation; no request reaches Alibaba Cloud.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
from django.core.exceptions import ImproperlyConfigured

from yiwang.notify import gateways
from yiwang.notify.gateways import aliyun
from yiwang.notify.gateways.aliyun import AliyunGateway, classify
from yiwang.notify.gateways.base import (
    BadReceipt,
    BadSignature,
    Gateway,
    OutboundSms,
    ReceiptStatus,
    SendResult,
    SendStatus,
)
from yiwang.notify.gateways.failover import CLOSED, HALF_OPEN, OPEN, Failover, NoGatewayAvailable
from yiwang.notify.gateways.fake import FakeGateway, FakeGatewayError
from yiwang.notify.gateways.fake_server import SIGNATURE_HEADER, FakeSmsServer

SECRET = "test-secret-1234"
TEXT = "【北仑区政府】尊敬的王丽，您的社保卡已制作完成，请到区政务服务中心领取。"

# --- helpers -------------------------------------------------------------------------------


def sms(n: int, *, mobile: str | None = None, **kw) -> OutboundSms:
    return OutboundSms(id=str(n), mobile=mobile or f"1380000{n:04d}", text=TEXT, **kw)


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(handler_class):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class Recorder:
    """A receipt callback endpoint: records every POST; answers the given statuses, then 200."""

    def __init__(self, statuses=()):
        self.posts: list[tuple[str, dict, bytes]] = []
        self.statuses = list(statuses)
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with recorder.lock:
                    status = recorder.statuses.pop(0) if recorder.statuses else 200
                    if status == 200:
                        recorder.posts.append((self.path, dict(self.headers.items()), body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.handler = Handler

    def receipts(self, gateway: Gateway) -> list:
        with self.lock:
            posts = list(self.posts)
        return [r for _path, headers, body in posts for r in gateway.parse_receipts(body, headers)]

    def count(self) -> int:
        with self.lock:
            return sum(len(json.loads(body)["receipts"]) for _p, _h, body in self.posts)


@pytest.fixture
def recorder():
    rec = Recorder()
    with serve(rec.handler) as server:
        rec.url = f"http://127.0.0.1:{server.server_address[1]}/notify/receipts/fake/"
        yield rec


@pytest.fixture
def fake_server(recorder):
    with FakeSmsServer(secret=SECRET, seed=20260501, callback_url=recorder.url) as server:
        yield server


@pytest.fixture
def fake(fake_server):
    return FakeGateway(code="fake", url=fake_server.url, secret=SECRET, timeout=5)


# --- the fake gateway ----------------------------------------------------------------------


class TestFakeGateway:
    def test_a_batch_is_accepted_with_unique_ids_in_order(self, fake, fake_server):
        batch = [sms(n) for n in range(300)]
        results = fake.send(batch)
        assert [r.id for r in results] == [s.id for s in batch]
        assert all(r.status == SendStatus.ACCEPTED and r.gateway == "fake" for r in results)
        assert len({r.provider_id for r in results}) == 300
        kept = fake.messages(since=0, limit=1000)
        assert [(m["provider_id"], m["mobile"], m["text"]) for m in kept] == [
            (r.provider_id, s.mobile, TEXT) for r, s in zip(results, batch)
        ]
        assert fake.stats()["requests"] == 1

    def test_large_batches_are_cut_at_500_over_one_kept_alive_connection(self, fake):
        fake.send([sms(0)])
        connection = fake.http._local.conn
        results = fake.send([sms(n) for n in range(1200)])
        assert all(r.accepted for r in results)
        assert fake.stats()["requests"] == 1 + 3
        assert fake.http._local.conn is connection

    def test_bad_numbers_fail_permanently_and_are_not_sent(self, fake):
        results = fake.send([sms(1), sms(2, mobile="12345"), sms(3, mobile="+86 138-0013-8000")])
        assert [r.status for r in results] == [SendStatus.ACCEPTED, SendStatus.PERMANENT_FAILURE, SendStatus.ACCEPTED]
        assert results[1].error_code == "yiwang.MOBILE_INVALID"
        assert [m["mobile"] for m in fake.messages()] == ["13800000001", "13800138000"]
        assert fake.stats()["messages"] == 2

    def test_temporary_fail_rate_is_honoured(self, fake):
        fake.control(fail_rate=0.2, fail_kind="temporary")
        results = fake.send([sms(n) for n in range(2000)])
        failed = [r for r in results if r.status == SendStatus.TEMPORARY_FAILURE]
        assert 0.16 <= len(failed) / 2000 <= 0.24  # 2,000 draws: σ ≈ 0.009
        assert {r.error_code for r in failed} == {"FAKE_TEMPORARY"}
        assert all(r.provider_id == "" for r in failed)
        assert fake.stats()["temporary_failure"] == len(failed)

    def test_permanent_fail_rate_is_honoured(self, fake):
        fake.control(fail_rate=0.5, fail_kind="permanent")
        results = fake.send([sms(n) for n in range(1000)])
        failed = [r for r in results if r.status == SendStatus.PERMANENT_FAILURE]
        assert 0.44 <= len(failed) / 1000 <= 0.56
        assert {r.error_code for r in failed} == {"FAKE_PERMANENT"}
        fake.control(fail_rate=0)
        assert all(r.accepted for r in fake.send([sms(n) for n in range(100)]))

    def test_receipts_arrive_signed_and_verify(self, fake, recorder):
        results = fake.send([sms(n) for n in range(700)])
        wait_for(lambda: recorder.count() == 700)
        assert all(path == "/notify/receipts/fake/" for path, _h, _b in recorder.posts)
        assert len(recorder.posts) >= 2  # batched, at most 500 a post
        receipts = recorder.receipts(fake)
        assert {r.provider_id for r in receipts} == {r.provider_id for r in results}
        assert {r.id for r in receipts} == {r.id for r in results}
        assert all(r.status == ReceiptStatus.DELIVERED and r.time.tzinfo is not None for r in receipts)

    def test_undelivered_receipts(self, fake, recorder):
        fake.control(receipt_fail_rate=1)
        fake.send([sms(n) for n in range(5)])
        wait_for(lambda: recorder.count() == 5)
        receipts = recorder.receipts(fake)
        assert {(r.status, r.error_code) for r in receipts} == {(ReceiptStatus.PERMANENT_FAILURE, "UNDELIV")}

    def test_tampered_unsigned_or_foreign_receipts_are_refused(self, fake, recorder):
        fake.send([sms(1)])
        wait_for(lambda: recorder.count() == 1)
        _path, headers, body = recorder.posts[0]
        assert fake.parse_receipts(body, {k.lower(): v for k, v in headers.items()})  # any header case
        with pytest.raises(BadSignature):
            fake.parse_receipts(body.replace(b"delivered", b"permanent_failure"), headers)
        with pytest.raises(BadSignature):
            fake.parse_receipts(body, {k: v for k, v in headers.items() if k != SIGNATURE_HEADER})
        with pytest.raises(BadSignature):
            FakeGateway(url=fake.url, secret="another secret").parse_receipts(body, headers)
        junk = b'{"receipts": [{"status": "delivered"}]}'
        with pytest.raises(BadReceipt):
            fake.parse_receipts(junk, {SIGNATURE_HEADER: hmac.new(SECRET.encode(), junk, hashlib.sha256).hexdigest()})

    def test_receipts_are_retried_when_the_callback_fails(self):
        rec = Recorder(statuses=[500])
        with serve(rec.handler) as callback:
            url = f"http://127.0.0.1:{callback.server_address[1]}/cb?token=abc"
            with FakeSmsServer(secret=SECRET, callback_url=url) as server:
                gateway = FakeGateway(url=server.url, secret=SECRET)
                gateway.send([sms(n) for n in range(3)])
                wait_for(lambda: rec.count() == 3)  # the second attempt, a second later
                assert rec.posts[0][0] == "/cb?token=abc"
                # the server counts a receipt once the callback's answer is back, just after the recorder saw it
                wait_for(lambda: gateway.stats()["receipts_sent"] == 3)

    def test_a_wrong_secret_is_a_temporary_failure(self, fake_server):
        results = FakeGateway(url=fake_server.url, secret="wrong").send([sms(1)])
        assert (results[0].status, results[0].error_code) == (SendStatus.TEMPORARY_FAILURE, "HTTP_401")

    def test_down_is_a_temporary_failure(self, fake):
        fake.control(down=True)
        results = fake.send([sms(1), sms(2)])
        assert {(r.status, r.error_code) for r in results} == {(SendStatus.TEMPORARY_FAILURE, "HTTP_503")}
        fake.control(down=False)
        assert fake.send([sms(3)])[0].accepted

    def test_latency(self, fake):
        fake.control(latency_ms=200)
        started = time.monotonic()
        fake.send([sms(1)])
        assert time.monotonic() - started >= 0.2

    def test_connection_refused_is_a_temporary_failure(self):
        results = FakeGateway(url=f"http://127.0.0.1:{unused_port()}", secret=SECRET).send([sms(1)])
        assert (results[0].status, results[0].error_code) == (SendStatus.TEMPORARY_FAILURE, "yiwang.REFUSED")

    def test_control_refuses_bad_values_and_remote_callbacks(self, fake):
        for changes in ({"callback_url": "http://example.com/cb"}, {"fail_rate": 1.5}, {"fail_kind": "x"}, {"nope": 1}):
            with pytest.raises(FakeGatewayError, match="HTTP 400"):
                fake.control(**changes)

    def test_control_by_query_parameters(self, fake_server):
        conn = http.client.HTTPConnection("127.0.0.1", fake_server.port, timeout=5)
        conn.request("POST", "/control?fail_rate=0.25&fail_kind=permanent", headers={"X-Fake-Secret": SECRET})
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["behaviour"]["fail_rate"] == 0.25
        conn.request("GET", "/stats")  # no secret
        assert conn.getresponse().status == 401
        conn.close()

    def test_messages_since(self, fake):
        fake.send([sms(n) for n in range(10)])
        assert [m["seq"] for m in fake.messages(since=5)] == [6, 7, 8, 9, 10]
        assert [m["seq"] for m in fake.messages(since=2, limit=2)] == [3, 4]
        fake.control(reset=True)
        assert fake.messages() == [] and fake.stats()["accepted"] == 0


# --- Aliyun --------------------------------------------------------------------------------

# Alibaba Cloud SMS documentation, "HTTP协议及签名" (help.aliyun.com/document_detail/56189).
SMS_DOC_PARAMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
SMS_DOC_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123%26PhoneNumbers%3D15300000001"
    "%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF"
    "%25A1%25E6%25B5%258B%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce"
    "%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode%3DSMS_71390007%26TemplateParam"
    "%3D%257B%2522customer%2522%253A%2522test%2522%257D%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version"
    "%3D2017-05-25"
)


def reference_encode(value: str) -> str:
    """RFC 3986 percent-encoding, byte by byte, written from the spec (not with urllib)."""
    unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
    return "".join(chr(b) if chr(b) in unreserved else f"%{b:02X}" for b in value.encode("utf-8"))


def reference_sign(params: dict, secret: str, method: str) -> str:
    pairs = sorted((reference_encode(k), reference_encode(v)) for k, v in params.items() if k != "Signature")
    query = "&".join(f"{k}={v}" for k, v in pairs)
    to_sign = method + "&" + reference_encode("/") + "&" + reference_encode(query)
    return base64.b64encode(hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


class TestAliyunSignature:
    def test_the_published_sms_example(self):
        assert "GET&%2F&" + aliyun.percent_encode(aliyun.canonical_query(SMS_DOC_PARAMS)) == SMS_DOC_STRING_TO_SIGN
        assert aliyun.sign(SMS_DOC_PARAMS, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="

    def test_the_published_rpc_example(self):
        # Alibaba Cloud RPC signature documentation, the ECS DescribeRegions example.
        params = {
            "AccessKeyId": "testid",
            "Action": "DescribeRegions",
            "Format": "XML",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
            "SignatureVersion": "1.0",
            "Timestamp": "2016-02-23T12:46:24Z",
            "Version": "2014-05-26",
        }
        assert aliyun.sign(params, "testsecret", "GET") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="

    @pytest.mark.parametrize(
        ("raw", "encoded"),
        [("a b", "a%20b"), ("*", "%2A"), ("~-_.", "~-_."), ("/=&+", "%2F%3D%26%2B"), ("派", "%E6%B4%BE")],
    )
    def test_percent_encoding(self, raw, encoded):
        assert aliyun.percent_encode(raw) == encoded == reference_encode(raw)

    def test_the_reference_implementation_agrees(self):
        assert reference_sign(SMS_DOC_PARAMS, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


class AliyunStub:
    """A local dysmsapi: checks every signature with ``reference_sign``; canned answers by number.

    13900000002 → flow control, 13900000003 → illegal number (a batch holding it is refused
    whole, as theirs is), 13900000005 → HTTP 500, 13900000006 → answers after 2 s.
    """

    KEY_ID, SECRET = "LTAI-test-key", "test-access-key-secret"

    def __init__(self):
        self.calls: list[dict] = []
        self.nonces: set[str] = set()
        self.biz = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def reply(self, status: int, payload) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the slow answer: the adapter has given up waiting

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = dict(parse_qsl(raw, keep_blank_values=True))
                status, payload = stub.answer(params)
                if status == "slow":
                    time.sleep(2)
                    status = 200
                self.reply(status, payload)

        self.handler = Handler

    def answer(self, params: dict):
        fixed = {"AccessKeyId": self.KEY_ID, "Format": "JSON", "SignatureMethod": "HMAC-SHA1",
                 "SignatureVersion": "1.0", "Version": "2017-05-25", "RegionId": "cn-hangzhou"}  # fmt: skip
        if any(params.get(k) != v for k, v in fixed.items()) or params.get("SignatureNonce") in self.nonces:
            return 400, {"Code": "InvalidParameter", "Message": "bad common parameters"}
        dt.datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        if params.get("Signature") != reference_sign(params, self.SECRET, "POST"):
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched."}
        self.nonces.add(params["SignatureNonce"])
        self.calls.append(params)
        if params["Action"] == "SendSms":
            numbers = [params["PhoneNumbers"]]
        else:
            numbers = json.loads(params["PhoneNumberJson"])
            assert (
                len(numbers) == len(json.loads(params["SignNameJson"])) == len(json.loads(params["TemplateParamJson"]))
            )
        if "13900000005" in numbers:
            return 500, b"<html>Internal Server Error</html>"
        if "13900000006" in numbers:
            return "slow", {"Code": "OK", "BizId": "late", "Message": "OK"}
        if "13900000003" in numbers:
            return 200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": "r"}
        if "13900000002" in numbers:
            return 200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控Permits:1", "RequestId": "r"}
        self.biz += 1
        return 200, {"Code": "OK", "Message": "OK", "BizId": f"90000{self.biz}^0", "RequestId": "r"}


@pytest.fixture
def stub():
    stub = AliyunStub()
    with serve(stub.handler) as server:
        stub.endpoint = f"http://127.0.0.1:{server.server_address[1]}/"
        yield stub


def aliyun_gateway(stub, **kw) -> AliyunGateway:
    options = {
        "access_key_id": AliyunStub.KEY_ID,
        "access_key_secret": AliyunStub.SECRET,
        "endpoint": stub.endpoint,
        "templates": {"notice": {"code": "SMS_100001", "params": {"姓名": "name"}}, "code": "SMS_100002"},
        "receipt_token": "tok-123",
        "timeout": 0.5,
        **kw,
    }
    return AliyunGateway(**options)


def ali(n: int, mobile: str, template: str = "notice", **kw) -> OutboundSms:
    return OutboundSms(id=str(n), mobile=mobile, text=TEXT, sign_name="北仑区政府", template=template, **kw)


class TestAliyunGateway:
    def test_one_message_is_sent_with_send_sms(self, stub):
        result = aliyun_gateway(stub).send([ali(7, "139-0000-0001", values={"姓名": "王\n丽"})])[0]
        assert (result.status, result.provider_id) == (SendStatus.ACCEPTED, "900001^0:13900000001")
        call = stub.calls[0]
        assert call["Action"] == "SendSms"
        assert (call["PhoneNumbers"], call["SignName"], call["TemplateCode"]) == (
            "13900000001",
            "北仑区政府",
            "SMS_100001",
        )
        assert json.loads(call["TemplateParam"]) == {"name": "王 丽"}
        assert call["OutId"] == "7"

    def test_a_batch_is_one_send_batch_sms(self, stub):
        batch = [ali(n, f"1390000001{n}", values={"姓名": f"人{n}"}) for n in range(3)]
        results = aliyun_gateway(stub).send(batch)
        assert [r.provider_id for r in results] == [
            "900001^0:13900000010",
            "900001^0:13900000011",
            "900001^0:13900000012",
        ]
        (call,) = stub.calls
        assert call["Action"] == "SendBatchSms"
        assert json.loads(call["PhoneNumberJson"]) == ["13900000010", "13900000011", "13900000012"]
        assert json.loads(call["SignNameJson"]) == ["北仑区政府"] * 3
        assert json.loads(call["TemplateParamJson"]) == [{"name": "人0"}, {"name": "人1"}, {"name": "人2"}]

    def test_batches_are_cut_at_100_by_template_and_unique_numbers(self, stub):
        batch = [ali(n, f"137{n:08d}") for n in range(150)]
        batch += [ali(200, "13900000010", template="code"), ali(201, "13900000010", template="code")]
        results = aliyun_gateway(stub).send(batch)
        assert all(r.accepted for r in results)
        sizes = sorted(len(json.loads(c.get("PhoneNumberJson", "[0]"))) for c in stub.calls)
        assert sizes == [1, 1, 50, 100]  # the two "code" messages to one number go in separate calls
        assert results[-1].provider_id != results[-2].provider_id

    def test_flow_control_is_temporary(self, stub):
        result = aliyun_gateway(stub).send([ali(1, "13900000002")])[0]
        assert (result.status, result.error_code) == (SendStatus.TEMPORARY_FAILURE, "isv.BUSINESS_LIMIT_CONTROL")
        assert "流控" in result.error_message

    def test_an_illegal_number_is_permanent(self, stub):
        result = aliyun_gateway(stub).send([ali(1, "13900000003")])[0]
        assert (result.status, result.error_code) == (SendStatus.PERMANENT_FAILURE, "isv.MOBILE_NUMBER_ILLEGAL")

    def test_a_batch_refused_for_one_number_is_resent_one_by_one(self, stub):
        batch = [ali(1, "13900000001"), ali(2, "13900000003"), ali(3, "13900000004")]
        results = aliyun_gateway(stub).send(batch)
        assert [r.status for r in results] == [SendStatus.ACCEPTED, SendStatus.PERMANENT_FAILURE, SendStatus.ACCEPTED]
        assert [c["Action"] for c in stub.calls] == ["SendBatchSms", "SendSms", "SendSms", "SendSms"]

    def test_http_500_is_temporary(self, stub):
        result = aliyun_gateway(stub).send([ali(1, "13900000005")])[0]
        assert (result.status, result.error_code) == (SendStatus.TEMPORARY_FAILURE, "HTTP_500")

    def test_a_timeout_is_temporary_and_says_so(self, stub):
        result = aliyun_gateway(stub, timeout=0.3).send([ali(1, "13900000006")])[0]
        assert (result.status, result.error_code) == (SendStatus.TEMPORARY_FAILURE, "yiwang.TIMEOUT")

    def test_connection_refused_is_temporary(self):
        gateway = AliyunGateway(access_key_id="k", access_key_secret="s", endpoint=f"http://127.0.0.1:{unused_port()}/")
        result = gateway.send([ali(1, "13900000001", template="SMS_1")])[0]
        assert (result.status, result.error_code) == (SendStatus.TEMPORARY_FAILURE, "yiwang.REFUSED")

    def test_a_wrong_secret_is_refused_by_the_server_and_temporary(self, stub):
        result = aliyun_gateway(stub, access_key_secret="not-the-secret").send([ali(1, "13900000001")])[0]
        assert (result.status, result.error_code) == (SendStatus.TEMPORARY_FAILURE, "SignatureDoesNotMatch")
        assert stub.calls == []

    def test_unmapped_template_or_missing_sign_name_fail_without_a_call(self, stub):
        gateway = aliyun_gateway(stub)
        unsigned_sms = OutboundSms(id="2", mobile="13900000001", text=TEXT, template="notice")
        unmapped, unsigned = gateway.send([ali(1, "13900000001", template="other"), unsigned_sms])
        assert unmapped.error_code == "yiwang.TEMPLATE_NOT_MAPPED"
        assert unsigned.error_code == "yiwang.SIGN_NAME_MISSING"
        assert {unmapped.status, unsigned.status} == {SendStatus.PERMANENT_FAILURE}
        assert stub.calls == []

    def test_a_template_code_of_theirs_passes_through(self, stub):
        assert aliyun_gateway(stub).send([ali(1, "13900000001", template="SMS_555")])[0].accepted
        assert stub.calls[0]["TemplateCode"] == "SMS_555"

    @pytest.mark.parametrize(
        ("code", "status"),
        [
            ("OK", SendStatus.ACCEPTED),
            ("isv.BUSINESS_LIMIT_CONTROL", SendStatus.TEMPORARY_FAILURE),
            ("isv.AMOUNT_NOT_ENOUGH", SendStatus.TEMPORARY_FAILURE),
            ("isv.DAY_LIMIT_CONTROL", SendStatus.TEMPORARY_FAILURE),
            ("isp.SYSTEM_ERROR", SendStatus.TEMPORARY_FAILURE),
            ("SignatureDoesNotMatch", SendStatus.TEMPORARY_FAILURE),
            ("isv.MOBILE_NUMBER_ILLEGAL", SendStatus.PERMANENT_FAILURE),
            ("isv.SMS_TEMPLATE_ILLEGAL", SendStatus.PERMANENT_FAILURE),
            ("isv.BLACK_KEY_CONTROL_LIMIT", SendStatus.PERMANENT_FAILURE),
            ("isv.SOMETHING_NEW", SendStatus.PERMANENT_FAILURE),
            ("Something.Unknown", SendStatus.TEMPORARY_FAILURE),
        ],
    )
    def test_classify(self, code, status):
        assert classify(code) == status


class TestAliyunReceipts:
    REPORT = [
        {"phone_number": "13900000010", "send_time": "2026-05-01 09:00:00", "report_time": "2026-05-01 09:00:05",
         "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1",
         "biz_id": "900001^0", "out_id": "7"},
        {"phone_number": "13900000011", "send_time": "2026-05-01 09:00:00", "report_time": "2026-05-01 09:01:00",
         "success": False, "err_code": "MK:0001", "err_msg": "空号", "sms_size": "1", "biz_id": "900001^0", "out_id": ""},
    ]  # fmt: skip

    def test_an_sms_report_push_is_read(self, stub):
        body = json.dumps(self.REPORT, ensure_ascii=False).encode()
        delivered, failed = aliyun_gateway(stub).parse_receipts(body, {}, {"token": "tok-123"})
        assert (delivered.provider_id, delivered.status, delivered.id) == (
            "900001^0:13900000010",
            ReceiptStatus.DELIVERED,
            "7",
        )
        assert delivered.time == dt.datetime(2026, 5, 1, 1, 0, 5, tzinfo=dt.UTC)  # 09:00:05 Beijing time
        assert (failed.status, failed.error_code, failed.error_message) == (
            ReceiptStatus.PERMANENT_FAILURE,
            "MK:0001",
            "空号",
        )
        assert json.loads(aliyun_gateway(stub).receipt_ack()) == {"code": 0, "msg": "接收成功"}

    @pytest.mark.parametrize("query", [{}, {"token": ""}, {"token": "tok-1234"}, None])
    def test_a_push_without_the_token_is_refused(self, stub, query):
        with pytest.raises(BadSignature):
            aliyun_gateway(stub).parse_receipts(json.dumps(self.REPORT).encode(), {}, query)

    def test_no_configured_token_refuses_everything(self, stub):
        with pytest.raises(BadSignature):
            aliyun_gateway(stub, receipt_token="").parse_receipts(b"[]", {}, {"token": ""})

    @pytest.mark.parametrize(
        "body", [b"not json", b"{}", b'[{"success": true}]', b'[{"phone_number": "1", "biz_id": "2"}]']
    )
    def test_unreadable_pushes(self, stub, body):
        with pytest.raises(BadReceipt):
            aliyun_gateway(stub).parse_receipts(body, {}, {"token": "tok-123"})


# --- failover ------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted(Gateway):
    """A gateway in memory: every message gets ``self.outcome``."""

    def __init__(self, code: str, **kw):
        super().__init__(code=code, **kw)
        self.outcome = SendStatus.ACCEPTED
        self.sent = 0

    def send_chunk(self, chunk):
        self.sent += len(chunk)
        if self.outcome == SendStatus.ACCEPTED:
            return [self.accepted(s, f"{self.code}-{s.id}") for s in chunk]
        return [self.failure(s, self.outcome, "X") for s in chunk]

    def parse_receipts(self, body, headers, query=None):
        raise NotImplementedError


def batch_of(n: int) -> list[OutboundSms]:
    return [sms(i) for i in range(n)]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def pair(clock):
    primary, backup = Scripted("primary", priority=0), Scripted("backup", priority=1)
    return primary, backup, Failover([primary, backup], clock=clock)


class TestFailover:
    def test_weights_share_a_priority_tier_deterministically(self, clock):
        a, b, c = Scripted("a", weight=3), Scripted("b", weight=1), Scripted("c", weight=1, priority=1)
        failover = Failover([a, b, c], clock=clock)
        chosen = [failover.choose().code for _ in range(8)]
        assert chosen == ["a", "a", "b", "a", "a", "a", "b", "a"]

    def test_the_preferred_priority_takes_everything_while_healthy(self, pair):
        primary, backup, failover = pair
        for _ in range(10):
            failover.send(batch_of(10))
        assert (primary.sent, backup.sent) == (100, 0)

    def test_trips_above_30_percent_temporary_over_20(self, pair):
        primary, _backup, failover = pair
        failover.record("primary", [SendStatus.TEMPORARY_FAILURE] * 6 + [SendStatus.ACCEPTED] * 14)  # 30%: not above
        assert failover.choose() is primary
        failover.record("primary", [SendStatus.TEMPORARY_FAILURE])  # 7 of 21
        assert failover.status()[0]["state"] == OPEN
        assert failover.choose().code == "backup"

    def test_needs_at_least_20_sends(self, pair):
        primary, _backup, failover = pair
        failover.record("primary", [SendStatus.TEMPORARY_FAILURE] * 19)
        assert failover.choose() is primary
        failover.record("primary", [SendStatus.TEMPORARY_FAILURE])
        assert failover.choose().code == "backup"

    def test_permanent_failures_do_not_count(self, pair):
        primary, _backup, failover = pair
        primary.outcome = SendStatus.PERMANENT_FAILURE
        for _ in range(5):
            failover.send(batch_of(20))
        assert failover.choose() is primary

    def test_old_outcomes_leave_the_window(self, pair, clock):
        primary, _backup, failover = pair
        failover.record("primary", [SendStatus.TEMPORARY_FAILURE] * 19)
        clock.now += 61
        failover.record("primary", [SendStatus.TEMPORARY_FAILURE])
        assert failover.choose() is primary
        assert failover.status()[0]["sends"] == 1

    def test_switches_away_and_comes_back_after_the_cool_down(self, pair, clock):
        primary, backup, failover = pair
        primary.outcome = SendStatus.TEMPORARY_FAILURE
        assert {r.gateway for r in failover.send(batch_of(20))} == {"primary"}
        results = failover.send(batch_of(20))
        assert {(r.gateway, r.status) for r in results} == {("backup", SendStatus.ACCEPTED)}
        clock.now += 29
        assert failover.choose() is backup
        primary.outcome = SendStatus.ACCEPTED
        clock.now += 1
        assert failover.choose() is primary  # half-open: the probe
        assert failover.status()[0]["state"] == HALF_OPEN
        assert failover.choose() is backup  # one probe at a time
        failover.record("primary", [SendStatus.ACCEPTED] * 5)
        assert failover.status()[0]["state"] == CLOSED
        assert failover.choose() is primary and failover.choose() is primary

    def test_a_failed_probe_opens_it_for_another_cool_down(self, pair, clock):
        primary, backup, failover = pair
        primary.outcome = SendStatus.TEMPORARY_FAILURE
        failover.send(batch_of(20))
        clock.now += 30
        assert {r.gateway for r in failover.send(batch_of(3))} == {"primary"}  # the probe fails
        assert failover.choose() is backup
        clock.now += 29
        assert failover.choose() is backup
        clock.now += 1
        assert failover.choose() is primary
        assert failover.status()[0]["trips"] == 2

    def test_a_lost_probe_expires(self, pair, clock):
        primary, backup, failover = pair
        failover.record("primary", [SendStatus.TEMPORARY_FAILURE] * 20)
        clock.now += 30
        assert failover.choose() is primary  # its outcome never comes back
        assert failover.choose() is backup
        clock.now += 30
        assert failover.choose() is primary

    def test_when_all_are_cooling_down(self, pair):
        _primary, _backup, failover = pair
        failover.record("primary", [SendStatus.TEMPORARY_FAILURE] * 20)
        failover.record("backup", [SendStatus.TEMPORARY_FAILURE] * 20)
        with pytest.raises(NoGatewayAvailable):
            failover.choose()
        results = failover.send(batch_of(2))
        assert {(r.status, r.error_code, r.gateway) for r in results} == {
            (SendStatus.TEMPORARY_FAILURE, "yiwang.NO_GATEWAY", "")
        }

    def test_results_or_statuses_are_recorded_and_unknown_codes_ignored(self, pair):
        _primary, _backup, failover = pair
        failover.record("nobody", [SendStatus.TEMPORARY_FAILURE] * 50)
        failover.record("primary", [SendResult("1", SendStatus.TEMPORARY_FAILURE, "primary")] * 20)
        assert failover.choose().code == "backup"

    def test_with_real_fake_gateways(self, clock):
        with FakeSmsServer(secret=SECRET) as one, FakeSmsServer(secret=SECRET) as two:
            primary = FakeGateway(code="one", url=one.url, secret=SECRET, priority=0)
            backup = FakeGateway(code="two", url=two.url, secret=SECRET, priority=1)
            failover = Failover([primary, backup], clock=clock)
            primary.control(down=True)
            gateways_used = [{r.gateway for r in failover.send(batch_of(10))} for _ in range(4)]
            assert gateways_used == [{"one"}, {"one"}, {"two"}, {"two"}]
            primary.control(down=False)
            clock.now += 30
            assert [{r.gateway for r in failover.send(batch_of(10))} for _ in range(2)] == [{"one"}, {"one"}]
            assert (primary.stats()["accepted"], backup.stats()["accepted"]) == (20, 20)


# --- the registry --------------------------------------------------------------------------


class TestRegistry:
    def test_default_is_the_fake_gateway_on_loopback(self, settings):
        settings.YIWANG_SMS_GATEWAYS = None
        (gateway,) = gateways.gateways()
        assert isinstance(gateway, FakeGateway) and gateway.url == "http://127.0.0.1:8925"
        assert gateways.get_gateway("fake") is gateway is gateways.choose_gateway(test=True)

    def test_built_from_settings(self, settings):
        settings.YIWANG_SMS_GATEWAYS = [
            {"code": "ali", "class": "yiwang.notify.gateways.aliyun.AliyunGateway", "priority": 0,
             "access_key_id": "k", "access_key_secret": "s", "endpoint": "http://127.0.0.1:9/"},
            {"code": "fake", "class": "yiwang.notify.gateways.fake.FakeGateway", "priority": 1, "weight": 2,
             "url": "http://127.0.0.1:9", "secret": "x"},
        ]  # fmt: skip
        ali_gateway, fake_gateway = gateways.gateways()
        assert isinstance(ali_gateway, AliyunGateway) and ali_gateway.code == "ali"
        assert (fake_gateway.weight, fake_gateway.priority, fake_gateway.secret) == (2, 1, "x")
        assert gateways.choose_gateway() is ali_gateway
        assert gateways.choose_gateway(test=True) is fake_gateway
        with pytest.raises(gateways.UnknownGateway):
            gateways.get_gateway("nope")

    def test_outcomes_drive_the_shared_failover(self, settings):
        settings.YIWANG_SMS_GATEWAYS = [
            {"code": "a", "class": "yiwang.notify.gateways.fake.FakeGateway", "url": "http://127.0.0.1:9"},
        ]
        settings.YIWANG_SMS_FAILOVER = {"min_sends": 5}
        gateways.record_outcome("a", [SendStatus.TEMPORARY_FAILURE] * 5)
        stand_in = gateways.choose_gateway()
        assert stand_in.code == ""
        (result,) = stand_in.send([sms(1)])
        assert (result.status, result.error_code) == (SendStatus.TEMPORARY_FAILURE, "yiwang.NO_GATEWAY")
        assert gateways.choose_gateway(test=True).code == "fake"  # test sends: a separate fake

    def test_settings_changes_rebuild_it(self, settings):
        settings.YIWANG_SMS_GATEWAYS = [{"code": "x", "class": "yiwang.notify.gateways.fake.FakeGateway"}]
        assert gateways.gateways()[0].code == "x"
        settings.YIWANG_SMS_GATEWAYS = [{"code": "y", "class": "yiwang.notify.gateways.fake.FakeGateway"}]
        assert gateways.gateways()[0].code == "y"

    @pytest.mark.parametrize(
        ("specs", "test_code"),
        [
            ([{"code": "a", "class": "yiwang.notify.gateways.fake.FakeGateway"}] * 2, "fake"),
            ([{"class": "yiwang.notify.gateways.fake.FakeGateway"}], "fake"),
            ([{"code": "a", "class": "yiwang.notify.text.TooLong"}], "fake"),
            ([{"code": "ali", "class": "yiwang.notify.gateways.aliyun.AliyunGateway",
               "access_key_id": "k", "access_key_secret": "s"}], "ali"),
        ],
    )  # fmt: skip
    def test_misconfiguration(self, settings, specs, test_code):
        settings.YIWANG_SMS_GATEWAYS = specs
        settings.YIWANG_SMS_TEST_GATEWAY = test_code
        with pytest.raises(ImproperlyConfigured):
            gateways.gateways()
