#!/usr/bin/env python
"""Authorised single-record lookup by ID number through the exchange gateway, on PostgreSQL.

Builds a throwaway database (drop + create + migrate), a published 人口基础信息 entry of
区公安分局 reviewed through the workflow engine, a consumer system (区教育局 入学报名系统)
with an API key and a conditional grant approved by the provider's leader, and
--residents synthetic residents (valid ID numbers). Then it starts gunicorn with production
settings (DEBUG=0, Redis cache when REDIS_URL is set) and measures with wrk, each thread
cycling through --sample different ID numbers:

  (full)  GET /api/exchange/gateway/<code>/records/<id>/?purpose=...
          key + scope + purpose + published entry + grant + items + rate limit, masking,
          and one hash-chained audit entry per call (plus the day counters);
  (bare)  GET /bench/raw/<code>/records/<id>/
          the same lookup and JSON with none of the checks and no audit
          (bench/exchange_urls.py, served only under bench/exchange_settings.py).

The two alternate (full, bare, full, bare …) so background load hits both alike. After
the runs it checks the evidence: one ``exchange.read`` audit entry per 200 response.

Run from the project directory:
    .venv/bin/python bench/exchange_lookup.py [--residents 1000000] [--duration 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    PROJECT_DIR,
    CpuSampler,
    base_env,
    check_local_url,
    children_of,
    log,
    machine_info,
    manage,
    postgres_backends_of,
    recreate_database,
    server_version,
    table,
    write_results,
)
from http_bench import HOST, port_in_use, request, run_wrk, stop, wait_healthy

PURPOSE = "义务教育入学资格核验"
QUOTED_PURPOSE = quote(PURPOSE)


def seed(residents: int, sample: int, reuse: bool) -> dict:
    """Org, entry, grant and residents, built with the services the UI uses; returns the facts."""
    from django.db import connection

    from yiwang.exchange import demo, imports
    from yiwang.exchange import services as exchange
    from yiwang.exchange.models import Grant, Resident
    from yiwang.org import services as org
    from yiwang.org.models import ApiKey, ConsumerSystem, Post, Role, Unit, User
    from yiwang.workflow import services as workflow
    from yiwang.workflow.models import Task

    if not reuse or not Grant.objects.exists():
        org.ensure_roles()
        roles = {r.code: r for r in Role.objects.all()}
        district = org.unit_create(actor=None, name="北仑区人民政府", code="BL", kind="district")
        egov_unit = org.unit_create(actor=None, name="区电子政务办", code="BL-EGOV", kind="bureau", parent=district)
        psb = org.unit_create(actor=None, name="区公安分局", code="BL-PSB", kind="bureau", parent=district)
        edu = org.unit_create(actor=None, name="区教育局", code="BL-EDU", kind="bureau", parent=district)

        def person(username, name, unit, role, rank=""):
            return org.person_create(
                actor=None, username=username, full_name=name, mobile=None, password="Bench-2026-pass",
                posts=[org.PostSpec(unit=unit, role=roles[role], title=name, leader_rank=rank)],
            )  # fmt: skip

        egov = person("egov", "吴建国", egov_unit, Role.EGOV_OFFICE, "principal")
        psb_staff = person("psb_staff", "钱勇", psb, Role.STAFF)
        psb_head = person("psb_head", "冯刚", psb, Role.LEADER, "principal")
        edu_staff = person("staff", "王丽", edu, Role.STAFF)
        entry = exchange.entry_save(
            actor=psb_staff, data=dict(demo.RESIDENT), items=list(demo.RESIDENT_ITEMS), provider=psb
        )
        entry = exchange.entry_submit(actor=psb_staff, entry=entry)
        task = Task.objects.get(case=entry.review_case, assignee=egov, status=Task.Status.OPEN)
        workflow.task_approve(task=task, actor=egov, comment="同意发布")
        entry.refresh_from_db()
        system = org.system_create(actor=None, name="入学报名系统", unit=edu)
        items = ["id_number", "name", "gender", "birth_date", "address", "street"]
        req = exchange.request_create(
            actor=edu_staff, system=system, entry=entry, items=items, purpose=PURPOSE, legal_basis="《义务教育法》"
        )
        exchange.request_decide(actor=psb_head, request=req, approve=True, reason="同意")
    system = ConsumerSystem.objects.get(name="入学报名系统")
    ApiKey.objects.filter(system=system, name="bench").update(revoked_at=None)
    ApiKey.objects.filter(system=system, name="bench").delete()
    _key, raw = org.api_key_issue(actor=None, system=system, name="bench", scopes=["exchange:read"])
    grant = Grant.objects.get(system=system, revoked_at__isnull=True)
    have = Resident.objects.count()
    if have < residents:
        started = time.monotonic()
        imports.residents_generate(count=residents - have, seed=2026 + have)
        log(f"generated {residents - have:,} residents in {time.monotonic() - started:.1f}s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE exchange_resident")
        cursor.execute("SELECT id_number FROM exchange_resident TABLESAMPLE SYSTEM (5) LIMIT %s", [sample])
        ids = [row[0] for row in cursor.fetchall()]
    random.Random(7).shuffle(ids)
    del Post, Unit, User  # imported for clarity of the seed; not needed further
    return {
        "raw_key": raw,
        "code": grant.resource_code,
        "items": grant.items,
        "ids": ids,
        "residents": Resident.objects.count(),
    }


def audit_counts() -> dict:
    from yiwang.core.models import AuditEntry

    return {
        "read": AuditEntry.objects.filter(action="exchange.read").count(),
        "denied": AuditEntry.objects.filter(action="exchange.denied").count(),
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/yiwang_bench_exchange")
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="different ID numbers the load cycles through")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (> 1: gthread workers)")
    parser.add_argument("--concurrency", type=int, default=8, help="wrk connections")
    parser.add_argument("--duration", type=int, default=30, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per target")
    parser.add_argument("--rounds", type=int, default=2, help="full/bare pairs")
    parser.add_argument("--port", type=int, default=8766)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed for this benchmark (apt-get install -y wrk)")
    check_local_url(args.database_url)
    if port_in_use(args.port):
        raise SystemExit(f"port {args.port} is in use")
    with tempfile.TemporaryDirectory(prefix="yiwang-bench-exchange-") as tmp_name:
        tmp = Path(tmp_name)
        env = base_env(args.database_url, tmp)
        if not args.reuse:
            recreate_database(args.database_url)
        manage(["migrate", "--noinput"], env, timeout=900)
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "YIWANG_VAR_DIR", "DJANGO_SETTINGS_MODULE")})
        import django

        django.setup()
        facts = seed(args.residents, args.sample, args.reuse)
        log(f"{facts['residents']:,} residents; resource {facts['code']}; sample of {len(facts['ids']):,} IDs")

        full_paths = tmp / "full.txt"
        bare_paths = tmp / "bare.txt"
        full_paths.write_text(
            "".join(
                f"/api/exchange/gateway/{facts['code']}/records/{i}/?purpose={QUOTED_PURPOSE}\n" for i in facts["ids"]
            )
        )
        bare_paths.write_text("".join(f"/bench/raw/{facts['code']}/records/{i}/\n" for i in facts["ids"]))

        static_root = tmp / "static"
        prod = dict(env)
        prod.update(
            {
                "DEBUG": "0",
                "SECRET_KEY": "bench-" + "x" * 50,
                "ALLOWED_HOSTS": HOST,
                "SECURE_SSL_REDIRECT": "0",
                "YIWANG_ADMIN_2FA": "0",
                "STATIC_ROOT": str(static_root),
                "LOG_LEVEL": "WARNING",
                "DJANGO_SETTINGS_MODULE": "exchange_settings",
                "PYTHONPATH": str(BENCH_DIR),
                "BENCH_ITEMS": ",".join(i for i in ("id_number", "name", "gender", "birth_date", "address", "street")),
                "YIWANG_EXCHANGE_PER_MINUTE": "100000000",  # measure the check, not the refusal
            }
        )
        manage(["collectstatic", "--noinput"], prod)
        cmd = [
            str(PROJECT_DIR / ".venv" / "bin" / "gunicorn"),
            "yiwang.wsgi",
            "-w",
            str(args.workers),
            *(["-k", "gthread", "--threads", str(args.threads)] if args.threads > 1 else []),
            "-b",
            f"{HOST}:{args.port}",
            "--error-logfile",
            str(tmp / "gunicorn.log"),
        ]
        log("starting " + " ".join(cmd[1:]))
        with open(tmp / "gunicorn.out", "wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=PROJECT_DIR, env=prod, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_healthy(args.port, proc)
            auth = {"Authorization": f"Api-Key {facts['raw_key']}"}
            first = facts["ids"][0]
            status, _h, body = request(
                args.port, "GET", f"/api/exchange/gateway/{facts['code']}/records/{first}/?purpose={QUOTED_PURPOSE}",
                headers=auth,
            )  # fmt: skip
            if status != 200:
                raise SystemExit(f"gateway verification: {status} {body[:300]!r}")
            status_bare, _h, body_bare = request(args.port, "GET", f"/bench/raw/{facts['code']}/records/{first}/")
            log(f"full answer {len(body)} B: {body[:160].decode(errors='replace')}")
            log(f"bare answer {len(body_bare)} B (status {status_bare})")
            targets = {"full": (full_paths, auth), "bare": (bare_paths, {})}
            for name, (paths, headers) in targets.items():
                run_wrk(args.port, "/", headers, args.concurrency, args.warmup, paths_file=paths)
                log(f"warm-up {name} done")
            time.sleep(1)
            before = audit_counts()
            runs = []
            for round_no in range(1, args.rounds + 1):
                for name, (paths, headers) in targets.items():
                    with (
                        CpuSampler(children_of(proc.pid)) as app_cpu,
                        CpuSampler(postgres_backends_of(args.database_url)) as pg_cpu,
                    ):
                        row = run_wrk(args.port, "/", headers, args.concurrency, args.duration, paths_file=paths)
                    requests = max(row["requests"], 1)
                    row["app_cpu_ms_per_request"] = round(app_cpu.seconds * 1000 / requests, 3)
                    row["postgres_cpu_ms_per_request"] = round(pg_cpu.seconds * 1000 / requests, 3)
                    row.update({"target": name, "round": round_no})
                    row.pop("wrk_output", None)
                    runs.append(row)
                    log(
                        f"{name} round {round_no}: {row['rps']:.0f} req/s, p50 {row['p50_ms']} ms, "
                        f"p99 {row['p99_ms']} ms, non-200 {row['non200']}, CPU/request app "
                        f"{row['app_cpu_ms_per_request']} ms, PostgreSQL {row['postgres_cpu_ms_per_request']} ms"
                    )
        finally:
            stop(proc)
        from yiwang.exchange import gateway

        gateway.counters_flush()
        after = audit_counts()

    def mean(target: str, field: str) -> float:
        values = [r[field] for r in runs if r["target"] == target]
        return round(sum(values) / len(values), 1)

    full_rps, bare_rps = mean("full", "rps"), mean("bare", "rps")
    served = sum(r["requests"] - r["non200"] for r in runs if r["target"] == "full")
    summary = {
        "full_rps": full_rps,
        "full_p99_ms": max(r["p99_ms"] for r in runs if r["target"] == "full"),
        "bare_rps": bare_rps,
        "bare_p99_ms": max(r["p99_ms"] for r in runs if r["target"] == "bare"),
        "full_share_of_bare": round(full_rps / bare_rps, 3) if bare_rps else None,
        "full_path_200_responses": served,
        "audit_reads_written": after["read"] - before["read"],
        # wrk stops with up to --concurrency requests in flight per run: the server answers (and
        # audits) them, wrk no longer counts them
        "evidence_complete": served <= after["read"] - before["read"] <= served + args.concurrency * args.rounds,
    }
    print()
    print(table(["target", "round", "req/s", "p50 ms", "p90 ms", "p99 ms", "non-200"],
                [[r["target"], r["round"], r["rps"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["non200"]]
                 for r in runs]))  # fmt: skip
    print()
    for key, value in summary.items():
        print(f"{key}: {value}")
    write_results(
        "exchange-lookup" + ("-gthread" if args.threads > 1 else ""),
        {
            "machine": machine_info(),
            "postgres": server_version(args.database_url),
            "args": vars(args) | {"database_url": "(local)"},
            "residents": facts["residents"],
            "runs": runs,
            "summary": summary,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
