"""Per-request identity: the acting post from the unit switcher, and TOTP for admins."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse

SESSION_POST = "yiwang_acting_post"


class ActingPostMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            user.set_acting_post(request.session.get(SESSION_POST))
        return self.get_response(request)


class AdminTwoFactorMiddleware:
    """A platform admin who has not passed TOTP this session reaches only the TOTP pages."""

    ALLOWED = ("org:otp_verify", "org:otp_setup", "org:logout", "set_language")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            settings.YIWANG_ADMIN_2FA
            and user is not None
            and user.is_authenticated
            and user.is_platform_admin
            and not user.is_verified()
        ):
            path = request.path_info
            allowed = {reverse(name) for name in self.ALLOWED}
            if path not in allowed and not path.startswith(settings.STATIC_URL) and path != "/healthz":
                from django_otp.plugins.otp_totp.models import TOTPDevice

                target = (
                    "org:otp_verify"
                    if TOTPDevice.objects.filter(user=user, confirmed=True).exists()
                    else "org:otp_setup"
                )
                if path.startswith("/api/"):
                    from django.http import JsonResponse

                    return JsonResponse(
                        {"error": {"code": "otp_required", "message": "平台管理员须先完成双因素认证。", "details": {}}},
                        status=403,
                    )
                return redirect(f"{reverse(target)}?next={request.get_full_path()}")
        return self.get_response(request)
