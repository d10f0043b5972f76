"""Hot-path SQL: one statement, prepared once per connection on PostgreSQL.

Django's psycopg cursors bind parameters on the client and never prepare; for statements
run on every gateway call (the registry lookup, the audit INSERT) a server-side prepared
statement saves the server's parse and plan and most of the client's quoting
(bench/exchange_lookup.py). Behind pgbouncer use session pooling, or pgbouncer ≥ 1.21 with
``max_prepared_statements``.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection


def fetchall_prepared(sql: str, params: Sequence) -> list[tuple]:
    """Run ``sql`` (``%s`` placeholders) and return its rows; joins the current transaction."""
    if connection.vendor == "postgresql":
        import psycopg

        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:  # server-side binding
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchall()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
