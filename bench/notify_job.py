#!/usr/bin/env python
"""A 1,000,000-row SMS job on PostgreSQL: validated, persisted and ready to dispatch.

Drops and re-creates a throwaway database (default ``yiwang_bench_notify``), migrates it, seeds a
district, a sender and a template with two placeholders (``((姓名))``, ``((日期))``), then writes a
--rows CSV (valid mainland numbers; --bad-share of the rows broken in turn: a bad number, an
empty placeholder value, a number with letters) and times, in this process:

  upload     ``services.job_create`` (the sheet is checked and stored under MEDIA_ROOT)
  validate   ``services.job_validate``: every row read, checked and rendered; valid rows written
             with COPY in batches of ``services.INSERT_BATCH``; the error report saved
  ready      ``services.job_confirm`` (quota reserved) + ``services.job_start_due`` (status
             ``sending``, the dispatcher woken: here a no-op, no broker is involved)

The target: upload + validate + ready ≤ 60 s on 2 cores. To show where the time goes, the same
file is then read again without the database: (1) only the CSV parse (``Sheet.rows``), (2) the
parse plus the per-row check and render (``services._row_problem``), (3) (2) plus building the
COPY rows in memory; with --profile, cProfile of ``job_validate`` on a second job (top functions
by own time). Unless --skip-experiments, EXPERIMENTS (not the shipped engine: patched in this
process or applied to the bench database only, to size the suggested changes; ``notify_message``
is emptied before each):

  E1  pipelined COPY: ``services._insert_rows`` hands each batch to a thread with its own
      connection, so PostgreSQL inserts one batch while this thread reads and checks the next
      (in the shipped engine the two take turns: parse 5,000 rows, then wait for their COPY);
  E2  the shipped inserts without Django's four single-column foreign-key indexes on
      ``notify_message`` (job_id, unit_id, template_id, created_by_id), when the engine still has
      them (job_id and unit_id lead composite indexes already); skipped otherwise;
  E3  E2 (or the shipped indexes, when E2 was skipped) with the table's triggers disabled, i.e.
      without the per-row foreign-key checks (needs a superuser; shows what the three FK checks a
      row cost, not a proposal to drop them).

Checks: rows stored = valid rows, the error count = the broken rows, (job, row) unique, statuses
``created``.

Run from the project directory:  .venv/bin/python bench/notify_job.py [--rows 1000000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import resource
import shutil
import sys
import tempfile
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
    postgres_backends_of,
    recreate_database,
    server_version,
    table,
    write_results,
)

TARGET_SECONDS = 60.0
TEMPLATE_BODY = "((姓名))家长您好：本学期期末考试安排在((日期))，请提醒孩子按时到校。"
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红"
PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "157",
    "158",
    "159",
    "166",
    "177",
    "180",
    "181",
    "186",
    "187",
    "188",
    "189",
    "191",
    "199",
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark validating and persisting a large SMS job (notify) on PostgreSQL "
        "(drops and re-creates the --database-url database).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/yiwang_bench_notify")
    parser.add_argument("--rows", type=int, default=1_000_000, help="data rows in the CSV")
    parser.add_argument("--bad-share", type=float, default=0.01, help="share of broken rows")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--profile", action="store_true", help="also cProfile job_validate on a second job")
    parser.add_argument("--profile-rows", type=int, default=200_000, help="rows of the profiled job")
    parser.add_argument("--skip-experiments", action="store_true")
    args = parser.parse_args(argv)
    if not (1 <= args.rows <= 1_000_000 and 0 <= args.bad_share < 1 and 1 <= args.profile_rows <= args.rows):
        parser.error("--rows 1..1,000,000 (the platform's limit), --bad-share 0..1, --profile-rows 1..rows")
    check_local_url(args.database_url)
    return args


# --- the sheet ------------------------------------------------------------------------------


def write_csv(path: Path, rows: int, bad_share: float, seed: int) -> dict:
    """The recipients file: header + ``rows`` rows; every 1/bad_share-th row is broken."""
    rng = random.Random(seed)
    every = round(1 / bad_share) if bad_share else 0
    bad = {"mobile": 0, "empty_value": 0, "letters": 0}
    kinds = list(bad)
    used: set[str] = set()
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("手机号,姓名,日期\n")
        for i in range(rows):
            mobile = f"{rng.choice(PREFIXES)}{rng.randrange(10**8):08d}"
            while mobile in used:  # distinct numbers, as a real list would mostly be
                mobile = f"{rng.choice(PREFIXES)}{rng.randrange(10**8):08d}"
            used.add(mobile)
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else "")
            day = f"{rng.randrange(1, 13)}月{rng.randrange(1, 29)}日"
            if every and i % every == every // 2:
                kind = kinds[(i // every) % len(kinds)]
                bad[kind] += 1
                if kind == "mobile":
                    mobile = mobile[:7]
                elif kind == "empty_value":
                    day = ""
                else:
                    mobile = mobile[:5] + "abc" + mobile[8:]
            out.write(f"{mobile},{name},{day}\n")
    return {"rows": rows, "bad": bad, "bad_total": sum(bad.values()), "bytes": path.stat().st_size}


# --- seed -----------------------------------------------------------------------------------


def seed():
    from yiwang.notify import services
    from yiwang.org import services as org
    from yiwang.org.models import Role

    org.ensure_roles()
    district = org.unit_create(actor=None, name="压测区", code="NB", kind="district")
    unit = org.unit_create(actor=None, name="压测区教育局", code="NB-EDU", kind="bureau", parent=district)
    sender = org.person_create(
        actor=None,
        username="notify_sender",
        full_name="短信发送员",
        posts=[org.PostSpec(unit=unit, role=Role.objects.get(code=Role.STAFF), title="科员")],
    )
    services.policy_save(
        actor=None,
        unit=None,
        signature="压测区政府",
        daily_quota=10**8,
        per_minute=10**7,
        approval_threshold=10**8,
    )
    template = services.template_save(actor=None, unit=unit, code="exam", name="期末考试通知", body=TEMPLATE_BODY)
    return unit, sender, template


def upload_of(path: Path):
    from django.core.files import File

    return File(path.open("rb"), name="名单.csv")


# --- phases ---------------------------------------------------------------------------------


class Clock:
    """Wall time and this process's CPU time of a block."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall0, _cpu() - self.cpu0

    def as_dict(self) -> dict:
        return {"seconds": round(self.wall, 2), "process_cpu_s": round(self.cpu, 2)}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main_job(args, path: Path, unit, sender, template, database_url: str) -> dict:
    from yiwang.notify import services, tasks
    from yiwang.notify.models import Job

    tasks.kick = lambda *, urgent: None  # no broker in this bench: "ready" = status sending
    tasks.validate_job.delay = lambda *a, **kw: None  # validated below, in this process
    phases = {}
    with CpuSampler(postgres_backends_of(database_url)) as pg_cpu:
        with Clock() as upload_clock:
            upload = upload_of(path)
            job = services.job_create(actor=sender, unit=unit, template=template, upload=upload)
            upload.close()
        phases["upload"] = upload_clock.as_dict()
        log(f"upload (job_create): {upload_clock.wall:.2f}s")
        with Clock() as validate_clock:
            job = services.job_validate(job=job)
        phases["validate"] = validate_clock.as_dict()
        log(f"validate (job_validate): {validate_clock.wall:.2f}s -> {job.status}, {job.valid_rows:,} valid")
        with Clock() as ready_clock:
            services.job_confirm(actor=sender, job=job)
            services.job_start_due()
        phases["ready"] = ready_clock.as_dict()
        job.refresh_from_db()
        log(f"ready (job_confirm + job_start_due): {ready_clock.wall:.2f}s -> {job.status}")
    total = sum(p["seconds"] for p in phases.values())
    phases["total"] = {"seconds": round(total, 2), "target_seconds": TARGET_SECONDS, "met": total <= TARGET_SECONDS}
    phases["postgres_cpu_s"] = round(pg_cpu.seconds, 2)
    return {
        "job_id": job.pk,
        "status": job.status,
        "phases": phases,
        "counts": {
            "total_rows": job.total_rows,
            "valid_rows": job.valid_rows,
            "invalid_rows": job.invalid_rows,
            "opted_out_rows": job.opted_out_rows,
            "parts": job.parts,
            "error_sample": len(job.errors),
            "rows_per_s": round(job.total_rows / phases["validate"]["seconds"])
            if phases["validate"]["seconds"]
            else None,
            "status_sending": job.status == Job.Status.SENDING,
        },
    }


