"""notify fixtures: a real fake gateway on loopback, policies and templates built with services."""

from __future__ import annotations

import pytest

from yiwang.notify import gateways, services
from yiwang.notify.gateways.fake_server import FakeSmsServer

SECRET = "test-secret"


@pytest.fixture
def sms_server(settings):
    """The fake SMS gateway as a real HTTP server; yiwang's gateway settings point at it."""
    with FakeSmsServer(secret=SECRET, seed=7) as server:
        settings.YIWANG_SMS_GATEWAYS = [
            {"code": "fake", "class": "yiwang.notify.gateways.fake.FakeGateway", "url": server.url, "secret": SECRET}
        ]
        gateways.reset()
        yield server
    gateways.reset()


@pytest.fixture
def policy(units):
    return services.policy_save(actor=None, unit=None, signature="北仑区政府", daily_quota=1000, per_minute=100000)


@pytest.fixture
def notice(units, policy):
    return services.template_save(
        actor=None, unit=units["edu"], code="exam", name="考试通知", body="((姓名))同学：请于((日期))参加考试。"
    )


@pytest.fixture
def code_template(units, policy):
    return services.template_save(
        actor=None,
        unit=units["edu"],
        code="otp",
        name="验证码",
        kind="verification",
        body="您的验证码是((验证码))，5分钟内有效。",
    )


@pytest.fixture(autouse=True)
def _quiet_dispatcher(monkeypatch):
    """Unit tests drive the dispatcher themselves: wake-ups are recorded, not sent to a broker.

    (The worker tests start real Celery workers on the real broker.) Rate counters live in the
    cache, so each test starts with a clean one.
    """
    from django.core.cache import cache

    from yiwang.notify import dispatch, tasks

    kicks: list[bool] = []
    monkeypatch.setattr(tasks, "kick", lambda *, urgent: kicks.append(urgent))
    cache.clear()
    dispatch._policies.clear()
    return kicks
