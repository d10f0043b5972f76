"""The adapter for the local fake gateway (``fake_server``): the demo's and the tests' provider.

It speaks the fake's small JSON protocol over one keep-alive connection per thread, in
batches of up to 500. Test API keys only ever reach a ``FakeGateway``. Besides the
``Gateway`` interface it offers the fake's own controls (``control``, ``messages``,
``stats``) for the demo console and the tests.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Mapping

from django.utils.translation import gettext as _

from yiwang.core.httpclient import HttpClient, TransportError

from .base import (
    BadReceipt,
    BadSignature,
    Gateway,
    OutboundSms,
    Receipt,
    ReceiptStatus,
    Reply,
    SendResult,
    SendStatus,
    header,
)
from .fake_server import DEFAULT_PORT, DEFAULT_SECRET, SECRET_HEADER, SIGNATURE_HEADER, sign

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
_FAILURES = {SendStatus.TEMPORARY_FAILURE.value, SendStatus.PERMANENT_FAILURE.value}


class FakeGatewayError(Exception):
    """A control call to the fake gateway failed (demo console, tests)."""


class FakeGateway(Gateway):
    max_batch = 500

    def __init__(
        self, *, code: str = "fake", url: str = DEFAULT_URL, secret: str = DEFAULT_SECRET, timeout: float = 10.0, **kw
    ):
        super().__init__(code=code, **kw)
        self.url, self.secret = url, secret
        self.http = HttpClient(url, timeout=timeout)

    def _call(self, method: str, path: str, payload: dict | None = None):
        body = json.dumps(payload, ensure_ascii=False).encode() if payload is not None else b""
        headers = {SECRET_HEADER: self.secret, "Content-Type": "application/json"}
        return self.http.request(method, path, body=body, headers=headers)

    def send_chunk(self, chunk: list[OutboundSms]) -> list[SendResult]:
        payload = {"messages": [{"id": sms.id, "mobile": sms.mobile, "text": sms.text} for sms in chunk]}
        temporary = SendStatus.TEMPORARY_FAILURE
        try:
            response = self._call("POST", "/send", payload)
        except TransportError as error:
            return [self.failure(sms, temporary, f"yiwang.{error.kind.upper()}", str(error)) for sms in chunk]
        if response.status != 200:
            # 5xx, 429 and a refused secret (401: a configuration problem) are worth retrying
            # elsewhere; any other 4xx means we sent something the fake cannot read.
            status = temporary if response.status >= 500 or response.status in (401, 403, 429) else None
            status = status or SendStatus.PERMANENT_FAILURE
            message = _("模拟网关返回 HTTP %(status)s") % {"status": response.status}
            return [self.failure(sms, status, f"HTTP_{response.status}", message) for sms in chunk]
        try:
            results = json.loads(response.body)["results"]
            by_id = {str(r["id"]): r for r in results}
        except (ValueError, KeyError, TypeError):
            return [self.failure(sms, temporary, "yiwang.BAD_RESPONSE", _("模拟网关应答无法解析")) for sms in chunk]
        out = []
        for sms in chunk:
            result = by_id.get(sms.id)
            if result is None:
                out.append(self.failure(sms, temporary, "yiwang.NO_RESULT", _("模拟网关未返回该条结果")))
            elif result.get("status") == SendStatus.ACCEPTED:
                out.append(self.accepted(sms, str(result.get("provider_id", ""))))
            else:
                status = result.get("status")
                status = SendStatus(status) if status in _FAILURES else temporary
                out.append(
                    self.failure(sms, status, str(result.get("error_code", "")), str(result.get("error_message", "")))
                )
        return out

    def parse_receipts(
        self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str] | None = None
    ) -> list[Receipt]:
        """Receipts of a push signed with HMAC-SHA256 (``X-Fake-Signature``); raises ``BadSignature``."""
        self._verified(body, headers)
        try:
            return [
                Receipt(
                    provider_id=str(item["provider_id"]),
                    status=ReceiptStatus(item["status"]),
                    error_code=str(item.get("error_code", "")),
                    error_message=str(item.get("error_message", "")),
                    time=dt.datetime.fromisoformat(item["time"]) if item.get("time") else None,
                    mobile=str(item.get("mobile", "")),
                    id=str(item.get("id", "")),
                )
                for item in json.loads(body)["receipts"]
            ]
        except (ValueError, KeyError, TypeError) as error:
            raise BadReceipt(_("回执格式无法解析")) from error

    def _verified(self, body: bytes, headers: Mapping[str, str]) -> None:
        given = header(headers, SIGNATURE_HEADER)
        if not given or not hmac.compare_digest(given.encode(), sign(self.secret, body).encode()):
            raise BadSignature(_("回执签名校验失败"))

    def parse_replies(
        self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str] | None = None
    ) -> list[Reply]:
        """Replies (上行) pushed as ``{"replies": [{"id", "mobile", "text", "time"}]}``, signed like receipts."""
        self._verified(body, headers)
        try:
            return [
                Reply(
                    mobile=str(item["mobile"]),
                    text=str(item["text"]),
                    time=dt.datetime.fromisoformat(item["time"]) if item.get("time") else None,
                    provider_id=str(item.get("id", "")),
                )
                for item in json.loads(body)["replies"]
            ]
        except (ValueError, KeyError, TypeError) as error:
            raise BadReceipt(_("上行短信格式无法解析")) from error

    # --- the fake's own controls ---------------------------------------------------------

    def _json(self, method: str, path: str, payload: dict | None = None) -> dict:
        try:
            response = self._call(method, path, payload)
        except TransportError as error:
            raise FakeGatewayError(str(error)) from error
        if response.status != 200:
            raise FakeGatewayError(f"HTTP {response.status}: {response.body[:200].decode(errors='replace')}")
        return json.loads(response.body)

    def control(self, **changes) -> dict:
        """Change the fake's behaviour (``fail_rate=0.2, fail_kind="temporary"``, ``down=True``, …)."""
        return self._json("POST", "/control", changes)["behaviour"]

    def messages(self, *, since: int = 0, limit: int = 1000) -> list[dict]:
        """Messages the fake accepted after sequence number ``since``."""
        return self._json("GET", f"/messages?since={int(since)}&limit={int(limit)}")["messages"]

    def stats(self) -> dict:
        return self._json("GET", "/stats")
