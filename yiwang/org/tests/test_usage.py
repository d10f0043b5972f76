"""Usage figures (应用情况): metered requests read back by the selectors, the page and the API."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from yiwang.core import metering
from yiwang.org import services, usage

pytestmark = pytest.mark.django_db


@pytest.fixture
def today():
    return timezone.localdate()


@pytest.fixture
def figures(alice, bob, carol, units, today):
    """alice (EDU) used workflow 3 times today and org once yesterday; carol (EDU) workflow once;
    bob (FIN) notify twice today."""
    metering.discard()
    for _ in range(3):
        metering.record(module="workflow", unit_id=units["edu"].pk, user_id=alice.pk)
    metering.record(module="org", unit_id=units["edu"].pk, user_id=alice.pk, day=today - dt.timedelta(days=1))
    metering.record(module="workflow", unit_id=units["edu"].pk, user_id=carol.pk)
    metering.record(module="notify", unit_id=units["fin"].pk, user_id=bob.pk)
    metering.record(module="notify", unit_id=units["fin"].pk, user_id=bob.pk)
    metering.flush()


class TestSelectors:
    def test_module_figures_for_everyone(self, figures, admin, today):
        rows = {m.module: m for m in usage.module_usage(user=admin, start=today - dt.timedelta(days=6), end=today)}
        assert (rows["workflow"].active_users, rows["workflow"].actions, rows["workflow"].active_units) == (2, 4, 1)
        assert (rows["notify"].active_users, rows["notify"].actions) == (1, 2)
        assert rows["org"].actions == 1
        assert rows["workflow"].name == "流程与待办" or rows["workflow"].name  # registered name, not the code

    def test_a_unit_sees_only_its_own_figures(self, figures, alice, today):
        rows = {m.module for m in usage.module_usage(user=alice, start=today - dt.timedelta(days=6), end=today)}
        assert rows == {"workflow", "org"}  # bob's notify use in 财政局 is not alice's to see

    def test_trend_has_every_day(self, figures, admin, today):
        trend = usage.daily_usage(user=admin, start=today - dt.timedelta(days=6), end=today, module="workflow")
        assert len(trend) == 7 and trend[-1] == usage.DayUsage(today, 2, 4)
        assert all(d.actions == 0 for d in trend[:-1])

    def test_units_that_never_used_a_module(self, figures, admin, units, today):
        idle = {u.code for u in usage.idle_units(user=admin, module="notify", start=today, end=today)}
        assert "FIN" not in idle and {"EDU", "EGOV", "EDU-OFFICE"} <= idle

    def test_consumer_system_calls(self, units, admin, today):
        system = services.system_create(actor=admin, name="网格化平台", unit=units["edu"])
        metering.discard()
        for _ in range(5):
            metering.record(module="org", unit_id=units["edu"].pk, user_id=system.account_id)
        metering.flush()
        rows = usage.system_usage(user=admin, start=today, end=today)
        assert [(r.name, r.calls, r.active_days) for r in rows] == [("网格化平台", 5, 1)]
        # a system's calls are not counted as people's use
        people = {m.module: m for m in usage.module_usage(user=admin, start=today, end=today)}
        assert "org" not in people

    def test_period_is_checked(self, today):
        with pytest.raises(Exception, match="结束日期不能早于开始日期"):
            usage.period_check(today, today - dt.timedelta(days=1))


class TestPageAndApi:
    def test_page_shows_chart_and_tables(self, figures, admin_client, today):
        html = admin_client.get(reverse("org:usage"), {"module": "notify"}).content.decode()
        assert 'id="usage-trend"' in html and "接入系统的接口调用" in html
        assert "从未使用" in html and "区教育局" in html

    def test_page_refuses_a_bad_period_with_a_message(self, alice_client, today):
        response = alice_client.get(reverse("org:usage"), {"start": today.isoformat(), "end": "2000-01-01"})
        assert response.status_code == 200 and "结束日期不能早于开始日期" in response.content.decode()

    def test_api_matches_the_selectors(self, figures, alice_client, alice, today):
        response = alice_client.get("/api/org/usage/", {"start": (today - dt.timedelta(days=6)).isoformat()})
        assert response.status_code == 200
        body = response.json()
        assert {m["module"]: m["actions"] for m in body["modules"]} == {"workflow": 4, "org": 1}
        assert len(body["daily"]) == 7 and body["idle_units"] is None

    def test_api_error_envelope(self, alice_client):
        response = alice_client.get("/api/org/usage/", {"start": "2026-02-30"})
        assert response.status_code == 400 and "error" in response.json()

    def test_anonymous_refused(self, client):
        assert client.get("/api/org/usage/").status_code in (401, 403)
