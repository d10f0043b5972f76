"""Excel imports run as background jobs: upload, progress page (htmx), outcome or row errors."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from yiwang.org import excel, imports, tasks
from yiwang.org.models import ImportJob, Unit, User

from .test_excel import (
    PERSON_HEADER,
    UNIT_HEADER,
    edu_admin,  # noqa: F401  (fixture)
    upload,
    xlsx,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def inline_worker(monkeypatch, django_capture_on_commit_callbacks):
    """Run the job's Celery task in-process when the upload's transaction commits (no broker in tests)."""
    monkeypatch.setattr(tasks.import_job_run, "delay", lambda job_id: tasks.import_job_run(job_id))

    def post(client, url, data):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data)

    return post


class TestUploadToJob:
    def test_good_upload_goes_to_job_page_then_imported(self, admin_client, admin, units, inline_worker):
        response = inline_worker(
            admin_client,
            reverse("org:unit_import"),
            {"file": upload(xlsx(UNIT_HEADER, ["V-1", "新科室", "", "科室", "EDU"]))},
        )
        job = ImportJob.objects.get()
        assert response.status_code == 302 and response["Location"] == reverse("org:import_job", args=[job.pk])
        assert job.status == ImportJob.Status.DONE and job.created_count == 1 and job.actor == admin
        assert job.content == b""  # the upload is not kept
        assert Unit.objects.filter(code="V-1").exists()
        page = admin_client.get(response["Location"]).content.decode()
        assert "已导入 1 条" in page and "hx-get" not in page  # finished: no more polling

    def test_bad_upload_shows_row_errors_and_writes_nothing(self, admin_client, units, inline_worker):
        file = upload(xlsx(UNIT_HEADER, ["V-1", "新科室", "", "科室", "EDU"], ["V-2", "另一个", "", "科室", "NOPE"]))
        response = inline_worker(admin_client, reverse("org:unit_import"), {"file": file})
        job = ImportJob.objects.get()
        assert job.status == ImportJob.Status.FAILED and job.errors == [[3, "上级单位代码", "上级单位代码不存在"]]
        html = admin_client.get(response["Location"]).content.decode()
        assert "文件有错误，未导入任何数据，请修改后重新上传" in html and "上级单位代码不存在" in html
        assert not Unit.objects.filter(code="V-1").exists()

    def test_corrupt_upload_is_a_row_error_not_a_500(self, admin_client, inline_worker):
        file = SimpleUploadedFile("data.xlsx", b"PK\x03\x04garbage", content_type=excel_type())
        response = inline_worker(admin_client, reverse("org:person_import"), {"file": file})
        page = admin_client.get(response["Location"])
        assert page.status_code == 200
        assert ImportJob.objects.get().status == ImportJob.Status.FAILED

    def test_people_import_job(self, admin_client, units, roles, inline_worker):
        rows = [[f"user{i}", f"人员{i}", "", "", "EDU", "staff", "", "", ""] for i in range(250)]
        inline_worker(admin_client, reverse("org:person_import"), {"file": upload(xlsx(PERSON_HEADER, *rows))})
        assert ImportJob.objects.get().created_count == 250
        assert User.objects.filter(username__startswith="user").count() == 250

    def test_staff_cannot_upload(self, alice_client, inline_worker):
        file = upload(xlsx(PERSON_HEADER, ["x1", "甲", "", "", "EDU", "staff"]))
        assert inline_worker(alice_client, reverse("org:person_import"), {"file": file}).status_code == 403
        assert not ImportJob.objects.exists()


def excel_type() -> str:
    from yiwang.org.views_excel import XLSX

    return XLSX


class TestProgress:
    def _job(self, user, **fields) -> ImportJob:
        return ImportJob.objects.create(kind=ImportJob.Kind.PEOPLE, actor=user, file_name="people.xlsx", **fields)

    def test_phases_on_the_polling_page(self, admin_client, admin):
        from django.core.cache import cache

        job = self._job(admin)
        url = reverse("org:import_job_progress", args=[job.pk])
        page = admin_client.get(url).content.decode()
        assert "排队中" in page and f'hx-get="{url}"' in page and 'hx-trigger="every 1s"' in page
        ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
        assert "正在检查" in admin_client.get(url).content.decode()
        cache.set(imports._progress_key(job.pk), (2500, 10000))
        page = admin_client.get(url).content.decode()
        assert "正在写入：2500 / 10000 条" in page and 'value="25"' in page
        cache.delete(imports._progress_key(job.pk))

    def test_progress_reported_while_writing(self, admin, units, roles, monkeypatch):
        seen = []
        monkeypatch.setattr(imports.cache, "set", lambda key, value, ttl=None: seen.append(value))
        monkeypatch.setattr(excel, "PROGRESS_EVERY", 10)
        rows = [[f"p{i}", f"人员{i}", "", "", "EDU", "staff", "", "", ""] for i in range(35)]
        content = xlsx(PERSON_HEADER, *rows).getvalue()
        job = self._job(admin, content=content)
        imports.import_job_run(job_id=job.pk)
        assert seen == [(0, 35), (10, 35), (20, 35), (30, 35)]
        job.refresh_from_db()
        assert job.status == ImportJob.Status.DONE and job.created_count == 35

    def test_finished_job_is_not_run_twice(self, admin):
        job = self._job(admin, status=ImportJob.Status.DONE, created_count=3)
        assert imports.import_job_run(job_id=job.pk) is None

    def test_a_defect_fails_the_job_instead_of_spinning(self, admin, monkeypatch):
        def boom(**kwargs):
            raise RuntimeError("defect")

        monkeypatch.setitem(imports.IMPORTERS, ImportJob.Kind.PEOPLE, boom)
        job = imports.import_job_run(job_id=self._job(admin, content=b"x").pk)
        assert job.status == ImportJob.Status.FAILED and "内部错误" in job.errors[0][2]

    def test_only_the_uploader_sees_the_job(self, client, admin, edu_admin):  # noqa: F811
        job = self._job(admin)
        client.force_login(edu_admin)
        assert client.get(reverse("org:import_job", args=[job.pk])).status_code == 404
        assert client.get(reverse("org:import_job_progress", args=[job.pk])).status_code == 404
