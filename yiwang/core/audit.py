"""The one audit trail: ``audit_record`` appends, ``audit_chain`` links, ``audit_verify`` checks.

Appending is a plain INSERT, so concurrent requests never queue behind one lock. The
chaining job (Celery beat, every few seconds) links new entries in batches under a lock
on the chain head. Until linked, an entry is protected only by its own hash; the window
is the beat interval (see docs/deploy.md).
"""

from __future__ import annotations

import contextvars
import hashlib
import ipaddress
import json
import threading
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

from .db import fetchall_prepared
from .models import AuditChainHead, AuditEntry

GENESIS = "0" * 64
_request_ip: contextvars.ContextVar[str | None] = contextvars.ContextVar("audit_ip", default=None)


class AuditContextMiddleware:
    """Remembers the client IP of the current request for ``audit_record``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request_ip.set(request.META.get("REMOTE_ADDR") or None)
        try:
            return self.get_response(request)
        finally:
            _request_ip.reset(token)


def _canonical_ip(value: str | None) -> str | None:
    """The IP exactly as GenericIPAddressField stores it, so the hash still matches."""
    if not value:
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return None
    return clean_ipv6_address(value) if ":" in value else value


def _canonical(value: Any) -> Any:
    # PostgreSQL jsonb gives 1e16 back as 10000000000000000 and -0.0 as 0: store integral
    # floats as ints (and NaN/inf as text) so the stored value hashes the same when read back.
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _normalise(value: Any) -> Any:
    """The value exactly as it will read back from the JSON column (what the hash covers).

    Plain JSON values (the common case: the gateway writes one entry per call) are walked
    once; anything else (dates, decimals, lazy strings, non-string keys) round-trips through
    Django's JSON encoder."""
    if isinstance(value, str):
        # PostgreSQL cannot store NUL in text or jsonb; a caller's garbage must not make the write fail
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return _canonical(value)
    if isinstance(value, dict) and all(type(k) is str for k in value):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return _normalise(_canonical(json.loads(json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False))))


def entry_digest(entry: AuditEntry) -> str:
    """The hash of an entry's own content (everything but the chain fields)."""
    payload = [
        entry.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        entry.actor_id,
        entry.actor_name,
        entry.unit_id,
        entry.action,
        entry.object_type,
        entry.object_id,
        entry.object_repr,
        entry.changes,
        entry.ip,
    ]
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def link_digest(prev: str, entry_hash: str) -> str:
    return hashlib.sha256(f"{prev}{entry_hash}".encode("ascii")).hexdigest()


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} for the fields whose value changed."""
    return {key: [old.get(key), new.get(key)] for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)}


def audit_record(
    *,
    actor: Any | None,
    action: str,
    obj: models.Model | None = None,
    unit_id: int | None = None,
    changes: dict[str, Any] | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    group: bool = False,
) -> AuditEntry:
    """Append one audit entry; call it from the service function that makes the change.

    ``group=True`` (callers outside a transaction only, e.g. the exchange gateway) lets
    concurrent threads of the process share one INSERT and commit (see ``_group_commit``)."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:255]
        if unit_id is None:
            unit_id = getattr(obj, "unit_id", None)
    if unit_id is None and actor is not None:
        unit_id = getattr(actor, "acting_unit_id", None)
    is_person = actor is not None and getattr(actor, "is_authenticated", False)
    entry = AuditEntry(
        created_at=timezone.now(),
        actor_id=actor.pk if is_person else None,
        actor_name=(actor.get_full_name() or actor.get_username()) if is_person else "系统",
        unit_id=unit_id,
        action=action,
        object_type=object_type[:64],
        object_id=_normalise(object_id[:64]),
        object_repr=_normalise(object_repr[:255]),
        changes=_normalise(changes or {}),
        ip=_canonical_ip(_request_ip.get()),
    )
    entry.entry_hash = entry_digest(entry)
    if group and connection.vendor == "postgresql" and connection.get_autocommit():
        _group_commit(entry)
    else:
        _insert(entry)
    return entry


# --- group commit ------------------------------------------------------------------------------
# A caller outside any transaction that writes at a high rate (the exchange gateway: one entry
# per call) may pass ``group=True``: the first thread to arrive writes every entry queued in its
# process in one multi-row INSERT (one commit), while the others wait for it; whoever arrives
# meanwhile goes into the next batch. Nobody returns before their entry is committed, and at low
# load a batch is just the caller's own entry (no added wait). It pays off with threaded servers
# (gunicorn gthread): fewer round trips and commits per entry (bench/exchange_lookup.py).
_group = threading.Condition()
_group_queue: list[tuple[AuditEntry, dict]] = []
_group_busy = False


def _group_commit(entry: AuditEntry) -> None:
    global _group_busy
    slot: dict[str, Any] = {"done": False, "error": None}
    with _group:
        _group_queue.append((entry, slot))
        while not slot["done"]:
            if _group_busy:
                _group.wait()
                continue
            _group_busy = True
            batch = _group_queue[:]
            _group_queue.clear()
            _group.release()
            error = None
            try:
                _insert_many([e for e, _slot in batch])
            except BaseException as exc:  # noqa: BLE001 - every waiter gets the writer's error
                error = exc
            finally:
                _group.acquire()
                for _entry, waiting in batch:
                    waiting["done"], waiting["error"] = True, error
                _group_busy = False
                _group.notify_all()
    if slot["error"] is not None:
        raise slot["error"]


