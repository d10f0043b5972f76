# ruff: noqa: F811 - fixtures imported from test_worker are parameters of these tests
"""A Redis broker restarted in the middle of a mass send: the worker stays up and the job finishes.

Celery's Redis transport has lost workers across a broker restart: with gossip and mingle on, a
reconnect can end in ``AttributeError: 'NoneType' object has no attribute 'hostname'`` and the
worker exits with status 0 (celery/kombu #582, celery #8030). The documented worker command
(docs/deploy.md) runs ``--without-gossip --without-mingle --without-heartbeat`` and systemd
restarts a worker whatever its exit status; this test runs that command against a Redis of its
own (``redis-server`` on a free port, no persistence, as in production's cache-only setups),
kills Redis mid-job and starts it again. Redis forgets every queued task, so what brings the job
to its end is the worker's own embedded beat (``notify-tick`` re-wakes the lanes every 5 s): no
manual step. Needs the ``redis-server`` binary (CI: a failure when missing).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from yiwang.notify import dispatch, services, tasks
from yiwang.notify.models import Job, Message

from .test_worker import (  # noqa: F401 - fixtures and helpers of the worker tests
    WORKER_START_TIMEOUT,
    Workers,
    _media,
    _quiet_dispatcher,
    gateway_ids,
    make_job,
    pending_rows,
    queues,
    roomy,
    shared_db,
    wait_until,
)

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

REDIS_SERVER = shutil.which("redis-server")


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port; ``restart`` keeps the port."""

    def __init__(self, tmp_path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.dir, self.proc = tmp_path, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
        ]
        self.proc = subprocess.Popen(
            [REDIS_SERVER, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # bounded
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail("私有 Redis 未能启动")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # a crash, not a clean shutdown: clients see their sockets die
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path):
    if REDIS_SERVER is None:
        pytest.skip("需要 redis-server（apt-get install redis-server）")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workers_on_private_redis(private_redis, shared_db, queues, tmp_path, monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", private_redis.url)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "")  # results are not used by the dispatcher
    pool = Workers(shared_db, tmp_path)
    yield pool
    pool.stop()


def test_worker_survives_a_redis_restart_mid_job_and_the_job_completes(
    workers_on_private_redis,
    private_redis,
    sms_server,
    roomy,
    alice,
    notice,
    tmp_path,
):
    from yiwang.celery import app

    workers = workers_on_private_redis
    sms_server.control({"latency_ms": 100})  # every batch of 200 spends ~0.1 s at the gateway
    job = make_job(alice, notice, 3000)
    # the embedded beat stands for the site's one beat: the only thing that re-wakes the lanes
    worker = workers.start(tasks.NORMAL_QUEUE, tasks.URGENT_QUEUE, extra=["-B", "-s", str(tmp_path / "beat")])
    with app.connection_for_write(private_redis.url) as conn:
        tasks.run_dispatch.apply_async(args=[dispatch.NORMAL], queue=tasks.NORMAL_QUEUE, connection=conn)
    wait_until(lambda: sms_server.stats()["accepted"] >= 600, timeout=WORKER_START_TIMEOUT + 20,
               what="the worker sends part of the job", workers=workers)  # fmt: skip
    started = time.monotonic()
    private_redis.stop()
    accepted_at_crash = sms_server.stats()["accepted"]
    time.sleep(2)  # the broker is away for a while
    private_redis.start()
    wait_until(lambda: pending_rows() == 0, timeout=90, what="the job finished after the broker restart",
               workers=workers)  # fmt: skip
    elapsed = time.monotonic() - started
    assert worker.poll() is None, f"the worker exited ({worker.returncode})\n{workers.logs()}"
    assert accepted_at_crash < 3000, "the restart should fall in the middle of the job"
    rows = dict(Message.objects.filter(job=job).values_list("id", "status"))
    assert len(rows) == 3000 and set(rows.values()) == {Message.Status.SENT}
    ids = gateway_ids(sms_server)
    assert len(set(ids)) == 3000 and {int(i) for i in ids} == set(rows)  # nothing lost
    stats = sms_server.stats()
    assert stats["accepted"] - stats["duplicates"] == 3000  # a resend is recognised by our id
    services.jobs_finish()
    job.refresh_from_db()
    assert job.status == Job.Status.FINISHED
    print(f"job of 3,000 rows finished {elapsed:.1f} s after the broker crash")  # the figure for the note
