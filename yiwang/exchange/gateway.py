"""The API gateway's hot path: who is calling, may they, which items, and the evidence.

Per call (``record_read``): the key, the published entry and the grant come from a
per-process cache that is dropped whenever the shared *generation* moves (any change to keys,
systems, accounts, entries or grants bumps it), so a revocation takes effect at the next
call in every process; one cache read checks the generation and one increment counts the
rate. Then one SELECT on the registry's unique key, masking of personal items not granted
in plain text, and one audit INSERT (the evidence: who, system, resource, items, purpose,
record key, result count, timings, size, status). Denied calls are audited too.

Deny by default: no key, no ``exchange:read`` scope, no published entry, no live grant,
an item outside the grant or no purpose — each is a refusal before any data is read.

Modules inside the platform read through ``read_internal``: the same checks, the same shaping
and the same evidence, with the module's own consumer system standing in for a key.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from yiwang.core.audit import audit_record

from .models import SharingType

logger = logging.getLogger(__name__)
GENERATION_KEY = "exchange:gateway:generation"
READ_SCOPES = ("exchange:read", "exchange:*", "*")


def bump_generation(sender=None, **kwargs) -> None:
    """Any change to keys, systems, accounts, grants or entries: every process reloads
    (this one at its next call, the others within ``YIWANG_EXCHANGE_SYNC_SECONDS``)."""
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:
        cache.set(GENERATION_KEY, time.time_ns(), timeout=None)
    _state.checked_at = float("-inf")


# --- the per-process cache ----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    id: int
    prefix: str
    key_hash: str
    system_id: int
    system_name: str
    unit_id: int
    account_id: int
    scopes: frozenset
    expires_at: dt.datetime | None
    usable: bool  # not revoked, account active


@dataclass(frozen=True)
class ItemInfo:
    code: str
    name: str
    sharing_type: str
    personal: bool
    mask: str


@dataclass(frozen=True)
class EntryInfo:
    id: int
    code: str
    version: int
    name: str
    provider_id: int
    registry: str
    sharing_type: str
    items: dict  # code → ItemInfo, in catalogue order


@dataclass(frozen=True)
class GrantInfo:
    id: int
    items: frozenset
    unmasked: frozenset
    per_minute: int | None
    expires_on: dt.date | None


@dataclass
class _State:
    generation: object = None
    checked_at: float = float("-inf")
    keys: dict = field(default_factory=dict)
    entries: dict = field(default_factory=dict)
    grants: dict = field(default_factory=dict)
    key_marked: dict = field(default_factory=dict)
    # rate counting: this process's calls not yet added to the shared counters, and the
    # shared totals as last read, per (system, resource, minute)
    pending: Counter = field(default_factory=Counter)
    totals: dict = field(default_factory=dict)


_state = _State()
_MISSING = object()


def reset() -> None:
    """Forget everything this process holds (tests; a worker after fork needs nothing)."""
    global _state
    _state = _State()
    with _lock:
        _counts.clear()


def _sync() -> None:
    """At most every ``YIWANG_EXCHANGE_SYNC_SECONDS``, in one Redis round trip: read the shared
    generation (dropping this process's copies if it moved) and add this process's calls to
    the shared per-minute counters, reading back their totals."""
    now = time.monotonic()
    if now - _state.checked_at < settings.YIWANG_EXCHANGE_SYNC_SECONDS:
        return
    _state.checked_at = now
    pending, _state.pending = _state.pending, Counter()
    backend = caches["default"]
    if isinstance(backend, DjangoRedisCache):
        pipe = backend._cache.get_client(write=True).pipeline(transaction=False)
        pipe.get(backend.make_and_validate_key(GENERATION_KEY))
        for (system_id, code, minute), n in pending.items():
            counter = backend.make_and_validate_key(f"exchange:rate:{system_id}:{code}:{minute}")
            pipe.incrby(counter, n)
            pipe.expire(counter, 120)
        results = pipe.execute()
        generation = int(results[0]) if results[0] is not None else None
        totals = dict(zip(pending, results[1::2], strict=True))
    else:
        generation = cache.get(GENERATION_KEY)
        totals = {key: _count(f"exchange:rate:{key[0]}:{key[1]}:{key[2]}", n) for key, n in pending.items()}
    minute = int(time.time() // 60)
    _state.totals = {k: v for k, v in _state.totals.items() if k[2] >= minute - 1} | totals
    if generation is None:  # first use, or the cache was flushed: start a generation no process has seen
        cache.add(GENERATION_KEY, time.time_ns(), timeout=None)
        generation = cache.get(GENERATION_KEY)
    if generation != _state.generation or generation is None:
        _state.keys.clear()
        _state.entries.clear()
        _state.grants.clear()
        _state.generation = generation


def _count(name: str, n: int) -> int:
    try:
        return cache.incr(name, n)
    except ValueError:
        cache.add(name, 0, timeout=120)
        try:
            return cache.incr(name, n)
        except ValueError:
            return n


def rate_exceeded(*, system_id: int, code: str, per_minute: int | None = None) -> bool:
    """Count one call of a system on a resource (e.g. a change pull) against the same per-minute
    limit as its record reads; True when it is over the limit."""
    _sync()
    limit = per_minute or settings.YIWANG_EXCHANGE_PER_MINUTE
    return bool(limit) and _rate_used(system_id, code) > limit


def _rate_used(system_id: int, code: str) -> int:
    """This minute's calls of the system on the resource, this one included: the shared total
    as of the last sync plus this process's calls since."""
    key = (system_id, code, int(time.time() // 60))
    _state.pending[key] += 1
    return _state.totals.get(key, 0) + _state.pending[key]


def _key_info(prefix: str) -> KeyInfo | None:
    info = _state.keys.get(prefix, _MISSING)
    if info is not _MISSING:
        return info
    from yiwang.org.models import ApiKey

    key = ApiKey.objects.select_related("system__account").filter(prefix=prefix).first()
    info = None
    if key is not None:
        info = KeyInfo(
            id=key.pk,
            prefix=key.prefix,
            key_hash=key.key_hash,
            system_id=key.system_id,
            system_name=key.system.name,
            unit_id=key.system.unit_id,
            account_id=key.system.account_id,
            scopes=frozenset(key.scopes or ()),
            expires_at=key.expires_at,
            usable=key.revoked_at is None and key.system.account.is_active,
        )
    if len(_state.keys) > 10_000:  # unknown prefixes must not grow the cache without bound
        _state.keys.clear()
    _state.keys[prefix] = info
    return info


def _entry_info(code: str) -> EntryInfo | None:
    info = _state.entries.get(code, _MISSING)
    if info is not _MISSING:
        return info
    from .models import CatalogEntry

    entry = CatalogEntry.objects.filter(code=code, status=CatalogEntry.Status.PUBLISHED).first()
    info = None
    if entry is not None:
        info = EntryInfo(
            id=entry.pk,
            code=entry.code,
            version=entry.version,
            name=entry.name,
            provider_id=entry.provider_id,
            registry=entry.registry,
            sharing_type=entry.sharing_type,
            items={
                i.code: ItemInfo(i.code, i.name, i.sharing_type, i.personal, i.mask)
                for i in entry.items.order_by("position", "id")
            },
        )
    if len(_state.entries) > 10_000:
        _state.entries.clear()
    _state.entries[code] = info
    return info


def _grant_info(system_id: int, code: str) -> GrantInfo | None:
    cache_key = (system_id, code)
    info = _state.grants.get(cache_key, _MISSING)
    if info is not _MISSING:
        return info
    from .models import Grant

    grant = Grant.objects.filter(system_id=system_id, resource_code=code, revoked_at__isnull=True).first()
    info = None
    if grant is not None:
        info = GrantInfo(
            id=grant.pk,
            items=frozenset(grant.items or ()),
            unmasked=frozenset(grant.unmasked or ()),
            per_minute=grant.per_minute,
            expires_on=grant.expires_on,
        )
    if len(_state.grants) > 50_000:
        _state.grants.clear()
    _state.grants[cache_key] = info
    return info


# --- a call --------------------------------------------------------------------------------------


class Refusal(Exception):
    """A refused call: HTTP status, error code and a Chinese message (the JSON error format)."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


@dataclass
class Call:
    """What the evidence records about one call."""

    started: float
    received_at: dt.datetime
    code: str
    key: KeyInfo | None = None
    entry: EntryInfo | None = None
    purpose: str = ""
    record: str = ""
    items: list = field(default_factory=list)
    masked: list = field(default_factory=list)
    query: dict = field(default_factory=dict)
    user: tuple | None = None  # (id, name) of the person an internal read is made for


def call_start(code: str) -> Call:
    return Call(started=time.perf_counter(), received_at=timezone.now(), code=code)


def authenticate(call: Call, raw_header: str) -> KeyInfo:
    """The caller's key from ``Authorization: Api-Key yw_<prefix>_<secret>``; 401 otherwise."""
    _sync()
    parts = raw_header.split()
    pieces = parts[1].split("_", 2) if len(parts) == 2 else []
    prefix = pieces[1] if len(pieces) == 3 and pieces[0] == "yw" and pieces[1].isalnum() else ""
    if len(parts) != 2 or parts[0].lower() != "api-key":
        raise Refusal(401, "not_authenticated", _("请在请求头 Authorization 中提供 API 密钥：Api-Key <密钥>。"))
    raw = parts[1]
    info = _key_info(prefix) if prefix else None
    if (
        info is None
        or not info.usable
        or (info.expires_at is not None and info.expires_at <= timezone.now())
        or not hmac.compare_digest(info.key_hash, hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest())
    ):
        raise Refusal(401, "authentication_failed", _("API 密钥无效、已撤销或已过期。"))
    _mark_used(info)
    return info


def _mark_used(info: KeyInfo) -> None:
    now = time.monotonic()
    if now - _state.key_marked.get(info.id, -1e9) < 60:
        return
    _state.key_marked[info.id] = now
    from yiwang.org.models import ApiKey

    ApiKey.objects.filter(pk=info.id).update(last_used_at=timezone.now())


def authorise(call: Call, *, purpose: str | None, wanted: str | None) -> GrantInfo:
    """Scope, purpose, published entry, live grant, items: every check before any data is read.

    Fills ``call.entry``, ``call.purpose`` and ``call.items`` (the items to return)."""
    key = call.key
    if not key.scopes.intersection(READ_SCOPES):
        raise Refusal(403, "scope", _("该密钥没有“共享交换：查询共享数据”（exchange:read）权限。"))
    purpose = (purpose or "").strip()
    if not 4 <= len(purpose) <= 200 or not purpose.isprintable():
        raise Refusal(
            400, "purpose_required", _("每次调用须用 purpose 参数说明用途（4–200 个字），例如：义务教育入学资格核验。")
        )
    call.purpose = purpose
    entry = _entry_info(call.code)
    if entry is None:
        raise Refusal(404, "not_found", _("资源 %(code)s 不存在、未发布或已撤销。") % {"code": call.code})
    call.entry = entry
    grant = _grant_info(key.system_id, entry.code)
    if entry.sharing_type == SharingType.NONE:  # a later version closed the whole resource
        grant = None
    if grant is None or (grant.expires_on is not None and grant.expires_on < timezone.localdate()):
        raise Refusal(
            403, "not_granted", _("本系统未获得资源“%(name)s”的共享授权，请先提出共享申请。") % {"name": entry.name}
        )
    if wanted:
        codes = [c.strip() for c in wanted.split(",") if c.strip()]
        unknown = [c for c in codes if c not in entry.items]
        if unknown or not codes or len(codes) > len(entry.items):
            raise Refusal(
                400, "unknown_item", _("资源中没有这些信息项：%(items)s") % {"items": "、".join(unknown[:10])[:200]}
            )
        outside = [c for c in codes if c not in grant.items or entry.items[c].sharing_type == SharingType.NONE]
        if outside:
            raise Refusal(
                403,
                "item_not_granted",
                _("这些信息项不在授权范围内：%(items)s") % {"items": "、".join(entry.items[c].name for c in outside)},
                {"items": outside},
            )
        call.items = list(dict.fromkeys(codes))
    else:
        # an item a later version closed (不予共享) is no longer served, whatever the grant says
        call.items = [
            c for c, item in entry.items.items() if c in grant.items and item.sharing_type != SharingType.NONE
        ]
    if not call.items:
        raise Refusal(403, "not_granted", _("授权中没有该资源现有的信息项。"))
    _rate_check(call, grant.per_minute)
    return grant


def _rate_check(call: Call, per_minute: int | None) -> None:
    limit = per_minute or settings.YIWANG_EXCHANGE_PER_MINUTE
    if not limit:
        return
    now = time.time()
    used = _rate_used(call.key.system_id, call.code)
    if used > limit:
        raise Refusal(
            429,
            "throttled",
            _("调用过于频繁：本系统对该资源每分钟最多 %(n)d 次，请 %(s)d 秒后再试。")
            % {"n": limit, "s": 60 - int(now % 60)},
        )


def shape(call: Call, grant: GrantInfo, record: dict) -> dict:
    """Only the call's items; personal items not granted in plain text are masked."""
    from .masking import mask

    masked = []
    out = {}
    for code in call.items:
        item = call.entry.items[code]
        value = record.get(code)
        if item.personal and code not in grant.unmasked:
            value = mask(value, item.mask or "full")
            masked.append(code)
        out[code] = value
    call.masked = masked
    return out


def evidence(call: Call, *, status: int, count: int, size: int, error: str = "") -> None:
    """Write the call to the hash-chained audit and add it to the day's counters."""
    elapsed_ms = (time.perf_counter() - call.started) * 1000
    key, entry = call.key, call.entry
    if key is None:
        return  # not even a valid key: nothing to attribute (the web server's log has it)
    served = 200 <= status < 300
    responded_at = call.received_at + dt.timedelta(milliseconds=elapsed_ms)
    changes = {
        "system": key.system_id,
        "system_name": key.system_name,
        "key": key.prefix,
        "purpose": call.purpose,
        "record": call.record,
        "items": call.items if served else [],
        "masked": call.masked,
        "count": count,
        "status": status,
        "error": error,
        "received_at": call.received_at.isoformat(timespec="milliseconds"),
        "responded_at": responded_at.isoformat(timespec="milliseconds"),
        "ms": round(elapsed_ms, 2),
        "bytes": size,
    }
    if call.query:
        changes["query"] = call.query
    if call.user is not None:
        changes["user"], changes["user_name"] = call.user
    _audit_insert(
        actor_id=key.account_id,
        actor_name=key.system_name,
        unit_id=key.unit_id,
        action="exchange.read" if served else "exchange.denied",
        code=call.code[:64],
        name=entry.name if entry else "",
        changes=changes,
    )
    if entry is not None:
        counters_add(
            key=(timezone.localdate(), key.system_id, key.unit_id, entry.provider_id, entry.code),
            served=served,
            error=status >= 500,
            records=count,
            size=size,
            ms=elapsed_ms,
        )


class _Actor:
    """The consumer system's service account as ``audit_record`` wants it, without a query."""

    is_authenticated = True

    def __init__(self, pk: int, name: str, unit_id: int):
        self.pk, self._name, self.acting_unit_id = pk, name, unit_id

    def get_full_name(self) -> str:
        return self._name

    def get_username(self) -> str:
        return self._name


def _audit_insert(*, actor_id, actor_name, unit_id, action, code, name, changes) -> None:
    audit_record(
        actor=_Actor(actor_id, actor_name, unit_id),
        action=action,
        unit_id=unit_id,
        object_type="exchange.resource",
        object_id=code,
        object_repr=name,
        changes=changes,
        group=True,  # concurrent calls of a threaded worker share one INSERT and commit
    )


def serve(call: Call, read) -> tuple[int, bytes, int, Refusal | None]:
    """Run one read (``read(call)`` → status, body, count) and write its evidence, served or
    refused. Returns (status, body, count, the refusal if there was one)."""
    refusal = None
    try:
        status, body, count = read(call)
        error = "" if status < 400 else "not_found"
    except Refusal as refused:
        refusal = refused
        status, body, count, error = refused.status, refusal_body(refused), 0, refused.code
    except Exception:
        evidence(call, status=500, count=0, size=0, error="server_error")
        raise
    evidence(call, status=status, count=count, size=len(body), error=error)
    return status, body, count, refusal


# --- reads ---------------------------------------------------------------------------------------


def record_read(*, call: Call, key: str, purpose: str | None, items: str | None) -> tuple[int, bytes, int]:
    """One record by key. Returns (status, JSON body, record count); refusals are raised."""
    from . import registries

    grant = authorise(call, purpose=purpose, wanted=items)
    spec = registries.REGISTRIES.get(call.entry.registry)
    if spec is None:
        raise Refusal(409, "no_registry", _("该资源以%(way)s方式共享，不能按记录查询。") % {"way": _("文件或线下")})
    try:
        call.record = registries.key_clean(spec, key)
    except ValidationError as error:
        call.record = (key or "")[:64]
        raise Refusal(400, "invalid_key", error.messages[0]) from None
    record = registries.record_fetch(spec, call.record, call.items)
    if record is None:
        body = _dumps(_error_body("not_found", _("%(label)s %(key)s 在%(registry)s中没有记录。") % {
            "label": spec.key_label, "key": call.record, "registry": spec.label}))  # fmt: skip
        return 404, body, 0
    payload = {
        "resource": call.entry.code,
        "version": call.entry.version,
        "record": shape(call, grant, record),
        "masked": call.masked,
    }
    return 200, _dumps(payload), 1


def records_list(
    *, call: Call, purpose: str | None, items: str | None, filters: dict, after: str | None, page_size: str | None
) -> tuple[int, bytes, int]:
    """A page of records, filtered by exact values of granted items, in key order after a cursor."""
    from . import registries

    grant = authorise(call, purpose=purpose, wanted=items)
    spec = registries.REGISTRIES.get(call.entry.registry)
    if spec is None:
        raise Refusal(409, "no_registry", _("该资源以%(way)s方式共享，不能按记录查询。") % {"way": _("文件或线下")})
    limit_max = settings.YIWANG_EXCHANGE_MAX_PAGE
    try:
        size = int(page_size) if page_size not in (None, "") else 20
        cursor = int(after) if after not in (None, "") else 0
    except (TypeError, ValueError):
        raise Refusal(400, "invalid", _("page_size 和 after 须为整数。")) from None
    if not 1 <= size <= limit_max:
        raise Refusal(400, "page_size", _("page_size 须在 1 到 %(n)d 之间。") % {"n": limit_max})
    if not 0 <= cursor < 2**63:
        raise Refusal(400, "invalid", _("after 游标无效。"))
    outside = [c for c in filters if c not in grant.items]
    if outside:
        raise Refusal(
            403, "item_not_granted", _("只能按已授权的信息项筛选：%(items)s") % {"items": "、".join(outside[:5])}
        )
    call.query = {"filters": filters, "after": cursor, "page_size": size}
    try:
        qs = spec.model.objects.filter(pk__gt=cursor, **filters).order_by("pk")
        rows = list(qs.values("pk", *call.items)[:size])
    except (ValidationError, ValueError, TypeError):
        raise Refusal(400, "invalid", _("筛选条件的值格式不正确。")) from None
    records = [shape(call, grant, {c: registries._jsonable(v) for c, v in row.items()}) for row in rows]
    payload = {
        "resource": call.entry.code,
        "version": call.entry.version,
        "count": len(records),
        "next": rows[-1]["pk"] if len(rows) == size else None,
        "records": records,
        "masked": call.masked,
    }
    return 200, _dumps(payload), len(records)


# --- reads from inside the platform -------------------------------------------------------------

INTERNAL_KEY = "internal"  # the evidence's ``key`` for a read made by a module, not by an API key
INTERNAL_PREFIX = "module-"  # username of an internal module's service account: module-<code>


def unknown_path(*, call: Call, path: str) -> tuple[int, bytes, int]:
    """A path under the gateway that names no read: refused (404) like any other call, so a
    caller with a valid key leaves its evidence (``exchange.denied``, error ``not_found``)."""
    raise Refusal(
        404,
        "not_found",
        _(
            "网关没有该接口：%(path)s。"
            "可用的接口为 <资源代码>/records/<标识>/、<资源代码>/records/ 和 <资源代码>/changes/。"
        )
        % {"path": path[:100]},
    )


def _system_info(*, system_id: int | None = None, module: str | None = None) -> KeyInfo | None:
    """A consumer system as the checks see a key: the module's service account, scope
    ``exchange:read``; cached like keys and dropped with them when the generation moves."""
    cache_key = ("system", system_id) if system_id is not None else ("module", module)
    info = _state.keys.get(cache_key, _MISSING)
    if info is not _MISSING:
        return info
    from yiwang.org.models import ConsumerSystem

    systems = ConsumerSystem.objects.select_related("account")
    if system_id is not None:
        system = systems.filter(pk=system_id).first()
    else:
        system = systems.filter(account__username=f"{INTERNAL_PREFIX}{module}").first()
    info = None
    if system is not None:
        info = KeyInfo(
            id=0,
            prefix=INTERNAL_KEY,
            key_hash="",
            system_id=system.pk,
            system_name=system.name,
            unit_id=system.unit_id,
            account_id=system.account_id,
            scopes=frozenset(READ_SCOPES[:1]),
            expires_at=None,
            usable=system.account.is_active,
        )
    _state.keys[cache_key] = info
    return info


def read_internal(
    *,
    resource: str,
    purpose: str,
    actor=None,
    module: str | None = None,
    system=None,
    key: str | None = None,
    query: dict | None = None,
    items: str | list | None = None,
    after: int | str | None = None,
    page_size: int | str | None = None,
) -> dict | None:
    """Read shared data for a module inside the platform, through the gateway's own checks.

    The caller is the module's consumer system (``module`` = its code, registered with
    ``services.internal_system_ensure``) or a ``system``; ``actor`` is the person it reads for
    (written into the evidence). With ``key``: one record, or ``None`` when the registry has none;
    otherwise a page filtered by ``query``. The result is what the HTTP gateway answers; a
    refusal raises ``Refusal`` with the HTTP gateway's status, code and Chinese message."""
    call = call_start(resource)
    _sync()
    info = _system_info(system_id=system.pk, module=None) if system is not None else _system_info(module=module)
    if info is None or not info.usable:
        raise Refusal(
            403, "no_system", _("模块“%(module)s”没有登记为接入系统，或其账号已停用。") % {"module": module or system}
        )
    call.key = info
    if actor is not None and getattr(actor, "is_authenticated", False):
        call.user = (actor.pk, actor.get_full_name() or actor.get_username())
    if isinstance(items, list | tuple):
        items = ",".join(items)
    if key is not None:
        status, body, _count, refusal = serve(
            call, lambda call: record_read(call=call, key=key, purpose=purpose, items=items)
        )
    else:
        filters = {name: str(value) for name, value in (query or {}).items()}
        status, body, _count, refusal = serve(
            call,
            lambda call: records_list(
                call=call,
                purpose=purpose,
                items=items,
                filters=filters,
                after=None if after is None else str(after),
                page_size=None if page_size is None else str(page_size),
            ),
        )
    if refusal is not None:
        raise refusal
    return None if status == 404 else json.loads(body)


def _error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _dumps(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def refusal_body(refusal: Refusal) -> bytes:
    return _dumps(_error_body(refusal.code, refusal.message, refusal.details))


# --- day counters (operational monitoring) -----------------------------------------------------

_lock = threading.Lock()
_counts: dict[tuple, list] = {}
_last_flush = time.monotonic()


def counters_add(*, key: tuple, served: bool, error: bool, records: int, size: int, ms: float) -> None:
    global _last_flush
    with _lock:
        row = _counts.get(key)
        if row is None:
            row = _counts[key] = [0, 0, 0, 0, 0, 0.0, 0.0]
        row[0] += 1
        row[1] += 0 if served else 1
        row[2] += 1 if error else 0
        row[3] += records
        row[4] += size
        row[5] += ms
        row[6] = max(row[6], ms)
        due = time.monotonic() - _last_flush >= settings.YIWANG_EXCHANGE_FLUSH_SECONDS
    if due:
        counters_flush()


def counters_flush() -> int:
    """Write the buffered counters in one upsert; returns the rows touched."""
    global _last_flush
    with _lock:
        rows = list(_counts.items())
        _counts.clear()
        _last_flush = time.monotonic()
    if not rows:
        return 0
    from .models import CallDay

    table = CallDay._meta.db_table
    sql = (
        f"INSERT INTO {table} (day, system_id, unit_id, provider_id, resource_code, calls, denied, errors, records, "
        "bytes, total_ms, max_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (day, system_id, resource_code) DO UPDATE SET "
        f"calls = {table}.calls + excluded.calls, denied = {table}.denied + excluded.denied, "
        f"errors = {table}.errors + excluded.errors, records = {table}.records + excluded.records, "
        f"bytes = {table}.bytes + excluded.bytes, total_ms = {table}.total_ms + excluded.total_ms, "
        f"max_ms = CASE WHEN excluded.max_ms > {table}.max_ms THEN excluded.max_ms ELSE {table}.max_ms END"
    )
    params = [(*key, *values) for key, values in rows]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, params)
    return len(rows)


def _flush_at_exit() -> None:
    try:
        counters_flush()
    except Exception:  # noqa: BLE001 - the database may already be gone at exit
        pass


atexit.register(_flush_at_exit)
