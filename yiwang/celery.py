"""The one task queue: Celery on SQLite (embedded default) or Redis/RabbitMQ (production)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yiwang.settings")

app = Celery("yiwang")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
