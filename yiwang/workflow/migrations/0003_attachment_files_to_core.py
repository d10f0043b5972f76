"""Workflow's action files move to the one attachment mechanism (``core.Attachment``).

Each stored file becomes a core attachment in place (same storage path, no copy), with its
SHA-256 and the kind its bytes show; the link keeps the case and the action."""

import hashlib
import mimetypes

from django.db import migrations


def forwards(apps, schema_editor):
    from yiwang.core.attachments import KINDS, sniff

    Link = apps.get_model("workflow", "Attachment")
    Stored = apps.get_model("core", "Attachment")
    for link in Link.objects.select_related("case").iterator():
        digest, kind = hashlib.sha256(), ""
        try:
            with link.file.open("rb") as handle:
                kind = sniff(handle, link.name)
                for chunk in handle.chunks():
                    digest.update(chunk)
        except (FileNotFoundError, OSError):
            pass  # a lost file stays listed; its download says so
        content_type = KINDS[kind].content_type if kind else mimetypes.guess_type(link.name)[0]
        link.stored = Stored.objects.create(
            module="workflow",
            name=link.name,
            kind=kind,
            content_type=content_type or "application/octet-stream",
            size=link.size,
            sha256=digest.hexdigest(),
            file=link.file.name,
            owner_id=link.uploaded_by_id,
            unit_id=link.case.unit_id,
        )
        link.save(update_fields=["stored"])


class Migration(migrations.Migration):
    # its own migration (transaction): PostgreSQL refuses ALTER TABLE on rows updated in the same one
    dependencies = [("workflow", "0002_attachment_stored")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
