"""Subscriptions (订阅): subscribing with a grant, the SSRF guard, pulling by cursor (granted items
only, audited), signed pushes to a real loopback server, backoff and switching off, pages and API."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from yiwang.core import webhooks
from yiwang.core.models import AuditEntry, Notice
from yiwang.exchange import services, subscriptions
from yiwang.exchange.models import Change, Subscription

from .conftest import resident_id, resident_save

pytestmark = pytest.mark.django_db

API = "/api/exchange/subscriptions/"
T0 = dt.datetime(2026, 5, 11, 2, 0, tzinfo=dt.UTC)


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((body, dict(self.headers)))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    """A consumer's webhook endpoint: a real HTTP server on 127.0.0.1, allowed for webhooks."""
    settings.YIWANG_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    _Receiver.received, _Receiver.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver
    server.shutdown()
    server.server_close()


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def key_client(raw: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Api-Key {raw}")


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


@pytest.fixture
def subscribed(edu_grant, resident, alice, receiver):
    """The enrolment system follows 人口基础信息 with a webhook; returns (subscription, secret)."""
    return subscriptions.subscription_save(
        actor=alice, system=edu_grant.system, resource_code=edu_grant.resource_code, webhook_url=receiver[0]
    )


def change_address(key: str, address: str):
    return resident_save(key, address=address)


class TestSubscribe:
    def test_needs_a_live_grant(self, edu_grant, fin_system, bob, alice, resident_entry):
        with pytest.raises(PermissionDenied, match="未获得此资源的共享授权"):
            subscriptions.subscription_save(actor=bob, system=fin_system, resource_code=resident_entry.code)
        with pytest.raises(PermissionDenied, match="本单位的业务系统"):
            subscriptions.subscription_save(actor=alice, system=fin_system, resource_code=resident_entry.code)
        with pytest.raises(ValidationError) as info:
            subscriptions.subscription_save(actor=alice, system=edu_grant.system, resource_code="301001001/000042")
        assert "resource_code" in info.value.message_dict

    def test_secret_is_generated_once_and_the_cursor_starts_now(self, edu_grant, resident, alice):
        latest = Change.objects.order_by("-id").first().pk
        subscription, secret = subscriptions.subscription_save(
            actor=alice, system=edu_grant.system, resource_code=edu_grant.resource_code
        )
        assert len(secret) == 64 and subscription.secret == secret and subscription.cursor == latest
        assert subscription.unit_id == edu_grant.unit_id and subscription.webhook_url == ""
        again, second = subscriptions.subscription_save(
            actor=alice, system=edu_grant.system, resource_code=edu_grant.resource_code
        )
        assert again.pk == subscription.pk and second == ""
        subscriptions.subscription_cancel(actor=alice, subscription=subscription)
        revived, third = subscriptions.subscription_save(
            actor=alice, system=edu_grant.system, resource_code=edu_grant.resource_code
        )
        assert revived.active and third and third != secret  # a re-activated subscription gets a new secret
        assert AuditEntry.objects.filter(action="exchange.subscription.save").count() == 3

    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.1/hook",
            "http://127.0.0.1:8000/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data/",
            "file:///etc/passwd",
            "ftp://example.com/",
            "http://localhost/",
        ],
    )
    def test_webhooks_to_internal_addresses_are_refused(self, edu_grant, alice, url):
        with pytest.raises(ValidationError) as info:
            subscriptions.subscription_save(
                actor=alice, system=edu_grant.system, resource_code=edu_grant.resource_code, webhook_url=url
            )
        assert list(info.value.message_dict) == ["webhook_url"]
        assert not Subscription.objects.exists()


