"""Writes of notify: policies, templates, opt-outs, sending one message, jobs, dispatch, receipts.

``message_send`` is the one function every other module calls to send an SMS. Nothing else in
yiwang talks to a gateway: the dispatcher (Celery) claims ``created`` rows with an atomic
UPDATE and hands them to ``gateways``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import tempfile
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import File
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from yiwang.core import webhooks
from yiwang.core.audit import audit_record
from yiwang.core.validators import is_valid_mobile, normalise_mobile
from yiwang.org.models import Role, Unit, User

from . import spreadsheet, text
from .models import Callback, InboundSms, Job, Message, OptOut, Policy, Template, UsageDay

logger = logging.getLogger(__name__)

MAX_SCHEDULE_AHEAD = dt.timedelta(days=7)


# --- policies -------------------------------------------------------------------------


def policy_for(unit: Unit | None) -> Policy:
    """The unit's own policy, else its nearest ancestor's, else the district default."""
    ids = []
    node = unit
    while node is not None:
        ids.append(node.pk)
        node = node.parent
    policies = {p.unit_id: p for p in Policy.objects.filter(Q(unit_id__in=ids) | Q(unit__isnull=True))}
    for unit_id in ids:
        if unit_id in policies:
            return policies[unit_id]
    return policies.get(None) or Policy(unit=None)


def _check_platform_admin(actor: User | None) -> None:
    if actor is not None and not actor.is_platform_admin:
        raise PermissionDenied(_("只有平台管理员可以设置短信配额与策略。"))


@transaction.atomic
def policy_save(*, actor: User | None, unit: Unit | None, **fields) -> Policy:
    """Set a unit's (or the district default) signature, quotas, rate, threshold and quiet hours."""
    _check_platform_admin(actor)
    policy = Policy.objects.filter(unit=unit).first() or Policy(unit=unit)
    old = {k: getattr(policy, k) for k in fields}
    for key, value in fields.items():
        setattr(policy, key, value)
    if policy.signature:
        policy.signature = text.validate_signature(policy.signature)
    policy.full_clean()
    policy.save()
    audit_record(actor=actor, action="notify.policy.save", obj=policy, unit_id=unit.pk if unit else None,
                 changes={k: [old[k], fields[k]] for k in fields if old[k] != fields[k]})  # fmt: skip
    return policy


def in_quiet_hours(policy: Policy, moment: dt.datetime) -> bool:
    """Whether ``moment`` (local time) falls in the policy's quiet hours (may span midnight)."""
    if policy.quiet_start is None or policy.quiet_end is None or policy.quiet_start == policy.quiet_end:
        return False
    now = timezone.localtime(moment).time()
    if policy.quiet_start < policy.quiet_end:
        return policy.quiet_start <= now < policy.quiet_end
    return now >= policy.quiet_start or now < policy.quiet_end


def quiet_hours_end(policy: Policy, moment: dt.datetime) -> dt.datetime:
    """The first moment after ``moment`` outside the quiet hours."""
    local = timezone.localtime(moment)
    end = local.replace(hour=policy.quiet_end.hour, minute=policy.quiet_end.minute, second=0, microsecond=0)
    return end if end > local else end + dt.timedelta(days=1)


# --- templates and opt-outs -------------------------------------------------------------


def can_use_unit(user: User | None, unit: Unit) -> bool:
    from yiwang.core.permissions import can_see_unit

    return user is None or user.is_platform_admin or can_see_unit(user, unit.pk)


@transaction.atomic
def template_save(*, actor: User | None, unit: Unit, code: str, name: str, body: str, kind: str = "notice") -> Template:
    """Save a template as the next version of (unit, code); sends already made keep their version."""
    if not can_use_unit(actor, unit):
        raise PermissionDenied(_("无权为该单位维护短信模板。"))
    if kind in Template.URGENT_KINDS and actor is not None:
        from yiwang.org.services import can_manage_unit

        if not can_manage_unit(actor, unit):
            # urgent messages skip opt-outs and quiet hours: only a unit's administrator decides that
            raise PermissionDenied(_("验证码、告警类模板须由单位管理员创建。"))
    errors: dict[str, list[str]] = {}
    code = (code or "").strip()
    if not code or not code.isascii() or len(code) > 64 or not all(c.isalnum() or c in "-_" for c in code):
        errors["code"] = [_("模板代码只能用英文字母、数字、横线和下划线。")]
    if not (name or "").strip():
        errors["name"] = [_("请填写模板名称。")]
    if kind not in Template.Kind.values:
        errors["kind"] = [_("未知的模板类型。")]
    body = text.normalise(body or "")
    if not body:
        errors["body"] = [_("请填写短信内容。")]
    else:
        try:
            text.check_template(body, signature=policy_for(unit).signature)
        except ValidationError as error:
            errors["body"] = error.messages
    if errors:
        raise ValidationError(errors)
    latest = Template.objects.select_for_update().filter(unit=unit, code=code).order_by("-version").first()
    Template.objects.filter(unit=unit, code=code, active=True).update(active=False)
    template = Template.objects.create(
        unit=unit, code=code, version=(latest.version + 1) if latest else 1, name=name.strip(), kind=kind,
        body=body, created_by=actor,
    )  # fmt: skip
    audit_record(actor=actor, action="notify.template.save", obj=template, unit_id=unit.pk)
    return template


