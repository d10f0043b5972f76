#!/usr/bin/env python
"""Workflow task actions per second on PostgreSQL under concurrent users, and lock contention.

Drops and re-creates a throwaway database (default ``yiwang_bench_workflow_actions``),
migrates it, and builds --users units, each with a principal leader (who approves) and a
staff member (who starts cases), plus one archivist for the second step. Then, each phase
with --users threads (one database connection each, closed at the end) released together:

  own-shared    --per-user cases per unit on ONE shared two-step process (step 1: the
                initiator's principal leader, single; step 2: the archivist). Every leader
                approves their own step-1 tasks with ``services.task_approve`` as fast as
                possible for --duration seconds (or until done). This is the real engine.
  own-per-unit  the same, but each unit's cases run on a process definition of its own.
                The engine locks the case with ``select_for_update().select_related
                ("definition")``, and PostgreSQL's plain FOR UPDATE also locks the joined
                definition row, so with one shared process every action in the district
                waits for the one before it; this phase shows the cost of that.
  own-of-self   EXPERIMENT (not the shipped engine): the own-shared workload with the bench
                process's ``services._lock`` replaced by one that locks the case row only
                (``select_for_update(of=("self",))``): what the fix would give.
                The three own-* phases run --rounds times, interleaved (fresh cases each
                time), and the median round is reported: the other load on a shared machine
                then falls on all three alike.
  countersign   --cs-cases cases whose step 1 is a countersign by all --users leaders; every
                leader approves their own task on the SAME cases, in the same order: the
                case row lock serialises them. Runs until every case is signed (at most
                --cs-timeout s); each case must advance exactly once.
  http          if ``POST /api/workflow/tasks/{id}/approve/`` exists: the own-shared workload
                over HTTP (gunicorn -w --workers, each leader logged in with a session),
                --http-per-user tasks per leader.

Reported per phase: actions, actions/s, p50/p95/p99 latency, errors (must be 0), the
PostgreSQL CPU per action, how busy the bench process was (Python threads share one GIL),
sampled lock waits (pg_stat_activity / pg_locks every 20 ms), and a check of every case
touched: one STEP_DONE per completed step, the next step opened exactly once.

Run from the project directory:  .venv/bin/python bench/workflow_actions.py [--duration 15] ...
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

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
from http_bench import port_in_use, request, stop
from workflow_inbox import BENCH_PASSWORD, HOST, dump_gunicorn_errors, login_as, prod_env, start_gunicorn

MAX_ACTIONS_PER_THREAD = 1_000_000


# --- people and cases -----------------------------------------------------------------------


def seed_people(users: int) -> dict:
    """--users units under the district, each with a principal leader and a staff member."""
    from yiwang.org import services as org
    from yiwang.org.models import Role

    org.ensure_roles()
    roles = {r.code: r for r in Role.objects.all()}
    district = org.unit_create(actor=None, name="压测区", code="WFA", kind="district")
    archivist = org.person_create(
        actor=None,
        username="wfa_archivist",
        full_name="归档员",
        password=BENCH_PASSWORD,
        posts=[org.PostSpec(unit=district, role=roles["staff"], title="科员")],
    )
    pairs = []
    for i in range(1, users + 1):
        unit = org.unit_create(actor=None, name=f"压测局{i:02d}", code=f"WFA-{i:02d}", kind="bureau", parent=district)
        leader = org.person_create(
            actor=None,
            username=f"wfa_leader{i:02d}",
            full_name=f"局长{i:02d}",
            password=BENCH_PASSWORD,
            posts=[org.PostSpec(unit=unit, role=roles["leader"], title="局长", leader_rank="principal")],
        )
        staff = org.person_create(
            actor=None,
            username=f"wfa_staff{i:02d}",
            full_name=f"科员{i:02d}",
            posts=[org.PostSpec(unit=unit, role=roles["staff"], title="科员")],
        )
        pairs.append({"unit": unit, "leader": leader, "staff": staff})
    return {"archivist": archivist, "pairs": pairs}


def define(code: str, first: dict) -> object:
    from yiwang.workflow import services

    return services.definition_save(
        actor=None,
        code=code,
        name=f"压测 {code}",
        module="oa",
        steps=[
            {"key": "first", "name": "第一步", "time_limit": 3, **first},
            {
                "key": "archive",
                "name": "归档",
                "kind": "single",
                "assignee": {"type": "person", "usernames": ["wfa_archivist"]},
                "time_limit": 5,
            },
        ],
    )


LEADER_STEP = {"kind": "single", "assignee": {"type": "initiator_leader", "rank": "principal"}}


def start_cases(pairs: list[dict], definitions: list, per_user: int, tag: str) -> tuple[list[list[tuple]], list[int]]:
    """``per_user`` cases for each unit (definitions[i] for unit i); returns each leader's
    open step-1 tasks as (task id, case id), and all the case ids."""
    from django.db import transaction

    from yiwang.workflow import services
    from yiwang.workflow.models import Task

    started = time.monotonic()
    case_ids = []
    jobs = []
    for i, pair in enumerate(pairs):
        with transaction.atomic():
            mine = [
                services.case_start(
                    process=definitions[i], initiator=pair["staff"], title=f"{tag} {i + 1:02d}-{n:04d}"
                ).pk
                for n in range(per_user)
            ]
        case_ids += mine
        tasks = list(
            Task.objects.filter(case_id__in=mine, step_index=0, status=Task.Status.OPEN, assignee=pair["leader"])
            .order_by("case_id")
            .values_list("id", "case_id")
        )
        if len(tasks) != per_user:
            raise SystemExit(f"{tag}: expected {per_user} open tasks for {pair['leader']}, found {len(tasks)}")
        jobs.append(tasks)
    log(f"{tag}: started {len(case_ids):,} cases in {time.monotonic() - started:.1f}s")
    return jobs, case_ids


# --- measuring --------------------------------------------------------------------------------


class LockSampler:
    """Every ``interval`` s: backends of the bench database that are active / waiting on a lock,
    and the locks not granted (by lock type and relation), on a connection of its own."""

    def __init__(self, database_url: str, interval: float = 0.02, max_seconds: float = 3600) -> None:
        self.p = check_local_url(database_url)
        self.interval, self.max_seconds = interval, max_seconds
        self.samples = 0
        self.active = 0
        self.waiting = 0
        self.wait_events: Counter = Counter()
        self.not_granted: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        kwargs = {k: self.p[k] for k in ("host", "port", "user", "dbname")}
        if self.p["password"]:
            kwargs["password"] = self.p["password"]
        with psycopg.connect(autocommit=True, connect_timeout=10, **kwargs) as conn:
            deadline = time.monotonic() + self.max_seconds
            while not self._stop.wait(self.interval) and time.monotonic() < deadline:  # bounded
                rows = conn.execute(
                    "SELECT wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid()",
                    [self.p["dbname"]],
                ).fetchall()
                locks = conn.execute(
                    "SELECT l.locktype, coalesce(l.relation::regclass::text, '') FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = %s",
                    [self.p["dbname"]],
                ).fetchall()
                self.samples += 1
                self.active += len(rows)
                for kind, event in rows:
                    if kind == "Lock":
                        self.waiting += 1
                        self.wait_events[event] += 1
                for locktype, relation in locks:
                    self.not_granted[f"{locktype} {relation}".strip()] += 1

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> dict:
        n = max(1, self.samples)
        return {
            "samples": self.samples,
            "avg_active_backends": round(self.active / n, 2),
            "avg_backends_waiting_on_lock": round(self.waiting / n, 2),
            "lock_wait_share": round(self.waiting / max(1, self.active), 3),
            "wait_events": dict(self.wait_events.most_common()),
            "locks_not_granted_by_relation": {k: round(v / n, 2) for k, v in self.not_granted.most_common()},
        }


def run_threads(jobs: list[list[tuple]], actor_ids: list[int], duration: float, act) -> dict:
    """One thread per job list: ``act(task_id, case_id, actor)`` for each, until done or the deadline."""
    from django.db import connection

    from yiwang.org.models import User

    gate = threading.Barrier(len(jobs) + 1, timeout=120)
    deadline_box: list[float] = []
    lock = threading.Lock()
    per_thread: list[dict] = []

    def worker(index: int) -> None:
        latencies: list[float] = []
        errors: list[str] = []
        try:
            actor = User.objects.get(pk=actor_ids[index])
            actor.acting_unit_id  # noqa: B018 - load the acting post before the clock starts
            connection.ensure_connection()
            gate.wait()
            deadline = deadline_box[0]
            for task_id, case_id in jobs[index][:MAX_ACTIONS_PER_THREAD]:  # bounded by the job list
                began = time.perf_counter()
                if began >= deadline:
                    break
                try:
                    act(task_id, case_id, actor)
                except Exception as error:  # noqa: BLE001 - count it, go on
                    errors.append(repr(error)[:300])
                    if len(errors) > 100:
                        break
                    continue
                latencies.append(time.perf_counter() - began)
        finally:
            connection.close()
            with lock:
                per_thread.append({"lat": latencies, "errors": errors})

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(len(jobs))]
    for thread in threads:
        thread.start()
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    deadline_box.append(started + duration)
    gate.wait()
    for thread in threads:
        thread.join(timeout=duration + 120)
    elapsed = time.perf_counter() - started
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    return summarize(per_thread, elapsed, sum(len(j) for j in jobs)) | {
        "bench_process_cpu_util": round(client_cpu / elapsed, 2)  # 1.0 = one core busy (GIL)
    }


def summarize(per_thread: list[dict], elapsed: float, planned: int) -> dict:
    lat = sorted(x * 1000 for t in per_thread for x in t["lat"])
    errors = [e for t in per_thread for e in t["errors"]]
    counts = sorted(len(t["lat"]) for t in per_thread)
    return {
        "actions": len(lat),
        "planned": planned,
        "finished_all": len(lat) + len(errors) >= planned,
        "seconds": round(elapsed, 2),
        "actions_per_s": round(len(lat) / elapsed, 1) if elapsed else None,
        "p50_ms": round(percentile(lat, 50), 2) if lat else None,
        "p95_ms": round(percentile(lat, 95), 2) if lat else None,
        "p99_ms": round(percentile(lat, 99), 2) if lat else None,
        "max_ms": round(lat[-1], 2) if lat else None,
        "errors": len(errors),
        "error_samples": errors[:5],
        "per_thread_min_max": [counts[0], counts[-1]] if counts else None,
    }


def approve_in_process(task_id: int, case_id: int, actor) -> None:
    from yiwang.workflow import services
    from yiwang.workflow.models import Task

    # The service re-reads the task under the case lock: only pk and case_id are used.
    services.task_approve(task=Task(pk=task_id, case_id=case_id), actor=actor, comment="同意")


@contextlib.contextmanager
def lock_case_row_only():
    """EXPERIMENT: the engine's ``_lock`` with ``FOR UPDATE OF`` the case (not its definition)."""
    from yiwang.workflow import services
    from yiwang.workflow.models import Case, Task

    original = services._lock

    def _lock(task):
        case = Case.objects.select_for_update(of=("self",)).select_related("definition").get(pk=task.case_id)
        return case, Task.objects.select_for_update().get(pk=task.pk)

    services._lock = _lock
    try:
        yield
    finally:
        services._lock = original


