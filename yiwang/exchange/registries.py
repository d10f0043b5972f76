"""The four base registries (基础库) as data: which model, which key, which columns.

A catalogue entry backed by a registry names its information items by these column codes
(the model's field names). The gateway reads records through ``record_fetch``; every write
to a registry — an import, a dispute's correction — goes through ``record_save`` or
``changes_log``, so subscribers see it in the change log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yiwang.core.audit import audit_record, diff
from yiwang.core.db import fetchall_prepared
from yiwang.core.validators import is_valid_credit_code, is_valid_resident_id

from .models import CatalogEntry, Change, EconomicIndicator, LegalEntity, Place, Resident

DEFAULT_REGION = "北仑区"


@dataclass(frozen=True)
class RegistrySpec:
    code: str
    label: str
    model: type[models.Model]
    key_label: str
    key_fields: tuple[str, ...]  # model fields the key is made of, in key order (joined by ":")
    check_key: Callable[[str], bool]

    @property
    def columns(self) -> list[str]:
        """Column codes an entry's items may use: the model's own fields but the id and timestamps."""
        return [f.name for f in self.model._meta.concrete_fields if f.name not in ("id", "updated_at")]

    def column_label(self, code: str) -> str:
        return str(self.model._meta.get_field(code).verbose_name)

    def key_of(self, record: dict | models.Model) -> str:
        get = record.get if isinstance(record, dict) else (lambda name: getattr(record, name))
        return ":".join(str(get(name)) for name in self.key_fields)


def _indicator_key(value: str) -> bool:
    parts = value.split(":")
    return len(parts) == 2 and all(parts) and len(parts[0]) <= 32 and len(parts[1]) <= 7


REGISTRIES: dict[str, RegistrySpec] = {
    "resident": RegistrySpec(
        "resident", gettext_lazy("人口基础库"), Resident, gettext_lazy("公民身份号码"), ("id_number",),
        is_valid_resident_id,
    ),
    "legal_entity": RegistrySpec(
        "legal_entity", gettext_lazy("法人基础库"), LegalEntity, gettext_lazy("统一社会信用代码"), ("credit_code",),
        is_valid_credit_code,
    ),
    "place": RegistrySpec(
        "place", gettext_lazy("空间地理基础库"), Place, gettext_lazy("地址编码"), ("code",),
        lambda value: 0 < len(value) <= 32,
    ),
    "economy": RegistrySpec(
        "economy", gettext_lazy("宏观经济基础库"), EconomicIndicator, gettext_lazy("指标代码:统计期"),
        ("code", "period"), _indicator_key,
    ),
}  # fmt: skip
assert set(REGISTRIES) == {c for c, _label in CatalogEntry.Registry.choices if c}


def registry(code: str) -> RegistrySpec:
    try:
        return REGISTRIES[code]
    except KeyError:
        raise ValidationError(_("未知的基础库：%(code)s") % {"code": code}) from None


def key_clean(spec: RegistrySpec, raw: str) -> str:
    """The key as stored (ID numbers upper-case), or a ValidationError in Chinese."""
    value = (raw or "").strip()
    if spec.code in ("resident", "legal_entity"):
        value = value.upper()
    if not value or not value.isprintable() or not spec.check_key(value):
        raise ValidationError(
            _("%(label)s格式不正确：%(value)s") % {"label": spec.key_label, "value": value[:40]}, code="invalid_key"
        )
    return value


def _key_filter(spec: RegistrySpec, key: str) -> dict:
    values = key.split(":") if len(spec.key_fields) > 1 else [key]
    lookup = dict(zip(spec.key_fields, values, strict=True))
    if spec.code == "economy":
        lookup["region"] = DEFAULT_REGION
    return lookup


def _jsonable(value):
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def record_fetch(spec: RegistrySpec, key: str, columns: Iterable[str]) -> dict | None:
    """One record's ``columns`` by key, JSON-ready, or None. The gateway's hot path: one
    plain SELECT on the key's unique index (no model instances)."""
    columns = list(columns)
    lookup = _key_filter(spec, key)
    table = connection.ops.quote_name(spec.model._meta.db_table)
    select = ", ".join(connection.ops.quote_name(spec.model._meta.get_field(c).column) for c in columns)
    where = " AND ".join(f"{connection.ops.quote_name(name)} = %s" for name in lookup)
    rows = fetchall_prepared(f"SELECT {select} FROM {table} WHERE {where} LIMIT 1", list(lookup.values()))
    if not rows:
        return None
    row = rows[0]
    fields = [spec.model._meta.get_field(c) for c in columns]
    return {
        c: _jsonable(f.to_python(v) if isinstance(f, models.DecimalField | models.DateField) and v is not None else v)
        for c, f, v in zip(columns, fields, row, strict=True)
    }


def record_get(spec: RegistrySpec, key: str) -> models.Model | None:
    return spec.model.objects.filter(**_key_filter(spec, key)).first()


def changes_log(spec: RegistrySpec, rows: Iterable[tuple[str, str, list[str]]]) -> int:
    """Append change lines ``(key, op, items)`` for subscribers; returns how many."""
    objs = [Change(registry=spec.code, record_key=key, op=op, items=items) for key, op, items in rows]
    Change.objects.bulk_create(objs, batch_size=5000)
    return len(objs)


@transaction.atomic
def record_save(*, actor, registry_code: str, key: str, values: dict, reason: str) -> tuple[models.Model, list[str]]:
    """Correct (or create) one record of a registry: validated, audited, logged for subscribers.

    Returns the record and the changed column codes. ``values`` maps column codes to new values.
    """
    spec = registry(registry_code)
    key = key_clean(spec, key)
    unknown = sorted(set(values) - set(spec.columns))
    if unknown:
        raise ValidationError(_("基础库没有这些信息项：%(items)s") % {"items": "、".join(unknown)})
    record = spec.model.objects.select_for_update().filter(**_key_filter(spec, key)).first()
    created = record is None
    if created:
        record = spec.model(**_key_filter(spec, key))
    before = {c: _jsonable(getattr(record, c)) for c in spec.columns}
    for column, value in values.items():
        setattr(record, column, value)
    try:
        record.full_clean()
    except ValidationError as error:
        raise ValidationError(error.message_dict) from None
    after = {c: _jsonable(getattr(record, c)) for c in spec.columns}
    changes = diff(before, after)
    if not changes and not created:
        return record, []
    record.save()
    changed = sorted(changes)
    changes_log(spec, [(key, Change.Op.CREATED if created else Change.Op.UPDATED, changed)])
    audit_record(
        actor=actor,
        action=f"exchange.registry.{'create' if created else 'update'}",
        object_type=f"exchange.{spec.code}",
        object_id=key,
        object_repr=str(record)[:255],
        changes={**changes, "reason": reason},
    )
    return record, changed
