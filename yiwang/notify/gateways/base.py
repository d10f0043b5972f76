"""The gateway interface: what notify hands an SMS provider and what it gets back.

Nothing else in yiwang talks to a gateway, so this is the whole contract:

* ``Gateway.send(batch)`` takes ``OutboundSms`` and returns one ``SendResult`` per message,
  in order. It never raises for a provider or network problem: those are results
  (``temporary_failure`` — worth retrying, maybe elsewhere; ``permanent_failure`` — retrying
  cannot help). Numbers are normalised and checked here first with ``yiwang.core.validators``,
  so a bad number is a permanent failure that never costs a request. The batch is cut into
  chunks of the adapter's ``max_batch``; an adapter implements ``send_chunk``.
* ``Gateway.parse_receipts(body, headers, query)`` turns a provider's delivery-report push into
  ``Receipt`` objects after checking that the push really comes from the provider
  (``BadSignature`` otherwise). ``receipt_ack()`` is the body the provider expects back.
* ``Gateway.parse_replies(body, headers, query)`` does the same for people's replies (上行):
  ``Reply`` objects; an adapter without them raises ``RepliesUnsupported``.

Which failures count as temporary: anything where the same message may succeed later or on
another gateway — network errors, timeouts, HTTP 5xx, rate limits, and account-level problems
(balance, credentials, daily cap), which an operator fixes while failover moves traffic away.
Permanent: what is wrong with the message itself (number, content, template parameters).
A timeout is temporary but ambiguous (the provider may have accepted the message): its error
code says so (``yiwang.TIMEOUT``) so the dispatcher can decide how eagerly to retry.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from django.utils.translation import gettext as _

from yiwang.core.validators import is_valid_mobile, normalise_mobile


class SendStatus(StrEnum):
    ACCEPTED = "accepted"
    TEMPORARY_FAILURE = "temporary_failure"
    PERMANENT_FAILURE = "permanent_failure"


class ReceiptStatus(StrEnum):
    DELIVERED = "delivered"
    TEMPORARY_FAILURE = "temporary_failure"
    PERMANENT_FAILURE = "permanent_failure"


class BadSignature(Exception):
    """A receipt push whose signature (or token) does not verify: answer 403, trust nothing."""


class BadReceipt(ValueError):
    """A verified receipt push that cannot be read: answer 400."""


@dataclass(frozen=True, slots=True)
class OutboundSms:
    """One message for a gateway.

    ``id`` is our message id, echoed in the result (and as the provider's out-id where it has
    one). ``text`` is the final text, signature included. Template-only providers (Aliyun)
    send ``template`` (our template code, mapped per gateway) with ``values`` and
    ``sign_name`` instead of the text.
    """

    id: str
    mobile: str
    text: str
    sign_name: str = ""
    template: str = ""
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendResult:
    id: str
    status: SendStatus
    gateway: str
    provider_id: str = ""  # the provider's message id, for matching receipts (accepted only)
    error_code: str = ""
    error_message: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == SendStatus.ACCEPTED


@dataclass(frozen=True, slots=True)
class Receipt:
    provider_id: str
    status: ReceiptStatus
    error_code: str = ""
    error_message: str = ""
    time: dt.datetime | None = None  # aware; when the carrier reported it
    mobile: str = ""
    id: str = ""  # our message id, when the provider echoes it


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMS a person sent back to the platform's number (上行短信)."""

    mobile: str
    text: str
    time: dt.datetime | None = None  # aware; when the carrier received it
    provider_id: str = ""  # the provider's id of the reply, so a re-pushed reply is stored once


class RepliesUnsupported(Exception):
    """The provider (or this adapter) does not push replies."""


class Gateway(abc.ABC):
    """An SMS provider. Subclasses set ``max_batch`` and implement ``send_chunk`` and
    ``parse_receipts``; options come from ``YIWANG_SMS_GATEWAYS`` as keyword arguments."""

    max_batch: int = 100

    def __init__(self, *, code: str, weight: int = 1, priority: int = 0):
        if weight < 1:
            raise ValueError("weight must be at least 1")
        self.code, self.weight, self.priority = code, weight, priority

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.code}>"

    def send(self, batch: Sequence[OutboundSms]) -> list[SendResult]:
        """Send ``batch``; one result per message, in order. Never raises for provider trouble."""
        results: dict[int, SendResult] = {}
        ready: list[tuple[int, OutboundSms]] = []
        for index, sms in enumerate(batch):
            mobile = normalise_mobile(sms.mobile)
            if is_valid_mobile(mobile):
                ready.append((index, dataclasses.replace(sms, mobile=mobile)))
            else:
                results[index] = self.failure(
                    sms, SendStatus.PERMANENT_FAILURE, "yiwang.MOBILE_INVALID", _("手机号码无效")
                )
        for start in range(0, len(ready), self.max_batch):
            chunk = ready[start : start + self.max_batch]
            chunk_results = self.send_chunk([sms for _, sms in chunk])
            if len(chunk_results) != len(chunk):
                raise RuntimeError(f"{self!r} returned {len(chunk_results)} results for {len(chunk)} messages")
            for (index, _sms), result in zip(chunk, chunk_results):
                results[index] = result
        return [results[index] for index in range(len(batch))]

    @abc.abstractmethod
    def send_chunk(self, chunk: list[OutboundSms]) -> list[SendResult]:
        """Send at most ``max_batch`` messages with valid, normalised numbers."""

    @abc.abstractmethod
    def parse_receipts(
        self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str] | None = None
    ) -> list[Receipt]:
        """Verify and read a delivery-report push; raises ``BadSignature`` or ``BadReceipt``."""

    def parse_replies(
        self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str] | None = None
    ) -> list[Reply]:
        """Verify and read a push of replies (上行), signed like receipts; raises ``BadSignature``,
        ``BadReceipt``, or ``RepliesUnsupported`` for an adapter without them."""
        raise RepliesUnsupported(self.code)

    def receipt_ack(self) -> bytes:
        """The JSON body to answer a receipt push with (HTTP 200)."""
        return b'{"ok": true}'

    # helpers for adapters

    def accepted(self, sms: OutboundSms, provider_id: str) -> SendResult:
        return SendResult(sms.id, SendStatus.ACCEPTED, self.code, provider_id=provider_id)

    def failure(self, sms: OutboundSms, status: SendStatus, code: str, message: str = "") -> SendResult:
        return SendResult(sms.id, status, self.code, error_code=code[:64], error_message=message[:200])


def header(headers: Mapping[str, str], name: str) -> str:
    """A header value, whatever the case of its name (Django's ``request.headers`` or a dict)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), "")
    return value or ""
