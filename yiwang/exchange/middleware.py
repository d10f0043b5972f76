"""The gateway's short path through Django.

Calls to the API gateway come from other systems with an API key, ask for JSON and need
none of the browser middleware (sessions, CSRF, messages, locale negotiation, OTP, htmx,
CSP, the acting-post switch, login throttling, usage metering — the gateway keeps its own
counters). This middleware sits right after ``AuditContextMiddleware`` (so the audit still
records the caller's IP) and hands those paths straight to their view: on the benchmark
that is about half of the Django time of a lookup (bench/exchange_lookup.py). Every other
path costs one ``startswith``.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import Resolver404, resolve


class GatewayMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.prefixes = tuple(settings.YIWANG_EXCHANGE_GATEWAY_PATHS)

    def __call__(self, request):
        path = request.path_info
        if not self.prefixes or not path.startswith(self.prefixes):
            return self.get_response(request)
        try:
            match = resolve(path)
        except Resolver404:
            return self.get_response(request)  # the normal path renders the 404
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        if callable(getattr(response, "render", None)):  # a DRF Response: rendered as Django's handler would
            response = response.render()
        return response
