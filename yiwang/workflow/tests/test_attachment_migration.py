"""Migrations 0002–0004: action files stored before the core mechanism become core attachments
in place (same path, hashed, kind read from the bytes), still downloadable from the case."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from yiwang.core.tests import files as sample
from yiwang.workflow import services

BEFORE = [("workflow", "0002_attachment_stored")]
AFTER = [("workflow", "0004_attachment_drop_file")]


@pytest.mark.django_db(transaction=True)
def test_stored_action_files_become_core_attachments(settings, tmp_path, client, alice, carol, simple):
    settings.MEDIA_ROOT = tmp_path
    case = services.case_start(process="test.simple", initiator=alice, title="购置办公电脑", fields={"amount": 0})
    action = case.actions.get()
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("workflow", "Attachment")
    (tmp_path / "workflow" / str(case.pk)).mkdir(parents=True)
    (tmp_path / "workflow" / str(case.pk) / "报价单.pdf").write_bytes(sample.PDF)
    old.objects.create(case_id=case.pk, action_id=action.pk, file=f"workflow/{case.pk}/报价单.pdf", name="报价单.pdf",
                       size=len(sample.PDF), uploaded_by_id=alice.pk)  # fmt: skip
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)

    from yiwang.workflow.models import Attachment

    link = Attachment.objects.select_related("stored").get()
    stored = link.stored
    assert (stored.module, stored.name, stored.kind, stored.content_type) == ("workflow", "报价单.pdf", "pdf",
                                                                              "application/pdf")  # fmt: skip
    assert stored.sha256 == hashlib.sha256(sample.PDF).hexdigest() and stored.size == len(sample.PDF)
    assert stored.file.name == f"workflow/{case.pk}/报价单.pdf" and stored.unit_id == case.unit_id
    client.force_login(carol)
    response = client.get(reverse("workflow:attachment", args=[link.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == sample.PDF
