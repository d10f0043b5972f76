"""Celery tasks of workflow: thin wrappers around services."""

from celery import shared_task

from . import services


@shared_task(name="yiwang.workflow.tasks.send_reminders", ignore_result=True)
def send_reminders() -> dict[str, int]:
    """Beat job: due-soon and overdue reminders, at most one per task per day."""
    return services.reminders_send()
