"""The audit trail: append (audit_record), link (audit_chain), check (audit_verify).

Tampering is simulated with ``QuerySet.update()``/``delete()``, which bypass the model,
as a person with database access would.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import io
import threading
import uuid

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.http import HttpResponse
from django.test import RequestFactory

from yiwang.core import audit
from yiwang.core.audit import AuditContextMiddleware, audit_chain, audit_record, audit_verify, diff, entry_digest
from yiwang.core.models import AuditChainHead, AuditEntry

GENESIS = "0" * 64

pytestmark = pytest.mark.django_db


def append(count: int, *, start: int = 1) -> list[AuditEntry]:
    return [
        audit_record(
            actor=None,
            action="test.write",
            object_type="test.thing",
            object_id=str(i),
            object_repr=f"第 {i} 件",
            changes={"n": [i - 1, i], "名称": ["旧", f"新{i}"]},
        )
        for i in range(start, start + count)
    ]


def chained() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(seq__isnull=False).order_by("seq"))


def expected_chain(entry_hashes: list[str], prev: str = GENESIS) -> list[str]:
    out = []
    for entry_hash in entry_hashes:
        prev = hashlib.sha256((prev + entry_hash).encode("ascii")).hexdigest()
        out.append(prev)
    return out


class TestAuditRecord:
    def test_system_entry_is_appended_unlinked(self):
        entry = audit_record(actor=None, action="test.system", object_type="x", object_id="1", changes={"a": [1, 2]})
        row = AuditEntry.objects.get(pk=entry.pk)
        assert row.actor_id is None
        assert row.actor_name == "系统"
        assert row.seq is None
        assert row.chain_hash == ""
        assert len(row.entry_hash) == 64
        assert row.entry_hash == entry_digest(row)

    def test_person_and_object(self, alice, units):
        unit = units["fin"]
        entry = audit_record(actor=alice, action="test.person", obj=unit)
        row = AuditEntry.objects.get(pk=entry.pk)
        assert row.actor_id == alice.pk
        assert row.actor_name == "王丽"
        assert row.object_type == "org.unit"
        assert row.object_id == str(unit.pk)
        assert row.object_repr == str(unit)
        # Unit has no unit_id attribute, so the actor's acting unit is used.
        assert row.unit_id == alice.acting_unit_id == units["edu"].pk

    def test_changes_are_normalised_and_survive_the_database(self):
        changes = {
            "z": [None, dt.date(2025, 10, 8)],
            "a": [decimal.Decimal("12.50"), decimal.Decimal("13.00")],
            "when": [None, dt.datetime(2025, 10, 9, 8, 30, 0, 123456, tzinfo=dt.UTC)],
            "id": [None, uuid.UUID("12345678-1234-5678-1234-567812345678")],
            "nested": {"b": 1, "a": {"y": [1, 2.5], "x": "中文"}},
            "big": [0, 2**53 + 1],
            "ratio": [0.1, 0.3333333333333333],
        }
        entry = audit_record(actor=None, action="test.types", object_type="x", object_id="1", changes=changes)
        row = AuditEntry.objects.get(pk=entry.pk)
        assert row.changes["z"] == [None, "2025-10-08"]
        assert row.changes["a"] == ["12.50", "13.00"]
        assert row.entry_hash == entry_digest(row)
        audit_chain()
        assert audit_verify() is None

    def test_nul_characters_are_stored_replaced_and_still_verify(self):
        """PostgreSQL refuses NUL in text and jsonb: a caller's garbage must not make the audit write fail."""
        entry = audit_record(
            actor=None, action="test.nul", object_type="x", object_id="a\x00b", object_repr="r\x00",
            changes={"record": "\x00330206", "nested": [{"q": "x\x00"}], "when": dt.date(2026, 1, 1)},
        )  # fmt: skip
        row = AuditEntry.objects.get(pk=entry.pk)
        assert row.object_id == "a\ufffdb" and row.object_repr == "r\ufffd"
        assert row.changes["record"] == "\ufffd330206" and row.changes["nested"] == [{"q": "x\ufffd"}]
        assert row.entry_hash == entry_digest(row)
        audit_chain()
        assert audit_verify() is None

    @pytest.mark.parametrize("value", [1e16, 1e20, -0.0])
    def test_float_values_survive_the_database(self, value):
        audit_record(actor=None, action="test.float", object_type="x", object_id="1", changes={"v": [0, value]})
        audit_chain()
        assert audit_verify() is None

    def test_client_ip_from_the_middleware(self):
        seen = {}

        def view(request):
            seen["entry"] = audit_record(actor=None, action="test.ip", object_type="x", object_id="1")
            return HttpResponse()

        request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.7")
        AuditContextMiddleware(view)(request)
        assert AuditEntry.objects.get(pk=seen["entry"].pk).ip == "203.0.113.7"
        # Outside a request there is no IP.
        assert audit_record(actor=None, action="test.ip", object_type="x", object_id="2").ip is None
        audit_chain()
        assert audit_verify() is None

    def test_non_canonical_ipv6_address_verifies(self):
        def view(request):
            audit_record(actor=None, action="test.ip6", object_type="x", object_id="1")
            return HttpResponse()

        AuditContextMiddleware(view)(RequestFactory().get("/", REMOTE_ADDR="2001:DB8:0:0:0:0:0:1"))
        audit_chain()
        assert audit_verify() is None

    @pytest.mark.parametrize("remote_addr", ["2001:db8::1", "fe80::1", "::1"])
    def test_other_ipv6_forms_verify(self, remote_addr):
        def view(request):
            audit_record(actor=None, action="test.ip6", object_type="x", object_id="1")
            return HttpResponse()

        AuditContextMiddleware(view)(RequestFactory().get("/", REMOTE_ADDR=remote_addr))
        audit_chain()
        assert audit_verify() is None

    @pytest.mark.parametrize("remote_addr", ["::ffff:192.0.2.1", "::FFFF:c000:0201", "::ffff:10.0.0.1"])
    def test_ipv4_mapped_address_verifies(self, remote_addr):
        # ::ffff:a.b.c.d is what a dual-stack ([::]) listener reports for an IPv4 client.
        def view(request):
            audit_record(actor=None, action="test.ip6", object_type="x", object_id="1")
            return HttpResponse()

        AuditContextMiddleware(view)(RequestFactory().get("/", REMOTE_ADDR=remote_addr))
        audit_chain()
        assert audit_verify() is None


