"""Lock-out keyed on the account a login resolves to, and on the client's address.

The backend accepts a username or a mobile number in any spelling (``139 0574 0030``,
``+8613905740030``, ``0086…``). Counting the raw text would give every spelling its own
budget of guesses, so axes is told the *resolved* username instead (``AXES_USERNAME_CALLABLE``),
and counts failures per account and per address separately (``AXES_LOCKOUT_PARAMETERS``).
A success clears only what that person did from that address: failures somebody else
recorded against the account, or from the same address against other accounts, stay.
"""

from __future__ import annotations

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum

from yiwang.core.validators import is_valid_mobile, normalise_mobile

from .backends import user_for_login

_CACHE_ATTR = "_yiwang_lockout_usernames"


def lockout_username(request, credentials=None) -> str:
    """AXES_USERNAME_CALLABLE: one key per account, whatever spelling was typed."""
    field = settings.AXES_USERNAME_FORM_FIELD
    if credentials and credentials.get(field) is not None:
        raw = credentials.get(field)
    else:
        raw = request.POST.get(field, "") if request is not None and hasattr(request, "POST") else ""
    login = str(raw or "").strip()
    # axes asks several times per request; resolve once.
    cache = getattr(request, _CACHE_ATTR, None) if request is not None else None
    if cache is not None and login in cache:
        return cache[login]
    user = user_for_login(login)
    if user is not None:
        key = user.username
    elif is_valid_mobile(login):
        key = normalise_mobile(login)  # an unknown number still gets one budget, not one per spelling
    else:
        key = login
    if request is not None:
        try:
            setattr(request, _CACHE_ATTR, {**(cache or {}), login: key})
        except AttributeError:
            pass
    return key


class LockoutHandler(AxesDatabaseHandler):
    """axes' database handler with a separate (higher) limit per address, and a narrow reset."""

    def get_failures(self, request, credentials=None) -> int:
        username = lockout_username(request, credentials)
        since = get_cool_off_threshold(request)
        account = _failures(AccessAttempt.objects.filter(username=username, attempt_time__gte=since))
        address = _failures(AccessAttempt.objects.filter(ip_address=request.axes_ip_address, attempt_time__gte=since))
        if address >= settings.YIWANG_LOGIN_IP_FAILURE_LIMIT:
            # the address is locked: report at least the account limit so axes refuses it
            return max(account, settings.AXES_FAILURE_LIMIT)
        return account

    def reset_user_attempts(self, request, credentials=None) -> int:
        username = lockout_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(username=username, ip_address=request.axes_ip_address).delete()
        return count


def _failures(attempts) -> int:
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