def is_opted_out(mobile: str) -> bool:
    return OptOut.objects.filter(mobile=mobile).exists()


def optout_add(*, actor: User | None, mobile: str, reason: str = "", source: str = "admin") -> OptOut:
    """Stop every non-urgent SMS to ``mobile`` (退订)."""
    mobile = normalise_mobile(mobile)
    if not is_valid_mobile(mobile):
        raise ValidationError({"mobile": _("手机号格式不正确。")})
    optout, _created = OptOut.objects.get_or_create(mobile=mobile, defaults={"reason": reason[:200], "source": source})
    audit_record(actor=actor, action="notify.optout.add", obj=optout)
    return optout


# The replies that mean 退订, after NFKC (full-width letters), upper case and without spaces or
# punctuation: what carriers and people send ("TD", "td", "T", "退订", "退订。", "ＴＤ").
OPT_OUT_WORDS = frozenset({"TD", "T", "退订", "退", "STOP", "UNSUBSCRIBE", "取消订阅", "退订短信"})


def is_opt_out_reply(text_: str) -> bool:
    """Whether a reply asks to stop receiving SMS (回复TD退订)."""
    folded = unicodedata.normalize("NFKC", text_ or "").upper()
    folded = "".join(ch for ch in folded if not (ch.isspace() or unicodedata.category(ch).startswith("P")))
    return folded in OPT_OUT_WORDS


def replies_apply(*, gateway_code: str, replies) -> int:
    """Store the replies a gateway pushed (上行), each once; a TD/退订 reply opts its number out."""
    stored = 0
    for reply in replies:
        mobile = normalise_mobile(reply.mobile or "")
        with transaction.atomic():
            provider_id = (reply.provider_id or "")[:64]
            if provider_id and InboundSms.objects.filter(gateway=gateway_code, provider_id=provider_id).exists():
                continue  # a re-pushed reply
            wants_out = is_opt_out_reply(reply.text) and is_valid_mobile(mobile)
            inbound = InboundSms.objects.create(
                gateway=gateway_code, provider_id=provider_id, mobile=mobile[:20],
                text=(reply.text or "")[:500], received_at=reply.time or timezone.now(), opted_out=wants_out,
            )  # fmt: skip
            if wants_out and not is_opted_out(mobile):
                optout_add(actor=None, mobile=mobile, reason=_("短信回复“%(text)s”") % {"text": inbound.text[:20]},
                           source="reply")  # fmt: skip
            stored += 1
    return stored


def optout_remove(*, actor: User | None, mobile: str) -> int:
    deleted, _ = OptOut.objects.filter(mobile=normalise_mobile(mobile)).delete()
    if deleted:
        audit_record(actor=actor, action="notify.optout.remove", object_type="notify.optout", object_id=mobile,
                     object_repr=mobile)  # fmt: skip
    return deleted


# --- quota ----------------------------------------------------------------------------


def quota_reserve(*, unit: Unit, count: int, day: dt.date | None = None, policy: Policy | None = None) -> None:
    """Count ``count`` messages against the unit's daily quota, or refuse them all (配额)."""
    policy = policy or policy_for(unit)
    day = day or timezone.localdate()
    UsageDay.objects.get_or_create(unit=unit, day=day)
    updated = UsageDay.objects.filter(unit=unit, day=day, reserved__lte=policy.daily_quota - count).update(
        reserved=F("reserved") + count
    )
    if not updated:
        used = UsageDay.objects.filter(unit=unit, day=day).values_list("reserved", flat=True).first() or 0
        raise ValidationError(
            _("超出本单位 %(day)s 的短信配额：配额 %(quota)s 条，已用 %(used)s 条，本次 %(count)s 条。")
            % {"day": day, "quota": policy.daily_quota, "used": used, "count": count}
        )


def quota_release(*, unit_id: int, count: int, day: dt.date) -> None:
    if count:
        UsageDay.objects.filter(unit_id=unit_id, day=day).update(reserved=F("reserved") - count)


# --- sending one message ----------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    mobile: str
    body: str
    parts: int
    values: dict | None = None


def prepare(*, unit: Unit, mobile: str, body: str, policy: Policy | None = None) -> Prepared:
    """Check a number and a final text (signature added) for one SMS."""
    number = normalise_mobile(mobile or "")
    if not is_valid_mobile(number):
        raise ValidationError({"mobile": _("手机号 %(mobile)s 格式不正确。") % {"mobile": mobile}})
    policy = policy or policy_for(unit)
    final = text.with_signature(text.normalise(body), policy.signature) if policy.signature else text.normalise(body)
    if not final:
        raise ValidationError({"body": _("短信内容不能为空。")})
    text.check_length(final)
    return Prepared(mobile=number, body=final, parts=text.sms_parts(final))