def checks(job_id: int, expected_valid: int) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT row), min(status), max(status) FROM notify_message WHERE job_id = %s",
            [job_id],
        )
        stored, distinct_rows, min_status, max_status = cursor.fetchone()
        cursor.execute("SELECT pg_total_relation_size('notify_message'), pg_relation_size('notify_message')")
        total_bytes, heap_bytes = cursor.fetchone()
    return {
        "rows_stored": stored,
        "distinct_rows": distinct_rows,
        "statuses": sorted({min_status, max_status}),
        "ok": stored == expected_valid == distinct_rows and min_status == max_status == "created",
        "notify_message_mb": round(total_bytes / 2**20, 1),
        "notify_message_heap_mb": round(heap_bytes / 2**20, 1),
    }


def row_filler(template):
    """What ``services._row_problem`` takes for the template: its compiled body (the engine since
    ``text.compile_body``), or the template itself (the engine before)."""
    from yiwang.notify import text

    return text.compile_body(template.body) if hasattr(text, "compile_body") else template


def breakdown(path: Path, template, unit) -> dict:
    """The same file without the database: parse, then + check/render, then + COPY row tuples."""
    from yiwang.notify import services, spreadsheet, text
    from yiwang.notify.models import Message

    policy = services.policy_for(unit)
    fill = row_filler(template)
    out = {}

    def open_sheet():
        handle = path.open("rb")
        return handle, spreadsheet.open_sheet(handle, "名单.csv")

    handle, sheet = open_sheet()
    with Clock() as c:
        n = sum(1 for _ in sheet.rows())
    handle.close()
    out["parse_only"] = {**c.as_dict(), "rows": n}
    log(f"breakdown: CSV parse only {c.wall:.2f}s")

    handle, sheet = open_sheet()
    mobile_col = sheet.mobile_column()
    columns = {name: sheet.header.index(name) for name in text.placeholders(template.body)}
    with Clock() as c:
        valid = 0
        for _number, values in sheet.rows():
            prepared, _problem = services._row_problem(values, mobile_col, columns, fill, policy.signature)
            valid += prepared is not None
    handle.close()
    out["parse_and_check"] = {**c.as_dict(), "valid": valid}
    log(f"breakdown: parse + check/render {c.wall:.2f}s")

    handle, sheet = open_sheet()
    with Clock() as c:
        batch = []
        for number, values in sheet.rows():
            prepared, _problem = services._row_problem(values, mobile_col, columns, fill, policy.signature)
            if prepared is not None:
                row = (1, number, unit.pk, template.pk, prepared.mobile, prepared.body, prepared.parts, 1)
                batch.append((*row, Message.Status.CREATED, False, "notify", "", "", None, 0, "", "", "", "", ""))
            if len(batch) >= services.INSERT_BATCH:
                batch = []
    handle.close()
    out["parse_check_and_rows"] = c.as_dict()
    log(f"breakdown: parse + check/render + COPY tuples {c.wall:.2f}s")

    # Per-row micro-costs of the check, on a sample row.
    render_row = (
        text.compile_body(template.body)
        if hasattr(text, "compile_body")
        else (lambda row: text.render(template.body, row))
    )
    values = ["13800138000", "王小明", "12月1日"]
    samples = 200_000
    for name, fn in {
        "normalise_mobile+is_valid_mobile": lambda: services.is_valid_mobile(services.normalise_mobile(values[0])),
        "render (compiled body)": lambda: render_row({"姓名": values[1], "日期": values[2]}),
        "_row_problem (whole)": lambda: services._row_problem(values, 0, columns, fill, policy.signature),
    }.items():
        began = time.perf_counter()
        for _ in range(samples):
            fn()
        out.setdefault("per_row_us", {})[name] = round((time.perf_counter() - began) / samples * 1e6, 2)
    return out


