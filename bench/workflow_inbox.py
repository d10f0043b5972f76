#!/usr/bin/env python
"""The workflow inbox (待办) on PostgreSQL with 1,000,000 tasks: in-process and over HTTP.

Seeds (once; re-used on later runs, ``--reseed`` forces it) a throwaway database, default
``yiwang_bench_workflow``: the demo district, --users bench people, and --tasks task rows
written with set-based SQL (``INSERT ... SELECT generate_series``, not the ORM): ~4 tasks a
case, ~95 % of them done or cancelled, open ones due from a week ago to three weeks ahead.
One target person, ``wf_target``, has exactly --target-open open tasks (plus --target-done
done ones) and an active delegation from ``wf_principal`` (who has no open tasks), so the
inbox query has its real shape (``assignee_id IN (me, principals) OR delegate_id = me``).
Then VACUUM ANALYZE and:

  (a) in-process, --iterations times each: the inbox first page as a page renders it
      (``selectors.inbox`` + ``core.ui.paginate`` (20 rows, with the count) + iterating the
      rows + ``Task.due_state()``), and ``selectors.inbox_count`` (the top-bar badge);
      p50/p95/p99 ms, and ``EXPLAIN (ANALYZE, BUFFERS)`` of every task query of the page;
  (b) over HTTP, gunicorn -w --workers + wrk (or Python threads), logged in as wf_target:
      ``/api/workflow/tasks/`` if it answers 200, else the HTML inbox ``/workflow/`` if it
      renders something, and the workbench ``/`` (its figures count the inbox and overdue
      tasks, and the top bar shows inbox_count).

Run from the project directory:  .venv/bin/python bench/workflow_inbox.py [--reseed] ...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    PROJECT_DIR,
    CpuSampler,
    base_env,
    check_local_url,
    children_of,
    log,
    machine_info,
    manage,
    percentile,
    postgres_backends_of,
    recreate_database,
    server_version,
    table,
    write_results,
)
from http_bench import cookies_from, port_in_use, request, run_python, run_wrk, stop, wait_healthy

HOST = "127.0.0.1"
TARGET, PRINCIPAL = "wf_target", "wf_principal"
BENCH_PASSWORD = "Bench@Workflow-2026"
TARGET_P95_MS = 50.0
SEED_VERSION = 2  # bump when the seed's shape changes: an older seed is then rebuilt


# --- database and seed ---------------------------------------------------------------------


def database_exists(database_url: str) -> bool:
    import psycopg

    p = check_local_url(database_url)
    kwargs = {"host": p["host"], "port": p["port"], "user": p["user"], "dbname": "postgres", "connect_timeout": 10}
    if p["password"]:
        kwargs["password"] = p["password"]
    with psycopg.connect(autocommit=True, **kwargs) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [p["dbname"]]).fetchone() is not None


def seed_params(args: argparse.Namespace) -> dict:
    return {
        "version": SEED_VERSION,
        "tasks": args.tasks,
        "users": args.users,
        "target_open": args.target_open,
        "target_done": args.target_done,
    }


def stored_seed() -> dict | None:
    """The marker row a finished seed leaves (``bench_seed``), or None."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('bench_seed') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("SELECT params, stats FROM bench_seed ORDER BY seeded_at DESC LIMIT 1")
        row = cursor.fetchone()
    if row is None:
        return None
    params, stats = (json.loads(v) if isinstance(v, str) else v for v in row)
    return {"params": params, "stats": stats}


def seed_people(users: int) -> dict:
    """Demo district + ``users`` bench people (bulk, like http_bench) + the target and principal."""
    import datetime as dt

    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone

    from yiwang.core.search import index_text
    from yiwang.org import demo
    from yiwang.org import services as org
    from yiwang.org.models import Delegation, Post, Role, Unit, User

    demo.load()
    units = list(Unit.objects.order_by("path"))
    staff = Role.objects.get(code=Role.STAFF)
    batch = 1000
    for start in range(1, users + 1, batch):  # bounded: users / batch rounds
        people = []
        for n in range(start, min(users, start + batch - 1) + 1):
            user = User(
                username=f"wf{n:06d}", full_name=f"办理人{n}", mobile=f"137{n:08d}", password=make_password(None)
            )
            user.search_text = index_text(*(getattr(user, name, "") for name in User.SEARCH_FIELDS))
            people.append(user)
        with transaction.atomic():
            User.objects.bulk_create(people, batch_size=batch)
            Post.objects.bulk_create(
                [
                    Post(user=u, unit=units[u.pk % len(units)], role=staff, title="科员", is_primary=True)
                    for u in people
                ],
                batch_size=batch,
            )
    edu = Unit.objects.get(code="BL-EDU") if Unit.objects.filter(code="BL-EDU").exists() else units[1]
    target = org.person_create(
        actor=None,
        username=TARGET,
        full_name="压测待办人",
        password=BENCH_PASSWORD,
        posts=[org.PostSpec(unit=edu, role=staff, title="科员")],
    )
    principal = org.person_create(
        actor=None,
        username=PRINCIPAL,
        full_name="压测委托人",
        posts=[org.PostSpec(unit=edu, role=staff, title="科员")],
    )
    now = timezone.now()
    Delegation.objects.create(
        principal=principal,
        delegate=target,
        starts_at=now - dt.timedelta(days=1),
        ends_at=now + dt.timedelta(days=3650),
        reason="压测：委托给待办人",
    )
    return {"units": len(units), "target_id": target.pk, "principal_id": principal.pk}


