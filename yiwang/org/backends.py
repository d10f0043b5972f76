"""Sign in with a username or a mainland mobile number."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from yiwang.core.validators import is_valid_mobile, normalise_mobile

from .models import User


def user_for_login(login: str) -> User | None:
    """The account a login text names: a username first, else a mobile number in any spelling."""
    login = (login or "").strip()
    if not login:
        return None
    user = User.objects.filter(username=login).first()
    if user is None and is_valid_mobile(login):
        user = User.objects.filter(mobile=normalise_mobile(login)).first()
    return user


class UsernameOrMobileBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if not username or password is None:
            return None
        user = user_for_login(username)
        if user is None or user.is_system:
            User().set_password(password)  # same work as a real check: no timing oracle
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