def pipelined_inserts():
    """EXPERIMENT E1: batches go to an inserter thread (its own connection) through a small queue."""
    import queue
    import threading

    from yiwang.notify import services

    shipped = services._insert_rows
    pending: queue.Queue = queue.Queue(maxsize=4)
    state: dict = {"thread": None, "error": None}

    def inserter():
        from django.db import connection

        try:
            for _ in range(10**7):  # bounded; ends at the None sentinel
                item = pending.get()
                if item is None:
                    break
                if state["error"] is None:
                    try:
                        shipped(*item)
                    except Exception as error:  # noqa: BLE001 - re-raised in the caller
                        state["error"] = error
        finally:
            connection.close()

    def insert_rows(job, batch, priority):
        if state["thread"] is None:
            state["thread"] = threading.Thread(target=inserter, daemon=True)
            state["thread"].start()
        if batch:
            pending.put((job, batch, priority))
        if len(batch) < services.INSERT_BATCH:  # job_validate's last call: wait for the inserts
            pending.put(None)
            state["thread"].join()
            state["thread"] = None
            if state["error"] is not None:
                error, state["error"] = state["error"], None
                raise error

    return shipped, insert_rows


REDUNDANT_FK_INDEXES = r"\((job_id|unit_id|template_id|created_by_id)\)$"


