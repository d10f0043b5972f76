"""In-app notices (站内提醒): the one place any module leaves a message for a person."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from .models import Notice


def notice_send(*, recipient_id: int, title: str, body: str = "", url: str = "", module: str = "") -> Notice:
    """Leave a notice for one person; it shows under the bell in the top bar."""
    return Notice.objects.create(
        recipient_id=recipient_id, title=title[:200], body=body, url=url[:300], module=module[:32]
    )


def notice_list(*, user) -> QuerySet[Notice]:
    return Notice.objects.filter(recipient_id=user.pk)


def notice_unread_count(*, user) -> int:
    return Notice.objects.filter(recipient_id=user.pk, read_at__isnull=True).count()


def notice_mark_read(*, user, notice_id: int | None = None) -> int:
    """Mark one notice (or all of them) read; returns how many changed."""
    qs = Notice.objects.filter(recipient_id=user.pk, read_at__isnull=True)
    if notice_id is not None:
        qs = qs.filter(pk=notice_id)
    return qs.update(read_at=timezone.now())
