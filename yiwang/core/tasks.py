"""Periodic jobs of core; thin wrappers around the functions that do the work."""

from celery import shared_task

from . import audit


@shared_task(name="yiwang.core.tasks.audit_chain", ignore_result=True)
def audit_chain() -> int:
    return audit.audit_chain()


@shared_task(name="yiwang.core.tasks.ping")
def ping() -> str:
    return "pong"