SEED_SQL = """
-- Session-local: no FK triggers while bulk loading (the rows are consistent by construction
-- and checked afterwards); the indexes are maintained as usual.
SET LOCAL session_replication_role = replica;

-- The bench people have consecutive ids (bulk_create into a fresh table; checked before this
-- runs), so person number x is first + x: an array of 5,000 ids would be de-TOASTed per row.
CREATE TEMP TABLE bench_people ON COMMIT DROP AS
  SELECT min(id) AS first, count(*)::int AS n FROM org_user WHERE username LIKE 'wf0%%';
CREATE TEMP TABLE bench_units ON COMMIT DROP AS
  SELECT array_agg(id ORDER BY id) AS ids, count(*)::int AS n FROM org_unit;
CREATE TEMP TABLE bench_defs ON COMMIT DROP AS
  SELECT array_agg(id ORDER BY id) AS ids, array_agg(module ORDER BY id) AS modules, count(*)::int AS n
  FROM workflow_processdefinition WHERE code LIKE 'bench.%%';

-- One row per general case k: status by k %% 20 (10 %% running, 5 %% rejected, 5 %% withdrawn,
-- 80 %% approved); running cases started in the last 30 days, finished ones in the last 2 years.
CREATE TEMP TABLE bench_cases ON COMMIT DROP AS
  SELECT k,
         CASE WHEN k %% 20 IN (0, 10) THEN 'running' WHEN k %% 20 = 1 THEN 'rejected'
              WHEN k %% 20 = 2 THEN 'withdrawn' ELSE 'approved' END AS status,
         CASE WHEN k %% 20 IN (0, 10)
              THEN %(now)s::timestamptz - make_interval(days => (k * 13) %% 30, secs => (k * 7919) %% 86400)
              ELSE %(now)s::timestamptz - make_interval(days => 31 + (k * 17) %% 700, secs => (k * 7919) %% 86400)
         END AS started
  FROM generate_series(1, %(cases)s) AS k;

INSERT INTO workflow_case (id, created_at, updated_at, definition_id, module, title, content_type_id, object_id,
                           fields, initiator_id, unit_id, lead_unit_id, status, step_index, step_round, started_at,
                           submitted_at, returned_from, finished_at, due_date, suspended_at, paused_days,
                           extended_days, overdue_notified)
SELECT c.k, c.started, c.started, d.ids[1 + c.k %% d.n], d.modules[1 + c.k %% d.n], '压测公文 ' || c.k, NULL, '',
       '{}'::jsonb, p.first + (c.k * 31) %% p.n, u.ids[1 + c.k %% u.n], NULL, c.status,
       CASE WHEN c.status = 'running' THEN 2 END, 3, c.started, c.started, NULL,
       CASE WHEN c.status <> 'running' THEN c.started + interval '3 days' END,
       (c.started + interval '21 days')::date, NULL, 0, 0, false
FROM bench_cases c, bench_people p, bench_units u, bench_defs d;

-- Four tasks a case: step 0, step 1, then a two-person countersign at step 2 (open while the
-- case runs). Assignees: a hash of (case, task), spread over all bench people (open tasks
-- over nearly all of them, ~10 each); the target gets none of these.
INSERT INTO workflow_task (case_id, module, title, step_index, step_name, round, assignee_id, delegate_id, sender_id,
                           required, status, outcome, created_at, due_date, acted_at, acted_by_id, reminded_on)
SELECT c.k, d.modules[1 + c.k %% d.n], '压测公文 ' || c.k, least(j, 2),
       (ARRAY['科室审核', '分管领导审核', '会签'])[1 + least(j, 2)], 1 + least(j, 2),
       p.first + abs(hashtext(c.k || '/' || j)::bigint) %% p.n,
       CASE WHEN c.status = 'running' AND j >= 2 AND c.k %% 1000 = 0 THEN p.first + (c.k * 3) %% p.n END,
       p.first + (c.k * 31) %% p.n, j >= 2, t.status,
       CASE WHEN t.status <> 'done' THEN ''
            WHEN c.status = 'rejected' AND j = 3 THEN 'rejected' ELSE 'approved' END,
       c.started + make_interval(hours => j),
       CASE WHEN c.status = 'running' AND j >= 2
            THEN CASE WHEN (c.k::bigint * 2654435761) %% 10 = 0 THEN NULL
                      ELSE %(today)s::date + ((c.k::bigint * 2654435761) %% 29)::int - 7 END
            ELSE (c.started + make_interval(days => 3 + j))::date END,
       CASE WHEN t.status = 'done' THEN c.started + make_interval(hours => j, mins => 30) END,
       CASE WHEN t.status = 'done' THEN p.first + abs(hashtext(c.k || '/' || j)::bigint) %% p.n END,
       NULL
FROM bench_cases c
CROSS JOIN generate_series(0, 3) AS j
CROSS JOIN LATERAL (SELECT CASE WHEN c.status = 'running' AND j >= 2 THEN 'open'
                                WHEN c.status = 'withdrawn' AND j >= 1 THEN 'cancelled'
                                ELSE 'done' END AS status) t
CROSS JOIN bench_people p CROSS JOIN bench_defs d
WHERE 4 * (c.k - 1) + j < %(general)s;

-- The target: --target-open running cases with one open task each, due from 8 days ago to
-- 16 days ahead (1 in 20 without a limit), received over the last 30 days ...
INSERT INTO workflow_case (id, created_at, updated_at, definition_id, module, title, content_type_id, object_id,
                           fields, initiator_id, unit_id, lead_unit_id, status, step_index, step_round, started_at,
                           submitted_at, returned_from, finished_at, due_date, suspended_at, paused_days,
                           extended_days, overdue_notified)
SELECT %(cases)s + g.i, s.started, s.started, d.ids[1 + g.i %% d.n], d.modules[1 + g.i %% d.n],
       '请示事项 ' || g.i, NULL, '', '{}'::jsonb, p.first + (g.i * 31) %% p.n, u.ids[1 + g.i %% u.n], NULL,
       CASE WHEN g.i <= %(target_open)s THEN 'running' ELSE 'approved' END,
       CASE WHEN g.i <= %(target_open)s THEN 0 END, 1, s.started, s.started, NULL,
       CASE WHEN g.i > %(target_open)s THEN s.started + interval '2 days' END,
       (s.started + interval '21 days')::date, NULL, 0, 0, false
FROM generate_series(1, %(target_open)s + %(target_done)s) AS g(i)
CROSS JOIN LATERAL (SELECT CASE WHEN g.i <= %(target_open)s
                                THEN %(now)s::timestamptz - make_interval(days => g.i %% 30, mins => g.i)
                                ELSE %(now)s::timestamptz - make_interval(days => 31 + g.i %% 300, mins => g.i)
                           END AS started) s
CROSS JOIN bench_people p CROSS JOIN bench_units u CROSS JOIN bench_defs d;

-- ... and --target-done finished cases whose one task the target approved.
INSERT INTO workflow_task (case_id, module, title, step_index, step_name, round, assignee_id, delegate_id, sender_id,
                           required, status, outcome, created_at, due_date, acted_at, acted_by_id, reminded_on)
SELECT c.id, c.module, c.title, 0, '科室审核', 1, %(target)s, NULL, c.initiator_id, false,
       CASE WHEN c.status = 'running' THEN 'open' ELSE 'done' END,
       CASE WHEN c.status = 'running' THEN '' ELSE 'approved' END,
       c.started_at,
       CASE WHEN c.status = 'running'
            THEN CASE WHEN c.id %% 20 = 0 THEN NULL ELSE %(today)s::date + ((c.id * 7) %% 25)::int - 8 END
            ELSE (c.started_at + interval '3 days')::date END,
       CASE WHEN c.status <> 'running' THEN c.started_at + interval '1 hour' END,
       CASE WHEN c.status <> 'running' THEN %(target)s END,
       NULL
FROM workflow_case c WHERE c.id > %(cases)s;

SELECT setval(pg_get_serial_sequence('workflow_case', 'id'), (SELECT max(id) FROM workflow_case));
"""

