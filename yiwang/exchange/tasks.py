"""Celery tasks of the exchange module: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task


@shared_task
def tick() -> dict:
    """Every 30 s: flush gateway counters, push subscriptions that are due."""
    from . import gateway, subscriptions

    return {"counters": gateway.counters_flush(), "pushed": subscriptions.subscriptions_push()}


@shared_task
def daily() -> dict:
    """Hourly: escalate overdue access requests, remind providers of disputes near their deadline."""
    from . import disputes, services

    return {"escalated": services.requests_escalate(), "reminded": disputes.disputes_remind()}


@shared_task
def import_run(run_id: int) -> None:
    """Validate and load one base-registry upload (all or nothing)."""
    from . import imports

    imports.import_run(run_id=run_id)
