"""Single sign-on with the province's identity service (省统一身份认证), over OpenID Connect.

Beside the password, never instead of it: the login page shows the button only when
``OIDC_RP_CLIENT_ID`` and the provider's endpoints (or its discovery URL) are configured.
A provincial identity maps to an existing yiwang account by ID number (claim
``YIWANG_OIDC_ID_CLAIM``) or else by mobile number (claim ``YIWANG_OIDC_MOBILE_CLAIM``,
normalised like a typed one). Nobody gets an account by signing in: an unknown identity,
a system or inactive account, or an account axes has locked is refused with a Chinese
message, and every outcome is audited. TOTP for platform admins still applies afterwards
(``AdminTwoFactorMiddleware``).
"""

from __future__ import annotations

import functools
import logging

import requests
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import SuspiciousOperation
from django.dispatch import receiver
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext as _
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from yiwang.core.audit import audit_record
from yiwang.core.validators import is_valid_mobile, normalise_mobile

from .models import User

logger = logging.getLogger(__name__)
BACKEND = "yiwang.org.oidc.ProvincialOIDCBackend"
_DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


def enabled() -> bool:
    """Configured: a client id and either the endpoints or a discovery URL."""
    return bool(getattr(settings, "OIDC_RP_CLIENT_ID", "")) and bool(
        getattr(settings, "OIDC_OP_DISCOVERY_URL", "") or getattr(settings, "OIDC_OP_AUTHORIZATION_ENDPOINT", "")
    )


@functools.lru_cache(maxsize=4)
def _discovery(url: str) -> dict:
    response = requests.get(url, timeout=getattr(settings, "OIDC_TIMEOUT", 10) or 10)
    response.raise_for_status()
    return response.json()


def oidc_setting(attr: str, *args):
    """A setting, with the provider's endpoints taken from its discovery document when only
    ``OIDC_OP_DISCOVERY_URL`` is given."""
    value = getattr(settings, attr, None)
    if not value and attr in _DISCOVERED and getattr(settings, "OIDC_OP_DISCOVERY_URL", ""):
        value = _discovery(settings.OIDC_OP_DISCOVERY_URL).get(_DISCOVERED[attr])
    if value:
        return value
    return import_from_settings(attr, *args)


def _audit(request, action: str, *, user: User | None = None, **changes) -> None:
    audit_record(
        actor=user,
        action=action,
        obj=user,
        object_type="org.user",
        changes={"method": "oidc", **changes},
    )


def _refuse(request, message: str, *, reason: str, user: User | None = None, subject: str = "") -> None:
    """Tell the person why (on the login page) and record the refusal."""
    if request is not None:
        messages.error(request, message)
    _audit(request, "org.login.refused", user=user, reason=reason, subject=subject[:64])


class ProvincialOIDCBackend(OIDCAuthenticationBackend):
    """Maps the provider's identity to an account; never creates one."""

    get_settings = staticmethod(oidc_setting)

    def verify_claims(self, claims) -> bool:
        return bool(claims.get("sub"))

    def _lookup(self, claims) -> tuple[User | None, str]:
        id_number = str(claims.get(settings.YIWANG_OIDC_ID_CLAIM) or "").strip().upper()
        if id_number:
            user = User.objects.filter(id_number=id_number).first()
            if user is not None:
                return user, "id_number"
        mobile = normalise_mobile(str(claims.get(settings.YIWANG_OIDC_MOBILE_CLAIM) or ""))
        if is_valid_mobile(mobile):
            user = User.objects.filter(mobile=mobile).first()
            if user is not None:
                return user, "mobile"
        return None, ""

    def get_or_create_user(self, access_token, id_token, payload):
        claims = self.get_userinfo(access_token, id_token, payload)
        if not self.verify_claims(claims):
            raise SuspiciousOperation("no subject in the provider's claims")
        subject = str(claims.get("sub"))
        user, matched = self._lookup(claims)
        request = self.request
        if user is None:
            message = _(
                "省统一身份认证已通过，但本平台没有与您的身份证号或手机号对应的账号，请联系本单位管理员开通账号后再登录。"
            )
            _refuse(request, message, reason="no_account", subject=subject)
            return None
        if user.is_system or not user.is_active:
            _refuse(request, _("该账号已停用，不能登录，请联系本单位管理员。"), reason="inactive", user=user,
                    subject=subject)  # fmt: skip
            return None
        if AxesProxyHandler.is_locked(request, credentials={settings.AXES_USERNAME_FORM_FIELD: user.username}):
            _refuse(request, _("该账号因多次登录失败已被暂时锁定，请 %(n)d 分钟后再试或联系本单位管理员。")
                    % {"n": round(settings.AXES_COOLOFF_TIME * 60)}, reason="locked", user=user,
                    subject=subject)  # fmt: skip
            return None
        request._yiwang_oidc = {"matched": matched, "subject": subject[:64]}
        return user

    def authenticate(self, request, **kwargs):
        try:
            return super().authenticate(request, **kwargs)
        except (requests.RequestException, SuspiciousOperation) as error:
            if request is not None and request.GET.get("code"):
                logger.warning("OIDC sign-in failed: %s", error)
                _refuse(request, _("省统一身份认证登录失败，请稍后重试或使用账号密码登录。"), reason="provider_error")
            return None


class LoginStart(OIDCAuthenticationRequestView):
    """``/login/oidc/``: off (404) unless configured; then to the provider."""

    get_settings = staticmethod(oidc_setting)

    def dispatch(self, request, *args, **kwargs):
        if not enabled():
            raise Http404(_("未启用省统一身份认证登录。"))
        return super().dispatch(request, *args, **kwargs)


class Callback(OIDCAuthenticationCallbackView):
    """``/login/oidc/callback/``: the provider sends the person back here."""

    get_settings = staticmethod(oidc_setting)

    def dispatch(self, request, *args, **kwargs):
        if not enabled():
            raise Http404(_("未启用省统一身份认证登录。"))
        return super().dispatch(request, *args, **kwargs)

    @property
    def failure_url(self) -> str:
        return reverse("org:login")

    def get(self, request):
        if request.GET.get("error"):
            _refuse(request, _("已取消或未通过省统一身份认证。"), reason=str(request.GET["error"])[:64])
        return super().get(request)


@receiver(user_logged_in, dispatch_uid="org.oidc.logged_in")
def _logged_in(sender, request, user, **kwargs) -> None:
    """Every sign-in through the provider is audited, with how the identity was matched."""
    if getattr(user, "backend", "") != BACKEND:
        return
    details = getattr(request, "_yiwang_oidc", {}) if request is not None else {}
    _audit(request, "org.login", user=user, **details)