CHECK_SQL = {
    "tasks_without_case": "SELECT count(*) FROM workflow_task t LEFT JOIN workflow_case c ON c.id = t.case_id "
    "WHERE c.id IS NULL",
    "tasks_without_assignee": "SELECT count(*) FROM workflow_task t LEFT JOIN org_user u ON u.id = t.assignee_id "
    "WHERE u.id IS NULL",
    "cases_without_initiator": "SELECT count(*) FROM workflow_case c LEFT JOIN org_user u ON u.id = c.initiator_id "
    "WHERE u.id IS NULL",
}


def seed_workflow(args: argparse.Namespace, people: dict) -> dict:
    """The cases and tasks, set-based; then FK checks, VACUUM ANALYZE and a marker row."""
    from django.db import connection, transaction
    from django.utils import timezone

    from yiwang.workflow import services

    started = time.monotonic()
    for code, module in (("bench.oa", "oa"), ("bench.gov", "gov"), ("bench.dispatch", "dispatch")):
        services.definition_save(
            actor=None,
            code=code,
            name=f"压测流程 {module}",
            module=module,
            steps=[
                {"key": "review", "name": "科室审核", "kind": "single",
                 "assignee": {"type": "initiator_leader", "rank": ""}, "time_limit": 3},
                {"key": "leader", "name": "分管领导审核", "kind": "single",
                 "assignee": {"type": "initiator_leader", "rank": "deputy"}, "time_limit": 3},
                {"key": "sign", "name": "会签", "kind": "countersign",
                 "assignee": {"type": "lead_unit", "role": "staff", "rank": ""}, "time_limit": 5},
            ],
        )  # fmt: skip
    target_rows = args.target_open + args.target_done
    general = args.tasks - target_rows
    params = {
        "now": timezone.now(),
        "today": timezone.localdate(),
        "general": general,
        "cases": (general + 3) // 4,
        "target": people["target_id"],
        "target_open": args.target_open,
        "target_done": args.target_done,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id), count(*) FROM org_user WHERE username LIKE 'wf0%%'")
        first, last, count = cursor.fetchone()
        if last - first + 1 != count:
            raise SystemExit(f"bench people ids are not consecutive ({first}..{last} for {count}); use --reseed")
        cursor.execute(SEED_SQL, params)
    inserted = time.monotonic() - started
    log(f"inserted {args.tasks:,} tasks in {inserted:.1f}s")
    checks = {}
    with connection.cursor() as cursor:
        for name, sql in CHECK_SQL.items():
            cursor.execute(sql)
            checks[name] = cursor.fetchone()[0]
        if any(checks.values()):
            raise SystemExit(f"seed is inconsistent: {checks}")
        vacuum_started = time.monotonic()
        for name in ("workflow_task", "workflow_case", "org_user", "org_post", "org_delegation"):
            cursor.execute(f"VACUUM (ANALYZE) {name}")  # what autovacuum would get to after a bulk load
        vacuumed = time.monotonic() - vacuum_started
        cursor.execute(
            "SELECT status, count(*) FROM workflow_task GROUP BY status ORDER BY status",
        )
        by_status = dict(cursor.fetchall())
        cursor.execute("SELECT count(*) FROM workflow_case")
        cases = cursor.fetchone()[0]
        cursor.execute("SELECT count(DISTINCT assignee_id) FROM workflow_task WHERE status = 'open'")
        open_assignees = cursor.fetchone()[0]
    stats = {
        "seed_date": str(params["today"]),
        "tasks": sum(by_status.values()),
        "tasks_by_status": by_status,
        "cases": cases,
        "people_with_open_tasks": open_assignees,
        "fk_checks": checks,
        "insert_seconds": round(inserted, 1),
        "vacuum_analyze_seconds": round(vacuumed, 1),
        **people,
    }
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_seed (seeded_at timestamptz DEFAULT now(), params jsonb, stats jsonb)")
        cursor.execute(
            "INSERT INTO bench_seed (params, stats) VALUES (%s, %s)",
            [json.dumps(seed_params(args)), json.dumps(stats, default=str)],
        )
    return stats


