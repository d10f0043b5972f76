"""Signed JSON posts to outside systems (webhooks): the one way yiwang calls a consumer back.

Used by exchange subscriptions (change pushes) and notify (SMS status callbacks).

What a receiver gets: ``POST`` with a JSON body and two headers,

* ``X-Yiwang-Timestamp``: Unix time in seconds when the request was signed;
* ``X-Yiwang-Signature``: hex HMAC-SHA256, keyed with the shared secret, of
  ``"{timestamp}.{body}"`` (the raw body bytes).

A receiver recomputes the signature over the raw body (``verify`` here does it) and
refuses timestamps more than five minutes away from its clock, so a captured request
cannot be replayed later. Any 2xx answer counts as received; redirects are not followed.

SSRF guard: a webhook may only reach a public address. ``check_url`` resolves the host and
refuses it if any address is private, loopback, link-local, multicast, reserved or
unspecified, unless the host is listed in ``settings.YIWANG_WEBHOOK_ALLOWED_HOSTS`` (an
intranet consumer is enabled there by the platform operator). ``post`` checks again at
send time and connects to the address it checked, so a DNS answer that changes later
(rebinding) cannot turn a webhook against the internal network.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .httpclient import HttpClient, TransportError

SIGNATURE_HEADER = "X-Yiwang-Signature"
TIMESTAMP_HEADER = "X-Yiwang-Timestamp"
TOLERANCE_SECONDS = 300
MAX_ERROR_LENGTH = 300
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, not public either


def _as_bytes(body: bytes | str) -> bytes:
    return body if isinstance(body, bytes) else body.encode("utf-8")


def sign(secret: str, body: bytes | str, timestamp: int | str) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed with ``secret``."""
    message = f"{timestamp}.".encode("ascii") + _as_bytes(body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    body: bytes | str,
    timestamp: int | str | None,
    signature: str | None,
    *,
    tolerance: int | None = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is ours for this body and timestamp, and the timestamp is recent
    (within ``tolerance`` seconds of ``now``; ``tolerance=None`` skips the clock check)."""
    text = str(timestamp if timestamp is not None else "")
    if not text.isascii() or not text.isdigit() or not signature:
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - int(text)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, text), str(signature))


# --- the SSRF guard ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    scheme: str
    netloc: str
    path: str
    addresses: tuple[str, ...]


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (ip.version == 4 and ip in _SHARED_ADDRESS_SPACE)
    )


def _allowed_hosts() -> set[str]:
    return {host.strip().lower().strip("[]") for host in getattr(settings, "YIWANG_WEBHOOK_ALLOWED_HOSTS", ()) or ()}


def _target(url: str) -> _Target:
    """The URL's parts and the checked addresses to connect to, or a ValidationError in Chinese."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError(_("推送地址不是有效的网址。"), code="invalid_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(_("推送地址须为 http:// 或 https:// 网址。"), code="invalid_url")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(_("推送地址不能包含用户名或密码。"), code="invalid_url")
    host = parts.hostname.lower()
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise ValidationError(
            _("无法解析推送地址的主机名：%(host)s") % {"host": host[:100]}, code="unresolvable"
        ) from None
    addresses = tuple(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos))
    if not addresses:
        raise ValidationError(_("无法解析推送地址的主机名：%(host)s") % {"host": host[:100]}, code="unresolvable")
    if host not in _allowed_hosts():
        for address in addresses:
            if _forbidden(ipaddress.ip_address(address)):
                raise ValidationError(
                    _(
                        "推送地址指向内网、本机或保留地址（%(address)s），不允许推送。"
                        "如确需推送到政务内网系统，请平台管理员将该主机加入允许名单。"
                    )
                    % {"address": address},
                    code="forbidden_address",
                )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(parts.scheme, parts.netloc, path, addresses)


def check_url(url: str) -> None:
    """Refuse (ValidationError, Chinese) a URL that is not http(s) or reaches a non-public address."""
    _target(url)


# --- sending -------------------------------------------------------------------------------

_TRANSPORT_ERRORS = {
    "refused": gettext_lazy("连接被拒绝"),
    "timeout": gettext_lazy("对方超时未响应"),
    "connection": gettext_lazy("连接失败"),
}


def post(url: str, payload, *, secret: str, timeout: float = 5) -> tuple[bool, int | None, str]:
    """POST ``payload`` as signed JSON. Returns ``(ok, HTTP status or None, error)``; ok means 2xx.

    Never raises for a bad URL, a refused address or a network failure: they come back as
    the error text (Chinese, at most 300 characters), for the caller to store and retry.
    """
    try:
        target = _target(url)
    except ValidationError as error:
        return False, None, " ".join(error.messages)[:MAX_ERROR_LENGTH]
    body = json.dumps(payload, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "yiwang-webhook/1",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, body, timestamp),
    }
    client = HttpClient(f"{target.scheme}://{target.netloc}", timeout=timeout, address=target.addresses[0])
    try:
        response = client.request("POST", target.path, body=body, headers=headers)
    except TransportError as error:
        label = _TRANSPORT_ERRORS.get(error.kind, _("连接失败"))
        return False, None, f"{label}：{error.detail}"[:MAX_ERROR_LENGTH]
    except ValueError as error:  # http.client refuses e.g. control characters in the path
        return False, None, f"{_('推送地址不是有效的网址。')} {error}"[:MAX_ERROR_LENGTH]
    finally:
        client.close()
    if 200 <= response.status < 300:
        return True, response.status, ""
    return False, response.status, f"HTTP {response.status}"
