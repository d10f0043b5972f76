"""Schemathesis over the OpenAPI description of the match, statistics and calls endpoints:
generated requests never get a 500, and every answer matches the documented schema."""

from __future__ import annotations

import copy

import pytest

from .conftest import call_record

pytestmark = pytest.mark.django_db

PATHS = ("/api/exchange/match/", "/api/exchange/statistics/", "/api/exchange/calls/")


def test_generated_requests_never_fail_the_server(openapi, fuzz, edu_grant, edu_key, fin_key, legal_entry, fin_system):
    from yiwang.exchange.models import CallDay

    call_record(edu_grant.system, legal_entry, served=False)
    call_record(fin_system, legal_entry)
    CallDay.objects.create(
        day="2025-11-20", system_id=fin_system.pk, unit_id=fin_system.unit_id, provider_id=legal_entry.provider_id,
        resource_code=legal_entry.code, calls=3, denied=1, records=2, bytes=300, total_ms=9.0, max_ms=4.0,
    )  # fmt: skip
    spec = copy.deepcopy(openapi)
    spec["paths"] = {p: ops for p, ops in spec["paths"].items() if p in PATHS}
    assert set(spec["paths"]) == set(PATHS)
    keys = [f"Api-Key {edu_key[1]}", f"Api-Key {fin_key[1]}", "Api-Key yw_00000000_x", ""]
    statuses = fuzz(spec, keys, 80)
    assert {200, 400, 401} <= statuses