class TestPull:
    def test_pull_by_cursor_returns_only_granted_items(self, edu_grant, resident, edu_system):
        start = Change.objects.order_by("-id").first().pk
        other = resident_save(resident_id(seq="456"))  # created
        resident_save(resident.id_number, phone="13900000000")  # phone is not granted: skipped
        resident_save(resident.id_number, address="新地址 1 号", phone="13900000001")  # address is
        changes, cursor = subscriptions.changes_pull(
            system=edu_system, resource_code=edu_grant.resource_code, cursor=start, limit=100
        )
        assert [c["op"] for c in changes] == ["created", "updated"]
        created, updated = changes
        assert "phone" not in created["items"] and set(created["items"]) <= set(edu_grant.items)
        assert updated["items"] == ["address"]
        assert cursor == Change.objects.order_by("-id").first().pk
        # the key is personal and not granted in plain text: masked like the item
        assert created["key"] == other.id_number[:6] + "********" + other.id_number[-4:]
        assert subscriptions.changes_pull(
            system=edu_system, resource_code=edu_grant.resource_code, cursor=cursor, limit=100
        ) == ([], cursor)

    def test_limit_pages_and_the_cursor_moves_past_skipped_lines(self, edu_grant, resident, edu_system):
        start = Change.objects.order_by("-id").first().pk
        for n in range(3):
            resident_save(resident.id_number, phone=f"1390000000{n}")  # all invisible to the grant
        resident_save(resident.id_number, address="新地址 2 号")
        page = subscriptions.changes_pull_page(
            system=edu_system, resource_code=edu_grant.resource_code, cursor=start, limit=2
        )
        assert page["changes"] == [] and page["has_more"] and page["next_cursor"] == start + 2
        page = subscriptions.changes_pull_page(
            system=edu_system, resource_code=edu_grant.resource_code, cursor=page["next_cursor"], limit=2
        )
        assert [c["items"] for c in page["changes"]] == [["address"]] and not page["has_more"]

    def test_a_plain_text_grant_sees_the_key(self, resident_entry, resident, edu_system, alice, psb_head):
        request = services.request_create(
            actor=alice, system=edu_system, entry=resident_entry, items=["id_number", "address"],
            unmasked=["id_number"], purpose="学籍核验需要完整证件号",
        )  # fmt: skip
        services.request_decide(actor=psb_head, request=request, approve=True, reason="同意")
        resident_save(resident.id_number, address="新地址 3 号")
        changes, _cursor = subscriptions.changes_pull(
            system=edu_system, resource_code=resident_entry.code, cursor=0, limit=100
        )
        assert changes[-1]["key"] == resident.id_number

    @pytest.mark.parametrize(
        ("cursor", "limit", "field"),
        [(-1, 10, "cursor"), ("abc", 10, "cursor"), (0, 0, "limit"), (0, 101, "limit"), (0, "x", "limit")],
    )
    def test_bad_cursor_or_limit(self, edu_grant, edu_system, cursor, limit, field):
        with pytest.raises(ValidationError) as info:
            subscriptions.changes_pull(system=edu_system, resource_code=edu_grant.resource_code, cursor=cursor,
                                       limit=limit)  # fmt: skip
        assert field in info.value.message_dict

    def test_no_grant_no_changes_and_every_pull_is_audited(self, edu_grant, resident, edu_system, fin_system):
        with pytest.raises(PermissionDenied):
            subscriptions.changes_pull(system=fin_system, resource_code=edu_grant.resource_code, cursor=0, limit=10)
        denied = AuditEntry.objects.get(action="exchange.changes", actor_id=fin_system.account_id)
        assert denied.changes["error"] == "not_granted" and denied.object_id == edu_grant.resource_code
        subscriptions.changes_pull(system=edu_system, resource_code=edu_grant.resource_code, cursor=0, limit=10)
        served = AuditEntry.objects.get(action="exchange.changes", actor_id=edu_system.account_id)
        assert served.object_type == "exchange.resource" and served.object_id == edu_grant.resource_code
        assert served.changes["system"] == edu_system.name and served.changes["cursor"] == 0
        assert served.changes["count"] >= 1 and served.unit_id == edu_system.unit_id

    def test_a_revoked_grant_stops_the_pull(self, edu_grant, edu_system, psb_head):
        services.grant_revoke(actor=psb_head, grant=edu_grant, reason="停止使用")
        with pytest.raises(PermissionDenied):
            subscriptions.changes_pull(system=edu_system, resource_code=edu_grant.resource_code, cursor=0, limit=10)


