"""The one attachment mechanism: kind by content, size limit, SHA-256, storage API, scan hook,
download permission and headers."""

from __future__ import annotations

import hashlib

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage

from yiwang.core import attachments
from yiwang.core.models import Attachment
from yiwang.core.tests import files
from yiwang.core.tests.files import upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


class TestSniff:
    @pytest.mark.parametrize(
        ("name", "content", "kind"),
        [
            ("a.pdf", files.PDF, "pdf"),
            ("a.ofd", files.OFD, "ofd"),
            ("a.docx", files.DOCX, "docx"),
            ("a.xlsx", files.XLSX, "xlsx"),
            ("a.zip", files.ZIP, "zip"),
            ("a.doc", files.OLE, "doc"),
            ("a.xls", files.OLE, "xls"),
            ("a.et", files.OLE, "wps"),
            ("a.png", files.PNG, "png"),
            ("a.jpg", files.JPEG, "jpeg"),
            ("a.txt", "关于开展政务数据共享的通知".encode(), "txt"),
            ("a.txt", "关于开展政务数据共享的通知".encode("gb18030"), "txt"),
            ("a.csv", b"name,phone\n", "csv"),
            ("a.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", ""),  # a Windows program named .pdf
            ("a.docx", b"PK\x03\x04 not really a zip", ""),
        ],
    )
    def test_kind_is_read_from_the_bytes(self, name, content, kind):
        assert attachments.sniff(upload(name, content), name) == kind

    def test_the_name_cannot_change_the_kind(self):
        with pytest.raises(ValidationError, match="与扩展名不符"):
            attachments.attachment_check(upload("报告.pdf", files.PNG, "application/pdf"), kinds=attachments.DOCUMENTS)
        with pytest.raises(ValidationError, match="不支持的附件类型"):
            attachments.attachment_check(upload("setup.exe", b"MZ\x90\x00"), kinds=attachments.DOCUMENTS)

    def test_the_use_decides_the_allowed_kinds(self):
        assert attachments.attachment_check(upload("a.zip", files.ZIP), kinds=("zip",)) == "zip"
        with pytest.raises(ValidationError, match="不支持的附件类型"):
            attachments.attachment_check(upload("a.zip", files.ZIP), kinds=attachments.DOCUMENTS)

    def test_size_limit_and_empty_files(self, settings):
        with pytest.raises(ValidationError, match="超过"):
            attachments.attachment_check(upload("a.pdf", files.PDF + b" " * 2000), kinds=("pdf",), max_bytes=1000)
        settings.YIWANG_ATTACHMENT_MAX_BYTES = 10
        with pytest.raises(ValidationError, match="超过"):
            attachments.attachment_check(upload("a.pdf", files.PDF), kinds=("pdf",))
        with pytest.raises(ValidationError, match="空文件"):
            attachments.attachment_check(upload("a.pdf", b""), kinds=("pdf",))


class TestStore:
    def test_stored_under_a_random_name_with_its_hash(self, alice):
        stored = attachments.attachment_create(
            upload=upload("../../etc/通知.pdf", files.PDF, "text/html"), module="oa", kinds=("pdf",), owner=alice
        )
        assert stored.name == "通知.pdf" and stored.kind == "pdf" and stored.content_type == "application/pdf"
        assert stored.sha256 == hashlib.sha256(files.PDF).hexdigest() and stored.size == len(files.PDF)
        assert stored.file.name.startswith("attachments/oa/") and stored.file.name.endswith(".pdf")
        assert "通知" not in stored.file.name and ".." not in stored.file.name
        assert default_storage.open(stored.file.name).read() == files.PDF
        assert stored.owner_id == alice.pk and stored.unit_id == alice.acting_unit_id

    def test_goes_through_the_configured_storage(self, settings, alice):
        settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
        from django.core.files.storage import storages

        stored = attachments.attachment_create(upload=upload("a.png", files.PNG), module="hotline", kinds=("png",))
        assert storages["default"].__class__.__name__ == "InMemoryStorage"
        assert storages["default"].open(stored.file.name).read() == files.PNG

    def test_the_scan_hook_refuses_eicar(self, settings):
        settings.YIWANG_ATTACHMENT_SCANNER = "yiwang.core.attachments.eicar_scanner"
        with pytest.raises(ValidationError, match=r"病毒扫描.*EICAR"):
            attachments.attachment_create(upload=upload("eicar.txt", attachments.EICAR), module="oa", kinds=("txt",))
        assert not Attachment.objects.exists()
        assert attachments.attachment_create(upload=upload("ok.txt", b"hello"), module="oa", kinds=("txt",))


class TestDownload:
    def url(self, stored):
        from django.urls import reverse

        return reverse("core:attachment", args=[stored.pk])

    def test_owner_and_unit_may_download_others_may_not(self, client, alice, carol, bob):
        stored = attachments.attachment_create(
            upload=upload('报告"\r\nX-Evil: 1.pdf', files.PDF), module="services", kinds=("pdf",), owner=alice
        )
        client.force_login(alice)
        response = client.get(self.url(stored))
        assert response.status_code == 200 and b"".join(response.streaming_content) == files.PDF
        assert response["Content-Type"] == "application/pdf" and response["X-Content-Type-Options"] == "nosniff"
        disposition = response["Content-Disposition"]
        assert disposition.startswith("attachment;") and "\n" not in disposition and "X-Evil" not in response
        assert "filename*=utf-8''" in disposition
        client.force_login(carol)  # leader of the same unit
        assert client.get(self.url(stored)).status_code == 200
        client.force_login(bob)  # another unit
        assert client.get(self.url(stored)).status_code == 404

    def test_a_module_rule_decides(self, client, alice, bob):
        stored = attachments.attachment_create(upload=upload("a.png", files.PNG), module="probe", kinds=("png",),
                                               owner=alice)  # fmt: skip
        attachments.register_viewer("probe", lambda user, item: user.pk == bob.pk)
        try:
            client.force_login(alice)
            assert client.get(self.url(stored)).status_code == 404
            client.force_login(bob)
            response = client.get(self.url(stored) + "?inline=1")
            assert response.status_code == 200 and response["Content-Disposition"].startswith("inline;")
        finally:
            attachments._viewers.pop("probe")
