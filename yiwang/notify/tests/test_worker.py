"""notify on the real broker with real Celery worker processes: once per row, crash recovery, fairness.

Like ``core/tests/test_shell.py``, these start ``celery -A yiwang worker`` processes on the
configured broker (``CELERY_BROKER_URL``: Redis in CI, the SQLite broker by default). Here the
workers also need the test database, so the tests are transactional and each worker gets
``DATABASE_URL`` pointing at it (PostgreSQL: the test database; SQLite: the test database's
file — an in-memory test database is copied to a file for the test with SQLite's backup API
and the test process switches to that file too). The workers send to the test's fake gateway
(``YIWANG_SMS_GATEWAYS`` is handed over in the environment) and consume queues named for this
test only, so two test processes sharing one broker (``pytest -n 2``) never take each other's
tasks, and they keep their cache keys (the per-minute rate counters) under a prefix of their own.
Skipped only when the broker is unreachable (a failure in CI: YIWANG_REQUIRE_SERVERS=1).

PostgreSQL + Redis, as in CI::

    CELERY_BROKER_URL=redis://127.0.0.1:6379/1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/yiwang \\
        bin/test yiwang/notify/tests/test_worker.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections

from yiwang.notify import dispatch, services, tasks
from yiwang.notify.models import Job, Message

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

WORKER_START_TIMEOUT = 30.0  # seconds for a worker process to boot and take its first task

# Runs in the worker process: the test's gateway and queue names, then the ordinary worker.
LAUNCHER = """
import json, os, sys
import django
django.setup()
from django.conf import settings
settings.YIWANG_SMS_GATEWAYS = json.loads(os.environ["YIWANG_TEST_SMS_GATEWAYS"])
# Rate counters of our own: on a shared Redis cache, another test process's units have the same ids.
settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"],
                                                  "KEY_PREFIX": os.environ["YIWANG_TEST_CACHE_PREFIX"]}}
from yiwang.notify import tasks
tasks.URGENT_QUEUE, tasks.NORMAL_QUEUE = os.environ["YIWANG_TEST_NOTIFY_QUEUES"].split(",")
from yiwang.celery import app
app.worker_main(["worker", *sys.argv[1:]])
"""


def _broker_problem() -> str | None:
    from yiwang.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure means "no broker here"
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="module")
def broker():
    problem = _broker_problem()
    if problem:
        pytest.skip(f"消息代理不可达（{django_settings.CELERY_BROKER_URL.split('://')[0]}）：{problem}")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _quiet_dispatcher():
    """Overrides the unit tests' fixture: here wake-ups go to the real broker (see ``queues``)."""
    dispatch._policies.clear()


@pytest.fixture
def shared_db(transactional_db, tmp_path):
    """A ``DATABASE_URL`` for worker processes that reaches this test's database."""
    settings_dict = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = quote(settings_dict["USER"] or "postgres", safe="")
        if settings_dict.get("PASSWORD"):
            auth += ":" + quote(settings_dict["PASSWORD"], safe="")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        yield f"postgres://{auth}@{host}:{port}/{quote(settings_dict['NAME'], safe='')}"
        return
    assert connection.vendor == "sqlite", connection.vendor
    if not connection.is_in_memory_db():
        yield f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
        return
    # Copy the in-memory test database to a file and use that file in this process too.
    original = connections["default"]
    original.ensure_connection()
    path = tmp_path / "notify-worker-test.sqlite3"
    target = sqlite3.connect(path)
    original.connection.backup(target)
    target.close()
    on_file = original.__class__({**original.settings_dict, "NAME": str(path)}, alias=original.alias)
    connections["default"] = on_file
    try:
        yield f"sqlite:///{path}"
    finally:
        on_file.close()
        connections["default"] = original


@pytest.fixture
def queues(monkeypatch):
    """Queue names of this test only, in this process (kick, run_dispatch) and in the workers."""
    name = f"notify-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(tasks, "URGENT_QUEUE", f"{name}-urgent")
    monkeypatch.setattr(tasks, "NORMAL_QUEUE", name)
    monkeypatch.setattr(tasks.validate_job, "delay", lambda *a, **kw: None)  # the test validates itself
    return tasks.URGENT_QUEUE, tasks.NORMAL_QUEUE


