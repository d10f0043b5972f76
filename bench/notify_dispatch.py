#!/usr/bin/env python
"""SMS dispatch to the fake gateway on PostgreSQL: throughput, and urgent latency during a big job.

Drops and re-creates a throwaway database (default ``yiwang_bench_notify_dispatch``), migrates
it, seeds two units (教育局 sends the big jobs, 财政局 the verification codes), and starts the
fake SMS gateway in its own process (``python -m yiwang.notify.gateways.fake_server``, with
--gateway-latency-ms per request). Then:

  throughput  a --rows job (made with job_create/job_validate/job_confirm/job_start_due) is sent
              by N dispatchers (processes, or threads with --mode thread) that each call
              ``dispatch.dispatch_round("normal")`` until nothing is left, for each N in
              --dispatchers; before each run the rows are put back to ``created`` and the fake is
              reset. Reports messages/s (target ≥ 2,000), where a round spends its time (claim,
              gateway HTTP, recording results), CPU of the dispatchers, PostgreSQL and the fake,
              and checks every row reached the gateway exactly once.
  experiment  (unless --skip-experiments; NOT the shipped engine: an index created in the bench
              database only, to size the suggested change) the same runs with a partial index
              ``(job_id, id) WHERE status IN ('created', 'temporary_failure')``, so that a job's
              next rows are found without walking past the ones already sent (today the claim
              query follows the primary key and filters, so each round costs more as the job
              advances).
  latency     the production path: real Celery workers on a real broker (Redis at
              127.0.0.1:6379/15 when it answers, else the SQLite broker in a temporary directory;
              --broker-url to choose), --lane-workers worker processes on the normal queue and one
              on the urgent queue (queue names unique to this run). A --latency-rows job is started;
              while it sends, a verification code (urgent) is sent with ``services.message_send``
              every --urgent-interval seconds. Latency = the fake gateway's acceptance time of the
              message (``/messages``, read continuously) minus the wall time right after
              ``message_send`` returned (it commits on return); p50/p95/p99/max (target p95 ≤ 2 s).
  shared      (unless --skip-shared) the same with ONE worker consuming both queues (the demo's
              set-up) and a --shared-rows job, to show what the separate urgent worker buys.

Run from the project directory:  .venv/bin/python bench/notify_dispatch.py [--dispatchers 1,2,4] ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    PROJECT_DIR,
    PYTHON,
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

TARGET_RATE = 2000.0
TARGET_P95_S = 2.0
SECRET = "bench-fake-sms-secret"
FAKE_CLASS = "yiwang.notify.gateways.fake.FakeGateway"
TEMPLATE_BODY = "((姓名))家长您好：本学期期末考试安排在((日期))，请提醒孩子按时到校。"

# Runs in each Celery worker process: the bench's gateway and queue names, then the worker.
LAUNCHER = """
import json, os, sys
import django
django.setup()
from django.conf import settings
settings.YIWANG_SMS_GATEWAYS = json.loads(os.environ["YIWANG_BENCH_SMS_GATEWAYS"])
from yiwang.notify import tasks
tasks.URGENT_QUEUE, tasks.NORMAL_QUEUE = os.environ["YIWANG_BENCH_NOTIFY_QUEUES"].split(",")
from yiwang.celery import app
app.worker_main(["worker", *sys.argv[1:]])
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark notify's dispatcher against the fake SMS gateway on PostgreSQL "
        "(drops and re-creates the --database-url database).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/yiwang_bench_notify_dispatch")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the throughput job")
    parser.add_argument("--dispatchers", default="1,2,4", help="dispatcher counts to run, comma-separated")
    parser.add_argument("--mode", choices=["process", "thread"], default="process")
    parser.add_argument("--batch", type=int, default=None, help="rows per dispatch_round (default dispatch.BATCH)")
    parser.add_argument("--gateway-latency-ms", type=int, default=0, help="the fake's delay per /send request")
    parser.add_argument(
        "--latency-rows", type=int, default=100_000, help="rows of the job sent during the latency test"
    )
    parser.add_argument("--lane-workers", type=int, default=2, help="Celery worker processes on the normal queue")
    parser.add_argument("--urgent-interval", type=float, default=0.1, help="seconds between urgent messages")
    parser.add_argument("--latency-max-seconds", type=float, default=180, help="stop sending urgent messages after")
    parser.add_argument("--shared-rows", type=int, default=30_000, help="rows of the job in the shared-worker run")
    parser.add_argument("--broker-url", default="", help="Celery broker (default: Redis db 15, else SQLite)")
    parser.add_argument("--shared-max-seconds", type=float, default=60, help="length of the shared-worker run")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-experiments", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-shared", action="store_true")
    args = parser.parse_args(argv)
    try:
        args.dispatcher_counts = [int(n) for n in args.dispatchers.split(",") if n.strip()]
    except ValueError:
        parser.error("--dispatchers: comma-separated integers")
    if not all(1 <= n <= 32 for n in args.dispatcher_counts) or not args.dispatcher_counts:
        parser.error("--dispatchers: each 1..32")
    if not (1 <= args.rows <= 1_000_000 and 1 <= args.latency_rows <= 1_000_000 and 1 <= args.lane_workers <= 16):
        parser.error("--rows/--latency-rows 1..1,000,000, --lane-workers 1..16")
    if not 0.01 <= args.urgent_interval <= 10:
        parser.error("--urgent-interval 0.01..10")
    check_local_url(args.database_url)
    return args


