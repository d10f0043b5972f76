"""Excel imports as background jobs (批量导入任务): upload, then a worker checks and writes.

The upload is stored on an ``ImportJob`` and a Celery task runs ``excel.units_import`` or
``excel.people_import`` on it: all rows are checked, then all are written in one transaction
(all-or-nothing, as in the browser before). Progress of the write phase goes to the cache,
since the rows being written are not visible outside that transaction until it commits;
the outcome (count or row errors) is stored on the job.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import excel
from .models import ImportJob, User

log = logging.getLogger(__name__)

IMPORTERS = {ImportJob.Kind.UNITS: excel.units_import, ImportJob.Kind.PEOPLE: excel.people_import}
PROGRESS_TTL = 6 * 3600


def _progress_key(job_id: int) -> str:
    return f"org:import:{job_id}:progress"


@dataclass
class JobProgress:
    phase: str  # queued / checking / writing / done / failed
    done: int = 0
    total: int = 0

    @property
    def percent(self) -> int:
        return int(self.done * 100 / self.total) if self.total else 0


def import_job_create(*, actor: User, kind: str, file) -> ImportJob:
    """Store an upload as a queued import job and hand it to a worker once committed."""
    from . import tasks

    file.seek(0)
    job = ImportJob.objects.create(
        kind=kind, actor=actor, file_name=(getattr(file, "name", "") or "")[:200], content=file.read()
    )
    transaction.on_commit(lambda: tasks.import_job_run.delay(job.pk))
    return job


def import_job_run(*, job_id: int) -> ImportJob | None:
    """The worker's part: claim the job, import the file with progress, store the outcome."""
    claimed = ImportJob.objects.filter(pk=job_id, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING])
    # RUNNING again after a lost worker: the import's transaction was rolled back, so run it again.
    if not claimed.update(status=ImportJob.Status.RUNNING, started_at=timezone.now()):
        return None
    job = ImportJob.objects.select_related("actor").get(pk=job_id)
    key = _progress_key(job.pk)

    def progress(done: int, total: int) -> None:
        cache.set(key, (done, total), PROGRESS_TTL)

    try:
        result = IMPORTERS[job.kind](actor=job.actor, file=io.BytesIO(bytes(job.content)), progress=progress)
    except Exception:  # a defect must not leave the page spinning forever
        log.exception("org import job %s failed", job.pk)
        errors = [[1, "", _("导入时发生内部错误，未导入任何数据，请稍后重试或联系管理员。")]]
        created = 0
    else:
        errors = [[e.row, e.column, str(e.message)] for e in result.errors]
        created = result.created
    job.status = ImportJob.Status.FAILED if errors else ImportJob.Status.DONE
    job.errors = errors
    job.created_count = created
    job.content = b""
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "errors", "created_count", "content", "finished_at", "updated_at"])
    cache.delete(key)
    return job


def import_job_progress(job: ImportJob) -> JobProgress:
    """Where a job stands, for the polling page."""
    if job.status == ImportJob.Status.QUEUED:
        return JobProgress("queued")
    if job.is_finished:
        return JobProgress(job.status, job.created_count, job.created_count)
    done, total = cache.get(_progress_key(job.pk)) or (0, 0)
    return JobProgress("writing" if total else "checking", done, total)