class TestPush:
    def test_changes_are_pushed_signed_and_the_cursor_moves(self, subscribed, resident, receiver, edu_system):
        subscription, secret = subscribed
        _url, handler = receiver
        assert subscriptions.subscriptions_push() == 0  # nothing waiting
        change_address(resident.id_number, "大碶街道 5 号")
        assert subscriptions.subscriptions_push() == 1
        (body, headers) = handler.received[0]
        assert webhooks.verify(secret, body, headers["X-Yiwang-Timestamp"], headers["X-Yiwang-Signature"])
        assert not webhooks.verify("wrong", body, headers["X-Yiwang-Timestamp"], headers["X-Yiwang-Signature"])
        payload = json.loads(body)
        assert payload["subscription"] == subscription.pk and payload["resource"] == subscription.resource_code
        assert [c["items"] for c in payload["changes"]] == [["address"]]
        subscription.refresh_from_db()
        assert subscription.cursor == payload["next_cursor"] == Change.objects.order_by("-id").first().pk
        assert subscription.last_pushed_at is not None and subscription.failures == 0
        assert subscriptions.subscriptions_push() == 0 and len(handler.received) == 1
        push = AuditEntry.objects.get(action="exchange.changes.push")
        assert push.actor_id == edu_system.account_id and push.changes["count"] == 1

    def test_failures_back_off_exponentially_up_to_six_hours(self, subscribed, resident, receiver):
        subscription, _secret = subscribed
        _url, handler = receiver
        handler.status = 500
        change_address(resident.id_number, "大碶街道 6 号")
        assert subscriptions.subscriptions_push(now=T0) == 0
        subscription.refresh_from_db()
        assert subscription.failures == 1 and subscription.next_attempt_at == T0 + dt.timedelta(minutes=1)
        assert subscription.last_error == "HTTP 500" and subscription.active
        assert subscriptions.subscriptions_push(now=T0 + dt.timedelta(seconds=30)) == 0  # not due yet
        assert len(handler.received) == 1
        t1 = T0 + dt.timedelta(minutes=1)
        subscriptions.subscriptions_push(now=t1)
        subscription.refresh_from_db()
        assert subscription.failures == 2 and subscription.next_attempt_at == t1 + dt.timedelta(minutes=2)
        assert [subscriptions.backoff(n) for n in (1, 2, 3, 4)] == [dt.timedelta(minutes=m) for m in (1, 2, 4, 8)]
        assert subscriptions.backoff(10) == dt.timedelta(hours=6) == subscriptions.backoff(19)
        handler.status = 204
        t2 = t1 + dt.timedelta(minutes=2)
        assert subscriptions.subscriptions_push(now=t2) == 1
        subscription.refresh_from_db()
        assert subscription.failures == 0 and subscription.last_error == "" and subscription.next_attempt_at is None

    def test_after_twenty_failures_it_is_switched_off_and_the_unit_told(
        self, subscribed, resident, receiver, carol, alice
    ):
        subscription, _secret = subscribed
        _url, handler = receiver
        handler.status = 503
        Subscription.objects.filter(pk=subscription.pk).update(failures=19)
        change_address(resident.id_number, "大碶街道 7 号")
        subscriptions.subscriptions_push(now=T0)
        subscription.refresh_from_db()
        assert not subscription.active and subscription.failures == 20 and subscription.next_attempt_at is None
        notice = Notice.objects.get(recipient_id=carol.pk)  # the consumer unit's leader
        assert "连续失败 20 次" in notice.title
        assert subscriptions.subscriptions_push(now=T0 + dt.timedelta(days=1)) == 0  # off means off
        handler.status = 200
        subscriptions.subscription_retry(actor=alice, subscription=subscription)
        assert subscriptions.subscriptions_push() == 1

    def test_a_refused_address_is_a_failure_not_a_post(self, subscribed, resident, receiver, settings):
        subscription, _secret = subscribed
        settings.YIWANG_WEBHOOK_ALLOWED_HOSTS = []  # the check runs again at push time
        change_address(resident.id_number, "大碶街道 8 号")
        assert subscriptions.subscriptions_push(now=T0) == 0
        subscription.refresh_from_db()
        assert subscription.failures == 1 and "不允许推送" in subscription.last_error
        assert receiver[1].received == []

    def test_a_revoked_grant_stops_the_subscription(self, subscribed, resident, receiver, psb_head, edu_grant):
        subscription, _secret = subscribed
        change_address(resident.id_number, "大碶街道 9 号")
        services.grant_revoke(actor=psb_head, grant=edu_grant, reason="到期停用")
        assert subscriptions.subscriptions_push() == 0
        subscription.refresh_from_db()
        assert not subscription.active and "授权" in subscription.last_error
        assert receiver[1].received == []

    def test_a_claimed_subscription_is_not_claimed_twice(self, subscribed, resident):
        change_address(resident.id_number, "大碶街道 10 号")
        now = timezone.now()
        assert len(subscriptions._claim(now)) == 1
        assert subscriptions._claim(now) == []  # leased to the first worker
        assert len(subscriptions._claim(now + subscriptions.LEASE)) == 1  # a crashed worker's lease runs out

    def test_the_tick_task_pushes(self, subscribed, resident, monkeypatch):
        from yiwang.exchange import gateway, tasks

        monkeypatch.setattr(gateway, "counters_flush", lambda: 0)
        change_address(resident.id_number, "大碶街道 11 号")
        assert tasks.tick() == {"counters": 0, "pushed": 1}


