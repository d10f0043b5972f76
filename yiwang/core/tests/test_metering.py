"""Usage metering: in-process counters, flushed to UsageDaily in one upsert."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from django.utils import timezone

from yiwang.core.metering import UsageMiddleware, flush, module_of, record
from yiwang.core.models import UsageDaily

TABLE = UsageDaily._meta.db_table

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_counters(settings):
    # Flush only when a test calls flush(); start from an empty buffer and table.
    settings.YIWANG_USAGE_FLUSH_SECONDS = 10**9
    flush()
    UsageDaily.objects.all().delete()
    yield
    flush()


def rows() -> list[tuple]:
    return list(
        UsageDaily.objects.order_by("module", "unit_id").values_list("day", "unit_id", "user_id", "module", "hits")
    )


def usage_queries(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if TABLE in q["sql"].lower()]


class TestRecordAndFlush:
    def test_two_records_one_row(self):
        day = dt.date(2025, 10, 9)
        record(module="org", unit_id=3, user_id=7, day=day)
        record(module="org", unit_id=3, user_id=7, day=day)
        assert UsageDaily.objects.count() == 0  # nothing written before the flush
        assert flush() == 1
        assert rows() == [(day, 3, 7, "org", 2)]

    def test_second_flush_adds_to_the_row(self):
        day = dt.date(2025, 10, 9)
        record(module="org", unit_id=3, user_id=7, day=day)
        record(module="org", unit_id=3, user_id=7, day=day)
        flush()
        for _ in range(3):
            record(module="org", unit_id=3, user_id=7, day=day)
        assert flush() == 1
        assert rows() == [(day, 3, 7, "org", 5)]

    def test_distinct_keys_distinct_rows(self):
        day = dt.date(2025, 10, 9)
        record(module="org", unit_id=3, user_id=7, day=day)
        record(module="org", unit_id=4, user_id=7, day=day)
        record(module="core", unit_id=3, user_id=7, day=day)
        record(module="org", unit_id=3, user_id=7, day=day + dt.timedelta(days=1))
        assert flush() == 4
        assert UsageDaily.objects.count() == 4
        assert set(UsageDaily.objects.values_list("hits", flat=True)) == {1}

    def test_none_unit_and_user_stored_as_zero(self):
        record(module="org", unit_id=None, user_id=None)
        record(module="org", unit_id=None, user_id=None)
        flush()
        assert rows() == [(timezone.localdate(), 0, 0, "org", 2)]

    def test_default_day_is_the_local_date(self):
        record(module="org", unit_id=1, user_id=1)
        flush()
        assert UsageDaily.objects.get().day == timezone.localdate()

    def test_empty_flush_touches_nothing(self):
        with CaptureQueriesContext(connection) as captured:
            assert flush() == 0
        assert captured.captured_queries == []

    def test_record_runs_no_query_before_the_flush_is_due(self):
        with CaptureQueriesContext(connection) as captured:
            for _ in range(50):
                record(module="org", unit_id=1, user_id=1)
        assert captured.captured_queries == []
        flush()
        assert UsageDaily.objects.get().hits == 50

    def test_record_flushes_when_due(self, settings):
        settings.YIWANG_USAGE_FLUSH_SECONDS = 0
        record(module="org", unit_id=1, user_id=1)
        assert UsageDaily.objects.get().hits == 1


def call_middleware(request, status=200):
    return UsageMiddleware(lambda r: HttpResponse(status=status))(request)


def get(path: str, user):
    request = RequestFactory().get(path)
    request.user = user
    request.resolver_match = resolve(path)
    return request


class TestUsageMiddleware:
    """The middleware alone, with a RequestFactory request (no templates involved)."""

    def test_logged_in_request_counted_under_its_module(self, alice, units):
        with CaptureQueriesContext(connection) as captured:
            call_middleware(get("/org/units/", alice))
            call_middleware(get("/org/people/", alice))
        assert usage_queries(captured) == []
        assert UsageDaily.objects.count() == 0
        flush()
        assert rows() == [(timezone.localdate(), units["edu"].pk, alice.pk, "org", 2)]

    def test_anonymous_request_not_counted(self):
        from django.contrib.auth.models import AnonymousUser

        call_middleware(get("/org/units/", AnonymousUser()))
        flush()
        assert rows() == []

    @pytest.mark.parametrize("status", [400, 403, 404, 500])
    def test_error_response_not_counted(self, alice, status):
        call_middleware(get("/org/units/", alice), status=status)
        flush()
        assert rows() == []

    def test_redirect_is_counted(self, alice):
        call_middleware(get("/org/units/", alice), status=302)
        flush()
        assert UsageDaily.objects.get().hits == 1

    @pytest.mark.parametrize("path", ["/healthz", "/api/schema/", "/django-admin/"])
    def test_ignored_modules(self, alice, path):
        call_middleware(get(path, alice))
        flush()
        assert rows() == []

    def test_unresolved_request_not_counted(self, alice):
        request = RequestFactory().get("/nowhere/")
        request.user = alice
        call_middleware(request)
        flush()
        assert rows() == []

    def test_api_counts_under_the_module(self):
        assert module_of(get("/api/org/units/", None)) == "org"
        assert module_of(get("/org/units/", None)) == "org"
        assert module_of(get("/", None)) == "core"


class TestUsageThroughTheClient:
    """A real request through the whole middleware stack."""

    def test_logged_in_page_counted_under_org(self, alice_client, alice, units):
        with CaptureQueriesContext(connection) as captured:
            response = alice_client.get("/org/units/")
        assert response.status_code == 200
        assert usage_queries(captured) == []
        alice_client.get("/org/units/")
        assert UsageDaily.objects.count() == 0
        flush()
        assert rows() == [(timezone.localdate(), units["edu"].pk, alice.pk, "org", 2)]

    def test_anonymous_request_not_counted(self, client, units):
        response = client.get("/org/units/")
        assert response.status_code == 302
        flush()
        assert rows() == []