@dataclass(frozen=True)
class Outgoing:
    """One SMS of a batch (the arguments of ``message_send`` that vary per message)."""

    mobile: str
    template: Template | None = None
    values: dict | None = None
    body: str = ""
    reference: str = ""
    urgent: bool | None = None
    callback_url: str = ""
    send_at: dt.datetime | None = None


class BatchRefused(ValidationError):
    """Some messages of a batch are wrong: ``errors`` maps each one's index to its ValidationError."""

    def __init__(self, errors: dict[int, ValidationError]):
        self.errors = errors
        super().__init__(_("%(count)s 条短信有误，整批未发送。") % {"count": len(errors)})


def _check_sender(actor: User | None, unit: Unit) -> Policy:
    if actor is not None and not can_use_unit(actor, unit):
        raise PermissionDenied(_("无权以该单位名义发送短信。"))
    policy = policy_for(unit)
    if not policy.enabled:
        raise ValidationError(_("本单位的短信发送已被平台停用。"))
    return policy


def _message_for(*, unit: Unit, policy: Policy, item: Outgoing, now: dt.datetime, opted_out) -> Message:
    """Check one outgoing SMS and build its (unsaved) row; ``opted_out(mobile)`` says whether a number opted out."""
    template, urgent, body = item.template, item.urgent, item.body
    if template is not None:
        if template.unit_id != unit.pk:
            raise ValidationError({"template": _("模板不属于该单位。")})
        try:
            body = text.render(template.body, item.values or {})
        except text.MissingPlaceholders as error:
            raise ValidationError({"values": error.messages}) from error
        urgent = template.urgent if urgent is None else urgent
    elif not (body or "").strip():
        raise ValidationError({"body": _("请填写短信内容或选择模板。")})
    elif "【" in body or "】" in body:
        raise ValidationError({"body": _("短信内容中不能含有【】：签名由平台自动加在开头。")})
    prepared = prepare(unit=unit, mobile=item.mobile, body=body, policy=policy)
    send_at = item.send_at
    if send_at is not None and not now - dt.timedelta(minutes=1) <= send_at <= now + MAX_SCHEDULE_AHEAD:
        raise ValidationError({"send_at": _("定时发送只能安排在未来 7 天内。")})
    if not urgent and opted_out(prepared.mobile):
        raise ValidationError(
            {"mobile": _("号码 %(mobile)s 已退订，不能发送非紧急短信。") % {"mobile": prepared.mobile}}
        )
    not_before = send_at
    if not urgent and in_quiet_hours(policy, send_at or now):
        not_before = quiet_hours_end(policy, send_at or now)
    params = {k: text.clean_value(v) for k, v in (item.values or {}).items()} if template is not None else {}
    return Message(
        unit=unit, template=template, mobile=prepared.mobile, body=prepared.body, parts=prepared.parts, params=params,
        priority=Message.Priority.URGENT if urgent else Message.Priority.NORMAL, reference=item.reference[:64],
        callback_url=item.callback_url, not_before=not_before,
    )  # fmt: skip


def _masked(mobile: str) -> str:
    return mobile[:3] + "****" + mobile[-4:]


@transaction.atomic
def message_send(
    *,
    unit: Unit,
    mobile: str,
    template: Template | None = None,
    values: dict | None = None,
    body: str = "",
    actor: User | None = None,
    module: str = "",
    reference: str = "",
    urgent: bool | None = None,
    test: bool = False,
    callback_url: str = "",
    send_at: dt.datetime | None = None,
    idempotency_key: str = "",
) -> Message:
    """Send one SMS (the one call every module uses). Returns the saved message; it goes out on commit.

    With an ``idempotency_key`` (the API's ``Idempotency-Key`` header), a call repeated with the same
    key for the unit returns the message the first made (``replayed`` set) and sends nothing more."""
    policy = _check_sender(actor, unit)
    key = (idempotency_key or "")[:64]
    if key and (existing := Message.objects.filter(unit=unit, idempotency_key=key).first()) is not None:
        existing.replayed = True
        return existing
    item = Outgoing(mobile=mobile, template=template, values=values, body=body, reference=reference, urgent=urgent,
                    callback_url=callback_url, send_at=send_at)  # fmt: skip
    message = _message_for(unit=unit, policy=policy, item=item, now=timezone.now(), opted_out=is_opted_out)
    message.test, message.module, message.created_by, message.idempotency_key = test, module[:32], actor, key
    try:
        with transaction.atomic():
            if not test:  # a test key's messages only reach the fake gateway: no quota
                day = timezone.localdate(message.not_before or timezone.now())
                quota_reserve(unit=unit, count=1, day=day, policy=policy)
            message.save()
    except IntegrityError:
        if not key:
            raise
        existing = Message.objects.get(unit=unit, idempotency_key=key)  # a concurrent call with the key won
        existing.replayed = True
        return existing
    message.replayed = False
    audit_record(actor=actor, action="notify.message.send", obj=message, unit_id=unit.pk,
                 changes={"mobile": [None, _masked(message.mobile)]})  # fmt: skip
    from . import tasks

    urgent_lane = message.priority == Message.Priority.URGENT
    transaction.on_commit(lambda: tasks.kick(urgent=urgent_lane), robust=True)  # never raises after the save
    return message