def experiments(path: Path, unit, sender, template) -> dict:
    from django.db import connection

    from yiwang.notify import services

    def fresh_job():
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE notify_message CASCADE")
            cursor.execute("ANALYZE notify_message")
        upload = upload_of(path)
        job = services.job_create(actor=sender, unit=unit, template=template, upload=upload)
        upload.close()
        return job

    def sql(statement: str, params=None):
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else None

    # Django's automatic single-column indexes of the four foreign keys: job_id and unit_id are
    # the leading columns of (job_id, row) / (job_id, status) and (unit_id, created_at) already.
    redundant = sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'notify_message' AND indexdef ~ %s",
        [REDUNDANT_FK_INDEXES],
    )
    shipped_insert, insert_rows = pipelined_inserts()
    runs = {
        "E1_pipelined_copy": {"pipelined": True},
        "E2_without_4_redundant_fk_indexes": {"drop": True},
        "E3_E2_and_fk_triggers_disabled": {"drop": True, "no_triggers": True},
    }
    out = {}
    if not redundant:  # the engine no longer creates them: E2 would be the shipped run again
        runs.pop("E2_without_4_redundant_fk_indexes")
        log("no single-column FK indexes on notify_message (already dropped by the engine): E2 skipped")
    for label, how in runs.items():
        job = fresh_job()
        try:
            if how.get("drop"):
                for name, _definition in redundant:
                    sql(f'DROP INDEX "{name}"')
            if how.get("no_triggers"):
                sql("ALTER TABLE notify_message DISABLE TRIGGER ALL")  # the FK checks (superuser only)
            if how.get("pipelined"):
                services._insert_rows = insert_rows
            with CpuSampler(postgres_backends_of(os.environ["DATABASE_URL"])) as pg_cpu, Clock() as clock:
                job = services.job_validate(job=job)
        except Exception as error:  # noqa: BLE001 - e.g. not a superuser for E3: reported, not fatal
            out[label] = {"error": repr(error)[:300], "ok": True}
            log(f"EXPERIMENT {label}: skipped ({error!r})")
            continue
        finally:
            services._insert_rows = shipped_insert
            if how.get("no_triggers"):
                sql("ALTER TABLE notify_message ENABLE TRIGGER ALL")
            if how.get("drop"):
                for _name, definition in redundant:
                    sql(definition.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
        stored = services.Message.objects.filter(job=job).count()
        out[label] = {
            **clock.as_dict(),
            "postgres_cpu_s": round(pg_cpu.seconds, 2),
            "valid_rows": job.valid_rows,
            "rows_stored": stored,
            "ok": stored == job.valid_rows and job.status == "validated",
        }
        if how.get("drop"):
            out[label]["dropped_indexes"] = [name for name, _d in redundant]
        log(
            f"EXPERIMENT {label}: validate {clock.wall:.2f}s (process CPU {clock.cpu:.1f}s, PostgreSQL CPU "
            f"{pg_cpu.seconds:.1f}s), {stored:,} rows stored"
        )
    return out


def profile_job(path: Path, rows: int, unit, sender, template, tmp: Path) -> dict:
    """cProfile of job_validate on the first ``rows`` rows (a second job)."""
    from yiwang.notify import services

    small = tmp / "profile.csv"
    with path.open("rb") as src, small.open("wb") as dst:
        for index, line in enumerate(src):
            if index > rows:
                break
            dst.write(line)
    upload = upload_of(small)
    job = services.job_create(actor=sender, unit=unit, template=template, upload=upload)
    upload.close()
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    services.job_validate(job=job)
    profiler.disable()
    elapsed = time.perf_counter() - began
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream).sort_stats("tottime")
    stats.print_stats(25)
    top = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in sorted(
        stats.stats.items(), key=lambda item: item[1][2], reverse=True
    )[:25]:
        short = filename.replace(str(PROJECT_DIR) + "/", "").split("site-packages/")[-1]
        top.append(
            {
                "function": f"{short}:{line}({func})",
                "calls": ncalls,
                "own_s": round(tottime, 3),
                "cumulative_s": round(cumtime, 3),
            }
        )
    return {"rows": rows, "seconds_under_profiler": round(elapsed, 2), "top_by_own_time": top}