def verify(case_ids: list[int], first_step_tasks: int) -> dict:
    """Every case: a completed first step has one STEP_DONE and exactly one archivist task;
    an incomplete one has neither; no case is finished or beyond step 2."""
    from django.db.models import Count, Q

    from yiwang.workflow.models import Action, Case, Task

    cases = Case.objects.filter(pk__in=case_ids).annotate(
        step_done=Count("actions", filter=Q(actions__kind=Action.Kind.STEP_DONE, actions__step_index=0), distinct=True),
        approvals=Count("actions", filter=Q(actions__kind=Action.Kind.APPROVE), distinct=True),
    )
    next_tasks = dict(
        Task.objects.filter(case_id__in=case_ids, step_index=1)
        .values("case_id")
        .annotate(n=Count("id"))
        .values_list("case_id", "n")
    )
    open_first = dict(
        Task.objects.filter(case_id__in=case_ids, step_index=0, status=Task.Status.OPEN)
        .values("case_id")
        .annotate(n=Count("id"))
        .values_list("case_id", "n")
    )
    advanced = partial = 0
    problems = []
    for case in cases:
        n_next, n_open = next_tasks.get(case.pk, 0), open_first.get(case.pk, 0)
        if case.step_index == 1:
            ok = (
                case.step_done == 1
                and n_next == 1
                and n_open == 0
                and case.approvals == first_step_tasks
                and case.step_round == 2
            )
            advanced += 1
        else:
            ok = case.step_index == 0 and case.step_done == 0 and n_next == 0 and case.step_round == 1
            partial += 1
        if not ok and len(problems) < 10:
            problems.append(
                {
                    "case": case.pk,
                    "step_index": case.step_index,
                    "step_round": case.step_round,
                    "step_done": case.step_done,
                    "approvals": case.approvals,
                    "next_tasks": n_next,
                    "open_first_step_tasks": n_open,
                }
            )
    return {
        "cases": len(case_ids),
        "advanced_once": advanced,
        "not_yet_complete": partial,
        "problems": problems,
        "ok": not problems,
    }