@transaction.atomic
def message_send_many(
    *, unit: Unit, items: list[Outgoing], actor: User | None = None, module: str = "", test: bool = False
) -> list[Message]:
    """Send a batch as one unit: every message checked (opt-outs in one query), quota reserved per
    day, all rows inserted in one statement and one audit entry; any wrong message refuses the
    whole batch (``BatchRefused`` lists them all)."""
    policy = _check_sender(actor, unit)
    now = timezone.now()
    numbers = {normalise_mobile(item.mobile or "") for item in items}
    opted = set(OptOut.objects.filter(mobile__in=numbers).values_list("mobile", flat=True))
    messages: list[Message] = []
    errors: dict[int, ValidationError] = {}
    for index, item in enumerate(items):
        try:
            messages.append(_message_for(unit=unit, policy=policy, item=item, now=now, opted_out=opted.__contains__))
        except ValidationError as error:
            errors[index] = error
    if errors:
        raise BatchRefused(errors)
    per_day: dict[dt.date, int] = {}
    for message in messages:
        day = timezone.localdate(message.not_before or now)
        per_day[day] = per_day.get(day, 0) + 1
    for day, count in sorted(per_day.items()) if not test else ():
        quota_reserve(unit=unit, count=count, day=day, policy=policy)
    for message in messages:
        message.test, message.module, message.created_by = test, module[:32], actor
    Message.objects.bulk_create(messages, batch_size=1000)
    audit_record(actor=actor, action="notify.message.send_many", object_type="notify.message",
                 object_id=f"{messages[0].pk}-{messages[-1].pk}" if messages else "", unit_id=unit.pk,
                 object_repr=_("批量发送 %(count)s 条") % {"count": len(messages)},
                 changes={"count": [None, len(messages)], "ids": [None, [m.pk for m in messages]]})  # fmt: skip
    from . import tasks

    lanes = {m.priority == Message.Priority.URGENT for m in messages}
    for lane in lanes:
        transaction.on_commit(lambda lane=lane: tasks.kick(urgent=lane), robust=True)
    return messages


def platform_sender_unit() -> Unit | None:
    """The district's own unit (the tree's root), which system messages are sent as."""
    return Unit.objects.filter(parent__isnull=True).order_by("id").first()


def system_admins() -> list[User]:
    return list(User.objects.filter(posts__role__code=Role.PLATFORM_ADMIN, posts__active=True, is_active=True))


# --- jobs (群发任务) ------------------------------------------------------------------------

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
ERROR_SAMPLE = 100
INSERT_BATCH = 5000


@transaction.atomic
def job_create(
    *,
    actor: User,
    unit: Unit,
    template: Template,
    upload,
    test: bool = False,
    callback_url: str = "",
    allow_duplicates: bool = False,
) -> Job:
    """Accept a recipients sheet; it is validated in the background (progress on the job page).

    A number on several rows (however written) gets one SMS unless ``allow_duplicates``.
    """
    if not can_use_unit(actor, unit):
        raise PermissionDenied(_("无权以该单位名义群发短信。"))
    if template.unit_id != unit.pk or not template.active:
        raise ValidationError({"template": _("请选择本单位当前有效的模板。")})
    if upload.size == 0:
        raise ValidationError({"file": _("文件是空的。")})
    if upload.size > MAX_UPLOAD_BYTES:
        raise ValidationError({"file": _("文件过大：上限 %(mb)s MB（约 100 万行）。") % {"mb": MAX_UPLOAD_BYTES >> 20}})
    name = (upload.name or "").rsplit("/", 1)[-1][:200]
    # Refuse what is plainly not a sheet now, not after a background run.
    spreadsheet.open_sheet(upload, name)
    job = Job.objects.create(unit=unit, template=template, created_by=actor, source_name=name, test=test,
                             callback_url=callback_url, source=upload, allow_duplicates=allow_duplicates)  # fmt: skip
    audit_record(actor=actor, action="notify.job.create", obj=job, unit_id=unit.pk)
    from . import tasks

    transaction.on_commit(lambda: tasks.validate_job.delay(job.pk))
    return job