class Workers:
    """Celery worker processes on the real broker, pointed at the test database and gateway."""

    def __init__(self, database_url: str, log_dir: Path):
        self.database_url, self.log_dir = database_url, log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, *queue_names: str, pool: str = "solo", concurrency: int = 1, extra=()) -> subprocess.Popen:
        index = len(self.procs)
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="yiwang.settings",
            DATABASE_URL=self.database_url,
            YIWANG_TEST_SMS_GATEWAYS=json.dumps(django_settings.YIWANG_SMS_GATEWAYS),
            YIWANG_TEST_NOTIFY_QUEUES=f"{tasks.URGENT_QUEUE},{tasks.NORMAL_QUEUE}",
            YIWANG_TEST_CACHE_PREFIX=tasks.NORMAL_QUEUE,
        )
        env.pop("YIWANG_TEST_SQLITE", None)
        args = ["-P", pool, "-c", str(concurrency), "-Q", ",".join(queue_names), "-l", "warning",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-n", f"notify-test-{os.getpid()}-{index}-{uuid.uuid4().hex[:6]}@%h", *extra]  # fmt: skip
        log = (self.log_dir / f"worker-{index}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, *args],
            env=env,
            cwd=django_settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        parts = []
        for index in range(len(self.procs)):
            text = (self.log_dir / f"worker-{index}.log").read_text(errors="replace")
            parts.append(f"--- worker {index} ---\n{text[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # warm shutdown: finishes the task at hand
        for proc in self.procs:
            try:
                proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def workers(broker, shared_db, queues, tmp_path):
    pool = Workers(shared_db, tmp_path)
    yield pool
    pool.stop()
    connection.close()


@pytest.fixture
def roomy(units, policy):
    """Quotas, rates and the approval threshold out of the way: these tests are about dispatch."""
    return services.policy_save(
        actor=None, unit=None, signature="北仑区政府", daily_quota=10**7, per_minute=10**7, approval_threshold=10**7
    )


def make_job(alice, template, rows: int, *, first: int = 0) -> Job:
    """A confirmed job of ``rows`` distinct numbers, sending now (validated in this process)."""
    lines = ["手机号,姓名,日期"] + [f"139{first + i:08d},人{i},周一" for i in range(rows)]
    upload = SimpleUploadedFile("名单.csv", "\n".join(lines).encode())
    job = services.job_create(actor=alice, unit=template.unit, template=template, upload=upload)
    job = services.job_validate(job=job)
    assert job.valid_rows == rows, job.problem
    services.job_confirm(actor=alice, job=job)  # on commit: starts it and wakes the normal lane
    services.job_start_due()
    job.refresh_from_db()
    assert job.status == Job.Status.SENDING
    return job


def enqueue(lane: str, times: int = 1) -> None:
    queue = tasks.URGENT_QUEUE if lane == dispatch.URGENT else tasks.NORMAL_QUEUE
    for _ in range(times):
        tasks.run_dispatch.apply_async(args=[lane], queue=queue)


def wait_until(predicate, *, timeout: float, what: str, workers: Workers, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"超时：{what}\n{workers.logs()}")


class GatewayWatch:
    """Follows what the fake gateway accepts, reading each new message once."""

    def __init__(self, server):
        self.server, self.cursor, self.seen = server, server.stats()["last_seq"], set()

    def has(self, message_id: int) -> bool:
        while True:  # bounded: each page moves the cursor forward
            page = self.server.messages(since=self.cursor, limit=5000)
            if not page:
                return str(message_id) in self.seen
            self.cursor = page[-1]["seq"]
            self.seen.update(m["id"] for m in page)


def pending_rows() -> int:
    return Message.objects.filter(status__in=[Message.Status.CREATED, Message.Status.SENDING]).count()


def gateway_ids(server) -> list[str]:
    return [m["id"] for m in server.messages(limit=1_000_000)]


# --- (a) once per row under redelivery ---------------------------------------------------------


def test_concurrent_redelivered_dispatch_sends_each_row_once(
    workers, sms_server, roomy, alice, units, notice, code_template
):
    sms_server.control({"latency_ms": 5})
    job = make_job(alice, notice, 1500)
    singles = [services.message_send(unit=units["fin"], mobile=f"1370000{i:04d}", body=f"通知{i}") for i in range(40)]
    codes = [services.message_send(unit=units["edu"], mobile=f"1360000{i:04d}", template=code_template,
                                   values={"验证码": str(1000 + i)}) for i in range(20)]  # fmt: skip
    expected = set(Message.objects.values_list("id", flat=True))
    assert len(expected) == 1500 + 40 + 20
    # The same task delivered many times over, to two processes of four threads each.
    enqueue(dispatch.NORMAL, times=12)
    enqueue(dispatch.URGENT, times=6)
    for _ in range(2):
        workers.start(tasks.URGENT_QUEUE, tasks.NORMAL_QUEUE, pool="threads", concurrency=4)
    wait_until(lambda: pending_rows() == 0, timeout=60, what="all rows sent", workers=workers)
    ids = gateway_ids(sms_server)
    assert len(ids) == len(set(ids)) == len(expected)
    assert {int(i) for i in ids} == expected
    stats = sms_server.stats()
    assert stats["duplicates"] == 0 and stats["accepted"] == len(expected)  # not one resend
    assert set(Message.objects.values_list("status", "attempts").distinct()) == {(Message.Status.SENT, 1)}
    by_id = {m["id"]: m["provider_id"] for m in sms_server.messages(limit=1_000_000)}
    assert all(by_id[str(pk)] == provider for pk, provider in Message.objects.values_list("id", "provider_id"))
    assert {m.pk for m in singles + codes} <= expected
    assert Message.objects.filter(job=job).count() == 1500


# --- (b) a worker killed mid-job ---------------------------------------------------------------


def test_worker_killed_mid_job_loses_and_duplicates_nothing(workers, sms_server, roomy, alice, notice):
    sms_server.control({"latency_ms": 100})  # every batch of 200 spends ~0.1 s at the gateway
    job = make_job(alice, notice, 3000)
    enqueue(dispatch.NORMAL)
    first = workers.start(tasks.NORMAL_QUEUE)
    wait_until(lambda: sms_server.stats()["accepted"] >= 600, timeout=WORKER_START_TIMEOUT + 20,
               what="the first worker sends part of the job", workers=workers)  # fmt: skip
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    accepted_at_kill = sms_server.stats()["accepted"]
    assert 600 <= accepted_at_kill < 3000, "the job should be cut off midway"
    in_flight = Message.objects.filter(job=job, status=Message.Status.SENDING).count()
    # What the beat's tick does five minutes later, now: put the dead worker's rows back.
    assert dispatch.requeue_stuck(older_than=dt.timedelta(0)) == in_flight
    enqueue(dispatch.NORMAL)
    workers.start(tasks.NORMAL_QUEUE)
    wait_until(lambda: pending_rows() == 0, timeout=WORKER_START_TIMEOUT + 30, what="the job finished by the second"
               " worker", workers=workers)  # fmt: skip
    rows = dict(Message.objects.filter(job=job).values_list("id", "status"))
    assert len(rows) == 3000 and set(rows.values()) == {Message.Status.SENT}  # nothing lost
    ids = gateway_ids(sms_server)
    assert len(ids) == len(set(ids)) == 3000 and {int(i) for i in ids} == set(rows)  # nothing twice
    stats = sms_server.stats()
    # Only rows of the batch in flight at the kill can have been offered twice; the gateway
    # recognised them by our message id and kept one.
    assert stats["duplicates"] <= in_flight and stats["accepted"] - stats["duplicates"] == 3000
    by_id = {m["id"]: m["provider_id"] for m in sms_server.messages(limit=1_000_000)}
    assert all(by_id[str(pk)] == p for pk, p in Message.objects.filter(job=job).values_list("id", "provider_id"))
    assert services.jobs_finish() == 1


# --- (c) fairness: an urgent message during a big job -------------------------------------------


def test_urgent_message_reaches_the_gateway_within_2s_while_a_big_job_sends(
    workers, sms_server, roomy, alice, units, notice, record_property
):
    sms_server.control({"latency_ms": 20})
    code = services.template_save(actor=None, unit=units["fin"], code="otp", name="验证码", kind="verification",
                                  body="您的验证码是((验证码))。")  # fmt: skip
    job = make_job(alice, notice, 20_000)
    enqueue(dispatch.NORMAL)
    workers.start(tasks.NORMAL_QUEUE)
    workers.start(tasks.URGENT_QUEUE)  # production runs a worker per lane (see tasks.py)
    wait_until(lambda: sms_server.stats()["accepted"] >= 1000, timeout=WORKER_START_TIMEOUT + 20,
               what="the job is sending", workers=workers)  # fmt: skip
    watch = GatewayWatch(sms_server)

    def send_code(n: int) -> tuple[float, int]:
        # Another unit's verification code; message_send commits before it returns.
        message = services.message_send(unit=units["fin"], mobile=f"1350000{n:04d}", template=code,
                                        values={"验证码": f"{n:06d}"})  # fmt: skip
        committed = time.monotonic()
        wait_until(lambda: watch.has(message.pk), timeout=WORKER_START_TIMEOUT, what=f"urgent message {n}",
                   workers=workers, interval=0.01)  # fmt: skip
        return time.monotonic() - committed, Message.objects.filter(job=job, status=Message.Status.CREATED).count()

    send_code(0)  # the urgent worker's first task (it may still be starting)
    measured = []
    for n in range(1, 11):
        measured.append(send_code(n))
        time.sleep(0.2)
    latencies = [round(latency, 3) for latency, _left in measured]
    record_property("urgent_latencies_s", latencies)
    print(f"urgent latencies (s): {latencies}; job rows still waiting: {[left for _l, left in measured]}")
    assert all(left > 0 for _latency, left in measured), "the job must still be sending during the measurement"
    # The figure is p95 ≤ 2 s (bench/notify_dispatch.py measures it: tens of ms); under a loaded CI
    # machine one sample in ten may be late, more may not.
    assert sorted(latencies)[-2] < 2.0, f"urgent latencies {latencies}"
    services.job_cancel(actor=alice, job=job)  # lets the normal worker go idle before it is stopped
