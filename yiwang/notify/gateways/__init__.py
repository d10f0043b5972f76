"""SMS gateways (短信通道): the only code in yiwang that talks to an SMS provider.

Configured by ``settings.YIWANG_SMS_GATEWAYS``, a list of dicts; ``code`` and ``class`` (a
dotted path to a ``Gateway`` subclass) are required, ``weight`` and ``priority`` (lower is
preferred) are optional, every other key is passed to the class as an option::

    YIWANG_SMS_GATEWAYS = [
        {"code": "aliyun", "class": "yiwang.notify.gateways.aliyun.AliyunGateway", "priority": 0,
         "access_key_id": "…", "access_key_secret": "…", "receipt_token": "…",
         "templates": {"exam-notice": "SMS_1234"}},
        {"code": "fake", "class": "yiwang.notify.gateways.fake.FakeGateway", "priority": 1,
         "url": "http://127.0.0.1:8925", "secret": "…"},
    ]

Without the setting, yiwang sends to the fake gateway on 127.0.0.1:8925 (the demo). Sends
made with a test API key go only to ``YIWANG_SMS_TEST_GATEWAY`` (default ``"fake"``), which
must be a ``FakeGateway``. ``YIWANG_SMS_FAILOVER`` may tune ``Failover`` (``threshold``,
``min_sends``, ``window_size``, ``window_seconds``, ``cooldown_seconds``).

The dispatcher uses ``choose_gateway()`` → ``gateway.send(batch)`` → ``record_outcome()``;
the receipt view uses ``get_gateway(code).parse_receipts(...)``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from .base import (
    BadReceipt,
    BadSignature,
    Gateway,
    OutboundSms,
    Receipt,
    ReceiptStatus,
    RepliesUnsupported,
    Reply,
    SendResult,
    SendStatus,
)
from .failover import Failover, NoGatewayAvailable

__all__ = [
    "BadReceipt",
    "BadSignature",
    "Failover",
    "Gateway",
    "NoGatewayAvailable",
    "OutboundSms",
    "Receipt",
    "ReceiptStatus",
    "RepliesUnsupported",
    "Reply",
    "SendResult",
    "SendStatus",
    "UnknownGateway",
    "choose_gateway",
    "gateways",
    "get_gateway",
    "record_outcome",
    "reset",
    "shared_failover",
]

FAKE_CLASS = "yiwang.notify.gateways.fake.FakeGateway"
DEFAULT_GATEWAYS = [{"code": "fake", "class": FAKE_CLASS, "url": "http://127.0.0.1:8925"}]
SETTINGS = ("YIWANG_SMS_GATEWAYS", "YIWANG_SMS_TEST_GATEWAY", "YIWANG_SMS_FAILOVER")


class UnknownGateway(LookupError):
    """No gateway has this code."""


class _NoGateway(Gateway):
    """Stands in when every gateway is cooling down: every message fails temporarily, offline."""

    def __init__(self):
        super().__init__(code="")

    def send_chunk(self, chunk: list[OutboundSms]) -> list[SendResult]:
        message = _("所有短信通道暂时不可用")
        return [self.failure(sms, SendStatus.TEMPORARY_FAILURE, "yiwang.NO_GATEWAY", message) for sms in chunk]

    def parse_receipts(self, body, headers, query=None):
        raise BadSignature(_("未知的短信通道"))


class _Registry:
    def __init__(self):
        specs = getattr(settings, "YIWANG_SMS_GATEWAYS", None) or DEFAULT_GATEWAYS
        self.live = [build(spec) for spec in specs]
        self.by_code = {}
        for gateway in self.live:
            if gateway.code in self.by_code:
                raise ImproperlyConfigured(f"YIWANG_SMS_GATEWAYS: the code {gateway.code!r} appears twice")
            self.by_code[gateway.code] = gateway
        test_code = getattr(settings, "YIWANG_SMS_TEST_GATEWAY", "fake")
        self.test = self.by_code.get(test_code) or build({**DEFAULT_GATEWAYS[0], "code": test_code})
        if not isinstance(self.test, import_string(FAKE_CLASS)):
            raise ImproperlyConfigured("YIWANG_SMS_TEST_GATEWAY must name a FakeGateway: test sends never leave it")
        self.by_code.setdefault(self.test.code, self.test)
        self.failover = Failover(self.live, **dict(getattr(settings, "YIWANG_SMS_FAILOVER", None) or {}))


_lock = threading.Lock()
_registry: _Registry | None = None


def build(spec: Mapping) -> Gateway:
    """A gateway from one ``YIWANG_SMS_GATEWAYS`` entry."""
    options = dict(spec)
    if not options.get("code") or not options.get("class"):
        raise ImproperlyConfigured(f"YIWANG_SMS_GATEWAYS: each entry needs 'code' and 'class': {spec!r}")
    cls = import_string(options.pop("class"))
    if not (isinstance(cls, type) and issubclass(cls, Gateway)):
        raise ImproperlyConfigured(f"YIWANG_SMS_GATEWAYS: {cls!r} is not a Gateway")
    return cls(**options)


def _get() -> _Registry:
    global _registry
    with _lock:
        if _registry is None:
            _registry = _Registry()
        return _registry


def reset() -> None:
    """Forget the gateways built from the settings (and their failover windows)."""
    global _registry
    with _lock:
        _registry = None


def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting in SETTINGS:
        reset()


setting_changed.connect(_on_setting_changed, dispatch_uid="yiwang.notify.gateways")


def gateways() -> list[Gateway]:
    """The live gateways, in configuration order."""
    return list(_get().live)


def get_gateway(code: str) -> Gateway:
    """The gateway with this code (live or the test gateway); raises ``UnknownGateway``."""
    try:
        return _get().by_code[code]
    except KeyError:
        raise UnknownGateway(code) from None


def shared_failover() -> Failover:
    """This process's failover over the live gateways."""
    return _get().failover


def choose_gateway(*, test: bool = False) -> Gateway:
    """The gateway for the next batch: the test gateway for test sends, else by failover.
    When every gateway is cooling down, a stand-in whose sends all fail temporarily."""
    registry = _get()
    if test:
        return registry.test
    try:
        return registry.failover.choose()
    except NoGatewayAvailable:
        return _NoGateway()


def record_outcome(code: str, outcomes: Iterable[SendStatus | SendResult]) -> None:
    """Tell failover how a batch sent through gateway ``code`` went (test sends are ignored)."""
    registry = _get()
    if code == registry.test.code and registry.test not in registry.live:
        return
    registry.failover.record(code, outcomes)