def _row_problem(values: list[str], mobile_col: int, columns: dict[str, int], fill, signature: str):
    """Validate one row (``fill`` is the template's compiled body); returns (Prepared, None) or (None, problem)."""
    raw_mobile = values[mobile_col] if mobile_col < len(values) else ""
    mobile = normalise_mobile(raw_mobile)
    if not is_valid_mobile(mobile):
        return None, _("手机号格式不正确：%(mobile)s") % {"mobile": raw_mobile or _("（空）")}
    row_values = {name: (values[i] if i < len(values) else "") for name, i in columns.items()}
    missing = [name for name, value in row_values.items() if not value]
    if missing:
        return None, _("缺少占位符的值：%(names)s") % {"names": "、".join(missing)}
    try:
        body = fill(row_values)
    except text.SmsTextError as error:
        return None, " ".join(error.messages)
    final = f"【{signature}】{body}" if signature else body  # the policy's signature was validated when saved
    if text.sms_length(final) > text.MAX_LENGTH:
        return None, _("内容超长：%(n)s 字（上限 %(max)s 字）") % {"n": text.sms_length(final), "max": text.MAX_LENGTH}
    return Prepared(mobile=mobile, body=final, parts=text.sms_parts(final), values=row_values), None


def job_validate(*, job: Job, progress_every: int = 20000) -> Job:
    """Read the sheet, check every row, persist valid rows once (unique per row) and write the report.

    Memory stays flat whatever the file: rows are inserted in batches and problems are written
    to the report file as they are found (only the first ``ERROR_SAMPLE`` are kept for the preview).
    """
    job = Job.objects.select_related("template", "unit").get(pk=job.pk)
    if job.status != Job.Status.VALIDATING:
        return job
    template, policy = job.template, policy_for(job.unit)
    counts = {"total": 0, "valid": 0, "invalid": 0, "opted_out": 0, "duplicate": 0, "parts": 0}
    seen: set[int] = set()  # normalised numbers already taken (ints: ~1/3 the memory of str at 1M rows)
    sample: list[list] = []
    with job.source.open("rb") as upload, tempfile.TemporaryFile() as report:
        report_text = io.TextIOWrapper(report, encoding="utf-8-sig", newline="")
        report_csv = csv.writer(report_text)
        report_csv.writerow([_("行号"), _("手机号"), _("问题")])
        try:
            sheet = spreadsheet.open_sheet(upload, job.source_name)
            mobile_col = sheet.mobile_column()
            wanted = text.placeholders(template.body)
            absent = [p for p in wanted if p not in sheet.header]
            if absent:
                raise ValidationError(_("表头缺少模板占位符对应的列：%(names)s") % {"names": "、".join(absent)})
            columns = {name: sheet.header.index(name) for name in wanted}
            fill = text.compile_body(template.body)
            opted_out = set() if template.urgent else set(OptOut.objects.values_list("mobile", flat=True))
            Message.objects.filter(job=job).delete()  # a re-run after a crash starts clean
            batch: list[tuple] = []
            priority = Message.Priority.URGENT if template.urgent else Message.Priority.NORMAL
            for number, values in sheet.rows():
                counts["total"] += 1
                prepared, problem = _row_problem(values, mobile_col, columns, fill, policy.signature)
                if prepared is not None and prepared.mobile in opted_out:
                    prepared, problem = None, _("号码已退订")
                    counts["opted_out"] += 1
                if prepared is not None and not job.allow_duplicates:
                    key = int(prepared.mobile)
                    if key in seen:
                        prepared, problem = None, _("号码重复（已在前面的行中），不重复发送")
                        counts["duplicate"] += 1
                    else:
                        seen.add(key)
                if prepared is None:
                    counts["invalid"] += 1
                    row = [number, values[mobile_col] if mobile_col < len(values) else "", problem]
                    report_csv.writerow(row)
                    if len(sample) < ERROR_SAMPLE:
                        sample.append(row)
                    continue
                counts["valid"] += 1
                counts["parts"] += prepared.parts
                batch.append((number, prepared))
                if len(batch) >= INSERT_BATCH:
                    _insert_rows(job, batch, priority)
                    batch = []
                if counts["total"] % progress_every == 0:
                    Job.objects.filter(pk=job.pk).update(processed_rows=counts["total"])
            _insert_rows(job, batch, priority)
        except ValidationError as error:
            Message.objects.filter(job=job).delete()
            return _job_invalid(job, " ".join(error.messages))
        if counts["total"] == 0:
            return _job_invalid(job, _("文件中没有数据行。"))
        if counts["invalid"]:
            report_text.flush()
            report.seek(0)
            job.error_report.save(f"job-{job.pk}-errors.csv", File(report), save=False)
        report_text.detach()
    job.total_rows, job.valid_rows, job.invalid_rows = counts["total"], counts["valid"], counts["invalid"]
    job.opted_out_rows, job.parts, job.processed_rows = counts["opted_out"], counts["parts"], counts["total"]
    job.duplicate_rows = counts["duplicate"]
    job.errors = sample
    job.status = Job.Status.VALIDATED
    job.source.delete(save=False)  # the rows are saved; the uploaded sheet (personal data) is not kept
    job.save()
    if connection.vendor == "postgresql" and counts["valid"] >= 100_000:
        # Fresh statistics: without them the queue queries of a new million-row job took 0.5–0.8 s
        # each instead of < 1 ms (bench/notify_dispatch.py). ANALYZE samples, about 0.4 s.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE notify_message")
    return job