def measure(name: str, args, jobs, actor_ids, act, case_ids, first_step_tasks: int, duration: float) -> dict:
    log(f"{name}: {len(jobs)} threads, {sum(len(j) for j in jobs):,} actions planned, up to {duration}s")
    with (
        CpuSampler(postgres_backends_of(args.database_url)) as pg_cpu,
        LockSampler(args.database_url) as locks,
    ):
        result = run_threads(jobs, actor_ids, duration, act)
    result["postgres_cpu_ms_per_action"] = round(pg_cpu.seconds * 1000 / max(1, result["actions"]), 2)
    result["locks"] = locks.summary()
    result["check"] = verify(case_ids, first_step_tasks)
    log(
        f"{name}: {result['actions']:,} actions, {result['actions_per_s']}/s, p95 {result['p95_ms']} ms, "
        f"errors {result['errors']}, lock waits {result['locks']['avg_backends_waiting_on_lock']} backends, "
        f"check {'ok' if result['check']['ok'] else 'FAILED'}"
    )
    return result


# --- HTTP -------------------------------------------------------------------------------------


def http_phase(args, env, tmp, pairs, jobs, case_ids) -> dict:
    proc = start_gunicorn(prod_env(env, tmp / "static"), tmp, args.workers, args.port)
    try:
        sessions = [login_as(args.port, pair["leader"].username, BENCH_PASSWORD) for pair in pairs]
        probe = f"/api/workflow/tasks/{jobs[0][0][0]}/"
        status, _h, body = request(args.port, "GET", probe, headers=_headers(sessions[0]))
        if status != 200:
            return {"skipped": f"GET {probe} answered {status}: {body[:200]!r}"}

        def act(task_id: int, case_id: int, index: int) -> None:
            status, _h, body = request(
                args.port,
                "POST",
                f"/api/workflow/tasks/{task_id}/approve/",
                headers=_headers(sessions[index]) | {"Content-Type": "application/json"},
                body=json.dumps({"comment": "同意"}).encode(),
            )
            if status != 200:
                raise RuntimeError(f"{status} {body[:200]!r}")

        log(f"http: {len(jobs)} clients, {sum(len(j) for j in jobs):,} approvals planned, up to {args.duration}s")
        gate = threading.Barrier(len(jobs) + 1, timeout=120)
        deadline_box: list[float] = []
        lock = threading.Lock()
        per_thread: list[dict] = []

        def worker(index: int) -> None:
            latencies, errors = [], []
            try:
                gate.wait()
                for task_id, case_id in jobs[index][:MAX_ACTIONS_PER_THREAD]:  # bounded by the job list
                    began = time.perf_counter()
                    if began >= deadline_box[0]:
                        break
                    try:
                        act(task_id, case_id, index)
                    except (OSError, http.client.HTTPException, RuntimeError) as error:
                        errors.append(repr(error)[:300])
                        if len(errors) > 100:
                            break
                        continue
                    latencies.append(time.perf_counter() - began)
            finally:
                with lock:
                    per_thread.append({"lat": latencies, "errors": errors})

        threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(len(jobs))]
        for thread in threads:
            thread.start()
        with (
            CpuSampler(children_of(proc.pid)) as app_cpu,
            CpuSampler(postgres_backends_of(args.database_url)) as pg_cpu,
            LockSampler(args.database_url) as locks,
        ):
            started = time.perf_counter()
            deadline_box.append(started + args.duration)
            gate.wait()
            for thread in threads:
                thread.join(timeout=args.duration + 120)
            elapsed = time.perf_counter() - started
        result = summarize(per_thread, elapsed, sum(len(j) for j in jobs))
        result["endpoint"] = "POST /api/workflow/tasks/{id}/approve/ (session + CSRF header)"
        result["gunicorn"] = f"-w {args.workers} sync workers"
        result["gunicorn_cpu_ms_per_action"] = round(app_cpu.seconds * 1000 / max(1, result["actions"]), 2)
        result["postgres_cpu_ms_per_action"] = round(pg_cpu.seconds * 1000 / max(1, result["actions"]), 2)
        result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
        result["locks"] = locks.summary()
        result["check"] = verify(case_ids, 1)
        log(
            f"http: {result['actions']:,} actions, {result['actions_per_s']}/s, p95 {result['p95_ms']} ms, "
            f"errors {result['errors']}, check {'ok' if result['check']['ok'] else 'FAILED'}"
        )
        return result
    finally:
        stop(proc)


