"""Usage metering: who used which module, per unit per day.

Requests only bump an in-process counter; the counters are written in one upsert at
most every ``YIWANG_USAGE_FLUSH_SECONDS`` (and at exit), so metering adds no query to a
request. The assessment and project evaluation read ``UsageDaily``.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections import Counter

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import UsageDaily

IGNORED = {"", "admin", "schema", "healthz", "djdt"}
_lock = threading.Lock()
_counts: Counter[tuple] = Counter()
_last_flush = time.monotonic()


def record(*, module: str, unit_id: int | None, user_id: int | None, day=None) -> None:
    """Count one use of ``module``; flushes if the buffer is old enough."""
    key = (day or timezone.localdate(), unit_id or 0, user_id or 0, module)
    with _lock:
        _counts[key] += 1
        due = time.monotonic() - _last_flush >= settings.YIWANG_USAGE_FLUSH_SECONDS
    if due:
        flush()


def flush() -> int:
    """Write buffered counts (one upsert); returns the number of rows touched."""
    global _last_flush
    with _lock:
        rows = list(_counts.items())
        _counts.clear()
        _last_flush = time.monotonic()
    if not rows:
        return 0
    table = UsageDaily._meta.db_table
    sql = (
        f"INSERT INTO {table} (day, unit_id, user_id, module, hits) VALUES (%s, %s, %s, %s, %s) "
        f"ON CONFLICT (day, unit_id, user_id, module) DO UPDATE SET hits = {table}.hits + excluded.hits"
    )
    params = [(day, unit_id, user_id, module, hits) for (day, unit_id, user_id, module), hits in rows]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, params)
    return len(rows)


def discard() -> None:
    """Drop buffered counts without writing them (tests: a previous test's requests)."""
    with _lock:
        _counts.clear()


def module_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return ""
    names = [name for name in match.app_names if name != "api"]
    return names[0] if names else ""


class UsageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and response.status_code < 400:
            module = module_of(request)
            if module not in IGNORED:
                record(module=module, unit_id=user.acting_unit_id, user_id=user.pk)
        return response


def _flush_at_exit() -> None:
    try:
        flush()
    except Exception:  # noqa: BLE001 - the database may already be gone at exit
        pass


atexit.register(_flush_at_exit)