class TestDiff:
    def test_only_changed_fields(self):
        assert diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": [2, 3], "c": [None, 4]}
        assert diff({"a": 1}, {"a": 1}) == {}


class TestAuditChain:
    def test_links_entries_in_order(self):
        entries = append(5)
        assert audit_chain() == 5
        rows = chained()
        assert [r.pk for r in rows] == [e.pk for e in entries]
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert [r.chain_hash for r in rows] == expected_chain([e.entry_hash for e in entries])
        head = AuditChainHead.objects.get(pk=1)
        assert (head.seq, head.chain_hash) == (5, rows[-1].chain_hash)
        assert audit_verify() is None

    def test_second_run_links_nothing(self):
        append(3)
        audit_chain()
        assert audit_chain() == 0
        assert [r.seq for r in chained()] == [1, 2, 3]

    def test_later_entries_continue_the_chain(self):
        first = append(3)
        audit_chain()
        assert audit_verify() is None
        later = append(2, start=4)
        assert AuditEntry.objects.filter(seq__isnull=True).count() == 2
        assert audit_verify() is None  # unlinked but untouched entries are fine
        assert audit_chain() == 2
        rows = chained()
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert [r.pk for r in rows[3:]] == [e.pk for e in later]
        assert [r.chain_hash for r in rows] == expected_chain([e.entry_hash for e in first + later])
        assert AuditChainHead.objects.get(pk=1).seq == 5
        assert audit_verify() is None

    def test_small_batches_link_everything(self):
        entries = append(7)
        assert audit_chain(batch=2) == 7
        assert [r.chain_hash for r in chained()] == expected_chain([e.entry_hash for e in entries])
        assert audit_verify() is None

    def test_empty(self):
        assert audit_chain() == 0
        assert audit_verify() is None


