"""Subscriptions (订阅): a consumer system follows the changes of a registry-backed resource.

Every write to a base registry appends ``Change`` lines (``registries.changes_log``); their
``id`` is the cursor. A system with a live grant may

* pull: ``changes_pull`` (``GET /api/exchange/gateway/<code>/changes/?cursor=&limit=``)
  returns the changes after a cursor, oldest first, and the cursor to send next time;
* be pushed to: a subscription with a webhook gets the same changes POSTed as signed JSON
  (``core.webhooks``: ``X-Yiwang-Signature`` over ``"{X-Yiwang-Timestamp}.{body}"`` with the
  subscription's secret) by ``subscriptions_push`` every 30 s. A failed push waits 1, 2, 4 …
  minutes (at most 6 hours) before the next try; after 20 failures in a row the subscription
  is switched off and the consumer unit is told. Delivery is at least once: a receiver
  ignores change ids it has already seen.

A change only tells which record changed and which items: the consumer reads the values
through the gateway (audited, masked as granted). Items outside the grant are left out, a
change touching only such items is skipped, and the key is masked like its item when the
grant does not include it in plain text. Deny by default: no live grant, nothing.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from yiwang.core import webhooks
from yiwang.core.audit import audit_record
from yiwang.core.permissions import scope
from yiwang.org.models import ConsumerSystem, User

from . import registries, services
from .disputes import tell, unit_people
from .masking import mask
from .models import CatalogEntry, Change, Grant, Subscription

PUSH_BATCH = 500  # changes per push
CLAIM_BATCH = 20  # subscriptions claimed per run (the rest wait for the next tick)
LEASE = dt.timedelta(minutes=5)  # longer than CLAIM_BATCH posts at their timeout: never claimed twice
FIRST_BACKOFF = dt.timedelta(minutes=1)
MAX_BACKOFF = dt.timedelta(hours=6)
MAX_FAILURES = 20
MAX_CURSOR = 2**63 - 1


# --- who ------------------------------------------------------------------------------------


def can_manage(user: User, subscription: Subscription) -> bool:
    """The system itself, people of its unit and their admins, the e-gov office."""
    return services.can_use_system(user, subscription.system)


def subscriptions_visible(*, user: User) -> QuerySet[Subscription]:
    base = Subscription.objects.select_related("system", "unit")
    if getattr(user, "is_system", False):
        return base.filter(system__account=user)
    if services.is_egov(user):
        return base
    return scope(base, user)


def systems_of(*, user: User) -> list[ConsumerSystem]:
    """The systems a person may subscribe for: those of the acting unit (all for the e-gov office)."""
    if getattr(user, "is_system", False):
        return list(ConsumerSystem.objects.filter(account=user))
    qs = ConsumerSystem.objects.select_related("unit").order_by("unit__path", "id")
    if services.is_egov(user):
        return list(qs)
    return [s for s in qs.filter(unit_id=user.acting_unit_id)]


def grants_for(*, systems: list[ConsumerSystem]) -> list[tuple[Grant, CatalogEntry]]:
    """Live grants of these systems on published registry-backed resources (subscribable)."""
    today = timezone.localdate()
    grants = (
        Grant.objects.filter(system__in=systems, revoked_at__isnull=True)
        .filter(Q(expires_on__isnull=True) | Q(expires_on__gte=today))
        .select_related("system")
        .order_by("system_id", "resource_code")
    )
    entries = {
        e.code: e
        for e in CatalogEntry.objects.filter(
            code__in={g.resource_code for g in grants}, status=CatalogEntry.Status.PUBLISHED
        ).exclude(registry="")
    }
    return [(g, entries[g.resource_code]) for g in grants if g.resource_code in entries]


# --- writes ---------------------------------------------------------------------------------


def _clean_webhook(url: str) -> str:
    url = (url or "").strip()
    if not url:
        return ""
    if len(url) > 300:
        raise ValidationError({"webhook_url": [_("推送地址不能超过 300 个字符。")]})
    try:
        URLValidator(schemes=["http", "https"])(url)
        webhooks.check_url(url)
    except ValidationError as error:
        message = error.messages[0] if error.code != "invalid" else _("推送地址须为 http:// 或 https:// 网址。")
        raise ValidationError({"webhook_url": [message]}) from None
    return url


def _latest_change(registry: str) -> int:
    return Change.objects.filter(registry=registry).aggregate(m=Max("id"))["m"] or 0


@transaction.atomic
def subscription_save(
    *, actor: User, system: ConsumerSystem, resource_code: str, webhook_url: str = ""
) -> tuple[Subscription, str]:
    """Subscribe a system to a resource, or change its webhook (订阅). Needs a live grant.

    Returns the subscription and its signing secret when one was just generated (a new or a
    re-activated subscription), else "": the secret is shown once. A new subscription starts
    at the latest change (read what exists through the gateway); pull with cursor=0 for history.
    """
    if not services.can_use_system(actor, system):
        raise PermissionDenied(_("只能为本单位的业务系统订阅。"))
    code = (resource_code or "").strip()
    entry = services.entry_published(code)
    if entry is None:
        raise ValidationError({"resource_code": [_("资源不存在或未发布：%(code)s") % {"code": code[:20]}]})
    if not entry.registry:
        raise ValidationError({"resource_code": [_("该资源没有接入基础库，没有可订阅的变更。")]})
    if services.grant_live(system=system, resource_code=code) is None:
        raise PermissionDenied(_("该系统未获得此资源的共享授权，不能订阅。"))
    url = _clean_webhook(webhook_url)
    subscription = Subscription.objects.select_for_update().filter(system=system, resource_code=code).first()
    new_secret = ""
    if subscription is None:
        new_secret = secrets.token_hex(32)
        subscription = Subscription.objects.create(
            system=system,
            unit_id=system.unit_id,
            resource_code=code,
            webhook_url=url,
            secret=new_secret,
            cursor=_latest_change(entry.registry),
        )
        before = {}
    else:
        before = {"webhook_url": subscription.webhook_url, "active": subscription.active}
        if not subscription.active:
            new_secret = secrets.token_hex(32)  # whoever kept the old one should not sign for the new
            subscription.secret = new_secret
            subscription.active = True
        subscription.webhook_url = url
        subscription.failures, subscription.last_error, subscription.next_attempt_at = 0, "", None
        subscription.save()
    audit_record(
        actor=actor,
        action="exchange.subscription.save",
        obj=subscription,
        unit_id=system.unit_id,
        changes={
            "system": system.name,
            "resource": code,
            "webhook_url": [before.get("webhook_url"), url],
            "active": [before.get("active"), True],
            "secret": "new" if new_secret else "kept",
        },
    )
    return subscription, new_secret


@transaction.atomic
def subscription_cancel(*, actor: User, subscription: Subscription) -> Subscription:
    """Stop a subscription (取消订阅); its cursor stays, subscribing again re-activates it."""
    subscription = Subscription.objects.select_for_update().select_related("system").get(pk=subscription.pk)
    if not can_manage(actor, subscription):
        raise PermissionDenied(_("只能取消本单位业务系统的订阅。"))
    if not subscription.active:
        raise ValidationError(_("该订阅已停用。"))
    subscription.active = False
    subscription.next_attempt_at = None
    subscription.save(update_fields=["active", "next_attempt_at", "updated_at"])
    audit_record(actor=actor, action="exchange.subscription.cancel", obj=subscription, unit_id=subscription.unit_id)
    return subscription


@transaction.atomic
def subscription_retry(*, actor: User, subscription: Subscription) -> Subscription:
    """Push at the next tick (立即重试), e.g. after the consumer fixed its endpoint; a subscription
    switched off after repeated failures is switched on again."""
    subscription = Subscription.objects.select_for_update().select_related("system").get(pk=subscription.pk)
    if not can_manage(actor, subscription):
        raise PermissionDenied(_("只能操作本单位业务系统的订阅。"))
    if not subscription.webhook_url:
        raise ValidationError(_("该订阅没有推送地址，请按游标拉取。"))
    if not subscription.active and subscription.failures < MAX_FAILURES:
        raise ValidationError(_("该订阅已取消，请重新订阅。"))
    if services.grant_live(system=subscription.system, resource_code=subscription.resource_code) is None:
        raise ValidationError(_("该系统对此资源的共享授权已撤销或过期，不能推送。"))
    before = {"active": subscription.active, "failures": subscription.failures}
    subscription.active, subscription.failures, subscription.next_attempt_at = True, 0, None
    subscription.save(update_fields=["active", "failures", "next_attempt_at", "updated_at"])
    audit_record(
        actor=actor,
        action="exchange.subscription.retry",
        obj=subscription,
        unit_id=subscription.unit_id,
        changes={"active": [before["active"], True], "failures": [before["failures"], 0]},
    )
    return subscription


# --- reading the change log -----------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    """How one grant sees a resource's changes: which items, whether the key is masked."""

    registry: str
    items: frozenset
    key_mask: str | None  # None: the key in plain text


