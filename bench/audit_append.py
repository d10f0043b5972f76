#!/usr/bin/env python
"""Audit trail throughput on PostgreSQL: concurrent appends, then chaining and verifying.

Drops and re-creates a throwaway database (default ``yiwang_bench_audit``), migrates it, then
--writers threads (each with its own database connection) call
``yiwang.core.audit.audit_record(...)`` in a loop for --duration seconds. Afterwards it
times ``audit_chain()`` over the whole backlog and ``audit_verify()`` over the chain.

Run from the project directory:  .venv/bin/python bench/audit_append.py [--writers 16] ...
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    PROJECT_DIR,
    CpuSampler,
    base_env,
    check_local_url,
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

MAX_APPENDS_PER_WRITER = 10_000_000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark yiwang's audit trail on PostgreSQL: concurrent audit_record(), then "
        "audit_chain() and audit_verify() (drops and re-creates the --database-url database).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/yiwang_bench_audit")
    parser.add_argument("--writers", type=int, default=16, help="concurrent writer threads (one connection each)")
    parser.add_argument("--duration", type=int, default=15, help="seconds of appending")
    parser.add_argument(
        "--chain-batch",
        type=int,
        default=None,
        help="entries per chaining transaction (default: settings.YIWANG_AUDIT_CHAIN_BATCH)",
    )
    args = parser.parse_args(argv)
    if not (1 <= args.writers <= 256 and 1 <= args.duration <= 3600):
        parser.error("--writers 1..256, --duration 1..3600")
    check_local_url(args.database_url)
    return args


def append_phase(writers: int, duration: float) -> dict:
    from django.db import connection

    from yiwang.core.audit import audit_record

    gate = threading.Barrier(writers + 1, timeout=60)
    deadline_box: list[float] = []
    lock = threading.Lock()
    per_writer: list[dict] = []

    def writer(index: int) -> None:
        latencies: list[float] = []
        errors: list[str] = []
        try:
            connection.ensure_connection()  # connect before the clock starts
            gate.wait()
            deadline = deadline_box[0]
            for i in range(MAX_APPENDS_PER_WRITER):  # bounded in count and by the deadline
                began = time.perf_counter()
                if began >= deadline:
                    break
                try:
                    audit_record(
                        actor=None,
                        action="bench.append",
                        object_type="bench",
                        object_id=str(i),
                        changes={"n": [i, i + 1]},
                    )
                except Exception as error:  # noqa: BLE001 - count it, go on
                    errors.append(repr(error)[:200])
                    if len(errors) > 100:
                        break
                    continue
                latencies.append(time.perf_counter() - began)
        finally:
            connection.close()
            with lock:
                per_writer.append({"writer": index, "lat": latencies, "errors": errors})

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(writers)]
    for thread in threads:
        thread.start()
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    deadline_box.append(started + duration)
    gate.wait()
    for thread in threads:
        thread.join(timeout=duration + 60)
    elapsed = time.perf_counter() - started
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    lat = sorted(x for w in per_writer for x in w["lat"])
    errors = [e for w in per_writer for e in w["errors"]]
    client_cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    counts = sorted(len(w["lat"]) for w in per_writer)
    return {
        "appends": len(lat),
        "seconds": round(elapsed, 2),
        "appends_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": round(percentile(lat, 50) * 1000, 2) if lat else None,
        "p90_ms": round(percentile(lat, 90) * 1000, 2) if lat else None,
        "p99_ms": round(percentile(lat, 99) * 1000, 2) if lat else None,
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        "errors": len(errors),
        "error_samples": errors[:5],
        "per_writer_min_max": [counts[0], counts[-1]] if counts else None,
        "bench_process_cpu_s": round(client_cpu, 2),
        "bench_process_cpu_util": round(client_cpu / elapsed, 2),  # 1.0 = one core busy (GIL)
    }


def chain_phase(batch: int | None) -> dict:
    from django.conf import settings
    from django.db import connection

    from yiwang.core.audit import audit_chain
    from yiwang.core.models import AuditChainHead, AuditEntry

    # Time each kind of statement audit_chain sends (cheap wrapper, no SQL kept).
    spent: dict[str, list[float]] = {}

    def timer(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            head = sql.lstrip()[:6].upper()
            kind = (
                "select unlinked entries"
                if head == "SELECT" and "core_auditentry" in sql
                else "bulk_update entries"
                if head == "UPDATE" and "core_auditentry" in sql
                else "chain head + transaction"
            )
            slot = spent.setdefault(kind, [0, 0.0])
            slot[0] += 1
            slot[1] += time.perf_counter() - began

    backlog = AuditEntry.objects.filter(seq__isnull=True).count()
    with connection.execute_wrapper(timer):
        started = time.perf_counter()
        linked = audit_chain(batch=batch)
        elapsed = time.perf_counter() - started
    head = AuditChainHead.objects.get(pk=1)
    return {
        "backlog": backlog,
        "linked": linked,
        "batch": batch or settings.YIWANG_AUDIT_CHAIN_BATCH,
        "seconds": round(elapsed, 2),
        "entries_per_s": round(linked / elapsed, 1) if elapsed else None,
        "head_seq": head.seq,
        "sql_breakdown": {k: {"statements": n, "seconds": round(s, 2)} for k, (n, s) in spent.items()},
    }


def verify_phase() -> dict:
    from yiwang.core.audit import audit_verify
    from yiwang.core.models import AuditEntry

    entries = AuditEntry.objects.count()
    started = time.perf_counter()
    result = audit_verify()
    elapsed = time.perf_counter() - started
    return {
        "entries": entries,
        "result": None if result is None else str(result),
        "ok": result is None,
        "seconds": round(elapsed, 2),
        "entries_per_s": round(entries / elapsed, 1) if elapsed else None,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="yiwang-audit-bench-"))
    try:
        env = base_env(args.database_url, tmp)
        log(f"re-creating database {check_local_url(args.database_url)['dbname']}")
        recreate_database(args.database_url)
        manage(["migrate", "--noinput"], env)
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "YIWANG_VAR_DIR", "DJANGO_SETTINGS_MODULE")})
        import django

        django.setup()
        from django.db import connection

        from yiwang.core.models import AuditEntry

        before = AuditEntry.objects.count()
        connection.close()

        log(f"appending: {args.writers} writers x {args.duration}s")
        with CpuSampler(postgres_backends_of(args.database_url)) as pg_cpu:
            append = append_phase(args.writers, args.duration)
        append["postgres_cpu_s"] = round(pg_cpu.seconds, 2)
        append["postgres_cpu_ms_per_append"] = round(pg_cpu.seconds * 1000 / max(1, append["appends"]), 3)
        stored = AuditEntry.objects.count() - before
        append["rows_stored"] = stored
        log(f"appended {append['appends']:,} ({append['appends_per_s']:,.0f}/s); rows stored {stored:,}")

        log("audit_chain() over the backlog")
        chain = chain_phase(args.chain_batch)
        log(f"chained {chain['linked']:,} in {chain['seconds']}s")
        log("audit_verify()")
        verify = verify_phase()
        log(f"verify -> {verify['result']!r} in {verify['seconds']}s")
        connection.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    payload = {
        "benchmark": "audit_append",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": vars(args),
        "machine": machine_info(),
        "loadavg": os.getloadavg(),
        "postgres": server_version(args.database_url),
        "append": append,
        "chain": chain,
        "verify": verify,
    }
    out = write_results("audit_append", payload)

    print()
    print(
        f"yiwang audit bench: {args.writers} writers x {args.duration}s on PostgreSQL {payload['postgres']}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        table(
            ["phase", "entries", "seconds", "per second", "p50 ms", "p99 ms", "errors / result"],
            [
                [
                    "append (audit_record)",
                    f"{append['appends']:,}",
                    append["seconds"],
                    f"{append['appends_per_s']:,.0f}",
                    append["p50_ms"],
                    append["p99_ms"],
                    append["errors"],
                ],
                [
                    "chain (audit_chain)",
                    f"{chain['linked']:,}",
                    chain["seconds"],
                    f"{chain['entries_per_s']:,.0f}",
                    "",
                    "",
                    f"head seq {chain['head_seq']:,}",
                ],
                [
                    "verify (audit_verify)",
                    f"{verify['entries']:,}",
                    verify["seconds"],
                    f"{verify['entries_per_s']:,.0f}",
                    "",
                    "",
                    repr(verify["result"]),
                ],
            ],
        )
    )
    print(
        f"append: PostgreSQL CPU {append['postgres_cpu_ms_per_append']} ms/append; bench process CPU "
        f"{append['bench_process_cpu_util']} cores (Python threads share one GIL)"
    )
    print(
        "chain SQL time: "
        + ", ".join(f"{k}: {v['statements']} stmts {v['seconds']}s" for k, v in chain["sql_breakdown"].items())
    )
    print(f"\nJSON: {out.relative_to(PROJECT_DIR)}")
    ok = verify["ok"] and append["errors"] == 0 and chain["linked"] == chain["backlog"] and stored == append["appends"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