class TestAuditVerify:
    @pytest.fixture
    def five(self):
        entries = append(5)
        audit_chain()
        assert audit_verify() is None
        return entries

    def test_changed_content_names_the_entry(self, five):
        AuditEntry.objects.filter(pk=five[2].pk).update(changes={"n": [2, 999]})
        broken = audit_verify()
        assert (broken.seq, broken.entry_id) == (3, five[2].pk)
        assert "篡改" in broken.reason
        assert str(broken).startswith("第 3 条")

    @pytest.mark.parametrize(
        "field_value",
        [
            {"actor_name": "张三"},
            {"action": "test.other"},
            {"object_repr": "别的"},
            {"ip": "198.51.100.1"},
            {"unit_id": 42},
            {"created_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)},
        ],
    )
    def test_any_content_field_is_covered(self, five, field_value):
        AuditEntry.objects.filter(pk=five[1].pk).update(**field_value)
        broken = audit_verify()
        assert (broken.seq, broken.entry_id) == (2, five[1].pk)

    def test_first_of_several_changes_is_named(self, five):
        AuditEntry.objects.filter(pk__in=[five[3].pk, five[1].pk]).update(object_repr="改")
        broken = audit_verify()
        assert (broken.seq, broken.entry_id) == (2, five[1].pk)

    def test_changed_content_with_recomputed_entry_hash(self, five):
        AuditEntry.objects.filter(pk=five[1].pk).update(changes={"n": [0, 0]})
        row = AuditEntry.objects.get(pk=five[1].pk)
        AuditEntry.objects.filter(pk=row.pk).update(entry_hash=entry_digest(row))
        broken = audit_verify()
        assert (broken.seq, broken.entry_id) == (2, five[1].pk)
        assert "链接" in broken.reason

    def test_deleted_middle_entry(self, five):
        AuditEntry.objects.filter(pk=five[2].pk).delete()
        broken = audit_verify()
        assert broken.seq == 3
        assert "删除" in broken.reason
        assert str(broken).startswith("第 3 条")

    def test_deleted_first_entry(self, five):
        AuditEntry.objects.filter(pk=five[0].pk).delete()
        assert audit_verify().seq == 1

    def test_deleted_last_entry(self, five):
        AuditEntry.objects.filter(pk=five[4].pk).delete()
        broken = audit_verify()
        assert broken.seq == 5
        assert "删除" in broken.reason

    def test_deleted_last_two_entries(self, five):
        AuditEntry.objects.filter(pk__in=[five[3].pk, five[4].pk]).delete()
        assert audit_verify().seq == 4

    def test_all_chained_entries_deleted(self, five):
        AuditEntry.objects.all().delete()
        assert audit_verify().seq == 1

    def test_swapped_chain_hashes(self, five):
        a, b = AuditEntry.objects.get(pk=five[1].pk), AuditEntry.objects.get(pk=five[2].pk)
        AuditEntry.objects.filter(pk=a.pk).update(chain_hash=b.chain_hash)
        AuditEntry.objects.filter(pk=b.pk).update(chain_hash=a.chain_hash)
        broken = audit_verify()
        assert (broken.seq, broken.entry_id) == (2, a.pk)

    def test_swapped_order(self, five):
        a, b = five[1].pk, five[2].pk
        AuditEntry.objects.filter(pk=a).update(seq=None)
        AuditEntry.objects.filter(pk=b).update(seq=2)
        AuditEntry.objects.filter(pk=a).update(seq=3)
        broken = audit_verify()
        assert (broken.seq, broken.entry_id) == (2, b)

    def test_chained_entry_unlinked(self, five):
        AuditEntry.objects.filter(pk=five[1].pk).update(seq=None, chain_hash="")
        assert audit_verify().seq == 2

    def test_head_tampered(self, five):
        AuditChainHead.objects.filter(pk=1).update(chain_hash="f" * 64)
        broken = audit_verify()
        assert broken.seq == 5
        assert "链尾" in broken.reason

    def test_edited_unlinked_entry(self, five):
        extra = append(2, start=6)
        AuditEntry.objects.filter(pk=extra[1].pk).update(changes={})
        broken = audit_verify()
        assert (broken.seq, broken.entry_id) == (None, extra[1].pk)
        assert str(broken).startswith(f"记录 #{extra[1].pk}")

    def test_edited_unlinked_entry_still_caught_after_linking(self, five):
        extra = append(1, start=6)
        AuditEntry.objects.filter(pk=extra[0].pk).update(object_repr="改")
        audit_chain()
        broken = audit_verify()
        assert (broken.seq, broken.entry_id) == (6, extra[0].pk)

    def test_chained_break_is_reported_before_unlinked_one(self, five):
        extra = append(1, start=6)
        AuditEntry.objects.filter(pk=extra[0].pk).update(object_repr="改")
        AuditEntry.objects.filter(pk=five[3].pk).update(object_repr="改")
        assert audit_verify().seq == 4


class TestAuditVerifyCommand:
    def test_intact_chain_links_and_succeeds(self):
        append(4)
        out = io.StringIO()
        call_command("audit_verify", stdout=out)
        assert "新入链 4 条" in out.getvalue()
        assert "审计链完整：共 4 条记录" in out.getvalue()
        assert not AuditEntry.objects.filter(seq__isnull=True).exists()

    def test_no_chain_only_verifies(self):
        append(2)
        out = io.StringIO()
        call_command("audit_verify", "--no-chain", stdout=out)
        assert "审计链完整：共 2 条记录" in out.getvalue()
        assert AuditEntry.objects.filter(seq__isnull=True).count() == 2

    def test_tampered_entry_fails_naming_it(self):
        entries = append(4)
        audit_chain()
        AuditEntry.objects.filter(pk=entries[1].pk).update(changes={"n": [0, 0]})
        with pytest.raises(CommandError, match=r"审计链断裂：第 2 条.*篡改"):
            call_command("audit_verify", stdout=io.StringIO())

    def test_deleted_entry_fails_naming_it(self):
        entries = append(4)
        audit_chain()
        AuditEntry.objects.filter(pk=entries[2].pk).delete()
        with pytest.raises(CommandError, match=r"审计链断裂：第 3 条.*删除"):
            call_command("audit_verify", stdout=io.StringIO())

    def test_tampered_unlinked_entry_fails(self):
        entries = append(2)
        AuditEntry.objects.filter(pk=entries[0].pk).update(action="test.other")
        with pytest.raises(CommandError, match="审计链断裂：第 1 条"):
            call_command("audit_verify", stdout=io.StringIO())


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
class TestConcurrentAppend:
    def test_threads_appending_and_chaining(self):
        assert not connection.in_atomic_block  # really committed, visible to other connections
        writers, per_writer, chainers = 6, 25, 2
        errors: list[BaseException] = []
        start = threading.Barrier(writers + chainers)
        done = threading.Event()

        def write(n: int) -> None:
            try:
                start.wait()
                for i in range(per_writer):
                    audit_record(actor=None, action="test.concurrent", object_type="w", object_id=f"{n}-{i}")
            except BaseException as exc:  # noqa: BLE001 - reported to the main thread
                errors.append(exc)
            finally:
                connections.close_all()

        def chain() -> None:
            try:
                start.wait()
                while not done.is_set():
                    audit_chain(batch=7)
                audit_chain(batch=7)
            except BaseException as exc:  # noqa: BLE001 - reported to the main thread
                errors.append(exc)
            finally:
                connections.close_all()

        write_threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        chain_threads = [threading.Thread(target=chain) for _ in range(chainers)]
        for thread in write_threads + chain_threads:
            thread.start()
        for thread in write_threads:
            thread.join(timeout=120)
        done.set()
        for thread in chain_threads:
            thread.join(timeout=120)
        assert not errors, errors

        audit_chain()
        total = writers * per_writer
        assert AuditEntry.objects.count() == total
        assert set(AuditEntry.objects.values_list("object_id", flat=True)) == {
            f"{n}-{i}" for n in range(writers) for i in range(per_writer)
        }
        assert sorted(AuditEntry.objects.values_list("seq", flat=True)) == list(range(1, total + 1))
        assert AuditChainHead.objects.get(pk=1).seq == total
        assert audit_verify() is None

    def test_group_commit_shares_inserts_and_loses_nothing(self, monkeypatch):
        """``group=True`` from many threads at once: batches form, every entry is stored once with the
        id it was given, each caller returns only after its own entry is committed, the chain verifies."""
        assert not connection.in_atomic_block
        batches: list[int] = []
        insert_many = audit._insert_many

        def counting(entries):
            batches.append(len(entries))
            insert_many(entries)
            # the caller's entry is committed before it returns: visible from another connection
            with psycopg.connect(**connection.get_connection_params()) as other:
                found = other.execute("SELECT count(*) FROM core_auditentry WHERE id = ANY(%s)",
                                      [[e.id for e in entries]]).fetchone()[0]  # fmt: skip
                assert found == len(entries)

        monkeypatch.setattr(audit, "_insert_many", counting)
        writers, per_writer = 8, 30
        errors: list[BaseException] = []
        returned: list[tuple[str, int]] = []
        start = threading.Barrier(writers)

        def write(n: int) -> None:
            try:
                start.wait()
                for i in range(per_writer):
                    entry = audit_record(actor=None, action="test.group", object_type="g", object_id=f"{n}-{i}",
                                         changes={"n": n, "i": i}, group=True)  # fmt: skip
                    returned.append((entry.object_id, entry.id))
            except BaseException as exc:  # noqa: BLE001 - reported to the main thread
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        total = writers * per_writer
        assert sum(batches) == total and max(batches) > 1  # some calls really shared a commit
        stored = dict(AuditEntry.objects.filter(action="test.group").values_list("object_id", "id"))
        assert len(stored) == total and sorted(returned) == sorted(stored.items())
        audit_chain()
        assert audit_verify() is None


def test_genesis_constant_matches():
    assert audit.GENESIS == GENESIS