def _headers(jar: dict) -> dict:
    return {
        "Cookie": f"sessionid={jar['sessionid']}; csrftoken={jar['csrftoken']}",
        "X-CSRFToken": jar["csrftoken"],
        "Referer": f"http://{HOST}/",
    }


# --- main -------------------------------------------------------------------------------------

PHASES = ("own-shared", "own-per-unit", "own-of-self", "countersign", "http")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark yiwang's workflow task actions on PostgreSQL: approvals per second by concurrent "
        "users on their own cases, and countersigners on the same cases (drops and re-creates --database-url).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/yiwang_bench_workflow_actions")
    parser.add_argument("--users", type=int, default=16, help="concurrent users (threads, one connection each)")
    parser.add_argument("--per-user", type=int, default=200, help="own-*: cases per user")
    parser.add_argument("--cs-cases", type=int, default=100, help="countersign: cases signed by all users")
    parser.add_argument(
        "--cs-timeout", type=int, default=300, help="countersign: runs until every case is signed, at most this long"
    )
    parser.add_argument("--http-per-user", type=int, default=100, help="http: cases per user")
    parser.add_argument("--duration", type=int, default=15, help="seconds per phase at most")
    parser.add_argument(
        "--rounds", type=int, default=3, help="own-* phases: interleaved repetitions (the median round is reported)"
    )
    parser.add_argument("--workers", type=int, default=4, help="http: gunicorn sync workers")
    parser.add_argument("--port", type=int, default=8768)
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated phases to run, from: {', '.join(PHASES)}"
    )
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if unknown := set(args.phases) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if not (
        2 <= args.users <= 64
        and 1 <= args.per_user <= 10_000
        and 1 <= args.cs_cases <= 10_000
        and 1 <= args.http_per_user <= 10_000
        and 1 <= args.duration <= 3600
        and 1 <= args.cs_timeout <= 3600
        and 1 <= args.rounds <= 20
    ):
        parser.error("--users 2..64, --per-user/--cs-cases/--http-per-user 1..10000, --duration/--cs-timeout 1..3600")
    check_local_url(args.database_url)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if "http" in args.phases and port_in_use(args.port):
        raise SystemExit(f"127.0.0.1:{args.port} is already in use; pick another --port")
    tmp = Path(tempfile.mkdtemp(prefix="yiwang-actions-bench-"))
    (tmp / "var").mkdir()
    env = base_env(args.database_url, tmp / "var")
    phases: dict[str, dict] = {}
    try:
        log(f"re-creating database {check_local_url(args.database_url)['dbname']}")
        recreate_database(args.database_url)
        manage(["migrate", "--noinput"], env)
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "YIWANG_VAR_DIR", "DJANGO_SETTINGS_MODULE")})
        import django

        django.setup()
        from django.db import connection

        people = seed_people(args.users)
        pairs = people["pairs"]
        leaders = [p["leader"].pk for p in pairs]
        shared = define("bench.shared", LEADER_STEP)
        log(f"{len(pairs)} units with a leader and a staff member each")

        own = [define(f"bench.unit{i + 1:02d}", LEADER_STEP) for i in range(len(pairs))]
        variants = {
            "own-shared": ([shared] * len(pairs), contextlib.nullcontext),
            "own-per-unit": (own, contextlib.nullcontext),
            "own-of-self": ([shared] * len(pairs), lock_case_row_only),
        }
        rounds: dict[str, list[dict]] = {}
        for r in range(args.rounds):  # interleaved, so that a burst of other load hits every variant alike
            for name, (definitions, patched) in variants.items():
                if name not in args.phases:
                    continue
                jobs, cases = start_cases(pairs, definitions, args.per_user, f"{name} r{r + 1}")
                connection.close()
                with patched():
                    result = measure(
                        f"{name} round {r + 1}", args, jobs, leaders, approve_in_process, cases, 1, args.duration
                    )
                result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
                rounds.setdefault(name, []).append(result)
        for name, results in rounds.items():
            median = sorted(results, key=lambda x: x["actions_per_s"])[len(results) // 2]
            phases[name] = median | {
                "rounds_actions_per_s": [x["actions_per_s"] for x in results],
                "rounds_p95_ms": [x["p95_ms"] for x in results],
                "rounds_errors": sum(x["errors"] for x in results),
                "rounds_check_ok": all(x["check"]["ok"] for x in results),
                "reported_round": "median by actions/s",
            }
        if "own-of-self" in phases:
            phases["own-of-self"]["note"] = (
                "EXPERIMENT: services._lock patched in the bench process (FOR UPDATE OF case)"
            )
        if "countersign" in args.phases:
            from django.db import transaction

            from yiwang.workflow import services
            from yiwang.workflow.models import Task

            signers = [p["leader"].username for p in pairs]
            definition = define(
                "bench.countersign", {"kind": "countersign", "assignee": {"type": "person", "usernames": signers}}
            )
            started = time.monotonic()
            with transaction.atomic():
                cases = [
                    services.case_start(process=definition, initiator=pairs[0]["staff"], title=f"会签 {n:04d}").pk
                    for n in range(args.cs_cases)
                ]
            log(
                f"countersign: started {len(cases)} cases x {len(signers)} signers in {time.monotonic() - started:.1f}s"
            )
            jobs = [
                list(
                    Task.objects.filter(case_id__in=cases, step_index=0, assignee_id=leader)
                    .order_by("case_id")
                    .values_list("id", "case_id")
                )
                for leader in leaders
            ]
            connection.close()
            result = measure("countersign", args, jobs, leaders, approve_in_process, cases, len(pairs), args.cs_timeout)
            result["signers_per_case"] = len(pairs)
            result["cases_completed_per_s"] = round(result["check"]["advanced_once"] / result["seconds"], 1)
            phases["countersign"] = result
        if "http" in args.phases:
            jobs, cases = start_cases(pairs, [shared] * len(pairs), args.http_per_user, "http")
            connection.close()
            phases["http"] = http_phase(args, env, tmp, pairs, jobs, cases)
        connection.close()
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        dump_gunicorn_errors(tmp)
        shutil.rmtree(tmp, ignore_errors=True)

    payload = {
        "benchmark": "workflow_actions",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": vars(args),
        "machine": machine_info(),
        "loadavg": os.getloadavg(),
        "postgres": server_version(args.database_url),
        "phases": phases,
    }
    out = write_results("workflow-actions", payload)

    print()
    print(
        f"yiwang workflow actions bench: {args.users} users, up to {args.duration}s a phase, PostgreSQL "
        f"{payload['postgres']}, {os.cpu_count()} CPUs"
    )
    rows = []
    for name, r in phases.items():
        if "skipped" in r:
            rows.append([name, "", "", "", "", "", r["skipped"][:60], "", "", ""])
            continue
        rows.append(
            [
                name,
                f"{r['actions']:,}",
                r["actions_per_s"],
                r["p50_ms"],
                r["p95_ms"],
                r["p99_ms"],
                r["errors"],
                r["postgres_cpu_ms_per_action"],
                r["locks"]["avg_backends_waiting_on_lock"],
                f"{r['check']['advanced_once']}/{r['check']['cases']} {'ok' if r['check']['ok'] else 'FAILED'}",
            ]
        )
    print(
        table(
            [
                "phase",
                "actions",
                "actions/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "errors",
                "PG CPU ms/action",
                "waiting on lock",
                "cases advanced / check",
            ],
            rows,
        )
    )
    if "gunicorn_cpu_ms_per_action" in phases.get("http", {}):
        print(
            f"http: gunicorn CPU {phases['http']['gunicorn_cpu_ms_per_action']} ms/action, PostgreSQL CPU "
            f"{phases['http']['postgres_cpu_ms_per_action']} ms/action ({phases['http']['gunicorn']})"
        )
    for name, r in phases.items():
        if "rounds_actions_per_s" in r:
            print(f"{name}: actions/s of each round {r['rounds_actions_per_s']}, p95 ms {r['rounds_p95_ms']}")
    for name, r in phases.items():
        if "locks" in r:
            print(f"{name}: locks not granted (avg per sample): {r['locks']['locks_not_granted_by_relation']}")
    print(f"\nJSON: {out.relative_to(PROJECT_DIR)}")
    ok = all(
        "skipped" in r or (r["errors"] == 0 and r["check"]["ok"] and r.get("rounds_check_ok", True))
        for r in phases.values()
    ) and all(r.get("rounds_errors", 0) == 0 for r in phases.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
