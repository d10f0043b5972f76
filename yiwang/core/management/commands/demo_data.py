from django.apps import apps
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "载入演示数据（虚构的区、单位、人员），可重复执行；最后打印演示账号。"

    def handle(self, *args, **options):
        # Each app that has demo data exposes ``<app>.demo.load()``; lower floors first.
        from importlib import import_module

        from yiwang.org.demo import DEMO_LOGINS, DEMO_PASSWORD

        for config in apps.get_app_configs():
            if not config.name.startswith("yiwang."):
                continue
            try:
                demo = import_module(f"{config.name}.demo")
            except ModuleNotFoundError:
                continue
            result = demo.load()
            summary = "，".join(f"{k} {v}" for k, v in result.items())
            self.stdout.write(f"{config.verbose_name}: 新增 {summary}")
        self.stdout.write(self.style.SUCCESS(f"\n演示账号（密码均为 {DEMO_PASSWORD}）："))
        for username, note in DEMO_LOGINS:
            self.stdout.write(f"  {username:<10} {note}")