class TestPages:
    def test_list_create_secret_once_retry_and_cancel(self, edu_grant, resident, alice, receiver):
        client = login(alice)
        empty = client.get("/exchange/subscriptions/")
        assert empty.status_code == 200 and "还没有订阅" in empty.content.decode()
        form = client.get(f"/exchange/subscriptions/new/?grant={edu_grant.pk}")
        assert form.status_code == 200 and "人口基础信息" in form.content.decode()
        refused = client.post(
            "/exchange/subscriptions/new/", {"grant": edu_grant.pk, "webhook_url": "http://10.0.0.1/"}
        )
        assert refused.status_code == 400 and "不允许推送" in refused.content.decode()
        created = client.post("/exchange/subscriptions/new/", {"grant": edu_grant.pk, "webhook_url": receiver[0]})
        assert created.status_code == 302
        subscription = Subscription.objects.get()
        first = client.get("/exchange/subscriptions/").content.decode()
        assert subscription.secret in first and "只显示这一次" in first
        second = client.get("/exchange/subscriptions/").content.decode()
        assert subscription.secret not in second and receiver[0] in second
        change_address(resident.id_number, "大碶街道 12 号")
        assert "待推送 1 条" in client.get("/exchange/subscriptions/?state=active").content.decode()
        Subscription.objects.filter(pk=subscription.pk).update(failures=3, last_error="HTTP 502")
        page = client.get("/exchange/subscriptions/").content.decode()
        assert "推送失败 3 次" in page and "立即重试" in page and "HTTP 502" in page
        assert client.post(f"/exchange/subscriptions/{subscription.pk}/retry/").status_code == 302
        subscription.refresh_from_db()
        assert subscription.failures == 0
        assert client.post(f"/exchange/subscriptions/{subscription.pk}/cancel/").status_code == 302
        subscription.refresh_from_db()
        assert not subscription.active
        for query in ("?q=人口", "?state=inactive", "?system=abc", "?page=9"):
            assert client.get(f"/exchange/subscriptions/{query}").status_code == 200

    def test_other_units_cannot_touch_it(self, subscribed, bob):
        subscription, _secret = subscribed
        client = login(bob)
        assert client.post(f"/exchange/subscriptions/{subscription.pk}/cancel/").status_code == 404
        assert client.post(f"/exchange/subscriptions/{subscription.pk}/retry/").status_code == 404
        assert client.get(f"/exchange/subscriptions/{subscription.pk}/cancel/").status_code == 405
        assert subscription.resource_code not in client.get("/exchange/subscriptions/").content.decode()
        form = client.get("/exchange/subscriptions/new/").content.decode()
        assert "还没有可订阅的授权" in form
        assert client.post("/exchange/subscriptions/new/", {"grant": "1"}).status_code == 400