def main(argv=None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="yiwang-notify-job-bench-"))
    try:
        env = base_env(args.database_url, tmp)
        log(f"re-creating database {check_local_url(args.database_url)['dbname']}")
        recreate_database(args.database_url)
        manage(["migrate", "--noinput"], env)
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "YIWANG_VAR_DIR", "DJANGO_SETTINGS_MODULE")})
        import django

        django.setup()
        from django.db import connection

        path = tmp / "recipients.csv"
        log(f"writing {args.rows:,} rows to {path.name}")
        sheet = write_csv(path, args.rows, args.bad_share, args.seed)
        log(f"CSV: {sheet['bytes'] / 2**20:.1f} MB, {sheet['bad_total']:,} broken rows")
        unit, sender, template = seed()
        job = main_job(args, path, unit, sender, template, args.database_url)
        check = checks(job["job_id"], job["counts"]["valid_rows"])
        check["invalid_rows_match_broken"] = job["counts"]["invalid_rows"] == sheet["bad_total"]
        log(f"checks: {check}")
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'notify_message' ORDER BY indexname")
            index_list = [row[0] for row in cursor.fetchall()]
        parts = breakdown(path, template, unit)
        tried = None if args.skip_experiments else experiments(path, unit, sender, template)
        profile = profile_job(path, args.profile_rows, unit, sender, template, tmp) if args.profile else None
        connection.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    payload = {
        "benchmark": "notify_job",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": vars(args),
        "machine": machine_info(),
        "loadavg": os.getloadavg(),
        "postgres": server_version(args.database_url),
        "sheet": sheet,
        "job": job,
        "checks": check,
        "notify_message_indexes": index_list,
        "breakdown": parts,
        "experiments": tried,
        "profile": profile,
    }
    out = write_results("notify-job", payload)
    p = job["phases"]
    print()
    print(f"yiwang notify job bench: {args.rows:,} rows on PostgreSQL {payload['postgres']}, {os.cpu_count()} CPUs")
    print(
        table(
            ["phase", "seconds", "process CPU s"],
            [[name, p[name]["seconds"], p[name]["process_cpu_s"]] for name in ("upload", "validate", "ready")]
            + [["total (target ≤ 60 s)", p["total"]["seconds"], ""]],
        )
    )
    print(
        f"PostgreSQL CPU during the job: {p['postgres_cpu_s']} s; rows/s in validate: {job['counts']['rows_per_s']:,}"
    )
    print(
        table(
            ["same file, no database", "seconds", "process CPU s"],
            [
                [name, parts[name]["seconds"], parts[name]["process_cpu_s"]]
                for name in ("parse_only", "parse_and_check", "parse_check_and_rows")
            ],
        )
    )
    print("per-row µs: " + ", ".join(f"{k} {v}" for k, v in parts["per_row_us"].items()))
    if tried:
        print(
            table(
                ["EXPERIMENT (not shipped)", "validate s", "process CPU s", "PostgreSQL CPU s", "ok"],
                [
                    [k, v.get("seconds"), v.get("process_cpu_s"), v.get("postgres_cpu_s"), v.get("error") or v["ok"]]
                    for k, v in tried.items()
                ],
            )
        )
    if profile:
        print(f"\ncProfile of job_validate over {profile['rows']:,} rows ({profile['seconds_under_profiler']} s):")
        for entry in profile["top_by_own_time"][:15]:
            print(f"  {entry['own_s']:>7.3f}s own {entry['calls']:>9} calls  {entry['function']}")
    print(f"\nJSON: {out.relative_to(PROJECT_DIR)}")
    ok = check["ok"] and check["invalid_rows_match_broken"] and job["status"] == "sending"
    ok = ok and all(v["ok"] for v in (tried or {}).values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