# --- broker, fake gateway, seed -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def choose_broker(given: str, tmp: Path) -> str:
    if given:
        return given
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return "redis://127.0.0.1:6379/15"
    except OSError:
        pass
    return f"sqla+sqlite:///{tmp / 'celery-broker.sqlite3'}"


def start_fake(port: int, latency_ms: int, tmp: Path) -> subprocess.Popen:
    log_file = (tmp / "fake.log").open("wb")
    proc = subprocess.Popen(
        [
            str(PYTHON),
            "-m",
            "yiwang.notify.gateways.fake_server",
            "--port",
            str(port),
            "--secret",
            SECRET,
            "--latency-ms",
            str(latency_ms),
        ],
        cwd=PROJECT_DIR,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()
    return proc


def fake_gateway(url: str):
    from yiwang.notify.gateways.fake import FakeGateway

    return FakeGateway(code="fake", url=url, secret=SECRET, timeout=30)


def wait_for_fake(url: str, proc: subprocess.Popen) -> None:
    from yiwang.notify.gateways.fake import FakeGatewayError

    gateway = fake_gateway(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the fake gateway exited at start")
        try:
            gateway.stats()
            return
        except FakeGatewayError:
            time.sleep(0.2)
    raise SystemExit("the fake gateway did not answer within 30 s")


def seed():
    from yiwang.notify import services
    from yiwang.org import services as org
    from yiwang.org.models import Role

    org.ensure_roles()
    district = org.unit_create(actor=None, name="压测区", code="ND", kind="district")
    edu = org.unit_create(actor=None, name="压测区教育局", code="ND-EDU", kind="bureau", parent=district)
    fin = org.unit_create(actor=None, name="压测区财政局", code="ND-FIN", kind="bureau", parent=district)
    sender = org.person_create(
        actor=None,
        username="notify_sender",
        full_name="短信发送员",
        posts=[org.PostSpec(unit=edu, role=Role.objects.get(code=Role.STAFF), title="科员")],
    )
    services.policy_save(
        actor=None, unit=None, signature="压测区政府", daily_quota=10**8, per_minute=10**7, approval_threshold=10**8
    )
    notice = services.template_save(actor=None, unit=edu, code="exam", name="期末考试通知", body=TEMPLATE_BODY)
    code = services.template_save(
        actor=None,
        unit=fin,
        code="otp",
        name="验证码",
        kind="verification",
        body="您的验证码是((验证码))，5分钟内有效。",
    )
    return {"edu": edu, "fin": fin, "sender": sender, "notice": notice, "code": code}


def make_job(world: dict, rows: int, tmp: Path, first: int) -> tuple[object, float]:
    """A job of ``rows`` distinct numbers, validated, confirmed and sending; returns (job, seconds)."""
    from django.core.files import File

    from yiwang.notify import services

    path = tmp / f"job-{first}.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("手机号,姓名,日期\n")
        for i in range(rows):
            out.write(f"13{first + i:09d},学生{i % 997},12月{1 + i % 28}日\n")
    began = time.perf_counter()
    with path.open("rb") as handle:
        job = services.job_create(
            actor=world["sender"], unit=world["edu"], template=world["notice"], upload=File(handle, name="名单.csv")
        )
    job = services.job_validate(job=job)
    assert job.valid_rows == rows, job.problem
    services.job_confirm(actor=world["sender"], job=job)
    services.job_start_due()
    job.refresh_from_db()
    assert job.status == "sending", job.status
    return job, time.perf_counter() - began


# --- throughput -----------------------------------------------------------------------------------


def reset_rows(job_id: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE notify_message SET status = 'created', claim = '', claimed_at = NULL, attempts = 0, "
            "gateway = '', provider_id = '', sent_at = NULL, error_code = '', error = '', not_before = NULL "
            "WHERE job_id = %s",
            [job_id],
        )
        cursor.execute("UPDATE notify_job SET status = 'sending', finished_at = NULL WHERE id = %s", [job_id])
        cursor.execute("VACUUM ANALYZE notify_message")


class RoundTimer:
    """Wraps the dispatcher's steps in this process to time them (cheap: a few per round)."""

    def __init__(self):
        self.spent = {"claim": 0.0, "gateway_http": 0.0, "record": 0.0}
        self.rounds = self.rows = 0

    def install(self):
        from yiwang.notify import dispatch
        from yiwang.notify.gateways.fake import FakeGateway

        def timed(name, fn):
            def wrapper(*args, **kwargs):
                began = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.spent[name] += time.perf_counter() - began

            return wrapper

        dispatch.claim = timed("claim", dispatch.claim)
        dispatch._record = timed("record", dispatch._record)
        FakeGateway.send_chunk = timed("gateway_http", FakeGateway.send_chunk)


EXPERIMENT_INDEX = "notify_bench_job_pending"


def shipped_job_queue_index() -> str | None:
    """The engine's own partial (job_id, id) index of pending rows, if it has one."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'notify_message' AND indexdef LIKE %s "
            "AND indexdef LIKE %s",
            ["%(job_id, id)%", "%WHERE%"],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def experiment_index(create: bool) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        if create:
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {EXPERIMENT_INDEX} ON notify_message (job_id, id) "
                "WHERE status IN ('created', 'temporary_failure')"
            )
        else:
            cursor.execute(f"DROP INDEX IF EXISTS {EXPERIMENT_INDEX}")


def dispatcher_loop(lane: str, batch: int | None, start_at: float, results) -> None:
    """One dispatcher: rounds until a round finds nothing; reports its timings."""
    from django.db import connection

    from yiwang.notify import dispatch

    timer = RoundTimer()
    timer.install()
    kwargs = {"batch": batch} if batch else {}
    error = None
    try:
        connection.ensure_connection()
        while time.time() < start_at:
            time.sleep(0.001)
        began = time.perf_counter()
        for _ in range(1_000_000):  # bounded
            sent = dispatch.dispatch_round(lane, **kwargs)
            timer.rounds += 1
            timer.rows += sent
            if not sent:
                break
        elapsed = time.perf_counter() - began
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        error, elapsed = repr(exc)[:300], 0.0
    finally:
        connection.close()
    results.put({"rows": timer.rows, "rounds": timer.rounds, "seconds": elapsed, "spent": timer.spent, "error": error})


def throughput_run(n: int, args, job, fake_url: str, fake_pid: int, engine: str = "shipped") -> dict:
    from django.db import connections

    from yiwang.notify.models import Message

    reset_rows(job.pk)
    gateway = fake_gateway(fake_url)
    gateway.control(reset=True)
    connections.close_all()  # nothing shared with forked children
    start_at = time.time() + 1.0
    if args.mode == "process":
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        workers = [
            ctx.Process(target=dispatcher_loop, args=("normal", args.batch, start_at, results)) for _ in range(n)
        ]
    else:
        import queue

        results = queue.Queue()
        workers = [
            threading.Thread(target=dispatcher_loop, args=("normal", args.batch, start_at, results)) for _ in range(n)
        ]
    me = os.getpid()
    with (
        CpuSampler(children_of(me)) as bench_cpu,
        CpuSampler(postgres_backends_of(args.database_url)) as pg_cpu,
        CpuSampler(lambda pid, ppid, cmdline: pid == fake_pid) as fake_cpu,
    ):
        for worker in workers:
            worker.start()
        reports = [results.get(timeout=3600) for _ in workers]
        wall = time.time() - start_at
        for worker in workers:
            worker.join(timeout=60)
    errors = [r["error"] for r in reports if r["error"]]
    stats = gateway.stats()
    sent = Message.objects.filter(job=job, status="sent").count()
    spent = {k: round(sum(r["spent"][k] for r in reports), 2) for k in reports[0]["spent"]}
    busy = sum(r["seconds"] for r in reports)
    rounds = sum(r["rounds"] for r in reports)
    return {
        "engine": engine,
        "dispatchers": n,
        "mode": args.mode,
        "rows": job.valid_rows,
        "seconds": round(wall, 2),
        "messages_per_s": round(job.valid_rows / wall, 1),
        "target_met": job.valid_rows / wall >= TARGET_RATE,
        "rounds": rounds,
        "ms_per_round": round(busy / max(1, rounds) * 1000, 1),
        "time_split_s": {**spent, "other": round(busy - sum(spent.values()), 2)},
        "cpu_s": {
            "dispatchers": round(bench_cpu.seconds, 2) if args.mode == "process" else None,
            "postgres": round(pg_cpu.seconds, 2),
            "fake_gateway": round(fake_cpu.seconds, 2),
        },
        "gateway": {k: stats[k] for k in ("requests", "accepted", "duplicates")},
        "checks": {
            "all_sent": sent == job.valid_rows,
            "each_once": stats["accepted"] == job.valid_rows and stats["duplicates"] == 0,
            "errors": errors,
        },
    }


# --- latency (real Celery workers) ---------------------------------------------------------------


class CeleryWorkers:
    def __init__(self, env: dict, tmp: Path):
        self.env, self.tmp, self.procs = env, tmp, []

    def start(self, *queues: str) -> None:
        index = len(self.procs)
        log_file = (self.tmp / f"worker-{index}.log").open("wb")
        args = [
            "-P",
            "solo",
            "-Q",
            ",".join(queues),
            "-l",
            "warning",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"bench-{os.getpid()}-{index}@%h",
        ]
        self.procs.append(
            subprocess.Popen(
                [str(PYTHON), "-c", LAUNCHER, *args],
                cwd=PROJECT_DIR,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        )
        log_file.close()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs = []


class Follower(threading.Thread):
    """Reads the fake's accepted messages continuously; keeps the acceptance time of wanted ids."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.gateway = fake_gateway(url)
        self.cursor = self.gateway.stats()["last_seq"]
        self.wanted: dict[str, float] = {}  # id -> commit time (epoch)
        self.arrived: dict[str, float] = {}  # id -> gateway acceptance time (epoch)
        self.counted = 0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            page = self.gateway.messages(since=self.cursor, limit=10_000)
            if not page:
                time.sleep(0.02)
                continue
            self.cursor = page[-1]["seq"]
            with self.lock:
                self.counted += len(page)
                for message in page:
                    if message["id"] in self.wanted:
                        self.arrived[message["id"]] = dt.datetime.fromisoformat(message["time"]).timestamp()

    def latencies(self) -> list[float]:
        with self.lock:
            return sorted(self.arrived[i] - self.wanted[i] for i in self.arrived if i in self.wanted)


def latency_run(
    label: str, world: dict, job_rows: int, args, tmp: Path, env: dict, fake_url: str, shared: bool, first: int
) -> dict:
    from yiwang.notify import services, tasks
    from yiwang.notify.models import Message

    name = f"bench-notify-{uuid.uuid4().hex[:8]}"
    tasks.URGENT_QUEUE, tasks.NORMAL_QUEUE = f"{name}-urgent", name
    worker_env = dict(env, YIWANG_BENCH_NOTIFY_QUEUES=f"{tasks.URGENT_QUEUE},{tasks.NORMAL_QUEUE}")
    workers = CeleryWorkers(worker_env, tmp)
    follower = Follower(fake_url)
    follower.start()
    try:
        if shared:
            workers.start(tasks.URGENT_QUEUE, tasks.NORMAL_QUEUE)
        else:
            for _ in range(args.lane_workers):
                workers.start(tasks.NORMAL_QUEUE)
            workers.start(tasks.URGENT_QUEUE)
        # Wait for the workers: one urgent message must come through (not measured).
        warm = services.message_send(
            unit=world["fin"], mobile="13500000000", template=world["code"], values={"验证码": "000000"}
        )
        with follower.lock:
            follower.wanted[str(warm.pk)] = time.time()
        deadline = time.monotonic() + 60
        while str(warm.pk) not in follower.arrived and time.monotonic() < deadline:
            time.sleep(0.05)
        if str(warm.pk) not in follower.arrived:
            raise SystemExit("the urgent worker did not start within 60 s:\n" + worker_logs(tmp))
        with follower.lock:
            follower.wanted.clear()
            follower.arrived.clear()
        log(f"{label}: workers up; making a {job_rows:,}-row job")
        job, _seconds = make_job(world, job_rows, tmp, first=first)  # job_start_due wakes the normal lane
        counted_at_start = follower.counted
        began = time.time()
        sent_urgent = 0
        max_until = began + args.latency_max_seconds
        for n in range(1, 1_000_000):  # bounded by the job and --latency-max-seconds
            if time.time() > max_until:
                break
            left = Message.objects.filter(job=job, status__in=["created", "sending"]).exists()
            if not left:
                break
            message = services.message_send(
                unit=world["fin"],
                mobile=f"135{n % 10**8:08d}",
                template=world["code"],
                values={"验证码": f"{n % 10**6:06d}"},
            )
            with follower.lock:
                follower.wanted[str(message.pk)] = time.time()  # message_send has committed
            sent_urgent += 1
            time.sleep(args.urgent_interval)
        job_seconds = time.time() - began
        job_sent = Message.objects.filter(job=job, status="sent").count()
        deadline = time.monotonic() + 30
        while len(follower.arrived) < sent_urgent and time.monotonic() < deadline:
            time.sleep(0.1)
        lat = follower.latencies()
        services.job_cancel(actor=world["sender"], job=job)  # whatever is left (when max seconds hit)
    finally:
        follower.stop_event.set()
        workers.stop()
    return {
        "label": label,
        "workers": "one worker, both queues" if shared else f"{args.lane_workers} normal-lane + 1 urgent-lane",
        "job_rows": job_rows,
        "job_rows_sent_during_run": job_sent,
        "run_seconds": round(job_seconds, 1),
        "job_messages_per_s": round(job_sent / job_seconds, 1) if job_seconds else None,
        "gateway_messages_seen": follower.counted - counted_at_start,
        "urgent_sent": sent_urgent,
        "urgent_arrived": len(lat),
        "p50_s": round(percentile(lat, 50), 3) if lat else None,
        "p95_s": round(percentile(lat, 95), 3) if lat else None,
        "p99_s": round(percentile(lat, 99), 3) if lat else None,
        "max_s": round(lat[-1], 3) if lat else None,
        "target_met": bool(lat) and percentile(lat, 95) <= TARGET_P95_S and len(lat) == sent_urgent,
    }


def worker_logs(tmp: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(tmp.glob("worker-*.log")))


# --- main -----------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="yiwang-notify-dispatch-bench-"))
    fake = None
    throughput, latency, index_list = [], [], []
    try:
        broker = choose_broker(args.broker_url, tmp)
        env = base_env(args.database_url, tmp)
        env.update({"CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": f"db+sqlite:///{tmp / 'results.sqlite3'}"})
        log(f"re-creating database {check_local_url(args.database_url)['dbname']}; broker {broker.split('://')[0]}")
        recreate_database(args.database_url)
        manage(["migrate", "--noinput"], env)
        os.environ.update(
            {
                k: env[k]
                for k in (
                    "DATABASE_URL",
                    "YIWANG_VAR_DIR",
                    "DJANGO_SETTINGS_MODULE",
                    "CELERY_BROKER_URL",
                    "CELERY_RESULT_BACKEND",
                )
            }
        )
        port = free_port()
        fake_url = f"http://127.0.0.1:{port}"
        fake = start_fake(port, args.gateway_latency_ms, tmp)
        import django

        django.setup()
        from django.conf import settings

        from yiwang.notify import gateways, tasks

        gateways_spec = [{"code": "fake", "class": FAKE_CLASS, "url": fake_url, "secret": SECRET, "timeout": 30}]
        settings.YIWANG_SMS_GATEWAYS = gateways_spec
        gateways.reset()
        env["YIWANG_BENCH_SMS_GATEWAYS"] = json.dumps(gateways_spec)
        wait_for_fake(fake_url, fake)
        world = seed()

        if not args.skip_throughput:
            real_kick = tasks.kick
            tasks.kick = lambda *, urgent: None  # the throughput runs call the dispatcher directly
            job, made = make_job(world, args.rows, tmp, first=0)
            log(f"throughput job of {args.rows:,} rows made in {made:.1f}s")
            for n in args.dispatcher_counts:
                result = throughput_run(n, args, job, fake_url, fake.pid)
                throughput.append(result)
                log(
                    f"{n} {args.mode}(es): {result['messages_per_s']:,.0f} messages/s ({result['seconds']}s); "
                    f"split {result['time_split_s']}; checks {result['checks']}"
                )
            shipped_index = shipped_job_queue_index()
            if shipped_index:
                log(f"the engine already has the (job_id, id) pending index ({shipped_index}): no experiment")
            if not args.skip_experiments and not shipped_index:
                label = "+ (job_id, id) pending index"
                experiment_index(True)
                for n in args.dispatcher_counts:
                    result = throughput_run(n, args, job, fake_url, fake.pid, engine=label)
                    throughput.append(result)
                    log(
                        f"EXPERIMENT {label}, {n} {args.mode}(es): {result['messages_per_s']:,.0f} messages/s; "
                        f"split {result['time_split_s']}; checks {result['checks']}"
                    )
                experiment_index(False)
            from yiwang.notify import services

            services.job_cancel(actor=world["sender"], job=job)
            tasks.kick = real_kick

        if not args.skip_latency:
            latency.append(latency_run("latency", world, args.latency_rows, args, tmp, env, fake_url, False, 10**7))
            log(f"latency: {latency[-1]}")
        if not args.skip_shared:
            args.latency_max_seconds, full = args.shared_max_seconds, args.latency_max_seconds
            latency.append(latency_run("shared", world, args.shared_rows, args, tmp, env, fake_url, True, 2 * 10**7))
            args.latency_max_seconds = full
            log(f"shared worker: {latency[-1]}")
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'notify_message' ORDER BY indexname")
            index_list = [row[0] for row in cursor.fetchall()]
        connection.close()
    finally:
        if fake is not None and fake.poll() is None:
            fake.send_signal(signal.SIGTERM)
            try:
                fake.wait(timeout=10)
            except subprocess.TimeoutExpired:
                fake.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    payload = {
        "benchmark": "notify_dispatch",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": {k: v for k, v in vars(args).items() if k != "dispatcher_counts"},
        "machine": machine_info(),
        "loadavg": os.getloadavg(),
        "postgres": server_version(args.database_url),
        "broker": broker.split("://")[0],
        "notify_message_indexes": index_list,
        "throughput": throughput,
        "latency": latency,
    }
    out = write_results("notify-dispatch", payload)
    print()
    print(
        f"yiwang notify dispatch bench on PostgreSQL {payload['postgres']}, {os.cpu_count()} CPUs, "
        f"fake gateway latency {args.gateway_latency_ms} ms/request"
    )
    if throughput:
        print(
            table(
                [
                    "engine",
                    "dispatchers",
                    "rows",
                    "seconds",
                    "msg/s",
                    "ms/round",
                    "claim s",
                    "gateway s",
                    "record s",
                    "PG CPU s",
                    "once each",
                ],
                [
                    [
                        r["engine"],
                        f"{r['dispatchers']} {r['mode']}",
                        f"{r['rows']:,}",
                        r["seconds"],
                        f"{r['messages_per_s']:,.0f}",
                        r["ms_per_round"],
                        r["time_split_s"]["claim"],
                        r["time_split_s"]["gateway_http"],
                        r["time_split_s"]["record"],
                        r["cpu_s"]["postgres"],
                        r["checks"]["each_once"],
                    ]
                    for r in throughput
                ],
            )
        )
    if latency:
        print(
            table(
                ["run", "workers", "job rows sent", "job msg/s", "urgent", "p50 s", "p95 s", "max s", "p95 ≤ 2 s"],
                [
                    [
                        r["label"],
                        r["workers"],
                        f"{r['job_rows_sent_during_run']:,}",
                        r["job_messages_per_s"],
                        f"{r['urgent_arrived']}/{r['urgent_sent']}",
                        r["p50_s"],
                        r["p95_s"],
                        r["max_s"],
                        r["target_met"],
                    ]
                    for r in latency
                ],
            )
        )
    print(f"\nJSON: {out.relative_to(PROJECT_DIR)}")
    ok = all(r["checks"]["each_once"] and r["checks"]["all_sent"] and not r["checks"]["errors"] for r in throughput)
    ok = ok and all(r["urgent_arrived"] == r["urgent_sent"] for r in latency)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