_COLUMNS = ("created_at", "actor_id", "actor_name", "unit_id", "action", "object_type", "object_id", "object_repr",
            "changes", "ip", "entry_hash", "chain_hash")  # fmt: skip


def _insert(entry: AuditEntry) -> None:
    """One plain INSERT, prepared once per connection (not the ORM's ``save``: the exchange
    gateway writes one entry per call); ``seq`` stays NULL until the chain job links it."""
    created_at = entry.created_at
    if connection.vendor != "postgresql":
        created_at = AuditEntry._meta.get_field("created_at").get_db_prep_value(created_at, connection)
    values = [
        created_at,
        entry.actor_id,
        entry.actor_name,
        entry.unit_id,
        entry.action,
        entry.object_type,
        entry.object_id,
        entry.object_repr,
        json.dumps(entry.changes, ensure_ascii=False, separators=(",", ":")),
        entry.ip,
        entry.entry_hash,
        "",
    ]
    placeholders = ", ".join(["%s"] * len(values))
    table = AuditEntry._meta.db_table
    entry.id = fetchall_prepared(
        f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES ({placeholders}) RETURNING id", values
    )[0][0]
    entry._state.adding = False
    entry._state.db = connection.alias


def _insert_many(entries: list[AuditEntry]) -> None:
    """One multi-row INSERT (one statement, one commit) for a group of entries."""
    if len(entries) == 1:
        _insert(entries[0])
        return
    row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    params: list[Any] = []
    for entry in entries:
        params += [entry.created_at, entry.actor_id, entry.actor_name, entry.unit_id, entry.action, entry.object_type,
                   entry.object_id, entry.object_repr, json.dumps(entry.changes, ensure_ascii=False,
                   separators=(",", ":")), entry.ip, entry.entry_hash, ""]  # fmt: skip
    table = AuditEntry._meta.db_table
    values = ", ".join([row] * len(entries))
    ids = fetchall_prepared(f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES {values} RETURNING id", params)
    for entry, (pk,) in zip(entries, ids, strict=True):  # PostgreSQL returns them in VALUES order
        entry.id = pk
        entry._state.adding = False
        entry._state.db = connection.alias


def audit_chain(*, batch: int | None = None) -> int:
    """Link every unlinked entry into the chain; returns how many were linked."""
    batch = batch or settings.YIWANG_AUDIT_CHAIN_BATCH
    linked = 0
    while True:
        with transaction.atomic():
            AuditChainHead.objects.get_or_create(pk=1)
            head = AuditChainHead.objects.select_for_update().get(pk=1)
            entries = list(AuditEntry.objects.filter(seq__isnull=True).order_by("id")[:batch])
            if not entries:
                return linked
            seq, prev = head.seq, head.chain_hash
            for entry in entries:
                seq += 1
                prev = link_digest(prev, entry.entry_hash)
                entry.seq, entry.chain_hash = seq, prev
            # Plain executemany: bulk_update's CASE expressions cost more Python time than the SQL.
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"UPDATE {AuditEntry._meta.db_table} SET seq = %s, chain_hash = %s WHERE id = %s",
                    [(e.seq, e.chain_hash, e.id) for e in entries],
                )
            head.seq, head.chain_hash = seq, prev
            head.save(update_fields=["seq", "chain_hash"])
            linked += len(entries)


@dataclass
class Break:
    seq: int | None
    entry_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"第 {self.seq} 条" if self.seq is not None else f"记录 #{self.entry_id}"
        return f"{where}: {self.reason}"


def audit_verify() -> Break | None:
    """Walk the chain and return the first broken link, or None if intact."""
    head = AuditChainHead.objects.filter(pk=1).first()
    prev, expected_seq = GENESIS, 1
    fields = [
        "id",
        "seq",
        "entry_hash",
        "chain_hash",
        "created_at",
        "actor_id",
        "actor_name",
        "unit_id",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "changes",
        "ip",
    ]
    for entry in AuditEntry.objects.filter(seq__isnull=False).order_by("seq").only(*fields).iterator(2000):
        if entry.seq != expected_seq:
            return Break(expected_seq, None, f"链条缺失第 {expected_seq} 条 (记录被删除)")
        if entry_digest(entry) != entry.entry_hash:
            return Break(entry.seq, entry.id, "内容与哈希不符 (记录被篡改)")
        prev = link_digest(prev, entry.entry_hash)
        if prev != entry.chain_hash:
            return Break(entry.seq, entry.id, "链接哈希不符 (记录被篡改或替换)")
        expected_seq += 1
    if head and head.seq != expected_seq - 1:
        return Break(expected_seq, None, f"链尾应为第 {head.seq} 条，实际只有 {expected_seq - 1} 条 (末尾记录被删除)")
    if head and head.chain_hash != prev:
        return Break(head.seq, None, "链尾哈希不符")
    for entry in AuditEntry.objects.filter(seq__isnull=True).only(*fields).iterator(2000):
        if entry_digest(entry) != entry.entry_hash:
            return Break(None, entry.id, "未入链记录内容与哈希不符 (记录被篡改)")
    return None
