#!/usr/bin/env python
"""The notify batch API on PostgreSQL: POST /api/notify/messages/batch/ with 1,000 messages.

Drops and re-creates a throwaway database (default ``yiwang_bench_notify_batch``), migrates it,
seeds a district, a unit with a policy and a two-placeholder template, a system and a live key
(all with the services the UI uses), then posts --rounds batches of --rows messages through
Django's test client (the whole stack: key check, throttle, serializers,
``services.message_send_many``) and reports each round's wall time and query count.

Before ``message_send_many`` the endpoint called ``message_send`` once per row in a savepoint
(about 11 s for 1,000 rows in the issue). Target: well under 1 s.

Run from the project directory:  .venv/bin/python bench/notify_batch.py [--rows 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import base_env, check_local_url, log, machine_info, manage, recreate_database, table, write_results


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/yiwang_bench_notify_batch")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if not (1 <= args.rows <= 1000 and 1 <= args.rounds <= 100):
        parser.error("--rows 1..1000 (the API's MAX_BATCH), --rounds 1..100")
    check_local_url(args.database_url)
    return args


def seed():
    from yiwang.notify import services
    from yiwang.org import services as org

    district = org.unit_create(actor=None, name="测试区", code="BL", kind="district")
    edu = org.unit_create(actor=None, name="区教育局", code="EDU", kind="bureau", parent=district)
    services.policy_save(actor=None, unit=edu, signature="北仑区教育局", daily_quota=10_000_000, per_minute=10**6)
    body = "((姓名))同学：请于((日期))参加考试。"
    services.template_save(actor=None, unit=edu, code="exam", name="考试通知", body=body)
    system = org.system_create(actor=None, name="教育业务系统", unit=edu)
    _key, raw = org.api_key_issue(actor=None, system=system, name="bench", scopes=["notify:write"], kind="live")
    return raw


def main(argv=None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="yiwang-notify-batch-"))
    try:
        recreate_database(args.database_url)
        env = base_env(args.database_url, tmp)
        manage(["migrate", "--noinput"], env)
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "YIWANG_VAR_DIR", "DJANGO_SETTINGS_MODULE")})
        import django

        django.setup()
        from django.conf import settings
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from yiwang.notify import tasks
        from yiwang.notify.models import Message

        settings.ALLOWED_HOSTS = ["*"]
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}
        tasks.kick = lambda **kw: None  # no broker: the dispatcher is not what is measured
        raw = seed()
        client = Client()
        rows_out = []
        for round_no in range(args.rounds):
            base = 13800000000 + round_no * args.rows
            messages = [
                {"mobile": str(base + n), "template": "exam", "reference": f"r{round_no}-{n}",
                 "values": {"姓名": f"学生{n}", "日期": "周一"}}
                for n in range(args.rows)
            ]  # fmt: skip
            payload = json.dumps({"messages": messages}, ensure_ascii=False)
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.post("/api/notify/messages/batch/", payload, content_type="application/json",
                                       HTTP_AUTHORIZATION=f"Api-Key {raw}")  # fmt: skip
                elapsed = time.perf_counter() - started
            if response.status_code != 201:
                raise SystemExit(f"round {round_no}: {response.status_code} {response.content[:500]!r}")
            rows_out.append([round_no + 1, args.rows, f"{elapsed * 1000:.0f}", len(queries)])
        stored = Message.objects.count()
        assert stored == args.rows * args.rounds, stored
        times = [float(r[2]) for r in rows_out]
        print(table(["round", "rows", "ms", "queries"], rows_out))
        log(f"median {statistics.median(times):.0f} ms per {args.rows}-row batch; {stored} messages stored")
        write_results("notify_batch", {"machine": machine_info(), "rows": args.rows, "rounds": rows_out,
                                       "median_ms": statistics.median(times)})  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
