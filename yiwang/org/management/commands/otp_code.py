from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "（仅开发环境）打印某用户身份验证器当前的 6 位动态码，便于演示平台管理员登录。"

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        if not settings.DEBUG:
            raise CommandError("生产环境（DEBUG=0）不提供此命令。")
        device = TOTPDevice.objects.filter(user__username=username).order_by("-confirmed", "-id").first()
        if device is None:
            raise CommandError(f"{username} 尚未开始绑定身份验证器：请先用该账号登录，打开绑定页面。")
        code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift)
        self.stdout.write(f"{code:0{device.digits}d}")