def _job_invalid(job: Job, problem: str) -> Job:
    job.status, job.problem = Job.Status.INVALID, problem[:300]
    job.source.delete(save=False)
    job.save(update_fields=["status", "problem", "source", "updated_at"])
    return job


def _insert_rows(job: Job, batch: list[tuple[int, Prepared]], priority: int) -> None:
    """Persist rows in one statement (COPY on PostgreSQL); (job, row) is unique, so nothing twice."""
    if not batch:
        return
    now = timezone.now()
    if connection.vendor == "postgresql":
        columns = ("job_id", "row", "unit_id", "template_id", "mobile", "body", "parts", "priority", "status", "test",
                   "module", "reference", "callback_url", "created_at", "attempts", "claim", "gateway", "provider_id",
                   "error_code", "error", "params")  # fmt: skip
        with connection.cursor() as cursor:
            raw = cursor.cursor
            with raw.copy(f"COPY notify_message ({', '.join(columns)}) FROM STDIN") as copy:
                for number, p in batch:
                    copy.write_row((job.pk, number, job.unit_id, job.template_id, p.mobile, p.body, p.parts, priority,
                                    Message.Status.CREATED, job.test, "notify", "", job.callback_url, now, 0, "", "",
                                    "", "", "", json.dumps(p.values or {}, ensure_ascii=False)))  # fmt: skip
        return
    Message.objects.bulk_create(
        [Message(job=job, row=number, unit_id=job.unit_id, template_id=job.template_id, mobile=p.mobile, body=p.body,
                 parts=p.parts, priority=priority, test=job.test, module="notify", callback_url=job.callback_url,
                 params=p.values or {})
         for number, p in batch],
        batch_size=1000,
    )  # fmt: skip


MASS_SEND_PROCESS = "notify.mass_send"


def _mass_send_process():
    from yiwang.workflow import services as workflow

    return workflow.builtin_process(
        code=MASS_SEND_PROCESS,
        name=_("短信群发审批"),
        module="notify",
        description=_("超过规模阈值的群发须经本单位主要领导审批"),
        steps=[{"key": "leader", "name": _("单位主要领导审批"), "kind": "single",
                "assignee": {"type": "initiator_leader", "rank": "principal"}, "time_limit": 1}],
    )  # fmt: skip


@transaction.atomic
def job_confirm(*, actor: User, job: Job, send_at: dt.datetime | None = None) -> Job:
    """The sender confirms after the preview: quota is reserved, then approval or schedule."""
    job = Job.objects.select_for_update().select_related("template", "unit").get(pk=job.pk)
    if not can_use_unit(actor, job.unit):
        raise PermissionDenied(_("无权操作该群发任务。"))
    if job.status != Job.Status.VALIDATED:
        raise ValidationError(_("该任务当前状态为“%(status)s”，不能确认发送。") % {"status": job.get_status_display()})
    if job.valid_rows == 0:
        raise ValidationError(_("没有可发送的有效号码。"))
    now = timezone.now()
    if send_at is not None and not now - dt.timedelta(minutes=1) <= send_at <= now + MAX_SCHEDULE_AHEAD:
        raise ValidationError({"send_at": _("定时发送只能安排在未来 7 天内。")})
    policy = policy_for(job.unit)
    if not policy.enabled:
        raise ValidationError(_("本单位的短信发送已被平台停用。"))
    start = send_at or now
    if not job.template.urgent and in_quiet_hours(policy, start):
        start = quiet_hours_end(policy, start)  # a job confirmed at night starts in the morning
    job.confirmed_at, job.scheduled_for = now, start
    needs_approval = job.valid_rows >= policy.approval_threshold and not job.test
    if needs_approval and job.valid_rows > policy.daily_quota:
        raise ValidationError(
            _("本次 %(count)s 条超过本单位每日配额 %(quota)s 条。")
            % {"count": job.valid_rows, "quota": policy.daily_quota}
        )
    if not needs_approval and not job.test:  # an approved job counts on the day it is approved
        job.quota_day = timezone.localdate(start)
        quota_reserve(unit=job.unit, count=job.valid_rows, day=job.quota_day, policy=policy)
    if needs_approval:
        from yiwang.workflow import services as workflow

        case = workflow.case_start(
            process=_mass_send_process(), initiator=actor, unit=job.unit, subject=job,
            title=_("短信群发：%(name)s（%(n)s 条）") % {"name": job.template.name, "n": job.valid_rows},
            fields={"rows": job.valid_rows, "parts": job.parts},
        )  # fmt: skip
        job.status, job.approval_case_id = Job.Status.PENDING_APPROVAL, case.pk
    else:
        job.status = Job.Status.SCHEDULED
    job.save(update_fields=["status", "confirmed_at", "scheduled_for", "quota_day", "approval_case_id", "updated_at"])
    audit_record(actor=actor, action="notify.job.confirm", obj=job, unit_id=job.unit_id,
                 changes={"rows": [None, job.valid_rows], "status": [None, job.status]})  # fmt: skip
    if job.status == Job.Status.SCHEDULED and job.scheduled_for <= now:
        transaction.on_commit(job_start_due)
    return job