def table_sizes() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
               WHERE c.relname IN ('workflow_task', 'workflow_case') OR c.relname LIKE 'workflow_task_%%'
               ORDER BY c.relname"""
        )
        return {name: f"{size / 1048576:.1f} MB" for name, size in cursor.fetchall()}


# --- in-process measurement ------------------------------------------------------------------


def render_inbox_page(user, request) -> tuple[int, list]:
    """What the inbox page does with the engine: first page with its count, every row's due state."""
    from yiwang.core.ui import paginate
    from yiwang.workflow import selectors

    page = paginate(request, selectors.inbox(user=user))
    rows = [
        (t.pk, t.title, t.step_name, str(t.sender) if t.sender_id else "", t.case.status, t.due_date, t.due_state())
        for t in page
    ]
    return page.paginator.count, rows


def timed(fn, iterations: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    lat = []
    for _ in range(iterations):
        began = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - began)
    lat.sort()
    ms = [x * 1000 for x in lat]
    return {
        "iterations": iterations,
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(ms[-1], 2),
        "mean_ms": round(sum(ms) / len(ms), 2),
    }


def in_process(args: argparse.Namespace) -> dict:
    from django.db import connection
    from django.test import RequestFactory

    from yiwang.org.models import User
    from yiwang.workflow import selectors

    user = User.objects.get(username=TARGET)
    request = RequestFactory().get("/workflow/")
    request.user = user
    count, rows = render_inbox_page(user, request)
    badge = selectors.inbox_count(user)
    if count != args.target_open or badge != args.target_open or len(rows) != min(20, args.target_open):
        raise SystemExit(
            f"inbox of {TARGET}: count {count}, badge {badge}, rows {len(rows)}; expected {args.target_open}"
        )

    # The SQL one page render sends, kept with its parameters so it can be EXPLAINed as sent.
    sent: list[tuple[str, tuple, float]] = []

    def capture(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sent.append((sql, tuple(params or ()), time.perf_counter() - began))

    with connection.execute_wrapper(capture):
        render_inbox_page(user, request)
    queries = [{"ms": round(t * 1000, 2), "sql": connection.ops.compose_sql(sql, params)} for sql, params, t in sent]

    explains = []
    with connection.cursor() as cursor:
        for sql, params, _t in sent:
            if "workflow_task" not in sql:
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            explains.append(
                {
                    "query": "count" if "COUNT(" in sql.upper() else "page",
                    "sql": connection.ops.compose_sql(sql, params),
                    "uses_workflow_task_inbox": "workflow_task_inbox" in plan,
                    "execution_ms": float(m.group(1)) if (m := re.search(r"Execution Time: ([\d.]+)", plan)) else None,
                    "plan": plan,
                }
            )

    log(f"in-process: inbox page x{args.iterations}")
    page = timed(lambda: render_inbox_page(user, request), args.iterations, warmup=20)
    log(f"in-process: inbox_count x{args.iterations}")
    badge_t = timed(lambda: selectors.inbox_count(user), args.iterations, warmup=20)
    log(f"in-process: overdue count (workbench figure) x{args.iterations}")
    overdue = timed(lambda: selectors.inbox(user=user, due="overdue").count(), args.iterations, warmup=20)
    log("in-process: alternative query shapes (what-if, not the engine)")
    alternatives = alternative_shapes(user, args.iterations)
    diagnostics = request_diagnostics(user)
    return {
        "user": TARGET,
        "inbox_count": count,
        "alternatives": alternatives,
        "request_diagnostics": diagnostics,
        "queries_per_page": len(sent),
        "queries": queries,
        "inbox_page": page,
        "inbox_count_badge": badge_t,
        "overdue_count": overdue,
        "explain": explains,
    }


def alternative_shapes(user, iterations: int) -> dict:
    """The same first page fetched other ways, to size what a change in selectors.inbox would give."""
    from yiwang.workflow import selectors
    from yiwang.workflow.models import Task

    def current():
        return list(selectors.inbox(user=user)[:20])

    def ids_only():
        return list(selectors.inbox(user=user).values_list("id", flat=True)[:20])

    def two_step():
        ids = list(selectors.inbox(user=user).values_list("id", flat=True)[:20])
        rows = Task.objects.filter(pk__in=ids).select_related("sender", "assignee", "delegate", "case")
        by_id = {t.pk: t for t in rows}
        return [by_id[i] for i in ids]

    def narrow():
        qs = selectors.inbox(user=user).select_related(None).select_related("case")
        fields = ("id", "case_id", "module", "title", "step_index", "step_name", "assignee_id", "delegate_id")
        fields += ("sender_id", "status", "created_at", "due_date", "case__status")
        return list(qs.only(*fields)[:20])

    shapes = {
        "current: select_related(sender, assignee, delegate, case)[:20]": current,
        "ids only: values_list('id')[:20] (no joins)": ids_only,
        "two-step: ids[:20], then those 20 rows with select_related": two_step,
        "select_related('case') + only(the listed columns)[:20]": narrow,
    }
    return {name: timed(fn, iterations, warmup=10) for name, fn in shapes.items()}


def request_diagnostics(user) -> dict:
    """In-process (Django test client): SQL queries and SQL time of each page measured over HTTP."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    out = {}
    for path in ("/api/workflow/tasks/", "/workflow/", "/"):
        client.get(path)  # warm caches (templates, url resolver)
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(path)
            elapsed = time.perf_counter() - started
        times = [float(q["time"]) for q in ctx.captured_queries]
        out[path] = {
            "status": response.status_code,
            "queries": len(times),
            "sql_ms": round(sum(times) * 1000, 1),
            "request_ms": round(elapsed * 1000, 1),
            "task_queries": sum("workflow_task" in q["sql"] for q in ctx.captured_queries),
            "delegation_lookups": sum('FROM "org_delegation"' in q["sql"] for q in ctx.captured_queries),
            "all_sql": [[round(float(q["time"]) * 1000, 1), q["sql"][:300]] for q in ctx.captured_queries],
        }
    connection.close()
    return out


# --- HTTP -----------------------------------------------------------------------------------


def prod_env(env: dict, static_root: Path) -> dict:
    prod = dict(env)
    prod.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(60)),
            "ALLOWED_HOSTS": HOST,
            "SECURE_SSL_REDIRECT": "0",
            "YIWANG_ADMIN_2FA": "0",
            "STATIC_ROOT": str(static_root),
            "LOG_LEVEL": "WARNING",
        }
    )
    return prod


def start_gunicorn(prod: dict, tmp: Path, workers: int, port: int) -> subprocess.Popen:
    """``gunicorn yiwang.wsgi -w N`` in its own session (stop() it by pid); waits for /healthz."""
    manage(["collectstatic", "--noinput"], prod)
    cmd = [
        str(PROJECT_DIR / ".venv" / "bin" / "gunicorn"),
        "yiwang.wsgi",
        "-w",
        str(workers),
        "-b",
        f"{HOST}:{port}",
        "--error-logfile",
        str(tmp / "gunicorn.log"),
    ]
    log("starting " + " ".join(cmd[1:]))
    with open(tmp / "gunicorn.out", "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=PROJECT_DIR, env=prod, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_healthy(port, proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def login_as(port: int, username: str, password: str) -> dict[str, str]:
    """POST the login form like a browser; returns the cookies (sessionid, csrftoken)."""
    status, headers, body = request(port, "GET", "/org/login/")
    if status != 200:
        raise RuntimeError(f"GET /org/login/ -> {status}")
    jar = cookies_from(headers)
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    if "csrftoken" not in jar or not match:
        raise RuntimeError("login page gave no csrftoken cookie / form token")
    form = urlencode(
        {"csrfmiddlewaretoken": match.group(1).decode(), "username": username, "password": password, "next": "/"}
    ).encode()
    status, headers, body = request(
        port,
        "POST",
        "/org/login/",
        headers={
            "Cookie": f"csrftoken={jar['csrftoken']}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"http://{HOST}:{port}/org/login/",
        },
        body=form,
    )
    jar.update(cookies_from(headers))
    if status != 302 or "sessionid" not in jar:
        raise RuntimeError(f"login as {username} failed: {status} {body[:300]!r}")
    return jar


def dump_gunicorn_errors(tmp: Path) -> None:
    for name in ("gunicorn.log", "gunicorn.out"):
        path = tmp / name
        if path.exists() and path.stat().st_size:
            tail = path.read_text(errors="replace")[-3000:]
            if "Traceback" in tail or "ERROR" in tail or "CRITICAL" in tail:
                sys.stderr.write(f"--- {name} (tail) ---\n{tail}\n")


def http_phase(args: argparse.Namespace, env: dict, tmp: Path, tool: str) -> dict:
    prod = prod_env(env, tmp / "static")
    proc = start_gunicorn(prod, tmp, args.workers, args.port)
    try:
        jar = login_as(args.port, TARGET, BENCH_PASSWORD)
        headers = {"Cookie": f"sessionid={jar['sessionid']}"}
        probes = {}
        targets = []
        for label, path in (("inbox API", "/api/workflow/tasks/"), ("inbox page", "/workflow/")):
            status, _h, body = request(args.port, "GET", path, headers=headers)
            probes[path] = {"status": status, "bytes": len(body)}
            if status == 200 and body.strip():
                targets.append((label, path))
        if not targets:
            log("no inbox endpoint to measure over HTTP (API and /workflow/ missing or placeholders)")
        targets.append(("workbench", "/"))
        results = []
        for label, path in targets:
            status, _h, body = request(args.port, "GET", path, headers=headers)
            row = {"endpoint": label, "path": path, "verify_status": status, "body_bytes": len(body)}
            if path.startswith("/api/") and status == 200:
                data = json.loads(body)
                row["count"] = data.get("count") if isinstance(data, dict) else None
                row["rows"] = len(data.get("results", [])) if isinstance(data, dict) else len(data)
            if status != 200:
                row["error"] = f"verification returned {status}"
                results.append(row)
                continue
            if args.warmup > 0:
                run_python(args.port, path, headers, min(args.concurrency, args.workers), args.warmup)
            log(f"measuring {label} {path}: {args.duration}s, {args.concurrency} connections, {tool}")
            with (
                CpuSampler(children_of(proc.pid)) as app_cpu,
                CpuSampler(postgres_backends_of(args.database_url)) as pg_cpu,
            ):
                if tool == "wrk":
                    row.update(run_wrk(args.port, path, headers, args.concurrency, args.duration))
                else:
                    row.update(run_python(args.port, path, headers, args.concurrency, args.duration))
            done = max(1, row["requests"])
            row["gunicorn_cpu_ms_per_req"] = round(app_cpu.seconds * 1000 / done, 2)
            row["postgres_cpu_ms_per_req"] = round(pg_cpu.seconds * 1000 / done, 2)
            row["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
            # One connection: the latency of a request that does not queue behind others.
            serial_s = min(args.duration, 10)
            log(f"measuring {label} {path}: {serial_s}s, 1 connection, {tool}")
            if tool == "wrk":
                serial = run_wrk(args.port, path, headers, 1, serial_s)
            else:
                serial = run_python(args.port, path, headers, 1, serial_s)
            row["one_connection"] = {k: serial[k] for k in ("requests", "rps", "p50_ms", "p90_ms", "p99_ms", "errors")}
            results.append(row)
        if proc.poll() is not None:
            log(f"warning: gunicorn exited during the run ({proc.returncode})")
        return {"gunicorn": f"-w {args.workers} sync workers", "probes": probes, "results": results}
    finally:
        stop(proc)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark yiwang's workflow inbox on PostgreSQL with ~1M tasks: in-process page render "
        "and inbox_count percentiles, EXPLAIN ANALYZE, and HTTP under gunicorn. Seeds --database-url once "
        "(drop + create + migrate + bulk SQL) and re-uses it on later runs unless --reseed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/yiwang_bench_workflow")
    parser.add_argument("--reseed", action="store_true", help="drop and seed again even if already seeded")
    parser.add_argument("--tasks", type=int, default=1_000_000, help="task rows in total")
    parser.add_argument("--users", type=int, default=5_000, help="bench people the other tasks are spread over")
    parser.add_argument("--target-open", type=int, default=1_000, help="open tasks of the measured person")
    parser.add_argument("--target-done", type=int, default=2_000, help="done tasks of the measured person")
    parser.add_argument("--iterations", type=int, default=500, help="in-process measurements of each call")
    parser.add_argument("--duration", type=int, default=15, help="HTTP: seconds measured per endpoint")
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP: open connections")
    parser.add_argument("--workers", type=int, default=4, help="HTTP: gunicorn sync workers")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--warmup", type=float, default=3, help="HTTP: seconds of unmeasured load per endpoint")
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto", help="HTTP load generator")
    parser.add_argument("--no-http", action="store_true", help="only the in-process measurements")
    args = parser.parse_args(argv)
    if not (
        1 <= args.target_open <= 100_000
        and 0 <= args.target_done <= 100_000
        and args.tasks >= 4 * (args.target_open + args.target_done)
        and args.tasks <= 50_000_000
        and 10 <= args.users <= 1_000_000
        and 1 <= args.iterations <= 100_000
        and 1 <= args.duration <= 3600
        and 1 <= args.concurrency <= 1024
    ):
        parser.error("out of range: see --help (--tasks must be at least 4 x (--target-open + --target-done))")
    check_local_url(args.database_url)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    elif tool == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--tool wrk but wrk is not installed (apt-get install -y wrk)")
    if not args.no_http and port_in_use(args.port):
        raise SystemExit(f"127.0.0.1:{args.port} is already in use; pick another --port")

    dbname = check_local_url(args.database_url)["dbname"]
    tmp = Path(tempfile.mkdtemp(prefix="yiwang-workflow-bench-"))
    (tmp / "var").mkdir()
    env = base_env(args.database_url, tmp / "var")
    http = None
    try:
        fresh = args.reseed or not database_exists(args.database_url)
        if fresh:
            log(f"re-creating database {dbname}")
            recreate_database(args.database_url)
        manage(["migrate", "--noinput"], env)
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "YIWANG_VAR_DIR", "DJANGO_SETTINGS_MODULE")})
        import django

        django.setup()
        from django.db import connection

        seed = None if fresh else stored_seed()
        if seed is not None and seed["params"] != seed_params(args):
            log(f"{dbname} was seeded with {seed['params']}; re-seeding with {seed_params(args)}")
            seed = None
            connection.close()
            recreate_database(args.database_url)
            manage(["migrate", "--noinput"], env)
        elif seed is None and not fresh:
            log(f"{dbname} exists but holds no finished seed; re-creating it")
            connection.close()
            recreate_database(args.database_url)
            manage(["migrate", "--noinput"], env)
        if seed is None:
            log(f"seeding {args.users:,} people and {args.tasks:,} tasks")
            started = time.monotonic()
            people = seed_people(args.users)
            stats = seed_workflow(args, people)
            stats["seed_seconds"] = round(time.monotonic() - started, 1)
            seed = {"params": seed_params(args), "stats": stats, "reused": False}
            log(f"seeded in {stats['seed_seconds']}s: {stats['tasks_by_status']}")
        else:
            seed["reused"] = True
            log(f"re-using the seed of {seed['stats']['seed_date']} in {dbname} (--reseed to rebuild)")
        sizes = table_sizes()
        inproc = in_process(args)
        connection.close()
        if not args.no_http:
            http = http_phase(args, env, tmp, tool)
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        dump_gunicorn_errors(tmp)
        shutil.rmtree(tmp, ignore_errors=True)

    page, badge = inproc["inbox_page"], inproc["inbox_count_badge"]
    payload = {
        "benchmark": "workflow_inbox",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": vars(args),
        "load_tool": None if args.no_http else tool,
        "machine": machine_info(),
        "loadavg": os.getloadavg(),
        "postgres": server_version(args.database_url),
        "seed": seed,
        "relation_sizes": sizes,
        "target_p95_ms": TARGET_P95_MS,
        "in_process": inproc,
        "http": http,
    }
    out = write_results("workflow-inbox", payload)

    print()
    stats = seed["stats"]
    print(
        f"yiwang workflow inbox bench: {stats['tasks']:,} tasks ({stats['tasks_by_status']}), "
        f"{stats['cases']:,} cases; "
        f"{TARGET} has {inproc['inbox_count']:,} open; PostgreSQL {payload['postgres']}; {os.cpu_count()} CPUs"
    )
    print(
        table(
            ["in-process", "iterations", "p50 ms", "p95 ms", "p99 ms", "max ms"],
            [
                [name, r["iterations"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["max_ms"]]
                for name, r in (
                    (f"inbox first page ({inproc['queries_per_page']} queries)", page),
                    ("inbox_count (badge)", badge),
                    ("inbox overdue count", inproc["overdue_count"]),
                )
            ],
        )
    )
    print(
        table(
            ["what-if query shape for the first page (in-process)", "p50 ms", "p95 ms", "p99 ms"],
            [[name, r["p50_ms"], r["p95_ms"], r["p99_ms"]] for name, r in inproc["alternatives"].items()],
        )
    )
    print(
        table(
            [
                "request (test client)",
                "status",
                "queries",
                "task queries",
                "delegation lookups",
                "SQL ms",
                "request ms",
            ],
            [
                [k, v["status"], v["queries"], v["task_queries"], v["delegation_lookups"], v["sql_ms"], v["request_ms"]]
                for k, v in inproc["request_diagnostics"].items()
            ],
        )
    )
    for e in inproc["explain"]:
        print(
            f"EXPLAIN {e['query']}: {e['execution_ms']} ms, workflow_task_inbox used: {e['uses_workflow_task_inbox']}"
        )
    if http:
        print(f"HTTP probes: {http['probes']}")
        print(
            table(
                [
                    "endpoint",
                    "path",
                    "req/s",
                    "p50 ms",
                    "p90 ms",
                    "p99 ms",
                    "requests",
                    "errors",
                    "app ms/req",
                    "PG ms/req",
                    "1 conn p50/p99 ms",
                ],
                [
                    [
                        r["endpoint"],
                        r["path"],
                        r.get("rps"),
                        r.get("p50_ms"),
                        r.get("p90_ms"),
                        r.get("p99_ms"),
                        r.get("requests"),
                        r.get("errors", r.get("error")),
                        r.get("gunicorn_cpu_ms_per_req"),
                        r.get("postgres_cpu_ms_per_req"),
                        f"{r['one_connection']['p50_ms']} / {r['one_connection']['p99_ms']}"
                        if "one_connection" in r
                        else "",
                    ]
                    for r in http["results"]
                ],
            )
        )
    ok = page["p95_ms"] <= TARGET_P95_MS
    print(f"\ninbox page p95 {page['p95_ms']} ms (target <= {TARGET_P95_MS:.0f} ms): {'ok' if ok else 'MISSED'}")
    if not all(e["uses_workflow_task_inbox"] for e in inproc["explain"]):
        print("note: the planner did not use workflow_task_inbox for every inbox query (see the plans in the JSON)")
    print(f"JSON: {out.relative_to(PROJECT_DIR)}")
    http_ok = http is None or all("error" not in r and r.get("errors") == 0 for r in http["results"])
    return 0 if ok and http_ok else 1


if __name__ == "__main__":
    sys.exit(main())
