"""What every exchange page shares: the module's tabs and who may do what."""

from __future__ import annotations

from functools import wraps
from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

TABS = [
    ("catalog", _("资源目录"), "journal-text", "exchange:catalog"),
    ("registries", _("基础库"), "database", "exchange:registries"),
    ("requests", _("共享申请"), "key", "exchange:requests"),
    ("grants", _("共享授权"), "shield-check", "exchange:grants"),
    ("disputes", _("疑义校核"), "exclamation-diamond", "exchange:disputes"),
    ("subscriptions", _("订阅"), "rss", "exchange:subscriptions"),
    ("matching", _("免于重复采集"), "ui-checks", "exchange:matching"),
    ("statistics", _("调用统计"), "bar-chart", "exchange:statistics"),
    ("evidence", _("调用记录"), "clipboard-data", "exchange:evidence"),
]

STAFF_ONLY = _("共享交换仅供机关工作人员使用。")


def _tabs() -> list[tuple]:
    tabs = []
    for code, label, icon, url_name in TABS:
        try:
            reverse(url_name)
        except NoReverseMatch:
            continue
        tabs.append((code, label, icon, url_name))
    return tabs


def page(request, template: str, context: dict, *, section: str, status: int = 200):
    """Render an exchange page with the module tabs, ``section`` marking the current one."""
    context = {**context, "exc_section": section, "exchange_tabs": _tabs()}
    return render(request, template, context, status=status)


def attachment(filename: str, fallback: str) -> str:
    """Content-Disposition with the Chinese name (RFC 5987) and an ASCII one for old clients."""
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


# --- who may do what ----------------------------------------------------------------------------


def is_staff(user) -> bool:
    """Government staff and platform admins: not the public accounts, not a consumer system's account."""
    if getattr(user, "is_system", False):
        return False
    post = user.acting_post
    return user.is_platform_admin or (post is not None and not post.role.is_public)


def denied(request, message: str, *, section: str):
    """The module's 403 page: says why, inside the tabs, with a way back to ``section``'s tab."""
    return page(request, "exchange/denied.html", {"message": message}, section=section, status=403)


def staff_required(section: str, message: str = STAFF_ONLY):
    """Decorator: signed-in government staff only (``is_staff``); anyone else gets the 403 page
    with ``message`` in ``section``'s tab."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if not is_staff(request.user):
                return denied(request, message, section=section)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def act(request, call, *, success: str, section: str, then: str):
    """A button's POST: run the service ``call``; its refusal (PermissionDenied) is the 403
    page, its ValidationError messages are flashed, else ``success`` is; then go to ``then``."""
    try:
        call()
    except PermissionDenied as error:
        return denied(request, str(error), section=section)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(request, success)
    return redirect(then)