def _view(entry: CatalogEntry, grant: Grant) -> _View:
    spec = registries.registry(entry.registry)
    key_mask = None
    for item in entry.items.all():
        if item.code in spec.key_fields and item.personal and item.code not in (grant.unmasked or []):
            key_mask = item.mask or "full"
    return _View(entry.registry, frozenset(grant.items or []), key_mask)


def _read(view: _View, *, cursor: int, limit: int) -> tuple[list[dict], int, bool]:
    """Up to ``limit`` change lines after ``cursor`` as the grant sees them, the next cursor
    (the last line read, shown or not) and whether more lines follow."""
    rows = list(
        Change.objects.filter(registry=view.registry, id__gt=cursor)
        .order_by("id")
        .values("id", "record_key", "op", "items", "changed_at")[: limit + 1]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    changes = []
    for row in rows:
        items = [i for i in row["items"] or [] if i in view.items]
        if row["op"] == Change.Op.UPDATED and not items:
            continue  # nothing the grant covers changed
        key = row["record_key"] if view.key_mask is None else mask(row["record_key"], view.key_mask)
        changes.append({"id": row["id"], "key": key, "op": row["op"], "items": items, "changed_at": row["changed_at"]})
    return changes, (rows[-1]["id"] if rows else cursor), more


def _clean_page(cursor, limit) -> tuple[int, int]:
    errors: dict[str, list[str]] = {}
    try:
        cursor = int(cursor)
        if not 0 <= cursor <= MAX_CURSOR:
            raise ValueError
    except (TypeError, ValueError):
        errors["cursor"] = [_("cursor 须为不小于 0 的整数（上次返回的 next_cursor，首次为 0）。")]
    page = settings.YIWANG_EXCHANGE_MAX_PAGE
    try:
        limit = int(limit)
        if not 1 <= limit <= page:
            raise ValueError
    except (TypeError, ValueError):
        errors["limit"] = [_("limit 须为 1 到 %(n)d 之间的整数。") % {"n": page}]
    if errors:
        raise ValidationError(errors)
    return cursor, limit


def _evidence(system: ConsumerSystem, code: str, name: str, changes: dict) -> None:
    audit_record(
        actor=system.account,
        action="exchange.changes",
        object_type="exchange.resource",
        object_id=code[:64],
        object_repr=name,
        unit_id=system.unit_id,
        changes={"system": system.name, **changes},
    )


def changes_pull_page(*, system: ConsumerSystem, resource_code: str, cursor, limit) -> dict:
    """``changes_pull`` with the paging facts the API returns: changes, next_cursor, has_more.
    Every pull is audited like a gateway read, a refused one too."""
    cursor, limit = _clean_page(cursor, limit)
    grant = services.grant_live(system=system, resource_code=resource_code)
    entry = services.entry_published(resource_code) if grant is not None else None
    if grant is None or entry is None:
        error = "not_granted" if grant is None else "not_found"
        _evidence(system, resource_code, "", {"cursor": cursor, "count": 0, "status": 403 if grant is None else 404,
                                              "error": error})  # fmt: skip
        if grant is None:
            raise PermissionDenied(_("该系统未获得此资源的共享授权。"))
        raise Http404(_("资源不存在、未发布或已撤销。"))
    if not entry.registry:
        raise ValidationError(_("该资源没有接入基础库，没有变更记录。"), code="no_registry")
    changes, next_cursor, more = _read(_view(entry, grant), cursor=cursor, limit=limit)
    _evidence(system, entry.code, entry.name, {"cursor": cursor, "count": len(changes), "next_cursor": next_cursor,
                                              "status": 200})  # fmt: skip
    return {"resource": entry.code, "changes": changes, "next_cursor": next_cursor, "has_more": more}


def changes_pull(*, system: ConsumerSystem, resource_code: str, cursor: int, limit: int) -> tuple[list[dict], int]:
    """The resource's changes after ``cursor`` that the system's grant covers, oldest first, and
    the cursor to pass next time. Audited like a gateway read; no live grant, no changes."""
    page = changes_pull_page(system=system, resource_code=resource_code, cursor=cursor, limit=limit)
    return page["changes"], page["next_cursor"]


def backlog(subscription: Subscription, *, registry: str | None = None) -> int:
    """How many change lines of the resource's registry follow the subscription's cursor."""
    if registry is None:
        entry = services.entry_published(subscription.resource_code)
        registry = entry.registry if entry else ""
    if not registry:
        return 0
    return Change.objects.filter(registry=registry, id__gt=subscription.cursor).count()


# --- pushing --------------------------------------------------------------------------------


def backoff(failures: int) -> dt.timedelta:
    """1 min after the first failure, then 2, 4, 8 … minutes, at most 6 hours."""
    return min(FIRST_BACKOFF * 2 ** max(failures - 1, 0), MAX_BACKOFF)


def _claim(now: dt.datetime) -> list[Subscription]:
    """Due subscriptions with changes waiting, each taken for ``LEASE`` so no other worker pushes it."""
    registries_of = dict(
        CatalogEntry.objects.filter(status=CatalogEntry.Status.PUBLISHED)
        .exclude(registry="")
        .values_list("code", "registry")
    )
    latest = dict(Change.objects.values_list("registry").annotate(m=Max("id")).values_list("registry", "m"))
    waiting = Q(pk__in=[])
    for registry, last in latest.items():
        codes = [code for code, r in registries_of.items() if r == registry]
        if codes and last:
            waiting |= Q(resource_code__in=codes, cursor__lt=last)
    with transaction.atomic():
        claimed = list(
            Subscription.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(active=True)
            .exclude(webhook_url="")
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .filter(waiting)
            .select_related("system", "system__account")
            .order_by("next_attempt_at", "id")[:CLAIM_BATCH]
        )
        Subscription.objects.filter(pk__in=[s.pk for s in claimed]).update(next_attempt_at=now + LEASE)
    return claimed


def _stop(subscription: Subscription, *, reason: str) -> None:
    Subscription.objects.filter(pk=subscription.pk).update(
        active=False, next_attempt_at=None, last_error=reason[:300], updated_at=timezone.now()
    )
    audit_record(
        actor=None,
        action="exchange.subscription.stop",
        obj=subscription,
        unit_id=subscription.unit_id,
        changes={"reason": reason},
    )


def _push_one(subscription: Subscription, *, now: dt.datetime) -> bool:
    system = subscription.system
    grant = services.grant_live(system=system, resource_code=subscription.resource_code)
    entry = services.entry_published(subscription.resource_code)
    if grant is None or entry is None or not entry.registry:
        _stop(subscription, reason=_("共享授权已撤销或过期，或资源已撤销，订阅已停止。"))
        return False
    changes, next_cursor, _more = _read(_view(entry, grant), cursor=subscription.cursor, limit=PUSH_BATCH)
    done = {"cursor": next_cursor, "failures": 0, "last_error": "", "next_attempt_at": None, "updated_at": now}
    if not changes:  # only items outside the grant changed: move on without a post
        Subscription.objects.filter(pk=subscription.pk, cursor=subscription.cursor).update(**done)
        return False
    payload = {
        "subscription": subscription.pk,
        "resource": entry.code,
        "cursor": subscription.cursor,
        "next_cursor": next_cursor,
        "changes": changes,
    }
    ok, _status, error = webhooks.post(subscription.webhook_url, payload, secret=subscription.secret)
    if ok:
        Subscription.objects.filter(pk=subscription.pk, cursor=subscription.cursor).update(
            **done, last_pushed_at=timezone.now()
        )
        audit_record(
            actor=system.account,
            action="exchange.changes.push",
            object_type="exchange.resource",
            object_id=entry.code,
            object_repr=entry.name,
            unit_id=subscription.unit_id,
            changes={"system": system.name, "cursor": subscription.cursor, "count": len(changes),
                     "next_cursor": next_cursor, "subscription": subscription.pk},
        )  # fmt: skip
        return True
    failures = subscription.failures + 1
    update = {"failures": failures, "last_error": (error or _("推送失败"))[:300], "updated_at": now}
    if failures >= MAX_FAILURES:
        update.update(active=False, next_attempt_at=None)
    else:
        update["next_attempt_at"] = now + backoff(failures)
    Subscription.objects.filter(pk=subscription.pk).update(**update)
    if failures >= MAX_FAILURES:
        audit_record(
            actor=None,
            action="exchange.subscription.stop",
            obj=subscription,
            unit_id=subscription.unit_id,
            changes={"failures": failures, "last_error": update["last_error"]},
        )
        tell(
            unit_people(subscription.unit_id),
            title=_("订阅推送连续失败 %(n)d 次，已停用：%(system)s · %(code)s")
            % {"n": failures, "system": system.name, "code": subscription.resource_code},
            body=update["last_error"],
            url=reverse("exchange:subscriptions"),
        )
    return False


def subscriptions_push(*, now: dt.datetime | None = None) -> int:
    """Push waiting changes to due webhooks (every 30 s); returns how many posts succeeded."""
    now = now or timezone.now()
    pushed = 0
    for subscription in _claim(now):
        pushed += _push_one(subscription, now=now)
    return pushed
