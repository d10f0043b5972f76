"""What every page's shell needs: modules, the acting post, the posts to switch to, the counts."""

from __future__ import annotations

from django.conf import settings

from . import modules
from .notices import notice_unread_count


def shell(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"shell_modules": [], "platform_name": "一网"}
    return {
        "platform_name": "一网",
        "shell_modules": modules.modules_for(user),
        "shell_posts": user.available_posts(),
        "shell_acting_post": user.acting_post,
        "shell_inbox_count": modules.inbox_count(user),
        # One indexed COUNT (core_notice_unread: recipient_id, read_at).
        "shell_notice_count": notice_unread_count(user=user),
        "shell_debug": settings.DEBUG,
    }
