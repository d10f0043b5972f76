"""Background jobs of org; thin wrappers around the functions that do the work."""

from celery import shared_task

from . import imports


@shared_task(name="yiwang.org.tasks.import_job_run", ignore_result=True, acks_late=True)
def import_job_run(job_id: int) -> None:
    imports.import_job_run(job_id=job_id)
