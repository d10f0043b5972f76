"""Chinese full-text search, one helper for every module.

jieba segments text into words; the words are stored space-separated in a model's
``search_text`` (see ``core.models.Searchable``) and indexed by the database itself:
SQLite FTS5 (external-content table kept in sync by triggers) or a PostgreSQL GIN index
on ``to_tsvector('simple', search_text)``. No search server is needed.

In a migration:   ``operations = [*index_operations("org_unit")]``
In a selector:    ``search(Unit.objects.all(), "信息中心")``
"""

from __future__ import annotations

import logging
import re

import jieba
from django.db import connection, migrations
from django.db.models import QuerySet
from django.db.models.signals import pre_save

jieba.setLogLevel(logging.WARNING)
_WORD = re.compile(r"\w", re.UNICODE)
MAX_QUERY_TOKENS = 12


def tokenize(text: str) -> list[str]:
    """Words of ``text`` for indexing: jieba's search mode (words and their sub-words),
    lower-cased, punctuation dropped, and every CJK character on its own so that a
    one-character query still matches."""
    words: list[str] = []
    seen: set[str] = set()
    for word in jieba.cut_for_search(text or ""):
        word = word.strip().lower()
        if not word or not _WORD.search(word):
            continue
        pieces = [word]
        if len(word) > 1 and any("\u4e00" <= ch <= "\u9fff" for ch in word):
            pieces += [ch for ch in word if "\u4e00" <= ch <= "\u9fff"]
        for piece in pieces:
            if piece not in seen:
                seen.add(piece)
                words.append(piece)
    return words


def query_tokens(text: str) -> list[str]:
    """Words a query must all match.

    Each word of jieba's accurate mode is replaced by its smallest search-mode pieces
    (社会保障 → 社会 + 保障), because the index holds search-mode pieces and may not hold
    the long compound a query happens to contain.
    """
    out: list[str] = []
    for word in jieba.cut(text or ""):
        word = re.sub(r"[\"'*^:()]", "", word.strip().lower())
        if not word or not _WORD.search(word):
            continue
        pieces = [p.strip() for p in jieba.cut_for_search(word) if p.strip()]
        minimal = [p for p in pieces if not any(q != p and q in p for q in pieces)] or [word]
        for piece in minimal:
            if piece not in out:
                out.append(piece)
    return out[:MAX_QUERY_TOKENS]


def index_text(*values: object) -> str:
    return " ".join(tokenize(" ".join(str(v) for v in values if v not in (None, ""))))


def fill_search_text(sender, instance, **kwargs) -> None:
    fields = getattr(sender, "SEARCH_FIELDS", ())
    if fields:
        instance.search_text = index_text(*(getattr(instance, name, "") for name in fields))


def connect_search_signal() -> None:
    pre_save.connect(fill_search_text, dispatch_uid="yiwang.core.search.fill")


def search(queryset: QuerySet, text: str) -> QuerySet:
    """Filter ``queryset`` to rows whose search text has every word of ``text``."""
    tokens = query_tokens(text)
    if not tokens:
        return queryset
    table = queryset.model._meta.db_table
    pk = queryset.model._meta.pk.column
    if connection.vendor == "postgresql":
        return queryset.extra(
            where=[f"to_tsvector('simple', {table}.search_text) @@ to_tsquery('simple', %s)"],
            params=[" & ".join(tokens)],
        )
    if connection.vendor == "sqlite":
        match = " AND ".join(f'"{t}"' for t in tokens)
        return queryset.extra(
            where=[f"{table}.{pk} IN (SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH %s)"],
            params=[match],
        )
    for token in tokens:
        queryset = queryset.filter(search_text__contains=token)
    return queryset


def _sqlite_fts(table: str, pk: str = "id") -> list[str]:
    fts = f"{table}_fts"
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(search_text, content='{table}', content_rowid='{pk}')",
        f"CREATE TRIGGER IF NOT EXISTS {fts}_ai AFTER INSERT ON {table} BEGIN "
        f"INSERT INTO {fts}(rowid, search_text) VALUES (new.{pk}, new.search_text); END",
        f"CREATE TRIGGER IF NOT EXISTS {fts}_ad AFTER DELETE ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, search_text) VALUES ('delete', old.{pk}, old.search_text); END",
        f"CREATE TRIGGER IF NOT EXISTS {fts}_au AFTER UPDATE OF search_text ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, search_text) VALUES ('delete', old.{pk}, old.search_text); "
        f"INSERT INTO {fts}(rowid, search_text) VALUES (new.{pk}, new.search_text); END",
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
    ]


def _sqlite_fts_drop(table: str) -> list[str]:
    fts = f"{table}_fts"
    return [f"DROP TRIGGER IF EXISTS {fts}_{s}" for s in ("ai", "ad", "au")] + [f"DROP TABLE IF EXISTS {fts}"]


def index_operations(table: str, pk: str = "id") -> list[migrations.RunPython]:
    """Migration operations that create the full-text index of ``table`` on either database."""

    def forwards(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor == "sqlite":
            for sql in _sqlite_fts(table, pk):
                schema_editor.execute(sql)
        elif vendor == "postgresql":
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {table}_search_gin ON {table} "
                f"USING gin (to_tsvector('simple', search_text))"
            )

    def backwards(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor == "sqlite":
            for sql in _sqlite_fts_drop(table):
                schema_editor.execute(sql)
        elif vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX IF EXISTS {table}_search_gin")

    return [migrations.RunPython(forwards, backwards, elidable=False)]
