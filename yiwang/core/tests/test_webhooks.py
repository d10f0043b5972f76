"""Webhooks: signing, the SSRF guard, and posts to a real loopback HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError

from yiwang.core import webhooks

SECRET = "whsec-test"


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"body": body, "headers": dict(self.headers), "path": self.path})
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    """A real HTTP server on 127.0.0.1, allowed as a webhook host."""
    settings.YIWANG_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    _Receiver.received, _Receiver.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver
    server.shutdown()
    server.server_close()


class TestSignature:
    def test_sign_is_hmac_sha256_over_timestamp_dot_body(self):
        import hashlib
        import hmac

        expected = hmac.new(b"k", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        assert webhooks.sign("k", '{"a":1}', 1700000000) == expected
        assert webhooks.sign("k", b'{"a":1}', "1700000000") == expected

    def test_verify_accepts_ours_and_refuses_tampering_and_replays(self):
        now = time.time()
        ts = str(int(now))
        sig = webhooks.sign(SECRET, b"{}", ts)
        assert webhooks.verify(SECRET, b"{}", ts, sig, now=now)
        assert not webhooks.verify(SECRET, b"{ }", ts, sig, now=now)  # body changed
        assert not webhooks.verify("other", b"{}", ts, sig, now=now)  # wrong secret
        assert not webhooks.verify(SECRET, b"{}", ts, sig, now=now + 301)  # too old: a replay
        assert webhooks.verify(SECRET, b"{}", ts, sig, now=now + 301, tolerance=None)
        for bad in (None, "", "abc", "-1", "１２"):
            assert not webhooks.verify(SECRET, b"{}", bad, sig, now=now)
        assert not webhooks.verify(SECRET, b"{}", ts, None, now=now)


class TestCheckUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.1/hook",
            "http://127.0.0.1:8000/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/",
            "http://192.168.1.10/",
            "http://172.16.0.1/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fe80::1]/",
            "http://localhost/",
            "http://2130706433/",  # 127.0.0.1 as one number
        ],
    )
    def test_private_and_special_addresses_are_refused(self, url):
        with pytest.raises(ValidationError) as info:
            webhooks.check_url(url)
        assert "不允许推送" in info.value.messages[0] or "无法解析" in info.value.messages[0]

    @pytest.mark.parametrize(
        "url", ["file:///etc/passwd", "ftp://example.com/x", "javascript:alert(1)", "gopher://1.1.1.1/", "", "http://"]
    )
    def test_only_http_and_https(self, url):
        with pytest.raises(ValidationError) as info:
            webhooks.check_url(url)
        assert "http://" in info.value.messages[0]

    def test_credentials_and_bad_ports_are_refused(self):
        with pytest.raises(ValidationError, match="用户名或密码"):
            webhooks.check_url("http://user:pw@93.184.216.34/")
        with pytest.raises(ValidationError, match="有效的网址"):
            webhooks.check_url("http://93.184.216.34:99999/")

    def test_a_public_address_passes(self):
        webhooks.check_url("https://93.184.216.34/hook?x=1")

    def test_every_resolved_address_is_checked(self, monkeypatch):
        def fake_getaddrinfo(host, port, *args, **kwargs):
            assert host == "mixed.example"
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port)),
            ]

        monkeypatch.setattr(webhooks.socket, "getaddrinfo", fake_getaddrinfo)
        with pytest.raises(ValidationError, match=r"10\.1\.2\.3"):
            webhooks.check_url("https://mixed.example/hook")

    def test_an_unresolvable_host_is_refused(self, monkeypatch):
        def fail(*args, **kwargs):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        monkeypatch.setattr(webhooks.socket, "getaddrinfo", fail)
        with pytest.raises(ValidationError, match="无法解析"):
            webhooks.check_url("https://no-such-host.invalid/")

    def test_allowed_hosts_may_be_private(self, settings):
        settings.YIWANG_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1", "::1"]
        webhooks.check_url("http://127.0.0.1:9000/hook")
        webhooks.check_url("http://[::1]:9000/hook")
        with pytest.raises(ValidationError):
            webhooks.check_url("http://10.0.0.1/hook")


class TestPost:
    def test_posts_signed_json_to_a_real_server(self, receiver):
        url, handler = receiver
        ok, status, error = webhooks.post(f"{url}/hook?token=abc", {"名称": "测试", "n": 1}, secret=SECRET)
        assert (ok, status, error) == (True, 200, "")
        (request,) = handler.received
        assert request["path"] == "/hook?token=abc"
        assert json.loads(request["body"]) == {"名称": "测试", "n": 1}
        headers = request["headers"]
        assert headers["Content-Type"].startswith("application/json")
        assert webhooks.verify(SECRET, request["body"], headers["X-Yiwang-Timestamp"], headers["X-Yiwang-Signature"])

    def test_an_error_status_is_a_failure(self, receiver):
        url, handler = receiver
        handler.status = 500
        assert webhooks.post(url, {}, secret=SECRET) == (False, 500, "HTTP 500")
        handler.status = 302  # redirects are not followed
        assert webhooks.post(url, {}, secret=SECRET) == (False, 302, "HTTP 302")

    def test_a_refused_connection_is_a_failure(self, settings):
        settings.YIWANG_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # nothing listens once closed
        ok, status, error = webhooks.post(f"http://127.0.0.1:{port}/", {}, secret=SECRET, timeout=2)
        assert not ok and status is None and "连接" in error

    def test_the_guard_runs_again_at_post_time(self, receiver, settings):
        url, handler = receiver
        settings.YIWANG_WEBHOOK_ALLOWED_HOSTS = []  # e.g. the allow-list changed after the URL was saved
        ok, status, error = webhooks.post(url, {}, secret=SECRET)
        assert not ok and status is None and "不允许推送" in error
        assert handler.received == []

    def test_the_checked_address_is_the_one_connected_to(self, receiver, settings, monkeypatch):
        """DNS rebinding: the name is resolved once, checked, and that address is used."""
        url, handler = receiver
        port = url.rsplit(":", 1)[1]
        settings.YIWANG_WEBHOOK_ALLOWED_HOSTS = ["hook.example"]
        real_getaddrinfo, lookups = socket.getaddrinfo, []

        def rebinding_dns(host, *args, **kwargs):
            if host != "hook.example":
                return real_getaddrinfo(host, *args, **kwargs)
            lookups.append(host)
            if len(lookups) > 1:  # a second answer would point elsewhere: it must not be asked
                raise AssertionError("resolved twice")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port)))]

        monkeypatch.setattr(webhooks.socket, "getaddrinfo", rebinding_dns)
        ok, status, _error = webhooks.post(f"http://hook.example:{port}/x", {"a": 1}, secret=SECRET)
        assert ok and status == 200
        assert handler.received[0]["headers"]["Host"] == f"hook.example:{port}"

    def test_file_urls_are_never_posted(self):
        assert webhooks.post("file:///etc/passwd", {}, secret=SECRET)[:2] == (False, None)
