"""Schemathesis over the OpenAPI description of the match, statistics and calls endpoints:
generated requests never get a 500, and every answer matches the documented schema."""

from __future__ import annotations

import copy

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import call_record

pytestmark = pytest.mark.django_db

PATHS = ("/api/exchange/match/", "/api/exchange/statistics/", "/api/exchange/calls/")
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_generated_requests_never_fail_the_server(openapi, edu_grant, edu_key, fin_key, legal_entry, fin_system):
    from yiwang.exchange.models import CallDay

    call_record(edu_grant.system, legal_entry, served=False)
    call_record(fin_system, legal_entry)
    CallDay.objects.create(
        day="2025-11-20", system_id=fin_system.pk, unit_id=fin_system.unit_id, provider_id=legal_entry.provider_id,
        resource_code=legal_entry.code, calls=3, denied=1, records=2, bytes=300, total_ms=9.0, max_ms=4.0,
    )  # fmt: skip
    spec = copy.deepcopy(openapi)
    spec["paths"] = {p: ops for p, ops in spec["paths"].items() if p in PATHS}
    schema = schemathesis.openapi.from_dict(spec)
    schema.app = get_wsgi_application()
    found = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in found} == set(PATHS)
    keys = st.sampled_from([f"Api-Key {edu_key[1]}", f"Api-Key {fin_key[1]}", "Api-Key yw_00000000_x", ""])
    statuses: set[int] = set()
    for operation in found:

        @given(case=operation.as_strategy(), authorization=keys)
        @settings(
            max_examples=80,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        def run(case, authorization):
            headers = {"Authorization": authorization} if authorization else {}
            response = case.call(headers=headers)
            statuses.add(response.status_code)
            assert response.status_code < 500, (case.path, case.query, case.body, response.text[:300])
            case.validate_response(response, checks=CHECKS)

        run()
    assert {200, 400, 401} <= statuses