class TestApi:
    def test_crud_for_the_keys_own_system(self, edu_grant, edu_key, fin_key, resident, receiver):
        client = key_client(edu_key[1])
        created = client.post(API, {"resource_code": edu_grant.resource_code, "webhook_url": receiver[0]},
                              content_type="application/json")  # fmt: skip
        assert created.status_code == 201, created.content
        data = created.json()
        assert len(data["secret"]) == 64 and data["backlog"] == 0 and data["active"]
        sub_id = data["id"]
        assert "secret" not in client.get(f"{API}{sub_id}/").json()
        duplicate = client.post(API, {"resource_code": edu_grant.resource_code}, content_type="application/json")
        assert duplicate.status_code == 409 and error_of(duplicate)["code"] == "conflict"
        bad = client.patch(f"{API}{sub_id}/", {"webhook_url": "http://169.254.169.254/"},
                           content_type="application/json")  # fmt: skip
        assert bad.status_code == 400 and "webhook_url" in error_of(bad)["details"]
        patched = client.patch(f"{API}{sub_id}/", {"webhook_url": ""}, content_type="application/json")
        assert patched.status_code == 200 and patched.json()["webhook_url"] == ""
        assert [s["id"] for s in client.get(API).json()["results"]] == [sub_id]
        assert key_client(fin_key[1]).get(f"{API}{sub_id}/").status_code == 404
        assert key_client(fin_key[1]).get(API).json()["results"] == []
        assert client.get(f"{API}abc/").status_code == 400
        assert client.post(f"{API}{sub_id}/retry/").status_code == 409  # no webhook: pull only
        assert client.delete(f"{API}{sub_id}/").status_code == 204
        assert client.delete(f"{API}{sub_id}/").status_code == 409
        assert Client().get(API).status_code == 401

    def test_pulls_share_the_grants_per_minute_limit(self, edu_grant, edu_key, psb_head, resident,
                                                    django_capture_on_commit_callbacks):  # fmt: skip
        from yiwang.exchange import services

        with django_capture_on_commit_callbacks(execute=True):
            services.grant_limit(actor=psb_head, grant=edu_grant, per_minute=2)
        client = key_client(edu_key[1])
        url = f"/api/exchange/gateway/{edu_grant.resource_code}/changes/"
        statuses = [client.get(url, {"cursor": 0}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert error_of(client.get(url))["code"] == "throttled"

    def test_refusals(self, edu_grant, fin_key, edu_key, alice):
        body = {"resource_code": edu_grant.resource_code}
        read_only = key_client(fin_key[1]).post(API, body, content_type="application/json")
        assert read_only.status_code == 403
        malformed = key_client(edu_key[1]).post(API, {"resource_code": "x"}, content_type="application/json")
        assert malformed.status_code == 400 and "resource_code" in error_of(malformed)["details"]
        ssrf = key_client(edu_key[1]).post(API, {**body, "webhook_url": "file:///etc/passwd"},
                                           content_type="application/json")  # fmt: skip
        assert ssrf.status_code == 400 and "webhook_url" in error_of(ssrf)["details"]
        session = login(alice).get(API)  # the subscriptions API is for systems' keys
        assert session.status_code == 401

    def test_changes_endpoint(self, edu_grant, edu_key, fin_key, resident):
        url = f"/api/exchange/gateway/{edu_grant.resource_code}/changes/"
        client = key_client(edu_key[1])
        start = Change.objects.order_by("-id").first().pk
        resident_save(resident.id_number, address="梅山街道 1 号")
        page = client.get(url, {"cursor": start, "limit": 10})
        assert page.status_code == 200, page.content
        data = page.json()
        assert data["resource"] == edu_grant.resource_code and data["cursor"] == start and data["count"] == 1
        assert data["changes"][0]["items"] == ["address"] and data["has_more"] is False
        assert data["next_cursor"] == data["changes"][0]["id"]
        everything = client.get(url).json()  # default cursor 0, default limit
        assert everything["count"] >= 2
        for params, field in (({"cursor": -1}, "cursor"), ({"limit": 1000}, "limit"), ({"cursor": "a"}, "cursor")):
            bad = client.get(url, params)
            assert bad.status_code == 400 and field in error_of(bad)["details"]
        denied = key_client(fin_key[1]).get(url)
        assert denied.status_code == 403 and "未获得此资源的共享授权" in error_of(denied)["message"]
        assert client.get("/api/exchange/gateway/301001001/000077/changes/").status_code == 403  # deny by default
        assert client.get("/api/exchange/gateway/abc/changes/").status_code == 404
        assert Client().get(url).status_code == 401
        assert AuditEntry.objects.filter(action="exchange.changes").count() >= 4


class TestDisputeCorrectionReachesSubscribers:
    def test_a_corrected_value_is_pushed(self, subscribed, resident, resident_entry, receiver, alice, psb_staff):
        from yiwang.exchange import disputes

        dispute = disputes.dispute_raise(
            actor=alice, entry=resident_entry, record_key=resident.id_number, item="address",
            description="地址已变更", proposed_value="柴桥街道 3 号",
        )  # fmt: skip
        disputes.dispute_answer(actor=psb_staff, dispute=dispute, corrected=True, answer="已更正")
        assert subscriptions.subscriptions_push() == 1
        (body, _headers) = receiver[1].received[0]
        (change,) = json.loads(body)["changes"]
        assert change["op"] == "updated" and change["items"] == ["address"]
