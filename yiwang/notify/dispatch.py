"""The dispatcher (调度): claim rows still ``created``, send them through a gateway, record results.

Claiming is one UPDATE of rows selected ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), stamped with a
claim token, so any number of workers run side by side and a redelivered task finds nothing to
send twice. Two lanes: urgent (verification codes, alarms) and normal; in the normal lane each
unit with work gets its share in turn (its per-minute rate permitting), so one unit's 100,000-row
job never starves another unit's ten messages. A row left in ``sending`` by a killed worker is
put back by ``requeue_stuck``; the gateway receives our message id as its idempotency key, so a
row the gateway had already accepted is not delivered twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager

from django.core.cache import cache
from django.db import connection, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from .gateways import OutboundSms, SendStatus, choose_gateway, record_outcome
from .models import Job, Message, Template, UsageDay
from .services import in_quiet_hours, policy_for

logger = logging.getLogger(__name__)

URGENT, NORMAL = "urgent", "normal"
BATCH = 200
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = (30, 120, 600, 1800)
# A claim is a lease: a live dispatcher renews it every HEARTBEAT seconds while its gateway call
# runs, so the beat (every 5 s) returns a dead worker's rows within LEASE + 5 s, not 5 minutes.
HEARTBEAT = 5.0
STUCK_AFTER = dt.timedelta(seconds=20)
PENDING = (Message.Status.CREATED, Message.Status.TEMPORARY_FAILURE)


def _pending(now: dt.datetime):
    return Message.objects.filter(status__in=PENDING).filter(Q(not_before__isnull=True) | Q(not_before__lte=now))


def _queue(lane: str, now: dt.datetime):
    """Single messages of a lane. Rows of a job are taken per job (``_job_rows``), and only while
    the job is sending — even a job of an urgent template waits for its confirmation."""
    priority = Message.Priority.URGENT if lane == URGENT else Message.Priority.NORMAL
    return _pending(now).filter(priority=priority, job__isnull=True)


def _job_rows(job_id: int, now: dt.datetime):
    return _pending(now).filter(job_id=job_id)


def claim(queryset, *, limit: int) -> list[Message]:
    """Take up to ``limit`` rows of ``queryset`` for this run; rows another run holds are skipped."""
    if limit <= 0:
        return []
    token = uuid.uuid4().hex
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            queryset.order_by("id")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Message.objects.filter(id__in=ids, status__in=PENDING).update(
            status=Message.Status.SENDING, claim=token, claimed_at=now, attempts=F("attempts") + 1
        )
    return list(Message.objects.filter(claim=token, status=Message.Status.SENDING).order_by("id"))


def _rate_allowance(unit_id: int, wanted: int) -> int:
    """How many of ``wanted`` the unit may still send this minute (per-minute limit, shared cache)."""
    policy = policy_for_id(unit_id)
    key = f"notify:rate:{unit_id}:{int(time.time() // 60)}"
    cache.add(key, 0, timeout=120)
    try:
        used = cache.incr(key, wanted)
    except ValueError:  # the key expired between add and incr
        cache.set(key, wanted, timeout=120)
        used = wanted
    over = max(0, used - policy.per_minute)
    if over:
        cache.decr(key, min(over, wanted))
    return max(0, wanted - over)


_policies: dict[int, tuple[float, object]] = {}


def policy_for_id(unit_id: int):
    """Policies cached for 30 s per process (the dispatcher asks for every batch)."""
    cached = _policies.get(unit_id)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    from yiwang.org.models import Unit

    policy = policy_for(Unit.objects.get(pk=unit_id))
    _policies[unit_id] = (time.monotonic() + 30, policy)
    return policy


def dispatch_round(lane: str, *, batch: int = BATCH) -> int:
    """One pass of a lane: send what is due; returns how many rows were handed to gateways."""
    now = timezone.now()
    queue = _queue(lane, now)
    if lane == URGENT:
        return send(claim(queue, limit=batch))
    # Every normal-lane round serves the urgent lane first, so an urgent message never waits for
    # a worker busy with a mass send (a demo runs one worker for both queues).
    sent = send(claim(_queue(URGENT, now), limit=batch))
    # Units with work: single messages and rows of jobs that are sending.
    sending_jobs = Job.objects.filter(status=Job.Status.SENDING)
    units = set(queue.values_list("unit_id", flat=True).distinct()[:1000])
    units |= set(sending_jobs.values_list("unit_id", flat=True))
    for unit_id in sorted(units):
        if in_quiet_hours(policy_for_id(unit_id), now):
            continue  # mass sends pause at night (免打扰); urgent rows go by their own lane
        allowance = _rate_allowance(unit_id, batch)
        if not allowance:
            continue
        # Single messages first, then the unit's jobs share what is left.
        rows = claim(queue.filter(unit_id=unit_id), limit=allowance)
        job_ids = list(sending_jobs.filter(unit_id=unit_id).values_list("id", flat=True))
        for index, job_id in enumerate(job_ids):
            left = allowance - len(rows)
            if left <= 0:
                break
            rows += claim(_job_rows(job_id, now), limit=-(-left // (len(job_ids) - index)))
        if len(rows) < allowance:
            _give_back_rate(unit_id, allowance - len(rows))
        sent += send(rows)
    return sent


def _give_back_rate(unit_id: int, count: int) -> None:
    key = f"notify:rate:{unit_id}:{int(time.time() // 60)}"
    try:
        cache.decr(key, count)
    except ValueError:
        pass


def send(rows: list[Message]) -> int:
    """Hand claimed rows to a gateway (test rows only ever to the fake one) and record the results."""
    if not rows:
        return 0
    missing = {m.template_id for m in rows if m.template_id and m.template_id not in _codes}
    if missing:
        _codes.update(Template.objects.filter(pk__in=missing).values_list("pk", "code"))
    by_test: dict[bool, list[Message]] = defaultdict(list)
    for row in rows:
        by_test[row.test].append(row)
    for test, group in by_test.items():
        gateway = choose_gateway(test=test)
        outbound = [_outbound(m) for m in group]
        try:
            with _heartbeat({m.claim for m in group}):
                results = {r.id: r for r in gateway.send(outbound)}
        except Exception as exc:  # noqa: BLE001 - any transport error is a temporary failure for the batch
            logger.warning("短信网关 %s 发送失败：%s", gateway.code, exc)
            results = {}
        _record(group, results, gateway.code)
    return len(rows)


@contextmanager
def _heartbeat(claims: set[str]):
    """Renew the lease of the claimed rows every ``HEARTBEAT`` s while a gateway call lasts (a
    thread with its own connection; a call shorter than one beat writes nothing)."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(HEARTBEAT):
                Message.objects.filter(claim__in=claims, status=Message.Status.SENDING).update(
                    claimed_at=timezone.now()
                )
        except Exception:  # a missed beat only risks an early requeue (the gateway dedupes ids)
            logger.warning("notify: lease heartbeat failed", exc_info=True)
        finally:
            connections.close_all()

    thread = threading.Thread(target=beat, name="notify-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=HEARTBEAT)


def _outbound(message: Message) -> OutboundSms:
    """What a gateway gets: the final text, and for template-only providers our template code,
    the placeholder values and the unit's registered signature."""
    template_code = _template_codes().get(message.template_id, "") if message.template_id else ""
    return OutboundSms(
        id=str(message.pk),
        mobile=message.mobile,
        text=message.body,
        sign_name=policy_for_id(message.unit_id).signature,
        template=template_code,
        values=message.params or {},
    )


_codes: dict[int, str] = {}


def _template_codes() -> dict[int, str]:
    """Template id → code, cached per process (a template version never changes its code)."""
    return _codes


def _record(rows: list[Message], results: dict, gateway_code: str) -> None:
    now = timezone.now()
    usage: dict[tuple[int, dt.date], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    outcomes = []
    claims = {m.pk: m.claim for m in rows}  # the token each row was claimed with, checked when saving
    for message in rows:
        result = results.get(str(message.pk))
        message.gateway = gateway_code
        message.claim = ""
        status = result.status if result else SendStatus.TEMPORARY_FAILURE
        outcomes.append(status)
        if status == SendStatus.ACCEPTED:
            message.status, message.provider_id, message.sent_at = Message.Status.SENT, result.provider_id, now
            message.error_code = message.error = ""
            day = usage[(message.unit_id, timezone.localdate(now))]
            day["sent"] += 1
            day["parts"] += message.parts
            continue
        message.error_code = (result.error_code if result else "transport")[:64]
        message.error = (result.error_message if result else "网关无响应")[:200]
        if status == SendStatus.TEMPORARY_FAILURE and message.attempts < MAX_ATTEMPTS:
            message.status = Message.Status.TEMPORARY_FAILURE
            delay = BACKOFF_SECONDS[min(message.attempts - 1, len(BACKOFF_SECONDS) - 1)]
            message.not_before = now + dt.timedelta(seconds=delay)
        else:
            message.status = Message.Status.PERMANENT_FAILURE
            usage[(message.unit_id, timezone.localdate(now))]["failed"] += 1
    record_outcome(gateway_code, outcomes)
    with transaction.atomic():
        # A receipt may have arrived (and been applied by id) before this save: keep its verdict.
        settled = set(
            Message.objects.select_for_update()
            .filter(pk__in=[m.pk for m in rows], status__in=Message.FINAL)
            .values_list("pk", flat=True)
        )
        for message in rows:
            if message.pk in settled:
                fresh = Message.objects.get(pk=message.pk)
                day = usage[(message.unit_id, timezone.localdate(now))]
                if message.status == Message.Status.PERMANENT_FAILURE:
                    day["failed"] -= 1  # the carrier's receipt has the last word
                if message.sent_at is None:
                    # The gateway's answer was lost (timeout) but its receipt came: it was sent.
                    message.sent_at = now
                    day["sent"] += 1
                    day["parts"] += message.parts
                message.status, message.delivered_at = fresh.status, fresh.delivered_at
                message.error_code, message.error = fresh.error_code, fresh.error
                message.not_before = fresh.not_before
        sent = [m for m in rows if m.status == Message.Status.SENT]
        _save_sent(sent, gateway_code, now, claims)
        sent_ids = {m.pk for m in sent}
        Message.objects.bulk_update(
            [m for m in rows if m.pk not in sent_ids],
            ["status", "gateway", "provider_id", "sent_at", "error_code", "error", "not_before", "claim",
             "delivered_at"],
            batch_size=500,
        )  # fmt: skip
        usage_add(usage)
    failed = [m for m in rows if m.status == Message.Status.PERMANENT_FAILURE and m.callback_url]
    if failed:
        from .services import callbacks_queue

        callbacks_queue(failed)


def _save_sent(rows: list[Message], gateway_code: str, now: dt.datetime, claims: dict[int, str]) -> None:
    """Record accepted rows: one statement on PostgreSQL (``UPDATE … FROM (VALUES …)``), where
    Django's ``bulk_update`` (a CASE per field) was most of the dispatcher's time (bench). A row
    is only written while it still carries this run's claim (not after a requeue)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        Message.objects.bulk_update(rows, ["status", "gateway", "provider_id", "sent_at", "error_code", "error",
                                           "claim"], batch_size=500)  # fmt: skip
        return
    values = ", ".join(["(%s::bigint, %s, %s)"] * len(rows))
    params: list = [Message.Status.SENT, gateway_code, now]
    for message in rows:
        params += [message.pk, message.provider_id, claims.get(message.pk, "")]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE notify_message AS m SET status = %s, gateway = %s, sent_at = %s, provider_id = v.provider_id, "
            "claim = '', error_code = '', error = '' "
            f"FROM (VALUES {values}) AS v(id, provider_id, claim) WHERE m.id = v.id AND m.claim = v.claim",
            params,
        )


def usage_add(usage: dict[tuple[int, dt.date], dict[str, int]]) -> None:
    for (unit_id, day), counts in usage.items():
        UsageDay.objects.get_or_create(unit_id=unit_id, day=day)
        UsageDay.objects.filter(unit_id=unit_id, day=day).update(**{k: F(k) + v for k, v in counts.items()})


def requeue_stuck(*, older_than: dt.timedelta = STUCK_AFTER) -> int:
    """Put rows left in ``sending`` by a killed worker back in the queue (beat)."""
    return Message.objects.filter(status=Message.Status.SENDING, claimed_at__lt=timezone.now() - older_than).update(
        status=Message.Status.CREATED, claim=""
    )


def has_work(lane: str) -> bool:
    now = timezone.now()
    if _queue(lane, now).exists():
        return True
    return lane == NORMAL and _pending(now).filter(job__status=Job.Status.SENDING).exists()