def _job_decided(sender, case, outcome, **kwargs) -> None:
    """The leader's decision on a large send (through the workflow engine)."""
    if case.definition.code != MASS_SEND_PROCESS or not case.object_id:
        return
    job = Job.objects.select_for_update().filter(pk=case.object_id).first()
    if job is None or job.status != Job.Status.PENDING_APPROVAL:
        return
    if outcome == "approved":
        # The quota of the day it is approved (not of the day it was submitted).
        now = timezone.now()
        job.scheduled_for = max(job.scheduled_for or now, now)
        try:
            with transaction.atomic():
                quota_reserve(unit=job.unit, count=job.valid_rows, day=timezone.localdate(job.scheduled_for))
        except ValidationError as error:
            job.problem = " ".join(error.messages)[:300]
            job.save(update_fields=["problem", "updated_at"])
            _job_stop(job, Job.Status.REFUSED)
            return
        job.status, job.quota_day = Job.Status.SCHEDULED, timezone.localdate(job.scheduled_for)
        job.save(update_fields=["status", "scheduled_for", "quota_day", "updated_at"])
        transaction.on_commit(job_start_due)
    else:
        _job_stop(job, Job.Status.REFUSED)


@transaction.atomic
def job_cancel(*, actor: User, job: Job) -> Job:
    """Cancel a job that is waiting or sending; rows not yet sent are never sent (取消)."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if not can_use_unit(actor, job.unit):
        raise PermissionDenied(_("无权操作该群发任务。"))
    if job.status not in Job.OPEN:
        raise ValidationError(_("该任务已结束（%(status)s），无法取消。") % {"status": job.get_status_display()})
    if job.approval_case_id:
        from yiwang.workflow import selectors as wf_selectors
        from yiwang.workflow import services as workflow

        case = wf_selectors.case_get(user=actor, pk=job.approval_case_id) if actor else None
        if case is not None and case.is_running:
            workflow.case_cancel(case=case, actor=actor, reason=_("发送人取消了群发任务"))
    _job_stop(job, Job.Status.CANCELLED)
    audit_record(actor=actor, action="notify.job.cancel", obj=job, unit_id=job.unit_id)
    return job


def _job_stop(job: Job, status: str) -> None:
    cancelled = Message.objects.filter(job=job, status=Message.Status.CREATED).update(status=Message.Status.CANCELLED)
    if job.quota_day is not None:
        quota_release(unit_id=job.unit_id, count=cancelled, day=job.quota_day)
    job.status, job.cancelled_at = status, timezone.now()
    job.save(update_fields=["status", "cancelled_at", "updated_at"])


def job_start_due(now: dt.datetime | None = None) -> int:
    """Move scheduled jobs whose time has come to sending, and wake the dispatcher (beat + on confirm)."""
    now = now or timezone.now()
    started = Job.objects.filter(status=Job.Status.SCHEDULED, scheduled_for__lte=now).update(
        status=Job.Status.SENDING, started_at=now
    )
    if started:
        from . import tasks

        tasks.kick(urgent=False)
    return started


def job_progress(job: Job) -> dict[str, int]:
    """Rows of a job by state (the progress bar and the report)."""
    counts = dict(
        Message.objects.filter(job=job).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    done = sum(counts.get(s, 0) for s in (Message.Status.SENT, Message.Status.DELIVERED,
                                           Message.Status.PERMANENT_FAILURE, Message.Status.CANCELLED))  # fmt: skip
    return {"total": job.valid_rows, "done": done, **counts}


def jobs_finish() -> int:
    """Mark sending jobs with nothing left to send as finished."""
    finished = 0
    for job in Job.objects.filter(status=Job.Status.SENDING):
        pending = Message.objects.filter(
            job=job, status__in=[Message.Status.CREATED, Message.Status.SENDING, Message.Status.TEMPORARY_FAILURE]
        ).exists()
        if not pending:
            finished += Job.objects.filter(pk=job.pk, status=Job.Status.SENDING).update(
                status=Job.Status.FINISHED, finished_at=timezone.now()
            )
    return finished


# --- receipts and callbacks (回执) ---------------------------------------------------------

CALLBACK_BACKOFF_SECONDS = (10, 60, 300, 1800, 7200)


def receipts_apply(*, gateway_code: str, receipts) -> int:
    """Record delivery receipts from a gateway; unknown ids are ignored. Returns how many matched."""
    from .dispatch import usage_add
    from .gateways import ReceiptStatus

    by_provider = {r.provider_id: r for r in receipts if r.provider_id}
    # Our own message id, where the gateway echoes it: a receipt can overtake the dispatcher's
    # save of the provider id (the fake gateway answers within milliseconds).
    by_ours = {int(r.id): r for r in receipts if str(r.id).isdigit()}
    if not by_provider and not by_ours:
        return 0
    now = timezone.now()
    usage: dict = defaultdict(lambda: defaultdict(int))
    changed = []
    with transaction.atomic():
        matches = Message.objects.select_for_update().filter(
            Q(gateway=gateway_code, provider_id__in=list(by_provider)) | Q(pk__in=list(by_ours))
        )
        for message in matches:
            receipt = by_ours.get(message.pk) or by_provider.get(message.provider_id)
            if receipt is None or message.status in Message.FINAL:
                continue  # a repeated receipt changes nothing
            if message.status == Message.Status.SENDING:
                message.provider_id = message.provider_id or receipt.provider_id[:64]
                message.gateway = message.gateway or gateway_code
            day = usage[(message.unit_id, timezone.localdate(message.sent_at or now))]
            if receipt.status == ReceiptStatus.DELIVERED:
                message.status, message.delivered_at = Message.Status.DELIVERED, receipt.time or now
                day["delivered"] += 1
            else:
                message.status = Message.Status.PERMANENT_FAILURE
                message.error_code = (receipt.error_code or "")[:64]
                message.error = (receipt.error_message or _("运营商回执：未送达"))[:200]
                day["failed"] += 1
            changed.append(message)
        Message.objects.bulk_update(
            changed, ["status", "delivered_at", "error_code", "error", "provider_id", "gateway"], batch_size=500
        )
        usage_add(usage)
        callbacks_queue([m for m in changed if m.callback_url])
    return len(changed)


def callbacks_queue(messages) -> None:
    """Queue a status post to the calling system for each message that asked for one."""
    now = timezone.now()
    Callback.objects.bulk_create(
        [Callback(message=m, url=m.callback_url, next_attempt_at=now, payload=message_status_payload(m))
         for m in messages if m.callback_url]
    )  # fmt: skip


def message_status_payload(message: Message) -> dict:
    return {
        "id": message.pk,
        "reference": message.reference,
        "mobile": message.mobile,
        "status": message.status,
        "sent_at": message.sent_at.isoformat() if message.sent_at else None,
        "delivered_at": message.delivered_at.isoformat() if message.delivered_at else None,
        "error_code": message.error_code,
    }


def callback_secret() -> str:
    """The key that signs status callbacks: YIWANG_SMS_CALLBACK_SECRET, else SECRET_KEY."""
    return getattr(settings, "YIWANG_SMS_CALLBACK_SECRET", "") or settings.SECRET_KEY


def callbacks_send(*, limit: int = 200, timeout: float = 5.0) -> dict[str, int]:
    """Post due callbacks; failures are retried with backoff, five times at most (beat).

    Posted by ``core.webhooks`` (signed, timestamped, public addresses only); the receiver
    verifies ``X-Yiwang-Signature`` over ``"{X-Yiwang-Timestamp}.{body}"``.
    """
    now = timezone.now()
    done = failed = 0
    due = list(Callback.objects.filter(done_at__isnull=True, next_attempt_at__lte=now).order_by("id")[:limit])
    for callback in due:
        # Claim it: another beat run skips it for a minute.
        if not Callback.objects.filter(pk=callback.pk, next_attempt_at=callback.next_attempt_at).update(
            next_attempt_at=now + dt.timedelta(minutes=1)
        ):
            continue
        ok, _status, error = webhooks.post(callback.url, callback.payload, secret=callback_secret(), timeout=timeout)
        callback.attempts += 1
        if ok:
            callback.done_at, callback.last_error = timezone.now(), ""
            done += 1
        else:
            callback.last_error = error[:200]
            if callback.attempts > len(CALLBACK_BACKOFF_SECONDS):
                callback.done_at = timezone.now()  # given up; the last error stays visible
            else:
                callback.next_attempt_at = now + dt.timedelta(seconds=CALLBACK_BACKOFF_SECONDS[callback.attempts - 1])
            failed += 1
        callback.save(update_fields=["attempts", "done_at", "last_error", "next_attempt_at"])
    return {"done": done, "failed": failed}


def messages_purge(*, days: int | None = None) -> int:
    """Delete messages (and finished jobs) older than the retention period; usage counters stay."""
    days = days or getattr(settings, "YIWANG_SMS_RETENTION_DAYS", 180)
    cutoff = timezone.now() - dt.timedelta(days=days)
    deleted, _ = Message.objects.filter(created_at__lt=cutoff).exclude(status__in=Message.PENDING_STATES).delete()
    for job in Job.objects.filter(created_at__lt=cutoff).exclude(status__in=Job.OPEN):
        job.error_report.delete(save=False)
        job.source.delete(save=False)
        job.delete()
    return deleted
