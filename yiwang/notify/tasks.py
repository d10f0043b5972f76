"""Celery tasks of notify: thin wrappers around services and the dispatcher.

Two queues: ``notify_urgent`` (verification codes, alarms) and ``notify`` (everything else).
A production deployment runs a worker on each, so a big job never delays an urgent message;
the demo's single worker consumes both.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.core.cache import cache

from . import dispatch, services
from .models import Job

logger = logging.getLogger(__name__)
URGENT_QUEUE, NORMAL_QUEUE = "notify_urgent", "notify"
RUN_SECONDS = 20  # a dispatcher run loops this long at most, then hands over to a fresh task


def kick(*, urgent: bool) -> None:
    """Wake the dispatcher of a lane. Urgent: always; normal: at most one wake-up a second.

    Never raises: it runs after the message row is committed, and a caller that saw an error
    would retry and send twice. With the broker down the beat's ``tick`` (``has_work``) wakes
    the lane once the broker is back."""
    try:
        if urgent:
            run_dispatch.apply_async(args=[dispatch.URGENT], queue=URGENT_QUEUE, retry=False)
        elif cache.add("notify:kick:normal", 1, timeout=1):
            run_dispatch.apply_async(args=[dispatch.NORMAL], queue=NORMAL_QUEUE, retry=False)
    except Exception:  # broker or cache down: the row is saved, the beat catches up
        logger.warning("notify: could not wake the %s dispatcher; the beat will", "urgent" if urgent else "normal",
                       exc_info=True)  # fmt: skip


@shared_task(name="yiwang.notify.tasks.run_dispatch", ignore_result=True, acks_late=True)
def run_dispatch(lane: str) -> int:
    """Send due rows of a lane until none is left (or the run's time is up, then continue anew)."""
    deadline = time.monotonic() + RUN_SECONDS
    total = 0
    while time.monotonic() < deadline:
        sent = dispatch.dispatch_round(lane)
        total += sent
        if not sent:
            return total
    run_dispatch.apply_async(args=[lane], queue=URGENT_QUEUE if lane == dispatch.URGENT else NORMAL_QUEUE)
    return total


@shared_task(name="yiwang.notify.tasks.validate_job", ignore_result=True, acks_late=True)
def validate_job(job_id: int) -> None:
    job = Job.objects.filter(pk=job_id).first()
    if job is not None:
        services.job_validate(job=job)


@shared_task(name="yiwang.notify.tasks.tick", ignore_result=True)
def tick() -> dict[str, int]:
    """Beat, every few seconds: start due jobs, recover stuck rows, finish jobs, post callbacks."""
    result = {
        "started": services.job_start_due(),
        "requeued": dispatch.requeue_stuck(),
        "finished": services.jobs_finish(),
    }
    for lane in (dispatch.URGENT, dispatch.NORMAL):
        if dispatch.has_work(lane):
            kick(urgent=lane == dispatch.URGENT)
    result.update(services.callbacks_send())
    return result


@shared_task(name="yiwang.notify.tasks.purge", ignore_result=True)
def purge() -> int:
    return services.messages_purge()
