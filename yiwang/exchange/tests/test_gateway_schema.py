"""Schemathesis over the gateway's own OpenAPI description: generated requests never get a 500,
and every answer matches the documented status codes, content type and body schema."""

from __future__ import annotations

import copy

import pytest

from yiwang.core.models import AuditEntry

pytestmark = pytest.mark.django_db

GATEWAY_PREFIX = "/api/exchange/gateway/"


def gateway_spec(openapi: dict, codes: list[str]) -> dict:
    """The gateway's operations only, with the path's resource code drawn from ``codes``
    (a real published resource and an unknown one), so cases reach the checks behind it."""
    spec = copy.deepcopy(openapi)
    spec["paths"] = {p: ops for p, ops in spec["paths"].items() if p.startswith(GATEWAY_PREFIX)}
    for operations in spec["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "code":
                    parameter["schema"] = {"type": "string", "enum": codes}
    return spec


def test_generated_requests_never_fail_the_server(openapi, fuzz, edu_grant, edu_key, fin_key, resident_entry):
    spec = gateway_spec(openapi, [resident_entry.code, "101001001/999999"])
    assert set(spec["paths"]) >= {
        "/api/exchange/gateway/{code}/records/",
        "/api/exchange/gateway/{code}/records/{key}/",
        "/api/exchange/gateway/{code}/changes/",
    }
    keys = [f"Api-Key {edu_key[1]}", f"Api-Key {fin_key[1]}", "Api-Key yw_00000000_x", ""]
    statuses = fuzz(spec, keys, 120)
    # the generated traffic did reach both refusals and answers
    assert {200, 400, 401, 403, 404} <= statuses
    assert AuditEntry.objects.filter(action="exchange.denied").exists()
